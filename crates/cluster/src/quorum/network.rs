//! openraft's messages between the voters, over a [`Transport`] channel of the RAFT kind.
//!
//! A request is `[u32 length of the JSON][JSON message][snapshot data]` (the data only for a
//! snapshot, sent raw rather than as JSON numbers); the answer is the JSON of openraft's
//! result. Whatever goes wrong on the way is "unreachable" to openraft, which backs off and
//! retries.

use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use openraft::error::{
    Fatal, InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, ReplicationClosed,
    StreamingError, Unreachable,
};
use openraft::network::{Backoff, RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    SnapshotResponse, VoteRequest, VoteResponse,
};
use openraft::storage::{Snapshot, SnapshotMeta};
use openraft::{AnyError, BasicNode, OptionalSend};
use serde::{Deserialize, Serialize};

use super::types::{Raft, TypeConfig, Vote, node_id};
use crate::transport::{BoxFuture, NodeId, RequestHandler, Transport};

/// How long openraft waits before retrying a voter that did not answer.
const RETRY_BACKOFF: Duration = Duration::from_millis(250);

/// A message to another voter.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum RaftRequest {
    AppendEntries(AppendEntriesRequest<TypeConfig>),
    Vote(VoteRequest<u64>),
    /// A whole snapshot; its data follows the JSON.
    Snapshot {
        vote: Vote,
        meta: SnapshotMeta<u64, BasicNode>,
    },
}

/// The answer to a [`RaftRequest`].
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum RaftReply {
    AppendEntries(Result<AppendEntriesResponse<u64>, RaftError<u64>>),
    Vote(Result<VoteResponse<u64>, RaftError<u64>>),
    Snapshot(Result<SnapshotResponse<u64>, Fatal<u64>>),
}

/// Encodes a request with the raw data that follows it.
fn encode(request: &RaftRequest, data: &[u8]) -> Result<Bytes, serde_json::Error> {
    let json = serde_json::to_vec(request)?;
    let mut out = BytesMut::with_capacity(4 + json.len() + data.len());
    out.put_u32(u32::try_from(json.len()).unwrap_or(u32::MAX));
    out.put_slice(&json);
    out.put_slice(data);
    Ok(out.freeze())
}

/// Decodes a request and the raw data after it.
fn decode(bytes: &[u8]) -> Option<(RaftRequest, &[u8])> {
    let (len, rest) = bytes.split_first_chunk::<4>()?;
    let (json, data) = rest.split_at_checked(u32::from_be_bytes(*len) as usize)?;
    Some((serde_json::from_slice(json).ok()?, data))
}

/// Creates the connection to each voter (openraft's `RaftNetworkFactory`).
pub struct Network {
    channel: Arc<dyn Transport>,
}

impl Network {
    /// Voters reached through `channel` (of the RAFT kind).
    pub fn new(channel: Arc<dyn Transport>) -> Self {
        Self { channel }
    }
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = Peer;

    /// The membership names where each node is reached: a learner's address is known
    /// only from there.
    async fn new_client(&mut self, target: u64, node: &BasicNode) -> Peer {
        self.channel.learn_address(node_id(target), &node.addr);
        Peer {
            target,
            channel: self.channel.clone(),
        }
    }
}

/// One voter, as openraft talks to it.
pub struct Peer {
    target: u64,
    channel: Arc<dyn Transport>,
}

/// Why a message got no usable answer.
enum SendError {
    /// The voter was not reached (or did not answer).
    Unreachable(AnyError),
    /// It answered with something that is not an answer.
    Garbled(AnyError),
}

impl Peer {
    /// Sends `request` (and `data`) and decodes the answer.
    async fn send(
        &self,
        request: &RaftRequest,
        data: &[u8],
        ttl: Duration,
    ) -> Result<RaftReply, SendError> {
        let bytes = encode(request, data).map_err(|e| SendError::Garbled(AnyError::new(&e)))?;
        let call = self.channel.call(node_id(self.target), bytes);
        let answer = tokio::time::timeout(ttl, call)
            .await
            .map_err(|_| SendError::Unreachable(AnyError::error("no answer in time")))?
            .map_err(|e| SendError::Unreachable(AnyError::new(&e)))?;
        serde_json::from_slice(&answer).map_err(|e| SendError::Garbled(AnyError::new(&e)))
    }
}

impl<E: std::error::Error> From<SendError> for RPCError<u64, BasicNode, E> {
    fn from(e: SendError) -> Self {
        match e {
            SendError::Unreachable(e) => RPCError::Unreachable(Unreachable::new(&e)),
            SendError::Garbled(e) => RPCError::Network(NetworkError::new(&e)),
        }
    }
}

/// An answer of the wrong kind: the peer is confused.
fn mismatched() -> SendError {
    SendError::Garbled(AnyError::error("the answer is for another kind of request"))
}

impl RaftNetwork<TypeConfig> for Peer {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<u64>, RPCError<u64, BasicNode, RaftError<u64>>> {
        let request = RaftRequest::AppendEntries(rpc);
        match self.send(&request, &[], option.hard_ttl()).await? {
            RaftReply::AppendEntries(result) => {
                result.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
            }
            _ => Err(mismatched().into()),
        }
    }

    /// Chunked snapshots are not used: [`Self::full_snapshot`] sends them whole.
    async fn install_snapshot(
        &mut self,
        _rpc: InstallSnapshotRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<u64>,
        RPCError<u64, BasicNode, RaftError<u64, InstallSnapshotError>>,
    > {
        Err(RPCError::Network(NetworkError::new(&AnyError::error(
            "snapshots are sent whole",
        ))))
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<u64>,
        option: RPCOption,
    ) -> Result<VoteResponse<u64>, RPCError<u64, BasicNode, RaftError<u64>>> {
        match self
            .send(&RaftRequest::Vote(rpc), &[], option.hard_ttl())
            .await?
        {
            RaftReply::Vote(result) => {
                result.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
            }
            _ => Err(mismatched().into()),
        }
    }

    async fn full_snapshot(
        &mut self,
        vote: Vote,
        snapshot: Snapshot<TypeConfig>,
        cancel: impl std::future::Future<Output = ReplicationClosed> + OptionalSend + 'static,
        option: RPCOption,
    ) -> Result<SnapshotResponse<u64>, StreamingError<TypeConfig, Fatal<u64>>> {
        let data = snapshot.snapshot.into_inner();
        let request = RaftRequest::Snapshot {
            vote,
            meta: snapshot.meta,
        };
        let reply = tokio::select! {
            closed = cancel => return Err(StreamingError::Closed(closed)),
            reply = self.send(&request, &data, option.hard_ttl()) => reply,
        };
        match reply {
            Ok(RaftReply::Snapshot(result)) => {
                result.map_err(|e| StreamingError::RemoteError(RemoteError::new(self.target, e)))
            }
            Ok(_) => Err(StreamingError::Network(NetworkError::new(
                &AnyError::error("the answer is for another kind of request"),
            ))),
            Err(SendError::Unreachable(e)) => {
                Err(StreamingError::Unreachable(Unreachable::new(&e)))
            }
            Err(SendError::Garbled(e)) => Err(StreamingError::Network(NetworkError::new(&e))),
        }
    }

    fn backoff(&self) -> Backoff {
        Backoff::new(std::iter::repeat(RETRY_BACKOFF))
    }
}

/// Answers other voters' messages with this node's Raft.
pub struct RaftHandler {
    raft: Raft,
}

impl RaftHandler {
    /// Hands messages to `raft`.
    pub fn new(raft: Raft) -> Arc<Self> {
        Arc::new(Self { raft })
    }

    async fn answer(&self, request: RaftRequest, data: &[u8]) -> RaftReply {
        match request {
            RaftRequest::AppendEntries(rpc) => {
                RaftReply::AppendEntries(self.raft.append_entries(rpc).await)
            }
            RaftRequest::Vote(rpc) => RaftReply::Vote(self.raft.vote(rpc).await),
            RaftRequest::Snapshot { vote, meta } => {
                let snapshot = Snapshot {
                    meta,
                    snapshot: Box::new(std::io::Cursor::new(data.to_vec())),
                };
                RaftReply::Snapshot(self.raft.install_full_snapshot(vote, snapshot).await)
            }
        }
    }
}

impl RequestHandler for RaftHandler {
    fn handle(&self, from: NodeId, request: Bytes) -> BoxFuture<'_, Bytes> {
        Box::pin(async move {
            let Some((message, data)) = decode(&request) else {
                tracing::warn!(from, "undecodable quorum message; ignoring it");
                return Bytes::new();
            };
            let reply = self.answer(message, data).await;
            serde_json::to_vec(&reply).map_or_else(|_| Bytes::new(), Bytes::from)
        })
    }
}

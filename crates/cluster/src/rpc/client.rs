//! Calling other nodes over TCP ([`TcpTransport`]): a pool of connections per peer, each
//! used by one call at a time, so a long call (a replica fetch waiting for data) never
//! delays another (a Raft heartbeat) — that one takes another connection. A peer that
//! cannot be reached is retried with backoff; every call has a timeout.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use parking_lot::{Mutex, RwLock};
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::frame::{read_frame, write_frame};
use super::hello::{self, Hello, HelloReply, LocalNode, MAX_HELLO_BYTES};
use crate::transport::{BoxFuture, NodeId, Transport, TransportError};
use crate::voters::Voters;

/// Timeouts and bounds of the connections to peers.
#[derive(Debug, Clone)]
pub struct RpcSettings {
    /// Connecting and the handshake together.
    pub connect_timeout: Duration,
    /// The longest any call may take (callers wanting less wrap the call in their own).
    pub call_timeout: Duration,
    /// The largest frame read, either way.
    pub max_frame_bytes: usize,
    /// Idle connections kept per peer.
    pub idle_per_peer: usize,
    /// The first pause after a failed connect; it doubles up to `max_backoff`.
    pub min_backoff: Duration,
    /// The longest pause between connects to an unreachable peer.
    pub max_backoff: Duration,
}

impl Default for RpcSettings {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(2),
            call_timeout: Duration::from_secs(30),
            max_frame_bytes: 64 * 1024 * 1024,
            idle_per_peer: 8,
            min_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_secs(1),
        }
    }
}

/// The connections to one peer.
#[derive(Default)]
struct Peer {
    idle: Vec<TcpStream>,
    /// No connect before this, after failures.
    retry_at: Option<Instant>,
    backoff: Duration,
    /// What the peer said in its last handshake.
    hello: Option<Hello>,
    /// The last connect failed (logged once, until a connect succeeds again).
    unreachable: bool,
}

/// Why a connection to a peer was not made.
#[derive(Debug, thiserror::Error)]
enum ConnectError {
    /// No connection, or it broke during the handshake.
    #[error("{0}")]
    Failed(String),
    /// One side refused the other's handshake, for this reason.
    #[error("{0}")]
    Refused(String),
}

/// What a call's exchange on one connection gave.
enum Exchange {
    Answer(Bytes),
    /// The connection closed before any answer: on a reused connection, the peer had
    /// closed it while idle (it restarted), so the request never reached it.
    ClosedBeforeAnswer,
    Failed,
}

/// The transport to every other node over TCP: the voters, at their `--voters`
/// addresses, and the learners, at the addresses the quorum's membership gives them.
pub struct TcpTransport {
    local: Arc<LocalNode>,
    addresses: RwLock<BTreeMap<NodeId, String>>,
    peers: Mutex<HashMap<NodeId, Peer>>,
    settings: RpcSettings,
}

impl TcpTransport {
    /// Calls from `local` to the other `voters`.
    pub fn new(local: Arc<LocalNode>, voters: &Voters, settings: RpcSettings) -> Arc<Self> {
        Arc::new(Self {
            addresses: RwLock::new(
                voters
                    .iter()
                    .filter(|v| v.id != local.node_id())
                    .map(|v| (v.id, v.addr.clone()))
                    .collect(),
            ),
            local,
            peers: Mutex::new(HashMap::new()),
            settings,
        })
    }

    /// Where node `id` is reached, if known.
    fn address(&self, id: NodeId) -> Option<String> {
        self.addresses.read().get(&id).cloned()
    }

    /// Connects to `to` (or reuses a connection) and returns what it said in its
    /// handshake: whether it is reachable, and the cluster it is in.
    pub async fn probe(&self, to: NodeId) -> Result<Hello, TransportError> {
        let (stream, _) = self.checkout(to).await?;
        self.checkin(to, stream);
        self.peers
            .lock()
            .get(&to)
            .and_then(|p| p.hello.clone())
            .ok_or(TransportError::Lost(to))
    }

    /// An idle connection to `to`, or a new one (unless `to` is being backed off).
    async fn checkout(&self, to: NodeId) -> Result<(TcpStream, bool), TransportError> {
        let addr = self.address(to).ok_or(TransportError::UnknownNode(to))?;
        let addr = addr.as_str();
        {
            let mut peers = self.peers.lock();
            let peer = peers.entry(to).or_default();
            if let Some(stream) = peer.idle.pop() {
                return Ok((stream, true));
            }
            if peer.retry_at.is_some_and(|at| Instant::now() < at) {
                return Err(TransportError::Lost(to));
            }
        }
        let connected = tokio::time::timeout(self.settings.connect_timeout, self.connect(to, addr))
            .await
            .unwrap_or_else(|_| Err(ConnectError::Failed("no answer in time".into())));
        let mut peers = self.peers.lock();
        let peer = peers.entry(to).or_default();
        match connected {
            Ok((stream, hello)) => {
                if std::mem::take(&mut peer.unreachable) && self.local.is_joined() {
                    tracing::info!("reached node {to} at {addr} again");
                }
                peer.backoff = Duration::ZERO;
                peer.retry_at = None;
                peer.hello = Some(hello);
                Ok((stream, false))
            }
            Err(error) => {
                if !std::mem::replace(&mut peer.unreachable, true) && self.local.is_joined() {
                    tracing::warn!("cannot reach node {to} at {addr}: {error}; retrying");
                }
                if let ConnectError::Refused(reason) = error {
                    self.local.note_refusal(to, reason);
                }
                peer.backoff = (peer.backoff * 2)
                    .max(self.settings.min_backoff)
                    .min(self.settings.max_backoff);
                peer.retry_at = Some(Instant::now() + peer.backoff);
                Err(TransportError::Lost(to))
            }
        }
    }

    /// Opens a connection to `to` at `addr` and shakes hands.
    async fn connect(&self, to: NodeId, addr: &str) -> Result<(TcpStream, Hello), ConnectError> {
        let failed = |e: std::io::Error| ConnectError::Failed(e.to_string());
        let mut stream = TcpStream::connect(addr).await.map_err(failed)?;
        let _ = stream.set_nodelay(true);
        let hello = hello::encode(&self.local.hello(to));
        write_frame(&mut stream, hello::HELLO_KIND, &hello)
            .await
            .map_err(failed)?;
        let body = read_frame(&mut stream, MAX_HELLO_BYTES)
            .await
            .map_err(|e| ConnectError::Failed(e.to_string()))?
            .ok_or_else(|| ConnectError::Failed("closed during the handshake".into()))?;
        let answer = match hello::decode::<HelloReply>(&body) {
            Ok(HelloReply::Accepted(answer)) => answer,
            Ok(HelloReply::Refused(reason)) => return Err(ConnectError::Refused(reason)),
            Err(e) => {
                return Err(ConnectError::Refused(format!(
                    "the node at {addr} is not a Sluice node: {e}"
                )));
            }
        };
        self.local
            .check_answer(to, &answer)
            .map_err(ConnectError::Refused)?;
        Ok((stream, answer))
    }

    /// Returns a connection whose call completed to the idle pool.
    fn checkin(&self, to: NodeId, stream: TcpStream) {
        let mut peers = self.peers.lock();
        let peer = peers.entry(to).or_default();
        if peer.idle.len() < self.settings.idle_per_peer {
            peer.idle.push(stream);
        }
    }

    /// Sends one request on `stream` and reads its answer.
    async fn exchange(&self, stream: &mut TcpStream, request: &[u8]) -> Exchange {
        let Some((&kind, payload)) = request.split_first() else {
            return Exchange::Failed;
        };
        if write_frame(stream, kind, payload).await.is_err() {
            return Exchange::ClosedBeforeAnswer;
        }
        match read_frame(stream, self.settings.max_frame_bytes).await {
            Ok(Some(body)) if body.first() == Some(&kind) => Exchange::Answer(body.slice(1..)),
            Ok(None) => Exchange::ClosedBeforeAnswer,
            Ok(Some(_)) | Err(_) => Exchange::Failed,
        }
    }

    async fn call_once(&self, to: NodeId, request: &Bytes) -> Result<Bytes, TransportError> {
        for _ in 0..2 {
            let (mut stream, reused) = self.checkout(to).await?;
            let exchange = tokio::time::timeout(
                self.settings.call_timeout,
                self.exchange(&mut stream, request),
            )
            .await
            .map_err(|_| TransportError::Timeout(to))?;
            match exchange {
                Exchange::Answer(answer) => {
                    self.checkin(to, stream);
                    return Ok(answer);
                }
                // A stale pooled connection (the peer restarted): so are the other idle
                // ones; try once more on a fresh one.
                Exchange::ClosedBeforeAnswer if reused => {
                    if let Some(peer) = self.peers.lock().get_mut(&to) {
                        peer.idle.clear();
                    }
                }
                Exchange::ClosedBeforeAnswer | Exchange::Failed => {
                    return Err(TransportError::Lost(to));
                }
            }
        }
        Err(TransportError::Lost(to))
    }
}

impl Transport for TcpTransport {
    fn local(&self) -> NodeId {
        self.local.node_id()
    }

    /// `request` starts with its kind byte (see [`crate::Channel`]).
    fn call(&self, to: NodeId, request: Bytes) -> BoxFuture<'_, Result<Bytes, TransportError>> {
        Box::pin(async move { self.call_once(to, &request).await })
    }

    /// A voter keeps its `--voters` address; a learner's replaces what was known (its
    /// pooled connections go with the old address).
    fn learn_address(&self, node: NodeId, addr: &str) {
        if node == self.local.node_id() || self.local.voters().get(node).is_some() {
            return;
        }
        let previous = self.addresses.write().insert(node, addr.to_string());
        if previous.as_deref() != Some(addr) {
            if let Some(peer) = self.peers.lock().get_mut(&node) {
                peer.idle.clear();
                peer.retry_at = None;
            }
            tracing::debug!("node {node} is reached at {addr}");
        }
    }
}

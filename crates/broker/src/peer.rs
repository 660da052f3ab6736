//! Kafka requests from the other nodes of the cluster: a follower's Fetch, and later
//! OffsetForLeaderEpoch and transaction markers. They arrive over the node-to-node
//! transport rather than a client connection and go through the same handler table as a
//! client's (one request path), with the identity of the peer node on the cluster
//! listener, so a handler tells a replica from a client by the listener and the request.
//!
//! A request frame here is what a client sends after the 4-byte length (header and body);
//! the answer is the response frame after its length. An empty answer means "no response"
//! (an undecodable or refused request), which the caller treats as a lost call.
//! [`call_peer`] is the other side: how this node sends such a request.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, FetchRequest, RequestKind, ResponseKind};
use sluice_cluster::{NodeId, RequestHandler};
use sluice_protocol::codec::{self, RequestFrame};
use sluice_protocol::kafka_protocol;

use crate::broker::Broker;
use crate::connection::encode_response_chunks;
use crate::controller::lifecycle::HEARTBEAT_VERSION;
use crate::request::{ConnectionIdentity, Reply, RequestContext, RequestHeader};
use crate::router;

/// Answers Kafka requests of peer nodes with the broker's handlers.
pub struct PeerRequests {
    broker: Arc<Broker>,
}

impl PeerRequests {
    /// The handler of `broker`'s peer requests.
    pub fn new(broker: Arc<Broker>) -> Arc<Self> {
        Arc::new(Self { broker })
    }

    async fn answer(&self, from: NodeId, frame: Bytes) -> Result<Bytes, String> {
        let header = codec::decode_header(frame).map_err(|e| e.to_string())?;
        if header.api_key == ApiKey::BrokerHeartbeat {
            return self.heartbeat(from, &header).await;
        }
        if !router::supports(header.api_key, header.api_version) {
            return Err(format!(
                "{:?} v{} is not a version this node answers",
                header.api_key, header.api_version
            ));
        }
        let request = codec::decode_body(&header).map_err(|e| e.to_string())?;
        if let RequestKind::Fetch(fetch) = &request {
            check_replica_is_sender(fetch, header.api_version, from)?;
        }
        let api_key = header.api_key;
        let version = header.api_version;
        let correlation_id = header.correlation_id;
        let ctx = RequestContext::new(
            RequestHeader {
                api_key,
                api_version: version,
                correlation_id,
                client_id: header.client_id.unwrap_or_default(),
            },
            &ConnectionIdentity::peer_node(from),
        );
        let response = match router::dispatch(&self.broker, &ctx, request).await {
            Reply::Now(response) => response,
            Reply::Later(task) => task
                .await
                .map_err(|e| format!("request task failed: {e}"))?,
            Reply::Nothing | Reply::Close => return Ok(Bytes::new()),
        };
        let chunks = encode_response_chunks(correlation_id, api_key, version, response)?;
        Ok(without_size_prefix(chunks))
    }
}

impl PeerRequests {
    /// A broker's heartbeat to this node's controller: an API of the cluster listener
    /// only, so not in the client handler table (Kafka serves it on the controller
    /// listener).
    async fn heartbeat(&self, from: NodeId, header: &RequestFrame) -> Result<Bytes, String> {
        let version = header.api_version;
        if !(0..=HEARTBEAT_VERSION).contains(&version) {
            return Err(format!(
                "BrokerHeartbeat v{version} is not a version this node answers"
            ));
        }
        let RequestKind::BrokerHeartbeat(request) =
            codec::decode_body(header).map_err(|e| e.to_string())?
        else {
            return Err("a BrokerHeartbeat frame decoded as another request".into());
        };
        if request.broker_id.0 != from {
            return Err(format!(
                "node {from} sent a heartbeat for broker {}",
                request.broker_id.0
            ));
        }
        let response = self.broker.controller.heartbeat(&request).await;
        let chunks = encode_response_chunks(
            header.correlation_id,
            ApiKey::BrokerHeartbeat,
            version,
            ResponseKind::BrokerHeartbeat(response),
        )?;
        Ok(without_size_prefix(chunks))
    }
}

impl RequestHandler for PeerRequests {
    fn handle(&self, from: NodeId, request: Bytes) -> sluice_cluster::BoxFuture<'_, Bytes> {
        Box::pin(async move {
            match self.answer(from, request).await {
                Ok(response) => response,
                Err(reason) => {
                    tracing::warn!(node = from, %reason, "refused a request from a peer node");
                    Bytes::new()
                }
            }
        })
    }
}

/// Why a request to a peer node got no usable answer.
#[derive(Debug, thiserror::Error)]
pub enum PeerCallError {
    /// The node did not answer (unreachable, link cut, lost).
    #[error(transparent)]
    Transport(#[from] sluice_cluster::TransportError),
    /// It did not answer in time.
    #[error("node {0} did not answer in time")]
    Timeout(NodeId),
    /// It refused the request (an empty answer: undecodable or not allowed there).
    #[error("node {0} refused the request")]
    Refused(NodeId),
    /// The request or its answer could not be encoded or decoded.
    #[error(transparent)]
    Codec(#[from] codec::CodecError),
}

/// Sends `request` at `version` to node `to` over `peers` and decodes its answer, waiting
/// at most `timeout`.
pub async fn call_peer<R: kafka_protocol::protocol::Request>(
    peers: &dyn sluice_cluster::Transport,
    to: NodeId,
    version: i16,
    request: &R,
    timeout: std::time::Duration,
) -> Result<R::Response, PeerCallError> {
    let client_id = format!("sluice-node-{}", peers.local());
    let frame = codec::encode_request(version, 0, &client_id, request)?.freeze();
    let answer = tokio::time::timeout(timeout, peers.call(to, frame))
        .await
        .map_err(|_| PeerCallError::Timeout(to))??;
    if answer.is_empty() {
        return Err(PeerCallError::Refused(to));
    }
    Ok(codec::decode_response::<R>(version, answer)?.1)
}

/// A node fetches as itself: a Fetch naming another replica is refused, so one node cannot
/// move another's replication progress (and with it the high watermark).
fn check_replica_is_sender(fetch: &FetchRequest, version: i16, from: NodeId) -> Result<(), String> {
    let replica = if version >= 15 {
        fetch.replica_state.replica_id.0
    } else {
        fetch.replica_id.0
    };
    if replica >= 0 && replica != from {
        return Err(format!("node {from} fetched as replica {replica}"));
    }
    Ok(())
}

/// One buffer holding the response frame without its 4-byte length: the transport frames
/// it itself.
fn without_size_prefix(chunks: Vec<Bytes>) -> Bytes {
    let total: usize = chunks.iter().map(Bytes::len).sum();
    let mut out = BytesMut::with_capacity(total.saturating_sub(4));
    let mut skip = 4usize;
    for chunk in &chunks {
        let cut = skip.min(chunk.len());
        skip -= cut;
        out.extend_from_slice(chunk.get(cut..).unwrap_or_default());
    }
    out.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_length_prefix_is_dropped_across_chunks() {
        let chunks = vec![
            Bytes::from_static(&[0, 0]),
            Bytes::from_static(&[0, 9, 1, 2]),
            Bytes::from_static(&[3]),
        ];
        assert_eq!(without_size_prefix(chunks), Bytes::from_static(&[1, 2, 3]));
    }
}

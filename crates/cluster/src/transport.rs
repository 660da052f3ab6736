//! What moving a request from one node to another means, whatever carries it.

use std::future::Future;
use std::pin::Pin;

use bytes::Bytes;

/// A node's id (`node.id`).
pub type NodeId = i32;

/// A future a transport or handler returns.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Why a call to another node did not return a response. Callers treat every variant as
/// "the peer did not answer": retry, or give up on that peer for now.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransportError {
    /// No node with this id is known (or it stopped).
    #[error("node {0} is unknown or stopped")]
    UnknownNode(NodeId),
    /// The link to the node is cut, or the request or its response was lost.
    #[error("the request to node {0} or its response was lost")]
    Lost(NodeId),
    /// The node did not answer in time.
    #[error("node {0} did not answer in time")]
    Timeout(NodeId),
}

/// Sends request frames to other nodes and returns their response frames.
pub trait Transport: Send + Sync {
    /// This node's id.
    fn local(&self) -> NodeId;

    /// Sends one request frame to node `to` and waits for its response frame.
    fn call(&self, to: NodeId, request: Bytes) -> BoxFuture<'_, Result<Bytes, TransportError>>;

    /// Learns where node `node` is reached (`host:port` of its cluster listener): a node
    /// that joined as a learner is in no `--voters` list, so its address comes from the
    /// quorum's membership. Transports that need no addresses ignore it.
    fn learn_address(&self, node: NodeId, addr: &str) {
        let _ = (node, addr);
    }
}

/// What a node does with a request frame from another node.
pub trait RequestHandler: Send + Sync {
    /// Answers `request` from node `from` with a response frame.
    fn handle(&self, from: NodeId, request: Bytes) -> BoxFuture<'_, Bytes>;
}

//! Kinds of node-to-node requests. Every request starts with a kind byte, so that one
//! transport carries the quorum's messages, forwarded metadata batches, the brokers' Kafka
//! requests and heartbeats, and each node answers each kind with the handler registered
//! for it ([`Handlers`]). Over TCP the kind byte is the byte after the frame length
//! (`[u32 length][u8 kind][payload]`); a [`Channel`] adds it to what its users send.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use parking_lot::RwLock;

use crate::transport::{BoxFuture, NodeId, RequestHandler, Transport, TransportError};

/// What a request between nodes is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum RpcKind {
    /// openraft's messages (append entries, vote, snapshot) for the metadata quorum.
    Raft = 1,
    /// A batch of metadata records a node hands the quorum leader to commit.
    Forward = 2,
    /// A Kafka request frame from a peer broker (replica Fetch, OffsetForLeaderEpoch,
    /// BrokerHeartbeat, WriteTxnMarkers, …).
    Kafka = 3,
    /// Reserved for brokers' heartbeats to the quorum leader apart from other Kafka
    /// requests (today they are BrokerHeartbeat requests of the KAFKA kind).
    Heartbeat = 4,
    /// A change of the quorum's membership a node asks the quorum leader for: a broker
    /// joining as a learner, or a learner leaving (see [`crate::quorum`]).
    Membership = 5,
}

impl RpcKind {
    /// Every kind, in byte order.
    pub const ALL: [RpcKind; 5] = [
        RpcKind::Raft,
        RpcKind::Forward,
        RpcKind::Kafka,
        RpcKind::Heartbeat,
        RpcKind::Membership,
    ];

    /// The kind a frame's kind byte names, if any.
    pub fn from_byte(byte: u8) -> Option<Self> {
        Self::ALL.into_iter().find(|k| *k as u8 == byte)
    }
}

/// The handlers of one node, one per kind; itself the handler of kind-prefixed requests.
#[derive(Default)]
pub struct Handlers {
    by_kind: RwLock<BTreeMap<RpcKind, Arc<dyn RequestHandler>>>,
}

impl Handlers {
    /// No handler yet: every request is refused until its kind is registered.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Answers requests of `kind` with `handler` from now on (replacing any earlier one).
    pub fn register(&self, kind: RpcKind, handler: Arc<dyn RequestHandler>) {
        self.by_kind.write().insert(kind, handler);
    }

    /// The handler of `kind`, if one is registered.
    pub fn get(&self, kind: RpcKind) -> Option<Arc<dyn RequestHandler>> {
        self.by_kind.read().get(&kind).cloned()
    }

    /// Splits a kind-prefixed request into its handler and payload; `None` when the kind
    /// is unknown or has no handler here.
    pub fn route(&self, request: &Bytes) -> Option<(Arc<dyn RequestHandler>, Bytes)> {
        let kind = RpcKind::from_byte(*request.first()?)?;
        Some((self.get(kind)?, request.slice(1..)))
    }
}

impl RequestHandler for Handlers {
    /// A request of a kind this node does not answer gets an empty response, which no
    /// caller decodes as an answer (over TCP the connection is closed instead).
    fn handle(&self, from: NodeId, request: Bytes) -> BoxFuture<'_, Bytes> {
        Box::pin(async move {
            match self.route(&request) {
                Some((handler, payload)) => handler.handle(from, payload).await,
                None => Bytes::new(),
            }
        })
    }
}

/// The requests of one kind over a transport shared by all kinds: what a component that
/// talks to its counterpart on other nodes (the quorum, a replica fetcher) holds.
pub struct Channel {
    transport: Arc<dyn Transport>,
    kind: RpcKind,
}

impl Channel {
    /// Requests of `kind` over `transport`.
    pub fn new(transport: Arc<dyn Transport>, kind: RpcKind) -> Arc<Self> {
        Arc::new(Self { transport, kind })
    }
}

impl Transport for Channel {
    fn local(&self) -> NodeId {
        self.transport.local()
    }

    fn call(&self, to: NodeId, request: Bytes) -> BoxFuture<'_, Result<Bytes, TransportError>> {
        let mut framed = BytesMut::with_capacity(1 + request.len());
        framed.put_u8(self.kind as u8);
        framed.put_slice(&request);
        self.transport.call(to, framed.freeze())
    }

    fn learn_address(&self, node: NodeId, addr: &str) {
        self.transport.learn_address(node, addr);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MemoryNetwork;

    /// Answers with its name and the payload it got.
    struct Named(&'static str);

    impl RequestHandler for Named {
        fn handle(&self, from: NodeId, request: Bytes) -> BoxFuture<'_, Bytes> {
            let answer = format!("{}<-{from}:{}", self.0, String::from_utf8_lossy(&request));
            Box::pin(async move { Bytes::from(answer) })
        }
    }

    #[tokio::test]
    async fn each_kind_reaches_its_own_handler() {
        let net = MemoryNetwork::new(1);
        let handlers = Handlers::new();
        handlers.register(RpcKind::Raft, Arc::new(Named("raft")));
        handlers.register(RpcKind::Kafka, Arc::new(Named("kafka")));
        net.register(2, handlers.clone());
        let base: Arc<dyn Transport> = Arc::new(net.transport(1));
        let raft = Channel::new(base.clone(), RpcKind::Raft);
        let kafka = Channel::new(base.clone(), RpcKind::Kafka);
        let forward = Channel::new(base, RpcKind::Forward);
        assert_eq!(raft.call(2, Bytes::from("a")).await.unwrap(), "raft<-1:a");
        assert_eq!(kafka.call(2, Bytes::from("b")).await.unwrap(), "kafka<-1:b");
        // No handler for the kind: an empty answer.
        assert_eq!(forward.call(2, Bytes::from("c")).await.unwrap(), "");
        assert_eq!(raft.local(), 1);
        assert_eq!(RpcKind::from_byte(3), Some(RpcKind::Kafka));
        assert_eq!(RpcKind::from_byte(0), None);
        assert_eq!(RpcKind::from_byte(5), Some(RpcKind::Membership));
        assert_eq!(RpcKind::from_byte(6), None);
    }
}

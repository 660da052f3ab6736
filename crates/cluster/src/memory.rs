//! An in-process network of nodes for deterministic tests: every call goes through the
//! network, which can cut links (one way or both), isolate a node, and drop or delay
//! messages with a seeded generator, so a failing run replays from its seed.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use parking_lot::Mutex;

use crate::transport::{BoxFuture, NodeId, RequestHandler, Transport, TransportError};

/// Faults applied to every message that crosses a link.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LinkFaults {
    /// Chance (0.0 to 1.0) that a message is lost.
    pub drop_probability: f64,
    /// Every message waits this long…
    pub delay: Duration,
    /// …plus up to this much more, chosen by the generator.
    pub jitter: Duration,
}

impl Default for LinkFaults {
    fn default() -> Self {
        Self {
            drop_probability: 0.0,
            delay: Duration::ZERO,
            jitter: Duration::ZERO,
        }
    }
}

/// The nodes of one in-process cluster and the state of the links between them.
pub struct MemoryNetwork {
    state: Mutex<NetworkState>,
}

struct NetworkState {
    nodes: BTreeMap<NodeId, Arc<dyn RequestHandler>>,
    /// Directed links that deliver nothing: (from, to).
    cut: BTreeSet<(NodeId, NodeId)>,
    faults: LinkFaults,
    rng: SplitMix64,
    delivered: u64,
    lost: u64,
}

impl MemoryNetwork {
    /// An empty network whose random choices follow `seed`.
    pub fn new(seed: u64) -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(NetworkState {
                nodes: BTreeMap::new(),
                cut: BTreeSet::new(),
                faults: LinkFaults::default(),
                rng: SplitMix64(seed),
                delivered: 0,
                lost: 0,
            }),
        })
    }

    /// Adds (or replaces, after a restart) the node `id`, answering with `handler`.
    pub fn register(&self, id: NodeId, handler: Arc<dyn RequestHandler>) {
        self.state.lock().nodes.insert(id, handler);
    }

    /// Removes a node, as a crash does: calls to it fail until it registers again.
    pub fn stop(&self, id: NodeId) {
        self.state.lock().nodes.remove(&id);
    }

    /// The transport node `local` uses to call the others.
    pub fn transport(self: &Arc<Self>, local: NodeId) -> MemoryTransport {
        MemoryTransport {
            network: self.clone(),
            local,
        }
    }

    /// Stops delivery from `from` to `to` (one way: `to` may still reach `from`).
    pub fn cut_one_way(&self, from: NodeId, to: NodeId) {
        self.state.lock().cut.insert((from, to));
    }

    /// Stops delivery between `a` and `b` both ways.
    pub fn cut(&self, a: NodeId, b: NodeId) {
        let mut state = self.state.lock();
        state.cut.insert((a, b));
        state.cut.insert((b, a));
    }

    /// Cuts every link of `node`, both ways.
    pub fn isolate(&self, node: NodeId) {
        let mut state = self.state.lock();
        let others: Vec<NodeId> = state.nodes.keys().copied().filter(|&n| n != node).collect();
        for other in others {
            state.cut.insert((node, other));
            state.cut.insert((other, node));
        }
    }

    /// Restores every link.
    pub fn heal(&self) {
        self.state.lock().cut.clear();
    }

    /// Applies `faults` to every message from now on.
    pub fn set_faults(&self, faults: LinkFaults) {
        self.state.lock().faults = faults;
    }

    /// Messages delivered and lost so far (requests and responses each count).
    pub fn counts(&self) -> (u64, u64) {
        let state = self.state.lock();
        (state.delivered, state.lost)
    }

    /// Decides the fate of one message from `from` to `to`: `None` if it is lost, else
    /// how long it takes.
    fn route(&self, from: NodeId, to: NodeId) -> Option<Duration> {
        let mut state = self.state.lock();
        let faults = state.faults;
        let lost = state.cut.contains(&(from, to))
            || (faults.drop_probability > 0.0 && state.rng.unit() < faults.drop_probability);
        if lost {
            state.lost += 1;
            return None;
        }
        state.delivered += 1;
        let jitter_ns = u64::try_from(faults.jitter.as_nanos()).unwrap_or(u64::MAX);
        let extra = if jitter_ns == 0 {
            0
        } else {
            state.rng.next() % jitter_ns
        };
        Some(faults.delay + Duration::from_nanos(extra))
    }

    fn handler(&self, id: NodeId) -> Option<Arc<dyn RequestHandler>> {
        self.state.lock().nodes.get(&id).cloned()
    }
}

/// One node's end of a [`MemoryNetwork`].
pub struct MemoryTransport {
    network: Arc<MemoryNetwork>,
    local: NodeId,
}

impl Transport for MemoryTransport {
    fn local(&self) -> NodeId {
        self.local
    }

    fn call(&self, to: NodeId, request: Bytes) -> BoxFuture<'_, Result<Bytes, TransportError>> {
        Box::pin(async move {
            let handler = self
                .network
                .handler(to)
                .ok_or(TransportError::UnknownNode(to))?;
            let there = self
                .network
                .route(self.local, to)
                .ok_or(TransportError::Lost(to))?;
            tokio::time::sleep(there).await;
            let response = handler.handle(self.local, request).await;
            let back = self
                .network
                .route(to, self.local)
                .ok_or(TransportError::Lost(to))?;
            tokio::time::sleep(back).await;
            Ok(response)
        })
    }
}

/// A small, well-mixed generator (SplitMix64): enough for fault schedules, seeded, with no
/// dependency.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// Answers every request with its node id and the request, so tests see who answered.
    struct Echo(NodeId);

    impl RequestHandler for Echo {
        fn handle(&self, from: NodeId, request: Bytes) -> BoxFuture<'_, Bytes> {
            let answer = format!("{}<-{}:{}", self.0, from, String::from_utf8_lossy(&request));
            Box::pin(async move { Bytes::from(answer) })
        }
    }

    fn three_nodes(seed: u64) -> Arc<MemoryNetwork> {
        let net = MemoryNetwork::new(seed);
        for id in 1..=3 {
            net.register(id, Arc::new(Echo(id)));
        }
        net
    }

    #[tokio::test]
    async fn calls_reach_the_node_and_come_back() {
        let net = three_nodes(1);
        let t1 = net.transport(1);
        assert_eq!(t1.call(2, Bytes::from("ping")).await.unwrap(), "2<-1:ping");
        assert_eq!(
            t1.call(9, Bytes::new()).await,
            Err(TransportError::UnknownNode(9))
        );
        net.stop(2);
        assert_eq!(
            t1.call(2, Bytes::new()).await,
            Err(TransportError::UnknownNode(2))
        );
        assert_eq!(net.counts(), (2, 0));
    }

    #[tokio::test]
    async fn cut_links_lose_messages_one_way_or_both() {
        let net = three_nodes(1);
        let (t1, t2) = (net.transport(1), net.transport(2));
        net.cut_one_way(1, 2);
        assert_eq!(t1.call(2, Bytes::new()).await, Err(TransportError::Lost(2)));
        // The response path 1 -> 2 is cut too: 2's call reaches 1 but its answer is lost.
        assert_eq!(t2.call(1, Bytes::new()).await, Err(TransportError::Lost(1)));
        assert!(t1.call(3, Bytes::new()).await.is_ok());
        net.heal();
        net.isolate(3);
        assert!(t1.call(3, Bytes::new()).await.is_err());
        assert!(t1.call(2, Bytes::new()).await.is_ok());
        net.heal();
        assert!(t1.call(3, Bytes::new()).await.is_ok());
    }

    /// The same seed loses the same messages: a failing fault schedule replays.
    #[tokio::test]
    async fn drops_follow_the_seed() {
        async fn outcomes(seed: u64) -> Vec<bool> {
            let net = three_nodes(seed);
            net.set_faults(LinkFaults {
                drop_probability: 0.3,
                ..LinkFaults::default()
            });
            let t = net.transport(1);
            let mut out = Vec::new();
            for _ in 0..200 {
                out.push(t.call(2, Bytes::new()).await.is_ok());
            }
            out
        }
        let a = outcomes(42).await;
        assert_eq!(a, outcomes(42).await);
        assert_ne!(a, outcomes(43).await);
        let delivered = a.iter().filter(|ok| **ok).count();
        // Each call needs two deliveries at 70%: about 49% succeed.
        assert!((60..140).contains(&delivered), "{delivered} of 200");
    }

    #[tokio::test(start_paused = true)]
    async fn delays_apply_each_way() {
        let net = three_nodes(7);
        net.set_faults(LinkFaults {
            delay: Duration::from_millis(100),
            ..LinkFaults::default()
        });
        let started = tokio::time::Instant::now();
        net.transport(1).call(2, Bytes::new()).await.unwrap();
        assert_eq!(started.elapsed(), Duration::from_millis(200));
    }
}

//! The handshake that opens every cluster connection. Each side says who it is (node id,
//! data-directory incarnation, cluster id once known, voters) and whom it meant to reach;
//! either side closes a connection to a node that is not the one it expected, has other
//! voters, belongs to another cluster, or reuses a node id with another data directory.
//! A peer speaking something else is disconnected at its first bytes.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::RwLock;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use uuid::Uuid;

use crate::transport::NodeId;
use crate::voters::Voters;

/// The kind byte of handshake frames (other kinds start at 1).
pub const HELLO_KIND: u8 = 0;
/// Every handshake starts with these bytes after its kind byte (the protocol's version is
/// the last byte).
const MAGIC: &[u8; 8] = b"SLUICE\x00\x01";
/// A handshake is small; a longer first frame is not one.
pub const MAX_HELLO_BYTES: usize = 64 * 1024;

/// Who a node says it is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hello {
    /// The sender's node id.
    pub from: NodeId,
    /// The node it meant to reach.
    pub to: NodeId,
    /// The sender's data-directory incarnation.
    pub incarnation: Uuid,
    /// The sender's cluster id, once it has one.
    pub cluster_id: Option<String>,
    /// The sender's voters, canonical.
    pub voters: String,
}

/// The answer to a [`Hello`].
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HelloReply {
    /// The receiver talks to the sender, and says who it is.
    Accepted(Hello),
    /// The receiver will not talk to the sender, and why.
    Refused(String),
}

/// Encodes a handshake message as a frame payload (after the kind byte).
pub fn encode<T: Serialize>(message: &T) -> Vec<u8> {
    let mut out = MAGIC.to_vec();
    // Serializing these plain structs cannot fail; an empty payload is refused by the peer.
    out.extend(serde_json::to_vec(message).unwrap_or_default());
    out
}

/// Decodes a handshake frame body (kind byte included).
pub fn decode<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, String> {
    let rest = body
        .strip_prefix(&[HELLO_KIND])
        .and_then(|b| b.strip_prefix(MAGIC.as_slice()))
        .ok_or_else(|| "not a Sluice cluster handshake".to_string())?;
    serde_json::from_slice(rest).map_err(|e| format!("malformed handshake: {e}"))
}

/// What decides, beyond the voters and the cluster id, whether a node may take part: a
/// node id registered with another data directory must not (node ids are never reused),
/// nor may a voter removed from the quorum call in.
pub trait PeerCheck: Send + Sync {
    /// Refuses node `node` of data directory `incarnation`, with the reason.
    fn check(&self, node: NodeId, incarnation: Uuid) -> Result<(), String>;

    /// Refuses node `node` calling this one, with the reason. Only callers: a node that
    /// starts probes every voter, and what a removed one answers must not end its start.
    fn check_caller(&self, _node: NodeId) -> Result<(), String> {
        Ok(())
    }
}

/// Accepts every peer (before metadata exists, and in tests).
pub struct AnyPeer;

impl PeerCheck for AnyPeer {
    fn check(&self, _: NodeId, _: Uuid) -> Result<(), String> {
        Ok(())
    }
}

/// A handshake this node refused or was refused in, as a peer it connected to saw it.
#[derive(Debug, Clone, PartialEq)]
pub struct Refusal {
    /// The peer.
    pub peer: NodeId,
    /// Why, in a sentence that names both sides.
    pub reason: String,
}

/// This node, as handshakes present and check it.
pub struct LocalNode {
    node_id: NodeId,
    incarnation: Uuid,
    voters: Voters,
    cluster_id: RwLock<Option<String>>,
    check: RwLock<Arc<dyn PeerCheck>>,
    refusals: watch::Sender<Option<Refusal>>,
    /// Set once start-up has joined the cluster: from then on peers coming and going are
    /// logged (before, start-up reports what it waits for itself).
    joined: AtomicBool,
}

impl LocalNode {
    /// Node `node_id` of data directory `incarnation`, among `voters`, in `cluster_id`
    /// when it knows it.
    pub fn new(
        node_id: NodeId,
        incarnation: Uuid,
        voters: Voters,
        cluster_id: Option<String>,
    ) -> Arc<Self> {
        Arc::new(Self {
            node_id,
            incarnation,
            voters,
            cluster_id: RwLock::new(cluster_id),
            check: RwLock::new(Arc::new(AnyPeer)),
            refusals: watch::Sender::new(None),
            joined: AtomicBool::new(false),
        })
    }

    /// Notes that start-up has joined the cluster.
    pub fn mark_joined(&self) {
        self.joined.store(true, Ordering::Release);
    }

    /// Whether start-up has joined the cluster.
    pub fn is_joined(&self) -> bool {
        self.joined.load(Ordering::Acquire)
    }

    /// This node's id.
    pub fn node_id(&self) -> NodeId {
        self.node_id
    }

    /// The voters.
    pub fn voters(&self) -> &Voters {
        &self.voters
    }

    /// The cluster id, once known.
    pub fn cluster_id(&self) -> Option<String> {
        self.cluster_id.read().clone()
    }

    /// Adopts the cluster's id (committed in the metadata).
    pub fn set_cluster_id(&self, id: String) {
        *self.cluster_id.write() = Some(id);
    }

    /// Adds the check of peers' incarnations.
    pub fn set_peer_check(&self, check: Arc<dyn PeerCheck>) {
        *self.check.write() = check;
    }

    /// The refusals of handshakes this node started, latest first.
    pub fn refusals(&self) -> watch::Receiver<Option<Refusal>> {
        self.refusals.subscribe()
    }

    /// Notes that a handshake with `peer`, started by this node, was refused.
    pub fn note_refusal(&self, peer: NodeId, reason: String) {
        self.refusals.send_replace(Some(Refusal { peer, reason }));
    }

    /// What this node says to (or answers) node `to`.
    pub fn hello(&self, to: NodeId) -> Hello {
        Hello {
            from: self.node_id,
            to,
            incarnation: self.incarnation,
            cluster_id: self.cluster_id(),
            voters: self.voters.to_string(),
        }
    }

    /// Checks a connecting node's handshake.
    pub fn check_caller(&self, hello: &Hello) -> Result<(), String> {
        if hello.to != self.node_id {
            return Err(format!(
                "node {} reached node {} while trying to reach node {}: the addresses in \
                 --voters are wrong",
                hello.from, self.node_id, hello.to
            ));
        }
        self.check_peer(hello)?;
        let check = self.check.read().clone();
        check.check_caller(hello.from)
    }

    /// Checks the handshake answer of the node this node called as `to`.
    pub fn check_answer(&self, to: NodeId, hello: &Hello) -> Result<(), String> {
        if hello.from != to {
            return Err(format!(
                "node {} reached node {} while trying to reach node {to}: the addresses in \
                 --voters are wrong",
                self.node_id, hello.from
            ));
        }
        self.check_peer(hello)
    }

    /// The checks both sides make of each other. A node outside the voters is a broker
    /// that joins (or joined) the quorum as a learner: it is let in like a voter, as long
    /// as it names the same voters, is of the same cluster, and does not reuse a node id.
    fn check_peer(&self, peer: &Hello) -> Result<(), String> {
        let me = self.node_id;
        if peer.voters != self.voters.to_string() {
            return Err(format!(
                "node {me} runs with --voters {} but node {} with --voters {}: every node \
                 needs the same --voters",
                self.voters, peer.from, peer.voters
            ));
        }
        if let (Some(mine), Some(theirs)) = (self.cluster_id(), &peer.cluster_id)
            && mine != *theirs
        {
            return Err(format!(
                "node {me} is in cluster {mine} but node {} is in cluster {theirs}: a data \
                 directory of another cluster",
                peer.from
            ));
        }
        let check = self.check.read().clone();
        check.check(peer.from, peer.incarnation)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(id: NodeId, voters: &str, cluster: Option<&str>) -> Arc<LocalNode> {
        LocalNode::new(
            id,
            Uuid::from_u128(id as u128),
            voters.parse().unwrap(),
            cluster.map(String::from),
        )
    }

    #[test]
    fn handshakes_round_trip_and_garbage_is_not_one() {
        let hello = node(1, "1@a:1,2@b:2", Some("c")).hello(2);
        let mut body = vec![HELLO_KIND];
        body.extend(encode(&hello));
        assert_eq!(decode::<Hello>(&body).unwrap(), hello);
        assert_eq!(
            decode::<Hello>(b"\x00GET / HTTP/1.1").unwrap_err(),
            "not a Sluice cluster handshake"
        );
        let mut bad = vec![HELLO_KIND];
        bad.extend_from_slice(MAGIC);
        bad.extend_from_slice(b"{");
        assert!(
            decode::<Hello>(&bad)
                .unwrap_err()
                .starts_with("malformed handshake")
        );
    }

    #[test]
    fn peers_with_other_voters_clusters_or_targets_are_refused() {
        let voters = "1@a:1,2@b:2,3@c:3";
        let one = node(1, voters, Some("x"));
        assert_eq!(
            one.check_caller(&node(2, voters, Some("x")).hello(1)),
            Ok(())
        );
        assert_eq!(one.check_caller(&node(2, voters, None).hello(1)), Ok(()));
        assert_eq!(
            one.check_caller(&node(2, voters, None).hello(3))
                .unwrap_err(),
            "node 2 reached node 1 while trying to reach node 3: the addresses in --voters \
             are wrong"
        );
        assert_eq!(
            one.check_answer(3, &node(2, voters, None).hello(1))
                .unwrap_err(),
            "node 1 reached node 2 while trying to reach node 3: the addresses in --voters \
             are wrong"
        );
        assert_eq!(
            one.check_caller(&node(2, "1@a:1,2@b:2,4@d:4", None).hello(1))
                .unwrap_err(),
            "node 1 runs with --voters 1@a:1,2@b:2,3@c:3 but node 2 with --voters \
             1@a:1,2@b:2,4@d:4: every node needs the same --voters"
        );
        // A node outside the voters (a broker joining as a learner) is let in.
        assert_eq!(one.check_caller(&node(4, voters, None).hello(1)), Ok(()));
        assert_eq!(
            one.check_caller(&node(2, voters, Some("y")).hello(1))
                .unwrap_err(),
            "node 1 is in cluster x but node 2 is in cluster y: a data directory of another \
             cluster"
        );
        struct Registered;
        impl PeerCheck for Registered {
            fn check(&self, node: NodeId, incarnation: Uuid) -> Result<(), String> {
                (incarnation == Uuid::from_u128(node as u128))
                    .then_some(())
                    .ok_or_else(|| "another incarnation".to_string())
            }
        }
        one.set_peer_check(Arc::new(Registered));
        assert_eq!(
            one.check_caller(&node(2, voters, Some("x")).hello(1)),
            Ok(())
        );
        let wiped = LocalNode::new(2, Uuid::from_u128(99), voters.parse().unwrap(), None);
        assert_eq!(
            one.check_caller(&wiped.hello(1)).unwrap_err(),
            "another incarnation"
        );
    }

    /// A removed voter is refused when it calls, but what it answers is not refused: a
    /// node that starts probes every voter, and a removed one must not end its start.
    #[test]
    fn a_refused_caller_is_refused_only_as_a_caller() {
        struct Removed(NodeId);
        impl PeerCheck for Removed {
            fn check(&self, _: NodeId, _: Uuid) -> Result<(), String> {
                Ok(())
            }
            fn check_caller(&self, node: NodeId) -> Result<(), String> {
                (node != self.0)
                    .then_some(())
                    .ok_or_else(|| format!("node {node} was removed"))
            }
        }
        let voters = "1@a:1,2@b:2,3@c:3";
        let one = node(1, voters, Some("x"));
        one.set_peer_check(Arc::new(Removed(3)));
        let three = node(3, voters, Some("x"));
        assert_eq!(
            one.check_caller(&three.hello(1)).unwrap_err(),
            "node 3 was removed"
        );
        assert_eq!(one.check_answer(3, &three.hello(1)), Ok(()));
        assert_eq!(
            one.check_caller(&node(2, voters, Some("x")).hello(1)),
            Ok(())
        );
    }
}

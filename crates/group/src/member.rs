//! One member of a classic group and the requests it has parked.

use std::collections::HashSet;

use bytes::Bytes;
use kafka_protocol::messages::{JoinGroupResponse, SyncGroupResponse};
use tokio::sync::oneshot;

/// One protocol (assignor) a member supports, with its metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Protocol {
    pub name: String,
    pub metadata: Bytes,
}

/// A member of a classic group.
///
/// A member "awaits join" while its JoinGroup response is held back for the
/// rebalance, and "awaits sync" while its SyncGroup response waits for the
/// leader's assignment; the parked responses are the oneshot senders below.
#[derive(Debug)]
pub(crate) struct Member {
    pub id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout_ms: i32,
    pub session_timeout_ms: i32,
    pub protocol_type: String,
    /// Supported protocols in the member's order of preference.
    pub protocols: Vec<Protocol>,
    pub assignment: Bytes,
    pub join_waiter: Option<oneshot::Sender<JoinGroupResponse>>,
    pub sync_waiter: Option<oneshot::Sender<SyncGroupResponse>>,
    /// Joined for the first time and has not yet received a JoinGroup
    /// response. Such members can expire while parked in a rebalance.
    pub is_new: bool,
}

impl Member {
    pub fn is_awaiting_join(&self) -> bool {
        self.join_waiter.is_some()
    }

    pub fn is_awaiting_sync(&self) -> bool {
        self.sync_waiter.is_some()
    }

    pub fn is_static(&self) -> bool {
        self.instance_id.is_some()
    }

    /// Whether a session-timeout expiry should be ignored: a member parked in
    /// a rebalance cannot heartbeat, so waiting counts as alive — except for
    /// new members, which Kafka expires even while they wait.
    pub fn has_satisfied_heartbeat(&self) -> bool {
        !self.is_new && (self.is_awaiting_join() || self.is_awaiting_sync())
    }

    /// Same protocols with the same metadata, in the same order.
    pub fn matches(&self, protocols: &[Protocol]) -> bool {
        self.protocols == protocols
    }

    pub fn supports(&self, protocol: &str) -> bool {
        self.protocols.iter().any(|p| p.name == protocol)
    }

    /// The member's metadata for `protocol` (empty if it does not support it).
    pub fn metadata(&self, protocol: &str) -> Bytes {
        self.protocols
            .iter()
            .find(|p| p.name == protocol)
            .map(|p| p.metadata.clone())
            .unwrap_or_default()
    }

    /// The member's vote: its most preferred protocol among `candidates`.
    pub fn vote<'a>(&'a self, candidates: &HashSet<&str>) -> Option<&'a str> {
        self.protocols
            .iter()
            .map(|p| p.name.as_str())
            .find(|name| candidates.contains(name))
    }
}

/// Protocols of a JoinGroup request, de-duplicated by name (the first entry
/// wins), since a protocol counts once towards the group's common set.
pub(crate) fn protocols_from_request(
    protocols: &[kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol],
) -> Vec<Protocol> {
    let mut out: Vec<Protocol> = Vec::with_capacity(protocols.len());
    for p in protocols {
        if !out.iter().any(|q| q.name == p.name.as_str()) {
            out.push(Protocol {
                name: p.name.as_str().to_owned(),
                metadata: p.metadata.clone(),
            });
        }
    }
    out
}

//! The metadata quorum's openraft types: what an entry carries (a batch of metadata
//! records) and what applying it answers.

use std::io::Cursor;

use serde::{Deserialize, Serialize};
use sluice_metadata::{MetadataRecord, RecordConflict};
use uuid::Uuid;

use crate::transport::NodeId;

openraft::declare_raft_types!(
    /// The quorum's openraft type configuration.
    pub TypeConfig:
        D = Batch,
        R = BatchOutcome,
        NodeId = u64,
        Node = openraft::BasicNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);

/// openraft's id of a log entry.
pub type LogId = openraft::LogId<u64>;
/// openraft's vote.
pub type Vote = openraft::Vote<u64>;
/// One entry of the quorum's log.
pub type Entry = openraft::Entry<TypeConfig>;
/// The membership as stored with the log id that set it.
pub type StoredMembership = openraft::StoredMembership<u64, openraft::BasicNode>;
/// openraft's storage error.
pub type StorageError = openraft::StorageError<u64>;
/// A running openraft node of this quorum.
pub type Raft = openraft::Raft<TypeConfig>;

/// One proposal: records decided together, committed and applied as one (or refused as
/// one). The id lets a proposer retry after losing the leader's answer without the batch
/// applying twice.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Batch {
    /// Unique per proposal.
    pub id: Uuid,
    /// The records; empty for a barrier (a commit that only waits for what came before).
    pub records: Vec<MetadataRecord>,
    /// For a controller's decision, the quorum term its controller led in: the batch
    /// applies only if the leader of that term commits it. A controller paused past its
    /// leadership decides from a stale view when it resumes; its batch, forwarded to the
    /// new leader, is refused instead of overriding the new controller. (Absent in logs
    /// written before it existed.)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub controller_term: Option<u64>,
}

/// What applying an entry did: the batch applied, or the conflict that kept it out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchOutcome(pub Result<(), RecordConflict>);

/// openraft's id for node `id` (node ids are never negative: the settings refuse them).
pub fn raft_id(id: NodeId) -> u64 {
    u64::try_from(id).unwrap_or(0)
}

/// The node id of openraft's `id`.
pub fn node_id(id: u64) -> NodeId {
    NodeId::try_from(id).unwrap_or(NodeId::MAX)
}

/// The quorum leader `metrics` name, unless it is no member of the membership they hold.
/// openraft 0.9 leaves a removed leader's committed vote in place: the removed node itself
/// and the followers that last heard from it would go on naming it (and forwarding to it)
/// until the remaining voters elect another one; a leader is always a member of its own
/// membership, so one outside it leads no more.
pub fn current_leader(metrics: &openraft::RaftMetrics<u64, openraft::BasicNode>) -> Option<u64> {
    metrics.current_leader.filter(|leader| {
        metrics
            .membership_config
            .membership()
            .get_node(leader)
            .is_some()
    })
}

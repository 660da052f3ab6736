//! What the log says about a group, as values that compare: for checking
//! that live writes and a reload from the log end in the same state, and for
//! looking at a coordinator's durable state when debugging.

use std::collections::BTreeMap;

use sluice_protocol::model::TopicPartition;

use crate::group::Group;
use crate::offsets::OffsetAndMetadata;
use crate::records::{GroupMetadataValue, OffsetCommitValue};

/// The durable state of one group: what replaying its partition rebuilds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupImage {
    /// The last membership snapshot written: generation, protocol, leader
    /// and members with their assignments. `None` for a group that only
    /// ever had offsets (a "simple" group).
    pub snapshot: Option<GroupMetadataValue>,
    /// Committed offsets.
    pub offsets: BTreeMap<TopicPartition, OffsetCommitValue>,
    /// Offsets of transactions not ended yet, by producer id.
    pub transactional_offsets: BTreeMap<i64, BTreeMap<TopicPartition, OffsetCommitValue>>,
}

impl GroupImage {
    pub(crate) fn of(g: &Group) -> Self {
        let values = |offsets: &BTreeMap<TopicPartition, OffsetAndMetadata>| {
            offsets
                .iter()
                .map(|(tp, o)| (tp.clone(), o.to_value()))
                .collect()
        };
        Self {
            snapshot: g.snapshot.clone(),
            offsets: g
                .offsets
                .iter()
                .map(|(tp, o)| (tp.clone(), o.to_value()))
                .collect(),
            transactional_offsets: g
                .offsets
                .transactional()
                .iter()
                .map(|(pid, offsets)| (*pid, values(offsets)))
                .collect(),
        }
    }
}

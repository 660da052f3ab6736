//! A partition's role on this node, after Kafka's `Partition` (leader and ISR state) and
//! Redpanda's partition proxy: whether this node leads the partition or follows its
//! leader, at which leader epoch, and — for a leader — which replicas are in sync and how
//! far each has replicated, from which the high watermark follows.
//!
//! On one node every partition is led here with an ISR of this node alone, so the high
//! watermark is the log end offset; replication only has to feed follower end offsets in.

use std::collections::BTreeMap;

use sluice_protocol::model::LeaderEpoch;

/// What this node does for a partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PartitionRole {
    /// This node leads: produce appends here, fetches read here.
    Leader(LeaderState),
    /// Another node leads; this one copies its log (with replication).
    Follower(FollowerState),
}

impl PartitionRole {
    /// The only replica of a single-node partition: leader at `epoch`, ISR = this node.
    pub fn sole_leader(local: i32, epoch: LeaderEpoch, log_end: i64) -> Self {
        PartitionRole::Leader(LeaderState::new(local, epoch, vec![local], log_end))
    }

    /// The leader epoch this node knows for the partition.
    pub fn leader_epoch(&self) -> LeaderEpoch {
        match self {
            PartitionRole::Leader(l) => l.epoch,
            PartitionRole::Follower(f) => f.epoch,
        }
    }

    /// The high watermark: what consumers may read.
    pub fn high_watermark(&self) -> i64 {
        match self {
            PartitionRole::Leader(l) => l.high_watermark,
            PartitionRole::Follower(f) => f.high_watermark,
        }
    }

    /// Whether this node leads the partition.
    pub fn is_leader(&self) -> bool {
        matches!(self, PartitionRole::Leader(_))
    }
}

/// A leader's view of its replicas.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaderState {
    /// This node's id.
    local: i32,
    /// The epoch of this leadership.
    pub epoch: LeaderEpoch,
    /// The in-sync replicas, this node included.
    pub isr: Vec<i32>,
    /// How far each other replica has fetched (its log end offset).
    follower_end_offsets: BTreeMap<i32, i64>,
    /// Never moves backwards while this node leads (Kafka's `maybeIncrementLeaderHW`).
    high_watermark: i64,
}

impl LeaderState {
    /// Leadership at `epoch` with `isr`, starting from the high watermark `high_watermark`.
    pub fn new(local: i32, epoch: LeaderEpoch, isr: Vec<i32>, high_watermark: i64) -> Self {
        Self {
            local,
            epoch,
            isr,
            follower_end_offsets: BTreeMap::new(),
            high_watermark,
        }
    }

    /// Moves the high watermark to the smallest log end offset of the in-sync replicas
    /// (this node's being `local_log_end`), if that is higher; returns whether it moved.
    pub fn advance_high_watermark(&mut self, local_log_end: i64) -> bool {
        let candidate = self
            .isr
            .iter()
            .filter(|&&node| node != self.local)
            .map(|node| self.follower_end_offsets.get(node).copied().unwrap_or(0))
            .fold(local_log_end, i64::min);
        if candidate > self.high_watermark {
            self.high_watermark = candidate;
            true
        } else {
            false
        }
    }
}

/// A follower's view of its leader.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FollowerState {
    /// The leader's node id.
    pub leader: i32,
    /// The leader epoch followed.
    pub epoch: LeaderEpoch,
    /// The high watermark the leader last reported.
    pub high_watermark: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sole_leader_s_high_watermark_is_its_log_end() {
        let mut role = PartitionRole::sole_leader(1, LeaderEpoch(0), 5);
        assert_eq!(role.high_watermark(), 5);
        if let PartitionRole::Leader(l) = &mut role {
            assert!(l.advance_high_watermark(9));
            assert!(!l.advance_high_watermark(9));
        }
        assert_eq!(role.high_watermark(), 9);
        assert_eq!(role.leader_epoch(), LeaderEpoch(0));
    }

    #[test]
    fn the_high_watermark_waits_for_the_slowest_in_sync_replica() {
        let mut l = LeaderState::new(1, LeaderEpoch(3), vec![1, 2, 3], 0);
        l.follower_end_offsets.insert(2, 7);
        l.follower_end_offsets.insert(3, 4);
        assert!(l.advance_high_watermark(10));
        assert_eq!(l.high_watermark, 4);
        // Never backwards, even if a replica reports less.
        l.follower_end_offsets.insert(3, 2);
        assert!(!l.advance_high_watermark(10));
        assert_eq!(l.high_watermark, 4);
    }
}

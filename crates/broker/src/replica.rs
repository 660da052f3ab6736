//! A partition's role on this node, after Kafka's `Partition` (leader and ISR state) and
//! Redpanda's partition proxy: whether this node leads the partition or follows its
//! leader, at which leader epoch, and — for a leader — which replicas are in sync and how
//! far each has replicated, from which the high watermark follows.
//!
//! Kafka's rules (core/src/main/scala/kafka/cluster/Partition.scala):
//! - the high watermark is the smallest log end offset among the in-sync replicas, never
//!   moves backwards while this node leads (`maybeIncrementLeaderHW`), and does not move
//!   at all while fewer replicas than `min(min.insync.replicas, replicas)` are in sync
//!   (KAFKA-15583);
//! - a follower is caught up when its log end reaches the leader's (`lastCaughtUpTime`); it
//!   leaves the ISR after `replica.lag.time.max.ms` without catching up, and joins it when
//!   its log end reaches both the high watermark and the start of this leadership's epoch
//!   (`isFollowerInSync`);
//! - a follower's high watermark is the leader's, capped by its own log end.
//!
//! On one node every partition is led here with an ISR of this node alone, so the high
//! watermark is the log end offset.

use std::collections::BTreeMap;

use sluice_protocol::model::LeaderEpoch;

/// What this node does for a partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PartitionRole {
    /// This node leads: produce appends here, fetches read here.
    Leader(LeaderState),
    /// Another node leads; this one copies its log.
    Follower(FollowerState),
}

impl PartitionRole {
    /// The only replica of a single-node partition: leader at `epoch`, ISR = this node.
    pub fn sole_leader(local: i32, epoch: LeaderEpoch, log_end: i64) -> Self {
        let mut leader =
            LeaderState::new(local, epoch, vec![local], vec![local], 1, log_end, log_end);
        leader.advance_high_watermark(log_end);
        PartitionRole::Leader(leader)
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

/// How far a follower has replicated, as its fetches tell the leader.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FollowerProgress {
    /// Its log end offset (what it asked to fetch from); -1 until it first fetches.
    pub log_end_offset: i64,
    /// When its log end last reached the leader's (ms since the epoch), or when this
    /// leadership started.
    pub last_caught_up_ms: i64,
    /// The leader's log end and the time at its previous fetch: a follower that reaches
    /// where the leader ended at its last fetch was caught up then, which keeps a follower
    /// of a partition under constant load in sync (Kafka's `lastFetchLeaderLogEndOffset`).
    last_fetch_leader_log_end: i64,
    last_fetch_ms: i64,
}

/// A leader's view of its replicas.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaderState {
    /// This node's id.
    local: i32,
    /// The epoch of this leadership.
    pub epoch: LeaderEpoch,
    /// Every replica, this node included.
    pub replicas: Vec<i32>,
    /// The replicas a reassignment is adding (among `replicas`).
    pub adding_replicas: Vec<i32>,
    /// The in-sync replicas, this node included.
    pub isr: Vec<i32>,
    /// `min.insync.replicas` of the topic.
    pub min_insync_replicas: usize,
    /// Where this leadership's epoch starts (the log end when it began): a follower must
    /// reach it to join the ISR.
    pub epoch_start_offset: i64,
    followers: BTreeMap<i32, FollowerProgress>,
    /// An ISR this leader proposed and the quorum has not committed yet. Until it is, the
    /// high watermark waits for the replicas of both (Kafka's "maximal ISR", KIP-497): a
    /// joining replica must hold every record below the high watermark once it is in.
    pending_isr: Option<Vec<i32>>,
    /// Never moves backwards while this node leads (Kafka's `maybeIncrementLeaderHW`).
    high_watermark: i64,
}

impl LeaderState {
    /// Leadership at `epoch` over `replicas` with `isr`, begun with the log ending at
    /// `log_end`, the high watermark starting at `high_watermark` (what this node knew as
    /// a follower, or had checkpointed).
    pub fn new(
        local: i32,
        epoch: LeaderEpoch,
        replicas: Vec<i32>,
        isr: Vec<i32>,
        min_insync_replicas: usize,
        log_end: i64,
        high_watermark: i64,
    ) -> Self {
        let followers = replicas
            .iter()
            .filter(|&&r| r != local)
            .map(|&r| {
                let progress = FollowerProgress {
                    log_end_offset: -1,
                    last_caught_up_ms: 0,
                    last_fetch_leader_log_end: -1,
                    last_fetch_ms: 0,
                };
                (r, progress)
            })
            .collect();
        Self {
            local,
            epoch,
            replicas,
            adding_replicas: Vec::new(),
            isr,
            min_insync_replicas,
            epoch_start_offset: log_end,
            followers,
            pending_isr: None,
            high_watermark: high_watermark.min(log_end),
        }
    }

    /// The replication factor the partition is meant to have: its replicas without those
    /// a reassignment is adding (Kafka's `AssignmentState.replicationFactor`), which a
    /// partition is under-replicated against.
    pub fn replication_factor(&self) -> usize {
        self.replicas
            .iter()
            .filter(|r| !self.adding_replicas.contains(r))
            .count()
    }

    /// Takes the partition's replicas as they are now, within this leadership (a
    /// reassignment adds or removes some; `adding` are those it adds): a new follower is
    /// tracked from `now_ms` on, as if this leadership began then; a replica no longer
    /// there is forgotten.
    pub fn set_replicas(&mut self, replicas: Vec<i32>, adding: Vec<i32>, now_ms: i64) {
        self.adding_replicas = adding;
        self.followers.retain(|r, _| replicas.contains(r));
        for &replica in &replicas {
            if replica != self.local {
                self.followers.entry(replica).or_insert(FollowerProgress {
                    log_end_offset: -1,
                    last_caught_up_ms: now_ms,
                    last_fetch_leader_log_end: -1,
                    last_fetch_ms: 0,
                });
            }
        }
        self.replicas = replicas;
    }

    /// Starts the followers' catch-up clocks at `now_ms` (a new leadership gives every
    /// follower `replica.lag.time.max.ms` before it can be dropped from the ISR).
    pub fn start_clocks(&mut self, now_ms: i64) {
        for progress in self.followers.values_mut() {
            progress.last_caught_up_ms = now_ms;
        }
    }

    /// The fewest in-sync replicas acks=all needs (Kafka 3.7+: `min.insync.replicas`
    /// capped by the replica count).
    pub fn effective_min_isr(&self) -> usize {
        self.min_insync_replicas.min(self.replicas.len()).max(1)
    }

    /// Whether enough replicas are in sync for acks=all.
    pub fn has_min_isr(&self) -> bool {
        self.isr.len() >= self.effective_min_isr()
    }

    /// A follower's progress, if `replica` is one.
    pub fn follower(&self, replica: i32) -> Option<FollowerProgress> {
        self.followers.get(&replica).copied()
    }

    /// Records a fetch of `replica` from `fetch_offset` (its log end) when the leader's log
    /// ended at `leader_log_end`; returns whether the high watermark moved.
    pub fn record_fetch(
        &mut self,
        replica: i32,
        fetch_offset: i64,
        leader_log_end: i64,
        now_ms: i64,
    ) -> bool {
        if let Some(progress) = self.followers.get_mut(&replica) {
            progress.log_end_offset = fetch_offset;
            if fetch_offset >= leader_log_end {
                progress.last_caught_up_ms = progress.last_caught_up_ms.max(now_ms);
            } else if fetch_offset >= progress.last_fetch_leader_log_end {
                progress.last_caught_up_ms = progress.last_caught_up_ms.max(progress.last_fetch_ms);
            }
            progress.last_fetch_leader_log_end = leader_log_end;
            progress.last_fetch_ms = now_ms;
        }
        self.advance_high_watermark(leader_log_end)
    }

    /// Moves the high watermark to the smallest log end offset of the in-sync replicas
    /// (this node's being `local_log_end`), if that is higher and enough replicas are in
    /// sync; returns whether it moved.
    pub fn advance_high_watermark(&mut self, local_log_end: i64) -> bool {
        if !self.has_min_isr() {
            return false;
        }
        let pending = self.pending_isr.iter().flatten();
        let candidate = self
            .isr
            .iter()
            .chain(pending)
            .filter(|&&node| node != self.local)
            .map(|node| self.followers.get(node).map_or(-1, |p| p.log_end_offset))
            .fold(local_log_end, i64::min);
        if candidate > self.high_watermark {
            self.high_watermark = candidate;
            true
        } else {
            false
        }
    }

    /// The ISR this leader would ask for now: followers in the ISR that have not caught up
    /// within `max_lag_ms` leave it; followers out of it whose log end reached the high
    /// watermark and this epoch's start join it. `None` when it would not change, or while
    /// an earlier proposal is pending (one at a time, as Kafka's `AlterPartition`).
    pub fn proposed_isr(&self, now_ms: i64, max_lag_ms: i64) -> Option<Vec<i32>> {
        if self.pending_isr.is_some() {
            return None;
        }
        let mut isr: Vec<i32> =
            self.isr
                .iter()
                .copied()
                .filter(|&r| {
                    r == self.local
                        || self.followers.get(&r).is_some_and(|p| {
                            now_ms.saturating_sub(p.last_caught_up_ms) <= max_lag_ms
                        })
                })
                .collect();
        // Joining is judged against the ISR as it is (Kafka's `maybeExpandIsr`), so a
        // replica dropped above is not taken back in the same step.
        for (&replica, progress) in &self.followers {
            let caught_up = progress.log_end_offset >= self.high_watermark
                && progress.log_end_offset >= self.epoch_start_offset;
            if !self.isr.contains(&replica) && caught_up {
                isr.push(replica);
            }
        }
        isr.sort_unstable();
        let mut current = self.isr.clone();
        current.sort_unstable();
        (isr != current).then_some(isr)
    }

    /// The high watermark.
    pub fn high_watermark_value(&self) -> i64 {
        self.high_watermark
    }

    /// Takes a committed ISR (after this leader's own proposal, or the controller's); any
    /// pending proposal is settled by it.
    pub fn set_isr(&mut self, isr: Vec<i32>) {
        self.isr = isr;
        self.pending_isr = None;
    }

    /// Notes an ISR proposal on its way to the quorum (see `pending_isr`).
    pub fn set_pending_isr(&mut self, isr: Vec<i32>) {
        self.pending_isr = Some(isr);
    }

    /// Forgets a pending proposal the quorum refused or never committed, so that the next
    /// check proposes again from the committed ISR.
    pub fn clear_pending_isr(&mut self) {
        self.pending_isr = None;
    }
}

/// A follower's view of its leader.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FollowerState {
    /// The leader's node id (-1: none).
    pub leader: i32,
    /// The leader epoch followed.
    pub epoch: LeaderEpoch,
    /// The leader's high watermark, capped by this replica's log end.
    pub high_watermark: i64,
}

impl FollowerState {
    /// Takes the high watermark a fetch response reported, capped by this log's end.
    pub fn learn_high_watermark(&mut self, leader_high_watermark: i64, log_end: i64) {
        self.high_watermark = leader_high_watermark.min(log_end);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn three_replicas(min_isr: usize) -> LeaderState {
        let mut l = LeaderState::new(
            1,
            LeaderEpoch(3),
            vec![1, 2, 3],
            vec![1, 2, 3],
            min_isr,
            10,
            10,
        );
        l.start_clocks(0);
        l
    }

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
        let mut l = three_replicas(1);
        assert!(
            !l.record_fetch(2, 17, 20, 1),
            "replica 3 has not fetched yet"
        );
        assert!(l.record_fetch(3, 14, 20, 1));
        assert_eq!(l.high_watermark, 14);
        // Never backwards, even if a replica reports less.
        assert!(!l.record_fetch(3, 12, 20, 2));
        assert_eq!(l.high_watermark, 14);
    }

    #[test]
    fn the_high_watermark_stops_below_min_insync_replicas() {
        let mut l = three_replicas(2);
        l.set_isr(vec![1]);
        assert!(!l.has_min_isr());
        assert!(!l.record_fetch(2, 20, 20, 1), "one in sync, two required");
        l.set_isr(vec![1, 2]);
        assert!(l.record_fetch(2, 20, 20, 2));
        assert_eq!(l.high_watermark, 20);
        // min.insync.replicas above the replica count is capped by it (Kafka 3.7+).
        let capped = LeaderState::new(1, LeaderEpoch(0), vec![1], vec![1], 3, 5, 0);
        assert!(capped.has_min_isr());
    }

    #[test]
    fn lagging_followers_leave_the_isr_and_caught_up_ones_join() {
        let mut l = three_replicas(1);
        l.record_fetch(2, 20, 20, 1_000);
        l.record_fetch(3, 12, 20, 1_000);
        assert_eq!(l.proposed_isr(5_000, 10_000), None);
        // Replica 3 never caught up since the leadership began at 0.
        assert_eq!(l.proposed_isr(10_001, 10_000), Some(vec![1, 2]));
        l.set_isr(vec![1, 2]);
        // It rejoins once its log end reaches the high watermark and the epoch start.
        l.record_fetch(3, 20, 20, 11_000);
        assert_eq!(l.proposed_isr(11_000, 10_000), Some(vec![1, 2, 3]));
    }

    #[test]
    fn a_follower_that_reaches_the_leader_s_previous_end_stays_in_sync_under_load() {
        let mut l = three_replicas(1);
        // The leader's log keeps growing: the follower is never exactly at its end, but
        // each fetch reaches where the leader ended at the previous one.
        for step in 1..=20 {
            l.record_fetch(2, step * 10, step * 10 + 5, step * 1_000);
            l.record_fetch(3, step * 10 + 5, step * 10 + 5, step * 1_000);
        }
        assert_eq!(l.proposed_isr(20_000, 10_000), None);
        // A follower stuck at one offset falls behind and leaves.
        for step in 21..=40 {
            l.record_fetch(2, 200, step * 10 + 5, step * 1_000);
            l.record_fetch(3, step * 10 + 5, step * 10 + 5, step * 1_000);
        }
        assert_eq!(l.proposed_isr(40_000, 10_000), Some(vec![1, 3]));
    }

    #[test]
    fn a_joining_replica_holds_the_high_watermark_until_its_isr_is_committed() {
        let mut l = three_replicas(1);
        l.set_isr(vec![1, 2]);
        l.record_fetch(2, 20, 20, 1);
        assert_eq!(l.high_watermark, 20);
        l.record_fetch(3, 20, 20, 1);
        let proposed = l.proposed_isr(1, 10_000).unwrap();
        assert_eq!(proposed, vec![1, 2, 3]);
        l.set_pending_isr(proposed);
        assert_eq!(l.proposed_isr(1, 10_000), None, "one proposal at a time");
        // While the proposal is pending, replica 3 holds the high watermark too.
        l.record_fetch(2, 30, 30, 2);
        assert_eq!(l.high_watermark, 20);
        l.record_fetch(3, 30, 30, 2);
        assert_eq!(l.high_watermark, 30);
        l.set_isr(vec![1, 2, 3]);
        assert_eq!(l.proposed_isr(3, 10_000), None);
    }

    #[test]
    fn a_replica_added_within_a_leadership_is_followed_and_joins_once_caught_up() {
        let mut l = LeaderState::new(1, LeaderEpoch(3), vec![1, 2], vec![1, 2], 1, 10, 10);
        l.start_clocks(0);
        assert!(!l.record_fetch(3, 10, 10, 1), "3 is no replica yet");
        assert_eq!(l.follower(3), None);
        // A reassignment adds 3 (and will remove 2): the leader follows its progress.
        l.set_replicas(vec![3, 1, 2], vec![3], 5);
        assert_eq!(l.replication_factor(), 2, "3 is being added");
        assert_eq!(l.follower(3).map(|p| p.log_end_offset), Some(-1));
        l.record_fetch(2, 10, 10, 6);
        assert_eq!(l.proposed_isr(6, 10_000), None, "3 has not fetched yet");
        l.record_fetch(3, 4, 10, 6);
        assert_eq!(l.proposed_isr(6, 10_000), None, "3 is behind");
        // Replica 3 is not in the ISR, so it never holds the high watermark back.
        assert_eq!(l.high_watermark, 10);
        l.record_fetch(3, 10, 10, 7);
        assert_eq!(l.proposed_isr(7, 10_000), Some(vec![1, 2, 3]));
        // The reassignment completes: 2 is no replica any more and is forgotten.
        l.set_replicas(vec![3, 1], Vec::new(), 8);
        assert_eq!(l.replication_factor(), 2);
        assert_eq!(l.follower(2), None);
        assert_eq!(l.replicas, vec![3, 1]);
    }

    #[test]
    fn a_follower_high_watermark_is_capped_by_its_log_end() {
        let mut f = FollowerState {
            leader: 2,
            epoch: LeaderEpoch(1),
            high_watermark: 0,
        };
        f.learn_high_watermark(50, 30);
        assert_eq!(f.high_watermark, 30);
        f.learn_high_watermark(40, 45);
        assert_eq!(f.high_watermark, 40);
    }
}

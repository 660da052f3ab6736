//! Committed offsets of one group.
//!
//! Two views are kept: `committed` holds what is durable in
//! `__consumer_offsets` and is what OffsetFetch reads; `pending` counts the
//! commits handed to the log but not yet acknowledged. Kafka keeps the same
//! split (its `pendingOffsetCommits`), so that offset expiry never removes a
//! partition whose fresher commit is still in flight, and deletions also
//! tombstone partitions that are about to appear.
//!
//! Transactional offsets (TxnOffsetCommit) live in a third view, `txn`, per
//! producer id, until the transaction's COMMIT or ABORT marker is written to
//! `__consumer_offsets`. Every offset carries its position in the group's log
//! (`log_order`) so that, when a transaction commits, its offset replaces the
//! committed one only if it was written after it — the rule Kafka applies
//! with the record offsets of the two commits.

use std::collections::{BTreeMap, HashMap};

/// A committed offset as the coordinator keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OffsetAndMetadata {
    pub offset: i64,
    /// `None` when the client did not know the leader epoch (-1 on the wire).
    pub leader_epoch: Option<i32>,
    pub metadata: String,
    pub commit_timestamp_ms: i64,
    /// Only set by OffsetCommit v2-v4 with an explicit retention time.
    pub expire_timestamp_ms: Option<i64>,
    /// Position of the record in the group's log (see
    /// [`GroupOffsets::next_order`]); later writes have larger values.
    pub log_order: u64,
}

/// A transactional offset waiting for its transaction's marker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TxnOffset {
    pub offset: OffsetAndMetadata,
    /// The record is durable. A marker only completes durable offsets: one
    /// still being written lands after the marker, as it would on replay.
    pub durable: bool,
}

/// When an offset counts as expired, given how a group is used
/// (Kafka's `OffsetExpirationCondition`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ExpirationBase {
    /// Retention counts from when the group became Empty, or from the commit
    /// when that moment is unknown (group metadata written before Kafka 2.1).
    EmptySince(Option<i64>),
    /// Retention counts from the commit itself.
    CommitTimestamp,
}

/// Offsets of one group, by topic and partition.
#[derive(Debug, Default)]
pub(crate) struct GroupOffsets {
    committed: BTreeMap<String, BTreeMap<i32, OffsetAndMetadata>>,
    pending: HashMap<(String, i32), usize>,
    /// Transactional offsets by producer id, then (topic, partition).
    txn: BTreeMap<i64, BTreeMap<(String, i32), TxnOffset>>,
    /// The next `log_order` to hand out.
    next_order: u64,
}

impl GroupOffsets {
    pub fn get(&self, topic: &str, partition: i32) -> Option<&OffsetAndMetadata> {
        self.committed.get(topic).and_then(|p| p.get(&partition))
    }

    /// The log position of the next record written for this group. Records
    /// of one group reach the log in the order they are decided, so handing
    /// these out at decision time mirrors the log order.
    pub fn next_order(&mut self) -> u64 {
        self.next_order = self.next_order.wrapping_add(1);
        self.next_order
    }

    /// Makes `value` the committed offset unless a later-written one is
    /// already committed.
    pub fn put(&mut self, topic: &str, partition: i32, value: OffsetAndMetadata) {
        let partitions = self.committed.entry(topic.to_owned()).or_default();
        if partitions
            .get(&partition)
            .is_none_or(|current| current.log_order <= value.log_order)
        {
            partitions.insert(partition, value);
        }
    }

    pub fn remove(&mut self, topic: &str, partition: i32) {
        if let Some(partitions) = self.committed.get_mut(topic) {
            partitions.remove(&partition);
            if partitions.is_empty() {
                self.committed.remove(topic);
            }
        }
    }

    /// All committed offsets, ordered by topic then partition.
    pub fn iter(&self) -> impl Iterator<Item = (&str, i32, &OffsetAndMetadata)> {
        self.committed
            .iter()
            .flat_map(|(t, ps)| ps.iter().map(move |(p, o)| (t.as_str(), *p, o)))
    }

    /// Committed, in-flight or transactional offsets exist.
    pub fn has_offsets(&self) -> bool {
        !self.committed.is_empty() || !self.pending.is_empty() || !self.txn.is_empty()
    }

    /// A transaction has an offset for this partition that is not yet
    /// committed or aborted.
    pub fn has_txn_pending(&self, topic: &str, partition: i32) -> bool {
        let key = (topic.to_owned(), partition);
        self.txn.values().any(|offsets| offsets.contains_key(&key))
    }

    /// Records a transactional offset of `producer_id` (replacing an earlier
    /// one of the same producer for that partition).
    pub fn add_txn(
        &mut self,
        producer_id: i64,
        topic: &str,
        partition: i32,
        offset: OffsetAndMetadata,
        durable: bool,
    ) {
        self.txn
            .entry(producer_id)
            .or_default()
            .insert((topic.to_owned(), partition), TxnOffset { offset, durable });
    }

    /// The write of a transactional offset finished: on success it becomes
    /// durable, on failure it is forgotten. Does nothing if the offset was
    /// replaced or removed meanwhile.
    pub fn txn_written(
        &mut self,
        producer_id: i64,
        topic: &str,
        partition: i32,
        log_order: u64,
        ok: bool,
    ) {
        let Some(offsets) = self.txn.get_mut(&producer_id) else {
            return;
        };
        let key = (topic.to_owned(), partition);
        if offsets
            .get(&key)
            .is_none_or(|t| t.offset.log_order != log_order)
        {
            return;
        }
        if ok {
            if let Some(t) = offsets.get_mut(&key) {
                t.durable = true;
            }
        } else {
            offsets.remove(&key);
            if offsets.is_empty() {
                self.txn.remove(&producer_id);
            }
        }
    }

    /// The marker of `producer_id`'s transaction: on commit each durable
    /// offset becomes the committed one unless a non-transactional commit was
    /// written after it; on abort they are dropped. Offsets still being
    /// written stay pending (they follow the marker in the log). Returns
    /// whether anything was completed.
    pub fn complete_txn(&mut self, producer_id: i64, commit: bool) -> bool {
        let Some(offsets) = self.txn.remove(&producer_id) else {
            return false;
        };
        let mut still_pending = BTreeMap::new();
        let mut completed = false;
        for ((topic, partition), t) in offsets {
            if !t.durable {
                still_pending.insert((topic, partition), t);
                continue;
            }
            completed = true;
            if commit {
                self.put(&topic, partition, t.offset);
            }
        }
        if !still_pending.is_empty() {
            self.txn.insert(producer_id, still_pending);
        }
        completed
    }

    /// A tombstone written at `log_order` was applied: the committed offset
    /// goes, and so do transactional offsets written before the tombstone.
    pub fn delete(&mut self, topic: &str, partition: i32, log_order: u64) {
        self.remove(topic, partition);
        let key = (topic.to_owned(), partition);
        self.txn.retain(|_, offsets| {
            if offsets
                .get(&key)
                .is_some_and(|t| t.offset.log_order < log_order)
            {
                offsets.remove(&key);
            }
            !offsets.is_empty()
        });
    }

    pub fn has_committed(&self, topic: &str, partition: i32) -> bool {
        self.get(topic, partition).is_some()
    }

    pub fn is_pending(&self, topic: &str, partition: i32) -> bool {
        self.pending.contains_key(&(topic.to_owned(), partition))
    }

    pub fn add_pending(&mut self, topic: &str, partition: i32) {
        *self
            .pending
            .entry((topic.to_owned(), partition))
            .or_insert(0) += 1;
    }

    pub fn complete_pending(&mut self, topic: &str, partition: i32) {
        let key = (topic.to_owned(), partition);
        if let Some(count) = self.pending.get_mut(&key) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                self.pending.remove(&key);
            }
        }
    }

    /// Partitions of `topic` that are committed, in flight or transactional.
    pub fn partitions_of(&self, topic: &str) -> Vec<i32> {
        let mut out: Vec<i32> = self
            .committed
            .get(topic)
            .map(|p| p.keys().copied().collect())
            .unwrap_or_default();
        for (t, p) in self.pending.keys().chain(self.txn_keys()) {
            if t == topic && !out.contains(p) {
                out.push(*p);
            }
        }
        out.sort_unstable();
        out
    }

    fn txn_keys(&self) -> impl Iterator<Item = &(String, i32)> {
        self.txn.values().flat_map(|offsets| offsets.keys())
    }

    /// Every committed, in-flight or transactional partition (for deleting a
    /// whole group).
    pub fn all_partitions(&self) -> Vec<(String, i32)> {
        let mut out: Vec<(String, i32)> = self.iter().map(|(t, p, _)| (t.to_owned(), p)).collect();
        for key in self.pending.keys().chain(self.txn_keys()) {
            if !out.contains(key) {
                out.push(key.clone());
            }
        }
        out.sort();
        out
    }

    /// Partitions whose offsets have expired at `now_ms`, skipping topics for
    /// which `keep_topic` holds and partitions with a commit in flight or a
    /// pending transactional offset (as Kafka does). Returns the expired
    /// partitions and whether *all* offsets expired; never while a
    /// transaction has offsets in the group, so the group is kept.
    pub fn expired(
        &self,
        base: ExpirationBase,
        now_ms: i64,
        retention_ms: i64,
        keep_topic: impl Fn(&str) -> bool,
    ) -> (Vec<(String, i32)>, bool) {
        let mut expired = Vec::new();
        let mut all = self.pending.is_empty() && self.txn.is_empty();
        for (topic, partition, offset) in self.iter() {
            if keep_topic(topic)
                || self.is_pending(topic, partition)
                || self.has_txn_pending(topic, partition)
            {
                all = false;
                continue;
            }
            let is_expired = match offset.expire_timestamp_ms {
                // Old clients asked for an explicit per-commit retention.
                Some(expire) => now_ms >= expire,
                None => {
                    let since = match base {
                        ExpirationBase::EmptySince(Some(ts)) => ts,
                        ExpirationBase::EmptySince(None) | ExpirationBase::CommitTimestamp => {
                            offset.commit_timestamp_ms
                        }
                    };
                    now_ms.saturating_sub(since) >= retention_ms
                }
            };
            if is_expired {
                expired.push((topic.to_owned(), partition));
            } else {
                all = false;
            }
        }
        (expired, all)
    }
}

//! Committed offsets of one group.
//!
//! `committed` is what `__consumer_offsets` says and what OffsetFetch reads;
//! it changes only when a record is replayed (live, once durable, or while
//! loading). `in_flight` counts the offset writes handed to the log but not
//! yet durable, plain or transactional. Kafka keeps the same split (its
//! `pendingOffsetCommits`), so that offset expiry never removes a partition
//! whose fresher commit is still being written, and deletions also tombstone
//! partitions that are about to appear.
//!
//! Transactional offsets (TxnOffsetCommit) that are durable live in `txn`,
//! per producer id, until the transaction's COMMIT or ABORT marker is
//! replayed. Every offset carries its position in the group's log
//! (`log_order`, handed out in replay order, which is log order) so that,
//! when a transaction commits, its offset replaces the committed one only if
//! it was written after it: the rule Kafka applies with the record offsets of
//! the two commits.

use std::collections::{BTreeMap, HashMap};

use sluice_protocol::model::TopicPartition;

use crate::records::OffsetCommitValue;

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

impl OffsetAndMetadata {
    /// The offset a record read back from the log describes, at `log_order`.
    pub fn from_value(value: OffsetCommitValue, log_order: u64) -> Self {
        Self {
            offset: value.offset,
            leader_epoch: (value.leader_epoch != -1).then_some(value.leader_epoch),
            metadata: value.metadata,
            commit_timestamp_ms: value.commit_timestamp,
            expire_timestamp_ms: (value.expire_timestamp != -1).then_some(value.expire_timestamp),
            log_order,
        }
    }

    /// The record value describing this offset.
    pub fn to_value(&self) -> OffsetCommitValue {
        OffsetCommitValue {
            offset: self.offset,
            leader_epoch: self.leader_epoch.unwrap_or(-1),
            metadata: self.metadata.clone(),
            commit_timestamp: self.commit_timestamp_ms,
            expire_timestamp: self.expire_timestamp_ms.unwrap_or(-1),
        }
    }
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

/// Offsets of one group, by topic partition.
#[derive(Debug, Default)]
pub(crate) struct GroupOffsets {
    committed: BTreeMap<TopicPartition, OffsetAndMetadata>,
    in_flight: HashMap<TopicPartition, usize>,
    /// Durable transactional offsets by producer id.
    txn: BTreeMap<i64, BTreeMap<TopicPartition, OffsetAndMetadata>>,
    /// The last `log_order` handed out.
    next_order: u64,
}

impl GroupOffsets {
    pub fn get(&self, tp: &TopicPartition) -> Option<&OffsetAndMetadata> {
        self.committed.get(tp)
    }

    /// The log position of the record being replayed. Records are replayed
    /// in log order, so these increase with the log.
    pub fn next_order(&mut self) -> u64 {
        self.next_order = self.next_order.wrapping_add(1);
        self.next_order
    }

    /// Makes `value` the committed offset unless a later-written one is
    /// already committed.
    pub fn put(&mut self, tp: TopicPartition, value: OffsetAndMetadata) {
        if self
            .committed
            .get(&tp)
            .is_none_or(|current| current.log_order <= value.log_order)
        {
            self.committed.insert(tp, value);
        }
    }

    /// All committed offsets, ordered by topic then partition.
    pub fn iter(&self) -> impl Iterator<Item = (&TopicPartition, &OffsetAndMetadata)> {
        self.committed.iter()
    }

    /// Durable transactional offsets by producer id.
    pub fn transactional(&self) -> &BTreeMap<i64, BTreeMap<TopicPartition, OffsetAndMetadata>> {
        &self.txn
    }

    /// Committed, in-flight or transactional offsets exist.
    pub fn has_offsets(&self) -> bool {
        !self.committed.is_empty() || !self.in_flight.is_empty() || !self.txn.is_empty()
    }

    /// A transaction has a durable offset for this partition that is not yet
    /// committed or aborted.
    pub fn has_txn_pending(&self, tp: &TopicPartition) -> bool {
        self.txn.values().any(|offsets| offsets.contains_key(tp))
    }

    /// Records a durable transactional offset of `producer_id` (replacing an
    /// earlier one of the same producer for that partition).
    pub fn add_txn(&mut self, producer_id: i64, tp: TopicPartition, offset: OffsetAndMetadata) {
        self.txn.entry(producer_id).or_default().insert(tp, offset);
    }

    /// The marker of `producer_id`'s transaction: on commit each of its
    /// offsets becomes the committed one unless a non-transactional commit was
    /// written after it; on abort they are dropped. Offsets of the producer
    /// still being written are not here yet: they follow the marker in the
    /// log and wait for the next one. Returns whether anything was completed.
    pub fn complete_txn(&mut self, producer_id: i64, commit: bool) -> bool {
        let Some(offsets) = self.txn.remove(&producer_id) else {
            return false;
        };
        if commit {
            for (tp, offset) in offsets {
                self.put(tp, offset);
            }
        }
        true
    }

    /// A tombstone was replayed: the committed offset goes, and so do the
    /// transactional offsets of the partition (all written before it).
    pub fn delete(&mut self, tp: &TopicPartition) {
        self.committed.remove(tp);
        self.txn.retain(|_, offsets| {
            offsets.remove(tp);
            !offsets.is_empty()
        });
    }

    pub fn has_committed(&self, tp: &TopicPartition) -> bool {
        self.get(tp).is_some()
    }

    /// An offset of the partition is being written.
    pub fn is_in_flight(&self, tp: &TopicPartition) -> bool {
        self.in_flight.contains_key(tp)
    }

    /// An offset of the partition was handed to the log.
    pub fn start_write(&mut self, tp: &TopicPartition) {
        *self.in_flight.entry(tp.clone()).or_insert(0) += 1;
    }

    /// The write started by [`Self::start_write`] finished (durable or failed).
    pub fn finish_write(&mut self, tp: &TopicPartition) {
        if let Some(count) = self.in_flight.get_mut(tp) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                self.in_flight.remove(tp);
            }
        }
    }

    /// Partitions of `topic` that are committed, in flight or transactional.
    pub fn partitions_of(&self, topic: &str) -> Vec<i32> {
        let mut out: Vec<i32> = self
            .all_keys()
            .filter(|tp| tp.topic == topic)
            .map(|tp| tp.partition)
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    }

    fn all_keys(&self) -> impl Iterator<Item = &TopicPartition> {
        self.committed
            .keys()
            .chain(self.in_flight.keys())
            .chain(self.txn.values().flat_map(|offsets| offsets.keys()))
    }

    /// Every committed, in-flight or transactional partition (for deleting a
    /// whole group).
    pub fn all_partitions(&self) -> Vec<TopicPartition> {
        let mut out: Vec<TopicPartition> = self.all_keys().cloned().collect();
        out.sort();
        out.dedup();
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
    ) -> (Vec<TopicPartition>, bool) {
        let mut expired = Vec::new();
        let mut all = self.in_flight.is_empty() && self.txn.is_empty();
        for (tp, offset) in self.iter() {
            if keep_topic(&tp.topic) || self.is_in_flight(tp) || self.has_txn_pending(tp) {
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
                expired.push(tp.clone());
            } else {
                all = false;
            }
        }
        (expired, all)
    }
}

//! Committed offsets of one group.
//!
//! Two views are kept: `committed` holds what is durable in
//! `__consumer_offsets` and is what OffsetFetch reads; `pending` counts the
//! commits handed to the log but not yet acknowledged. Kafka keeps the same
//! split (its `pendingOffsetCommits`), so that offset expiry never removes a
//! partition whose fresher commit is still in flight, and deletions also
//! tombstone partitions that are about to appear.

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
}

impl GroupOffsets {
    pub fn get(&self, topic: &str, partition: i32) -> Option<&OffsetAndMetadata> {
        self.committed.get(topic).and_then(|p| p.get(&partition))
    }

    pub fn put(&mut self, topic: &str, partition: i32, value: OffsetAndMetadata) {
        self.committed
            .entry(topic.to_owned())
            .or_default()
            .insert(partition, value);
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

    /// Committed or in-flight offsets exist.
    pub fn has_offsets(&self) -> bool {
        !self.committed.is_empty() || !self.pending.is_empty()
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

    /// Partitions of `topic` that are committed or in flight.
    pub fn partitions_of(&self, topic: &str) -> Vec<i32> {
        let mut out: Vec<i32> = self
            .committed
            .get(topic)
            .map(|p| p.keys().copied().collect())
            .unwrap_or_default();
        for (t, p) in self.pending.keys() {
            if t == topic && !out.contains(p) {
                out.push(*p);
            }
        }
        out.sort_unstable();
        out
    }

    /// Every committed or in-flight partition (for deleting a whole group).
    pub fn all_partitions(&self) -> Vec<(String, i32)> {
        let mut out: Vec<(String, i32)> = self.iter().map(|(t, p, _)| (t.to_owned(), p)).collect();
        for key in self.pending.keys() {
            if !out.contains(key) {
                out.push(key.clone());
            }
        }
        out.sort();
        out
    }

    /// Partitions whose offsets have expired at `now_ms`, skipping topics for
    /// which `keep_topic` holds and partitions with a commit in flight.
    /// Returns the expired partitions and whether *all* offsets expired.
    pub fn expired(
        &self,
        base: ExpirationBase,
        now_ms: i64,
        retention_ms: i64,
        keep_topic: impl Fn(&str) -> bool,
    ) -> (Vec<(String, i32)>, bool) {
        let mut expired = Vec::new();
        let mut all = self.pending.is_empty();
        for (topic, partition, offset) in self.iter() {
            if keep_topic(topic) || self.is_pending(topic, partition) {
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

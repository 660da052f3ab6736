//! The leader-epoch cache of one partition (Kafka's `LeaderEpochFileCache`): for every
//! leader epoch with data in the log, the offset of its first batch. A follower asks the
//! leader for the end offset of its own latest epoch (OffsetForLeaderEpoch, or the diverging
//! epoch of a Fetch) and truncates to where the two logs agree.
//!
//! The cache changes when an append brings a new epoch and when the log is truncated at
//! either end. It is checkpointed in `leader-epoch-checkpoint`, in Kafka's text format:
//!
//! ```text
//! 0                  version
//! 2                  number of entries
//! 0 0                epoch, start offset
//! 3 1200
//! ```
//!
//! The checkpoint is written (and synced) before the recovery point is, at truncation and
//! on close, not on every new epoch: every batch header carries its epoch, so after a crash
//! the entries past the last recovery point are re-derived while the tail is scanned. What
//! the file holds is therefore complete below the recovery point, which is all recovery
//! needs.

use std::path::Path;

use crate::error::StorageError;
use crate::io::StorageEnv;

pub(crate) const LEADER_EPOCH_CHECKPOINT_FILE: &str = "leader-epoch-checkpoint";

/// Kafka's `UNDEFINED_EPOCH`: no epoch is known.
pub const UNDEFINED_EPOCH: i32 = -1;
/// Kafka's `UNDEFINED_EPOCH_OFFSET`: no end offset is known.
pub const UNDEFINED_EPOCH_OFFSET: i64 = -1;

const VERSION: &str = "0";
/// Far more than any partition sees (one entry per leader change with data).
const MAX_FILE_BYTES: u64 = 4 << 20;

/// A leader epoch and the offset of the first batch written in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EpochEntry {
    /// The leader epoch.
    pub epoch: i32,
    /// Offset of its first batch.
    pub start_offset: i64,
}

/// The leader epochs of a log, in increasing order of both epoch and start offset.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LeaderEpochCache {
    entries: Vec<EpochEntry>,
}

impl LeaderEpochCache {
    /// The entries, oldest first.
    pub fn entries(&self) -> &[EpochEntry] {
        &self.entries
    }

    /// The newest epoch with data, if any.
    pub fn latest_epoch(&self) -> Option<i32> {
        self.entries.last().map(|e| e.epoch)
    }

    /// Records that a batch of `epoch` starts at `start_offset`, as Kafka's `assign`: a
    /// new epoch (or an earlier start for the latest one) is added after removing the
    /// entries it contradicts (same or newer epoch, same or later start). Returns whether
    /// the cache changed. Negative values are ignored: such a batch has no epoch.
    pub(crate) fn assign(&mut self, epoch: i32, start_offset: i64) -> bool {
        if epoch < 0 || start_offset < 0 {
            return false;
        }
        let needed = self
            .entries
            .last()
            .is_none_or(|last| last.epoch != epoch || start_offset < last.start_offset);
        if !needed {
            return false;
        }
        while self
            .entries
            .last()
            .is_some_and(|last| last.epoch >= epoch || last.start_offset >= start_offset)
        {
            self.entries.pop();
        }
        self.entries.push(EpochEntry {
            epoch,
            start_offset,
        });
        true
    }

    /// Kafka's `endOffsetFor`: the largest epoch ≤ `requested` with data here, and where
    /// that epoch ends — the start of the next epoch, or `log_end_offset` for the latest.
    /// `(UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET)` when `requested` is undefined or newer
    /// than every epoch here. A `requested` older than every epoch here gives `requested`
    /// itself with the start of the first epoch after it (the data before that is gone).
    pub fn end_offset_for(&self, requested: i32, log_end_offset: i64) -> (i32, i64) {
        if requested == UNDEFINED_EPOCH {
            return (UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET);
        }
        if self.latest_epoch() == Some(requested) {
            return (requested, log_end_offset);
        }
        let Some(higher) = self.entries.iter().find(|e| e.epoch > requested) else {
            return (UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET);
        };
        match self.entries.iter().rev().find(|e| e.epoch <= requested) {
            Some(floor) => (floor.epoch, higher.start_offset),
            None => (requested, higher.start_offset),
        }
    }

    /// Removes the entries starting at or after `end_offset` (the log was cut there).
    /// Returns whether the cache changed.
    pub(crate) fn truncate_from_end(&mut self, end_offset: i64) -> bool {
        let keep = self
            .entries
            .partition_point(|e| e.start_offset < end_offset);
        let changed = keep < self.entries.len();
        self.entries.truncate(keep);
        changed
    }

    /// Forgets the epochs wholly below `start_offset` (the log start moved there): the
    /// last epoch starting at or before it now starts at it, as in Kafka. Returns whether
    /// the cache changed.
    pub(crate) fn truncate_from_start(&mut self, start_offset: i64) -> bool {
        let below = self
            .entries
            .partition_point(|e| e.start_offset <= start_offset);
        let Some(last_below) = below.checked_sub(1) else {
            return false;
        };
        let Some(&EpochEntry {
            epoch,
            start_offset: old_start,
        }) = self.entries.get(last_below)
        else {
            return false;
        };
        if last_below == 0 && old_start == start_offset {
            return false;
        }
        self.entries.drain(..last_below);
        if let Some(first) = self.entries.first_mut() {
            *first = EpochEntry {
                epoch,
                start_offset,
            };
        }
        true
    }

    /// Forgets every epoch.
    pub(crate) fn clear(&mut self) {
        self.entries.clear();
    }

    fn encode(&self) -> String {
        let mut out = format!("{VERSION}\n{}\n", self.entries.len());
        for e in &self.entries {
            out.push_str(&format!("{} {}\n", e.epoch, e.start_offset));
        }
        out
    }

    /// Parses a checkpoint file; `None` when it is malformed or its entries are not in
    /// strictly increasing order of epoch and start offset.
    fn decode(text: &str) -> Option<Self> {
        let mut lines = text.lines();
        if lines.next()? != VERSION {
            return None;
        }
        let count: usize = lines.next()?.trim().parse().ok()?;
        let mut cache = Self::default();
        for line in lines.by_ref().take(count) {
            let mut fields = line.split_whitespace();
            let epoch: i32 = fields.next()?.parse().ok()?;
            let start_offset: i64 = fields.next()?.parse().ok()?;
            let in_order = cache
                .entries
                .last()
                .is_none_or(|last| epoch > last.epoch && start_offset > last.start_offset);
            if fields.next().is_some() || epoch < 0 || start_offset < 0 || !in_order {
                return None;
            }
            cache.entries.push(EpochEntry {
                epoch,
                start_offset,
            });
        }
        if cache.entries.len() != count || lines.any(|l| !l.trim().is_empty()) {
            return None;
        }
        Some(cache)
    }

    /// Reads the checkpoint in `dir`; `Ok(None)` when it is absent, or unreadable (then
    /// with a warning: the caller rebuilds the cache from the log).
    pub(crate) fn read(env: &StorageEnv, dir: &Path) -> Result<Option<Self>, StorageError> {
        let path = dir.join(LEADER_EPOCH_CHECKPOINT_FILE);
        let bytes = match env.read_small_file(&path, MAX_FILE_BYTES) {
            Ok(Some(bytes)) => bytes,
            Ok(None) => return Ok(None),
            Err(e) if e.kind() == std::io::ErrorKind::InvalidData => Vec::new(),
            Err(e) => return Err(e.into()),
        };
        let cache = std::str::from_utf8(&bytes).ok().and_then(Self::decode);
        if cache.is_none() {
            tracing::warn!(path = %path.display(), "ignoring a malformed leader-epoch checkpoint; rebuilding it from the log");
        }
        Ok(cache)
    }

    /// Replaces the checkpoint in `dir` atomically and durably.
    pub(crate) fn write(&self, env: &StorageEnv, dir: &Path) -> Result<(), StorageError> {
        let path = dir.join(LEADER_EPOCH_CHECKPOINT_FILE);
        env.write_file_atomic(&path, self.encode().as_bytes(), true)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn cache(entries: &[(i32, i64)]) -> LeaderEpochCache {
        let mut c = LeaderEpochCache::default();
        for &(epoch, start) in entries {
            assert!(c.assign(epoch, start));
        }
        c
    }

    fn pairs(c: &LeaderEpochCache) -> Vec<(i32, i64)> {
        c.entries()
            .iter()
            .map(|e| (e.epoch, e.start_offset))
            .collect()
    }

    #[test]
    fn assign_adds_new_epochs_and_drops_contradicted_ones() {
        let mut c = cache(&[(0, 0), (2, 10), (5, 20)]);
        assert!(!c.assign(5, 25), "same epoch, later start: nothing new");
        assert!(!c.assign(-1, 30), "no epoch");
        assert!(c.assign(5, 18), "same epoch, earlier start moves it");
        assert_eq!(pairs(&c), vec![(0, 0), (2, 10), (5, 18)]);
        // An older epoch at a later offset removes the newer epochs (Kafka's truncation of
        // non-monotonic entries).
        assert!(c.assign(3, 30));
        assert_eq!(pairs(&c), vec![(0, 0), (2, 10), (3, 30)]);
        assert!(c.assign(4, 10));
        assert_eq!(pairs(&c), vec![(0, 0), (4, 10)]);
    }

    /// The cases of Kafka's `LeaderEpochFileCache.endOffsetFor`.
    #[test]
    fn end_offset_for_follows_kafka() {
        let c = cache(&[(1, 5), (3, 10), (6, 25)]);
        let log_end = 40;
        assert_eq!(c.end_offset_for(UNDEFINED_EPOCH, log_end), (-1, -1));
        // The latest epoch ends at the log end.
        assert_eq!(c.end_offset_for(6, log_end), (6, 40));
        // A known earlier epoch ends where the next one starts.
        assert_eq!(c.end_offset_for(1, log_end), (1, 10));
        assert_eq!(c.end_offset_for(3, log_end), (3, 25));
        // An unknown epoch between two known ones: the largest smaller epoch, ending where
        // the next larger one starts.
        assert_eq!(c.end_offset_for(2, log_end), (1, 10));
        assert_eq!(c.end_offset_for(5, log_end), (3, 25));
        // Older than every epoch here: itself, ending where the first one starts.
        assert_eq!(c.end_offset_for(0, log_end), (0, 5));
        // Newer than every epoch here.
        assert_eq!(c.end_offset_for(7, log_end), (-1, -1));
        assert_eq!(LeaderEpochCache::default().end_offset_for(0, 0), (-1, -1));
    }

    #[test]
    fn truncation_at_either_end() {
        let mut c = cache(&[(1, 5), (3, 10), (6, 25)]);
        assert!(!c.truncate_from_end(26));
        assert!(c.truncate_from_end(25));
        assert_eq!(pairs(&c), vec![(1, 5), (3, 10)]);
        assert!(c.truncate_from_end(7));
        assert_eq!(pairs(&c), vec![(1, 5)]);

        let mut c = cache(&[(1, 5), (3, 10), (6, 25)]);
        assert!(!c.truncate_from_start(5));
        assert!(!c.truncate_from_start(4));
        assert!(c.truncate_from_start(12));
        assert_eq!(pairs(&c), vec![(3, 12), (6, 25)]);
        // Exactly at an epoch's start: that epoch stays, the ones before go.
        assert!(c.truncate_from_start(25));
        assert_eq!(pairs(&c), vec![(6, 25)]);
        assert!(c.truncate_from_start(30));
        assert_eq!(pairs(&c), vec![(6, 30)]);
    }

    #[test]
    fn checkpoint_round_trip_and_damage() {
        let c = cache(&[(0, 0), (3, 1200)]);
        assert_eq!(c.encode(), "0\n2\n0 0\n3 1200\n");
        assert_eq!(LeaderEpochCache::decode(&c.encode()), Some(c));
        assert_eq!(
            LeaderEpochCache::decode("0\n0\n"),
            Some(LeaderEpochCache::default())
        );
        for bad in [
            "",
            "1\n0\n",
            "0\n2\n0 0\n",
            "0\n1\n0 0\n5 5\n",
            "0\n2\n3 0\n1 5\n",
            "0\n2\n1 5\n2 5\n",
            "0\n1\n-1 0\n",
            "0\n1\n0 x\n",
            "0\n1\n0 0 0\n",
            "0\n18446744073709551616\n",
        ] {
            assert_eq!(LeaderEpochCache::decode(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn file_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let env = StorageEnv::unbounded();
        assert_eq!(LeaderEpochCache::read(&env, dir.path()).unwrap(), None);
        let c = cache(&[(2, 7)]);
        c.write(&env, dir.path()).unwrap();
        assert_eq!(LeaderEpochCache::read(&env, dir.path()).unwrap(), Some(c));
        std::fs::write(dir.path().join(LEADER_EPOCH_CHECKPOINT_FILE), b"garbage").unwrap();
        assert_eq!(LeaderEpochCache::read(&env, dir.path()).unwrap(), None);
    }
}

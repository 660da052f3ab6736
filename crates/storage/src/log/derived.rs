//! The state a log derives from its batches — idempotent producers, aborted transactions,
//! leader epochs — and how it is restored without reading every batch: at open, and after
//! a truncation.
//!
//! * Producers and aborted transactions come from the latest producer-state snapshot within
//!   the log (taken at each segment roll), then the batches after it.
//! * Leader epochs come from their checkpoint, which is complete below the recovery point,
//!   then the batches that recovery scanned (or every batch when the checkpoint is missing
//!   or damaged, as after an upgrade).
//!
//! Both walks share one pass over the batch headers of the segments concerned.

use super::{PartitionLog, marker_is_commit};
use crate::error::StorageError;
use crate::leader_epoch::LeaderEpochCache;
use crate::producer_snapshot::ProducerSnapshot;
use crate::producer_state::ProducerStateManager;

impl PartitionLog {
    /// Restores producers, aborted transactions and leader epochs for the segments now in
    /// the log. `rescanned_from` is where recovery started scanning (`None`: it did not),
    /// from which the epochs are derived again.
    pub(super) fn restore_derived_state(
        &mut self,
        rescanned_from: Option<i64>,
    ) -> Result<(), StorageError> {
        let end = self.log_end_offset();
        let checkpoint = LeaderEpochCache::read(&self.env, &self.dir)?;
        let rebuilt = checkpoint.is_none();
        let epochs_from = if rebuilt {
            self.first_segment_base()
        } else {
            rescanned_from.unwrap_or(end)
        };
        self.epochs = checkpoint.unwrap_or_default();
        self.epochs_dirty |= self.epochs.truncate_from_end(epochs_from);
        let producers_from = self.load_latest_snapshot()?;
        self.replay(epochs_from, producers_from)?;
        // As Kafka's loader: no entry survives at or past the log end (one the log start
        // moved there, with no data, is gone after a restart).
        let start = self.log_start_offset;
        self.epochs_dirty |= self.epochs.truncate_from_start(start);
        self.epochs_dirty |= self.epochs.truncate_from_end(end);
        if rebuilt {
            // Written with the next recovery point; an empty log needs no file yet.
            self.epochs_dirty = !self.epochs.entries().is_empty();
        }
        self.aborted_txns.retain(|t| t.last_offset >= start);
        Ok(())
    }

    /// Restores the producer state and aborted transactions as of the log end (after a
    /// truncation): the latest snapshot at or below it, then the batches after it.
    pub(super) fn restore_producer_state(&mut self) -> Result<(), StorageError> {
        let from = self.load_latest_snapshot()?;
        self.replay(self.log_end_offset(), from)?;
        let start = self.log_start_offset;
        self.aborted_txns.retain(|t| t.last_offset >= start);
        Ok(())
    }

    pub(super) fn first_segment_base(&self) -> i64 {
        self.segments
            .keys()
            .next()
            .copied()
            .unwrap_or(self.log_start_offset)
    }

    /// Deletes the snapshots past the log end or below the first segment (the batches
    /// between such a one and the log would be missing), then loads the latest readable
    /// one into the producer state. Returns the offset the batches must be replayed
    /// from: the snapshot's, or the first segment's base when there is none.
    fn load_latest_snapshot(&mut self) -> Result<i64, StorageError> {
        let end = self.log_end_offset();
        let first_base = self.first_segment_base();
        self.delete_snapshots(|offset| offset > end || offset < first_base)?;
        self.producers = ProducerStateManager::new();
        self.aborted_txns = Vec::new();
        while let Some(offset) = self.snapshots.last().copied() {
            if let Some(snapshot) = ProducerSnapshot::read(&self.env, &self.dir, offset)? {
                self.producers = snapshot.producers;
                self.aborted_txns = snapshot.aborted;
                return Ok(offset);
            }
            self.delete_snapshots(|o| o == offset)?;
        }
        Ok(first_base)
    }

    /// One pass over the batch headers from `min(epochs_from, producers_from)`: batches at
    /// or after `epochs_from` enter the leader-epoch cache, those at or after
    /// `producers_from` the producer state (markers close transactions).
    fn replay(&mut self, epochs_from: i64, producers_from: i64) -> Result<(), StorageError> {
        let from = epochs_from.min(producers_from);
        let Self {
            segments,
            epochs,
            epochs_dirty,
            producers,
            aborted_txns,
            ..
        } = self;
        for seg in segments.values().filter(|s| s.next_offset() > from) {
            seg.for_each_header(|h, position| {
                if h.base_offset >= epochs_from {
                    *epochs_dirty |= epochs.assign(h.partition_leader_epoch, h.base_offset);
                }
                if h.base_offset < producers_from {
                    return Ok(());
                }
                if h.is_control() {
                    if let Some(commit) = marker_is_commit(&seg.read_batch(position, h)?)?
                        && let Some(txn) = producers.record_marker(h, commit).filter(|t| t.aborted)
                    {
                        aborted_txns.push(txn);
                    }
                } else {
                    producers.record(h);
                }
                Ok(())
            })?;
        }
        Ok(())
    }

    /// Snapshots the producer state at `offset` (a new segment's base). A snapshot that
    /// cannot be written only costs a longer replay at the next open, so that is a warning.
    pub(super) fn take_producer_snapshot(&mut self, offset: i64) {
        match ProducerSnapshot::write(
            &self.env,
            &self.dir,
            offset,
            &self.producers,
            &self.aborted_txns,
        ) {
            Ok(()) => {
                self.snapshots.insert(offset);
            }
            Err(e) => {
                tracing::warn!(dir = %self.dir.display(), offset, error = %e, "cannot write a producer-state snapshot; the next start replays more of the log");
            }
        }
    }

    /// Deletes the snapshots below the first segment: the one at its base is all a restore
    /// can use.
    pub(super) fn delete_snapshots_below_first_segment(&mut self) -> Result<(), StorageError> {
        let first_base = self.first_segment_base();
        self.delete_snapshots(|offset| offset < first_base)
    }

    /// Deletes the snapshot files whose offset matches `doomed`.
    pub(super) fn delete_snapshots(
        &mut self,
        doomed: impl Fn(i64) -> bool,
    ) -> Result<(), StorageError> {
        let offsets: Vec<i64> = self
            .snapshots
            .iter()
            .copied()
            .filter(|o| doomed(*o))
            .collect();
        for offset in offsets {
            ProducerSnapshot::delete(&self.env, &self.dir, offset)?;
            self.snapshots.remove(&offset);
        }
        Ok(())
    }
}

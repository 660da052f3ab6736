//! The follower path of a log (Kafka's `UnifiedLog.appendAsFollower`, `truncateTo`,
//! `truncateFullyAndStartAt`) and its high watermark.
//!
//! A follower stores the leader's batches exactly as fetched, and when its log has diverged
//! from the leader's (found with the leader-epoch cache) it cuts its tail and fetches again
//! from there. Truncation removes whole batches from the end, restores the producer state
//! from the latest snapshot at or below the new end, and is made durable before anything
//! new is written at those offsets.

use std::ops::Bound;

use sluice_protocol::batch::{BATCH_HEADER_LEN, BatchError, check_integrity, split_batches};

use super::{AppendInfo, PartitionLog};
use crate::checkpoint::{self, HIGH_WATERMARK_FILE};
use crate::error::{AppendOrderError, StorageError};
use crate::flush::FlushHandle;
use crate::producer_state::ProducerStateManager;
use crate::segment::{Segment, StampedBatch};

impl PartitionLog {
    /// Appends batches fetched from the leader as they are: their offsets, leader epochs
    /// and timestamps are kept, nothing is stamped. Every batch must be intact (lengths,
    /// CRC) and continue the log — the first at or after the log end offset, each next one
    /// after the previous, leader epochs never going back — or nothing is written
    /// (`AppendOrder` errors say which rule broke). A batch may start past where the log
    /// or the previous batch ends: a compacted leader's log has such gaps, and a follower
    /// keeps them, as in Kafka. Producer sequences are not checked
    /// (the leader did), but the producer state, aborted transactions and leader epochs
    /// are kept up to date as on the leader. Page cache only, no fsync.
    pub fn append_as_follower(
        &mut self,
        batches: &[u8],
        now_ms: i64,
    ) -> Result<AppendInfo, StorageError> {
        self.health.check()?;
        if batches.is_empty() {
            return Err(BatchError::Truncated {
                needed: BATCH_HEADER_LEN,
                available: 0,
            }
            .into());
        }
        let parsed = split_batches(batches).collect::<Result<Vec<_>, _>>()?;
        let log_end = self.log_end_offset();
        let mut next = log_end;
        let mut latest_epoch = self.epochs.latest_epoch();
        let mut max_timestamp = -1;
        let mut offset_of_max_timestamp = -1;
        let mut stored = Vec::with_capacity(parsed.len());
        for (h, range) in &parsed {
            let batch = batches.get(range.clone()).ok_or(BatchError::Truncated {
                needed: range.end,
                available: batches.len(),
            })?;
            check_integrity(batch)?;
            if h.last_offset_delta < 0 {
                return Err(BatchError::OffsetDeltaMismatch {
                    last_offset_delta: h.last_offset_delta,
                    records_count: h.records_count,
                }
                .into());
            }
            if h.base_offset < next {
                return Err(AppendOrderError::UnexpectedOffset {
                    expected: next,
                    found: h.base_offset,
                }
                .into());
            }
            let epoch = h.partition_leader_epoch;
            if epoch < 0 {
                return Err(AppendOrderError::NoEpoch {
                    offset: h.base_offset,
                    epoch,
                }
                .into());
            }
            if let Some(latest) = latest_epoch.filter(|latest| epoch < *latest) {
                return Err(AppendOrderError::EpochRegression {
                    offset: h.base_offset,
                    epoch,
                    latest,
                }
                .into());
            }
            latest_epoch = Some(epoch);
            next = h
                .base_offset
                .checked_add(i64::from(h.last_offset_delta) + 1)
                .ok_or_else(|| StorageError::Corrupt("offset overflow".into()))?;
            if h.max_timestamp > max_timestamp {
                max_timestamp = h.max_timestamp;
                offset_of_max_timestamp = h.last_offset();
            }
            stored.push(StampedBatch::unchanged(*h, batch)?);
        }
        self.maybe_roll(batches.len() as u64, next - 1, now_ms)?;
        self.write_to_active(&stored, batches, &parsed, now_ms)?;
        Ok(AppendInfo {
            base_offset: parsed.first().map_or(log_end, |(h, _)| h.base_offset),
            last_offset: next - 1,
            max_timestamp,
            offset_of_max_timestamp,
            log_append_time: None,
            log_start_offset: self.log_start_offset,
            duplicate: false,
        })
    }

    /// Kafka's `truncateTo`: removes the batch holding `offset` and everything after it (a
    /// batch is never split, so the log may end below `offset`). Nothing is removed when
    /// `offset` is at or past the log end but a leader epoch starting at the end, which no
    /// batch holds; below the first segment the log starts afresh
    /// at `offset`. The producer state is restored from the latest snapshot at or below the
    /// new end, the leader epochs and aborted transactions lose what was cut, the recovery
    /// point, high watermark and log start come down to the new end when past it. Segment
    /// files go last first, and the cut is synced before this returns, so no crash brings
    /// back what was removed. Returns whether anything was removed.
    pub fn truncate_to(&mut self, offset: i64, now_ms: i64) -> Result<bool, StorageError> {
        self.health.check()?;
        let log_end = self.log_end_offset();
        if offset < 0 {
            return Err(StorageError::OffsetOutOfRange {
                offset,
                log_start_offset: self.log_start_offset,
                log_end_offset: log_end,
            });
        }
        if offset >= log_end {
            // As Kafka's `UnifiedLog.truncateTo`, the leader epochs are cut even so: a node
            // that led an epoch without appending to it holds that epoch at its log end, and
            // a follower that kept it would name it as its last fetched epoch to a leader
            // that never had it, be told to truncate here, and ask again for ever.
            self.epochs_dirty |= self.epochs.truncate_from_end(log_end);
            return Ok(false);
        }
        if offset < self.first_segment_base() {
            self.truncate_fully_and_start_at(offset, now_ms)?;
            return Ok(true);
        }
        tracing::info!(dir = %self.dir.display(), offset, log_end, "truncating the log");
        self.truncations += 1;
        let doomed: Vec<i64> = self
            .segments
            .range((Bound::Excluded(offset), Bound::Unbounded))
            .map(|(base, _)| *base)
            .rev()
            .collect();
        for base in doomed {
            if let Some(seg) = self.segments.remove(&base) {
                seg.delete()?;
            }
        }
        let Self {
            segments, config, ..
        } = self;
        let cut = segments
            .values_mut()
            .next_back()
            .ok_or_else(|| StorageError::Corrupt("log has no segment".into()))?;
        cut.truncate_to(offset, config)?;
        let cut_file = cut.file().clone();
        let new_end = self.log_end_offset();
        self.delete_snapshots(|snapshot| snapshot > new_end)?;
        self.env.sync_dir(&self.dir)?;
        self.sync_files(vec![cut_file])?;

        self.recovery_point = self.recovery_point.min(new_end);
        self.high_watermark = self.high_watermark.min(new_end);
        if self.log_start_offset > new_end {
            self.log_start_offset = new_end;
            self.persist_log_start()?;
        }
        self.epochs_dirty |= self.epochs.truncate_from_end(new_end);
        self.restore_producer_state()?;
        self.persist_recovery_point()?;
        if self.cleaner_checkpoint.is_some_and(|c| c > new_end) {
            // Kafka's `maybeTruncateCheckpoint`: what follows the cut is dirty again.
            self.cleaner_checkpoint = Some(new_end);
            self.persist_cleaner_checkpoint();
        }
        self.check_invariants();
        Ok(true)
    }

    /// Kafka's `truncateFullyAndStartAt`: deletes every segment and starts an empty log at
    /// `offset` (a follower whose leader no longer has the offsets it would fetch next,
    /// or recovery that lost what followed the log start). Producer state, aborted
    /// transactions, leader epochs and snapshots are cleared; everything is made durable
    /// before this returns.
    pub fn truncate_fully_and_start_at(
        &mut self,
        offset: i64,
        now_ms: i64,
    ) -> Result<(), StorageError> {
        self.health.check()?;
        if offset < 0 {
            return Err(StorageError::OffsetOutOfRange {
                offset,
                log_start_offset: self.log_start_offset,
                log_end_offset: self.log_end_offset(),
            });
        }
        tracing::info!(dir = %self.dir.display(), offset, "truncating the whole log");
        self.truncations += 1;
        for (_, seg) in std::mem::take(&mut self.segments).into_iter().rev() {
            seg.delete()?;
        }
        self.delete_snapshots(|_| true)?;
        self.env.sync_dir(&self.dir)?;
        self.segments.insert(
            offset,
            Segment::create(&self.dir, offset, now_ms, &self.env)?,
        );
        self.log_start_offset = offset;
        self.recovery_point = offset;
        self.high_watermark = offset;
        self.producers = ProducerStateManager::new();
        self.aborted_txns.clear();
        self.epochs.clear();
        self.epochs_dirty = true;
        if self.cleaner_checkpoint.is_some() {
            self.cleaner_checkpoint = Some(offset);
            self.persist_cleaner_checkpoint();
        }
        self.persist_log_start()?;
        self.persist_recovery_point()?;
        self.check_invariants();
        Ok(())
    }

    /// Syncs `files` the way a flush does: a failure takes the log offline.
    fn sync_files(
        &self,
        files: Vec<std::sync::Arc<crate::segment::SegmentFile>>,
    ) -> Result<(), StorageError> {
        FlushHandle {
            files,
            end_offset: self.log_end_offset(),
            health: self.health.clone(),
            truncations: self.truncations,
        }
        .flush()
        .map(|_| ())
    }

    /// A new leadership at `epoch` starts at the log end (Kafka's
    /// `maybeAssignEpochStartOffset` when a replica becomes leader): the epoch is in the
    /// cache before any batch of it is written, so a follower of an older epoch that
    /// fetches here learns where its epoch ended and truncates there. An epoch older than
    /// the latest here is refused: leader epochs never go back.
    pub fn begin_leader_epoch(&mut self, epoch: i32) -> Result<(), AppendOrderError> {
        let log_end = self.log_end_offset();
        if let Some(latest) = self.epochs.latest_epoch().filter(|latest| epoch < *latest) {
            return Err(AppendOrderError::EpochRegression {
                offset: log_end,
                epoch,
                latest,
            });
        }
        self.epochs_dirty |= self.epochs.assign(epoch, log_end);
        Ok(())
    }

    /// The high watermark the broker last set (the log start until it sets one).
    pub fn high_watermark(&self) -> i64 {
        self.high_watermark
    }

    /// Sets the high watermark. Past the log end it is a broken invariant of the caller,
    /// which stops the process; below the log start it is raised to it (as Kafka does).
    pub fn set_high_watermark(&mut self, offset: i64) {
        let end = self.log_end_offset();
        crate::invariant!(
            offset <= end,
            "{}: high watermark {offset} set past the log end {end}",
            self.dir.display()
        );
        self.high_watermark = offset.max(self.log_start_offset);
    }

    /// Writes the high watermark to its checkpoint file if it changed since the last
    /// write; also done on close. Not synced: after a crash an older (lower) value, or
    /// none (read as the log start), is safe, since the leader's high watermark is
    /// learnt again.
    pub fn checkpoint_high_watermark(&mut self) -> Result<(), StorageError> {
        self.health.check()?;
        if self.persisted_high_watermark == Some(self.high_watermark) {
            return Ok(());
        }
        checkpoint::write_with(
            &self.env,
            &self.dir.join(HIGH_WATERMARK_FILE),
            self.high_watermark,
            false,
        )?;
        self.persisted_high_watermark = Some(self.high_watermark);
        Ok(())
    }
}

//! The partition log: an ordered set of segments with a log start offset, a log end offset,
//! a recovery point and a high watermark, and the state derived from its batches (producers,
//! aborted transactions, leader epochs).
//!
//! The leader path is here; the follower path (appends that keep the leader's offsets,
//! truncation) is in [`follower`], and how the derived state is restored (at open and
//! after a truncation) in [`derived`].

mod compaction;
mod derived;
mod follower;

pub use compaction::CleanOutcome;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use sluice_protocol::batch::{
    BATCH_HEADER_LEN, BatchError, BatchHeader, split_batches, stamped_header,
};

use crate::checkpoint::{
    self, CLEANER_OFFSET_FILE, HIGH_WATERMARK_FILE, LOG_START_OFFSET_FILE, RECOVERY_POINT_FILE,
};
use crate::config::LogConfig;
use crate::error::{AppendOrderError, StorageError};
use crate::flush::{FlushHandle, SyncHealth};
use crate::io::StorageEnv;
use crate::leader_epoch::LeaderEpochCache;
use crate::producer_snapshot;
use crate::producer_state::{CompletedTxn, ProducerStateManager, SequenceCheck};
use crate::segment::{self, Segment, StampedBatch};

/// What an append did, for the produce response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendInfo {
    pub base_offset: i64,
    pub last_offset: i64,
    /// Largest batch max timestamp among the appended batches (the append time for
    /// LogAppendTime), -1 when none.
    pub max_timestamp: i64,
    /// Last offset of the batch holding `max_timestamp` (batch granularity: records are not
    /// decoded on the produce path), -1 when none.
    pub offset_of_max_timestamp: i64,
    /// The stamped append time, for the produce response of LogAppendTime topics.
    pub log_append_time: Option<i64>,
    pub log_start_offset: i64,
    /// The batch was a retry of one already in the log (idempotent producer): nothing was
    /// written and the offsets are those of the original.
    pub duplicate: bool,
}

/// The log of one partition in its own directory. See the crate docs for the file layout.
#[derive(Debug)]
pub struct PartitionLog {
    dir: PathBuf,
    config: LogConfig,
    /// Where its files live: the open-files budget, and in tests injected faults.
    env: Arc<StorageEnv>,
    /// By base offset; never empty, the last one is the active segment.
    segments: BTreeMap<i64, Segment>,
    log_start_offset: i64,
    /// Everything below is known to be synced.
    recovery_point: i64,
    /// The recovery point last written to its checkpoint file.
    persisted_recovery_point: i64,
    /// Set by the broker: the offset below which the replicas agree. Between the log start
    /// and the log end.
    high_watermark: i64,
    /// The high watermark last written to its checkpoint file.
    persisted_high_watermark: Option<i64>,
    /// Idempotent producers' recent batches, restored on open from the latest snapshot and
    /// the batch headers after it.
    producers: ProducerStateManager,
    /// Aborted transactions (marker at or after the log start) in offset order, for
    /// read_committed fetches; restored with the producers.
    aborted_txns: Vec<CompletedTxn>,
    /// The start offset of every leader epoch with data here.
    epochs: LeaderEpochCache,
    /// The epochs changed since their checkpoint was written; it is written before the
    /// next recovery point (see [`crate::leader_epoch`]).
    epochs_dirty: bool,
    /// Offsets of the producer-state snapshot files in the directory.
    snapshots: BTreeSet<i64>,
    /// Counts truncations, so a flush handle taken before one claims nothing durable.
    truncations: u64,
    /// Set for good when a sync fails: the log is then offline (see [`crate::flush`]).
    health: Arc<SyncHealth>,
    /// Where the log cleaner stopped: the first dirty offset (see [`crate::cleaner`]).
    cleaner_checkpoint: Option<i64>,
    /// When the cleaner last swapped cleaned segments in.
    last_cleaned_ms: Option<i64>,
}

impl PartitionLog {
    /// Opens or creates the log in `dir`. When `recover` is true (unclean shutdown) the
    /// segments after the recovery point (at least the active one) are scanned: every batch
    /// validated (CRC), the log truncated at the first torn or corrupt batch, indexes
    /// rebuilt. Indexes that are missing or corrupt are rebuilt in any case. Every file
    /// operation goes through `env` (its open-files budget, and in tests its faults).
    pub fn open(
        dir: impl Into<PathBuf>,
        config: LogConfig,
        recover: bool,
        now_ms: i64,
        env: &Arc<StorageEnv>,
    ) -> Result<Self, StorageError> {
        let dir = dir.into();
        env.create_dir_all(&dir)?;
        crate::cleaner::swap::recover(env, &dir)?;
        let found = discover(env, &dir)?;
        let log_start_checkpoint = read_checkpoint(env, &dir.join(LOG_START_OFFSET_FILE));
        let recovery_checkpoint = read_checkpoint(env, &dir.join(RECOVERY_POINT_FILE)).unwrap_or(0);
        let opened = open_segments(
            env,
            &dir,
            &found.segments,
            recover.then_some(recovery_checkpoint),
            &config,
            now_ms,
        )?;
        let cleaner_checkpoint = read_checkpoint(env, &dir.join(CLEANER_OFFSET_FILE));
        let mut log = Self {
            health: SyncHealth::new(&dir),
            dir,
            config,
            env: env.clone(),
            segments: opened.segments,
            log_start_offset: 0,
            recovery_point: 0,
            persisted_recovery_point: 0,
            high_watermark: 0,
            persisted_high_watermark: None,
            producers: ProducerStateManager::new(),
            aborted_txns: Vec::new(),
            epochs: LeaderEpochCache::default(),
            epochs_dirty: false,
            snapshots: found.snapshots,
            truncations: 0,
            cleaner_checkpoint,
            last_cleaned_ms: None,
        };
        let Some(first_base) = log.segments.keys().next().copied() else {
            // Nothing to checkpoint yet: an absent checkpoint reads as the base the log
            // starts at (0, or the one a surviving log-start checkpoint names). Skipping
            // the synced writes keeps creating many partitions fast.
            let base = log_start_checkpoint.unwrap_or(0);
            log.segments
                .insert(base, Segment::create(&log.dir, base, now_ms, &log.env)?);
            log.log_start_offset = base;
            log.recovery_point = base;
            log.high_watermark = base;
            log.restore_derived_state(None)?;
            log.check_invariants();
            return Ok(log);
        };
        log.log_start_offset = log_start_checkpoint.unwrap_or(first_base).max(first_base);
        if log.log_start_offset > log.log_end_offset() {
            // Data up to the log start offset was deleted, and what followed it was lost in
            // a crash: start empty at the log start offset rather than reuse offsets.
            tracing::warn!(
                log_start_offset = log.log_start_offset,
                log_end_offset = log.log_end_offset(),
                "log start offset beyond the log end, starting afresh"
            );
            let start = log.log_start_offset;
            log.truncate_fully_and_start_at(start, now_ms)?;
        }
        log.delete_segments_below_log_start()?;
        for seg in log.sealed_segments_mut() {
            seg.seal()?;
        }
        log.restore_derived_state(opened.recovered.first().copied())?;
        if recover {
            // What survived the crash was read from the page cache or the disk; make sure
            // it is on disk before calling it recovered.
            for base in &opened.recovered {
                if let Some(seg) = log.segments.get(base) {
                    seg.file().sync()?;
                }
            }
            log.recovery_point = log.log_end_offset();
            log.persist_recovery_point()?;
        } else {
            log.recovery_point = recovery_checkpoint
                .min(log.log_end_offset())
                .max(log.log_start_offset);
            log.persisted_recovery_point = log.recovery_point;
        }
        let high_watermark = read_checkpoint(&log.env, &log.dir.join(HIGH_WATERMARK_FILE));
        log.persisted_high_watermark = high_watermark;
        log.high_watermark = high_watermark
            .unwrap_or(0)
            .min(log.log_end_offset())
            .max(log.log_start_offset);
        log.check_invariants();
        Ok(log)
    }

    /// The last stable offset: below it every transaction is decided.
    pub fn last_stable_offset(&self) -> i64 {
        let end = self.log_end_offset();
        self.producers
            .first_unstable_offset()
            .map_or(end, |first| first.min(end))
    }

    /// Aborted transactions overlapping offsets `[from, to)`, as
    /// (producer id, first offset), for read_committed fetches.
    pub fn aborted_transactions(&self, from: i64, to: i64) -> Vec<(i64, i64)> {
        self.aborted_txns
            .iter()
            .filter(|t| t.last_offset >= from && t.first_offset < to)
            .map(|t| (t.producer_id, t.first_offset))
            .collect()
    }

    /// The idempotent producer state (for DescribeProducers and tests).
    pub fn producer_state(&self) -> &ProducerStateManager {
        &self.producers
    }

    fn active(&self) -> Result<&Segment, StorageError> {
        self.segments
            .values()
            .next_back()
            .ok_or_else(|| StorageError::Corrupt("log has no segment".into()))
    }

    fn active_mut(&mut self) -> Result<&mut Segment, StorageError> {
        self.segments
            .values_mut()
            .next_back()
            .ok_or_else(|| StorageError::Corrupt("log has no segment".into()))
    }

    fn sealed_segments_mut(&mut self) -> impl Iterator<Item = &mut Segment> {
        let n = self.segments.len().saturating_sub(1);
        self.segments.values_mut().take(n)
    }

    /// Appends one or more already-validated v2 batches in `batches` (contiguous buffer):
    /// stores them with consecutive base offsets and `leader_epoch` stamped, and when
    /// `log_append_time` is Some with it (LogAppendTime topics); rolls the active segment
    /// first when it would exceed segment_bytes or is older than segment_ms; writes with one
    /// vectored write of the stamped headers and the caller's unchanged bytes (`batches`
    /// itself is not modified, so the request buffer need not be copied); updates indexes.
    /// Page cache only, no fsync. `leader_epoch` must not be older than the epoch of data
    /// already in the log (`AppendOrder` error); a new one starts an entry of the
    /// leader-epoch cache at the log end.
    pub fn append(
        &mut self,
        batches: &[u8],
        leader_epoch: i32,
        log_append_time: Option<i64>,
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
        self.check_epoch_continues(log_end, leader_epoch)?;
        for (h, _) in &parsed {
            if let SequenceCheck::Duplicate(original) = self.producers.check(h)? {
                if parsed.len() > 1 {
                    return Err(StorageError::Corrupt(
                        "a retried idempotent batch must be produced alone".into(),
                    ));
                }
                return Ok(AppendInfo {
                    base_offset: original.first_offset,
                    last_offset: original.last_offset,
                    max_timestamp: original.max_timestamp,
                    offset_of_max_timestamp: original.last_offset,
                    log_append_time,
                    log_start_offset: self.log_start_offset,
                    duplicate: true,
                });
            }
        }
        let mut next = log_end;
        for (h, _) in &parsed {
            if h.last_offset_delta < 0 {
                return Err(BatchError::OffsetDeltaMismatch {
                    last_offset_delta: h.last_offset_delta,
                    records_count: h.records_count,
                }
                .into());
            }
            next = next
                .checked_add(i64::from(h.last_offset_delta) + 1)
                .ok_or_else(|| StorageError::Corrupt("offset overflow".into()))?;
        }
        self.maybe_roll(batches.len() as u64, next - 1, now_ms)?;

        let mut next = log_end;
        let mut max_timestamp = -1;
        let mut offset_of_max_timestamp = -1;
        let mut stamped = Vec::with_capacity(parsed.len());
        for (_, range) in &parsed {
            let batch = batches.get(range.clone()).ok_or(BatchError::Truncated {
                needed: range.end,
                available: batches.len(),
            })?;
            let stamped_header = stamped_header(batch, next, leader_epoch, log_append_time)?;
            let header = BatchHeader::parse(&stamped_header)?;
            if header.max_timestamp > max_timestamp {
                max_timestamp = header.max_timestamp;
                offset_of_max_timestamp = header.last_offset();
            }
            next = header.last_offset() + 1;
            stamped.push(StampedBatch {
                header,
                stamped_header,
                after_header: batch.get(BATCH_HEADER_LEN..).unwrap_or_default(),
            });
        }
        self.write_to_active(&stamped, batches, &parsed, now_ms)?;
        Ok(AppendInfo {
            base_offset: log_end,
            last_offset: next - 1,
            max_timestamp,
            offset_of_max_timestamp,
            log_append_time,
            log_start_offset: self.log_start_offset,
            duplicate: false,
        })
    }

    /// Whether a batch of `epoch` may follow the data in the log at `offset`: epochs never
    /// go back, and a batch without one (negative) is refused.
    fn check_epoch_continues(&self, offset: i64, epoch: i32) -> Result<(), AppendOrderError> {
        if epoch < 0 {
            return Err(AppendOrderError::NoEpoch { offset, epoch });
        }
        match self.epochs.latest_epoch() {
            Some(latest) if epoch < latest => Err(AppendOrderError::EpochRegression {
                offset,
                epoch,
                latest,
            }),
            _ => Ok(()),
        }
    }

    /// Writes batches (as stored, offsets and epochs in their headers) at the end of the
    /// active segment with one vectored write, then records them in the derived state:
    /// producers, aborted transactions, leader epochs. `raw` holds the batches as given,
    /// at `ranges`, for reading transaction markers.
    fn write_to_active(
        &mut self,
        stamped: &[StampedBatch<'_>],
        raw: &[u8],
        ranges: &[(BatchHeader, std::ops::Range<usize>)],
        now_ms: i64,
    ) -> Result<(), StorageError> {
        let active = self
            .segments
            .values_mut()
            .next_back()
            .ok_or_else(|| StorageError::Corrupt("log has no segment".into()))?;
        active.append(stamped, &self.config)?;
        active.touch(now_ms);
        for (StampedBatch { header: h, .. }, (_, range)) in stamped.iter().zip(ranges) {
            if self.epochs.latest_epoch() != Some(h.partition_leader_epoch) {
                self.epochs_dirty |= self.epochs.assign(h.partition_leader_epoch, h.base_offset);
            }
            if h.is_control() {
                let batch = Bytes::copy_from_slice(raw.get(range.clone()).unwrap_or_default());
                if let Some(commit) = marker_is_commit(&batch)?
                    && let Some(txn) = self
                        .producers
                        .record_marker(h, commit)
                        .filter(|t| t.aborted)
                {
                    self.aborted_txns.push(txn);
                }
            } else {
                self.producers.record(h);
            }
        }
        self.check_offsets();
        Ok(())
    }

    /// Rolls the active segment if it is not empty and the append of `incoming` bytes up to
    /// `last_offset` would overflow it, or it is too old, or its index is full.
    fn maybe_roll(
        &mut self,
        incoming: u64,
        last_offset: i64,
        now_ms: i64,
    ) -> Result<(), StorageError> {
        let active = self.active()?;
        if active.size() == 0 {
            return Ok(());
        }
        let too_big =
            active.size().saturating_add(incoming) > self.config.effective_segment_bytes();
        let too_old = self
            .config
            .max_segment_ms()
            .is_some_and(|ms| now_ms.saturating_sub(active.rolling_base_ms()) > ms);
        let offsets_overflow =
            last_offset.saturating_sub(active.base_offset()) > i64::from(i32::MAX);
        if too_big || too_old || offsets_overflow || active.indexes_full(&self.config) {
            self.roll(now_ms)?;
        }
        Ok(())
    }

    /// Seals the active segment, starts a new one at the log end offset, and snapshots the
    /// producer state there (see [`crate::producer_snapshot`]).
    fn roll(&mut self, now_ms: i64) -> Result<(), StorageError> {
        let base = self.log_end_offset();
        self.active_mut()?.seal()?;
        let seg = Segment::create(&self.dir, base, now_ms, &self.env)?;
        self.segments.insert(base, seg);
        tracing::debug!(dir = %self.dir.display(), base_offset = base, "rolled segment");
        self.take_producer_snapshot(base);
        self.check_invariants();
        Ok(())
    }

    /// Whole batches starting with the batch that contains `offset`, up to `max_bytes` but
    /// always at least one whole batch (KIP-74), never including batches at or beyond
    /// `max_offset` (exclusive, the high watermark). Errors with OffsetOutOfRange when
    /// offset < log_start_offset or > log_end_offset. Reads from one segment per call, as
    /// Kafka does; the client's next fetch continues in the next one — unless all that
    /// segment has is batches the log cleaner emptied: then the read goes on into the next
    /// segments (within `max_bytes`) until it holds a record, since a fetch that brings
    /// no record looks to librdkafka like a batch too large for its buffer.
    pub fn read(
        &self,
        offset: i64,
        max_bytes: usize,
        max_offset: i64,
    ) -> Result<Bytes, StorageError> {
        self.health.check()?;
        let log_end = self.log_end_offset();
        if offset < self.log_start_offset || offset > log_end {
            return Err(StorageError::OffsetOutOfRange {
                offset,
                log_start_offset: self.log_start_offset,
                log_end_offset: log_end,
            });
        }
        if offset == log_end || offset >= max_offset {
            return Ok(Bytes::new());
        }
        let from = self
            .segments
            .range(..=offset)
            .next_back()
            .map_or(i64::MIN, |(base, _)| *base);
        let mut out: Vec<u8> = Vec::new();
        let mut next = offset;
        for seg in self.segments.range(from..).map(|(_, s)| s) {
            let budget = max_bytes.saturating_sub(out.len());
            let Some(data) = seg.read(next, budget, max_offset)? else {
                continue;
            };
            if !out.is_empty() && data.len() > budget {
                break;
            }
            let (last_offset, holds_records) = batches_summary(&data);
            out.extend_from_slice(&data);
            match last_offset {
                Some(last) if !holds_records && out.len() < max_bytes => next = last + 1,
                _ => break,
            }
        }
        Ok(Bytes::from(out))
    }

    pub fn log_start_offset(&self) -> i64 {
        self.log_start_offset
    }

    pub fn log_end_offset(&self) -> i64 {
        self.segments
            .values()
            .next_back()
            .map_or(self.log_start_offset, Segment::next_offset)
    }

    /// Offset below which everything is known to be synced.
    pub fn recovery_point(&self) -> i64 {
        self.recovery_point
    }

    /// The leader epochs with data in the log and where each starts.
    pub fn leader_epochs(&self) -> &LeaderEpochCache {
        &self.epochs
    }

    /// OffsetForLeaderEpoch (and a Fetch's diverging epoch): the largest epoch ≤ `epoch`
    /// with data here and the offset it ends at, as Kafka's
    /// `LeaderEpochFileCache.endOffsetFor` (see [`LeaderEpochCache::end_offset_for`]).
    pub fn end_offset_for_epoch(&self, epoch: i32) -> (i32, i64) {
        self.epochs.end_offset_for(epoch, self.log_end_offset())
    }

    pub fn size_bytes(&self) -> u64 {
        self.segments.values().map(Segment::size).sum()
    }

    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }

    /// ListOffsets by timestamp: the offset and timestamp of the first record whose
    /// timestamp is ≥ `ts`, None if none. The time index finds where to start; the batch is
    /// then decoded to find the exact record.
    pub fn offset_for_timestamp(&self, ts: i64) -> Result<Option<(i64, i64)>, StorageError> {
        for seg in self.segments.values() {
            if seg.max_timestamp() < ts || seg.next_offset() <= self.log_start_offset {
                continue;
            }
            if let Some(found) = seg.find_timestamp(ts, self.log_start_offset)? {
                return Ok(Some(found));
            }
        }
        Ok(None)
    }

    /// Largest timestamp in the log and the offset of (the first) record carrying it
    /// (ListOffsets MAX_TIMESTAMP).
    pub fn max_timestamp(&self) -> Option<(i64, i64)> {
        let mut best: Option<&Segment> = None;
        for seg in self.segments.values() {
            if seg.max_timestamp() >= 0
                && best.is_none_or(|b| seg.max_timestamp() > b.max_timestamp())
            {
                best = Some(seg);
            }
        }
        best?.max_timestamp_record()
    }

    /// Group commit support: a cheap handle capturing the files with unsynced data and the
    /// end offset now; [`FlushHandle::flush`] fdatasyncs them without the log being
    /// borrowed and returns the offset up to which data is durable; then
    /// [`PartitionLog::mark_flushed`] records the recovery point.
    pub fn flush_handle(&self) -> FlushHandle {
        let files = self
            .segments
            .values()
            .filter(|s| s.next_offset() > self.recovery_point || !s.dir_synced())
            .map(|s| s.file().clone())
            .collect();
        FlushHandle {
            files,
            end_offset: self.log_end_offset(),
            health: self.health.clone(),
            truncations: self.truncations,
        }
    }

    /// Whether a sync failed, so the log refuses writes and reads until it is reopened.
    pub fn is_offline(&self) -> bool {
        self.health.is_offline()
    }

    /// Records what `flushed` (whose [`FlushHandle::flush`] succeeded) made durable, and
    /// returns the offset below which the log is durable now. `None` when it proves nothing:
    /// the log is offline, or it was truncated after the handle was taken (the handle's end
    /// may then name offsets that hold other, unsynced data). The checkpoint file is only
    /// rewritten when the recovery point enters another segment: recovery scans whole
    /// segments anyway, so a finer checkpoint would buy nothing for a write per sync.
    pub fn mark_flushed(&mut self, flushed: &FlushHandle) -> Option<i64> {
        if self.is_offline() || flushed.truncations != self.truncations {
            return None;
        }
        let offset = flushed.end_offset.min(self.log_end_offset());
        if offset <= self.recovery_point {
            return Some(offset);
        }
        self.recovery_point = offset;
        if self.segment_base_of(offset) != self.segment_base_of(self.persisted_recovery_point)
            && let Err(e) = self.persist_recovery_point()
        {
            // A stale recovery point only makes the next recovery scan more.
            tracing::warn!(dir = %self.dir.display(), error = %e, "cannot write the recovery point");
        }
        Some(offset)
    }

    fn segment_base_of(&self, offset: i64) -> Option<i64> {
        self.segments.range(..=offset).next_back().map(|(b, _)| *b)
    }

    /// Retention, as Kafka's: deletes the oldest segments older than retention_ms (by their
    /// largest timestamp) or beyond retention_bytes, and the sealed ones wholly below the log
    /// start offset; advances the log start offset. The active segment goes too when it is
    /// not empty and breaches retention: the log rolls first, so a partition without new
    /// writes ends empty with its log start offset at its log end offset. Returns the number
    /// of segments deleted.
    pub fn apply_retention(&mut self, now_ms: i64) -> Result<usize, StorageError> {
        self.health.check()?;
        self.producers
            .expire(now_ms, self.config.producer_id_expiration_ms);
        let doomed = self.segments_breaching_retention(now_ms);
        let Some(&(_, new_start)) = doomed.last() else {
            return Ok(0);
        };
        if doomed.len() == self.segments.len() {
            // A log always has an active segment: start the next one before deleting all.
            self.roll(now_ms)?;
        }
        self.advance_log_start(new_start)?;
        for (base, _) in &doomed {
            if let Some(seg) = self.segments.remove(base) {
                tracing::info!(dir = %self.dir.display(), base_offset = base, "deleting segment");
                seg.delete()?;
            }
        }
        self.delete_snapshots_below_first_segment()?;
        self.check_invariants();
        Ok(doomed.len())
    }

    /// The oldest segments that retention deletes, as (base offset, offset after the
    /// segment), stopping at the first one it keeps. An empty active segment is kept.
    fn segments_breaching_retention(&self, now_ms: i64) -> Vec<(i64, i64)> {
        let log_end = self.log_end_offset();
        let mut remaining = self.size_bytes();
        let mut doomed = Vec::new();
        let bases: Vec<i64> = self.segments.keys().copied().collect();
        for (i, seg) in self.segments.values().enumerate() {
            let next_base = bases.get(i + 1).copied();
            if next_base.is_none() && seg.size() == 0 {
                break;
            }
            let below_start = next_base.is_some_and(|next| next <= self.log_start_offset);
            let expired = self
                .config
                .retention_ms
                .is_some_and(|ms| now_ms.saturating_sub(seg.largest_timestamp()) > ms);
            let oversized = self.config.retention_bytes.is_some_and(|limit| {
                remaining.saturating_sub(seg.size()) >= limit && remaining > limit
            });
            if !(below_start || expired || oversized) {
                break;
            }
            remaining = remaining.saturating_sub(seg.size());
            doomed.push((seg.base_offset(), next_base.unwrap_or(log_end)));
        }
        doomed
    }

    /// DeleteRecords: advances the log start offset to `offset` (≤ log end offset, else
    /// OffsetOutOfRange), persists it, and deletes the segments wholly below it. Returns the
    /// new log start offset.
    pub fn delete_records_before(&mut self, offset: i64) -> Result<i64, StorageError> {
        self.health.check()?;
        let log_end = self.log_end_offset();
        if offset > log_end || offset < 0 {
            return Err(StorageError::OffsetOutOfRange {
                offset,
                log_start_offset: self.log_start_offset,
                log_end_offset: log_end,
            });
        }
        if offset > self.log_start_offset {
            self.advance_log_start(offset)?;
            self.delete_segments_below_log_start()?;
            self.delete_snapshots_below_first_segment()?;
            self.check_invariants();
        }
        Ok(self.log_start_offset)
    }

    /// Moves the log start offset forward (never back) and persists it. The recovery point
    /// and the high watermark follow it, as in Kafka (what lies below the log start is gone
    /// for readers, so whether it was synced or replicated no longer matters), and so do
    /// the leader epochs and the aborted transactions.
    fn advance_log_start(&mut self, new_start: i64) -> Result<(), StorageError> {
        if new_start <= self.log_start_offset {
            return Ok(());
        }
        self.log_start_offset = new_start;
        self.recovery_point = self.recovery_point.max(new_start);
        self.high_watermark = self.high_watermark.max(new_start);
        self.epochs_dirty |= self.epochs.truncate_from_start(new_start);
        self.aborted_txns.retain(|t| t.last_offset >= new_start);
        self.persist_log_start()
    }

    /// Stops the process if the log's offsets or segments contradict each other (see
    /// [`crate::invariant!`]): `log_start ≤ recovery_point ≤ log_end`,
    /// `log_start ≤ high_watermark ≤ log_end`, and segments in strictly increasing,
    /// non-overlapping offset ranges. Called after every change of the
    /// segment set; appends check the offsets only.
    fn check_invariants(&self) {
        self.check_offsets();
        let mut previous: Option<&Segment> = None;
        for seg in self.segments.values() {
            if let Some(prev) = previous {
                crate::invariant!(
                    prev.base_offset() < seg.base_offset()
                        && prev.next_offset() <= seg.base_offset(),
                    "{}: segment {} (up to {}) overlaps segment {}",
                    self.dir.display(),
                    prev.base_offset(),
                    prev.next_offset(),
                    seg.base_offset()
                );
            }
            previous = Some(seg);
        }
    }

    /// `log_start ≤ recovery_point ≤ log_end` and `log_start ≤ high_watermark ≤ log_end`:
    /// constant time, so every append checks them.
    fn check_offsets(&self) {
        let (start, recovery, high_watermark, end) = (
            self.log_start_offset,
            self.recovery_point,
            self.high_watermark,
            self.log_end_offset(),
        );
        crate::invariant!(
            start <= recovery && recovery <= end,
            "{}: log start {start}, recovery point {recovery}, log end {end} out of order",
            self.dir.display()
        );
        crate::invariant!(
            start <= high_watermark && high_watermark <= end,
            "{}: log start {start}, high watermark {high_watermark}, log end {end} out of order",
            self.dir.display()
        );
    }

    /// Deletes sealed segments whose every offset is below the log start offset.
    fn delete_segments_below_log_start(&mut self) -> Result<(), StorageError> {
        loop {
            let mut it = self.segments.keys();
            let (Some(&first), Some(&second)) = (it.next(), it.next()) else {
                return Ok(());
            };
            if second > self.log_start_offset {
                return Ok(());
            }
            if let Some(seg) = self.segments.remove(&first) {
                seg.delete()?;
            }
        }
    }

    pub fn set_config(&mut self, config: LogConfig) {
        self.config = config;
    }

    pub fn config(&self) -> &LogConfig {
        &self.config
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Flushes everything and writes indexes and checkpoints; used on clean shutdown. An
    /// offline log writes nothing and returns `Offline`, so the broker does not record a
    /// clean shutdown and the next start recovers the log.
    pub fn close(&mut self) -> Result<(), StorageError> {
        let end = self.flush_handle().flush()?;
        self.recovery_point = end;
        for seg in self.segments.values_mut() {
            seg.seal()?;
        }
        self.persist_log_start()?;
        self.persist_recovery_point()?;
        self.checkpoint_high_watermark()
    }

    fn persist_log_start(&self) -> Result<(), StorageError> {
        checkpoint::write(
            &self.env,
            &self.dir.join(LOG_START_OFFSET_FILE),
            self.log_start_offset,
        )
    }

    /// Writes the recovery point, and first the leader epochs when they changed: the
    /// epoch checkpoint must cover everything below the recovery point, since recovery
    /// derives epochs again only for what it scans.
    fn persist_recovery_point(&mut self) -> Result<(), StorageError> {
        self.persist_epochs()?;
        checkpoint::write(
            &self.env,
            &self.dir.join(RECOVERY_POINT_FILE),
            self.recovery_point,
        )?;
        self.persisted_recovery_point = self.recovery_point;
        Ok(())
    }

    fn persist_epochs(&mut self) -> Result<(), StorageError> {
        if self.epochs_dirty {
            self.epochs.write(&self.env, &self.dir)?;
            self.epochs_dirty = false;
        }
        Ok(())
    }
}

/// The last offset of the batches in `data` and whether any of them holds a record.
fn batches_summary(data: &[u8]) -> (Option<i64>, bool) {
    split_batches(data)
        .filter_map(Result::ok)
        .fold((None, false), |(_, records), (h, _)| {
            (Some(h.last_offset()), records || h.records_count > 0)
        })
}

/// The segments found when opening a log.
struct OpenedSegments {
    segments: BTreeMap<i64, Segment>,
    /// Bases of the segments that recovery scanned, in order.
    recovered: Vec<i64>,
}

/// Opens the segments at `bases`. With `recover_from` (an unclean shutdown: the recovery
/// point) those holding offsets at or after it are scanned batch by batch; at the first
/// torn or corrupt batch the segment is cut and the later ones deleted, as they are no
/// longer reachable. So are segments after a gap in the offsets (a truncation interrupted by
/// a crash leaves one: it deletes the last segments first).
fn open_segments(
    env: &Arc<StorageEnv>,
    dir: &Path,
    bases: &[i64],
    recover_from: Option<i64>,
    config: &LogConfig,
    now_ms: i64,
) -> Result<OpenedSegments, StorageError> {
    let mut segments = BTreeMap::new();
    let mut recovered = Vec::new();
    let mut cut = false;
    for (i, &base) in bases.iter().enumerate() {
        let reachable = !cut
            && segments
                .values()
                .next_back()
                .is_none_or(|prev: &Segment| prev.next_offset() == base);
        if !reachable {
            tracing::warn!(dir = %dir.display(), base_offset = base, "deleting a segment after a truncation");
            segment::delete_files(env, dir, base)?;
            cut = true;
            continue;
        }
        let next_base = bases.get(i + 1).copied();
        let scan = recover_from.is_some_and(|from| next_base.is_none_or(|next| next > from));
        let (seg, truncated) = Segment::open(dir, base, scan, config, now_ms, env)?;
        if next_base.is_some_and(|next| seg.next_offset() > next) {
            return Err(StorageError::Corrupt(format!(
                "segment {base} reaches offset {} past the next segment",
                seg.next_offset()
            )));
        }
        if scan {
            recovered.push(base);
        }
        cut = truncated;
        segments.insert(base, seg);
    }
    Ok(OpenedSegments {
        segments,
        recovered,
    })
}

/// A checkpoint that cannot be read counts as absent (with a warning): for the log start
/// offset that means the first segment's base, for the recovery point a full scan.
fn read_checkpoint(env: &StorageEnv, path: &Path) -> Option<i64> {
    match checkpoint::read(env, path) {
        Ok(v) => v,
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "ignoring unreadable checkpoint");
            None
        }
    }
}

/// The files of a log directory.
struct Found {
    /// Segment base offsets, in order.
    segments: Vec<i64>,
    /// Producer-state snapshot offsets.
    snapshots: BTreeSet<i64>,
}

/// Finds the segments and snapshots in `dir` and removes leftovers: temporary files of
/// interrupted atomic writes and index files without a log.
fn discover(env: &StorageEnv, dir: &Path) -> Result<Found, StorageError> {
    let names = env.list_dir(dir)?;
    let mut bases: Vec<i64> = names
        .iter()
        .filter_map(|n| segment::parse_file_name(n, "log"))
        .collect();
    bases.sort_unstable();
    let snapshots = names
        .iter()
        .filter_map(|n| producer_snapshot::parse_file_name(n))
        .collect();
    for name in &names {
        let orphan_index = segment::parse_file_name(name, "index")
            .or_else(|| segment::parse_file_name(name, "timeindex"))
            .is_some_and(|b| bases.binary_search(&b).is_err());
        if name.ends_with(".tmp") || orphan_index {
            env.remove_file(&dir.join(name))?;
        }
    }
    Ok(Found {
        segments: bases,
        snapshots,
    })
}

/// Reads the type of a transaction marker: its one record's key is
/// `[version: i16][type: i16]` with type 0 = ABORT, 1 = COMMIT. `None` for a control batch
/// the log cleaner emptied: its transaction was cleaned away, so it closes nothing (as in
/// Kafka's producer state).
fn marker_is_commit(batch: &Bytes) -> Result<Option<bool>, StorageError> {
    let mut records = sluice_protocol::records::decode_records(batch, 1 << 16)?;
    let Some(record) = records.next() else {
        return Ok(None);
    };
    record?
        .key
        .as_deref()
        .and_then(sluice_protocol::batch::marker_key_is_commit)
        .map(Some)
        .ok_or_else(|| StorageError::Corrupt("transaction marker with a malformed key".into()))
}

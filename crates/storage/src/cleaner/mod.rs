//! Log compaction, as Kafka's log cleaner does it (`LogCleaner`, `Cleaner`,
//! `LogCleanerManager`; KIP-58 `min.compaction.lag.ms`, KIP-354 `max.compaction.lag.ms`,
//! KIP-534 delete horizons).
//!
//! A compacted log keeps at least the latest record of every key; offsets never change,
//! removed records leave gaps. Below the cleaner checkpoint (`cleaner-offset-checkpoint`,
//! one offset) the log was cleaned; from there to the first uncleanable offset it is dirty
//! and may be cleaned: sealed segments only (never the active one), below the last stable
//! offset and the high watermark, and older than `min.compaction.lag.ms`
//! ([`DirtyStats`]). The broker picks the log with the largest dirty ratio above
//! `min.cleanable.dirty.ratio`, or one whose oldest dirty batch is past
//! `max.compaction.lag.ms`, and cleans it in three steps, only the last one with the log
//! locked:
//!
//! 1. [`crate::PartitionLog::plan_cleaning`] (read access) takes the sealed segments to clean
//!    (their shared files), the aborted transactions and each producer's last batch.
//! 2. [`CleaningTask::run`] (no access to the log) builds an [`OffsetMap`], key → latest
//!    offset, over the dirty range (skipping aborted data), as far as its memory allows;
//!    then rewrites every segment from the log start up to where the map reached, grouped
//!    up to `segment.bytes` and `segment.index.bytes` per group, into one new segment per
//!    group named `<base>.log.cleaned` (with `.index.cleaned`, `.timeindex.cleaned`), and
//!    syncs them.
//! 3. [`crate::PartitionLog::install_cleaned`] (write access) checks the log still holds the
//!    segments it read, and swaps the new ones in (see [`swap`]).
//!
//! What is kept, batch by batch (the `filter` module): a record the map did not reach; otherwise
//! the latest record of its key (by offset), a tombstone only until its batch's delete
//! horizon; no record without a key, none of an aborted transaction. A batch that keeps
//! all its records and needs no new horizon is copied as it is; otherwise it is rebuilt
//! with its own codec, its base and last offset, producer fields and headers kept. The
//! first cleaning that keeps a tombstone (or finds a marker it could drop) stamps the
//! batch's delete horizon, now + `delete.retention.ms` (KIP-534); a later cleaning past it
//! drops the tombstone. Transaction markers go once no batch of their transaction is left
//! and their horizon has passed. The batch holding an active producer's last sequence
//! stays, emptied if need be, so idempotent producers keep working; and so does the last
//! batch of each group, so that segments stay contiguous.

mod dirty;
mod filter;
mod offset_map;
mod read;
pub mod swap;
mod txn;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use sluice_protocol::batch::BatchHeader;
use sluice_protocol::records::{MAX_DECOMPRESSED_BYTES, decode_records};

pub use dirty::DirtyStats;
pub use offset_map::{OffsetMap, SLOT_BYTES};

use self::read::BatchCursor;
pub(crate) use self::read::SourceSegment;
use self::txn::TxnWalk;
use crate::config::{CompactionConfig, LogConfig};
use crate::error::StorageError;
use crate::io::StorageEnv;
use crate::producer_state::CompletedTxn;
use crate::segment::{self, Segment, SegmentFile, SegmentFileKind, StampedBatch};

/// Batches written to a cleaned segment at once.
const WRITE_CHUNK: usize = 1 << 20;

/// What the broker's cleaner thread gives a cleaning: its I/O budget and when to give up.
pub trait CleanerControl {
    /// Called before `bytes` are read or after they were written; may sleep to keep the
    /// cleaner within `log.cleaner.io.max.bytes.per.second`.
    fn throttle(&self, _bytes: u64) {}
    /// Whether to stop (shutdown, the partition closed); checked between batches.
    fn should_abort(&self) -> bool {
        false
    }
}

/// No throttling, never aborted: tests and tools.
#[derive(Debug, Clone, Copy, Default)]
pub struct Unthrottled;

impl CleanerControl for Unthrottled {}

/// What one cleaning did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CleanStats {
    /// Bytes of the segments rewritten.
    pub bytes_read: u64,
    /// Bytes of the cleaned segments.
    pub bytes_written: u64,
    /// Records in the batches rewritten.
    pub records_read: u64,
    /// Records kept.
    pub records_retained: u64,
    /// Records without a key, removed.
    pub keyless_records: u64,
    /// Bytes of the dirty range read to build the offset map.
    pub map_bytes_read: u64,
    /// Keys in the offset map.
    pub map_keys: u64,
    /// Share of the offset map's key budget used.
    pub map_utilization: f64,
}

/// The last batch of an active producer (Kafka's `LastRecord`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct LastBatch {
    /// Last offset of its last data batch, if any.
    pub(crate) last_data_offset: Option<i64>,
    /// Its epoch.
    pub(crate) epoch: i16,
}

/// A cleaning of one log, planned by [`crate::PartitionLog::plan_cleaning`].
#[derive(Debug)]
pub struct CleaningTask {
    pub(crate) dir: PathBuf,
    pub(crate) env: Arc<StorageEnv>,
    pub(crate) config: LogConfig,
    pub(crate) compaction: CompactionConfig,
    pub(crate) now_ms: i64,
    pub(crate) stats: DirtyStats,
    /// Every segment below the first uncleanable offset, in order.
    pub(crate) segments: Vec<SourceSegment>,
    /// Position of the first batch reaching the first dirty offset, in its segment.
    pub(crate) dirty_position: u64,
    /// The aborted transactions over the segments.
    pub(crate) aborted: Vec<CompletedTxn>,
    pub(crate) last_batches: HashMap<i64, LastBatch>,
    /// The log's truncation count when planned: a truncation since voids the task.
    pub(crate) truncations: u64,
}

/// One cleaned segment written, waiting to replace its sources.
#[derive(Debug)]
pub(crate) struct CleanedGroup {
    pub(crate) base: i64,
    /// The segments it replaces: base offsets and files.
    pub(crate) sources: Vec<(i64, Arc<SegmentFile>)>,
    /// Base of the segment after the sources.
    pub(crate) next_base: i64,
    pub(crate) last_modified_ms: i64,
}

/// The cleaned segments of a [`CleaningTask`], synced under their `.cleaned` names, for
/// [`crate::PartitionLog::install_cleaned`]. Dropped without being installed, their files go.
#[derive(Debug)]
pub struct CleanedSegments {
    pub(crate) dir: PathBuf,
    pub(crate) env: Arc<StorageEnv>,
    pub(crate) groups: Vec<CleanedGroup>,
    /// The next first dirty offset: where the offset map ended.
    pub(crate) end_offset: i64,
    /// ABORT markers whose record was removed, as (producer, offset).
    pub(crate) removed_abort_markers: Vec<(i64, i64)>,
    pub(crate) truncations: u64,
    pub(crate) installed: bool,
    pub(crate) stats: CleanStats,
}

impl CleaningTask {
    /// How dirty the log was when planned.
    pub fn dirty_stats(&self) -> &DirtyStats {
        &self.stats
    }

    /// Cleans: builds the offset map within `map_bytes` of memory, then writes and syncs
    /// the cleaned segments. Nothing of the log changes until they are installed; on error
    /// or abort the files written so far are removed.
    pub fn run(
        self,
        map_bytes: usize,
        control: &dyn CleanerControl,
    ) -> Result<CleanedSegments, StorageError> {
        let mut stats = CleanStats::default();
        let mut map = OffsetMap::new(map_bytes);
        self.build_offset_map(&mut map, control, &mut stats)?;
        stats.map_keys = map.len() as u64;
        stats.map_utilization = map.utilization();
        let end_offset = (map.latest_offset() + 1).max(self.stats.first_dirty_offset);
        let mut cleaned = CleanedSegments {
            dir: self.dir.clone(),
            env: self.env.clone(),
            groups: Vec::new(),
            end_offset,
            removed_abort_markers: Vec::new(),
            truncations: self.truncations,
            installed: false,
            stats: CleanStats::default(),
        };
        if end_offset == self.stats.first_dirty_offset {
            cleaned.stats = stats;
            return Ok(cleaned);
        }
        let start = self.segments.first().map_or(end_offset, |s| s.base);
        let mut txns = TxnWalk::new(
            self.aborted
                .iter()
                .filter(|t| t.last_offset >= start && t.first_offset < end_offset)
                .copied(),
        );
        for group in self.group_segments(end_offset) {
            let written =
                self.clean_group(&group, &map, &mut txns, control, &mut stats, &mut cleaned);
            cleaned.groups.push(written?);
        }
        cleaned.stats = stats;
        Ok(cleaned)
    }

    /// Kafka's `buildOffsetMap`: every key of the dirty range (data of aborted
    /// transactions aside) with its latest offset, until the map is full; the map then
    /// covers up to the last batch mapped whole.
    fn build_offset_map(
        &self,
        map: &mut OffsetMap,
        control: &dyn CleanerControl,
        stats: &mut CleanStats,
    ) -> Result<(), StorageError> {
        let first_dirty = self.stats.first_dirty_offset;
        let end = self.stats.first_uncleanable_offset;
        let mut txns = TxnWalk::new(
            self.aborted
                .iter()
                .filter(|t| t.last_offset >= first_dirty && t.first_offset < end)
                .copied(),
        );
        for seg in self.segments.iter().filter(|s| s.next_base > first_dirty) {
            let from = if seg.base <= first_dirty {
                self.dirty_position
            } else {
                0
            };
            let mut cursor = BatchCursor::new(seg, from);
            while let Some((h, batch, _)) = cursor.next_batch(control)? {
                check_abort(control)?;
                stats.map_bytes_read += h.total_len() as u64;
                if h.is_control() {
                    txns.on_control_batch(&h, filter::control_of(&batch)?);
                } else if !txns.on_data_batch(&h) && !map_records(&h, &batch, first_dirty, map)? {
                    return Ok(());
                }
                if h.last_offset() >= first_dirty {
                    map.cover_up_to(h.last_offset());
                }
            }
            map.cover_up_to(seg.next_base - 1);
        }
        Ok(())
    }

    /// Writes one group of segments into one cleaned segment; on failure its files go.
    fn clean_group(
        &self,
        group: &[&SourceSegment],
        map: &OffsetMap,
        txns: &mut TxnWalk,
        control: &dyn CleanerControl,
        stats: &mut CleanStats,
        cleaned: &mut CleanedSegments,
    ) -> Result<CleanedGroup, StorageError> {
        let Some(first) = group.first() else {
            return Err(StorageError::Corrupt(
                "an empty group of segments to clean".into(),
            ));
        };
        let written = self.write_group(group, map, txns, control, stats, cleaned);
        if written.is_err() {
            remove_cleaned_files(&self.env, &self.dir, first.base);
        }
        written
    }

    fn write_group(
        &self,
        group: &[&SourceSegment],
        map: &OffsetMap,
        txns: &mut TxnWalk,
        control: &dyn CleanerControl,
        stats: &mut CleanStats,
        cleaned: &mut CleanedSegments,
    ) -> Result<CleanedGroup, StorageError> {
        let (Some(first), Some(last)) = (group.first(), group.last()) else {
            return Err(StorageError::Corrupt(
                "an empty group of segments to clean".into(),
            ));
        };
        let mut out = Segment::create_cleaned(&self.dir, first.base, self.now_ms, &self.env)?;
        let mut pending: Vec<(BatchHeader, Vec<u8>)> = Vec::new();
        let mut pending_bytes = 0;
        for seg in group {
            let mut cursor = BatchCursor::new(seg, 0);
            while let Some((h, batch, position)) = cursor.next_batch(control)? {
                check_abort(control)?;
                stats.bytes_read += h.total_len() as u64;
                let last_of_group =
                    seg.base == last.base && position + h.total_len() as u64 == seg.size;
                let filtered = self.filter_batch(&h, &batch, last_of_group, map, txns, stats)?;
                if let Some(marker) = filtered.removed_abort_marker {
                    cleaned.removed_abort_markers.push(marker);
                }
                if let Some(bytes) = filtered.kept {
                    pending_bytes += bytes.len();
                    let header = BatchHeader::parse(&bytes)?;
                    pending.push((header, bytes));
                }
                if pending_bytes >= WRITE_CHUNK {
                    self.write_batches(&mut out, &mut pending, control, stats)?;
                    pending_bytes = 0;
                }
            }
        }
        self.write_batches(&mut out, &mut pending, control, stats)?;
        out.seal_cleaned()?;
        Ok(CleanedGroup {
            base: first.base,
            sources: group.iter().map(|s| (s.base, s.file.clone())).collect(),
            next_base: last.next_base,
            last_modified_ms: group
                .iter()
                .map(|s| s.last_modified_ms)
                .max()
                .unwrap_or(self.now_ms),
        })
    }

    fn write_batches(
        &self,
        out: &mut Segment,
        pending: &mut Vec<(BatchHeader, Vec<u8>)>,
        control: &dyn CleanerControl,
        stats: &mut CleanStats,
    ) -> Result<(), StorageError> {
        if pending.is_empty() {
            return Ok(());
        }
        let stamped = pending
            .iter()
            .map(|(h, bytes)| StampedBatch::unchanged(*h, bytes))
            .collect::<Result<Vec<_>, _>>()?;
        out.append(&stamped, &self.config)?;
        let bytes: u64 = pending.iter().map(|(_, b)| b.len() as u64).sum();
        stats.bytes_written += bytes;
        control.throttle(bytes);
        pending.clear();
        Ok(())
    }
}

/// Puts the keyed records of a data batch at or after `first_dirty` into the map; `false`
/// when the map filled up.
fn map_records(
    h: &BatchHeader,
    batch: &bytes::Bytes,
    first_dirty: i64,
    map: &mut OffsetMap,
) -> Result<bool, StorageError> {
    if h.last_offset() < first_dirty {
        return Ok(true);
    }
    for record in decode_records(batch, MAX_DECOMPRESSED_BYTES)? {
        let record = record?;
        if let Some(key) = record.key.as_deref()
            && record.offset >= first_dirty
            && !map.put(key, record.offset)
        {
            return Ok(false);
        }
    }
    Ok(true)
}

fn check_abort(control: &dyn CleanerControl) -> Result<(), StorageError> {
    if control.should_abort() {
        return Err(StorageError::CleaningAborted);
    }
    Ok(())
}

impl CleanedSegments {
    /// What the cleaning did.
    pub fn stats(&self) -> &CleanStats {
        &self.stats
    }

    /// Whether there is anything to install (the map may have covered nothing new).
    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }

    /// The first dirty offset after this cleaning.
    pub fn end_offset(&self) -> i64 {
        self.end_offset
    }
}

impl Drop for CleanedSegments {
    /// Removes the `.cleaned` files of segments that were not installed.
    fn drop(&mut self) {
        if self.installed {
            return;
        }
        for group in &self.groups {
            remove_cleaned_files(&self.env, &self.dir, group.base);
        }
    }
}

/// Removes the files of a cleaned segment that will not be installed; one that cannot be
/// removed goes at the next start (see [`swap::recover`]).
fn remove_cleaned_files(env: &StorageEnv, dir: &std::path::Path, base: i64) {
    for kind in SegmentFileKind::ALL {
        let path = segment::segment_file_path(dir, base, kind, segment::CLEANED_SUFFIX);
        if let Err(e) = env.remove_file(&path) {
            tracing::warn!(path = %path.display(), error = %e, "cannot remove an abandoned cleaned segment; it goes at the next start");
        }
    }
}

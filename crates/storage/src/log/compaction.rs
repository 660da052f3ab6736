//! The log's side of compaction (see [`crate::cleaner`]): how dirty it is, the cleaning
//! task for its dirty part (Kafka's `LogCleanerManager.cleanableOffsets`,
//! `maxCompactionDelay`), and swapping the cleaned segments in.

use std::collections::HashMap;
use std::sync::Arc;

use super::PartitionLog;
use crate::checkpoint::{self, CLEANER_OFFSET_FILE};
use crate::cleaner::{CleanedSegments, CleaningTask, DirtyStats, LastBatch, SourceSegment, swap};
use crate::config::CompactionConfig;
use crate::error::StorageError;
use crate::producer_snapshot::ProducerSnapshot;
use crate::segment::Segment;

/// What [`PartitionLog::install_cleaned`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CleanOutcome {
    /// The cleaned segments replaced `replaced` segments.
    Installed {
        /// Segments replaced.
        replaced: usize,
        /// Cleaned segments swapped in.
        installed: usize,
    },
    /// The log changed meanwhile (retention, truncation, DeleteRecords took segments it
    /// read): nothing was installed, the cleaned files were removed.
    Abandoned,
}

impl PartitionLog {
    /// How dirty the log is, or `None` when it is not compacted. The cleaner never passes
    /// `high_watermark` (nor the last stable offset).
    pub fn dirty_stats(&self, now_ms: i64, high_watermark: i64) -> Option<DirtyStats> {
        let compaction = self.config.compaction.as_ref()?;
        Some(self.dirty_stats_with(compaction, now_ms, high_watermark))
    }

    /// What a cleaning of this log now would work on, `None` when it is not compacted, is
    /// offline or has nothing cleanable. It holds the files of the segments concerned, so
    /// the cleaning itself runs without access to the log ([`CleaningTask::run`]).
    pub fn plan_cleaning(
        &self,
        now_ms: i64,
        high_watermark: i64,
    ) -> Result<Option<CleaningTask>, StorageError> {
        let Some(compaction) = self.config.compaction.clone() else {
            return Ok(None);
        };
        let stats = self.dirty_stats_with(&compaction, now_ms, high_watermark);
        if stats.cleanable_bytes == 0 || self.is_offline() {
            return Ok(None);
        }
        let first_dirty = stats.first_dirty_offset;
        let end = stats.first_uncleanable_offset;
        let bases: Vec<i64> = self.segments.keys().copied().collect();
        let mut segments = Vec::new();
        let mut dirty_position = 0;
        for (seg, next_base) in self.segments.values().zip(bases.iter().skip(1)) {
            if seg.base_offset() >= end {
                break;
            }
            if seg.base_offset() <= first_dirty && first_dirty < *next_base {
                dirty_position = seg.locate(first_dirty)?.map_or(0, |(position, _)| position);
            }
            segments.push(SourceSegment {
                base: seg.base_offset(),
                next_base: *next_base,
                size: seg.size(),
                file: seg.file().clone(),
                index_bytes: seg.index_bytes(),
                last_modified_ms: seg.last_modified_ms(),
            });
        }
        let start = segments.first().map_or(end, |s| s.base);
        let aborted = self
            .aborted_txns
            .iter()
            .filter(|t| t.last_offset >= start && t.first_offset < end)
            .copied()
            .collect();
        let last_batches: HashMap<i64, LastBatch> = self
            .producers
            .iter()
            .map(|(id, entry)| {
                let last = LastBatch {
                    last_data_offset: entry.batches.back().map(|b| b.last_offset),
                    epoch: entry.epoch,
                };
                (id, last)
            })
            .collect();
        Ok(Some(CleaningTask {
            dir: self.dir.clone(),
            env: self.env.clone(),
            config: self.config.clone(),
            compaction,
            now_ms,
            stats,
            segments,
            dirty_position,
            aborted,
            last_batches,
            truncations: self.truncations,
        }))
    }

    /// The first dirty offset: the cleaner checkpoint, unless the log no longer holds it
    /// (then the log start, as Kafka resets it).
    pub(crate) fn first_dirty_offset(&self) -> i64 {
        let start = self.log_start_offset;
        match self.cleaner_checkpoint {
            Some(offset) if offset >= start && offset <= self.log_end_offset() => offset,
            _ => start,
        }
    }

    fn dirty_stats_with(
        &self,
        compaction: &CompactionConfig,
        now_ms: i64,
        high_watermark: i64,
    ) -> DirtyStats {
        let first_dirty = self.first_dirty_offset();
        let first_uncleanable =
            self.first_uncleanable_offset(compaction, first_dirty, now_ms, high_watermark);
        let clean_bytes = self
            .segments
            .range(..first_dirty)
            .map(|(_, s)| s.size())
            .sum();
        let from = self
            .segment_base_of(first_dirty.min(first_uncleanable))
            .unwrap_or(first_uncleanable);
        let cleanable_bytes = self
            .segments
            .range(from..first_uncleanable)
            .map(|(_, s)| s.size())
            .sum();
        let total = clean_bytes + cleanable_bytes;
        DirtyStats {
            first_dirty_offset: first_dirty,
            first_uncleanable_offset: first_uncleanable,
            clean_bytes,
            cleanable_bytes,
            dirty_ratio: if total == 0 {
                0.0
            } else {
                cleanable_bytes as f64 / total as f64
            },
            compaction_delay_ms: self.compaction_delay(compaction, first_dirty, now_ms),
        }
    }

    /// Base of the segment holding the first offset the cleaner may not pass: the least of
    /// the last stable offset, the high watermark, the active segment and the first segment
    /// with records younger than `min.compaction.lag.ms`; never below the first dirty offset.
    fn first_uncleanable_offset(
        &self,
        compaction: &CompactionConfig,
        first_dirty: i64,
        now_ms: i64,
        high_watermark: i64,
    ) -> i64 {
        let active_base = self.active_base();
        let mut limit = self
            .last_stable_offset()
            .min(high_watermark)
            .min(active_base);
        if compaction.min_compaction_lag_ms > 0 {
            let young_after = now_ms.saturating_sub(compaction.min_compaction_lag_ms);
            let from = self.segment_base_of(first_dirty).unwrap_or(first_dirty);
            if let Some(young) = self
                .segments
                .range(from..active_base)
                .map(|(_, s)| s)
                .find(|s| s.largest_timestamp() > young_after)
            {
                limit = limit.min(young.base_offset());
            }
        }
        let limit = limit.max(first_dirty);
        self.segment_base_of(limit).unwrap_or(limit)
    }

    /// How long ago the oldest dirty batch (by the first batch of each sealed dirty
    /// segment) passed `max.compaction.lag.ms`; 0 when none did.
    fn compaction_delay(
        &self,
        compaction: &CompactionConfig,
        first_dirty: i64,
        now_ms: i64,
    ) -> i64 {
        let from = self.segment_base_of(first_dirty).unwrap_or(first_dirty);
        let earliest = self
            .segments
            .range(from..self.active_base())
            .map(|(_, s)| s.first_batch_timestamp())
            .filter(|ts| *ts > 0)
            .min();
        let clean_until = now_ms.saturating_sub(compaction.max_compaction_lag_ms.max(0));
        match earliest {
            Some(ts) if ts < clean_until => clean_until - ts,
            _ => 0,
        }
    }

    fn active_base(&self) -> i64 {
        self.segments
            .keys()
            .next_back()
            .copied()
            .unwrap_or(self.log_start_offset)
    }
}

impl PartitionLog {
    /// Swaps cleaned segments in for the segments they were made from (see
    /// [`crate::cleaner::swap`]), unless the log no longer holds exactly those segments.
    /// Then the cleaner checkpoint moves to where the cleaning ended, producer-state
    /// snapshots inside the cleaned range go (their open transactions may have lost their
    /// markers), and aborted transactions whose marker was removed are forgotten, in memory
    /// and, durably, in the snapshots left. A failure once the swap is committed takes the
    /// log offline: reopening it finishes the swap from the files.
    pub fn install_cleaned(
        &mut self,
        mut cleaned: CleanedSegments,
        now_ms: i64,
    ) -> Result<CleanOutcome, StorageError> {
        self.health.check()?;
        if cleaned.is_empty() {
            self.set_cleaner_checkpoint(cleaned.end_offset(), now_ms);
            return Ok(CleanOutcome::Installed {
                replaced: 0,
                installed: 0,
            });
        }
        if !self.still_holds(&cleaned) {
            tracing::info!(dir = %self.dir.display(), "the log changed while it was cleaned; dropping the cleaned segments");
            return Ok(CleanOutcome::Abandoned);
        }
        let end = cleaned.end_offset();
        self.delete_snapshots(|offset| offset < end)?;
        self.forget_removed_markers(&cleaned.removed_abort_markers)?;
        let bases: Vec<i64> = cleaned.groups.iter().map(|g| g.base).collect();
        swap::commit(&self.env, &self.dir, &bases)?;
        cleaned.installed = true;
        let replaced = match self.swap_in(&cleaned, now_ms) {
            Ok(replaced) => replaced,
            Err(e) => {
                tracing::error!(dir = %self.dir.display(), error = %e, "swapping cleaned segments in failed; the log is offline until the broker restarts and finishes the swap");
                self.health.fail();
                return Err(e);
            }
        };
        self.set_cleaner_checkpoint(end, now_ms);
        self.check_invariants();
        Ok(CleanOutcome::Installed {
            replaced,
            installed: bases.len(),
        })
    }

    /// The offset from which the log is dirty, as the cleaner last recorded it.
    pub fn cleaner_checkpoint(&self) -> Option<i64> {
        self.cleaner_checkpoint
    }

    /// When the cleaner last finished a cleaning of this log (since it was opened).
    pub fn last_cleaned_ms(&self) -> Option<i64> {
        self.last_cleaned_ms
    }

    /// Whether the segments a cleaning read are still the log's, unchanged, and none of
    /// them is the active segment.
    fn still_holds(&self, cleaned: &CleanedSegments) -> bool {
        cleaned.truncations == self.truncations
            && cleaned.groups.iter().all(|group| {
                self.segments.contains_key(&group.next_base)
                    && group.sources.iter().all(|(base, file)| {
                        self.segments
                            .get(base)
                            .is_some_and(|seg| Arc::ptr_eq(seg.file(), file))
                    })
            })
    }

    /// Steps 2 and 3 of the swap, and the new segments in place of the old in memory.
    /// Returns how many segments were replaced.
    fn swap_in(&mut self, cleaned: &CleanedSegments, now_ms: i64) -> Result<usize, StorageError> {
        let mut replaced = 0;
        for group in &cleaned.groups {
            for (base, _) in &group.sources {
                if let Some(seg) = self.segments.remove(base) {
                    seg.delete()?;
                    replaced += 1;
                }
            }
            swap::rename_segment(
                &self.env,
                &self.dir,
                group.base,
                crate::segment::SWAP_SUFFIX,
                "",
            )?;
        }
        self.env.sync_dir(&self.dir)?;
        for group in &cleaned.groups {
            let (mut seg, _) = Segment::open(
                &self.dir,
                group.base,
                false,
                &self.config,
                now_ms,
                &self.env,
            )?;
            seg.touch(group.last_modified_ms);
            self.segments.insert(group.base, seg);
        }
        Ok(replaced)
    }

    /// Forgets the aborted transactions whose ABORT marker the cleaner removed: a
    /// read_committed consumer told of one would skip its producer's later batches,
    /// waiting for a marker that is gone. Their data went before the marker did, so
    /// forgetting them early (should the swap not happen) hides nothing.
    fn forget_removed_markers(&mut self, removed: &[(i64, i64)]) -> Result<(), StorageError> {
        if removed.is_empty() {
            return Ok(());
        }
        let gone = |t: &crate::producer_state::CompletedTxn| {
            removed.contains(&(t.producer_id, t.last_offset))
        };
        self.aborted_txns.retain(|t| !gone(t));
        for offset in self.snapshots.clone() {
            let Some(mut snapshot) = ProducerSnapshot::read(&self.env, &self.dir, offset)? else {
                continue;
            };
            if snapshot.aborted.iter().any(gone) {
                snapshot.aborted.retain(|t| !gone(t));
                snapshot.write_durably(&self.env, &self.dir)?;
            }
        }
        Ok(())
    }

    /// Records the first dirty offset after a cleaning; its file is not synced (a lost
    /// update only makes the next cleaning read more).
    fn set_cleaner_checkpoint(&mut self, offset: i64, now_ms: i64) {
        self.cleaner_checkpoint = Some(offset);
        self.last_cleaned_ms = Some(now_ms);
        self.persist_cleaner_checkpoint();
    }

    pub(super) fn persist_cleaner_checkpoint(&self) {
        let Some(offset) = self.cleaner_checkpoint else {
            return;
        };
        if let Err(e) = checkpoint::write_with(
            &self.env,
            &self.dir.join(CLEANER_OFFSET_FILE),
            offset,
            false,
        ) {
            tracing::warn!(dir = %self.dir.display(), error = %e, "cannot write the cleaner checkpoint; the next cleaning rereads more");
        }
    }
}

//! What the cleaner keeps of one batch (Kafka's `Cleaner.cleanInto` record filter and
//! `MemoryRecords.filterTo`), and how segments are grouped into cleaned ones.

use bytes::Bytes;
use sluice_protocol::batch::{BatchHeader, empty_batch, marker_key_is_commit};
use sluice_protocol::records::{MAX_DECOMPRESSED_BYTES, Record, decode_records, retained_batch};

use super::offset_map::OffsetMap;
use super::read::SourceSegment;
use super::txn::{Control, TxnWalk};
use super::{CleanStats, CleaningTask};
use crate::error::StorageError;

/// Kafka's `BatchRetention`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Retention {
    /// Drop the batch, whatever its records.
    Delete,
    /// Keep the records that pass; drop the batch when none does.
    DeleteEmpty,
    /// Keep the records that pass, and the batch as an empty one when none does.
    RetainEmpty,
}

/// The outcome of filtering one batch.
pub(super) struct Filtered {
    /// What goes into the cleaned segment, if anything.
    pub(super) kept: Option<Vec<u8>>,
    /// The batch was an ABORT marker whose record went: its producer and offset, so the
    /// log forgets the aborted transaction it closed.
    pub(super) removed_abort_marker: Option<(i64, i64)>,
}

/// Reads what a control batch holds.
pub(super) fn control_of(batch: &Bytes) -> Result<Control, StorageError> {
    let Some(record) = decode_records(batch, MAX_DECOMPRESSED_BYTES)?.next() else {
        return Ok(Control::Empty);
    };
    Ok(
        match record?.key.as_deref().and_then(marker_key_is_commit) {
            Some(true) => Control::Commit,
            Some(false) => Control::Abort,
            None => Control::Other,
        },
    )
}

impl CleaningTask {
    /// Filters one batch of the cleaned range. `last_of_group` keeps the last batch of a
    /// group of segments (empty if need be), so the cleaned segment ends where its
    /// sources ended and the segments of the log stay contiguous.
    pub(super) fn filter_batch(
        &self,
        h: &BatchHeader,
        batch: &Bytes,
        last_of_group: bool,
        map: &OffsetMap,
        txns: &mut TxnWalk,
        stats: &mut CleanStats,
    ) -> Result<Filtered, StorageError> {
        let control = if h.is_control() {
            Some(control_of(batch)?)
        } else {
            None
        };
        let can_discard = match control {
            Some(control) => txns.on_control_batch(h, control),
            None => txns.on_data_batch(h),
        };
        // A marker goes only once its delete horizon has passed (markers piggy-back on the
        // tombstone rule); aborted data goes at once.
        let discard_records = match control {
            Some(_) => can_discard && h.delete_horizon_ms().is_some_and(|t| t <= self.now_ms),
            None => can_discard,
        };
        let retention =
            if (h.has_producer_id() && self.is_last_batch_of_producer(h)) || last_of_group {
                Retention::RetainEmpty
            } else if discard_records {
                Retention::Delete
            } else {
                Retention::DeleteEmpty
            };
        let removed_abort_marker = (discard_records && control == Some(Control::Abort))
            .then_some((h.producer_id, h.base_offset));
        stats.records_read += u64::try_from(h.records_count.max(0)).unwrap_or(0);
        if retention == Retention::Delete {
            return Ok(Filtered {
                kept: None,
                removed_abort_marker,
            });
        }
        let mut retained: Vec<Record> = Vec::new();
        let mut all_retained = true;
        let mut tombstones = false;
        for record in decode_records(batch, MAX_DECOMPRESSED_BYTES)? {
            let record = record?;
            let keep =
                !discard_records && (control.is_some() || self.keep_record(h, &record, map, stats));
            if keep {
                tombstones |= record.value.is_none();
                retained.push(record);
            } else {
                all_retained = false;
            }
        }
        stats.records_retained += retained.len() as u64;
        let kept = if !retained.is_empty() {
            let marker_of_empty_txn = can_discard && control.is_some();
            let set_horizon =
                (tombstones || marker_of_empty_txn) && h.delete_horizon_ms().is_none();
            if all_retained && !set_horizon {
                Some(batch.to_vec())
            } else {
                let horizon = if set_horizon {
                    Some(
                        self.now_ms
                            .saturating_add(self.compaction.delete_retention_ms),
                    )
                } else {
                    h.delete_horizon_ms()
                };
                Some(retained_batch(batch, &retained, horizon)?)
            }
        } else if retention == Retention::RetainEmpty {
            Some(empty_batch(h).to_vec())
        } else {
            None
        };
        Ok(Filtered {
            kept,
            removed_abort_marker,
        })
    }

    /// Whether a record of a data batch stays: one the map did not reach does; otherwise
    /// it must be the latest of its key, and a tombstone only until its batch's delete
    /// horizon. Records without a key go.
    fn keep_record(
        &self,
        h: &BatchHeader,
        record: &Record,
        map: &OffsetMap,
        stats: &mut CleanStats,
    ) -> bool {
        if record.offset > map.latest_offset() {
            return true;
        }
        let Some(key) = record.key.as_deref() else {
            stats.keyless_records += 1;
            return false;
        };
        let latest = map.get(key).is_none_or(|found| record.offset >= found);
        let keep_tombstone = h.delete_horizon_ms().is_none_or(|t| self.now_ms < t);
        latest && (record.value.is_some() || keep_tombstone)
    }

    /// Kafka keeps the batch holding an active producer's last sequence (or, when its
    /// last entry is a marker, that marker with its epoch), so the producer's state can
    /// be rebuilt from the log and its retries are still recognised.
    fn is_last_batch_of_producer(&self, h: &BatchHeader) -> bool {
        self.last_batches
            .get(&h.producer_id)
            .is_some_and(|last| match last.last_data_offset {
                Some(offset) => h.last_offset() == offset,
                None => h.is_control() && h.producer_epoch == last.epoch,
            })
    }

    /// Groups the segments below `end` into runs that are cleaned into one segment each
    /// (Kafka's `groupSegmentsBySize`): consecutive segments while their bytes fit in
    /// `segment.bytes`, their indexes in `segment.index.bytes`, and their offsets in the
    /// index's 32-bit relative offsets.
    pub(super) fn group_segments(&self, end: i64) -> Vec<Vec<&SourceSegment>> {
        let max_bytes = self.config.effective_segment_bytes();
        let max_index = self.config.max_index_bytes;
        let mut groups: Vec<Vec<&SourceSegment>> = Vec::new();
        let mut current: Vec<&SourceSegment> = Vec::new();
        let (mut bytes, mut offsets_index, mut time_index) = (0u64, 0u64, 0u64);
        for seg in self.segments.iter().filter(|s| s.base < end) {
            let fits = current.first().is_some_and(|first| {
                bytes + seg.size <= max_bytes
                    && offsets_index + seg.index_bytes.0 <= max_index
                    && time_index + seg.index_bytes.1 <= max_index
                    && (seg.size == 0 || seg.next_base - 1 - first.base <= i64::from(i32::MAX))
            });
            if !fits && !current.is_empty() {
                groups.push(std::mem::take(&mut current));
                (bytes, offsets_index, time_index) = (0, 0, 0);
            }
            bytes += seg.size;
            offsets_index += seg.index_bytes.0;
            time_index += seg.index_bytes.1;
            current.push(seg);
        }
        if !current.is_empty() {
            groups.push(current);
        }
        groups
    }
}

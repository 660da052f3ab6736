//! Reading `__consumer_offsets` and `__transaction_state` back at start-up.
//!
//! Whatever a partition holds, one damaged batch or record must not keep the
//! broker from starting: it is skipped with an ERROR naming the partition and
//! offset (Kafka's loaders skip records of unknown types the same way) and
//! loading goes on. Only a failed read of the log stops the start.

use bytes::Bytes;
use sluice_protocol::batch::{BatchHeader, split_batches};
use sluice_protocol::records::{self, MAX_DECOMPRESSED_BYTES, Record};
use sluice_protocol::schema_codec::SkippedRecord;

use crate::partition::Partition;

/// Bytes read per step.
const REPLAY_CHUNK: usize = 1 << 20;

/// A record of an internal topic: where it is and its key and value.
pub struct KeyedRecord {
    /// Its offset in the partition.
    pub offset: i64,
    /// The record key (records without one carry nothing a coordinator reads).
    pub key: Bytes,
    /// The value; `None` for a tombstone.
    pub value: Option<Bytes>,
}

/// `topic-partition`, as Kafka names a partition in its logs.
pub fn partition_name(partition: &Partition) -> String {
    format!("{}-{}", partition.topic, partition.index)
}

/// Calls `visit` with every batch of `partition` in log order, with its decoded
/// records. Batches that cannot be decoded are logged and skipped.
pub fn for_each_batch(
    partition: &Partition,
    mut visit: impl FnMut(&BatchHeader, Vec<Record>),
) -> Result<(), String> {
    let name = partition_name(partition);
    let mut offset = partition.offsets().log_start_offset;
    loop {
        let read = partition
            .read(offset, REPLAY_CHUNK, false)
            .map_err(|e| format!("cannot read {name} at offset {offset}: {e}"))?;
        if read.records.is_empty() {
            return Ok(());
        }
        for item in split_batches(&read.records) {
            let Ok((header, range)) = item else {
                // The log only returns whole batches with sound headers, so the
                // rest of the partition cannot be located.
                tracing::error!(
                    partition = %name,
                    offset,
                    "skipping the rest of a coordinator partition: unreadable batch header"
                );
                return Ok(());
            };
            if range.end > read.records.len() {
                break; // a partial batch: the next read starts with it
            }
            let batch = read.records.slice(range);
            offset = header.last_offset() + 1;
            match decode_batch(&batch) {
                Ok(records) => visit(&header, records),
                Err(error) => tracing::error!(
                    partition = %name,
                    offset = header.base_offset,
                    last_offset = header.last_offset(),
                    %error,
                    "skipping an undecodable batch while loading coordinator state"
                ),
            }
        }
        if offset >= read.offsets.log_end_offset {
            return Ok(());
        }
    }
}

fn decode_batch(batch: &Bytes) -> Result<Vec<Record>, records::RecordsError> {
    records::decode_records(batch, MAX_DECOMPRESSED_BYTES)?.collect()
}

/// The keyed records of a batch (key-less ones mean nothing to a coordinator).
pub fn keyed(records: Vec<Record>) -> Vec<KeyedRecord> {
    records
        .into_iter()
        .filter_map(|r| {
            Some(KeyedRecord {
                offset: r.offset,
                key: r.key?,
                value: r.value,
            })
        })
        .collect()
}

/// Logs each record a coordinator skipped; `located(index)` says which
/// partition and offset the record at `index` of its input came from.
pub fn report_skipped(skipped: &[SkippedRecord], located: impl Fn(usize) -> Option<(String, i64)>) {
    for s in skipped {
        let (partition, offset) = located(s.index).unwrap_or_else(|| ("unknown".into(), -1));
        tracing::error!(
            partition = %partition,
            offset,
            error = %s.error,
            "skipping an undecodable record while loading coordinator state"
        );
    }
}

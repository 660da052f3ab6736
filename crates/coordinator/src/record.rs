//! What a coordinator writes to and reads back from its internal topic.

use bytes::Bytes;
use sluice_protocol::model::ProducerIdAndEpoch;

/// One record of an internal topic: a key in the coordinator's schema, and a
/// value, or `None` for a tombstone (the key's state is gone).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoordinatorRecord {
    /// The encoded key.
    pub key: Bytes,
    /// The encoded value; `None` deletes the key.
    pub value: Option<Bytes>,
}

impl CoordinatorRecord {
    /// A record setting `key` to `value`.
    pub fn new(key: Bytes, value: Bytes) -> Self {
        Self {
            key,
            value: Some(value),
        }
    }

    /// A tombstone of `key`.
    pub fn tombstone(key: Bytes) -> Self {
        Self { key, value: None }
    }
}

/// One entry of an internal topic's log, as a shard replays it: a record (of a
/// transactional batch or not), or the marker that ended a transaction.
///
/// Live writes and loading hand the shard the same entries, in log order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogEntry {
    /// A record; `transactional` is the producer of a transactional batch,
    /// whose records only count once its COMMIT marker follows.
    Record {
        /// The record.
        record: CoordinatorRecord,
        /// The producer of the transactional batch the record is in.
        transactional: Option<ProducerIdAndEpoch>,
    },
    /// A COMMIT (`commit`) or ABORT marker of `producer`'s transaction.
    Marker {
        /// The producer whose transaction ended.
        producer: ProducerIdAndEpoch,
        /// COMMIT (`true`) or ABORT.
        commit: bool,
    },
}

impl LogEntry {
    /// A record of a non-transactional batch.
    pub fn record(record: CoordinatorRecord) -> Self {
        Self::Record {
            record,
            transactional: None,
        }
    }
}

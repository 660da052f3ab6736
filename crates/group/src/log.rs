//! The durable side of the coordinator: the `__consumer_offsets` log.
//!
//! The coordinator never touches storage itself. It hands finished records to
//! a [`GroupLog`] and acknowledges the client only once the log says they are
//! durable, exactly as Kafka acknowledges an OffsetCommit only after the
//! `__consumer_offsets` append is replicated.

use std::future::Future;
use std::pin::Pin;

use bytes::Bytes;
use parking_lot::Mutex;

use crate::coordinator::GroupCoordinator;
use crate::error::{GroupError, GroupLogError};

/// One record for `__consumer_offsets`: key and value, or `None` for a tombstone.
pub type GroupRecord = (Bytes, Option<Bytes>);

/// The future returned by [`GroupLog::append`].
pub type AppendFuture<'a> = Pin<Box<dyn Future<Output = Result<(), GroupLogError>> + Send + 'a>>;

/// Where the coordinator writes its records.
///
/// All records of one group go to one partition (see
/// [`sluice_protocol::model::coordinator_partition_for`]), and
/// the coordinator calls `append` for one group at a time, in the order the
/// changes happened, so the log order is the order of the in-memory changes.
pub trait GroupLog: Send + Sync {
    /// Durably append `records` to the `__consumer_offsets` partition of
    /// `group_id`. Resolves only once the records are durable.
    fn append(&self, group_id: &str, records: Vec<GroupRecord>) -> AppendFuture<'_>;

    /// Durably append `records` (offset commits of a TxnOffsetCommit) to the
    /// `__consumer_offsets` partition of `group_id` as one *transactional*
    /// batch of `producer_id`/`producer_epoch`, exactly as a transactional
    /// produce would. The broker later writes the COMMIT/ABORT marker and
    /// calls [`crate::GroupCoordinator::complete_transaction`]. Producer
    /// fencing or verification failures are reported as
    /// [`GroupLogError::Refused`] with the Kafka error to answer with.
    fn append_transactional(
        &self,
        group_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        records: Vec<GroupRecord>,
    ) -> AppendFuture<'_>;
}

/// A [`GroupLog`] kept in memory: for tests, and for running without storage.
#[derive(Debug, Default)]
pub struct MemoryGroupLog {
    inner: Mutex<MemoryLogInner>,
}

#[derive(Debug, Default)]
struct MemoryLogInner {
    entries: Vec<MemoryLogEntry>,
    fail_next: Vec<GroupLogError>,
}

/// One entry of a [`MemoryGroupLog`], in log order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MemoryLogEntry {
    /// A record written for `group_id`; `producer` is the producer id and
    /// epoch of a transactional batch.
    Record {
        /// The group the record was written for.
        group_id: String,
        /// Producer id and epoch of a transactional batch.
        producer: Option<(i64, i16)>,
        /// Key and value.
        record: GroupRecord,
    },
    /// A transaction marker (see [`MemoryGroupLog::write_marker`]).
    Marker {
        /// The producer whose transaction ended.
        producer_id: i64,
        /// COMMIT (`true`) or ABORT.
        commit: bool,
    },
}

impl MemoryGroupLog {
    /// An empty log.
    pub fn new() -> Self {
        Self::default()
    }

    /// Every record appended so far (transactional ones included), in order,
    /// with the group it was written for.
    pub fn records(&self) -> Vec<(String, GroupRecord)> {
        self.inner
            .lock()
            .entries
            .iter()
            .filter_map(|e| match e {
                MemoryLogEntry::Record {
                    group_id, record, ..
                } => Some((group_id.clone(), record.clone())),
                MemoryLogEntry::Marker { .. } => None,
            })
            .collect()
    }

    /// Every entry (records and markers) in log order.
    pub fn entries(&self) -> Vec<MemoryLogEntry> {
        self.inner.lock().entries.clone()
    }

    /// The non-transactional records without group ids, ready for
    /// `GroupCoordinator::load` (use [`Self::replay_into`] to replay
    /// transactions too).
    pub fn replay(&self) -> Vec<GroupRecord> {
        self.inner
            .lock()
            .entries
            .iter()
            .filter_map(|e| match e {
                MemoryLogEntry::Record {
                    producer: None,
                    record,
                    ..
                } => Some(record.clone()),
                _ => None,
            })
            .collect()
    }

    /// Appends a COMMIT/ABORT marker of `producer_id`, as the broker does
    /// before calling `GroupCoordinator::complete_transaction`.
    pub fn write_marker(&self, producer_id: i64, commit: bool) {
        self.inner.lock().entries.push(MemoryLogEntry::Marker {
            producer_id,
            commit,
        });
    }

    /// Replays the whole log into `coordinator` the way the broker does at
    /// startup: `load` for plain records, `load_transactional` for records of
    /// transactional batches and `replay_marker` for markers, in log order.
    pub fn replay_into(&self, coordinator: &GroupCoordinator) -> Result<(), GroupError> {
        let mut first_error = None;
        for entry in self.entries() {
            let result = match entry {
                MemoryLogEntry::Record {
                    producer: None,
                    record,
                    ..
                } => coordinator.load([record]),
                MemoryLogEntry::Record {
                    producer: Some((producer_id, _)),
                    record,
                    ..
                } => coordinator.load_transactional(producer_id, [record]),
                MemoryLogEntry::Marker {
                    producer_id,
                    commit,
                } => {
                    coordinator.replay_marker(producer_id, commit);
                    Ok(())
                }
            };
            if let Err(e) = result {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    fn push(
        &self,
        group_id: &str,
        producer: Option<(i64, i16)>,
        records: Vec<GroupRecord>,
    ) -> AppendFuture<'_> {
        let mut inner = self.inner.lock();
        let result = if inner.fail_next.is_empty() {
            inner
                .entries
                .extend(records.into_iter().map(|record| MemoryLogEntry::Record {
                    group_id: group_id.to_owned(),
                    producer,
                    record,
                }));
            Ok(())
        } else {
            Err(inner.fail_next.remove(0))
        };
        Box::pin(std::future::ready(result))
    }

    /// Make the next append fail with `error` (queued: call repeatedly to fail
    /// several appends in a row).
    pub fn fail_next(&self, error: GroupLogError) {
        self.inner.lock().fail_next.push(error);
    }
}

impl GroupLog for MemoryGroupLog {
    fn append(&self, group_id: &str, records: Vec<GroupRecord>) -> AppendFuture<'_> {
        self.push(group_id, None, records)
    }

    fn append_transactional(
        &self,
        group_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        records: Vec<GroupRecord>,
    ) -> AppendFuture<'_> {
        self.push(group_id, Some((producer_id, producer_epoch)), records)
    }
}

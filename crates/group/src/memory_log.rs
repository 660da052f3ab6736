//! `__consumer_offsets` kept in memory: for tests, and for running without
//! storage.

use parking_lot::Mutex;
use sluice_coordinator::{
    AppendFuture, CoordinatorRecord, LogEntry, PartitionLoader, PartitionWriter, WriteError,
};
use sluice_protocol::model::{LeaderEpoch, ProducerIdAndEpoch};

use crate::CodecError;
use crate::coordinator::GroupCoordinator;

/// A [`PartitionWriter`] keeping every partition's log in memory, in one
/// sequence; it can fail appends on demand.
#[derive(Debug, Default)]
pub struct MemoryGroupLog {
    inner: Mutex<MemoryLogInner>,
}

#[derive(Debug, Default)]
struct MemoryLogInner {
    entries: Vec<MemoryLogEntry>,
    fail_next: Vec<WriteError>,
}

/// One entry of a [`MemoryGroupLog`], in log order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MemoryLogEntry {
    /// A record written to `partition`; `producer` is the producer of a
    /// transactional batch.
    Record {
        /// The `__consumer_offsets` partition.
        partition: i32,
        /// The producer of a transactional batch.
        producer: Option<ProducerIdAndEpoch>,
        /// The record.
        record: CoordinatorRecord,
    },
    /// A transaction marker (see [`MemoryGroupLog::write_marker`]).
    Marker {
        /// The `__consumer_offsets` partition.
        partition: i32,
        /// The producer whose transaction ended.
        producer: ProducerIdAndEpoch,
        /// COMMIT (`true`) or ABORT.
        commit: bool,
    },
}

impl MemoryLogEntry {
    /// The partition the entry is in, and the entry as a shard replays it.
    pub fn to_log_entry(&self) -> (i32, LogEntry) {
        match self {
            Self::Record {
                partition,
                producer,
                record,
            } => (
                *partition,
                LogEntry::Record {
                    record: record.clone(),
                    transactional: *producer,
                },
            ),
            Self::Marker {
                partition,
                producer,
                commit,
            } => (
                *partition,
                LogEntry::Marker {
                    producer: *producer,
                    commit: *commit,
                },
            ),
        }
    }
}

impl MemoryGroupLog {
    /// An empty log.
    pub fn new() -> Self {
        Self::default()
    }

    /// Every record appended so far (transactional ones included), in order.
    pub fn records(&self) -> Vec<CoordinatorRecord> {
        self.inner
            .lock()
            .entries
            .iter()
            .filter_map(|e| match e {
                MemoryLogEntry::Record { record, .. } => Some(record.clone()),
                MemoryLogEntry::Marker { .. } => None,
            })
            .collect()
    }

    /// Every entry (records and markers) in log order.
    pub fn entries(&self) -> Vec<MemoryLogEntry> {
        self.inner.lock().entries.clone()
    }

    /// Appends a COMMIT/ABORT marker of `producer` to `partition`, as the
    /// broker does before calling `GroupCoordinator::complete_transaction`.
    pub fn write_marker(&self, partition: i32, producer: ProducerIdAndEpoch, commit: bool) {
        self.inner.lock().entries.push(MemoryLogEntry::Marker {
            partition,
            producer,
            commit,
        });
    }

    /// Loads every partition of `coordinator` (which must not have it loaded
    /// yet) from this log, as the broker does at startup: each partition's
    /// entries replayed in log order, then the shard activated. Returns the
    /// first entry that did not replay, after loading everything else.
    pub fn load_into(&self, coordinator: &GroupCoordinator) -> Result<(), CodecError> {
        let entries = self.entries();
        let mut first_error = None;
        for partition in 0..coordinator.partition_count() {
            let Some(mut loader) = coordinator.load(partition, LeaderEpoch(0)) else {
                continue;
            };
            for entry in &entries {
                let (p, entry) = entry.to_log_entry();
                if p == partition
                    && let Err(e) = loader.replay(&entry)
                {
                    first_error.get_or_insert(e);
                }
            }
            loader.finish();
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Make the next append fail with `error` (queued: call repeatedly to fail
    /// several appends in a row).
    pub fn fail_next(&self, error: WriteError) {
        self.inner.lock().fail_next.push(error);
    }
}

impl PartitionWriter for MemoryGroupLog {
    fn append(
        &self,
        partition: i32,
        transactional: Option<ProducerIdAndEpoch>,
        records: Vec<CoordinatorRecord>,
    ) -> AppendFuture<'_> {
        let mut inner = self.inner.lock();
        let result = if inner.fail_next.is_empty() {
            inner
                .entries
                .extend(records.into_iter().map(|record| MemoryLogEntry::Record {
                    partition,
                    producer: transactional,
                    record,
                }));
            Ok(())
        } else {
            Err(inner.fail_next.remove(0))
        };
        Box::pin(std::future::ready(result))
    }
}

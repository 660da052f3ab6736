//! Typed storage errors; the broker maps them to Kafka error codes in one place.

use std::path::PathBuf;

use sluice_protocol::batch::BatchError;
use sluice_protocol::records::RecordsError;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum StorageError {
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    #[error("offset {offset} is out of range [{log_start_offset}, {log_end_offset}]")]
    OffsetOutOfRange {
        offset: i64,
        log_start_offset: i64,
        log_end_offset: i64,
    },
    #[error("invalid record batch: {0}")]
    InvalidBatch(#[from] BatchError),
    #[error("cannot decode stored records: {0}")]
    Records(#[from] RecordsError),
    #[error("corrupt log: {0}")]
    Corrupt(String),
    #[error("{0}")]
    Producer(#[from] crate::producer_state::ProducerError),
    /// A batch does not continue the log (follower appends keep the leader's offsets and
    /// epochs, so they must line up exactly).
    #[error("{0}")]
    AppendOrder(#[from] AppendOrderError),
    /// An fsync of the log failed earlier. The kernel may have dropped the dirty pages it
    /// could not write ("fsyncgate"), so data the log accepted may be gone although reads
    /// still return it: the log takes no more writes and reports nothing durable until it
    /// is reopened with recovery.
    #[error(
        "the log in {} is offline after a failed fsync; restart the broker to recover it from what is on disk",
        dir.display()
    )]
    Offline { dir: PathBuf },
    /// The log cleaner was told to stop (shutdown, the partition closed) before it finished.
    #[error("log cleaning was aborted")]
    CleaningAborted,
}

/// Why batches cannot be appended where the log ends.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum AppendOrderError {
    /// A batch starts before the previous one ends (or before the log end).
    #[error("the batch at offset {found} does not continue the log at offset {expected}")]
    UnexpectedOffset {
        /// The lowest offset the next batch may start at.
        expected: i64,
        /// Where it starts.
        found: i64,
    },
    /// A batch carries an older leader epoch than data already before it.
    #[error(
        "leader epoch {epoch} of the batch at offset {offset} is older than epoch {latest} before it"
    )]
    EpochRegression {
        /// The batch's base offset.
        offset: i64,
        /// Its leader epoch.
        epoch: i32,
        /// The newest epoch before it.
        latest: i32,
    },
    /// A batch carries no leader epoch (negative).
    #[error("the batch at offset {offset} has no leader epoch ({epoch})")]
    NoEpoch {
        /// The batch's base offset.
        offset: i64,
        /// Its leader epoch field.
        epoch: i32,
    },
}

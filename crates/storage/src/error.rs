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
    /// An fsync of the log failed earlier. The kernel may have dropped the dirty pages it
    /// could not write ("fsyncgate"), so data the log accepted may be gone although reads
    /// still return it: the log takes no more writes and reports nothing durable until it
    /// is reopened with recovery.
    #[error(
        "the log in {} is offline after a failed fsync; restart the broker to recover it from what is on disk",
        dir.display()
    )]
    Offline { dir: PathBuf },
}

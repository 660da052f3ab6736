//! Typed storage errors; the broker maps them to Kafka error codes in one place.

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
}

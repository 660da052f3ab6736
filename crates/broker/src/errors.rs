//! The one place storage failures become Kafka error codes.

use kafka_protocol::error::ResponseError;
use sluice_protocol::kafka_protocol;
use sluice_storage::StorageError;

/// Maps a storage error to the code Kafka would return for it.
pub fn storage_error_code(e: &StorageError) -> ResponseError {
    match e {
        StorageError::OffsetOutOfRange { .. } => ResponseError::OffsetOutOfRange,
        StorageError::InvalidBatch(_) => ResponseError::CorruptMessage,
        _ => ResponseError::KafkaStorageError,
    }
}

//! The one place storage failures become Kafka error codes.

use kafka_protocol::error::ResponseError;
use sluice_protocol::kafka_protocol;
use sluice_storage::StorageError;
use sluice_storage::producer_state::ProducerError;

/// Maps a storage error to the code Kafka would return for it.
pub fn storage_error_code(e: &StorageError) -> ResponseError {
    match e {
        StorageError::OffsetOutOfRange { .. } => ResponseError::OffsetOutOfRange,
        StorageError::InvalidBatch(_) => ResponseError::CorruptMessage,
        StorageError::Producer(ProducerError::InvalidEpoch { .. }) => {
            ResponseError::InvalidProducerEpoch
        }
        StorageError::Producer(ProducerError::OutOfOrder { .. }) => {
            ResponseError::OutOfOrderSequenceNumber
        }
        _ => ResponseError::KafkaStorageError,
    }
}

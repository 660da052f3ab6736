//! The one place storage failures become Kafka error codes.

use std::time::Duration;

use kafka_protocol::error::ResponseError;
use sluice_protocol::kafka_protocol;
use sluice_storage::StorageError;
use sluice_storage::producer_state::ProducerError;

use crate::log_throttle::LogThrottle;

/// Storage failures a client sees as KAFKA_STORAGE_ERROR (a full disk, the open-files
/// limit, an I/O error) are logged at most this often, with the file and errno.
const STORAGE_ERROR_LOG_INTERVAL: Duration = Duration::from_secs(5);
static STORAGE_ERRORS: LogThrottle = LogThrottle::new(STORAGE_ERROR_LOG_INTERVAL);

/// Maps a storage error to the code Kafka would return for it. Errors of the broker's
/// own storage are logged here (rate-limited), since the client only learns the code.
pub fn storage_error_code(e: &StorageError) -> ResponseError {
    let code = kafka_code(e);
    if code == ResponseError::KafkaStorageError
        && let Some(held_back) = STORAGE_ERRORS.ready()
    {
        tracing::error!(error = %e, held_back, "storage error answered as KAFKA_STORAGE_ERROR");
    }
    code
}

fn kafka_code(e: &StorageError) -> ResponseError {
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

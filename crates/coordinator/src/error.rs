//! The errors coordinators share and the one place they become Kafka codes.
//!
//! Clients only ever see error codes. These types say precisely what went
//! wrong, for logs and tests, and [`WriteError::response_error`] and
//! [`CoordinatorError::response_error`] are where the codes are chosen.

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use sluice_protocol::model::TopicPartition;
use sluice_protocol::schema_codec::CodecError;

/// Why writing to a coordinator's internal topic failed.
///
/// The variants follow the storage failures Kafka distinguishes when it maps
/// an append error to the code a group or transactional client sees.
#[derive(Debug, Clone, thiserror::Error)]
pub enum WriteError {
    /// The partition has no log here yet (its topic could not be created or
    /// opened). Clients retry after rediscovering the coordinator.
    #[error("{0} is not available on this node")]
    PartitionUnavailable(TopicPartition),
    /// The broker is shutting down.
    #[error("the broker is shutting down")]
    ShuttingDown,
    /// What the write needs is being prepared (a block of producer ids being reserved);
    /// the client retries.
    #[error("not ready yet, retry")]
    Loading,
    /// This node does not lead the partition (any more): another node
    /// coordinates its keys.
    #[error("this node is not the leader of the coordinator's partition")]
    NotLeader,
    /// The log could not be written or synced (a disk failure).
    #[error("storage error: {0}")]
    Storage(#[source] Arc<dyn std::error::Error + Send + Sync>),
    /// The records could not be encoded (a bug, never client input).
    #[error("cannot encode coordinator record: {0}")]
    Encode(#[from] CodecError),
    /// The log refused a transactional append with this Kafka error (a fenced
    /// or stale producer epoch). The client receives the error as is.
    #[error("transactional append refused: {0:?}")]
    Refused(ResponseError),
}

impl WriteError {
    /// A storage failure with its cause.
    pub fn storage(cause: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Storage(Arc::new(cause))
    }

    /// The error code Kafka answers with when a coordinator write fails this
    /// way: the same mapping for groups (`appendGroupMetadataErrorToResponseError`)
    /// and transactions (`TransactionStateManager.appendTransactionToLog`).
    pub fn response_error(&self) -> ResponseError {
        match self {
            Self::PartitionUnavailable(_) | Self::ShuttingDown => {
                ResponseError::CoordinatorNotAvailable
            }
            Self::Loading => ResponseError::CoordinatorLoadInProgress,
            Self::NotLeader | Self::Storage(_) => ResponseError::NotCoordinator,
            Self::Encode(_) => ResponseError::UnknownServerError,
            Self::Refused(e) => *e,
        }
    }
}

/// Why a request cannot be served by the shard of its key on this node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CoordinatorError {
    /// The key's partition is not loaded here (never was, or was unloaded):
    /// another node coordinates it.
    #[error("this node is not the coordinator of the key's partition")]
    NotCoordinator,
    /// The key's partition is being loaded; the client retries.
    #[error("the coordinator is loading the key's partition")]
    LoadInProgress,
}

impl CoordinatorError {
    /// NOT_COORDINATOR or COORDINATOR_LOAD_IN_PROGRESS, as Kafka answers.
    pub fn response_error(self) -> ResponseError {
        match self {
            Self::NotCoordinator => ResponseError::NotCoordinator,
            Self::LoadInProgress => ResponseError::CoordinatorLoadInProgress,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_errors_map_like_kafka() {
        let tp = TopicPartition::new("__consumer_offsets", 3);
        let cases = [
            (
                WriteError::PartitionUnavailable(tp),
                ResponseError::CoordinatorNotAvailable,
            ),
            (
                WriteError::ShuttingDown,
                ResponseError::CoordinatorNotAvailable,
            ),
            (WriteError::NotLeader, ResponseError::NotCoordinator),
            (
                WriteError::storage(std::io::Error::other("EIO")),
                ResponseError::NotCoordinator,
            ),
            (
                WriteError::Encode(CodecError::TooLarge("metadata")),
                ResponseError::UnknownServerError,
            ),
            (
                WriteError::Refused(ResponseError::ProducerFenced),
                ResponseError::ProducerFenced,
            ),
        ];
        for (error, code) in cases {
            assert_eq!(error.response_error(), code, "{error}");
        }
        assert_eq!(
            CoordinatorError::NotCoordinator.response_error(),
            ResponseError::NotCoordinator
        );
        assert_eq!(
            CoordinatorError::LoadInProgress.response_error(),
            ResponseError::CoordinatorLoadInProgress
        );
    }
}

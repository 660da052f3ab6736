//! Error types of the coordinator, of the log it writes to and of the marker
//! writer.
//!
//! Kafka clients only ever see error *codes*; these types exist so that the
//! broker and the storage layer can say precisely what went wrong, and so that
//! the translation to a Kafka code happens in one place
//! ([`TxnLogError::response_error`]).

use kafka_protocol::error::ResponseError;

/// A record of `__transaction_state` could not be encoded or decoded (the
/// error of the codec shared with `__consumer_offsets`).
pub use sluice_protocol::schema_codec::CodecError;
/// A record [`crate::TransactionCoordinator::load`] skipped.
pub use sluice_protocol::schema_codec::SkippedRecord;
use sluice_protocol::schema_codec::first_skip_reason;

/// Errors of [`crate::TransactionCoordinator::load`].
#[derive(Debug, thiserror::Error)]
pub enum TxnError {
    /// Some records could not be decoded; all others were applied.
    #[error(
        "{} undecodable __transaction_state record(s), first: {}",
        .skipped.len(),
        first_skip_reason(.skipped)
    )]
    Corrupt {
        /// The records skipped, in order.
        skipped: Vec<SkippedRecord>,
    },
}

/// Why appending to `__transaction_state` failed.
///
/// The variants follow the storage failures Kafka distinguishes when it maps
/// an append error to the code a transactional client sees.
#[derive(Debug, Clone, thiserror::Error)]
pub enum TxnLogError {
    /// The partition cannot take writes right now (not enough replicas, not
    /// created yet, timed out). Clients retry after rediscovering the coordinator.
    #[error("__transaction_state partition not available: {0}")]
    Unavailable(String),
    /// This node no longer leads the partition of the transactional id.
    #[error(
        "this node is no longer the leader of the transactional id's __transaction_state partition"
    )]
    NotLeader,
    /// Disk failure.
    #[error("storage error: {0}")]
    Storage(String),
    /// The records exceed what the log accepts.
    #[error("records too large for __transaction_state: {0}")]
    TooLarge(String),
    /// The records could not be encoded.
    #[error("cannot encode transaction record: {0}")]
    Encode(#[from] CodecError),
}

impl TxnLogError {
    /// The error code Kafka answers with when a transaction state write fails
    /// this way (the mapping in Kafka's `TransactionStateManager.appendTransactionToLog`).
    pub fn response_error(&self) -> ResponseError {
        match self {
            Self::Unavailable(_) => ResponseError::CoordinatorNotAvailable,
            Self::NotLeader | Self::Storage(_) => ResponseError::NotCoordinator,
            Self::TooLarge(_) | Self::Encode(_) => ResponseError::UnknownServerError,
        }
    }
}

/// Why writing transaction markers failed. The coordinator retries until every
/// partition has its marker, as Kafka does: a transaction must never be left
/// half committed.
///
/// A partition whose topic was deleted should be reported as written (Kafka
/// drops markers for partitions that no longer exist).
#[derive(Debug, Clone, thiserror::Error)]
pub enum MarkerError {
    /// Markers were written to every partition except these; they are retried.
    #[error("markers not written to {} partition(s): {reason}", partitions.len())]
    Partial {
        /// The partitions still missing their marker.
        partitions: Vec<(String, i32)>,
        /// Why they failed.
        reason: String,
    },
    /// No marker was written; all are retried.
    #[error("markers not written: {0}")]
    Unavailable(String),
}

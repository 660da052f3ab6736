//! Error types of the coordinator and of the log it writes to.
//!
//! Kafka clients only ever see error *codes*; these types exist so that the
//! broker and the storage layer can say precisely what went wrong, and so that
//! the translation to a Kafka code happens in exactly one place
//! ([`GroupLogError::response_error`]).

use kafka_protocol::error::ResponseError;

/// A record of `__consumer_offsets` could not be encoded or decoded (the
/// error of the codec shared with `__transaction_state`).
pub use sluice_protocol::schema_codec::CodecError;
/// A record [`crate::GroupCoordinator::load`] skipped.
pub use sluice_protocol::schema_codec::SkippedRecord;
use sluice_protocol::schema_codec::first_skip_reason;

/// Errors of [`crate::GroupCoordinator::load`].
#[derive(Debug, thiserror::Error)]
pub enum GroupError {
    /// Some records could not be decoded; all others were applied.
    #[error(
        "{} undecodable __consumer_offsets record(s), first: {}",
        .skipped.len(),
        first_skip_reason(.skipped)
    )]
    Corrupt {
        /// The records skipped, in order.
        skipped: Vec<SkippedRecord>,
    },
}

/// Why appending to `__consumer_offsets` failed.
///
/// The variants follow the storage failures Kafka distinguishes when it maps
/// an append error to the error code a group client sees.
#[derive(Debug, Clone, thiserror::Error)]
pub enum GroupLogError {
    /// The partition cannot take writes right now (not enough replicas, not
    /// created yet, timed out). Clients retry after rediscovering the coordinator.
    #[error("__consumer_offsets partition not available: {0}")]
    Unavailable(String),
    /// This node no longer leads the partition of the group.
    #[error("this node is no longer the leader of the group's __consumer_offsets partition")]
    NotLeader,
    /// Disk failure.
    #[error("storage error: {0}")]
    Storage(String),
    /// The records exceed what the log accepts.
    #[error("records too large for __consumer_offsets: {0}")]
    TooLarge(String),
    /// The records could not be encoded.
    #[error("cannot encode group record: {0}")]
    Encode(#[from] CodecError),
    /// The log refused a transactional append with this Kafka error (a
    /// fenced or stale producer epoch, a failed transaction verification).
    /// The client receives the error as is.
    #[error("transactional append refused: {0:?}")]
    Refused(ResponseError),
}

impl GroupLogError {
    /// The error code Kafka answers with when a group write fails this way
    /// (Kafka's `appendGroupMetadataErrorToResponseError`).
    pub fn response_error(&self) -> ResponseError {
        match self {
            Self::Unavailable(_) => ResponseError::CoordinatorNotAvailable,
            Self::NotLeader | Self::Storage(_) => ResponseError::NotCoordinator,
            Self::TooLarge(_) | Self::Encode(_) => ResponseError::UnknownServerError,
            Self::Refused(e) => *e,
        }
    }
}

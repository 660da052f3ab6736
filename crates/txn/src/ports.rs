//! What the coordinator needs from the rest of the broker besides its own
//! log ([`sluice_coordinator::PartitionWriter`]): the writer of transaction
//! markers and the source of producer ids.

use std::future::Future;
use std::pin::Pin;

use sluice_coordinator::WriteError;
use sluice_protocol::model::{LeaderEpoch, ProducerIdAndEpoch, TopicPartition};

use crate::error::MarkerError;

/// The future returned by [`MarkerWriter::write_markers`].
pub type MarkerFuture<'a> = Pin<Box<dyn Future<Output = Result<(), MarkerError>> + Send + 'a>>;

/// Writes the control batches that end a transaction on its partitions.
pub trait MarkerWriter: Send + Sync {
    /// Writes a COMMIT (`commit == true`) or ABORT control batch for
    /// `producer` to every partition listed, durably, stamped with
    /// `coordinator_epoch` (the leader epoch of the transactional id's
    /// `__transaction_state` partition, so partition leaders can fence a
    /// stale coordinator). On failure, [`MarkerError::Partial`] names the
    /// partitions still missing their marker. The broker also completes
    /// transactional offsets when a partition is `__consumer_offsets`.
    fn write_markers(
        &self,
        producer: ProducerIdAndEpoch,
        coordinator_epoch: LeaderEpoch,
        commit: bool,
        partitions: Vec<TopicPartition>,
    ) -> MarkerFuture<'_>;
}

/// Hands out producer ids that are never reused (the broker allocates them
/// in blocks through the metadata log).
pub trait ProducerIdSource: Send + Sync {
    /// The next unused producer id. A failure (the block could not be
    /// allocated) is answered COORDINATOR_LOAD_IN_PROGRESS, as Kafka does
    /// while its producer id manager waits for a block: clients retry.
    fn next_producer_id(&self) -> Result<i64, WriteError>;
}

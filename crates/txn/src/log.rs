//! What the coordinator needs from the rest of the broker: the durable
//! `__transaction_state` log, the writer of transaction markers, and the
//! source of producer ids.
//!
//! The coordinator never touches storage or partitions itself. It hands
//! finished records to a [`TxnLog`] and acts only once the log says they are
//! durable, exactly as Kafka completes a transition only after the
//! `__transaction_state` append is replicated.

use std::future::Future;
use std::pin::Pin;

use bytes::Bytes;

use crate::error::{MarkerError, TxnLogError};

/// One record for `__transaction_state`: key and value, or `None` for a tombstone.
pub type TxnRecord = (Bytes, Option<Bytes>);

/// The future returned by [`TxnLog::append`].
pub type AppendFuture<'a> = Pin<Box<dyn Future<Output = Result<(), TxnLogError>> + Send + 'a>>;

/// The future returned by [`MarkerWriter::write_markers`].
pub type MarkerFuture<'a> = Pin<Box<dyn Future<Output = Result<(), MarkerError>> + Send + 'a>>;

/// Where the coordinator writes its records.
///
/// The coordinator allows one state transition per transactional id at a
/// time (the next one is refused with CONCURRENT_TRANSACTIONS until the write
/// resolves), so the records of one id reach the log in the order of the
/// in-memory changes.
pub trait TxnLog: Send + Sync {
    /// Durably appends `records` to the `__transaction_state` partition of
    /// this transactional id (`coordinator_partition_for(transactional_id, state_partitions)`);
    /// resolves once durable.
    fn append(&self, transactional_id: &str, records: Vec<TxnRecord>) -> AppendFuture<'_>;
}

/// Writes the control batches that end a transaction on its partitions.
pub trait MarkerWriter: Send + Sync {
    /// Writes a COMMIT (`commit == true`) or ABORT control batch for
    /// `producer_id`/`producer_epoch` to every partition listed
    /// (topic, partition), durably. On failure, [`MarkerError::Partial`] names
    /// the partitions still missing their marker. The broker also completes
    /// transactional offsets when a partition is `__consumer_offsets`.
    fn write_markers(
        &self,
        producer_id: i64,
        producer_epoch: i16,
        coordinator_epoch: i32,
        commit: bool,
        partitions: Vec<(String, i32)>,
    ) -> MarkerFuture<'_>;
}

/// Hands out producer ids that are never reused (the broker allocates them
/// in blocks through the metadata log).
pub trait ProducerIdSource: Send + Sync {
    /// The next unused producer id.
    fn next_producer_id(&self) -> Result<i64, String>;
}

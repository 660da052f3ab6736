//! The seam through which a coordinator writes its internal topic (Kafka's
//! `PartitionWriter`).
//!
//! Coordinators never touch storage. They hand finished records to a
//! [`PartitionWriter`] and act only once it says the records are durable,
//! exactly as Kafka acknowledges a coordinator write only once the append is
//! committed.

use std::future::Future;
use std::pin::Pin;

use sluice_protocol::model::ProducerIdAndEpoch;

use crate::error::WriteError;
use crate::record::CoordinatorRecord;

/// The future returned by [`PartitionWriter::append`].
pub type AppendFuture<'a> = Pin<Box<dyn Future<Output = Result<(), WriteError>> + Send + 'a>>;

/// Where a coordinator writes its records.
///
/// A coordinator appends the records of one key in the order its in-memory
/// decisions were taken, so the log order is the decision order.
pub trait PartitionWriter: Send + Sync {
    /// Durably appends `records` as one batch to partition `partition` of the
    /// coordinator's internal topic; resolves once they are durable.
    /// `transactional` makes the batch a transactional batch of that producer,
    /// as a transactional produce would write it (TxnOffsetCommit): the
    /// transaction's marker, written later, decides its records. The log
    /// reports a fenced or stale producer as [`WriteError::Refused`].
    fn append(
        &self,
        partition: i32,
        transactional: Option<ProducerIdAndEpoch>,
        records: Vec<CoordinatorRecord>,
    ) -> AppendFuture<'_>;
}

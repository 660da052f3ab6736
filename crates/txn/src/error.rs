//! Why writing transaction markers failed. Failures of the coordinator's own
//! log are [`sluice_coordinator::WriteError`], shared with the group
//! coordinator and mapped to Kafka codes there.

use sluice_coordinator::WriteError;
use sluice_protocol::model::TopicPartition;

/// Why writing transaction markers failed. The coordinator retries until every
/// partition has its marker, as Kafka does: a transaction must never be left
/// half committed.
///
/// A partition whose topic was deleted should be reported as written (Kafka
/// drops markers for partitions that no longer exist).
#[derive(Debug, Clone, thiserror::Error)]
pub enum MarkerError {
    /// Markers were written to every partition except these; they are retried.
    #[error("markers not written to {} partition(s): {cause}", partitions.len())]
    Partial {
        /// The partitions still missing their marker.
        partitions: Vec<TopicPartition>,
        /// Why they failed.
        cause: WriteError,
    },
    /// No marker was written; all are retried.
    #[error("markers not written: {0}")]
    Unavailable(WriteError),
}

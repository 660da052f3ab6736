//! How the coordinators write their internal topics (`__consumer_offsets`,
//! `__transaction_state`): each record list becomes one batch of the
//! partition it names, acknowledged once durable, as Kafka acknowledges a
//! coordinator write once the append is committed.

use std::sync::Weak;

use sluice_coordinator::{AppendFuture, CoordinatorRecord, PartitionWriter, WriteError};
use sluice_protocol::batch::RecordBatchBuilder;
use sluice_protocol::model::{ProducerIdAndEpoch, TopicPartition};
use sluice_storage::StorageError;

use crate::broker::Broker;
use crate::clock::now_ms;
use crate::errors::storage_error_code;
use crate::handlers::produce::LEADER_EPOCH;
use crate::topic_admin::ensure_internal_topic;

/// A coordinator's [`PartitionWriter`] over the broker's partitions of its
/// internal topic, which it creates on first use as Kafka does.
pub struct CoordinatorTopicLog {
    broker: Weak<Broker>,
    topic: &'static str,
}

impl CoordinatorTopicLog {
    /// Writes `topic` through a broker it does not keep alive.
    pub fn new(broker: Weak<Broker>, topic: &'static str) -> Self {
        Self { broker, topic }
    }

    async fn write(
        &self,
        partition: i32,
        transactional: Option<ProducerIdAndEpoch>,
        records: Vec<CoordinatorRecord>,
    ) -> Result<(), WriteError> {
        let broker = self.broker.upgrade().ok_or(WriteError::ShuttingDown)?;
        let tp = TopicPartition::new(self.topic, partition);
        if let Err(e) = ensure_internal_topic(&broker, self.topic) {
            tracing::warn!(topic = self.topic, error = %e.message, "cannot create a coordinator topic");
            return Err(WriteError::PartitionUnavailable(tp));
        }
        append_durably(&broker, &tp, &batch_of(transactional, &records)).await
    }
}

impl PartitionWriter for CoordinatorTopicLog {
    fn append(
        &self,
        partition: i32,
        transactional: Option<ProducerIdAndEpoch>,
        records: Vec<CoordinatorRecord>,
    ) -> AppendFuture<'_> {
        Box::pin(self.write(partition, transactional, records))
    }
}

/// One batch holding `records`. Kafka writes transactional offsets without a
/// sequence: the transaction markers, not sequence numbers, decide them.
fn batch_of(transactional: Option<ProducerIdAndEpoch>, records: &[CoordinatorRecord]) -> Vec<u8> {
    let now = now_ms();
    let mut builder = RecordBatchBuilder::new();
    if let Some(producer) = transactional {
        builder = builder
            .producer(producer.producer_id, producer.epoch, -1)
            .transactional(true);
    }
    for record in records {
        builder.push(now, Some(&record.key), record.value.as_deref(), &[]);
    }
    builder.build()
}

/// Appends `batch` to `tp` and waits until it is durable: the one place
/// coordinator records reach storage.
async fn append_durably(
    broker: &Broker,
    tp: &TopicPartition,
    batch: &[u8],
) -> Result<(), WriteError> {
    let partition = broker
        .logs
        .get(&tp.topic, tp.partition)
        .ok_or_else(|| WriteError::PartitionUnavailable(tp.clone()))?;
    let info = partition.append(batch, LEADER_EPOCH).map_err(write_error)?;
    partition.request_flush();
    partition
        .wait_durable(info.last_offset + 1)
        .await
        .map_err(write_error)
}

/// A producer the log fences (a stale epoch of a TxnOffsetCommit) is refused
/// with the code a produce would get; anything else is a storage failure.
fn write_error(e: StorageError) -> WriteError {
    match e {
        StorageError::Producer(_) => WriteError::Refused(storage_error_code(&e)),
        other => WriteError::storage(other),
    }
}

#[cfg(test)]
mod tests {
    use kafka_protocol::error::ResponseError;
    use sluice_protocol::kafka_protocol;
    use sluice_storage::producer_state::ProducerError;

    use super::*;

    #[test]
    fn a_producer_the_log_fences_is_refused_and_other_failures_are_storage_errors() {
        let fenced = StorageError::Producer(ProducerError::InvalidEpoch {
            producer_id: 7,
            epoch: 1,
            current: 2,
        });
        let refused = write_error(fenced);
        assert!(
            matches!(
                refused,
                WriteError::Refused(ResponseError::InvalidProducerEpoch)
            ),
            "{refused:?}"
        );
        assert_eq!(
            refused.response_error(),
            ResponseError::InvalidProducerEpoch
        );
        let failed = write_error(StorageError::Io(std::io::Error::other("EIO")));
        assert!(matches!(failed, WriteError::Storage(_)), "{failed:?}");
        assert_eq!(failed.response_error(), ResponseError::NotCoordinator);
    }
}

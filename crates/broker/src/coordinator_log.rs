//! How the coordinators write their internal topics (`__consumer_offsets`,
//! `__transaction_state`): each record list becomes one batch of the
//! partition it names, acknowledged once durable, as Kafka acknowledges a
//! coordinator write once the append is committed.

use std::sync::Weak;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use sluice_coordinator::{AppendFuture, CoordinatorRecord, PartitionWriter, WriteError};
use sluice_protocol::batch::RecordBatchBuilder;
use sluice_protocol::kafka_protocol;
use sluice_protocol::model::{ProducerIdAndEpoch, TopicPartition};

use crate::broker::Broker;
use crate::replica_manager::ReplicaError;
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
        if let Err(e) = ensure_internal_topic(&broker, self.topic).await {
            tracing::warn!(topic = self.topic, error = %e.message, "cannot create a coordinator topic");
            return Err(WriteError::PartitionUnavailable(tp));
        }
        let batch = batch_of(transactional, &records, broker.clock.now_ms());
        append_durably(&broker, &tp, batch).await
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

/// One batch holding `records`, stamped `now_ms`. Kafka writes transactional offsets
/// without a sequence: the transaction markers, not sequence numbers, decide them.
fn batch_of(
    transactional: Option<ProducerIdAndEpoch>,
    records: &[CoordinatorRecord],
    now_ms: i64,
) -> Vec<u8> {
    let mut builder = RecordBatchBuilder::new();
    if let Some(producer) = transactional {
        builder = builder
            .producer(producer.producer_id, producer.epoch, -1)
            .transactional(true);
    }
    for record in records {
        builder.push(now_ms, Some(&record.key), record.value.as_deref(), &[]);
    }
    builder.build()
}

/// Appends `batch` to `tp` through the replica manager and waits until it is
/// committed: the one place coordinator records reach storage.
async fn append_durably(
    broker: &Broker,
    tp: &TopicPartition,
    batch: Vec<u8>,
) -> Result<(), WriteError> {
    let topic = broker
        .metadata
        .image()
        .topic(&tp.topic)
        .cloned()
        .ok_or_else(|| WriteError::PartitionUnavailable(tp.clone()))?;
    broker
        .replicas
        .append_coordinator_batch(&topic, tp.partition, Bytes::from(batch))
        .await
        .map_err(|e| write_error(e, tp))
}

/// A producer the log fences (a stale epoch of a TxnOffsetCommit) is refused
/// with the code a produce would get; a partition not here or not led here
/// sends the client to look for its coordinator again; anything else is a
/// storage failure.
fn write_error(e: ReplicaError, tp: &TopicPartition) -> WriteError {
    match e.code {
        ResponseError::UnknownTopicOrPartition => WriteError::PartitionUnavailable(tp.clone()),
        ResponseError::NotLeaderOrFollower
        | ResponseError::FencedLeaderEpoch
        | ResponseError::UnknownLeaderEpoch => WriteError::NotLeader,
        ResponseError::InvalidProducerEpoch
        | ResponseError::OutOfOrderSequenceNumber
        | ResponseError::ProducerFenced => WriteError::Refused(e.code),
        _ => WriteError::storage(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(code: ResponseError) -> ReplicaError {
        ReplicaError {
            code,
            message: None,
        }
    }

    #[test]
    fn a_producer_the_log_fences_is_refused_and_other_failures_are_storage_errors() {
        let tp = TopicPartition::new("__consumer_offsets", 3);
        let fenced = write_error(refused(ResponseError::InvalidProducerEpoch), &tp);
        assert!(
            matches!(
                fenced,
                WriteError::Refused(ResponseError::InvalidProducerEpoch)
            ),
            "{fenced:?}"
        );
        assert_eq!(fenced.response_error(), ResponseError::InvalidProducerEpoch);
        let failed = write_error(refused(ResponseError::KafkaStorageError), &tp);
        assert!(matches!(failed, WriteError::Storage(_)), "{failed:?}");
        assert_eq!(failed.response_error(), ResponseError::NotCoordinator);
        let moved = write_error(refused(ResponseError::NotLeaderOrFollower), &tp);
        assert_eq!(moved.response_error(), ResponseError::NotCoordinator);
        let missing = write_error(refused(ResponseError::UnknownTopicOrPartition), &tp);
        assert_eq!(
            missing.response_error(),
            ResponseError::CoordinatorNotAvailable
        );
    }
}

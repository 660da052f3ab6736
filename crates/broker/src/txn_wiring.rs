//! The transaction coordinator's links to the rest of the broker besides its
//! log (see `coordinator_log`): the transaction markers it writes into data
//! partitions and `__consumer_offsets`, and the producer ids it hands out.

use std::sync::{Arc, Weak};

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use sluice_protocol::batch::transaction_marker;
use sluice_protocol::kafka_protocol;
use sluice_protocol::model::{LeaderEpoch, ProducerIdAndEpoch, TopicPartition};
use sluice_txn::{MarkerError, MarkerFuture, MarkerWriter, ProducerIdSource, WriteError};

use crate::broker::Broker;
use crate::partition::Partition;
use crate::replica_manager::{AppendOrigin, Appended, ReplicaError, RequiredAcks};
use crate::topic_admin::CONSUMER_OFFSETS_TOPIC;

/// Writes COMMIT/ABORT markers into partitions, durably.
pub struct PartitionMarkerWriter {
    broker: Weak<Broker>,
}

impl PartitionMarkerWriter {
    /// A writer that reaches the broker without keeping it alive.
    pub fn new(broker: Weak<Broker>) -> Self {
        Self { broker }
    }

    async fn write(
        &self,
        producer: ProducerIdAndEpoch,
        coordinator_epoch: LeaderEpoch,
        commit: bool,
        partitions: Vec<TopicPartition>,
    ) -> Result<(), MarkerError> {
        let broker = self
            .broker
            .upgrade()
            .ok_or(MarkerError::Unavailable(WriteError::ShuttingDown))?;
        let marker = transaction_marker(
            producer.producer_id,
            producer.epoch,
            commit,
            coordinator_epoch.0,
            broker.clock.now_ms(),
        );
        let image = broker.metadata.image();
        let mut written = Vec::new();
        for tp in &partitions {
            // A partition of a deleted topic has nothing left to decide.
            let Some(partition) = image
                .topic(&tp.topic)
                .and_then(|t| broker.replicas.logs().get(t.id, tp.partition))
            else {
                continue;
            };
            if let Some(appended) = append_marker(&broker, &partition, &marker)? {
                written.push(appended);
            }
        }
        for appended in &written {
            appended
                .acknowledged(None)
                .await
                .map_err(|e| MarkerError::Unavailable(WriteError::storage(e)))?;
        }
        for tp in &partitions {
            if tp.topic == CONSUMER_OFFSETS_TOPIC {
                broker
                    .groups
                    .complete_transaction(tp.partition, producer, commit)
                    .await;
            }
        }
        Ok(())
    }
}

/// Appends `marker` to `partition` through the replica manager (which asks for the
/// sync that commits it); `None` for the marker of an older epoch (the transaction was
/// already fenced and decided by a newer one).
fn append_marker(
    broker: &Broker,
    partition: &Arc<Partition>,
    marker: &[u8],
) -> Result<Option<Appended>, MarkerError> {
    let appended = broker.replicas.append_records(
        partition,
        AppendOrigin::Coordinator,
        RequiredAcks::All,
        |_| Ok::<_, ReplicaError>(Bytes::copy_from_slice(marker)),
    );
    match appended {
        Ok(appended) => Ok(Some(appended)),
        Err(e)
            if matches!(
                e.code,
                ResponseError::InvalidProducerEpoch | ResponseError::OutOfOrderSequenceNumber
            ) =>
        {
            Ok(None)
        }
        Err(e) => Err(MarkerError::Unavailable(WriteError::storage(e))),
    }
}

impl MarkerWriter for PartitionMarkerWriter {
    fn write_markers(
        &self,
        producer: ProducerIdAndEpoch,
        coordinator_epoch: LeaderEpoch,
        commit: bool,
        partitions: Vec<TopicPartition>,
    ) -> MarkerFuture<'_> {
        Box::pin(self.write(producer, coordinator_epoch, commit, partitions))
    }
}

/// Producer ids for transactional producers, from the broker's allocator.
pub struct BrokerProducerIds {
    broker: Weak<Broker>,
}

impl BrokerProducerIds {
    /// A source that reaches the broker without keeping it alive.
    pub fn new(broker: Weak<Broker>) -> Self {
        Self { broker }
    }
}

impl ProducerIdSource for BrokerProducerIds {
    fn next_producer_id(&self) -> Result<i64, WriteError> {
        let broker = self.broker.upgrade().ok_or(WriteError::ShuttingDown)?;
        // While the next block is being reserved: COORDINATOR_LOAD_IN_PROGRESS, which
        // clients retry (Kafka's producer-id manager answers the same).
        broker.producer_ids.try_next_id().ok_or(WriteError::Loading)
    }
}

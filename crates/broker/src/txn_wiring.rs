//! The transaction coordinator's links to the rest of the broker besides its
//! log (see `coordinator_log`): the transaction markers it writes into data
//! partitions and `__consumer_offsets`, and the producer ids it hands out.

use std::sync::{Arc, Weak};

use sluice_protocol::batch::transaction_marker;
use sluice_protocol::model::{LeaderEpoch, ProducerIdAndEpoch, TopicPartition};
use sluice_storage::StorageError;
use sluice_txn::{MarkerError, MarkerFuture, MarkerWriter, ProducerIdSource, WriteError};

use crate::broker::Broker;
use crate::clock::now_ms;
use crate::handlers::produce::LEADER_EPOCH;
use crate::partition::Partition;
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
            now_ms(),
        );
        let mut written = Vec::new();
        for tp in &partitions {
            // A partition of a deleted topic has nothing left to decide.
            let Some(partition) = broker.logs.get(&tp.topic, tp.partition) else {
                continue;
            };
            if let Some(end) = append_marker(&partition, &marker)? {
                written.push((partition, end));
            }
        }
        for (partition, end) in &written {
            partition
                .wait_durable(*end)
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
        // The last stable offset moved: wake read_committed fetchers.
        broker.appended.notify_waiters();
        Ok(())
    }
}

/// Appends `marker` to `partition` and asks for a flush; returns the end
/// offset to wait for, or `None` for the marker of an older epoch (the
/// transaction was already fenced and decided by a newer one).
fn append_marker(partition: &Arc<Partition>, marker: &[u8]) -> Result<Option<i64>, MarkerError> {
    match partition.append(marker, LEADER_EPOCH) {
        Ok(info) => {
            partition.request_flush();
            Ok(Some(info.last_offset + 1))
        }
        Err(StorageError::Producer(_)) => Ok(None),
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
        broker
            .producer_ids
            .next_id(&broker.metadata)
            .map_err(WriteError::storage)
    }
}

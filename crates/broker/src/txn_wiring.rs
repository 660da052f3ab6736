//! The transaction coordinator's links to the rest of the broker: its durable
//! log (`__transaction_state`), the transaction markers it writes into data
//! partitions and `__consumer_offsets`, and the producer ids it hands out.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Weak};

use bytes::Bytes;
use sluice_protocol::batch::{RecordBatchBuilder, transaction_marker};
use sluice_protocol::kafka_protocol::error::ResponseError;
use sluice_txn::{
    MarkerError, MarkerWriter, ProducerIdSource, TransactionCoordinator, TxnError, TxnLog,
    TxnLogError,
};

use crate::broker::Broker;
use crate::clock::now_ms;
use crate::internal_replay::{for_each_batch, keyed, partition_name, report_skipped};
use crate::replica_manager::{AppendOrigin, ReplicaError, RequiredAcks};
use crate::topic_admin::{CONSUMER_OFFSETS_TOPIC, TRANSACTION_STATE_TOPIC, ensure_internal_topic};

/// `__transaction_state` through the broker's partitions.
pub struct TransactionStateLog {
    broker: Weak<Broker>,
}

impl TransactionStateLog {
    /// A log that reaches the broker without keeping it alive.
    pub fn new(broker: Weak<Broker>) -> Self {
        Self { broker }
    }

    async fn append_records(
        &self,
        transactional_id: &str,
        records: Vec<(Bytes, Option<Bytes>)>,
    ) -> Result<(), TxnLogError> {
        let unavailable = |m: String| TxnLogError::Unavailable(m);
        let broker = self
            .broker
            .upgrade()
            .ok_or_else(|| unavailable("broker is shutting down".into()))?;
        let topic = ensure_internal_topic(&broker, TRANSACTION_STATE_TOPIC)
            .await
            .map_err(|e| unavailable(e.message))?;
        let index = sluice_protocol::model::coordinator_partition_for(
            transactional_id,
            topic.partition_count(),
        );
        let now = now_ms();
        let mut builder = RecordBatchBuilder::new();
        for (key, value) in &records {
            builder.push(now, Some(key), value.as_deref(), &[]);
        }
        broker
            .replicas
            .append_coordinator_batch(&topic, index, Bytes::from(builder.build()))
            .await
            .map_err(|e| unavailable(e.to_string()))
    }
}

impl TxnLog for TransactionStateLog {
    fn append(
        &self,
        transactional_id: &str,
        records: Vec<(Bytes, Option<Bytes>)>,
    ) -> Pin<Box<dyn Future<Output = Result<(), TxnLogError>> + Send + '_>> {
        let id = transactional_id.to_string();
        Box::pin(async move { self.append_records(&id, records).await })
    }
}

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
        producer_id: i64,
        producer_epoch: i16,
        coordinator_epoch: i32,
        commit: bool,
        partitions: Vec<(String, i32)>,
    ) -> Result<(), MarkerError> {
        let broker = self
            .broker
            .upgrade()
            .ok_or_else(|| MarkerError::Unavailable("broker is shutting down".into()))?;
        let now = now_ms();
        let image = broker.metadata.image();
        let mut written = Vec::new();
        for (topic, index) in &partitions {
            // A partition of a deleted topic has nothing left to decide.
            let Some(partition) = image
                .topic(topic)
                .and_then(|t| broker.replicas.logs().get(t.id, *index))
            else {
                continue;
            };
            let marker =
                transaction_marker(producer_id, producer_epoch, commit, coordinator_epoch, now);
            let appended = broker.replicas.append_records(
                &partition,
                AppendOrigin::Coordinator,
                RequiredAcks::All,
                |_| Ok::<_, ReplicaError>(Bytes::from(marker)),
            );
            match appended {
                Ok(appended) => written.push(appended),
                // An older epoch's marker: the transaction was already fenced
                // and decided by a newer one.
                Err(e)
                    if matches!(
                        e.code,
                        ResponseError::InvalidProducerEpoch
                            | ResponseError::OutOfOrderSequenceNumber
                    ) => {}
                Err(e) => return Err(MarkerError::Unavailable(e.to_string())),
            }
        }
        for appended in &written {
            appended
                .acknowledged()
                .await
                .map_err(|e| MarkerError::Unavailable(e.to_string()))?;
        }
        let offsets_partitions = broker
            .metadata
            .image()
            .topic(CONSUMER_OFFSETS_TOPIC)
            .map(|t| t.partition_count());
        if let Some(total) = offsets_partitions {
            for (topic, index) in &partitions {
                if topic == CONSUMER_OFFSETS_TOPIC {
                    broker
                        .groups
                        .complete_transaction(*index, total, producer_id, commit)
                        .await;
                }
            }
        }
        Ok(())
    }
}

impl MarkerWriter for PartitionMarkerWriter {
    fn write_markers(
        &self,
        producer_id: i64,
        producer_epoch: i16,
        coordinator_epoch: i32,
        commit: bool,
        partitions: Vec<(String, i32)>,
    ) -> Pin<Box<dyn Future<Output = Result<(), MarkerError>> + Send + '_>> {
        Box::pin(self.write(
            producer_id,
            producer_epoch,
            coordinator_epoch,
            commit,
            partitions,
        ))
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
    fn next_producer_id(&self) -> Result<i64, String> {
        let broker = self.broker.upgrade().ok_or("broker is shutting down")?;
        broker
            .producer_ids
            .next_id(&broker.metadata)
            .map_err(|e| e.to_string())
    }
}

/// Replays every `__transaction_state` partition into the coordinator; what
/// cannot be decoded is skipped with an ERROR (see [`crate::internal_replay`]).
pub fn replay(broker: &Arc<Broker>, coordinator: &TransactionCoordinator) -> Result<usize, String> {
    let mut entries = Vec::new();
    // Where each entry came from: its partition's name and its offset.
    let mut located: Vec<(usize, i64)> = Vec::new();
    let mut names = Vec::new();
    let partitions = broker
        .metadata
        .image()
        .topic(TRANSACTION_STATE_TOPIC)
        .map(|t| broker.replicas.topic_partitions(t))
        .unwrap_or_default();
    for partition in partitions {
        let at = names.len();
        names.push(partition_name(&partition));
        for_each_batch(&partition, |header, records| {
            if header.is_control() {
                return;
            }
            for record in keyed(records) {
                located.push((at, record.offset));
                entries.push((record.key, record.value));
            }
        })?;
    }
    let mut count = entries.len();
    if let Err(TxnError::Corrupt { skipped }) = coordinator.load(entries) {
        count -= skipped.len();
        report_skipped(&skipped, |i| {
            let (at, offset) = located.get(i)?;
            Some((names.get(*at)?.clone(), *offset))
        });
    }
    Ok(count)
}

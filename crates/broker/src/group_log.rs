//! The group coordinator's durable log: records in `__consumer_offsets`.
//!
//! Commits and group metadata are appended to the partition of the internal
//! topic that owns the group (as Kafka does), and acknowledged only after the
//! flusher has synced them. At start-up every partition is read back and
//! replayed into the coordinator.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Weak};

use bytes::Bytes;
use sluice_group::{GroupCoordinator, GroupError, GroupLog, GroupLogError};
use sluice_protocol::batch::{RecordBatchBuilder, marker_key_is_commit};
use sluice_protocol::model::coordinator_partition_for;

use crate::broker::Broker;
use crate::clock::now_ms;
use crate::internal_replay::{for_each_batch, keyed, partition_name, report_skipped};
use crate::topic_admin::{CONSUMER_OFFSETS_TOPIC, ensure_consumer_offsets};

/// Appends group records to `__consumer_offsets` through the broker.
pub struct OffsetsTopicLog {
    broker: Weak<Broker>,
}

impl OffsetsTopicLog {
    /// A log that reaches the broker without keeping it alive.
    pub fn new(broker: Weak<Broker>) -> Self {
        Self { broker }
    }

    async fn append_records(
        &self,
        group_id: &str,
        records: Vec<(Bytes, Option<Bytes>)>,
    ) -> Result<(), GroupLogError> {
        let now = now_ms();
        let mut builder = RecordBatchBuilder::new();
        for (key, value) in &records {
            builder.push(now, Some(key), value.as_deref(), &[]);
        }
        self.append_batch(group_id, builder).await
    }

    /// Appends one batch for the group's partition and waits until it is durable.
    async fn append_batch(
        &self,
        group_id: &str,
        builder: RecordBatchBuilder,
    ) -> Result<(), GroupLogError> {
        let broker = self
            .broker
            .upgrade()
            .ok_or_else(|| GroupLogError::Unavailable("broker is shutting down".into()))?;
        let topic = ensure_consumer_offsets(&broker)
            .await
            .map_err(|e| GroupLogError::Unavailable(e.message))?;
        let index = coordinator_partition_for(group_id, topic.partition_count());
        broker
            .replicas
            .append_coordinator_batch(&topic, index, Bytes::from(builder.build()))
            .await
            .map_err(|e| GroupLogError::Unavailable(e.to_string()))
    }
}

impl GroupLog for OffsetsTopicLog {
    fn append_transactional(
        &self,
        group_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        records: Vec<(Bytes, Option<Bytes>)>,
    ) -> Pin<Box<dyn Future<Output = Result<(), GroupLogError>> + Send + '_>> {
        let group_id = group_id.to_string();
        Box::pin(async move {
            // Kafka writes transactional offsets without a sequence: the
            // transaction markers, not sequence numbers, decide them.
            let now = now_ms();
            let mut builder = RecordBatchBuilder::new()
                .producer(producer_id, producer_epoch, -1)
                .transactional(true);
            for (key, value) in &records {
                builder.push(now, Some(key), value.as_deref(), &[]);
            }
            self.append_batch(&group_id, builder).await
        })
    }

    fn append(
        &self,
        group_id: &str,
        records: Vec<(Bytes, Option<Bytes>)>,
    ) -> Pin<Box<dyn Future<Output = Result<(), GroupLogError>> + Send + '_>> {
        let group_id = group_id.to_string();
        Box::pin(async move { self.append_records(&group_id, records).await })
    }
}

/// Replays every `__consumer_offsets` partition into the coordinator; what
/// cannot be decoded is skipped with an ERROR (see [`crate::internal_replay`]).
pub fn replay(broker: &Arc<Broker>, coordinator: &GroupCoordinator) -> Result<usize, String> {
    let mut replayed = 0usize;
    let partitions = broker
        .metadata
        .image()
        .topic(CONSUMER_OFFSETS_TOPIC)
        .map(|t| broker.replicas.topic_partitions(t))
        .unwrap_or_default();
    let total = i32::try_from(partitions.len()).unwrap_or(i32::MAX);
    for partition in partitions {
        let name = partition_name(&partition);
        for_each_batch(&partition, |header, records| {
            if header.is_control() {
                for record in records {
                    if let Some(commit) = record.key.as_deref().and_then(marker_key_is_commit) {
                        coordinator.replay_marker_in_partition(
                            partition.index,
                            total,
                            header.producer_id,
                            commit,
                        );
                    }
                }
                return;
            }
            let records = keyed(records);
            let offsets: Vec<i64> = records.iter().map(|r| r.offset).collect();
            let entries = records.into_iter().map(|r| (r.key, r.value));
            let loaded = if header.is_transactional() {
                coordinator.load_transactional(header.producer_id, entries)
            } else {
                coordinator.load(entries)
            };
            replayed += offsets.len();
            if let Err(GroupError::Corrupt { skipped }) = loaded {
                replayed -= skipped.len();
                report_skipped(&skipped, |i| {
                    offsets.get(i).map(|offset| (name.clone(), *offset))
                });
            }
        })?;
    }
    Ok(replayed)
}

//! Loading the coordinators' partitions: the leader of a `__consumer_offsets`
//! or `__transaction_state` partition loads it into its coordinator by
//! replaying the partition's log (Kafka's `CoordinatorLoaderImpl`), and
//! unloads it when it stops leading. A single node leads every partition, so
//! it loads them all at start ([`load_all`]); leadership changes will drive
//! [`load_partition`] and the coordinators' `unload` per partition.
//!
//! Whatever a partition holds, one damaged batch or record must not keep the
//! broker from starting: it is skipped with an ERROR naming the partition and
//! offset (Kafka's loaders skip records of unknown types the same way) and
//! loading goes on. Only a failed read of the log stops the start.

use sluice_coordinator::{CoordinatorRecord, LogEntry, PartitionLoader};
use sluice_protocol::batch::{BatchHeader, marker_key_is_commit, split_batches};
use sluice_protocol::model::{LeaderEpoch, ProducerIdAndEpoch, TopicPartition};
use sluice_protocol::records::{self, MAX_DECOMPRESSED_BYTES, Record};
use sluice_storage::StorageError;

use crate::broker::Broker;
use std::sync::Arc;

use crate::metadata::{
    MetadataDelta, MetadataImage, MetadataPublisher, PartitionRegistration, TopicImage,
};
use crate::partition::{Partition, ReadBound};
use crate::topic_admin::{CONSUMER_OFFSETS_TOPIC, TRANSACTION_STATE_TOPIC, is_internal_topic};

/// Bytes read per step.
const LOAD_CHUNK: usize = 1 << 20;

/// A coordinator partition whose log could not be read.
#[derive(Debug, thiserror::Error)]
#[error("cannot read {partition} at offset {offset} to load its coordinator: {source}")]
pub struct LoadError {
    /// The partition.
    pub partition: TopicPartition,
    /// Where the read failed.
    pub offset: i64,
    /// Why.
    #[source]
    pub source: StorageError,
}

/// Loads, at start, the partitions of both coordinators' topics this node leads (all of
/// them before the topic exists: it is created on first use, by whichever node is asked).
pub fn load_all(broker: &Broker) -> Result<(), LoadError> {
    let image = broker.metadata.image();
    for (topic, partitions) in [
        (CONSUMER_OFFSETS_TOPIC, broker.groups.partition_count()),
        (TRANSACTION_STATE_TOPIC, broker.txn.partition_count()),
    ] {
        let mut replayed = 0;
        for partition in 0..partitions {
            let led_here = image
                .topic(topic)
                .and_then(|t| t.partition(partition))
                .is_none_or(|p| p.leader == broker.node_id());
            if led_here {
                replayed += load_partition(broker, &image, &TopicPartition::new(topic, partition))?;
            }
        }
        if replayed > 0 {
            tracing::info!(topic, records = replayed, "loaded coordinator state");
        }
    }
    Ok(())
}

/// Loads `tp` into the coordinator of its topic at the partition's leader
/// epoch, unless it is loaded already; returns how many records were replayed.
pub fn load_partition(
    broker: &Broker,
    image: &MetadataImage,
    tp: &TopicPartition,
) -> Result<usize, LoadError> {
    let partition = local_partition(broker, image, tp);
    // The coordinator epoch is the partition's leader epoch (0 before the topic exists).
    let epoch = partition
        .as_ref()
        .map_or(LeaderEpoch(0), |p| p.leader_epoch());
    match tp.topic.as_str() {
        CONSUMER_OFFSETS_TOPIC => match broker.groups.load(tp.partition, epoch) {
            Some(loader) => replay_partition(partition.as_ref(), tp, loader),
            None => Ok(0),
        },
        TRANSACTION_STATE_TOPIC => match broker.txn.load(tp.partition, epoch) {
            Some(loader) => replay_partition(partition.as_ref(), tp, loader),
            None => Ok(0),
        },
        _ => Ok(0),
    }
}

/// An internal topic was just created. When it has another partition count
/// than its coordinator hashes keys over (CreateTopics named one), keys move:
/// the coordinator lays its partitions out anew. Then each partition is loaded
/// here if this node leads it, and unloaded if another node does.
pub fn on_internal_topic_created(broker: &Arc<Broker>, image: &MetadataImage, topic: &TopicImage) {
    let relaid = match topic.name.as_str() {
        CONSUMER_OFFSETS_TOPIC if broker.groups.partition_count() != topic.partition_count() => {
            broker.groups.relayout(topic.partition_count());
            broker.txn.set_offsets_partitions(topic.partition_count());
            true
        }
        TRANSACTION_STATE_TOPIC if broker.txn.partition_count() != topic.partition_count() => {
            broker.txn.relayout(topic.partition_count());
            true
        }
        _ => false,
    };
    if relaid {
        tracing::info!(topic = %topic.name, partitions = topic.partition_count(), "coordinator partitions laid out anew");
    }
    for (partition, registration) in (0..).zip(&topic.partitions) {
        // Shards loaded before the topic existed (on every node) are no one's: unloaded
        // whatever their epoch where another node leads.
        follow_leadership(broker, image, topic, partition, registration, None);
    }
}

/// Loads coordinator partition `index` of `topic` in the background when this node leads
/// it (its shard answers COORDINATOR_LOAD_IN_PROGRESS meanwhile), unloads it otherwise —
/// a shard loaded at `unload_epoch` or later stays (a stale unload), with `None` any shard.
fn follow_leadership(
    broker: &Arc<Broker>,
    image: &MetadataImage,
    topic: &TopicImage,
    index: i32,
    registration: &PartitionRegistration,
    unload_epoch: Option<LeaderEpoch>,
) {
    let tp = TopicPartition::new(topic.name.as_str(), index);
    if registration.leader != broker.node_id() {
        let epoch = unload_epoch;
        match topic.name.as_str() {
            CONSUMER_OFFSETS_TOPIC => broker.groups.unload(index, epoch),
            _ => broker.txn.unload(index, epoch),
        };
        return;
    }
    let partition = local_partition(broker, image, &tp);
    let epoch = partition
        .as_ref()
        .map_or(LeaderEpoch(0), |p| p.leader_epoch());
    match topic.name.as_str() {
        CONSUMER_OFFSETS_TOPIC => {
            if let Some(loader) = broker.groups.load(index, epoch) {
                replay_in_background(partition, tp, loader);
            }
        }
        _ => {
            if let Some(loader) = broker.txn.load(index, epoch) {
                replay_in_background(partition, tp, loader);
            }
        }
    }
}

/// Replays a partition into its loader on a blocking thread, so that the metadata apply
/// that made this node the leader is not held up by the log's size. An empty partition (a
/// topic just created) is ready at once: no client sees it loading.
fn replay_in_background(
    partition: Option<Arc<Partition>>,
    tp: TopicPartition,
    loader: impl PartitionLoader + Send + 'static,
) {
    let empty = partition.as_ref().is_none_or(|p| {
        let offsets = p.offsets();
        offsets.log_start_offset == offsets.log_end_offset
    });
    if empty {
        if let Err(e) = replay_partition(partition.as_ref(), &tp, loader) {
            tracing::error!(error = %e, "cannot load a coordinator partition this node now leads");
        }
        return;
    }
    tokio::task::spawn_blocking(move || {
        let started = std::time::Instant::now();
        match replay_partition(partition.as_ref(), &tp, loader) {
            Ok(records) => tracing::info!(
                partition = %tp,
                records,
                elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
                "loaded the coordinator partition this node now leads"
            ),
            Err(e) => {
                tracing::error!(error = %e, "cannot load a coordinator partition this node now leads")
            }
        }
    });
}

/// This node's replica of `tp`, if the topic exists in `image` and has one here.
fn local_partition(
    broker: &Broker,
    image: &MetadataImage,
    tp: &TopicPartition,
) -> Option<Arc<Partition>> {
    let topic = image.topic(&tp.topic)?;
    broker.replicas.logs().get(topic.id, tp.partition)
}

/// Replays the log of `tp` (when it has one here: the topic is created on
/// first use) into `loader`, then lets the shard serve.
fn replay_partition(
    partition: Option<&Arc<Partition>>,
    tp: &TopicPartition,
    mut loader: impl PartitionLoader,
) -> Result<usize, LoadError> {
    let mut replayed = 0;
    if let Some(partition) = partition {
        for_each_batch(partition, tp, |header, records| {
            for (offset, entry) in entries(header, records) {
                match loader.replay(&entry) {
                    Ok(()) => replayed += 1,
                    Err(error) => tracing::error!(
                        partition = %tp,
                        offset,
                        %error,
                        "skipping an undecodable record while loading coordinator state"
                    ),
                }
            }
        })?;
    }
    loader.finish();
    Ok(replayed)
}

/// The entries a batch holds, with their offsets: a control batch's markers,
/// or a data batch's keyed records (records without a key carry nothing a
/// coordinator reads).
fn entries(header: &BatchHeader, records: Vec<Record>) -> Vec<(i64, LogEntry)> {
    let producer = ProducerIdAndEpoch::new(header.producer_id, header.producer_epoch);
    if header.is_control() {
        return records
            .into_iter()
            .filter_map(|r| {
                let commit = r.key.as_deref().and_then(marker_key_is_commit)?;
                Some((r.offset, LogEntry::Marker { producer, commit }))
            })
            .collect();
    }
    let transactional = header.is_transactional().then_some(producer);
    records
        .into_iter()
        .filter_map(|r| {
            let record = CoordinatorRecord {
                key: r.key?,
                value: r.value,
            };
            Some((
                r.offset,
                LogEntry::Record {
                    record,
                    transactional,
                },
            ))
        })
        .collect()
}

/// Calls `visit` with every batch of `partition` in log order, with its
/// decoded records. Batches that cannot be decoded are logged and skipped.
fn for_each_batch(
    partition: &Partition,
    tp: &TopicPartition,
    mut visit: impl FnMut(&BatchHeader, Vec<Record>),
) -> Result<(), LoadError> {
    let mut offset = partition.offsets().log_start_offset;
    loop {
        let read = partition
            // To the log end, as Kafka's loader: a new leader's high watermark catches
            // up only once its followers fetch, and what its log holds is what it leads.
            .read(offset, LOAD_CHUNK, ReadBound::LogEnd)
            .map_err(|source| LoadError {
                partition: tp.clone(),
                offset,
                source,
            })?;
        if read.records.is_empty() {
            return Ok(());
        }
        for item in split_batches(&read.records) {
            let Ok((header, range)) = item else {
                // The log only returns whole batches with sound headers, so the
                // rest of the partition cannot be located.
                tracing::error!(
                    partition = %tp,
                    offset,
                    "skipping the rest of a coordinator partition: unreadable batch header"
                );
                return Ok(());
            };
            if range.end > read.records.len() {
                break; // a partial batch: the next read starts with it
            }
            let batch = read.records.slice(range);
            offset = header.last_offset() + 1;
            match records::decode_records(&batch, MAX_DECOMPRESSED_BYTES)
                .and_then(|records| records.collect::<Result<Vec<_>, _>>())
            {
                Ok(records) => visit(&header, records),
                Err(error) => tracing::error!(
                    partition = %tp,
                    offset = header.base_offset,
                    last_offset = header.last_offset(),
                    %error,
                    "skipping an undecodable batch while loading coordinator state"
                ),
            }
        }
        if offset >= read.offsets.log_end_offset {
            return Ok(());
        }
    }
}

/// The metadata publisher that keeps the coordinators in line with metadata (Redpanda's
/// group manager attach/detach): a coordinator partition is loaded when this node becomes
/// its leader and unloaded when another node does; a newly created internal topic is laid
/// out and loaded; a deleted topic's committed offsets are dropped.
pub struct CoordinatorReconciler {
    broker: std::sync::Weak<Broker>,
}

impl CoordinatorReconciler {
    /// A reconciler that reaches the broker without keeping it alive.
    pub fn new(broker: std::sync::Weak<Broker>) -> Self {
        Self { broker }
    }
}

impl MetadataPublisher for CoordinatorReconciler {
    fn name(&self) -> &'static str {
        "coordinator reconciler"
    }

    fn publish(&self, delta: &MetadataDelta, image: &MetadataImage) {
        let Some(broker) = self.broker.upgrade() else {
            return;
        };
        for id in &delta.topics_created {
            if let Some(topic) = image.topic_by_id(id).filter(|t| is_internal_topic(&t.name)) {
                on_internal_topic_created(&broker, image, topic);
            }
        }
        for topic in &delta.topics_deleted {
            // Kafka drops the committed offsets of a deleted topic's partitions
            // (`GroupCoordinator.onPartitionsDeleted`): tombstones, written asynchronously.
            let groups = broker.groups.clone();
            let name = topic.name.clone();
            tokio::runtime::Handle::current().spawn(async move {
                groups.on_topic_deleted(&name).await;
            });
        }
        for (id, index) in &delta.partitions_changed {
            let Some(topic) = image.topic_by_id(id).filter(|t| is_internal_topic(&t.name)) else {
                continue;
            };
            let Some(registration) = topic.partition(*index) else {
                continue;
            };
            let epoch = Some(registration.leader_epoch);
            follow_leadership(&broker, image, topic, *index, registration, epoch);
        }
    }
}

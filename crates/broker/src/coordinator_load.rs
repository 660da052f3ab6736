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
use crate::metadata::{MetadataDelta, MetadataImage, MetadataPublisher, TopicImage};
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

/// Loads every partition of both coordinators' topics, as the node that
/// leads them all.
pub fn load_all(broker: &Broker) -> Result<(), LoadError> {
    let image = broker.metadata.image();
    for (topic, partitions) in [
        (CONSUMER_OFFSETS_TOPIC, broker.groups.partition_count()),
        (TRANSACTION_STATE_TOPIC, broker.txn.partition_count()),
    ] {
        let mut replayed = 0;
        for partition in 0..partitions {
            replayed += load_partition(broker, &image, &TopicPartition::new(topic, partition))?;
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
/// the coordinator unloads every partition and loads the new ones.
pub fn on_internal_topic_created(broker: &Broker, image: &MetadataImage, topic: &TopicImage) {
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
    if !relaid {
        return;
    }
    tracing::info!(topic = %topic.name, partitions = topic.partition_count(), "coordinator partitions laid out anew");
    for partition in 0..topic.partition_count() {
        if let Err(e) = load_partition(
            broker,
            image,
            &TopicPartition::new(topic.name.as_str(), partition),
        ) {
            tracing::error!(error = %e, "cannot load a new coordinator partition");
        }
    }
}

/// This node's replica of `tp`, if the topic exists in `image` and has one here.
fn local_partition(
    broker: &Broker,
    image: &MetadataImage,
    tp: &TopicPartition,
) -> Option<std::sync::Arc<Partition>> {
    let topic = image.topic(&tp.topic)?;
    broker.replicas.logs().get(topic.id, tp.partition)
}

/// Replays the log of `tp` (when it has one here: the topic is created on
/// first use) into `loader`, then lets the shard serve.
fn replay_partition(
    partition: Option<&std::sync::Arc<Partition>>,
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
            .read(offset, LOAD_CHUNK, ReadBound::HighWatermark)
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
            let tp = TopicPartition::new(topic.name.as_str(), *index);
            if registration.leader == broker.node_id() {
                if let Err(e) = load_partition(&broker, image, &tp) {
                    tracing::error!(error = %e, "cannot load a coordinator partition this node now leads");
                }
            } else {
                let epoch = Some(registration.leader_epoch);
                match topic.name.as_str() {
                    CONSUMER_OFFSETS_TOPIC => broker.groups.unload(*index, epoch),
                    _ => broker.txn.unload(*index, epoch),
                };
            }
        }
    }
}

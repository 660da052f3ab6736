//! Topics: list, detail, create, delete, purge, add partitions, configs.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use sluice_protocol::kafka_protocol;
use sluice_protocol::model::LeaderEpoch;
use uuid::Uuid;

use super::Admin;
use crate::errors::storage_error_code;
use crate::metadata::{MetadataImage, TopicImage};
use crate::metrics::TrafficTotals;
use crate::partition::Partition;
use crate::topic_admin::{self, AdminError, NewTopic};
use crate::topic_config::{ConfigSource, resolve_topic_configs, topic_config_def};

/// One topic as the topic list shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicSummary {
    /// Its name.
    pub name: String,
    /// Its id.
    pub id: Uuid,
    /// Whether a coordinator owns it.
    pub internal: bool,
    /// Partitions.
    pub partitions: i32,
    /// Replicas of its first partition.
    pub replication_factor: usize,
    /// Partitions with fewer in-sync replicas than replicas.
    pub under_replicated: usize,
    /// Bytes of its logs on this node.
    pub size_bytes: u64,
    /// Records between log start and log end on this node, over its partitions: an
    /// upper bound (deleted and compacted records, transaction markers count).
    pub approximate_records: i64,
    /// Its traffic counters since the broker started.
    pub traffic: TrafficTotals,
}

/// One partition of a topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionDetail {
    /// Its index.
    pub index: i32,
    /// Its leader (-1: none).
    pub leader: i32,
    /// The leader epoch.
    pub leader_epoch: i32,
    /// Its replicas.
    pub replicas: Vec<i32>,
    /// Its in-sync replicas.
    pub isr: Vec<i32>,
    /// Offsets and size on this node, when it has a replica.
    pub local: Option<LocalReplica>,
}

/// A partition's replica on this node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalReplica {
    /// First offset in the log.
    pub log_start_offset: i64,
    /// Offset the next record gets.
    pub log_end_offset: i64,
    /// Offset consumers read up to.
    pub high_watermark: i64,
    /// Bytes on disk.
    pub size_bytes: u64,
}

/// One topic config with where its value comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigEntry {
    /// Kafka's name, e.g. `retention.ms`.
    pub name: &'static str,
    /// Its effective value.
    pub value: String,
    /// Where the value comes from.
    pub source: ConfigSource,
    /// Kafka's built-in default.
    pub default: &'static str,
}

impl ConfigEntry {
    /// Whether the value is set on the topic (an override).
    pub fn is_override(&self) -> bool {
        self.source == ConfigSource::DynamicTopic
    }
}

/// A topic with its partitions and configs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicDetail {
    /// The summary the list shows.
    pub summary: TopicSummary,
    /// Its partitions, by index.
    pub partitions: Vec<PartitionDetail>,
    /// Every topic config.
    pub configs: Vec<ConfigEntry>,
}

/// A topic to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTopicSpec {
    /// Its name.
    pub name: String,
    /// Partitions; -1 for the broker default.
    pub partitions: i32,
    /// Replication factor; -1 for the broker default.
    pub replication_factor: i16,
    /// Config overrides.
    pub configs: BTreeMap<String, String>,
}

/// One change to a topic's configs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigChange {
    /// Set an override.
    Set(String, String),
    /// Remove the override (back to the broker's or Kafka's default).
    Delete(String),
}

fn unknown_topic(name: &str) -> AdminError {
    AdminError::new(
        ResponseError::UnknownTopicOrPartition,
        format!("The topic '{name}' does not exist."),
    )
}

impl Admin {
    /// Every topic, by name.
    pub fn topics(&self) -> Vec<TopicSummary> {
        let image = self.broker.metadata.image();
        let mut local: HashMap<Uuid, Vec<Arc<Partition>>> = HashMap::new();
        for p in self.broker.replicas.logs().all() {
            local.entry(p.topic_id).or_default().push(p);
        }
        let traffic = self.broker.metrics.topic_totals();
        let mut topics: Vec<TopicSummary> = image
            .topics()
            .map(|t| {
                summarize(
                    t,
                    local.get(&t.id).map_or(&[][..], Vec::as_slice),
                    traffic.get(&t.name).copied().unwrap_or_default(),
                )
            })
            .collect();
        topics.sort_by(|a, b| a.name.cmp(&b.name));
        topics
    }

    /// One topic with its partitions and configs; `None` if it does not exist.
    pub fn topic(&self, name: &str) -> Option<TopicDetail> {
        let image = self.broker.metadata.image();
        let topic = image.topic(name)?;
        let local = self.broker.replicas.logs().topic_partitions(topic.id);
        let traffic = self
            .broker
            .metrics
            .topic_totals()
            .get(name)
            .copied()
            .unwrap_or_default();
        let partitions = topic
            .partitions
            .iter()
            .enumerate()
            .map(|(index, registration)| {
                let index = i32::try_from(index).unwrap_or(i32::MAX);
                PartitionDetail {
                    index,
                    leader: registration.leader,
                    leader_epoch: registration.leader_epoch.0,
                    replicas: registration.replicas.clone(),
                    isr: registration.isr.clone(),
                    local: local.iter().find(|p| p.index == index).map(|p| {
                        let offsets = p.offsets();
                        LocalReplica {
                            log_start_offset: offsets.log_start_offset,
                            log_end_offset: offsets.log_end_offset,
                            high_watermark: offsets.high_watermark,
                            size_bytes: p.size_bytes(),
                        }
                    }),
                }
            })
            .collect();
        Some(TopicDetail {
            summary: summarize(topic, &local, traffic),
            partitions,
            configs: self.topic_configs(&image, topic),
        })
    }

    fn topic_configs(&self, image: &MetadataImage, topic: &TopicImage) -> Vec<ConfigEntry> {
        resolve_topic_configs(&topic.configs, &self.broker.config, &image.broker_configs)
            .into_iter()
            .map(|c| ConfigEntry {
                name: c.name,
                value: c.value,
                source: c.source,
                default: topic_config_def(c.name).map_or("", |d| d.default),
            })
            .collect()
    }

    /// Creates a topic as CreateTopics would.
    pub async fn create_topic(&self, spec: NewTopicSpec) -> Result<TopicSummary, AdminError> {
        let created = topic_admin::create_topic(
            &self.broker,
            NewTopic {
                name: spec.name,
                partitions: spec.partitions,
                replication_factor: spec.replication_factor,
                configs: spec.configs,
                internal: false,
                assignments: None,
            },
            false,
        )
        .await?;
        let local = self.broker.replicas.logs().topic_partitions(created.id);
        Ok(summarize(&created, &local, TrafficTotals::default()))
    }

    /// Deletes a topic as DeleteTopics would (internal topics are refused).
    pub async fn delete_topic(&self, name: &str) -> Result<(), AdminError> {
        let id = self
            .broker
            .metadata
            .image()
            .topic(name)
            .map(|t| t.id)
            .ok_or_else(|| unknown_topic(name))?;
        // The groups' offsets of its partitions go with it (the coordinator reconciler).
        topic_admin::delete_topic(&self.broker, id)
            .await
            .map(|_| ())
    }

    /// Raises the partition count of a topic to `count`, as CreatePartitions would.
    pub async fn add_partitions(&self, name: &str, count: i32) -> Result<(), AdminError> {
        topic_admin::create_partitions(&self.broker, name, count, false).await
    }

    /// Deletes every record of the topic up to each partition's high watermark (Kafka's
    /// DeleteRecords with offset -1); returns each partition's new log start offset.
    pub fn purge_topic(&self, name: &str) -> Result<Vec<(i32, i64)>, AdminError> {
        let image = self.broker.metadata.image();
        let topic = image.topic(name).ok_or_else(|| unknown_topic(name))?;
        if topic.internal {
            return Err(AdminError::new(
                ResponseError::InvalidTopicException,
                format!("Cannot purge internal topic {name}"),
            ));
        }
        let mut purged = Vec::with_capacity(topic.partitions.len());
        for index in 0..topic.partition_count() {
            let partition = self
                .broker
                .replicas
                .leader_partition(topic, index, LeaderEpoch::UNKNOWN)
                .map_err(|e| AdminError::new(e.code, e.to_string()))?;
            let high_watermark = partition.offsets().high_watermark;
            let start = partition
                .delete_records_before(high_watermark)
                .map_err(|e| AdminError::new(storage_error_code(&e), e.to_string()))?;
            purged.push((index, start));
        }
        Ok(purged)
    }

    /// Applies config changes to a topic, as IncrementalAlterConfigs would (every value
    /// validated, all or nothing).
    pub async fn alter_topic_configs(
        &self,
        name: &str,
        changes: &[ConfigChange],
    ) -> Result<(), AdminError> {
        topic_admin::set_topic_configs(
            &self.broker,
            name,
            |current| {
                let mut next = current.clone();
                for change in changes {
                    let key = match change {
                        ConfigChange::Set(k, _) | ConfigChange::Delete(k) => k,
                    };
                    if topic_config_def(key).is_none() {
                        return Err(AdminError::new(
                            ResponseError::InvalidConfig,
                            format!("Unknown config name: {key}"),
                        ));
                    }
                    match change {
                        ConfigChange::Set(k, v) => next.insert(k.clone(), v.clone()),
                        ConfigChange::Delete(k) => next.remove(k),
                    };
                }
                Ok(next)
            },
            false,
        )
        .await
    }
}

fn summarize(topic: &TopicImage, local: &[Arc<Partition>], traffic: TrafficTotals) -> TopicSummary {
    let (mut size_bytes, mut approximate_records) = (0u64, 0i64);
    for p in local {
        let offsets = p.offsets();
        size_bytes += p.size_bytes();
        approximate_records += (offsets.log_end_offset - offsets.log_start_offset).max(0);
    }
    TopicSummary {
        name: topic.name.clone(),
        id: topic.id,
        internal: topic.internal,
        partitions: topic.partition_count(),
        replication_factor: topic.partitions.first().map_or(0, |p| p.replicas.len()),
        under_replicated: topic
            .partitions
            .iter()
            .filter(|p| p.isr.len() < p.replicas.len())
            .count(),
        size_bytes,
        approximate_records,
        traffic,
    }
}

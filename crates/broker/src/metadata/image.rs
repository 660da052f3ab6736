//! The in-memory picture of cluster metadata, built by applying records.

use std::collections::{BTreeMap, HashMap};

use uuid::Uuid;

use super::MetadataRecord;

/// One topic as metadata knows it.
#[derive(Debug, Clone, PartialEq)]
pub struct TopicImage {
    /// Topic name.
    pub name: String,
    /// Topic id.
    pub id: Uuid,
    /// Number of partitions, numbered 0..partitions.
    pub partitions: i32,
    /// Config overrides (only what was set on the topic).
    pub configs: BTreeMap<String, String>,
    /// Whether the topic is internal (`__consumer_offsets`).
    pub internal: bool,
}

/// All metadata at one point of the metadata log.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MetadataImage {
    topics: BTreeMap<String, TopicImage>,
    names_by_id: HashMap<Uuid, String>,
    /// Dynamic broker configs (AlterConfigs on the broker resource).
    pub broker_configs: BTreeMap<String, String>,
    /// First producer id not yet reserved by any block.
    pub next_producer_id: i64,
}

impl MetadataImage {
    /// Applies one record. Records for unknown topics are ignored: they can
    /// only come from a log that was written by a buggy version, and skipping
    /// them keeps the rest of the metadata usable.
    pub fn apply(&mut self, record: &MetadataRecord) {
        match record {
            MetadataRecord::TopicCreated {
                name,
                id,
                partitions,
                configs,
                internal,
            } => {
                self.names_by_id.insert(*id, name.clone());
                self.topics.insert(
                    name.clone(),
                    TopicImage {
                        name: name.clone(),
                        id: *id,
                        partitions: *partitions,
                        configs: configs.clone(),
                        internal: *internal,
                    },
                );
            }
            MetadataRecord::TopicDeleted { id } => {
                if let Some(name) = self.names_by_id.remove(id) {
                    self.topics.remove(&name);
                }
            }
            MetadataRecord::PartitionsCreated { id, partitions } => {
                if let Some(t) = self.topic_by_id_mut(id) {
                    t.partitions = *partitions;
                }
            }
            MetadataRecord::TopicConfigsChanged { id, configs } => {
                if let Some(t) = self.topic_by_id_mut(id) {
                    t.configs = configs.clone();
                }
            }
            MetadataRecord::BrokerConfigsChanged { configs } => {
                self.broker_configs = configs.clone();
            }
            MetadataRecord::ProducerIdsAllocated { next } => {
                self.next_producer_id = self.next_producer_id.max(*next);
            }
        }
    }

    fn topic_by_id_mut(&mut self, id: &Uuid) -> Option<&mut TopicImage> {
        let name = self.names_by_id.get(id)?;
        self.topics.get_mut(name)
    }

    /// The topic with this name.
    pub fn topic(&self, name: &str) -> Option<&TopicImage> {
        self.topics.get(name)
    }

    /// The topic with this id.
    pub fn topic_by_id(&self, id: &Uuid) -> Option<&TopicImage> {
        self.names_by_id.get(id).and_then(|n| self.topics.get(n))
    }

    /// All topics, sorted by name.
    pub fn topics(&self) -> impl Iterator<Item = &TopicImage> {
        self.topics.values()
    }

    /// Partitions of every topic together.
    pub fn partition_count(&self) -> i64 {
        self.topics.values().map(|t| i64::from(t.partitions)).sum()
    }
}

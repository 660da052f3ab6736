//! What a batch of metadata records changed, for the code that acts on metadata
//! (Kafka's `MetadataDelta` handed to `MetadataPublisher`s): which topics appeared or
//! went, which partitions changed, whose configs moved.

use uuid::Uuid;

use super::{MetadataImage, MetadataRecord, TopicImage};

/// The changes of one committed batch of records.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MetadataDelta {
    /// Topics created, by id.
    pub topics_created: Vec<Uuid>,
    /// Topics deleted, as they were before the deletion.
    pub topics_deleted: Vec<TopicImage>,
    /// Partitions added to existing topics or whose registration changed.
    pub partitions_changed: Vec<(Uuid, i32)>,
    /// Topics whose config overrides changed.
    pub topic_configs_changed: Vec<Uuid>,
    /// The dynamic broker configs changed (every topic's settings may have).
    pub broker_configs_changed: bool,
    /// Brokers that registered, changed their endpoints, or were fenced or unfenced.
    pub brokers_changed: Vec<i32>,
}

impl MetadataDelta {
    /// Notes what `record` changes, given the image `before` it was applied.
    pub fn note(&mut self, record: &MetadataRecord, before: &MetadataImage) {
        match record {
            MetadataRecord::TopicCreated { id, .. } => self.topics_created.push(*id),
            MetadataRecord::TopicDeleted { id } => {
                if let Some(t) = before.topic_by_id(id) {
                    self.topics_deleted.push(t.clone());
                }
            }
            MetadataRecord::PartitionsCreated { id, partitions, .. } => {
                let existing = before
                    .topic_by_id(id)
                    .map_or(0, TopicImage::partition_count);
                self.partitions_changed
                    .extend((existing..*partitions).map(|p| (*id, p)));
            }
            MetadataRecord::PartitionChanged {
                topic_id,
                partition,
                ..
            } => self.partitions_changed.push((*topic_id, *partition)),
            MetadataRecord::TopicConfigsChanged { id, .. } => self.topic_configs_changed.push(*id),
            MetadataRecord::BrokerConfigsChanged { .. } => self.broker_configs_changed = true,
            MetadataRecord::BrokerRegistered { id, .. }
            | MetadataRecord::BrokerRegistrationChanged { id, .. } => {
                self.brokers_changed.push(*id)
            }
            MetadataRecord::ProducerIdsAllocated { .. }
            | MetadataRecord::ScramCredentialUpserted { .. }
            | MetadataRecord::ScramCredentialDeleted { .. }
            | MetadataRecord::AclCreated { .. }
            | MetadataRecord::AclDeleted { .. }
            | MetadataRecord::ClientQuotaChanged { .. } => {}
        }
    }
}

/// Code that keeps local state in line with metadata (Kafka's `MetadataPublisher`,
/// Redpanda's `controller_backend`): called with each committed delta and the image it
/// produced, before that image is visible to requests.
pub trait MetadataPublisher: Send + Sync {
    /// A name for logs.
    fn name(&self) -> &'static str;

    /// Acts on `delta`; failures are the publisher's to report (they never undo the
    /// committed records).
    fn publish(&self, delta: &MetadataDelta, image: &MetadataImage);
}

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
    /// ACLs were created or deleted (an authorizer rebuilds).
    pub acls_changed: bool,
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
            | MetadataRecord::BrokerState { id, .. }
            | MetadataRecord::BrokerRegistrationChanged { id, .. }
            | MetadataRecord::BrokerUnregistered { id } => self.brokers_changed.push(*id),
            MetadataRecord::PartitionState {
                topic_id,
                partition,
                ..
            } => self.partitions_changed.push((*topic_id, *partition)),
            MetadataRecord::AclCreated { .. } | MetadataRecord::AclDeleted { .. } => {
                self.acls_changed = true
            }
            // Users and quotas are read from the image when used.
            MetadataRecord::ProducerIdsAllocated { .. }
            | MetadataRecord::ClusterIdSet { .. }
            | MetadataRecord::ScramCredentialUpserted { .. }
            | MetadataRecord::ScramCredentialDeleted { .. }
            | MetadataRecord::ClientQuotaChanged { .. } => {}
        }
    }

    /// Everything that differs between `old` and `new`, as if one batch had turned one
    /// into the other: what publishers are told when a snapshot replaces the image.
    pub fn between(old: &MetadataImage, new: &MetadataImage) -> Self {
        let mut delta = Self::default();
        for topic in old.topics() {
            if new.topic_by_id(&topic.id).is_none() {
                delta.topics_deleted.push(topic.clone());
            }
        }
        for topic in new.topics() {
            let Some(before) = old.topic_by_id(&topic.id) else {
                delta.topics_created.push(topic.id);
                continue;
            };
            delta.partitions_changed.extend(
                (0..)
                    .zip(&topic.partitions)
                    .filter(|(index, p)| before.partition(*index) != Some(*p))
                    .map(|(index, _)| (topic.id, index)),
            );
            if before.configs != topic.configs {
                delta.topic_configs_changed.push(topic.id);
            }
        }
        delta.broker_configs_changed = old.broker_configs != new.broker_configs;
        delta.brokers_changed = new
            .brokers()
            .filter(|b| old.broker(b.id) != Some(*b))
            .map(|b| b.id)
            .collect();
        delta.acls_changed = !old.security.acls().eq(new.security.acls());
        delta
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::PartitionAssignment;

    fn created(name: &str, id: u128, partitions: i32) -> MetadataRecord {
        MetadataRecord::TopicCreated {
            name: name.into(),
            id: Uuid::from_u128(id),
            partitions,
            configs: BTreeMap::new(),
            internal: false,
            replicas: vec![PartitionAssignment(vec![1]); usize::try_from(partitions).unwrap()],
        }
    }

    /// A snapshot replacing the image tells publishers what a stream of batches would have:
    /// topics gone and new, partitions added or moved, configs changed, ACLs changed.
    #[test]
    fn between_two_images_names_every_difference() {
        let mut old = MetadataImage::new(1);
        for r in [
            created("kept", 1, 1),
            created("gone", 2, 1),
            created("same", 4, 1),
        ] {
            old.apply(&r);
        }
        let mut new = old.clone();
        for r in [
            MetadataRecord::TopicDeleted {
                id: Uuid::from_u128(2),
            },
            created("new", 3, 2),
            MetadataRecord::PartitionsCreated {
                id: Uuid::from_u128(1),
                partitions: 2,
                replicas: vec![PartitionAssignment(vec![1])],
            },
            MetadataRecord::TopicConfigsChanged {
                id: Uuid::from_u128(1),
                configs: BTreeMap::from([("retention.ms".into(), "1".into())]),
            },
            MetadataRecord::BrokerConfigsChanged {
                configs: BTreeMap::from([("log.retention.ms".into(), "1".into())]),
            },
            MetadataRecord::AclCreated {
                id: Uuid::from_u128(9),
                acl: crate::security::StoredAcl {
                    resource_type: 2,
                    resource_name: "kept".into(),
                    pattern_type: 3,
                    principal: "User:alice".into(),
                    host: "*".into(),
                    operation: 2,
                    permission: 3,
                },
            },
        ] {
            new.apply(&r);
        }
        let delta = MetadataDelta::between(&old, &new);
        assert_eq!(delta.topics_created, vec![Uuid::from_u128(3)]);
        assert_eq!(
            delta
                .topics_deleted
                .iter()
                .map(|t| t.name.as_str())
                .collect::<Vec<_>>(),
            vec!["gone"]
        );
        assert_eq!(delta.partitions_changed, vec![(Uuid::from_u128(1), 1)]);
        assert_eq!(delta.topic_configs_changed, vec![Uuid::from_u128(1)]);
        assert!(delta.broker_configs_changed);
        assert!(delta.brokers_changed.is_empty());
        assert!(delta.acls_changed);
        assert_eq!(MetadataDelta::between(&new, &new), MetadataDelta::default());
    }
}

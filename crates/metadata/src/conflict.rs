//! Whether a batch of records still applies to the image it reaches. A proposal is decided
//! against the image its proposer saw; with a replicated metadata log another proposal may
//! have committed in between (Kafka's controller decides against its own latest state;
//! here any node may propose). So every node checks each committed batch before applying
//! it, with the same deterministic rules, and a batch that conflicts is applied nowhere —
//! its proposer is told why.

use uuid::Uuid;

use crate::{MetadataImage, MetadataRecord};

/// Why a committed batch does not apply to the image it reached.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordConflict {
    /// A topic with this name (or id) exists already.
    #[error("topic '{0}' already exists")]
    TopicExists(String),
    /// The topic is gone (deleted, or never created).
    #[error("topic {0} does not exist")]
    UnknownTopic(Uuid),
    /// New partitions must raise the partition count.
    #[error("topic {topic} has {current} partitions; {requested} would not be an increase")]
    PartitionsNotIncreased {
        /// The topic.
        topic: Uuid,
        /// Its partition count now.
        current: i32,
        /// The count the batch asked for.
        requested: i32,
    },
    /// The partition does not exist.
    #[error("partition {partition} of topic {topic} does not exist")]
    UnknownPartition {
        /// The topic.
        topic: Uuid,
        /// The partition index.
        partition: i32,
    },
    /// A partition change decided against an older registration (AlterPartition's
    /// INVALID_UPDATE_VERSION).
    #[error(
        "partition {partition} of topic {topic} is at partition epoch {actual}, not {expected}"
    )]
    StalePartitionEpoch {
        /// The topic.
        topic: Uuid,
        /// The partition index.
        partition: i32,
        /// The epoch the change was decided against.
        expected: i32,
        /// The epoch it has.
        actual: i32,
    },
    /// A leader epoch may never go backwards.
    #[error(
        "partition {partition} of topic {topic} is at leader epoch {actual}; {requested} would go back"
    )]
    LeaderEpochRegression {
        /// The topic.
        topic: Uuid,
        /// The partition index.
        partition: i32,
        /// The epoch the change asked for.
        requested: i32,
        /// The epoch it has.
        actual: i32,
    },
    /// Another block of producer ids was reserved first.
    #[error("producer ids up to {current} are reserved already")]
    ProducerIdsTaken {
        /// The first id not reserved now.
        current: i64,
    },
}

impl MetadataImage {
    /// Checks that `record` applies to this image (see the module docs).
    pub fn check(&self, record: &MetadataRecord) -> Result<(), RecordConflict> {
        match record {
            MetadataRecord::TopicCreated { name, id, .. } => {
                if self.topic(name).is_some() || self.topic_by_id(id).is_some() {
                    return Err(RecordConflict::TopicExists(name.clone()));
                }
            }
            MetadataRecord::TopicDeleted { id }
            | MetadataRecord::TopicConfigsChanged { id, .. } => {
                self.topic_by_id(id)
                    .ok_or(RecordConflict::UnknownTopic(*id))?;
            }
            MetadataRecord::PartitionsCreated { id, partitions, .. } => {
                let topic = self
                    .topic_by_id(id)
                    .ok_or(RecordConflict::UnknownTopic(*id))?;
                if *partitions <= topic.partition_count() {
                    return Err(RecordConflict::PartitionsNotIncreased {
                        topic: *id,
                        current: topic.partition_count(),
                        requested: *partitions,
                    });
                }
            }
            MetadataRecord::PartitionChanged {
                topic_id,
                partition,
                leader_epoch,
                expected_partition_epoch,
                ..
            } => {
                let registration = self
                    .topic_by_id(topic_id)
                    .ok_or(RecordConflict::UnknownTopic(*topic_id))?
                    .partition(*partition)
                    .ok_or(RecordConflict::UnknownPartition {
                        topic: *topic_id,
                        partition: *partition,
                    })?;
                if let Some(expected) = expected_partition_epoch
                    && *expected != registration.partition_epoch
                {
                    return Err(RecordConflict::StalePartitionEpoch {
                        topic: *topic_id,
                        partition: *partition,
                        expected: *expected,
                        actual: registration.partition_epoch,
                    });
                }
                if *leader_epoch < registration.leader_epoch.0 {
                    return Err(RecordConflict::LeaderEpochRegression {
                        topic: *topic_id,
                        partition: *partition,
                        requested: *leader_epoch,
                        actual: registration.leader_epoch.0,
                    });
                }
            }
            MetadataRecord::ProducerIdsAllocated { next } => {
                if *next <= self.next_producer_id {
                    return Err(RecordConflict::ProducerIdsTaken {
                        current: self.next_producer_id,
                    });
                }
            }
            MetadataRecord::BrokerConfigsChanged { .. }
            | MetadataRecord::BrokerRegistered { .. }
            | MetadataRecord::ScramCredentialUpserted { .. }
            | MetadataRecord::ScramCredentialDeleted { .. } => {}
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::collections::BTreeMap;

    use super::*;
    use crate::PartitionAssignment;

    fn created(name: &str, id: u128) -> MetadataRecord {
        MetadataRecord::TopicCreated {
            name: name.into(),
            id: Uuid::from_u128(id),
            partitions: 1,
            configs: BTreeMap::new(),
            internal: false,
            replicas: vec![PartitionAssignment(vec![1, 2])],
        }
    }

    fn changed(leader_epoch: i32, expected: Option<i32>) -> MetadataRecord {
        MetadataRecord::PartitionChanged {
            topic_id: Uuid::from_u128(1),
            partition: 0,
            leader: 2,
            leader_epoch,
            isr: vec![2],
            replicas: None,
            expected_partition_epoch: expected,
        }
    }

    #[test]
    fn decisions_taken_against_an_older_image_are_refused() {
        let mut image = MetadataImage::new(1);
        image.apply(&created("t", 1));
        assert_eq!(
            image.check(&created("t", 2)),
            Err(RecordConflict::TopicExists("t".into()))
        );
        assert!(image.check(&created("u", 2)).is_ok());
        assert!(image.check(&changed(1, Some(0))).is_ok());
        image.apply(&changed(1, Some(0)));
        assert!(matches!(
            image.check(&changed(2, Some(0))),
            Err(RecordConflict::StalePartitionEpoch { actual: 1, .. })
        ));
        assert!(matches!(
            image.check(&changed(0, None)),
            Err(RecordConflict::LeaderEpochRegression { actual: 1, .. })
        ));
        image.apply(&MetadataRecord::ProducerIdsAllocated { next: 1000 });
        assert!(
            image
                .check(&MetadataRecord::ProducerIdsAllocated { next: 1000 })
                .is_err()
        );
        assert!(
            image
                .check(&MetadataRecord::ProducerIdsAllocated { next: 2000 })
                .is_ok()
        );
        image.apply(&MetadataRecord::TopicDeleted {
            id: Uuid::from_u128(1),
        });
        assert_eq!(
            image.check(&MetadataRecord::TopicDeleted {
                id: Uuid::from_u128(1)
            }),
            Err(RecordConflict::UnknownTopic(Uuid::from_u128(1)))
        );
    }
}

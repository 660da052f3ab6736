//! Whether a batch of records still applies to the image it reaches. A proposal is decided
//! against the image its proposer saw; with a replicated metadata log another proposal may
//! have committed in between (Kafka's controller decides against its own latest state;
//! here any node may propose). So every node checks each committed batch before applying
//! it, with the same deterministic rules, and a batch that conflicts is applied nowhere —
//! its proposer is told why.

use uuid::Uuid;

use crate::{BrokerRegistration, MetadataImage, MetadataRecord};

/// Why a committed batch does not apply to the image it reached. It travels from the quorum
/// leader to the node that proposed the batch, hence serde.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
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
    /// A controller decision committed in a later quorum term than the one its controller
    /// led in: another controller took over meanwhile and decides from its own view now
    /// (Kafka's controller appends only in the epoch it leads).
    #[error(
        "decided by the controller of quorum term {decided_in}, committed in term {committed_in}: that controller no longer leads"
    )]
    StaleController {
        /// The term the deciding controller led in.
        decided_in: u64,
        /// The term of the leader that committed it.
        committed_in: u64,
    },
    /// Another block of producer ids was reserved first.
    #[error("producer ids up to {current} are reserved already")]
    ProducerIdsTaken {
        /// The first id not reserved now.
        current: i64,
    },
    /// The cluster has an id already; it never changes.
    #[error("the cluster id is {0} already")]
    ClusterIdSet(String),
    /// A partition change names a leader or ISR member that may not be one: not a replica
    /// of the partition, or (joining the ISR or taking the lead) not a registered broker
    /// that is unfenced and not shutting down (Kafka's `INELIGIBLE_REPLICA`).
    #[error(
        "broker {broker} cannot lead or join the ISR of partition {partition} of topic {topic}"
    )]
    IneligibleReplica {
        /// The topic.
        topic: Uuid,
        /// The partition index.
        partition: i32,
        /// The broker.
        broker: i32,
    },
    /// A partition change whose replicas do not hold together: no replica, one listed
    /// twice, or replicas being added or removed that are not replicas (or both at once).
    #[error("partition {partition} of topic {topic}: {reason}")]
    InvalidAssignment {
        /// The topic.
        topic: Uuid,
        /// The partition index.
        partition: i32,
        /// What is wrong.
        reason: String,
    },
    /// A registration change for a broker that never registered.
    #[error("broker {0} is not registered")]
    UnknownBroker(i32),
    /// A broker cannot be unregistered while it is a replica of a partition (the replicas
    /// are moved off it first).
    #[error(
        "broker {broker} is still a replica of {partitions} partition(s); move them off it \
         first (sluice cluster decommission {broker})"
    )]
    BrokerHostsReplicas {
        /// The broker.
        broker: i32,
        /// How many partitions it is a replica of (adding and removing ones included).
        partitions: usize,
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
                leader,
                leader_epoch,
                isr,
                replicas,
                adding_replicas,
                removing_replicas,
                expected_partition_epoch,
            } => {
                let registration = self.registration(topic_id, *partition)?;
                check_assignment(
                    replicas.as_ref().unwrap_or(&registration.replicas),
                    adding_replicas
                        .as_ref()
                        .unwrap_or(&registration.adding_replicas),
                    removing_replicas
                        .as_ref()
                        .unwrap_or(&registration.removing_replicas),
                )
                .map_err(|reason| RecordConflict::InvalidAssignment {
                    topic: *topic_id,
                    partition: *partition,
                    reason,
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
                let replicas = replicas.as_ref().unwrap_or(&registration.replicas);
                let ineligible = |broker: i32| RecordConflict::IneligibleReplica {
                    topic: *topic_id,
                    partition: *partition,
                    broker,
                };
                // Every ISR member and the leader are replicas; whoever newly joins the ISR
                // or takes the lead must be able to serve (a broker already in the ISR
                // may stay while fenced: the last in-sync replica is kept, as in Kafka).
                for &member in isr.iter().chain((*leader >= 0).then_some(leader)) {
                    if !replicas.contains(&member) {
                        return Err(ineligible(member));
                    }
                }
                let joins = isr.iter().filter(|m| !registration.isr.contains(m));
                let new_leader = (*leader >= 0 && *leader != registration.leader).then_some(leader);
                for &member in joins.chain(new_leader) {
                    if !self
                        .broker(member)
                        .is_some_and(BrokerRegistration::is_eligible)
                    {
                        return Err(ineligible(member));
                    }
                }
            }
            MetadataRecord::BrokerRegistrationChanged { id, .. } => {
                self.broker(*id).ok_or(RecordConflict::UnknownBroker(*id))?;
            }
            MetadataRecord::BrokerUnregistered { id } => {
                self.broker(*id).ok_or(RecordConflict::UnknownBroker(*id))?;
                let partitions = self.partitions_hosted_by(*id);
                if partitions > 0 {
                    return Err(RecordConflict::BrokerHostsReplicas {
                        broker: *id,
                        partitions,
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
            MetadataRecord::ClusterIdSet { cluster_id } => match self.cluster_id() {
                Some(current) if current != cluster_id => {
                    return Err(RecordConflict::ClusterIdSet(current.to_string()));
                }
                _ => {}
            },
            MetadataRecord::PartitionState {
                topic_id,
                partition,
                ..
            } => {
                self.registration(topic_id, *partition)?;
            }
            MetadataRecord::BrokerConfigsChanged { .. }
            | MetadataRecord::BrokerRegistered { .. }
            | MetadataRecord::BrokerState { .. }
            | MetadataRecord::ScramCredentialUpserted { .. }
            | MetadataRecord::ScramCredentialDeleted { .. }
            | MetadataRecord::AclCreated { .. }
            | MetadataRecord::AclDeleted { .. }
            | MetadataRecord::ClientQuotaChanged { .. } => {}
        }
        Ok(())
    }

    /// How many partitions have broker `id` among their replicas, including replicas being
    /// added or removed by a reassignment.
    pub fn partitions_hosted_by(&self, id: i32) -> usize {
        self.topics()
            .flat_map(|t| t.partitions.iter())
            .filter(|p| {
                p.replicas.contains(&id)
                    || p.adding_replicas.contains(&id)
                    || p.removing_replicas.contains(&id)
            })
            .count()
    }

    /// The registration of an existing partition, or why there is none.
    fn registration(
        &self,
        topic: &Uuid,
        partition: i32,
    ) -> Result<&crate::PartitionRegistration, RecordConflict> {
        self.topic_by_id(topic)
            .ok_or(RecordConflict::UnknownTopic(*topic))?
            .partition(partition)
            .ok_or(RecordConflict::UnknownPartition {
                topic: *topic,
                partition,
            })
    }
}

/// Whether a partition's replicas hold together after a change: at least one, none twice,
/// and the replicas a reassignment adds or removes among them, none both.
fn check_assignment(replicas: &[i32], adding: &[i32], removing: &[i32]) -> Result<(), String> {
    if replicas.is_empty() {
        return Err("a partition needs at least one replica".into());
    }
    let mut sorted = replicas.to_vec();
    sorted.sort_unstable();
    let twice = sorted.windows(2).find_map(|pair| match pair {
        [a, b] if a == b => Some(*a),
        _ => None,
    });
    if let Some(twice) = twice {
        return Err(format!("broker {twice} is listed twice among the replicas"));
    }
    if let Some(stray) = adding
        .iter()
        .chain(removing)
        .find(|r| !replicas.contains(r))
    {
        return Err(format!(
            "broker {stray} is added or removed by the reassignment but is no replica"
        ));
    }
    if let Some(both) = adding.iter().find(|r| removing.contains(r)) {
        return Err(format!(
            "broker {both} is both added and removed by the reassignment"
        ));
    }
    Ok(())
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
            adding_replicas: None,
            removing_replicas: None,
            expected_partition_epoch: expected,
        }
    }

    fn registered(id: i32, fenced: bool) -> MetadataRecord {
        MetadataRecord::BrokerRegistered {
            id,
            incarnation_id: Uuid::from_u128(100 + u128::try_from(id).unwrap()),
            endpoints: Vec::new(),
            rack: None,
            fenced,
        }
    }

    fn fence(id: i32, fenced: bool) -> MetadataRecord {
        MetadataRecord::BrokerRegistrationChanged {
            id,
            fenced: Some(fenced),
            in_controlled_shutdown: None,
        }
    }

    /// Partition 0 of topic 1 on brokers 1 and 2, led by 1, both in the ISR.
    fn two_brokers() -> MetadataImage {
        let mut image = MetadataImage::new(1);
        image.apply(&registered(1, false));
        image.apply(&registered(2, false));
        image.apply(&created("t", 1));
        image
    }

    #[test]
    fn only_eligible_replicas_lead_or_join_the_isr() {
        let mut image = two_brokers();
        image.apply(&fence(2, true));
        let ineligible = |broker| {
            Err(RecordConflict::IneligibleReplica {
                topic: Uuid::from_u128(1),
                partition: 0,
                broker,
            })
        };
        // A fenced broker may stay in the ISR, but not take the lead…
        assert_eq!(image.check(&changed(1, Some(0))), ineligible(2));
        let shrink = |isr: Vec<i32>, leader| MetadataRecord::PartitionChanged {
            topic_id: Uuid::from_u128(1),
            partition: 0,
            leader,
            leader_epoch: 0,
            isr,
            replicas: None,
            adding_replicas: None,
            removing_replicas: None,
            expected_partition_epoch: None,
        };
        assert!(image.check(&shrink(vec![1, 2], 1)).is_ok());
        image.apply(&shrink(vec![1], 1));
        // …nor join it again until it is unfenced.
        assert_eq!(image.check(&shrink(vec![1, 2], 1)), ineligible(2));
        image.apply(&fence(2, false));
        assert!(image.check(&shrink(vec![1, 2], 1)).is_ok());
        // Leader and ISR members are replicas of the partition; unknown brokers are refused.
        assert_eq!(image.check(&shrink(vec![1, 3], 1)), ineligible(3));
        assert_eq!(image.check(&shrink(vec![1], 3)), ineligible(3));
        assert_eq!(
            image.check(&fence(9, true)),
            Err(RecordConflict::UnknownBroker(9))
        );
        // No leader (-1) is allowed: the partition is offline.
        assert!(image.check(&shrink(vec![1], -1)).is_ok());
    }

    /// A broker leaves only once it is a replica of nothing (also not one being added or
    /// removed); an unknown one cannot leave, and one that left is gone from the image.
    #[test]
    fn a_broker_is_unregistered_only_when_it_holds_no_replica() {
        let mut image = two_brokers();
        image.apply(&registered(3, false));
        let unregister = |id| MetadataRecord::BrokerUnregistered { id };
        assert_eq!(
            image.check(&unregister(2)),
            Err(RecordConflict::BrokerHostsReplicas {
                broker: 2,
                partitions: 1
            })
        );
        assert_eq!(
            image.check(&unregister(9)),
            Err(RecordConflict::UnknownBroker(9))
        );
        // Broker 3 is being added to the partition: it holds a replica already.
        image.apply(&MetadataRecord::PartitionChanged {
            topic_id: Uuid::from_u128(1),
            partition: 0,
            leader: 1,
            leader_epoch: 0,
            isr: vec![1, 2],
            replicas: Some(vec![1, 2, 3]),
            adding_replicas: Some(vec![3]),
            removing_replicas: Some(Vec::new()),
            expected_partition_epoch: None,
        });
        assert_eq!(image.partitions_hosted_by(3), 1);
        assert!(image.check(&unregister(3)).is_err());
        image.apply(&MetadataRecord::PartitionChanged {
            topic_id: Uuid::from_u128(1),
            partition: 0,
            leader: 1,
            leader_epoch: 0,
            isr: vec![1, 2],
            replicas: Some(vec![1, 2]),
            adding_replicas: Some(Vec::new()),
            removing_replicas: Some(Vec::new()),
            expected_partition_epoch: None,
        });
        assert_eq!(image.check(&unregister(3)), Ok(()));
        image.apply(&unregister(3));
        assert!(image.broker(3).is_none());
        assert_eq!(
            image.brokers().map(|b| b.id).collect::<Vec<_>>(),
            vec![1, 2]
        );
    }

    #[test]
    fn decisions_taken_against_an_older_image_are_refused() {
        let mut image = two_brokers();
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

    #[test]
    fn replicas_being_added_or_removed_must_be_replicas() {
        let image = two_brokers();
        let change = |replicas: Vec<i32>, adding: Vec<i32>, removing: Vec<i32>| {
            MetadataRecord::PartitionChanged {
                topic_id: Uuid::from_u128(1),
                partition: 0,
                leader: 1,
                leader_epoch: 0,
                isr: vec![1],
                replicas: Some(replicas),
                adding_replicas: Some(adding),
                removing_replicas: Some(removing),
                expected_partition_epoch: None,
            }
        };
        let invalid = |reason: &str| {
            Err(RecordConflict::InvalidAssignment {
                topic: Uuid::from_u128(1),
                partition: 0,
                reason: reason.into(),
            })
        };
        // Moving the replica on 2 to 3: the union, 3 added, 2 removed.
        assert!(
            image
                .check(&change(vec![1, 3, 2], vec![3], vec![2]))
                .is_ok()
        );
        assert_eq!(
            image.check(&change(vec![1, 2], vec![3], vec![])),
            invalid("broker 3 is added or removed by the reassignment but is no replica")
        );
        assert_eq!(
            image.check(&change(vec![1, 2], vec![2], vec![2])),
            invalid("broker 2 is both added and removed by the reassignment")
        );
        assert_eq!(
            image.check(&change(vec![1, 2, 1], vec![], vec![])),
            invalid("broker 1 is listed twice among the replicas")
        );
        assert_eq!(
            image.check(&change(vec![], vec![], vec![])),
            invalid("a partition needs at least one replica")
        );
    }

    /// The cluster id is set once: the same id again is harmless (a retried proposal),
    /// another is refused.
    #[test]
    fn the_cluster_id_never_changes() {
        let set = |id: &str| MetadataRecord::ClusterIdSet {
            cluster_id: id.into(),
        };
        let mut image = MetadataImage::new(1);
        assert!(image.check(&set("a")).is_ok());
        image.apply(&set("a"));
        assert!(image.check(&set("a")).is_ok());
        assert_eq!(
            image.check(&set("b")),
            Err(RecordConflict::ClusterIdSet("a".into()))
        );
    }
}

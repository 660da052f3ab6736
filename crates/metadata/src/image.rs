//! The in-memory picture of cluster metadata, built by applying records: brokers and
//! their endpoints, topics with one registration per partition (replicas, ISR, leader,
//! epochs), configs and producer-id blocks — shaped like Kafka's `MetadataImage`, so
//! that a replicated metadata log only has to deliver the same records.

use std::collections::{BTreeMap, HashMap};

use sluice_protocol::model::LeaderEpoch;
use uuid::Uuid;

use super::MetadataRecord;
use super::records::{EndpointRecord, PartitionAssignment};
use crate::security::SecurityImage;

/// One partition as the cluster knows it (Kafka's `PartitionRegistration`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionRegistration {
    /// The nodes holding a replica, the preferred leader first.
    pub replicas: Vec<i32>,
    /// The replicas in sync with the leader.
    pub isr: Vec<i32>,
    /// The node leading it (-1: none).
    pub leader: i32,
    /// Raised at each leader change.
    pub leader_epoch: LeaderEpoch,
    /// Raised at each change of the registration (fences stale ISR updates).
    pub partition_epoch: i32,
    /// The replicas an ongoing reassignment adds (KIP-455): in `replicas` already,
    /// catching up; empty when none is going on.
    pub adding_replicas: Vec<i32>,
    /// The replicas an ongoing reassignment removes once the others are in sync: still in
    /// `replicas` until then.
    pub removing_replicas: Vec<i32>,
}

impl PartitionRegistration {
    /// A new partition on `replicas`, led by the first of them, all in sync, epochs 0.
    pub fn new(replicas: Vec<i32>) -> Self {
        Self {
            leader: replicas.first().copied().unwrap_or(-1),
            isr: replicas.clone(),
            replicas,
            leader_epoch: LeaderEpoch(0),
            partition_epoch: 0,
            adding_replicas: Vec::new(),
            removing_replicas: Vec::new(),
        }
    }

    /// Whether a reassignment is going on (Kafka's `isReassignmentInProgress`).
    pub fn is_reassigning(&self) -> bool {
        !self.adding_replicas.is_empty() || !self.removing_replicas.is_empty()
    }

    /// Where the replicas are headed: every replica but those being removed, in order.
    pub fn target_replicas(&self) -> Vec<i32> {
        self.replicas
            .iter()
            .copied()
            .filter(|r| !self.removing_replicas.contains(r))
            .collect()
    }

    /// Where the replicas were before the ongoing reassignment: every replica but those
    /// being added, in order (what a cancellation goes back to).
    pub fn original_replicas(&self) -> Vec<i32> {
        self.replicas
            .iter()
            .copied()
            .filter(|r| !self.adding_replicas.contains(r))
            .collect()
    }
}

/// One topic as metadata knows it.
#[derive(Debug, Clone, PartialEq)]
pub struct TopicImage {
    /// Topic name.
    pub name: String,
    /// Topic id.
    pub id: Uuid,
    /// Its partitions, by index 0..n.
    pub partitions: Vec<PartitionRegistration>,
    /// Config overrides (only what was set on the topic).
    pub configs: BTreeMap<String, String>,
    /// Whether the topic is internal (`__consumer_offsets`).
    pub internal: bool,
}

impl TopicImage {
    /// How many partitions the topic has.
    pub fn partition_count(&self) -> i32 {
        i32::try_from(self.partitions.len()).unwrap_or(i32::MAX)
    }

    /// The registration of partition `index`.
    pub fn partition(&self, index: i32) -> Option<&PartitionRegistration> {
        self.partitions.get(usize::try_from(index).ok()?)
    }

    /// The indexes of the partitions with a replica on `node`.
    pub fn partitions_on(&self, node: i32) -> Vec<i32> {
        (0..)
            .zip(&self.partitions)
            .filter(|(_, p)| p.replicas.contains(&node))
            .map(|(i, _)| i)
            .collect()
    }
}

/// A broker as the cluster knows it (Kafka's `BrokerRegistration`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerRegistration {
    /// Its node id.
    pub id: i32,
    /// Set once per data directory, so a node id reused by another disk is noticed.
    pub incarnation_id: Uuid,
    /// Where clients reach it, per listener.
    pub endpoints: Vec<EndpointRecord>,
    /// Its rack, if configured.
    pub rack: Option<String>,
    /// Kafka's broker epoch: where in the metadata log it registered (the image offset
    /// after its registration record). A restarted broker registers again, with a new one.
    pub epoch: u64,
    /// Fenced by the controller: it leads no partition and is in no ISR.
    pub fenced: bool,
    /// Giving its leaderships away before it stops.
    pub in_controlled_shutdown: bool,
}

impl BrokerRegistration {
    /// Whether it may lead partitions and join ISRs: registered, unfenced, not stopping
    /// (Kafka's `isActive` / `isReplicaIsrEligible`).
    pub fn is_eligible(&self) -> bool {
        !self.fenced && !self.in_controlled_shutdown
    }
}

/// All metadata at one point of the metadata log.
#[derive(Debug, Clone, PartialEq)]
pub struct MetadataImage {
    topics: BTreeMap<String, TopicImage>,
    names_by_id: HashMap<Uuid, String>,
    brokers: BTreeMap<i32, BrokerRegistration>,
    /// Dynamic broker configs (AlterConfigs on the broker resource).
    pub broker_configs: BTreeMap<String, String>,
    /// First producer id not yet reserved by any block.
    pub next_producer_id: i64,
    /// How many records built this image: where in the metadata log it stands.
    pub offset: u64,
    /// SCRAM users (and, with them, the rest of the security metadata).
    pub security: SecurityImage,
    /// The cluster's id, once committed (cluster mode; a single node keeps its own in
    /// `meta.properties`).
    cluster_id: Option<String>,
    /// The node that owns every partition of records written before partitions were
    /// registered (a single-node broker wrote them; it is this node).
    single_node: i32,
}

impl MetadataImage {
    /// An empty image. `single_node` is the node that replicas of records without a
    /// replica assignment (written by single-node versions) are placed on.
    pub fn new(single_node: i32) -> Self {
        Self {
            topics: BTreeMap::new(),
            names_by_id: HashMap::new(),
            brokers: BTreeMap::new(),
            broker_configs: BTreeMap::new(),
            next_producer_id: 0,
            offset: 0,
            security: SecurityImage::default(),
            cluster_id: None,
            single_node,
        }
    }

    /// Applies one record. Records for unknown topics are ignored: they can
    /// only come from a log that was written by a buggy version, and skipping
    /// them keeps the rest of the metadata usable.
    pub fn apply(&mut self, record: &MetadataRecord) {
        self.offset += 1;
        match record {
            MetadataRecord::TopicCreated {
                name,
                id,
                partitions,
                configs,
                internal,
                replicas,
            } => {
                let registrations = self.registrations(0..*partitions, replicas);
                self.names_by_id.insert(*id, name.clone());
                self.topics.insert(
                    name.clone(),
                    TopicImage {
                        name: name.clone(),
                        id: *id,
                        partitions: registrations,
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
            MetadataRecord::PartitionsCreated {
                id,
                partitions,
                replicas,
            } => {
                let Some(existing) = self.topic_by_id(id).map(TopicImage::partition_count) else {
                    return;
                };
                let added = self.registrations(existing..*partitions, replicas);
                if let Some(t) = self.topic_by_id_mut(id) {
                    t.partitions.extend(added);
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
                ..
            } => {
                let Some(registration) = self
                    .topic_by_id_mut(topic_id)
                    .and_then(|t| t.partitions.get_mut(usize::try_from(*partition).ok()?))
                else {
                    return;
                };
                if let Some(replicas) = replicas {
                    registration.replicas = replicas.clone();
                }
                if let Some(adding) = adding_replicas {
                    registration.adding_replicas = adding.clone();
                }
                if let Some(removing) = removing_replicas {
                    registration.removing_replicas = removing.clone();
                }
                registration.isr = isr.clone();
                registration.leader = *leader;
                registration.leader_epoch = LeaderEpoch(*leader_epoch);
                registration.partition_epoch += 1;
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
            MetadataRecord::BrokerRegistered {
                id,
                incarnation_id,
                endpoints,
                rack,
                fenced,
            } => {
                self.brokers.insert(
                    *id,
                    BrokerRegistration {
                        id: *id,
                        incarnation_id: *incarnation_id,
                        endpoints: endpoints.clone(),
                        rack: rack.clone(),
                        epoch: self.offset,
                        fenced: *fenced,
                        in_controlled_shutdown: false,
                    },
                );
            }
            MetadataRecord::BrokerUnregistered { id } => {
                self.brokers.remove(id);
            }
            MetadataRecord::ClusterIdSet { cluster_id } => {
                self.cluster_id = Some(cluster_id.clone());
            }
            MetadataRecord::PartitionState {
                topic_id,
                partition,
                replicas,
                isr,
                leader,
                leader_epoch,
                partition_epoch,
                adding_replicas,
                removing_replicas,
            } => {
                let Some(registration) = self
                    .topic_by_id_mut(topic_id)
                    .and_then(|t| t.partitions.get_mut(usize::try_from(*partition).ok()?))
                else {
                    return;
                };
                *registration = PartitionRegistration {
                    replicas: replicas.clone(),
                    isr: isr.clone(),
                    leader: *leader,
                    leader_epoch: LeaderEpoch(*leader_epoch),
                    partition_epoch: *partition_epoch,
                    adding_replicas: adding_replicas.clone(),
                    removing_replicas: removing_replicas.clone(),
                };
            }
            MetadataRecord::BrokerState {
                id,
                incarnation_id,
                endpoints,
                rack,
                epoch,
                fenced,
                in_controlled_shutdown,
            } => {
                self.brokers.insert(
                    *id,
                    BrokerRegistration {
                        id: *id,
                        incarnation_id: *incarnation_id,
                        endpoints: endpoints.clone(),
                        rack: rack.clone(),
                        epoch: *epoch,
                        fenced: *fenced,
                        in_controlled_shutdown: *in_controlled_shutdown,
                    },
                );
            }
            MetadataRecord::BrokerRegistrationChanged {
                id,
                fenced,
                in_controlled_shutdown,
            } => {
                if let Some(broker) = self.brokers.get_mut(id) {
                    if let Some(fenced) = fenced {
                        broker.fenced = *fenced;
                    }
                    if let Some(stopping) = in_controlled_shutdown {
                        broker.in_controlled_shutdown = *stopping;
                    }
                }
            }
            MetadataRecord::ScramCredentialUpserted {
                user,
                mechanism,
                credential,
            } => self
                .security
                .upsert_scram(user, mechanism, credential.clone()),
            MetadataRecord::ScramCredentialDeleted { user, mechanism } => {
                self.security.delete_scram(user, mechanism)
            }
            MetadataRecord::AclCreated { id, acl } => self.security.create_acl(*id, acl.clone()),
            MetadataRecord::AclDeleted { id } => self.security.delete_acl(id),
            MetadataRecord::ClientQuotaChanged { entity, key, value } => {
                self.security.set_quota(entity, key, *value)
            }
        }
    }

    /// Records that rebuild this image from an empty one (its `offset` aside): what a
    /// snapshot of the metadata log holds (Kafka's metadata snapshots are such records).
    /// A new kind of state in the image needs its record here, or snapshots lose it.
    pub fn to_records(&self) -> Vec<MetadataRecord> {
        let mut records = Vec::new();
        if let Some(cluster_id) = &self.cluster_id {
            records.push(MetadataRecord::ClusterIdSet {
                cluster_id: cluster_id.clone(),
            });
        }
        records.extend(self.brokers.values().map(|b| MetadataRecord::BrokerState {
            id: b.id,
            incarnation_id: b.incarnation_id,
            endpoints: b.endpoints.clone(),
            rack: b.rack.clone(),
            epoch: b.epoch,
            fenced: b.fenced,
            in_controlled_shutdown: b.in_controlled_shutdown,
        }));
        if !self.broker_configs.is_empty() {
            records.push(MetadataRecord::BrokerConfigsChanged {
                configs: self.broker_configs.clone(),
            });
        }
        if self.next_producer_id != 0 {
            records.push(MetadataRecord::ProducerIdsAllocated {
                next: self.next_producer_id,
            });
        }
        for topic in self.topics.values() {
            records.extend(topic_records(topic));
        }
        records.extend(self.security.to_records());
        records
    }

    /// The cluster's id, once one was committed.
    pub fn cluster_id(&self) -> Option<&str> {
        self.cluster_id.as_deref()
    }

    /// Registrations for the partitions `indexes` of a record's `assignment` (replicas
    /// per partition); a record without one places every replica on the single node.
    fn registrations(
        &self,
        indexes: std::ops::Range<i32>,
        assignment: &[PartitionAssignment],
    ) -> Vec<PartitionRegistration> {
        indexes
            .enumerate()
            .map(|(i, _)| {
                let replicas = assignment
                    .get(i)
                    .map_or_else(|| vec![self.single_node], |a| a.0.clone());
                PartitionRegistration::new(replicas)
            })
            .collect()
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
        self.topics
            .values()
            .map(|t| t.partitions.len() as i64)
            .sum()
    }

    /// Whether node `id` leads any partition.
    pub fn leads_any(&self, id: i32) -> bool {
        self.topics
            .values()
            .any(|t| t.partitions.iter().any(|p| p.leader == id))
    }

    /// The broker with this node id.
    pub fn broker(&self, id: i32) -> Option<&BrokerRegistration> {
        self.brokers.get(&id)
    }

    /// All registered brokers, by node id.
    pub fn brokers(&self) -> impl Iterator<Item = &BrokerRegistration> {
        self.brokers.values()
    }
}

/// The records that recreate `topic`: its creation with every partition's replicas, then
/// the full registration of each partition that moved on since creation.
fn topic_records(topic: &TopicImage) -> Vec<MetadataRecord> {
    let created = MetadataRecord::TopicCreated {
        name: topic.name.clone(),
        id: topic.id,
        partitions: topic.partition_count(),
        configs: topic.configs.clone(),
        internal: topic.internal,
        replicas: topic
            .partitions
            .iter()
            .map(|p| PartitionAssignment(p.replicas.clone()))
            .collect(),
    };
    let changed = (0..)
        .zip(&topic.partitions)
        .filter(|(_, p)| **p != PartitionRegistration::new(p.replicas.clone()))
        .map(|(index, p)| MetadataRecord::PartitionState {
            topic_id: topic.id,
            partition: index,
            replicas: p.replicas.clone(),
            isr: p.isr.clone(),
            leader: p.leader,
            leader_epoch: p.leader_epoch.0,
            partition_epoch: p.partition_epoch,
            adding_replicas: p.adding_replicas.clone(),
            removing_replicas: p.removing_replicas.clone(),
        });
    std::iter::once(created).chain(changed).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn created(name: &str, partitions: i32, replicas: Vec<PartitionAssignment>) -> MetadataRecord {
        MetadataRecord::TopicCreated {
            name: name.into(),
            id: Uuid::from_u128(7),
            partitions,
            configs: BTreeMap::new(),
            internal: false,
            replicas,
        }
    }

    #[test]
    fn records_without_an_assignment_live_on_the_single_node() {
        let mut image = MetadataImage::new(4);
        image.apply(&created("t", 2, Vec::new()));
        let t = image.topic("t").unwrap();
        assert_eq!(t.partition_count(), 2);
        assert_eq!(
            t.partition(1).unwrap(),
            &PartitionRegistration::new(vec![4])
        );
        assert_eq!(t.partitions_on(4), vec![0, 1]);
        assert!(t.partitions_on(1).is_empty());
        image.apply(&MetadataRecord::PartitionsCreated {
            id: t.id,
            partitions: 3,
            replicas: vec![PartitionAssignment(vec![2, 4])],
        });
        let t = image.topic("t").unwrap();
        assert_eq!(t.partition(2).unwrap().leader, 2);
        assert_eq!(image.offset, 2);
    }

    #[test]
    fn a_partition_change_moves_the_leader_and_bumps_the_partition_epoch() {
        let mut image = MetadataImage::new(1);
        image.apply(&created("t", 1, vec![PartitionAssignment(vec![1, 2, 3])]));
        image.apply(&MetadataRecord::PartitionChanged {
            topic_id: Uuid::from_u128(7),
            partition: 0,
            leader: 2,
            leader_epoch: 1,
            isr: vec![2, 3],
            replicas: None,
            adding_replicas: None,
            removing_replicas: None,
            expected_partition_epoch: Some(0),
        });
        let p = image.topic("t").unwrap().partition(0).unwrap().clone();
        assert_eq!(
            (p.leader, p.leader_epoch, p.partition_epoch),
            (2, LeaderEpoch(1), 1)
        );
        assert_eq!((p.isr, p.replicas), (vec![2, 3], vec![1, 2, 3]));
    }

    /// Every kind of state an image holds, rebuilt from `to_records` into an equal image:
    /// a snapshot loses nothing (epochs included, which `PartitionChanged` alone could not
    /// set back).
    #[test]
    fn to_records_rebuilds_the_same_image() {
        let mut image = MetadataImage::new(1);
        let topic = Uuid::from_u128(7);
        for record in [
            MetadataRecord::ClusterIdSet {
                cluster_id: "abc".into(),
            },
            MetadataRecord::BrokerRegistered {
                id: 1,
                incarnation_id: Uuid::from_u128(8),
                endpoints: Vec::new(),
                rack: None,
                fenced: false,
            },
            MetadataRecord::BrokerRegistered {
                id: 2,
                incarnation_id: Uuid::from_u128(9),
                endpoints: vec![EndpointRecord {
                    listener: "PLAINTEXT".into(),
                    host: "h".into(),
                    port: 9092,
                    security_protocol: "PLAINTEXT".into(),
                }],
                rack: Some("r1".into()),
                fenced: true,
            },
            MetadataRecord::BrokerRegistrationChanged {
                id: 2,
                fenced: Some(false),
                in_controlled_shutdown: None,
            },
            created("t", 2, vec![PartitionAssignment(vec![1, 2]); 2]),
            MetadataRecord::PartitionsCreated {
                id: topic,
                partitions: 3,
                replicas: vec![PartitionAssignment(vec![2, 1])],
            },
            MetadataRecord::PartitionChanged {
                topic_id: topic,
                partition: 1,
                leader: 2,
                leader_epoch: 3,
                isr: vec![2],
                replicas: None,
                adding_replicas: None,
                removing_replicas: None,
                expected_partition_epoch: None,
            },
            // Partition 0 is being moved off broker 1 (a reassignment to [2]).
            MetadataRecord::PartitionChanged {
                topic_id: topic,
                partition: 0,
                leader: 1,
                leader_epoch: 0,
                isr: vec![1, 2],
                replicas: Some(vec![2, 1]),
                adding_replicas: Some(Vec::new()),
                removing_replicas: Some(vec![1]),
                expected_partition_epoch: Some(0),
            },
            MetadataRecord::PartitionChanged {
                topic_id: topic,
                partition: 1,
                leader: 2,
                leader_epoch: 3,
                isr: vec![2, 1],
                replicas: None,
                adding_replicas: None,
                removing_replicas: None,
                expected_partition_epoch: Some(1),
            },
            MetadataRecord::TopicConfigsChanged {
                id: topic,
                configs: BTreeMap::from([("retention.ms".into(), "5".into())]),
            },
            MetadataRecord::BrokerConfigsChanged {
                configs: BTreeMap::from([("log.retention.ms".into(), "6".into())]),
            },
            MetadataRecord::ProducerIdsAllocated { next: 1000 },
            MetadataRecord::TopicCreated {
                name: "gone".into(),
                id: Uuid::from_u128(8),
                partitions: 1,
                configs: BTreeMap::new(),
                internal: true,
                replicas: Vec::new(),
            },
            MetadataRecord::TopicDeleted {
                id: Uuid::from_u128(8),
            },
            MetadataRecord::BrokerRegistrationChanged {
                id: 2,
                fenced: None,
                in_controlled_shutdown: Some(true),
            },
            MetadataRecord::ScramCredentialUpserted {
                user: "alice".into(),
                mechanism: "SCRAM-SHA-256".into(),
                credential: credential(1),
            },
            MetadataRecord::ScramCredentialUpserted {
                user: "alice".into(),
                mechanism: "SCRAM-SHA-512".into(),
                credential: credential(2),
            },
            MetadataRecord::ScramCredentialUpserted {
                user: "bob".into(),
                mechanism: "SCRAM-SHA-256".into(),
                credential: credential(3),
            },
            MetadataRecord::ScramCredentialDeleted {
                user: "bob".into(),
                mechanism: "SCRAM-SHA-256".into(),
            },
            MetadataRecord::AclCreated {
                id: Uuid::from_u128(20),
                acl: acl("orders"),
            },
            MetadataRecord::AclCreated {
                id: Uuid::from_u128(21),
                acl: acl("payments"),
            },
            MetadataRecord::AclDeleted {
                id: Uuid::from_u128(20),
            },
            MetadataRecord::ClientQuotaChanged {
                entity: vec![("user".into(), Some("alice".into()))],
                key: "producer_byte_rate".into(),
                value: Some(1024.0),
            },
            MetadataRecord::ClientQuotaChanged {
                entity: vec![("user".into(), None)],
                key: "consumer_byte_rate".into(),
                value: Some(2048.0),
            },
            MetadataRecord::ClientQuotaChanged {
                entity: vec![("user".into(), None)],
                key: "consumer_byte_rate".into(),
                value: None,
            },
        ] {
            image.check(&record).unwrap();
            image.apply(&record);
        }
        let records = image.to_records();
        let mut rebuilt = MetadataImage::new(1);
        for record in &records {
            rebuilt.check(record).unwrap();
            rebuilt.apply(record);
        }
        rebuilt.offset = image.offset;
        assert_eq!(rebuilt, image);
        let p = rebuilt.topic("t").unwrap().partition(1).unwrap();
        assert_eq!((p.leader_epoch, p.partition_epoch), (LeaderEpoch(3), 2));
        let moving = rebuilt.topic("t").unwrap().partition(0).unwrap();
        assert_eq!(
            (
                moving.replicas.as_slice(),
                moving.removing_replicas.as_slice(),
                moving.target_replicas(),
                moving.original_replicas()
            ),
            ([2, 1].as_slice(), [1].as_slice(), vec![2], vec![2, 1])
        );
        assert_eq!(rebuilt.cluster_id(), Some("abc"));
        let broker = rebuilt.broker(2).unwrap();
        assert_eq!(
            (broker.epoch, broker.fenced, broker.in_controlled_shutdown),
            (3, false, true)
        );
        assert_eq!(
            rebuilt
                .security
                .scram_users()
                .map(|(u, _)| u.as_str())
                .collect::<Vec<_>>(),
            ["alice"]
        );
        assert_eq!(rebuilt.security.acls().count(), 1);
        assert_eq!(rebuilt.security.quotas().len(), 1);
        // An empty image needs no records.
        assert!(MetadataImage::new(1).to_records().is_empty());
    }

    /// Logs and snapshots written before reassignments existed have no adding or removing
    /// replicas: they read as none.
    #[test]
    fn records_written_before_reassignments_read_as_none_going_on() {
        let state: MetadataRecord = serde_json::from_str(
            r#"{"type":"partition_state","topic_id":"00000000-0000-0000-0000-000000000007",
                "partition":0,"replicas":[1,2],"isr":[1],"leader":1,"leader_epoch":2,
                "partition_epoch":3}"#,
        )
        .unwrap();
        let changed: MetadataRecord = serde_json::from_str(
            r#"{"type":"partition_changed","topic_id":"00000000-0000-0000-0000-000000000007",
                "partition":0,"leader":2,"leader_epoch":3,"isr":[1,2],
                "expected_partition_epoch":3}"#,
        )
        .unwrap();
        let mut image = MetadataImage::new(1);
        for record in [
            created("t", 1, vec![PartitionAssignment(vec![1, 2])]),
            state,
            changed,
        ] {
            image.apply(&record);
        }
        let p = image.topic("t").unwrap().partition(0).unwrap();
        assert_eq!((p.leader, p.partition_epoch), (2, 4));
        assert!(!p.is_reassigning());
        // And a record without a reassignment is written as before: no new fields.
        let json = serde_json::to_string(&MetadataRecord::PartitionChanged {
            topic_id: Uuid::from_u128(7),
            partition: 0,
            leader: 2,
            leader_epoch: 3,
            isr: vec![2],
            replicas: None,
            adding_replicas: None,
            removing_replicas: None,
            expected_partition_epoch: None,
        })
        .unwrap();
        assert!(
            !json.contains("adding") && !json.contains("removing"),
            "{json}"
        );
    }

    fn credential(seed: u8) -> crate::security::StoredScramCredential {
        crate::security::StoredScramCredential {
            salt: vec![seed; 16],
            stored_key: vec![seed; 32],
            server_key: vec![seed; 32],
            iterations: 4096,
        }
    }

    fn acl(topic: &str) -> crate::security::StoredAcl {
        crate::security::StoredAcl {
            resource_type: 2,
            resource_name: topic.into(),
            pattern_type: 3,
            principal: "User:alice".into(),
            host: "*".into(),
            operation: 4,
            permission: 3,
        }
    }
}

//! `sluice-client`: a small async Kafka client on Sluice's own codec.
//!
//! It speaks the wire protocol with the request and response types of `kafka-protocol`
//! (re-exported by `sluice-protocol`) and builds and decodes record batches with
//! `sluice_protocol::batch` and `sluice_protocol::records`, so the CLI and the tests use
//! exactly the code the broker does. It covers what an operator needs: topic and config
//! administration, producing and fetching records, and consumer-group inspection and offset
//! management. A consumer built on it either joins a group (JoinGroup/SyncGroup with the
//! range or round-robin strategy, heartbeats, commits as a member: `subscribe()` in Kafka's
//! Java client) or reads partitions it picks and commits as a "simple" consumer
//! (`assign()` + `commitSync()`).
//!
//! Every connection negotiates versions with ApiVersions and uses, per API, the highest
//! version both sides speak (capped where newer versions change request shapes the client
//! does not build, e.g. Fetch and Produce by topic id). Nothing read from the network is
//! unwrapped: sizes are bounded (`ClientConfig::max_response_bytes`, decompression limits)
//! and every error becomes an [`Error`].

mod acls;
mod admin;
mod conn;
mod data;
mod error;
mod groups;
mod membership;
pub mod partitioner;
mod quotas;
mod users;

use std::collections::HashMap;

use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{MetadataRequest, MetadataResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

pub use admin::{
    ClusterInfo, ConfigEntry, ConfigOp, CreatedTopic, NewTopic, OngoingReassignment,
    PartitionLogDir, Reassignment, ReassignmentOutcome,
};
pub use conn::{ApiRange, ClientConfig, ClientSecurity, Connection, SaslCredentials, api_name};
pub use data::{FetchedPartition, ProducedPartition};
pub use error::{Error, KafkaCode, Result};
pub use groups::{CommittedOffset, GroupDescription, GroupListing, GroupMember};
pub use membership::{
    ASSIGNORS, Assignments, HeartbeatOutcome, Membership, MembershipConfig, assign_range,
    assign_round_robin,
};
pub use quotas::{QuotaEntity, QuotaMatch};
pub use sluice_protocol::batch::Compression;
pub use sluice_protocol::model::TopicPartition;
pub use sluice_protocol::records::Record;
pub use sluice_security;
pub use users::ScramUser;

/// How often a topic being auto-created is looked up before giving up (100 ms apart).
const AUTO_CREATE_ATTEMPTS: u32 = 50;

/// A broker as metadata describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerInfo {
    pub node_id: i32,
    pub host: String,
    pub port: i32,
    pub rack: Option<String>,
    /// Fenced by the controller (only DescribeCluster v2 lists fenced brokers).
    pub fenced: bool,
}

impl BrokerInfo {
    /// `host:port`.
    pub fn address(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

/// One partition in metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionMetadata {
    pub partition: i32,
    pub leader: i32,
    pub leader_epoch: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    pub offline_replicas: Vec<i32>,
    pub error: Option<KafkaCode>,
}

/// One topic in metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicMetadata {
    pub name: String,
    /// The topic id (all zeros when the broker has none).
    pub topic_id: String,
    pub is_internal: bool,
    pub error: Option<KafkaCode>,
    /// Sorted by partition index.
    pub partitions: Vec<PartitionMetadata>,
}

/// A Metadata response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterMetadata {
    pub cluster_id: Option<String>,
    pub controller_id: i32,
    pub brokers: Vec<BrokerInfo>,
    pub topics: Vec<TopicMetadata>,
}

/// A client: one bootstrap connection plus one connection per broker it needed.
pub struct Client {
    config: ClientConfig,
    bootstrap: Connection,
    /// Node id → `host:port`, from metadata and FindCoordinator.
    nodes: HashMap<i32, String>,
    conns: HashMap<i32, Connection>,
    /// (topic, partition) → leader node id, from the last metadata that listed the topic.
    leaders: HashMap<TopicPartition, i32>,
}

impl Client {
    /// Connects to the first of the comma-separated `brokers` that answers.
    pub async fn connect(brokers: &str, config: ClientConfig) -> Result<Client> {
        let mut last = None;
        for addr in brokers.split(',').map(str::trim).filter(|a| !a.is_empty()) {
            match Connection::connect(addr, &config).await {
                Ok(bootstrap) => {
                    return Ok(Client {
                        config,
                        bootstrap,
                        nodes: HashMap::new(),
                        conns: HashMap::new(),
                        leaders: HashMap::new(),
                    });
                }
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| Error::Invalid("no broker address given".to_string())))
    }

    /// The bootstrap connection (its negotiated API table is the cluster's, on one node).
    pub fn bootstrap(&self) -> &Connection {
        &self.bootstrap
    }

    /// The connection to broker `node_id`, opened on first use.
    pub(crate) async fn node(&mut self, node_id: i32) -> Result<&mut Connection> {
        if !self.nodes.contains_key(&node_id) {
            self.metadata(Some(&[])).await?;
        }
        let Some(addr) = self.nodes.get(&node_id).cloned() else {
            return Err(Error::Invalid(format!(
                "broker {node_id} is not in the cluster metadata"
            )));
        };
        if addr == self.bootstrap.addr() {
            return Ok(&mut self.bootstrap);
        }
        if !self.conns.contains_key(&node_id) {
            let conn = Connection::connect(&addr, &self.config)
                .await
                .map_err(|e| match e {
                    Error::Connect { addr, source } => Error::Unreachable {
                        node_id,
                        addr,
                        source,
                    },
                    other => other,
                })?;
            self.conns.insert(node_id, conn);
        }
        self.conns
            .get_mut(&node_id)
            .ok_or_else(|| Error::Invalid(format!("no connection to broker {node_id}")))
    }

    pub(crate) fn remember_node(&mut self, node_id: i32, host: &str, port: i32) {
        self.nodes.insert(node_id, format!("{host}:{port}"));
    }

    /// Metadata for `topics` (`None`: every topic; `Some(&[])`: brokers only). Never
    /// auto-creates topics.
    pub async fn metadata(&mut self, topics: Option<&[String]>) -> Result<ClusterMetadata> {
        self.metadata_request(topics, false).await
    }

    /// Metadata of a topic to produce to. Like Kafka's producers it asks the broker to
    /// create the topic when it does not exist (allow_auto_topic_creation), which the
    /// broker does only when auto.create.topics.enable is on; [`Error::UnknownTopic`]
    /// otherwise.
    pub async fn topic_for_produce(&mut self, name: &str) -> Result<TopicMetadata> {
        let names = [name.to_string()];
        for _ in 0..AUTO_CREATE_ATTEMPTS {
            let md = self.metadata_request(Some(&names), true).await?;
            let topic = md.topics.into_iter().find(|t| t.name == name);
            match topic {
                Some(t) if t.error.is_none() && !t.partitions.is_empty() => return Ok(t),
                // Being created: leaders are not elected yet.
                Some(t) if t.error.is_none_or(|e| e == KafkaCode::LEADER_NOT_AVAILABLE) => {}
                _ => break,
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        self.topic(name).await
    }

    async fn metadata_request(
        &mut self,
        topics: Option<&[String]>,
        allow_auto_create: bool,
    ) -> Result<ClusterMetadata> {
        let version = self.bootstrap.version::<MetadataRequest>()?;
        let mut request = MetadataRequest::default().with_topics(topics.map(|names| {
            names
                .iter()
                .map(|n| {
                    MetadataRequestTopic::default()
                        .with_name(Some(TopicName(StrBytes::from_string(n.clone()))))
                })
                .collect()
        }));
        if version >= 4 {
            request.allow_auto_topic_creation = allow_auto_create;
        }
        let response: MetadataResponse = self.bootstrap.request_at(version, &request).await?;
        error::check(
            "Metadata",
            || "cluster".to_string(),
            response.error_code,
            None,
        )?;
        let brokers: Vec<BrokerInfo> = response
            .brokers
            .iter()
            .map(|b| BrokerInfo {
                node_id: b.node_id.0,
                host: b.host.to_string(),
                port: b.port,
                rack: b.rack.as_ref().map(|r| r.to_string()),
                fenced: false,
            })
            .collect();
        for b in &brokers {
            self.nodes.insert(b.node_id, b.address());
        }
        let mut out_topics = Vec::with_capacity(response.topics.len());
        for t in &response.topics {
            let name = t.name.as_ref().map(|n| n.0.to_string()).unwrap_or_default();
            let mut partitions: Vec<PartitionMetadata> = t
                .partitions
                .iter()
                .map(|p| PartitionMetadata {
                    partition: p.partition_index,
                    leader: p.leader_id.0,
                    leader_epoch: p.leader_epoch,
                    replicas: p.replica_nodes.iter().map(|n| n.0).collect(),
                    isr: p.isr_nodes.iter().map(|n| n.0).collect(),
                    offline_replicas: p.offline_replicas.iter().map(|n| n.0).collect(),
                    error: KafkaCode::from_code(p.error_code),
                })
                .collect();
            partitions.sort_by_key(|p| p.partition);
            for p in &partitions {
                if p.leader >= 0 {
                    self.leaders
                        .insert(TopicPartition::new(name.clone(), p.partition), p.leader);
                }
            }
            out_topics.push(TopicMetadata {
                name,
                topic_id: t.topic_id.to_string(),
                is_internal: t.is_internal,
                error: KafkaCode::from_code(t.error_code),
                partitions,
            });
        }
        out_topics.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(ClusterMetadata {
            cluster_id: response.cluster_id.as_ref().map(|c| c.to_string()),
            controller_id: response.controller_id.0,
            brokers,
            topics: out_topics,
        })
    }

    /// Metadata of one existing topic; [`Error::UnknownTopic`] when it does not exist.
    pub async fn topic(&mut self, name: &str) -> Result<TopicMetadata> {
        let md = self.metadata(Some(&[name.to_string()])).await?;
        let topic = md
            .topics
            .into_iter()
            .find(|t| t.name == name)
            .ok_or_else(|| Error::UnknownTopic(name.to_string()))?;
        match topic.error {
            None => Ok(topic),
            Some(KafkaCode::UNKNOWN_TOPIC_OR_PARTITION) => {
                Err(Error::UnknownTopic(name.to_string()))
            }
            Some(code) => Err(Error::Kafka {
                api: "Metadata",
                resource: format!("topic '{name}'"),
                code,
                message: None,
            }),
        }
    }

    /// The leader of a partition, from cached metadata (refreshed when unknown).
    pub(crate) async fn leader(&mut self, topic: &str, partition: i32) -> Result<i32> {
        let key = TopicPartition::new(topic, partition);
        if let Some(&leader) = self.leaders.get(&key) {
            return Ok(leader);
        }
        let md = self.topic(topic).await?;
        match md.partitions.iter().find(|p| p.partition == partition) {
            None => Err(Error::UnknownPartition {
                topic: topic.to_string(),
                partition,
            }),
            Some(p) if p.leader < 0 => Err(Error::Kafka {
                api: "Metadata",
                resource: format!("{topic}-{partition}"),
                code: p.error.unwrap_or(KafkaCode::LEADER_NOT_AVAILABLE),
                message: None,
            }),
            Some(p) => Ok(p.leader),
        }
    }

    /// Forgets cached leaders of `topic` (after NOT_LEADER_OR_FOLLOWER and friends).
    pub(crate) fn forget_leaders(&mut self, topic: &str) {
        self.leaders.retain(|tp, _| tp.topic != topic);
    }

    /// Groups partitions by their leader.
    pub(crate) async fn by_leader<T: Clone>(
        &mut self,
        topic: &str,
        items: &[(i32, T)],
    ) -> Result<Vec<(i32, Vec<(i32, T)>)>> {
        let mut groups: Vec<(i32, Vec<(i32, T)>)> = Vec::new();
        for (partition, item) in items {
            let leader = self.leader(topic, *partition).await?;
            match groups.iter_mut().find(|(l, _)| *l == leader) {
                Some((_, v)) => v.push((*partition, item.clone())),
                None => groups.push((leader, vec![(*partition, item.clone())])),
            }
        }
        Ok(groups)
    }
}

//! Topic and configuration administration, cluster description.

use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::describe_log_dirs_request::DescribableLogDirTopic;
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, BrokerId, CreatePartitionsRequest, CreateTopicsRequest,
    DeleteTopicsRequest, DescribeClusterRequest, DescribeConfigsRequest, DescribeLogDirsRequest,
    ElectLeadersRequest, IncrementalAlterConfigsRequest, ListPartitionReassignmentsRequest,
    TopicName, UnregisterBrokerRequest,
};
use kafka_protocol::protocol::StrBytes;
use sluice_protocol::model::DIRTY_RATIO_TAG;

use crate::error::{KafkaCode, Result, check, check_topic, entry_about};
use crate::{ApiRange, BrokerInfo, Client};

/// Resource type of a topic in DescribeConfigs / IncrementalAlterConfigs.
const RESOURCE_TOPIC: i8 = 2;
/// How long the broker may take for admin operations.
const ADMIN_TIMEOUT_MS: i32 = 30_000;

fn topic_name(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_string()))
}

/// A topic to create.
#[derive(Debug, Clone, Default)]
pub struct NewTopic {
    pub name: String,
    /// `None`: the broker's `num.partitions`.
    pub partitions: Option<i32>,
    /// `None`: the broker's `default.replication.factor`.
    pub replication_factor: Option<i16>,
    pub configs: Vec<(String, String)>,
}

/// What CreateTopics reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatedTopic {
    pub name: String,
    pub topic_id: String,
    /// -1 when the broker's version of CreateTopics does not say.
    pub partitions: i32,
    pub replication_factor: i16,
}

/// The log of one partition on the broker that leads it, as DescribeLogDirs reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct PartitionLogDir {
    pub partition: i32,
    /// Bytes of its log.
    pub size: i64,
    /// The dirty ratio of a compacted partition's log (Sluice brokers only).
    pub dirty_ratio: Option<f64>,
}

/// One configuration entry as DescribeConfigs reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigEntry {
    pub name: String,
    pub value: Option<String>,
    /// Kafka's name of the source (`DYNAMIC_TOPIC_CONFIG`, `DEFAULT_CONFIG`, …).
    pub source: &'static str,
    pub is_default: bool,
    pub read_only: bool,
    pub sensitive: bool,
}

/// One change for IncrementalAlterConfigs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigOp {
    Set(String, String),
    Delete(String),
}

/// What DescribeCluster (or Metadata, on brokers without it) reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterInfo {
    pub cluster_id: Option<String>,
    pub controller_id: i32,
    pub brokers: Vec<BrokerInfo>,
    /// The bootstrap broker's API table.
    pub apis: Vec<ApiRange>,
    /// Finalized features (name, min, max level).
    pub features: Vec<(String, i16, i16)>,
}

/// One partition's reassignment to ask for: its topic, index and target replicas
/// (`None` cancels the one going on).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reassignment {
    pub topic: String,
    pub partition: i32,
    pub replicas: Option<Vec<i32>>,
}

/// A reassignment going on, as ListPartitionReassignments reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OngoingReassignment {
    pub topic: String,
    pub partition: i32,
    /// Every replica now: the target's, then those being removed.
    pub replicas: Vec<i32>,
    pub adding: Vec<i32>,
    pub removing: Vec<i32>,
}

/// What AlterPartitionReassignments said of one partition: (topic, partition, error code,
/// message).
pub type ReassignmentOutcome = (String, i32, Option<KafkaCode>, Option<String>);

fn config_source_name(source: i8) -> &'static str {
    match source {
        1 => "DYNAMIC_TOPIC_CONFIG",
        2 => "DYNAMIC_BROKER_CONFIG",
        3 => "DYNAMIC_DEFAULT_BROKER_CONFIG",
        4 => "STATIC_BROKER_CONFIG",
        5 => "DEFAULT_CONFIG",
        6 => "DYNAMIC_BROKER_LOGGER_CONFIG",
        7 => "CLIENT_METRICS_CONFIG",
        8 => "GROUP_CONFIG",
        _ => "UNKNOWN",
    }
}

impl Client {
    /// The controller, where admin requests go (the bootstrap broker when unknown).
    async fn controller(&mut self) -> Result<i32> {
        let md = self.metadata(Some(&[])).await?;
        Ok(md.controller_id)
    }

    pub(crate) async fn admin_conn(&mut self) -> Result<&mut crate::Connection> {
        let controller = self.controller().await?;
        if controller < 0 {
            return Ok(&mut self.bootstrap);
        }
        self.node(controller).await
    }

    /// CreateTopics for one topic.
    pub async fn create_topic(&mut self, topic: &NewTopic) -> Result<CreatedTopic> {
        let conn = self.admin_conn().await?;
        let version = conn.version::<CreateTopicsRequest>()?;
        let request = CreateTopicsRequest::default()
            .with_timeout_ms(ADMIN_TIMEOUT_MS)
            .with_topics(vec![
                CreatableTopic::default()
                    .with_name(topic_name(&topic.name))
                    .with_num_partitions(topic.partitions.unwrap_or(-1))
                    .with_replication_factor(topic.replication_factor.unwrap_or(-1))
                    .with_configs(
                        topic
                            .configs
                            .iter()
                            .map(|(k, v)| {
                                CreatableTopicConfig::default()
                                    .with_name(StrBytes::from_string(k.clone()))
                                    .with_value(Some(StrBytes::from_string(v.clone())))
                            })
                            .collect(),
                    ),
            ]);
        let response = conn.request_at(version, &request).await?;
        let result = entry_about(
            "CreateTopics",
            conn.addr(),
            &format!("'{}'", topic.name),
            &response.topics,
            |t| t.name.0.as_str() == topic.name,
        )?;
        check(
            "CreateTopics",
            || format!("topic '{}'", topic.name),
            result.error_code,
            result.error_message.as_deref(),
        )?;
        Ok(CreatedTopic {
            name: topic.name.clone(),
            topic_id: result.topic_id.to_string(),
            partitions: result.num_partitions,
            replication_factor: result.replication_factor,
        })
    }

    /// DeleteTopics for one topic.
    pub async fn delete_topic(&mut self, name: &str) -> Result<()> {
        let conn = self.admin_conn().await?;
        let version = conn.version::<DeleteTopicsRequest>()?;
        let mut request = DeleteTopicsRequest::default().with_timeout_ms(ADMIN_TIMEOUT_MS);
        if version >= 6 {
            request.topics = vec![DeleteTopicState::default().with_name(Some(topic_name(name)))];
        } else {
            request.topic_names = vec![topic_name(name)];
        }
        let response = conn.request_at(version, &request).await?;
        let result = entry_about(
            "DeleteTopics",
            conn.addr(),
            &format!("'{name}'"),
            &response.responses,
            |r| r.name.as_ref().is_some_and(|n| n.0.as_str() == name),
        )?;
        check_topic(
            "DeleteTopics",
            name,
            result.error_code,
            result.error_message.as_deref(),
        )?;
        self.forget_leaders(name);
        Ok(())
    }

    /// CreatePartitions: grows `name` to `total` partitions.
    pub async fn create_partitions(&mut self, name: &str, total: i32) -> Result<()> {
        let conn = self.admin_conn().await?;
        let request = CreatePartitionsRequest::default()
            .with_timeout_ms(ADMIN_TIMEOUT_MS)
            .with_topics(vec![
                CreatePartitionsTopic::default()
                    .with_name(topic_name(name))
                    .with_count(total)
                    .with_assignments(None),
            ]);
        let response = conn.request(&request).await?;
        let result = entry_about(
            "CreatePartitions",
            conn.addr(),
            &format!("'{name}'"),
            &response.results,
            |r| r.name.0.as_str() == name,
        )?;
        check_topic(
            "CreatePartitions",
            name,
            result.error_code,
            result.error_message.as_deref(),
        )?;
        self.forget_leaders(name);
        Ok(())
    }

    /// DescribeConfigs for a topic: every config with value and source.
    pub async fn describe_topic_configs(&mut self, name: &str) -> Result<Vec<ConfigEntry>> {
        let conn = self.admin_conn().await?;
        let request = DescribeConfigsRequest::default().with_resources(vec![
            DescribeConfigsResource::default()
                .with_resource_type(RESOURCE_TOPIC)
                .with_resource_name(StrBytes::from_string(name.to_string()))
                .with_configuration_keys(None),
        ]);
        let response = conn.request(&request).await?;
        let result = entry_about(
            "DescribeConfigs",
            conn.addr(),
            &format!("'{name}'"),
            &response.results,
            |r| r.resource_name.as_str() == name,
        )?;
        check_topic(
            "DescribeConfigs",
            name,
            result.error_code,
            result.error_message.as_deref(),
        )?;
        let mut entries: Vec<ConfigEntry> = result
            .configs
            .iter()
            .map(|c| ConfigEntry {
                name: c.name.to_string(),
                value: c.value.as_ref().map(|v| v.to_string()),
                source: config_source_name(c.config_source),
                is_default: c.config_source == 5,
                read_only: c.read_only,
                sensitive: c.is_sensitive,
            })
            .collect();
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(entries)
    }

    /// DescribeLogDirs of `topic`'s partitions, each asked of its leader (`leaders`: partition
    /// and leader node): their size, and a Sluice broker's dirty ratio for a compacted one.
    pub async fn describe_log_dirs(
        &mut self,
        topic: &str,
        leaders: &[(i32, i32)],
    ) -> Result<Vec<PartitionLogDir>> {
        let mut by_leader: std::collections::BTreeMap<i32, Vec<i32>> = Default::default();
        for (partition, leader) in leaders {
            by_leader.entry(*leader).or_default().push(*partition);
        }
        let mut out = Vec::new();
        for (leader, partitions) in by_leader {
            let conn = self.node(leader).await?;
            let request = DescribeLogDirsRequest::default().with_topics(Some(vec![
                DescribableLogDirTopic::default()
                    .with_topic(topic_name(topic))
                    .with_partitions(partitions.clone()),
            ]));
            let response = conn.request(&request).await?;
            check(
                "DescribeLogDirs",
                || format!("topic '{topic}'"),
                response.error_code,
                None,
            )?;
            let found = response
                .results
                .iter()
                .flat_map(|dir| &dir.topics)
                .filter(|t| t.name.0.as_str() == topic)
                .flat_map(|t| &t.partitions)
                .filter(|p| partitions.contains(&p.partition_index))
                .map(|p| PartitionLogDir {
                    partition: p.partition_index,
                    size: p.partition_size,
                    dirty_ratio: p
                        .unknown_tagged_fields
                        .get(&DIRTY_RATIO_TAG)
                        .and_then(|b| b.as_ref().first_chunk::<8>().copied())
                        .map(f64::from_be_bytes),
                });
            out.extend(found);
        }
        out.sort_by_key(|p| p.partition);
        Ok(out)
    }

    /// IncrementalAlterConfigs on a topic.
    pub async fn alter_topic_configs(&mut self, name: &str, ops: &[ConfigOp]) -> Result<()> {
        let conn = self.admin_conn().await?;
        let configs = ops
            .iter()
            .map(|op| match op {
                ConfigOp::Set(k, v) => AlterableConfig::default()
                    .with_name(StrBytes::from_string(k.clone()))
                    .with_config_operation(0)
                    .with_value(Some(StrBytes::from_string(v.clone()))),
                ConfigOp::Delete(k) => AlterableConfig::default()
                    .with_name(StrBytes::from_string(k.clone()))
                    .with_config_operation(1)
                    .with_value(None),
            })
            .collect();
        let request = IncrementalAlterConfigsRequest::default().with_resources(vec![
            AlterConfigsResource::default()
                .with_resource_type(RESOURCE_TOPIC)
                .with_resource_name(StrBytes::from_string(name.to_string()))
                .with_configs(configs),
        ]);
        let response = conn.request(&request).await?;
        let result = entry_about(
            "IncrementalAlterConfigs",
            conn.addr(),
            &format!("'{name}'"),
            &response.responses,
            |r| r.resource_name.as_str() == name,
        )?;
        check_topic(
            "IncrementalAlterConfigs",
            name,
            result.error_code,
            result.error_message.as_deref(),
        )
    }

    /// Brokers, controller, cluster id, API versions and features.
    pub async fn describe_cluster(&mut self) -> Result<ClusterInfo> {
        let apis = self.bootstrap.apis();
        let features = self.bootstrap.features().to_vec();
        if self.bootstrap.supports::<DescribeClusterRequest>() {
            // v2 (KIP-1073) lists fenced brokers too, marked, when asked.
            let version = self.bootstrap.version::<DescribeClusterRequest>()?;
            let request = DescribeClusterRequest::default()
                .with_endpoint_type(1)
                .with_include_fenced_brokers(version >= 2);
            let response = self.bootstrap.request_at(version, &request).await?;
            check(
                "DescribeCluster",
                || "cluster".to_string(),
                response.error_code,
                response.error_message.as_deref(),
            )?;
            let mut brokers: Vec<BrokerInfo> = response
                .brokers
                .iter()
                .map(|b| BrokerInfo {
                    node_id: b.broker_id.0,
                    host: b.host.to_string(),
                    port: b.port,
                    rack: b.rack.as_ref().map(|r| r.to_string()),
                    fenced: b.is_fenced,
                })
                .collect();
            brokers.sort_by_key(|b| b.node_id);
            return Ok(ClusterInfo {
                cluster_id: Some(response.cluster_id.to_string()),
                controller_id: response.controller_id.0,
                brokers,
                apis,
                features,
            });
        }
        let md = self.metadata(Some(&[])).await?;
        let mut brokers = md.brokers;
        brokers.sort_by_key(|b| b.node_id);
        Ok(ClusterInfo {
            cluster_id: md.cluster_id,
            controller_id: md.controller_id,
            brokers,
            apis,
            features,
        })
    }

    /// AlterPartitionReassignments: starts, changes or cancels moving each partition of
    /// `plan` to its replicas; each partition's outcome. The request as a whole failing
    /// (not authorized, no controller) is an error.
    pub async fn alter_partition_reassignments(
        &mut self,
        plan: &[Reassignment],
    ) -> Result<Vec<ReassignmentOutcome>> {
        use kafka_protocol::messages::alter_partition_reassignments_request::{
            ReassignablePartition, ReassignableTopic,
        };
        let mut topics: Vec<ReassignableTopic> = Vec::new();
        for r in plan {
            let partition = ReassignablePartition::default()
                .with_partition_index(r.partition)
                .with_replicas(
                    r.replicas
                        .as_ref()
                        .map(|ids| ids.iter().copied().map(BrokerId).collect()),
                );
            match topics.iter_mut().find(|t| t.name.as_str() == r.topic) {
                Some(t) => t.partitions.push(partition),
                None => topics.push(
                    ReassignableTopic::default()
                        .with_name(topic_name(&r.topic))
                        .with_partitions(vec![partition]),
                ),
            }
        }
        let request = AlterPartitionReassignmentsRequest::default()
            .with_timeout_ms(ADMIN_TIMEOUT_MS)
            .with_topics(topics);
        let response = self.bootstrap.request(&request).await?;
        check(
            "AlterPartitionReassignments",
            || "cluster".to_string(),
            response.error_code,
            response.error_message.as_deref(),
        )?;
        Ok(response
            .responses
            .iter()
            .flat_map(|t| {
                t.partitions.iter().map(move |p| {
                    (
                        t.name.to_string(),
                        p.partition_index,
                        KafkaCode::from_code(p.error_code),
                        p.error_message.as_ref().map(|m| m.to_string()),
                    )
                })
            })
            .collect())
    }

    /// ListPartitionReassignments: the reassignments going on, of every partition.
    pub async fn list_partition_reassignments(&mut self) -> Result<Vec<OngoingReassignment>> {
        let request = ListPartitionReassignmentsRequest::default()
            .with_timeout_ms(ADMIN_TIMEOUT_MS)
            .with_topics(None);
        let response = self.bootstrap.request(&request).await?;
        check(
            "ListPartitionReassignments",
            || "cluster".to_string(),
            response.error_code,
            response.error_message.as_deref(),
        )?;
        let ids = |v: &[BrokerId]| v.iter().map(|b| b.0).collect();
        Ok(response
            .topics
            .iter()
            .flat_map(|t| {
                t.partitions.iter().map(move |p| OngoingReassignment {
                    topic: t.name.to_string(),
                    partition: p.partition_index,
                    replicas: ids(&p.replicas),
                    adding: ids(&p.adding_replicas),
                    removing: ids(&p.removing_replicas),
                })
            })
            .collect())
    }

    /// ElectLeaders: moves leaderships to the preferred replicas (or, `unclean`, elects
    /// out-of-sync replicas where partitions have no leader), for `partitions` (topic and
    /// indexes) or every partition. Returns each partition's outcome: (topic, partition,
    /// error code, message); with every partition, those needing no election are left out.
    pub async fn elect_leaders(
        &mut self,
        unclean: bool,
        partitions: Option<&[(String, Vec<i32>)]>,
    ) -> Result<Vec<(String, i32, Option<KafkaCode>, Option<String>)>> {
        use kafka_protocol::messages::elect_leaders_request::TopicPartitions;
        let request = ElectLeadersRequest::default()
            .with_election_type(i8::from(unclean))
            .with_timeout_ms(30_000)
            .with_topic_partitions(partitions.map(|list| {
                list.iter()
                    .map(|(topic, indexes)| {
                        TopicPartitions::default()
                            .with_topic(TopicName(StrBytes::from_string(topic.clone())))
                            .with_partitions(indexes.clone())
                    })
                    .collect()
            }));
        let response = self.bootstrap.request(&request).await?;
        check(
            "ElectLeaders",
            || "cluster".to_string(),
            response.error_code,
            None,
        )?;
        Ok(response
            .replica_election_results
            .iter()
            .flat_map(|t| {
                t.partition_result.iter().map(move |p| {
                    (
                        t.topic.to_string(),
                        p.partition_id,
                        KafkaCode::from_code(p.error_code),
                        p.error_message.as_ref().map(|m| m.to_string()),
                    )
                })
            })
            .collect())
    }

    /// Removes broker `id` from the cluster (UnregisterBroker, as Kafka's
    /// `kafka-cluster.sh unregister --id`): its registration, and its place in the metadata
    /// quorum (as a voter or a learner).
    pub async fn unregister_broker(&mut self, id: i32) -> Result<()> {
        let request = UnregisterBrokerRequest::default().with_broker_id(BrokerId(id));
        let response = self.bootstrap.request(&request).await?;
        check(
            "UnregisterBroker",
            || format!("broker {id}"),
            response.error_code,
            response.error_message.as_deref(),
        )
    }
}

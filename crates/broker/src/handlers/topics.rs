//! CreateTopics, DeleteTopics and CreatePartitions.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{
    CreatePartitionsRequest, CreatePartitionsResponse, CreateTopicsRequest, CreateTopicsResponse,
    DeleteTopicsRequest, DeleteTopicsResponse, ResponseKind, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use sluice_protocol::kafka_protocol;
use uuid::Uuid;

use crate::broker::Broker;
use crate::request::{Reply, RequestContext};
use crate::topic_admin::{self, AdminError, NewTopic};
use crate::topic_config::resolve_topic_configs;

/// Handles CreateTopics; the answer follows once the topics are committed.
pub async fn create_topics(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    req: CreateTopicsRequest,
) -> Reply {
    let response = create(broker, req, ctx.api_version()).await;
    Reply::Now(ResponseKind::CreateTopics(response))
}

/// Creates the topics of a CreateTopics request, one after the other.
async fn create(
    broker: &Arc<Broker>,
    req: CreateTopicsRequest,
    version: i16,
) -> CreateTopicsResponse {
    let mut seen: HashMap<String, usize> = HashMap::new();
    for t in &req.topics {
        *seen.entry(t.name.to_string()).or_default() += 1;
    }
    let requested: i64 = req
        .topics
        .iter()
        .map(|t| requested_partitions(t, broker.config.default_partitions))
        .sum();
    let too_many = requested > topic_admin::MAX_PARTITIONS_PER_REQUEST;
    let mut topics = Vec::with_capacity(req.topics.len());
    for t in req.topics {
        topics.push({
            let name = t.name.to_string();
            let result = if too_many {
                Err(topic_admin::too_many_partitions_per_request())
            } else if seen.get(&name).copied().unwrap_or(0) > 1 {
                Err(AdminError::new(
                    ResponseError::InvalidRequest,
                    format!("Create topics request from client contains multiple entries for the following topics: {name}"),
                ))
            } else {
                match new_topic(&t) {
                    Ok(spec) => topic_admin::create_topic(broker, spec, req.validate_only).await,
                    Err(e) => Err(e),
                }
            };
            let base = CreatableTopicResult::default().with_name(t.name.clone());
            match result {
                Ok(created) => {
                    let image = broker.metadata.image();
                    let configs = (version >= 5).then(|| {
                        resolve_topic_configs(&created.configs, &broker.config, &image.broker_configs)
                            .into_iter()
                            .map(|c| {
                                CreatableTopicConfigs::default()
                                    .with_name(StrBytes::from_static_str(c.name))
                                    .with_value(Some(StrBytes::from_string(c.value)))
                                    .with_config_source(c.source as i8)
                            })
                            .collect()
                    });
                    // Fields newer than the request version keep their defaults.
                    let base = if version >= 7 { base.with_topic_id(created.id) } else { base };
                    match configs {
                        Some(configs) => base
                            .with_num_partitions(created.partition_count())
                            .with_replication_factor(
                                created
                                    .partition(0)
                                    .map_or(1, |p| i16::try_from(p.replicas.len()).unwrap_or(1)),
                            )
                            .with_configs(Some(configs)),
                        None => base,
                    }
                }
                Err(e) => {
                    let base = base
                        .with_error_code(e.code.code())
                        .with_error_message(Some(StrBytes::from_string(e.message)));
                    if version >= 5 { base.with_configs(None) } else { base }
                }
            }
        });
    }
    CreateTopicsResponse::default().with_topics(topics)
}

/// Partitions a CreateTopics entry asks for, counted as Kafka's controller counts them
/// for its per-request limit: the default for -1, the assignments when given.
fn requested_partitions(
    t: &kafka_protocol::messages::create_topics_request::CreatableTopic,
    default_partitions: i32,
) -> i64 {
    if !t.assignments.is_empty() {
        return i64::try_from(t.assignments.len()).unwrap_or(i64::MAX);
    }
    match t.num_partitions {
        -1 => i64::from(default_partitions),
        n => i64::from(n.max(0)),
    }
}

fn new_topic(
    t: &kafka_protocol::messages::create_topics_request::CreatableTopic,
) -> Result<NewTopic, AdminError> {
    let (mut partitions, mut replication_factor) = (t.num_partitions, t.replication_factor);
    if !t.assignments.is_empty() {
        if t.num_partitions != -1 || t.replication_factor != -1 {
            return Err(AdminError::new(
                ResponseError::InvalidRequest,
                "Both numPartitions or replicationFactor and replicasAssignments were set. Both cannot be used at the same time.",
            ));
        }
        partitions = i32::try_from(t.assignments.len()).unwrap_or(i32::MAX);
        replication_factor = i16::try_from(t.assignments.first().map_or(0, |a| a.broker_ids.len()))
            .unwrap_or(i16::MAX);
    }
    let mut configs = BTreeMap::new();
    for c in &t.configs {
        let Some(value) = &c.value else {
            return Err(AdminError::new(
                ResponseError::InvalidConfig,
                format!("Null value not supported for topic configs: {}", &*c.name),
            ));
        };
        configs.insert(c.name.to_string(), value.to_string());
    }
    let assignments = (!t.assignments.is_empty())
        .then(|| manual_assignments(t))
        .transpose()?;
    Ok(NewTopic {
        name: t.name.to_string(),
        partitions,
        replication_factor,
        assignments,
        configs,
        // Kafka lets a user create `__consumer_offsets` before first use; the
        // coordinator then uses it, and it is internal like one it created.
        internal: topic_admin::is_internal_topic(&t.name),
    })
}

/// The replicas of each partition a CreateTopics entry assigns itself, by partition index:
/// the indexes must be 0, 1, 2, … (Kafka: "partitions should be a consecutive 0-based
/// integer sequence").
fn manual_assignments(
    t: &kafka_protocol::messages::create_topics_request::CreatableTopic,
) -> Result<Vec<Vec<i32>>, AdminError> {
    let mut by_index: Vec<(i32, Vec<i32>)> = t
        .assignments
        .iter()
        .map(|a| {
            (
                a.partition_index,
                a.broker_ids.iter().map(|b| b.0).collect(),
            )
        })
        .collect();
    by_index.sort_by_key(|(index, _)| *index);
    let consecutive = (0..)
        .zip(&by_index)
        .all(|(expected, (index, _))| *index == expected);
    if !consecutive {
        return Err(AdminError::new(
            ResponseError::InvalidReplicaAssignment,
            "partitions should be a consecutive 0-based integer sequence",
        ));
    }
    Ok(by_index.into_iter().map(|(_, replicas)| replicas).collect())
}

/// Handles DeleteTopics, by name (all versions) or id (v6+).
pub async fn delete_topics(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    req: DeleteTopicsRequest,
) -> Reply {
    let response = delete(broker, req, ctx.api_version()).await;
    Reply::Now(ResponseKind::DeleteTopics(response))
}

/// Deletes the topics of a DeleteTopics request, one after the other.
async fn delete(
    broker: &Arc<Broker>,
    req: DeleteTopicsRequest,
    version: i16,
) -> DeleteTopicsResponse {
    let targets: Vec<(Option<TopicName>, Uuid)> = if version >= 6 {
        req.topics
            .into_iter()
            .map(|t| (t.name, t.topic_id))
            .collect()
    } else {
        req.topic_names
            .into_iter()
            .map(|n| (Some(n), Uuid::nil()))
            .collect()
    };
    let mut responses = Vec::with_capacity(targets.len());
    for (name, id) in targets {
        responses.push({
            let image = broker.metadata.image();
            let resolved = match &name {
                Some(n) => image.topic(n).map(|t| t.id).ok_or_else(|| {
                    AdminError::new(
                        ResponseError::UnknownTopicOrPartition,
                        "This server does not host this topic-partition.",
                    )
                }),
                None => Ok(id),
            };
            let result = match resolved {
                Ok(id) => topic_admin::delete_topic(broker, id).await,
                Err(e) => Err(e),
            };
            let base = DeletableTopicResult::default();
            match result {
                Ok(t) => {
                    let base = base.with_name(Some(TopicName(StrBytes::from_string(t.name))));
                    if version >= 6 {
                        base.with_topic_id(t.id)
                    } else {
                        base
                    }
                }
                Err(e) => {
                    let base = base.with_name(name).with_error_code(e.code.code());
                    let base = if version >= 5 {
                        base.with_error_message(Some(StrBytes::from_string(e.message)))
                    } else {
                        base
                    };
                    if version >= 6 {
                        base.with_topic_id(id)
                    } else {
                        base
                    }
                }
            }
        });
    }
    DeleteTopicsResponse::default().with_responses(responses)
}

/// Handles CreatePartitions.
pub async fn create_partitions(
    broker: &Arc<Broker>,
    _: &RequestContext,
    req: CreatePartitionsRequest,
) -> Reply {
    let response = add_partitions(broker, req).await;
    Reply::Now(ResponseKind::CreatePartitions(response))
}

async fn add_partitions(
    broker: &Arc<Broker>,
    req: CreatePartitionsRequest,
) -> CreatePartitionsResponse {
    let mut seen: HashMap<String, usize> = HashMap::new();
    for t in &req.topics {
        *seen.entry(t.name.to_string()).or_default() += 1;
    }
    let node = broker.node_id();
    let image = broker.metadata.image();
    let added: i64 = req
        .topics
        .iter()
        .filter_map(|t| {
            Some(
                t.count
                    .saturating_sub(image.topic(&t.name)?.partition_count()),
            )
        })
        .map(|n| i64::from(n.max(0)))
        .sum();
    let too_many = added > topic_admin::MAX_PARTITIONS_PER_REQUEST;
    let mut results = Vec::with_capacity(req.topics.len());
    for t in req.topics {
        results.push({
            let result = if too_many {
                Err(topic_admin::too_many_partitions_per_request())
            } else if seen.get(&*t.name.to_string()).copied().unwrap_or(0) > 1 {
                Err(AdminError::new(
                    ResponseError::InvalidRequest,
                    "Duplicate topic in request.",
                ))
            } else if t
                .assignments
                .iter()
                .flatten()
                .flat_map(|a| &a.broker_ids)
                .any(|b| b.0 != node)
            {
                Err(AdminError::new(
                    ResponseError::InvalidReplicaAssignment,
                    format!("Unknown broker(s) in replica assignment; the only broker is {node}."),
                ))
            } else {
                topic_admin::create_partitions(broker, &t.name, t.count, req.validate_only).await
            };
            let base = CreatePartitionsTopicResult::default().with_name(t.name);
            match result {
                Ok(()) => base,
                Err(e) => base
                    .with_error_code(e.code.code())
                    .with_error_message(Some(StrBytes::from_string(e.message))),
            }
        });
    }
    CreatePartitionsResponse::default().with_results(results)
}

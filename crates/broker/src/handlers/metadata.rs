//! Metadata: brokers, topics, partitions and leaders; auto-creates topics.

use std::collections::HashMap;
use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{
    BrokerId, MetadataRequest, MetadataResponse, ResponseKind, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use sluice_protocol::kafka_protocol;
use uuid::Uuid;

use crate::broker::Broker;
use crate::metadata::{
    BrokerRegistration, EndpointRecord, MetadataImage, PartitionRegistration, TopicImage,
};
use crate::request::{ListenerName, Reply, RequestContext};
use crate::topic_admin::{self, get_or_auto_create, validate_topic_name};

/// Kafka's "authorized operations not requested" value.
pub const AUTHORIZED_OPERATIONS_OMITTED: i32 = i32::MIN;
/// Every topic operation (READ, WRITE, CREATE, DELETE, ALTER, DESCRIBE,
/// DESCRIBE_CONFIGS, ALTER_CONFIGS) is allowed until ACLs exist.
pub const ALL_TOPIC_OPERATIONS: i32 =
    (1 << 3) | (1 << 4) | (1 << 5) | (1 << 6) | (1 << 7) | (1 << 8) | (1 << 10) | (1 << 11);
/// Every cluster operation (CREATE, ALTER, DESCRIBE, CLUSTER_ACTION,
/// DESCRIBE_CONFIGS, ALTER_CONFIGS, IDEMPOTENT_WRITE) is allowed until ACLs exist.
pub const ALL_CLUSTER_OPERATIONS: i32 =
    (1 << 5) | (1 << 7) | (1 << 8) | (1 << 9) | (1 << 10) | (1 << 11) | (1 << 12);

/// Answers a Metadata request from the image, once the topics it names for auto-creation
/// are created.
pub async fn metadata(broker: &Arc<Broker>, ctx: &RequestContext, req: MetadataRequest) -> Reply {
    let version = ctx.api_version();
    let to_create = topics_to_create(broker, &req, version);
    let mut outcomes = HashMap::new();
    if auto_created_partitions(broker, &to_create) > topic_admin::MAX_PARTITIONS_PER_REQUEST {
        // Kafka's controller refuses such a batch whole: none is created.
        for name in to_create {
            outcomes.insert(name, ResponseError::PolicyViolation);
        }
    } else {
        for name in to_create {
            match get_or_auto_create(broker, &name, true).await {
                Ok(Some(_)) => {}
                Ok(None) => {
                    outcomes.insert(name, ResponseError::UnknownTopicOrPartition);
                }
                Err(e) => {
                    outcomes.insert(name, e.code);
                }
            }
        }
    }
    Reply::Now(ResponseKind::Metadata(respond(
        broker,
        &ctx.listener,
        req,
        version,
        &outcomes,
    )))
}

/// The unknown, validly named topics of the request that auto-creation would create.
fn topics_to_create(broker: &Broker, req: &MetadataRequest, version: i16) -> Vec<String> {
    // v0-3 always auto-create; v4+ lets the client forbid it.
    let allowed =
        (version < 4 || req.allow_auto_topic_creation) && broker.config.auto_create_topics;
    let Some(list) = req.topics.as_ref().filter(|_| allowed) else {
        return Vec::new();
    };
    let image = broker.metadata.image();
    let mut unknown: Vec<String> = list
        .iter()
        .filter_map(|t| t.name.as_deref().map(|n| n.to_string()))
        .filter(|name| image.topic(name).is_none() && validate_topic_name(name).is_ok())
        .collect();
    unknown.sort_unstable();
    unknown.dedup();
    unknown
}

/// Partitions auto-creation of `names` would add.
fn auto_created_partitions(broker: &Broker, names: &[String]) -> i64 {
    i64::try_from(names.len())
        .unwrap_or(i64::MAX)
        .saturating_mul(i64::from(broker.config.default_partitions))
}

/// The response as the image stands; `failed` says why named topics that are still
/// unknown were not created.
fn respond(
    broker: &Broker,
    listener: &ListenerName,
    req: MetadataRequest,
    version: i16,
    failed: &HashMap<String, ResponseError>,
) -> MetadataResponse {
    let include_topic_ops = version >= 8 && req.include_topic_authorized_operations;
    let image = broker.metadata.image();
    let topics: Vec<MetadataResponseTopic> = match req.topics {
        // v0 has no null: an empty list means all topics.
        None => image.topics().map(|t| describe_topic(&image, t)).collect(),
        Some(list) if list.is_empty() && version == 0 => {
            image.topics().map(|t| describe_topic(&image, t)).collect()
        }
        Some(list) => list
            .into_iter()
            .map(|t| match t.name {
                Some(name) => describe_by_name(&image, &name, failed),
                None => describe_by_id(&image, t.topic_id),
            })
            .collect(),
    };
    let topics = topics
        .into_iter()
        .map(|t| {
            // Fields newer than the request version must keep their defaults
            // or the response would not encode.
            let t = if version >= 10 {
                t
            } else {
                t.with_topic_id(Uuid::nil())
            };
            let t = if version >= 7 {
                t
            } else {
                let partitions = t
                    .partitions
                    .iter()
                    .cloned()
                    .map(|p| {
                        let p = p.with_leader_epoch(-1);
                        if version >= 5 {
                            p
                        } else {
                            p.with_offline_replicas(Vec::new())
                        }
                    })
                    .collect();
                t.with_partitions(partitions)
            };
            let t = if version >= 1 {
                t
            } else {
                t.with_is_internal(false)
            };
            t.with_topic_authorized_operations(if include_topic_ops {
                ALL_TOPIC_OPERATIONS
            } else {
                AUTHORIZED_OPERATIONS_OMITTED
            })
        })
        .collect();
    let cluster_ops = if (8..=10).contains(&version) && req.include_cluster_authorized_operations {
        ALL_CLUSTER_OPERATIONS
    } else {
        AUTHORIZED_OPERATIONS_OMITTED
    };
    let brokers = live_brokers(&image)
        .filter_map(|b| {
            let endpoint = client_endpoint(b, listener)?;
            Some(
                MetadataResponseBroker::default()
                    .with_node_id(BrokerId(b.id))
                    .with_host(StrBytes::from_string(endpoint.host.clone()))
                    .with_port(endpoint.port)
                    .with_rack(b.rack.clone().map(StrBytes::from_string)),
            )
        })
        .collect();
    MetadataResponse::default()
        .with_brokers(brokers)
        .with_cluster_id((version >= 2).then(|| StrBytes::from_string(broker.cluster_id.clone())))
        .with_controller_id(BrokerId(if version >= 1 {
            controller_id(broker, &image)
        } else {
            -1
        }))
        .with_topics(topics)
        .with_cluster_authorized_operations(cluster_ops)
}

/// The brokers clients may use: registered and not fenced (a fenced broker leads nothing
/// and is left out of Metadata, as in Kafka).
pub fn live_brokers(image: &MetadataImage) -> impl Iterator<Item = &BrokerRegistration> {
    image.brokers().filter(|b| !b.fenced)
}

/// The controller id clients are told: the node leading the metadata quorum when it is a
/// live broker, else this node (clients of a KRaft cluster cannot reach the controller
/// itself; they only need a live node).
pub fn controller_id(broker: &Broker, image: &MetadataImage) -> i32 {
    broker
        .metadata
        .leader()
        .filter(|&id| live_brokers(image).any(|b| b.id == id))
        .unwrap_or_else(|| broker.node_id())
}

/// The endpoint at which clients of `listener` reach `broker`: the broker's endpoint of the
/// same listener (Kafka answers each listener with its own addresses). Requests from peer
/// nodes (the cluster listener) get the first endpoint.
pub fn client_endpoint<'a>(
    broker: &'a BrokerRegistration,
    listener: &ListenerName,
) -> Option<&'a EndpointRecord> {
    let same = broker
        .endpoints
        .iter()
        .find(|e| e.listener == listener.value());
    match same {
        Some(e) => Some(e),
        None if listener.is_cluster() => broker.endpoints.first(),
        None => None,
    }
}

fn describe_by_name(
    image: &MetadataImage,
    name: &TopicName,
    failed: &HashMap<String, ResponseError>,
) -> MetadataResponseTopic {
    let error_topic = |code: ResponseError| {
        MetadataResponseTopic::default()
            .with_name(Some(name.clone()))
            .with_error_code(code.code())
    };
    if validate_topic_name(name).is_err() {
        return error_topic(ResponseError::InvalidTopicException);
    }
    match image.topic(name) {
        Some(topic) => describe_topic(image, topic),
        None => error_topic(
            failed
                .get(name.as_str())
                .copied()
                .unwrap_or(ResponseError::UnknownTopicOrPartition),
        ),
    }
}

fn describe_by_id(image: &MetadataImage, id: Uuid) -> MetadataResponseTopic {
    match image.topic_by_id(&id) {
        Some(t) => describe_topic(image, t),
        None => MetadataResponseTopic::default()
            .with_topic_id(id)
            .with_error_code(ResponseError::UnknownTopicId.code()),
    }
}

/// Node ids as the protocol carries them.
pub fn nodes(ids: &[i32]) -> Vec<BrokerId> {
    ids.iter().map(|&id| BrokerId(id)).collect()
}

/// The replicas among `ids` on fenced or unknown brokers.
pub fn offline_replicas(image: &MetadataImage, ids: &[i32]) -> Vec<BrokerId> {
    ids.iter()
        .filter(|&&id| image.broker(id).is_none_or(|b| b.fenced))
        .map(|&id| BrokerId(id))
        .collect()
}

/// A partition's error in Metadata and DescribeTopicPartitions: LEADER_NOT_AVAILABLE
/// while it has no leader.
pub fn partition_error(p: &PartitionRegistration) -> i16 {
    if p.leader < 0 {
        ResponseError::LeaderNotAvailable.code()
    } else {
        0
    }
}

/// The metadata of one existing topic, each partition as its registration says: a
/// partition without a leader answers LEADER_NOT_AVAILABLE, and replicas on fenced (or
/// unknown) brokers are listed as offline.
pub fn describe_topic(image: &MetadataImage, topic: &TopicImage) -> MetadataResponseTopic {
    let partitions = (0..)
        .zip(&topic.partitions)
        .map(|(index, p)| {
            MetadataResponsePartition::default()
                .with_error_code(partition_error(p))
                .with_partition_index(index)
                .with_leader_id(BrokerId(p.leader))
                .with_leader_epoch(p.leader_epoch.0)
                .with_replica_nodes(nodes(&p.replicas))
                .with_isr_nodes(nodes(&p.isr))
                .with_offline_replicas(offline_replicas(image, &p.replicas))
        })
        .collect();
    MetadataResponseTopic::default()
        .with_name(Some(TopicName(StrBytes::from_string(topic.name.clone()))))
        .with_topic_id(topic.id)
        .with_is_internal(topic.internal)
        .with_partitions(partitions)
}

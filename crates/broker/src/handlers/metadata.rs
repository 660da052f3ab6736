//! Metadata: brokers, topics, partitions and leaders; auto-creates topics.

use std::collections::HashSet;
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
use crate::metadata::TopicImage;
use crate::request::{Reply, RequestContext};
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

/// The handler-table entry for Metadata.
pub async fn metadata(broker: &Arc<Broker>, ctx: &RequestContext, req: MetadataRequest) -> Reply {
    Reply::Now(ResponseKind::Metadata(handle(
        broker,
        req,
        ctx.api_version(),
    )))
}

/// Answers a Metadata request.
pub fn handle(broker: &Arc<Broker>, req: MetadataRequest, version: i16) -> MetadataResponse {
    // v0 has no null: an empty list means all topics. v4+ lets the client
    // forbid auto-creation.
    let allow_auto_create = version < 4 || req.allow_auto_topic_creation;
    let include_topic_ops = version >= 8 && req.include_topic_authorized_operations;
    let topics = match req.topics {
        None => all_topics(broker),
        Some(list) if list.is_empty() && version == 0 => all_topics(broker),
        Some(list) => {
            let auto_create = match allow_auto_create && broker.config.auto_create_topics {
                false => AutoCreate::No,
                true if auto_created_partitions(broker, &list)
                    > topic_admin::MAX_PARTITIONS_PER_REQUEST =>
                {
                    AutoCreate::OverLimit
                }
                true => AutoCreate::Yes,
            };
            list.into_iter()
                .map(|t| match t.name {
                    Some(name) => describe_by_name(broker, &name, auto_create),
                    None => describe_by_id(broker, t.topic_id),
                })
                .collect()
        }
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
                    .map(|p| p.with_leader_epoch(-1))
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
    MetadataResponse::default()
        .with_brokers(vec![
            MetadataResponseBroker::default()
                .with_node_id(BrokerId(broker.node_id()))
                .with_host(StrBytes::from_string(broker.advertised_host.clone()))
                .with_port(broker.advertised_port),
        ])
        .with_cluster_id((version >= 2).then(|| StrBytes::from_string(broker.cluster_id.clone())))
        .with_controller_id(BrokerId(if version >= 1 { broker.node_id() } else { -1 }))
        .with_topics(topics)
        .with_cluster_authorized_operations(cluster_ops)
}

fn all_topics(broker: &Broker) -> Vec<MetadataResponseTopic> {
    broker
        .metadata
        .image()
        .topics()
        .map(|t| describe_topic(broker, t))
        .collect()
}

/// Whether unknown topics named by a Metadata request are created.
#[derive(Clone, Copy)]
enum AutoCreate {
    Yes,
    No,
    /// The request names unknown topics worth more partitions than one request may
    /// create: none is created (Kafka's controller refuses such a batch whole).
    OverLimit,
}

/// Partitions auto-creation would add for the unknown, validly named topics of `list`.
fn auto_created_partitions(
    broker: &Broker,
    list: &[kafka_protocol::messages::metadata_request::MetadataRequestTopic],
) -> i64 {
    let image = broker.metadata.image();
    let unknown: HashSet<&str> = list
        .iter()
        .filter_map(|t| t.name.as_deref().map(|n| &**n))
        .filter(|name| image.topic(name).is_none() && validate_topic_name(name).is_ok())
        .collect();
    i64::try_from(unknown.len())
        .unwrap_or(i64::MAX)
        .saturating_mul(i64::from(broker.config.default_partitions))
}

fn describe_by_name(
    broker: &Broker,
    name: &TopicName,
    auto_create: AutoCreate,
) -> MetadataResponseTopic {
    let error_topic = |code: ResponseError| {
        MetadataResponseTopic::default()
            .with_name(Some(name.clone()))
            .with_error_code(code.code())
    };
    if validate_topic_name(name).is_err() {
        return error_topic(ResponseError::InvalidTopicException);
    }
    let allow = match auto_create {
        AutoCreate::Yes => true,
        AutoCreate::No => false,
        AutoCreate::OverLimit => {
            return match broker.metadata.image().topic(name) {
                Some(topic) => describe_topic(broker, topic),
                None => error_topic(ResponseError::PolicyViolation),
            };
        }
    };
    match get_or_auto_create(broker, name, allow) {
        Ok(Some(topic)) => describe_topic(broker, &topic),
        Ok(None) => error_topic(ResponseError::UnknownTopicOrPartition),
        Err(e) => error_topic(e.code),
    }
}

fn describe_by_id(broker: &Broker, id: Uuid) -> MetadataResponseTopic {
    match broker.metadata.image().topic_by_id(&id) {
        Some(t) => describe_topic(broker, t),
        None => MetadataResponseTopic::default()
            .with_topic_id(id)
            .with_error_code(ResponseError::UnknownTopicId.code()),
    }
}

/// The metadata of one existing topic: every partition led by this node.
pub fn describe_topic(broker: &Broker, topic: &TopicImage) -> MetadataResponseTopic {
    let node = BrokerId(broker.node_id());
    let partitions = (0..topic.partitions)
        .map(|p| {
            MetadataResponsePartition::default()
                .with_partition_index(p)
                .with_leader_id(node)
                .with_leader_epoch(0)
                .with_replica_nodes(vec![node])
                .with_isr_nodes(vec![node])
        })
        .collect();
    MetadataResponseTopic::default()
        .with_name(Some(TopicName(StrBytes::from_string(topic.name.clone()))))
        .with_topic_id(topic.id)
        .with_is_internal(topic.internal)
        .with_partitions(partitions)
}

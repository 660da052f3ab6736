//! DescribeTopicPartitions (KIP-966): the partitions of topics with leaders, replicas, ISR
//! and offline replicas, paged — a topic with many partitions is answered over several
//! requests, each resuming at the cursor the previous one returned.

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_topic_partitions_response::{
    Cursor, DescribeTopicPartitionsResponsePartition, DescribeTopicPartitionsResponseTopic,
};
use kafka_protocol::messages::{
    BrokerId, DescribeTopicPartitionsRequest, DescribeTopicPartitionsResponse, ResponseKind,
    TopicName,
};
use kafka_protocol::protocol::StrBytes;
use sluice_protocol::kafka_protocol;

use crate::broker::Broker;
use crate::handlers::metadata::{ALL_TOPIC_OPERATIONS, nodes, offline_replicas, partition_error};
use crate::request::{Reply, RequestContext};

/// The most partitions one answer carries (Kafka's `max.request.partition.size.limit`).
const MAX_PARTITIONS_PER_RESPONSE: usize = 2000;

/// Handles DescribeTopicPartitions.
pub async fn describe_topic_partitions(
    broker: &Arc<Broker>,
    _ctx: &RequestContext,
    req: DescribeTopicPartitionsRequest,
) -> Reply {
    Reply::Now(ResponseKind::DescribeTopicPartitions(describe(broker, req)))
}

fn describe(
    broker: &Broker,
    req: DescribeTopicPartitionsRequest,
) -> DescribeTopicPartitionsResponse {
    let image = broker.metadata.image();
    // The topics asked for (all when none), by name.
    let mut names: Vec<String> = if req.topics.is_empty() {
        image.topics().map(|t| t.name.clone()).collect()
    } else {
        req.topics.iter().map(|t| t.name.to_string()).collect()
    };
    names.sort_unstable();
    names.dedup();
    let (start_topic, start_partition) = match &req.cursor {
        Some(c) => (Some(c.topic_name.to_string()), c.partition_index.max(0)),
        None => (None, 0),
    };
    if let Some(start) = &start_topic
        && !names.contains(start)
    {
        return DescribeTopicPartitionsResponse::default().with_topics(vec![
            DescribeTopicPartitionsResponseTopic::default()
                .with_name(Some(TopicName(StrBytes::from_string(start.clone()))))
                .with_error_code(ResponseError::InvalidRequest.code()),
        ]);
    }
    let limit = usize::try_from(req.response_partition_limit)
        .unwrap_or(MAX_PARTITIONS_PER_RESPONSE)
        .clamp(1, MAX_PARTITIONS_PER_RESPONSE);
    let mut left = limit;
    let mut topics = Vec::new();
    let mut next_cursor = None;
    let first = start_topic
        .as_ref()
        .and_then(|s| names.iter().position(|n| n == s))
        .unwrap_or(0);
    for (i, name) in names.iter().enumerate().skip(first) {
        let topic_name = TopicName(StrBytes::from_string(name.clone()));
        let Some(topic) = image.topic(name) else {
            topics.push(
                DescribeTopicPartitionsResponseTopic::default()
                    .with_name(Some(topic_name))
                    .with_error_code(ResponseError::UnknownTopicOrPartition.code()),
            );
            continue;
        };
        if left == 0 {
            next_cursor = Some(
                Cursor::default()
                    .with_topic_name(topic_name)
                    .with_partition_index(0),
            );
            break;
        }
        let from = if i == first { start_partition } else { 0 };
        let mut partitions = Vec::new();
        for (index, p) in (0..)
            .zip(&topic.partitions)
            .skip(usize::try_from(from).unwrap_or(0))
        {
            if left == 0 {
                next_cursor = Some(
                    Cursor::default()
                        .with_topic_name(topic_name.clone())
                        .with_partition_index(index),
                );
                break;
            }
            left -= 1;
            partitions.push(
                DescribeTopicPartitionsResponsePartition::default()
                    .with_error_code(partition_error(p))
                    .with_partition_index(index)
                    .with_leader_id(BrokerId(p.leader))
                    .with_leader_epoch(p.leader_epoch.0)
                    .with_replica_nodes(nodes(&p.replicas))
                    .with_isr_nodes(nodes(&p.isr))
                    .with_eligible_leader_replicas(Some(Vec::new()))
                    .with_last_known_elr(Some(Vec::new()))
                    .with_offline_replicas(offline_replicas(&image, &p.replicas)),
            );
        }
        topics.push(
            DescribeTopicPartitionsResponseTopic::default()
                .with_name(Some(topic_name))
                .with_topic_id(topic.id)
                .with_is_internal(topic.internal)
                .with_partitions(partitions)
                .with_topic_authorized_operations(ALL_TOPIC_OPERATIONS),
        );
        if next_cursor.is_some() {
            break;
        }
    }
    DescribeTopicPartitionsResponse::default()
        .with_topics(topics)
        .with_next_cursor(next_cursor)
}

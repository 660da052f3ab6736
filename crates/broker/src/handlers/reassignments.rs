//! AlterPartitionReassignments and ListPartitionReassignments (KIP-455): start, change or
//! cancel moving partitions' replicas to other brokers, and list the moves going on. The
//! controller decides and commits (see [`crate::controller::reassignment`]); any node
//! answers, as for the other admin requests that change metadata.

use std::collections::BTreeMap;
use std::sync::Arc;

use kafka_protocol::messages::alter_partition_reassignments_response::{
    ReassignablePartitionResponse, ReassignableTopicResponse,
};
use kafka_protocol::messages::list_partition_reassignments_response::{
    OngoingPartitionReassignment, OngoingTopicReassignment,
};
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse, BrokerId,
    ListPartitionReassignmentsRequest, ListPartitionReassignmentsResponse, ResponseKind, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use sluice_protocol::kafka_protocol;

use crate::broker::Broker;
use crate::controller::ReassignmentRequest;
use crate::metadata::{MetadataImage, TopicImage};
use crate::request::{Reply, RequestContext};
use crate::topic_admin::AdminError;

/// Handles AlterPartitionReassignments.
pub async fn alter_partition_reassignments(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    req: AlterPartitionReassignmentsRequest,
) -> Reply {
    // v0 knew no such flag: the replication factor could always change.
    let allow_rf_change = ctx.api_version() == 0 || req.allow_replication_factor_change;
    // The answer has one entry per topic of the request, even one naming no partition.
    let shape: Vec<(String, usize)> = req
        .topics
        .iter()
        .map(|t| (t.name.to_string(), t.partitions.len()))
        .collect();
    let requests: Vec<ReassignmentRequest> = req
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions.iter().map(|p| ReassignmentRequest {
                topic: t.name.to_string(),
                partition: p.partition_index,
                replicas: p.replicas.as_ref().map(|r| r.iter().map(|b| b.0).collect()),
            })
        })
        .collect();
    let broker = broker.clone();
    Reply::Later(tokio::spawn(async move {
        let answer = AlterPartitionReassignmentsResponse::default()
            .with_allow_replication_factor_change(allow_rf_change)
            .with_error_message(None);
        let outcomes = match broker
            .controller
            .alter_reassignments(&requests, allow_rf_change)
            .await
        {
            Ok(outcomes) => outcomes,
            Err(e) => {
                let e = AdminError::from(e);
                tracing::warn!(error = %e.message, "partition reassignments could not be committed");
                let failed = requests.iter().map(|_| Err(e.clone())).collect();
                return ResponseKind::AlterPartitionReassignments(
                    answer
                        .with_error_code(e.code.code())
                        .with_error_message(Some(StrBytes::from_string(e.message.clone())))
                        .with_responses(topic_responses(&shape, &requests, failed)),
                );
            }
        };
        ResponseKind::AlterPartitionReassignments(
            answer.with_responses(topic_responses(&shape, &requests, outcomes)),
        )
    }))
}

/// Each partition's outcome, grouped by topic as the request (`shape`: each topic's name
/// and partition count) grouped them.
fn topic_responses(
    shape: &[(String, usize)],
    requests: &[ReassignmentRequest],
    outcomes: Vec<Result<(), AdminError>>,
) -> Vec<ReassignableTopicResponse> {
    let mut answers = requests.iter().zip(outcomes).map(|(request, outcome)| {
        let (code, message) = match outcome {
            Ok(()) => (0, None),
            Err(e) => (e.code.code(), Some(StrBytes::from_string(e.message))),
        };
        ReassignablePartitionResponse::default()
            .with_partition_index(request.partition)
            .with_error_code(code)
            .with_error_message(message)
    });
    shape
        .iter()
        .map(|(name, count)| {
            ReassignableTopicResponse::default()
                .with_name(topic_name(name))
                .with_partitions(answers.by_ref().take(*count).collect())
        })
        .collect()
}

/// Handles ListPartitionReassignments: the reassignments going on, from this node's
/// metadata (every partition of every topic, or the named ones; topics and partitions
/// that do not exist or are not being reassigned are left out, as in Kafka).
pub async fn list_partition_reassignments(
    broker: &Arc<Broker>,
    _ctx: &RequestContext,
    req: ListPartitionReassignmentsRequest,
) -> Reply {
    let image = broker.metadata.image();
    let named: Option<BTreeMap<String, Vec<i32>>> = req.topics.as_ref().map(|topics| {
        let mut named: BTreeMap<String, Vec<i32>> = BTreeMap::new();
        for t in topics {
            named
                .entry(t.name.to_string())
                .or_default()
                .extend(&t.partition_indexes);
        }
        named
    });
    let topics = ongoing(&image, named.as_ref());
    Reply::Now(ResponseKind::ListPartitionReassignments(
        ListPartitionReassignmentsResponse::default()
            .with_error_message(None)
            .with_topics(topics),
    ))
}

/// The reassignments going on in `image`, of the `named` partitions or of all.
fn ongoing(
    image: &MetadataImage,
    named: Option<&BTreeMap<String, Vec<i32>>>,
) -> Vec<OngoingTopicReassignment> {
    let selected: Vec<(&TopicImage, Vec<i32>)> = match named {
        None => image
            .topics()
            .map(|t| (t, (0..t.partition_count()).collect()))
            .collect(),
        Some(named) => named
            .iter()
            .filter_map(|(name, indexes)| Some((image.topic(name)?, indexes.clone())))
            .collect(),
    };
    selected
        .into_iter()
        .filter_map(|(topic, indexes)| {
            let partitions: Vec<OngoingPartitionReassignment> = indexes
                .into_iter()
                .filter_map(|index| {
                    let p = topic.partition(index).filter(|p| p.is_reassigning())?;
                    Some(
                        OngoingPartitionReassignment::default()
                            .with_partition_index(index)
                            .with_replicas(broker_ids(&p.replicas))
                            .with_adding_replicas(broker_ids(&p.adding_replicas))
                            .with_removing_replicas(broker_ids(&p.removing_replicas)),
                    )
                })
                .collect();
            (!partitions.is_empty()).then(|| {
                OngoingTopicReassignment::default()
                    .with_name(topic_name(&topic.name))
                    .with_partitions(partitions)
            })
        })
        .collect()
}

fn broker_ids(ids: &[i32]) -> Vec<BrokerId> {
    ids.iter().copied().map(BrokerId).collect()
}

fn topic_name(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_string()))
}

//! ElectLeaders (KIP-460): move leaderships back to the preferred replicas, or elect an
//! out-of-sync replica where a partition has no leader (unclean). The controller decides
//! and commits the changes; the answer says, per partition, what happened.

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::elect_leaders_response::{PartitionResult, ReplicaElectionResult};
use kafka_protocol::messages::{
    ElectLeadersRequest, ElectLeadersResponse, ResponseKind, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use sluice_protocol::kafka_protocol;

use crate::broker::Broker;
use crate::controller::ElectionOutcome;
use crate::controller::elections::Election;
use crate::request::{Reply, RequestContext};

/// ElectLeaders' election types.
const PREFERRED: i8 = 0;
const UNCLEAN: i8 = 1;

/// Handles ElectLeaders.
pub async fn elect_leaders(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    req: ElectLeadersRequest,
) -> Reply {
    let version = ctx.api_version();
    let election = match req.election_type {
        PREFERRED => Election::Preferred,
        UNCLEAN => Election::Unclean,
        _ => {
            return Reply::Now(ResponseKind::ElectLeaders(
                ElectLeadersResponse::default()
                    .with_error_code(ResponseError::InvalidRequest.code()),
            ));
        }
    };
    let image = broker.metadata.image();
    // Every partition when none is named; then partitions that needed no election are
    // left out of the answer, as in Kafka.
    let all = req.topic_partitions.is_none();
    let named: Vec<(String, i32)> = match &req.topic_partitions {
        None => image
            .topics()
            .flat_map(|t| (0..t.partition_count()).map(move |p| (t.name.clone(), p)))
            .collect(),
        Some(topics) => topics
            .iter()
            .flat_map(|t| t.partitions.iter().map(move |&p| (t.topic.to_string(), p)))
            .collect(),
    };
    let targets: Vec<(uuid::Uuid, i32)> = named
        .iter()
        .map(|(name, p)| (image.topic(name).map_or(uuid::Uuid::nil(), |t| t.id), *p))
        .collect();
    let broker = broker.clone();
    Reply::Later(tokio::spawn(async move {
        let outcomes = match broker.controller.elect(&targets, election).await {
            Ok(outcomes) => outcomes,
            Err(e) => {
                tracing::warn!(error = %e, "leader election could not be committed");
                return ResponseKind::ElectLeaders(
                    ElectLeadersResponse::default()
                        .with_error_code(ResponseError::NotController.code()),
                );
            }
        };
        let mut results: Vec<ReplicaElectionResult> = Vec::new();
        for ((topic, partition), outcome) in named.into_iter().zip(outcomes) {
            let (code, message) = outcome_code(outcome, election, version);
            if all && code == ResponseError::ElectionNotNeeded.code() {
                continue;
            }
            let result = PartitionResult::default()
                .with_partition_id(partition)
                .with_error_code(code)
                .with_error_message(message.map(StrBytes::from_static_str));
            match results.iter_mut().find(|r| r.topic.as_str() == topic) {
                Some(r) => r.partition_result.push(result),
                None => results.push(
                    ReplicaElectionResult::default()
                        .with_topic(TopicName(StrBytes::from_string(topic)))
                        .with_partition_result(vec![result]),
                ),
            }
        }
        ResponseKind::ElectLeaders(
            ElectLeadersResponse::default().with_replica_election_results(results),
        )
    }))
}

/// Kafka's answer for one partition's election.
fn outcome_code(
    outcome: ElectionOutcome,
    election: Election,
    version: i16,
) -> (i16, Option<&'static str>) {
    match outcome {
        ElectionOutcome::Elected(_) => (0, None),
        // v0 knew no ELECTION_NOT_NEEDED: the preferred replica leads, which is success.
        ElectionOutcome::AlreadyLeading if version == 0 => (0, None),
        ElectionOutcome::AlreadyLeading => (
            ResponseError::ElectionNotNeeded.code(),
            Some("Leader election not needed for topic partition."),
        ),
        ElectionOutcome::NotElected if election == Election::Preferred => (
            ResponseError::PreferredLeaderNotAvailable.code(),
            Some(
                "Failed to elect leader for partition: the preferred replica is not in sync or not alive.",
            ),
        ),
        ElectionOutcome::NotElected => (
            ResponseError::EligibleLeadersNotAvailable.code(),
            Some("Failed to elect leader for partition: no replica is alive."),
        ),
        ElectionOutcome::UnknownPartition => (
            ResponseError::UnknownTopicOrPartition.code(),
            Some("The partition does not exist."),
        ),
    }
}

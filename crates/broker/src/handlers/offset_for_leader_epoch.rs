//! OffsetForLeaderEpoch (KIP-101, KIP-320): where a leader epoch ends in the leader's log.
//! Clients ask after a leader change whether the records they consumed are still there —
//! a position past the end of its epoch on the new leader means the log was truncated —
//! and followers may ask where to truncate (they learn it from Fetch's diverging epoch
//! too). The answer is the largest epoch at or below the one asked for that has data
//! here, and the offset where it ends, from the log's leader-epoch cache (Kafka's
//! `Partition.lastOffsetForLeaderEpoch`).

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use kafka_protocol::messages::{
    OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse, ResponseKind,
};
use sluice_protocol::kafka_protocol;
use sluice_protocol::model::LeaderEpoch;

use crate::broker::Broker;
use crate::request::{Reply, RequestContext};

/// Handles OffsetForLeaderEpoch.
pub async fn offset_for_leader_epoch(
    broker: &Arc<Broker>,
    _ctx: &RequestContext,
    req: OffsetForLeaderEpochRequest,
) -> Reply {
    let image = broker.metadata.image();
    let topics = req
        .topics
        .into_iter()
        .map(|topic| {
            let found = image.topic(&topic.topic);
            let partitions = topic
                .partitions
                .into_iter()
                .map(|p| {
                    let answer = EpochEndOffset::default()
                        .with_partition(p.partition)
                        .with_leader_epoch(-1)
                        .with_end_offset(-1);
                    let leader = found
                        .ok_or(ResponseError::UnknownTopicOrPartition)
                        .and_then(|t| {
                            broker
                                .replicas
                                .leader_partition(
                                    t,
                                    p.partition,
                                    LeaderEpoch(p.current_leader_epoch),
                                )
                                .map_err(|e| e.code)
                        });
                    match leader {
                        Ok(partition) => {
                            let (epoch, end_offset) =
                                partition.end_offset_for_epoch(p.leader_epoch);
                            answer.with_leader_epoch(epoch).with_end_offset(end_offset)
                        }
                        Err(code) => answer.with_error_code(code.code()),
                    }
                })
                .collect();
            OffsetForLeaderTopicResult::default()
                .with_topic(topic.topic)
                .with_partitions(partitions)
        })
        .collect();
    Reply::Now(ResponseKind::OffsetForLeaderEpoch(
        OffsetForLeaderEpochResponse::default().with_topics(topics),
    ))
}

//! OffsetFetch: reading committed offsets.

use std::collections::HashMap;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestGroup;
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{OffsetFetchRequest, OffsetFetchResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use sluice_protocol::model::TopicPartition;

use crate::offsets::OffsetAndMetadata;
use crate::shard::GroupShard;
use crate::state::GroupState;

/// One partition of an OffsetFetch answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FetchedPartition {
    pub partition: i32,
    /// -1 when nothing is committed.
    pub offset: i64,
    /// -1 when unknown.
    pub leader_epoch: i32,
    pub metadata: String,
    /// UNSTABLE_OFFSET_COMMIT for a stable fetch of a partition with a
    /// pending transactional offset, else 0.
    pub error: i16,
}

impl FetchedPartition {
    fn of(partition: i32, o: &OffsetAndMetadata) -> Self {
        Self {
            partition,
            offset: o.offset,
            leader_epoch: o.leader_epoch.unwrap_or(-1),
            metadata: o.metadata.clone(),
            error: 0,
        }
    }

    fn none(partition: i32, error: i16) -> Self {
        Self {
            partition,
            offset: -1,
            leader_epoch: -1,
            metadata: String::new(),
            error,
        }
    }
}

/// The offsets of `topics` (or of every committed partition when `None`).
/// Unknown groups and partitions read as offset -1, as in Kafka. With
/// `require_stable`, a partition with a pending transactional offset answers
/// UNSTABLE_OFFSET_COMMIT (Kafka's rule); otherwise pending transactional
/// offsets are invisible.
pub(crate) fn fetch(
    state: &GroupShard,
    group_id: &str,
    topics: Option<&[(String, Vec<i32>)]>,
    require_stable: bool,
) -> Vec<(String, Vec<FetchedPartition>)> {
    let unstable = |tp: &TopicPartition| {
        require_stable
            && state
                .groups
                .get(group_id)
                .is_some_and(|g| g.offsets.has_txn_pending(tp))
    };
    let group = state
        .groups
        .get(group_id)
        .filter(|g| !g.is(GroupState::Dead));
    match topics {
        None => {
            let Some(g) = group else {
                return Vec::new();
            };
            let mut out: Vec<(String, Vec<FetchedPartition>)> = Vec::new();
            for (tp, o) in g.offsets.iter() {
                let fetched = if unstable(tp) {
                    FetchedPartition::none(tp.partition, ResponseError::UnstableOffsetCommit.code())
                } else {
                    FetchedPartition::of(tp.partition, o)
                };
                match out.last_mut() {
                    Some((t, partitions)) if *t == tp.topic => partitions.push(fetched),
                    _ => out.push((tp.topic.clone(), vec![fetched])),
                }
            }
            out
        }
        Some(topics) => topics
            .iter()
            .map(|(topic, partitions)| {
                let fetched = partitions
                    .iter()
                    .map(|&partition| {
                        let tp = TopicPartition::new(topic.as_str(), partition);
                        if group.is_some() && unstable(&tp) {
                            return FetchedPartition::none(
                                partition,
                                ResponseError::UnstableOffsetCommit.code(),
                            );
                        }
                        match group.and_then(|g| g.offsets.get(&tp)) {
                            Some(o) => FetchedPartition::of(partition, o),
                            None => FetchedPartition::none(partition, 0),
                        }
                    })
                    .collect();
                (topic.clone(), fetched)
            })
            .collect(),
    }
}

/// Topics of an OffsetFetch v1-v7 answer (one group).
pub(crate) fn single_group_topics(
    fetched: Vec<(String, Vec<FetchedPartition>)>,
) -> Vec<OffsetFetchResponseTopic> {
    fetched
        .into_iter()
        .map(|(name, partitions)| {
            OffsetFetchResponseTopic::default()
                .with_name(TopicName(StrBytes::from_string(name)))
                .with_partitions(
                    partitions
                        .into_iter()
                        .map(|p| {
                            OffsetFetchResponsePartition::default()
                                .with_partition_index(p.partition)
                                .with_error_code(p.error)
                                .with_committed_offset(p.offset)
                                .with_committed_leader_epoch(p.leader_epoch)
                                .with_metadata(Some(StrBytes::from_string(p.metadata)))
                        })
                        .collect(),
                )
        })
        .collect()
}

/// The OffsetFetch v1-v7 answer when the group cannot be read here
/// (NOT_COORDINATOR, COORDINATOR_LOAD_IN_PROGRESS): from v2 a top-level
/// error; v1 has none, so each requested partition carries it, as in Kafka.
pub(crate) fn single_group_error(
    req: &OffsetFetchRequest,
    version: i16,
    error: ResponseError,
) -> OffsetFetchResponse {
    if version >= 2 {
        return OffsetFetchResponse::default().with_error_code(error.code());
    }
    let fetched = req
        .topics
        .iter()
        .flatten()
        .map(|t| {
            let partitions = t
                .partition_indexes
                .iter()
                .map(|&p| FetchedPartition::none(p, error.code()))
                .collect();
            (t.name.as_str().to_owned(), partitions)
        })
        .collect();
    OffsetFetchResponse::default().with_topics(single_group_topics(fetched))
}

/// One group of an OffsetFetch v8+ answer; topic ids are echoed from the
/// request. A group that cannot be read here carries the error.
pub(crate) fn group_response(
    request: &OffsetFetchRequestGroup,
    fetched: Result<Vec<(String, Vec<FetchedPartition>)>, ResponseError>,
) -> OffsetFetchResponseGroup {
    let fetched = match fetched {
        Ok(fetched) => fetched,
        Err(e) => {
            return OffsetFetchResponseGroup::default()
                .with_group_id(request.group_id.clone())
                .with_error_code(e.code());
        }
    };
    let topic_ids: HashMap<&str, _> = request
        .topics
        .iter()
        .flatten()
        .map(|t| (t.name.as_str(), t.topic_id))
        .collect();
    let topics = fetched
        .into_iter()
        .map(|(name, partitions)| {
            let topic_id = topic_ids.get(name.as_str()).copied().unwrap_or_default();
            OffsetFetchResponseTopics::default()
                .with_name(TopicName(StrBytes::from_string(name)))
                .with_topic_id(topic_id)
                .with_partitions(
                    partitions
                        .into_iter()
                        .map(|p| {
                            OffsetFetchResponsePartitions::default()
                                .with_partition_index(p.partition)
                                .with_error_code(p.error)
                                .with_committed_offset(p.offset)
                                .with_committed_leader_epoch(p.leader_epoch)
                                .with_metadata(Some(StrBytes::from_string(p.metadata)))
                        })
                        .collect(),
                )
        })
        .collect();
    OffsetFetchResponseGroup::default()
        .with_group_id(request.group_id.clone())
        .with_topics(topics)
}

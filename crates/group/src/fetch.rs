//! OffsetFetch: reading committed offsets.

use std::collections::HashMap;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::TopicName;
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestGroup;
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::protocol::StrBytes;

use crate::coordinator::State;
use crate::offsets::OffsetAndMetadata;
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
    state: &State,
    group_id: &str,
    topics: Option<&[(String, Vec<i32>)]>,
    require_stable: bool,
) -> Vec<(String, Vec<FetchedPartition>)> {
    let unstable = |topic: &str, partition: i32| {
        require_stable
            && state
                .groups
                .get(group_id)
                .is_some_and(|g| g.offsets.has_txn_pending(topic, partition))
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
            for (topic, partition, o) in g.offsets.iter() {
                let fetched = if unstable(topic, partition) {
                    FetchedPartition::none(partition, ResponseError::UnstableOffsetCommit.code())
                } else {
                    FetchedPartition::of(partition, o)
                };
                match out.last_mut() {
                    Some((t, partitions)) if t == topic => partitions.push(fetched),
                    _ => out.push((topic.to_owned(), vec![fetched])),
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
                        if group.is_some() && unstable(topic, partition) {
                            return FetchedPartition::none(
                                partition,
                                ResponseError::UnstableOffsetCommit.code(),
                            );
                        }
                        match group.and_then(|g| g.offsets.get(topic, partition)) {
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

/// One group of an OffsetFetch v8+ answer; topic ids are echoed from the request.
pub(crate) fn group_response(
    request: &OffsetFetchRequestGroup,
    fetched: Vec<(String, Vec<FetchedPartition>)>,
) -> OffsetFetchResponseGroup {
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

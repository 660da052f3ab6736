//! OffsetCommit: validating the committer, writing the offsets, and making
//! them visible once durable.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::{OffsetCommitRequest, OffsetCommitResponse};
use tokio::sync::oneshot;

use crate::coordinator::State;
use crate::group::Group;
use crate::now_ms;
use crate::offsets::OffsetAndMetadata;
use crate::rebalance::reschedule_session;
use crate::records::{GroupRecordKey, OffsetCommitValue};
use crate::state::GroupState;

/// The plan for one OffsetCommit request.
pub(crate) struct CommitPlan {
    /// Per partition, in request order: `Some(error)` for partitions refused
    /// up front (metadata too large), `None` for those being written.
    pub partition_errors: Vec<Vec<Option<ResponseError>>>,
    /// Resolves once the accepted partitions are durable (or the write failed).
    pub written: Option<oneshot::Receiver<Result<(), ResponseError>>>,
}

/// Kafka's `validateOffsetCommit` for classic groups.
fn validate(
    g: &Group,
    member_id: &str,
    instance_id: Option<&str>,
    generation: i32,
) -> Result<(), ResponseError> {
    if g.is(GroupState::Dead) {
        return Err(ResponseError::CoordinatorNotAvailable);
    }
    if generation < 0 && g.is(GroupState::Empty) {
        // Admin clients and consumers without group management (assign()).
        return Ok(());
    }
    if generation >= 0 || !member_id.is_empty() || instance_id.is_some() {
        g.validate_member(member_id, instance_id)?;
        if generation != g.generation {
            return Err(ResponseError::IllegalGeneration);
        }
    } else if !g.is(GroupState::Empty) {
        // Without member id and generation only an empty group accepts commits.
        return Err(ResponseError::UnknownMemberId);
    }
    if g.is(GroupState::CompletingRebalance) {
        // The member knows the new generation but has no assignment yet.
        return Err(ResponseError::RebalanceInProgress);
    }
    Ok(())
}

/// Java's `String.length()`: the metadata limit counts UTF-16 code units.
pub(crate) fn java_length(s: &str) -> usize {
    s.encode_utf16().count()
}

pub(crate) fn commit(
    state: &mut State,
    req: &OffsetCommitRequest,
    version: i16,
) -> Result<CommitPlan, ResponseError> {
    let State {
        groups,
        sched,
        config,
    } = state;
    let group_id = req.group_id.as_str().to_owned();
    let generation = req.generation_id_or_member_epoch;
    let member_id = req.member_id.as_str();
    let instance_id = req.group_instance_id.as_ref().map(|i| i.as_str());

    if !groups.contains_key(&group_id) {
        if generation >= 0 {
            return Err(if version >= 9 {
                ResponseError::GroupIdNotFound
            } else {
                ResponseError::IllegalGeneration
            });
        }
        // A "simple" group: offsets only, no membership.
        groups.insert(group_id.clone(), Group::new(&group_id, now_ms()));
    }
    let g = groups
        .get_mut(&group_id)
        .ok_or(ResponseError::CoordinatorNotAvailable)?;
    validate(g, member_id, instance_id, generation)?;

    // A commit proves the member is alive, as a heartbeat does.
    if matches!(g.state, GroupState::Stable | GroupState::PreparingRebalance)
        && g.members.contains_key(member_id)
    {
        reschedule_session(g, sched, member_id);
    }

    let now = now_ms();
    let expire_timestamp_ms =
        (req.retention_time_ms != -1).then(|| now.saturating_add(req.retention_time_ms));
    let log_order = g.offsets.next_order();
    let mut partition_errors = Vec::with_capacity(req.topics.len());
    let mut accepted: Vec<(String, i32, OffsetAndMetadata)> = Vec::new();
    for topic in &req.topics {
        let mut errors = Vec::with_capacity(topic.partitions.len());
        for p in &topic.partitions {
            let metadata = p
                .committed_metadata
                .as_ref()
                .map(|m| m.as_str().to_owned())
                .unwrap_or_default();
            if java_length(&metadata) > config.max_metadata_bytes {
                errors.push(Some(ResponseError::OffsetMetadataTooLarge));
                continue;
            }
            errors.push(None);
            accepted.push((
                topic.name.as_str().to_owned(),
                p.partition_index,
                OffsetAndMetadata {
                    offset: p.committed_offset,
                    leader_epoch: (p.committed_leader_epoch != -1)
                        .then_some(p.committed_leader_epoch),
                    metadata,
                    commit_timestamp_ms: now,
                    expire_timestamp_ms,
                    log_order,
                },
            ));
        }
        partition_errors.push(errors);
    }
    if accepted.is_empty() {
        return Ok(CommitPlan {
            partition_errors,
            written: None,
        });
    }

    let records = accepted
        .iter()
        .map(|(topic, partition, o)| {
            let key = GroupRecordKey::OffsetCommit {
                group: group_id.clone(),
                topic: topic.clone(),
                partition: *partition,
            };
            let value = OffsetCommitValue {
                offset: o.offset,
                leader_epoch: o.leader_epoch.unwrap_or(-1),
                metadata: o.metadata.clone(),
                commit_timestamp: o.commit_timestamp_ms,
                expire_timestamp: o.expire_timestamp_ms.unwrap_or(-1),
            };
            Ok((key.encode()?, Some(value.encode()?)))
        })
        .collect::<Result<Vec<_>, crate::error::CodecError>>()
        .map_err(Into::into);
    for (topic, partition, _) in &accepted {
        g.offsets.add_pending(topic, *partition);
    }
    let (tx, rx) = oneshot::channel();
    let write_group = group_id.clone();
    sched.write(
        &write_group,
        records,
        Box::new(move |state, result| {
            if let Some(g) = state.groups.get_mut(&group_id) {
                for (topic, partition, offset) in accepted {
                    g.offsets.complete_pending(&topic, partition);
                    if result.is_ok() {
                        g.offsets.put(&topic, partition, offset);
                    }
                }
                if result.is_err() && is_unused_simple_group(g) {
                    // Undo the creation of a simple group that never got an offset.
                    state.groups.remove(&group_id);
                }
            }
            let _ = tx.send(result.map_err(|e| e.response_error()));
        }),
    );
    Ok(CommitPlan {
        partition_errors,
        written: Some(rx),
    })
}

pub(crate) fn is_unused_simple_group(g: &Group) -> bool {
    g.protocol_type.is_none()
        && g.generation == 0
        && g.members.is_empty()
        && g.pending_join.is_empty()
        && g.is(GroupState::Empty)
        && !g.offsets.has_offsets()
}

/// The OffsetCommit answer: a failed write fails every partition (as in
/// Kafka), otherwise each partition carries its own outcome.
pub(crate) fn response(
    req: &OffsetCommitRequest,
    partition_errors: Option<&[Vec<Option<ResponseError>>]>,
    write_error: Option<ResponseError>,
) -> OffsetCommitResponse {
    let topics = req
        .topics
        .iter()
        .enumerate()
        .map(|(ti, topic)| {
            let partitions = topic
                .partitions
                .iter()
                .enumerate()
                .map(|(pi, p)| {
                    // A failed write fails the whole request, as in Kafka.
                    let error = write_error.or_else(|| {
                        partition_errors
                            .and_then(|e| e.get(ti))
                            .and_then(|e| e.get(pi))
                            .copied()
                            .flatten()
                    });
                    OffsetCommitResponsePartition::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(error.map_or(0, |e| e.code()))
                })
                .collect();
            OffsetCommitResponseTopic::default()
                .with_name(topic.name.clone())
                .with_topic_id(topic.topic_id)
                .with_partitions(partitions)
        })
        .collect();
    OffsetCommitResponse::default().with_topics(topics)
}

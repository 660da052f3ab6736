//! OffsetCommit: validating the committer and writing the offsets, which
//! become visible when the records are replayed, once durable.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::{OffsetCommitRequest, OffsetCommitResponse};
use sluice_protocol::model::{ProducerIdAndEpoch, TopicPartition};
use tokio::sync::oneshot;

use crate::CodecError;
use crate::group::Group;
use crate::rebalance::reschedule_session;
use crate::records::{OffsetCommitValue, offset_record};
use crate::scheduler::{AfterWrite, Scheduler};
use crate::shard::GroupShard;
use crate::state::GroupState;

/// The plan for one OffsetCommit or TxnOffsetCommit request.
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
    state: &mut GroupShard,
    req: &OffsetCommitRequest,
    version: i16,
) -> Result<CommitPlan, ResponseError> {
    let GroupShard {
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
        groups.insert(group_id.clone(), Group::new(&group_id, sched.now_ms()));
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

    let now = sched.now_ms();
    let expire_timestamp = if req.retention_time_ms == -1 {
        -1
    } else {
        now.saturating_add(req.retention_time_ms)
    };
    let requested = req.topics.iter().map(|t| {
        let partitions = t.partitions.iter().map(|p| RequestedOffset {
            partition: p.partition_index,
            offset: p.committed_offset,
            leader_epoch: p.committed_leader_epoch,
            metadata: p.committed_metadata.as_ref().map(|m| m.as_str()),
        });
        (t.name.as_str(), partitions.collect())
    });
    let accepted = accept_offsets(requested, config.max_metadata_bytes, now, expire_timestamp);
    Ok(write_offsets(g, sched, group_id, None, accepted))
}

/// One partition's offset as an OffsetCommit or TxnOffsetCommit request carries it.
pub(crate) struct RequestedOffset<'r> {
    pub partition: i32,
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: Option<&'r str>,
}

/// A commit request checked partition by partition.
pub(crate) struct AcceptedOffsets {
    /// Per topic and partition, in request order: the error of a partition refused up
    /// front, `None` for one being written.
    partition_errors: Vec<Vec<Option<ResponseError>>>,
    /// The offsets to write.
    offsets: Vec<(TopicPartition, OffsetCommitValue)>,
}

impl AcceptedOffsets {
    pub(crate) fn is_empty(&self) -> bool {
        self.offsets.is_empty()
    }

    /// The plan when nothing is written: every partition refused (or none asked for).
    pub(crate) fn nothing_to_write(self) -> CommitPlan {
        CommitPlan {
            partition_errors: self.partition_errors,
            written: None,
        }
    }
}

/// Refuses each partition whose metadata is longer than `max_metadata_bytes` (Kafka's
/// `offset.metadata.max.bytes`) and accepts the rest, stamped with the commit and expiry
/// times.
pub(crate) fn accept_offsets<'r>(
    topics: impl Iterator<Item = (&'r str, Vec<RequestedOffset<'r>>)>,
    max_metadata_bytes: usize,
    commit_timestamp: i64,
    expire_timestamp: i64,
) -> AcceptedOffsets {
    let mut partition_errors = Vec::new();
    let mut offsets = Vec::new();
    for (topic, partitions) in topics {
        let mut errors = Vec::with_capacity(partitions.len());
        for p in partitions {
            let metadata = p.metadata.unwrap_or_default().to_owned();
            if java_length(&metadata) > max_metadata_bytes {
                errors.push(Some(ResponseError::OffsetMetadataTooLarge));
                continue;
            }
            errors.push(None);
            offsets.push((
                TopicPartition::new(topic, p.partition),
                OffsetCommitValue {
                    offset: p.offset,
                    leader_epoch: p.leader_epoch,
                    metadata,
                    commit_timestamp,
                    expire_timestamp,
                },
            ));
        }
        partition_errors.push(errors);
    }
    AcceptedOffsets {
        partition_errors,
        offsets,
    }
}

/// Writes the accepted offsets of `group_id` as one batch (in `producer`'s transaction
/// when given). They are in flight until the write ends: a stable OffsetFetch waits for
/// them and expiry skips them. The plan resolves when they are durable or the write failed.
pub(crate) fn write_offsets(
    g: &mut Group,
    sched: &mut Scheduler,
    group_id: String,
    producer: Option<ProducerIdAndEpoch>,
    accepted: AcceptedOffsets,
) -> CommitPlan {
    if accepted.is_empty() {
        return accepted.nothing_to_write();
    }
    let AcceptedOffsets {
        partition_errors,
        offsets,
    } = accepted;
    let records = offsets
        .iter()
        .map(|(tp, value)| offset_record(&group_id, tp, value))
        .collect::<Result<Vec<_>, CodecError>>()
        .map_err(Into::into);
    let written: Vec<TopicPartition> = offsets.into_iter().map(|(tp, _)| tp).collect();
    for tp in &written {
        g.offsets.start_write(tp);
    }
    let (tx, rx) = oneshot::channel();
    let write_group = group_id.clone();
    let then: AfterWrite = Box::new(move |shard, result| {
        finish_offset_writes(shard, &group_id, &written, result.is_ok());
        let _ = tx.send(result.map_err(|e| e.response_error()));
    });
    match producer {
        Some(producer) => sched.write_transactional(&write_group, producer, records, then),
        None => sched.write(&write_group, records, then),
    }
    CommitPlan {
        partition_errors,
        written: Some(rx),
    }
}

/// Offset writes of `group_id` finished (the records, if durable, were
/// replayed). A simple group created for a write that failed, and left
/// without any offset, is removed again.
pub(crate) fn finish_offset_writes(
    shard: &mut GroupShard,
    group_id: &str,
    written: &[TopicPartition],
    durable: bool,
) {
    if let Some(g) = shard.groups.get_mut(group_id) {
        for tp in written {
            g.offsets.finish_write(tp);
        }
        if !durable && is_unused_simple_group(g) {
            shard.groups.remove(group_id);
        }
    }
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

//! TxnOffsetCommit: offsets committed inside a producer's transaction.
//!
//! The offsets are written to `__consumer_offsets` as a transactional batch
//! of the producer; replayed, they are kept aside, invisible to OffsetFetch,
//! until the broker has written the transaction's COMMIT or ABORT marker to
//! the group's partition and calls `complete_transaction`, which replays it. This is Kafka's
//! pending-transactional-offsets model: on commit an offset becomes the
//! committed one unless a plain OffsetCommit of the partition was written
//! after it; on abort it is dropped.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use kafka_protocol::messages::{TxnOffsetCommitRequest, TxnOffsetCommitResponse};
use sluice_protocol::model::ProducerIdAndEpoch;

use crate::commit::{
    CommitPlan, RequestedOffset, accept_offsets, is_unused_simple_group, write_offsets,
};
use crate::group::Group;
use crate::shard::GroupShard;
use crate::state::GroupState;

/// Kafka's `validateOffsetCommit` of a classic group for a transactional
/// commit: unlike OffsetCommit, a commit without member id and generation is
/// accepted from a non-empty group (TxnOffsetCommit v0-2 carry neither), and
/// a group completing a rebalance takes it.
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
        return Ok(());
    }
    if generation >= 0 || !member_id.is_empty() || instance_id.is_some() {
        g.validate_member(member_id, instance_id)?;
        if generation != g.generation {
            return Err(ResponseError::IllegalGeneration);
        }
    }
    Ok(())
}

pub(crate) fn txn_commit(
    state: &mut GroupShard,
    req: &TxnOffsetCommitRequest,
    version: i16,
) -> Result<CommitPlan, ResponseError> {
    let GroupShard {
        groups,
        sched,
        config,
    } = state;
    let group_id = req.group_id.as_str().to_owned();
    if group_id.is_empty() {
        return Err(ResponseError::InvalidGroupId);
    }
    // Versions 0-2 carry no member id, generation or instance id.
    let (generation, member_id, instance_id) = if version >= 3 {
        (
            req.generation_id,
            req.member_id.as_str(),
            req.group_instance_id.as_ref().map(|i| i.as_str()),
        )
    } else {
        (-1, "", None)
    };
    let producer = ProducerIdAndEpoch::new(req.producer_id.0, req.producer_epoch);

    if !groups.contains_key(&group_id) {
        if generation >= 0 {
            return Err(ResponseError::IllegalGeneration);
        }
        // A transaction may commit for a group nobody joined: a simple group.
        groups.insert(group_id.clone(), Group::new(&group_id, sched.now_ms()));
    }
    let g = groups
        .get_mut(&group_id)
        .ok_or(ResponseError::CoordinatorNotAvailable)?;
    if let Err(e) = validate(g, member_id, instance_id, generation) {
        if is_unused_simple_group(g) {
            groups.remove(&group_id);
        }
        return Err(e);
    }

    let requested = req.topics.iter().map(|t| {
        let partitions = t.partitions.iter().map(|p| RequestedOffset {
            partition: p.partition_index,
            offset: p.committed_offset,
            leader_epoch: p.committed_leader_epoch,
            metadata: p.committed_metadata.as_ref().map(|m| m.as_str()),
        });
        (t.name.as_str(), partitions.collect())
    });
    let accepted = accept_offsets(requested, config.max_metadata_bytes, sched.now_ms(), -1);
    if accepted.is_empty() {
        if is_unused_simple_group(g) {
            groups.remove(&group_id);
        }
        return Ok(accepted.nothing_to_write());
    }
    Ok(write_offsets(g, sched, group_id, Some(producer), accepted))
}

/// The TxnOffsetCommit answer: a request-level error (validation, failed
/// write) is reported on every partition, as Kafka does.
pub(crate) fn response(
    req: &TxnOffsetCommitRequest,
    partition_errors: Option<&[Vec<Option<ResponseError>>]>,
    request_error: Option<ResponseError>,
) -> TxnOffsetCommitResponse {
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
                    let error = request_error.or_else(|| {
                        partition_errors
                            .and_then(|e| e.get(ti))
                            .and_then(|e| e.get(pi))
                            .copied()
                            .flatten()
                    });
                    TxnOffsetCommitResponsePartition::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(error.map_or(0, |e| e.code()))
                })
                .collect();
            TxnOffsetCommitResponseTopic::default()
                .with_name(topic.name.clone())
                .with_partitions(partitions)
        })
        .collect();
    TxnOffsetCommitResponse::default().with_topics(topics)
}

//! Administrative group APIs: DescribeGroups, ListGroups, DeleteGroups and
//! OffsetDelete.

use std::collections::HashSet;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::GroupId;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::protocol::StrBytes;
use sluice_coordinator::{CoordinatorRecord, WriteError};
use sluice_protocol::model::TopicPartition;
use tokio::sync::oneshot;

use crate::CodecError;
use crate::records::{group_tombstone, offset_tombstone};
use crate::reply::Reply;
use crate::scheduler::Scheduler;
use crate::shard::GroupShard;
use crate::state::GroupState;

/// Operations an unrestricted principal may perform on a group (READ, DELETE, DESCRIBE as
/// a bit field), which is what Kafka 3.7 reports when no authorizer is configured (group
/// configs, and with them DESCRIBE_CONFIGS and ALTER_CONFIGS, came in 4.0; Sluice has none).
pub const GROUP_AUTHORIZED_OPERATIONS: i32 = (1 << 3) | (1 << 6) | (1 << 8);

fn strbytes(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_owned())
}

pub(crate) fn describe(
    state: &GroupShard,
    group_id: &str,
    version: i16,
    include_authorized_operations: bool,
) -> DescribedGroup {
    let authorized_operations = if include_authorized_operations && version >= 3 {
        GROUP_AUTHORIZED_OPERATIONS
    } else {
        i32::MIN
    };
    let base = DescribedGroup::default()
        .with_group_id(GroupId(strbytes(group_id)))
        .with_authorized_operations(authorized_operations);
    let Some(g) = state
        .groups
        .get(group_id)
        .filter(|g| !g.is(GroupState::Dead))
    else {
        let described = base.with_group_state(strbytes(GroupState::Dead.as_str()));
        // KIP-1043: version 6 reports unknown groups as an error.
        return if version >= 6 {
            described
                .with_error_code(ResponseError::GroupIdNotFound.code())
                .with_error_message(Some(StrBytes::from_string(format!(
                    "Group {group_id} not found."
                ))))
        } else {
            described
        };
    };
    // Member metadata is only meaningful once the protocol is settled.
    let stable_protocol = g
        .protocol_name
        .as_deref()
        .filter(|_| g.is(GroupState::Stable));
    let members = g
        .members
        .values()
        .map(|m| {
            DescribedGroupMember::default()
                .with_member_id(strbytes(&m.id))
                .with_group_instance_id(m.instance_id.as_deref().map(strbytes))
                .with_client_id(strbytes(&m.client_id))
                .with_client_host(strbytes(&m.client_host))
                .with_member_metadata(stable_protocol.map(|p| m.metadata(p)).unwrap_or_default())
                .with_member_assignment(m.assignment.clone())
        })
        .collect();
    base.with_group_state(strbytes(g.state.as_str()))
        .with_protocol_type(strbytes(g.protocol_type.as_deref().unwrap_or_default()))
        .with_protocol_data(strbytes(stable_protocol.unwrap_or_default()))
        .with_members(members)
}

/// Groups matching the (case-insensitive) state and type filters; an empty
/// filter matches everything. Every group here is a "classic" group.
pub(crate) fn list(
    state: &GroupShard,
    states_filter: &[StrBytes],
    types_filter: &[StrBytes],
) -> Vec<ListedGroup> {
    let states: HashSet<String> = states_filter
        .iter()
        .map(|s| s.as_str().trim().to_lowercase())
        .collect();
    let type_matches = types_filter.is_empty()
        || types_filter
            .iter()
            .any(|t| t.as_str().trim().eq_ignore_ascii_case("classic"));
    if !type_matches {
        return Vec::new();
    }
    let mut groups: Vec<ListedGroup> = state
        .groups
        .values()
        .filter(|g| !g.is(GroupState::Dead))
        .filter(|g| states.is_empty() || states.contains(&g.state.as_str().to_lowercase()))
        .map(|g| {
            ListedGroup::default()
                .with_group_id(GroupId(strbytes(&g.id)))
                .with_protocol_type(strbytes(g.protocol_type.as_deref().unwrap_or_default()))
                .with_group_state(strbytes(g.state.as_str()))
                .with_group_type(StrBytes::from_static_str("classic"))
        })
        .collect();
    groups.sort_by(|a, b| a.group_id.as_str().cmp(b.group_id.as_str()));
    groups
}

/// Deletes an Empty group and its offsets. The group is Dead while its
/// tombstones are written (so nobody joins it meanwhile); it disappears once
/// they are durable and comes back Empty if the write fails.
pub(crate) fn delete_group(state: &mut GroupShard, group_id: &str) -> Reply<i16> {
    let GroupShard { groups, sched, .. } = state;
    let Some(g) = groups.get_mut(group_id) else {
        return Reply::Now(ResponseError::GroupIdNotFound.code());
    };
    match g.state {
        GroupState::Dead => return Reply::Now(ResponseError::GroupIdNotFound.code()),
        GroupState::Stable | GroupState::PreparingRebalance | GroupState::CompletingRebalance => {
            return Reply::Now(ResponseError::NonEmptyGroup.code());
        }
        GroupState::Empty => {}
    }
    let records = g
        .offsets
        .all_partitions()
        .iter()
        .map(|tp| offset_tombstone(group_id, tp))
        .chain(std::iter::once(group_tombstone(group_id)))
        .collect::<Result<Vec<_>, CodecError>>()
        .map_err(Into::into);
    g.transition_to(GroupState::Dead, sched.now_ms());
    let (tx, rx) = oneshot::channel();
    remove_when_written(
        sched,
        group_id,
        records,
        Box::new(move |result| {
            let _ = tx.send(result.map_or_else(|e| e.code(), |()| 0));
        }),
    );
    Reply::Wait(rx)
}

/// Writes the tombstones of a Dead group; their replay removes it. If the
/// write fails the group returns to Empty. `done` learns the outcome.
pub(crate) fn remove_when_written(
    sched: &mut Scheduler,
    group_id: &str,
    records: Result<Vec<CoordinatorRecord>, WriteError>,
    done: Box<dyn FnOnce(Result<(), ResponseError>) + Send>,
) {
    let owned = group_id.to_owned();
    sched.write(
        group_id,
        records,
        Box::new(move |shard, result| {
            if let Err(e) = &result {
                tracing::warn!(group = %owned, error = %e, "failed to delete group");
                if let Some(g) = shard
                    .groups
                    .get_mut(&owned)
                    .filter(|g| g.is(GroupState::Dead))
                {
                    // Dead -> Empty is no Kafka transition: this undoes the deletion.
                    g.state = GroupState::Empty;
                    g.previous_state = GroupState::Empty;
                }
            }
            done(result.map_err(|e| e.response_error()));
        }),
    );
}

/// Result of OffsetDelete for one group.
pub(crate) struct OffsetDeletePlan {
    /// Per topic, per partition: the error code.
    pub partition_errors: Vec<Vec<i16>>,
    /// Resolves with the group-level outcome once the tombstones are durable.
    pub written: Option<oneshot::Receiver<Result<(), ResponseError>>>,
}

/// OffsetDelete: removes offsets of topics the group does not consume.
pub(crate) fn delete_offsets(
    state: &mut GroupShard,
    group_id: &str,
    topics: &[(String, Vec<i32>)],
) -> Result<OffsetDeletePlan, ResponseError> {
    let GroupShard { groups, sched, .. } = state;
    let g = groups
        .get_mut(group_id)
        .ok_or(ResponseError::GroupIdNotFound)?;
    match g.state {
        GroupState::Dead => return Err(ResponseError::GroupIdNotFound),
        GroupState::Stable | GroupState::PreparingRebalance | GroupState::CompletingRebalance
            if !g.uses_consumer_protocol() =>
        {
            // Only consumer subscriptions can be checked; other active groups are off limits.
            return Err(ResponseError::NonEmptyGroup);
        }
        _ => {}
    }
    let mut partition_errors = Vec::with_capacity(topics.len());
    let mut deleted: Vec<TopicPartition> = Vec::new();
    for (topic, partitions) in topics {
        if g.is_subscribed_to_topic(topic) {
            partition_errors.push(vec![
                ResponseError::GroupSubscribedToTopic.code();
                partitions.len()
            ]);
            continue;
        }
        partition_errors.push(vec![0; partitions.len()]);
        for &partition in partitions {
            let tp = TopicPartition::new(topic.as_str(), partition);
            if (g.offsets.has_committed(&tp)
                || g.offsets.is_in_flight(&tp)
                || g.offsets.has_txn_pending(&tp))
                && !deleted.contains(&tp)
            {
                deleted.push(tp);
            }
        }
    }
    if deleted.is_empty() {
        return Ok(OffsetDeletePlan {
            partition_errors,
            written: None,
        });
    }
    let records = deleted
        .iter()
        .map(|tp| offset_tombstone(group_id, tp))
        .collect::<Result<Vec<_>, CodecError>>()
        .map_err(Into::into);
    let (tx, rx) = oneshot::channel();
    sched.write(
        group_id,
        records,
        Box::new(move |_, result| {
            let _ = tx.send(result.map_err(|e| e.response_error()));
        }),
    );
    Ok(OffsetDeletePlan {
        partition_errors,
        written: Some(rx),
    })
}

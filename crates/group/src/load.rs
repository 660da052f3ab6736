//! Rebuilding groups and offsets from `__consumer_offsets` at startup.
//!
//! Records are applied in log order; later records replace earlier ones and
//! tombstones delete. A group whose last snapshot has members comes back
//! Stable with those members, and each member gets a fresh session timer:
//! consumers that keep heartbeating across the restart stay in the group,
//! the others expire and the group rebalances — as after a Kafka
//! coordinator failover.

use std::collections::BTreeSet;

use bytes::Bytes;

use crate::coordinator::State;
use crate::error::{CodecError, GroupError, SkippedRecord};
use crate::group::Group;
use crate::member::{Member, Protocol};
use crate::now_ms;
use crate::offsets::OffsetAndMetadata;
use crate::rebalance::{prepare_rebalance, reschedule_session};
use crate::records::{GroupMetadataValue, GroupRecordKey, OffsetCommitValue};
use crate::state::GroupState;

/// Replays records; `producer_id` is set for the records of a transactional
/// batch, whose offsets stay pending until the producer's marker.
pub(crate) fn load(
    state: &mut State,
    records: impl IntoIterator<Item = (Bytes, Option<Bytes>)>,
    producer_id: Option<i64>,
) -> Result<(), GroupError> {
    let mut touched: BTreeSet<String> = BTreeSet::new();
    let mut skipped = Vec::new();
    for (index, (key, value)) in records.into_iter().enumerate() {
        if let Err(error) = apply(state, &key, value.as_deref(), &mut touched, producer_id) {
            skipped.push(SkippedRecord { index, error });
        }
    }

    // Start the clocks of the loaded members.
    let State {
        groups,
        sched,
        config,
    } = state;
    for group_id in &touched {
        let Some(g) = groups.get_mut(group_id) else {
            continue;
        };
        let member_ids: Vec<String> = g.members.keys().cloned().collect();
        for member_id in &member_ids {
            reschedule_session(g, sched, member_id);
        }
        if g.members.len() > config.max_group_size {
            prepare_rebalance(g, sched, "freshly loaded group is over its maximum size");
        }
    }

    if skipped.is_empty() {
        Ok(())
    } else {
        Err(GroupError::Corrupt { skipped })
    }
}

fn apply(
    state: &mut State,
    key: &[u8],
    value: Option<&[u8]>,
    touched: &mut BTreeSet<String>,
    producer_id: Option<i64>,
) -> Result<(), CodecError> {
    match GroupRecordKey::decode(key)? {
        GroupRecordKey::OffsetCommit {
            group,
            topic,
            partition,
        } => match value {
            Some(value) => {
                let v = OffsetCommitValue::decode(value)?;
                // Offsets without group metadata belong to a "simple" group.
                let g = state
                    .groups
                    .entry(group.clone())
                    .or_insert_with(|| Group::new(&group, now_ms()));
                let log_order = g.offsets.next_order();
                let offset = OffsetAndMetadata {
                    offset: v.offset,
                    leader_epoch: (v.leader_epoch != -1).then_some(v.leader_epoch),
                    metadata: v.metadata,
                    commit_timestamp_ms: v.commit_timestamp,
                    expire_timestamp_ms: (v.expire_timestamp != -1).then_some(v.expire_timestamp),
                    log_order,
                };
                match producer_id {
                    None => g.offsets.put(&topic, partition, offset),
                    Some(pid) => g.offsets.add_txn(pid, &topic, partition, offset, true),
                }
                touched.insert(group);
            }
            None => {
                if let Some(g) = state.groups.get_mut(&group) {
                    // Also drops transactional offsets written before it.
                    let log_order = g.offsets.next_order();
                    g.offsets.delete(&topic, partition, log_order);
                }
            }
        },
        GroupRecordKey::GroupMetadata { group } => match value {
            Some(value) => {
                let v = GroupMetadataValue::decode(value)?;
                let mut loaded = group_from_record(&group, v);
                if let Some(old) = state.groups.remove(&group) {
                    loaded.offsets = old.offsets;
                }
                state.groups.insert(group.clone(), loaded);
                touched.insert(group);
            }
            None => {
                state.groups.remove(&group);
                state.sched.cancel_group(&group);
                touched.remove(&group);
            }
        },
    }
    Ok(())
}

/// Replays a COMMIT/ABORT marker of `producer_id` for the groups `in_scope`
/// accepts (those of the `__consumer_offsets` partition the marker is in).
pub(crate) fn replay_marker(
    state: &mut State,
    producer_id: i64,
    commit: bool,
    in_scope: impl Fn(&str) -> bool,
) {
    for (id, g) in &mut state.groups {
        if in_scope(id) {
            g.offsets.complete_txn(producer_id, commit);
        }
    }
}

fn group_from_record(group_id: &str, v: GroupMetadataValue) -> Group {
    let mut g = Group::new(group_id, now_ms());
    g.generation = v.generation;
    g.protocol_type = Some(v.protocol_type).filter(|t| !t.is_empty());
    g.protocol_name = v.protocol;
    g.leader = v.leader;
    g.state_timestamp_ms = (v.current_state_timestamp != -1).then_some(v.current_state_timestamp);
    let protocol_name = g.protocol_name.clone().unwrap_or_default();
    let protocol_type = g.protocol_type.clone().unwrap_or_default();
    for m in v.members {
        if let Some(instance) = &m.group_instance_id {
            g.static_members
                .insert(instance.clone(), m.member_id.clone());
        }
        let member = Member {
            id: m.member_id.clone(),
            instance_id: m.group_instance_id,
            client_id: m.client_id,
            client_host: m.client_host,
            // Records written before rebalance timeouts existed.
            rebalance_timeout_ms: if m.rebalance_timeout == -1 {
                m.session_timeout
            } else {
                m.rebalance_timeout
            },
            session_timeout_ms: m.session_timeout,
            protocol_type: protocol_type.clone(),
            protocols: vec![Protocol {
                name: protocol_name.clone(),
                metadata: m.subscription,
            }],
            assignment: m.assignment,
            join_waiter: None,
            sync_waiter: None,
            is_new: false,
        };
        g.members.insert(m.member_id, member);
    }
    let state = if g.members.is_empty() {
        GroupState::Empty
    } else {
        GroupState::Stable
    };
    g.state = state;
    g.previous_state = state;
    g.subscribed_topics = g.compute_subscribed_topics();
    g
}

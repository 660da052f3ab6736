//! The rebalance state machine: starting a rebalance, completing the join
//! phase, delivering assignments, and the timers that remove members who
//! stopped heartbeating, did not rejoin, or did not sync.
//!
//! Rules follow Kafka's classic group coordinator. Each function works on one
//! group and the scheduler; callers hold the shard's lock.

use std::collections::HashMap;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{JoinGroupResponse, SyncGroupResponse};
use kafka_protocol::protocol::StrBytes;

use crate::config::NEW_MEMBER_JOIN_TIMEOUT_MS;
use crate::group::Group;
use crate::scheduler::{Scheduler, TimerAction, TimerKey};
use crate::shard::GroupShard;
use crate::state::GroupState;

fn non_negative_ms(ms: i32) -> u64 {
    u64::try_from(ms).unwrap_or(0)
}

/// Restarts the session timer of a member (Kafka reschedules it on every
/// heartbeat, commit, sync and join completion).
pub(crate) fn reschedule_session(g: &Group, s: &mut Scheduler, member_id: &str) {
    if let Some(member) = g.members.get(member_id) {
        let timeout = non_negative_ms(member.session_timeout_ms);
        s.schedule(
            TimerKey::Heartbeat(g.id.clone(), member_id.to_owned()),
            timeout,
            TimerAction::ExpireHeartbeat,
        );
    }
}

/// A member that joined for the first time cannot heartbeat while it waits,
/// so it gets the (long) new-member join timeout instead of its session timeout.
pub(crate) fn schedule_new_member_timeout(g: &Group, s: &mut Scheduler, member_id: &str) {
    s.schedule(
        TimerKey::Heartbeat(g.id.clone(), member_id.to_owned()),
        NEW_MEMBER_JOIN_TIMEOUT_MS,
        TimerAction::ExpireHeartbeat,
    );
}

/// Starts a rebalance if the state allows one, else tries to finish the
/// join phase that is already running.
pub(crate) fn maybe_prepare_rebalance_or_complete_join(
    g: &mut Group,
    s: &mut Scheduler,
    reason: &str,
) {
    if g.can_rebalance() {
        prepare_rebalance(g, s, reason);
    } else {
        maybe_complete_join_phase(g, s);
    }
}

/// Moves the group to PreparingRebalance. Parked SyncGroup requests are
/// answered with REBALANCE_IN_PROGRESS so those members rejoin. A group
/// coming from Empty waits `group.initial.rebalance.delay.ms` for more
/// members; otherwise the join phase completes once everybody rejoined, or
/// after the longest rebalance timeout.
pub(crate) fn prepare_rebalance(g: &mut Group, s: &mut Scheduler, reason: &str) {
    if g.is(GroupState::CompletingRebalance) {
        reset_and_propagate_assignment_error(g, s, ResponseError::RebalanceInProgress);
    }
    remove_sync_expiration(g, s);

    let initial = g.is(GroupState::Empty);
    if initial {
        let delay_ms = s.initial_rebalance_delay_ms;
        let remaining_ms = non_negative_ms(g.rebalance_timeout_ms()).saturating_sub(delay_ms);
        s.schedule(
            TimerKey::Join(g.id.clone()),
            delay_ms,
            TimerAction::InitialRebalance {
                delay_ms,
                remaining_ms,
            },
        );
    }
    tracing::info!(group = %g.id, state = %g.state, generation = g.generation, reason, "preparing to rebalance group");
    g.transition_to(GroupState::PreparingRebalance, s.now_ms());
    if !initial {
        if g.has_all_members_joined() {
            complete_join(g, s);
        } else {
            s.schedule(
                TimerKey::Join(g.id.clone()),
                non_negative_ms(g.rebalance_timeout_ms()),
                TimerAction::CompleteJoin,
            );
        }
    }
}

/// Completes the join phase if everybody rejoined, unless this is the
/// initial rebalance of an Empty group, which always waits out its delay.
pub(crate) fn maybe_complete_join_phase(g: &mut Group, s: &mut Scheduler) {
    if g.is(GroupState::PreparingRebalance)
        && g.previous_state != GroupState::Empty
        && g.has_all_members_joined()
    {
        complete_join(g, s);
    }
}

/// Ends the join phase: dynamic members that did not rejoin are dropped, the
/// generation advances, and every parked JoinGroup is answered (the leader
/// with the member list). An emptied group records its new generation.
pub(crate) fn complete_join(g: &mut Group, s: &mut Scheduler) {
    s.cancel(&TimerKey::Join(g.id.clone()));

    let not_rejoined: Vec<String> = g
        .members
        .values()
        .filter(|m| !m.is_awaiting_join() && !m.is_static())
        .map(|m| m.id.clone())
        .collect();
    for member_id in &not_rejoined {
        g.remove(member_id);
        s.cancel(&TimerKey::Heartbeat(g.id.clone(), member_id.clone()));
    }
    if !not_rejoined.is_empty() {
        tracing::info!(group = %g.id, members = ?not_rejoined, "removed members who did not rejoin");
    }

    if g.is(GroupState::Dead) {
        return;
    }
    if !g.maybe_elect_new_joined_leader() && !g.members.is_empty() {
        // Only static members that did not rejoin are left: wait another
        // rebalance timeout (their sessions may expire meanwhile).
        tracing::error!(group = %g.id, "could not complete rebalance because no members rejoined");
        s.schedule(
            TimerKey::Join(g.id.clone()),
            non_negative_ms(g.rebalance_timeout_ms()),
            TimerAction::CompleteJoin,
        );
        return;
    }

    g.init_next_generation(s.now_ms());
    if g.is(GroupState::Empty) {
        tracing::info!(group = %g.id, generation = g.generation, "group is now empty");
        let group_id = g.id.clone();
        let record = g.metadata_record(|_| Bytes::new()).map_err(Into::into);
        s.write(
            &g.id,
            record.map(|r| vec![r]),
            Box::new(move |_, result| {
                if let Err(e) = result {
                    // Safe to ignore: an empty generation has no members to confuse.
                    tracing::warn!(group = %group_id, error = %e, "failed to write empty group metadata");
                }
            }),
        );
        return;
    }

    tracing::info!(group = %g.id, generation = g.generation, members = g.members.len(), "stabilized group");
    let member_ids: Vec<String> = g.members.keys().cloned().collect();
    for member_id in member_ids {
        let response = g.join_response(&member_id, g.is_leader(&member_id));
        if let Some(waiter) = g
            .members
            .get_mut(&member_id)
            .and_then(|m| m.join_waiter.take())
        {
            let _ = waiter.send(response);
        }
        reschedule_session(g, s, &member_id);
        if let Some(member) = g.members.get_mut(&member_id) {
            member.is_new = false;
        }
        g.pending_sync.insert(member_id);
    }
    s.schedule(
        TimerKey::Sync(g.id.clone()),
        non_negative_ms(g.rebalance_timeout_ms()),
        TimerAction::ExpirePendingSync {
            generation: g.generation,
        },
    );
}

/// Answers parked SyncGroup requests with `error` and clears assignments.
pub(crate) fn reset_and_propagate_assignment_error(
    g: &mut Group,
    s: &mut Scheduler,
    error: ResponseError,
) {
    for member in g.members.values_mut() {
        member.assignment = Bytes::new();
    }
    propagate_assignment(g, s, Some(error));
}

/// Stores the leader's assignment on every member and answers parked SyncGroups.
pub(crate) fn set_and_propagate_assignment(
    g: &mut Group,
    s: &mut Scheduler,
    assignment: &HashMap<String, Bytes>,
) {
    for member in g.members.values_mut() {
        member.assignment = assignment.get(&member.id).cloned().unwrap_or_default();
    }
    propagate_assignment(g, s, None);
}

fn propagate_assignment(g: &mut Group, s: &mut Scheduler, error: Option<ResponseError>) {
    let (protocol_type, protocol_name) = match error {
        None => (
            g.protocol_type.clone().map(StrBytes::from_string),
            g.protocol_name.clone().map(StrBytes::from_string),
        ),
        Some(_) => (None, None),
    };
    let mut answered = Vec::new();
    for member in g.members.values_mut() {
        if let Some(waiter) = member.sync_waiter.take() {
            let response = SyncGroupResponse::default()
                .with_error_code(error.map_or(0, |e| e.code()))
                .with_protocol_type(protocol_type.clone())
                .with_protocol_name(protocol_name.clone())
                .with_assignment(member.assignment.clone());
            let _ = waiter.send(response);
            answered.push(member.id.clone());
        }
    }
    // A member whose session expired while it waited was kept (waiting counts
    // as alive) but has no timer any more: give it a fresh session.
    for member_id in answered {
        reschedule_session(g, s, &member_id);
    }
}

pub(crate) fn remove_sync_expiration(g: &mut Group, s: &mut Scheduler) {
    g.pending_sync.clear();
    s.cancel(&TimerKey::Sync(g.id.clone()));
}

/// A member sent SyncGroup; once everybody did, the sync deadline is moot.
pub(crate) fn remove_pending_sync_member(g: &mut Group, s: &mut Scheduler, member_id: &str) {
    g.pending_sync.remove(member_id);
    let done = match g.state {
        GroupState::Dead | GroupState::Empty | GroupState::PreparingRebalance => true,
        GroupState::CompletingRebalance | GroupState::Stable => g.pending_sync.is_empty(),
    };
    if done {
        s.cancel(&TimerKey::Sync(g.id.clone()));
    }
}

/// Removes a member (session expiry, leave): a parked JoinGroup is answered
/// with UNKNOWN_MEMBER_ID so a still-alive client rejoins, then the group
/// rebalances or finishes the running join phase.
pub(crate) fn remove_member_and_update_group(
    g: &mut Group,
    s: &mut Scheduler,
    member_id: &str,
    reason: &str,
) {
    if let Some(waiter) = g
        .members
        .get_mut(member_id)
        .and_then(|m| m.join_waiter.take())
    {
        let _ = waiter.send(unknown_member_join_response());
    }
    g.remove(member_id);
    match g.state {
        GroupState::Stable | GroupState::CompletingRebalance => {
            maybe_prepare_rebalance_or_complete_join(g, s, reason);
        }
        GroupState::PreparingRebalance if g.has_all_members_joined() => complete_join(g, s),
        _ => {}
    }
}

/// A member id handed out with MEMBER_ID_REQUIRED was never used.
pub(crate) fn remove_pending_member_and_update_group(
    g: &mut Group,
    s: &mut Scheduler,
    member_id: &str,
) {
    g.remove(member_id);
    if g.is(GroupState::PreparingRebalance) && g.has_all_members_joined() {
        complete_join(g, s);
    }
}

/// The JoinGroup answer for a member that was removed while it waited.
pub(crate) fn unknown_member_join_response() -> JoinGroupResponse {
    JoinGroupResponse::default().with_error_code(ResponseError::UnknownMemberId.code())
}

/// Entry point of fired timers.
pub(crate) fn on_timer(state: &mut GroupShard, key: TimerKey, action: TimerAction) {
    let group_id = match &key {
        TimerKey::Join(g) | TimerKey::Sync(g) | TimerKey::Heartbeat(g, _) => g.clone(),
    };
    let GroupShard { groups, sched, .. } = state;
    let Some(g) = groups.get_mut(&group_id) else {
        return;
    };
    match (key, action) {
        (_, TimerAction::CompleteJoin) => {
            if g.is(GroupState::PreparingRebalance) {
                complete_join(g, sched);
            }
        }
        (
            _,
            TimerAction::InitialRebalance {
                delay_ms,
                remaining_ms,
            },
        ) => {
            if !g.is(GroupState::PreparingRebalance) {
                return;
            }
            if g.new_member_added && remaining_ms != 0 {
                // Members keep arriving: wait another delay, within the rebalance timeout.
                g.new_member_added = false;
                let next_delay = sched.initial_rebalance_delay_ms.min(remaining_ms);
                let next_remaining = remaining_ms.saturating_sub(delay_ms);
                sched.schedule(
                    TimerKey::Join(g.id.clone()),
                    next_delay,
                    TimerAction::InitialRebalance {
                        delay_ms: next_delay,
                        remaining_ms: next_remaining,
                    },
                );
            } else {
                complete_join(g, sched);
            }
        }
        (_, TimerAction::ExpirePendingSync { generation }) => {
            expire_pending_sync(g, sched, generation);
        }
        (TimerKey::Heartbeat(_, member_id), TimerAction::ExpireHeartbeat) => {
            expire_heartbeat(g, sched, &member_id);
        }
        (_, TimerAction::ExpireHeartbeat) => {}
    }
}

fn expire_pending_sync(g: &mut Group, s: &mut Scheduler, generation: i32) {
    if generation != g.generation {
        return;
    }
    if !matches!(
        g.state,
        GroupState::CompletingRebalance | GroupState::Stable
    ) || g.pending_sync.is_empty()
    {
        return;
    }
    let mut missing: Vec<String> = g.pending_sync.iter().cloned().collect();
    missing.sort();
    for member_id in &missing {
        g.remove(member_id);
        s.cancel(&TimerKey::Heartbeat(g.id.clone(), member_id.clone()));
    }
    prepare_rebalance(
        g,
        s,
        &format!("removing {missing:?} on pending sync request expiration"),
    );
}

fn expire_heartbeat(g: &mut Group, s: &mut Scheduler, member_id: &str) {
    if g.is(GroupState::Dead) {
        return;
    }
    if g.pending_join.contains(member_id) {
        tracing::info!(group = %g.id, member = %member_id, "pending member removed after session timeout");
        remove_pending_member_and_update_group(g, s, member_id);
        return;
    }
    let expired = g
        .members
        .get(member_id)
        .is_some_and(|m| !m.has_satisfied_heartbeat());
    if expired {
        tracing::info!(group = %g.id, member = %member_id, "member failed to heartbeat; removing it");
        remove_member_and_update_group(
            g,
            s,
            member_id,
            &format!("removing member {member_id} on heartbeat expiration"),
        );
    }
}

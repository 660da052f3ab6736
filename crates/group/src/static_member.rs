//! Static membership (KIP-345): a member with a `group.instance.id` that
//! restarts rejoins under a new member id and takes over its old place.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::JoinGroupResponse;
use kafka_protocol::protocol::StrBytes;
use tokio::sync::oneshot;

use crate::group::Group;
use crate::join::{JoinParams, join_error};
use crate::rebalance::{
    maybe_complete_join_phase, maybe_prepare_rebalance_or_complete_join, prepare_rebalance,
    reschedule_session,
};
use crate::reply::Reply;
use crate::scheduler::{Scheduler, TimerKey};
use crate::shard::GroupShard;
use crate::state::GroupState;

/// A known static member rejoined with a new member id (a restart). In a
/// Stable group whose selected protocol does not change, the new id simply
/// replaces the old one — no rebalance — once that is durable; the old id is
/// fenced. Otherwise the group rebalances.
pub(crate) fn update_static_member_and_rebalance(
    g: &mut Group,
    s: &mut Scheduler,
    p: JoinParams,
    instance_id: &str,
    old_member_id: &str,
    new_member_id: &str,
) -> Reply<JoinGroupResponse> {
    let current_leader = g.leader.clone().unwrap_or_default();
    if !g.replace_static_member(instance_id, old_member_id, new_member_id) {
        return Reply::Now(join_error("", ResponseError::UnknownServerError));
    }
    s.cancel(&TimerKey::Heartbeat(g.id.clone(), old_member_id.to_owned()));
    reschedule_session(g, s, new_member_id);

    let Some(member) = g.members.get(new_member_id) else {
        return Reply::Now(join_error("", ResponseError::UnknownServerError));
    };
    let old_protocols = member.protocols.clone();
    let old_rebalance_timeout_ms = member.rebalance_timeout_ms;
    let old_session_timeout_ms = member.session_timeout_ms;

    let (tx, rx) = oneshot::channel();
    g.update_member(
        new_member_id,
        p.protocols,
        p.rebalance_timeout_ms,
        p.session_timeout_ms,
        Some(tx),
    );

    match g.state {
        GroupState::Stable => {
            if g.protocol_name.is_some() && g.select_protocol() == g.protocol_name {
                // Persist the new member id with everybody's current assignment.
                let record = g
                    .metadata_record(|m| m.assignment.clone())
                    .map(|r| vec![r])
                    .map_err(Into::into);
                let group_id = g.id.clone();
                let instance_id = instance_id.to_owned();
                let old_member_id = old_member_id.to_owned();
                let new_member_id = new_member_id.to_owned();
                let skip_assignment = p.supports_skip_assignment;
                s.write(
                    &g.id,
                    record,
                    Box::new(move |state, result| {
                        let GroupShard { groups, sched, .. } = state;
                        let Some(g) = groups.get_mut(&group_id) else {
                            return;
                        };
                        let Some(waiter) = g
                            .members
                            .get_mut(&new_member_id)
                            .and_then(|m| m.join_waiter.take())
                        else {
                            return;
                        };
                        let response = match result {
                            Err(e) => {
                                // Not durable: put the old member id back.
                                g.update_member(
                                    &new_member_id,
                                    old_protocols,
                                    old_rebalance_timeout_ms,
                                    old_session_timeout_ms,
                                    None,
                                );
                                if g.replace_static_member(
                                    &instance_id,
                                    &new_member_id,
                                    &old_member_id,
                                ) {
                                    sched.cancel(&TimerKey::Heartbeat(
                                        g.id.clone(),
                                        new_member_id.clone(),
                                    ));
                                    reschedule_session(g, sched, &old_member_id);
                                }
                                JoinGroupResponse::default()
                                    .with_generation_id(g.generation)
                                    .with_protocol_type(
                                        g.protocol_type.clone().map(StrBytes::from_string),
                                    )
                                    .with_protocol_name(
                                        g.protocol_name.clone().map(StrBytes::from_string),
                                    )
                                    .with_leader(StrBytes::from_string(current_leader))
                                    .with_error_code(e.response_error().code())
                            }
                            Ok(()) if skip_assignment => {
                                // JoinGroup v9+: the leader learns it leads but
                                // must not run a new assignment for a Stable group.
                                let is_leader = g.is_leader(&new_member_id);
                                g.join_response(&new_member_id, is_leader)
                                    .with_skip_assignment(is_leader)
                            }
                            Ok(()) => {
                                // Older clients are told the old leader id, so a
                                // restarted leader acts as a follower and does
                                // not compute an assignment a Stable group would ignore.
                                g.join_response(&new_member_id, false)
                                    .with_leader(StrBytes::from_string(current_leader))
                            }
                        };
                        let _ = waiter.send(response);
                    }),
                );
            } else {
                maybe_prepare_rebalance_or_complete_join(
                    g,
                    s,
                    "static member rejoined with a protocol change",
                );
            }
        }
        // The leader may already be assigning with the old member id: start over.
        GroupState::CompletingRebalance => {
            prepare_rebalance(g, s, "static member replaced during CompletingRebalance")
        }
        GroupState::PreparingRebalance => maybe_complete_join_phase(g, s),
        GroupState::Empty | GroupState::Dead => {}
    }
    Reply::Wait(rx)
}

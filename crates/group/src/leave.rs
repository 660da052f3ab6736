//! LeaveGroup: members leaving on shutdown (v0-2: one member; v3+: a batch,
//! which also lets admins remove static members by instance id).

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::leave_group_request::MemberIdentity;

use crate::group::Group;
use crate::rebalance::{
    maybe_complete_join_phase, maybe_prepare_rebalance_or_complete_join,
    unknown_member_join_response,
};
use crate::scheduler::{Scheduler, TimerKey};
use crate::shard::GroupShard;
use crate::state::GroupState;

/// Per-member results in request order, or a group-level error.
pub(crate) fn leave(
    state: &mut GroupShard,
    group_id: &str,
    members: &[MemberIdentity],
) -> Result<Vec<Option<ResponseError>>, ResponseError> {
    let GroupShard { groups, sched, .. } = state;
    let Some(g) = groups.get_mut(group_id) else {
        return Ok(members
            .iter()
            .map(|_| Some(ResponseError::UnknownMemberId))
            .collect());
    };
    if g.is(GroupState::Dead) {
        return Err(ResponseError::CoordinatorNotAvailable);
    }
    let mut results = Vec::with_capacity(members.len());
    for identity in members {
        let member_id = identity.member_id.as_str();
        let instance_id = identity.group_instance_id.as_ref().map(|i| i.as_str());
        let result = if member_id.is_empty() {
            // Administrative removal of a static member by instance id.
            match instance_id.and_then(|i| g.static_members.get(i).cloned()) {
                Some(current) => {
                    remove_current_member(g, sched, &current);
                    None
                }
                None => Some(ResponseError::UnknownMemberId),
            }
        } else if g.pending_join.contains(member_id) {
            g.remove(member_id);
            sched.cancel(&TimerKey::Heartbeat(g.id.clone(), member_id.to_owned()));
            None
        } else {
            match g.validate_member(member_id, instance_id) {
                Ok(()) => {
                    remove_current_member(g, sched, member_id);
                    None
                }
                Err(e) => Some(e),
            }
        };
        results.push(result);
    }
    if results.iter().any(Option::is_none) {
        match g.state {
            GroupState::Stable | GroupState::CompletingRebalance => {
                maybe_prepare_rebalance_or_complete_join(g, sched, "explicit LeaveGroup");
            }
            GroupState::PreparingRebalance => maybe_complete_join_phase(g, sched),
            GroupState::Empty | GroupState::Dead => {}
        }
    }
    Ok(results)
}

fn remove_current_member(g: &mut Group, s: &mut Scheduler, member_id: &str) {
    s.cancel(&TimerKey::Heartbeat(g.id.clone(), member_id.to_owned()));
    if let Some(waiter) = g
        .members
        .get_mut(member_id)
        .and_then(|m| m.join_waiter.take())
    {
        let _ = waiter.send(unknown_member_join_response());
    }
    g.remove(member_id);
}

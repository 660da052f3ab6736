//! Heartbeat: keeps a member's session alive and tells it about rebalances.

use kafka_protocol::error::ResponseError;

use crate::rebalance::reschedule_session;
use crate::shard::GroupShard;
use crate::state::GroupState;

pub(crate) fn heartbeat(
    state: &mut GroupShard,
    group_id: &str,
    member_id: &str,
    instance_id: Option<&str>,
    generation_id: i32,
) -> Result<(), ResponseError> {
    let GroupShard { groups, sched, .. } = state;
    let g = groups
        .get_mut(group_id)
        .ok_or(ResponseError::UnknownMemberId)?;
    if g.is(GroupState::Dead) {
        return Err(ResponseError::CoordinatorNotAvailable);
    }
    g.validate_member(member_id, instance_id)?;
    if generation_id != g.generation {
        return Err(ResponseError::IllegalGeneration);
    }
    match g.state {
        GroupState::Empty | GroupState::Dead => Err(ResponseError::UnknownMemberId),
        GroupState::PreparingRebalance => {
            // The heartbeat is how members learn that they must rejoin.
            reschedule_session(g, sched, member_id);
            Err(ResponseError::RebalanceInProgress)
        }
        // Members may heartbeat between their JoinGroup and SyncGroup responses.
        GroupState::CompletingRebalance | GroupState::Stable => {
            reschedule_session(g, sched, member_id);
            Ok(())
        }
    }
}

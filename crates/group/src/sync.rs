//! SyncGroup: the leader hands in the assignment, everybody receives theirs.

use std::collections::HashMap;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::SyncGroupResponse;
use kafka_protocol::protocol::StrBytes;
use tokio::sync::oneshot;

use crate::group::Group;
use crate::rebalance::{
    maybe_prepare_rebalance_or_complete_join, remove_pending_sync_member, reschedule_session,
    reset_and_propagate_assignment_error, set_and_propagate_assignment,
};
use crate::reply::Reply;
use crate::shard::GroupShard;
use crate::state::GroupState;

/// A validated SyncGroup request.
pub(crate) struct SyncParams {
    pub group_id: String,
    pub generation_id: i32,
    pub member_id: String,
    pub instance_id: Option<String>,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub assignments: Vec<(String, Bytes)>,
}

pub(crate) fn sync_error(error: ResponseError) -> SyncGroupResponse {
    SyncGroupResponse::default().with_error_code(error.code())
}

fn validate(g: &Group, p: &SyncParams) -> Result<(), ResponseError> {
    if g.is(GroupState::Dead) {
        return Err(ResponseError::CoordinatorNotAvailable);
    }
    g.validate_member(&p.member_id, p.instance_id.as_deref())?;
    if p.generation_id != g.generation {
        return Err(ResponseError::IllegalGeneration);
    }
    let inconsistent = |requested: &Option<String>, current: &Option<String>| matches!((requested, current), (Some(r), Some(c)) if r != c);
    if inconsistent(&p.protocol_type, &g.protocol_type)
        || inconsistent(&p.protocol_name, &g.protocol_name)
    {
        return Err(ResponseError::InconsistentGroupProtocol);
    }
    Ok(())
}

pub(crate) fn sync(state: &mut GroupShard, p: SyncParams) -> Reply<SyncGroupResponse> {
    let GroupShard { groups, sched, .. } = state;
    let Some(g) = groups.get_mut(&p.group_id) else {
        return Reply::Now(sync_error(ResponseError::UnknownMemberId));
    };
    if g.is(GroupState::Empty) {
        return Reply::Now(sync_error(ResponseError::UnknownMemberId));
    }
    if let Err(error) = validate(g, &p) {
        return Reply::Now(sync_error(error));
    }
    match g.state {
        GroupState::PreparingRebalance => {
            Reply::Now(sync_error(ResponseError::RebalanceInProgress))
        }
        GroupState::CompletingRebalance => {
            let (tx, rx) = oneshot::channel();
            if let Some(member) = g.members.get_mut(&p.member_id) {
                member.sync_waiter = Some(tx);
            }
            remove_pending_sync_member(g, sched, &p.member_id);
            if g.is_leader(&p.member_id) {
                store_assignment(g, sched, p);
            }
            Reply::Wait(rx)
        }
        GroupState::Stable => {
            // Already stable: just hand out the member's assignment again.
            remove_pending_sync_member(g, sched, &p.member_id);
            let assignment = g
                .members
                .get(&p.member_id)
                .map(|m| m.assignment.clone())
                .unwrap_or_default();
            let response = SyncGroupResponse::default()
                .with_protocol_type(g.protocol_type.clone().map(StrBytes::from_string))
                .with_protocol_name(g.protocol_name.clone().map(StrBytes::from_string))
                .with_assignment(assignment);
            reschedule_session(g, sched, &p.member_id);
            Reply::Now(response)
        }
        GroupState::Empty | GroupState::Dead => {
            Reply::Now(sync_error(ResponseError::UnknownMemberId))
        }
    }
}

/// Persists the leader's assignment; once durable (and if the group has not
/// moved on meanwhile) every parked SyncGroup gets its share and the group is
/// Stable. Members the leader left out get an empty assignment.
fn store_assignment(g: &mut Group, s: &mut crate::scheduler::Scheduler, p: SyncParams) {
    let mut assignment: HashMap<String, Bytes> = p.assignments.into_iter().collect();
    let missing: Vec<String> = g
        .members
        .keys()
        .filter(|id| !assignment.contains_key(*id))
        .cloned()
        .collect();
    if !missing.is_empty() {
        tracing::warn!(group = %g.id, generation = g.generation, members = ?missing, "setting empty assignments for members the leader left out");
    }
    for id in missing {
        assignment.insert(id, Bytes::new());
    }
    let record = g
        .metadata_record(|m| assignment.get(&m.id).cloned().unwrap_or_default())
        .map(|r| vec![r])
        .map_err(Into::into);
    let group_id = g.id.clone();
    let generation = p.generation_id;
    let leader = p.member_id;
    s.write(
        &g.id,
        record,
        Box::new(move |state, result| {
            let GroupShard { groups, sched, .. } = state;
            let Some(g) = groups.get_mut(&group_id) else {
                return;
            };
            // Another member may have joined meanwhile: only the same
            // generation, still waiting for its assignment, is completed.
            if !g.is(GroupState::CompletingRebalance) || g.generation != generation {
                return;
            }
            match result {
                Err(e) => {
                    reset_and_propagate_assignment_error(g, sched, e.response_error());
                    maybe_prepare_rebalance_or_complete_join(
                        g,
                        sched,
                        &format!("error {e} when storing group assignment during SyncGroup (member {leader})"),
                    );
                }
                Ok(()) => {
                    set_and_propagate_assignment(g, sched, &assignment);
                    g.transition_to(GroupState::Stable, sched.now_ms());
                }
            }
        }),
    );
}

//! JoinGroup: admitting members, member ids (KIP-394), static membership
//! (KIP-345) and the decision whether a join starts a rebalance.

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::JoinGroupResponse;
use kafka_protocol::protocol::StrBytes;
use tokio::sync::oneshot;

use crate::group::Group;
use crate::member::{Member, Protocol};
use crate::rebalance::{
    maybe_complete_join_phase, maybe_prepare_rebalance_or_complete_join,
    schedule_new_member_timeout,
};
use crate::records::{GroupMetadataValue, group_record};
use crate::reply::Reply;
use crate::scheduler::{Scheduler, TimerAction, TimerKey};
use crate::shard::GroupShard;
use crate::state::GroupState;
use crate::static_member::update_static_member_and_rebalance;

/// A validated JoinGroup request.
pub(crate) struct JoinParams {
    pub group_id: String,
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    pub protocol_type: String,
    pub protocols: Vec<Protocol>,
    /// Version 4+ requires a known member id (KIP-394).
    pub require_known_member_id: bool,
    /// Version 9+ lets a rejoining static leader skip the assignment.
    pub supports_skip_assignment: bool,
}

/// An error answer (generation -1, no leader) echoing `member_id`.
pub(crate) fn join_error(member_id: &str, error: ResponseError) -> JoinGroupResponse {
    JoinGroupResponse::default()
        .with_member_id(StrBytes::from_string(member_id.to_owned()))
        .with_error_code(error.code())
}

pub(crate) fn join(state: &mut GroupShard, p: JoinParams) -> Reply<JoinGroupResponse> {
    let GroupShard {
        groups,
        sched,
        config,
    } = state;
    let unknown_member = p.member_id.is_empty();
    let mut created = false;
    if !groups.contains_key(&p.group_id) {
        // A member id is only valid inside an existing group.
        if !unknown_member {
            return Reply::Now(join_error(&p.member_id, ResponseError::UnknownMemberId));
        }
        groups.insert(p.group_id.clone(), Group::new(&p.group_id, sched.now_ms()));
        created = true;
    }
    let Some(g) = groups.get_mut(&p.group_id) else {
        return Reply::Now(join_error(
            &p.member_id,
            ResponseError::CoordinatorNotAvailable,
        ));
    };

    let reply = if !accept_joining_member(g, &p.member_id, config.max_group_size) {
        // Kafka also drops an existing member that is over the limit.
        g.remove(&p.member_id);
        maybe_complete_join_phase(g, sched);
        Reply::Now(join_error("", ResponseError::GroupMaxSizeReached))
    } else if unknown_member {
        join_new_member(g, sched, p)
    } else {
        join_existing_member(g, sched, p)
    };

    if created {
        // Make the new group durable, as Kafka does, without holding the answer.
        let value = GroupMetadataValue {
            protocol_type: String::new(),
            generation: 0,
            protocol: None,
            leader: None,
            current_state_timestamp: g.state_timestamp_ms.unwrap_or(-1),
            members: Vec::new(),
        };
        let record = group_record(&g.id, &value)
            .map(|r| vec![r])
            .map_err(Into::into);
        let group_id = g.id.clone();
        sched.write(
            &g.id,
            record,
            Box::new(move |_, result| {
                if let Err(e) = result {
                    tracing::warn!(group = %group_id, error = %e, "failed to write new group metadata");
                }
            }),
        );
    }
    reply
}

/// Kafka's admission rule for `group.max.size`.
fn accept_joining_member(g: &Group, member_id: &str, max_size: usize) -> bool {
    match g.state {
        GroupState::Empty | GroupState::Dead => true,
        // Counting members that already rejoined (not all members) lets the
        // last rejoiners be the ones turned away when the limit was lowered.
        GroupState::PreparingRebalance => {
            g.members
                .get(member_id)
                .is_some_and(|m| m.is_awaiting_join())
                || g.num_awaiting_join() < max_size
        }
        GroupState::CompletingRebalance | GroupState::Stable => {
            g.members.contains_key(member_id) || g.members.len() < max_size
        }
    }
}

fn join_new_member(g: &mut Group, s: &mut Scheduler, p: JoinParams) -> Reply<JoinGroupResponse> {
    if g.is(GroupState::Dead) {
        return Reply::Now(join_error("", ResponseError::CoordinatorNotAvailable));
    }
    if !g.supports_protocols(&p.protocol_type, &p.protocols) {
        return Reply::Now(join_error("", ResponseError::InconsistentGroupProtocol));
    }
    let prefix = p.instance_id.as_deref().unwrap_or(&p.client_id);
    let new_member_id = format!("{prefix}-{}", uuid::Uuid::new_v4());

    if let Some(instance_id) = p.instance_id.clone() {
        return match g.static_members.get(&instance_id).cloned() {
            Some(old_member_id) => {
                tracing::info!(group = %g.id, instance = %instance_id, old = %old_member_id, new = %new_member_id, "static member rejoined with a new member id");
                update_static_member_and_rebalance(
                    g,
                    s,
                    p,
                    &instance_id,
                    &old_member_id,
                    &new_member_id,
                )
            }
            None => add_member_and_rebalance(g, s, p, new_member_id),
        };
    }
    if p.require_known_member_id {
        // KIP-394: hand out the id and let the client rejoin with it, so a
        // client that times out and retries does not leave ghost members.
        g.pending_join.insert(new_member_id.clone());
        s.schedule(
            TimerKey::Heartbeat(g.id.clone(), new_member_id.clone()),
            u64::try_from(p.session_timeout_ms).unwrap_or(0),
            TimerAction::ExpireHeartbeat,
        );
        return Reply::Now(join_error(&new_member_id, ResponseError::MemberIdRequired));
    }
    add_member_and_rebalance(g, s, p, new_member_id)
}

fn join_existing_member(
    g: &mut Group,
    s: &mut Scheduler,
    p: JoinParams,
) -> Reply<JoinGroupResponse> {
    let member_id = p.member_id.clone();
    if g.is(GroupState::Dead) {
        return Reply::Now(join_error(
            &member_id,
            ResponseError::CoordinatorNotAvailable,
        ));
    }
    if !g.supports_protocols(&p.protocol_type, &p.protocols) {
        return Reply::Now(join_error(
            &member_id,
            ResponseError::InconsistentGroupProtocol,
        ));
    }
    if g.pending_join.contains(&member_id) {
        if p.instance_id.is_some() {
            // Pending member ids are only handed to dynamic members.
            return Reply::Now(join_error(&member_id, ResponseError::UnknownServerError));
        }
        return add_member_and_rebalance(g, s, p, member_id);
    }
    if let Err(error) = g.validate_member(&member_id, p.instance_id.as_deref()) {
        return Reply::Now(join_error(&member_id, error));
    }
    let matches = g
        .members
        .get(&member_id)
        .is_some_and(|m| m.matches(&p.protocols));
    match g.state {
        GroupState::PreparingRebalance => {
            update_member_and_rebalance(g, s, p, "member joining during PreparingRebalance")
        }
        GroupState::CompletingRebalance if matches => {
            // Same metadata: the member probably missed its JoinGroup
            // response; resend the current generation.
            let is_leader = g.is_leader(&member_id);
            Reply::Now(g.join_response(&member_id, is_leader))
        }
        GroupState::CompletingRebalance => update_member_and_rebalance(
            g,
            s,
            p,
            "member changed metadata during CompletingRebalance",
        ),
        GroupState::Stable if g.is_leader(&member_id) => {
            // A leader rejoining forces a rebalance: this is how it reacts to
            // changes the metadata does not show (e.g. new partitions).
            update_member_and_rebalance(g, s, p, "leader rejoining during Stable")
        }
        GroupState::Stable if !matches => {
            update_member_and_rebalance(g, s, p, "member changed metadata during Stable")
        }
        GroupState::Stable => Reply::Now(g.join_response(&member_id, false)),
        GroupState::Empty | GroupState::Dead => {
            Reply::Now(join_error(&member_id, ResponseError::UnknownMemberId))
        }
    }
}

fn update_member_and_rebalance(
    g: &mut Group,
    s: &mut Scheduler,
    p: JoinParams,
    reason: &str,
) -> Reply<JoinGroupResponse> {
    let (tx, rx) = oneshot::channel();
    g.update_member(
        &p.member_id,
        p.protocols,
        p.rebalance_timeout_ms,
        p.session_timeout_ms,
        Some(tx),
    );
    maybe_prepare_rebalance_or_complete_join(g, s, reason);
    Reply::Wait(rx)
}

fn add_member_and_rebalance(
    g: &mut Group,
    s: &mut Scheduler,
    p: JoinParams,
    member_id: String,
) -> Reply<JoinGroupResponse> {
    let (tx, rx) = oneshot::channel();
    let member = Member {
        id: member_id.clone(),
        instance_id: p.instance_id,
        client_id: p.client_id,
        client_host: p.client_host,
        rebalance_timeout_ms: p.rebalance_timeout_ms,
        session_timeout_ms: p.session_timeout_ms,
        protocol_type: p.protocol_type,
        protocols: p.protocols,
        assignment: Bytes::new(),
        join_waiter: Some(tx),
        sync_waiter: None,
        is_new: true,
    };
    if g.is(GroupState::PreparingRebalance) && g.previous_state == GroupState::Empty {
        // The initial rebalance is still gathering members: extend its delay.
        g.new_member_added = true;
    }
    g.add(member);
    schedule_new_member_timeout(g, s, &member_id);
    maybe_prepare_rebalance_or_complete_join(g, s, &format!("adding new member {member_id}"));
    Reply::Wait(rx)
}

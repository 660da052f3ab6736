//! FindCoordinator and the consumer group APIs, which the group coordinator
//! (crate `sluice-group`) answers.

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{
    BrokerId, DeleteGroupsRequest, DescribeGroupsRequest, FindCoordinatorRequest,
    FindCoordinatorResponse, HeartbeatRequest, JoinGroupRequest, LeaveGroupRequest,
    ListGroupsRequest, OffsetCommitRequest, OffsetDeleteRequest, OffsetFetchRequest, ResponseKind,
    SyncGroupRequest,
};
use kafka_protocol::protocol::StrBytes;
use sluice_protocol::kafka_protocol;

use crate::broker::Broker;
use crate::handlers::commit_topics;
use crate::request::{Reply, RequestContext};
use crate::topic_admin::{CONSUMER_OFFSETS_TOPIC, TRANSACTION_STATE_TOPIC, ensure_internal_topic};

/// FindCoordinator key types.
const KEY_TYPE_GROUP: i8 = 0;
const KEY_TYPE_TRANSACTION: i8 = 1;

/// Handles FindCoordinator.
pub async fn find_coordinator(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    req: FindCoordinatorRequest,
) -> Reply {
    let response = coordinator_for(broker, req, ctx.api_version());
    Reply::Now(ResponseKind::FindCoordinator(response))
}

/// This node coordinates every group and every transactional id.
fn coordinator_for(
    broker: &Arc<Broker>,
    req: FindCoordinatorRequest,
    version: i16,
) -> FindCoordinatorResponse {
    let topic = match req.key_type {
        KEY_TYPE_GROUP => Some(CONSUMER_OFFSETS_TOPIC),
        KEY_TYPE_TRANSACTION => Some(TRANSACTION_STATE_TOPIC),
        _ => None,
    };
    let outcome: Result<(), (ResponseError, String)> = match topic {
        None => Err((
            ResponseError::InvalidRequest,
            format!("Unknown coordinator key type {}", req.key_type),
        )),
        Some(topic) => ensure_internal_topic(broker, topic)
            .map(|_| ())
            .map_err(|e| (ResponseError::CoordinatorNotAvailable, e.message)),
    };
    let host = StrBytes::from_string(broker.advertised_host.clone());
    let node = BrokerId(broker.node_id());
    if version >= 4 {
        let coordinators = req
            .coordinator_keys
            .into_iter()
            .map(|key| {
                let c = Coordinator::default().with_key(key);
                match &outcome {
                    Ok(()) => c
                        .with_node_id(node)
                        .with_host(host.clone())
                        .with_port(broker.advertised_port),
                    Err((code, msg)) => c
                        .with_node_id(BrokerId(-1))
                        .with_port(-1)
                        .with_error_code(code.code())
                        .with_error_message(Some(StrBytes::from_string(msg.clone()))),
                }
            })
            .collect();
        return FindCoordinatorResponse::default().with_coordinators(coordinators);
    }
    match outcome {
        Ok(()) => FindCoordinatorResponse::default()
            .with_node_id(node)
            .with_host(host)
            .with_port(broker.advertised_port),
        Err((code, msg)) => {
            let response = FindCoordinatorResponse::default()
                .with_node_id(BrokerId(-1))
                .with_port(-1)
                .with_error_code(code.code());
            // error_message exists from v1.
            if version >= 1 {
                response.with_error_message(Some(StrBytes::from_string(msg)))
            } else {
                response
            }
        }
    }
}

// The group APIs. JoinGroup and SyncGroup wait for the rest of the group, so they run as
// tasks; the others are quick and run in order, before the next request is read.

/// Handles JoinGroup.
pub async fn join_group(broker: &Arc<Broker>, ctx: &RequestContext, r: JoinGroupRequest) -> Reply {
    let (groups, v) = (broker.groups.clone(), ctx.api_version());
    let client_id = ctx.client_id().to_string();
    let host = format!("/{}", ctx.peer.ip());
    Reply::Later(tokio::spawn(async move {
        ResponseKind::JoinGroup(groups.join_group(r, v, &client_id, &host).await)
    }))
}

/// Handles SyncGroup.
pub async fn sync_group(broker: &Arc<Broker>, ctx: &RequestContext, r: SyncGroupRequest) -> Reply {
    let (groups, v) = (broker.groups.clone(), ctx.api_version());
    Reply::Later(tokio::spawn(async move {
        ResponseKind::SyncGroup(groups.sync_group(r, v).await)
    }))
}

/// Handles Heartbeat.
pub async fn heartbeat(broker: &Arc<Broker>, ctx: &RequestContext, r: HeartbeatRequest) -> Reply {
    let response = broker.groups.heartbeat(r, ctx.api_version()).await;
    Reply::Now(ResponseKind::Heartbeat(response))
}

/// Handles LeaveGroup.
pub async fn leave_group(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    r: LeaveGroupRequest,
) -> Reply {
    let response = broker.groups.leave_group(r, ctx.api_version()).await;
    Reply::Now(ResponseKind::LeaveGroup(response))
}

/// Handles OffsetCommit, checking the partitions exist first.
pub async fn offset_commit(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    r: OffsetCommitRequest,
) -> Reply {
    let response = commit_topics::offset_commit(broker, r, ctx.api_version()).await;
    Reply::Now(ResponseKind::OffsetCommit(response))
}

/// Handles OffsetFetch.
pub async fn offset_fetch(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    r: OffsetFetchRequest,
) -> Reply {
    let response = broker.groups.offset_fetch(r, ctx.api_version()).await;
    Reply::Now(ResponseKind::OffsetFetch(response))
}

/// Handles DescribeGroups.
pub async fn describe_groups(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    r: DescribeGroupsRequest,
) -> Reply {
    let response = broker.groups.describe_groups(r, ctx.api_version()).await;
    Reply::Now(ResponseKind::DescribeGroups(response))
}

/// Handles ListGroups.
pub async fn list_groups(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    r: ListGroupsRequest,
) -> Reply {
    let response = broker.groups.list_groups(r, ctx.api_version()).await;
    Reply::Now(ResponseKind::ListGroups(response))
}

/// Handles DeleteGroups.
pub async fn delete_groups(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    r: DeleteGroupsRequest,
) -> Reply {
    let response = broker.groups.delete_groups(r, ctx.api_version()).await;
    Reply::Now(ResponseKind::DeleteGroups(response))
}

/// Handles OffsetDelete.
pub async fn offset_delete(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    r: OffsetDeleteRequest,
) -> Reply {
    let response = broker.groups.offset_delete(r, ctx.api_version()).await;
    Reply::Now(ResponseKind::OffsetDelete(response))
}

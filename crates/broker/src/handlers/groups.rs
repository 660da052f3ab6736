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
use sluice_protocol::model::coordinator_partition_for;

use crate::broker::Broker;
use crate::handlers::commit_topics;
use crate::handlers::metadata::client_endpoint;
use crate::metadata::TopicImage;
use crate::request::{Reply, RequestContext};
use crate::topic_admin::{CONSUMER_OFFSETS_TOPIC, TRANSACTION_STATE_TOPIC, ensure_internal_topic};

/// FindCoordinator key types.
const KEY_TYPE_GROUP: i8 = 0;
const KEY_TYPE_TRANSACTION: i8 = 1;

/// Handles FindCoordinator: the coordinator of a group or transactional id is the leader
/// of its partition of the internal topic (created on first use, as Kafka does).
pub async fn find_coordinator(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    req: FindCoordinatorRequest,
) -> Reply {
    let topic = match req.key_type {
        KEY_TYPE_GROUP => CONSUMER_OFFSETS_TOPIC,
        KEY_TYPE_TRANSACTION => TRANSACTION_STATE_TOPIC,
        _ => {
            let error = (
                ResponseError::InvalidRequest,
                format!("Unknown coordinator key type {}", req.key_type),
            );
            return Reply::Now(ResponseKind::FindCoordinator(coordinators(
                broker,
                ctx,
                req,
                Err(error),
            )));
        }
    };
    let found = match broker.metadata.image().topic(topic) {
        Some(t) => Ok(t.clone()),
        None => ensure_internal_topic(broker, topic)
            .await
            .map_err(|e| (ResponseError::CoordinatorNotAvailable, e.message)),
    };
    Reply::Now(ResponseKind::FindCoordinator(coordinators(
        broker,
        ctx,
        req,
        found.as_ref().map_err(Clone::clone),
    )))
}

/// Where each key's coordinator is: the leader of the key's partition of `topic`, as
/// the metadata registers it and its endpoint.
fn coordinators(
    broker: &Broker,
    ctx: &RequestContext,
    req: FindCoordinatorRequest,
    topic: Result<&TopicImage, (ResponseError, String)>,
) -> FindCoordinatorResponse {
    let version = ctx.api_version();
    let image = broker.metadata.image();
    let locate = |key: &str| -> Result<(i32, String, i32), (ResponseError, String)> {
        let topic = topic.clone()?;
        let index = coordinator_partition_for(key, topic.partition_count());
        let leader = topic.partition(index).map_or(-1, |p| p.leader);
        image
            .broker(leader)
            .and_then(|b| client_endpoint(b, &ctx.listener))
            .map(|e| (leader, e.host.clone(), e.port))
            .ok_or_else(|| {
                (
                    ResponseError::CoordinatorNotAvailable,
                    "The coordinator is not available.".to_string(),
                )
            })
    };
    if version >= 4 {
        let coordinators = req
            .coordinator_keys
            .into_iter()
            .map(|key| {
                let found = locate(&key);
                let c = Coordinator::default().with_key(key);
                match found {
                    Ok((node, host, port)) => c
                        .with_node_id(BrokerId(node))
                        .with_host(StrBytes::from_string(host))
                        .with_port(port),
                    Err((code, msg)) => c
                        .with_node_id(BrokerId(-1))
                        .with_port(-1)
                        .with_error_code(code.code())
                        .with_error_message(Some(StrBytes::from_string(msg))),
                }
            })
            .collect();
        return FindCoordinatorResponse::default().with_coordinators(coordinators);
    }
    match locate(&req.key) {
        Ok((node, host, port)) => FindCoordinatorResponse::default()
            .with_node_id(BrokerId(node))
            .with_host(StrBytes::from_string(host))
            .with_port(port),
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

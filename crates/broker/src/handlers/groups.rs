//! FindCoordinator and the consumer group APIs, which the group coordinator
//! (crate `sluice-group`) answers.

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{
    BrokerId, FindCoordinatorRequest, FindCoordinatorResponse, RequestKind, ResponseKind,
};
use kafka_protocol::protocol::StrBytes;
use sluice_protocol::kafka_protocol;

use crate::broker::Broker;
use crate::handlers::commit_topics;
use crate::router::{Reply, RequestContext};
use crate::topic_admin::{CONSUMER_OFFSETS_TOPIC, TRANSACTION_STATE_TOPIC, ensure_internal_topic};

/// FindCoordinator key types.
const KEY_TYPE_GROUP: i8 = 0;
const KEY_TYPE_TRANSACTION: i8 = 1;

/// Handles FindCoordinator: this node coordinates every group and every
/// transactional id.
pub fn find_coordinator(
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

/// Dispatches the group APIs. JoinGroup and SyncGroup wait for the rest of
/// the group, so they run as tasks; the others are quick and run in order.
pub async fn handle(broker: &Arc<Broker>, ctx: &RequestContext, request: RequestKind) -> Reply {
    let v = ctx.api_version;
    let groups = broker.groups.clone();
    match request {
        RequestKind::JoinGroup(r) => {
            let client_id = ctx.client_id.clone();
            let host = format!("/{}", ctx.peer.ip());
            Reply::Later(tokio::spawn(async move {
                ResponseKind::JoinGroup(groups.join_group(r, v, &client_id, &host).await)
            }))
        }
        RequestKind::SyncGroup(r) => Reply::Later(tokio::spawn(async move {
            ResponseKind::SyncGroup(groups.sync_group(r, v).await)
        })),
        RequestKind::Heartbeat(r) => {
            Reply::Now(ResponseKind::Heartbeat(groups.heartbeat(r, v).await))
        }
        RequestKind::LeaveGroup(r) => {
            Reply::Now(ResponseKind::LeaveGroup(groups.leave_group(r, v).await))
        }
        RequestKind::OffsetCommit(r) => Reply::Now(ResponseKind::OffsetCommit(
            commit_topics::offset_commit(broker, r, v).await,
        )),
        RequestKind::OffsetFetch(r) => {
            Reply::Now(ResponseKind::OffsetFetch(groups.offset_fetch(r, v).await))
        }
        RequestKind::DescribeGroups(r) => Reply::Now(ResponseKind::DescribeGroups(
            groups.describe_groups(r, v).await,
        )),
        RequestKind::ListGroups(r) => {
            Reply::Now(ResponseKind::ListGroups(groups.list_groups(r, v).await))
        }
        RequestKind::DeleteGroups(r) => {
            Reply::Now(ResponseKind::DeleteGroups(groups.delete_groups(r, v).await))
        }
        RequestKind::OffsetDelete(r) => {
            Reply::Now(ResponseKind::OffsetDelete(groups.offset_delete(r, v).await))
        }
        other => {
            tracing::warn!(client_id = %ctx.client_id, "no handler for {other:?}; closing connection");
            Reply::Close
        }
    }
}

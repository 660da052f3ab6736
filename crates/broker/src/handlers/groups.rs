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
use sluice_protocol::model::coordinator_partition_for;

use crate::broker::Broker;
use crate::handlers::commit_topics;
use crate::handlers::metadata::client_endpoint;
use crate::metadata::TopicImage;
use crate::router::{Reply, RequestContext};
use crate::topic_admin::{CONSUMER_OFFSETS_TOPIC, TRANSACTION_STATE_TOPIC, ensure_internal_topic};

/// FindCoordinator key types.
const KEY_TYPE_GROUP: i8 = 0;
const KEY_TYPE_TRANSACTION: i8 = 1;

/// Handles FindCoordinator: the coordinator of a group or transactional id is the leader
/// of its partition of the internal topic (created on first use, as Kafka does).
pub fn find_coordinator(broker: &Arc<Broker>, req: FindCoordinatorRequest, version: i16) -> Reply {
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
                req,
                version,
                Err(error),
            )));
        }
    };
    if let Some(t) = broker.metadata.image().topic(topic) {
        let t = t.clone();
        return Reply::Now(ResponseKind::FindCoordinator(coordinators(
            broker,
            req,
            version,
            Ok(&t),
        )));
    }
    let broker = broker.clone();
    Reply::Later(tokio::spawn(async move {
        let created = ensure_internal_topic(&broker, topic)
            .await
            .map_err(|e| (ResponseError::CoordinatorNotAvailable, e.message));
        ResponseKind::FindCoordinator(coordinators(
            &broker,
            req,
            version,
            created.as_ref().map_err(Clone::clone),
        ))
    }))
}

/// Where each key's coordinator is: the leader of the key's partition of `topic`, as
/// the metadata registers it and its endpoint.
fn coordinators(
    broker: &Broker,
    req: FindCoordinatorRequest,
    version: i16,
    topic: Result<&TopicImage, (ResponseError, String)>,
) -> FindCoordinatorResponse {
    let image = broker.metadata.image();
    let locate = |key: &str| -> Result<(i32, String, i32), (ResponseError, String)> {
        let topic = topic.clone()?;
        let index = coordinator_partition_for(key, topic.partition_count());
        let leader = topic.partition(index).map_or(-1, |p| p.leader);
        image
            .broker(leader)
            .and_then(client_endpoint)
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

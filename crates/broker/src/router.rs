//! Which APIs and versions Sluice speaks, and which handler serves each.

use std::net::SocketAddr;
use std::sync::Arc;

use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{ApiKey, ApiVersionsResponse, RequestKind, ResponseKind};
use kafka_protocol::error::ResponseError;
use sluice_protocol::kafka_protocol;

use crate::broker::Broker;
use crate::handlers;

/// Who sent a request, and at which version.
#[derive(Debug, Clone)]
pub struct RequestContext {
    /// The version of the request (responses use the same).
    pub api_version: i16,
    /// The client's `client.id`.
    pub client_id: String,
    /// The client's address.
    pub peer: SocketAddr,
}

/// What a handler hands back to the connection.
pub enum Reply {
    /// The response is ready.
    Now(ResponseKind),
    /// The response is being computed (it waits on something); the connection
    /// writes it when it completes, in request order.
    Later(tokio::task::JoinHandle<ResponseKind>),
    /// No response is sent (produce with acks=0).
    Nothing,
    /// Close the connection (acks=0 produce that failed, as Kafka does).
    Close,
}

/// The versions advertised in ApiVersions: the full range kafka-protocol can
/// decode for every API the broker implements.
pub const SUPPORTED_APIS: &[(ApiKey, i16, i16)] = &[
    (ApiKey::Produce, 3, 13),
    (ApiKey::Fetch, 4, 18),
    (ApiKey::ListOffsets, 1, 10),
    (ApiKey::Metadata, 0, 13),
    (ApiKey::OffsetCommit, 2, 9),
    (ApiKey::OffsetFetch, 1, 9),
    (ApiKey::FindCoordinator, 0, 6),
    (ApiKey::JoinGroup, 0, 9),
    (ApiKey::Heartbeat, 0, 4),
    (ApiKey::LeaveGroup, 0, 5),
    (ApiKey::SyncGroup, 0, 5),
    (ApiKey::DescribeGroups, 0, 6),
    (ApiKey::ListGroups, 0, 5),
    (ApiKey::ApiVersions, 0, 4),
    (ApiKey::CreateTopics, 2, 7),
    (ApiKey::DeleteTopics, 1, 6),
    (ApiKey::DeleteRecords, 0, 2),
    (ApiKey::DescribeConfigs, 1, 4),
    (ApiKey::AlterConfigs, 0, 2),
    (ApiKey::CreatePartitions, 0, 3),
    (ApiKey::DeleteGroups, 0, 2),
    (ApiKey::IncrementalAlterConfigs, 0, 1),
    (ApiKey::OffsetDelete, 0, 0),
    (ApiKey::DescribeCluster, 0, 2),
];

/// Whether `api` at `version` is one we decode and answer.
pub fn supports(api: ApiKey, version: i16) -> bool {
    SUPPORTED_APIS
        .iter()
        .any(|&(k, min, max)| k == api && (min..=max).contains(&version))
}

fn api_versions_table() -> Vec<ApiVersion> {
    SUPPORTED_APIS
        .iter()
        .map(|&(k, min, max)| {
            ApiVersion::default()
                .with_api_key(k as i16)
                .with_min_version(min)
                .with_max_version(max)
        })
        .collect()
}

/// ApiVersions answer for a version we do not know (KIP-511): v0 layout,
/// UNSUPPORTED_VERSION, and the table so the client can pick a version.
pub fn unsupported_api_versions() -> ResponseKind {
    ResponseKind::ApiVersions(
        ApiVersionsResponse::default()
            .with_error_code(ResponseError::UnsupportedVersion.code())
            .with_api_keys(api_versions_table()),
    )
}

/// Dispatches a decoded request to its handler.
pub async fn handle(broker: &Arc<Broker>, ctx: &RequestContext, request: RequestKind) -> Reply {
    let v = ctx.api_version;
    let now = |r| Reply::Now(r);
    match request {
        RequestKind::ApiVersions(_) => now(ResponseKind::ApiVersions(
            ApiVersionsResponse::default().with_api_keys(api_versions_table()),
        )),
        RequestKind::Metadata(r) => now(ResponseKind::Metadata(handlers::metadata::handle(broker, r, v))),
        RequestKind::Produce(r) => handlers::produce::handle(broker, r, v),
        RequestKind::Fetch(r) => handlers::fetch::handle(broker, r, v),
        RequestKind::ListOffsets(r) => now(ResponseKind::ListOffsets(handlers::list_offsets::handle(broker, r, v))),
        RequestKind::CreateTopics(r) => now(ResponseKind::CreateTopics(handlers::topics::create(broker, r, v))),
        RequestKind::DeleteTopics(r) => now(ResponseKind::DeleteTopics(handlers::topics::delete(broker, r, v))),
        RequestKind::CreatePartitions(r) => {
            now(ResponseKind::CreatePartitions(handlers::topics::create_partitions(broker, r, v)))
        }
        RequestKind::DeleteRecords(r) => now(ResponseKind::DeleteRecords(handlers::delete_records::handle(broker, r, v))),
        RequestKind::DescribeConfigs(r) => now(ResponseKind::DescribeConfigs(handlers::configs::describe(broker, r, v))),
        RequestKind::AlterConfigs(r) => now(ResponseKind::AlterConfigs(handlers::configs::alter(broker, r, v))),
        RequestKind::IncrementalAlterConfigs(r) => now(ResponseKind::IncrementalAlterConfigs(
            handlers::configs::incremental_alter(broker, r, v),
        )),
        RequestKind::DescribeCluster(r) => now(ResponseKind::DescribeCluster(handlers::cluster::describe(broker, r, v))),
        RequestKind::FindCoordinator(r) => now(ResponseKind::FindCoordinator(handlers::groups::find_coordinator(broker, r, v))),
        other => handlers::groups::handle(broker, ctx, other).await,
    }
}

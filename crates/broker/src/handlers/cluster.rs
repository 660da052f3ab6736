//! DescribeCluster: the brokers of the cluster and its controller.

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{
    BrokerId, DescribeClusterRequest, DescribeClusterResponse, ResponseKind,
};
use kafka_protocol::protocol::StrBytes;
use sluice_protocol::kafka_protocol;

use crate::broker::Broker;
use crate::handlers::metadata::{
    ALL_CLUSTER_OPERATIONS, AUTHORIZED_OPERATIONS_OMITTED, client_endpoint, controller_id,
};
use crate::request::{Reply, RequestContext};

/// Endpoint type "brokers" (KIP-919); controllers are not exposed separately.
const ENDPOINT_TYPE_BROKERS: i8 = 1;

/// Handles DescribeCluster.
pub async fn describe_cluster(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    req: DescribeClusterRequest,
) -> Reply {
    Reply::Now(ResponseKind::DescribeCluster(describe(broker, ctx, req)))
}

/// The live brokers (and with `include_fenced_brokers`, v2, the fenced ones, marked).
fn describe(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    req: DescribeClusterRequest,
) -> DescribeClusterResponse {
    let version = ctx.api_version();
    let base = DescribeClusterResponse::default().with_endpoint_type(ENDPOINT_TYPE_BROKERS);
    if version >= 1 && req.endpoint_type != ENDPOINT_TYPE_BROKERS {
        return base
            .with_error_code(ResponseError::UnsupportedEndpointType.code())
            .with_error_message(Some(StrBytes::from_static_str(
                "Only brokers endpoints are served",
            )));
    }
    let image = broker.metadata.image();
    let include_fenced = version >= 2 && req.include_fenced_brokers;
    let brokers = image
        .brokers()
        .filter(|b| include_fenced || !b.fenced)
        .filter_map(|b| {
            let endpoint = client_endpoint(b, &ctx.listener)?;
            Some(
                DescribeClusterBroker::default()
                    .with_broker_id(BrokerId(b.id))
                    .with_host(StrBytes::from_string(endpoint.host.clone()))
                    .with_port(endpoint.port)
                    .with_rack(b.rack.clone().map(StrBytes::from_string))
                    .with_is_fenced(version >= 2 && b.fenced),
            )
        })
        .collect();
    base.with_cluster_id(StrBytes::from_string(broker.cluster_id.clone()))
        .with_controller_id(BrokerId(controller_id(broker, &image)))
        .with_brokers(brokers)
        .with_cluster_authorized_operations(if req.include_cluster_authorized_operations {
            ALL_CLUSTER_OPERATIONS
        } else {
            AUTHORIZED_OPERATIONS_OMITTED
        })
}

//! InitProducerId for idempotent producers.

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{
    InitProducerIdRequest, InitProducerIdResponse, ProducerId, ResponseKind,
};
use sluice_protocol::kafka_protocol;

use crate::broker::Broker;
use crate::handlers::transactions;
use crate::request::{Reply, RequestContext};

/// Handles InitProducerId: a transactional id goes to the transaction coordinator; without
/// one, this broker hands out the producer id.
pub async fn init_producer_id(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    req: InitProducerIdRequest,
) -> Reply {
    if req
        .transactional_id
        .as_deref()
        .is_some_and(|t| !t.is_empty())
    {
        return transactions::init_transactional_producer(broker, ctx, req);
    }
    Reply::Now(ResponseKind::InitProducerId(
        idempotent_producer(broker, req).await,
    ))
}

/// Without a transactional id, Kafka hands out a fresh producer id with epoch 0 every time
/// (an idempotent producer that needs a new epoch simply gets a new id).
async fn idempotent_producer(
    broker: &Arc<Broker>,
    req: InitProducerIdRequest,
) -> InitProducerIdResponse {
    let base = InitProducerIdResponse::default()
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    match req.transactional_id.as_deref().map(|t| t.is_empty()) {
        None => {}
        // Kafka refuses an empty transactional id outright.
        Some(true) => return base.with_error_code(ResponseError::InvalidRequest.code()),
        // Routed to the transaction coordinator before reaching here.
        Some(false) => return base.with_error_code(ResponseError::NotCoordinator.code()),
    }
    match broker.producer_ids.next_id().await {
        Ok(id) => base.with_producer_id(ProducerId(id)).with_producer_epoch(0),
        Err(e) => {
            tracing::warn!(error = %e, "cannot reserve producer ids");
            base.with_error_code(ResponseError::CoordinatorLoadInProgress.code())
        }
    }
}

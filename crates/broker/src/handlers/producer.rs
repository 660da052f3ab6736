//! InitProducerId for idempotent producers.

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};
use sluice_protocol::kafka_protocol;

use crate::broker::Broker;

/// Handles InitProducerId. Without a transactional id, Kafka hands out a fresh
/// producer id with epoch 0 every time (an idempotent producer that needs a
/// new epoch simply gets a new id). Transactional ids go to the transaction
/// coordinator instead.
pub fn handle(
    broker: &Arc<Broker>,
    req: InitProducerIdRequest,
    _version: i16,
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
    match broker.producer_ids.next_id(&broker.metadata) {
        Ok(id) => base.with_producer_id(ProducerId(id)).with_producer_epoch(0),
        Err(e) => {
            tracing::error!(error = %e, "cannot reserve producer ids");
            base.with_error_code(ResponseError::UnknownServerError.code())
        }
    }
}

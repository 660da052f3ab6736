//! DescribeTransactions and ListTransactions (KIP-664), the admin view used
//! by `kafka-transactions.sh` to find and inspect hanging transactions.

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_transactions_response::{self, TopicData};
use kafka_protocol::messages::list_transactions_response;
use kafka_protocol::messages::{
    DescribeTransactionsRequest, DescribeTransactionsResponse, ListTransactionsRequest,
    ListTransactionsResponse, ProducerId, TopicName, TransactionalId,
};
use kafka_protocol::protocol::StrBytes;
use sluice_coordinator::CoordinatorError;

use crate::coordinator::Inner;
use crate::metadata::TxnMetadata;
use crate::pattern::Pattern;
use crate::state::TxnState;

/// Answers DescribeTransactions: unknown ids get TRANSACTIONAL_ID_NOT_FOUND
/// with every other field at its default, like Kafka.
pub(crate) fn describe(
    inner: &Arc<Inner>,
    req: &DescribeTransactionsRequest,
    _version: i16,
) -> DescribeTransactionsResponse {
    let states = req
        .transactional_ids
        .iter()
        .map(|tid| {
            let base = describe_transactions_response::TransactionState::default()
                .with_transactional_id(tid.clone());
            let described = inner.cell_for(tid.0.as_str()).and_then(|cell| {
                let shard = cell.lock().map_err(|e| e.response_error())?;
                Ok(shard
                    .txns
                    .get(tid.0.as_str())
                    .map(|meta| described(base.clone(), meta)))
            });
            match described {
                Ok(Some(state)) => state,
                Ok(None) => base.with_error_code(ResponseError::TransactionalIdNotFound.code()),
                Err(e) => base.with_error_code(e.code()),
            }
        })
        .collect();
    DescribeTransactionsResponse::default().with_transaction_states(states)
}

/// `base` filled in with the state of `meta`.
fn described(
    base: describe_transactions_response::TransactionState,
    meta: &TxnMetadata,
) -> describe_transactions_response::TransactionState {
    let cur = &meta.current;
    let mut topics: Vec<TopicData> = Vec::new();
    for tp in &cur.partitions {
        match topics.last_mut() {
            Some(last) if last.topic.0.as_str() == tp.topic => {
                last.partitions.push(tp.partition);
            }
            _ => topics.push(
                TopicData::default()
                    .with_topic(TopicName(StrBytes::from_string(tp.topic.clone())))
                    .with_partitions(vec![tp.partition]),
            ),
        }
    }
    base.with_transaction_state(StrBytes::from_static_str(visible_state(meta).as_str()))
        .with_transaction_timeout_ms(cur.timeout_ms)
        .with_transaction_start_time_ms(cur.start_ms)
        .with_producer_id(ProducerId(cur.producer_id))
        .with_producer_epoch(cur.producer_epoch)
        .with_topics(topics)
}

/// The state the admin APIs report: a pending expiry already reads as Dead.
fn visible_state(meta: &TxnMetadata) -> TxnState {
    if meta.pending == Some(TxnState::Dead) {
        TxnState::Dead
    } else {
        meta.current.state
    }
}

/// Answers ListTransactions. Unknown state names are echoed back in
/// `unknown_state_filters` (and match nothing); Dead ids are never listed.
pub(crate) fn list(
    inner: &Arc<Inner>,
    req: &ListTransactionsRequest,
    version: i16,
    now_ms: i64,
) -> ListTransactionsResponse {
    let mut response = ListTransactionsResponse::default();
    let mut states = Vec::new();
    for name in &req.state_filters {
        match TxnState::from_name(name.as_str()) {
            Some(s) => states.push(s),
            None => response.unknown_state_filters.push(name.clone()),
        }
    }
    let duration = if version >= 1 {
        req.duration_filter
    } else {
        -1
    };
    let pattern = match req
        .transactional_id_pattern
        .as_ref()
        .filter(|_| version >= 2)
    {
        Some(p) if !p.is_empty() => match Pattern::parse(p.as_str()) {
            Ok(p) => Some(p),
            Err(()) => {
                return response.with_error_code(ResponseError::InvalidRegularExpression.code());
            }
        },
        _ => None,
    };
    let cells = inner.shards.cells();
    let mut listed = Vec::new();
    for cell in &cells {
        let shard = match cell.lock() {
            Ok(shard) => shard,
            // Kafka answers the whole listing so while a partition loads.
            Err(CoordinatorError::LoadInProgress) => {
                return response.with_error_code(ResponseError::CoordinatorLoadInProgress.code());
            }
            Err(CoordinatorError::NotCoordinator) => continue,
        };
        listed.extend(
            shard
                .txns
                .iter()
                .filter(|(tid, meta)| {
                    let s = visible_state(meta);
                    s != TxnState::Dead
                        && (req.producer_id_filters.is_empty()
                            || req
                                .producer_id_filters
                                .iter()
                                .any(|p| p.0 == meta.current.producer_id))
                        && (req.state_filters.is_empty() || states.contains(&s))
                        && (duration < 0 || now_ms.saturating_sub(meta.current.start_ms) > duration)
                        && pattern.as_ref().is_none_or(|p| p.matches(tid))
                })
                .map(|(tid, meta)| {
                    list_transactions_response::TransactionState::default()
                        .with_transactional_id(TransactionalId(StrBytes::from_string(tid.clone())))
                        .with_producer_id(ProducerId(meta.current.producer_id))
                        .with_transaction_state(StrBytes::from_static_str(
                            visible_state(meta).as_str(),
                        ))
                }),
        );
    }
    listed.sort_by(|a, b| {
        a.transactional_id
            .0
            .as_str()
            .cmp(b.transactional_id.0.as_str())
    });
    response.with_transaction_states(listed)
}

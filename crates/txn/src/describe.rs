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
    let state = inner.state.lock();
    let states = req
        .transactional_ids
        .iter()
        .map(|tid| {
            let base = describe_transactions_response::TransactionState::default()
                .with_transactional_id(tid.clone());
            match state.txns.get(tid.0.as_str()) {
                None => base.with_error_code(ResponseError::TransactionalIdNotFound.code()),
                Some(meta) => {
                    let cur = &meta.current;
                    let mut topics: Vec<TopicData> = Vec::new();
                    for (topic, partition) in &cur.partitions {
                        match topics.last_mut() {
                            Some(last) if last.topic.0.as_str() == topic => {
                                last.partitions.push(*partition);
                            }
                            _ => topics.push(
                                TopicData::default()
                                    .with_topic(TopicName(StrBytes::from_string(topic.clone())))
                                    .with_partitions(vec![*partition]),
                            ),
                        }
                    }
                    base.with_transaction_state(StrBytes::from_static_str(
                        visible_state(meta).as_str(),
                    ))
                    .with_transaction_timeout_ms(cur.timeout_ms)
                    .with_transaction_start_time_ms(cur.start_ms)
                    .with_producer_id(ProducerId(cur.producer_id))
                    .with_producer_epoch(cur.producer_epoch)
                    .with_topics(topics)
                }
            }
        })
        .collect();
    DescribeTransactionsResponse::default().with_transaction_states(states)
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
    let state = inner.state.lock();
    let mut listed: Vec<list_transactions_response::TransactionState> = state
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
                .with_transaction_state(StrBytes::from_static_str(visible_state(meta).as_str()))
        })
        .collect();
    listed.sort_by(|a, b| {
        a.transactional_id
            .0
            .as_str()
            .cmp(b.transactional_id.0.as_str())
    });
    response.with_transaction_states(listed)
}

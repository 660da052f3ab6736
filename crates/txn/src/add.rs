//! AddPartitionsToTxn and AddOffsetsToTxn (Kafka's
//! `handleAddPartitionsToTransaction` and `handleVerifyPartitionsInTransaction`).
//!
//! Adding a partition is what opens a transaction: the id moves to Ongoing
//! and the partition will get a marker when the transaction ends. Since
//! KIP-890, v4+ requests batch several transactions and may only *verify*
//! that partitions were added, which is how a partition leader refuses a
//! late transactional write that would otherwise join the next transaction.

use std::collections::HashMap;
use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnResult, AddPartitionsToTxnTopicResult,
};
use kafka_protocol::messages::{
    AddOffsetsToTxnRequest, AddOffsetsToTxnResponse, AddPartitionsToTxnRequest,
    AddPartitionsToTxnResponse,
};

use sluice_protocol::model::{ProducerIdAndEpoch, TopicPartition};

use crate::coordinator::Inner;
use crate::shard::TxnShard;
use crate::state::TxnState;

/// The topic Kafka keeps committed offsets in.
const OFFSETS_TOPIC: &str = "__consumer_offsets";

/// Answers AddPartitionsToTxn at `version`.
pub(crate) async fn handle(
    inner: &Arc<Inner>,
    req: AddPartitionsToTxnRequest,
    version: i16,
) -> AddPartitionsToTxnResponse {
    if version <= 3 {
        let errors = transaction(
            inner,
            req.v3_and_below_transactional_id.0.as_str(),
            ProducerIdAndEpoch::new(
                req.v3_and_below_producer_id.0,
                req.v3_and_below_producer_epoch,
            ),
            &req.v3_and_below_topics,
            false,
            version,
        )
        .await;
        return AddPartitionsToTxnResponse::default()
            .with_results_by_topic_v3_and_below(topic_results(&req.v3_and_below_topics, &errors));
    }
    let mut results = Vec::with_capacity(req.transactions.len());
    for txn in &req.transactions {
        let errors = transaction(
            inner,
            txn.transactional_id.0.as_str(),
            ProducerIdAndEpoch::new(txn.producer_id.0, txn.producer_epoch),
            &txn.topics,
            txn.verify_only,
            version,
        )
        .await;
        results.push(
            AddPartitionsToTxnResult::default()
                .with_transactional_id(txn.transactional_id.clone())
                .with_topic_results(topic_results(&txn.topics, &errors)),
        );
    }
    AddPartitionsToTxnResponse::default().with_results_by_transaction(results)
}

/// Answers AddOffsetsToTxn at `version`: the group's `__consumer_offsets`
/// partition joins the transaction.
pub(crate) async fn handle_offsets(
    inner: &Arc<Inner>,
    req: AddOffsetsToTxnRequest,
    version: i16,
) -> AddOffsetsToTxnResponse {
    let partition = sluice_protocol::model::coordinator_partition_for(
        req.group_id.0.as_str(),
        inner.offsets_partitions(),
    );
    let partitions = [TopicPartition::new(OFFSETS_TOPIC, partition)];
    let result = add(
        inner,
        req.transactional_id.0.as_str(),
        ProducerIdAndEpoch::new(req.producer_id.0, req.producer_epoch),
        &partitions,
    )
    .await;
    AddOffsetsToTxnResponse::default().with_error_code(code(fenced_for(result.err(), version, 2)))
}

/// Per-partition errors (`None` = success) of one transaction of a request.
type PartitionErrors = HashMap<TopicPartition, Option<ResponseError>>;

async fn transaction(
    inner: &Arc<Inner>,
    tid: &str,
    producer: ProducerIdAndEpoch,
    topics: &[AddPartitionsToTxnTopic],
    verify_only: bool,
    version: i16,
) -> PartitionErrors {
    let partitions: Vec<TopicPartition> = topics
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(|p| TopicPartition::new(t.name.0.as_str(), *p))
        })
        .collect();
    if let Some(check) = inner.partition_check() {
        let failed: PartitionErrors = partitions
            .iter()
            .filter_map(|tp| check(tp).map(|e| (tp.clone(), Some(e))))
            .collect();
        if !failed.is_empty() {
            // Any failed partition fails the whole transaction; the others
            // were not attempted.
            return partitions
                .into_iter()
                .map(|tp| {
                    let e = failed
                        .get(&tp)
                        .copied()
                        .flatten()
                        .unwrap_or(ResponseError::OperationNotAttempted);
                    (tp, Some(e))
                })
                .collect();
        }
    }
    if verify_only {
        let verified = inner.cell_for(tid).and_then(|cell| {
            let shard = cell.lock().map_err(|e| e.response_error())?;
            Ok(verify(&shard, tid, producer, &partitions, version))
        });
        return verified
            .unwrap_or_else(|e| partitions.into_iter().map(|tp| (tp, Some(e))).collect());
    }
    let error = fenced_for(
        add(inner, tid, producer, &partitions).await.err(),
        version,
        2,
    );
    partitions.into_iter().map(|tp| (tp, error)).collect()
}

/// Adds `partitions` to the transaction of `tid`.
pub(crate) async fn add(
    inner: &Arc<Inner>,
    tid: &str,
    producer: ProducerIdAndEpoch,
    partitions: &[TopicPartition],
) -> Result<(), ResponseError> {
    if tid.is_empty() {
        return Err(ResponseError::InvalidRequest);
    }
    let cell = inner.cell_for(tid)?;
    let target = {
        let mut shard = cell.lock().map_err(|e| e.response_error())?;
        let Some(meta) = shard.txns.get_mut(tid) else {
            return Err(ResponseError::InvalidProducerIdMapping);
        };
        if meta.pending.is_some() {
            // Checked first: the transition in flight may change everything below.
            return Err(ResponseError::ConcurrentTransactions);
        }
        let cur = &meta.current;
        if cur.producer_id != producer.producer_id {
            return Err(ResponseError::InvalidProducerIdMapping);
        }
        if cur.producer_epoch != producer.epoch {
            return Err(ResponseError::ProducerFenced);
        }
        match cur.state {
            TxnState::PrepareCommit | TxnState::PrepareAbort => {
                return Err(ResponseError::ConcurrentTransactions);
            }
            TxnState::Ongoing if partitions.iter().all(|tp| cur.partitions.contains(tp)) => {
                // Nothing new: no write needed.
                return Ok(());
            }
            TxnState::Ongoing
            | TxnState::Empty
            | TxnState::CompleteCommit
            | TxnState::CompleteAbort => {}
            TxnState::Dead | TxnState::PrepareEpochFence => {
                return Err(ResponseError::InvalidTxnState);
            }
        }
        let target = meta.add_partitions(partitions, inner.clock.now_ms());
        meta.begin(target)
    };
    inner.persist(&cell, tid, target).await
}

/// KIP-890 verification: which of `partitions` are already in the ongoing
/// transaction. Missing ones get TRANSACTION_ABORTABLE from v5 on (the client
/// can abort and carry on) and INVALID_TXN_STATE before.
fn verify(
    shard: &TxnShard,
    tid: &str,
    producer: ProducerIdAndEpoch,
    partitions: &[TopicPartition],
    version: i16,
) -> PartitionErrors {
    let all = |e: ResponseError| -> PartitionErrors {
        partitions.iter().map(|tp| (tp.clone(), Some(e))).collect()
    };
    if tid.is_empty() {
        return all(ResponseError::InvalidRequest);
    }
    let Some(meta) = shard.txns.get(tid) else {
        return all(ResponseError::InvalidProducerIdMapping);
    };
    let cur = &meta.current;
    if cur.producer_id != producer.producer_id {
        return all(ResponseError::InvalidProducerIdMapping);
    }
    if cur.producer_epoch != producer.epoch {
        return all(ResponseError::ProducerFenced);
    }
    if cur.state.is_prepare() {
        return all(ResponseError::ConcurrentTransactions);
    }
    let missing = if version >= 5 {
        ResponseError::TransactionAbortable
    } else {
        ResponseError::InvalidTxnState
    };
    partitions
        .iter()
        .map(|tp| {
            let ok = cur.state == TxnState::Ongoing && cur.partitions.contains(tp);
            (tp.clone(), (!ok).then_some(missing))
        })
        .collect()
}

/// Builds the per-topic results in request order.
fn topic_results(
    topics: &[AddPartitionsToTxnTopic],
    errors: &PartitionErrors,
) -> Vec<AddPartitionsToTxnTopicResult> {
    topics
        .iter()
        .map(|t| {
            let name = t.name.0.as_str();
            AddPartitionsToTxnTopicResult::default()
                .with_name(t.name.clone())
                .with_results_by_partition(
                    t.partitions
                        .iter()
                        .map(|p| {
                            let e = errors
                                .get(&TopicPartition::new(name, *p))
                                .copied()
                                .flatten();
                            AddPartitionsToTxnPartitionResult::default()
                                .with_partition_index(*p)
                                .with_partition_error_code(code(e))
                        })
                        .collect(),
                )
        })
        .collect()
}

/// KIP-588 introduced PRODUCER_FENCED at `since`; older clients get
/// INVALID_PRODUCER_EPOCH, which they handle the same way.
pub(crate) fn fenced_for(
    error: Option<ResponseError>,
    version: i16,
    since: i16,
) -> Option<ResponseError> {
    match error {
        Some(ResponseError::ProducerFenced) if version < since => {
            Some(ResponseError::InvalidProducerEpoch)
        }
        other => other,
    }
}

pub(crate) fn code(error: Option<ResponseError>) -> i16 {
    error.map_or(0, |e| e.code())
}

//! KIP-890 part 1 across nodes: before a partition leader appends a transactional batch it
//! makes sure the partition was added to the producer's ongoing transaction, so a write
//! delayed past the end of its transaction cannot slip into the next one. When this node
//! is the transaction's coordinator it asks its own coordinator (synchronously, per
//! batch); otherwise it asks the coordinator's node with AddPartitionsToTxn v5
//! `verify_only` (Kafka's `AddPartitionsToTxnManager`), once per transaction and
//! partition: a producer whose ongoing transaction already has batches in the partition
//! was verified when its first batch came.
//!
//! The coordinator's answers become the errors a producer expects from a produce (Kafka's
//! `AddPartitionsToTxnManager` mapping): a fenced producer gets INVALID_PRODUCER_EPOCH, a
//! coordinator that is moving or busy ending the transaction NOT_ENOUGH_REPLICAS (which
//! producers retry), a partition not in the transaction INVALID_TXN_STATE — the same
//! answers a local coordinator gives.

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::add_partitions_to_txn_request::{
    AddPartitionsToTxnTopic, AddPartitionsToTxnTransaction,
};
use kafka_protocol::messages::{
    AddPartitionsToTxnRequest, ProduceRequest, ProducerId, TransactionalId,
};
use sluice_protocol::batch::split_batches;
use sluice_protocol::kafka_protocol;
use sluice_protocol::model::{ProducerIdAndEpoch, TopicPartition, coordinator_partition_for};

use crate::broker::Broker;
use crate::peer::call_peer;
use crate::topic_admin::TRANSACTION_STATE_TOPIC;

/// The AddPartitionsToTxn version leaders verify with (the first that answers a missing
/// partition with TRANSACTION_ABORTABLE).
const VERIFY_VERSION: i16 = 5;

/// How long a leader waits for the coordinator's answer.
const VERIFY_TIMEOUT: Duration = Duration::from_secs(10);

/// The outcome of remote verification per partition of a Produce (partitions not listed
/// need none, or are verified locally).
pub type Verified = HashMap<TopicPartition, Result<(), ResponseError>>;

/// Verifies with a remote coordinator the transactional partitions of `req` that need it.
/// Empty when the request is not transactional or its coordinator is this node.
pub async fn verify_remotely(broker: &Broker, req: &ProduceRequest, version: i16) -> Verified {
    let Some(tid) = req.transactional_id.as_ref().map(|t| t.to_string()) else {
        return Verified::new();
    };
    let image = broker.metadata.image();
    let Some(coordinator) = image.topic(TRANSACTION_STATE_TOPIC).and_then(|t| {
        t.partition(coordinator_partition_for(&tid, t.partition_count()))
            .map(|p| p.leader)
    }) else {
        return Verified::new();
    };
    if coordinator == broker.node_id() {
        return Verified::new();
    }
    // The partitions whose first transactional batch of this transaction this is.
    let mut producer = None;
    let mut needed = Vec::new();
    for topic in &req.topic_data {
        let resolved = if version >= 13 {
            image.topic_by_id(&topic.topic_id)
        } else {
            image.topic(&topic.name)
        };
        let Some(resolved) = resolved else { continue };
        for data in &topic.partition_data {
            let Some(batch_producer) = data.records.as_ref().and_then(transactional_producer)
            else {
                continue;
            };
            producer = Some(batch_producer);
            let local = broker.replicas.logs().get(resolved.id, data.index);
            let already_in = local.is_some_and(|p| {
                p.producers()
                    .iter()
                    .any(|s| s.producer == batch_producer && s.ongoing_txn_first_offset.is_some())
            });
            if !already_in {
                needed.push(TopicPartition::new(resolved.name.as_str(), data.index));
            }
        }
    }
    let Some(producer) = producer.filter(|_| !needed.is_empty()) else {
        return Verified::new();
    };
    let outcome = ask_coordinator(broker, coordinator, &tid, producer, &needed).await;
    needed
        .into_iter()
        .map(|tp| {
            let result = match &outcome {
                Ok(codes) => match codes.get(&tp).copied().flatten() {
                    None => Ok(()),
                    Some(code) => Err(produce_error(code)),
                },
                Err(code) => Err(*code),
            };
            (tp, result)
        })
        .collect()
}

/// The producer of the first batch of `records` when it is transactional.
fn transactional_producer(records: &Bytes) -> Option<ProducerIdAndEpoch> {
    let (header, _) = split_batches(records).next()?.ok()?;
    header
        .is_transactional()
        .then(|| ProducerIdAndEpoch::new(header.producer_id, header.producer_epoch))
}

/// Asks node `coordinator` whether `partitions` are in `tid`'s ongoing transaction: each
/// partition's error (None: it is), or the error for all when the coordinator did not
/// answer usefully.
async fn ask_coordinator(
    broker: &Broker,
    coordinator: i32,
    tid: &str,
    producer: ProducerIdAndEpoch,
    partitions: &[TopicPartition],
) -> Result<HashMap<TopicPartition, Option<ResponseError>>, ResponseError> {
    let Some(peers) = broker.peers.get() else {
        return Err(ResponseError::NotEnoughReplicas);
    };
    let mut topics: Vec<AddPartitionsToTxnTopic> = Vec::new();
    for tp in partitions {
        match topics.iter_mut().find(|t| t.name.as_str() == tp.topic) {
            Some(t) => t.partitions.push(tp.partition),
            None => topics.push(
                AddPartitionsToTxnTopic::default()
                    .with_name(kafka_protocol::messages::TopicName(
                        kafka_protocol::protocol::StrBytes::from_string(tp.topic.clone()),
                    ))
                    .with_partitions(vec![tp.partition]),
            ),
        }
    }
    let request = AddPartitionsToTxnRequest::default().with_transactions(vec![
        AddPartitionsToTxnTransaction::default()
            .with_transactional_id(TransactionalId(
                kafka_protocol::protocol::StrBytes::from_string(tid.to_string()),
            ))
            .with_producer_id(ProducerId(producer.producer_id))
            .with_producer_epoch(producer.epoch)
            .with_verify_only(true)
            .with_topics(topics),
    ]);
    let response = call_peer(&**peers, coordinator, VERIFY_VERSION, &request, VERIFY_TIMEOUT)
        .await
        .map_err(|e| {
            tracing::debug!(coordinator, error = %e, "cannot verify a transactional write with its coordinator");
            ResponseError::NotEnoughReplicas
        })?;
    if let Some(code) = ResponseError::try_from_code(response.error_code) {
        return Err(produce_error(code));
    }
    let mut codes = HashMap::new();
    for txn in response.results_by_transaction {
        for topic in txn.topic_results {
            for p in topic.results_by_partition {
                codes.insert(
                    TopicPartition::new(topic.name.as_str(), p.partition_index),
                    ResponseError::try_from_code(p.partition_error_code),
                );
            }
        }
    }
    Ok(codes)
}

/// What a producer gets for a verification error of the coordinator.
fn produce_error(code: ResponseError) -> ResponseError {
    match code {
        ResponseError::ProducerFenced | ResponseError::InvalidProducerEpoch => {
            ResponseError::InvalidProducerEpoch
        }
        ResponseError::ConcurrentTransactions
        | ResponseError::NotCoordinator
        | ResponseError::CoordinatorNotAvailable
        | ResponseError::CoordinatorLoadInProgress => ResponseError::NotEnoughReplicas,
        // As a local coordinator answers the produce path.
        ResponseError::TransactionAbortable => ResponseError::InvalidTxnState,
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coordinator_errors_become_what_producers_retry_or_abort_on() {
        assert_eq!(
            produce_error(ResponseError::ProducerFenced),
            ResponseError::InvalidProducerEpoch
        );
        assert_eq!(
            produce_error(ResponseError::NotCoordinator),
            ResponseError::NotEnoughReplicas
        );
        assert_eq!(
            produce_error(ResponseError::ConcurrentTransactions),
            ResponseError::NotEnoughReplicas
        );
        assert_eq!(
            produce_error(ResponseError::TransactionAbortable),
            ResponseError::InvalidTxnState
        );
    }
}

//! Transaction APIs: the transaction coordinator answers them; DescribeProducers
//! reads the partitions' producer state.

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_producers_response::{
    PartitionResponse, ProducerState, TopicResponse,
};
use kafka_protocol::messages::{
    AddOffsetsToTxnRequest, AddPartitionsToTxnRequest, DescribeProducersRequest,
    DescribeProducersResponse, DescribeTransactionsRequest, EndTxnRequest, InitProducerIdRequest,
    ListTransactionsRequest, ProducerId, ResponseKind, TxnOffsetCommitRequest,
};
use sluice_protocol::kafka_protocol;
use sluice_protocol::model::LeaderEpoch;

use crate::broker::Broker;
use crate::handlers::commit_topics;
use crate::request::{Reply, RequestContext};

// The transaction coordinator's APIs. Each may wait for a durable write (or for markers), so
// they run as tasks, answered in request order.

/// Handles InitProducerId for a transactional id (see `producer::init_producer_id`).
pub fn init_transactional_producer(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    r: InitProducerIdRequest,
) -> Reply {
    let (txn, v) = (broker.txn.clone(), ctx.api_version());
    Reply::Later(tokio::spawn(async move {
        ResponseKind::InitProducerId(txn.init_producer_id(r, v).await)
    }))
}

/// Handles AddPartitionsToTxn.
pub async fn add_partitions_to_txn(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    r: AddPartitionsToTxnRequest,
) -> Reply {
    let (txn, v) = (broker.txn.clone(), ctx.api_version());
    Reply::Later(tokio::spawn(async move {
        ResponseKind::AddPartitionsToTxn(txn.add_partitions_to_txn(r, v).await)
    }))
}

/// Handles AddOffsetsToTxn.
pub async fn add_offsets_to_txn(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    r: AddOffsetsToTxnRequest,
) -> Reply {
    let (txn, v) = (broker.txn.clone(), ctx.api_version());
    Reply::Later(tokio::spawn(async move {
        ResponseKind::AddOffsetsToTxn(txn.add_offsets_to_txn(r, v).await)
    }))
}

/// Handles EndTxn.
pub async fn end_txn(broker: &Arc<Broker>, ctx: &RequestContext, r: EndTxnRequest) -> Reply {
    let (txn, v) = (broker.txn.clone(), ctx.api_version());
    Reply::Later(tokio::spawn(async move {
        ResponseKind::EndTxn(txn.end_txn(r, v).await)
    }))
}

/// Handles TxnOffsetCommit, checking the partitions exist first.
pub async fn txn_offset_commit(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    r: TxnOffsetCommitRequest,
) -> Reply {
    let (broker, v) = (broker.clone(), ctx.api_version());
    Reply::Later(tokio::spawn(async move {
        ResponseKind::TxnOffsetCommit(commit_topics::txn_offset_commit(&broker, r, v).await)
    }))
}

/// Handles DescribeTransactions.
pub async fn describe_transactions(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    r: DescribeTransactionsRequest,
) -> Reply {
    let (txn, v) = (broker.txn.clone(), ctx.api_version());
    Reply::Later(tokio::spawn(async move {
        ResponseKind::DescribeTransactions(txn.describe_transactions(r, v).await)
    }))
}

/// Handles ListTransactions.
pub async fn list_transactions(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    r: ListTransactionsRequest,
) -> Reply {
    let (txn, v) = (broker.txn.clone(), ctx.api_version());
    Reply::Later(tokio::spawn(async move {
        ResponseKind::ListTransactions(txn.list_transactions(r, v).await)
    }))
}

/// Handles DescribeProducers.
pub async fn describe_producers(
    broker: &Arc<Broker>,
    _: &RequestContext,
    r: DescribeProducersRequest,
) -> Reply {
    Reply::Now(ResponseKind::DescribeProducers(producers_of(broker, r)))
}

/// DescribeProducers: the idempotent/transactional producers each partition knows.
fn producers_of(broker: &Arc<Broker>, req: DescribeProducersRequest) -> DescribeProducersResponse {
    let image = broker.metadata.image();
    let topics = req
        .topics
        .into_iter()
        .map(|topic| {
            let partitions = topic
                .partition_indexes
                .iter()
                .map(|&index| {
                    let base = PartitionResponse::default().with_partition_index(index);
                    let found = image
                        .topic(&topic.name)
                        .ok_or(ResponseError::UnknownTopicOrPartition)
                        .and_then(|t| {
                            broker
                                .replicas
                                .leader_partition(t, index, LeaderEpoch::UNKNOWN)
                                .map_err(|e| e.code)
                        });
                    let partition = match found {
                        Ok(partition) => partition,
                        Err(code) => return base.with_error_code(code.code()),
                    };
                    base.with_active_producers(
                        partition
                            .producers()
                            .into_iter()
                            .map(|p| {
                                ProducerState::default()
                                    .with_producer_id(ProducerId(p.producer.producer_id))
                                    .with_producer_epoch(i32::from(p.producer.epoch))
                                    .with_last_sequence(p.last_sequence)
                                    .with_last_timestamp(p.last_timestamp)
                                    .with_coordinator_epoch(-1)
                                    .with_current_txn_start_offset(
                                        p.ongoing_txn_first_offset.unwrap_or(-1),
                                    )
                            })
                            .collect(),
                    )
                })
                .collect();
            TopicResponse::default()
                .with_name(topic.name)
                .with_partitions(partitions)
        })
        .collect();
    DescribeProducersResponse::default().with_topics(topics)
}

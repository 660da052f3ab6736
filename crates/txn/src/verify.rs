//! KIP-890 part 1 for the produce path: a transactional write is accepted
//! only if its partition was added to the producer's ongoing transaction.
//!
//! Without this check, a write delayed past the end of its transaction (a
//! retry stuck in the network) would land after the markers and silently
//! join the producer's *next* transaction. Kafka's partition leaders ask the
//! coordinator (AddPartitionsToTxn verify_only); Sluice's coordinator is
//! local, so the produce path asks this in-memory index directly.

use kafka_protocol::error::ResponseError;
use sluice_protocol::model::{ProducerIdAndEpoch, TopicPartition};

use crate::shard::TxnShard;
use crate::state::TxnState;

/// See [`crate::TransactionCoordinator::verify_partition`]. Errors are the
/// ones a Kafka partition leader returns on the produce: INVALID_TXN_STATE
/// (no ongoing transaction with this partition), INVALID_PRODUCER_EPOCH (the
/// coordinator's PRODUCER_FENCED as the produce path reports it), and
/// NOT_ENOUGH_REPLICAS (Kafka's retriable stand-in for
/// CONCURRENT_TRANSACTIONS) while the transaction is being ended.
pub(crate) fn verify_partition(
    shard: &TxnShard,
    producer: ProducerIdAndEpoch,
    tp: &TopicPartition,
) -> Result<(), ResponseError> {
    let meta = shard
        .by_producer
        .get(&producer.producer_id)
        .and_then(|tid| shard.txns.get(tid))
        .filter(|m| m.current.producer_id == producer.producer_id)
        .ok_or(ResponseError::InvalidTxnState)?;
    let cur = &meta.current;
    if cur.producer_epoch != producer.epoch {
        return Err(ResponseError::InvalidProducerEpoch);
    }
    let ending = matches!(
        meta.pending,
        Some(
            TxnState::PrepareCommit
                | TxnState::PrepareAbort
                | TxnState::CompleteCommit
                | TxnState::CompleteAbort
        )
    );
    if cur.state.is_prepare() || ending {
        return Err(ResponseError::NotEnoughReplicas);
    }
    let added = cur.partitions.contains(tp);
    if cur.state == TxnState::Ongoing && added {
        Ok(())
    } else {
        Err(ResponseError::InvalidTxnState)
    }
}

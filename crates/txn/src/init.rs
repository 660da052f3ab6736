//! InitProducerId for transactional ids (Kafka's `handleInitProducerId`).
//!
//! A new id gets a fresh producer id at epoch 0. An existing id gets its
//! epoch bumped, which fences every older instance of the producer; at an
//! exhausted epoch it moves to a new producer id. An open transaction is
//! first aborted with a bumped epoch and the client is told
//! CONCURRENT_TRANSACTIONS, so its retry bumps the epoch once more after the
//! abort completed. KIP-360/KIP-588 (v3+): a client naming its current
//! producer id and epoch may recover without losing its id, and a retried
//! request gets the answer of the first one.

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};

use sluice_protocol::model::ProducerIdAndEpoch;

use crate::coordinator::Inner;
use crate::metadata::{NO_PRODUCER_EPOCH, NO_PRODUCER_ID, Snapshot, TxnMetadata, epoch_exhausted};
use crate::state::TxnState;

/// Answers InitProducerId at `version`.
pub(crate) async fn handle(
    inner: &Arc<Inner>,
    req: InitProducerIdRequest,
    version: i16,
) -> InitProducerIdResponse {
    let tid = req
        .transactional_id
        .as_ref()
        .map(|t| t.0.as_str().to_owned())
        .unwrap_or_default();
    let result = if version >= 5 && req.enable_2_pc {
        // KIP-939 two-phase commit is not enabled on this broker.
        Err(ResponseError::TransactionalIdAuthorizationFailed)
    } else {
        match expected_ids(req.producer_id.0, req.producer_epoch) {
            Err(e) => Err(e),
            Ok(expected) => init(inner, &tid, req.transaction_timeout_ms, expected).await,
        }
    };
    match result {
        Ok(ids) => InitProducerIdResponse::default()
            .with_producer_id(ProducerId(ids.producer_id))
            .with_producer_epoch(ids.epoch),
        Err(e) => {
            // KIP-588: clients before v4 only know INVALID_PRODUCER_EPOCH.
            let e = if version < 4 && e == ResponseError::ProducerFenced {
                ResponseError::InvalidProducerEpoch
            } else {
                e
            };
            InitProducerIdResponse::default()
                .with_error_code(e.code())
                .with_producer_id(ProducerId(NO_PRODUCER_ID))
                .with_producer_epoch(NO_PRODUCER_EPOCH)
        }
    }
}

/// The producer id and epoch a KIP-360 client says it has: both or neither.
fn expected_ids(producer_id: i64, epoch: i16) -> Result<Option<ProducerIdAndEpoch>, ResponseError> {
    match (producer_id == NO_PRODUCER_ID, epoch == NO_PRODUCER_EPOCH) {
        (true, true) => Ok(None),
        (false, false) => Ok(Some(ProducerIdAndEpoch::new(producer_id, epoch))),
        _ => Err(ResponseError::InvalidRequest),
    }
}

enum Plan {
    /// Write the new Empty state and return its producer id and epoch.
    Bump(Snapshot),
    /// Abort the open transaction, then tell the client to retry.
    Fence(Snapshot),
}

/// Decides and persists; returns the producer id and epoch for the client.
pub(crate) async fn init(
    inner: &Arc<Inner>,
    tid: &str,
    timeout_ms: i32,
    expected: Option<ProducerIdAndEpoch>,
) -> Result<ProducerIdAndEpoch, ResponseError> {
    if tid.is_empty() {
        return Err(ResponseError::InvalidRequest);
    }
    if timeout_ms <= 0 || timeout_ms > inner.config.transaction_max_timeout_ms {
        return Err(ResponseError::InvalidTransactionTimeout);
    }
    let now = inner.clock.now_ms();
    let cell = inner.cell_for(tid)?;
    let plan = {
        let mut shard = cell.lock().map_err(|e| e.response_error())?;
        if !shard.txns.contains_key(tid) {
            let pid = inner.next_producer_id()?;
            shard
                .txns
                .insert(tid.to_owned(), TxnMetadata::new(pid, timeout_ms, now));
            shard.by_producer.insert(pid, tid.to_owned());
        }
        let Some(meta) = shard.txns.get_mut(tid) else {
            return Err(ResponseError::CoordinatorNotAvailable);
        };
        if meta.pending.is_some() {
            return Err(ResponseError::ConcurrentTransactions);
        }
        if let Some(client) = expected
            && !meta.is_valid_producer_id(client)
        {
            return Err(ResponseError::ProducerFenced);
        }
        match meta.current.state {
            TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort => {
                let target = if epoch_exhausted(meta.current.producer_epoch)
                    && expected.is_none_or(|c| c.epoch == meta.current.producer_epoch)
                {
                    let new_pid = inner.next_producer_id()?;
                    meta.rotate_producer_id(new_pid, timeout_ms, now, expected.is_some())
                } else {
                    meta.increment_epoch(timeout_ms, expected.map(|c| c.epoch), now)
                        .ok_or(ResponseError::ProducerFenced)?
                };
                Plan::Bump(meta.begin(target))
            }
            TxnState::Ongoing => {
                let target = meta.fence_and_abort(now);
                Plan::Fence(meta.begin(target))
            }
            TxnState::PrepareCommit
            | TxnState::PrepareAbort
            | TxnState::Dead
            | TxnState::PrepareEpochFence => return Err(ResponseError::ConcurrentTransactions),
        }
    };
    match plan {
        Plan::Bump(target) => {
            let ids = target.producer();
            inner.persist(&cell, tid, target).await?;
            Ok(ids)
        }
        Plan::Fence(target) => {
            inner.persist(&cell, tid, target).await?;
            Err(ResponseError::ConcurrentTransactions)
        }
    }
}

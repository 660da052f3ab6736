//! EndTxn (Kafka's `endTransaction`).
//!
//! The decision (PrepareCommit/PrepareAbort) is answered as soon as it is
//! durable: from then on the outcome survives any crash, and the markers and
//! the Complete* record follow in the background. A retried EndTxn gets the
//! first answer again; the opposite decision gets INVALID_TXN_STATE.
//!
//! Version 5 is KIP-890 part 2 ("transaction version 2"): every EndTxn bumps
//! the epoch and returns the producer id and epoch to continue with, so a
//! retry is recognised by its epoch being one behind, and an abort is allowed
//! even if no partition was added (the client may have produced without the
//! partition being added yet).

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{EndTxnRequest, EndTxnResponse, ProducerId};

use sluice_protocol::model::ProducerIdAndEpoch;

use crate::add::{code, fenced_for};
use crate::coordinator::Inner;
use crate::metadata::{NO_PRODUCER_ID, epoch_exhausted};
use crate::state::TxnState;

/// Answers EndTxn at `version`.
pub(crate) async fn handle(inner: &Arc<Inner>, req: EndTxnRequest, version: i16) -> EndTxnResponse {
    let result = end(
        inner,
        req.transactional_id.0.as_str(),
        ProducerIdAndEpoch::new(req.producer_id.0, req.producer_epoch),
        req.committed,
        version >= 5,
    )
    .await;
    match result {
        Ok(ids) if version >= 5 => EndTxnResponse::default()
            .with_producer_id(ProducerId(ids.producer_id))
            .with_producer_epoch(ids.epoch),
        Ok(_) => EndTxnResponse::default(),
        Err(e) => EndTxnResponse::default().with_error_code(code(fenced_for(Some(e), version, 2))),
    }
}

/// Decides the transaction of `tid`; returns the producer id and epoch the
/// client continues with. `epoch_bump` is transaction version 2 (EndTxn v5).
pub(crate) async fn end(
    inner: &Arc<Inner>,
    tid: &str,
    producer: ProducerIdAndEpoch,
    commit: bool,
    epoch_bump: bool,
) -> Result<ProducerIdAndEpoch, ResponseError> {
    if tid.is_empty() {
        return Err(ResponseError::InvalidRequest);
    }
    let ProducerIdAndEpoch { producer_id, epoch } = producer;
    let cell = inner.cell_for(tid)?;
    let target = {
        let mut shard = cell.lock().map_err(|e| e.response_error())?;
        let Some(meta) = shard.txns.get_mut(tid) else {
            return Err(ResponseError::InvalidProducerIdMapping);
        };
        let cur = &meta.current;
        // A v5 retry after the epoch was bumped (and, at an exhausted epoch,
        // after the id moved to a new producer id).
        let retry_on_bump = i32::from(cur.producer_epoch) == i32::from(epoch) + 1;
        let retry_on_overflow = epoch_bump
            && cur.prev_producer_id == producer_id
            && producer_id != NO_PRODUCER_ID
            && epoch == i16::MAX - 1
            && cur.producer_epoch == 0;
        let is_retry = !epoch_bump || retry_on_bump || retry_on_overflow;
        let valid_epoch = if epoch_bump {
            match cur.state {
                TxnState::Ongoing
                | TxnState::Empty
                | TxnState::Dead
                | TxnState::PrepareEpochFence => epoch == cur.producer_epoch,
                TxnState::PrepareCommit | TxnState::PrepareAbort => {
                    retry_on_bump || retry_on_overflow
                }
                TxnState::CompleteCommit | TxnState::CompleteAbort => {
                    retry_on_bump || retry_on_overflow || epoch == cur.producer_epoch
                }
            }
        } else {
            epoch == cur.producer_epoch
        };
        if cur.producer_id != producer_id && !retry_on_overflow {
            return Err(ResponseError::InvalidProducerIdMapping);
        }
        if !valid_epoch {
            return Err(ResponseError::ProducerFenced);
        }
        if meta.pending.is_some() {
            return Err(ResponseError::ConcurrentTransactions);
        }
        let current_ids = cur.producer();
        let empty_abort = match (cur.state, commit) {
            (TxnState::Ongoing, _) => false,
            (TxnState::CompleteCommit, true) | (TxnState::CompleteAbort, false) if is_retry => {
                return Ok(current_ids);
            }
            (TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort, false)
                if epoch_bump && !is_retry =>
            {
                true
            }
            (TxnState::PrepareCommit, true) | (TxnState::PrepareAbort, false) => {
                return Err(ResponseError::ConcurrentTransactions);
            }
            _ => {
                tracing::debug!(transactional_id = %tid, state = %cur.state, commit, "EndTxn in an invalid state");
                return Err(ResponseError::InvalidTxnState);
            }
        };
        let next_pid = if epoch_bump && epoch_exhausted(cur.producer_epoch) {
            inner.next_producer_id()?
        } else {
            NO_PRODUCER_ID
        };
        let target = meta.prepare_end(
            commit,
            epoch_bump,
            next_pid,
            empty_abort,
            inner.clock.now_ms(),
        );
        meta.begin(target)
    };
    let ids = target.completed_ids();
    inner.persist(&cell, tid, target).await?;
    Ok(ids)
}

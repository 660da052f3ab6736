//! Transaction timeouts and transactional id expiration (Kafka's
//! `abortTimedOutTransactions` and `removeExpiredTransactionalIds`).
//!
//! A transaction open for longer than its timeout is aborted with a bumped
//! epoch: its producer is presumed dead or stuck, and whatever it still sends
//! is fenced instead of leaving the last stable offset of its partitions
//! pinned forever. Idle ids are forgotten after
//! `transactional_id_expiration_ms` so they do not accumulate.

use std::sync::Arc;

use crate::coordinator::{Inner, TxnCell};
use crate::metadata::Snapshot;
use crate::state::TxnState;

/// Aborts every Ongoing transaction of the loaded partitions started more
/// than its timeout before `now_ms`; waits until each abort decision is
/// durable.
pub(crate) async fn abort_timed_out(inner: &Arc<Inner>, now_ms: i64) {
    for cell in inner.shards.cells() {
        for (tid, target) in timed_out(&cell, now_ms) {
            if let Err(e) = inner.persist(&cell, &tid, target).await {
                tracing::warn!(transactional_id = %tid, error = %e, "aborting timed out transaction failed; will retry");
            }
        }
    }
}

/// The aborts of `cell`'s timed-out transactions, marked pending.
fn timed_out(cell: &TxnCell, now_ms: i64) -> Vec<(String, Snapshot)> {
    let Ok(mut shard) = cell.lock() else {
        return Vec::new();
    };
    shard
        .txns
        .iter_mut()
        .filter(|(_, m)| {
            m.pending.is_none()
                && m.current.state == TxnState::Ongoing
                && m.current
                    .start_ms
                    .saturating_add(i64::from(m.current.timeout_ms))
                    < now_ms
        })
        .map(|(tid, m)| {
            tracing::info!(transactional_id = %tid, producer_id = m.current.producer_id, "aborting timed out transaction");
            let target = m.fence_and_abort(now_ms);
            (tid.clone(), m.begin(target))
        })
        .collect()
}

/// Tombstones ids idle since `transactional_id_expiration_ms` before `now_ms`.
pub(crate) async fn expire_ids(inner: &Arc<Inner>, now_ms: i64) {
    let expiration = inner.config.transactional_id_expiration_ms;
    for cell in inner.shards.cells() {
        for tid in expired(&cell, now_ms, expiration) {
            if let Err(e) = inner.persist_tombstone(&cell, &tid).await {
                tracing::warn!(transactional_id = %tid, error = %e, "expiring transactional id failed; will retry");
            }
        }
    }
}

/// The ids of `cell` idle for `expiration_ms`, marked pending Dead.
fn expired(cell: &TxnCell, now_ms: i64, expiration_ms: i64) -> Vec<String> {
    let Ok(mut shard) = cell.lock() else {
        return Vec::new();
    };
    shard
        .txns
        .iter_mut()
        .filter(|(_, m)| {
            m.pending.is_none()
                && m.current.state.is_idle()
                && m.current.last_update_ms.saturating_add(expiration_ms) <= now_ms
        })
        .map(|(tid, m)| {
            m.pending = Some(TxnState::Dead);
            tid.clone()
        })
        .collect()
}

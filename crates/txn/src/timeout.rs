//! Transaction timeouts and transactional id expiration (Kafka's
//! `abortTimedOutTransactions` and `removeExpiredTransactionalIds`).
//!
//! A transaction open for longer than its timeout is aborted with a bumped
//! epoch: its producer is presumed dead or stuck, and whatever it still sends
//! is fenced instead of leaving the last stable offset of its partitions
//! pinned forever. Idle ids are forgotten after
//! `transactional_id_expiration_ms` so they do not accumulate.

use std::sync::Arc;

use crate::coordinator::Inner;
use crate::metadata::Snapshot;
use crate::state::TxnState;

/// Aborts every Ongoing transaction started more than its timeout before
/// `now_ms`; waits until each abort decision is durable.
pub(crate) async fn abort_timed_out(inner: &Arc<Inner>, now_ms: i64) {
    let aborts: Vec<(String, Snapshot)> = {
        let mut state = inner.state.lock();
        state
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
    };
    for (tid, target) in aborts {
        if let Err(e) = inner.persist(&tid, target).await {
            tracing::warn!(transactional_id = %tid, error = %e, "aborting timed out transaction failed; will retry");
        }
    }
}

/// Tombstones ids idle since `transactional_id_expiration_ms` before `now_ms`.
pub(crate) async fn expire_ids(inner: &Arc<Inner>, now_ms: i64) {
    let expiration = inner.config.transactional_id_expiration_ms;
    let expired: Vec<String> = {
        let mut state = inner.state.lock();
        state
            .txns
            .iter_mut()
            .filter(|(_, m)| {
                m.pending.is_none()
                    && m.current.state.is_idle()
                    && m.current.last_update_ms.saturating_add(expiration) <= now_ms
            })
            .map(|(tid, m)| {
                m.pending = Some(TxnState::Dead);
                tid.clone()
            })
            .collect()
    };
    for tid in expired {
        if let Err(e) = inner.persist_tombstone(&tid).await {
            tracing::warn!(transactional_id = %tid, error = %e, "expiring transactional id failed; will retry");
        }
    }
}

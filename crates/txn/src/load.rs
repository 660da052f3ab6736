//! Rebuilding the coordinator from `__transaction_state` at startup.
//!
//! The last record of each transactional id is its state. Decided
//! transactions (PrepareCommit/PrepareAbort) may have lost some markers in
//! the crash, so their markers are written again (markers are idempotent for
//! the partition leaders) before Complete* is recorded; Ongoing ones resume
//! their timeout, which aborts them if their producer does not come back.

use std::sync::Arc;

use bytes::Bytes;

use crate::coordinator::{Inner, complete_state};
use crate::error::{SkippedRecord, TxnError};
use crate::metadata::{Snapshot, TxnMetadata};
use crate::records::{TxnLogKey, TxnLogValue};
use crate::state::TxnState;

pub(crate) fn load(
    inner: &Arc<Inner>,
    records: impl IntoIterator<Item = (Bytes, Option<Bytes>)>,
) -> Result<(), TxnError> {
    let mut skipped = Vec::new();
    let mut to_complete = Vec::new();
    {
        let mut state = inner.state.lock();
        for (index, (key, value)) in records.into_iter().enumerate() {
            let decoded = TxnLogKey::decode(&key).and_then(|k| match value {
                None => Ok((k, None)),
                Some(v) => TxnLogValue::decode(&v).map(|v| (k, Some(v))),
            });
            let (key, value) = match decoded {
                Ok(kv) => kv,
                Err(error) => {
                    skipped.push(SkippedRecord { index, error });
                    continue;
                }
            };
            let tid = key.transactional_id;
            let old_pid = state.txns.get(&tid).map(|m| m.current.producer_id);
            match value {
                Some(v) if !matches!(v.state, TxnState::Dead | TxnState::PrepareEpochFence) => {
                    let snapshot = Snapshot::from_value(&v);
                    let pid = snapshot.producer_id;
                    state
                        .txns
                        .insert(tid.clone(), TxnMetadata::loaded(snapshot));
                    state.reindex(&tid, old_pid.unwrap_or(pid), pid);
                }
                _ => {
                    state.txns.remove(&tid);
                    if let Some(pid) = old_pid
                        && state.by_producer.get(&pid).is_some_and(|t| *t == tid)
                    {
                        state.by_producer.remove(&pid);
                    }
                }
            }
        }
        for (tid, meta) in state.txns.iter_mut() {
            if meta.current.state.is_prepare() && meta.pending.is_none() {
                meta.pending = Some(complete_state(meta.current.state));
                to_complete.push(tid.clone());
            }
        }
    }
    for tid in to_complete {
        inner.spawn_completion(tid);
    }
    if skipped.is_empty() {
        Ok(())
    } else {
        Err(TxnError::Corrupt { skipped })
    }
}

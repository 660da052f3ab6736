//! Applying `__transaction_state` records to a shard: the one path by which
//! what the log says becomes state, for live writes once they are durable
//! and for loading a partition alike. The last record of each transactional
//! id is its state; a tombstone (or a Dead state) forgets the id.

use sluice_coordinator::LogEntry;

use crate::CodecError;
use crate::metadata::{Snapshot, TxnMetadata};
use crate::records::{TxnLogKey, TxnLogValue};
use crate::shard::TxnShard;
use crate::state::TxnState;

/// Applies one entry. An undecodable record changes nothing; markers do not
/// occur in `__transaction_state` and change nothing either.
pub(crate) fn replay(shard: &mut TxnShard, entry: &LogEntry) -> Result<(), CodecError> {
    let LogEntry::Record { record, .. } = entry else {
        return Ok(());
    };
    let key = TxnLogKey::decode(&record.key)?;
    let value = record
        .value
        .as_deref()
        .map(TxnLogValue::decode)
        .transpose()?;
    let tid = key.transactional_id;
    match value {
        Some(v) if !matches!(v.state, TxnState::Dead | TxnState::PrepareEpochFence) => {
            apply_state(shard, tid, Snapshot::from_value(&v));
        }
        _ => shard.remove(&tid),
    }
    Ok(())
}

/// `snapshot` is the durable state of `tid` now. What the log does not
/// carry (a transition in flight, a fence not yet durable) stays as it was.
fn apply_state(shard: &mut TxnShard, tid: String, snapshot: Snapshot) {
    let new_pid = snapshot.producer_id;
    let old_pid = match shard.txns.get_mut(&tid) {
        Some(meta) => {
            let old = meta.current.producer_id;
            meta.current = snapshot;
            old
        }
        None => {
            shard
                .txns
                .insert(tid.clone(), TxnMetadata::loaded(snapshot));
            new_pid
        }
    };
    shard.reindex(&tid, old_pid, new_pid);
}

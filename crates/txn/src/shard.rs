//! The transactional ids of one `__transaction_state` partition.
//!
//! Every request for an id decides on its shard, under the shard's lock,
//! and marks the transition pending; the record is written, and once durable
//! replayed into the shard ([`crate::replay`]): the same replay that loads
//! the partition.

use std::collections::HashMap;
use std::sync::Weak;

use sluice_coordinator::{CoordinatorShard, LogEntry, ShardCell};

use crate::CodecError;
use crate::coordinator::{Inner, complete_state, spawn_completion};
use crate::metadata::TxnMetadata;

/// The transactional ids of one partition.
pub(crate) struct TxnShard {
    pub txns: HashMap<String, TxnMetadata>,
    /// producer id -> transactional id, for the produce-path verification.
    pub by_producer: HashMap<i64, String>,
    /// This shard's cell and coordinator, for the completions it starts.
    cell: Weak<ShardCell<TxnShard>>,
    inner: Weak<Inner>,
}

impl TxnShard {
    /// An empty shard living in `cell`.
    pub fn new(cell: Weak<ShardCell<TxnShard>>, inner: Weak<Inner>) -> Self {
        Self {
            txns: HashMap::new(),
            by_producer: HashMap::new(),
            cell,
            inner,
        }
    }

    /// Keeps `by_producer` in step when an id moves to another producer id.
    pub fn reindex(&mut self, tid: &str, old: i64, new: i64) {
        if old != new && self.by_producer.get(&old).is_some_and(|t| t == tid) {
            self.by_producer.remove(&old);
        }
        self.by_producer.insert(new, tid.to_owned());
    }

    /// Forgets `tid` and its producer id.
    pub fn remove(&mut self, tid: &str) {
        if let Some(meta) = self.txns.remove(tid) {
            let pid = meta.current.producer_id;
            if self.by_producer.get(&pid).is_some_and(|t| t == tid) {
                self.by_producer.remove(&pid);
            }
        }
    }

    /// Completes the decided transaction of `tid` in the background.
    pub fn complete_in_background(&self, tid: String) {
        spawn_completion(self.inner.clone(), self.cell.clone(), tid);
    }
}

impl CoordinatorShard for TxnShard {
    fn replay(&mut self, entry: &LogEntry) -> Result<(), CodecError> {
        crate::replay::replay(self, entry)
    }

    /// Decided transactions (PrepareCommit/PrepareAbort) may have lost some
    /// markers when the previous coordinator stopped, so their markers are
    /// written again (markers are idempotent for the partition leaders)
    /// before Complete* is recorded; Ongoing ones resume their timeout, which
    /// aborts them if their producer does not come back.
    fn on_loaded(&mut self) {
        let mut to_complete = Vec::new();
        for (tid, meta) in self.txns.iter_mut() {
            if meta.current.state.is_prepare() && meta.pending.is_none() {
                meta.pending = Some(complete_state(meta.current.state));
                to_complete.push(tid.clone());
            }
        }
        for tid in to_complete {
            self.complete_in_background(tid);
        }
    }

    /// Transitions in flight answer NOT_COORDINATOR when their write
    /// completes, and completions stop: the new coordinator of the partition
    /// finishes them after loading it.
    fn on_unloaded(&mut self) {
        self.txns.clear();
        self.by_producer.clear();
    }
}

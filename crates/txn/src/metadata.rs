//! The state of one transactional id and the transitions Kafka allows
//! (Kafka's `TransactionMetadata`).
//!
//! A transition is computed under the shard's lock as a complete
//! [`Snapshot`] of the target state and marked as *pending*; its record is
//! replayed only once durable. While a transition is pending, every other
//! request for the id gets CONCURRENT_TRANSACTIONS, which is what keeps the
//! log order equal to the in-memory order.

use std::collections::{BTreeMap, BTreeSet};

use sluice_protocol::model::{ProducerIdAndEpoch, TopicPartition};

use crate::records::TxnLogValue;
use crate::state::TxnState;

/// Kafka's `RecordBatch.NO_PRODUCER_ID`.
pub(crate) const NO_PRODUCER_ID: i64 = -1;
/// Kafka's `RecordBatch.NO_PRODUCER_EPOCH`.
pub(crate) const NO_PRODUCER_EPOCH: i16 = -1;

/// An epoch is exhausted once a bump could reach `i16::MAX`: Kafka then
/// moves the transactional id to a new producer id instead of bumping.
pub(crate) fn epoch_exhausted(epoch: i16) -> bool {
    epoch >= i16::MAX - 1
}

/// Everything that describes a transactional id at one point in time: the
/// committed state, or the target of a pending transition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Snapshot {
    pub producer_id: i64,
    /// The producer id before the last rotation, so that a retried
    /// InitProducerId/EndTxn that caused the rotation is recognised (KIP-360).
    pub prev_producer_id: i64,
    /// The producer id to switch to when the transaction completes (epoch
    /// exhaustion with KIP-890 epoch bumps).
    pub next_producer_id: i64,
    pub producer_epoch: i16,
    /// The epoch before the last client-visible bump, so a retried request
    /// gets the same answer instead of bumping again (KIP-360). Not stored.
    pub last_producer_epoch: i16,
    pub timeout_ms: i32,
    pub state: TxnState,
    pub partitions: BTreeSet<TopicPartition>,
    pub start_ms: i64,
    pub last_update_ms: i64,
}

impl Snapshot {
    /// The record value Kafka would write for this state.
    pub fn to_value(&self) -> TxnLogValue {
        let mut grouped: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
        for tp in &self.partitions {
            grouped.entry(&tp.topic).or_default().push(tp.partition);
        }
        TxnLogValue {
            producer_id: self.producer_id,
            previous_producer_id: self.prev_producer_id,
            next_producer_id: self.next_producer_id,
            producer_epoch: self.producer_epoch,
            transaction_timeout_ms: self.timeout_ms,
            state: self.state,
            partitions: grouped
                .into_iter()
                .map(|(t, ps)| (t.to_owned(), ps))
                .collect(),
            last_update_timestamp_ms: self.last_update_ms,
            start_timestamp_ms: self.start_ms,
        }
    }

    /// The state a record read back from the log describes.
    pub fn from_value(value: &TxnLogValue) -> Self {
        Self {
            producer_id: value.producer_id,
            prev_producer_id: value.previous_producer_id,
            next_producer_id: value.next_producer_id,
            producer_epoch: value.producer_epoch,
            last_producer_epoch: NO_PRODUCER_EPOCH,
            timeout_ms: value.transaction_timeout_ms,
            state: value.state,
            partitions: value
                .partitions
                .iter()
                .flat_map(|(t, ps)| ps.iter().map(move |p| TopicPartition::new(t.as_str(), *p)))
                .collect(),
            start_ms: value.start_timestamp_ms,
            last_update_ms: value.last_update_timestamp_ms,
        }
    }

    /// The producer id and epoch the client continues with once the
    /// transaction completes (what EndTxn v5 returns).
    pub fn completed_ids(&self) -> ProducerIdAndEpoch {
        if self.next_producer_id != NO_PRODUCER_ID {
            ProducerIdAndEpoch::new(self.next_producer_id, 0)
        } else {
            self.producer()
        }
    }

    /// The producer id and epoch of this state.
    pub fn producer(&self) -> ProducerIdAndEpoch {
        ProducerIdAndEpoch::new(self.producer_id, self.producer_epoch)
    }
}

/// One transactional id.
#[derive(Debug, Clone)]
pub(crate) struct TxnMetadata {
    /// The durable state.
    pub current: Snapshot,
    /// The state a transition in flight is heading to.
    pub pending: Option<TxnState>,
    /// The in-memory epoch was bumped to fence a producer but the abort that
    /// follows is not durable yet: a retried fence must not bump again
    /// (Kafka's `hasFailedEpochFence`); the bumped epoch was never returned.
    pub fence_not_durable: bool,
}

impl TxnMetadata {
    /// A transactional id seen for the first time: no epoch yet, so the
    /// first InitProducerId bumps it to 0.
    pub fn new(producer_id: i64, timeout_ms: i32, now_ms: i64) -> Self {
        Self::loaded(Snapshot {
            producer_id,
            prev_producer_id: NO_PRODUCER_ID,
            next_producer_id: NO_PRODUCER_ID,
            producer_epoch: NO_PRODUCER_EPOCH,
            last_producer_epoch: NO_PRODUCER_EPOCH,
            timeout_ms,
            state: TxnState::Empty,
            partitions: BTreeSet::new(),
            start_ms: -1,
            last_update_ms: now_ms,
        })
    }

    /// A transactional id in a state read back from the log.
    pub fn loaded(current: Snapshot) -> Self {
        Self {
            current,
            pending: None,
            fence_not_durable: false,
        }
    }

    /// Marks `target` as the pending transition and returns it.
    pub fn begin(&mut self, target: Snapshot) -> Snapshot {
        self.pending = Some(target.state);
        target
    }

    /// KIP-360 `isValidProducerId`: a client naming its producer id is fenced
    /// unless the id is brand new (no epoch yet), the producer id matches
    /// (the epoch is checked by the bump), or it is the producer id we just
    /// rotated away from at an exhausted epoch (a retry of that rotation).
    pub fn is_valid_producer_id(&self, client: ProducerIdAndEpoch) -> bool {
        self.current.producer_epoch == NO_PRODUCER_EPOCH
            || client.producer_id == self.current.producer_id
            || (client.producer_id == self.current.prev_producer_id
                && epoch_exhausted(client.epoch))
    }

    /// InitProducerId on an idle id: bump the epoch, or with the client's
    /// known epoch (KIP-360) answer a retry with the epoch already given.
    pub fn increment_epoch(
        &self,
        timeout_ms: i32,
        expected_epoch: Option<i16>,
        now_ms: i64,
    ) -> Option<Snapshot> {
        let cur = &self.current;
        let bumped = cur.producer_epoch.checked_add(1)?;
        let (epoch, last) = match expected_epoch {
            None => (bumped, NO_PRODUCER_EPOCH),
            Some(e) if cur.producer_epoch == NO_PRODUCER_EPOCH || e == cur.producer_epoch => {
                (bumped, cur.producer_epoch)
            }
            Some(e) if e == cur.last_producer_epoch => {
                (cur.producer_epoch, cur.last_producer_epoch)
            }
            Some(_) => return None,
        };
        Some(self.idle_target(
            cur.producer_id,
            cur.prev_producer_id,
            epoch,
            last,
            timeout_ms,
            now_ms,
        ))
    }

    /// InitProducerId on an idle id whose epoch is exhausted: continue with a
    /// new producer id at epoch 0.
    pub fn rotate_producer_id(
        &self,
        new_producer_id: i64,
        timeout_ms: i32,
        now_ms: i64,
        record_last_epoch: bool,
    ) -> Snapshot {
        let last = if record_last_epoch {
            self.current.producer_epoch
        } else {
            NO_PRODUCER_EPOCH
        };
        self.idle_target(
            new_producer_id,
            self.current.producer_id,
            0,
            last,
            timeout_ms,
            now_ms,
        )
    }

    fn idle_target(
        &self,
        producer_id: i64,
        prev_producer_id: i64,
        epoch: i16,
        last: i16,
        timeout_ms: i32,
        now_ms: i64,
    ) -> Snapshot {
        Snapshot {
            producer_id,
            prev_producer_id,
            next_producer_id: NO_PRODUCER_ID,
            producer_epoch: epoch,
            last_producer_epoch: last,
            timeout_ms,
            state: TxnState::Empty,
            partitions: BTreeSet::new(),
            start_ms: -1,
            last_update_ms: now_ms,
        }
    }

    /// AddPartitionsToTxn: the transaction is Ongoing with the union of the
    /// partitions; it starts now if none was open.
    pub fn add_partitions(&self, partitions: &[TopicPartition], now_ms: i64) -> Snapshot {
        let mut target = self.current.clone();
        if target.state != TxnState::Ongoing {
            target.start_ms = now_ms;
            target.partitions.clear();
        }
        target.state = TxnState::Ongoing;
        target.partitions.extend(partitions.iter().cloned());
        target.last_update_ms = now_ms;
        target
    }

    /// EndTxn from the client: PrepareCommit or PrepareAbort. With KIP-890
    /// (`bump_epoch`) the epoch is bumped so that nothing the old epoch still
    /// sends can join the next transaction; `next_producer_id` is set when
    /// that bump exhausts the epoch. `empty` starts (and ends) a transaction
    /// that never added a partition.
    pub fn prepare_end(
        &self,
        commit: bool,
        bump_epoch: bool,
        next_producer_id: i64,
        empty: bool,
        now_ms: i64,
    ) -> Snapshot {
        let mut target = self.current.clone();
        target.state = if commit {
            TxnState::PrepareCommit
        } else {
            TxnState::PrepareAbort
        };
        if bump_epoch && let Some(bumped) = target.producer_epoch.checked_add(1) {
            target.last_producer_epoch = target.producer_epoch;
            target.producer_epoch = bumped;
        }
        if empty {
            target.partitions.clear();
            target.start_ms = now_ms;
        }
        target.next_producer_id = next_producer_id;
        target.last_update_ms = now_ms;
        target
    }

    /// Aborts the Ongoing transaction with a bumped epoch, so its producer
    /// (a zombie, or one that timed out) is fenced. The bump applies in
    /// memory at once, like Kafka, and only once per failed attempt.
    pub fn fence_and_abort(&mut self, now_ms: i64) -> Snapshot {
        if !self.fence_not_durable {
            match self.current.producer_epoch.checked_add(1) {
                Some(bumped) => self.current.producer_epoch = bumped,
                None => tracing::warn!(
                    producer_id = self.current.producer_id,
                    "epoch at its maximum: aborting without fencing"
                ),
            }
        }
        self.fence_not_durable = true;
        self.current.last_producer_epoch = NO_PRODUCER_EPOCH;
        let mut target = self.current.clone();
        target.state = TxnState::PrepareAbort;
        target.next_producer_id = NO_PRODUCER_ID;
        target.last_update_ms = now_ms;
        target
    }

    /// Every marker is written: CompleteCommit or CompleteAbort, without
    /// partitions, on the next producer id if the epoch was exhausted.
    pub fn prepare_complete(&self, now_ms: i64) -> Snapshot {
        let mut target = self.current.clone();
        target.state = if target.state == TxnState::PrepareCommit {
            TxnState::CompleteCommit
        } else {
            TxnState::CompleteAbort
        };
        if target.next_producer_id != NO_PRODUCER_ID {
            target.prev_producer_id = target.producer_id;
            target.producer_id = target.next_producer_id;
            target.producer_epoch = 0;
            target.next_producer_id = NO_PRODUCER_ID;
        }
        target.partitions.clear();
        target.last_update_ms = now_ms;
        target
    }
}

//! What the cleaner knows of transactions while it walks a log in offset order (Kafka's
//! `CleanedTransactionMetadata`): which data batches belong to aborted transactions (they
//! go, first), and which markers are no longer needed (they go later, once the batches of
//! their transaction are gone and their delete horizon has passed).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};

use sluice_protocol::batch::BatchHeader;

use crate::producer_state::CompletedTxn;

/// What a control batch holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Control {
    /// An ABORT marker.
    Abort,
    /// A COMMIT marker.
    Commit,
    /// A control record of another type: kept.
    Other,
    /// No record left: a marker the cleaner already emptied.
    Empty,
}

/// The transactions met so far in one walk.
#[derive(Debug, Default)]
pub(super) struct TxnWalk {
    /// Aborted transactions not reached yet, by first offset.
    upcoming: BinaryHeap<Reverse<(i64, i64)>>,
    /// Producers inside an aborted transaction: whether one of its batches was seen.
    aborted: HashMap<i64, bool>,
    /// Producers inside a committed (or not aborted) transaction with batches seen.
    committed: HashSet<i64>,
}

impl TxnWalk {
    /// A walk that knows these aborted transactions (the log's, overlapping the range
    /// walked).
    pub(super) fn new(aborted: impl IntoIterator<Item = CompletedTxn>) -> Self {
        Self {
            upcoming: aborted
                .into_iter()
                .filter(|t| t.aborted)
                .map(|t| Reverse((t.first_offset, t.producer_id)))
                .collect(),
            ..Self::default()
        }
    }

    /// Enters the aborted transactions that start at or before `offset`.
    fn reach(&mut self, offset: i64) {
        while let Some(Reverse((first, producer))) = self.upcoming.peek().copied() {
            if first > offset {
                break;
            }
            self.upcoming.pop();
            self.aborted.entry(producer).or_insert(false);
        }
    }

    /// A data batch: whether it belongs to an aborted transaction (its records go).
    pub(super) fn on_data_batch(&mut self, h: &BatchHeader) -> bool {
        self.reach(h.last_offset());
        if !h.is_transactional() {
            return false;
        }
        match self.aborted.get_mut(&h.producer_id) {
            Some(seen) => {
                *seen = true;
                true
            }
            None => {
                self.committed.insert(h.producer_id);
                false
            }
        }
    }

    /// A control batch: whether it may be discarded. An ABORT marker may once no batch of
    /// its transaction was seen in this walk (they were removed before); a COMMIT marker
    /// the same; an emptied marker always. Either way it ends its producer's transaction.
    pub(super) fn on_control_batch(&mut self, h: &BatchHeader, control: Control) -> bool {
        self.reach(h.last_offset());
        match control {
            Control::Abort => !self.aborted.remove(&h.producer_id).unwrap_or(false),
            Control::Commit => !self.committed.remove(&h.producer_id),
            Control::Other => false,
            Control::Empty => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_protocol::batch::RecordBatchBuilder;

    fn header(producer: i64, base_offset: i64, transactional: bool) -> BatchHeader {
        let bytes = RecordBatchBuilder::new()
            .producer(producer, 0, 0)
            .transactional(transactional)
            .base_offset(base_offset)
            .record(0, Some(b"k"), Some(b"v"), &[])
            .build();
        BatchHeader::parse(&bytes).unwrap()
    }

    fn aborted(producer: i64, first: i64, marker: i64) -> CompletedTxn {
        CompletedTxn {
            producer_id: producer,
            first_offset: first,
            last_offset: marker,
            aborted: true,
        }
    }

    #[test]
    fn aborted_batches_go_and_their_marker_stays_while_they_were_seen() {
        let mut walk = TxnWalk::new([aborted(1, 10, 12)]);
        assert!(
            !walk.on_data_batch(&header(2, 9, true)),
            "committed producer"
        );
        assert!(walk.on_data_batch(&header(1, 10, true)));
        assert!(walk.on_data_batch(&header(1, 11, true)));
        assert!(!walk.on_control_batch(&header(1, 12, true), Control::Abort));
        assert!(!walk.on_control_batch(&header(2, 13, true), Control::Commit));
        assert!(
            !walk.on_data_batch(&header(3, 14, false)),
            "not transactional"
        );
    }

    #[test]
    fn markers_whose_batches_are_gone_may_go() {
        let mut walk = TxnWalk::new([aborted(1, 10, 12)]);
        assert!(walk.on_control_batch(&header(1, 12, true), Control::Abort));
        assert!(walk.on_control_batch(&header(2, 13, true), Control::Commit));
        assert!(walk.on_control_batch(&header(2, 14, true), Control::Empty));
        assert!(!walk.on_control_batch(&header(2, 15, true), Control::Other));
        // A committed transaction after the aborted one of the same producer.
        assert!(!walk.on_data_batch(&header(1, 16, true)));
        assert!(!walk.on_control_batch(&header(1, 17, true), Control::Commit));
    }
}

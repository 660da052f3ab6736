//! Idempotent producer state of one partition.
//!
//! For every producer id seen in the log, the partition remembers its epoch
//! and its last five batches (sequence range and offsets), as Kafka does. An
//! append is checked against it: a retried batch that was already written is
//! a duplicate and gets its original offsets back without being written again;
//! a sequence gap is OUT_OF_ORDER_SEQUENCE_NUMBER; an older epoch is
//! INVALID_PRODUCER_EPOCH. The state is rebuilt when the partition opens from
//! the latest snapshot (taken at each segment roll) and the batch headers
//! after it (no records are decoded but markers), so it survives restarts and
//! kill -9 exactly as far as the log itself does.

use std::collections::{HashMap, VecDeque};

use sluice_protocol::batch::{BatchHeader, NO_VALUE};
use thiserror::Error;

/// Batches remembered per producer (Kafka's `NUM_BATCHES_TO_RETAIN`).
pub const MAX_CACHED_BATCHES: usize = 5;

/// One batch of a producer, enough to recognise a retry of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchMetadata {
    /// First sequence number of the batch.
    pub first_seq: i32,
    /// Last sequence number of the batch.
    pub last_seq: i32,
    /// Offset of its first record.
    pub first_offset: i64,
    /// Offset of its last record.
    pub last_offset: i64,
    /// Its max timestamp.
    pub max_timestamp: i64,
}

/// What the partition knows of one producer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerEntry {
    /// The newest epoch seen.
    pub epoch: i16,
    /// The last batches of that epoch, oldest first.
    pub batches: VecDeque<BatchMetadata>,
    /// Max timestamp of its latest batch, for expiry.
    pub last_timestamp: i64,
    /// First offset of its open transaction, until a marker closes it.
    pub ongoing_txn_first_offset: Option<i64>,
}

/// A transaction closed by a COMMIT or ABORT marker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompletedTxn {
    /// The producer.
    pub producer_id: i64,
    /// Offset of its first transactional batch in this partition.
    pub first_offset: i64,
    /// Offset of the marker.
    pub last_offset: i64,
    /// Whether the marker was an ABORT.
    pub aborted: bool,
}

/// A batch the producer state refuses.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ProducerError {
    /// The batch carries an epoch older than the producer's current one.
    #[error("producer {producer_id} epoch {epoch} is older than the current epoch {current}")]
    InvalidEpoch {
        /// Producer id.
        producer_id: i64,
        /// The batch's epoch.
        epoch: i16,
        /// The epoch the partition knows.
        current: i16,
    },
    /// The batch does not continue the producer's sequence.
    #[error(
        "out of order sequence for producer {producer_id}: expected {expected}, got {first_seq}"
    )]
    OutOfOrder {
        /// Producer id.
        producer_id: i64,
        /// The sequence that would have been in order.
        expected: i32,
        /// The batch's first sequence.
        first_seq: i32,
    },
}

/// The verdict on a batch about to be appended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SequenceCheck {
    /// Not idempotent, or the next batch in sequence: append it.
    Append,
    /// Already in the log: answer with these offsets instead of appending.
    Duplicate(BatchMetadata),
}

/// Producer state of one partition.
#[derive(Debug, Default, Clone)]
pub struct ProducerStateManager {
    producers: HashMap<i64, ProducerEntry>,
}

fn last_seq_of(h: &BatchHeader) -> i32 {
    // Sequences wrap at i32::MAX back to 0, as in Kafka.
    let span = i64::from(h.last_offset_delta);
    ((i64::from(h.base_sequence) + span) % (i64::from(i32::MAX) + 1)) as i32
}

fn in_sequence(last_seq: i32, next_seq: i32) -> bool {
    next_seq == last_seq.wrapping_add(1) || (next_seq == 0 && last_seq == i32::MAX)
}

impl ProducerStateManager {
    /// An empty state.
    pub fn new() -> Self {
        Self::default()
    }

    /// The state a snapshot recorded.
    pub(crate) fn from_entries(entries: impl IntoIterator<Item = (i64, ProducerEntry)>) -> Self {
        Self {
            producers: entries.into_iter().collect(),
        }
    }

    /// The entry of a producer, if any.
    pub fn producer(&self, producer_id: i64) -> Option<&ProducerEntry> {
        self.producers.get(&producer_id)
    }

    /// Number of producers tracked.
    pub fn len(&self) -> usize {
        self.producers.len()
    }

    /// Whether no producer is tracked.
    pub fn is_empty(&self) -> bool {
        self.producers.is_empty()
    }

    /// Checks a batch (header as produced) against the producer's state.
    pub fn check(&self, h: &BatchHeader) -> Result<SequenceCheck, ProducerError> {
        if h.is_control() {
            // Markers carry no sequence, but an older epoch is a zombie's.
            return match self.producers.get(&h.producer_id) {
                Some(entry) if h.producer_epoch < entry.epoch => Err(ProducerError::InvalidEpoch {
                    producer_id: h.producer_id,
                    epoch: h.producer_epoch,
                    current: entry.epoch,
                }),
                _ => Ok(SequenceCheck::Append),
            };
        }
        if h.producer_id == NO_VALUE || h.base_sequence < 0 {
            return Ok(SequenceCheck::Append);
        }
        let Some(entry) = self.producers.get(&h.producer_id) else {
            // Unknown producer (new, or its state expired): any sequence starts it.
            return Ok(SequenceCheck::Append);
        };
        if h.producer_epoch < entry.epoch {
            return Err(ProducerError::InvalidEpoch {
                producer_id: h.producer_id,
                epoch: h.producer_epoch,
                current: entry.epoch,
            });
        }
        if h.producer_epoch > entry.epoch {
            // A bumped epoch restarts the sequence at 0.
            if h.base_sequence != 0 {
                return Err(ProducerError::OutOfOrder {
                    producer_id: h.producer_id,
                    expected: 0,
                    first_seq: h.base_sequence,
                });
            }
            return Ok(SequenceCheck::Append);
        }
        let last_seq = last_seq_of(h);
        if let Some(dup) = entry
            .batches
            .iter()
            .find(|b| b.first_seq == h.base_sequence && b.last_seq == last_seq)
        {
            return Ok(SequenceCheck::Duplicate(*dup));
        }
        match entry.batches.back() {
            Some(last) if !in_sequence(last.last_seq, h.base_sequence) => {
                Err(ProducerError::OutOfOrder {
                    producer_id: h.producer_id,
                    expected: last.last_seq.wrapping_add(1),
                    first_seq: h.base_sequence,
                })
            }
            _ => Ok(SequenceCheck::Append),
        }
    }

    /// The producer's entry, created at the batch's epoch when it is new.
    fn entry_for(&mut self, h: &BatchHeader) -> &mut ProducerEntry {
        self.producers
            .entry(h.producer_id)
            .or_insert_with(|| ProducerEntry {
                epoch: h.producer_epoch,
                batches: VecDeque::new(),
                last_timestamp: h.max_timestamp,
                ongoing_txn_first_offset: None,
            })
    }

    /// Records a batch that was appended (its header carries its base offset).
    pub fn record(&mut self, h: &BatchHeader) {
        if h.producer_id == NO_VALUE || h.base_sequence < 0 {
            return;
        }
        let meta = BatchMetadata {
            first_seq: h.base_sequence,
            last_seq: last_seq_of(h),
            first_offset: h.base_offset,
            last_offset: h.last_offset(),
            max_timestamp: h.max_timestamp,
        };
        let entry = self.entry_for(h);
        if h.is_transactional() && entry.ongoing_txn_first_offset.is_none() {
            entry.ongoing_txn_first_offset = Some(h.base_offset);
        }
        if h.producer_epoch != entry.epoch {
            entry.epoch = h.producer_epoch;
            entry.batches.clear();
        }
        entry.batches.push_back(meta);
        while entry.batches.len() > MAX_CACHED_BATCHES {
            entry.batches.pop_front();
        }
        entry.last_timestamp = entry.last_timestamp.max(h.max_timestamp);
    }

    /// Records a COMMIT/ABORT marker (its header carries its offset) and
    /// returns the transaction it closed, if one was open here.
    pub fn record_marker(&mut self, h: &BatchHeader, commit: bool) -> Option<CompletedTxn> {
        let entry = self.entry_for(h);
        if h.producer_epoch > entry.epoch {
            entry.epoch = h.producer_epoch;
            entry.batches.clear();
        }
        entry.last_timestamp = entry.last_timestamp.max(h.max_timestamp);
        let first_offset = entry.ongoing_txn_first_offset.take()?;
        Some(CompletedTxn {
            producer_id: h.producer_id,
            first_offset,
            last_offset: h.base_offset,
            aborted: !commit,
        })
    }

    /// The first offset of the oldest open transaction: the last stable offset
    /// cannot move past it.
    pub fn first_unstable_offset(&self) -> Option<i64> {
        self.producers
            .values()
            .filter_map(|e| e.ongoing_txn_first_offset)
            .min()
    }

    /// Producers with their state, for DescribeProducers.
    pub fn iter(&self) -> impl Iterator<Item = (i64, &ProducerEntry)> {
        self.producers.iter().map(|(id, e)| (*id, e))
    }

    /// Forgets producers whose latest batch is older than `expiration_ms`
    /// (`producer.id.expiration.ms`). Returns how many were removed.
    pub fn expire(&mut self, now_ms: i64, expiration_ms: i64) -> usize {
        let before = self.producers.len();
        // A producer with an open transaction is kept until the transaction
        // coordinator closes it (by marker), whatever its age.
        self.producers.retain(|_, e| {
            e.ongoing_txn_first_offset.is_some()
                || now_ms.saturating_sub(e.last_timestamp) <= expiration_ms
        });
        before - self.producers.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_protocol::batch::RecordBatchBuilder;

    fn header(pid: i64, epoch: i16, seq: i32, records: usize, base_offset: i64) -> BatchHeader {
        let mut b = RecordBatchBuilder::new().producer(pid, epoch, seq);
        for _ in 0..records {
            b.push(1000, None, Some(b"v"), &[]);
        }
        let mut h = BatchHeader::parse(&b.build()).unwrap();
        h.base_offset = base_offset;
        h
    }

    #[test]
    fn in_order_batches_append_and_retries_are_duplicates() {
        let mut s = ProducerStateManager::new();
        let b0 = header(7, 0, 0, 3, 0);
        assert_eq!(s.check(&b0), Ok(SequenceCheck::Append));
        s.record(&b0);
        let b1 = header(7, 0, 3, 2, 3);
        assert_eq!(s.check(&b1), Ok(SequenceCheck::Append));
        s.record(&b1);
        match s.check(&header(7, 0, 0, 3, -1)) {
            Ok(SequenceCheck::Duplicate(m)) => assert_eq!((m.first_offset, m.last_offset), (0, 2)),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            s.check(&header(7, 0, 9, 1, -1)),
            Err(ProducerError::OutOfOrder {
                producer_id: 7,
                expected: 5,
                first_seq: 9
            })
        );
    }

    #[test]
    fn epochs_fence_and_restart_sequences() {
        let mut s = ProducerStateManager::new();
        s.record(&header(1, 3, 0, 1, 0));
        assert!(matches!(
            s.check(&header(1, 2, 1, 1, -1)),
            Err(ProducerError::InvalidEpoch { .. })
        ));
        assert!(matches!(
            s.check(&header(1, 4, 5, 1, -1)),
            Err(ProducerError::OutOfOrder { .. })
        ));
        assert_eq!(s.check(&header(1, 4, 0, 1, -1)), Ok(SequenceCheck::Append));
        s.record(&header(1, 4, 0, 1, 1));
        assert_eq!(s.producer(1).unwrap().batches.len(), 1);
    }

    #[test]
    fn only_five_batches_are_remembered_and_unknown_producers_start_anywhere() {
        let mut s = ProducerStateManager::new();
        for i in 0..7 {
            s.record(&header(2, 0, i, 1, i64::from(i)));
        }
        assert_eq!(s.producer(2).unwrap().batches.len(), MAX_CACHED_BATCHES);
        // The oldest retained batch is seq 2; seq 0 is neither a known duplicate nor in order.
        assert!(s.check(&header(2, 0, 0, 1, -1)).is_err());
        assert_eq!(
            s.check(&header(99, 0, 42, 1, -1)),
            Ok(SequenceCheck::Append)
        );
        assert_eq!(
            s.check(&header(-1, -1, -1, 1, -1)),
            Ok(SequenceCheck::Append)
        );
    }

    #[test]
    fn sequences_wrap_at_int_max() {
        let mut s = ProducerStateManager::new();
        s.record(&header(3, 0, i32::MAX, 1, 0));
        assert_eq!(s.check(&header(3, 0, 0, 1, -1)), Ok(SequenceCheck::Append));
    }

    #[test]
    fn expiry() {
        let mut s = ProducerStateManager::new();
        s.record(&header(4, 0, 0, 1, 10));
        assert_eq!(s.expire(1000 + 50, 100), 0);
        assert_eq!(s.expire(1000 + 500, 100), 1);
        assert!(s.is_empty());
    }
}

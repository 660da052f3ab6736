//! Model-based property test (after Redpanda's `storage/opfuzz`): random sequences of
//! leader and follower appends (plain, idempotent, transactional, across leader epochs),
//! time passing (rolls), flushes, truncation, DeleteRecords, retention, high-watermark
//! updates, clean restarts and crashes with a torn tail, run against a log and a simple
//! in-memory model. After every step the log must agree with the model on its offsets,
//! its bytes, its leader epochs, its high watermark and the producer state.
//!
//! The model keeps every batch the log still holds (below the log start too) and derives
//! the producer state by replaying them all from scratch in memory — what the log restores
//! from snapshots, checkpoints and partial replays must be the same. Leader epochs follow
//! Kafka's cache operations step by step.

use proptest::prelude::*;
use proptest::sample::Index;
use sluice_protocol::batch::{BatchHeader, transaction_marker};
use sluice_storage::producer_state::{
    CompletedTxn, ProducerError, ProducerStateManager, SequenceCheck,
};
use sluice_storage::{
    LogConfig, PartitionLog, StorageEnv, StorageError, UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET,
};

use crate::common::*;

/// A producer's move on the leader path.
#[derive(Debug, Clone)]
enum ProducerMove {
    /// The next batch in sequence.
    Next,
    /// A retry of one of its last batches (`back` from the newest).
    Retry(usize),
    /// A batch past a hole in the sequence.
    Gap,
    /// A new producer epoch, sequence 0.
    BumpEpoch,
}

#[derive(Debug, Clone)]
enum FollowerBatch {
    Plain(usize, usize),
    /// The next batch of producer 2, in sequence.
    Producer,
}

#[derive(Debug, Clone)]
enum Op {
    Plain { records: usize, value_len: usize },
    Idempotent { producer: i64, how: ProducerMove },
    TxnData,
    TxnMarker { commit: bool },
    Follower(Vec<FollowerBatch>),
    NewLeaderEpoch(i32),
    AdvanceTime(i64),
    Flush,
    TruncateTo(Index),
    DeleteRecords(Index),
    Retention,
    SetHighWatermark { at: Index, checkpoint: bool },
    CloseReopen,
    Crash { tear: Option<Index> },
}

fn arb_op() -> impl Strategy<Value = Op> {
    let producer_move = prop_oneof![
        6 => Just(ProducerMove::Next),
        2 => (0usize..6).prop_map(ProducerMove::Retry),
        1 => Just(ProducerMove::Gap),
        1 => Just(ProducerMove::BumpEpoch),
    ];
    let follower_batch = prop_oneof![
        3 => (1usize..4, 0usize..80).prop_map(|(r, v)| FollowerBatch::Plain(r, v)),
        1 => Just(FollowerBatch::Producer),
    ];
    prop_oneof![
        6 => (1usize..4, 0usize..120).prop_map(|(records, value_len)| Op::Plain { records, value_len }),
        5 => (1i64..3, producer_move).prop_map(|(producer, how)| Op::Idempotent { producer, how }),
        2 => Just(Op::TxnData),
        2 => any::<bool>().prop_map(|commit| Op::TxnMarker { commit }),
        4 => proptest::collection::vec(follower_batch, 1..4).prop_map(Op::Follower),
        1 => (1i32..3).prop_map(Op::NewLeaderEpoch),
        1 => (1i64..400).prop_map(Op::AdvanceTime),
        2 => Just(Op::Flush),
        2 => any::<Index>().prop_map(Op::TruncateTo),
        1 => any::<Index>().prop_map(Op::DeleteRecords),
        1 => Just(Op::Retention),
        1 => (any::<Index>(), any::<bool>()).prop_map(|(at, checkpoint)| Op::SetHighWatermark { at, checkpoint }),
        1 => Just(Op::CloseReopen),
        1 => proptest::option::of(any::<Index>()).prop_map(|tear| Op::Crash { tear }),
    ]
}

fn arb_config() -> impl Strategy<Value = LogConfig> {
    (
        200u64..1_500,
        0u32..300,
        proptest::option::of(100i64..1_000),
        proptest::option::of(300u64..3_000),
    )
        .prop_map(
            |(segment_bytes, index_interval_bytes, segment_ms, retention_bytes)| LogConfig {
                segment_bytes,
                index_interval_bytes,
                segment_ms,
                retention_bytes,
                ..small_config()
            },
        )
}

/// A batch as the log stores it.
#[derive(Debug, Clone)]
struct Stored {
    header: BatchHeader,
    bytes: Vec<u8>,
    /// For a transaction marker: whether it commits.
    marker: Option<bool>,
}

/// The transactional producer of the model.
const TXN_PRODUCER: i64 = 3;

#[derive(Debug)]
struct Model {
    /// Every batch the log holds, in offset order (those below the log start included).
    batches: Vec<Stored>,
    log_start: i64,
    /// The epoch new batches are written with.
    leader_epoch: i32,
    /// Kafka's leader-epoch cache, as (epoch, start offset).
    epochs: Vec<(i32, i64)>,
    high_watermark: i64,
    checkpointed_high_watermark: Option<i64>,
    /// Everything below was fsynced: a crash cannot lose it.
    synced_end: i64,
    now_ms: i64,
}

impl Model {
    fn new() -> Self {
        Model {
            batches: Vec::new(),
            log_start: 0,
            leader_epoch: 0,
            epochs: Vec::new(),
            high_watermark: 0,
            checkpointed_high_watermark: None,
            synced_end: 0,
            now_ms: 0,
        }
    }

    fn end(&self) -> i64 {
        self.batches
            .last()
            .map_or(self.log_start, |b| b.header.last_offset() + 1)
            .max(self.log_start)
    }

    /// The producer state and aborted transactions of a replay of every batch.
    fn producers(&self) -> (ProducerStateManager, Vec<CompletedTxn>) {
        let mut producers = ProducerStateManager::new();
        let mut aborted = Vec::new();
        for b in &self.batches {
            match b.marker {
                Some(commit) => {
                    if let Some(txn) = producers.record_marker(&b.header, commit)
                        && txn.aborted
                        && txn.last_offset >= self.log_start
                    {
                        aborted.push(txn);
                    }
                }
                None => producers.record(&b.header),
            }
        }
        (producers, aborted)
    }

    fn push(&mut self, bytes: Vec<u8>, marker: Option<bool>) {
        let header = BatchHeader::parse(&bytes).unwrap();
        let (epoch, start) = (header.partition_leader_epoch, header.base_offset);
        // Kafka's `assign`: epochs only grow here, but an entry the log start put at this
        // very offset makes way.
        if self.epochs.last().is_none_or(|(e, _)| *e != epoch) {
            self.epochs.retain(|(e, s)| *e < epoch && *s < start);
            self.epochs.push((epoch, start));
        }
        self.batches.push(Stored {
            header,
            bytes,
            marker,
        });
    }

    /// Kafka's `truncateFromEnd`.
    fn epochs_truncate_from_end(&mut self, end: i64) {
        self.epochs.retain(|(_, start)| *start < end);
    }

    /// Kafka's `truncateFromStart`.
    fn epochs_truncate_from_start(&mut self, start: i64) {
        let below = self.epochs.iter().filter(|(_, s)| *s <= start).count();
        if below > 0 {
            let epoch = self.epochs[below - 1].0;
            self.epochs.drain(..below);
            self.epochs.insert(0, (epoch, start));
        }
    }

    /// Kafka's `endOffsetFor`.
    fn end_offset_for(&self, requested: i32) -> (i32, i64) {
        if requested == UNDEFINED_EPOCH {
            return (UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET);
        }
        if self.epochs.last().map(|e| e.0) == Some(requested) {
            return (requested, self.end());
        }
        let Some(higher) = self.epochs.iter().find(|e| e.0 > requested) else {
            return (UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET);
        };
        match self.epochs.iter().rev().find(|e| e.0 <= requested) {
            Some(floor) => (floor.0, higher.1),
            None => (requested, higher.1),
        }
    }

    fn advance_log_start(&mut self, start: i64) {
        if start > self.log_start {
            self.log_start = start;
            self.high_watermark = self.high_watermark.max(start);
            self.epochs_truncate_from_start(start);
        }
    }

    /// Drops the batches at or after `end` (a batch boundary).
    fn cut(&mut self, end: i64) {
        self.batches.retain(|b| b.header.base_offset < end);
        self.epochs_truncate_from_end(end);
        self.high_watermark = self.high_watermark.min(end);
        self.synced_end = self.synced_end.min(end);
    }

    /// What a reopen does to the epochs: nothing stays at or past the log end.
    fn reopened(&mut self) {
        let (start, end) = (self.log_start, self.end());
        self.epochs_truncate_from_start(start);
        self.epochs_truncate_from_end(end);
    }

    /// An offset in `[log start, log end]` picked by `at`.
    fn offset_at(&self, at: &Index) -> i64 {
        let span = usize::try_from(self.end() - self.log_start).unwrap() + 1;
        self.log_start + at.index(span) as i64
    }
}

struct Run {
    dir: tempfile::TempDir,
    config: LogConfig,
    log: PartitionLog,
    model: Model,
}

impl Run {
    fn reopen(&mut self, recover: bool) {
        self.log = PartitionLog::open(
            self.dir.path(),
            self.config.clone(),
            recover,
            self.model.now_ms,
            &StorageEnv::unbounded(),
        )
        .unwrap();
    }

    /// A leader append whose outcome the model predicts from its producer state.
    fn leader_append(&mut self, batch: Vec<u8>, marker: Option<bool>) {
        let header = BatchHeader::parse(&batch).unwrap();
        let (producers, _) = self.model.producers();
        let expected = producers.check(&header);
        let result = self
            .log
            .append(&batch, self.model.leader_epoch, None, self.model.now_ms);
        match (expected, result) {
            (Ok(SequenceCheck::Append), Ok(info)) => {
                assert!(!info.duplicate);
                assert_eq!(info.base_offset, self.model.end());
                self.model.push(
                    stamped(&batch, info.base_offset, self.model.leader_epoch),
                    marker,
                );
            }
            (Ok(SequenceCheck::Duplicate(original)), Ok(info)) => {
                assert!(info.duplicate);
                assert_eq!(
                    (info.base_offset, info.last_offset),
                    (original.first_offset, original.last_offset)
                );
            }
            (Err(ProducerError::OutOfOrder { .. }), Err(e)) => assert!(
                matches!(e, StorageError::Producer(ProducerError::OutOfOrder { .. })),
                "{e}"
            ),
            (Err(ProducerError::InvalidEpoch { .. }), Err(e)) => assert!(
                matches!(
                    e,
                    StorageError::Producer(ProducerError::InvalidEpoch { .. })
                ),
                "{e}"
            ),
            (expected, result) => panic!("model {expected:?}, log {result:?}"),
        }
    }

    /// The next batch of `producer` as the model's producer state sees it.
    fn idempotent_batch(
        &self,
        producers: &ProducerStateManager,
        producer: i64,
        how: &ProducerMove,
    ) -> Vec<u8> {
        let entry = producers.producer(producer);
        let epoch = entry.map_or(0, |e| e.epoch);
        let next = entry
            .and_then(|e| e.batches.back())
            .map_or(0, |b| b.last_seq + 1);
        match how {
            ProducerMove::Next => producer_batch(producer, epoch, next, 2, false),
            ProducerMove::Gap => producer_batch(producer, epoch, next + 2, 1, false),
            ProducerMove::BumpEpoch => producer_batch(producer, epoch + 1, 0, 1, false),
            ProducerMove::Retry(back) => {
                match entry.and_then(|e| e.batches.iter().rev().nth(*back)) {
                    Some(b) => {
                        let records = usize::try_from(b.last_seq - b.first_seq + 1).unwrap();
                        producer_batch(producer, epoch, b.first_seq, records, false)
                    }
                    None => producer_batch(producer, epoch, next, 2, false),
                }
            }
        }
    }

    fn follower_append(&mut self, batches: &[FollowerBatch]) {
        let mut producers = self.model.producers().0;
        let mut next = self.model.end();
        let mut bytes = Vec::new();
        let mut stored = Vec::new();
        for (i, b) in batches.iter().enumerate() {
            let raw = match b {
                FollowerBatch::Plain(records, value_len) => batch(*records, i as i64, *value_len),
                FollowerBatch::Producer => {
                    self.idempotent_batch(&producers, 2, &ProducerMove::Next)
                }
            };
            let one = stamped(&raw, next, self.model.leader_epoch);
            let header = BatchHeader::parse(&one).unwrap();
            producers.record(&header);
            next = header.last_offset() + 1;
            bytes.extend_from_slice(&one);
            stored.push(one);
        }
        let info = self
            .log
            .append_as_follower(&bytes, self.model.now_ms)
            .unwrap();
        assert_eq!(info.base_offset, self.model.end());
        assert_eq!(info.last_offset + 1, next);
        for one in stored {
            self.model.push(one, None);
        }
    }

    fn step(&mut self, op: &Op) {
        match op {
            Op::Plain { records, value_len } => {
                self.leader_append(batch(*records, self.model.now_ms, *value_len), None)
            }
            Op::Idempotent { producer, how } => {
                let producers = self.model.producers().0;
                let b = self.idempotent_batch(&producers, *producer, how);
                self.leader_append(b, None);
            }
            Op::TxnData => {
                let producers = self.model.producers().0;
                let entry = producers.producer(TXN_PRODUCER);
                let next = entry
                    .and_then(|e| e.batches.back())
                    .map_or(0, |b| b.last_seq + 1);
                let epoch = entry.map_or(0, |e| e.epoch);
                self.leader_append(producer_batch(TXN_PRODUCER, epoch, next, 1, true), None);
            }
            Op::TxnMarker { commit } => {
                let producers = self.model.producers().0;
                let epoch = producers.producer(TXN_PRODUCER).map_or(0, |e| e.epoch);
                let marker = transaction_marker(TXN_PRODUCER, epoch, *commit, 0, self.model.now_ms);
                self.leader_append(marker, Some(*commit));
            }
            Op::Follower(batches) => self.follower_append(batches),
            Op::NewLeaderEpoch(by) => self.model.leader_epoch += by,
            Op::AdvanceTime(ms) => self.model.now_ms += ms,
            Op::Flush => {
                let handle = self.log.flush_handle();
                handle.flush().unwrap();
                assert_eq!(self.log.mark_flushed(&handle), Some(self.model.end()));
                self.model.synced_end = self.model.end();
            }
            Op::TruncateTo(at) => self.truncate(at),
            Op::DeleteRecords(at) => {
                let offset = self.model.offset_at(at);
                let start = self.log.delete_records_before(offset).unwrap();
                assert_eq!(start, offset.max(self.model.log_start));
                self.model.advance_log_start(offset);
            }
            Op::Retention => {
                self.log.apply_retention(self.model.now_ms).unwrap();
                let start = self.log.log_start_offset();
                let boundary = start == self.model.end()
                    || self
                        .model
                        .batches
                        .iter()
                        .any(|b| b.header.base_offset == start);
                assert!(
                    start == self.model.log_start || (start > self.model.log_start && boundary),
                    "retention to {start}"
                );
                self.model.advance_log_start(start);
            }
            Op::SetHighWatermark { at, checkpoint } => {
                let offset = self.model.offset_at(at);
                self.log.set_high_watermark(offset);
                self.model.high_watermark = offset;
                if *checkpoint {
                    self.log.checkpoint_high_watermark().unwrap();
                    self.model.checkpointed_high_watermark = Some(offset);
                }
            }
            Op::CloseReopen => {
                self.log.close().unwrap();
                self.reopen(false);
                self.model.synced_end = self.model.end();
                self.model.checkpointed_high_watermark = Some(self.model.high_watermark);
                self.model.reopened();
            }
            Op::Crash { tear } => self.crash(tear.as_ref()),
        }
    }

    /// Truncation to a batch boundary at or after the log start (below it the log start
    /// itself would move back, which followers never ask for).
    fn truncate(&mut self, at: &Index) {
        let offset = self.model.offset_at(at);
        let cut = self
            .model
            .batches
            .iter()
            .find(|b| b.header.last_offset() >= offset)
            .map_or(offset, |b| b.header.base_offset.min(offset));
        if cut < self.model.log_start {
            return;
        }
        let removed = self.log.truncate_to(offset, self.model.now_ms).unwrap();
        assert_eq!(removed, cut < self.model.end());
        if removed {
            self.model.cut(cut);
        } else {
            // Kafka cuts the epochs at the log end even so (an epoch led without appends).
            let end = self.model.end();
            self.model.epochs_truncate_from_end(end);
        }
    }

    /// Drops the log without closing it, maybe tears its last segment (never below what
    /// was synced), and recovers.
    fn crash(&mut self, tear: Option<&Index>) {
        let mut end = self.model.end();
        let last = log_files(self.dir.path()).pop().unwrap();
        let last_base = segment_base(&last);
        if let Some(tear) = tear {
            let in_last: Vec<&Stored> = self
                .model
                .batches
                .iter()
                .filter(|b| b.header.base_offset >= last_base)
                .collect();
            let synced: usize = in_last
                .iter()
                .filter(|b| b.header.last_offset() < self.model.synced_end)
                .map(|b| b.bytes.len())
                .sum();
            let len = usize::try_from(std::fs::metadata(&last).unwrap().len()).unwrap();
            let keep = synced + tear.index(len - synced + 1);
            std::fs::OpenOptions::new()
                .write(true)
                .open(&last)
                .unwrap()
                .set_len(keep as u64)
                .unwrap();
            end = last_base;
            let mut position = 0;
            for b in in_last {
                position += b.bytes.len();
                if position > keep {
                    break;
                }
                end = b.header.last_offset() + 1;
            }
        }
        self.reopen(true);
        if end < self.model.log_start {
            // What followed the log start was lost: the log starts afresh there.
            let start = self.model.log_start;
            self.model.batches.clear();
            self.model.epochs.clear();
            self.model.high_watermark = start;
        } else {
            self.model.cut(end);
        }
        self.model.synced_end = self.model.end();
        self.model.high_watermark = self
            .model
            .checkpointed_high_watermark
            .unwrap_or(0)
            .min(self.model.end())
            .max(self.model.log_start);
        self.model.reopened();
    }

    /// The log and the model agree.
    fn check(&self) {
        let (log, model) = (&self.log, &self.model);
        assert_eq!(
            (log.log_start_offset(), log.log_end_offset()),
            (model.log_start, model.end())
        );
        assert!(log.recovery_point() >= model.log_start && log.recovery_point() <= model.end());
        assert_eq!(log.high_watermark(), model.high_watermark);
        assert_eq!(epochs(log), model.epochs, "leader epochs");
        let newest = model.epochs.last().map_or(0, |e| e.0);
        for epoch in -1..=newest + 1 {
            assert_eq!(
                log.end_offset_for_epoch(epoch),
                model.end_offset_for(epoch),
                "end offset for epoch {epoch}"
            );
        }
        let (producers, aborted) = model.producers();
        let expected: ProducerView = {
            let mut v: ProducerView = producers
                .iter()
                .map(|(id, e)| {
                    let batches = e
                        .batches
                        .iter()
                        .map(|b| (b.first_seq, b.last_seq, b.first_offset, b.last_offset))
                        .collect();
                    (id, e.epoch, batches, e.ongoing_txn_first_offset)
                })
                .collect();
            v.sort_by_key(|p| p.0);
            v
        };
        assert_eq!(producer_view(log), expected, "producer state");
        let aborted: Vec<(i64, i64)> = aborted
            .iter()
            .map(|t| (t.producer_id, t.first_offset))
            .collect();
        assert_eq!(log.aborted_transactions(model.log_start, i64::MAX), aborted);
        let end = model.end();
        let lso = producers
            .first_unstable_offset()
            .map_or(end, |f| f.min(end));
        assert_eq!(log.last_stable_offset(), lso);
        let visible: Vec<u8> = model
            .batches
            .iter()
            .filter(|b| b.header.last_offset() >= model.log_start)
            .flat_map(|b| b.bytes.clone())
            .collect();
        assert_eq!(all_bytes(log), visible, "stored bytes");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn the_log_agrees_with_a_model_through_random_operations(
        config in arb_config(),
        ops in proptest::collection::vec(arb_op(), 1..60),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let log = PartitionLog::open(dir.path(), config.clone(), false, 0, &StorageEnv::unbounded()).unwrap();
        let mut run = Run { dir, config, log, model: Model::new() };
        for op in &ops {
            run.step(op);
            run.check();
        }
    }
}

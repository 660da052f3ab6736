//! In-memory log, marker writer and producer ids shared by the coordinator tests.
#![allow(dead_code, clippy::unwrap_used, clippy::indexing_slicing)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::Duration;

use kafka_protocol::messages::add_partitions_to_txn_request::{
    AddPartitionsToTxnTopic, AddPartitionsToTxnTransaction,
};
use kafka_protocol::messages::{
    AddOffsetsToTxnRequest, AddPartitionsToTxnRequest, EndTxnRequest, GroupId,
    InitProducerIdRequest, ProducerId, TopicName, TransactionalId,
};
use kafka_protocol::protocol::StrBytes;
use parking_lot::Mutex;
use sluice_protocol::clock::ManualClock;
use sluice_protocol::model::{
    LeaderEpoch, ProducerIdAndEpoch, TopicPartition, coordinator_partition_for,
};
use sluice_txn::records::{TxnLogKey, TxnLogValue};
use sluice_txn::{
    AppendFuture, CoordinatorRecord, LogEntry, MarkerError, MarkerFuture, MarkerWriter,
    PartitionLoader, PartitionWriter, ProducerIdSource, TransactionCoordinator, TxnConfig,
    TxnState, WriteError,
};

/// What reached the log or the partitions, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A `__transaction_state` record (state None = tombstone).
    State {
        tid: String,
        state: Option<TxnState>,
        producer_id: i64,
        epoch: i16,
        partitions: Vec<(String, Vec<i32>)>,
    },
    /// A marker batch.
    Markers {
        producer_id: i64,
        epoch: i16,
        commit: bool,
        partitions: Vec<TopicPartition>,
    },
}

pub struct Harness {
    pub events: Mutex<Vec<Event>>,
    pub records: Mutex<Vec<CoordinatorRecord>>,
    pub fail_appends: Mutex<Vec<WriteError>>,
    pub fail_markers: Mutex<Vec<MarkerError>>,
    /// While set, marker writes wait (markers "in flight").
    pub hold_markers: AtomicBool,
    /// The coordinator epoch of every marker batch written, in order.
    pub marker_epochs: Mutex<Vec<LeaderEpoch>>,
    pub next_id: AtomicI64,
    /// The clock of every coordinator of this harness: it stands at
    /// [`START_MS`] until the test moves it.
    pub clock: Arc<ManualClock>,
}

pub struct Log(pub Arc<Harness>);
pub struct Markers(pub Arc<Harness>);
pub struct Ids(pub Arc<Harness>);

impl PartitionWriter for Log {
    fn append(
        &self,
        partition: i32,
        transactional: Option<ProducerIdAndEpoch>,
        records: Vec<CoordinatorRecord>,
    ) -> AppendFuture<'_> {
        let h = self.0.clone();
        Box::pin(async move {
            assert_eq!(
                transactional, None,
                "__transaction_state is never transactional"
            );
            let mut fail = h.fail_appends.lock();
            if !fail.is_empty() {
                return Err(fail.remove(0));
            }
            drop(fail);
            for record in &records {
                let tid = TxnLogKey::decode(&record.key).unwrap().transactional_id;
                assert_eq!(
                    coordinator_partition_for(&tid, PARTITIONS),
                    partition,
                    "{tid} written to its own partition"
                );
                let event = match &record.value {
                    None => Event::State {
                        tid: tid.clone(),
                        state: None,
                        producer_id: -1,
                        epoch: -1,
                        partitions: vec![],
                    },
                    Some(v) => {
                        let v = TxnLogValue::decode(v).unwrap();
                        Event::State {
                            tid: tid.clone(),
                            state: Some(v.state),
                            producer_id: v.producer_id,
                            epoch: v.producer_epoch,
                            partitions: v.partitions,
                        }
                    }
                };
                h.events.lock().push(event);
            }
            h.records.lock().extend(records);
            Ok(())
        })
    }
}

impl MarkerWriter for Markers {
    fn write_markers(
        &self,
        producer: ProducerIdAndEpoch,
        coordinator_epoch: LeaderEpoch,
        commit: bool,
        partitions: Vec<TopicPartition>,
    ) -> MarkerFuture<'_> {
        let h = self.0.clone();
        Box::pin(async move {
            while h.hold_markers.load(Ordering::SeqCst) {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            let mut fail = h.fail_markers.lock();
            if !fail.is_empty() {
                return Err(fail.remove(0));
            }
            drop(fail);
            h.marker_epochs.lock().push(coordinator_epoch);
            h.events.lock().push(Event::Markers {
                producer_id: producer.producer_id,
                epoch: producer.epoch,
                commit,
                partitions,
            });
            Ok(())
        })
    }
}

impl ProducerIdSource for Ids {
    fn next_producer_id(&self) -> Result<i64, WriteError> {
        Ok(self.0.next_id.fetch_add(1, Ordering::SeqCst))
    }
}

impl Harness {
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            events: Mutex::default(),
            records: Mutex::default(),
            fail_appends: Mutex::default(),
            fail_markers: Mutex::default(),
            hold_markers: AtomicBool::new(false),
            marker_epochs: Mutex::default(),
            next_id: AtomicI64::new(1000),
            clock: Arc::new(ManualClock::new(START_MS)),
        })
    }

    pub fn coordinator(self: &Arc<Self>) -> TransactionCoordinator {
        self.coordinator_with(TxnConfig::default())
    }

    /// A coordinator with every `__transaction_state` partition loaded
    /// (from an empty log), as a single broker starts.
    pub fn coordinator_with(self: &Arc<Self>, config: TxnConfig) -> TransactionCoordinator {
        let c = self.unloaded_coordinator(config);
        assert_eq!(load_all(&c, &[]), Vec::<usize>::new());
        c
    }

    /// A coordinator with every partition loaded from `records` (see
    /// [`load_all`]), as after a restart.
    pub fn loaded_coordinator(
        self: &Arc<Self>,
        records: &[CoordinatorRecord],
    ) -> TransactionCoordinator {
        let c = self.unloaded_coordinator(TxnConfig::default());
        assert_eq!(load_all(&c, records), Vec::<usize>::new());
        c
    }

    /// A coordinator writing to this harness, with no partition loaded.
    pub fn unloaded_coordinator(self: &Arc<Self>, config: TxnConfig) -> TransactionCoordinator {
        TransactionCoordinator::with_clock(
            config,
            Arc::new(Log(self.clone())),
            Arc::new(Markers(self.clone())),
            Arc::new(Ids(self.clone())),
            self.clock.clone(),
        )
    }

    pub fn events(&self) -> Vec<Event> {
        self.events.lock().clone()
    }

    pub fn clear(&self) {
        self.events.lock().clear();
    }

    /// The states written to the log, in order.
    pub fn states(&self) -> Vec<Option<TxnState>> {
        self.events()
            .into_iter()
            .filter_map(|e| match e {
                Event::State { state, .. } => Some(state),
                Event::Markers { .. } => None,
            })
            .collect()
    }

    pub fn markers(&self) -> Vec<Event> {
        self.events()
            .into_iter()
            .filter(|e| matches!(e, Event::Markers { .. }))
            .collect()
    }
}

pub fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_owned())
}

pub const TIMEOUT_MS: i32 = 60_000;

pub fn init_req(tid: &str) -> InitProducerIdRequest {
    InitProducerIdRequest::default()
        .with_transactional_id(Some(TransactionalId(s(tid))))
        .with_transaction_timeout_ms(TIMEOUT_MS)
}

/// InitProducerId at v4, retrying CONCURRENT_TRANSACTIONS like clients do.
pub async fn init(c: &TransactionCoordinator, tid: &str) -> (i64, i16) {
    for _ in 0..100 {
        let r = c.init_producer_id(init_req(tid), 4).await;
        if r.error_code == 51 {
            settle().await;
            continue;
        }
        assert_eq!(r.error_code, 0, "init {tid}");
        return (r.producer_id.0, r.producer_epoch);
    }
    panic!("init never completed");
}

pub fn add_req(
    tid: &str,
    pid: i64,
    epoch: i16,
    parts: &[(&str, &[i32])],
) -> AddPartitionsToTxnRequest {
    AddPartitionsToTxnRequest::default()
        .with_v3_and_below_transactional_id(TransactionalId(s(tid)))
        .with_v3_and_below_producer_id(ProducerId(pid))
        .with_v3_and_below_producer_epoch(epoch)
        .with_v3_and_below_topics(topics(parts))
}

pub fn topics(parts: &[(&str, &[i32])]) -> Vec<AddPartitionsToTxnTopic> {
    parts
        .iter()
        .map(|(t, ps)| {
            AddPartitionsToTxnTopic::default()
                .with_name(TopicName(s(t)))
                .with_partitions(ps.to_vec())
        })
        .collect()
}

pub fn batch_txn(
    tid: &str,
    pid: i64,
    epoch: i16,
    verify_only: bool,
    parts: &[(&str, &[i32])],
) -> AddPartitionsToTxnTransaction {
    AddPartitionsToTxnTransaction::default()
        .with_transactional_id(TransactionalId(s(tid)))
        .with_producer_id(ProducerId(pid))
        .with_producer_epoch(epoch)
        .with_verify_only(verify_only)
        .with_topics(topics(parts))
}

/// AddPartitionsToTxn v3; returns every partition's error code.
pub async fn add(
    c: &TransactionCoordinator,
    tid: &str,
    pid: i64,
    epoch: i16,
    parts: &[(&str, &[i32])],
) -> Vec<i16> {
    add_v(c, tid, pid, epoch, parts, 3).await
}

pub async fn add_v(
    c: &TransactionCoordinator,
    tid: &str,
    pid: i64,
    epoch: i16,
    parts: &[(&str, &[i32])],
    version: i16,
) -> Vec<i16> {
    let r = c
        .add_partitions_to_txn(add_req(tid, pid, epoch, parts), version)
        .await;
    r.results_by_topic_v3_and_below
        .iter()
        .flat_map(|t| {
            t.results_by_partition
                .iter()
                .map(|p| p.partition_error_code)
        })
        .collect()
}

pub fn end_req(tid: &str, pid: i64, epoch: i16, commit: bool) -> EndTxnRequest {
    EndTxnRequest::default()
        .with_transactional_id(TransactionalId(s(tid)))
        .with_producer_id(ProducerId(pid))
        .with_producer_epoch(epoch)
        .with_committed(commit)
}

pub async fn end(c: &TransactionCoordinator, tid: &str, pid: i64, epoch: i16, commit: bool) -> i16 {
    c.end_txn(end_req(tid, pid, epoch, commit), 3)
        .await
        .error_code
}

pub fn offsets_req(tid: &str, pid: i64, epoch: i16, group: &str) -> AddOffsetsToTxnRequest {
    AddOffsetsToTxnRequest::default()
        .with_transactional_id(TransactionalId(s(tid)))
        .with_producer_id(ProducerId(pid))
        .with_producer_epoch(epoch)
        .with_group_id(GroupId(s(group)))
}

/// Lets background tasks (markers, completion records) run.
pub async fn settle() {
    tokio::time::sleep(Duration::from_millis(500)).await;
}

/// Where a harness's clock starts: any fixed instant, so that every time the
/// coordinator stamps is known exactly.
pub const START_MS: i64 = 1_700_000_000_000;

pub fn replay(h: &Harness) -> Vec<CoordinatorRecord> {
    h.records.lock().clone()
}

/// `__transaction_state` partitions of the default config.
pub const PARTITIONS: i32 = 50;

/// Loads every partition of `c` (none loaded yet) from `records`, each record
/// into the partition of its transactional id, in order; returns the indices
/// of the records that did not replay. A record whose key does not decode
/// names no partition: it is replayed into partition 0.
pub fn load_all(c: &TransactionCoordinator, records: &[CoordinatorRecord]) -> Vec<usize> {
    let partition_of = |record: &CoordinatorRecord| {
        TxnLogKey::decode(&record.key)
            .map(|k| coordinator_partition_for(&k.transactional_id, c.partition_count()))
            .unwrap_or(0)
    };
    let mut failed = Vec::new();
    for partition in 0..c.partition_count() {
        let mut loader = c.load(partition, LeaderEpoch(0)).unwrap();
        for (index, record) in records.iter().enumerate() {
            if partition_of(record) == partition
                && loader.replay(&LogEntry::record(record.clone())).is_err()
            {
                failed.push(index);
            }
        }
        assert!(loader.finish());
    }
    failed.sort_unstable();
    failed
}

pub fn tp(topic: &str, partition: i32) -> TopicPartition {
    TopicPartition::new(topic, partition)
}

/// KIP-890 verification of `topic`-`partition` for `pid` at `epoch`.
pub fn verify(
    c: &TransactionCoordinator,
    pid: i64,
    epoch: i16,
    topic: &str,
    partition: i32,
) -> Result<(), kafka_protocol::error::ResponseError> {
    c.verify_partition(ProducerIdAndEpoch::new(pid, epoch), &tp(topic, partition))
}

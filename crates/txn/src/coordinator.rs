//! The public face of the crate: one method per transaction API, taking and
//! returning `kafka-protocol` messages, plus loading and unloading the
//! shards of `__transaction_state` partitions.
//!
//! Each request decides on the shard of its transactional id, under the
//! shard's lock, marks the transition pending and unlocks before waiting for
//! the log, so a lock is never held across an `.await`. An id whose shard is
//! not loaded here is answered NOT_COORDINATOR, or
//! COORDINATOR_LOAD_IN_PROGRESS while it loads.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{
    AddOffsetsToTxnRequest, AddOffsetsToTxnResponse, AddPartitionsToTxnRequest,
    AddPartitionsToTxnResponse, DescribeTransactionsRequest, DescribeTransactionsResponse,
    EndTxnRequest, EndTxnResponse, InitProducerIdRequest, InitProducerIdResponse,
    ListTransactionsRequest, ListTransactionsResponse,
};
use parking_lot::RwLock;
use sluice_coordinator::{
    CoordinatorError, CoordinatorRecord, CoordinatorShard, LogEntry, PartitionLoader,
    PartitionWriter, ShardCell, Shards, WriteError,
};
use sluice_protocol::clock::{Clock, SystemClock};
use sluice_protocol::model::{LeaderEpoch, ProducerIdAndEpoch, TopicPartition};

use crate::config::TxnConfig;
use crate::error::MarkerError;
use crate::metadata::Snapshot;
use crate::ports::{MarkerWriter, ProducerIdSource};
use crate::records::{TxnLogKey, TxnLogValue};
use crate::shard::TxnShard;
use crate::state::TxnState;
use crate::{add, describe, end, init, timeout, verify};

/// Checks a partition named in AddPartitionsToTxn/AddOffsetsToTxn; `Some`
/// is the error for that partition (e.g. UNKNOWN_TOPIC_OR_PARTITION).
pub type PartitionCheck = Arc<dyn Fn(&TopicPartition) -> Option<ResponseError> + Send + Sync>;

/// The shard of one `__transaction_state` partition.
pub(crate) type TxnCell = ShardCell<TxnShard>;

/// How long to wait before retrying markers or a completion record.
const RETRY_BACKOFF: Duration = Duration::from_millis(100);
const MAX_RETRY_BACKOFF: Duration = Duration::from_secs(5);

pub(crate) struct Inner {
    pub config: TxnConfig,
    pub shards: Shards<TxnShard>,
    pub writer: Arc<dyn PartitionWriter>,
    pub markers: Arc<dyn MarkerWriter>,
    pub ids: Arc<dyn ProducerIdSource>,
    /// Where transaction timestamps, timeouts and id expiration take the time from.
    pub clock: Arc<dyn Clock>,
    pub partition_check: RwLock<Option<PartitionCheck>>,
    /// The partition count of `__consumer_offsets`, to name the partition of
    /// a group that AddOffsetsToTxn adds.
    offsets_partitions: AtomicI32,
}

/// Kafka's transaction coordinator (InitProducerId for transactional ids,
/// AddPartitionsToTxn, AddOffsetsToTxn, EndTxn, timeouts, markers and the
/// transaction admin APIs).
///
/// Cheap to clone; all clones share the same shards. Markers and completion
/// records are written by tasks on the tokio runtime of the caller.
#[derive(Clone)]
pub struct TransactionCoordinator {
    inner: Arc<Inner>,
}

impl TransactionCoordinator {
    /// A coordinator without loaded partitions; transactional ids hash over
    /// `config.state_partitions` partitions. Its timestamps come from the
    /// system clock.
    pub fn new(
        config: TxnConfig,
        writer: Arc<dyn PartitionWriter>,
        markers: Arc<dyn MarkerWriter>,
        ids: Arc<dyn ProducerIdSource>,
    ) -> Self {
        Self::with_clock(config, writer, markers, ids, Arc::new(SystemClock))
    }

    /// Like [`Self::new`], telling the time by `clock`: when transactions
    /// start and ids were last used, and so when they time out and expire.
    pub fn with_clock(
        config: TxnConfig,
        writer: Arc<dyn PartitionWriter>,
        markers: Arc<dyn MarkerWriter>,
        ids: Arc<dyn ProducerIdSource>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                shards: Shards::new(config.state_partitions),
                offsets_partitions: AtomicI32::new(config.offsets_partitions),
                config,
                writer,
                markers,
                ids,
                clock,
                partition_check: RwLock::new(None),
            }),
        }
    }

    /// Lets the broker reject partitions that do not exist (or may not be
    /// written) in AddPartitionsToTxn/AddOffsetsToTxn: like Kafka, the failed
    /// partitions get their error and the others OPERATION_NOT_ATTEMPTED.
    pub fn set_partition_check(&self, check: PartitionCheck) {
        *self.inner.partition_check.write() = Some(check);
    }

    /// The partition count of `__transaction_state` ids hash over.
    pub fn partition_count(&self) -> i32 {
        self.inner.shards.partition_count()
    }

    /// `__consumer_offsets` has `partitions` partitions now (AddOffsetsToTxn
    /// adds the partition of the group).
    pub fn set_offsets_partitions(&self, partitions: i32) {
        self.inner
            .offsets_partitions
            .store(partitions, Ordering::Relaxed);
    }

    /// Starts loading `partition`, led here at `epoch`: feed the loader the
    /// partition's log, then finish it, which completes the transactions it
    /// left decided but not completed (in the background: call it inside a
    /// tokio runtime). Until then its ids are answered
    /// COORDINATOR_LOAD_IN_PROGRESS. `None` when the partition is already
    /// loaded or loading.
    pub fn load(&self, partition: i32, epoch: LeaderEpoch) -> Option<impl PartitionLoader + use<>> {
        let inner = Arc::downgrade(&self.inner);
        self.inner
            .shards
            .load(partition, epoch, |cell| TxnShard::new(cell, inner))
    }

    /// This node stopped leading `partition` (as of leader epoch `epoch`, or
    /// unconditionally with `None`): its ids get NOT_COORDINATOR. Returns
    /// whether it was loaded.
    pub fn unload(&self, partition: i32, epoch: Option<LeaderEpoch>) -> bool {
        self.inner.shards.unload(partition, epoch)
    }

    /// `__transaction_state` now has `partitions` partitions: every shard is
    /// unloaded and ids hash over the new count; load the partitions again.
    pub fn relayout(&self, partitions: i32) {
        self.inner.shards.relayout(partitions);
    }

    /// The durable state of every transactional id of the loaded
    /// partitions: the value its last record holds.
    pub fn image(&self) -> BTreeMap<String, TxnLogValue> {
        let mut image = BTreeMap::new();
        for cell in self.inner.shards.cells() {
            if let Ok(shard) = cell.lock() {
                for (tid, meta) in &shard.txns {
                    image.insert(tid.clone(), meta.current.to_value());
                }
            }
        }
        image
    }

    /// InitProducerId for a transactional id (Some, non-empty).
    pub async fn init_producer_id(
        &self,
        req: InitProducerIdRequest,
        version: i16,
    ) -> InitProducerIdResponse {
        init::handle(&self.inner, req, version).await
    }

    /// AddPartitionsToTxn: v0-3 one transaction from the client; v4+ a batch
    /// of transactions, each either added or only verified (KIP-890).
    pub async fn add_partitions_to_txn(
        &self,
        req: AddPartitionsToTxnRequest,
        version: i16,
    ) -> AddPartitionsToTxnResponse {
        add::handle(&self.inner, req, version).await
    }

    /// AddOffsetsToTxn: adds the `__consumer_offsets` partition of the group,
    /// so the group's transactional offsets are completed by the markers.
    pub async fn add_offsets_to_txn(
        &self,
        req: AddOffsetsToTxnRequest,
        version: i16,
    ) -> AddOffsetsToTxnResponse {
        add::handle_offsets(&self.inner, req, version).await
    }

    /// EndTxn. Answered once PrepareCommit/PrepareAbort is durable; markers
    /// and the Complete* record follow in the background, and until they are
    /// written the id answers CONCURRENT_TRANSACTIONS.
    pub async fn end_txn(&self, req: EndTxnRequest, version: i16) -> EndTxnResponse {
        end::handle(&self.inner, req, version).await
    }

    /// DescribeTransactions.
    pub async fn describe_transactions(
        &self,
        req: DescribeTransactionsRequest,
        version: i16,
    ) -> DescribeTransactionsResponse {
        describe::describe(&self.inner, &req, version)
    }

    /// ListTransactions with its state, producer id, duration (v1+) and
    /// transactional id pattern (v2+) filters.
    pub async fn list_transactions(
        &self,
        req: ListTransactionsRequest,
        version: i16,
    ) -> ListTransactionsResponse {
        describe::list(&self.inner, &req, version, self.inner.clock.now_ms())
    }

    /// Aborts transactions open longer than their timeout at the clock's
    /// current time (the broker calls this every second or so), bumping the
    /// epoch so the zombie is fenced, like Kafka; also forgets transactional
    /// ids idle for longer than `transactional_id_expiration_ms`. Returns once
    /// the aborts are decided (PrepareAbort durable); their markers follow in
    /// the background.
    pub async fn abort_timed_out(&self) {
        let now_ms = self.inner.clock.now_ms();
        timeout::abort_timed_out(&self.inner, now_ms).await;
        timeout::expire_ids(&self.inner, now_ms).await;
    }

    /// Whether this node's coordinator has the transaction of producer id `producer_id`
    /// loaded (it coordinates the producer's transactional id here).
    pub fn coordinates_producer(&self, producer_id: i64) -> bool {
        self.inner.shards.cells().iter().any(|cell| {
            cell.lock()
                .is_ok_and(|shard| shard.by_producer.contains_key(&producer_id))
        })
    }

    /// KIP-890 part 1 for the produce path: `Ok` when `producer` has an
    /// ongoing transaction that already contains `tp`; otherwise the error
    /// the produce must return. Synchronous and cheap.
    pub fn verify_partition(
        &self,
        producer: ProducerIdAndEpoch,
        tp: &TopicPartition,
    ) -> Result<(), ResponseError> {
        for cell in self.inner.shards.cells() {
            let Ok(shard) = cell.lock() else {
                continue;
            };
            if shard.by_producer.contains_key(&producer.producer_id) {
                return verify::verify_partition(&shard, producer, tp);
            }
        }
        Err(ResponseError::InvalidTxnState)
    }
}

impl Inner {
    /// The shard of `tid`, or the error to answer with.
    pub fn cell_for(&self, tid: &str) -> Result<Arc<TxnCell>, ResponseError> {
        self.shards
            .cell_for(tid)
            .map_err(CoordinatorError::response_error)
    }

    /// The partition count of `__consumer_offsets`.
    pub fn offsets_partitions(&self) -> i32 {
        self.offsets_partitions.load(Ordering::Relaxed)
    }

    /// The current partition check.
    pub fn partition_check(&self) -> Option<PartitionCheck> {
        self.partition_check.read().clone()
    }

    /// Writes the pending transition `target` of `tid` and, once durable,
    /// replays it into the shard. A Prepare* state then starts writing the
    /// markers.
    pub async fn persist(
        &self,
        cell: &Arc<TxnCell>,
        tid: &str,
        target: Snapshot,
    ) -> Result<(), ResponseError> {
        let records = state_record(tid, Some(&target.to_value())).map(|r| vec![r]);
        self.write(cell, tid, target.state, records, |shard| {
            let prepared = target.state.is_prepare();
            if let Some(meta) = shard.txns.get_mut(tid) {
                // The log does not carry the epoch before the last bump: the
                // transition knows it.
                meta.current.last_producer_epoch = target.last_producer_epoch;
                meta.pending = None;
                if prepared {
                    meta.fence_not_durable = false;
                    // Markers are in flight until the Complete* record is
                    // durable: every other request sees
                    // CONCURRENT_TRANSACTIONS meanwhile.
                    meta.pending = Some(complete_state(target.state));
                }
            }
            if prepared {
                shard.complete_in_background(tid.to_owned());
            }
        })
        .await
    }

    /// Writes a tombstone for an expired id (pending Dead); replayed, it
    /// forgets the id.
    pub async fn persist_tombstone(
        &self,
        cell: &Arc<TxnCell>,
        tid: &str,
    ) -> Result<(), ResponseError> {
        let records = state_record(tid, None).map(|r| vec![r]);
        self.write(cell, tid, TxnState::Dead, records, |_| {}).await
    }

    /// Appends `records` of `tid`'s transition to `pending`; once durable,
    /// replays them and runs `then` under the shard's lock. A failed write
    /// clears the pending transition. NOT_COORDINATOR when the shard was
    /// unloaded, or the id reloaded, while the write was in flight.
    async fn write(
        &self,
        cell: &Arc<TxnCell>,
        tid: &str,
        pending: TxnState,
        records: Result<Vec<CoordinatorRecord>, WriteError>,
        then: impl FnOnce(&mut TxnShard),
    ) -> Result<(), ResponseError> {
        let result = match records {
            Ok(records) => self
                .writer
                .append(cell.partition(), None, records.clone())
                .await
                .map(|()| records),
            Err(e) => Err(e),
        };
        let mut shard = cell.lock().map_err(CoordinatorError::response_error)?;
        let Some(meta) = shard.txns.get_mut(tid) else {
            return Err(ResponseError::NotCoordinator);
        };
        if meta.pending != Some(pending) {
            // Not ours any more (the id was reloaded): nothing to apply.
            return Err(ResponseError::NotCoordinator);
        }
        let records = match result {
            Ok(records) => records,
            Err(e) => {
                tracing::warn!(transactional_id = %tid, state = %pending, error = %e, "transaction state write failed");
                meta.pending = None;
                return Err(e.response_error());
            }
        };
        for record in records {
            if let Err(error) = shard.replay(&LogEntry::record(record)) {
                tracing::error!(transactional_id = %tid, %error, "a record this coordinator wrote does not replay");
            }
        }
        then(&mut shard);
        Ok(())
    }

    /// A producer id for a new or rotated producer, or
    /// COORDINATOR_LOAD_IN_PROGRESS until one can be allocated.
    pub fn next_producer_id(&self) -> Result<i64, ResponseError> {
        self.ids.next_producer_id().map_err(|e| {
            tracing::warn!(error = %e, "no producer id available");
            ResponseError::CoordinatorLoadInProgress
        })
    }
}

/// The Complete* state a Prepare* state leads to.
pub(crate) fn complete_state(state: TxnState) -> TxnState {
    if state == TxnState::PrepareCommit {
        TxnState::CompleteCommit
    } else {
        TxnState::CompleteAbort
    }
}

/// The record setting `tid` to `value`, or its tombstone.
fn state_record(tid: &str, value: Option<&TxnLogValue>) -> Result<CoordinatorRecord, WriteError> {
    let key = TxnLogKey {
        transactional_id: tid.to_owned(),
    }
    .encode()?;
    Ok(match value {
        Some(value) => CoordinatorRecord::new(key, value.encode()?),
        None => CoordinatorRecord::tombstone(key),
    })
}

/// Completes a decided transaction in the background: markers to every
/// partition, then the Complete* record, retrying until both are done.
pub(crate) fn spawn_completion(inner: Weak<Inner>, cell: Weak<TxnCell>, tid: String) {
    match tokio::runtime::Handle::try_current() {
        Ok(handle) => {
            handle.spawn(complete(inner, cell, tid));
        }
        Err(_) => {
            tracing::error!(transactional_id = %tid, "no tokio runtime: transaction not completed");
        }
    }
}

/// What the markers of a decided transaction say.
struct Markers {
    producer: ProducerIdAndEpoch,
    coordinator_epoch: LeaderEpoch,
    commit: bool,
    partitions: Vec<TopicPartition>,
}

/// The markers `tid` still needs, while it is decided and its shard loaded.
fn markers_of(cell: &TxnCell, tid: &str) -> Option<Markers> {
    let shard = cell.lock().ok()?;
    let meta = shard.txns.get(tid)?;
    meta.current.state.is_prepare().then(|| Markers {
        producer: meta.current.producer(),
        coordinator_epoch: shard.epoch(),
        commit: meta.current.state == TxnState::PrepareCommit,
        partitions: meta.current.partitions.iter().cloned().collect(),
    })
}

/// The markers-then-Complete* loop behind [`spawn_completion`]. It holds
/// only weak references between attempts, so an unloaded shard or a dropped
/// coordinator stops it.
async fn complete(inner: Weak<Inner>, cell: Weak<TxnCell>, tid: String) {
    let mut backoff = RETRY_BACKOFF;
    let mut remaining: Option<Vec<TopicPartition>> = None;
    loop {
        let (Some(strong), Some(shard_cell)) = (inner.upgrade(), cell.upgrade()) else {
            return;
        };
        let Some(markers) = markers_of(&shard_cell, &tid) else {
            return;
        };
        let partitions = remaining.take().unwrap_or(markers.partitions);
        if !partitions.is_empty() {
            let written = strong
                .markers
                .write_markers(
                    markers.producer,
                    markers.coordinator_epoch,
                    markers.commit,
                    partitions.clone(),
                )
                .await;
            if let Err(e) = written {
                tracing::warn!(transactional_id = %tid, error = %e, "transaction markers failed; retrying");
                remaining = Some(match e {
                    MarkerError::Partial { partitions, .. } => partitions,
                    MarkerError::Unavailable(_) => partitions,
                });
                drop((strong, shard_cell));
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_RETRY_BACKOFF);
                continue;
            }
        }
        remaining = Some(Vec::new());
        let target = {
            let Ok(mut shard) = shard_cell.lock() else {
                return;
            };
            match shard.txns.get_mut(&tid) {
                Some(meta) if meta.current.state.is_prepare() => {
                    let target = meta.prepare_complete(strong.clock.now_ms());
                    Some(meta.begin(target))
                }
                _ => None,
            }
        };
        let Some(target) = target else {
            return;
        };
        match strong.persist(&shard_cell, &tid, target).await {
            Ok(()) => return,
            Err(e) => {
                tracing::warn!(transactional_id = %tid, error = %e, "completing transaction failed; retrying");
                drop((strong, shard_cell));
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_RETRY_BACKOFF);
            }
        }
    }
}

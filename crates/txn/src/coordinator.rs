//! The public face of the crate: one method per transaction API, taking and
//! returning `kafka-protocol` messages.
//!
//! All transaction state lives behind one mutex. Handlers lock it, decide,
//! mark the transition pending and unlock before waiting for the log, so the
//! mutex is never held across an `.await`.

use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{
    AddOffsetsToTxnRequest, AddOffsetsToTxnResponse, AddPartitionsToTxnRequest,
    AddPartitionsToTxnResponse, DescribeTransactionsRequest, DescribeTransactionsResponse,
    EndTxnRequest, EndTxnResponse, InitProducerIdRequest, InitProducerIdResponse,
    ListTransactionsRequest, ListTransactionsResponse,
};
use parking_lot::Mutex;

use crate::config::TxnConfig;
use crate::error::{TxnError, TxnLogError};
use crate::log::{MarkerWriter, ProducerIdSource, TxnLog, TxnRecord};
use crate::metadata::{Snapshot, TxnMetadata};
use crate::records::TxnLogKey;
use crate::state::TxnState;
use crate::{add, describe, end, init, load, timeout, verify};

/// Checks a partition named in AddPartitionsToTxn/AddOffsetsToTxn; `Some`
/// is the error for that partition (e.g. UNKNOWN_TOPIC_OR_PARTITION).
pub type PartitionCheck = Arc<dyn Fn(&str, i32) -> Option<ResponseError> + Send + Sync>;

/// The epoch of this coordinator for the `__transaction_state` partitions.
/// Sluice runs one coordinator per cluster, so it never changes; markers
/// carry it so partition leaders can fence a stale coordinator like Kafka's.
pub(crate) const COORDINATOR_EPOCH: i32 = 0;

/// How long to wait before retrying markers or a completion record.
const RETRY_BACKOFF: Duration = Duration::from_millis(100);
const MAX_RETRY_BACKOFF: Duration = Duration::from_secs(5);

/// Everything behind the coordinator mutex.
#[derive(Default)]
pub(crate) struct State {
    pub txns: HashMap<String, TxnMetadata>,
    /// producer id -> transactional id, for the produce-path verification.
    pub by_producer: HashMap<i64, String>,
    pub partition_check: Option<PartitionCheck>,
}

impl State {
    /// Keeps `by_producer` in step when an id moves to another producer id.
    pub fn reindex(&mut self, tid: &str, old: i64, new: i64) {
        if old != new && self.by_producer.get(&old).is_some_and(|t| t == tid) {
            self.by_producer.remove(&old);
        }
        self.by_producer.insert(new, tid.to_owned());
    }
}

pub(crate) struct Inner {
    pub config: TxnConfig,
    pub state: Mutex<State>,
    pub log: Arc<dyn TxnLog>,
    pub markers: Arc<dyn MarkerWriter>,
    pub ids: Arc<dyn ProducerIdSource>,
}

/// Kafka's transaction coordinator (InitProducerId for transactional ids,
/// AddPartitionsToTxn, AddOffsetsToTxn, EndTxn, timeouts, markers and the
/// transaction admin APIs).
///
/// Cheap to clone; all clones share the same state. Markers and completion
/// records are written by tasks on the tokio runtime of the caller.
#[derive(Clone)]
pub struct TransactionCoordinator {
    inner: Arc<Inner>,
}

impl TransactionCoordinator {
    /// A coordinator without transactional ids.
    pub fn new(
        config: TxnConfig,
        log: Arc<dyn TxnLog>,
        markers: Arc<dyn MarkerWriter>,
        ids: Arc<dyn ProducerIdSource>,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                config,
                state: Mutex::new(State::default()),
                log,
                markers,
                ids,
            }),
        }
    }

    /// Lets the broker reject partitions that do not exist (or may not be
    /// written) in AddPartitionsToTxn/AddOffsetsToTxn: like Kafka, the failed
    /// partitions get their error and the others OPERATION_NOT_ATTEMPTED.
    pub fn set_partition_check(&self, check: PartitionCheck) {
        self.inner.state.lock().partition_check = Some(check);
    }

    /// Replays `__transaction_state` records (key, value or None) at startup,
    /// in log order. Must be called inside a tokio runtime: afterwards
    /// transactions found in PrepareCommit/PrepareAbort are completed (markers
    /// re-sent, then Complete* written) in the background, and Ongoing ones
    /// are left to time out (abort). Undecodable records are skipped and
    /// reported in the error; everything else is applied either way.
    pub fn load(
        &self,
        records: impl IntoIterator<Item = (Bytes, Option<Bytes>)>,
    ) -> Result<(), TxnError> {
        load::load(&self.inner, records)
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
        describe::list(&self.inner, &req, version, crate::now_ms())
    }

    /// Aborts transactions open longer than their timeout (the broker calls
    /// this every second or so), bumping the epoch so the zombie is fenced,
    /// like Kafka; also forgets transactional ids idle for longer than
    /// `transactional_id_expiration_ms`. Returns once the aborts are decided
    /// (PrepareAbort durable); their markers follow in the background.
    pub async fn abort_timed_out(&self, now_ms: i64) {
        timeout::abort_timed_out(&self.inner, now_ms).await;
        timeout::expire_ids(&self.inner, now_ms).await;
    }

    /// KIP-890 part 1 for the produce path: `Ok` when `producer_id`/`epoch`
    /// has an ongoing transaction that already contains the partition;
    /// otherwise the error the produce must return. Synchronous and cheap.
    pub fn verify_partition(
        &self,
        producer_id: i64,
        epoch: i16,
        topic: &str,
        partition: i32,
    ) -> Result<(), ResponseError> {
        verify::verify_partition(
            &self.inner.state.lock(),
            producer_id,
            epoch,
            topic,
            partition,
        )
    }
}

impl Inner {
    /// Writes the pending transition `target` of `tid` and applies it once
    /// durable. A Prepare* state then starts writing the markers.
    pub async fn persist(
        self: &Arc<Self>,
        tid: &str,
        target: Snapshot,
    ) -> Result<(), ResponseError> {
        let records = encode_records(tid, &target);
        let result = match records {
            Ok(records) => self.log.append(tid, records).await,
            Err(e) => Err(e),
        };
        let mut state = self.state.lock();
        let Some(meta) = state.txns.get_mut(tid) else {
            return Err(ResponseError::NotCoordinator);
        };
        if meta.pending != Some(target.state) {
            // Not ours any more (the id was reloaded): nothing to apply.
            return Err(ResponseError::NotCoordinator);
        }
        if let Err(e) = result {
            tracing::warn!(transactional_id = %tid, state = %target.state, error = %e, "transaction state write failed");
            meta.pending = None;
            return Err(e.response_error());
        }
        let old_pid = meta.current.producer_id;
        let new_pid = target.producer_id;
        let prepared = target.state.is_prepare();
        if prepared {
            meta.fence_not_durable = false;
        }
        meta.current = target;
        meta.pending = None;
        if prepared {
            // Markers are in flight until the Complete* record is durable:
            // every other request sees CONCURRENT_TRANSACTIONS meanwhile.
            meta.pending = Some(complete_state(meta.current.state));
        }
        state.reindex(tid, old_pid, new_pid);
        drop(state);
        if prepared {
            self.spawn_completion(tid.to_owned());
        }
        Ok(())
    }

    /// Writes a tombstone for an expired id (pending Dead) and forgets it.
    pub async fn persist_tombstone(&self, tid: &str) -> Result<(), ResponseError> {
        let key = TxnLogKey {
            transactional_id: tid.to_owned(),
        }
        .encode()
        .map_err(TxnLogError::from);
        let result = match key {
            Ok(key) => self.log.append(tid, vec![(key, None)]).await,
            Err(e) => Err(e),
        };
        let mut state = self.state.lock();
        let Some(meta) = state.txns.get_mut(tid) else {
            return Err(ResponseError::NotCoordinator);
        };
        if meta.pending != Some(TxnState::Dead) {
            return Err(ResponseError::NotCoordinator);
        }
        if let Err(e) = result {
            meta.pending = None;
            return Err(e.response_error());
        }
        let pid = meta.current.producer_id;
        state.txns.remove(tid);
        if state.by_producer.get(&pid).is_some_and(|t| t == tid) {
            state.by_producer.remove(&pid);
        }
        Ok(())
    }

    /// Completes a decided transaction in the background: markers to every
    /// partition, then the Complete* record, retrying until both are done.
    pub fn spawn_completion(self: &Arc<Self>, tid: String) {
        let weak = Arc::downgrade(self);
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => {
                handle.spawn(complete(weak, tid));
            }
            Err(_) => {
                tracing::error!(transactional_id = %tid, "no tokio runtime: transaction not completed");
            }
        }
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

fn encode_records(tid: &str, target: &Snapshot) -> Result<Vec<TxnRecord>, TxnLogError> {
    let key = TxnLogKey {
        transactional_id: tid.to_owned(),
    }
    .encode()?;
    let value = target.to_value().encode()?;
    Ok(vec![(key, Some(value))])
}

/// The markers-then-Complete* loop behind [`Inner::spawn_completion`]. It
/// holds only a weak reference between attempts so a dropped coordinator
/// stops retrying.
async fn complete(inner: Weak<Inner>, tid: String) {
    let mut backoff = RETRY_BACKOFF;
    let mut remaining: Option<Vec<(String, i32)>> = None;
    loop {
        let Some(strong) = inner.upgrade() else {
            return;
        };
        let plan = {
            let state = strong.state.lock();
            match state.txns.get(&tid) {
                Some(meta) if meta.current.state.is_prepare() => Some((
                    meta.current.producer_id,
                    meta.current.producer_epoch,
                    meta.current.state == TxnState::PrepareCommit,
                    meta.current.partitions.iter().cloned().collect::<Vec<_>>(),
                )),
                _ => None,
            }
        };
        let Some((pid, epoch, commit, all)) = plan else {
            return;
        };
        let partitions = remaining.take().unwrap_or(all);
        if !partitions.is_empty() {
            match strong
                .markers
                .write_markers(pid, epoch, COORDINATOR_EPOCH, commit, partitions.clone())
                .await
            {
                Ok(()) => {}
                Err(e) => {
                    tracing::warn!(transactional_id = %tid, error = %e, "transaction markers failed; retrying");
                    remaining = Some(match e {
                        crate::MarkerError::Partial { partitions, .. } => partitions,
                        crate::MarkerError::Unavailable(_) => partitions,
                    });
                    drop(strong);
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_RETRY_BACKOFF);
                    continue;
                }
            }
        }
        remaining = Some(Vec::new());
        let target = {
            let mut state = strong.state.lock();
            match state.txns.get_mut(&tid) {
                Some(meta) if meta.current.state.is_prepare() => {
                    let target = meta.prepare_complete(crate::now_ms());
                    Some(meta.begin(target))
                }
                _ => None,
            }
        };
        let Some(target) = target else {
            return;
        };
        match strong.persist(&tid, target).await {
            Ok(()) => return,
            Err(e) => {
                tracing::warn!(transactional_id = %tid, error = %e, "completing transaction failed; retrying");
                drop(strong);
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_RETRY_BACKOFF);
            }
        }
    }
}

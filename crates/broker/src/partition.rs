//! One partition on this broker: its log, its settings, its role (leader or follower,
//! leader epoch, high watermark; see [`crate::replica`]) and group commit.
//!
//! Appends take the write lock only for the in-memory bookkeeping and the
//! write into the page cache. `acks=all` producers then queue the partition
//! for the broker's sync thread ([`crate::flusher`]), which fdatasyncs
//! *without* the lock; every append that arrived while a sync ran is covered
//! by the next one (group commit).
//!
//! A failed sync takes the partition offline until the broker restarts: the
//! kernel may have dropped the pages it could not write, so no later sync may
//! call them durable. Every waiter past the durable end, and every later
//! append, gets a storage error; recovery at the next start keeps what the
//! disk really holds.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use parking_lot::RwLock;
use sluice_protocol::clock::Clock;
use sluice_protocol::model::LeaderEpoch;
use sluice_protocol::model::ProducerIdAndEpoch;
use sluice_storage::{
    AppendInfo, CleanOutcome, CleanedSegments, CleaningTask, DirtyStats, FlushHandle, PartitionLog,
    StorageError,
};
use tokio::sync::futures::Notified;
use tokio::sync::{Notify, watch};
use uuid::Uuid;

use crate::flusher::FlushQueue;
use crate::metadata::PartitionRegistration;
use crate::metrics::{Histogram, TopicTraffic};
use crate::replica::{FollowerState, LeaderState, PartitionRole};
use crate::topic_config::{TimestampType, TopicSettings};

/// How far the log is known to be on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Durability {
    /// Every offset below this is durable.
    pub durable_end: i64,
    /// A sync failed: the partition is offline until restart, `durable_end`
    /// never moves again, and waiters past it report a storage error.
    pub failed: bool,
}

/// Offsets a fetch or ListOffsets reports alongside data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionOffsets {
    /// First offset still in the log.
    pub log_start_offset: i64,
    /// Offset the next append gets.
    pub log_end_offset: i64,
    /// What consumers may read: replicated to every in-sync replica (on one node, the
    /// log end offset).
    pub high_watermark: i64,
    /// Below this every transaction is decided and the high watermark is reached (the
    /// read_committed bound).
    pub last_stable_offset: i64,
}

/// Why an append was not made.
#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    /// This node does not lead the partition (NOT_LEADER_OR_FOLLOWER).
    #[error("this broker is not the leader of the partition")]
    NotLeader,
    /// This node follows the partition, so a follower append was expected, or the other
    /// way round (a leadership changed under the caller).
    #[error("this broker is not a follower of the partition")]
    NotFollower,
    /// acks=all with fewer in-sync replicas than `min.insync.replicas` (NOT_ENOUGH_REPLICAS:
    /// nothing was written).
    #[error("{isr} in-sync replica(s), {required} required by min.insync.replicas")]
    NotEnoughReplicas {
        /// In-sync replicas now.
        isr: usize,
        /// The fewest acks=all needs.
        required: usize,
    },
    /// The log refused or failed the append.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

struct PartitionState {
    log: PartitionLog,
    settings: Arc<TopicSettings>,
    role: PartitionRole,
}

/// A partition with a replica on this broker.
pub struct Partition {
    /// Topic name.
    pub topic: String,
    /// Partition index.
    pub index: i32,
    /// Id of the topic incarnation this partition belongs to.
    pub topic_id: Uuid,
    state: RwLock<PartitionState>,
    durability: watch::Sender<Durability>,
    flush_queue: Arc<FlushQueue>,
    /// Woken when the readable end (high watermark or last stable offset) may have moved,
    /// so long-polling fetches of this partition re-check (Kafka's purgatory, keyed by
    /// partition).
    readable_changed: Notify,
    /// Woken on every append, so that followers' long-polling fetches (which read to the
    /// log end, not the high watermark) re-check.
    log_appended: Notify,
    /// Set while the partition waits in the flush queue, so it is queued once.
    flush_queued: AtomicBool,
    closed: AtomicBool,
    /// This topic's byte and record counters, looked up once at open.
    pub traffic: Arc<TopicTraffic>,
    fsync_latency: Arc<Histogram>,
    /// The broker's clock: append times and retention.
    clock: Arc<dyn Clock>,
}

impl Partition {
    /// Wraps an opened log; its syncs run on `flush_queue`'s threads, and it tells the
    /// time (append times, retention) by `clock`.
    #[allow(clippy::too_many_arguments)]
    pub fn start(
        topic: String,
        index: i32,
        topic_id: Uuid,
        log: PartitionLog,
        settings: Arc<TopicSettings>,
        traffic: Arc<TopicTraffic>,
        fsync_latency: Arc<Histogram>,
        flush_queue: Arc<FlushQueue>,
        role: PartitionRole,
        clock: Arc<dyn Clock>,
    ) -> Arc<Self> {
        let mut log = log;
        begin_leadership(&mut log, &role, &topic, index);
        let end = log.log_end_offset();
        let (durability, _) = watch::channel(Durability {
            durable_end: end,
            failed: false,
        });
        Arc::new(Self {
            topic,
            index,
            topic_id,
            state: RwLock::new(PartitionState {
                log,
                settings,
                role,
            }),
            durability,
            flush_queue,
            readable_changed: Notify::new(),
            log_appended: Notify::new(),
            flush_queued: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            traffic,
            fsync_latency,
            clock,
        })
    }

    /// The settings appends are checked against.
    pub fn settings(&self) -> Arc<TopicSettings> {
        self.state.read().settings.clone()
    }

    /// Applies changed topic configs.
    pub fn set_settings(&self, settings: Arc<TopicSettings>) {
        let mut state = self.state.write();
        state.log.set_config(settings.log.clone());
        state.settings = settings;
    }

    /// Appends validated batches as the leader: stores them with offsets, this
    /// leadership's epoch (and the append time for LogAppendTime topics) stamped, in the
    /// page cache, and wakes the fetches waiting on this partition.
    pub(crate) fn append_as_leader(
        &self,
        batches: &[u8],
        acks_all: bool,
    ) -> Result<AppendInfo, AppendError> {
        let now = self.clock.now_ms();
        let mut state = self.state.write();
        let PartitionState {
            log,
            settings,
            role,
        } = &mut *state;
        let PartitionRole::Leader(leader) = role else {
            return Err(AppendError::NotLeader);
        };
        if acks_all && !leader.has_min_isr() {
            return Err(AppendError::NotEnoughReplicas {
                isr: leader.isr.len(),
                required: leader.effective_min_isr(),
            });
        }
        let log_append_time =
            (settings.timestamp_type == TimestampType::LogAppendTime).then_some(now);
        let info = log.append(batches, leader.epoch.0, log_append_time, now)?;
        let moved = leader.advance_high_watermark(log.log_end_offset());
        let high_watermark = role.high_watermark();
        sluice_storage::invariant!(
            high_watermark <= log.log_end_offset(),
            "{}-{}: high watermark {} past the log end {}",
            self.topic,
            self.index,
            high_watermark,
            log.log_end_offset()
        );
        if moved {
            log.set_high_watermark(high_watermark);
        }
        drop(state);
        self.log_appended.notify_waiters();
        if moved {
            self.readable_changed.notify_waiters();
        }
        Ok(info)
    }

    /// Appends batches fetched from the leader as they are (offsets and epochs kept), as a
    /// follower; then takes the leader's high watermark, capped by the new log end.
    pub(crate) fn append_as_follower(
        &self,
        term: FollowerTerm,
        batches: &[u8],
        leader_high_watermark: i64,
    ) -> Result<AppendInfo, AppendError> {
        let now = self.clock.now_ms();
        let mut state = self.state.write();
        let PartitionState { log, role, .. } = &mut *state;
        let Some(follower) = following(role, term) else {
            return Err(AppendError::NotFollower);
        };
        let info = log.append_as_follower(batches, now)?;
        follower.learn_high_watermark(leader_high_watermark, log.log_end_offset());
        log.set_high_watermark(follower.high_watermark);
        drop(state);
        self.log_appended.notify_waiters();
        self.readable_changed.notify_waiters();
        Ok(info)
    }

    /// A follower takes the leader's high watermark (capped by its log end) from a fetch
    /// response that brought no records.
    pub(crate) fn learn_high_watermark(&self, term: FollowerTerm, leader_high_watermark: i64) {
        let mut state = self.state.write();
        let PartitionState { log, role, .. } = &mut *state;
        if let Some(follower) = following(role, term) {
            let before = follower.high_watermark;
            follower.learn_high_watermark(leader_high_watermark, log.log_end_offset());
            log.set_high_watermark(follower.high_watermark);
            if follower.high_watermark != before {
                drop(state);
                self.readable_changed.notify_waiters();
            }
        }
    }

    /// Cuts the log back to `offset` (a follower whose log diverged from its leader's);
    /// returns whether anything was removed. The durable end comes down with the log.
    pub(crate) fn truncate_to(&self, term: FollowerTerm, offset: i64) -> Result<bool, AppendError> {
        let mut state = self.state.write();
        if following(&mut state.role, term).is_none() {
            return Err(AppendError::NotFollower);
        }
        let truncated = state.log.truncate_to(offset, self.clock.now_ms())?;
        if truncated {
            let end = state.log.log_end_offset();
            if let PartitionRole::Follower(follower) = &mut state.role {
                follower.high_watermark = follower.high_watermark.min(end);
            }
            self.durability
                .send_modify(|d| d.durable_end = d.durable_end.min(end));
        }
        Ok(truncated)
    }

    /// A follower whose fetch offset fell below the leader's log start starts its log
    /// afresh at `offset` (Kafka's `truncateFullyAndStartAt`).
    pub(crate) fn restart_at(&self, term: FollowerTerm, offset: i64) -> Result<(), AppendError> {
        let mut state = self.state.write();
        if following(&mut state.role, term).is_none() {
            return Err(AppendError::NotFollower);
        }
        state
            .log
            .truncate_fully_and_start_at(offset, self.clock.now_ms())?;
        if let PartitionRole::Follower(follower) = &mut state.role {
            follower.high_watermark = offset;
        }
        self.durability.send_modify(|d| d.durable_end = offset);
        Ok(())
    }

    /// What a follower asks its leader for next: its log end, the epoch of its last batch
    /// (for the leader to detect divergence), its leader epoch and log start. The fetcher
    /// waits until that log end is durable ([`Partition::wait_durable`]) before it asks,
    /// so the offset it reports — from which the leader's high watermark follows — is on
    /// disk here: an acknowledged acks=all record is on disk on every in-sync replica.
    pub(crate) fn follower_fetch_position(&self) -> Option<FollowerFetchPosition> {
        let state = self.state.read();
        let PartitionRole::Follower(follower) = &state.role else {
            return None;
        };
        Some(FollowerFetchPosition {
            term: FollowerTerm {
                leader: follower.leader,
                epoch: follower.epoch,
            },
            fetch_offset: state.log.log_end_offset(),
            last_fetched_epoch: state.log.leader_epochs().latest_epoch().unwrap_or(-1),
            log_start_offset: state.log.log_start_offset(),
        })
    }

    /// The largest epoch ≤ `epoch` with data here and where it ends (OffsetForLeaderEpoch,
    /// a Fetch's diverging epoch).
    pub fn end_offset_for_epoch(&self, epoch: i32) -> (i32, i64) {
        self.state.read().log.end_offset_for_epoch(epoch)
    }

    /// Records a follower's fetch from `fetch_offset` (its log end) on the leader: moves
    /// the high watermark (waking acks=all waiters and consumers) when the in-sync
    /// replicas all have more now. False when `replica` is not a follower of this
    /// leadership.
    pub(crate) fn record_follower_fetch(&self, replica: i32, fetch_offset: i64) -> bool {
        let now = self.clock.now_ms();
        let mut state = self.state.write();
        let PartitionState { log, role, .. } = &mut *state;
        let PartitionRole::Leader(leader) = role else {
            return false;
        };
        if leader.follower(replica).is_none() {
            return false;
        }
        let log_end = log.log_end_offset();
        if fetch_offset > log_end {
            // Past this log's end: the read answers OFFSET_OUT_OF_RANGE and the follower
            // truncates; such an offset says nothing about what is replicated.
            return true;
        }
        let moved = leader.record_fetch(replica, fetch_offset, log_end, now);
        if moved {
            log.set_high_watermark(leader.high_watermark_value());
            drop(state);
            self.readable_changed.notify_waiters();
        }
        true
    }

    /// The ISR this leader should ask the quorum for now (see
    /// [`LeaderState::proposed_isr`]), marked pending until [`Partition::isr_proposal_failed`]
    /// or the committed registration settles it; with the leader epoch it was decided at.
    pub(crate) fn begin_isr_proposal(&self, max_lag_ms: i64) -> Option<(LeaderEpoch, Vec<i32>)> {
        let mut state = self.state.write();
        let PartitionRole::Leader(leader) = &mut state.role else {
            return None;
        };
        let isr = leader.proposed_isr(self.clock.now_ms(), max_lag_ms)?;
        leader.set_pending_isr(isr.clone());
        Some((leader.epoch, isr))
    }

    /// The quorum refused (or never committed) the ISR proposal of leadership `epoch`: the
    /// next check proposes again from the committed ISR.
    pub(crate) fn isr_proposal_failed(&self, epoch: LeaderEpoch) {
        if let PartitionRole::Leader(leader) = &mut self.state.write().role
            && leader.epoch == epoch
        {
            leader.clear_pending_isr();
        }
    }

    /// Resolves on the next append (followers' long polls wait on it); create it before
    /// reading, so no append is missed.
    pub fn log_appended(&self) -> Notified<'_> {
        self.log_appended.notified()
    }

    /// Whether enough replicas are in sync for acks=all (always, for a follower: the
    /// question is the leader's).
    pub fn has_min_isr(&self) -> bool {
        match &self.state.read().role {
            PartitionRole::Leader(leader) => leader.has_min_isr(),
            PartitionRole::Follower(_) => true,
        }
    }

    /// Resolves when the partition's readable end may have moved (see
    /// [`Partition::read`]); create it before reading, so no change is missed.
    pub fn readable_changed(&self) -> Notified<'_> {
        self.readable_changed.notified()
    }

    /// The leader epoch this node knows for the partition.
    pub fn leader_epoch(&self) -> LeaderEpoch {
        self.state.read().role.leader_epoch()
    }

    /// How replication of the partition stands, if this node leads it.
    pub fn leader_summary(&self) -> Option<LeaderSummary> {
        let state = self.state.read();
        let PartitionRole::Leader(leader) = &state.role else {
            return None;
        };
        let log_end = state.log.log_end_offset();
        Some(LeaderSummary {
            replicas: leader.replication_factor(),
            isr: leader.isr.len(),
            min_isr: leader.effective_min_isr(),
            follower_lag: leader
                .replicas
                .iter()
                .filter_map(|&r| {
                    let progress = leader.follower(r)?;
                    Some((r, (log_end - progress.log_end_offset.max(0)).max(0)))
                })
                .collect(),
        })
    }

    /// Where this node's leadership of the partition began (its log end then), if it
    /// leads it.
    pub fn leader_epoch_start_offset(&self) -> Option<i64> {
        match &self.state.read().role {
            PartitionRole::Leader(leader) => Some(leader.epoch_start_offset),
            PartitionRole::Follower(_) => None,
        }
    }

    /// Whether this node leads the partition.
    pub fn is_leader(&self) -> bool {
        self.state.read().role.is_leader()
    }

    /// Takes the role the partition's registration gives node `node`. The same
    /// leadership (leader and epoch) keeps its followers' progress and only takes the new
    /// replicas and ISR; a new leadership or followership starts from the current log end
    /// and high watermark. Returns whether the role changed (a fetcher must look again).
    pub fn apply_registration(&self, registration: &PartitionRegistration, node: i32) -> bool {
        let mut state = self.state.write();
        let PartitionState {
            log,
            settings,
            role,
        } = &mut *state;
        let same_leadership = registration.leader_epoch == role.leader_epoch()
            && (registration.leader == node) == role.is_leader();
        if same_leadership {
            if let PartitionRole::Leader(leader) = role {
                leader.set_replicas(
                    registration.replicas.clone(),
                    registration.adding_replicas.clone(),
                    self.clock.now_ms(),
                );
                leader.set_isr(registration.isr.clone());
                leader.min_insync_replicas = settings.min_insync_replicas;
            }
            return false;
        }
        let high_watermark = role.high_watermark().max(log.high_watermark());
        *role = role_for(
            registration,
            node,
            log.log_end_offset(),
            high_watermark,
            settings.min_insync_replicas,
            self.clock.now_ms(),
        );
        begin_leadership(log, role, &self.topic, self.index);
        drop(state);
        self.readable_changed.notify_waiters();
        self.log_appended.notify_waiters();
        true
    }

    /// Asks the sync thread to sync what has been appended so far. Call it
    /// for every partition of a request before waiting, so they join one pass.
    pub fn request_flush(self: &Arc<Self>) {
        if !self.flush_queued.swap(true, Ordering::AcqRel) {
            self.flush_queue.push(self.clone());
        }
    }

    /// One group-commit sync of this partition alone (tests; the sync thread syncs its
    /// passes with [`sync_together`]).
    #[cfg(test)]
    pub(crate) fn sync(&self) {
        let Some(handle) = self.begin_sync() else {
            return;
        };
        let started = std::time::Instant::now();
        let result = handle.flush();
        self.finish_sync(&handle, result, started.elapsed());
    }

    /// Starts a group-commit sync: the handle covers everything appended before now;
    /// `None` when the partition is closed.
    fn begin_sync(&self) -> Option<FlushHandle> {
        // Cleared first: an append after this point queues the partition
        // again, because the handle below may not cover it.
        self.flush_queued.store(false, Ordering::Release);
        if self.is_closed() {
            return None;
        }
        Some(self.state.read().log.flush_handle())
    }

    /// Ends a sync begun with [`Self::begin_sync`] that took `took`: records what it made
    /// durable and tells the waiters, or takes the partition offline.
    fn finish_sync(&self, handle: &FlushHandle, result: Result<i64, StorageError>, took: Duration) {
        if !handle.is_empty() {
            self.fsync_latency.observe(took);
        }
        match result {
            Ok(_) => {
                let (durable, log_end) = {
                    let mut state = self.state.write();
                    (state.log.mark_flushed(handle), state.log.log_end_offset())
                };
                // None: truncated meanwhile, so this sync proves nothing.
                let Some(durable_end) = durable else { return };
                sluice_storage::invariant!(
                    durable_end <= log_end,
                    "{}-{}: synced up to {durable_end}, past the log end {log_end}",
                    self.topic,
                    self.index
                );
                self.durability.send_if_modified(|d| {
                    let advanced = !d.failed && durable_end > d.durable_end;
                    if advanced {
                        d.durable_end = durable_end;
                    }
                    advanced
                });
            }
            Err(e) => self.go_offline(&e),
        }
    }

    /// Waits until every offset below `end` is committed — what acks=all waits for: on
    /// disk here, and past the high watermark (with replicas, followers report only
    /// offsets they have synced, so the in-sync replicas hold it durably too; with one
    /// replica the high watermark is already there). The caller has requested a flush
    /// after its append.
    pub async fn wait_committed(&self, end: i64) -> Result<(), AppendError> {
        self.wait_durable(end).await?;
        loop {
            let changed = self.readable_changed();
            tokio::pin!(changed);
            changed.as_mut().enable();
            {
                let state = self.state.read();
                if state.role.high_watermark() >= end {
                    return Ok(());
                }
                // A leadership lost while waiting never commits here (Kafka's delayed
                // produce answers NOT_LEADER_OR_FOLLOWER).
                if !state.role.is_leader() {
                    return Err(AppendError::NotLeader);
                }
            }
            changed.await;
        }
    }

    /// Marks the partition offline after a failed sync, waking every waiter;
    /// logged once, when it happens.
    fn go_offline(&self, error: &StorageError) {
        let newly_failed = self
            .durability
            .send_if_modified(|d| !std::mem::replace(&mut d.failed, true));
        if newly_failed {
            tracing::error!(
                topic = %self.topic,
                partition = self.index,
                durable_end = self.durability.borrow().durable_end,
                error = %error,
                "fsync of the partition log failed: the partition is offline and refuses writes until the broker restarts and recovers it"
            );
        }
    }

    /// How far the log is known to be on disk.
    pub fn durability(&self) -> Durability {
        *self.durability.borrow()
    }

    /// Waits until every offset below `end` is on disk here (the caller has requested a
    /// flush after its append).
    pub(crate) async fn wait_durable(&self, end: i64) -> Result<(), StorageError> {
        let mut rx = self.durability.subscribe();
        if rx.borrow().durable_end >= end {
            return Ok(());
        }
        let state = rx
            .wait_for(|d| d.durable_end >= end || d.failed)
            .await
            .map_err(|_| StorageError::Io(std::io::Error::other("partition closed")))?;
        if state.durable_end >= end {
            return Ok(());
        }
        drop(state);
        Err(StorageError::Offline {
            dir: self.state.read().log.dir().to_path_buf(),
        })
    }

    /// Whole batches from `offset`, at most `max_bytes` unless the first batch
    /// alone is larger (KIP-74), below `bound`: the high watermark for consumers, the last
    /// stable offset for read_committed (with the aborted transactions the returned range
    /// overlaps), the log end for a follower replicating.
    pub fn read(
        &self,
        offset: i64,
        max_bytes: usize,
        bound: ReadBound,
    ) -> Result<PartitionRead, StorageError> {
        let state = self.state.read();
        let offsets = offsets_of(&state);
        let upper = match bound {
            ReadBound::HighWatermark => offsets.high_watermark,
            ReadBound::LastStable => offsets.last_stable_offset,
            ReadBound::LogEnd => offsets.log_end_offset,
        };
        let read_committed = bound == ReadBound::LastStable;
        let records = state.log.read(offset, max_bytes, upper)?;
        let aborted = if read_committed && !records.is_empty() {
            let end = last_offset_in(&records).map_or(upper, |last| last + 1);
            state.log.aborted_transactions(offset, end)
        } else {
            Vec::new()
        };
        Ok(PartitionRead {
            records,
            offsets,
            aborted,
        })
    }

    /// Current log start and end offsets.
    pub fn offsets(&self) -> PartitionOffsets {
        offsets_of(&self.state.read())
    }

    /// Bytes on disk.
    pub fn size_bytes(&self) -> u64 {
        self.state.read().log.size_bytes()
    }

    /// ListOffsets by timestamp: the first record at or after `ts`.
    pub fn offset_for_timestamp(&self, ts: i64) -> Result<Option<(i64, i64)>, StorageError> {
        self.state.read().log.offset_for_timestamp(ts)
    }

    /// ListOffsets MAX_TIMESTAMP: the record with the largest timestamp.
    pub fn max_timestamp(&self) -> Option<(i64, i64)> {
        self.state.read().log.max_timestamp()
    }

    /// Idempotent and transactional producers with state in this partition
    /// (DescribeProducers).
    pub fn producers(&self) -> Vec<ProducerSnapshot> {
        let state = self.state.read();
        state
            .log
            .producer_state()
            .iter()
            .map(|(id, e)| ProducerSnapshot {
                producer: ProducerIdAndEpoch::new(id, e.epoch),
                last_sequence: e.batches.back().map_or(-1, |b| b.last_seq),
                last_timestamp: e.last_timestamp,
                ongoing_txn_first_offset: e.ongoing_txn_first_offset,
            })
            .collect()
    }

    /// DeleteRecords: moves the log start offset forward.
    pub fn delete_records_before(&self, offset: i64) -> Result<i64, StorageError> {
        self.state.write().log.delete_records_before(offset)
    }

    /// Deletes segments past retention at the clock's current time.
    pub fn apply_retention(&self) -> Result<usize, StorageError> {
        let now_ms = self.clock.now_ms();
        self.state.write().log.apply_retention(now_ms)
    }

    /// How dirty the log of a compacted topic is; `None` when the topic is not compacted.
    pub fn dirty_stats(&self) -> Option<DirtyStats> {
        let state = self.state.read();
        let high_watermark = offsets_of(&state).high_watermark;
        state.log.dirty_stats(self.clock.now_ms(), high_watermark)
    }

    /// Plans a cleaning of the log (see [`sluice_storage::cleaner`]) under the read lock;
    /// the cleaning itself runs without the lock.
    pub fn plan_cleaning(&self) -> Result<Option<CleaningTask>, StorageError> {
        let state = self.state.read();
        let high_watermark = offsets_of(&state).high_watermark;
        state.log.plan_cleaning(self.clock.now_ms(), high_watermark)
    }

    /// Swaps cleaned segments in: the one step of a cleaning under the write lock, so
    /// appends wait only for renames and a directory sync. Nothing happens once the
    /// partition is closed.
    pub fn install_cleaned(&self, cleaned: CleanedSegments) -> Result<CleanOutcome, StorageError> {
        if self.is_closed() {
            return Ok(CleanOutcome::Abandoned);
        }
        let now_ms = self.clock.now_ms();
        self.state.write().log.install_cleaned(cleaned, now_ms)
    }

    /// When the log cleaner last finished a cleaning of this partition (since it opened).
    pub fn last_cleaned_ms(&self) -> Option<i64> {
        self.state.read().log.last_cleaned_ms()
    }

    /// Stops syncs by the sync thread and syncs everything (shutdown or
    /// topic deletion).
    pub fn close(&self) -> Result<(), StorageError> {
        self.closed.store(true, Ordering::Release);
        let mut state = self.state.write();
        if let Err(e) = state.log.close() {
            let offline = state.log.is_offline();
            drop(state);
            if offline {
                // Its final sync failed: wake the waiters with the error.
                self.go_offline(&e);
            }
            return Err(e);
        }
        let end = state.log.log_end_offset();
        self.durability
            .send_modify(|d| d.durable_end = d.durable_end.max(end));
        Ok(())
    }

    /// Whether the partition was closed (shutdown, topic deleted).
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }
}

fn offsets_of(state: &PartitionState) -> PartitionOffsets {
    let high_watermark = state.role.high_watermark();
    PartitionOffsets {
        log_start_offset: state.log.log_start_offset(),
        log_end_offset: state.log.log_end_offset(),
        high_watermark,
        last_stable_offset: state.log.last_stable_offset().min(high_watermark),
    }
}

/// The last offset of the last whole batch in `records`.
fn last_offset_in(records: &[u8]) -> Option<i64> {
    sluice_protocol::batch::split_batches(records)
        .filter_map(Result::ok)
        .last()
        .map(|(h, _)| h.last_offset())
}

/// One producer's state in a partition, as DescribeProducers reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerSnapshot {
    /// The producer and its current epoch.
    pub producer: ProducerIdAndEpoch,
    /// Sequence of the last record written, -1 when none.
    pub last_sequence: i32,
    /// Timestamp of its last batch.
    pub last_timestamp: i64,
    /// First offset of its open transaction, if one is open.
    pub ongoing_txn_first_offset: Option<i64>,
}

/// Which end a read stops at (see [`Partition::read`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadBound {
    /// A consumer's read_uncommitted fetch.
    HighWatermark,
    /// A consumer's read_committed fetch.
    LastStable,
    /// A follower's fetch.
    LogEnd,
}

/// Where a follower fetches from next (see [`Partition::follower_fetch_position`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FollowerFetchPosition {
    /// The leader to fetch from and its epoch (the leader fences a mismatch).
    pub term: FollowerTerm,
    /// Its log end: what it has and asks to continue from.
    pub fetch_offset: i64,
    /// The epoch of its last batch (-1: empty log).
    pub last_fetched_epoch: i32,
    /// Its log start offset.
    pub log_start_offset: i64,
}

/// Records a leadership of this node in the log's epoch cache (see
/// [`PartitionLog::begin_leader_epoch`]). An epoch older than the log's latest means the
/// metadata went back in time: logged, and the partition keeps its log as it is (its
/// appends will be refused for the same reason).
fn begin_leadership(log: &mut PartitionLog, role: &PartitionRole, topic: &str, index: i32) {
    if let PartitionRole::Leader(leader) = role
        && let Err(e) = log.begin_leader_epoch(leader.epoch.0)
    {
        tracing::error!(topic, partition = index, error = %e, "cannot lead the partition at this epoch");
    }
}

/// How replication of a led partition stands (metrics, `sluice cluster info`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaderSummary {
    /// Replicas the partition is meant to have (those a reassignment is adding left out,
    /// as Kafka counts under-replicated partitions).
    pub replicas: usize,
    /// Of them in sync.
    pub isr: usize,
    /// In-sync replicas acks=all needs.
    pub min_isr: usize,
    /// Each follower's distance behind this leader's log end, in offsets.
    pub follower_lag: Vec<(i32, i64)>,
}

/// Which leadership a follower follows: the leader and its epoch. What a fetch brings
/// is applied only while the follower still follows that leadership, so a late response
/// of a deposed leader cannot write into the log of a newer one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FollowerTerm {
    /// The leader's node id.
    pub leader: i32,
    /// Its leader epoch.
    pub epoch: LeaderEpoch,
}

/// The follower state of `role` if it follows exactly the leadership `term`.
fn following(role: &mut PartitionRole, term: FollowerTerm) -> Option<&mut FollowerState> {
    match role {
        PartitionRole::Follower(f) if f.leader == term.leader && f.epoch == term.epoch => Some(f),
        _ => None,
    }
}

/// This node's role in a partition as its registration says: the leader (at the
/// registration's leader epoch, over its replicas and ISR) or a follower of the leader.
/// `log_end` is where a new leadership's epoch starts; `high_watermark` what this node
/// knew so far (a new leader's high watermark only moves once its followers fetch).
pub fn role_for(
    registration: &PartitionRegistration,
    node: i32,
    log_end: i64,
    high_watermark: i64,
    min_insync_replicas: usize,
    now_ms: i64,
) -> PartitionRole {
    if registration.leader == node {
        let mut leader = LeaderState::new(
            node,
            registration.leader_epoch,
            registration.replicas.clone(),
            registration.isr.clone(),
            min_insync_replicas,
            log_end,
            high_watermark,
        );
        leader
            .adding_replicas
            .clone_from(&registration.adding_replicas);
        leader.start_clocks(now_ms);
        // A sole in-sync replica needs nobody: its high watermark is its log end.
        leader.advance_high_watermark(log_end);
        PartitionRole::Leader(leader)
    } else {
        PartitionRole::Follower(FollowerState {
            leader: registration.leader,
            epoch: registration.leader_epoch,
            high_watermark: high_watermark.min(log_end),
        })
    }
}

/// What a fetch of one partition returns.
pub struct PartitionRead {
    /// Whole record batches.
    pub records: Bytes,
    /// Offsets at the time of the read.
    pub offsets: PartitionOffsets,
    /// (producer id, first offset) of aborted transactions in the range (read_committed only).
    pub aborted: Vec<(i64, i64)>,
}

/// One sync pass of the sync thread: everything appended to `partitions` before it
/// starts becomes durable, with one filesystem sync where they share a filesystem
/// ([`sluice_storage::flush_together`]).
pub(crate) fn sync_together(partitions: &[Arc<Partition>]) {
    let (begun, handles): (Vec<&Arc<Partition>>, Vec<FlushHandle>) = partitions
        .iter()
        .filter_map(|p| p.begin_sync().map(|handle| (p, handle)))
        .unzip();
    sluice_storage::flush_together(&handles, |index, result, took| {
        if let (Some(partition), Some(handle)) = (begun.get(index), handles.get(index)) {
            partition.finish_sync(handle, result, took);
        }
    });
}

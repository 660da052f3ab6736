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

use bytes::Bytes;
use parking_lot::RwLock;
use sluice_protocol::model::LeaderEpoch;
use sluice_protocol::model::ProducerIdAndEpoch;
use sluice_storage::{
    AppendInfo, CleanOutcome, CleanedSegments, CleaningTask, DirtyStats, PartitionLog, StorageError,
};
use tokio::sync::futures::Notified;
use tokio::sync::{Notify, watch};
use uuid::Uuid;

use crate::clock::now_ms;
use crate::flusher::FlushQueue;
use crate::metrics::{Histogram, TopicTraffic};
use crate::replica::PartitionRole;
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
    /// Set while the partition waits in the flush queue, so it is queued once.
    flush_queued: AtomicBool,
    closed: AtomicBool,
    /// This topic's byte and record counters, looked up once at open.
    pub traffic: Arc<TopicTraffic>,
    fsync_latency: Arc<Histogram>,
}

impl Partition {
    /// Wraps an opened log; its syncs run on `flush_queue`'s threads.
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
    ) -> Arc<Self> {
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
            flush_queued: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            traffic,
            fsync_latency,
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
    pub(crate) fn append_as_leader(&self, batches: &[u8]) -> Result<AppendInfo, AppendError> {
        let now = now_ms();
        let mut state = self.state.write();
        let PartitionState {
            log,
            settings,
            role,
        } = &mut *state;
        let PartitionRole::Leader(leader) = role else {
            return Err(AppendError::NotLeader);
        };
        let log_append_time =
            (settings.timestamp_type == TimestampType::LogAppendTime).then_some(now);
        let info = log.append(batches, leader.epoch.0, log_append_time, now)?;
        let moved = leader.advance_high_watermark(log.log_end_offset());
        sluice_storage::invariant!(
            role.high_watermark() <= log.log_end_offset(),
            "{}-{}: high watermark {} past the log end {}",
            self.topic,
            self.index,
            role.high_watermark(),
            log.log_end_offset()
        );
        drop(state);
        if moved {
            self.readable_changed.notify_waiters();
        }
        Ok(info)
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

    /// Whether this node leads the partition.
    pub fn is_leader(&self) -> bool {
        self.state.read().role.is_leader()
    }

    /// Takes the role metadata gives this node, unless it already has it (same leader
    /// and epoch): a new leadership or followership starts from the current log end.
    pub fn update_role(&self, make_role: impl FnOnce(i64) -> PartitionRole) {
        let mut state = self.state.write();
        let role = make_role(state.log.log_end_offset());
        let same = role.is_leader() == state.role.is_leader()
            && role.leader_epoch() == state.role.leader_epoch();
        if !same {
            state.role = role;
            drop(state);
            self.readable_changed.notify_waiters();
        }
    }

    /// Asks the sync thread to sync what has been appended so far. Call it
    /// for every partition of a request before waiting, so they join one pass.
    pub fn request_flush(self: &Arc<Self>) {
        if !self.flush_queued.swap(true, Ordering::AcqRel) {
            self.flush_queue.push(self.clone());
        }
    }

    /// One group-commit sync, on the sync thread: everything appended before
    /// it starts becomes durable, and the waiters learn so.
    pub(crate) fn sync(&self) {
        // Cleared first: an append after this point queues the partition
        // again, because the handle below may not cover it.
        self.flush_queued.store(false, Ordering::Release);
        if self.is_closed() {
            return;
        }
        let handle = self.state.read().log.flush_handle();
        let started = std::time::Instant::now();
        let result = handle.flush();
        if !handle.is_empty() {
            self.fsync_latency.observe(started.elapsed());
        }
        match result {
            Ok(_) => {
                let (durable, log_end) = {
                    let mut state = self.state.write();
                    (state.log.mark_flushed(&handle), state.log.log_end_offset())
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
    pub async fn wait_committed(&self, end: i64) -> Result<(), StorageError> {
        self.wait_durable(end).await?;
        loop {
            let changed = self.readable_changed();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if self.offsets().high_watermark >= end {
                return Ok(());
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

    /// Waits until every offset below `end` is on disk here.
    async fn wait_durable(&self, end: i64) -> Result<(), StorageError> {
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
    /// alone is larger (KIP-74), below the high watermark — or, for
    /// read_committed, below the last stable offset, together with the aborted
    /// transactions the returned range overlaps.
    pub fn read(
        &self,
        offset: i64,
        max_bytes: usize,
        read_committed: bool,
    ) -> Result<PartitionRead, StorageError> {
        let state = self.state.read();
        let offsets = offsets_of(&state);
        let upper = if read_committed {
            offsets.last_stable_offset
        } else {
            offsets.high_watermark
        };
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

    /// Deletes segments past retention.
    pub fn apply_retention(&self) -> Result<usize, StorageError> {
        self.state.write().log.apply_retention(now_ms())
    }

    /// How dirty the log of a compacted topic is; `None` when the topic is not compacted.
    pub fn dirty_stats(&self) -> Option<DirtyStats> {
        let state = self.state.read();
        let high_watermark = offsets_of(&state).high_watermark;
        state.log.dirty_stats(now_ms(), high_watermark)
    }

    /// Plans a cleaning of the log (see [`sluice_storage::cleaner`]) under the read lock;
    /// the cleaning itself runs without the lock.
    pub fn plan_cleaning(&self) -> Result<Option<CleaningTask>, StorageError> {
        let state = self.state.read();
        let high_watermark = offsets_of(&state).high_watermark;
        state.log.plan_cleaning(now_ms(), high_watermark)
    }

    /// Swaps cleaned segments in: the one step of a cleaning under the write lock, so
    /// appends wait only for renames and a directory sync. Nothing happens once the
    /// partition is closed.
    pub fn install_cleaned(&self, cleaned: CleanedSegments) -> Result<CleanOutcome, StorageError> {
        if self.is_closed() {
            return Ok(CleanOutcome::Abandoned);
        }
        self.state.write().log.install_cleaned(cleaned, now_ms())
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

/// What a fetch of one partition returns.
pub struct PartitionRead {
    /// Whole record batches.
    pub records: Bytes,
    /// Offsets at the time of the read.
    pub offsets: PartitionOffsets,
    /// (producer id, first offset) of aborted transactions in the range (read_committed only).
    pub aborted: Vec<(i64, i64)>,
}

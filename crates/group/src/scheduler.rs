//! Timers and ordered log writes of the coordinator.
//!
//! All group state sits behind one mutex (see `coordinator.rs`). Two kinds of
//! work happen outside a request: timers (session expiry, rebalance and sync
//! deadlines, the initial rebalance delay) and log writes (their effect is
//! applied once the append is durable). Both run as tokio tasks that take the
//! mutex when they are due.
//!
//! Timers are keyed like Kafka's (`join-<group>`, `sync-<group>`,
//! `heartbeat-<group>-<member>`): scheduling a key replaces the previous
//! timer of that key. A fired timer re-checks under the mutex that it is still
//! the current one, so a timer cancelled while it was waiting for the mutex
//! does nothing.
//!
//! Writes of one group must reach the log, and be applied in memory, in the
//! order they were decided. Each group maps to one of [`WRITE_STRIPES`] FIFO
//! queues served by one task, which appends a job, waits until it is durable,
//! applies its completion under the mutex, and only then starts the next job.
//! Jobs are queued while the mutex is held, so queue order is decision order.

use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::runtime::Handle;
use tokio::sync::mpsc;
use tokio::task::AbortHandle;

use crate::coordinator::{Inner, State};
use crate::error::GroupLogError;
use crate::log::{GroupLog, GroupRecord};

/// Number of write queues. Groups of one queue are written one after the
/// other, so this bounds write parallelism across groups.
const WRITE_STRIPES: usize = 16;

/// Identifies a timer; scheduling a key replaces its previous timer.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum TimerKey {
    /// Completion of the join phase of a group (also the initial delay).
    Join(String),
    /// Deadline for all members to send SyncGroup.
    Sync(String),
    /// Session expiry of a member (or of a pending member id).
    Heartbeat(String, String),
}

/// What to do when a timer fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TimerAction {
    /// Complete the join phase whoever has rejoined.
    CompleteJoin,
    /// The initial rebalance delay elapsed; extend it if members kept joining.
    InitialRebalance { delay_ms: u64, remaining_ms: u64 },
    /// Members that did not send SyncGroup in time are removed.
    ExpirePendingSync { generation: i32 },
    /// The member's session timed out unless it is parked in a rebalance.
    ExpireHeartbeat,
}

/// Runs under the state mutex once a write is durable (or failed).
pub(crate) type OnWritten = Box<dyn FnOnce(&mut State, Result<(), GroupLogError>) + Send>;

pub(crate) struct WriteJob {
    group_id: String,
    /// Producer id and epoch of a transactional batch.
    transactional: Option<(i64, i16)>,
    records: Result<Vec<GroupRecord>, GroupLogError>,
    on_written: OnWritten,
}

struct TimerEntry {
    token: u64,
    abort: Option<AbortHandle>,
}

/// Timer and write bookkeeping, owned by the coordinator state.
pub(crate) struct Scheduler {
    /// `group.initial.rebalance.delay.ms`, needed whenever a rebalance starts.
    pub initial_rebalance_delay_ms: u64,
    inner: Weak<Inner>,
    log: Arc<dyn GroupLog>,
    handle: Option<Handle>,
    timers: HashMap<TimerKey, TimerEntry>,
    next_token: u64,
    writers: Vec<Option<mpsc::UnboundedSender<WriteJob>>>,
}

impl Scheduler {
    pub fn new(
        inner: Weak<Inner>,
        log: Arc<dyn GroupLog>,
        initial_rebalance_delay_ms: u64,
    ) -> Self {
        Self {
            initial_rebalance_delay_ms,
            inner,
            log,
            handle: Handle::try_current().ok(),
            timers: HashMap::new(),
            next_token: 0,
            writers: (0..WRITE_STRIPES).map(|_| None).collect(),
        }
    }

    /// The runtime to spawn on: the caller's, else the one the coordinator was created in.
    fn runtime(&self) -> Option<Handle> {
        Handle::try_current().ok().or_else(|| self.handle.clone())
    }

    /// Runs `action` after `delay_ms`, replacing any timer of `key`.
    pub fn schedule(&mut self, key: TimerKey, delay_ms: u64, action: TimerAction) {
        self.cancel(&key);
        self.next_token = self.next_token.wrapping_add(1);
        let token = self.next_token;
        let Some(runtime) = self.runtime() else {
            tracing::error!(?key, "no tokio runtime: group timer not scheduled");
            return;
        };
        let inner = self.inner.clone();
        let task_key = key.clone();
        let task = runtime.spawn(async move {
            tokio::time::sleep(Duration::from_millis(delay_ms)).await;
            let Some(inner) = inner.upgrade() else {
                return;
            };
            let mut state = inner.state.lock();
            if state.sched.take_if_current(&task_key, token) {
                crate::rebalance::on_timer(&mut state, task_key, action);
            }
        });
        self.timers.insert(
            key,
            TimerEntry {
                token,
                abort: Some(task.abort_handle()),
            },
        );
    }

    pub fn cancel(&mut self, key: &TimerKey) {
        if let Some(entry) = self.timers.remove(key)
            && let Some(abort) = entry.abort
        {
            abort.abort();
        }
    }

    /// Cancels every timer of a group (when it is deleted).
    pub fn cancel_group(&mut self, group_id: &str) {
        let keys: Vec<TimerKey> = self
            .timers
            .keys()
            .filter(|k| match k {
                TimerKey::Join(g) | TimerKey::Sync(g) | TimerKey::Heartbeat(g, _) => g == group_id,
            })
            .cloned()
            .collect();
        for key in keys {
            self.cancel(&key);
        }
    }

    /// A fired timer is current only if it was not replaced or cancelled.
    fn take_if_current(&mut self, key: &TimerKey, token: u64) -> bool {
        if self.timers.get(key).is_some_and(|e| e.token == token) {
            self.timers.remove(key);
            true
        } else {
            false
        }
    }

    /// Queues records of `group_id` for the log; `on_written` runs under the
    /// state mutex once they are durable (or the append failed). An empty
    /// record list is a barrier: it completes after every earlier write of
    /// the group without touching the log.
    pub fn write(
        &mut self,
        group_id: &str,
        records: Result<Vec<GroupRecord>, GroupLogError>,
        on_written: OnWritten,
    ) {
        self.enqueue(WriteJob {
            group_id: group_id.to_owned(),
            transactional: None,
            records,
            on_written,
        });
    }

    /// Like [`Self::write`], for a transactional batch of `producer_id`
    /// (TxnOffsetCommit), ordered with the group's other writes.
    pub fn write_transactional(
        &mut self,
        group_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        records: Result<Vec<GroupRecord>, GroupLogError>,
        on_written: OnWritten,
    ) {
        self.enqueue(WriteJob {
            group_id: group_id.to_owned(),
            transactional: Some((producer_id, producer_epoch)),
            records,
            on_written,
        });
    }

    fn enqueue(&mut self, mut job: WriteJob) {
        let group_id = job.group_id.clone();
        let group_id = group_id.as_str();
        let stripe = stripe_of(group_id);
        if let Some(Some(sender)) = self.writers.get(stripe) {
            match sender.send(job) {
                Ok(()) => return,
                Err(mpsc::error::SendError(returned)) => job = returned,
            }
        }
        let Some(runtime) = self.runtime() else {
            tracing::error!(group = %group_id, "no tokio runtime: group write dropped");
            return;
        };
        let (sender, receiver) = mpsc::unbounded_channel();
        runtime.spawn(write_loop(receiver, self.log.clone(), self.inner.clone()));
        if sender.send(job).is_err() {
            tracing::error!(group = %group_id, "group writer stopped: write dropped");
        }
        if let Some(slot) = self.writers.get_mut(stripe) {
            *slot = Some(sender);
        }
    }
}

fn stripe_of(group_id: &str) -> usize {
    let partition =
        sluice_protocol::model::coordinator_partition_for(group_id, WRITE_STRIPES as i32);
    usize::try_from(partition).unwrap_or(0)
}

/// Serves one write queue: append, wait for durability, apply, next.
async fn write_loop(
    mut jobs: mpsc::UnboundedReceiver<WriteJob>,
    log: Arc<dyn GroupLog>,
    inner: Weak<Inner>,
) {
    while let Some(job) = jobs.recv().await {
        let result = match job.records {
            Ok(records) if records.is_empty() => Ok(()),
            Ok(records) => match job.transactional {
                None => log.append(&job.group_id, records).await,
                Some((producer_id, producer_epoch)) => {
                    log.append_transactional(&job.group_id, producer_id, producer_epoch, records)
                        .await
                }
            },
            Err(e) => Err(e),
        };
        let Some(inner) = inner.upgrade() else {
            return;
        };
        let mut state = inner.state.lock();
        (job.on_written)(&mut state, result);
    }
}

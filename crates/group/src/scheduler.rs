//! Timers, the clock and ordered log writes of one shard.
//!
//! All groups of a shard sit behind its lock. Two kinds of work happen
//! outside a request: timers (session expiry, rebalance and sync deadlines,
//! the initial rebalance delay) and log writes. Both run as tokio tasks that
//! take the lock when they are due, and do nothing once the shard is
//! unloaded.
//!
//! Timers run on tokio's clock; the wall-clock times the shard stamps (commit
//! and expiry timestamps, when a group changed state) come from the injected
//! [`Clock`], so tests control both.
//!
//! Timers are keyed like Kafka's (`join-<group>`, `sync-<group>`,
//! `heartbeat-<group>-<member>`): scheduling a key replaces the previous
//! timer of that key. A fired timer re-checks under the lock that it is still
//! the current one, so a timer cancelled while it was waiting for the lock
//! does nothing.
//!
//! Writes of one group must reach the log, and be applied, in the order they
//! were decided. Each group maps to one of [`WRITE_STRIPES`] FIFO queues
//! served by one task, which appends a write, waits until it is durable,
//! replays its records into the shard ([`crate::replay`]), runs the
//! operation's follow-up ([`AfterWrite`]) and only then starts the next write.
//! Writes are queued while the lock is held, so queue order is decision order.

use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::Duration;

use sluice_coordinator::{
    CoordinatorRecord, CoordinatorShard, LogEntry, PartitionWriter, ShardCell, WriteError,
};
use sluice_protocol::clock::Clock;
use sluice_protocol::model::ProducerIdAndEpoch;
use tokio::runtime::Handle;
use tokio::sync::mpsc;
use tokio::task::AbortHandle;

use crate::shard::GroupShard;

/// Number of write queues per shard. Groups of one queue are written one
/// after the other, so this bounds write parallelism across groups.
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

/// What an operation does once its records are durable and replayed (or
/// their write failed), under the shard's lock: answer the request, move
/// parked members on, or undo what it changed in memory ahead of the log
/// (Kafka's append future callbacks). It never applies the records: replay
/// did.
pub(crate) type AfterWrite = Box<dyn FnOnce(&mut GroupShard, Result<(), WriteError>) + Send>;

/// Records an operation decided to write, with its follow-up.
struct Write {
    group_id: String,
    /// The producer of a transactional batch (TxnOffsetCommit).
    transactional: Option<ProducerIdAndEpoch>,
    /// The records, or why they could not be encoded.
    records: Result<Vec<CoordinatorRecord>, WriteError>,
    then: AfterWrite,
}

struct TimerEntry {
    token: u64,
    abort: Option<AbortHandle>,
}

/// Timer and write bookkeeping of one shard.
pub(crate) struct Scheduler {
    /// `group.initial.rebalance.delay.ms`, needed whenever a rebalance starts.
    pub initial_rebalance_delay_ms: u64,
    cell: Weak<ShardCell<GroupShard>>,
    writer: Arc<dyn PartitionWriter>,
    /// The `__consumer_offsets` partition written to.
    partition: i32,
    /// Where wall-clock time comes from.
    clock: Arc<dyn Clock>,
    handle: Option<Handle>,
    timers: HashMap<TimerKey, TimerEntry>,
    next_token: u64,
    writers: Vec<Option<mpsc::UnboundedSender<Write>>>,
}

impl Scheduler {
    pub fn new(
        cell: Weak<ShardCell<GroupShard>>,
        writer: Arc<dyn PartitionWriter>,
        partition: i32,
        initial_rebalance_delay_ms: u64,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            initial_rebalance_delay_ms,
            cell,
            writer,
            partition,
            clock,
            handle: Handle::try_current().ok(),
            timers: HashMap::new(),
            next_token: 0,
            writers: (0..WRITE_STRIPES).map(|_| None).collect(),
        }
    }

    /// Wall-clock milliseconds since the Unix epoch, from the injected clock.
    pub fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    /// The runtime to spawn on: the caller's, else the one the shard was created in.
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
        let cell = self.cell.clone();
        let task_key = key.clone();
        let task = runtime.spawn(async move {
            tokio::time::sleep(Duration::from_millis(delay_ms)).await;
            let Some(cell) = cell.upgrade() else {
                return;
            };
            let Ok(mut shard) = cell.lock() else {
                return;
            };
            if shard.sched.take_if_current(&task_key, token) {
                crate::rebalance::on_timer(&mut shard, task_key, action);
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

    /// The shard is unloaded: every timer stops, and the write queues close
    /// once the writes already queued are done (they find the shard closed
    /// and are not replayed).
    pub fn shut_down(&mut self) {
        for (_, entry) in self.timers.drain() {
            if let Some(abort) = entry.abort {
                abort.abort();
            }
        }
        for sender in &mut self.writers {
            *sender = None;
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

    /// Queues records of `group_id` for the log; once they are durable they
    /// are replayed into the shard, then `then` runs (also when the write
    /// failed). An empty record list is a barrier: `then` runs after every
    /// earlier write of the group without touching the log.
    pub fn write(
        &mut self,
        group_id: &str,
        records: Result<Vec<CoordinatorRecord>, WriteError>,
        then: AfterWrite,
    ) {
        self.enqueue(Write {
            group_id: group_id.to_owned(),
            transactional: None,
            records,
            then,
        });
    }

    /// Like [`Self::write`], for a transactional batch of `producer`
    /// (TxnOffsetCommit), ordered with the group's other writes.
    pub fn write_transactional(
        &mut self,
        group_id: &str,
        producer: ProducerIdAndEpoch,
        records: Result<Vec<CoordinatorRecord>, WriteError>,
        then: AfterWrite,
    ) {
        self.enqueue(Write {
            group_id: group_id.to_owned(),
            transactional: Some(producer),
            records,
            then,
        });
    }

    fn enqueue(&mut self, mut write: Write) {
        let stripe = stripe_of(&write.group_id);
        if let Some(Some(sender)) = self.writers.get(stripe) {
            match sender.send(write) {
                Ok(()) => return,
                Err(mpsc::error::SendError(returned)) => write = returned,
            }
        }
        let Some(runtime) = self.runtime() else {
            tracing::error!(group = %write.group_id, "no tokio runtime: group write dropped");
            return;
        };
        let (sender, receiver) = mpsc::unbounded_channel();
        runtime.spawn(write_loop(
            receiver,
            self.writer.clone(),
            self.cell.clone(),
            self.partition,
        ));
        if let Err(mpsc::error::SendError(dropped)) = sender.send(write) {
            tracing::error!(group = %dropped.group_id, "group writer stopped: write dropped");
        }
        if let Some(slot) = self.writers.get_mut(stripe) {
            *slot = Some(sender);
        }
    }
}

/// The write queue of a group. The groups of a shard share a partition, so
/// the partition hash would put them all in a few queues: this is another
/// hash (FNV-1a) of the group id.
fn stripe_of(group_id: &str) -> usize {
    let hash = group_id.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    usize::try_from(hash % WRITE_STRIPES as u64).unwrap_or(0)
}

/// Serves one write queue: append, wait for durability, replay, follow up, next.
async fn write_loop(
    mut writes: mpsc::UnboundedReceiver<Write>,
    writer: Arc<dyn PartitionWriter>,
    cell: Weak<ShardCell<GroupShard>>,
    partition: i32,
) {
    while let Some(write) = writes.recv().await {
        let Some(cell) = cell.upgrade() else {
            return;
        };
        if !cell.is_active() {
            // Unloaded: the follow-up is dropped, and its request answered
            // NOT_COORDINATOR by whoever waits for it.
            continue;
        }
        let result = match write.records {
            Ok(records) if records.is_empty() => Ok(records),
            Ok(records) => writer
                .append(partition, write.transactional, records.clone())
                .await
                .map(|()| records),
            Err(e) => Err(e),
        };
        let Ok(mut shard) = cell.lock() else {
            continue;
        };
        let result = result.map(|records| {
            replay_written(&mut shard, records, write.transactional, &write.group_id);
        });
        (write.then)(&mut shard, result);
    }
}

/// Replays records this shard wrote. They were encoded here, so one that
/// does not decode is a bug: logged, never silently dropped.
fn replay_written(
    shard: &mut GroupShard,
    records: Vec<CoordinatorRecord>,
    transactional: Option<ProducerIdAndEpoch>,
    group_id: &str,
) {
    for record in records {
        let entry = LogEntry::Record {
            record,
            transactional,
        };
        if let Err(error) = shard.replay(&entry) {
            tracing::error!(group = %group_id, %error, "a record this coordinator wrote does not replay");
        }
    }
}

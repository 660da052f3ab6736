//! The log cleaner's threads (Kafka's `LogCleaner` and `LogCleanerManager`): they compact
//! the logs of topics with `cleanup.policy=compact`, the coordinators' internal topics
//! among them. The cleaning itself is the storage crate's ([`sluice_storage::cleaner`]).
//!
//! Each of the `log.cleaner.threads` threads repeatedly picks the dirtiest compacted
//! partition no other thread is cleaning — the largest dirty ratio above its topic's
//! `min.cleanable.dirty.ratio`, or any whose oldest dirty data is past
//! `max.compaction.lag.ms` — and cleans it: planned under the partition's read lock,
//! cleaned without any lock, swapped in under the write lock. When no partition needs
//! cleaning it sleeps `log.cleaner.backoff.ms`. Their reads and writes together stay under
//! `log.cleaner.io.max.bytes.per.second`, and each gets an equal share of
//! `log.cleaner.dedupe.buffer.size` for its offset map. A partition whose cleaning fails
//! is skipped until restart (Kafka's uncleanable partitions); a topic's policy change takes
//! effect at the next pick, as its settings reach the partition log.

use std::collections::HashSet;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};
use sluice_storage::{CleanOutcome, CleanerControl, DirtyStats, StorageError};
use uuid::Uuid;

use crate::broker::Broker;
use crate::partition::Partition;

/// Sleeps are cut into pieces this long, so a stop is noticed soon.
const STOP_CHECK: Duration = Duration::from_millis(100);

/// A partition, by topic id and index.
type PartitionKey = (Uuid, i32);

/// The running cleaner threads; [`LogCleaner::shutdown`] stops them.
pub struct LogCleaner {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
}

/// What the threads share.
struct Shared {
    broker: Arc<Broker>,
    /// Offset map memory per thread.
    map_bytes: usize,
    backoff: Duration,
    throttle: Throttle,
    stopped: Mutex<bool>,
    wake: Condvar,
    /// Partitions a thread is cleaning now.
    in_progress: Mutex<HashSet<PartitionKey>>,
    /// Partitions whose cleaning failed: skipped until restart.
    uncleanable: Mutex<HashSet<PartitionKey>>,
}

impl LogCleaner {
    /// Starts `log.cleaner.threads` threads, none when `log.cleaner.enable` is off.
    pub fn start(broker: Arc<Broker>) -> std::io::Result<Self> {
        let config = &broker.config;
        let threads = if config.log_cleaner_enable {
            config.log_cleaner_threads
        } else {
            0
        };
        let map_bytes =
            usize::try_from(config.log_cleaner_dedupe_buffer_size / u64::from(threads.max(1)))
                .unwrap_or(usize::MAX);
        let shared = Arc::new(Shared {
            map_bytes,
            backoff: Duration::from_millis(config.log_cleaner_backoff_ms),
            throttle: Throttle::new(config.log_cleaner_io_max_bytes_per_second.0),
            stopped: Mutex::new(false),
            wake: Condvar::new(),
            in_progress: Mutex::new(HashSet::new()),
            uncleanable: Mutex::new(HashSet::new()),
            broker,
        });
        let handles = (0..threads)
            .map(|id| {
                let shared = shared.clone();
                std::thread::Builder::new()
                    .name(format!("log-cleaner-{id}"))
                    .spawn(move || shared.run())
            })
            .collect::<std::io::Result<Vec<_>>>()?;
        Ok(Self {
            shared,
            threads: handles,
        })
    }

    /// Stops the threads and waits for them: a cleaning in progress stops at its next
    /// batch and leaves the log as it was (or finishes its swap, which is not interrupted).
    pub fn shutdown(self) {
        *self.shared.stopped.lock() = true;
        self.shared.wake.notify_all();
        for thread in self.threads {
            if thread.join().is_err() {
                tracing::error!("a log cleaner thread panicked");
            }
        }
    }
}

impl Shared {
    /// A thread's loop (Kafka's `CleanerThread.doWork`).
    fn run(&self) {
        while !self.is_stopped() {
            if !self.clean_filthiest() {
                let mut stopped = self.stopped.lock();
                if !*stopped {
                    // At least a millisecond: a backoff of 0 must not spin.
                    let pause = self.backoff.max(Duration::from_millis(1));
                    self.wake.wait_for(&mut stopped, pause);
                }
            }
        }
    }

    fn is_stopped(&self) -> bool {
        *self.stopped.lock()
    }

    /// Cleans the dirtiest partition that needs it; whether there was one.
    fn clean_filthiest(&self) -> bool {
        let Some((partition, stats)) = self.grab_filthiest() else {
            return false;
        };
        let key = (partition.topic_id, partition.index);
        let result = self.clean(&partition);
        self.in_progress.lock().remove(&key);
        match result {
            Ok(()) | Err(StorageError::CleaningAborted) => {}
            Err(_) if partition.is_closed() => {}
            Err(e) => {
                tracing::error!(
                    topic = %partition.topic,
                    partition = partition.index,
                    first_dirty_offset = stats.first_dirty_offset,
                    error = %e,
                    "cleaning the log failed; the cleaner skips this partition until the broker restarts"
                );
                let mut uncleanable = self.uncleanable.lock();
                uncleanable.insert(key);
                self.broker
                    .metrics
                    .cleaner
                    .set_uncleanable_partitions(uncleanable.len());
            }
        }
        true
    }

    /// Kafka's `grabFilthiestCompactedLog`: the compacted partition with the largest dirty
    /// ratio among those that need cleaning and no thread is cleaning, now marked as in
    /// progress.
    fn grab_filthiest(&self) -> Option<(Arc<Partition>, DirtyStats)> {
        let candidates: Vec<(Arc<Partition>, DirtyStats)> = {
            let uncleanable = self.uncleanable.lock();
            let in_progress = self.in_progress.lock();
            self.broker
                .replicas
                .logs()
                .all()
                .into_iter()
                .filter(|p| {
                    let key = (p.topic_id, p.index);
                    !p.is_closed() && !uncleanable.contains(&key) && !in_progress.contains(&key)
                })
                .filter_map(|p| p.dirty_stats().map(|stats| (p, stats)))
                .filter(|(_, stats)| stats.total_bytes() > 0)
                .collect()
        };
        let max_ratio = candidates
            .iter()
            .map(|(_, s)| s.dirty_ratio)
            .fold(0.0, f64::max);
        self.broker
            .metrics
            .cleaner
            .looked(self.broker.clock.now_ms(), max_ratio);
        let (partition, stats) = candidates
            .into_iter()
            .filter(|(p, stats)| stats.needs_cleaning(min_cleanable_ratio(p)))
            .max_by(|(_, a), (_, b)| a.dirty_ratio.total_cmp(&b.dirty_ratio))?;
        let newly = self
            .in_progress
            .lock()
            .insert((partition.topic_id, partition.index));
        newly.then_some((partition, stats))
    }

    /// Plans, runs and installs one cleaning of `partition`.
    fn clean(&self, partition: &Arc<Partition>) -> Result<(), StorageError> {
        let Some(task) = partition.plan_cleaning()? else {
            return Ok(());
        };
        let started = Instant::now();
        let dirty = *task.dirty_stats();
        let control = Control {
            shared: self,
            partition,
        };
        let cleaned = task.run(self.map_bytes, &control)?;
        let stats = cleaned.stats().clone();
        match partition.install_cleaned(cleaned)? {
            CleanOutcome::Installed {
                replaced,
                installed,
            } => {
                self.broker.metrics.cleaner.cleaned(&stats);
                let seconds = started.elapsed().as_secs_f64();
                tracing::info!(
                    topic = %partition.topic,
                    partition = partition.index,
                    first_dirty_offset = dirty.first_dirty_offset,
                    dirty_ratio = dirty.dirty_ratio,
                    segments_replaced = replaced,
                    segments_written = installed,
                    bytes_read = stats.bytes_read,
                    bytes_written = stats.bytes_written,
                    records_read = stats.records_read,
                    records_kept = stats.records_retained,
                    map_keys = stats.map_keys,
                    mb_per_second = stats.bytes_read as f64 / 1e6 / seconds.max(1e-6),
                    seconds,
                    "cleaned the log"
                );
            }
            CleanOutcome::Abandoned => tracing::debug!(
                topic = %partition.topic,
                partition = partition.index,
                "the log changed while it was cleaned; it will be cleaned again"
            ),
        }
        Ok(())
    }
}

/// The topic's `min.cleanable.dirty.ratio`.
fn min_cleanable_ratio(partition: &Partition) -> f64 {
    partition
        .settings()
        .log
        .compaction
        .as_ref()
        .map_or(f64::INFINITY, |c| c.min_cleanable_dirty_ratio)
}

/// What a running cleaning asks of its thread.
struct Control<'a> {
    shared: &'a Shared,
    partition: &'a Partition,
}

impl CleanerControl for Control<'_> {
    fn throttle(&self, bytes: u64) {
        self.shared
            .throttle
            .take(bytes, || self.shared.is_stopped());
    }

    fn should_abort(&self) -> bool {
        self.shared.is_stopped() || self.partition.is_closed()
    }
}

/// Kafka's `Throttler`, as a leaky bucket shared by the cleaner threads: each read or
/// write books the time its bytes take at the rate, after the bookings before it; a thread
/// whose booking starts in the future sleeps until then. So the threads together average
/// at most the rate, with no burst above it.
struct Throttle {
    bytes_per_second: Option<u64>,
    /// When the bytes booked so far have been paid for.
    next_free: Mutex<Instant>,
}

impl Throttle {
    fn new(bytes_per_second: Option<u64>) -> Self {
        Self {
            bytes_per_second,
            next_free: Mutex::new(Instant::now()),
        }
    }

    /// Books `bytes` and sleeps until their turn (unless `stopped` says to stop).
    fn take(&self, bytes: u64, stopped: impl Fn() -> bool) {
        let Some(rate) = self.bytes_per_second.filter(|r| *r > 0) else {
            return;
        };
        let turn = {
            let mut next_free = self.next_free.lock();
            let turn = (*next_free).max(Instant::now());
            *next_free = turn + Duration::from_secs_f64(bytes as f64 / rate as f64);
            turn
        };
        while !stopped() {
            let left = turn.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            std::thread::sleep(left.min(STOP_CHECK));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttle_spreads_bytes_over_time_at_the_rate() {
        let throttle = Throttle::new(Some(1_000_000));
        let started = Instant::now();
        // 600 KB at 1 MB/s take 600 ms: the next bytes wait for them.
        throttle.take(600_000, || false);
        throttle.take(0, || false);
        assert!(started.elapsed() >= Duration::from_millis(600));
    }

    #[test]
    fn unlimited_throttle_never_sleeps_and_a_stop_cuts_a_sleep_short() {
        let started = Instant::now();
        Throttle::new(None).take(u64::MAX, || false);
        assert!(started.elapsed() < Duration::from_secs(5));
        let throttle = Throttle::new(Some(1));
        let started = Instant::now();
        // After a million seconds' worth of bytes, only the stop ends the wait.
        throttle.take(1_000_000, || true);
        throttle.take(1, || true);
        assert!(started.elapsed() < Duration::from_secs(5));
    }
}

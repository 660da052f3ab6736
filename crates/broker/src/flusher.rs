//! Group commit across partitions: one dedicated thread syncs, in passes,
//! every partition whose appends wait for durability.
//!
//! A sync is kernel work (writeback of the dirty pages, the inode, then the
//! device flush). Running one per partition in parallel made every sync slower
//! (they contend for the same device) and, on small machines, took the CPU
//! from the threads serving sockets, which showed as latency on every
//! connection. So one thread syncs: a pass takes every partition queued when
//! it starts and syncs them, covering every append made before the pass began
//! (group commit) — with one syncfs where they share a filesystem and the machine
//! holds little dirty data ([`sluice_storage::flush_together`]).
//!
//! Passes start at most every [`MIN_PASS_INTERVAL`]. Back to back, a
//! producer sending a request every half millisecond cost one sync per
//! request, and on virtual machines every sync is several I/O requests the
//! hypervisor serves out of the machine's own CPU allowance: at 50 MB/s with
//! acks=all (linger.ms 0.5) the guest lost 10–13 ms of CPU (steal) every
//! 100 ms, which put those stalls into the end-to-end p99 (7–13 ms). Passes
//! 1.5 ms apart removed the steal (p99 1.3 ms) and lowered the acks=all
//! produce p99 (about 10 → 3.2 ms) for 0.9 ms more at the median; a request
//! that arrives after a quiet interval is synced at once. Two sync threads
//! stole as before; passes 0.5–1 ms apart stole in some runs
//! (docs/PERFORMANCE.md).

use std::collections::VecDeque;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use crate::partition::Partition;

/// The shortest time from the start of one sync pass to the start of the next.
const MIN_PASS_INTERVAL: Duration = Duration::from_micros(1500);

/// The queue of partitions waiting for a sync, shared by the partitions
/// (which enqueue themselves) and the sync thread.
pub struct FlushQueue {
    state: Mutex<QueueState>,
    wake: Condvar,
}

struct QueueState {
    waiting: VecDeque<Arc<Partition>>,
    stopping: bool,
}

impl FlushQueue {
    /// Queues `partition` for the next sync pass; the caller ensures a
    /// partition is queued at most once at a time (see
    /// [`Partition::request_flush`]).
    pub(crate) fn push(&self, partition: Arc<Partition>) {
        self.state.lock().waiting.push_back(partition);
        self.wake.notify_one();
    }

    /// Waits until a partition is queued; `false` once the flusher stops and
    /// the queue is empty.
    fn wait_for_work(&self) -> bool {
        let mut state = self.state.lock();
        loop {
            if !state.waiting.is_empty() {
                return true;
            }
            if state.stopping {
                return false;
            }
            self.wake.wait(&mut state);
        }
    }

    /// Every partition queued now: one pass.
    fn take_all(&self) -> Vec<Arc<Partition>> {
        self.state.lock().waiting.drain(..).collect()
    }
}

/// The sync thread's loop: a pass per wake-up, passes spaced by
/// [`MIN_PASS_INTERVAL`]. Partitions queued while it waits join the pass.
fn run_sync_passes(queue: &FlushQueue) {
    let mut last_pass: Option<Instant> = None;
    while queue.wait_for_work() {
        if let Some(wait) = last_pass
            .map(|start| (start + MIN_PASS_INTERVAL).saturating_duration_since(Instant::now()))
            .filter(|wait| !wait.is_zero())
        {
            std::thread::sleep(wait);
        }
        last_pass = Some(Instant::now());
        crate::partition::sync_together(&queue.take_all());
    }
}

/// Owns the sync thread; dropping it lets it finish the queue and exit.
pub struct Flusher {
    queue: Arc<FlushQueue>,
    thread: Option<JoinHandle<()>>,
}

impl Flusher {
    /// Starts the sync thread.
    pub fn start() -> std::io::Result<Flusher> {
        let queue = Arc::new(FlushQueue {
            state: Mutex::new(QueueState {
                waiting: VecDeque::new(),
                stopping: false,
            }),
            wake: Condvar::new(),
        });
        let thread_queue = queue.clone();
        let thread = std::thread::Builder::new()
            .name("sluice-sync".into())
            .spawn(move || run_sync_passes(&thread_queue))?;
        Ok(Flusher {
            queue,
            thread: Some(thread),
        })
    }

    /// The queue partitions put themselves on.
    pub fn queue(&self) -> Arc<FlushQueue> {
        self.queue.clone()
    }
}

impl Drop for Flusher {
    fn drop(&mut self) {
        self.queue.state.lock().stopping = true;
        self.queue.wake.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use sluice_protocol::batch::RecordBatchBuilder;
    use sluice_protocol::clock::SystemClock;
    use sluice_protocol::model::LeaderEpoch;
    use sluice_storage::{IoOp, OpenFiles, PartitionLog, StorageEnv};
    use uuid::Uuid;

    use std::sync::atomic::{AtomicBool, Ordering};

    use kafka_protocol::error::ResponseError;
    use sluice_protocol::kafka_protocol;
    use sluice_storage::StorageError;

    use super::*;
    use crate::config::BrokerConfig;
    use crate::errors::storage_error_code;
    use crate::metrics::Metrics;
    use crate::partition::{AppendError, Durability};
    use crate::replica::PartitionRole;
    use crate::topic_config::TopicSettings;

    /// A partition over a fresh log in `dir`, syncing on `flusher`.
    fn partition(dir: &std::path::Path, index: i32, flusher: &Flusher) -> Arc<Partition> {
        partition_in(dir, index, flusher, &StorageEnv::unbounded())
    }

    /// A partition whose log does its file operations through `env`.
    fn partition_in(
        dir: &std::path::Path,
        index: i32,
        flusher: &Flusher,
        env: &Arc<StorageEnv>,
    ) -> Arc<Partition> {
        let none = BTreeMap::new();
        let settings = Arc::new(TopicSettings::resolve(
            &none,
            &BrokerConfig::default(),
            &none,
        ));
        let log_dir = dir.join(format!("t-{index}"));
        let log = PartitionLog::open(log_dir, settings.log.clone(), false, 0, env).unwrap();
        let metrics = Metrics::default();
        Partition::start(
            "t".into(),
            index,
            Uuid::nil(),
            log,
            settings,
            metrics.topic("t"),
            metrics.fsync.clone(),
            flusher.queue(),
            PartitionRole::sole_leader(1, LeaderEpoch(0), 0),
            Arc::new(SystemClock),
        )
    }

    /// Appends one record and returns the offset the log ends at.
    fn append_one(partition: &Partition) -> i64 {
        let mut batch = RecordBatchBuilder::new();
        batch.push(1, None, Some(b"value"), &[]);
        partition
            .append_as_leader(&batch.build(), true)
            .unwrap()
            .last_offset
            + 1
    }

    #[tokio::test]
    async fn one_pass_makes_every_queued_partition_durable() {
        let dir = tempfile::tempdir().unwrap();
        let flusher = Flusher::start().unwrap();
        let partitions: Vec<_> = (0..3).map(|i| partition(dir.path(), i, &flusher)).collect();
        let mut ends = Vec::new();
        for p in &partitions {
            ends.push(append_one(p));
            p.request_flush();
        }
        for (p, end) in partitions.iter().zip(ends) {
            p.wait_committed(end).await.unwrap();
            assert_eq!(p.offsets().log_end_offset, 1);
        }
    }

    #[tokio::test]
    async fn passes_under_load_start_at_least_the_interval_apart() {
        let dir = tempfile::tempdir().unwrap();
        let flusher = Flusher::start().unwrap();
        let p = partition(dir.path(), 0, &flusher);
        let started = Instant::now();
        let mut end = 0;
        for _ in 0..5 {
            end = append_one(&p);
            p.request_flush();
            p.wait_committed(end).await.unwrap();
        }
        assert_eq!(end, 5);
        // Five passes, each starting no sooner than the interval after the last.
        assert!(started.elapsed() >= MIN_PASS_INTERVAL * 4);
    }

    /// A storage environment whose syncs fail while `armed` is set.
    fn failing_syncs(armed: Arc<AtomicBool>) -> Arc<StorageEnv> {
        StorageEnv::with_faults(
            OpenFiles::unbounded(),
            Arc::new(move |op, _| {
                if op == IoOp::Sync && armed.load(Ordering::SeqCst) {
                    Err(std::io::Error::other("injected fsync failure"))
                } else {
                    Ok(())
                }
            }),
        )
    }

    fn one_record() -> Vec<u8> {
        RecordBatchBuilder::new()
            .record(1, None, Some(b"value"), &[])
            .build()
    }

    fn assert_append_storage_error(err: &AppendError) {
        let AppendError::Storage(err) = err else {
            panic!("not a storage error: {err}");
        };
        assert_storage_error(err);
    }

    fn assert_storage_error(err: &StorageError) {
        assert!(matches!(err, StorageError::Offline { .. }), "{err}");
        assert_eq!(storage_error_code(err), ResponseError::KafkaStorageError);
    }

    #[tokio::test]
    async fn a_failed_sync_takes_the_partition_offline_until_restart() {
        let dir = tempfile::tempdir().unwrap();
        let flusher = Flusher::start().unwrap();
        let armed = Arc::new(AtomicBool::new(false));
        let p = partition_in(dir.path(), 0, &flusher, &failing_syncs(armed.clone()));
        let durable = append_one(&p);
        p.request_flush();
        p.wait_committed(durable).await.unwrap();

        armed.store(true, Ordering::SeqCst);
        let first_failed = append_one(&p);
        let second_failed = append_one(&p);
        p.request_flush();
        // Every acks=all waiter of the range the failed sync covered learns it.
        for end in [first_failed, second_failed] {
            assert_append_storage_error(&p.wait_committed(end).await.unwrap_err());
        }
        armed.store(false, Ordering::SeqCst);

        // The disk works again, but the partition takes no more writes...
        append_one_refused(&p);
        // ...and a sync that would now succeed does not make the failed range durable.
        p.sync();
        assert_eq!(
            p.durability(),
            Durability {
                durable_end: durable,
                failed: true
            }
        );
        assert_append_storage_error(&p.wait_committed(first_failed).await.unwrap_err());
        p.wait_committed(durable).await.unwrap();
        assert_eq!(p.offsets().log_end_offset, second_failed);
        // No clean close: the next start recovers the log from what is on disk.
        assert_storage_error(&p.close().unwrap_err());
    }

    /// Collects what a `fmt` subscriber writes.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn going_offline_is_logged_once_with_the_partition_and_the_error() {
        let dir = tempfile::tempdir().unwrap();
        let flusher = Flusher::start().unwrap();
        let env = failing_syncs(Arc::new(AtomicBool::new(true)));
        let p = partition_in(dir.path(), 3, &flusher, &env);
        append_one(&p);
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            p.sync();
            append_one_refused(&p);
            p.sync();
        });
        let output = String::from_utf8(captured.0.lock().clone()).unwrap();
        let errors: Vec<&str> = output.lines().filter(|l| l.contains("ERROR")).collect();
        assert_eq!(errors.len(), 1, "{output}");
        assert!(errors[0].contains("topic=t partition=3"), "{output}");
        assert!(errors[0].contains("injected fsync failure"), "{output}");
        assert!(errors[0].contains("the partition is offline"), "{output}");
    }

    fn append_one_refused(p: &Partition) {
        assert!(matches!(
            p.append_as_leader(&one_record(), true),
            Err(AppendError::Storage(StorageError::Offline { .. }))
        ));
    }

    #[tokio::test]
    async fn stopping_syncs_what_is_still_queued() {
        let dir = tempfile::tempdir().unwrap();
        let flusher = Flusher::start().unwrap();
        let p = partition(dir.path(), 0, &flusher);
        // Keep the sync thread in its interval so the partition is still queued.
        let first = append_one(&p);
        p.request_flush();
        p.wait_committed(first).await.unwrap();
        let second = append_one(&p);
        p.request_flush();
        drop(flusher);
        let durable = tokio::time::timeout(Duration::from_secs(5), p.wait_committed(second)).await;
        assert!(matches!(durable, Ok(Ok(()))));
    }
}

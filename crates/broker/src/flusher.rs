//! Group commit across partitions: a few dedicated threads sync every
//! partition whose appends wait for durability.
//!
//! A sync is kernel work (writeback of the dirty pages, then the device
//! flush). Running one per partition in parallel made every sync slower (they
//! contend for the same device and journal) and, on small machines, took the
//! CPU from the threads serving sockets, which showed as latency on every
//! connection. A fixed, small number of sync threads bounds both; each pass
//! syncs whatever was appended up to that moment, so one sync covers every
//! request that arrived while the previous one ran.

use std::collections::VecDeque;
use std::sync::Arc;
use std::thread::JoinHandle;

use parking_lot::{Condvar, Mutex};

use crate::partition::Partition;

/// Threads that sync logs. Two keep the device busy while one thread waits
/// for its flush, without letting syncs crowd out the request threads.
const SYNC_THREADS: usize = 2;

/// The queue of partitions waiting for a sync, shared by the partitions
/// (which enqueue themselves) and the sync threads.
pub struct FlushQueue {
    state: Mutex<QueueState>,
    wake: Condvar,
}

struct QueueState {
    waiting: VecDeque<Arc<Partition>>,
    stopping: bool,
}

impl FlushQueue {
    /// Queues `partition` for the next sync; the caller ensures a partition is
    /// queued at most once at a time (see [`Partition::request_flush`]).
    pub(crate) fn push(&self, partition: Arc<Partition>) {
        self.state.lock().waiting.push_back(partition);
        self.wake.notify_one();
    }

    /// The next partition to sync, or `None` once the flusher stops.
    fn next(&self) -> Option<Arc<Partition>> {
        let mut state = self.state.lock();
        loop {
            if let Some(p) = state.waiting.pop_front() {
                return Some(p);
            }
            if state.stopping {
                return None;
            }
            self.wake.wait(&mut state);
        }
    }
}

/// Owns the sync threads; dropping it lets them finish the queue and exit.
pub struct Flusher {
    queue: Arc<FlushQueue>,
    threads: Vec<JoinHandle<()>>,
}

impl Flusher {
    /// Starts the sync threads.
    pub fn start() -> std::io::Result<Flusher> {
        let queue = Arc::new(FlushQueue {
            state: Mutex::new(QueueState {
                waiting: VecDeque::new(),
                stopping: false,
            }),
            wake: Condvar::new(),
        });
        let threads = (0..SYNC_THREADS)
            .map(|i| {
                let queue = queue.clone();
                std::thread::Builder::new()
                    .name(format!("sluice-sync-{i}"))
                    .spawn(move || {
                        while let Some(partition) = queue.next() {
                            partition.sync();
                        }
                    })
            })
            .collect::<std::io::Result<Vec<_>>>()?;
        Ok(Flusher { queue, threads })
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
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

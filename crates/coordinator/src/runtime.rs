//! Shards per partition, and their loading and unloading (Kafka's
//! `CoordinatorRuntime` contexts: `scheduleLoadOperation`,
//! `scheduleUnloadOperation`; Redpanda's group manager attach/detach).
//!
//! Each partition of the coordinator's topic has at most one [`ShardCell`]
//! here, in one of three phases:
//!
//! | phase   | requests for its keys          | entered by                         |
//! |---------|--------------------------------|------------------------------------|
//! | Loading | COORDINATOR_LOAD_IN_PROGRESS   | [`Shards::load`]                   |
//! | Active  | served                         | [`PartitionLoader::finish`]        |
//! | Closed  | NOT_COORDINATOR                | [`Shards::unload`], a newer load   |
//!
//! A partition without a cell answers NOT_COORDINATOR too. A closed cell is
//! never reopened: loading again creates a new cell, so a write or timer that
//! still holds the old one cannot touch the new state.
//!
//! Epochs are the partition's leader epochs. Like Kafka, a load at an epoch no
//! newer than the cell's is ignored (a newer one only raises the cell's
//! epoch), and an unload only closes a cell of an older epoch.

use std::collections::BTreeMap;
use std::ops::{Deref, DerefMut};
use std::sync::{Arc, Weak};

use parking_lot::{Mutex, MutexGuard};
use sluice_protocol::model::{LeaderEpoch, coordinator_partition_for};
use sluice_protocol::schema_codec::CodecError;

use crate::error::CoordinatorError;
use crate::record::LogEntry;

/// The state of the keys of one partition of a coordinator's topic.
///
/// A shard changes what its log says only through [`Self::replay`], both for
/// live writes (once they are durable) and when loading, so the two cannot
/// disagree.
pub trait CoordinatorShard: Send + 'static {
    /// Applies one entry of the partition's log. An entry that cannot be
    /// decoded changes nothing and is reported.
    fn replay(&mut self, entry: &LogEntry) -> Result<(), CodecError>;

    /// The whole log was replayed; the shard starts serving (timers of loaded
    /// members, transactions left half done).
    fn on_loaded(&mut self);

    /// The shard stops serving: requests parked in it are answered with
    /// NOT_COORDINATOR and its timers are cancelled.
    fn on_unloaded(&mut self);
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Loading,
    Active,
    Closed,
}

struct CellState<S> {
    phase: Phase,
    epoch: LeaderEpoch,
    shard: S,
}

/// One partition's shard with its phase and epoch, behind the shard's lock.
///
/// Everything a shard does happens under this lock, so a shard is
/// single-threaded like Kafka's; the lock is never held across an `.await`.
pub struct ShardCell<S> {
    partition: i32,
    state: Mutex<CellState<S>>,
}

/// A locked, active shard.
pub struct ActiveShard<'a, S> {
    guard: MutexGuard<'a, CellState<S>>,
    partition: i32,
}

impl<S> ActiveShard<'_, S> {
    /// The leader epoch of the partition the shard was loaded (or last
    /// confirmed) at: the coordinator epoch of Kafka's transaction markers.
    pub fn epoch(&self) -> LeaderEpoch {
        self.guard.epoch
    }

    /// The partition of the coordinator's topic this shard owns.
    pub fn partition(&self) -> i32 {
        self.partition
    }
}

impl<S> Deref for ActiveShard<'_, S> {
    type Target = S;

    fn deref(&self) -> &S {
        &self.guard.shard
    }
}

impl<S> DerefMut for ActiveShard<'_, S> {
    fn deref_mut(&mut self) -> &mut S {
        &mut self.guard.shard
    }
}

impl<S> ShardCell<S> {
    /// The partition of the coordinator's topic this shard owns.
    pub fn partition(&self) -> i32 {
        self.partition
    }

    /// Locks the shard if it is active; otherwise says why it cannot serve.
    pub fn lock(&self) -> Result<ActiveShard<'_, S>, CoordinatorError> {
        let guard = self.state.lock();
        match guard.phase {
            Phase::Active => Ok(ActiveShard {
                guard,
                partition: self.partition,
            }),
            Phase::Loading => Err(CoordinatorError::LoadInProgress),
            Phase::Closed => Err(CoordinatorError::NotCoordinator),
        }
    }

    /// Whether the shard serves requests now.
    pub fn is_active(&self) -> bool {
        self.state.lock().phase == Phase::Active
    }
}

struct Layout<S> {
    /// The partition count of the coordinator's topic: where keys hash to.
    partitions: i32,
    cells: BTreeMap<i32, Arc<ShardCell<S>>>,
}

/// The shards of one coordinator on this node, by partition.
pub struct Shards<S> {
    layout: Mutex<Layout<S>>,
}

impl<S: CoordinatorShard> Shards<S> {
    /// No shard loaded; keys hash over `partitions` partitions.
    pub fn new(partitions: i32) -> Self {
        Self {
            layout: Mutex::new(Layout {
                partitions,
                cells: BTreeMap::new(),
            }),
        }
    }

    /// The partition count of the coordinator's topic.
    pub fn partition_count(&self) -> i32 {
        self.layout.lock().partitions
    }

    /// The partition that owns `key` (a group id or a transactional id).
    pub fn partition_for(&self, key: &str) -> i32 {
        coordinator_partition_for(key, self.partition_count())
    }

    /// The shard of `partition`, loaded or loading.
    pub fn cell(&self, partition: i32) -> Result<Arc<ShardCell<S>>, CoordinatorError> {
        self.layout
            .lock()
            .cells
            .get(&partition)
            .cloned()
            .ok_or(CoordinatorError::NotCoordinator)
    }

    /// The shard owning `key`, loaded or loading.
    pub fn cell_for(&self, key: &str) -> Result<Arc<ShardCell<S>>, CoordinatorError> {
        let layout = self.layout.lock();
        let partition = coordinator_partition_for(key, layout.partitions);
        layout
            .cells
            .get(&partition)
            .cloned()
            .ok_or(CoordinatorError::NotCoordinator)
    }

    /// Runs `op` on the active shard owning `key`.
    pub fn with_shard<T>(
        &self,
        key: &str,
        op: impl FnOnce(&mut ActiveShard<'_, S>) -> T,
    ) -> Result<T, CoordinatorError> {
        let cell = self.cell_for(key)?;
        let mut shard = cell.lock()?;
        Ok(op(&mut shard))
    }

    /// Every shard loaded or loading here, by partition.
    pub fn cells(&self) -> Vec<Arc<ShardCell<S>>> {
        self.layout.lock().cells.values().cloned().collect()
    }

    /// Starts loading `partition` at leader epoch `epoch`: the returned
    /// loader replays the partition's log into a new shard built by `make`,
    /// which is in the Loading phase until [`PartitionLoader::finish`].
    /// `None` when the partition is already loaded or loading (its epoch is
    /// raised if `epoch` is newer), as Kafka ignores such loads.
    pub fn load(
        &self,
        partition: i32,
        epoch: LeaderEpoch,
        make: impl FnOnce(Weak<ShardCell<S>>) -> S,
    ) -> Option<ShardLoader<S>> {
        let mut layout = self.layout.lock();
        if let Some(existing) = layout.cells.get(&partition) {
            let mut state = existing.state.lock();
            if state.epoch < epoch {
                state.epoch = epoch;
            }
            tracing::info!(partition, %epoch, phase = ?state.phase, "coordinator partition already loaded");
            return None;
        }
        let cell = Arc::new_cyclic(|weak| ShardCell {
            partition,
            state: Mutex::new(CellState {
                phase: Phase::Loading,
                epoch,
                shard: make(weak.clone()),
            }),
        });
        layout.cells.insert(partition, cell.clone());
        Some(ShardLoader { cell })
    }

    /// Unloads `partition`: requests for its keys get NOT_COORDINATOR from
    /// now on, and those parked in it are answered so. With `epoch`, only a
    /// shard loaded at an older epoch is unloaded (a stale unload is
    /// ignored); without, it is unloaded whatever its epoch. Returns whether
    /// a shard was unloaded.
    pub fn unload(&self, partition: i32, epoch: Option<LeaderEpoch>) -> bool {
        let cell = {
            let mut layout = self.layout.lock();
            let Some(cell) = layout.cells.get(&partition) else {
                return false;
            };
            if epoch.is_some_and(|e| cell.state.lock().epoch >= e) {
                tracing::info!(
                    partition,
                    ?epoch,
                    "ignored a stale unload of a coordinator partition"
                );
                return false;
            }
            let cell = cell.clone();
            layout.cells.remove(&partition);
            cell
        };
        close(&cell);
        true
    }

    /// The coordinator's topic now has `partitions` partitions, so keys hash
    /// differently: every shard is unloaded, and the caller loads the new
    /// partitions.
    pub fn relayout(&self, partitions: i32) {
        let cells = {
            let mut layout = self.layout.lock();
            layout.partitions = partitions;
            std::mem::take(&mut layout.cells)
        };
        for cell in cells.values() {
            close(cell);
        }
    }
}

fn close<S: CoordinatorShard>(cell: &ShardCell<S>) {
    let mut state = cell.state.lock();
    if state.phase != Phase::Closed {
        state.shard.on_unloaded();
        state.phase = Phase::Closed;
    }
}

/// Feeds a partition's log into the shard being loaded, then activates it.
pub trait PartitionLoader {
    /// Replays the next entry of the log. An entry that cannot be decoded is
    /// skipped and reported; the caller says where it was.
    fn replay(&mut self, entry: &LogEntry) -> Result<(), CodecError>;

    /// The whole log was replayed: the shard serves from now on. Returns
    /// false if it was unloaded meanwhile.
    fn finish(self) -> bool;
}

/// The [`PartitionLoader`] of a shard in the Loading phase.
pub struct ShardLoader<S> {
    cell: Arc<ShardCell<S>>,
}

impl<S: CoordinatorShard> PartitionLoader for ShardLoader<S> {
    fn replay(&mut self, entry: &LogEntry) -> Result<(), CodecError> {
        let mut state = self.cell.state.lock();
        if state.phase != Phase::Loading {
            // Unloaded while loading: nothing reads this shard any more.
            return Ok(());
        }
        state.shard.replay(entry)
    }

    fn finish(self) -> bool {
        let mut state = self.cell.state.lock();
        if state.phase != Phase::Loading {
            return false;
        }
        state.phase = Phase::Active;
        state.shard.on_loaded();
        true
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]

    use bytes::Bytes;

    use super::*;
    use crate::record::CoordinatorRecord;

    /// Counts what the runtime did to it.
    #[derive(Default)]
    struct Counter {
        replayed: usize,
        loaded: usize,
        unloaded: usize,
    }

    impl CoordinatorShard for Counter {
        fn replay(&mut self, entry: &LogEntry) -> Result<(), CodecError> {
            match entry {
                LogEntry::Record { record, .. } if record.key.is_empty() => {
                    Err(CodecError::Truncated("key"))
                }
                _ => {
                    self.replayed += 1;
                    Ok(())
                }
            }
        }

        fn on_loaded(&mut self) {
            self.loaded += 1;
        }

        fn on_unloaded(&mut self) {
            self.unloaded += 1;
        }
    }

    fn entry(key: &'static [u8]) -> LogEntry {
        LogEntry::record(CoordinatorRecord::tombstone(Bytes::from_static(key)))
    }

    fn counts(shards: &Shards<Counter>, partition: i32) -> (usize, usize, usize) {
        let cell = shards.cell(partition).unwrap();
        let state = cell.state.lock();
        (
            state.shard.replayed,
            state.shard.loaded,
            state.shard.unloaded,
        )
    }

    #[test]
    fn a_partition_serves_only_between_load_and_unload() {
        let shards = Shards::<Counter>::new(4);
        let key = (0..)
            .map(|i| format!("key-{i}"))
            .find(|k| shards.partition_for(k) == 2)
            .unwrap();
        assert_eq!(
            shards.with_shard(&key, |_| ()).err(),
            Some(CoordinatorError::NotCoordinator)
        );

        let mut loader = shards
            .load(2, LeaderEpoch(0), |_| Counter::default())
            .unwrap();
        assert_eq!(loader.replay(&entry(b"k")), Ok(()));
        assert_eq!(
            loader.replay(&entry(b"")),
            Err(CodecError::Truncated("key"))
        );
        assert_eq!(
            shards.with_shard(&key, |_| ()).err(),
            Some(CoordinatorError::LoadInProgress)
        );
        assert!(loader.finish());
        assert_eq!(counts(&shards, 2), (1, 1, 0));
        assert_eq!(
            shards.with_shard(&key, |s| (s.partition(), s.epoch())),
            Ok((2, LeaderEpoch(0)))
        );

        let cell = shards.cell(2).unwrap();
        assert!(shards.unload(2, None));
        assert_eq!(
            shards.with_shard(&key, |_| ()).err(),
            Some(CoordinatorError::NotCoordinator)
        );
        // Whoever still holds the old shard sees it closed, unloaded once.
        assert_eq!(cell.lock().err(), Some(CoordinatorError::NotCoordinator));
        assert_eq!(cell.state.lock().shard.unloaded, 1);
        assert!(!shards.unload(2, None));
    }

    #[test]
    fn epochs_order_loads_and_unloads() {
        let shards = Shards::<Counter>::new(4);
        let loader = shards
            .load(1, LeaderEpoch(3), |_| Counter::default())
            .unwrap();
        assert!(loader.finish());
        // Loading again, at the same or a newer epoch, keeps the loaded shard.
        assert!(
            shards
                .load(1, LeaderEpoch(3), |_| Counter::default())
                .is_none()
        );
        assert!(
            shards
                .load(1, LeaderEpoch(5), |_| Counter::default())
                .is_none()
        );
        assert_eq!(counts(&shards, 1), (0, 1, 0));
        assert_eq!(
            shards.cell(1).unwrap().lock().unwrap().epoch(),
            LeaderEpoch(5)
        );
        // An unload from before the newer epoch is stale.
        assert!(!shards.unload(1, Some(LeaderEpoch(5))));
        assert!(shards.unload(1, Some(LeaderEpoch(6))));
        assert!(shards.cell(1).is_err());
    }

    #[test]
    fn a_shard_unloaded_while_loading_never_activates() {
        let shards = Shards::<Counter>::new(4);
        let mut loader = shards
            .load(0, LeaderEpoch(0), |_| Counter::default())
            .unwrap();
        let cell = shards.cell(0).unwrap();
        assert!(shards.unload(0, None));
        assert_eq!(loader.replay(&entry(b"k")), Ok(()));
        assert!(!loader.finish());
        assert_eq!(cell.lock().err(), Some(CoordinatorError::NotCoordinator));
        let state = cell.state.lock();
        assert_eq!(
            (
                state.shard.replayed,
                state.shard.loaded,
                state.shard.unloaded
            ),
            (0, 0, 1)
        );
    }

    #[test]
    fn relayout_unloads_everything_and_rehashes() {
        let shards = Shards::<Counter>::new(50);
        for p in 0..50 {
            assert!(
                shards
                    .load(p, LeaderEpoch(0), |_| Counter::default())
                    .unwrap()
                    .finish()
            );
        }
        let key = "abc";
        assert_eq!(shards.partition_for(key), 96354 % 50);
        shards.relayout(2);
        assert!(shards.cells().is_empty());
        assert_eq!(shards.partition_for(key), 96354 % 2);
        assert_eq!(shards.partition_count(), 2);
    }
}

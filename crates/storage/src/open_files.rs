//! A bound on the file descriptors the logs hold.
//!
//! Every partition has at least one segment file, and a broker may hold more partitions
//! than the process may open files (RLIMIT_NOFILE). So a data file is opened when it is
//! first used and stays open while it is in use; once more files are open than the
//! budget allows, the least recently used idle ones are closed (the clock algorithm: a
//! file used since the hand last passed gets a second chance). A file that was written
//! since its last sync is synced before it is closed, so that a write-back error is seen
//! by us rather than lost with the descriptor ("fsyncgate"); if that sync fails, every
//! later sync of the file fails too.
//!
//! Operations on a file hold a shared lock on its descriptor for their whole duration;
//! closing needs the exclusive lock and is skipped for a file in use, so no operation
//! ever sees its descriptor closed under it.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};

use crate::sync_ledger;

use parking_lot::{MappedRwLockReadGuard, Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// The open-files budget shared by every log of a broker.
#[derive(Debug)]
pub struct OpenFiles {
    capacity: usize,
    /// Files with a descriptor, in clock order.
    ring: Mutex<VecDeque<Weak<FileSlot>>>,
    /// Descriptors closed to stay within the budget (for metrics and tests).
    closed_for_room: AtomicUsize,
}

impl OpenFiles {
    /// A budget of at most `capacity` open log files (at least one).
    pub fn new(capacity: usize) -> Arc<Self> {
        Arc::new(Self {
            capacity: capacity.max(1),
            ring: Mutex::new(VecDeque::new()),
            closed_for_room: AtomicUsize::new(0),
        })
    }

    /// No bound: files stay open until their log closes them (tools and tests).
    pub fn unbounded() -> Arc<Self> {
        Self::new(usize::MAX)
    }

    /// The most files kept open at once.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Files with an open descriptor now (dropped ones are counted until the clock hand
    /// passes them).
    pub fn open_count(&self) -> usize {
        self.ring.lock().len()
    }

    /// How many descriptors were closed to make room since start.
    pub fn closed_for_room(&self) -> usize {
        self.closed_for_room.load(Ordering::Relaxed)
    }

    /// Records that `slot` now holds a descriptor, and closes idle ones past the budget.
    fn opened(&self, slot: &Arc<FileSlot>) {
        let victims = {
            let mut ring = self.ring.lock();
            ring.push_back(Arc::downgrade(slot));
            self.pick_victims(&mut ring)
        };
        for (victim, file) in victims {
            victim.close(file);
            self.closed_for_room.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Takes the descriptors of idle files until the ring fits the budget. The hand goes
    /// round at most twice (once to clear the "used" marks, once to find one unmarked);
    /// files in use at that moment are skipped, so the budget may be exceeded briefly.
    fn pick_victims(&self, ring: &mut VecDeque<Weak<FileSlot>>) -> Vec<(Arc<FileSlot>, File)> {
        let mut victims = Vec::new();
        let mut steps = ring.len().saturating_mul(2);
        while ring.len() > self.capacity && steps > 0 {
            steps -= 1;
            let Some(weak) = ring.pop_front() else { break };
            let Some(slot) = weak.upgrade() else {
                continue; // its log was dropped: the descriptor is already closed
            };
            if slot.used.swap(false, Ordering::AcqRel) {
                ring.push_back(weak);
                continue;
            }
            let taken = match slot.file.try_write() {
                Some(mut guard) => Ok(guard.take()),
                None => Err(()),
            };
            match taken {
                Ok(Some(file)) => victims.push((slot, file)),
                Ok(None) => {} // closed already; it is no longer in the ring
                Err(()) => ring.push_back(weak), // in use right now
            }
        }
        victims
    }
}

/// One log file's descriptor, present while the file is open.
#[derive(Debug)]
pub(crate) struct FileSlot {
    path: PathBuf,
    file: RwLock<Option<File>>,
    /// Used since the clock hand last passed.
    used: AtomicBool,
    /// Written since the last sync.
    dirty: AtomicBool,
    /// A sync failed: the kernel may have dropped the written pages, so no later sync
    /// may report this file durable.
    sync_failed: AtomicBool,
}

/// A file of a log that may be closed while idle and is reopened on its next use.
#[derive(Debug)]
pub(crate) struct CachedFile {
    slot: Arc<FileSlot>,
    budget: Arc<OpenFiles>,
}

/// Shared access to an open descriptor for the length of one operation: while it is
/// held, the descriptor cannot be closed for room.
pub(crate) type FileGuard<'a> = MappedRwLockReadGuard<'a, File>;

impl CachedFile {
    /// Wraps a descriptor just opened (or created) at `path`, counting it in `budget`.
    pub(crate) fn new(path: &Path, file: File, budget: &Arc<OpenFiles>) -> Self {
        let slot = Arc::new(FileSlot {
            path: path.to_path_buf(),
            file: RwLock::new(Some(file)),
            used: AtomicBool::new(true),
            dirty: AtomicBool::new(false),
            sync_failed: AtomicBool::new(false),
        });
        budget.opened(&slot);
        Self {
            slot,
            budget: budget.clone(),
        }
    }

    pub(crate) fn path(&self) -> &Path {
        &self.slot.path
    }

    /// The open descriptor, reopening the file if it was closed to make room.
    pub(crate) fn get(&self) -> io::Result<FileGuard<'_>> {
        self.slot.used.store(true, Ordering::Release);
        if let Ok(open) = RwLockReadGuard::try_map(self.slot.file.read(), Option::as_ref) {
            return Ok(open);
        }
        let mut write = self.slot.file.write();
        let reopened = write.is_none();
        if reopened {
            *write = Some(
                OpenOptions::new()
                    .read(true)
                    .write(true)
                    .open(&self.slot.path)?,
            );
        }
        let read = RwLockWriteGuard::downgrade(write);
        if reopened {
            self.budget.opened(&self.slot);
        }
        RwLockReadGuard::try_map(read, Option::as_ref)
            .map_err(|_| io::Error::other("log file closed while it was being reopened"))
    }

    /// Notes a successful write, so the file is synced before it is closed for room.
    pub(crate) fn wrote(&self) {
        self.slot.dirty.store(true, Ordering::Release);
    }

    /// Before a sync of the whole filesystem covers this file: fails for good once any
    /// sync of it has failed; otherwise clears its written-since-sync mark (a write after
    /// this point marks it again) and returns whether it was set, for
    /// [`Self::sync_failed_elsewhere`].
    pub(crate) fn begin_covering_sync(&self) -> io::Result<bool> {
        self.slot.check_not_failed()?;
        sync_ledger::sync_begins(&self.slot.path);
        Ok(self.slot.dirty.swap(false, Ordering::AcqRel))
    }

    /// The sync that covered this file failed: no later sync may call it durable.
    pub(crate) fn sync_failed_elsewhere(&self, was_dirty: bool) {
        self.slot.sync_failed.store(true, Ordering::Release);
        if was_dirty {
            self.slot.dirty.store(true, Ordering::Release);
        }
    }

    /// fdatasync; fails for good once any sync of this file has failed.
    pub(crate) fn sync_data(&self) -> io::Result<()> {
        self.slot.check_not_failed()?;
        let file = self.get()?;
        let was_dirty = self.slot.dirty.swap(false, Ordering::AcqRel);
        sync_ledger::sync_begins(&self.slot.path);
        file.sync_data()
            .inspect(|()| sync_ledger::sync_completed(&self.slot.path))
            .inspect_err(|_| {
                self.slot.sync_failed.store(true, Ordering::Release);
                if was_dirty {
                    self.slot.dirty.store(true, Ordering::Release);
                }
            })
    }

    /// The filesystem sync begun with [`Self::begin_covering_sync`] completed.
    pub(crate) fn covered_by_sync(&self) {
        sync_ledger::sync_completed(&self.slot.path);
    }
}

impl FileSlot {
    fn check_not_failed(&self) -> io::Result<()> {
        if self.sync_failed.load(Ordering::Acquire) {
            return Err(io::Error::other(format!(
                "an earlier fdatasync of {} failed, so its unsynced writes may be lost",
                self.path.display()
            )));
        }
        Ok(())
    }

    /// Closes a descriptor taken for room, syncing it first if it was written since its
    /// last sync (nothing else can use this descriptor any more).
    fn close(&self, file: File) {
        if !self.dirty.swap(false, Ordering::AcqRel) {
            return;
        }
        sync_ledger::sync_begins(&self.path);
        if let Err(e) = file.sync_data() {
            self.sync_failed.store(true, Ordering::Release);
            tracing::error!(
                file = %self.path.display(),
                error = %e,
                "fdatasync before closing an idle log file failed; the partition cannot acknowledge writes until it is recovered"
            );
        } else {
            sync_ledger::sync_completed(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use std::os::unix::fs::FileExt;

    fn open(path: &Path, budget: &Arc<OpenFiles>) -> CachedFile {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .unwrap();
        CachedFile::new(path, file, budget)
    }

    #[test]
    fn keeps_at_most_the_budget_open_and_reopens_on_use() {
        let dir = tempfile::tempdir().unwrap();
        let budget = OpenFiles::new(2);
        let files: Vec<CachedFile> = (0..5)
            .map(|i| open(&dir.path().join(format!("{i}.log")), &budget))
            .collect();
        assert_eq!(budget.open_count(), 2);
        assert_eq!(budget.closed_for_room(), 3);
        for (i, f) in files.iter().enumerate() {
            f.get().unwrap().write_all_at(&[i as u8; 3], 0).unwrap();
            f.wrote();
            assert!(budget.open_count() <= 2);
        }
        for (i, f) in files.iter().enumerate() {
            let mut buf = [0u8; 3];
            f.get().unwrap().read_exact_at(&mut buf, 0).unwrap();
            assert_eq!(buf, [i as u8; 3]);
        }
        assert!(budget.open_count() <= 2);
    }

    #[test]
    fn a_file_in_use_is_not_closed() {
        let dir = tempfile::tempdir().unwrap();
        let budget = OpenFiles::new(1);
        let first = open(&dir.path().join("a.log"), &budget);
        let guard = first.get().unwrap();
        let second = open(&dir.path().join("b.log"), &budget);
        // The first file is held, so the idle second one is closed instead.
        guard.write_all_at(b"x", 0).unwrap();
        drop(guard);
        assert!(second.slot.file.read().is_none());
        assert!(first.slot.file.read().is_some());
        assert_eq!(budget.open_count(), 1);
        second.get().unwrap().write_all_at(b"y", 0).unwrap();
        assert_eq!(budget.open_count(), 1);
        assert!(
            first.slot.file.read().is_none(),
            "idle first file closed for the second"
        );
    }

    #[test]
    fn a_written_file_is_synced_before_it_is_closed() {
        let dir = tempfile::tempdir().unwrap();
        let budget = OpenFiles::new(1);
        let first = open(&dir.path().join("a.log"), &budget);
        first.get().unwrap().write_all_at(b"data", 0).unwrap();
        first.wrote();
        first.slot.used.store(false, Ordering::Release);
        let _second = open(&dir.path().join("b.log"), &budget);
        assert!(first.slot.file.read().is_none(), "closed for room");
        assert!(
            !first.slot.dirty.load(Ordering::Acquire),
            "synced on closing"
        );
    }

    #[test]
    fn a_failed_sync_fails_every_later_sync() {
        let dir = tempfile::tempdir().unwrap();
        let budget = OpenFiles::unbounded();
        let file = open(&dir.path().join("a.log"), &budget);
        file.slot.sync_failed.store(true, Ordering::Release);
        assert!(file.sync_data().is_err());
        assert!(file.sync_data().is_err());
    }
}

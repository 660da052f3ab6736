//! Group commit support: a handle that syncs the log's unsynced files without borrowing
//! the log, so the broker can release its lock while fdatasync runs and let more appends
//! join the next sync.
//!
//! A failed sync takes the log offline for good (see [`StorageError::Offline`]): after an
//! fsync error the kernel may have dropped the pages it could not write, so a later sync
//! that succeeds proves nothing about them. Kafka takes the log directory offline;
//! TigerBeetle and Iggy stop. The log refuses writes and reads until it is reopened with
//! recovery, which keeps only what the scan finds intact past the last durable point.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::error::StorageError;
use crate::segment::SegmentFile;

/// Whether a sync of one log has failed; shared by the log and its flush handles, so a
/// sync that fails while the log is not borrowed still takes the log offline.
#[derive(Debug)]
pub(crate) struct SyncHealth {
    dir: PathBuf,
    /// The device of the filesystem the log lives on (`st_dev`): logs on the same one can
    /// share one filesystem sync. `None` when it could not be read.
    filesystem: Option<u64>,
    failed: AtomicBool,
}

impl SyncHealth {
    pub(crate) fn new(dir: &Path) -> Arc<Self> {
        Arc::new(Self {
            dir: dir.to_path_buf(),
            filesystem: std::fs::metadata(dir).ok().map(|m| m.dev()),
            failed: AtomicBool::new(false),
        })
    }

    /// `Offline` once a sync has failed.
    pub(crate) fn check(&self) -> Result<(), StorageError> {
        if self.is_offline() {
            return Err(StorageError::Offline {
                dir: self.dir.clone(),
            });
        }
        Ok(())
    }

    pub(crate) fn is_offline(&self) -> bool {
        self.failed.load(Ordering::Acquire)
    }

    pub(crate) fn fail(&self) {
        self.failed.store(true, Ordering::Release);
    }
}

/// Captured by [`crate::PartitionLog::flush_handle`]: the files holding data past the
/// recovery point and the log end offset at that moment.
#[derive(Debug, Clone)]
pub struct FlushHandle {
    pub(crate) files: Vec<Arc<SegmentFile>>,
    pub(crate) end_offset: i64,
    pub(crate) health: Arc<SyncHealth>,
    /// The log's truncation count when the handle was taken.
    pub(crate) truncations: u64,
}

impl FlushHandle {
    /// fdatasyncs the captured files (and the directory entries of new ones) and returns
    /// the offset below which everything is now durable; then pass the handle to
    /// [`crate::PartitionLog::mark_flushed`]. The first failure takes the log offline and
    /// is returned as the I/O error it was; every later flush returns `Offline`.
    pub fn flush(&self) -> Result<i64, StorageError> {
        self.health.check()?;
        for file in &self.files {
            if let Err(e) = file.sync() {
                self.health.fail();
                return Err(e.into());
            }
        }
        Ok(self.end_offset)
    }

    /// The log end offset captured with the handle.
    pub fn end_offset(&self) -> i64 {
        self.end_offset
    }

    /// Whether there is nothing to sync.
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// The filesystem a shared sync may cover this handle on: `None` when it must sync
    /// file by file (nothing to sync, unknown filesystem, or syncfs not allowed now: see
    /// [`crate::io::FilesystemSync`]).
    fn shared_filesystem(&self) -> Option<u64> {
        let first = self.files.first()?;
        if !first.env().filesystem_sync_allowed() {
            return None;
        }
        self.health.filesystem
    }

    /// Readies every file for a filesystem sync; on the first refusal (an earlier failed
    /// sync, an injected fault) the log goes offline and the files readied so far are
    /// marked as they were.
    fn begin_filesystem_sync(&self) -> Result<Vec<(&SegmentFile, bool)>, StorageError> {
        self.health.check()?;
        let mut readied = Vec::with_capacity(self.files.len());
        for file in &self.files {
            match file.begin_filesystem_sync() {
                Ok(Some(was_dirty)) => readied.push((&**file, was_dirty)),
                Ok(None) => {}
                Err(e) => {
                    self.fail_filesystem_sync(&readied);
                    return Err(e.into());
                }
            }
        }
        Ok(readied)
    }

    fn fail_filesystem_sync(&self, readied: &[(&SegmentFile, bool)]) {
        self.health.fail();
        for (file, was_dirty) in readied {
            file.filesystem_sync_failed(*was_dirty);
        }
    }
}

/// Flushes several logs' handles, as [`FlushHandle::flush`] each, in far less time when
/// several logs share a filesystem: one syncfs covers all of them. On a virtual disk an
/// fdatasync per file cost 1–4 ms each (a journal commit and a device flush apiece), so a
/// pass over 8 partitions took 10–30 ms where one syncfs took about 1 ms
/// (docs/PERFORMANCE.md). `done(index, result, took)` is called for each handle as soon as
/// its result is known (a handle synced on its own does not wait for the others), with how
/// long its sync took. A failed syncfs takes every log it covered offline: which file lost
/// pages is unknown.
pub fn flush_together(
    handles: &[FlushHandle],
    mut done: impl FnMut(usize, Result<i64, StorageError>, Duration),
) {
    let filesystems: Vec<Option<u64>> =
        handles.iter().map(FlushHandle::shared_filesystem).collect();
    let mut sharing: BTreeMap<u64, usize> = BTreeMap::new();
    for filesystem in filesystems.iter().flatten() {
        *sharing.entry(*filesystem).or_default() += 1;
    }
    sharing.retain(|_, logs| *logs > 1);
    for &filesystem in sharing.keys() {
        let members = handles
            .iter()
            .zip(&filesystems)
            .enumerate()
            .filter(|(_, (_, fs))| **fs == Some(filesystem))
            .map(|(index, (handle, _))| (index, handle));
        let started = Instant::now();
        let results = sync_filesystem_of(members);
        let took = started.elapsed();
        for (index, result) in results {
            done(index, result, took);
        }
    }
    let alone = handles
        .iter()
        .zip(&filesystems)
        .enumerate()
        .filter(|(_, (_, fs))| !fs.is_some_and(|fs| sharing.contains_key(&fs)));
    for (index, (handle, _)) in alone {
        let started = Instant::now();
        let result = handle.flush();
        done(index, result, started.elapsed());
    }
}

/// One syncfs for `members` (indexed handles on the same filesystem): each one's result.
fn sync_filesystem_of<'a>(
    members: impl Iterator<Item = (usize, &'a FlushHandle)>,
) -> Vec<(usize, Result<i64, StorageError>)> {
    let mut results = Vec::new();
    let mut readied = Vec::new();
    for (index, handle) in members {
        match handle.begin_filesystem_sync() {
            Ok(files) => readied.push((index, handle, files)),
            Err(e) => results.push((index, Err(e))),
        }
    }
    // None: every file was deleted meanwhile, so there is nothing to sync.
    let synced = readied
        .iter()
        .find_map(|(_, _, files)| files.first())
        .map_or(Ok(()), |(file, _)| file.env().sync_filesystem(file.dir()));
    for (index, handle, files) in readied {
        let result = match &synced {
            Ok(()) => {
                files.iter().for_each(|(file, _)| file.filesystem_synced());
                Ok(handle.end_offset)
            }
            Err(e) => {
                handle.fail_filesystem_sync(&files);
                Err(std::io::Error::new(e.kind(), e.to_string()).into())
            }
        };
        results.push((index, result));
    }
    results
}

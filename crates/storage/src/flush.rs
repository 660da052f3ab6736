//! Group commit support: a handle that syncs the log's unsynced files without borrowing
//! the log, so the broker can release its lock while fdatasync runs and let more appends
//! join the next sync.
//!
//! A failed sync takes the log offline for good (see [`StorageError::Offline`]): after an
//! fsync error the kernel may have dropped the pages it could not write, so a later sync
//! that succeeds proves nothing about them. Kafka takes the log directory offline;
//! TigerBeetle and Iggy stop. The log refuses writes and reads until it is reopened with
//! recovery, which keeps only what the scan finds intact past the last durable point.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::error::StorageError;
use crate::segment::SegmentFile;

/// Whether a sync of one log has failed; shared by the log and its flush handles, so a
/// sync that fails while the log is not borrowed still takes the log offline.
#[derive(Debug)]
pub(crate) struct SyncHealth {
    dir: PathBuf,
    failed: AtomicBool,
}

impl SyncHealth {
    pub(crate) fn new(dir: &Path) -> Arc<Self> {
        Arc::new(Self {
            dir: dir.to_path_buf(),
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
}

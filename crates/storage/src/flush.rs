//! Group commit support: a handle that syncs the log's unsynced files without borrowing
//! the log, so the broker can release its lock while fdatasync runs and let more appends
//! join the next sync.

use std::sync::Arc;

use crate::error::StorageError;
use crate::segment::SegmentFile;

/// Captured by [`crate::PartitionLog::flush_handle`]: the files holding data past the
/// recovery point and the log end offset at that moment.
#[derive(Debug, Clone)]
pub struct FlushHandle {
    pub(crate) files: Vec<Arc<SegmentFile>>,
    pub(crate) end_offset: i64,
}

impl FlushHandle {
    /// fdatasyncs the captured files (and the directory entries of new ones) and returns
    /// the offset below which everything is now durable; pass it to
    /// [`crate::PartitionLog::mark_flushed`].
    pub fn flush(&self) -> Result<i64, StorageError> {
        for file in &self.files {
            file.sync()?;
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

//! Reading sealed segments without the log: the cleaner holds their files (shared with the
//! log, see [`crate::segment::SegmentFile`]) and walks their batches while appends, reads and
//! retention go on.

use std::sync::Arc;

use bytes::Bytes;
use sluice_protocol::batch::{BATCH_HEADER_LEN, BatchHeader};

use super::CleanerControl;
use crate::error::StorageError;
use crate::segment::{SCAN_CHUNK, SegmentFile};

/// A sealed segment as the cleaner found it.
#[derive(Debug, Clone)]
pub(crate) struct SourceSegment {
    pub(crate) base: i64,
    /// Base offset of the segment after it.
    pub(crate) next_base: i64,
    /// Bytes (sealed segments do not grow).
    pub(crate) size: u64,
    pub(crate) file: Arc<SegmentFile>,
    /// Bytes of its offset and time indexes.
    pub(crate) index_bytes: (u64, u64),
    /// When it was last written, kept by its cleaned replacement.
    pub(crate) last_modified_ms: i64,
}

/// Walks the batches of one segment from a position, reading a chunk at a time.
pub(crate) struct BatchCursor<'a> {
    segment: &'a SourceSegment,
    position: u64,
    chunk: Bytes,
    chunk_start: u64,
}

impl<'a> BatchCursor<'a> {
    pub(crate) fn new(segment: &'a SourceSegment, position: u64) -> Self {
        Self {
            segment,
            position,
            chunk: Bytes::new(),
            chunk_start: position,
        }
    }

    /// The next batch: its header, its bytes and its position. Reads are throttled by
    /// `control`.
    pub(crate) fn next_batch(
        &mut self,
        control: &dyn CleanerControl,
    ) -> Result<Option<(BatchHeader, Bytes, u64)>, StorageError> {
        let position = self.position;
        let size = self.segment.size;
        if position >= size {
            return Ok(None);
        }
        if !self.holds(position, BATCH_HEADER_LEN as u64) {
            self.refill(position, control)?;
        }
        let at = self.offset_in_chunk(position);
        let header = BatchHeader::parse(self.chunk.get(at..).unwrap_or_default())
            .map_err(|e| self.corrupt(position, &e.to_string()))?;
        let len = header.total_len() as u64;
        if position.saturating_add(len) > size {
            return Err(self.corrupt(position, "batch extends beyond the end of the segment"));
        }
        let batch = if self.holds(position, len) {
            let at = self.offset_in_chunk(position);
            self.chunk.slice(at..at + header.total_len())
        } else if header.total_len() > SCAN_CHUNK {
            control.throttle(len);
            Bytes::from(
                self.segment
                    .file
                    .read_vec_at(position, header.total_len())?,
            )
        } else {
            self.refill(position, control)?;
            self.chunk.slice(0..header.total_len())
        };
        self.position = position.saturating_add(len);
        Ok(Some((header, batch, position)))
    }

    fn holds(&self, position: u64, len: u64) -> bool {
        position >= self.chunk_start
            && position.saturating_add(len) <= self.chunk_start + self.chunk.len() as u64
    }

    fn offset_in_chunk(&self, position: u64) -> usize {
        usize::try_from(position - self.chunk_start).unwrap_or(usize::MAX)
    }

    fn refill(&mut self, position: u64, control: &dyn CleanerControl) -> Result<(), StorageError> {
        let want = self
            .segment
            .size
            .saturating_sub(position)
            .min(SCAN_CHUNK as u64);
        control.throttle(want);
        let len = usize::try_from(want).unwrap_or(SCAN_CHUNK);
        self.chunk = Bytes::from(self.segment.file.read_vec_at(position, len)?);
        self.chunk_start = position;
        Ok(())
    }

    fn corrupt(&self, position: u64, what: &str) -> StorageError {
        StorageError::Corrupt(format!(
            "segment {} at position {position}: {what}",
            self.segment.base
        ))
    }
}

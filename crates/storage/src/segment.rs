//! One log segment: a `.log` file of record batches starting at `base_offset`, with its
//! sparse offset and time indexes.
//!
//! The segment knows how to append already-stamped batches, find the batch holding an
//! offset, read whole batches, and scan itself (verifying CRCs during recovery, or only
//! walking headers to rebuild indexes). It never decides when to roll or delete; that is
//! the log's job.

use std::io::IoSlice;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use sluice_protocol::batch::{
    BATCH_HEADER_LEN, BatchError, BatchHeader, check_integrity, field, split_batches,
};
use sluice_protocol::records::decode_records;

use crate::config::LogConfig;
use crate::error::StorageError;
use crate::index::{OFFSET_ENTRY_LEN, OffsetIndex, TIME_ENTRY_LEN, TimeIndex};
use crate::io::{DataFile, StorageEnv};

/// One batch as the log stores it: the client's bytes with a stamped header in front
/// (see [`sluice_protocol::batch::stamped_header`]).
pub(crate) struct StampedBatch<'a> {
    /// The parsed stamped header.
    pub(crate) header: BatchHeader,
    /// The header bytes written to the file.
    pub(crate) stamped_header: [u8; BATCH_HEADER_LEN],
    /// The client's batch after its header, written unchanged.
    pub(crate) after_header: &'a [u8],
}

/// How much of a segment is read at once while scanning it.
pub(crate) const SCAN_CHUNK: usize = 1 << 20;
/// The suffix of a segment the log cleaner is still writing.
pub(crate) const CLEANED_SUFFIX: &str = ".cleaned";
/// The suffix of a cleaned segment that is replacing the segments it was made from.
pub(crate) const SWAP_SUFFIX: &str = ".swap";
use sluice_protocol::records::MAX_DECOMPRESSED_BYTES;

pub(crate) fn log_file_name(base_offset: i64) -> String {
    format!("{base_offset:020}.log")
}

fn index_path(dir: &Path, base_offset: i64) -> PathBuf {
    dir.join(format!("{base_offset:020}.index"))
}

fn time_index_path(dir: &Path, base_offset: i64) -> PathBuf {
    dir.join(format!("{base_offset:020}.timeindex"))
}

/// The three files of a segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SegmentFileKind {
    Log,
    Index,
    TimeIndex,
}

impl SegmentFileKind {
    pub(crate) const ALL: [SegmentFileKind; 3] = [Self::Log, Self::Index, Self::TimeIndex];

    fn extension(self) -> &'static str {
        match self {
            Self::Log => "log",
            Self::Index => "index",
            Self::TimeIndex => "timeindex",
        }
    }
}

/// A segment file under its name plus `suffix` (`""`, or the log cleaner's `.cleaned` and
/// `.swap`, see [`crate::cleaner`]).
pub(crate) fn segment_file_path(
    dir: &Path,
    base_offset: i64,
    kind: SegmentFileKind,
    suffix: &str,
) -> PathBuf {
    dir.join(format!("{base_offset:020}.{}{suffix}", kind.extension()))
}

/// The base offset named by a segment file (`00000000000000000042.log` and its indexes).
pub(crate) fn parse_file_name(name: &str, extension: &str) -> Option<i64> {
    let stem = name.strip_suffix(extension)?.strip_suffix('.')?;
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    stem.parse().ok()
}

/// The open `.log` file, shared with [`crate::FlushHandle`] so a sync can run while the
/// log itself is not borrowed.
#[derive(Debug)]
pub(crate) struct SegmentFile {
    data: DataFile,
    dir: PathBuf,
    /// Whether the directory entry of this (new) file is known to be on disk.
    dir_synced: AtomicBool,
    /// The segment was deleted (retention, truncation): a flush that captured it before
    /// has nothing left to make durable.
    deleted: AtomicBool,
}

impl SegmentFile {
    /// Reads `len` bytes at `position` (the log cleaner reads sealed segments through
    /// this, without the log).
    pub(crate) fn read_vec_at(&self, position: u64, len: usize) -> std::io::Result<Vec<u8>> {
        self.data.read_vec_at(position, len)
    }

    /// fdatasync of the data, plus the directory once for a newly created file. A file
    /// deleted meanwhile needs no sync, and its failure to reopen is no failure.
    pub(crate) fn sync(&self) -> std::io::Result<()> {
        match self.sync_data_and_dir() {
            Err(_) if self.deleted.load(Ordering::Acquire) => Ok(()),
            other => other,
        }
    }

    /// Readies the file for a sync of its whole filesystem ([`crate::flush::flush_together`]):
    /// `None` when it was deleted (nothing to make durable), else whether it was written
    /// since its last sync.
    pub(crate) fn begin_filesystem_sync(&self) -> std::io::Result<Option<bool>> {
        if self.deleted.load(Ordering::Acquire) {
            return Ok(None);
        }
        self.data.begin_filesystem_sync().map(Some)
    }

    /// The filesystem sync covered the data and this file's directory entry.
    pub(crate) fn filesystem_synced(&self) {
        self.data.filesystem_synced();
        self.dir_synced.store(true, Ordering::Release);
    }

    /// The filesystem sync failed: this file may have lost pages.
    pub(crate) fn filesystem_sync_failed(&self, was_dirty: bool) {
        self.data.filesystem_sync_failed(was_dirty);
    }

    /// The directory holding the file.
    pub(crate) fn dir(&self) -> &std::path::Path {
        &self.dir
    }

    /// The environment the file does its operations in.
    pub(crate) fn env(&self) -> &std::sync::Arc<crate::io::StorageEnv> {
        self.data.env()
    }

    fn sync_data_and_dir(&self) -> std::io::Result<()> {
        if self.deleted.load(Ordering::Acquire) {
            return Ok(());
        }
        self.data.sync_data()?;
        if !self.dir_synced.load(Ordering::Acquire) {
            self.data.env().sync_dir(&self.dir)?;
            self.dir_synced.store(true, Ordering::Release);
        }
        Ok(())
    }
}

impl StampedBatch<'_> {
    /// A batch stored exactly as it came (a follower keeps its leader's offsets, epochs and
    /// timestamps): its own header, then the rest of its bytes.
    pub(crate) fn unchanged(
        header: BatchHeader,
        batch: &[u8],
    ) -> Result<StampedBatch<'_>, BatchError> {
        let truncated = || BatchError::Truncated {
            needed: BATCH_HEADER_LEN,
            available: batch.len(),
        };
        let stamped_header = *batch
            .first_chunk::<BATCH_HEADER_LEN>()
            .ok_or_else(truncated)?;
        let after_header = batch.get(BATCH_HEADER_LEN..).ok_or_else(truncated)?;
        Ok(StampedBatch {
            header,
            stamped_header,
            after_header,
        })
    }
}

#[derive(Debug)]
pub(crate) struct Segment {
    base_offset: i64,
    file: Arc<SegmentFile>,
    size: u64,
    /// Last offset + 1 (the base offset while empty).
    next_offset: i64,
    offset_index: OffsetIndex,
    time_index: TimeIndex,
    bytes_since_index: u64,
    /// Largest batch max timestamp, -1 when none.
    max_timestamp: i64,
    /// Max timestamp of the first batch, -1 when none: how old the segment's oldest data
    /// is, for `max.compaction.lag.ms` (Kafka's `getFirstBatchTimestamp`).
    first_batch_timestamp: i64,
    /// Last offset of the first batch that reached `max_timestamp`, -1 when none.
    offset_of_max_timestamp: i64,
    /// What `segment.ms` is measured from.
    rolling_base_ms: i64,
    /// Time of the last append (of the open, for a segment not written since): retention's
    /// age of a segment whose records carry no timestamp, as Kafka uses the file's mtime.
    last_modified_ms: i64,
    /// In-memory indexes differ from the files.
    indexes_dirty: bool,
}

impl Segment {
    /// Creates a new empty segment (replacing stale files of the same name).
    pub(crate) fn create(
        dir: &Path,
        base_offset: i64,
        now_ms: i64,
        env: &Arc<StorageEnv>,
    ) -> Result<Self, StorageError> {
        env.remove_file(&index_path(dir, base_offset))?;
        env.remove_file(&time_index_path(dir, base_offset))?;
        let data = DataFile::open(&dir.join(log_file_name(base_offset)), true, env)?;
        data.set_len(0)?;
        Ok(Self::new(dir, base_offset, data, 0, false, now_ms))
    }

    /// Creates the log cleaner's new segment at `base_offset` under the temporary names
    /// `<base>.log.cleaned` and (once [`Segment::seal_cleaned`] writes them) `.index.cleaned`
    /// and `.timeindex.cleaned`, replacing leftovers of an abandoned run.
    pub(crate) fn create_cleaned(
        dir: &Path,
        base_offset: i64,
        now_ms: i64,
        env: &Arc<StorageEnv>,
    ) -> Result<Self, StorageError> {
        let path = segment_file_path(dir, base_offset, SegmentFileKind::Log, CLEANED_SUFFIX);
        let data = DataFile::open(&path, true, env)?;
        data.set_len(0)?;
        Ok(Self::new(dir, base_offset, data, 0, false, now_ms))
    }

    fn new(
        dir: &Path,
        base_offset: i64,
        data: DataFile,
        size: u64,
        dir_synced: bool,
        now_ms: i64,
    ) -> Self {
        Self {
            base_offset,
            file: Arc::new(SegmentFile {
                data,
                dir: dir.to_path_buf(),
                dir_synced: AtomicBool::new(dir_synced),
                deleted: AtomicBool::new(false),
            }),
            size,
            next_offset: base_offset,
            offset_index: OffsetIndex::default(),
            time_index: TimeIndex::default(),
            bytes_since_index: 0,
            max_timestamp: -1,
            first_batch_timestamp: -1,
            offset_of_max_timestamp: -1,
            rolling_base_ms: now_ms,
            last_modified_ms: now_ms,
            indexes_dirty: true,
        }
    }

    /// Opens an existing segment. With `recover` every batch is checked (CRC, offsets) and
    /// the file is truncated at the first bad one; otherwise the index files are used when
    /// they are sound and only the part after the last index entry is walked. Returns the
    /// segment and whether it was truncated.
    pub(crate) fn open(
        dir: &Path,
        base_offset: i64,
        recover: bool,
        config: &LogConfig,
        now_ms: i64,
        env: &Arc<StorageEnv>,
    ) -> Result<(Self, bool), StorageError> {
        let data = DataFile::open(&dir.join(log_file_name(base_offset)), false, env)?;
        let size = data.len()?;
        let mut seg = Self::new(dir, base_offset, data, size, true, now_ms);
        let truncated = if recover {
            seg.rebuild(true, config)?
        } else if seg.load_indexes(config)? {
            seg.indexes_dirty = false;
            seg.load_tail(config)?
        } else {
            tracing::info!(segment = %seg.file.data.path().display(), "rebuilding indexes");
            seg.rebuild(false, config)?
        };
        if seg.size > 0 {
            let first = seg.read_header(0)?;
            seg.first_batch_timestamp = first.max_timestamp;
            if (0..=now_ms).contains(&first.max_timestamp) {
                seg.rolling_base_ms = first.max_timestamp;
            }
        }
        Ok((seg, truncated))
    }

    pub(crate) fn base_offset(&self) -> i64 {
        self.base_offset
    }

    /// Calls `visit` with the header of every batch, in order (positional
    /// reads of the 61-byte headers only; records are not read).
    pub(crate) fn for_each_header(
        &self,
        mut visit: impl FnMut(&BatchHeader, u64) -> Result<(), StorageError>,
    ) -> Result<(), StorageError> {
        let mut pos = 0u64;
        while pos < self.size {
            let h = self.read_header(pos)?;
            visit(&h, pos)?;
            pos = pos.saturating_add(h.total_len() as u64);
        }
        Ok(())
    }

    pub(crate) fn next_offset(&self) -> i64 {
        self.next_offset
    }

    pub(crate) fn size(&self) -> u64 {
        self.size
    }

    pub(crate) fn max_timestamp(&self) -> i64 {
        self.max_timestamp
    }

    pub(crate) fn rolling_base_ms(&self) -> i64 {
        self.rolling_base_ms
    }

    /// Max timestamp of the first batch, -1 when the segment is empty.
    pub(crate) fn first_batch_timestamp(&self) -> i64 {
        self.first_batch_timestamp
    }

    /// Bytes of the offset index and of the time index, as their files hold them.
    pub(crate) fn index_bytes(&self) -> (u64, u64) {
        (
            (self.offset_index.len() * OFFSET_ENTRY_LEN) as u64,
            (self.time_index.len() * TIME_ENTRY_LEN) as u64,
        )
    }

    /// When the segment was last written (at open: the time it was opened).
    pub(crate) fn last_modified_ms(&self) -> i64 {
        self.last_modified_ms
    }

    /// The timestamp retention measures this segment's age by: its largest record
    /// timestamp, or when its records have none the time it was last written.
    pub(crate) fn largest_timestamp(&self) -> i64 {
        if self.max_timestamp >= 0 {
            self.max_timestamp
        } else {
            self.last_modified_ms
        }
    }

    /// Records that the segment was written at `now_ms`.
    pub(crate) fn touch(&mut self, now_ms: i64) {
        self.last_modified_ms = now_ms;
    }

    pub(crate) fn file(&self) -> &Arc<SegmentFile> {
        &self.file
    }

    pub(crate) fn dir_synced(&self) -> bool {
        self.file.dir_synced.load(Ordering::Acquire)
    }

    /// Whether either index has reached `segment.index.bytes`.
    pub(crate) fn indexes_full(&self, config: &LogConfig) -> bool {
        let cap = |entry: usize| {
            usize::try_from(config.max_index_bytes / entry as u64)
                .unwrap_or(usize::MAX)
                .max(1)
        };
        self.offset_index.len() >= cap(OFFSET_ENTRY_LEN)
            || self.time_index.len() >= cap(TIME_ENTRY_LEN)
    }

    fn relative(&self, offset: i64) -> Option<u32> {
        u32::try_from(offset.checked_sub(self.base_offset)?).ok()
    }

    /// Accounts for one batch that now sits at `position`: stats, indexes, size.
    fn index_batch(&mut self, position: u64, h: &BatchHeader, config: &LogConfig) {
        if position == 0 {
            self.first_batch_timestamp = h.max_timestamp;
        }
        if h.max_timestamp > self.max_timestamp {
            self.max_timestamp = h.max_timestamp;
            self.offset_of_max_timestamp = h.last_offset();
        }
        if self.bytes_since_index > u64::from(config.index_interval_bytes) {
            if let (Some(rel), Ok(pos)) = (self.relative(h.base_offset), u32::try_from(position)) {
                self.offset_index.push(rel, pos);
            }
            self.push_time_entry();
            self.bytes_since_index = 0;
            self.indexes_dirty = true;
        }
        let len = h.total_len() as u64;
        self.bytes_since_index = self.bytes_since_index.saturating_add(len);
        self.next_offset = h.last_offset().saturating_add(1);
        self.size = position.saturating_add(len);
    }

    fn push_time_entry(&mut self) {
        if self.max_timestamp >= 0
            && let Some(rel) = self.relative(self.offset_of_max_timestamp)
        {
            self.time_index.push(self.max_timestamp, rel);
        }
    }

    /// Writes stamped batches at the end of the file with one vectored write. On failure
    /// the file is cut back, so a failed append leaves no partial batch behind.
    pub(crate) fn append(
        &mut self,
        batches: &[StampedBatch<'_>],
        config: &LogConfig,
    ) -> Result<(), StorageError> {
        let start = self.size;
        let mut slices: Vec<IoSlice<'_>> = batches
            .iter()
            .flat_map(|b| {
                [
                    IoSlice::new(&b.stamped_header),
                    IoSlice::new(b.after_header),
                ]
            })
            .collect();
        if let Err(e) = self.file.data.write_all_vectored_at(&mut slices, start) {
            if let Err(e2) = self.file.data.set_len(start) {
                tracing::error!(error = %e2, "cannot cut back a failed append");
            }
            return Err(e.into());
        }
        let mut position = start;
        for batch in batches {
            self.index_batch(position, &batch.header, config);
            position = self.size;
        }
        Ok(())
    }

    /// Reads and parses the batch header at `position`, which must lie within the segment.
    fn read_header(&self, position: u64) -> Result<BatchHeader, StorageError> {
        let corrupt = |what: &str| {
            StorageError::Corrupt(format!(
                "{} at position {position}: {what}",
                self.file.data.path().display()
            ))
        };
        if position.saturating_add(BATCH_HEADER_LEN as u64) > self.size {
            return Err(corrupt("batch header beyond the end of the segment"));
        }
        let mut buf = [0u8; BATCH_HEADER_LEN];
        self.file.data.read_exact_at(&mut buf, position)?;
        let h = BatchHeader::parse(&buf).map_err(|e| corrupt(&e.to_string()))?;
        if position.saturating_add(h.total_len() as u64) > self.size {
            return Err(corrupt("batch extends beyond the end of the segment"));
        }
        Ok(h)
    }

    /// Position and header of the first batch whose last offset is ≥ `offset`.
    pub(crate) fn locate(&self, offset: i64) -> Result<Option<(u64, BatchHeader)>, StorageError> {
        let rel = offset
            .saturating_sub(self.base_offset)
            .clamp(0, i64::from(u32::MAX));
        let mut pos = self
            .offset_index
            .lookup(u32::try_from(rel).unwrap_or(u32::MAX))
            .map_or(0, |(_, p)| u64::from(p));
        while pos < self.size {
            let h = self.read_header(pos)?;
            if h.last_offset() >= offset {
                return Ok(Some((pos, h)));
            }
            pos = pos.saturating_add(h.total_len() as u64);
        }
        Ok(None)
    }

    /// Whole batches from the one holding `offset`: at least that batch (KIP-74), then more
    /// while they fit in `max_bytes`, none whose last offset reaches `max_offset`. `None`
    /// when no batch of this segment reaches `offset`.
    pub(crate) fn read(
        &self,
        offset: i64,
        max_bytes: usize,
        max_offset: i64,
    ) -> Result<Option<Vec<u8>>, StorageError> {
        let Some((pos, first)) = self.locate(offset)? else {
            return Ok(None);
        };
        if first.last_offset() >= max_offset {
            return Ok(Some(Vec::new()));
        }
        let available = usize::try_from(self.size.saturating_sub(pos)).unwrap_or(usize::MAX);
        let want = max_bytes.min(available).max(first.total_len());
        let mut buf = self.file.data.read_vec_at(pos, want)?;
        let mut end = 0;
        for item in split_batches(&buf) {
            let Ok((h, range)) = item else { break };
            if h.last_offset() >= max_offset || (end > 0 && range.end > max_bytes) {
                break;
            }
            end = range.end;
        }
        buf.truncate(end);
        Ok(Some(buf))
    }

    /// Reads the whole batch at `position`.
    pub(crate) fn read_batch(&self, position: u64, h: &BatchHeader) -> Result<Bytes, StorageError> {
        Ok(Bytes::from(
            self.file.data.read_vec_at(position, h.total_len())?,
        ))
    }

    /// The first record at offset ≥ `min_offset` whose timestamp is ≥ `timestamp`.
    pub(crate) fn find_timestamp(
        &self,
        timestamp: i64,
        min_offset: i64,
    ) -> Result<Option<(i64, i64)>, StorageError> {
        let start = self
            .time_index
            .lookup_below(timestamp)
            .map_or(self.base_offset, |(_, rel)| {
                self.base_offset
                    .saturating_add(i64::from(rel))
                    .saturating_add(1)
            })
            .max(min_offset);
        let Some((mut pos, mut h)) = self.locate(start)? else {
            return Ok(None);
        };
        loop {
            if h.max_timestamp >= timestamp {
                let batch = self.read_batch(pos, &h)?;
                for record in decode_records(&batch, MAX_DECOMPRESSED_BYTES)? {
                    let record = record?;
                    if record.offset >= start && record.timestamp >= timestamp {
                        return Ok(Some((record.offset, record.timestamp)));
                    }
                }
            }
            pos = pos.saturating_add(h.total_len() as u64);
            if pos >= self.size {
                return Ok(None);
            }
            h = self.read_header(pos)?;
        }
    }

    /// Largest timestamp and the offset of the first record carrying it. The record is
    /// found by decoding the batch that holds it; if that fails, the batch's last offset
    /// is given instead (a batch-granular answer beats none for ListOffsets).
    pub(crate) fn max_timestamp_record(&self) -> Option<(i64, i64)> {
        if self.max_timestamp < 0 {
            return None;
        }
        let fallback = (self.max_timestamp, self.offset_of_max_timestamp);
        let exact = || -> Result<Option<(i64, i64)>, StorageError> {
            let Some((pos, h)) = self.locate(self.offset_of_max_timestamp)? else {
                return Ok(None);
            };
            let batch = self.read_batch(pos, &h)?;
            for record in decode_records(&batch, MAX_DECOMPRESSED_BYTES)? {
                let record = record?;
                if record.timestamp == self.max_timestamp {
                    return Ok(Some((record.timestamp, record.offset)));
                }
            }
            Ok(None)
        };
        match exact() {
            Ok(found) => Some(found.unwrap_or(fallback)),
            Err(e) => {
                tracing::warn!(error = %e, "cannot decode the batch holding the max timestamp");
                Some(fallback)
            }
        }
    }

    /// Loads both index files; `false` when either is missing, torn or inconsistent.
    fn load_indexes(&mut self, config: &LogConfig) -> Result<bool, StorageError> {
        let max_len = config.max_index_bytes.saturating_add(64);
        let dir = self.file.dir.clone();
        let env = self.file.data.env().clone();
        let read = |path: PathBuf| match env.read_small_file(&path, max_len) {
            Ok(bytes) => Ok(bytes),
            Err(e) if e.kind() == std::io::ErrorKind::InvalidData => Ok(None),
            Err(e) => Err(e),
        };
        let Some(offsets) = read(index_path(&dir, self.base_offset))? else {
            return Ok(false);
        };
        let Some(times) = read(time_index_path(&dir, self.base_offset))? else {
            return Ok(false);
        };
        let Some(offset_index) = OffsetIndex::decode(&offsets, self.size) else {
            return Ok(false);
        };
        // Whether the newest time entry stays below the end offset is checked once the
        // tail has been walked (load_tail).
        let Some(time_index) = TimeIndex::decode(&times, u32::MAX) else {
            return Ok(false);
        };
        self.offset_index = offset_index;
        self.time_index = time_index;
        Ok(true)
    }

    /// After loading sound indexes: checks the last offset index entry against the log and
    /// walks the batch headers after it to learn the end offset and the newest timestamps.
    fn load_tail(&mut self, config: &LogConfig) -> Result<bool, StorageError> {
        let (start, expected) = match self.offset_index.last() {
            Some((rel, pos)) => (
                u64::from(pos),
                self.base_offset.saturating_add(i64::from(rel)),
            ),
            None => (0, self.base_offset),
        };
        let entry_ok = self.offset_index.len() == 0
            || self
                .read_header(start)
                .is_ok_and(|h| h.base_offset == expected);
        if !entry_ok {
            tracing::info!(
                segment = %self.file.data.path().display(),
                "offset index does not match the log, rebuilding"
            );
            return self.rebuild(false, config);
        }
        if let Some((ts, rel)) = self.time_index.last() {
            self.max_timestamp = ts;
            self.offset_of_max_timestamp = self.base_offset.saturating_add(i64::from(rel));
        }
        self.next_offset = expected;
        self.bytes_since_index = 0;
        let truncated = self.scan(start, false, config)?;
        if self.offset_of_max_timestamp >= self.next_offset {
            tracing::info!(
                segment = %self.file.data.path().display(),
                "time index refers beyond the log, rebuilding"
            );
            return self.rebuild(false, config);
        }
        Ok(truncated)
    }

    /// Forgets all derived state and scans the whole file; with `verify` each batch's CRC
    /// is checked. Returns whether the file was truncated.
    pub(crate) fn rebuild(
        &mut self,
        verify: bool,
        config: &LogConfig,
    ) -> Result<bool, StorageError> {
        self.offset_index.clear();
        self.time_index.clear();
        self.indexes_dirty = true;
        self.size = 0;
        self.next_offset = self.base_offset;
        self.bytes_since_index = 0;
        self.max_timestamp = -1;
        self.first_batch_timestamp = -1;
        self.offset_of_max_timestamp = -1;
        self.scan(0, verify, config)
    }

    /// Whether a batch may follow what is already in the segment: offsets go forward and
    /// fit the index's relative offsets.
    fn accepts(&self, h: &BatchHeader) -> bool {
        h.base_offset >= self.next_offset
            && h.last_offset_delta >= 0
            && self.relative(h.last_offset()).is_some()
    }

    /// Walks batches from `from` (where the state says the segment currently ends),
    /// accounting for each; at the first torn, corrupt or out-of-order batch the file is
    /// truncated there. Returns whether it was.
    fn scan(&mut self, from: u64, verify: bool, config: &LogConfig) -> Result<bool, StorageError> {
        let file_size = self.file.data.len()?;
        let mut pos = from;
        self.size = from;
        while pos < file_size {
            let want =
                usize::try_from((file_size - pos).min(SCAN_CHUNK as u64)).unwrap_or(SCAN_CHUNK);
            let chunk = self.file.data.read_vec_at(pos, want)?;
            let mut consumed = 0usize;
            let mut bad = false;
            for item in split_batches(&chunk) {
                match item {
                    Ok((h, range)) => {
                        let intact = !verify
                            || chunk
                                .get(range.clone())
                                .is_some_and(|b| check_integrity(b).is_ok());
                        if !intact || !self.accepts(&h) {
                            bad = true;
                            break;
                        }
                        self.index_batch(pos.saturating_add(range.start as u64), &h, config);
                        consumed = range.end;
                    }
                    // The chunk ends inside a batch: continue from there (or read it alone).
                    Err(BatchError::Truncated { .. }) => break,
                    Err(_) => {
                        bad = true;
                        break;
                    }
                }
            }
            if !bad && consumed == 0 {
                match self.scan_large(pos, file_size, verify)? {
                    Some(h) => {
                        self.index_batch(pos, &h, config);
                        consumed = h.total_len();
                    }
                    None => bad = true,
                }
            }
            pos = pos.saturating_add(consumed as u64);
            if bad {
                tracing::warn!(
                    segment = %self.file.data.path().display(),
                    position = pos,
                    dropped_bytes = file_size - pos,
                    "truncating the log at a torn or corrupt batch"
                );
                self.file.data.set_len(pos)?;
                self.size = pos;
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Checks a batch that did not fit in one scan chunk (or is torn at the end of the file)
    /// without holding it in memory: the CRC is computed chunk by chunk.
    fn scan_large(
        &self,
        pos: u64,
        file_size: u64,
        verify: bool,
    ) -> Result<Option<BatchHeader>, StorageError> {
        if pos.saturating_add(BATCH_HEADER_LEN as u64) > file_size {
            return Ok(None);
        }
        let mut buf = [0u8; BATCH_HEADER_LEN];
        self.file.data.read_exact_at(&mut buf, pos)?;
        let Ok(h) = BatchHeader::parse(&buf) else {
            return Ok(None);
        };
        let end = pos.saturating_add(h.total_len() as u64);
        if end > file_size || !self.accepts(&h) {
            return Ok(None);
        }
        if verify {
            let mut crc = 0u32;
            let mut at = pos.saturating_add(field::ATTRIBUTES as u64);
            while at < end {
                let n = usize::try_from((end - at).min(SCAN_CHUNK as u64)).unwrap_or(SCAN_CHUNK);
                let part = self.file.data.read_vec_at(at, n)?;
                crc = crc32c::crc32c_append(crc, &part);
                at = at.saturating_add(n as u64);
            }
            if crc != h.crc {
                return Ok(None);
            }
        }
        Ok(Some(h))
    }

    /// Removes the batch holding `offset` and every later one (Kafka's
    /// `LogSegment.truncateTo`: a batch is never split, so the segment may end below
    /// `offset`). The indexes lose their entries past the cut and the end is walked again
    /// from the last one left; the index files are removed, as the segment is active again.
    /// Returns whether anything was removed.
    pub(crate) fn truncate_to(
        &mut self,
        offset: i64,
        config: &LogConfig,
    ) -> Result<bool, StorageError> {
        let Some((position, first_removed)) = self.locate(offset)? else {
            return Ok(false);
        };
        self.file.data.set_len(position)?;
        self.offset_index.truncate_to_position(position);
        if let Some(rel) = self.relative(first_removed.base_offset) {
            self.time_index.truncate_to_offset(rel);
        }
        self.max_timestamp = -1;
        self.offset_of_max_timestamp = -1;
        let env = self.file.data.env();
        env.remove_file(&index_path(&self.file.dir, self.base_offset))?;
        env.remove_file(&time_index_path(&self.file.dir, self.base_offset))?;
        self.load_tail(config)?;
        self.indexes_dirty = true;
        Ok(true)
    }

    /// Called when the segment stops being the active one (roll, close): records the final
    /// max timestamp in the time index and writes both index files.
    pub(crate) fn seal(&mut self) -> Result<(), StorageError> {
        let before = self.time_index.len();
        self.push_time_entry();
        if self.time_index.len() != before {
            self.indexes_dirty = true;
        }
        self.write_indexes()
    }

    /// Writes the index files if they changed. Not synced: a torn index is detected by its
    /// checksum and rebuilt, so indexes never need to be durable.
    pub(crate) fn write_indexes(&mut self) -> Result<(), StorageError> {
        if !self.indexes_dirty {
            return Ok(());
        }
        self.write_indexes_with_suffix("")?;
        self.indexes_dirty = false;
        Ok(())
    }

    /// Finishes a segment made by [`Segment::create_cleaned`]: records the final max
    /// timestamp, writes both indexes under their `.cleaned` names and syncs the data, so
    /// the segment can be swapped in (see [`crate::cleaner`]).
    pub(crate) fn seal_cleaned(&mut self) -> Result<(), StorageError> {
        self.push_time_entry();
        self.write_indexes_with_suffix(CLEANED_SUFFIX)?;
        self.file.data.sync_data()?;
        Ok(())
    }

    fn write_indexes_with_suffix(&self, suffix: &str) -> Result<(), StorageError> {
        let dir = &self.file.dir;
        let env = self.file.data.env();
        let base = self.base_offset;
        env.write_file_atomic(
            &segment_file_path(dir, base, SegmentFileKind::Index, suffix),
            &self.offset_index.encode(),
            false,
        )?;
        env.write_file_atomic(
            &segment_file_path(dir, base, SegmentFileKind::TimeIndex, suffix),
            &self.time_index.encode(),
            false,
        )?;
        Ok(())
    }

    /// Removes the segment's files.
    pub(crate) fn delete(self) -> Result<(), StorageError> {
        self.file.deleted.store(true, Ordering::Release);
        let dir = &self.file.dir;
        let env = self.file.data.env();
        env.remove_file(&index_path(dir, self.base_offset))?;
        env.remove_file(&time_index_path(dir, self.base_offset))?;
        env.remove_file(self.file.data.path())?;
        Ok(())
    }
}

/// Removes the files of a segment that was never opened (e.g. after a truncation in
/// recovery made it unreachable).
pub(crate) fn delete_files(
    env: &StorageEnv,
    dir: &Path,
    base_offset: i64,
) -> Result<(), StorageError> {
    env.remove_file(&index_path(dir, base_offset))?;
    env.remove_file(&time_index_path(dir, base_offset))?;
    env.remove_file(&dir.join(log_file_name(base_offset)))?;
    Ok(())
}

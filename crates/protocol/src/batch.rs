//! Record batch (magic v2) format: header view, validation and in-place stamping.
//!
//! A produced batch is stored exactly as it arrived (docs/ARCHITECTURE.md §1), so this module works on
//! the raw bytes: it reads the fixed 61-byte header, checks what the produce path must check
//! without decoding records, and rewrites the few fields the broker owns (base offset,
//! partition leader epoch, LogAppendTime) in place. Decoding the records themselves lives in
//! [`crate::records`].
//!
//! Layout (big-endian):
//!
//! ```text
//! baseOffset i64 | batchLength i32 | partitionLeaderEpoch i32 | magic i8 | crc u32 |
//! attributes i16 | lastOffsetDelta i32 | baseTimestamp i64 | maxTimestamp i64 |
//! producerId i64 | producerEpoch i16 | baseSequence i32 | recordsCount i32 | records…
//! ```
//!
//! The CRC-32C covers everything from `attributes` to the end, which is why the base offset
//! and leader epoch can be stamped without recomputing it.

use std::ops::Range;

use thiserror::Error;

/// Size of the fixed batch header, up to the first record.
pub const BATCH_HEADER_LEN: usize = 61;
/// Bytes before the part counted by `batchLength` (baseOffset + batchLength itself).
pub const LOG_OVERHEAD: usize = 12;
/// The only record format this module understands.
pub const MAGIC_V2: i8 = 2;
/// Smallest possible encoded record: length, attributes, timestampDelta, offsetDelta,
/// keyLength, valueLength and headersCount, one byte each.
pub const MIN_RECORD_LEN: usize = 7;
/// Upper bound on `recordsCount` for compressed batches, whose byte size says nothing about
/// how many records they hold. At [`MIN_RECORD_LEN`] bytes per record this many records
/// already need 112 MiB once decompressed, more than any sane `max.message.bytes`, so a
/// larger count can only be an attack on whoever pre-sizes a buffer from it.
pub const MAX_COMPRESSED_RECORDS_COUNT: i32 = 1 << 24;
/// Kafka's "no timestamp" / "no producer" sentinel.
pub const NO_VALUE: i64 = -1;

/// Byte positions of the header fields.
pub mod field {
    pub const BASE_OFFSET: usize = 0;
    pub const BATCH_LENGTH: usize = 8;
    pub const PARTITION_LEADER_EPOCH: usize = 12;
    pub const MAGIC: usize = 16;
    pub const CRC: usize = 17;
    pub const ATTRIBUTES: usize = 21;
    pub const LAST_OFFSET_DELTA: usize = 23;
    pub const BASE_TIMESTAMP: usize = 27;
    pub const MAX_TIMESTAMP: usize = 35;
    pub const PRODUCER_ID: usize = 43;
    pub const PRODUCER_EPOCH: usize = 51;
    pub const BASE_SEQUENCE: usize = 53;
    pub const RECORDS_COUNT: usize = 57;
    pub const RECORDS: usize = 61;
}

const COMPRESSION_MASK: i16 = 0x07;
const TIMESTAMP_TYPE_BIT: i16 = 0x08;
const TRANSACTIONAL_BIT: i16 = 0x10;
const CONTROL_BIT: i16 = 0x20;
/// KIP-534: the log cleaner set a delete horizon on the batch, held in its base timestamp.
pub(crate) const DELETE_HORIZON_BIT: i16 = 0x40;

/// Why a buffer is not an acceptable v2 record batch.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum BatchError {
    #[error("record batch truncated: need {needed} bytes, have {available}")]
    Truncated { needed: usize, available: usize },
    #[error("unsupported record batch magic {0} (only v2 is handled here)")]
    UnsupportedMagic(i8),
    #[error("invalid batch length {0}")]
    InvalidBatchLength(i32),
    #[error("batch length says {expected} bytes but the buffer holds {actual}")]
    LengthMismatch { expected: usize, actual: usize },
    #[error("CRC mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    CrcMismatch { stored: u32, computed: u32 },
    #[error("unknown compression codec {0}")]
    UnknownCompression(u8),
    #[error("invalid records count {0}")]
    InvalidRecordsCount(i32),
    #[error("records count {count} exceeds the bound {max}")]
    TooManyRecords { count: i32, max: i64 },
    #[error("invalid producer fields: {0}")]
    InvalidProducerState(&'static str),
    #[error("last offset delta {last_offset_delta} does not match records count {records_count}")]
    OffsetDeltaMismatch {
        last_offset_delta: i32,
        records_count: i32,
    },
}

/// Compression codec from attribute bits 0-2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Compression {
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

impl Compression {
    /// Decodes the codec id used in the attributes and in Kafka's `compression.type` ids.
    pub fn from_id(id: u8) -> Result<Self, BatchError> {
        match id {
            0 => Ok(Self::None),
            1 => Ok(Self::Gzip),
            2 => Ok(Self::Snappy),
            3 => Ok(Self::Lz4),
            4 => Ok(Self::Zstd),
            other => Err(BatchError::UnknownCompression(other)),
        }
    }

    /// The codec id as stored in attribute bits 0-2.
    pub fn id(self) -> u8 {
        match self {
            Self::None => 0,
            Self::Gzip => 1,
            Self::Snappy => 2,
            Self::Lz4 => 3,
            Self::Zstd => 4,
        }
    }
}

/// Attribute bit 3.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TimestampType {
    CreateTime,
    LogAppendTime,
}

/// The decoded 61-byte header of a v2 batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    pub base_offset: i64,
    pub batch_length: i32,
    pub partition_leader_epoch: i32,
    pub magic: i8,
    pub crc: u32,
    pub attributes: i16,
    pub last_offset_delta: i32,
    pub base_timestamp: i64,
    pub max_timestamp: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub records_count: i32,
}

impl BatchHeader {
    /// Reads the header at the start of `buf` (which may hold more than this batch).
    ///
    /// Checks only what is needed to walk a buffer of batches safely: the magic byte (read
    /// first, so a legacy v0/v1 message is reported as [`BatchError::UnsupportedMagic`]
    /// rather than as truncated), that the header is present, that `batchLength` covers at
    /// least the header, and that the compression codec is known. CRC and counts are left
    /// to [`validate`].
    pub fn parse(buf: &[u8]) -> Result<Self, BatchError> {
        let magic = read_i8(buf, field::MAGIC).ok_or(BatchError::Truncated {
            needed: BATCH_HEADER_LEN,
            available: buf.len(),
        })?;
        if magic != MAGIC_V2 {
            return Err(BatchError::UnsupportedMagic(magic));
        }
        let header: &[u8; BATCH_HEADER_LEN] = buf.first_chunk().ok_or(BatchError::Truncated {
            needed: BATCH_HEADER_LEN,
            available: buf.len(),
        })?;
        let h = Self::from_array(header);
        let min_length = (BATCH_HEADER_LEN - LOG_OVERHEAD) as i32;
        if h.batch_length < min_length {
            return Err(BatchError::InvalidBatchLength(h.batch_length));
        }
        Compression::from_id((h.attributes & COMPRESSION_MASK) as u8)?;
        Ok(h)
    }

    fn from_array(b: &[u8; BATCH_HEADER_LEN]) -> Self {
        // The array is exactly header-sized, so every read below is in bounds; the
        // fallbacks only exist to avoid unreachable panics.
        let s: &[u8] = b;
        Self {
            base_offset: read_i64(s, field::BASE_OFFSET).unwrap_or_default(),
            batch_length: read_i32(s, field::BATCH_LENGTH).unwrap_or_default(),
            partition_leader_epoch: read_i32(s, field::PARTITION_LEADER_EPOCH).unwrap_or_default(),
            magic: read_i8(s, field::MAGIC).unwrap_or_default(),
            crc: read_u32(s, field::CRC).unwrap_or_default(),
            attributes: read_i16(s, field::ATTRIBUTES).unwrap_or_default(),
            last_offset_delta: read_i32(s, field::LAST_OFFSET_DELTA).unwrap_or_default(),
            base_timestamp: read_i64(s, field::BASE_TIMESTAMP).unwrap_or_default(),
            max_timestamp: read_i64(s, field::MAX_TIMESTAMP).unwrap_or_default(),
            producer_id: read_i64(s, field::PRODUCER_ID).unwrap_or_default(),
            producer_epoch: read_i16(s, field::PRODUCER_EPOCH).unwrap_or_default(),
            base_sequence: read_i32(s, field::BASE_SEQUENCE).unwrap_or_default(),
            records_count: read_i32(s, field::RECORDS_COUNT).unwrap_or_default(),
        }
    }

    /// Whole size of the batch in bytes, including baseOffset and batchLength.
    pub fn total_len(&self) -> usize {
        usize::try_from(self.batch_length)
            .unwrap_or(0)
            .saturating_add(LOG_OVERHEAD)
    }

    /// Offset of the last record (saturating, since an unstamped batch carries whatever
    /// base offset the client sent).
    pub fn last_offset(&self) -> i64 {
        self.base_offset
            .saturating_add(i64::from(self.last_offset_delta))
    }

    /// The codec of the records section; [`BatchHeader::parse`] already rejected unknown
    /// ids, so this only fails for hand-built headers.
    pub fn compression(&self) -> Result<Compression, BatchError> {
        Compression::from_id((self.attributes & COMPRESSION_MASK) as u8)
    }

    pub fn timestamp_type(&self) -> TimestampType {
        if self.attributes & TIMESTAMP_TYPE_BIT != 0 {
            TimestampType::LogAppendTime
        } else {
            TimestampType::CreateTime
        }
    }

    pub fn is_transactional(&self) -> bool {
        self.attributes & TRANSACTIONAL_BIT != 0
    }

    pub fn is_control(&self) -> bool {
        self.attributes & CONTROL_BIT != 0
    }

    /// Whether the batch comes from an idempotent or transactional producer.
    pub fn has_producer_id(&self) -> bool {
        self.producer_id >= 0
    }

    /// The delete horizon the log cleaner stamped on the batch (KIP-534): attribute bit 6
    /// says the base timestamp holds the time after which its tombstones and transaction
    /// markers may be removed. Record timestamps stay correct: their deltas are relative to
    /// whatever the base timestamp is.
    pub fn delete_horizon_ms(&self) -> Option<i64> {
        (self.attributes & DELETE_HORIZON_BIT != 0).then_some(self.base_timestamp)
    }

    /// The offset after the batch.
    pub fn next_offset(&self) -> i64 {
        self.last_offset().saturating_add(1)
    }
}

/// The batch the log cleaner leaves when it removes every record of a batch it must keep
/// (Kafka's `DefaultRecordBatch.writeEmptyHeader`): the same base and last offset, producer
/// id, epoch and base sequence, leader epoch, timestamp type, transactional and control
/// flags, and max timestamp; no records, no compression, no base timestamp. It keeps a
/// producer's last sequence and epoch, and the offsets the batch spanned, in the log.
pub fn empty_batch(h: &BatchHeader) -> [u8; BATCH_HEADER_LEN] {
    let keep = TIMESTAMP_TYPE_BIT | TRANSACTIONAL_BIT | CONTROL_BIT;
    let batch_length = (BATCH_HEADER_LEN - LOG_OVERHEAD) as i32;
    let mut out = [0u8; BATCH_HEADER_LEN];
    let fields: [(usize, &[u8]); 12] = [
        (field::BASE_OFFSET, &h.base_offset.to_be_bytes()),
        (field::BATCH_LENGTH, &batch_length.to_be_bytes()),
        (
            field::PARTITION_LEADER_EPOCH,
            &h.partition_leader_epoch.to_be_bytes(),
        ),
        (field::MAGIC, &MAGIC_V2.to_be_bytes()),
        (field::ATTRIBUTES, &(h.attributes & keep).to_be_bytes()),
        (field::LAST_OFFSET_DELTA, &h.last_offset_delta.to_be_bytes()),
        (field::BASE_TIMESTAMP, &NO_VALUE.to_be_bytes()),
        (field::MAX_TIMESTAMP, &h.max_timestamp.to_be_bytes()),
        (field::PRODUCER_ID, &h.producer_id.to_be_bytes()),
        (field::PRODUCER_EPOCH, &h.producer_epoch.to_be_bytes()),
        (field::BASE_SEQUENCE, &h.base_sequence.to_be_bytes()),
        (field::RECORDS_COUNT, &0i32.to_be_bytes()),
    ];
    for (at, bytes) in fields {
        if let Some(dst) = out.get_mut(at..at + bytes.len()) {
            dst.copy_from_slice(bytes);
        }
    }
    let crc = out.get(field::ATTRIBUTES..).map_or(0, crc32c::crc32c);
    if let Some(dst) = out.get_mut(field::CRC..field::CRC + 4) {
        dst.copy_from_slice(&crc.to_be_bytes());
    }
    out
}

/// Validates one complete batch as received from a producer (the produce hot path: header
/// fields and CRC only, no per-record work).
///
/// `buf` must hold exactly one batch.
pub fn validate(buf: &[u8]) -> Result<BatchHeader, BatchError> {
    let h = check_integrity(buf)?;
    if h.records_count < 1 {
        // Kafka rejects empty batches on produce.
        return Err(BatchError::InvalidRecordsCount(h.records_count));
    }
    let max = match h.compression()? {
        Compression::None => (buf.len().saturating_sub(BATCH_HEADER_LEN) / MIN_RECORD_LEN) as i64,
        _ => i64::from(MAX_COMPRESSED_RECORDS_COUNT),
    };
    if i64::from(h.records_count) > max {
        return Err(BatchError::TooManyRecords {
            count: h.records_count,
            max,
        });
    }
    if i64::from(h.last_offset_delta) != i64::from(h.records_count) - 1 {
        return Err(BatchError::OffsetDeltaMismatch {
            last_offset_delta: h.last_offset_delta,
            records_count: h.records_count,
        });
    }
    // The same producer-field checks Kafka makes before anything reaches producer state.
    if h.is_transactional() && !h.has_producer_id() {
        return Err(BatchError::InvalidProducerState(
            "transactional batch without a producer id",
        ));
    }
    if h.has_producer_id() && h.base_sequence < 0 {
        return Err(BatchError::InvalidProducerState(
            "idempotent batch without a base sequence",
        ));
    }
    Ok(h)
}

/// Checks that `buf` is exactly one well-formed v2 batch with a correct CRC, without the
/// produce-only rules of [`validate`]. This is what a stored batch must satisfy (log
/// recovery), since compaction may later leave batches whose counts no longer line up.
pub fn check_integrity(buf: &[u8]) -> Result<BatchHeader, BatchError> {
    let h = BatchHeader::parse(buf)?;
    if buf.len() != h.total_len() {
        return Err(BatchError::LengthMismatch {
            expected: h.total_len(),
            actual: buf.len(),
        });
    }
    let computed = compute_crc(buf)?;
    if computed != h.crc {
        return Err(BatchError::CrcMismatch {
            stored: h.crc,
            computed,
        });
    }
    Ok(h)
}

/// CRC-32C over attributes..end of the batch at the start of `buf` (as long as its
/// `batchLength` says).
pub fn compute_crc(buf: &[u8]) -> Result<u32, BatchError> {
    let total = batch_len_at(buf)?;
    let covered = buf
        .get(field::ATTRIBUTES..total)
        .ok_or(BatchError::Truncated {
            needed: total,
            available: buf.len(),
        })?;
    Ok(crc32c::crc32c(covered))
}

/// Total size of the batch starting at `buf` from its batchLength field alone.
fn batch_len_at(buf: &[u8]) -> Result<usize, BatchError> {
    let len = read_i32(buf, field::BATCH_LENGTH).ok_or(BatchError::Truncated {
        needed: BATCH_HEADER_LEN,
        available: buf.len(),
    })?;
    if len < (BATCH_HEADER_LEN - LOG_OVERHEAD) as i32 {
        return Err(BatchError::InvalidBatchLength(len));
    }
    let total = usize::try_from(len)
        .map_err(|_| BatchError::InvalidBatchLength(len))?
        .saturating_add(LOG_OVERHEAD);
    if buf.len() < total {
        return Err(BatchError::Truncated {
            needed: total,
            available: buf.len(),
        });
    }
    Ok(total)
}

/// Iterates the complete batches in a buffer holding several back to back.
pub fn split_batches(buf: &[u8]) -> BatchIter<'_> {
    BatchIter {
        buf,
        pos: 0,
        failed: false,
    }
}

/// Iterator over `(header, byte range)` of each batch in a buffer; see [`split_batches`].
///
/// It only parses headers (no CRC), and stops after the first error, e.g. a truncated tail.
/// [`BatchIter::position`] then tells where the last complete batch ended, which is where
/// log recovery truncates.
#[derive(Debug, Clone)]
pub struct BatchIter<'a> {
    buf: &'a [u8],
    pos: usize,
    failed: bool,
}

impl BatchIter<'_> {
    /// Byte position just after the last batch yielded so far.
    pub fn position(&self) -> usize {
        self.pos
    }
}

impl Iterator for BatchIter<'_> {
    type Item = Result<(BatchHeader, Range<usize>), BatchError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        let rest = self.buf.get(self.pos..).filter(|r| !r.is_empty())?;
        let result = BatchHeader::parse(rest).and_then(|h| {
            let total = h.total_len();
            if rest.len() < total {
                Err(BatchError::Truncated {
                    needed: total,
                    available: rest.len(),
                })
            } else {
                Ok((h, total))
            }
        });
        match result {
            Ok((h, total)) => {
                let start = self.pos;
                self.pos = start.saturating_add(total);
                Some(Ok((h, start..self.pos)))
            }
            Err(e) => {
                self.failed = true;
                Some(Err(e))
            }
        }
    }
}

/// Stamps the base offset (outside the CRC, so the CRC stays valid).
pub fn set_base_offset(buf: &mut [u8], base_offset: i64) -> Result<(), BatchError> {
    ensure_header(buf)?;
    write_bytes(buf, field::BASE_OFFSET, base_offset.to_be_bytes())
}

/// Stamps the partition leader epoch (outside the CRC, so the CRC stays valid).
pub fn set_partition_leader_epoch(buf: &mut [u8], epoch: i32) -> Result<(), BatchError> {
    ensure_header(buf)?;
    write_bytes(buf, field::PARTITION_LEADER_EPOCH, epoch.to_be_bytes())
}

/// Marks the batch as LogAppendTime with `timestamp` as its max timestamp and recomputes
/// the CRC, as Kafka does for topics with `message.timestamp.type=LogAppendTime` (record
/// timestamps are then read as the batch max timestamp).
pub fn set_log_append_time(buf: &mut [u8], timestamp: i64) -> Result<(), BatchError> {
    batch_len_at(buf)?;
    mark_log_append_time(buf, timestamp)?;
    recompute_crc(buf)
}

/// Sets the LogAppendTime attribute bit and the max timestamp in a batch header; the
/// caller recomputes the CRC, which covers both.
fn mark_log_append_time(header: &mut [u8], timestamp: i64) -> Result<(), BatchError> {
    let attrs = read_i16(header, field::ATTRIBUTES).ok_or(BatchError::Truncated {
        needed: BATCH_HEADER_LEN,
        available: header.len(),
    })?;
    write_bytes(
        header,
        field::ATTRIBUTES,
        (attrs | TIMESTAMP_TYPE_BIT).to_be_bytes(),
    )?;
    write_bytes(header, field::MAX_TIMESTAMP, timestamp.to_be_bytes())
}

/// The records section (everything after the header) of the batch of `total` bytes at the
/// start of `buf`.
pub fn records_section(buf: &[u8], total: usize) -> Result<&[u8], BatchError> {
    buf.get(BATCH_HEADER_LEN..total)
        .ok_or(BatchError::Truncated {
            needed: total,
            available: buf.len(),
        })
}

/// The header `batch` is stored with: a copy of its first [`BATCH_HEADER_LEN`] bytes with
/// the base offset and partition leader epoch stamped and, when `log_append_time` is
/// Some, the LogAppendTime marking and a CRC over the new header and the batch's
/// unchanged records. The log writes this header followed by the rest of the client's
/// batch in one vectored write, so the produce path never copies a batch to stamp it.
pub fn stamped_header(
    batch: &[u8],
    base_offset: i64,
    leader_epoch: i32,
    log_append_time: Option<i64>,
) -> Result<[u8; BATCH_HEADER_LEN], BatchError> {
    let total = batch_len_at(batch)?;
    let mut header = *batch
        .first_chunk::<BATCH_HEADER_LEN>()
        .ok_or(BatchError::Truncated {
            needed: BATCH_HEADER_LEN,
            available: batch.len(),
        })?;
    set_base_offset(&mut header, base_offset)?;
    set_partition_leader_epoch(&mut header, leader_epoch)?;
    if let Some(timestamp) = log_append_time {
        mark_log_append_time(&mut header, timestamp)?;
        let records = records_section(batch, total)?;
        let covered = header.get(field::ATTRIBUTES..).unwrap_or_default();
        let crc = crc32c::crc32c_append(crc32c::crc32c(covered), records);
        write_bytes(&mut header, field::CRC, crc.to_be_bytes())?;
    }
    Ok(header)
}

/// A batch with the header of the batch at the start of `batch` around `records`, a records
/// section encoded with `codec`: the batch length, the attributes' codec bits and the CRC
/// are rewritten, every other header field is kept.
pub(crate) fn with_records_section(
    batch: &[u8],
    codec: Compression,
    records: &[u8],
) -> Result<Vec<u8>, BatchError> {
    let header = batch.get(..BATCH_HEADER_LEN).ok_or(BatchError::Truncated {
        needed: BATCH_HEADER_LEN,
        available: batch.len(),
    })?;
    let attributes = read_i16(header, field::ATTRIBUTES).unwrap_or_default();
    let mut out = Vec::with_capacity(BATCH_HEADER_LEN.saturating_add(records.len()));
    out.extend_from_slice(header);
    out.extend_from_slice(records);
    let batch_length = i32::try_from(out.len() - LOG_OVERHEAD)
        .map_err(|_| BatchError::InvalidBatchLength(i32::MAX))?;
    write_bytes(&mut out, field::BATCH_LENGTH, batch_length.to_be_bytes())?;
    let attributes = (attributes & !COMPRESSION_MASK) | i16::from(codec.id());
    write_bytes(&mut out, field::ATTRIBUTES, attributes.to_be_bytes())?;
    recompute_crc(&mut out)?;
    Ok(out)
}

/// Recomputes and stores the CRC of the batch at the start of `buf` after its covered bytes
/// were changed.
pub fn recompute_crc(buf: &mut [u8]) -> Result<(), BatchError> {
    let crc = compute_crc(buf)?;
    write_bytes(buf, field::CRC, crc.to_be_bytes())
}

/// Stamping only makes sense on something that at least has a whole header.
fn ensure_header(buf: &[u8]) -> Result<(), BatchError> {
    if buf.len() < BATCH_HEADER_LEN {
        return Err(BatchError::Truncated {
            needed: BATCH_HEADER_LEN,
            available: buf.len(),
        });
    }
    Ok(())
}

fn read_array<const N: usize>(buf: &[u8], at: usize) -> Option<[u8; N]> {
    buf.get(at..)?.first_chunk::<N>().copied()
}

fn read_i8(buf: &[u8], at: usize) -> Option<i8> {
    read_array::<1>(buf, at).map(i8::from_be_bytes)
}

fn read_i16(buf: &[u8], at: usize) -> Option<i16> {
    read_array::<2>(buf, at).map(i16::from_be_bytes)
}

fn read_i32(buf: &[u8], at: usize) -> Option<i32> {
    read_array::<4>(buf, at).map(i32::from_be_bytes)
}

fn read_u32(buf: &[u8], at: usize) -> Option<u32> {
    read_array::<4>(buf, at).map(u32::from_be_bytes)
}

fn read_i64(buf: &[u8], at: usize) -> Option<i64> {
    read_array::<8>(buf, at).map(i64::from_be_bytes)
}

pub(crate) fn write_bytes<const N: usize>(
    buf: &mut [u8],
    at: usize,
    bytes: [u8; N],
) -> Result<(), BatchError> {
    let available = buf.len();
    let dst = buf
        .get_mut(at..)
        .and_then(|s| s.first_chunk_mut::<N>())
        .ok_or(BatchError::Truncated {
            needed: at.saturating_add(N),
            available,
        })?;
    *dst = bytes;
    Ok(())
}

/// Builds uncompressed (or, with [`RecordBatchBuilder::build_compressed`], compressed) v2
/// batches. Used by tests across the workspace and by the CLI producer, so that every
/// batch they send is made the same way a Kafka client makes it.
///
/// ```
/// use sluice_protocol::batch::{RecordBatchBuilder, validate};
/// let batch = RecordBatchBuilder::new()
///     .record(1_000, Some(b"key"), Some(b"value"), &[("h", Some(b"v"))])
///     .build();
/// assert_eq!(validate(&batch).unwrap().records_count, 1);
/// ```
#[derive(Debug, Clone)]
pub struct RecordBatchBuilder {
    base_offset: i64,
    partition_leader_epoch: i32,
    producer_id: i64,
    producer_epoch: i16,
    base_sequence: i32,
    attributes: i16,
    base_timestamp: Option<i64>,
    max_timestamp: Option<i64>,
    count: i32,
    records: Vec<u8>,
}

impl Default for RecordBatchBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl RecordBatchBuilder {
    pub fn new() -> Self {
        Self {
            base_offset: 0,
            partition_leader_epoch: -1,
            producer_id: NO_VALUE,
            producer_epoch: -1,
            base_sequence: -1,
            attributes: 0,
            base_timestamp: None,
            max_timestamp: None,
            count: 0,
            records: Vec::new(),
        }
    }

    pub fn base_offset(mut self, base_offset: i64) -> Self {
        self.base_offset = base_offset;
        self
    }

    pub fn partition_leader_epoch(mut self, epoch: i32) -> Self {
        self.partition_leader_epoch = epoch;
        self
    }

    /// Producer id, epoch and base sequence of an idempotent producer (all -1 by default).
    pub fn producer(mut self, producer_id: i64, producer_epoch: i16, base_sequence: i32) -> Self {
        self.producer_id = producer_id;
        self.producer_epoch = producer_epoch;
        self.base_sequence = base_sequence;
        self
    }

    pub fn transactional(mut self, on: bool) -> Self {
        self.set_bit(TRANSACTIONAL_BIT, on);
        self
    }

    pub fn control(mut self, on: bool) -> Self {
        self.set_bit(CONTROL_BIT, on);
        self
    }

    /// Marks the batch as LogAppendTime (the broker normally does this, not clients).
    pub fn log_append_time(mut self, on: bool) -> Self {
        self.set_bit(TIMESTAMP_TYPE_BIT, on);
        self
    }

    fn set_bit(&mut self, bit: i16, on: bool) {
        if on {
            self.attributes |= bit;
        } else {
            self.attributes &= !bit;
        }
    }

    /// Adds a record (by value, for chaining).
    pub fn record(
        mut self,
        timestamp: i64,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: &[(&str, Option<&[u8]>)],
    ) -> Self {
        self.push(timestamp, key, value, headers);
        self
    }

    /// Adds a record. Timestamp deltas are relative to the first record's timestamp, and
    /// offset deltas count up from 0, as Kafka's producer writes them.
    pub fn push(
        &mut self,
        timestamp: i64,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: &[(&str, Option<&[u8]>)],
    ) -> &mut Self {
        let base = *self.base_timestamp.get_or_insert(timestamp);
        self.max_timestamp = Some(self.max_timestamp.map_or(timestamp, |m| m.max(timestamp)));
        let mut body = Vec::with_capacity(16);
        body.push(0); // record attributes: unused
        put_varlong(&mut body, timestamp.wrapping_sub(base));
        put_varlong(&mut body, i64::from(self.count));
        put_bytes(&mut body, key);
        put_bytes(&mut body, value);
        put_varlong(&mut body, headers.len() as i64);
        for (name, header_value) in headers {
            put_bytes(&mut body, Some(name.as_bytes()));
            put_bytes(&mut body, *header_value);
        }
        put_varlong(&mut self.records, body.len() as i64);
        self.records.extend_from_slice(&body);
        self.count = self.count.saturating_add(1);
        self
    }

    /// Number of records added so far.
    pub fn len(&self) -> usize {
        usize::try_from(self.count).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The encoded records section (uncompressed), as it goes after the header.
    pub fn records_section(&self) -> &[u8] {
        &self.records
    }

    /// Writes the batch. A builder with no records gives a batch with recordsCount 0 (which
    /// [`validate`] rejects, as Kafka does). Sizes beyond `i32::MAX` cannot be represented
    /// and yield a batch that fails validation rather than a panic.
    pub fn build(&self) -> Vec<u8> {
        self.build_with_records(self.attributes, &self.records)
    }

    /// Writes the batch with its records section compressed by `codec`, as a client with
    /// `compression.type` set would.
    pub fn build_compressed(
        &self,
        codec: Compression,
    ) -> Result<Vec<u8>, crate::compression::CompressionError> {
        let records = crate::compression::compress(codec, &self.records)?;
        let attributes = (self.attributes & !COMPRESSION_MASK) | i16::from(codec.id());
        Ok(self.build_with_records(attributes, &records))
    }

    /// Writes the batch around an already-encoded (possibly compressed) records section.
    /// `attributes` must carry the codec bits that match `records`.
    fn build_with_records(&self, attributes: i16, records: &[u8]) -> Vec<u8> {
        let total = BATCH_HEADER_LEN.saturating_add(records.len());
        let batch_length = i32::try_from(total - LOG_OVERHEAD).unwrap_or(i32::MAX);
        let mut out = Vec::with_capacity(total);
        out.extend_from_slice(&self.base_offset.to_be_bytes());
        out.extend_from_slice(&batch_length.to_be_bytes());
        out.extend_from_slice(&self.partition_leader_epoch.to_be_bytes());
        out.extend_from_slice(&MAGIC_V2.to_be_bytes());
        out.extend_from_slice(&0u32.to_be_bytes()); // CRC, filled below
        out.extend_from_slice(&attributes.to_be_bytes());
        out.extend_from_slice(&self.count.saturating_sub(1).to_be_bytes());
        out.extend_from_slice(&self.base_timestamp.unwrap_or(NO_VALUE).to_be_bytes());
        out.extend_from_slice(&self.max_timestamp.unwrap_or(NO_VALUE).to_be_bytes());
        out.extend_from_slice(&self.producer_id.to_be_bytes());
        out.extend_from_slice(&self.producer_epoch.to_be_bytes());
        out.extend_from_slice(&self.base_sequence.to_be_bytes());
        out.extend_from_slice(&self.count.to_be_bytes());
        out.extend_from_slice(records);
        let crc = out
            .get(field::ATTRIBUTES..)
            .map(crc32c::crc32c)
            .unwrap_or(0);
        if let Some(slot) = out
            .get_mut(field::CRC..)
            .and_then(|s| s.first_chunk_mut::<4>())
        {
            *slot = crc.to_be_bytes();
        }
        out
    }
}

/// Length-prefixed bytes, -1 for null, as records and headers encode them.
pub(crate) fn put_bytes(out: &mut Vec<u8>, bytes: Option<&[u8]>) {
    match bytes {
        Some(b) => {
            put_varlong(out, b.len() as i64);
            out.extend_from_slice(b);
        }
        None => put_varlong(out, -1),
    }
}

/// Zigzag varint encoding (Kafka's varint and varlong share it; a value that fits an i32
/// encodes the same either way).
pub(crate) fn put_varlong(out: &mut Vec<u8>, value: i64) {
    let mut v = ((value << 1) ^ (value >> 63)) as u64;
    while v >= 0x80 {
        out.push((v as u8 & 0x7f) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// A transaction marker: a control batch holding one record whose key is
/// `[version 0: i16][type: i16]` (0 = ABORT, 1 = COMMIT) and whose value is
/// `[version 0: i16][coordinator epoch: i32]`, as Kafka writes them.
pub fn transaction_marker(
    producer_id: i64,
    producer_epoch: i16,
    commit: bool,
    coordinator_epoch: i32,
    timestamp: i64,
) -> Vec<u8> {
    let key = [0, 0, 0, u8::from(commit)];
    let mut value = [0u8; 6];
    if let Some(epoch) = value.get_mut(2..6) {
        epoch.copy_from_slice(&coordinator_epoch.to_be_bytes());
    }
    RecordBatchBuilder::new()
        .producer(producer_id, producer_epoch, -1)
        .transactional(true)
        .control(true)
        .record(timestamp, Some(&key), Some(&value), &[])
        .build()
}

/// Reads a transaction marker's record key: `Some(true)` for COMMIT,
/// `Some(false)` for ABORT, `None` when the key is not a marker key.
pub fn marker_key_is_commit(key: &[u8]) -> Option<bool> {
    match key {
        &[_, _, t0, t1] => match i16::from_be_bytes([t0, t1]) {
            0 => Some(false),
            1 => Some(true),
            _ => None,
        },
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample() -> Vec<u8> {
        RecordBatchBuilder::new()
            .record(1_000, Some(b"k1"), Some(b"v1"), &[])
            .record(1_005, None, Some(b"v2"), &[("h", Some(b"x")), ("n", None)])
            .record(999, Some(b""), None, &[])
            .build()
    }

    #[test]
    fn stamped_header_and_records_equal_the_batch_stamped_in_place() {
        for log_append_time in [None, Some(1_700_000_000_123)] {
            let original = sample();
            let mut in_place = original.clone();
            set_base_offset(&mut in_place, 42).unwrap();
            set_partition_leader_epoch(&mut in_place, 3).unwrap();
            if let Some(ts) = log_append_time {
                set_log_append_time(&mut in_place, ts).unwrap();
            }
            let header = stamped_header(&original, 42, 3, log_append_time).unwrap();
            let mut stored = header.to_vec();
            stored.extend_from_slice(&original[BATCH_HEADER_LEN..]);
            assert_eq!(stored, in_place, "log_append_time {log_append_time:?}");
            let h = validate(&stored).unwrap();
            assert_eq!((h.base_offset, h.partition_leader_epoch), (42, 3));
        }
        assert!(stamped_header(&sample()[..BATCH_HEADER_LEN - 1], 0, 0, None).is_err());
    }

    #[test]
    fn builder_round_trip_validates() {
        let b = sample();
        let h = validate(&b).unwrap();
        assert_eq!(h.total_len(), b.len());
        assert_eq!(h.records_count, 3);
        assert_eq!(h.last_offset_delta, 2);
        assert_eq!(h.base_timestamp, 1_000);
        assert_eq!(h.max_timestamp, 1_005);
        assert_eq!(h.producer_id, -1);
        assert_eq!(h.producer_epoch, -1);
        assert_eq!(h.base_sequence, -1);
        assert_eq!(h.magic, 2);
        assert_eq!(h.compression().unwrap(), Compression::None);
        assert_eq!(h.timestamp_type(), TimestampType::CreateTime);
        assert!(!h.is_transactional());
        assert!(!h.is_control());
        assert_eq!(h.last_offset(), 2);
    }

    #[test]
    fn builder_sets_producer_and_flags() {
        let b = RecordBatchBuilder::new()
            .base_offset(40)
            .producer(7, 3, 11)
            .transactional(true)
            .control(true)
            .record(5, None, None, &[])
            .build();
        let h = validate(&b).unwrap();
        assert_eq!(
            (h.producer_id, h.producer_epoch, h.base_sequence),
            (7, 3, 11)
        );
        assert!(h.is_transactional() && h.is_control() && h.has_producer_id());
        assert_eq!(h.base_offset, 40);
        assert_eq!(h.last_offset(), 40);
    }

    #[test]
    fn empty_batch_is_rejected() {
        let b = RecordBatchBuilder::new().build();
        assert_eq!(validate(&b), Err(BatchError::InvalidRecordsCount(0)));
        assert!(check_integrity(&b).is_ok());
    }

    #[test]
    fn legacy_magic_is_reported() {
        let mut b = sample();
        b[field::MAGIC] = 1;
        assert_eq!(validate(&b), Err(BatchError::UnsupportedMagic(1)));
        // A short legacy message is still recognised by its magic.
        let mut short = vec![0u8; 26];
        short[field::MAGIC] = 0;
        assert_eq!(validate(&short), Err(BatchError::UnsupportedMagic(0)));
    }

    #[test]
    fn record_count_bounded_by_size() {
        let mut b = sample();
        let count = 1000i32;
        b[field::RECORDS_COUNT..field::RECORDS_COUNT + 4].copy_from_slice(&count.to_be_bytes());
        b[field::LAST_OFFSET_DELTA..field::LAST_OFFSET_DELTA + 4]
            .copy_from_slice(&(count - 1).to_be_bytes());
        recompute_crc(&mut b).unwrap();
        assert!(matches!(
            validate(&b),
            Err(BatchError::TooManyRecords { .. })
        ));
    }

    #[test]
    fn compressed_count_bound() {
        let mut b = sample();
        let count = MAX_COMPRESSED_RECORDS_COUNT + 1;
        b[field::ATTRIBUTES + 1] |= 1; // gzip
        b[field::RECORDS_COUNT..field::RECORDS_COUNT + 4].copy_from_slice(&count.to_be_bytes());
        b[field::LAST_OFFSET_DELTA..field::LAST_OFFSET_DELTA + 4]
            .copy_from_slice(&(count - 1).to_be_bytes());
        recompute_crc(&mut b).unwrap();
        assert!(matches!(
            validate(&b),
            Err(BatchError::TooManyRecords { .. })
        ));
    }

    #[test]
    fn offset_delta_mismatch() {
        let mut b = sample();
        b[field::LAST_OFFSET_DELTA..field::LAST_OFFSET_DELTA + 4]
            .copy_from_slice(&5i32.to_be_bytes());
        recompute_crc(&mut b).unwrap();
        assert!(matches!(
            validate(&b),
            Err(BatchError::OffsetDeltaMismatch { .. })
        ));
    }

    #[test]
    fn unknown_compression_rejected() {
        let mut b = sample();
        b[field::ATTRIBUTES + 1] |= 7;
        recompute_crc(&mut b).unwrap();
        assert_eq!(validate(&b), Err(BatchError::UnknownCompression(7)));
    }

    #[test]
    fn producer_fields_checked() {
        let b = RecordBatchBuilder::new()
            .transactional(true)
            .record(1, None, None, &[])
            .build();
        assert!(matches!(
            validate(&b),
            Err(BatchError::InvalidProducerState(_))
        ));
        let b = RecordBatchBuilder::new()
            .producer(5, 0, -1)
            .record(1, None, None, &[])
            .build();
        assert!(matches!(
            validate(&b),
            Err(BatchError::InvalidProducerState(_))
        ));
        let b = RecordBatchBuilder::new()
            .producer(5, 0, 0)
            .transactional(true)
            .record(1, None, None, &[])
            .build();
        assert!(validate(&b).is_ok());
    }

    #[test]
    fn trailing_bytes_rejected() {
        let mut b = sample();
        b.push(0);
        assert!(matches!(
            validate(&b),
            Err(BatchError::LengthMismatch { .. })
        ));
    }

    #[test]
    fn split_several_and_truncated_tail() {
        let one = sample();
        let two = RecordBatchBuilder::new()
            .record(1, None, Some(b"x"), &[])
            .build();
        let mut buf = one.clone();
        buf.extend_from_slice(&two);
        let all: Vec<_> = split_batches(&buf).collect::<Result<_, _>>().unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].1, 0..one.len());
        assert_eq!(all[1].1, one.len()..buf.len());
        assert!(split_batches(&[]).next().is_none());

        buf.truncate(buf.len() - 1);
        let mut it = split_batches(&buf);
        assert!(it.next().unwrap().is_ok());
        assert!(matches!(it.next(), Some(Err(BatchError::Truncated { .. }))));
        assert!(it.next().is_none());
        assert_eq!(it.position(), one.len());
    }

    #[test]
    fn stamping_keeps_crc() {
        let mut b = sample();
        set_base_offset(&mut b, 12_345).unwrap();
        set_partition_leader_epoch(&mut b, 9).unwrap();
        let h = validate(&b).unwrap();
        assert_eq!(h.base_offset, 12_345);
        assert_eq!(h.partition_leader_epoch, 9);
        set_log_append_time(&mut b, 77_777).unwrap();
        let h = validate(&b).unwrap();
        assert_eq!(h.timestamp_type(), TimestampType::LogAppendTime);
        assert_eq!(h.max_timestamp, 77_777);
        assert_eq!(h.base_offset, 12_345);
    }

    #[test]
    fn stamping_short_buffer_errors() {
        let mut short = vec![0u8; 10];
        assert!(set_base_offset(&mut short, 1).is_err());
        assert!(set_partition_leader_epoch(&mut short, 1).is_err());
        assert!(set_log_append_time(&mut short, 1).is_err());
        let mut b = sample();
        b.truncate(b.len() - 1);
        assert!(set_log_append_time(&mut b, 1).is_err());
    }

    #[test]
    fn varint_encoding_matches_kafka() {
        let cases: &[(i64, &[u8])] = &[
            (0, &[0]),
            (-1, &[1]),
            (1, &[2]),
            (63, &[0x7e]),
            (-64, &[0x7f]),
            (64, &[0x80, 0x01]),
            (300, &[0xd8, 0x04]),
        ];
        for (v, want) in cases {
            let mut out = Vec::new();
            put_varlong(&mut out, *v);
            assert_eq!(&out[..], *want, "value {v}");
        }
    }

    /// (timestamp, key, value, headers) of one generated record.
    type TestRecord = (
        i64,
        Option<Vec<u8>>,
        Option<Vec<u8>>,
        Vec<(String, Option<Vec<u8>>)>,
    );

    fn arb_records() -> impl Strategy<Value = Vec<TestRecord>> {
        proptest::collection::vec(
            (
                any::<i64>(),
                proptest::option::of(proptest::collection::vec(any::<u8>(), 0..20)),
                proptest::option::of(proptest::collection::vec(any::<u8>(), 0..40)),
                proptest::collection::vec(
                    (
                        "[a-z]{0,5}",
                        proptest::option::of(proptest::collection::vec(any::<u8>(), 0..5)),
                    ),
                    0..3,
                ),
            ),
            1..8,
        )
    }

    fn build(recs: &[TestRecord]) -> Vec<u8> {
        let mut b = RecordBatchBuilder::new();
        for (ts, k, v, hs) in recs {
            let hs: Vec<(&str, Option<&[u8]>)> =
                hs.iter().map(|(n, v)| (n.as_str(), v.as_deref())).collect();
            b.push(*ts, k.as_deref(), v.as_deref(), &hs);
        }
        b.build()
    }

    proptest! {
        #[test]
        fn prop_builder_validates(recs in arb_records()) {
            let b = build(&recs);
            let h = validate(&b).unwrap();
            prop_assert_eq!(h.records_count as usize, recs.len());
            prop_assert_eq!(h.max_timestamp, recs.iter().map(|r| r.0).max().unwrap());
            prop_assert_eq!(h.base_timestamp, recs[0].0);
        }

        #[test]
        fn prop_every_byte_corruption_detected(recs in arb_records(), flip in 1u8..=255) {
            let b = build(&recs);
            // Bytes outside the CRC (base offset, partition leader epoch) are stamped by
            // the broker; any change there is legitimate except to batchLength and magic.
            for i in 0..b.len() {
                if i < field::BATCH_LENGTH || (field::PARTITION_LEADER_EPOCH..field::MAGIC).contains(&i) {
                    continue;
                }
                let mut c = b.clone();
                c[i] ^= flip;
                prop_assert!(validate(&c).is_err(), "corruption at byte {} not detected", i);
            }
        }

        #[test]
        fn prop_truncation_is_an_error(recs in arb_records()) {
            let b = build(&recs);
            for len in 0..b.len() {
                prop_assert!(validate(&b[..len]).is_err());
                prop_assert!(BatchHeader::parse(&b[..len]).map(|h| h.total_len() > len).unwrap_or(true));
                let mut it = split_batches(&b[..len]);
                if len > 0 {
                    prop_assert!(it.next().unwrap().is_err());
                }
                prop_assert!(it.next().is_none());
                prop_assert_eq!(it.position(), 0);
                let mut m = b[..len].to_vec();
                let _ = set_log_append_time(&mut m, 1);
                let _ = set_base_offset(&mut m, 1);
            }
        }

        #[test]
        fn prop_stamping_keeps_valid(recs in arb_records(), off in any::<i64>(), epoch in any::<i32>(), ts in any::<i64>()) {
            let mut b = build(&recs);
            set_base_offset(&mut b, off).unwrap();
            set_partition_leader_epoch(&mut b, epoch).unwrap();
            prop_assert!(validate(&b).is_ok());
            set_log_append_time(&mut b, ts).unwrap();
            let h = validate(&b).unwrap();
            prop_assert_eq!(h.base_offset, off);
            prop_assert_eq!(h.partition_leader_epoch, epoch);
            prop_assert_eq!(h.max_timestamp, ts);
            prop_assert_eq!(h.timestamp_type(), TimestampType::LogAppendTime);
        }

        #[test]
        fn prop_garbage_never_panics(data in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = validate(&data);
            let _ = split_batches(&data).count();
        }
    }
}

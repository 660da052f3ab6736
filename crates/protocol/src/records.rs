//! Decoding the records inside a v2 batch, for the few features that need them (timestamp
//! lookup, compaction, key checks); the produce and fetch paths never call this.
//!
//! Record layout (inside the possibly compressed records section):
//!
//! ```text
//! length varint | attributes i8 | timestampDelta varlong | offsetDelta varint |
//! keyLength varint (-1 = null) | key | valueLength varint | value |
//! headersCount varint | { headerKeyLength varint | key | headerValueLength varint | value }*
//! ```
//!
//! Every length and count is checked against the bytes that are really there before it is
//! used, so a hostile batch yields an error, never a panic or a huge allocation.

use bytes::Bytes;
use thiserror::Error;

use crate::batch::{
    BATCH_HEADER_LEN, BatchError, BatchHeader, Compression, DELETE_HORIZON_BIT, LOG_OVERHEAD,
    TimestampType, field, put_bytes, put_varlong, recompute_crc, records_section,
    with_records_section, write_bytes,
};
use crate::compression::{CompressionError, compress, decompress};

/// How much decompressed data one batch may expand to when its records are decoded: far
/// above any sane `max.message.bytes`, and small enough that a decompression bomb cannot
/// exhaust memory.
pub const MAX_DECOMPRESSED_BYTES: usize = 64 << 20;

/// One decoded record with its absolute offset and timestamp.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub offset: i64,
    pub timestamp: i64,
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    pub headers: Vec<(String, Option<Bytes>)>,
}

/// Why the records of a batch could not be decoded.
#[derive(Debug, Error)]
pub enum RecordsError {
    #[error(transparent)]
    Batch(#[from] BatchError),
    #[error(transparent)]
    Compression(#[from] CompressionError),
    #[error("malformed record at byte {position} of the records section: {reason}")]
    Malformed {
        position: usize,
        reason: &'static str,
    },
    #[error("batch declares {declared} records but {trailing} bytes remain after them")]
    TrailingBytes { declared: i32, trailing: usize },
}

/// Decodes the records of the single batch at the start of `batch`, decompressing the
/// records section with at most `max_decompressed_bytes` of output.
///
/// Uncompressed keys and values are slices of `batch` (no copy). The CRC is not checked
/// here: batches read from the log were checked on append, and a produce request is
/// validated with [`crate::batch::validate`] before anything decodes it.
pub fn decode_records(
    batch: &Bytes,
    max_decompressed_bytes: usize,
) -> Result<RecordIter, RecordsError> {
    let header = BatchHeader::parse(batch)?;
    let total = header.total_len();
    let records = records_section(batch, total)?;
    let data = match header.compression()? {
        Compression::None => batch.slice(BATCH_HEADER_LEN..total),
        codec => Bytes::from(decompress(codec, records, max_decompressed_bytes)?),
    };
    Ok(RecordIter {
        header,
        data,
        pos: 0,
        remaining: header.records_count.max(0),
        finished: false,
    })
}

/// The batch at the start of `batch` with its records section in `codec` instead: what
/// Kafka stores for a topic whose `compression.type` names another codec than the
/// producer's. The section is decompressed (to at most `max_decompressed_bytes`) and
/// compressed again; record encodings do not depend on the codec, so no record is decoded,
/// and offsets, timestamps and producer fields stay as they were.
pub fn recompress(
    batch: &[u8],
    codec: Compression,
    max_decompressed_bytes: usize,
) -> Result<Vec<u8>, RecordsError> {
    let header = BatchHeader::parse(batch)?;
    let records = records_section(batch, header.total_len())?;
    let plain = decompress(header.compression()?, records, max_decompressed_bytes)?;
    let encoded = match codec {
        Compression::None => plain,
        codec => compress(codec, &plain)?,
    };
    Ok(with_records_section(batch, codec, &encoded)?)
}

/// The batch at the start of `original` holding only `retained`, some of its own records
/// in their order, as Kafka's log cleaner rewrites a batch
/// (`MemoryRecords.buildRetainedRecordsInto`): base offset, last offset delta (so the
/// producer's last sequence survives), producer id, epoch and base sequence, leader epoch,
/// flags and codec stay; the records are encoded again (keys, values, headers, offsets and
/// timestamps kept) and compressed with the batch's own codec. The base timestamp is
/// `delete_horizon_ms` when given (KIP-534, marked by attribute bit 6), else the first
/// record's timestamp; the max timestamp is the largest retained one (for LogAppendTime
/// batches the append time, as before).
pub fn retained_batch(
    original: &[u8],
    retained: &[Record],
    delete_horizon_ms: Option<i64>,
) -> Result<Vec<u8>, RecordsError> {
    let header = BatchHeader::parse(original)?;
    let first_timestamp = retained
        .first()
        .map_or(header.max_timestamp, |r| r.timestamp);
    let base_timestamp = delete_horizon_ms.unwrap_or(first_timestamp);
    let max_timestamp = match header.timestamp_type() {
        TimestampType::LogAppendTime => header.max_timestamp,
        TimestampType::CreateTime => retained.iter().map(|r| r.timestamp).max().unwrap_or(-1),
    };
    let mut plain = Vec::new();
    let mut body = Vec::new();
    for record in retained {
        body.clear();
        body.push(0); // record attributes: unused
        put_varlong(&mut body, record.timestamp.wrapping_sub(base_timestamp));
        put_varlong(&mut body, record.offset.wrapping_sub(header.base_offset));
        put_bytes(&mut body, record.key.as_deref());
        put_bytes(&mut body, record.value.as_deref());
        put_varlong(&mut body, record.headers.len() as i64);
        for (name, value) in &record.headers {
            put_bytes(&mut body, Some(name.as_bytes()));
            put_bytes(&mut body, value.as_deref());
        }
        put_varlong(&mut plain, body.len() as i64);
        plain.extend_from_slice(&body);
    }
    let codec = header.compression()?;
    let section = match codec {
        Compression::None => plain,
        codec => compress(codec, &plain)?,
    };
    let head = original
        .get(..BATCH_HEADER_LEN)
        .ok_or(BatchError::Truncated {
            needed: BATCH_HEADER_LEN,
            available: original.len(),
        })?;
    let mut out = Vec::with_capacity(BATCH_HEADER_LEN.saturating_add(section.len()));
    out.extend_from_slice(head);
    out.extend_from_slice(&section);
    let batch_length = i32::try_from(out.len() - LOG_OVERHEAD)
        .map_err(|_| BatchError::InvalidBatchLength(i32::MAX))?;
    let count = i32::try_from(retained.len()).map_err(|_| BatchError::InvalidRecordsCount(-1))?;
    let attributes = if delete_horizon_ms.is_some() {
        header.attributes | DELETE_HORIZON_BIT
    } else {
        header.attributes & !DELETE_HORIZON_BIT
    };
    write_bytes(&mut out, field::BATCH_LENGTH, batch_length.to_be_bytes())?;
    write_bytes(&mut out, field::ATTRIBUTES, attributes.to_be_bytes())?;
    write_bytes(
        &mut out,
        field::BASE_TIMESTAMP,
        base_timestamp.to_be_bytes(),
    )?;
    write_bytes(&mut out, field::MAX_TIMESTAMP, max_timestamp.to_be_bytes())?;
    write_bytes(&mut out, field::RECORDS_COUNT, count.to_be_bytes())?;
    recompute_crc(&mut out)?;
    Ok(out)
}

/// Iterator over the records of one batch; see [`decode_records`]. Stops after the first
/// error.
#[derive(Debug, Clone)]
pub struct RecordIter {
    header: BatchHeader,
    data: Bytes,
    pos: usize,
    remaining: i32,
    finished: bool,
}

impl RecordIter {
    /// The header of the batch being decoded.
    pub fn header(&self) -> &BatchHeader {
        &self.header
    }

    fn malformed(&self, reason: &'static str) -> RecordsError {
        RecordsError::Malformed {
            position: self.pos,
            reason,
        }
    }

    fn next_record(&mut self) -> Result<Record, RecordsError> {
        let start = self.pos;
        let mut r = Reader {
            data: &self.data,
            pos: start,
        };
        let len = r.varint()?;
        let len = usize::try_from(len).map_err(|_| r.err("negative record length"))?;
        let body_start = r.pos;
        let end = body_start
            .checked_add(len)
            .filter(|&e| e <= self.data.len())
            .ok_or_else(|| r.err("record length beyond the records section"))?;
        // Reads inside the record are confined to its declared length.
        let mut r = Reader {
            data: self.data.get(..end).unwrap_or_default(),
            pos: body_start,
        };
        let _attributes = r.byte()?;
        let timestamp_delta = r.varlong()?;
        let offset_delta = r.varint()?;
        let key = r.bytes(&self.data)?;
        let value = r.bytes(&self.data)?;
        let header_count = r.varint()?;
        let header_count =
            usize::try_from(header_count).map_err(|_| r.err("negative header count"))?;
        // A header needs at least two bytes (two length varints).
        if header_count > r.remaining() / 2 {
            return Err(r.err("header count larger than the record"));
        }
        let mut headers = Vec::with_capacity(header_count);
        for _ in 0..header_count {
            let name = r
                .bytes(&self.data)?
                .ok_or_else(|| r.err("null header key"))?;
            let name =
                String::from_utf8(name.to_vec()).map_err(|_| r.err("header key is not UTF-8"))?;
            let value = r.bytes(&self.data)?;
            headers.push((name, value));
        }
        if r.pos != end {
            return Err(r.err("record length does not match its contents"));
        }
        self.pos = end;
        let timestamp = match self.header.timestamp_type() {
            TimestampType::LogAppendTime => self.header.max_timestamp,
            TimestampType::CreateTime => self.header.base_timestamp.wrapping_add(timestamp_delta),
        };
        Ok(Record {
            offset: self
                .header
                .base_offset
                .wrapping_add(i64::from(offset_delta)),
            timestamp,
            key,
            value,
            headers,
        })
    }
}

impl Iterator for RecordIter {
    type Item = Result<Record, RecordsError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.finished {
            return None;
        }
        if self.remaining == 0 {
            self.finished = true;
            let trailing = self.data.len().saturating_sub(self.pos);
            if trailing > 0 {
                return Some(Err(RecordsError::TrailingBytes {
                    declared: self.header.records_count,
                    trailing,
                }));
            }
            return None;
        }
        if self.pos >= self.data.len() {
            self.finished = true;
            return Some(Err(self.malformed("fewer records than the batch declares")));
        }
        let result = self.next_record();
        match result {
            Ok(_) => self.remaining = self.remaining.saturating_sub(1),
            Err(_) => self.finished = true,
        }
        Some(result)
    }
}

/// Bounds-checked cursor over a records section.
struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn err(&self, reason: &'static str) -> RecordsError {
        RecordsError::Malformed {
            position: self.pos,
            reason,
        }
    }

    fn remaining(&self) -> usize {
        self.data.len().saturating_sub(self.pos)
    }

    fn byte(&mut self) -> Result<u8, RecordsError> {
        let b = *self
            .data
            .get(self.pos)
            .ok_or_else(|| self.err("truncated record"))?;
        self.pos = self.pos.saturating_add(1);
        Ok(b)
    }

    /// Unsigned LEB128 of at most `max_bytes` bytes, then zigzag-decoded.
    fn zigzag(&mut self, max_bytes: u32) -> Result<i64, RecordsError> {
        let mut raw: u64 = 0;
        for i in 0..max_bytes {
            let b = self.byte()?;
            raw |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(((raw >> 1) as i64) ^ -((raw & 1) as i64));
            }
        }
        Err(self.err("varint too long"))
    }

    fn varlong(&mut self) -> Result<i64, RecordsError> {
        self.zigzag(10)
    }

    fn varint(&mut self) -> Result<i32, RecordsError> {
        let v = self.zigzag(5)?;
        i32::try_from(v).map_err(|_| self.err("varint out of range"))
    }

    /// Length-prefixed bytes (-1 = null), returned as a zero-copy slice of `owner`, which
    /// is the buffer `self.data` is a prefix of.
    fn bytes(&mut self, owner: &Bytes) -> Result<Option<Bytes>, RecordsError> {
        let len = self.varint()?;
        if len < 0 {
            return if len == -1 {
                Ok(None)
            } else {
                Err(self.err("negative length"))
            };
        }
        let len = usize::try_from(len).map_err(|_| self.err("negative length"))?;
        if len > self.remaining() {
            return Err(self.err("length beyond the record"));
        }
        let start = self.pos;
        self.pos = start.saturating_add(len);
        Ok(Some(owner.slice(start..self.pos)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::{RecordBatchBuilder, field, recompute_crc, set_log_append_time, validate};
    use proptest::prelude::*;

    const ALL_CODECS: [Compression; 5] = [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ];

    fn decode_all(batch: &[u8]) -> Result<Vec<Record>, RecordsError> {
        decode_records(&Bytes::copy_from_slice(batch), 1 << 20)?.collect()
    }

    fn sample_builder() -> RecordBatchBuilder {
        RecordBatchBuilder::new()
            .base_offset(100)
            .record(1_000, Some(b"k1"), Some(b"v1"), &[])
            .record(
                990,
                None,
                Some(b"v2"),
                &[("h1", Some(b"x")), ("h2", None), ("", Some(b""))],
            )
            .record(1_010, Some(b""), None, &[])
    }

    fn check_sample(records: &[Record]) {
        assert_eq!(records.len(), 3);
        assert_eq!(records[0].offset, 100);
        assert_eq!(records[0].timestamp, 1_000);
        assert_eq!(records[0].key.as_deref(), Some(&b"k1"[..]));
        assert_eq!(records[0].value.as_deref(), Some(&b"v1"[..]));
        assert!(records[0].headers.is_empty());
        assert_eq!(records[1].offset, 101);
        assert_eq!(records[1].timestamp, 990);
        assert_eq!(records[1].key, None);
        assert_eq!(
            records[1].headers,
            vec![
                ("h1".to_owned(), Some(Bytes::from_static(b"x"))),
                ("h2".to_owned(), None),
                (String::new(), Some(Bytes::new())),
            ]
        );
        assert_eq!(records[2].offset, 102);
        assert_eq!(records[2].key.as_deref(), Some(&b""[..]));
        assert_eq!(records[2].value, None);
    }

    #[test]
    fn uncompressed_round_trip() {
        let b = sample_builder().build();
        check_sample(&decode_all(&b).unwrap());
    }

    #[test]
    fn log_append_time_overrides_record_timestamps() {
        let mut b = sample_builder().build();
        set_log_append_time(&mut b, 5_000).unwrap();
        let recs = decode_all(&b).unwrap();
        assert!(recs.iter().all(|r| r.timestamp == 5_000));
    }

    /// Compresses the records section by hand (not via the builder), so this test checks
    /// the decoder against the format rather than against our own builder.
    fn compress_by_hand(batch: &[u8], codec: Compression) -> Vec<u8> {
        let section = &batch[BATCH_HEADER_LEN..];
        let compressed = crate::compression::compress(codec, section).unwrap();
        let mut out = batch[..BATCH_HEADER_LEN].to_vec();
        out.extend_from_slice(&compressed);
        let batch_length = (out.len() - 12) as i32;
        out[field::BATCH_LENGTH..field::BATCH_LENGTH + 4]
            .copy_from_slice(&batch_length.to_be_bytes());
        let attrs = i16::from_be_bytes([out[field::ATTRIBUTES], out[field::ATTRIBUTES + 1]])
            | i16::from(codec.id());
        out[field::ATTRIBUTES..field::ATTRIBUTES + 2].copy_from_slice(&attrs.to_be_bytes());
        recompute_crc(&mut out).unwrap();
        out
    }

    #[test]
    fn compressed_round_trip_every_codec() {
        let plain = sample_builder().build();
        for codec in ALL_CODECS {
            let b = compress_by_hand(&plain, codec);
            let h = validate(&b).unwrap();
            assert_eq!(h.compression().unwrap(), codec);
            check_sample(&decode_all(&b).unwrap());
            let built = sample_builder().build_compressed(codec).unwrap();
            assert_eq!(validate(&built).unwrap().compression().unwrap(), codec);
            check_sample(&decode_all(&built).unwrap());
        }
        let raw = crate::compression::compress_snappy_raw(&plain[BATCH_HEADER_LEN..]).unwrap();
        let mut b = plain[..BATCH_HEADER_LEN].to_vec();
        b.extend_from_slice(&raw);
        let len = (b.len() - 12) as i32;
        b[field::BATCH_LENGTH..field::BATCH_LENGTH + 4].copy_from_slice(&len.to_be_bytes());
        b[field::ATTRIBUTES + 1] |= 2;
        recompute_crc(&mut b).unwrap();
        check_sample(&decode_all(&b).unwrap());
    }

    /// The cleaner's rewrite keeps what it must: offsets, last offset delta, producer
    /// fields, leader epoch, codec, keys, values, headers and timestamps.
    #[test]
    fn retained_batch_keeps_offsets_producer_fields_and_records_in_every_codec() {
        for codec in ALL_CODECS {
            let original = sample_builder()
                .producer(7, 3, 40)
                .transactional(true)
                .partition_leader_epoch(5)
                .build_compressed(codec)
                .unwrap();
            let all = decode_all(&original).unwrap();
            let kept = vec![all[1].clone()];
            let rebuilt = retained_batch(&original, &kept, None).unwrap();
            let before = BatchHeader::parse(&original).unwrap();
            let after = crate::batch::check_integrity(&rebuilt).unwrap();
            assert_eq!(after.compression().unwrap(), codec);
            assert_eq!(
                (
                    after.base_offset,
                    after.last_offset_delta,
                    after.records_count
                ),
                (100, 2, 1)
            );
            assert_eq!(
                (after.producer_id, after.producer_epoch, after.base_sequence),
                (7, 3, 40)
            );
            assert!(after.is_transactional() && !after.is_control());
            assert_eq!(after.partition_leader_epoch, before.partition_leader_epoch);
            assert_eq!((after.base_timestamp, after.max_timestamp), (990, 990));
            assert_eq!(after.delete_horizon_ms(), None);
            assert_eq!(decode_all(&rebuilt).unwrap(), kept);
        }
    }

    /// KIP-534: the delete horizon goes into the base timestamp with attribute bit 6, and
    /// the records' own timestamps read back unchanged.
    #[test]
    fn retained_batch_with_a_delete_horizon_keeps_record_timestamps() {
        let original = sample_builder().build();
        let all = decode_all(&original).unwrap();
        let rebuilt = retained_batch(&original, &all, Some(86_400_000)).unwrap();
        let h = crate::batch::check_integrity(&rebuilt).unwrap();
        assert_eq!(h.delete_horizon_ms(), Some(86_400_000));
        assert_eq!(h.base_timestamp, 86_400_000);
        assert_eq!(h.max_timestamp, 1_010);
        check_sample(&decode_all(&rebuilt).unwrap());
        // Rebuilt again without a horizon, the bit goes and the first record's time returns.
        let again = retained_batch(&rebuilt, &all, None).unwrap();
        let h = BatchHeader::parse(&again).unwrap();
        assert_eq!((h.delete_horizon_ms(), h.base_timestamp), (None, 1_000));
        check_sample(&decode_all(&again).unwrap());
    }

    #[test]
    fn empty_batch_keeps_offsets_and_producer_fields_without_records() {
        let mut original = sample_builder()
            .producer(9, 2, 17)
            .transactional(true)
            .partition_leader_epoch(4)
            .build_compressed(Compression::Lz4)
            .unwrap();
        set_log_append_time(&mut original, 7_000).unwrap();
        let h = BatchHeader::parse(&original).unwrap();
        let empty = crate::batch::empty_batch(&h);
        let e = crate::batch::check_integrity(&empty).unwrap();
        assert_eq!(e.total_len(), BATCH_HEADER_LEN);
        assert_eq!(
            (e.base_offset, e.last_offset(), e.records_count),
            (100, 102, 0)
        );
        assert_eq!(
            (e.producer_id, e.producer_epoch, e.base_sequence),
            (9, 2, 17)
        );
        assert_eq!(e.partition_leader_epoch, 4);
        assert_eq!(e.compression().unwrap(), Compression::None);
        assert_eq!(e.timestamp_type(), TimestampType::LogAppendTime);
        assert!(e.is_transactional() && !e.is_control());
        assert_eq!((e.base_timestamp, e.max_timestamp), (-1, 7_000));
        assert_eq!(decode_all(&empty).unwrap(), Vec::new());
    }

    #[test]
    fn recompress_between_every_pair_of_codecs_keeps_header_and_records() {
        let sample = || {
            sample_builder()
                .producer(7, 3, 40)
                .transactional(true)
                .partition_leader_epoch(5)
        };
        let plain = sample().build();
        let original = BatchHeader::parse(&plain).unwrap();
        for from in ALL_CODECS {
            let source = sample().build_compressed(from).unwrap();
            for to in ALL_CODECS {
                let out = recompress(&source, to, 1 << 20).unwrap();
                let h = validate(&out).unwrap();
                assert_eq!(h.compression().unwrap(), to, "{from:?} -> {to:?}");
                assert_eq!(
                    (h.base_offset, h.partition_leader_epoch, h.last_offset_delta),
                    (
                        original.base_offset,
                        original.partition_leader_epoch,
                        original.last_offset_delta
                    )
                );
                assert_eq!(
                    (h.base_timestamp, h.max_timestamp, h.records_count),
                    (
                        original.base_timestamp,
                        original.max_timestamp,
                        original.records_count
                    )
                );
                assert_eq!(
                    (
                        h.producer_id,
                        h.producer_epoch,
                        h.base_sequence,
                        h.is_transactional()
                    ),
                    (7, 3, 40, true)
                );
                check_sample(&decode_all(&out).unwrap());
                if to == Compression::None {
                    assert_eq!(out, plain, "{from:?} -> uncompressed is the plain batch");
                }
            }
        }
    }

    /// One record of 100,000 zero bytes, compressed with `codec` (a small batch that
    /// expands far).
    fn expanding_batch(codec: Compression) -> Vec<u8> {
        RecordBatchBuilder::new()
            .record(1, None, Some(&[0u8; 100_000]), &[])
            .build_compressed(codec)
            .unwrap()
    }

    #[test]
    fn recompress_applies_the_decompression_limit() {
        let b = expanding_batch(Compression::Gzip);
        assert!(matches!(
            recompress(&b, Compression::Zstd, 50_000),
            Err(RecordsError::Compression(CompressionError::TooLarge {
                limit: 50_000
            }))
        ));
    }

    #[test]
    fn decompression_limit_applies() {
        let b = expanding_batch(Compression::Zstd);
        assert!(b.len() < 1000);
        let err = decode_records(&Bytes::from(b), 10_000).unwrap_err();
        assert!(matches!(
            err,
            RecordsError::Compression(CompressionError::TooLarge { .. })
        ));
    }

    #[test]
    fn count_mismatch_is_an_error() {
        let mut b = sample_builder().build();
        // Declare more records than there are.
        b[field::RECORDS_COUNT..field::RECORDS_COUNT + 4].copy_from_slice(&4i32.to_be_bytes());
        assert!(decode_all(&b).is_err());
        // And fewer.
        b[field::RECORDS_COUNT..field::RECORDS_COUNT + 4].copy_from_slice(&2i32.to_be_bytes());
        assert!(matches!(
            decode_all(&b),
            Err(RecordsError::TrailingBytes { trailing, .. }) if trailing > 0
        ));
    }

    #[test]
    fn huge_header_count_is_rejected_without_allocating() {
        // One record: len, attrs 0, ts 0, off 0, key null, value null, header count 2^30.
        let body = [0u8, 0, 0, 1, 1, 0x80, 0x80, 0x80, 0x80, 0x08];
        let mut section = vec![(body.len() as u8) << 1];
        section.extend_from_slice(&body);
        let mut b = RecordBatchBuilder::new().record(0, None, None, &[]).build();
        b.truncate(BATCH_HEADER_LEN);
        b.extend_from_slice(&section);
        let len = (b.len() - 12) as i32;
        b[field::BATCH_LENGTH..field::BATCH_LENGTH + 4].copy_from_slice(&len.to_be_bytes());
        assert!(matches!(
            decode_all(&b),
            Err(RecordsError::Malformed { .. })
        ));
    }

    #[test]
    fn varint_decoding() {
        let cases: &[(&[u8], i64)] = &[
            (&[0], 0),
            (&[1], -1),
            (&[2], 1),
            (&[0xd8, 0x04], 300),
            (&[0xff, 0xff, 0xff, 0xff, 0x0f], i64::from(i32::MIN)),
            (&[0xfe, 0xff, 0xff, 0xff, 0x0f], i64::from(i32::MAX)),
        ];
        for (bytes, want) in cases {
            let mut r = Reader {
                data: bytes,
                pos: 0,
            };
            assert_eq!(r.varlong().unwrap(), *want);
            let mut r = Reader {
                data: bytes,
                pos: 0,
            };
            assert_eq!(i64::from(r.varint().unwrap()), *want);
        }
        let too_long = [0x80u8; 11];
        assert!(
            Reader {
                data: &too_long,
                pos: 0
            }
            .varlong()
            .is_err()
        );
        assert!(
            Reader {
                data: &too_long,
                pos: 0
            }
            .varint()
            .is_err()
        );
        let max = [0xfeu8, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01];
        assert_eq!(Reader { data: &max, pos: 0 }.varlong().unwrap(), i64::MAX);
    }

    type TestRecord = (
        i64,
        Option<Vec<u8>>,
        Option<Vec<u8>>,
        Vec<(String, Option<Vec<u8>>)>,
    );

    fn arb_records() -> impl Strategy<Value = Vec<TestRecord>> {
        proptest::collection::vec(
            (
                -1_000_000i64..1_000_000,
                proptest::option::of(proptest::collection::vec(any::<u8>(), 0..20)),
                proptest::option::of(proptest::collection::vec(any::<u8>(), 0..200)),
                proptest::collection::vec(
                    (
                        "[a-zé]{0,5}",
                        proptest::option::of(proptest::collection::vec(any::<u8>(), 0..5)),
                    ),
                    0..3,
                ),
            ),
            1..10,
        )
    }

    proptest! {
        #[test]
        fn prop_builder_decode_round_trip(
            recs in arb_records(),
            base in 0i64..1 << 40,
            codec in proptest::sample::select(ALL_CODECS.to_vec()),
        ) {
            let mut builder = RecordBatchBuilder::new().base_offset(base);
            for (ts, k, v, hs) in &recs {
                let hs: Vec<(&str, Option<&[u8]>)> =
                    hs.iter().map(|(n, v)| (n.as_str(), v.as_deref())).collect();
                builder.push(*ts, k.as_deref(), v.as_deref(), &hs);
            }
            let b = builder.build_compressed(codec).unwrap();
            validate(&b).unwrap();
            let got = decode_all(&b).unwrap();
            prop_assert_eq!(got.len(), recs.len());
            for (i, (g, (ts, k, v, hs))) in got.iter().zip(&recs).enumerate() {
                prop_assert_eq!(g.offset, base + i as i64);
                prop_assert_eq!(g.timestamp, *ts);
                prop_assert_eq!(g.key.as_deref(), k.as_deref());
                prop_assert_eq!(g.value.as_deref(), v.as_deref());
                let want: Vec<(String, Option<Bytes>)> = hs
                    .iter()
                    .map(|(n, v)| (n.clone(), v.clone().map(Bytes::from)))
                    .collect();
                prop_assert_eq!(&g.headers, &want);
            }
        }

        #[test]
        fn prop_corrupt_records_never_panic(recs in arb_records(), pos in any::<usize>(), byte in any::<u8>()) {
            let mut builder = RecordBatchBuilder::new();
            for (ts, k, v, _) in &recs {
                builder.push(*ts, k.as_deref(), v.as_deref(), &[]);
            }
            let mut b = builder.build();
            let i = BATCH_HEADER_LEN + pos % (b.len() - BATCH_HEADER_LEN);
            b[i] = byte;
            let _ = decode_all(&b);
            for len in 0..b.len() {
                let _ = decode_all(&b[..len]);
            }
        }
    }
}

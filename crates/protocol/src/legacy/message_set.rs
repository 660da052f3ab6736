//! Message format v0/v1 ("message sets") to and from v2 record batches.
//!
//! Layout of one message (big-endian), repeated back to back in a set:
//!
//! ```text
//! offset i64 | messageSize i32 | crc u32 | magic i8 | attributes i8 |
//! [timestamp i64, v1 only] | key bytes (i32 length, -1 null) | value bytes
//! ```
//!
//! The CRC-32 (IEEE) covers magic..end. Attribute bits 0-2 are the codec; bit 3 (v1) is the
//! timestamp type. A compressed message is a *wrapper*: its value is a compressed message
//! set of uncompressed inner messages. In v0 the inner offsets are absolute; in v1 they are
//! relative (0..n-1) and the wrapper carries the absolute offset of the last inner message.
//!
//! The log only stores v2 batches (docs/ARCHITECTURE.md §6), so produce converts up and fetch converts
//! down, as Kafka does for old clients.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::LegacyError;
use super::crc32::crc32;
use super::wire;
use crate::batch::{Compression, RecordBatchBuilder, TimestampType, split_batches};
use crate::compression::{compress, decompress};
use crate::records::decode_records;

/// Message format v0 (no timestamps).
pub const MAGIC_V0: i8 = 0;
/// Message format v1 (KIP-32 timestamps, relative inner offsets).
pub const MAGIC_V1: i8 = 1;
/// offset + messageSize.
pub const LOG_OVERHEAD: usize = 12;
/// crc + magic + attributes + key length + value length.
pub const MIN_MESSAGE_V0: usize = 14;
/// [`MIN_MESSAGE_V0`] plus the timestamp.
pub const MIN_MESSAGE_V1: usize = 22;
pub use crate::records::MAX_DECOMPRESSED_BYTES;

const CODEC_MASK: i8 = 0x07;
const LOG_APPEND_TIME_BIT: i8 = 0x08;
/// Kafka's "no timestamp", which every v0 message gets on up-conversion.
const NO_TIMESTAMP: i64 = -1;

/// One message after expanding compressed wrappers, with its absolute offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LegacyMessage {
    pub offset: i64,
    /// -1 for v0 messages.
    pub timestamp: i64,
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
}

/// A parsed message set: its messages in order and the codec of the (last) compressed
/// wrapper, which Kafka calls the source codec; `None` if nothing was compressed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageSet {
    pub messages: Vec<LegacyMessage>,
    pub codec: Compression,
}

/// A message as it is on the wire, before wrapper expansion.
struct RawMessage {
    offset: i64,
    magic: i8,
    attributes: i8,
    timestamp: i64,
    key: Option<Bytes>,
    value: Option<Bytes>,
}

/// Reads one message, checking its size, CRC and magic. A partial message is an error:
/// producers send whole messages.
fn read_message(buf: &mut Bytes) -> Result<RawMessage, LegacyError> {
    let offset = wire::i64(buf, "message offset")?;
    let size = wire::i32(buf, "message size")?;
    let size = usize::try_from(size).map_err(|_| LegacyError::Corrupt("negative message size"))?;
    if size < MIN_MESSAGE_V0 {
        return Err(LegacyError::Corrupt(
            "message smaller than its fixed fields",
        ));
    }
    if buf.remaining() < size {
        return Err(LegacyError::Corrupt("partial message"));
    }
    let mut msg = buf.split_to(size);
    let stored = msg.get_u32();
    let computed = crc32(&msg);
    if stored != computed {
        return Err(LegacyError::CrcMismatch { stored, computed });
    }
    let magic = wire::i8(&mut msg, "magic")?;
    let attributes = wire::i8(&mut msg, "attributes")?;
    let timestamp = match magic {
        MAGIC_V0 => NO_TIMESTAMP,
        MAGIC_V1 => wire::i64(&mut msg, "timestamp")?,
        _ => return Err(LegacyError::Corrupt("message magic is neither 0 nor 1")),
    };
    let key = wire::nullable_bytes(&mut msg, "message key")?;
    let value = wire::nullable_bytes(&mut msg, "message value")?;
    if msg.has_remaining() {
        return Err(LegacyError::Corrupt("message size larger than its fields"));
    }
    Ok(RawMessage {
        offset,
        magic,
        attributes,
        timestamp,
        key,
        value,
    })
}

fn codec_of(attributes: i8) -> Result<Compression, LegacyError> {
    // The mask keeps 0..=7, so the cast cannot lose anything.
    match Compression::from_id((attributes & CODEC_MASK) as u8)? {
        Compression::Zstd => Err(LegacyError::Corrupt(
            "zstd needs message format v2 (KIP-110)",
        )),
        codec => Ok(codec),
    }
}

/// Parses a whole message set, expanding compressed wrappers (checking every inner CRC),
/// with at most `max_decompressed_bytes` of decompressed data in total.
///
/// Inner messages of a wrapper must be uncompressed, as Kafka requires; v1 relative inner
/// offsets are made absolute from the wrapper's offset, and a v1 wrapper marked
/// LogAppendTime gives its timestamp to every inner message.
pub fn parse(
    message_set: &Bytes,
    max_decompressed_bytes: usize,
) -> Result<MessageSet, LegacyError> {
    let mut buf = message_set.clone();
    if !buf.has_remaining() {
        return Err(LegacyError::Corrupt("empty message set"));
    }
    let mut budget = max_decompressed_bytes;
    let mut set = MessageSet {
        messages: Vec::new(),
        codec: Compression::None,
    };
    while buf.has_remaining() {
        let m = read_message(&mut buf)?;
        let codec = codec_of(m.attributes)?;
        if codec == Compression::None {
            set.messages.push(LegacyMessage {
                offset: m.offset,
                timestamp: m.timestamp,
                key: m.key,
                value: m.value,
            });
            continue;
        }
        set.codec = codec;
        let value = m
            .value
            .ok_or(LegacyError::Corrupt("compressed wrapper without a value"))?;
        let inner = decompress(codec, &value, budget)?;
        budget = budget.saturating_sub(inner.len());
        let mut inner = Bytes::from(inner);
        if !inner.has_remaining() {
            return Err(LegacyError::Corrupt("compressed wrapper holds no messages"));
        }
        let start = set.messages.len();
        while inner.has_remaining() {
            let im = read_message(&mut inner)?;
            if im.attributes & CODEC_MASK != 0 {
                return Err(LegacyError::Corrupt("compressed message inside a wrapper"));
            }
            let timestamp = if m.magic == MAGIC_V1 && m.attributes & LOG_APPEND_TIME_BIT != 0 {
                m.timestamp
            } else {
                im.timestamp
            };
            set.messages.push(LegacyMessage {
                offset: im.offset,
                timestamp,
                key: im.key,
                value: im.value,
            });
        }
        if m.magic == MAGIC_V1 {
            let inner = set.messages.get_mut(start..).unwrap_or_default();
            let last_relative = inner.last().map_or(0, |l| l.offset);
            let base = m.offset.wrapping_sub(last_relative);
            for msg in inner {
                msg.offset = base.wrapping_add(msg.offset);
            }
        }
    }
    Ok(set)
}

/// Converts a produced message set into one v2 batch (CreateTime, no producer id).
///
/// Keys, values and timestamps are kept (v0 messages get timestamp -1, as Kafka's own
/// up-conversion does); the batch's base offset is the first message's offset and records
/// follow consecutively (the broker assigns real offsets on append anyway). If any wrapper
/// was compressed, the batch is recompressed with that codec, so storage and later
/// fetches keep the producer's choice; otherwise it is uncompressed.
pub fn to_v2_batches(
    message_set: &Bytes,
    max_decompressed_bytes: usize,
) -> Result<Bytes, LegacyError> {
    let set = parse(message_set, max_decompressed_bytes)?;
    let first = set
        .messages
        .first()
        .ok_or(LegacyError::Corrupt("empty message set"))?;
    // A v1 wrapper sent with offset 0 makes the first relative offset negative; the
    // broker reassigns offsets anyway, so keep the batch well-formed.
    let mut builder = RecordBatchBuilder::new().base_offset(first.offset.max(0));
    for m in &set.messages {
        builder.push(m.timestamp, m.key.as_deref(), m.value.as_deref(), &[]);
    }
    let batch = match set.codec {
        Compression::None => builder.build(),
        codec => builder.build_compressed(codec)?,
    };
    Ok(Bytes::from(batch))
}

/// Down-converts stored v2 batches to a message set of format `magic` (0 or 1).
///
/// - Control batches (transaction markers) are dropped; old clients cannot read them.
/// - A partial trailing batch (the fetch size cut it) is dropped, so the output holds whole
///   messages only.
/// - A compressed batch becomes one compressed wrapper with the same codec: v1 inner
///   offsets relative to the batch's base offset, v0 absolute; the wrapper carries the last
///   inner offset and (v1) the largest timestamp. Zstd has no v0/v1 form and LZ4 in v0 used
///   a non-standard frame checksum, so those batches become uncompressed messages.
/// - Record headers are dropped: v0/v1 cannot carry them.
/// - Records below `first_offset` are dropped from uncompressed output (clients skip them
///   in compressed wrappers, which must stay whole); pass `i64::MIN` to keep all.
///
/// If a batch cannot be decoded, conversion stops there and what came before is returned;
/// if it is the first, the error is.
pub fn from_v2_batches(
    batches: &[u8],
    magic: i8,
    first_offset: i64,
    max_decompressed_bytes: usize,
) -> Result<Bytes, LegacyError> {
    from_v2_bytes(
        &Bytes::copy_from_slice(batches),
        magic,
        first_offset,
        max_decompressed_bytes,
        SetLimit::UNBOUNDED,
    )
}

/// How large a down-converted message set may grow. Messages are never cut: the set
/// ends before the first message that does not fit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SetLimit {
    /// The bytes the whole set may take.
    pub max_bytes: usize,
    /// The bytes the set's first message may take on its own, when more than
    /// `max_bytes`: a client must receive at least one message to make progress.
    pub first_message_max_bytes: usize,
}

impl SetLimit {
    /// No limit.
    pub const UNBOUNDED: SetLimit = SetLimit {
        max_bytes: usize::MAX,
        first_message_max_bytes: usize::MAX,
    };
}

/// The room left in a message set being written.
struct Room {
    limit: SetLimit,
    used: usize,
}

impl Room {
    /// Takes room for a message of `size` bytes, if it fits.
    fn take(&mut self, size: usize) -> bool {
        let bound = if self.used == 0 {
            self.limit.max_bytes.max(self.limit.first_message_max_bytes)
        } else {
            self.limit.max_bytes
        };
        let after = self.used.saturating_add(size);
        if after > bound {
            return false;
        }
        self.used = after;
        true
    }
}

/// Whether a batch was converted whole or the set filled up inside it.
enum Converted {
    Whole,
    Full,
}

/// [`from_v2_batches`] without copying the input, writing at most what `limit` allows;
/// nothing beyond that is decoded or built, except the records of one batch.
pub fn from_v2_bytes(
    batches: &Bytes,
    magic: i8,
    first_offset: i64,
    max_decompressed_bytes: usize,
    limit: SetLimit,
) -> Result<Bytes, LegacyError> {
    if magic != MAGIC_V0 && magic != MAGIC_V1 {
        return Err(LegacyError::Corrupt("target magic is neither 0 nor 1"));
    }
    let mut out = BytesMut::new();
    let mut room = Room { limit, used: 0 };
    for item in split_batches(batches) {
        let Ok((header, range)) = item else {
            break; // partial trailing batch
        };
        if header.is_control() {
            continue;
        }
        let batch = batches.slice(range);
        let mark = out.len();
        let target = Target {
            magic,
            first_offset,
            max_decompressed_bytes,
        };
        match convert_batch(&batch, target, &mut room, &mut out) {
            Ok(Converted::Whole) => {}
            Ok(Converted::Full) => break,
            Err(e) => {
                out.truncate(mark);
                if out.is_empty() {
                    return Err(e);
                }
                break;
            }
        }
    }
    Ok(out.freeze())
}

/// What a batch is converted to.
#[derive(Clone, Copy)]
struct Target {
    magic: i8,
    first_offset: i64,
    max_decompressed_bytes: usize,
}

/// Appends the messages of one v2 batch to `out`, as many as `room` allows.
fn convert_batch(
    batch: &Bytes,
    target: Target,
    room: &mut Room,
    out: &mut BytesMut,
) -> Result<Converted, LegacyError> {
    let Target {
        magic,
        first_offset,
        max_decompressed_bytes,
    } = target;
    let records = decode_records(batch, max_decompressed_bytes)?;
    let header = *records.header();
    let ts_bit = if magic == MAGIC_V1 && header.timestamp_type() == TimestampType::LogAppendTime {
        LOG_APPEND_TIME_BIT
    } else {
        0
    };
    let codec = match (header.compression()?, magic) {
        (Compression::Zstd, _) | (Compression::Lz4, MAGIC_V0) => Compression::None,
        (codec, _) => codec,
    };
    if codec == Compression::None {
        // One message per record, decoded one at a time: the set may fill up early.
        for r in records {
            let r = r?;
            if r.offset < first_offset {
                continue;
            }
            let (key, value) = (r.key.as_deref(), r.value.as_deref());
            if !room.take(message_len(magic, key, value)) {
                return Ok(Converted::Full);
            }
            write_message(out, magic, r.offset, ts_bit, r.timestamp, key, value)?;
        }
        return Ok(Converted::Whole);
    }
    let base = if magic == MAGIC_V1 {
        header.base_offset
    } else {
        0
    };
    let mut inner = BytesMut::new();
    let mut last_offset = None;
    let mut max_timestamp = None;
    for r in records {
        let r = r?;
        write_message(
            &mut inner,
            magic,
            r.offset.wrapping_sub(base),
            ts_bit,
            r.timestamp,
            r.key.as_deref(),
            r.value.as_deref(),
        )?;
        last_offset = Some(r.offset);
        max_timestamp = max_timestamp.max(Some(r.timestamp));
    }
    let Some(last_offset) = last_offset else {
        return Ok(Converted::Whole); // emptied by compaction
    };
    let compressed = compress(codec, &inner)?;
    drop(inner);
    let wrapper_ts = match header.timestamp_type() {
        TimestampType::LogAppendTime => header.max_timestamp,
        TimestampType::CreateTime => max_timestamp.unwrap_or(NO_TIMESTAMP),
    };
    if !room.take(message_len(magic, None, Some(&compressed))) {
        return Ok(Converted::Full);
    }
    // Codec ids 1-3 fit the 3 attribute bits.
    let attributes = (codec.id() as i8) | ts_bit;
    write_message(
        out,
        magic,
        last_offset,
        attributes,
        wrapper_ts,
        None,
        Some(&compressed),
    )?;
    Ok(Converted::Whole)
}

/// The bytes a message of format `magic` takes in a set, offset and size included.
pub fn message_len(magic: i8, key: Option<&[u8]>, value: Option<&[u8]>) -> usize {
    LOG_OVERHEAD.saturating_add(message_size(magic, key, value))
}

/// The message's `messageSize`: everything after the offset and the size field.
fn message_size(magic: i8, key: Option<&[u8]>, value: Option<&[u8]>) -> usize {
    let fixed = if magic == MAGIC_V1 {
        MIN_MESSAGE_V1
    } else {
        MIN_MESSAGE_V0
    };
    fixed
        .saturating_add(key.map_or(0, <[u8]>::len))
        .saturating_add(value.map_or(0, <[u8]>::len))
}

/// Appends one message of format `magic` (the timestamp is ignored for v0).
pub fn write_message(
    out: &mut BytesMut,
    magic: i8,
    offset: i64,
    attributes: i8,
    timestamp: i64,
    key: Option<&[u8]>,
    value: Option<&[u8]>,
) -> Result<(), LegacyError> {
    let size = message_size(magic, key, value);
    out.reserve(LOG_OVERHEAD.saturating_add(size));
    out.put_i64(offset);
    out.put_i32(wire::len_i32(size, "message")?);
    let crc_at = out.len();
    out.put_u32(0);
    out.put_i8(magic);
    out.put_i8(attributes);
    if magic == MAGIC_V1 {
        out.put_i64(timestamp);
    }
    wire::put_nullable_bytes(out, key)?;
    wire::put_nullable_bytes(out, value)?;
    let crc = crc32(out.get(crc_at.saturating_add(4)..).unwrap_or_default());
    if let Some(slot) = out.get_mut(crc_at..).and_then(|s| s.first_chunk_mut::<4>()) {
        *slot = crc.to_be_bytes();
    }
    Ok(())
}

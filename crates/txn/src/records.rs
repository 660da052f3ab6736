//! Codec for the records of `__transaction_state`.
//!
//! Keys and values use the schemas Kafka itself writes (`TransactionLogKey`
//! version 0 and `TransactionLogValue` versions 0 and 1): a big-endian
//! `int16` schema version followed by the fields. Keeping Kafka's layout
//! means the topic can be read with Kafka's own tools
//! (`kafka-console-consumer --formatter ...TransactionLogMessageFormatter`).
//!
//! We write version 0 unless the record must carry the previous or next
//! producer id (a producer id rotation), which only the flexible version 1
//! holds, as tagged fields. Every read is bounds-checked: a damaged record
//! yields a [`CodecError`], never a panic.

use bytes::{BufMut, Bytes, BytesMut};

use crate::error::CodecError;
use crate::state::TxnState;

/// Tag of `PreviousProducerId` in `TransactionLogValue` v1.
const TAG_PREVIOUS_PRODUCER_ID: u32 = 0;
/// Tag of `NextProducerId` in `TransactionLogValue` v1.
const TAG_NEXT_PRODUCER_ID: u32 = 1;

/// The key of a `__transaction_state` record (`TransactionLogKey` v0).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TxnLogKey {
    /// The transactional id.
    pub transactional_id: String,
}

/// The state of a transactional id (`TransactionLogValue`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnLogValue {
    /// Current producer id.
    pub producer_id: i64,
    /// The producer id before the last rotation, -1 if none (v1 tagged field).
    pub previous_producer_id: i64,
    /// The producer id the transaction will continue with once it completes
    /// (epoch exhaustion with KIP-890 epoch bumps), -1 if none (v1 tagged field).
    pub next_producer_id: i64,
    /// Current producer epoch.
    pub producer_epoch: i16,
    /// Transaction timeout of the producer.
    pub transaction_timeout_ms: i32,
    /// The state.
    pub state: TxnState,
    /// Partitions of the transaction, grouped by topic.
    pub partitions: Vec<(String, Vec<i32>)>,
    /// When the state last changed (ms since the epoch).
    pub last_update_timestamp_ms: i64,
    /// When the transaction started (ms since the epoch), -1 if none is open.
    pub start_timestamp_ms: i64,
}

impl TxnLogKey {
    /// Encodes the key (version 0).
    pub fn encode(&self) -> Result<Bytes, CodecError> {
        let mut w = Writer::default();
        w.i16(0);
        w.string(&self.transactional_id, "transactional_id")?;
        Ok(w.finish())
    }

    /// Decodes a key.
    pub fn decode(buf: &[u8]) -> Result<Self, CodecError> {
        let mut r = Reader::new(buf, false);
        match r.i16("key version")? {
            0 => Ok(Self {
                transactional_id: r.string("transactional_id")?,
            }),
            version => Err(CodecError::UnsupportedVersion {
                record: "TransactionLogKey",
                version,
            }),
        }
    }
}

impl TxnLogValue {
    /// Encodes the value: version 1 when a previous or next producer id must
    /// be kept, version 0 otherwise. Empty transactions store null partitions,
    /// like Kafka.
    pub fn encode(&self) -> Result<Bytes, CodecError> {
        let flexible = self.previous_producer_id >= 0 || self.next_producer_id >= 0;
        let mut w = Writer {
            buf: BytesMut::new(),
            flexible,
        };
        w.i16(i16::from(flexible));
        w.i64(self.producer_id);
        w.i16(self.producer_epoch);
        w.i32(self.transaction_timeout_ms);
        w.buf.put_i8(self.state.id());
        if self.state == TxnState::Empty {
            w.null_array();
        } else {
            w.array_len(self.partitions.len(), "transaction_partitions")?;
            for (topic, partitions) in &self.partitions {
                w.string(topic, "topic")?;
                w.array_len(partitions.len(), "partition_ids")?;
                for p in partitions {
                    w.i32(*p);
                }
                w.no_tagged_fields();
            }
        }
        w.i64(self.last_update_timestamp_ms);
        w.i64(self.start_timestamp_ms);
        if flexible {
            let tags: Vec<(u32, i64)> = [
                (TAG_PREVIOUS_PRODUCER_ID, self.previous_producer_id),
                (TAG_NEXT_PRODUCER_ID, self.next_producer_id),
            ]
            .into_iter()
            .filter(|(_, v)| *v >= 0)
            .collect();
            w.unsigned_varint(u32::try_from(tags.len()).unwrap_or(0));
            for (tag, value) in tags {
                w.unsigned_varint(tag);
                w.unsigned_varint(8);
                w.i64(value);
            }
        }
        Ok(w.finish())
    }

    /// Decodes version 0 or 1.
    pub fn decode(buf: &[u8]) -> Result<Self, CodecError> {
        let version = Reader::new(buf, false).i16("value version")?;
        if !(0..=1).contains(&version) {
            return Err(CodecError::UnsupportedVersion {
                record: "TransactionLogValue",
                version,
            });
        }
        let mut r = Reader::new(buf.get(2..).unwrap_or_default(), version >= 1);
        let producer_id = r.i64("producer_id")?;
        let producer_epoch = r.i16("producer_epoch")?;
        let transaction_timeout_ms = r.i32("transaction_timeout_ms")?;
        let status = r.i8("transaction_status")?;
        let state = TxnState::from_id(status).ok_or(CodecError::InvalidValue {
            field: "transaction_status",
            value: i64::from(status),
        })?;
        let mut partitions = Vec::new();
        if let Some(count) = r.array_len("transaction_partitions")? {
            for _ in 0..count {
                let topic = r.string("topic")?;
                let n = r.array_len("partition_ids")?.unwrap_or(0);
                let mut ids = Vec::with_capacity(n.min(1024));
                for _ in 0..n {
                    ids.push(r.i32("partition_id")?);
                }
                r.tagged_fields(|_, _| Ok(()))?;
                partitions.push((topic, ids));
            }
        }
        let last_update_timestamp_ms = r.i64("transaction_last_update_timestamp_ms")?;
        let start_timestamp_ms = r.i64("transaction_start_timestamp_ms")?;
        let mut previous_producer_id = -1;
        let mut next_producer_id = -1;
        r.tagged_fields(|tag, data| {
            let field = match tag {
                TAG_PREVIOUS_PRODUCER_ID => &mut previous_producer_id,
                TAG_NEXT_PRODUCER_ID => &mut next_producer_id,
                _ => return Ok(()),
            };
            *field = Reader::new(data, false).i64("tagged producer id")?;
            Ok(())
        })?;
        Ok(Self {
            producer_id,
            previous_producer_id,
            next_producer_id,
            producer_epoch,
            transaction_timeout_ms,
            state,
            partitions,
            last_update_timestamp_ms,
            start_timestamp_ms,
        })
    }
}

/// Bounds-checked reader over one record; `flexible` selects the compact
/// encodings of flexible versions.
struct Reader<'a> {
    buf: &'a [u8],
    flexible: bool,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8], flexible: bool) -> Self {
        Self { buf, flexible }
    }

    fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], CodecError> {
        if self.buf.len() < n {
            return Err(CodecError::Truncated(field));
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], CodecError> {
        let bytes = self.take(N, field)?;
        bytes.try_into().map_err(|_| CodecError::Truncated(field))
    }

    fn i8(&mut self, field: &'static str) -> Result<i8, CodecError> {
        Ok(i8::from_be_bytes(self.array(field)?))
    }

    fn i16(&mut self, field: &'static str) -> Result<i16, CodecError> {
        Ok(i16::from_be_bytes(self.array(field)?))
    }

    fn i32(&mut self, field: &'static str) -> Result<i32, CodecError> {
        Ok(i32::from_be_bytes(self.array(field)?))
    }

    fn i64(&mut self, field: &'static str) -> Result<i64, CodecError> {
        Ok(i64::from_be_bytes(self.array(field)?))
    }

    fn unsigned_varint(&mut self, field: &'static str) -> Result<u32, CodecError> {
        let mut value: u32 = 0;
        for i in 0..5 {
            let [byte] = self.array::<1>(field)?;
            value |= u32::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(CodecError::InvalidLength {
            field,
            len: i64::from(value),
        })
    }

    /// A length prefix: `None` for null. Lengths beyond the remaining bytes
    /// are rejected early so a damaged prefix cannot make us allocate.
    fn length(
        &mut self,
        field: &'static str,
        elem_size: usize,
    ) -> Result<Option<usize>, CodecError> {
        let len: i64 = if self.flexible {
            i64::from(self.unsigned_varint(field)?) - 1
        } else if elem_size == 1 {
            i64::from(self.i16(field)?)
        } else {
            i64::from(self.i32(field)?)
        };
        if len == -1 {
            return Ok(None);
        }
        let n = usize::try_from(len).map_err(|_| CodecError::InvalidLength { field, len })?;
        if n.saturating_mul(elem_size) > self.buf.len() {
            return Err(CodecError::InvalidLength { field, len });
        }
        Ok(Some(n))
    }

    fn string(&mut self, field: &'static str) -> Result<String, CodecError> {
        let len = self
            .length(field, 1)?
            .ok_or(CodecError::InvalidLength { field, len: -1 })?;
        let bytes = self.take(len, field)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| CodecError::InvalidUtf8(field))
    }

    /// An array length (each element at least 1 byte in flexible versions, 4 otherwise).
    fn array_len(&mut self, field: &'static str) -> Result<Option<usize>, CodecError> {
        self.length(field, if self.flexible { 1 } else { 4 })
    }

    /// Reads the tagged fields of a flexible struct (nothing otherwise),
    /// handing each to `f`.
    fn tagged_fields(
        &mut self,
        mut f: impl FnMut(u32, &[u8]) -> Result<(), CodecError>,
    ) -> Result<(), CodecError> {
        if !self.flexible {
            return Ok(());
        }
        let count = self.unsigned_varint("tagged fields")?;
        for _ in 0..count {
            let tag = self.unsigned_varint("tag")?;
            let size = self.unsigned_varint("tag size")?;
            let size = usize::try_from(size).map_err(|_| CodecError::InvalidLength {
                field: "tag size",
                len: i64::from(size),
            })?;
            let data = self.take(size, "tagged field")?;
            f(tag, data)?;
        }
        Ok(())
    }
}

/// Writer for one record; `flexible` selects the compact encodings.
#[derive(Default)]
struct Writer {
    buf: BytesMut,
    flexible: bool,
}

impl Writer {
    fn i16(&mut self, v: i16) {
        self.buf.put_i16(v);
    }

    fn i32(&mut self, v: i32) {
        self.buf.put_i32(v);
    }

    fn i64(&mut self, v: i64) {
        self.buf.put_i64(v);
    }

    fn unsigned_varint(&mut self, mut v: u32) {
        while v >= 0x80 {
            self.buf.put_u8((v as u8 & 0x7f) | 0x80);
            v >>= 7;
        }
        self.buf.put_u8(v as u8);
    }

    fn string(&mut self, v: &str, field: &'static str) -> Result<(), CodecError> {
        if self.flexible {
            let len = u32::try_from(v.len())
                .ok()
                .and_then(|l| l.checked_add(1))
                .ok_or(CodecError::TooLarge(field))?;
            self.unsigned_varint(len);
        } else {
            let len = i16::try_from(v.len()).map_err(|_| CodecError::TooLarge(field))?;
            self.i16(len);
        }
        self.buf.put_slice(v.as_bytes());
        Ok(())
    }

    fn array_len(&mut self, len: usize, field: &'static str) -> Result<(), CodecError> {
        if self.flexible {
            let len = u32::try_from(len)
                .ok()
                .and_then(|l| l.checked_add(1))
                .ok_or(CodecError::TooLarge(field))?;
            self.unsigned_varint(len);
        } else {
            let len = i32::try_from(len).map_err(|_| CodecError::TooLarge(field))?;
            self.i32(len);
        }
        Ok(())
    }

    fn null_array(&mut self) {
        if self.flexible {
            self.unsigned_varint(0);
        } else {
            self.i32(-1);
        }
    }

    fn no_tagged_fields(&mut self) {
        if self.flexible {
            self.unsigned_varint(0);
        }
    }

    fn finish(self) -> Bytes {
        self.buf.freeze()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    fn value(state: TxnState) -> TxnLogValue {
        TxnLogValue {
            producer_id: 1000,
            previous_producer_id: -1,
            next_producer_id: -1,
            producer_epoch: 3,
            transaction_timeout_ms: 60_000,
            state,
            partitions: if state == TxnState::Empty {
                vec![]
            } else {
                vec![("a".into(), vec![0, 2]), ("b".into(), vec![1])]
            },
            last_update_timestamp_ms: 1_700_000_000_123,
            start_timestamp_ms: 1_700_000_000_000,
        }
    }

    #[test]
    fn key_matches_kafka_bytes() {
        let key = TxnLogKey {
            transactional_id: "tx".into(),
        };
        let bytes = key.encode().unwrap();
        assert_eq!(&bytes[..], &[0, 0, 0, 2, b't', b'x']);
        assert_eq!(TxnLogKey::decode(&bytes).unwrap(), key);
        assert!(TxnLogKey::decode(&[0, 1, 0, 0]).is_err());
    }

    #[test]
    fn value_v0_layout() {
        let v = value(TxnState::Empty);
        let bytes = v.encode().unwrap();
        let mut expected = vec![0u8, 0];
        expected.extend_from_slice(&1000i64.to_be_bytes());
        expected.extend_from_slice(&3i16.to_be_bytes());
        expected.extend_from_slice(&60_000i32.to_be_bytes());
        expected.push(0);
        expected.extend_from_slice(&(-1i32).to_be_bytes());
        expected.extend_from_slice(&1_700_000_000_123i64.to_be_bytes());
        expected.extend_from_slice(&1_700_000_000_000i64.to_be_bytes());
        assert_eq!(&bytes[..], &expected[..]);
        assert_eq!(TxnLogValue::decode(&bytes).unwrap(), v);
    }

    #[test]
    fn values_round_trip_in_both_versions() {
        for state in TxnState::ALL {
            let v = value(state);
            assert_eq!(TxnLogValue::decode(&v.encode().unwrap()).unwrap(), v);
            let mut rotated = value(state);
            rotated.previous_producer_id = 7;
            rotated.next_producer_id = 9;
            let bytes = rotated.encode().unwrap();
            assert_eq!(&bytes[..2], &[0, 1]);
            assert_eq!(TxnLogValue::decode(&bytes).unwrap(), rotated);
        }
    }

    #[test]
    fn damaged_values_are_errors() {
        let bytes = value(TxnState::Ongoing).encode().unwrap();
        for cut in 0..bytes.len() {
            assert!(TxnLogValue::decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut bad_status = bytes.to_vec();
        bad_status[16] = 42;
        assert!(matches!(
            TxnLogValue::decode(&bad_status),
            Err(CodecError::InvalidValue { .. })
        ));
        let mut huge = bytes.to_vec();
        huge[17..21].copy_from_slice(&i32::MAX.to_be_bytes());
        assert!(TxnLogValue::decode(&huge).is_err());
        assert!(TxnLogValue::decode(&[0, 2]).is_err());
    }
}

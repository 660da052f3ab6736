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

use bytes::Bytes;
use sluice_protocol::schema_codec::{Reader, Writer};

use crate::CodecError;
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
        let mut w = Writer::new(flexible);
        w.i16(i16::from(flexible));
        w.i64(self.producer_id);
        w.i16(self.producer_epoch);
        w.i32(self.transaction_timeout_ms);
        w.i8(self.state.id());
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
        let flexible = version >= 1;
        let mut r = Reader::new(buf.get(2..).unwrap_or_default(), flexible);
        // Every array element takes at least 4 bytes in version 0 (an int32
        // or a string and an array) and at least 1 in the compact version 1.
        let min_elem_size = if flexible { 1 } else { 4 };
        let producer_id = r.i64("producer_id")?;
        let producer_epoch = r.i16("producer_epoch")?;
        let transaction_timeout_ms = r.i32("transaction_timeout_ms")?;
        let status = r.i8("transaction_status")?;
        let state = TxnState::from_id(status).ok_or(CodecError::InvalidValue {
            field: "transaction_status",
            value: i64::from(status),
        })?;
        let mut partitions = Vec::new();
        if let Some(count) = r.nullable_array_len("transaction_partitions", min_elem_size)? {
            for _ in 0..count {
                let topic = r.string("topic")?;
                let n = r
                    .nullable_array_len("partition_ids", min_elem_size)?
                    .unwrap_or(0);
                let mut ids = Vec::with_capacity(n.min(1024));
                for _ in 0..n {
                    ids.push(r.i32("partition_id")?);
                }
                r.skip_tagged_fields()?;
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
        assert_eq!(
            TxnLogKey::decode(&[0, 0, 0xff, 0xff]),
            Err(CodecError::UnexpectedNull("transactional_id"))
        );
        assert_eq!(
            TxnLogKey::decode(&[0, 0, 0, 3, b't']),
            Err(CodecError::Truncated("transactional_id"))
        );
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

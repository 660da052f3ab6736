//! Tests of the legacy module against hand-built bytes.

use bytes::Bytes;
use kafka_protocol::messages::{ApiKey, RequestKind, ResponseKind, TopicName};
use kafka_protocol::protocol::{Message, StrBytes};
use proptest::prelude::*;

use super::message_set::{
    self, LegacyMessage, MAX_DECOMPRESSED_BYTES, from_v2_batches, to_v2_batches,
};
use super::*;
use crate::batch::{Compression, RecordBatchBuilder, transaction_marker, validate};
use crate::compression::compress;
use crate::records::decode_records;

/// Big-endian byte writer for hand-built requests and expected responses.
#[derive(Default)]
struct W(Vec<u8>);

impl W {
    fn i8(mut self, v: i8) -> Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    fn i16(mut self, v: i16) -> Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    fn i32(mut self, v: i32) -> Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    fn i64(mut self, v: i64) -> Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    fn str(self, s: &str) -> Self {
        let mut w = self.i16(s.len() as i16);
        w.0.extend_from_slice(s.as_bytes());
        w
    }
    fn null_str(self) -> Self {
        self.i16(-1)
    }
    fn bytes(self, b: Option<&[u8]>) -> Self {
        match b {
            None => self.i32(-1),
            Some(b) => {
                let mut w = self.i32(b.len() as i32);
                w.0.extend_from_slice(b);
                w
            }
        }
    }
    fn raw(mut self, b: &[u8]) -> Self {
        self.0.extend_from_slice(b);
        self
    }
    fn done(self) -> Bytes {
        Bytes::from(self.0)
    }
}

/// One message, built field by field as the protocol guide describes it.
fn msg(
    magic: i8,
    offset: i64,
    attributes: i8,
    timestamp: i64,
    key: Option<&[u8]>,
    value: Option<&[u8]>,
) -> Vec<u8> {
    let mut body = W::default().i8(magic).i8(attributes);
    if magic == 1 {
        body = body.i64(timestamp);
    }
    let body = body.bytes(key).bytes(value).0;
    let crc = crc32(&body);
    W::default()
        .i64(offset)
        .i32(4 + body.len() as i32)
        .raw(&crc.to_be_bytes())
        .raw(&body)
        .0
}

fn set_of(messages: &[Vec<u8>]) -> Bytes {
    Bytes::from(messages.concat())
}

fn sample_v0() -> Bytes {
    set_of(&[
        msg(0, 0, 0, -1, Some(b"k0"), Some(b"v0")),
        msg(0, 1, 0, -1, None, Some(b"v1")),
        msg(0, 2, 0, -1, Some(b"k2"), None),
    ])
}

fn sample_v1() -> Bytes {
    set_of(&[
        msg(1, 0, 0, 1_000, Some(b"k0"), Some(b"v0")),
        msg(1, 1, 0, 1_005, None, Some(b"v1")),
        msg(1, 2, 0, 999, Some(b"k2"), Some(b"v2")),
    ])
}

/// A compressed wrapper around `inner` messages (offsets already as the format wants).
fn wrapper(
    magic: i8,
    offset: i64,
    codec: Compression,
    timestamp: i64,
    inner: &[Vec<u8>],
) -> Vec<u8> {
    let compressed = compress(codec, &inner.concat()).unwrap();
    msg(
        magic,
        offset,
        codec.id() as i8,
        timestamp,
        None,
        Some(&compressed),
    )
}

fn records_of(batch: &Bytes) -> Vec<(i64, i64, Option<Bytes>, Option<Bytes>)> {
    decode_records(batch, MAX_DECOMPRESSED_BYTES)
        .unwrap()
        .map(|r| {
            let r = r.unwrap();
            (r.offset, r.timestamp, r.key, r.value)
        })
        .collect()
}

fn b(s: &str) -> Option<Bytes> {
    Some(Bytes::copy_from_slice(s.as_bytes()))
}

// ---------------------------------------------------------------- message sets

#[test]
fn v0_uncompressed_round_trip_is_byte_exact() {
    let set = sample_v0();
    let batch = to_v2_batches(&set, MAX_DECOMPRESSED_BYTES).unwrap();
    let header = validate(&batch).unwrap();
    assert_eq!(header.compression().unwrap(), Compression::None);
    assert_eq!(
        records_of(&batch),
        vec![
            (0, -1, b("k0"), b("v0")),
            (1, -1, None, b("v1")),
            (2, -1, b("k2"), None),
        ]
    );
    let back = from_v2_batches(&batch, 0, i64::MIN, MAX_DECOMPRESSED_BYTES).unwrap();
    assert_eq!(back, set);
}

#[test]
fn v1_uncompressed_round_trip_is_byte_exact() {
    let set = sample_v1();
    let batch = to_v2_batches(&set, MAX_DECOMPRESSED_BYTES).unwrap();
    validate(&batch).unwrap();
    assert_eq!(
        records_of(&batch),
        vec![
            (0, 1_000, b("k0"), b("v0")),
            (1, 1_005, None, b("v1")),
            (2, 999, b("k2"), b("v2")),
        ]
    );
    let back = from_v2_batches(&batch, 1, i64::MIN, MAX_DECOMPRESSED_BYTES).unwrap();
    assert_eq!(back, set);
}

#[test]
fn v1_gzip_wrapper_relative_offsets_round_trip() {
    // Inner offsets 0..2 relative; the wrapper carries the absolute offset of the last: 12.
    let inner = [
        msg(1, 0, 0, 2_000, Some(b"a"), Some(b"x")),
        msg(1, 1, 0, 2_001, None, Some(b"y")),
        msg(1, 2, 0, 2_003, Some(b"c"), None),
    ];
    let set = set_of(&[wrapper(1, 12, Compression::Gzip, 2_003, &inner)]);
    let batch = to_v2_batches(&set, MAX_DECOMPRESSED_BYTES).unwrap();
    let header = validate(&batch).unwrap();
    assert_eq!(header.compression().unwrap(), Compression::Gzip);
    assert_eq!(header.base_offset, 10);
    let expected = vec![
        (10, 2_000, b("a"), b("x")),
        (11, 2_001, None, b("y")),
        (12, 2_003, b("c"), None),
    ];
    assert_eq!(records_of(&batch), expected);

    let back = from_v2_batches(&batch, 1, i64::MIN, MAX_DECOMPRESSED_BYTES).unwrap();
    let parsed = message_set::parse(&back, MAX_DECOMPRESSED_BYTES).unwrap();
    assert_eq!(parsed.codec, Compression::Gzip);
    let got: Vec<_> = parsed
        .messages
        .into_iter()
        .map(|m| (m.offset, m.timestamp, m.key, m.value))
        .collect();
    assert_eq!(got, expected);
    // Exactly one wrapper, at the last offset, with relative inner offsets and max timestamp.
    let wire = &back;
    let raw_offset = i64::from_be_bytes(wire[..8].try_into().unwrap());
    assert_eq!(raw_offset, 12);
    let size = i32::from_be_bytes(wire[8..12].try_into().unwrap()) as usize;
    assert_eq!(back.len(), 12 + size);
    assert_eq!(wire[16], 1, "magic");
    assert_eq!(wire[17], 1, "gzip attribute");
    assert_eq!(i64::from_be_bytes(wire[18..26].try_into().unwrap()), 2_003);
}

#[test]
fn v0_gzip_wrapper_absolute_offsets_round_trip() {
    let inner = [
        msg(0, 5, 0, -1, Some(b"a"), Some(b"x")),
        msg(0, 6, 0, -1, Some(b"b"), Some(b"y")),
    ];
    let set = set_of(&[wrapper(0, 6, Compression::Gzip, -1, &inner)]);
    let batch = to_v2_batches(&set, MAX_DECOMPRESSED_BYTES).unwrap();
    let expected = vec![(5, -1, b("a"), b("x")), (6, -1, b("b"), b("y"))];
    assert_eq!(records_of(&batch), expected);
    let back = from_v2_batches(&batch, 0, i64::MIN, MAX_DECOMPRESSED_BYTES).unwrap();
    // Byte-exact: same inner messages, same gzip settings, wrapper at the last offset.
    assert_eq!(back, set);
}

#[test]
fn snappy_and_lz4_wrappers_expand() {
    for codec in [Compression::Snappy, Compression::Lz4] {
        let inner = [
            msg(1, 0, 0, 7, Some(b"k"), Some(b"v")),
            msg(1, 1, 0, 8, None, Some(b"w")),
        ];
        let set = set_of(&[wrapper(1, 1, codec, 8, &inner)]);
        let batch = to_v2_batches(&set, MAX_DECOMPRESSED_BYTES).unwrap();
        assert_eq!(validate(&batch).unwrap().compression().unwrap(), codec);
        assert_eq!(
            records_of(&batch),
            vec![(0, 7, b("k"), b("v")), (1, 8, None, b("w"))]
        );
    }
}

#[test]
fn log_append_time_wrapper_stamps_inner_messages() {
    let inner = [
        msg(1, 0, 0, 1, None, Some(b"x")),
        msg(1, 1, 0, 2, None, Some(b"y")),
    ];
    let set = set_of(&[wrapper(1, 1, Compression::Gzip, 99, &inner)]);
    // Set the LogAppendTime bit on the wrapper (rebuild it with attributes 1|8).
    let compressed = compress(Compression::Gzip, &inner.concat()).unwrap();
    let set2 = set_of(&[msg(1, 1, 1 | 8, 99, None, Some(&compressed))]);
    let parsed = message_set::parse(&set2, MAX_DECOMPRESSED_BYTES).unwrap();
    assert!(parsed.messages.iter().all(|m| m.timestamp == 99));
    let parsed = message_set::parse(&set, MAX_DECOMPRESSED_BYTES).unwrap();
    assert_eq!(parsed.messages[0].timestamp, 1);
}

#[test]
fn corrupt_crc_is_detected() {
    let mut raw = sample_v1().to_vec();
    let last = raw.len() - 1;
    raw[last] ^= 0xff;
    let err = to_v2_batches(&Bytes::from(raw), MAX_DECOMPRESSED_BYTES).unwrap_err();
    assert!(matches!(err, LegacyError::CrcMismatch { .. }), "{err}");

    // Inside a compressed wrapper too.
    let mut bad = msg(1, 0, 0, 1, None, Some(b"x"));
    let n = bad.len();
    bad[n - 1] ^= 1;
    let set = set_of(&[wrapper(1, 0, Compression::Gzip, 1, &[bad])]);
    let err = to_v2_batches(&set, MAX_DECOMPRESSED_BYTES).unwrap_err();
    assert!(matches!(err, LegacyError::CrcMismatch { .. }), "{err}");
}

#[test]
fn malformed_sets_are_rejected() {
    // Empty set, nested compression, zstd, magic 2, decompression bomb limit.
    assert!(to_v2_batches(&Bytes::new(), MAX_DECOMPRESSED_BYTES).is_err());
    let inner_wrapper = wrapper(
        1,
        0,
        Compression::Gzip,
        1,
        &[msg(1, 0, 0, 1, None, Some(b"x"))],
    );
    let nested = set_of(&[wrapper(1, 0, Compression::Gzip, 1, &[inner_wrapper])]);
    assert!(to_v2_batches(&nested, MAX_DECOMPRESSED_BYTES).is_err());
    assert!(to_v2_batches(&set_of(&[msg(1, 0, 4, 1, None, Some(b"x"))]), 1 << 20).is_err());
    let v2 = Bytes::from(
        RecordBatchBuilder::new()
            .record(1, None, Some(b"x"), &[])
            .build(),
    );
    assert!(to_v2_batches(&v2, MAX_DECOMPRESSED_BYTES).is_err());
    let big = [msg(1, 0, 0, 1, None, Some(&[0u8; 4096]))];
    let set = set_of(&[wrapper(1, 0, Compression::Gzip, 1, &big)]);
    assert!(to_v2_batches(&set, 1024).is_err());
    assert!(to_v2_batches(&set, MAX_DECOMPRESSED_BYTES).is_ok());
}

#[test]
fn every_truncation_is_an_error() {
    let inner = [msg(1, 0, 0, 1, Some(b"k"), Some(b"v"))];
    for set in [
        sample_v0(),
        sample_v1(),
        set_of(&[wrapper(1, 0, Compression::Gzip, 1, &inner)]),
    ] {
        // Cutting exactly between messages leaves a valid shorter set (except at 0).
        let mut boundaries = vec![];
        let mut at = 0;
        while at < set.len() {
            at += 12 + i32::from_be_bytes(set[at + 8..at + 12].try_into().unwrap()) as usize;
            boundaries.push(at);
        }
        for cut in (0..set.len()).filter(|c| !boundaries.contains(c)) {
            assert!(
                to_v2_batches(&set.slice(..cut), MAX_DECOMPRESSED_BYTES).is_err(),
                "cut at {cut}"
            );
        }
    }
}

proptest! {
    #[test]
    fn random_message_sets_never_panic(data in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = to_v2_batches(&Bytes::from(data.clone()), 1 << 20);
        let _ = from_v2_batches(&data, 0, i64::MIN, 1 << 20);
        let _ = from_v2_batches(&data, 1, i64::MIN, 1 << 20);
    }

    #[test]
    fn random_request_bodies_never_panic(data in proptest::collection::vec(any::<u8>(), 0..256)) {
        for (api, lo, hi, _) in TABLE {
            for version in *lo..=*hi {
                let mut body = Bytes::from(data.clone());
                let _ = decode_request(*api, version, &mut body);
            }
        }
    }

    #[test]
    fn mutated_messages_never_panic(flip in 0usize..80, bit in 0u8..8) {
        let mut raw = sample_v1().to_vec();
        let i = flip % raw.len();
        raw[i] ^= 1 << bit;
        let _ = to_v2_batches(&Bytes::from(raw), 1 << 20);
    }
}

// ---------------------------------------------------------------- fetch down-conversion

fn compressed_batch(codec: Compression, base: i64) -> Vec<u8> {
    RecordBatchBuilder::new()
        .base_offset(base)
        .record(5_000, Some(b"k1"), Some(b"v1"), &[("h", Some(b"x"))])
        .record(5_002, None, Some(b"v2"), &[])
        .record(5_001, Some(b"k3"), None, &[])
        .build_compressed(codec)
        .unwrap()
}

#[test]
fn compressed_v2_batch_down_converts_to_v0_and_v1() {
    let expected_v1 = vec![
        LegacyMessage {
            offset: 40,
            timestamp: 5_000,
            key: b("k1"),
            value: b("v1"),
        },
        LegacyMessage {
            offset: 41,
            timestamp: 5_002,
            key: None,
            value: b("v2"),
        },
        LegacyMessage {
            offset: 42,
            timestamp: 5_001,
            key: b("k3"),
            value: None,
        },
    ];
    for codec in [Compression::Gzip, Compression::Snappy, Compression::Lz4] {
        let batch = compressed_batch(codec, 40);
        // v1: one wrapper at offset 42 with relative inner offsets 0..2.
        let v1 = from_v2_batches(&batch, 1, i64::MIN, MAX_DECOMPRESSED_BYTES).unwrap();
        assert_eq!(i64::from_be_bytes(v1[..8].try_into().unwrap()), 42);
        assert_eq!(v1[17] & 7, codec.id() as i8 as u8);
        assert_eq!(i64::from_be_bytes(v1[18..26].try_into().unwrap()), 5_002);
        let parsed = message_set::parse(&v1, MAX_DECOMPRESSED_BYTES).unwrap();
        assert_eq!(parsed.codec, codec);
        assert_eq!(parsed.messages, expected_v1);
        // The inner offsets really are relative.
        let wrapper_value = &v1[12 + 4 + 1 + 1 + 8 + 4 + 4..];
        let inner = crate::compression::decompress(codec, wrapper_value, 1 << 20).unwrap();
        assert_eq!(i64::from_be_bytes(inner[..8].try_into().unwrap()), 0);

        // v0: timestamps gone; gzip/snappy stay wrapped with absolute offsets.
        let v0 = from_v2_batches(&batch, 0, i64::MIN, MAX_DECOMPRESSED_BYTES).unwrap();
        let parsed = message_set::parse(&v0, MAX_DECOMPRESSED_BYTES).unwrap();
        let want_codec = if codec == Compression::Lz4 {
            Compression::None
        } else {
            codec
        };
        assert_eq!(parsed.codec, want_codec);
        let expected_v0: Vec<_> = expected_v1
            .iter()
            .cloned()
            .map(|m| LegacyMessage { timestamp: -1, ..m })
            .collect();
        assert_eq!(parsed.messages, expected_v0);
        assert_eq!(v0[16], 0, "magic 0");
    }
}

#[test]
fn zstd_batch_down_converts_uncompressed() {
    let batch = compressed_batch(Compression::Zstd, 0);
    let v1 = from_v2_batches(&batch, 1, i64::MIN, MAX_DECOMPRESSED_BYTES).unwrap();
    let parsed = message_set::parse(&v1, MAX_DECOMPRESSED_BYTES).unwrap();
    assert_eq!(parsed.codec, Compression::None);
    assert_eq!(parsed.messages.len(), 3);
}

#[test]
fn control_batches_and_partial_tails_are_dropped() {
    let data = RecordBatchBuilder::new()
        .base_offset(0)
        .record(1, None, Some(b"a"), &[])
        .build();
    let mut marker = transaction_marker(7, 0, true, 0, 2);
    crate::batch::set_base_offset(&mut marker, 1).unwrap();
    let tail = RecordBatchBuilder::new()
        .base_offset(2)
        .record(3, None, Some(b"b"), &[])
        .build();
    let mut all = [data.clone(), marker, tail.clone()].concat();
    all.truncate(all.len() - 3);
    let out = from_v2_batches(&all, 1, i64::MIN, MAX_DECOMPRESSED_BYTES).unwrap();
    assert_eq!(out, Bytes::from(msg(1, 0, 0, 1, None, Some(b"a"))));
    // Only whole messages; the fetch offset filter drops records before it.
    let two = [data, tail].concat();
    let out = from_v2_batches(&two, 1, 2, MAX_DECOMPRESSED_BYTES).unwrap();
    assert_eq!(out, Bytes::from(msg(1, 2, 0, 3, None, Some(b"b"))));
}

/// A zstd batch of `count` records of 1000 zero bytes from `base`: a few KB
/// stored, about 34 bytes more per record once down-converted (zstd has no v0/v1 form).
fn expanding_batch(base: i64, count: usize) -> Bytes {
    let value = [0u8; 1000];
    let mut builder = RecordBatchBuilder::new().base_offset(base);
    for _ in 0..count {
        builder.push(7, None, Some(&value), &[]);
    }
    Bytes::from(builder.build_compressed(Compression::Zstd).unwrap())
}

/// v1 size of one message of [`expanding_batch`]: offset, size, fixed fields, value.
const EXPANDED_MESSAGE: usize = 12 + 22 + 1000;

#[test]
fn down_conversion_keeps_to_its_limit() {
    let batch = expanding_batch(10, 1000);
    assert!(
        batch.len() < 10 * EXPANDED_MESSAGE,
        "stored {} bytes",
        batch.len()
    );
    let convert = |max_bytes, first_message_max_bytes| {
        let limit = message_set::SetLimit {
            max_bytes,
            first_message_max_bytes,
        };
        message_set::from_v2_bytes(&batch, 1, i64::MIN, MAX_DECOMPRESSED_BYTES, limit).unwrap()
    };
    let offsets = |set: &Bytes| -> Vec<i64> {
        if set.is_empty() {
            return Vec::new();
        }
        let parsed = message_set::parse(set, MAX_DECOMPRESSED_BYTES).unwrap();
        parsed.messages.iter().map(|m| m.offset).collect()
    };
    // Whole messages up to the limit, in order from the batch's first record.
    let set = convert(10 * EXPANDED_MESSAGE + 5, 0);
    assert_eq!(set.len(), 10 * EXPANDED_MESSAGE);
    assert_eq!(offsets(&set), (10..20).collect::<Vec<_>>());
    // A first message larger than the limit comes alone, if it may.
    let set = convert(100, usize::MAX);
    assert_eq!(offsets(&set), vec![10]);
    let set = convert(100, EXPANDED_MESSAGE);
    assert_eq!(offsets(&set), vec![10]);
    assert!(convert(100, EXPANDED_MESSAGE - 1).is_empty());
    // Unbounded, the whole batch.
    assert_eq!(
        convert(usize::MAX, usize::MAX).len(),
        1000 * EXPANDED_MESSAGE
    );
}

#[test]
fn down_converted_fetch_responses_keep_to_the_response_limit() {
    use kafka_protocol::messages::fetch_response::*;
    let partition = |index| {
        PartitionData::default()
            .with_partition_index(index)
            .with_high_watermark(1000)
            .with_records(Some(expanding_batch(0, 1000)))
    };
    let resp = FetchResponse::default().with_responses(vec![
        FetchableTopicResponse::default()
            .with_topic(name("t"))
            .with_partitions(vec![partition(0), partition(1)]),
    ]);
    let sets = |max_bytes| -> Vec<usize> {
        let body = encode_fetch_response(2, &resp, &|_, _| None, max_bytes).unwrap();
        // throttle, topic count, "t", partition count, then per partition
        // index, error, high watermark, set length, set.
        let mut at = 4 + 4 + 2 + 1 + 4;
        let mut lens = Vec::new();
        for _ in 0..2 {
            at += 4 + 2 + 8;
            let len = i32::from_be_bytes(body[at..at + 4].try_into().unwrap());
            lens.push(usize::try_from(len).unwrap());
            at += 4 + lens.last().unwrap();
        }
        assert_eq!(at, body.len());
        lens
    };
    // Each partition is bounded by its stored size (a few KB), not by the megabyte
    // its records take once converted.
    let stored = expanding_batch(0, 1000).len();
    let fit = stored / EXPANDED_MESSAGE * EXPANDED_MESSAGE;
    assert!(fit >= EXPANDED_MESSAGE, "stored {stored} bytes");
    assert_eq!(sets(1 << 20), vec![fit, fit]);
    // Later partitions only get what the response limit leaves; the first
    // partition with data always gets a message.
    assert_eq!(sets(fit + EXPANDED_MESSAGE), vec![fit, EXPANDED_MESSAGE]);
    assert_eq!(sets(fit + EXPANDED_MESSAGE - 1), vec![fit, 0]);
    assert_eq!(sets(0), vec![EXPANDED_MESSAGE, 0]);
}

// ---------------------------------------------------------------- requests

#[test]
fn modern_versions_match_kafka_protocol() {
    use kafka_protocol::messages::*;
    let mins = [
        (ApiKey::Produce, ProduceRequest::VERSIONS.min),
        (ApiKey::Fetch, FetchRequest::VERSIONS.min),
        (ApiKey::ListOffsets, ListOffsetsRequest::VERSIONS.min),
        (ApiKey::OffsetCommit, OffsetCommitRequest::VERSIONS.min),
        (ApiKey::OffsetFetch, OffsetFetchRequest::VERSIONS.min),
        (ApiKey::CreateTopics, CreateTopicsRequest::VERSIONS.min),
        (ApiKey::DeleteTopics, DeleteTopicsRequest::VERSIONS.min),
        (
            ApiKey::DescribeConfigs,
            DescribeConfigsRequest::VERSIONS.min,
        ),
        (
            ApiKey::DescribeLogDirs,
            DescribeLogDirsRequest::VERSIONS.min,
        ),
    ];
    for (api, min) in mins {
        assert_eq!(modern_version(api), Some(min), "{api:?}");
        assert_eq!(legacy_range(api), Some((0, min - 1)), "{api:?}");
    }
    assert_eq!(legacy_range(ApiKey::Metadata), None);
    assert!(!is_legacy(ApiKey::Produce, 3));
}

fn decode(api: ApiKey, version: i16, body: Bytes) -> RequestKind {
    let mut body = body;
    let (req, modern) = decode_request(api, version, &mut body).unwrap();
    assert_eq!(Some(modern), modern_version(api));
    assert!(body.is_empty(), "{api:?} v{version} left bytes");
    req
}

#[test]
fn produce_requests_v0_to_v2() {
    let bad = {
        let mut raw = sample_v0().to_vec();
        raw[20] ^= 1;
        raw
    };
    for version in 0..=2 {
        let set = if version == 2 {
            sample_v1()
        } else {
            sample_v0()
        };
        let body = W::default()
            .i16(-1)
            .i32(1_500)
            .i32(1)
            .str("t")
            .i32(3)
            .i32(0)
            .bytes(Some(&set))
            .i32(1)
            .bytes(Some(&bad))
            .i32(2)
            .bytes(None)
            .done();
        let RequestKind::Produce(req) = decode(ApiKey::Produce, version, body) else {
            panic!("not produce");
        };
        assert_eq!(req.acks, -1);
        assert_eq!(req.timeout_ms, 1_500);
        assert_eq!(req.transactional_id, None);
        let topic = &req.topic_data[0];
        assert_eq!(topic.name, TopicName(StrBytes::from_static_str("t")));
        let p = &topic.partition_data;
        let batch = p[0].records.clone().unwrap();
        validate(&batch).unwrap();
        assert_eq!(records_of(&batch).len(), 3);
        // Corrupt set: empty records, which the broker answers with CORRUPT_MESSAGE.
        assert_eq!(p[1].records, Some(Bytes::new()));
        assert_eq!(p[2].records, None);
    }
    // A truncated request body is an error (connection close), not a panic.
    let mut short = W::default()
        .i16(1)
        .i32(1)
        .i32(1)
        .str("t")
        .i32(1)
        .i32(0)
        .done();
    assert!(decode_request(ApiKey::Produce, 0, &mut short).is_err());
    let mut huge = W::default().i16(1).i32(1).i32(i32::MAX).done();
    assert!(decode_request(ApiKey::Produce, 0, &mut huge).is_err());
}

#[test]
fn fetch_requests_v0_to_v3() {
    for version in 0..=3 {
        let mut w = W::default().i32(-1).i32(100).i32(1);
        if version == 3 {
            w = w.i32(1 << 20);
        }
        let body = w.i32(1).str("t").i32(1).i32(2).i64(77).i32(4096).done();
        let RequestKind::Fetch(req) = decode(ApiKey::Fetch, version, body) else {
            panic!("not fetch");
        };
        assert_eq!(req.replica_id.0, -1);
        assert_eq!(req.max_wait_ms, 100);
        assert_eq!(req.min_bytes, 1);
        assert_eq!(req.max_bytes, if version == 3 { 1 << 20 } else { i32::MAX });
        assert_eq!(req.isolation_level, 0);
        let p = &req.topics[0].partitions[0];
        assert_eq!(
            (p.partition, p.fetch_offset, p.partition_max_bytes),
            (2, 77, 4096)
        );
    }
}

#[test]
fn list_offsets_v0() {
    let body = W::default()
        .i32(-1)
        .i32(1)
        .str("t")
        .i32(1)
        .i32(0)
        .i64(-1)
        .i32(1)
        .done();
    let RequestKind::ListOffsets(req) = decode(ApiKey::ListOffsets, 0, body) else {
        panic!("not list offsets");
    };
    assert_eq!(req.replica_id.0, -1);
    let p = &req.topics[0].partitions[0];
    assert_eq!((p.partition_index, p.timestamp), (0, -1));
}

#[test]
fn offset_commit_v0_and_v1() {
    let v0 = W::default()
        .str("g")
        .i32(1)
        .str("t")
        .i32(1)
        .i32(0)
        .i64(42)
        .str("meta")
        .done();
    let RequestKind::OffsetCommit(req) = decode(ApiKey::OffsetCommit, 0, v0) else {
        panic!("not offset commit");
    };
    assert_eq!(&*req.group_id.0, "g");
    assert_eq!(req.generation_id_or_member_epoch, -1);
    assert_eq!(&*req.member_id, "");
    assert_eq!(req.retention_time_ms, -1);
    let p = &req.topics[0].partitions[0];
    assert_eq!(p.committed_offset, 42);
    assert_eq!(p.committed_metadata.as_deref(), Some("meta"));

    let v1 = W::default()
        .str("g")
        .i32(3)
        .str("m-1")
        .i32(1)
        .str("t")
        .i32(1)
        .i32(4)
        .i64(43)
        .i64(123_456)
        .null_str()
        .done();
    let RequestKind::OffsetCommit(req) = decode(ApiKey::OffsetCommit, 1, v1) else {
        panic!("not offset commit");
    };
    assert_eq!(req.generation_id_or_member_epoch, 3);
    assert_eq!(&*req.member_id, "m-1");
    let p = &req.topics[0].partitions[0];
    assert_eq!((p.partition_index, p.committed_offset), (4, 43));
    assert_eq!(p.committed_metadata, None);
}

#[test]
fn offset_fetch_v0() {
    let body = W::default()
        .str("g")
        .i32(1)
        .str("t")
        .i32(2)
        .i32(0)
        .i32(1)
        .done();
    let RequestKind::OffsetFetch(req) = decode(ApiKey::OffsetFetch, 0, body) else {
        panic!("not offset fetch");
    };
    assert_eq!(&*req.group_id.0, "g");
    let topics = req.topics.unwrap();
    assert_eq!(topics[0].partition_indexes, vec![0, 1]);
}

#[test]
fn create_topics_v0_and_v1() {
    for version in 0..=1 {
        let mut w = W::default()
            .i32(1)
            .str("t")
            .i32(3)
            .i16(1)
            .i32(1)
            .i32(0)
            .i32(1)
            .i32(1)
            .i32(1)
            .str("cleanup.policy")
            .str("compact")
            .i32(5_000);
        if version == 1 {
            w = w.i8(1);
        }
        let RequestKind::CreateTopics(req) = decode(ApiKey::CreateTopics, version, w.done()) else {
            panic!("not create topics");
        };
        let t = &req.topics[0];
        assert_eq!((t.num_partitions, t.replication_factor), (3, 1));
        assert_eq!(t.assignments[0].broker_ids[0].0, 1);
        assert_eq!(t.configs[0].value.as_deref(), Some("compact"));
        assert_eq!(req.timeout_ms, 5_000);
        assert_eq!(req.validate_only, version == 1);
    }
}

#[test]
fn delete_topics_v0() {
    let body = W::default().i32(2).str("a").str("b").i32(100).done();
    let RequestKind::DeleteTopics(req) = decode(ApiKey::DeleteTopics, 0, body) else {
        panic!("not delete topics");
    };
    assert_eq!(req.topic_names.len(), 2);
    assert_eq!(req.timeout_ms, 100);
}

#[test]
fn describe_configs_v0() {
    let body = W::default()
        .i32(2)
        .i8(2)
        .str("t")
        .i32(-1)
        .i8(4)
        .str("1")
        .i32(1)
        .str("log.retention.ms")
        .done();
    let RequestKind::DescribeConfigs(req) = decode(ApiKey::DescribeConfigs, 0, body) else {
        panic!("not describe configs");
    };
    assert_eq!(req.resources[0].configuration_keys, None);
    assert_eq!(
        req.resources[1].configuration_keys.as_ref().unwrap().len(),
        1
    );
    assert!(!req.include_synonyms);
}

#[test]
fn describe_log_dirs_v0_is_v1_on_the_wire() {
    let body = W::default().i32(1).str("t").i32(2).i32(0).i32(3).done();
    let RequestKind::DescribeLogDirs(req) = decode(ApiKey::DescribeLogDirs, 0, body) else {
        panic!("not describe log dirs");
    };
    let topics = req.topics.unwrap();
    assert_eq!(
        (topics[0].topic.0.as_str(), &topics[0].partitions[..]),
        ("t", &[0, 3][..])
    );
    let all = decode(ApiKey::DescribeLogDirs, 0, W::default().i32(-1).done());
    assert!(matches!(all, RequestKind::DescribeLogDirs(r) if r.topics.is_none()));

    use kafka_protocol::messages::describe_log_dirs_response::*;
    let resp = DescribeLogDirsResponse::default()
        .with_throttle_time_ms(3)
        .with_results(vec![
            DescribeLogDirsResult::default()
                .with_log_dir(StrBytes::from_static_str("/d"))
                .with_topics(vec![
                    DescribeLogDirsTopic::default()
                        .with_name(name("t"))
                        .with_partitions(vec![
                            DescribeLogDirsPartition::default()
                                .with_partition_index(3)
                                .with_partition_size(500)
                                .with_offset_lag(0),
                        ]),
                ]),
        ]);
    let expected = W::default()
        .i32(3)
        .i32(1)
        .i16(0)
        .str("/d")
        .i32(1)
        .str("t")
        .i32(1)
        .i32(3)
        .i64(500)
        .i64(0)
        .i8(0)
        .done();
    let kind = ResponseKind::DescribeLogDirs(resp);
    assert_eq!(
        encode_response_body(ApiKey::DescribeLogDirs, 0, &kind).unwrap(),
        expected
    );
}

#[test]
fn non_legacy_versions_are_refused() {
    let mut body = Bytes::new();
    assert!(matches!(
        decode_request(ApiKey::Produce, 3, &mut body),
        Err(LegacyError::NotLegacy { .. })
    ));
    assert!(matches!(
        decode_request(ApiKey::Metadata, 0, &mut body),
        Err(LegacyError::NotLegacy { .. })
    ));
}

// ---------------------------------------------------------------- responses

fn name(s: &'static str) -> TopicName {
    TopicName(StrBytes::from_static_str(s))
}

#[test]
fn produce_responses() {
    use kafka_protocol::messages::produce_response::*;
    let resp = ProduceResponse::default()
        .with_throttle_time_ms(7)
        .with_responses(vec![
            TopicProduceResponse::default()
                .with_name(name("t"))
                .with_partition_responses(vec![
                    PartitionProduceResponse::default()
                        .with_index(1)
                        .with_error_code(0)
                        .with_base_offset(100)
                        .with_log_append_time_ms(-1),
                ]),
        ]);
    let kind = ResponseKind::Produce(resp);
    let base = W::default().i32(1).str("t").i32(1).i32(1).i16(0).i64(100);
    let v0 = base.done();
    assert_eq!(encode_response_body(ApiKey::Produce, 0, &kind).unwrap(), v0);
    let v1 = W::default().raw(&v0).i32(7).done();
    assert_eq!(encode_response_body(ApiKey::Produce, 1, &kind).unwrap(), v1);
    let v2 = W::default().raw(&v0).i64(-1).i32(7).done();
    assert_eq!(encode_response_body(ApiKey::Produce, 2, &kind).unwrap(), v2);
    assert!(matches!(
        encode_response_body(ApiKey::Fetch, 0, &kind),
        Err(LegacyError::ResponseMismatch { .. })
    ));
}

#[test]
fn fetch_responses_down_convert() {
    use kafka_protocol::messages::fetch_response::*;
    let stored = RecordBatchBuilder::new()
        .base_offset(5)
        .record(1_234, Some(b"k"), Some(b"v"), &[])
        .build();
    let resp = FetchResponse::default()
        .with_throttle_time_ms(3)
        .with_responses(vec![
            FetchableTopicResponse::default()
                .with_topic(name("t"))
                .with_partitions(vec![
                    PartitionData::default()
                        .with_partition_index(0)
                        .with_high_watermark(6)
                        .with_records(Some(Bytes::from(stored))),
                    PartitionData::default()
                        .with_partition_index(1)
                        .with_error_code(3)
                        .with_high_watermark(-1)
                        .with_records(None),
                ]),
        ]);
    let kind = ResponseKind::Fetch(resp);
    for version in 0..=3 {
        let (magic, ts) = if version >= 2 { (1, 1_234) } else { (0, -1) };
        let set = msg(magic, 5, 0, ts, Some(b"k"), Some(b"v"));
        let mut w = W::default();
        if version >= 1 {
            w = w.i32(3);
        }
        let expected = w
            .i32(1)
            .str("t")
            .i32(2)
            .i32(0)
            .i16(0)
            .i64(6)
            .bytes(Some(&set))
            .i32(1)
            .i16(3)
            .i64(-1)
            .i32(0)
            .done();
        assert_eq!(
            encode_response_body(ApiKey::Fetch, version, &kind).unwrap(),
            expected,
            "v{version}"
        );
    }
}

#[test]
fn list_offsets_response_v0() {
    use kafka_protocol::messages::list_offsets_response::*;
    let resp = ListOffsetsResponse::default().with_topics(vec![
        ListOffsetsTopicResponse::default()
            .with_name(name("t"))
            .with_partitions(vec![
                ListOffsetsPartitionResponse::default()
                    .with_partition_index(0)
                    .with_offset(17)
                    .with_timestamp(-1),
                ListOffsetsPartitionResponse::default()
                    .with_partition_index(1)
                    .with_error_code(6)
                    .with_offset(-1),
            ]),
    ]);
    let expected = W::default()
        .i32(1)
        .str("t")
        .i32(2)
        .i32(0)
        .i16(0)
        .i32(1)
        .i64(17)
        .i32(1)
        .i16(6)
        .i32(0)
        .done();
    let got = encode_response_body(ApiKey::ListOffsets, 0, &ResponseKind::ListOffsets(resp));
    assert_eq!(got.unwrap(), expected);
}

#[test]
fn offset_commit_and_fetch_responses() {
    use kafka_protocol::messages::offset_commit_response::*;
    use kafka_protocol::messages::offset_fetch_response::*;
    let commit = OffsetCommitResponse::default().with_topics(vec![
        OffsetCommitResponseTopic::default()
            .with_name(name("t"))
            .with_partitions(vec![
                OffsetCommitResponsePartition::default()
                    .with_partition_index(2)
                    .with_error_code(25),
            ]),
    ]);
    let expected = W::default().i32(1).str("t").i32(1).i32(2).i16(25).done();
    let kind = ResponseKind::OffsetCommit(commit);
    for version in 0..=1 {
        assert_eq!(
            encode_response_body(ApiKey::OffsetCommit, version, &kind).unwrap(),
            expected
        );
    }

    let fetch = OffsetFetchResponse::default().with_topics(vec![
        OffsetFetchResponseTopic::default()
            .with_name(name("t"))
            .with_partitions(vec![
                OffsetFetchResponsePartition::default()
                    .with_partition_index(0)
                    .with_committed_offset(9)
                    .with_metadata(Some(StrBytes::from_static_str("m"))),
                OffsetFetchResponsePartition::default()
                    .with_partition_index(1)
                    .with_committed_offset(-1)
                    .with_metadata(None),
            ]),
    ]);
    let expected = W::default()
        .i32(1)
        .str("t")
        .i32(2)
        .i32(0)
        .i64(9)
        .str("m")
        .i16(0)
        .i32(1)
        .i64(-1)
        .null_str()
        .i16(0)
        .done();
    let got = encode_response_body(ApiKey::OffsetFetch, 0, &ResponseKind::OffsetFetch(fetch));
    assert_eq!(got.unwrap(), expected);
}

#[test]
fn admin_responses() {
    use kafka_protocol::messages::create_topics_response::*;
    use kafka_protocol::messages::delete_topics_response::*;
    use kafka_protocol::messages::describe_configs_response::*;
    let create = ResponseKind::CreateTopics(CreateTopicsResponse::default().with_topics(vec![
        CreatableTopicResult::default()
            .with_name(name("t"))
            .with_error_code(36)
            .with_error_message(Some(StrBytes::from_static_str("exists"))),
    ]));
    let v0 = W::default().i32(1).str("t").i16(36).done();
    assert_eq!(
        encode_response_body(ApiKey::CreateTopics, 0, &create).unwrap(),
        v0
    );
    let v1 = W::default().raw(&v0).str("exists").done();
    assert_eq!(
        encode_response_body(ApiKey::CreateTopics, 1, &create).unwrap(),
        v1
    );

    let delete = ResponseKind::DeleteTopics(
        DeleteTopicsResponse::default()
            .with_throttle_time_ms(5)
            .with_responses(vec![
                DeletableTopicResult::default()
                    .with_name(Some(name("t")))
                    .with_error_code(3),
            ]),
    );
    let v0 = W::default().i32(1).str("t").i16(3).done();
    assert_eq!(
        encode_response_body(ApiKey::DeleteTopics, 0, &delete).unwrap(),
        v0
    );

    let describe = ResponseKind::DescribeConfigs(
        DescribeConfigsResponse::default()
            .with_throttle_time_ms(1)
            .with_results(vec![
                DescribeConfigsResult::default()
                    .with_error_code(0)
                    .with_error_message(None)
                    .with_resource_type(2)
                    .with_resource_name(StrBytes::from_static_str("t"))
                    .with_configs(vec![
                        DescribeConfigsResourceResult::default()
                            .with_name(StrBytes::from_static_str("a"))
                            .with_value(Some(StrBytes::from_static_str("1")))
                            .with_read_only(false)
                            .with_config_source(5)
                            .with_is_sensitive(false),
                        DescribeConfigsResourceResult::default()
                            .with_name(StrBytes::from_static_str("b"))
                            .with_value(None)
                            .with_read_only(true)
                            .with_config_source(1)
                            .with_is_sensitive(true),
                    ]),
            ]),
    );
    let v0 = W::default()
        .i32(1)
        .i32(1)
        .i16(0)
        .null_str()
        .i8(2)
        .str("t")
        .i32(2)
        .str("a")
        .str("1")
        .i8(0)
        .i8(1)
        .i8(0)
        .str("b")
        .null_str()
        .i8(1)
        .i8(0)
        .i8(1)
        .done();
    assert_eq!(
        encode_response_body(ApiKey::DescribeConfigs, 0, &describe).unwrap(),
        v0
    );
}

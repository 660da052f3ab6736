//! Fetch responses are bounded by the broker's `fetch.max.bytes` whatever the request asks
//! (Fetch v4 with 2 GiB limits, legacy v2 which has no response limit), a partition listed
//! many times is answered once (with its last listing's parameters, as Kafka's map of
//! topic-partitions does), down-converted message sets keep to the bound, and the broker's
//! memory comes back once the responses are written.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use bytes::{Buf, BufMut, Bytes};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiVersionsRequest, FetchRequest, FetchResponse, ProduceRequest, TopicName,
};
use kafka_protocol::protocol::{Decodable, StrBytes};
use sluice_e2e::raw::{BatchBuilder, RawConn, frame, header_v1, parse_batches};
use sluice_e2e::{Broker, create_topic};
use sluice_protocol::legacy::message_set::{self, MAX_DECOMPRESSED_BYTES};

const TOPIC: &str = "big";
/// Bytes of each record's value.
const VALUE: usize = 1000;
/// Response header and topic/partition fields around the records, generously.
const FRAMING: usize = 1024;

/// Appends `batches` batches of `records` records of VALUE bytes to `TOPIC`-0.
fn fill(conn: &mut RawConn, batches: usize, records: usize) {
    let value = vec![b'v'; VALUE];
    for i in 0..batches {
        let mut batch = BatchBuilder::new(1_700_000_000_000);
        for _ in 0..records {
            batch = batch.record(None, Some(&value));
        }
        let req = ProduceRequest::default()
            .with_acks(1)
            .with_timeout_ms(10_000)
            .with_topic_data(vec![
                TopicProduceData::default()
                    .with_name(TopicName(StrBytes::from_static_str(TOPIC)))
                    .with_partition_data(vec![
                        PartitionProduceData::default()
                            .with_index(0)
                            .with_records(Some(batch.build())),
                    ]),
            ]);
        let r = conn.roundtrip(3, 1_000 + i as i32, &req);
        let p = &r.responses[0].partition_responses[0];
        assert_eq!(
            (p.error_code, p.base_offset),
            (0, (i * records) as i64),
            "batch {i}"
        );
    }
}

/// A Fetch v4 of `TOPIC`-0 listed `repeats` times from offset 0 and once more, in a
/// second topic entry, from `last_offset`, with 2 GiB limits; returns the frame's size
/// and the response.
fn fetch_v4_repeated(
    conn: &mut RawConn,
    corr: i32,
    repeats: usize,
    last_offset: i64,
) -> (usize, FetchResponse) {
    let listing = |offset| {
        FetchPartition::default()
            .with_partition(0)
            .with_fetch_offset(offset)
            .with_partition_max_bytes(i32::MAX)
    };
    let topic = |partitions| {
        FetchTopic::default()
            .with_topic(TopicName(StrBytes::from_static_str(TOPIC)))
            .with_partitions(partitions)
    };
    let req = FetchRequest::default()
        .with_replica_id((-1).into())
        .with_max_wait_ms(0)
        .with_min_bytes(1)
        .with_max_bytes(i32::MAX)
        .with_topics(vec![
            topic(vec![listing(0); repeats]),
            topic(vec![listing(last_offset)]),
        ]);
    conn.send_request(4, corr, &req);
    let body = conn.read_frame().unwrap().expect("a response");
    let size = body.len();
    let mut buf = Bytes::from(body);
    assert_eq!(buf.get_i32(), corr, "correlation id");
    let resp = FetchResponse::decode(&mut buf, 4).unwrap();
    assert!(buf.is_empty(), "trailing bytes");
    (size, resp)
}

/// A legacy Fetch v2 (no response limit) of `TOPIC`-0 listed `repeats` times from offset 0
/// and once more from `last_offset`, each with a 2 GiB partition limit. Returns the frame's
/// size, the high watermark and the offsets of the messages in the set.
fn fetch_v2_repeated(
    conn: &mut RawConn,
    corr: i32,
    repeats: usize,
    last_offset: i64,
) -> (usize, i64, Vec<i64>) {
    let mut body = header_v1(1, 2, corr, "legacy-consumer");
    body.put_i32(-1); // replica id
    body.put_i32(0); // max wait
    body.put_i32(1); // min bytes
    body.put_i32(1); // topics
    body.put_i16(TOPIC.len() as i16);
    body.put_slice(TOPIC.as_bytes());
    body.put_i32(repeats as i32 + 1);
    for i in 0..=repeats {
        body.put_i32(0); // partition
        body.put_i64(if i == repeats { last_offset } else { 0 });
        body.put_i32(i32::MAX); // partition max bytes
    }
    conn.send(&frame(&body)).unwrap();
    let body = conn.read_frame().unwrap().expect("a response");
    let size = body.len();
    let mut r = Bytes::from(body);
    assert_eq!(r.get_i32(), corr, "correlation id");
    assert_eq!(r.get_i32(), 0, "throttle time");
    assert_eq!(r.get_i32(), 1, "one topic");
    let len = r.get_i16() as usize;
    assert_eq!(&r.split_to(len)[..], TOPIC.as_bytes());
    assert_eq!(r.get_i32(), 1, "the partition once");
    assert_eq!(r.get_i32(), 0, "partition 0");
    assert_eq!(r.get_i16(), 0, "error code");
    let high_watermark = r.get_i64();
    let set_len = usize::try_from(r.get_i32()).unwrap();
    let set = r.split_to(set_len);
    assert!(r.is_empty(), "trailing bytes");
    // Message format v1, whole messages with valid CRCs only.
    let parsed = message_set::parse(&set, MAX_DECOMPRESSED_BYTES).unwrap();
    let offsets = parsed.messages.iter().map(|m| m.offset).collect();
    (size, high_watermark, offsets)
}

/// The one partition of a Fetch v4 response: its high watermark and batch base offsets.
fn only_partition(resp: &FetchResponse) -> (i64, usize, Vec<i64>) {
    assert_eq!(resp.error_code, 0);
    assert_eq!(
        resp.responses.len(),
        1,
        "one topic entry: {:?}",
        resp.responses
    );
    let t = &resp.responses[0];
    assert_eq!(t.topic.0.as_str(), TOPIC);
    assert_eq!(t.partitions.len(), 1, "the partition once");
    let p = &t.partitions[0];
    assert_eq!((p.partition_index, p.error_code), (0, 0));
    let records = p.records.as_ref().unwrap();
    let bases = parse_batches(records)
        .iter()
        .map(|h| h.base_offset)
        .collect();
    (p.high_watermark, records.len(), bases)
}

/// With `--fetch-max-bytes 1 MiB` and 4 MB in the partition: a Fetch v4 listing the
/// partition 21 times with 2 GiB limits gets it once, from the last listing's offset, with
/// at most 1 MiB of whole batches; a legacy Fetch v2 the same, as messages of format v1.
#[test]
fn fetch_responses_keep_to_fetch_max_bytes() {
    const CAP: usize = 1 << 20;
    const RECORDS: usize = 100;
    let broker = Broker::start_with(&["--fetch-max-bytes", &CAP.to_string()]);
    create_topic(&broker.bootstrap(), TOPIC, 1, &[]);
    let mut conn = RawConn::connect(broker.addr());
    fill(&mut conn, 40, RECORDS);
    let high_watermark = (40 * RECORDS) as i64;

    let (size, resp) = fetch_v4_repeated(&mut conn, 1, 20, 100);
    let (hw, records, bases) = only_partition(&resp);
    assert_eq!(hw, high_watermark);
    assert!(
        size <= CAP + FRAMING,
        "Fetch v4 response of {size} bytes, cap {CAP}"
    );
    // Whole batches (all of one size) from the last listing's offset, as many as fit.
    let n = bases.len();
    assert_eq!(
        bases,
        (1..=n as i64)
            .map(|b| b * RECORDS as i64)
            .collect::<Vec<_>>()
    );
    let batch_size = records / n;
    assert_eq!(records, n * batch_size);
    assert!(
        records <= CAP && records + batch_size > CAP,
        "{n} batches of {batch_size} bytes"
    );

    let (size, hw, offsets) = fetch_v2_repeated(&mut conn, 2, 20, 200);
    assert_eq!(hw, high_watermark);
    assert!(
        size <= CAP + FRAMING,
        "Fetch v2 response of {size} bytes, cap {CAP}"
    );
    assert_eq!(
        offsets.first(),
        Some(&200),
        "from the last listing's offset"
    );
    assert!(
        offsets.windows(2).all(|w| w[1] == w[0] + 1),
        "consecutive offsets"
    );
    // The converted messages (34 bytes of overhead each, against about 10 stored) fill
    // the stored bytes read, less one message.
    let message = 12 + 22 + VALUE;
    assert!(
        offsets.len() * message + message > records,
        "{} messages from {records} stored bytes",
        offsets.len()
    );
}

/// The broker's resident memory in bytes (VmRSS).
fn rss_bytes(pid: u32) -> usize {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .expect("VmRSS line");
    let kb: usize = line
        .trim_start_matches("VmRSS:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .unwrap();
    kb * 1024
}

/// Responses on one connection are written in order, so once this answer is read every
/// earlier response has been written and dropped.
fn barrier(conn: &mut RawConn, corr: i32) {
    let r = conn.roundtrip(3, corr, &ApiVersionsRequest::default());
    assert_eq!(r.error_code, 0);
}

/// With the default fetch.max.bytes (55 MiB) and 64 MB in the partition, repeated Fetch v4
/// (the partition listed 101 times) and legacy v2 (151 times) requests each get one bounded
/// response, and the broker's RSS returns near where it was before them: memory does not
/// accumulate from response to response.
#[test]
fn fetch_memory_returns_after_responses() {
    const CAP: usize = 55 << 20;
    const RECORDS: usize = 1000;
    // Well below the 8 × 55 MiB the responses below add up to, and above twice one of
    // them, for what the allocator may keep cached (about 1 MiB stays, measured).
    const SLACK: usize = 128 << 20;
    let broker = Broker::start();
    create_topic(&broker.bootstrap(), TOPIC, 1, &[]);
    let mut conn = RawConn::connect(broker.addr());
    fill(&mut conn, 64, RECORDS);
    barrier(&mut conn, 1);
    let baseline = rss_bytes(broker.pid());
    let mut corr = 10;
    for round in 0..4 {
        corr += 1;
        let (size, resp) = fetch_v4_repeated(&mut conn, corr, 100, 0);
        let (_, records, bases) = only_partition(&resp);
        assert!(
            size <= CAP + FRAMING,
            "round {round}: v4 response of {size} bytes"
        );
        assert!(
            records > CAP / 2,
            "round {round}: {records} bytes of records"
        );
        assert_eq!(bases.first(), Some(&0));
        drop(resp);
        corr += 1;
        let (size, _, offsets) = fetch_v2_repeated(&mut conn, corr, 150, 0);
        assert!(
            size <= CAP + FRAMING,
            "round {round}: v2 response of {size} bytes"
        );
        assert_eq!(offsets.first(), Some(&0));
        corr += 1;
        barrier(&mut conn, corr);
        let rss = rss_bytes(broker.pid());
        assert!(
            rss <= baseline + SLACK,
            "round {round}: RSS {} MiB after the responses, {} MiB before them",
            rss >> 20,
            baseline >> 20
        );
    }
}

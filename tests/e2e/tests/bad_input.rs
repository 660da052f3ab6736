//! Bad input over raw sockets: every case gets Kafka's error or a closed connection, the
//! broker neither crashes nor balloons, other connections keep working, and a normal
//! librdkafka client is served afterwards.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use bytes::Bytes;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::{
    ApiVersionsRequest, CreateTopicsRequest, ProduceRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use rdkafka::consumer::Consumer;
use rdkafka::message::Message;
use sluice_e2e::raw::produce_request;
use sluice_e2e::raw::{BatchBuilder, RawConn, frame, header_v1};
use sluice_e2e::{Broker, CALL_TIMEOUT, assert_serving, consume_all, consumer, create_topic};

const CORRUPT_MESSAGE: i16 = 2;
const INVALID_TOPIC_EXCEPTION: i16 = 17;
const INVALID_RECORD: i16 = 87;

/// A connection opened before the bad input that must keep working during and after it.
struct Bystander {
    conn: RawConn,
    corr: i32,
}

impl Bystander {
    fn new(broker: &Broker) -> Bystander {
        let mut b = Bystander {
            conn: RawConn::connect(broker.addr()),
            corr: 100,
        };
        b.check();
        b
    }

    fn check(&mut self) {
        self.corr += 1;
        let req = ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str("sluice-e2e"))
            .with_client_software_version(StrBytes::from_static_str("1"));
        let resp = self.conn.roundtrip(3, self.corr, &req);
        assert_eq!(
            resp.error_code, 0,
            "ApiVersions on the bystander connection"
        );
        assert!(
            resp.api_keys.iter().any(|k| k.api_key == 0),
            "Produce advertised"
        );
    }
}

/// Peak resident memory of the broker, in KiB (Linux).
fn peak_rss_kib(broker: &Broker) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", broker.pid()))
        .expect("read /proc/<pid>/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmHWM")
}

fn assert_no_big_allocation(broker: &Broker) {
    let kib = peak_rss_kib(broker);
    assert!(
        kib < 512 * 1024,
        "broker peak RSS is {} MiB after a bogus length",
        kib / 1024
    );
}

/// Sends `bytes` on a fresh connection and expects the broker to close it.
fn expect_close_after(broker: &Broker, bytes: &[u8], what: &str) {
    let mut c = RawConn::connect(broker.addr());
    // The broker may close before we finish writing; that is fine.
    let _ = c.send(bytes);
    c.expect_closed(what);
}

#[test]
fn garbage_bytes_close_the_connection() {
    let broker = Broker::start();
    let mut by = Bystander::new(&broker);
    // HTTP: the length reads as 0x47455420 (~1.1 GiB), beyond socket.request.max.bytes.
    expect_close_after(
        &broker,
        b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n",
        "HTTP request",
    );
    // TLS ClientHello: length 0x16030102.
    expect_close_after(
        &broker,
        &[
            0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03,
        ],
        "TLS hello",
    );
    // A plausible length followed by noise (api key 0xdead, version 0xbeef).
    let mut noise = vec![0xde, 0xad, 0xbe, 0xef];
    noise.extend((0u8..60).map(|i| i.wrapping_mul(37) ^ 0x5a));
    expect_close_after(&broker, &frame(&noise), "noise frame");
    // A header cut short: api key and version only.
    expect_close_after(&broker, &frame(&[0, 3, 0, 1]), "header cut short");
    by.check();
    assert_no_big_allocation(&broker);
    assert_serving(&broker.bootstrap(), "alive");
}

#[test]
fn negative_and_zero_frame_lengths_close_the_connection() {
    let broker = Broker::start();
    let mut by = Bystander::new(&broker);
    expect_close_after(&broker, &(-1i32).to_be_bytes(), "frame length -1");
    expect_close_after(&broker, &i32::MIN.to_be_bytes(), "frame length i32::MIN");
    expect_close_after(&broker, &0i32.to_be_bytes(), "frame length 0");
    by.check();
    assert_serving(&broker.bootstrap(), "alive");
}

#[test]
fn two_gib_frame_length_closes_without_allocating() {
    let broker = Broker::start();
    let mut by = Bystander::new(&broker);
    let mut b = 0x7fff_ffffi32.to_be_bytes().to_vec();
    b.extend(header_v1(3, 1, 1, "big"));
    b.extend([0u8; 1024]);
    expect_close_after(&broker, &b, "frame length 2 GiB");
    // Just above the default socket.request.max.bytes (100 MiB).
    let mut b = (100 * 1024 * 1024 + 1i32).to_be_bytes().to_vec();
    b.extend(header_v1(3, 1, 2, "big"));
    expect_close_after(&broker, &b, "frame length 100 MiB + 1");
    by.check();
    assert_no_big_allocation(&broker);
    assert_serving(&broker.bootstrap(), "alive");
}

#[test]
fn max_request_bytes_flag_bounds_frames() {
    let broker = Broker::start_with(&["--max-request-bytes", "4096"]);
    let mut by = Bystander::new(&broker);
    let mut b = 4097i32.to_be_bytes().to_vec();
    b.extend(header_v1(3, 1, 1, "big"));
    expect_close_after(&broker, &b, "frame length above --max-request-bytes");
    by.check();
    assert_serving(&broker.bootstrap(), "alive");
}

#[test]
fn truncated_frames_do_not_disturb_others() {
    let broker = Broker::start();
    let mut by = Bystander::new(&broker);
    // Length 100, 10 bytes, then EOF.
    let mut c = RawConn::connect(broker.addr());
    let mut b = 100i32.to_be_bytes().to_vec();
    b.extend(header_v1(18, 0, 1, ""));
    assert_eq!(b.len(), 14);
    c.send(&b).expect("send partial frame");
    // While that frame hangs half-sent, other connections are served.
    by.check();
    c.shutdown_write();
    c.expect_closed("EOF in the middle of a frame");
    // Length prefix itself cut short, then the socket is dropped.
    let mut c = RawConn::connect(broker.addr());
    c.send(&[0, 0]).expect("send");
    drop(c);
    // Half a frame, then the socket is dropped.
    let mut c = RawConn::connect(broker.addr());
    c.send(&b).expect("send");
    drop(c);
    by.check();
    assert_serving(&broker.bootstrap(), "alive");
}

#[test]
fn unknown_api_key_closes_the_connection() {
    let broker = Broker::start();
    let mut by = Bystander::new(&broker);
    let body = header_v1(9999, 0, 42, "sluice-e2e");
    expect_close_after(&broker, &frame(&body), "api key 9999");
    let mut body = header_v1(-1, 0, 43, "sluice-e2e");
    body.extend([0u8; 8]);
    expect_close_after(&broker, &frame(&body), "api key -1");
    by.check();
    assert_serving(&broker.bootstrap(), "alive");
}

#[test]
fn huge_array_count_in_metadata_request_closes_the_connection() {
    let broker = Broker::start();
    let mut by = Bystander::new(&broker);
    // Metadata v1: topics array of 0x7fffffff entries, and nothing after it.
    let mut body = header_v1(3, 1, 7, "sluice-e2e");
    body.extend(0x7fff_ffffi32.to_be_bytes());
    expect_close_after(&broker, &frame(&body), "Metadata v1 with 2^31-1 topics");
    // Metadata v9 (flexible): compact array length 2^31 (varint), nothing after it.
    let mut body = header_v1(3, 9, 8, "sluice-e2e");
    body.push(0); // header tagged fields
    body.extend([0x80, 0x80, 0x80, 0x80, 0x08]);
    expect_close_after(&broker, &frame(&body), "Metadata v9 with 2^31-1 topics");
    // Metadata v1 with a topic name length running past the frame.
    let mut body = header_v1(3, 1, 9, "sluice-e2e");
    body.extend(1i32.to_be_bytes());
    body.extend(0x7fffi16.to_be_bytes());
    body.extend(b"abc");
    expect_close_after(
        &broker,
        &frame(&body),
        "Metadata v1 topic name past the end",
    );
    by.check();
    assert_no_big_allocation(&broker);
    assert_serving(&broker.bootstrap(), "alive");
}

/// Produces `batch` to partition 0 of `topic` at `version`; returns (error code, base offset).
fn produce(c: &mut RawConn, version: i16, corr: i32, topic: &str, batch: Bytes) -> (i16, i64) {
    let resp = c.roundtrip(version, corr, &produce_request(topic, 0, -1, batch));
    assert_eq!(resp.responses.len(), 1);
    let t = &resp.responses[0];
    assert_eq!(t.name.0.as_str(), topic);
    assert_eq!(t.partition_responses.len(), 1);
    let p = &t.partition_responses[0];
    assert_eq!(p.index, 0);
    (p.error_code, p.base_offset)
}

fn high_watermark(bs: &str, topic: &str) -> i64 {
    consumer(bs, &[])
        .fetch_watermarks(topic, 0, CALL_TIMEOUT)
        .expect("watermarks")
        .1
}

const TS: i64 = 1_700_000_000_000;

#[test]
fn produce_with_wrong_crc_is_corrupt_message() {
    let broker = Broker::start();
    let bs = broker.bootstrap();
    create_topic(&bs, "crc", 1, &[]);
    let mut c = RawConn::connect(broker.addr());
    let good = BatchBuilder::new(TS)
        .record(Some(b"k1"), Some(b"v1"))
        .record(Some(b"k2"), Some(b"v2"));
    let mut bad = good.clone();
    bad.crc_xor = 0x0000_0100;
    for (i, version) in [3i16, 7, 9].into_iter().enumerate() {
        let (err, base) = produce(&mut c, version, i as i32, "crc", bad.build());
        assert_eq!(
            err, CORRUPT_MESSAGE,
            "produce v{version} with a wrong CRC: error code"
        );
        assert_eq!(base, -1, "base offset of a rejected batch");
    }
    // A payload byte flipped after the CRC was computed.
    let mut flipped = good.build().to_vec();
    let last = flipped.len() - 1;
    flipped[last] ^= 0x01;
    let (err, _) = produce(&mut c, 9, 10, "crc", Bytes::from(flipped));
    assert_eq!(err, CORRUPT_MESSAGE, "flipped payload byte");
    assert_eq!(high_watermark(&bs, "crc"), 0, "nothing appended");

    // The same connection still works, and correct batches are accepted.
    assert_eq!(produce(&mut c, 9, 20, "crc", good.build()), (0, 0));
    assert_eq!(produce(&mut c, 3, 21, "crc", good.build()), (0, 2));
    assert_eq!(high_watermark(&bs, "crc"), 4);
    let got = consume_all(&bs, "crc", 1, CALL_TIMEOUT);
    let kv: Vec<_> = got[&0]
        .iter()
        .map(|m| {
            (
                m.offset(),
                m.key().unwrap(),
                m.payload().unwrap(),
                m.timestamp().to_millis(),
            )
        })
        .collect();
    assert_eq!(
        kv,
        vec![
            (0, &b"k1"[..], &b"v1"[..], Some(TS)),
            (1, &b"k2"[..], &b"v2"[..], Some(TS + 1)),
            (2, &b"k1"[..], &b"v1"[..], Some(TS)),
            (3, &b"k2"[..], &b"v2"[..], Some(TS + 1)),
        ]
    );
    assert_serving(&bs, "alive");
}

#[test]
fn produce_with_huge_record_count_is_rejected() {
    let broker = Broker::start();
    let bs = broker.bootstrap();
    create_topic(&bs, "count", 1, &[]);
    let mut c = RawConn::connect(broker.addr());
    let one = BatchBuilder::new(TS).record(Some(b"k"), Some(b"v"));

    // Count 2^31-1 with a consistent last offset delta, and with the real one (0).
    let mut huge = one.clone();
    huge.count_override = Some(i32::MAX);
    huge.last_offset_delta_override = Some(i32::MAX - 1);
    let mut huge_inconsistent = one.clone();
    huge_inconsistent.count_override = Some(i32::MAX);
    let mut negative = one.clone();
    negative.count_override = Some(-1);
    for (what, b) in [
        ("count 2^31-1", huge),
        ("count 2^31-1, last offset delta 0", huge_inconsistent),
        ("count -1", negative),
    ] {
        for (i, version) in [3i16, 9].into_iter().enumerate() {
            let (err, base) = produce(&mut c, version, i as i32, "count", b.build());
            // Kafka answers CORRUPT_MESSAGE (<= 2.4) or INVALID_RECORD (>= 2.5) for a record
            // count that does not match the batch; either is Kafka's error.
            assert!(
                err == CORRUPT_MESSAGE || err == INVALID_RECORD,
                "produce v{version} with {what}: error code {err}, want {CORRUPT_MESSAGE}"
            );
            assert_eq!(base, -1, "{what}: base offset");
        }
    }
    assert_eq!(high_watermark(&bs, "count"), 0, "nothing appended");
    assert_eq!(produce(&mut c, 9, 50, "count", one.build()), (0, 0));
    assert_eq!(high_watermark(&bs, "count"), 1);
    assert_no_big_allocation(&broker);
    assert_serving(&bs, "alive");
}

fn creatable(name: String) -> CreatableTopic {
    CreatableTopic::default()
        .with_name(TopicName(StrBytes::from_string(name)))
        .with_num_partitions(1)
        .with_replication_factor(1)
}

#[test]
fn create_topics_with_invalid_names() {
    let broker = Broker::start();
    let bs = broker.bootstrap();
    let mut c = RawConn::connect(broker.addr());
    let long = "t".repeat(300);
    for (i, version) in [2i16, 5, 7].into_iter().enumerate() {
        let ok = format!("raw-ok-v{version}");
        let req = CreateTopicsRequest::default()
            .with_timeout_ms(5000)
            .with_validate_only(false)
            .with_topics(vec![
                creatable(long.clone()),
                creatable("a/b".to_string()),
                creatable(ok.clone()),
            ]);
        let resp = c.roundtrip(version, i as i32, &req);
        let mut got: Vec<(String, i16)> = resp
            .topics
            .iter()
            .map(|t| (t.name.0.as_str().to_string(), t.error_code))
            .collect();
        got.sort();
        let mut want = vec![
            (long.clone(), INVALID_TOPIC_EXCEPTION),
            ("a/b".to_string(), INVALID_TOPIC_EXCEPTION),
            (ok, 0),
        ];
        want.sort();
        assert_eq!(got, want, "CreateTopics v{version}");
    }
    let md = sluice_e2e::admin(&bs)
        .inner()
        .fetch_metadata(None, CALL_TIMEOUT)
        .expect("metadata");
    let mut names: Vec<&str> = md
        .topics()
        .iter()
        .map(|t| t.name())
        .filter(|n| !n.starts_with("__"))
        .collect();
    names.sort_unstable();
    assert_eq!(names, vec!["raw-ok-v2", "raw-ok-v5", "raw-ok-v7"]);
    // No directory for the invalid names.
    let entries: Vec<String> = std::fs::read_dir(broker.data_dir())
        .expect("data dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        !entries.iter().any(|e| e.starts_with("ttttt") || e == "a"),
        "data dir has entries for invalid topics: {entries:?}"
    );
    assert_serving(&bs, "alive");
}

/// Many requests written at once — more than the broker keeps in flight per connection,
/// acks=all produces (each waiting for a sync) mixed with fetches: every one is answered, in
/// request order, and each fetch sees exactly the appends of the requests before it.
#[test]
fn pipelined_requests_are_answered_in_order() {
    use kafka_protocol::messages::FetchRequest;
    use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
    const REQUESTS: i32 = 2_500;
    const FETCH_EVERY: i32 = 100;
    let broker = Broker::start();
    create_topic(&broker.bootstrap(), "pipe", 1, &[]);
    let mut c = RawConn::connect(broker.addr());
    let fetch = FetchRequest::default()
        .with_max_wait_ms(100)
        .with_min_bytes(1)
        .with_max_bytes(1 << 20)
        .with_topics(vec![
            FetchTopic::default()
                .with_topic(TopicName(StrBytes::from_static_str("pipe")))
                .with_partitions(vec![
                    FetchPartition::default()
                        .with_partition(0)
                        .with_fetch_offset(0)
                        .with_partition_max_bytes(1 << 20),
                ]),
        ]);
    let mut all = Vec::new();
    for corr in 0..REQUESTS {
        let request = if corr % FETCH_EVERY == FETCH_EVERY - 1 {
            sluice_e2e::raw::encode_request(11, corr, &fetch)
        } else {
            let batch = BatchBuilder::new(TS).record(None, Some(format!("{corr}").as_bytes()));
            sluice_e2e::raw::encode_request(7, corr, &produce_request("pipe", 0, -1, batch.build()))
        };
        all.extend(frame(&request));
    }
    c.send(&all).expect("send pipelined");
    let mut produced = 0i64;
    for corr in 0..REQUESTS {
        if corr % FETCH_EVERY == FETCH_EVERY - 1 {
            let resp = c.read_response::<FetchRequest>(11, corr);
            let p = &resp.responses[0].partitions[0];
            assert_eq!(p.error_code, 0, "fetch #{corr}");
            assert_eq!(
                p.high_watermark, produced,
                "fetch #{corr} sees the appends before it"
            );
        } else {
            let resp = c.read_response::<ProduceRequest>(7, corr);
            let p = &resp.responses[0].partition_responses[0];
            assert_eq!(
                (p.error_code, p.base_offset),
                (0, produced),
                "produce #{corr}"
            );
            produced += 1;
        }
    }
}

/// A compacted topic keeps the last record per key, so Kafka refuses records without a key:
/// INVALID_RECORD for the partition, and (Produce v8+) one `record_errors` entry per keyless
/// record with its index in the batch. Nothing of the refused batch is stored.
#[test]
fn keyless_records_on_a_compacted_topic_are_invalid_record_with_their_indexes() {
    let broker = Broker::start();
    let bs = broker.bootstrap();
    create_topic(&bs, "compacted", 1, &[("cleanup.policy", "compact")]);
    let mut c = RawConn::connect(broker.addr());
    let mixed = BatchBuilder::new(TS)
        .record(Some(b"a"), Some(b"1"))
        .record(None, Some(b"2"))
        .record(Some(b"c"), Some(b"3"))
        .record(None, None)
        .build();
    let resp = c.roundtrip(9, 1, &produce_request("compacted", 0, -1, mixed.clone()));
    let p = &resp.responses[0].partition_responses[0];
    assert_eq!(p.error_code, INVALID_RECORD);
    assert_eq!(p.base_offset, -1);
    let expected =
        "Compacted topic cannot accept message without key in topic partition compacted-0.";
    assert_eq!(p.error_message.as_ref().map(|m| m.as_str()), Some(expected));
    let indexes: Vec<(i32, Option<&str>)> = p
        .record_errors
        .iter()
        .map(|e| {
            (
                e.batch_index,
                e.batch_index_error_message.as_ref().map(|m| m.as_str()),
            )
        })
        .collect();
    assert_eq!(indexes, vec![(1, Some(expected)), (3, Some(expected))]);

    // Before v8 there is no room for record errors: just the code.
    let resp = c.roundtrip(7, 2, &produce_request("compacted", 0, -1, mixed));
    assert_eq!(
        resp.responses[0].partition_responses[0].error_code,
        INVALID_RECORD
    );
    assert_eq!(
        high_watermark(&bs, "compacted"),
        0,
        "a refused batch is not stored"
    );

    let keyed = BatchBuilder::new(TS).record(Some(b"a"), Some(b"1")).build();
    assert_eq!(produce(&mut c, 9, 3, "compacted", keyed), (0, 0));
    // The same keyless batch is fine on a topic that only deletes.
    let keyless = BatchBuilder::new(TS).record(None, Some(b"x")).build();
    create_topic(&bs, "deleting", 1, &[]);
    assert_eq!(produce(&mut c, 9, 4, "deleting", keyless), (0, 0));
}

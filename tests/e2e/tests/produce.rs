//! Produce with every codec and every acks setting through librdkafka, read everything back
//! (partition assignment, no group) and compare record by record.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::message::{Header, Headers, Message, OwnedHeaders, Timestamp};
use rdkafka::producer::{BaseRecord, Producer};
use sluice_e2e::raw::fetch_batch_headers;
use sluice_e2e::{Broker, consume_all, create_topic, producer, wait_high_watermarks};

const TOPIC: &str = "codec-test";
const PARTITIONS: i32 = 3;
const RECORDS: usize = 600;
const BASE_TS: i64 = 1_700_000_000_000;

/// What we sent, by send id.
struct Sent {
    key: Option<Vec<u8>>,
    value: Vec<u8>,
    headers: Vec<(String, Option<Vec<u8>>)>,
    timestamp: i64,
}

fn record(i: usize) -> Sent {
    // Mostly keyed records; every 50th has no key, every 37th an empty value.
    let key = (i % 50 != 7).then(|| format!("key-{}", i % 23).into_bytes());
    let value = if i % 37 == 5 {
        vec![]
    } else {
        // Compressible, variable-size values so every codec really compresses.
        format!("value {i:06} ").repeat(1 + i % 40).into_bytes()
    };
    let mut headers = vec![
        ("seq".to_string(), Some(i.to_string().into_bytes())),
        ("dup".to_string(), Some(b"first".to_vec())),
        ("dup".to_string(), Some(b"second".to_vec())),
    ];
    if i.is_multiple_of(3) {
        headers.push(("null-value".to_string(), None));
        headers.push(("empty-value".to_string(), Some(vec![])));
    }
    Sent {
        key,
        value,
        headers,
        timestamp: BASE_TS + i as i64,
    }
}

fn run(codec: &str, acks: &str) {
    let broker = Broker::start();
    let bs = broker.bootstrap();
    create_topic(&bs, TOPIC, PARTITIONS, &[]);

    let sent: Vec<Sent> = (0..RECORDS).map(record).collect();
    let p = producer(
        &bs,
        &[
            ("compression.codec", codec),
            ("acks", acks),
            ("linger.ms", "20"),
            ("batch.num.messages", "200"),
        ],
    );
    for (i, s) in sent.iter().enumerate() {
        let mut h = OwnedHeaders::new();
        for (k, v) in &s.headers {
            h = h.insert(Header {
                key: k,
                value: v.as_deref(),
            });
        }
        let mut r = BaseRecord::with_opaque_to(TOPIC, i)
            .payload(&s.value[..])
            .timestamp(s.timestamp)
            .headers(h);
        if let Some(k) = &s.key {
            r = r.key(&k[..]);
        }
        p.send(r).map_err(|(e, _)| e).expect("enqueue");
    }
    p.flush(Duration::from_secs(20)).expect("flush");
    let mut dr = p.context().deliveries();
    assert_eq!(dr.len(), RECORDS, "one delivery report per record");
    dr.sort_by_key(|d| d.id);

    // Partition of each record from its delivery report; with acks >= 1 also its offset.
    let mut partition_of = vec![0i32; RECORDS];
    let mut next_offset: BTreeMap<i32, i64> = BTreeMap::new();
    let mut expected: BTreeMap<i32, Vec<usize>> = BTreeMap::new();
    // librdkafka delivers reports per partition in produce order; offsets are assigned in
    // that order too, so walk records in send order.
    for d in &dr {
        let (part, off) = d
            .result
            .clone()
            .unwrap_or_else(|e| panic!("{codec}/acks={acks}: record {} failed: {e}", d.id));
        assert!(
            (0..PARTITIONS).contains(&part),
            "partition {part} out of range"
        );
        partition_of[d.id] = part;
        expected.entry(part).or_default().push(d.id);
        if acks != "0" {
            let next = next_offset.entry(part).or_insert(0);
            assert_eq!(
                off, *next,
                "{codec}/acks={acks}: delivery report offset of record {} on partition {part}",
                d.id
            );
            *next += 1;
        }
    }
    // Same key, same partition (default partitioner is deterministic for keyed records).
    let mut key_part: BTreeMap<Vec<u8>, i32> = BTreeMap::new();
    for (i, s) in sent.iter().enumerate() {
        if let Some(k) = &s.key {
            let p0 = *key_part.entry(k.clone()).or_insert(partition_of[i]);
            assert_eq!(p0, partition_of[i], "key {k:?} went to two partitions");
        }
    }

    if acks == "0" {
        // No responses: wait until the broker has appended everything.
        wait_high_watermarks(
            &bs,
            TOPIC,
            PARTITIONS,
            RECORDS as i64,
            Duration::from_secs(20),
        );
    }

    let got = consume_all(&bs, TOPIC, PARTITIONS, Duration::from_secs(30));
    let mut total = 0;
    for part in 0..PARTITIONS {
        let msgs = &got[&part];
        let want = expected.remove(&part).unwrap_or_default();
        assert_eq!(
            msgs.len(),
            want.len(),
            "{codec}/acks={acks}: record count on partition {part}"
        );
        for (n, (m, &id)) in msgs.iter().zip(&want).enumerate() {
            let s = &sent[id];
            let ctx = format!("{codec}/acks={acks}: partition {part} offset {n} (record {id})");
            assert_eq!(m.partition(), part, "{ctx}");
            assert_eq!(m.offset(), n as i64, "{ctx}: offset");
            assert_eq!(m.key(), s.key.as_deref(), "{ctx}: key");
            assert_eq!(
                m.payload().unwrap_or_default(),
                &s.value[..],
                "{ctx}: value"
            );
            assert!(m.payload().is_some(), "{ctx}: value must not be null");
            assert_eq!(
                m.timestamp(),
                Timestamp::CreateTime(s.timestamp),
                "{ctx}: timestamp"
            );
            let hs: Vec<(String, Option<Vec<u8>>)> = m
                .headers()
                .map(|h| {
                    h.iter()
                        .map(|h| (h.key.to_string(), h.value.map(<[u8]>::to_vec)))
                        .collect()
                })
                .unwrap_or_default();
            assert_eq!(hs, s.headers, "{ctx}: headers");
        }
        total += msgs.len();
    }
    assert_eq!(total, RECORDS);

    // Batches are stored (and served) as produced: compressed with the producer's codec,
    // offsets stamped without breaking the CRC.
    let want_codec = match codec {
        "none" => 0,
        "gzip" => 1,
        "snappy" => 2,
        "lz4" => 3,
        "zstd" => 4,
        other => panic!("codec {other}"),
    };
    for part in 0..PARTITIONS {
        let headers = fetch_batch_headers(broker.addr(), TOPIC, part);
        let mut next = 0i64;
        for h in &headers {
            assert_eq!(h.magic, 2, "{codec}: batch magic");
            assert!(
                h.crc_ok,
                "{codec}: CRC of stored batch at {}",
                h.base_offset
            );
            assert_eq!(
                h.codec(),
                want_codec,
                "{codec}: codec of batch at {}",
                h.base_offset
            );
            assert_eq!(h.base_offset, next, "{codec}: batches are contiguous");
            assert_eq!(h.records, h.last_offset_delta + 1);
            next += i64::from(h.records);
        }
        assert_eq!(
            next,
            got[&part].len() as i64,
            "{codec}: records in batches of partition {part}"
        );
    }
}

macro_rules! combos {
    ($($name:ident: $codec:literal, $acks:literal;)*) => {
        $(
            #[test]
            fn $name() {
                run($codec, $acks);
            }
        )*
    };
}

combos! {
    none_acks_0: "none", "0";
    none_acks_1: "none", "1";
    none_acks_all: "none", "all";
    gzip_acks_0: "gzip", "0";
    gzip_acks_1: "gzip", "1";
    gzip_acks_all: "gzip", "all";
    snappy_acks_0: "snappy", "0";
    snappy_acks_1: "snappy", "1";
    snappy_acks_all: "snappy", "all";
    lz4_acks_0: "lz4", "0";
    lz4_acks_1: "lz4", "1";
    lz4_acks_all: "lz4", "all";
    zstd_acks_0: "zstd", "0";
    zstd_acks_1: "zstd", "1";
    zstd_acks_all: "zstd", "all";
}

/// Auto-creation on produce to an unknown topic (broker default), default partition count.
#[test]
fn produce_auto_creates_topic() {
    let broker = Broker::start_with(&["--default-partitions", "2"]);
    let bs = broker.bootstrap();
    let p = producer(&bs, &[("acks", "all")]);
    for i in 0..10usize {
        let v = format!("v{i}");
        p.send(
            BaseRecord::<str, _, _>::with_opaque_to("auto-created", i)
                .partition((i % 2) as i32)
                .payload(&v),
        )
        .map_err(|(e, _)| e)
        .expect("enqueue");
    }
    p.flush(Duration::from_secs(20)).expect("flush");
    let dr = p.context().deliveries();
    assert_eq!(dr.len(), 10);
    for d in &dr {
        let (part, off) = d.result.clone().expect("delivered");
        assert_eq!(part, (d.id % 2) as i32);
        assert_eq!(off, (d.id / 2) as i64);
    }
    let md = p
        .client()
        .fetch_metadata(None, Duration::from_secs(10))
        .expect("metadata");
    let t = md
        .topics()
        .iter()
        .find(|t| t.name() == "auto-created")
        .expect("auto-created topic in metadata");
    assert_eq!(t.partitions().len(), 2, "default partitions");
    let got = consume_all(&bs, "auto-created", 2, Duration::from_secs(20));
    assert_eq!(got[&0].len(), 5);
    assert_eq!(got[&1].len(), 5);
    assert_eq!(got[&1][4].payload(), Some(&b"v9"[..]));
}

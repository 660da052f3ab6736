//! ListOffsets through librdkafka: lookup by timestamp (`offsets_for_times`), earliest and
//! latest (`fetch_watermarks`), across several batches and segments; special timestamps over
//! raw frames.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::time::Duration;

use kafka_protocol::messages::ListOffsetsRequest;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::protocol::StrBytes;
use rdkafka::consumer::Consumer;
use rdkafka::producer::{BaseRecord, Producer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use sluice_e2e::raw::RawConn;
use sluice_e2e::{
    Broker, CALL_TIMEOUT, admin, admin_opts, block_on, consumer, create_topic, producer,
};

const TOPIC: &str = "times";
const BASE_TS: i64 = 1_700_000_000_000;
const RECORDS: usize = 3000;

/// Two records share each timestamp: record i has `BASE_TS + (i / 2) * 10`.
fn ts(i: usize) -> i64 {
    BASE_TS + (i as i64 / 2) * 10
}

/// Kafka's answer: the first offset whose timestamp is >= target, or -1 (Offset::End).
fn expected(target: i64) -> Offset {
    (0..RECORDS)
        .find(|&i| ts(i) >= target)
        .map(|i| Offset::Offset(i as i64))
        .unwrap_or(Offset::End)
}

fn lookup(bs: &str, partitions: &[(i32, i64)]) -> Vec<(i32, Offset)> {
    let c = consumer(bs, &[]);
    let mut tpl = TopicPartitionList::new();
    for &(p, t) in partitions {
        tpl.add_partition_offset(TOPIC, p, Offset::Offset(t))
            .expect("tpl");
    }
    let res = c
        .offsets_for_times(tpl, CALL_TIMEOUT)
        .expect("offsets_for_times");
    res.elements()
        .iter()
        .map(|e| {
            e.error().expect("partition error");
            (e.partition(), e.offset())
        })
        .collect()
}

#[test]
fn offsets_for_times_and_watermarks() {
    let broker = Broker::start();
    let bs = broker.bootstrap();
    // Small segments so that lookups cross segment boundaries; partition 1 stays empty.
    create_topic(&bs, TOPIC, 2, &[("segment.bytes", "1048576")]);

    let c = consumer(&bs, &[]);
    assert_eq!(
        c.fetch_watermarks(TOPIC, 0, CALL_TIMEOUT)
            .expect("watermarks"),
        (0, 0),
        "empty partition"
    );

    // ~3 MB in many small batches (flush every 100 records).
    let p = producer(&bs, &[("acks", "all"), ("linger.ms", "0")]);
    let pad = "x".repeat(1000);
    for i in 0..RECORDS {
        let v = format!("{i:06}{pad}");
        p.send(
            BaseRecord::with_opaque_to(TOPIC, i)
                .partition(0)
                .key("k")
                .payload(&v)
                .timestamp(ts(i)),
        )
        .map_err(|(e, _)| e)
        .expect("enqueue");
        if i % 100 == 99 {
            p.flush(Duration::from_secs(20)).expect("flush");
        }
    }
    p.flush(Duration::from_secs(20)).expect("flush");
    let dr = p.context().deliveries();
    assert_eq!(dr.len(), RECORDS);
    for d in &dr {
        assert_eq!(d.result, Ok((0, d.id as i64)), "record {}", d.id);
    }

    assert_eq!(
        c.fetch_watermarks(TOPIC, 0, CALL_TIMEOUT)
            .expect("watermarks"),
        (0, RECORDS as i64)
    );
    assert_eq!(
        c.fetch_watermarks(TOPIC, 1, CALL_TIMEOUT)
            .expect("watermarks"),
        (0, 0)
    );

    let last = ts(RECORDS - 1);
    let targets = [
        0,
        BASE_TS - 1,
        BASE_TS,
        BASE_TS + 1,
        BASE_TS + 10,
        BASE_TS + 15,
        ts(777),
        ts(777) - 1,
        ts(1501),
        ts(1501) + 3,
        ts(2998) - 5,
        last - 1,
        last,
        last + 1,
        last + 1_000_000,
    ];
    for t in targets {
        let got = lookup(&bs, &[(0, t)]);
        assert_eq!(got, vec![(0, expected(t))], "offsets_for_times({t})");
    }
    // Both partitions in one request: the empty partition answers -1.
    let got = lookup(&bs, &[(0, ts(1234)), (1, BASE_TS)]);
    assert_eq!(got, vec![(0, expected(ts(1234))), (1, Offset::End)]);

    // DeleteRecords moves the log start offset: earliest follows it, and a timestamp before
    // it resolves to the new log start offset.
    let admin = admin(&bs);
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(TOPIC, 0, Offset::Offset(1000))
        .expect("tpl");
    let res = block_on(admin.delete_records(&tpl, &admin_opts())).expect("delete_records");
    let e = res.find_partition(TOPIC, 0).expect("partition 0 in result");
    e.error().expect("delete_records partition error");
    assert_eq!(e.offset(), Offset::Offset(1000), "new low watermark");
    assert_eq!(
        c.fetch_watermarks(TOPIC, 0, CALL_TIMEOUT)
            .expect("watermarks"),
        (1000, RECORDS as i64)
    );
    assert_eq!(
        lookup(&bs, &[(0, BASE_TS)]),
        vec![(0, Offset::Offset(1000))]
    );
    assert_eq!(lookup(&bs, &[(0, ts(2001))]), vec![(0, expected(ts(2001)))]);
}

/// Kafka's rule (ReplicaManager): a negative timestamp is UNSUPPORTED_VERSION (35) unless it
/// is one of the special ones and the request version knows it: LATEST (-1) and EARLIEST
/// (-2) always, MAX_TIMESTAMP (-3) from v7, EARLIEST_LOCAL (-4) from v8, LATEST_TIERED (-5)
/// from v9. The check comes before the partition lookup, so it wins over an unknown topic.
#[test]
fn special_timestamps_depend_on_the_request_version() {
    let broker = Broker::start();
    create_topic(&broker.bootstrap(), TOPIC, 1, &[]);
    let since = |ts: i64| match ts {
        -1 | -2 => Some(1),
        -3 => Some(7),
        -4 => Some(8),
        -5 => Some(9),
        _ => None,
    };
    let timestamps = [-1, -2, -3, -4, -5, -6, -7, -100, i64::MIN];
    let partition = |timestamp| {
        ListOffsetsPartition::default()
            .with_partition_index(0)
            .with_timestamp(timestamp)
    };
    let request = ListOffsetsRequest::default()
        .with_replica_id(kafka_protocol::messages::BrokerId(-1))
        .with_topics(vec![
            ListOffsetsTopic::default()
                .with_name(StrBytes::from_static_str(TOPIC).into())
                .with_partitions(timestamps.iter().map(|&ts| partition(ts)).collect()),
            ListOffsetsTopic::default()
                .with_name(StrBytes::from_static_str("no-such-topic").into())
                .with_partitions(vec![partition(-3), partition(-6), partition(-1)]),
        ]);
    let mut conn = RawConn::connect(broker.addr());
    for version in 1i16..=10 {
        let resp = conn.roundtrip(version, i32::from(version), &request);
        assert_eq!(resp.topics.len(), 2, "v{version}");
        let answers: Vec<(i16, i64, i64)> = resp.topics[0]
            .partitions
            .iter()
            .map(|p| (p.error_code, p.timestamp, p.offset))
            .collect();
        let expected: Vec<(i16, i64, i64)> = timestamps
            .iter()
            .map(|&ts| match since(ts) {
                // The empty partition: its start and end offset 0, no max timestamp, no
                // tiered offset.
                Some(v) if version >= v => match ts {
                    -1 | -2 | -4 => (0, -1, 0),
                    _ => (0, -1, -1),
                },
                _ => (35, -1, -1),
            })
            .collect();
        assert_eq!(answers, expected, "v{version}");
        let unknown: Vec<i16> = resp.topics[1]
            .partitions
            .iter()
            .map(|p| p.error_code)
            .collect();
        let max_timestamp = if version >= 7 { 3 } else { 35 };
        assert_eq!(
            unknown,
            vec![max_timestamp, 35, 3],
            "v{version} unknown topic"
        );
    }
}

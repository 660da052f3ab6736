//! `message.timestamp.before.max.ms` / `after.max.ms` (KIP-937; after defaults to one hour
//! as in Kafka 4.0): a CreateTime topic refuses a batch holding a record whose timestamp is
//! too far from the broker's clock with INVALID_TIMESTAMP, naming each such record in
//! `record_errors` with Kafka's message; nothing of the batch is stored.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::IncrementalAlterConfigsRequest;
use kafka_protocol::messages::produce_response::PartitionProduceResponse;
use kafka_protocol::protocol::StrBytes;
use rdkafka::consumer::Consumer;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseRecord, Producer};
use sluice_e2e::raw::{BatchBuilder, RawConn};
use sluice_e2e::{Broker, CALL_TIMEOUT, consumer, create_topic, producer};
use sluice_protocol::clock::{Clock, SystemClock};

/// 2100-01-01T00:00:00Z.
const YEAR_2100: i64 = 4_102_444_800_000;
const HOUR: i64 = 3_600_000;
const INVALID_TIMESTAMP: i16 = 32;
const INVALID_RECORD: i16 = 87;

/// The wall clock, which the broker process reads too.
fn now_ms() -> i64 {
    SystemClock.now_ms()
}

/// A batch of records with these timestamps (and keys unless `None`).
fn batch(records: &[(i64, Option<&[u8]>)]) -> Bytes {
    let base = records[0].0;
    let mut b = BatchBuilder::new(base);
    for (i, (ts, key)) in records.iter().enumerate() {
        b = b.record(*key, Some(format!("v{i}").as_bytes()));
        b.records[i].timestamp_delta = ts - base;
    }
    b.build()
}

/// Produces `batch` to partition 0 of `topic` (v9, acks=all); returns the partition's answer.
fn produce(conn: &mut RawConn, corr: i32, topic: &str, batch: Bytes) -> PartitionProduceResponse {
    sluice_e2e::raw::produce(conn, corr, topic, 0, -1, batch)
}

/// The record errors of a refusal as (batch index, message).
fn record_errors(p: &PartitionProduceResponse) -> Vec<(i32, String)> {
    p.record_errors
        .iter()
        .map(|e| {
            (
                e.batch_index,
                e.batch_index_error_message
                    .as_ref()
                    .map(|m| m.to_string())
                    .unwrap_or_default(),
            )
        })
        .collect()
}

/// Kafka's message for a refused record, checked exactly: the range it names is the
/// broker's clock (between `sent` and `answered`) minus `before` and plus `after`.
fn assert_timestamp_error(
    message: &str,
    timestamp: i64,
    offset: i64,
    (before, after): (i64, i64),
    (sent, answered): (i64, i64),
) {
    let prefix = format!(
        "Timestamp {timestamp} of message with offset {offset} is out of range. The timestamp \
         should be within ["
    );
    let range = message
        .strip_prefix(&prefix)
        .and_then(|r| r.strip_suffix(']'))
        .unwrap_or_else(|| panic!("unexpected record error message {message:?}"));
    let (from, to) = range.split_once(", ").expect("two bounds");
    let (from, to): (i64, i64) = (from.parse().unwrap(), to.parse().unwrap());
    let broker_now = to.wrapping_sub(after);
    assert!(
        (sent..=answered).contains(&broker_now),
        "{message}: the broker's clock {broker_now} is not within [{sent}, {answered}]"
    );
    assert_eq!(from, broker_now.wrapping_sub(before), "{message}");
}

fn high_watermark(bs: &str, topic: &str) -> i64 {
    consumer(bs, &[])
        .fetch_watermarks(topic, 0, CALL_TIMEOUT)
        .unwrap()
        .1
}

#[test]
fn a_record_more_than_an_hour_ahead_is_refused_by_default() {
    let broker = Broker::start();
    let bs = broker.bootstrap();
    create_topic(&bs, "ts", 1, &[]);
    let mut conn = RawConn::connect(broker.addr());

    let sent = now_ms();
    let p = produce(
        &mut conn,
        1,
        "ts",
        batch(&[
            (sent, Some(b"a")),
            (YEAR_2100, Some(b"b")),
            (sent, Some(b"c")),
        ]),
    );
    let answered = now_ms();
    assert_eq!(p.error_code, INVALID_TIMESTAMP);
    assert_eq!(p.base_offset, -1);
    assert_eq!(
        p.error_message.as_deref(),
        Some("One or more records have been rejected due to invalid timestamp")
    );
    let errors = record_errors(&p);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].0, 1);
    assert_timestamp_error(
        &errors[0].1,
        YEAR_2100,
        1,
        (i64::MAX, HOUR),
        (sent, answered),
    );
    assert_eq!(
        high_watermark(&bs, "ts"),
        0,
        "nothing of the batch is stored"
    );

    // Past timestamps, however old, and up to an hour ahead are accepted.
    let now = now_ms();
    let p = produce(
        &mut conn,
        2,
        "ts",
        batch(&[(1, None), (now + HOUR - 60_000, None), (-1, None)]),
    );
    assert_eq!((p.error_code, p.base_offset), (0, 0));

    // librdkafka reports the error for the record.
    let producer = producer(&bs, &[("acks", "all"), ("retries", "0")]);
    producer
        .send(
            BaseRecord::with_opaque_to("ts", 7)
                .partition(0)
                .key("k")
                .payload("from the future")
                .timestamp(YEAR_2100),
        )
        .map_err(|(e, _)| e)
        .unwrap();
    producer.flush(Duration::from_secs(15)).unwrap();
    let deliveries = producer.context().deliveries();
    assert_eq!(deliveries.len(), 1);
    assert_eq!(
        deliveries[0].result,
        Err(KafkaError::MessageProduction(
            RDKafkaErrorCode::InvalidTimestamp
        ))
    );
    assert_eq!(high_watermark(&bs, "ts"), 3);
}

#[test]
fn topic_bounds_name_every_offending_record() {
    let broker = Broker::start();
    let bs = broker.bootstrap();
    create_topic(
        &bs,
        "bounded",
        1,
        &[
            ("message.timestamp.before.max.ms", "60000"),
            ("message.timestamp.after.max.ms", "1000"),
        ],
    );
    let mut conn = RawConn::connect(broker.addr());
    let sent = now_ms();
    let (old, ahead) = (sent - 120_000, sent + 30_000);
    let p = produce(
        &mut conn,
        1,
        "bounded",
        batch(&[(sent, None), (old, None), (sent, None), (ahead, None)]),
    );
    let answered = now_ms();
    assert_eq!(p.error_code, INVALID_TIMESTAMP);
    let errors = record_errors(&p);
    assert_eq!(
        errors.iter().map(|e| e.0).collect::<Vec<_>>(),
        vec![1, 3],
        "{errors:?}"
    );
    assert_timestamp_error(&errors[0].1, old, 1, (60_000, 1000), (sent, answered));
    assert_timestamp_error(&errors[1].1, ahead, 3, (60_000, 1000), (sent, answered));
    assert_eq!(high_watermark(&bs, "bounded"), 0);

    // A compacted topic: the keyless record is named with the key error, and a timestamp
    // error anywhere makes the whole batch INVALID_TIMESTAMP.
    create_topic(&bs, "compacted", 1, &[("cleanup.policy", "compact")]);
    let sent = now_ms();
    let p = produce(
        &mut conn,
        2,
        "compacted",
        batch(&[(sent, None), (YEAR_2100, Some(b"k")), (sent, Some(b"k"))]),
    );
    let answered = now_ms();
    assert_eq!(p.error_code, INVALID_TIMESTAMP);
    let errors = record_errors(&p);
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert_eq!(
        errors[0],
        (
            0,
            "Compacted topic cannot accept message without key in topic partition compacted-0."
                .to_string()
        )
    );
    assert_eq!(errors[1].0, 1);
    assert_timestamp_error(
        &errors[1].1,
        YEAR_2100,
        1,
        (i64::MAX, HOUR),
        (sent, answered),
    );
    // Without a timestamp error it stays INVALID_RECORD.
    let p = produce(&mut conn, 3, "compacted", batch(&[(sent, None)]));
    assert_eq!(p.error_code, INVALID_RECORD);

    // LogAppendTime topics replace timestamps: nothing to refuse.
    create_topic(
        &bs,
        "append-time",
        1,
        &[("message.timestamp.type", "LogAppendTime")],
    );
    let p = produce(&mut conn, 4, "append-time", batch(&[(YEAR_2100, None)]));
    assert_eq!((p.error_code, p.base_offset), (0, 0));
    assert!(p.log_append_time_ms > 0 && p.log_append_time_ms < YEAR_2100);
}

/// IncrementalAlterConfigs on this broker's config resource; returns the error code.
fn alter_broker_config(conn: &mut RawConn, corr: i32, name: &str, value: Option<&str>) -> i16 {
    use kafka_protocol::messages::incremental_alter_configs_request::{
        AlterConfigsResource, AlterableConfig,
    };
    let op = if value.is_some() { 0 } else { 1 };
    let req = IncrementalAlterConfigsRequest::default().with_resources(vec![
        AlterConfigsResource::default()
            .with_resource_type(4)
            .with_resource_name(StrBytes::from_static_str("1"))
            .with_configs(vec![
                AlterableConfig::default()
                    .with_name(StrBytes::from_string(name.to_string()))
                    .with_config_operation(op)
                    .with_value(value.map(|v| StrBytes::from_string(v.to_string()))),
            ]),
    ]);
    conn.roundtrip(1, corr, &req).responses[0].error_code
}

#[test]
fn broker_level_bounds_apply_to_topics_without_their_own() {
    let broker = Broker::start();
    let bs = broker.bootstrap();
    create_topic(&bs, "plain", 1, &[]);
    create_topic(
        &bs,
        "lenient",
        1,
        &[("message.timestamp.after.max.ms", "86400000")],
    );
    let mut conn = RawConn::connect(broker.addr());
    assert_eq!(
        alter_broker_config(
            &mut conn,
            1,
            "log.message.timestamp.after.max.ms",
            Some("1000")
        ),
        0
    );
    let ahead = now_ms() + 60_000;
    let p = produce(&mut conn, 2, "plain", batch(&[(ahead, None)]));
    assert_eq!(p.error_code, INVALID_TIMESTAMP);
    let p = produce(&mut conn, 3, "lenient", batch(&[(ahead, None)]));
    assert_eq!(
        (p.error_code, p.base_offset),
        (0, 0),
        "the topic's own value wins"
    );

    // Back to the default (an hour ahead is fine).
    assert_eq!(
        alter_broker_config(&mut conn, 4, "log.message.timestamp.after.max.ms", None),
        0
    );
    let p = produce(&mut conn, 5, "plain", batch(&[(ahead, None)]));
    assert_eq!((p.error_code, p.base_offset), (0, 0));
}

/// A broker whose wall clock is two hours behind (the fault-injection clock skew): it
/// judges timestamps and stamps LogAppendTime by its own clock, so a record stamped with
/// the true present is more than an hour ahead of it, and the time it stamps is two hours
/// back.
#[test]
fn a_broker_whose_clock_is_behind_judges_and_stamps_by_its_own_clock() {
    const SKEW: i64 = -2 * HOUR;
    let skew = SKEW.to_string();
    let broker = Broker::start_with_env(&[("SLUICE_FAULT_CLOCK_SKEW_MS", &skew)], &[]);
    assert!(
        broker
            .log()
            .contains("the wall clock is shifted by -7200000 ms"),
        "the skew is announced at start"
    );
    let bs = broker.bootstrap();
    create_topic(&bs, "ts", 1, &[]);
    let mut conn = RawConn::connect(broker.addr());

    let sent = now_ms();
    let p = produce(&mut conn, 1, "ts", batch(&[(sent, None)]));
    let answered = now_ms();
    assert_eq!(p.error_code, INVALID_TIMESTAMP);
    let errors = record_errors(&p);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_timestamp_error(
        &errors[0].1,
        sent,
        0,
        (i64::MAX, HOUR),
        (sent + SKEW, answered + SKEW),
    );
    // An hour and a half ago is half an hour ahead of the broker: accepted.
    let p = produce(&mut conn, 2, "ts", batch(&[(sent - 90 * 60_000, None)]));
    assert_eq!((p.error_code, p.base_offset), (0, 0));

    create_topic(
        &bs,
        "appended",
        1,
        &[("message.timestamp.type", "LogAppendTime")],
    );
    let before = now_ms();
    let p = produce(&mut conn, 3, "appended", batch(&[(before, None)]));
    let after = now_ms();
    assert_eq!((p.error_code, p.base_offset), (0, 0));
    assert!(
        (before + SKEW..=after + SKEW).contains(&p.log_append_time_ms),
        "log append time {} is not the broker's clock, within [{}, {}]",
        p.log_append_time_ms,
        before + SKEW,
        after + SKEW
    );
}

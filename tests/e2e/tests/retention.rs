//! Time-based retention of a partition that receives no more writes: Kafka rolls the active
//! segment once its newest record is older than `retention.ms` and deletes it, so the log
//! start offset reaches the log end offset and a fetch from the old start is out of range.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::thread;
use std::time::{Duration, Instant};

use rdkafka::consumer::Consumer;
use rdkafka::producer::{BaseRecord, Producer};
use sluice_e2e::raw::{RawConn, fetch};
use sluice_e2e::{Broker, CALL_TIMEOUT, consumer, create_topic, producer};

const RECORDS: usize = 5;

fn produce(bootstrap: &str, topic: &str) {
    let p = producer(bootstrap, &[("acks", "all")]);
    for i in 0..RECORDS {
        p.send(
            BaseRecord::<(), str, usize>::with_opaque_to(topic, i)
                .partition(0)
                .payload("v"),
        )
        .map_err(|(e, _)| e)
        .expect("enqueue");
    }
    assert!(p.context().wait_acked(RECORDS, Duration::from_secs(15)));
}

#[test]
fn an_idle_partition_past_retention_ends_empty_at_its_end_offset() {
    let broker = Broker::start_with(&["--log-retention-check-interval-ms", "100"]);
    let bs = broker.bootstrap();
    create_topic(&bs, "short", 1, &[("retention.ms", "1000")]);
    create_topic(&bs, "kept", 1, &[]);
    produce(&bs, "short");
    produce(&bs, "kept");

    // Retention runs every 100 ms; the records (timestamped now) expire after one second.
    let c = consumer(&bs, &[]);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let watermarks = c.fetch_watermarks("short", 0, CALL_TIMEOUT).unwrap();
        if watermarks == (RECORDS as i64, RECORDS as i64) {
            break;
        }
        assert_eq!(
            watermarks.1, RECORDS as i64,
            "the log end offset never moves"
        );
        assert!(
            Instant::now() < deadline,
            "the idle partition kept its data past retention.ms: watermarks {watermarks:?}"
        );
        thread::sleep(Duration::from_millis(50));
    }
    // A topic with the default retention (7 days) keeps its records.
    assert_eq!(
        c.fetch_watermarks("kept", 0, CALL_TIMEOUT).unwrap(),
        (0, RECORDS as i64)
    );

    // Fetching from the old start is out of range, as in Kafka, with the new bounds.
    let mut conn = RawConn::connect(broker.addr());
    let p = fetch(&mut conn, 1, "short", 0, 0, 1 << 20);
    assert_eq!(p.error_code, 1, "OFFSET_OUT_OF_RANGE");
    assert_eq!(p.log_start_offset, RECORDS as i64);
    assert_eq!(p.high_watermark, RECORDS as i64);
    // From the end: nothing, no error.
    let p = fetch(&mut conn, 2, "short", 0, RECORDS as i64, 1 << 20);
    assert_eq!(p.error_code, 0);
    assert_eq!(p.records.as_ref().map(|r| r.len()), Some(0));

    // New records continue at the end offset.
    let p = producer(&bs, &[("acks", "all")]);
    p.send(
        BaseRecord::<(), str, usize>::with_opaque_to("short", 0)
            .partition(0)
            .payload("later"),
    )
    .map_err(|(e, _)| e)
    .expect("enqueue");
    assert!(p.context().wait_acked(1, Duration::from_secs(15)));
    assert_eq!(
        p.context().deliveries()[0].result,
        Ok((0, RECORDS as i64)),
        "the next record's offset"
    );
}

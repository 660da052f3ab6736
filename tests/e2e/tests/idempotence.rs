//! Idempotent producers: librdkafka with `enable.idempotence=true`, and the
//! broker's sequence checks driven directly over the wire.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::{InitProducerIdRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, Producer};
use sluice_e2e::raw::RawConn;
use sluice_e2e::{Broker, consume_all, create_topic, producer, wait_high_watermarks};
use sluice_protocol::batch::RecordBatchBuilder;

fn init_producer_id(conn: &mut RawConn, correlation_id: i32) -> (i64, i16) {
    let resp = conn.roundtrip(
        4,
        correlation_id,
        &InitProducerIdRequest::default()
            .with_transactional_id(None)
            .with_transaction_timeout_ms(60_000),
    );
    assert_eq!(resp.error_code, 0, "InitProducerId error");
    (resp.producer_id.0, resp.producer_epoch)
}

fn idempotent_batch(producer_id: i64, epoch: i16, seq: i32, records: usize) -> Bytes {
    let mut b = RecordBatchBuilder::new().producer(producer_id, epoch, seq);
    for i in 0..records {
        b.push(
            1_700_000_000_000,
            None,
            Some(format!("seq{seq}-{i}").as_bytes()),
            &[],
        );
    }
    Bytes::from(b.build())
}

/// Produces one batch to partition 0 with acks=all; returns (error code, base offset).
fn produce(conn: &mut RawConn, correlation_id: i32, topic: &str, batch: Bytes) -> (i16, i64) {
    let p = sluice_e2e::raw::produce(conn, correlation_id, topic, 0, -1, batch);
    (p.error_code, p.base_offset)
}

#[test]
fn librdkafka_idempotent_producer_writes_each_record_once_in_order() {
    let broker = Broker::start();
    let bootstrap = broker.bootstrap();
    create_topic(&bootstrap, "idem", 1, &[]);
    let p = producer(
        &bootstrap,
        &[("enable.idempotence", "true"), ("acks", "all")],
    );
    const N: usize = 2_000;
    for i in 0..N {
        let value = format!("v{i}");
        p.send(BaseRecord::<(), _, usize>::with_opaque_to("idem", i).payload(&value))
            .unwrap();
    }
    assert!(
        p.context().wait_acked(N, Duration::from_secs(30)),
        "not all records acknowledged"
    );
    wait_high_watermarks(&bootstrap, "idem", 1, N as i64, Duration::from_secs(10));
    let got = consume_all(&bootstrap, "idem", 1, Duration::from_secs(20));
    let values: Vec<String> = got[&0]
        .iter()
        .map(|m| String::from_utf8(m.payload().unwrap().to_vec()).unwrap())
        .collect();
    let expected: Vec<String> = (0..N).map(|i| format!("v{i}")).collect();
    assert_eq!(values, expected);
    let offsets: Vec<i64> = got[&0].iter().map(|m| m.offset()).collect();
    assert_eq!(offsets, (0..N as i64).collect::<Vec<_>>());
}

#[test]
fn retries_are_deduplicated_and_gaps_and_stale_epochs_rejected() {
    let broker = Broker::start();
    create_topic(&broker.bootstrap(), "seq", 1, &[]);
    let mut conn = RawConn::connect(broker.addr());
    let (pid, epoch) = init_producer_id(&mut conn, 1);
    assert!(pid >= 0);
    assert_eq!(epoch, 0);
    let (other, _) = init_producer_id(&mut conn, 2);
    assert_ne!(pid, other, "producer ids are unique");

    assert_eq!(
        produce(&mut conn, 3, "seq", idempotent_batch(pid, 0, 0, 3)),
        (0, 0)
    );
    assert_eq!(
        produce(&mut conn, 4, "seq", idempotent_batch(pid, 0, 3, 2)),
        (0, 3)
    );
    // A retry of the first batch: original offsets, nothing written.
    assert_eq!(
        produce(&mut conn, 5, "seq", idempotent_batch(pid, 0, 0, 3)),
        (0, 0)
    );
    // A gap: OUT_OF_ORDER_SEQUENCE_NUMBER (45).
    assert_eq!(
        produce(&mut conn, 6, "seq", idempotent_batch(pid, 0, 9, 1)).0,
        45
    );
    // Another producer starts its own sequence.
    assert_eq!(
        produce(&mut conn, 7, "seq", idempotent_batch(other, 0, 0, 1)),
        (0, 5)
    );
    assert_eq!(
        produce(&mut conn, 8, "seq", idempotent_batch(pid, 0, 5, 1)),
        (0, 6)
    );
    // A new epoch restarts at 0; after it the old epoch is INVALID_PRODUCER_EPOCH (47).
    assert_eq!(
        produce(&mut conn, 9, "seq", idempotent_batch(pid, 1, 0, 1)),
        (0, 7)
    );
    assert_eq!(
        produce(&mut conn, 10, "seq", idempotent_batch(pid, 0, 6, 1)).0,
        47
    );
    wait_high_watermarks(&broker.bootstrap(), "seq", 1, 8, Duration::from_secs(5));
}

#[test]
fn producer_state_and_ids_survive_kill9() {
    let mut broker = Broker::start();
    create_topic(&broker.bootstrap(), "crashy", 1, &[]);
    let mut conn = RawConn::connect(broker.addr());
    let (pid, _) = init_producer_id(&mut conn, 1);
    assert_eq!(
        produce(&mut conn, 2, "crashy", idempotent_batch(pid, 0, 0, 4)),
        (0, 0)
    );
    assert_eq!(
        produce(&mut conn, 3, "crashy", idempotent_batch(pid, 0, 4, 4)),
        (0, 4)
    );
    drop(conn);
    broker.kill9();
    broker.restart();
    let mut conn = RawConn::connect(broker.addr());
    // The acknowledged batch is remembered: its retry is a duplicate.
    assert_eq!(
        produce(&mut conn, 1, "crashy", idempotent_batch(pid, 0, 4, 4)),
        (0, 4)
    );
    assert_eq!(
        produce(&mut conn, 2, "crashy", idempotent_batch(pid, 0, 8, 1)),
        (0, 8)
    );
    // Ids handed out before the crash are never handed out again.
    let (fresh, _) = init_producer_id(&mut conn, 3);
    assert!(fresh > pid, "fresh id {fresh} must be above {pid}");
}

#[test]
fn describe_producers_and_kip890_verification_over_the_wire() {
    use kafka_protocol::messages::describe_producers_request::TopicRequest;
    use kafka_protocol::messages::{DescribeProducersRequest, TransactionalId};

    let broker = Broker::start();
    create_topic(&broker.bootstrap(), "verify", 1, &[]);
    let mut conn = RawConn::connect(broker.addr());
    let (pid, epoch) = init_producer_id(&mut conn, 1);
    assert_eq!(
        produce(&mut conn, 2, "verify", idempotent_batch(pid, epoch, 0, 2)),
        (0, 0)
    );

    let described = conn.roundtrip(
        0,
        3,
        &DescribeProducersRequest::default().with_topics(vec![
            TopicRequest::default()
                .with_name(TopicName(StrBytes::from_static_str("verify")))
                .with_partition_indexes(vec![0]),
        ]),
    );
    let partition = &described.topics[0].partitions[0];
    assert_eq!(partition.error_code, 0);
    assert_eq!(partition.active_producers.len(), 1);
    let p = &partition.active_producers[0];
    assert_eq!(
        (p.producer_id.0, p.producer_epoch, p.last_sequence),
        (pid, 0, 1)
    );
    assert_eq!(p.current_txn_start_offset, -1);

    // A transactional producer writing to a partition it never added to its
    // transaction is refused with INVALID_TXN_STATE (48): KIP-890 part 1.
    let txn = conn.roundtrip(
        4,
        4,
        &InitProducerIdRequest::default()
            .with_transactional_id(Some(TransactionalId(StrBytes::from_static_str(
                "late-writer",
            ))))
            .with_transaction_timeout_ms(60_000),
    );
    assert_eq!(txn.error_code, 0);
    let mut b = RecordBatchBuilder::new()
        .producer(txn.producer_id.0, txn.producer_epoch, 0)
        .transactional(true);
    b.push(1_700_000_000_000, None, Some(b"late"), &[]);
    assert_eq!(
        produce(&mut conn, 5, "verify", Bytes::from(b.build())).0,
        48
    );
    wait_high_watermarks(&broker.bootstrap(), "verify", 1, 2, Duration::from_secs(5));
}

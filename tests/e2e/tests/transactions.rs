//! Transactions through librdkafka: commit and abort, read_committed consumers,
//! fencing of a zombie producer, and the transaction timeout.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};
use sluice_e2e::{Broker, client_config, create_topic};

const T: Duration = Duration::from_secs(20);

fn txn_producer(bootstrap: &str, transactional_id: &str, timeout_ms: &str) -> BaseProducer {
    let p: BaseProducer = client_config(bootstrap)
        .set("transactional.id", transactional_id)
        .set("transaction.timeout.ms", timeout_ms)
        .set("message.timeout.ms", timeout_ms)
        .set("socket.timeout.ms", timeout_ms)
        .set("linger.ms", "1")
        .create()
        .expect("create transactional producer");
    p.init_transactions(T).expect("init_transactions");
    p
}

fn send(p: &BaseProducer, topic: &str, partition: i32, value: &str) {
    p.send(
        BaseRecord::<(), _>::to(topic)
            .partition(partition)
            .payload(value),
    )
    .expect("enqueue");
}

/// Every record visible at `isolation` on all partitions, by partition, until EOF.
fn read(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    isolation: &str,
) -> BTreeMap<i32, Vec<String>> {
    let c: BaseConsumer = client_config(bootstrap)
        .set("group.id", "txn-reader")
        .set("isolation.level", isolation)
        .set("enable.partition.eof", "true")
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", "50")
        .create()
        .expect("create consumer");
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .unwrap();
    }
    c.assign(&tpl).unwrap();
    let mut out: BTreeMap<i32, Vec<String>> = (0..partitions).map(|p| (p, vec![])).collect();
    let mut eof = std::collections::BTreeSet::new();
    let deadline = Instant::now() + T;
    while eof.len() < partitions as usize {
        assert!(
            Instant::now() < deadline,
            "read {topic} at {isolation}: no EOF; got {out:?}"
        );
        match c.poll(Duration::from_millis(100)) {
            None => {}
            Some(Ok(m)) => {
                eof.remove(&m.partition());
                out.get_mut(&m.partition())
                    .unwrap()
                    .push(String::from_utf8(m.payload().unwrap().to_vec()).unwrap());
            }
            Some(Err(KafkaError::PartitionEOF(p))) => {
                eof.insert(p);
            }
            Some(Err(e)) => panic!("consume: {e}"),
        }
    }
    out
}

#[test]
fn committed_records_are_visible_and_aborted_ones_are_not() {
    let broker = Broker::start();
    let b = broker.bootstrap();
    create_topic(&b, "tx", 2, &[]);
    let p = txn_producer(&b, "tx-1", "30000");

    p.begin_transaction().unwrap();
    for i in 0..4 {
        send(&p, "tx", i % 2, &format!("c1-{i}"));
    }
    p.commit_transaction(T).expect("commit");

    p.begin_transaction().unwrap();
    for i in 0..3 {
        send(&p, "tx", i % 2, &format!("a-{i}"));
    }
    p.flush(T).unwrap();
    p.abort_transaction(T).expect("abort");

    p.begin_transaction().unwrap();
    send(&p, "tx", 1, "c2-0");
    p.commit_transaction(T).expect("commit");

    let committed = read(&b, "tx", 2, "read_committed");
    assert_eq!(committed[&0], vec!["c1-0", "c1-2"]);
    assert_eq!(committed[&1], vec!["c1-1", "c1-3", "c2-0"]);
    let uncommitted = read(&b, "tx", 2, "read_uncommitted");
    assert_eq!(uncommitted[&0], vec!["c1-0", "c1-2", "a-0", "a-2"]);
    assert_eq!(uncommitted[&1], vec!["c1-1", "c1-3", "a-1", "c2-0"]);
}

#[test]
fn an_open_transaction_holds_back_read_committed_until_it_commits() {
    let broker = Broker::start();
    let b = broker.bootstrap();
    create_topic(&b, "lso", 1, &[]);
    let p = txn_producer(&b, "lso-1", "30000");
    p.begin_transaction().unwrap();
    send(&p, "lso", 0, "pending");
    p.flush(T).unwrap();
    assert_eq!(
        read(&b, "lso", 1, "read_committed")[&0],
        Vec::<String>::new()
    );
    assert_eq!(read(&b, "lso", 1, "read_uncommitted")[&0], vec!["pending"]);
    p.commit_transaction(T).unwrap();
    assert_eq!(read(&b, "lso", 1, "read_committed")[&0], vec!["pending"]);
}

#[test]
fn a_second_instance_fences_the_first() {
    let broker = Broker::start();
    let b = broker.bootstrap();
    create_topic(&b, "fence", 1, &[]);
    let zombie = txn_producer(&b, "fence-id", "30000");
    zombie.begin_transaction().unwrap();
    send(&zombie, "fence", 0, "zombie");
    zombie.flush(T).unwrap();

    // The new instance aborts the zombie's open transaction and bumps the epoch.
    let fresh = txn_producer(&b, "fence-id", "30000");
    fresh.begin_transaction().unwrap();
    send(&fresh, "fence", 0, "fresh");
    fresh.commit_transaction(T).unwrap();

    let err = zombie
        .commit_transaction(T)
        .expect_err("the zombie must be fenced");
    let text = err.to_string().to_lowercase();
    assert!(
        text.contains("fenc") || text.contains("epoch"),
        "unexpected error: {err}"
    );
    assert_eq!(read(&b, "fence", 1, "read_committed")[&0], vec!["fresh"]);
}

#[test]
fn a_transaction_past_its_timeout_is_aborted() {
    let broker = Broker::start();
    let b = broker.bootstrap();
    create_topic(&b, "slow", 1, &[]);
    let p = txn_producer(&b, "slow-1", "3000");
    p.begin_transaction().unwrap();
    send(&p, "slow", 0, "too-late");
    p.flush(T).unwrap();
    // The coordinator aborts it; read_committed then reaches the end with nothing.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let c: BaseConsumer = client_config(&b).set("group.id", "probe").create().unwrap();
        let (_, high) = c.fetch_watermarks("slow", 0, T).unwrap();
        // The abort marker follows the record.
        if high >= 2 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "transaction was not aborted after its timeout"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(
        read(&b, "slow", 1, "read_committed")[&0],
        Vec::<String>::new()
    );
    assert!(
        p.commit_transaction(T).is_err(),
        "committing an aborted transaction must fail"
    );
}

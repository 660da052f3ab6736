//! Records replicated across `sluice serve` processes, written and read with librdkafka:
//! what an acks=all producer was told is written survives kill -9 of the partition's
//! leader, exactly once and in order; the killed node comes back, truncates what it alone
//! had and rejoins the ISR; and with too few in-sync replicas acks=all is refused with
//! NOT_ENOUGH_REPLICAS and writes nothing.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::BTreeMap;
use std::thread;
use std::time::Duration;

use rdkafka::admin::{NewTopic, TopicReplication};
use rdkafka::message::{Message, OwnedMessage};
use rdkafka::producer::Producer;
use sluice_e2e::raw::{self, BatchBuilder, RawConn};
use sluice_e2e::{
    Cluster, Delivery, admin, admin_opts, block_on, check_exactly_once, consume_all, producer,
    record_id, run_sluice, send_numbered,
};

const NOT_ENOUGH_REPLICAS: i16 = 19;
/// How long partitions may take to get a leader or a full ISR back after a node (re)starts
/// or dies (a dead node is noticed after the broker session timeout).
const SETTLE: Duration = Duration::from_secs(40);
const READ: Duration = Duration::from_secs(30);

/// Creates `topic` with `min.insync.replicas=2` and the given replica assignment (one list
/// of node ids per partition).
fn create_topic(cluster: &mut Cluster, topic: &str, assignment: &[&[i32]]) {
    let admin = admin(&cluster.bootstrap());
    let t = NewTopic::new(
        topic,
        assignment.len() as i32,
        TopicReplication::Variable(assignment),
    )
    .set("min.insync.replicas", "2");
    let res = block_on(admin.create_topics([&t], &admin_opts())).expect("create_topics");
    assert_eq!(res, vec![Ok(topic.to_string())]);
}

/// (partition, offset, payload) of every record read, for comparing two reads of one log.
fn contents(log: &BTreeMap<i32, Vec<OwnedMessage>>) -> Vec<(i32, i64, Vec<u8>)> {
    log.iter()
        .flat_map(|(p, records)| {
            records
                .iter()
                .map(|m| (*p, m.offset(), m.payload().unwrap_or_default().to_vec()))
        })
        .collect()
}

#[test]
fn acknowledged_records_survive_kill9_of_the_leader_and_the_node_rejoins_the_isr() {
    const PARTITIONS: usize = 3;
    const TOTAL: usize = 3000;
    let mut cluster = Cluster::start(3);
    let topic = "acked";
    create_topic(&mut cluster, topic, &[&[1, 2, 3], &[2, 3, 1], &[3, 1, 2]]);
    let before = cluster.wait_partitions(topic, 3, SETTLE, "led with three in sync", |p| {
        p.leader == p.replicas[0] && p.isr == [1, 2, 3]
    });
    let victim = before[&0].leader;

    let bootstrap = cluster.bootstrap();
    let producer = producer(
        &bootstrap,
        &[
            ("acks", "all"),
            ("enable.idempotence", "true"),
            ("message.timeout.ms", "60000"),
            ("request.timeout.ms", "5000"),
            ("linger.ms", "2"),
        ],
    );
    thread::scope(|s| {
        s.spawn(|| {
            for id in 0..TOTAL {
                send_numbered(&producer, topic, (id % PARTITIONS) as i32, id);
                thread::sleep(Duration::from_micros(500));
            }
        });
        // Mid-stream: a fifth acknowledged, most still to come.
        assert!(
            producer.context().wait_acked(TOTAL / 5, READ),
            "{} acked",
            producer.context().acked()
        );
        cluster.node_mut(victim).kill9();
    });
    producer
        .flush(Duration::from_secs(90))
        .expect("every record reported within 90 s");
    let deliveries = producer.context().deliveries();

    // Another in-sync replica took over partition 0 while the victim was down.
    let during = cluster.wait_partitions(topic, 3, SETTLE, "led by a live node", |p| {
        p.leader > 0 && p.leader != victim
    });
    assert_ne!(during[&0].leader, victim);
    assert!(during[&0].leader_epoch > before[&0].leader_epoch);

    let first_read = consume_all(&cluster.bootstrap(), topic, PARTITIONS as i32, READ);
    check_exactly_once(&deliveries, &first_read, TOTAL, PARTITIONS);

    // The victim restarts, truncates what only it had, catches up and is in sync again.
    cluster.node_mut(victim).restart();
    cluster.wait_partitions(topic, 3, SETTLE, "with three in sync again", |p| {
        p.isr == [1, 2, 3]
    });
    // Leadership moves back to the preferred replicas: the victim leads partition 0 again
    // and serves exactly the log the others kept.
    let out = run_sluice(
        &[
            "cluster",
            "elect-leaders",
            "--brokers",
            &bootstrap,
            "--topic",
            topic,
        ],
        READ,
    );
    assert_eq!(out.status.map(|s| s.success()), Some(true), "{out:?}");
    let after = cluster.wait_partitions(topic, 3, SETTLE, "led by the preferred replica", |p| {
        p.leader == p.replicas[0] && p.isr == [1, 2, 3]
    });
    assert_eq!(after[&0].leader, victim);
    let second_read = consume_all(&bootstrap, topic, PARTITIONS as i32, READ);
    assert_eq!(contents(&second_read), contents(&first_read));
}

/// A one-record batch with this value.
fn one_record(value: &str) -> bytes::Bytes {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    BatchBuilder::new(now)
        .record(Some(b"k"), Some(value.as_bytes()))
        .build()
}

/// Produces one record to partition 0 of `topic` on node `id` with `acks`; (error code,
/// base offset).
fn produce_to(cluster: &Cluster, id: i32, topic: &str, acks: i16, value: &str) -> (i16, i64) {
    let mut conn = RawConn::connect(cluster.node(id).addr());
    let p = raw::produce(&mut conn, 1, topic, 0, acks, one_record(value));
    (p.error_code, p.base_offset)
}

#[test]
fn with_two_of_three_replicas_down_acks_all_is_refused_with_not_enough_replicas_and_writes_nothing()
{
    // Five nodes, so that the metadata quorum (all five vote) outlives two of the
    // partition's three replicas.
    let mut cluster = Cluster::start(5);
    let topic = "guarded";
    create_topic(&mut cluster, topic, &[&[1, 2, 3]]);
    cluster.wait_partitions(topic, 1, SETTLE, "led by node 1 with three in sync", |p| {
        p.leader == 1 && p.isr == [1, 2, 3]
    });
    assert_eq!(produce_to(&cluster, 1, topic, -1, "first"), (0, 0));

    cluster.node_mut(1).kill9();
    cluster.node_mut(2).kill9();
    let view = cluster.wait_partitions(topic, 1, SETTLE, "led by node 3 alone", |p| {
        p.leader == 3 && p.isr == [3]
    });
    assert_eq!(view[&0].replicas, [1, 2, 3]);

    // acks=all needs min.insync.replicas=2 in sync: refused, nothing appended.
    assert_eq!(
        produce_to(&cluster, 3, topic, -1, "refused"),
        (NOT_ENOUGH_REPLICAS, -1)
    );
    // acks=1 does not wait for followers, as in Kafka: appended, though (Kafka since
    // KAFKA-15583) the high watermark stays put while fewer than min.insync.replicas are in
    // sync, so it is read only once the ISR is back.
    assert_eq!(produce_to(&cluster, 3, topic, 1, "acks-one"), (0, 1));

    // Both come back, catch up, and acks=all works again.
    cluster.node_mut(1).restart();
    cluster.node_mut(2).restart();
    cluster.wait_partitions(topic, 1, SETTLE, "with three in sync again", |p| {
        p.isr == [1, 2, 3]
    });
    let leader = cluster.leader_of(topic, 0);
    assert_eq!(produce_to(&cluster, leader, topic, -1, "third"), (0, 2));
    let log = consume_all(&cluster.bootstrap(), topic, 1, READ);
    let values: Vec<(i64, Vec<u8>)> = log[&0]
        .iter()
        .map(|m| (m.offset(), m.payload().unwrap_or_default().to_vec()))
        .collect();
    assert_eq!(
        values,
        vec![
            (0, b"first".to_vec()),
            (1, b"acks-one".to_vec()),
            (2, b"third".to_vec())
        ]
    );
}

/// What the kafkajs producer (tests/node/cluster-producer.js) reported.
struct KafkajsRun {
    acked: Vec<Delivery>,
    errors: Vec<String>,
    summary: serde_json::Value,
}

/// Starts the kafkajs producer against `bootstrap`; it runs until its stdin closes.
fn spawn_kafkajs_producer(bootstrap: &str, topic: &str, partitions: usize) -> std::process::Child {
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../node/cluster-producer.js");
    std::process::Command::new("node")
        .arg(script)
        .env("BROKERS", bootstrap)
        .env("TOPIC", topic)
        .env("PARTITIONS", partitions.to_string())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .spawn()
        .expect("run node (install the test dependencies: scripts/install-test-deps.sh)")
}

/// Closes the producer's stdin, waits for it to exit and parses what it printed.
fn finish_kafkajs_producer(mut child: std::process::Child) -> KafkajsRun {
    drop(child.stdin.take());
    let out = child
        .wait_with_output()
        .expect("wait for the kafkajs producer");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "kafkajs producer: {:?}\n{stdout}",
        out.status
    );
    let mut run = KafkajsRun {
        acked: vec![],
        errors: vec![],
        summary: serde_json::Value::Null,
    };
    for line in stdout.lines() {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line:?}"));
        if v.get("done").is_some() {
            run.summary = v;
        } else if let Some(error) = v.get("error") {
            run.errors.push(format!("record {}: {error}", v["id"]));
        } else {
            let offset: i64 = v["offset"]
                .as_str()
                .and_then(|o| o.parse().ok())
                .expect("offset");
            run.acked.push(Delivery {
                id: v["id"].as_u64().expect("id") as usize,
                result: Ok((v["partition"].as_i64().expect("partition") as i32, offset)),
            });
        }
    }
    run
}

/// A librdkafka consumer in a group, polling on its own thread until told to stop.
struct GroupReader {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    read: std::sync::Arc<std::sync::Mutex<BTreeMap<usize, (i32, i64)>>>,
    errors: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    thread: thread::JoinHandle<()>,
}

impl GroupReader {
    fn start(bootstrap: &str, group: &str, topic: &str) -> GroupReader {
        use rdkafka::consumer::{BaseConsumer, Consumer};
        let consumer: BaseConsumer = sluice_e2e::client_config(bootstrap)
            .set("group.id", group)
            .set("auto.offset.reset", "earliest")
            .set("enable.auto.commit", "true")
            .set("auto.commit.interval.ms", "200")
            .set("session.timeout.ms", "10000")
            .set("fetch.wait.max.ms", "100")
            .create()
            .expect("group consumer");
        consumer.subscribe(&[topic]).expect("subscribe");
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let read = std::sync::Arc::new(std::sync::Mutex::new(BTreeMap::new()));
        let errors = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let thread = {
            let (stop, read, errors) = (stop.clone(), read.clone(), errors.clone());
            thread::spawn(move || {
                while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                    match consumer.poll(Duration::from_millis(100)) {
                        None => {}
                        Some(Ok(m)) => {
                            let id = record_id(&m.detach());
                            let at = (m.partition(), m.offset());
                            if let Some(first) = read.lock().unwrap().insert(id, at) {
                                assert_eq!(first, at, "record {id} read at two places");
                            }
                        }
                        Some(Err(e)) => errors.lock().unwrap().push(e.to_string()),
                    }
                }
                consumer.unsubscribe();
            })
        };
        GroupReader {
            stop,
            read,
            errors,
            thread,
        }
    }

    /// Waits until every acknowledged record was read (at its acknowledged place).
    fn wait_read(&self, acked: &[Delivery], timeout: Duration) {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let missing: Vec<usize> = {
                let read = self.read.lock().unwrap();
                acked
                    .iter()
                    .filter(|d| read.get(&d.id) != d.result.as_ref().ok())
                    .map(|d| d.id)
                    .collect()
            };
            if missing.is_empty() {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the group did not read {} acknowledged records at their offsets, e.g. {:?}",
                missing.len(),
                &missing[..missing.len().min(10)]
            );
            thread::sleep(Duration::from_millis(50));
        }
    }

    fn stop(self) -> Vec<String> {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        self.thread.join().expect("group reader thread");
        self.errors.lock().unwrap().clone()
    }
}

#[test]
fn a_rolling_restart_under_a_kafkajs_producer_and_a_librdkafka_group_gives_no_errors_and_no_loss() {
    const PARTITIONS: usize = 3;
    let mut cluster = Cluster::start(3);
    let topic = "rolling";
    create_topic(&mut cluster, topic, &[&[1, 2, 3], &[2, 3, 1], &[3, 1, 2]]);
    cluster.wait_partitions(topic, 3, SETTLE, "with three in sync", |p| {
        p.leader > 0 && p.isr == [1, 2, 3]
    });
    let bootstrap = cluster.bootstrap();
    let producer = spawn_kafkajs_producer(&bootstrap, topic, PARTITIONS);
    let reader = GroupReader::start(&bootstrap, "rolling-readers", topic);
    thread::sleep(Duration::from_secs(1));

    // Each node in turn: SIGTERM (a controlled shutdown hands its leaderships over first),
    // start again, wait until it is back in every ISR.
    for id in cluster.ids() {
        let status = cluster.node_mut(id).stop();
        assert!(status.success(), "node {id} exited with {status}");
        cluster.node_mut(id).restart();
        cluster.wait_partitions(topic, 3, SETTLE, "with three in sync again", |p| {
            p.leader > 0 && p.isr == [1, 2, 3]
        });
    }
    thread::sleep(Duration::from_secs(1));

    let run = finish_kafkajs_producer(producer);
    assert_eq!(run.errors, Vec::<String>::new(), "kafkajs send errors");
    assert_eq!(run.summary["errors"], 0);
    let sent = run.summary["sent"].as_u64().expect("sent") as usize;
    assert!(
        sent > 0 && run.acked.len() == sent,
        "{} of {sent} acknowledged",
        run.acked.len()
    );

    reader.wait_read(&run.acked, READ);
    // librdkafka reports every connection a stopping broker closes as a (non-fatal)
    // transport failure and reconnects by itself, as it does on a rolling restart of Apache
    // Kafka; anything else is an error the application would have to handle.
    let errors: Vec<String> = reader
        .stop()
        .into_iter()
        .filter(|e| !e.contains("BrokerTransportFailure"))
        .collect();
    assert_eq!(errors, Vec::<String>::new(), "librdkafka consumer errors");

    let log = consume_all(&bootstrap, topic, PARTITIONS as i32, READ);
    check_exactly_once(&run.acked, &log, sent, PARTITIONS);
}

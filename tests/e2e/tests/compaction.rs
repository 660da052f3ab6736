//! Log compaction against a real broker with librdkafka: 100,000 updates to 100 keys
//! shrink to the latest value per key; tombstoned keys disappear after
//! `delete.retention.ms`; a cleaner killed mid-run (kill -9) loses no live key; a policy
//! changed with IncrementalAlterConfigs takes effect at once; `__consumer_offsets` is
//! compacted so a restart replays only live offsets; metrics and `sluice topic describe`
//! report the dirty ratio; in a cluster, a replica that was down while its leader cleaned
//! catches up over the cleaned log's gaps and, leading again, serves the latest values.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use rdkafka::Message;
use rdkafka::admin::{NewTopic, TopicReplication};
use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::producer::{BaseRecord, Producer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use serde_json::Value;
use sluice_e2e::{
    Broker, CALL_TIMEOUT, Cluster, admin, admin_opts, block_on, consume_all, consumer,
    create_topic, free_port, producer, run_sluice,
};

/// The cleaner looks for work every 100 ms instead of Kafka's 15 s.
const FAST_CLEANER: [&str; 2] = ["--log-cleaner-backoff-ms", "100"];
const WAIT: Duration = Duration::from_secs(90);

/// A compacted topic of one partition with small segments (8 KiB: the active segment,
/// never cleaned, holds a few hundred records) that the cleaner takes up at once; `extra`
/// configs on top.
fn create_compacted(bootstrap: &str, topic: &str, extra: &[(&str, &str)]) {
    let mut configs = vec![
        ("cleanup.policy", "compact"),
        ("segment.bytes", "8192"),
        ("min.cleanable.dirty.ratio", "0.01"),
    ];
    configs.extend_from_slice(extra);
    create_topic(bootstrap, topic, 1, &configs);
}

/// Produces `updates` records to partition 0 with an idempotent producer, cycling over
/// `keys` keys: key `key-<i % keys>`, value `<first + i>`; waits until all are acked.
fn produce_updates(bootstrap: &str, topic: &str, keys: usize, first: usize, updates: usize) {
    produce_keyed(bootstrap, topic, "key", keys, first, updates);
}

/// [`produce_updates`] with keys `<prefix>-<i % keys>`.
fn produce_keyed(
    bootstrap: &str,
    topic: &str,
    prefix: &str,
    keys: usize,
    first: usize,
    updates: usize,
) {
    let p = producer(
        bootstrap,
        &[
            ("enable.idempotence", "true"),
            ("acks", "all"),
            ("batch.num.messages", "200"),
            // All updates are queued at once; on a busy machine the last ones wait longer
            // than the harness's 15 s for their turn.
            ("message.timeout.ms", "120000"),
        ],
    );
    for i in 0..updates {
        let key = format!("{prefix}-{}", i % keys);
        let value = format!("{}", first + i);
        loop {
            match p.send(
                BaseRecord::with_opaque_to(topic, i)
                    .partition(0)
                    .key(&key)
                    .payload(&value),
            ) {
                Ok(()) => break,
                Err((e, _)) => {
                    assert!(format!("{e}").contains("Queue full"), "send: {e}");
                    p.poll(Duration::from_millis(10));
                }
            }
        }
    }
    p.flush(Duration::from_secs(120)).expect("flush");
    let failed: Vec<_> = p
        .context()
        .deliveries()
        .into_iter()
        .filter(|d| d.result.is_err())
        .take(3)
        .collect();
    assert_eq!(
        p.context().acked(),
        updates,
        "every update acknowledged; first failures: {failed:?}"
    );
}

/// Produces tombstones (null values) for `keys`.
fn produce_tombstones(bootstrap: &str, topic: &str, keys: &[String]) {
    let p = producer(bootstrap, &[("acks", "all")]);
    for (i, key) in keys.iter().enumerate() {
        p.send(
            BaseRecord::<String, str, usize>::with_opaque_to(topic, i)
                .partition(0)
                .key(key),
        )
        .map_err(|(e, _)| e)
        .expect("send tombstone");
    }
    p.flush(CALL_TIMEOUT).expect("flush");
    assert_eq!(p.context().acked(), keys.len());
}

/// Every record of partition 0 from the beginning: (offset, key, value).
fn read_all(bootstrap: &str, topic: &str) -> Vec<(i64, String, Option<String>)> {
    let got = consume_all(bootstrap, topic, 1, Duration::from_secs(60));
    let records: Vec<(i64, String, Option<String>)> = got[&0]
        .iter()
        .map(|m| {
            (
                m.offset(),
                String::from_utf8(m.key().unwrap_or_default().to_vec()).unwrap(),
                m.payload().map(|v| String::from_utf8(v.to_vec()).unwrap()),
            )
        })
        .collect();
    for pair in records.windows(2) {
        assert!(pair[0].0 < pair[1].0, "offsets out of order: {pair:?}");
    }
    records
}

/// The last value read for each key.
fn latest(records: &[(i64, String, Option<String>)]) -> BTreeMap<String, Option<String>> {
    records
        .iter()
        .map(|(_, k, v)| (k.clone(), v.clone()))
        .collect()
}

/// Polls `check` until it returns `Some`, failing with `what` after [`WAIT`].
fn wait_for<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(200));
    }
}

/// `sluice topic describe --json` of `topic`.
fn describe(bootstrap: &str, topic: &str) -> Value {
    let out = run_sluice(
        &["topic", "describe", topic, "--json", "--brokers", bootstrap],
        Duration::from_secs(30),
    );
    assert!(
        out.status.is_some_and(|s| s.success()),
        "describe failed: {}",
        out.stderr
    );
    serde_json::from_str(out.stdout.trim()).expect("describe JSON")
}

/// The dirty ratio `sluice topic describe` reports for partition 0.
fn dirty_ratio(bootstrap: &str, topic: &str) -> Option<f64> {
    describe(bootstrap, topic)["partitions"][0]["dirty_ratio"].as_f64()
}

/// Waits until the cleaner has nothing left to clean in the topic's partition 0.
fn wait_cleaned(bootstrap: &str, topic: &str) {
    wait_for("the topic to be cleaned", || {
        (dirty_ratio(bootstrap, topic) == Some(0.0)).then_some(())
    });
}

#[test]
fn a_hundred_thousand_updates_to_a_hundred_keys_shrink_to_the_latest_values() {
    let broker = Broker::start_with(&FAST_CLEANER);
    let bs = broker.bootstrap();
    create_compacted(&bs, "updates", &[]);
    produce_updates(&bs, "updates", 100, 0, 100_000);
    wait_cleaned(&bs, "updates");
    let records = read_all(&bs, "updates");
    // The cleaned part holds one record per key; the active segment (16 KiB, never
    // cleaned) a few hundred more at most.
    assert!(records.len() <= 600, "{} records left", records.len());
    let expected: BTreeMap<String, Option<String>> = (99_900..100_000)
        .map(|i| (format!("key-{}", i % 100), Some(format!("{i}"))))
        .collect();
    assert_eq!(latest(&records), expected);
    // Offsets never change: each record is still at the offset it was written to.
    for (offset, _, value) in &records {
        assert_eq!(value.as_deref(), Some(offset.to_string().as_str()));
    }
    // The log end offset stays where it was.
    let (low, high) = consumer(&bs, &[])
        .fetch_watermarks("updates", 0, CALL_TIMEOUT)
        .unwrap();
    assert_eq!((low, high), (0, 100_000));
}

#[test]
fn tombstoned_keys_disappear_after_delete_retention() {
    let broker = Broker::start_with(&FAST_CLEANER);
    let bs = broker.bootstrap();
    create_compacted(&bs, "tombstones", &[("delete.retention.ms", "2000")]);
    produce_updates(&bs, "tombstones", 20, 0, 2_000);
    let doomed: Vec<String> = (0..5).map(|k| format!("key-{k}")).collect();
    produce_tombstones(&bs, "tombstones", &doomed);
    // Updates of other keys seal the segment holding the tombstones.
    produce_keyed(&bs, "tombstones", "other", 15, 10_000, 3_000);
    wait_cleaned(&bs, "tombstones");
    let kept = latest(&read_all(&bs, "tombstones"));
    for key in &doomed {
        assert_eq!(
            kept.get(key),
            Some(&None),
            "{key}'s tombstone stays for now"
        );
    }
    // Once delete.retention.ms has passed, the next cleaning drops them.
    thread::sleep(Duration::from_millis(2_100));
    produce_keyed(&bs, "tombstones", "other", 15, 20_000, 3_000);
    wait_for("the tombstones to go", || {
        let records = read_all(&bs, "tombstones");
        (!records.iter().any(|(_, k, _)| doomed.contains(k))).then_some(records)
    });
    let kept = latest(&read_all(&bs, "tombstones"));
    let expected: BTreeMap<String, Option<String>> = (5..20)
        .map(|k| (format!("key-{k}"), Some(format!("{}", 1_980 + k))))
        .chain(
            (2_985..3_000).map(|i| (format!("other-{}", i % 15), Some(format!("{}", 20_000 + i)))),
        )
        .collect();
    assert_eq!(kept, expected);
}

/// The names of the files in a partition directory.
fn partition_files(data_dir: &Path, topic: &str) -> Vec<String> {
    std::fs::read_dir(data_dir.join(format!("{topic}-0")))
        .map(|dir| {
            dir.map(|e| e.unwrap().file_name().into_string().unwrap())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn a_broker_killed_while_cleaning_restarts_with_every_live_key() {
    // A slow cleaner (50 KB/s): the kill lands while it writes its cleaned segments.
    let mut broker = Broker::start_with(&[
        "--log-cleaner-backoff-ms",
        "100",
        "--log-cleaner-io-max-bytes-per-second",
        "50000",
    ]);
    let bs = broker.bootstrap();
    // Written before the topic is compacted, so that one cleaning takes it all (seconds).
    create_topic(&bs, "crash", 1, &[("segment.bytes", "8192")]);
    produce_updates(&bs, "crash", 50, 0, 10_000);
    let out = run_sluice(
        &[
            "topic",
            "alter-config",
            "crash",
            "--set",
            "cleanup.policy=compact",
            "--brokers",
            &bs,
        ],
        Duration::from_secs(30),
    );
    assert!(out.status.is_some_and(|s| s.success()), "{}", out.stderr);
    let data_dir = broker.data_dir().to_path_buf();
    wait_for("the cleaner to start writing", || {
        partition_files(&data_dir, "crash")
            .iter()
            .any(|f| f.ends_with(".cleaned"))
            .then_some(())
    });
    broker.kill9();
    broker.restart();
    let expected: BTreeMap<String, Option<String>> = (9_950..10_000)
        .map(|i| (format!("key-{}", i % 50), Some(format!("{i}"))))
        .collect();
    assert_eq!(latest(&read_all(&bs, "crash")), expected);
    wait_cleaned(&bs, "crash");
    let records = read_all(&bs, "crash");
    assert_eq!(latest(&records), expected);
    assert!(
        records.len() < 1_000,
        "cleaned after the restart: {}",
        records.len()
    );
    for (offset, _, value) in &records {
        assert_eq!(value.as_deref(), Some(offset.to_string().as_str()));
    }
}

#[test]
fn a_policy_changed_with_incremental_alter_configs_applies_without_restart() {
    let broker = Broker::start_with(&[
        "--log-cleaner-backoff-ms",
        "100",
        "--log-retention-check-interval-ms",
        "200",
    ]);
    let bs = broker.bootstrap();
    create_topic(
        &bs,
        "policy",
        1,
        &[
            ("segment.bytes", "16384"),
            ("min.cleanable.dirty.ratio", "0.01"),
        ],
    );
    produce_updates(&bs, "policy", 10, 0, 5_000);
    assert_eq!(
        read_all(&bs, "policy").len(),
        5_000,
        "cleanup.policy=delete keeps all"
    );
    assert_eq!(dirty_ratio(&bs, "policy"), None, "not compacted");

    let alter = |set: &str| {
        let out = run_sluice(
            &[
                "topic",
                "alter-config",
                "policy",
                "--set",
                set,
                "--brokers",
                &bs,
            ],
            Duration::from_secs(30),
        );
        assert!(out.status.is_some_and(|s| s.success()), "{}", out.stderr);
    };
    alter("cleanup.policy=compact");
    wait_cleaned(&bs, "policy");
    let records = read_all(&bs, "policy");
    assert!(records.len() < 1_000, "{} records", records.len());
    assert_eq!(
        latest(&records),
        (4_990..5_000)
            .map(|i| (format!("key-{}", i % 10), Some(format!("{i}"))))
            .collect()
    );

    // compact,delete: retention applies too (here it deletes every segment), and the
    // cleaner goes on once retention keeps data again.
    alter("cleanup.policy=compact,delete");
    alter("retention.ms=1");
    wait_for("retention to delete every record", || {
        let (low, high) = consumer(&bs, &[])
            .fetch_watermarks("policy", 0, CALL_TIMEOUT)
            .unwrap();
        (low == 5_000 && high == 5_000).then_some(())
    });
    assert!(dirty_ratio(&bs, "policy").is_some(), "still compacted");
    let out = run_sluice(
        &[
            "topic",
            "alter-config",
            "policy",
            "--delete",
            "retention.ms",
            "--brokers",
            &bs,
        ],
        Duration::from_secs(30),
    );
    assert!(out.status.is_some_and(|s| s.success()), "{}", out.stderr);
    produce_updates(&bs, "policy", 10, 5_000, 5_000);
    wait_cleaned(&bs, "policy");
    let records = read_all(&bs, "policy");
    assert!(records.len() < 1_000, "{} records", records.len());
    assert!(records.iter().all(|(o, _, _)| *o >= 5_000));
    assert_eq!(
        latest(&records),
        (9_990..10_000)
            .map(|i| (format!("key-{}", i % 10), Some(format!("{}", i))))
            .collect()
    );
}

/// One HTTP GET of `/metrics`.
fn metrics(addr: SocketAddr) -> String {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut body = String::new();
    s.read_to_string(&mut body).unwrap();
    body
}

/// The value of the sample `name` (labels included) on a metrics page.
fn sample(page: &str, name: &str) -> Option<f64> {
    page.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

#[test]
fn metrics_and_topic_describe_report_the_cleaner() {
    let http = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let http_arg = http.to_string();
    let broker = Broker::start_with(&[
        "--log-cleaner-backoff-ms",
        "100",
        "--http-listen",
        &http_arg,
    ]);
    let bs = broker.bootstrap();
    create_compacted(&bs, "observed", &[]);
    produce_updates(&bs, "observed", 10, 0, 3_000);
    wait_cleaned(&bs, "observed");
    let page = metrics(http);
    assert!(sample(&page, "sluice_log_cleaner_runs_total").unwrap() >= 1.0);
    assert!(sample(&page, "sluice_log_cleaner_read_bytes_total").unwrap() > 16_384.0);
    assert!(sample(&page, "sluice_log_cleaner_removed_records_total").unwrap() > 1_000.0);
    assert_eq!(
        sample(
            &page,
            "sluice_partition_dirty_ratio{topic=\"observed\",partition=\"0\"}"
        ),
        Some(0.0)
    );
    assert!(
        sample(
            &page,
            "sluice_partition_seconds_since_last_clean{topic=\"observed\",partition=\"0\"}"
        )
        .is_some()
    );
    assert!(sample(&page, "sluice_log_cleaner_seconds_since_last_run").is_some());

    // The table shows the dirty ratio of a compacted topic, "-" for another.
    create_topic(&bs, "plain", 1, &[]);
    for (topic, ratio) in [("observed", "0.00"), ("plain", "-")] {
        let out = run_sluice(
            &["topic", "describe", topic, "--brokers", &bs],
            Duration::from_secs(30),
        );
        assert!(out.status.is_some_and(|s| s.success()), "{}", out.stderr);
        let header = out
            .stdout
            .lines()
            .find(|l| l.starts_with("PARTITION "))
            .unwrap();
        let columns: Vec<&str> = header.split_whitespace().collect();
        assert_eq!(
            columns[columns.len() - 2..],
            ["SIZE", "DIRTY-RATIO"],
            "{header}"
        );
        let row = out.stdout.lines().find(|l| l.starts_with("0 ")).unwrap();
        assert_eq!(row.split_whitespace().last(), Some(ratio), "{topic}: {row}");
    }
}

/// The offset `c`'s group committed for partition 0 of `topic`.
fn committed(c: &rdkafka::consumer::BaseConsumer, topic: &str) -> Offset {
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition(topic, 0);
    let got = c.committed_offsets(tpl, CALL_TIMEOUT).unwrap();
    got.find_partition(topic, 0).unwrap().offset()
}

#[test]
fn consumer_offsets_are_compacted_so_a_restart_loads_only_live_offsets() {
    let mut broker = Broker::start_with(&[
        "--log-cleaner-backoff-ms",
        "100",
        "--offsets-topic-partitions",
        "1",
        "--offsets-topic-segment-bytes",
        "4096",
    ]);
    let bs = broker.bootstrap();
    create_topic(&bs, "t", 1, &[]);
    // 4 groups, 300 commits each: 1,200 records in __consumer_offsets.
    let consumers: Vec<_> = (0..4)
        .map(|g| consumer(&bs, &[("group.id", &format!("g{g}"))]))
        .collect();
    for c in &consumers {
        // Finds the coordinator first (a commit before that fails in librdkafka).
        assert_eq!(committed(c, "t"), Offset::Invalid);
    }
    for round in 0..300 {
        for (g, c) in consumers.iter().enumerate() {
            let mut tpl = TopicPartitionList::new();
            tpl.add_partition_offset("t", 0, Offset::Offset(round * 10 + g as i64))
                .unwrap();
            c.commit(&tpl, CommitMode::Sync).expect("commit");
        }
    }
    drop(consumers);
    wait_cleaned(&bs, "__consumer_offsets");
    broker.stop();
    broker.restart();
    for g in 0..4 {
        let c = consumer(&bs, &[("group.id", &format!("g{g}"))]);
        assert_eq!(committed(&c, "t"), Offset::Offset(2_990 + g), "group g{g}");
    }
    // The restart replayed the live commits and those of the active segment, not 1,200.
    let log = broker.log();
    let replayed: Vec<usize> = log
        .lines()
        .filter(|l| l.contains("loaded coordinator state") && l.contains("__consumer_offsets"))
        .filter_map(|l| {
            l.split("records=")
                .nth(1)?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .collect();
    assert_eq!(replayed.len(), 1, "loaded once, at the restart: {log}");
    assert!(
        replayed[0] < 200,
        "replayed {} of 1,200 commits",
        replayed[0]
    );
}

/// How long a cluster's partitions may take to get a new leader or a full ISR back after a
/// node dies or restarts (a dead node is noticed after the broker session timeout).
const SETTLE: Duration = Duration::from_secs(40);

/// Kafka's followers run their own cleaner and fetch whatever their leader's log holds: a
/// replica that was down while its leader cleaned restarts, fetches the cleaned log with
/// its offset gaps, rejoins the ISR, and once it leads again serves the latest value of
/// every key at the offsets they were written to.
#[test]
fn a_replica_that_missed_a_cleaning_catches_up_over_the_gaps_and_serves_the_latest_values() {
    let mut cluster =
        Cluster::start_with(3, |_| FAST_CLEANER.iter().map(|a| a.to_string()).collect());
    let bs = cluster.bootstrap();
    let topic = "replicated";
    let new_topic = NewTopic::new(topic, 1, TopicReplication::Variable(&[&[3, 1, 2]]))
        .set("cleanup.policy", "compact")
        .set("segment.bytes", "8192")
        .set("min.cleanable.dirty.ratio", "0.01");
    let created = block_on(admin(&bs).create_topics([&new_topic], &admin_opts()));
    assert_eq!(created.expect("create_topics"), vec![Ok(topic.to_string())]);
    cluster.wait_partitions(topic, 1, SETTLE, "led by node 3, three in sync", |p| {
        p.leader == 3 && p.isr == [1, 2, 3]
    });

    cluster.node_mut(3).kill9();
    cluster.wait_partitions(topic, 1, SETTLE, "led by another node", |p| {
        p.leader > 0 && p.leader != 3 && !p.isr.contains(&3)
    });
    // Clients that know only the live nodes: a consumer reports a refused connection to a
    // bootstrap broker as an error.
    let live = format!(
        "{},{}",
        cluster.node(1).bootstrap(),
        cluster.node(2).bootstrap()
    );
    produce_updates(&live, topic, 100, 0, 20_000);
    let expected: BTreeMap<String, Option<String>> = (19_900..20_000)
        .map(|i| (format!("key-{}", i % 100), Some(format!("{i}"))))
        .collect();
    wait_for("the leader to clean the topic", || {
        (read_all(&live, topic).len() <= 600).then_some(())
    });

    // Node 3 fetches from offset 0 a log whose cleaned segments have gaps.
    cluster.node_mut(3).restart();
    cluster.wait_partitions(topic, 1, SETTLE, "with three in sync again", |p| {
        p.isr == [1, 2, 3]
    });
    let out = run_sluice(
        &[
            "cluster",
            "elect-leaders",
            "--brokers",
            &bs,
            "--topic",
            topic,
        ],
        Duration::from_secs(30),
    );
    assert_eq!(out.status.map(|s| s.success()), Some(true), "{out:?}");
    cluster.wait_partitions(topic, 1, SETTLE, "led by node 3 again", |p| p.leader == 3);

    let records = read_all(&bs, topic);
    assert!(records.len() <= 600, "{} records on node 3", records.len());
    assert_eq!(latest(&records), expected);
    for (offset, _, value) in &records {
        assert_eq!(value.as_deref(), Some(offset.to_string().as_str()));
    }
    let (low, high) = consumer(&bs, &[])
        .fetch_watermarks(topic, 0, CALL_TIMEOUT)
        .unwrap();
    assert_eq!((low, high), (0, 20_000));
}

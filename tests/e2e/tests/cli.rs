//! The operator CLI (`sluice topic|produce|consume|group|cluster`) against a real broker:
//! JSON outputs and exit codes, cross-checked with librdkafka where a Kafka client's view
//! matters (key partitioning, group membership).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, Producer};
use sluice_e2e::{
    Broker, RunOutput, client_config, consume_all, free_port, producer, run_sluice, sluice_bin,
};

const RUN_TIMEOUT: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------------------------------------
// Running the CLI
// ---------------------------------------------------------------------------------------------

/// Runs `sluice <args> --brokers <bootstrap>`.
fn cli(broker: &str, args: &[&str]) -> RunOutput {
    let mut all: Vec<&str> = args.to_vec();
    all.extend(["--brokers", broker]);
    let out = run_sluice(&all, RUN_TIMEOUT);
    assert!(
        out.status.is_some(),
        "sluice {all:?} did not exit within {RUN_TIMEOUT:?}\nstdout: {}\nstderr: {}",
        out.stdout,
        out.stderr
    );
    out
}

fn succeeded(out: &RunOutput) -> bool {
    out.status.is_some_and(|s| s.success())
}

/// Runs a command that must succeed with `--json` and returns its parsed output.
fn cli_json(broker: &str, args: &[&str]) -> Json {
    let mut all = args.to_vec();
    all.push("--json");
    let out = cli(broker, &all);
    assert!(
        succeeded(&out),
        "sluice {all:?} failed: {:?}\nstdout: {}\nstderr: {}",
        out.status,
        out.stdout,
        out.stderr
    );
    parse_json(out.stdout.trim())
}

/// Runs a command that must fail; returns its single stderr line.
fn cli_fails(broker: &str, args: &[&str]) -> String {
    let out = cli(broker, args);
    assert!(
        !succeeded(&out),
        "sluice {args:?} should fail\nstdout: {}\nstderr: {}",
        out.stdout,
        out.stderr
    );
    let lines: Vec<&str> = out.stderr.lines().collect();
    assert_eq!(
        lines.len(),
        1,
        "one-line error expected, got {:?}",
        out.stderr
    );
    assert!(lines[0].starts_with("error: "), "{:?}", lines[0]);
    lines[0].to_string()
}

fn input_file(dir: &tempfile::TempDir, name: &str, content: &str) -> String {
    let path = dir.path().join(name);
    std::fs::write(&path, content).expect("write input");
    path.display().to_string()
}

// ---------------------------------------------------------------------------------------------
// Reading the JSON the CLI prints
// ---------------------------------------------------------------------------------------------

type Json = serde_json::Value;

/// Accessors that fail the test with the value in the message when the CLI's
/// output has another shape than expected.
trait JsonExt {
    /// The field `key` of an object, `null` when absent.
    fn field(&self, key: &str) -> &Json;
    fn i64(&self) -> i64;
    fn str(&self) -> &str;
    fn arr(&self) -> &[Json];
}

impl JsonExt for Json {
    fn field(&self, key: &str) -> &Json {
        &self[key]
    }

    fn i64(&self) -> i64 {
        self.as_i64()
            .unwrap_or_else(|| panic!("not an integer: {self:?}"))
    }

    fn str(&self) -> &str {
        self.as_str()
            .unwrap_or_else(|| panic!("not a string: {self:?}"))
    }

    fn arr(&self) -> &[Json] {
        self.as_array()
            .unwrap_or_else(|| panic!("not an array: {self:?}"))
    }
}

fn parse_json(s: &str) -> Json {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("{e} in {s:?}"))
}

/// Parses one JSON document per line.
fn json_lines(s: &str) -> Vec<Json> {
    s.lines()
        .filter(|l| !l.trim().is_empty())
        .map(parse_json)
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Topics
// ---------------------------------------------------------------------------------------------

fn topic_names(bs: &str) -> Vec<String> {
    cli_json(bs, &["topic", "list"])
        .arr()
        .iter()
        .map(|t| t.field("name").str().to_string())
        .collect()
}

fn config<'a>(describe: &'a Json, name: &str) -> &'a Json {
    describe
        .field("configs")
        .arr()
        .iter()
        .find(|c| c.field("name").str() == name)
        .unwrap_or_else(|| panic!("config {name} missing"))
}

#[test]
fn topic_lifecycle() {
    let broker = Broker::start();
    let bs = broker.bootstrap();

    let created = cli_json(
        &bs,
        &[
            "topic",
            "create",
            "cli-topic",
            "--partitions",
            "3",
            "--replication-factor",
            "1",
            "--config",
            "retention.ms=3600000",
        ],
    );
    assert_eq!(created.field("name").str(), "cli-topic");
    assert_eq!(created.field("partitions").i64(), 3);
    assert_eq!(created.field("replication_factor").i64(), 1);

    let err = cli_fails(&bs, &["topic", "create", "cli-topic", "--partitions", "3"]);
    assert!(err.contains("TOPIC_ALREADY_EXISTS"), "{err}");
    assert!(err.contains("cli-topic"), "{err}");

    let list = cli_json(&bs, &["topic", "list"]);
    let t = list
        .arr()
        .iter()
        .find(|t| t.field("name").str() == "cli-topic")
        .expect("listed");
    assert_eq!(t.field("partitions").i64(), 3);
    assert_eq!(t.field("replication_factor").i64(), 1);

    let d = cli_json(&bs, &["topic", "describe", "cli-topic"]);
    assert_eq!(d.field("name").str(), "cli-topic");
    let parts = d.field("partitions").arr();
    assert_eq!(parts.len(), 3);
    for (i, p) in parts.iter().enumerate() {
        assert_eq!(p.field("partition").i64(), i as i64);
        assert_eq!(p.field("leader").i64(), 1);
        assert_eq!(p.field("log_start_offset").i64(), 0);
        assert_eq!(p.field("high_watermark").i64(), 0);
    }
    let retention = config(&d, "retention.ms");
    assert_eq!(retention.field("value").str(), "3600000");
    assert_eq!(retention.field("source").str(), "DYNAMIC_TOPIC_CONFIG");
    assert_eq!(config(&d, "cleanup.policy").field("value").str(), "delete");

    let altered = cli_json(
        &bs,
        &[
            "topic",
            "alter-config",
            "cli-topic",
            "--set",
            "cleanup.policy=compact",
            "--set",
            "max.message.bytes=2000000",
            "--delete",
            "retention.ms",
        ],
    );
    assert_eq!(altered.field("name").str(), "cli-topic");
    let d = cli_json(&bs, &["topic", "describe", "cli-topic"]);
    assert_eq!(config(&d, "cleanup.policy").field("value").str(), "compact");
    assert_eq!(
        config(&d, "max.message.bytes").field("value").str(),
        "2000000"
    );
    let retention = config(&d, "retention.ms");
    assert_eq!(retention.field("source").str(), "DEFAULT_CONFIG");
    assert_eq!(retention.field("value").str(), "604800000");

    let grown = cli_json(
        &bs,
        &["topic", "add-partitions", "cli-topic", "--count", "5"],
    );
    assert_eq!(grown.field("partitions").i64(), 5);
    let d = cli_json(&bs, &["topic", "describe", "cli-topic"]);
    assert_eq!(d.field("partitions").arr().len(), 5);
    let err = cli_fails(
        &bs,
        &["topic", "add-partitions", "cli-topic", "--count", "2"],
    );
    assert!(err.contains("INVALID_PARTITIONS"), "{err}");

    let deleted = cli_json(&bs, &["topic", "delete", "cli-topic"]);
    assert_eq!(deleted.field("deleted"), &Json::Bool(true));
    assert!(!topic_names(&bs).contains(&"cli-topic".to_string()));
    let err = cli_fails(&bs, &["topic", "describe", "cli-topic"]);
    assert!(err.contains("cli-topic"), "{err}");
}

// ---------------------------------------------------------------------------------------------
// Produce and consume
// ---------------------------------------------------------------------------------------------

/// The partitions librdkafka's `murmur2_random` partitioner (Kafka's default for keyed
/// records) picks for `keys`, learned by producing them with librdkafka.
fn kafka_partitions(bs: &str, topic: &str, keys: &[&str]) -> Vec<i32> {
    let p = producer(bs, &[("partitioner", "murmur2_random"), ("acks", "all")]);
    for (i, k) in keys.iter().enumerate() {
        p.send(BaseRecord::with_opaque_to(topic, i).key(*k).payload("x"))
            .map_err(|(e, _)| e)
            .expect("enqueue");
    }
    p.flush(Duration::from_secs(10)).expect("flush");
    let mut d = p.context().deliveries();
    d.sort_by_key(|d| d.id);
    d.iter()
        .map(|d| d.result.clone().expect("delivered").0)
        .collect()
}

#[test]
fn produce_keyed_lines_and_consume_them_back() {
    let broker = Broker::start();
    let bs = broker.bootstrap();
    let dir = tempfile::tempdir().unwrap();
    cli_json(&bs, &["topic", "create", "lines", "--partitions", "3"]);
    cli_json(&bs, &["topic", "create", "probe", "--partitions", "3"]);
    let keys = ["alpha", "beta", "gamma"];
    let expected_partitions = kafka_partitions(&bs, "probe", &keys);

    let file = input_file(&dir, "in.txt", "alpha:one\nbeta:two\ngamma:three\n");
    let produced = cli_json(
        &bs,
        &[
            "produce",
            "lines",
            "--file",
            &file,
            "--key-separator",
            ":",
            "--header",
            "source=cli",
            "--header",
            "trace=t-1",
        ],
    );
    assert_eq!(produced.field("topic").str(), "lines");
    assert_eq!(produced.field("records").i64(), 3);
    // Expected offsets: per partition, in input order, from 0.
    let mut expected = Vec::new(); // (partition, offset, key, value)
    let values = ["one", "two", "three"];
    for (i, k) in keys.iter().enumerate() {
        let p = expected_partitions[i];
        let offset = expected.iter().filter(|(q, _, _, _)| *q == p).count() as i64;
        expected.push((p, offset, k.to_string(), values[i].to_string()));
    }
    let summary = produced.field("partitions").arr();
    for s in summary {
        let p = s.field("partition").i64() as i32;
        let mine: Vec<_> = expected.iter().filter(|e| e.0 == p).collect();
        assert_eq!(s.field("records").i64(), mine.len() as i64, "partition {p}");
        assert_eq!(s.field("first_offset").i64(), 0, "partition {p}");
        assert_eq!(
            s.field("last_offset").i64(),
            mine.len() as i64 - 1,
            "partition {p}"
        );
    }
    let total: i64 = summary.iter().map(|s| s.field("records").i64()).sum();
    assert_eq!(total, 3);

    let out = cli(
        &bs,
        &[
            "consume",
            "lines",
            "--from",
            "beginning",
            "--exit-at-end",
            "--json",
        ],
    );
    assert!(succeeded(&out), "{}", out.stderr);
    let mut got: Vec<Json> = json_lines(&out.stdout);
    got.sort_by_key(|r| (r.field("partition").i64(), r.field("offset").i64()));
    let mut want = expected.clone();
    want.sort();
    assert_eq!(got.len(), 3, "{}", out.stdout);
    for (r, (p, o, k, v)) in got.iter().zip(&want) {
        assert_eq!(r.field("topic").str(), "lines");
        assert_eq!(r.field("partition").i64(), i64::from(*p));
        assert_eq!(r.field("offset").i64(), *o);
        assert_eq!(r.field("key").str(), k);
        assert_eq!(r.field("value").str(), v);
        assert!(r.field("timestamp").i64() > 1_600_000_000_000);
        let headers: Vec<(String, String)> = r
            .field("headers")
            .arr()
            .iter()
            .map(|h| {
                (
                    h.field("key").str().to_string(),
                    h.field("value").str().to_string(),
                )
            })
            .collect();
        assert_eq!(
            headers,
            vec![
                ("source".to_string(), "cli".to_string()),
                ("trace".to_string(), "t-1".to_string())
            ]
        );
    }

    // A template, a count, one partition.
    let p0 = want[0].0.to_string();
    let out = cli(
        &bs,
        &[
            "consume",
            "lines",
            "--from",
            "beginning",
            "--partition",
            &p0,
            "--count",
            "1",
            "--format",
            "%p|%o|%k|%v|%h",
        ],
    );
    assert!(succeeded(&out), "{}", out.stderr);
    assert_eq!(
        out.stdout,
        format!(
            "{}|0|{}|{}|source=cli,trace=t-1\n",
            want[0].0, want[0].2, want[0].3
        )
    );

    // The README's kcat-style template, which ends in its own newline: no blank lines.
    let out = cli(
        &bs,
        &[
            "consume",
            "lines",
            "--from",
            "beginning",
            "--partition",
            &p0,
            "--count",
            "1",
            "--format",
            "%p/%o %k=%v\\n",
        ],
    );
    assert_eq!(
        out.stdout,
        format!("{}/0 {}={}\n", want[0].0, want[0].2, want[0].3)
    );

    // --from offset and timestamp.
    let out = cli(
        &bs,
        &[
            "consume",
            "lines",
            "--from",
            "offset:1",
            "--partition",
            &p0,
            "--exit-at-end",
            "--json",
        ],
    );
    let n0 = want.iter().filter(|w| w.0 == want[0].0).count();
    assert_eq!(json_lines(&out.stdout).len(), n0 - 1);
    let out = cli(
        &bs,
        &[
            "consume",
            "lines",
            "--from",
            "timestamp:4102444800000",
            "--exit-at-end",
            "--json",
        ],
    );
    assert!(succeeded(&out), "{}", out.stderr);
    assert_eq!(out.stdout, "", "nothing is newer than 2100");
}

#[test]
fn compressed_produce_is_readable_by_librdkafka() {
    let broker = Broker::start();
    let bs = broker.bootstrap();
    let dir = tempfile::tempdir().unwrap();
    cli_json(&bs, &["topic", "create", "zipped", "--partitions", "1"]);
    let lines: String = (0..500).map(|i| format!("record number {i}\n")).collect();
    let file = input_file(&dir, "in.txt", &lines);
    for codec in ["gzip", "snappy", "lz4", "zstd"] {
        let produced = cli_json(
            &bs,
            &[
                "produce",
                "zipped",
                "--file",
                &file,
                "--compression",
                codec,
                "--acks",
                "1",
            ],
        );
        assert_eq!(produced.field("records").i64(), 500, "{codec}");
    }
    let got = consume_all(&bs, "zipped", 1, Duration::from_secs(20));
    assert_eq!(got[&0].len(), 2000);
    for (i, m) in got[&0].iter().enumerate() {
        assert_eq!(m.offset(), i as i64);
        let want = format!("record number {}", i % 500);
        assert_eq!(m.payload(), Some(want.as_bytes()));
        assert_eq!(m.key(), None);
    }
}

#[test]
fn produce_creates_a_missing_topic_and_sends_tombstones_with_empty_as_null() {
    let broker = Broker::start();
    let bs = broker.bootstrap();
    let dir = tempfile::tempdir().unwrap();
    // Auto-creation is on: producing creates the topic, as Kafka's producers do.
    let file = input_file(&dir, "in.txt", "k1:\nk2:v2\nk3:\n");
    let produced = cli_json(
        &bs,
        &[
            "produce",
            "created-by-produce",
            "--file",
            &file,
            "--key-separator",
            ":",
            "--empty-as-null",
        ],
    );
    assert_eq!(produced.field("records").i64(), 3);
    assert!(topic_names(&bs).contains(&"created-by-produce".to_string()));
    let file = input_file(&dir, "empty.txt", "k4:\n");
    cli_json(
        &bs,
        &[
            "produce",
            "created-by-produce",
            "--file",
            &file,
            "--key-separator",
            ":",
        ],
    );

    let out = cli(
        &bs,
        &[
            "consume",
            "created-by-produce",
            "--from-beginning",
            "--exit-at-end",
            "--json",
        ],
    );
    assert!(succeeded(&out), "{}", out.stderr);
    let values: Vec<(String, Json)> = json_lines(&out.stdout)
        .iter()
        .map(|r| (r.field("key").str().to_string(), r.field("value").clone()))
        .collect();
    assert_eq!(
        values,
        vec![
            ("k1".to_string(), Json::Null),
            ("k2".to_string(), serde_json::json!("v2")),
            ("k3".to_string(), Json::Null),
            ("k4".to_string(), serde_json::json!("")),
        ]
    );
    // librdkafka sees the tombstones as records without a value.
    let got = consume_all(&bs, "created-by-produce", 1, Duration::from_secs(20));
    let payloads: Vec<Option<&[u8]>> = got[&0].iter().map(|m| m.payload()).collect();
    assert_eq!(payloads[0], None);
    assert_eq!(payloads[1], Some(&b"v2"[..]));
    assert_eq!(payloads[2], None);
    assert!(payloads[3].is_some_and(<[u8]>::is_empty), "{payloads:?}");

    // offset:-N is N before the end (kcat's -o -N), never before the start.
    let last_two = cli(
        &bs,
        &[
            "consume",
            "created-by-produce",
            "--from",
            "offset:-2",
            "--exit-at-end",
            "-F",
            "%o %k",
        ],
    );
    assert_eq!(last_two.stdout, "2 k3\n3 k4\n");
    let all = cli(
        &bs,
        &[
            "consume",
            "created-by-produce",
            "--from",
            "offset:-10",
            "--exit-at-end",
            "-F",
            "%o",
        ],
    );
    assert_eq!(all.stdout, "0\n1\n2\n3\n");
    // Both ways of saying where to start is a usage error.
    let out = cli(
        &bs,
        &[
            "consume",
            "created-by-produce",
            "--from-beginning",
            "--from",
            "end",
        ],
    );
    assert!(!succeeded(&out));
    assert!(
        out.stderr.starts_with(
            "error: the argument '--from-beginning' cannot be used with '--from <FROM>'"
        ),
        "{}",
        out.stderr
    );
}

#[test]
fn bytes_that_are_not_utf8_are_printed_raw_by_templates_and_in_base64_in_json() {
    let broker = Broker::start();
    let bs = broker.bootstrap();
    cli_json(&bs, &["topic", "create", "binary", "--partitions", "1"]);
    let key: &[u8] = b"\xff\x00k";
    let value: &[u8] = b"\x80 v \xfe\x01";
    let header: &[u8] = b"h\xc3";
    let p = producer(&bs, &[("acks", "all")]);
    let headers = rdkafka::message::OwnedHeaders::new()
        .insert(rdkafka::message::Header {
            key: "bin",
            value: Some(header),
        })
        .insert(rdkafka::message::Header {
            key: "text",
            value: Some("plain"),
        });
    p.send(
        BaseRecord::with_opaque_to("binary", 0)
            .key(key)
            .payload(value)
            .headers(headers),
    )
    .map_err(|(e, _)| e)
    .expect("enqueue");
    p.send(
        BaseRecord::with_opaque_to("binary", 1)
            .key("text")
            .payload("é ok"),
    )
    .map_err(|(e, _)| e)
    .expect("enqueue");
    p.flush(Duration::from_secs(10)).expect("flush");

    let out = cli(
        &bs,
        &[
            "consume",
            "binary",
            "--from",
            "beginning",
            "--exit-at-end",
            "-F",
            "%k|%v|%h",
        ],
    );
    assert!(succeeded(&out), "{}", out.stderr);
    let mut want = Vec::new();
    want.extend_from_slice(b"\xff\x00k|\x80 v \xfe\x01|bin=h\xc3,text=plain\n");
    want.extend_from_slice("text|é ok|\n".as_bytes());
    assert_eq!(out.stdout_bytes, want);

    let out = cli(
        &bs,
        &[
            "consume",
            "binary",
            "--from",
            "beginning",
            "--exit-at-end",
            "--json",
        ],
    );
    assert!(succeeded(&out), "{}", out.stderr);
    let got = json_lines(&out.stdout);
    assert_eq!(got.len(), 2, "{}", out.stdout);
    assert_eq!(
        got[0].field("key"),
        &serde_json::json!({ "base64": "/wBr" })
    );
    assert_eq!(
        got[0].field("value"),
        &serde_json::json!({ "base64": "gCB2IP4B" })
    );
    assert_eq!(
        got[0].field("headers"),
        &serde_json::json!([
            { "key": "bin", "value": { "base64": "aMM=" } },
            { "key": "text", "value": "plain" },
        ])
    );
    assert_eq!(got[1].field("key").str(), "text");
    assert_eq!(got[1].field("value").str(), "é ok");
}

// ---------------------------------------------------------------------------------------------
// Groups
// ---------------------------------------------------------------------------------------------

fn group_consumer(bootstrap: &str, group: &str) -> BaseConsumer {
    let mut c: ClientConfig = client_config(bootstrap);
    c.set("group.id", group)
        .set("client.id", "cli-test-member")
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", "6000")
        .set("heartbeat.interval.ms", "100")
        .set("fetch.wait.max.ms", "100")
        .set("partition.assignment.strategy", "range");
    c.create().expect("group consumer")
}

fn describe_until(bs: &str, group: &str, state: &str) -> Json {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let d = cli_json(bs, &["group", "describe", group]);
        if d.field("state").str() == state {
            return d;
        }
        assert!(Instant::now() < deadline, "group never {state}: {d:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn offsets_of(d: &Json) -> Vec<(i64, Json, Json, Json)> {
    d.field("offsets")
        .arr()
        .iter()
        .map(|o| {
            (
                o.field("partition").i64(),
                o.field("committed_offset").clone(),
                o.field("log_end_offset").clone(),
                o.field("lag").clone(),
            )
        })
        .collect()
}

#[test]
fn groups_list_describe_reset_delete() {
    let broker = Broker::start();
    let bs = broker.bootstrap();
    let dir = tempfile::tempdir().unwrap();
    cli_json(&bs, &["topic", "create", "events", "--partitions", "2"]);
    let file = input_file(&dir, "in.txt", "a\nb\nc\nd\ne\n");
    cli_json(
        &bs,
        &["produce", "events", "--file", &file, "--partition", "0"],
    );

    // An rdkafka group member reads and commits.
    let c = group_consumer(&bs, "cli-group");
    c.subscribe(&["events"]).expect("subscribe");
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut n = 0;
    while n < 5 {
        assert!(Instant::now() < deadline, "received {n} of 5");
        if let Some(m) = c.poll(Duration::from_millis(100)) {
            m.expect("poll");
            n += 1;
        }
    }
    c.commit_consumer_state(CommitMode::Sync).expect("commit");

    let d = describe_until(&bs, "cli-group", "Stable");
    assert_eq!(d.field("protocol_type").str(), "consumer");
    assert_eq!(d.field("protocol").str(), "range");
    let members = d.field("members").arr();
    assert_eq!(members.len(), 1);
    assert_eq!(members[0].field("client_id").str(), "cli-test-member");
    let assignments = members[0].field("assignments").arr();
    assert_eq!(assignments.len(), 1);
    assert_eq!(assignments[0].field("topic").str(), "events");
    let assigned: Vec<i64> = assignments[0]
        .field("partitions")
        .arr()
        .iter()
        .map(Json::i64)
        .collect();
    assert_eq!(assigned, vec![0, 1]);
    let member_id = members[0].field("member_id").str().to_string();
    let p0 = &d.field("offsets").arr()[0];
    assert_eq!(p0.field("partition").i64(), 0);
    assert_eq!(p0.field("committed_offset").i64(), 5);
    assert_eq!(p0.field("log_end_offset").i64(), 5);
    assert_eq!(p0.field("lag").i64(), 0);
    assert_eq!(p0.field("member_id").str(), member_id);

    // Offsets of a group with members cannot be reset.
    let err = cli_fails(
        &bs,
        &[
            "group",
            "reset-offsets",
            "cli-group",
            "--topic",
            "events",
            "--to",
            "earliest",
        ],
    );
    assert!(err.contains("Stable") && err.contains("Empty"), "{err}");

    c.unsubscribe();
    drop(c);
    let d = describe_until(&bs, "cli-group", "Empty");
    assert!(d.field("members").arr().is_empty());

    let list = cli_json(&bs, &["group", "list"]);
    let g = list
        .arr()
        .iter()
        .find(|g| g.field("group").str() == "cli-group")
        .expect("group listed");
    assert_eq!(g.field("state").str(), "Empty");
    assert_eq!(g.field("protocol_type").str(), "consumer");

    // Dry run: the plan, nothing committed.
    let plan = cli_json(
        &bs,
        &[
            "group",
            "reset-offsets",
            "cli-group",
            "--topic",
            "events",
            "--to",
            "offset:2",
            "--dry-run",
        ],
    );
    assert_eq!(plan.field("dry_run"), &Json::Bool(true));
    let p = plan.field("partitions").arr();
    assert_eq!(p[0].field("current_offset").i64(), 5);
    assert_eq!(p[0].field("new_offset").i64(), 2);
    // Partition 1 is empty: offset:2 is clamped to its end, 0.
    assert_eq!(p[1].field("new_offset").i64(), 0);
    let d = cli_json(&bs, &["group", "describe", "cli-group"]);
    assert_eq!(offsets_of(&d)[0].1, serde_json::json!(5));

    // The real thing.
    let done = cli_json(
        &bs,
        &[
            "group",
            "reset-offsets",
            "cli-group",
            "--topic",
            "events",
            "--to",
            "offset:2",
        ],
    );
    assert_eq!(done.field("dry_run"), &Json::Bool(false));
    let d = cli_json(&bs, &["group", "describe", "cli-group"]);
    let offsets = offsets_of(&d);
    assert_eq!(
        offsets[0],
        (
            0,
            serde_json::json!(2),
            serde_json::json!(5),
            serde_json::json!(3)
        )
    );

    // The CLI consumer resumes from the committed offsets and commits where it stopped.
    let out = cli(
        &bs,
        &[
            "consume",
            "events",
            "--group",
            "cli-group",
            "--from",
            "end",
            "--exit-at-end",
            "--format",
            "%o:%v",
        ],
    );
    assert!(succeeded(&out), "{}", out.stderr);
    assert_eq!(out.stdout, "2:c\n3:d\n4:e\n");
    let d = cli_json(&bs, &["group", "describe", "cli-group"]);
    assert_eq!(
        offsets_of(&d)[0].3,
        serde_json::json!(0),
        "lag after consuming"
    );

    // Reset by time: everything was written after 0.
    let done = cli_json(
        &bs,
        &[
            "group",
            "reset-offsets",
            "cli-group",
            "--topic",
            "events",
            "--to",
            "timestamp:0",
        ],
    );
    assert_eq!(
        done.field("partitions").arr()[0].field("new_offset").i64(),
        0
    );

    let deleted = cli_json(&bs, &["group", "delete", "cli-group"]);
    assert_eq!(deleted.field("deleted"), &Json::Bool(true));
    let list = cli_json(&bs, &["group", "list"]);
    assert!(
        !list
            .arr()
            .iter()
            .any(|g| g.field("group").str() == "cli-group"),
        "{list:?}"
    );
    let err = cli_fails(&bs, &["group", "describe", "cli-group"]);
    assert!(err.contains("cli-group"), "{err}");
}

// ---------------------------------------------------------------------------------------------
// Consuming as a group member
// ---------------------------------------------------------------------------------------------

/// A `sluice` command running in the background, its stdout in a file.
struct Background {
    child: std::process::Child,
    stdout: std::path::PathBuf,
    stderr: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Background {
    fn start(broker: &str, args: &[&str]) -> Background {
        let dir = tempfile::tempdir().unwrap();
        let stdout = dir.path().join("stdout");
        let stderr = dir.path().join("stderr");
        let child = std::process::Command::new(sluice_bin())
            .args(args)
            .args(["--brokers", broker])
            .stdin(std::process::Stdio::null())
            .stdout(std::fs::File::create(&stdout).unwrap())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .expect("spawn sluice");
        Background {
            child,
            stdout,
            stderr,
            _dir: dir,
        }
    }

    fn output(&self) -> String {
        std::fs::read_to_string(&self.stdout).unwrap_or_default()
    }

    fn signal(&self, name: &str) {
        let st = std::process::Command::new("kill")
            .args([format!("-{name}"), self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(st.success(), "kill -{name}");
    }

    /// Waits for the process to exit and asserts it succeeded.
    fn exits_successfully(&mut self) {
        let deadline = Instant::now() + RUN_TIMEOUT;
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            assert!(Instant::now() < deadline, "sluice did not exit");
            std::thread::sleep(Duration::from_millis(20));
        };
        let stderr = std::fs::read_to_string(&self.stderr).unwrap_or_default();
        assert!(status.success(), "{status}: {stderr}");
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits until `done` holds, failing with `what` after 30 s.
fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The (partition, offset, value) lines a `-F '%p %o %v'` consumer printed.
fn printed(out: &str) -> Vec<(i64, i64, String)> {
    out.lines()
        .map(|l| {
            let mut f = l.splitn(3, ' ');
            let p = f.next().unwrap().parse().unwrap();
            let o = f.next().unwrap().parse().unwrap();
            (p, o, f.next().unwrap().to_string())
        })
        .collect()
}

/// Member id → assigned partitions of a described group.
fn assignments(d: &Json) -> BTreeMap<String, Vec<i64>> {
    d.field("members")
        .arr()
        .iter()
        .map(|m| {
            let parts = m
                .field("assignments")
                .arr()
                .iter()
                .flat_map(|a| a.field("partitions").arr().iter().map(Json::i64))
                .collect();
            (m.field("member_id").str().to_string(), parts)
        })
        .collect()
}

/// Partition → committed offset of a described group.
fn committed(d: &Json) -> BTreeMap<i64, i64> {
    d.field("offsets")
        .arr()
        .iter()
        .filter(|o| !o.field("committed_offset").is_null())
        .map(|o| {
            (
                o.field("partition").i64(),
                o.field("committed_offset").i64(),
            )
        })
        .collect()
}

/// Partition → the offset after the last record printed from it.
fn next_offsets(lines: &[(i64, i64, String)]) -> BTreeMap<i64, i64> {
    let mut out = BTreeMap::new();
    for (p, o, _) in lines {
        let next = out.entry(*p).or_insert(0);
        *next = (*next).max(o + 1);
    }
    out
}

/// Waits until the group is Stable with `members` members that each own a partition.
fn stable_with(bs: &str, group: &str, members: usize) -> BTreeMap<String, Vec<i64>> {
    let mut last = BTreeMap::new();
    wait_for(
        &format!("{group} to be Stable with {members} members"),
        || {
            // Before the first member joined, the group does not exist.
            let out = cli(bs, &["group", "describe", group, "--json"]);
            if !succeeded(&out) {
                return false;
            }
            let d = parse_json(out.stdout.trim());
            last = assignments(&d);
            d.field("state").str() == "Stable"
                && last.len() == members
                && last.values().all(|ps| !ps.is_empty())
        },
    );
    last
}

fn lines_file(dir: &tempfile::TempDir, name: &str, from: usize, to: usize) -> String {
    let content: String = (from..=to).map(|i| format!("v{i}\n")).collect();
    input_file(dir, name, &content)
}

#[test]
fn group_members_split_the_partitions_and_commit_what_they_printed_on_sigint_and_sigterm() {
    let broker = Broker::start();
    let bs = broker.bootstrap();
    let dir = tempfile::tempdir().unwrap();
    cli_json(&bs, &["topic", "create", "split", "--partitions", "4"]);
    let consume = [
        "consume",
        "split",
        "--group",
        "splitters",
        "--from",
        "beginning",
        "--format",
        "%p %o %v",
        "--commit-interval-ms",
        "0",
        "--heartbeat-interval-ms",
        "200",
        "--quiet",
    ];
    let mut a = Background::start(&bs, &consume);
    stable_with(&bs, "splitters", 1);
    let mut b = Background::start(&bs, &consume);
    let owners = stable_with(&bs, "splitters", 2);
    let mut all: Vec<i64> = owners.values().flatten().copied().collect();
    all.sort_unstable();
    assert_eq!(all, vec![0, 1, 2, 3], "{owners:?}");

    // 10 records per partition (keyless records go round-robin).
    let file = lines_file(&dir, "first.txt", 1, 40);
    cli_json(&bs, &["produce", "split", "--file", &file]);
    wait_for("40 records printed", || {
        printed(&a.output()).len() + printed(&b.output()).len() == 40
    });
    let (got_a, got_b) = (printed(&a.output()), printed(&b.output()));
    let mut values: Vec<&str> = got_a.iter().chain(&got_b).map(|l| l.2.as_str()).collect();
    values.sort_unstable();
    let mut want: Vec<String> = (1..=40).map(|i| format!("v{i}")).collect();
    want.sort_unstable();
    assert_eq!(values, want, "each record printed by exactly one member");
    let partitions_of = |lines: &[(i64, i64, String)]| {
        let mut ps: Vec<i64> = lines.iter().map(|l| l.0).collect();
        ps.sort_unstable();
        ps.dedup();
        ps
    };
    let (pa, pb) = (partitions_of(&got_a), partitions_of(&got_b));
    assert!(owners.values().any(|ps| *ps == pa), "{pa:?} {owners:?}");
    assert!(owners.values().any(|ps| *ps == pb), "{pb:?} {owners:?}");
    assert_eq!(pa.len() + pb.len(), 4);

    // Ctrl-C: a commits the offsets it printed (commits are off until exit) and leaves.
    a.signal("INT");
    a.exits_successfully();
    let d = cli_json(&bs, &["group", "describe", "splitters"]);
    let after_a = committed(&d);
    for (p, next) in next_offsets(&got_a) {
        assert_eq!(after_a.get(&p), Some(&next), "partition {p}: {after_a:?}");
    }

    // b takes over every partition, resuming from a's commits, then gets SIGTERM.
    let owners = stable_with(&bs, "splitters", 1);
    assert_eq!(owners.values().next(), Some(&vec![0, 1, 2, 3]));
    let file = lines_file(&dir, "second.txt", 41, 48);
    cli_json(&bs, &["produce", "split", "--file", &file]);
    wait_for("b to print 8 more records", || {
        printed(&b.output()).len() == got_b.len() + 8
    });
    b.signal("TERM");
    b.exits_successfully();
    let got_b = printed(&b.output());
    let d = describe_until(&bs, "splitters", "Empty");
    let mut everything = got_a.clone();
    everything.extend(got_b.iter().cloned());
    let mut values: Vec<&str> = everything.iter().map(|l| l.2.as_str()).collect();
    values.sort_unstable();
    values.dedup();
    assert_eq!(values.len(), 48, "nothing printed twice, nothing missed");
    assert_eq!(everything.len(), 48);
    assert_eq!(committed(&d), next_offsets(&everything));
    assert_eq!(committed(&d), (0..4).map(|p| (p, 12)).collect());
}

#[test]
fn group_consumer_commits_when_stdout_closes_and_after_max_messages() {
    use std::io::BufRead;
    let broker = Broker::start();
    let bs = broker.bootstrap();
    let dir = tempfile::tempdir().unwrap();
    cli_json(&bs, &["topic", "create", "piped", "--partitions", "1"]);
    let file = lines_file(&dir, "in.txt", 1, 5);
    cli_json(&bs, &["produce", "piped", "--file", &file]);

    // --max-messages: commits the three printed, and the next run resumes after them.
    let out = cli(
        &bs,
        &[
            "consume",
            "piped",
            "-g",
            "counted",
            "--from-beginning",
            "--max-messages",
            "3",
            "-F",
            "%o",
        ],
    );
    assert!(succeeded(&out), "{}", out.stderr);
    assert_eq!(out.stdout, "0\n1\n2\n");
    let d = cli_json(&bs, &["group", "describe", "counted"]);
    assert_eq!(committed(&d), BTreeMap::from([(0, 3)]));
    let out = cli(
        &bs,
        &[
            "consume",
            "piped",
            "-g",
            "counted",
            "--exit-at-end",
            "-F",
            "%o",
        ],
    );
    assert_eq!(out.stdout, "3\n4\n");

    // A closed pipe (`| head -5`): the five records read are committed, not the sixth.
    let mut child = std::process::Command::new(sluice_bin())
        .args([
            "consume",
            "piped",
            "-g",
            "piped-group",
            "--from",
            "beginning",
            "-F",
            "%o",
            "--commit-interval-ms",
            "0",
            "--quiet",
            "--brokers",
            &bs,
        ])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn sluice");
    let mut reader = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    for want in 0..5 {
        line.clear();
        reader.read_line(&mut line).unwrap();
        assert_eq!(line, format!("{want}\n"));
    }
    drop(reader);
    let file = lines_file(&dir, "more.txt", 6, 6);
    cli_json(&bs, &["produce", "piped", "--file", &file]);
    let deadline = Instant::now() + RUN_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "sluice did not notice the closed pipe"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(status.success(), "{status}: {stderr}");
    let d = cli_json(&bs, &["group", "describe", "piped-group"]);
    assert_eq!(d.field("state").str(), "Empty");
    assert_eq!(committed(&d), BTreeMap::from([(0, 5)]));
}

// ---------------------------------------------------------------------------------------------
// Cluster and errors
// ---------------------------------------------------------------------------------------------

#[test]
fn cluster_info() {
    let broker = Broker::start();
    let bs = broker.bootstrap();
    let info = cli_json(&bs, &["cluster", "info"]);
    assert_eq!(info.field("controller_id").i64(), 1);
    assert!(!info.field("cluster_id").is_null());
    let brokers = info.field("brokers").arr();
    assert_eq!(brokers.len(), 1);
    assert_eq!(brokers[0].field("node_id").i64(), 1);
    assert_eq!(brokers[0].field("port").i64(), i64::from(broker.port()));
    assert_eq!(brokers[0].field("fenced").as_bool(), Some(false));
    assert_eq!(info.field("under_replicated_partitions").i64(), 0);
    assert_eq!(info.field("offline_partitions").i64(), 0);
    let apis = info.field("apis").arr();
    let produce = apis
        .iter()
        .find(|a| a.field("name").str() == "Produce")
        .expect("Produce listed");
    assert_eq!(produce.field("api_key").i64(), 0);
    assert!(produce.field("max_version").i64() >= 9);
    assert!(
        apis.iter()
            .any(|a| a.field("name").str() == "DescribeCluster")
    );
}

#[test]
fn elect_leaders_on_one_node_finds_every_preferred_replica_leading() {
    let broker = Broker::start();
    let bs = broker.bootstrap();
    cli_json(&bs, &["topic", "create", "elect", "--partitions", "2"]);
    let named = cli_json(&bs, &["cluster", "elect-leaders", "--topic", "elect"]);
    let results = named.field("results").arr();
    let outcomes: Vec<(i64, String)> = results
        .iter()
        .map(|r| {
            (
                r.field("partition").i64(),
                r.field("error").str().to_string(),
            )
        })
        .collect();
    assert_eq!(
        outcomes,
        vec![
            (0, "ELECTION_NOT_NEEDED".to_string()),
            (1, "ELECTION_NOT_NEEDED".to_string())
        ]
    );
    // With every partition, those needing no election are left out.
    let all = cli_json(&bs, &["cluster", "elect-leaders"]);
    assert!(all.field("results").arr().is_empty());
}

#[test]
fn a_non_kafka_port_and_an_unreachable_advertised_address_are_explained() {
    // The broker's own HTTP listener stands in for any HTTP server.
    let http = format!("127.0.0.1:{}", free_port());
    let broker = Broker::start_with(&["--http-listen", &http]);
    let err = cli_fails(&http, &["topic", "list"]);
    assert_eq!(
        err,
        format!(
            "error: {http} does not speak the Kafka protocol: its reply starts with \"HTTP/1.1 400 Bad Request\", which looks like HTTP; check that --brokers names a Kafka listener"
        )
    );
    drop(broker);

    // Nothing listens on port 1: the bootstrap connection works, the advertised one not.
    let broker = Broker::start_with(&["--advertise", "127.0.0.1:1"]);
    let err = cli_fails(&broker.bootstrap(), &["topic", "create", "t"]);
    assert!(
        err.starts_with("error: broker 1 advertises 127.0.0.1:1 (learned from Metadata), which cannot be reached: "),
        "{err}"
    );
    assert!(
        err.ends_with("; check that broker's advertised address (advertised.listeners; --advertise for Sluice)"),
        "{err}"
    );
}

/// The `sluice-bench` binary `sluice bench` runs (next to `sluice`), built when missing.
fn bench_binary() -> std::path::PathBuf {
    let bench = sluice_bin().with_file_name("sluice-bench");
    if !bench.exists() {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let st = std::process::Command::new(cargo)
            .args(["build", "-p", "sluice-bench"])
            .status()
            .expect("run cargo build -p sluice-bench");
        assert!(st.success(), "cargo build -p sluice-bench failed");
    }
    bench
}

#[test]
fn help_texts_name_commands_as_typed_and_make_no_stale_claims() {
    let out = run_sluice(&["topic", "describe", "--help"], RUN_TIMEOUT);
    assert!(succeeded(&out), "{}", out.stderr);
    assert!(
        out.stdout.starts_with(
            "Partitions (leader, replicas, ISR, log start and end offsets, size on disk, dirty ratio of a compacted topic) and configs of a topic\n\nUsage: sluice topic describe"
        ),
        "{}",
        out.stdout
    );
    assert!(!out.stdout.contains("not implement"), "{}", out.stdout);

    assert!(bench_binary().exists());
    let out = run_sluice(&["bench", "--help"], RUN_TIMEOUT);
    assert!(succeeded(&out), "{}", out.stderr);
    assert!(
        out.stdout.contains("\nUsage: sluice bench <COMMAND>\n"),
        "{}",
        out.stdout
    );
    let out = run_sluice(&["bench", "produce", "--help"], RUN_TIMEOUT);
    assert!(
        out.stdout
            .contains("\nUsage: sluice bench produce [OPTIONS]\n"),
        "{}",
        out.stdout
    );
}

#[test]
fn errors_are_one_line_with_a_failing_exit_code() {
    // Nothing listens on this port.
    let nowhere = format!("127.0.0.1:{}", free_port());
    for args in [
        &["topic", "list"][..],
        &["topic", "describe", "x"],
        &["consume", "x", "--count", "1"],
        &["group", "list"],
        &["cluster", "info"],
    ] {
        let err = cli_fails(&nowhere, args);
        assert!(err.contains(&nowhere), "{args:?}: {err}");
        let out = cli(&nowhere, args);
        assert_eq!(out.stdout, "", "{args:?}");
    }

    let broker = Broker::start_with(&["--auto-create-topics", "false"]);
    let bs = broker.bootstrap();
    let err = cli_fails(&bs, &["topic", "describe", "no-such-topic"]);
    assert!(err.contains("'no-such-topic'"), "{err}");
    let err = cli_fails(&bs, &["consume", "no-such-topic", "--count", "1"]);
    assert!(err.contains("'no-such-topic'"), "{err}");
    let err = cli_fails(&bs, &["topic", "delete", "no-such-topic"]);
    assert!(err.contains("'no-such-topic'"), "{err}");
    let err = cli_fails(
        &bs,
        &["topic", "alter-config", "no-such-topic", "--set", "a=b"],
    );
    assert!(err.contains("no-such-topic"), "{err}");
    let dir = tempfile::tempdir().unwrap();
    let file = input_file(&dir, "in.txt", "x\n");
    let err = cli_fails(&bs, &["produce", "no-such-topic", "--file", &file]);
    assert_eq!(
        err,
        "error: unknown topic 'no-such-topic' (the broker does not create topics on first use: create it with `sluice topic create no-such-topic`)"
    );
    assert!(!topic_names(&bs).contains(&"no-such-topic".to_string()));
    let err = cli_fails(&bs, &["group", "delete", "no-such-group"]);
    assert_eq!(
        err,
        "error: DeleteGroups group 'no-such-group': GROUP_ID_NOT_FOUND"
    );
}

//! Restarts: topics, configs and data survive SIGTERM and kill -9; a second broker on the
//! same data dir and a broker on a busy port are refused with exit code 1 and one line.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::net::TcpListener;
use std::time::Duration;

use rdkafka::admin::{AlterConfig, ConfigSource, OwnedResourceSpecifier, ResourceSpecifier};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, Producer};
use sluice_e2e::{
    Broker, CALL_TIMEOUT, admin, admin_opts, block_on, consume_all, create_topic, free_port,
    producer, run_sluice,
};

const RECORDS: usize = 200;

/// Creates topic "keep" (3 partitions, retention.ms altered to 123456789, cleanup.policy
/// set at creation) and writes RECORDS records round-robin over its partitions.
fn populate(bs: &str) {
    create_topic(bs, "keep", 3, &[("cleanup.policy", "compact")]);
    create_topic(bs, "other", 1, &[]);
    let a = admin(bs);
    let alter = AlterConfig::new(ResourceSpecifier::Topic("keep"))
        .set("retention.ms", "123456789")
        .set("cleanup.policy", "compact");
    let res = block_on(a.alter_configs([&alter], &admin_opts())).expect("alter_configs");
    assert_eq!(res, vec![Ok(OwnedResourceSpecifier::Topic("keep".into()))]);

    let p = producer(bs, &[("acks", "all")]);
    for i in 0..RECORDS {
        let k = format!("k{i}");
        let v = format!("v{i}");
        p.send(
            BaseRecord::with_opaque_to("keep", i)
                .partition((i % 3) as i32)
                .key(&k)
                .payload(&v),
        )
        .map_err(|(e, _)| e)
        .expect("enqueue");
    }
    p.flush(Duration::from_secs(20)).expect("flush");
    let d = p.context().deliveries();
    assert_eq!(d.len(), RECORDS);
    for d in &d {
        assert_eq!(
            d.result,
            Ok(((d.id % 3) as i32, (d.id / 3) as i64)),
            "record {}",
            d.id
        );
    }
}

/// Checks everything `populate` wrote, then appends one more record per partition.
fn verify(bs: &str) {
    let a = admin(bs);
    let md = a
        .inner()
        .fetch_metadata(None, CALL_TIMEOUT)
        .expect("metadata");
    let mut topics: Vec<(String, usize)> = md
        .topics()
        .iter()
        .filter(|t| !t.name().starts_with("__"))
        .map(|t| (t.name().to_string(), t.partitions().len()))
        .collect();
    topics.sort();
    assert_eq!(
        topics,
        vec![("keep".to_string(), 3), ("other".to_string(), 1)],
        "topics after restart"
    );

    let res = block_on(a.describe_configs([&ResourceSpecifier::Topic("keep")], &admin_opts()))
        .expect("describe_configs");
    let r = res[0].as_ref().expect("describe keep");
    let e = r.get("retention.ms").expect("retention.ms");
    assert_eq!(e.value.as_deref(), Some("123456789"));
    assert_eq!(e.source, ConfigSource::DynamicTopic);
    let e = r.get("cleanup.policy").expect("cleanup.policy");
    assert_eq!(e.value.as_deref(), Some("compact"));
    let res = block_on(a.describe_configs([&ResourceSpecifier::Topic("other")], &admin_opts()))
        .expect("describe_configs");
    let r = res[0].as_ref().expect("describe other");
    let e = r.get("retention.ms").expect("retention.ms");
    assert_eq!(e.value.as_deref(), Some("604800000"));
    assert_eq!(e.source, ConfigSource::Default);

    let got = consume_all(bs, "keep", 3, Duration::from_secs(20));
    for part in 0..3i32 {
        let msgs = &got[&part];
        let want: Vec<usize> = (0..RECORDS).filter(|i| i % 3 == part as usize).collect();
        assert_eq!(msgs.len(), want.len(), "records on partition {part}");
        for (n, (m, i)) in msgs.iter().zip(want).enumerate() {
            assert_eq!(m.offset(), n as i64);
            assert_eq!(m.key(), Some(format!("k{i}").as_bytes()));
            assert_eq!(m.payload(), Some(format!("v{i}").as_bytes()));
        }
    }

    // New writes continue at the end of each partition.
    let p = producer(bs, &[("acks", "all")]);
    for part in 0..3usize {
        p.send(
            BaseRecord::with_opaque_to("keep", part)
                .partition(part as i32)
                .key("after")
                .payload("restart"),
        )
        .map_err(|(e, _)| e)
        .expect("enqueue");
    }
    p.flush(Duration::from_secs(10)).expect("flush");
    for d in p.context().deliveries() {
        let part = d.id as i32;
        let end = got[&part].len() as i64;
        assert_eq!(d.result, Ok((part, end)), "append after restart");
    }
}

#[test]
fn clean_restart_keeps_topics_configs_and_data() {
    let mut broker = Broker::start();
    let bs = broker.bootstrap();
    populate(&bs);
    let status = broker.stop();
    assert_eq!(
        status.code(),
        Some(0),
        "exit status after SIGTERM: {status}"
    );
    assert!(
        !broker.log().contains("panicked"),
        "broker panicked during shutdown"
    );
    broker.restart();
    verify(&bs);
    // And once more, including the records appended after the first restart.
    let status = broker.stop();
    assert_eq!(
        status.code(),
        Some(0),
        "exit status after SIGTERM: {status}"
    );
    broker.restart();
    let got = consume_all(&bs, "keep", 3, Duration::from_secs(20));
    for part in 0..3 {
        let last = got[&part].last().expect("records");
        assert_eq!(last.payload(), Some(&b"restart"[..]));
    }
}

#[test]
fn kill9_restart_keeps_topics_configs_and_data() {
    let mut broker = Broker::start();
    let bs = broker.bootstrap();
    populate(&bs);
    broker.kill9();
    broker.restart();
    verify(&bs);
    broker.kill9();
    broker.restart();
    let got = consume_all(&bs, "keep", 3, Duration::from_secs(20));
    for part in 0..3 {
        let last = got[&part].last().expect("records");
        assert_eq!(last.payload(), Some(&b"restart"[..]));
    }
    assert!(!broker.log().contains("panicked"), "broker panicked");
}

/// `2026-01-01T00:00:00.000000Z  INFO ...` (tracing's default format), INFO or below.
fn is_info_log_line(l: &str) -> bool {
    let mut words = l.split_whitespace();
    let ts = words.next().unwrap_or_default();
    let level = words.next().unwrap_or_default();
    ts.len() > 20
        && ts.as_bytes()[..4].iter().all(u8::is_ascii_digit)
        && ts.ends_with('Z')
        && matches!(level, "INFO" | "DEBUG" | "TRACE")
}

fn assert_one_line_error(out: &sluice_e2e::RunOutput, what: &str) {
    assert_eq!(
        out.status.and_then(|s| s.code()),
        Some(1),
        "{what}: exit status (stderr: {:?})",
        out.stderr
    );
    assert!(
        !out.stderr.contains("panicked") && !out.stdout.contains("panicked"),
        "{what}: panic output: {:?}",
        out.stderr
    );
    // Informational log lines (the startup banner) may precede it; the error itself is one
    // line and nothing else is printed.
    let lines: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| !l.trim().is_empty() && !is_info_log_line(l))
        .collect();
    assert_eq!(
        lines.len(),
        1,
        "{what}: want a one-line error on stderr, got {:?}",
        out.stderr
    );
    assert!(
        lines[0].to_lowercase().contains("error"),
        "{what}: the line is not an error: {:?}",
        lines[0]
    );
}

#[test]
fn second_broker_on_same_data_dir_is_refused() {
    let broker = Broker::start();
    let bs = broker.bootstrap();
    create_topic(&bs, "first", 1, &[]);

    let port = free_port().to_string();
    let listen = format!("127.0.0.1:{port}");
    let data_dir = broker.data_dir().display().to_string();
    let out = run_sluice(
        &[
            "serve",
            "--listen",
            &listen,
            "--data-dir",
            &data_dir,
            "--group-initial-rebalance-delay-ms",
            "0",
        ],
        Duration::from_secs(10),
    );
    assert_one_line_error(&out, "second broker on the same data dir");
    let msg = out.stderr.to_lowercase();
    assert!(
        msg.contains("lock") || msg.contains(&data_dir.to_lowercase()),
        "the error should mention the lock or the data dir: {:?}",
        out.stderr
    );
    // The second process never listened.
    assert!(
        std::net::TcpStream::connect(&listen).is_err(),
        "the refused broker is listening"
    );

    // The first broker is unaffected.
    sluice_e2e::assert_serving(&bs, "first");
}

#[test]
fn port_in_use_is_a_one_line_error() {
    let busy = TcpListener::bind("127.0.0.1:0").expect("bind");
    let listen = busy.local_addr().expect("addr").to_string();
    let dir = tempfile::tempdir().expect("tempdir");
    let data_dir = dir.path().join("data").display().to_string();
    let out = run_sluice(
        &[
            "serve",
            "--listen",
            &listen,
            "--data-dir",
            &data_dir,
            "--group-initial-rebalance-delay-ms",
            "0",
        ],
        Duration::from_secs(10),
    );
    assert_one_line_error(&out, "port in use");
    drop(busy);
}

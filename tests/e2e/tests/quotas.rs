//! Client quotas end to end: AlterClientQuotas and DescribeClientQuotas through the CLI,
//! a throttled producer held to its byte rate while another user is not, KIP-219's
//! respond-then-mute on the wire, and a user held to its request time (KIP-124).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::time::{Duration, Instant};

use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{ApiVersionsRequest, MetadataRequest, ProduceRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use rdkafka::producer::{BaseRecord, Producer};
use sluice_e2e::raw::{BatchBuilder, RawConn};
use sluice_e2e::*;

fn sluice_ok(args: &[&str]) -> String {
    let out = run_sluice(args, CALL_TIMEOUT);
    assert_eq!(
        out.status.map(|s| s.success()),
        Some(true),
        "sluice {args:?}: {}",
        out.stderr
    );
    out.stdout
}

#[test]
fn quotas_round_trip_through_alter_and_describe() {
    let b = Broker::start();
    let brokers = b.bootstrap();
    let with = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend(["--brokers", &brokers]);
        sluice_ok(&all)
    };
    with(&[
        "quota",
        "alter",
        "--user",
        "alice",
        "--producer-byte-rate",
        "1048576",
    ]);
    with(&[
        "quota",
        "alter",
        "--user",
        "alice",
        "--client-id",
        "app",
        "--consumer-byte-rate",
        "2048",
    ]);
    with(&[
        "quota",
        "alter",
        "--user-default",
        "--producer-byte-rate",
        "4096",
        "--request-percentage",
        "12.5",
    ]);
    with(&[
        "quota",
        "alter",
        "--client-default",
        "--consumer-byte-rate",
        "8192",
    ]);
    assert_eq!(
        with(&["quota", "describe"]).lines().collect::<Vec<_>>(),
        [
            "ENTITY                    QUOTAS",
            "client-id=<default>       consumer_byte_rate=8192",
            "client-id=app,user=alice  consumer_byte_rate=2048",
            "user=<default>            producer_byte_rate=4096, request_percentage=12.5",
            "user=alice                producer_byte_rate=1048576",
        ]
    );
    // An exact user matches the entities that name it; the default only the default's.
    assert_eq!(
        with(&["quota", "describe", "--user", "alice"])
            .lines()
            .skip(1)
            .collect::<Vec<_>>(),
        [
            "client-id=app,user=alice  consumer_byte_rate=2048",
            "user=alice                producer_byte_rate=1048576",
        ]
    );
    assert_eq!(
        with(&["quota", "describe", "--user-default"])
            .lines()
            .skip(1)
            .collect::<Vec<_>>(),
        ["user=<default>  producer_byte_rate=4096, request_percentage=12.5"]
    );
    with(&[
        "quota",
        "alter",
        "--user-default",
        "--delete",
        "request_percentage",
    ]);
    assert_eq!(
        with(&["quota", "describe", "--user-default"])
            .lines()
            .skip(1)
            .collect::<Vec<_>>(),
        ["user=<default>  producer_byte_rate=4096"]
    );
    // Kafka's checks: a whole number for byte rates, a known key.
    let out = run_sluice(
        &[
            "quota",
            "alter",
            "--user",
            "x",
            "--delete",
            "bogus_rate",
            "--brokers",
            &brokers,
        ],
        CALL_TIMEOUT,
    );
    assert_eq!(
        out.status.map(|s| s.success()),
        Some(true),
        "removing an unknown key is a no-op"
    );
}

/// Produces `total` bytes in 16 KiB records with `settings`; returns how long it took and
/// how many deliveries failed.
fn produce_for(
    bootstrap: &str,
    settings: &[(&str, &str)],
    topic: &str,
    total: usize,
) -> (Duration, usize) {
    let p = producer(bootstrap, settings);
    let value = vec![b'x'; 16 * 1024];
    let count = total / value.len();
    let started = Instant::now();
    for i in 0..count {
        loop {
            match p.send(
                BaseRecord::with_opaque_to(topic, i)
                    .key("k")
                    .payload(&value),
            ) {
                Ok(()) => break,
                Err((
                    rdkafka::error::KafkaError::MessageProduction(
                        rdkafka::types::RDKafkaErrorCode::QueueFull,
                    ),
                    _,
                )) => std::thread::sleep(Duration::from_millis(5)),
                Err((e, _)) => panic!("enqueue: {e}"),
            }
        }
    }
    p.flush(Duration::from_secs(60)).expect("flush");
    let elapsed = started.elapsed();
    let failed = p
        .context()
        .deliveries()
        .iter()
        .filter(|d| d.result.is_err())
        .count();
    assert_eq!(p.context().deliveries().len(), count);
    (elapsed, failed)
}

#[test]
fn a_producer_is_held_to_its_byte_rate_while_another_user_is_not() {
    let sasl = free_port();
    let http = free_port();
    let b = Broker::start_with_port(move |port| {
        [
            "--listeners",
            &format!("PLAINTEXT://127.0.0.1:{port},SASL_PLAINTEXT://127.0.0.1:{sasl}"),
            "--bootstrap-user",
            "alice:alice-secret",
            // Kafka's default window (11 × 1 s) lets a new client burst 10 s worth before it
            // is throttled; a short window makes 10 MiB show the rate itself.
            "--quota-window-num",
            "2",
            "--http-listen",
            &format!("127.0.0.1:{http}"),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    });
    let plain = b.bootstrap();
    sluice_ok(&[
        "user",
        "create",
        "carol",
        "--password",
        "carol-secret",
        "--brokers",
        &plain,
    ]);
    sluice_ok(&[
        "quota",
        "alter",
        "--user",
        "alice",
        "--producer-byte-rate",
        "1048576",
        "--brokers",
        &plain,
    ]);
    create_topic(&plain, "quota", 1, &[]);
    let as_user = |user: &str, password: &str| -> Vec<(String, String)> {
        vec![
            ("security.protocol".into(), "sasl_plaintext".into()),
            ("sasl.mechanisms".into(), "SCRAM-SHA-256".into()),
            ("sasl.username".into(), user.into()),
            ("sasl.password".into(), password.into()),
            ("message.timeout.ms".into(), "60000".into()),
            ("linger.ms".into(), "20".into()),
            // Requests of 64 KiB: each is throttled a little, none for more than a window.
            ("batch.size".into(), "65536".into()),
        ]
    };
    let alice = as_user("alice", "alice-secret");
    let carol = as_user("carol", "carol-secret");
    let bootstrap = format!("127.0.0.1:{sasl}");
    let refs = |v: &[(String, String)]| -> Vec<(String, String)> { v.to_vec() };
    let (alice, carol) = (refs(&alice), refs(&carol));
    let bootstrap2 = bootstrap.clone();
    let slow = std::thread::spawn(move || {
        let settings: Vec<(&str, &str)> = alice
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        produce_for(&bootstrap2, &settings, "quota", 10 << 20)
    });
    let settings: Vec<(&str, &str)> = carol
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let (fast_time, fast_failed) = produce_for(&bootstrap, &settings, "quota", 10 << 20);
    let (slow_time, slow_failed) = slow.join().unwrap();
    eprintln!("10 MiB: throttled user {slow_time:?}, user without a quota {fast_time:?}");
    assert_eq!((slow_failed, fast_failed), (0, 0));
    assert!(
        (Duration::from_secs(8)..=Duration::from_secs(14)).contains(&slow_time),
        "10 MiB at 1 MiB/s took {slow_time:?}"
    );
    assert!(
        fast_time * 5 <= slow_time,
        "the user without a quota took {fast_time:?}, the throttled one {slow_time:?}"
    );
    let metrics = http_get(http, "/metrics");
    let throttled: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("sluice_throttled_responses_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    assert!(throttled > 0, "no throttled response counted:\n{metrics}");
}

fn http_get(port: u16, path: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").unwrap();
    let mut body = String::new();
    s.read_to_string(&mut body).unwrap();
    body
}

#[test]
fn a_throttled_response_comes_at_once_and_the_connection_is_muted_after_it() {
    let b = Broker::start_with(&["--quota-window-num", "2"]);
    let brokers = b.bootstrap();
    sluice_ok(&[
        "quota",
        "alter",
        "--client-id",
        "sluice-e2e-raw",
        "--producer-byte-rate",
        "20480",
        "--brokers",
        &brokers,
    ]);
    create_topic(&brokers, "muted", 1, &[]);
    let mut conn = RawConn::connect(b.addr());
    let value = vec![b'v'; 64 * 1024];
    let batch = BatchBuilder::new(1_700_000_000_000)
        .record(None, Some(&value))
        .build();
    let request = ProduceRequest::default()
        .with_acks(1)
        .with_timeout_ms(5000)
        .with_topic_data(vec![
            TopicProduceData::default()
                .with_name(TopicName(StrBytes::from_static_str("muted")))
                .with_partition_data(vec![
                    PartitionProduceData::default()
                        .with_index(0)
                        .with_records(Some(batch)),
                ]),
        ]);
    let sent = Instant::now();
    let response = conn.roundtrip(9, 1, &request);
    let answered = sent.elapsed();
    let partition = &response.responses[0].partition_responses[0];
    assert_eq!(partition.error_code, 0);
    // ~64 KiB over a 1 s window against 20 KiB/s: (3.2 - 1) / 1 × 1 s.
    let throttle = response.throttle_time_ms;
    assert!(
        (1800..=2600).contains(&throttle),
        "throttle_time_ms {throttle}"
    );
    assert!(
        answered < Duration::from_millis(i64::from(throttle).unsigned_abs() / 2),
        "the response waited {answered:?}"
    );
    // Another connection is served while this one is muted...
    let mut other = RawConn::connect(b.addr());
    let quick = Instant::now();
    assert_eq!(
        other
            .roundtrip(3, 2, &ApiVersionsRequest::default())
            .error_code,
        0
    );
    let other_took = quick.elapsed();
    assert!(
        other_took < Duration::from_millis(u64::try_from(throttle).unwrap() / 2),
        "another connection waited {other_took:?}"
    );
    // ...and the next request on this one waits out the throttle time.
    let versions = conn.roundtrip(3, 3, &ApiVersionsRequest::default());
    assert_eq!(versions.error_code, 0);
    let since_request = sent.elapsed();
    assert!(
        since_request >= Duration::from_millis(u64::try_from(throttle).unwrap()),
        "answered {since_request:?} after the throttled request though throttled for {throttle} ms"
    );
}

/// One Metadata request for every topic; asserts it succeeded for each of the `topics`
/// and returns its throttle time.
fn metadata_throttle(conn: &mut RawConn, correlation_id: i32, topics: usize) -> i32 {
    let r = conn.roundtrip(
        12,
        correlation_id,
        &MetadataRequest::default().with_topics(None),
    );
    assert_eq!(r.topics.len(), topics);
    assert!(r.topics.iter().all(|t| t.error_code == 0));
    r.throttle_time_ms
}

#[test]
fn a_user_over_its_request_percentage_is_throttled_while_another_is_not() {
    let sasl = free_port();
    let b = Broker::start_with_port(move |port| {
        [
            "--listeners",
            &format!("PLAINTEXT://127.0.0.1:{port},SASL_PLAINTEXT://127.0.0.1:{sasl}"),
            "--sasl-mechanisms",
            "PLAIN",
            "--bootstrap-user",
            "alice:alice-secret",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    });
    let plain = b.bootstrap();
    sluice_ok(&[
        "user",
        "create",
        "carol",
        "--password",
        "carol-secret",
        "--brokers",
        &plain,
    ]);
    // 0.01 % of a thread: 1 ms of handling in the first 10 s (11 windows of 1 s) is over it.
    sluice_ok(&[
        "quota",
        "alter",
        "--user",
        "alice",
        "--request-percentage",
        "0.01",
        "--brokers",
        &plain,
    ]);
    for topic in ["rq-a", "rq-b", "rq-c"] {
        create_topic(&plain, topic, 4, &[]);
    }
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], sasl));

    // Carol has no quota: hundreds of requests, none throttled.
    let mut carol = RawConn::plain_login(addr, "carol", "carol-secret");
    for id in 10..310 {
        assert_eq!(
            metadata_throttle(&mut carol, id, 3),
            0,
            "carol request {id}"
        );
    }

    // Alice is throttled once her requests have kept the broker busy for more than 1 ms,
    // for at most one quota window (Kafka bounds request time throttles so).
    let mut alice = RawConn::plain_login(addr, "alice", "alice-secret");
    let (sent, throttle) = (10..3010)
        .find_map(|id| {
            let sent = Instant::now();
            let throttle = metadata_throttle(&mut alice, id, 3);
            (throttle > 0).then_some((sent, throttle))
        })
        .expect("alice's requests were never throttled");
    assert!(
        (1..=1000).contains(&throttle),
        "throttle_time_ms {throttle}"
    );
    // Respond, then mute: her next request is answered no sooner than the throttle time
    // after the throttled one was sent.
    metadata_throttle(&mut alice, 4000, 3);
    let waited = sent.elapsed();
    assert!(
        waited >= Duration::from_millis(u64::try_from(throttle).unwrap()),
        "answered {waited:?} after the throttled request though throttled for {throttle} ms"
    );
    // Carol is still served without a throttle.
    assert_eq!(metadata_throttle(&mut carol, 400, 3), 0);
}

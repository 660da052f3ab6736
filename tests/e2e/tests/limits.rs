//! Resource limits a hostile or careless client must not get past: partitions per request
//! and per broker, auto-creation through Metadata, the open-files limit, connections
//! (`max.connections`, `max.connections.per.ip`, `connections.max.idle.ms`).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::time::{Duration, Instant};

use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiVersionsRequest, CreatePartitionsRequest, CreateTopicsRequest, MetadataRequest,
    ProduceRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, Producer};
use sluice_e2e::raw::{BatchBuilder, RawConn};
use sluice_e2e::{Broker, assert_serving, consume_all, producer, wait_high_watermarks};

const POLICY_VIOLATION: i16 = 44;
const KAFKA_STORAGE_ERROR: i16 = 56;

fn name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

fn creatable(topic: &str, partitions: i32) -> CreatableTopic {
    CreatableTopic::default()
        .with_name(name(topic))
        .with_num_partitions(partitions)
        .with_replication_factor(1)
}

fn create_topics(
    c: &mut RawConn,
    corr: i32,
    topics: Vec<CreatableTopic>,
) -> Vec<(String, i16, Option<String>)> {
    let req = CreateTopicsRequest::default()
        .with_timeout_ms(30_000)
        .with_topics(topics);
    c.roundtrip(7, corr, &req)
        .topics
        .into_iter()
        .map(|t| {
            (
                t.name.0.to_string(),
                t.error_code,
                t.error_message.map(|m| m.to_string()),
            )
        })
        .collect()
}

/// Names in the data directory that start with `prefix`.
fn dirs_named(broker: &Broker, prefix: &str) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(broker.data_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(prefix))
        .collect();
    names.sort();
    names
}

fn open_fds(broker: &Broker) -> usize {
    std::fs::read_dir(format!("/proc/{}/fd", broker.pid()))
        .unwrap()
        .count()
}

#[test]
fn a_request_for_more_than_ten_thousand_partitions_is_refused_whole() {
    let broker = Broker::start();
    let mut c = RawConn::connect(broker.addr());
    let got = create_topics(&mut c, 1, vec![creatable("huge", 10_001)]);
    let message = Some("Excessively large number of partitions per request.".to_string());
    assert_eq!(
        got,
        vec![("huge".into(), POLICY_VIOLATION, message.clone())]
    );
    // Counted over the request: two topics that fit alone are refused together.
    let got = create_topics(
        &mut c,
        2,
        vec![creatable("part-a", 6_000), creatable("part-b", 4_001)],
    );
    assert_eq!(
        got,
        vec![
            ("part-a".into(), POLICY_VIOLATION, message.clone()),
            ("part-b".into(), POLICY_VIOLATION, message.clone()),
        ]
    );
    assert!(dirs_named(&broker, "huge").is_empty());
    assert!(dirs_named(&broker, "part-").is_empty());

    // CreatePartitions is bounded the same way.
    assert_eq!(
        create_topics(&mut c, 3, vec![creatable("grows", 1)])[0].1,
        0
    );
    let req = CreatePartitionsRequest::default()
        .with_timeout_ms(30_000)
        .with_topics(vec![
            CreatePartitionsTopic::default()
                .with_name(name("grows"))
                .with_count(10_002),
        ]);
    let resp = c.roundtrip(3, 4, &req);
    assert_eq!(resp.results.len(), 1);
    assert_eq!(resp.results[0].error_code, POLICY_VIOLATION);
    assert_eq!(dirs_named(&broker, "grows-"), vec!["grows-0".to_string()]);
    assert_serving(&broker.bootstrap(), "still-fine");
}

#[test]
fn the_broker_partition_limit_is_checked_before_anything_is_created() {
    let broker = Broker::start_with(&["--max-broker-partitions", "100"]);
    let mut c = RawConn::connect(broker.addr());
    assert_eq!(
        create_topics(&mut c, 1, vec![creatable("sixty", 60)])[0].1,
        0
    );
    let got = create_topics(&mut c, 2, vec![creatable("fifty", 50)]);
    assert_eq!(got[0].1, POLICY_VIOLATION, "{got:?}");
    let message = got[0].2.clone().unwrap();
    assert!(
        message.contains("110 partitions") && message.contains("max.broker.partitions (100)"),
        "{message}"
    );
    assert!(dirs_named(&broker, "fifty").is_empty());
    // Exactly up to the limit is fine; one more partition is not.
    assert_eq!(
        create_topics(&mut c, 3, vec![creatable("forty", 40)])[0].1,
        0
    );
    let req = CreatePartitionsRequest::default()
        .with_timeout_ms(30_000)
        .with_topics(vec![
            CreatePartitionsTopic::default()
                .with_name(name("forty"))
                .with_count(41),
        ]);
    assert_eq!(
        c.roundtrip(3, 4, &req).results[0].error_code,
        POLICY_VIOLATION
    );
    assert_eq!(dirs_named(&broker, "forty-").len(), 40);
}

/// A Metadata request naming 20,000 unknown topics creates none of them (Kafka's
/// controller refuses such a batch whole); one naming a few creates those.
#[test]
fn metadata_auto_creation_is_bounded_per_request() {
    let broker = Broker::start();
    let mut c = RawConn::connect(broker.addr());
    let many: Vec<MetadataRequestTopic> = (0..20_000)
        .map(|i| MetadataRequestTopic::default().with_name(Some(name(&format!("flood-{i}")))))
        .collect();
    // Metadata v1 auto-creates (allow_auto_topic_creation exists from v4).
    let req = MetadataRequest::default().with_topics(Some(many));
    let started = Instant::now();
    let resp = c.roundtrip(1, 1, &req);
    assert!(started.elapsed() < Duration::from_secs(20));
    assert_eq!(resp.topics.len(), 20_000);
    assert!(resp.topics.iter().all(|t| t.error_code == POLICY_VIOLATION));
    assert!(dirs_named(&broker, "flood-").is_empty());

    let few: Vec<MetadataRequestTopic> = (0..3)
        .map(|i| MetadataRequestTopic::default().with_name(Some(name(&format!("few-{i}")))))
        .collect();
    let resp = c.roundtrip(1, 2, &MetadataRequest::default().with_topics(Some(few)));
    assert!(
        resp.topics.iter().all(|t| t.error_code == 0),
        "{:?}",
        resp.topics
    );
    assert_eq!(
        dirs_named(&broker, "few-"),
        vec!["few-0-0", "few-1-0", "few-2-0"]
    );
}

/// A broker allowed only 300 open files holds, writes, reads and restarts with 600
/// partitions: idle segment files are closed and reopened, so partitions are not bound by
/// the open-files limit, and the process never holds more descriptors than it may.
#[test]
fn more_partitions_than_the_open_files_limit_are_served() {
    const LIMIT: u64 = 300;
    const PARTITIONS: i32 = 600;
    let mut broker = Broker::start_with_open_files_limit(LIMIT, &[]);
    assert!(
        broker.log().contains("open files: limit 300;"),
        "{}",
        broker.log()
    );
    let bs = broker.bootstrap();
    let mut c = RawConn::connect(broker.addr());
    assert_eq!(
        create_topics(&mut c, 1, vec![creatable("wide", PARTITIONS)])[0].1,
        0
    );
    assert!(open_fds(&broker) as u64 <= LIMIT);

    let p = producer(&bs, &[("linger.ms", "5")]);
    for i in 0..PARTITIONS {
        let key = format!("key-{i}");
        let value = format!("value-{i}");
        p.send(
            BaseRecord::with_opaque_to("wide", i as usize)
                .partition(i)
                .key(&key)
                .payload(&value),
        )
        .map_err(|(e, _)| e)
        .unwrap();
    }
    assert!(
        p.context()
            .wait_acked(PARTITIONS as usize, Duration::from_secs(60))
    );
    assert!(open_fds(&broker) as u64 <= LIMIT);
    wait_high_watermarks(
        &bs,
        "wide",
        PARTITIONS,
        i64::from(PARTITIONS),
        Duration::from_secs(60),
    );

    broker.restart();
    let records = consume_all(
        &broker.bootstrap(),
        "wide",
        PARTITIONS,
        Duration::from_secs(60),
    );
    let got: Vec<(i32, Vec<String>)> = records
        .iter()
        .map(|(p, msgs)| {
            let values = msgs
                .iter()
                .map(|m| String::from_utf8(m.payload().unwrap().to_vec()).unwrap())
                .collect();
            (*p, values)
        })
        .collect();
    let want: Vec<(i32, Vec<String>)> = (0..PARTITIONS)
        .map(|i| (i, vec![format!("value-{i}")]))
        .collect();
    assert_eq!(got, want);
    assert!(open_fds(&broker) as u64 <= LIMIT);
}

/// When a partition cannot be created, the ones created before it are removed again,
/// the failure is logged with the file and errno, and the topic does not exist.
#[test]
fn a_failed_create_leaves_no_partition_behind() {
    let broker = Broker::start();
    // A plain file where partition 5's directory would go makes that partition fail.
    std::fs::write(broker.data_dir().join("blocked-5"), b"in the way").unwrap();
    let mut c = RawConn::connect(broker.addr());
    let got = create_topics(&mut c, 1, vec![creatable("blocked", 10)]);
    assert_eq!(got[0].1, KAFKA_STORAGE_ERROR, "{got:?}");
    assert_eq!(
        dirs_named(&broker, "blocked"),
        vec!["blocked-5".to_string()]
    );
    let log = broker.log();
    assert!(
        log.contains("ERROR") && log.contains("blocked-5") && log.contains("os error"),
        "{log}"
    );
    // The name is free: once the obstacle is gone the topic can be created.
    std::fs::remove_file(broker.data_dir().join("blocked-5")).unwrap();
    assert_eq!(
        create_topics(&mut c, 2, vec![creatable("blocked", 10)])[0].1,
        0
    );
    assert_eq!(dirs_named(&broker, "blocked").len(), 10);
}

fn api_versions_answered(c: &mut RawConn, corr: i32) {
    let resp = c.roundtrip(3, corr, &ApiVersionsRequest::default());
    assert_eq!(resp.error_code, 0);
}

/// A connection the broker admitted and answers. Retries while the broker still counts
/// an earlier connection that is closing (the harness's own start-up probe among them).
fn admitted(broker: &Broker) -> RawConn {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut c = RawConn::connect(broker.addr());
        c.send_request(3, 1, &ApiVersionsRequest::default());
        if let Ok(Some(_)) = c.read_frame() {
            return c;
        }
        assert!(Instant::now() < deadline, "no connection admitted");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn connections_over_the_per_address_limit_are_closed() {
    let broker = Broker::start_with(&["--max-connections-per-ip", "2"]);
    let a = admitted(&broker);
    let mut b = admitted(&broker);
    let mut third = RawConn::connect(broker.addr());
    third.expect_closed("a third connection from 127.0.0.1");
    api_versions_answered(&mut b, 2);
    drop(a);
    // The freed place is taken by the next connection.
    let _next = admitted(&broker);
    assert!(broker.log().contains("max-connections-per-ip"));
}

#[test]
fn at_max_connections_new_clients_wait_until_one_closes() {
    let broker = Broker::start_with(&["--max-connections", "2"]);
    let a = admitted(&broker);
    let _b = admitted(&broker);
    let mut waiting = RawConn::connect(broker.addr());
    waiting.send_request(3, 7, &ApiVersionsRequest::default());
    waiting
        .stream
        .set_read_timeout(Some(Duration::from_millis(1500)))
        .unwrap();
    let early = waiting.read_frame();
    assert!(
        matches!(&early, Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut)),
        "a client over max-connections was served: {early:?}"
    );
    drop(a);
    waiting
        .stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let resp = waiting.read_response::<ApiVersionsRequest>(3, 7);
    assert_eq!(resp.error_code, 0);
    assert!(broker.log().contains("connection limit reached"));
}

#[test]
fn idle_connections_are_closed_and_busy_ones_kept() {
    let broker = Broker::start_with(&["--connections-max-idle-ms", "1000"]);
    let mut idle = RawConn::connect(broker.addr());
    let mut busy = RawConn::connect(broker.addr());
    api_versions_answered(&mut idle, 1);
    let started = Instant::now();
    let mut corr = 1;
    while started.elapsed() < Duration::from_millis(2500) {
        corr += 1;
        api_versions_answered(&mut busy, corr);
        std::thread::sleep(Duration::from_millis(200));
    }
    idle.expect_closed("a connection idle past connections.max.idle.ms");
    api_versions_answered(&mut busy, corr + 1);
}

/// A produce that fails in storage reaches the client as KAFKA_STORAGE_ERROR and the
/// broker's log as an ERROR naming the file and the OS error. Under a small open-files
/// limit the idle partitions' segment files are closed; one whose file has been replaced
/// by a directory then fails to reopen (EISDIR), as a vanished disk or EMFILE would.
#[test]
fn storage_errors_on_produce_are_logged_with_file_and_errno() {
    let broker = Broker::start_with_open_files_limit(300, &[]);
    let mut c = RawConn::connect(broker.addr());
    assert_eq!(
        create_topics(&mut c, 1, vec![creatable("spread", 200)])[0].1,
        0
    );
    let segment = broker
        .data_dir()
        .join("spread-7")
        .join("00000000000000000000.log");
    std::fs::remove_file(&segment).unwrap();
    std::fs::create_dir(&segment).unwrap();
    let batch = BatchBuilder::new(1_700_000_000_000)
        .record(Some(b"k"), Some(b"v"))
        .build();
    let req = ProduceRequest::default()
        .with_acks(1)
        .with_timeout_ms(10_000)
        .with_topic_data(vec![
            TopicProduceData::default()
                .with_name(name("spread"))
                .with_partition_data(vec![
                    PartitionProduceData::default()
                        .with_index(7)
                        .with_records(Some(batch)),
                ]),
        ]);
    let resp = c.roundtrip(8, 2, &req);
    let p = &resp.responses[0].partition_responses[0];
    assert_eq!(p.error_code, KAFKA_STORAGE_ERROR);
    let log = broker.log();
    let line = log
        .lines()
        .find(|l| l.contains("ERROR") && l.contains("KAFKA_STORAGE_ERROR"))
        .unwrap_or_else(|| panic!("no ERROR line for the storage error:\n{log}"));
    assert!(
        line.contains("spread-7/00000000000000000000.log") && line.contains("os error 21"),
        "{line}"
    );
}

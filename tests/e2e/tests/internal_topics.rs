//! `__consumer_offsets` and `__transaction_state` belong to the coordinators: clients cannot
//! append to them with any Produce version, a damaged record in them is skipped (with an
//! ERROR naming partition and offset) instead of keeping the broker from starting, and
//! CreateTopics and auto-creation treat internal names and names that collide after
//! `.` ↔ `_` as Kafka does.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use bytes::{Buf, BufMut, Bytes};
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    CreateTopicsRequest, FindCoordinatorRequest, GroupId, InitProducerIdRequest, MetadataRequest,
    MetadataResponse, OffsetCommitRequest, OffsetFetchRequest, ProduceRequest, ProduceResponse,
    TopicName, TransactionalId,
};
use kafka_protocol::protocol::StrBytes;
use sluice_e2e::Broker;
use sluice_e2e::raw::{BatchBuilder, RawConn, frame, header_v1};
use sluice_protocol::legacy::message_set::write_message;

const INVALID_TOPIC_EXCEPTION: i16 = 17;
const TOPIC_ALREADY_EXISTS: i16 = 36;
const INVALID_REQUEST: i16 = 42;
const COORDINATOR_NOT_AVAILABLE: i16 = 15;
const OFFSETS: &str = "__consumer_offsets";
const TXN_STATE: &str = "__transaction_state";

fn name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

/// A broker whose internal topics have one partition each (so a test knows which one
/// a group or transactional id lands in).
fn broker() -> Broker {
    Broker::start_with(&[
        "--offsets-topic-partitions",
        "1",
        "--transaction-state-partitions",
        "1",
    ])
}

/// Correlation ids for one connection.
struct Conn {
    raw: RawConn,
    next: i32,
}

impl Conn {
    fn new(broker: &Broker) -> Conn {
        Conn {
            raw: RawConn::connect(broker.addr()),
            next: 0,
        }
    }

    fn corr(&mut self) -> i32 {
        self.next += 1;
        self.next
    }

    fn roundtrip<R: kafka_protocol::protocol::Request>(
        &mut self,
        version: i16,
        req: &R,
    ) -> R::Response {
        let corr = self.corr();
        self.raw.roundtrip(version, corr, req)
    }

    /// FindCoordinator until this broker coordinates `key` (which creates the internal
    /// topic of its kind: 0 groups, 1 transactions).
    fn find_coordinator(&mut self, key: &str, key_type: i8) {
        let started = Instant::now();
        loop {
            let req = FindCoordinatorRequest::default()
                .with_key(StrBytes::from_string(key.to_string()))
                .with_key_type(key_type);
            let r = self.roundtrip(3, &req);
            if r.error_code == 0 {
                return;
            }
            assert_eq!(r.error_code, COORDINATOR_NOT_AVAILABLE, "{r:?}");
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "no coordinator"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn metadata(&mut self, topics: Option<&[&str]>, auto_create: bool) -> MetadataResponse {
        let req = MetadataRequest::default()
            .with_topics(topics.map(|ts| {
                ts.iter()
                    .map(|t| MetadataRequestTopic::default().with_name(Some(name(t))))
                    .collect()
            }))
            .with_allow_auto_topic_creation(auto_create);
        self.roundtrip(12, &req)
    }

    fn create_topic(&mut self, topic: &str, partitions: i32) -> (i16, Option<String>) {
        let req = CreateTopicsRequest::default()
            .with_timeout_ms(5000)
            .with_topics(vec![
                CreatableTopic::default()
                    .with_name(name(topic))
                    .with_num_partitions(partitions)
                    .with_replication_factor(1),
            ]);
        let r = self.roundtrip(7, &req);
        let t = &r.topics[0];
        assert_eq!(t.name.0.as_str(), topic);
        // (A success carries an empty message here; only refusals are compared.)
        let message = t.error_message.as_ref().filter(|m| !m.is_empty());
        (t.error_code, message.map(|m| m.to_string()))
    }

    /// The next offset of `topic`-`partition` (ListOffsets latest).
    fn end_offset(&mut self, topic: &str, partition: i32) -> i64 {
        use kafka_protocol::messages::ListOffsetsRequest;
        use kafka_protocol::messages::list_offsets_request::{
            ListOffsetsPartition, ListOffsetsTopic,
        };
        let req = ListOffsetsRequest::default()
            .with_replica_id((-1).into())
            .with_topics(vec![
                ListOffsetsTopic::default()
                    .with_name(name(topic))
                    .with_partitions(vec![
                        ListOffsetsPartition::default()
                            .with_partition_index(partition)
                            .with_timestamp(-1),
                    ]),
            ]);
        let r = self.roundtrip(7, &req);
        let p = &r.topics[0].partitions[0];
        assert_eq!(p.error_code, 0, "{p:?}");
        p.offset
    }

    fn commit(&mut self, group: &str, topic: &str, offset: i64) {
        let req = OffsetCommitRequest::default()
            .with_group_id(GroupId(StrBytes::from_string(group.to_string())))
            .with_generation_id_or_member_epoch(-1)
            .with_topics(vec![
                OffsetCommitRequestTopic::default()
                    .with_name(name(topic))
                    .with_partitions(vec![
                        OffsetCommitRequestPartition::default()
                            .with_partition_index(0)
                            .with_committed_offset(offset),
                    ]),
            ]);
        let r = self.roundtrip(8, &req);
        assert_eq!(r.topics[0].partitions[0].error_code, 0, "{r:?}");
    }

    fn committed(&mut self, group: &str, topic: &str) -> i64 {
        let req = OffsetFetchRequest::default()
            .with_group_id(GroupId(StrBytes::from_string(group.to_string())))
            .with_topics(Some(vec![
                OffsetFetchRequestTopic::default()
                    .with_name(name(topic))
                    .with_partition_indexes(vec![0]),
            ]));
        let r = self.roundtrip(7, &req);
        assert_eq!(r.error_code, 0, "{r:?}");
        let p = &r.topics[0].partitions[0];
        assert_eq!(p.error_code, 0, "{r:?}");
        p.committed_offset
    }

    /// InitProducerId for `transactional_id`: (producer id, epoch).
    fn init_producer_id(&mut self, transactional_id: &str) -> (i64, i16) {
        let req = InitProducerIdRequest::default()
            .with_transactional_id(Some(TransactionalId(StrBytes::from_string(
                transactional_id.to_string(),
            ))))
            .with_transaction_timeout_ms(60_000)
            .with_producer_id((-1).into())
            .with_producer_epoch(-1);
        let r = self.roundtrip(3, &req);
        assert_eq!(r.error_code, 0, "{r:?}");
        (r.producer_id.0, r.producer_epoch)
    }
}

/// One Produce of one record to `topic`-0 and `ok-topic`-0 at `version` (v3-13; v13 names
/// topics by id); returns (error code, base offset, error message) per topic, in order.
fn produce_modern(
    conn: &mut Conn,
    version: i16,
    topics: &[(&str, uuid::Uuid)],
) -> Vec<(i16, i64, Option<String>)> {
    let batch = BatchBuilder::new(1_700_000_000_000)
        .record(Some(b"junk"), Some(b"x"))
        .build();
    let topic_data = topics
        .iter()
        .map(|(t, id)| {
            let data = TopicProduceData::default().with_partition_data(vec![
                PartitionProduceData::default()
                    .with_index(0)
                    .with_records(Some(batch.clone())),
            ]);
            if version >= 13 {
                data.with_topic_id(*id)
            } else {
                data.with_name(name(t))
            }
        })
        .collect();
    let req = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(5000)
        .with_topic_data(topic_data);
    let r: ProduceResponse = conn.roundtrip(version, &req);
    assert_eq!(r.responses.len(), topics.len());
    r.responses
        .iter()
        .map(|t| {
            let p = &t.partition_responses[0];
            assert_eq!(p.index, 0);
            (
                p.error_code,
                p.base_offset,
                p.error_message.as_ref().map(|m| m.to_string()),
            )
        })
        .collect()
}

/// One Produce v0-2 (message format v0 for v0-1, v1 for v2) of one message to partition
/// 0 of each topic; returns (error code, base offset) per topic, in order.
fn produce_legacy(conn: &mut Conn, version: i16, topics: &[&str]) -> Vec<(i16, i64)> {
    let magic = if version >= 2 { 1 } else { 0 };
    let mut set = bytes::BytesMut::new();
    write_message(
        &mut set,
        magic,
        0,
        0,
        1_700_000_000_000,
        Some(b"junk"),
        Some(b"x"),
    )
    .unwrap();
    let mut body = header_v1(0, version, conn.corr(), "sluice-e2e-legacy");
    body.put_i16(-1); // acks
    body.put_i32(5000); // timeout
    body.put_i32(topics.len() as i32);
    for t in topics {
        body.put_i16(t.len() as i16);
        body.put_slice(t.as_bytes());
        body.put_i32(1); // partitions
        body.put_i32(0);
        body.put_i32(set.len() as i32);
        body.put_slice(&set);
    }
    conn.raw.send(&frame(&body)).unwrap();
    let mut resp = Bytes::from(conn.raw.read_frame().unwrap().expect("a response"));
    assert_eq!(resp.get_i32(), conn.next, "correlation id");
    assert_eq!(resp.get_i32(), topics.len() as i32);
    let mut out = Vec::new();
    for t in topics {
        let len = resp.get_i16() as usize;
        assert_eq!(&resp.split_to(len)[..], t.as_bytes());
        assert_eq!(resp.get_i32(), 1, "one partition");
        assert_eq!(resp.get_i32(), 0, "partition 0");
        let code = resp.get_i16();
        let base_offset = resp.get_i64();
        if version >= 2 {
            resp.get_i64(); // log append time
        }
        out.push((code, base_offset));
    }
    if version >= 1 {
        assert_eq!(resp.get_i32(), 0, "throttle time");
    }
    assert!(resp.is_empty(), "trailing bytes");
    out
}

/// Every Produce version, legacy v0-2 included, is refused INVALID_TOPIC_EXCEPTION (and no
/// message, as Kafka sends none) for both internal topics, while a normal topic in the
/// same request is written; the internal partitions do not move.
#[test]
fn clients_cannot_append_to_internal_topics() {
    let broker = broker();
    let mut c = Conn::new(&broker);
    c.find_coordinator("g", 0);
    c.find_coordinator("tx", 1);
    assert_eq!(c.create_topic("ok-topic", 1), (0, None));
    let ids: Vec<(String, uuid::Uuid)> = c
        .metadata(Some(&[OFFSETS, TXN_STATE, "ok-topic"]), false)
        .topics
        .iter()
        .map(|t| {
            assert_eq!(t.error_code, 0, "{t:?}");
            (t.name.as_ref().unwrap().to_string(), t.topic_id)
        })
        .collect();
    let id = |n: &str| ids.iter().find(|(t, _)| t == n).unwrap().1;
    let ends_before = (c.end_offset(OFFSETS, 0), c.end_offset(TXN_STATE, 0));

    let mut written = 0i64;
    for version in 0..=2 {
        let got = produce_legacy(&mut c, version, &[OFFSETS, TXN_STATE, "ok-topic"]);
        assert_eq!(
            got,
            vec![
                (INVALID_TOPIC_EXCEPTION, -1),
                (INVALID_TOPIC_EXCEPTION, -1),
                (0, written)
            ],
            "Produce v{version}"
        );
        written += 1;
    }
    for version in 3..=13 {
        let topics = [
            (OFFSETS, id(OFFSETS)),
            (TXN_STATE, id(TXN_STATE)),
            ("ok-topic", id("ok-topic")),
        ];
        let got = produce_modern(&mut c, version, &topics);
        assert_eq!(
            got,
            vec![
                (INVALID_TOPIC_EXCEPTION, -1, None),
                (INVALID_TOPIC_EXCEPTION, -1, None),
                (0, written, None)
            ],
            "Produce v{version}"
        );
        written += 1;
    }
    assert_eq!(
        (c.end_offset(OFFSETS, 0), c.end_offset(TXN_STATE, 0)),
        ends_before,
        "internal partitions unchanged"
    );
    assert_eq!(c.end_offset("ok-topic", 0), written);
    // The coordinators still write their topics.
    c.commit("g", "ok-topic", 3);
    assert_eq!(c.committed("g", "ok-topic"), 3);
}

/// The next offset of the partition whose segment is `log`, read from its batch headers.
fn next_offset_in(log: &Path) -> i64 {
    let data = std::fs::read(log).unwrap();
    let batches = sluice_e2e::raw::parse_batches(&data);
    let last = batches.last().expect("the segment holds a batch");
    last.base_offset + i64::from(last.last_offset_delta) + 1
}

/// Appends a well-formed batch whose record key no coordinator can decode (key version
/// 0x6a75, "ju") to the first segment of `topic`-0 of a stopped broker; returns its offset.
fn plant_undecodable_record(data_dir: &Path, topic: &str) -> i64 {
    let log = data_dir
        .join(format!("{topic}-0"))
        .join("00000000000000000000.log");
    let offset = next_offset_in(&log);
    let batch = BatchBuilder::new(1_700_000_000_000)
        .record(Some(b"junk"), Some(b"x"))
        .build();
    let mut batch = batch.to_vec();
    // The base offset is not covered by the CRC; the broker stamps it on append.
    batch[..8].copy_from_slice(&offset.to_be_bytes());
    let mut f = OpenOptions::new().append(true).open(&log).unwrap();
    f.write_all(&batch).unwrap();
    f.sync_all().unwrap();
    offset
}

/// The broker log has an ERROR line naming the partition and offset of a skipped record.
fn assert_skip_logged(broker: &Broker, partition: &str, offset: i64) {
    let log = broker.log();
    let wanted = [
        "ERROR".to_string(),
        format!("partition={partition}"),
        format!("offset={offset}"),
        "undecodable record".to_string(),
    ];
    assert!(
        log.lines()
            .any(|l| wanted.iter().all(|w| l.contains(w.as_str()))),
        "no ERROR line naming {partition} offset {offset}:\n{log}"
    );
}

/// A record no coordinator can decode, planted in `__consumer_offsets` and
/// `__transaction_state` of a stopped broker (as a client append could before clients
/// were refused), is skipped with an ERROR naming partition and offset: the broker
/// starts, keeps what came before, and loads what is written after it.
#[test]
fn undecodable_coordinator_records_are_skipped_at_start() {
    let mut broker = broker();
    let mut c = Conn::new(&broker);
    assert_eq!(c.create_topic("t", 1), (0, None));
    c.find_coordinator("g", 0);
    c.commit("g", "t", 5);
    c.find_coordinator("tx", 1);
    let (pid, epoch) = c.init_producer_id("tx");
    drop(c);
    assert!(broker.stop().success());

    let offsets_bad = plant_undecodable_record(broker.data_dir(), OFFSETS);
    let txn_bad = plant_undecodable_record(broker.data_dir(), TXN_STATE);
    broker.restart();
    assert_skip_logged(&broker, &format!("{OFFSETS}-0"), offsets_bad);
    assert_skip_logged(&broker, &format!("{TXN_STATE}-0"), txn_bad);
    let mut c = Conn::new(&broker);
    // What came before the bad records is loaded.
    assert_eq!(c.committed("g", "t"), 5);
    assert_eq!(c.init_producer_id("tx"), (pid, epoch + 1));
    // What comes after them is loaded at the next start.
    c.commit("g", "t", 9);
    drop(c);
    assert!(broker.stop().success());
    broker.restart();
    let mut c = Conn::new(&broker);
    assert_eq!(c.committed("g", "t"), 9);
    assert_eq!(c.init_producer_id("tx"), (pid, epoch + 2));
}

/// CreateTopics: an internal name that does not exist yet is created as Kafka does, and is
/// internal (so clients cannot append to it); `__cluster_metadata` is refused; a name that
/// collides with an existing one after '.' ↔ '_' is refused with Kafka's message, by
/// CreateTopics and by auto-creation alike.
#[test]
fn create_topics_for_internal_and_colliding_names() {
    let broker = Broker::start_with(&["--offsets-topic-partitions", "3"]);
    let mut c = Conn::new(&broker);

    assert_eq!(c.create_topic(TXN_STATE, 2), (0, None));
    let md = c.metadata(Some(&[TXN_STATE]), false);
    let t = &md.topics[0];
    assert_eq!(
        (t.error_code, t.is_internal, t.partitions.len()),
        (0, true, 2)
    );
    let got = produce_modern(&mut c, 9, &[(TXN_STATE, t.topic_id)]);
    assert_eq!(got, vec![(INVALID_TOPIC_EXCEPTION, -1, None)]);
    assert_eq!(
        c.create_topic(TXN_STATE, 2),
        (
            TOPIC_ALREADY_EXISTS,
            Some(format!("Topic '{TXN_STATE}' already exists."))
        )
    );
    assert_eq!(
        c.create_topic("__cluster_metadata", 1),
        (
            INVALID_REQUEST,
            Some("Creation of internal topic __cluster_metadata is prohibited.".into())
        )
    );

    // Auto-creating an internal topic gives it the coordinator's partition count.
    let md = c.metadata(Some(&[OFFSETS]), true);
    let t = &md.topics[0];
    assert_eq!(
        (t.error_code, t.is_internal, t.partitions.len()),
        (0, true, 3)
    );

    assert_eq!(c.create_topic("a_b", 1), (0, None));
    assert_eq!(
        c.create_topic("a.b", 1),
        (
            INVALID_TOPIC_EXCEPTION,
            Some("Topic 'a.b' collides with existing topic: a_b".into())
        )
    );
    assert_eq!(
        c.create_topic("a_b", 1),
        (
            TOPIC_ALREADY_EXISTS,
            Some("Topic 'a_b' already exists.".into())
        )
    );
    assert_eq!(c.create_topic("x.y.z", 1), (0, None));
    assert_eq!(
        c.create_topic("x_y.z", 1),
        (
            INVALID_TOPIC_EXCEPTION,
            Some("Topic 'x_y.z' collides with existing topic: x.y.z".into())
        )
    );
    // Auto-creation refuses the same names.
    let md = c.metadata(Some(&["a.b", "x_y_z", "ab"]), true);
    let codes: Vec<(String, i16)> = md
        .topics
        .iter()
        .map(|t| (t.name.as_ref().unwrap().to_string(), t.error_code))
        .collect();
    assert_eq!(
        codes,
        vec![
            ("a.b".to_string(), INVALID_TOPIC_EXCEPTION),
            ("x_y_z".to_string(), INVALID_TOPIC_EXCEPTION),
            ("ab".to_string(), 0),
        ]
    );
    let mut names: Vec<String> = c
        .metadata(None, false)
        .topics
        .iter()
        .map(|t| t.name.as_ref().unwrap().to_string())
        .collect();
    names.sort();
    assert_eq!(names, vec![OFFSETS, TXN_STATE, "a_b", "ab", "x.y.z"]);
}

/// CreateTopics may create `__consumer_offsets` and `__transaction_state` with other partition
/// counts than the broker's settings. Groups and transactional ids then hash over the topics'
/// counts, as Kafka's coordinators do at their next start: every group commits and reads back
/// its offsets, every transactional id gets a producer id, the records land in the partition
/// the key hashes to, and all of it is there again after a restart.
#[test]
fn coordinators_follow_internal_topics_created_with_other_partition_counts() {
    use sluice_protocol::model::coordinator_partition_for;

    const OFFSETS_PARTITIONS: i32 = 3;
    const TXN_PARTITIONS: i32 = 2;
    let mut broker = Broker::start();
    let mut c = Conn::new(&broker);
    assert_eq!(c.create_topic(OFFSETS, OFFSETS_PARTITIONS), (0, None));
    assert_eq!(c.create_topic(TXN_STATE, TXN_PARTITIONS), (0, None));
    assert_eq!(c.create_topic("t", 1), (0, None));
    let groups: Vec<String> = (0..8).map(|i| format!("group-{i}")).collect();
    let ids: Vec<String> = (0..6).map(|i| format!("txn-{i}")).collect();
    for (i, group) in groups.iter().enumerate() {
        c.find_coordinator(group, 0);
        c.commit(group, "t", 100 + i as i64);
    }
    let mut producers = Vec::new();
    for id in &ids {
        c.find_coordinator(id, 1);
        producers.push(c.init_producer_id(id));
    }
    // Each record is in the partition its key hashes to over the topic's count.
    let records_in = |c: &mut Conn, topic: &str, partitions: i32| -> Vec<i64> {
        (0..partitions).map(|p| c.end_offset(topic, p)).collect()
    };
    let mut expected = vec![0i64; OFFSETS_PARTITIONS as usize];
    for group in &groups {
        expected[coordinator_partition_for(group, OFFSETS_PARTITIONS) as usize] += 1;
    }
    assert_eq!(records_in(&mut c, OFFSETS, OFFSETS_PARTITIONS), expected);
    let mut expected = vec![0i64; TXN_PARTITIONS as usize];
    for id in &ids {
        expected[coordinator_partition_for(id, TXN_PARTITIONS) as usize] += 1;
    }
    assert_eq!(records_in(&mut c, TXN_STATE, TXN_PARTITIONS), expected);
    drop(c);

    assert!(broker.stop().success());
    broker.restart();
    let mut c = Conn::new(&broker);
    for (i, group) in groups.iter().enumerate() {
        c.find_coordinator(group, 0);
        assert_eq!(c.committed(group, "t"), 100 + i as i64, "{group}");
    }
    for (id, (pid, epoch)) in ids.iter().zip(producers) {
        c.find_coordinator(id, 1);
        assert_eq!(c.init_producer_id(id), (pid, epoch + 1), "{id}");
    }
}

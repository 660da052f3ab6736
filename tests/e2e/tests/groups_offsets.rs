#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
//! Committed offsets and group administration through librdkafka against a real broker
//! process: offsets and their metadata strings survive a consumer restart, a broker restart
//! and kill -9 of the broker; groups are listed, described and deleted as Kafka does it.
//!
//! The rdkafka crate (0.39) exposes ListGroups + DescribeGroups only through
//! `Consumer::fetch_group_list` and DeleteGroups through `AdminClient::delete_groups`; it has
//! no binding for librdkafka's `ListConsumerGroups`, `DescribeConsumerGroups`,
//! `ListConsumerGroupOffsets`, `AlterConsumerGroupOffsets` or `DeleteConsumerGroupOffsets`,
//! so those admin calls are not exercised here.
//!
//! Every broker runs with `--group-initial-rebalance-delay-ms 0` (the harness passes it).

use std::collections::{BTreeMap, BTreeSet};
use std::thread;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, Producer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::types::RDKafkaErrorCode;
use sluice_e2e::{
    Broker, CALL_TIMEOUT, TestProducer, admin, admin_opts, block_on, client_config, consumer,
    create_topic, producer,
};

const TOPIC: &str = "offsets";
const PARTITIONS: i32 = 3;

fn group_consumer(bootstrap: &str, group: &str, name: &str) -> BaseConsumer {
    let mut c = client_config(bootstrap);
    c.set("group.id", group)
        .set("client.id", name)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "false")
        .set("session.timeout.ms", "6000")
        .set("heartbeat.interval.ms", "100")
        .set("fetch.wait.max.ms", "100")
        .set("partition.assignment.strategy", "range");
    c.create().expect("group consumer")
}

fn produce(p: &TestProducer, topic: &str, per_partition: usize, partitions: i32, tag: &str) {
    let before = p.context().deliveries().len();
    for i in 0..per_partition {
        for part in 0..partitions {
            let v = format!("{tag}-{part}-{i}");
            p.send(
                BaseRecord::<(), String, usize>::with_opaque_to(topic, i)
                    .partition(part)
                    .payload(&v),
            )
            .map_err(|(e, _)| e)
            .expect("enqueue");
        }
    }
    p.flush(Duration::from_secs(20)).expect("flush");
    let d = p.context().deliveries();
    assert_eq!(
        d.len() - before,
        per_partition * usize::try_from(partitions).unwrap()
    );
    for r in &d[before..] {
        assert!(r.result.is_ok(), "delivery {r:?}");
    }
}

/// Polls `c` until it received `n` records (no more are expected); returns
/// partition -> offsets received.
fn receive(c: &BaseConsumer, n: usize, timeout: Duration) -> BTreeMap<i32, Vec<i64>> {
    let mut out: BTreeMap<i32, Vec<i64>> = BTreeMap::new();
    let mut count = 0;
    let deadline = Instant::now() + timeout;
    while count < n {
        assert!(
            Instant::now() < deadline,
            "received {count} of {n} records within {timeout:?}: {out:?}"
        );
        match c.poll(Duration::from_millis(100)) {
            None => {}
            Some(Ok(m)) => {
                out.entry(m.partition()).or_default().push(m.offset());
                count += 1;
            }
            Some(Err(e)) => panic!("poll: {e}"),
        }
    }
    out
}

/// Offsets with metadata strings, one per partition.
fn commit_list(offsets: &[(i32, i64, &str)]) -> TopicPartitionList {
    let mut tpl = TopicPartitionList::new();
    for (p, o, md) in offsets {
        let mut e = tpl.add_partition(TOPIC, *p);
        e.set_offset(Offset::Offset(*o)).expect("offset");
        e.set_metadata(md);
    }
    tpl
}

/// partition -> (offset, metadata) as `committed_offsets` reports them.
fn committed(c: &BaseConsumer) -> BTreeMap<i32, (Offset, String)> {
    let mut tpl = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        tpl.add_partition(TOPIC, p);
    }
    let got = c
        .committed_offsets(tpl, CALL_TIMEOUT)
        .expect("committed_offsets");
    got.elements()
        .iter()
        .map(|e| {
            e.error()
                .unwrap_or_else(|err| panic!("partition {}: {err}", e.partition()));
            (e.partition(), (e.offset(), e.metadata().to_string()))
        })
        .collect()
}

fn expected(offsets: &[(i32, i64, &str)]) -> BTreeMap<i32, (Offset, String)> {
    offsets
        .iter()
        .map(|(p, o, md)| (*p, (Offset::Offset(*o), md.to_string())))
        .collect()
}

fn wait_assigned(c: &BaseConsumer, partitions: i32) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        // Polling serves the rebalance callbacks; nothing is produced meanwhile.
        if let Some(r) = c.poll(Duration::from_millis(50)) {
            panic!(
                "unexpected poll result while joining: {:?}",
                r.map(|m| m.offset())
            );
        }
        let n = c.assignment().expect("assignment").count();
        if n == usize::try_from(partitions).unwrap() {
            return;
        }
        assert!(Instant::now() < deadline, "assigned {n} of {partitions}");
    }
}

#[test]
fn committed_offsets_and_metadata_survive_consumer_restart_broker_restart_and_kill9() {
    const GROUP: &str = "offsets-group";
    let mut broker = Broker::start();
    let bs = broker.bootstrap();
    create_topic(&bs, TOPIC, PARTITIONS, &[]);
    let p = producer(&bs, &[("acks", "all")]);
    produce(&p, TOPIC, 10, PARTITIONS, "first");

    // A group member consumes everything and commits with metadata strings (the longest
    // one is just under Kafka's offset.metadata.max.bytes of 4096).
    let long = "m".repeat(4000);
    let first: [(i32, i64, &str); 3] = [
        (0, 10, "alpha"),
        (1, 7, "ünïcødé ✓ 日本語 🚀"),
        (2, 10, long.as_str()),
    ];
    let c1 = group_consumer(&bs, GROUP, "c1");
    c1.subscribe(&[TOPIC]).expect("subscribe");
    let got = receive(&c1, 30, Duration::from_secs(20));
    for part in 0..PARTITIONS {
        assert_eq!(
            got[&part],
            (0..10).collect::<Vec<i64>>(),
            "partition {part}"
        );
    }
    c1.commit(&commit_list(&first), CommitMode::Sync)
        .expect("commit in the group");
    assert_eq!(committed(&c1), expected(&first), "committed, same consumer");
    drop(c1);

    // Consumer restart: a new consumer of the group reads them back and resumes there.
    let c2 = group_consumer(&bs, GROUP, "c2");
    assert_eq!(committed(&c2), expected(&first), "after a consumer restart");
    c2.subscribe(&[TOPIC]).expect("subscribe");
    produce(&p, TOPIC, 3, PARTITIONS, "second");
    // p0: 10..13, p1: 7..13 (committed at 7), p2: 10..13.
    let got = receive(&c2, 3 + 6 + 3, Duration::from_secs(20));
    assert_eq!(got[&0], vec![10, 11, 12]);
    assert_eq!(got[&1], (7..13).collect::<Vec<i64>>());
    assert_eq!(got[&2], vec![10, 11, 12]);
    let second: [(i32, i64, &str); 3] = [(0, 13, "second-0"), (1, 13, ""), (2, 12, "second-2")];
    c2.commit(&commit_list(&second), CommitMode::Sync)
        .expect("commit in the group");
    drop(c2);

    // Broker restart (SIGTERM): the offsets are loaded back from __consumer_offsets.
    broker.restart();
    let c3 = group_consumer(&bs, GROUP, "c3");
    assert_eq!(committed(&c3), expected(&second), "after a broker restart");

    // A simple commit (no group membership, generation -1), acknowledged, then kill -9.
    let third: [(i32, i64, &str); 3] = [
        (0, 1, "before-kill9-0"),
        (1, 2, "before-kill9-1"),
        (2, 3, "before-kill9-2"),
    ];
    c3.commit(&commit_list(&third), CommitMode::Sync)
        .expect("simple commit");
    assert_eq!(committed(&c3), expected(&third));
    drop(c3);
    broker.kill9();
    broker.restart();
    let c4 = group_consumer(&bs, GROUP, "c4");
    assert_eq!(
        committed(&c4),
        expected(&third),
        "an acknowledged commit survives kill -9"
    );
    // And the group resumes from there.
    c4.subscribe(&[TOPIC]).expect("subscribe");
    let got = receive(&c4, 12 + 11 + 10, Duration::from_secs(20));
    assert_eq!(got[&0], (1..13).collect::<Vec<i64>>());
    assert_eq!(got[&1], (2..13).collect::<Vec<i64>>());
    assert_eq!(got[&2], (3..13).collect::<Vec<i64>>());
}

#[test]
fn oversized_commit_metadata_is_rejected_and_keeps_the_previous_offset() {
    const GROUP: &str = "big-metadata-group";
    let broker = Broker::start();
    let bs = broker.bootstrap();
    create_topic(&bs, TOPIC, PARTITIONS, &[]);
    let c = group_consumer(&bs, GROUP, "big");
    // Nothing committed yet. Fetching first also lets librdkafka find the coordinator: a
    // commit issued before that fails in the client with COORDINATOR_NOT_AVAILABLE.
    let none: BTreeMap<i32, (Offset, String)> = (0..PARTITIONS)
        .map(|p| (p, (Offset::Invalid, String::new())))
        .collect();
    assert_eq!(committed(&c), none, "a new group has no offsets");
    let ok: [(i32, i64, &str); 3] = [(0, 1, "a"), (1, 1, "b"), (2, 1, "c")];
    c.commit(&commit_list(&ok), CommitMode::Sync)
        .expect("commit");
    let big = "x".repeat(4097);
    let err = c
        .commit(&commit_list(&[(0, 5, big.as_str())]), CommitMode::Sync)
        .expect_err("metadata beyond offset.metadata.max.bytes");
    assert_eq!(
        err,
        KafkaError::ConsumerCommit(RDKafkaErrorCode::OffsetMetadataTooLarge),
        "commit with 4097 bytes of metadata"
    );
    assert_eq!(
        committed(&c),
        expected(&ok),
        "the rejected commit changed nothing"
    );
}

/// The first group requests of a fresh broker race with the creation of
/// `__consumer_offsets`: whenever FindCoordinator names this broker as the coordinator, an
/// OffsetCommit sent right after it must succeed (Kafka only answers FindCoordinator once the
/// group's offsets partition is available, and COORDINATOR_NOT_AVAILABLE until then).
#[test]
fn commit_right_after_find_coordinator_succeeds_on_a_fresh_broker() {
    use kafka_protocol::messages::offset_commit_request::{
        OffsetCommitRequestPartition, OffsetCommitRequestTopic,
    };
    use kafka_protocol::messages::{
        FindCoordinatorRequest, GroupId, OffsetCommitRequest, TopicName,
    };
    use kafka_protocol::protocol::StrBytes;
    use sluice_e2e::raw::RawConn;
    use std::sync::{Arc, Barrier};

    const COORDINATOR_NOT_AVAILABLE: i16 = 15;
    const CLIENTS: usize = 4;
    let broker = Broker::start();
    create_topic(&broker.bootstrap(), TOPIC, PARTITIONS, &[]);
    let addr = broker.addr();
    let barrier = Arc::new(Barrier::new(CLIENTS));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|i| {
            let barrier = barrier.clone();
            thread::spawn(move || {
                let group = format!("race-{i}");
                let mut conn = RawConn::connect(addr);
                barrier.wait();
                let started = Instant::now();
                let mut corr = 0;
                // Kafka may answer COORDINATOR_NOT_AVAILABLE while the offsets topic is
                // being created; clients retry FindCoordinator.
                loop {
                    corr += 1;
                    let find = FindCoordinatorRequest::default()
                        .with_key(StrBytes::from_string(group.clone()));
                    let r = conn.roundtrip(3, corr, &find);
                    if r.error_code == 0 {
                        break;
                    }
                    assert_eq!(r.error_code, COORDINATOR_NOT_AVAILABLE, "{group}: {r:?}");
                    assert!(
                        started.elapsed() < Duration::from_secs(10),
                        "{group}: no coordinator"
                    );
                    thread::sleep(Duration::from_millis(10));
                }
                let found = started.elapsed();
                corr += 1;
                let commit = OffsetCommitRequest::default()
                    .with_group_id(GroupId(StrBytes::from_string(group.clone())))
                    .with_generation_id_or_member_epoch(-1)
                    .with_topics(vec![
                        OffsetCommitRequestTopic::default()
                            .with_name(TopicName(StrBytes::from_static_str(TOPIC)))
                            .with_partitions(vec![
                                OffsetCommitRequestPartition::default()
                                    .with_partition_index(0)
                                    .with_committed_offset(1),
                            ]),
                    ]);
                let r = conn.roundtrip(8, corr, &commit);
                (
                    group,
                    found,
                    started.elapsed(),
                    r.topics[0].partitions[0].error_code,
                )
            })
        })
        .collect();
    let results: Vec<(String, Duration, Duration, i16)> =
        clients.into_iter().map(|h| h.join().unwrap()).collect();
    for (group, found, committed, code) in &results {
        assert_eq!(
            *code, 0,
            "{group}: OffsetCommit right after a successful FindCoordinator (found after \
             {found:?}, answered after {committed:?}); all: {results:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Admin: ListGroups / DescribeGroups (fetch_group_list) and DeleteGroups
// ---------------------------------------------------------------------------------------------

/// name -> (state, protocol type, protocol, client ids of the members).
type Groups = BTreeMap<String, (String, String, String, BTreeSet<String>)>;

fn list_groups(bootstrap: &str, group: Option<&str>) -> Groups {
    let c = consumer(bootstrap, &[]);
    let list = c
        .fetch_group_list(group, CALL_TIMEOUT)
        .expect("fetch_group_list");
    list.groups()
        .iter()
        .map(|g| {
            (
                g.name().to_string(),
                (
                    g.state().to_string(),
                    g.protocol_type().to_string(),
                    g.protocol().to_string(),
                    g.members()
                        .iter()
                        .map(|m| m.client_id().to_string())
                        .collect(),
                ),
            )
        })
        .collect()
}

fn entry(
    state: &str,
    ptype: &str,
    protocol: &str,
    members: &[&str],
) -> (String, String, String, BTreeSet<String>) {
    (
        state.to_string(),
        ptype.to_string(),
        protocol.to_string(),
        members.iter().map(|m| m.to_string()).collect(),
    )
}

/// Waits (polling the consumers so they heartbeat) until the broker reports `want`.
fn wait_groups(bootstrap: &str, consumers: &[&BaseConsumer], want: &Groups) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        for c in consumers {
            if let Some(r) = c.poll(Duration::from_millis(10)) {
                panic!("unexpected record or error: {:?}", r.map(|m| m.offset()));
            }
        }
        let got = list_groups(bootstrap, None);
        if &got == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "groups are {got:?}, expected {want:?}"
        );
        thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn groups_are_listed_described_and_deleted_like_kafka() {
    let broker = Broker::start();
    let bs = broker.bootstrap();
    create_topic(&bs, TOPIC, PARTITIONS, &[]);
    let admin = admin(&bs);

    // No group yet; __consumer_offsets is no group.
    assert_eq!(list_groups(&bs, None), Groups::new(), "no groups at start");

    let one = group_consumer(&bs, "admin-one", "member-one");
    one.subscribe(&[TOPIC]).expect("subscribe");
    wait_assigned(&one, PARTITIONS);
    let mut two_cfg = client_config(&bs);
    two_cfg
        .set("group.id", "admin-two")
        .set("client.id", "member-two")
        .set("enable.auto.commit", "false")
        .set("heartbeat.interval.ms", "100")
        .set("partition.assignment.strategy", "roundrobin");
    let two: BaseConsumer = two_cfg.create().expect("consumer two");
    two.subscribe(&[TOPIC]).expect("subscribe");
    wait_assigned(&two, PARTITIONS);
    one.commit(&commit_list(&[(0, 1, "one")]), CommitMode::Sync)
        .expect("commit");

    let mut want = Groups::new();
    want.insert(
        "admin-one".into(),
        entry("Stable", "consumer", "range", &["member-one"]),
    );
    want.insert(
        "admin-two".into(),
        entry("Stable", "consumer", "roundrobin", &["member-two"]),
    );
    wait_groups(&bs, &[&one, &two], &want);
    // Describing one group.
    assert_eq!(
        list_groups(&bs, Some("admin-one")),
        Groups::from([("admin-one".to_string(), want["admin-one"].clone())])
    );

    // DeleteGroups refuses a group with members.
    let res = block_on(admin.delete_groups(&["admin-one"], &admin_opts())).expect("delete_groups");
    assert_eq!(
        res,
        vec![Err((
            "admin-one".to_string(),
            RDKafkaErrorCode::NonEmptyGroup
        ))]
    );
    // ... and a group that does not exist.
    let res =
        block_on(admin.delete_groups(&["no-such-group"], &admin_opts())).expect("delete_groups");
    assert_eq!(
        res,
        vec![Err((
            "no-such-group".to_string(),
            RDKafkaErrorCode::GroupIdNotFound
        ))]
    );

    // The member leaves: the group is Empty (it keeps its protocol type) and keeps offsets.
    drop(one);
    want.insert("admin-one".into(), entry("Empty", "consumer", "", &[]));
    wait_groups(&bs, &[&two], &want);
    let probe = group_consumer(&bs, "admin-one", "probe");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition(TOPIC, 0);
    let c = probe
        .committed_offsets(tpl.clone(), CALL_TIMEOUT)
        .expect("committed");
    assert_eq!(c.elements()[0].offset(), Offset::Offset(1));
    assert_eq!(c.elements()[0].metadata(), "one");

    // Now it can be deleted, with its offsets.
    let res = block_on(admin.delete_groups(&["admin-one"], &admin_opts())).expect("delete_groups");
    assert_eq!(res, vec![Ok("admin-one".to_string())]);
    want.remove("admin-one");
    wait_groups(&bs, &[&two], &want);
    // librdkafka describes a named group only when ListGroups returns it, so a deleted
    // group comes back as an empty list (the raw DescribeGroups answer, state Dead, is not
    // visible through the crate).
    assert_eq!(
        list_groups(&bs, Some("admin-one")),
        Groups::new(),
        "describing a deleted group"
    );
    let c = probe
        .committed_offsets(tpl, CALL_TIMEOUT)
        .expect("committed");
    assert_eq!(
        c.elements()[0].offset(),
        Offset::Invalid,
        "offsets of a deleted group are gone"
    );
    drop(probe);
    drop(two);
}

/// Kafka checks each partition of an OffsetCommit or TxnOffsetCommit against the metadata
/// before the group coordinator: an unknown topic or partition gets UNKNOWN_TOPIC_OR_PARTITION
/// and is not committed, the known ones of the same request are; a request naming only
/// unknown partitions reaches no coordinator, so it creates no group.
#[test]
fn commits_for_unknown_topics_or_partitions_are_refused_per_partition() {
    use kafka_protocol::messages::offset_commit_request::{
        OffsetCommitRequestPartition, OffsetCommitRequestTopic,
    };
    use kafka_protocol::messages::txn_offset_commit_request::{
        TxnOffsetCommitRequestPartition, TxnOffsetCommitRequestTopic,
    };
    use kafka_protocol::messages::{
        FindCoordinatorRequest, GroupId, OffsetCommitRequest, OffsetFetchRequest, ProducerId,
        TopicName, TransactionalId, TxnOffsetCommitRequest,
    };
    use kafka_protocol::protocol::StrBytes;
    use sluice_e2e::raw::RawConn;

    const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
    let broker = Broker::start();
    let bs = broker.bootstrap();
    create_topic(&bs, TOPIC, PARTITIONS, &[]);
    let s = |v: &str| StrBytes::from_string(v.to_string());
    let mut conn = RawConn::connect(broker.addr());
    let find = FindCoordinatorRequest::default().with_key(s("mixed"));
    assert_eq!(conn.roundtrip(3, 1, &find).error_code, 0);

    let commit = |group: &str, topics: &[(&str, &[i32])]| {
        OffsetCommitRequest::default()
            .with_group_id(GroupId(s(group)))
            .with_generation_id_or_member_epoch(-1)
            .with_topics(
                topics
                    .iter()
                    .map(|(name, partitions)| {
                        OffsetCommitRequestTopic::default()
                            .with_name(TopicName(s(name)))
                            .with_partitions(
                                partitions
                                    .iter()
                                    .map(|&p| {
                                        OffsetCommitRequestPartition::default()
                                            .with_partition_index(p)
                                            .with_committed_offset(5)
                                    })
                                    .collect(),
                            )
                    })
                    .collect(),
            )
    };
    let codes =
        |r: &kafka_protocol::messages::OffsetCommitResponse| -> Vec<(String, Vec<(i32, i16)>)> {
            r.topics
                .iter()
                .map(|t| {
                    let ps = t
                        .partitions
                        .iter()
                        .map(|p| (p.partition_index, p.error_code));
                    (t.name.0.to_string(), ps.collect())
                })
                .collect()
        };
    let r = conn.roundtrip(
        8,
        2,
        &commit("mixed", &[("nosuch", &[0, 1]), (TOPIC, &[7, 1, 0])]),
    );
    assert_eq!(
        codes(&r),
        vec![
            (
                "nosuch".to_string(),
                vec![
                    (0, UNKNOWN_TOPIC_OR_PARTITION),
                    (1, UNKNOWN_TOPIC_OR_PARTITION)
                ]
            ),
            (
                TOPIC.to_string(),
                vec![(7, UNKNOWN_TOPIC_OR_PARTITION), (1, 0), (0, 0)]
            ),
        ]
    );
    // The same through an old version (v2, no timestamps, response header v0).
    let r = conn.roundtrip(2, 3, &commit("mixed", &[("nosuch", &[3])]));
    assert_eq!(
        codes(&r),
        vec![("nosuch".to_string(), vec![(3, UNKNOWN_TOPIC_OR_PARTITION)])]
    );

    let fetched = conn.roundtrip(
        5,
        4,
        &OffsetFetchRequest::default()
            .with_group_id(GroupId(s("mixed")))
            .with_topics(None),
    );
    let offsets: Vec<(String, i32, i64)> = fetched
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(|p| (t.name.0.to_string(), p.partition_index, p.committed_offset))
        })
        .collect();
    assert_eq!(
        offsets,
        vec![(TOPIC.to_string(), 0, 5), (TOPIC.to_string(), 1, 5)]
    );

    let r = conn.roundtrip(8, 5, &commit("ghost", &[("nosuch", &[0])]));
    assert_eq!(
        codes(&r),
        vec![("nosuch".to_string(), vec![(0, UNKNOWN_TOPIC_OR_PARTITION)])]
    );
    let groups = list_groups(&bs, None);
    assert!(groups.contains_key("mixed"), "{groups:?}");
    assert!(
        !groups.contains_key("ghost"),
        "a refused commit created a group: {groups:?}"
    );

    // TxnOffsetCommit: the topic check comes first, whatever the transaction's state.
    let txn_commit = TxnOffsetCommitRequest::default()
        .with_transactional_id(TransactionalId(s("no-such-txn")))
        .with_group_id(GroupId(s("ghost")))
        .with_producer_id(ProducerId(4242))
        .with_producer_epoch(0)
        .with_topics(vec![
            TxnOffsetCommitRequestTopic::default()
                .with_name(TopicName(s("nosuch")))
                .with_partitions(vec![
                    TxnOffsetCommitRequestPartition::default()
                        .with_partition_index(2)
                        .with_committed_offset(9),
                ]),
        ]);
    let r = conn.roundtrip(3, 6, &txn_commit);
    let txn_codes: Vec<(String, i32, i16)> = r
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(|p| (t.name.0.to_string(), p.partition_index, p.error_code))
        })
        .collect();
    assert_eq!(
        txn_codes,
        vec![("nosuch".to_string(), 2, UNKNOWN_TOPIC_OR_PARTITION)]
    );
}

/// Deleting a topic drops the groups' committed offsets of its partitions, as Kafka does
/// (`GroupCoordinator.onPartitionsDeleted`): a topic created again under the name starts
/// with no committed offsets instead of inheriting the old incarnation's.
#[test]
fn deleting_a_topic_drops_its_committed_offsets() {
    const GROUP: &str = "deleted-topic-group";
    let broker = Broker::start();
    let bs = broker.bootstrap();
    create_topic(&bs, TOPIC, PARTITIONS, &[]);
    let c = group_consumer(&bs, GROUP, "before");
    let none: BTreeMap<i32, (Offset, String)> = (0..PARTITIONS)
        .map(|p| (p, (Offset::Invalid, String::new())))
        .collect();
    assert_eq!(committed(&c), none);
    let offsets: [(i32, i64, &str); 3] = [(0, 4, "a"), (1, 5, "b"), (2, 6, "c")];
    c.commit(&commit_list(&offsets), CommitMode::Sync)
        .expect("commit");
    assert_eq!(committed(&c), expected(&offsets));

    let deleted = block_on(admin(&bs).delete_topics(&[TOPIC], &admin_opts())).expect("delete");
    assert_eq!(deleted, vec![Ok(TOPIC.to_string())]);
    create_topic(&bs, TOPIC, PARTITIONS, &[]);
    // The tombstones are written after the deletion commits: wait for them.
    let deadline = Instant::now() + Duration::from_secs(10);
    while committed(&c) != none {
        assert!(
            Instant::now() < deadline,
            "offsets of the deleted topic are still committed: {:?}",
            committed(&c)
        );
        thread::sleep(Duration::from_millis(50));
    }
    // And they stay dropped across a restart (the tombstones are in the log).
    let mut broker = broker;
    broker.restart();
    let c = group_consumer(&broker.bootstrap(), GROUP, "after");
    assert_eq!(committed(&c), none);
}

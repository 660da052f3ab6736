//! Transactional offset commits (TxnOffsetCommit) and their completion by
//! transaction markers, live and on replay.

// Tests may unwrap and index: a failure is a test failure.
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]

mod common;

use std::sync::Arc;

use bytes::BytesMut;
use common::*;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopics,
};
use kafka_protocol::messages::txn_offset_commit_request::{
    TxnOffsetCommitRequestPartition, TxnOffsetCommitRequestTopic,
};
use kafka_protocol::messages::{
    DeleteGroupsRequest, GroupId, OffsetFetchRequest, ProducerId, TopicName, TransactionalId,
    TxnOffsetCommitRequest, TxnOffsetCommitResponse,
};
use kafka_protocol::protocol::Encodable;
use sluice_group::records::GroupRecordKey;
use sluice_group::{
    GroupConfig, GroupCoordinator, LogEntry, MemoryGroupLog, MemoryLogEntry, PartitionLoader,
    WriteError,
};
use sluice_protocol::model::{
    LeaderEpoch, ProducerIdAndEpoch, TopicPartition, coordinator_partition_for,
};

const PID: i64 = 4000;
const EPOCH: i16 = 3;
/// `__consumer_offsets` partitions used for `complete_transaction`.
const PARTITIONS: i32 = 50;
const UNSTABLE: i16 = 88;

fn txn_req(
    group: &str,
    producer_id: i64,
    offsets: &[(&str, i32, i64, Option<&str>)],
) -> TxnOffsetCommitRequest {
    let mut topics: Vec<TxnOffsetCommitRequestTopic> = Vec::new();
    for (topic, partition, offset, metadata) in offsets {
        let p = TxnOffsetCommitRequestPartition::default()
            .with_partition_index(*partition)
            .with_committed_offset(*offset)
            .with_committed_leader_epoch(7)
            .with_committed_metadata(metadata.map(s));
        match topics.iter_mut().find(|t| t.name.as_str() == *topic) {
            Some(t) => t.partitions.push(p),
            None => topics.push(
                TxnOffsetCommitRequestTopic::default()
                    .with_name(TopicName(s(topic)))
                    .with_partitions(vec![p]),
            ),
        }
    }
    TxnOffsetCommitRequest::default()
        .with_transactional_id(TransactionalId(s("txn-1")))
        .with_group_id(GroupId(s(group)))
        .with_producer_id(ProducerId(producer_id))
        .with_producer_epoch(EPOCH)
        .with_topics(topics)
}

fn txn_errors(r: &TxnOffsetCommitResponse) -> Vec<i16> {
    r.topics
        .iter()
        .flat_map(|t| t.partitions.iter().map(|p| p.error_code))
        .collect()
}

async fn txn_commit(c: &GroupCoordinator, req: TxnOffsetCommitRequest) -> Vec<i16> {
    txn_errors(&c.txn_offset_commit(req, 3).await)
}

fn producer(pid: i64) -> ProducerIdAndEpoch {
    ProducerIdAndEpoch::new(pid, EPOCH)
}

/// The broker's side of EndTxn: marker in the log, then the coordinator.
async fn end_txn(c: &GroupCoordinator, log: &MemoryGroupLog, group: &str, pid: i64, commit: bool) {
    let partition = coordinator_partition_for(group, PARTITIONS);
    log.write_marker(partition, producer(pid), commit);
    c.complete_transaction(partition, producer(pid), commit)
        .await;
}

async fn offset_of(c: &GroupCoordinator, group: &str, topic: &str, partition: i32) -> i64 {
    fetched(&fetch(c, group, Some(&[(topic, &[partition])])).await)[0].2
}

async fn stable_fetch(
    c: &GroupCoordinator,
    group: &str,
    topics: Option<&[(&str, &[i32])]>,
) -> Vec<(String, i32, i64, i16)> {
    let req = OffsetFetchRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_require_stable(true)
        .with_topics(topics.map(|ts| {
            ts.iter()
                .map(|(t, ps)| {
                    kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic::default()
                        .with_name(TopicName(s(t)))
                        .with_partition_indexes(ps.to_vec())
                })
                .collect()
        }));
    let r = c.offset_fetch(req, 7).await;
    assert_eq!(r.error_code, 0);
    r.topics
        .iter()
        .flat_map(|t| {
            t.partitions.iter().map(move |p| {
                (
                    t.name.as_str().to_owned(),
                    p.partition_index,
                    p.committed_offset,
                    p.error_code,
                )
            })
        })
        .collect()
}

#[tokio::test(start_paused = true)]
async fn committed_transaction_makes_offsets_visible() {
    let (c, log) = coordinator(0);
    assert_eq!(
        txn_commit(
            &c,
            txn_req("g", PID, &[("t", 0, 10, Some("m")), ("t", 1, 11, None)])
        )
        .await,
        vec![0, 0]
    );
    // Written as a transactional batch of the producer.
    let entries = log.entries();
    assert_eq!(entries.len(), 2);
    for e in &entries {
        let MemoryLogEntry::Record {
            partition,
            producer: Some(p),
            record,
        } = e
        else {
            panic!("not a transactional record: {e:?}");
        };
        assert_eq!(
            (*partition, *p),
            (coordinator_partition_for("g", PARTITIONS), producer(PID))
        );
        assert_eq!(GroupRecordKey::decode(&record.key).unwrap().group(), "g");
    }
    // Invisible until the transaction commits.
    assert_eq!(offset_of(&c, "g", "t", 0).await, -1);
    assert!(fetch(&c, "g", None).await.topics.is_empty());
    end_txn(&c, &log, "g", PID, true).await;
    assert_eq!(
        fetched(&fetch(&c, "g", None).await),
        vec![
            ("t".into(), 0, 10, 7, "m".into()),
            ("t".into(), 1, 11, 7, String::new())
        ]
    );
    // Stable now.
    assert_eq!(
        stable_fetch(&c, "g", None).await,
        vec![("t".into(), 0, 10, 0), ("t".into(), 1, 11, 0)]
    );
}

#[tokio::test(start_paused = true)]
async fn aborted_transaction_leaves_committed_offsets() {
    let (c, log) = coordinator(0);
    commit(&c, commit_req("g", "", -1, &[("t", 0, 5, None)])).await;
    assert_eq!(
        txn_commit(&c, txn_req("g", PID, &[("t", 0, 10, None)])).await,
        vec![0]
    );
    assert_eq!(offset_of(&c, "g", "t", 0).await, 5);
    end_txn(&c, &log, "g", PID, false).await;
    assert_eq!(offset_of(&c, "g", "t", 0).await, 5);
    assert_eq!(
        stable_fetch(&c, "g", Some(&[("t", &[0])])).await,
        vec![("t".into(), 0, 5, 0)]
    );
    // A later commit marker of the same producer has nothing left to commit.
    end_txn(&c, &log, "g", PID, true).await;
    assert_eq!(offset_of(&c, "g", "t", 0).await, 5);
}

#[tokio::test(start_paused = true)]
async fn require_stable_reports_pending_transactional_offsets() {
    let (c, log) = coordinator(0);
    commit(
        &c,
        commit_req("g", "", -1, &[("t", 0, 5, None), ("t", 1, 6, None)]),
    )
    .await;
    assert_eq!(
        txn_commit(&c, txn_req("g", PID, &[("t", 0, 10, None)])).await,
        vec![0]
    );
    // Explicit partitions: only the pending one is unstable.
    assert_eq!(
        stable_fetch(&c, "g", Some(&[("t", &[0, 1])])).await,
        vec![("t".into(), 0, -1, UNSTABLE), ("t".into(), 1, 6, 0)]
    );
    // All partitions.
    assert_eq!(
        stable_fetch(&c, "g", None).await,
        vec![("t".into(), 0, -1, UNSTABLE), ("t".into(), 1, 6, 0)]
    );
    // Without require_stable: the last committed offset.
    assert_eq!(offset_of(&c, "g", "t", 0).await, 5);
    // v8+: per partition too, the group itself has no error.
    let req = OffsetFetchRequest::default()
        .with_require_stable(true)
        .with_groups(vec![
            OffsetFetchRequestGroup::default()
                .with_group_id(GroupId(s("g")))
                .with_topics(Some(vec![
                    OffsetFetchRequestTopics::default()
                        .with_name(TopicName(s("t")))
                        .with_partition_indexes(vec![0, 1]),
                ])),
        ]);
    let r = c.offset_fetch(req.clone(), 8).await;
    let group = &r.groups[0];
    assert_eq!(group.error_code, 0);
    let parts: Vec<(i64, i16)> = group.topics[0]
        .partitions
        .iter()
        .map(|p| (p.committed_offset, p.error_code))
        .collect();
    assert_eq!(parts, vec![(-1, UNSTABLE), (6, 0)]);
    end_txn(&c, &log, "g", PID, true).await;
    let r = c.offset_fetch(req, 8).await;
    let parts: Vec<(i64, i16)> = r.groups[0].topics[0]
        .partitions
        .iter()
        .map(|p| (p.committed_offset, p.error_code))
        .collect();
    assert_eq!(parts, vec![(10, 0), (6, 0)]);
}

#[tokio::test(start_paused = true)]
async fn later_plain_commit_wins_over_committed_transaction() {
    let (c, log) = coordinator(0);
    // Transactional offset first, plain commit after: the plain one stays.
    assert_eq!(
        txn_commit(&c, txn_req("g", PID, &[("t", 0, 10, None)])).await,
        vec![0]
    );
    commit(&c, commit_req("g", "", -1, &[("t", 0, 20, None)])).await;
    assert_eq!(offset_of(&c, "g", "t", 0).await, 20);
    end_txn(&c, &log, "g", PID, true).await;
    assert_eq!(offset_of(&c, "g", "t", 0).await, 20);
    // Plain commit first, transactional after: the transaction wins.
    commit(&c, commit_req("g", "", -1, &[("t", 1, 30, None)])).await;
    assert_eq!(
        txn_commit(&c, txn_req("g", PID, &[("t", 1, 3, None)])).await,
        vec![0]
    );
    end_txn(&c, &log, "g", PID, true).await;
    assert_eq!(offset_of(&c, "g", "t", 1).await, 3);

    // Replay reaches the same state.
    let c2 = reloaded(&log);
    assert_eq!(
        fetched(&fetch(&c2, "g", None).await),
        fetched(&fetch(&c, "g", None).await)
    );
}

#[tokio::test(start_paused = true)]
async fn replay_restores_committed_and_drops_aborted_transactions() {
    let (c, log) = coordinator(0);
    assert_eq!(
        txn_commit(&c, txn_req("g", PID, &[("t", 0, 10, None)])).await,
        vec![0]
    );
    end_txn(&c, &log, "g", PID, true).await;
    assert_eq!(
        txn_commit(&c, txn_req("g", PID, &[("t", 0, 99, None)])).await,
        vec![0]
    );
    end_txn(&c, &log, "g", PID, false).await;
    commit(&c, commit_req("g", "", -1, &[("t", 1, 1, None)])).await;

    let c2 = reloaded(&log);
    assert_eq!(
        stable_fetch(&c2, "g", None).await,
        vec![("t".into(), 0, 10, 0), ("t".into(), 1, 1, 0)]
    );

    // Driving the calls by hand: the record of the transactional batch, then
    // the marker.
    let c3 = GroupCoordinator::new(config(0), Arc::new(MemoryGroupLog::new()));
    MemoryGroupLog::new().load_into(&c3).unwrap();
    let partition = coordinator_partition_for("g", PARTITIONS);
    c3.unload(partition, None);
    let records = log.records();
    let mut loader = c3.load(partition, LeaderEpoch(1)).unwrap();
    loader
        .replay(&LogEntry::Record {
            record: records[0].clone(),
            transactional: Some(producer(PID)),
        })
        .unwrap();
    assert!(loader.finish());
    assert_eq!(offset_of(&c3, "g", "t", 0).await, -1);
    c3.complete_transaction(partition, producer(PID), true)
        .await;
    assert_eq!(offset_of(&c3, "g", "t", 0).await, 10);
}

#[tokio::test(start_paused = true)]
async fn pending_transaction_survives_reload_until_its_marker() {
    let (c, log) = coordinator(0);
    commit(&c, commit_req("g", "", -1, &[("t", 0, 5, None)])).await;
    assert_eq!(
        txn_commit(&c, txn_req("g", PID, &[("t", 0, 10, None)])).await,
        vec![0]
    );

    let c2 = reloaded(&log);
    let log2 = MemoryGroupLog::new();
    assert_eq!(offset_of(&c2, "g", "t", 0).await, 5);
    assert_eq!(
        stable_fetch(&c2, "g", Some(&[("t", &[0])])).await,
        vec![("t".into(), 0, -1, UNSTABLE)]
    );
    // A marker of another producer changes nothing.
    end_txn(&c2, &log2, "g", PID + 1, true).await;
    assert_eq!(offset_of(&c2, "g", "t", 0).await, 5);
    // The transaction coordinator completes it after the restart.
    end_txn(&c2, &log2, "g", PID, true).await;
    assert_eq!(offset_of(&c2, "g", "t", 0).await, 10);
}

#[tokio::test(start_paused = true)]
async fn markers_only_complete_groups_of_their_partition() {
    let (c, _log) = coordinator(0);
    // Two groups on different __consumer_offsets partitions.
    let a = "group-a";
    let b = (0..)
        .map(|i| format!("group-b{i}"))
        .find(|g| {
            coordinator_partition_for(g, PARTITIONS) != coordinator_partition_for(a, PARTITIONS)
        })
        .unwrap();
    assert_eq!(
        txn_commit(&c, txn_req(a, PID, &[("t", 0, 1, None)])).await,
        vec![0]
    );
    assert_eq!(
        txn_commit(&c, txn_req(&b, PID, &[("t", 0, 2, None)])).await,
        vec![0]
    );
    c.complete_transaction(
        coordinator_partition_for(a, PARTITIONS),
        producer(PID),
        true,
    )
    .await;
    assert_eq!(offset_of(&c, a, "t", 0).await, 1);
    assert_eq!(offset_of(&c, &b, "t", 0).await, -1);
    c.complete_transaction(
        coordinator_partition_for(&b, PARTITIONS),
        producer(PID),
        true,
    )
    .await;
    assert_eq!(offset_of(&c, &b, "t", 0).await, 2);
}

#[tokio::test(start_paused = true)]
async fn validation_follows_kafka() {
    let (c, log) = coordinator(0);
    let (leader, follower, generation) = stable_pair(&c, "g").await;
    let with_member = |member: &str, generation: i32| {
        txn_req("g", PID, &[("t1", 0, 1, None), ("t1", 1, 2, None)])
            .with_member_id(s(member))
            .with_generation_id(generation)
    };
    // v3+: a member of the current generation may commit.
    assert_eq!(
        txn_commit(&c, with_member(&leader, generation)).await,
        vec![0, 0]
    );
    assert_eq!(
        txn_commit(&c, with_member(&follower, generation + 1)).await,
        vec![ResponseError::IllegalGeneration.code(); 2]
    );
    assert_eq!(
        txn_commit(&c, with_member("stranger", generation)).await,
        vec![ResponseError::UnknownMemberId.code(); 2]
    );
    // Without member id and generation a non-empty group accepts the commit
    // (unlike OffsetCommit): old transactional producers send neither.
    assert_eq!(txn_commit(&c, with_member("", -1)).await, vec![0, 0]);
    // Before v3 the member fields are not on the wire and are not checked.
    let r = c
        .txn_offset_commit(with_member("stranger", generation + 5), 2)
        .await;
    assert_eq!(txn_errors(&r), vec![0, 0]);
    // Unknown group: accepted without generation, ILLEGAL_GENERATION with one.
    assert_eq!(
        txn_commit(
            &c,
            txn_req("new", PID, &[("t", 0, 1, None)]).with_generation_id(1)
        )
        .await,
        vec![ResponseError::IllegalGeneration.code()]
    );
    assert_eq!(
        describe_state(&c, "new").await,
        "Dead",
        "a refused commit creates no group"
    );
    assert_eq!(
        txn_commit(&c, txn_req("new", PID, &[("t", 0, 1, None)])).await,
        vec![0]
    );
    // Empty group id.
    assert_eq!(
        txn_commit(&c, txn_req("", PID, &[("t", 0, 1, None)])).await,
        vec![ResponseError::InvalidGroupId.code()]
    );
    // Metadata too large: only that partition is refused.
    let big = "x".repeat(GroupConfig::default().max_metadata_bytes + 1);
    assert_eq!(
        txn_commit(
            &c,
            txn_req("m", PID, &[("t", 0, 1, Some(&big)), ("t", 1, 2, None)])
        )
        .await,
        vec![ResponseError::OffsetMetadataTooLarge.code(), 0]
    );
    // Failed writes fail every partition and leave nothing pending.
    log.fail_next(WriteError::PartitionUnavailable(TopicPartition::new(
        "__consumer_offsets",
        coordinator_partition_for("w", PARTITIONS),
    )));
    assert_eq!(
        txn_commit(
            &c,
            txn_req("w", PID, &[("t", 0, 1, None), ("t", 1, 1, None)])
        )
        .await,
        vec![ResponseError::CoordinatorNotAvailable.code(); 2]
    );
    assert_eq!(describe_state(&c, "w").await, "Dead");
    log.fail_next(WriteError::Refused(ResponseError::ProducerFenced));
    assert_eq!(
        txn_commit(&c, txn_req("m", PID, &[("t", 2, 1, None)])).await,
        vec![ResponseError::ProducerFenced.code()]
    );
    assert_eq!(
        stable_fetch(&c, "m", Some(&[("t", &[2])])).await,
        vec![("t".into(), 2, -1, 0)]
    );
}

#[tokio::test(start_paused = true)]
async fn static_member_is_fenced() {
    let (c, _) = coordinator(0);
    let r = join(
        &c,
        join_req("g", "", &["t1"]).with_group_instance_id(Some(s("inst"))),
        5,
    )
    .await;
    assert_eq!(r.error_code, 0);
    let member = r.member_id.as_str().to_owned();
    let req = |member: &str| {
        txn_req("g", PID, &[("t1", 0, 1, None)])
            .with_member_id(s(member))
            .with_group_instance_id(Some(s("inst")))
            .with_generation_id(r.generation_id)
    };
    assert_eq!(
        txn_commit(&c, req("old-incarnation")).await,
        vec![ResponseError::FencedInstanceId.code()]
    );
    assert_eq!(txn_commit(&c, req(&member)).await, vec![0]);
}

#[tokio::test(start_paused = true)]
async fn expiry_and_deletion_respect_pending_transactions() {
    let (c, log, clock) = clocked(config(0));
    let retention = GroupConfig::default().offsets_retention_ms;
    commit(&c, commit_req("g", "", -1, &[("t", 0, 5, None)])).await;
    assert_eq!(
        txn_commit(&c, txn_req("g", PID, &[("t", 0, 10, None)])).await,
        vec![0]
    );
    assert_eq!(
        txn_commit(&c, txn_req("only", PID, &[("t", 0, 1, None)])).await,
        vec![0]
    );
    clock.advance(retention * 10);
    c.expire_offsets().await;
    // Neither the committed offset with a pending transaction nor the group
    // holding only a pending transactional offset went away.
    assert_eq!(offset_of(&c, "g", "t", 0).await, 5);
    assert_eq!(describe_state(&c, "only").await, "Empty");
    end_txn(&c, &log, "g", PID, true).await;
    // The transaction spans two groups: a marker in each group's partition.
    c.complete_transaction(
        coordinator_partition_for("only", PARTITIONS),
        producer(PID),
        true,
    )
    .await;
    assert_eq!(offset_of(&c, "g", "t", 0).await, 10);
    assert_eq!(offset_of(&c, "only", "t", 0).await, 1);

    // DeleteGroups on an Empty group with a pending transaction (Kafka allows
    // it) tombstones the pending partition too.
    assert_eq!(
        txn_commit(&c, txn_req("d", PID + 1, &[("t", 3, 1, None)])).await,
        vec![0]
    );
    let before = log.records().len();
    let r = c
        .delete_groups(
            DeleteGroupsRequest::default().with_groups_names(vec![GroupId(s("d"))]),
            2,
        )
        .await;
    assert_eq!(r.results[0].error_code, 0);
    let tombstones = log.records()[before..].len();
    assert_eq!(tombstones, 2, "offset tombstone and group tombstone");
    end_txn(&c, &log, "d", PID + 1, true).await;
    assert_eq!(describe_state(&c, "d").await, "Dead");
    // Replay agrees: the tombstone drops the transactional offset.
    let c2 = reloaded(&log);
    assert_eq!(offset_of(&c2, "d", "t", 3).await, -1);
    assert_eq!(offset_of(&c2, "g", "t", 0).await, 10);
}

#[tokio::test(start_paused = true)]
async fn commit_marker_while_write_in_flight_leaves_offset_pending() {
    let log = Arc::new(GatedTxnLog {
        gate: tokio::sync::Semaphore::new(0),
    });
    let c = GroupCoordinator::new(config(0), log.clone());
    MemoryGroupLog::new().load_into(&c).unwrap();
    let c1 = c.clone();
    let pending =
        tokio::spawn(
            async move { txn_commit(&c1, txn_req("g", PID, &[("t", 0, 10, None)])).await },
        );
    tokio::task::yield_now().await;
    // The marker lands before the record: the record belongs to the next
    // transaction of the producer, as on replay.
    c.complete_transaction(
        coordinator_partition_for("g", PARTITIONS),
        producer(PID),
        true,
    )
    .await;
    log.gate.add_permits(1);
    assert_eq!(pending.await.unwrap(), vec![0]);
    assert_eq!(offset_of(&c, "g", "t", 0).await, -1);
    assert_eq!(
        stable_fetch(&c, "g", Some(&[("t", &[0])])).await,
        vec![("t".into(), 0, -1, UNSTABLE)]
    );
    c.complete_transaction(
        coordinator_partition_for("g", PARTITIONS),
        producer(PID),
        true,
    )
    .await;
    assert_eq!(offset_of(&c, "g", "t", 0).await, 10);
}

#[tokio::test(start_paused = true)]
async fn responses_encode_at_every_version() {
    let (c, _) = coordinator(0);
    let big = "x".repeat(5000);
    for version in 0..=5i16 {
        let ok = c
            .txn_offset_commit(
                txn_req("g", PID, &[("t", 0, 1, None), ("u", 1, 2, None)]),
                version,
            )
            .await;
        let refused = c
            .txn_offset_commit(txn_req("", PID, &[("t", 0, 1, Some(&big))]), version)
            .await;
        for r in [&ok, &refused] {
            let mut buf = BytesMut::new();
            r.encode(&mut buf, version)
                .unwrap_or_else(|e| panic!("version {version}: {e}"));
        }
        assert_eq!(txn_errors(&ok), vec![0, 0]);
        assert_eq!(
            txn_errors(&refused),
            vec![ResponseError::InvalidGroupId.code()]
        );
    }
}

async fn describe_state(c: &GroupCoordinator, group: &str) -> String {
    state_of(c, group).await
}

/// A log whose transactional appends wait for a permit.
struct GatedTxnLog {
    gate: tokio::sync::Semaphore,
}

impl sluice_group::PartitionWriter for GatedTxnLog {
    fn append(
        &self,
        _partition: i32,
        transactional: Option<ProducerIdAndEpoch>,
        _records: Vec<sluice_group::CoordinatorRecord>,
    ) -> sluice_group::AppendFuture<'_> {
        Box::pin(async move {
            if transactional.is_some() {
                self.gate.acquire().await.unwrap().forget();
            }
            Ok(())
        })
    }
}

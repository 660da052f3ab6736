//! Groups live in one shard per `__consumer_offsets` partition: what live
//! operations build equals what replaying their records builds, and a group
//! is served only while its partition is loaded here.

// Tests may unwrap and index: a failure is a test failure.
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;

use common::*;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::offset_delete_request::{
    OffsetDeleteRequestPartition, OffsetDeleteRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestGroup;
use kafka_protocol::messages::txn_offset_commit_request::{
    TxnOffsetCommitRequestPartition, TxnOffsetCommitRequestTopic,
};
use kafka_protocol::messages::{
    DeleteGroupsRequest, DescribeGroupsRequest, DescribeGroupsResponse, GroupId, LeaveGroupRequest,
    ListGroupsRequest, OffsetDeleteRequest, OffsetFetchRequest, ProducerId, TopicName,
    TransactionalId, TxnOffsetCommitRequest,
};
use sluice_group::{
    CoordinatorRecord, GroupCoordinator, MemoryGroupLog, PartitionLoader, PartitionWriter,
};
use sluice_protocol::model::{
    LeaderEpoch, ProducerIdAndEpoch, TopicPartition, coordinator_partition_for,
};

const NOT_COORDINATOR: i16 = 16;
const LOAD_IN_PROGRESS: i16 = 14;
const PARTITIONS: i32 = 50;
const EPOCH: i16 = 2;

fn producer(pid: i64) -> ProducerIdAndEpoch {
    ProducerIdAndEpoch::new(pid, EPOCH)
}

fn txn_req(
    group: &str,
    pid: i64,
    topic: &str,
    partition: i32,
    offset: i64,
) -> TxnOffsetCommitRequest {
    TxnOffsetCommitRequest::default()
        .with_transactional_id(TransactionalId(s("tx")))
        .with_group_id(GroupId(s(group)))
        .with_producer_id(ProducerId(pid))
        .with_producer_epoch(EPOCH)
        .with_topics(vec![
            TxnOffsetCommitRequestTopic::default()
                .with_name(TopicName(s(topic)))
                .with_partitions(vec![
                    TxnOffsetCommitRequestPartition::default()
                        .with_partition_index(partition)
                        .with_committed_offset(offset)
                        .with_committed_leader_epoch(4),
                ]),
        ])
}

async fn txn_commit(c: &GroupCoordinator, req: TxnOffsetCommitRequest) -> Vec<i16> {
    c.txn_offset_commit(req, 3)
        .await
        .topics
        .iter()
        .flat_map(|t| t.partitions.iter().map(|p| p.error_code))
        .collect()
}

/// The broker's side of EndTxn for `group`: marker in the log, then the coordinator.
async fn end_txn(c: &GroupCoordinator, log: &MemoryGroupLog, group: &str, pid: i64, commit: bool) {
    let partition = coordinator_partition_for(group, PARTITIONS);
    log.write_marker(partition, producer(pid), commit);
    c.complete_transaction(partition, producer(pid), commit)
        .await;
}

async fn describe(c: &GroupCoordinator, groups: &[&str]) -> DescribeGroupsResponse {
    c.describe_groups(
        DescribeGroupsRequest::default()
            .with_groups(groups.iter().map(|g| GroupId(s(g))).collect()),
        5,
    )
    .await
}

fn tp(topic: &str, partition: i32) -> TopicPartition {
    TopicPartition::new(topic, partition)
}

/// A group whose partition differs from `other`'s.
fn group_beside(other: &str) -> String {
    (0..)
        .map(|i| format!("other-{i}"))
        .find(|g| {
            coordinator_partition_for(g, PARTITIONS) != coordinator_partition_for(other, PARTITIONS)
        })
        .unwrap()
}

/// Joins, syncs and restarts a static member of `group`: the snapshot then
/// names the restarted member's new id. Returns that id.
async fn restarted_static_member(c: &GroupCoordinator, group: &str) -> String {
    let req = || join_req(group, "", &["t1"]).with_group_instance_id(Some(s("inst")));
    let first = join(c, req(), 5).await;
    assert_eq!(first.error_code, 0);
    let old = first.member_id.as_str().to_owned();
    let synced = sync(
        c,
        sync_req(group, &old, 1, &[(old.as_str(), b"S")]).with_group_instance_id(Some(s("inst"))),
    )
    .await;
    assert_eq!(synced.error_code, 0);
    let restarted = join(c, req(), 5).await;
    assert_eq!((restarted.error_code, restarted.generation_id), (0, 1));
    restarted.member_id.as_str().to_owned()
}

#[tokio::test(start_paused = true)]
async fn live_state_equals_the_state_replayed_from_the_log() {
    let (c, log) = coordinator(0);
    // A consumer group: members, generation and assignments.
    let (leader, follower, generation) = stable_pair(&c, "g").await;
    commit(
        &c,
        commit_req(
            "g",
            &follower,
            generation,
            &[("t1", 0, 99, None), ("t1", 1, 100, None)],
        ),
    )
    .await;
    // A committed transaction whose offset was written after the plain commit wins.
    assert_eq!(txn_commit(&c, txn_req("g", 7, "t1", 0, 150)).await, vec![0]);
    end_txn(&c, &log, "g", 7, true).await;
    commit(
        &c,
        commit_req("g", &leader, generation, &[("t1", 1, 101, None)]),
    )
    .await;
    // A simple group: an explicit retention, an aborted transaction, a
    // deleted offset and the offsets of a deleted topic.
    commit(
        &c,
        commit_req(
            "s",
            "",
            -1,
            &[("t", 0, 11, Some("meta")), ("t", 1, 12, None)],
        ),
    )
    .await;
    let retained = commit_req("s", "", -1, &[("t", 2, 5, None)]).with_retention_time_ms(60_000);
    assert_eq!(commit_errors(&c.offset_commit(retained, 2).await), vec![0]);
    assert_eq!(txn_commit(&c, txn_req("s", 8, "t", 0, 20)).await, vec![0]);
    end_txn(&c, &log, "s", 8, false).await;
    let deleted = OffsetDeleteRequest::default()
        .with_group_id(GroupId(s("s")))
        .with_topics(vec![
            OffsetDeleteRequestTopic::default()
                .with_name(TopicName(s("t")))
                .with_partitions(vec![
                    OffsetDeleteRequestPartition::default().with_partition_index(1),
                ]),
        ]);
    assert_eq!(c.offset_delete(deleted, 0).await.error_code, 0);
    commit(&c, commit_req("s", "", -1, &[("doomed", 0, 3, None)])).await;
    c.on_topic_deleted("doomed").await;
    // A transaction still open.
    assert_eq!(txn_commit(&c, txn_req("p", 9, "x", 0, 7)).await, vec![0]);
    // A group emptied by its only member leaving.
    let lone = join(&c, join_req("e", "", &["t1"]), 3).await;
    assert_eq!(lone.error_code, 0);
    let leave = LeaveGroupRequest::default()
        .with_group_id(GroupId(s("e")))
        .with_members(vec![
            MemberIdentity::default().with_member_id(lone.member_id.clone()),
        ]);
    assert_eq!(c.leave_group(leave, 3).await.members[0].error_code, 0);
    // A deleted group.
    commit(&c, commit_req("d", "", -1, &[("t", 0, 1, None)])).await;
    let d = c
        .delete_groups(
            DeleteGroupsRequest::default().with_groups_names(vec![GroupId(s("d"))]),
            2,
        )
        .await;
    assert_eq!(d.results[0].error_code, 0);
    // A static member that restarted under a new member id.
    let restarted = restarted_static_member(&c, "st").await;

    let live = c.image();
    // What the operations built.
    assert_eq!(
        live.keys().map(String::as_str).collect::<Vec<_>>(),
        vec!["e", "g", "p", "s", "st"]
    );
    let g = &live["g"];
    let snapshot = g.snapshot.as_ref().unwrap();
    assert_eq!(
        (snapshot.generation, snapshot.leader.as_deref()),
        (1, Some(leader.as_str()))
    );
    let assigned: BTreeSet<(String, Vec<u8>)> = snapshot
        .members
        .iter()
        .map(|m| (m.member_id.clone(), m.assignment.to_vec()))
        .collect();
    assert_eq!(
        assigned,
        BTreeSet::from([
            (leader.clone(), b"L".to_vec()),
            (follower.clone(), b"F".to_vec())
        ])
    );
    let offsets = |image: &sluice_group::GroupImage| {
        image
            .offsets
            .iter()
            .map(|(tp, v)| (tp.clone(), v.offset))
            .collect::<Vec<_>>()
    };
    assert_eq!(offsets(g), vec![(tp("t1", 0), 150), (tp("t1", 1), 101)]);
    assert_eq!(g.offsets[&tp("t1", 0)].leader_epoch, 4);
    let s_image = &live["s"];
    assert_eq!(offsets(s_image), vec![(tp("t", 0), 11), (tp("t", 2), 5)]);
    assert_eq!(s_image.offsets[&tp("t", 0)].metadata, "meta");
    assert!(s_image.offsets[&tp("t", 2)].expire_timestamp > 0);
    assert!(s_image.snapshot.is_none() && s_image.transactional_offsets.is_empty());
    let pending = &live["p"].transactional_offsets;
    assert_eq!(pending.keys().copied().collect::<Vec<_>>(), vec![9]);
    assert_eq!(pending[&9][&tp("x", 0)].offset, 7);
    let emptied = live["e"].snapshot.as_ref().unwrap();
    assert_eq!((emptied.generation, emptied.members.len()), (2, 0));
    let st = live["st"].snapshot.as_ref().unwrap();
    assert_eq!(
        st.members
            .iter()
            .map(|m| m.member_id.as_str())
            .collect::<Vec<_>>(),
        vec![restarted.as_str()]
    );

    // A coordinator that only replays the log ends in the same state...
    let replayed = reloaded(&log);
    assert_eq!(replayed.image(), live);
    // ...and serves the same members, assignments and states.
    let all = ["e", "g", "p", "s", "st"];
    assert_eq!(describe(&replayed, &all).await, describe(&c, &all).await);
    let rs = sync(&replayed, sync_req("g", &follower, generation, &[])).await;
    assert_eq!((rs.error_code, rs.assignment.as_ref()), (0, &b"F"[..]));
}

#[tokio::test(start_paused = true)]
async fn groups_of_an_unloaded_partition_get_not_coordinator() {
    let (c, log) = coordinator(0);
    let other = group_beside("g");
    commit(&c, commit_req("g", "", -1, &[("t", 0, 5, None)])).await;
    commit(&c, commit_req(&other, "", -1, &[("t", 0, 6, None)])).await;
    let partition = c.partition_for("g");
    assert_eq!(partition, coordinator_partition_for("g", PARTITIONS));
    assert!(c.unload(partition, None));
    assert!(!c.unload(partition, None), "unloaded once");

    let r = commit(
        &c,
        commit_req("g", "", -1, &[("t", 0, 9, None), ("t", 1, 9, None)]),
    )
    .await;
    assert_eq!(commit_errors(&r), vec![NOT_COORDINATOR; 2]);
    assert_eq!(
        txn_commit(&c, txn_req("g", 7, "t", 0, 1)).await,
        vec![NOT_COORDINATOR]
    );
    let j = join(&c, join_req("g", "", &["t1"]), 5).await;
    assert_eq!((j.error_code, j.member_id.as_str()), (NOT_COORDINATOR, ""));
    assert_eq!(heartbeat(&c, "g", "m", 1).await, NOT_COORDINATOR);
    assert_eq!(
        sync(&c, sync_req("g", "m", 1, &[])).await.error_code,
        NOT_COORDINATOR
    );
    // OffsetFetch v2-v7: the group's error at the top; v1: on every partition.
    let f = fetch(&c, "g", Some(&[("t", &[0])])).await;
    assert_eq!((f.error_code, f.topics.len()), (NOT_COORDINATOR, 0));
    let v1 = c
        .offset_fetch(
            OffsetFetchRequest::default()
                .with_group_id(GroupId(s("g")))
                .with_topics(Some(vec![
                    kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic::default()
                        .with_name(TopicName(s("t")))
                        .with_partition_indexes(vec![0, 1]),
                ])),
            1,
        )
        .await;
    assert_eq!(
        fetched(&v1),
        vec![
            ("t".into(), 0, -1, -1, String::new()),
            ("t".into(), 1, -1, -1, String::new()),
        ]
    );
    assert_eq!(
        v1.topics[0]
            .partitions
            .iter()
            .map(|p| p.error_code)
            .collect::<Vec<_>>(),
        vec![NOT_COORDINATOR; 2]
    );
    // OffsetFetch v8+: per group.
    let v8 = c
        .offset_fetch(
            OffsetFetchRequest::default().with_groups(vec![
                OffsetFetchRequestGroup::default()
                    .with_group_id(GroupId(s("g")))
                    .with_topics(None),
                OffsetFetchRequestGroup::default()
                    .with_group_id(GroupId(s(&other)))
                    .with_topics(None),
            ]),
            8,
        )
        .await;
    assert_eq!(
        v8.groups.iter().map(|g| g.error_code).collect::<Vec<_>>(),
        vec![NOT_COORDINATOR, 0]
    );
    assert_eq!(v8.groups[1].topics[0].partitions[0].committed_offset, 6);
    let d = describe(&c, &["g", &other]).await;
    assert_eq!(
        d.groups.iter().map(|g| g.error_code).collect::<Vec<_>>(),
        vec![NOT_COORDINATOR, 0]
    );
    let deleted = c
        .delete_groups(
            DeleteGroupsRequest::default().with_groups_names(vec![GroupId(s("g"))]),
            2,
        )
        .await;
    assert_eq!(deleted.results[0].error_code, NOT_COORDINATOR);
    assert_eq!(
        c.offset_delete(
            OffsetDeleteRequest::default().with_group_id(GroupId(s("g"))),
            0
        )
        .await
        .error_code,
        NOT_COORDINATOR
    );
    // Only the loaded partitions are listed.
    let listed = c.list_groups(ListGroupsRequest::default(), 4).await;
    assert_eq!(listed.error_code, 0);
    assert_eq!(
        listed
            .groups
            .iter()
            .map(|g| g.group_id.as_str())
            .collect::<Vec<_>>(),
        vec![other.as_str()]
    );

    // Loading the partition again (a newer leader epoch) brings its groups back.
    let mut loader = c.load(partition, LeaderEpoch(1)).unwrap();
    for entry in log.entries() {
        let (p, entry) = entry.to_log_entry();
        if p == partition {
            loader.replay(&entry).unwrap();
        }
    }
    assert!(loader.finish());
    assert_eq!(fetched(&fetch(&c, "g", Some(&[("t", &[0])])).await)[0].2, 5);
    assert!(
        c.load(partition, LeaderEpoch(1)).is_none(),
        "already loaded"
    );
}

#[tokio::test(start_paused = true)]
async fn a_loading_partition_answers_load_in_progress() {
    let log = Arc::new(MemoryGroupLog::new());
    let c = GroupCoordinator::new(config(0), log.clone());
    let partition = c.partition_for("g");
    let loader = c.load(partition, LeaderEpoch(0)).unwrap();
    let r = commit(&c, commit_req("g", "", -1, &[("t", 0, 1, None)])).await;
    assert_eq!(commit_errors(&r), vec![LOAD_IN_PROGRESS]);
    assert_eq!(fetch(&c, "g", None).await.error_code, LOAD_IN_PROGRESS);
    assert_eq!(
        join(&c, join_req("g", "", &["t1"]), 5).await.error_code,
        LOAD_IN_PROGRESS
    );
    assert_eq!(
        describe(&c, &["g"]).await.groups[0].error_code,
        LOAD_IN_PROGRESS
    );
    // Kafka answers ListGroups so while any partition loads.
    let listed = c.list_groups(ListGroupsRequest::default(), 4).await;
    assert_eq!(
        (listed.error_code, listed.groups.len()),
        (LOAD_IN_PROGRESS, 0)
    );
    // A group of a partition never loaded here has another coordinator.
    let elsewhere = group_beside("g");
    assert_eq!(
        fetch(&c, &elsewhere, None).await.error_code,
        NOT_COORDINATOR
    );
    assert!(log.records().is_empty(), "nothing written while loading");

    assert!(loader.finish());
    let r = commit(&c, commit_req("g", "", -1, &[("t", 0, 1, None)])).await;
    assert_eq!(commit_errors(&r), vec![0]);
    assert_eq!(
        c.list_groups(ListGroupsRequest::default(), 4)
            .await
            .groups
            .len(),
        1
    );
}

#[tokio::test(start_paused = true)]
async fn unloading_answers_parked_requests_not_coordinator() {
    let (c, _) = coordinator(0);
    let (leader, follower, generation) = stable_pair(&c, "g").await;
    // The leader rejoins: the group rebalances and the JoinGroup is parked
    // until the follower rejoins too.
    let c1 = c.clone();
    let leader_id = leader.clone();
    let parked =
        tokio::spawn(async move { join(&c1, join_req("g", &leader_id, &["t1"]), 5).await });
    tokio::task::yield_now().await;
    assert!(!parked.is_finished());
    assert_eq!(
        heartbeat(&c, "g", &follower, generation).await,
        27,
        "REBALANCE_IN_PROGRESS"
    );
    assert!(c.unload(c.partition_for("g"), None));
    let answered = parked.await.unwrap();
    assert_eq!(
        (answered.error_code, answered.member_id.as_str()),
        (NOT_COORDINATOR, leader.as_str())
    );
}

/// A log whose appends wait for a permit.
struct GatedLog {
    gate: tokio::sync::Semaphore,
    inner: MemoryGroupLog,
}

impl PartitionWriter for GatedLog {
    fn append(
        &self,
        partition: i32,
        transactional: Option<ProducerIdAndEpoch>,
        records: Vec<CoordinatorRecord>,
    ) -> sluice_group::AppendFuture<'_> {
        Box::pin(async move {
            self.gate.acquire().await.unwrap().forget();
            self.inner.append(partition, transactional, records).await
        })
    }
}

#[tokio::test(start_paused = true)]
async fn a_write_that_completes_after_its_partition_was_unloaded_is_not_applied() {
    let log = Arc::new(GatedLog {
        gate: tokio::sync::Semaphore::new(0),
        inner: MemoryGroupLog::new(),
    });
    let c = GroupCoordinator::new(config(0), log.clone());
    MemoryGroupLog::new().load_into(&c).unwrap();
    let c1 = c.clone();
    let pending =
        tokio::spawn(
            async move { commit(&c1, commit_req("g", "", -1, &[("t", 0, 8, None)])).await },
        );
    tokio::task::yield_now().await;
    assert!(!pending.is_finished(), "the commit waits for its write");
    let partition = c.partition_for("g");
    assert!(c.unload(partition, None));
    // The partition comes back at a newer epoch before the old write completes.
    c.load(partition, LeaderEpoch(1)).unwrap().finish();
    log.gate.add_permits(1);
    assert_eq!(
        commit_errors(&pending.await.unwrap()),
        vec![NOT_COORDINATOR]
    );
    assert!(fetch(&c, "g", None).await.topics.is_empty());
    assert!(c.image().is_empty());
}

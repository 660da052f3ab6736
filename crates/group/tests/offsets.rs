//! Committed offsets, group administration and reloading from the log.

// Tests may unwrap and index: a failure is a test failure.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::offset_delete_request::{
    OffsetDeleteRequestPartition, OffsetDeleteRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopics,
};
use kafka_protocol::messages::{
    DeleteGroupsRequest, DescribeGroupsRequest, GroupId, JoinGroupRequest, LeaveGroupRequest,
    ListGroupsRequest, OffsetDeleteRequest, OffsetFetchRequest, TopicName,
};
use sluice_group::records::{GroupRecordKey, OffsetCommitValue};
use sluice_group::{
    GROUP_AUTHORIZED_OPERATIONS, GroupConfig, GroupCoordinator, LogEntry, MemoryGroupLog,
    PartitionLoader, WriteError,
};
use sluice_protocol::model::{
    LeaderEpoch, ProducerIdAndEpoch, TopicPartition, coordinator_partition_for,
};
use tokio::time::sleep;

#[tokio::test(start_paused = true)]
async fn simple_commit_and_fetch_round_trip() {
    let (c, log) = coordinator(0);
    let metadata = "höhe ☃ metadata";
    let r = commit(
        &c,
        commit_req(
            "simple",
            "",
            -1,
            &[
                ("t1", 0, 42, Some(metadata)),
                ("t1", 1, 7, None),
                ("t2", 3, 9, Some("")),
            ],
        ),
    )
    .await;
    assert_eq!(commit_errors(&r), vec![0, 0, 0]);
    // Durable before the answer.
    assert_eq!(log.records().len(), 3);
    let first = &log.records()[0];
    let (key, value) = (&first.key, &first.value);
    assert_eq!(
        GroupRecordKey::decode(key).unwrap(),
        GroupRecordKey::OffsetCommit {
            group: "simple".into(),
            topic: "t1".into(),
            partition: 0
        }
    );
    let v = OffsetCommitValue::decode(value.as_ref().unwrap()).unwrap();
    assert_eq!(
        (v.offset, v.leader_epoch, v.metadata.as_str()),
        (42, 5, metadata)
    );

    let f = fetch(&c, "simple", Some(&[("t1", &[0, 1, 2]), ("t9", &[0])])).await;
    assert_eq!(f.error_code, 0);
    assert_eq!(
        fetched(&f),
        vec![
            ("t1".into(), 0, 42, 5, metadata.into()),
            ("t1".into(), 1, 7, 5, String::new()),
            ("t1".into(), 2, -1, -1, String::new()),
            ("t9".into(), 0, -1, -1, String::new()),
        ]
    );
    // Null topics: everything committed.
    let all = fetch(&c, "simple", None).await;
    assert_eq!(fetched(&all).len(), 3);
    // Unknown group: -1 for requested partitions, nothing for "all".
    assert_eq!(
        fetched(&fetch(&c, "other", Some(&[("t1", &[0])])).await)[0].2,
        -1
    );
    assert!(fetch(&c, "other", None).await.topics.is_empty());
    // An empty group id is legal for offsets (Kafka keeps it for old clients).
    assert_eq!(
        commit_errors(&commit(&c, commit_req("", "", -1, &[("t", 0, 1, None)])).await),
        vec![0]
    );
    assert_eq!(fetched(&fetch(&c, "", None).await)[0].2, 1);
}

#[tokio::test(start_paused = true)]
async fn fetch_v8_many_groups_and_require_stable() {
    let (c, _) = coordinator(0);
    commit(&c, commit_req("a", "", -1, &[("t", 0, 10, None)])).await;
    commit(&c, commit_req("b", "", -1, &[("t", 0, 20, Some("m"))])).await;
    let group = |id: &str, topics: Option<Vec<OffsetFetchRequestTopics>>| {
        OffsetFetchRequestGroup::default()
            .with_group_id(GroupId(s(id)))
            .with_topics(topics)
    };
    let req = OffsetFetchRequest::default()
        .with_groups(vec![
            group(
                "a",
                Some(vec![
                    OffsetFetchRequestTopics::default()
                        .with_name(TopicName(s("t")))
                        .with_partition_indexes(vec![0, 1]),
                ]),
            ),
            group("b", None),
            group("zzz", None),
        ])
        .with_require_stable(true);
    let r = c.offset_fetch(req, 8).await;
    assert!(r.topics.is_empty());
    assert_eq!(r.groups.len(), 3);
    let a: Vec<(i32, i64)> = r.groups[0].topics[0]
        .partitions
        .iter()
        .map(|p| (p.partition_index, p.committed_offset))
        .collect();
    assert_eq!(a, vec![(0, 10), (1, -1)]);
    let b = &r.groups[1].topics[0].partitions[0];
    assert_eq!(
        (b.committed_offset, b.metadata.as_ref().unwrap().as_str()),
        (20, "m")
    );
    assert!(r.groups[2].topics.is_empty());
}

#[tokio::test(start_paused = true)]
async fn commit_errors_follow_kafka() {
    let (c, _) = coordinator_with(GroupConfig {
        initial_rebalance_delay_ms: 0,
        max_metadata_bytes: 4,
        ..GroupConfig::default()
    });
    // Metadata limit counts Java chars: "☃☃☃☃" is 4 chars (12 bytes), allowed; 5 is not.
    let r = commit(
        &c,
        commit_req(
            "s",
            "",
            -1,
            &[("t", 0, 1, Some("☃☃☃☃")), ("t", 1, 1, Some("12345"))],
        ),
    )
    .await;
    assert_eq!(commit_errors(&r), vec![0, 12]);
    // Commit to an unknown group with a generation.
    let unknown = commit_req("nope", "m", 3, &[("t", 0, 1, None)]);
    assert_eq!(
        commit_errors(&c.offset_commit(unknown.clone(), 8).await),
        vec![22]
    );
    assert_eq!(commit_errors(&c.offset_commit(unknown, 9).await), vec![69]);

    let (leader, follower, generation) = stable_pair(&c, "g").await;
    let ok = commit(
        &c,
        commit_req("g", &follower, generation, &[("t1", 0, 5, None)]),
    )
    .await;
    assert_eq!(commit_errors(&ok), vec![0]);
    let stale = commit(
        &c,
        commit_req("g", &follower, generation - 1, &[("t1", 0, 5, None)]),
    )
    .await;
    assert_eq!(commit_errors(&stale), vec![22], "ILLEGAL_GENERATION");
    let stranger = commit(
        &c,
        commit_req("g", "stranger", generation, &[("t1", 0, 5, None)]),
    )
    .await;
    assert_eq!(commit_errors(&stranger), vec![25], "UNKNOWN_MEMBER_ID");
    // Simple commits are only for groups without members.
    let simple = commit(&c, commit_req("g", "", -1, &[("t1", 0, 5, None)])).await;
    assert_eq!(commit_errors(&simple), vec![25]);

    // Rebalance: commits are allowed while preparing, refused while completing.
    let (cl, l) = (c.clone(), leader.clone());
    let jl = tokio::spawn(async move { join(&cl, join_req("g", &l, &["t1"]), 5).await });
    tokio::task::yield_now().await;
    let during = commit(
        &c,
        commit_req("g", &follower, generation, &[("t1", 0, 6, None)]),
    )
    .await;
    assert_eq!(commit_errors(&during), vec![0]);
    let jf = join(&c, join_req("g", &follower, &["t1"]), 5).await;
    let _ = jl.await.unwrap();
    let completing = commit(
        &c,
        commit_req("g", &follower, jf.generation_id, &[("t1", 0, 7, None)]),
    )
    .await;
    assert_eq!(
        commit_errors(&completing),
        vec![27],
        "REBALANCE_IN_PROGRESS"
    );
}

#[tokio::test(start_paused = true)]
async fn failed_log_write_fails_the_commit() {
    let (c, log) = coordinator(0);
    log.fail_next(WriteError::NotLeader);
    let r = commit(
        &c,
        commit_req("s", "", -1, &[("t", 0, 1, None), ("t", 1, 1, None)]),
    )
    .await;
    assert_eq!(commit_errors(&r), vec![16, 16], "NOT_COORDINATOR");
    assert_eq!(
        fetched(&fetch(&c, "s", Some(&[("t", &[0])])).await)[0].2,
        -1
    );
    // The simple group created by the failed commit does not linger.
    let l = c.list_groups(ListGroupsRequest::default(), 4).await;
    assert!(l.groups.is_empty());
    log.fail_next(WriteError::PartitionUnavailable(TopicPartition::new(
        "__consumer_offsets",
        0,
    )));
    let r = commit(&c, commit_req("s", "", -1, &[("t", 0, 1, None)])).await;
    assert_eq!(commit_errors(&r), vec![15], "COORDINATOR_NOT_AVAILABLE");
}

#[tokio::test(start_paused = true)]
async fn retention_time_is_stored_as_expire_timestamp() {
    let (c, log, clock) = clocked(config(0));
    let req = commit_req("s", "", -1, &[("t", 0, 1, None)]).with_retention_time_ms(60_000);
    assert_eq!(commit_errors(&c.offset_commit(req, 2).await), vec![0]);
    let v = OffsetCommitValue::decode(log.records()[0].value.as_ref().unwrap()).unwrap();
    assert_eq!(
        (v.commit_timestamp, v.expire_timestamp),
        (START_MS, START_MS + 60_000)
    );
    // Explicit expiry wins over the retention setting.
    clock.set(v.expire_timestamp - 1);
    c.expire_offsets().await;
    assert_eq!(fetched(&fetch(&c, "s", None).await).len(), 1);
    clock.set(v.expire_timestamp);
    c.expire_offsets().await;
    assert!(fetch(&c, "s", None).await.topics.is_empty());
}

#[tokio::test(start_paused = true)]
async fn load_restores_offsets_groups_and_tombstones() {
    let (c, log) = coordinator(0);
    commit(
        &c,
        commit_req("simple", "", -1, &[("t", 0, 11, Some("meta"))]),
    )
    .await;
    let (leader, follower, generation) = stable_pair(&c, "g").await;
    commit(
        &c,
        commit_req("g", &follower, generation, &[("t1", 0, 99, None)]),
    )
    .await;
    commit(&c, commit_req("gone", "", -1, &[("t", 0, 1, None)])).await;
    let d = c
        .delete_groups(
            DeleteGroupsRequest::default().with_groups_names(vec![GroupId(s("gone"))]),
            2,
        )
        .await;
    assert_eq!(d.results[0].error_code, 0);
    // A deleted offset.
    commit(&c, commit_req("simple", "", -1, &[("t", 1, 12, None)])).await;
    c.offset_delete(
        OffsetDeleteRequest::default()
            .with_group_id(GroupId(s("simple")))
            .with_topics(vec![
                OffsetDeleteRequestTopic::default()
                    .with_name(TopicName(s("t")))
                    .with_partitions(vec![
                        OffsetDeleteRequestPartition::default().with_partition_index(1),
                    ]),
            ]),
        0,
    )
    .await;

    let c2 = reloaded(&log);
    assert_eq!(
        fetched(&fetch(&c2, "simple", None).await),
        vec![("t".into(), 0, 11, 5, "meta".into())]
    );
    assert_eq!(
        fetched(&fetch(&c2, "g", Some(&[("t1", &[0])])).await)[0].2,
        99
    );
    assert_eq!(state_of(&c2, "gone").await, "Dead");
    // The group comes back with its generation and members, who keep it alive by heartbeating.
    assert_eq!(state_of(&c2, "g").await, "Stable");
    let d = c2
        .describe_groups(
            DescribeGroupsRequest::default().with_groups(vec![GroupId(s("g"))]),
            5,
        )
        .await;
    assert_eq!(d.groups[0].members.len(), 2);
    assert_eq!(d.groups[0].protocol_data.as_str(), "range");
    assert_eq!(heartbeat(&c2, "g", &leader, generation).await, 0);
    let rs = sync(&c2, sync_req("g", &follower, generation, &[])).await;
    assert_eq!((rs.error_code, rs.assignment.as_ref()), (0, &b"F"[..]));
    // Members that stop heartbeating expire; the group ends up Empty.
    sleep(Duration::from_millis(
        u64::try_from(SESSION_MS).unwrap() + 1,
    ))
    .await;
    assert_eq!(state_of(&c2, "g").await, "Empty");
    let r = join(&c2, join_req("g", "", &["t1"]), 3).await;
    assert_eq!(
        r.generation_id,
        generation + 2,
        "generation continues after reload"
    );

    // Corrupt records are reported, the rest is applied.
    let c3 = GroupCoordinator::new(config(0), Arc::new(MemoryGroupLog::new()));
    let partition = coordinator_partition_for("simple", c3.partition_count());
    let mut entries: Vec<LogEntry> = log
        .entries()
        .iter()
        .map(|e| e.to_log_entry())
        .filter(|(p, _)| *p == partition)
        .map(|(_, e)| e)
        .collect();
    let corrupt = |key: &'static [u8]| {
        LogEntry::record(sluice_group::CoordinatorRecord::tombstone(
            bytes::Bytes::from_static(key),
        ))
    };
    entries.insert(0, corrupt(&[0, 1, 0]));
    entries.insert(2, corrupt(&[0, 9]));
    let mut loader = c3.load(partition, LeaderEpoch(0)).unwrap();
    // The broker names each skipped record's partition and offset as it goes.
    let failed: Vec<usize> = entries
        .iter()
        .enumerate()
        .filter(|(_, e)| loader.replay(e).is_err())
        .map(|(i, _)| i)
        .collect();
    assert_eq!(failed, vec![0, 2]);
    assert!(loader.finish());
    assert_eq!(fetched(&fetch(&c3, "simple", None).await).len(), 1);
}

#[tokio::test(start_paused = true)]
async fn delete_groups_errors_and_effects() {
    let (c, log) = coordinator(0);
    stable_pair(&c, "busy").await;
    commit(
        &c,
        commit_req("idle", "", -1, &[("t", 0, 1, None), ("u", 2, 3, None)]),
    )
    .await;
    let before = log.records().len();
    let r = c
        .delete_groups(
            DeleteGroupsRequest::default().with_groups_names(vec![
                GroupId(s("busy")),
                GroupId(s("idle")),
                GroupId(s("missing")),
                GroupId(s("idle")),
            ]),
            2,
        )
        .await;
    let codes: Vec<(String, i16)> = r
        .results
        .iter()
        .map(|g| (g.group_id.as_str().to_owned(), g.error_code))
        .collect();
    assert_eq!(
        codes,
        vec![
            ("busy".into(), 68),
            ("idle".into(), 0),
            ("missing".into(), 69),
            ("idle".into(), 69)
        ]
    );
    // Offset tombstones, then the group tombstone.
    let tombstones: Vec<GroupRecordKey> = log.records()[before..]
        .iter()
        .map(|r| {
            assert!(r.value.is_none());
            GroupRecordKey::decode(&r.key).unwrap()
        })
        .collect();
    assert_eq!(tombstones.len(), 3);
    assert_eq!(
        tombstones[2],
        GroupRecordKey::GroupMetadata {
            group: "idle".into()
        }
    );
    assert!(fetch(&c, "idle", None).await.topics.is_empty());
    let listed = c.list_groups(ListGroupsRequest::default(), 4).await;
    assert_eq!(listed.groups.len(), 1);

    // A failed write leaves the group in place.
    commit(&c, commit_req("idle2", "", -1, &[("t", 0, 1, None)])).await;
    log.fail_next(WriteError::storage(std::io::Error::other("disk")));
    let r = c
        .delete_groups(
            DeleteGroupsRequest::default().with_groups_names(vec![GroupId(s("idle2"))]),
            2,
        )
        .await;
    assert_eq!(r.results[0].error_code, 16);
    assert_eq!(state_of(&c, "idle2").await, "Empty");
}

#[tokio::test(start_paused = true)]
async fn list_groups_filters_by_state_and_type() {
    let (c, _) = coordinator(0);
    stable_pair(&c, "stable").await;
    commit(&c, commit_req("empty", "", -1, &[("t", 0, 1, None)])).await;
    let l = c.list_groups(ListGroupsRequest::default(), 5).await;
    let all: Vec<(String, String, String, String)> = l
        .groups
        .iter()
        .map(|g| {
            (
                g.group_id.as_str().to_owned(),
                g.protocol_type.as_str().to_owned(),
                g.group_state.as_str().to_owned(),
                g.group_type.as_str().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        all,
        vec![
            (
                "empty".into(),
                String::new(),
                "Empty".into(),
                "classic".into()
            ),
            (
                "stable".into(),
                "consumer".into(),
                "Stable".into(),
                "classic".into()
            ),
        ]
    );
    let only = |states: &[&str], types: &[&str]| {
        ListGroupsRequest::default()
            .with_states_filter(states.iter().map(|x| s(x)).collect())
            .with_types_filter(types.iter().map(|x| s(x)).collect())
    };
    let r = c.list_groups(only(&["STABLE"], &[]), 5).await;
    assert_eq!(r.groups.len(), 1);
    assert_eq!(r.groups[0].group_id.as_str(), "stable");
    let r = c.list_groups(only(&["Empty", "Dead"], &[]), 4).await;
    assert_eq!(r.groups[0].group_id.as_str(), "empty");
    assert_eq!(
        c.list_groups(only(&[], &["Classic"]), 5).await.groups.len(),
        2
    );
    assert!(
        c.list_groups(only(&[], &["consumer"]), 5)
            .await
            .groups
            .is_empty()
    );
    // Filters do not exist in older versions and are ignored there.
    assert_eq!(
        c.list_groups(only(&["Stable"], &["consumer"]), 3)
            .await
            .groups
            .len(),
        2
    );
}

#[tokio::test(start_paused = true)]
async fn describe_unknown_group_and_authorized_operations() {
    let (c, _) = coordinator(0);
    let req = DescribeGroupsRequest::default()
        .with_groups(vec![GroupId(s("nope"))])
        .with_include_authorized_operations(true);
    let old = c.describe_groups(req.clone(), 5).await;
    let g = &old.groups[0];
    assert_eq!((g.error_code, g.group_state.as_str()), (0, "Dead"));
    assert_eq!(g.authorized_operations, GROUP_AUTHORIZED_OPERATIONS);
    let v6 = c.describe_groups(req.clone(), 6).await;
    assert_eq!(v6.groups[0].error_code, 69);
    assert!(v6.groups[0].error_message.is_some());
    let v2 = c.describe_groups(req, 2).await;
    assert_eq!(v2.groups[0].authorized_operations, i32::MIN);
}

#[tokio::test(start_paused = true)]
async fn offset_delete_respects_subscriptions() {
    let (c, log) = coordinator(0);
    let (_, follower, generation) = stable_pair(&c, "g").await;
    commit(
        &c,
        commit_req(
            "g",
            &follower,
            generation,
            &[("t1", 0, 5, None), ("t2", 0, 6, None)],
        ),
    )
    .await;
    let before = log.records().len();
    let req = OffsetDeleteRequest::default()
        .with_group_id(GroupId(s("g")))
        .with_topics(vec![
            OffsetDeleteRequestTopic::default()
                .with_name(TopicName(s("t1")))
                .with_partitions(vec![
                    OffsetDeleteRequestPartition::default().with_partition_index(0),
                ]),
            OffsetDeleteRequestTopic::default()
                .with_name(TopicName(s("t2")))
                .with_partitions(vec![
                    OffsetDeleteRequestPartition::default().with_partition_index(0),
                    OffsetDeleteRequestPartition::default().with_partition_index(1),
                ]),
        ]);
    let r = c.offset_delete(req, 0).await;
    assert_eq!(r.error_code, 0);
    assert_eq!(
        r.topics[0].partitions[0].error_code, 86,
        "GROUP_SUBSCRIBED_TO_TOPIC"
    );
    let t2: Vec<i16> = r.topics[1]
        .partitions
        .iter()
        .map(|p| p.error_code)
        .collect();
    assert_eq!(t2, vec![0, 0]);
    assert_eq!(
        log.records().len(),
        before + 1,
        "one tombstone for the one committed partition"
    );
    let f = fetched(&fetch(&c, "g", Some(&[("t1", &[0]), ("t2", &[0])])).await);
    assert_eq!((f[0].2, f[1].2), (5, -1));

    let missing = OffsetDeleteRequest::default().with_group_id(GroupId(s("missing")));
    assert_eq!(c.offset_delete(missing, 0).await.error_code, 69);
    assert_eq!(
        c.offset_delete(OffsetDeleteRequest::default(), 0)
            .await
            .error_code,
        24
    );

    // An active group of another protocol type cannot be inspected: NON_EMPTY_GROUP.
    let connect: JoinGroupRequest = join_req("conn", "", &["t1"]).with_protocol_type(s("connect"));
    assert_eq!(join(&c, connect, 3).await.error_code, 0);
    let r = c
        .offset_delete(
            OffsetDeleteRequest::default().with_group_id(GroupId(s("conn"))),
            0,
        )
        .await;
    assert_eq!(r.error_code, 68);
}

#[tokio::test(start_paused = true)]
async fn expiry_removes_old_offsets_and_empty_groups() {
    let (c, log, clock) = clocked(config(0));
    let retention = GroupConfig::default().offsets_retention_ms;
    commit(&c, commit_req("simple", "", -1, &[("t", 0, 1, None)])).await;
    c.expire_offsets().await;
    assert_eq!(fetched(&fetch(&c, "simple", None).await).len(), 1);
    clock.advance(retention + 1000);
    c.expire_offsets().await;
    assert!(fetch(&c, "simple", None).await.topics.is_empty());
    assert_eq!(
        state_of(&c, "simple").await,
        "Dead",
        "group deleted with its last offset"
    );
    let last = log.records().last().cloned().unwrap();
    assert_eq!(
        GroupRecordKey::decode(&last.key).unwrap(),
        GroupRecordKey::GroupMetadata {
            group: "simple".into()
        }
    );

    // A Stable consumer group keeps offsets of subscribed topics, loses the others.
    let (_, follower, generation) = stable_pair(&c, "g").await;
    commit(
        &c,
        commit_req(
            "g",
            &follower,
            generation,
            &[("t1", 0, 5, None), ("old", 0, 6, None)],
        ),
    )
    .await;
    clock.advance(retention + 1000);
    c.expire_offsets().await;
    let f = fetched(&fetch(&c, "g", Some(&[("t1", &[0]), ("old", &[0])])).await);
    assert_eq!((f[0].2, f[1].2), (5, -1));
    assert_eq!(state_of(&c, "g").await, "Stable");
}

/// The commit timestamps of every offset record written, in order.
fn commit_timestamps(log: &MemoryGroupLog) -> Vec<i64> {
    log.records()
        .iter()
        .filter(|r| {
            matches!(
                GroupRecordKey::decode(&r.key),
                Ok(GroupRecordKey::OffsetCommit { .. })
            )
        })
        .filter_map(|r| r.value.as_ref())
        .map(|v| OffsetCommitValue::decode(v).unwrap().commit_timestamp)
        .collect()
}

/// In a simple group each offset is kept `offsets_retention_ms` from its own
/// commit, stamped by the coordinator's clock: it expires at exactly that
/// age, not a millisecond earlier, and the group goes with its last offset.
#[tokio::test(start_paused = true)]
async fn simple_group_offsets_expire_exactly_retention_after_their_commit() {
    let retention = 60_000;
    let (c, log, clock) = clocked(GroupConfig {
        offsets_retention_ms: retention,
        ..config(0)
    });
    commit(&c, commit_req("simple", "", -1, &[("t", 0, 1, None)])).await;
    clock.advance(10_000);
    commit(&c, commit_req("simple", "", -1, &[("t", 1, 2, None)])).await;
    assert_eq!(commit_timestamps(&log), vec![START_MS, START_MS + 10_000]);

    clock.set(START_MS + retention - 1);
    c.expire_offsets().await;
    let kept = |f: Vec<(String, i32, i64, i32, String)>| -> Vec<(i32, i64)> {
        f.into_iter().map(|(_, p, o, _, _)| (p, o)).collect()
    };
    assert_eq!(
        kept(fetched(&fetch(&c, "simple", None).await)),
        vec![(0, 1), (1, 2)]
    );
    clock.set(START_MS + retention);
    c.expire_offsets().await;
    assert_eq!(
        kept(fetched(&fetch(&c, "simple", None).await)),
        vec![(1, 2)]
    );
    assert_eq!(state_of(&c, "simple").await, "Empty");
    clock.set(START_MS + 10_000 + retention - 1);
    c.expire_offsets().await;
    assert_eq!(
        kept(fetched(&fetch(&c, "simple", None).await)),
        vec![(1, 2)]
    );
    clock.set(START_MS + 10_000 + retention);
    c.expire_offsets().await;
    assert!(fetch(&c, "simple", None).await.topics.is_empty());
    assert_eq!(state_of(&c, "simple").await, "Dead");
}

/// A consumer group keeps the offsets of the topics it consumes however old
/// they are; once its members leave, retention counts from the moment it
/// became Empty by the coordinator's clock (Kafka's
/// `currentStateTimestamp`), not from the commits.
#[tokio::test(start_paused = true)]
async fn emptied_group_offsets_expire_retention_after_it_emptied() {
    let retention = 60_000;
    let (c, log, clock) = clocked(GroupConfig {
        offsets_retention_ms: retention,
        ..config(0)
    });
    let (leader, follower, generation) = stable_pair(&c, "g").await;
    let r = commit(
        &c,
        commit_req("g", &leader, generation, &[("t1", 0, 5, None)]),
    )
    .await;
    assert_eq!(commit_errors(&r), vec![0]);
    assert_eq!(commit_timestamps(&log), vec![START_MS]);

    clock.advance(2 * retention);
    c.expire_offsets().await;
    let offset = |c: GroupCoordinator| async move {
        fetched(&fetch(&c, "g", Some(&[("t1", &[0])])).await)[0].2
    };
    assert_eq!(offset(c.clone()).await, 5, "consumed topics never expire");

    let emptied = clock.advance(1_000);
    let leave = LeaveGroupRequest::default()
        .with_group_id(GroupId(s("g")))
        .with_members(vec![
            MemberIdentity::default().with_member_id(s(&leader)),
            MemberIdentity::default().with_member_id(s(&follower)),
        ]);
    assert_eq!(c.leave_group(leave, 3).await.error_code, 0);
    assert_eq!(state_of(&c, "g").await, "Empty");

    clock.set(emptied + retention - 1);
    c.expire_offsets().await;
    assert_eq!(offset(c.clone()).await, 5);
    assert_eq!(state_of(&c, "g").await, "Empty");
    clock.set(emptied + retention);
    c.expire_offsets().await;
    assert_eq!(offset(c.clone()).await, -1);
    assert_eq!(state_of(&c, "g").await, "Dead");
}

#[tokio::test(start_paused = true)]
async fn topic_deletion_drops_offsets_everywhere() {
    let (c, _) = coordinator(0);
    commit(
        &c,
        commit_req("a", "", -1, &[("doomed", 0, 1, None), ("kept", 0, 2, None)]),
    )
    .await;
    commit(&c, commit_req("b", "", -1, &[("doomed", 3, 1, None)])).await;
    c.on_topic_deleted("doomed").await;
    assert_eq!(
        fetched(&fetch(&c, "a", None).await),
        vec![("kept".into(), 0, 2, 5, String::new())]
    );
    assert!(fetch(&c, "b", None).await.topics.is_empty());
}

/// A log whose appends wait for a permit, to observe in-flight writes.
struct GatedLog {
    gate: tokio::sync::Semaphore,
}

impl sluice_group::PartitionWriter for GatedLog {
    fn append(
        &self,
        _partition: i32,
        _transactional: Option<ProducerIdAndEpoch>,
        _records: Vec<sluice_group::CoordinatorRecord>,
    ) -> sluice_group::AppendFuture<'_> {
        Box::pin(async move {
            let permit = self.gate.acquire().await.unwrap();
            permit.forget();
            Ok(())
        })
    }
}

#[tokio::test(start_paused = true)]
async fn require_stable_waits_for_in_flight_commits() {
    let log = std::sync::Arc::new(GatedLog {
        gate: tokio::sync::Semaphore::new(0),
    });
    let c = GroupCoordinator::new(config(0), log.clone());
    MemoryGroupLog::new().load_into(&c).unwrap();
    let c1 = c.clone();
    let pending =
        tokio::spawn(
            async move { commit(&c1, commit_req("s", "", -1, &[("t", 0, 8, None)])).await },
        );
    tokio::task::yield_now().await;
    assert!(!pending.is_finished(), "commit waits for durability");
    // A plain fetch does not see the in-flight commit.
    assert_eq!(
        fetched(&fetch(&c, "s", Some(&[("t", &[0])])).await)[0].2,
        -1
    );
    // A stable fetch waits for it.
    let c2 = c.clone();
    let stable = tokio::spawn(async move {
        let req = OffsetFetchRequest::default()
            .with_group_id(GroupId(s("s")))
            .with_topics(None)
            .with_require_stable(true);
        c2.offset_fetch(req, 7).await
    });
    tokio::task::yield_now().await;
    assert!(!stable.is_finished());
    log.gate.add_permits(1);
    assert_eq!(commit_errors(&pending.await.unwrap()), vec![0]);
    assert_eq!(fetched(&stable.await.unwrap())[0].2, 8);
}

#[test]
fn coordinator_futures_are_send() {
    fn send<T: Send>(_: &T) {}
    let (c, _) = coordinator(0);
    send(&c.join_group(JoinGroupRequest::default(), 5, "c", "h"));
    send(&c.sync_group(Default::default(), 5));
    send(&c.heartbeat(Default::default(), 4));
    send(&c.leave_group(Default::default(), 5));
    send(&c.offset_commit(Default::default(), 8));
    send(&c.offset_fetch(Default::default(), 8));
    send(&c.describe_groups(Default::default(), 5));
    send(&c.list_groups(Default::default(), 5));
    send(&c.delete_groups(Default::default(), 2));
    send(&c.offset_delete(Default::default(), 0));
    send(&c.expire_offsets());
    send(&c.on_topic_deleted("t"));
    send(&c.txn_offset_commit(Default::default(), 5));
    send(&c.complete_transaction(0, ProducerIdAndEpoch::new(1, 0), true));
    fn sync_send<T: Send + Sync + Clone>(_: &T) {}
    sync_send(&c);
}

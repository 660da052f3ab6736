//! JoinGroup / SyncGroup / Heartbeat / LeaveGroup behaviour, driven through
//! kafka-protocol request structs with tokio's paused clock.

// Tests may unwrap and index: a failure is a test failure.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

mod common;

use std::time::Duration;

use common::*;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::{DescribeGroupsRequest, GroupId, LeaveGroupRequest};
use sluice_group::records::{GroupMetadataValue, GroupRecordKey};
use sluice_group::{GroupConfig, PartitionWriter, WriteError};
use tokio::time::{Instant, sleep};

#[tokio::test(start_paused = true)]
async fn two_members_join_and_sync() {
    let (c, log) = coordinator(3000);
    let a = member_id(&c, "g").await;
    let b = member_id(&c, "g").await;
    assert!(a.starts_with("client-") && b.starts_with("client-") && a != b);

    let start = Instant::now();
    let (ca, cb, ida, idb) = (c.clone(), c.clone(), a.clone(), b.clone());
    let ja = tokio::spawn(async move { join(&ca, join_req("g", &ida, &["t1"]), 5).await });
    let jb = tokio::spawn(async move { join(&cb, join_req("g", &idb, &["t1", "t2"]), 5).await });
    let (ra, rb) = (ja.await.unwrap(), jb.await.unwrap());
    // The second member arrived during the initial delay, which extends it once.
    assert_eq!(
        start.elapsed(),
        Duration::from_millis(6000),
        "initial rebalance delay"
    );
    assert_eq!((ra.error_code, rb.error_code), (0, 0));
    assert_eq!((ra.generation_id, rb.generation_id), (1, 1));
    assert_eq!(ra.protocol_name.as_ref().unwrap().as_str(), "range");
    assert_eq!(ra.leader, rb.leader);
    let leader = ra.leader.as_str().to_owned();
    let (lr, fr) = if leader == a { (&ra, &rb) } else { (&rb, &ra) };
    assert_eq!(lr.members.len(), 2, "leader gets the member list");
    assert!(fr.members.is_empty(), "followers do not");
    assert_eq!(state_of(&c, "g").await, "CompletingRebalance");

    // Follower syncs first and waits for the leader.
    let follower = fr.member_id.as_str().to_owned();
    let (cf, f) = (c.clone(), follower.clone());
    let fs = tokio::spawn(async move { sync(&cf, sync_req("g", &f, 1, &[])).await });
    tokio::task::yield_now().await;
    assert!(!fs.is_finished());
    let rl = sync(
        &c,
        sync_req(
            "g",
            &leader,
            1,
            &[(leader.as_str(), b"LA"), (follower.as_str(), b"FA")],
        ),
    )
    .await;
    let rf = fs.await.unwrap();
    assert_eq!((rl.error_code, rf.error_code), (0, 0));
    assert_eq!(rl.assignment.as_ref(), b"LA");
    assert_eq!(rf.assignment.as_ref(), b"FA");
    assert_eq!(rf.protocol_name.as_ref().unwrap().as_str(), "range");
    assert_eq!(state_of(&c, "g").await, "Stable");
    assert_eq!(heartbeat(&c, "g", &follower, 1).await, 0);

    // The generation change was persisted with the assignment.
    let records = log.records();
    let sluice_group::CoordinatorRecord { key, value } = records
        .iter()
        .rev()
        .find(|r| {
            matches!(
                GroupRecordKey::decode(&r.key),
                Ok(GroupRecordKey::GroupMetadata { .. })
            )
        })
        .unwrap();
    assert_eq!(
        GroupRecordKey::decode(key).unwrap(),
        GroupRecordKey::GroupMetadata { group: "g".into() }
    );
    let v = GroupMetadataValue::decode(value.as_ref().unwrap()).unwrap();
    assert_eq!(
        (v.generation, v.protocol.as_deref(), v.leader.as_deref()),
        (1, Some("range"), Some(leader.as_str()))
    );
    assert_eq!(v.members.len(), 2);
    assert!(v.members.iter().any(|m| m.assignment.as_ref() == b"FA"));

    // DescribeGroups shows members with metadata and assignment once Stable.
    let d = c
        .describe_groups(
            DescribeGroupsRequest::default().with_groups(vec![GroupId(s("g"))]),
            5,
        )
        .await;
    let g = &d.groups[0];
    assert_eq!(
        (g.protocol_type.as_str(), g.protocol_data.as_str()),
        ("consumer", "range")
    );
    assert_eq!(g.members.len(), 2);
    assert!(g.members.iter().all(|m| !m.member_metadata.is_empty()));
    assert_eq!(g.authorized_operations, i32::MIN);
}

#[tokio::test(start_paused = true)]
async fn member_id_required_only_from_v4() {
    let (c, _) = coordinator(0);
    let r = join(&c, join_req("g", "", &["t1"]), 4).await;
    assert_eq!(r.error_code, 79);
    assert_eq!(r.generation_id, -1);
    assert!(r.member_id.as_str().starts_with("client-"));
    // v3 clients get their id directly with the join result.
    let r3 = join(&c, join_req("g2", "", &["t1"]), 3).await;
    assert_eq!(r3.error_code, 0);
    assert!(r3.member_id.as_str().starts_with("client-"));
    assert_eq!(r3.generation_id, 1);
    assert_eq!(r3.leader, r3.member_id);
    // v<7 answers carry a non-null protocol name.
    assert!(r3.protocol_name.is_some());

    // A pending id not used within the session timeout is forgotten.
    let pending = r.member_id.as_str().to_owned();
    sleep(Duration::from_millis(
        u64::try_from(SESSION_MS).unwrap() + 1,
    ))
    .await;
    let late = join(&c, join_req("g", &pending, &["t1"]), 4).await;
    assert_eq!(late.error_code, 25, "UNKNOWN_MEMBER_ID");
}

#[tokio::test(start_paused = true)]
async fn lone_member_with_no_delay_completes_at_once() {
    let (c, _) = coordinator(0);
    let id = member_id(&c, "g").await;
    let start = Instant::now();
    let r = join(&c, join_req("g", &id, &["t1"]), 5).await;
    assert_eq!(start.elapsed(), Duration::ZERO);
    assert_eq!((r.error_code, r.generation_id), (0, 1));
    assert_eq!(r.leader.as_str(), id);
    assert_eq!(r.members.len(), 1);
}

#[tokio::test(start_paused = true)]
async fn initial_delay_is_extended_by_new_members() {
    let (c, _) = coordinator(3000);
    let a = member_id(&c, "g").await;
    let b = member_id(&c, "g").await;
    let start = Instant::now();
    let (ca, ida) = (c.clone(), a.clone());
    let ja = tokio::spawn(async move { join(&ca, join_req("g", &ida, &["t1"]), 5).await });
    sleep(Duration::from_millis(2000)).await;
    let (cb, idb) = (c.clone(), b.clone());
    let jb = tokio::spawn(async move { join(&cb, join_req("g", &idb, &["t1"]), 5).await });
    let (ra, rb) = (ja.await.unwrap(), jb.await.unwrap());
    // First delay ends at 3000 with a newcomer, so it is extended by 3000 more.
    assert_eq!(start.elapsed(), Duration::from_millis(6000));
    assert_eq!((ra.generation_id, rb.generation_id), (1, 1));
}

#[tokio::test(start_paused = true)]
async fn session_expiry_removes_member_and_rebalances() {
    let (c, _) = coordinator(0);
    let (leader, follower, generation) = stable_pair(&c, "g").await;
    // Only the leader heartbeats.
    for _ in 0..4 {
        sleep(Duration::from_millis(3000)).await;
        if heartbeat(&c, "g", &leader, generation).await != 0 {
            break;
        }
    }
    assert_eq!(state_of(&c, "g").await, "PreparingRebalance");
    assert_eq!(
        heartbeat(&c, "g", &leader, generation).await,
        27,
        "REBALANCE_IN_PROGRESS"
    );
    let r = join(&c, join_req("g", &leader, &["t1"]), 5).await;
    assert_eq!((r.error_code, r.generation_id), (0, generation + 1));
    assert_eq!(r.members.len(), 1);
    assert_eq!(
        heartbeat(&c, "g", &follower, generation + 1).await,
        25,
        "UNKNOWN_MEMBER_ID"
    );
}

#[tokio::test(start_paused = true)]
async fn rebalance_timeout_drops_members_that_do_not_rejoin() {
    let (c, _) = coordinator(0);
    let (leader, follower, generation) = stable_pair(&c, "g").await;
    let start = Instant::now();
    // The leader rejoins (forcing a rebalance); the follower keeps heartbeating but never rejoins.
    let (cl, l) = (c.clone(), leader.clone());
    let jl = tokio::spawn(async move { join(&cl, join_req("g", &l, &["t1"]), 5).await });
    while !jl.is_finished() {
        sleep(Duration::from_millis(2000)).await;
        let code = heartbeat(&c, "g", &follower, generation).await;
        assert!(
            code == 27 || code == 25,
            "unexpected heartbeat error {code}"
        );
    }
    let r = jl.await.unwrap();
    let waited = start.elapsed();
    assert!(waited >= Duration::from_millis(u64::try_from(REBALANCE_MS).unwrap()));
    assert!(waited < Duration::from_millis(u64::try_from(REBALANCE_MS).unwrap() + 2001));
    assert_eq!(
        (r.error_code, r.generation_id, r.members.len()),
        (0, generation + 1, 1)
    );
    assert_eq!(heartbeat(&c, "g", &follower, generation + 1).await, 25);
}

#[tokio::test(start_paused = true)]
async fn follower_rejoin_in_stable_returns_current_generation() {
    let (c, _) = coordinator(0);
    let (leader, follower, generation) = stable_pair(&c, "g").await;
    let r = join(&c, join_req("g", &follower, &["t1"]), 5).await;
    assert_eq!((r.error_code, r.generation_id), (0, generation));
    assert_eq!(r.leader.as_str(), leader);
    assert_eq!(state_of(&c, "g").await, "Stable");
    // Changed metadata forces a rebalance.
    let (cf, f) = (c.clone(), follower.clone());
    let jf = tokio::spawn(async move { join(&cf, join_req("g", &f, &["t1", "t9"]), 5).await });
    tokio::task::yield_now().await;
    assert_eq!(state_of(&c, "g").await, "PreparingRebalance");
    let rl = join(&c, join_req("g", &leader, &["t1"]), 5).await;
    let rf = jf.await.unwrap();
    assert_eq!(
        (rl.generation_id, rf.generation_id),
        (generation + 1, generation + 1)
    );
}

#[tokio::test(start_paused = true)]
async fn unsynced_member_is_removed_after_rebalance_timeout() {
    let (c, _) = coordinator(0);
    let a = member_id(&c, "g").await;
    let b = member_id(&c, "g").await;
    let (ca, cb, ida, idb) = (c.clone(), c.clone(), a.clone(), b.clone());
    let ja = tokio::spawn(async move { join(&ca, join_req("g", &ida, &["t1"]), 5).await });
    let jb = tokio::spawn(async move { join(&cb, join_req("g", &idb, &["t1"]), 5).await });
    let (ra, _) = (ja.await.unwrap(), jb.await.unwrap());
    let leader = ra.leader.as_str().to_owned();
    let follower = if leader == a { b } else { a };
    assert_eq!(sync(&c, sync_req("g", &leader, 1, &[])).await.error_code, 0);
    assert_eq!(state_of(&c, "g").await, "Stable");
    // The follower never syncs (but heartbeats, so only the sync deadline can remove it).
    for _ in 0..11 {
        sleep(Duration::from_millis(3000)).await;
        heartbeat(&c, "g", &follower, 1).await;
        heartbeat(&c, "g", &leader, 1).await;
    }
    assert_eq!(heartbeat(&c, "g", &follower, 1).await, 25);
    assert_eq!(heartbeat(&c, "g", &leader, 1).await, 27);
}

#[tokio::test(start_paused = true)]
async fn static_member_restart_keeps_assignment_without_rebalance() {
    let (c, _) = coordinator(0);
    let join_static = |member: &str, instance: &str| {
        join_req("g", member, &["t1"]).with_group_instance_id(Some(s(instance)))
    };
    // Static members do not need MEMBER_ID_REQUIRED.
    let (c1, c2) = (c.clone(), c.clone());
    let (ra, rb) = {
        let ra = tokio::spawn({
            let req = join_static("", "ia");
            async move { join(&c1, req, 5).await }
        });
        let rb = tokio::spawn({
            let req = join_static("", "ib");
            async move { join(&c2, req, 5).await }
        });
        (ra.await.unwrap(), rb.await.unwrap())
    };
    assert_eq!((ra.error_code, rb.error_code), (0, 0));
    let (a, b) = (
        ra.member_id.as_str().to_owned(),
        rb.member_id.as_str().to_owned(),
    );
    assert!(a.starts_with("ia-") && b.starts_with("ib-"));
    let leader = ra.leader.as_str().to_owned();
    let assignments: Vec<(&str, &[u8])> = vec![(a.as_str(), b"A"), (b.as_str(), b"B")];
    let follower = if leader == a { b.clone() } else { a.clone() };
    let cf = c.clone();
    let fid = follower.clone();
    let fs = tokio::spawn(async move {
        let req = sync_req("g", &fid, 1, &[])
            .with_group_instance_id(Some(s(if fid.starts_with("ia-") { "ia" } else { "ib" })));
        sync(&cf, req).await
    });
    let leader_instance = if leader == a { "ia" } else { "ib" };
    let rl = sync(
        &c,
        sync_req("g", &leader, 1, &assignments).with_group_instance_id(Some(s(leader_instance))),
    )
    .await;
    assert_eq!((rl.error_code, fs.await.unwrap().error_code), (0, 0));

    // Member "ia" restarts: same instance id, no member id, same metadata.
    let restarted = join(&c, join_static("", "ia"), 5).await;
    assert_eq!(restarted.error_code, 0);
    let new_a = restarted.member_id.as_str().to_owned();
    assert_ne!(new_a, a);
    assert_eq!(restarted.generation_id, 1, "no rebalance");
    // Before v9 the old leader id is returned, so the new incarnation acts as a follower.
    assert_eq!(restarted.leader.as_str(), leader);
    assert!(restarted.members.is_empty());
    assert_eq!(state_of(&c, "g").await, "Stable");
    // The old incarnation is fenced; the new one gets the old assignment.
    assert_eq!(
        heartbeat_static(&c, "g", &a, Some("ia"), 1).await,
        82,
        "FENCED_INSTANCE_ID"
    );
    assert_eq!(heartbeat_static(&c, "g", &new_a, Some("ia"), 1).await, 0);
    let rs = sync(
        &c,
        sync_req("g", &new_a, 1, &[]).with_group_instance_id(Some(s("ia"))),
    )
    .await;
    assert_eq!((rs.error_code, rs.assignment.as_ref()), (0, &b"A"[..]));
    // The other member did not notice anything.
    assert_eq!(heartbeat_static(&c, "g", &b, Some("ib"), 1).await, 0);

    // With JoinGroup v9 a restarted leader is told it leads but must skip the assignment.
    let r9 = join(&c, join_static("", leader_instance), 9).await;
    assert_eq!(r9.error_code, 0);
    assert!(r9.skip_assignment);
    assert_eq!(r9.leader, r9.member_id);
    assert_eq!(r9.members.len(), 2);
    assert_eq!(state_of(&c, "g").await, "Stable");
}

#[tokio::test(start_paused = true)]
async fn static_member_with_unknown_member_id_is_rejected() {
    let (c, _) = coordinator(0);
    let r = join(
        &c,
        join_req("g", "", &["t1"]).with_group_instance_id(Some(s("i"))),
        5,
    )
    .await;
    assert_eq!(r.error_code, 0);
    let id = r.member_id.as_str().to_owned();
    // A known member id with another instance id is unknown...
    let wrong = join(
        &c,
        join_req("g", &id, &["t1"]).with_group_instance_id(Some(s("other"))),
        5,
    )
    .await;
    assert_eq!(wrong.error_code, 25);
    // ...and a stale member id for a known instance is fenced.
    let fenced = join(
        &c,
        join_req("g", "stale", &["t1"]).with_group_instance_id(Some(s("i"))),
        5,
    )
    .await;
    assert_eq!(fenced.error_code, 82);
}

#[tokio::test(start_paused = true)]
async fn leave_group_batched_and_single() {
    let (c, _) = coordinator(0);
    let (leader, follower, generation) = stable_pair(&c, "g").await;
    let req = LeaveGroupRequest::default()
        .with_group_id(GroupId(s("g")))
        .with_members(vec![
            MemberIdentity::default().with_member_id(s(&leader)),
            MemberIdentity::default().with_member_id(s("nobody")),
            MemberIdentity::default().with_member_id(s(&follower)),
        ]);
    let r = c.leave_group(req, 3).await;
    assert_eq!(r.error_code, 0);
    let codes: Vec<i16> = r.members.iter().map(|m| m.error_code).collect();
    assert_eq!(codes, vec![0, 25, 0]);
    assert_eq!(r.members[1].member_id.as_str(), "nobody");
    // Everybody left: the rebalance completes into an Empty group of the next generation.
    assert_eq!(state_of(&c, "g").await, "Empty");
    let d = c
        .describe_groups(
            DescribeGroupsRequest::default().with_groups(vec![GroupId(s("g"))]),
            5,
        )
        .await;
    assert!(d.groups[0].members.is_empty());
    assert_eq!(heartbeat(&c, "g", &leader, generation).await, 25);

    // v0-2: one member, error at the top level.
    let (l2, f2, _) = stable_pair(&c, "h").await;
    let single = LeaveGroupRequest::default()
        .with_group_id(GroupId(s("h")))
        .with_member_id(s(&l2));
    assert_eq!(c.leave_group(single.clone(), 1).await.error_code, 0);
    assert_eq!(c.leave_group(single, 1).await.error_code, 25);
    assert_eq!(state_of(&c, "h").await, "PreparingRebalance");
    let r = join(&c, join_req("h", &f2, &["t1"]), 5).await;
    assert_eq!((r.error_code, r.members.len()), (0, 1));

    // Unknown group: per-member UNKNOWN_MEMBER_ID.
    let r = c
        .leave_group(
            LeaveGroupRequest::default()
                .with_group_id(GroupId(s("zz")))
                .with_members(vec![MemberIdentity::default().with_member_id(s("m"))]),
            5,
        )
        .await;
    assert_eq!((r.error_code, r.members[0].error_code), (0, 25));
}

#[tokio::test(start_paused = true)]
async fn admin_can_remove_static_member_by_instance_id() {
    let (c, _) = coordinator(0);
    let r = join(
        &c,
        join_req("g", "", &["t1"]).with_group_instance_id(Some(s("i"))),
        5,
    )
    .await;
    assert_eq!(r.error_code, 0);
    let req = LeaveGroupRequest::default()
        .with_group_id(GroupId(s("g")))
        .with_members(vec![
            MemberIdentity::default().with_group_instance_id(Some(s("i"))),
        ]);
    let r = c.leave_group(req, 4).await;
    assert_eq!(r.members[0].error_code, 0);
    assert_eq!(state_of(&c, "g").await, "Empty");
}

#[tokio::test(start_paused = true)]
async fn join_validation_errors() {
    let (c, _) = coordinator_with(GroupConfig {
        initial_rebalance_delay_ms: 0,
        max_group_size: 2,
        ..GroupConfig::default()
    });
    assert_eq!(
        join(&c, join_req("", "", &["t1"]), 5).await.error_code,
        24,
        "INVALID_GROUP_ID"
    );
    let short = join_req("g", "", &["t1"]).with_session_timeout_ms(10);
    assert_eq!(
        join(&c, short, 5).await.error_code,
        26,
        "INVALID_SESSION_TIMEOUT"
    );
    let long = join_req("g", "", &["t1"]).with_session_timeout_ms(1_800_001);
    assert_eq!(join(&c, long, 5).await.error_code, 26);
    assert_eq!(
        join(&c, join_req("nope", "m-1", &["t1"]), 5)
            .await
            .error_code,
        25
    );
    let empty_type = join_req("g", "", &["t1"]).with_protocol_type(s(""));
    assert_eq!(
        join(&c, empty_type, 3).await.error_code,
        23,
        "INCONSISTENT_GROUP_PROTOCOL"
    );

    let first = join(&c, join_req("g", "", &["t1"]), 3).await;
    assert_eq!(first.error_code, 0);
    let (c2, _) = coordinator_with(GroupConfig {
        initial_rebalance_delay_ms: 0,
        max_group_size: 1,
        ..GroupConfig::default()
    });
    // A member speaking another protocol type, or sharing no protocol, is refused.
    let other_type = join_req("g", "", &["t1"]).with_protocol_type(s("connect"));
    assert_eq!(join(&c, other_type, 3).await.error_code, 23);
    let mut no_common = join_req("g", "", &["t1"]);
    no_common
        .protocols
        .retain(|p| p.name.as_str() == "roundrobin");
    no_common.protocols[0].name = s("sticky");
    assert_eq!(join(&c, no_common, 3).await.error_code, 23);
    // group.max.size = 1 (checked before protocols).
    assert_eq!(join(&c2, join_req("m", "", &["t1"]), 3).await.error_code, 0);
    let r = join(&c2, join_req("m", "", &["t1"]), 3).await;
    assert_eq!(r.error_code, 81, "GROUP_MAX_SIZE_REACHED");
}

#[tokio::test(start_paused = true)]
async fn sync_and_heartbeat_errors() {
    let (c, _) = coordinator(0);
    assert_eq!(sync(&c, sync_req("g", "m", 1, &[])).await.error_code, 25);
    assert_eq!(heartbeat(&c, "g", "m", 1).await, 25);
    assert_eq!(heartbeat(&c, "", "m", 1).await, 24);
    let (leader, follower, generation) = stable_pair(&c, "g").await;
    assert_eq!(
        heartbeat(&c, "g", &leader, generation + 5).await,
        22,
        "ILLEGAL_GENERATION"
    );
    assert_eq!(
        sync(&c, sync_req("g", &follower, generation + 1, &[]))
            .await
            .error_code,
        22
    );
    let wrong_protocol =
        sync_req("g", &follower, generation, &[]).with_protocol_name(Some(s("sticky")));
    assert_eq!(sync(&c, wrong_protocol).await.error_code, 23);
    // v5 makes protocol type and name mandatory.
    let missing = sync_req("g", &follower, generation, &[]).with_protocol_type(None);
    assert_eq!(c.sync_group(missing.clone(), 5).await.error_code, 23);
    assert_eq!(c.sync_group(missing, 4).await.error_code, 0);
    // During a rebalance, SyncGroup tells members to rejoin.
    let (cl, l) = (c.clone(), leader.clone());
    let _rejoin = tokio::spawn(async move { join(&cl, join_req("g", &l, &["t1"]), 5).await });
    tokio::task::yield_now().await;
    assert_eq!(
        sync(&c, sync_req("g", &follower, generation, &[]))
            .await
            .error_code,
        27
    );
}

#[tokio::test(start_paused = true)]
async fn parked_sync_is_told_to_rejoin_when_a_rebalance_starts() {
    let (c, _) = coordinator(0);
    let a = member_id(&c, "g").await;
    let b = member_id(&c, "g").await;
    let (ca, cb, ida, idb) = (c.clone(), c.clone(), a.clone(), b.clone());
    let ja = tokio::spawn(async move { join(&ca, join_req("g", &ida, &["t1"]), 5).await });
    let jb = tokio::spawn(async move { join(&cb, join_req("g", &idb, &["t1"]), 5).await });
    let (ra, _) = (ja.await.unwrap(), jb.await.unwrap());
    let leader = ra.leader.as_str().to_owned();
    let follower = if leader == a { b } else { a };
    let (cf, f) = (c.clone(), follower.clone());
    let fs = tokio::spawn(async move { sync(&cf, sync_req("g", &f, 1, &[])).await });
    tokio::task::yield_now().await;
    // A third member joins before the leader syncs.
    let third = member_id(&c, "g").await;
    let c3 = c.clone();
    let _j3 = tokio::spawn(async move { join(&c3, join_req("g", &third, &["t1"]), 5).await });
    assert_eq!(fs.await.unwrap().error_code, 27);
}

#[test]
fn memory_log_is_a_partition_writer() {
    fn takes(_: &dyn PartitionWriter) {}
    takes(&sluice_group::MemoryGroupLog::new());
}

#[tokio::test(start_paused = true)]
async fn failed_assignment_write_sends_members_back_to_rejoin() {
    let (c, log) = coordinator(0);
    let a = member_id(&c, "g").await;
    let b = member_id(&c, "g").await;
    let (ca, cb, ida, idb) = (c.clone(), c.clone(), a.clone(), b.clone());
    let ja = tokio::spawn(async move { join(&ca, join_req("g", &ida, &["t1"]), 5).await });
    let jb = tokio::spawn(async move { join(&cb, join_req("g", &idb, &["t1"]), 5).await });
    let (ra, _) = (ja.await.unwrap(), jb.await.unwrap());
    let leader = ra.leader.as_str().to_owned();
    let follower = if leader == a { b } else { a };
    let (cf, f) = (c.clone(), follower.clone());
    let fs = tokio::spawn(async move { sync(&cf, sync_req("g", &f, 1, &[])).await });
    tokio::task::yield_now().await;
    log.fail_next(WriteError::NotLeader);
    let rl = sync(&c, sync_req("g", &leader, 1, &[])).await;
    assert_eq!((rl.error_code, fs.await.unwrap().error_code), (16, 16));
    assert_eq!(state_of(&c, "g").await, "PreparingRebalance");
}

#[tokio::test(start_paused = true)]
async fn failed_static_replacement_keeps_the_old_member() {
    let (c, log) = coordinator(0);
    let req = || join_req("g", "", &["t1"]).with_group_instance_id(Some(s("i")));
    let first = join(&c, req(), 5).await;
    let old = first.member_id.as_str().to_owned();
    let synced = sync(
        &c,
        sync_req("g", &old, 1, &[(old.as_str(), b"X")]).with_group_instance_id(Some(s("i"))),
    )
    .await;
    assert_eq!(synced.error_code, 0);
    log.fail_next(WriteError::PartitionUnavailable(
        sluice_protocol::model::TopicPartition::new("__consumer_offsets", 0),
    ));
    let restarted = join(&c, req(), 5).await;
    assert_eq!(
        (restarted.error_code, restarted.member_id.as_str()),
        (15, "")
    );
    assert_eq!(heartbeat_static(&c, "g", &old, Some("i"), 1).await, 0);
    assert_eq!(state_of(&c, "g").await, "Stable");
}

//! Helpers shared by the coordinator tests.
#![allow(dead_code, clippy::unwrap_used, clippy::indexing_slicing)]

use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::{
    ConsumerProtocolSubscription, DescribeGroupsRequest, GroupId, HeartbeatRequest,
    JoinGroupRequest, JoinGroupResponse, OffsetCommitRequest, OffsetCommitResponse,
    OffsetFetchRequest, OffsetFetchResponse, SyncGroupRequest, SyncGroupResponse, TopicName,
};
use kafka_protocol::protocol::{Encodable, StrBytes};
use sluice_group::{GroupConfig, GroupCoordinator, MemoryGroupLog};
use sluice_protocol::clock::ManualClock;

pub const SESSION_MS: i32 = 10_000;
pub const REBALANCE_MS: i32 = 30_000;

pub fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_owned())
}

pub fn config(delay_ms: u64) -> GroupConfig {
    GroupConfig {
        initial_rebalance_delay_ms: delay_ms,
        ..GroupConfig::default()
    }
}

pub fn coordinator(delay_ms: u64) -> (GroupCoordinator, Arc<MemoryGroupLog>) {
    coordinator_with(config(delay_ms))
}

/// A coordinator with every `__consumer_offsets` partition loaded (from an
/// empty log), as a single broker starts.
pub fn coordinator_with(config: GroupConfig) -> (GroupCoordinator, Arc<MemoryGroupLog>) {
    let log = Arc::new(MemoryGroupLog::new());
    let c = GroupCoordinator::new(config, log.clone());
    log.load_into(&c).unwrap();
    (c, log)
}

/// Where the clock of a [`clocked`] coordinator starts: any fixed instant,
/// so that every time it stamps is known exactly.
pub const START_MS: i64 = 1_700_000_000_000;

/// A coordinator like [`coordinator_with`], telling the time by a manual
/// clock standing at [`START_MS`] until the test moves it.
pub fn clocked(config: GroupConfig) -> (GroupCoordinator, Arc<MemoryGroupLog>, Arc<ManualClock>) {
    let log = Arc::new(MemoryGroupLog::new());
    let clock = Arc::new(ManualClock::new(START_MS));
    let c = GroupCoordinator::with_clock(config, log.clone(), clock.clone());
    log.load_into(&c).unwrap();
    (c, log, clock)
}

/// A fresh coordinator (writing to a log of its own) with every partition
/// loaded from `log`, as after a restart.
pub fn reloaded(log: &MemoryGroupLog) -> GroupCoordinator {
    let c = GroupCoordinator::new(config(0), Arc::new(MemoryGroupLog::new()));
    log.load_into(&c).unwrap();
    c
}

/// Consumer protocol subscription metadata (version 0) for `topics`.
pub fn subscription(topics: &[&str]) -> Bytes {
    let sub =
        ConsumerProtocolSubscription::default().with_topics(topics.iter().map(|t| s(t)).collect());
    let mut buf = BytesMut::new();
    buf.put_i16(0);
    sub.encode(&mut buf, 0).unwrap();
    buf.freeze()
}

pub fn join_req(group: &str, member: &str, topics: &[&str]) -> JoinGroupRequest {
    JoinGroupRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_member_id(s(member))
        .with_session_timeout_ms(SESSION_MS)
        .with_rebalance_timeout_ms(REBALANCE_MS)
        .with_protocol_type(s("consumer"))
        .with_protocols(vec![
            JoinGroupRequestProtocol::default()
                .with_name(s("range"))
                .with_metadata(subscription(topics)),
            JoinGroupRequestProtocol::default()
                .with_name(s("roundrobin"))
                .with_metadata(subscription(topics)),
        ])
}

pub async fn join(c: &GroupCoordinator, req: JoinGroupRequest, version: i16) -> JoinGroupResponse {
    c.join_group(req, version, "client", "/127.0.0.1").await
}

/// KIP-394 dance: obtain a member id with MEMBER_ID_REQUIRED.
pub async fn member_id(c: &GroupCoordinator, group: &str) -> String {
    let r = join(c, join_req(group, "", &["t1"]), 5).await;
    assert_eq!(r.error_code, 79, "MEMBER_ID_REQUIRED");
    r.member_id.as_str().to_owned()
}

pub fn sync_req(
    group: &str,
    member: &str,
    generation: i32,
    assignments: &[(&str, &[u8])],
) -> SyncGroupRequest {
    SyncGroupRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_member_id(s(member))
        .with_generation_id(generation)
        .with_protocol_type(Some(s("consumer")))
        .with_protocol_name(Some(s("range")))
        .with_assignments(
            assignments
                .iter()
                .map(|(m, a)| {
                    SyncGroupRequestAssignment::default()
                        .with_member_id(s(m))
                        .with_assignment(Bytes::copy_from_slice(a))
                })
                .collect(),
        )
}

pub async fn sync(c: &GroupCoordinator, req: SyncGroupRequest) -> SyncGroupResponse {
    c.sync_group(req, 5).await
}

pub async fn heartbeat(c: &GroupCoordinator, group: &str, member: &str, generation: i32) -> i16 {
    heartbeat_static(c, group, member, None, generation).await
}

pub async fn heartbeat_static(
    c: &GroupCoordinator,
    group: &str,
    member: &str,
    instance: Option<&str>,
    generation: i32,
) -> i16 {
    let req = HeartbeatRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_member_id(s(member))
        .with_group_instance_id(instance.map(s))
        .with_generation_id(generation);
    c.heartbeat(req, 4).await.error_code
}

pub async fn state_of(c: &GroupCoordinator, group: &str) -> String {
    let r = c
        .describe_groups(
            DescribeGroupsRequest::default().with_groups(vec![GroupId(s(group))]),
            5,
        )
        .await;
    r.groups[0].group_state.as_str().to_owned()
}

pub fn commit_req(
    group: &str,
    member: &str,
    generation: i32,
    offsets: &[(&str, i32, i64, Option<&str>)],
) -> OffsetCommitRequest {
    let mut topics: Vec<OffsetCommitRequestTopic> = Vec::new();
    for (topic, partition, offset, metadata) in offsets {
        let p = OffsetCommitRequestPartition::default()
            .with_partition_index(*partition)
            .with_committed_offset(*offset)
            .with_committed_leader_epoch(5)
            .with_committed_metadata(metadata.map(s));
        match topics.iter_mut().find(|t| t.name.as_str() == *topic) {
            Some(t) => t.partitions.push(p),
            None => topics.push(
                OffsetCommitRequestTopic::default()
                    .with_name(TopicName(s(topic)))
                    .with_partitions(vec![p]),
            ),
        }
    }
    OffsetCommitRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_member_id(s(member))
        .with_generation_id_or_member_epoch(generation)
        .with_topics(topics)
}

pub async fn commit(c: &GroupCoordinator, req: OffsetCommitRequest) -> OffsetCommitResponse {
    c.offset_commit(req, 8).await
}

/// Error codes of a commit response, flattened in request order.
pub fn commit_errors(r: &OffsetCommitResponse) -> Vec<i16> {
    r.topics
        .iter()
        .flat_map(|t| t.partitions.iter().map(|p| p.error_code))
        .collect()
}

pub async fn fetch(
    c: &GroupCoordinator,
    group: &str,
    topics: Option<&[(&str, &[i32])]>,
) -> OffsetFetchResponse {
    let req = OffsetFetchRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_topics(topics.map(|ts| {
            ts.iter()
                .map(|(t, ps)| {
                    OffsetFetchRequestTopic::default()
                        .with_name(TopicName(s(t)))
                        .with_partition_indexes(ps.to_vec())
                })
                .collect()
        }));
    c.offset_fetch(req, 7).await
}

/// (topic, partition, offset, leader epoch, metadata) of a v1-v7 fetch response.
pub fn fetched(r: &OffsetFetchResponse) -> Vec<(String, i32, i64, i32, String)> {
    r.topics
        .iter()
        .flat_map(|t| {
            t.partitions.iter().map(move |p| {
                (
                    t.name.as_str().to_owned(),
                    p.partition_index,
                    p.committed_offset,
                    p.committed_leader_epoch,
                    p.metadata
                        .as_ref()
                        .map(|m| m.as_str().to_owned())
                        .unwrap_or_default(),
                )
            })
        })
        .collect()
}

/// Two members joined and synced: (leader, follower, generation).
pub async fn stable_pair(c: &GroupCoordinator, group: &str) -> (String, String, i32) {
    let a = member_id(c, group).await;
    let b = member_id(c, group).await;
    let (ca, cb) = (c.clone(), c.clone());
    let (ga, gb) = (group.to_owned(), group.to_owned());
    let (ida, idb) = (a.clone(), b.clone());
    let ja = tokio::spawn(async move { join(&ca, join_req(&ga, &ida, &["t1"]), 5).await });
    let jb = tokio::spawn(async move { join(&cb, join_req(&gb, &idb, &["t1"]), 5).await });
    let (ra, rb) = (ja.await.unwrap(), jb.await.unwrap());
    assert_eq!((ra.error_code, rb.error_code), (0, 0));
    let leader = ra.leader.as_str().to_owned();
    let follower = if leader == a { b } else { a };
    let generation = ra.generation_id;
    let cf = c.clone();
    let (gf, f) = (group.to_owned(), follower.clone());
    let fs = tokio::spawn(async move { sync(&cf, sync_req(&gf, &f, generation, &[])).await });
    let assignments: Vec<(&str, &[u8])> = vec![(leader.as_str(), b"L"), (follower.as_str(), b"F")];
    let rl = sync(c, sync_req(group, &leader, generation, &assignments)).await;
    assert_eq!(rl.error_code, 0);
    assert_eq!(fs.await.unwrap().error_code, 0);
    (leader, follower, generation)
}

//! Every response the coordinator builds must encode at the version it was
//! asked for (kafka-protocol refuses fields a version does not have).

// Tests may unwrap and index: a failure is a test failure.
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]

mod common;

use bytes::BytesMut;
use common::*;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::offset_delete_request::{
    OffsetDeleteRequestPartition, OffsetDeleteRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestGroup;
use kafka_protocol::messages::{
    DeleteGroupsRequest, DescribeGroupsRequest, GroupId, HeartbeatRequest, LeaveGroupRequest,
    ListGroupsRequest, OffsetDeleteRequest, OffsetFetchRequest, TopicName,
};
use kafka_protocol::protocol::Encodable;

fn encodes<T: Encodable>(message: &T, version: i16) {
    let mut buf = BytesMut::new();
    message
        .encode(&mut buf, version)
        .unwrap_or_else(|e| panic!("version {version}: {e}"));
}

#[tokio::test(start_paused = true)]
async fn responses_encode_at_every_version() {
    let (c, _) = coordinator(0);
    for version in 0..=9i16 {
        let group = format!("j{version}");
        let req =
            join_req(&group, "", &["t1"]).with_group_instance_id((version >= 5).then(|| s("inst")));
        let r = join(&c, req, version).await;
        encodes(&r, version);
        if r.error_code == 79 {
            let again = join(&c, join_req(&group, r.member_id.as_str(), &["t1"]), version).await;
            encodes(&again, version);
        }
        // An error answer too.
        encodes(&join(&c, join_req("", "", &["t1"]), version).await, version);
    }
    let (leader, follower, generation) = stable_pair(&c, "g").await;
    for version in 0..=5i16 {
        let mut req = sync_req("g", &follower, generation, &[]);
        if version < 5 {
            req = req.with_protocol_type(None).with_protocol_name(None);
        }
        encodes(&c.sync_group(req, version).await, version);
    }
    for version in 0..=4i16 {
        let req = HeartbeatRequest::default()
            .with_group_id(GroupId(s("g")))
            .with_member_id(s(&leader))
            .with_generation_id(generation);
        encodes(&c.heartbeat(req, version).await, version);
    }
    for version in 0..=6i16 {
        let req = DescribeGroupsRequest::default()
            .with_groups(vec![
                GroupId(s("g")),
                GroupId(s("j7")),
                GroupId(s("unknown")),
            ])
            .with_include_authorized_operations(version >= 3);
        encodes(&c.describe_groups(req, version).await, version);
    }
    for version in 0..=5i16 {
        encodes(
            &c.list_groups(ListGroupsRequest::default(), version).await,
            version,
        );
    }
    for version in 2..=9i16 {
        let req = commit_req("g", &follower, generation, &[("t1", 0, 1, Some("m"))]);
        encodes(&c.offset_commit(req, version).await, version);
    }
    for version in 1..=7i16 {
        encodes(&fetch(&c, "g", Some(&[("t1", &[0, 1])])).await, version);
        if version >= 2 {
            let all = OffsetFetchRequest::default()
                .with_group_id(GroupId(s("g")))
                .with_topics(None);
            encodes(&c.offset_fetch(all, version).await, version);
        }
    }
    for version in 8..=9i16 {
        let req = OffsetFetchRequest::default().with_groups(vec![
            OffsetFetchRequestGroup::default().with_group_id(GroupId(s("g"))),
        ]);
        encodes(&c.offset_fetch(req, version).await, version);
    }
    let od = OffsetDeleteRequest::default()
        .with_group_id(GroupId(s("g")))
        .with_topics(vec![
            OffsetDeleteRequestTopic::default()
                .with_name(TopicName(s("t9")))
                .with_partitions(vec![OffsetDeleteRequestPartition::default()]),
        ]);
    encodes(&c.offset_delete(od, 0).await, 0);
    for version in 0..=5i16 {
        let req = LeaveGroupRequest::default()
            .with_group_id(GroupId(s("g")))
            .with_member_id(s("nobody"))
            .with_members(vec![MemberIdentity::default().with_member_id(s("nobody"))]);
        let req = if version >= 3 {
            req.with_member_id(s(""))
        } else {
            req.with_members(vec![])
        };
        encodes(&c.leave_group(req, version).await, version);
    }
    for version in 0..=2i16 {
        let req = DeleteGroupsRequest::default()
            .with_groups_names(vec![GroupId(s("g")), GroupId(s("x"))]);
        encodes(&c.delete_groups(req, version).await, version);
    }
}

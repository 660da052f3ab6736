#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
//! Bad group requests over raw frames: each gets Kafka's error code, the group the request
//! aimed at is left as it was, and a normal librdkafka client is served afterwards.
//!
//! Every broker runs with `--group-initial-rebalance-delay-ms 0` (the harness passes it).

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::describe_groups_response::DescribedGroup;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::{
    ConsumerProtocolSubscription, DescribeGroupsRequest, GroupId, HeartbeatRequest,
    JoinGroupRequest, JoinGroupResponse, SyncGroupRequest,
};
use kafka_protocol::protocol::{Encodable, StrBytes};
use sluice_e2e::raw::RawConn;
use sluice_e2e::{Broker, assert_serving};

const NONE: i16 = 0;
const INCONSISTENT_GROUP_PROTOCOL: i16 = 23;
const INVALID_GROUP_ID: i16 = 24;
const UNKNOWN_MEMBER_ID: i16 = 25;
const INVALID_SESSION_TIMEOUT: i16 = 26;
const MEMBER_ID_REQUIRED: i16 = 79;
const FENCED_INSTANCE_ID: i16 = 82;

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

/// A consumer-protocol subscription to `topic` (version prefix + body), as clients send it.
fn subscription(topic: &str) -> Bytes {
    let mut b = BytesMut::new();
    b.put_i16(0);
    ConsumerProtocolSubscription::default()
        .with_topics(vec![s(topic)])
        .encode(&mut b, 0)
        .expect("encode subscription");
    b.freeze()
}

struct Join<'a> {
    group: &'a str,
    member: &'a str,
    instance: Option<&'a str>,
    session_timeout_ms: i32,
    protocol_type: &'a str,
    protocols: &'a [&'a str],
}

impl Default for Join<'_> {
    fn default() -> Self {
        Join {
            group: "g",
            member: "",
            instance: None,
            session_timeout_ms: 10_000,
            protocol_type: "consumer",
            protocols: &["range"],
        }
    }
}

impl Join<'_> {
    fn request(&self) -> JoinGroupRequest {
        JoinGroupRequest::default()
            .with_group_id(GroupId(s(self.group)))
            .with_session_timeout_ms(self.session_timeout_ms)
            .with_rebalance_timeout_ms(10_000)
            .with_member_id(s(self.member))
            .with_group_instance_id(self.instance.map(s))
            .with_protocol_type(s(self.protocol_type))
            .with_protocols(
                self.protocols
                    .iter()
                    .map(|p| {
                        JoinGroupRequestProtocol::default()
                            .with_name(s(p))
                            .with_metadata(subscription("t"))
                    })
                    .collect(),
            )
    }
}

/// A raw connection with its own correlation ids.
struct Conn {
    conn: RawConn,
    corr: i32,
}

impl Conn {
    fn new(broker: &Broker) -> Conn {
        Conn {
            conn: RawConn::connect(broker.addr()),
            corr: 0,
        }
    }

    fn join(&mut self, version: i16, j: &Join<'_>) -> JoinGroupResponse {
        self.corr += 1;
        self.conn.roundtrip(version, self.corr, &j.request())
    }

    /// Joins a new dynamic member at v5 (member id required, then accepted); returns the
    /// member id and generation. The member is alone, so it is the leader.
    fn join_member(&mut self, j: &Join<'_>) -> (String, i32) {
        let first = self.join(5, j);
        assert_eq!(
            first.error_code, MEMBER_ID_REQUIRED,
            "first join: {first:?}"
        );
        let member = first.member_id.to_string();
        assert!(!member.is_empty(), "MEMBER_ID_REQUIRED carries a member id");
        let second = self.join(
            5,
            &Join {
                member: &member,
                ..*j
            },
        );
        assert_eq!(second.error_code, NONE, "second join: {second:?}");
        assert_eq!(second.member_id.as_str(), member);
        assert_eq!(second.leader.as_str(), member, "a lone member leads");
        (member, second.generation_id)
    }

    fn sync(&mut self, group: &str, member: &str, instance: Option<&str>, generation: i32) -> i16 {
        self.corr += 1;
        let req = SyncGroupRequest::default()
            .with_group_id(GroupId(s(group)))
            .with_generation_id(generation)
            .with_member_id(s(member))
            .with_group_instance_id(instance.map(s))
            .with_assignments(vec![
                SyncGroupRequestAssignment::default()
                    .with_member_id(s(member))
                    .with_assignment(Bytes::from_static(
                        b"\x00\x00\x00\x00\x00\x00\xff\xff\xff\xff",
                    )),
            ]);
        self.conn
            .roundtrip::<SyncGroupRequest>(3, self.corr, &req)
            .error_code
    }

    fn heartbeat(
        &mut self,
        version: i16,
        group: &str,
        member: &str,
        instance: Option<&str>,
        generation: i32,
    ) -> i16 {
        self.corr += 1;
        let req = HeartbeatRequest::default()
            .with_group_id(GroupId(s(group)))
            .with_generation_id(generation)
            .with_member_id(s(member))
            .with_group_instance_id(instance.map(s));
        self.conn.roundtrip(version, self.corr, &req).error_code
    }

    fn describe(&mut self, group: &str) -> DescribedGroup {
        self.corr += 1;
        let req = DescribeGroupsRequest::default().with_groups(vec![GroupId(s(group))]);
        let mut resp = self.conn.roundtrip(5, self.corr, &req);
        assert_eq!(resp.groups.len(), 1);
        let g = resp.groups.remove(0);
        assert_eq!(g.error_code, NONE, "describe {group}: {g:?}");
        g
    }
}

fn member_ids(g: &DescribedGroup) -> Vec<String> {
    g.members.iter().map(|m| m.member_id.to_string()).collect()
}

#[test]
fn join_group_with_empty_group_id_is_invalid_group_id() {
    let broker = Broker::start();
    let mut c = Conn::new(&broker);
    for version in 0..=9 {
        let r = c.join(
            version,
            &Join {
                group: "",
                ..Join::default()
            },
        );
        assert_eq!(
            r.error_code, INVALID_GROUP_ID,
            "JoinGroup v{version}: {r:?}"
        );
        assert_eq!(r.generation_id, -1, "JoinGroup v{version}");
    }
    assert_serving(&broker.bootstrap(), "alive");
}

#[test]
fn heartbeat_for_an_unknown_member_is_unknown_member_id() {
    let broker = Broker::start();
    let mut c = Conn::new(&broker);
    // A group that does not exist.
    for version in 0..=4 {
        let e = c.heartbeat(version, "no-such-group", "ghost", None, 1);
        assert_eq!(e, UNKNOWN_MEMBER_ID, "Heartbeat v{version}, unknown group");
    }
    // A group with one member; the heartbeat names another.
    let j = Join {
        group: "hb",
        ..Join::default()
    };
    let (member, generation) = c.join_member(&j);
    for version in 0..=4 {
        let e = c.heartbeat(version, "hb", "ghost", None, generation);
        assert_eq!(e, UNKNOWN_MEMBER_ID, "Heartbeat v{version}, unknown member");
    }
    // The real member is unaffected: it syncs, heartbeats, and is the only member.
    assert_eq!(c.sync("hb", &member, None, generation), NONE, "SyncGroup");
    assert_eq!(c.heartbeat(4, "hb", &member, None, generation), NONE);
    let g = c.describe("hb");
    assert_eq!(g.group_state.as_str(), "Stable");
    assert_eq!(member_ids(&g), vec![member]);
    assert_serving(&broker.bootstrap(), "alive");
}

#[test]
fn join_group_with_a_protocol_no_member_shares_is_inconsistent_group_protocol() {
    let broker = Broker::start();
    let mut c = Conn::new(&broker);
    let j = Join {
        group: "proto",
        ..Join::default()
    };
    let (member, generation) = c.join_member(&j);
    let mut other = Conn::new(&broker);
    for version in [0, 3, 4, 5, 9] {
        // Same protocol type, no common protocol name.
        let r = other.join(
            version,
            &Join {
                group: "proto",
                protocols: &["roundrobin"],
                ..Join::default()
            },
        );
        assert_eq!(
            r.error_code, INCONSISTENT_GROUP_PROTOCOL,
            "JoinGroup v{version}, protocol roundrobin vs range: {r:?}"
        );
        // Another protocol type with the same protocol name.
        let r = other.join(
            version,
            &Join {
                group: "proto",
                protocol_type: "connect",
                ..Join::default()
            },
        );
        assert_eq!(
            r.error_code, INCONSISTENT_GROUP_PROTOCOL,
            "JoinGroup v{version}, protocol type connect vs consumer: {r:?}"
        );
    }
    // The group still has its one member, which completes the rebalance normally.
    assert_eq!(
        c.sync("proto", &member, None, generation),
        NONE,
        "SyncGroup"
    );
    let g = c.describe("proto");
    assert_eq!(g.group_state.as_str(), "Stable");
    assert_eq!(g.protocol_type.as_str(), "consumer");
    assert_eq!(g.protocol_data.as_str(), "range");
    assert_eq!(member_ids(&g), vec![member]);
    assert_serving(&broker.bootstrap(), "alive");
}

#[test]
fn join_group_with_a_session_timeout_out_of_bounds_is_invalid_session_timeout() {
    let broker = Broker::start();
    let mut c = Conn::new(&broker);
    // group.min.session.timeout.ms is 6000 and group.max.session.timeout.ms 1800000 by default.
    for timeout in [1, 5_999, 1_800_001] {
        for version in 0..=9 {
            let r = c.join(
                version,
                &Join {
                    group: "sess",
                    session_timeout_ms: timeout,
                    ..Join::default()
                },
            );
            assert_eq!(
                r.error_code, INVALID_SESSION_TIMEOUT,
                "JoinGroup v{version}, session timeout {timeout} ms: {r:?}"
            );
        }
    }
    // Nothing joined.
    let g = c.describe("sess");
    assert!(g.members.is_empty(), "{g:?}");
    assert_serving(&broker.bootstrap(), "alive");
}

#[test]
fn old_member_id_of_a_rejoined_static_member_is_fenced() {
    let broker = Broker::start();
    let mut c = Conn::new(&broker);
    let j = Join {
        group: "fence",
        instance: Some("inst"),
        ..Join::default()
    };
    // A static member needs no member-id round trip.
    let first = c.join(5, &j);
    assert_eq!(first.error_code, NONE, "{first:?}");
    let old = first.member_id.to_string();
    assert_eq!(
        c.sync("fence", &old, Some("inst"), first.generation_id),
        NONE
    );
    // The same instance joins again without a member id (a restart): it gets a new id in
    // place of the old one.
    let again = c.join(5, &j);
    assert_eq!(again.error_code, NONE, "{again:?}");
    let new = again.member_id.to_string();
    assert_ne!(new, old, "a rejoining static member gets a new member id");
    assert_eq!(
        again.generation_id, first.generation_id,
        "no rebalance for a static rejoin of a stable group"
    );
    assert_eq!(
        c.heartbeat(4, "fence", &old, Some("inst"), first.generation_id),
        FENCED_INSTANCE_ID,
        "heartbeat with the replaced member id"
    );
    assert_eq!(
        c.heartbeat(4, "fence", &new, Some("inst"), again.generation_id),
        NONE,
        "heartbeat with the new member id"
    );
    let g = c.describe("fence");
    assert_eq!(g.group_state.as_str(), "Stable");
    assert_eq!(member_ids(&g), vec![new]);
    assert_eq!(
        g.members[0].group_instance_id.as_deref(),
        Some("inst"),
        "{g:?}"
    );
    assert_serving(&broker.bootstrap(), "alive");
}

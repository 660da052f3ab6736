//! Consumer-group membership with Kafka's classic protocol (JoinGroup, SyncGroup, Heartbeat,
//! LeaveGroup), as Kafka's `subscribe()` consumers use it: the group assigns partitions, and
//! the member the coordinator elects leader computes the assignment with the range or
//! round-robin strategy (the same ones as Kafka's `RangeAssignor` and
//! `RoundRobinAssignor`), so the members may be any mix of Kafka clients.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::consumer_protocol_assignment::TopicPartition as AssignedTopic;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::{
    ConsumerProtocolAssignment, ConsumerProtocolSubscription, GroupId, HeartbeatRequest,
    JoinGroupRequest, LeaveGroupRequest, SyncGroupRequest, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

use crate::Client;
use crate::conn::is_coordinator_retry;
use crate::error::{Error, KafkaCode, Result, check};

/// The partition assignment strategies this client offers, most preferred first.
pub const ASSIGNORS: [&str; 2] = ["range", "roundrobin"];
/// How many JoinGroup/SyncGroup rounds one join may take before giving up.
const JOIN_ATTEMPTS: u32 = 20;

const MEMBER_ID_REQUIRED: KafkaCode = KafkaCode(79);
const UNKNOWN_MEMBER_ID: KafkaCode = KafkaCode(25);
const ILLEGAL_GENERATION: KafkaCode = KafkaCode(22);
const REBALANCE_IN_PROGRESS: KafkaCode = KafkaCode(27);
const FENCED_INSTANCE_ID: KafkaCode = KafkaCode(82);

/// Timeouts of a group member (Kafka's consumer settings of the same names).
#[derive(Debug, Clone)]
pub struct MembershipConfig {
    /// session.timeout.ms: the coordinator drops a member silent for this long.
    pub session_timeout: Duration,
    /// max.poll.interval.ms: how long the coordinator waits for members to rejoin.
    pub rebalance_timeout: Duration,
    /// heartbeat.interval.ms.
    pub heartbeat_interval: Duration,
}

impl Default for MembershipConfig {
    fn default() -> Self {
        Self {
            session_timeout: Duration::from_secs(45),
            rebalance_timeout: Duration::from_secs(60),
            heartbeat_interval: Duration::from_secs(3),
        }
    }
}

/// This member's place in one generation of a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Membership {
    pub group: String,
    pub member_id: String,
    pub generation_id: i32,
    /// The assignment strategy the group chose.
    pub protocol: String,
    pub leader: bool,
    /// The partitions assigned to this member: (topic, sorted partitions), sorted by topic.
    pub assignment: Vec<(String, Vec<i32>)>,
}

impl Membership {
    /// The partitions of `topic` assigned to this member.
    pub fn partitions_of(&self, topic: &str) -> Vec<i32> {
        self.assignment
            .iter()
            .find(|(t, _)| t == topic)
            .map(|(_, ps)| ps.clone())
            .unwrap_or_default()
    }
}

/// What a heartbeat learned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeartbeatOutcome {
    /// The generation goes on (or the coordinator is moving, and the next heartbeat will
    /// find it).
    Stable,
    /// A rebalance started: commit, then join again with the same member id.
    Rebalance,
    /// The coordinator no longer knows this member or generation: offsets cannot be
    /// committed as this member any more; join again as a new member.
    Fenced(KafkaCode),
}

fn group_id(g: &str) -> GroupId {
    GroupId(StrBytes::from_string(g.to_string()))
}

/// A consumer-protocol message: its version as an int16, then the body at that version.
fn encode_versioned<T: Encodable>(message: &T, version: i16) -> Result<Bytes> {
    let mut buf = BytesMut::new();
    buf.put_i16(version);
    message
        .encode(&mut buf, version)
        .map_err(|e| Error::Invalid(format!("cannot encode a consumer-protocol message: {e:#}")))?;
    Ok(buf.freeze())
}

/// Decodes a consumer-protocol message written at any version (newer versions only add
/// fields, so they are read as the newest one known).
fn decode_versioned<T: Decodable>(bytes: &Bytes, newest: i16) -> Option<T> {
    let mut buf = bytes.clone();
    if buf.remaining() < 2 {
        return None;
    }
    let version = buf.get_i16().clamp(0, newest);
    T::decode(&mut buf, version).ok()
}

/// The topics a member subscribed to, from its JoinGroup metadata.
fn subscribed_topics(member: &JoinGroupResponseMember) -> Vec<String> {
    decode_versioned::<ConsumerProtocolSubscription>(&member.metadata, 3)
        .map(|s| s.topics.iter().map(|t| t.to_string()).collect())
        .unwrap_or_default()
}

/// Partitions per member: member id → topic → sorted partitions.
pub type Assignments = BTreeMap<String, BTreeMap<String, Vec<i32>>>;

/// Kafka's range strategy: per topic, the subscribed members in member-id order get
/// consecutive ranges, the first `partitions % members` one partition more.
pub fn assign_range(
    subscriptions: &BTreeMap<String, Vec<String>>,
    partition_counts: &BTreeMap<String, i32>,
) -> Assignments {
    let mut out: Assignments = subscriptions
        .keys()
        .map(|m| (m.clone(), BTreeMap::new()))
        .collect();
    for (topic, &count) in partition_counts {
        let members: Vec<&String> = subscriptions
            .iter()
            .filter(|(_, topics)| topics.contains(topic))
            .map(|(m, _)| m)
            .collect();
        let Ok(n) = i32::try_from(members.len()) else {
            continue;
        };
        if n == 0 {
            continue;
        }
        let (per_member, extra) = (count / n, count % n);
        for (i, member) in (0..).zip(members) {
            let start = i * per_member + i.min(extra);
            let len = per_member + i32::from(i < extra);
            if len > 0
                && let Some(m) = out.get_mut(member)
            {
                m.insert(topic.clone(), (start..start + len).collect());
            }
        }
    }
    out
}

/// Kafka's round-robin strategy: every partition of every topic in (topic, partition) order
/// goes to the next member in member-id order that subscribed to its topic.
pub fn assign_round_robin(
    subscriptions: &BTreeMap<String, Vec<String>>,
    partition_counts: &BTreeMap<String, i32>,
) -> Assignments {
    let mut out: Assignments = subscriptions
        .keys()
        .map(|m| (m.clone(), BTreeMap::new()))
        .collect();
    let members: Vec<&String> = subscriptions.keys().collect();
    let mut next = 0usize;
    for (topic, &count) in partition_counts {
        for partition in 0..count {
            // The next member (cyclically) subscribed to this topic, if any.
            let chosen = (0..members.len())
                .map(|step| (next + step) % members.len())
                .find(|&i| {
                    members
                        .get(i)
                        .and_then(|m| subscriptions.get(*m))
                        .is_some_and(|topics| topics.contains(topic))
                });
            let Some(i) = chosen else { break };
            next = i + 1;
            if let Some(m) = members.get(i).and_then(|m| out.get_mut(*m)) {
                m.entry(topic.clone()).or_default().push(partition);
            }
        }
    }
    out
}

impl Client {
    /// Joins `group` as a consumer subscribed to `topics` and waits for this member's
    /// assignment (computing everyone's when elected leader). `member_id` is the id of an
    /// earlier generation to rejoin with, or empty for a new member.
    pub async fn join_group(
        &mut self,
        group: &str,
        topics: &[String],
        member_id: &str,
        config: &MembershipConfig,
    ) -> Result<Membership> {
        let mut member_id = member_id.to_string();
        let mut last_error = None;
        for _ in 0..JOIN_ATTEMPTS {
            match self.join_once(group, topics, &member_id, config).await {
                Ok(membership) => return Ok(membership),
                Err(JoinError::Retry {
                    member_id: next,
                    cause,
                }) => {
                    member_id = next;
                    last_error = Some(cause);
                }
                Err(JoinError::Fatal(e)) => return Err(e),
            }
        }
        Err(last_error.unwrap_or_else(|| Error::Invalid(format!("cannot join group '{group}'"))))
    }

    /// One JoinGroup + SyncGroup round.
    async fn join_once(
        &mut self,
        group: &str,
        topics: &[String],
        member_id: &str,
        config: &MembershipConfig,
    ) -> Result<Membership, JoinError> {
        let coordinator = self.find_coordinator(group).await?;
        let subscription = ConsumerProtocolSubscription::default().with_topics(
            topics
                .iter()
                .map(|t| StrBytes::from_string(t.clone()))
                .collect(),
        );
        let metadata = encode_versioned(&subscription, 0)?;
        let request = JoinGroupRequest::default()
            .with_group_id(group_id(group))
            .with_session_timeout_ms(millis(config.session_timeout))
            .with_rebalance_timeout_ms(millis(config.rebalance_timeout))
            .with_member_id(StrBytes::from_string(member_id.to_string()))
            .with_protocol_type(StrBytes::from_static_str("consumer"))
            .with_protocols(
                ASSIGNORS
                    .iter()
                    .map(|name| {
                        JoinGroupRequestProtocol::default()
                            .with_name(StrBytes::from_static_str(name))
                            .with_metadata(metadata.clone())
                    })
                    .collect(),
            );
        // The coordinator holds JoinGroup until every member rejoined (at most the
        // rebalance timeout).
        let wait = config.rebalance_timeout + self.config.request_timeout;
        let conn = self.node(coordinator).await?;
        let version = conn.version::<JoinGroupRequest>()?;
        let joined = conn.request_within(version, &request, wait).await?;
        if let Some(code) = KafkaCode::from_code(joined.error_code) {
            return Err(JoinError::after(
                "JoinGroup",
                group,
                code,
                member_id,
                &joined.member_id,
            ));
        }
        let me = joined.member_id.to_string();
        let protocol = joined
            .protocol_name
            .as_ref()
            .map(|p| p.to_string())
            .unwrap_or_default();
        let leader = joined.leader.as_str() == me;
        let assignments = if leader {
            self.leader_assignments(&protocol, &joined.members).await?
        } else {
            Vec::new()
        };
        let sync = SyncGroupRequest::default()
            .with_group_id(group_id(group))
            .with_generation_id(joined.generation_id)
            .with_member_id(StrBytes::from_string(me.clone()))
            .with_protocol_type(Some(StrBytes::from_static_str("consumer")))
            .with_protocol_name(Some(StrBytes::from_string(protocol.clone())))
            .with_assignments(assignments);
        let conn = self.node(coordinator).await?;
        let version = conn.version::<SyncGroupRequest>()?;
        let synced = conn.request_within(version, &sync, wait).await?;
        if let Some(code) = KafkaCode::from_code(synced.error_code) {
            return Err(JoinError::after("SyncGroup", group, code, &me, &me));
        }
        let mut assignment: Vec<(String, Vec<i32>)> =
            decode_versioned::<ConsumerProtocolAssignment>(&synced.assignment, 3)
                .map(|a| {
                    a.assigned_partitions
                        .iter()
                        .map(|tp| {
                            let mut ps = tp.partitions.clone();
                            ps.sort_unstable();
                            (tp.topic.0.to_string(), ps)
                        })
                        .collect()
                })
                .unwrap_or_default();
        assignment.sort();
        Ok(Membership {
            group: group.to_string(),
            member_id: me,
            generation_id: joined.generation_id,
            protocol,
            leader,
            assignment,
        })
    }

    /// The leader's SyncGroup assignments for every member.
    async fn leader_assignments(
        &mut self,
        protocol: &str,
        members: &[JoinGroupResponseMember],
    ) -> Result<Vec<SyncGroupRequestAssignment>> {
        let subscriptions: BTreeMap<String, Vec<String>> = members
            .iter()
            .map(|m| (m.member_id.to_string(), subscribed_topics(m)))
            .collect();
        let all_topics: Vec<String> = subscriptions
            .values()
            .flatten()
            .cloned()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let md = self.metadata(Some(&all_topics)).await?;
        let partition_counts: BTreeMap<String, i32> = md
            .topics
            .iter()
            .filter(|t| t.error.is_none())
            .map(|t| {
                let n = i32::try_from(t.partitions.len()).unwrap_or(i32::MAX);
                (t.name.clone(), n)
            })
            .collect();
        let assigned = match protocol {
            "range" => assign_range(&subscriptions, &partition_counts),
            "roundrobin" => assign_round_robin(&subscriptions, &partition_counts),
            other => {
                return Err(Error::Invalid(format!(
                    "the group chose assignment strategy '{other}', which this client does not implement ({})",
                    ASSIGNORS.join(", ")
                )));
            }
        };
        assigned
            .into_iter()
            .map(|(member, topics)| {
                let assignment = ConsumerProtocolAssignment::default().with_assigned_partitions(
                    topics
                        .into_iter()
                        .map(|(t, ps)| {
                            AssignedTopic::default()
                                .with_topic(TopicName(StrBytes::from_string(t)))
                                .with_partitions(ps)
                        })
                        .collect(),
                );
                Ok(SyncGroupRequestAssignment::default()
                    .with_member_id(StrBytes::from_string(member))
                    .with_assignment(encode_versioned(&assignment, 0)?))
            })
            .collect()
    }

    /// Heartbeat for this member's generation.
    pub async fn heartbeat(&mut self, m: &Membership) -> Result<HeartbeatOutcome> {
        let coordinator = self.find_coordinator(&m.group).await?;
        let conn = self.node(coordinator).await?;
        let response = conn
            .request(
                &HeartbeatRequest::default()
                    .with_group_id(group_id(&m.group))
                    .with_generation_id(m.generation_id)
                    .with_member_id(StrBytes::from_string(m.member_id.clone())),
            )
            .await?;
        match KafkaCode::from_code(response.error_code) {
            None => Ok(HeartbeatOutcome::Stable),
            Some(REBALANCE_IN_PROGRESS) => Ok(HeartbeatOutcome::Rebalance),
            Some(c) if is_fenced(c) => Ok(HeartbeatOutcome::Fenced(c)),
            // The coordinator moved or is loading: the next heartbeat looks it up again.
            Some(c) if is_coordinator_retry(c) => Ok(HeartbeatOutcome::Stable),
            Some(c) => Err(Error::Kafka {
                api: "Heartbeat",
                resource: format!("group '{}'", m.group),
                code: c,
                message: None,
            }),
        }
    }

    /// Commits offsets of `topic` as this member of its generation.
    pub async fn commit_member_offsets(
        &mut self,
        m: &Membership,
        topic: &str,
        offsets: &[(i32, i64)],
    ) -> Result<()> {
        self.commit_offsets_as(&m.group, m.generation_id, &m.member_id, topic, offsets)
            .await
    }

    /// LeaveGroup, so the others get this member's partitions without waiting for its
    /// session to time out.
    pub async fn leave_group(&mut self, m: &Membership) -> Result<()> {
        let coordinator = self.find_coordinator(&m.group).await?;
        let conn = self.node(coordinator).await?;
        let version = conn.version::<LeaveGroupRequest>()?;
        let mut request = LeaveGroupRequest::default().with_group_id(group_id(&m.group));
        if version >= 3 {
            request.members = vec![
                MemberIdentity::default()
                    .with_member_id(StrBytes::from_string(m.member_id.clone()))
                    .with_reason(Some(StrBytes::from_static_str("the consumer is closing"))),
            ];
        } else {
            request.member_id = StrBytes::from_string(m.member_id.clone());
        }
        let response = conn.request_at(version, &request).await?;
        check(
            "LeaveGroup",
            || format!("group '{}'", m.group),
            response.error_code,
            None,
        )?;
        for member in &response.members {
            match KafkaCode::from_code(member.error_code) {
                // Already gone: nothing to leave.
                None | Some(UNKNOWN_MEMBER_ID) => {}
                Some(code) => {
                    return Err(Error::Kafka {
                        api: "LeaveGroup",
                        resource: format!("group '{}' member {}", m.group, member.member_id),
                        code,
                        message: None,
                    });
                }
            }
        }
        Ok(())
    }
}

/// Whether `code` means this member or generation is no longer valid.
fn is_fenced(code: KafkaCode) -> bool {
    code == UNKNOWN_MEMBER_ID || code == ILLEGAL_GENERATION || code == FENCED_INSTANCE_ID
}

/// Why one join round did not give an assignment.
enum JoinError {
    /// Join again, with this member id; `cause` is reported if the attempts run out.
    Retry {
        member_id: String,
        cause: Error,
    },
    Fatal(Error),
}

impl JoinError {
    /// Classifies an error code of JoinGroup or SyncGroup.
    fn after(
        api: &'static str,
        group: &str,
        code: KafkaCode,
        sent_member_id: &str,
        returned_member_id: &str,
    ) -> JoinError {
        let cause = Error::Kafka {
            api,
            resource: format!("group '{group}'"),
            code,
            message: None,
        };
        let member_id = if code == MEMBER_ID_REQUIRED {
            // KIP-394: join again with the id the coordinator handed out.
            returned_member_id.to_string()
        } else if is_fenced(code) {
            String::new()
        } else if code == REBALANCE_IN_PROGRESS || is_coordinator_retry(code) {
            sent_member_id.to_string()
        } else {
            return JoinError::Fatal(cause);
        };
        JoinError::Retry { member_id, cause }
    }
}

impl From<Error> for JoinError {
    fn from(e: Error) -> Self {
        JoinError::Fatal(e)
    }
}

fn millis(d: Duration) -> i32 {
    i32::try_from(d.as_millis()).unwrap_or(i32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subs(members: &[(&str, &[&str])]) -> BTreeMap<String, Vec<String>> {
        members
            .iter()
            .map(|(m, ts)| (m.to_string(), ts.iter().map(|t| t.to_string()).collect()))
            .collect()
    }

    fn counts(topics: &[(&str, i32)]) -> BTreeMap<String, i32> {
        topics.iter().map(|(t, n)| (t.to_string(), *n)).collect()
    }

    fn of<'a>(a: &'a Assignments, member: &str, topic: &str) -> &'a [i32] {
        a.get(member)
            .and_then(|m| m.get(topic))
            .map_or(&[], Vec::as_slice)
    }

    #[test]
    fn range_gives_consecutive_ranges_the_first_members_one_more() {
        let s = subs(&[("b", &["t", "u"]), ("a", &["t", "u"]), ("c", &["t"])]);
        let a = assign_range(&s, &counts(&[("t", 7), ("u", 3)]));
        assert_eq!(of(&a, "a", "t"), [0, 1, 2]);
        assert_eq!(of(&a, "b", "t"), [3, 4]);
        assert_eq!(of(&a, "c", "t"), [5, 6]);
        assert_eq!(of(&a, "a", "u"), [0, 1]);
        assert_eq!(of(&a, "b", "u"), [2]);
        assert_eq!(of(&a, "c", "u"), [] as [i32; 0]);
    }

    #[test]
    fn range_with_more_members_than_partitions_leaves_some_idle() {
        let s = subs(&[("a", &["t"]), ("b", &["t"]), ("c", &["t"])]);
        let a = assign_range(&s, &counts(&[("t", 2)]));
        assert_eq!(of(&a, "a", "t"), [0]);
        assert_eq!(of(&a, "b", "t"), [1]);
        assert!(a.get("c").is_some_and(BTreeMap::is_empty));
    }

    #[test]
    fn round_robin_deals_partitions_in_turn_skipping_unsubscribed_members() {
        let s = subs(&[("a", &["t", "u"]), ("b", &["t"])]);
        let a = assign_round_robin(&s, &counts(&[("t", 3), ("u", 2)]));
        assert_eq!(of(&a, "a", "t"), [0, 2]);
        assert_eq!(of(&a, "b", "t"), [1]);
        assert_eq!(of(&a, "a", "u"), [0, 1]);
    }

    #[test]
    fn subscriptions_round_trip_at_any_version() {
        let s = ConsumerProtocolSubscription::default()
            .with_topics(vec![StrBytes::from_static_str("t")]);
        for version in 0..=3 {
            let bytes = encode_versioned(&s, version).unwrap_or_default();
            let member = JoinGroupResponseMember::default().with_metadata(bytes);
            assert_eq!(
                subscribed_topics(&member),
                vec!["t".to_string()],
                "v{version}"
            );
        }
        let garbage = JoinGroupResponseMember::default().with_metadata(Bytes::from_static(b"\x00"));
        assert!(subscribed_topics(&garbage).is_empty());
    }
}

//! The in-memory model of one classic group: members, generation, selected
//! protocol, and the bookkeeping of a rebalance in progress.
//!
//! Everything here is plain data and synchronous rules (Kafka's
//! `ClassicGroup`); timers, parked responses and log writes are driven by
//! `rebalance.rs` and the request handlers.

use std::collections::{BTreeMap, HashMap, HashSet};

use bytes::{Buf, Bytes};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::{
    ConsumerProtocolSubscription, JoinGroupResponse, SyncGroupResponse,
};
use kafka_protocol::protocol::{Decodable, StrBytes};
use tokio::sync::oneshot;

use sluice_coordinator::CoordinatorRecord;

use crate::CodecError;
use crate::member::{Member, Protocol};
use crate::offsets::{ExpirationBase, GroupOffsets};
use crate::records::{GroupMetadataValue, MemberMetadataValue, group_record};
use crate::state::GroupState;

/// Protocol type of Java-compatible consumers; the only one whose
/// subscriptions the coordinator understands.
pub(crate) const CONSUMER_PROTOCOL_TYPE: &str = "consumer";

/// A classic group.
#[derive(Debug)]
pub(crate) struct Group {
    pub id: String,
    pub state: GroupState,
    pub previous_state: GroupState,
    /// When the group entered its current state (drives offset expiry of Empty groups).
    pub state_timestamp_ms: Option<i64>,
    pub generation: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader: Option<String>,
    /// Members by id; the ordered map makes leader re-election deterministic.
    pub members: BTreeMap<String, Member>,
    /// `group.instance.id` -> member id of static members.
    pub static_members: HashMap<String, String>,
    /// Member ids handed out with MEMBER_ID_REQUIRED that have not joined yet.
    pub pending_join: HashSet<String>,
    /// Members that received their JoinGroup response but have not sent SyncGroup.
    pub pending_sync: HashSet<String>,
    /// A member joined during the initial (delayed) rebalance, so the delay is extended.
    pub new_member_added: bool,
    /// Topics the members subscribe to, when the group uses the consumer
    /// protocol and the subscriptions could be parsed.
    pub subscribed_topics: Option<HashSet<String>>,
    pub offsets: GroupOffsets,
    /// The last membership snapshot in `__consumer_offsets` (set by replay
    /// only). The members above may be ahead of it: joins and rebalances
    /// change them before anything is written, as in Kafka. Loading rebuilds
    /// the members from it ([`Self::restore_membership`]).
    pub snapshot: Option<GroupMetadataValue>,
}

impl Group {
    pub fn new(id: &str, now_ms: i64) -> Self {
        Self {
            id: id.to_owned(),
            state: GroupState::Empty,
            previous_state: GroupState::Empty,
            state_timestamp_ms: Some(now_ms),
            generation: 0,
            protocol_type: None,
            protocol_name: None,
            leader: None,
            members: BTreeMap::new(),
            static_members: HashMap::new(),
            pending_join: HashSet::new(),
            pending_sync: HashSet::new(),
            new_member_added: false,
            subscribed_topics: None,
            offsets: GroupOffsets::default(),
            snapshot: None,
        }
    }

    /// A group known only from its membership snapshot, as loading finds it.
    pub fn from_snapshot(id: &str, snapshot: GroupMetadataValue, now_ms: i64) -> Self {
        let mut g = Self::new(id, now_ms);
        g.snapshot = Some(snapshot);
        g.restore_membership(now_ms);
        g
    }

    /// Rebuilds members, generation, protocol and leader from the snapshot,
    /// keeping the offsets: a group with members comes back Stable, an empty
    /// one Empty, like after a Kafka coordinator failover.
    pub fn restore_membership(&mut self, now_ms: i64) {
        let Some(v) = self.snapshot.clone() else {
            return;
        };
        let mut g = Self::new(&self.id, now_ms);
        g.generation = v.generation;
        g.protocol_type = Some(v.protocol_type).filter(|t| !t.is_empty());
        g.protocol_name = v.protocol;
        g.leader = v.leader;
        g.state_timestamp_ms =
            (v.current_state_timestamp != -1).then_some(v.current_state_timestamp);
        let protocol_name = g.protocol_name.clone().unwrap_or_default();
        let protocol_type = g.protocol_type.clone().unwrap_or_default();
        for m in v.members {
            if let Some(instance) = &m.group_instance_id {
                g.static_members
                    .insert(instance.clone(), m.member_id.clone());
            }
            let member = Member {
                id: m.member_id.clone(),
                instance_id: m.group_instance_id,
                client_id: m.client_id,
                client_host: m.client_host,
                // Records written before rebalance timeouts existed.
                rebalance_timeout_ms: if m.rebalance_timeout == -1 {
                    m.session_timeout
                } else {
                    m.rebalance_timeout
                },
                session_timeout_ms: m.session_timeout,
                protocol_type: protocol_type.clone(),
                protocols: vec![Protocol {
                    name: protocol_name.clone(),
                    metadata: m.subscription,
                }],
                assignment: m.assignment,
                join_waiter: None,
                sync_waiter: None,
                is_new: false,
            };
            g.members.insert(m.member_id, member);
        }
        let state = if g.members.is_empty() {
            GroupState::Empty
        } else {
            GroupState::Stable
        };
        g.state = state;
        g.previous_state = state;
        g.subscribed_topics = g.compute_subscribed_topics();
        g.offsets = std::mem::take(&mut self.offsets);
        g.snapshot = self.snapshot.take();
        *self = g;
    }

    pub fn is(&self, state: GroupState) -> bool {
        self.state == state
    }

    pub fn transition_to(&mut self, state: GroupState, now_ms: i64) {
        if !state.valid_previous().contains(&self.state) {
            tracing::error!(group = %self.id, from = %self.state, to = %state, "invalid group state transition");
        }
        self.previous_state = self.state;
        self.state = state;
        self.state_timestamp_ms = Some(now_ms);
    }

    /// A rebalance may start from Empty, CompletingRebalance and Stable.
    pub fn can_rebalance(&self) -> bool {
        GroupState::PreparingRebalance
            .valid_previous()
            .contains(&self.state)
    }

    pub fn is_leader(&self, member_id: &str) -> bool {
        self.leader.as_deref() == Some(member_id)
    }

    pub fn num_awaiting_join(&self) -> usize {
        self.members
            .values()
            .filter(|m| m.is_awaiting_join())
            .count()
    }

    /// Every member rejoined and no member id handed out is still outstanding.
    pub fn has_all_members_joined(&self) -> bool {
        self.members.len() == self.num_awaiting_join() && self.pending_join.is_empty()
    }

    /// The longest rebalance timeout of the members: how long a rebalance waits.
    pub fn rebalance_timeout_ms(&self) -> i32 {
        self.members
            .values()
            .map(|m| m.rebalance_timeout_ms)
            .max()
            .unwrap_or(0)
            .max(0)
    }

    pub fn add(&mut self, member: Member) {
        if let Some(instance) = &member.instance_id {
            self.static_members
                .insert(instance.clone(), member.id.clone());
        }
        if self.members.is_empty() {
            self.protocol_type = Some(member.protocol_type.clone());
        }
        if self.leader.is_none() {
            self.leader = Some(member.id.clone());
        }
        self.pending_join.remove(&member.id);
        self.members.insert(member.id.clone(), member);
    }

    /// Removes a member; a departing leader is replaced by the first remaining member.
    pub fn remove(&mut self, member_id: &str) -> Option<Member> {
        let removed = self.members.remove(member_id);
        if let Some(instance) = removed.as_ref().and_then(|m| m.instance_id.as_ref()) {
            self.static_members.remove(instance);
        }
        if self.is_leader(member_id) {
            self.leader = self.members.keys().next().cloned();
        }
        self.pending_join.remove(member_id);
        self.pending_sync.remove(member_id);
        removed
    }

    /// New protocols and timeouts of a rejoining member; `waiter` parks (or,
    /// with `None`, un-parks) its JoinGroup response.
    pub fn update_member(
        &mut self,
        member_id: &str,
        protocols: Vec<Protocol>,
        rebalance_timeout_ms: i32,
        session_timeout_ms: i32,
        waiter: Option<oneshot::Sender<JoinGroupResponse>>,
    ) {
        if let Some(member) = self.members.get_mut(member_id) {
            member.protocols = protocols;
            member.rebalance_timeout_ms = rebalance_timeout_ms;
            member.session_timeout_ms = session_timeout_ms;
            member.join_waiter = waiter;
        }
    }

    /// A static member restarted with a new member id: the member keeps its
    /// place (and assignment) under the new id, and any request the old
    /// incarnation has parked is answered with FENCED_INSTANCE_ID.
    pub fn replace_static_member(&mut self, instance_id: &str, old_id: &str, new_id: &str) -> bool {
        let Some(mut member) = self.members.remove(old_id) else {
            return false;
        };
        if let Some(waiter) = member.join_waiter.take() {
            let response = JoinGroupResponse::default()
                .with_member_id(StrBytes::from_string(old_id.to_owned()))
                .with_error_code(ResponseError::FencedInstanceId.code());
            let _ = waiter.send(response);
        }
        if let Some(waiter) = member.sync_waiter.take() {
            let response = SyncGroupResponse::default()
                .with_error_code(ResponseError::FencedInstanceId.code());
            let _ = waiter.send(response);
        }
        member.id = new_id.to_owned();
        member.is_new = false;
        self.members.insert(new_id.to_owned(), member);
        if self.is_leader(old_id) {
            self.leader = Some(new_id.to_owned());
        }
        self.static_members
            .insert(instance_id.to_owned(), new_id.to_owned());
        true
    }

    /// Whether a member with these protocols can join: any non-empty set
    /// starts an Empty group; otherwise the protocol type must match and at
    /// least one protocol must be supported by every current member.
    pub fn supports_protocols(&self, protocol_type: &str, protocols: &[Protocol]) -> bool {
        if self.is(GroupState::Empty) {
            return !protocol_type.is_empty() && !protocols.is_empty();
        }
        self.protocol_type.as_deref() == Some(protocol_type)
            && protocols
                .iter()
                .any(|p| self.members.values().all(|m| m.supports(&p.name)))
    }

    /// Kafka's protocol selection: among the protocols every member supports,
    /// each member votes for its most preferred one; most votes wins. Kafka
    /// breaks ties arbitrarily; we break them by the leader's preference, then
    /// by name, so the outcome is deterministic.
    pub fn select_protocol(&self) -> Option<String> {
        let first = self.members.values().next()?;
        let candidates: HashSet<&str> = first
            .protocols
            .iter()
            .map(|p| p.name.as_str())
            .filter(|name| self.members.values().all(|m| m.supports(name)))
            .collect();
        let mut votes: HashMap<&str, usize> = HashMap::new();
        for member in self.members.values() {
            if let Some(vote) = member.vote(&candidates) {
                *votes.entry(vote).or_insert(0) += 1;
            }
        }
        let leader = self.leader.as_ref().and_then(|l| self.members.get(l));
        let preference = |name: &str| {
            leader
                .and_then(|l| l.protocols.iter().position(|p| p.name == name))
                .unwrap_or(usize::MAX)
        };
        votes
            .into_iter()
            .max_by(|(a, va), (b, vb)| {
                va.cmp(vb)
                    .then_with(|| preference(b).cmp(&preference(a)))
                    .then_with(|| b.cmp(a))
            })
            .map(|(name, _)| name.to_owned())
    }

    /// When the leader did not rejoin, any rejoined member becomes leader.
    /// Returns false when nobody rejoined.
    pub fn maybe_elect_new_joined_leader(&mut self) -> bool {
        let Some(leader) = self.leader.clone() else {
            return false;
        };
        if self
            .members
            .get(&leader)
            .is_some_and(|m| m.is_awaiting_join())
        {
            return true;
        }
        match self
            .members
            .values()
            .find(|m| m.is_awaiting_join())
            .map(|m| m.id.clone())
        {
            Some(new_leader) => {
                tracing::info!(group = %self.id, old = %leader, new = %new_leader, "leader did not rejoin; elected a new leader");
                self.leader = Some(new_leader);
                true
            }
            None => false,
        }
    }

    /// Starts the next generation: CompletingRebalance with the selected
    /// protocol, or Empty when nobody is left.
    pub fn init_next_generation(&mut self, now_ms: i64) {
        self.generation = self.generation.wrapping_add(1);
        if self.members.is_empty() {
            self.protocol_name = None;
            self.subscribed_topics = self.compute_subscribed_topics();
            self.transition_to(GroupState::Empty, now_ms);
        } else {
            self.protocol_name = self.select_protocol();
            self.subscribed_topics = self.compute_subscribed_topics();
            self.transition_to(GroupState::CompletingRebalance, now_ms);
        }
        self.pending_sync.clear();
    }

    pub fn uses_consumer_protocol(&self) -> bool {
        self.protocol_type.as_deref() == Some(CONSUMER_PROTOCOL_TYPE)
    }

    /// Union of the members' subscribed topics, parsed from their consumer
    /// protocol metadata (version prefix, then the version-0 layout, which
    /// every later version extends). `None` when unknown.
    pub fn compute_subscribed_topics(&self) -> Option<HashSet<String>> {
        if !self.uses_consumer_protocol() {
            return None;
        }
        if self.members.is_empty() {
            return Some(HashSet::new());
        }
        let protocol = self.protocol_name.as_deref()?;
        let mut topics = HashSet::new();
        for member in self.members.values() {
            match parse_subscription(member.metadata(protocol)) {
                Some(t) => topics.extend(t),
                None => {
                    tracing::warn!(group = %self.id, member = %member.id, "cannot parse consumer subscription; subscribed topics unknown");
                    return None;
                }
            }
        }
        Some(topics)
    }

    /// Whether the group consumes `topic`. When the subscriptions are unknown
    /// a consumer group is assumed to consume everything (so its offsets are
    /// neither expired nor deleted by mistake).
    pub fn is_subscribed_to_topic(&self, topic: &str) -> bool {
        match &self.subscribed_topics {
            Some(topics) => topics.contains(topic),
            None => self.uses_consumer_protocol(),
        }
    }

    /// Checks that `member_id` (and, for a static member, its instance id)
    /// names the current incarnation of a member.
    pub fn validate_member(
        &self,
        member_id: &str,
        instance_id: Option<&str>,
    ) -> Result<(), ResponseError> {
        match instance_id {
            Some(instance) => match self.static_members.get(instance) {
                None => Err(ResponseError::UnknownMemberId),
                Some(current) if current != member_id => Err(ResponseError::FencedInstanceId),
                Some(_) => Ok(()),
            },
            None if self.members.contains_key(member_id) => Ok(()),
            None => Err(ResponseError::UnknownMemberId),
        }
    }

    /// The member list a leader receives in its JoinGroup response.
    pub fn leader_member_list(&self) -> Vec<JoinGroupResponseMember> {
        let protocol = self.protocol_name.as_deref().unwrap_or_default();
        self.members
            .values()
            .map(|m| {
                JoinGroupResponseMember::default()
                    .with_member_id(StrBytes::from_string(m.id.clone()))
                    .with_group_instance_id(m.instance_id.clone().map(StrBytes::from_string))
                    .with_metadata(m.metadata(protocol))
            })
            .collect()
    }

    /// A JoinGroup response carrying the current generation.
    pub fn join_response(&self, member_id: &str, with_members: bool) -> JoinGroupResponse {
        JoinGroupResponse::default()
            .with_generation_id(self.generation)
            .with_protocol_type(self.protocol_type.clone().map(StrBytes::from_string))
            .with_protocol_name(self.protocol_name.clone().map(StrBytes::from_string))
            .with_leader(StrBytes::from_string(
                self.leader.clone().unwrap_or_default(),
            ))
            .with_member_id(StrBytes::from_string(member_id.to_owned()))
            .with_members(if with_members {
                self.leader_member_list()
            } else {
                Vec::new()
            })
    }

    /// The `__consumer_offsets` record describing this group, with each
    /// member's assignment taken from `assignment` (Kafka's `storeGroup`).
    pub fn metadata_record(
        &self,
        assignment: impl Fn(&Member) -> Bytes,
    ) -> Result<CoordinatorRecord, CodecError> {
        let protocol = self.protocol_name.as_deref().unwrap_or_default();
        let value = GroupMetadataValue {
            protocol_type: self.protocol_type.clone().unwrap_or_default(),
            generation: self.generation,
            protocol: self.protocol_name.clone(),
            leader: self.leader.clone(),
            current_state_timestamp: self.state_timestamp_ms.unwrap_or(-1),
            members: self
                .members
                .values()
                .map(|m| MemberMetadataValue {
                    member_id: m.id.clone(),
                    group_instance_id: m.instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    rebalance_timeout: m.rebalance_timeout_ms,
                    session_timeout: m.session_timeout_ms,
                    subscription: m.metadata(protocol),
                    assignment: assignment(m),
                })
                .collect(),
        };
        group_record(&self.id, &value)
    }

    /// How this group's offsets expire, or `None` while they must be kept
    /// (Kafka's `offsetExpirationCondition`).
    pub fn expiration_base(&self) -> Option<ExpirationBase> {
        if self.protocol_type.is_none() {
            // A simple group (offsets only): retention counts from each commit.
            return Some(ExpirationBase::CommitTimestamp);
        }
        if self.is(GroupState::Empty) {
            return Some(ExpirationBase::EmptySince(self.state_timestamp_ms));
        }
        if self.uses_consumer_protocol()
            && self.subscribed_topics.is_some()
            && self.is(GroupState::Stable)
        {
            // Offsets of topics the group no longer consumes expire from their commit.
            return Some(ExpirationBase::CommitTimestamp);
        }
        None
    }
}

/// Topics of a `ConsumerProtocolSubscription` (any version), or `None` if it
/// does not parse.
pub(crate) fn parse_subscription(mut metadata: Bytes) -> Option<Vec<String>> {
    if metadata.remaining() < 2 {
        return None;
    }
    let version = metadata.get_i16();
    if version < 0 {
        return None;
    }
    let subscription = ConsumerProtocolSubscription::decode(&mut metadata, 0).ok()?;
    Some(
        subscription
            .topics
            .iter()
            .map(|t| t.as_str().to_owned())
            .collect(),
    )
}

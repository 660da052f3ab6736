//! Changing who takes part in the metadata quorum: a broker started with a node id outside
//! `--voters` asks to join as a Raft learner (it receives and applies the metadata log but
//! never votes, never stands for election, and no commit waits for it), a learner that
//! left the cluster is removed, and so is a voter that left (as Kafka's KIP-853
//! `RemoveRaftVoter`). No voter is ever added after the cluster forms.
//!
//! Only the quorum leader changes the membership, one change at a time (openraft refuses
//! a change while another is uncommitted; the leader also queues its own). Any node asks
//! ([`MembershipClient`]): it asks the leader it knows of, or else each voter in turn; a
//! voter that does not lead hands the request on to the leader it knows of (the MEMBERSHIP
//! kind, answered by [`MembershipHandler`]).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use openraft::error::{ChangeMembershipError, ClientWriteError, RaftError};
use openraft::raft::ClientWriteResponse;
use openraft::{BasicNode, ChangeMembers, RaftMetrics};
use serde::{Deserialize, Serialize};
use tokio::time::Instant;
use uuid::Uuid;

use super::types::{Batch, Raft, TypeConfig, current_leader, node_id, raft_id};
use crate::transport::{BoxFuture, NodeId, RequestHandler, Transport};
use crate::voters::Voters;

/// The pause between two attempts (a leader being elected, another change committing).
const RETRY_PAUSE: Duration = Duration::from_millis(100);
/// How long the leader waits for the voters that would remain after a removal to hold an
/// entry it just committed (a follower that runs acknowledges within a heartbeat).
const REACH_WAIT: Duration = Duration::from_secs(2);

/// What openraft answers a write with.
type Written =
    Result<ClientWriteResponse<TypeConfig>, RaftError<u64, ClientWriteError<u64, BasicNode>>>;

/// A change of the quorum's membership.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MembershipChange {
    /// Node `node`, whose cluster listener is at `addr`, joins as a learner.
    AddLearner {
        /// The node.
        node: NodeId,
        /// `host:port` of its cluster listener.
        addr: String,
    },
    /// Learner `node` leaves the quorum.
    RemoveLearner {
        /// The node.
        node: NodeId,
    },
    /// Voter `node` leaves the quorum (it is no member at all afterwards).
    RemoveVoter {
        /// The node.
        node: NodeId,
    },
}

/// What a change did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MembershipOutcome {
    /// The membership changed (committed).
    Changed,
    /// The membership already was what was asked (a learner rejoining at the same address,
    /// removing a learner that is no member, or a voter that is no voter).
    Unchanged,
}

/// Why the leader refuses a change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(rename_all = "snake_case")]
pub enum MembershipRefusal {
    /// A voter neither joins nor leaves as a learner: it leaves as a voter.
    #[error("node {0} is a voter of the metadata quorum: it neither joins nor leaves as a learner")]
    Voter(NodeId),
    /// The last voter stays: without it nothing could ever be committed again.
    #[error(
        "node {0} is the last voter of the metadata quorum: removing it would leave no quorum \
         to commit anything"
    )]
    LastVoter(NodeId),
    /// The voters that would remain cannot commit now: the change itself (a joint
    /// configuration needing a majority of the old voters and of the new ones) would stall
    /// every commit until they are back.
    #[error(
        "removing voter {node} would leave voters {remaining:?}, of which only {reached:?} \
         answer now, not a majority: bring the others back first"
    )]
    NoMajority {
        /// The voter to remove.
        node: NodeId,
        /// The voters that would remain.
        remaining: Vec<NodeId>,
        /// Those of them that hold what the leader just committed.
        reached: Vec<NodeId>,
    },
}

/// Why a change was not made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MembershipError {
    /// The leader refuses it.
    #[error(transparent)]
    Refused(#[from] MembershipRefusal),
    /// No leader could make it in time.
    #[error("the metadata quorum could not change its membership: {0}")]
    Unavailable(String),
}

/// A request between nodes: a change, and whether a voter already handed it on (then it
/// is not handed on again).
#[derive(Debug, Serialize, Deserialize)]
struct MembershipRequest {
    change: MembershipChange,
    forwarded: bool,
}

/// The answer to a [`MembershipRequest`].
#[derive(Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum MembershipReply {
    Done(MembershipOutcome),
    Refused(MembershipRefusal),
    /// Neither this node nor one it could hand the request to leads.
    NotLeader,
    /// The leader could not make the change now.
    Unavailable(String),
}

/// Makes changes on the quorum leader, one at a time.
pub struct MembershipChanger {
    raft: Raft,
    timeout: Duration,
    one_at_a_time: tokio::sync::Mutex<()>,
}

impl MembershipChanger {
    /// Changes through `raft`, waiting at most `timeout` for each change to commit (a
    /// change that cannot commit must not keep the others queued for ever).
    pub fn new(raft: Raft, timeout: Duration) -> Arc<Self> {
        Arc::new(Self {
            raft,
            timeout,
            one_at_a_time: tokio::sync::Mutex::new(()),
        })
    }

    /// Makes `change` if this node leads.
    async fn change(&self, change: &MembershipChange) -> MembershipReply {
        let _serialized = self.one_at_a_time.lock().await;
        let (voters, nodes): (BTreeSet<u64>, BTreeMap<u64, BasicNode>) = {
            let metrics = self.raft.metrics();
            let m = metrics.borrow();
            let membership = m.membership_config.membership();
            (
                membership.voter_ids().collect(),
                membership
                    .nodes()
                    .map(|(id, node)| (*id, node.clone()))
                    .collect(),
            )
        };
        let written = match change {
            MembershipChange::AddLearner { node, addr } => {
                let id = raft_id(*node);
                if voters.contains(&id) {
                    return MembershipReply::Refused(MembershipRefusal::Voter(*node));
                }
                let wanted = BasicNode { addr: addr.clone() };
                match nodes.get(&id) {
                    Some(known) if *known == wanted => {
                        return MembershipReply::Done(MembershipOutcome::Unchanged);
                    }
                    // A learner restarted with another cluster listener: only its address
                    // changes (it has no vote, so no quorum depends on reaching it).
                    Some(_) => {
                        let moved = BTreeMap::from([(id, wanted)]);
                        self.write(
                            self.raft
                                .change_membership(ChangeMembers::SetNodes(moved), true),
                        )
                        .await
                    }
                    None => self.write(self.raft.add_learner(id, wanted, false)).await,
                }
            }
            MembershipChange::RemoveLearner { node } => {
                let id = raft_id(*node);
                if voters.contains(&id) {
                    return MembershipReply::Refused(MembershipRefusal::Voter(*node));
                }
                if !nodes.contains_key(&id) {
                    return MembershipReply::Done(MembershipOutcome::Unchanged);
                }
                let gone = ChangeMembers::RemoveNodes(BTreeSet::from([id]));
                self.write(self.raft.change_membership(gone, false)).await
            }
            MembershipChange::RemoveVoter { node } => {
                let id = raft_id(*node);
                // In a joint configuration left by an interrupted removal, the voters of
                // both halves: asking again finishes the change.
                if !voters.contains(&id) {
                    return MembershipReply::Done(MembershipOutcome::Unchanged);
                }
                let remaining: BTreeSet<u64> = voters.into_iter().filter(|v| *v != id).collect();
                if remaining.is_empty() {
                    return MembershipReply::Refused(MembershipRefusal::LastVoter(*node));
                }
                if let Err(refused) = self.check_majority(*node, &remaining).await {
                    return refused;
                }
                // Not kept as a learner: openraft 0.9 lets a learner lead, so a leader
                // demoted to one would go on leading; a leader that is no member steps
                // down once the change is committed, and the remaining voters elect one of
                // them.
                let gone = ChangeMembers::RemoveVoters(BTreeSet::from([id]));
                self.write(self.raft.change_membership(gone, false)).await
            }
        };
        if written == MembershipReply::Done(MembershipOutcome::Changed) {
            tracing::info!(?change, "metadata quorum membership changed");
        }
        written
    }

    /// Waits for a membership write, for at most the timeout. One that times out may still
    /// commit (or leave a joint configuration behind); asking again finishes it.
    async fn write(&self, written: impl Future<Output = Written>) -> MembershipReply {
        match tokio::time::timeout(self.timeout, written).await {
            Ok(Ok(_)) => MembershipReply::Done(MembershipOutcome::Changed),
            Ok(Err(e)) => refused_write(e),
            Err(_) => MembershipReply::Unavailable(format!(
                "the change was not committed within {:?}",
                self.timeout
            )),
        }
    }

    /// Refuses to remove voter `node` unless a majority of the voters that would `remain`
    /// hold an entry committed now: the change goes through a joint configuration that
    /// needs a majority of them, and until it commits, so does every other commit.
    async fn check_majority(
        &self,
        node: NodeId,
        remain: &BTreeSet<u64>,
    ) -> Result<(), MembershipReply> {
        let barrier = Batch {
            id: Uuid::new_v4(),
            records: Vec::new(),
            controller_term: None,
        };
        let index = match tokio::time::timeout(self.timeout, self.raft.client_write(barrier)).await
        {
            Ok(Ok(written)) => written.log_id.index,
            Ok(Err(e)) => return Err(refused_write(e)),
            Err(_) => {
                return Err(MembershipReply::Unavailable(
                    "the quorum did not commit in time".into(),
                ));
            }
        };
        // The leader holds it; a follower, once the leader saw it replicated there.
        let holding = |m: &RaftMetrics<u64, BasicNode>| -> Vec<NodeId> {
            remain
                .iter()
                .filter(|id| {
                    **id == m.id
                        || m.replication
                            .as_ref()
                            .and_then(|r| r.get(*id).copied().flatten())
                            .is_some_and(|matched| matched.index >= index)
                })
                .map(|id| node_id(*id))
                .collect()
        };
        let majority = remain.len() / 2 + 1;
        let reached = self
            .raft
            .wait(Some(REACH_WAIT))
            .metrics(|m| holding(m).len() >= majority, "the remaining voters")
            .await;
        if reached.is_ok() {
            return Ok(());
        }
        Err(MembershipReply::Refused(MembershipRefusal::NoMajority {
            node,
            remaining: remain.iter().map(|id| node_id(*id)).collect(),
            reached: holding(&self.raft.metrics().borrow()),
        }))
    }

    /// The leader this node knows of, unless it is this node.
    fn other_leader(&self, local: NodeId) -> Option<NodeId> {
        let leader = current_leader(&self.raft.metrics().borrow())?;
        (leader != raft_id(local)).then_some(node_id(leader))
    }

    fn leads(&self, local: NodeId) -> bool {
        current_leader(&self.raft.metrics().borrow()) == Some(raft_id(local))
    }
}

/// The answer to a membership write openraft refused.
fn refused_write(e: RaftError<u64, ClientWriteError<u64, BasicNode>>) -> MembershipReply {
    match e {
        RaftError::APIError(ClientWriteError::ForwardToLeader(_)) => MembershipReply::NotLeader,
        RaftError::APIError(ClientWriteError::ChangeMembershipError(
            ChangeMembershipError::InProgress(_),
        )) => MembershipReply::Unavailable("another membership change is in progress".into()),
        e => MembershipReply::Unavailable(e.to_string()),
    }
}

/// Answers other nodes' membership requests: makes the change when this node leads, or
/// hands it on once to the leader it knows of.
pub struct MembershipHandler {
    changer: Arc<MembershipChanger>,
    channel: Arc<dyn Transport>,
    timeout: Duration,
}

impl MembershipHandler {
    /// Changes through `changer`, handing requests on over `channel` (of the MEMBERSHIP
    /// kind) within `timeout`.
    pub fn new(
        changer: Arc<MembershipChanger>,
        channel: Arc<dyn Transport>,
        timeout: Duration,
    ) -> Arc<Self> {
        Arc::new(Self {
            changer,
            channel,
            timeout,
        })
    }

    async fn answer(&self, request: MembershipRequest) -> MembershipReply {
        let local = self.channel.local();
        if self.changer.leads(local) {
            return self.changer.change(&request.change).await;
        }
        match self.changer.other_leader(local) {
            Some(leader) if !request.forwarded => {
                let handed_on = MembershipRequest {
                    change: request.change,
                    forwarded: true,
                };
                match call(&*self.channel, leader, &handed_on, self.timeout).await {
                    Ok(reply) => reply,
                    Err(why) => MembershipReply::Unavailable(why),
                }
            }
            _ => MembershipReply::NotLeader,
        }
    }
}

impl RequestHandler for MembershipHandler {
    fn handle(&self, from: NodeId, request: Bytes) -> BoxFuture<'_, Bytes> {
        Box::pin(async move {
            let reply = match serde_json::from_slice::<MembershipRequest>(&request) {
                Ok(request) => self.answer(request).await,
                Err(e) => {
                    tracing::warn!(from, error = %e, "undecodable membership request");
                    MembershipReply::Unavailable(format!("undecodable request: {e}"))
                }
            };
            serde_json::to_vec(&reply).map_or_else(|_| Bytes::new(), Bytes::from)
        })
    }
}

/// Sends `request` to node `to` and decodes its answer.
async fn call(
    channel: &dyn Transport,
    to: NodeId,
    request: &MembershipRequest,
    timeout: Duration,
) -> Result<MembershipReply, String> {
    let bytes = Bytes::from(serde_json::to_vec(request).map_err(|e| e.to_string())?);
    let answer = tokio::time::timeout(timeout, channel.call(to, bytes))
        .await
        .map_err(|_| format!("node {to} did not answer in time"))?
        .map_err(|e| e.to_string())?;
    serde_json::from_slice(&answer).map_err(|e| format!("node {to} answered garbage: {e}"))
}

/// Asks the quorum for membership changes from any node.
pub struct MembershipClient {
    changer: Arc<MembershipChanger>,
    channel: Arc<dyn Transport>,
    voters: Voters,
    timeout: Duration,
}

impl MembershipClient {
    /// Asks through `changer` when this node leads, else the leader or the `voters` over
    /// `channel` (of the MEMBERSHIP kind), for at most `timeout` per change.
    pub fn new(
        changer: Arc<MembershipChanger>,
        channel: Arc<dyn Transport>,
        voters: Voters,
        timeout: Duration,
    ) -> Self {
        Self {
            changer,
            channel,
            voters,
            timeout,
        }
    }

    /// Makes `change`, retrying across leader changes and other changes in progress until
    /// the deadline.
    pub async fn request(
        &self,
        change: MembershipChange,
    ) -> Result<MembershipOutcome, MembershipError> {
        let deadline = Instant::now() + self.timeout;
        let local = self.channel.local();
        let request = MembershipRequest {
            change,
            forwarded: false,
        };
        let mut why = String::from("no voter answered");
        loop {
            let reply = if self.changer.leads(local) {
                Some(self.changer.change(&request.change).await)
            } else {
                self.ask_others(&request, deadline, &mut why).await
            };
            match reply {
                Some(MembershipReply::Done(outcome)) => return Ok(outcome),
                Some(MembershipReply::Refused(refusal)) => return Err(refusal.into()),
                Some(MembershipReply::NotLeader) => why = "no quorum leader is elected".into(),
                Some(MembershipReply::Unavailable(reason)) => why = reason,
                None => {}
            }
            if Instant::now() + RETRY_PAUSE >= deadline {
                return Err(MembershipError::Unavailable(format!(
                    "not changed within {:?}: {why}",
                    self.timeout
                )));
            }
            tokio::time::sleep(RETRY_PAUSE).await;
        }
    }

    /// Asks the leader this node knows of, or else each voter, until one answers; `None`
    /// (with `why` set) when none did.
    async fn ask_others(
        &self,
        request: &MembershipRequest,
        deadline: Instant,
        why: &mut String,
    ) -> Option<MembershipReply> {
        let targets: Vec<NodeId> = match self.changer.other_leader(self.channel.local()) {
            Some(leader) => vec![leader],
            None => self
                .voters
                .ids()
                .into_iter()
                .filter(|id| *id != self.channel.local())
                .collect(),
        };
        for to in targets {
            let left = deadline.saturating_duration_since(Instant::now());
            match call(&*self.channel, to, request, left).await {
                Ok(MembershipReply::NotLeader) => *why = format!("node {to} knows no leader"),
                Ok(reply) => return Some(reply),
                Err(e) => *why = e,
            }
        }
        None
    }
}

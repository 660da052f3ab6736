//! Changing who takes part in the metadata quorum beyond its voters: a broker started with
//! a node id outside `--voters` asks to join as a Raft learner (it receives and applies
//! the metadata log but never votes, never stands for election, and no commit waits for
//! it), and a learner that left the cluster is removed. The voters themselves are fixed
//! when the cluster forms.
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
use openraft::{BasicNode, ChangeMembers};
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::types::{Raft, node_id, raft_id};
use crate::transport::{BoxFuture, NodeId, RequestHandler, Transport};
use crate::voters::Voters;

/// The pause between two attempts (a leader being elected, another change committing).
const RETRY_PAUSE: Duration = Duration::from_millis(100);

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
}

/// What a change did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MembershipOutcome {
    /// The membership changed (committed).
    Changed,
    /// The membership already was what was asked (a learner rejoining at the same address,
    /// or removing a node that is no member).
    Unchanged,
}

/// Why the leader refuses a change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(rename_all = "snake_case")]
pub enum MembershipRefusal {
    /// Voters are fixed when the cluster forms: a voter can neither join as a learner nor
    /// be removed.
    #[error(
        "node {0} is a voter of the metadata quorum; voters are fixed when the cluster forms \
         (only a node outside --voters joins or leaves, as a learner)"
    )]
    Voter(NodeId),
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
#[derive(Debug, Serialize, Deserialize)]
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
    one_at_a_time: tokio::sync::Mutex<()>,
}

impl MembershipChanger {
    /// Changes through `raft`.
    pub fn new(raft: Raft) -> Arc<Self> {
        Arc::new(Self {
            raft,
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
                        self.raft
                            .change_membership(ChangeMembers::SetNodes(moved), true)
                            .await
                    }
                    None => self.raft.add_learner(id, wanted, false).await,
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
                self.raft
                    .change_membership(ChangeMembers::RemoveNodes(BTreeSet::from([id])), false)
                    .await
            }
        };
        match written {
            Ok(_) => {
                tracing::info!(?change, "metadata quorum membership changed");
                MembershipReply::Done(MembershipOutcome::Changed)
            }
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(_))) => {
                MembershipReply::NotLeader
            }
            Err(RaftError::APIError(ClientWriteError::ChangeMembershipError(
                ChangeMembershipError::InProgress(_),
            ))) => MembershipReply::Unavailable("another membership change is in progress".into()),
            Err(e) => MembershipReply::Unavailable(e.to_string()),
        }
    }

    /// The leader this node knows of, unless it is this node.
    fn other_leader(&self, local: NodeId) -> Option<NodeId> {
        let leader = self.raft.metrics().borrow().current_leader?;
        (leader != raft_id(local)).then_some(node_id(leader))
    }

    fn leads(&self, local: NodeId) -> bool {
        self.raft.metrics().borrow().current_leader == Some(raft_id(local))
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

//! One node of a cluster, as the broker starts it ([`ClusterNode`]): the cluster listener,
//! the transport to the other voters, the handlers of each request kind, and the
//! metadata quorum whose store the broker reads and proposes to.
//!
//! Start-up: [`ClusterNode::start`] binds the listener and starts the quorum from the data
//! directory; [`ClusterNode::join`] then waits until this node has caught up with the
//! committed metadata (the lowest voter id forms the quorum when the cluster is new; a node
//! outside the voters first asks the quorum to add it as a learner), and fails with one
//! clear reason when a voter refuses this node (other voters, another cluster, a reused
//! node id).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Weak};
use std::time::Duration;

use sluice_metadata::{CommitError, MetadataStore};
use tokio::net::TcpListener;
use tokio::time::Instant;
use uuid::Uuid;

use crate::kinds::{Channel, Handlers, RpcKind};
use crate::quorum::{
    MembershipChange, MembershipError, MembershipOutcome, MembershipRefusal, Quorum, QuorumConfig,
    QuorumError, QuorumStorage, RemovedVoters,
};
use crate::rpc::{ClusterListener, LocalNode, PeerCheck, Refusal, RpcSettings, TcpTransport};
use crate::transport::{NodeId, RequestHandler, Transport};
use crate::voters::Voters;

/// How often start-up says what it is waiting for.
const WAITING_REPORT: Duration = Duration::from_secs(5);

/// What a cluster node starts with.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// This node's id: one of the voters, or else a broker that joins the quorum as a
    /// learner.
    pub node_id: NodeId,
    /// Where the cluster listener binds.
    pub listen: SocketAddr,
    /// Every voter.
    pub voters: Voters,
    /// The id of this node's data directory (never reused by another one).
    pub incarnation: Uuid,
    /// The cluster id this data directory was part of, if any.
    pub cluster_id: Option<String>,
    /// The metadata directory; the quorum keeps its log, vote and snapshot in `raft/`.
    pub meta_dir: PathBuf,
    /// The largest frame between nodes (requests and answers).
    pub max_frame_bytes: usize,
}

/// Why a cluster node could not start or join.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// The cluster listener could not be bound.
    #[error("cannot listen for other nodes on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// What failed.
        source: std::io::Error,
    },
    /// The quorum could not start.
    #[error(transparent)]
    Quorum(#[from] QuorumError),
    /// A voter refuses this node (or this node refuses what a voter said).
    #[error("node {peer} at {addr} and this node cannot form a cluster: {reason}")]
    Refused {
        /// The voter.
        peer: NodeId,
        /// Its address.
        addr: String,
        /// Why.
        reason: String,
    },
    /// Metadata could not be committed.
    #[error(transparent)]
    Commit(#[from] CommitError),
    /// The quorum refuses this node as a learner.
    #[error("the metadata quorum refuses node {node} as a learner: {refusal}")]
    LearnerRefused {
        /// This node.
        node: NodeId,
        /// Why.
        refusal: MembershipRefusal,
    },
    /// A learner's cluster listener is bound to an address other nodes cannot reach.
    #[error(
        "--cluster-listen {0} is not an address other nodes can reach: a node outside \
         --voters joins as a learner at the address it listens on, so give it a specific one"
    )]
    UnreachableListener(SocketAddr),
}

/// Refuses a node id registered with another data directory: node ids are never reused
/// (a wiped node replaying old memberships could split the quorum). Once the quorum runs,
/// also refuses the calls of voters removed from it.
struct RegisteredIncarnations {
    store: Weak<MetadataStore>,
    removed: Option<RemovedVoters>,
}

impl PeerCheck for RegisteredIncarnations {
    fn check_caller(&self, node: NodeId) -> Result<(), String> {
        match self.removed.as_ref().and_then(|r| r.refusal(node)) {
            Some(reason) => Err(reason),
            None => Ok(()),
        }
    }

    fn check(&self, node: NodeId, incarnation: Uuid) -> Result<(), String> {
        let Some(store) = self.store.upgrade() else {
            return Ok(());
        };
        match store.image().broker(node) {
            Some(b) if b.incarnation_id != incarnation => Err(format!(
                "node id {node} is registered with data directory {} but this one is {incarnation}: \
                 node ids are never reused, so a node with a new data directory needs a new id",
                b.incarnation_id
            )),
            _ => Ok(()),
        }
    }
}

/// A running cluster node.
pub struct ClusterNode {
    local: Arc<LocalNode>,
    transport: Arc<TcpTransport>,
    handlers: Arc<Handlers>,
    listener: ClusterListener,
    quorum: Quorum,
    store: Arc<MetadataStore>,
}

impl ClusterNode {
    /// Binds the cluster listener and starts the quorum from the data directory.
    pub async fn start(config: ClusterConfig) -> Result<Self, ClusterError> {
        let bound =
            TcpListener::bind(config.listen)
                .await
                .map_err(|source| ClusterError::Bind {
                    addr: config.listen,
                    source,
                })?;
        let quorum_config = QuorumConfig::new(
            config.node_id,
            config.voters.clone(),
            config.meta_dir.join("raft"),
        );
        let storage = QuorumStorage::open(&quorum_config).map_err(QuorumError::from)?;
        let store = MetadataStore::new(storage.image());
        let local = LocalNode::new(
            config.node_id,
            config.incarnation,
            config.voters.clone(),
            config.cluster_id,
        );
        local.set_peer_check(Arc::new(RegisteredIncarnations {
            store: Arc::downgrade(&store),
            removed: None,
        }));
        let settings = RpcSettings {
            max_frame_bytes: config.max_frame_bytes,
            ..RpcSettings::default()
        };
        let transport = TcpTransport::new(local.clone(), &config.voters, settings);
        let handlers = Handlers::new();
        let quorum = Quorum::start(
            &quorum_config,
            storage,
            &store,
            transport.clone(),
            &handlers,
        )
        .await?;
        local.set_peer_check(Arc::new(RegisteredIncarnations {
            store: Arc::downgrade(&store),
            removed: Some(quorum.removed()),
        }));
        let listener = match ClusterListener::serve(
            bound,
            local.clone(),
            handlers.clone(),
            config.max_frame_bytes,
        ) {
            Ok(listener) => listener,
            Err(source) => {
                quorum.shutdown().await;
                return Err(ClusterError::Bind {
                    addr: config.listen,
                    source,
                });
            }
        };
        if config.voters.get(config.node_id).is_some() {
            tracing::info!(
                "cluster listener on {}: node {} of voters {}",
                listener.local_addr(),
                config.node_id,
                config.voters
            );
        } else {
            tracing::info!(
                "cluster listener on {}: node {} is not among the voters {}, so it joins \
                 the cluster as a broker (a learner of the metadata quorum): it asks the \
                 voters to add it, receives the metadata log, and never votes",
                listener.local_addr(),
                config.node_id,
                config.voters
            );
        }
        Ok(Self {
            local,
            transport,
            handlers,
            listener,
            quorum,
            store,
        })
    }

    /// The metadata this node applies from the quorum and proposes to.
    pub fn metadata(&self) -> &Arc<MetadataStore> {
        &self.store
    }

    /// Waits until this node has applied everything the quorum committed before, forming
    /// the quorum first if this node is the lowest voter of a new cluster. Fails when a
    /// voter refuses this node.
    pub async fn join(&self) -> Result<(), ClusterError> {
        let refusals = self.local.refusals();
        let mut formed = false;
        let mut learner_added = !self.is_learner();
        let mut reported = Instant::now();
        loop {
            let peers_have_a_cluster = self.probe_voters(&refusals).await?;
            if !learner_added {
                match self.join_as_learner().await {
                    Ok(()) => learner_added = true,
                    Err(why) => {
                        self.check_refusals(&refusals)?;
                        if reported.elapsed() >= WAITING_REPORT {
                            tracing::info!(voters = %self.local.voters(), "waiting to join the metadata quorum as a learner: {why}");
                            reported = Instant::now();
                        }
                        continue;
                    }
                }
            }
            if !formed && self.forms_the_quorum() {
                if peers_have_a_cluster {
                    tracing::info!(
                        "this data directory is empty but the other voters already form a \
                         cluster: waiting to be replicated to"
                    );
                } else {
                    self.quorum.initialize().await?;
                }
                formed = true;
            }
            match self.quorum.catch_up().await {
                Ok(()) => break,
                Err(CommitError::Unavailable(why)) => {
                    self.check_refusals(&refusals)?;
                    if reported.elapsed() >= WAITING_REPORT {
                        tracing::info!(voters = %self.local.voters(), "waiting for the metadata quorum: {why}");
                        reported = Instant::now();
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
        self.check_refusals(&refusals)?;
        self.local.mark_joined();
        tracing::info!(
            leader = ?self.quorum.leader(),
            term = self.quorum.term(),
            applied = ?self.quorum.applied_index(),
            "caught up with the metadata quorum"
        );
        Ok(())
    }

    /// Asks the quorum to add this node as a learner at its cluster listener's address
    /// (nothing changes when it is one already, as after a restart). A refusal stops
    /// start-up; the reason why it is not added yet is returned to retry.
    async fn join_as_learner(&self) -> Result<(), ClusterError> {
        let listen = self.listener.local_addr();
        if listen.ip().is_unspecified() {
            return Err(ClusterError::UnreachableListener(listen));
        }
        let change = MembershipChange::AddLearner {
            node: self.node_id(),
            addr: listen.to_string(),
        };
        match self.quorum.change_membership(change).await {
            Ok(MembershipOutcome::Changed) => {
                tracing::info!(
                    "node {} joined the metadata quorum as a learner at {listen}",
                    self.node_id()
                );
                Ok(())
            }
            Ok(MembershipOutcome::Unchanged) => {
                tracing::info!(
                    "node {} is a learner of the metadata quorum already, at {listen}",
                    self.node_id()
                );
                Ok(())
            }
            Err(MembershipError::Refused(refusal)) => Err(ClusterError::LearnerRefused {
                node: self.node_id(),
                refusal,
            }),
            Err(MembershipError::Unavailable(why)) => {
                Err(ClusterError::Commit(CommitError::Unavailable(why)))
            }
        }
    }

    /// Whether this node is outside the voters: a broker that is a learner of the quorum.
    pub fn is_learner(&self) -> bool {
        self.local.voters().get(self.node_id()).is_none()
    }

    /// Whether node `id` is a voter of the quorum, as this node's membership says (a voter
    /// removed since the cluster formed is none, though `--voters` still lists it).
    pub fn is_voter(&self, id: NodeId) -> bool {
        self.quorum.voters().contains(&id)
    }

    /// The voters of the quorum, as this node's membership says (ascending).
    pub fn quorum_voters(&self) -> Vec<NodeId> {
        self.quorum.voters()
    }

    /// Removes voter `id` from the quorum (through its leader), so that it is no member at
    /// all; the last voter is refused, and so is a removal the remaining voters could not
    /// commit now. A node that is no voter is left as it is.
    pub async fn remove_voter(&self, id: NodeId) -> Result<MembershipOutcome, MembershipError> {
        self.quorum
            .change_membership(MembershipChange::RemoveVoter { node: id })
            .await
    }

    /// The learners of the quorum, as this node's membership says.
    pub fn learners(&self) -> Vec<NodeId> {
        self.quorum.learners()
    }

    /// Removes learner `id` from the quorum (through its leader); a voter is refused, and a
    /// node that is no member is left as it is.
    pub async fn remove_learner(&self, id: NodeId) -> Result<MembershipOutcome, MembershipError> {
        self.quorum
            .change_membership(MembershipChange::RemoveLearner { node: id })
            .await
    }

    /// Where node `id`'s cluster listener is: its `--voters` address, or a learner's from
    /// the quorum's membership.
    pub fn address_of(&self, id: NodeId) -> Option<String> {
        match self.local.voters().get(id) {
            Some(voter) => Some(voter.addr.clone()),
            None => self.quorum.member_address(id),
        }
    }

    /// Whether this node forms the quorum: the lowest voter, starting with nothing.
    fn forms_the_quorum(&self) -> bool {
        self.quorum.was_pristine() && self.local.voters().lowest() == Some(self.local.node_id())
    }

    /// Shakes hands with every other voter; whether any of them is in a cluster already.
    async fn probe_voters(
        &self,
        refusals: &tokio::sync::watch::Receiver<Option<Refusal>>,
    ) -> Result<bool, ClusterError> {
        let others: Vec<NodeId> = self
            .local
            .voters()
            .ids()
            .into_iter()
            .filter(|id| *id != self.local.node_id())
            .collect();
        let mut in_a_cluster = false;
        for id in others {
            if let Ok(hello) = self.transport.probe(id).await {
                in_a_cluster |= hello.cluster_id.is_some();
            }
        }
        self.check_refusals(refusals)?;
        Ok(in_a_cluster)
    }

    /// Fails start-up with the latest refusal, if a handshake this node started was
    /// refused.
    fn check_refusals(
        &self,
        refusals: &tokio::sync::watch::Receiver<Option<Refusal>>,
    ) -> Result<(), ClusterError> {
        match refusals.borrow().clone() {
            Some(Refusal { peer, reason }) => Err(ClusterError::Refused {
                peer,
                addr: self
                    .local
                    .voters()
                    .get(peer)
                    .map(|v| v.addr.clone())
                    .unwrap_or_default(),
                reason,
            }),
            None => Ok(()),
        }
    }

    /// Adopts the cluster's id (once committed), so handshakes carry it.
    pub fn set_cluster_id(&self, id: String) {
        self.local.set_cluster_id(id);
    }

    /// Requests of `kind` to other nodes.
    pub fn transport(&self, kind: RpcKind) -> Arc<dyn Transport> {
        Channel::new(self.transport.clone(), kind)
    }

    /// Answers other nodes' requests of `kind` with `handler` (the broker registers KAFKA
    /// and HEARTBEAT; the quorum has RAFT, FORWARD and MEMBERSHIP).
    pub fn register_handler(&self, kind: RpcKind, handler: Arc<dyn RequestHandler>) {
        self.handlers.register(kind, handler);
    }

    /// This node's id.
    pub fn node_id(&self) -> NodeId {
        self.local.node_id()
    }

    /// The voters.
    pub fn voters(&self) -> &Voters {
        self.local.voters()
    }

    /// The node leading the metadata quorum now, if known.
    pub fn quorum_leader(&self) -> Option<NodeId> {
        self.quorum.leader()
    }

    /// The quorum's current term.
    pub fn quorum_term(&self) -> u64 {
        self.quorum.term()
    }

    /// Where the cluster listener is bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr()
    }

    /// Stops the quorum and the listener.
    pub async fn shutdown(&self) {
        self.quorum.shutdown().await;
        self.listener.shutdown().await;
    }
}

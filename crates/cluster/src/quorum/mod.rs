//! The metadata quorum: one openraft group whose voters are the nodes listed in
//! `--voters` (less those removed since), replicating the metadata log. Each entry is a batch of metadata records;
//! every node applies the committed batches in log order through its
//! [`MetadataStore`](sluice_metadata::MetadataStore), and commits through
//! [`RaftBackend`], so the code that proposes metadata is the same on one node and many.
//!
//! openraft 0.9 is the Raft engine; around it: the log store on disk ([`log_store`]), the
//! state machine and its snapshots ([`state_machine`]), the messages between voters
//! ([`network`]), committing from any node ([`backend`]), and brokers joining and leaving
//! as learners, and voters leaving ([`membership`]).
//!
//! Timing, for a loaded machine: a heartbeat every 250 ms and an election after 1–1.1 s
//! without one (openraft's defaults, 150–300 ms, call elections under fsync stalls).
//! openraft 0.9 has no pre-vote; a follower refuses votes for the longest election timeout
//! after it last heard from the leader (its lease), so a wide range (1–2 s) makes the
//! first candidate after a leader dies be refused and a second round elect, 3–4.5 s later.
//! A narrow range keeps the lease short; candidates are still spread, by openraft
//! checking its timers on 375 ms ticks whose phase differs per node: a new leader about
//! 2 s after the old one died.

mod backend;
mod files;
mod log_store;
mod membership;
mod network;
mod state_machine;
mod types;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use openraft::error::{InitializeError, RaftError};
use openraft::{BasicNode, SnapshotPolicy};
use sluice_metadata::{CommitError, MetadataImage, MetadataStore};
use tokio::task::JoinHandle;
use uuid::Uuid;

pub use backend::RaftBackend;
pub use log_store::OpenError;
pub use membership::{MembershipChange, MembershipError, MembershipOutcome, MembershipRefusal};
pub use types::{Batch, BatchOutcome, TypeConfig};

use crate::kinds::{Channel, Handlers, RpcKind};
use crate::transport::{NodeId, Transport};
use crate::voters::Voters;
use backend::ForwardHandler;
use log_store::LogStore;
use membership::{MembershipChanger, MembershipClient, MembershipHandler};
use network::{Network, RaftHandler};
use state_machine::{Restored, StateMachine};
use types::{Raft, current_leader, node_id, raft_id};

/// How a quorum node runs.
#[derive(Debug, Clone)]
pub struct QuorumConfig {
    /// This node's id: one of the voters, or a learner's (a node outside the voters).
    pub node_id: NodeId,
    /// Every voter.
    pub voters: Voters,
    /// Where the log, vote and snapshot live (`<data-dir>/meta/raft`).
    pub dir: PathBuf,
    /// A follower that hears from no leader for a random time in this range calls an
    /// election.
    pub election_timeout: (Duration, Duration),
    /// How often the leader reminds followers it is alive.
    pub heartbeat: Duration,
    /// A snapshot is taken after this many entries, and the log before it purged.
    pub snapshot_every: u64,
    /// Entries kept in the log behind the last snapshot (so a follower slightly behind
    /// catches up from the log, not a snapshot).
    pub entries_kept_after_snapshot: u64,
    /// How long a commit keeps trying (across elections) before it is unavailable.
    pub commit_timeout: Duration,
}

impl QuorumConfig {
    /// The production settings for node `node_id` of `voters`, storing under `dir`.
    pub fn new(node_id: NodeId, voters: Voters, dir: PathBuf) -> Self {
        Self {
            node_id,
            voters,
            dir,
            election_timeout: (Duration::from_millis(1000), Duration::from_millis(1100)),
            heartbeat: Duration::from_millis(250),
            snapshot_every: 1000,
            entries_kept_after_snapshot: 100,
            commit_timeout: Duration::from_secs(5),
        }
    }

    /// openraft's configuration from these settings.
    fn raft_config(&self) -> Result<openraft::Config, QuorumError> {
        let millis = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        openraft::Config {
            cluster_name: "sluice-metadata".into(),
            election_timeout_min: millis(self.election_timeout.0),
            election_timeout_max: millis(self.election_timeout.1),
            heartbeat_interval: millis(self.heartbeat),
            install_snapshot_timeout: millis(self.commit_timeout.max(Duration::from_secs(10))),
            snapshot_policy: SnapshotPolicy::LogsSinceLast(self.snapshot_every),
            max_in_snapshot_log_to_keep: self.entries_kept_after_snapshot,
            replication_lag_threshold: self.snapshot_every.saturating_mul(5),
            ..openraft::Config::default()
        }
        .validate()
        .map_err(|e| QuorumError::Config(e.to_string()))
    }
}

/// Why the quorum could not start or join.
#[derive(Debug, thiserror::Error)]
pub enum QuorumError {
    /// The log, vote or snapshot on disk could not be read.
    #[error(transparent)]
    Open(#[from] OpenError),
    /// The timing settings are not usable (a bug in the caller).
    #[error("invalid quorum settings: {0}")]
    Config(String),
    /// The data directory belongs to a quorum of other voters.
    #[error(
        "this data directory belongs to a quorum of voters {stored:?}, but --voters lists \
         {configured:?}: start every node with the voters the cluster was formed with"
    )]
    VotersDiffer {
        /// The voter ids in the data directory.
        stored: Vec<NodeId>,
        /// The voter ids configured.
        configured: Vec<NodeId>,
    },
    /// This node is in `--voters` but its own data directory records that it was removed.
    #[error("{}", removed_voter(*node, voters))]
    Removed {
        /// This node.
        node: NodeId,
        /// The voters it left.
        voters: Vec<NodeId>,
    },
    /// openraft stopped or refused.
    #[error("the metadata quorum stopped: {0}")]
    Raft(String),
}

/// The quorum's state on disk, opened before the store that applies it exists.
pub struct QuorumStorage {
    log: LogStore,
    restored: Restored,
}

impl QuorumStorage {
    /// Opens the log, vote and snapshot under `config.dir`.
    pub fn open(config: &QuorumConfig) -> Result<Self, OpenError> {
        Ok(Self {
            log: LogStore::open(&config.dir)?,
            restored: Restored::open(&config.dir, config.node_id)?,
        })
    }

    /// The image the snapshot on disk rebuilds (empty without one): what the metadata
    /// store starts from.
    pub fn image(&self) -> MetadataImage {
        self.restored.image.clone()
    }

    /// Whether this node never took part in a quorum: nothing logged, voted or snapshotted.
    pub fn is_pristine(&self) -> bool {
        self.log.is_pristine() && self.restored.last_log_id().is_none()
    }
}

/// A running quorum node.
pub struct Quorum {
    raft: Raft,
    backend: Arc<RaftBackend>,
    voters: Voters,
    node_id: NodeId,
    pristine: bool,
    membership: MembershipClient,
    watchers: [JoinHandle<()>; 2],
}

impl Quorum {
    /// Starts this node's Raft over `storage`, applying to `store` (which gets the quorum
    /// as its backend), talking to the others over `transport` and answering them through
    /// `handlers` (RAFT, FORWARD and MEMBERSHIP are registered there).
    pub async fn start(
        config: &QuorumConfig,
        storage: QuorumStorage,
        store: &Arc<MetadataStore>,
        transport: Arc<dyn Transport>,
        handlers: &Handlers,
    ) -> Result<Self, QuorumError> {
        let pristine = storage.is_pristine();
        let machine =
            StateMachine::new(store.clone(), config.node_id, &config.dir, storage.restored);
        let applied = machine.applied_index();
        let network = Network::new(Channel::new(transport.clone(), RpcKind::Raft));
        let backend_channel = Channel::new(transport.clone(), RpcKind::Forward);
        let raft = Raft::new(
            raft_id(config.node_id),
            Arc::new(config.raft_config()?),
            network,
            storage.log,
            machine,
        )
        .await
        .map_err(|e| QuorumError::Raft(e.to_string()))?;
        let stop_on_error = |e: QuorumError| {
            let raft = raft.clone();
            async move {
                let _ = raft.shutdown().await;
                Err(e)
            }
        };
        if let Err(e) = check_stored_voters(&raft, config).await {
            return stop_on_error(e).await;
        }
        let backend = Arc::new(RaftBackend::new(
            raft.clone(),
            config.node_id,
            backend_channel,
            applied,
            config.commit_timeout,
        ));
        store.set_backend(backend.clone());
        handlers.register(RpcKind::Raft, RaftHandler::new(raft.clone()));
        handlers.register(
            RpcKind::Forward,
            ForwardHandler::new(raft.clone(), config.commit_timeout),
        );
        let changer = MembershipChanger::new(raft.clone(), config.commit_timeout);
        let membership_channel = Channel::new(transport.clone(), RpcKind::Membership);
        handlers.register(
            RpcKind::Membership,
            MembershipHandler::new(
                changer.clone(),
                membership_channel.clone(),
                config.commit_timeout,
            ),
        );
        let membership = MembershipClient::new(
            changer,
            membership_channel,
            config.voters.clone(),
            config.commit_timeout,
        );
        let watchers = [
            tokio::spawn(log_leader_changes(raft.clone())),
            tokio::spawn(learn_member_addresses(raft.clone(), transport)),
        ];
        Ok(Self {
            raft,
            backend,
            voters: config.voters.clone(),
            node_id: config.node_id,
            pristine,
            membership,
            watchers,
        })
    }

    /// Whether this node started with nothing on disk.
    pub fn was_pristine(&self) -> bool {
        self.pristine
    }

    /// Forms the quorum of every voter (once, on a pristine node: the lowest id does it
    /// when the cluster is new). Harmless when the quorum exists already.
    pub async fn initialize(&self) -> Result<(), QuorumError> {
        let members: BTreeMap<u64, BasicNode> = self
            .voters
            .iter()
            .map(|v| {
                (
                    raft_id(v.id),
                    BasicNode {
                        addr: v.addr.clone(),
                    },
                )
            })
            .collect();
        match self.raft.initialize(members).await {
            Ok(()) => {
                tracing::info!(voters = %self.voters, "formed the metadata quorum");
                Ok(())
            }
            Err(RaftError::APIError(InitializeError::NotAllowed(_))) => Ok(()),
            Err(e) => Err(QuorumError::Raft(e.to_string())),
        }
    }

    /// Waits until this node has applied everything committed before the call: commits an
    /// empty batch (a barrier) and waits until it is applied here.
    pub async fn catch_up(&self) -> Result<(), CommitError> {
        self.backend
            .commit_batch(Batch {
                id: Uuid::new_v4(),
                records: Vec::new(),
                controller_term: None,
            })
            .await
    }

    /// Asks the quorum leader (wherever it is) for `change`, retrying across elections and
    /// other changes until the commit timeout.
    pub async fn change_membership(
        &self,
        change: MembershipChange,
    ) -> Result<MembershipOutcome, MembershipError> {
        self.membership.request(change).await
    }

    /// The voters, as this node's membership says (ascending): `--voters` less those
    /// removed.
    pub fn voters(&self) -> Vec<NodeId> {
        self.raft
            .metrics()
            .borrow()
            .membership_config
            .membership()
            .voter_ids()
            .map(node_id)
            .collect()
    }

    /// The check that refuses the connections of removed voters.
    pub fn removed(&self) -> RemovedVoters {
        RemovedVoters {
            metrics: self.raft.metrics(),
            voters: self.voters.clone(),
        }
    }

    /// The learners, as this node's membership says (ascending).
    pub fn learners(&self) -> Vec<NodeId> {
        self.raft
            .metrics()
            .borrow()
            .membership_config
            .membership()
            .learner_ids()
            .map(node_id)
            .collect()
    }

    /// Where member `id` (a voter or a learner) is reached, as the membership says.
    pub fn member_address(&self, id: NodeId) -> Option<String> {
        self.raft
            .metrics()
            .borrow()
            .membership_config
            .membership()
            .get_node(&raft_id(id))
            .map(|n| n.addr.clone())
    }

    /// The node that leads the quorum now, if one is known.
    pub fn leader(&self) -> Option<NodeId> {
        current_leader(&self.raft.metrics().borrow()).map(node_id)
    }

    /// The current Raft term.
    pub fn term(&self) -> u64 {
        self.raft.metrics().borrow().current_term
    }

    /// The index of the last entry applied here.
    pub fn applied_index(&self) -> Option<u64> {
        self.raft.metrics().borrow().last_applied.map(|id| id.index)
    }

    /// The index of the last snapshot this node holds.
    pub fn snapshot_index(&self) -> Option<u64> {
        self.raft.metrics().borrow().snapshot.map(|id| id.index)
    }

    /// The index of the last entry purged from this node's log (covered by a snapshot).
    pub fn purged_index(&self) -> Option<u64> {
        self.raft.metrics().borrow().purged.map(|id| id.index)
    }

    /// This node's id.
    pub fn node_id(&self) -> NodeId {
        self.node_id
    }

    /// The commit path (the store's backend).
    pub fn backend(&self) -> &Arc<RaftBackend> {
        &self.backend
    }

    /// Stops this node's Raft: it leaves the quorum until started again.
    pub async fn shutdown(&self) {
        for watcher in &self.watchers {
            watcher.abort();
        }
        if let Err(e) = self.raft.shutdown().await {
            tracing::warn!(error = %e, "the metadata quorum did not stop cleanly");
        }
    }
}

/// Refuses a data directory whose quorum has voters that are not configured, or no longer
/// has this node among them. Fewer voters than configured is the quorum after removals:
/// the remaining nodes restart with the `--voters` the cluster was formed with, and the
/// membership in the log, not the flag, says who votes.
///
/// Read from Raft's state, not its metrics: those are published a moment after it starts.
async fn check_stored_voters(raft: &Raft, config: &QuorumConfig) -> Result<(), QuorumError> {
    let stored: Vec<NodeId> = raft
        .with_raft_state(|state| {
            let membership = state.membership_state.effective().membership();
            membership.voter_ids().map(node_id).collect()
        })
        .await
        .map_err(|e| QuorumError::Raft(e.to_string()))?;
    let configured = config.voters.ids();
    if stored.is_empty() {
        return Ok(());
    }
    if !stored.iter().all(|id| configured.contains(id)) {
        return Err(QuorumError::VotersDiffer { stored, configured });
    }
    if configured.contains(&config.node_id) && !stored.contains(&config.node_id) {
        return Err(QuorumError::Removed {
            node: config.node_id,
            voters: stored,
        });
    }
    Ok(())
}

/// Why removed voter `node` takes no part any more, `voters` being those left.
fn removed_voter(node: NodeId, voters: &[NodeId]) -> String {
    format!(
        "node {node} was removed from the metadata quorum (its voters are now {voters:?}): a \
         removed node does not come back, even though --voters still lists it; add a broker \
         with a new node id and an empty data directory instead"
    )
}

/// Refuses the connections of voters removed from the quorum (see [`Quorum::removed`]).
#[derive(Clone)]
pub struct RemovedVoters {
    metrics: tokio::sync::watch::Receiver<openraft::RaftMetrics<u64, BasicNode>>,
    voters: Voters,
}

impl RemovedVoters {
    /// Why node `id` may not connect: it is in `--voters`, the quorum has formed, and its
    /// membership holds it neither as a voter nor as a learner. A removed node that missed
    /// the change still believes it votes; with its connections refused it cannot call
    /// elections (which the others would refuse for its shorter log, but each one costs
    /// them a round) and its restart ends with this reason.
    pub fn refusal(&self, id: NodeId) -> Option<String> {
        // A node outside --voters is a learner, or a broker asking to become one.
        self.voters.get(id)?;
        let m = self.metrics.borrow();
        let membership = m.membership_config.membership();
        let voters: Vec<NodeId> = membership.voter_ids().map(node_id).collect();
        (!voters.is_empty() && membership.get_node(&raft_id(id)).is_none())
            .then(|| removed_voter(id, &voters))
    }
}

/// Tells the transport where every member of the quorum is reached whenever the
/// membership changes: learners are in no `--voters` list, and every node (the leader
/// replicating to them, brokers fetching from partitions they lead) reaches them at the
/// address they joined with.
async fn learn_member_addresses(raft: Raft, transport: Arc<dyn Transport>) {
    let mut metrics = raft.metrics();
    let mut seen = None;
    loop {
        // Metrics change at every entry applied; the membership rarely.
        let changed: Option<Vec<(u64, String)>> = {
            let m = metrics.borrow_and_update();
            let config = &m.membership_config;
            (seen != Some(*config.log_id())).then(|| {
                seen = Some(*config.log_id());
                config
                    .membership()
                    .nodes()
                    .map(|(id, node)| (*id, node.addr.clone()))
                    .collect()
            })
        };
        for (id, addr) in changed.iter().flatten() {
            transport.learn_address(node_id(*id), addr);
        }
        if metrics.changed().await.is_err() {
            return;
        }
    }
}

/// Logs the quorum leader and term whenever they change, and stops the process if Raft
/// stopped on its own (a storage error or a bug in openraft): a node without its quorum
/// would serve stale metadata forever.
async fn log_leader_changes(raft: Raft) {
    let mut metrics = raft.metrics();
    let mut seen = (None, 0);
    loop {
        let (now, failed) = {
            let m = metrics.borrow_and_update();
            let failed = match &m.running_state {
                Err(openraft::error::Fatal::Stopped) | Ok(()) => None,
                Err(e) => Some(e.to_string()),
            };
            ((current_leader(&m), m.current_term), failed)
        };
        if let Some(error) = failed {
            files::fail_stop("go on", std::path::Path::new("openraft"), &error);
        }
        if now != seen {
            match now.0 {
                Some(leader) => tracing::info!(
                    term = now.1,
                    "metadata quorum leader: node {}",
                    node_id(leader)
                ),
                None if now.1 > 0 => {
                    tracing::info!(term = now.1, "metadata quorum: no leader, electing one")
                }
                None => {}
            }
            seen = now;
        }
        if metrics.changed().await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use openraft::storage::{RaftLogStorage, RaftStateMachine};
    use openraft::testing::{StoreBuilder, Suite};
    use openraft::{CommittedLeaderId, EntryPayload, RaftLogReader};

    use super::types::{Entry, LogId, StorageError, Vote};
    use super::*;

    /// A log store and state machine in a fresh directory, for openraft's storage suite.
    struct Fresh;

    impl StoreBuilder<TypeConfig, LogStore, StateMachine, tempfile::TempDir> for Fresh {
        async fn build(&self) -> Result<(tempfile::TempDir, LogStore, StateMachine), StorageError> {
            let dir = tempfile::tempdir().expect("tempdir");
            let log = LogStore::open(dir.path()).expect("open log");
            let restored = Restored::open(dir.path(), 1).expect("open snapshot");
            let store = MetadataStore::new(restored.image.clone());
            let machine = StateMachine::new(store, 1, dir.path(), restored);
            Ok((dir, log, machine))
        }
    }

    /// openraft's own checks of a log store and state machine (membership from the log
    /// and the state machine, log state, vote, append/truncate/purge, snapshots).
    #[test]
    fn the_store_passes_openraft_storage_suite() {
        Suite::test_all(Fresh).unwrap();
    }

    /// An entry of proposal `proposal` setting the cluster id.
    fn proposal(term: u64, index: u64, proposal: u128, cluster_id: &str) -> Entry {
        Entry {
            log_id: LogId::new(CommittedLeaderId::new(term, 1), index),
            payload: EntryPayload::Normal(Batch {
                id: Uuid::from_u128(proposal),
                records: vec![sluice_metadata::MetadataRecord::ClusterIdSet {
                    cluster_id: cluster_id.into(),
                }],
                controller_term: None,
            }),
        }
    }

    fn entry(term: u64, index: u64, cluster_id: &str) -> Entry {
        proposal(term, index, u128::from(index), cluster_id)
    }

    async fn append(log: &mut LogStore, entries: Vec<Entry>) {
        openraft::storage::RaftLogStorageExt::blocking_append(log, entries)
            .await
            .unwrap();
    }

    async fn indexes(log: &mut LogStore) -> Vec<u64> {
        log.try_get_log_entries(..)
            .await
            .unwrap()
            .iter()
            .map(|e| e.log_id.index)
            .collect()
    }

    /// What was appended, truncated, purged and voted is what a reopened store holds, and
    /// a write torn by a crash is dropped while the rest stays.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_log_and_vote_survive_reopening_and_a_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = LogStore::open(dir.path()).unwrap();
        assert!(log.is_pristine());
        append(&mut log, (0..6).map(|i| entry(1, i, "a")).collect()).await;
        log.truncate(LogId::new(CommittedLeaderId::new(1, 1), 4))
            .await
            .unwrap();
        append(&mut log, vec![entry(2, 4, "b")]).await;
        log.purge(LogId::new(CommittedLeaderId::new(1, 1), 1))
            .await
            .unwrap();
        let vote = Vote::new(2, 3);
        log.save_vote(&vote).await.unwrap();
        drop(log);

        let mut log = LogStore::open(dir.path()).unwrap();
        assert!(!log.is_pristine());
        assert_eq!(indexes(&mut log).await, vec![2, 3, 4]);
        assert_eq!(log.read_vote().await.unwrap(), Some(vote));
        let state = log.get_log_state().await.unwrap();
        assert_eq!(state.last_purged_log_id.map(|id| id.index), Some(1));
        assert_eq!(
            state.last_log_id,
            Some(LogId::new(CommittedLeaderId::new(2, 1), 4))
        );
        append(&mut log, vec![entry(2, 5, "c")]).await;
        drop(log);

        // A crash in the middle of the last append.
        let path = dir.path().join("log");
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 7]).unwrap();
        let mut log = LogStore::open(dir.path()).unwrap();
        assert_eq!(indexes(&mut log).await, vec![2, 3, 4]);
        append(&mut log, vec![entry(2, 5, "d")]).await;
        drop(log);
        let mut log = LogStore::open(dir.path()).unwrap();
        assert_eq!(indexes(&mut log).await, vec![2, 3, 4, 5]);
        drop(log);

        // Damage before the end is not a torn write: the node refuses to start.
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[20] ^= 0xff;
        std::fs::write(&path, &bytes).unwrap();
        let refused = LogStore::open(dir.path()).err().unwrap().to_string();
        assert!(
            refused.starts_with("the metadata quorum's ")
                && refused.contains("is damaged: damaged record at byte"),
            "{refused}"
        );
        std::fs::write(dir.path().join("vote"), b"garbage").unwrap();
        std::fs::write(&path, b"").unwrap();
        let refused = LogStore::open(dir.path()).err().unwrap().to_string();
        assert!(
            refused.ends_with("is damaged: not one intact vote record"),
            "{refused}"
        );
    }

    /// A snapshot built from the state machine rebuilds the same image when a new node
    /// installs it, and is what a restarted node starts from.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn snapshots_rebuild_the_image_on_install_and_restart() {
        let (dir, _log, mut machine) = Fresh.build().await.unwrap();
        let applied = machine
            .apply(vec![proposal(1, 0, 7, "the-id")])
            .await
            .unwrap();
        assert_eq!(applied, vec![BatchOutcome(Ok(()))]);
        // A retry of proposal 7 (even one that would conflict now) is answered with its
        // first outcome and not applied again; another proposal conflicts.
        let retried = machine
            .apply(vec![proposal(1, 1, 7, "other")])
            .await
            .unwrap();
        assert_eq!(retried, vec![BatchOutcome(Ok(()))]);
        let other = machine
            .apply(vec![proposal(1, 2, 8, "other")])
            .await
            .unwrap();
        assert_eq!(
            other,
            vec![BatchOutcome(Err(
                sluice_metadata::RecordConflict::ClusterIdSet("the-id".into())
            ))]
        );
        assert_eq!(machine.image().cluster_id(), Some("the-id"));
        let mut builder = machine.get_snapshot_builder().await;
        let snapshot = openraft::RaftSnapshotBuilder::build_snapshot(&mut builder)
            .await
            .unwrap();
        assert_eq!(snapshot.meta.last_log_id.map(|id| id.index), Some(2));

        let (_other_dir, _, mut other) = Fresh.build().await.unwrap();
        other
            .install_snapshot(&snapshot.meta, snapshot.snapshot)
            .await
            .unwrap();
        assert_eq!(other.image().cluster_id(), Some("the-id"));
        let (last, _) = other.applied_state().await.unwrap();
        assert_eq!(last.map(|id| id.index), Some(2));
        // The installed snapshot carries the remembered proposals: a retry is still one.
        let retried = other.apply(vec![proposal(1, 3, 7, "x")]).await.unwrap();
        assert_eq!(retried, vec![BatchOutcome(Ok(()))]);

        let restored = Restored::open(dir.path(), 1).unwrap();
        assert_eq!(restored.image.cluster_id(), Some("the-id"));
        assert_eq!(restored.last_log_id().map(|id| id.index), Some(2));
    }

    /// Set in the child process whose log store loses its directory.
    const CHILD: &str = "SLUICE_QUORUM_IO_ERROR_CHILD";

    /// A write of the Raft log store that fails stops the process (openraft issue 1795:
    /// going on after a storage error can corrupt followers), saying what failed.
    #[test]
    fn a_failed_write_of_the_log_store_stops_the_process() {
        use std::os::unix::process::ExitStatusExt;
        if let Some(dir) = std::env::var_os(CHILD) {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .build()
                .unwrap();
            runtime.block_on(async {
                let mut log = LogStore::open(std::path::Path::new(&dir)).unwrap();
                std::fs::remove_dir_all(&dir).unwrap();
                log.save_vote(&Vote::new(1, 1)).await.unwrap();
            });
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let name = "quorum::tests::a_failed_write_of_the_log_store_stops_the_process";
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", name, "--nocapture", "--test-threads=1"])
            .env(CHILD, dir.path().join("raft"))
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.signal(), Some(6), "SIGABRT expected: {stderr}");
        assert!(
            stderr.contains("the metadata quorum cannot save its vote (")
                && stderr.contains(
                    "stopping the node (a Raft voter must not go on after losing a write"
                ),
            "{stderr}"
        );
    }

    /// A controller's batch applies only when the leader of the term its controller led
    /// in commits it: one decided in term 1 and committed by term 2's leader (a paused
    /// controller's decision, forwarded after it lost the leadership) is refused and
    /// changes nothing; the same in its own term applies.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_controller_batch_committed_in_a_later_term_is_refused() {
        let (_dir, _log, mut machine) = Fresh.build().await.unwrap();
        let controller_batch = |decided_in: u64, committed_in: u64, index: u64| {
            let mut entry = proposal(committed_in, index, u128::from(index), "the-id");
            if let EntryPayload::Normal(batch) = &mut entry.payload {
                batch.controller_term = Some(decided_in);
            }
            entry
        };
        let stale = machine
            .apply(vec![controller_batch(1, 2, 0)])
            .await
            .unwrap();
        assert_eq!(
            stale,
            vec![BatchOutcome(Err(
                sluice_metadata::RecordConflict::StaleController {
                    decided_in: 1,
                    committed_in: 2,
                }
            ))]
        );
        assert_eq!(machine.image().cluster_id(), None);
        let current = machine
            .apply(vec![controller_batch(2, 2, 1)])
            .await
            .unwrap();
        assert_eq!(current, vec![BatchOutcome(Ok(()))]);
        assert_eq!(machine.image().cluster_id(), Some("the-id"));
        // A batch written before the field existed has none, and applies as before.
        let old: Batch =
            serde_json::from_str(r#"{"id":"00000000-0000-0000-0000-000000000007","records":[]}"#)
                .unwrap();
        assert_eq!(old.controller_term, None);
    }
}

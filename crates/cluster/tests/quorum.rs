//! The metadata quorum in one process: voters over a `MemoryNetwork`, each with its own
//! data directory and metadata store, on a paused clock (time moves only when every task
//! waits, so elections and timeouts play out the same way on a loaded machine).
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use sluice_cluster::quorum::{
    MembershipChange, MembershipError, MembershipOutcome, MembershipRefusal, Quorum, QuorumConfig,
    QuorumError, QuorumStorage,
};
use sluice_cluster::{Handlers, MemoryNetwork, NodeId, Voters};
use sluice_metadata::{
    CommitError, MetadataDelta, MetadataImage, MetadataPublisher, MetadataRecord, MetadataStore,
    PartitionAssignment, RecordConflict,
};
use tokio::time::Instant;
use uuid::Uuid;

/// The names of the topics each published delta created, in the order published.
#[derive(Default)]
struct Created(Mutex<Vec<String>>);

impl MetadataPublisher for Created {
    fn name(&self) -> &'static str {
        "created topics"
    }

    fn publish(&self, delta: &MetadataDelta, image: &MetadataImage) {
        let mut seen = self.0.lock();
        for id in &delta.topics_created {
            if let Some(t) = image.topic_by_id(id) {
                seen.push(t.name.clone());
            }
        }
    }
}

struct Node {
    store: Arc<MetadataStore>,
    created: Arc<Created>,
    quorum: Quorum,
}

struct Cluster {
    net: Arc<MemoryNetwork>,
    voters: Voters,
    dir: tempfile::TempDir,
    tune: fn(&mut QuorumConfig),
    nodes: BTreeMap<NodeId, Node>,
}

fn production(_: &mut QuorumConfig) {}

impl Cluster {
    /// `n` voters started, the lowest one forming the quorum.
    async fn start(n: NodeId, tune: fn(&mut QuorumConfig)) -> Self {
        let voters: Voters = (1..=n)
            .map(|id| format!("{id}@node{id}:9191"))
            .collect::<Vec<_>>()
            .join(",")
            .parse()
            .unwrap();
        let mut cluster = Cluster {
            net: MemoryNetwork::new(7),
            voters,
            dir: tempfile::tempdir().unwrap(),
            tune,
            nodes: BTreeMap::new(),
        };
        for id in 1..=n {
            cluster.start_node(id).await;
        }
        let first = cluster.node(1);
        assert!(first.quorum.was_pristine());
        first.quorum.initialize().await.unwrap();
        cluster
    }

    fn config(&self, id: NodeId) -> QuorumConfig {
        let mut config = QuorumConfig::new(
            id,
            self.voters.clone(),
            self.dir.path().join(format!("node{id}")),
        );
        (self.tune)(&mut config);
        config
    }

    /// Starts node `id` from its data directory (new or left by an earlier run).
    async fn start_node(&mut self, id: NodeId) {
        self.try_start_node(id).await.unwrap();
    }

    /// Starts node `id` from its data directory, unless its quorum refuses to start.
    async fn try_start_node(&mut self, id: NodeId) -> Result<(), QuorumError> {
        let config = self.config(id);
        let storage = QuorumStorage::open(&config).unwrap();
        let store = MetadataStore::new(storage.image());
        let created = Arc::new(Created::default());
        store.subscribe(created.clone());
        let handlers = Handlers::new();
        let transport = Arc::new(self.net.transport(id));
        let quorum = Quorum::start(&config, storage, &store, transport, &handlers).await?;
        self.net.register(id, handlers);
        self.nodes.insert(
            id,
            Node {
                store,
                created,
                quorum,
            },
        );
        Ok(())
    }

    /// Stops node `id` as a crash would: gone from the network, its Raft stopped.
    async fn stop_node(&mut self, id: NodeId) {
        self.net.stop(id);
        let node = self.nodes.remove(&id).unwrap();
        node.quorum.shutdown().await;
    }

    fn node(&self, id: NodeId) -> &Node {
        &self.nodes[&id]
    }

    /// Waits until the running nodes `among` agree on one leader among them.
    async fn leader(&self, among: &[NodeId]) -> NodeId {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let seen: BTreeSet<Option<NodeId>> = among
                .iter()
                .map(|id| self.node(*id).quorum.leader())
                .collect();
            if let [Some(leader)] = seen.iter().collect::<Vec<_>>()[..]
                && among.contains(leader)
            {
                return *leader;
            }
            assert!(Instant::now() < deadline, "no agreed leader: {seen:?}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

fn topic(name: &str) -> MetadataRecord {
    MetadataRecord::TopicCreated {
        name: name.into(),
        id: Uuid::new_v4(),
        partitions: 1,
        configs: BTreeMap::new(),
        internal: false,
        replicas: vec![PartitionAssignment(vec![1])],
    }
}

/// Proposes `record` on `store`, as admin code does.
async fn propose(store: &MetadataStore, record: MetadataRecord) -> Result<(), CommitError> {
    store
        .propose(|_| Ok::<_, CommitError>((vec![record], ())))
        .await
}

/// Two nodes' images hold the same metadata (each image also knows its own node id).
fn same_metadata(a: &MetadataImage, b: &MetadataImage) -> bool {
    a.to_records() == b.to_records() && a.offset == b.offset
}

fn topic_names(image: &MetadataImage) -> Vec<String> {
    image.topics().map(|t| t.name.clone()).collect()
}

#[tokio::test(start_paused = true)]
async fn batches_committed_from_any_node_apply_in_one_order_everywhere() {
    let cluster = Cluster::start(3, production).await;
    let leader = cluster.leader(&[1, 2, 3]).await;
    // Twelve proposals, four from each node, all at once.
    let proposals = (0..12).map(|i| {
        let node = cluster.node(i % 3 + 1);
        propose(&node.store, topic(&format!("t{i:02}")))
    });
    for result in futures::future::join_all(proposals).await {
        result.unwrap();
    }
    // Each proposer sees its own topic as soon as its commit returns; every node gets all.
    for id in 1..=3 {
        cluster.node(id).quorum.catch_up().await.unwrap();
    }
    let order = cluster.node(leader).created.0.lock().clone();
    assert_eq!(order.len(), 12);
    for id in 1..=3 {
        let node = cluster.node(id);
        assert_eq!(*node.created.0.lock(), order, "node {id}");
        assert!(same_metadata(
            &node.store.image(),
            &cluster.node(leader).store.image()
        ));
        assert_eq!(node.store.leader(), Some(leader));
    }
}

#[tokio::test(start_paused = true)]
async fn a_decision_taken_against_a_stale_image_is_refused_everywhere() {
    let cluster = Cluster::start(3, production).await;
    cluster.leader(&[1, 2, 3]).await;
    let first = topic("t");
    propose(&cluster.node(2).store, first.clone())
        .await
        .unwrap();
    // Node 3 decides as if "t" did not exist (its image was older when it looked).
    let stale = topic("t");
    let refused = propose(&cluster.node(3).store, stale).await.unwrap_err();
    assert!(
        matches!(&refused, CommitError::Conflict(RecordConflict::TopicExists(name)) if name == "t"),
        "{refused:?}"
    );
    let MetadataRecord::TopicCreated { id, .. } = first else {
        unreachable!()
    };
    for id_ in 1..=3 {
        let node = cluster.node(id_);
        node.quorum.catch_up().await.unwrap();
        let image = node.store.image();
        assert_eq!(image.topic("t").map(|t| t.id), Some(id), "node {id_}");
        assert_eq!(*node.created.0.lock(), vec!["t".to_string()]);
    }
}

#[tokio::test(start_paused = true)]
async fn a_new_leader_takes_over_within_the_election_timeout_and_commits_continue() {
    let mut cluster = Cluster::start(3, production).await;
    let old = cluster.leader(&[1, 2, 3]).await;
    propose(&cluster.node(old).store, topic("before"))
        .await
        .unwrap();
    let rest: Vec<NodeId> = (1..=3).filter(|id| *id != old).collect();
    let stopped = Instant::now();
    cluster.stop_node(old).await;
    let new = cluster.leader(&rest).await;
    let took = stopped.elapsed();
    assert_ne!(new, old);
    // A follower calls an election after its election timeout (1–1.1 s, checked on
    // openraft's 375 ms ticks); the other grants it once the old leader's lease (1.1 s)
    // ran out, else the next round wins. (About 1.9 s here.)
    assert!(took <= Duration::from_secs(3), "took {took:?}");
    for id in &rest {
        propose(&cluster.node(*id).store, topic(&format!("after-{id}")))
            .await
            .unwrap();
    }
    for id in &rest {
        let node = cluster.node(*id);
        node.quorum.catch_up().await.unwrap();
        assert_eq!(
            topic_names(&node.store.image()),
            vec![
                format!("after-{}", rest[0]),
                format!("after-{}", rest[1]),
                "before".to_string()
            ]
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_restarted_node_catches_up_from_the_log() {
    let mut cluster = Cluster::start(3, production).await;
    cluster.leader(&[1, 2, 3]).await;
    propose(&cluster.node(1).store, topic("a")).await.unwrap();
    cluster.stop_node(3).await;
    for name in ["b", "c", "d"] {
        propose(&cluster.node(2).store, topic(name)).await.unwrap();
    }
    cluster.start_node(3).await;
    let node = cluster.node(3);
    assert!(!node.quorum.was_pristine());
    node.quorum.catch_up().await.unwrap();
    assert_eq!(topic_names(&node.store.image()), ["a", "b", "c", "d"]);
    assert!(same_metadata(
        &node.store.image(),
        &cluster.node(1).store.image()
    ));
    // It restarted from its log: every topic was published again, in commit order.
    assert_eq!(*node.created.0.lock(), ["a", "b", "c", "d"]);
}

/// Snapshots every 10 entries, keeping 2 behind.
fn small_snapshots(config: &mut QuorumConfig) {
    config.snapshot_every = 10;
    config.entries_kept_after_snapshot = 2;
}

/// A node down while 40 entries commit comes back to a leader whose log no longer has
/// them: it is sent the leader's snapshot. (A leader keeps the log a follower still needs
/// while it replicates to it; a follower purges freely, so the test makes the follower
/// that purged the leader.)
#[tokio::test(start_paused = true)]
async fn a_node_behind_the_purged_log_catches_up_through_a_snapshot() {
    let mut cluster = Cluster::start(3, small_snapshots).await;
    let leader = cluster.leader(&[1, 2, 3]).await;
    propose(&cluster.node(1).store, topic("early"))
        .await
        .unwrap();
    cluster.node(3).quorum.catch_up().await.unwrap();
    let stopped_at = cluster.node(3).quorum.applied_index().unwrap();
    cluster.stop_node(3).await;
    for i in 0..40 {
        propose(&cluster.node(1 + i % 2).store, topic(&format!("t{i:02}")))
            .await
            .unwrap();
    }
    let follower = [1, 2].into_iter().find(|id| *id != leader).unwrap();
    let purged = cluster.node(follower).quorum.purged_index();
    assert!(purged.is_some_and(|p| p > stopped_at + 1), "{purged:?}");
    // The old leader goes; node 3 returns; the follower that purged is the only one that
    // can lead (node 3's log is behind).
    cluster.stop_node(leader).await;
    cluster.start_node(3).await;
    assert_eq!(cluster.leader(&[follower, 3]).await, follower);
    let node = cluster.node(3);
    node.quorum.catch_up().await.unwrap();
    assert!(same_metadata(
        &node.store.image(),
        &cluster.node(follower).store.image()
    ));
    assert!(
        node.quorum
            .snapshot_index()
            .is_some_and(|s| s > stopped_at + 1)
    );
    // Installing the snapshot told the publishers about every topic it had not seen.
    let created = node.created.0.lock().clone();
    assert_eq!(created.first().map(String::as_str), Some("early"));
    assert_eq!(created.len(), 41, "{created:?}");
    // The whole cluster restarts from its snapshots and logs.
    cluster.start_node(leader).await;
    for id in 1..=3 {
        cluster.stop_node(id).await;
    }
    for id in 1..=3 {
        cluster.start_node(id).await;
    }
    cluster.leader(&[1, 2, 3]).await;
    for id in 1..=3 {
        let node = cluster.node(id);
        node.quorum.catch_up().await.unwrap();
        assert_eq!(node.store.image().topics().count(), 41, "node {id}");
    }
}

/// Catches `quorum` up, across the re-election a healed partition may cause.
async fn catch_up(quorum: &Quorum) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while let Err(e) = quorum.catch_up().await {
        assert!(
            Instant::now() < deadline,
            "node {} never caught up: {e}",
            quorum.node_id()
        );
    }
}

fn short_commits(config: &mut QuorumConfig) {
    config.commit_timeout = Duration::from_secs(3);
}

#[tokio::test(start_paused = true)]
async fn a_partitioned_minority_cannot_commit_and_catches_up_once_healed() {
    let cluster = Cluster::start(3, short_commits).await;
    let leader = cluster.leader(&[1, 2, 3]).await;
    // Cut a follower off: it cannot commit, the majority can.
    let follower = (1..=3).find(|id| *id != leader).unwrap();
    cluster.net.isolate(follower);
    let refused = propose(&cluster.node(follower).store, topic("minority"))
        .await
        .unwrap_err();
    assert!(
        matches!(refused, CommitError::Unavailable(_)),
        "{refused:?}"
    );
    propose(&cluster.node(leader).store, topic("majority"))
        .await
        .unwrap();
    assert!(
        cluster
            .node(follower)
            .store
            .image()
            .topic("majority")
            .is_none()
    );
    // Now cut the leader off instead: the other two elect a new one and commit without it.
    // (The healed follower called elections while cut off: without pre-vote in openraft
    // 0.9 its higher term makes the quorum elect again once it is back.)
    cluster.net.heal();
    catch_up(&cluster.node(follower).quorum).await;
    cluster.net.isolate(leader);
    let rest: Vec<NodeId> = (1..=3).filter(|id| *id != leader).collect();
    let refused = propose(&cluster.node(leader).store, topic("old-leader"))
        .await
        .unwrap_err();
    assert!(
        matches!(refused, CommitError::Unavailable(_)),
        "{refused:?}"
    );
    let new = cluster.leader(&rest).await;
    assert_ne!(new, leader);
    propose(&cluster.node(rest[0]).store, topic("new-leader"))
        .await
        .unwrap();
    cluster.net.heal();
    for id in 1..=3 {
        let node = cluster.node(id);
        catch_up(&node.quorum).await;
        assert_eq!(
            topic_names(&node.store.image()),
            ["majority", "new-leader"],
            "node {id}"
        );
    }
}

/// A node outside the voters joins as a learner: it gets the whole metadata log, is
/// listed as a learner on every node, never counts towards a commit or an election, and
/// leaves when removed. Adding it again is a no-op; voters can neither join as learners
/// nor be removed.
#[tokio::test(start_paused = true)]
async fn a_learner_joins_receives_the_log_and_leaves_without_touching_the_voters() {
    let mut cluster = Cluster::start(3, production).await;
    let leader = cluster.leader(&[1, 2, 3]).await;
    propose(&cluster.node(leader).store, topic("before"))
        .await
        .unwrap();
    // Node 4 is not among the voters; it asks a voter to add it.
    cluster.start_node(4).await;
    let add = |node: NodeId| MembershipChange::AddLearner {
        node,
        addr: format!("node{node}:9191"),
    };
    assert_eq!(
        cluster.node(4).quorum.change_membership(add(4)).await,
        Ok(MembershipOutcome::Changed)
    );
    cluster.node(4).quorum.catch_up().await.unwrap();
    assert_eq!(topic_names(&cluster.node(4).store.image()), vec!["before"]);
    for id in 1..=4 {
        cluster.node(id).quorum.catch_up().await.unwrap();
        assert_eq!(cluster.node(id).quorum.learners(), vec![4], "node {id}");
        assert_eq!(
            cluster.node(id).quorum.member_address(4).as_deref(),
            Some("node4:9191")
        );
    }
    // Asked again (a restarted learner), from any node: nothing changes.
    for id in [4, 1, 2] {
        assert_eq!(
            cluster.node(id).quorum.change_membership(add(4)).await,
            Ok(MembershipOutcome::Unchanged),
            "asked on node {id}"
        );
    }
    // Restarted at another cluster address: only its address changes, on every node, and
    // it stays a learner.
    let moved = MembershipChange::AddLearner {
        node: 4,
        addr: "node4-moved:9292".into(),
    };
    assert_eq!(
        cluster
            .node(4)
            .quorum
            .change_membership(moved.clone())
            .await,
        Ok(MembershipOutcome::Changed)
    );
    for id in 1..=4 {
        cluster.node(id).quorum.catch_up().await.unwrap();
        assert_eq!(cluster.node(id).quorum.learners(), vec![4], "node {id}");
        assert_eq!(
            cluster.node(id).quorum.member_address(4).as_deref(),
            Some("node4-moved:9292"),
            "node {id}"
        );
    }
    assert_eq!(
        cluster.node(1).quorum.change_membership(moved).await,
        Ok(MembershipOutcome::Unchanged)
    );
    // A voter is never made a learner, nor removed.
    assert_eq!(
        cluster.node(4).quorum.change_membership(add(2)).await,
        Err(MembershipError::Refused(MembershipRefusal::Voter(2)))
    );
    assert_eq!(
        cluster
            .node(3)
            .quorum
            .change_membership(MembershipChange::RemoveLearner { node: 1 })
            .await,
        Err(MembershipError::Refused(MembershipRefusal::Voter(1)))
    );
    // With the learner and one voter stopped, the other two voters still commit and elect:
    // the learner counts for neither, and it never stands for election itself.
    let follower = (1..=3).find(|id| *id != leader).unwrap();
    cluster.stop_node(follower).await;
    cluster.stop_node(4).await;
    propose(&cluster.node(leader).store, topic("without-the-learner"))
        .await
        .unwrap();
    cluster.stop_node(leader).await;
    let last = (1..=3).find(|id| *id != leader && *id != follower).unwrap();
    cluster.start_node(follower).await;
    cluster.start_node(4).await;
    let new_leader = cluster.leader(&[follower, last, 4]).await;
    assert!([follower, last].contains(&new_leader), "{new_leader}");
    cluster.start_node(leader).await;
    // The restarted learner is a learner still, and catches up without being added again.
    cluster.node(4).quorum.catch_up().await.unwrap();
    assert_eq!(
        topic_names(&cluster.node(4).store.image()),
        vec!["before", "without-the-learner"]
    );
    // Removed, from a voter: gone from every node's membership; removing it again is a
    // no-op.
    let remove = MembershipChange::RemoveLearner { node: 4 };
    assert_eq!(
        cluster
            .node(1)
            .quorum
            .change_membership(remove.clone())
            .await,
        Ok(MembershipOutcome::Changed)
    );
    assert_eq!(
        cluster.node(2).quorum.change_membership(remove).await,
        Ok(MembershipOutcome::Unchanged)
    );
    for id in 1..=3 {
        cluster.node(id).quorum.catch_up().await.unwrap();
        assert_eq!(
            cluster.node(id).quorum.learners(),
            Vec::<NodeId>::new(),
            "node {id}"
        );
    }
}

/// Membership changes asked for at once, from different nodes, are made one after the
/// other: every learner gets in, and every node lists them all.
#[tokio::test(start_paused = true)]
async fn learners_asking_at_once_all_join() {
    let mut cluster = Cluster::start(3, production).await;
    cluster.leader(&[1, 2, 3]).await;
    for id in 4..=6 {
        cluster.start_node(id).await;
    }
    let asks = (4..=6).map(|id| {
        cluster
            .node(id)
            .quorum
            .change_membership(MembershipChange::AddLearner {
                node: id,
                addr: format!("node{id}:9191"),
            })
    });
    for outcome in futures::future::join_all(asks).await {
        assert_eq!(outcome, Ok(MembershipOutcome::Changed));
    }
    for id in 1..=6 {
        cluster.node(id).quorum.catch_up().await.unwrap();
        assert_eq!(
            cluster.node(id).quorum.learners(),
            vec![4, 5, 6],
            "node {id}"
        );
    }
}

fn remove_voter(node: NodeId) -> MembershipChange {
    MembershipChange::RemoveVoter { node }
}

/// The ids in `ids` other than `id`.
fn others(ids: &[NodeId], id: NodeId) -> Vec<NodeId> {
    ids.iter().copied().filter(|other| *other != id).collect()
}

/// A follower voter leaves (asking for its own removal): the two voters left commit, elect
/// and restart without it, with the `--voters` the cluster was formed with (which still
/// lists it); asking again changes nothing. Restarted with its data, the removed node
/// missed the end of the change (the leader stops replicating to a node as soon as it
/// writes the membership without it): it still counts itself a voter, but with the shorter
/// log it never wins an election, the leader's term does not move, and commits go on.
#[tokio::test(start_paused = true)]
async fn a_follower_voter_leaves_and_the_two_left_commit_elect_and_restart_without_it() {
    let mut cluster = Cluster::start(3, production).await;
    let leader = cluster.leader(&[1, 2, 3]).await;
    propose(&cluster.node(leader).store, topic("before"))
        .await
        .unwrap();
    let gone = others(&[1, 2, 3], leader)[0];
    let rest = others(&[1, 2, 3], gone);
    assert_eq!(
        cluster
            .node(gone)
            .quorum
            .change_membership(remove_voter(gone))
            .await,
        Ok(MembershipOutcome::Changed)
    );
    for id in &rest {
        let node = cluster.node(*id);
        node.quorum.catch_up().await.unwrap();
        assert_eq!(node.quorum.voters(), rest, "node {id}");
        assert_eq!(node.quorum.learners(), Vec::<NodeId>::new(), "node {id}");
        assert_eq!(node.quorum.member_address(gone), None, "node {id}");
    }
    assert_eq!(
        cluster
            .node(rest[1])
            .quorum
            .change_membership(remove_voter(gone))
            .await,
        Ok(MembershipOutcome::Unchanged)
    );
    cluster.stop_node(gone).await;
    for id in &rest {
        propose(&cluster.node(*id).store, topic(&format!("after-{id}")))
            .await
            .unwrap();
    }
    // Both restart (the other one first stopped too: a leader elected from scratch).
    for id in &rest {
        cluster.stop_node(*id).await;
    }
    for id in &rest {
        cluster.start_node(*id).await;
    }
    let leader = cluster.leader(&rest).await;
    for id in &rest {
        let node = cluster.node(*id);
        catch_up(&node.quorum).await;
        assert_eq!(node.quorum.voters(), rest, "node {id}");
        assert_eq!(node.quorum.member_address(gone), None, "node {id}");
    }
    propose(&cluster.node(rest[1]).store, topic("restarted"))
        .await
        .unwrap();
    let term = cluster.node(leader).quorum.term();
    cluster.start_node(gone).await;
    assert_eq!(cluster.node(gone).quorum.voters(), vec![1, 2, 3]);
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(cluster.leader(&rest).await, leader);
    assert_eq!(cluster.node(leader).quorum.term(), term);
    assert_ne!(cluster.node(gone).quorum.leader(), Some(gone));
    propose(&cluster.node(leader).store, topic("still"))
        .await
        .unwrap();
    for id in &rest {
        let node = cluster.node(*id);
        node.quorum.catch_up().await.unwrap();
        assert_eq!(
            topic_names(&node.store.image()),
            vec![
                format!("after-{}", rest[0]),
                format!("after-{}", rest[1]),
                "before".to_string(),
                "restarted".to_string(),
                "still".to_string()
            ],
            "node {id}"
        );
    }
}

/// The leader removes itself (asked through a follower, which hands the request on): once
/// the change is committed it steps down, names no leader any more (openraft 0.9 keeps its
/// vote; a leader outside the membership is none), and the two voters left elect one of
/// them and commit. Restarted with its data, which holds the change, the removed node
/// refuses to start, saying why.
#[tokio::test(start_paused = true)]
async fn the_leader_voter_leaves_and_the_voters_left_elect_one_of_them() {
    let mut cluster = Cluster::start(3, production).await;
    let old = cluster.leader(&[1, 2, 3]).await;
    let rest = others(&[1, 2, 3], old);
    assert_eq!(
        cluster
            .node(rest[0])
            .quorum
            .change_membership(remove_voter(old))
            .await,
        Ok(MembershipOutcome::Changed)
    );
    let new = cluster.leader(&rest).await;
    assert!(rest.contains(&new), "{new}");
    assert_eq!(cluster.node(old).quorum.leader(), None);
    assert_eq!(cluster.node(old).quorum.voters(), rest);
    for id in &rest {
        propose(&cluster.node(*id).store, topic(&format!("after-{id}")))
            .await
            .unwrap();
        assert_eq!(cluster.node(*id).quorum.voters(), rest, "node {id}");
    }
    // The removed node cannot commit: it names no leader to forward to.
    let refused = propose(&cluster.node(old).store, topic("removed"))
        .await
        .unwrap_err();
    assert!(
        matches!(refused, CommitError::Unavailable(_)),
        "{refused:?}"
    );
    cluster.stop_node(old).await;
    let refused = cluster.try_start_node(old).await.err().unwrap().to_string();
    assert_eq!(
        refused,
        format!(
            "node {old} was removed from the metadata quorum (its voters are now {rest:?}): a \
             removed node does not come back, even though --voters still lists it; add a \
             broker with a new node id and an empty data directory instead"
        )
    );
}

/// A voter is not removed when the voters left could not commit (only the leader answers
/// of two left: the change would stall every commit), and the last voter never is; the
/// removals that leave a working majority go through, down to one voter, which commits
/// alone.
#[tokio::test(start_paused = true)]
async fn removing_a_voter_is_refused_without_a_majority_left_and_for_the_last_voter() {
    let mut cluster = Cluster::start(3, production).await;
    let leader = cluster.leader(&[1, 2, 3]).await;
    let followers = others(&[1, 2, 3], leader);
    let (down, up) = (followers[0], followers[1]);
    cluster.stop_node(down).await;
    let mut remaining = vec![leader, down];
    remaining.sort_unstable();
    assert_eq!(
        cluster
            .node(up)
            .quorum
            .change_membership(remove_voter(up))
            .await,
        Err(MembershipError::Refused(MembershipRefusal::NoMajority {
            node: up,
            remaining,
            reached: vec![leader],
        }))
    );
    assert_eq!(cluster.node(leader).quorum.voters(), vec![1, 2, 3]);
    propose(&cluster.node(up).store, topic("unchanged"))
        .await
        .unwrap();
    // The stopped one can go: the two left answer. Then the other: the leader alone is a
    // majority of itself.
    for gone in [down, up] {
        assert_eq!(
            cluster
                .node(leader)
                .quorum
                .change_membership(remove_voter(gone))
                .await,
            Ok(MembershipOutcome::Changed),
            "removing {gone}"
        );
    }
    assert_eq!(cluster.node(leader).quorum.voters(), vec![leader]);
    assert_eq!(cluster.node(leader).quorum.leader(), Some(leader));
    propose(&cluster.node(leader).store, topic("alone"))
        .await
        .unwrap();
    assert_eq!(
        cluster
            .node(leader)
            .quorum
            .change_membership(remove_voter(leader))
            .await,
        Err(MembershipError::Refused(MembershipRefusal::LastVoter(
            leader
        )))
    );
    assert_eq!(
        topic_names(&cluster.node(leader).store.image()),
        vec!["alone", "unchanged"]
    );
}

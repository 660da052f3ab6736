//! Replication between brokers in one process: three brokers with their own data
//! directories, one shared metadata quorum ([`MemoryQuorum`]) and an in-memory network
//! ([`MemoryNetwork`]) whose links a test cuts and heals. Followers fetch with the real
//! Fetch requests through the real handlers; only sockets and the Raft engine are left
//! out. The clock is one [`ManualClock`], so "a follower lagged for longer than
//! `replica.lag.time.max.ms`" happens when the test says so.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use sluice_cluster::MemoryNetwork;
use sluice_protocol::batch::RecordBatchBuilder;
use sluice_protocol::clock::{Clock, ManualClock, SystemClock};
use sluice_protocol::kafka_protocol;
use sluice_protocol::model::LeaderEpoch;
use sluice_storage::{FaultHook, IoOp};
use tokio::sync::watch;

use crate::broker::{Broker, open_broker_with_metadata};
use crate::config::BrokerConfig;
use crate::fd_budget::FdBudget;
use crate::metadata::{
    CommitError, MemoryQuorum, MetadataImage, MetadataRecord, MetadataStore, PartitionRegistration,
};
use crate::partition::{Partition, ReadBound};
use crate::peer::PeerRequests;
use crate::replica_manager::{AppendOrigin, ReplicaError, RequiredAcks};
use crate::topic_admin::{NewTopic, create_topic};

struct TestCluster {
    net: Arc<MemoryNetwork>,
    nodes: Vec<Arc<Broker>>,
    clock: Arc<ManualClock>,
    _stop: watch::Sender<bool>,
    _dirs: Vec<tempfile::TempDir>,
}

impl TestCluster {
    /// `count` brokers (node ids 1..=count), replicating.
    async fn start(count: i32, adjust: impl Fn(&mut BrokerConfig)) -> Self {
        Self::start_with_faults(count, adjust, None).await
    }

    /// Like [`TestCluster::start`], every node's file operations first going to `faults`.
    async fn start_with_faults(
        count: i32,
        adjust: impl Fn(&mut BrokerConfig),
        faults: Option<FaultHook>,
    ) -> Self {
        let net = MemoryNetwork::new(7);
        let quorum = MemoryQuorum::new(1);
        let clock = Arc::new(ManualClock::new(SystemClock.now_ms()));
        let (stop, stop_rx) = watch::channel(false);
        // Every store joins before the first commit, so each sees every batch.
        let stores: Vec<_> = (1..=count)
            .map(|id| {
                let store = MetadataStore::new(MetadataImage::new(id));
                quorum.join(&store);
                store
            })
            .collect();
        let mut nodes = Vec::new();
        let mut dirs = Vec::new();
        for (id, store) in (1..=count).zip(stores) {
            let dir = tempfile::tempdir().unwrap();
            let mut config = BrokerConfig {
                http_listen: None,
                node_id: id,
                data_dir: dir.path().to_path_buf(),
                offsets_topic_partitions: 1,
                transaction_state_partitions: 1,
                replica_fetch_wait_max_ms: 50,
                replica_fetch_backoff_ms: 20,
                broker_heartbeat_interval_ms: 50,
                // Long enough that no test is disturbed by a fencing it did not cause.
                broker_session_timeout_ms: 30_000,
                ..BrokerConfig::default()
            };
            adjust(&mut config);
            std::fs::create_dir_all(config.data_dir.join("meta")).unwrap();
            let bound = config.listen;
            let (broker, _) = open_broker_with_metadata(
                config,
                store,
                bound,
                false,
                FdBudget::split(1024, 1024, None),
                clock.clone(),
                faults.clone(),
            )
            .await
            .unwrap();
            net.register(id, PeerRequests::new(broker.clone()));
            broker.start_cluster(Arc::new(net.transport(id)), stop_rx.clone());
            nodes.push(broker);
            dirs.push(dir);
        }
        let cluster = Self {
            net,
            nodes,
            clock,
            _stop: stop,
            _dirs: dirs,
        };
        eventually("the controller let every broker in", || {
            (1..=count).all(|id| !cluster.fenced(id))
        })
        .await;
        cluster
    }

    /// Whether the metadata says broker `id` is fenced.
    fn fenced(&self, id: i32) -> bool {
        self.node(1)
            .metadata
            .image()
            .broker(id)
            .is_none_or(|b| b.fenced)
    }

    fn node(&self, id: i32) -> &Arc<Broker> {
        &self.nodes[usize::try_from(id - 1).unwrap()]
    }

    /// Creates `name` with one partition on every node, led by node 1.
    async fn create_topic(&self, name: &str, min_insync: &str) {
        self.create_topic_with_partitions(name, 1, min_insync).await;
    }

    /// Creates `name` with `partitions` partitions, each with a replica on every node;
    /// partition p is led by node p + 1 (striped placement).
    async fn create_topic_with_partitions(&self, name: &str, partitions: i32, min_insync: &str) {
        let topic = NewTopic {
            name: name.into(),
            partitions,
            replication_factor: i16::try_from(self.nodes.len()).unwrap(),
            assignments: None,
            configs: [("min.insync.replicas".to_string(), min_insync.to_string())].into(),
            internal: false,
        };
        create_topic(self.node(1), topic, false).await.unwrap();
        assert_eq!(self.registration(name).leader, 1);
    }

    fn registration(&self, topic: &str) -> PartitionRegistration {
        self.registration_of(topic, 0)
    }

    fn registration_of(&self, topic: &str, index: i32) -> PartitionRegistration {
        let image = self.node(1).metadata.image();
        image
            .topic(topic)
            .unwrap()
            .partition(index)
            .unwrap()
            .clone()
    }

    fn partition(&self, node: i32, topic: &str) -> Arc<Partition> {
        self.partition_of(node, topic, 0)
    }

    fn partition_of(&self, node: i32, topic: &str, index: i32) -> Arc<Partition> {
        let image = self.node(node).metadata.image();
        let id = image.topic(topic).unwrap().id;
        self.node(node).replicas.logs().get(id, index).unwrap()
    }

    /// Appends `values` as one batch on node `node`, which must lead the partition.
    async fn produce(
        &self,
        node: i32,
        topic: &str,
        acks: RequiredAcks,
        values: &[&str],
    ) -> Result<i64, ReplicaError> {
        self.produce_to(node, topic, 0, acks, values).await
    }

    /// Appends `values` as one batch to partition `index` on node `node`, which must lead it.
    async fn produce_to(
        &self,
        node: i32,
        topic: &str,
        index: i32,
        acks: RequiredAcks,
        values: &[&str],
    ) -> Result<i64, ReplicaError> {
        let partition = self.partition_of(node, topic, index);
        let mut batch = RecordBatchBuilder::new();
        for (i, value) in values.iter().enumerate() {
            batch.push(i64::try_from(i).unwrap(), None, Some(value.as_bytes()), &[]);
        }
        let batch = batch.build();
        let appended = self.node(node).replicas.append_records(
            &partition,
            AppendOrigin::Client,
            acks,
            |_| Ok::<_, ReplicaError>(Bytes::from(batch)),
        )?;
        appended.acknowledged(Some(Duration::from_secs(10))).await?;
        Ok(appended.info().last_offset + 1)
    }

    /// The whole log of the partition on `node`, as stored.
    fn log_bytes(&self, node: i32, topic: &str) -> Bytes {
        self.log_bytes_of(node, topic, 0)
    }

    fn log_bytes_of(&self, node: i32, topic: &str, index: i32) -> Bytes {
        self.partition_of(node, topic, index)
            .read(0, 64 << 20, ReadBound::LogEnd)
            .unwrap()
            .records
    }

    /// Whether broker `id` is in the ISR of any partition, or leads any.
    fn holds_anything(&self, id: i32) -> bool {
        let image = self.node(1).metadata.image();
        image.topics().any(|t| {
            t.partitions
                .iter()
                .any(|p| p.leader == id || p.isr.contains(&id))
        })
    }

    /// Changes the partition's leadership as a controller would: `leader` at the next
    /// epoch, with `isr`.
    async fn elect(&self, topic: &str, leader: i32, isr: Vec<i32>) {
        let current = self.registration(topic);
        let topic_id = self.node(1).metadata.image().topic(topic).unwrap().id;
        let record = MetadataRecord::PartitionChanged {
            topic_id,
            partition: 0,
            leader,
            leader_epoch: current.leader_epoch.0 + 1,
            isr,
            replicas: None,
            adding_replicas: None,
            removing_replicas: None,
            expected_partition_epoch: Some(current.partition_epoch),
        };
        self.node(leader)
            .metadata
            .propose(|_| Ok::<_, CommitError>((vec![record], ())))
            .await
            .unwrap();
    }
}

/// Waits (up to 10 s) until `condition` holds.
async fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !condition() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acks_all_answers_once_every_in_sync_replica_has_the_records_on_disk() {
    // Slow disks: a sync takes 30 ms, so a follower that reported an offset before its
    // sync finished would let the leader acknowledge records that are not on its disk.
    let slow_sync: FaultHook = Arc::new(|op, _path: &std::path::Path| {
        if op == IoOp::Sync {
            std::thread::sleep(Duration::from_millis(30));
        }
        Ok(())
    });
    let cluster = TestCluster::start_with_faults(3, |_| {}, Some(slow_sync)).await;
    cluster.create_topic("t", "2").await;
    let registration = cluster.registration("t");
    assert_eq!(registration.replicas.len(), 3);
    assert_eq!(registration.isr.len(), 3);
    for node in [2, 3] {
        assert!(!cluster.partition(node, "t").is_leader());
    }
    let mut end = 0;
    for round in 0..5 {
        let values = [format!("a{round}"), format!("b{round}")];
        let values: Vec<&str> = values.iter().map(String::as_str).collect();
        end = cluster
            .produce(1, "t", RequiredAcks::All, &values)
            .await
            .unwrap();
        // Acknowledged: on disk on every in-sync replica, not only in its page cache.
        for node in [1, 2, 3] {
            let partition = cluster.partition(node, "t");
            assert!(
                partition.durability().durable_end >= end,
                "node {node} has {:?} of {end}",
                partition.durability()
            );
        }
    }
    assert_eq!(end, 10);
    assert_eq!(cluster.partition(1, "t").offsets().high_watermark, 10);
    let leader_log = cluster.log_bytes(1, "t");
    eventually(
        "the followers hold the leader's log and its high watermark",
        || {
            [2, 3].iter().all(|&node| {
                cluster.log_bytes(node, "t") == leader_log
                    && cluster.partition(node, "t").offsets().high_watermark == 10
            })
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lagging_followers_leave_the_isr_and_acks_all_needs_min_insync_replicas() {
    let cluster = TestCluster::start(3, |c| c.replica_lag_time_max_ms = 1_000).await;
    cluster.create_topic("t", "2").await;
    cluster
        .produce(1, "t", RequiredAcks::All, &["before"])
        .await
        .unwrap();
    // The leader is cut off from both followers: they stop fetching.
    cluster.net.isolate(1);
    let end = cluster
        .produce(1, "t", RequiredAcks::Leader, &["cut off"])
        .await
        .unwrap();
    assert_eq!(end, 2);
    cluster.clock.advance(1_500);
    eventually("the followers left the ISR", || {
        cluster.registration("t").isr == vec![1]
    })
    .await;
    let refused = cluster
        .produce(1, "t", RequiredAcks::All, &["refused"])
        .await
        .unwrap_err();
    assert_eq!(refused.code, ResponseError::NotEnoughReplicas);
    assert_eq!(
        cluster.partition(1, "t").offsets().log_end_offset,
        2,
        "nothing written"
    );
    // acks=1 still works, and the high watermark stays where the ISR has it.
    cluster.net.heal();
    eventually("the followers caught up and rejoined the ISR", || {
        cluster.registration("t").isr == vec![1, 2, 3]
    })
    .await;
    let end = cluster
        .produce(1, "t", RequiredAcks::All, &["after"])
        .await
        .unwrap();
    assert_eq!(end, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deposed_leader_truncates_what_it_alone_had_and_follows_the_new_one() {
    let cluster = TestCluster::start(3, |_| {}).await;
    cluster.create_topic("t", "1").await;
    cluster
        .produce(1, "t", RequiredAcks::All, &["one", "two"])
        .await
        .unwrap();
    // Node 1 writes records no follower gets, then loses its leadership.
    cluster.net.isolate(1);
    for value in ["lost-1", "lost-2", "lost-3"] {
        cluster
            .produce(1, "t", RequiredAcks::Leader, &[value])
            .await
            .unwrap();
    }
    assert_eq!(cluster.partition(1, "t").offsets().log_end_offset, 5);
    cluster.elect("t", 2, vec![2, 3]).await;
    assert_eq!(cluster.partition(2, "t").leader_epoch(), LeaderEpoch(1));
    let end = cluster
        .produce(2, "t", RequiredAcks::All, &["three", "four"])
        .await
        .unwrap();
    assert_eq!(end, 4, "the new leader continues after what was committed");
    // Node 1 comes back: it finds where its log diverged, cuts it there and copies the
    // new leader's log.
    cluster.net.heal();
    let leader_log = cluster.log_bytes(2, "t");
    eventually("the old leader holds the new leader's log", || {
        cluster.log_bytes(1, "t") == leader_log && cluster.log_bytes(3, "t") == leader_log
    })
    .await;
    let epochs = |node| cluster.partition(node, "t").end_offset_for_epoch(0);
    assert_eq!(epochs(1), (0, 2));
    assert_eq!(epochs(2), (0, 2));
    // A client that consumed epoch 0 up to offset 5 on the old leader learns from the new
    // one that epoch 0 ends at 2: its records past 2 were truncated.
    assert_eq!(
        cluster.offset_for_leader_epoch(2, "t", 1, 0).await,
        (0, 0, 2)
    );
    assert_eq!(
        cluster.offset_for_leader_epoch(2, "t", 1, 1).await,
        (0, 1, 4)
    );
    let fenced = ResponseError::FencedLeaderEpoch.code();
    assert_eq!(
        cluster.offset_for_leader_epoch(2, "t", 0, 0).await,
        (fenced, -1, -1)
    );
    let not_leader = ResponseError::NotLeaderOrFollower.code();
    assert_eq!(
        cluster.offset_for_leader_epoch(1, "t", 1, 0).await,
        (not_leader, -1, -1)
    );
    eventually("the old leader rejoined the ISR", || {
        cluster.registration("t").isr == vec![1, 2, 3]
    })
    .await;
    // A second leadership change, back to node 1 while node 2 is cut off with records
    // of its own: node 2 truncates in turn.
    cluster.net.isolate(2);
    cluster
        .produce(2, "t", RequiredAcks::Leader, &["lost-again"])
        .await
        .unwrap();
    cluster.elect("t", 1, vec![1, 3]).await;
    let end = cluster
        .produce(1, "t", RequiredAcks::All, &["five"])
        .await
        .unwrap();
    assert_eq!(end, 5);
    cluster.net.heal();
    let leader_log = cluster.log_bytes(1, "t");
    eventually("every replica holds node 1's log", || {
        [2, 3]
            .iter()
            .all(|&node| cluster.log_bytes(node, "t") == leader_log)
    })
    .await;
    assert_eq!(cluster.partition(2, "t").offsets().log_end_offset, 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_broker_is_fenced_its_leaderships_move_and_it_comes_back() {
    let cluster = TestCluster::start(3, |c| {
        c.broker_session_timeout_ms = 1_000;
        c.leader_imbalance_check_interval_seconds = 1;
    })
    .await;
    cluster.create_topic_with_partitions("t", 3, "2").await;
    assert_eq!(cluster.registration_of("t", 1).leader, 2);
    assert_eq!(cluster.registration_of("t", 1).replicas, vec![2, 3, 1]);
    let end = cluster
        .produce_to(2, "t", 1, RequiredAcks::All, &["a", "b"])
        .await
        .unwrap();
    assert_eq!(end, 2);
    // Node 2 stops answering: the controller fences it after the session timeout, and
    // the next in-sync replica in assignment order leads its partition.
    cluster.net.isolate(2);
    eventually("node 2 is fenced and leads nothing", || {
        cluster.fenced(2) && !cluster.holds_anything(2)
    })
    .await;
    let moved = cluster.registration_of("t", 1);
    assert_eq!((moved.leader, moved.isr.clone()), (3, vec![3, 1]));
    assert_eq!(moved.leader_epoch, LeaderEpoch(1));
    // Node 3 now leads partitions 1 and 2, each with 2 of 3 replicas in sync.
    let metrics = crate::http::render(cluster.node(3)).await;
    for line in [
        "sluice_under_replicated_partitions 2\n",
        "sluice_under_min_isr_partitions 0\n",
        "sluice_offline_partitions 0\n",
        "sluice_metadata_quorum_leader 1\n",
    ] {
        assert!(metrics.contains(line), "{line} missing from:\n{metrics}");
    }
    // What node 2 acknowledged is on the new leader, which continues after it.
    let end = cluster
        .produce_to(3, "t", 1, RequiredAcks::All, &["c"])
        .await
        .unwrap();
    assert_eq!(end, 3);
    // Node 2 returns: it is let in again, catches up, rejoins the ISR, and leads its
    // preferred partition again.
    cluster.net.heal();
    eventually(
        "node 2 leads partition 1 again with everything in sync",
        || {
            let p = cluster.registration_of("t", 1);
            p.leader == 2 && p.isr.len() == 3
        },
    )
    .await;
    assert!(!cluster.fenced(2));
    let leader_log = cluster.log_bytes_of(2, "t", 1);
    assert_eq!(leader_log, cluster.log_bytes_of(3, "t", 1));
    assert_eq!(cluster.partition_of(2, "t", 1).offsets().log_end_offset, 3);
    assert_eq!(cluster.registration_of("t", 1).leader_epoch, LeaderEpoch(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_whose_leadership_moves_to_a_leader_already_fetched_from_is_fetched_at_once() {
    // A leader holds a fetch up to a minute while nothing new comes: only a fetch that
    // takes the moved partition in at once lets the acks=all write below through within
    // its ten seconds.
    let cluster = TestCluster::start(3, |c| c.replica_fetch_wait_max_ms = 60_000).await;
    cluster.create_topic_with_partitions("t", 3, "2").await;
    for index in 0..3 {
        let leader = index + 1;
        cluster
            .produce_to(leader, "t", index, RequiredAcks::All, &["before"])
            .await
            .unwrap();
    }
    // Node 3 now waits in a fetch from node 2 naming partition 1 only. Node 1's
    // controlled shutdown hands partition 0 to node 2.
    assert_eq!(
        cluster
            .node(1)
            .lifecycle
            .shut_down(Duration::from_secs(10), Duration::from_secs(10))
            .await,
        crate::controller::lifecycle::ShutdownOutcome::Released
    );
    let moved = cluster.registration_of("t", 0);
    assert_eq!((moved.leader, moved.isr.clone()), (2, vec![2, 3]));
    eventually("node 2 leads partition 0", || {
        cluster
            .partition_of(2, "t", 0)
            .follower_fetch_position()
            .is_none()
    })
    .await;
    let end = cluster
        .produce_to(2, "t", 0, RequiredAcks::All, &["after"])
        .await
        .expect("node 3 fetched partition 0 from its new leader");
    assert_eq!(end, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn controlled_shutdown_moves_leaderships_away_before_the_broker_stops() {
    let cluster = TestCluster::start(3, |_| {}).await;
    cluster.create_topic_with_partitions("t", 3, "2").await;
    cluster
        .produce_to(2, "t", 1, RequiredAcks::All, &["before"])
        .await
        .unwrap();
    assert_eq!(
        cluster
            .node(2)
            .lifecycle
            .shut_down(Duration::from_secs(10), Duration::from_secs(10))
            .await,
        crate::controller::lifecycle::ShutdownOutcome::Released,
        "the controller let node 2 stop"
    );
    assert!(
        !cluster.holds_anything(2),
        "node 2 leads nothing and is in no ISR"
    );
    assert!(
        !cluster.fenced(2),
        "node 2 stays in Metadata's broker list while it still serves"
    );
    assert!(
        cluster
            .node(2)
            .lifecycle
            .fence_for_shutdown(Duration::from_secs(10))
            .await,
        "the controller fenced node 2 when it asked"
    );
    assert!(cluster.fenced(2));
    let moved = cluster.registration_of("t", 1);
    assert_eq!((moved.leader, moved.isr.clone()), (3, vec![3, 1]));
    let end = cluster
        .produce_to(3, "t", 1, RequiredAcks::All, &["after"])
        .await
        .unwrap();
    assert_eq!(end, 2);
}

impl TestCluster {
    /// Sends `request` at `version` to node `node`'s handlers as a client would, checks that
    /// the response encodes at that version, and returns it.
    async fn ask(
        &self,
        node: i32,
        version: i16,
        request: kafka_protocol::messages::RequestKind,
    ) -> kafka_protocol::messages::ResponseKind {
        let api = crate::router::request_api(&request).unwrap();
        let ctx = crate::test_context::BrokerTestContext::context(api, version);
        let response = match crate::router::dispatch(self.node(node), &ctx, request).await {
            crate::request::Reply::Now(r) => r,
            crate::request::Reply::Later(task) => task.await.unwrap(),
            _ => panic!("no response"),
        };
        sluice_protocol::codec::encode_response(1, api, version, &response)
            .unwrap_or_else(|e| panic!("{api:?} v{version} does not encode: {e}"));
        response
    }
}

impl TestCluster {
    /// OffsetForLeaderEpoch v4 for partition 0 of `topic` on node `node`, knowing leader
    /// epoch `current`: (error code, epoch, end offset).
    async fn offset_for_leader_epoch(
        &self,
        node: i32,
        topic: &str,
        current: i32,
        epoch: i32,
    ) -> (i16, i32, i64) {
        use kafka_protocol::messages::offset_for_leader_epoch_request::{
            OffsetForLeaderPartition, OffsetForLeaderTopic,
        };
        use kafka_protocol::messages::{
            OffsetForLeaderEpochRequest, RequestKind, ResponseKind, TopicName,
        };
        let request = OffsetForLeaderEpochRequest::default().with_topics(vec![
            OffsetForLeaderTopic::default()
                .with_topic(TopicName(kafka_protocol::protocol::StrBytes::from_string(
                    topic.to_string(),
                )))
                .with_partitions(vec![
                    OffsetForLeaderPartition::default()
                        .with_partition(0)
                        .with_current_leader_epoch(current)
                        .with_leader_epoch(epoch),
                ]),
        ]);
        let ResponseKind::OffsetForLeaderEpoch(response) = self
            .ask(node, 4, RequestKind::OffsetForLeaderEpoch(request))
            .await
        else {
            panic!("not an OffsetForLeaderEpoch response");
        };
        let p = &response.topics[0].partitions[0];
        (p.error_code, p.leader_epoch, p.end_offset)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_see_fenced_brokers_offline_replicas_and_leaderless_partitions() {
    use kafka_protocol::messages::{
        DescribeClusterRequest, MetadataRequest, RequestKind, ResponseKind,
    };
    let cluster = TestCluster::start(3, |c| c.broker_session_timeout_ms = 1_000).await;
    cluster.create_topic_with_partitions("t", 3, "1").await;
    // A topic whose only replica is on node 2.
    let single = NewTopic {
        name: "on-2".into(),
        partitions: 2,
        replication_factor: 1,
        assignments: None,
        configs: Default::default(),
        internal: false,
    };
    create_topic(cluster.node(1), single, false).await.unwrap();
    let image = cluster.node(1).metadata.image();
    let on_2 = image.topic("on-2").unwrap();
    assert_eq!(on_2.partition(1).unwrap().replicas, vec![2]);
    cluster.net.isolate(2);
    eventually("node 2 is fenced", || cluster.fenced(2)).await;
    // Every version encodes what a cluster with a fenced broker looks like.
    for version in 0..=12 {
        let topics = (version == 0).then(Vec::new);
        let request = MetadataRequest::default().with_topics(topics);
        cluster
            .ask(1, version, RequestKind::Metadata(request))
            .await;
    }
    let ResponseKind::Metadata(metadata) = cluster
        .ask(
            3,
            12,
            RequestKind::Metadata(MetadataRequest::default().with_topics(None)),
        )
        .await
    else {
        panic!("not a Metadata response");
    };
    let brokers: Vec<i32> = metadata.brokers.iter().map(|b| b.node_id.0).collect();
    assert_eq!(brokers, vec![1, 3], "a fenced broker is not listed");
    let t = metadata
        .topics
        .iter()
        .find(|t| t.name.as_ref().map(|n| n.as_str()) == Some("t"))
        .unwrap();
    let p1 = &t.partitions[1];
    assert_eq!(p1.leader_id.0, 3);
    assert_eq!(p1.leader_epoch, 1);
    assert_eq!(
        p1.offline_replicas.iter().map(|b| b.0).collect::<Vec<_>>(),
        vec![2]
    );
    let on_2 = metadata
        .topics
        .iter()
        .find(|t| t.name.as_ref().map(|n| n.as_str()) == Some("on-2"))
        .unwrap();
    let leaderless = on_2
        .partitions
        .iter()
        .find(|p| p.partition_index == 1)
        .unwrap();
    assert_eq!(leaderless.leader_id.0, -1);
    assert_eq!(
        leaderless.error_code,
        ResponseError::LeaderNotAvailable.code()
    );
    let ResponseKind::DescribeCluster(described) = cluster
        .ask(
            1,
            2,
            RequestKind::DescribeCluster(
                DescribeClusterRequest::default()
                    .with_endpoint_type(1)
                    .with_include_fenced_brokers(true),
            ),
        )
        .await
    else {
        panic!("not a DescribeCluster response");
    };
    let fenced: Vec<(i32, bool)> = described
        .brokers
        .iter()
        .map(|b| (b.broker_id.0, b.is_fenced))
        .collect();
    assert_eq!(fenced, vec![(1, false), (2, true), (3, false)]);
    // Once node 2 is back and let in again, it leads its own partitions again.
    cluster.net.heal();
    eventually("node 2 leads its own partitions again", || {
        !cluster.fenced(2)
            && cluster
                .node(1)
                .metadata
                .image()
                .topic("on-2")
                .unwrap()
                .partition(1)
                .unwrap()
                .leader
                == 2
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topics_get_replicas_on_distinct_brokers_by_default_or_as_assigned() {
    let cluster = TestCluster::start(3, |_| {}).await;
    let new = |name: &str, replication_factor, assignments: Option<Vec<Vec<i32>>>| NewTopic {
        name: name.into(),
        partitions: if assignments.is_some() { -1 } else { 3 },
        replication_factor,
        assignments,
        configs: Default::default(),
        internal: false,
    };
    let node = cluster.node(2);
    let topic = create_topic(node, new("default", -1, None), false)
        .await
        .unwrap();
    let replicas: Vec<Vec<i32>> = topic
        .partitions
        .iter()
        .map(|p| p.replicas.clone())
        .collect();
    assert_eq!(replicas, vec![vec![1, 2, 3], vec![2, 3, 1], vec![3, 1, 2]]);
    let chosen = vec![vec![2, 3], vec![3, 1]];
    let topic = create_topic(node, new("chosen", -1, Some(chosen.clone())), false)
        .await
        .unwrap();
    let replicas: Vec<Vec<i32>> = topic
        .partitions
        .iter()
        .map(|p| p.replicas.clone())
        .collect();
    assert_eq!(replicas, chosen);
    assert_eq!(topic.partition(1).unwrap().leader, 3);
    for (name, assignments) in [
        ("twice", vec![vec![2, 2]]),
        ("unknown", vec![vec![9, 1]]),
        ("uneven", vec![vec![1, 2], vec![3]]),
    ] {
        let refused = create_topic(node, new(name, -1, Some(assignments)), false)
            .await
            .unwrap_err();
        assert_eq!(
            refused.code,
            ResponseError::InvalidReplicaAssignment,
            "{name}"
        );
    }
    let refused = create_topic(node, new("too-many", 4, None), false)
        .await
        .unwrap_err();
    assert_eq!(refused.code, ResponseError::InvalidReplicationFactor);
    // The coordinators' topic: three replicas, two of which acks=all needs.
    let offsets = crate::topic_admin::ensure_internal_topic(node, "__consumer_offsets")
        .await
        .unwrap();
    assert_eq!(offsets.partition(0).unwrap().replicas.len(), 3);
    assert_eq!(
        offsets
            .configs
            .get("min.insync.replicas")
            .map(String::as_str),
        Some("2")
    );
}

/// Kafka request builders for the transaction test.
mod txn_requests {
    use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
    use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
    use kafka_protocol::messages::*;
    use kafka_protocol::protocol::StrBytes;
    use sluice_protocol::batch::RecordBatchBuilder;
    use sluice_protocol::kafka_protocol;

    pub fn tid() -> TransactionalId {
        TransactionalId(StrBytes::from_static_str("tx"))
    }

    pub fn topic() -> TopicName {
        TopicName(StrBytes::from_static_str("t"))
    }

    pub fn find_coordinator() -> RequestKind {
        RequestKind::FindCoordinator(
            FindCoordinatorRequest::default()
                .with_key(StrBytes::from_static_str("tx"))
                .with_key_type(1),
        )
    }

    pub fn init_producer_id() -> RequestKind {
        RequestKind::InitProducerId(
            InitProducerIdRequest::default()
                .with_transactional_id(Some(tid()))
                .with_transaction_timeout_ms(60_000)
                .with_producer_id(ProducerId(-1))
                .with_producer_epoch(-1),
        )
    }

    pub fn add_partitions(producer_id: i64, epoch: i16, partitions: Vec<i32>) -> RequestKind {
        RequestKind::AddPartitionsToTxn(
            AddPartitionsToTxnRequest::default()
                .with_v3_and_below_transactional_id(tid())
                .with_v3_and_below_producer_id(ProducerId(producer_id))
                .with_v3_and_below_producer_epoch(epoch)
                .with_v3_and_below_topics(vec![
                    AddPartitionsToTxnTopic::default()
                        .with_name(topic())
                        .with_partitions(partitions),
                ]),
        )
    }

    pub fn produce(producer_id: i64, epoch: i16, partition: i32, sequence: i32) -> RequestKind {
        let mut batch = RecordBatchBuilder::new()
            .producer(producer_id, epoch, sequence)
            .transactional(true);
        batch.push(0, Some(b"key"), Some(b"in a transaction"), &[]);
        RequestKind::Produce(
            ProduceRequest::default()
                .with_transactional_id(Some(tid()))
                .with_acks(-1)
                .with_timeout_ms(10_000)
                .with_topic_data(vec![
                    TopicProduceData::default()
                        .with_name(topic())
                        .with_partition_data(vec![
                            PartitionProduceData::default()
                                .with_index(partition)
                                .with_records(Some(batch.build().into())),
                        ]),
                ]),
        )
    }

    pub fn end_txn(producer_id: i64, epoch: i16) -> RequestKind {
        RequestKind::EndTxn(
            EndTxnRequest::default()
                .with_transactional_id(tid())
                .with_producer_id(ProducerId(producer_id))
                .with_producer_epoch(epoch)
                .with_committed(true),
        )
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_spans_partitions_led_by_other_nodes() {
    use kafka_protocol::messages::ResponseKind;
    let cluster = TestCluster::start(3, |_| {}).await;
    cluster.create_topic_with_partitions("t", 3, "2").await;
    let ResponseKind::FindCoordinator(found) =
        cluster.ask(1, 3, txn_requests::find_coordinator()).await
    else {
        panic!("not a FindCoordinator response");
    };
    assert_eq!(found.error_code, 0, "{found:?}");
    let coordinator = found.node_id.0;
    let ResponseKind::InitProducerId(init) = cluster
        .ask(coordinator, 4, txn_requests::init_producer_id())
        .await
    else {
        panic!("not an InitProducerId response");
    };
    assert_eq!(init.error_code, 0, "{init:?}");
    let (pid, epoch) = (init.producer_id.0, init.producer_epoch);
    let ResponseKind::AddPartitionsToTxn(added) = cluster
        .ask(
            coordinator,
            3,
            txn_requests::add_partitions(pid, epoch, vec![0, 1, 2]),
        )
        .await
    else {
        panic!("not an AddPartitionsToTxn response");
    };
    let codes: Vec<i16> = added
        .results_by_topic_v3_and_below
        .iter()
        .flat_map(|t| {
            t.results_by_partition
                .iter()
                .map(|p| p.partition_error_code)
        })
        .collect();
    assert_eq!(codes, vec![0, 0, 0]);
    // Each partition's leader verifies the write with the coordinator, wherever it is.
    for partition in 0..3 {
        let leader = partition + 1;
        let ResponseKind::Produce(produced) = cluster
            .ask(leader, 9, txn_requests::produce(pid, epoch, partition, 0))
            .await
        else {
            panic!("not a Produce response");
        };
        let p = &produced.responses[0].partition_responses[0];
        assert_eq!(
            (p.error_code, p.base_offset),
            (0, 0),
            "partition {partition}"
        );
    }
    // A partition the transaction does not hold refuses a transactional write on its
    // leader, coordinator here or not: nothing slips into the transaction.
    let other = (1..=3).find(|&n| n != coordinator).unwrap();
    cluster.create_topic_with_partitions("u", 3, "1").await;
    let late = {
        let mut r = txn_requests::produce(pid, epoch, other - 1, 0);
        if let kafka_protocol::messages::RequestKind::Produce(p) = &mut r {
            p.topic_data[0].name = kafka_protocol::messages::TopicName(
                kafka_protocol::protocol::StrBytes::from_static_str("u"),
            );
        }
        r
    };
    let ResponseKind::Produce(refused) = cluster.ask(other, 9, late).await else {
        panic!("not a Produce response");
    };
    assert_eq!(
        refused.responses[0].partition_responses[0].error_code,
        ResponseError::InvalidTxnState.code()
    );
    // Committing writes the markers into all three partitions, two of them through
    // their leaders on other nodes.
    let ResponseKind::EndTxn(ended) = cluster
        .ask(coordinator, 3, txn_requests::end_txn(pid, epoch))
        .await
    else {
        panic!("not an EndTxn response");
    };
    assert_eq!(ended.error_code, 0, "{ended:?}");
    eventually(
        "every partition holds its record and the COMMIT marker",
        || {
            (0..3).all(|partition| {
                let offsets = cluster
                    .partition_of(partition + 1, "t", partition)
                    .offsets();
                offsets.log_end_offset == 2 && offsets.last_stable_offset == 2
            })
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn committed_offsets_move_with_the_coordinator_partition_s_leadership() {
    use kafka_protocol::messages::offset_commit_request::{
        OffsetCommitRequestPartition, OffsetCommitRequestTopic,
    };
    use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
    use kafka_protocol::messages::{
        FindCoordinatorRequest, GroupId, OffsetCommitRequest, OffsetFetchRequest, RequestKind,
        ResponseKind, TopicName,
    };
    use kafka_protocol::protocol::StrBytes;
    let cluster = TestCluster::start(3, |_| {}).await;
    cluster.create_topic("t", "2").await;
    let find = || {
        RequestKind::FindCoordinator(
            FindCoordinatorRequest::default().with_key(StrBytes::from_static_str("g")),
        )
    };
    let coordinator_of = |response: ResponseKind| match response {
        ResponseKind::FindCoordinator(f) => (f.error_code, f.node_id.0),
        other => panic!("not a FindCoordinator response: {other:?}"),
    };
    let (code, first) = coordinator_of(cluster.ask(2, 3, find()).await);
    assert_eq!((code, first), (0, 1), "node 1 leads __consumer_offsets-0");
    let commit = RequestKind::OffsetCommit(
        OffsetCommitRequest::default()
            .with_group_id(GroupId(StrBytes::from_static_str("g")))
            .with_generation_id_or_member_epoch(-1)
            .with_topics(vec![
                OffsetCommitRequestTopic::default()
                    .with_name(TopicName(StrBytes::from_static_str("t")))
                    .with_partitions(vec![
                        OffsetCommitRequestPartition::default()
                            .with_partition_index(0)
                            .with_committed_offset(42),
                    ]),
            ]),
    );
    let ResponseKind::OffsetCommit(committed) = cluster.ask(1, 8, commit).await else {
        panic!("not an OffsetCommit response");
    };
    assert_eq!(committed.topics[0].partitions[0].error_code, 0);
    // Node 2 takes over the coordinator partition, as after node 1's failure.
    cluster.elect("__consumer_offsets", 2, vec![2, 3]).await;
    let (code, moved) = coordinator_of(cluster.ask(3, 3, find()).await);
    assert_eq!((code, moved), (0, 2));
    let fetch = || {
        RequestKind::OffsetFetch(
            OffsetFetchRequest::default()
                .with_group_id(GroupId(StrBytes::from_static_str("g")))
                .with_topics(Some(vec![
                    OffsetFetchRequestTopic::default()
                        .with_name(TopicName(StrBytes::from_static_str("t")))
                        .with_partition_indexes(vec![0]),
                ])),
        )
    };
    let fetched = |response: ResponseKind| match response {
        ResponseKind::OffsetFetch(f) => (
            f.error_code,
            f.topics
                .first()
                .map_or(-2, |t| t.partitions[0].committed_offset),
        ),
        other => panic!("not an OffsetFetch response: {other:?}"),
    };
    let (code, _) = fetched(cluster.ask(1, 7, fetch()).await);
    assert_eq!(
        code,
        ResponseError::NotCoordinator.code(),
        "node 1 gave it up"
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (code, offset) = fetched(cluster.ask(2, 7, fetch()).await);
        if code == ResponseError::CoordinatorLoadInProgress.code() {
            assert!(tokio::time::Instant::now() < deadline, "still loading");
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        }
        assert_eq!(
            (code, offset),
            (0, 42),
            "the new coordinator has the committed offset"
        );
        break;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn elect_leaders_moves_leadership_back_to_the_preferred_replica() {
    use kafka_protocol::messages::elect_leaders_request::TopicPartitions;
    use kafka_protocol::messages::{ElectLeadersRequest, RequestKind, ResponseKind, TopicName};
    use kafka_protocol::protocol::StrBytes;
    let cluster = TestCluster::start(3, |c| {
        c.broker_session_timeout_ms = 1_000;
        c.auto_leader_rebalance_enable = false;
    })
    .await;
    cluster.create_topic_with_partitions("t", 3, "1").await;
    cluster.net.isolate(2);
    eventually("node 2 is fenced", || cluster.fenced(2)).await;
    cluster.net.heal();
    eventually("node 2 is back in every ISR", || {
        !cluster.fenced(2) && (0..3).all(|p| cluster.registration_of("t", p).isr.len() == 3)
    })
    .await;
    assert_eq!(
        cluster.registration_of("t", 1).leader,
        3,
        "no automatic rebalance"
    );
    let elect = |election_type: i8, partitions: Vec<i32>| {
        RequestKind::ElectLeaders(
            ElectLeadersRequest::default()
                .with_election_type(election_type)
                .with_timeout_ms(10_000)
                .with_topic_partitions(Some(vec![
                    TopicPartitions::default()
                        .with_topic(TopicName(StrBytes::from_static_str("t")))
                        .with_partitions(partitions),
                ])),
        )
    };
    let codes = |response: ResponseKind| match response {
        ResponseKind::ElectLeaders(r) => r.replica_election_results[0]
            .partition_result
            .iter()
            .map(|p| (p.partition_id, p.error_code))
            .collect::<Vec<_>>(),
        other => panic!("not an ElectLeaders response: {other:?}"),
    };
    let not_needed = ResponseError::ElectionNotNeeded.code();
    let unknown = ResponseError::UnknownTopicOrPartition.code();
    assert_eq!(
        codes(cluster.ask(3, 2, elect(0, vec![0, 1, 9])).await),
        vec![(0, not_needed), (1, 0), (9, unknown)]
    );
    assert_eq!(cluster.registration_of("t", 1).leader, 2);
    assert_eq!(cluster.registration_of("t", 1).leader_epoch, LeaderEpoch(2));
    // Unclean election is for partitions without a leader only.
    assert_eq!(
        codes(cluster.ask(1, 2, elect(1, vec![1])).await),
        vec![(1, not_needed)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn describe_topic_partitions_pages_through_partitions_with_a_cursor() {
    use kafka_protocol::messages::describe_topic_partitions_request::{Cursor, TopicRequest};
    use kafka_protocol::messages::{
        DescribeTopicPartitionsRequest, RequestKind, ResponseKind, TopicName,
    };
    use kafka_protocol::protocol::StrBytes;
    let cluster = TestCluster::start(3, |_| {}).await;
    cluster.create_topic_with_partitions("a", 3, "1").await;
    cluster.create_topic_with_partitions("b", 2, "1").await;
    let name = |n: &str| TopicName(StrBytes::from_string(n.to_string()));
    let page = |cursor: Option<(&str, i32)>| {
        RequestKind::DescribeTopicPartitions(
            DescribeTopicPartitionsRequest::default()
                .with_topics(
                    ["b", "a", "missing"]
                        .map(|n| TopicRequest::default().with_name(name(n)))
                        .to_vec(),
                )
                .with_response_partition_limit(2)
                .with_cursor(cursor.map(|(t, p)| {
                    Cursor::default()
                        .with_topic_name(name(t))
                        .with_partition_index(p)
                })),
        )
    };
    let summary = |response: ResponseKind| match response {
        ResponseKind::DescribeTopicPartitions(r) => (
            r.topics
                .iter()
                .map(|t| {
                    let partitions: Vec<(i32, i32, usize)> = t
                        .partitions
                        .iter()
                        .map(|p| (p.partition_index, p.leader_id.0, p.isr_nodes.len()))
                        .collect();
                    (
                        t.name.as_ref().unwrap().to_string(),
                        t.error_code,
                        partitions,
                    )
                })
                .collect::<Vec<_>>(),
            r.next_cursor
                .map(|c| (c.topic_name.to_string(), c.partition_index)),
        ),
        other => panic!("not a DescribeTopicPartitions response: {other:?}"),
    };
    let (topics, cursor) = summary(cluster.ask(2, 0, page(None)).await);
    assert_eq!(
        topics,
        vec![("a".to_string(), 0, vec![(0, 1, 3), (1, 2, 3)])]
    );
    assert_eq!(cursor, Some(("a".to_string(), 2)));
    let (topics, cursor) = summary(cluster.ask(2, 0, page(Some(("a", 2)))).await);
    assert_eq!(
        topics,
        vec![
            ("a".to_string(), 0, vec![(2, 3, 3)]),
            ("b".to_string(), 0, vec![(0, 1, 3)])
        ]
    );
    assert_eq!(cursor, Some(("b".to_string(), 1)));
    let (topics, cursor) = summary(cluster.ask(2, 0, page(Some(("b", 1)))).await);
    let unknown = ResponseError::UnknownTopicOrPartition.code();
    assert_eq!(
        topics,
        vec![
            ("b".to_string(), 0, vec![(1, 2, 3)]),
            ("missing".to_string(), unknown, vec![])
        ]
    );
    assert_eq!(cursor, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_coordinator_adds_partitions_it_holds_no_replica_of() {
    use kafka_protocol::messages::ResponseKind;
    let cluster = TestCluster::start(3, |_| {}).await;
    // One replica per partition, striped: two of the three live on other nodes than the
    // coordinator, which knows them from the metadata only.
    let topic = NewTopic {
        name: "t".into(),
        partitions: 3,
        replication_factor: 1,
        assignments: None,
        configs: Default::default(),
        internal: false,
    };
    create_topic(cluster.node(1), topic, false).await.unwrap();
    let ResponseKind::FindCoordinator(found) =
        cluster.ask(1, 3, txn_requests::find_coordinator()).await
    else {
        panic!("not a FindCoordinator response");
    };
    let coordinator = found.node_id.0;
    let ResponseKind::InitProducerId(init) = cluster
        .ask(coordinator, 4, txn_requests::init_producer_id())
        .await
    else {
        panic!("not an InitProducerId response");
    };
    let hosted: Vec<i32> = (0..3)
        .filter(|p| {
            cluster
                .registration_of("t", *p)
                .replicas
                .contains(&coordinator)
        })
        .collect();
    assert!(hosted.len() < 3, "the coordinator hosts every partition");
    let ResponseKind::AddPartitionsToTxn(added) = cluster
        .ask(
            coordinator,
            3,
            txn_requests::add_partitions(init.producer_id.0, init.producer_epoch, vec![0, 1, 2, 3]),
        )
        .await
    else {
        panic!("not an AddPartitionsToTxn response");
    };
    let codes: Vec<(i32, i16)> = added.results_by_topic_v3_and_below[0]
        .results_by_partition
        .iter()
        .map(|p| (p.partition_index, p.partition_error_code))
        .collect();
    // Partition 3 does not exist: UNKNOWN_TOPIC_OR_PARTITION, and the others fail with
    // OPERATION_NOT_ATTEMPTED as Kafka answers a request with one bad partition.
    assert_eq!(
        codes,
        vec![
            (0, ResponseError::OperationNotAttempted.code()),
            (1, ResponseError::OperationNotAttempted.code()),
            (2, ResponseError::OperationNotAttempted.code()),
            (3, ResponseError::UnknownTopicOrPartition.code()),
        ]
    );
    let ResponseKind::AddPartitionsToTxn(added) = cluster
        .ask(
            coordinator,
            3,
            txn_requests::add_partitions(init.producer_id.0, init.producer_epoch, vec![0, 1, 2]),
        )
        .await
    else {
        panic!("not an AddPartitionsToTxn response");
    };
    let codes: Vec<i16> = added.results_by_topic_v3_and_below[0]
        .results_by_partition
        .iter()
        .map(|p| p.partition_error_code)
        .collect();
    assert_eq!(codes, vec![0, 0, 0]);
}

impl TestCluster {
    /// Creates `name` with one partition on `replicas` (the first leads) and
    /// `min.insync.replicas=2`.
    async fn create_topic_on(&self, name: &str, replicas: Vec<i32>) {
        let topic = NewTopic {
            name: name.into(),
            partitions: -1,
            replication_factor: -1,
            assignments: Some(vec![replicas]),
            configs: [("min.insync.replicas".to_string(), "2".to_string())].into(),
            internal: false,
        };
        create_topic(self.node(1), topic, false).await.unwrap();
    }

    /// AlterPartitionReassignments v1 of partition 0 of `topic` to `replicas` (`None`:
    /// cancel), sent to node `node`: the partition's (error code, message).
    async fn reassign(
        &self,
        node: i32,
        topic: &str,
        replicas: Option<Vec<i32>>,
    ) -> (i16, Option<String>) {
        use kafka_protocol::messages::alter_partition_reassignments_request::{
            ReassignablePartition, ReassignableTopic,
        };
        use kafka_protocol::messages::{
            AlterPartitionReassignmentsRequest, BrokerId, RequestKind, ResponseKind, TopicName,
        };
        use kafka_protocol::protocol::StrBytes;
        let request = AlterPartitionReassignmentsRequest::default().with_topics(vec![
            ReassignableTopic::default()
                .with_name(TopicName(StrBytes::from_string(topic.into())))
                .with_partitions(vec![
                    ReassignablePartition::default()
                        .with_partition_index(0)
                        .with_replicas(replicas.map(|r| r.into_iter().map(BrokerId).collect())),
                ]),
        ]);
        match self
            .ask(node, 1, RequestKind::AlterPartitionReassignments(request))
            .await
        {
            ResponseKind::AlterPartitionReassignments(r) => {
                assert_eq!(r.error_code, 0);
                let p = &r.responses[0].partitions[0];
                (
                    p.error_code,
                    p.error_message.as_ref().map(|m| m.to_string()),
                )
            }
            other => panic!("not an AlterPartitionReassignments response: {other:?}"),
        }
    }

    /// ListPartitionReassignments of every partition, answered by node `node`: (topic,
    /// partition, replicas, adding, removing) of each reassignment going on.
    async fn list_reassignments(
        &self,
        node: i32,
    ) -> Vec<(String, i32, Vec<i32>, Vec<i32>, Vec<i32>)> {
        use kafka_protocol::messages::{
            ListPartitionReassignmentsRequest, RequestKind, ResponseKind,
        };
        let ids = |v: &[kafka_protocol::messages::BrokerId]| v.iter().map(|b| b.0).collect();
        match self
            .ask(
                node,
                0,
                RequestKind::ListPartitionReassignments(
                    ListPartitionReassignmentsRequest::default(),
                ),
            )
            .await
        {
            ResponseKind::ListPartitionReassignments(r) => r
                .topics
                .iter()
                .flat_map(|t| {
                    t.partitions.iter().map(|p| {
                        (
                            t.name.to_string(),
                            p.partition_index,
                            ids(&p.replicas),
                            ids(&p.adding_replicas),
                            ids(&p.removing_replicas),
                        )
                    })
                })
                .collect(),
            other => panic!("not a ListPartitionReassignments response: {other:?}"),
        }
    }

    /// Whether node `node` has the directory of partition 0 of `topic` on disk.
    fn has_partition_dir(&self, node: i32, topic: &str) -> bool {
        self.node(node)
            .config
            .data_dir
            .join(crate::log_manager::partition_dir_name(topic, 0))
            .exists()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reassignment_moves_a_partition_under_acks_all_writes_and_the_old_replica_deletes_its_log()
 {
    let cluster = TestCluster::start(3, |c| c.auto_leader_rebalance_enable = false).await;
    cluster.create_topic_on("t", vec![1, 2]).await;
    let end = cluster
        .produce(1, "t", RequiredAcks::All, &["a", "b"])
        .await
        .unwrap();
    assert_eq!(end, 2);
    assert!(cluster.has_partition_dir(1, "t") && !cluster.has_partition_dir(3, "t"));
    // Node 3 cannot reach the leader yet: the reassignment stays in its first state.
    cluster.net.cut(1, 3);
    assert_eq!(cluster.reassign(3, "t", Some(vec![2, 3])).await, (0, None));
    let growing = cluster.registration("t");
    assert_eq!(
        (
            growing.replicas.clone(),
            growing.adding_replicas.clone(),
            growing.removing_replicas.clone(),
            growing.isr.clone(),
            growing.leader,
            growing.leader_epoch,
        ),
        (
            vec![2, 3, 1],
            vec![3],
            vec![1],
            vec![1, 2],
            1,
            LeaderEpoch(0)
        )
    );
    eventually("node 2 lists the reassignment", || {
        cluster
            .node(2)
            .metadata
            .image()
            .topic("t")
            .unwrap()
            .partition(0)
            .unwrap()
            .is_reassigning()
    })
    .await;
    assert_eq!(
        cluster.list_reassignments(2).await,
        vec![("t".to_string(), 0, vec![2, 3, 1], vec![3], vec![1])]
    );
    // Node 3 opened its replica; acks=all writes go on, on the ISR from before. The
    // partition is not under-replicated for the replica being added (as in Kafka).
    assert!(cluster.has_partition_dir(3, "t"));
    eventually("the leader follows the new replica", || {
        cluster
            .partition(1, "t")
            .leader_summary()
            .is_some_and(|s| s.replicas == 2 && s.isr == 2 && s.follower_lag.len() == 2)
    })
    .await;
    let end = cluster
        .produce(1, "t", RequiredAcks::All, &["c", "d"])
        .await
        .unwrap();
    assert_eq!(end, 4);
    // Node 3 catches up, joins the ISR, and the controller completes the move: node 2,
    // the first target replica in sync, leads at a new epoch.
    cluster.net.heal();
    eventually("the reassignment completes", || {
        let r = cluster.registration("t");
        !r.is_reassigning() && r.replicas == [2, 3]
    })
    .await;
    let done = cluster.registration("t");
    assert_eq!(
        (done.isr.clone(), done.leader, done.leader_epoch),
        (vec![2, 3], 2, LeaderEpoch(1))
    );
    assert!(cluster.list_reassignments(1).await.is_empty());
    // Node 1 holds no replica any more: its log is gone.
    eventually("node 1 deleted its replica", || {
        cluster
            .node(1)
            .replicas
            .logs()
            .get(done_topic_id(&cluster, "t"), 0)
            .is_none()
            && !cluster.has_partition_dir(1, "t")
    })
    .await;
    eventually("node 2 leads", || cluster.partition(2, "t").is_leader()).await;
    let end = cluster
        .produce(2, "t", RequiredAcks::All, &["e"])
        .await
        .unwrap();
    assert_eq!(end, 5);
    let leader_log = cluster.log_bytes(2, "t");
    eventually("node 3 holds the leader's whole log, from offset 0", || {
        cluster.log_bytes(3, "t") == leader_log
            && cluster.partition(3, "t").offsets().high_watermark == 5
    })
    .await;
    assert_eq!(cluster.partition(3, "t").offsets().log_start_offset, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_reassignment_goes_back_to_the_old_replicas_and_the_new_one_deletes_its_log() {
    let cluster = TestCluster::start(3, |c| c.auto_leader_rebalance_enable = false).await;
    cluster.create_topic_on("t", vec![1, 2]).await;
    cluster
        .produce(1, "t", RequiredAcks::All, &["a"])
        .await
        .unwrap();
    cluster.net.cut(1, 3);
    assert_eq!(cluster.reassign(2, "t", Some(vec![2, 3])).await, (0, None));
    assert!(cluster.registration("t").is_reassigning());
    eventually("node 3 opened its replica", || {
        cluster.has_partition_dir(3, "t")
    })
    .await;
    assert_eq!(cluster.reassign(3, "t", None).await, (0, None));
    let back = cluster.registration("t");
    assert_eq!(
        (
            back.replicas.clone(),
            back.is_reassigning(),
            back.isr.clone(),
            back.leader,
            back.leader_epoch
        ),
        (vec![2, 1], false, vec![1, 2], 1, LeaderEpoch(1))
    );
    eventually("node 3 deleted its replica", || {
        !cluster.has_partition_dir(3, "t")
    })
    .await;
    // Nothing to cancel any more.
    assert_eq!(
        cluster.reassign(1, "t", None).await,
        (
            ResponseError::NoReassignmentInProgress.code(),
            Some("No partition reassignment is in progress.".into())
        )
    );
    cluster.net.heal();
    eventually("node 1 leads at the new epoch", || {
        cluster.partition(1, "t").leader_epoch() == LeaderEpoch(1)
    })
    .await;
    assert_eq!(
        cluster
            .produce(1, "t", RequiredAcks::All, &["b"])
            .await
            .unwrap(),
        2
    );
}

/// The id of topic `name`.
fn done_topic_id(cluster: &TestCluster, name: &str) -> uuid::Uuid {
    cluster.node(1).metadata.image().topic(name).unwrap().id
}

impl TestCluster {
    /// UnregisterBroker v0 of broker `id`, sent to node `node`: (error code, message).
    async fn unregister(&self, node: i32, id: i32) -> (i16, Option<String>) {
        use kafka_protocol::messages::{
            BrokerId, RequestKind, ResponseKind, UnregisterBrokerRequest,
        };
        let request = UnregisterBrokerRequest::default().with_broker_id(BrokerId(id));
        match self
            .ask(node, 0, RequestKind::UnregisterBroker(request))
            .await
        {
            ResponseKind::UnregisterBroker(r) => (
                r.error_code,
                r.error_message.as_ref().map(|m| m.to_string()),
            ),
            other => panic!("not an UnregisterBroker response: {other:?}"),
        }
    }
}

/// UnregisterBroker refuses an id that is not registered (BROKER_ID_NOT_REGISTERED), the
/// node itself (without a cluster listener it is its quorum's last voter), and a broker
/// that is still a replica of a partition — also one a reassignment is adding; once its
/// replicas moved off, the broker is gone from every node's metadata, and asking again
/// finds it unregistered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unregister_broker_removes_a_broker_only_once_it_holds_no_replica() {
    let cluster = TestCluster::start(3, |c| c.auto_leader_rebalance_enable = false).await;
    cluster.create_topic_on("t", vec![1, 3]).await;
    let not_registered = |id: i32| {
        (
            ResponseError::BrokerIdNotRegistered.code(),
            Some(format!("Broker ID {id} is not currently registered")),
        )
    };
    assert_eq!(cluster.unregister(2, 9).await, not_registered(9));
    let (code, message) = cluster.unregister(1, 1).await;
    assert_eq!(code, ResponseError::InvalidRequest.code());
    assert!(
        message
            .as_deref()
            .is_some_and(|m| m.starts_with("node 1 is the last voter of the metadata quorum")),
        "{message:?}"
    );
    let holds_replicas = (
        ResponseError::InvalidRequest.code(),
        Some(
            "broker 3 is still a replica of 1 partition(s); move them off it first (sluice \
             cluster decommission 3)"
                .to_string(),
        ),
    );
    assert_eq!(cluster.unregister(1, 3).await, holds_replicas);
    // Broker 2 is being added, cut off so that it cannot catch up: it holds the partition
    // already, as broker 3 still does.
    cluster.net.isolate(2);
    assert_eq!(cluster.reassign(1, "t", Some(vec![1, 2])).await, (0, None));
    assert_eq!(cluster.registration("t").adding_replicas, vec![2]);
    assert_eq!(cluster.unregister(1, 3).await, holds_replicas);
    let (code, message) = cluster.unregister(1, 2).await;
    assert_eq!(code, ResponseError::InvalidRequest.code());
    assert!(
        message
            .as_deref()
            .is_some_and(|m| m.starts_with("broker 2 is still a replica of 1 partition(s)")),
        "{message:?}"
    );
    cluster.net.heal();
    eventually("the partition moved to brokers 1 and 2", || {
        let p = cluster.registration("t");
        p.replicas == [1, 2] && !p.is_reassigning()
    })
    .await;
    assert_eq!(cluster.unregister(2, 3).await, (0, None));
    for id in 1..=3 {
        assert!(
            cluster.node(id).metadata.image().broker(3).is_none(),
            "node {id} still lists broker 3"
        );
    }
    assert_eq!(cluster.unregister(1, 3).await, not_registered(3));
    // Unregistered, broker 3 has no leadership to hand over: its controlled shutdown
    // ends at once instead of waiting for a controller that no longer answers it.
    let started = std::time::Instant::now();
    assert_eq!(
        cluster
            .node(3)
            .lifecycle
            .shut_down(Duration::from_secs(30), Duration::from_secs(30))
            .await,
        crate::controller::lifecycle::ShutdownOutcome::Released
    );
    assert!(started.elapsed() < Duration::from_secs(10));
}

/// KIP-951: a Produce (v10+) or Fetch (v16+) refused by a node that does not lead the
/// partition names its leader and leader epoch, and carries that leader's endpoint on the
/// request's listener; older versions carry neither (they have no such fields).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_by_a_non_leader_names_the_leader_and_its_endpoint() {
    use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
    use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
    use kafka_protocol::messages::{
        BrokerId, FetchRequest, ProduceRequest, RequestKind, ResponseKind, TopicName,
    };
    use kafka_protocol::protocol::StrBytes;

    let cluster = TestCluster::start(3, |c| c.auto_leader_rebalance_enable = false).await;
    cluster.create_topic_on("t", vec![2, 1, 3]).await;
    let registration = cluster.registration("t");
    assert_eq!(registration.leader, 2);
    let epoch = registration.leader_epoch.0;
    let image = cluster.node(1).metadata.image();
    let topic_id = image.topic("t").unwrap().id;
    let leader_endpoint = image.broker(2).unwrap().endpoints[0].clone();
    // A refusal at a version with the fields names leader 2 at its epoch and its endpoint;
    // before, it names neither.
    let names_the_leader =
        |hinted: bool, version: i16, leader: (i32, i32), endpoints: Vec<(i32, String, i32)>| {
            if hinted {
                assert_eq!(leader, (2, epoch), "v{version}");
                assert_eq!(
                    endpoints,
                    vec![(2, leader_endpoint.host.clone(), leader_endpoint.port)],
                    "v{version}"
                );
            } else {
                assert_eq!(leader, (-1, -1), "v{version}");
                assert!(endpoints.is_empty(), "v{version}");
            }
        };
    let name = TopicName(StrBytes::from_static_str("t"));
    let mut batch = RecordBatchBuilder::new();
    batch.push(0, None, Some(b"v"), &[]);
    let produce = ProduceRequest::default()
        .with_acks(1)
        .with_timeout_ms(5_000)
        .with_topic_data(vec![
            TopicProduceData::default()
                .with_name(name.clone())
                .with_partition_data(vec![
                    PartitionProduceData::default()
                        .with_index(0)
                        .with_records(Some(batch.build().into())),
                ]),
        ]);
    for version in [9, 10, 12] {
        let ResponseKind::Produce(answer) = cluster
            .ask(1, version, RequestKind::Produce(produce.clone()))
            .await
        else {
            panic!("not a Produce response");
        };
        let partition = &answer.responses[0].partition_responses[0];
        assert_eq!(
            partition.error_code,
            ResponseError::NotLeaderOrFollower.code()
        );
        names_the_leader(
            version >= 10,
            version,
            (
                partition.current_leader.leader_id.0,
                partition.current_leader.leader_epoch,
            ),
            answer
                .node_endpoints
                .iter()
                .map(|e| (e.node_id.0, e.host.to_string(), e.port))
                .collect(),
        );
    }
    let fetch = |version: i16| {
        let topic = FetchTopic::default().with_partitions(vec![
            FetchPartition::default()
                .with_partition(0)
                .with_fetch_offset(0)
                .with_partition_max_bytes(1 << 20),
        ]);
        let topic = if version >= 13 {
            topic.with_topic_id(topic_id)
        } else {
            topic.with_topic(name.clone())
        };
        FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_max_bytes(1 << 20)
            .with_topics(vec![topic])
    };
    for version in [15, 16, 17] {
        let ResponseKind::Fetch(answer) = cluster
            .ask(1, version, RequestKind::Fetch(fetch(version)))
            .await
        else {
            panic!("not a Fetch response");
        };
        let partition = &answer.responses[0].partitions[0];
        assert_eq!(
            partition.error_code,
            ResponseError::NotLeaderOrFollower.code()
        );
        names_the_leader(
            version >= 16,
            version,
            (
                partition.current_leader.leader_id.0,
                partition.current_leader.leader_epoch,
            ),
            answer
                .node_endpoints
                .iter()
                .map(|e| (e.node_id.0, e.host.to_string(), e.port))
                .collect(),
        );
    }
}

/// A broker that registers again (a restart) is fenced in the same batch: it leaves the
/// ISRs and its leaderships move, each with a new leader epoch. Leading on in the old
/// epoch after a crash that lost unsynced writes would let it write other batches at
/// offsets its followers already hold, with nothing to tell them apart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_that_registers_again_hands_its_leaderships_over_with_a_new_epoch() {
    let cluster = TestCluster::start(3, |c| c.auto_leader_rebalance_enable = false).await;
    cluster.create_topic_on("t", vec![2, 1, 3]).await;
    eventually("all three in sync", || {
        cluster.registration("t").isr.len() == 3
    })
    .await;
    let before = cluster.registration("t");
    assert_eq!(before.leader, 2);
    let incarnation = cluster
        .node(1)
        .metadata
        .image()
        .broker(2)
        .unwrap()
        .incarnation_id;
    crate::broker::register(cluster.node(2), incarnation)
        .await
        .unwrap();
    let after = cluster.registration("t");
    assert_eq!(
        after.leader, 1,
        "the next in-sync replica in assignment order"
    );
    assert_eq!(after.leader_epoch.0, before.leader_epoch.0 + 1);
    assert_eq!(after.isr, vec![1, 3]);
    assert!(cluster.fenced(2));
}

//! Adding a broker to a running cluster and removing it again, across `sluice serve`
//! processes: a node started with an id outside `--voters` joins as a learner of the
//! metadata quorum, is listed by every node, takes over a partition replica (and its
//! leadership) by reassignment while an idempotent acks=all librdkafka producer keeps
//! writing and an old replica is killed, rejoins after a restart, and after
//! `sluice cluster decommission` and a stop leaves with `sluice cluster unregister`
//! (UnregisterBroker), which refuses unknown ids and brokers (voters or not) holding
//! replicas.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use rdkafka::admin::{NewTopic, TopicReplication};
use rdkafka::producer::Producer;
use sluice_e2e::moves::{
    CLI, READ, SETTLE, StopOnDrop, acks_all_producer, create_placed_topic, plan_file, send_until,
    sluice_at, succeeded, wait_more_acked,
};
use sluice_e2e::{
    Cluster, RunOutput, admin, admin_opts, block_on, check_exactly_once, consume_all, run_sluice,
};

const PARTITIONS: usize = 3;

/// Runs `reassign --verify` until it says the plan is done.
fn wait_verified(brokers: &str, plan: &str) -> RunOutput {
    let deadline = Instant::now() + SETTLE;
    loop {
        let verified = sluice_at(brokers, &["cluster", "reassign", "--verify", plan], CLI);
        if succeeded(&verified) {
            return verified;
        }
        assert!(
            Instant::now() < deadline,
            "not verified within {SETTLE:?}: {verified:?}"
        );
        thread::sleep(Duration::from_millis(200));
    }
}

/// How many partitions of `__consumer_offsets` have node `id` among their replicas.
fn offsets_partitions_on(cluster: &Cluster, id: i32) -> usize {
    let md = cluster.metadata(1, Some(&["__consumer_offsets"])).unwrap();
    md.topics
        .iter()
        .flat_map(|t| t.partitions.iter())
        .filter(|p| p.replica_nodes.iter().any(|b| b.0 == id))
        .count()
}

/// The ids `sluice cluster info --json` lists (fenced brokers included).
fn info_brokers(brokers: &str) -> Vec<i64> {
    let out = sluice_at(brokers, &["cluster", "info", "--json"], CLI);
    assert!(succeeded(&out), "{out:?}");
    let info: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    info["brokers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["node_id"].as_i64().unwrap())
        .collect()
}

#[test]
fn a_broker_joins_as_a_learner_takes_over_a_replica_under_load_and_leaves_with_unregister() {
    let mut cluster = Cluster::start(3);
    let topic = "grown";
    let assignment: [&[i32]; PARTITIONS] = [&[1, 2, 3], &[2, 3, 1], &[3, 1, 2]];
    create_placed_topic(&mut cluster, topic, &assignment, "2");
    let voters_bootstrap = cluster.bootstrap();
    let producer = acks_all_producer(&voters_bootstrap);
    let stop = AtomicBool::new(false);
    let dir = tempfile::tempdir().unwrap();
    let plan = plan_file(dir.path(), &[(topic, 0, &[4, 2, 3])]);
    let plan = plan.to_str().unwrap();
    let sent = thread::scope(|s| {
        let sender = s.spawn(|| send_until(&producer, topic, PARTITIONS, &stop));
        let _stop = StopOnDrop(&stop);
        wait_more_acked(&producer, 300, READ);

        // Node 4 is not among the voters: it joins as a broker, and says so.
        cluster.add_learner(4);
        let log = cluster.node(4).log();
        assert!(
            log.contains(&format!(
                "node 4 is not among the voters {}, so it joins the cluster as a broker (a \
                 learner of the metadata quorum)",
                cluster.voters()
            )),
            "{log}"
        );
        assert!(
            log.contains("node 4 joined the metadata quorum as a learner at 127.0.0.1:"),
            "{log}"
        );
        cluster.wait_metadata_brokers(&[1, 2, 3, 4], &[1, 2, 3, 4], SETTLE);
        // DescribeCluster too, on every node.
        cluster.wait_formed();
        // The other nodes' Metadata lists the new broker at its own Kafka listener.
        let md = cluster.metadata(1, Some(&[])).unwrap();
        let listed = md.brokers.iter().find(|b| b.node_id.0 == 4).unwrap();
        assert_eq!(listed.port, i32::from(cluster.node(4).port()));
        wait_more_acked(&producer, 300, READ);

        // A replica moves onto node 4, replacing partition 0's leader: node 4 leads it.
        let all = cluster.bootstrap();
        let out = sluice_at(&all, &["cluster", "reassign", "--execute", plan], CLI);
        assert!(succeeded(&out), "{out:?}");
        let verified = wait_verified(&all, plan);
        assert_eq!(
            verified.stdout,
            "Reassignment of partition grown-0 is completed.\n"
        );
        let moved = cluster.wait_partitions(topic, PARTITIONS as i32, SETTLE, "moved", |p| {
            p.isr.len() == 3
        });
        assert_eq!(moved[&0].replicas, vec![4, 2, 3]);
        assert_eq!(moved[&0].leader, 4);
        wait_more_acked(&producer, 300, READ);

        // An old replica dies: writes go on (to node 4 for partition 0).
        cluster.node_mut(2).kill9();
        wait_more_acked(&producer, 500, READ);
        cluster.node_mut(2).restart();
        wait_more_acked(&producer, 300, READ);
        stop.store(true, Ordering::SeqCst);
        sender.join().unwrap()
    });
    producer
        .flush(Duration::from_secs(90))
        .expect("every record reported within 90 s");
    let log = consume_all(&cluster.bootstrap(), topic, PARTITIONS as i32, READ);
    check_exactly_once(&producer.context().deliveries(), &log, sent, PARTITIONS);
    drop(producer);

    // Restarted with its data directory, node 4 rejoins without being added again.
    cluster.node_mut(4).restart();
    let log = cluster.node(4).log();
    assert_eq!(
        log.matches("node 4 joined the metadata quorum as a learner")
            .count(),
        1,
        "{log}"
    );
    assert!(
        log.contains("node 4 is a learner of the metadata quorum already, at 127.0.0.1:"),
        "{log}"
    );
    cluster.wait_metadata_brokers(&[1, 2, 3, 4], &[1, 2, 3, 4], SETTLE);
    cluster.wait_partitions(topic, PARTITIONS as i32, SETTLE, "all in sync", |p| {
        p.isr.len() == 3
    });

    // Node 4's id with a new data directory is refused: node ids are never reused, for
    // learners as for voters.
    let wiped = tempfile::tempdir().unwrap();
    let impostor = [
        "serve".to_string(),
        "--node-id".into(),
        "4".into(),
        "--listen".into(),
        format!("127.0.0.1:{}", sluice_e2e::free_port()),
        "--cluster-listen".into(),
        format!("127.0.0.1:{}", sluice_e2e::free_port()),
        "--voters".into(),
        cluster.voters().to_string(),
        "--data-dir".into(),
        wiped.path().display().to_string(),
        "--http-listen".into(),
        "off".into(),
    ];
    let impostor: Vec<&str> = impostor.iter().map(String::as_str).collect();
    let refused = run_sluice(&impostor, CLI);
    assert_eq!(
        refused.status.and_then(|s| s.code()),
        Some(1),
        "{refused:?}"
    );
    let last = refused.stderr.lines().last().unwrap_or_default();
    assert!(
        last.contains(
            "and this node cannot form a cluster: node id 4 is registered with data directory "
        ) && last.ends_with(
            "node ids are never reused, so a node with a new data directory needs a new id"
        ),
        "{refused:?}"
    );

    let all = cluster.bootstrap();
    // Refused: a broker that still holds a replica, a voter, an id never registered.
    let holding = sluice_at(&all, &["cluster", "unregister", "4"], CLI);
    assert!(!succeeded(&holding), "{holding:?}");
    // (Partition 0 of the topic, and the partitions of __consumer_offsets placed on node 4
    // when the consumer above created it.)
    let hosted = 1 + offsets_partitions_on(&cluster, 4);
    assert!(
        holding.stderr.contains(&format!(
            "INVALID_REQUEST (broker 4 is still a replica of {hosted} partition(s); move them \
             off it first (sluice cluster decommission 4))"
        )),
        "{holding:?}"
    );
    // (A voter too: it leaves the quorum only once it holds no replica.)
    let voter = sluice_at(&all, &["cluster", "unregister", "2"], CLI);
    assert!(!succeeded(&voter), "{voter:?}");
    let hosted = PARTITIONS + offsets_partitions_on(&cluster, 2);
    assert!(
        voter.stderr.contains(&format!(
            "INVALID_REQUEST (broker 2 is still a replica of {hosted} partition(s); move them \
             off it first (sluice cluster decommission 2))"
        )),
        "{voter:?}"
    );
    let unknown = sluice_at(&all, &["cluster", "unregister", "9"], CLI);
    assert!(!succeeded(&unknown), "{unknown:?}");
    assert!(
        unknown
            .stderr
            .contains("BROKER_ID_NOT_REGISTERED (Broker ID 9 is not currently registered)"),
        "{unknown:?}"
    );

    // Emptied, stopped and unregistered, node 4 is gone from every node's view.
    let out = sluice_at(&all, &["cluster", "decommission", "4"], CLI);
    assert!(succeeded(&out), "{out:?}");
    assert!(
        out.stdout.contains("node 4 holds no replica any more\n"),
        "{out:?}"
    );
    assert!(
        out.stdout
            .contains("remove it from the cluster with `sluice cluster unregister 4`"),
        "{out:?}"
    );
    cluster.node_mut(4).stop();
    let voters_only = {
        let mut nodes: Vec<String> = Vec::new();
        for id in 1..=3 {
            nodes.push(cluster.node(id).bootstrap());
        }
        nodes.join(",")
    };
    let out = sluice_at(&voters_only, &["cluster", "unregister", "4"], CLI);
    assert!(succeeded(&out), "{out:?}");
    assert_eq!(
        out.stdout,
        "node 4 is unregistered: it is no broker of the cluster and no member of the \
         metadata quorum any more\n"
    );
    let _gone = cluster.remove_node(4);
    cluster.wait_metadata_brokers(&[1, 2, 3], &[1, 2, 3], SETTLE);
    assert_eq!(info_brokers(&voters_only), vec![1, 2, 3]);
    let again = sluice_at(&voters_only, &["cluster", "unregister", "4"], CLI);
    assert!(
        again
            .stderr
            .contains("BROKER_ID_NOT_REGISTERED (Broker ID 4 is not currently registered)"),
        "{again:?}"
    );
    // The voters go on: a new topic of three replicas is created on them.
    cluster.wait_formed();
    let after = NewTopic::new("after", 1, TopicReplication::Fixed(3));
    let admin = admin(&cluster.bootstrap());
    let created = block_on(admin.create_topics([&after], &admin_opts())).unwrap();
    assert_eq!(created, vec![Ok("after".to_string())]);
    let view = cluster.wait_partitions("after", 1, SETTLE, "all in sync", |p| p.isr.len() == 3);
    assert_eq!(view[&0].isr, vec![1, 2, 3]);
}

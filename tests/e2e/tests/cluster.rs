//! Several `sluice serve` processes forming one cluster: the metadata quorum replicates
//! every change to every node, survives the loss of its leader, takes a restarted node
//! back, and a node that does not belong refuses to start with one clear line.
//! (Partitions are opened only on their replicas; replicating their records is another
//! part: these tests assert metadata, not produce, across nodes.)
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::thread;
use std::time::{Duration, Instant};

use sluice_e2e::{Broker, Cluster, run_sluice};

const NO_ERROR: i16 = 0;

/// Brokers as a response lists them: (node id, rack).
type Brokers = Vec<(i32, Option<String>)>;

/// The brokers a node's DescribeCluster and Metadata list, and its cluster id.
fn listed_brokers(cluster: &Cluster, id: i32) -> (Brokers, Brokers, String) {
    let described = cluster.describe_cluster(id).unwrap();
    let metadata = cluster.metadata(id, None).unwrap();
    let rack = |r: &Option<kafka_protocol::protocol::StrBytes>| r.as_ref().map(|r| r.to_string());
    (
        described
            .brokers
            .iter()
            .map(|b| (b.broker_id.0, rack(&b.rack)))
            .collect(),
        metadata
            .brokers
            .iter()
            .map(|b| (b.node_id.0, rack(&b.rack)))
            .collect(),
        described.cluster_id.to_string(),
    )
}

/// Waits until node `id`'s Metadata has `topic`; how long that took.
fn wait_for_topic(cluster: &Cluster, id: i32, topic: &str, timeout: Duration) -> Duration {
    let started = Instant::now();
    loop {
        let found = cluster
            .metadata(id, Some(&[topic]))
            .is_ok_and(|m| m.topics.first().is_some_and(|t| t.error_code == NO_ERROR));
        if found {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < timeout,
            "node {id} did not list topic {topic} within {timeout:?}"
        );
        thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn nodes_started_in_any_order_form_one_cluster_listed_by_every_node() {
    let cluster = Cluster::start_in_order(&[3, 1, 2]);
    let expected: Brokers = (1..=3).map(|id| (id, Some(format!("rack-{id}")))).collect();
    let (_, _, cluster_id) = listed_brokers(&cluster, 1);
    assert_eq!(cluster_id.len(), 22, "a base64 UUID: {cluster_id}");
    let leader = cluster.quorum_leader(1).unwrap();
    assert!((1..=3).contains(&leader));
    for id in 1..=3 {
        let (described, metadata, their_id) = listed_brokers(&cluster, id);
        assert_eq!(described, expected, "DescribeCluster of node {id}");
        assert_eq!(metadata, expected, "Metadata of node {id}");
        assert_eq!(their_id, cluster_id, "cluster id of node {id}");
        assert_eq!(
            cluster.quorum_leader(id).unwrap(),
            leader,
            "controller of node {id}"
        );
        let log = cluster.node(id).log();
        assert!(log.contains("cluster listener on 127.0.0.1:"), "{log}");
        assert!(log.contains("caught up with the metadata quorum"), "{log}");
        assert!(
            log.contains(&format!("metadata quorum leader: node {leader}")),
            "{log}"
        );
    }
}

#[test]
fn a_topic_created_through_a_follower_is_in_every_nodes_metadata_within_a_second() {
    let cluster = Cluster::start(3);
    let leader = cluster.quorum_leader(1).unwrap();
    let follower = (1..=3).find(|id| *id != leader).unwrap();
    assert_eq!(
        cluster
            .create_topic_via(follower, "created-on-a-follower", 3)
            .unwrap(),
        (NO_ERROR, String::new())
    );
    // The node that answered has it at once; the others within a second.
    let answered = cluster
        .metadata(follower, Some(&["created-on-a-follower"]))
        .unwrap();
    assert_eq!(answered.topics[0].error_code, NO_ERROR);
    for id in 1..=3 {
        wait_for_topic(
            &cluster,
            id,
            "created-on-a-follower",
            Duration::from_secs(1),
        );
        let metadata = cluster
            .metadata(id, Some(&["created-on-a-follower"]))
            .unwrap();
        assert_eq!(metadata.topics[0].partitions.len(), 3, "node {id}");
    }
    // A stale decision elsewhere is refused as Kafka refuses a second CreateTopics.
    let (code, _) = cluster
        .create_topic_via(leader, "created-on-a-follower", 1)
        .unwrap();
    assert_eq!(code, 36, "TOPIC_ALREADY_EXISTS");
}

#[test]
fn a_killed_quorum_leader_is_replaced_and_rejoins_with_what_it_missed() {
    let mut cluster = Cluster::start(3);
    let old = cluster.quorum_leader(1).unwrap();
    let other = (1..=3).find(|id| *id != old).unwrap();
    cluster.node_mut(old).kill9();
    let killed = Instant::now();
    // CreateTopics through another node goes through within 5 s (NOT_CONTROLLER while the
    // others elect a new leader; the client retries, as Kafka clients do).
    loop {
        let outcome = cluster.create_topic_via(other, "after-the-kill", 1);
        if outcome == Ok((NO_ERROR, String::new())) {
            eprintln!("created {:?} after the kill", killed.elapsed());
            break;
        }
        assert!(
            killed.elapsed() < Duration::from_secs(5),
            "no CreateTopics succeeded within 5 s of the kill: {outcome:?}"
        );
        thread::sleep(Duration::from_millis(50));
    }
    let new = cluster.quorum_leader(other).unwrap();
    assert_ne!(new, old);
    // The killed node comes back with its data dir, sees what was created meanwhile and
    // follows the new leader.
    cluster.node_mut(old).restart();
    wait_for_topic(&cluster, old, "after-the-kill", Duration::from_secs(20));
    cluster.wait_formed();
    let (described, _, _) = listed_brokers(&cluster, old);
    assert_eq!(described.len(), 3);
    let deadline = Instant::now() + Duration::from_secs(10);
    while cluster.quorum_leader(old).unwrap() != new {
        assert!(
            Instant::now() < deadline,
            "node {old} does not follow node {new}"
        );
        thread::sleep(Duration::from_millis(50));
    }
}

/// Runs `sluice serve <args>` expecting it to refuse to start; its stderr.
fn refused(args: &[String]) -> String {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = run_sluice(&args, Duration::from_secs(60));
    assert_eq!(
        out.status.and_then(|s| s.code()),
        Some(1),
        "sluice serve {args:?} did not exit with 1: {}",
        out.stderr
    );
    out.stderr
}

/// The one error line of a refused start: the last line, and the only WARN or ERROR.
fn the_error_line(stderr: &str) -> &str {
    let noisy: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains(" WARN ") || l.contains(" ERROR ") || l.starts_with("error:"))
        .collect();
    assert_eq!(noisy.len(), 1, "{stderr}");
    let last = stderr.lines().last().unwrap_or_default();
    assert_eq!(last, noisy[0], "{stderr}");
    last
}

/// `serve` flags for a node `id` of `cluster` with its own ports and `data_dir`.
fn serve_args(cluster: &Cluster, id: i32, voters: &str, data_dir: &std::path::Path) -> Vec<String> {
    vec![
        "serve".into(),
        "--node-id".into(),
        id.to_string(),
        "--listen".into(),
        format!("127.0.0.1:{}", sluice_e2e::free_port()),
        "--cluster-listen".into(),
        format!("127.0.0.1:{}", cluster.cluster_port(id)),
        "--voters".into(),
        voters.to_string(),
        "--data-dir".into(),
        data_dir.display().to_string(),
        "--http-listen".into(),
        "off".into(),
    ]
}

#[test]
fn nodes_that_do_not_belong_refuse_to_start_with_one_line() {
    let mut a = Cluster::start(3);
    let dir = tempfile::tempdir().unwrap();

    // Other voters: a fourth node listing itself instead of node 3.
    let port4 = sluice_e2e::free_port();
    let voters4 = format!(
        "1@127.0.0.1:{},2@127.0.0.1:{},4@127.0.0.1:{port4}",
        a.cluster_port(1),
        a.cluster_port(2)
    );
    let mut args = vec![
        "serve".to_string(),
        "--node-id".into(),
        "4".into(),
        "--listen".into(),
        format!("127.0.0.1:{}", sluice_e2e::free_port()),
        "--cluster-listen".into(),
        format!("127.0.0.1:{port4}"),
        "--voters".into(),
        voters4.clone(),
        "--http-listen".into(),
        "off".into(),
        "--data-dir".into(),
    ];
    args.push(dir.path().join("four").display().to_string());
    let stderr = refused(&args);
    let line = the_error_line(&stderr);
    let by = if line.starts_with("error: node 1 ") {
        1
    } else {
        2
    };
    assert_eq!(
        line,
        format!(
            "error: node {by} at 127.0.0.1:{} and this node cannot form a cluster: node {by} runs \
             with --voters {} but node 4 with --voters {voters4}: every node needs the same \
             --voters",
            a.cluster_port(by),
            a.voters()
        )
    );

    // A data dir of another cluster: node 3 of cluster B, started as node 3 of cluster A.
    let mut b = Cluster::start(3);
    // Cluster nodes stop cleanly on SIGTERM.
    assert!(b.node_mut(3).stop().success());
    assert!(a.node_mut(3).stop().success());
    let (_, _, a_id) = listed_brokers(&a, 1);
    let (_, _, b_id) = listed_brokers(&b, 1);
    let stderr = refused(&serve_args(&a, 3, a.voters(), b.node(3).data_dir()));
    drop(b);
    let line = the_error_line(&stderr);
    let by = if line.starts_with("error: node 1 ") {
        1
    } else {
        2
    };
    assert_eq!(
        line,
        format!(
            "error: node {by} at 127.0.0.1:{} and this node cannot form a cluster: node {by} is in \
             cluster {a_id} but node 3 is in cluster {b_id}: a data directory of another cluster",
            a.cluster_port(by)
        )
    );

    // Node 3's id with an empty data dir: node ids are never reused.
    let stderr = refused(&serve_args(&a, 3, a.voters(), &dir.path().join("wiped")));
    let line = the_error_line(&stderr);
    assert!(
        line.contains(
            "and this node cannot form a cluster: node id 3 is registered with data directory "
        ) && line.ends_with(
            "node ids are never reused, so a node with a new data directory needs a new id"
        ),
        "{line}"
    );

    // A single node's data dir cannot become a cluster node.
    let mut single = Broker::start();
    single.stop();
    let stderr = refused(&serve_args(&a, 3, a.voters(), single.data_dir()));
    assert_eq!(
        the_error_line(&stderr),
        format!(
            "error: data directory {} holds a single node's metadata (meta/metadata.log); a \
             cluster node starts from an empty data directory",
            single.data_dir().display()
        )
    );

    // Node 3 with its own data dir still comes back.
    a.node_mut(3).restart();
    a.wait_formed();
}

#[test]
fn a_whole_cluster_stopped_at_once_exits_cleanly() {
    // Each node asks the controller to move its leaderships away before it stops; when the
    // others stop too, the quorum is gone and no controller answers: a node stops anyway
    // after a broker session timeout instead of waiting out the controlled-shutdown limit.
    let mut cluster = Cluster::start(3);
    let (code, message) = cluster.create_topic_via(1, "everywhere", 3).unwrap();
    assert_eq!((code, message.as_str()), (NO_ERROR, ""));
    let pids: Vec<String> = cluster
        .ids()
        .iter()
        .map(|id| cluster.node(*id).pid().to_string())
        .collect();
    let status = std::process::Command::new("kill")
        .arg("-TERM")
        .args(&pids)
        .status()
        .unwrap();
    assert!(status.success());
    for id in cluster.ids() {
        // Waits at most the harness's stop timeout (20 s), well below the 30 s limit of a
        // controlled shutdown.
        let status = cluster.node_mut(id).stop();
        assert!(status.success(), "node {id} exited with {status}");
        let log = cluster.node(id).log();
        assert!(
            log.contains("controlled shutdown: this node leads nothing any more")
                || log.contains("controlled shutdown: no controller answered"),
            "node {id} did not log how its controlled shutdown ended"
        );
    }
}

/// The first of `n` consecutive loopback ports that were free a moment ago.
fn free_port_run(n: u16) -> u16 {
    loop {
        let first = sluice_e2e::free_port();
        let rest_free = (1..n).all(|i| {
            first
                .checked_add(i)
                .is_some_and(|p| std::net::TcpListener::bind(("127.0.0.1", p)).is_ok())
        });
        if rest_free {
            return first;
        }
    }
}

#[test]
fn dev_cluster_starts_three_nodes_that_form_one_cluster_and_stops_them_on_ctrl_c() {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().unwrap();
    let (kafka, cluster, http) = (free_port_run(3), free_port_run(3), free_port_run(3));
    let mut child = std::process::Command::new(sluice_e2e::sluice_bin())
        .args([
            "dev-cluster",
            "--base-port",
            &kafka.to_string(),
            "--cluster-base-port",
            &cluster.to_string(),
            "--http-base-port",
            &http.to_string(),
        ])
        .current_dir(dir.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut printed = Vec::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        let done = line.starts_with("press Ctrl-C");
        printed.push(line);
        if done {
            break;
        }
    }
    let bootstrap = format!(
        "127.0.0.1:{kafka},127.0.0.1:{},127.0.0.1:{}",
        kafka + 1,
        kafka + 2
    );
    assert!(
        printed.contains(&format!("bootstrap servers: {bootstrap}")),
        "{printed:?}"
    );
    let out = run_sluice(
        &["cluster", "info", "--brokers", &bootstrap, "--json"],
        Duration::from_secs(30),
    );
    assert_eq!(out.status.map(|s| s.success()), Some(true), "{out:?}");
    let info: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let ids: Vec<i64> = info["brokers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["node_id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, [1, 2, 3], "{info}");

    let st = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "dev-cluster did not stop");
        thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "dev-cluster exited with {status}");
    for id in 1..=3 {
        let log = std::fs::read_to_string(dir.path().join(format!("sluice-dev-cluster/n{id}.log")))
            .unwrap();
        assert!(log.contains("shutdown complete"), "node {id}: {log}");
    }
}

#[test]
fn a_killed_node_is_fenced_once_its_cluster_listener_refuses_connections() {
    // A session timeout of a minute: only the probe of the silent node's cluster listener
    // can fence it within the test's wait.
    let mut cluster = Cluster::start_with(3, &["--broker-session-timeout-ms", "60000"]);
    let (code, _) = cluster.create_topic_via(1, "orphaned", 3).unwrap();
    assert_eq!(code, NO_ERROR);
    let victim = 3;
    cluster.node_mut(victim).kill9();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let fenced = cluster
            .describe_cluster(1)
            .is_ok_and(|r| !r.brokers.iter().any(|b| b.broker_id.0 == victim));
        if fenced {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "node {victim} was not fenced within 20 s"
        );
        thread::sleep(Duration::from_millis(50));
    }
    let logs: String = [1, 2].iter().map(|id| cluster.node(*id).log()).collect();
    assert!(
        logs.contains(&format!(
            "broker {victim} missed its heartbeats and its cluster listener refuses connections (the process is gone): fencing it"
        )),
        "no node logged why it fenced node {victim}"
    );
}

//! The web console as `sluice serve` mounts it: `--console read-write | read-only | off`
//! (the URLs and modes outside tests rely on), the start-up lines that say where it is,
//! the audit line every change through it writes, and the console of one node of a
//! cluster.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use sluice_e2e::{Broker, Cluster, free_port, run_sluice};

/// One HTTP/1.1 request over a fresh connection, as a browser on the console's own page
/// would send it: (status, head, body).
fn http(addr: SocketAddr, method: &str, path: &str, body: &str) -> (u16, String, String) {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nSec-Fetch-Site: same-origin\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8_lossy(&raw).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, head.to_string(), body.to_string())
}

fn token(addr: SocketAddr) -> String {
    let (_, _, page) = http(addr, "GET", "/ui/topics", "");
    let marker = "name=\"_csrf\" value=\"";
    let start = page.find(marker).expect("a form token") + marker.len();
    page[start..start + 64].to_string()
}

/// Waits for `line` in the broker's log (it is written as the request is answered).
fn wait_for_log(broker: &Broker, line: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let log = broker.log();
        if log.contains(line) {
            return log;
        }
        assert!(Instant::now() < deadline, "no {line:?} in the log:\n{log}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn start(console: Option<&str>) -> (Broker, SocketAddr) {
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let mut args = vec!["--http-listen", listen.as_str()];
    if let Some(mode) = console {
        args.extend(["--console", mode]);
    }
    let broker = Broker::start_with(&args);
    (broker, SocketAddr::from(([127, 0, 0, 1], port)))
}

#[test]
fn the_console_is_on_by_default_and_audits_every_change() {
    let (broker, http_addr) = start(None);
    wait_for_log(&broker, &format!("web console on http://{http_addr}/ui/"));
    for path in ["/ui/", "/ui/topics", "/ui/groups", "/ui/brokers"] {
        assert_eq!(http(http_addr, "GET", path, "").0, 200, "{path}");
    }
    let token = token(http_addr);
    let (status, head, _) = http(
        http_addr,
        "POST",
        "/ui/topics",
        &format!("_csrf={token}&name=audited&partitions=2&replication_factor=1&configs="),
    );
    assert_eq!(status, 303);
    assert!(
        head.contains("location: /ui/topics/audited?notice=created"),
        "{head}"
    );
    let log = wait_for_log(&broker, "console change: create-topic audited");
    let line = log
        .lines()
        .find(|l| l.contains("console change: create-topic audited"))
        .unwrap();
    assert!(line.contains("peer=127.0.0.1:"), "{line}");
    assert_eq!(http(http_addr, "GET", "/ui/topics/audited", "").0, 200);

    let (status, _, _) = http(
        http_addr,
        "POST",
        "/ui/topics/audited",
        &format!("_csrf={token}&action=delete&confirm=wrong"),
    );
    assert_eq!(status, 400);
    let log = wait_for_log(&broker, "console change refused: delete audited");
    assert!(log.contains("error=The name typed does not match"), "{log}");
}

#[test]
fn read_only_refuses_changes_and_off_serves_no_console() {
    let (broker, http_addr) = start(Some("read-only"));
    wait_for_log(
        &broker,
        &format!("web console (read-only) on http://{http_addr}/ui/"),
    );
    let (status, _, page) = http(http_addr, "GET", "/ui/topics", "");
    assert_eq!(status, 200);
    assert!(!page.contains("method=\"post\""));
    let (status, _, body) = http(
        http_addr,
        "POST",
        "/ui/topics",
        "name=x&partitions=1&replication_factor=1",
    );
    assert_eq!(
        (status, body.as_str()),
        (403, "the console is read-only (console = read-only)\n")
    );
    drop(broker);

    let (broker, http_addr) = start(Some("off"));
    wait_for_log(&broker, "web console off");
    let (status, _, body) = http(http_addr, "GET", "/ui/", "");
    assert_eq!(
        (status, body.as_str()),
        (404, "not found; try /metrics, /health or /ready\n")
    );
    assert_eq!(http(http_addr, "GET", "/metrics", "").0, 200);
}

#[test]
fn an_unknown_console_mode_is_refused_at_start() {
    let out = run_sluice(
        &["serve", "--console", "public", "--http-listen", "off"],
        Duration::from_secs(10),
    );
    assert_eq!(out.status.and_then(|s| s.code()), Some(2), "{}", out.stderr);
    assert!(
        out.stderr.contains(
            "invalid value 'public' for '--console <off|read-only|read-write>': 'public' is not a console mode; use off, read-only or read-write"
        ),
        "{}",
        out.stderr
    );
}

/// Comma-separated ids, as the console lists replicas.
fn ids(ids: &[i32]) -> String {
    ids.iter()
        .map(i32::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// (leader, replicas, ISR) of each partition of `topic`, by index, as node `id`'s
/// Metadata says.
fn placement(cluster: &Cluster, id: i32, topic: &str) -> Vec<(i32, Vec<i32>, Vec<i32>)> {
    let metadata = cluster.metadata(id, Some(&[topic])).unwrap();
    let mut partitions: Vec<_> = metadata.topics[0]
        .partitions
        .iter()
        .map(|p| {
            (
                p.partition_index,
                p.leader_id.0,
                p.replica_nodes.iter().map(|n| n.0).collect::<Vec<_>>(),
                p.isr_nodes.iter().map(|n| n.0).collect::<Vec<_>>(),
            )
        })
        .collect();
    partitions.sort_by_key(|p| p.0);
    partitions
        .into_iter()
        .map(|(_, leader, replicas, isr)| (leader, replicas, isr))
        .collect()
}

/// GET `path`: (status, body without the empty `class=""` of a class toggled off).
fn get_page(addr: SocketAddr, path: &str) -> (u16, String) {
    let (status, _, body) = http(addr, "GET", path, "");
    (status, body.replace(" class=\"\"", ""))
}

/// GETs `path` until its body (as [`get_page`] gives it) contains `text`; the body.
fn wait_for_page(addr: SocketAddr, path: &str, text: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, body) = get_page(addr, path);
        if status == 200 && body.contains(text) {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "{path} did not show {text:?} within 20 s:\n{body}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The console of node 1 of three: every broker with its rack and the quorum leader,
/// topics created through it with their replicas and ISR as Metadata has them, records
/// read only from the partitions this node has a replica of (the others named with their
/// nodes), and a node that stops heartbeating shown fenced with the partitions it leaves.
#[test]
fn in_a_cluster_the_console_shows_every_broker_and_reads_the_partitions_it_has() {
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let mut cluster = Cluster::start_with(3, |id| {
        if id == 1 {
            vec!["--http-listen".into(), listen.clone()]
        } else {
            Vec::new()
        }
    });
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    wait_for_log(
        cluster.node(1),
        &format!("web console on http://{addr}/ui/"),
    );

    // Brokers: each with its address and rack; the quorum leader named.
    let leader = cluster.quorum_leader(1).unwrap();
    let (status, page) = get_page(addr, "/ui/brokers");
    assert_eq!(status, 200);
    for id in 1..=3 {
        let role = if id == leader {
            "metadata quorum leader"
        } else if id == 1 {
            "this node"
        } else {
            "broker"
        };
        let row = format!(
            "<tr><th scope=\"row\">{id}</th><td>127.0.0.1:{}</td><td>rack-{id}</td><td>{role}</td><td>active</td>",
            cluster.node(id).port()
        );
        assert!(page.contains(&row), "no {row} in:\n{page}");
    }

    // Topics created through the console, placed by the controller.
    let token = token(addr);
    for (name, partitions, rf) in [("replicated", 1, 3), ("spread", 3, 1)] {
        let (status, head, body) = http(
            addr,
            "POST",
            "/ui/topics",
            &format!(
                "_csrf={token}&name={name}&partitions={partitions}&replication_factor={rf}&configs="
            ),
        );
        assert_eq!(status, 303, "{head}\n{body}");
    }
    let (leader_r, replicas_r, isr_r) = placement(&cluster, 1, "replicated")[0].clone();
    assert_eq!(replicas_r.len(), 3);
    wait_for_page(
        addr,
        "/ui/topics/replicated",
        &format!(
            "<tr><th scope=\"row\">0</th><td>{leader_r}</td><td>{}</td><td>{}</td>",
            ids(&replicas_r),
            ids(&isr_r)
        ),
    );
    let spread = placement(&cluster, 1, "spread");
    let local: Vec<i32> = (0..3).filter(|&p| spread[p as usize].1 == [1]).collect();
    let remote = (0..3)
        .find(|&p| spread[p as usize].1 != [1])
        .expect("a partition of 'spread' on another node");
    let (remote_leader, remote_replicas, _) = &spread[remote as usize];

    // Messages: 'all' reads this node's partitions and says so; another node's partition
    // is refused with the nodes that have it.
    if let Some(&here) = local.first() {
        let (status, head, _) = http(
            addr,
            "POST",
            "/ui/topics/spread/messages",
            &format!("_csrf={token}&partition={here}&key=k&value=written-on-node-1&headers="),
        );
        assert_eq!(status, 303, "{head}");
        assert!(
            head.contains(&format!("location: /ui/topics/spread/messages?partition={here}&start=offset&offset=0&notice=produced")),
            "{head}"
        );
    }
    let (status, _, page) = http(addr, "GET", "/ui/topics/spread/messages?partition=all", "");
    if local.is_empty() {
        assert_eq!(status, 400, "{page}");
        assert!(
            page.contains("This node has no replica of any partition of this topic"),
            "{page}"
        );
    } else {
        assert_eq!(status, 200, "{page}");
        assert!(
            page.contains(&format!(
                "Node 1 has replicas of partitions {} only of spread",
                ids(&local)
            )),
            "{page}"
        );
        assert!(page.contains("written-on-node-1"), "{page}");
    }
    let elsewhere = format!(
        "Node 1 has no replica of partition {remote} of topic 'spread' (its replicas: {}; leader: {remote_leader}): read it from one of those nodes.",
        ids(remote_replicas)
    );
    let (status, _, page) = http(
        addr,
        "GET",
        &format!("/ui/topics/spread/messages?partition={remote}&start=oldest"),
        "",
    );
    assert_eq!(status, 400);
    assert!(page.contains(&elsewhere), "no {elsewhere:?} in:\n{page}");
    let (status, _, body) = http(
        addr,
        "GET",
        &format!("/ui/topics/spread/messages/export?partition={remote}&start=oldest&format=ndjson"),
        "",
    );
    assert_eq!(status, 400);
    assert!(body.contains(&elsewhere), "{body}");

    // Node 3 stops heartbeating: fenced, out of every ISR, its partitions offline.
    cluster.node_mut(3).kill9();
    wait_for_page(
        addr,
        "/ui/brokers",
        "<td>rack-3</td><td>broker</td><td class=\"bad\">fenced</td>",
    );
    let on_node_3 = (0..3).filter(|&p| spread[p as usize].1 == [3]).count();
    let deadline = Instant::now() + Duration::from_secs(20);
    let (expected_offline, expected_under_replicated, overview) = loop {
        // Once Metadata has settled: node 3 out of the ISR of 'replicated', and the
        // partitions only node 3 had without a leader.
        let all: Vec<_> = ["replicated", "spread"]
            .iter()
            .flat_map(|t| placement(&cluster, 1, t))
            .collect();
        let settled = !all[0].2.contains(&3) && all.iter().all(|(l, r, _)| *r != [3] || *l < 0);
        if settled {
            let offline = all.iter().filter(|(l, _, _)| *l < 0).count();
            let under_replicated = all.iter().filter(|(_, r, i)| i.len() < r.len()).count();
            break (offline, under_replicated, get_page(addr, "/ui/").1);
        }
        assert!(
            Instant::now() < deadline,
            "Metadata did not settle: {all:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(expected_offline, on_node_3);
    assert!(expected_under_replicated >= 1);
    let tile = |n: usize, label: &str| {
        format!(
            "<li class=\"tile{}\"><span class=\"value\">{n}</span><span class=\"label\">{label}</span>",
            if n > 0 { " bad" } else { "" }
        )
    };
    for (n, label) in [
        (expected_offline, "Offline"),
        (expected_under_replicated, "Under-replicated"),
    ] {
        let tile = tile(n, label);
        assert!(overview.contains(&tile), "no {tile} in:\n{overview}");
    }
}

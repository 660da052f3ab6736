//! `sluice dev-cluster`: a cluster of `sluice serve` child processes on this machine, to
//! try replication and failover with one command. Node i (from 1) listens for clients on
//! `base-port + i - 1`, for the other nodes on `cluster-base-port + i - 1` and serves HTTP on
//! `http-base-port + i - 1`; its data and log file are under the directory given. Ctrl-C (or
//! SIGTERM) stops every node the way a rolling shutdown would: SIGTERM, so each moves its
//! leaderships away first.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use clap::Args;
use sluice_client::{Client, ClientConfig};

/// How long the nodes may take to form the cluster and open their listeners.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a node may take to stop after SIGTERM before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(40);

#[derive(Args, Debug)]
pub struct DevClusterArgs {
    /// Nodes to start (all are voters of the metadata quorum: 3 or 5 tolerate 1 or 2
    /// failures).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..=9))]
    nodes: u16,
    /// Where the nodes keep their data and logs (`n1/`, `n1.log`, …).
    #[arg(long, default_value = "sluice-dev-cluster")]
    dir: PathBuf,
    /// Client port of node 1; node i uses this + i - 1.
    #[arg(long, default_value_t = 9092)]
    base_port: u16,
    /// Node-to-node port of node 1; node i uses this + i - 1.
    #[arg(long, default_value_t = 9192)]
    cluster_base_port: u16,
    /// HTTP port (metrics, health) of node 1; node i uses this + i - 1.
    #[arg(long, default_value_t = 9644)]
    http_base_port: u16,
}

/// One node of the development cluster.
struct Node {
    id: u16,
    client_addr: String,
    child: Child,
    log: PathBuf,
}

/// Starts the nodes, prints how to reach them, and stops them all on Ctrl-C or SIGTERM.
pub fn run(args: DevClusterArgs) -> Result<(), String> {
    let exe = std::env::current_exe()
        .map_err(|e| format!("cannot find the sluice executable to start nodes with: {e}"))?;
    std::fs::create_dir_all(&args.dir)
        .map_err(|e| format!("cannot create {}: {e}", args.dir.display()))?;
    let port = |base: u16, id: u16| {
        base.checked_add(id - 1)
            .ok_or_else(|| format!("port {base} + {} is past 65535", id - 1))
    };
    let mut voters = Vec::new();
    for id in 1..=args.nodes {
        voters.push(format!(
            "{id}@127.0.0.1:{}",
            port(args.cluster_base_port, id)?
        ));
    }
    let voters = voters.join(",");
    let mut nodes: Vec<Node> = Vec::new();
    for id in 1..=args.nodes {
        let client_addr = format!("127.0.0.1:{}", port(args.base_port, id)?);
        let started = start_node(
            &exe,
            &args.dir,
            id,
            &client_addr,
            &format!("127.0.0.1:{}", port(args.cluster_base_port, id)?),
            &format!("127.0.0.1:{}", port(args.http_base_port, id)?),
            &voters,
        );
        match started {
            Ok(node) => nodes.push(node),
            Err(e) => {
                stop_all(&mut nodes);
                return Err(e);
            }
        }
    }
    eprintln!(
        "starting {} nodes (data and logs in {})…",
        args.nodes,
        args.dir.display()
    );
    if let Err(e) = wait_until_listening(&mut nodes) {
        stop_all(&mut nodes);
        return Err(e);
    }
    let bootstrap: Vec<&str> = nodes.iter().map(|n| n.client_addr.as_str()).collect();
    println!("bootstrap servers: {}", bootstrap.join(","));
    for node in &nodes {
        println!(
            "  node {}: {}  (log: {})",
            node.id,
            node.client_addr,
            node.log.display()
        );
    }
    println!("press Ctrl-C to stop the cluster");
    let signal = wait_for_stop_or_exit(&mut nodes);
    stop_all(&mut nodes);
    signal
}

fn start_node(
    exe: &Path,
    dir: &Path,
    id: u16,
    client_addr: &str,
    cluster_addr: &str,
    http_addr: &str,
    voters: &str,
) -> Result<Node, String> {
    let data_dir = dir.join(format!("n{id}"));
    let log = dir.join(format!("n{id}.log"));
    let log_file =
        std::fs::File::create(&log).map_err(|e| format!("cannot create {}: {e}", log.display()))?;
    let stderr = log_file
        .try_clone()
        .map_err(|e| format!("cannot open {} twice: {e}", log.display()))?;
    let child = Command::new(exe)
        .arg("serve")
        .args(["--node-id", &id.to_string()])
        .args(["--listen", client_addr])
        .args(["--cluster-listen", cluster_addr])
        .args(["--voters", voters])
        .args(["--rack", &format!("rack-{id}")])
        .args(["--http-listen", http_addr])
        .arg("--data-dir")
        .arg(&data_dir)
        .stdin(Stdio::null())
        .stdout(log_file)
        .stderr(stderr)
        .spawn()
        .map_err(|e| format!("cannot start node {id}: {e}"))?;
    Ok(Node {
        id,
        client_addr: client_addr.to_string(),
        child,
        log,
    })
}

/// Waits until every node has started (logged its started line and accepts client
/// connections) and the controller has let every node in (none fenced), so that the
/// cluster takes replicated topics as soon as the bootstrap servers are printed; a node
/// that exits meanwhile fails the start with its log's last lines.
fn wait_until_listening(nodes: &mut [Node]) -> Result<(), String> {
    let deadline = Instant::now() + START_TIMEOUT;
    let started_line = concat!("Sluice ", env!("CARGO_PKG_VERSION"), " started");
    for node in nodes.iter_mut() {
        loop {
            if let Ok(Some(status)) = node.child.try_wait() {
                return Err(format!(
                    "node {} exited ({status}) while starting:\n{}",
                    node.id,
                    last_lines(&node.log, 5)
                ));
            }
            let started =
                std::fs::read_to_string(&node.log).is_ok_and(|log| log.contains(started_line));
            if started && TcpStream::connect(&node.client_addr).is_ok() {
                break;
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "node {} did not open {} within {START_TIMEOUT:?}; see {}",
                    node.id,
                    node.client_addr,
                    node.log.display()
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    let bootstrap: Vec<&str> = nodes.iter().map(|n| n.client_addr.as_str()).collect();
    wait_until_unfenced(&bootstrap.join(","), nodes.len(), deadline)
}

/// Waits until DescribeCluster lists `count` brokers, none of them fenced.
fn wait_until_unfenced(bootstrap: &str, count: usize, deadline: Instant) -> Result<(), String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    runtime.block_on(async {
        let mut last = String::from("no answer");
        while Instant::now() < deadline {
            match Client::connect(bootstrap, ClientConfig::default()).await {
                Ok(mut client) => match client.describe_cluster().await {
                    Ok(info) => {
                        let active = info.brokers.iter().filter(|b| !b.fenced).count();
                        if active == count {
                            return Ok(());
                        }
                        last = format!("{active} of {count} brokers active");
                    }
                    Err(e) => last = e.to_string(),
                },
                Err(e) => last = e.to_string(),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(format!(
            "the cluster did not let every node in within {START_TIMEOUT:?} ({last})"
        ))
    })
}

/// Blocks until SIGINT or SIGTERM, or until a node exits by itself (reported).
fn wait_for_stop_or_exit(nodes: &mut [Node]) -> Result<(), String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the signal handler: {e}"))?;
    runtime.block_on(async {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term =
            signal(SignalKind::terminate()).map_err(|e| format!("cannot handle SIGTERM: {e}"))?;
        let mut int =
            signal(SignalKind::interrupt()).map_err(|e| format!("cannot handle SIGINT: {e}"))?;
        let mut ticks = tokio::time::interval(Duration::from_millis(200));
        loop {
            tokio::select! {
                _ = term.recv() => break,
                _ = int.recv() => break,
                _ = ticks.tick() => {
                    for node in nodes.iter_mut() {
                        if let Ok(Some(status)) = node.child.try_wait() {
                            return Err(format!(
                                "node {} exited ({status}); stopping the others:\n{}",
                                node.id,
                                last_lines(&node.log, 5)
                            ));
                        }
                    }
                }
            }
        }
        eprintln!("stopping the cluster (each node moves its leaderships away first)…");
        Ok(())
    })
}

/// Sends SIGTERM to every node still running, waits for them, kills the ones that do not
/// stop in time.
fn stop_all(nodes: &mut [Node]) {
    for node in nodes.iter() {
        let pid = i32::try_from(node.child.id())
            .ok()
            .and_then(rustix::process::Pid::from_raw);
        if let Some(pid) = pid {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        }
    }
    let deadline = Instant::now() + STOP_TIMEOUT;
    for node in nodes.iter_mut() {
        loop {
            match node.child.try_wait() {
                Ok(Some(_)) | Err(_) => break,
                Ok(None) if Instant::now() > deadline => {
                    eprintln!("node {} did not stop in time; killing it", node.id);
                    let _ = node.child.kill();
                    let _ = node.child.wait();
                    break;
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    }
}

/// The last `n` lines of a node's log, for error messages.
fn last_lines(log: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines
        .get(lines.len().saturating_sub(n)..)
        .unwrap_or_default()
        .join("\n")
}

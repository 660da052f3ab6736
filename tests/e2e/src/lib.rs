//! Shared harness for end-to-end tests.
//!
//! Every test starts its own `sluice serve` process on a free loopback port with its own
//! temporary data directory ([`Broker`]), talks to it with real librdkafka clients (built by
//! the helpers below with short timeouts) or with hand-built frames ([`raw`]), and prints the
//! broker's log when it fails.
//!
//! The broker binary is `$SLUICE_BIN` when set; otherwise the harness runs
//! `cargo build -p sluice` once per test binary (a no-op when it is up to date) and uses
//! `<target dir>/debug/sluice`. Set `SLUICE_E2E_NO_BUILD=1` to skip that build.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

pub mod certs;
pub mod moves;
pub mod raw;

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Read;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::{ClientContext, DefaultClientContext};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Message, OwnedMessage};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

/// How long a broker may take to accept connections after it is spawned.
pub const START_TIMEOUT: Duration = Duration::from_secs(10);
/// What a broker logs once it has opened its logs and loaded its coordinators.
const STARTED_LINE: &str = concat!("Sluice ", env!("CARGO_PKG_VERSION"), " started");
/// How long a broker may take to exit after SIGTERM.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(20);
/// Timeout for single client calls (metadata, admin, watermarks).
pub const CALL_TIMEOUT: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------------------------
// The broker binary
// ---------------------------------------------------------------------------------------------

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("workspace root")
}

/// The path of the `sluice` binary under test (building it first unless `$SLUICE_BIN` is set).
pub fn sluice_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(bin) = std::env::var_os("SLUICE_BIN") {
            return PathBuf::from(bin);
        }
        let root = workspace_root();
        if std::env::var_os("SLUICE_E2E_NO_BUILD").is_none() {
            let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
            let out = Command::new(cargo)
                .args(["build", "-p", "sluice", "--bin", "sluice"])
                .current_dir(&root)
                .stdin(Stdio::null())
                .output()
                .expect("run cargo build -p sluice");
            assert!(
                out.status.success(),
                "cargo build -p sluice failed:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .map(|p| if p.is_absolute() { p } else { root.join(p) })
            .unwrap_or_else(|| root.join("target"));
        let bin = target.join("debug").join("sluice");
        assert!(
            bin.exists(),
            "{} does not exist; build it with `cargo build -p sluice` or set SLUICE_BIN",
            bin.display()
        );
        bin
    })
}

/// A free loopback port (bound and released; the broker binds it right after), never one
/// handed out before in this test process: a node killed and restarted by one test gets its
/// port back, and must not find another test's broker on it.
pub fn free_port() -> u16 {
    static HANDED_OUT: Mutex<Vec<u16>> = Mutex::new(Vec::new());
    let mut handed_out = HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let port = l.local_addr().expect("local addr").port();
        if !handed_out.contains(&port) {
            handed_out.push(port);
            return port;
        }
    }
}

/// Result of running `sluice` to completion: its exit status (None when it did not exit
/// within the timeout and was killed) and everything it wrote to stdout and stderr.
#[derive(Debug)]
pub struct RunOutput {
    pub status: Option<ExitStatus>,
    /// stdout as text (bytes that are not UTF-8 replaced by U+FFFD).
    pub stdout: String,
    /// stdout exactly as written.
    pub stdout_bytes: Vec<u8>,
    pub stderr: String,
}

/// Runs `sluice <args>` and waits at most `timeout` for it to exit.
pub fn run_sluice(args: &[&str], timeout: Duration) -> RunOutput {
    run_sluice_with_env(args, &[], timeout)
}

/// Runs `sluice <args>` with the environment variables `env` added, and waits at most
/// `timeout` for it to exit.
pub fn run_sluice_with_env(args: &[&str], env: &[(&str, &str)], timeout: Duration) -> RunOutput {
    let dir = tempfile::tempdir().expect("tempdir");
    let out_path = dir.path().join("stdout");
    let err_path = dir.path().join("stderr");
    let mut child = Command::new(sluice_bin())
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(File::create(&out_path).expect("stdout file"))
        .stderr(File::create(&err_path).expect("stderr file"))
        .spawn()
        .expect("spawn sluice");
    let status = wait_timeout(&mut child, timeout);
    if status.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    let stdout_bytes = std::fs::read(&out_path).unwrap_or_default();
    RunOutput {
        status,
        stdout: String::from_utf8_lossy(&stdout_bytes).into_owned(),
        stdout_bytes,
        stderr: std::fs::read_to_string(&err_path).unwrap_or_default(),
    }
}

fn wait_timeout(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return Some(status);
        }
        if Instant::now() >= deadline {
            return None;
        }
        thread::sleep(Duration::from_millis(10));
    }
}

// ---------------------------------------------------------------------------------------------
// Broker process
// ---------------------------------------------------------------------------------------------

/// A running `sluice serve` process owned by one test.
pub struct Broker {
    child: Option<Child>,
    port: u16,
    data_dir: PathBuf,
    extra_args: Vec<String>,
    /// RLIMIT_NOFILE (soft and hard) the broker process runs under, if set.
    open_files_limit: Option<u64>,
    /// Environment variables the broker process gets besides the harness's own.
    env: Vec<(String, String)>,
    log_path: PathBuf,
    /// Started-lines in the log before the last spawn, while that start is not yet awaited.
    pending_start: Option<usize>,
    // Dropped last: removes the data dir and the log.
    _dir: tempfile::TempDir,
}

impl Broker {
    /// Starts a broker with default options.
    pub fn start() -> Broker {
        Broker::start_with(&[])
    }

    /// Starts a broker with extra `serve` flags (e.g. `["--auto-create-topics", "false"]`).
    pub fn start_with(args: &[&str]) -> Broker {
        Broker::start_limited(None, args)
    }

    /// Starts a broker whose process may open at most `open_files` files (soft and hard
    /// RLIMIT_NOFILE), with extra `serve` flags.
    pub fn start_with_open_files_limit(open_files: u64, args: &[&str]) -> Broker {
        Broker::start_limited(Some(open_files), args)
    }

    /// Starts a broker with these environment variables set (e.g. fault injection), with
    /// extra `serve` flags.
    pub fn start_with_env(env: &[(&str, &str)], args: &[&str]) -> Broker {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let env = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let mut broker = Broker::spawn_built(None, env, |_| args);
        broker.wait_started();
        broker
    }

    fn start_limited(open_files_limit: Option<u64>, args: &[&str]) -> Broker {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let mut broker = Broker::spawn_built(open_files_limit, Vec::new(), |_| args);
        broker.wait_started();
        broker
    }

    /// Starts a broker with extra `serve` flags built from the port of its PLAINTEXT
    /// listener (the one the harness waits for), e.g. to name it in `--listeners`.
    pub fn start_with_port(args: impl FnOnce(u16) -> Vec<String>) -> Broker {
        Broker::start_with_port_and_env(&[], args)
    }

    /// [`Broker::start_with_port`] with extra environment variables for the broker.
    pub fn start_with_port_and_env(
        env: &[(&str, &str)],
        args: impl FnOnce(u16) -> Vec<String>,
    ) -> Broker {
        let env = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let mut broker = Broker::spawn_built(None, env, args);
        broker.wait_started();
        broker
    }

    /// Spawns a broker with extra `serve` flags without waiting for it to start (a cluster
    /// node cannot finish starting before a quorum of its peers runs); call
    /// [`Broker::wait_started`] next.
    pub fn spawn_with(args: &[&str]) -> Broker {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        Broker::spawn_built(None, Vec::new(), |_| args)
    }

    fn spawn_built(
        open_files_limit: Option<u64>,
        env: Vec<(String, String)>,
        args: impl FnOnce(u16) -> Vec<String>,
    ) -> Broker {
        let dir = tempfile::Builder::new()
            .prefix("sluice-e2e-")
            .tempdir()
            .expect("tempdir");
        let data_dir = dir.path().join("data");
        let log_path = dir.path().join("broker.log");
        let port = free_port();
        let mut broker = Broker {
            child: None,
            port,
            data_dir,
            extra_args: args(port),
            open_files_limit,
            env,
            log_path,
            pending_start: None,
            _dir: dir,
        };
        broker.spawn();
        broker
    }

    /// The `serve` arguments this broker runs with.
    pub fn serve_args(&self) -> Vec<String> {
        let mut args: Vec<String> = vec![
            "serve".into(),
            "--listen".into(),
            self.bootstrap(),
            "--data-dir".into(),
            self.data_dir.display().to_string(),
            "--group-initial-rebalance-delay-ms".into(),
            "0".into(),
            // Many brokers run at once: none takes the default HTTP port
            // (tests that need HTTP pass their own --http-listen, which wins).
            "--http-listen".into(),
            "off".into(),
        ];
        args.extend(self.extra_args.iter().cloned());
        args
    }

    fn spawn(&mut self) {
        assert!(self.child.is_none(), "broker already running");
        // The listener is bound before the logs are opened: a start is complete when the
        // broker logs that it started (each start of this broker appends one such line).
        let starts_before = self.log().matches(STARTED_LINE).count();
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .expect("open broker log");
        let mut command = match self.open_files_limit {
            // The shell lowers its own limit, then becomes the broker (same pid).
            Some(limit) => {
                let mut c = Command::new("sh");
                c.args(["-c", &format!("ulimit -n {limit} && exec \"$0\" \"$@\"")])
                    .arg(sluice_bin());
                c
            }
            None => Command::new(sluice_bin()),
        };
        let child = command
            .args(self.serve_args())
            .env("RUST_BACKTRACE", "1")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone log fd"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", sluice_bin().display()));
        self.child = Some(child);
        self.pending_start = Some(starts_before);
    }

    /// Waits until the last spawn of this broker has logged that it started and accepts
    /// connections.
    pub fn wait_started(&mut self) {
        let Some(starts_before) = self.pending_start.take() else {
            return;
        };
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = self.child_mut().try_wait().expect("try_wait") {
                self.child = None;
                panic!("broker exited during startup with {status}");
            }
            if self.log().matches(STARTED_LINE).count() > starts_before
                && TcpStream::connect_timeout(&self.addr(), Duration::from_millis(200)).is_ok()
            {
                return;
            }
            if Instant::now() >= deadline {
                panic!("broker did not accept connections within {START_TIMEOUT:?}");
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    fn child_mut(&mut self) -> &mut Child {
        self.child.as_mut().expect("broker is not running")
    }

    /// `127.0.0.1:PORT`, for `bootstrap.servers`.
    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The process id of the running broker.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("broker is not running").id()
    }

    /// True while the process has not exited.
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            None => false,
            Some(c) => c.try_wait().expect("try_wait").is_none(),
        }
    }

    /// Everything the broker wrote to stdout/stderr so far (all runs).
    pub fn log(&self) -> String {
        let mut s = String::new();
        if let Ok(mut f) = File::open(&self.log_path) {
            let _ = f.read_to_string(&mut s);
        }
        s
    }

    /// SIGKILL the broker and reap it.
    pub fn kill9(&mut self) {
        let mut child = self.child.take().expect("broker is not running");
        child.kill().expect("SIGKILL broker");
        child.wait().expect("wait for killed broker");
    }

    /// SIGSTOP the broker: it stays alive (its sockets accept connections) but does
    /// nothing until [`Broker::resume`].
    pub fn pause(&mut self) {
        self.signal("-STOP");
    }

    /// SIGCONT a paused broker.
    pub fn resume(&mut self) {
        self.signal("-CONT");
    }

    fn signal(&mut self, signal: &str) {
        let pid = self.pid().to_string();
        let st = Command::new("kill")
            .args([signal, &pid])
            .status()
            .expect("run kill");
        assert!(st.success(), "kill {signal} {pid} failed");
    }

    /// Starts the broker again on the same port and data dir (after `kill9` or `stop`).
    pub fn restart(&mut self) {
        if self.child.is_some() {
            self.stop();
        }
        self.spawn();
        self.wait_started();
    }

    /// SIGTERM the broker and wait for it to exit; returns its exit status.
    pub fn stop(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("broker is not running");
        let st = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .expect("run kill -TERM");
        assert!(st.success(), "kill -TERM failed");
        match wait_timeout(&mut child, STOP_TIMEOUT) {
            Some(status) => status,
            None => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("broker did not exit within {STOP_TIMEOUT:?} of SIGTERM");
            }
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if thread::panicking() {
            let log = self.log();
            // Keep the tail: the interesting part is usually at the end.
            let tail: String = if log.len() > 20_000 {
                let mut start = log.len() - 20_000;
                while !log.is_char_boundary(start) {
                    start += 1;
                }
                format!("[... {start} bytes ...]\n{}", &log[start..])
            } else {
                log
            };
            eprintln!(
                "----- sluice log ({} {}) -----\n{tail}\n----- end of sluice log -----",
                sluice_bin().display(),
                self.serve_args().join(" ")
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// A cluster of broker processes
// ---------------------------------------------------------------------------------------------

/// How long a cluster may take to form: every node registered and listed by every node.
pub const FORM_TIMEOUT: Duration = Duration::from_secs(30);

/// `sluice serve` processes forming one cluster on free loopback ports: node ids `1..=n`,
/// each with its own Kafka and cluster listener, data dir, log (printed if the test
/// fails) and rack `rack-<id>`.
pub struct Cluster {
    nodes: BTreeMap<i32, Broker>,
    cluster_ports: BTreeMap<i32, u16>,
    voters: String,
}

impl Cluster {
    /// Starts nodes `1..=n` and waits until the cluster has formed.
    pub fn start(n: i32) -> Cluster {
        let order: Vec<i32> = (1..=n).collect();
        Cluster::start_in_order(&order)
    }

    /// Starts nodes `1..=n` as [`Cluster::start`] does, node `id` with `extra(id)` after
    /// its cluster flags (e.g. its own `--http-listen`).
    pub fn start_with(n: i32, extra: impl Fn(i32) -> Vec<String>) -> Cluster {
        let order: Vec<i32> = (1..=n).collect();
        Cluster::start_in_order_with(&order, extra)
    }

    /// Starts the nodes in `order` (ids `1..=order.len()`), each without waiting for the
    /// others, then waits until every node lists every broker.
    pub fn start_in_order(order: &[i32]) -> Cluster {
        Cluster::start_in_order_with(order, |_| Vec::new())
    }

    fn start_in_order_with(order: &[i32], extra: impl Fn(i32) -> Vec<String>) -> Cluster {
        let cluster_ports: BTreeMap<i32, u16> = order.iter().map(|id| (*id, free_port())).collect();
        let voters = cluster_ports
            .iter()
            .map(|(id, port)| format!("{id}@127.0.0.1:{port}"))
            .collect::<Vec<_>>()
            .join(",");
        let mut cluster = Cluster {
            nodes: BTreeMap::new(),
            cluster_ports,
            voters,
        };
        for id in order {
            let mut args = cluster.node_args(*id);
            args.extend(extra(*id));
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            cluster.nodes.insert(*id, Broker::spawn_with(&args));
        }
        for node in cluster.nodes.values_mut() {
            node.wait_started();
        }
        cluster.wait_formed();
        cluster
    }

    /// The `serve` flags that make a broker node `id` of this cluster.
    pub fn node_args(&self, id: i32) -> Vec<String> {
        vec![
            "--node-id".into(),
            id.to_string(),
            "--cluster-listen".into(),
            format!("127.0.0.1:{}", self.cluster_ports[&id]),
            "--voters".into(),
            self.voters.clone(),
            "--rack".into(),
            format!("rack-{id}"),
        ]
    }

    /// Starts node `id`, which is not among the voters: a broker that joins the running
    /// cluster as a learner of the metadata quorum, with a cluster listener of its own.
    /// Waits until it has started (caught up with the metadata and serving), not until
    /// the other nodes list it.
    pub fn add_learner(&mut self, id: i32) {
        assert!(!self.nodes.contains_key(&id), "node {id} exists already");
        self.cluster_ports.insert(id, free_port());
        let args = self.node_args(id);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut node = Broker::spawn_with(&args);
        node.wait_started();
        self.nodes.insert(id, node);
    }

    /// Takes node `id` out of this cluster's nodes (one that left the cluster), returning
    /// its process (stopped when dropped).
    pub fn remove_node(&mut self, id: i32) -> Broker {
        self.cluster_ports.remove(&id);
        self.nodes.remove(&id).expect("no such node")
    }

    /// `--voters` of this cluster.
    pub fn voters(&self) -> &str {
        &self.voters
    }

    /// The port of node `id`'s cluster listener.
    pub fn cluster_port(&self, id: i32) -> u16 {
        self.cluster_ports[&id]
    }

    /// The node ids.
    pub fn ids(&self) -> Vec<i32> {
        self.nodes.keys().copied().collect()
    }

    pub fn node(&self, id: i32) -> &Broker {
        &self.nodes[&id]
    }

    pub fn node_mut(&mut self, id: i32) -> &mut Broker {
        self.nodes.get_mut(&id).expect("no such node")
    }

    /// Waits until every running node's DescribeCluster lists every node.
    pub fn wait_formed(&mut self) {
        let all = self.ids();
        let running: Vec<i32> = all
            .iter()
            .copied()
            .filter(|id| self.node_mut(*id).is_running())
            .collect();
        let deadline = Instant::now() + FORM_TIMEOUT;
        for id in running {
            loop {
                let listed = self
                    .describe_cluster(id)
                    .map(|r| r.brokers.iter().map(|b| b.broker_id.0).collect::<Vec<_>>());
                if listed.as_ref().is_ok_and(|l| *l == all) {
                    break;
                }
                assert!(
                    self.node_mut(id).is_running(),
                    "node {id} exited while the cluster formed"
                );
                assert!(
                    Instant::now() < deadline,
                    "node {id} did not list brokers {all:?} within {FORM_TIMEOUT:?}: {listed:?}"
                );
                thread::sleep(Duration::from_millis(50));
            }
        }
    }

    /// The Kafka listeners of the nodes that run now, comma-separated, for the
    /// `bootstrap.servers` of a client starting now (librdkafka reports each bootstrap
    /// server it cannot reach as a transport failure).
    pub fn bootstrap(&mut self) -> String {
        self.nodes
            .values_mut()
            .filter_map(|node| node.is_running().then(|| node.bootstrap()))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The partitions of `topic` as node `id`'s Metadata lists them.
    pub fn partitions(&self, id: i32, topic: &str) -> Result<BTreeMap<i32, PartitionView>, String> {
        let md = self.metadata(id, Some(&[topic]))?;
        let t = md.topics.first().ok_or("no topic in the response")?;
        if t.error_code != 0 {
            return Err(format!("topic error {}", t.error_code));
        }
        let ids = |v: &[kafka_protocol::messages::BrokerId]| {
            let mut ids: Vec<i32> = v.iter().map(|b| b.0).collect();
            ids.sort_unstable();
            ids
        };
        Ok(t.partitions
            .iter()
            .map(|p| {
                (
                    p.partition_index,
                    PartitionView {
                        error_code: p.error_code,
                        leader: p.leader_id.0,
                        leader_epoch: p.leader_epoch,
                        replicas: p.replica_nodes.iter().map(|b| b.0).collect(),
                        isr: ids(&p.isr_nodes),
                    },
                )
            })
            .collect())
    }

    /// Waits until every running node lists `partitions` partitions of `topic`, each one
    /// satisfying `ready` (e.g. "has a leader and three in-sync replicas"); returns the view
    /// of the lowest running node id.
    pub fn wait_partitions(
        &mut self,
        topic: &str,
        partitions: i32,
        timeout: Duration,
        what: &str,
        ready: impl Fn(&PartitionView) -> bool,
    ) -> BTreeMap<i32, PartitionView> {
        let deadline = Instant::now() + timeout;
        loop {
            let running: Vec<i32> = self
                .ids()
                .into_iter()
                .filter(|id| self.node_mut(*id).is_running())
                .collect();
            let views: Vec<Result<BTreeMap<i32, PartitionView>, String>> = running
                .iter()
                .map(|id| self.partitions(*id, topic))
                .collect();
            let all_ready = views.iter().all(|v| {
                v.as_ref()
                    .is_ok_and(|v| v.len() == partitions as usize && v.values().all(&ready))
            });
            if all_ready && let Some(Ok(view)) = views.first() {
                return view.clone();
            }
            assert!(
                Instant::now() < deadline,
                "partitions of {topic} not {what} within {timeout:?}: nodes {running:?} list {views:?}"
            );
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// The leader of `topic`'s partition `partition` as the lowest running node knows it.
    pub fn leader_of(&mut self, topic: &str, partition: i32) -> i32 {
        let running = self
            .ids()
            .into_iter()
            .find(|id| self.node_mut(*id).is_running())
            .expect("no node runs");
        let view = self.partitions(running, topic).expect("metadata");
        view.get(&partition).expect("no such partition").leader
    }

    /// DescribeCluster (v0) answered by node `id`.
    pub fn describe_cluster(
        &self,
        id: i32,
    ) -> Result<kafka_protocol::messages::DescribeClusterResponse, String> {
        let req = kafka_protocol::messages::DescribeClusterRequest::default();
        try_roundtrip(self.node(id).addr(), 0, &req, POLL_TIMEOUT)
    }

    /// The quorum leader (DescribeCluster's controller) as node `id` knows it.
    pub fn quorum_leader(&self, id: i32) -> Result<i32, String> {
        self.describe_cluster(id).map(|r| r.controller_id.0)
    }

    /// The brokers node `id`'s Metadata lists, ascending.
    pub fn metadata_brokers(&self, id: i32) -> Result<Vec<i32>, String> {
        let md = self.metadata(id, Some(&[]))?;
        let mut brokers: Vec<i32> = md.brokers.iter().map(|b| b.node_id.0).collect();
        brokers.sort_unstable();
        Ok(brokers)
    }

    /// Waits (at most `timeout`) until the Metadata of every node in `asked` lists exactly
    /// `brokers`.
    pub fn wait_metadata_brokers(&self, asked: &[i32], brokers: &[i32], timeout: Duration) {
        let deadline = Instant::now() + timeout;
        for &id in asked {
            loop {
                let listed = self.metadata_brokers(id);
                if listed.as_deref() == Ok(brokers) {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "node {id}'s Metadata lists {listed:?}, not {brokers:?}, after {timeout:?}"
                );
                thread::sleep(Duration::from_millis(50));
            }
        }
    }

    /// Metadata (v12) of `topics` (all topics when `None`) answered by node `id`.
    pub fn metadata(
        &self,
        id: i32,
        topics: Option<&[&str]>,
    ) -> Result<kafka_protocol::messages::MetadataResponse, String> {
        use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
        let req = kafka_protocol::messages::MetadataRequest::default()
            .with_allow_auto_topic_creation(false)
            .with_topics(topics.map(|names| {
                names
                    .iter()
                    .map(|n| {
                        MetadataRequestTopic::default().with_name(Some(
                            kafka_protocol::messages::TopicName(
                                kafka_protocol::protocol::StrBytes::from_string(n.to_string()),
                            ),
                        ))
                    })
                    .collect()
            }));
        try_roundtrip(self.node(id).addr(), 12, &req, POLL_TIMEOUT)
    }

    /// CreateTopics (v7) of one topic sent to node `id`; its error code and message.
    pub fn create_topic_via(
        &self,
        id: i32,
        topic: &str,
        partitions: i32,
    ) -> Result<(i16, String), String> {
        use kafka_protocol::messages::create_topics_request::CreatableTopic;
        let req = kafka_protocol::messages::CreateTopicsRequest::default()
            .with_timeout_ms(5000)
            .with_topics(vec![
                CreatableTopic::default()
                    .with_name(kafka_protocol::messages::TopicName(
                        kafka_protocol::protocol::StrBytes::from_string(topic.to_string()),
                    ))
                    .with_num_partitions(partitions)
                    .with_replication_factor(1),
            ]);
        let resp = try_roundtrip(self.node(id).addr(), 7, &req, CALL_TIMEOUT)?;
        let t = resp.topics.first().ok_or("no topic in the response")?;
        Ok((
            t.error_code,
            t.error_message.as_deref().unwrap_or_default().to_string(),
        ))
    }
}

/// One partition as a node's Metadata lists it (replica ids in assignment order, ISR
/// sorted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionView {
    pub error_code: i16,
    pub leader: i32,
    pub leader_epoch: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
}

/// How long a poll of a node that may be starting or gone waits for its answer.
pub const POLL_TIMEOUT: Duration = Duration::from_secs(3);

/// Sends one request on a new connection and decodes the answer; errors (refused,
/// closed, no answer within `timeout`, undecodable) are returned, for polling a node that
/// may be starting or gone.
pub fn try_roundtrip<R: kafka_protocol::protocol::Request>(
    addr: SocketAddr,
    version: i16,
    body: &R,
    timeout: Duration,
) -> Result<R::Response, String> {
    use bytes::Buf;
    use kafka_protocol::protocol::Decodable;
    let mut stream = TcpStream::connect_timeout(&addr, timeout).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    std::io::Write::write_all(
        &mut stream,
        &raw::frame(&raw::encode_request(version, 1, body)),
    )
    .map_err(|e| e.to_string())?;
    let mut conn = raw::RawConn { stream };
    let body = conn
        .read_frame()
        .map_err(|e| e.to_string())?
        .ok_or("closed without an answer")?;
    let mut buf = bytes::Bytes::from(body);
    let api_key = kafka_protocol::messages::ApiKey::try_from(R::KEY).map_err(|_| "api key")?;
    kafka_protocol::messages::ResponseHeader::decode(
        &mut buf,
        api_key.response_header_version(version),
    )
    .map_err(|e| e.to_string())?;
    let response = R::Response::decode(&mut buf, version).map_err(|e| e.to_string())?;
    if buf.has_remaining() {
        return Err("trailing bytes after the response".into());
    }
    Ok(response)
}

// ---------------------------------------------------------------------------------------------
// Clients
// ---------------------------------------------------------------------------------------------

/// Base librdkafka configuration with short timeouts.
pub fn client_config(bootstrap: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap)
        .set("socket.timeout.ms", "5000")
        .set("socket.connection.setup.timeout.ms", "5000")
        .set("reconnect.backoff.ms", "20")
        .set("reconnect.backoff.max.ms", "500")
        .set("retry.backoff.ms", "50")
        .set("retry.backoff.max.ms", "500")
        .set("topic.metadata.refresh.interval.ms", "1000")
        .set("broker.address.family", "v4")
        .set("log_level", "3");
    c
}

fn apply(c: &mut ClientConfig, extra: &[(&str, &str)]) {
    for (k, v) in extra {
        c.set(*k, *v);
    }
}

/// One delivery report, simplified.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// The id passed as the delivery opaque when sending.
    pub id: usize,
    /// `Ok((partition, offset))` or the error.
    pub result: Result<(i32, i64), KafkaError>,
}

/// A producer context that records every delivery report.
#[derive(Default)]
pub struct Collecting {
    deliveries: Mutex<Vec<Delivery>>,
    changed: Condvar,
    acked: AtomicUsize,
}

impl Collecting {
    /// Number of successful deliveries so far.
    pub fn acked(&self) -> usize {
        self.acked.load(Ordering::SeqCst)
    }

    /// All delivery reports so far, in the order they arrived.
    pub fn deliveries(&self) -> Vec<Delivery> {
        self.deliveries.lock().unwrap().clone()
    }

    /// Waits until at least `n` reports (successful or not) arrived.
    pub fn wait_reports(&self, n: usize, timeout: Duration) -> bool {
        let guard = self.deliveries.lock().unwrap();
        let (guard, _) = self
            .changed
            .wait_timeout_while(guard, timeout, |d| d.len() < n)
            .unwrap();
        guard.len() >= n
    }

    /// Waits until at least `n` records were acknowledged.
    pub fn wait_acked(&self, n: usize, timeout: Duration) -> bool {
        let guard = self.deliveries.lock().unwrap();
        let (_guard, _) = self
            .changed
            .wait_timeout_while(guard, timeout, |_| self.acked() < n)
            .unwrap();
        self.acked() >= n
    }
}

impl ClientContext for Collecting {}

impl ProducerContext for Collecting {
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, id: usize) {
        let result = match result {
            Ok(m) => Ok((m.partition(), m.offset())),
            Err((e, _)) => Err(e.clone()),
        };
        let mut d = self.deliveries.lock().unwrap();
        if result.is_ok() {
            self.acked.fetch_add(1, Ordering::SeqCst);
        }
        d.push(Delivery { id, result });
        self.changed.notify_all();
    }
}

/// The id a test record carries in its payload (`record-<id>`).
pub fn record_id(m: &OwnedMessage) -> usize {
    let payload = std::str::from_utf8(m.payload().expect("payload")).expect("utf-8 payload");
    payload
        .strip_prefix("record-")
        .and_then(|id| id.parse().ok())
        .unwrap_or_else(|| panic!("not a test record: {payload:?}"))
}

/// The checker of a producer that sent records `record-<id>` for ids `0..total`, id to
/// partition `id % partitions`, in id order: every send was acknowledged, and the log
/// holds each record exactly once, at the offset its acknowledgement named, on the
/// partition it was sent to, in send order per partition, at consecutive offsets from 0.
pub fn check_exactly_once(
    deliveries: &[Delivery],
    log: &BTreeMap<i32, Vec<OwnedMessage>>,
    total: usize,
    partitions: usize,
) {
    let failed: Vec<&Delivery> = deliveries.iter().filter(|d| d.result.is_err()).collect();
    assert!(failed.is_empty(), "failed deliveries: {failed:?}");
    assert_eq!(deliveries.len(), total, "one delivery report per record");
    let mut stored: BTreeMap<usize, (i32, i64)> = BTreeMap::new();
    for (partition, records) in log {
        let mut previous: Option<usize> = None;
        for (index, m) in records.iter().enumerate() {
            let id = record_id(m);
            assert_eq!(
                m.offset(),
                index as i64,
                "offsets of partition {partition} have a gap"
            );
            assert_eq!(
                id % partitions,
                *partition as usize,
                "record {id} on the wrong partition"
            );
            assert!(
                previous < Some(id),
                "partition {partition}: record {id} after {previous:?}"
            );
            previous = Some(id);
            let at = (*partition, m.offset());
            if let Some(first) = stored.insert(id, at) {
                panic!("record {id} stored twice: at {first:?} and {at:?}");
            }
        }
    }
    for d in deliveries {
        let acked = d.result.clone().unwrap();
        assert_eq!(
            stored.get(&d.id),
            Some(&acked),
            "record {} was acknowledged at {acked:?}",
            d.id
        );
    }
    assert_eq!(
        stored.len(),
        total,
        "records in the log that were never sent"
    );
}

/// A producer whose delivery reports are collected (send with
/// `BaseRecord::with_opaque_to(topic, id)`).
pub type TestProducer = ThreadedProducer<Collecting>;

/// Sends `record-<id>` with key `key-<id>` to `partition` of `topic`, the delivery report
/// tagged `id` (what [`check_exactly_once`] reads back), waiting while the queue is full.
pub fn send_numbered(producer: &TestProducer, topic: &str, partition: i32, id: usize) {
    let payload = format!("record-{id}");
    let key = format!("key-{id}");
    loop {
        let record = BaseRecord::with_opaque_to(topic, id)
            .partition(partition)
            .key(&key)
            .payload(&payload);
        match producer.send(record) {
            Ok(()) => return,
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                std::thread::sleep(Duration::from_millis(5))
            }
            Err((e, _)) => panic!("send record {id}: {e}"),
        }
    }
}

/// A producer with short timeouts, no idempotence and `extra` settings on top.
pub fn producer(bootstrap: &str, extra: &[(&str, &str)]) -> TestProducer {
    let mut c = client_config(bootstrap);
    c.set("message.timeout.ms", "15000")
        .set("request.timeout.ms", "10000")
        .set("enable.idempotence", "false")
        .set("linger.ms", "5")
        .set("queue.buffering.max.messages", "200000");
    apply(&mut c, extra);
    c.create_with_context(Collecting::default())
        .expect("create producer")
}

/// A consumer for `assign` (librdkafka wants a group id even then; it never joins),
/// reporting partition EOF.
pub fn consumer(bootstrap: &str, extra: &[(&str, &str)]) -> BaseConsumer {
    let mut c = client_config(bootstrap);
    c.set("group.id", "sluice-e2e-assign")
        .set("enable.partition.eof", "true")
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("fetch.wait.max.ms", "100")
        .set("check.crcs", "true");
    apply(&mut c, extra);
    c.create().expect("create consumer")
}

pub fn admin(bootstrap: &str) -> AdminClient<DefaultClientContext> {
    client_config(bootstrap)
        .create()
        .expect("create admin client")
}

pub fn admin_opts() -> AdminOptions {
    AdminOptions::new()
        .request_timeout(Some(CALL_TIMEOUT))
        .operation_timeout(Some(Duration::from_secs(5)))
}

/// Runs a future (admin calls) to completion on this thread.
pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    futures::executor::block_on(f)
}

/// Creates a topic with replication factor 1 and asserts success.
pub fn create_topic(bootstrap: &str, name: &str, partitions: i32, configs: &[(&str, &str)]) {
    let admin = admin(bootstrap);
    let mut t = NewTopic::new(name, partitions, TopicReplication::Fixed(1));
    for (k, v) in configs {
        t = t.set(k, v);
    }
    let res = block_on(admin.create_topics([&t], &admin_opts())).expect("create_topics");
    assert_eq!(res.len(), 1);
    assert_eq!(res[0], Ok(name.to_string()), "create topic {name}");
}

/// Waits until the sum of the high watermarks of `partitions` partitions of `topic` is `total`.
pub fn wait_high_watermarks(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    total: i64,
    timeout: Duration,
) {
    let c = consumer(bootstrap, &[]);
    let deadline = Instant::now() + timeout;
    let mut last = None;
    loop {
        let mut sum = 0;
        let mut ok = true;
        for p in 0..partitions {
            match c.fetch_watermarks(topic, p, CALL_TIMEOUT) {
                Ok((_, high)) => sum += high,
                Err(e) => {
                    ok = false;
                    last = Some(format!("{e}"));
                }
            }
        }
        if ok {
            last = Some(format!("sum of high watermarks {sum}"));
            if sum == total {
                return;
            }
        }
        assert!(
            Instant::now() < deadline,
            "high watermarks of {topic} did not reach {total}: {last:?}"
        );
        thread::sleep(Duration::from_millis(20));
    }
}

/// Reads partitions `0..partitions` of `topic` from the beginning until every partition
/// reported EOF; returns the records of each partition in order.
pub fn consume_all(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    timeout: Duration,
) -> BTreeMap<i32, Vec<OwnedMessage>> {
    consume_all_with(bootstrap, &[], topic, partitions, timeout)
}

/// [`consume_all`] with `extra` consumer settings (e.g. TLS and SASL).
pub fn consume_all_with(
    bootstrap: &str,
    extra: &[(&str, &str)],
    topic: &str,
    partitions: i32,
    timeout: Duration,
) -> BTreeMap<i32, Vec<OwnedMessage>> {
    let c = consumer(bootstrap, extra);
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .expect("add partition");
    }
    c.assign(&tpl).expect("assign");
    let mut out: BTreeMap<i32, Vec<OwnedMessage>> = (0..partitions).map(|p| (p, vec![])).collect();
    let mut eof = std::collections::BTreeSet::new();
    let deadline = Instant::now() + timeout;
    while eof.len() < partitions as usize {
        let now = Instant::now();
        assert!(
            now < deadline,
            "consume {topic}: only partitions {eof:?} reached EOF within {timeout:?}; got {:?} records",
            out.iter().map(|(p, v)| (*p, v.len())).collect::<Vec<_>>()
        );
        match c.poll(deadline - now) {
            None => {}
            Some(Ok(m)) => {
                eof.remove(&m.partition());
                out.entry(m.partition()).or_default().push(m.detach());
            }
            Some(Err(KafkaError::PartitionEOF(p))) => {
                eof.insert(p);
            }
            Some(Err(e)) => panic!("consume {topic}: {e}"),
        }
    }
    out
}

/// Asserts that the broker answers a metadata request from a fresh rdkafka client and
/// accepts and serves a produced record (auto-creating `topic` is not assumed: it is
/// created when missing).
pub fn assert_serving(bootstrap: &str, topic: &str) {
    let admin = admin(bootstrap);
    let md = admin
        .inner()
        .fetch_metadata(None, CALL_TIMEOUT)
        .expect("metadata after bad input");
    assert_eq!(md.brokers().len(), 1, "one broker in metadata");
    assert_eq!(md.brokers()[0].id(), 1);
    if !md.topics().iter().any(|t| t.name() == topic) {
        create_topic(bootstrap, topic, 1, &[]);
    }
    let (low, high) = consumer(bootstrap, &[])
        .fetch_watermarks(topic, 0, CALL_TIMEOUT)
        .expect("watermarks");
    assert_eq!(low, 0);
    let p = producer(bootstrap, &[("acks", "all")]);
    p.send(
        rdkafka::producer::BaseRecord::with_opaque_to(topic, 0)
            .key("k")
            .payload("still alive"),
    )
    .map_err(|(e, _)| e)
    .expect("enqueue");
    p.flush(CALL_TIMEOUT).expect("flush");
    let d = p.context().deliveries();
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].result, Ok((0, high)), "produce after bad input");
    let got = consume_all(bootstrap, topic, 1, CALL_TIMEOUT);
    let last = got[&0].last().expect("record");
    assert_eq!(last.offset(), high);
    assert_eq!(last.payload(), Some(&b"still alive"[..]));
}

//! The cluster under test: `sluice serve` processes on loopback, each with its own data
//! dir, log and fault proxies ([`crate::proxy`]: one its peers dial, one clients dial), and
//! what their Kafka listeners say about brokers, the quorum leader and partition leaders.

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use kafka_protocol::messages::{
    BrokerId, DescribeClusterRequest, MetadataRequest, TopicName,
    metadata_request::MetadataRequestTopic,
};
use kafka_protocol::protocol::StrBytes;
use rustix::process::{Pid, Signal, kill_process};
use sluice_e2e::{free_port, try_roundtrip};
use sluice_storage::sync_ledger::{self, Lost};

use crate::proxy::{Dialers, Faults, NodeId, Proxy};

/// Where nodes listen (Kafka and cluster listeners).
const NODE_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 1);
/// Where the proxies listen: `--voters` and each node's advertised Kafka listener name
/// these addresses.
const PROXY_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);
/// How long one metadata or DescribeCluster call may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(3);

/// A partition as one node's Metadata lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionState {
    pub leader: NodeId,
    pub replicas: Vec<NodeId>,
    /// Sorted.
    pub isr: Vec<NodeId>,
}

/// One `sluice serve` process, started and stopped many times over a run.
pub struct Node {
    pub id: NodeId,
    kafka_port: u16,
    cluster_port: u16,
    dir: PathBuf,
    child: Option<Child>,
    paused: bool,
    /// The proxy its peers dial.
    proxy: Proxy,
    /// The proxy clients dial (after the bootstrap, which goes to the node itself).
    client_proxy: Proxy,
    /// How far its wall clock is shifted from the system's, from its next start
    /// (`SLUICE_FAULT_CLOCK_SKEW_MS`); 0 is the true clock.
    clock_skew_ms: i64,
}

impl Node {
    /// `127.0.0.1:port` of its Kafka listener.
    pub fn bootstrap(&self) -> String {
        SocketAddr::from((NODE_IP, self.kafka_port)).to_string()
    }

    /// Where it tells clients to reach its Kafka listener: its client proxy.
    fn advertised(&self) -> String {
        format!(
            "PLAINTEXT://{}",
            SocketAddr::from((PROXY_IP, self.kafka_port))
        )
    }

    /// Opens both its proxies.
    fn open_proxies(&self) -> anyhow::Result<()> {
        for proxy in [&self.proxy, &self.client_proxy] {
            proxy
                .open()
                .with_context(|| format!("node {}: cannot open its proxy", self.id))?;
        }
        Ok(())
    }

    /// Closes both its proxies: its listeners disappear as the node's own do.
    fn close_proxies(&self) {
        self.proxy.close();
        self.client_proxy.close();
    }

    fn kafka_addr(&self) -> SocketAddr {
        SocketAddr::from((NODE_IP, self.kafka_port))
    }

    fn log_path(&self) -> PathBuf {
        self.dir.join("node.log")
    }

    /// Where the node records each sync of its log files, so that a power loss can be
    /// simulated ([`Node::lose_unsynced`]).
    fn sync_ledger(&self) -> PathBuf {
        self.dir.join("sync-ledger")
    }

    /// What a power loss does to the stopped node's disk: every log file is cut back to
    /// what its last completed sync covered (`sluice_storage::sync_ledger`).
    pub fn lose_unsynced(&self) -> anyhow::Result<Lost> {
        anyhow::ensure!(self.child.is_none(), "node {} still runs", self.id);
        sync_ledger::lose_unsynced(&self.sync_ledger())
            .with_context(|| format!("node {}: cannot simulate a power loss", self.id))
    }

    /// Whether the process runs (paused or not).
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    pub fn is_paused(&self) -> bool {
        self.paused
    }

    fn start(&mut self, bin: &Path, voters: &str) -> anyhow::Result<()> {
        if self.is_running() {
            return Ok(());
        }
        self.open_proxies()?;
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())?;
        let child = Command::new(bin)
            .args(["serve", "--listen", &self.bootstrap()])
            .args(["--advertised-listeners", &self.advertised(), "--data-dir"])
            .arg(self.dir.join("data"))
            .args([
                "--http-listen",
                "off",
                "--group-initial-rebalance-delay-ms",
                "0",
            ])
            .args(["--node-id", &self.id.to_string()])
            .args(["--cluster-listen"])
            .arg(SocketAddr::from((NODE_IP, self.cluster_port)).to_string())
            .args(["--voters", voters, "--rack", &format!("rack-{}", self.id)])
            .env("RUST_BACKTRACE", "1")
            .env(sync_ledger::ENV, self.sync_ledger())
            .envs(
                (self.clock_skew_ms != 0)
                    .then(|| ("SLUICE_FAULT_CLOCK_SKEW_MS", self.clock_skew_ms.to_string())),
            )
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("cannot run {}", bin.display()))?;
        self.child = Some(child);
        self.paused = false;
        Ok(())
    }

    fn signal(&self, signal: Signal) -> anyhow::Result<()> {
        let child = self.child.as_ref().context("the node is not running")?;
        kill_process(Pid::from_child(child), signal)
            .with_context(|| format!("cannot signal node {}", self.id))
    }

    /// SIGKILL, and its listeners disappear (its proxies close).
    pub fn kill9(&mut self) -> anyhow::Result<()> {
        self.close_proxies();
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            child.wait()?;
        }
        self.paused = false;
        Ok(())
    }

    /// Whether its wall clock is shifted.
    pub fn is_skewed(&self) -> bool {
        self.clock_skew_ms != 0
    }

    /// Shifts its wall clock by `skew_ms` from its next start on.
    pub fn set_clock_skew(&mut self, skew_ms: i64) {
        self.clock_skew_ms = skew_ms;
    }

    /// SIGSTOP.
    pub fn pause(&mut self) -> anyhow::Result<()> {
        self.signal(Signal::STOP)?;
        self.paused = true;
        Ok(())
    }

    /// SIGCONT.
    pub fn resume(&mut self) -> anyhow::Result<()> {
        if self.paused {
            self.signal(Signal::CONT)?;
            self.paused = false;
        }
        Ok(())
    }

    /// SIGTERM (a controlled shutdown) and waits up to `timeout` for the exit; a node still
    /// running then is killed, and that is an error.
    pub fn terminate(&mut self, timeout: Duration) -> anyhow::Result<ExitStatus> {
        self.resume()?;
        self.signal(Signal::TERM)?;
        let deadline = Instant::now() + timeout;
        let child = self.child.as_mut().context("the node is not running")?;
        loop {
            if let Some(status) = child.try_wait()? {
                self.child = None;
                self.close_proxies();
                return Ok(status);
            }
            if Instant::now() >= deadline {
                self.kill9()?;
                bail!(
                    "node {} did not stop within {timeout:?} of SIGTERM",
                    self.id
                );
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// The lines of its log that report a panic.
    pub fn panics(&self) -> Vec<String> {
        let Ok(file) = std::fs::File::open(self.log_path()) else {
            return Vec::new();
        };
        BufReader::new(file)
            .lines()
            .map_while(Result::ok)
            .filter(|line| line.contains("panicked at"))
            .collect()
    }
}

/// Node `id` under `dir` (not started), behind its two proxies.
fn new_node(
    id: NodeId,
    dir: &Path,
    faults: &Arc<Faults>,
    runtime: &tokio::runtime::Handle,
) -> anyhow::Result<Node> {
    let (cluster_port, kafka_port) = (free_port(), free_port());
    let node_dir = dir.join(format!("node-{id}"));
    std::fs::create_dir_all(&node_dir)?;
    let proxy = |dialers, port| {
        Proxy::new(
            id,
            dialers,
            SocketAddr::from((PROXY_IP, port)),
            SocketAddr::from((NODE_IP, port)),
            faults.clone(),
            runtime.clone(),
        )
    };
    Ok(Node {
        id,
        kafka_port,
        cluster_port,
        dir: node_dir,
        child: None,
        paused: false,
        proxy: proxy(Dialers::Nodes, cluster_port),
        client_proxy: proxy(Dialers::Clients, kafka_port),
        clock_skew_ms: 0,
    })
}

/// The nodes of one cluster.
pub struct Cluster {
    nodes: Vec<Node>,
    /// Nodes that left the cluster for good (their logs are still checked for panics).
    departed: Vec<Node>,
    /// The id the next node to join gets: ids are never reused.
    next_id: NodeId,
    voters: String,
    runtime: tokio::runtime::Handle,
    bin: PathBuf,
    /// Where the nodes' directories are (and the harness's own files).
    dir: PathBuf,
    faults: Arc<Faults>,
}

impl Cluster {
    /// Creates nodes `1..=n` under `dir` (not started), each behind a proxy.
    pub fn new(
        n: i32,
        bin: PathBuf,
        dir: &Path,
        faults: Arc<Faults>,
        runtime: tokio::runtime::Handle,
    ) -> anyhow::Result<Cluster> {
        let nodes = (1..=n)
            .map(|id| new_node(id, dir, &faults, &runtime))
            .collect::<anyhow::Result<Vec<Node>>>()?;
        let voters = nodes
            .iter()
            .map(|n| format!("{}@{PROXY_IP}:{}", n.id, n.cluster_port))
            .collect::<Vec<_>>()
            .join(",");
        Ok(Cluster {
            nodes,
            departed: Vec::new(),
            next_id: n + 1,
            voters,
            runtime,
            bin,
            dir: dir.to_path_buf(),
            faults,
        })
    }

    /// Starts a node with a new id, outside `--voters`: it joins the running cluster as a
    /// broker (a learner of the metadata quorum). Returns its id once every running node
    /// lists it, or an error after `timeout`. Its Kafka listener is behind its client
    /// proxy like every node's; its cluster listener is reached directly (a learner tells
    /// the quorum the address it listens on), so link faults do not reach it.
    pub fn add_node(&mut self, timeout: Duration) -> anyhow::Result<NodeId> {
        let id = self.next_id;
        self.next_id += 1;
        let node = new_node(id, &self.dir, &self.faults, &self.runtime)?;
        self.nodes.push(node);
        self.start(id)?;
        let start = Instant::now();
        loop {
            let listed_everywhere = self.live().into_iter().all(|at| {
                self.describe_cluster(at)
                    .is_ok_and(|(_, brokers)| brokers.contains(&id))
            });
            if listed_everywhere {
                return Ok(id);
            }
            if start.elapsed() > timeout {
                bail!("node {id} did not join within {timeout:?}");
            }
            thread::sleep(Duration::from_millis(200));
        }
    }

    /// Stops node `id` (SIGTERM) for good, after it left the cluster (`sluice cluster
    /// unregister`): it is no longer one of the nodes.
    pub fn remove_node(&mut self, id: NodeId, timeout: Duration) -> anyhow::Result<()> {
        let at = self
            .nodes
            .iter()
            .position(|n| n.id == id)
            .with_context(|| format!("no node {id}"))?;
        let mut node = self.nodes.remove(at);
        let status = node.terminate(timeout);
        self.departed.push(node);
        let status = status?;
        anyhow::ensure!(
            status.success(),
            "node {id} exited with {status} after SIGTERM"
        );
        Ok(())
    }

    /// Every node that ran in this cluster, departed ones too.
    pub fn every_node(&self) -> impl Iterator<Item = &Node> {
        self.nodes.iter().chain(&self.departed)
    }

    pub fn ids(&self) -> Vec<NodeId> {
        self.nodes.iter().map(|n| n.id).collect()
    }

    /// The run's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn faults(&self) -> &Arc<Faults> {
        &self.faults
    }

    /// Runs `sluice ARGS --brokers <every node>` (an admin command of the CLI) and returns
    /// its standard output, or why it failed.
    pub fn cli(&self, args: &[&str]) -> anyhow::Result<String> {
        let out = Command::new(&self.bin)
            .args(args)
            .args(["--brokers", &self.bootstrap()])
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("cannot run {}", self.bin.display()))?;
        if !out.status.success() {
            bail!(
                "sluice {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    pub fn node_mut(&mut self, id: NodeId) -> anyhow::Result<&mut Node> {
        self.nodes
            .iter_mut()
            .find(|n| n.id == id)
            .with_context(|| format!("no node {id}"))
    }

    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    /// Every node's Kafka listener, for `bootstrap.servers`.
    pub fn bootstrap(&self) -> String {
        self.nodes
            .iter()
            .map(Node::bootstrap)
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Starts node `id` unless it runs.
    pub fn start(&mut self, id: NodeId) -> anyhow::Result<()> {
        let (bin, voters) = (self.bin.clone(), self.voters.clone());
        self.node_mut(id)?.start(&bin, &voters)
    }

    /// Every node runs with the true clock and none is paused, and no link is faulty. A
    /// node with a shifted clock is killed and restarted with the true one.
    pub fn heal(&mut self) -> anyhow::Result<()> {
        self.faults.heal_all();
        for id in self.ids() {
            let node = self.node_mut(id)?;
            node.resume()?;
            if node.is_skewed() {
                node.kill9()?;
                node.set_clock_skew(0);
            }
            if !node.is_running() {
                self.start(id)?;
            }
        }
        Ok(())
    }

    /// The running nodes, not paused.
    pub fn live(&mut self) -> Vec<NodeId> {
        self.nodes
            .iter_mut()
            .filter_map(|n| (n.is_running() && !n.is_paused()).then_some(n.id))
            .collect()
    }

    /// DescribeCluster by node `id`: (controller, brokers listed).
    pub fn describe_cluster(&self, id: NodeId) -> anyhow::Result<(NodeId, Vec<NodeId>)> {
        let addr = self.addr(id)?;
        let r = try_roundtrip(addr, 0, &DescribeClusterRequest::default(), CALL_TIMEOUT)
            .map_err(anyhow::Error::msg)?;
        Ok((
            r.controller_id.0,
            r.brokers.iter().map(|b| b.broker_id.0).collect(),
        ))
    }

    fn addr(&self, id: NodeId) -> anyhow::Result<SocketAddr> {
        self.nodes
            .iter()
            .find(|n| n.id == id)
            .map(Node::kafka_addr)
            .with_context(|| format!("no node {id}"))
    }

    /// The partitions of `topic` as node `id`'s Metadata lists them.
    pub fn partitions(
        &self,
        id: NodeId,
        topic: &str,
    ) -> anyhow::Result<BTreeMap<i32, PartitionState>> {
        let request = MetadataRequest::default()
            .with_allow_auto_topic_creation(false)
            .with_topics(Some(vec![MetadataRequestTopic::default().with_name(Some(
                TopicName(StrBytes::from_string(topic.to_string())),
            ))]));
        let md = try_roundtrip(self.addr(id)?, 12, &request, CALL_TIMEOUT)
            .map_err(anyhow::Error::msg)?;
        let t = md.topics.first().context("no topic in the answer")?;
        if t.error_code != 0 {
            bail!("topic error {}", t.error_code);
        }
        let ids = |v: &[BrokerId]| {
            let mut ids: Vec<NodeId> = v.iter().map(|b| b.0).collect();
            ids.sort_unstable();
            ids
        };
        Ok(t.partitions
            .iter()
            .map(|p| {
                (
                    p.partition_index,
                    PartitionState {
                        leader: p.leader_id.0,
                        replicas: p.replica_nodes.iter().map(|b| b.0).collect(),
                        isr: ids(&p.isr_nodes),
                    },
                )
            })
            .collect())
    }

    /// The quorum leader as the first live node that answers knows it.
    pub fn quorum_leader(&mut self) -> Option<NodeId> {
        self.live()
            .into_iter()
            .find_map(|id| self.describe_cluster(id).ok())
            .map(|(controller, _)| controller)
            .filter(|c| *c >= 0)
    }

    /// The leader of `partition` of `topic` as the first live node that answers knows it.
    pub fn partition_leader(&mut self, topic: &str, partition: i32) -> Option<NodeId> {
        self.live()
            .into_iter()
            .find_map(|id| self.partitions(id, topic).ok())
            .and_then(|ps| ps.get(&partition).map(|p| p.leader))
            .filter(|l| *l >= 0)
    }

    /// Why the cluster is not fully healthy yet: every node listing every broker and, when
    /// `topic` is given, `partitions` partitions each led with every replica in sync.
    pub fn unhealthy(&mut self, topic: Option<(&str, i32)>) -> Option<String> {
        let all = self.ids();
        for id in all.clone() {
            if !self
                .node_mut(id)
                .is_ok_and(|n| n.is_running() && !n.is_paused())
            {
                return Some(format!("node {id} is not running"));
            }
            match self.describe_cluster(id) {
                Ok((_, brokers)) if brokers == all => {}
                Ok((_, brokers)) => return Some(format!("node {id} lists brokers {brokers:?}")),
                Err(e) => return Some(format!("node {id}: {e}")),
            }
            let Some((topic, count)) = topic else {
                continue;
            };
            match self.partitions(id, topic) {
                Ok(ps) if ps.len() == count as usize => {
                    if let Some((p, state)) = ps.iter().find(|(_, s)| {
                        let mut replicas = s.replicas.clone();
                        replicas.sort_unstable();
                        s.leader < 0 || s.isr != replicas
                    }) {
                        return Some(format!("node {id}: partition {p} is {state:?}"));
                    }
                }
                Ok(ps) => return Some(format!("node {id} lists {} partitions", ps.len())),
                Err(e) => return Some(format!("node {id}: {e}")),
            }
        }
        None
    }

    /// Waits up to `timeout` until [`Cluster::unhealthy`] has nothing to say.
    pub fn wait_healthy(
        &mut self,
        topic: Option<(&str, i32)>,
        timeout: Duration,
    ) -> anyhow::Result<Duration> {
        let start = Instant::now();
        loop {
            let Some(why) = self.unhealthy(topic) else {
                return Ok(start.elapsed());
            };
            if start.elapsed() > timeout {
                bail!("the cluster is not healthy after {timeout:?}: {why}");
            }
            thread::sleep(Duration::from_millis(100));
        }
    }

    /// Kills every node (end of a run).
    pub fn kill_all(&mut self) {
        for node in &mut self.nodes {
            let _ = node.kill9();
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.kill_all();
    }
}

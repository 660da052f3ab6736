//! The nemesis: faults applied to the cluster one at a time, chosen from the run's seed.
//! Every fault is healed before the next begins (killed nodes restart, paused ones
//! continue, links heal), so a run is a sequence of fault → heal → settle → quiet.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::thread;
use std::time::Duration;

use anyhow::Context;

use crate::nodes::Cluster;
use crate::proxy::{CLIENTS, LinkFault, NodeId};
use crate::rng::Rng;

/// A kind of fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum FaultKind {
    /// kill -9 of a random node, restarted after the hold.
    Kill,
    /// kill -9 of the leader of a random partition.
    KillLeader,
    /// kill -9 of the quorum leader (the controller).
    KillController,
    /// SIGSTOP of a random node for the hold, then SIGCONT.
    Pause,
    /// One node cut off from every other node (blackhole both ways).
    Isolate,
    /// A random minority (⌊(n−1)/2⌋ nodes; one of three) cut off from the majority.
    Split,
    /// Two halves that share one node, which alone still talks to both (Jepsen's bridge):
    /// each half alone is a minority, and the bridge node is in every majority.
    Bridge,
    /// Everything a random node sends to the other nodes is held (blackhole one way): it
    /// still hears them, they no longer hear it — its requests and its answers alike.
    OneWay,
    /// Every connection to and from a random node reset, again and again, for the hold.
    Reset,
    /// Every node-to-node link delayed (50–250 ms, jitter up to 100 ms) for the hold.
    Delay,
    /// Every link to and from a random node throttled to 16–256 KiB/s for the hold.
    Throttle,
    /// Clients cut off from a random node (blackhole both ways) for the hold; the node
    /// still talks to its peers, so it keeps its leaderships.
    ClientIsolate,
    /// Every client connection to a random node reset, again and again, for the hold.
    ClientReset,
    /// SIGTERM, restart and wait for full in-sync replicas, node after node.
    RollingRestart,
    /// kill -9 of a random node, restarted with its wall clock 10–60 s ahead or behind
    /// (`SLUICE_FAULT_CLOCK_SKEW_MS`); healing restarts it with the true clock.
    ClockSkew,
    /// A new node joins the running cluster (a learner of the metadata quorum), and a
    /// random partition's replica moves onto it; after the hold it is decommissioned (its
    /// replicas moved off), unregistered and stopped for good.
    JoinLeave,
    /// Every node at once loses power: kill -9 of all of them, and each log file cut back
    /// to what its last completed sync covered (a storage test mode: the node records its
    /// syncs, `SLUICE_FAULT_SYNC_LEDGER`); restarted after the hold.
    PowerLoss,
    /// A random partition's replicas moved to a random other set of nodes (KIP-455, with
    /// `sluice cluster reassign`), and at once kill -9 of a random node among the old and
    /// new replicas; after healing the move must complete.
    ReassignKill,
}

impl FaultKind {
    pub const ALL: [FaultKind; 18] = [
        FaultKind::Kill,
        FaultKind::KillLeader,
        FaultKind::KillController,
        FaultKind::Pause,
        FaultKind::Isolate,
        FaultKind::Split,
        FaultKind::Bridge,
        FaultKind::OneWay,
        FaultKind::Reset,
        FaultKind::Delay,
        FaultKind::Throttle,
        FaultKind::ClientIsolate,
        FaultKind::ClientReset,
        FaultKind::RollingRestart,
        FaultKind::ClockSkew,
        FaultKind::ReassignKill,
        FaultKind::PowerLoss,
        FaultKind::JoinLeave,
    ];

    pub fn name(self) -> &'static str {
        match self {
            FaultKind::Kill => "kill",
            FaultKind::KillLeader => "kill-leader",
            FaultKind::KillController => "kill-controller",
            FaultKind::Pause => "pause",
            FaultKind::Isolate => "isolate",
            FaultKind::Split => "split",
            FaultKind::Bridge => "bridge",
            FaultKind::OneWay => "one-way",
            FaultKind::Reset => "reset",
            FaultKind::Delay => "delay",
            FaultKind::Throttle => "throttle",
            FaultKind::ClientIsolate => "client-isolate",
            FaultKind::ClientReset => "client-reset",
            FaultKind::RollingRestart => "rolling-restart",
            FaultKind::ClockSkew => "clock-skew",
            FaultKind::ReassignKill => "reassign-kill",
            FaultKind::PowerLoss => "power-loss",
            FaultKind::JoinLeave => "join-leave",
        }
    }
}

impl fmt::Display for FaultKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for FaultKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        FaultKind::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = FaultKind::ALL.iter().map(|k| k.name()).collect();
                format!("unknown fault '{s}'; one of {}", names.join(", "))
            })
    }
}

/// Which kinds come next: every kind once per round, in a seeded order, so that a short
/// run sees each of them.
pub struct Schedule {
    kinds: Vec<FaultKind>,
    round: Vec<FaultKind>,
    rng: Rng,
}

impl Schedule {
    pub fn new(kinds: Vec<FaultKind>, rng: Rng) -> Schedule {
        Schedule {
            kinds,
            round: Vec::new(),
            rng,
        }
    }

    /// Whether the current round has kinds still to come.
    pub fn mid_round(&self) -> bool {
        !self.round.is_empty()
    }

    pub fn next_kind(&mut self) -> Option<FaultKind> {
        if self.round.is_empty() {
            self.round = self.kinds.clone();
            self.rng.shuffle(&mut self.round);
        }
        self.round.pop()
    }
}

/// What a fault did, for the run's log.
pub struct Applied {
    pub description: String,
    /// A reassignment plan the fault started: once healed, it must complete.
    pub plan: Option<PathBuf>,
    /// A node that joined for the fault: once healed, it is decommissioned and leaves.
    pub joined: Option<NodeId>,
}

/// Applies one fault of `kind`; the caller holds it, then heals with [`Cluster::heal`].
/// A rolling restart is whole when this returns.
pub fn apply(
    kind: FaultKind,
    cluster: &mut Cluster,
    rng: &mut Rng,
    topic: &str,
    partitions: i32,
    settle: Duration,
) -> anyhow::Result<Applied> {
    let ids = cluster.ids();
    let random_node = |rng: &mut Rng| rng.pick(&ids).copied().context("no nodes");
    let mut plan = None;
    let mut joined = None;
    let description = match kind {
        FaultKind::Kill => {
            let id = random_node(rng)?;
            cluster.node_mut(id)?.kill9()?;
            format!("kill -9 node {id}")
        }
        FaultKind::KillLeader => {
            let partition = rng.below(partitions as u64) as i32;
            let id = match cluster.partition_leader(topic, partition) {
                Some(id) => id,
                None => random_node(rng)?,
            };
            cluster.node_mut(id)?.kill9()?;
            format!("kill -9 node {id} (leader of partition {partition})")
        }
        FaultKind::KillController => {
            let id = match cluster.quorum_leader() {
                Some(id) => id,
                None => random_node(rng)?,
            };
            cluster.node_mut(id)?.kill9()?;
            format!("kill -9 node {id} (quorum leader)")
        }
        FaultKind::Pause => {
            let id = random_node(rng)?;
            cluster.node_mut(id)?.pause()?;
            format!("SIGSTOP node {id}")
        }
        FaultKind::Isolate => {
            let id = random_node(rng)?;
            cut(cluster, &[id], &ids, LinkFault::Blackhole);
            format!("isolate node {id}")
        }
        FaultKind::Split => {
            let mut shuffled = ids.clone();
            rng.shuffle(&mut shuffled);
            let minority_size = ((ids.len().saturating_sub(1)) / 2).max(1);
            let (minority, _) = shuffled.split_at(minority_size.min(shuffled.len()));
            cut(cluster, minority, &ids, LinkFault::Blackhole);
            let mut minority = minority.to_vec();
            minority.sort_unstable();
            format!("split nodes {minority:?} from the rest")
        }
        FaultKind::Bridge => {
            let mut shuffled = ids.clone();
            rng.shuffle(&mut shuffled);
            let (left, right, bridge) = bridge_halves(&shuffled);
            cut(cluster, &left, &right, LinkFault::Blackhole);
            format!("nodes {left:?} and {right:?} hear each other only through node {bridge}")
        }
        FaultKind::OneWay => {
            let id = random_node(rng)?;
            for other in ids.iter().filter(|other| **other != id) {
                cluster.faults().set(id, *other, Some(LinkFault::Blackhole));
            }
            format!("node {id} heard but not heard (its outgoing links blackholed)")
        }
        FaultKind::Reset => {
            let id = random_node(rng)?;
            cut(cluster, &[id], &ids, LinkFault::Reset);
            format!("reset every connection of node {id}")
        }
        FaultKind::Delay => {
            let ms = rng.between(50, 250);
            for a in &ids {
                for b in &ids {
                    if a != b {
                        cluster
                            .faults()
                            .set(*a, *b, Some(LinkFault::Delay { ms, jitter_ms: 100 }));
                    }
                }
            }
            format!("delay every link by {ms} ms (+ up to 100 ms)")
        }
        FaultKind::Throttle => {
            let id = random_node(rng)?;
            let bytes_per_sec = rng.between(16, 256) * 1024;
            cut(cluster, &[id], &ids, LinkFault::Throttle { bytes_per_sec });
            format!(
                "throttle every link of node {id} to {} KiB/s",
                bytes_per_sec / 1024
            )
        }
        FaultKind::ClientIsolate => {
            let id = random_node(rng)?;
            cluster
                .faults()
                .set_both(CLIENTS, id, Some(LinkFault::Blackhole));
            format!("clients cut off from node {id}")
        }
        FaultKind::ClientReset => {
            let id = random_node(rng)?;
            cluster
                .faults()
                .set_both(CLIENTS, id, Some(LinkFault::Reset));
            format!("reset every client connection to node {id}")
        }
        FaultKind::ClockSkew => {
            let id = random_node(rng)?;
            let magnitude = rng.between(10_000, 60_000) as i64;
            let skew_ms = if rng.below(2) == 0 {
                magnitude
            } else {
                -magnitude
            };
            let node = cluster.node_mut(id)?;
            node.kill9()?;
            node.set_clock_skew(skew_ms);
            cluster.start(id)?;
            format!("node {id} restarted with its clock {skew_ms:+} ms off")
        }
        FaultKind::JoinLeave => {
            let id = cluster.add_node(settle)?;
            joined = Some(id);
            let partition = rng.below(partitions as u64) as i32;
            let from = replicas(cluster, topic, partition)?;
            let mut to = from.clone();
            let replaced = rng.below(to.len() as u64) as usize;
            if let Some(slot) = to.get_mut(replaced) {
                *slot = id;
            }
            plan = Some(execute_reassignment(cluster, rng, topic, partition, &to)?);
            format!("node {id} joins, and partition {partition} moves from {from:?} to {to:?}")
        }
        FaultKind::ReassignKill => {
            let partition = rng.below(partitions as u64) as i32;
            let (file, from, to) = start_reassignment(cluster, rng, topic, partition)?;
            plan = Some(file);
            let mut involved: Vec<NodeId> = from.iter().chain(&to).copied().collect();
            involved.sort_unstable();
            involved.dedup();
            let victim = rng.pick(&involved).copied().context("no replicas")?;
            cluster.node_mut(victim)?.kill9()?;
            format!(
                "reassign partition {partition} from {from:?} to {to:?}, and kill -9 node {victim}"
            )
        }
        FaultKind::PowerLoss => {
            // Every process dies first, then the disks lose what was not synced.
            for id in &ids {
                cluster.node_mut(*id)?.kill9()?;
            }
            let (mut files, mut bytes) = (0, 0);
            for id in &ids {
                let lost = cluster.node_mut(*id)?.lose_unsynced()?;
                files += lost.files;
                bytes += lost.bytes;
            }
            format!("power loss of every node: {bytes} unsynced bytes of {files} log files lost")
        }
        FaultKind::RollingRestart => {
            let mut order = ids.clone();
            rng.shuffle(&mut order);
            rolling_restart(cluster, &order, topic, partitions, settle)?;
            format!("rolling restart of nodes {order:?}")
        }
    };
    Ok(Applied {
        description,
        plan,
        joined,
    })
}

/// Starts moving `partition` of `topic` to a random other replica set of the same size:
/// other nodes when there are more nodes than replicas, else the same nodes in another
/// order (a new preferred leader). Returns the plan file and the old and new replicas.
fn start_reassignment(
    cluster: &mut Cluster,
    rng: &mut Rng,
    topic: &str,
    partition: i32,
) -> anyhow::Result<(PathBuf, Vec<NodeId>, Vec<NodeId>)> {
    let from = replicas(cluster, topic, partition)?;
    let mut to = cluster.ids();
    // A few draws find another set (or order) unless there is none (one node).
    for _ in 0..16 {
        rng.shuffle(&mut to);
        if to.get(..from.len()) != Some(from.as_slice()) {
            break;
        }
    }
    to.truncate(from.len());
    let file = execute_reassignment(cluster, rng, topic, partition, &to)?;
    Ok((file, from, to))
}

/// The replicas of `partition` as a running node's Metadata lists them.
fn replicas(cluster: &mut Cluster, topic: &str, partition: i32) -> anyhow::Result<Vec<NodeId>> {
    cluster
        .live()
        .into_iter()
        .find_map(|id| cluster.partitions(id, topic).ok())
        .and_then(|ps| ps.get(&partition).map(|p| p.replicas.clone()))
        .context("no node lists the partition's replicas")
}

/// Starts moving `partition` of `topic` to the replicas `to` (`sluice cluster reassign
/// --execute`); returns the plan file.
fn execute_reassignment(
    cluster: &Cluster,
    rng: &mut Rng,
    topic: &str,
    partition: i32,
    to: &[NodeId],
) -> anyhow::Result<PathBuf> {
    let plan = serde_json::json!({
        "version": 1,
        "partitions": [{"topic": topic, "partition": partition, "replicas": to}],
    });
    let file = cluster
        .dir()
        .join(format!("reassign-{partition}-{}.json", rng.next_u64()));
    std::fs::write(&file, plan.to_string())?;
    let path = file.display().to_string();
    cluster.cli(&["cluster", "reassign", "--execute", &path])?;
    Ok(file)
}

/// The end of a [`FaultKind::JoinLeave`]: node `id` is decommissioned (`sluice cluster
/// decommission`, which waits until its replicas moved off, at most `timeout`), then
/// unregistered and stopped.
pub fn leave(cluster: &mut Cluster, id: NodeId, timeout: Duration) -> anyhow::Result<()> {
    let node = id.to_string();
    let secs = timeout.as_secs().max(1).to_string();
    cluster.cli(&["cluster", "decommission", &node, "--timeout-secs", &secs])?;
    cluster.cli(&["cluster", "unregister", &node])?;
    cluster.remove_node(id, STOP_TIMEOUT)
}

/// Waits (at most `timeout`) until the reassignment of `plan` is complete.
pub fn wait_reassigned(cluster: &Cluster, plan: &Path, timeout: Duration) -> anyhow::Result<()> {
    let deadline = std::time::Instant::now() + timeout;
    let path = plan.display().to_string();
    loop {
        match cluster.cli(&["cluster", "reassign", "--verify", &path]) {
            Ok(_) => return Ok(()),
            Err(e) if std::time::Instant::now() >= deadline => {
                anyhow::bail!(
                    "the reassignment of {path} did not complete within {timeout:?}: {e:#}"
                )
            }
            Err(_) => thread::sleep(Duration::from_millis(500)),
        }
    }
}

/// Cuts every link between a node of `side` and a node not in it, both ways.
/// Jepsen's bridge over `shuffled` nodes: the first ⌊(n−1)/2⌋ nodes, the next one (the
/// bridge) and the rest; the two sides (returned sorted) are cut from each other, and
/// only the bridge hears both.
fn bridge_halves(shuffled: &[NodeId]) -> (Vec<NodeId>, Vec<NodeId>, NodeId) {
    let side = shuffled.len().saturating_sub(1) / 2;
    let mut left = shuffled.get(..side).unwrap_or_default().to_vec();
    let mut right = shuffled.get(side + 1..).unwrap_or_default().to_vec();
    left.sort_unstable();
    right.sort_unstable();
    let bridge = shuffled.get(side).copied().unwrap_or_default();
    (left, right, bridge)
}

fn cut(cluster: &Cluster, side: &[NodeId], all: &[NodeId], fault: LinkFault) {
    for a in side {
        for b in all.iter().filter(|b| !side.contains(b)) {
            cluster.faults().set_both(*a, *b, Some(fault));
        }
    }
}

/// How long a node may take to stop after SIGTERM (a controlled shutdown that finds no
/// controller waits out a broker session before it stops anyway).
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

fn rolling_restart(
    cluster: &mut Cluster,
    order: &[NodeId],
    topic: &str,
    partitions: i32,
    settle: Duration,
) -> anyhow::Result<()> {
    for id in order {
        let status = cluster.node_mut(*id)?.terminate(STOP_TIMEOUT)?;
        if !status.success() {
            anyhow::bail!("node {id} exited with {status} after SIGTERM");
        }
        cluster.start(*id)?;
        // Give the node a moment before the first look (it opens its logs first).
        thread::sleep(Duration::from_millis(200));
        cluster
            .wait_healthy(Some((topic, partitions)), settle)
            .with_context(|| format!("after restarting node {id}"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bridge_leaves_one_node_hearing_both_sides() {
        assert_eq!(bridge_halves(&[3, 1, 2]), (vec![3], vec![2], 1));
        assert_eq!(bridge_halves(&[5, 2, 4, 1, 3]), (vec![2, 5], vec![1, 3], 4));
        assert_eq!(bridge_halves(&[1, 2]), (vec![], vec![2], 1));
    }

    #[test]
    fn every_fault_kind_is_named_and_parsed_back() {
        for kind in FaultKind::ALL {
            assert_eq!(kind.name().parse::<FaultKind>(), Ok(kind));
        }
        assert!("cosmic-ray".parse::<FaultKind>().is_err());
    }
}

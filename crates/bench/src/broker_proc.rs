//! The broker as a process: CPU and memory sampled from /proc, and `sluice serve` started and
//! stopped for `--start-broker`.
//!
//! Throughput alone says little about cost: on the shared 2-core machines the broker and the
//! load generator compete for the same CPUs, so the figure that compares brokers fairly is
//! broker CPU seconds per GB moved, next to peak resident memory.

use std::fs::File;
use std::io::Read;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde::Serialize;

use crate::stats::MB;

/// How often the sampler looks at the broker; short enough to catch RSS peaks of a
/// seconds-long run, long enough to cost nothing.
const SAMPLE_INTERVAL: Duration = Duration::from_millis(100);
/// How long a started broker may take to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a started broker may take to exit after SIGTERM before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------------------------
// /proc parsing
// ---------------------------------------------------------------------------------------------

/// CPU time of a process in clock ticks, from /proc/PID/stat.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CpuTicks {
    pub utime: u64,
    pub stime: u64,
}

impl CpuTicks {
    pub fn total(self) -> u64 {
        self.utime.saturating_add(self.stime)
    }
}

/// Parses utime and stime (fields 14 and 15) from the text of /proc/PID/stat.
///
/// The command name (field 2) is in parentheses and may itself contain spaces and
/// parentheses, so fields are counted from the last `)`.
pub fn parse_stat(text: &str) -> Option<CpuTicks> {
    let after_comm = text.get(text.rfind(')')? + 1..)?;
    // Field 3 (state) is the first one after the command name.
    let mut fields = after_comm.split_ascii_whitespace().skip(14 - 3);
    let utime = fields.next()?.parse().ok()?;
    let stime = fields.next()?.parse().ok()?;
    Some(CpuTicks { utime, stime })
}

/// Memory figures of a process from /proc/PID/status, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MemUsage {
    /// Resident set size now (VmRSS).
    pub rss: u64,
    /// Peak resident set size over the process's life (VmHWM).
    pub hwm: u64,
}

/// Parses VmRSS and VmHWM from the text of /proc/PID/status (values are in kB = KiB).
/// A kernel thread or zombie has neither line; that is `None`.
pub fn parse_status(text: &str) -> Option<MemUsage> {
    let field = |name: &str| -> Option<u64> {
        let line = text.lines().find(|l| l.starts_with(name))?;
        let rest = line.get(name.len()..)?.trim();
        let kib: u64 = rest.split_ascii_whitespace().next()?.parse().ok()?;
        Some(kib.saturating_mul(1024))
    };
    Some(MemUsage {
        rss: field("VmRSS:")?,
        hwm: field("VmHWM:")?,
    })
}

fn read_small(path: &Path) -> std::io::Result<String> {
    let mut s = String::with_capacity(2048);
    File::open(path)?.read_to_string(&mut s)?;
    Ok(s)
}

/// One look at a process: CPU ticks and memory.
#[derive(Debug, Clone, Copy, Default)]
struct Sample {
    cpu: CpuTicks,
    mem: MemUsage,
}

fn sample(pid: u32) -> Option<Sample> {
    let stat = read_small(&Path::new("/proc").join(pid.to_string()).join("stat")).ok()?;
    let status = read_small(&Path::new("/proc").join(pid.to_string()).join("status")).ok()?;
    Some(Sample {
        cpu: parse_stat(&stat)?,
        mem: parse_status(&status)?,
    })
}

/// One look at several processes (the nodes of a cluster), summed; `None` when any of them
/// cannot be read.
fn sample_all(pids: &[u32]) -> Option<Sample> {
    let mut total = Sample::default();
    for pid in pids {
        let s = sample(*pid)?;
        total.cpu.utime = total.cpu.utime.saturating_add(s.cpu.utime);
        total.cpu.stime = total.cpu.stime.saturating_add(s.cpu.stime);
        total.mem.rss = total.mem.rss.saturating_add(s.mem.rss);
        total.mem.hwm = total.mem.hwm.saturating_add(s.mem.hwm);
    }
    Some(total)
}

/// CPU time of this process (the load generator) from a starting point: on the shared
/// 2-core machines it tells how much of the machine the client took from the broker.
pub struct OwnCpu {
    start_ticks: u64,
}

impl OwnCpu {
    pub fn start() -> OwnCpu {
        OwnCpu {
            start_ticks: own_cpu_ticks(),
        }
    }

    /// CPU seconds used since `start` (whole clock ticks, so no float noise).
    pub fn seconds(&self) -> f64 {
        own_cpu_ticks().saturating_sub(self.start_ticks) as f64 / clock_ticks() as f64
    }
}

fn own_cpu_ticks() -> u64 {
    read_small(Path::new("/proc/self/stat"))
        .ok()
        .and_then(|s| parse_stat(&s))
        .map(CpuTicks::total)
        .unwrap_or(0)
}

fn clock_ticks() -> u64 {
    rustix::param::clock_ticks_per_second().max(1)
}

// ---------------------------------------------------------------------------------------------
// Sampling
// ---------------------------------------------------------------------------------------------

/// What the broker process (or the nodes of a cluster, summed) used during the measured
/// window.
#[derive(Debug, Clone, Serialize)]
pub struct BrokerUsage {
    pub pids: Vec<u32>,
    /// utime + stime spent in the window.
    pub cpu_s: f64,
    /// `cpu_s` per 10^9 bytes moved (produced or consumed payload); absent when nothing moved.
    pub cpu_s_per_gb: Option<f64>,
    /// Average cores busy over the window (cpu_s / elapsed).
    pub cores: f64,
    /// Highest VmRSS seen in the window (sampled every 100 ms, and at both ends).
    pub peak_rss_bytes: u64,
    pub peak_rss_mb: f64,
    /// VmHWM at the end: the process's lifetime peak, which catches spikes between samples
    /// but also includes whatever happened before the run.
    pub vm_hwm_bytes: u64,
    pub vm_hwm_mb: f64,
    /// VmRSS when the window opened (after topic creation, before load).
    pub rss_start_bytes: u64,
    pub rss_end_bytes: u64,
    pub samples: u64,
}

#[derive(Debug, Default)]
struct Window {
    first: Sample,
    last: Sample,
    peak_rss: u64,
    samples: u64,
}

impl Window {
    fn add(&mut self, s: Sample) {
        self.last = s;
        self.peak_rss = self.peak_rss.max(s.mem.rss);
        self.samples += 1;
    }
}

/// Samples /proc/PID (of every broker process) every 100 ms on its own thread from `start`
/// until `finish`.
pub struct Sampler {
    pids: Vec<u32>,
    started: Instant,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Window>>,
}

impl Sampler {
    /// Takes the first sample now; fails when the process cannot be read (wrong PID, not
    /// Linux, or another user's process).
    pub fn start(pids: &[u32]) -> anyhow::Result<Sampler> {
        let pids = pids.to_vec();
        let first = sample_all(&pids).with_context(|| {
            format!("cannot read /proc/PID/stat and status of {pids:?} (is each running?)")
        })?;
        let stop = Arc::new(AtomicBool::new(false));
        let stop_flag = Arc::clone(&stop);
        let sampled = pids.clone();
        let thread = thread::Builder::new()
            .name("proc-sampler".into())
            .spawn(move || {
                let mut w = Window {
                    first,
                    ..Window::default()
                };
                w.add(first);
                while !stop_flag.load(Ordering::Relaxed) {
                    thread::sleep(SAMPLE_INTERVAL);
                    // A process that exited keeps its last sample.
                    if let Some(s) = sample_all(&sampled) {
                        w.add(s);
                    }
                }
                if let Some(s) = sample_all(&sampled) {
                    w.add(s);
                }
                w
            })
            .context("cannot start the /proc sampler thread")?;
        Ok(Sampler {
            pids,
            started: Instant::now(),
            stop,
            thread: Some(thread),
        })
    }

    /// Closes the window; `bytes_moved` gives CPU seconds per GB.
    pub fn finish(mut self, bytes_moved: u64) -> BrokerUsage {
        self.stop.store(true, Ordering::Relaxed);
        let elapsed = self.started.elapsed().as_secs_f64();
        let w = self
            .thread
            .take()
            .and_then(|t| t.join().ok())
            .unwrap_or_default();
        let ticks = w.last.cpu.total().saturating_sub(w.first.cpu.total());
        let cpu_s = ticks as f64 / clock_ticks() as f64;
        let gb = bytes_moved as f64 / 1e9;
        BrokerUsage {
            pids: self.pids.clone(),
            cpu_s,
            cpu_s_per_gb: (bytes_moved > 0).then(|| cpu_s / gb),
            cores: if elapsed > 0.0 { cpu_s / elapsed } else { 0.0 },
            peak_rss_bytes: w.peak_rss,
            peak_rss_mb: w.peak_rss as f64 / MB,
            vm_hwm_bytes: w.last.mem.hwm,
            vm_hwm_mb: w.last.mem.hwm as f64 / MB,
            rss_start_bytes: w.first.mem.rss,
            rss_end_bytes: w.last.mem.rss,
            samples: w.samples,
        }
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

// ---------------------------------------------------------------------------------------------
// Starting a broker
// ---------------------------------------------------------------------------------------------

/// What a started broker logs last, once it serves (a cluster node: once it runs with a
/// quorum of its peers).
const STARTED_LINE_PREFIX: &str = "Sluice ";
const STARTED_LINE_SUFFIX: &str = " started";

/// One `sluice serve` process of [`SpawnedBroker`].
struct Node {
    child: Option<Child>,
    addr: SocketAddr,
    log_path: PathBuf,
    bin: PathBuf,
    args: Vec<String>,
    /// Started lines in the log before the latest spawn.
    starts_before: usize,
}

impl Node {
    /// Spawns the process (again), its output appended to its log.
    fn spawn(&mut self) -> anyhow::Result<()> {
        self.starts_before = self.started_lines();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .with_context(|| format!("cannot open {}", self.log_path.display()))?;
        let log_err = log
            .try_clone()
            .context("cannot duplicate the broker log handle")?;
        let child = Command::new(&self.bin)
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .with_context(|| format!("cannot start {}", self.bin.display()))?;
        self.child = Some(child);
        Ok(())
    }

    fn started_lines(&self) -> usize {
        read_small(&self.log_path).map_or(0, |log| {
            log.lines()
                .filter(|l| {
                    l.find(STARTED_LINE_PREFIX).is_some_and(|at| {
                        l.get(at..)
                            .is_some_and(|t| t.ends_with(STARTED_LINE_SUFFIX))
                    })
                })
                .count()
        })
    }

    /// Whether the latest spawn logged the started line.
    fn has_started(&self) -> bool {
        self.started_lines() > self.starts_before
    }

    /// Waits until the latest spawn has started and accepts connections.
    fn wait_ready(&mut self, deadline: Instant) -> anyhow::Result<()> {
        loop {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                self.child = None;
                bail!(
                    "the broker on {} exited during startup ({status}); its log:\n{}",
                    self.addr,
                    self.log_tail()
                );
            }
            if self.has_started()
                && TcpStream::connect_timeout(&self.addr, Duration::from_millis(200)).is_ok()
            {
                return Ok(());
            }
            if Instant::now() >= deadline {
                bail!(
                    "the broker did not start on {} within {START_TIMEOUT:?}; its log:\n{}",
                    self.addr,
                    self.log_tail()
                );
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    fn log_tail(&self) -> String {
        let log = read_small(&self.log_path).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        let from = lines.len().saturating_sub(30);
        lines.get(from..).unwrap_or_default().join("\n")
    }
}

/// `sluice serve` started by `--start-broker` (one process) or `--cluster N` (N nodes of one
/// cluster on loopback, each with its own data directory and rack), stopped with SIGTERM by
/// `stop` (or killed when dropped on an error path, so no broker outlives the benchmark).
pub struct SpawnedBroker {
    nodes: Vec<Node>,
    // Dropped last: removes the logs and, unless the user named one, the data directories.
    _dir: tempfile::TempDir,
}

/// How to start the broker.
pub struct SpawnOptions<'a> {
    pub sluice_bin: Option<&'a Path>,
    pub data_dir: Option<&'a Path>,
    pub extra_args: &'a [String],
    /// 1: one broker; more: a cluster of node ids 1..=nodes, all of them voters.
    pub nodes: u32,
}

impl SpawnedBroker {
    pub fn start(opts: &SpawnOptions<'_>) -> anyhow::Result<SpawnedBroker> {
        let bin = match opts.sluice_bin {
            Some(p) => p.to_path_buf(),
            None => sluice_next_to_us()?,
        };
        if !bin.is_file() {
            bail!(
                "{} not found (build it with `cargo build -p sluice`, or pass --sluice-bin)",
                bin.display()
            );
        }
        let dir = tempfile::Builder::new()
            .prefix("sluice-bench-")
            .tempdir()
            .context("cannot create a temporary directory for the broker")?;
        let data_root = match opts.data_dir {
            Some(d) => {
                std::fs::create_dir_all(d)
                    .with_context(|| format!("cannot create {}", d.display()))?;
                d.to_path_buf()
            }
            None => dir.path().join("data"),
        };
        let nodes = usize::try_from(opts.nodes.max(1)).unwrap_or(1);
        let ports = free_ports(2 * nodes)?;
        let (cluster_ports, client_ports) = ports.split_at(nodes);
        let voters = cluster_ports
            .iter()
            .enumerate()
            .map(|(i, port)| format!("{}@127.0.0.1:{port}", i + 1))
            .collect::<Vec<_>>()
            .join(",");
        let mut broker = SpawnedBroker {
            nodes: Vec::new(),
            _dir: dir,
        };
        for (i, (cluster_port, client_port)) in cluster_ports.iter().zip(client_ports).enumerate() {
            let id = i + 1;
            let (data_dir, log_path, cluster_args) = if opts.nodes > 1 {
                (
                    data_root.join(format!("node-{id}")),
                    broker._dir.path().join(format!("node-{id}.log")),
                    vec![
                        "--node-id".to_string(),
                        id.to_string(),
                        "--cluster-listen".into(),
                        format!("127.0.0.1:{cluster_port}"),
                        "--voters".into(),
                        voters.clone(),
                        "--rack".into(),
                        format!("rack-{id}"),
                    ],
                )
            } else {
                (
                    data_root.clone(),
                    broker._dir.path().join("broker.log"),
                    vec![],
                )
            };
            let addr = SocketAddr::from(([127, 0, 0, 1], *client_port));
            let mut args: Vec<String> = vec![
                "serve".into(),
                "--listen".into(),
                addr.to_string(),
                "--data-dir".into(),
                data_dir.display().to_string(),
                // Group consumers should start at once, not after Kafka's 3 s join window.
                "--group-initial-rebalance-delay-ms".into(),
                "0".into(),
                // Leave the default HTTP port to a broker the user may be running.
                "--http-listen".into(),
                "off".into(),
            ];
            args.extend(cluster_args);
            args.extend(opts.extra_args.iter().cloned());
            let mut node = Node {
                child: None,
                addr,
                log_path,
                bin: bin.clone(),
                args,
                starts_before: 0,
            };
            node.spawn()?;
            broker.nodes.push(node);
        }
        broker.wait_ready()?;
        Ok(broker)
    }

    fn wait_ready(&mut self) -> anyhow::Result<()> {
        let deadline = Instant::now() + START_TIMEOUT;
        for node in &mut self.nodes {
            node.wait_ready(deadline)?;
        }
        Ok(())
    }

    /// Every node's `127.0.0.1:PORT`, comma-separated: the bootstrap servers.
    pub fn bootstrap(&self) -> String {
        self.nodes
            .iter()
            .map(|n| n.addr.to_string())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The running processes' ids, in node order.
    pub fn pids(&self) -> Vec<u32> {
        self.nodes
            .iter()
            .filter_map(|n| n.child.as_ref().map(Child::id))
            .collect()
    }

    /// The Kafka listener of node `id` (1-based).
    pub fn addr(&self, id: usize) -> Option<SocketAddr> {
        self.nodes.get(id.checked_sub(1)?).map(|n| n.addr)
    }

    /// SIGKILL node `id` (1-based) and reap it.
    pub fn kill9(&mut self, id: usize) -> anyhow::Result<()> {
        let node = id
            .checked_sub(1)
            .and_then(|i| self.nodes.get_mut(i))
            .with_context(|| format!("no node {id}"))?;
        let mut child = node
            .child
            .take()
            .with_context(|| format!("node {id} is not running"))?;
        child
            .kill()
            .with_context(|| format!("cannot kill node {id}"))?;
        child
            .wait()
            .with_context(|| format!("cannot reap node {id}"))?;
        Ok(())
    }

    /// Starts node `id` (1-based) again after [`Self::kill9`], with the same arguments, and
    /// waits until it has started.
    pub fn restart(&mut self, id: usize) -> anyhow::Result<()> {
        let node = id
            .checked_sub(1)
            .and_then(|i| self.nodes.get_mut(i))
            .with_context(|| format!("no node {id}"))?;
        if node.child.is_some() {
            bail!("node {id} is still running");
        }
        node.spawn()?;
        node.wait_ready(Instant::now() + START_TIMEOUT)
    }

    /// The last lines each broker wrote, for error messages.
    pub fn log_tail(&self) -> String {
        self.nodes
            .iter()
            .map(|n| format!("--- {} ---\n{}", n.addr, n.log_tail()))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// SIGTERM to node `id` (1-based), then waits for it to exit cleanly (a controlled
    /// shutdown: its leaderships move away first). [`Self::restart`] starts it again.
    pub fn terminate(&mut self, id: usize) -> anyhow::Result<()> {
        let node = id
            .checked_sub(1)
            .and_then(|i| self.nodes.get_mut(i))
            .with_context(|| format!("no node {id}"))?;
        node.sigterm()?;
        node.wait_clean_exit(Instant::now() + STOP_TIMEOUT)
    }

    /// A way to ask node `id` (1-based) which node leads the metadata quorum, usable from
    /// another thread while this cluster is being changed.
    pub fn controller_probe(&self, id: usize) -> anyhow::Result<ControllerProbe> {
        let node = id
            .checked_sub(1)
            .and_then(|i| self.nodes.get(i))
            .with_context(|| format!("no node {id}"))?;
        Ok(ControllerProbe {
            bin: node.bin.clone(),
            addr: node.addr,
        })
    }

    /// SIGTERM to every node at once, then waits for each to exit cleanly (SIGKILL after
    /// 30 s).
    pub fn stop(mut self) -> anyhow::Result<()> {
        for node in &mut self.nodes {
            node.sigterm()?;
        }
        let deadline = Instant::now() + STOP_TIMEOUT;
        for node in &mut self.nodes {
            node.wait_clean_exit(deadline)?;
        }
        Ok(())
    }
}

/// Asks one node which node leads the metadata quorum (see
/// [`SpawnedBroker::controller_probe`]).
#[derive(Debug, Clone)]
pub struct ControllerProbe {
    bin: PathBuf,
    addr: SocketAddr,
}

impl ControllerProbe {
    /// The quorum leader as the node names it in DescribeCluster (`sluice cluster info`); a
    /// node that knows none names itself.
    pub fn controller(&self) -> anyhow::Result<i32> {
        let output = Command::new(&self.bin)
            .args(["cluster", "info", "--json", "--request-timeout-ms", "1000"])
            .args(["--brokers", &self.addr.to_string()])
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("cannot run {}", self.bin.display()))?;
        if !output.status.success() {
            bail!(
                "sluice cluster info on {}: {}",
                self.addr,
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        let info: serde_json::Value = serde_json::from_slice(&output.stdout)
            .context("sluice cluster info printed no JSON")?;
        info.get("controller_id")
            .and_then(serde_json::Value::as_i64)
            .and_then(|id| i32::try_from(id).ok())
            .context("sluice cluster info named no controller_id")
    }
}

impl Node {
    /// SIGTERM, if the process runs (it is reaped by [`Self::wait_clean_exit`]).
    fn sigterm(&mut self) -> anyhow::Result<()> {
        let Some(child) = self.child.as_mut() else {
            return Ok(());
        };
        let pid = i32::try_from(child.id())
            .ok()
            .and_then(rustix::process::Pid::from_raw)
            .context("broker pid out of range")?;
        // An error: already gone (it is reaped by wait_clean_exit).
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        Ok(())
    }

    /// Reaps the process after [`Self::sigterm`]: an error unless it exits with success
    /// before `deadline` (then it is killed).
    fn wait_clean_exit(&mut self, deadline: Instant) -> anyhow::Result<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        loop {
            match child.try_wait() {
                Ok(Some(status)) if status.success() => return Ok(()),
                Ok(Some(status)) => {
                    bail!(
                        "the broker on {} exited with {status}; its log:\n{}",
                        self.addr,
                        self.log_tail()
                    )
                }
                Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(20)),
                Ok(None) | Err(_) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    bail!(
                        "the broker on {} did not exit within {STOP_TIMEOUT:?} of SIGTERM; killed it",
                        self.addr
                    );
                }
            }
        }
    }
}

impl Drop for SpawnedBroker {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            if let Some(mut child) = node.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

/// `sluice` in the directory of this executable: `sluice bench` execs us from there, and
/// cargo puts both binaries in the same target directory.
fn sluice_next_to_us() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("cannot find this executable's path")?;
    let dir = exe
        .parent()
        .context("this executable's path has no directory")?;
    Ok(dir.join("sluice"))
}

/// `count` distinct loopback ports that were free a moment ago: all bound at once (so the
/// kernel cannot hand out one twice), then released for the brokers.
fn free_ports(count: usize) -> anyhow::Result<Vec<u16>> {
    let listeners = (0..count)
        .map(|_| TcpListener::bind("127.0.0.1:0").context("cannot bind a loopback port"))
        .collect::<anyhow::Result<Vec<_>>>()?;
    listeners
        .iter()
        .map(|l| Ok(l.local_addr().context("cannot read the bound port")?.port()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_ports_are_distinct() {
        let mut ports = free_ports(64).unwrap();
        ports.sort_unstable();
        ports.dedup();
        assert_eq!(ports.len(), 64);
    }

    const STAT: &str = "4242 (sluice) S 1 4242 4242 0 -1 4194560 1234 0 0 0 \
                        731 245 0 0 20 0 9 0 123456 1234567890 5000 18446744073709551615 \
                        1 1 0 0 0 0 0 4096 17987 0 0 0 17 1 0 0 0 0 0\n";

    #[test]
    fn stat_utime_and_stime() {
        assert_eq!(
            parse_stat(STAT),
            Some(CpuTicks {
                utime: 731,
                stime: 245
            })
        );
        assert_eq!(parse_stat(STAT).map(CpuTicks::total), Some(976));
    }

    #[test]
    fn stat_with_spaces_and_parentheses_in_the_command_name() {
        let weird = STAT.replace("(sluice)", "(tokio (worker) 1)");
        assert_eq!(
            parse_stat(&weird),
            Some(CpuTicks {
                utime: 731,
                stime: 245
            })
        );
    }

    #[test]
    fn truncated_or_garbled_stat_is_none() {
        assert_eq!(parse_stat(""), None);
        assert_eq!(parse_stat("4242 (sluice) S 1 2 3"), None);
        assert_eq!(parse_stat("no parenthesis at all"), None);
        let garbled = STAT.replace(" 731 ", " x ");
        assert_eq!(parse_stat(&garbled), None);
    }

    const STATUS: &str = "Name:\tsluice\nUmask:\t0022\nState:\tS (sleeping)\nTgid:\t4242\n\
                          VmPeak:\t  812345 kB\nVmSize:\t  800000 kB\nVmLck:\t       0 kB\n\
                          VmPin:\t       0 kB\nVmHWM:\t   51200 kB\nVmRSS:\t   40960 kB\n\
                          RssAnon:\t   30000 kB\nThreads:\t9\n";

    #[test]
    fn status_rss_and_hwm_in_bytes() {
        assert_eq!(
            parse_status(STATUS),
            Some(MemUsage {
                rss: 40960 * 1024,
                hwm: 51200 * 1024
            })
        );
    }

    #[test]
    fn status_of_a_kernel_thread_or_zombie_is_none() {
        let zombie = "Name:\tsluice\nState:\tZ (zombie)\nTgid:\t4242\nThreads:\t1\n";
        assert_eq!(parse_status(zombie), None);
        assert_eq!(parse_status("VmRSS:\tlots kB\nVmHWM:\t1 kB\n"), None);
    }

    #[test]
    fn this_process_can_be_sampled() {
        let pid = std::process::id();
        let s = sample(pid).expect("sample self");
        assert!(s.mem.rss > 0 && s.mem.hwm >= s.mem.rss);
        let sampler = Sampler::start(&[pid]).unwrap();
        // Burn a little CPU so the window has something in it.
        let mut x = 0u64;
        let until = Instant::now() + Duration::from_millis(250);
        while Instant::now() < until {
            x = x.wrapping_mul(31).wrapping_add(1);
        }
        std::hint::black_box(x);
        let usage = sampler.finish(1_000_000_000);
        assert!(usage.samples >= 2, "{usage:?}");
        assert!(usage.peak_rss_bytes > 0, "{usage:?}");
        assert!(usage.cpu_s > 0.0, "{usage:?}");
        assert_eq!(usage.cpu_s_per_gb, Some(usage.cpu_s));
        assert!(own_cpu_ticks() > 0);
    }

    #[test]
    fn a_missing_process_is_a_clear_error() {
        // PIDs are below 2^22 on Linux.
        let err = Sampler::start(&[u32::MAX - 1])
            .err()
            .expect("no such process");
        assert!(err.to_string().contains("is each running?"), "{err}");
    }
}

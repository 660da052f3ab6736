//! `failover`: how long a replicated partition is unavailable when a node fails.
//!
//! On a cluster this benchmark started itself, each trial fails a node (`--scenario`) while
//! an idempotent acks=all producer writes, and times from that moment what a user waits
//! for: another node's Metadata naming a new partition leader ("leader visible"), the
//! surviving nodes agreeing on a new metadata quorum leader ("controller visible"), and an
//! acks=all record sent after the failure being acknowledged ("first acknowledged write":
//! librdkafka's own reconnects, metadata refreshes and retries included). A rolling restart
//! instead restarts every node in turn with SIGTERM under producers writing every partition,
//! and measures the longest pause between acknowledgements of each partition and every
//! client error. Failed nodes restart between trials, and each trial waits until every
//! replica is back in sync.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde::Serialize;

use crate::broker_proc::{ControllerProbe, SpawnedBroker};
use crate::cli::{FailoverArgs, Scenario};
use crate::kafka::{ClientSettings, PlainContext};
use crate::report::RunInfo;

/// How long the cluster may take to have every replica in sync again after a restart.
const RESYNC_TIMEOUT: Duration = Duration::from_secs(60);
/// How long one trial may take to see a new leader or an acknowledged write.
const TRIAL_TIMEOUT: Duration = Duration::from_secs(60);
/// How often the metadata is polled.
const POLL_INTERVAL: Duration = Duration::from_millis(10);
/// The pause between two writes of one rolling-restart producer.
const ROLLING_SEND_INTERVAL: Duration = Duration::from_millis(5);

/// Median, 99th percentile and maximum of a list of durations, in milliseconds.
#[derive(Debug, Clone, Serialize)]
pub struct Spread {
    pub median_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl Spread {
    /// Nearest-rank percentiles (with 20 trials the p99 is the largest value).
    pub fn of(values: &[f64]) -> Spread {
        let mut sorted = values.to_vec();
        sorted.sort_by(f64::total_cmp);
        let rank = |q: f64| -> f64 {
            if sorted.is_empty() {
                return 0.0;
            }
            let index = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1;
            sorted.get(index).copied().unwrap_or_default()
        };
        Spread {
            median_ms: rank(0.5),
            p99_ms: rank(0.99),
            max_ms: sorted.last().copied().unwrap_or_default(),
        }
    }
}

/// One measured duration over the trials.
#[derive(Debug, Clone, Serialize)]
pub struct Measure {
    /// Its key: `leader_visible`, `controller_visible`, `first_ack` or `produce_gap`.
    pub name: &'static str,
    /// What it times, for the table.
    pub what: &'static str,
    /// Each value, in the order measured.
    pub values_ms: Vec<f64>,
    #[serde(flatten)]
    pub spread: Spread,
}

impl Measure {
    fn new(name: &'static str, what: &'static str, values_ms: Vec<f64>) -> Self {
        let spread = Spread::of(&values_ms);
        Measure {
            name,
            what,
            values_ms,
            spread,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct FailoverReport {
    #[serde(flatten)]
    pub run: RunInfo,
    pub nodes: u32,
    pub trials: u32,
    pub scenario: Scenario,
    /// The client that wrote: librdkafka, or kafkajs (`--kafkajs-producer`).
    pub client: &'static str,
    pub measures: Vec<Measure>,
    /// Writes that failed (a client error the application would see).
    pub client_errors: u64,
    /// The first of them.
    pub first_error: Option<String>,
}

/// The partitions a scenario writes: one, or (rolling restart) one per node so that every
/// node leads one.
pub fn partitions_for(scenario: Scenario, nodes: u32) -> i32 {
    match scenario {
        Scenario::RollingRestart => i32::try_from(nodes).unwrap_or(1),
        _ => 1,
    }
}

/// A partition's leader and in-sync replica count as `probe`'s node sees them.
fn leader_and_isr(
    probe: &BaseConsumer<PlainContext>,
    topic: &str,
    partition: i32,
) -> Option<(i32, usize)> {
    let md = probe
        .fetch_metadata(Some(topic), Duration::from_secs(2))
        .ok()?;
    let t = md.topics().iter().find(|t| t.name() == topic)?;
    let p = t.partitions().iter().find(|p| p.id() == partition)?;
    Some((p.leader(), p.isr().len()))
}

/// A metadata client talking only to the node at `addr`.
fn probe_of(client: &ClientSettings, addr: &str) -> anyhow::Result<BaseConsumer<PlainContext>> {
    let mut config = client.config(&[]);
    config.set("bootstrap.servers", addr);
    config
        .create_with_context(PlainContext(client.lib_log()))
        .context("cannot create a metadata client")
}

pub fn run(
    args: &FailoverArgs,
    cluster: &mut SpawnedBroker,
    client: &ClientSettings,
    nodes: u32,
) -> anyhow::Result<FailoverReport> {
    if args.kafkajs_producer.is_some() && args.scenario != Scenario::RollingRestart {
        bail!("--kafkajs-producer applies to --scenario rolling-restart only");
    }
    let topic = args.common.topic.as_str();
    let producer = acks_all_producer(client)?;
    send(&producer, topic, 0, "warm-up")?;
    let partitions = partitions_for(args.scenario, nodes);
    let (measures, client_errors, first_error) = match args.scenario {
        Scenario::KillLeader | Scenario::KillFollower | Scenario::KillController => (
            kill_trials(args, cluster, client, &producer, nodes)?,
            0,
            None,
        ),
        Scenario::RollingRestart => {
            let outcome = rolling_restarts(args, cluster, client, &producer, nodes)?;
            (vec![outcome.gaps], outcome.errors, outcome.first_error)
        }
    };
    Ok(FailoverReport {
        run: RunInfo {
            brokers: client.brokers.clone(),
            topic: topic.to_string(),
            partitions: usize::try_from(partitions).unwrap_or(1),
        },
        nodes,
        trials: args.trials,
        scenario: args.scenario,
        client: if args.kafkajs_producer.is_some() {
            "kafkajs"
        } else {
            "librdkafka"
        },
        measures,
        client_errors,
        first_error,
    })
}

/// The idempotent acks=all producer of every scenario, retrying fast so that the figures
/// measure the cluster rather than librdkafka's backoffs.
fn acks_all_producer(client: &ClientSettings) -> anyhow::Result<FutureProducer<PlainContext>> {
    client
        .config(&[
            ("acks", "all".into()),
            ("enable.idempotence", "true".into()),
            ("linger.ms", "0".into()),
            ("message.timeout.ms", TRIAL_TIMEOUT.as_millis().to_string()),
            ("retry.backoff.ms", "10".into()),
            ("retry.backoff.max.ms", "100".into()),
            ("reconnect.backoff.ms", "10".into()),
            ("reconnect.backoff.max.ms", "100".into()),
        ])
        .create_with_context(PlainContext(client.lib_log()))
        .context("cannot create the producer")
}

/// Sends one record to `partition` and waits for its acknowledgement.
fn send(
    producer: &FutureProducer<PlainContext>,
    topic: &str,
    partition: i32,
    value: &str,
) -> anyhow::Result<()> {
    let record: FutureRecord<'_, (), str> =
        FutureRecord::to(topic).partition(partition).payload(value);
    futures::executor::block_on(producer.send(record, TRIAL_TIMEOUT))
        .map(|_| ())
        .map_err(|(e, _)| anyhow::anyhow!("acks=all write failed: {e}"))
}

/// The kill -9 scenarios: each trial kills one node (chosen by the scenario) of a cluster
/// with every replica in sync, times what the scenario measures, and restarts the node.
fn kill_trials(
    args: &FailoverArgs,
    cluster: &mut SpawnedBroker,
    client: &ClientSettings,
    producer: &FutureProducer<PlainContext>,
    nodes: u32,
) -> anyhow::Result<Vec<Measure>> {
    let topic = args.common.topic.as_str();
    let mut leader_visible_ms = Vec::new();
    let mut controller_visible_ms = Vec::new();
    let mut first_ack_ms = Vec::new();
    for trial in 1..=args.trials {
        let leader =
            usize::try_from(wait_in_sync(cluster, client, topic, nodes)?).context("no leader")?;
        let victim = match args.scenario {
            Scenario::KillFollower => follower_to_kill(leader, nodes, trial),
            Scenario::KillController => controller(cluster, nodes)?,
            _ => leader,
        };
        let watcher_id = if victim == 1 { 2 } else { 1 };
        let watcher_addr = cluster
            .addr(watcher_id)
            .context("no watcher node")?
            .to_string();
        let probe = probe_of(client, &watcher_addr)?;
        // Warm the watcher's connection so that the first poll after the kill is fast.
        leader_and_isr(&probe, topic, 0).context("the watcher cannot read the metadata")?;

        let survivors = controller_probes(
            cluster,
            (1..=nodes as usize).filter(|&id| id != victim).collect(),
        )?;
        let killed_at = Instant::now();
        cluster.kill9(victim)?;
        let stop = Arc::new(AtomicBool::new(false));
        let leader_watch = (args.scenario == Scenario::KillLeader)
            .then(|| watch_new_leader(probe, topic, victim, killed_at, &stop));
        let controller_watch = (args.scenario == Scenario::KillController)
            .then(|| watch_new_controller(survivors, victim, killed_at));
        let acked =
            send(producer, topic, 0, &format!("trial-{trial}")).map(|()| killed_at.elapsed());
        stop.store(true, Ordering::Relaxed);
        let leader_seen = leader_watch.map(|w| w.join().ok().flatten());
        let controller_seen = controller_watch.map(|w| w.join().ok().flatten());
        let acked = acked?;
        let mut line = format!("trial {trial}/{}: killed node {victim}", args.trials);
        if let Some(seen) = leader_seen {
            let seen = seen.with_context(|| {
                format!("trial {trial}: no new leader within {TRIAL_TIMEOUT:?}")
            })?;
            leader_visible_ms.push(millis(seen));
            line += &format!("; new leader visible after {:.0} ms", millis(seen));
        }
        if let Some(seen) = controller_seen {
            let seen = seen.with_context(|| {
                format!("trial {trial}: no new quorum leader within {TRIAL_TIMEOUT:?}")
            })?;
            controller_visible_ms.push(millis(seen));
            line += &format!("; new quorum leader agreed after {:.0} ms", millis(seen));
        }
        first_ack_ms.push(millis(acked));
        line += &format!("; first acknowledged write after {:.0} ms", millis(acked));
        if !args.common.quiet {
            eprintln!("{line}");
        }
        cluster.restart(victim)?;
    }
    let mut measures = Vec::new();
    if !leader_visible_ms.is_empty() {
        measures.push(Measure::new(
            "leader_visible",
            "kill -9 → new leader in another node's metadata",
            leader_visible_ms,
        ));
    }
    if !controller_visible_ms.is_empty() {
        measures.push(Measure::new(
            "controller_visible",
            "kill -9 of the quorum leader → the others agree on a new one",
            controller_visible_ms,
        ));
    }
    let what = match args.scenario {
        Scenario::KillFollower => "kill -9 of a follower → acks=all write acknowledged",
        _ => "kill -9 → acks=all write acknowledged",
    };
    measures.push(Measure::new("first_ack", what, first_ack_ms));
    Ok(measures)
}

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// A follower of the partition led by `leader`, a different one trial after trial.
fn follower_to_kill(leader: usize, nodes: u32, trial: u32) -> usize {
    let followers: Vec<usize> = (1..=nodes as usize).filter(|&id| id != leader).collect();
    let pick = (trial as usize) % followers.len().max(1);
    followers.get(pick).copied().unwrap_or(leader)
}

/// The quorum leader, as the nodes agree on it now.
fn controller(cluster: &SpawnedBroker, nodes: u32) -> anyhow::Result<usize> {
    let probes = controller_probes(cluster, (1..=nodes as usize).collect())?;
    let agreed = agreed_controller(&probes)?;
    usize::try_from(agreed.context("the nodes do not agree on a quorum leader")?)
        .context("no quorum leader")
}

fn controller_probes(
    cluster: &SpawnedBroker,
    ids: Vec<usize>,
) -> anyhow::Result<Vec<ControllerProbe>> {
    ids.into_iter()
        .map(|id| cluster.controller_probe(id))
        .collect()
}

/// The quorum leader every probed node names, if they all name the same one (a node that
/// knows none names itself, so two nodes agree only on a real leader).
fn agreed_controller(probes: &[ControllerProbe]) -> anyhow::Result<Option<i32>> {
    let mut named = Vec::new();
    for probe in probes {
        named.push(probe.controller()?);
    }
    let first = named.first().copied();
    Ok(first.filter(|c| *c > 0 && named.iter().all(|n| n == c)))
}

/// Polls the surviving nodes, on a thread of its own, until they agree on a quorum leader
/// other than `victim`: the time from the kill.
fn watch_new_controller(
    survivors: Vec<ControllerProbe>,
    victim: usize,
    killed_at: Instant,
) -> thread::JoinHandle<Option<Duration>> {
    thread::spawn(move || {
        while killed_at.elapsed() < TRIAL_TIMEOUT {
            // A node still electing may not answer: that is not agreement yet.
            if let Ok(Some(c)) = agreed_controller(&survivors)
                && usize::try_from(c).ok() != Some(victim)
            {
                return Some(killed_at.elapsed());
            }
            thread::sleep(POLL_INTERVAL);
        }
        None
    })
}

/// Polls `probe`'s node until its Metadata names a live leader other than `victim`.
fn watch_new_leader(
    probe: BaseConsumer<PlainContext>,
    topic: &str,
    victim: usize,
    killed_at: Instant,
    stop: &Arc<AtomicBool>,
) -> thread::JoinHandle<Option<Duration>> {
    let stop = Arc::clone(stop);
    let victim = i32::try_from(victim).unwrap_or(-1);
    let topic = topic.to_string();
    thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) && killed_at.elapsed() < TRIAL_TIMEOUT {
            if let Some((leader, _)) = leader_and_isr(&probe, &topic, 0)
                && leader >= 0
                && leader != victim
            {
                return Some(killed_at.elapsed());
            }
            thread::sleep(POLL_INTERVAL);
        }
        None
    })
}

/// What the rolling restarts measured.
struct RollingOutcome {
    gaps: Measure,
    errors: u64,
    first_error: Option<String>,
}

/// Every trial restarts every node in turn (SIGTERM, wait for its clean exit, start it,
/// wait for every replica in sync) while one producer thread per partition writes without
/// pause; per trial and partition, the longest time between two acknowledgements.
fn rolling_restarts(
    args: &FailoverArgs,
    cluster: &mut SpawnedBroker,
    client: &ClientSettings,
    producer: &FutureProducer<PlainContext>,
    nodes: u32,
) -> anyhow::Result<RollingOutcome> {
    let topic = args.common.topic.as_str();
    let partitions = partitions_for(Scenario::RollingRestart, nodes);
    let log = Arc::new(AckLog::new(partitions));
    let writers = match &args.kafkajs_producer {
        Some(script) => Writers::kafkajs(script, client, topic, partitions, &log)?,
        None => Writers::librdkafka(producer, topic, partitions, &log),
    };
    let acks = &log.acks;
    let errors = &log.errors;
    let result = (|| -> anyhow::Result<Vec<f64>> {
        let mut gaps_ms = Vec::new();
        for trial in 1..=args.trials {
            wait_all_in_sync(cluster, client, topic, partitions, nodes)?;
            // Every writer has written since: none is still retrying a send of the last
            // trial, so each trial's pauses are its own.
            log.wait_all_acked_after(Instant::now())?;
            let started = Instant::now();
            for id in 1..=nodes as usize {
                wait_all_in_sync(cluster, client, topic, partitions, nodes)?;
                cluster.terminate(id)?;
                cluster.restart(id)?;
            }
            wait_all_in_sync(cluster, client, topic, partitions, nodes)?;
            // One more acknowledgement per partition closes the last gap of the trial.
            thread::sleep(ROLLING_SEND_INTERVAL * 20);
            let ended = Instant::now();
            let trial_gaps: Vec<f64> = acks
                .iter()
                .map(|list| longest_gap(&lock(list), started, ended))
                .collect();
            if !args.common.quiet {
                let worst = trial_gaps.iter().copied().fold(0.0, f64::max);
                eprintln!(
                    "trial {trial}/{}: restarted nodes 1..={nodes} in {:.1} s; longest pause between acknowledgements {worst:.0} ms; client errors so far {}",
                    args.trials,
                    ended.duration_since(started).as_secs_f64(),
                    errors.load(Ordering::Relaxed)
                );
            }
            gaps_ms.extend(trial_gaps);
        }
        Ok(gaps_ms)
    })();
    let stopped = writers.stop();
    let gaps_ms = result?;
    stopped?;
    let first_error = lock(&log.first_error).clone();
    Ok(RollingOutcome {
        gaps: Measure::new(
            "produce_gap",
            "per trial and partition: longest pause between acknowledged writes",
            gaps_ms,
        ),
        errors: errors.load(Ordering::Relaxed),
        first_error,
    })
}

/// What the writers of a rolling restart saw: each partition's acknowledgement times, and
/// the errors.
struct AckLog {
    acks: Vec<Mutex<Vec<Instant>>>,
    errors: AtomicU64,
    first_error: Mutex<Option<String>>,
}

impl AckLog {
    fn new(partitions: i32) -> Self {
        AckLog {
            acks: (0..partitions).map(|_| Mutex::new(Vec::new())).collect(),
            errors: AtomicU64::new(0),
            first_error: Mutex::new(None),
        }
    }

    /// A write to `partition` was acknowledged now.
    fn acked(&self, partition: i64) {
        if let Some(list) = usize::try_from(partition)
            .ok()
            .and_then(|i| self.acks.get(i))
        {
            lock(list).push(Instant::now());
        }
    }

    /// Waits until every partition has an acknowledgement later than `since`.
    fn wait_all_acked_after(&self, since: Instant) -> anyhow::Result<()> {
        let deadline = since + TRIAL_TIMEOUT;
        while !self
            .acks
            .iter()
            .all(|list| lock(list).last().is_some_and(|t| *t > since))
        {
            if Instant::now() >= deadline {
                bail!("the writers acknowledged nothing new within {TRIAL_TIMEOUT:?}");
            }
            thread::sleep(POLL_INTERVAL);
        }
        Ok(())
    }

    fn failed(&self, error: String) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        lock(&self.first_error).get_or_insert(error);
    }
}

/// The producers of a rolling restart, writing until stopped.
enum Writers {
    /// One librdkafka thread per partition.
    Librdkafka {
        stop: Arc<AtomicBool>,
        threads: Vec<thread::JoinHandle<()>>,
    },
    /// A kafkajs producer (Node.js, writing the partitions in turn) and the thread reading
    /// its reports: one JSON line per acknowledged write (`partition`) or error (`error`);
    /// it stops when its stdin closes.
    Kafkajs {
        child: std::process::Child,
        reader: thread::JoinHandle<()>,
    },
}

impl Writers {
    fn librdkafka(
        producer: &FutureProducer<PlainContext>,
        topic: &str,
        partitions: i32,
        log: &Arc<AckLog>,
    ) -> Writers {
        let stop = Arc::new(AtomicBool::new(false));
        let threads = (0..partitions)
            .map(|partition| {
                let (producer, log, stop) = (producer.clone(), Arc::clone(log), Arc::clone(&stop));
                let topic = topic.to_string();
                thread::spawn(move || {
                    let mut n = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        n += 1;
                        match send(&producer, &topic, partition, &format!("p{partition}-{n}")) {
                            Ok(()) => log.acked(i64::from(partition)),
                            Err(e) => log.failed(e.to_string()),
                        }
                        thread::sleep(ROLLING_SEND_INTERVAL);
                    }
                })
            })
            .collect();
        Writers::Librdkafka { stop, threads }
    }

    fn kafkajs(
        script: &std::path::Path,
        client: &ClientSettings,
        topic: &str,
        partitions: i32,
        log: &Arc<AckLog>,
    ) -> anyhow::Result<Writers> {
        use std::io::BufRead;
        let mut child = std::process::Command::new("node")
            .arg(script)
            .env("BROKERS", &client.brokers)
            .env("TOPIC", topic)
            .env("PARTITIONS", partitions.to_string())
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .with_context(|| format!("cannot run node {}", script.display()))?;
        let stdout = child
            .stdout
            .take()
            .context("no stdout of the kafkajs producer")?;
        let log = Arc::clone(log);
        let reader = thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let Ok(report) = serde_json::from_str::<serde_json::Value>(&line) else {
                    continue;
                };
                if let Some(error) = report.get("error") {
                    log.failed(error.to_string());
                } else if let Some(partition) = report.get("partition").and_then(|p| p.as_i64()) {
                    log.acked(partition);
                }
            }
        });
        Ok(Writers::Kafkajs { child, reader })
    }

    /// Stops writing and waits for the last reports.
    fn stop(self) -> anyhow::Result<()> {
        match self {
            Writers::Librdkafka { stop, threads } => {
                stop.store(true, Ordering::Relaxed);
                for thread in threads {
                    let _ = thread.join();
                }
                Ok(())
            }
            Writers::Kafkajs { mut child, reader } => {
                drop(child.stdin.take());
                let status = child.wait().context("waiting for the kafkajs producer")?;
                let _ = reader.join();
                if !status.success() {
                    bail!("the kafkajs producer exited with {status}");
                }
                Ok(())
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The longest time in `[from, to]` without an acknowledgement, in milliseconds (`acks`
/// in time order). A pause that began before `from` counts from its start, the last
/// acknowledgement before `from`.
fn longest_gap(acks: &[Instant], from: Instant, to: Instant) -> f64 {
    let inside = acks.iter().copied().filter(|t| *t > from && *t < to);
    let mut previous = acks.iter().copied().rfind(|t| *t <= from).unwrap_or(from);
    let mut longest = Duration::ZERO;
    for t in inside.chain(std::iter::once(to)) {
        longest = longest.max(t.duration_since(previous));
        previous = t;
    }
    millis(longest)
}

/// Waits until every replica of partition 0 is in sync; returns its leader.
fn wait_in_sync(
    cluster: &SpawnedBroker,
    client: &ClientSettings,
    topic: &str,
    nodes: u32,
) -> anyhow::Result<i32> {
    wait_all_in_sync(cluster, client, topic, 1, nodes)
}

/// Waits until every replica of partitions `0..partitions` is in sync; returns the leader
/// of partition 0.
fn wait_all_in_sync(
    cluster: &SpawnedBroker,
    client: &ClientSettings,
    topic: &str,
    partitions: i32,
    nodes: u32,
) -> anyhow::Result<i32> {
    let probe = probe_of(client, &cluster.bootstrap())?;
    let deadline = Instant::now() + RESYNC_TIMEOUT;
    loop {
        let states: Option<Vec<(i32, usize)>> = (0..partitions)
            .map(|p| leader_and_isr(&probe, topic, p))
            .collect();
        if let Some(states) = states
            && states
                .iter()
                .all(|&(leader, isr)| leader > 0 && isr == nodes as usize)
            && let Some(&(leader, _)) = states.first()
        {
            return Ok(leader);
        }
        if Instant::now() >= deadline {
            bail!(
                "{topic} did not have all {nodes} replicas of every partition in sync within {RESYNC_TIMEOUT:?}; logs:\n{}",
                cluster.log_tail()
            );
        }
        thread::sleep(Duration::from_millis(50));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let values: Vec<f64> = (1..=20).map(f64::from).collect();
        let s = Spread::of(&values);
        assert_eq!((s.median_ms, s.p99_ms, s.max_ms), (10.0, 20.0, 20.0));
        let s = Spread::of(&[5.0]);
        assert_eq!((s.median_ms, s.p99_ms, s.max_ms), (5.0, 5.0, 5.0));
        let s = Spread::of(&[]);
        assert_eq!((s.median_ms, s.p99_ms, s.max_ms), (0.0, 0.0, 0.0));
    }

    #[test]
    fn a_gap_counts_from_the_last_acknowledgement_before_the_trial() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        // Writes every 10 ms, then a pause from 30 ms to 730 ms; the trial runs 100..1000.
        let acks = [at(10), at(20), at(30), at(730), at(740)];
        assert_eq!(longest_gap(&acks, at(100), at(1000)), 700.0);
        // The end of the trial closes the last pause.
        assert_eq!(longest_gap(&acks, at(0), at(1500)), 760.0);
        // No acknowledgement before the trial: the pause counts from its start.
        assert_eq!(longest_gap(&acks[3..], at(100), at(800)), 630.0);
    }
}

//! `failover`: how long a replicated partition is unavailable when its leader dies.
//!
//! On a cluster this benchmark started itself, each trial kills the partition leader with
//! SIGKILL and times two things from that moment: when another node's Metadata names a new
//! live leader ("leader visible"), and when an acks=all record sent after the kill is
//! acknowledged ("first acknowledged write", what a producer application waits for:
//! librdkafka's own reconnects, metadata refreshes and retries included). The killed node
//! is then restarted and the next trial waits until every replica is back in sync.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde::Serialize;

use crate::broker_proc::SpawnedBroker;
use crate::cli::FailoverArgs;
use crate::kafka::{ClientSettings, PlainContext};
use crate::report::RunInfo;

/// How long the cluster may take to have every replica in sync again after a restart.
const RESYNC_TIMEOUT: Duration = Duration::from_secs(60);
/// How long one trial may take to see a new leader or an acknowledged write.
const TRIAL_TIMEOUT: Duration = Duration::from_secs(60);
/// How often the metadata is polled.
const POLL_INTERVAL: Duration = Duration::from_millis(10);

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

#[derive(Debug, Clone, Serialize)]
pub struct FailoverReport {
    #[serde(flatten)]
    pub run: RunInfo,
    pub nodes: u32,
    pub trials: u32,
    /// Per trial: kill → a live node's Metadata names a new leader.
    pub leader_visible_ms: Vec<f64>,
    /// Per trial: kill → the first acks=all record sent after it is acknowledged.
    pub first_ack_ms: Vec<f64>,
    pub leader_visible: Spread,
    pub first_ack: Spread,
}

/// The partition's leader and in-sync replicas as the node at `addr` sees them.
fn leader_and_isr(probe: &BaseConsumer<PlainContext>, topic: &str) -> Option<(i32, usize)> {
    let md = probe
        .fetch_metadata(Some(topic), Duration::from_secs(2))
        .ok()?;
    let t = md.topics().iter().find(|t| t.name() == topic)?;
    let p = t.partitions().iter().find(|p| p.id() == 0)?;
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
    let topic = args.common.topic.as_str();
    let producer: FutureProducer<PlainContext> = client
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
        .context("cannot create the producer")?;
    let send = |value: &str| -> anyhow::Result<()> {
        let record: FutureRecord<'_, (), str> = FutureRecord::to(topic).partition(0).payload(value);
        futures::executor::block_on(producer.send(record, TRIAL_TIMEOUT))
            .map(|_| ())
            .map_err(|(e, _)| anyhow::anyhow!("acks=all write failed: {e}"))
    };
    send("warm-up")?;

    let mut leader_visible_ms = Vec::new();
    let mut first_ack_ms = Vec::new();
    for trial in 1..=args.trials {
        let leader = wait_in_sync(cluster, client, topic, nodes)?;
        let victim = usize::try_from(leader).context("no leader")?;
        let watcher_id = if victim == 1 { 2 } else { 1 };
        let watcher_addr = cluster
            .addr(watcher_id)
            .context("no watcher node")?
            .to_string();
        let probe = probe_of(client, &watcher_addr)?;
        // Warm the watcher's connection so that the first poll after the kill is fast.
        leader_and_isr(&probe, topic).context("the watcher cannot read the metadata")?;

        let killed_at = Instant::now();
        cluster.kill9(victim)?;
        let seen: Arc<Mutex<Option<Duration>>> = Arc::new(Mutex::new(None));
        let stop = Arc::new(AtomicBool::new(false));
        let watcher = {
            let (seen, stop) = (Arc::clone(&seen), Arc::clone(&stop));
            let victim = i32::try_from(victim).unwrap_or(-1);
            let topic = topic.to_string();
            thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) && killed_at.elapsed() < TRIAL_TIMEOUT {
                    if let Some((leader, _)) = leader_and_isr(&probe, &topic)
                        && leader >= 0
                        && leader != victim
                    {
                        *seen.lock().unwrap_or_else(|e| e.into_inner()) = Some(killed_at.elapsed());
                        return;
                    }
                    thread::sleep(POLL_INTERVAL);
                }
            })
        };
        let acked = send(&format!("trial-{trial}")).map(|()| killed_at.elapsed());
        stop.store(true, Ordering::Relaxed);
        let _ = watcher.join();
        let acked = acked?;
        let visible = seen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .with_context(|| format!("trial {trial}: no new leader within {TRIAL_TIMEOUT:?}"))?;
        leader_visible_ms.push(visible.as_secs_f64() * 1e3);
        first_ack_ms.push(acked.as_secs_f64() * 1e3);
        if !args.common.quiet {
            eprintln!(
                "trial {trial}/{}: killed node {victim}; new leader visible after {:.0} ms, first acknowledged write after {:.0} ms",
                args.trials,
                visible.as_secs_f64() * 1e3,
                acked.as_secs_f64() * 1e3
            );
        }
        cluster.restart(victim)?;
    }
    Ok(FailoverReport {
        run: RunInfo {
            brokers: client.brokers.clone(),
            topic: topic.to_string(),
            partitions: 1,
        },
        nodes,
        trials: args.trials,
        leader_visible: Spread::of(&leader_visible_ms),
        first_ack: Spread::of(&first_ack_ms),
        leader_visible_ms,
        first_ack_ms,
    })
}

/// Waits until every replica of partition 0 is in sync; returns its leader.
fn wait_in_sync(
    cluster: &SpawnedBroker,
    client: &ClientSettings,
    topic: &str,
    nodes: u32,
) -> anyhow::Result<i32> {
    let probe = probe_of(client, &cluster.bootstrap())?;
    let deadline = Instant::now() + RESYNC_TIMEOUT;
    loop {
        if let Some((leader, isr)) = leader_and_isr(&probe, topic)
            && leader > 0
            && isr == nodes as usize
        {
            return Ok(leader);
        }
        if Instant::now() >= deadline {
            bail!(
                "partition 0 of {topic} did not have all {nodes} replicas in sync within {RESYNC_TIMEOUT:?}; logs:\n{}",
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
}

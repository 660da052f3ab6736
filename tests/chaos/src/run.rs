//! One run: start the cluster, create the topic, start the clients, apply faults until the
//! duration is up, heal everything, read every partition, check.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::Context;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;

use crate::checker::{self, Anomaly};
use crate::history::History;
use crate::nemesis::{self, FaultKind, Schedule};
use crate::nodes::Cluster;
use crate::proxy::Faults;
use crate::rng::Rng;
use crate::transactions::start_transactional_producers;
use crate::workload::{
    self, ConsumerMode, Recorder, Values, WorkloadConfig, start_poller, start_producers,
};

/// Everything a run is told.
#[derive(Debug, Clone)]
pub struct RunConfig {
    pub bin: PathBuf,
    /// Where the nodes' data dirs and logs go.
    pub dir: PathBuf,
    pub nodes: i32,
    pub seed: u64,
    /// How long faults are applied.
    pub duration: Duration,
    pub faults: Vec<FaultKind>,
    /// Whether the last round of faults is finished after the duration, so that every kind
    /// runs at least once however slow the machine.
    pub complete_rounds: bool,
    /// Quiet time between faults.
    pub interval: Duration,
    /// How long a fault lasts: a random time in this range.
    pub hold: (Duration, Duration),
    pub partitions: i32,
    pub producers: usize,
    /// Consumers in the workload's consumer group (besides the assign-mode consumer).
    pub group_consumers: usize,
    /// Transactional producers (besides the idempotent ones).
    pub transactional_producers: usize,
    /// Sends per second of each producer.
    pub rate: u32,
    /// How long the cluster may take to be healthy again after a fault or a restart.
    pub settle: Duration,
    pub message_timeout: Duration,
}

/// What a run found.
pub struct RunOutcome {
    pub history: History,
    pub anomalies: Vec<Anomaly>,
}

const TOPIC: &str = "chaos";

/// Prints a line with the time since the run began.
struct Clock(Instant);

impl Clock {
    fn say(&self, what: impl AsRef<str>) {
        println!(
            "[{:7.1}s] {}",
            self.0.elapsed().as_secs_f64(),
            what.as_ref()
        );
    }
}

pub fn run(config: &RunConfig) -> anyhow::Result<RunOutcome> {
    let clock = Clock(Instant::now());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let mut rng = Rng::new(config.seed);
    let faults = Faults::new(rng.next_u64());
    let mut cluster = Cluster::new(
        config.nodes,
        config.bin.clone(),
        &config.dir,
        faults,
        runtime.handle().clone(),
    )?;
    for id in cluster.ids() {
        cluster.start(id)?;
    }
    cluster
        .wait_healthy(None, config.settle)
        .context("the cluster did not form")?;
    clock.say(format!(
        "{} nodes up (data and logs under {})",
        config.nodes,
        config.dir.display()
    ));
    create_topic(&cluster.bootstrap(), config)?;
    cluster
        .wait_healthy(Some((TOPIC, config.partitions)), config.settle)
        .context("the topic's partitions did not get their leaders")?;

    let workload = WorkloadConfig {
        bootstrap: cluster.bootstrap(),
        topic: TOPIC.into(),
        partitions: config.partitions,
        rate: config.rate,
        message_timeout: config.message_timeout,
        client_log: Some(Arc::new(parking_lot::Mutex::new(std::fs::File::create(
            config.dir.join("producers.log"),
        )?))),
    };
    let recorder = Arc::new(Recorder::default());
    let values = Values::new(config.partitions);
    let instances = Arc::new(AtomicUsize::new(0));
    let producers = start_producers(config.producers, &workload, &recorder, &values, &instances)?;
    let transactional = start_transactional_producers(
        config.transactional_producers,
        &workload,
        &recorder,
        &values,
        &instances,
    )?;
    let mut pollers = vec![start_poller(0, ConsumerMode::Assign, &workload, &recorder)?];
    for id in 1..=config.group_consumers {
        pollers.push(start_poller(
            id,
            ConsumerMode::Subscribe,
            &workload,
            &recorder,
        )?);
    }
    clock.say(format!(
        "{} producers, an assign-mode consumer and {} consumers in a group on {} partitions; faults for {:?}",
        config.producers, config.group_consumers, config.partitions, config.duration
    ));

    let mut anomalies = Vec::new();
    let nemesis_end = Instant::now() + config.duration;
    let mut schedule = Schedule::new(config.faults.clone(), rng.fork());
    while Instant::now() < nemesis_end || (config.complete_rounds && schedule.mid_round()) {
        thread::sleep(config.interval);
        let Some(kind) = schedule.next_kind() else {
            break;
        };
        if let Err(e) = one_fault(kind, &mut cluster, &mut rng, config, &clock) {
            clock.say(format!("{kind} failed: {e:#}"));
            anomalies.push(Anomaly::Unrecovered {
                reason: format!("{kind}: {e:#}"),
            });
            cluster.heal()?;
        }
        clock.say(recorder.progress());
    }

    clock.say("healing: every node up, every link healthy");
    cluster.heal()?;
    let recovery = config.settle * 3;
    match cluster.wait_healthy(Some((TOPIC, config.partitions)), recovery) {
        Ok(took) => clock.say(format!("healthy after {:.1}s", took.as_secs_f64())),
        Err(e) => anomalies.push(Anomaly::Unrecovered {
            reason: format!("{e:#}"),
        }),
    }
    // A few more seconds of sends on a healthy cluster, then every send's outcome.
    thread::sleep(Duration::from_secs(3));
    producers.stop();
    transactional.stop();
    clock.say(format!("producers stopped: {}", recorder.progress()));
    wait_caught_up(&recorder, config.settle);
    for poller in pollers {
        poller.stop();
    }
    let final_read = match workload::final_read(&workload, recovery) {
        Ok(log) => log,
        Err(e) => {
            anomalies.push(Anomaly::Unrecovered {
                reason: format!("{e:#}"),
            });
            Default::default()
        }
    };
    clock.say(format!(
        "final read: {} records",
        final_read.values().map(Vec::len).sum::<usize>()
    ));
    cluster.kill_all();

    let mut history = recorder.history(final_read);
    for node in cluster.every_node() {
        for line in node.panics() {
            history.panics.push((format!("node {}", node.id), line));
        }
    }
    anomalies.extend(checker::check(&history));
    Ok(RunOutcome { history, anomalies })
}

/// One fault: apply, hold, heal, let the cluster settle.
fn one_fault(
    kind: FaultKind,
    cluster: &mut Cluster,
    rng: &mut Rng,
    config: &RunConfig,
    clock: &Clock,
) -> anyhow::Result<()> {
    let hold = Duration::from_millis(rng.between(
        config.hold.0.as_millis() as u64,
        config.hold.1.as_millis() as u64,
    ));
    let applied = nemesis::apply(kind, cluster, rng, TOPIC, config.partitions, config.settle)?;
    clock.say(format!("{kind}: {}", applied.description));
    if kind != FaultKind::RollingRestart {
        thread::sleep(hold);
        cluster.heal()?;
        clock.say(format!("healed after {:.1}s", hold.as_secs_f64()));
    }
    let took = cluster.wait_healthy(Some((TOPIC, config.partitions)), config.settle)?;
    clock.say(format!("healthy again after {:.1}s", took.as_secs_f64()));
    if let Some(plan) = &applied.plan {
        nemesis::wait_reassigned(cluster, plan, config.settle)?;
        clock.say("the reassignment completed");
    }
    if let Some(id) = applied.joined {
        nemesis::leave(cluster, id, config.settle)?;
        clock.say(format!(
            "node {id} decommissioned, unregistered and stopped"
        ));
        let took = cluster.wait_healthy(Some((TOPIC, config.partitions)), config.settle)?;
        clock.say(format!("healthy again after {:.1}s", took.as_secs_f64()));
    }
    Ok(())
}

fn create_topic(bootstrap: &str, config: &RunConfig) -> anyhow::Result<()> {
    let admin: AdminClient<DefaultClientContext> = sluice_e2e::client_config(bootstrap)
        .create()
        .context("admin client")?;
    let replication = config.nodes.min(3);
    let topic = NewTopic::new(
        TOPIC,
        config.partitions,
        TopicReplication::Fixed(replication),
    )
    .set(
        "min.insync.replicas",
        if replication >= 3 { "2" } else { "1" },
    );
    let options = AdminOptions::new()
        .request_timeout(Some(Duration::from_secs(10)))
        .operation_timeout(Some(Duration::from_secs(10)));
    let results =
        sluice_e2e::block_on(admin.create_topics([&topic], &options)).context("CreateTopics")?;
    for r in results {
        r.map_err(|(name, code)| anyhow::anyhow!("creating {name}: {code}"))?;
    }
    Ok(())
}

/// Waits (at most `timeout`) until the consumers polled every partition up to its last
/// acknowledged record. (Not up to the high watermark: a log that ends with transaction
/// markers or aborted records has offsets no read_committed consumer ever returns.)
fn wait_caught_up(recorder: &Recorder, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    let acked = recorder.acked_up_to();
    while Instant::now() < deadline {
        let polled = recorder.polled_up_to();
        if acked
            .iter()
            .all(|(p, last)| polled.get(p).is_some_and(|o| o >= last))
        {
            return;
        }
        thread::sleep(Duration::from_millis(200));
    }
}

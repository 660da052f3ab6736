//! `sluice-chaos`: runs a Sluice cluster under faults and checks what its clients saw.
//! Ends with `N operations, M anomalies`; exits 1 when there are anomalies, 2 when the
//! harness itself could not run.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use sluice_chaos::nemesis::FaultKind;
use sluice_chaos::run::{RunConfig, run};
use sluice_chaos::{checker, edn};

/// Runs a Sluice cluster of real processes under faults (kill -9, SIGSTOP, network
/// partitions, resets, delays, rolling restarts, clock skew) with idempotent acks=all
/// librdkafka producers, an assign-mode consumer and a consumer group, then checks every
/// acknowledged write, every read and every node log (Jepsen's Kafka queue analysis).
#[derive(Debug, Parser)]
#[command(name = "sluice-chaos", version)]
struct Args {
    /// How long faults are applied, in seconds (start-up, healing and the final read come
    /// on top).
    #[arg(long, default_value_t = 300)]
    duration: u64,
    /// The seed of the fault schedule and every random choice (default: from the clock;
    /// printed either way).
    #[arg(long)]
    seed: Option<u64>,
    /// Nodes (3, or 5 for two-node minorities).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(i32).range(1..=9))]
    nodes: i32,
    /// Fault kinds, comma-separated (default: all): kill, kill-leader, kill-controller,
    /// pause, isolate, split, bridge, one-way, reset, delay, throttle, client-isolate,
    /// client-reset, rolling-restart, clock-skew, reassign-kill, power-loss, join-leave.
    #[arg(long, value_delimiter = ',')]
    faults: Vec<FaultKind>,
    /// Finish the last round of faults after the duration: every fault kind runs at least
    /// once (each round runs every kind once, in a seeded order).
    #[arg(long)]
    complete_rounds: bool,
    /// Quiet seconds between one fault's recovery and the next fault.
    #[arg(long, default_value_t = 3.0)]
    interval: f64,
    /// Shortest time a fault lasts, in seconds.
    #[arg(long, default_value_t = 3.0)]
    hold_min: f64,
    /// Longest time a fault lasts, in seconds.
    #[arg(long, default_value_t = 12.0)]
    hold_max: f64,
    /// Partitions of the workload's topic (replication factor 3, min.insync.replicas 2).
    #[arg(long, default_value_t = 4)]
    partitions: i32,
    /// Idempotent producers.
    #[arg(long, default_value_t = 2)]
    producers: usize,
    /// Consumers in one consumer group (subscribe mode, auto-commit), besides the
    /// assign-mode consumer.
    #[arg(long, default_value_t = 2)]
    group_consumers: usize,
    /// Transactional producers, besides the idempotent ones: four records to several
    /// partitions per transaction, one transaction in four aborted.
    #[arg(long, default_value_t = 1)]
    transactional_producers: usize,
    /// Sends per second of each producer.
    #[arg(long, default_value_t = 100)]
    rate: u32,
    /// Seconds the cluster may take to be healthy again after a fault.
    #[arg(long, default_value_t = 60)]
    settle: u64,
    /// librdkafka's message.timeout.ms, in seconds.
    #[arg(long, default_value_t = 60)]
    message_timeout: u64,
    /// The sluice binary (default: $SLUICE_BIN, else `sluice` next to this program, else
    /// target/release/sluice, else target/debug/sluice).
    #[arg(long)]
    bin: Option<PathBuf>,
    /// Directory for the nodes' data and logs (default: a new one under the temp dir, kept
    /// when the run finds anomalies).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Also write the history here, in Jepsen's EDN history format (the operations of its
    /// Kafka queue workload), for Jepsen's own checker. A run with anomalies always writes
    /// it to history.edn in the kept directory.
    #[arg(long)]
    history: Option<PathBuf>,
}

fn find_sluice(explicit: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    let beside_me = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|d| d.join("sluice")));
    let candidates = explicit
        .into_iter()
        .chain(std::env::var_os("SLUICE_BIN").map(PathBuf::from))
        .chain(beside_me)
        .chain([
            PathBuf::from("target/release/sluice"),
            PathBuf::from("target/debug/sluice"),
        ]);
    let mut tried = Vec::new();
    for path in candidates {
        if path.is_file() {
            return Ok(path);
        }
        tried.push(path.display().to_string());
    }
    anyhow::bail!(
        "no sluice binary (tried {}); build it with `cargo build --release -p sluice` or pass --bin",
        tried.join(", ")
    )
}

fn config(args: Args) -> anyhow::Result<(RunConfig, bool)> {
    let seed = args.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or_default()
    });
    let (dir, temporary) = match args.dir {
        Some(dir) => (dir, false),
        None => (
            std::env::temp_dir().join(format!("sluice-chaos-{seed}-{}", std::process::id())),
            true,
        ),
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
    let faults = if args.faults.is_empty() {
        FaultKind::ALL.to_vec()
    } else {
        args.faults
    };
    let secs = |s: f64| Duration::from_secs_f64(s.max(0.0));
    Ok((
        RunConfig {
            bin: find_sluice(args.bin)?,
            dir,
            nodes: args.nodes,
            seed,
            duration: Duration::from_secs(args.duration),
            faults,
            complete_rounds: args.complete_rounds,
            interval: secs(args.interval),
            hold: (secs(args.hold_min), secs(args.hold_max.max(args.hold_min))),
            partitions: args.partitions.max(1),
            producers: args.producers.max(1),
            group_consumers: args.group_consumers,
            transactional_producers: args.transactional_producers,
            rate: args.rate.max(1),
            settle: Duration::from_secs(args.settle),
            message_timeout: Duration::from_secs(args.message_timeout.max(1)),
        },
        temporary,
    ))
}

fn main() -> ExitCode {
    let args = Args::parse();
    let history_path = args.history.clone();
    let (config, temporary) = match config(args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("sluice-chaos: {e:#}");
            return ExitCode::from(2);
        }
    };
    let faults: Vec<&str> = config.faults.iter().map(|k| k.name()).collect();
    println!(
        "sluice-chaos: seed {}, {} nodes, {}s of faults ({}), {}",
        config.seed,
        config.nodes,
        config.duration.as_secs(),
        faults.join(","),
        config.bin.display()
    );
    let outcome = match run(&config) {
        Ok(outcome) => outcome,
        Err(e) => {
            eprintln!(
                "sluice-chaos: the run could not complete: {e:#} (node logs under {})",
                config.dir.display()
            );
            return ExitCode::from(2);
        }
    };
    print!("{}", checker::summarize(&outcome.anomalies, 10));
    let anomalies = outcome.anomalies.len();
    let edn = edn::to_edn(&outcome.history);
    let mut written = history_path.into_iter().collect::<Vec<_>>();
    if anomalies > 0 {
        written.push(config.dir.join("history.edn"));
    }
    for path in written {
        match std::fs::write(&path, &edn) {
            Ok(()) => println!("history (Jepsen EDN) written to {}", path.display()),
            Err(e) => eprintln!("sluice-chaos: cannot write {}: {e}", path.display()),
        }
    }
    if anomalies == 0 && temporary {
        let _ = std::fs::remove_dir_all(&config.dir);
    } else if anomalies > 0 {
        println!("node logs and data kept under {}", config.dir.display());
    }
    println!(
        "{} operations, {anomalies} anomalies",
        outcome.history.operations()
    );
    if anomalies == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

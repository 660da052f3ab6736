//! `sluice-bench`: the load generator behind `sluice bench`.
//!
//! It drives a Kafka-compatible broker with librdkafka (the client most non-Java users run),
//! the way kafka-producer-perf-test and rdkafka_performance do, and reports throughput,
//! latency percentiles and — for a broker it started or was given the PID of — broker CPU
//! seconds per GB and peak RSS. It lives in its own binary so that the broker stays pure
//! Rust; `sluice bench …` execs it with the same arguments.
//!
//! Modules: `cli` (flags), `kafka` (client setup, reachability, topic), `produce`,
//! `consume`, `e2e` (the three modes), `stats` (histograms, rates), `broker_proc` (/proc
//! sampling, starting `sluice serve`), `report` (JSON, table, progress line).

mod broker_proc;
mod cli;
mod consume;
mod e2e;
mod kafka;
mod produce;
mod report;
mod stats;

use std::process::ExitCode;

use clap::Parser;

use crate::broker_proc::{SpawnOptions, SpawnedBroker};
use crate::cli::{BenchCommand, Cli, CommonArgs};
use crate::kafka::ClientSettings;
use crate::report::Report;

const DEFAULT_BROKERS: &str = "127.0.0.1:9092";

fn main() -> ExitCode {
    // Start the shared monotonic clock before any thread reads it.
    stats::now_nanos();
    let cli = Cli::parse();
    match run(&cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sluice-bench: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The broker under test: its address, the PID to sample, and the process when we started
/// it ourselves.
struct Target {
    brokers: String,
    pid: Option<u32>,
    spawned: Option<SpawnedBroker>,
}

fn target(common: &CommonArgs) -> anyhow::Result<Target> {
    if common.start_broker {
        let broker = SpawnedBroker::start(&SpawnOptions {
            sluice_bin: common.sluice_bin.as_deref(),
            data_dir: common.broker_data_dir.as_deref(),
            extra_args: &common.broker_args,
        })?;
        if !common.quiet {
            eprintln!(
                "started sluice (pid {}) on {}",
                broker.pid().unwrap_or(0),
                broker.bootstrap()
            );
        }
        return Ok(Target {
            brokers: broker.bootstrap(),
            pid: broker.pid(),
            spawned: Some(broker),
        });
    }
    Ok(Target {
        brokers: common
            .brokers
            .clone()
            .unwrap_or_else(|| DEFAULT_BROKERS.to_string()),
        pid: common.broker_pid,
        spawned: None,
    })
}

fn run(command: &BenchCommand) -> anyhow::Result<()> {
    let common = match command {
        BenchCommand::Produce(a) => &a.common,
        BenchCommand::Consume(a) => &a.common,
        BenchCommand::E2e(a) => &a.common,
    };
    let target = target(common)?;
    kafka::check_reachable(&target.brokers)?;
    let client = ClientSettings::new(&target.brokers, &common.properties)?;
    let topic = common.topic.as_str();

    let report: anyhow::Result<Report> = match command {
        BenchCommand::Produce(a) => kafka::ensure_topic(
            &client,
            topic,
            a.producer.partitions,
            a.producer.replication_factor,
            &a.producer.topic_configs,
        )
        .and_then(|n| produce::run(a, &client, n, target.pid)),
        BenchCommand::Consume(a) => kafka::topic_partitions(&client, topic)
            .and_then(|p| consume::run(a, &client, &p, target.pid)),
        BenchCommand::E2e(a) => kafka::ensure_topic(
            &client,
            topic,
            a.producer.partitions,
            a.producer.replication_factor,
            &a.producer.topic_configs,
        )
        .and_then(|_| kafka::topic_partitions(&client, topic))
        .and_then(|p| e2e::run(a, &client, &p, target.pid)),
    };

    // Print the figures even when the broker then fails to stop cleanly: they were measured.
    let stopped = match target.spawned {
        Some(b) => b.stop(),
        None => Ok(()),
    };
    let report = match (report, stopped.as_ref()) {
        (Ok(r), _) => r,
        (Err(e), Ok(())) => return Err(e),
        (Err(e), Err(stop)) => return Err(e.context(format!("{stop:#}"))),
    };
    if common.json {
        println!("{}", report.to_json()?);
    } else {
        print!("{}", report.to_table());
    }
    stopped
}

//! `sluice-bench`: the load generator behind `sluice bench`.
//!
//! It drives a Kafka-compatible broker with librdkafka (the client most non-Java users run),
//! the way kafka-producer-perf-test and rdkafka_performance do, and reports throughput,
//! latency percentiles and — for a broker it started or was given the PID of — broker CPU
//! seconds per GB and peak RSS. It lives in its own binary so that the broker stays pure
//! Rust; `sluice bench …` execs it with the same arguments.
//!
//! Modules: `cli` (flags), `kafka` (client setup, reachability, topic), `produce`,
//! `consume`, `e2e`, `failover` (the modes), `authz` (the ACL authorizer alone), `stats`
//! (histograms, rates), `broker_proc` (/proc sampling, starting `sluice serve`), `report`
//! (JSON, table, progress line).

mod authz;
mod broker_proc;
mod cli;
mod consume;
mod e2e;
mod failover;
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

/// The broker under test: its address, the PIDs to sample, and the processes when we started
/// them ourselves.
struct Target {
    brokers: String,
    pids: Vec<u32>,
    spawned: Option<SpawnedBroker>,
}

fn target(common: &CommonArgs) -> anyhow::Result<Target> {
    let in_vain = common.spawn_flags_without_a_broker();
    if !in_vain.is_empty() {
        anyhow::bail!(
            "{} given, but this run starts no broker: add --start-broker or --cluster N",
            in_vain.join(", ")
        );
    }
    if common.start_broker || common.cluster.is_some() {
        let broker = SpawnedBroker::start(&SpawnOptions {
            sluice_bin: common.sluice_bin.as_deref(),
            data_dir: common.broker_data_dir.as_deref(),
            extra_args: &common.broker_args,
            nodes: common.cluster.unwrap_or(1),
        })?;
        if !common.quiet {
            eprintln!(
                "started sluice (pid {:?}) on {}",
                broker.pids(),
                broker.bootstrap()
            );
        }
        return Ok(Target {
            brokers: broker.bootstrap(),
            pids: broker.pids(),
            spawned: Some(broker),
        });
    }
    Ok(Target {
        brokers: common
            .brokers
            .clone()
            .unwrap_or_else(|| DEFAULT_BROKERS.to_string()),
        pids: common.broker_pid.into_iter().collect(),
        spawned: None,
    })
}

/// The librdkafka properties of the security flags.
fn security(common: &CommonArgs) -> anyhow::Result<Vec<(String, String)>> {
    common.security.properties().map_err(anyhow::Error::msg)
}

fn run(command: &BenchCommand) -> anyhow::Result<()> {
    let common = match command {
        BenchCommand::Produce(a) => &a.common,
        BenchCommand::Consume(a) => &a.common,
        BenchCommand::E2e(a) => &a.common,
        BenchCommand::Failover(a) => return run_failover(a),
        BenchCommand::Authz(a) => return run_authz(a),
    };
    let target = target(common)?;
    kafka::check_reachable(&target.brokers)?;
    let client = ClientSettings::new(&target.brokers, security(common)?, &common.properties)?;
    if let Some(nodes) = common.cluster {
        kafka::wait_for_brokers(&client, usize::try_from(nodes)?)?;
    }
    let topic = common.topic.as_str();

    let report: anyhow::Result<Report> = match command {
        BenchCommand::Produce(a) => kafka::ensure_topic(
            &client,
            topic,
            a.producer.partitions,
            a.producer.replication_factor,
            &a.producer.topic_configs,
        )
        .and_then(|n| produce::run(a, &client, n, &target.pids)),
        BenchCommand::Consume(a) => kafka::topic_partitions(&client, topic)
            .and_then(|p| consume::run(a, &client, &p, &target.pids)),
        BenchCommand::E2e(a) => kafka::ensure_topic(
            &client,
            topic,
            a.producer.partitions,
            a.producer.replication_factor,
            &a.producer.topic_configs,
        )
        .and_then(|_| kafka::topic_partitions(&client, topic))
        .and_then(|p| e2e::run(a, &client, &p, &target.pids)),
        BenchCommand::Failover(_) | BenchCommand::Authz(_) => unreachable!("handled above"),
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
    print_report(common, &report)?;
    stopped
}

fn print_report(common: &CommonArgs, report: &Report) -> anyhow::Result<()> {
    if common.json {
        println!("{}", report.to_json()?);
    } else {
        print!("{}", report.to_table());
    }
    Ok(())
}

/// `authz` needs no broker.
fn run_authz(args: &cli::AuthzArgs) -> anyhow::Result<()> {
    let report = authz::run(args)?;
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print!("{}", report.to_table());
    }
    Ok(())
}

/// `failover` always runs on a cluster it starts itself: it kills nodes.
fn run_failover(args: &cli::FailoverArgs) -> anyhow::Result<()> {
    let common = &args.common;
    if common.brokers.is_some() || common.broker_pid.is_some() {
        anyhow::bail!(
            "failover starts its own cluster (it kills nodes): use --cluster N instead of --brokers"
        );
    }
    let nodes = common.cluster.unwrap_or(3);
    if nodes < 3 {
        anyhow::bail!(
            "--cluster {nodes}: failover needs at least 3 nodes (a quorum must outlive the killed leader)"
        );
    }
    let mut cluster = SpawnedBroker::start(&SpawnOptions {
        sluice_bin: common.sluice_bin.as_deref(),
        data_dir: common.broker_data_dir.as_deref(),
        extra_args: &common.broker_args,
        nodes,
    })?;
    if !common.quiet {
        eprintln!(
            "started a {nodes}-node cluster (pids {:?}) on {}",
            cluster.pids(),
            cluster.bootstrap()
        );
    }
    let client = ClientSettings::new(&cluster.bootstrap(), security(common)?, &common.properties)?;
    kafka::wait_for_brokers(&client, usize::try_from(nodes)?)?;
    let replication_factor = i32::try_from(nodes)?;
    let report = kafka::ensure_topic(
        &client,
        &common.topic,
        failover::partitions_for(args.scenario, nodes),
        replication_factor,
        &[],
    )
    .and_then(|_| failover::run(args, &mut cluster, &client, nodes));
    let stopped = cluster.stop();
    let report = Report::Failover(report?);
    print_report(common, &report)?;
    stopped
}

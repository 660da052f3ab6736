//! `sluice`: the broker binary.
//!
//! This file only parses the command line and starts things (docs/ARCHITECTURE.md §2);
//! everything the broker does lives in `sluice-broker`.

mod alloc_guard;
mod bench;
mod cli;
mod dev_cluster;
mod serve;

#[cfg(test)]
mod decode_safety_tests;

use clap::{Parser, Subcommand};

#[global_allocator]
static ALLOCATOR: alloc_guard::GuardedAllocator = alloc_guard::GuardedAllocator;

/// Sluice: an event streaming platform that speaks the Apache Kafka protocol.
#[derive(Parser)]
#[command(name = "sluice", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a broker (no arguments needed: 127.0.0.1:9092, data in ./sluice-data).
    /// A flag given twice takes its last value.
    #[command(args_override_self = true)]
    Serve(Box<serve::ServeArgs>),
    /// Measure a Kafka-compatible broker with a real client (librdkafka):
    /// `sluice bench produce|consume|e2e --help`.
    #[command(disable_help_flag = true)]
    Bench {
        /// Arguments passed to the load generator.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<std::ffi::OsString>,
    },
    /// Manage topics: create, list, describe, delete, alter-config, add-partitions.
    Topic(cli::topic::TopicArgs),
    /// Produce records from stdin or a file, one per line.
    Produce(Box<cli::produce::ProduceArgs>),
    /// Consume records and print them (a template, or JSON).
    Consume(Box<cli::consume::ConsumeArgs>),
    /// Inspect consumer groups, reset their offsets, delete them.
    Group(cli::group::GroupArgs),
    /// Describe the cluster: brokers, controller, API versions.
    Cluster(cli::cluster::ClusterArgs),
    /// Manage SCRAM users: create, delete, list, describe.
    User(cli::user::UserArgs),
    /// Manage ACLs: create, list, delete.
    Acl(cli::acl::AclArgs),
    /// Manage client quotas: alter, describe.
    Quota(cli::quota::QuotaArgs),
    /// Start a local cluster of `sluice serve` processes (data under ./sluice-dev-cluster)
    /// to try replication and failover; Ctrl-C stops them all.
    DevCluster(dev_cluster::DevClusterArgs),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve::run(*args),
        Command::Bench { args } => bench::run(args),
        Command::Topic(args) => cli::run(cli::topic::run(args)),
        Command::Produce(args) => cli::run(cli::produce::run(*args)),
        Command::Consume(args) => cli::run(cli::consume::run(*args)),
        Command::Group(args) => cli::run(cli::group::run(args)),
        Command::Cluster(args) => cli::run(cli::cluster::run(args)),
        Command::User(args) => cli::run(cli::user::run(args)),
        Command::Acl(args) => cli::run(cli::acl::run(args)),
        Command::Quota(args) => cli::run(cli::quota::run(args)),
        Command::DevCluster(args) => dev_cluster::run(args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            std::process::ExitCode::FAILURE
        }
    }
}

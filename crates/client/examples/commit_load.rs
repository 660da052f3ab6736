//! Load for `__consumer_offsets`: `groups` consumer groups each commit the offsets of
//! `partitions` partitions of `topic`, `rounds` times, over `connections` connections at once
//! (one OffsetCommit request of `partitions` offsets per commit, as a consumer committing its
//! whole assignment does). `scripts/bench-coordinator-startup.sh` uses it to fill
//! `__consumer_offsets` with 1,000,000 offset commits before timing a restart.
//!
//! ```sh
//! cargo run --release -p sluice-client --example commit_load -- \
//!     127.0.0.1:9092 commit-load 100 1000 10 8
//! ```
//!
//! Arguments: brokers, topic (created with `partitions` partitions when missing), groups,
//! rounds, partitions, connections (default 8). Prints the offsets committed and the rate.

use std::time::Instant;

use sluice_client::{Client, ClientConfig, Error, KafkaCode, NewTopic};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Kafka's TOPIC_ALREADY_EXISTS: a second run reuses the topic.
const TOPIC_ALREADY_EXISTS: i16 = 36;

struct Load {
    brokers: String,
    topic: String,
    groups: usize,
    rounds: i64,
    partitions: i32,
    connections: usize,
}

fn arg<T: std::str::FromStr>(args: &[String], index: usize, name: &str) -> Result<T, BoxError> {
    args.get(index)
        .ok_or_else(|| format!("missing argument {name}"))?
        .parse()
        .map_err(|_| format!("argument {name} is not a number").into())
}

fn parse() -> Result<Load, BoxError> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: commit_load BROKERS TOPIC GROUPS ROUNDS PARTITIONS [CONNECTIONS]";
    if args.len() < 5 {
        return Err(usage.into());
    }
    Ok(Load {
        brokers: args.first().cloned().unwrap_or_default(),
        topic: args.get(1).cloned().unwrap_or_default(),
        groups: arg(&args, 2, "GROUPS")?,
        rounds: arg(&args, 3, "ROUNDS")?,
        partitions: arg(&args, 4, "PARTITIONS")?,
        connections: if args.len() > 5 {
            arg(&args, 5, "CONNECTIONS")?
        } else {
            8
        },
    })
}

/// Commits every round of the groups `first, first + step, …` over one connection.
async fn commit_groups(load: &Load, first: usize, step: usize) -> Result<u64, BoxError> {
    let mut client = Client::connect(&load.brokers, ClientConfig::default()).await?;
    let groups: Vec<String> = (first..load.groups)
        .step_by(step)
        .map(|g| format!("commit-load-{g}"))
        .collect();
    let mut committed = 0;
    for round in 0..load.rounds {
        let offsets: Vec<(i32, i64)> = (0..load.partitions).map(|p| (p, round)).collect();
        for group in &groups {
            client.commit_offsets(group, &load.topic, &offsets).await?;
            committed += offsets.len() as u64;
        }
    }
    Ok(committed)
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let load = std::sync::Arc::new(parse()?);
    let mut admin = Client::connect(&load.brokers, ClientConfig::default()).await?;
    let topic = NewTopic {
        name: load.topic.clone(),
        partitions: Some(load.partitions),
        replication_factor: None,
        configs: Vec::new(),
    };
    match admin.create_topic(&topic).await {
        Ok(_) => {}
        Err(Error::Kafka { code, .. }) if code == KafkaCode(TOPIC_ALREADY_EXISTS) => {}
        Err(e) => return Err(e.into()),
    }
    let started = Instant::now();
    let connections = load.connections.max(1);
    let tasks: Vec<_> = (0..connections)
        .map(|first| {
            let load = load.clone();
            tokio::spawn(async move { commit_groups(&load, first, connections).await })
        })
        .collect();
    let mut committed = 0;
    for task in tasks {
        committed += task.await??;
    }
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "committed {committed} offsets ({} groups, {} rounds of {} partitions) in {seconds:.1} s: {:.0} offsets/s",
        load.groups,
        load.rounds,
        load.partitions,
        committed as f64 / seconds
    );
    Ok(())
}

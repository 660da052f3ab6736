//! `sluice cluster info|elect-leaders|reassign|decommission|unregister`.

use clap::{Args, Subcommand};
use serde_json::json;
use sluice_client::api_name;

use super::reassign::ReassignArgs;
use super::{Common, one_line, out, out_json, out_table};

#[derive(Args, Debug)]
pub struct ClusterArgs {
    #[command(flatten)]
    common: Common,
    #[command(subcommand)]
    command: ClusterCommand,
}

#[derive(Subcommand, Debug)]
enum ClusterCommand {
    /// Brokers (fenced ones marked), controller, partition health, cluster id, supported
    /// API versions and features.
    Info,
    /// Move leaderships back to the preferred replicas (ElectLeaders), or with
    /// `--unclean` elect out-of-sync replicas where partitions have no leader.
    ElectLeaders {
        /// Only this topic's partitions (every partition of the cluster when omitted).
        #[arg(long)]
        topic: Option<String>,
        /// Only these partitions of `--topic` (repeat the flag).
        #[arg(long, requires = "topic")]
        partition: Vec<i32>,
        /// Elect a replica that is not in sync when no in-sync one is left (may lose
        /// acknowledged records).
        #[arg(long)]
        unclean: bool,
    },
    /// Move partitions' replicas to other brokers (AlterPartitionReassignments, as Kafka's
    /// kafka-reassign-partitions.sh): --generate a balanced plan, --execute it, --verify
    /// or --list the moves, --cancel them.
    Reassign(ReassignArgs),
    /// Move every replica off node N (to the other live brokers, keeping each partition's
    /// replication factor and rack spread), wait until it holds none, and say whether it
    /// can leave.
    Decommission {
        /// The node to empty.
        node: i32,
        /// Start the moves and return without waiting for them.
        #[arg(long)]
        no_wait: bool,
        /// How long to wait for the moves, in seconds.
        #[arg(long, default_value_t = 600)]
        timeout_secs: u64,
    },
    /// Remove node N from the cluster for good (UnregisterBroker, as Kafka's
    /// `kafka-cluster.sh unregister --id N`, and for a voter also
    /// `kafka-metadata-quorum.sh remove-controller`), once `decommission` moved its
    /// replicas off it. A voter leaves the metadata quorum first (refused for the last
    /// voter, and while the voters left could not commit without it); stop it afterwards
    /// and do not start it again: it refuses to, as the others refuse it. A learner is best
    /// stopped first. Ask a node other than N.
    Unregister {
        /// The node to remove.
        node: i32,
    },
}

pub async fn run(args: ClusterArgs) -> Result<(), String> {
    let common = &args.common;
    match args.command {
        ClusterCommand::Reassign(reassign) => super::reassign::run(common, reassign).await,
        ClusterCommand::Decommission {
            node,
            no_wait,
            timeout_secs,
        } => {
            let timeout = std::time::Duration::from_secs(timeout_secs);
            super::reassign::decommission(common, node, no_wait, timeout).await
        }
        ClusterCommand::ElectLeaders {
            topic,
            partition,
            unclean,
        } => elect_leaders(common, topic, partition, unclean).await,
        ClusterCommand::Info => info(common).await,
        ClusterCommand::Unregister { node } => unregister(common, node).await,
    }
}

/// `sluice cluster unregister`.
async fn unregister(common: &Common, node: i32) -> Result<(), String> {
    let mut client = common.connect().await?;
    client.unregister_broker(node).await.map_err(one_line)?;
    if common.json {
        return out_json(&json!({ "unregistered": node }));
    }
    out(&format!(
        "node {node} is unregistered: it is no broker of the cluster and no member of the \
         metadata quorum any more"
    ))
}

/// `sluice cluster elect-leaders`.
async fn elect_leaders(
    common: &Common,
    topic: Option<String>,
    partition: Vec<i32>,
    unclean: bool,
) -> Result<(), String> {
    let mut client = common.connect().await?;
    let partitions = match topic {
        Some(topic) => {
            let indexes = if partition.is_empty() {
                let md = client.topic(&topic).await.map_err(one_line)?;
                md.partitions.iter().map(|p| p.partition).collect()
            } else {
                partition
            };
            Some(vec![(topic, indexes)])
        }
        None => None,
    };
    let results = client
        .elect_leaders(unclean, partitions.as_deref())
        .await
        .map_err(one_line)?;
    if common.json {
        let rows: Vec<_> = results
            .iter()
            .map(|(t, p, code, message)| {
                json!({ "topic": t, "partition": p, "error": code.map(|c| c.name()), "message": message })
            })
            .collect();
        return out_json(&json!({ "results": rows }));
    }
    if results.is_empty() {
        return out("every partition is led by its preferred replica already");
    }
    let rows: Vec<Vec<String>> = results
        .iter()
        .map(|(t, p, code, message)| {
            let outcome = match code {
                None => "elected".to_string(),
                Some(c) => format!("{} {}", c.name(), message.as_deref().unwrap_or("")),
            };
            vec![t.clone(), p.to_string(), outcome.trim_end().to_string()]
        })
        .collect();
    out_table(&["TOPIC", "PARTITION", "OUTCOME"], &rows)
}

/// `sluice cluster info`.
async fn info(common: &Common) -> Result<(), String> {
    let mut client = common.connect().await?;
    let info = client.describe_cluster().await.map_err(one_line)?;
    let md = client.metadata(None).await.map_err(one_line)?;
    // Replicas a reassignment is adding are not missing (brokers without reassignments:
    // none is being added).
    let moving = client
        .list_partition_reassignments()
        .await
        .unwrap_or_default();
    let adding = |topic: &str, partition: i32| {
        moving
            .iter()
            .find(|o| o.topic == topic && o.partition == partition)
            .map_or(0, |o| o.adding.len())
    };
    let under_replicated = md
        .topics
        .iter()
        .flat_map(|t| t.partitions.iter().map(move |p| (t, p)))
        .filter(|(t, p)| {
            p.isr.len()
                < p.replicas
                    .len()
                    .saturating_sub(adding(&t.name, p.partition))
        })
        .count();
    let partitions = md.topics.iter().flat_map(|t| &t.partitions);
    let offline = partitions.filter(|p| p.leader < 0).count();
    if common.json {
        let brokers: Vec<_> = info
            .brokers
            .iter()
            .map(|b| {
                json!({ "node_id": b.node_id, "host": b.host, "port": b.port, "rack": b.rack, "fenced": b.fenced })
            })
            .collect();
        let apis: Vec<_> = info
            .apis
            .iter()
            .map(|a| {
                json!({
                    "api_key": a.api_key,
                    "name": api_name(a.api_key),
                    "min_version": a.min_version,
                    "max_version": a.max_version,
                })
            })
            .collect();
        let features: Vec<_> = info
            .features
            .iter()
            .map(|(n, min, max)| json!({ "name": n, "min_level": min, "max_level": max }))
            .collect();
        out_json(&json!({
            "cluster_id": info.cluster_id,
            "controller_id": info.controller_id,
            "under_replicated_partitions": under_replicated,
            "offline_partitions": offline,
            "brokers": brokers,
            "apis": apis,
            "features": features,
        }))
    } else {
        out(&format!(
            "CLUSTER ID   {}",
            info.cluster_id.as_deref().unwrap_or("-")
        ))?;
        out(&format!("CONTROLLER   {}", info.controller_id))?;
        out(&format!("UNDER-REPLICATED PARTITIONS   {under_replicated}"))?;
        out(&format!("OFFLINE PARTITIONS            {offline}"))?;
        out("")?;
        let rows: Vec<Vec<String>> = info
            .brokers
            .iter()
            .map(|b| {
                vec![
                    b.node_id.to_string(),
                    b.host.clone(),
                    b.port.to_string(),
                    b.rack.clone().unwrap_or_default(),
                    if b.fenced { "fenced" } else { "active" }.to_string(),
                ]
            })
            .collect();
        out_table(&["BROKER", "HOST", "PORT", "RACK", "STATE"], &rows)?;
        out("")?;
        let rows: Vec<Vec<String>> = info
            .apis
            .iter()
            .map(|a| {
                vec![
                    api_name(a.api_key),
                    a.api_key.to_string(),
                    format!("{}-{}", a.min_version, a.max_version),
                ]
            })
            .collect();
        out_table(&["API", "KEY", "VERSIONS"], &rows)?;
        if !info.features.is_empty() {
            out("")?;
            let rows: Vec<Vec<String>> = info
                .features
                .iter()
                .map(|(n, min, max)| vec![n.clone(), format!("{min}-{max}")])
                .collect();
            out_table(&["FEATURE", "LEVELS"], &rows)?;
        }
        Ok(())
    }
}

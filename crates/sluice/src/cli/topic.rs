//! `sluice topic create|list|describe|delete|alter-config|add-partitions`.

use clap::{Args, Subcommand};
use serde_json::json;
use sluice_client::{ConfigOp, NewTopic};

use super::{Common, key_value, one_line, out, out_json, out_table};

#[derive(Args, Debug)]
pub struct TopicArgs {
    #[command(flatten)]
    common: Common,
    #[command(subcommand)]
    command: TopicCommand,
}

#[derive(Subcommand, Debug)]
enum TopicCommand {
    /// Create a topic.
    Create {
        name: String,
        /// Number of partitions [default: the broker's num.partitions].
        #[arg(long, short = 'p')]
        partitions: Option<i32>,
        /// Replication factor [default: the broker's default.replication.factor].
        #[arg(long, short = 'r')]
        replication_factor: Option<i16>,
        /// A topic config, e.g. `--config retention.ms=3600000` (repeatable).
        #[arg(long, short = 'c', value_parser = key_value)]
        config: Vec<(String, String)>,
    },
    /// List topics with their partition counts.
    List,
    /// Partitions (leader, replicas, ISR, log start and end offsets, size on disk, dirty
    /// ratio of a compacted topic) and configs of a topic.
    Describe { name: String },
    /// Delete a topic and its data.
    Delete { name: String },
    /// Set or delete topic configs (IncrementalAlterConfigs).
    AlterConfig {
        name: String,
        /// Set a config: `--set retention.ms=60000` (repeatable).
        #[arg(long, value_parser = key_value)]
        set: Vec<(String, String)>,
        /// Delete a config, reverting it to the default (repeatable).
        #[arg(long)]
        delete: Vec<String>,
    },
    /// Grow a topic to a new total number of partitions.
    AddPartitions {
        name: String,
        /// The new total number of partitions (not the number to add).
        #[arg(long)]
        count: i32,
    },
}

pub async fn run(args: TopicArgs) -> Result<(), String> {
    let common = args.common;
    let mut client = common.connect().await?;
    match args.command {
        TopicCommand::Create {
            name,
            partitions,
            replication_factor,
            config,
        } => {
            let created = client
                .create_topic(&NewTopic {
                    name,
                    partitions,
                    replication_factor,
                    configs: config,
                })
                .await
                .map_err(one_line)?;
            if common.json {
                out_json(&json!({
                    "name": created.name,
                    "topic_id": created.topic_id,
                    "partitions": created.partitions,
                    "replication_factor": created.replication_factor,
                }))
            } else {
                out(&format!(
                    "created topic {} ({} partitions, replication factor {})",
                    created.name, created.partitions, created.replication_factor
                ))
            }
        }
        TopicCommand::List => {
            let md = client.metadata(None).await.map_err(one_line)?;
            if common.json {
                let topics: Vec<_> = md
                    .topics
                    .iter()
                    .map(|t| {
                        json!({
                            "name": t.name,
                            "topic_id": t.topic_id,
                            "partitions": t.partitions.len(),
                            "replication_factor": t.partitions.first().map_or(0, |p| p.replicas.len()),
                            "internal": t.is_internal,
                        })
                    })
                    .collect();
                out_json(&json!(topics))
            } else {
                let rows: Vec<Vec<String>> = md
                    .topics
                    .iter()
                    .map(|t| {
                        vec![
                            t.name.clone(),
                            t.partitions.len().to_string(),
                            t.partitions
                                .first()
                                .map_or(0, |p| p.replicas.len())
                                .to_string(),
                            if t.is_internal { "yes" } else { "" }.to_string(),
                        ]
                    })
                    .collect();
                out_table(&["NAME", "PARTITIONS", "REPLICAS", "INTERNAL"], &rows)
            }
        }
        TopicCommand::Describe { name } => {
            let topic = client.topic(&name).await.map_err(one_line)?;
            let parts: Vec<i32> = topic.partitions.iter().map(|p| p.partition).collect();
            let start = client
                .list_offsets(&name, &parts.iter().map(|p| (*p, -2)).collect::<Vec<_>>())
                .await
                .map_err(one_line)?;
            let end = client
                .list_offsets(&name, &parts.iter().map(|p| (*p, -1)).collect::<Vec<_>>())
                .await
                .map_err(one_line)?;
            let configs = client
                .describe_topic_configs(&name)
                .await
                .map_err(one_line)?;
            let leaders: Vec<(i32, i32)> = topic
                .partitions
                .iter()
                .filter(|p| p.leader >= 0)
                .map(|p| (p.partition, p.leader))
                .collect();
            // Older brokers may not answer DescribeLogDirs: the columns then show "-".
            let log_dirs = client
                .describe_log_dirs(&name, &leaders)
                .await
                .unwrap_or_default();
            let log_dir = |p: i32| log_dirs.iter().find(|d| d.partition == p);
            // Replicas being moved (brokers without reassignments: none).
            let moving: Vec<_> = client
                .list_partition_reassignments()
                .await
                .unwrap_or_default()
                .into_iter()
                .filter(|o| o.topic == name)
                .collect();
            let move_of = |p: i32| moving.iter().find(|o| o.partition == p);
            let offset = |v: &[(i32, i64, i64)], p: i32| {
                v.iter().find(|(q, _, _)| *q == p).map(|(_, o, _)| *o)
            };
            if common.json {
                let partitions: Vec<_> = topic
                    .partitions
                    .iter()
                    .map(|p| {
                        json!({
                            "partition": p.partition,
                            "leader": p.leader,
                            "leader_epoch": p.leader_epoch,
                            "replicas": p.replicas,
                            "isr": p.isr,
                            "offline_replicas": p.offline_replicas,
                            "log_start_offset": offset(&start, p.partition),
                            "high_watermark": offset(&end, p.partition),
                            "size_bytes": log_dir(p.partition).map(|d| d.size),
                            "dirty_ratio": log_dir(p.partition).and_then(|d| d.dirty_ratio),
                            "adding_replicas": move_of(p.partition).map_or(&[][..], |o| &o.adding[..]),
                            "removing_replicas": move_of(p.partition).map_or(&[][..], |o| &o.removing[..]),
                            "error": p.error.map(|e| e.name()),
                        })
                    })
                    .collect();
                let configs: Vec<_> = configs
                    .iter()
                    .map(|c| {
                        json!({
                            "name": c.name,
                            "value": c.value,
                            "source": c.source,
                            "default": c.is_default,
                            "read_only": c.read_only,
                            "sensitive": c.sensitive,
                        })
                    })
                    .collect();
                out_json(&json!({
                    "name": topic.name,
                    "topic_id": topic.topic_id,
                    "internal": topic.is_internal,
                    "partitions": partitions,
                    "configs": configs,
                }))
            } else {
                out(&format!("NAME         {}", topic.name))?;
                out(&format!("TOPIC ID     {}", topic.topic_id))?;
                out(&format!("PARTITIONS   {}", topic.partitions.len()))?;
                if topic.is_internal {
                    out("INTERNAL     yes")?;
                }
                out("")?;
                let join = |v: &[i32]| v.iter().map(i32::to_string).collect::<Vec<_>>().join(",");
                let opt = |o: Option<i64>| o.map_or("-".to_string(), |o| o.to_string());
                let rows: Vec<Vec<String>> = topic
                    .partitions
                    .iter()
                    .map(|p| {
                        vec![
                            p.partition.to_string(),
                            p.leader.to_string(),
                            p.leader_epoch.to_string(),
                            join(&p.replicas),
                            join(&p.isr),
                            opt(offset(&start, p.partition)),
                            opt(offset(&end, p.partition)),
                            opt(log_dir(p.partition).map(|d| d.size)),
                            log_dir(p.partition)
                                .and_then(|d| d.dirty_ratio)
                                .map_or("-".to_string(), |r| format!("{r:.2}")),
                        ]
                    })
                    .collect();
                out_table(
                    &[
                        "PARTITION",
                        "LEADER",
                        "EPOCH",
                        "REPLICAS",
                        "ISR",
                        "LOG-START-OFFSET",
                        "HIGH-WATERMARK",
                        "SIZE",
                        "DIRTY-RATIO",
                    ],
                    &rows,
                )?;
                if !moving.is_empty() {
                    out("")?;
                    let rows: Vec<Vec<String>> = moving
                        .iter()
                        .map(|o| vec![o.partition.to_string(), join(&o.adding), join(&o.removing)])
                        .collect();
                    out_table(&["REASSIGNING", "ADDING", "REMOVING"], &rows)?;
                }
                out("")?;
                let rows: Vec<Vec<String>> = configs
                    .iter()
                    .map(|c| {
                        vec![
                            c.name.clone(),
                            if c.sensitive {
                                "(sensitive)".to_string()
                            } else {
                                c.value.clone().unwrap_or_else(|| "(null)".to_string())
                            },
                            c.source.to_string(),
                        ]
                    })
                    .collect();
                out_table(&["CONFIG", "VALUE", "SOURCE"], &rows)
            }
        }
        TopicCommand::Delete { name } => {
            client.delete_topic(&name).await.map_err(one_line)?;
            if common.json {
                out_json(&json!({ "name": name, "deleted": true }))
            } else {
                out(&format!("deleted topic {name}"))
            }
        }
        TopicCommand::AlterConfig { name, set, delete } => {
            if set.is_empty() && delete.is_empty() {
                return Err("nothing to change: give --set k=v and/or --delete k".to_string());
            }
            let ops: Vec<ConfigOp> = set
                .iter()
                .map(|(k, v)| ConfigOp::Set(k.clone(), v.clone()))
                .chain(delete.iter().map(|k| ConfigOp::Delete(k.clone())))
                .collect();
            client
                .alter_topic_configs(&name, &ops)
                .await
                .map_err(one_line)?;
            if common.json {
                let set: serde_json::Map<String, serde_json::Value> =
                    set.into_iter().map(|(k, v)| (k, json!(v))).collect();
                out_json(&json!({ "name": name, "set": set, "deleted": delete }))
            } else {
                for (k, v) in &set {
                    out(&format!("{name}: set {k}={v}"))?;
                }
                for k in &delete {
                    out(&format!("{name}: deleted {k} (back to its default)"))?;
                }
                Ok(())
            }
        }
        TopicCommand::AddPartitions { name, count } => {
            client
                .create_partitions(&name, count)
                .await
                .map_err(one_line)?;
            if common.json {
                out_json(&json!({ "name": name, "partitions": count }))
            } else {
                out(&format!("{name} now has {count} partitions"))
            }
        }
    }
}

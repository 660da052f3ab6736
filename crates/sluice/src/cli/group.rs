//! `sluice group list|describe|reset-offsets|delete`.

use std::collections::{BTreeMap, BTreeSet};

use clap::{Args, Subcommand};
use serde_json::json;
use sluice_client::TopicPartition;

use super::{Common, Position, one_line, out, out_json, out_table, resolve_positions};

#[derive(Args, Debug)]
pub struct GroupArgs {
    #[command(flatten)]
    common: Common,
    #[command(subcommand)]
    command: GroupCommand,
}

#[derive(Subcommand, Debug)]
enum GroupCommand {
    /// List consumer groups and their states.
    List,
    /// State, members, assignments, committed offsets and lag per partition.
    Describe { group: String },
    /// Move a group's committed offsets on a topic. The group must be Empty (no running
    /// consumers), as with Kafka's kafka-consumer-groups.sh.
    ResetOffsets {
        group: String,
        /// The topic whose offsets move.
        #[arg(long)]
        topic: String,
        /// Only these partitions (repeatable) [default: all].
        #[arg(long)]
        partition: Vec<i32>,
        /// Target: earliest, latest, offset:N (clamped to the log), offset:-N (N before the
        /// end) or timestamp:MS.
        #[arg(long)]
        to: Position,
        /// Show the new offsets without committing them.
        #[arg(long)]
        dry_run: bool,
    },
    /// Delete a group and its committed offsets (it must be Empty).
    Delete { group: String },
}

pub async fn run(args: GroupArgs) -> Result<(), String> {
    let json_out = args.common.json;
    let mut client = args.common.connect().await?;
    match args.command {
        GroupCommand::List => {
            let groups = client.list_groups().await.map_err(one_line)?;
            if json_out {
                let v: Vec<_> = groups
                    .iter()
                    .map(|g| {
                        json!({ "group": g.group_id, "state": g.state, "protocol_type": g.protocol_type })
                    })
                    .collect();
                out_json(&json!(v))
            } else {
                let rows: Vec<Vec<String>> = groups
                    .iter()
                    .map(|g| vec![g.group_id.clone(), g.state.clone(), g.protocol_type.clone()])
                    .collect();
                out_table(&["GROUP", "STATE", "PROTOCOL-TYPE"], &rows)
            }
        }
        GroupCommand::Describe { group } => {
            let desc = client.describe_group(&group).await.map_err(one_line)?;
            let committed = client
                .committed_offsets(&group, None)
                .await
                .map_err(one_line)?;
            if desc.state == "Dead" && committed.is_empty() {
                return Err(format!("group '{group}' does not exist"));
            }
            // Every partition with a commit or an assignment, with its owner.
            let mut rows: BTreeMap<TopicPartition, (Option<i64>, Option<String>)> = BTreeMap::new();
            for c in &committed {
                rows.insert(
                    TopicPartition::new(c.topic.clone(), c.partition),
                    (Some(c.offset), None),
                );
            }
            for m in &desc.members {
                for (t, ps) in &m.assignment {
                    for p in ps {
                        rows.entry(TopicPartition::new(t.clone(), *p))
                            .or_default()
                            .1 = Some(m.member_id.clone());
                    }
                }
            }
            let topics: BTreeSet<String> = rows.keys().map(|tp| tp.topic.clone()).collect();
            let mut ends: BTreeMap<TopicPartition, i64> = BTreeMap::new();
            for t in &topics {
                let parts: Vec<(i32, i64)> = rows
                    .keys()
                    .filter(|tp| &tp.topic == t)
                    .map(|tp| (tp.partition, -1))
                    .collect();
                // A deleted topic has no end offsets; its rows show no lag.
                if let Ok(v) = client.list_offsets(t, &parts).await {
                    for (p, o, _) in v {
                        ends.insert(TopicPartition::new(t.clone(), p), o);
                    }
                }
            }
            let lag =
                |key: &TopicPartition, committed: Option<i64>| match (committed, ends.get(key)) {
                    (Some(c), Some(e)) => Some((e - c).max(0)),
                    _ => None,
                };
            if json_out {
                let members: Vec<_> = desc
                    .members
                    .iter()
                    .map(|m| {
                        let assignments: Vec<_> = m
                            .assignment
                            .iter()
                            .map(|(t, ps)| json!({ "topic": t, "partitions": ps }))
                            .collect();
                        json!({
                            "member_id": m.member_id,
                            "group_instance_id": m.group_instance_id,
                            "client_id": m.client_id,
                            "client_host": m.client_host,
                            "assignments": assignments,
                        })
                    })
                    .collect();
                let offsets: Vec<_> = rows
                    .iter()
                    .map(|(key, (committed, owner))| {
                        json!({
                            "topic": key.topic,
                            "partition": key.partition,
                            "committed_offset": committed,
                            "log_end_offset": ends.get(key),
                            "lag": lag(key, *committed),
                            "member_id": owner,
                        })
                    })
                    .collect();
                out_json(&json!({
                    "group": desc.group_id,
                    "state": desc.state,
                    "protocol_type": desc.protocol_type,
                    "protocol": desc.protocol,
                    "members": members,
                    "offsets": offsets,
                }))
            } else {
                out(&format!("GROUP        {}", desc.group_id))?;
                out(&format!("STATE        {}", desc.state))?;
                out(format!("PROTOCOL     {} {}", desc.protocol_type, desc.protocol).trim_end())?;
                out(&format!("MEMBERS      {}", desc.members.len()))?;
                if !desc.members.is_empty() {
                    out("")?;
                    let m_rows: Vec<Vec<String>> = desc
                        .members
                        .iter()
                        .map(|m| {
                            vec![
                                m.member_id.clone(),
                                m.client_id.clone(),
                                m.client_host.clone(),
                                m.assignment
                                    .iter()
                                    .map(|(t, ps)| {
                                        format!(
                                            "{t}:{}",
                                            ps.iter()
                                                .map(i32::to_string)
                                                .collect::<Vec<_>>()
                                                .join(",")
                                        )
                                    })
                                    .collect::<Vec<_>>()
                                    .join(" "),
                            ]
                        })
                        .collect();
                    out_table(&["MEMBER", "CLIENT-ID", "HOST", "ASSIGNMENT"], &m_rows)?;
                }
                out("")?;
                let opt = |o: Option<i64>| o.map_or("-".to_string(), |o| o.to_string());
                let o_rows: Vec<Vec<String>> = rows
                    .iter()
                    .map(|(key, (committed, owner))| {
                        vec![
                            key.topic.clone(),
                            key.partition.to_string(),
                            opt(*committed),
                            opt(ends.get(key).copied()),
                            opt(lag(key, *committed)),
                            owner.clone().unwrap_or_else(|| "-".to_string()),
                        ]
                    })
                    .collect();
                out_table(
                    &[
                        "TOPIC",
                        "PARTITION",
                        "COMMITTED",
                        "LOG-END",
                        "LAG",
                        "MEMBER",
                    ],
                    &o_rows,
                )
            }
        }
        GroupCommand::ResetOffsets {
            group,
            topic,
            partition,
            to,
            dry_run,
        } => {
            let desc = client.describe_group(&group).await.map_err(one_line)?;
            if desc.state != "Empty" && desc.state != "Dead" {
                return Err(format!(
                    "group '{group}' is {} with {} member(s); offsets can only be reset while it is Empty (stop its consumers first)",
                    desc.state,
                    desc.members.len()
                ));
            }
            let md = client.topic(&topic).await.map_err(one_line)?;
            let partitions: Vec<i32> = if partition.is_empty() {
                md.partitions.iter().map(|p| p.partition).collect()
            } else {
                for p in &partition {
                    if !md.partitions.iter().any(|m| m.partition == *p) {
                        return Err(format!("topic '{topic}' has no partition {p}"));
                    }
                }
                partition
            };
            let targets = resolve_positions(&mut client, &topic, &partitions, to).await?;
            let current: BTreeMap<i32, i64> = client
                .committed_offsets(&group, Some(&[(topic.clone(), partitions.clone())]))
                .await
                .map_err(one_line)?
                .into_iter()
                .map(|c| (c.partition, c.offset))
                .collect();
            if !dry_run {
                client
                    .commit_offsets(&group, &topic, &targets)
                    .await
                    .map_err(one_line)?;
            }
            if json_out {
                let parts: Vec<_> = targets
                    .iter()
                    .map(|(p, o)| {
                        json!({ "partition": p, "current_offset": current.get(p), "new_offset": o })
                    })
                    .collect();
                out_json(&json!({
                    "group": group,
                    "topic": topic,
                    "dry_run": dry_run,
                    "partitions": parts,
                }))
            } else {
                let rows: Vec<Vec<String>> = targets
                    .iter()
                    .map(|(p, o)| {
                        vec![
                            topic.clone(),
                            p.to_string(),
                            current.get(p).map_or("-".to_string(), i64::to_string),
                            o.to_string(),
                        ]
                    })
                    .collect();
                out_table(
                    &["TOPIC", "PARTITION", "CURRENT-OFFSET", "NEW-OFFSET"],
                    &rows,
                )?;
                if dry_run {
                    out("(dry run: nothing was committed)")?;
                }
                Ok(())
            }
        }
        GroupCommand::Delete { group } => {
            client.delete_group(&group).await.map_err(one_line)?;
            if json_out {
                out_json(&json!({ "group": group, "deleted": true }))
            } else {
                out(&format!("deleted group {group}"))
            }
        }
    }
}

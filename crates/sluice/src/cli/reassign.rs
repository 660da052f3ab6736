//! `sluice cluster reassign` and `sluice cluster decommission`: moving partitions'
//! replicas between brokers with AlterPartitionReassignments and following the moves with
//! ListPartitionReassignments (KIP-455), like Kafka's `kafka-reassign-partitions.sh`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use clap::{ArgGroup, Args};
use serde_json::json;
use sluice_client::{Client, OngoingReassignment, Reassignment};

use super::reassign_plan::{self, Move, Slot};
use super::{Common, one_line, out, out_json, out_table};

/// How often a wait looks at the reassignments' progress.
const POLL: Duration = Duration::from_millis(500);
/// How often a wait that sees no progress says it is still waiting.
const QUIET_REPORT: Duration = Duration::from_secs(10);

#[derive(Args, Debug)]
#[command(group(
    ArgGroup::new("action")
        .required(true)
        .args(["generate", "execute", "verify", "list", "cancel"])
))]
pub struct ReassignArgs {
    /// Print a balanced plan (Kafka's reassignment JSON) for every partition of --topics
    /// over the brokers --broker-ids; the current assignment goes to stderr.
    #[arg(long, requires_all = ["topics", "broker_ids"])]
    generate: bool,
    /// The topics of --generate, comma-separated.
    #[arg(long, value_delimiter = ',', value_name = "TOPICS")]
    topics: Vec<String>,
    /// The broker ids --generate places replicas on, comma-separated.
    #[arg(
        long = "broker-ids",
        alias = "broker-list",
        value_delimiter = ',',
        value_name = "IDS"
    )]
    broker_ids: Vec<i32>,
    /// Start the reassignments of a plan file (the current assignment goes to stderr,
    /// to roll back with).
    #[arg(long, value_name = "FILE")]
    execute: Option<PathBuf>,
    /// With --execute: wait until every partition of the plan is reassigned, printing
    /// progress.
    #[arg(long, requires = "execute")]
    wait: bool,
    /// How long --wait waits, in seconds.
    #[arg(long, default_value_t = 600)]
    timeout_secs: u64,
    /// Say, per partition of a plan file, whether its reassignment is complete, in
    /// progress or not started; fails unless all are complete.
    #[arg(long, value_name = "FILE")]
    verify: Option<PathBuf>,
    /// List the reassignments in progress.
    #[arg(long)]
    list: bool,
    /// Cancel the reassignments of a plan file, or every one in progress without a file
    /// (the replicas go back to those from before).
    #[arg(long, value_name = "FILE", num_args = 0..=1)]
    cancel: Option<Option<PathBuf>>,
}

pub async fn run(common: &Common, args: ReassignArgs) -> Result<(), String> {
    let mut client = common.connect().await?;
    if args.generate {
        return generate(&mut client, &args.topics, &args.broker_ids).await;
    }
    if let Some(file) = &args.execute {
        let plan = read_plan(file)?;
        execute(&mut client, &plan).await?;
        if args.wait {
            wait_done(&mut client, &plan, Duration::from_secs(args.timeout_secs)).await?;
        }
        return Ok(());
    }
    if let Some(file) = &args.verify {
        return verify(&mut client, &read_plan(file)?, common.json).await;
    }
    if let Some(file) = &args.cancel {
        return cancel(&mut client, file.as_deref()).await;
    }
    list(&mut client, common.json).await
}

/// `sluice cluster decommission N`: moves every replica off node `node`, waits (unless
/// `no_wait`) until none is left there, and says what that means for the quorum.
pub async fn decommission(
    common: &Common,
    node: i32,
    no_wait: bool,
    timeout: Duration,
) -> Result<(), String> {
    let mut client = common.connect().await?;
    let info = client.describe_cluster().await.map_err(one_line)?;
    if !info.brokers.iter().any(|b| b.node_id == node) {
        return Err(format!(
            "node {node} is not a broker of this cluster (brokers: {})",
            ids(&info.brokers.iter().map(|b| b.node_id).collect::<Vec<_>>())
        ));
    }
    let live: Vec<Slot> = info
        .brokers
        .iter()
        .filter(|b| !b.fenced)
        .map(|b| Slot {
            id: b.node_id,
            rack: b.rack.clone(),
        })
        .collect();
    let current = current_targets(&mut client, None).await?;
    let plan = reassign_plan::decommission(node, &live, &current)?;
    if plan.is_empty() {
        out(&format!("node {node} holds no replica already"))?;
        return say_what_now(node);
    }
    out(&format!(
        "moving {} partition replica(s) off node {node}:",
        plan.len()
    ))?;
    let before: BTreeMap<(String, i32), Vec<i32>> = current
        .into_iter()
        .map(|m| ((m.topic, m.partition), m.replicas))
        .collect();
    for m in &plan {
        let from = before
            .get(&(m.topic.clone(), m.partition))
            .map_or_else(String::new, |r| ids(r));
        out(&format!(
            "  {}: [{from}] -> [{}]",
            m.name(),
            ids(&m.replicas)
        ))?;
    }
    execute(&mut client, &plan).await?;
    if no_wait {
        return out("not waiting: follow the moves with `sluice cluster reassign --list`");
    }
    wait_done(&mut client, &plan, timeout).await?;
    let left = current_targets(&mut client, None)
        .await?
        .into_iter()
        .filter(|m| m.replicas.contains(&node))
        .map(|m| m.name())
        .collect::<Vec<_>>();
    if !left.is_empty() {
        return Err(format!(
            "node {node} still holds replicas of {} (created or moved there meanwhile): run the decommission again",
            left.join(", ")
        ));
    }
    out(&format!("node {node} holds no replica any more"))?;
    say_what_now(node)
}

/// What a decommissioned node may do now: leave the cluster, a learner once stopped, a
/// voter while it still runs (its removal needs the other voters, not it).
fn say_what_now(node: i32) -> Result<(), String> {
    out(&format!(
        "node {node} may stop serving clients. If it joined as a broker (a node outside \
         --voters, a learner of the metadata quorum), stop it and remove it from the cluster \
         with `sluice cluster unregister {node}`. If it is one of the metadata quorum's \
         voters (--voters), remove it with `sluice cluster unregister {node}` (asked of \
         another node, while a majority of the other voters runs), then stop it for good."
    ))
}

/// `--generate`: a balanced plan for the topics over the brokers, on stdout; the current
/// assignment on stderr.
async fn generate(client: &mut Client, topics: &[String], brokers: &[i32]) -> Result<(), String> {
    let info = client.describe_cluster().await.map_err(one_line)?;
    let mut slots = Vec::new();
    for &id in brokers {
        let broker = info
            .brokers
            .iter()
            .find(|b| b.node_id == id)
            .ok_or_else(|| format!("broker {id} is not a broker of this cluster"))?;
        slots.push(Slot {
            id,
            rack: broker.rack.clone(),
        });
    }
    let current = current_targets(client, Some(topics)).await?;
    if let Some(missing) = topics
        .iter()
        .find(|t| !current.iter().any(|m| &m.topic == *t))
    {
        return Err(format!("topic '{missing}' does not exist"));
    }
    let plan = reassign_plan::generate(&slots, &current)?;
    eprintln!("Current partition replica assignment (save it to roll back with --execute):");
    eprintln!("{}", reassign_plan::to_json(&current));
    out_json(&reassign_plan::to_json(&plan))
}

/// Submits `plan`; prints the assignment it replaces on stderr and which partitions
/// started. Fails when any partition was refused, naming each with Kafka's reason.
async fn execute(client: &mut Client, plan: &[Move]) -> Result<(), String> {
    let topics: Vec<String> = plan.iter().map(|m| m.topic.clone()).collect();
    let current = current_targets(client, Some(&topics)).await?;
    let named: Vec<Move> = current
        .into_iter()
        .filter(|c| {
            plan.iter()
                .any(|m| m.topic == c.topic && m.partition == c.partition)
        })
        .collect();
    eprintln!("Current partition replica assignment (save it to roll back with --execute):");
    eprintln!("{}", reassign_plan::to_json(&named));
    let request: Vec<Reassignment> = plan
        .iter()
        .map(|m| Reassignment {
            topic: m.topic.clone(),
            partition: m.partition,
            replicas: Some(m.replicas.clone()),
        })
        .collect();
    let outcomes = client
        .alter_partition_reassignments(&request)
        .await
        .map_err(one_line)?;
    report_outcomes("started", "reassigning", &outcomes)
}

/// Prints the partitions that succeeded; fails naming those that did not.
fn report_outcomes(
    done: &str,
    doing: &str,
    outcomes: &[sluice_client::ReassignmentOutcome],
) -> Result<(), String> {
    let ok: Vec<String> = outcomes
        .iter()
        .filter(|(_, _, code, _)| code.is_none())
        .map(|(t, p, _, _)| format!("{t}-{p}"))
        .collect();
    if !ok.is_empty() {
        out(&format!(
            "Successfully {done} partition reassignments for {}",
            ok.join(",")
        ))?;
    }
    let failed: Vec<String> = outcomes
        .iter()
        .filter_map(|(t, p, code, message)| {
            let code = (*code)?;
            Some(format!(
                "{t}-{p}: {}{}",
                code.name(),
                message
                    .as_deref()
                    .filter(|m| !m.is_empty())
                    .map_or_else(String::new, |m| format!(" ({m})"))
            ))
        })
        .collect();
    if failed.is_empty() {
        Ok(())
    } else {
        Err(format!("error {doing} partition(s): {}", failed.join("; ")))
    }
}

/// Waits until every partition of `plan` is reassigned (none in progress, replicas as
/// planned), printing a line whenever more are done and every so often while none is.
async fn wait_done(client: &mut Client, plan: &[Move], timeout: Duration) -> Result<(), String> {
    let started = Instant::now();
    let mut reported: Option<(usize, Instant)> = None;
    loop {
        let pending = pending(client, plan).await?;
        let done = plan.len() - pending.len();
        let due = reported.is_none_or(|(count, at)| count != done || at.elapsed() >= QUIET_REPORT);
        if due {
            out(&format!(
                "{done} of {} partition(s) reassigned ({} s){}",
                plan.len(),
                started.elapsed().as_secs(),
                if pending.is_empty() {
                    String::new()
                } else {
                    format!("; waiting for {}", summary(&pending))
                }
            ))?;
            reported = Some((done, Instant::now()));
        }
        if pending.is_empty() {
            return Ok(());
        }
        if started.elapsed() >= timeout {
            return Err(format!(
                "{} partition(s) still being reassigned after {} s ({}): follow them with `sluice cluster reassign --list`, or cancel with --cancel",
                pending.len(),
                timeout.as_secs(),
                summary(&pending)
            ));
        }
        tokio::time::sleep(POLL).await;
    }
}

/// The partitions of `plan` not reassigned yet.
async fn pending(client: &mut Client, plan: &[Move]) -> Result<Vec<String>, String> {
    let states = states(client, plan).await?;
    Ok(plan
        .iter()
        .zip(states)
        .filter(|(_, state)| !matches!(state, State::Complete))
        .map(|(m, _)| m.name())
        .collect())
}

/// The first few names of `names`.
fn summary(names: &[String]) -> String {
    const SHOWN: usize = 5;
    let mut text = names
        .iter()
        .take(SHOWN)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if names.len() > SHOWN {
        text.push_str(&format!(" and {} more", names.len() - SHOWN));
    }
    text
}

/// Where one partition of a plan stands.
#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    /// Its replicas are the planned ones and nothing is moving.
    Complete,
    /// Being reassigned.
    InProgress(OngoingReassignment),
    /// Nothing is moving, but its replicas are these.
    Elsewhere(Vec<i32>),
    /// The partition does not exist.
    Missing,
}

/// The state of each partition of `plan`, in order.
async fn states(client: &mut Client, plan: &[Move]) -> Result<Vec<State>, String> {
    let ongoing = client
        .list_partition_reassignments()
        .await
        .map_err(one_line)?;
    let topics: Vec<String> = plan.iter().map(|m| m.topic.clone()).collect();
    let current = current_targets(client, Some(&topics)).await?;
    Ok(plan
        .iter()
        .map(|m| {
            if let Some(o) = ongoing
                .iter()
                .find(|o| o.topic == m.topic && o.partition == m.partition)
            {
                return State::InProgress(o.clone());
            }
            match current
                .iter()
                .find(|c| c.topic == m.topic && c.partition == m.partition)
            {
                Some(c) if c.replicas == m.replicas => State::Complete,
                Some(c) => State::Elsewhere(c.replicas.clone()),
                None => State::Missing,
            }
        })
        .collect())
}

/// `--verify`: one line per partition of the plan; fails unless all are complete.
async fn verify(client: &mut Client, plan: &[Move], as_json: bool) -> Result<(), String> {
    let states = states(client, plan).await?;
    if as_json {
        let rows: Vec<_> = plan
            .iter()
            .zip(&states)
            .map(|(m, s)| {
                let (state, replicas, adding, removing) = match s {
                    State::Complete => ("complete", m.replicas.clone(), vec![], vec![]),
                    State::InProgress(o) => (
                        "in_progress",
                        o.replicas.clone(),
                        o.adding.clone(),
                        o.removing.clone(),
                    ),
                    State::Elsewhere(r) => ("not_started", r.clone(), vec![], vec![]),
                    State::Missing => ("missing", vec![], vec![], vec![]),
                };
                json!({
                    "topic": m.topic, "partition": m.partition, "target": m.replicas,
                    "state": state, "replicas": replicas, "adding": adding, "removing": removing,
                })
            })
            .collect();
        out_json(&json!({ "partitions": rows }))?;
    } else {
        for (m, s) in plan.iter().zip(&states) {
            out(&match s {
                State::Complete => format!("Reassignment of partition {} is completed.", m.name()),
                State::InProgress(o) => format!(
                    "Reassignment of partition {} is still in progress (replicas [{}], adding [{}], removing [{}]).",
                    m.name(),
                    ids(&o.replicas),
                    ids(&o.adding),
                    ids(&o.removing)
                ),
                State::Elsewhere(r) => format!(
                    "There is no active reassignment of partition {}, but replica set is [{}] rather than [{}].",
                    m.name(),
                    ids(r),
                    ids(&m.replicas)
                ),
                State::Missing => format!("Partition {} does not exist.", m.name()),
            })?;
        }
    }
    let unfinished = states.iter().filter(|s| **s != State::Complete).count();
    if unfinished == 0 {
        Ok(())
    } else {
        Err(format!(
            "{unfinished} of {} partition(s) not reassigned yet",
            plan.len()
        ))
    }
}

/// `--cancel`: cancels the plan's reassignments, or every one in progress.
async fn cancel(client: &mut Client, file: Option<&Path>) -> Result<(), String> {
    let targets: Vec<(String, i32)> = match file {
        Some(file) => read_plan(file)?
            .into_iter()
            .map(|m| (m.topic, m.partition))
            .collect(),
        None => client
            .list_partition_reassignments()
            .await
            .map_err(one_line)?
            .into_iter()
            .map(|o| (o.topic, o.partition))
            .collect(),
    };
    if targets.is_empty() {
        return out("no reassignment in progress");
    }
    let request: Vec<Reassignment> = targets
        .into_iter()
        .map(|(topic, partition)| Reassignment {
            topic,
            partition,
            replicas: None,
        })
        .collect();
    let outcomes = client
        .alter_partition_reassignments(&request)
        .await
        .map_err(one_line)?;
    report_outcomes("cancelled", "cancelling the reassignment of", &outcomes)
}

/// `--list`: the reassignments in progress.
async fn list(client: &mut Client, as_json: bool) -> Result<(), String> {
    let ongoing = client
        .list_partition_reassignments()
        .await
        .map_err(one_line)?;
    if as_json {
        let rows: Vec<_> = ongoing
            .iter()
            .map(|o| {
                json!({
                    "topic": o.topic, "partition": o.partition, "replicas": o.replicas,
                    "adding": o.adding, "removing": o.removing,
                })
            })
            .collect();
        return out_json(&json!({ "reassignments": rows }));
    }
    if ongoing.is_empty() {
        return out("no reassignment in progress");
    }
    let rows: Vec<Vec<String>> = ongoing
        .iter()
        .map(|o| {
            vec![
                o.topic.clone(),
                o.partition.to_string(),
                ids(&o.replicas),
                ids(&o.adding),
                ids(&o.removing),
            ]
        })
        .collect();
    out_table(
        &["TOPIC", "PARTITION", "REPLICAS", "ADDING", "REMOVING"],
        &rows,
    )
}

/// Every partition of `topics` (all topics when `None`; those that do not exist are left
/// out) with the replicas it has or is headed to: Metadata's replicas, without those a
/// reassignment in progress removes.
async fn current_targets(
    client: &mut Client,
    topics: Option<&[String]>,
) -> Result<Vec<Move>, String> {
    let unique: Option<Vec<String>> = topics.map(|names| {
        let mut names = names.to_vec();
        names.sort();
        names.dedup();
        names
    });
    let md = client.metadata(unique.as_deref()).await.map_err(one_line)?;
    let ongoing = client
        .list_partition_reassignments()
        .await
        .map_err(one_line)?;
    let mut moves = Vec::new();
    // A topic that does not exist has no partition here; callers say so.
    for t in md.topics.iter().filter(|t| t.error.is_none()) {
        for p in &t.partitions {
            let removing = ongoing
                .iter()
                .find(|o| o.topic == t.name && o.partition == p.partition)
                .map(|o| o.removing.clone())
                .unwrap_or_default();
            moves.push(Move {
                topic: t.name.clone(),
                partition: p.partition,
                replicas: p
                    .replicas
                    .iter()
                    .copied()
                    .filter(|r| !removing.contains(r))
                    .collect(),
            });
        }
    }
    moves.sort();
    Ok(moves)
}

fn read_plan(file: &Path) -> Result<Vec<Move>, String> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    reassign_plan::from_json(&text).map_err(|e| format!("{}: {e}", file.display()))
}

/// Broker ids as `1,2,3`.
fn ids(ids: &[i32]) -> String {
    ids.iter().map(i32::to_string).collect::<Vec<_>>().join(",")
}

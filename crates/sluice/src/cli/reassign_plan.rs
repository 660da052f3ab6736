//! Reassignment plans, without I/O: Kafka's reassignment JSON file
//! (`{"version":1,"partitions":[{"topic":..,"partition":..,"replicas":[..]}]}`, as
//! `kafka-reassign-partitions.sh` reads and writes it), a balanced plan for whole topics
//! (`--generate`), and the plan that moves every replica off one node (`decommission`).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};
use sluice_broker::placement::{Candidate, place};

/// One partition's target replicas, the preferred leader first.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Move {
    pub topic: String,
    pub partition: i32,
    pub replicas: Vec<i32>,
}

impl Move {
    /// `topic-partition`, as Kafka's tools name a partition.
    pub fn name(&self) -> String {
        format!("{}-{}", self.topic, self.partition)
    }
}

/// A broker a plan may put replicas on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slot {
    pub id: i32,
    pub rack: Option<String>,
}

/// The reassignment JSON file of `moves`.
pub fn to_json(moves: &[Move]) -> Value {
    let partitions: Vec<Value> = moves
        .iter()
        .map(|m| json!({ "topic": m.topic, "partition": m.partition, "replicas": m.replicas }))
        .collect();
    json!({ "version": 1, "partitions": partitions })
}

/// Reads a reassignment JSON file: version 1, each partition once, each with replicas
/// (`log_dirs`, which Kafka's format allows, must be absent or all `"any"`).
pub fn from_json(text: &str) -> Result<Vec<Move>, String> {
    let value: Value =
        serde_json::from_str(text).map_err(|e| format!("not a reassignment JSON file: {e}"))?;
    match value.get("version").and_then(Value::as_i64) {
        Some(1) => {}
        Some(v) => return Err(format!("version {v} is not supported; expected 1")),
        None => return Err("'version' is missing; expected 1".into()),
    }
    let partitions = value
        .get("partitions")
        .and_then(Value::as_array)
        .ok_or("'partitions' is missing or not a list")?;
    let mut moves = Vec::with_capacity(partitions.len());
    let mut seen = BTreeSet::new();
    for (i, entry) in partitions.iter().enumerate() {
        let topic = entry
            .get("topic")
            .and_then(Value::as_str)
            .ok_or_else(|| format!("partitions[{i}]: 'topic' is missing"))?;
        let partition = entry
            .get("partition")
            .and_then(Value::as_i64)
            .and_then(|p| i32::try_from(p).ok())
            .ok_or_else(|| format!("partitions[{i}]: 'partition' is missing or not a number"))?;
        let replicas = entry
            .get("replicas")
            .and_then(Value::as_array)
            .ok_or_else(|| format!("partitions[{i}]: 'replicas' is missing or not a list"))?
            .iter()
            .map(|r| r.as_i64().and_then(|r| i32::try_from(r).ok()))
            .collect::<Option<Vec<i32>>>()
            .ok_or_else(|| format!("partitions[{i}]: 'replicas' must be broker ids"))?;
        if let Some(dirs) = entry.get("log_dirs").and_then(Value::as_array)
            && dirs.iter().any(|d| d.as_str() != Some("any"))
        {
            return Err(format!(
                "partitions[{i}]: log directories other than \"any\" are not supported"
            ));
        }
        if !seen.insert((topic.to_string(), partition)) {
            return Err(format!("partition {topic}-{partition} is listed twice"));
        }
        moves.push(Move {
            topic: topic.to_string(),
            partition,
            replicas,
        });
    }
    if moves.is_empty() {
        return Err("the plan lists no partition".into());
    }
    Ok(moves)
}

/// A balanced plan for every partition of `topics` (each with its current replicas) over
/// `brokers`: Kafka's `--generate`, with Sluice's rack-aware striped placement — each
/// topic keeps its replication factor, replicas of a partition on distinct brokers (and
/// racks, when there are enough), leaders spread over the brokers, topic after topic.
pub fn generate(brokers: &[Slot], current: &[Move]) -> Result<Vec<Move>, String> {
    if brokers.is_empty() {
        return Err("no broker to place replicas on".into());
    }
    let candidates: Vec<Candidate> = brokers
        .iter()
        .map(|b| Candidate {
            id: b.id,
            rack: b.rack.clone(),
        })
        .collect();
    let mut by_topic: BTreeMap<&str, Vec<&Move>> = BTreeMap::new();
    for m in current {
        by_topic.entry(&m.topic).or_default().push(m);
    }
    let mut plan = Vec::new();
    // Each topic starts where the previous one stopped, so first partitions do not all
    // land on the same broker.
    let mut start = 0i32;
    for (topic, mut partitions) in by_topic {
        partitions.sort_by_key(|m| m.partition);
        let replication = partitions.first().map_or(0, |m| m.replicas.len());
        if replication > brokers.len() {
            return Err(format!(
                "Replication factor: {replication} larger than available brokers: {}.",
                brokers.len()
            ));
        }
        let count = i32::try_from(partitions.len()).map_err(|_| "too many partitions")?;
        let placed = place(&candidates, start..start.saturating_add(count), replication);
        for (m, assignment) in partitions.iter().zip(placed) {
            plan.push(Move {
                topic: topic.to_string(),
                partition: m.partition,
                replicas: assignment.0,
            });
        }
        start = start.saturating_add(count);
    }
    Ok(plan)
}

/// The plan that moves every replica off `node` (`current`: every partition's replicas,
/// those being removed left out): each replica on `node` goes, at its position in the
/// list, to the live broker (of `brokers`, `node` excluded) that holds no replica of the
/// partition yet, preferring one on a rack the partition's other replicas do not use,
/// then the one with the fewest replicas. Refused when some partition would lose a
/// replica for want of a broker.
pub fn decommission(node: i32, brokers: &[Slot], current: &[Move]) -> Result<Vec<Move>, String> {
    let others: Vec<&Slot> = brokers.iter().filter(|b| b.id != node).collect();
    let rack_of = |id: i32| {
        brokers
            .iter()
            .find(|b| b.id == id)
            .and_then(|b| b.rack.clone())
    };
    let mut load: BTreeMap<i32, usize> = others.iter().map(|b| (b.id, 0)).collect();
    for m in current {
        for r in &m.replicas {
            if let Some(n) = load.get_mut(r) {
                *n += 1;
            }
        }
    }
    let mut affected: Vec<&Move> = current
        .iter()
        .filter(|m| m.replicas.contains(&node))
        .collect();
    affected.sort();
    let mut plan = Vec::new();
    let mut stuck = Vec::new();
    for m in affected {
        let kept: Vec<i32> = m.replicas.iter().copied().filter(|&r| r != node).collect();
        let kept_racks: BTreeSet<Option<String>> = kept.iter().map(|&r| rack_of(r)).collect();
        let choice = others
            .iter()
            .filter(|b| !kept.contains(&b.id))
            .min_by_key(|b| {
                let shares_rack = b.rack.is_some() && kept_racks.contains(&b.rack);
                (shares_rack, load.get(&b.id).copied().unwrap_or(0), b.id)
            })
            .map(|b| b.id);
        let Some(choice) = choice else {
            stuck.push(m.name());
            continue;
        };
        if let Some(n) = load.get_mut(&choice) {
            *n += 1;
        }
        let replicas = m
            .replicas
            .iter()
            .map(|&r| if r == node { choice } else { r })
            .collect();
        plan.push(Move {
            topic: m.topic.clone(),
            partition: m.partition,
            replicas,
        });
    }
    if !stuck.is_empty() {
        return Err(format!(
            "no live broker besides node {node} is left to take the replica of {} (each partition keeps its replication factor on distinct brokers): add a broker, or lower their replication factor with `sluice cluster reassign --execute`",
            stuck.join(", ")
        ));
    }
    Ok(plan)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]

    use super::*;

    fn m(topic: &str, partition: i32, replicas: &[i32]) -> Move {
        Move {
            topic: topic.into(),
            partition,
            replicas: replicas.to_vec(),
        }
    }

    fn slots(specs: &[(i32, Option<&str>)]) -> Vec<Slot> {
        specs
            .iter()
            .map(|&(id, rack)| Slot {
                id,
                rack: rack.map(str::to_string),
            })
            .collect()
    }

    #[test]
    fn the_json_file_is_kafka_s_and_reads_back() {
        let moves = vec![m("a", 0, &[2, 3]), m("b", 1, &[1])];
        let text = to_json(&moves).to_string();
        assert_eq!(
            text,
            r#"{"partitions":[{"partition":0,"replicas":[2,3],"topic":"a"},{"partition":1,"replicas":[1],"topic":"b"}],"version":1}"#
        );
        assert_eq!(from_json(&text).unwrap(), moves);
        // Kafka's optional log_dirs are accepted when they say "any".
        let with_dirs = r#"{"version":1,"partitions":[{"topic":"a","partition":0,"replicas":[1,2],"log_dirs":["any","any"]}]}"#;
        assert_eq!(from_json(with_dirs).unwrap(), vec![m("a", 0, &[1, 2])]);
    }

    #[test]
    fn malformed_files_are_refused_with_the_reason() {
        let cases = [
            ("[]", "'version' is missing; expected 1"),
            (
                r#"{"version":2,"partitions":[]}"#,
                "version 2 is not supported; expected 1",
            ),
            (r#"{"version":1}"#, "'partitions' is missing or not a list"),
            (
                r#"{"version":1,"partitions":[]}"#,
                "the plan lists no partition",
            ),
            (
                r#"{"version":1,"partitions":[{"partition":0,"replicas":[1]}]}"#,
                "partitions[0]: 'topic' is missing",
            ),
            (
                r#"{"version":1,"partitions":[{"topic":"a","partition":0,"replicas":["x"]}]}"#,
                "partitions[0]: 'replicas' must be broker ids",
            ),
            (
                r#"{"version":1,"partitions":[{"topic":"a","partition":0,"replicas":[1]},{"topic":"a","partition":0,"replicas":[2]}]}"#,
                "partition a-0 is listed twice",
            ),
        ];
        for (text, reason) in cases {
            assert_eq!(from_json(text), Err(reason.to_string()), "{text}");
        }
    }

    #[test]
    fn a_generated_plan_keeps_each_topic_s_replication_factor_and_spreads_leaders() {
        let brokers = slots(&[(1, None), (2, None), (3, None)]);
        let current = vec![
            m("a", 0, &[1, 2]),
            m("a", 1, &[1, 2]),
            m("b", 0, &[1]),
            m("b", 1, &[1]),
        ];
        let plan = generate(&brokers, &current).unwrap();
        assert_eq!(
            plan,
            vec![
                m("a", 0, &[1, 2]),
                m("a", 1, &[2, 3]),
                m("b", 0, &[3]),
                m("b", 1, &[1]),
            ]
        );
        assert_eq!(
            generate(&slots(&[(1, None)]), &current),
            Err("Replication factor: 2 larger than available brokers: 1.".into())
        );
    }

    #[test]
    fn decommissioning_replaces_the_node_in_place_on_the_least_loaded_broker_of_another_rack() {
        let brokers = slots(&[
            (1, Some("r1")),
            (2, Some("r2")),
            (3, Some("r3")),
            (4, Some("r2")),
        ]);
        let current = vec![
            m("t", 0, &[1, 2]),
            m("t", 1, &[2, 1]),
            m("t", 2, &[3, 4]),
            m("u", 0, &[2, 3]),
        ];
        let plan = decommission(1, &brokers, &current).unwrap();
        // t-0: 2 stays (rack r2); 3 (rack r3) beats 4 (rack r2 again).
        // t-1: 3 again (other rack than 2), load permitting: 3 holds 3 then, 4 holds 1 —
        // the rack comes first.
        assert_eq!(plan, vec![m("t", 0, &[3, 2]), m("t", 1, &[2, 3])]);
        // Without racks the load decides: 3 and 4 share the two moves.
        let flat = slots(&[(1, None), (2, None), (3, None), (4, None)]);
        let plan = decommission(1, &flat, &current).unwrap();
        assert_eq!(plan, vec![m("t", 0, &[4, 2]), m("t", 1, &[2, 3])]);
        // A partition on every broker cannot keep its replication factor.
        let full = vec![m("t", 0, &[1, 2, 3])];
        assert_eq!(
            decommission(1, &slots(&[(1, None), (2, None), (3, None)]), &full),
            Err("no live broker besides node 1 is left to take the replica of t-0 (each partition keeps its replication factor on distinct brokers): add a broker, or lower their replication factor with `sluice cluster reassign --execute`".into())
        );
        // A node without replicas needs no move.
        assert!(decommission(5, &brokers, &current).unwrap().is_empty());
    }
}

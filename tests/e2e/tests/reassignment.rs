//! Partition reassignment (KIP-455) and decommissioning across `sluice serve` processes:
//! replicas move to other nodes while an idempotent acks=all librdkafka producer keeps
//! writing, and every acknowledged record is read back exactly once, in order; the moves
//! are listed while they go on; a cancelled move goes back to the replicas from before,
//! also after a restart; `sluice cluster decommission` empties a node; and
//! AlterPartitionReassignments / ListPartitionReassignments answer Kafka's error codes on
//! hand-built frames.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use kafka_protocol::messages::alter_partition_reassignments_request::{
    ReassignablePartition, ReassignableTopic,
};
use kafka_protocol::messages::list_partition_reassignments_request::ListPartitionReassignmentsTopics;
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse, ApiVersionsRequest,
    BrokerId, ListPartitionReassignmentsRequest, ListPartitionReassignmentsResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use rdkafka::producer::{BaseRecord, Producer};
use serde_json::json;
use sluice_e2e::moves::{
    CLI, READ, SETTLE, StopOnDrop, acks_all_producer, create_placed_topic, plan_file, send_until,
    sluice_at, succeeded, wait_more_acked,
};
use sluice_e2e::raw::RawConn;
use sluice_e2e::{Cluster, check_exactly_once, consume_all};

const INVALID_REPLICATION_FACTOR: i16 = 38;
const INVALID_REPLICA_ASSIGNMENT: i16 = 39;
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const NO_REASSIGNMENT_IN_PROGRESS: i16 = 85;

/// Waits until node `id` has no directory of any partition of `topic`: its replicas were
/// deleted.
fn wait_no_replica_dirs(cluster: &Cluster, id: i32, topic: &str) {
    let dir = cluster.node(id).data_dir().to_path_buf();
    let deadline = Instant::now() + SETTLE;
    loop {
        let left: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|name| name.starts_with(&format!("{topic}-")))
            .collect();
        if left.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "node {id} still has {left:?} in {}",
            dir.display()
        );
        thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_reassignment_under_an_idempotent_acks_all_producer_loses_nothing_and_is_listed_while_it_runs()
{
    let mut cluster = Cluster::start(3);
    // "moving" goes from [1, 2] to [2, 3]; "replaced" changes its whole replica set, from
    // [1] to [3]. Both are led by node 1, which leaves both. ("replaced" keeps
    // min.insync.replicas=1: while it moves it has two replicas, and as in Kafka the
    // replicas being added count when min.insync.replicas is capped by the replica count.)
    create_placed_topic(&mut cluster, "moving", &[&[1, 2]], "2");
    create_placed_topic(&mut cluster, "replaced", &[&[1]], "1");
    assert_ne!(
        cluster.quorum_leader(1),
        Ok(3),
        "node 3 is paused below: it must not be the quorum leader"
    );
    let before = [
        cluster.partitions(1, "moving").unwrap()[&0].clone(),
        cluster.partitions(1, "replaced").unwrap()[&0].clone(),
    ];
    let dir = tempfile::tempdir().unwrap();
    let plan = plan_file(dir.path(), &[("moving", 0, &[2, 3]), ("replaced", 0, &[3])]);
    let plan = plan.to_str().unwrap();
    // The CLI talks to nodes 1 and 2: node 3 is paused for a while.
    let cli = format!(
        "{},{}",
        cluster.node(1).bootstrap(),
        cluster.node(2).bootstrap()
    );
    let bootstrap = cluster.bootstrap();
    let producers = [acks_all_producer(&bootstrap), acks_all_producer(&bootstrap)];
    let topics = ["moving", "replaced"];
    let stop = AtomicBool::new(false);
    let more_acked = |n| producers.iter().for_each(|p| wait_more_acked(p, n, READ));
    let sent = thread::scope(|s| {
        let senders: Vec<_> = producers
            .iter()
            .zip(topics)
            .map(|(producer, topic)| s.spawn(|| send_until(producer, topic, 1, &stop)))
            .collect();
        let _stop = StopOnDrop(&stop);
        more_acked(300);
        // Paused, node 3 cannot catch up: the reassignments stay in progress.
        cluster.node_mut(3).pause();
        let out = sluice_at(&cli, &["cluster", "reassign", "--execute", plan], CLI);
        assert!(succeeded(&out), "{out:?}");
        assert_eq!(
            out.stdout,
            "Successfully started partition reassignments for moving-0,replaced-0\n"
        );
        assert!(
            out.stderr.contains(r#"{"partitions":[{"partition":0,"replicas":[1,2],"topic":"moving"},{"partition":0,"replicas":[1],"topic":"replaced"}],"version":1}"#),
            "the assignment to roll back to: {out:?}"
        );
        let listed = sluice_at(&cli, &["cluster", "reassign", "--list", "--json"], CLI);
        assert!(succeeded(&listed), "{listed:?}");
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&listed.stdout).unwrap(),
            json!({ "reassignments": [
                { "topic": "moving", "partition": 0, "replicas": [2, 3, 1], "adding": [3], "removing": [1] },
                { "topic": "replaced", "partition": 0, "replicas": [3, 1], "adding": [3], "removing": [1] },
            ]})
        );
        // Metadata lists the replicas there are (target first), `topic describe` the move.
        let moving = cluster.partitions(1, "moving").unwrap();
        assert_eq!(
            (moving[&0].replicas.clone(), moving[&0].isr.clone()),
            (vec![2, 3, 1], vec![1, 2])
        );
        let described = sluice_at(&cli, &["topic", "describe", "moving"], CLI);
        let lines: Vec<Vec<&str>> = described
            .stdout
            .lines()
            .map(|l| l.split_whitespace().collect())
            .collect();
        let at = lines
            .iter()
            .position(|l| *l == ["REASSIGNING", "ADDING", "REMOVING"])
            .unwrap_or_else(|| panic!("no reassignment in {described:?}"));
        assert_eq!(lines[at + 1], ["0", "3", "1"]);
        let verified = sluice_at(&cli, &["cluster", "reassign", "--verify", plan], CLI);
        assert_eq!(
            verified.status.and_then(|s| s.code()),
            Some(1),
            "{verified:?}"
        );
        assert_eq!(
            verified.stdout,
            "Reassignment of partition moving-0 is still in progress (replicas [2,3,1], adding [3], removing [1]).\n\
             Reassignment of partition replaced-0 is still in progress (replicas [3,1], adding [3], removing [1]).\n"
        );
        assert!(
            verified
                .stderr
                .contains("error: 2 of 2 partition(s) not reassigned yet"),
            "{verified:?}"
        );
        // Writes go on meanwhile, acknowledged by the replicas from before.
        more_acked(300);
        cluster.node_mut(3).resume();
        // Node 3 catches up, joins the ISRs, and the moves complete: the leader was
        // removed, so a target replica leads, at a new leader epoch.
        let moved = cluster.wait_partitions("moving", 1, SETTLE, "moved", |p| {
            p.replicas == [2, 3] && p.isr == [2, 3]
        });
        let replaced = cluster.wait_partitions("replaced", 1, SETTLE, "moved", |p| {
            p.replicas == [3] && p.isr == [3]
        });
        assert_eq!((moved[&0].leader, replaced[&0].leader), (2, 3));
        assert!(moved[&0].leader_epoch > before[0].leader_epoch);
        assert!(replaced[&0].leader_epoch > before[1].leader_epoch);
        let listed = sluice_at(&cli, &["cluster", "reassign", "--list"], CLI);
        assert_eq!(listed.stdout, "no reassignment in progress\n", "{listed:?}");
        let verified = sluice_at(&cli, &["cluster", "reassign", "--verify", plan], CLI);
        assert!(succeeded(&verified), "{verified:?}");
        assert_eq!(
            verified.stdout,
            "Reassignment of partition moving-0 is completed.\n\
             Reassignment of partition replaced-0 is completed.\n"
        );
        // And writes go on, to the new leaders.
        more_acked(300);
        stop.store(true, Ordering::SeqCst);
        senders
            .into_iter()
            .map(|sender| sender.join().unwrap())
            .collect::<Vec<usize>>()
    });
    for ((producer, topic), sent) in producers.iter().zip(topics).zip(sent) {
        producer
            .flush(Duration::from_secs(90))
            .expect("every record reported within 90 s");
        let log = consume_all(&cluster.bootstrap(), topic, 1, READ);
        check_exactly_once(&producer.context().deliveries(), &log, sent, 1);
        // Node 1 holds no replica of the topic any more: its logs are gone.
        wait_no_replica_dirs(&cluster, 1, topic);
    }
}

#[test]
fn a_cancelled_reassignment_goes_back_to_the_replicas_from_before_also_after_a_restart() {
    let mut cluster = Cluster::start(3);
    let topic = "cancelled";
    create_placed_topic(&mut cluster, topic, &[&[1, 2]], "2");
    let producer = acks_all_producer(&cluster.bootstrap());
    for id in 0..100 {
        let payload = format!("record-{id}");
        producer
            .send(
                BaseRecord::<str, str, usize>::with_opaque_to(topic, id)
                    .partition(0)
                    .payload(&payload),
            )
            .map_err(|(e, _)| e)
            .unwrap();
    }
    producer.flush(READ).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let plan = plan_file(dir.path(), &[(topic, 0, &[2, 3])]);
    let plan = plan.to_str().unwrap();
    let cli = format!(
        "{},{}",
        cluster.node(1).bootstrap(),
        cluster.node(2).bootstrap()
    );
    // Node 3 is paused before it can fetch, then gone: the move cannot complete.
    assert_ne!(
        cluster.quorum_leader(1),
        Ok(3),
        "node 3 must not lead the quorum"
    );
    cluster.node_mut(3).pause();
    let out = sluice_at(&cli, &["cluster", "reassign", "--execute", plan], CLI);
    assert!(succeeded(&out), "{out:?}");
    cluster.node_mut(3).kill9();
    // Node 2 restarts and lists the move from its own metadata.
    cluster.node_mut(2).restart();
    let in_progress = list_reassignments(&cluster, 2, None);
    assert_eq!(in_progress.error_code, 0);
    assert_eq!(
        ongoing(&in_progress),
        vec![("cancelled".to_string(), 0, vec![2, 3, 1], vec![3], vec![1])]
    );
    let out = sluice_at(&cli, &["cluster", "reassign", "--cancel", plan], CLI);
    assert!(succeeded(&out), "{out:?}");
    assert_eq!(
        out.stdout,
        "Successfully cancelled partition reassignments for cancelled-0\n"
    );
    // Back on 1 and 2 (the target's replica first, as Kafka orders them), led by 1, both
    // in sync; node 3 is no replica.
    let back = cluster.wait_partitions(topic, 1, SETTLE, "back on 1 and 2", |p| {
        p.replicas == [2, 1] && p.isr == [1, 2]
    });
    assert_eq!(back[&0].leader, 1);
    for id in [1, 2] {
        assert!(ongoing(&list_reassignments(&cluster, id, None)).is_empty());
    }
    let again = sluice_at(&cli, &["cluster", "reassign", "--cancel", plan], CLI);
    assert_eq!(again.status.and_then(|s| s.code()), Some(1), "{again:?}");
    assert_eq!(
        again.stderr,
        "error: error cancelling the reassignment of partition(s): cancelled-0: NO_REASSIGNMENT_IN_PROGRESS (No partition reassignment is in progress.)\n"
    );
    // Node 3 comes back holding no replica of the topic.
    cluster.node_mut(3).restart();
    cluster.wait_formed();
    wait_no_replica_dirs(&cluster, 3, topic);
    let log = consume_all(&cluster.bootstrap(), topic, 1, READ);
    assert_eq!(log[&0].len(), 100);
}

#[test]
fn decommissioning_a_node_under_a_running_producer_moves_every_replica_off_it_without_loss() {
    const PARTITIONS: usize = 3;
    let mut cluster = Cluster::start(3);
    let topic = "drained";
    create_placed_topic(&mut cluster, topic, &[&[1, 2], &[2, 3], &[3, 1]], "2");
    let bootstrap = cluster.bootstrap();
    let producer = acks_all_producer(&bootstrap);
    let stop = AtomicBool::new(false);
    let (sent, out) = thread::scope(|s| {
        let sender = s.spawn(|| send_until(&producer, topic, PARTITIONS, &stop));
        let _stop = StopOnDrop(&stop);
        wait_more_acked(&producer, 500, READ);
        let out = sluice_at(&bootstrap, &["cluster", "decommission", "1"], CLI);
        wait_more_acked(&producer, 500, READ);
        stop.store(true, Ordering::SeqCst);
        (sender.join().unwrap(), out)
    });
    assert!(succeeded(&out), "{out:?}");
    // Each replica on node 1 goes to the other live node that holds none of the
    // partition (each node is on a rack of its own).
    assert!(
        out.stdout.starts_with(
            "moving 2 partition replica(s) off node 1:\n  drained-0: [1,2] -> [3,2]\n  drained-2: [3,1] -> [3,2]\n\
             Successfully started partition reassignments for drained-0,drained-2\n"
        ),
        "{out:?}"
    );
    assert!(
        out.stdout.contains("2 of 2 partition(s) reassigned"),
        "{out:?}"
    );
    assert!(
        out.stdout.ends_with(
            "node 1 holds no replica any more\n\
             node 1 may stop serving clients. If it joined as a broker (a node outside --voters, a learner of the metadata quorum), stop it and remove it from the cluster with `sluice cluster unregister 1`. If it is one of the metadata quorum's voters (--voters), remove it with `sluice cluster unregister 1` (asked of another node, while a majority of the other voters runs), then stop it for good.\n"
        ),
        "{out:?}"
    );
    let view = cluster.partitions(2, topic).unwrap();
    for (p, v) in &view {
        assert!(!v.replicas.contains(&1), "partition {p}: {v:?}");
        assert_eq!(v.replicas.len(), 2, "partition {p} keeps two replicas");
    }
    producer
        .flush(Duration::from_secs(90))
        .expect("every record reported within 90 s");
    let log = consume_all(&bootstrap, topic, PARTITIONS as i32, READ);
    check_exactly_once(&producer.context().deliveries(), &log, sent, PARTITIONS);
    wait_no_replica_dirs(&cluster, 1, topic);
}

/// ListPartitionReassignments v0 to node `id`, of `topics` (all when `None`).
fn list_reassignments(
    cluster: &Cluster,
    id: i32,
    topics: Option<Vec<(&str, Vec<i32>)>>,
) -> ListPartitionReassignmentsResponse {
    let request = ListPartitionReassignmentsRequest::default().with_topics(topics.map(|topics| {
        topics
            .into_iter()
            .map(|(name, partitions)| {
                ListPartitionReassignmentsTopics::default()
                    .with_name(topic_name(name))
                    .with_partition_indexes(partitions)
            })
            .collect()
    }));
    RawConn::connect(cluster.node(id).addr()).roundtrip(0, 1, &request)
}

/// One listed reassignment: (topic, partition, replicas, adding, removing).
type Listed = (String, i32, Vec<i32>, Vec<i32>, Vec<i32>);

/// Each reassignment listed.
fn ongoing(response: &ListPartitionReassignmentsResponse) -> Vec<Listed> {
    let ids = |v: &[BrokerId]| v.iter().map(|b| b.0).collect();
    response
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions.iter().map(|p| {
                (
                    t.name.to_string(),
                    p.partition_index,
                    ids(&p.replicas),
                    ids(&p.adding_replicas),
                    ids(&p.removing_replicas),
                )
            })
        })
        .collect()
}

fn topic_name(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_string()))
}

/// AlterPartitionReassignments at `version` to node `id`: per partition of `topic`, its
/// index and target (`None` cancels).
fn alter(
    cluster: &Cluster,
    id: i32,
    version: i16,
    allow_rf_change: bool,
    topic: &str,
    partitions: &[(i32, Option<&[i32]>)],
) -> AlterPartitionReassignmentsResponse {
    let request = AlterPartitionReassignmentsRequest::default()
        .with_allow_replication_factor_change(allow_rf_change)
        .with_topics(vec![
            ReassignableTopic::default()
                .with_name(topic_name(topic))
                .with_partitions(
                    partitions
                        .iter()
                        .map(|(index, replicas)| {
                            ReassignablePartition::default()
                                .with_partition_index(*index)
                                .with_replicas(
                                    replicas.map(|r| r.iter().copied().map(BrokerId).collect()),
                                )
                        })
                        .collect(),
                ),
        ]);
    RawConn::connect(cluster.node(id).addr()).roundtrip(version, 7, &request)
}

/// (partition, error code, message) of each partition of the answer.
fn outcomes(response: &AlterPartitionReassignmentsResponse) -> Vec<(i32, i16, Option<String>)> {
    response
        .responses
        .iter()
        .flat_map(|t| {
            t.partitions.iter().map(|p| {
                (
                    p.partition_index,
                    p.error_code,
                    p.error_message.as_ref().map(|m| m.to_string()),
                )
            })
        })
        .collect()
}

#[test]
fn reassignment_requests_kafka_refuses_get_its_error_codes_on_any_node() {
    let mut cluster = Cluster::start(3);
    create_placed_topic(&mut cluster, "t", &[&[1, 2], &[2, 3]], "2");
    // Both APIs are advertised.
    let versions =
        RawConn::connect(cluster.node(2).addr()).roundtrip(3, 1, &ApiVersionsRequest::default());
    let range = |key: i16| {
        versions
            .api_keys
            .iter()
            .find(|k| k.api_key == key)
            .map(|k| (k.min_version, k.max_version))
    };
    assert_eq!((range(45), range(46)), (Some((0, 1)), Some((0, 0))));

    // To a node that does not lead the metadata quorum: it is decided there all the same.
    let controller = cluster.quorum_leader(1).unwrap();
    let other = (1..=3).find(|id| *id != controller).unwrap();
    let answer = alter(
        &cluster,
        other,
        1,
        true,
        "t",
        &[
            (9, Some(&[1, 2])),
            (0, Some(&[2, 2])),
            (0, Some(&[1, 9])),
            (0, Some(&[])),
            (0, None),
            (1, Some(&[3, 2])),
        ],
    );
    assert_eq!(
        (answer.error_code, answer.error_message.as_deref()),
        (0, None)
    );
    let message = |m: &str| Some(m.to_string());
    assert_eq!(
        outcomes(&answer),
        vec![
            (
                9,
                UNKNOWN_TOPIC_OR_PARTITION,
                message("Unable to find partition t:9.")
            ),
            (
                0,
                INVALID_REPLICA_ASSIGNMENT,
                message("The manual partition assignment includes the broker 2 more than once.")
            ),
            (
                0,
                INVALID_REPLICA_ASSIGNMENT,
                message(
                    "The manual partition assignment includes broker 9, but no such broker is registered."
                )
            ),
            (
                0,
                INVALID_REPLICA_ASSIGNMENT,
                message("The manual partition assignment includes an empty replica list.")
            ),
            (
                0,
                NO_REASSIGNMENT_IN_PROGRESS,
                message("No partition reassignment is in progress.")
            ),
            // Reordering needs no data to move: done at once.
            (1, 0, None),
        ]
    );
    let view = cluster.wait_partitions("t", 2, SETTLE, "reordered", |p| {
        p.replicas == [1, 2] || p.replicas == [3, 2]
    });
    assert_eq!(view[&1].replicas, [3, 2]);
    let unknown = alter(&cluster, other, 1, true, "nope", &[(0, Some(&[1]))]);
    assert_eq!(
        outcomes(&unknown),
        vec![(
            0,
            UNKNOWN_TOPIC_OR_PARTITION,
            message("Unable to find a topic named nope.")
        )]
    );
    // v1 without a replication factor change.
    let rf = alter(&cluster, other, 1, false, "t", &[(0, Some(&[1, 2, 3]))]);
    assert!(!rf.allow_replication_factor_change);
    assert_eq!(
        outcomes(&rf),
        vec![(
            0,
            INVALID_REPLICATION_FACTOR,
            message("The replication factor is changed from 2 to 3")
        )]
    );
    // Nothing in progress after all that.
    let listed = list_reassignments(
        &cluster,
        other,
        Some(vec![("t", vec![0, 1]), ("nope", vec![0])]),
    );
    assert_eq!((listed.error_code, listed.topics.len()), (0, 0));

    // A new replica on a fenced broker could never catch up.
    let victim = (1..=3)
        .find(|id| *id != controller && *id != other)
        .unwrap();
    create_placed_topic(&mut cluster, "f", &[&[controller]], "2");
    cluster.node_mut(victim).kill9();
    let deadline = Instant::now() + SETTLE;
    while cluster
        .describe_cluster(controller)
        .is_ok_and(|r| r.brokers.iter().any(|b| b.broker_id.0 == victim))
    {
        assert!(Instant::now() < deadline, "node {victim} was not fenced");
        thread::sleep(Duration::from_millis(50));
    }
    let refused = alter(
        &cluster,
        controller,
        0,
        true,
        "f",
        &[(0, Some(&[controller, victim]))],
    );
    assert_eq!(
        outcomes(&refused),
        vec![(
            0,
            INVALID_REPLICA_ASSIGNMENT,
            message(&format!(
                "The manual partition assignment includes broker {victim}, which is fenced or shutting down: a new replica there could never catch up."
            ))
        )]
    );
}

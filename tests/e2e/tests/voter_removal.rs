//! Removing a voter of the metadata quorum across `sluice serve` processes: with an
//! idempotent acks=all librdkafka producer writing throughout, node 3 of three voters is
//! emptied with `sluice cluster decommission`, removed with `sluice cluster unregister`
//! (it leaves the quorum's voters, then the cluster) and killed; the two nodes left keep
//! acknowledging writes, every acknowledged record is read back exactly once, and they list
//! two brokers, also after a restart with the `--voters` the cluster was formed with.
//! Node 3 restarted with its data directory refuses to start. Once as a follower, once as
//! the quorum leader.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use rdkafka::admin::{NewTopic, TopicReplication};
use rdkafka::producer::Producer;
use sluice_e2e::moves::{
    CLI, READ, SETTLE, StopOnDrop, acks_all_producer, create_placed_topic, send_until, sluice_at,
    succeeded, wait_more_acked,
};
use sluice_e2e::{
    Cluster, admin, admin_opts, block_on, check_exactly_once, consume_all, run_sluice,
};

const PARTITIONS: usize = 3;

/// Pauses the quorum leader until another node leads, until node 3 does (each election
/// among the two others picks either).
fn make_node_3_lead(cluster: &mut Cluster) {
    for _ in 0..12 {
        let leader = cluster.quorum_leader(1).unwrap();
        if leader == 3 {
            return;
        }
        cluster.node_mut(leader).pause();
        let others: Vec<i32> = [1, 2, 3].into_iter().filter(|id| *id != leader).collect();
        let deadline = Instant::now() + SETTLE;
        let elected = loop {
            let seen: Vec<Result<i32, String>> =
                others.iter().map(|id| cluster.quorum_leader(*id)).collect();
            if let [Ok(a), Ok(b)] = seen[..]
                && a == b
                && a != leader
            {
                break a;
            }
            assert!(Instant::now() < deadline, "no new leader: {seen:?}");
            thread::sleep(Duration::from_millis(50));
        };
        cluster.node_mut(leader).resume();
        // The resumed node learns of the new leader before the next round.
        let deadline = Instant::now() + SETTLE;
        while cluster.quorum_leader(leader) != Ok(elected) {
            assert!(
                Instant::now() < deadline,
                "node {leader} never followed {elected}"
            );
            thread::sleep(Duration::from_millis(50));
        }
    }
    panic!("node 3 never led");
}

#[test]
fn a_decommissioned_follower_voter_is_unregistered_under_load_and_the_two_left_go_on() {
    let cluster = Cluster::start(3);
    remove_voter_3_under_load(cluster, false);
}

/// The same with node 3 leading the quorum: it removes itself, steps down once that is
/// committed, and nodes 1 and 2 elect one of them.
#[test]
fn a_decommissioned_leader_voter_is_unregistered_under_load_and_the_two_left_go_on() {
    let mut cluster = Cluster::start(3);
    make_node_3_lead(&mut cluster);
    remove_voter_3_under_load(cluster, true);
}

/// Decommissions, unregisters and kills node 3 while an acks=all producer writes, then
/// checks what the two nodes left do (and what node 3 does when started again). When
/// `leading`, node 3 leads the quorum until it is removed.
fn remove_voter_3_under_load(mut cluster: Cluster, leading: bool) {
    let topic = "shrunk";
    // Two replicas each, so that node 3's can move to the node that holds none.
    let assignment: [&[i32]; PARTITIONS] = [&[1, 2], &[2, 3], &[3, 1]];
    create_placed_topic(&mut cluster, topic, &assignment, "2");
    let producer = acks_all_producer(&cluster.bootstrap());
    let left = format!(
        "{},{}",
        cluster.node(1).bootstrap(),
        cluster.node(2).bootstrap()
    );
    let stop = AtomicBool::new(false);
    let (sent, gone) = thread::scope(|s| {
        let sender = s.spawn(|| send_until(&producer, topic, PARTITIONS, &stop));
        let _stop = StopOnDrop(&stop);
        wait_more_acked(&producer, 300, READ);

        let out = sluice_at(&left, &["cluster", "decommission", "3"], CLI);
        assert!(succeeded(&out), "{out:?}");
        assert!(
            out.stdout.contains("node 3 holds no replica any more\n"),
            "{out:?}"
        );
        let moved = cluster.wait_partitions(topic, PARTITIONS as i32, SETTLE, "moved", |p| {
            p.isr.len() == 2
        });
        for (p, view) in &moved {
            assert!(!view.replicas.contains(&3), "partition {p}: {view:?}");
        }
        wait_more_acked(&producer, 300, READ);

        // Node 3 does not remove itself (it would not see the rest through).
        let itself = sluice_at(
            &cluster.node(3).bootstrap(),
            &["cluster", "unregister", "3"],
            CLI,
        );
        assert!(
            itself.stderr.contains(
                "INVALID_REQUEST (node 3 cannot take itself out of the metadata quorum's \
                 voters: once removed it receives no more of the metadata log, so it could \
                 not see its unregistration through; ask another node)"
            ),
            "{itself:?}"
        );
        // Node 3 is a voter: it leaves the quorum's voters, then the cluster.
        let leader = cluster.quorum_leader(1).unwrap();
        assert_eq!(leader == 3, leading, "node {leader} leads the quorum");
        let out = sluice_at(&left, &["cluster", "unregister", "3"], CLI);
        assert!(succeeded(&out), "{out:?}");
        assert_eq!(
            out.stdout,
            "node 3 is unregistered: it is no broker of the cluster and no member of the \
             metadata quorum any more\n"
        );
        cluster.node_mut(3).kill9();
        let gone = cluster.remove_node(3);
        cluster.wait_metadata_brokers(&[1, 2], &[1, 2], SETTLE);
        for id in [1, 2] {
            let leader = cluster.quorum_leader(id).unwrap();
            assert!([1, 2].contains(&leader), "node {id} names leader {leader}");
        }
        // The two voters left make a quorum of their own: acks=all writes go on.
        wait_more_acked(&producer, 1000, READ);
        stop.store(true, Ordering::SeqCst);
        (sender.join().unwrap(), gone)
    });
    producer
        .flush(Duration::from_secs(90))
        .expect("every record reported within 90 s");
    let log = consume_all(&cluster.bootstrap(), topic, PARTITIONS as i32, READ);
    check_exactly_once(&producer.context().deliveries(), &log, sent, PARTITIONS);
    drop(producer);
    let again = sluice_at(&left, &["cluster", "unregister", "3"], CLI);
    assert!(
        again
            .stderr
            .contains("BROKER_ID_NOT_REGISTERED (Broker ID 3 is not currently registered)"),
        "{again:?}"
    );

    // Restarted with its data directory, node 3 refuses to start: its own log holds the
    // change (it led the removal) or the others refuse it (it missed the end of it).
    let args = gone.serve_args();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let refused = run_sluice(&args, CLI);
    assert_eq!(
        refused.status.and_then(|s| s.code()),
        Some(1),
        "{refused:?}"
    );
    let last = refused.stderr.lines().last().unwrap_or_default();
    assert!(
        last.contains(
            "node 3 was removed from the metadata quorum (its voters are now [1, 2]): a \
             removed node does not come back, even though --voters still lists it; add a \
             broker with a new node id and an empty data directory instead"
        ),
        "{refused:?}"
    );

    // Node 1 restarts with the --voters the cluster was formed with (which lists node 3):
    // the quorum stays the two of them, and it takes writes that need both.
    cluster.node_mut(1).restart();
    cluster.wait_formed();
    cluster.wait_metadata_brokers(&[1, 2], &[1, 2], SETTLE);
    let after = NewTopic::new("after", 1, TopicReplication::Fixed(2));
    let admin = admin(&cluster.bootstrap());
    let created = block_on(admin.create_topics([&after], &admin_opts())).unwrap();
    assert_eq!(created, vec![Ok("after".to_string())]);
    let view = cluster.wait_partitions("after", 1, SETTLE, "all in sync", |p| p.isr.len() == 2);
    assert_eq!(view[&0].isr, vec![1, 2]);
    let log = cluster.node(1).log();
    assert!(
        !log.contains("belongs to a quorum of voters"),
        "node 1 refused its own data directory: {log}"
    );
}

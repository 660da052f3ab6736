//! Transactional ids live in one shard per `__transaction_state` partition:
//! what live operations build equals what replaying their records builds,
//! an id is served only while its partition is loaded here, and markers
//! carry the partition's leader epoch.

// Tests may unwrap and index: a failure is a test failure.
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]

mod common;

use std::sync::atomic::Ordering;

use common::*;
use kafka_protocol::error::ResponseError as E;
use kafka_protocol::messages::{
    AddPartitionsToTxnRequest, DescribeTransactionsRequest, DescribeTransactionsResponse,
    ListTransactionsRequest, TransactionalId,
};
use sluice_protocol::model::{LeaderEpoch, coordinator_partition_for};
use sluice_txn::records::TxnLogKey;
use sluice_txn::{
    CoordinatorRecord, LogEntry, PartitionLoader, TransactionCoordinator, TxnConfig, TxnState,
};

use TxnState::*;

const NOT_COORDINATOR: i16 = 16;
const LOAD_IN_PROGRESS: i16 = 14;

fn partition_of(tid: &str) -> i32 {
    coordinator_partition_for(tid, PARTITIONS)
}

/// A transactional id whose partition differs from `other`'s.
fn id_beside(other: &str) -> String {
    (0..)
        .map(|i| format!("other-{i}"))
        .find(|t| partition_of(t) != partition_of(other))
        .unwrap()
}

/// Loads `partition` at `epoch` from the records of its ids among `records`.
fn load_partition(
    c: &TransactionCoordinator,
    partition: i32,
    epoch: LeaderEpoch,
    records: &[CoordinatorRecord],
) {
    let mut loader = c.load(partition, epoch).unwrap();
    for record in records {
        let tid = TxnLogKey::decode(&record.key).unwrap().transactional_id;
        if partition_of(&tid) == partition {
            loader.replay(&LogEntry::record(record.clone())).unwrap();
        }
    }
    assert!(loader.finish());
}

async fn describe(c: &TransactionCoordinator, tids: &[&str]) -> DescribeTransactionsResponse {
    c.describe_transactions(
        DescribeTransactionsRequest::default()
            .with_transactional_ids(tids.iter().map(|t| TransactionalId(s(t))).collect()),
        0,
    )
    .await
}

async fn listed(c: &TransactionCoordinator) -> (i16, Vec<String>) {
    let r = c
        .list_transactions(ListTransactionsRequest::default(), 0)
        .await;
    let ids = r
        .transaction_states
        .iter()
        .map(|t| t.transactional_id.0.to_string())
        .collect();
    (r.error_code, ids)
}

/// A transactional id's state, epoch and partitions.
type Summary<'a> = (&'a str, TxnState, i16, Vec<(String, Vec<i32>)>);

#[tokio::test(start_paused = true)]
async fn live_state_equals_the_state_replayed_from_the_log() {
    let h = Harness::new();
    let c = h.coordinator();
    // Expired and timed out first: the clock jumps for them.
    init(&c, "expired").await;
    let (pid, epoch) = init(&c, "timedout").await;
    add(&c, "timedout", pid, epoch, &[("e", &[0])]).await;
    h.clock
        .advance(TxnConfig::default().transactional_id_expiration_ms + 1);
    c.abort_timed_out().await;
    settle().await;
    // Committed, aborted, still open, with a group's offsets, bumped by
    // EndTxn v5, and fenced by a second InitProducerId.
    let (pid, epoch) = init(&c, "committed").await;
    add(&c, "committed", pid, epoch, &[("a", &[0, 1])]).await;
    assert_eq!(end(&c, "committed", pid, epoch, true).await, 0);
    let (pid, epoch) = init(&c, "aborted").await;
    add(&c, "aborted", pid, epoch, &[("b", &[0])]).await;
    assert_eq!(end(&c, "aborted", pid, epoch, false).await, 0);
    let (pid, epoch) = init(&c, "open").await;
    add(&c, "open", pid, epoch, &[("c", &[0])]).await;
    let (pid, epoch) = init(&c, "offsets").await;
    let r = c
        .add_offsets_to_txn(offsets_req("offsets", pid, epoch, "grp"), 3)
        .await;
    assert_eq!(r.error_code, 0);
    let (pid, epoch) = init(&c, "bumped").await;
    add(&c, "bumped", pid, epoch, &[("a", &[2])]).await;
    let r = c.end_txn(end_req("bumped", pid, epoch, true), 5).await;
    assert_eq!((r.error_code, r.producer_epoch), (0, epoch + 1));
    let (pid, epoch) = init(&c, "fenced").await;
    add(&c, "fenced", pid, epoch, &[("d", &[0])]).await;
    assert_eq!(init(&c, "fenced").await, (pid, epoch + 2));
    settle().await;

    let live = c.image();
    // What the operations built.
    let summary: Vec<Summary> = live
        .iter()
        .map(|(tid, v)| {
            (
                tid.as_str(),
                v.state,
                v.producer_epoch,
                v.partitions.clone(),
            )
        })
        .collect();
    let offsets_partition = coordinator_partition_for("grp", 50);
    assert_eq!(
        summary,
        vec![
            ("aborted", CompleteAbort, 0, vec![]),
            ("bumped", CompleteCommit, 1, vec![]),
            ("committed", CompleteCommit, 0, vec![]),
            ("fenced", Empty, 2, vec![]),
            (
                "offsets",
                Ongoing,
                0,
                vec![("__consumer_offsets".into(), vec![offsets_partition])]
            ),
            ("open", Ongoing, 0, vec![("c".into(), vec![0])]),
            ("timedout", CompleteAbort, 1, vec![]),
        ]
    );

    // A coordinator that only replays the log ends in the same state...
    h.clear();
    let replayed = h.loaded_coordinator(&replay(&h));
    assert_eq!(replayed.image(), live);
    let all = [
        "aborted",
        "bumped",
        "committed",
        "expired",
        "fenced",
        "offsets",
        "open",
        "timedout",
    ];
    assert_eq!(describe(&replayed, &all).await, describe(&c, &all).await);
    // ...and serves the same transactions, with nothing left to complete.
    let open = &live["open"];
    assert_eq!(
        verify(&replayed, open.producer_id, open.producer_epoch, "c", 0),
        Ok(())
    );
    settle().await;
    assert_eq!(h.events(), vec![]);
}

#[tokio::test(start_paused = true)]
async fn ids_of_an_unloaded_partition_get_not_coordinator() {
    let h = Harness::new();
    let c = h.coordinator();
    let other = id_beside("t");
    let (pid, epoch) = init(&c, "t").await;
    add(&c, "t", pid, epoch, &[("a", &[0])]).await;
    init(&c, &other).await;
    assert!(c.unload(partition_of("t"), None));
    assert!(!c.unload(partition_of("t"), None), "unloaded once");

    let r = c.init_producer_id(init_req("t"), 4).await;
    assert_eq!((r.error_code, r.producer_id.0), (NOT_COORDINATOR, -1));
    assert_eq!(
        add(&c, "t", pid, epoch, &[("a", &[1])]).await,
        vec![NOT_COORDINATOR]
    );
    assert_eq!(end(&c, "t", pid, epoch, true).await, NOT_COORDINATOR);
    let r = c
        .add_offsets_to_txn(offsets_req("t", pid, epoch, "grp"), 3)
        .await;
    assert_eq!(r.error_code, NOT_COORDINATOR);
    let verify_only = AddPartitionsToTxnRequest::default().with_transactions(vec![batch_txn(
        "t",
        pid,
        epoch,
        true,
        &[("a", &[0, 1])],
    )]);
    let r = c.add_partitions_to_txn(verify_only, 4).await;
    let codes: Vec<i16> = r.results_by_transaction[0].topic_results[0]
        .results_by_partition
        .iter()
        .map(|p| p.partition_error_code)
        .collect();
    assert_eq!(codes, vec![NOT_COORDINATOR; 2]);
    let d = describe(&c, &["t", &other]).await;
    assert_eq!(
        d.transaction_states
            .iter()
            .map(|t| t.error_code)
            .collect::<Vec<_>>(),
        vec![NOT_COORDINATOR, 0]
    );
    assert_eq!(listed(&c).await, (0, vec![other.clone()]));
    // The produce path no longer knows the producer here.
    assert_eq!(verify(&c, pid, epoch, "a", 0), Err(E::InvalidTxnState));

    // Loading the partition again (a newer leader epoch) brings the id back.
    load_partition(&c, partition_of("t"), LeaderEpoch(1), &replay(&h));
    assert_eq!(verify(&c, pid, epoch, "a", 0), Ok(()));
    assert_eq!(listed(&c).await.1, {
        let mut ids = vec!["t".to_string(), other];
        ids.sort();
        ids
    });
}

#[tokio::test(start_paused = true)]
async fn a_loading_partition_answers_load_in_progress() {
    let h = Harness::new();
    let c = h.unloaded_coordinator(TxnConfig::default());
    let loader = c.load(partition_of("t"), LeaderEpoch(0)).unwrap();
    let r = c.init_producer_id(init_req("t"), 4).await;
    assert_eq!(r.error_code, LOAD_IN_PROGRESS);
    assert_eq!(end(&c, "t", 1, 0, true).await, LOAD_IN_PROGRESS);
    assert_eq!(
        describe(&c, &["t"]).await.transaction_states[0].error_code,
        LOAD_IN_PROGRESS
    );
    // Kafka answers ListTransactions so while any partition loads.
    assert_eq!(listed(&c).await, (LOAD_IN_PROGRESS, vec![]));
    // An id of a partition never loaded here has another coordinator.
    let elsewhere = c.init_producer_id(init_req(&id_beside("t")), 4).await;
    assert_eq!(elsewhere.error_code, NOT_COORDINATOR);
    assert_eq!(h.states(), vec![], "nothing written while loading");

    assert!(loader.finish());
    assert_eq!(init(&c, "t").await, (1000, 0));
    assert_eq!(listed(&c).await, (0, vec!["t".to_string()]));
}

#[tokio::test(start_paused = true)]
async fn markers_carry_the_leader_epoch_of_the_ids_partition() {
    let h = Harness::new();
    let c = h.unloaded_coordinator(TxnConfig::default());
    for partition in 0..PARTITIONS {
        let epoch = if partition == partition_of("t") { 7 } else { 0 };
        load_partition(&c, partition, LeaderEpoch(epoch), &[]);
    }
    let (pid, epoch) = init(&c, "t").await;
    add(&c, "t", pid, epoch, &[("a", &[0])]).await;
    assert_eq!(end(&c, "t", pid, epoch, true).await, 0);
    settle().await;
    // Leadership confirmed at a newer epoch: the shard stays, its epoch rises.
    assert!(c.load(partition_of("t"), LeaderEpoch(9)).is_none());
    add(&c, "t", pid, epoch, &[("a", &[0])]).await;
    assert_eq!(end(&c, "t", pid, epoch, false).await, 0);
    settle().await;
    assert_eq!(
        *h.marker_epochs.lock(),
        vec![LeaderEpoch(7), LeaderEpoch(9)]
    );
}

#[tokio::test(start_paused = true)]
async fn the_next_leader_completes_a_transaction_the_unloaded_one_decided() {
    let h = Harness::new();
    let c = h.coordinator();
    let (pid, epoch) = init(&c, "t").await;
    add(&c, "t", pid, epoch, &[("a", &[0])]).await;
    h.hold_markers.store(true, Ordering::SeqCst);
    assert_eq!(end(&c, "t", pid, epoch, true).await, 0);
    settle().await;
    // Leadership moves while the markers are being written: this shard stops
    // before recording the completion.
    assert!(c.unload(partition_of("t"), None));
    h.hold_markers.store(false, Ordering::SeqCst);
    settle().await;
    assert_eq!(
        h.states(),
        vec![Some(Empty), Some(Ongoing), Some(PrepareCommit)]
    );
    // The next leader (here: this node again, at a newer epoch) writes the
    // markers again and completes the transaction.
    load_partition(&c, partition_of("t"), LeaderEpoch(1), &replay(&h));
    settle().await;
    assert_eq!(
        h.states(),
        vec![
            Some(Empty),
            Some(Ongoing),
            Some(PrepareCommit),
            Some(CompleteCommit)
        ]
    );
    assert_eq!(
        *h.marker_epochs.lock(),
        vec![LeaderEpoch(0), LeaderEpoch(1)]
    );
    assert_eq!(
        describe(&c, &["t"]).await.transaction_states[0]
            .transaction_state
            .as_str(),
        "CompleteCommit"
    );
}

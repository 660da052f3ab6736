//! Behaviour of the transaction coordinator as a client observes it.

// Tests may unwrap and index: a failure is a test failure.
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]

mod common;

use std::sync::Arc;
use std::sync::atomic::Ordering;

use common::*;
use kafka_protocol::error::ResponseError as E;
use kafka_protocol::messages::{
    AddPartitionsToTxnRequest, DescribeTransactionsRequest, ListTransactionsRequest, ProducerId,
    TransactionalId,
};
use sluice_protocol::clock::Clock;
use sluice_txn::records::{TxnLogKey, TxnLogValue};
use sluice_txn::{CoordinatorRecord, MarkerError, TxnConfig, TxnState, WriteError};

use TxnState::*;

#[tokio::test(start_paused = true)]
async fn init_new_id_then_bump_epoch() {
    let h = Harness::new();
    let c = h.coordinator();
    assert_eq!(init(&c, "t").await, (1000, 0));
    assert_eq!(init(&c, "t").await, (1000, 1));
    assert_eq!(init(&c, "other").await, (1001, 0));
    assert_eq!(h.states(), vec![Some(Empty), Some(Empty), Some(Empty)]);
}

#[tokio::test(start_paused = true)]
async fn invalid_transaction_timeout() {
    let h = Harness::new();
    let c = h.coordinator();
    for timeout in [0, -1, 900_001] {
        let r = c
            .init_producer_id(init_req("t").with_transaction_timeout_ms(timeout), 4)
            .await;
        assert_eq!(r.error_code, E::InvalidTransactionTimeout.code());
        assert_eq!((r.producer_id.0, r.producer_epoch), (-1, -1));
    }
    let r = c
        .init_producer_id(init_req("").with_transaction_timeout_ms(1000), 4)
        .await;
    assert_eq!(r.error_code, E::InvalidRequest.code());
    assert!(h.events().is_empty());
}

#[tokio::test(start_paused = true)]
async fn init_with_ongoing_transaction_aborts_it_first() {
    let h = Harness::new();
    let c = h.coordinator();
    let (pid, epoch) = init(&c, "t").await;
    assert_eq!(
        add(&c, "t", pid, epoch, &[("a", &[0, 1])]).await,
        vec![0, 0]
    );
    h.clear();
    // The first attempt aborts the open transaction and asks for a retry.
    let r = c.init_producer_id(init_req("t"), 4).await;
    assert_eq!(r.error_code, E::ConcurrentTransactions.code());
    settle().await;
    assert_eq!(
        h.events(),
        vec![
            Event::State {
                tid: "t".into(),
                state: Some(PrepareAbort),
                producer_id: pid,
                epoch: 1,
                partitions: vec![("a".into(), vec![0, 1])],
            },
            Event::Markers {
                producer_id: pid,
                epoch: 1,
                commit: false,
                partitions: vec![tp("a", 0), tp("a", 1)],
            },
            Event::State {
                tid: "t".into(),
                state: Some(CompleteAbort),
                producer_id: pid,
                epoch: 1,
                partitions: vec![],
            },
        ]
    );
    // The retry bumps once more.
    assert_eq!(init(&c, "t").await, (pid, 2));
    // The old instance is fenced.
    assert_eq!(
        add(&c, "t", pid, epoch, &[("a", &[0])]).await,
        vec![E::ProducerFenced.code()]
    );
    assert_eq!(
        end(&c, "t", pid, epoch, true).await,
        E::ProducerFenced.code()
    );
}

#[tokio::test(start_paused = true)]
async fn commit_writes_prepare_then_markers_then_complete() {
    let h = Harness::new();
    let c = h.coordinator();
    let (pid, epoch) = init(&c, "t").await;
    assert_eq!(add(&c, "t", pid, epoch, &[("a", &[0])]).await, vec![0]);
    assert_eq!(
        add(&c, "t", pid, epoch, &[("b", &[2]), ("a", &[0])]).await,
        vec![0, 0]
    );
    // Already added: no write.
    assert_eq!(add(&c, "t", pid, epoch, &[("b", &[2])]).await, vec![0]);
    assert_eq!(h.states(), vec![Some(Empty), Some(Ongoing), Some(Ongoing)]);
    h.clear();
    assert_eq!(end(&c, "t", pid, epoch, true).await, 0);
    settle().await;
    let parts = vec![("a".to_owned(), vec![0]), ("b".to_owned(), vec![2])];
    assert_eq!(
        h.events(),
        vec![
            Event::State {
                tid: "t".into(),
                state: Some(PrepareCommit),
                producer_id: pid,
                epoch,
                partitions: parts,
            },
            Event::Markers {
                producer_id: pid,
                epoch,
                commit: true,
                partitions: vec![tp("a", 0), tp("b", 2)],
            },
            Event::State {
                tid: "t".into(),
                state: Some(CompleteCommit),
                producer_id: pid,
                epoch,
                partitions: vec![],
            },
        ]
    );
    // A retried commit succeeds again; an abort now is invalid.
    assert_eq!(end(&c, "t", pid, epoch, true).await, 0);
    assert_eq!(
        end(&c, "t", pid, epoch, false).await,
        E::InvalidTxnState.code()
    );
    // The next transaction can start.
    assert_eq!(add(&c, "t", pid, epoch, &[("a", &[0])]).await, vec![0]);
}

#[tokio::test(start_paused = true)]
async fn abort_writes_abort_markers() {
    let h = Harness::new();
    let c = h.coordinator();
    let (pid, epoch) = init(&c, "t").await;
    add(&c, "t", pid, epoch, &[("a", &[3])]).await;
    h.clear();
    assert_eq!(end(&c, "t", pid, epoch, false).await, 0);
    settle().await;
    assert_eq!(h.states(), vec![Some(PrepareAbort), Some(CompleteAbort)]);
    assert_eq!(
        h.markers(),
        vec![Event::Markers {
            producer_id: pid,
            epoch,
            commit: false,
            partitions: vec![tp("a", 3)],
        }]
    );
    assert_eq!(end(&c, "t", pid, epoch, false).await, 0);
    assert_eq!(
        end(&c, "t", pid, epoch, true).await,
        E::InvalidTxnState.code()
    );
}

#[tokio::test(start_paused = true)]
async fn concurrent_transactions_while_markers_are_in_flight() {
    let h = Harness::new();
    let c = h.coordinator();
    let (pid, epoch) = init(&c, "t").await;
    add(&c, "t", pid, epoch, &[("a", &[0])]).await;
    h.hold_markers.store(true, Ordering::SeqCst);
    // EndTxn is answered once PrepareCommit is durable, before the markers.
    assert_eq!(end(&c, "t", pid, epoch, true).await, 0);
    assert!(h.markers().is_empty());
    let busy = E::ConcurrentTransactions.code();
    assert_eq!(add(&c, "t", pid, epoch, &[("a", &[0])]).await, vec![busy]);
    assert_eq!(end(&c, "t", pid, epoch, true).await, busy);
    assert_eq!(end(&c, "t", pid, epoch, false).await, busy);
    assert_eq!(c.init_producer_id(init_req("t"), 4).await.error_code, busy);
    assert_eq!(
        c.add_offsets_to_txn(offsets_req("t", pid, epoch, "g"), 3)
            .await
            .error_code,
        busy
    );
    // A late write of the committed transaction is refused (retriably).
    assert_eq!(verify(&c, pid, epoch, "a", 0), Err(E::NotEnoughReplicas));
    h.hold_markers.store(false, Ordering::SeqCst);
    settle().await;
    assert_eq!(h.markers().len(), 1);
    assert_eq!(verify(&c, pid, epoch, "a", 0), Err(E::InvalidTxnState));
    assert_eq!(add(&c, "t", pid, epoch, &[("a", &[0])]).await, vec![0]);
}

#[tokio::test(start_paused = true)]
async fn add_partitions_errors() {
    let h = Harness::new();
    let c = h.coordinator();
    assert_eq!(
        add(&c, "nobody", 1, 0, &[("a", &[0])]).await,
        vec![E::InvalidProducerIdMapping.code()]
    );
    let (pid, epoch) = init(&c, "t").await;
    init(&c, "t").await;
    assert_eq!(
        add(&c, "t", pid + 7, epoch + 1, &[("a", &[0])]).await,
        vec![E::InvalidProducerIdMapping.code()]
    );
    // Old epoch: PRODUCER_FENCED from v2 on, INVALID_PRODUCER_EPOCH before.
    assert_eq!(
        add_v(&c, "t", pid, epoch, &[("a", &[0, 1])], 2).await,
        vec![E::ProducerFenced.code(); 2]
    );
    assert_eq!(
        add_v(&c, "t", pid, epoch, &[("a", &[0])], 1).await,
        vec![E::InvalidProducerEpoch.code()]
    );
    assert_eq!(
        add(&c, "", pid, epoch, &[("a", &[0])]).await,
        vec![E::InvalidRequest.code()]
    );
    // EndTxn without a transaction.
    assert_eq!(
        end(&c, "t", pid, epoch + 1, true).await,
        E::InvalidTxnState.code()
    );
    assert_eq!(
        end(&c, "nobody", pid, 0, true).await,
        E::InvalidProducerIdMapping.code()
    );
    let r = c.end_txn(end_req("t", pid, epoch, true), 1).await;
    assert_eq!(r.error_code, E::InvalidProducerEpoch.code());
}

#[tokio::test(start_paused = true)]
async fn unknown_partition_fails_the_request_and_others_are_not_attempted() {
    let h = Harness::new();
    let c = h.coordinator();
    c.set_partition_check(Arc::new(|tp: &sluice_protocol::model::TopicPartition| {
        (tp.topic == "missing").then_some(E::UnknownTopicOrPartition)
    }));
    let (pid, epoch) = init(&c, "t").await;
    assert_eq!(
        add(&c, "t", pid, epoch, &[("a", &[0]), ("missing", &[1])]).await,
        vec![
            E::OperationNotAttempted.code(),
            E::UnknownTopicOrPartition.code()
        ]
    );
    assert_eq!(h.states(), vec![Some(Empty)]);
}

#[tokio::test(start_paused = true)]
async fn add_offsets_adds_the_group_partition() {
    let h = Harness::new();
    let c = h.coordinator();
    let (pid, epoch) = init(&c, "t").await;
    let r = c
        .add_offsets_to_txn(offsets_req("t", pid, epoch, "my-group"), 3)
        .await;
    assert_eq!(r.error_code, 0);
    let expected = sluice_protocol::model::coordinator_partition_for("my-group", 50);
    assert_eq!(
        verify(&c, pid, epoch, "__consumer_offsets", expected),
        Ok(())
    );
    let r = c
        .add_offsets_to_txn(offsets_req("t", pid, epoch + 3, "my-group"), 1)
        .await;
    assert_eq!(r.error_code, E::InvalidProducerEpoch.code());
    let r = c
        .add_offsets_to_txn(offsets_req("t", pid, epoch + 3, "my-group"), 2)
        .await;
    assert_eq!(r.error_code, E::ProducerFenced.code());
    assert_eq!(end(&c, "t", pid, epoch, true).await, 0);
    settle().await;
    assert_eq!(
        h.markers(),
        vec![Event::Markers {
            producer_id: pid,
            epoch,
            commit: true,
            partitions: vec![tp("__consumer_offsets", expected)],
        }]
    );
}

/// `(state, start, last update)` of every `__transaction_state` record written.
fn stamps(h: &Harness) -> Vec<(TxnState, i64, i64)> {
    h.records
        .lock()
        .iter()
        .filter_map(|r| r.value.as_ref())
        .map(|v| TxnLogValue::decode(v).unwrap())
        .map(|v| (v.state, v.start_timestamp_ms, v.last_update_timestamp_ms))
        .collect()
}

/// A transaction's timeout counts from when its first partition was added,
/// by the coordinator's clock: it is aborted by the first check after
/// exactly `start + timeout` (Kafka aborts once `start + timeout < now`),
/// and never before, however many partitions it adds meanwhile.
#[tokio::test(start_paused = true)]
async fn transaction_times_out_exactly_after_its_timeout() {
    let h = Harness::new();
    let c = h.coordinator();
    let (pid, epoch) = init(&c, "t").await;
    let start = h.clock.advance(1_000);
    assert_eq!(add(&c, "t", pid, epoch, &[("a", &[0])]).await, vec![0]);
    h.clock.advance(5_000);
    assert_eq!(add(&c, "t", pid, epoch, &[("b", &[0])]).await, vec![0]);
    let described = c
        .describe_transactions(
            DescribeTransactionsRequest::default()
                .with_transactional_ids(vec![TransactionalId(s("t"))]),
            0,
        )
        .await;
    assert_eq!(
        described.transaction_states[0].transaction_start_time_ms,
        start
    );

    let deadline = start + i64::from(TIMEOUT_MS);
    h.clock.set(deadline);
    c.abort_timed_out().await;
    settle().await;
    assert_eq!(h.states(), vec![Some(Empty), Some(Ongoing), Some(Ongoing)]);
    h.clock.set(deadline + 1);
    c.abort_timed_out().await;
    settle().await;
    assert_eq!(
        stamps(&h),
        vec![
            (Empty, -1, START_MS),
            (Ongoing, start, start),
            (Ongoing, start, start + 5_000),
            (PrepareAbort, start, deadline + 1),
            (CompleteAbort, start, deadline + 1),
        ]
    );
    assert_eq!(
        h.markers(),
        vec![Event::Markers {
            producer_id: pid,
            epoch: epoch + 1,
            commit: false,
            partitions: vec![tp("a", 0), tp("b", 0)],
        }]
    );
}

/// ListTransactions' duration filter (v1+) keeps transactions running for
/// longer than the filter at the coordinator's clock, to the millisecond.
#[tokio::test(start_paused = true)]
async fn duration_filter_lists_transactions_running_longer_than_it() {
    let h = Harness::new();
    let c = h.coordinator();
    let (pid, epoch) = init(&c, "t").await;
    assert_eq!(add(&c, "t", pid, epoch, &[("a", &[0])]).await, vec![0]);
    h.clock.advance(5_000);
    let running_longer_than = |ms: i64| {
        let c = c.clone();
        async move {
            let r = c
                .list_transactions(
                    ListTransactionsRequest::default()
                        .with_state_filters(vec![s("Ongoing")])
                        .with_duration_filter(ms),
                    1,
                )
                .await;
            r.transaction_states.len()
        }
    };
    assert_eq!(running_longer_than(4_999).await, 1);
    assert_eq!(running_longer_than(5_000).await, 0);
}

/// An idle transactional id is forgotten (tombstoned) by the first check at
/// exactly `transactional_id_expiration_ms` after its last update by the
/// coordinator's clock, and not a millisecond earlier; an id with an open
/// transaction is kept however long it was idle.
#[tokio::test(start_paused = true)]
async fn idle_id_expires_exactly_at_its_expiration() {
    let expiration = 10_000;
    let h = Harness::new();
    let c = h.coordinator_with(TxnConfig {
        transactional_id_expiration_ms: expiration,
        ..TxnConfig::default()
    });
    let (pid, epoch) = init(&c, "t").await;
    let (bp, be) = init(&c, "busy").await;
    assert_eq!(add(&c, "busy", bp, be, &[("b", &[0])]).await, vec![0]);
    let committed = h.clock.advance(2_000);
    assert_eq!(add(&c, "t", pid, epoch, &[("a", &[0])]).await, vec![0]);
    assert_eq!(end(&c, "t", pid, epoch, true).await, 0);
    settle().await;
    assert_eq!(
        stamps(&h).last(),
        Some(&(CompleteCommit, committed, committed))
    );
    h.clear();

    h.clock.set(committed + expiration - 1);
    c.abort_timed_out().await;
    assert_eq!(h.states(), vec![]);
    h.clock.set(committed + expiration);
    c.abort_timed_out().await;
    assert_eq!(h.states(), vec![None]);
    assert_eq!(
        h.events(),
        vec![Event::State {
            tid: "t".into(),
            state: None,
            producer_id: -1,
            epoch: -1,
            partitions: vec![],
        }]
    );
    assert_eq!(verify(&c, bp, be, "b", 0), Ok(()));
}

#[tokio::test(start_paused = true)]
async fn timeout_aborts_and_fences_the_old_epoch() {
    let h = Harness::new();
    let c = h.coordinator();
    let (pid, epoch) = init(&c, "t").await;
    add(&c, "t", pid, epoch, &[("a", &[0])]).await;
    let start = h.clock.now_ms();
    // Not yet expired.
    h.clock.set(start + i64::from(TIMEOUT_MS) - 5_000);
    c.abort_timed_out().await;
    assert_eq!(h.states(), vec![Some(Empty), Some(Ongoing)]);
    h.clock.set(start + i64::from(TIMEOUT_MS) + 5_000);
    c.abort_timed_out().await;
    settle().await;
    assert_eq!(
        h.states(),
        vec![
            Some(Empty),
            Some(Ongoing),
            Some(PrepareAbort),
            Some(CompleteAbort)
        ]
    );
    assert_eq!(
        h.markers(),
        vec![Event::Markers {
            producer_id: pid,
            epoch: epoch + 1,
            commit: false,
            partitions: vec![tp("a", 0)],
        }]
    );
    // The zombie is fenced everywhere.
    assert_eq!(verify(&c, pid, epoch, "a", 0), Err(E::InvalidProducerEpoch));
    assert_eq!(
        add(&c, "t", pid, epoch, &[("a", &[0])]).await,
        vec![E::ProducerFenced.code()]
    );
    assert_eq!(
        end(&c, "t", pid, epoch, true).await,
        E::ProducerFenced.code()
    );
    let r = c.end_txn(end_req("t", pid, epoch, true), 1).await;
    assert_eq!(r.error_code, E::InvalidProducerEpoch.code());
    // A new instance carries on.
    assert_eq!(init(&c, "t").await, (pid, epoch + 2));
}

#[tokio::test(start_paused = true)]
async fn verify_partition_index() {
    let h = Harness::new();
    let c = h.coordinator();
    assert_eq!(verify(&c, 42, 0, "a", 0), Err(E::InvalidTxnState));
    let (pid, epoch) = init(&c, "t").await;
    assert_eq!(verify(&c, pid, epoch, "a", 0), Err(E::InvalidTxnState));
    add(&c, "t", pid, epoch, &[("a", &[0])]).await;
    assert_eq!(verify(&c, pid, epoch, "a", 0), Ok(()));
    assert_eq!(verify(&c, pid, epoch, "a", 1), Err(E::InvalidTxnState));
    assert_eq!(verify(&c, pid, epoch, "b", 0), Err(E::InvalidTxnState));
    assert_eq!(
        verify(&c, pid, epoch + 1, "a", 0),
        Err(E::InvalidProducerEpoch)
    );
    end(&c, "t", pid, epoch, false).await;
    settle().await;
    assert_eq!(verify(&c, pid, epoch, "a", 0), Err(E::InvalidTxnState));
}

#[tokio::test(start_paused = true)]
async fn batched_add_and_verify_only() {
    let h = Harness::new();
    let c = h.coordinator();
    let (p1, e1) = init(&c, "t1").await;
    let (p2, e2) = init(&c, "t2").await;
    add(&c, "t2", p2, e2, &[("x", &[0])]).await;
    for version in [4i16, 5] {
        let req = AddPartitionsToTxnRequest::default().with_transactions(vec![
            batch_txn("t1", p1, e1, false, &[("a", &[0, 1])]),
            batch_txn("t2", p2, e2, true, &[("x", &[0, 1])]),
            batch_txn("t3", 5, 0, true, &[("x", &[0])]),
        ]);
        let r = c.add_partitions_to_txn(req, version).await;
        assert_eq!(r.error_code, 0);
        let codes: Vec<(String, Vec<i16>)> = r
            .results_by_transaction
            .iter()
            .map(|t| {
                (
                    t.transactional_id.0.to_string(),
                    t.topic_results
                        .iter()
                        .flat_map(|tr| {
                            tr.results_by_partition
                                .iter()
                                .map(|p| p.partition_error_code)
                        })
                        .collect(),
                )
            })
            .collect();
        let missing = if version >= 5 {
            E::TransactionAbortable.code()
        } else {
            E::InvalidTxnState.code()
        };
        assert_eq!(
            codes,
            vec![
                ("t1".into(), vec![0, 0]),
                ("t2".into(), vec![0, missing]),
                ("t3".into(), vec![E::InvalidProducerIdMapping.code()]),
            ]
        );
    }
    assert_eq!(verify(&c, p1, e1, "a", 1), Ok(()));
    // Verification never adds.
    assert_eq!(verify(&c, p2, e2, "x", 1), Err(E::InvalidTxnState));
}

#[tokio::test(start_paused = true)]
async fn kip360_recovery_with_known_producer_id() {
    let h = Harness::new();
    let c = h.coordinator();
    let (pid, epoch) = init(&c, "t").await;
    let with_ids = |p: i64, e: i16| {
        init_req("t")
            .with_producer_id(ProducerId(p))
            .with_producer_epoch(e)
    };
    let r = c.init_producer_id(with_ids(pid, epoch), 4).await;
    assert_eq!(
        (r.error_code, r.producer_id.0, r.producer_epoch),
        (0, pid, epoch + 1)
    );
    // The retry of that same request gets the same answer.
    let r = c.init_producer_id(with_ids(pid, epoch), 4).await;
    assert_eq!(
        (r.error_code, r.producer_id.0, r.producer_epoch),
        (0, pid, epoch + 1)
    );
    // Someone else bumps: the old epoch is fenced.
    init(&c, "t").await;
    let r = c.init_producer_id(with_ids(pid, epoch + 1), 4).await;
    assert_eq!(r.error_code, E::ProducerFenced.code());
    let r = c.init_producer_id(with_ids(pid, epoch + 1), 3).await;
    assert_eq!(r.error_code, E::InvalidProducerEpoch.code());
    // Another producer id is fenced too.
    let r = c.init_producer_id(with_ids(pid + 50, 0), 4).await;
    assert_eq!(r.error_code, E::ProducerFenced.code());
    // Only one of the two ids set is malformed.
    let r = c.init_producer_id(with_ids(pid, -1), 4).await;
    assert_eq!(r.error_code, E::InvalidRequest.code());
}

fn record(tid: &str, value: TxnLogValue) -> CoordinatorRecord {
    CoordinatorRecord::new(
        TxnLogKey {
            transactional_id: tid.into(),
        }
        .encode()
        .unwrap(),
        value.encode().unwrap(),
    )
}

fn value(pid: i64, epoch: i16, state: TxnState, parts: &[(&str, &[i32])]) -> TxnLogValue {
    TxnLogValue {
        producer_id: pid,
        previous_producer_id: -1,
        next_producer_id: -1,
        producer_epoch: epoch,
        transaction_timeout_ms: TIMEOUT_MS,
        state,
        partitions: parts
            .iter()
            .map(|(t, p)| (t.to_string(), p.to_vec()))
            .collect(),
        last_update_timestamp_ms: START_MS,
        start_timestamp_ms: if state == Empty { -1 } else { START_MS },
    }
}

#[tokio::test(start_paused = true)]
async fn exhausted_epoch_moves_to_a_new_producer_id() {
    let h = Harness::new();
    let c = h.loaded_coordinator(&[record("t", value(7, i16::MAX - 1, CompleteCommit, &[]))]);
    assert_eq!(init(&c, "t").await, (1000, 0));
    assert_eq!(verify(&c, 7, i16::MAX - 1, "a", 0), Err(E::InvalidTxnState));
}

#[tokio::test(start_paused = true)]
async fn load_completes_prepared_transactions() {
    let h = Harness::new();
    let first = h.coordinator();
    let (pid, epoch) = init(&first, "done").await;
    add(&first, "done", pid, epoch, &[("a", &[0])]).await;
    let mut records = replay(&h);
    records.push(record(
        "prep",
        value(55, 3, PrepareCommit, &[("b", &[1, 2])]),
    ));
    records.push(record("open", value(56, 1, Ongoing, &[("c", &[0])])));
    records.push(record("gone", value(57, 1, Empty, &[])));
    records.push(CoordinatorRecord::tombstone(
        TxnLogKey {
            transactional_id: "gone".into(),
        }
        .encode()
        .unwrap(),
    ));
    records.push(CoordinatorRecord::tombstone(bytes::Bytes::from_static(
        b"\x00",
    )));
    let bad_index = records.len() - 1;
    h.clear();
    let c = h.unloaded_coordinator(TxnConfig::default());
    // Only the undecodable record is skipped; the broker names its partition
    // and offset as it replays.
    assert_eq!(load_all(&c, &records), vec![bad_index]);
    // The prepared commit is completed in the background.
    settle().await;
    assert_eq!(
        h.events(),
        vec![
            Event::Markers {
                producer_id: 55,
                epoch: 3,
                commit: true,
                partitions: vec![tp("b", 1), tp("b", 2)],
            },
            Event::State {
                tid: "prep".into(),
                state: Some(CompleteCommit),
                producer_id: 55,
                epoch: 3,
                partitions: vec![],
            },
        ]
    );
    // Ongoing transactions are back, and time out.
    assert_eq!(verify(&c, pid, epoch, "a", 0), Ok(()));
    assert_eq!(verify(&c, 56, 1, "c", 0), Ok(()));
    assert_eq!(verify(&c, 57, 1, "c", 0), Err(E::InvalidTxnState));
    h.clear();
    h.clock.advance(i64::from(TIMEOUT_MS) + 1000);
    c.abort_timed_out().await;
    settle().await;
    assert_eq!(h.markers().len(), 2);
    let d = c
        .describe_transactions(
            DescribeTransactionsRequest::default().with_transactional_ids(vec![
                TransactionalId(s("open")),
                TransactionalId(s("gone")),
            ]),
            0,
        )
        .await;
    assert_eq!(
        d.transaction_states[0].transaction_state.as_str(),
        "CompleteAbort"
    );
    assert_eq!(d.transaction_states[0].producer_epoch, 2);
    assert_eq!(
        d.transaction_states[1].error_code,
        E::TransactionalIdNotFound.code()
    );
}

#[tokio::test(start_paused = true)]
async fn end_txn_v5_bumps_the_epoch_every_time() {
    let h = Harness::new();
    let c = h.coordinator();
    let (pid, epoch) = init(&c, "t").await;
    add(&c, "t", pid, epoch, &[("a", &[0])]).await;
    let r = c.end_txn(end_req("t", pid, epoch, true), 5).await;
    assert_eq!(
        (r.error_code, r.producer_id.0, r.producer_epoch),
        (0, pid, epoch + 1)
    );
    settle().await;
    assert_eq!(
        h.markers(),
        vec![Event::Markers {
            producer_id: pid,
            epoch: epoch + 1,
            commit: true,
            partitions: vec![tp("a", 0)],
        }]
    );
    // A retry with the old epoch gets the same answer.
    let r = c.end_txn(end_req("t", pid, epoch, true), 5).await;
    assert_eq!(
        (r.error_code, r.producer_id.0, r.producer_epoch),
        (0, pid, epoch + 1)
    );
    // The old epoch cannot start a transaction any more.
    assert_eq!(
        add(&c, "t", pid, epoch, &[("a", &[0])]).await,
        vec![E::ProducerFenced.code()]
    );
    // An abort without any partition added still bumps.
    let r = c.end_txn(end_req("t", pid, epoch + 1, false), 5).await;
    assert_eq!(
        (r.error_code, r.producer_id.0, r.producer_epoch),
        (0, pid, epoch + 2)
    );
    settle().await;
    // A commit of nothing is invalid.
    let r = c.end_txn(end_req("t", pid, epoch + 2, true), 5).await;
    assert_eq!(r.error_code, E::InvalidTxnState.code());
    assert_eq!((r.producer_id.0, r.producer_epoch), (-1, -1));
}

#[tokio::test(start_paused = true)]
async fn end_txn_v5_at_an_exhausted_epoch_continues_on_a_new_producer_id() {
    let h = Harness::new();
    let c = h.loaded_coordinator(&[record("t", value(7, i16::MAX - 1, Ongoing, &[("a", &[0])]))]);
    let r = c.end_txn(end_req("t", 7, i16::MAX - 1, true), 5).await;
    assert_eq!(
        (r.error_code, r.producer_id.0, r.producer_epoch),
        (0, 1000, 0)
    );
    settle().await;
    assert_eq!(verify(&c, 1000, 0, "a", 0), Err(E::InvalidTxnState));
    assert_eq!(add(&c, "t", 1000, 0, &[("a", &[0])]).await, vec![0]);
    // Loading the log written so far gives the same ids.
    let c2 = h.loaded_coordinator(&replay(&h));
    assert_eq!(verify(&c2, 1000, 0, "a", 0), Ok(()));
}

#[tokio::test(start_paused = true)]
async fn failed_log_write_leaves_the_state_unchanged() {
    let h = Harness::new();
    let c = h.coordinator();
    let (pid, epoch) = init(&c, "t").await;
    h.fail_appends.lock().push(WriteError::NotLeader);
    assert_eq!(
        add(&c, "t", pid, epoch, &[("a", &[0])]).await,
        vec![E::NotCoordinator.code()]
    );
    assert_eq!(verify(&c, pid, epoch, "a", 0), Err(E::InvalidTxnState));
    h.fail_appends
        .lock()
        .push(WriteError::PartitionUnavailable(tp(
            "__transaction_state",
            sluice_protocol::model::coordinator_partition_for("t", PARTITIONS),
        )));
    let r = c.init_producer_id(init_req("t"), 4).await;
    assert_eq!(r.error_code, E::CoordinatorNotAvailable.code());
    assert_eq!(init(&c, "t").await, (pid, epoch + 1));
}

#[tokio::test(start_paused = true)]
async fn failed_markers_are_retried_for_the_missing_partitions() {
    let h = Harness::new();
    let c = h.coordinator();
    let (pid, epoch) = init(&c, "t").await;
    add(&c, "t", pid, epoch, &[("a", &[0, 1])]).await;
    h.fail_markers
        .lock()
        .push(MarkerError::Unavailable(WriteError::ShuttingDown));
    h.fail_markers.lock().push(MarkerError::Partial {
        partitions: vec![tp("a", 1)],
        cause: WriteError::NotLeader,
    });
    h.clear();
    assert_eq!(end(&c, "t", pid, epoch, true).await, 0);
    // Not complete before every marker is written.
    assert_eq!(h.states(), vec![Some(PrepareCommit)]);
    settle().await;
    assert_eq!(
        h.markers(),
        vec![Event::Markers {
            producer_id: pid,
            epoch,
            commit: true,
            partitions: vec![tp("a", 1)],
        }]
    );
    assert_eq!(h.states(), vec![Some(PrepareCommit), Some(CompleteCommit)]);
}

#[tokio::test(start_paused = true)]
async fn idle_ids_expire() {
    let h = Harness::new();
    let c = h.coordinator_with(TxnConfig {
        transactional_id_expiration_ms: 1000,
        ..TxnConfig::default()
    });
    let (pid, epoch) = init(&c, "t").await;
    init(&c, "busy").await;
    let (bp, be) = init(&c, "busy").await;
    add(&c, "busy", bp, be, &[("a", &[0])]).await;
    h.clear();
    h.clock.advance(10_000);
    c.abort_timed_out().await;
    assert_eq!(h.states(), vec![None]);
    assert_eq!(
        add(&c, "t", pid, epoch, &[("a", &[0])]).await,
        vec![E::InvalidProducerIdMapping.code()]
    );
    assert_eq!(verify(&c, bp, be, "a", 0), Ok(()));
    let c2 = h.loaded_coordinator(&replay(&h));
    let d = c2
        .describe_transactions(
            DescribeTransactionsRequest::default()
                .with_transactional_ids(vec![TransactionalId(s("t"))]),
            0,
        )
        .await;
    assert_eq!(
        d.transaction_states[0].error_code,
        E::TransactionalIdNotFound.code()
    );
}

#[tokio::test(start_paused = true)]
async fn describe_and_list() {
    let h = Harness::new();
    let c = h.coordinator();
    let (p1, e1) = init(&c, "app-1").await;
    let (p2, _) = init(&c, "app-2").await;
    init(&c, "other").await;
    add(&c, "app-1", p1, e1, &[("b", &[1]), ("a", &[2, 0])]).await;
    let d = c
        .describe_transactions(
            DescribeTransactionsRequest::default()
                .with_transactional_ids(vec![TransactionalId(s("app-1"))]),
            0,
        )
        .await;
    let st = &d.transaction_states[0];
    assert_eq!(st.error_code, 0);
    assert_eq!(st.transaction_state.as_str(), "Ongoing");
    assert_eq!((st.producer_id.0, st.producer_epoch), (p1, e1));
    assert_eq!(st.transaction_timeout_ms, TIMEOUT_MS);
    assert_eq!(st.transaction_start_time_ms, START_MS);
    let topics: Vec<(String, Vec<i32>)> = st
        .topics
        .iter()
        .map(|t| (t.topic.0.to_string(), t.partitions.clone()))
        .collect();
    assert_eq!(
        topics,
        vec![("a".into(), vec![0, 2]), ("b".into(), vec![1])]
    );

    let ids = |r: &kafka_protocol::messages::ListTransactionsResponse| -> Vec<String> {
        r.transaction_states
            .iter()
            .map(|t| t.transactional_id.0.to_string())
            .collect()
    };
    let all = c
        .list_transactions(ListTransactionsRequest::default(), 0)
        .await;
    assert_eq!(ids(&all), vec!["app-1", "app-2", "other"]);
    let ongoing = c
        .list_transactions(
            ListTransactionsRequest::default().with_state_filters(vec![s("Ongoing"), s("Bogus")]),
            0,
        )
        .await;
    assert_eq!(ids(&ongoing), vec!["app-1"]);
    assert_eq!(ongoing.unknown_state_filters, vec![s("Bogus")]);
    let by_pid = c
        .list_transactions(
            ListTransactionsRequest::default().with_producer_id_filters(vec![ProducerId(p2)]),
            0,
        )
        .await;
    assert_eq!(ids(&by_pid), vec!["app-2"]);
    let long = c
        .list_transactions(
            ListTransactionsRequest::default().with_duration_filter(3_600_000),
            1,
        )
        .await;
    assert_eq!(ids(&long), vec!["app-2", "other"], "idle ids never started");
    let pattern = c
        .list_transactions(
            ListTransactionsRequest::default().with_transactional_id_pattern(Some(s("app-\\d+"))),
            2,
        )
        .await;
    assert_eq!(ids(&pattern), vec!["app-1", "app-2"]);
    let bad = c
        .list_transactions(
            ListTransactionsRequest::default().with_transactional_id_pattern(Some(s("app-("))),
            2,
        )
        .await;
    assert_eq!(bad.error_code, E::InvalidRegularExpression.code());
}

//! Transactions in one partition: last stable offset and aborted transactions,
//! live and after a reopen.

use sluice_protocol::batch::{RecordBatchBuilder, transaction_marker};
use sluice_storage::{PartitionLog, StorageEnv};

use crate::common::small_config;

fn txn_batch(producer_id: i64, seq: i32, records: usize) -> Vec<u8> {
    let mut b = RecordBatchBuilder::new()
        .producer(producer_id, 0, seq)
        .transactional(true);
    for _ in 0..records {
        b.push(5, None, Some(b"t"), &[]);
    }
    b.build()
}

#[test]
fn last_stable_offset_and_aborted_transactions() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut log = PartitionLog::open(
            dir.path(),
            small_config(),
            false,
            0,
            &StorageEnv::unbounded(),
        )
        .unwrap();
        log.append(&txn_batch(1, 0, 2), 0, None, 0).unwrap(); // 0..=1, producer 1
        log.append(
            &RecordBatchBuilder::new()
                .record(5, None, Some(b"plain"), &[])
                .build(),
            0,
            None,
            0,
        )
        .unwrap(); // 2
        log.append(&txn_batch(2, 0, 1), 0, None, 0).unwrap(); // 3, producer 2
        assert_eq!(log.last_stable_offset(), 0);
        log.append(&transaction_marker(1, 0, false, 0, 5), 0, None, 0)
            .unwrap(); // 4 abort 1
        assert_eq!(log.last_stable_offset(), 3);
        assert_eq!(log.aborted_transactions(0, 10), vec![(1, 0)]);
        log.append(&transaction_marker(2, 0, true, 0, 5), 0, None, 0)
            .unwrap(); // 5 commit 2
        assert_eq!(log.last_stable_offset(), 6);
        assert_eq!(log.aborted_transactions(2, 10), vec![(1, 0)]);
        assert_eq!(log.aborted_transactions(5, 10), Vec::<(i64, i64)>::new());
        log.append(&txn_batch(1, 2, 1), 0, None, 0).unwrap(); // 6, producer 1 again (open)
    }
    let log = PartitionLog::open(
        dir.path(),
        small_config(),
        true,
        0,
        &StorageEnv::unbounded(),
    )
    .unwrap();
    assert_eq!(log.last_stable_offset(), 6);
    assert_eq!(log.aborted_transactions(0, 10), vec![(1, 0)]);
}

#[test]
fn a_stale_epoch_marker_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(
        dir.path(),
        small_config(),
        false,
        0,
        &StorageEnv::unbounded(),
    )
    .unwrap();
    let mut b = RecordBatchBuilder::new()
        .producer(3, 5, 0)
        .transactional(true);
    b.push(5, None, Some(b"x"), &[]);
    log.append(&b.build(), 0, None, 0).unwrap();
    assert!(
        log.append(&transaction_marker(3, 4, true, 0, 5), 0, None, 0)
            .is_err()
    );
    assert_eq!(log.last_stable_offset(), 0);
}

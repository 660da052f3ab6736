//! Idempotent producers: duplicates, gaps and fencing, across a reopen.

use sluice_protocol::batch::RecordBatchBuilder;
use sluice_storage::producer_state::ProducerError;
use sluice_storage::{PartitionLog, StorageEnv, StorageError};

use crate::common::small_config;

fn idempotent_batch(producer_id: i64, epoch: i16, seq: i32, records: usize) -> Vec<u8> {
    let mut b = RecordBatchBuilder::new().producer(producer_id, epoch, seq);
    for i in 0..records {
        b.push(
            1_000 + i as i64,
            None,
            Some(format!("v{seq}-{i}").as_bytes()),
            &[],
        );
    }
    b.build()
}

#[test]
fn retries_are_answered_with_the_original_offsets_and_not_written_twice() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(
        dir.path(),
        small_config(),
        false,
        0,
        &StorageEnv::unbounded(),
    )
    .unwrap();
    log.append(
        &RecordBatchBuilder::new()
            .record(1, None, Some(b"plain"), &[])
            .build(),
        0,
        None,
        0,
    )
    .unwrap();
    let first = log
        .append(&idempotent_batch(7, 0, 0, 3), 0, None, 0)
        .unwrap();
    assert_eq!(
        (first.base_offset, first.last_offset, first.duplicate),
        (1, 3, false)
    );
    let second = log
        .append(&idempotent_batch(7, 0, 3, 2), 0, None, 0)
        .unwrap();
    assert_eq!((second.base_offset, second.last_offset), (4, 5));

    let retry = log
        .append(&idempotent_batch(7, 0, 0, 3), 0, None, 0)
        .unwrap();
    assert_eq!(
        (retry.base_offset, retry.last_offset, retry.duplicate),
        (1, 3, true)
    );
    assert_eq!(log.log_end_offset(), 6);

    let gap = log
        .append(&idempotent_batch(7, 0, 9, 1), 0, None, 0)
        .unwrap_err();
    assert!(
        matches!(
            gap,
            StorageError::Producer(ProducerError::OutOfOrder { expected: 5, .. })
        ),
        "{gap:?}"
    );
    assert_eq!(log.log_end_offset(), 6);
}

#[test]
fn producer_state_is_rebuilt_from_the_log_on_open() {
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
        log.append(&idempotent_batch(9, 2, 0, 2), 0, None, 0)
            .unwrap();
        log.append(&idempotent_batch(9, 2, 2, 2), 0, None, 0)
            .unwrap();
        // No close: as after kill -9.
    }
    let mut log = PartitionLog::open(
        dir.path(),
        small_config(),
        true,
        0,
        &StorageEnv::unbounded(),
    )
    .unwrap();
    let retry = log
        .append(&idempotent_batch(9, 2, 2, 2), 0, None, 0)
        .unwrap();
    assert_eq!((retry.base_offset, retry.duplicate), (2, true));
    let stale = log
        .append(&idempotent_batch(9, 1, 4, 1), 0, None, 0)
        .unwrap_err();
    assert!(matches!(
        stale,
        StorageError::Producer(ProducerError::InvalidEpoch { current: 2, .. })
    ));
    let next = log
        .append(&idempotent_batch(9, 2, 4, 1), 0, None, 0)
        .unwrap();
    assert_eq!((next.base_offset, next.duplicate), (4, false));
}

//! Retention by time and size, DeleteRecords.

use sluice_storage::{LogConfig, PartitionLog, StorageEnv, StorageError};

use crate::common::*;

/// A log whose segments hold two batches each; batch `i` has timestamps `1000 * i + j`.
fn log_with_segments(dir: &std::path::Path, batches: i64) -> (PartitionLog, u64) {
    let probe = batch(2, 0, 30).len() as u64;
    let config = LogConfig {
        segment_bytes: probe * 2,
        ..small_config()
    };
    let mut log = PartitionLog::open(dir, config, false, 0, &StorageEnv::unbounded()).unwrap();
    for i in 0..batches {
        log.append(&batch(2, 1_000 * i, 30), 0, None, 0).unwrap();
    }
    (log, probe)
}

#[test]
fn retention_by_time_deletes_old_sealed_segments() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = log_with_segments(dir.path(), 10);
    assert_eq!(log.segment_count(), 5);
    // Segment k holds batches 2k and 2k+1; its newest record is 1000*(2k+1)+1.
    log.set_config(LogConfig {
        retention_ms: Some(5_000),
        ..log.config().clone()
    });
    assert_eq!(log.apply_retention(4_000).unwrap(), 0);
    // At now = 9_002: segment 0 (max 1001), 1 (max 3001) are older than 5000 ms.
    assert_eq!(log.apply_retention(9_002).unwrap(), 2);
    assert_eq!(log.log_start_offset(), 8);
    // Nothing was synced, but what lies below the log start no longer needs to be.
    assert_eq!(log.recovery_point(), 8);
    assert_eq!(log.segment_count(), 3);
    assert!(matches!(
        log.read(7, 100, i64::MAX),
        Err(StorageError::OffsetOutOfRange {
            log_start_offset: 8,
            ..
        })
    ));
    assert_eq!(all_records(&log, 1 << 20).first(), Some(&(8, 4_000)));
    // Far in the future every segment goes, the active one included (after a roll).
    assert_eq!(log.apply_retention(1 << 40).unwrap(), 3);
    assert_eq!(log.segment_count(), 1);
    assert_eq!(log.log_start_offset(), 20);
    assert_eq!(log.log_end_offset(), 20);
    assert_eq!(log_files(dir.path()).len(), 1);
    // Survives a restart.
    log.close().unwrap();
    let log = PartitionLog::open(
        dir.path(),
        small_config(),
        true,
        0,
        &StorageEnv::unbounded(),
    )
    .unwrap();
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (20, 20));
}

/// Kafka rolls and deletes an active segment that breaches retention: a partition that
/// receives no more writes does not keep its data forever.
#[test]
fn retention_deletes_an_expired_active_segment_after_rolling() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        retention_ms: Some(1_000),
        ..small_config()
    };
    let mut log = PartitionLog::open(
        dir.path(),
        config.clone(),
        false,
        0,
        &StorageEnv::unbounded(),
    )
    .unwrap();
    assert_eq!(log.apply_retention(1 << 40).unwrap(), 0, "an empty log");
    // Records at 10_000 and 10_001.
    log.append(&batch(2, 10_000, 30), 0, None, 10_000).unwrap();
    assert_eq!(
        log.apply_retention(11_001).unwrap(),
        0,
        "1000 ms old, not older"
    );
    assert_eq!(log.log_start_offset(), 0);
    assert_eq!(log.apply_retention(11_002).unwrap(), 1);
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (2, 2));
    assert_eq!(log.segment_count(), 1);
    assert_eq!(
        log_files(dir.path()),
        vec![dir.path().join("00000000000000000002.log")]
    );
    assert!(matches!(
        log.read(0, 100, i64::MAX),
        Err(StorageError::OffsetOutOfRange {
            offset: 0,
            log_start_offset: 2,
            log_end_offset: 2
        })
    ));
    assert!(log.read(2, 100, i64::MAX).unwrap().is_empty());
    assert_eq!(log.offset_for_timestamp(0).unwrap(), None);
    assert_eq!(log.max_timestamp(), None);
    // The new active segment is empty and stays.
    assert_eq!(log.apply_retention(1 << 40).unwrap(), 0);
    assert_eq!(log.segment_count(), 1);
    // Appends continue at the log end offset, and a restart keeps the log start offset.
    let next = log.append(&batch(1, 20_000, 1), 0, None, 20_000).unwrap();
    assert_eq!(next.base_offset, 2);
    log.close().unwrap();
    let log =
        PartitionLog::open(dir.path(), config, false, 20_000, &StorageEnv::unbounded()).unwrap();
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (2, 3));
}

#[test]
fn retention_by_bytes_deletes_the_active_segment_too() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        retention_bytes: Some(0),
        ..small_config()
    };
    let mut log =
        PartitionLog::open(dir.path(), config, false, 0, &StorageEnv::unbounded()).unwrap();
    log.append(&batch(2, 0, 30), 0, None, 0).unwrap();
    assert_eq!(log.apply_retention(0).unwrap(), 1);
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (2, 2));
    assert_eq!(
        log.apply_retention(0).unwrap(),
        0,
        "the empty active segment stays"
    );
}

/// Records without timestamps (-1) age from the segment's last write, as Kafka ages them
/// from the file's modification time: a segment still being written is not deleted.
#[test]
fn segments_without_timestamps_age_from_their_last_write() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        retention_ms: Some(1_000),
        ..small_config()
    };
    let mut log =
        PartitionLog::open(dir.path(), config, false, 0, &StorageEnv::unbounded()).unwrap();
    log.append(&batch_with_timestamps(&[-1, -1]), 0, None, 5_000)
        .unwrap();
    assert_eq!(log.apply_retention(6_000).unwrap(), 0);
    assert_eq!(log.apply_retention(6_001).unwrap(), 1);
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (2, 2));
}

#[test]
fn retention_by_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, batch_len) = log_with_segments(dir.path(), 10);
    let segment = batch_len * 2;
    assert_eq!(log.size_bytes(), segment * 5);
    // Room for 3.5 segments: the two oldest go (deleting a third would undershoot).
    log.set_config(LogConfig {
        retention_bytes: Some(segment * 3 + segment / 2),
        ..log.config().clone()
    });
    assert_eq!(log.apply_retention(0).unwrap(), 1);
    assert_eq!(log.size_bytes(), segment * 4);
    log.set_config(LogConfig {
        retention_bytes: Some(segment * 2),
        ..log.config().clone()
    });
    assert_eq!(log.apply_retention(0).unwrap(), 2);
    assert_eq!(log.size_bytes(), segment * 2);
    assert_eq!(log.log_start_offset(), 12);
    assert_eq!(log.apply_retention(0).unwrap(), 0);
    log.set_config(LogConfig {
        retention_bytes: Some(0),
        ..log.config().clone()
    });
    assert_eq!(
        log.apply_retention(0).unwrap(),
        2,
        "the active segment goes too"
    );
    assert_eq!(log.segment_count(), 1, "a new empty active segment");
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (20, 20));
}

#[test]
fn delete_records_before() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = log_with_segments(dir.path(), 10);
    // Segments start at 0, 4, 8, 12, 16.
    assert_eq!(log.delete_records_before(6).unwrap(), 6);
    assert_eq!(log.log_start_offset(), 6);
    assert_eq!(log.segment_count(), 4, "segment [0,4) deleted, [4,8) kept");
    assert!(matches!(
        log.read(5, 100, i64::MAX),
        Err(StorageError::OffsetOutOfRange { .. })
    ));
    // Reading at the log start in the middle of a batch returns that batch.
    assert_eq!(
        batch_offsets(&log.read(6, 1, i64::MAX).unwrap()),
        vec![(6, 7)]
    );
    assert_eq!(log.offset_for_timestamp(0).unwrap(), Some((6, 3_000)));
    // Going backwards is a no-op.
    assert_eq!(log.delete_records_before(2).unwrap(), 6);
    // Beyond the log end is an error.
    assert!(matches!(
        log.delete_records_before(21),
        Err(StorageError::OffsetOutOfRange { .. })
    ));
    // Persisted.
    drop(log);
    let mut log = PartitionLog::open(
        dir.path(),
        small_config(),
        true,
        0,
        &StorageEnv::unbounded(),
    )
    .unwrap();
    assert_eq!(log.log_start_offset(), 6);
    // Up to the log end: every sealed segment goes, the active one stays.
    assert_eq!(log.delete_records_before(20).unwrap(), 20);
    assert_eq!(log.segment_count(), 1);
    assert!(log.read(20, 100, i64::MAX).unwrap().is_empty());
    assert_eq!(
        log.append(&batch(1, 0, 1), 0, None, 0).unwrap().base_offset,
        20
    );
}

#[test]
fn log_start_beyond_lost_data_starts_afresh() {
    // DeleteRecords up to offset 20 was persisted, then the segment holding 16..20 was
    // lost (torn) in a crash: the log restarts empty at 20 instead of reusing offsets.
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = log_with_segments(dir.path(), 10);
    log.delete_records_before(20).unwrap();
    drop(log);
    let active = log_files(dir.path()).pop().unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&active)
        .unwrap()
        .set_len(10)
        .unwrap();
    let mut log = PartitionLog::open(
        dir.path(),
        small_config(),
        true,
        0,
        &StorageEnv::unbounded(),
    )
    .unwrap();
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (20, 20));
    assert_eq!(
        log.append(&batch(1, 0, 1), 0, None, 0).unwrap().base_offset,
        20
    );
}

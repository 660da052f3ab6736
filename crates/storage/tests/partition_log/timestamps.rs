//! ListOffsets by timestamp and MAX_TIMESTAMP.

use sluice_protocol::batch::{Compression, RecordBatchBuilder};
use sluice_storage::{LogConfig, PartitionLog, StorageEnv};

use crate::common::*;

#[test]
fn offset_for_timestamp_finds_the_exact_record() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(
        dir.path(),
        LogConfig::default(),
        false,
        0,
        &StorageEnv::unbounded(),
    )
    .unwrap();
    log.append(&batch_with_timestamps(&[100, 200, 150]), 0, None, 0)
        .unwrap();
    log.append(&batch_with_timestamps(&[120, 300]), 0, None, 0)
        .unwrap();
    log.append(&batch_with_timestamps(&[250, 260]), 0, None, 0)
        .unwrap();
    let q = |ts| log.offset_for_timestamp(ts).unwrap();
    assert_eq!(q(i64::MIN), Some((0, 100)));
    assert_eq!(q(100), Some((0, 100)));
    assert_eq!(q(101), Some((1, 200)));
    assert_eq!(q(200), Some((1, 200)));
    assert_eq!(q(201), Some((4, 300)));
    assert_eq!(q(300), Some((4, 300)));
    assert_eq!(q(301), None);
}

#[test]
fn offset_for_timestamp_in_compressed_batches() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(
        dir.path(),
        LogConfig::default(),
        false,
        0,
        &StorageEnv::unbounded(),
    )
    .unwrap();
    for (i, codec) in [
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ]
    .into_iter()
    .enumerate()
    {
        let base = i as i64 * 100;
        let b = RecordBatchBuilder::new()
            .record(base, None, Some(b"a"), &[])
            .record(base + 50, None, Some(b"b"), &[])
            .record(base + 10, None, Some(b"c"), &[])
            .build_compressed(codec)
            .unwrap();
        log.append(&b, 0, None, 0).unwrap();
    }
    assert_eq!(log.offset_for_timestamp(220).unwrap(), Some((7, 250)));
    assert_eq!(log.offset_for_timestamp(305).unwrap(), Some((10, 350)));
    assert_eq!(log.max_timestamp(), Some((350, 10)));
}

#[test]
fn offset_for_timestamp_across_segments_uses_the_time_index() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        segment_bytes: 2_000,
        index_interval_bytes: 50,
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
    // Timestamps go up by 10 per record, with a dip in each batch.
    let mut expected = Vec::new();
    let mut offset = 0;
    for i in 0..100i64 {
        let ts = [i * 30, i * 30 + 20, i * 30 + 5];
        log.append(&batch_with_timestamps(&ts), 0, None, 0).unwrap();
        for t in ts {
            expected.push((offset, t));
            offset += 1;
        }
    }
    assert!(log.segment_count() > 3);
    let brute = |target: i64| {
        expected
            .iter()
            .find(|(_, t)| *t >= target)
            .map(|&(o, t)| (o, t))
    };
    let check = |log: &PartitionLog| {
        for target in (-5..3_020).step_by(7) {
            assert_eq!(
                log.offset_for_timestamp(target).unwrap(),
                brute(target),
                "ts {target}"
            );
        }
    };
    check(&log);
    log.close().unwrap();
    let log = PartitionLog::open(dir.path(), config, false, 0, &StorageEnv::unbounded()).unwrap();
    check(&log);
}

#[test]
fn max_timestamp_is_the_exact_record() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        segment_bytes: 300,
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
    assert_eq!(log.max_timestamp(), None);
    log.append(&batch_with_timestamps(&[100, 500, 200]), 0, None, 0)
        .unwrap();
    assert_eq!(log.max_timestamp(), Some((500, 1)));
    log.append(&batch_with_timestamps(&[400, 450]), 0, None, 0)
        .unwrap();
    log.append(&batch_with_timestamps(&[10, 20]), 0, None, 0)
        .unwrap();
    assert_eq!(log.max_timestamp(), Some((500, 1)));
    // A tie does not move it: the first record with the largest timestamp wins.
    log.append(&batch_with_timestamps(&[500, 1]), 0, None, 0)
        .unwrap();
    assert_eq!(log.max_timestamp(), Some((500, 1)));
    log.append(&batch_with_timestamps(&[7, 700, 700]), 0, None, 0)
        .unwrap();
    assert_eq!(log.max_timestamp(), Some((700, 10)));
    assert!(log.segment_count() > 1);
    log.close().unwrap();
    let log = PartitionLog::open(dir.path(), config, false, 0, &StorageEnv::unbounded()).unwrap();
    assert_eq!(log.max_timestamp(), Some((700, 10)));
}

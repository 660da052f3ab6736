//! Append, read, roll, index lookups, reopen.

use sluice_protocol::batch::{TimestampType, validate};
use sluice_protocol::records::decode_records;
use sluice_storage::{LogConfig, OpenFiles, PartitionLog, StorageEnv, StorageError};

use crate::common::*;

#[test]
fn append_and_read_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(
        dir.path(),
        LogConfig::default(),
        false,
        0,
        &StorageEnv::unbounded(),
    )
    .unwrap();
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (0, 0));
    assert_eq!(log.segment_count(), 1);

    let mut stored = Vec::new();
    for (i, count) in [3usize, 1, 5].into_iter().enumerate() {
        let b = batch(count, 1_000 + i as i64 * 10, 20);
        let info = log.append(&b, 7, None, 0).unwrap();
        let expected_base = stored
            .iter()
            .map(|(_, c): &(Vec<u8>, usize)| *c as i64)
            .sum::<i64>();
        assert_eq!(info.base_offset, expected_base);
        assert_eq!(info.last_offset, expected_base + count as i64 - 1);
        assert_eq!(info.max_timestamp, 1_000 + i as i64 * 10 + count as i64 - 1);
        assert_eq!(info.offset_of_max_timestamp, info.last_offset);
        assert_eq!(info.log_append_time, None);
        assert_eq!(info.log_start_offset, 0);
        // The caller's bytes are not touched; the log stores them stamped, CRC still right.
        assert_eq!(validate(&b).unwrap().base_offset, 0);
        let b = stamped(&b, info.base_offset, 7);
        let h = validate(&b).unwrap();
        assert_eq!(h.base_offset, info.base_offset);
        assert_eq!(h.partition_leader_epoch, 7);
        stored.push((b, count));
    }
    assert_eq!(log.log_end_offset(), 9);
    let all: Vec<u8> = stored.iter().flat_map(|(b, _)| b.clone()).collect();
    assert_eq!(log.size_bytes(), all.len() as u64);
    let data = log.read(0, 1 << 20, i64::MAX).unwrap();
    assert_eq!(
        &data[..],
        &all[..],
        "fetch returns the stored bytes unchanged"
    );
    assert_eq!(batch_offsets(&data), vec![(0, 2), (3, 3), (4, 8)]);
    let records = all_records(&log, 1 << 20);
    assert_eq!(
        records.iter().map(|r| r.0).collect::<Vec<_>>(),
        (0..9).collect::<Vec<_>>()
    );
}

#[test]
fn several_batches_in_one_append_get_consecutive_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(
        dir.path(),
        LogConfig::default(),
        false,
        0,
        &StorageEnv::unbounded(),
    )
    .unwrap();
    log.append(&batch(2, 0, 5), 0, None, 0).unwrap();
    let batches = [
        (batch(3, 10, 5), 2),
        (batch(1, 50, 5), 5),
        (batch(4, 20, 5), 6),
    ];
    let buf: Vec<u8> = batches.iter().flat_map(|(b, _)| b.clone()).collect();
    let info = log.append(&buf, 3, None, 0).unwrap();
    assert_eq!((info.base_offset, info.last_offset), (2, 9));
    assert_eq!(info.max_timestamp, 50);
    assert_eq!(info.offset_of_max_timestamp, 5);
    let data = log.read(2, 1 << 20, i64::MAX).unwrap();
    let expected: Vec<u8> = batches
        .iter()
        .flat_map(|(b, base)| stamped(b, *base, 3))
        .collect();
    assert_eq!(&data[..], &expected[..]);
    assert_eq!(batch_offsets(&data), vec![(2, 4), (5, 5), (6, 9)]);
}

#[test]
fn invalid_appends_are_rejected_without_writing() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(
        dir.path(),
        LogConfig::default(),
        false,
        0,
        &StorageEnv::unbounded(),
    )
    .unwrap();
    assert!(matches!(
        log.append(&[], 0, None, 0),
        Err(StorageError::InvalidBatch(_))
    ));
    let mut b = batch(2, 0, 5);
    b.truncate(b.len() - 3);
    assert!(matches!(
        log.append(&b, 0, None, 0),
        Err(StorageError::InvalidBatch(_))
    ));
    let mut b = batch(2, 0, 5);
    b[16] = 1; // legacy magic
    assert!(matches!(
        log.append(&b, 0, None, 0),
        Err(StorageError::InvalidBatch(_))
    ));
    assert_eq!(log.log_end_offset(), 0);
    assert_eq!(log.size_bytes(), 0);
}

#[test]
fn log_append_time_is_stamped() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(
        dir.path(),
        LogConfig::default(),
        false,
        0,
        &StorageEnv::unbounded(),
    )
    .unwrap();
    let b = batch(3, 5, 5);
    let info = log.append(&b, 0, Some(99_999), 0).unwrap();
    assert_eq!(info.log_append_time, Some(99_999));
    assert_eq!(info.max_timestamp, 99_999);
    let data = log.read(0, 1 << 20, i64::MAX).unwrap();
    let h = validate(&data).unwrap();
    assert_eq!(h.timestamp_type(), TimestampType::LogAppendTime);
    assert_eq!(h.max_timestamp, 99_999);
    let recs: Vec<_> = decode_records(&data, 1 << 20)
        .unwrap()
        .map(|r| r.unwrap())
        .collect();
    assert!(recs.iter().all(|r| r.timestamp == 99_999));
    assert_eq!(log.max_timestamp(), Some((99_999, 0)));
}

#[test]
fn kip74_first_batch_always_whole() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(
        dir.path(),
        LogConfig::default(),
        false,
        0,
        &StorageEnv::unbounded(),
    )
    .unwrap();
    let big = batch(4, 0, 3_000);
    let small = batch(1, 0, 10);
    log.append(&big, 0, None, 0).unwrap();
    log.append(&small, 0, None, 0).unwrap();
    let data = log.read(0, 100, i64::MAX).unwrap();
    assert_eq!(
        &data[..],
        &stamped(&big, 0, 0)[..],
        "one whole batch even though larger than max_bytes"
    );
    let data = log.read(0, big.len() + small.len() - 1, i64::MAX).unwrap();
    assert_eq!(
        batch_offsets(&data),
        vec![(0, 3)],
        "second batch does not fit"
    );
    let data = log.read(0, big.len() + small.len(), i64::MAX).unwrap();
    assert_eq!(batch_offsets(&data), vec![(0, 3), (4, 4)]);
    let data = log.read(0, 0, i64::MAX).unwrap();
    assert_eq!(batch_offsets(&data), vec![(0, 3)]);
}

#[test]
fn read_from_middle_of_batch_returns_that_batch() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(
        dir.path(),
        LogConfig::default(),
        false,
        0,
        &StorageEnv::unbounded(),
    )
    .unwrap();
    log.append(&batch(5, 0, 5), 0, None, 0).unwrap();
    log.append(&batch(5, 0, 5), 0, None, 0).unwrap();
    for offset in 0..5 {
        assert_eq!(
            batch_offsets(&log.read(offset, 1 << 20, i64::MAX).unwrap())[0],
            (0, 4)
        );
    }
    for offset in 5..10 {
        assert_eq!(
            batch_offsets(&log.read(offset, 1 << 20, i64::MAX).unwrap()),
            vec![(5, 9)]
        );
    }
}

#[test]
fn max_offset_bounds_the_read() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(
        dir.path(),
        LogConfig::default(),
        false,
        0,
        &StorageEnv::unbounded(),
    )
    .unwrap();
    for _ in 0..3 {
        log.append(&batch(2, 0, 5), 0, None, 0).unwrap();
    }
    let read = |from, max_offset| batch_offsets(&log.read(from, 1 << 20, max_offset).unwrap());
    assert_eq!(read(0, 6), vec![(0, 1), (2, 3), (4, 5)]);
    assert_eq!(read(0, 4), vec![(0, 1), (2, 3)]);
    assert_eq!(
        read(0, 3),
        vec![(0, 1)],
        "a batch straddling the high watermark is held back"
    );
    assert_eq!(read(0, 1), vec![]);
    assert_eq!(read(4, 4), vec![], "at the high watermark: nothing yet");
    assert_eq!(read(2, 0), vec![]);
}

#[test]
fn out_of_range_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(
        dir.path(),
        LogConfig::default(),
        false,
        0,
        &StorageEnv::unbounded(),
    )
    .unwrap();
    log.append(&batch(3, 0, 5), 0, None, 0).unwrap();
    assert!(
        log.read(3, 100, i64::MAX).unwrap().is_empty(),
        "log end: empty, not an error"
    );
    for bad in [-1, 4, i64::MAX] {
        match log.read(bad, 100, i64::MAX) {
            Err(StorageError::OffsetOutOfRange {
                offset,
                log_start_offset,
                log_end_offset,
            }) => {
                assert_eq!((offset, log_start_offset, log_end_offset), (bad, 0, 3));
            }
            other => panic!("{bad}: {other:?}"),
        }
    }
}

#[test]
fn rolls_by_size() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        segment_bytes: 1_000,
        ..small_config()
    };
    let mut log =
        PartitionLog::open(dir.path(), config, false, 0, &StorageEnv::unbounded()).unwrap();
    let mut sizes = Vec::new();
    for i in 0..20 {
        let b = batch(2, i, 100);
        sizes.push(b.len());
        log.append(&b, 0, None, 0).unwrap();
    }
    let per_segment = 1_000 / sizes[0];
    assert_eq!(log.segment_count(), 20usize.div_ceil(per_segment));
    for f in log_files(dir.path()) {
        assert!(std::fs::metadata(&f).unwrap().len() <= 1_000, "{f:?}");
    }
    // A batch larger than segment.bytes still goes into a fresh segment.
    let huge = batch(1, 0, 3_000);
    let info = log.append(&huge, 0, None, 0).unwrap();
    assert_eq!(info.base_offset, 40);
    let names: Vec<String> = log_files(dir.path())
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert!(
        names.contains(&"00000000000000000040.log".to_owned()),
        "{names:?}"
    );
    assert_eq!(all_records(&log, 300).len(), 41);
    for offset in 0..41 {
        let data = log.read(offset, 1, i64::MAX).unwrap();
        let (base, last) = batch_offsets(&data)[0];
        assert!(base <= offset && offset <= last);
    }
}

#[test]
fn rolls_by_time() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        segment_ms: Some(100),
        ..LogConfig::default()
    };
    let mut log =
        PartitionLog::open(dir.path(), config, false, 1_000, &StorageEnv::unbounded()).unwrap();
    log.append(&batch(1, 1_000, 5), 0, None, 1_000).unwrap();
    log.append(&batch(1, 1_050, 5), 0, None, 1_050).unwrap();
    assert_eq!(log.segment_count(), 1);
    log.append(&batch(1, 1_101, 5), 0, None, 1_101).unwrap();
    assert_eq!(log.segment_count(), 2);
    log.append(&batch(1, 1_150, 5), 0, None, 1_150).unwrap();
    assert_eq!(log.segment_count(), 2);
    // An empty active segment is never rolled, however old.
    let dir2 = tempfile::tempdir().unwrap();
    let config = LogConfig {
        segment_ms: Some(100),
        ..LogConfig::default()
    };
    let mut log =
        PartitionLog::open(dir2.path(), config, false, 0, &StorageEnv::unbounded()).unwrap();
    log.append(&batch(1, 0, 5), 0, None, 10_000).unwrap();
    assert_eq!(log.segment_count(), 1);
}

#[test]
fn index_lookup_after_many_batches() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        index_interval_bytes: 100,
        segment_bytes: 1 << 20,
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
    let mut bounds = Vec::new();
    for i in 0..400 {
        let n = 1 + (i % 4);
        let info = log.append(&batch(n, i as i64, 7), 0, None, 0).unwrap();
        bounds.push((info.base_offset, info.last_offset));
    }
    let check = |log: &PartitionLog| {
        for &(base, last) in &bounds {
            for offset in [base, last] {
                let data = log.read(offset, 1, i64::MAX).unwrap();
                assert_eq!(batch_offsets(&data), vec![(base, last)], "offset {offset}");
            }
        }
    };
    check(&log);
    log.close().unwrap();
    let log = PartitionLog::open(dir.path(), config, false, 0, &StorageEnv::unbounded()).unwrap();
    check(&log);
}

#[test]
fn reopen_after_close_keeps_everything() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        segment_bytes: 2_000,
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
    for i in 0..50 {
        log.append(&batch(3, 1_000 + i * 3, 40), 0, None, 0)
            .unwrap();
    }
    log.delete_records_before(7).unwrap();
    let before = (
        log.log_start_offset(),
        log.log_end_offset(),
        log.size_bytes(),
        log.segment_count(),
        log.max_timestamp(),
        all_records(&log, 1000),
        log.read(50, 500, i64::MAX).unwrap(),
        log.offset_for_timestamp(1_100).unwrap(),
    );
    assert!(before.3 > 3);
    log.close().unwrap();
    drop(log);
    for recover in [false, true] {
        let log = PartitionLog::open(
            dir.path(),
            config.clone(),
            recover,
            0,
            &StorageEnv::unbounded(),
        )
        .unwrap();
        let after = (
            log.log_start_offset(),
            log.log_end_offset(),
            log.size_bytes(),
            log.segment_count(),
            log.max_timestamp(),
            all_records(&log, 1000),
            log.read(50, 500, i64::MAX).unwrap(),
            log.offset_for_timestamp(1_100).unwrap(),
        );
        assert_eq!(before, after, "recover={recover}");
    }
    let mut log =
        PartitionLog::open(dir.path(), config, false, 0, &StorageEnv::unbounded()).unwrap();
    let info = log.append(&batch(1, 0, 1), 0, None, 0).unwrap();
    assert_eq!(info.base_offset, 150);
}

#[test]
fn flush_handle_and_recovery_point() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        segment_bytes: 500,
        ..small_config()
    };
    let mut log =
        PartitionLog::open(dir.path(), config, false, 0, &StorageEnv::unbounded()).unwrap();
    assert!(log.flush_handle().is_empty() || log.flush_handle().end_offset() == 0);
    for _ in 0..10 {
        log.append(&batch(2, 0, 50), 0, None, 0).unwrap();
    }
    let handle = log.flush_handle();
    assert!(!handle.is_empty());
    assert_eq!(handle.end_offset(), 20);
    // Appends may go on while the handle syncs; the handle only vouches for its offset.
    log.append(&batch(2, 0, 50), 0, None, 0).unwrap();
    let (handle, durable) = std::thread::spawn(move || {
        let durable = handle.flush().unwrap();
        (handle, durable)
    })
    .join()
    .unwrap();
    assert_eq!(durable, 20);
    assert_eq!(log.mark_flushed(&handle), Some(20));
    assert_eq!(log.recovery_point(), 20);
    let next = log.flush_handle();
    assert_eq!(next.end_offset(), 22);
    assert_eq!(next.flush().unwrap(), 22);
    assert_eq!(log.mark_flushed(&next), Some(22));
    assert!(log.flush_handle().is_empty());
    // An older handle finishing late moves nothing back.
    assert_eq!(log.mark_flushed(&handle), Some(20));
    assert_eq!(log.recovery_point(), 22);
}

#[test]
fn log_and_handle_can_cross_threads() {
    // The broker keeps the log behind a RwLock and syncs on a blocking thread.
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<PartitionLog>();
    assert_send_sync::<sluice_storage::FlushHandle>();
}

#[test]
fn an_append_of_more_batches_than_one_vectored_write_takes_is_stored_whole() {
    // Two slices per batch (stamped header, the rest): 700 batches need two pwritev calls.
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(
        dir.path(),
        LogConfig::default(),
        false,
        0,
        &StorageEnv::unbounded(),
    )
    .unwrap();
    let batches: Vec<Vec<u8>> = (0..700).map(|i| batch(1, i, 3)).collect();
    let buf: Vec<u8> = batches.concat();
    let info = log.append(&buf, 2, None, 0).unwrap();
    assert_eq!((info.base_offset, info.last_offset), (0, 699));
    let expected: Vec<u8> = batches
        .iter()
        .enumerate()
        .flat_map(|(i, b)| stamped(b, i as i64, 2))
        .collect();
    let data = log.read(0, 1 << 20, i64::MAX).unwrap();
    assert_eq!(&data[..], &expected[..]);
}

/// Logs sharing a budget of two open files still append, read, sync and reopen every
/// segment: idle files are closed and reopened on use, never more than the budget stays
/// open, and what was written before a file was closed is read back unchanged.
#[test]
fn many_logs_share_a_small_open_files_budget() {
    let dir = tempfile::tempdir().unwrap();
    let files = OpenFiles::new(2);
    let env = StorageEnv::new(files.clone());
    let mut logs: Vec<PartitionLog> = (0..4)
        .map(|p| {
            PartitionLog::open(
                dir.path().join(format!("t-{p}")),
                small_config(),
                false,
                0,
                &env,
            )
            .unwrap()
        })
        .collect();
    let mut written: Vec<Vec<Vec<u8>>> = vec![Vec::new(); logs.len()];
    for round in 0..20i64 {
        for (p, log) in logs.iter_mut().enumerate() {
            let b = batch(3, round * 10 + p as i64, 300);
            let info = log.append(&b, 0, None, 0).unwrap();
            written[p].push(stamped(&b, info.base_offset, 0));
            assert!(
                files.open_count() <= 3,
                "at most the budget plus the file in use"
            );
        }
    }
    assert!(
        logs.iter().all(|l| l.segment_count() > 2),
        "several segments each"
    );
    assert!(files.closed_for_room() > 0);
    for log in &logs {
        let end = log.flush_handle().flush().unwrap();
        assert_eq!(end, log.log_end_offset());
    }
    for (p, log) in logs.iter().enumerate() {
        let expected: Vec<u8> = written[p].concat();
        let mut read = Vec::new();
        let mut offset = 0;
        while offset < log.log_end_offset() {
            let data = log.read(offset, 1 << 20, i64::MAX).unwrap();
            offset = batch_offsets(&data).last().unwrap().1 + 1;
            read.extend_from_slice(&data);
        }
        assert_eq!(read, expected, "partition {p}");
    }
    drop(logs);
    let reopened =
        PartitionLog::open(dir.path().join("t-0"), small_config(), true, 0, &env).unwrap();
    assert_eq!(reopened.log_end_offset(), 60);
}

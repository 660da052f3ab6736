//! Recovery after an unclean shutdown, and index rebuilds.

use std::fs::OpenOptions;
use std::io::Write;

use sluice_storage::{LogConfig, PartitionLog, StorageEnv};

use crate::common::*;

/// Appends `n` batches of 2 records without closing (an "unclean" shutdown is simply
/// dropping the log: the data is in the page cache, the checkpoints are stale).
fn fill(dir: &std::path::Path, config: &LogConfig, n: usize) -> Vec<usize> {
    let mut log =
        PartitionLog::open(dir, config.clone(), false, 0, &StorageEnv::unbounded()).unwrap();
    let mut sizes = Vec::new();
    for i in 0..n {
        let b = batch(2, i as i64, 30);
        sizes.push(b.len());
        log.append(&b, 0, None, 0).unwrap();
    }
    sizes
}

#[test]
fn torn_tail_is_truncated() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig::default();
    let sizes = fill(dir.path(), &config, 5);
    let file = &log_files(dir.path())[0];
    let full: usize = sizes.iter().sum();
    for cut in [1usize, 10, 61, sizes[4] - 1] {
        let f = OpenOptions::new().write(true).open(file).unwrap();
        f.set_len((full - cut) as u64).unwrap();
        drop(f);
        let log = PartitionLog::open(
            dir.path(),
            config.clone(),
            true,
            0,
            &StorageEnv::unbounded(),
        )
        .unwrap();
        assert_eq!(log.log_end_offset(), 8, "cut {cut}");
        assert_eq!(log.size_bytes(), (full - sizes[4]) as u64);
        assert_eq!(
            std::fs::metadata(file).unwrap().len(),
            (full - sizes[4]) as u64
        );
        assert_eq!(all_records(&log, 1 << 20).len(), 8);
        drop(log);
        // Restore the last batch for the next cut.
        let _ = std::fs::remove_dir_all(dir.path());
        fill(dir.path(), &config, 5);
    }
}

#[test]
fn garbage_tail_is_truncated_and_appends_continue() {
    let dir = tempfile::tempdir().unwrap();
    let config = small_config();
    let sizes = fill(dir.path(), &config, 5);
    let file = log_files(dir.path()).pop().unwrap();
    let mut f = OpenOptions::new().append(true).open(&file).unwrap();
    f.write_all(&[0u8; 100]).unwrap(); // e.g. preallocated zeros after a crash
    drop(f);
    let mut log = PartitionLog::open(
        dir.path(),
        config.clone(),
        true,
        0,
        &StorageEnv::unbounded(),
    )
    .unwrap();
    assert_eq!(log.log_end_offset(), 10);
    assert_eq!(log.size_bytes(), sizes.iter().sum::<usize>() as u64);
    let info = log.append(&batch(3, 100, 30), 0, None, 0).unwrap();
    assert_eq!((info.base_offset, info.last_offset), (10, 12));
    assert_eq!(
        all_records(&log, 1 << 20)
            .iter()
            .map(|r| r.0)
            .collect::<Vec<_>>(),
        (0..13).collect::<Vec<_>>()
    );
    log.close().unwrap();
    let log = PartitionLog::open(dir.path(), config, false, 0, &StorageEnv::unbounded()).unwrap();
    assert_eq!(log.log_end_offset(), 13);
}

#[test]
fn corrupted_byte_truncates_at_that_batch() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig::default();
    let sizes = fill(dir.path(), &config, 5);
    let file = &log_files(dir.path())[0];
    let mut bytes = std::fs::read(file).unwrap();
    let third_start = sizes[0] + sizes[1];
    bytes[third_start + 70] ^= 0x40; // inside the records of batch 3
    std::fs::write(file, &bytes).unwrap();

    let mut log =
        PartitionLog::open(dir.path(), config, true, 0, &StorageEnv::unbounded()).unwrap();
    assert_eq!(log.log_end_offset(), 4);
    assert_eq!(log.size_bytes(), third_start as u64);
    let info = log.append(&batch(1, 0, 5), 0, None, 0).unwrap();
    assert_eq!(info.base_offset, 4);
    assert_eq!(all_records(&log, 1 << 20).len(), 5);
}

#[test]
fn without_recovery_the_crc_is_not_scanned() {
    // A clean open trusts synced data (only headers are walked), as Kafka does.
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig::default();
    let sizes = fill(dir.path(), &config, 3);
    let file = &log_files(dir.path())[0];
    let mut bytes = std::fs::read(file).unwrap();
    bytes[sizes[0] + 70] ^= 0x40;
    std::fs::write(file, &bytes).unwrap();
    let log = PartitionLog::open(dir.path(), config, false, 0, &StorageEnv::unbounded()).unwrap();
    assert_eq!(log.log_end_offset(), 6);
}

#[test]
fn corruption_in_an_earlier_segment_drops_later_ones() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        segment_bytes: 400,
        ..small_config()
    };
    fill(dir.path(), &config, 12);
    let files = log_files(dir.path());
    assert!(files.len() >= 3, "{files:?}");
    // Corrupt the second segment's first batch; recovery point is 0 (never flushed).
    let mut bytes = std::fs::read(&files[1]).unwrap();
    bytes[30] ^= 1;
    std::fs::write(&files[1], &bytes).unwrap();
    let seg1_base: i64 = files[1]
        .file_stem()
        .unwrap()
        .to_str()
        .unwrap()
        .parse()
        .unwrap();

    let mut log =
        PartitionLog::open(dir.path(), config, true, 0, &StorageEnv::unbounded()).unwrap();
    assert_eq!(log.log_end_offset(), seg1_base);
    assert_eq!(
        log.segment_count(),
        2,
        "truncated segment stays as the (empty) active one"
    );
    assert_eq!(log_files(dir.path()).len(), 2);
    assert!(files_with_extension(dir.path(), "index").len() <= 2);
    let info = log.append(&batch(1, 0, 5), 0, None, 0).unwrap();
    assert_eq!(info.base_offset, seg1_base);
}

#[test]
fn recovery_skips_segments_below_the_recovery_point() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        segment_bytes: 400,
        ..small_config()
    };
    {
        let mut log = PartitionLog::open(
            dir.path(),
            config.clone(),
            false,
            0,
            &StorageEnv::unbounded(),
        )
        .unwrap();
        for i in 0..12 {
            log.append(&batch(2, i, 30), 0, None, 0).unwrap();
        }
        let handle = log.flush_handle();
        handle.flush().unwrap();
        log.mark_flushed(&handle);
        // More data after the flush, then a crash.
        log.append(&batch(2, 0, 30), 0, None, 0).unwrap();
    }
    let files = log_files(dir.path());
    // Corrupt the first segment (below the recovery point): recovery does not look there,
    // as it trusts synced data.
    let mut bytes = std::fs::read(&files[0]).unwrap();
    bytes[70] ^= 1;
    std::fs::write(&files[0], &bytes).unwrap();
    // Tear the active one.
    let last = files.last().unwrap();
    let len = std::fs::metadata(last).unwrap().len();
    OpenOptions::new()
        .write(true)
        .open(last)
        .unwrap()
        .set_len(len - 5)
        .unwrap();

    let log = PartitionLog::open(dir.path(), config, true, 0, &StorageEnv::unbounded()).unwrap();
    assert_eq!(log.log_end_offset(), 24);
    assert_eq!(log.recovery_point(), 24);
}

#[test]
fn deleted_index_files_are_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        index_interval_bytes: 64,
        segment_bytes: 3_000,
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
    for i in 0..60 {
        log.append(&batch(2, 1_000 + i * 2, 30), 0, None, 0)
            .unwrap();
    }
    log.close().unwrap();
    let index_files = files_with_extension(dir.path(), "index");
    let time_files = files_with_extension(dir.path(), "timeindex");
    assert!(index_files.len() > 1);
    let originals: Vec<Vec<u8>> = index_files
        .iter()
        .chain(&time_files)
        .map(|p| std::fs::read(p).unwrap())
        .collect();
    let expected = (
        all_records(&log, 1 << 20),
        log.offset_for_timestamp(1_050).unwrap(),
        log.max_timestamp(),
    );
    drop(log);

    for p in index_files.iter().chain(&time_files) {
        std::fs::remove_file(p).unwrap();
    }
    let mut log = PartitionLog::open(
        dir.path(),
        config.clone(),
        false,
        0,
        &StorageEnv::unbounded(),
    )
    .unwrap();
    let got = (
        all_records(&log, 1 << 20),
        log.offset_for_timestamp(1_050).unwrap(),
        log.max_timestamp(),
    );
    assert_eq!(got, expected);
    log.close().unwrap();
    let rebuilt: Vec<Vec<u8>> = index_files
        .iter()
        .chain(&time_files)
        .map(|p| std::fs::read(p).unwrap())
        .collect();
    assert_eq!(
        rebuilt, originals,
        "rebuilt indexes equal the ones written while appending"
    );
}

#[test]
fn corrupt_index_files_are_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        index_interval_bytes: 64,
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
    for i in 0..30 {
        log.append(&batch(2, i * 2, 30), 0, None, 0).unwrap();
    }
    log.close().unwrap();
    let expected = all_records(&log, 100);
    drop(log);
    for (n, p) in files_with_extension(dir.path(), "index").iter().enumerate() {
        let len = std::fs::metadata(p).unwrap().len() as usize;
        // Zero-filled (a crash before the page cache reached the disk) or garbage.
        let fill = if n % 2 == 0 {
            vec![0u8; len]
        } else {
            vec![0x5a; len]
        };
        std::fs::write(p, fill).unwrap();
    }
    for p in files_with_extension(dir.path(), "timeindex") {
        std::fs::write(p, b"nonsense").unwrap();
    }
    let log = PartitionLog::open(dir.path(), config, false, 0, &StorageEnv::unbounded()).unwrap();
    assert_eq!(all_records(&log, 100), expected);
    assert_eq!(log.offset_for_timestamp(21).unwrap(), Some((21, 21)));
}

#[test]
fn leftover_files_are_cleaned_up() {
    let dir = tempfile::tempdir().unwrap();
    let config = small_config();
    fill(dir.path(), &config, 2);
    std::fs::write(dir.path().join("00000000000000000999.index"), b"x").unwrap();
    std::fs::write(dir.path().join("recovery-point.tmp"), b"x").unwrap();
    let log = PartitionLog::open(dir.path(), config, true, 0, &StorageEnv::unbounded()).unwrap();
    assert_eq!(log.log_end_offset(), 4);
    assert!(!dir.path().join("00000000000000000999.index").exists());
    assert!(!dir.path().join("recovery-point.tmp").exists());
}

//! Injected I/O faults: errors, never panics, and no partial batch left behind.
//!
//! Each test injects faults through a storage environment of its own, so they run in
//! parallel with every other test.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use sluice_storage::{IoOp, LogConfig, OpenFiles, PartitionLog, StorageEnv, StorageError};

use crate::common::*;

/// An environment whose `op` operations fail while the returned switch is on (it starts
/// off, so a test can set its log up first).
fn failing(op: IoOp) -> (Arc<StorageEnv>, Arc<AtomicBool>) {
    let armed = Arc::new(AtomicBool::new(false));
    let switch = armed.clone();
    let env = StorageEnv::with_faults(
        OpenFiles::unbounded(),
        Arc::new(move |o, _| {
            if o == op && armed.load(Ordering::SeqCst) {
                Err(io::Error::other("injected fault"))
            } else {
                Ok(())
            }
        }),
    );
    (env, switch)
}

#[test]
fn failed_write_leaves_the_log_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let (env, armed) = failing(IoOp::Write);
    let mut log = PartitionLog::open(dir.path(), small_config(), false, 0, &env).unwrap();
    log.append(&batch(2, 0, 10), 0, None, 0).unwrap();
    armed.store(true, Ordering::SeqCst);
    let err = log.append(&batch(2, 0, 10), 0, None, 0).unwrap_err();
    assert!(matches!(err, StorageError::Io(_)), "{err}");
    assert_eq!(log.log_end_offset(), 2);
    armed.store(false, Ordering::SeqCst);
    let info = log.append(&batch(3, 0, 10), 0, None, 0).unwrap();
    assert_eq!(info.base_offset, 2);
    assert_eq!(all_records(&log, 1 << 20).len(), 5);
    drop(log);
    let log = PartitionLog::open(
        dir.path(),
        small_config(),
        true,
        0,
        &StorageEnv::unbounded(),
    )
    .unwrap();
    assert_eq!(log.log_end_offset(), 5);
}

#[test]
fn failed_sync_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let (env, armed) = failing(IoOp::Sync);
    let mut log = PartitionLog::open(dir.path(), LogConfig::default(), false, 0, &env).unwrap();
    log.append(&batch(2, 0, 10), 0, None, 0).unwrap();
    armed.store(true, Ordering::SeqCst);
    assert!(matches!(
        log.flush_handle().flush(),
        Err(StorageError::Io(_))
    ));
    assert_eq!(log.recovery_point(), 0);
    armed.store(false, Ordering::SeqCst);
    // Not retried into success: the failed sync may have lost the pages.
    assert!(matches!(
        log.flush_handle().flush(),
        Err(StorageError::Offline { .. })
    ));
}

/// After a failed fsync the kernel may have dropped the pages it could not write: the log
/// goes offline for good, never reports the failed range durable, and recovery on the next
/// open keeps only what the disk really holds.
#[test]
fn a_failed_sync_takes_the_log_offline_and_recovery_keeps_what_was_durable() {
    let dir = tempfile::tempdir().unwrap();
    let (env, armed) = failing(IoOp::Sync);
    let config = small_config();
    let mut log = PartitionLog::open(dir.path(), config.clone(), false, 0, &env).unwrap();
    let durable_batch = batch(2, 0, 10);
    log.append(&durable_batch, 0, None, 0).unwrap();
    let flushed = log.flush_handle();
    assert_eq!(flushed.flush().unwrap(), 2);
    assert_eq!(log.mark_flushed(&flushed), Some(2));
    assert_eq!(log.recovery_point(), 2);
    log.append(&batch(3, 0, 10), 0, None, 0).unwrap();

    armed.store(true, Ordering::SeqCst);
    let handle = log.flush_handle();
    assert!(matches!(handle.flush(), Err(StorageError::Io(_))));
    armed.store(false, Ordering::SeqCst);

    // Syncs that would now succeed prove nothing about the pages the failed one lost.
    assert!(log.is_offline());
    assert!(matches!(handle.flush(), Err(StorageError::Offline { .. })));
    assert!(matches!(
        log.flush_handle().flush(),
        Err(StorageError::Offline { .. })
    ));
    assert_eq!(log.mark_flushed(&handle), None);
    assert_eq!(log.recovery_point(), 2);
    for refused in [
        log.append(&batch(1, 0, 10), 0, None, 0).map(|_| ()),
        log.read(0, 1 << 20, i64::MAX).map(|_| ()),
        log.delete_records_before(1).map(|_| ()),
        log.apply_retention(0).map(|_| ()),
        log.close(),
    ] {
        assert!(
            matches!(refused, Err(StorageError::Offline { .. })),
            "{refused:?}"
        );
    }
    assert_eq!(log.log_end_offset(), 5);
    drop(log);

    // The kernel dropped the pages of the failed range: the disk holds zeros there.
    let file = &log_files(dir.path())[0];
    let len = std::fs::metadata(file).unwrap().len() as usize;
    let mut bytes = std::fs::read(file).unwrap();
    bytes[durable_batch.len()..].fill(0);
    assert_eq!(bytes.len(), len);
    std::fs::write(file, &bytes).unwrap();

    let mut log =
        PartitionLog::open(dir.path(), config, true, 0, &StorageEnv::unbounded()).unwrap();
    assert!(!log.is_offline());
    assert_eq!(log.log_end_offset(), 2);
    assert_eq!(all_records(&log, 1 << 20).len(), 2);
    let info = log.append(&batch(1, 0, 10), 0, None, 0).unwrap();
    assert_eq!(info.base_offset, 2);
}

#[test]
fn failed_reads_and_opens_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let (env, armed) = failing(IoOp::Read);
    let mut log = PartitionLog::open(dir.path(), LogConfig::default(), false, 0, &env).unwrap();
    log.append(&batch_with_timestamps(&[5, 6]), 0, None, 0)
        .unwrap();
    armed.store(true, Ordering::SeqCst);
    assert!(matches!(
        log.read(0, 100, i64::MAX),
        Err(StorageError::Io(_))
    ));
    assert!(log.offset_for_timestamp(6).is_err());
    // Falls back to the batch-granular answer rather than failing.
    assert_eq!(log.max_timestamp(), Some((6, 1)));
    drop(log);
    assert!(PartitionLog::open(dir.path(), LogConfig::default(), true, 0, &env).is_err());
    armed.store(false, Ordering::SeqCst);
    let log = PartitionLog::open(
        dir.path(),
        LogConfig::default(),
        true,
        0,
        &StorageEnv::unbounded(),
    )
    .unwrap();
    assert_eq!(log.log_end_offset(), 2);
}

/// Faults belong to the environment a log was opened with: a log in another environment,
/// in the same directory tree, works on while they fire.
#[test]
fn faults_reach_only_the_logs_of_their_environment() {
    let dir = tempfile::tempdir().unwrap();
    let (faulty_env, armed) = failing(IoOp::Write);
    armed.store(true, Ordering::SeqCst);
    let open = |name: &str, env: &Arc<StorageEnv>| {
        PartitionLog::open(dir.path().join(name), small_config(), false, 0, env).unwrap()
    };
    let mut faulty = open("faulty-0", &faulty_env);
    let mut healthy = open("healthy-0", &StorageEnv::unbounded());
    for _ in 0..3 {
        assert!(matches!(
            faulty.append(&batch(1, 0, 10), 0, None, 0),
            Err(StorageError::Io(_))
        ));
        healthy.append(&batch(1, 0, 10), 0, None, 0).unwrap();
    }
    assert_eq!((faulty.log_end_offset(), healthy.log_end_offset()), (0, 3));
}

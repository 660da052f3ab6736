//! Several logs synced together ([`sluice_storage::flush_together`]): one filesystem sync
//! for logs on the same filesystem, with the same results and the same failure rules as a
//! flush of each.

use std::io;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use sluice_storage::{
    FaultHook, FilesystemSync, FlushHandle, IoOp, LogConfig, OpenFiles, PartitionLog, StorageEnv,
    StorageError,
};

use crate::common::*;

/// `count` logs in sibling directories of `root`, all in `env`.
fn logs(root: &Path, count: usize, env: &Arc<StorageEnv>) -> Vec<PartitionLog> {
    (0..count)
        .map(|i| {
            PartitionLog::open(
                root.join(format!("t-{i}")),
                LogConfig::default(),
                false,
                0,
                env,
            )
            .unwrap()
        })
        .collect()
}

/// [`sluice_storage::flush_together`]'s results in the order of `handles`.
fn flush_together(handles: &[FlushHandle]) -> Vec<Result<i64, StorageError>> {
    let mut results: Vec<Option<Result<i64, StorageError>>> =
        handles.iter().map(|_| None).collect();
    sluice_storage::flush_together(handles, |index, result, _| results[index] = Some(result));
    results
        .into_iter()
        .map(|r| r.expect("every handle is reported once"))
        .collect()
}

/// An environment whose syncs fail, while the switch is on, where `fails` says so.
fn failing_syncs(
    fails: impl Fn(&Path) -> bool + Send + Sync + 'static,
) -> (Arc<StorageEnv>, Arc<AtomicBool>) {
    let armed = Arc::new(AtomicBool::new(false));
    let switch = armed.clone();
    let hook: FaultHook = Arc::new(move |op, path| {
        if op == IoOp::Sync && armed.load(Ordering::SeqCst) && fails(path) {
            Err(io::Error::other("injected fault"))
        } else {
            Ok(())
        }
    });
    (syncfs_env(Some(hook)), switch)
}

/// An environment that syncs logs sharing a filesystem with one syncfs whatever the
/// machine's dirty data (the broker's default waits for little of it).
fn syncfs_env(hook: Option<FaultHook>) -> Arc<StorageEnv> {
    StorageEnv::with_filesystem_sync(OpenFiles::unbounded(), hook, FilesystemSync::Always)
}

#[test]
fn logs_synced_together_are_durable_to_their_ends_with_one_filesystem_sync() {
    let dir = tempfile::tempdir().unwrap();
    let directory_syncs = Arc::new(AtomicUsize::new(0));
    let counted = directory_syncs.clone();
    let hook: FaultHook = Arc::new(move |op, path| {
        if op == IoOp::Sync && path.is_dir() {
            counted.fetch_add(1, Ordering::SeqCst);
        }
        Ok(())
    });
    let env = syncfs_env(Some(hook));
    let mut logs = logs(dir.path(), 3, &env);
    let syncs_before = directory_syncs.load(Ordering::SeqCst);
    for (i, log) in logs.iter_mut().enumerate() {
        log.append(&batch(i + 1, 0, 10), 0, None, 0).unwrap();
    }
    let handles: Vec<_> = logs.iter().map(PartitionLog::flush_handle).collect();
    let results = flush_together(&handles);
    let ends: Vec<i64> = results.into_iter().map(Result::unwrap).collect();
    assert_eq!(ends, [1, 2, 3]);
    // One syncfs for the three new segments, their data and directory entries (a flush
    // of each would have synced each directory).
    assert_eq!(directory_syncs.load(Ordering::SeqCst) - syncs_before, 1);
    for (log, handle) in logs.iter_mut().zip(&handles) {
        let end = log.log_end_offset();
        assert_eq!(log.mark_flushed(handle), Some(end));
        // Everything is synced, directory entries included: nothing is left to sync.
        assert!(log.flush_handle().is_empty(), "{}", log.dir().display());
    }
}

#[test]
fn a_log_whose_file_refuses_the_sync_fails_alone() {
    let dir = tempfile::tempdir().unwrap();
    let refused = dir.path().join("t-1");
    let (env, armed) = failing_syncs(move |path| path.starts_with(&refused));
    let mut logs = logs(dir.path(), 3, &env);
    for log in &mut logs {
        log.append(&batch(2, 0, 10), 0, None, 0).unwrap();
    }
    armed.store(true, Ordering::SeqCst);
    let handles: Vec<_> = logs.iter().map(PartitionLog::flush_handle).collect();
    let results = flush_together(&handles);
    assert!(matches!(results[0], Ok(2)), "{:?}", results[0]);
    assert!(
        matches!(results[1], Err(StorageError::Io(_))),
        "{:?}",
        results[1]
    );
    assert!(matches!(results[2], Ok(2)), "{:?}", results[2]);
    armed.store(false, Ordering::SeqCst);
    // The refused log stays offline: a later sync that succeeds proves nothing.
    assert!(matches!(
        logs[1].flush_handle().flush(),
        Err(StorageError::Offline { .. })
    ));
    assert!(logs[1].is_offline());
    assert!(!logs[0].is_offline() && !logs[2].is_offline());
}

#[test]
fn a_failed_filesystem_sync_takes_every_log_it_covered_offline() {
    let dir = tempfile::tempdir().unwrap();
    // Files pass; the one sync of the whole filesystem (asked through a directory) fails.
    let (env, armed) = failing_syncs(|path| path.is_dir());
    let mut logs = logs(dir.path(), 2, &env);
    for log in &mut logs {
        log.append(&batch(2, 0, 10), 0, None, 0).unwrap();
    }
    armed.store(true, Ordering::SeqCst);
    let handles: Vec<_> = logs.iter().map(PartitionLog::flush_handle).collect();
    for result in flush_together(&handles) {
        assert!(matches!(result, Err(StorageError::Io(_))), "{result:?}");
    }
    armed.store(false, Ordering::SeqCst);
    for log in &mut logs {
        assert!(log.is_offline());
        assert_eq!(log.recovery_point(), 0);
        assert!(matches!(
            log.flush_handle().flush(),
            Err(StorageError::Offline { .. })
        ));
    }
    // Reopened with recovery, each log keeps what its segment really holds.
    drop(logs);
    let reopened = PartitionLog::open(
        dir.path().join("t-0"),
        LogConfig::default(),
        true,
        0,
        &StorageEnv::unbounded(),
    )
    .unwrap();
    assert_eq!(reopened.log_end_offset(), 2);
}

#[test]
fn a_single_log_and_empty_handles_flush_as_on_their_own() {
    let dir = tempfile::tempdir().unwrap();
    let mut logs = logs(dir.path(), 2, &syncfs_env(None));
    logs[0].append(&batch(4, 0, 10), 0, None, 0).unwrap();
    let first = logs[0].flush_handle();
    assert!(matches!(
        flush_together(std::slice::from_ref(&first))[..],
        [Ok(4)]
    ));
    assert_eq!(logs[0].mark_flushed(&first), Some(4));
    // Nothing new anywhere: every result is its log end, no sync needed.
    let handles: Vec<_> = logs.iter().map(PartitionLog::flush_handle).collect();
    let ends: Vec<i64> = flush_together(&handles)
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(ends, [4, 0]);
}

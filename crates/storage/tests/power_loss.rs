//! The power-loss test mode (`sluice_storage::sync_ledger`) against real logs: after a
//! simulated power loss a log holds exactly what its completed syncs covered, and opens.
//!
//! A binary of its own: the ledger is recorded process-wide, and no other test's logs
//! should write to it.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    dead_code
)]

#[path = "partition_log/common.rs"]
mod common;

use std::path::Path;

use common::{all_records, batch, open_log, small_config};
use sluice_storage::sync_ledger::{self, Lost};
use sluice_storage::{LogConfig, PartitionLog};

/// Appends `count` batches of 2 records; returns their sizes.
fn append(log: &mut PartitionLog, count: usize) -> Vec<u64> {
    (0..count)
        .map(|i| {
            let b = batch(2, i as i64, 40);
            log.append(&b, 0, None, 0).unwrap();
            b.len() as u64
        })
        .collect()
}

/// Syncs the log as the broker's sync pass does; returns the durable end.
fn sync(log: &mut PartitionLog) -> i64 {
    let handle = log.flush_handle();
    let end = handle.flush().unwrap();
    log.mark_flushed(&handle);
    end
}

/// The process dies: nothing of the log is closed, synced or dropped.
fn crash(log: PartitionLog) {
    std::mem::forget(log);
}

fn reopened(dir: &Path, config: &LogConfig) -> PartitionLog {
    open_log(dir, config, true)
}

#[test]
fn a_simulated_power_loss_keeps_exactly_what_completed_syncs_covered() {
    let root = tempfile::tempdir().unwrap();
    let ledger = root.path().join("sync-ledger");
    sync_ledger::record_to(&ledger).unwrap();

    // One segment: the unsynced batches are cut off, byte for byte.
    let one = root.path().join("one-segment");
    let config = LogConfig::default();
    let mut log = open_log(&one, &config, false);
    append(&mut log, 10);
    assert_eq!(sync(&mut log), 20);
    let unsynced: u64 = append(&mut log, 5).iter().sum();
    assert_eq!(log.log_end_offset(), 30);
    crash(log);
    let lost = sync_ledger::lose_unsynced(&ledger).unwrap();
    assert_eq!(
        lost,
        Lost {
            files: 1,
            bytes: unsynced
        },
        "the 5 batches written after the sync are dropped"
    );
    let log = reopened(&one, &config);
    assert_eq!(log.log_end_offset(), 20);
    let records = all_records(&log, 1 << 20);
    assert_eq!(
        records.iter().map(|r| r.0).collect::<Vec<_>>(),
        (0..20).collect::<Vec<i64>>()
    );
    drop(log);

    // Many segments: rolls after the sync create files of which nothing is durable.
    let many = root.path().join("many-segments");
    let config = small_config();
    let mut log = open_log(&many, &config, false);
    append(&mut log, 100);
    let durable = sync(&mut log);
    assert_eq!(durable, 200);
    append(&mut log, 100);
    let segments_before = common::log_files(&many).len();
    crash(log);
    let lost = sync_ledger::lose_unsynced(&ledger).unwrap();
    assert!(lost.files >= 2 && lost.bytes > 0, "{lost:?}");
    let mut log = reopened(&many, &config);
    let offsets: Vec<i64> = all_records(&log, 1 << 20).iter().map(|r| r.0).collect();
    assert_eq!(
        offsets.get(..200),
        Some(&(0..200).collect::<Vec<i64>>()[..]),
        "every record below the durable end survives, in order ({segments_before} segments before)"
    );
    // The log takes appends at its end again.
    let end = log.log_end_offset();
    append(&mut log, 1);
    assert_eq!(log.log_end_offset(), end + 2);
    assert_eq!(sync(&mut log), end + 2);
    drop(log);

    // After kill -9 alone the page cache keeps everything, and recovery syncs what it
    // recovered: a power loss after that loses none of it.
    let recovered = root.path().join("recovered");
    let config = LogConfig::default();
    let mut log = open_log(&recovered, &config, false);
    append(&mut log, 10);
    crash(log);
    let log = reopened(&recovered, &config);
    assert_eq!(log.log_end_offset(), 20);
    crash(log);
    assert_eq!(
        sync_ledger::lose_unsynced(&ledger).unwrap(),
        Lost::default()
    );
    assert_eq!(reopened(&recovered, &config).log_end_offset(), 20);
}

//! The leader-epoch cache through appends, reopens, crashes and retention, and the high
//! watermark checkpoint.

use sluice_storage::LogConfig;

use crate::common::*;

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 500,
        ..small_config()
    }
}

/// Appends 3-record batches: epoch 0 for offsets 0..6, 3 for 6..12, 5 for 12..18.
fn three_epochs(dir: &std::path::Path) -> sluice_storage::PartitionLog {
    let mut log = open_log(dir, &config(), false);
    for epoch in [0, 0, 3, 3, 5, 5] {
        log.append(&batch(3, 0, 40), epoch, None, 0).unwrap();
    }
    log
}

#[test]
fn new_epochs_start_entries_and_end_offsets_follow_kafka() {
    let dir = tempfile::tempdir().unwrap();
    let log = three_epochs(dir.path());
    assert_eq!(epochs(&log), vec![(0, 0), (3, 6), (5, 12)]);
    assert_eq!(log.end_offset_for_epoch(5), (5, 18));
    assert_eq!(log.end_offset_for_epoch(3), (3, 12));
    assert_eq!(log.end_offset_for_epoch(4), (3, 12));
    assert_eq!(log.end_offset_for_epoch(0), (0, 6));
    assert_eq!(log.end_offset_for_epoch(6), (-1, -1));
    assert_eq!(log.end_offset_for_epoch(-1), (-1, -1));
}

#[test]
fn the_checkpoint_survives_a_clean_restart_and_is_rebuilt_when_lost() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = three_epochs(dir.path());
    log.close().unwrap();
    let checkpoint = dir.path().join("leader-epoch-checkpoint");
    assert_eq!(
        std::fs::read_to_string(&checkpoint).unwrap(),
        "0\n3\n0 0\n3 6\n5 12\n"
    );
    drop(log);
    assert_eq!(
        epochs(&open_log(dir.path(), &config(), false)),
        vec![(0, 0), (3, 6), (5, 12)]
    );
    // Missing or damaged, it is rebuilt from the batch headers (as after an upgrade).
    std::fs::remove_file(&checkpoint).unwrap();
    assert_eq!(
        epochs(&open_log(dir.path(), &config(), false)),
        vec![(0, 0), (3, 6), (5, 12)]
    );
    std::fs::write(&checkpoint, "0\n1\n9 x\n").unwrap();
    assert_eq!(
        epochs(&open_log(dir.path(), &config(), true)),
        vec![(0, 0), (3, 6), (5, 12)]
    );
}

/// After a crash the entries of what recovery cut are gone, and those of what it scanned
/// are derived again from the batches, whatever the stale checkpoint says.
#[test]
fn recovery_derives_the_epochs_of_the_scanned_tail_again() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = three_epochs(dir.path());
    log.close().unwrap();
    drop(log);
    let mut log = open_log(dir.path(), &config(), false);
    log.append(&batch(3, 0, 40), 8, None, 0).unwrap();
    drop(log); // crash: the checkpoint still says (0,0) (3,6) (5,12)
    assert_eq!(
        epochs(&open_log(dir.path(), &config(), true)),
        vec![(0, 0), (3, 6), (5, 12), (8, 18)]
    );
    // Tear the epoch-8 batch: its entry goes with it even though a checkpoint names it.
    let mut log = open_log(dir.path(), &config(), false);
    log.close().unwrap();
    drop(log);
    let last = log_files(dir.path()).pop().unwrap();
    let len = std::fs::metadata(&last).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&last)
        .unwrap()
        .set_len(len - 3)
        .unwrap();
    let log = open_log(dir.path(), &config(), true);
    assert_eq!(log.log_end_offset(), 18);
    assert_eq!(epochs(&log), vec![(0, 0), (3, 6), (5, 12)]);
}

#[test]
fn retention_moves_the_first_epoch_start_to_the_log_start() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = three_epochs(dir.path());
    log.delete_records_before(8).unwrap();
    assert_eq!(epochs(&log), vec![(3, 8), (5, 12)]);
    log.close().unwrap();
    drop(log);
    assert_eq!(
        epochs(&open_log(dir.path(), &config(), false)),
        vec![(3, 8), (5, 12)]
    );
}

#[test]
fn the_high_watermark_is_checkpointed_and_stays_within_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = three_epochs(dir.path());
    assert_eq!(log.high_watermark(), 0);
    log.set_high_watermark(14);
    log.checkpoint_high_watermark().unwrap();
    assert_eq!(
        std::fs::read_to_string(dir.path().join("high-watermark")).unwrap(),
        "0\n14\n"
    );
    drop(log);
    let mut log = open_log(dir.path(), &config(), true);
    assert_eq!(log.high_watermark(), 14);
    // DeleteRecords past it raises it; truncation below it lowers it.
    log.delete_records_before(15).unwrap();
    assert_eq!(log.high_watermark(), 15);
    log.truncate_to(12, 0).unwrap();
    assert_eq!(log.high_watermark(), 12);
    log.close().unwrap();
    drop(log);
    // A checkpoint past the log end (the tail was lost) is capped at the end.
    std::fs::write(dir.path().join("high-watermark"), "0\n99\n").unwrap();
    let log = open_log(dir.path(), &config(), false);
    assert_eq!((log.log_end_offset(), log.high_watermark()), (12, 12));
}

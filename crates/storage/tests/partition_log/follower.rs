//! The follower path: appends that keep the leader's offsets and epochs, truncation, and
//! producer-state snapshots.

use std::sync::{Arc, Mutex};

use sluice_protocol::batch::{BatchError, split_batches, transaction_marker};
use sluice_storage::producer_state::ProducerError;
use sluice_storage::{
    AppendOrderError, IoOp, LogConfig, OpenFiles, PartitionLog, StorageEnv, StorageError,
};

use crate::common::*;

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 600,
        index_interval_bytes: 100,
        ..small_config()
    }
}

/// A leader log with plain, idempotent and transactional batches over two leader epochs
/// and several segments; returns it with the offset each append ended at.
fn leader(dir: &std::path::Path) -> (PartitionLog, Vec<i64>) {
    let mut log = open_log(dir, &config(), false);
    let mut ends = Vec::new();
    let mut append = |log: &mut PartitionLog, b: Vec<u8>, epoch| {
        ends.push(log.append(&b, epoch, None, 0).unwrap().last_offset + 1);
    };
    for seq in 0..4 {
        append(&mut log, producer_batch(7, 0, seq * 2, 2, false), 0);
        append(&mut log, batch(2, i64::from(seq), 40), 0);
    }
    append(&mut log, producer_batch(9, 1, 0, 3, true), 2);
    append(&mut log, producer_batch(7, 0, 8, 1, false), 2);
    append(&mut log, transaction_marker(9, 1, false, 0, 5), 2);
    append(&mut log, producer_batch(9, 1, 3, 1, true), 5);
    append(&mut log, producer_batch(7, 0, 9, 2, false), 5);
    assert!(log.segment_count() >= 3, "{}", log.segment_count());
    (log, ends)
}

#[test]
fn a_follower_stores_the_leaders_batches_unchanged() {
    let dirs = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (leader, _) = leader(dirs.0.path());
    let mut follower = open_log(dirs.1.path(), &config(), false);
    let bytes = all_bytes(&leader);
    // Fetched in two pieces, as a fetcher would.
    let batches: Vec<_> = split_batches(&bytes).map(|b| b.unwrap().1).collect();
    let middle = batches[batches.len() / 2].start;
    let first = follower.append_as_follower(&bytes[..middle], 0).unwrap();
    assert_eq!(first.base_offset, 0);
    let second = follower.append_as_follower(&bytes[middle..], 0).unwrap();
    assert_eq!(second.last_offset + 1, leader.log_end_offset());

    assert_eq!(all_bytes(&follower), bytes);
    assert_eq!(epochs(&follower), vec![(0, 0), (2, 16), (5, 21)]);
    assert_eq!(epochs(&follower), epochs(&leader));
    assert_eq!(producer_view(&follower), producer_view(&leader));
    assert_eq!(
        follower.aborted_transactions(0, 100),
        leader.aborted_transactions(0, 100)
    );
    assert_eq!(follower.aborted_transactions(0, 100), vec![(9, 16)]);
    assert_eq!(follower.last_stable_offset(), leader.last_stable_offset());
    assert_eq!(follower.end_offset_for_epoch(2), (2, 21));
}

#[test]
fn a_follower_append_that_does_not_continue_the_log_is_refused_whole() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open_log(dir.path(), &config(), false);
    log.append_as_follower(&stamped(&batch(3, 0, 10), 0, 4), 0)
        .unwrap();
    let refused = |log: &mut PartitionLog, bytes: Vec<u8>| {
        let err = log.append_as_follower(&bytes, 0).unwrap_err();
        assert_eq!(log.log_end_offset(), 3, "nothing written after {err}");
        err
    };
    let err = refused(&mut log, stamped(&batch(1, 0, 10), 2, 4));
    assert!(matches!(
        err,
        StorageError::AppendOrder(AppendOrderError::UnexpectedOffset {
            expected: 3,
            found: 2
        })
    ));
    // Two batches of one append that overlap.
    let overlap = [
        stamped(&batch(2, 0, 10), 3, 4),
        stamped(&batch(1, 0, 10), 4, 4),
    ]
    .concat();
    assert!(matches!(
        refused(&mut log, overlap),
        StorageError::AppendOrder(AppendOrderError::UnexpectedOffset {
            expected: 5,
            found: 4
        })
    ));
    let older = [
        stamped(&batch(1, 0, 10), 3, 6),
        stamped(&batch(1, 0, 10), 4, 5),
    ]
    .concat();
    assert!(matches!(
        refused(&mut log, older),
        StorageError::AppendOrder(AppendOrderError::EpochRegression {
            offset: 4,
            epoch: 5,
            latest: 6
        })
    ));
    assert!(matches!(
        refused(&mut log, stamped(&batch(1, 0, 10), 3, 3)),
        StorageError::AppendOrder(AppendOrderError::EpochRegression {
            offset: 3,
            epoch: 3,
            latest: 4
        })
    ));
    assert!(matches!(
        refused(&mut log, stamped(&batch(1, 0, 10), 3, -1)),
        StorageError::AppendOrder(AppendOrderError::NoEpoch {
            offset: 3,
            epoch: -1
        })
    ));
    let mut corrupt = stamped(&batch(1, 0, 10), 3, 4);
    let last = corrupt.len() - 1;
    corrupt[last] ^= 1;
    assert!(matches!(
        refused(&mut log, corrupt),
        StorageError::InvalidBatch(BatchError::CrcMismatch { .. })
    ));
    assert_eq!(epochs(&log), vec![(4, 0)]);
    // The leader path keeps the epoch order too.
    let err = log.append(&batch(1, 0, 10), 3, None, 0).unwrap_err();
    assert!(matches!(
        err,
        StorageError::AppendOrder(AppendOrderError::EpochRegression { latest: 4, .. })
    ));
    assert_eq!(
        log.append(&batch(1, 0, 10), 4, None, 0)
            .unwrap()
            .base_offset,
        3
    );
}

/// A compacted leader's log has gaps where the cleaner removed records: a follower takes
/// batches that start past its log end or past the previous batch, as Kafka's does.
#[test]
fn a_follower_keeps_the_offset_gaps_of_the_leaders_log() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open_log(dir.path(), &config(), false);
    let appended = log
        .append_as_follower(&stamped(&batch(2, 0, 10), 5, 1), 0)
        .unwrap();
    assert_eq!((appended.base_offset, appended.last_offset), (5, 6));
    let gaps = [
        stamped(&batch(1, 0, 10), 9, 1),
        stamped(&batch(3, 0, 10), 20, 2),
    ]
    .concat();
    let appended = log.append_as_follower(&gaps, 0).unwrap();
    assert_eq!((appended.base_offset, appended.last_offset), (9, 22));
    assert_eq!(log.log_end_offset(), 23);
    assert_eq!(
        batch_offsets(&bytes::Bytes::from(all_bytes(&log))),
        vec![(5, 6), (9, 9), (20, 22)]
    );
    assert_eq!(epochs(&log), vec![(1, 5), (2, 20)]);
    // A read from inside a gap gets the next batch.
    assert_eq!(
        batch_offsets(&log.read(12, 1, i64::MAX).unwrap()),
        vec![(20, 22)]
    );
}

/// The state of a log that holds exactly `bytes` (stored batches), built by a follower.
fn replica_of(bytes: &[u8]) -> (tempfile::TempDir, PartitionLog) {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open_log(dir.path(), &config(), false);
    if !bytes.is_empty() {
        log.append_as_follower(bytes, 0).unwrap();
    }
    (dir, log)
}

/// What a truncated log must equal: everything derived from its batches as if only the
/// batches left had ever been written.
fn assert_same_state(log: &PartitionLog, expected: &PartitionLog) {
    assert_eq!(log.log_end_offset(), expected.log_end_offset());
    assert_eq!(all_bytes(log), all_bytes(expected));
    assert_eq!(epochs(log), epochs(expected));
    assert_eq!(producer_view(log), producer_view(expected));
    assert_eq!(
        log.aborted_transactions(0, i64::MAX),
        expected.aborted_transactions(0, i64::MAX)
    );
    assert_eq!(log.last_stable_offset(), expected.last_stable_offset());
}

#[test]
fn truncation_at_every_batch_boundary_restores_what_the_prefix_implies() {
    let dirs = tempfile::tempdir().unwrap();
    let (source, ends) = leader(dirs.path());
    let bytes = all_bytes(&source);
    let positions: Vec<usize> = split_batches(&bytes).map(|b| b.unwrap().1.end).collect();
    for (k, &end) in ends.iter().enumerate().rev() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = open_log(dir.path(), &config(), false);
        log.append_as_follower(&bytes, 0).unwrap();
        let before = snapshot_files(dir.path());
        assert!(log.truncate_to(end, 0).unwrap() || end == log.log_end_offset());
        let (_keep, expected) = replica_of(&bytes[..positions[k]]);
        assert_same_state(&log, &expected);
        assert!(
            snapshot_files(dir.path()).iter().all(|s| *s <= end),
            "{before:?} -> {:?}",
            snapshot_files(dir.path())
        );
        // The log goes on from the cut: the same batches again give the same log.
        if positions[k] < bytes.len() {
            log.append_as_follower(&bytes[positions[k]..], 0).unwrap();
        }
        assert_same_state(&log, &source);
        // And all of it survives a clean reopen and a crash.
        log.close().unwrap();
        drop(log);
        assert_same_state(&open_log(dir.path(), &config(), false), &source);
        assert_same_state(&open_log(dir.path(), &config(), true), &source);
    }
}

#[test]
fn truncation_inside_a_batch_removes_the_whole_batch() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open_log(dir.path(), &config(), false);
    log.append(&batch(3, 0, 10), 0, None, 0).unwrap();
    log.append(&batch(4, 0, 10), 1, None, 0).unwrap(); // offsets 3..=6
    log.set_high_watermark(7);
    assert!(log.truncate_to(5, 0).unwrap());
    assert_eq!(log.log_end_offset(), 3);
    assert_eq!(log.high_watermark(), 3);
    assert_eq!(epochs(&log), vec![(0, 0)]);
    assert!(
        !log.truncate_to(3, 0).unwrap(),
        "at the log end: nothing to do"
    );
    assert!(!log.truncate_to(10, 0).unwrap());
    assert!(matches!(
        log.truncate_to(-1, 0),
        Err(StorageError::OffsetOutOfRange { offset: -1, .. })
    ));
}

#[test]
fn truncation_undoes_idempotent_writes_so_retries_are_written_again() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open_log(dir.path(), &config(), false);
    for seq in 0..12 {
        log.append(&producer_batch(3, 0, seq, 1, false), 0, None, 0)
            .unwrap();
    }
    // The cut is in the second segment: the state comes from the snapshot at its base.
    let second = segment_base(&log_files(dir.path())[1]);
    let cut = second + 1;
    assert!(log.segment_count() >= 2 && cut < 12);
    log.truncate_to(cut, 0).unwrap();
    assert_eq!(snapshot_files(dir.path()), vec![second]);
    // Sequence `cut` is no longer in the log: a retry of it is new; the next one is out of
    // order; the one before is still a duplicate.
    let seq = i32::try_from(cut).unwrap();
    let gap = log
        .append(&producer_batch(3, 0, seq + 1, 1, false), 0, None, 0)
        .unwrap_err();
    assert!(matches!(
        gap,
        StorageError::Producer(ProducerError::OutOfOrder { expected, .. }) if expected == seq
    ));
    let retry = log
        .append(&producer_batch(3, 0, seq, 1, false), 0, None, 0)
        .unwrap();
    assert_eq!((retry.base_offset, retry.duplicate), (cut, false));
    let dup = log
        .append(&producer_batch(3, 0, seq - 1, 1, false), 0, None, 0)
        .unwrap();
    assert_eq!((dup.base_offset, dup.duplicate), (cut - 1, true));
}

#[test]
fn truncation_below_the_first_segment_starts_afresh() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open_log(dir.path(), &config(), false);
    for i in 0..20 {
        log.append(&producer_batch(1, 0, i, 1, false), 2, None, 0)
            .unwrap();
    }
    log.delete_records_before(12).unwrap();
    let target = segment_base(&log_files(dir.path())[0]) - 1;
    assert!(target > 0);
    assert!(log.truncate_to(target, 0).unwrap());
    assert_eq!(
        (
            log.log_start_offset(),
            log.log_end_offset(),
            log.recovery_point()
        ),
        (target, target, target)
    );
    assert!(log.producer_state().is_empty() && epochs(&log).is_empty());
    assert!(snapshot_files(dir.path()).is_empty());
    assert_eq!(log_files(dir.path()).len(), 1);
    let info = log
        .append_as_follower(&stamped(&batch(1, 0, 1), target, 3), 0)
        .unwrap();
    assert_eq!(info.base_offset, target);
    drop(log);
    let log = open_log(dir.path(), &config(), true);
    assert_eq!(
        (log.log_start_offset(), log.log_end_offset()),
        (target, target + 1)
    );
    assert_eq!(epochs(&log), vec![(3, target)]);
}

#[test]
fn a_flush_taken_before_a_truncation_claims_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open_log(dir.path(), &config(), false);
    log.append(&batch(5, 0, 10), 0, None, 0).unwrap();
    let handle = log.flush_handle();
    log.truncate_to(0, 0).unwrap();
    log.append(&batch(7, 0, 10), 1, None, 0).unwrap();
    assert_eq!(handle.flush().unwrap(), 5);
    assert_eq!(log.mark_flushed(&handle), None);
    assert_eq!(log.recovery_point(), 0);
}

/// A producer whose batches retention deleted is still known after a restart: the state
/// comes from the snapshot taken when its segment was rolled, not from the segments left.
#[test]
fn producer_state_outlives_its_segments_through_snapshots() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open_log(dir.path(), &config(), false);
    for seq in 0..3 {
        log.append(&producer_batch(42, 1, seq * 2, 2, false), 0, None, 0)
            .unwrap();
    }
    for i in 0..20 {
        log.append(&batch(2, i, 40), 0, None, 0).unwrap();
    }
    let end = log.log_end_offset();
    log.delete_records_before(end).unwrap();
    // Only the active segment is left, and the snapshot at its base.
    let files = log_files(dir.path());
    assert_eq!(files.len(), 1);
    assert_eq!(snapshot_files(dir.path()), vec![segment_base(&files[0])]);
    log.close().unwrap();
    drop(log);
    for recover in [false, true] {
        let mut log = open_log(dir.path(), &config(), recover);
        let producer = log.producer_state().producer(42).unwrap();
        assert_eq!(producer.batches.back().unwrap().last_seq, 5);
        let stale = log
            .append(&producer_batch(42, 0, 6, 1, false), 0, None, 0)
            .unwrap_err();
        assert!(matches!(
            stale,
            StorageError::Producer(ProducerError::InvalidEpoch { current: 1, .. })
        ));
    }
}

/// Reads per file name.
type ReadCounts = Arc<Mutex<Vec<(String, usize)>>>;

/// Counts the reads of each file a log does.
fn counting_env() -> (Arc<StorageEnv>, ReadCounts) {
    let counts: ReadCounts = Arc::default();
    let seen = counts.clone();
    let env = StorageEnv::with_faults(
        OpenFiles::unbounded(),
        Arc::new(move |op, path| {
            if op == IoOp::Read {
                let name = path.file_name().unwrap().to_string_lossy().into_owned();
                let mut counts = seen.lock().unwrap();
                match counts.iter_mut().find(|(n, _)| *n == name) {
                    Some((_, n)) => *n += 1,
                    None => counts.push((name, 1)),
                }
            }
            Ok(())
        }),
    );
    (env, counts)
}

fn reads_of(counts: &Mutex<Vec<(String, usize)>>, name: &str) -> usize {
    let counts = counts.lock().unwrap();
    counts
        .iter()
        .find(|(n, _)| n == name)
        .map_or(0, |(_, c)| *c)
}

/// Opening replays the batches after the latest snapshot only; without snapshots it
/// walks every batch header of every segment. A damaged snapshot is passed over.
#[test]
fn opening_replays_only_the_segments_after_the_latest_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        segment_bytes: 4_000,
        index_interval_bytes: 1 << 20,
        ..small_config()
    };
    let mut log = open_log(dir.path(), &config, false);
    for seq in 0..120 {
        log.append(&producer_batch(1, 0, seq, 1, false), 0, None, 0)
            .unwrap();
    }
    assert!(log.segment_count() >= 3);
    log.close().unwrap();
    let expected = producer_view(&log);
    drop(log);
    let first = "00000000000000000000.log";

    let (env, with_snapshots) = counting_env();
    let log = PartitionLog::open(dir.path(), config.clone(), false, 0, &env).unwrap();
    assert_eq!(producer_view(&log), expected);
    drop(log);

    // A damaged snapshot is deleted and an older one (or a replay) used instead.
    let snapshots = snapshot_files(dir.path());
    assert!(snapshots.len() >= 2, "{snapshots:?}");
    let latest = *snapshots.last().unwrap();
    std::fs::write(dir.path().join(format!("{latest:020}.snapshot")), b"torn").unwrap();
    let log = open_log(dir.path(), &config, false);
    assert_eq!(producer_view(&log), expected);
    assert_eq!(snapshot_files(dir.path()), snapshots[..snapshots.len() - 1]);
    drop(log);

    for offset in snapshot_files(dir.path()) {
        std::fs::remove_file(dir.path().join(format!("{offset:020}.snapshot"))).unwrap();
    }
    let (env, without) = counting_env();
    let log = PartitionLog::open(dir.path(), config, false, 0, &env).unwrap();
    assert_eq!(producer_view(&log), expected);
    // One record per batch: the second segment's base counts the batches of the first,
    // and walking them reads each header.
    let batches_in_first = segment_base(&log_files(dir.path())[1]) as usize;
    assert!(
        reads_of(&without, first) >= reads_of(&with_snapshots, first) + batches_in_first,
        "with snapshots {} reads, without {}",
        reads_of(&with_snapshots, first),
        reads_of(&without, first)
    );
}

#[test]
fn a_new_leadership_is_in_the_epoch_cache_before_its_first_batch() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open_log(dir.path(), &config(), false);
    log.append(&batch(3, 0, 10), 2, None, 0).unwrap();
    log.begin_leader_epoch(5).unwrap();
    assert_eq!(epochs(&log), vec![(2, 0), (5, 3)]);
    // A follower that last fetched epoch 2, or an epoch between, learns it ended at 3.
    assert_eq!(log.end_offset_for_epoch(2), (2, 3));
    assert_eq!(log.end_offset_for_epoch(4), (2, 3));
    assert_eq!(log.end_offset_for_epoch(5), (5, 3));
    // The same epoch again changes nothing; an older one is refused.
    log.begin_leader_epoch(5).unwrap();
    assert_eq!(epochs(&log), vec![(2, 0), (5, 3)]);
    assert!(matches!(
        log.begin_leader_epoch(4),
        Err(AppendOrderError::EpochRegression {
            epoch: 4,
            latest: 5,
            ..
        })
    ));
    // The leadership's first batch keeps the entry where it is.
    log.append(&batch(1, 0, 10), 5, None, 0).unwrap();
    assert_eq!(epochs(&log), vec![(2, 0), (5, 3)]);
}

/// A node that led an epoch without appending to it, then follows a leader that never had
/// that epoch: the leader says the follower diverged where its log ends, and the truncation
/// there, which removes no batch, still drops the empty epoch (Kafka's `truncateTo`), so the
/// follower's next fetch names the epoch before it. Before, the entry stayed and the
/// follower asked about it again for ever (found by the fault harness: a follower never
/// rejoined the ISR).
#[test]
fn truncating_at_the_log_end_drops_an_epoch_that_holds_no_batch() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open_log(dir.path(), &config(), false);
    log.append(&batch(3, 0, 10), 2, None, 0).unwrap();
    log.begin_leader_epoch(5).unwrap();
    assert_eq!(log.leader_epochs().latest_epoch(), Some(5));
    assert!(!log.truncate_to(3, 0).unwrap(), "no batch is removed");
    assert_eq!(epochs(&log), vec![(2, 0)]);
    assert_eq!(log.leader_epochs().latest_epoch(), Some(2));
    assert_eq!(log.log_end_offset(), 3);
    // An epoch that holds batches is kept by a truncation at the end.
    log.append(&batch(2, 0, 10), 6, None, 0).unwrap();
    assert!(!log.truncate_to(5, 0).unwrap());
    assert_eq!(epochs(&log), vec![(2, 0), (6, 3)]);
    // The cut survives a restart.
    log.begin_leader_epoch(7).unwrap();
    assert!(!log.truncate_to(5, 0).unwrap());
    drop(log);
    let log = open_log(dir.path(), &config(), true);
    assert_eq!(epochs(&log), vec![(2, 0), (6, 3)]);
}

//! Log compaction (`cleanup.policy=compact`): the latest record of each key stays at its
//! offset, tombstones and transaction markers go after `delete.retention.ms`, aborted data
//! goes, producers keep their last batch, and a crash at any file operation of a cleaning
//! loses no live key.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use bytes::Bytes;
use proptest::prelude::*;
use sluice_protocol::batch::{
    BatchHeader, Compression, RecordBatchBuilder, split_batches, transaction_marker,
};
use sluice_protocol::records::decode_records;
use sluice_storage::cleaner::Unthrottled;
use sluice_storage::{
    CleanOutcome, CompactionConfig, IoOp, LogConfig, OpenFiles, PartitionLog, StorageEnv,
};

use crate::common::*;

const DELETE_RETENTION_MS: i64 = 1_000;

fn compacted(segment_bytes: u64) -> LogConfig {
    LogConfig {
        segment_bytes,
        compaction: Some(CompactionConfig {
            delete_retention_ms: DELETE_RETENTION_MS,
            ..CompactionConfig::default()
        }),
        ..small_config()
    }
}

/// One record per (key, value); `None` values are tombstones.
fn keyed(ts: i64, records: &[(&str, Option<&str>)]) -> Vec<u8> {
    keyed_builder(ts, records).build()
}

fn keyed_builder(ts: i64, records: &[(&str, Option<&str>)]) -> RecordBatchBuilder {
    let mut b = RecordBatchBuilder::new();
    for (key, value) in records {
        b.push(
            ts,
            Some(key.as_bytes()),
            value.map(str::as_bytes),
            &[("h", Some(b"x"))],
        );
    }
    b
}

/// Plans, runs and installs one cleaning at `now`; `None` when there was nothing to clean.
fn clean(log: &mut PartitionLog, now: i64) -> Option<CleanOutcome> {
    let task = log.plan_cleaning(now, i64::MAX).unwrap()?;
    let cleaned = task.run(1 << 20, &Unthrottled).unwrap();
    Some(log.install_cleaned(cleaned, now).unwrap())
}

/// A data record as read back.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Rec {
    offset: i64,
    key: String,
    value: Option<String>,
}

fn text(b: Option<Bytes>) -> Option<String> {
    b.map(|b| String::from_utf8(b.to_vec()).unwrap())
}

/// Every batch of the log from `from`, with its records (data and control).
fn batches_from(log: &PartitionLog, from: i64) -> Vec<(BatchHeader, Vec<Rec>)> {
    let mut out = Vec::new();
    let mut offset = from;
    while offset < log.log_end_offset() {
        let data = log.read(offset, 1 << 20, i64::MAX).unwrap();
        assert!(!data.is_empty(), "empty read at {offset}");
        for item in split_batches(&data) {
            let (h, range) = item.unwrap();
            let batch = data.slice(range);
            sluice_protocol::batch::check_integrity(&batch).unwrap();
            let records = decode_records(&batch, 1 << 24)
                .unwrap()
                .map(|r| {
                    let r = r.unwrap();
                    Rec {
                        offset: r.offset,
                        key: text(r.key).unwrap_or_default(),
                        value: text(r.value),
                    }
                })
                .collect();
            out.push((h, records));
            offset = h.next_offset();
        }
    }
    out
}

/// Every data record, in log order; offsets must strictly increase.
fn records(log: &PartitionLog) -> Vec<Rec> {
    let all: Vec<Rec> = batches_from(log, log.log_start_offset())
        .into_iter()
        .filter(|(h, _)| !h.is_control())
        .flat_map(|(_, r)| r)
        .collect();
    for pair in all.windows(2) {
        assert!(
            pair[0].offset < pair[1].offset,
            "offsets out of order: {pair:?}"
        );
    }
    all
}

/// The data records a read_committed consumer sees: a transactional batch of a producer
/// is skipped from the first offset of an aborted transaction the log reports until that
/// producer's next control batch.
fn committed_records(log: &PartitionLog) -> Vec<Rec> {
    let start = log.log_start_offset();
    let mut aborted: Vec<(i64, i64)> = log.aborted_transactions(start, log.log_end_offset());
    aborted.sort_by_key(|(_, first)| *first);
    let mut skipping = BTreeSet::new();
    let mut out = Vec::new();
    for (h, recs) in batches_from(log, start) {
        while let Some(&(producer, first)) = aborted.first() {
            if first > h.last_offset() {
                break;
            }
            skipping.insert(producer);
            aborted.remove(0);
        }
        if h.is_control() {
            skipping.remove(&h.producer_id);
        } else if !(h.is_transactional() && skipping.contains(&h.producer_id)) {
            out.extend(recs);
        }
    }
    out
}

/// The latest record of each key among `written`.
fn latest_per_key(written: &[Rec]) -> BTreeMap<String, Rec> {
    let mut latest = BTreeMap::new();
    for r in written {
        latest.insert(r.key.clone(), r.clone());
    }
    latest
}

/// Writes `updates` records, one per batch, cycling over `keys` keys: value `v<offset>`.
fn write_updates(log: &mut PartitionLog, keys: usize, updates: usize, ts: i64) -> Vec<Rec> {
    let mut written = Vec::new();
    for i in 0..updates {
        let key = format!("k{}", i % keys);
        let offset = log.log_end_offset();
        let value = format!("v{offset}");
        log.append(&keyed(ts, &[(&key, Some(&value))]), 0, None, ts)
            .unwrap();
        written.push(Rec {
            offset,
            key,
            value: Some(value),
        });
    }
    written
}

#[test]
fn keeps_the_latest_record_of_each_key_at_its_offset() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open_log(dir.path(), &compacted(1024), false);
    let written = write_updates(&mut log, 10, 500, 1_000);
    let segments_before = log.segment_count();
    let stats = log.dirty_stats(2_000, i64::MAX).unwrap();
    assert_eq!(stats.first_dirty_offset, 0);
    assert_eq!(stats.clean_bytes, 0);
    assert!(stats.dirty_ratio > 0.9, "{stats:?}");
    assert!(stats.needs_cleaning(0.5));

    let outcome = clean(&mut log, 2_000).unwrap();
    let CleanOutcome::Installed {
        replaced,
        installed,
    } = outcome
    else {
        panic!("{outcome:?}");
    };
    assert_eq!(replaced, segments_before - 1, "every sealed segment");
    // Groups are made by the size of their sources: full segments are cleaned one by one
    // (the next cleaning merges what is left of them).
    assert_eq!(installed, replaced);
    assert_eq!(log.segment_count(), segments_before);

    let end = log.cleaner_checkpoint().unwrap();
    assert_eq!(end, stats.first_uncleanable_offset);
    let (cleaned, tail): (Vec<Rec>, Vec<Rec>) =
        written.iter().cloned().partition(|r| r.offset < end);
    let mut expected: Vec<Rec> = latest_per_key(&cleaned).into_values().collect();
    expected.sort();
    expected.extend(tail);
    assert_eq!(records(&log), expected);
    assert_eq!(log.log_end_offset(), 500, "offsets never change");
    assert_eq!(log.log_start_offset(), 0);

    let after = log.dirty_stats(2_000, i64::MAX).unwrap();
    assert_eq!(after.first_dirty_offset, end);
    assert_eq!(after.cleanable_bytes, 0);
    assert_eq!(clean(&mut log, 2_000), None, "nothing dirty left");

    // The checkpoint and the cleaned log survive a restart, clean or not.
    drop(log);
    let log = open_log(dir.path(), &compacted(1024), true);
    assert_eq!(log.cleaner_checkpoint(), Some(end));
    assert_eq!(records(&log), expected);
}

#[test]
fn a_fetch_inside_a_removed_range_returns_the_next_record() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open_log(dir.path(), &compacted(700), false);
    write_updates(&mut log, 3, 120, 1_000);
    clean(&mut log, 2_000).unwrap();
    let present: Vec<i64> = records(&log).iter().map(|r| r.offset).collect();
    assert!(present.len() < 60, "{present:?}");
    for from in 0..log.log_end_offset() {
        let data = log.read(from, 1, i64::MAX).unwrap();
        assert!(!data.is_empty(), "a read at {from} returns a batch");
        let first = split_batches(&data).next().unwrap().unwrap().0;
        assert!(first.last_offset() >= from, "read at {from} gave {first:?}");
        let next_present = present.iter().copied().find(|o| *o >= from);
        let got = batches_from(&log, from)
            .into_iter()
            .flat_map(|(_, r)| r)
            .map(|r| r.offset)
            .find(|o| *o >= from);
        assert_eq!(got, next_present, "read from {from}");
    }
}

/// A follower fetching a cleaned leader's log (gaps, emptied batches) stores it as the
/// leader has it and reads back the same records; it then compacts its copy on its own
/// (Kafka's followers run their own cleaner) and still holds every live key.
#[test]
fn a_follower_replicates_a_cleaned_log_and_cleans_its_copy_on_its_own() {
    let dirs = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut leader = open_log(dirs.0.path(), &compacted(700), false);
    write_updates(&mut leader, 3, 120, 1_000);
    clean(&mut leader, 2_000).unwrap();
    let expected = records(&leader);
    assert!(expected.len() < 60, "the leader was cleaned: {expected:?}");

    let mut follower = open_log(dirs.1.path(), &compacted(700), false);
    while follower.log_end_offset() < leader.log_end_offset() {
        let fetched = leader
            .read(follower.log_end_offset(), 2048, i64::MAX)
            .unwrap();
        follower.append_as_follower(&fetched, 2_000).unwrap();
    }
    assert_eq!(all_bytes(&follower), all_bytes(&leader));
    assert_eq!(records(&follower), expected);

    clean(&mut follower, 3_000).unwrap();
    assert_eq!(
        latest_per_key(&records(&follower)),
        latest_per_key(&expected)
    );
    assert_eq!(follower.log_end_offset(), leader.log_end_offset());
}

#[test]
fn a_full_offset_map_cleans_part_of_the_log_and_the_next_run_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open_log(dir.path(), &compacted(1024), false);
    let written = write_updates(&mut log, 150, 450, 1_000);
    let end = log
        .dirty_stats(2_000, i64::MAX)
        .unwrap()
        .first_uncleanable_offset;
    // The smallest map takes 57 keys: each run covers a part of the dirty range.
    let mut checkpoints = Vec::new();
    while log.cleaner_checkpoint() != Some(end) {
        let task = log.plan_cleaning(2_000, i64::MAX).unwrap().unwrap();
        let cleaned = task
            .run(64 * sluice_storage::cleaner::SLOT_BYTES, &Unthrottled)
            .unwrap();
        log.install_cleaned(cleaned, 2_000).unwrap();
        let checkpoint = log.cleaner_checkpoint().unwrap();
        checkpoints.push(checkpoint);
        let (cleaned, tail): (Vec<Rec>, Vec<Rec>) =
            written.iter().cloned().partition(|r| r.offset < checkpoint);
        let mut expected: Vec<Rec> = latest_per_key(&cleaned).into_values().collect();
        expected.sort();
        expected.extend(tail);
        assert_eq!(records(&log), expected, "cleaned up to {checkpoint}");
        assert!(checkpoints.len() < 20, "{checkpoints:?}");
    }
    assert!(checkpoints.len() > 3, "{checkpoints:?}");
    assert!(
        checkpoints.windows(2).all(|w| w[0] < w[1]),
        "{checkpoints:?}"
    );
}

#[test]
fn a_read_goes_past_segments_left_with_only_emptied_batches() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open_log(dir.path(), &compacted(512), false);
    write_updates(&mut log, 1, 60, 1_000);
    clean(&mut log, 2_000).unwrap();
    let batches = batches_from(&log, 0);
    let emptied = batches.iter().take_while(|(_, r)| r.is_empty()).count();
    assert!(
        emptied > 3,
        "segments left with one emptied batch each: {batches:?}"
    );
    // One read brings them all and the record after them (a client that gets no record
    // from a fetch takes the batch for one too large for its buffer).
    let data = log.read(0, 1 << 20, i64::MAX).unwrap();
    let read: Vec<BatchHeader> = split_batches(&data).map(|b| b.unwrap().0).collect();
    assert_eq!(read.len(), emptied + 1);
    assert_eq!(read[0], batches[0].0);
    assert!(read[..emptied].iter().all(|h| h.records_count == 0));
    assert_eq!(read[emptied].records_count, 1);
    // Within max_bytes: here the emptied batches alone.
    let small = log.read(0, 61 * 2, i64::MAX).unwrap();
    assert_eq!(split_batches(&small).count(), 2);
    // A segment with records is still read alone.
    let tail = log
        .read(read[emptied].base_offset, 1 << 20, i64::MAX)
        .unwrap();
    let last = split_batches(&tail).last().unwrap().unwrap().0;
    assert!(last.next_offset() <= log.log_end_offset());
}

/// Fills the log with records of a throwaway key until `segments` more segments were
/// rolled, so the cleaner has dirty data to work on.
fn roll_segments(log: &mut PartitionLog, segments: usize, ts: i64) {
    let target = log.segment_count() + segments;
    while log.segment_count() < target {
        log.append(&keyed(ts, &[("filler", Some("f"))]), 0, None, ts)
            .unwrap();
    }
}

fn value_of(log: &PartitionLog, key: &str) -> Option<Option<String>> {
    records(log)
        .into_iter()
        .rev()
        .find(|r| r.key == key)
        .map(|r| r.value)
}

#[test]
fn tombstones_stay_for_delete_retention_after_the_cleaning_that_first_kept_them() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open_log(dir.path(), &compacted(512), false);
    log.append(
        &keyed(100, &[("a", Some("1")), ("b", Some("1"))]),
        0,
        None,
        100,
    )
    .unwrap();
    let tombstone_offset = log.log_end_offset();
    log.append(&keyed(100, &[("a", None)]), 0, None, 100)
        .unwrap();
    roll_segments(&mut log, 2, 100);

    clean(&mut log, 10_000).unwrap();
    assert_eq!(value_of(&log, "a"), Some(None), "the tombstone stays");
    assert_eq!(value_of(&log, "b"), Some(Some("1".into())));
    let (h, _) = batches_from(&log, tombstone_offset)
        .into_iter()
        .find(|(h, _)| h.last_offset() >= tombstone_offset)
        .unwrap();
    assert_eq!(h.delete_horizon_ms(), Some(10_000 + DELETE_RETENTION_MS));

    roll_segments(&mut log, 2, 100);
    clean(&mut log, 10_000 + DELETE_RETENTION_MS - 1).unwrap();
    assert_eq!(
        value_of(&log, "a"),
        Some(None),
        "still within delete.retention.ms"
    );

    roll_segments(&mut log, 2, 100);
    clean(&mut log, 10_000 + DELETE_RETENTION_MS).unwrap();
    assert_eq!(value_of(&log, "a"), None, "removed once its horizon passed");
    assert_eq!(value_of(&log, "b"), Some(Some("1".into())));
}

#[test]
fn records_younger_than_min_compaction_lag_are_not_cleaned() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = compacted(600);
    config.compaction.as_mut().unwrap().min_compaction_lag_ms = 1_000;
    let mut log = open_log(dir.path(), &config, false);
    write_updates(&mut log, 2, 60, 5_000);
    assert!(log.segment_count() > 3);
    let stats = log.dirty_stats(5_500, i64::MAX).unwrap();
    assert_eq!(
        (stats.first_uncleanable_offset, stats.cleanable_bytes),
        (0, 0)
    );
    assert_eq!(clean(&mut log, 5_500), None);
    assert_eq!(records(&log).len(), 60);
    assert!(clean(&mut log, 6_001).is_some());
    assert!(records(&log).len() < 60);
}

#[test]
fn max_compaction_lag_forces_a_cleaning_and_rolls_the_active_segment() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = compacted(600);
    let compaction = config.compaction.as_mut().unwrap();
    compaction.min_cleanable_dirty_ratio = 0.99;
    compaction.max_compaction_lag_ms = 1_000;
    let mut log = open_log(dir.path(), &config, false);
    write_updates(&mut log, 2, 40, 5_000);
    clean(&mut log, 5_000).unwrap();
    write_updates(&mut log, 2, 10, 5_000);
    let stats = log.dirty_stats(5_500, i64::MAX).unwrap();
    assert!(stats.dirty_ratio < 0.99, "{stats:?}");
    assert!(!stats.needs_cleaning(0.99), "not overdue yet");
    let stats = log.dirty_stats(6_200, i64::MAX).unwrap();
    assert_eq!(stats.compaction_delay_ms, 200);
    assert!(
        stats.needs_cleaning(0.99),
        "overdue by max.compaction.lag.ms"
    );

    // The active segment rolls once max.compaction.lag.ms passed, though segment.ms is off;
    // a log that is not compacted does not roll.
    for compacted in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        let mut config = config.clone();
        config.segment_bytes = 1 << 20;
        if !compacted {
            config.compaction = None;
        }
        let mut log = open_log(dir.path(), &config, false);
        let mut counts = Vec::new();
        for ts in [5_000, 5_000, 5_900, 6_100] {
            log.append(&keyed(ts, &[("k", Some("v"))]), 0, None, ts)
                .unwrap();
            counts.push(log.segment_count());
        }
        let expected = if compacted {
            [1, 2, 2, 3]
        } else {
            [1, 1, 1, 1]
        };
        assert_eq!(counts, expected, "compacted: {compacted}");
    }
}

fn txn_batch(producer: i64, epoch: i16, seq: i32, records: &[(&str, Option<&str>)]) -> Vec<u8> {
    keyed_builder(100, records)
        .producer(producer, epoch, seq)
        .transactional(true)
        .build()
}

#[test]
fn aborted_data_goes_first_and_its_marker_after_delete_retention() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open_log(dir.path(), &compacted(512), false);
    log.append(&keyed(100, &[("a", Some("plain"))]), 0, None, 100)
        .unwrap();
    log.append(&txn_batch(7, 0, 0, &[("a", Some("aborted"))]), 0, None, 100)
        .unwrap();
    let abort_at = log.log_end_offset();
    log.append(&transaction_marker(7, 0, false, 0, 100), 0, None, 100)
        .unwrap();
    log.append(
        &txn_batch(8, 0, 0, &[("b", Some("committed"))]),
        0,
        None,
        100,
    )
    .unwrap();
    log.append(&transaction_marker(8, 0, true, 0, 100), 0, None, 100)
        .unwrap();
    // Producer 7 goes on, so the abort marker is not its last batch.
    log.append(&txn_batch(7, 0, 1, &[("c", Some("later"))]), 0, None, 100)
        .unwrap();
    log.append(&transaction_marker(7, 0, true, 0, 100), 0, None, 100)
        .unwrap();
    roll_segments(&mut log, 2, 100);
    assert_eq!(log.aborted_transactions(0, 100), vec![(7, 1)]);
    let marker_kept = |log: &PartitionLog| {
        batches_from(log, 0)
            .iter()
            .any(|(h, r)| h.is_control() && h.base_offset == abort_at && !r.is_empty())
    };

    clean(&mut log, 10_000).unwrap();
    let all = records(&log);
    assert!(!all.iter().any(|r| r.value.as_deref() == Some("aborted")));
    assert_eq!(value_of(&log, "a"), Some(Some("plain".into())));
    assert!(marker_kept(&log), "its batches were seen in this pass");
    assert_eq!(log.aborted_transactions(0, 100), vec![(7, 1)]);

    roll_segments(&mut log, 2, 100);
    clean(&mut log, 20_000).unwrap();
    assert!(
        marker_kept(&log),
        "first pass without its batches: horizon set"
    );

    roll_segments(&mut log, 2, 100);
    clean(&mut log, 20_000 + DELETE_RETENTION_MS).unwrap();
    assert!(!marker_kept(&log), "removed after its horizon");
    assert_eq!(log.aborted_transactions(0, 100), vec![]);
    assert_eq!(
        committed_records(&log)
            .iter()
            .filter(|r| r.key != "filler")
            .map(|r| (r.key.as_str(), r.value.as_deref()))
            .collect::<Vec<_>>(),
        vec![
            ("a", Some("plain")),
            ("b", Some("committed")),
            ("c", Some("later"))
        ]
    );
    // Reopened from the snapshots left, the aborted transaction stays forgotten.
    drop(log);
    let log = open_log(dir.path(), &compacted(512), true);
    assert_eq!(log.aborted_transactions(0, 100), vec![]);
    assert_eq!(log.last_stable_offset(), log.log_end_offset());
}

#[test]
fn a_producers_last_batch_stays_as_an_empty_batch_so_it_keeps_its_sequence() {
    let dir = tempfile::tempdir().unwrap();
    let config = compacted(512);
    let mut log = open_log(dir.path(), &config, false);
    for seq in 0..3 {
        let b = keyed_builder(100, &[("p", Some("idempotent"))])
            .producer(5, 2, seq)
            .build();
        log.append(&b, 0, None, 100).unwrap();
    }
    let last = log.log_end_offset() - 1;
    log.append(&keyed(100, &[("p", Some("plain"))]), 0, None, 100)
        .unwrap();
    roll_segments(&mut log, 2, 100);
    clean(&mut log, 10_000).unwrap();
    let kept: Vec<(BatchHeader, Vec<Rec>)> = batches_from(&log, 0)
        .into_iter()
        .filter(|(h, _)| h.producer_id == 5)
        .collect();
    assert_eq!(kept.len(), 1, "only its last batch");
    let (h, recs) = &kept[0];
    assert_eq!(
        (h.base_offset, h.last_offset(), h.records_count),
        (last, last, 0)
    );
    assert_eq!((h.producer_epoch, h.base_sequence), (2, 2));
    assert!(recs.is_empty());
    assert_eq!(value_of(&log, "p"), Some(Some("plain".into())));

    // Rebuilt from the log alone (no snapshot), the producer state still has sequence 2:
    // a retry of it is a duplicate, the next one is in order.
    drop(log);
    for snapshot in files_with_extension(dir.path(), "snapshot") {
        std::fs::remove_file(snapshot).unwrap();
    }
    let mut log = open_log(dir.path(), &config, false);
    let retry = keyed_builder(100, &[("p", Some("idempotent"))])
        .producer(5, 2, 2)
        .build();
    let info = log.append(&retry, 0, None, 100).unwrap();
    assert!(info.duplicate);
    assert_eq!(info.base_offset, last);
    let next = keyed_builder(100, &[("p", Some("next"))])
        .producer(5, 2, 3)
        .build();
    assert!(!log.append(&next, 0, None, 100).unwrap().duplicate);
}

#[test]
fn compressed_batches_are_rewritten_with_their_codec_and_keep_headers() {
    let codecs = [
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ];
    let dir = tempfile::tempdir().unwrap();
    let mut log = open_log(dir.path(), &compacted(2048), false);
    for (i, codec) in codecs.iter().enumerate() {
        let v = format!("{i}");
        let b = keyed_builder(100, &[("a", Some(&v)), ("b", Some(&v)), (&v, Some(&v))])
            .build_compressed(*codec)
            .unwrap();
        log.append(&b, 0, None, 100).unwrap();
    }
    roll_segments(&mut log, 1, 100);
    clean(&mut log, 10_000).unwrap();
    let mut seen = Vec::new();
    let mut offset = 0;
    while offset < 12 {
        let data = log.read(offset, 1 << 20, i64::MAX).unwrap();
        for item in split_batches(&data) {
            let (h, range) = item.unwrap();
            if h.base_offset >= 12 {
                break;
            }
            let batch = data.slice(range);
            sluice_protocol::batch::check_integrity(&batch).unwrap();
            for r in decode_records(&batch, 1 << 20).unwrap() {
                let r = r.unwrap();
                assert_eq!(r.headers, vec![("h".to_string(), Some(Bytes::from("x")))]);
                seen.push((h.compression().unwrap(), r.offset, text(r.key).unwrap()));
            }
            offset = h.next_offset();
        }
    }
    assert_eq!(
        seen,
        vec![
            (Compression::Gzip, 2, "0".into()),
            (Compression::Snappy, 5, "1".into()),
            (Compression::Lz4, 8, "2".into()),
            (Compression::Zstd, 9, "a".into()),
            (Compression::Zstd, 10, "b".into()),
            (Compression::Zstd, 11, "3".into()),
        ]
    );
}

#[test]
fn cleaned_segments_are_merged_within_segment_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open_log(dir.path(), &compacted(400), false);
    write_updates(&mut log, 40, 400, 100);
    let before = log.segment_count();
    clean(&mut log, 10_000).unwrap();
    assert_eq!(
        log.segment_count(),
        before,
        "full segments are cleaned one by one"
    );
    roll_segments(&mut log, 1, 100);
    clean(&mut log, 10_000).unwrap();
    assert!(
        log.segment_count() * 3 < before,
        "{} of {before}",
        log.segment_count()
    );
    for file in log_files(dir.path()) {
        assert!(std::fs::metadata(&file).unwrap().len() <= 400, "{file:?}");
    }
    assert_eq!(
        files_with_extension(dir.path(), "cleaned").len()
            + files_with_extension(dir.path(), "swap").len(),
        0
    );
}

#[test]
fn a_log_changed_while_it_was_cleaned_keeps_its_segments() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open_log(dir.path(), &compacted(512), false);
    write_updates(&mut log, 4, 100, 100);
    let task = log.plan_cleaning(10_000, i64::MAX).unwrap().unwrap();
    let cleaned = task.run(1 << 20, &Unthrottled).unwrap();
    assert!(!files_with_extension(dir.path(), "cleaned").is_empty());
    let second = log.segment_count();
    let second_base = segment_base(&log_files(dir.path())[1]);
    log.delete_records_before(second_base).unwrap();
    assert_eq!(log.segment_count(), second - 1);
    let before = records(&log);
    assert_eq!(
        log.install_cleaned(cleaned, 10_000).unwrap(),
        CleanOutcome::Abandoned
    );
    assert_eq!(records(&log), before);
    assert!(files_with_extension(dir.path(), "cleaned").is_empty());
    assert_eq!(log.cleaner_checkpoint(), None);
}

/// An environment in which, once armed, the `n`-th operation that changes a file (and
/// every operation after it) fails: the process "dies" there and touches nothing more.
fn dying_at(n: usize) -> (Arc<StorageEnv>, Arc<AtomicBool>, Arc<AtomicUsize>) {
    let armed = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicUsize::new(0));
    let (a, c) = (armed.clone(), count.clone());
    let env = StorageEnv::with_faults(
        OpenFiles::unbounded(),
        Arc::new(move |op, _: &Path| {
            if !a.load(Ordering::SeqCst) {
                return Ok(());
            }
            let changes = !matches!(op, IoOp::Read | IoOp::ReadDir);
            let dead = c.load(Ordering::SeqCst) > n;
            if dead || (changes && c.fetch_add(1, Ordering::SeqCst) >= n) {
                c.store(usize::MAX, Ordering::SeqCst);
                return Err(io::Error::other("the process died here"));
            }
            Ok(())
        }),
    );
    (env, armed, count)
}

#[test]
fn a_crash_at_any_file_operation_of_a_cleaning_loses_no_live_key() {
    let config = compacted(600);
    let setup = |env: &Arc<StorageEnv>, dir: &Path| {
        let mut log = PartitionLog::open(dir, config.clone(), false, 0, env).unwrap();
        let mut written = write_updates(&mut log, 6, 60, 100);
        // A transaction aborted twice over, so markers and snapshots are rewritten too.
        log.append(
            &txn_batch(9, 0, 0, &[("k1", Some("aborted"))]),
            0,
            None,
            100,
        )
        .unwrap();
        log.append(&transaction_marker(9, 0, false, 0, 100), 0, None, 100)
            .unwrap();
        written.extend(write_updates(&mut log, 6, 30, 100));
        (log, written)
    };
    // How many file changes a whole cleaning makes.
    let total = {
        let dir = tempfile::tempdir().unwrap();
        let (env, armed, count) = dying_at(usize::MAX);
        let (mut log, _) = setup(&env, dir.path());
        armed.store(true, Ordering::SeqCst);
        clean(&mut log, 10_000).unwrap();
        count.load(Ordering::SeqCst)
    };
    assert!(total > 20, "{total}");
    for n in 0..=total {
        let dir = tempfile::tempdir().unwrap();
        let (env, armed, _) = dying_at(n);
        let (mut log, written) = setup(&env, dir.path());
        armed.store(true, Ordering::SeqCst);
        if let Ok(Some(task)) = log.plan_cleaning(10_000, i64::MAX)
            && let Ok(cleaned) = task.run(1 << 20, &Unthrottled)
        {
            let _ = log.install_cleaned(cleaned, 10_000);
        }
        drop(log);
        let log = open_log(dir.path(), &config, true);
        let got = committed_records(&log);
        let live = latest_per_key(&written);
        let got_latest = latest_per_key(&got);
        assert_eq!(got_latest, live, "crash at operation {n} of {total}");
        let by_offset: BTreeMap<i64, &Rec> = written.iter().map(|r| (r.offset, r)).collect();
        for r in &got {
            assert_eq!(by_offset.get(&r.offset), Some(&r), "crash at operation {n}");
        }
        assert_eq!(log.log_end_offset(), 92, "crash at operation {n}");
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.ends_with(".cleaned") || n.ends_with(".swap"))
            .collect();
        assert!(
            leftovers.is_empty(),
            "crash at operation {n}: {leftovers:?}"
        );
    }
}

/// One step of the model-based test.
#[derive(Debug, Clone)]
enum Op {
    /// A batch of plain keyed records (`None`: tombstone).
    Write(Vec<(u8, Option<u8>)>),
    /// A transactional batch of producer 1 (opens its transaction if none is open).
    TxnWrite(Vec<(u8, u8)>),
    /// Ends producer 1's open transaction, if any.
    TxnEnd { commit: bool },
    /// A cleaning, after time passed.
    Clean { advance_ms: i64 },
    /// A restart without clean shutdown.
    Reopen,
}

fn arb_op() -> impl Strategy<Value = Op> {
    let record = (0u8..6, proptest::option::weighted(0.85, any::<u8>()));
    prop_oneof![
        6 => proptest::collection::vec(record, 1..4).prop_map(Op::Write),
        2 => proptest::collection::vec((0u8..6, any::<u8>()), 1..3).prop_map(Op::TxnWrite),
        1 => any::<bool>().prop_map(|commit| Op::TxnEnd { commit }),
        2 => (0i64..2_000).prop_map(|advance_ms| Op::Clean { advance_ms }),
        1 => Just(Op::Reopen),
    ]
}

/// Writes and cleanings in any order keep, for the cleaned range, exactly the latest
/// committed record of each key (tombstones included: their retention is long here), and
/// every committed record after it; offsets only grow, and a read from any offset starts
/// at the next record there is.
#[derive(Default)]
struct Model {
    /// Committed records, in offset order.
    committed: Vec<Rec>,
    /// Producer 1's open transaction: its records so far.
    open_txn: Option<Vec<Rec>>,
    seq: i32,
    now: i64,
}

fn check_against(log: &PartitionLog, model: &Model, every_offset: bool) {
    let got = committed_records(log);
    let end = log.cleaner_checkpoint().unwrap_or(0);
    let (cleaned, tail): (Vec<Rec>, Vec<Rec>) = model
        .committed
        .iter()
        .cloned()
        .partition(|r| r.offset < end);
    let mut expected: Vec<Rec> = latest_per_key(&cleaned).into_values().collect();
    expected.sort();
    expected.extend(tail);
    assert_eq!(got, expected, "cleaned up to {end}");
    if !every_offset {
        return;
    }
    let present: Vec<i64> = records(log).iter().map(|r| r.offset).collect();
    for from in 0..log.log_end_offset() {
        let first = batches_from(log, from)
            .into_iter()
            .filter(|(h, _)| !h.is_control())
            .flat_map(|(_, r)| r)
            .map(|r| r.offset)
            .find(|o| *o >= from);
        assert_eq!(
            first,
            present.iter().copied().find(|o| *o >= from),
            "from {from}"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]
    #[test]
    fn prop_cleaning_keeps_the_latest_committed_record_of_each_key(
        ops in proptest::collection::vec(arb_op(), 1..60),
        segment_bytes in 250u64..900,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let mut config = compacted(segment_bytes);
        config.compaction.as_mut().unwrap().delete_retention_ms = i64::MAX / 4;
        let mut log = open_log(dir.path(), &config, false);
        let mut model = Model { now: 1_000, ..Model::default() };
        for op in ops {
            match op {
                Op::Write(recs) => {
                    let recs: Vec<(String, Option<String>)> = recs
                        .into_iter()
                        .map(|(k, v)| (format!("k{k}"), v.map(|v| format!("v{v}"))))
                        .collect();
                    let refs: Vec<(&str, Option<&str>)> =
                        recs.iter().map(|(k, v)| (k.as_str(), v.as_deref())).collect();
                    let base = log.log_end_offset();
                    log.append(&keyed(model.now, &refs), 0, None, model.now).unwrap();
                    for (i, (key, value)) in recs.into_iter().enumerate() {
                        let rec = Rec { offset: base + i as i64, key, value };
                        model.committed.push(rec);
                    }
                }
                Op::TxnWrite(recs) => {
                    let recs: Vec<(String, String)> = recs
                        .into_iter()
                        .map(|(k, v)| (format!("k{k}"), format!("t{v}")))
                        .collect();
                    let refs: Vec<(&str, Option<&str>)> =
                        recs.iter().map(|(k, v)| (k.as_str(), Some(v.as_str()))).collect();
                    let base = log.log_end_offset();
                    let b = keyed_builder(model.now, &refs)
                        .producer(1, 0, model.seq)
                        .transactional(true)
                        .build();
                    log.append(&b, 0, None, model.now).unwrap();
                    model.seq += recs.len() as i32;
                    let open = model.open_txn.get_or_insert_with(Vec::new);
                    for (i, (key, value)) in recs.into_iter().enumerate() {
                        open.push(Rec { offset: base + i as i64, key, value: Some(value) });
                    }
                }
                Op::TxnEnd { commit } => {
                    if let Some(records) = model.open_txn.take() {
                        let marker = transaction_marker(1, 0, commit, 0, model.now);
                        log.append(&marker, 0, None, model.now).unwrap();
                        if commit {
                            model.committed.extend(records);
                            model.committed.sort();
                        }
                    }
                }
                Op::Clean { advance_ms } => {
                    model.now += advance_ms;
                    clean(&mut log, model.now);
                    if model.open_txn.is_none() {
                        check_against(&log, &model, false);
                    }
                }
                Op::Reopen => {
                    drop(log);
                    log = open_log(dir.path(), &config, true);
                }
            }
        }
        if let Some(records) = model.open_txn.take() {
            log.append(&transaction_marker(1, 0, true, 0, model.now), 0, None, model.now).unwrap();
            model.committed.extend(records);
            model.committed.sort();
        }
        check_against(&log, &model, true);
    }
}

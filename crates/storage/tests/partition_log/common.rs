//! Helpers shared by the storage integration tests.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use sluice_protocol::batch::{
    RecordBatchBuilder, set_base_offset, set_partition_leader_epoch, split_batches,
};
use sluice_protocol::records::decode_records;
use sluice_storage::{LogConfig, PartitionLog, StorageEnv};

/// A small config so that rolls and index entries happen with little data; no time-based
/// roll or retention unless a test asks for it.
pub fn small_config() -> LogConfig {
    LogConfig {
        segment_bytes: 4096,
        segment_ms: None,
        retention_ms: None,
        retention_bytes: None,
        index_interval_bytes: 256,
        max_index_bytes: 1 << 20,
        producer_id_expiration_ms: 24 * 60 * 60 * 1000,
        compaction: None,
    }
}

/// A batch of `count` records with values `tag-i` of `value_len` bytes and timestamps
/// `ts, ts+1, …`.
pub fn batch(count: usize, ts: i64, value_len: usize) -> Vec<u8> {
    let mut b = RecordBatchBuilder::new();
    for i in 0..count {
        let mut value = format!("v{i}-").into_bytes();
        value.resize(value_len.max(value.len()), b'x');
        b.push(
            ts + i as i64,
            Some(format!("k{i}").as_bytes()),
            Some(&value),
            &[],
        );
    }
    b.build()
}

/// A batch whose records carry the given timestamps.
/// `batch` as the log stores it after an append at `base_offset` with `leader_epoch`: the
/// client's bytes with those two header fields set (both outside the CRC).
pub fn stamped(batch: &[u8], base_offset: i64, leader_epoch: i32) -> Vec<u8> {
    let mut stored = batch.to_vec();
    set_base_offset(&mut stored, base_offset).unwrap();
    set_partition_leader_epoch(&mut stored, leader_epoch).unwrap();
    stored
}

pub fn batch_with_timestamps(timestamps: &[i64]) -> Vec<u8> {
    let mut b = RecordBatchBuilder::new();
    for (i, ts) in timestamps.iter().enumerate() {
        b.push(*ts, None, Some(format!("r{i}").as_bytes()), &[]);
    }
    b.build()
}

/// Every record of the log as (offset, timestamp), read with fetches of `max_bytes`.
pub fn all_records(log: &PartitionLog, max_bytes: usize) -> Vec<(i64, i64)> {
    let mut out = Vec::new();
    let mut offset = log.log_start_offset();
    while offset < log.log_end_offset() {
        let data = log.read(offset, max_bytes, i64::MAX).unwrap();
        assert!(!data.is_empty(), "empty read at {offset}");
        for item in split_batches(&data) {
            let (_, range) = item.unwrap();
            let batch = data.slice(range);
            for rec in decode_records(&batch, 1 << 24).unwrap() {
                let rec = rec.unwrap();
                if rec.offset >= offset {
                    out.push((rec.offset, rec.timestamp));
                }
            }
        }
        offset = out.last().map_or(offset, |r| r.0 + 1);
    }
    out
}

/// Base and last offsets of the batches in a read result.
pub fn batch_offsets(data: &Bytes) -> Vec<(i64, i64)> {
    split_batches(data)
        .map(|r| {
            let (h, _) = r.unwrap();
            (h.base_offset, h.last_offset())
        })
        .collect()
}

pub fn log_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    v.sort();
    v
}

pub fn files_with_extension(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == ext))
        .collect();
    v.sort();
    v
}

/// A batch of an idempotent (or, with `transactional`, transactional) producer.
pub fn producer_batch(
    producer_id: i64,
    epoch: i16,
    seq: i32,
    records: usize,
    transactional: bool,
) -> Vec<u8> {
    let mut b = RecordBatchBuilder::new()
        .producer(producer_id, epoch, seq)
        .transactional(transactional);
    for i in 0..records {
        b.push(
            1_000 + i as i64,
            None,
            Some(format!("p{producer_id}-{seq}-{i}").as_bytes()),
            &[],
        );
    }
    b.build()
}

/// Every stored byte of the log, read batch by batch from its start.
pub fn all_bytes(log: &PartitionLog) -> Vec<u8> {
    let mut out = Vec::new();
    let mut offset = log.log_start_offset();
    while offset < log.log_end_offset() {
        let data = log.read(offset, 1 << 20, i64::MAX).unwrap();
        offset = batch_offsets(&data).last().unwrap().1 + 1;
        out.extend_from_slice(&data);
    }
    out
}

/// The producer state as comparable values: (id, epoch, batches as (first seq, last seq,
/// first offset, last offset), open transaction), by producer id.
pub type ProducerView = Vec<(i64, i16, Vec<(i32, i32, i64, i64)>, Option<i64>)>;

pub fn producer_view(log: &PartitionLog) -> ProducerView {
    let mut v: ProducerView = log
        .producer_state()
        .iter()
        .map(|(id, e)| {
            let batches = e
                .batches
                .iter()
                .map(|b| (b.first_seq, b.last_seq, b.first_offset, b.last_offset))
                .collect();
            (id, e.epoch, batches, e.ongoing_txn_first_offset)
        })
        .collect();
    v.sort_by_key(|p| p.0);
    v
}

/// Leader epochs as (epoch, start offset).
pub fn epochs(log: &PartitionLog) -> Vec<(i32, i64)> {
    log.leader_epochs()
        .entries()
        .iter()
        .map(|e| (e.epoch, e.start_offset))
        .collect()
}

/// Opens (or creates) a log in `dir` in a fresh unbounded environment.
pub fn open_log(dir: &Path, config: &LogConfig, recover: bool) -> PartitionLog {
    PartitionLog::open(dir, config.clone(), recover, 0, &StorageEnv::unbounded()).unwrap()
}

pub fn snapshot_files(dir: &Path) -> Vec<i64> {
    files_with_extension(dir, "snapshot")
        .iter()
        .map(|p| p.file_stem().unwrap().to_str().unwrap().parse().unwrap())
        .collect()
}

/// The base offset a segment file is named by.
pub fn segment_base(path: &Path) -> i64 {
    path.file_stem().unwrap().to_str().unwrap().parse().unwrap()
}

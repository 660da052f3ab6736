//! Producer-state snapshots (Kafka's `ProducerStateManager` snapshots): the idempotent and
//! transactional producer state and the aborted transactions of a partition as of an
//! offset, written when a segment is rolled, at the new segment's base offset.
//!
//! Opening a log loads the latest snapshot and replays only the batches after it, instead
//! of every batch of the log; truncating a log (a follower cut back to its leader) restores
//! the state at the cut the same way. A snapshot stays while its offset is within the log:
//! retention deletes those below the first segment (the one at its base remains), truncation
//! those past the new end.
//!
//! File `<offset, 20 digits>.snapshot`, big-endian:
//!
//! ```text
//! u16 version (1) | u32 CRC-32C of everything after it | i64 offset
//! u32 producers, each: i64 producer id | i16 epoch | i64 last timestamp
//!                      | i64 first offset of its open transaction (-1: none)
//!                      | u8 batches (≤ 5), each: i32 first seq | i32 last seq
//!                                                | i64 first offset | i64 last offset
//!                                                | i64 max timestamp
//! u32 aborted transactions, each: i64 producer id | i64 first offset | i64 marker offset
//! ```
//!
//! Snapshots are written atomically but not synced: a torn or missing one is detected (CRC,
//! offset) and an older one, or a full replay, is used instead.

use std::path::{Path, PathBuf};

use bytes::{Buf, BufMut};

use crate::error::StorageError;
use crate::io::StorageEnv;
use crate::producer_state::{
    BatchMetadata, CompletedTxn, MAX_CACHED_BATCHES, ProducerEntry, ProducerStateManager,
};

const EXTENSION: &str = "snapshot";
const VERSION: u16 = 1;
/// Version and CRC.
const PREFIX_LEN: usize = 6;
const PRODUCER_LEN: usize = 8 + 2 + 8 + 8 + 1;
const BATCH_LEN: usize = 4 + 4 + 8 + 8 + 8;
const TXN_LEN: usize = 8 + 8 + 8;
/// A bound on what is read back: millions of producers.
const MAX_FILE_BYTES: u64 = 1 << 30;

/// The producer state and aborted transactions of a partition below `offset`.
#[derive(Debug, Clone)]
pub(crate) struct ProducerSnapshot {
    pub(crate) offset: i64,
    pub(crate) producers: ProducerStateManager,
    pub(crate) aborted: Vec<CompletedTxn>,
}

pub(crate) fn file_name(offset: i64) -> String {
    format!("{offset:020}.{EXTENSION}")
}

fn path(dir: &Path, offset: i64) -> PathBuf {
    dir.join(file_name(offset))
}

/// The offset a snapshot file is named by.
pub(crate) fn parse_file_name(name: &str) -> Option<i64> {
    crate::segment::parse_file_name(name, EXTENSION)
}

impl ProducerSnapshot {
    /// Writes the snapshot file (atomically, not synced).
    pub(crate) fn write(
        env: &StorageEnv,
        dir: &Path,
        offset: i64,
        producers: &ProducerStateManager,
        aborted: &[CompletedTxn],
    ) -> Result<(), StorageError> {
        let bytes = encode(offset, producers, aborted);
        env.write_file_atomic(&path(dir, offset), &bytes, false)?;
        Ok(())
    }

    /// Writes this snapshot back atomically and durably (the log cleaner's edits must not
    /// be undone by a crash, see [`crate::cleaner::swap`]).
    pub(crate) fn write_durably(&self, env: &StorageEnv, dir: &Path) -> Result<(), StorageError> {
        let bytes = encode(self.offset, &self.producers, &self.aborted);
        env.write_file_atomic(&path(dir, self.offset), &bytes, true)?;
        Ok(())
    }

    /// Reads the snapshot at `offset`; `Ok(None)` when it is missing, torn or malformed
    /// (with a warning), so the caller falls back to an older one.
    pub(crate) fn read(
        env: &StorageEnv,
        dir: &Path,
        offset: i64,
    ) -> Result<Option<Self>, StorageError> {
        let path = path(dir, offset);
        let bytes = match env.read_small_file(&path, MAX_FILE_BYTES) {
            Ok(Some(bytes)) => bytes,
            Ok(None) => return Ok(None),
            Err(e) if e.kind() == std::io::ErrorKind::InvalidData => Vec::new(),
            Err(e) => return Err(e.into()),
        };
        let snapshot = decode(&bytes).filter(|s| s.offset == offset);
        if snapshot.is_none() {
            tracing::warn!(path = %path.display(), "ignoring a damaged producer-state snapshot");
        }
        Ok(snapshot)
    }

    pub(crate) fn delete(env: &StorageEnv, dir: &Path, offset: i64) -> Result<(), StorageError> {
        env.remove_file(&path(dir, offset))?;
        Ok(())
    }
}

fn encode(offset: i64, producers: &ProducerStateManager, aborted: &[CompletedTxn]) -> Vec<u8> {
    let mut entries: Vec<(i64, &ProducerEntry)> = producers.iter().collect();
    entries.sort_unstable_by_key(|(id, _)| *id);
    let mut body = Vec::with_capacity(
        8 + 4
            + entries.len() * (PRODUCER_LEN + MAX_CACHED_BATCHES * BATCH_LEN)
            + 4
            + aborted.len() * TXN_LEN,
    );
    body.put_i64(offset);
    body.put_u32(u32::try_from(entries.len()).unwrap_or(u32::MAX));
    for (id, entry) in entries {
        body.put_i64(id);
        body.put_i16(entry.epoch);
        body.put_i64(entry.last_timestamp);
        body.put_i64(entry.ongoing_txn_first_offset.unwrap_or(-1));
        let batches = entry.batches.iter().rev().take(MAX_CACHED_BATCHES).rev();
        body.put_u8(u8::try_from(batches.len()).unwrap_or(0));
        for b in batches {
            body.put_i32(b.first_seq);
            body.put_i32(b.last_seq);
            body.put_i64(b.first_offset);
            body.put_i64(b.last_offset);
            body.put_i64(b.max_timestamp);
        }
    }
    body.put_u32(u32::try_from(aborted.len()).unwrap_or(u32::MAX));
    for txn in aborted {
        body.put_i64(txn.producer_id);
        body.put_i64(txn.first_offset);
        body.put_i64(txn.last_offset);
    }
    let mut out = Vec::with_capacity(PREFIX_LEN + body.len());
    out.put_u16(VERSION);
    out.put_u32(crc32c::crc32c(&body));
    out.extend_from_slice(&body);
    out
}

/// Decodes a snapshot file; `None` on any damage. Counts are checked against the bytes
/// left before anything is allocated for them.
fn decode(bytes: &[u8]) -> Option<ProducerSnapshot> {
    let mut buf = bytes;
    if buf.try_get_u16().ok()? != VERSION {
        return None;
    }
    let crc = buf.try_get_u32().ok()?;
    if crc32c::crc32c(buf) != crc {
        return None;
    }
    let offset = buf.try_get_i64().ok()?;
    let producer_count = counted(&mut buf, PRODUCER_LEN)?;
    let mut entries = Vec::with_capacity(producer_count);
    for _ in 0..producer_count {
        entries.push(decode_producer(&mut buf)?);
    }
    let txn_count = counted(&mut buf, TXN_LEN)?;
    let mut aborted = Vec::with_capacity(txn_count);
    for _ in 0..txn_count {
        aborted.push(CompletedTxn {
            producer_id: buf.try_get_i64().ok()?,
            first_offset: buf.try_get_i64().ok()?,
            last_offset: buf.try_get_i64().ok()?,
            aborted: true,
        });
    }
    if buf.has_remaining() || offset < 0 {
        return None;
    }
    Some(ProducerSnapshot {
        offset,
        producers: ProducerStateManager::from_entries(entries),
        aborted,
    })
}

/// Reads a u32 count of items at least `item_len` bytes long each; `None` when the bytes
/// left cannot hold them.
fn counted(buf: &mut &[u8], item_len: usize) -> Option<usize> {
    let count = usize::try_from(buf.try_get_u32().ok()?).ok()?;
    (count.checked_mul(item_len)? <= buf.remaining()).then_some(count)
}

fn decode_producer(buf: &mut &[u8]) -> Option<(i64, ProducerEntry)> {
    let id = buf.try_get_i64().ok()?;
    let epoch = buf.try_get_i16().ok()?;
    let last_timestamp = buf.try_get_i64().ok()?;
    let ongoing = buf.try_get_i64().ok()?;
    let batch_count = usize::from(buf.try_get_u8().ok()?);
    if batch_count > MAX_CACHED_BATCHES {
        return None;
    }
    let mut batches = std::collections::VecDeque::with_capacity(batch_count);
    for _ in 0..batch_count {
        batches.push_back(BatchMetadata {
            first_seq: buf.try_get_i32().ok()?,
            last_seq: buf.try_get_i32().ok()?,
            first_offset: buf.try_get_i64().ok()?,
            last_offset: buf.try_get_i64().ok()?,
            max_timestamp: buf.try_get_i64().ok()?,
        });
    }
    let entry = ProducerEntry {
        epoch,
        batches,
        last_timestamp,
        ongoing_txn_first_offset: (ongoing >= 0).then_some(ongoing),
    };
    Some((id, entry))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]

    use proptest::prelude::*;
    use sluice_protocol::batch::{BatchHeader, RecordBatchBuilder};

    use super::*;

    fn header(pid: i64, epoch: i16, seq: i32, records: usize, base: i64, txn: bool) -> BatchHeader {
        let mut b = RecordBatchBuilder::new()
            .producer(pid, epoch, seq)
            .transactional(txn);
        for i in 0..records {
            b.push(100 + i as i64, None, Some(b"v"), &[]);
        }
        let mut h = BatchHeader::parse(&b.build()).unwrap();
        h.base_offset = base;
        h
    }

    fn sample() -> (ProducerStateManager, Vec<CompletedTxn>) {
        let mut p = ProducerStateManager::new();
        for i in 0..7 {
            p.record(&header(1, 0, i * 2, 2, i64::from(i) * 2, false));
        }
        p.record(&header(2, 3, 0, 1, 20, true));
        p.record(&header(-1, -1, -1, 1, 21, false)); // not idempotent: not recorded
        let aborted = vec![CompletedTxn {
            producer_id: 9,
            first_offset: 3,
            last_offset: 8,
            aborted: true,
        }];
        (p, aborted)
    }

    fn state(p: &ProducerStateManager) -> Vec<(i64, ProducerEntry)> {
        let mut v: Vec<_> = p.iter().map(|(id, e)| (id, e.clone())).collect();
        v.sort_by_key(|(id, _)| *id);
        v
    }

    #[test]
    fn round_trip() {
        let (producers, aborted) = sample();
        let bytes = encode(42, &producers, &aborted);
        let back = decode(&bytes).unwrap();
        assert_eq!(back.offset, 42);
        assert_eq!(state(&back.producers), state(&producers));
        assert_eq!(back.producers.producer(1).unwrap().batches.len(), 5);
        assert_eq!(
            back.producers.producer(2).unwrap().ongoing_txn_first_offset,
            Some(20)
        );
        assert_eq!(back.aborted, aborted);
        let empty = decode(&encode(0, &ProducerStateManager::new(), &[])).unwrap();
        assert!(empty.producers.is_empty() && empty.aborted.is_empty());
    }

    #[test]
    fn every_damage_is_detected() {
        let (producers, aborted) = sample();
        let bytes = encode(42, &producers, &aborted);
        for pos in 0..bytes.len() {
            let mut b = bytes.clone();
            b[pos] ^= 0x01;
            assert!(decode(&b).is_none(), "flip at {pos}");
        }
        for len in 0..bytes.len() {
            assert!(decode(&bytes[..len]).is_none(), "cut at {len}");
        }
    }

    #[test]
    fn files_by_offset() {
        let dir = tempfile::tempdir().unwrap();
        let env = StorageEnv::unbounded();
        let (producers, aborted) = sample();
        ProducerSnapshot::write(&env, dir.path(), 42, &producers, &aborted).unwrap();
        assert_eq!(file_name(42), "00000000000000000042.snapshot");
        assert_eq!(parse_file_name(&file_name(42)), Some(42));
        assert_eq!(parse_file_name("00000000000000000042.log"), None);
        let read = ProducerSnapshot::read(&env, dir.path(), 42)
            .unwrap()
            .unwrap();
        assert_eq!(state(&read.producers), state(&producers));
        assert!(
            ProducerSnapshot::read(&env, dir.path(), 7)
                .unwrap()
                .is_none()
        );
        // A file whose content names another offset is not trusted.
        std::fs::rename(path(dir.path(), 42), path(dir.path(), 7)).unwrap();
        assert!(
            ProducerSnapshot::read(&env, dir.path(), 7)
                .unwrap()
                .is_none()
        );
        ProducerSnapshot::delete(&env, dir.path(), 7).unwrap();
        assert!(!path(dir.path(), 7).exists());
    }

    proptest! {
        #[test]
        fn garbage_never_panics(data in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = decode(&data);
        }
    }
}

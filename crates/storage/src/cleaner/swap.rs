//! Swapping cleaned segments in, crash-safely (Kafka's `.cleaned` and `.swap` files).
//!
//! A cleaned segment is written and synced as `<base>.log.cleaned` (indexes
//! `<base>.index.cleaned`, `<base>.timeindex.cleaned`). To install it, under the log's lock:
//!
//! 1. its files are renamed to `.swap` (indexes first, the log last) and the directory is
//!    synced: from here on the swap happens, whatever comes;
//! 2. the segments it replaces are deleted — every segment whose base lies in
//!    `[base, end)`, `end` being where the swap segment's last batch ends (the cleaner keeps
//!    each group's last batch, so that is the base of the segment after them);
//! 3. its files are renamed to their final names (indexes first, the log last) and the
//!    directory is synced again.
//!
//! Opening a log (`recover`) removes `.cleaned` files (a cleaning that never committed)
//! and finishes every `.log.swap` by steps 2 and 3; index `.swap` files without their log
//! are left over from step 3 and removed. Indexes are rebuilt from the log when missing.

use std::path::Path;
use std::sync::Arc;

use sluice_protocol::batch::{BATCH_HEADER_LEN, BatchHeader};

use crate::error::StorageError;
use crate::io::{DataFile, StorageEnv};
use crate::segment::{self, CLEANED_SUFFIX, SWAP_SUFFIX, SegmentFileKind, segment_file_path};

/// Renames the files of the segment at `base` from one suffix to another: the indexes
/// first (they may be missing), the log last, so a log under the new name has its
/// indexes there too, or none.
pub(crate) fn rename_segment(
    env: &StorageEnv,
    dir: &Path,
    base: i64,
    from: &str,
    to: &str,
) -> Result<(), StorageError> {
    for kind in [SegmentFileKind::Index, SegmentFileKind::TimeIndex] {
        let source = segment_file_path(dir, base, kind, from);
        match env.rename(&source, &segment_file_path(dir, base, kind, to)) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            other => other?,
        }
    }
    env.rename(
        &segment_file_path(dir, base, SegmentFileKind::Log, from),
        &segment_file_path(dir, base, SegmentFileKind::Log, to),
    )?;
    Ok(())
}

/// Commits cleaned segments: step 1 for each of `bases`.
pub(crate) fn commit(env: &StorageEnv, dir: &Path, bases: &[i64]) -> Result<(), StorageError> {
    for &base in bases {
        rename_segment(env, dir, base, CLEANED_SUFFIX, SWAP_SUFFIX)?;
    }
    env.sync_dir(dir)?;
    Ok(())
}

/// Finishes what a cleaning left in `dir` when the process stopped (see the module docs).
/// Called before the segments are listed.
pub(crate) fn recover(env: &Arc<StorageEnv>, dir: &Path) -> Result<(), StorageError> {
    let names = env.list_dir(dir)?;
    let mut changed = false;
    for name in names.iter().filter(|n| n.ends_with(CLEANED_SUFFIX)) {
        env.remove_file(&dir.join(name))?;
        changed = true;
    }
    let mut swaps: Vec<i64> = names
        .iter()
        .filter_map(|n| n.strip_suffix(SWAP_SUFFIX))
        .filter_map(|n| segment::parse_file_name(n, "log"))
        .collect();
    swaps.sort_unstable();
    let mut logs: Vec<i64> = names
        .iter()
        .filter_map(|n| segment::parse_file_name(n, "log"))
        .collect();
    logs.sort_unstable();
    for base in swaps {
        finish_swap(env, dir, base, &logs)?;
        changed = true;
    }
    for name in env
        .list_dir(dir)?
        .iter()
        .filter(|n| n.ends_with(SWAP_SUFFIX))
    {
        tracing::info!(dir = %dir.display(), file = %name, "removing an index left over from a swap");
        env.remove_file(&dir.join(name))?;
        changed = true;
    }
    if changed {
        env.sync_dir(dir)?;
    }
    Ok(())
}

/// Steps 2 and 3 for the swap segment at `base`, given the bases of the `.log` files.
fn finish_swap(
    env: &Arc<StorageEnv>,
    dir: &Path,
    base: i64,
    logs: &[i64],
) -> Result<(), StorageError> {
    let swap = segment_file_path(dir, base, SegmentFileKind::Log, SWAP_SUFFIX);
    let Some(end) = end_offset(env, &swap)? else {
        // Written and synced before it was renamed, so this is damage after the fact:
        // keep the segments it was made from.
        tracing::error!(path = %swap.display(), "ignoring a cleaned segment that holds no readable batch");
        for kind in SegmentFileKind::ALL {
            env.remove_file(&segment_file_path(dir, base, kind, SWAP_SUFFIX))?;
        }
        return Ok(());
    };
    tracing::info!(dir = %dir.display(), base, end, "finishing the swap of a cleaned segment");
    for &replaced in logs.iter().filter(|b| (base..end).contains(*b)) {
        segment::delete_files(env, dir, replaced)?;
    }
    rename_segment(env, dir, base, SWAP_SUFFIX, "")
}

/// The offset after the last whole batch of the segment file at `path`, `None` when it
/// holds none.
fn end_offset(env: &Arc<StorageEnv>, path: &Path) -> Result<Option<i64>, StorageError> {
    let file = DataFile::open(path, false, env)?;
    let size = file.len()?;
    let mut position = 0u64;
    let mut end = None;
    let mut header = [0u8; BATCH_HEADER_LEN];
    while position.saturating_add(BATCH_HEADER_LEN as u64) <= size {
        file.read_exact_at(&mut header, position)?;
        let Ok(h) = BatchHeader::parse(&header) else {
            break;
        };
        position = position.saturating_add(h.total_len() as u64);
        if position > size {
            break;
        }
        end = Some(h.next_offset());
    }
    Ok(end)
}

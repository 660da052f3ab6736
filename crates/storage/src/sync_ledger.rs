//! A test mode for simulating a power loss: what each log file held at its last completed
//! sync, recorded as the broker runs, so that a fault harness can cut every file back to it.
//!
//! kill -9 loses nothing a process wrote: the kernel's page cache keeps it and writes it
//! back later. A power loss also loses every write that no completed fsync covered. Sluice
//! acknowledges an acks=all record only once it is synced on every in-sync replica, so a
//! power loss of every node at once must lose no acknowledged record; this mode tests that.
//!
//! With `SLUICE_FAULT_SYNC_LEDGER=<file>` ([`ENV`]), `sluice serve` calls [`record_to`] before it opens
//! its logs, and from then on every segment data file's creation, sync, truncation, rename
//! and removal appends one line to the ledger. Lines are written with one `write` each, at
//! once, so the ledger survives kill -9 like any other page in the cache. After killing the
//! process, [`lose_unsynced`] replays the ledger and truncates each file to the length its
//! last completed sync covered: the disk as a power loss may leave it.
//!
//! The model is the data files' contents only, which is what acknowledgements depend on.
//! Small files replaced atomically (checkpoints, indexes, snapshots) keep whichever version
//! they had, which a power loss may also leave; a file keeps its name even when its
//! directory entry was not yet synced (an empty file then, which recovery treats as a
//! missing one); the metadata quorum's log is not covered (it syncs every append before it
//! reports it written, so only an append in flight at the kill could differ).
//!
//! Line format, one operation per line, fields separated by tabs, paths absolute:
//! `C path` created empty; `B path len` a sync begins while the file holds `len` bytes;
//! `S path` the sync that began last completed; `T path len` truncated to `len`;
//! `R from to` renamed; `D path` removed.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use parking_lot::Mutex;

/// The environment variable that turns the mode on for `sluice serve`, naming the ledger.
pub const ENV: &str = "SLUICE_FAULT_SYNC_LEDGER";

/// The ledger this process appends to, when the mode is on.
static LEDGER: OnceLock<Mutex<File>> = OnceLock::new();

/// Turns the mode on for this process: every later file operation of the logs is recorded
/// in `path` (appended to; a ledger of an earlier run of the same data dir stays valid).
/// Call it before opening any log.
pub fn record_to(path: &Path) -> io::Result<()> {
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(crate::io::on(path))?;
    LEDGER
        .set(Mutex::new(file))
        .map_err(|_| io::Error::other("the sync ledger is already being recorded"))
}

/// Whether this process records a ledger.
pub(crate) fn enabled() -> bool {
    LEDGER.get().is_some()
}

/// Appends one line. A line that cannot be written would make a later simulated power
/// loss drop data that was synced, and the run report losses that did not happen: the
/// process stops instead.
fn append(line: std::fmt::Arguments<'_>) {
    let Some(ledger) = LEDGER.get() else { return };
    let text = format!("{line}\n");
    if let Err(e) = ledger.lock().write_all(text.as_bytes()) {
        tracing::error!(error = %e, "cannot append to the sync ledger ({ENV}); stopping");
        std::process::abort();
    }
}

fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

/// A data file was created empty.
pub(crate) fn created(path: &Path) {
    if enabled() {
        append(format_args!("C\t{}", absolute(path).display()));
    }
}

/// A sync of the data file at `path` is about to begin: what it holds now is what the
/// sync covers once [`sync_completed`] is recorded.
pub(crate) fn sync_begins(path: &Path) {
    if !enabled() {
        return;
    }
    match std::fs::metadata(path) {
        Ok(meta) => append(format_args!(
            "B\t{}\t{}",
            absolute(path).display(),
            meta.len()
        )),
        Err(e) => {
            tracing::error!(path = %path.display(), error = %e, "cannot read a log file's length for the sync ledger; stopping");
            std::process::abort();
        }
    }
}

/// The sync begun last for `path` completed.
pub(crate) fn sync_completed(path: &Path) {
    if enabled() {
        append(format_args!("S\t{}", absolute(path).display()));
    }
}

/// A data file was truncated (or extended) to `len`.
pub(crate) fn truncated(path: &Path, len: u64) {
    if enabled() {
        append(format_args!("T\t{}\t{len}", absolute(path).display()));
    }
}

/// A data file was renamed.
pub(crate) fn renamed(from: &Path, to: &Path) {
    if enabled() {
        append(format_args!(
            "R\t{}\t{}",
            absolute(from).display(),
            absolute(to).display()
        ));
    }
}

/// A data file was removed.
pub(crate) fn removed(path: &Path) {
    if enabled() {
        append(format_args!("D\t{}", absolute(path).display()));
    }
}

/// What a file holds durably, as the ledger tells it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Durability {
    /// Bytes a completed sync covered.
    synced: u64,
    /// The length at the start of a sync that has not completed.
    pending: Option<u64>,
}

/// Replays ledger text: each file's synced length. A line that cannot be read is an error
/// naming it (the ledger is only ever appended whole lines; a cut last line is skipped).
fn replay(text: &str) -> Result<HashMap<PathBuf, u64>, String> {
    let mut files: HashMap<PathBuf, Durability> = HashMap::new();
    let complete = match text.rfind('\n') {
        Some(end) => text.get(..end).unwrap_or_default(),
        None => "",
    };
    for (number, line) in complete.lines().enumerate() {
        let bad = || format!("line {}: cannot read {line:?}", number + 1);
        let fields: Vec<&str> = line.split('\t').collect();
        let len = |field: Option<&&str>| -> Result<u64, String> {
            field.and_then(|f| f.parse().ok()).ok_or_else(bad)
        };
        match fields.as_slice() {
            ["C", path] => {
                files.insert(PathBuf::from(path), Durability::default());
            }
            ["B", path, _] => {
                let pending = len(fields.get(2))?;
                files.entry(PathBuf::from(path)).or_default().pending = Some(pending);
            }
            ["S", path] => {
                let file = files.entry(PathBuf::from(path)).or_default();
                if let Some(pending) = file.pending.take() {
                    file.synced = file.synced.max(pending);
                }
            }
            ["T", path, _] => {
                let to = len(fields.get(2))?;
                let file = files.entry(PathBuf::from(path)).or_default();
                file.synced = file.synced.min(to);
                file.pending = file.pending.map(|p| p.min(to));
            }
            ["R", from, to] => match files.remove(Path::new(from)) {
                Some(file) => {
                    files.insert(PathBuf::from(to), file);
                }
                None => {
                    files.remove(Path::new(to));
                }
            },
            ["D", path] => {
                files.remove(Path::new(path));
            }
            _ => return Err(bad()),
        }
    }
    Ok(files
        .into_iter()
        .map(|(path, file)| (path, file.synced))
        .collect())
}

/// What [`lose_unsynced`] dropped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Lost {
    /// Files cut shorter.
    pub files: usize,
    /// Bytes cut off them.
    pub bytes: u64,
}

/// Simulates a power loss of a stopped broker that recorded `ledger`: every data file it
/// names is truncated to what its last completed sync covered. Files the ledger does not
/// name (or that are gone) are left alone. Run it only while the broker is stopped.
pub fn lose_unsynced(ledger: &Path) -> io::Result<Lost> {
    let text = std::fs::read_to_string(ledger).map_err(crate::io::on(ledger))?;
    let synced = replay(&text).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: {e}", ledger.display()),
        )
    })?;
    let mut lost = Lost::default();
    for (path, synced) in synced {
        let file = match OpenOptions::new().write(true).open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(crate::io::on(&path)(e)),
        };
        let len = file.metadata().map_err(crate::io::on(&path))?.len();
        if len > synced {
            file.set_len(synced).map_err(crate::io::on(&path))?;
            lost.files += 1;
            lost.bytes += len - synced;
        }
    }
    Ok(lost)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn synced_of(text: &str) -> Vec<(String, u64)> {
        let mut files: Vec<(String, u64)> = replay(text)
            .unwrap()
            .into_iter()
            .map(|(p, s)| (p.display().to_string(), s))
            .collect();
        files.sort();
        files
    }

    #[test]
    fn a_completed_sync_covers_what_the_file_held_when_it_began() {
        let text = "C\t/d/a.log\nB\t/d/a.log\t100\nS\t/d/a.log\nB\t/d/a.log\t250\n";
        assert_eq!(synced_of(text), vec![("/d/a.log".into(), 100)]);
    }

    #[test]
    fn a_truncation_cuts_the_synced_length_and_a_sync_in_flight() {
        let text = "C\t/d/a.log\nB\t/d/a.log\t100\nS\t/d/a.log\nB\t/d/a.log\t180\n\
                    T\t/d/a.log\t40\nS\t/d/a.log\n";
        assert_eq!(synced_of(text), vec![("/d/a.log".into(), 40)]);
    }

    #[test]
    fn a_rename_moves_the_durability_and_a_removal_forgets_it() {
        let text = "C\t/d/a.log.cleaned\nB\t/d/a.log.cleaned\t70\nS\t/d/a.log.cleaned\n\
                    C\t/d/a.log\nB\t/d/a.log\t500\nS\t/d/a.log\n\
                    R\t/d/a.log.cleaned\t/d/a.log\nC\t/d/b.log\nD\t/d/b.log\n";
        assert_eq!(synced_of(text), vec![("/d/a.log".into(), 70)]);
    }

    #[test]
    fn a_recreated_file_starts_with_nothing_durable() {
        let text = "C\t/d/a.log\nB\t/d/a.log\t100\nS\t/d/a.log\nD\t/d/a.log\nC\t/d/a.log\n";
        assert_eq!(synced_of(text), vec![("/d/a.log".into(), 0)]);
    }

    #[test]
    fn a_cut_last_line_is_skipped_and_a_bad_line_is_an_error() {
        assert_eq!(
            synced_of("C\t/d/a.log\nB\t/d/a.log\t9\nS\t/d/a.lo"),
            vec![("/d/a.log".into(), 0)]
        );
        assert!(
            replay("B\t/d/a.log\tmany\n")
                .unwrap_err()
                .contains("line 1")
        );
        assert!(replay("X\t/d/a.log\n").is_err());
    }

    #[test]
    fn losing_unsynced_data_cuts_each_file_to_its_synced_length() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.log");
        let b = dir.path().join("b.log");
        std::fs::write(&a, [1u8; 300]).unwrap();
        std::fs::write(&b, [2u8; 50]).unwrap();
        let ledger = dir.path().join("ledger");
        let text = format!(
            "C\t{a}\nB\t{a}\t120\nS\t{a}\nC\t{b}\nB\t{b}\t50\nS\t{b}\nC\t{gone}\n",
            a = a.display(),
            b = b.display(),
            gone = dir.path().join("gone.log").display()
        );
        std::fs::write(&ledger, text).unwrap();
        let lost = lose_unsynced(&ledger).unwrap();
        assert_eq!(
            lost,
            Lost {
                files: 1,
                bytes: 180
            }
        );
        assert_eq!(std::fs::read(&a).unwrap(), vec![1u8; 120]);
        assert_eq!(std::fs::read(&b).unwrap(), vec![2u8; 50]);
    }
}

//! The quorum's files: checksummed records and atomically replaced files, the rule that a
//! failed write of the Raft log stops the process, and running file I/O from async code.

use std::fmt::Display;
use std::fs::File;
use std::io::Write;
use std::path::Path;

/// No record of the quorum's log comes near this; a larger length means corruption.
pub const MAX_RECORD_BYTES: usize = 64 * 1024 * 1024;

/// Stops the process after a failed write of the quorum's durable state. openraft 0.9 has
/// no way back from a storage error that is safe (a leader that failed to read its log can
/// send a follower entries that corrupt it, openraft issue 1795), and a voter that goes on
/// after losing a write may vote or acknowledge against what its disk holds. Restarting
/// recovers from what is on disk.
pub fn fail_stop(what: &str, path: &Path, error: &dyn Display) -> ! {
    tracing::error!(path = %path.display(), %error, "cannot {what}; stopping the node");
    eprintln!(
        "the metadata quorum cannot {what} ({}): {error}; stopping the node (a Raft voter must \
         not go on after losing a write; restart it once the disk is fixed)",
        path.display()
    );
    std::process::abort()
}

/// Runs blocking file I/O from async code: on a multi-threaded runtime the worker hands
/// its other tasks over first; on a current-thread runtime (deterministic tests with
/// paused time) it runs in place, so the clock cannot move while a write is in flight.
pub fn blocking<T>(work: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(handle) if handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(work)
        }
        _ => work(),
    }
}

/// `payload` framed as a record: `[length u32][crc32c u32][payload]`.
pub fn frame_record(payload: &[u8], out: &mut Vec<u8>) -> Result<(), String> {
    let len = u32::try_from(payload.len())
        .ok()
        .filter(|&len| len as usize <= MAX_RECORD_BYTES)
        .ok_or_else(|| format!("a record of {} bytes is too large", payload.len()))?;
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&crc32c::crc32c(payload).to_be_bytes());
    out.extend_from_slice(payload);
    Ok(())
}

/// The records of a file, and where its intact part ends.
pub struct Records<'a> {
    /// Each intact record's payload, in order.
    pub payloads: Vec<&'a [u8]>,
    /// The length of the intact prefix; shorter than the file after a torn write.
    pub valid_len: usize,
}

/// Splits `bytes` into records. A damaged record at the end (or a zero-filled end) is a
/// write torn by a crash, which was never acknowledged: it ends the intact part. A damaged
/// record followed by more data is corruption, which no truncation makes safe: an error.
pub fn parse_records(bytes: &[u8]) -> Result<Records<'_>, String> {
    let mut payloads = Vec::new();
    let mut pos = 0usize;
    while let Some(rest) = bytes.get(pos..).filter(|r| !r.is_empty()) {
        let Some(&[l0, l1, l2, l3, c0, c1, c2, c3]) = rest.get(..8) else {
            break; // a torn header
        };
        let len = u32::from_be_bytes([l0, l1, l2, l3]) as usize;
        let end = 8usize.saturating_add(len);
        let payload = rest
            .get(8..end)
            .filter(|p| len > 0 && crc32c::crc32c(p) == u32::from_be_bytes([c0, c1, c2, c3]));
        let Some(payload) = payload else {
            if end >= rest.len() || rest.iter().all(|b| *b == 0) {
                break; // the last record, torn
            }
            return Err(format!(
                "damaged record at byte {pos} followed by {} more bytes",
                rest.len() - end
            ));
        };
        payloads.push(payload);
        pos += end;
    }
    Ok(Records {
        payloads,
        valid_len: pos,
    })
}

/// Replaces `dir/name` with `bytes` so that a crash leaves the old or the new file, never
/// a mix: write a temporary file, fsync it, rename it over, fsync the directory.
pub fn replace_file(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = dir.join(format!("{name}.tmp"));
    let mut file = File::create(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&tmp, dir.join(name))?;
    sync_dir(dir)
}

/// Makes the directory's entries (a created or renamed file) durable.
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn framed(payloads: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        for p in payloads {
            frame_record(p, &mut out).unwrap();
        }
        out
    }

    #[test]
    fn torn_tails_end_the_records_and_damage_before_the_end_is_an_error() {
        let bytes = framed(&[b"one", b"two"]);
        let all = parse_records(&bytes).unwrap();
        assert_eq!(all.payloads, vec![&b"one"[..], &b"two"[..]]);
        assert_eq!(all.valid_len, bytes.len());
        for cut in [bytes.len() - 1, bytes.len() - 5, 11 + 3] {
            let torn = parse_records(&bytes[..cut]).unwrap();
            assert_eq!(torn.payloads, vec![&b"one"[..]], "cut at {cut}");
            assert_eq!(torn.valid_len, 11);
        }
        // The last record damaged: torn.
        let mut last = bytes.clone();
        *last.last_mut().unwrap() ^= 1;
        assert_eq!(parse_records(&last).unwrap().payloads.len(), 1);
        // A zero-filled end (a crash after the file grew): torn.
        let mut zeros = bytes.clone();
        zeros.extend_from_slice(&[0; 40]);
        assert_eq!(parse_records(&zeros).unwrap().valid_len, bytes.len());
        // The first record damaged with another after it: corruption.
        let mut first = bytes.clone();
        first[9] ^= 1;
        assert_eq!(
            parse_records(&first).err().unwrap(),
            "damaged record at byte 0 followed by 11 more bytes"
        );
    }

    #[test]
    fn replaced_files_hold_the_new_bytes() {
        let dir = tempfile::tempdir().unwrap();
        replace_file(dir.path(), "vote", b"a").unwrap();
        replace_file(dir.path(), "vote", b"b").unwrap();
        assert_eq!(std::fs::read(dir.path().join("vote")).unwrap(), b"b");
        assert!(!dir.path().join("vote.tmp").exists());
    }
}

//! Small files holding one offset: the log start offset (moved by retention and
//! DeleteRecords, which must survive a restart), the recovery point (everything below it
//! was synced, so recovery after a crash only scans the segments after it) and the high
//! watermark (set by the broker).
//!
//! Format: `0\n<offset>\n` (version, value). Written atomically, and synced unless the
//! caller says otherwise.

use std::path::Path;

use crate::error::StorageError;
use crate::io::StorageEnv;

pub(crate) const LOG_START_OFFSET_FILE: &str = "log-start-offset";
pub(crate) const RECOVERY_POINT_FILE: &str = "recovery-point";
pub(crate) const HIGH_WATERMARK_FILE: &str = "high-watermark";
/// Where the log cleaner stopped: the first dirty offset (Kafka keeps one
/// `cleaner-offset-checkpoint` per log directory; here each partition has its own).
pub(crate) const CLEANER_OFFSET_FILE: &str = "cleaner-offset-checkpoint";

const VERSION: &str = "0";
const MAX_LEN: u64 = 256;

/// Reads a checkpoint; `Ok(None)` when absent, `Corrupt` when unreadable.
pub(crate) fn read(env: &StorageEnv, path: &Path) -> Result<Option<i64>, StorageError> {
    let Some(bytes) = env.read_small_file(path, MAX_LEN)? else {
        return Ok(None);
    };
    let corrupt = || StorageError::Corrupt(format!("bad checkpoint file {}", path.display()));
    let text = std::str::from_utf8(&bytes).map_err(|_| corrupt())?;
    let mut lines = text.lines();
    if lines.next() != Some(VERSION) {
        return Err(corrupt());
    }
    let value = lines
        .next()
        .and_then(|l| l.trim().parse::<i64>().ok())
        .filter(|v| *v >= 0)
        .ok_or_else(corrupt)?;
    Ok(Some(value))
}

/// Writes a checkpoint atomically and durably.
pub(crate) fn write(env: &StorageEnv, path: &Path, value: i64) -> Result<(), StorageError> {
    write_with(env, path, value, true)
}

/// Writes a checkpoint atomically; synced only when `durable`.
pub(crate) fn write_with(
    env: &StorageEnv,
    path: &Path,
    value: i64,
    durable: bool,
) -> Result<(), StorageError> {
    env.write_file_atomic(path, format!("{VERSION}\n{value}\n").as_bytes(), durable)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_corruption() {
        let dir = tempfile::tempdir().unwrap();
        let env = StorageEnv::unbounded();
        let p = dir.path().join("cp");
        assert_eq!(read(&env, &p).unwrap(), None);
        write(&env, &p, 42).unwrap();
        assert_eq!(read(&env, &p).unwrap(), Some(42));
        write(&env, &p, 7).unwrap();
        assert_eq!(read(&env, &p).unwrap(), Some(7));
        std::fs::write(&p, b"0\nxyz\n").unwrap();
        assert!(matches!(read(&env, &p), Err(StorageError::Corrupt(_))));
        std::fs::write(&p, b"9\n1\n").unwrap();
        assert!(matches!(read(&env, &p), Err(StorageError::Corrupt(_))));
        std::fs::write(&p, vec![b'1'; 1000]).unwrap();
        assert!(read(&env, &p).is_err());
    }
}

//! The durable metadata log: one file of checksummed records.
//!
//! Each record is `[length u32][crc32c u32][JSON]`. JSON keeps the log
//! readable with standard tools; metadata changes are rare, so its cost does
//! not matter. A torn or corrupt tail (crash during append) is truncated on
//! open: the change it held was never acknowledged.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use super::MetadataRecord;

/// The single-node metadata log's file, in the metadata directory.
pub const LOCAL_LOG_FILE: &str = "metadata.log";
const LOG_FILE: &str = LOCAL_LOG_FILE;
/// No metadata record comes near this; a larger length means corruption.
const MAX_RECORD_BYTES: usize = 16 * 1024 * 1024;

/// Failures of the metadata log.
#[derive(Debug, thiserror::Error)]
pub enum MetadataLogError {
    /// The file could not be read or written.
    #[error("metadata log {path}: {source}")]
    Io {
        /// The log file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A record could not be encoded (a bug, never user input).
    #[error("cannot encode metadata record: {0}")]
    Encode(#[from] serde_json::Error),
    /// A record is larger than the log accepts (its reader would take it for corruption).
    #[error(
        "a metadata record of {0} bytes is larger than the log's {MAX_RECORD_BYTES}-byte limit"
    )]
    TooLarge(usize),
}

/// The append-only metadata log file.
pub struct MetadataLog {
    path: PathBuf,
    file: File,
}

impl MetadataLog {
    /// Opens (or creates) the log in `dir`, returning every intact record.
    pub fn open(dir: &Path) -> Result<(Self, Vec<MetadataRecord>), MetadataLogError> {
        let path = dir.join(LOG_FILE);
        let io = |source| MetadataLogError::Io {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(io)?;
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&path)
            .map_err(io)?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).map_err(io)?;
        let (records, valid_len) = parse_records(&bytes);
        if valid_len < bytes.len() {
            tracing::warn!(
                path = %path.display(),
                kept = valid_len,
                dropped = bytes.len() - valid_len,
                "metadata log has a torn or corrupt tail; truncating it"
            );
            file.set_len(valid_len as u64).map_err(io)?;
            file.sync_all().map_err(io)?;
        }
        Ok((Self { path, file }, records))
    }

    /// Appends records and syncs them to disk before returning.
    pub fn append(&mut self, records: &[MetadataRecord]) -> Result<(), MetadataLogError> {
        let mut buf = Vec::new();
        for record in records {
            let json = serde_json::to_vec(record)?;
            let len = u32::try_from(json.len())
                .ok()
                .filter(|&len| len as usize <= MAX_RECORD_BYTES)
                .ok_or(MetadataLogError::TooLarge(json.len()))?;
            buf.extend_from_slice(&len.to_be_bytes());
            buf.extend_from_slice(&crc32c::crc32c(&json).to_be_bytes());
            buf.extend_from_slice(&json);
        }
        let io = |source| MetadataLogError::Io {
            path: self.path.clone(),
            source,
        };
        self.file.write_all(&buf).map_err(io)?;
        self.file.sync_data().map_err(io)
    }
}

/// Parses records until the first incomplete or corrupt one; returns them and
/// the length of the intact prefix.
fn parse_records(bytes: &[u8]) -> (Vec<MetadataRecord>, usize) {
    let mut records = Vec::new();
    let mut pos = 0usize;
    while let Some(&[l0, l1, l2, l3, c0, c1, c2, c3]) = bytes.get(pos..pos + 8) {
        let len = u32::from_be_bytes([l0, l1, l2, l3]) as usize;
        let crc = u32::from_be_bytes([c0, c1, c2, c3]);
        if len > MAX_RECORD_BYTES {
            break;
        }
        let Some(payload) = bytes.get(pos + 8..pos + 8 + len) else {
            break;
        };
        if crc32c::crc32c(payload) != crc {
            break;
        }
        let Ok(record) = serde_json::from_slice::<MetadataRecord>(payload) else {
            break;
        };
        records.push(record);
        pos += 8 + len;
    }
    (records, pos)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use uuid::Uuid;

    fn created(name: &str) -> MetadataRecord {
        MetadataRecord::TopicCreated {
            name: name.into(),
            id: Uuid::new_v4(),
            partitions: 3,
            configs: BTreeMap::new(),
            internal: false,
            replicas: Vec::new(),
        }
    }

    #[test]
    fn records_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, records) = MetadataLog::open(dir.path()).unwrap();
        assert!(records.is_empty());
        log.append(&[created("a"), created("b")]).unwrap();
        drop(log);
        let (_, records) = MetadataLog::open(dir.path()).unwrap();
        assert_eq!(records.len(), 2);
    }

    #[test]
    fn torn_tail_is_truncated_and_appends_continue() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _) = MetadataLog::open(dir.path()).unwrap();
        log.append(&[created("a"), created("b")]).unwrap();
        drop(log);
        let path = dir.path().join(LOG_FILE);
        let full = std::fs::read(&path).unwrap();
        for cut in [full.len() - 1, full.len() - 10] {
            std::fs::write(&path, &full[..cut]).unwrap();
            let (mut log, records) = MetadataLog::open(dir.path()).unwrap();
            assert_eq!(records.len(), 1, "cut at {cut}");
            log.append(&[created("c")]).unwrap();
            drop(log);
            let (_, records) = MetadataLog::open(dir.path()).unwrap();
            assert_eq!(records.len(), 2);
            std::fs::write(&path, &full).unwrap();
        }
    }

    #[test]
    fn corrupt_byte_stops_replay() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _) = MetadataLog::open(dir.path()).unwrap();
        log.append(&[created("a"), created("b")]).unwrap();
        drop(log);
        let path = dir.path().join(LOG_FILE);
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 3;
        bytes[last] ^= 0xff;
        std::fs::write(&path, &bytes).unwrap();
        let (_, records) = MetadataLog::open(dir.path()).unwrap();
        assert_eq!(records.len(), 1);
    }
}

//! The quorum's Raft log and vote on disk, under `<data-dir>/meta/raft/`.
//!
//! - `log`: checksummed records (`[length][crc32c][JSON]`, as the single-node metadata
//!   log), each an entry, after an optional header naming the last purged log id. Appends
//!   are written and fsynced before openraft is told they are durable, in order. A suffix
//!   truncation or a prefix purge rewrites the file (both are rare and the log is kept
//!   short by snapshots) and replaces it atomically.
//! - `vote`: the vote, replaced atomically and fsynced before `save_vote` returns.
//!
//! Entries are also kept in memory (the log stays bounded by snapshots), which is where
//! replication reads them. Any failed write stops the process ([`fail_stop`]).

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::ops::RangeBounds;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{OptionalSend, RaftLogReader};
use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};

use super::files::{blocking, fail_stop, frame_record, parse_records, replace_file, sync_dir};
use super::types::{Entry, LogId, StorageError, TypeConfig, Vote};

const LOG_FILE: &str = "log";
const VOTE_FILE: &str = "vote";

/// Why the log or vote on disk cannot be opened; the node refuses to start.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// A file could not be read or created.
    #[error("cannot read the metadata quorum's {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
    /// A file is damaged beyond a torn last write.
    #[error("the metadata quorum's {path} is damaged: {reason}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

/// One record of the log file.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum LogRecord {
    /// Entries up to this id were purged (the first record, if any).
    Purged(LogId),
    /// One entry.
    Entry(Entry),
}

/// The log as it stands.
#[derive(Default)]
struct LogData {
    entries: BTreeMap<u64, Entry>,
    last_purged: Option<LogId>,
    vote: Option<Vote>,
}

/// The open log file.
struct LogFile {
    dir: PathBuf,
    file: File,
}

/// The quorum's log store (openraft's `RaftLogStorage`); clones share it, and a clone is
/// also the reader replication uses.
#[derive(Clone)]
pub struct LogStore {
    data: Arc<RwLock<LogData>>,
    file: Arc<Mutex<LogFile>>,
}

impl LogStore {
    /// Opens (or creates) the log and vote under `dir`, dropping a torn last write.
    pub fn open(dir: &Path) -> Result<Self, OpenError> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| OpenError::Io { path, source }
        };
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let log_path = dir.join(LOG_FILE);
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&log_path)
            .map_err(io(&log_path))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).map_err(io(&log_path))?;
        let corrupt = |reason: String| OpenError::Corrupt {
            path: log_path.clone(),
            reason,
        };
        let records = parse_records(&bytes).map_err(corrupt)?;
        let mut data = LogData::default();
        for payload in &records.payloads {
            match serde_json::from_slice(payload).map_err(|e| corrupt(e.to_string()))? {
                LogRecord::Purged(id) => data.last_purged = Some(id),
                LogRecord::Entry(entry) => {
                    data.entries.insert(entry.log_id.index, entry);
                }
            }
        }
        if records.valid_len < bytes.len() {
            tracing::warn!(
                path = %log_path.display(),
                dropped = bytes.len() - records.valid_len,
                "the metadata quorum's log ends with a torn write; dropping it"
            );
            file.set_len(records.valid_len as u64)
                .and_then(|()| file.sync_all())
                .map_err(io(&log_path))?;
        }
        sync_dir(dir).map_err(io(dir))?;
        data.vote = read_vote(dir)?;
        Ok(Self {
            data: Arc::new(RwLock::new(data)),
            file: Arc::new(Mutex::new(LogFile {
                dir: dir.to_path_buf(),
                file,
            })),
        })
    }

    /// Whether nothing was ever written: no entry, no purge, no vote.
    pub fn is_pristine(&self) -> bool {
        let data = self.data.read();
        data.entries.is_empty() && data.last_purged.is_none() && data.vote.is_none()
    }

    /// The last log id, if any.
    fn last_log_id(data: &LogData) -> Option<LogId> {
        data.entries
            .values()
            .next_back()
            .map(|e| e.log_id)
            .or(data.last_purged)
    }
}

/// Reads the vote file, if there is one.
fn read_vote(dir: &Path) -> Result<Option<Vote>, OpenError> {
    let path = dir.join(VOTE_FILE);
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(OpenError::Io { path, source }),
    };
    let corrupt = |reason: String| OpenError::Corrupt {
        path: path.clone(),
        reason,
    };
    let records = parse_records(&bytes).map_err(corrupt)?;
    // The vote file is replaced atomically: anything but one whole record is damage.
    match records.payloads.as_slice() {
        [payload] if records.valid_len == bytes.len() => serde_json::from_slice(payload)
            .map(Some)
            .map_err(|e| corrupt(e.to_string())),
        _ => Err(corrupt("not one intact vote record".into())),
    }
}

impl LogFile {
    fn path(&self) -> PathBuf {
        self.dir.join(LOG_FILE)
    }

    /// Appends encoded records and fsyncs them.
    fn append(&mut self, bytes: &[u8]) {
        if let Err(e) = self
            .file
            .write_all(bytes)
            .and_then(|()| self.file.sync_data())
        {
            fail_stop("append to its log", &self.path(), &e);
        }
    }

    /// Replaces the file with exactly `data`'s purge header and entries.
    fn rewrite(&mut self, data: &LogData) {
        let path = self.path();
        let mut bytes = Vec::new();
        let header = data.last_purged.map(LogRecord::Purged);
        for record in header.iter() {
            encode(record, &mut bytes, &path);
        }
        for entry in data.entries.values() {
            encode(&LogRecord::Entry(entry.clone()), &mut bytes, &path);
        }
        let reopened = replace_file(&self.dir, LOG_FILE, &bytes)
            .and_then(|()| OpenOptions::new().read(true).append(true).open(&path));
        match reopened {
            Ok(file) => self.file = file,
            Err(e) => fail_stop("rewrite its log", &path, &e),
        }
    }
}

/// Appends `record`, framed, to `out`.
fn encode(record: &LogRecord, out: &mut Vec<u8>, path: &Path) {
    let framed = serde_json::to_vec(record)
        .map_err(|e| e.to_string())
        .and_then(|json| frame_record(&json, out));
    if let Err(e) = framed {
        fail_stop("encode a log record", path, &e);
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        Ok(self
            .data
            .read()
            .entries
            .range(range)
            .map(|(_, e)| e.clone())
            .collect())
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let data = self.data.read();
        Ok(LogState {
            last_purged_log_id: data.last_purged,
            last_log_id: Self::last_log_id(&data),
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), StorageError> {
        let file = self.file.lock();
        let path = file.dir.join(VOTE_FILE);
        let mut bytes = Vec::new();
        let written = serde_json::to_vec(vote)
            .map_err(|e| e.to_string())
            .and_then(|json| frame_record(&json, &mut bytes))
            .and_then(|()| {
                blocking(|| replace_file(&file.dir, VOTE_FILE, &bytes)).map_err(|e| e.to_string())
            });
        if let Err(e) = written {
            fail_stop("save its vote", &path, &e);
        }
        self.data.write().vote = Some(*vote);
        Ok(())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, StorageError> {
        Ok(self.data.read().vote)
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut file = self.file.lock();
        let path = file.path();
        let entries: Vec<Entry> = entries.into_iter().collect();
        let mut bytes = Vec::new();
        // openraft appends without holes (truncating conflicts first); an entry at an
        // index already held replaces it, in memory as on replay, where the later record
        // of an index wins.
        for entry in &entries {
            encode(&LogRecord::Entry(entry.clone()), &mut bytes, &path);
        }
        blocking(|| file.append(&bytes));
        let mut data = self.data.write();
        for entry in entries {
            data.entries.insert(entry.log_id.index, entry);
        }
        drop(data);
        // Written and fsynced in the order openraft asked: durable now.
        callback.log_io_completed(Ok(()));
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let mut file = self.file.lock();
        let mut data = self.data.write();
        data.entries.split_off(&log_id.index);
        blocking(|| file.rewrite(&data));
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let mut file = self.file.lock();
        let mut data = self.data.write();
        data.entries = data.entries.split_off(&(log_id.index + 1));
        if data.last_purged.is_none_or(|p| p < log_id) {
            data.last_purged = Some(log_id);
        }
        blocking(|| file.rewrite(&data));
        Ok(())
    }
}

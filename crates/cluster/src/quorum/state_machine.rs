//! The quorum's state machine: the metadata image. Every committed entry's batch of records
//! goes through [`MetadataStore::apply_committed`] on every node, in log order, so each
//! node's publishers open and close its partitions as the records say.
//!
//! The image lives in memory; what is durable is the snapshot (`<data-dir>/meta/raft/
//! snapshot`): the records that rebuild the image ([`MetadataImage::to_records`]), the
//! last applied log id and membership, and the recent proposals (so a retried proposal is
//! recognised the same way on every node). A restarted node rebuilds the image from the
//! snapshot and re-applies the log after it; a node too far behind gets the leader's
//! snapshot, which replaces its image ([`MetadataStore::replace_image`]).

use std::collections::VecDeque;
use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use openraft::storage::{RaftStateMachine, Snapshot, SnapshotMeta};
use openraft::{AnyError, BasicNode, EntryPayload, RaftSnapshotBuilder, StorageIOError};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use sluice_metadata::{MetadataImage, MetadataRecord, MetadataStore, RecordConflict};
use tokio::sync::watch;
use uuid::Uuid;

use super::files::{blocking, fail_stop, frame_record, parse_records, replace_file};
use super::log_store::OpenError;
use super::types::{Batch, BatchOutcome, Entry, LogId, StorageError, StoredMembership, TypeConfig};
use crate::transport::NodeId;

const SNAPSHOT_FILE: &str = "snapshot";
/// Proposals remembered for recognising retries: far more than a proposer retries across.
const REMEMBERED_PROPOSALS: usize = 1024;

/// What a snapshot holds besides openraft's meta.
#[derive(Debug, Serialize, Deserialize)]
struct SnapshotBody {
    /// The image's `offset`.
    offset: u64,
    /// The records that rebuild the image.
    records: Vec<MetadataRecord>,
    /// The recent proposals and their outcomes, oldest first.
    proposals: Vec<(Uuid, BatchOutcome)>,
}

/// A snapshot as kept on disk and sent to followers.
#[derive(Clone)]
struct StoredSnapshot {
    meta: SnapshotMeta<u64, BasicNode>,
    data: Vec<u8>,
}

/// What the state machine restores at start-up from the snapshot on disk.
pub struct Restored {
    /// The image the snapshot rebuilds (empty without one).
    pub image: MetadataImage,
    snapshot: Option<StoredSnapshot>,
    proposals: VecDeque<(Uuid, BatchOutcome)>,
}

impl Restored {
    /// Reads the snapshot under `dir`, if any; `node_id` is this node.
    pub fn open(dir: &Path, node_id: NodeId) -> Result<Self, OpenError> {
        let path = dir.join(SNAPSHOT_FILE);
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Self {
                    image: MetadataImage::new(node_id),
                    snapshot: None,
                    proposals: VecDeque::new(),
                });
            }
            Err(source) => return Err(OpenError::Io { path, source }),
        };
        let corrupt = |reason: String| OpenError::Corrupt {
            path: path.clone(),
            reason,
        };
        let records = parse_records(&bytes).map_err(corrupt)?;
        let (meta, data) = match records.payloads.as_slice() {
            [meta, data] if records.valid_len == bytes.len() => (*meta, *data),
            _ => return Err(corrupt("not a meta and a data record".into())),
        };
        let snapshot = StoredSnapshot {
            meta: serde_json::from_slice(meta).map_err(|e| corrupt(e.to_string()))?,
            data: data.to_vec(),
        };
        let (image, proposals) = rebuild(&snapshot.data, node_id).map_err(corrupt)?;
        Ok(Self {
            image,
            snapshot: Some(snapshot),
            proposals,
        })
    }

    /// The log id the snapshot ends at, if there is one.
    pub fn last_log_id(&self) -> Option<LogId> {
        self.snapshot.as_ref().and_then(|s| s.meta.last_log_id)
    }
}

/// The image (and recent proposals) a snapshot's data rebuilds.
fn rebuild(
    data: &[u8],
    node_id: NodeId,
) -> Result<(MetadataImage, VecDeque<(Uuid, BatchOutcome)>), String> {
    let body: SnapshotBody = serde_json::from_slice(data).map_err(|e| e.to_string())?;
    let mut image = MetadataImage::new(node_id);
    for record in &body.records {
        image.apply(record);
    }
    image.offset = body.offset;
    Ok((image, body.proposals.into()))
}

/// Where the state machine stands.
struct Applied {
    last: Option<LogId>,
    membership: StoredMembership,
    proposals: VecDeque<(Uuid, BatchOutcome)>,
}

struct Shared {
    store: Arc<MetadataStore>,
    node_id: NodeId,
    dir: PathBuf,
    applied: Mutex<Applied>,
    current: Mutex<Option<StoredSnapshot>>,
    applied_index: watch::Sender<Option<u64>>,
}

/// The quorum's state machine (openraft's `RaftStateMachine`) over a metadata store.
pub struct StateMachine {
    shared: Arc<Shared>,
}

impl StateMachine {
    /// A state machine applying to `store`, whose image `restored` built; snapshots go to
    /// `dir`.
    pub fn new(store: Arc<MetadataStore>, node_id: NodeId, dir: &Path, restored: Restored) -> Self {
        let (membership, last) = match &restored.snapshot {
            Some(s) => (s.meta.last_membership.clone(), s.meta.last_log_id),
            None => (StoredMembership::default(), None),
        };
        Self {
            shared: Arc::new(Shared {
                store,
                node_id,
                dir: dir.to_path_buf(),
                applied: Mutex::new(Applied {
                    last,
                    membership,
                    proposals: restored.proposals,
                }),
                current: Mutex::new(restored.snapshot),
                applied_index: watch::Sender::new(last.map(|id| id.index)),
            }),
        }
    }

    /// The image applied so far.
    #[cfg(test)]
    pub fn image(&self) -> Arc<MetadataImage> {
        self.shared.store.image()
    }

    /// The index of the last entry applied here, as it changes.
    pub fn applied_index(&self) -> watch::Receiver<Option<u64>> {
        self.shared.applied_index.subscribe()
    }

    /// Applies one batch, committed at `log_id`, unless it is a retry of a batch applied
    /// already, in which case its first outcome is the answer. A controller's batch applies
    /// only in the term its controller led.
    fn apply_batch(&self, applied: &mut Applied, log_id: LogId, batch: &Batch) -> BatchOutcome {
        if let Some((_, outcome)) = applied.proposals.iter().find(|(id, _)| *id == batch.id) {
            return outcome.clone();
        }
        let committed_in = log_id.leader_id.get_term();
        let outcome =
            if let Some(decided_in) = batch.controller_term.filter(|term| *term != committed_in) {
                BatchOutcome(Err(RecordConflict::StaleController {
                    decided_in,
                    committed_in,
                }))
            } else if batch.records.is_empty() {
                BatchOutcome(Ok(()))
            } else {
                BatchOutcome(blocking(|| {
                    self.shared.store.apply_committed(&batch.records)
                }))
            };
        if applied.proposals.len() == REMEMBERED_PROPOSALS {
            applied.proposals.pop_front();
        }
        applied.proposals.push_back((batch.id, outcome.clone()));
        outcome
    }
}

impl Shared {
    /// Writes `snapshot` to disk and makes it the current one, unless the current one is
    /// newer (a snapshot built here can finish after the leader's newer one was installed;
    /// the log before the newer one is gone, so the older one must not replace it).
    fn keep(&self, snapshot: StoredSnapshot) {
        let mut current = self.current.lock();
        if current
            .as_ref()
            .is_some_and(|c| c.meta.last_log_id > snapshot.meta.last_log_id)
        {
            return;
        }
        let path = self.dir.join(SNAPSHOT_FILE);
        let mut bytes = Vec::new();
        let written = serde_json::to_vec(&snapshot.meta)
            .map_err(|e| e.to_string())
            .and_then(|meta| frame_record(&meta, &mut bytes))
            .and_then(|()| frame_record(&snapshot.data, &mut bytes))
            .and_then(|()| {
                blocking(|| replace_file(&self.dir, SNAPSHOT_FILE, &bytes))
                    .map_err(|e| e.to_string())
            });
        if let Err(e) = written {
            fail_stop("write its snapshot", &path, &e);
        }
        *current = Some(snapshot);
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), StorageError> {
        let applied = self.shared.applied.lock();
        Ok((applied.last, applied.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<BatchOutcome>, StorageError>
    where
        I: IntoIterator<Item = Entry> + openraft::OptionalSend,
        I::IntoIter: openraft::OptionalSend,
    {
        let mut outcomes = Vec::new();
        for entry in entries {
            let mut applied = self.shared.applied.lock();
            let outcome = match &entry.payload {
                EntryPayload::Blank => BatchOutcome(Ok(())),
                EntryPayload::Normal(batch) => self.apply_batch(&mut applied, entry.log_id, batch),
                EntryPayload::Membership(membership) => {
                    applied.membership =
                        StoredMembership::new(Some(entry.log_id), membership.clone());
                    BatchOutcome(Ok(()))
                }
            };
            applied.last = Some(entry.log_id);
            drop(applied);
            self.shared
                .applied_index
                .send_replace(Some(entry.log_id.index));
            outcomes.push(outcome);
        }
        Ok(outcomes)
    }

    async fn get_snapshot_builder(&mut self) -> SnapshotBuilder {
        // Taken between two applies: the image, the log id and the membership agree.
        let applied = self.shared.applied.lock();
        SnapshotBuilder {
            shared: self.shared.clone(),
            image: self.shared.store.image(),
            last: applied.last,
            membership: applied.membership.clone(),
            proposals: applied.proposals.iter().cloned().collect(),
        }
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<u64, BasicNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError> {
        let data = snapshot.into_inner();
        let (image, proposals) = rebuild(&data, self.shared.node_id).map_err(|e| {
            StorageIOError::read_snapshot(Some(meta.signature()), AnyError::error(e))
        })?;
        tracing::info!(
            last_log_id = %meta.last_log_id.map(|id| id.to_string()).unwrap_or_default(),
            "installing the quorum leader's metadata snapshot"
        );
        {
            let mut applied = self.shared.applied.lock();
            blocking(|| self.shared.store.replace_image(image));
            applied.last = meta.last_log_id;
            applied.membership = meta.last_membership.clone();
            applied.proposals = proposals;
        }
        self.shared.keep(StoredSnapshot {
            meta: meta.clone(),
            data,
        });
        self.shared
            .applied_index
            .send_replace(meta.last_log_id.map(|id| id.index));
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError> {
        Ok(self.shared.current.lock().clone().map(|s| Snapshot {
            meta: s.meta,
            snapshot: Box::new(Cursor::new(s.data)),
        }))
    }
}

/// Builds a snapshot of the state taken when it was created.
pub struct SnapshotBuilder {
    shared: Arc<Shared>,
    image: Arc<MetadataImage>,
    last: Option<LogId>,
    membership: StoredMembership,
    proposals: Vec<(Uuid, BatchOutcome)>,
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError> {
        let body = SnapshotBody {
            offset: self.image.offset,
            records: self.image.to_records(),
            proposals: std::mem::take(&mut self.proposals),
        };
        let data = serde_json::to_vec(&body)
            .map_err(|e| StorageIOError::write_snapshot(None, AnyError::new(&e)))?;
        let meta = SnapshotMeta {
            last_log_id: self.last,
            last_membership: self.membership.clone(),
            snapshot_id: self
                .last
                .map_or_else(|| "empty".to_string(), |id| id.to_string()),
        };
        self.shared.keep(StoredSnapshot {
            meta: meta.clone(),
            data: data.clone(),
        });
        tracing::debug!(last_log_id = %meta.snapshot_id, records = body.records.len(), "took a metadata snapshot");
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        })
    }
}

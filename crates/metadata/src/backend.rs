//! What commits metadata (the small trait a metadata quorum sits behind): on one node the
//! local metadata log, in a cluster a Raft group. A backend writes each batch durably in
//! one total order and hands every committed batch, in that order, to
//! [`crate::MetadataStore::apply_committed`] on every node.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Weak};

use parking_lot::Mutex;

use crate::{MetadataLog, MetadataLogError, MetadataRecord, MetadataStore, RecordConflict};

/// A future a backend returns.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Why a proposal was not committed.
#[derive(Debug, thiserror::Error)]
pub enum CommitError {
    /// The batch was committed but no longer applied to the image it reached.
    #[error(transparent)]
    Conflict(#[from] RecordConflict),
    /// The local metadata log could not be written.
    #[error(transparent)]
    Log(#[from] MetadataLogError),
    /// No quorum leader could commit it now (an election, or no majority); retriable.
    #[error("metadata cannot be committed now: {0}")]
    Unavailable(String),
}

/// Commits batches of metadata records.
pub trait MetadataBackend: Send + Sync {
    /// The node that commits now (the quorum leader), if one is known.
    fn leader(&self) -> Option<i32>;

    /// Commits `records` as one batch; resolves once the batch is committed and applied
    /// on this node (or refused there with its conflict).
    fn commit(&self, records: Vec<MetadataRecord>) -> BoxFuture<'_, Result<(), CommitError>>;

    /// Commits a controller's decision: as [`MetadataBackend::commit`], but only if this
    /// node still leads when the batch is committed (a backend with terms refuses it with
    /// [`RecordConflict::StaleController`](crate::RecordConflict) otherwise).
    fn commit_as_controller(
        &self,
        records: Vec<MetadataRecord>,
    ) -> BoxFuture<'_, Result<(), CommitError>> {
        self.commit(records)
    }

    /// Whether a controller runs on the quorum leader: brokers register fenced and are let
    /// in, fenced and given leaderships by it (a cluster). A single node's local log has
    /// none: its only broker registers unfenced and leads everything.
    fn has_controller(&self) -> bool {
        false
    }
}

/// The metadata log of a single node: a commit is an fsynced append.
pub struct LocalBackend {
    log: Arc<Mutex<MetadataLog>>,
    store: Weak<MetadataStore>,
    node_id: i32,
}

impl LocalBackend {
    /// Commits into `log` and applies to `store`.
    pub fn new(log: MetadataLog, store: Weak<MetadataStore>, node_id: i32) -> Self {
        Self {
            log: Arc::new(Mutex::new(log)),
            store,
            node_id,
        }
    }
}

impl MetadataBackend for LocalBackend {
    fn leader(&self) -> Option<i32> {
        Some(self.node_id)
    }

    fn commit(&self, records: Vec<MetadataRecord>) -> BoxFuture<'_, Result<(), CommitError>> {
        let log = self.log.clone();
        let store = self.store.clone();
        Box::pin(async move {
            // The fsync and the publishers' file operations block: off the runtime.
            tokio::task::spawn_blocking(move || {
                let store = store
                    .upgrade()
                    .ok_or_else(|| CommitError::Unavailable("shutting down".into()))?;
                let mut log = log.lock();
                // One node decides alone: a batch that would conflict is refused before
                // it is written, so the log holds only batches that applied.
                let mut scratch = (*store.image()).clone();
                for record in &records {
                    scratch.check(record)?;
                    scratch.apply(record);
                }
                log.append(&records)?;
                store.apply_committed(&records)?;
                Ok(())
            })
            .await
            .map_err(|e| CommitError::Unavailable(e.to_string()))?
        })
    }
}

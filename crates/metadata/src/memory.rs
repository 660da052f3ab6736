//! Metadata shared by nodes in one process, for deterministic cluster tests: a commit is
//! applied to every joined node's store, in one total order, before it returns, as a
//! quorum would deliver it — without a log, an election or a network. Tests of
//! replication, elections and coordinator moves run several brokers on it.

use std::sync::{Arc, Weak};

use parking_lot::Mutex;

use crate::{BoxFuture, CommitError, MetadataBackend, MetadataRecord, MetadataStore};

/// The shared "quorum": every joined store sees every committed batch.
#[derive(Default)]
pub struct MemoryQuorum {
    stores: Mutex<Vec<Weak<MetadataStore>>>,
    /// Held while a batch is applied everywhere: the total order of a quorum.
    order: Mutex<()>,
    /// The node that commits, as a quorum leader would (`None`: no leader now).
    leader: Mutex<Option<i32>>,
}

impl MemoryQuorum {
    /// A quorum led by `leader`, with no node yet.
    pub fn new(leader: i32) -> Arc<Self> {
        Arc::new(Self {
            stores: Mutex::new(Vec::new()),
            order: Mutex::new(()),
            leader: Mutex::new(Some(leader)),
        })
    }

    /// Joins `store`, which commits through this quorum from now on and sees every batch
    /// committed after it joined (join every node before the first commit).
    pub fn join(self: &Arc<Self>, store: &Arc<MetadataStore>) {
        store.set_backend(Arc::new(Member {
            quorum: self.clone(),
            store: Arc::downgrade(store),
        }));
        self.stores.lock().push(Arc::downgrade(store));
    }

    /// Which node commits now.
    pub fn set_leader(&self, leader: Option<i32>) {
        *self.leader.lock() = leader;
    }

    /// Applies a batch on every live joined store, the proposer's outcome returned.
    fn commit_everywhere(
        &self,
        records: &[MetadataRecord],
        proposer: &Weak<MetadataStore>,
    ) -> Result<(), CommitError> {
        let stores: Vec<_> = self
            .stores
            .lock()
            .iter()
            .filter_map(Weak::upgrade)
            .collect();
        let mut outcome = Ok(());
        for store in stores {
            let applied = store.apply_committed(records);
            if std::ptr::eq(Arc::as_ptr(&store), proposer.as_ptr()) {
                outcome = applied.map_err(CommitError::from);
            }
        }
        outcome
    }
}

/// One node's handle on the shared quorum.
struct Member {
    quorum: Arc<MemoryQuorum>,
    store: Weak<MetadataStore>,
}

impl MetadataBackend for Member {
    fn leader(&self) -> Option<i32> {
        *self.quorum.leader.lock()
    }

    fn has_controller(&self) -> bool {
        true
    }

    fn commit(&self, records: Vec<MetadataRecord>) -> BoxFuture<'_, Result<(), CommitError>> {
        let quorum = self.quorum.clone();
        let store = self.store.clone();
        Box::pin(async move {
            if quorum.leader.lock().is_none() {
                return Err(CommitError::Unavailable("no quorum leader".into()));
            }
            // The publishers' file operations block, so off the runtime.
            tokio::task::spawn_blocking(move || {
                let _turn = quorum.order.lock();
                quorum.commit_everywhere(&records, &store)
            })
            .await
            .map_err(|e| CommitError::Unavailable(e.to_string()))?
        })
    }
}

//! `sluice-metadata`: cluster metadata, a log of changes and the in-memory image they
//! build. It is its own crate so that the node-to-node layer (`sluice-cluster`, the
//! metadata quorum) can replicate and apply the same records without depending on the
//! broker.
//!
//! Every change (topic created, partitions added, config altered, topic
//! deleted) is a [`MetadataRecord`] appended durably to the metadata log before
//! it is applied to the image. Handlers read immutable snapshots of the image,
//! so a request sees one consistent view and the produce/fetch paths never wait
//! on metadata writes (docs/ARCHITECTURE.md §7).

mod backend;
mod conflict;
mod delta;
mod image;
mod log;
mod memory;
mod records;
mod security;

pub use backend::{BoxFuture, CommitError, LocalBackend, MetadataBackend};
pub use conflict::RecordConflict;
pub use delta::{MetadataDelta, MetadataPublisher};
pub use image::{BrokerRegistration, MetadataImage, PartitionRegistration, TopicImage};
pub use log::{LOCAL_LOG_FILE, MetadataLog, MetadataLogError};
pub use memory::MemoryQuorum;
pub use records::{EndpointRecord, MetadataRecord, PartitionAssignment};
pub use security::{QuotaEntityRecord, SecurityImage, StoredAcl, StoredScramCredential};

use std::path::Path;
use std::sync::{Arc, OnceLock};

use parking_lot::{Mutex, RwLock};

/// Who proposes a change: any node (admin requests, ISR changes), or the controller
/// deciding on its own (fenced by its quorum term).
#[derive(Debug, Clone, Copy)]
enum Proposer {
    Anyone,
    Controller,
}

/// The image committed metadata built, the publishers that act on each commit, and the
/// backend that commits: the local metadata log on one node, a quorum in a cluster.
pub struct MetadataStore {
    backend: OnceLock<Arc<dyn MetadataBackend>>,
    image: RwLock<Arc<MetadataImage>>,
    publishers: RwLock<Vec<Arc<dyn MetadataPublisher>>>,
    /// Serializes applies, so publishers see deltas in commit order.
    applying: Mutex<()>,
    /// Held by a proposal from its check until its records are applied, so a decision
    /// taken against the image cannot be invalidated by another proposal of this node
    /// before its records land (Kafka's controller runs one operation at a time).
    proposals: tokio::sync::Mutex<()>,
}

impl MetadataStore {
    /// A store starting from `image`; its backend is set once with
    /// [`MetadataStore::set_backend`].
    pub fn new(image: MetadataImage) -> Arc<Self> {
        Arc::new(Self {
            backend: OnceLock::new(),
            image: RwLock::new(Arc::new(image)),
            publishers: RwLock::new(Vec::new()),
            applying: Mutex::new(()),
            proposals: tokio::sync::Mutex::new(()),
        })
    }

    /// A single node's store: opens the metadata log under `dir` and replays it into an
    /// image; `node_id` is the node that owns partitions of records from single-node
    /// versions (see [`MetadataImage::new`]).
    pub fn open_local(dir: &Path, node_id: i32) -> Result<Arc<Self>, MetadataLogError> {
        let (log, records) = MetadataLog::open(dir)?;
        let mut image = MetadataImage::new(node_id);
        for record in records {
            image.apply(&record);
        }
        let store = Self::new(image);
        store.set_backend(Arc::new(LocalBackend::new(
            log,
            Arc::downgrade(&store),
            node_id,
        )));
        Ok(store)
    }

    /// Sets the backend that commits this store's proposals (once).
    pub fn set_backend(&self, backend: Arc<dyn MetadataBackend>) {
        if self.backend.set(backend).is_err() {
            tracing::error!("the metadata backend was set twice; keeping the first");
        }
    }

    /// The node that commits metadata now (the quorum leader), if one is known.
    pub fn leader(&self) -> Option<i32> {
        self.backend.get().and_then(|b| b.leader())
    }

    /// Whether a controller fences and unfences brokers (see
    /// [`MetadataBackend::has_controller`]).
    pub fn has_controller(&self) -> bool {
        self.backend.get().is_some_and(|b| b.has_controller())
    }

    /// A consistent snapshot of the current metadata.
    pub fn image(&self) -> Arc<MetadataImage> {
        self.image.read().clone()
    }

    /// Adds a publisher: from now on it sees every committed delta.
    pub fn subscribe(&self, publisher: Arc<dyn MetadataPublisher>) {
        self.publishers.write().push(publisher);
    }

    /// Proposes a change: `check` decides, against the current image, which records to
    /// write (Kafka's controller validation: no I/O, no side effects), and the records
    /// are then committed — written durably (on a quorum, in a cluster), acted on by the
    /// publishers, made visible — before this returns. A batch that no longer applies
    /// when it is committed (another node's proposal came first) is applied nowhere and
    /// answered with its [`RecordConflict`].
    pub async fn propose<T, E>(
        &self,
        check: impl FnOnce(&MetadataImage) -> Result<(Vec<MetadataRecord>, T), E>,
    ) -> Result<T, E>
    where
        E: From<CommitError>,
    {
        self.propose_from(Proposer::Anyone, check).await
    }

    /// As [`MetadataStore::propose`], for the controller's own decisions: committed only if
    /// this node still leads the quorum in the term it decided in
    /// ([`MetadataBackend::commit_as_controller`]).
    pub async fn propose_as_controller<T, E>(
        &self,
        check: impl FnOnce(&MetadataImage) -> Result<(Vec<MetadataRecord>, T), E>,
    ) -> Result<T, E>
    where
        E: From<CommitError>,
    {
        self.propose_from(Proposer::Controller, check).await
    }

    async fn propose_from<T, E>(
        &self,
        proposer: Proposer,
        check: impl FnOnce(&MetadataImage) -> Result<(Vec<MetadataRecord>, T), E>,
    ) -> Result<T, E>
    where
        E: From<CommitError>,
    {
        let _turn = self.proposals.lock().await;
        let (records, out) = check(&self.image())?;
        if records.is_empty() {
            return Ok(out);
        }
        let backend = self
            .backend
            .get()
            .ok_or_else(|| CommitError::Unavailable("no metadata backend".into()))?;
        match proposer {
            Proposer::Anyone => backend.commit(records).await?,
            Proposer::Controller => backend.commit_as_controller(records).await?,
        }
        Ok(out)
    }

    /// Applies a committed batch, in commit order, on this node: checks it against the
    /// image (see [`RecordConflict`]), lets the publishers act on what it changes, then
    /// makes the image it produces visible — so a request never sees a topic whose local
    /// partitions are not open yet. A backend calls this for every committed batch; it
    /// blocks on the publishers' I/O.
    pub fn apply_committed(&self, records: &[MetadataRecord]) -> Result<(), RecordConflict> {
        let _applying = self.applying.lock();
        let mut next = (*self.image()).clone();
        let mut delta = MetadataDelta::default();
        for record in records {
            next.check(record)?;
            delta.note(record, &next);
            next.apply(record);
        }
        self.publish(&delta, next);
        Ok(())
    }

    /// Replaces the image with `image` (a snapshot installed from the quorum leader, when
    /// this node was too far behind for the log): publishers are told everything that
    /// differs, so partitions are opened and closed as if every batch had been applied.
    pub fn replace_image(&self, image: MetadataImage) {
        let _applying = self.applying.lock();
        let delta = MetadataDelta::between(&self.image(), &image);
        self.publish(&delta, image);
    }

    /// Runs `start` on the current image with no batch applied meanwhile, so that state
    /// built from that image (the partition logs opened at start-up) and the publishers
    /// `start` subscribes see every change exactly once.
    pub fn with_applies_paused<T>(&self, start: impl FnOnce(&Arc<MetadataImage>) -> T) -> T {
        let _applying = self.applying.lock();
        start(&self.image())
    }

    /// Lets the publishers act on `delta`, then makes `next` visible.
    fn publish(&self, delta: &MetadataDelta, next: MetadataImage) {
        for publisher in self.publishers.read().iter() {
            publisher.publish(delta, &next);
        }
        *self.image.write() = Arc::new(next);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::collections::BTreeMap;

    use uuid::Uuid;

    use super::*;

    /// Records what it was published, and what the visible image said at that moment.
    struct Recorder {
        store: parking_lot::Mutex<Option<std::sync::Weak<MetadataStore>>>,
        seen: parking_lot::Mutex<Vec<(MetadataDelta, bool)>>,
    }

    impl MetadataPublisher for Recorder {
        fn name(&self) -> &'static str {
            "recorder"
        }

        fn publish(&self, delta: &MetadataDelta, image: &MetadataImage) {
            let visible = self
                .store
                .lock()
                .as_ref()
                .and_then(std::sync::Weak::upgrade)
                .is_some_and(|s| s.image().topic("t").is_some());
            assert_eq!(image.topic("t").is_some(), delta.topics_deleted.is_empty());
            self.seen.lock().push((delta.clone(), visible));
        }
    }

    #[tokio::test]
    async fn publishers_act_on_each_delta_before_its_image_is_visible() {
        let dir = tempfile::tempdir().unwrap();
        let store = MetadataStore::open_local(dir.path(), 1).unwrap();
        let recorder = Arc::new(Recorder {
            store: parking_lot::Mutex::new(Some(Arc::downgrade(&store))),
            seen: parking_lot::Mutex::new(Vec::new()),
        });
        store.subscribe(recorder.clone());
        let id = Uuid::from_u128(1);
        let created = MetadataRecord::TopicCreated {
            name: "t".into(),
            id,
            partitions: 2,
            configs: BTreeMap::new(),
            internal: false,
            replicas: vec![PartitionAssignment(vec![1]), PartitionAssignment(vec![1])],
        };
        store
            .propose(|image| {
                assert!(image.topic("t").is_none());
                Ok::<_, CommitError>((vec![created], ()))
            })
            .await
            .unwrap();
        assert_eq!(store.image().topic("t").unwrap().partition_count(), 2);
        store
            .propose(|_| Ok::<_, CommitError>((vec![MetadataRecord::TopicDeleted { id }], ())))
            .await
            .unwrap();
        let seen = recorder.seen.lock().clone();
        assert_eq!(seen.len(), 2);
        assert_eq!(seen[0].0.topics_created, vec![id]);
        assert!(
            !seen[0].1,
            "the topic is not visible while publishers act on it"
        );
        assert_eq!(seen[1].0.topics_deleted.len(), 1);
        assert!(seen[1].1, "still visible while its deletion is published");
        assert!(store.image().topic("t").is_none());
        // A proposal that writes nothing publishes nothing.
        store
            .propose(|_| Ok::<_, CommitError>((Vec::new(), ())))
            .await
            .unwrap();
        assert_eq!(recorder.seen.lock().len(), 2);
        // The records are durable: a reopened store has the same image.
        drop(store);
        let reopened = MetadataStore::open_local(dir.path(), 1).unwrap();
        assert!(reopened.image().topic("t").is_none());
        assert_eq!(reopened.image().offset, 2);
    }

    /// A snapshot replacing the image is published as the difference, before it is visible.
    #[test]
    fn a_replaced_image_is_published_as_its_difference() {
        let store = MetadataStore::new(MetadataImage::new(1));
        let recorder = Arc::new(Recorder {
            store: parking_lot::Mutex::new(Some(Arc::downgrade(&store))),
            seen: parking_lot::Mutex::new(Vec::new()),
        });
        store.subscribe(recorder.clone());
        let mut snapshot = MetadataImage::new(1);
        snapshot.apply(&MetadataRecord::TopicCreated {
            name: "t".into(),
            id: Uuid::from_u128(5),
            partitions: 1,
            configs: BTreeMap::new(),
            internal: false,
            replicas: vec![PartitionAssignment(vec![1])],
        });
        store.replace_image(snapshot.clone());
        let seen = recorder.seen.lock().clone();
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].0.topics_created, vec![Uuid::from_u128(5)]);
        assert!(!seen[0].1, "published before the new image is visible");
        assert_eq!(*store.image(), snapshot);
    }
}

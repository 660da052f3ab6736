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

mod delta;
mod image;
mod log;
mod records;

pub use delta::{MetadataDelta, MetadataPublisher};
pub use image::{BrokerRegistration, MetadataImage, PartitionRegistration, TopicImage};
pub use log::{MetadataLog, MetadataLogError};
pub use records::{EndpointRecord, MetadataRecord, PartitionAssignment};

use std::path::Path;
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};

/// The metadata log plus the image it produced; the single writer of metadata.
pub struct MetadataStore {
    log: Mutex<MetadataLog>,
    image: RwLock<Arc<MetadataImage>>,
    publishers: RwLock<Vec<Arc<dyn MetadataPublisher>>>,
    /// Held by a proposal from its check until its records are applied, so a decision
    /// taken against the image cannot be invalidated by another proposal before its
    /// records land (Kafka's controller runs one operation at a time).
    proposals: tokio::sync::Mutex<()>,
}

impl MetadataStore {
    /// Opens the log under `dir` and replays it into an image; `node_id` is the node
    /// that owns partitions of records from single-node versions (see
    /// [`MetadataImage::new`]).
    pub fn open(dir: &Path, node_id: i32) -> Result<Self, MetadataLogError> {
        let (log, records) = MetadataLog::open(dir)?;
        let mut image = MetadataImage::new(node_id);
        for record in records {
            image.apply(&record);
        }
        Ok(Self {
            log: Mutex::new(log),
            image: RwLock::new(Arc::new(image)),
            publishers: RwLock::new(Vec::new()),
            proposals: tokio::sync::Mutex::new(()),
        })
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
    /// are then committed — written durably, acted on by the publishers, made visible —
    /// before this returns. With a replicated metadata log, commit becomes a quorum
    /// write; callers do not change.
    pub async fn propose<T, E>(
        self: &Arc<Self>,
        check: impl FnOnce(&MetadataImage) -> Result<(Vec<MetadataRecord>, T), E>,
    ) -> Result<T, E>
    where
        E: From<MetadataLogError>,
    {
        let _turn = self.proposals.lock().await;
        let (records, out) = check(&self.image())?;
        if records.is_empty() {
            return Ok(out);
        }
        let store = self.clone();
        tokio::task::spawn_blocking(move || store.write_and_apply(&records))
            .await
            .map_err(|e| MetadataLogError::Io {
                path: Path::new("metadata").to_path_buf(),
                source: std::io::Error::other(e),
            })??;
        Ok(out)
    }

    /// [`MetadataStore::propose`] without waiting in line with async proposals, for
    /// changes no other proposal decides on (producer-id blocks); blocks on the log's
    /// fsync.
    pub fn commit<T, E>(
        &self,
        check: impl FnOnce(&MetadataImage) -> Result<(Vec<MetadataRecord>, T), E>,
    ) -> Result<T, E>
    where
        E: From<MetadataLogError>,
    {
        let (records, out) = check(&self.image())?;
        if !records.is_empty() {
            self.write_and_apply(&records)?;
        }
        Ok(out)
    }

    /// Appends records durably, lets the publishers act on what they change, then makes
    /// the image they produce visible — so a request never sees a topic whose local
    /// partitions are not open yet.
    fn write_and_apply(&self, records: &[MetadataRecord]) -> Result<(), MetadataLogError> {
        let mut log = self.log.lock();
        log.append(records)?;
        let mut next = (*self.image()).clone();
        let mut delta = MetadataDelta::default();
        for record in records {
            delta.note(record, &next);
            next.apply(record);
        }
        for publisher in self.publishers.read().iter() {
            publisher.publish(&delta, &next);
        }
        *self.image.write() = Arc::new(next);
        Ok(())
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
        let store = Arc::new(MetadataStore::open(dir.path(), 1).unwrap());
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
                Ok::<_, MetadataLogError>((vec![created], ()))
            })
            .await
            .unwrap();
        assert_eq!(store.image().topic("t").unwrap().partition_count(), 2);
        store
            .propose(|_| Ok::<_, MetadataLogError>((vec![MetadataRecord::TopicDeleted { id }], ())))
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
            .propose(|_| Ok::<_, MetadataLogError>((Vec::new(), ())))
            .await
            .unwrap();
        assert_eq!(recorder.seen.lock().len(), 2);
        // The records are durable: a reopened store has the same image.
        drop(store);
        let reopened = MetadataStore::open(dir.path(), 1).unwrap();
        assert!(reopened.image().topic("t").is_none());
        assert_eq!(reopened.image().offset, 2);
    }
}

//! Cluster metadata: a log of changes and the in-memory image they build.
//!
//! Every change (topic created, partitions added, config altered, topic
//! deleted) is a [`MetadataRecord`] appended durably to the metadata log before
//! it is applied to the image. Handlers read immutable snapshots of the image,
//! so a request sees one consistent view and the produce/fetch paths never wait
//! on metadata writes (DESIGN.md §5).

mod image;
mod log;
mod records;

pub use image::{MetadataImage, TopicImage};
pub use log::{MetadataLog, MetadataLogError};
pub use records::MetadataRecord;

use std::path::Path;
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};

/// The metadata log plus the image it produced; the single writer of metadata.
pub struct MetadataStore {
    log: Mutex<MetadataLog>,
    image: RwLock<Arc<MetadataImage>>,
}

impl MetadataStore {
    /// Opens the log under `dir` and replays it into an image.
    pub fn open(dir: &Path) -> Result<Self, MetadataLogError> {
        let (log, records) = MetadataLog::open(dir)?;
        let mut image = MetadataImage::default();
        for record in records {
            image.apply(&record);
        }
        Ok(Self {
            log: Mutex::new(log),
            image: RwLock::new(Arc::new(image)),
        })
    }

    /// A consistent snapshot of the current metadata.
    pub fn image(&self) -> Arc<MetadataImage> {
        self.image.read().clone()
    }

    /// Appends records durably, then publishes the image they produce.
    ///
    /// `check` runs against the image under the writer lock, so a decision
    /// ("this topic does not exist yet") cannot be invalidated by a concurrent
    /// writer before its records land.
    pub fn commit<T, E>(
        &self,
        check: impl FnOnce(&MetadataImage) -> Result<(Vec<MetadataRecord>, T), E>,
    ) -> Result<T, E>
    where
        E: From<MetadataLogError>,
    {
        let mut log = self.log.lock();
        let current = self.image();
        let (records, out) = check(&current)?;
        if records.is_empty() {
            return Ok(out);
        }
        log.append(&records)?;
        let mut next = (*current).clone();
        for record in &records {
            next.apply(record);
        }
        *self.image.write() = Arc::new(next);
        Ok(out)
    }
}

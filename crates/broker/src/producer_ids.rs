//! Producer ids for idempotent and transactional producers (InitProducerId).
//!
//! Ids are reserved in blocks through the metadata (Kafka's `ProducerIdsRecord`), so an id
//! is never handed out twice, even after a crash or by another node: a restart continues
//! after the last reserved block, skipping whatever was left of it. As in Kafka's
//! `RPCProducerIdManager`, the next block is reserved in the background before the current
//! one runs out, so handing out an id never waits for a metadata commit; when no id is at
//! hand the caller gets COORDINATOR_LOAD_IN_PROGRESS and retries, as with Kafka.

use std::sync::{Arc, Weak};

use parking_lot::Mutex;

use crate::metadata::{CommitError, MetadataRecord, MetadataStore};

/// Ids reserved per metadata record (Kafka reserves blocks of 1000 too).
const BLOCK_SIZE: i64 = 1000;
/// The next block is reserved once fewer ids than this are left (Kafka: 10%).
const PREFETCH_BELOW: i64 = BLOCK_SIZE / 10;

/// Hands out producer ids from reserved blocks.
pub struct ProducerIdAllocator {
    metadata: Weak<MetadataStore>,
    blocks: Arc<Mutex<Blocks>>,
}

#[derive(Default)]
struct Blocks {
    /// The ids `next..end` of the block in use.
    current: Option<(i64, i64)>,
    /// The block reserved ahead.
    next: Option<(i64, i64)>,
    /// A reservation is under way.
    reserving: bool,
}

impl ProducerIdAllocator {
    /// An allocator reserving its blocks through `metadata`.
    pub fn new(metadata: &Arc<MetadataStore>) -> Self {
        Self {
            metadata: Arc::downgrade(metadata),
            blocks: Arc::new(Mutex::new(Blocks::default())),
        }
    }

    /// The next unused producer id, or `None` while a block is being reserved (the
    /// caller answers COORDINATOR_LOAD_IN_PROGRESS). Starts reserving the next block
    /// when the current one runs low.
    pub fn try_next_id(&self) -> Option<i64> {
        let mut blocks = self.blocks.lock();
        if blocks.current.is_none_or(|(next, end)| next >= end) {
            blocks.current = blocks.next.take();
        }
        let id = match &mut blocks.current {
            Some((next, end)) if *next < *end => {
                let id = *next;
                *next += 1;
                Some(id)
            }
            _ => None,
        };
        let left = blocks.current.map_or(0, |(next, end)| end - next);
        if left < PREFETCH_BELOW && blocks.next.is_none() && !blocks.reserving {
            blocks.reserving = true;
            self.reserve_in_background();
        }
        id
    }

    /// The next unused producer id, waiting for a block to be reserved if none is at hand.
    pub async fn next_id(&self) -> Result<i64, CommitError> {
        loop {
            if let Some(id) = self.try_next_id() {
                return Ok(id);
            }
            let metadata = self
                .metadata
                .upgrade()
                .ok_or_else(|| CommitError::Unavailable("shutting down".into()))?;
            let block = reserve(&metadata).await?;
            let mut blocks = self.blocks.lock();
            if blocks.next.is_none() {
                blocks.next = Some(block);
            }
        }
    }

    /// Reserves a block ahead if none is (at start, so that the first InitProducerId finds
    /// ids at hand).
    pub async fn reserve_ahead(&self) -> Result<(), CommitError> {
        if self.blocks.lock().next.is_some() {
            return Ok(());
        }
        let metadata = self
            .metadata
            .upgrade()
            .ok_or_else(|| CommitError::Unavailable("shutting down".into()))?;
        let block = reserve(&metadata).await?;
        let mut blocks = self.blocks.lock();
        if blocks.next.is_none() {
            blocks.next = Some(block);
        }
        Ok(())
    }

    fn reserve_in_background(&self) {
        let (metadata, blocks) = (self.metadata.clone(), self.blocks.clone());
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            blocks.lock().reserving = false;
            return;
        };
        runtime.spawn(async move {
            let reserved = match metadata.upgrade() {
                Some(metadata) => reserve(&metadata).await,
                None => return,
            };
            let mut blocks = blocks.lock();
            blocks.reserving = false;
            match reserved {
                Ok(block) if blocks.next.is_none() => blocks.next = Some(block),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "cannot reserve producer ids; will retry on the next request"),
            }
        });
    }
}

/// Reserves the next block of ids in the metadata; returns it as `start..end`. A block
/// another proposal reserved first is a conflict: try again after it.
async fn reserve(metadata: &MetadataStore) -> Result<(i64, i64), CommitError> {
    loop {
        let reserved = metadata
            .propose(|image| {
                let start = image.next_producer_id;
                let next = start + BLOCK_SIZE;
                Ok::<_, CommitError>((
                    vec![MetadataRecord::ProducerIdsAllocated { next }],
                    (start, next),
                ))
            })
            .await;
        match reserved {
            Err(CommitError::Conflict(_)) => continue,
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[tokio::test]
    async fn ids_are_never_handed_out_twice_across_blocks_and_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let store = MetadataStore::open_local(dir.path(), 1).unwrap();
        let ids = ProducerIdAllocator::new(&store);
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..2_500 {
            assert!(seen.insert(ids.next_id().await.unwrap()));
        }
        drop(ids);
        drop(store);
        let store = MetadataStore::open_local(dir.path(), 1).unwrap();
        let ids = ProducerIdAllocator::new(&store);
        let after_restart = ids.next_id().await.unwrap();
        assert!(after_restart > *seen.last().unwrap());
    }

    #[tokio::test]
    async fn the_next_block_is_reserved_before_the_current_one_runs_out() {
        let dir = tempfile::tempdir().unwrap();
        let store = MetadataStore::open_local(dir.path(), 1).unwrap();
        let ids = ProducerIdAllocator::new(&store);
        assert_eq!(ids.next_id().await.unwrap(), 0);
        for expected in 1..(BLOCK_SIZE - PREFETCH_BELOW + 1) {
            assert_eq!(ids.try_next_id(), Some(expected));
        }
        // Below the threshold: a reservation runs in the background.
        for _ in 0..100 {
            if ids.blocks.lock().next.is_some() {
                break;
            }
            tokio::task::yield_now().await;
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert_eq!(ids.blocks.lock().next, Some((BLOCK_SIZE, 2 * BLOCK_SIZE)));
        for expected in (BLOCK_SIZE - PREFETCH_BELOW + 1)..(BLOCK_SIZE + 5) {
            assert_eq!(ids.try_next_id(), Some(expected));
        }
    }
}

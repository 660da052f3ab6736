//! Producer ids for idempotent producers (InitProducerId).
//!
//! Ids are reserved in blocks through the metadata log, so an id is never
//! handed out twice, even after a crash: a restart continues after the last
//! reserved block, skipping whatever was left of it.

use parking_lot::Mutex;

use crate::metadata::{MetadataLogError, MetadataRecord, MetadataStore};

/// Ids reserved per metadata record (Kafka reserves blocks of 1000 too).
const BLOCK_SIZE: i64 = 1000;

/// Hands out producer ids from the current block.
#[derive(Default)]
pub struct ProducerIdAllocator {
    block: Mutex<Option<(i64, i64)>>,
}

impl ProducerIdAllocator {
    /// The next unused producer id, reserving a new block when needed.
    pub fn next_id(&self, metadata: &MetadataStore) -> Result<i64, MetadataLogError> {
        let mut block = self.block.lock();
        if let Some((next, end)) = block.as_mut()
            && *next < *end
        {
            let id = *next;
            *next += 1;
            return Ok(id);
        }
        let start = metadata.commit(|image| {
            let start = image.next_producer_id;
            Ok::<_, MetadataLogError>((
                vec![MetadataRecord::ProducerIdsAllocated {
                    next: start + BLOCK_SIZE,
                }],
                start,
            ))
        })?;
        *block = Some((start + 1, start + BLOCK_SIZE));
        Ok(start)
    }
}

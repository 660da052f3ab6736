//! The changes the metadata log records.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// One change to cluster metadata.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum MetadataRecord {
    /// A topic was created with its partition count and config overrides.
    TopicCreated {
        /// Topic name.
        name: String,
        /// Topic id (KIP-516).
        id: Uuid,
        /// Number of partitions.
        partitions: i32,
        /// Config overrides set at creation.
        configs: BTreeMap<String, String>,
        /// Internal topics (`__consumer_offsets`) are flagged in Metadata.
        #[serde(default)]
        internal: bool,
    },
    /// A topic was deleted.
    TopicDeleted {
        /// Topic id.
        id: Uuid,
    },
    /// Partitions were added; `partitions` is the new total.
    PartitionsCreated {
        /// Topic id.
        id: Uuid,
        /// New partition count.
        partitions: i32,
    },
    /// A topic's config overrides were replaced by `configs`.
    TopicConfigsChanged {
        /// Topic id.
        id: Uuid,
        /// The full set of overrides after the change.
        configs: BTreeMap<String, String>,
    },
    /// Producer ids below `next` are handed out (or reserved by a running broker).
    ProducerIdsAllocated {
        /// First producer id of the next block.
        next: i64,
    },
    /// The broker's dynamic configs were replaced by `configs`.
    BrokerConfigsChanged {
        /// The full set of dynamic broker configs after the change.
        configs: BTreeMap<String, String>,
    },
}

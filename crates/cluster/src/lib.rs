//! Sluice's node-to-node layer. Nodes talk to each other as Kafka brokers do: request
//! frames of the Kafka protocol (followers fetch with Fetch, the quorum sends its own
//! messages), carried by a [`Transport`]. Code that talks to other nodes depends on the
//! trait only, so the same replication and quorum code runs over TCP in production and
//! over [`MemoryNetwork`] in deterministic in-process tests that cut links, drop and
//! delay messages from a seed (TigerBeetle's packet simulator and Redpanda's in-memory
//! raft fixture are the examples).
//!
//! Layering (docs/ARCHITECTURE.md §2): this crate never depends on the broker.

mod memory;
mod transport;

pub use memory::{LinkFaults, MemoryNetwork, MemoryTransport};
pub use transport::{BoxFuture, NodeId, RequestHandler, Transport, TransportError};

//! Sluice's node-to-node layer. Nodes talk to each other through a [`Transport`]: requests
//! of several kinds ([`RpcKind`]: the metadata quorum's messages, forwarded metadata, the
//! brokers' Kafka requests and heartbeats), each answered by the handler registered for
//! it. Code that talks to other nodes depends on the trait only, so the same replication
//! and quorum code runs over TCP in production and over [`MemoryNetwork`] in deterministic
//! in-process tests that cut links, drop and delay messages from a seed (TigerBeetle's
//! packet simulator and Redpanda's in-memory raft fixture are the examples).
//!
//! The metadata quorum ([`quorum`]) replicates the metadata log with Raft and is the
//! `MetadataBackend` of a cluster.
//!
//! Layering (docs/ARCHITECTURE.md §2): this crate never depends on the broker.

mod kinds;
mod memory;
mod node;
pub mod quorum;
pub mod rpc;
mod transport;
mod voters;

pub use kinds::{Channel, Handlers, RpcKind};
pub use memory::{LinkFaults, MemoryNetwork, MemoryTransport};
pub use node::{ClusterConfig, ClusterError, ClusterNode};
pub use transport::{BoxFuture, NodeId, RequestHandler, Transport, TransportError};
pub use voters::{Voter, Voters};

//! The Sluice broker: accepts Kafka clients, serves their requests from the
//! partition logs, and keeps metadata and consumer groups.
//!
//! Layering (docs/ARCHITECTURE.md §2): this crate wires `sluice-protocol` (bytes ↔
//! messages), `sluice-storage` (partition logs), `sluice-group` (group
//! coordinator) and `sluice-txn` (transaction coordinator), both run on
//! `sluice-coordinator` shards, together; the binary only parses
//! configuration and starts a [`Server`].

pub mod admin;
mod authz;
pub mod broker;
#[cfg(test)]
mod cluster_tests;
pub mod config;
pub mod connection;
mod connection_limits;
pub mod controller;
mod coordinator_load;
mod coordinator_log;
mod errors;
pub mod fd_budget;
mod flusher;
mod handlers;
pub mod http;
mod isr;
pub mod jwks;
pub mod log_cleaner;
pub mod log_manager;
mod log_reconciler;
mod log_throttle;
/// Cluster metadata (records, image, log, publishers) lives in its own crate, below the
/// node-to-node layer.
pub use sluice_metadata as metadata;
pub mod metrics;
pub mod partition;
pub mod peer;
pub mod placement;
mod producer_ids;
pub mod quotas;
pub mod replica;
pub mod replica_fetcher;
pub mod replica_manager;
pub mod request;
mod retention;
mod router;
mod sasl;
pub mod security;
pub mod server;
mod session;
#[cfg(test)]
mod test_context;
pub mod topic_admin;
pub mod topic_config;
mod txn_verification;
mod txn_wiring;

pub use config::BrokerConfig;
pub use server::{HttpExtensionFactory, Server, StartError};

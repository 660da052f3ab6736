//! The Sluice broker: accepts Kafka clients, serves their requests from the
//! partition logs, and keeps metadata and consumer groups.
//!
//! Layering (docs/ARCHITECTURE.md §2): this crate wires `sluice-protocol` (bytes ↔
//! messages), `sluice-storage` (partition logs), `sluice-group` (group
//! coordinator) and `sluice-txn` (transaction coordinator), both run on
//! `sluice-coordinator` shards, together; the binary only parses
//! configuration and starts a [`Server`].

pub mod broker;
mod clock;
pub mod config;
pub mod connection;
mod connection_limits;
mod coordinator_load;
mod coordinator_log;
mod errors;
pub mod fd_budget;
mod flusher;
mod handlers;
mod http;
pub mod log_cleaner;
pub mod log_manager;
mod log_reconciler;
mod log_throttle;
pub mod metadata;
pub mod metrics;
pub mod partition;
mod producer_ids;
pub mod replica;
pub mod replica_manager;
pub mod request;
mod retention;
mod router;
pub mod server;
mod session;
#[cfg(test)]
mod test_context;
pub mod topic_admin;
pub mod topic_config;
mod txn_wiring;

pub use config::BrokerConfig;
pub use server::{Server, StartError};

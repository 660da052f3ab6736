//! `sluice-txn`: Kafka's transaction coordinator.
//!
//! Implements what transactional producers talk to (KIP-98): InitProducerId
//! for transactional ids with epoch bumps, zombie fencing and KIP-360
//! recovery, AddPartitionsToTxn (with the KIP-890 batched verify-only form),
//! AddOffsetsToTxn, EndTxn (with the KIP-890 epoch bump of version 5),
//! transaction timeouts, transactional id expiration, and the admin APIs
//! DescribeTransactions and ListTransactions, behaving like Apache Kafka's
//! coordinator as observed by clients.
//!
//! Transactional ids live in one shard per `__transaction_state` partition,
//! which the broker loads ([`TransactionCoordinator::load`]) and unloads
//! ([`TransactionCoordinator::unload`]) as it gains and loses the partition's
//! leadership; an id whose partition is not loaded here gets NOT_COORDINATOR.
//! States are records of `__transaction_state` in Kafka's own schemas
//! ([`records`]), written through a [`PartitionWriter`] and, once durable,
//! applied with the same replay that loads the partition. Markers go through
//! a [`MarkerWriter`]; producer ids come from a [`ProducerIdSource`]. The
//! produce path asks [`TransactionCoordinator::verify_partition`] before
//! accepting a transactional write (KIP-890 part 1).
//!
//! When transactions start and ids were last used, and so when they time out
//! and expire, is read from an injected clock
//! ([`TransactionCoordinator::with_clock`]; the system clock by default), so
//! tests reach a deadline by moving a manual clock.

mod add;
mod config;
mod coordinator;
mod describe;
mod end;
mod error;
mod init;
mod metadata;
mod pattern;
mod ports;
pub mod records;
mod replay;
mod shard;
mod state;
mod timeout;
mod verify;

pub use config::TxnConfig;
pub use coordinator::{PartitionCheck, TransactionCoordinator};
pub use error::MarkerError;
pub use ports::{MarkerFuture, MarkerWriter, ProducerIdSource};
pub use sluice_coordinator::{
    AppendFuture, CoordinatorRecord, LogEntry, PartitionLoader, PartitionWriter, WriteError,
};
/// A record of `__transaction_state` could not be encoded or decoded (the
/// error of the codec shared with `__consumer_offsets`).
pub use sluice_protocol::schema_codec::CodecError;
pub use state::TxnState;

//! `sluice-group`: Kafka's classic consumer group coordinator.
//!
//! Implements the group membership protocol (JoinGroup, SyncGroup,
//! Heartbeat, LeaveGroup, with member ids required by KIP-394 and static
//! membership from KIP-345), the group state machine (Empty,
//! PreparingRebalance, CompletingRebalance, Stable, Dead), committed offsets
//! (OffsetCommit, OffsetFetch, OffsetDelete, retention) and the admin APIs
//! (DescribeGroups, ListGroups, DeleteGroups), behaving like Apache Kafka's
//! coordinator as observed by clients.
//!
//! The broker answers FindCoordinator and routes the group requests here.
//! Groups live in one shard per `__consumer_offsets` partition, which the
//! broker loads ([`GroupCoordinator::load`]) and unloads
//! ([`GroupCoordinator::unload`]) as it gains and loses the partition's
//! leadership; a group whose partition is not loaded here gets
//! NOT_COORDINATOR. Durability goes through a [`PartitionWriter`]: offsets
//! and group snapshots are records of `__consumer_offsets` in Kafka's own
//! schemas ([`records`]), and once durable a shard applies them with the
//! same replay that loads the partition.
//!
//! Transactional offset commits (TxnOffsetCommit) are written as
//! transactional batches and stay pending until the broker reports the
//! transaction's marker ([`GroupCoordinator::complete_transaction`]).
//!
//! Commit and expiry timestamps, and when a group changed state (the start of
//! an Empty group's offset retention), are read from an injected clock
//! ([`GroupCoordinator::with_clock`]; the system clock by default); timers
//! (sessions, rebalance deadlines) run on tokio's clock.

mod admin;
mod commit;
mod config;
mod coordinator;
mod expiry;
mod fetch;
mod group;
mod heartbeat;
mod image;
mod join;
mod leave;
mod member;
mod memory_log;
mod offsets;
mod rebalance;
pub mod records;
mod replay;
mod reply;
mod scheduler;
mod shard;
mod state;
mod static_member;
mod sync;
mod txn;

pub use admin::GROUP_AUTHORIZED_OPERATIONS;
pub use config::GroupConfig;
pub use coordinator::GroupCoordinator;
pub use image::GroupImage;
pub use memory_log::{MemoryGroupLog, MemoryLogEntry};
pub use sluice_coordinator::{
    AppendFuture, CoordinatorRecord, LogEntry, PartitionLoader, PartitionWriter, WriteError,
};
/// A record of `__consumer_offsets` could not be encoded or decoded (the
/// error of the codec shared with `__transaction_state`).
pub use sluice_protocol::schema_codec::CodecError;
pub use state::GroupState;

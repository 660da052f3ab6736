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
//! Durability goes through a [`GroupLog`]: offsets and group snapshots are
//! records of `__consumer_offsets` in Kafka's own schemas ([`records`]), and
//! [`GroupCoordinator::load`] rebuilds the state from them at startup.
//!
//! Transactional offset commits (TxnOffsetCommit) are written as
//! transactional batches through [`GroupLog::append_transactional`] and stay
//! pending until the broker reports the transaction's marker
//! ([`GroupCoordinator::complete_transaction`]).

mod admin;
mod commit;
mod config;
mod coordinator;
mod error;
mod expiry;
mod fetch;
mod group;
mod heartbeat;
mod join;
mod leave;
mod load;
mod log;
mod member;
mod offsets;
mod rebalance;
pub mod records;
mod reply;
mod scheduler;
mod state;
mod static_member;
mod sync;
mod txn;

pub use admin::GROUP_AUTHORIZED_OPERATIONS;
pub use config::GroupConfig;
pub use coordinator::GroupCoordinator;
pub use error::{CodecError, GroupError, GroupLogError, SkippedRecord};
pub use log::{AppendFuture, GroupLog, GroupRecord, MemoryGroupLog, MemoryLogEntry};
pub use state::GroupState;

/// Wall-clock milliseconds since the Unix epoch (commit timestamps, state
/// timestamps). Timers use tokio's clock instead.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

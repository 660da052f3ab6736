//! `sluice-coordinator`: what the group coordinator (`sluice-group`) and the
//! transaction coordinator (`sluice-txn`) share, after Kafka's
//! `coordinator-common` module.
//!
//! A coordinator keeps its state in an internal topic (`__consumer_offsets`,
//! `__transaction_state`). Each partition of that topic has one
//! [`CoordinatorShard`]: the state of the keys (group ids, transactional ids)
//! that hash to it. The node leading a partition loads its shard by replaying
//! the partition's log and unloads it when it stops leading; requests for a key
//! whose shard is not loaded here get NOT_COORDINATOR, and
//! COORDINATOR_LOAD_IN_PROGRESS while it loads ([`Shards`]).
//!
//! An operation decides under its shard's lock and hands records to a
//! [`PartitionWriter`]; once they are durable the shard applies them with the
//! same [`CoordinatorShard::replay`] that loading uses, so the state built by
//! live writes and the state rebuilt from the log cannot drift apart.
//! Write failures are one typed [`WriteError`], mapped to Kafka codes in one
//! place ([`WriteError::response_error`]).

mod error;
mod record;
mod runtime;
mod writer;

pub use error::{CoordinatorError, WriteError};
pub use record::{CoordinatorRecord, LogEntry};
pub use runtime::{ActiveShard, CoordinatorShard, PartitionLoader, ShardCell, ShardLoader, Shards};
pub use writer::{AppendFuture, PartitionWriter};

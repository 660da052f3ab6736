//! The groups of one `__consumer_offsets` partition (Kafka's
//! `GroupCoordinatorShard`).
//!
//! Every request for a group runs on its shard, under the shard's lock, and
//! decides there; the records it writes go through the shard's scheduler,
//! which replays them into the shard once they are durable
//! ([`crate::replay`]): the same replay that loads the partition.

use std::collections::HashMap;
use std::sync::{Arc, Weak};

use kafka_protocol::error::ResponseError;
use sluice_coordinator::{CoordinatorShard, LogEntry, PartitionWriter, ShardCell};
use sluice_protocol::clock::Clock;

use crate::CodecError;
use crate::config::GroupConfig;
use crate::group::Group;
use crate::join::join_error;
use crate::scheduler::Scheduler;
use crate::sync::sync_error;

/// The groups of one partition with their timers and write queues.
pub(crate) struct GroupShard {
    pub config: GroupConfig,
    pub groups: HashMap<String, Group>,
    pub sched: Scheduler,
}

impl GroupShard {
    /// An empty shard of `partition`, living in `cell`, writing through
    /// `writer` and telling the time by `clock`.
    pub fn new(
        config: GroupConfig,
        cell: Weak<ShardCell<GroupShard>>,
        writer: Arc<dyn PartitionWriter>,
        partition: i32,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let sched = Scheduler::new(
            cell,
            writer,
            partition,
            config.initial_rebalance_delay_ms,
            clock,
        );
        Self {
            config,
            groups: HashMap::new(),
            sched,
        }
    }
}

impl CoordinatorShard for GroupShard {
    fn replay(&mut self, entry: &LogEntry) -> Result<(), CodecError> {
        crate::replay::replay(self, entry)
    }

    fn on_loaded(&mut self) {
        crate::replay::on_loaded(self);
    }

    /// Like Kafka's `onUnloaded`: timers stop, and requests parked in a
    /// rebalance learn that this node no longer coordinates their group.
    fn on_unloaded(&mut self) {
        self.sched.shut_down();
        for g in self.groups.values_mut() {
            for member in g.members.values_mut() {
                if let Some(waiter) = member.join_waiter.take() {
                    let _ = waiter.send(join_error(&member.id, ResponseError::NotCoordinator));
                }
                if let Some(waiter) = member.sync_waiter.take() {
                    let _ = waiter.send(sync_error(ResponseError::NotCoordinator));
                }
            }
        }
        self.groups.clear();
    }
}

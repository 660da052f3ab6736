//! Applying `__consumer_offsets` entries to a shard: the one path by which
//! what the log says becomes state, for live writes once they are durable
//! and for loading a partition alike.
//!
//! Records apply in log order; later records replace earlier ones and
//! tombstones delete. A membership snapshot only records what the log says
//! about a group's members: live, the members are already at (or past) it.
//! Once a partition is loaded, each group's members are rebuilt from its last
//! snapshot and get a fresh session timer ([`on_loaded`]): consumers that
//! keep heartbeating across the restart stay in the group, the others expire
//! and the group rebalances, as after a Kafka coordinator failover.

use sluice_coordinator::{CoordinatorRecord, LogEntry};
use sluice_protocol::model::TopicPartition;

use crate::CodecError;
use crate::group::Group;
use crate::offsets::OffsetAndMetadata;
use crate::rebalance::{prepare_rebalance, reschedule_session};
use crate::records::{GroupMetadataValue, GroupRecordKey, OffsetCommitValue};
use crate::shard::GroupShard;

/// Applies one entry. An undecodable record changes nothing.
pub(crate) fn replay(shard: &mut GroupShard, entry: &LogEntry) -> Result<(), CodecError> {
    match entry {
        LogEntry::Record {
            record,
            transactional,
        } => replay_record(shard, record, transactional.map(|p| p.producer_id)),
        LogEntry::Marker { producer, commit } => {
            // The shard holds only the groups of the marker's partition.
            for g in shard.groups.values_mut() {
                g.offsets.complete_txn(producer.producer_id, *commit);
            }
            Ok(())
        }
    }
}

/// `producer_id` is set for a record of a transactional batch: its offset
/// stays pending until the producer's marker.
fn replay_record(
    shard: &mut GroupShard,
    record: &CoordinatorRecord,
    producer_id: Option<i64>,
) -> Result<(), CodecError> {
    match GroupRecordKey::decode(&record.key)? {
        GroupRecordKey::OffsetCommit {
            group,
            topic,
            partition,
        } => {
            let tp = TopicPartition::new(topic, partition);
            match &record.value {
                Some(value) => {
                    let value = OffsetCommitValue::decode(value)?;
                    replay_offset(shard, group, tp, value, producer_id);
                }
                None => {
                    if let Some(g) = shard.groups.get_mut(&group) {
                        g.offsets.delete(&tp);
                    }
                }
            }
        }
        GroupRecordKey::GroupMetadata { group } => match &record.value {
            Some(value) => {
                let value = GroupMetadataValue::decode(value)?;
                replay_snapshot(shard, group, value);
            }
            None => {
                shard.groups.remove(&group);
                shard.sched.cancel_group(&group);
            }
        },
    }
    Ok(())
}

fn replay_offset(
    shard: &mut GroupShard,
    group: String,
    tp: TopicPartition,
    value: OffsetCommitValue,
    producer_id: Option<i64>,
) {
    // Offsets without group metadata belong to a "simple" group.
    let now = shard.sched.now_ms();
    let g = shard
        .groups
        .entry(group)
        .or_insert_with_key(|id| Group::new(id, now));
    let offset = OffsetAndMetadata::from_value(value, g.offsets.next_order());
    match producer_id {
        None => g.offsets.put(tp, offset),
        Some(pid) => g.offsets.add_txn(pid, tp, offset),
    }
}

fn replay_snapshot(shard: &mut GroupShard, group: String, value: GroupMetadataValue) {
    match shard.groups.get_mut(&group) {
        Some(g) => g.snapshot = Some(value),
        None => {
            let g = Group::from_snapshot(&group, value, shard.sched.now_ms());
            shard.groups.insert(group, g);
        }
    }
}

/// The partition is loaded: every group comes back with the members of its
/// last snapshot, whose sessions start now.
pub(crate) fn on_loaded(shard: &mut GroupShard) {
    let GroupShard {
        groups,
        sched,
        config,
    } = shard;
    let now = sched.now_ms();
    for g in groups.values_mut() {
        g.restore_membership(now);
        let member_ids: Vec<String> = g.members.keys().cloned().collect();
        for member_id in &member_ids {
            reschedule_session(g, sched, member_id);
        }
        if g.members.len() > config.max_group_size {
            prepare_rebalance(g, sched, "freshly loaded group is over its maximum size");
        }
    }
}

//! Removal of offsets nobody needs any more: retention expiry (Kafka's
//! `offsets.retention.minutes` cleanup, which also deletes groups left Empty
//! without offsets) and offsets of deleted topics.

use kafka_protocol::error::ResponseError;
use sluice_protocol::model::TopicPartition;
use tokio::sync::oneshot;

use crate::CodecError;
use crate::admin::remove_when_written;
use crate::records::{group_tombstone, offset_tombstone};
use crate::shard::GroupShard;
use crate::state::GroupState;

type Done = oneshot::Receiver<Result<(), ResponseError>>;

/// Writes tombstones for expired offsets; an Empty group whose offsets are
/// all gone is deleted too. Returns the writes to wait for.
pub(crate) fn expire(state: &mut GroupShard, now_ms: i64) -> Vec<Done> {
    let GroupShard {
        groups,
        sched,
        config,
    } = state;
    let mut waits = Vec::new();
    let mut ids: Vec<String> = groups.keys().cloned().collect();
    ids.sort();
    for group_id in ids {
        let Some(g) = groups.get_mut(&group_id) else {
            continue;
        };
        if g.is(GroupState::Dead) {
            continue;
        }
        let (expired, all_expired) = if g.offsets.has_offsets() {
            match g.expiration_base() {
                Some(base) => g
                    .offsets
                    .expired(base, now_ms, config.offsets_retention_ms, |t| {
                        g.is_subscribed_to_topic(t)
                    }),
                None => (Vec::new(), false),
            }
        } else {
            (Vec::new(), true)
        };
        let delete_group = all_expired && g.is(GroupState::Empty);
        if expired.is_empty() && !delete_group {
            continue;
        }
        let mut records: Result<Vec<_>, CodecError> = expired
            .iter()
            .map(|tp| offset_tombstone(&group_id, tp))
            .collect();
        if delete_group && let Ok(records) = records.as_mut() {
            match group_tombstone(&group_id) {
                Ok(tombstone) => records.push(tombstone),
                Err(e) => {
                    tracing::warn!(group = %group_id, error = %e, "cannot encode group tombstone")
                }
            }
        }
        let records = records.map_err(Into::into);
        let (tx, rx) = oneshot::channel();
        if delete_group {
            tracing::info!(group = %group_id, generation = g.generation, "group is empty without offsets; deleting it");
            g.transition_to(GroupState::Dead, now_ms);
            remove_when_written(
                sched,
                &group_id,
                records,
                Box::new(move |result| {
                    let _ = tx.send(result);
                }),
            );
        } else {
            sched.write(
                &group_id,
                records,
                Box::new(move |_, result| {
                    let _ = tx.send(result.map_err(|e| e.response_error()));
                }),
            );
        }
        waits.push(rx);
    }
    waits
}

/// Writes tombstones for every committed (or pending transactional) offset of `topic`.
pub(crate) fn topic_deleted(state: &mut GroupShard, topic: &str) -> Vec<Done> {
    let GroupShard { groups, sched, .. } = state;
    let mut waits = Vec::new();
    for g in groups.values_mut() {
        if g.is(GroupState::Dead) {
            continue;
        }
        let partitions = g.offsets.partitions_of(topic);
        if partitions.is_empty() {
            continue;
        }
        let records = partitions
            .iter()
            .map(|p| offset_tombstone(&g.id, &TopicPartition::new(topic, *p)))
            .collect::<Result<Vec<_>, CodecError>>()
            .map_err(Into::into);
        let (tx, rx) = oneshot::channel();
        // Transactional offsets of the topic go too, as in Kafka: replaying a
        // tombstone drops them.
        sched.write(
            &g.id,
            records,
            Box::new(move |_, result| {
                let _ = tx.send(result.map_err(|e| e.response_error()));
            }),
        );
        waits.push(rx);
    }
    waits
}

//! OffsetFetch: reading committed offsets.

use crate::coordinator::State;
use crate::state::GroupState;

/// One partition of an OffsetFetch answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FetchedPartition {
    pub partition: i32,
    /// -1 when nothing is committed.
    pub offset: i64,
    /// -1 when unknown.
    pub leader_epoch: i32,
    pub metadata: String,
}

/// The offsets of `topics` (or of every committed partition when `None`).
/// Unknown groups and partitions read as offset -1, as in Kafka.
pub(crate) fn fetch(
    state: &State,
    group_id: &str,
    topics: Option<&[(String, Vec<i32>)]>,
) -> Vec<(String, Vec<FetchedPartition>)> {
    let group = state
        .groups
        .get(group_id)
        .filter(|g| !g.is(GroupState::Dead));
    match topics {
        None => {
            let Some(g) = group else {
                return Vec::new();
            };
            let mut out: Vec<(String, Vec<FetchedPartition>)> = Vec::new();
            for (topic, partition, o) in g.offsets.iter() {
                let fetched = FetchedPartition {
                    partition,
                    offset: o.offset,
                    leader_epoch: o.leader_epoch.unwrap_or(-1),
                    metadata: o.metadata.clone(),
                };
                match out.last_mut() {
                    Some((t, partitions)) if t == topic => partitions.push(fetched),
                    _ => out.push((topic.to_owned(), vec![fetched])),
                }
            }
            out
        }
        Some(topics) => topics
            .iter()
            .map(|(topic, partitions)| {
                let fetched = partitions
                    .iter()
                    .map(|&partition| match group.and_then(|g| g.offsets.get(topic, partition)) {
                        Some(o) => FetchedPartition {
                            partition,
                            offset: o.offset,
                            leader_epoch: o.leader_epoch.unwrap_or(-1),
                            metadata: o.metadata.clone(),
                        },
                        None => FetchedPartition {
                            partition,
                            offset: -1,
                            leader_epoch: -1,
                            metadata: String::new(),
                        },
                    })
                    .collect();
                (topic.clone(), fetched)
            })
            .collect(),
    }
}

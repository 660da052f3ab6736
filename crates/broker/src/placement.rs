//! Where the replicas of new partitions go (Kafka's `StripedReplicaPlacer`): on distinct
//! live brokers, the leaders (first replicas) spread evenly, and — when brokers have
//! racks — the replicas of a partition on as many racks as there are.
//!
//! The brokers are ordered rack by rack in turn (rack a's first broker, rack b's first,
//! …, then each rack's second, …) and partition p takes `replication` brokers in a row
//! starting at position p: consecutive brokers of that order are on different racks
//! whenever racks allow it, so a partition loses at most one replica to a rack failure
//! when racks are of equal size and it has no more replicas than there are racks.
//! Without racks this is the plain striped placement.

use std::collections::BTreeMap;
use std::ops::Range;

use crate::metadata::PartitionAssignment;

/// A live broker a replica may be placed on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// Its node id.
    pub id: i32,
    /// Its rack (`broker.rack`), if it has one.
    pub rack: Option<String>,
}

/// The replicas of partitions `indexes`, `replication` each, on `brokers` (which must be
/// at least `replication` many; the caller checks).
pub fn place(
    brokers: &[Candidate],
    indexes: Range<i32>,
    replication: usize,
) -> Vec<PartitionAssignment> {
    let order = rack_alternating(brokers);
    let n = order.len().max(1);
    indexes
        .map(|p| {
            let first = usize::try_from(p).unwrap_or(0);
            let replicas = (0..replication.min(order.len()))
                .filter_map(|r| order.get((first + r) % n).copied())
                .collect();
            PartitionAssignment(replicas)
        })
        .collect()
}

/// The brokers in the order placement walks: by node id within a rack, the racks taking
/// turns (brokers without a rack form a rack of their own).
fn rack_alternating(brokers: &[Candidate]) -> Vec<i32> {
    let mut racks: BTreeMap<Option<&str>, Vec<i32>> = BTreeMap::new();
    for b in brokers {
        racks.entry(b.rack.as_deref()).or_default().push(b.id);
    }
    for ids in racks.values_mut() {
        ids.sort_unstable();
    }
    let deepest = racks.values().map(Vec::len).max().unwrap_or(0);
    (0..deepest)
        .flat_map(|i| racks.values().filter_map(move |ids| ids.get(i).copied()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn brokers(specs: &[(i32, Option<&str>)]) -> Vec<Candidate> {
        specs
            .iter()
            .map(|&(id, rack)| Candidate {
                id,
                rack: rack.map(str::to_string),
            })
            .collect()
    }

    fn replicas(assignments: &[PartitionAssignment]) -> Vec<Vec<i32>> {
        assignments.iter().map(|a| a.0.clone()).collect()
    }

    #[test]
    fn without_racks_leaders_are_striped_over_the_brokers() {
        let b = brokers(&[(3, None), (1, None), (2, None)]);
        assert_eq!(
            replicas(&place(&b, 0..4, 2)),
            vec![vec![1, 2], vec![2, 3], vec![3, 1], vec![1, 2]]
        );
        assert_eq!(replicas(&place(&b, 5..6, 3)), vec![vec![3, 1, 2]]);
    }

    #[test]
    fn unequal_racks_still_give_distinct_brokers_and_spread_leaders() {
        // Racks of unequal size: a = {1, 2, 3}, b = {4}, c = {5, 6}.
        let b = brokers(&[
            (1, Some("a")),
            (2, Some("a")),
            (3, Some("a")),
            (4, Some("b")),
            (5, Some("c")),
            (6, Some("c")),
        ]);
        let placed = replicas(&place(&b, 0..6, 3));
        for (p, replicas) in placed.iter().enumerate() {
            let mut distinct: Vec<i32> = replicas.clone();
            distinct.sort_unstable();
            distinct.dedup();
            assert_eq!(distinct.len(), 3, "partition {p}: {replicas:?}");
        }
        // The racks take turns: rack a, b, c, then a and c again, then a.
        assert_eq!(placed[0], vec![1, 4, 5]);
        assert_eq!(placed[1], vec![4, 5, 2]);
        // Every broker leads some partition.
        let mut leaders: Vec<i32> = placed.iter().map(|r| r[0]).collect();
        leaders.sort_unstable();
        assert_eq!(leaders, vec![1, 2, 3, 4, 5, 6]);
    }

    #[test]
    fn balanced_racks_put_every_replica_of_a_partition_on_its_own_rack() {
        let b = brokers(&[
            (1, Some("a")),
            (2, Some("b")),
            (3, Some("c")),
            (4, Some("a")),
            (5, Some("b")),
            (6, Some("c")),
        ]);
        for replicas in replicas(&place(&b, 0..12, 3)) {
            let mut racks: Vec<_> = replicas
                .iter()
                .map(|&id| b.iter().find(|c| c.id == id).unwrap().rack.clone())
                .collect();
            racks.sort();
            racks.dedup();
            assert_eq!(racks.len(), 3, "{replicas:?}");
        }
    }
}

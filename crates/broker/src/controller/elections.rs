//! How a partition's leader and ISR change when brokers come and go — Kafka's
//! `PartitionChangeBuilder` (metadata/src/main/java/org/apache/kafka/controller/), without
//! the KIP-966 eligible leader replicas:
//!
//! - a broker that is fenced or shutting down leaves the ISR, except the last member, which
//!   stays (the partition then has no leader until it comes back: only it has every
//!   committed record);
//! - the leader stays while it may; otherwise the first replica, in the assignment's
//!   order, that is in the ISR and eligible takes over; with none, and unclean election
//!   enabled, the first eligible replica out of the ISR (alone in a new ISR: it may lack
//!   committed records, which is what "unclean" means); else no leader (-1);
//! - the leader epoch moves on exactly when the leader changes; the partition epoch (the
//!   compare-and-swap token) on every change, which the metadata image does.

use crate::metadata::PartitionRegistration;

/// A partition's leader and ISR after a change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionChange {
    /// The leader from now on (-1: none).
    pub leader: i32,
    /// The leader epoch from now on.
    pub leader_epoch: i32,
    /// The ISR from now on.
    pub isr: Vec<i32>,
}

/// Which leader an election looks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Election {
    /// Keep the leader if it may lead, else elect one (after a broker is fenced, shuts
    /// down or comes back).
    KeepOrElect,
    /// The preferred replica (the first of the assignment), when it is in the ISR and
    /// eligible (ElectLeaders PREFERRED, auto leader rebalance).
    Preferred,
    /// Like `KeepOrElect`, with a replica out of the ISR as the last resort whatever the
    /// topic says (ElectLeaders UNCLEAN).
    Unclean,
}

/// The change `registration` needs when only the brokers `eligible` says may lead or be
/// in sync; `None` when none is needed. `unclean` is the topic's
/// `unclean.leader.election.enable`.
pub fn change_for(
    registration: &PartitionRegistration,
    eligible: impl Fn(i32) -> bool,
    election: Election,
    unclean: bool,
) -> Option<PartitionChange> {
    let mut isr: Vec<i32> = registration
        .isr
        .iter()
        .copied()
        .filter(|&r| eligible(r))
        .collect();
    if isr.is_empty() {
        // The last in-sync replica stays in the ISR while it is away.
        isr.clone_from(&registration.isr);
    }
    let in_sync_leader = |r: &i32| isr.contains(r) && eligible(*r);
    let current = registration.leader;
    let leader = match election {
        Election::Preferred => {
            let preferred = registration.replicas.first().copied();
            preferred.filter(in_sync_leader)?
        }
        Election::KeepOrElect | Election::Unclean if current >= 0 && in_sync_leader(&current) => {
            current
        }
        Election::KeepOrElect | Election::Unclean => {
            let clean = registration.replicas.iter().copied().find(in_sync_leader);
            let unclean_choice = (unclean || election == Election::Unclean)
                .then(|| registration.replicas.iter().copied().find(|&r| eligible(r)))
                .flatten();
            match (clean, unclean_choice) {
                (Some(leader), _) => leader,
                (None, Some(leader)) => {
                    isr = vec![leader];
                    leader
                }
                (None, None) => -1,
            }
        }
    };
    let leader_epoch = if leader == current {
        registration.leader_epoch.0
    } else {
        registration.leader_epoch.0 + 1
    };
    let change = PartitionChange {
        leader,
        leader_epoch,
        isr,
    };
    let unchanged = change.leader == current && change.isr == registration.isr;
    (!unchanged).then_some(change)
}

#[cfg(test)]
mod tests {
    use sluice_protocol::model::LeaderEpoch;

    use super::*;

    fn partition(replicas: &[i32], isr: &[i32], leader: i32) -> PartitionRegistration {
        PartitionRegistration {
            replicas: replicas.to_vec(),
            isr: isr.to_vec(),
            leader,
            leader_epoch: LeaderEpoch(4),
            partition_epoch: 9,
        }
    }

    fn change(leader: i32, leader_epoch: i32, isr: &[i32]) -> Option<PartitionChange> {
        Some(PartitionChange {
            leader,
            leader_epoch,
            isr: isr.to_vec(),
        })
    }

    #[test]
    fn a_fenced_follower_leaves_the_isr_and_the_leader_stays() {
        let p = partition(&[1, 2, 3], &[1, 2, 3], 1);
        let got = change_for(&p, |b| b != 3, Election::KeepOrElect, false);
        assert_eq!(got, change(1, 4, &[1, 2]), "leader epoch unchanged");
    }

    #[test]
    fn a_fenced_leader_gives_way_to_the_first_in_sync_replica_in_assignment_order() {
        let p = partition(&[1, 3, 2], &[2, 3, 1], 1);
        assert_eq!(
            change_for(&p, |b| b != 1, Election::KeepOrElect, false),
            change(3, 5, &[2, 3])
        );
    }

    #[test]
    fn the_last_in_sync_replica_stays_and_the_partition_goes_offline() {
        let p = partition(&[1, 2, 3], &[1], 1);
        assert_eq!(
            change_for(&p, |b| b != 1, Election::KeepOrElect, false),
            change(-1, 5, &[1])
        );
        // When it comes back it leads again, at a new epoch.
        let offline = partition(&[1, 2, 3], &[1], -1);
        assert_eq!(
            change_for(&offline, |_| true, Election::KeepOrElect, false),
            change(1, 5, &[1])
        );
    }

    #[test]
    fn unclean_election_takes_a_replica_out_of_the_isr_only_when_enabled() {
        let offline = partition(&[1, 2, 3], &[1], -1);
        let without_1 = |b| b != 1;
        assert_eq!(
            change_for(&offline, without_1, Election::KeepOrElect, false),
            None
        );
        assert_eq!(
            change_for(&offline, without_1, Election::KeepOrElect, true),
            change(2, 5, &[2])
        );
        assert_eq!(
            change_for(&offline, without_1, Election::Unclean, false),
            change(2, 5, &[2])
        );
    }

    #[test]
    fn the_preferred_replica_leads_again_once_it_is_in_sync() {
        let p = partition(&[1, 2, 3], &[2, 3], 2);
        assert_eq!(change_for(&p, |_| true, Election::Preferred, false), None);
        let back = partition(&[1, 2, 3], &[1, 2, 3], 2);
        assert_eq!(
            change_for(&back, |_| true, Election::Preferred, false),
            change(1, 5, &[1, 2, 3])
        );
        assert_eq!(
            change_for(&back, |b| b != 1, Election::Preferred, false),
            None,
            "not while it is fenced"
        );
    }

    #[test]
    fn nothing_changes_when_every_replica_is_eligible() {
        let p = partition(&[1, 2, 3], &[1, 2, 3], 1);
        assert_eq!(change_for(&p, |_| true, Election::KeepOrElect, false), None);
    }
}

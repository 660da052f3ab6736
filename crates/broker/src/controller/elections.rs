//! How a partition's leader, ISR and replicas change — Kafka's `PartitionChangeBuilder`
//! (metadata/src/main/java/org/apache/kafka/controller/), without the KIP-966 eligible
//! leader replicas:
//!
//! - a broker that is fenced or shutting down leaves the ISR, except the last member, which
//!   stays (the partition then has no leader until it comes back: only it has every
//!   committed record);
//! - a reassignment (KIP-455) completes as soon as every replica it heads to is in the
//!   ISR: the replicas become the target, those it removes leave the ISR, and nothing is
//!   being added or removed any more ([`Assignment::completed`]);
//! - the leader stays while it may; otherwise the first replica, in the assignment's
//!   order, that is in the ISR and eligible takes over; with none, and unclean election
//!   enabled, the first eligible replica out of the ISR (alone in a new ISR: it may lack
//!   committed records, which is what "unclean" means); else no leader (-1);
//! - the leader epoch moves on when the leader changes, and when replicas are removed
//!   (so that a removed replica's fetches are fenced, as Kafka does); the partition epoch
//!   (the compare-and-swap token) on every change, which the metadata image does.

use crate::metadata::PartitionRegistration;

/// A partition's leader and ISR (and, when they change, replicas) after a change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionChange {
    /// The leader from now on (-1: none).
    pub leader: i32,
    /// The leader epoch from now on.
    pub leader_epoch: i32,
    /// The ISR from now on.
    pub isr: Vec<i32>,
    /// The replicas from now on, when they change.
    pub assignment: Option<Assignment>,
}

/// A partition's replicas, with those an ongoing reassignment adds and removes (both
/// empty when none is going on).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    /// Every replica, the preferred leader first.
    pub replicas: Vec<i32>,
    /// Replicas being added.
    pub adding: Vec<i32>,
    /// Replicas being removed.
    pub removing: Vec<i32>,
}

impl Assignment {
    /// The replicas of `registration` as they are.
    pub fn of(registration: &PartitionRegistration) -> Self {
        Self {
            replicas: registration.replicas.clone(),
            adding: registration.adding_replicas.clone(),
            removing: registration.removing_replicas.clone(),
        }
    }

    /// Replicas `replicas`, nothing being added or removed.
    pub fn settled(replicas: Vec<i32>) -> Self {
        Self {
            replicas,
            adding: Vec::new(),
            removing: Vec::new(),
        }
    }

    /// Whether a reassignment is going on.
    pub fn is_reassigning(&self) -> bool {
        !self.adding.is_empty() || !self.removing.is_empty()
    }

    /// The finished reassignment and its ISR, if `isr` lets it finish: every replica but
    /// those removed, with the removed ones out of the ISR — once all of the remaining
    /// replicas are in sync, and some are (Kafka's `maybeCompleteReassignment`).
    pub fn completed(&self, isr: &[i32]) -> Option<(Self, Vec<i32>)> {
        if !self.is_reassigning() {
            return None;
        }
        let kept = |r: &i32| !self.removing.contains(r);
        let isr: Vec<i32> = isr.iter().copied().filter(kept).collect();
        let replicas: Vec<i32> = self.replicas.iter().copied().filter(kept).collect();
        if isr.is_empty() || replicas.is_empty() || !replicas.iter().all(|r| isr.contains(r)) {
            return None;
        }
        Some((Self::settled(replicas), isr))
    }
}

/// Which leader an election looks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Election {
    /// Keep the leader if it may lead, else elect one (after a broker is fenced, shuts
    /// down or comes back).
    KeepOrElect,
    /// The preferred replica (the first of the assignment), when it is in the ISR and
    /// eligible (ElectLeaders PREFERRED, auto leader rebalance); otherwise as
    /// `KeepOrElect`.
    Preferred,
    /// Like `KeepOrElect`, with a replica out of the ISR as the last resort whatever the
    /// topic says (ElectLeaders UNCLEAN).
    Unclean,
}

/// What a change asks of a partition: this ISR and these replicas (the builder's targets).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The ISR asked for; ineligible members leave it (but the last one).
    pub isr: Vec<i32>,
    /// The replicas asked for.
    pub assignment: Assignment,
}

impl Target {
    /// The partition as it is: what the controller's checks start from.
    pub fn current(registration: &PartitionRegistration) -> Self {
        Self {
            isr: registration.isr.clone(),
            assignment: Assignment::of(registration),
        }
    }
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
    plan(
        registration,
        Target::current(registration),
        eligible,
        election,
        unclean,
    )
}

/// The change that takes `registration` to `target` (completing a reassignment that
/// may complete, electing a leader where the current one may not lead any more); `None`
/// when nothing would change.
pub fn plan(
    registration: &PartitionRegistration,
    target: Target,
    eligible: impl Fn(i32) -> bool,
    election: Election,
    unclean: bool,
) -> Option<PartitionChange> {
    let mut isr: Vec<i32> = target
        .isr
        .iter()
        .copied()
        .filter(|&r| eligible(r))
        .collect();
    if isr.is_empty() {
        // The last in-sync replica stays in the ISR while it is away.
        isr.clone_from(&target.isr);
    }
    let mut assignment = target.assignment;
    if let Some((completed, completed_isr)) = assignment.completed(&isr) {
        assignment = completed;
        isr = completed_isr;
    }
    let (leader, isr) = elect(
        registration.leader,
        &assignment.replicas,
        isr,
        eligible,
        election,
        unclean,
    );
    // Removed replicas must stop fetching: a new epoch fences them (Kafka's
    // `triggerLeaderEpochBumpForReplicaReassignmentIfNeeded`).
    let removes_replicas = registration
        .replicas
        .iter()
        .any(|r| !assignment.replicas.contains(r));
    let leader_epoch = if leader != registration.leader || removes_replicas {
        registration.leader_epoch.0 + 1
    } else {
        registration.leader_epoch.0
    };
    let assignment = (assignment != Assignment::of(registration)).then_some(assignment);
    let unchanged =
        leader == registration.leader && isr == registration.isr && assignment.is_none();
    (!unchanged).then_some(PartitionChange {
        leader,
        leader_epoch,
        isr,
        assignment,
    })
}

/// The leader among `replicas` (in their order) under `election`, and the ISR with it (an
/// unclean leader is alone in it).
fn elect(
    current: i32,
    replicas: &[i32],
    isr: Vec<i32>,
    eligible: impl Fn(i32) -> bool,
    election: Election,
    unclean: bool,
) -> (i32, Vec<i32>) {
    let in_sync_leader = |r: i32| isr.contains(&r) && eligible(r);
    if election == Election::Preferred
        && let Some(&preferred) = replicas.first()
        && in_sync_leader(preferred)
    {
        return (preferred, isr);
    }
    if current >= 0 && replicas.contains(&current) && in_sync_leader(current) {
        return (current, isr);
    }
    if let Some(&clean) = replicas.iter().find(|&&r| in_sync_leader(r)) {
        return (clean, isr);
    }
    let may_be_unclean = match election {
        Election::KeepOrElect => unclean,
        Election::Unclean => true,
        Election::Preferred => false,
    };
    if may_be_unclean && let Some(&leader) = replicas.iter().find(|&&r| eligible(r)) {
        return (leader, vec![leader]);
    }
    (-1, isr)
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
            adding_replicas: Vec::new(),
            removing_replicas: Vec::new(),
        }
    }

    fn change(leader: i32, leader_epoch: i32, isr: &[i32]) -> Option<PartitionChange> {
        Some(PartitionChange {
            leader,
            leader_epoch,
            isr: isr.to_vec(),
            assignment: None,
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
            change(2, 4, &[2, 3]),
            "not while it is fenced: the leader stays, the fenced replica leaves the ISR"
        );
    }

    #[test]
    fn nothing_changes_when_every_replica_is_eligible() {
        let p = partition(&[1, 2, 3], &[1, 2, 3], 1);
        assert_eq!(change_for(&p, |_| true, Election::KeepOrElect, false), None);
    }
}

//! Partition reassignment (KIP-455): moving a partition's replicas to other brokers while
//! it keeps serving — Kafka's `ReplicationControlManager.alterPartitionReassignments` with
//! `PartitionReassignmentReplicas` and `PartitionReassignmentRevert`.
//!
//! A reassignment to `target` goes through three states, each one `PartitionChanged`
//! record (the partition epoch moves on with each):
//!
//! 1. **grow**: the replicas become `target` followed by the current replicas that are not
//!    in it; those are *removing*, the target replicas that are new are *adding*. The
//!    leader and ISR stay; the adding replicas open the partition and start fetching.
//! 2. **catch up**: the leader takes each adding replica into the ISR once it has caught
//!    up (an ordinary ISR expansion).
//! 3. **complete**: once every target replica is in the ISR, the replicas become
//!    `target`, the removing ones leave the ISR, the leader moves to a target replica if
//!    it was being removed, and the leader epoch moves on (the removed replicas' fetches
//!    are fenced; they stop fetching and delete their copy). The controller's periodic
//!    checks complete it ([`super::elections::plan`]), or the request itself when the ISR
//!    already allows (a reassignment that only removes or reorders replicas).
//!
//! Cancelling (`replicas` null) goes back to the replicas from before: the adding replicas
//! leave the replicas and the ISR. When only adding replicas are in sync that would need
//! an unclean election, refused unless the topic allows one.

use kafka_protocol::error::ResponseError;
use sluice_protocol::kafka_protocol;

use super::elections::{Assignment, Election, PartitionChange, Target, plan};
use crate::metadata::{BrokerRegistration, MetadataImage, PartitionRegistration};
use crate::topic_admin::AdminError;

/// The change that starts moving `registration` to `target` — or completes it at once
/// when the ISR allows; `None` when the partition is there already. `allow_rf_change` false refuses a target with another number of
/// replicas (AlterPartitionReassignments v1, KIP-860).
pub fn reassign(
    image: &MetadataImage,
    registration: &PartitionRegistration,
    target: &[i32],
    allow_rf_change: bool,
) -> Result<Option<PartitionChange>, AdminError> {
    check_target(image, registration, target)?;
    let replication_factor = registration.target_replicas().len();
    if !allow_rf_change && replication_factor != target.len() {
        return Err(AdminError::new(
            ResponseError::InvalidReplicationFactor,
            format!(
                "The replication factor is changed from {replication_factor} to {}",
                target.len()
            ),
        ));
    }
    // Against a reassignment in progress, the replicas it adds that the new target keeps
    // are still being added (Kafka keeps them so too), those it drops are removed.
    let removing = sorted_difference(&registration.replicas, target);
    let adding = sorted_difference(target, &registration.original_replicas());
    let replicas = target.iter().chain(&removing).copied().collect();
    let target = Target {
        isr: registration.isr.clone(),
        assignment: Assignment {
            replicas,
            adding,
            removing,
        },
    };
    Ok(plan(
        registration,
        target,
        eligible_in(image),
        Election::KeepOrElect,
        false,
    ))
}

/// The change that cancels the reassignment of `registration` (partition `index` of
/// `topic`): the replicas and ISR from before it, without those it was adding. Refused
/// with NO_REASSIGNMENT_IN_PROGRESS when none is going on, and with
/// INVALID_REPLICA_ASSIGNMENT when going back would need an unclean election that
/// `unclean` (the topic's `unclean.leader.election.enable`) does not allow.
pub fn cancel(
    image: &MetadataImage,
    topic: &str,
    index: i32,
    registration: &PartitionRegistration,
    unclean: bool,
) -> Result<Option<PartitionChange>, AdminError> {
    if !registration.is_reassigning() {
        return Err(AdminError::new(
            ResponseError::NoReassignmentInProgress,
            "No partition reassignment is in progress.",
        ));
    }
    let replicas = registration.original_replicas();
    let mut isr: Vec<i32> = registration
        .isr
        .iter()
        .copied()
        .filter(|r| !registration.adding_replicas.contains(r))
        .collect();
    let needs_unclean = isr.is_empty();
    if needs_unclean {
        if !unclean {
            return Err(AdminError::new(
                ResponseError::InvalidReplicaAssignment,
                format!(
                    "Unable to revert partition assignment for {topic}:{index} because it would require an unclean leader election."
                ),
            ));
        }
        let Some(&first) = replicas.first() else {
            return Err(AdminError::new(
                ResponseError::InvalidReplicaAssignment,
                "Invalid replica assignment: addingReplicas contains all replicas.",
            ));
        };
        isr.push(first);
    }
    let election = if needs_unclean {
        Election::Unclean
    } else {
        Election::KeepOrElect
    };
    let target = Target {
        isr,
        assignment: Assignment::settled(replicas),
    };
    Ok(plan(
        registration,
        target,
        eligible_in(image),
        election,
        unclean,
    ))
}

/// Kafka's `validateManualPartitionAssignment` for a reassignment's target: some replica,
/// each a registered broker, none twice. Beyond Kafka's KRaft controller (as its ZooKeeper
/// one did), a replica the reassignment would add must be on a live broker — one fenced or
/// shutting down could never catch up, so the reassignment would never end.
fn check_target(
    image: &MetadataImage,
    registration: &PartitionRegistration,
    target: &[i32],
) -> Result<(), AdminError> {
    let invalid =
        |message: String| AdminError::new(ResponseError::InvalidReplicaAssignment, message);
    if target.is_empty() {
        return Err(invalid(
            "The manual partition assignment includes an empty replica list.".into(),
        ));
    }
    let mut sorted = target.to_vec();
    sorted.sort_unstable();
    let mut previous = None;
    for &broker in &sorted {
        if image.broker(broker).is_none() {
            return Err(invalid(format!(
                "The manual partition assignment includes broker {broker}, but no such broker is registered."
            )));
        }
        if previous == Some(broker) {
            return Err(invalid(format!(
                "The manual partition assignment includes the broker {broker} more than once."
            )));
        }
        previous = Some(broker);
    }
    let dead_new_replica = sorted.iter().copied().find(|&broker| {
        !registration.replicas.contains(&broker)
            && !image
                .broker(broker)
                .is_some_and(BrokerRegistration::is_eligible)
    });
    if let Some(broker) = dead_new_replica {
        return Err(invalid(format!(
            "The manual partition assignment includes broker {broker}, which is fenced or shutting down: a new replica there could never catch up."
        )));
    }
    Ok(())
}

/// Whether a broker may lead or be in sync, as `image` says.
fn eligible_in(image: &MetadataImage) -> impl Fn(i32) -> bool + '_ {
    |broker| {
        image
            .broker(broker)
            .is_some_and(BrokerRegistration::is_eligible)
    }
}

/// The members of `a` not in `b`, ascending.
fn sorted_difference(a: &[i32], b: &[i32]) -> Vec<i32> {
    let mut out: Vec<i32> = a.iter().copied().filter(|r| !b.contains(r)).collect();
    out.sort_unstable();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]

    use std::collections::BTreeMap;

    use uuid::Uuid;

    use super::*;
    use crate::controller::change_record;
    use crate::controller::elections::change_for;
    use crate::metadata::{MetadataRecord, PartitionAssignment};

    const TOPIC: Uuid = Uuid::from_u128(7);

    /// Brokers 1..=4 registered and unfenced, topic "t" with one partition on `replicas`.
    fn image_with(replicas: &[i32]) -> MetadataImage {
        let mut image = MetadataImage::new(1);
        for id in 1..=4 {
            image.apply(&MetadataRecord::BrokerRegistered {
                id,
                incarnation_id: Uuid::from_u128(100 + u128::try_from(id).unwrap()),
                endpoints: Vec::new(),
                rack: None,
                fenced: false,
            });
        }
        image.apply(&MetadataRecord::TopicCreated {
            name: "t".into(),
            id: TOPIC,
            partitions: 1,
            configs: BTreeMap::new(),
            internal: false,
            replicas: vec![PartitionAssignment(replicas.to_vec())],
        });
        image
    }

    fn registration(image: &MetadataImage) -> PartitionRegistration {
        image.topic("t").unwrap().partition(0).unwrap().clone()
    }

    /// Commits `change` to the image as every node would: checked, then applied.
    fn commit(image: &mut MetadataImage, change: PartitionChange) {
        let record = change_record(TOPIC, 0, &registration(image), change);
        image.check(&record).unwrap();
        image.apply(&record);
    }

    /// The leader takes `isr` (an ISR change of its own).
    fn set_isr(image: &mut MetadataImage, isr: &[i32]) {
        let r = registration(image);
        commit(
            image,
            PartitionChange {
                leader: r.leader,
                leader_epoch: r.leader_epoch.0,
                isr: isr.to_vec(),
                assignment: None,
            },
        );
    }

    /// What the controller's periodic check does to the partition now.
    fn controller_check(image: &mut MetadataImage) -> bool {
        let r = registration(image);
        let eligible = |b: i32| image.broker(b).is_some_and(BrokerRegistration::is_eligible);
        match change_for(&r, eligible, Election::KeepOrElect, false) {
            Some(change) => {
                commit(image, change);
                true
            }
            None => false,
        }
    }

    fn fence(image: &mut MetadataImage, broker: i32) {
        image.apply(&MetadataRecord::BrokerRegistrationChanged {
            id: broker,
            fenced: Some(true),
            in_controlled_shutdown: None,
        });
    }

    /// (replicas, adding, removing, isr, leader, leader epoch, partition epoch).
    type State = (Vec<i32>, Vec<i32>, Vec<i32>, Vec<i32>, i32, i32, i32);

    fn state(image: &MetadataImage) -> State {
        let r = registration(image);
        (
            r.replicas,
            r.adding_replicas,
            r.removing_replicas,
            r.isr,
            r.leader,
            r.leader_epoch.0,
            r.partition_epoch,
        )
    }

    fn s(
        replicas: &[i32],
        adding: &[i32],
        removing: &[i32],
        isr: &[i32],
        leader: i32,
        leader_epoch: i32,
        partition_epoch: i32,
    ) -> State {
        (
            replicas.to_vec(),
            adding.to_vec(),
            removing.to_vec(),
            isr.to_vec(),
            leader,
            leader_epoch,
            partition_epoch,
        )
    }

    #[test]
    fn a_move_grows_the_replicas_waits_for_the_new_one_then_shrinks_and_moves_the_leader() {
        let mut image = image_with(&[1, 2]);
        let change = reassign(&image, &registration(&image), &[2, 3], true).unwrap();
        commit(&mut image, change.unwrap());
        // Grow: target first, then the replica being removed; leader and ISR unchanged.
        assert_eq!(state(&image), s(&[2, 3, 1], &[3], &[1], &[1, 2], 1, 0, 1));
        assert!(!controller_check(&mut image), "3 is not in sync yet");
        // Catch up: the leader takes 3 into the ISR.
        set_isr(&mut image, &[1, 2, 3]);
        assert_eq!(
            state(&image),
            s(&[2, 3, 1], &[3], &[1], &[1, 2, 3], 1, 0, 2)
        );
        // Complete: replicas = target, 1 leaves the ISR and the lead goes to 2, the first
        // target replica in sync, at a new leader epoch.
        assert!(controller_check(&mut image));
        assert_eq!(state(&image), s(&[2, 3], &[], &[], &[2, 3], 2, 1, 3));
        assert!(!controller_check(&mut image));
    }

    #[test]
    fn a_new_target_for_a_reassignment_in_progress_keeps_what_is_still_being_added() {
        let mut image = image_with(&[1, 2]);
        let change = reassign(&image, &registration(&image), &[2, 3], true).unwrap();
        commit(&mut image, change.unwrap());
        // The same plan again changes nothing.
        assert_eq!(
            reassign(&image, &registration(&image), &[2, 3], true).unwrap(),
            None
        );
        // Another target: 3 is dropped (it is no original replica), 4 added.
        let change = reassign(&image, &registration(&image), &[2, 4], true).unwrap();
        commit(&mut image, change.unwrap());
        assert_eq!(
            state(&image),
            s(&[2, 4, 1, 3], &[4], &[1, 3], &[1, 2], 1, 0, 2)
        );
        set_isr(&mut image, &[1, 2, 4]);
        assert!(controller_check(&mut image));
        assert_eq!(state(&image), s(&[2, 4], &[], &[], &[2, 4], 2, 1, 4));
    }

    #[test]
    fn a_full_replica_set_change_completes_only_when_every_new_replica_is_in_sync() {
        let mut image = image_with(&[1, 2]);
        let change = reassign(&image, &registration(&image), &[3, 4], true).unwrap();
        commit(&mut image, change.unwrap());
        assert_eq!(
            state(&image),
            s(&[3, 4, 1, 2], &[3, 4], &[1, 2], &[1, 2], 1, 0, 1)
        );
        set_isr(&mut image, &[1, 2, 3]);
        assert!(!controller_check(&mut image), "4 is not in sync yet");
        set_isr(&mut image, &[1, 2, 3, 4]);
        assert!(controller_check(&mut image));
        assert_eq!(state(&image), s(&[3, 4], &[], &[], &[3, 4], 3, 1, 4));
    }

    #[test]
    fn removing_a_follower_completes_at_once_and_fences_it_with_a_new_leader_epoch() {
        let mut image = image_with(&[1, 2, 3]);
        let change = reassign(&image, &registration(&image), &[1, 2], true).unwrap();
        commit(&mut image, change.unwrap());
        // The leader stays, but its epoch moves on: 3's fetches are fenced.
        assert_eq!(state(&image), s(&[1, 2], &[], &[], &[1, 2], 1, 1, 1));
    }

    #[test]
    fn reordering_the_replicas_changes_only_the_order() {
        let mut image = image_with(&[1, 2]);
        let change = reassign(&image, &registration(&image), &[2, 1], true).unwrap();
        commit(&mut image, change.unwrap());
        assert_eq!(state(&image), s(&[2, 1], &[], &[], &[1, 2], 1, 0, 1));
        // Asking for the replicas the partition has changes nothing.
        assert_eq!(
            reassign(&image, &registration(&image), &[2, 1], true).unwrap(),
            None
        );
    }

    #[test]
    fn cancelling_goes_back_to_the_replicas_from_before() {
        let mut image = image_with(&[1, 2]);
        let change = reassign(&image, &registration(&image), &[2, 3], true).unwrap();
        commit(&mut image, change.unwrap());
        set_isr(&mut image, &[1, 2]);
        let change = cancel(&image, "t", 0, &registration(&image), false).unwrap();
        commit(&mut image, change.unwrap());
        // 3 is no replica any more: a new leader epoch fences it. The replicas are those
        // from before, in the order the reassignment left them (as in Kafka: the target's
        // first).
        assert_eq!(state(&image), s(&[2, 1], &[], &[], &[1, 2], 1, 1, 3));
        // Nothing left to cancel.
        let none = cancel(&image, "t", 0, &registration(&image), false).unwrap_err();
        assert_eq!(
            (none.code, none.message.as_str()),
            (
                ResponseError::NoReassignmentInProgress,
                "No partition reassignment is in progress."
            )
        );
    }

    #[test]
    fn cancelling_when_only_new_replicas_are_in_sync_needs_an_unclean_election() {
        let mut image = image_with(&[1]);
        let change = reassign(&image, &registration(&image), &[2], true).unwrap();
        commit(&mut image, change.unwrap());
        // 2 caught up, then 1 was fenced: only the new replica is in sync.
        set_isr(&mut image, &[1, 2]);
        fence(&mut image, 1);
        // (The controller completes the move now: 2 is all the target needs.)
        let r = registration(&image);
        let refused = cancel(
            &image,
            "t",
            0,
            &PartitionRegistration {
                isr: vec![2],
                ..r.clone()
            },
            false,
        )
        .unwrap_err();
        assert_eq!(
            (refused.code, refused.message.as_str()),
            (
                ResponseError::InvalidReplicaAssignment,
                "Unable to revert partition assignment for t:0 because it would require an unclean leader election."
            )
        );
        let unclean = cancel(
            &image,
            "t",
            0,
            &PartitionRegistration { isr: vec![2], ..r },
            true,
        )
        .unwrap()
        .unwrap();
        // Back on 1 alone, although it is fenced: nobody may lead until it returns.
        assert_eq!(
            (unclean.isr, unclean.leader, unclean.assignment),
            (vec![1], -1, Some(Assignment::settled(vec![1])))
        );
    }

    #[test]
    fn a_removed_leader_that_is_fenced_leaves_the_lead_to_an_in_sync_target_replica() {
        let mut image = image_with(&[1, 2]);
        let change = reassign(&image, &registration(&image), &[2, 3], true).unwrap();
        commit(&mut image, change.unwrap());
        set_isr(&mut image, &[1, 2, 3]);
        fence(&mut image, 1);
        assert!(controller_check(&mut image));
        assert_eq!(state(&image), s(&[2, 3], &[], &[], &[2, 3], 2, 1, 3));
    }

    #[test]
    fn targets_kafka_refuses_are_refused_with_its_codes_and_messages() {
        let mut image = image_with(&[1, 2]);
        fence(&mut image, 4);
        let r = registration(&image);
        let refused = |target: &[i32], allow_rf_change: bool| {
            let e = reassign(&image, &r, target, allow_rf_change).unwrap_err();
            (e.code, e.message)
        };
        let invalid = ResponseError::InvalidReplicaAssignment;
        assert_eq!(
            refused(&[], true),
            (
                invalid,
                "The manual partition assignment includes an empty replica list.".into()
            )
        );
        assert_eq!(
            refused(&[2, 9, 1], true),
            (
                invalid,
                "The manual partition assignment includes broker 9, but no such broker is registered.".into()
            )
        );
        assert_eq!(
            refused(&[2, 3, 2], true),
            (
                invalid,
                "The manual partition assignment includes the broker 2 more than once.".into()
            )
        );
        assert_eq!(
            refused(&[2, 4], true),
            (
                invalid,
                "The manual partition assignment includes broker 4, which is fenced or shutting down: a new replica there could never catch up.".into()
            )
        );
        assert_eq!(
            refused(&[1, 2, 3], false),
            (
                ResponseError::InvalidReplicationFactor,
                "The replication factor is changed from 2 to 3".into()
            )
        );
        // The same number of replicas is fine without a replication factor change.
        assert!(reassign(&image, &r, &[2, 3], false).unwrap().is_some());
        // A fenced broker that is a replica already may stay one.
        let mut on_four = image_with(&[1, 4]);
        fence(&mut on_four, 4);
        let r = registration(&on_four);
        assert!(reassign(&on_four, &r, &[4, 2], true).is_ok());
    }
}

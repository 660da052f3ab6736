//! Leaders keep their partitions' ISR true (Kafka's `Partition.maybeShrinkIsr`,
//! `maybeExpandIsr` and the `AlterPartition` round trip): a follower that has not caught
//! up for `replica.lag.time.max.ms` leaves the ISR, one that has caught up joins it. The
//! leader does not change the ISR itself: it proposes a `PartitionChanged` record decided
//! against the partition epoch it knows (a compare-and-swap), and takes the new ISR when
//! the committed record reaches it, like every other node. While a proposal is on its way
//! the high watermark waits for the replicas of both ISRs (see [`crate::replica`]).

use std::sync::{Arc, Weak};
use std::time::Duration;

use sluice_protocol::model::LeaderEpoch;
use tokio::sync::watch;

use crate::broker::Broker;
use crate::metadata::{CommitError, MetadataRecord};
use crate::partition::Partition;

/// How often leaders look at their followers' progress. Kafka checks for lagging
/// followers every half `replica.lag.time.max.ms` and expands on the fetch path; one
/// short period serves both here, so a follower that caught up joins within it.
const CHECK_INTERVAL: Duration = Duration::from_millis(200);

/// Runs the ISR checks of `broker`'s led partitions until `stop` turns true.
pub fn start(broker: Weak<Broker>, mut stop: watch::Receiver<bool>) {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(CHECK_INTERVAL);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticks.tick() => {}
                _ = crate::server::stopped(&mut stop) => return,
            }
            let Some(broker) = broker.upgrade() else {
                return;
            };
            check_all(&broker);
        }
    });
}

/// Proposes the ISR changes every led partition needs now; each proposal commits on its
/// own task, so a slow quorum delays no check.
pub fn check_all(broker: &Arc<Broker>) {
    let max_lag_ms = broker.config.replica_lag_time_max_ms;
    for partition in broker.replicas.logs().all() {
        if let Some((epoch, isr)) = partition.begin_isr_proposal(max_lag_ms) {
            let broker = broker.clone();
            tokio::spawn(async move { propose(&broker, &partition, epoch, isr).await });
        }
    }
}

/// Commits `isr` for `partition` led at `epoch`, unless the registration moved on.
async fn propose(broker: &Broker, partition: &Arc<Partition>, epoch: LeaderEpoch, isr: Vec<i32>) {
    let local = broker.node_id();
    let (topic_id, index) = (partition.topic_id, partition.index);
    let proposed = isr.clone();
    let committed = broker
        .metadata
        .propose(|image| {
            let mut shrinks = false;
            let registration = image
                .topic_by_id(&topic_id)
                .and_then(|t| t.partition(index));
            let records = match registration {
                // Still this leadership: ask for the new ISR against its partition epoch.
                Some(r) if r.leader == local && r.leader_epoch == epoch => {
                    shrinks = proposed.len() < r.isr.len();
                    vec![MetadataRecord::PartitionChanged {
                        topic_id,
                        partition: index,
                        leader: local,
                        leader_epoch: epoch.0,
                        isr: proposed,
                        replicas: None,
                        adding_replicas: None,
                        removing_replicas: None,
                        expected_partition_epoch: Some(r.partition_epoch),
                    }]
                }
                _ => Vec::new(),
            };
            let wrote = !records.is_empty();
            Ok::<_, CommitError>((records, wrote.then_some(shrinks)))
        })
        .await;
    match committed {
        Ok(Some(shrank)) => {
            broker.metrics.isr_changed(shrank);
            tracing::info!(
                topic = %partition.topic,
                partition = index,
                leader_epoch = epoch.0,
                isr = ?isr,
                "ISR changed"
            );
        }
        Ok(None) => partition.isr_proposal_failed(epoch),
        Err(e) => {
            tracing::warn!(
                topic = %partition.topic,
                partition = index,
                error = %e,
                "ISR change refused; checking again"
            );
            partition.isr_proposal_failed(epoch);
        }
    }
}

//! The controller: on the node that leads the metadata quorum, it decides which brokers
//! are in the cluster and who leads each partition (Kafka's `QuorumController` with its
//! `BrokerHeartbeatManager` and `ReplicationControlManager`).
//!
//! - Brokers register fenced. Each heartbeats every `broker.heartbeat.interval.ms`; the
//!   controller lets a fenced broker in (unfences it) once its heartbeat shows it has
//!   applied the metadata up to its own registration.
//! - A broker not heard from for `broker.session.timeout.ms` is fenced: it leaves every ISR
//!   and its leaderships move to in-sync replicas ([`elections`]). Heartbeat times live in
//!   the controller's memory only, as in Kafka; a new controller gives every broker a full
//!   session before fencing it. Sooner than Kafka, a broker silent for one and a half
//!   heartbeat intervals (or not heard from yet by a new controller) whose cluster listener
//!   refuses connections is fenced at once: its process is gone (killed or crashed), and
//!   waiting out the session would only keep its partitions leaderless. A slow or unreachable broker (a connect that succeeds or times out) still
//!   gets its whole session.
//! - A broker that asks to shut down (SIGTERM) enters controlled shutdown: its leaderships
//!   move away and it leaves the ISRs while it still serves; once it leads nothing it is
//!   told it may stop. It is fenced (and so leaves Metadata's broker list) when it asks to
//!   be, just before it closes its listeners: while it still answers, clients that were
//!   writing to it learn the new leaders from it without dropping it (librdkafka, seeing a
//!   broker vanish from Metadata while a request to it is in flight, parks that
//!   partition without a leader until its next scan, up to a second).
//! - Leaderships move back to the preferred replicas every
//!   `leader.imbalance.check.interval.seconds` when `auto.leader.rebalance.enable`.
//!
//! Every decision is a batch of metadata records proposed against the controller's image
//! with compare-and-swap partition epochs, so a decision that raced with a leader's ISR
//! change is refused and taken again at the next check.

pub mod elections;
pub mod lifecycle;
pub mod reassignment;

use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::Duration;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{BrokerHeartbeatRequest, BrokerHeartbeatResponse};
use parking_lot::Mutex;
use sluice_protocol::kafka_protocol;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::broker::Broker;
use crate::metadata::{CommitError, MetadataImage, MetadataRecord};
use crate::topic_admin::AdminError;
use elections::{Election, PartitionChange, change_for};

/// How often the controller looks for expired sessions and partitions that need a leader.
const CHECK_INTERVAL: Duration = Duration::from_millis(250);

/// The controller's state: who was heard from when.
pub struct Controller {
    broker: Weak<Broker>,
    contacts: Mutex<Contacts>,
}

#[derive(Default)]
struct Contacts {
    /// The last heartbeat of each broker.
    last_heard: HashMap<i32, Instant>,
    /// Since when this node leads the quorum (`None`: it does not).
    leading_since: Option<Instant>,
    /// When leaderships last moved back to preferred replicas.
    last_rebalance: Option<Instant>,
    /// When this controller last ran its checks while leading.
    last_check: Option<Instant>,
}

impl Contacts {
    /// Notes a check at `now`. A controller whose checks did not run for longer than
    /// `stall_limit` (its process was stopped, or starved of CPU) could not hear the
    /// heartbeats sent meanwhile, and may not even lead any more: it starts over as a new
    /// controller does, giving every broker a full session (and probing those it has not
    /// heard from since), rather than fencing brokers for its own silence. Returns whether
    /// it had stalled.
    fn note_check(&mut self, now: Instant, stall_limit: Duration) -> bool {
        let stalled = self
            .last_check
            .is_some_and(|last| now.duration_since(last) > stall_limit);
        self.last_check = Some(now);
        if stalled {
            self.leading_since = Some(now);
        }
        stalled
    }

    /// How long broker `id` has not been heard from at `now` (a controller that just took
    /// over counts it as heard from at that moment), and whether it was heard from since
    /// this controller took over.
    fn silence(&mut self, id: i32, now: Instant) -> (Duration, bool) {
        let since = *self.leading_since.get_or_insert(now);
        let last = self.last_heard.get(&id).copied();
        let heard = last.unwrap_or(since).max(since);
        (now.duration_since(heard), last.is_some_and(|l| l > since))
    }
}

impl Controller {
    /// The controller of `broker`; it acts only while `broker` leads the quorum.
    pub fn new(broker: Weak<Broker>) -> Self {
        Self {
            broker,
            contacts: Mutex::new(Contacts::default()),
        }
    }

    /// Runs the periodic checks until `stop`.
    pub fn start(self: &Arc<Self>, mut stop: watch::Receiver<bool>) {
        let controller = self.clone();
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(CHECK_INTERVAL);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = ticks.tick() => {}
                    _ = crate::server::stopped(&mut stop) => return,
                }
                controller.check().await;
            }
        });
    }

    /// Answers a broker's heartbeat (BrokerHeartbeat, API 63): notes it alive, lets it in
    /// once it has caught up, starts its controlled shutdown when it asks, and tells it
    /// whether it is fenced and whether it may stop now.
    pub async fn heartbeat(&self, request: &BrokerHeartbeatRequest) -> BrokerHeartbeatResponse {
        let refused = |code: ResponseError| {
            BrokerHeartbeatResponse::default()
                .with_error_code(code.code())
                .with_is_fenced(true)
        };
        let Some(broker) = self.broker.upgrade() else {
            return refused(ResponseError::NotController);
        };
        if broker.metadata.leader() != Some(broker.node_id()) {
            return refused(ResponseError::NotController);
        }
        let id = request.broker_id.0;
        let image = broker.metadata.image();
        let Some(registration) = image.broker(id) else {
            return refused(ResponseError::BrokerIdNotRegistered);
        };
        if i64::try_from(registration.epoch).ok() != Some(request.broker_epoch) {
            return refused(ResponseError::StaleBrokerEpoch);
        }
        self.contacts.lock().last_heard.insert(id, Instant::now());
        let caught_up = u64::try_from(request.current_metadata_offset)
            .is_ok_and(|offset| offset >= registration.epoch);
        let change = if request.want_shut_down && !registration.in_controlled_shutdown {
            tracing::info!(
                broker = id,
                "broker {id} asked to shut down: moving its leaderships away"
            );
            Some((None, Some(true)))
        } else if registration.fenced && caught_up && !request.want_fence && !request.want_shut_down
        {
            tracing::info!(
                broker = id,
                "broker {id} has caught up with the metadata: unfencing it"
            );
            Some((Some(false), None))
        } else {
            None
        };
        if let Some((fenced, in_controlled_shutdown)) = change {
            let record = MetadataRecord::BrokerRegistrationChanged {
                id,
                fenced,
                in_controlled_shutdown,
            };
            if let Err(e) = self
                .propose(&broker, Some(record), Election::KeepOrElect)
                .await
            {
                tracing::warn!(broker = id, error = %e, "cannot change the broker's registration now");
            }
        }
        let image = broker.metadata.image();
        let Some(registration) = image.broker(id) else {
            return refused(ResponseError::BrokerIdNotRegistered);
        };
        let should_shut_down = registration.in_controlled_shutdown && !image.leads_any(id);
        if should_shut_down && request.want_fence && !registration.fenced {
            let record = MetadataRecord::BrokerRegistrationChanged {
                id,
                fenced: Some(true),
                in_controlled_shutdown: None,
            };
            match self
                .propose(&broker, Some(record), Election::KeepOrElect)
                .await
            {
                Ok(()) => tracing::info!(broker = id, "broker {id} is stopping: fenced"),
                Err(e) => {
                    tracing::warn!(broker = id, error = %e, "cannot fence the stopping broker now")
                }
            }
        }
        let fenced = broker.metadata.image().broker(id).is_none_or(|r| r.fenced);
        BrokerHeartbeatResponse::default()
            .with_is_caught_up(caught_up)
            .with_is_fenced(fenced)
            .with_should_shut_down(should_shut_down)
    }

    /// One periodic check: fences brokers whose session expired, elects leaders where
    /// partitions need one, and every so often moves leaderships back to preferred
    /// replicas.
    async fn check(&self) {
        let Some(broker) = self.broker.upgrade() else {
            return;
        };
        if broker.metadata.leader() != Some(broker.node_id()) {
            let mut contacts = self.contacts.lock();
            contacts.leading_since = None;
            contacts.last_check = None;
            return;
        }
        let image = broker.metadata.image();
        let session = Duration::from_millis(broker.config.broker_session_timeout_ms);
        if self.contacts.lock().note_check(Instant::now(), session / 2) {
            tracing::warn!(
                "the controller's checks did not run for over half a broker session (was this \
                 process stopped?): every broker gets a full session again"
            );
        }
        // A beat and a half late: a live broker's next heartbeat is overdue.
        let suspect_after =
            Duration::from_millis(broker.config.broker_heartbeat_interval_ms.saturating_mul(3) / 2);
        for (id, silence, heard_since_leading) in self.silent_brokers(&image) {
            // A new controller probes at once the brokers it has not heard from yet: a
            // dead one would otherwise keep its leaderships through the election and the
            // grace.
            let suspect = silence > suspect_after || !heard_since_leading;
            if silence > session {
                tracing::warn!(
                    broker = id,
                    session_timeout_ms = broker.config.broker_session_timeout_ms,
                    "broker {id} missed its heartbeats for the session timeout: fencing it"
                );
            } else if suspect && cluster_listener_gone(&broker, id).await {
                tracing::warn!(
                    broker = id,
                    silent_ms = silence.as_millis(),
                    "broker {id} missed its heartbeats and its cluster listener refuses connections (the process is gone): fencing it"
                );
            } else {
                continue;
            }
            let record = MetadataRecord::BrokerRegistrationChanged {
                id,
                fenced: Some(true),
                in_controlled_shutdown: None,
            };
            if let Err(e) = self
                .propose(&broker, Some(record), Election::KeepOrElect)
                .await
            {
                tracing::warn!(broker = id, error = %e, "cannot fence the broker now");
            }
        }
        // Partitions left without a leader (or with ineligible ISR members) by anything
        // earlier: a broker came back, a proposal lost a race.
        if let Err(e) = self.propose(&broker, None, Election::KeepOrElect).await {
            tracing::debug!(error = %e, "cannot elect leaders now");
        }
        if broker.config.auto_leader_rebalance_enable
            && self.rebalance_due(&broker)
            && let Err(e) = self.propose(&broker, None, Election::Preferred).await
        {
            tracing::debug!(error = %e, "cannot move leaderships to preferred replicas now");
        }
    }

    /// Unfenced brokers, how long each has not been heard from (a controller that just took
    /// over counts every broker as heard from at that moment), and whether this controller
    /// has heard from it since it took over.
    fn silent_brokers(&self, image: &MetadataImage) -> Vec<(i32, Duration, bool)> {
        let now = Instant::now();
        let mut contacts = self.contacts.lock();
        image
            .brokers()
            .filter(|b| !b.fenced)
            .map(|b| {
                let (silence, heard_since_leading) = contacts.silence(b.id, now);
                (b.id, silence, heard_since_leading)
            })
            .collect()
    }

    fn rebalance_due(&self, broker: &Broker) -> bool {
        let interval = Duration::from_secs(broker.config.leader_imbalance_check_interval_seconds);
        let now = Instant::now();
        let mut contacts = self.contacts.lock();
        let last = *contacts.last_rebalance.get_or_insert(now);
        let due = now.duration_since(last) >= interval;
        if due {
            contacts.last_rebalance = Some(now);
        }
        due
    }

    /// Proposes `registration` (a broker's change, if any) and the partition changes every
    /// partition needs afterwards under `election`.
    async fn propose(
        &self,
        broker: &Arc<Broker>,
        registration: Option<MetadataRecord>,
        election: Election,
    ) -> Result<(), CommitError> {
        broker
            .metadata
            .propose_as_controller(|image| {
                let mut records: Vec<MetadataRecord> = registration.into_iter().collect();
                let mut next = image.clone();
                for record in &records {
                    next.apply(record);
                }
                records.extend(partition_changes(broker, &next, election));
                Ok::<_, CommitError>((records, ()))
            })
            .await
    }

    /// Runs an election over the partitions `targets` (ElectLeaders): the changes made, per
    /// partition, or why none was.
    pub async fn elect(
        &self,
        targets: &[(uuid::Uuid, i32)],
        election: Election,
    ) -> Result<Vec<ElectionOutcome>, CommitError> {
        let broker = self
            .broker
            .upgrade()
            .ok_or_else(|| CommitError::Unavailable("shutting down".into()))?;
        broker
            .metadata
            .propose(|image| {
                let mut records = Vec::new();
                let mut outcomes = Vec::new();
                for &(topic_id, index) in targets {
                    let Some(topic) = image.topic_by_id(&topic_id) else {
                        outcomes.push(ElectionOutcome::UnknownPartition);
                        continue;
                    };
                    let Some(registration) = topic.partition(index) else {
                        outcomes.push(ElectionOutcome::UnknownPartition);
                        continue;
                    };
                    let unclean = broker.topic_settings(image, topic).unclean_leader_election;
                    let eligible = |b: i32| image.broker(b).is_some_and(|r| r.is_eligible());
                    match change_for(registration, eligible, election, unclean) {
                        Some(change)
                            if change.leader != registration.leader && change.leader >= 0 =>
                        {
                            let leader = change.leader;
                            records.push(change_record(topic_id, index, registration, change));
                            outcomes.push(ElectionOutcome::Elected(leader));
                        }
                        _ if registration.leader >= 0
                            && (election == Election::Unclean
                                || registration.replicas.first() == Some(&registration.leader)) =>
                        {
                            outcomes.push(ElectionOutcome::AlreadyLeading);
                        }
                        _ => outcomes.push(ElectionOutcome::NotElected),
                    }
                }
                Ok::<_, CommitError>((records, outcomes))
            })
            .await
    }
}

/// How often a reassignment request is decided again when another change to one of its
/// partitions (an ISR change of its leader) committed first.
const REASSIGNMENT_ATTEMPTS: usize = 5;

/// One partition of an AlterPartitionReassignments request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReassignmentRequest {
    /// The topic's name.
    pub topic: String,
    /// The partition index.
    pub partition: i32,
    /// The replicas to move to, the preferred leader first; `None` cancels the ongoing
    /// reassignment.
    pub replicas: Option<Vec<i32>>,
}

impl Controller {
    /// Starts, changes or cancels the reassignments `requests` (AlterPartitionReassignments)
    /// in one batch; each partition's outcome, in request order. A batch that lost a race
    /// with another change of one of its partitions is decided again.
    pub async fn alter_reassignments(
        &self,
        requests: &[ReassignmentRequest],
        allow_rf_change: bool,
    ) -> Result<Vec<Result<(), AdminError>>, CommitError> {
        let broker = self
            .broker
            .upgrade()
            .ok_or_else(|| CommitError::Unavailable("shutting down".into()))?;
        let mut attempt = 1;
        loop {
            let decided = broker
                .metadata
                .propose(|image| {
                    Ok::<_, CommitError>(decide_reassignments(
                        &broker,
                        image,
                        requests,
                        allow_rf_change,
                    ))
                })
                .await;
            match decided {
                Err(CommitError::Conflict(conflict)) if attempt < REASSIGNMENT_ATTEMPTS => {
                    tracing::debug!(%conflict, attempt, "reassignment decided against a stale partition; deciding again");
                    attempt += 1;
                }
                other => return other,
            }
        }
    }
}

/// The records that start, change or cancel each reassignment of `requests` against
/// `image`, and each one's outcome. Each is decided against the image the ones before it
/// leave, so a partition named twice gets two consistent changes.
fn decide_reassignments(
    broker: &Broker,
    image: &MetadataImage,
    requests: &[ReassignmentRequest],
    allow_rf_change: bool,
) -> (Vec<MetadataRecord>, Vec<Result<(), AdminError>>) {
    let mut next = image.clone();
    let mut records = Vec::new();
    let mut outcomes = Vec::new();
    for request in requests {
        match decide_reassignment(broker, &next, request, allow_rf_change) {
            Ok(record) => {
                if let Some(record) = record {
                    next.apply(&record);
                    records.push(record);
                }
                outcomes.push(Ok(()));
            }
            Err(e) => {
                tracing::info!(
                    topic = %request.topic,
                    partition = request.partition,
                    error = ?e.code,
                    "reassignment refused: {}",
                    e.message
                );
                outcomes.push(Err(e));
            }
        }
    }
    (records, outcomes)
}

/// The record one reassignment request needs (none when the partition is where it asks
/// already), or why it is refused.
fn decide_reassignment(
    broker: &Broker,
    image: &MetadataImage,
    request: &ReassignmentRequest,
    allow_rf_change: bool,
) -> Result<Option<MetadataRecord>, AdminError> {
    let (topic, index) = (&request.topic, request.partition);
    let unknown =
        |message: String| AdminError::new(ResponseError::UnknownTopicOrPartition, message);
    let t = image
        .topic(topic)
        .ok_or_else(|| unknown(format!("Unable to find a topic named {topic}.")))?;
    let registration = t
        .partition(index)
        .ok_or_else(|| unknown(format!("Unable to find partition {topic}:{index}.")))?;
    let change = match &request.replicas {
        Some(target) => reassignment::reassign(image, registration, target, allow_rf_change)?,
        None => {
            let unclean = broker.topic_settings(image, t).unclean_leader_election;
            reassignment::cancel(image, topic, index, registration, unclean)?
        }
    };
    let Some(change) = change else {
        return Ok(None);
    };
    let replicas = change
        .assignment
        .as_ref()
        .map_or(&registration.replicas, |a| &a.replicas);
    tracing::info!(
        topic = %topic,
        partition = index,
        target = ?request.replicas,
        replicas = ?replicas,
        isr = ?change.isr,
        leader = change.leader,
        "{}",
        match (&request.replicas, &change.assignment) {
            (None, _) => "reassignment cancelled",
            (Some(_), Some(a)) if a.is_reassigning() => "reassignment started",
            (Some(_), _) => "reassignment done at once",
        }
    );
    Ok(Some(change_record(t.id, index, registration, change)))
}

/// What an election did for one partition (ElectLeaders' per-partition answer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ElectionOutcome {
    /// This replica leads now.
    Elected(i32),
    /// No election was needed: the preferred replica leads already, or (unclean) the
    /// partition has a leader (ELECTION_NOT_NEEDED).
    AlreadyLeading,
    /// No eligible replica could be elected (ELIGIBLE_LEADERS_NOT_AVAILABLE).
    NotElected,
    /// No such partition.
    UnknownPartition,
}

/// The `PartitionChanged` records every partition of `image` needs under `election`.
pub(crate) fn partition_changes(
    broker: &Broker,
    image: &MetadataImage,
    election: Election,
) -> Vec<MetadataRecord> {
    let eligible = |b: i32| image.broker(b).is_some_and(|r| r.is_eligible());
    let mut records = Vec::new();
    for topic in image.topics() {
        let unclean = broker.topic_settings(image, topic).unclean_leader_election;
        for (index, registration) in (0..).zip(topic.partitions.iter()) {
            if let Some(change) = change_for(registration, eligible, election, unclean) {
                log_completed_reassignment(&topic.name, index, &change);
                records.push(change_record(topic.id, index, registration, change));
            }
        }
    }
    records
}

/// The record of `change` to partition `index` of topic `topic_id`, decided against
/// `registration` (its partition epoch is the compare-and-swap token).
pub(crate) fn change_record(
    topic_id: uuid::Uuid,
    index: i32,
    registration: &crate::metadata::PartitionRegistration,
    change: PartitionChange,
) -> MetadataRecord {
    let (replicas, adding_replicas, removing_replicas) = match change.assignment {
        Some(a) => (Some(a.replicas), Some(a.adding), Some(a.removing)),
        None => (None, None, None),
    };
    MetadataRecord::PartitionChanged {
        topic_id,
        partition: index,
        leader: change.leader,
        leader_epoch: change.leader_epoch,
        isr: change.isr,
        replicas,
        adding_replicas,
        removing_replicas,
        expected_partition_epoch: Some(registration.partition_epoch),
    }
}

/// One line when the controller's checks finish a reassignment.
fn log_completed_reassignment(topic: &str, index: i32, change: &PartitionChange) {
    if let Some(assignment) = &change.assignment
        && !assignment.is_reassigning()
    {
        tracing::info!(
            topic,
            partition = index,
            replicas = ?assignment.replicas,
            isr = ?change.isr,
            leader = change.leader,
            leader_epoch = change.leader_epoch,
            "reassignment complete: every target replica is in sync"
        );
    }
}

/// How long the probe of a silent broker's cluster listener may take to connect.
const PROBE_TIMEOUT: Duration = Duration::from_millis(300);

/// Whether broker `id`'s cluster listener (its `--voters` address, or a learner's from
/// the quorum's membership) refuses connections: nothing listens there, so the process is
/// gone. A connect that succeeds, times out or fails otherwise says nothing, and a node
/// without a cluster is never judged this way.
async fn cluster_listener_gone(broker: &Broker, id: i32) -> bool {
    let Some(addr) = broker.cluster.get().and_then(|node| node.address_of(id)) else {
        return false;
    };
    matches!(
        tokio::time::timeout(PROBE_TIMEOUT, tokio::net::TcpStream::connect(addr.as_str())).await,
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const SESSION: Duration = Duration::from_secs(3);

    #[test]
    fn a_controller_whose_checks_stalled_gives_every_broker_a_full_session_again() {
        let start = Instant::now();
        let mut contacts = Contacts::default();
        assert!(!contacts.note_check(start, SESSION / 2));
        contacts.last_heard.insert(2, start);
        assert_eq!(contacts.silence(2, start), (Duration::ZERO, false));
        let tick = start + Duration::from_millis(250);
        contacts.last_heard.insert(3, tick);
        assert!(!contacts.note_check(tick, SESSION / 2));

        // Stopped for five seconds (SIGSTOP): nothing was heard meanwhile, but the brokers
        // are not judged by that silence; none was heard since the controller resumed.
        let resumed = tick + Duration::from_secs(5);
        assert!(contacts.note_check(resumed, SESSION / 2));
        assert_eq!(contacts.silence(2, resumed), (Duration::ZERO, false));
        assert_eq!(contacts.silence(3, resumed), (Duration::ZERO, false));
        let later = resumed + Duration::from_secs(1);
        assert!(!contacts.note_check(later, SESSION / 2));
        assert_eq!(contacts.silence(2, later), (Duration::from_secs(1), false));
    }

    #[test]
    fn a_controller_checking_on_time_measures_silence_from_the_last_heartbeat() {
        let start = Instant::now();
        let mut contacts = Contacts {
            leading_since: Some(start),
            ..Contacts::default()
        };
        let mut now = start;
        for _ in 0..20 {
            now += Duration::from_millis(250);
            assert!(!contacts.note_check(now, SESSION / 2));
        }
        contacts
            .last_heard
            .insert(2, start + Duration::from_millis(500));
        assert_eq!(
            contacts.silence(2, now),
            (Duration::from_millis(4500), true)
        );
        assert_eq!(contacts.silence(3, now), (Duration::from_secs(5), false));
    }
}

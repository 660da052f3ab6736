//! Followers copy their leaders' logs (Kafka's `ReplicaFetcherManager` and
//! `AbstractFetcherThread`): one task per leader node fetches every partition this node
//! follows from it, with Kafka's own Fetch request (v15, `ReplicaState` naming this node)
//! over the node-to-node transport.
//!
//! One round of a fetcher:
//! 1. every followed partition's log end is made durable first — the offset a follower
//!    asks from is what the leader counts as replicated, so an acknowledged acks=all
//!    record is on disk on every in-sync replica, not only in its page cache;
//! 2. one Fetch for all of them, which the leader holds until it has something new;
//! 3. per partition: append the batches as they are (offsets and epochs kept) and take
//!    the leader's high watermark; or truncate where the leader says the logs diverge
//!    (`diverging_epoch`); or start afresh at the leader's log start when the follower
//!    fell below it; or, on an error (not the leader any more, fenced epoch), leave the
//!    partition alone for `replica.fetch.backoff.ms` — the metadata will say where to go
//!    (20 ms only when the leader has not applied yet the metadata that made it leader).
//!
//! A response is applied only while the partition still follows the leadership it was
//! asked of ([`FollowerTerm`]): a deposed leader's late answer writes nothing. A partition
//! that starts following a leader whose fetcher waits in a fetch (its leadership moved
//! there) does not wait for that fetch to end: the fetcher drops it and asks again with the
//! newcomer.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Weak};
use std::time::Duration;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic, ReplicaState};
use kafka_protocol::messages::fetch_response::{EpochEndOffset, PartitionData};
use kafka_protocol::messages::{BrokerId, FetchRequest, FetchResponse};
use parking_lot::Mutex;
use sluice_cluster::{NodeId, Transport};
use sluice_protocol::kafka_protocol;
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use uuid::Uuid;

use crate::broker::Broker;
use crate::partition::{AppendError, FollowerFetchPosition, Partition};
use crate::peer::{PeerCallError, call_peer};

/// The Fetch version followers send: the first with `ReplicaState`.
pub const REPLICA_FETCH_VERSION: i16 = 15;

/// How long a fetch may take beyond the leader's wait before the leader counts as gone.
const FETCH_TIMEOUT_MARGIN: Duration = Duration::from_secs(10);

/// How long a fetcher waits before calling a leader that did not answer again.
const UNREACHABLE_BACKOFF: Duration = Duration::from_millis(100);

/// How long a partition waits when its leader does not know yet that it leads it (the
/// leader applies the same metadata a moment later than this follower did): a short pause,
/// not `replica.fetch.backoff.ms`, which stalled acks=all writes to a new topic for up to
/// a second.
const LEADER_CATCHING_UP_BACKOFF: Duration = Duration::from_millis(20);

/// This node's follower fetchers: one task per leader node it follows partitions of.
pub struct ReplicaFetchers {
    broker: Weak<Broker>,
    /// Woken when a partition's role changed here (it may follow another leader now).
    roles_changed: Notify,
    /// Counts role changes, for the running fetchers: a partition that starts following a
    /// leader whose fetcher is waiting in a fetch joins at once instead of after the wait.
    role_changes: watch::Sender<u64>,
    tasks: Mutex<BTreeMap<NodeId, JoinHandle<()>>>,
}

impl ReplicaFetchers {
    /// Fetchers of `broker`'s followed partitions; nothing runs before [`Self::start`].
    pub fn new(broker: Weak<Broker>) -> Self {
        Self {
            broker,
            roles_changed: Notify::new(),
            role_changes: watch::Sender::new(0),
            tasks: Mutex::new(BTreeMap::new()),
        }
    }

    /// Starts following leaders over the broker's peers until `stop` turns true.
    pub fn start(self: &Arc<Self>, stop: watch::Receiver<bool>) {
        let fetchers = self.clone();
        tokio::spawn(async move { fetchers.manage(stop).await });
    }

    /// Tells the fetchers that some partition's role changed here.
    pub fn roles_changed(&self) {
        self.roles_changed.notify_one();
        self.role_changes.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Starts a fetcher for every leader this node follows partitions of and has none
    /// running; a fetcher ends by itself when it has no partition left.
    async fn manage(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        loop {
            self.start_missing_fetchers(&stop);
            tokio::select! {
                _ = self.roles_changed.notified() => {}
                _ = crate::server::stopped(&mut stop) => break,
            }
        }
        for (_, task) in std::mem::take(&mut *self.tasks.lock()) {
            task.abort();
        }
    }

    fn start_missing_fetchers(self: &Arc<Self>, stop: &watch::Receiver<bool>) {
        let Some(broker) = self.broker.upgrade() else {
            return;
        };
        let Some(transport) = broker.peers.get() else {
            return;
        };
        let local = broker.node_id();
        let leaders: std::collections::BTreeSet<NodeId> = broker
            .replicas
            .logs()
            .all()
            .iter()
            .filter_map(|p| p.follower_fetch_position())
            .map(|pos| pos.term.leader)
            .filter(|&leader| leader >= 0 && leader != local)
            .collect();
        let mut tasks = self.tasks.lock();
        tasks.retain(|_, task| !task.is_finished());
        for leader in leaders {
            if tasks.contains_key(&leader) {
                continue;
            }
            tracing::info!(leader, "starting the replica fetcher of leader {leader}");
            let fetcher = LeaderFetcher {
                broker: self.broker.clone(),
                transport: transport.clone(),
                leader,
                local,
                backoff: HashMap::new(),
                role_changes: self.role_changes.subscribe(),
            };
            tasks.insert(leader, tokio::spawn(fetcher.run(stop.clone())));
        }
    }
}

/// One followed partition in a fetch round.
struct Followed {
    partition: Arc<Partition>,
    position: FollowerFetchPosition,
}

/// What became of a fetch round.
enum Round {
    /// Fetch again at once.
    Again,
    /// No partition left to follow from this leader.
    Done,
    /// Wait this long first (the leader did not answer, or every partition backs off).
    Wait(Duration),
}

/// The fetcher of one leader node.
struct LeaderFetcher {
    broker: Weak<Broker>,
    transport: Arc<dyn Transport>,
    leader: NodeId,
    local: NodeId,
    /// Partitions left alone after an error, until the instant given.
    backoff: HashMap<(Uuid, i32), Instant>,
    role_changes: watch::Receiver<u64>,
}

impl LeaderFetcher {
    async fn run(mut self, mut stop: watch::Receiver<bool>) {
        loop {
            let round = tokio::select! {
                round = self.round() => round,
                _ = crate::server::stopped(&mut stop) => return,
            };
            match round {
                Round::Again => {}
                Round::Done => {
                    tracing::info!(
                        leader = self.leader,
                        "no partition follows leader {} any more; its fetcher stops",
                        self.leader
                    );
                    return;
                }
                Round::Wait(pause) => tokio::time::sleep(pause).await,
            }
        }
    }

    /// The partitions this node follows from this leader now, those backing off left out;
    /// `None` when there is none at all.
    fn followed(&mut self, broker: &Broker) -> Option<(Vec<Followed>, Option<Instant>)> {
        let now = Instant::now();
        self.backoff.retain(|_, until| *until > now);
        let mut any = false;
        let mut ready = Vec::new();
        for partition in broker.replicas.logs().all() {
            let Some(position) = partition.follower_fetch_position() else {
                continue;
            };
            if position.term.leader != self.leader {
                continue;
            }
            any = true;
            if !self
                .backoff
                .contains_key(&(partition.topic_id, partition.index))
            {
                ready.push(Followed {
                    partition,
                    position,
                });
            }
        }
        let next_retry = self.backoff.values().min().copied();
        any.then_some((ready, next_retry))
    }

    /// Whether a partition follows this leader now, is not backing off, and is not among
    /// those `asked` for.
    fn has_newcomers(&mut self, asked: &HashSet<(Uuid, i32)>) -> bool {
        let Some(broker) = self.broker.upgrade() else {
            return false;
        };
        self.followed(&broker).is_some_and(|(ready, _)| {
            ready
                .iter()
                .any(|f| !asked.contains(&(f.partition.topic_id, f.partition.index)))
        })
    }

    async fn round(&mut self) -> Round {
        let Some(broker) = self.broker.upgrade() else {
            return Round::Done;
        };
        self.role_changes.borrow_and_update();
        let Some((followed, next_retry)) = self.followed(&broker) else {
            return Round::Done;
        };
        if followed.is_empty() {
            let pause = next_retry.map_or(UNREACHABLE_BACKOFF, |at| {
                at.saturating_duration_since(Instant::now())
            });
            return Round::Wait(pause.max(Duration::from_millis(1)));
        }
        let config = &broker.config;
        // 1. What this node reports as replicated must be on its disk.
        for f in &followed {
            if f.partition.durability().durable_end < f.position.fetch_offset {
                f.partition.request_flush();
            }
        }
        for f in &followed {
            if let Err(e) = f.partition.wait_durable(f.position.fetch_offset).await {
                tracing::error!(topic = %f.partition.topic, partition = f.partition.index, error = %e, "a followed partition cannot be synced; it stops replicating");
                self.back_off(&f.partition, Duration::from_secs(60));
            }
        }
        // 2. One fetch for every partition.
        let request = self.fetch_request(&followed, config);
        let wait =
            Duration::from_millis(u64::try_from(config.replica_fetch_wait_max_ms).unwrap_or(0));
        let fetch_backoff =
            Duration::from_millis(u64::try_from(config.replica_fetch_backoff_ms).unwrap_or(0));
        drop(broker);
        let asked: HashSet<(Uuid, i32)> = followed
            .iter()
            .map(|f| (f.partition.topic_id, f.partition.index))
            .collect();
        let transport = self.transport.clone();
        let call = call_peer(
            &*transport,
            self.leader,
            REPLICA_FETCH_VERSION,
            &request,
            wait + FETCH_TIMEOUT_MARGIN,
        );
        tokio::pin!(call);
        // The leader holds the fetch up to `wait` while nothing new comes for the partitions
        // it names; a partition that has just started following this leader (its
        // leadership moved here) would wait that long for its first fetch, and an acks=all
        // write on it with it. So the fetch is dropped and asked again with the newcomer:
        // dropping the call closes its connection, the leader forgets the fetch, and
        // nothing of it was applied here. Likewise for a partition whose backoff ends
        // meanwhile (its first fetch here may have come before this leader applied its
        // leadership).
        let mut backoff_ends = next_retry;
        let answer = loop {
            let backoff_ended = async {
                match backoff_ends {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                answer = &mut call => break answer,
                changed = self.role_changes.changed() => {
                    if changed.is_err() {
                        break call.await;
                    }
                }
                () = backoff_ended => {}
            }
            if self.has_newcomers(&asked) {
                return Round::Again;
            }
            let now = Instant::now();
            backoff_ends = self.backoff.values().copied().filter(|at| *at > now).min();
        };
        let fetch = match answer {
            Ok(fetch) => fetch,
            Err(PeerCallError::Transport(e)) => {
                tracing::debug!(leader = self.leader, error = %e, "replica fetch failed");
                return Round::Wait(UNREACHABLE_BACKOFF);
            }
            Err(e) => {
                tracing::warn!(leader = self.leader, error = %e, "replica fetch failed");
                return Round::Wait(fetch_backoff.max(UNREACHABLE_BACKOFF));
            }
        };
        // 3. Apply what came back.
        self.apply(fetch, followed, fetch_backoff)
    }

    fn fetch_request(
        &self,
        followed: &[Followed],
        config: &crate::config::BrokerConfig,
    ) -> FetchRequest {
        let mut topics: Vec<FetchTopic> = Vec::new();
        for f in followed {
            let p = &f.position;
            let partition = FetchPartition::default()
                .with_partition(f.partition.index)
                .with_current_leader_epoch(p.term.epoch.0)
                .with_fetch_offset(p.fetch_offset)
                .with_last_fetched_epoch(p.last_fetched_epoch)
                .with_log_start_offset(p.log_start_offset)
                .with_partition_max_bytes(config.replica_fetch_max_bytes);
            match topics
                .iter_mut()
                .find(|t| t.topic_id == f.partition.topic_id)
            {
                Some(topic) => topic.partitions.push(partition),
                None => topics.push(
                    FetchTopic::default()
                        .with_topic_id(f.partition.topic_id)
                        .with_partitions(vec![partition]),
                ),
            }
        }
        FetchRequest::default()
            .with_replica_state(
                ReplicaState::default()
                    .with_replica_id(BrokerId(self.local))
                    .with_replica_epoch(-1),
            )
            .with_max_wait_ms(config.replica_fetch_wait_max_ms)
            .with_min_bytes(1)
            .with_max_bytes(config.replica_fetch_response_max_bytes)
            .with_isolation_level(0)
            .with_session_id(0)
            .with_session_epoch(-1)
            .with_topics(topics)
    }

    fn apply(
        &mut self,
        fetch: FetchResponse,
        followed: Vec<Followed>,
        fetch_backoff: Duration,
    ) -> Round {
        if fetch.error_code != 0 {
            tracing::warn!(
                leader = self.leader,
                error = ?ResponseError::try_from_code(fetch.error_code),
                "the leader refused a replica fetch"
            );
            return Round::Wait(fetch_backoff.max(UNREACHABLE_BACKOFF));
        }
        let mut by_partition: HashMap<(Uuid, i32), Followed> = followed
            .into_iter()
            .map(|f| ((f.partition.topic_id, f.partition.index), f))
            .collect();
        for topic in fetch.responses {
            for data in topic.partitions {
                let Some(f) = by_partition.remove(&(topic.topic_id, data.partition_index)) else {
                    continue;
                };
                if let Err(pause) = self.apply_partition(&f, data) {
                    self.back_off(&f.partition, pause.unwrap_or(fetch_backoff));
                }
            }
        }
        Round::Again
    }

    /// Applies one partition's answer; `Err` leaves the partition alone for a while (the
    /// default backoff, or the pause given).
    fn apply_partition(&self, f: &Followed, data: PartitionData) -> Result<(), Option<Duration>> {
        let partition = &f.partition;
        let term = f.position.term;
        let code = ResponseError::try_from_code(data.error_code);
        let outcome = match code {
            None if is_diverging(&data.diverging_epoch) => {
                let target =
                    truncation_offset(partition, &data.diverging_epoch, f.position.fetch_offset);
                let truncated = partition.truncate_to(term, target);
                if matches!(truncated, Ok(true)) {
                    tracing::info!(
                        topic = %partition.topic,
                        partition = partition.index,
                        leader = self.leader,
                        offset = target,
                        "truncated the follower's log where it diverged from the leader's"
                    );
                }
                truncated.map(|_| ())
            }
            None => {
                let records = data.records.unwrap_or_default();
                if records.is_empty() {
                    partition.learn_high_watermark(term, data.high_watermark);
                    Ok(())
                } else {
                    let appended =
                        partition.append_as_follower(term, &records, data.high_watermark);
                    if appended.is_ok() {
                        partition.request_flush();
                    }
                    appended.map(|_| ())
                }
            }
            Some(ResponseError::OffsetOutOfRange) => {
                let fetch_offset = f.position.fetch_offset;
                if fetch_offset < data.log_start_offset {
                    tracing::info!(
                        topic = %partition.topic,
                        partition = partition.index,
                        offset = data.log_start_offset,
                        "the follower fell below the leader's log start; its log starts afresh there"
                    );
                    partition.restart_at(term, data.log_start_offset)
                } else {
                    // Past the leader's end: keep only what the leader has committed.
                    partition
                        .truncate_to(term, data.high_watermark.max(0))
                        .map(|_| ())
                }
            }
            Some(
                other @ (ResponseError::NotLeaderOrFollower
                | ResponseError::UnknownTopicOrPartition
                | ResponseError::UnknownTopicId
                | ResponseError::UnknownLeaderEpoch),
            ) => {
                tracing::debug!(
                    topic = %partition.topic,
                    partition = partition.index,
                    leader = self.leader,
                    error = ?other,
                    "the leader does not know yet that it leads the partition; asking again shortly"
                );
                return Err(Some(LEADER_CATCHING_UP_BACKOFF));
            }
            Some(other) => {
                tracing::debug!(
                    topic = %partition.topic,
                    partition = partition.index,
                    leader = self.leader,
                    error = ?other,
                    "replica fetch of the partition failed; waiting for new metadata"
                );
                return Err(None);
            }
        };
        match outcome {
            Ok(()) => Ok(()),
            // The partition's role changed meanwhile: the next round sees the new one.
            Err(AppendError::NotFollower) => Ok(()),
            Err(e) => {
                tracing::error!(
                    topic = %partition.topic,
                    partition = partition.index,
                    leader = self.leader,
                    error = %e,
                    "cannot apply what the leader sent; the partition stops replicating for a while"
                );
                Err(Some(Duration::from_secs(5)))
            }
        }
    }

    fn back_off(&mut self, partition: &Partition, pause: Duration) {
        self.backoff.insert(
            (partition.topic_id, partition.index),
            Instant::now() + pause,
        );
    }
}

/// Whether a fetch answer carries a diverging epoch (Kafka's `isDivergingEpoch`).
fn is_diverging(diverging: &EpochEndOffset) -> bool {
    diverging.epoch >= 0 || diverging.end_offset >= 0
}

/// Where a follower cuts its log when the leader answers that its epoch `diverging.epoch`
/// ends at `diverging.end_offset` (Kafka's `AbstractFetcherThread.getOffsetTruncationState`):
/// when this log knows that epoch, at the smaller of the two ends; when it does not, at the
/// end of the largest epoch it has below it (the next fetch asks again from there, and
/// the leader answers for that epoch); when it has no epoch below it, at the leader's end.
/// Never past this log's end.
fn truncation_offset(partition: &Partition, diverging: &EpochEndOffset, log_end: i64) -> i64 {
    let (local_epoch, local_end) = partition.end_offset_for_epoch(diverging.epoch);
    let target = if local_epoch < 0 {
        diverging.end_offset
    } else if local_epoch == diverging.epoch {
        diverging.end_offset.min(local_end)
    } else {
        local_end
    };
    target.clamp(0, log_end)
}

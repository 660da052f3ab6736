//! Fetch: whole stored batches back to the client, with long polling.
//!
//! Sessions (KIP-227) are declined: every response carries session id 0, so
//! clients keep sending full fetches, which are always answered completely.
//! A response carries at most `fetch.max.bytes` of records whatever the
//! request asks, and a partition listed twice is read once, as in Kafka.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::fetch_response::{
    AbortedTransaction, EpochEndOffset, FetchableTopicResponse, PartitionData,
};
use kafka_protocol::messages::{FetchRequest, FetchResponse, ProducerId, ResponseKind, TopicName};
use sluice_protocol::kafka_protocol;
use sluice_protocol::model::LeaderEpoch;
use uuid::Uuid;

use crate::broker::Broker;
use crate::errors::storage_error_code;
use crate::handlers::leader_discovery::{LeaderHints, fetch_names_leader};
use crate::handlers::{request_topic, unknown_topic_error};
use crate::metrics::{TopicTraffic, batch_totals};
use crate::partition::{Partition, PartitionRead, ReadBound};
use crate::request::{ListenerName, Reply, RequestContext};

/// Clients may ask to wait longer; Kafka caps nothing here, but an hour-long
/// wait would pin a task, so bound it generously.
const MAX_WAIT_CAP: Duration = Duration::from_secs(300);

/// Handles a Fetch request.
pub async fn fetch(broker: &Arc<Broker>, ctx: &RequestContext, req: FetchRequest) -> Reply {
    let version = ctx.api_version();
    if req.session_id != 0 {
        // We never hand out session ids, so any non-zero one is unknown.
        return Reply::Now(ResponseKind::Fetch(
            FetchResponse::default()
                .with_error_code(ResponseError::FetchSessionIdNotFound.code())
                .with_session_id(0),
        ));
    }
    let reader = Reader::of(&req, version);
    if matches!(reader, Reader::Replica(_)) && !ctx.listener.is_cluster() {
        // Replication moves the high watermark: only nodes of the cluster, over the
        // node-to-node listener, may fetch as a replica (Kafka asks for CLUSTER_ACTION).
        return Reply::Now(ResponseKind::Fetch(
            FetchResponse::default()
                .with_error_code(ResponseError::ClusterAuthorizationFailed.code())
                .with_session_id(0),
        ));
    }
    let first = read_all(broker, &req, version, reader, &ctx.listener);
    // As in Kafka, a client cannot wait for more than a response may carry.
    let min_bytes = usize::try_from(req.min_bytes.max(0))
        .unwrap_or(0)
        .min(response_limit(req.max_bytes, broker.config.fetch_max_bytes));
    if req.max_wait_ms <= 0 || first.bytes >= min_bytes.max(1) || first.has_error {
        return Reply::Now(ResponseKind::Fetch(first.returned()));
    }
    let broker = broker.clone();
    let listener = ctx.listener.clone();
    let wait = Duration::from_millis(u64::try_from(req.max_wait_ms).unwrap_or(0)).min(MAX_WAIT_CAP);
    // Woken only by the partitions this fetch reads (Kafka's purgatory is keyed by
    // partition), not by every append on the broker.
    let watched = first.partitions;
    Reply::Later(tokio::spawn(async move {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            // A follower reads to the log end, so every append is news to it; a consumer
            // only what the high watermark (or last stable offset) lets through.
            let mut changes: Vec<_> = watched
                .iter()
                .map(|p| match reader {
                    Reader::Replica(_) => Box::pin(p.log_appended()),
                    Reader::Consumer { .. } => Box::pin(p.readable_changed()),
                })
                .collect();
            for change in &mut changes {
                change.as_mut().enable();
            }
            let attempt = read_all(&broker, &req, version, reader, &listener);
            if attempt.bytes >= min_bytes.max(1) || attempt.has_error {
                return ResponseKind::Fetch(attempt.returned());
            }
            let any_change = std::future::poll_fn(|cx| {
                let changed = changes.iter_mut().any(|c| c.as_mut().poll(cx).is_ready());
                if changed {
                    Poll::Ready(())
                } else {
                    Poll::Pending
                }
            });
            tokio::select! {
                _ = any_change => {}
                _ = tokio::time::sleep_until(deadline) => {
                    return ResponseKind::Fetch(read_all(&broker, &req, version, reader, &listener).returned());
                }
            }
        }
    }))
}

struct FetchAttempt {
    response: FetchResponse,
    bytes: usize,
    has_error: bool,
    /// The partitions read, whose changes a long poll waits for.
    partitions: Vec<Arc<Partition>>,
    /// Batches read per partition, counted only if this attempt is returned.
    traffic: Vec<(Arc<TopicTraffic>, Bytes)>,
}

impl FetchAttempt {
    /// The response to send; counts the bytes and records it carries.
    fn returned(self) -> FetchResponse {
        for (traffic, records) in &self.traffic {
            let (bytes, count) = batch_totals(records);
            traffic.fetched(bytes, count);
        }
        self.response
    }
}

/// The most record bytes a response carries: the request's `max_bytes`,
/// capped by the broker's `fetch.max.bytes` as Kafka does. Legacy v0-2
/// requests, which have no `max_bytes`, arrive here with `i32::MAX`.
pub(crate) fn response_limit(max_bytes: i32, fetch_max_bytes: i32) -> usize {
    usize::try_from(max_bytes.min(fetch_max_bytes).max(0)).unwrap_or(0)
}

/// Where a partition of the request is and what the client asked of it.
type Wanted<'a> = (&'a FetchTopic, &'a FetchPartition);

/// The request's partitions, each once. Kafka reads a full fetch into a map
/// keyed by topic-partition, so a partition listed again is answered once, in
/// the place it was first listed, with the parameters of its last listing.
fn distinct_partitions(req: &FetchRequest) -> Vec<Wanted<'_>> {
    let mut position: HashMap<(Uuid, &TopicName, i32), usize> = HashMap::new();
    let mut wanted: Vec<Wanted<'_>> = Vec::new();
    for topic in &req.topics {
        for p in &topic.partitions {
            match position.entry((topic.topic_id, &topic.topic, p.partition)) {
                Entry::Occupied(at) => {
                    if let Some(slot) = wanted.get_mut(*at.get()) {
                        *slot = (topic, p);
                    }
                }
                Entry::Vacant(at) => {
                    at.insert(wanted.len());
                    wanted.push((topic, p));
                }
            }
        }
    }
    wanted
}

/// Adds a partition's answer to the response, in the entry of the previous
/// partition when both are of the same topic (as Kafka groups them).
fn push_partition(
    topics: &mut Vec<FetchableTopicResponse>,
    topic: &FetchTopic,
    data: PartitionData,
    version: i16,
) {
    // v13+ names topics by id, earlier versions by name; only one may be set.
    let same_topic = |last: &FetchableTopicResponse| {
        if version >= 13 {
            last.topic_id == topic.topic_id
        } else {
            last.topic == topic.topic
        }
    };
    match topics.last_mut() {
        Some(last) if same_topic(last) => last.partitions.push(data),
        _ => {
            let response = if version >= 13 {
                FetchableTopicResponse::default().with_topic_id(topic.topic_id)
            } else {
                FetchableTopicResponse::default().with_topic(topic.topic.clone())
            };
            topics.push(response.with_partitions(vec![data]));
        }
    }
}

/// Who fetches: a consumer (to the high watermark, or for read_committed the last stable
/// offset) or a follower replicating (to the log end; its fetch offset tells the leader how
/// far it has replicated).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reader {
    Consumer { read_committed: bool },
    Replica(i32),
}

impl Reader {
    /// A follower names itself in `ReplicaState` (v15+) or `replica_id` (before); a
    /// consumer sends -1.
    fn of(req: &FetchRequest, version: i16) -> Reader {
        let replica = if version >= 15 {
            req.replica_state.replica_id.0
        } else {
            req.replica_id.0
        };
        if replica >= 0 {
            Reader::Replica(replica)
        } else {
            Reader::Consumer {
                read_committed: req.isolation_level == 1,
            }
        }
    }

    fn bound(self) -> ReadBound {
        match self {
            Reader::Replica(_) => ReadBound::LogEnd,
            Reader::Consumer {
                read_committed: true,
            } => ReadBound::LastStable,
            Reader::Consumer {
                read_committed: false,
            } => ReadBound::HighWatermark,
        }
    }
}

/// Kafka's divergence check for a follower's fetch (`Partition.fetchRecords`): when the
/// epoch of the follower's last batch ends earlier here (or is unknown here), the follower
/// must truncate to where it ends before fetching on: the answer carries that epoch and
/// offset and no records.
fn divergence(partition: &Partition, p: &FetchPartition) -> Option<EpochEndOffset> {
    if p.last_fetched_epoch < 0 {
        return None;
    }
    let (epoch, end_offset) = partition.end_offset_for_epoch(p.last_fetched_epoch);
    (epoch != p.last_fetched_epoch || end_offset < p.fetch_offset).then(|| {
        EpochEndOffset::default()
            .with_epoch(epoch)
            .with_end_offset(end_offset)
    })
}

fn read_all(
    broker: &Broker,
    req: &FetchRequest,
    version: i16,
    reader: Reader,
    listener: &ListenerName,
) -> FetchAttempt {
    let image = broker.metadata.image();
    let mut hints = LeaderHints::new(&image, listener);
    let mut remaining = response_limit(req.max_bytes, broker.config.fetch_max_bytes);
    let read_committed = reader
        == Reader::Consumer {
            read_committed: true,
        };
    let mut total = 0usize;
    let mut has_error = false;
    let mut topics: Vec<FetchableTopicResponse> = Vec::new();
    let mut traffic = Vec::new();
    let mut read = Vec::new();
    let unknown = unknown_topic_error(version);
    for (topic, p) in distinct_partitions(req) {
        let resolved = request_topic(&image, version, &topic.topic, &topic.topic_id);
        let base = PartitionData::default()
            .with_partition_index(p.partition)
            .with_records(Some(Bytes::new()))
            .with_aborted_transactions(read_committed.then(Vec::new));
        let found = resolved
            .ok_or(unknown)
            .and_then(|t| {
                let epoch = LeaderEpoch(p.current_leader_epoch);
                broker
                    .replicas
                    .leader_partition(t, p.partition, epoch)
                    .map_err(|e| e.code)
            })
            .map_err(|code| match code {
                ResponseError::UnknownTopicOrPartition => unknown,
                other => other,
            });
        let partition = match found {
            Ok(partition) => partition,
            Err(code) => {
                has_error = true;
                let data = base.with_error_code(code.code()).with_high_watermark(-1);
                // KIP-951: where the partition went.
                let data = if fetch_names_leader(version, code) {
                    data.with_current_leader(hints.leader_of(resolved, p.partition).for_fetch())
                } else {
                    data
                };
                push_partition(&mut topics, topic, data, version);
                continue;
            }
        };
        read.push(partition.clone());
        if let Reader::Replica(replica) = reader {
            if let Some(diverging) = divergence(&partition, p) {
                // Answered at once: the follower truncates before it fetches again.
                has_error = true;
                let offsets = partition.offsets();
                let data = base
                    .with_high_watermark(offsets.high_watermark)
                    .with_log_start_offset(offsets.log_start_offset)
                    .with_diverging_epoch(diverging);
                push_partition(&mut topics, topic, data, version);
                continue;
            }
            if !partition.record_follower_fetch(replica, p.fetch_offset) {
                // Not one of this partition's replicas (Kafka's `getReplicaOrException`).
                has_error = true;
                let data = base
                    .with_error_code(ResponseError::NotLeaderOrFollower.code())
                    .with_high_watermark(-1);
                push_partition(&mut topics, topic, data, version);
                continue;
            }
        }
        let partition_max = usize::try_from(p.partition_max_bytes.max(0)).unwrap_or(0);
        let limit = partition_max.min(remaining);
        // KIP-74: only the first partition with data may exceed the limits,
        // so later ones are not read once the response is full.
        let result = if total > 0 && limit == 0 {
            Ok(PartitionRead {
                records: Bytes::new(),
                offsets: partition.offsets(),
                aborted: Vec::new(),
            })
        } else {
            partition.read(p.fetch_offset, limit.max(1), reader.bound())
        };
        let data = match result {
            Ok(PartitionRead {
                mut records,
                offsets,
                mut aborted,
            }) => {
                if total > 0 && records.len() > limit {
                    records = Bytes::new();
                    aborted.clear();
                }
                total += records.len();
                remaining = remaining.saturating_sub(records.len());
                if !records.is_empty() {
                    traffic.push((partition.traffic.clone(), records.clone()));
                }
                let aborted = read_committed.then(|| {
                    aborted
                        .into_iter()
                        .map(|(producer_id, first_offset)| {
                            AbortedTransaction::default()
                                .with_producer_id(ProducerId(producer_id))
                                .with_first_offset(first_offset)
                        })
                        .collect()
                });
                base.with_high_watermark(offsets.high_watermark)
                    .with_last_stable_offset(offsets.last_stable_offset)
                    .with_log_start_offset(log_start_if_supported(
                        offsets.log_start_offset,
                        version,
                    ))
                    .with_aborted_transactions(aborted)
                    .with_records(Some(records))
            }
            Err(e) => {
                has_error = true;
                let offsets = partition.offsets();
                base.with_error_code(storage_error_code(&e).code())
                    .with_high_watermark(offsets.high_watermark)
                    .with_last_stable_offset(offsets.last_stable_offset)
                    .with_log_start_offset(log_start_if_supported(
                        offsets.log_start_offset,
                        version,
                    ))
            }
        };
        push_partition(&mut topics, topic, data, version);
    }
    FetchAttempt {
        response: FetchResponse::default()
            .with_session_id(0)
            .with_responses(topics)
            .with_node_endpoints(hints.fetch_endpoints()),
        bytes: total,
        has_error,
        partitions: read,
        traffic,
    }
}

/// log_start_offset exists from Fetch v5; v4 must keep the default.
fn log_start_if_supported(log_start_offset: i64, version: i16) -> i64 {
    if version >= 5 { log_start_offset } else { -1 }
}

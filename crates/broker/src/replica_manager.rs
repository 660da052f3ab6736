//! The one way into the partitions, after Kafka's `ReplicaManager`: every append — a
//! client's Produce, a coordinator's group or transaction records, a transaction marker —
//! goes through [`ReplicaManager::append_records`], and every read (Fetch, ListOffsets,
//! DeleteRecords) finds its partition through [`ReplicaManager::leader_partition`].
//!
//! So the rules live once: who may append to an internal topic, that only the leader
//! accepts appends and reads, how a request's leader epoch is checked (KIP-320), and what
//! acks=all waits for — the partition's committed offset, which is the durable end on
//! one node and, with replication, the high watermark over replicas that synced.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use sluice_protocol::kafka_protocol;
use sluice_protocol::model::LeaderEpoch;
use sluice_storage::AppendInfo;

use crate::errors::storage_error_code;
use crate::log_manager::LogManager;
use crate::metadata::TopicImage;
use crate::partition::{AppendError, Partition};
use crate::topic_admin::is_internal_topic;

/// Who appends (Kafka's `AppendOrigin`): a client may not write the coordinators'
/// internal topics; the coordinators write them and the transaction markers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppendOrigin {
    /// A producer's Produce request.
    Client,
    /// The group or transaction coordinator, for its own records and for markers.
    Coordinator,
}

/// What the appender waits for before it is answered (Produce's `acks`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequiredAcks {
    /// acks=0: nothing; no response is sent.
    None,
    /// acks=1: the leader's log has the records (in the page cache).
    Leader,
    /// acks=all: the records are committed (see [`Partition::wait_committed`]).
    All,
}

impl RequiredAcks {
    /// Produce's `acks` field; `None` for a value Kafka refuses (INVALID_REQUIRED_ACKS).
    pub fn from_wire(acks: i16) -> Option<Self> {
        match acks {
            0 => Some(RequiredAcks::None),
            1 => Some(RequiredAcks::Leader),
            -1 => Some(RequiredAcks::All),
            _ => None,
        }
    }
}

/// Why an append or read was refused, as the Kafka error the client gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaError {
    /// The error code.
    pub code: ResponseError,
    /// Why, when there is more to say than the code.
    pub message: Option<String>,
}

impl std::fmt::Display for ReplicaError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.message {
            Some(message) => write!(f, "{:?}: {message}", self.code),
            None => write!(f, "{:?}", self.code),
        }
    }
}

impl std::error::Error for ReplicaError {}

impl ReplicaError {
    fn code(code: ResponseError) -> Self {
        Self {
            code,
            message: None,
        }
    }
}

impl From<AppendError> for ReplicaError {
    fn from(e: AppendError) -> Self {
        match e {
            AppendError::NotLeader | AppendError::NotFollower => {
                ReplicaError::code(ResponseError::NotLeaderOrFollower)
            }
            AppendError::NotEnoughReplicas { .. } => ReplicaError {
                code: ResponseError::NotEnoughReplicas,
                message: Some(e.to_string()),
            },
            AppendError::Storage(e) => ReplicaError {
                code: storage_error_code(&e),
                message: Some(e.to_string()),
            },
        }
    }
}

/// Records appended to one partition, not yet acknowledged.
pub struct Appended {
    partition: Arc<Partition>,
    info: AppendInfo,
    acks: RequiredAcks,
}

impl Appended {
    /// Offsets and timestamps of the append.
    pub fn info(&self) -> &AppendInfo {
        &self.info
    }

    /// The partition appended to.
    pub fn partition(&self) -> &Arc<Partition> {
        &self.partition
    }

    /// Resolves when the append may be acknowledged at its required acks: at once for
    /// acks 0 and 1; for acks=all once committed, or with Kafka's errors —
    /// NOT_ENOUGH_REPLICAS_AFTER_APPEND when the ISR shrank below `min.insync.replicas`
    /// meanwhile, NOT_LEADER_OR_FOLLOWER when the leadership moved, REQUEST_TIMED_OUT after
    /// `timeout`.
    pub async fn acknowledged(&self, timeout: Option<Duration>) -> Result<(), ReplicaError> {
        if self.acks != RequiredAcks::All {
            return Ok(());
        }
        let committed = self.partition.wait_committed(self.info.last_offset + 1);
        let outcome = match timeout {
            Some(limit) => tokio::time::timeout(limit, committed)
                .await
                .map_err(|_| ReplicaError::code(ResponseError::RequestTimedOut))?,
            None => committed.await,
        };
        outcome.map_err(ReplicaError::from)?;
        if !self.partition.has_min_isr() {
            return Err(ReplicaError::code(
                ResponseError::NotEnoughReplicasAfterAppend,
            ));
        }
        Ok(())
    }
}

/// The partitions on this broker, and the rules for writing and reading them.
pub struct ReplicaManager {
    logs: LogManager,
}

impl ReplicaManager {
    /// Serves the partitions `logs` holds.
    pub fn new(logs: LogManager) -> Self {
        Self { logs }
    }

    /// The partitions on disk, for the code that creates, retunes and removes them.
    pub fn logs(&self) -> &LogManager {
        &self.logs
    }

    /// The partition `index` of `topic` if this node leads it (NOT_LEADER_OR_FOLLOWER
    /// if it only follows, UNKNOWN_TOPIC_OR_PARTITION if it has no replica here), after
    /// checking the request's `current_leader_epoch` (-1: not given) against it.
    pub fn leader_partition(
        &self,
        topic: &TopicImage,
        index: i32,
        current_leader_epoch: LeaderEpoch,
    ) -> Result<Arc<Partition>, ReplicaError> {
        let partition = self
            .logs
            .get(topic.id, index)
            .ok_or_else(|| ReplicaError::code(ResponseError::UnknownTopicOrPartition))?;
        if !partition.is_leader() {
            return Err(ReplicaError::code(ResponseError::NotLeaderOrFollower));
        }
        if let Some(code) = leader_epoch_error(current_leader_epoch, partition.leader_epoch()) {
            return Err(ReplicaError::code(code));
        }
        Ok(partition)
    }

    /// Appends record batches to a partition this node leads (Kafka's
    /// `ReplicaManager.appendRecords`), in Kafka's order: the origin's right to write the
    /// partition first, then `validate` (which returns the batches to store, checked and
    /// possibly recompressed), then the append; for acks=all it also asks for the sync
    /// that will commit them, so that every partition of a request joins one sync pass
    /// before any is awaited. Await [`Appended::acknowledged`] before answering.
    pub fn append_records<E: From<ReplicaError>>(
        &self,
        partition: &Arc<Partition>,
        origin: AppendOrigin,
        acks: RequiredAcks,
        validate: impl FnOnce(&Partition) -> Result<Bytes, E>,
    ) -> Result<Appended, E> {
        if origin == AppendOrigin::Client && is_internal_topic(&partition.topic) {
            // Kafka's answer carries no message.
            return Err(ReplicaError::code(ResponseError::InvalidTopicException).into());
        }
        let batches = validate(partition)?;
        let info = partition
            .append_as_leader(&batches, acks == RequiredAcks::All)
            .map_err(ReplicaError::from)?;
        if acks == RequiredAcks::All {
            partition.request_flush();
        }
        Ok(Appended {
            partition: partition.clone(),
            info,
            acks,
        })
    }
}

impl ReplicaManager {
    /// A coordinator's write of its own records (`batch`) to the partition `index` of its
    /// internal topic: appended as any other, answered once committed.
    pub async fn append_coordinator_batch(
        &self,
        topic: &TopicImage,
        index: i32,
        batch: Bytes,
    ) -> Result<(), ReplicaError> {
        let partition = self.leader_partition(topic, index, LeaderEpoch::UNKNOWN)?;
        let appended = self.append_records(
            &partition,
            AppendOrigin::Coordinator,
            RequiredAcks::All,
            |_| Ok::<_, ReplicaError>(batch),
        )?;
        appended.acknowledged(None).await
    }

    /// This node's partitions of a topic, by index.
    pub fn topic_partitions(&self, topic: &TopicImage) -> Vec<Arc<Partition>> {
        self.logs.topic_partitions(topic.id)
    }
}

/// KIP-320: a request that knows a newer epoch than this node talks to a stale leader
/// (UNKNOWN_LEADER_EPOCH, retriable); one that knows an older epoch has stale metadata
/// (FENCED_LEADER_EPOCH). `-1` means the client did not say.
pub fn leader_epoch_error(requested: LeaderEpoch, current: LeaderEpoch) -> Option<ResponseError> {
    if requested == LeaderEpoch::UNKNOWN {
        return None;
    }
    match requested.cmp(&current) {
        std::cmp::Ordering::Greater => Some(ResponseError::UnknownLeaderEpoch),
        std::cmp::Ordering::Less => Some(ResponseError::FencedLeaderEpoch),
        std::cmp::Ordering::Equal => None,
    }
}

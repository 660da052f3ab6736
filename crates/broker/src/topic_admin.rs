//! Topic lifecycle shared by CreateTopics, auto-creation, DeleteTopics,
//! CreatePartitions and config changes, as Kafka's controller does it: validate against
//! the metadata image and decide the records (a topic, its partitions' replicas, configs)
//! — no I/O here — then propose them. Opening, retuning and removing partition logs is
//! the [`crate::log_reconciler`]'s reaction to the committed records.

use std::collections::BTreeMap;
use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use sluice_protocol::kafka_protocol;
use uuid::Uuid;

use crate::broker::Broker;
use crate::metadata::{
    CommitError, MetadataImage, MetadataLogError, MetadataRecord, PartitionAssignment,
    RecordConflict, TopicImage,
};
use crate::placement::{Candidate, place};
use crate::topic_config::{validate_topic_config, validate_topic_configs};

/// Kafka's limit on topic name length.
pub const MAX_TOPIC_NAME_LEN: usize = 249;
/// The internal topic holding committed offsets and group metadata.
pub const CONSUMER_OFFSETS_TOPIC: &str = "__consumer_offsets";
/// The internal topic holding transaction coordinator state.
pub const TRANSACTION_STATE_TOPIC: &str = "__transaction_state";
/// Kafka's metadata log; never a topic, and Kafka refuses to create one by that name.
const CLUSTER_METADATA_TOPIC: &str = "__cluster_metadata";

/// Whether `name` is a topic the coordinators own (Kafka's `Topic.isInternal`):
/// only the coordinators append to it, and it exists with the partition count and
/// configs they need.
pub fn is_internal_topic(name: &str) -> bool {
    name == CONSUMER_OFFSETS_TOPIC || name == TRANSACTION_STATE_TOPIC
}

/// The name with `.` read as `_`: metric names cannot tell the two apart, so Kafka
/// refuses a topic whose name differs from an existing one only there
/// (`Topic.unifyCollisionChars`).
fn collision_key(name: &str) -> String {
    name.replace('.', "_")
}

/// An existing topic other than `name` that collides with it (see [`collision_key`]).
fn colliding_topic<'a>(image: &'a MetadataImage, name: &str) -> Option<&'a str> {
    if !name.contains(['.', '_']) {
        return None;
    }
    let key = collision_key(name);
    image
        .topics()
        .map(|t| t.name.as_str())
        .find(|existing| *existing != name && collision_key(existing) == key)
}

/// The most partitions one CreateTopics or CreatePartitions request may create, as in
/// Kafka's controller (`ReplicationControlManager.MAX_PARTITIONS_PER_BATCH`): bigger
/// requests are refused whole, before anything is created.
pub const MAX_PARTITIONS_PER_REQUEST: i64 = 10_000;

/// Kafka's answer to a request that would create more than
/// [`MAX_PARTITIONS_PER_REQUEST`] partitions.
pub fn too_many_partitions_per_request() -> AdminError {
    AdminError::new(
        ResponseError::PolicyViolation,
        "Excessively large number of partitions per request.",
    )
}

/// Refuses to grow the broker past `max-broker-partitions` partitions.
fn check_broker_partitions(
    broker: &Broker,
    image: &MetadataImage,
    topic: &str,
    adding: i32,
) -> Result<(), AdminError> {
    let max = i64::from(broker.config.max_broker_partitions);
    let after = image.partition_count().saturating_add(i64::from(adding));
    if after > max {
        return Err(AdminError::new(
            ResponseError::PolicyViolation,
            format!(
                "Adding {adding} partition(s) for topic '{topic}' would make this broker hold {after} partitions, more than max.broker.partitions ({max})."
            ),
        ));
    }
    Ok(())
}

/// A refused admin operation: the Kafka error code and a message for the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminError {
    /// The error code returned to the client.
    pub code: ResponseError,
    /// Why, in words.
    pub message: String,
}

impl AdminError {
    /// An error with a message.
    pub fn new(code: ResponseError, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

impl From<MetadataLogError> for AdminError {
    fn from(e: MetadataLogError) -> Self {
        tracing::error!(error = %e, "metadata log write failed");
        AdminError::new(ResponseError::KafkaStorageError, e.to_string())
    }
}

impl From<CommitError> for AdminError {
    /// A proposal that lost a race answers as Kafka's controller would have answered it
    /// had it come second; a metadata quorum that cannot commit now is NOT_CONTROLLER,
    /// which clients retry.
    fn from(e: CommitError) -> Self {
        match e {
            CommitError::Log(e) => e.into(),
            CommitError::Unavailable(reason) => {
                AdminError::new(ResponseError::NotController, reason)
            }
            CommitError::Conflict(conflict) => {
                let code = match &conflict {
                    RecordConflict::TopicExists(_) => ResponseError::TopicAlreadyExists,
                    RecordConflict::UnknownTopic(_) | RecordConflict::UnknownPartition { .. } => {
                        ResponseError::UnknownTopicOrPartition
                    }
                    RecordConflict::PartitionsNotIncreased { .. } => {
                        ResponseError::InvalidPartitions
                    }
                    RecordConflict::StalePartitionEpoch { .. } => {
                        ResponseError::InvalidUpdateVersion
                    }
                    RecordConflict::LeaderEpochRegression { .. } => {
                        ResponseError::FencedLeaderEpoch
                    }
                    RecordConflict::ProducerIdsTaken { .. }
                    | RecordConflict::StaleController { .. } => ResponseError::NotController,
                    RecordConflict::IneligibleReplica { .. } => ResponseError::IneligibleReplica,
                    RecordConflict::InvalidAssignment { .. } => {
                        ResponseError::InvalidReplicaAssignment
                    }
                    RecordConflict::UnknownBroker(_) => ResponseError::BrokerIdNotRegistered,
                    // Kafka unregisters such a broker; here its replicas move off it first.
                    RecordConflict::BrokerHostsReplicas { .. } => ResponseError::InvalidRequest,
                    // Never proposed by admin requests.
                    RecordConflict::ClusterIdSet(_) => ResponseError::UnknownServerError,
                };
                AdminError::new(code, conflict.to_string())
            }
        }
    }
}

/// Kafka's topic name rule: 1..=249 chars of `[a-zA-Z0-9._-]`, not `.`/`..`.
pub fn validate_topic_name(name: &str) -> Result<(), AdminError> {
    let invalid = |m: String| Err(AdminError::new(ResponseError::InvalidTopicException, m));
    if name.is_empty() {
        return invalid("Topic name is illegal, it can't be empty".into());
    }
    if name == "." || name == ".." {
        return invalid("Topic name cannot be \".\" or \"..\"".into());
    }
    if name.len() > MAX_TOPIC_NAME_LEN {
        return invalid(format!(
            "Topic name is illegal, it can't be longer than {MAX_TOPIC_NAME_LEN} characters, topic name: {name}"
        ));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
    {
        return invalid(format!(
            "Topic name \"{name}\" is illegal, it contains a character other than ASCII alphanumerics, '.', '_' and '-'"
        ));
    }
    Ok(())
}

/// What a new topic should look like.
#[derive(Debug, Clone)]
pub struct NewTopic {
    /// Name.
    pub name: String,
    /// Partitions; -1 means the broker default.
    pub partitions: i32,
    /// Replication factor; -1 means the broker default (`default.replication.factor`).
    pub replication_factor: i16,
    /// The replicas of each partition, when the client chose them (CreateTopics'
    /// assignments); then `partitions` and `replication_factor` follow from them.
    pub assignments: Option<Vec<Vec<i32>>>,
    /// Config overrides.
    pub configs: BTreeMap<String, String>,
    /// Whether it is an internal topic.
    pub internal: bool,
}

/// Checks a topic against the rules and the current image; returns the
/// resolved partition count and replication factor.
fn check_new_topic(
    broker: &Broker,
    topic: &NewTopic,
    image: &MetadataImage,
) -> Result<(i32, i16), AdminError> {
    validate_topic_name(&topic.name)?;
    if topic.name == CLUSTER_METADATA_TOPIC {
        return Err(AdminError::new(
            ResponseError::InvalidRequest,
            format!("Creation of internal topic {CLUSTER_METADATA_TOPIC} is prohibited."),
        ));
    }
    if image.topic(&topic.name).is_some() {
        return Err(AdminError::new(
            ResponseError::TopicAlreadyExists,
            format!("Topic '{}' already exists.", topic.name),
        ));
    }
    if let Some(existing) = colliding_topic(image, &topic.name) {
        return Err(AdminError::new(
            ResponseError::InvalidTopicException,
            format!(
                "Topic '{}' collides with existing topic: {existing}",
                topic.name
            ),
        ));
    }
    let chosen = topic.assignments.as_ref();
    let partitions = match chosen.map_or(topic.partitions, |a| {
        i32::try_from(a.len()).unwrap_or(i32::MAX)
    }) {
        -1 => broker.config.default_partitions,
        n if n >= 1 => n,
        n => {
            return Err(AdminError::new(
                ResponseError::InvalidPartitions,
                format!("Number of partitions was set to an invalid non-positive value: {n}."),
            ));
        }
    };
    let brokers = live_brokers(broker, image).len();
    let asked = chosen.map_or(topic.replication_factor, |a| {
        i16::try_from(a.first().map_or(0, Vec::len)).unwrap_or(i16::MAX)
    });
    let asked = if asked == -1 {
        default_replication_factor(broker, image)
    } else {
        asked
    };
    let replication = match asked {
        n if n >= 1 && usize::try_from(n).is_ok_and(|n| n <= brokers) => n,
        n if n >= 1 => {
            return Err(AdminError::new(
                ResponseError::InvalidReplicationFactor,
                format!(
                    "Unable to replicate the partition {n} time(s): The target replication factor of {n} cannot be reached because only {brokers} broker(s) are registered."
                ),
            ));
        }
        n => {
            return Err(AdminError::new(
                ResponseError::InvalidReplicationFactor,
                format!(
                    "Replication factor must be larger than 0, or -1 to use the default value. Got {n}."
                ),
            ));
        }
    };
    if let Some(assignments) = &topic.assignments {
        check_manual_assignments(image, assignments)?;
    }
    validate_topic_configs(topic.configs.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .map_err(|e| AdminError::new(ResponseError::InvalidConfig, e.to_string()))?;
    // The internal topics are the broker's own: groups and transactions need them.
    if !topic.internal {
        check_broker_partitions(broker, image, &topic.name, partitions)?;
    }
    Ok((partitions, replication))
}

/// The brokers replicas may be placed on: the registered ones that are unfenced and not
/// shutting down (Kafka places on active brokers only), or this node before it has
/// registered (start-up creating the internal topics).
fn live_brokers(broker: &Broker, image: &MetadataImage) -> Vec<Candidate> {
    let brokers: Vec<Candidate> = image
        .brokers()
        .filter(|b| b.is_eligible())
        .map(|b| Candidate {
            id: b.id,
            rack: b.rack.clone(),
        })
        .collect();
    if brokers.is_empty() {
        vec![Candidate {
            id: broker.node_id(),
            rack: None,
        }]
    } else {
        brokers
    }
}

/// The replication factor of a topic created with -1: `default.replication.factor`, or
/// when unset [`live_replication_cap`].
pub(crate) fn default_replication_factor(broker: &Broker, image: &MetadataImage) -> i16 {
    match broker.config.default_replication_factor {
        Some(n) => i16::try_from(n).unwrap_or(i16::MAX),
        None => live_replication_cap(broker, image),
    }
}

/// 3, or the number of live brokers when fewer: as many replicas as a small cluster has,
/// as many as Kafka recommends for a large one.
pub(crate) fn live_replication_cap(broker: &Broker, image: &MetadataImage) -> i16 {
    i16::try_from(live_brokers(broker, image).len().clamp(1, 3)).unwrap_or(3)
}

/// A client's own replica assignment (Kafka's `validateManualPartitionAssignment`): every
/// partition has the same number of replicas, none twice, all on registered brokers.
fn check_manual_assignments(
    image: &MetadataImage,
    assignments: &[Vec<i32>],
) -> Result<(), AdminError> {
    let invalid =
        |message: String| AdminError::new(ResponseError::InvalidReplicaAssignment, message);
    let width = assignments.first().map_or(0, Vec::len);
    for (index, replicas) in assignments.iter().enumerate() {
        if replicas.is_empty() {
            return Err(invalid(format!(
                "The manual partition assignment includes an empty replica list for partition {index}."
            )));
        }
        if replicas.len() != width {
            return Err(invalid(format!(
                "The manual partition assignment includes partition {index} with {} replicas, but this is inconsistent with previous partitions, which had {width} replicas.",
                replicas.len()
            )));
        }
        let mut seen = replicas.clone();
        seen.sort_unstable();
        seen.dedup();
        if seen.len() != replicas.len() {
            return Err(invalid(format!(
                "The manual partition assignment includes the partition {index} with duplicate replicas: {replicas:?}"
            )));
        }
        if let Some(unknown) = replicas.iter().find(|&&id| image.broker(id).is_none()) {
            return Err(invalid(format!(
                "The manual partition assignment includes broker {unknown}, but no such broker is registered."
            )));
        }
    }
    Ok(())
}

/// Commits what `check` decides and, if this node's partitions of `topic` could not be
/// opened, says so with the reason the reconciler gave.
fn local_open_failure(broker: &Broker, topic: Uuid) -> Option<AdminError> {
    broker
        .log_reconciler
        .take_failure(topic)
        .map(|reason| AdminError::new(ResponseError::KafkaStorageError, reason))
}

/// Creates a topic (or, with `validate_only`, checks that it could be).
pub async fn create_topic(
    broker: &Arc<Broker>,
    topic: NewTopic,
    validate_only: bool,
) -> Result<TopicImage, AdminError> {
    let id = Uuid::new_v4();
    let decide = |image: &MetadataImage| {
        let (partitions, replication) = check_new_topic(broker, &topic, image)?;
        let replicas = match &topic.assignments {
            Some(chosen) => chosen.iter().cloned().map(PartitionAssignment).collect(),
            None => place(
                &live_brokers(broker, image),
                0..partitions,
                usize::try_from(replication).unwrap_or(1),
            ),
        };
        let record = MetadataRecord::TopicCreated {
            name: topic.name.clone(),
            id,
            partitions,
            configs: topic.configs.clone(),
            internal: topic.internal,
            replicas,
        };
        Ok::<_, AdminError>((vec![record], ()))
    };
    if validate_only {
        let (records, ()) = decide(&broker.metadata.image())?;
        let mut preview = MetadataImage::new(broker.node_id());
        records.iter().for_each(|r| preview.apply(r));
        return preview
            .topic(&topic.name)
            .cloned()
            .map(|t| TopicImage {
                id: Uuid::nil(),
                ..t
            })
            .ok_or_else(|| AdminError::new(ResponseError::UnknownServerError, "no preview"));
    }
    broker.metadata.propose(decide).await?;
    if let Some(failed) = local_open_failure(broker, id) {
        // This node could not hold the new partitions: take the topic back, so that a
        // failed create leaves nothing behind and the name stays free.
        if let Err(e) = broker
            .metadata
            .propose(|_| Ok::<_, AdminError>((vec![MetadataRecord::TopicDeleted { id }], ())))
            .await
        {
            tracing::error!(topic = %topic.name, error = %e.message, "cannot take back a topic whose partitions failed to open");
        }
        return Err(failed);
    }
    let created = broker
        .metadata
        .image()
        .topic_by_id(&id)
        .cloned()
        .ok_or_else(|| AdminError::new(ResponseError::UnknownServerError, "topic vanished"))?;
    tracing::info!(topic = %created.name, partitions = created.partition_count(), id = %created.id, "created topic");
    Ok(created)
}

/// Returns the topic, creating it with broker defaults when auto-creation is on (an
/// internal topic's name creates it as its coordinator needs it, as Kafka's
/// auto-creation does). `Ok(None)` means it does not exist and may not be created.
pub async fn get_or_auto_create(
    broker: &Arc<Broker>,
    name: &str,
    allow: bool,
) -> Result<Option<TopicImage>, AdminError> {
    if let Some(t) = broker.metadata.image().topic(name) {
        return Ok(Some(t.clone()));
    }
    if !(allow && broker.config.auto_create_topics) {
        return Ok(None);
    }
    if is_internal_topic(name) {
        return ensure_internal_topic(broker, name).await.map(Some);
    }
    let new = NewTopic {
        name: name.to_string(),
        partitions: -1,
        replication_factor: -1,
        assignments: None,
        configs: BTreeMap::new(),
        internal: false,
    };
    match create_topic(broker, new, false).await {
        Ok(t) => Ok(Some(t)),
        // Another request created it first.
        Err(e) if e.code == ResponseError::TopicAlreadyExists => {
            Ok(broker.metadata.image().topic(name).cloned())
        }
        Err(e) => Err(e),
    }
}

/// Makes sure `__consumer_offsets` exists (Kafka creates it on first use).
pub async fn ensure_consumer_offsets(broker: &Arc<Broker>) -> Result<TopicImage, AdminError> {
    ensure_internal_topic(broker, CONSUMER_OFFSETS_TOPIC).await
}

/// Makes sure an internal topic (`__consumer_offsets` or
/// `__transaction_state`) exists, creating it as Kafka does on first use:
/// compacted, with its configured segment size (100 MiB) and partition count.
pub async fn ensure_internal_topic(
    broker: &Arc<Broker>,
    name: &str,
) -> Result<TopicImage, AdminError> {
    if let Some(t) = broker.metadata.image().topic(name) {
        return Ok(t.clone());
    }
    let (partitions, segment_bytes) = if name == TRANSACTION_STATE_TOPIC {
        (
            broker.config.transaction_state_partitions,
            broker.config.transaction_state_segment_bytes,
        )
    } else {
        (
            broker.config.offsets_topic_partitions,
            broker.config.offsets_topic_segment_bytes,
        )
    };
    // As many replicas as there are brokers, up to 3; with 3, acks=all writes of the
    // coordinators need 2 of them (Kafka's `offsets.topic.replication.factor` 3 and
    // `transaction.state.log.min.isr` 2).
    let replication = live_brokers(broker, &broker.metadata.image())
        .len()
        .clamp(1, 3);
    let mut configs = BTreeMap::from([
        ("cleanup.policy".to_string(), "compact".to_string()),
        ("segment.bytes".to_string(), segment_bytes.to_string()),
        ("compression.type".to_string(), "producer".to_string()),
    ]);
    if replication >= 3 {
        configs.insert("min.insync.replicas".to_string(), "2".to_string());
    }
    let new = NewTopic {
        name: name.to_string(),
        partitions,
        replication_factor: i16::try_from(replication).unwrap_or(1),
        assignments: None,
        configs,
        internal: true,
    };
    match create_topic(broker, new, false).await {
        Ok(t) => Ok(t),
        Err(e) if e.code == ResponseError::TopicAlreadyExists => {
            broker.metadata.image().topic(name).cloned().ok_or(e)
        }
        Err(e) => Err(e),
    }
}

/// Deletes a topic by id.
pub async fn delete_topic(broker: &Arc<Broker>, id: Uuid) -> Result<TopicImage, AdminError> {
    broker
        .metadata
        .propose(|image| {
            let topic = image.topic_by_id(&id).ok_or_else(|| {
                AdminError::new(
                    ResponseError::UnknownTopicId,
                    "This server does not host this topic ID.",
                )
            })?;
            if topic.internal {
                return Err(AdminError::new(
                    ResponseError::InvalidRequest,
                    format!("Cannot delete internal topic {}", topic.name),
                ));
            }
            Ok((vec![MetadataRecord::TopicDeleted { id }], topic.clone()))
        })
        .await
}

/// CreatePartitions: raises the partition count of a topic.
pub async fn create_partitions(
    broker: &Arc<Broker>,
    name: &str,
    count: i32,
    validate_only: bool,
) -> Result<(), AdminError> {
    let decide = |image: &MetadataImage| {
        let topic = image.topic(name).ok_or_else(|| {
            AdminError::new(
                ResponseError::UnknownTopicOrPartition,
                format!("The topic '{name}' does not exist."),
            )
        })?;
        let current = topic.partition_count();
        if count == current {
            return Err(AdminError::new(
                ResponseError::InvalidPartitions,
                format!("Topic already has {count} partitions."),
            ));
        }
        if count < current {
            return Err(AdminError::new(
                ResponseError::InvalidPartitions,
                format!(
                    "The topic {name} currently has {current} partition(s); {count} would not be an increase."
                ),
            ));
        }
        check_broker_partitions(broker, image, name, count - current)?;
        let replication = topic.partition(0).map_or(1, |p| p.replicas.len());
        let live = live_brokers(broker, image);
        if replication > live.len() {
            return Err(AdminError::new(
                ResponseError::InvalidReplicationFactor,
                format!(
                    "Unable to replicate the partition {replication} time(s): The target replication factor of {replication} cannot be reached because only {} broker(s) are registered.",
                    live.len()
                ),
            ));
        }
        let replicas = place(&live, current..count, replication);
        Ok::<_, AdminError>((
            vec![MetadataRecord::PartitionsCreated {
                id: topic.id,
                partitions: count,
                replicas,
            }],
            topic.id,
        ))
    };
    if validate_only {
        decide(&broker.metadata.image())?;
        return Ok(());
    }
    let id = broker.metadata.propose(decide).await?;
    match local_open_failure(broker, id) {
        Some(failed) => Err(failed),
        None => Ok(()),
    }
}

/// Replaces a topic's config overrides (after validating every entry).
pub async fn set_topic_configs(
    broker: &Arc<Broker>,
    name: &str,
    change: impl FnOnce(&BTreeMap<String, String>) -> Result<BTreeMap<String, String>, AdminError>,
    validate_only: bool,
) -> Result<(), AdminError> {
    let decide = |image: &MetadataImage| {
        let topic = image.topic(name).ok_or_else(|| {
            AdminError::new(
                ResponseError::UnknownTopicOrPartition,
                format!("The topic '{name}' does not exist."),
            )
        })?;
        let configs = change(&topic.configs)?;
        validate_topic_configs(configs.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .map_err(|e| AdminError::new(ResponseError::InvalidConfig, e.to_string()))?;
        Ok::<_, AdminError>((
            vec![MetadataRecord::TopicConfigsChanged {
                id: topic.id,
                configs,
            }],
            (),
        ))
    };
    if validate_only {
        decide(&broker.metadata.image())?;
        return Ok(());
    }
    broker.metadata.propose(decide).await
}

/// Replaces the dynamic broker configs (every topic's settings follow).
pub async fn set_broker_configs(
    broker: &Arc<Broker>,
    change: impl FnOnce(&BTreeMap<String, String>) -> Result<BTreeMap<String, String>, AdminError>,
    validate_only: bool,
) -> Result<(), AdminError> {
    let decide = |image: &MetadataImage| {
        let configs = change(&image.broker_configs)?;
        for (k, v) in &configs {
            let def = crate::topic_config::TOPIC_CONFIGS
                .iter()
                .find(|d| d.broker_synonym == Some(k.as_str()))
                .ok_or_else(|| {
                    AdminError::new(
                        ResponseError::InvalidConfig,
                        format!("Cannot update broker config {k} dynamically"),
                    )
                })?;
            validate_topic_config(def.name, v)
                .map_err(|e| AdminError::new(ResponseError::InvalidConfig, e.to_string()))?;
        }
        Ok::<_, AdminError>((vec![MetadataRecord::BrokerConfigsChanged { configs }], ()))
    };
    if validate_only {
        decide(&broker.metadata.image())?;
        return Ok(());
    }
    broker.metadata.propose(decide).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_names_follow_kafka_rules() {
        assert!(validate_topic_name("my-topic.v1_x").is_ok());
        for bad in ["", ".", "..", "a/b", "has space", "ü"] {
            assert_eq!(
                validate_topic_name(bad).unwrap_err().code,
                ResponseError::InvalidTopicException,
                "{bad:?}"
            );
        }
        assert!(validate_topic_name(&"a".repeat(249)).is_ok());
        assert!(validate_topic_name(&"a".repeat(250)).is_err());
    }
}

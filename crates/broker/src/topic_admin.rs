//! Topic lifecycle shared by CreateTopics, auto-creation, DeleteTopics,
//! CreatePartitions and config changes: validate, record in the metadata log,
//! then bring the partition logs in line.

use std::collections::BTreeMap;

use kafka_protocol::error::ResponseError;
use sluice_protocol::kafka_protocol;
use uuid::Uuid;

use crate::broker::Broker;
use crate::metadata::{MetadataImage, MetadataLogError, MetadataRecord, TopicImage};
use crate::topic_config::validate_topic_config;

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
    /// Replication factor; -1 means the broker default (1).
    pub replication_factor: i16,
    /// Config overrides.
    pub configs: BTreeMap<String, String>,
    /// Whether it is an internal topic.
    pub internal: bool,
}

/// Number of brokers in the cluster (one, until clustering lands).
const CLUSTER_SIZE: i16 = 1;

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
    let partitions = match topic.partitions {
        -1 => broker.config.default_partitions,
        n if n >= 1 => n,
        n => {
            return Err(AdminError::new(
                ResponseError::InvalidPartitions,
                format!("Number of partitions was set to an invalid non-positive value: {n}."),
            ));
        }
    };
    let replication = match topic.replication_factor {
        -1 => 1,
        n if n >= 1 && n <= CLUSTER_SIZE => n,
        n if n >= 1 => {
            return Err(AdminError::new(
                ResponseError::InvalidReplicationFactor,
                format!(
                    "Unable to replicate the partition {n} time(s): The target replication factor of {n} cannot be reached because only {CLUSTER_SIZE} broker(s) are registered."
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
    for (name, value) in &topic.configs {
        validate_topic_config(name, value)
            .map_err(|e| AdminError::new(ResponseError::InvalidConfig, e.to_string()))?;
    }
    // The internal topics are the broker's own: groups and transactions need them.
    if !topic.internal {
        check_broker_partitions(broker, image, &topic.name, partitions)?;
    }
    Ok((partitions, replication))
}

/// Creates a topic (or, with `validate_only`, checks that it could be).
pub fn create_topic(
    broker: &Broker,
    topic: NewTopic,
    validate_only: bool,
) -> Result<TopicImage, AdminError> {
    if validate_only {
        let (partitions, _) = check_new_topic(broker, &topic, &broker.metadata.image())?;
        return Ok(TopicImage {
            name: topic.name,
            id: Uuid::nil(),
            partitions,
            configs: topic.configs,
            internal: topic.internal,
        });
    }
    // The partition logs are opened before the topic appears in the image, so
    // nobody (FindCoordinator for `__consumer_offsets` included) is told about
    // a topic whose partitions cannot be used yet.
    let created = broker.metadata.commit(|image| {
        let (partitions, _) = check_new_topic(broker, &topic, image)?;
        let created = TopicImage {
            name: topic.name.clone(),
            id: Uuid::new_v4(),
            partitions,
            configs: topic.configs.clone(),
            internal: topic.internal,
        };
        broker
            .logs
            .create_topic(&created, broker.topic_settings(image, &created), false)
            .map_err(|e| {
                tracing::error!(topic = %created.name, partitions, error = %e, "cannot create the topic's partition logs");
                AdminError::new(ResponseError::KafkaStorageError, e.to_string())
            })?;
        let record = MetadataRecord::TopicCreated {
            name: created.name.clone(),
            id: created.id,
            partitions,
            configs: created.configs.clone(),
            internal: created.internal,
        };
        Ok::<_, AdminError>((vec![record], created))
    });
    let created = match created {
        Ok(t) => t,
        Err(e) => {
            // The metadata write failed after the logs were opened: undo them.
            if broker.metadata.image().topic(&topic.name).is_none() {
                broker.logs.delete_topic(&topic.name);
            }
            return Err(e);
        }
    };
    tracing::info!(topic = %created.name, partitions = created.partitions, id = %created.id, "created topic");
    if is_internal_topic(&created.name) {
        crate::coordinator_load::on_internal_topic_created(broker, &created);
    }
    Ok(created)
}

/// Returns the topic, creating it with broker defaults when auto-creation is
/// on (an internal topic with the settings its coordinator needs, as Kafka's
/// auto-creation does). `Ok(None)` means it does not exist and may not be created.
pub fn get_or_auto_create(
    broker: &Broker,
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
        return ensure_internal_topic(broker, name).map(Some);
    }
    let new = NewTopic {
        name: name.to_string(),
        partitions: -1,
        replication_factor: -1,
        configs: BTreeMap::new(),
        internal: false,
    };
    match create_topic(broker, new, false) {
        Ok(t) => Ok(Some(t)),
        // Another request created it first.
        Err(e) if e.code == ResponseError::TopicAlreadyExists => {
            Ok(broker.metadata.image().topic(name).cloned())
        }
        Err(e) => Err(e),
    }
}

/// Makes sure `__consumer_offsets` exists (Kafka creates it on first use).
pub fn ensure_consumer_offsets(broker: &Broker) -> Result<TopicImage, AdminError> {
    ensure_internal_topic(broker, CONSUMER_OFFSETS_TOPIC)
}

/// Makes sure an internal topic (`__consumer_offsets` or
/// `__transaction_state`) exists, creating it as Kafka does on first use:
/// compacted, 100 MiB segments, its configured partition count.
pub fn ensure_internal_topic(broker: &Broker, name: &str) -> Result<TopicImage, AdminError> {
    if let Some(t) = broker.metadata.image().topic(name) {
        return Ok(t.clone());
    }
    let partitions = if name == TRANSACTION_STATE_TOPIC {
        broker.config.transaction_state_partitions
    } else {
        broker.config.offsets_topic_partitions
    };
    let new = NewTopic {
        name: name.to_string(),
        partitions,
        replication_factor: 1,
        configs: BTreeMap::from([
            ("cleanup.policy".to_string(), "compact".to_string()),
            ("segment.bytes".to_string(), "104857600".to_string()),
            ("compression.type".to_string(), "producer".to_string()),
        ]),
        internal: true,
    };
    match create_topic(broker, new, false) {
        Ok(t) => Ok(t),
        Err(e) if e.code == ResponseError::TopicAlreadyExists => {
            broker.metadata.image().topic(name).cloned().ok_or(e)
        }
        Err(e) => Err(e),
    }
}

/// Deletes a topic by id.
pub fn delete_topic(broker: &Broker, id: Uuid) -> Result<TopicImage, AdminError> {
    let topic = broker.metadata.commit(|image| {
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
    })?;
    broker.logs.delete_topic(&topic.name);
    tracing::info!(topic = %topic.name, id = %topic.id, "deleted topic");
    Ok(topic)
}

/// CreatePartitions: raises the partition count of a topic.
pub fn create_partitions(
    broker: &Broker,
    name: &str,
    count: i32,
    validate_only: bool,
) -> Result<(), AdminError> {
    let check = |image: &crate::metadata::MetadataImage| -> Result<TopicImage, AdminError> {
        let topic = image.topic(name).ok_or_else(|| {
            AdminError::new(
                ResponseError::UnknownTopicOrPartition,
                format!("The topic '{name}' does not exist."),
            )
        })?;
        if count == topic.partitions {
            return Err(AdminError::new(
                ResponseError::InvalidPartitions,
                format!("Topic already has {count} partitions."),
            ));
        }
        if count < topic.partitions {
            return Err(AdminError::new(
                ResponseError::InvalidPartitions,
                format!(
                    "The topic {name} currently has {} partition(s); {count} would not be an increase.",
                    topic.partitions
                ),
            ));
        }
        check_broker_partitions(broker, image, name, count - topic.partitions)?;
        Ok(topic.clone())
    };
    if validate_only {
        check(&broker.metadata.image())?;
        return Ok(());
    }
    // New partitions are opened before the image names them (see create_topic).
    broker.metadata.commit(|image| {
        let topic = check(image)?;
        let grown = TopicImage {
            partitions: count,
            ..topic.clone()
        };
        broker
            .logs
            .add_partitions(&grown, broker.topic_settings(image, &grown))
            .map_err(|e| {
                tracing::error!(topic = %name, partitions = count, error = %e, "cannot create the new partition logs");
                AdminError::new(ResponseError::KafkaStorageError, e.to_string())
            })?;
        Ok::<_, AdminError>((
            vec![MetadataRecord::PartitionsCreated {
                id: topic.id,
                partitions: count,
            }],
            (),
        ))
    })
}

/// Replaces a topic's config overrides (after validating every entry).
pub fn set_topic_configs(
    broker: &Broker,
    name: &str,
    change: impl FnOnce(&BTreeMap<String, String>) -> Result<BTreeMap<String, String>, AdminError>,
    validate_only: bool,
) -> Result<(), AdminError> {
    let check = |image: &crate::metadata::MetadataImage| -> Result<(TopicImage, BTreeMap<String, String>), AdminError> {
        let topic = image.topic(name).ok_or_else(|| {
            AdminError::new(
                ResponseError::UnknownTopicOrPartition,
                format!("The topic '{name}' does not exist."),
            )
        })?;
        let next = change(&topic.configs)?;
        for (k, v) in &next {
            validate_topic_config(k, v).map_err(|e| AdminError::new(ResponseError::InvalidConfig, e.to_string()))?;
        }
        Ok((topic.clone(), next))
    };
    if validate_only {
        check(&broker.metadata.image())?;
        return Ok(());
    }
    broker.metadata.commit(|image| {
        let (topic, configs) = check(image)?;
        Ok::<_, AdminError>((
            vec![MetadataRecord::TopicConfigsChanged {
                id: topic.id,
                configs,
            }],
            (),
        ))
    })?;
    let image = broker.metadata.image();
    if let Some(t) = image.topic(name) {
        broker
            .logs
            .update_settings(name, broker.topic_settings(&image, t));
    }
    Ok(())
}

/// Replaces the dynamic broker configs and re-resolves every topic's settings.
pub fn set_broker_configs(
    broker: &Broker,
    change: impl FnOnce(&BTreeMap<String, String>) -> Result<BTreeMap<String, String>, AdminError>,
    validate_only: bool,
) -> Result<(), AdminError> {
    let check =
        |image: &crate::metadata::MetadataImage| -> Result<BTreeMap<String, String>, AdminError> {
            let next = change(&image.broker_configs)?;
            for (k, v) in &next {
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
            Ok(next)
        };
    if validate_only {
        check(&broker.metadata.image())?;
        return Ok(());
    }
    broker.metadata.commit(|image| {
        let configs = check(image)?;
        Ok::<_, AdminError>((vec![MetadataRecord::BrokerConfigsChanged { configs }], ()))
    })?;
    let image = broker.metadata.image();
    for t in image.topics() {
        broker
            .logs
            .update_settings(&t.name, broker.topic_settings(&image, t));
    }
    Ok(())
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

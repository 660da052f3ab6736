//! Request handlers: each turns a typed request into a typed response and
//! never touches sockets (docs/ARCHITECTURE.md §3).

pub mod acls;
pub mod client_quotas;
pub mod cluster;
pub mod commit_topics;
pub mod configs;
pub mod delete_records;
pub mod describe_topic_partitions;
pub mod elect_leaders;
pub mod fetch;
pub mod groups;
mod leader_discovery;
pub mod list_offsets;
pub mod log_dirs;
pub mod metadata;
pub mod offset_for_leader_epoch;
pub mod produce;
pub mod producer;
pub mod reassignments;
mod record_checks;
pub mod scram_users;
pub mod topics;
pub mod transactions;
pub mod txn_markers;
pub mod unregister_broker;

#[cfg(test)]
mod tests;

use kafka_protocol::error::ResponseError;
use sluice_protocol::kafka_protocol;

use crate::metadata::{MetadataImage, TopicImage};

/// The topic a Produce or Fetch request names: by id from v13 (KIP-516), by name before.
pub(crate) fn request_topic<'a>(
    image: &'a MetadataImage,
    version: i16,
    name: &str,
    id: &uuid::Uuid,
) -> Option<&'a TopicImage> {
    if version >= 13 {
        image.topic_by_id(id)
    } else {
        image.topic(name)
    }
}

/// The error for a topic [`request_topic`] did not find: UNKNOWN_TOPIC_ID when the request
/// named it by id (v13+), UNKNOWN_TOPIC_OR_PARTITION before.
pub(crate) fn unknown_topic_error(version: i16) -> ResponseError {
    if version >= 13 {
        ResponseError::UnknownTopicId
    } else {
        ResponseError::UnknownTopicOrPartition
    }
}

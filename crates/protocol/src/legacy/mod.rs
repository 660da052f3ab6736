//! Request versions that kafka-protocol 0.18 no longer decodes, and message format v0/v1.
//!
//! Kafka 4.0 removed the oldest request versions (KIP-896) and kafka-protocol followed, but
//! clients still in the field speak them: kafka-node (Node-RED) uses Produce v0-2, Fetch v0,
//! ListOffsets v0, OffsetCommit v0-1 and message sets (magic 0/1). Instead of teaching every
//! handler those shapes, this module translates at the edge (docs/ARCHITECTURE.md §3):
//!
//! - [`decode_request`] reads a legacy body and returns the equivalent request at the lowest
//!   version kafka-protocol supports ([`modern_version`]); Produce message sets become one v2
//!   batch per partition ([`message_set::to_v2_batches`]).
//! - The broker runs its normal handler at that modern version.
//! - [`encode_response_body`] writes the handler's response in the legacy layout; Fetch
//!   down-converts the stored v2 batches to message sets ([`message_set::from_v2_batches`]).
//!
//! The response header of every legacy version is v0 (correlation id only); the caller
//! writes it.

mod admin;
mod crc32;
mod fetch;
pub mod message_set;
mod offsets;
mod produce;
mod wire;

#[cfg(test)]
mod tests;

use bytes::Bytes;
use kafka_protocol::messages::{ApiKey, RequestKind, ResponseKind};
use thiserror::Error;

use crate::batch::BatchError;
use crate::compression::CompressionError;
use crate::records::RecordsError;

pub use crc32::crc32;
pub use fetch::encode_fetch_response;

/// Why a legacy request or response could not be translated.
///
/// Request errors mean the body is not a valid request of that version, and the broker closes
/// the connection as for any undecodable request. A corrupt Produce *message set* is not an
/// error at this level: it is reported per partition (see [`decode_request`]).
#[derive(Debug, Error)]
pub enum LegacyError {
    /// The api/version pair is not one this module translates.
    #[error("{api:?} v{version} is not a legacy version this module handles")]
    NotLegacy { api: ApiKey, version: i16 },
    /// The input ended inside a field.
    #[error("truncated {what}")]
    Truncated { what: &'static str },
    /// A field holds an impossible value (negative length, bad UTF-8, …).
    #[error("malformed {what}")]
    Malformed { what: &'static str },
    /// A response field is too long for its legacy length prefix (a broker bug).
    #[error("{what} of {len} bytes is too long for its length field")]
    TooLong { what: &'static str, len: usize },
    /// The response handed to the encoder is for another api.
    #[error("response for {api:?} expected, got another kind")]
    ResponseMismatch { api: ApiKey },
    /// A v0/v1 message set violates the format.
    #[error("corrupt message set: {0}")]
    Corrupt(&'static str),
    /// A v0/v1 message's CRC-32 does not match its contents.
    #[error("message CRC mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    CrcMismatch { stored: u32, computed: u32 },
    #[error(transparent)]
    Compression(#[from] CompressionError),
    #[error(transparent)]
    Batch(#[from] BatchError),
    #[error(transparent)]
    Records(#[from] RecordsError),
}

/// Legacy versions per api, with the modern version each is translated to. The modern
/// version is the lowest kafka-protocol supports, which is also the closest in meaning:
/// each removed version differs from it only by fields added later (checked by a test
/// against the crate's `VERSIONS`).
const TABLE: &[(ApiKey, i16, i16, i16)] = &[
    (ApiKey::Produce, 0, 2, 3),
    (ApiKey::Fetch, 0, 3, 4),
    (ApiKey::ListOffsets, 0, 0, 1),
    (ApiKey::OffsetCommit, 0, 1, 2),
    (ApiKey::OffsetFetch, 0, 0, 1),
    (ApiKey::CreateTopics, 0, 1, 2),
    (ApiKey::DeleteTopics, 0, 0, 1),
    (ApiKey::DescribeConfigs, 0, 0, 1),
    (ApiKey::DescribeLogDirs, 0, 0, 1),
];

/// The legacy versions this module decodes for `api`, inclusive; None if the api needs none.
pub fn legacy_range(api: ApiKey) -> Option<(i16, i16)> {
    TABLE
        .iter()
        .find(|(k, ..)| *k == api)
        .map(|&(_, lo, hi, _)| (lo, hi))
}

/// The kafka-protocol version a legacy request of `api` is translated to (and whose
/// response [`encode_response_body`] expects); None if the api needs no translation.
pub fn modern_version(api: ApiKey) -> Option<i16> {
    TABLE
        .iter()
        .find(|(k, ..)| *k == api)
        .map(|&(.., modern)| modern)
}

/// Whether `version` of `api` must go through this module.
pub fn is_legacy(api: ApiKey, version: i16) -> bool {
    legacy_range(api).is_some_and(|(lo, hi)| (lo..=hi).contains(&version))
}

/// Decodes the body of a legacy request (header already consumed) into the equivalent
/// request at the returned modern version.
///
/// Produce message sets (magic 0/1) are validated (CRC-32 of every message, nested
/// compressed wrappers expanded) and converted to one v2 batch per partition, recompressed
/// with the codec the producer used (see [`message_set::to_v2_batches`]). A partition whose
/// message set is corrupt gets an **empty** `records` value: the broker's produce path
/// rejects empty records with CORRUPT_MESSAGE for that partition only, which is what Kafka
/// answers, while the other partitions of the request proceed normally.
///
/// An `Err` means the request itself (not a message set) cannot be read: close the
/// connection.
pub fn decode_request(
    api: ApiKey,
    version: i16,
    body: &mut Bytes,
) -> Result<(RequestKind, i16), LegacyError> {
    if !is_legacy(api, version) {
        return Err(LegacyError::NotLegacy { api, version });
    }
    let modern = modern_version(api).ok_or(LegacyError::NotLegacy { api, version })?;
    let request = match api {
        ApiKey::Produce => RequestKind::Produce(produce::decode_request(version, body)?),
        ApiKey::Fetch => RequestKind::Fetch(fetch::decode_request(version, body)?),
        ApiKey::ListOffsets => RequestKind::ListOffsets(offsets::decode_list_offsets(body)?),
        ApiKey::OffsetCommit => {
            RequestKind::OffsetCommit(offsets::decode_offset_commit(version, body)?)
        }
        ApiKey::OffsetFetch => RequestKind::OffsetFetch(offsets::decode_offset_fetch(body)?),
        ApiKey::CreateTopics => {
            RequestKind::CreateTopics(admin::decode_create_topics(version, body)?)
        }
        ApiKey::DeleteTopics => RequestKind::DeleteTopics(admin::decode_delete_topics(body)?),
        ApiKey::DescribeConfigs => {
            RequestKind::DescribeConfigs(admin::decode_describe_configs(body)?)
        }
        ApiKey::DescribeLogDirs => {
            RequestKind::DescribeLogDirs(admin::decode_describe_log_dirs(body)?)
        }
        _ => return Err(LegacyError::NotLegacy { api, version }),
    };
    Ok((request, modern))
}

/// Encodes the body (no header) of the response to a legacy request, from the response
/// the broker computed for the modern version.
///
/// Fetch responses are down-converted to message format v0 (Fetch v0-1) or v1 (Fetch
/// v2-3); see [`message_set::from_v2_batches`]. Records before the fetch offset are kept,
/// because the response does not carry the fetch offset; [`encode_fetch_response`] takes
/// the requested offsets and drops them, as Kafka does for uncompressed batches.
pub fn encode_response_body(
    api: ApiKey,
    version: i16,
    response: &ResponseKind,
) -> Result<Bytes, LegacyError> {
    if !is_legacy(api, version) {
        return Err(LegacyError::NotLegacy { api, version });
    }
    let mismatch = LegacyError::ResponseMismatch { api };
    match (api, response) {
        (ApiKey::Produce, ResponseKind::Produce(r)) => produce::encode_response(version, r),
        (ApiKey::Fetch, ResponseKind::Fetch(r)) => {
            encode_fetch_response(version, r, &|_, _| None, usize::MAX)
        }
        (ApiKey::ListOffsets, ResponseKind::ListOffsets(r)) => {
            offsets::encode_list_offsets_response(r)
        }
        (ApiKey::OffsetCommit, ResponseKind::OffsetCommit(r)) => {
            offsets::encode_offset_commit_response(r)
        }
        (ApiKey::OffsetFetch, ResponseKind::OffsetFetch(r)) => {
            offsets::encode_offset_fetch_response(r)
        }
        (ApiKey::CreateTopics, ResponseKind::CreateTopics(r)) => {
            admin::encode_create_topics_response(version, r)
        }
        (ApiKey::DeleteTopics, ResponseKind::DeleteTopics(r)) => {
            admin::encode_delete_topics_response(r)
        }
        (ApiKey::DescribeConfigs, ResponseKind::DescribeConfigs(r)) => {
            admin::encode_describe_configs_response(r)
        }
        (ApiKey::DescribeLogDirs, ResponseKind::DescribeLogDirs(r)) => {
            admin::encode_describe_log_dirs_response(r)
        }
        _ => Err(mismatch),
    }
}

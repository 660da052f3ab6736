//! Fetch v0-3 → v4, and the v0-3 response layouts with message-set down-conversion.
//!
//! Request v0-2: `replica_id i32 | max_wait i32 | min_bytes i32 |
//! [topic string | [partition i32 | fetch_offset i64 | partition_max_bytes i32]]`;
//! v3 adds `max_bytes i32` after `min_bytes`. v4 adds the isolation level, which for old
//! clients is READ_UNCOMMITTED (they cannot tell aborted data apart anyway).
//!
//! Response v0: `[topic string | [partition i32 | error i16 | high_watermark i64 |
//! message_set bytes]]`; v1-3 put `throttle_time_ms i32` first.

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::TopicName;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchRequest, FetchTopic};
use kafka_protocol::messages::fetch_response::FetchResponse;

use super::LegacyError;
use super::message_set::{MAGIC_V0, MAGIC_V1, MAX_DECOMPRESSED_BYTES, SetLimit, from_v2_bytes};
use super::wire;

/// What Kafka uses as the response size limit for versions without `max_bytes`.
const NO_RESPONSE_LIMIT: i32 = i32::MAX;
/// READ_UNCOMMITTED.
const READ_UNCOMMITTED: i8 = 0;
/// The error code a partition gets when its stored batches cannot be down-converted.
const CORRUPT_MESSAGE: i16 = 2;

pub(crate) fn decode_request(version: i16, body: &mut Bytes) -> Result<FetchRequest, LegacyError> {
    let replica_id = wire::i32(body, "replica id")?;
    let max_wait_ms = wire::i32(body, "max wait")?;
    let min_bytes = wire::i32(body, "min bytes")?;
    let max_bytes = if version >= 3 {
        wire::i32(body, "max bytes")?
    } else {
        NO_RESPONSE_LIMIT
    };
    let topic_count = wire::array_len(body, 6, "topics")?;
    let mut topics = Vec::with_capacity(topic_count);
    for _ in 0..topic_count {
        let name = wire::string(body, "topic name")?;
        // partition + fetch_offset + partition_max_bytes
        let partition_count = wire::array_len(body, 16, "partitions")?;
        let mut partitions = Vec::with_capacity(partition_count);
        for _ in 0..partition_count {
            let partition = wire::i32(body, "partition")?;
            let fetch_offset = wire::i64(body, "fetch offset")?;
            let partition_max_bytes = wire::i32(body, "partition max bytes")?;
            partitions.push(
                FetchPartition::default()
                    .with_partition(partition)
                    .with_fetch_offset(fetch_offset)
                    .with_partition_max_bytes(partition_max_bytes),
            );
        }
        topics.push(
            FetchTopic::default()
                .with_topic(TopicName(name))
                .with_partitions(partitions),
        );
    }
    Ok(FetchRequest::default()
        .with_replica_id(replica_id.into())
        .with_max_wait_ms(max_wait_ms)
        .with_min_bytes(min_bytes)
        .with_max_bytes(max_bytes)
        .with_isolation_level(READ_UNCOMMITTED)
        .with_topics(topics))
}

/// Encodes a Fetch v0-3 response body, down-converting every partition's v2 batches to
/// message format v0 (Fetch v0-1) or v1 (Fetch v2-3).
///
/// `first_offset(topic, partition)` returns the offset the client asked for, if known:
/// uncompressed records below it are dropped, as Kafka does (the first stored batch may
/// start before the fetch offset). [`super::encode_response_body`] passes `None`
/// everywhere. A partition whose batches cannot be decoded answers CORRUPT_MESSAGE with an
/// empty message set.
///
/// Converted messages can be larger than the stored records, so the sets are bounded
/// again: `max_bytes` for all of them together (the response's byte limit), and for each
/// partition the size of its stored records, as Kafka bounds a down-converted partition
/// by its original size. Each partition still gets its first message if the response has
/// room for it; the first partition with data gets it regardless (KIP-74), so a client
/// always makes progress. Sets end at whole messages.
pub fn encode_fetch_response(
    version: i16,
    response: &FetchResponse,
    first_offset: &dyn Fn(&str, i32) -> Option<i64>,
    max_bytes: usize,
) -> Result<Bytes, LegacyError> {
    let magic = if version >= 2 { MAGIC_V1 } else { MAGIC_V0 };
    let mut out = BytesMut::new();
    if version >= 1 {
        out.put_i32(response.throttle_time_ms);
    }
    let mut left = max_bytes;
    let mut carried = false;
    wire::put_array_len(&mut out, response.responses.len())?;
    for topic in &response.responses {
        wire::put_string(&mut out, &topic.topic.0)?;
        wire::put_array_len(&mut out, topic.partitions.len())?;
        for p in &topic.partitions {
            let from = first_offset(&topic.topic.0, p.partition_index).unwrap_or(i64::MIN);
            let (error_code, set) = match &p.records {
                Some(records) if !records.is_empty() => {
                    let limit = SetLimit {
                        max_bytes: records.len().min(left),
                        first_message_max_bytes: if carried { left } else { usize::MAX },
                    };
                    match from_v2_bytes(records, magic, from, MAX_DECOMPRESSED_BYTES, limit) {
                        Ok(set) => (p.error_code, set),
                        Err(_) => (CORRUPT_MESSAGE, Bytes::new()),
                    }
                }
                _ => (p.error_code, Bytes::new()),
            };
            left = left.saturating_sub(set.len());
            carried |= !set.is_empty();
            out.put_i32(p.partition_index);
            out.put_i16(error_code);
            out.put_i64(p.high_watermark);
            // Old clients expect a (possibly empty) message set, never null.
            wire::put_nullable_bytes(&mut out, Some(&set))?;
        }
    }
    Ok(out.freeze())
}

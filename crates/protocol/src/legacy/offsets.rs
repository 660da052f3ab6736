//! ListOffsets v0 → v1, OffsetCommit v0-1 → v2, OffsetFetch v0 → v1.
//!
//! ListOffsets v0 request: `replica_id i32 | [topic string | [partition i32 | timestamp i64
//! | max_num_offsets i32]]`; response: `[topic string | [partition i32 | error i16 |
//! [offset i64]]]`. v1 answers one offset per partition, so the v0 "old style" array holds
//! that one offset, or nothing when there is none (-1) or the partition failed.
//! `max_num_offsets` is dropped: one offset is what every client asks for (kafka-node sends
//! 1), and the segment-boundary offsets v0 could list do not exist in this log.
//!
//! OffsetCommit v0 request: `group string | [topic string | [partition i32 | offset i64 |
//! metadata nullable_string]]`; v1 adds `generation i32 | member string` after the group and
//! `timestamp i64` after each offset. v2 replaces the timestamp with a request-wide
//! retention, set to -1 (broker default): the per-offset commit timestamp only ever served
//! to compute expiry. v0 commits went to ZooKeeper in Kafka; here they go to the same store
//! (generation -1 and empty member id, which the coordinator accepts for simple consumers).
//! Response v0-1 (same as v2): `[topic string | [partition i32 | error i16]]`.
//!
//! OffsetFetch v0 is v1 on the wire (`group string | [topic string | [partition i32]]`,
//! response `[topic string | [partition i32 | offset i64 | metadata nullable_string |
//! error i16]]`); only Kafka's storage (ZooKeeper) differed.

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::list_offsets_request::{
    ListOffsetsPartition, ListOffsetsRequest, ListOffsetsTopic,
};
use kafka_protocol::messages::list_offsets_response::ListOffsetsResponse;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequest, OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_commit_response::OffsetCommitResponse;
use kafka_protocol::messages::offset_fetch_request::{OffsetFetchRequest, OffsetFetchRequestTopic};
use kafka_protocol::messages::offset_fetch_response::OffsetFetchResponse;
use kafka_protocol::messages::{GroupId, TopicName};
use kafka_protocol::protocol::StrBytes;

use super::LegacyError;
use super::wire;

/// OffsetCommit v2's "use the broker's retention".
const DEFAULT_RETENTION: i64 = -1;
/// No group generation: a simple (non-group-managed) consumer's commit.
const NO_GENERATION: i32 = -1;

pub(crate) fn decode_list_offsets(body: &mut Bytes) -> Result<ListOffsetsRequest, LegacyError> {
    let replica_id = wire::i32(body, "replica id")?;
    let topic_count = wire::array_len(body, 6, "topics")?;
    let mut topics = Vec::with_capacity(topic_count);
    for _ in 0..topic_count {
        let name = wire::string(body, "topic name")?;
        let partition_count = wire::array_len(body, 16, "partitions")?;
        let mut partitions = Vec::with_capacity(partition_count);
        for _ in 0..partition_count {
            let partition_index = wire::i32(body, "partition")?;
            let timestamp = wire::i64(body, "timestamp")?;
            let _max_num_offsets = wire::i32(body, "max number of offsets")?;
            partitions.push(
                ListOffsetsPartition::default()
                    .with_partition_index(partition_index)
                    .with_timestamp(timestamp),
            );
        }
        topics.push(
            ListOffsetsTopic::default()
                .with_name(TopicName(name))
                .with_partitions(partitions),
        );
    }
    Ok(ListOffsetsRequest::default()
        .with_replica_id(replica_id.into())
        .with_topics(topics))
}

pub(crate) fn encode_list_offsets_response(
    response: &ListOffsetsResponse,
) -> Result<Bytes, LegacyError> {
    let mut out = BytesMut::new();
    wire::put_array_len(&mut out, response.topics.len())?;
    for topic in &response.topics {
        wire::put_string(&mut out, &topic.name.0)?;
        wire::put_array_len(&mut out, topic.partitions.len())?;
        for p in &topic.partitions {
            out.put_i32(p.partition_index);
            out.put_i16(p.error_code);
            if p.error_code == 0 && p.offset >= 0 {
                out.put_i32(1);
                out.put_i64(p.offset);
            } else {
                out.put_i32(0);
            }
        }
    }
    Ok(out.freeze())
}

pub(crate) fn decode_offset_commit(
    version: i16,
    body: &mut Bytes,
) -> Result<OffsetCommitRequest, LegacyError> {
    let group_id = wire::string(body, "group id")?;
    let (generation, member_id) = if version >= 1 {
        (
            wire::i32(body, "generation id")?,
            wire::string(body, "member id")?,
        )
    } else {
        (NO_GENERATION, StrBytes::default())
    };
    let topic_count = wire::array_len(body, 6, "topics")?;
    let mut topics = Vec::with_capacity(topic_count);
    // partition + offset + metadata length (+ v1 timestamp)
    let min_partition = if version >= 1 { 22 } else { 14 };
    for _ in 0..topic_count {
        let name = wire::string(body, "topic name")?;
        let partition_count = wire::array_len(body, min_partition, "partitions")?;
        let mut partitions = Vec::with_capacity(partition_count);
        for _ in 0..partition_count {
            let partition_index = wire::i32(body, "partition")?;
            let committed_offset = wire::i64(body, "committed offset")?;
            if version >= 1 {
                let _commit_timestamp = wire::i64(body, "commit timestamp")?;
            }
            let metadata = wire::nullable_string(body, "commit metadata")?;
            partitions.push(
                OffsetCommitRequestPartition::default()
                    .with_partition_index(partition_index)
                    .with_committed_offset(committed_offset)
                    .with_committed_metadata(metadata),
            );
        }
        topics.push(
            OffsetCommitRequestTopic::default()
                .with_name(TopicName(name))
                .with_partitions(partitions),
        );
    }
    Ok(OffsetCommitRequest::default()
        .with_group_id(GroupId(group_id))
        .with_generation_id_or_member_epoch(generation)
        .with_member_id(member_id)
        .with_retention_time_ms(DEFAULT_RETENTION)
        .with_topics(topics))
}

pub(crate) fn encode_offset_commit_response(
    response: &OffsetCommitResponse,
) -> Result<Bytes, LegacyError> {
    let mut out = BytesMut::new();
    wire::put_array_len(&mut out, response.topics.len())?;
    for topic in &response.topics {
        wire::put_string(&mut out, &topic.name.0)?;
        wire::put_array_len(&mut out, topic.partitions.len())?;
        for p in &topic.partitions {
            out.put_i32(p.partition_index);
            out.put_i16(p.error_code);
        }
    }
    Ok(out.freeze())
}

pub(crate) fn decode_offset_fetch(body: &mut Bytes) -> Result<OffsetFetchRequest, LegacyError> {
    let group_id = wire::string(body, "group id")?;
    let topic_count = wire::array_len(body, 6, "topics")?;
    let mut topics = Vec::with_capacity(topic_count);
    for _ in 0..topic_count {
        let name = wire::string(body, "topic name")?;
        let partition_indexes = wire::i32_array(body, "partitions", "partition")?;
        topics.push(
            OffsetFetchRequestTopic::default()
                .with_name(TopicName(name))
                .with_partition_indexes(partition_indexes),
        );
    }
    Ok(OffsetFetchRequest::default()
        .with_group_id(GroupId(group_id))
        .with_topics(Some(topics)))
}

pub(crate) fn encode_offset_fetch_response(
    response: &OffsetFetchResponse,
) -> Result<Bytes, LegacyError> {
    let mut out = BytesMut::new();
    wire::put_array_len(&mut out, response.topics.len())?;
    for topic in &response.topics {
        wire::put_string(&mut out, &topic.name.0)?;
        wire::put_array_len(&mut out, topic.partitions.len())?;
        for p in &topic.partitions {
            out.put_i32(p.partition_index);
            out.put_i64(p.committed_offset);
            wire::put_nullable_string(&mut out, p.metadata.as_deref())?;
            out.put_i16(p.error_code);
        }
    }
    Ok(out.freeze())
}

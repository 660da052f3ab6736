//! Produce v0-2 → v3, and the v0-2 response layouts.
//!
//! Request v0-2 is v3 without `transactional_id`:
//! `acks i16 | timeout i32 | [topic string | [partition i32 | message_set bytes]]`.
//!
//! Response v0: `[topic string | [partition i32 | error i16 | base_offset i64]]`;
//! v1 appends `throttle_time_ms i32`; v2 also adds `log_append_time i64` per partition.

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::TopicName;
use kafka_protocol::messages::produce_request::{
    PartitionProduceData, ProduceRequest, TopicProduceData,
};
use kafka_protocol::messages::produce_response::ProduceResponse;

use super::LegacyError;
use super::message_set::{MAX_DECOMPRESSED_BYTES, to_v2_batches};
use super::wire;

pub(crate) fn decode_request(
    _version: i16,
    body: &mut Bytes,
) -> Result<ProduceRequest, LegacyError> {
    let acks = wire::i16(body, "acks")?;
    let timeout_ms = wire::i32(body, "timeout")?;
    // A topic needs a name length and a partition count; a partition an index and a length.
    let topic_count = wire::array_len(body, 6, "topics")?;
    let mut topics = Vec::with_capacity(topic_count);
    for _ in 0..topic_count {
        let name = wire::string(body, "topic name")?;
        let partition_count = wire::array_len(body, 8, "partitions")?;
        let mut partitions = Vec::with_capacity(partition_count);
        for _ in 0..partition_count {
            let index = wire::i32(body, "partition")?;
            let records = wire::nullable_bytes(body, "message set")?
                .map(|set| to_v2_batches(&set, MAX_DECOMPRESSED_BYTES).unwrap_or_default());
            partitions.push(
                PartitionProduceData::default()
                    .with_index(index)
                    .with_records(records),
            );
        }
        topics.push(
            TopicProduceData::default()
                .with_name(TopicName(name))
                .with_partition_data(partitions),
        );
    }
    Ok(ProduceRequest::default()
        .with_transactional_id(None)
        .with_acks(acks)
        .with_timeout_ms(timeout_ms)
        .with_topic_data(topics))
}

pub(crate) fn encode_response(
    version: i16,
    response: &ProduceResponse,
) -> Result<Bytes, LegacyError> {
    let mut out = BytesMut::new();
    wire::put_array_len(&mut out, response.responses.len())?;
    for topic in &response.responses {
        wire::put_string(&mut out, &topic.name.0)?;
        wire::put_array_len(&mut out, topic.partition_responses.len())?;
        for p in &topic.partition_responses {
            out.put_i32(p.index);
            out.put_i16(p.error_code);
            out.put_i64(p.base_offset);
            if version >= 2 {
                out.put_i64(p.log_append_time_ms);
            }
        }
    }
    if version >= 1 {
        out.put_i32(response.throttle_time_ms);
    }
    Ok(out.freeze())
}

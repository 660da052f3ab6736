//! A Fetch response encoder that does not copy record batches.
//!
//! Fetch responses are mostly stored record batches. kafka-protocol's encoder
//! copies them into one contiguous buffer; this one writes the small fields
//! into a buffer and hands the batches over as separate chunks, so the
//! connection can send them with vectored writes straight from the buffers the
//! log read filled. Responses that use fields this encoder does not write
//! (tagged fields a broker never sets today) fall back to kafka-protocol.

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::{ApiKey, FetchResponse, ResponseKind};

use crate::codec::{CodecError, encode_response};

/// Batches smaller than this are copied: a separate chunk costs more than the copy.
const COPY_BELOW: usize = 4096;

/// First Fetch version with flexible (compact, tagged) encoding.
const FLEXIBLE: i16 = 12;

/// Encodes a whole Fetch response frame (size prefix included) as chunks whose
/// concatenation is the frame.
pub fn encode_fetch_response(
    correlation_id: i32,
    version: i16,
    response: FetchResponse,
) -> Result<Vec<Bytes>, CodecError> {
    if !(4..=18).contains(&version) || !is_plain(&response) {
        let kind = ResponseKind::Fetch(response);
        return encode_response(correlation_id, ApiKey::Fetch, version, &kind).map(|b| vec![b]);
    }
    let flexible = version >= FLEXIBLE;
    let mut w = ChunkWriter::default();
    w.buf.put_i32(correlation_id);
    if flexible {
        w.buf.put_u8(0); // response header tagged fields
    }
    w.buf.put_i32(response.throttle_time_ms);
    if version >= 7 {
        w.buf.put_i16(response.error_code);
        w.buf.put_i32(response.session_id);
    }
    w.array_len(response.responses.len(), flexible);
    for topic in &response.responses {
        encode_topic(&mut w, topic, version, flexible);
    }
    if flexible {
        w.buf.put_u8(0); // no tagged fields (node_endpoints is empty)
    }
    Ok(w.finish())
}

/// Whether every field this encoder skips has its default value.
fn is_plain(response: &FetchResponse) -> bool {
    response.unknown_tagged_fields.is_empty()
        && response.node_endpoints.is_empty()
        && response.responses.iter().all(|t| {
            t.unknown_tagged_fields.is_empty()
                && t.partitions.iter().all(|p| {
                    p.unknown_tagged_fields.is_empty()
                        && p.diverging_epoch == Default::default()
                        && p.current_leader == Default::default()
                        && p.snapshot_id == Default::default()
                        && p.aborted_transactions
                            .iter()
                            .flatten()
                            .all(|a| a.unknown_tagged_fields.is_empty())
                })
        })
}

fn encode_topic(w: &mut ChunkWriter, topic: &FetchableTopicResponse, version: i16, flexible: bool) {
    if version >= 13 {
        w.buf.put_slice(topic.topic_id.as_bytes());
    } else {
        w.string(topic.topic.as_bytes(), flexible);
    }
    w.array_len(topic.partitions.len(), flexible);
    for p in &topic.partitions {
        encode_partition(w, p, version, flexible);
    }
    if flexible {
        w.buf.put_u8(0);
    }
}

fn encode_partition(w: &mut ChunkWriter, p: &PartitionData, version: i16, flexible: bool) {
    w.buf.put_i32(p.partition_index);
    w.buf.put_i16(p.error_code);
    w.buf.put_i64(p.high_watermark);
    w.buf.put_i64(p.last_stable_offset);
    if version >= 5 {
        w.buf.put_i64(p.log_start_offset);
    }
    match &p.aborted_transactions {
        None => w.null_array(flexible),
        Some(aborted) => {
            w.array_len(aborted.len(), flexible);
            for a in aborted {
                w.buf.put_i64(a.producer_id.0);
                w.buf.put_i64(a.first_offset);
                if flexible {
                    w.buf.put_u8(0);
                }
            }
        }
    }
    if version >= 11 {
        w.buf.put_i32(p.preferred_read_replica.0);
    }
    w.records(p.records.as_ref(), flexible);
    if flexible {
        w.buf.put_u8(0);
    }
}

/// Collects encoded pieces; large record sets become chunks of their own.
#[derive(Default)]
struct ChunkWriter {
    chunks: Vec<Bytes>,
    buf: BytesMut,
}

impl ChunkWriter {
    fn uvarint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.buf.put_u8((v as u8 & 0x7f) | 0x80);
            v >>= 7;
        }
        self.buf.put_u8(v as u8);
    }

    fn array_len(&mut self, len: usize, flexible: bool) {
        if flexible {
            self.uvarint(len as u64 + 1);
        } else {
            self.buf.put_i32(i32::try_from(len).unwrap_or(i32::MAX));
        }
    }

    fn null_array(&mut self, flexible: bool) {
        if flexible {
            self.buf.put_u8(0);
        } else {
            self.buf.put_i32(-1);
        }
    }

    fn string(&mut self, s: &[u8], flexible: bool) {
        if flexible {
            self.uvarint(s.len() as u64 + 1);
        } else {
            self.buf.put_i16(i16::try_from(s.len()).unwrap_or(i16::MAX));
        }
        self.buf.put_slice(s);
    }

    fn records(&mut self, records: Option<&Bytes>, flexible: bool) {
        let Some(records) = records else {
            self.null_array(flexible);
            return;
        };
        if flexible {
            self.uvarint(records.len() as u64 + 1);
        } else {
            self.buf
                .put_i32(i32::try_from(records.len()).unwrap_or(i32::MAX));
        }
        if records.len() < COPY_BELOW {
            self.buf.put_slice(records);
        } else {
            let head = self.buf.split().freeze();
            self.chunks.push(head);
            self.chunks.push(records.clone());
        }
    }

    /// The chunks, with the frame's size prefix in front.
    fn finish(mut self) -> Vec<Bytes> {
        let tail = self.buf.split().freeze();
        if !tail.is_empty() {
            self.chunks.push(tail);
        }
        let size: usize = self.chunks.iter().map(Bytes::len).sum();
        let mut out = Vec::with_capacity(self.chunks.len() + 1);
        out.push(Bytes::copy_from_slice(&crate::frame::frame_size_prefix(
            size,
        )));
        out.extend(self.chunks);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::fetch_response::AbortedTransaction;
    use kafka_protocol::messages::{BrokerId, ProducerId, TopicName};
    use kafka_protocol::protocol::StrBytes;
    use proptest::prelude::*;

    fn response(version: i16, records: Vec<Option<Vec<u8>>>, aborted: bool) -> FetchResponse {
        let partitions = records
            .into_iter()
            .enumerate()
            .map(|(i, r)| {
                PartitionData::default()
                    .with_partition_index(i as i32)
                    .with_error_code((i % 3) as i16)
                    .with_high_watermark(1000 + i as i64)
                    .with_last_stable_offset(900 + i as i64)
                    .with_log_start_offset(if version >= 5 { 7 } else { -1 })
                    .with_aborted_transactions(aborted.then(|| {
                        vec![
                            AbortedTransaction::default()
                                .with_producer_id(ProducerId(5))
                                .with_first_offset(42),
                        ]
                    }))
                    .with_preferred_read_replica(BrokerId(-1))
                    .with_records(r.map(Bytes::from))
            })
            .collect();
        let topic = if version >= 13 {
            FetchableTopicResponse::default().with_topic_id(uuid::Uuid::from_u128(0x1234_5678))
        } else {
            FetchableTopicResponse::default()
                .with_topic(TopicName(StrBytes::from_static_str("orders")))
        };
        FetchResponse::default()
            .with_throttle_time_ms(3)
            .with_responses(vec![
                topic.with_partitions(partitions),
                FetchableTopicResponse::default(),
            ])
    }

    fn concat(chunks: &[Bytes]) -> Vec<u8> {
        chunks.iter().flat_map(|c| c.iter().copied()).collect()
    }

    proptest! {
        #[test]
        fn matches_kafka_protocol_encoding(
            version in 4i16..=18,
            records in proptest::collection::vec(proptest::option::of(proptest::collection::vec(any::<u8>(), 0..10_000)), 0..4),
            aborted in any::<bool>(),
        ) {
            let r = response(version, records, aborted);
            let expected = encode_response(9, ApiKey::Fetch, version, &ResponseKind::Fetch(r.clone())).unwrap();
            let chunks = encode_fetch_response(9, version, r).unwrap();
            prop_assert_eq!(concat(&chunks), expected.to_vec());
        }
    }

    #[test]
    fn large_batches_are_not_copied() {
        let big = vec![7u8; 100_000];
        let r = response(11, vec![Some(big)], false);
        let chunks = encode_fetch_response(1, 11, r).unwrap();
        assert!(chunks.iter().any(|c| c.len() == 100_000));
    }
}

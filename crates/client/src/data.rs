//! Produce, Fetch and ListOffsets, routed to partition leaders.

use bytes::Bytes;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    BrokerId, FetchRequest, ListOffsetsRequest, ProduceRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use sluice_protocol::batch::split_batches;
use sluice_protocol::records::{Record, decode_records};

use crate::Client;
use crate::error::{Error, KafkaCode, Result};

use sluice_protocol::records::MAX_DECOMPRESSED_BYTES;

/// The result of producing one batch to one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducedPartition {
    pub partition: i32,
    /// Offset of the first record; -1 with acks=0.
    pub base_offset: i64,
    /// LogAppendTime when the topic uses it, else -1.
    pub log_append_time: i64,
}

/// What a fetch returned for one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchedPartition {
    pub partition: i32,
    pub high_watermark: i64,
    pub log_start_offset: i64,
    /// Data records at or after the fetch offset (control records are skipped).
    pub records: Vec<Record>,
    /// Where the next fetch should start.
    pub next_offset: i64,
}

fn topic_name(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_string()))
}

/// Whether a partition error means "refresh metadata and try again".
fn is_leader_error(code: KafkaCode) -> bool {
    matches!(code.0, 3 | 5 | 6 | 74 | 75)
}

impl Client {
    /// ListOffsets: for each `(partition, timestamp)` (-2 earliest, -1 latest, else the
    /// first offset with a timestamp at or after it) returns `(partition, offset,
    /// timestamp)`; the offset is -1 when no record is that late.
    pub async fn list_offsets(
        &mut self,
        topic: &str,
        queries: &[(i32, i64)],
    ) -> Result<Vec<(i32, i64, i64)>> {
        let mut out = Vec::with_capacity(queries.len());
        for (leader, parts) in self.by_leader(topic, queries).await? {
            let conn = self.node(leader).await?;
            let version = conn.version::<ListOffsetsRequest>()?;
            let request = ListOffsetsRequest::default()
                .with_replica_id(BrokerId(-1))
                .with_isolation_level(0)
                .with_topics(vec![
                    ListOffsetsTopic::default()
                        .with_name(topic_name(topic))
                        .with_partitions(
                            parts
                                .iter()
                                .map(|(p, ts)| {
                                    ListOffsetsPartition::default()
                                        .with_partition_index(*p)
                                        .with_current_leader_epoch(-1)
                                        .with_timestamp(*ts)
                                })
                                .collect(),
                        ),
                ]);
            let response = conn.request_at(version, &request).await?;
            for t in &response.topics {
                for p in &t.partitions {
                    if let Some(code) = KafkaCode::from_code(p.error_code) {
                        if is_leader_error(code) {
                            self.forget_leaders(topic);
                        }
                        return Err(Error::Kafka {
                            api: "ListOffsets",
                            resource: format!("{topic}-{}", p.partition_index),
                            code,
                            message: None,
                        });
                    }
                    out.push((p.partition_index, p.offset, p.timestamp));
                }
            }
        }
        out.sort_by_key(|(p, _, _)| *p);
        Ok(out)
    }

    /// Produce: one encoded v2 batch per partition. `acks` is 0, 1 or -1 (all).
    pub async fn produce(
        &mut self,
        topic: &str,
        batches: &[(i32, Bytes)],
        acks: i16,
        timeout_ms: i32,
    ) -> Result<Vec<ProducedPartition>> {
        let mut out = Vec::with_capacity(batches.len());
        for (leader, parts) in self.by_leader(topic, batches).await? {
            let conn = self.node(leader).await?;
            let version = conn.version::<ProduceRequest>()?;
            let request = ProduceRequest::default()
                .with_acks(acks)
                .with_timeout_ms(timeout_ms)
                .with_topic_data(vec![
                    TopicProduceData::default()
                        .with_name(topic_name(topic))
                        .with_partition_data(
                            parts
                                .iter()
                                .map(|(p, batch)| {
                                    PartitionProduceData::default()
                                        .with_index(*p)
                                        .with_records(Some(batch.clone()))
                                })
                                .collect(),
                        ),
                ]);
            if acks == 0 {
                conn.send_only(version, &request).await?;
                out.extend(parts.iter().map(|(p, _)| ProducedPartition {
                    partition: *p,
                    base_offset: -1,
                    log_append_time: -1,
                }));
                continue;
            }
            let response = conn.request_at(version, &request).await?;
            for t in &response.responses {
                for p in &t.partition_responses {
                    if let Some(code) = KafkaCode::from_code(p.error_code) {
                        if is_leader_error(code) {
                            self.forget_leaders(topic);
                        }
                        return Err(Error::Kafka {
                            api: "Produce",
                            resource: format!("{topic}-{}", p.index),
                            code,
                            message: p.error_message.as_ref().map(|m| m.to_string()),
                        });
                    }
                    out.push(ProducedPartition {
                        partition: p.index,
                        base_offset: p.base_offset,
                        log_append_time: p.log_append_time_ms,
                    });
                }
            }
        }
        Ok(out)
    }

    /// Fetch from each `(partition, offset)` (read_uncommitted), waiting up to
    /// `max_wait_ms` for data.
    pub async fn fetch(
        &mut self,
        topic: &str,
        positions: &[(i32, i64)],
        max_wait_ms: i32,
        partition_max_bytes: i32,
    ) -> Result<Vec<FetchedPartition>> {
        let mut out = Vec::with_capacity(positions.len());
        for (leader, parts) in self.by_leader(topic, positions).await? {
            let conn = self.node(leader).await?;
            let version = conn.version::<FetchRequest>()?;
            let request = FetchRequest::default()
                .with_replica_id(BrokerId(-1))
                .with_max_wait_ms(max_wait_ms)
                .with_min_bytes(1)
                .with_max_bytes(partition_max_bytes.saturating_mul(4))
                .with_isolation_level(0)
                .with_session_id(0)
                .with_session_epoch(-1)
                .with_topics(vec![
                    FetchTopic::default()
                        .with_topic(topic_name(topic))
                        .with_partitions(
                            parts
                                .iter()
                                .map(|(p, offset)| {
                                    FetchPartition::default()
                                        .with_partition(*p)
                                        .with_current_leader_epoch(-1)
                                        .with_fetch_offset(*offset)
                                        .with_last_fetched_epoch(-1)
                                        .with_log_start_offset(-1)
                                        .with_partition_max_bytes(partition_max_bytes)
                                })
                                .collect(),
                        ),
                ]);
            let response = conn.request_at(version, &request).await?;
            let addr = conn.addr().to_string();
            crate::error::check("Fetch", || topic.to_string(), response.error_code, None)?;
            for t in &response.responses {
                for p in &t.partitions {
                    if let Some(code) = KafkaCode::from_code(p.error_code) {
                        if is_leader_error(code) {
                            self.forget_leaders(topic);
                        }
                        return Err(Error::Kafka {
                            api: "Fetch",
                            resource: format!("{topic}-{}", p.partition_index),
                            code,
                            message: None,
                        });
                    }
                    let fetch_offset = parts
                        .iter()
                        .find(|(q, _)| *q == p.partition_index)
                        .map(|(_, o)| *o)
                        .unwrap_or(0);
                    let (records, next_offset) = decode_fetched(p.records.as_ref(), fetch_offset)
                        .map_err(|reason| Error::Protocol {
                        addr: addr.clone(),
                        reason: format!("records of {topic}-{}: {reason}", p.partition_index),
                    })?;
                    out.push(FetchedPartition {
                        partition: p.partition_index,
                        high_watermark: p.high_watermark,
                        log_start_offset: p.log_start_offset,
                        records,
                        next_offset,
                    });
                }
            }
        }
        Ok(out)
    }
}

/// Decodes the batches of one partition's fetch response; returns the data records at or
/// after `fetch_offset` and the offset to fetch next. A truncated last batch (the fetch
/// limit cut it) is ignored, as Kafka clients do.
fn decode_fetched(
    records: Option<&Bytes>,
    fetch_offset: i64,
) -> Result<(Vec<Record>, i64), String> {
    let mut out = Vec::new();
    let mut next = fetch_offset;
    let Some(buf) = records else {
        return Ok((out, next));
    };
    for item in split_batches(buf) {
        let Ok((header, range)) = item else {
            // A partial batch at the end of the response.
            break;
        };
        next = next.max(header.last_offset().saturating_add(1));
        if header.is_control() {
            continue;
        }
        let batch = buf.slice(range);
        let iter = decode_records(&batch, MAX_DECOMPRESSED_BYTES).map_err(|e| e.to_string())?;
        for record in iter {
            let record = record.map_err(|e| e.to_string())?;
            if record.offset >= fetch_offset {
                out.push(record);
            }
        }
    }
    Ok((out, next))
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_protocol::batch::RecordBatchBuilder;

    #[test]
    fn decodes_and_skips_records_before_the_fetch_offset() {
        let a = RecordBatchBuilder::new()
            .base_offset(10)
            .record(1, Some(b"k1"), Some(b"v1"), &[])
            .record(2, Some(b"k2"), Some(b"v2"), &[("h", Some(b"x"))])
            .build();
        let b = RecordBatchBuilder::new()
            .base_offset(12)
            .record(3, None, Some(b"v3"), &[])
            .build();
        let mut buf = a.clone();
        buf.extend_from_slice(&b);
        // A truncated third batch is ignored.
        buf.extend_from_slice(b.get(..20).unwrap_or_default());
        let (records, next) = decode_fetched(Some(&Bytes::from(buf)), 11).unwrap_or_default();
        assert_eq!(next, 13);
        let offsets: Vec<i64> = records.iter().map(|r| r.offset).collect();
        assert_eq!(offsets, vec![11, 12]);
        assert_eq!(records.first().map(|r| r.headers.len()), Some(1));
    }

    #[test]
    fn garbage_is_an_error_or_nothing_never_a_panic() {
        for bytes in [&b""[..], b"\x00\x00", &[0xff; 80]] {
            let _ = decode_fetched(Some(&Bytes::copy_from_slice(bytes)), 0);
        }
    }
}

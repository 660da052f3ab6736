//! Records: where to start reading, reading decoded records with byte limits, producing
//! one record, and waiting for new ones.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use sluice_protocol::batch::{RecordBatchBuilder, TimestampType, split_batches};
use sluice_protocol::kafka_protocol;
use sluice_protocol::records::{MAX_DECOMPRESSED_BYTES, decode_records};

use super::Admin;
use crate::errors::storage_error_code;
use crate::partition::{Partition, PartitionOffsets, ReadBound};
use crate::topic_admin::AdminError;

/// Where a read starts in a partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartAt {
    /// The log start offset.
    Oldest,
    /// `n` records before the high watermark.
    Newest(u64),
    /// This offset (clamped to the log).
    Offset(i64),
    /// The first record with a timestamp at or after this one (ms); the high watermark
    /// when there is none.
    Timestamp(i64),
}

/// One decoded record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordView {
    /// Its partition.
    pub partition: i32,
    /// Its offset.
    pub offset: i64,
    /// Its timestamp (ms).
    pub timestamp: i64,
    /// Whether the broker stamped the timestamp (LogAppendTime) rather than the producer.
    pub log_append_time: bool,
    /// Its key.
    pub key: Option<Bytes>,
    /// Its value.
    pub value: Option<Bytes>,
    /// Its headers, in order.
    pub headers: Vec<(String, Option<Bytes>)>,
}

impl RecordView {
    /// Bytes of key, value and headers.
    pub fn size(&self) -> usize {
        let len = |b: &Option<Bytes>| b.as_ref().map_or(0, Bytes::len);
        len(&self.key)
            + len(&self.value)
            + self
                .headers
                .iter()
                .map(|(k, v)| k.len() + len(v))
                .sum::<usize>()
    }
}

/// What one read returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordsRead {
    /// Records from the asked offset on, in offset order.
    pub records: Vec<RecordView>,
    /// Where the next read continues.
    pub next_offset: i64,
    /// Bytes of batches read from the log.
    pub bytes_read: u64,
    /// The partition's offsets at the time of the read.
    pub offsets: PartitionOffsets,
}

/// A record to produce.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ProduceRecord {
    /// Its partition.
    pub partition: i32,
    /// Its key.
    pub key: Option<Bytes>,
    /// Its value.
    pub value: Option<Bytes>,
    /// Its headers.
    pub headers: Vec<(String, Option<Bytes>)>,
}

/// Where a produced record landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Produced {
    /// Its partition.
    pub partition: i32,
    /// Its offset.
    pub offset: i64,
    /// Its timestamp.
    pub timestamp: i64,
}

/// Waits for new records in a set of partitions (see [`Admin::watch`]).
pub struct AppendWatch {
    partitions: Vec<Arc<Partition>>,
}

impl AppendWatch {
    /// Runs `read`; when it finds nothing, waits until the readable end of a watched
    /// partition may have moved (or `timeout` passes) and returns `None`. No append
    /// between the start of `read` and the wait is missed.
    pub async fn read_or_wait<T>(
        &self,
        timeout: Duration,
        read: impl FnOnce() -> Option<T>,
    ) -> Option<T> {
        let mut waits: Vec<Pin<Box<tokio::sync::futures::Notified<'_>>>> = self
            .partitions
            .iter()
            .map(|p| Box::pin(p.readable_changed()))
            .collect();
        for wait in &mut waits {
            wait.as_mut().enable();
        }
        if let Some(found) = read() {
            return Some(found);
        }
        let any = std::future::poll_fn(|cx| {
            for wait in &mut waits {
                if wait.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(());
                }
            }
            Poll::Pending
        });
        let _ = tokio::time::timeout(timeout, any).await;
        None
    }
}

impl Admin {
    /// The partition count of `topic`.
    pub fn partition_count(&self, topic: &str) -> Result<i32, AdminError> {
        self.broker
            .metadata
            .image()
            .topic(topic)
            .map(|t| t.partition_count())
            .ok_or_else(|| unknown_partition(topic, 0))
    }

    /// The partitions of `topic` this node has a replica of (in a cluster, often not all of
    /// them): what records can be read from here.
    pub fn local_partitions(&self, topic: &str) -> Vec<i32> {
        let image = self.broker.metadata.image();
        let Some(topic) = image.topic(topic) else {
            return Vec::new();
        };
        self.broker
            .replicas
            .logs()
            .topic_partitions(topic.id)
            .iter()
            .map(|p| p.index)
            .collect()
    }

    /// This node's replica of `topic`'s partition `index`; when it has none but the
    /// partition exists, the error names the nodes that do.
    fn local_partition(&self, topic: &str, index: i32) -> Result<Arc<Partition>, AdminError> {
        let image = self.broker.metadata.image();
        let topic_image = image
            .topic(topic)
            .ok_or_else(|| unknown_partition(topic, index))?;
        if let Some(partition) = self.broker.replicas.logs().get(topic_image.id, index) {
            return Ok(partition);
        }
        match topic_image.partition(index) {
            Some(registration) => Err(elsewhere(
                self.broker.node_id(),
                topic,
                index,
                &registration.replicas,
                registration.leader,
            )),
            None => Err(unknown_partition(topic, index)),
        }
    }

    /// The offsets of a partition now.
    pub fn partition_offsets(
        &self,
        topic: &str,
        index: i32,
    ) -> Result<PartitionOffsets, AdminError> {
        Ok(self.local_partition(topic, index)?.offsets())
    }

    /// The offset a read at `at` starts from, within the readable log.
    pub fn start_offset(&self, topic: &str, index: i32, at: StartAt) -> Result<i64, AdminError> {
        let partition = self.local_partition(topic, index)?;
        let offsets = partition.offsets();
        let (start, end) = (offsets.log_start_offset, offsets.high_watermark);
        let offset = match at {
            StartAt::Oldest => start,
            StartAt::Newest(n) => end.saturating_sub(i64::try_from(n).unwrap_or(i64::MAX)),
            StartAt::Offset(o) => o,
            StartAt::Timestamp(ts) => partition
                .offset_for_timestamp(ts)
                .map_err(|e| AdminError::new(storage_error_code(&e), e.to_string()))?
                .map_or(end, |(offset, _)| offset),
        };
        Ok(offset.clamp(start, end.max(start)))
    }

    /// Decoded records of a partition from `from` up to its high watermark: at most
    /// `max_records`, from batches of at most `max_bytes` in all (a larger first batch is
    /// read whole, as Fetch does). Control records (transaction markers) are skipped.
    pub fn read_records(
        &self,
        topic: &str,
        index: i32,
        from: i64,
        max_records: usize,
        max_bytes: usize,
    ) -> Result<RecordsRead, AdminError> {
        let partition = self.local_partition(topic, index)?;
        let read = match partition.read(from, max_bytes, ReadBound::HighWatermark) {
            Ok(read) => read,
            Err(e) => return Err(AdminError::new(storage_error_code(&e), e.to_string())),
        };
        let mut records = Vec::new();
        let mut next_offset = from;
        for item in split_batches(&read.records) {
            let Ok((header, range)) = item else { break };
            if records.len() >= max_records {
                break;
            }
            next_offset = next_offset.max(header.last_offset() + 1);
            if header.is_control() {
                continue;
            }
            let batch = read.records.slice(range);
            let decoded = decode_records(&batch, MAX_DECOMPRESSED_BYTES)
                .map_err(|e| AdminError::new(ResponseError::CorruptMessage, e.to_string()))?;
            let log_append_time = header.timestamp_type() == TimestampType::LogAppendTime;
            for record in decoded {
                let record = record
                    .map_err(|e| AdminError::new(ResponseError::CorruptMessage, e.to_string()))?;
                if record.offset < from {
                    continue;
                }
                if records.len() >= max_records {
                    next_offset = record.offset;
                    break;
                }
                records.push(RecordView {
                    partition: index,
                    offset: record.offset,
                    timestamp: if log_append_time {
                        header.max_timestamp
                    } else {
                        record.timestamp
                    },
                    log_append_time,
                    key: record.key,
                    value: record.value,
                    headers: record.headers,
                });
            }
        }
        Ok(RecordsRead {
            records,
            next_offset,
            bytes_read: read.records.len() as u64,
            offsets: read.offsets,
        })
    }

    /// The timestamp of the first record at or after `offset` below the high watermark.
    pub fn timestamp_at(&self, topic: &str, index: i32, offset: i64) -> Option<i64> {
        self.read_records(topic, index, offset, 1, 1)
            .ok()?
            .records
            .first()
            .map(|r| r.timestamp)
    }

    /// Produces one record with the checks a client's acks=all produce gets, stamped
    /// with the broker's clock; answers once it is committed.
    pub async fn produce(
        &self,
        topic: &str,
        record: ProduceRecord,
    ) -> Result<Produced, AdminError> {
        let image = self.broker.metadata.image();
        let topic_image = image
            .topic(topic)
            .ok_or_else(|| unknown_partition(topic, record.partition))?;
        let timestamp = self.now_ms();
        let headers: Vec<(&str, Option<&[u8]>)> = record
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_deref()))
            .collect();
        let batch = RecordBatchBuilder::new()
            .record(
                timestamp,
                record.key.as_deref(),
                record.value.as_deref(),
                &headers,
            )
            .build();
        let appended = crate::handlers::produce::append_as_client(
            &self.broker,
            topic_image,
            record.partition,
            Bytes::from(batch),
        )
        .map_err(|(code, message)| {
            AdminError::new(code, message.unwrap_or_else(|| format!("{code:?}")))
        })?;
        appended
            .acknowledged(Some(Duration::from_secs(30)))
            .await
            .map_err(|e| AdminError::new(e.code, e.to_string()))?;
        let info = appended.info();
        Ok(Produced {
            partition: record.partition,
            offset: info.base_offset,
            timestamp: info.log_append_time.unwrap_or(timestamp),
        })
    }

    /// A watch over the given partitions of `topic` this node has.
    pub fn watch(&self, topic: &str, partitions: &[i32]) -> Result<AppendWatch, AdminError> {
        let partitions = partitions
            .iter()
            .map(|&p| self.local_partition(topic, p))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(AppendWatch { partitions })
    }
}

/// A partition that exists but has no replica on `node`.
fn elsewhere(node: i32, topic: &str, index: i32, replicas: &[i32], leader: i32) -> AdminError {
    let nodes = replicas
        .iter()
        .map(i32::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    let leader = if leader < 0 {
        "none".to_string()
    } else {
        leader.to_string()
    };
    AdminError::new(
        ResponseError::NotLeaderOrFollower,
        format!(
            "Node {node} has no replica of partition {index} of topic '{topic}' (its replicas: \
             {nodes}; leader: {leader}): read it from one of those nodes."
        ),
    )
}

fn unknown_partition(topic: &str, index: i32) -> AdminError {
    AdminError::new(
        ResponseError::UnknownTopicOrPartition,
        format!("This server does not host partition {index} of topic '{topic}'."),
    )
}

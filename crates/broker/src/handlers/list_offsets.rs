//! ListOffsets: earliest, latest, max timestamp, and lookup by timestamp.

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse, ResponseKind};
use sluice_protocol::kafka_protocol;
use sluice_protocol::model::LeaderEpoch;

use crate::broker::Broker;
use crate::errors::storage_error_code;
use crate::request::{Reply, RequestContext};

/// Kafka's special timestamps.
const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
const MAX_TIMESTAMP: i64 = -3;
const EARLIEST_LOCAL: i64 = -4;
const LATEST_TIERED: i64 = -5;

/// Whether Kafka answers UNSUPPORTED_VERSION for this timestamp at this request version:
/// a negative timestamp other than the special ones, or a special one older than the
/// version that introduced it (MAX_TIMESTAMP v7, EARLIEST_LOCAL v8, LATEST_TIERED v9).
fn timestamp_unsupported(timestamp: i64, version: i16) -> bool {
    let since = match timestamp {
        0.. => return false,
        LATEST | EARLIEST => 0,
        MAX_TIMESTAMP => 7,
        EARLIEST_LOCAL => 8,
        LATEST_TIERED => 9,
        _ => return true,
    };
    version < since
}

/// The handler-table entry for ListOffsets.
pub async fn list_offsets(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    req: ListOffsetsRequest,
) -> Reply {
    Reply::Now(ResponseKind::ListOffsets(handle(
        broker,
        req,
        ctx.api_version(),
    )))
}

/// Handles a ListOffsets request.
pub fn handle(broker: &Arc<Broker>, req: ListOffsetsRequest, version: i16) -> ListOffsetsResponse {
    let read_committed = req.isolation_level == 1;
    // A follower asking for its leader's offsets sees the log end (Kafka: no isolation).
    let from_replica = req.replica_id.0 >= 0;
    let image = broker.metadata.image();
    let topics = req
        .topics
        .into_iter()
        .map(|topic| {
            let partitions = topic
                .partitions
                .iter()
                .map(|p| {
                    let base = ListOffsetsPartitionResponse::default()
                        .with_partition_index(p.partition_index);
                    // Checked first, as Kafka does: before the partition is even looked up.
                    if timestamp_unsupported(p.timestamp, version) {
                        return base.with_error_code(ResponseError::UnsupportedVersion.code());
                    }
                    let Some(t) = image.topic(&topic.name) else {
                        return base.with_error_code(ResponseError::UnknownTopicOrPartition.code());
                    };
                    let epoch = LeaderEpoch(p.current_leader_epoch);
                    let partition =
                        match broker
                            .replicas
                            .leader_partition(t, p.partition_index, epoch)
                        {
                            Ok(partition) => partition,
                            Err(e) => return base.with_error_code(e.code.code()),
                        };
                    // leader_epoch exists from v4; setting it earlier would not encode.
                    let epoch = if version >= 4 {
                        partition.leader_epoch().0
                    } else {
                        -1
                    };
                    let offsets = partition.offsets();
                    // A new leader answers consumers only once its high watermark reached
                    // the start of its epoch: before, it may not know what is committed
                    // (Kafka's `fetchOffsetForTimestamp`).
                    if !from_replica
                        && partition
                            .leader_epoch_start_offset()
                            .is_some_and(|start| start > offsets.high_watermark)
                    {
                        return base.with_error_code(ResponseError::OffsetNotAvailable.code());
                    }
                    let found = match p.timestamp {
                        LATEST if from_replica => Ok(Some((-1, offsets.log_end_offset))),
                        LATEST if read_committed => Ok(Some((-1, offsets.last_stable_offset))),
                        LATEST => Ok(Some((-1, offsets.high_watermark))),
                        EARLIEST | EARLIEST_LOCAL => Ok(Some((-1, offsets.log_start_offset))),
                        LATEST_TIERED => Ok(Some((-1, -1))),
                        MAX_TIMESTAMP => Ok(partition.max_timestamp()),
                        ts => partition
                            .offset_for_timestamp(ts)
                            .map(|f| f.map(|(offset, t)| (t, offset))),
                    };
                    match found {
                        Ok(Some((timestamp, offset))) => base
                            .with_timestamp(timestamp)
                            .with_offset(offset)
                            .with_leader_epoch(epoch),
                        Ok(None) => base.with_timestamp(-1).with_offset(-1),
                        Err(e) => base.with_error_code(storage_error_code(&e).code()),
                    }
                })
                .collect();
            ListOffsetsTopicResponse::default()
                .with_name(topic.name)
                .with_partitions(partitions)
        })
        .collect();
    ListOffsetsResponse::default().with_topics(topics)
}

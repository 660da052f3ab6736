//! DeleteRecords: advance a partition's log start offset.

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::{DeleteRecordsRequest, DeleteRecordsResponse, ResponseKind};
use sluice_protocol::kafka_protocol;
use sluice_protocol::model::LeaderEpoch;

use crate::broker::Broker;
use crate::errors::storage_error_code;
use crate::request::{Reply, RequestContext};

/// The handler-table entry for DeleteRecords.
pub async fn delete_records(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    req: DeleteRecordsRequest,
) -> Reply {
    Reply::Now(ResponseKind::DeleteRecords(handle(
        broker,
        req,
        ctx.api_version(),
    )))
}

/// Handles a DeleteRecords request.
pub fn handle(
    broker: &Arc<Broker>,
    req: DeleteRecordsRequest,
    _version: i16,
) -> DeleteRecordsResponse {
    let image = broker.metadata.image();
    let topics = req
        .topics
        .into_iter()
        .map(|topic| {
            let partitions = topic
                .partitions
                .iter()
                .map(|p| {
                    let base = DeleteRecordsPartitionResult::default()
                        .with_partition_index(p.partition_index);
                    let found = image
                        .topic(&topic.name)
                        .ok_or(ResponseError::UnknownTopicOrPartition)
                        .and_then(|t| {
                            broker
                                .replicas
                                .leader_partition(t, p.partition_index, LeaderEpoch::UNKNOWN)
                                .map_err(|e| e.code)
                        });
                    let partition = match found {
                        Ok(partition) => partition,
                        Err(code) => {
                            return base.with_low_watermark(-1).with_error_code(code.code());
                        }
                    };
                    let offsets = partition.offsets();
                    // -1 means "up to the high watermark".
                    let target = if p.offset == -1 {
                        offsets.high_watermark
                    } else {
                        p.offset
                    };
                    if target < 0 || target > offsets.high_watermark {
                        return base
                            .with_low_watermark(-1)
                            .with_error_code(ResponseError::OffsetOutOfRange.code());
                    }
                    if target <= offsets.log_start_offset {
                        return base.with_low_watermark(offsets.log_start_offset);
                    }
                    match partition.delete_records_before(target) {
                        Ok(low) => base.with_low_watermark(low),
                        Err(e) => base
                            .with_low_watermark(-1)
                            .with_error_code(storage_error_code(&e).code()),
                    }
                })
                .collect();
            DeleteRecordsTopicResult::default()
                .with_name(topic.name)
                .with_partitions(partitions)
        })
        .collect();
    DeleteRecordsResponse::default().with_topics(topics)
}

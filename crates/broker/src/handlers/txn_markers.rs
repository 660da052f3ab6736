//! WriteTxnMarkers: a transaction coordinator on another node asks this node to write the
//! COMMIT or ABORT markers of a transaction into the partitions it leads (Kafka's
//! `KafkaApis.handleWriteTxnMarkersRequest`). Only nodes of the cluster may ask, on the
//! node-to-node listener (Kafka requires CLUSTER_ACTION).

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::write_txn_markers_response::{
    WritableTxnMarkerPartitionResult, WritableTxnMarkerResult, WritableTxnMarkerTopicResult,
};
use kafka_protocol::messages::{ResponseKind, WriteTxnMarkersRequest, WriteTxnMarkersResponse};
use sluice_protocol::kafka_protocol;
use sluice_protocol::model::{LeaderEpoch, ProducerIdAndEpoch, TopicPartition};

use crate::broker::Broker;
use crate::request::{Reply, RequestContext};
use crate::txn_wiring::write_local_markers;

/// Handles WriteTxnMarkers: each marker is written durably before the answer.
pub async fn write_txn_markers(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    req: WriteTxnMarkersRequest,
) -> Reply {
    let allowed = ctx.listener.is_cluster();
    let broker = broker.clone();
    Reply::Later(tokio::spawn(async move {
        let mut markers = Vec::with_capacity(req.markers.len());
        for marker in req.markers {
            let partitions: Vec<TopicPartition> = marker
                .topics
                .iter()
                .flat_map(|t| {
                    t.partition_indexes
                        .iter()
                        .map(move |&p| TopicPartition::new(t.name.as_str(), p))
                })
                .collect();
            let outcomes = if allowed {
                write_local_markers(
                    &broker,
                    ProducerIdAndEpoch::new(marker.producer_id.0, marker.producer_epoch),
                    LeaderEpoch(marker.coordinator_epoch),
                    marker.transaction_result,
                    partitions,
                )
                .await
            } else {
                partitions
                    .into_iter()
                    .map(|tp| (tp, Err(ResponseError::ClusterAuthorizationFailed)))
                    .collect()
            };
            let mut topics: Vec<WritableTxnMarkerTopicResult> = Vec::new();
            for (tp, outcome) in outcomes {
                let result = WritableTxnMarkerPartitionResult::default()
                    .with_partition_index(tp.partition)
                    .with_error_code(outcome.err().map_or(0, |e| e.code()));
                match topics.iter_mut().find(|t| t.name.as_str() == tp.topic) {
                    Some(topic) => topic.partitions.push(result),
                    None => topics.push(
                        WritableTxnMarkerTopicResult::default()
                            .with_name(kafka_protocol::messages::TopicName(
                                kafka_protocol::protocol::StrBytes::from_string(tp.topic),
                            ))
                            .with_partitions(vec![result]),
                    ),
                }
            }
            markers.push(
                WritableTxnMarkerResult::default()
                    .with_producer_id(marker.producer_id)
                    .with_topics(topics),
            );
        }
        ResponseKind::WriteTxnMarkers(WriteTxnMarkersResponse::default().with_markers(markers))
    }))
}

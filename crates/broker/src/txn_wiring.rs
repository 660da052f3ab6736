//! The transaction coordinator's links to the rest of the broker besides its
//! log (see `coordinator_log`): the transaction markers it writes into data
//! partitions and `__consumer_offsets`, and the producer ids it hands out.

use std::collections::BTreeMap;
use std::sync::{Arc, Weak};
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::write_txn_markers_request::{
    WritableTxnMarker, WritableTxnMarkerTopic,
};
use kafka_protocol::messages::{ProducerId, TopicName, WriteTxnMarkersRequest};
use kafka_protocol::protocol::StrBytes;
use sluice_protocol::batch::transaction_marker;
use sluice_protocol::kafka_protocol;
use sluice_protocol::model::{LeaderEpoch, ProducerIdAndEpoch, TopicPartition};
use sluice_txn::{MarkerError, MarkerFuture, MarkerWriter, ProducerIdSource, WriteError};

use crate::broker::Broker;
use crate::partition::Partition;
use crate::peer::call_peer;
use crate::replica_manager::{AppendOrigin, Appended, ReplicaError, RequiredAcks};
use crate::topic_admin::CONSUMER_OFFSETS_TOPIC;

/// Writes COMMIT/ABORT markers into partitions, durably: itself into the partitions this
/// node leads, through their leaders (WriteTxnMarkers) into the others.
pub struct PartitionMarkerWriter {
    broker: Weak<Broker>,
}

/// How long a WriteTxnMarkers to another node may take (Kafka's
/// `request.timeout.ms` for its marker channel).
const REMOTE_MARKERS_TIMEOUT: Duration = Duration::from_secs(30);

impl PartitionMarkerWriter {
    /// A writer that reaches the broker without keeping it alive.
    pub fn new(broker: Weak<Broker>) -> Self {
        Self { broker }
    }

    async fn write(
        &self,
        producer: ProducerIdAndEpoch,
        coordinator_epoch: LeaderEpoch,
        commit: bool,
        partitions: Vec<TopicPartition>,
    ) -> Result<(), MarkerError> {
        let broker = self
            .broker
            .upgrade()
            .ok_or(MarkerError::Unavailable(WriteError::ShuttingDown))?;
        let image = broker.metadata.image();
        let local = broker.node_id();
        let mut here = Vec::new();
        let mut by_leader: BTreeMap<i32, Vec<TopicPartition>> = BTreeMap::new();
        let mut failed = Vec::new();
        for tp in partitions {
            // A partition of a deleted topic has nothing left to decide.
            let Some(registration) = image
                .topic(&tp.topic)
                .and_then(|t| t.partition(tp.partition))
            else {
                continue;
            };
            match registration.leader {
                leader if leader == local => here.push(tp),
                leader if leader >= 0 => by_leader.entry(leader).or_default().push(tp),
                _ => failed.push((tp, ResponseError::LeaderNotAvailable)),
            }
        }
        // Every leader at once: a transaction's markers wait for the slowest only.
        let mut remote = tokio::task::JoinSet::new();
        for (leader, partitions) in by_leader {
            let broker = broker.clone();
            remote.spawn(async move {
                write_remote(
                    &broker,
                    leader,
                    producer,
                    coordinator_epoch,
                    commit,
                    partitions,
                )
                .await
            });
        }
        let local_results =
            write_local_markers(&broker, producer, coordinator_epoch, commit, here).await;
        let mut remote_results = Vec::new();
        while let Some(joined) = remote.join_next().await {
            match joined {
                Ok(results) => remote_results.push(results),
                Err(e) => return Err(MarkerError::Unavailable(WriteError::storage(e))),
            }
        }
        failed.extend(
            local_results
                .into_iter()
                .chain(remote_results.into_iter().flatten())
                .filter_map(|(tp, result)| result.err().map(|code| (tp, code))),
        );
        match failed.first() {
            None => Ok(()),
            Some((_, code)) => {
                let cause = WriteError::Refused(*code);
                Err(MarkerError::Partial {
                    partitions: failed.into_iter().map(|(tp, _)| tp).collect(),
                    cause,
                })
            }
        }
    }
}

/// Writes the markers into `partitions` this node leads, durably (acks=all), and then
/// completes the transactional offsets of the `__consumer_offsets` partitions among them:
/// each partition's outcome. What WriteTxnMarkers does on the partition's leader.
pub async fn write_local_markers(
    broker: &Broker,
    producer: ProducerIdAndEpoch,
    coordinator_epoch: LeaderEpoch,
    commit: bool,
    partitions: Vec<TopicPartition>,
) -> Vec<(TopicPartition, Result<(), ResponseError>)> {
    let marker = transaction_marker(
        producer.producer_id,
        producer.epoch,
        commit,
        coordinator_epoch.0,
        broker.clock.now_ms(),
    );
    let image = broker.metadata.image();
    let mut written = Vec::new();
    let mut outcomes = Vec::new();
    for tp in partitions {
        let Some(topic) = image.topic(&tp.topic) else {
            outcomes.push((tp, Err(ResponseError::UnknownTopicOrPartition)));
            continue;
        };
        let partition = broker
            .replicas
            .leader_partition(topic, tp.partition, LeaderEpoch::UNKNOWN);
        match partition.and_then(|p| append_marker(broker, &p, &marker)) {
            Ok(Some(appended)) => written.push((tp, appended)),
            Ok(None) => outcomes.push((tp, Ok(()))),
            Err(e) => outcomes.push((tp, Err(e.code))),
        }
    }
    for (tp, appended) in written {
        let committed = appended.acknowledged(None).await.map_err(|e| e.code);
        if committed.is_ok() && tp.topic == CONSUMER_OFFSETS_TOPIC {
            broker
                .groups
                .complete_transaction(tp.partition, producer, commit)
                .await;
        }
        outcomes.push((tp, committed));
    }
    outcomes
}

/// Asks node `leader` to write the markers into `partitions` it leads (WriteTxnMarkers):
/// each partition's outcome (all failed when the node did not answer).
async fn write_remote(
    broker: &Broker,
    leader: i32,
    producer: ProducerIdAndEpoch,
    coordinator_epoch: LeaderEpoch,
    commit: bool,
    partitions: Vec<TopicPartition>,
) -> Vec<(TopicPartition, Result<(), ResponseError>)> {
    let all_failed = |partitions: Vec<TopicPartition>, code| {
        partitions.into_iter().map(|tp| (tp, Err(code))).collect()
    };
    let Some(peers) = broker.peers.get() else {
        return all_failed(partitions, ResponseError::NotLeaderOrFollower);
    };
    let request = markers_request(producer, coordinator_epoch, commit, &partitions);
    match call_peer(&**peers, leader, 1, &request, REMOTE_MARKERS_TIMEOUT).await {
        Ok(response) => partitions
            .into_iter()
            .map(|tp| {
                let code = response
                    .markers
                    .iter()
                    .flat_map(|m| &m.topics)
                    .filter(|t| t.name.as_str() == tp.topic)
                    .flat_map(|t| &t.partitions)
                    .find(|p| p.partition_index == tp.partition)
                    .map_or(ResponseError::UnknownServerError.code(), |p| p.error_code);
                let result = match ResponseError::try_from_code(code) {
                    None => Ok(()),
                    Some(error) => Err(error),
                };
                (tp, result)
            })
            .collect(),
        Err(e) => {
            tracing::warn!(leader, error = %e, "cannot write transaction markers through the partitions' leader");
            all_failed(partitions, ResponseError::NotLeaderOrFollower)
        }
    }
}

/// The WriteTxnMarkers request for one transaction's markers in `partitions`.
fn markers_request(
    producer: ProducerIdAndEpoch,
    coordinator_epoch: LeaderEpoch,
    commit: bool,
    partitions: &[TopicPartition],
) -> WriteTxnMarkersRequest {
    let mut topics: Vec<WritableTxnMarkerTopic> = Vec::new();
    for tp in partitions {
        match topics.iter_mut().find(|t| t.name.as_str() == tp.topic) {
            Some(topic) => topic.partition_indexes.push(tp.partition),
            None => topics.push(
                WritableTxnMarkerTopic::default()
                    .with_name(TopicName(StrBytes::from_string(tp.topic.clone())))
                    .with_partition_indexes(vec![tp.partition]),
            ),
        }
    }
    WriteTxnMarkersRequest::default().with_markers(vec![
        WritableTxnMarker::default()
            .with_producer_id(ProducerId(producer.producer_id))
            .with_producer_epoch(producer.epoch)
            .with_transaction_result(commit)
            .with_topics(topics)
            .with_coordinator_epoch(coordinator_epoch.0),
    ])
}

/// Appends `marker` to `partition` through the replica manager (which asks for the
/// sync that commits it); `None` for the marker of an older epoch (the transaction was
/// already fenced and decided by a newer one).
fn append_marker(
    broker: &Broker,
    partition: &Arc<Partition>,
    marker: &[u8],
) -> Result<Option<Appended>, ReplicaError> {
    let appended = broker.replicas.append_records(
        partition,
        AppendOrigin::Coordinator,
        RequiredAcks::All,
        |_| Ok::<_, ReplicaError>(Bytes::copy_from_slice(marker)),
    );
    match appended {
        Ok(appended) => Ok(Some(appended)),
        Err(e)
            if matches!(
                e.code,
                ResponseError::InvalidProducerEpoch | ResponseError::OutOfOrderSequenceNumber
            ) =>
        {
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

impl MarkerWriter for PartitionMarkerWriter {
    fn write_markers(
        &self,
        producer: ProducerIdAndEpoch,
        coordinator_epoch: LeaderEpoch,
        commit: bool,
        partitions: Vec<TopicPartition>,
    ) -> MarkerFuture<'_> {
        Box::pin(self.write(producer, coordinator_epoch, commit, partitions))
    }
}

/// Producer ids for transactional producers, from the broker's allocator.
pub struct BrokerProducerIds {
    broker: Weak<Broker>,
}

impl BrokerProducerIds {
    /// A source that reaches the broker without keeping it alive.
    pub fn new(broker: Weak<Broker>) -> Self {
        Self { broker }
    }
}

impl ProducerIdSource for BrokerProducerIds {
    fn next_producer_id(&self) -> Result<i64, WriteError> {
        let broker = self.broker.upgrade().ok_or(WriteError::ShuttingDown)?;
        // While the next block is being reserved: COORDINATOR_LOAD_IN_PROGRESS, which
        // clients retry (Kafka's producer-id manager answers the same).
        broker.producer_ids.try_next_id().ok_or(WriteError::Loading)
    }
}

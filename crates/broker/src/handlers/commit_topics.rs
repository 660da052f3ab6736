//! Offset commits for partitions that do not exist.
//!
//! Kafka's broker checks every partition of an OffsetCommit or TxnOffsetCommit
//! against its metadata before the group coordinator sees the request: an
//! unknown topic or partition gets UNKNOWN_TOPIC_OR_PARTITION and is not
//! committed, and a request with no known partition never reaches the
//! coordinator at all. The coordinator (crate `sluice-group`) knows nothing
//! about topics, so the split and the merge of the answers happen here.

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{
    OffsetCommitRequest, OffsetCommitResponse, TxnOffsetCommitRequest, TxnOffsetCommitResponse,
};
use sluice_protocol::kafka_protocol;

use crate::broker::Broker;

/// Which partitions of a request exist, per topic in request order.
struct KnownMask(Vec<Vec<bool>>);

impl KnownMask {
    fn new<'a>(broker: &Broker, topics: impl Iterator<Item = (&'a str, Vec<i32>)>) -> KnownMask {
        let image = broker.metadata.image();
        KnownMask(
            topics
                .map(|(name, partitions)| {
                    let count = image.topic(name).map_or(0, |t| t.partitions);
                    partitions.iter().map(|&p| p >= 0 && p < count).collect()
                })
                .collect(),
        )
    }

    fn all_known(&self) -> bool {
        self.0.iter().flatten().all(|&known| known)
    }

    fn none_known(&self) -> bool {
        !self.0.iter().flatten().any(|&known| known)
    }

    fn is_known(&self, topic: usize, partition: usize) -> bool {
        self.0
            .get(topic)
            .and_then(|t| t.get(partition))
            .copied()
            .unwrap_or(false)
    }

    /// Keeps the known partitions of `items` (the partitions of topic `topic`).
    fn retain<T>(&self, topic: usize, items: &mut Vec<T>) {
        let mut index = 0;
        items.retain(|_| {
            let keep = self.is_known(topic, index);
            index += 1;
            keep
        });
    }

    /// Rebuilds one topic's answers in request order: the coordinator's
    /// answers for known partitions (in order), `unknown(index)` for the rest.
    fn merge<T>(
        &self,
        topic: usize,
        count: usize,
        answered: Vec<T>,
        unknown: impl Fn(usize) -> T,
    ) -> Vec<T> {
        let mut answered = answered.into_iter();
        (0..count)
            .map(|index| match self.is_known(topic, index) {
                true => answered.next().unwrap_or_else(|| unknown(index)),
                false => unknown(index),
            })
            .collect()
    }
}

/// OffsetCommit with Kafka's topic check in front of the coordinator.
pub async fn offset_commit(
    broker: &Arc<Broker>,
    req: OffsetCommitRequest,
    version: i16,
) -> OffsetCommitResponse {
    use kafka_protocol::messages::offset_commit_response::{
        OffsetCommitResponsePartition, OffsetCommitResponseTopic,
    };
    let mask = KnownMask::new(
        broker,
        req.topics.iter().map(|t| {
            let partitions = t.partitions.iter().map(|p| p.partition_index).collect();
            (t.name.as_str(), partitions)
        }),
    );
    if mask.all_known() {
        return broker.groups.offset_commit(req, version).await;
    }
    let unknown_partition = |index: i32| {
        OffsetCommitResponsePartition::default()
            .with_partition_index(index)
            .with_error_code(ResponseError::UnknownTopicOrPartition.code())
    };
    let original = req.topics.clone();
    let mut answered = if mask.none_known() {
        Vec::new()
    } else {
        let mut known = req;
        for (ti, topic) in known.topics.iter_mut().enumerate() {
            mask.retain(ti, &mut topic.partitions);
        }
        broker.groups.offset_commit(known, version).await.topics
    }
    .into_iter();
    let topics = original
        .into_iter()
        .enumerate()
        .map(|(ti, topic)| {
            let answers = answered.next().map(|t| t.partitions).unwrap_or_default();
            let partitions = mask.merge(ti, topic.partitions.len(), answers, |pi| {
                unknown_partition(topic.partitions.get(pi).map_or(-1, |p| p.partition_index))
            });
            OffsetCommitResponseTopic::default()
                .with_name(topic.name)
                .with_topic_id(topic.topic_id)
                .with_partitions(partitions)
        })
        .collect();
    OffsetCommitResponse::default().with_topics(topics)
}

/// TxnOffsetCommit with Kafka's topic check in front of the coordinator.
pub async fn txn_offset_commit(
    broker: &Arc<Broker>,
    req: TxnOffsetCommitRequest,
    version: i16,
) -> TxnOffsetCommitResponse {
    use kafka_protocol::messages::txn_offset_commit_response::{
        TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
    };
    let mask = KnownMask::new(
        broker,
        req.topics.iter().map(|t| {
            let partitions = t.partitions.iter().map(|p| p.partition_index).collect();
            (t.name.as_str(), partitions)
        }),
    );
    if mask.all_known() {
        return broker.groups.txn_offset_commit(req, version).await;
    }
    let unknown_partition = |index: i32| {
        TxnOffsetCommitResponsePartition::default()
            .with_partition_index(index)
            .with_error_code(ResponseError::UnknownTopicOrPartition.code())
    };
    let original = req.topics.clone();
    let mut answered = if mask.none_known() {
        Vec::new()
    } else {
        let mut known = req;
        for (ti, topic) in known.topics.iter_mut().enumerate() {
            mask.retain(ti, &mut topic.partitions);
        }
        broker.groups.txn_offset_commit(known, version).await.topics
    }
    .into_iter();
    let topics = original
        .into_iter()
        .enumerate()
        .map(|(ti, topic)| {
            let answers = answered.next().map(|t| t.partitions).unwrap_or_default();
            let partitions = mask.merge(ti, topic.partitions.len(), answers, |pi| {
                unknown_partition(topic.partitions.get(pi).map_or(-1, |p| p.partition_index))
            });
            TxnOffsetCommitResponseTopic::default()
                .with_name(topic.name)
                .with_partitions(partitions)
        })
        .collect();
    TxnOffsetCommitResponse::default().with_topics(topics)
}

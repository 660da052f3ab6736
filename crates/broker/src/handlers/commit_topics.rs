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
use kafka_protocol::messages::offset_commit_request::OffsetCommitRequestTopic;
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::txn_offset_commit_request::TxnOffsetCommitRequestTopic;
use kafka_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
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
                    let count = image.topic(name).map_or(0, |t| t.partition_count());
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

/// The request and response shapes the check works on. OffsetCommit and
/// TxnOffsetCommit differ only in their generated types, so one
/// implementation of the check serves both.
trait CommitRequest: Sized {
    type Topic: Clone;
    type Response;
    type ResponseTopic;
    type ResponsePartition;

    fn topics(&self) -> &[Self::Topic];
    fn topics_mut(&mut self) -> &mut [Self::Topic];
    fn topic_name(topic: &Self::Topic) -> &str;
    fn partition_indexes(topic: &Self::Topic) -> Vec<i32>;
    /// Keeps the partitions of `topic` (topic number `index`) that `mask` knows.
    fn retain_known(topic: &mut Self::Topic, index: usize, mask: &KnownMask);
    fn response_topics(response: Self::Response) -> Vec<Self::ResponseTopic>;
    fn response_partitions(topic: Self::ResponseTopic) -> Vec<Self::ResponsePartition>;
    fn unknown_partition(index: i32) -> Self::ResponsePartition;
    fn response_topic(
        request: Self::Topic,
        partitions: Vec<Self::ResponsePartition>,
    ) -> Self::ResponseTopic;
    fn response(topics: Vec<Self::ResponseTopic>) -> Self::Response;
}

/// Sends the known partitions of `req` to the coordinator (`commit`) and
/// answers the unknown ones with UNKNOWN_TOPIC_OR_PARTITION, in request order.
async fn check_topics<R, F>(broker: &Broker, req: R, commit: impl FnOnce(R) -> F) -> R::Response
where
    R: CommitRequest,
    F: std::future::Future<Output = R::Response>,
{
    let mask = KnownMask::new(
        broker,
        req.topics()
            .iter()
            .map(|t| (R::topic_name(t), R::partition_indexes(t))),
    );
    if mask.all_known() {
        return commit(req).await;
    }
    let original = req.topics().to_vec();
    let mut answered = if mask.none_known() {
        Vec::new()
    } else {
        let mut known = req;
        for (ti, topic) in known.topics_mut().iter_mut().enumerate() {
            R::retain_known(topic, ti, &mask);
        }
        R::response_topics(commit(known).await)
    }
    .into_iter();
    let topics = original
        .into_iter()
        .enumerate()
        .map(|(ti, topic)| {
            let answers = answered
                .next()
                .map(R::response_partitions)
                .unwrap_or_default();
            let indexes = R::partition_indexes(&topic);
            let partitions = mask.merge(ti, indexes.len(), answers, |pi| {
                R::unknown_partition(indexes.get(pi).copied().unwrap_or(-1))
            });
            R::response_topic(topic, partitions)
        })
        .collect();
    R::response(topics)
}

/// OffsetCommit with Kafka's topic check in front of the coordinator.
pub async fn offset_commit(
    broker: &Arc<Broker>,
    req: OffsetCommitRequest,
    version: i16,
) -> OffsetCommitResponse {
    check_topics(broker, req, |known| {
        broker.groups.offset_commit(known, version)
    })
    .await
}

/// TxnOffsetCommit with Kafka's topic check in front of the coordinator.
pub async fn txn_offset_commit(
    broker: &Arc<Broker>,
    req: TxnOffsetCommitRequest,
    version: i16,
) -> TxnOffsetCommitResponse {
    check_topics(broker, req, |known| {
        broker.groups.txn_offset_commit(known, version)
    })
    .await
}

/// Implements [`CommitRequest`] for one request type: the generated request
/// and response types share field names but no trait. `$copied` are the
/// request topic's fields the response topic echoes besides its name.
macro_rules! commit_request {
    ($request:ty, $topic:ty, $response:ident, $response_topic:ident,
     $response_partition:ident $(, $copied:ident)*) => {
        impl CommitRequest for $request {
            type Topic = $topic;
            type Response = $response;
            type ResponseTopic = $response_topic;
            type ResponsePartition = $response_partition;

            fn topics(&self) -> &[Self::Topic] {
                &self.topics
            }
            fn topics_mut(&mut self) -> &mut [Self::Topic] {
                &mut self.topics
            }
            fn topic_name(topic: &Self::Topic) -> &str {
                topic.name.as_str()
            }
            fn partition_indexes(topic: &Self::Topic) -> Vec<i32> {
                topic.partitions.iter().map(|p| p.partition_index).collect()
            }
            fn retain_known(topic: &mut Self::Topic, index: usize, mask: &KnownMask) {
                mask.retain(index, &mut topic.partitions);
            }
            fn response_topics(response: Self::Response) -> Vec<Self::ResponseTopic> {
                response.topics
            }
            fn response_partitions(topic: Self::ResponseTopic) -> Vec<Self::ResponsePartition> {
                topic.partitions
            }
            fn unknown_partition(index: i32) -> Self::ResponsePartition {
                $response_partition::default()
                    .with_partition_index(index)
                    .with_error_code(ResponseError::UnknownTopicOrPartition.code())
            }
            fn response_topic(
                request: Self::Topic,
                partitions: Vec<Self::ResponsePartition>,
            ) -> Self::ResponseTopic {
                #[allow(unused_mut)]
                let mut topic = $response_topic::default()
                    .with_name(request.name)
                    .with_partitions(partitions);
                $(topic.$copied = request.$copied;)*
                topic
            }
            fn response(topics: Vec<Self::ResponseTopic>) -> Self::Response {
                $response::default().with_topics(topics)
            }
        }
    };
}

commit_request!(
    OffsetCommitRequest,
    OffsetCommitRequestTopic,
    OffsetCommitResponse,
    OffsetCommitResponseTopic,
    OffsetCommitResponsePartition,
    topic_id
);
commit_request!(
    TxnOffsetCommitRequest,
    TxnOffsetCommitRequestTopic,
    TxnOffsetCommitResponse,
    TxnOffsetCommitResponseTopic,
    TxnOffsetCommitResponsePartition
);

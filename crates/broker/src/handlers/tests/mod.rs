//! Handler tests through the in-process broker ([`BrokerTestContext`]): each request goes
//! through the handler table with a request context, without a socket or a process.

mod configs;
mod fetch;
mod list_offsets;
mod produce;

use bytes::Bytes;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ProduceRequest, ProduceResponse, RequestKind, ResponseKind, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use sluice_protocol::batch::RecordBatchBuilder;
use sluice_protocol::kafka_protocol;

use crate::test_context::BrokerTestContext;

fn topic_name(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_string()))
}

/// One batch of `count` records with `value_bytes`-byte values, timestamped
/// `first_timestamp`, `first_timestamp + 1`, ….
fn batch(count: usize, value_bytes: usize, first_timestamp: i64) -> Bytes {
    let value = vec![b'v'; value_bytes];
    let mut builder = RecordBatchBuilder::new();
    for i in 0..count {
        builder = builder.record(first_timestamp + i as i64, None, Some(&value), &[]);
    }
    Bytes::from(builder.build())
}

/// A produce request of `records` to each `(topic, partition)`.
fn produce_request(acks: i16, to: &[(&str, i32)], records: &Bytes) -> ProduceRequest {
    let topics = to
        .iter()
        .map(|&(topic, partition)| {
            TopicProduceData::default()
                .with_name(topic_name(topic))
                .with_partition_data(vec![
                    PartitionProduceData::default()
                        .with_index(partition)
                        .with_records(Some(records.clone())),
                ])
        })
        .collect();
    ProduceRequest::default()
        .with_acks(acks)
        .with_timeout_ms(10_000)
        .with_topic_data(topics)
}

/// Sends a Produce request at `version` and returns its response.
async fn produce(test: &BrokerTestContext, version: i16, req: ProduceRequest) -> ProduceResponse {
    match test.call(version, RequestKind::Produce(req)).await {
        ResponseKind::Produce(r) => r,
        other => panic!("not a produce response: {other:?}"),
    }
}

/// Appends `batches` to `topic`-`partition` with acks=1, asserting each is accepted.
async fn fill(test: &BrokerTestContext, topic: &str, partition: i32, batches: &[Bytes]) {
    for records in batches {
        let response = produce(test, 9, produce_request(1, &[(topic, partition)], records)).await;
        let p = &response.responses[0].partition_responses[0];
        assert_eq!(p.error_code, 0, "{:?}", p.error_message);
    }
}

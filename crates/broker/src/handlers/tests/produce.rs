//! Produce validation: what is refused, with which code and message, and what is kept.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::ProduceRequest;
use sluice_protocol::batch::RecordBatchBuilder;
use sluice_protocol::clock::Clock;

use super::*;
use crate::test_context::Outcome;

/// `(error code, base offset, error message)` of every partition of a response.
fn answers(response: &ProduceResponse) -> Vec<(i16, i64, Option<String>)> {
    response
        .responses
        .iter()
        .flat_map(|t| &t.partition_responses)
        .map(|p| {
            (
                p.error_code,
                p.base_offset,
                p.error_message.as_ref().map(|m| m.to_string()),
            )
        })
        .collect()
}

fn log_end(test: &BrokerTestContext, topic: &str, partition: i32) -> i64 {
    partition_of(test, topic, partition)
        .offsets()
        .log_end_offset
}

fn partition_of(
    test: &BrokerTestContext,
    topic: &str,
    partition: i32,
) -> std::sync::Arc<crate::partition::Partition> {
    let image = test.broker().metadata.image();
    let id = image.topic(topic).expect("topic exists").id;
    test.broker()
        .replicas
        .logs()
        .get(id, partition)
        .expect("partition exists")
}

#[tokio::test]
async fn acks_outside_minus_one_to_one_fail_every_partition_and_append_nothing() {
    let test = BrokerTestContext::new().await;
    test.create_topic("t", 2).await;
    let records = batch(1, 10, 1_000);
    for acks in [2, -2, 100] {
        let req = produce_request(acks, &[("t", 0), ("t", 1), ("missing", 0)], &records);
        let response = produce(&test, 9, req).await;
        let code = ResponseError::InvalidRequiredAcks.code();
        assert_eq!(
            answers(&response),
            vec![(code, -1, None), (code, -1, None), (code, -1, None)],
            "acks={acks}"
        );
    }
    assert_eq!((log_end(&test, "t", 0), log_end(&test, "t", 1)), (0, 0));
}

#[tokio::test]
async fn unknown_topics_partitions_and_ids_are_refused_per_partition() {
    let test = BrokerTestContext::new().await;
    let id = test.create_topic("t", 1).await;
    let records = batch(2, 10, 1_000);
    let req = produce_request(1, &[("t", 0), ("t", 7), ("missing", 0)], &records);
    let unknown = ResponseError::UnknownTopicOrPartition.code();
    assert_eq!(
        answers(&produce(&test, 9, req).await),
        vec![(0, 0, None), (unknown, -1, None), (unknown, -1, None)]
    );
    // v13 names topics by id.
    let mut req = produce_request(1, &[("", 0), ("", 0)], &records);
    req.topic_data[0].topic_id = id;
    req.topic_data[1].topic_id = uuid::Uuid::new_v4();
    let response = produce(&test, 13, req).await;
    assert_eq!(response.responses[0].topic_id, id);
    assert_eq!(
        answers(&response),
        vec![
            (0, 2, None),
            (ResponseError::UnknownTopicId.code(), -1, None)
        ]
    );
}

#[tokio::test]
async fn corrupt_empty_and_control_batches_are_refused_with_their_reasons() {
    let test = BrokerTestContext::new().await;
    test.create_topic("t", 1).await;
    let good = batch(1, 10, 1_000);
    let mut corrupt = good.to_vec();
    let last = corrupt.len() - 1;
    corrupt[last] ^= 0xff; // the CRC covers the records
    let control = Bytes::from(
        RecordBatchBuilder::new()
            .producer(7, 0, 0)
            .transactional(true)
            .control(true)
            .record(1_000, Some(&[0, 0, 0, 0]), Some(&[0, 0, 0, 0, 0, 0]), &[])
            .build(),
    );
    let cases = [
        (
            Bytes::from(corrupt),
            ResponseError::CorruptMessage,
            "CRC mismatch: stored ",
        ),
        (
            Bytes::new(),
            ResponseError::CorruptMessage,
            "empty record set",
        ),
        (
            control,
            ResponseError::InvalidRecord,
            "Client produce requests must not contain control batches",
        ),
    ];
    for (records, code, reason) in cases {
        let response = produce(&test, 9, produce_request(1, &[("t", 0)], &records)).await;
        let Ok([(got_code, base_offset, message)]) = <[_; 1]>::try_from(answers(&response)) else {
            panic!("one partition expected");
        };
        assert_eq!((got_code, base_offset), (code.code(), -1), "{reason}");
        let message = message.unwrap_or_default();
        assert!(message.contains(reason), "{code:?}: {message}");
    }
    // Before v8 there is no message.
    let response = produce(&test, 7, produce_request(1, &[("t", 0)], &Bytes::new())).await;
    assert_eq!(
        answers(&response),
        vec![(ResponseError::CorruptMessage.code(), -1, None)]
    );
    assert_eq!(log_end(&test, "t", 0), 0);
    // The partition still takes good batches.
    let response = produce(&test, 9, produce_request(1, &[("t", 0)], &good)).await;
    assert_eq!(answers(&response), vec![(0, 0, None)]);
}

#[tokio::test]
async fn batches_over_message_max_bytes_are_refused() {
    let test = BrokerTestContext::with_config(|c| c.message_max_bytes = 200).await;
    test.create_topic("t", 1).await;
    let small = batch(1, 10, 1_000);
    let large = batch(1, 300, 1_000);
    let response = produce(&test, 9, produce_request(1, &[("t", 0)], &large)).await;
    assert_eq!(
        answers(&response),
        vec![(
            ResponseError::MessageTooLarge.code(),
            -1,
            Some(format!(
                "The record batch is {} bytes, larger than max.message.bytes (200)",
                large.len()
            ))
        )]
    );
    let response = produce(&test, 9, produce_request(1, &[("t", 0)], &small)).await;
    assert_eq!(answers(&response), vec![(0, 0, None)]);
}

#[tokio::test]
async fn internal_topics_are_written_only_by_the_coordinators() {
    let test = BrokerTestContext::new().await;
    crate::topic_admin::ensure_internal_topic(test.broker(), "__consumer_offsets")
        .await
        .expect("offsets topic");
    let req = produce_request(1, &[("__consumer_offsets", 0)], &batch(1, 10, 1_000));
    assert_eq!(
        answers(&produce(&test, 9, req).await),
        vec![(ResponseError::InvalidTopicException.code(), -1, None)]
    );
}

#[tokio::test]
async fn acks_zero_answers_nothing_and_closes_the_connection_on_failure() {
    let test = BrokerTestContext::new().await;
    test.create_topic("t", 1).await;
    let records = batch(1, 10, 1_000);
    let send = |req: ProduceRequest| test.send(9, RequestKind::Produce(req));
    assert!(matches!(
        send(produce_request(0, &[("t", 0)], &records)).await,
        Outcome::NoResponse
    ));
    assert_eq!(log_end(&test, "t", 0), 1);
    assert!(matches!(
        send(produce_request(0, &[("t", 0), ("t", 3)], &records)).await,
        Outcome::Closed
    ));
    // The good partition of the failed request was still appended, as in Kafka.
    assert_eq!(log_end(&test, "t", 0), 2);
}

#[tokio::test]
async fn acks_all_answers_once_the_records_are_durable() {
    let test = BrokerTestContext::new().await;
    test.create_topic("t", 1).await;
    let req = produce_request(-1, &[("t", 0)], &batch(3, 10, 1_000));
    let response = produce(&test, 9, req).await;
    assert_eq!(answers(&response), vec![(0, 0, None)]);
    let partition = partition_of(&test, "t", 0);
    assert_eq!(partition.offsets().log_end_offset, 3);
    // ProduceResponse v5+ carries the log start offset.
    assert_eq!(
        response.responses[0].partition_responses[0].log_start_offset,
        0
    );
}

/// `message.timestamp.after.max.ms` is checked against the broker's clock: a record
/// exactly that far ahead is kept, one a millisecond further is refused with the range at
/// that clock, and the same record is kept once the clock moved on by that millisecond.
#[tokio::test]
async fn timestamp_bounds_are_checked_against_the_broker_clock() {
    let test = BrokerTestContext::new().await;
    test.create_topic_with("t", 1, &[("message.timestamp.after.max.ms", "1000")])
        .await;
    let now = test.clock().now_ms();
    let at_bound = produce_request(1, &[("t", 0)], &batch(1, 10, now + 1_000));
    assert_eq!(
        answers(&produce(&test, 9, at_bound).await),
        vec![(0, 0, None)]
    );

    let ahead = produce_request(1, &[("t", 0)], &batch(1, 10, now + 1_001));
    let refused = produce(&test, 9, ahead.clone()).await;
    assert_eq!(
        answers(&refused),
        vec![(
            ResponseError::InvalidTimestamp.code(),
            -1,
            Some("One or more records have been rejected due to invalid timestamp".into())
        )]
    );
    let record_errors: Vec<(i32, Option<String>)> = refused.responses[0].partition_responses[0]
        .record_errors
        .iter()
        .map(|e| {
            let message = e.batch_index_error_message.as_ref().map(|m| m.to_string());
            (e.batch_index, message)
        })
        .collect();
    // The `before` bound is Long.MAX: Java's wrapping subtraction gives the range's start.
    let from = now.wrapping_sub(i64::MAX);
    let expected = format!(
        "Timestamp {} of message with offset 0 is out of range. The timestamp should be \
         within [{from}, {}]",
        now + 1_001,
        now + 1_000
    );
    assert_eq!(record_errors, vec![(0, Some(expected))]);

    test.clock().advance(1);
    assert_eq!(answers(&produce(&test, 9, ahead).await), vec![(0, 1, None)]);
}

/// A LogAppendTime topic stamps each batch with the broker's clock at the append, which
/// the response reports.
#[tokio::test]
async fn log_append_time_is_the_broker_clock() {
    let test = BrokerTestContext::new().await;
    test.create_topic_with("t", 1, &[("message.timestamp.type", "LogAppendTime")])
        .await;
    let appended_at = test.clock().advance(60_000);
    let response = produce(
        &test,
        9,
        produce_request(1, &[("t", 0)], &batch(2, 10, 1_000)),
    )
    .await;
    let p = &response.responses[0].partition_responses[0];
    assert_eq!(
        (p.error_code, p.base_offset, p.log_append_time_ms),
        (0, 0, appended_at)
    );
}

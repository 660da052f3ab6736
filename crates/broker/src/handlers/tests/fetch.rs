//! Fetch limits (KIP-74): the first batch always, then whole batches while they fit the
//! request's `max_bytes`, each partition's `partition_max_bytes` and the broker's
//! `fetch.max.bytes`.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{FetchRequest, FetchResponse};

use super::*;

/// A Fetch of each `(partition, offset, partition_max_bytes)` of `topic`, answered at once.
fn fetch_request(topic: &str, max_bytes: i32, partitions: &[(i32, i64, i32)]) -> FetchRequest {
    FetchRequest::default()
        .with_max_wait_ms(0)
        .with_min_bytes(1)
        .with_max_bytes(max_bytes)
        .with_topics(vec![
            FetchTopic::default()
                .with_topic(topic_name(topic))
                .with_partitions(
                    partitions
                        .iter()
                        .map(|&(partition, offset, max)| {
                            FetchPartition::default()
                                .with_partition(partition)
                                .with_fetch_offset(offset)
                                .with_partition_max_bytes(max)
                        })
                        .collect(),
                ),
        ])
}

async fn fetch(test: &BrokerTestContext, req: FetchRequest) -> FetchResponse {
    match test.call(12, RequestKind::Fetch(req)).await {
        ResponseKind::Fetch(r) => r,
        other => panic!("not a fetch response: {other:?}"),
    }
}

/// `(partition, error code, high watermark, record bytes)` of every partition answered.
fn answers(response: &FetchResponse) -> Vec<(i32, i16, i64, usize)> {
    response
        .responses
        .iter()
        .flat_map(|t| &t.partitions)
        .map(|p| {
            let bytes = p.records.as_ref().map_or(0, Bytes::len);
            (p.partition_index, p.error_code, p.high_watermark, bytes)
        })
        .collect()
}

/// Three 1-record batches of about 1 KB in partition 0 of `t`; returns their sizes.
async fn three_batches(test: &BrokerTestContext, partitions: i32) -> usize {
    test.create_topic("t", partitions).await;
    let records = batch(1, 1_000, 1_000);
    for partition in 0..partitions {
        fill(
            test,
            "t",
            partition,
            &[records.clone(), records.clone(), records.clone()],
        )
        .await;
    }
    records.len()
}

#[tokio::test]
async fn the_first_batch_is_returned_even_when_larger_than_every_limit() {
    let test = BrokerTestContext::new().await;
    let size = three_batches(&test, 1).await;
    for (max_bytes, partition_max_bytes) in [(10, 1 << 20), (1 << 20, 10), (1, 1)] {
        let response = fetch(
            &test,
            fetch_request("t", max_bytes, &[(0, 0, partition_max_bytes)]),
        )
        .await;
        assert_eq!(
            answers(&response),
            vec![(0, 0, 3, size)],
            "max_bytes {max_bytes}, partition_max_bytes {partition_max_bytes}"
        );
    }
    // Limits large enough for all three.
    let response = fetch(&test, fetch_request("t", 1 << 20, &[(0, 0, 1 << 20)])).await;
    assert_eq!(answers(&response), vec![(0, 0, 3, 3 * size)]);
    // Whole batches only: room for two and a half gives two.
    let limit = i32::try_from(size * 5 / 2).unwrap();
    let response = fetch(&test, fetch_request("t", limit, &[(0, 0, 1 << 20)])).await;
    assert_eq!(answers(&response), vec![(0, 0, 3, 2 * size)]);
}

#[tokio::test]
async fn partitions_after_the_first_get_only_what_still_fits() {
    let test = BrokerTestContext::new().await;
    let size = three_batches(&test, 3).await;
    // Room for the first partition's three batches and one more.
    let limit = i32::try_from(size * 4 + size / 2).unwrap();
    let all = 1 << 20;
    let response = fetch(
        &test,
        fetch_request("t", limit, &[(0, 0, all), (1, 0, all), (2, 0, all)]),
    )
    .await;
    assert_eq!(
        answers(&response),
        vec![(0, 0, 3, 3 * size), (1, 0, 3, size), (2, 0, 3, 0)]
    );
    // A partition past the first is never given more than its limit, not even one batch.
    let response = fetch(&test, fetch_request("t", all, &[(0, 0, all), (1, 0, 10)])).await;
    assert_eq!(answers(&response), vec![(0, 0, 3, 3 * size), (1, 0, 3, 0)]);
}

#[tokio::test]
async fn the_broker_fetch_max_bytes_caps_what_a_request_asks_for() {
    let test = BrokerTestContext::with_config(|c| c.fetch_max_bytes = 1024).await;
    let size = three_batches(&test, 1).await;
    assert!(size > 1024 / 2, "two batches must not fit in 1024 bytes");
    let response = fetch(&test, fetch_request("t", i32::MAX, &[(0, 0, i32::MAX)])).await;
    assert_eq!(answers(&response), vec![(0, 0, 3, size)]);
}

#[tokio::test]
async fn unknown_partitions_sessions_and_epochs_are_errors() {
    let test = BrokerTestContext::new().await;
    three_batches(&test, 1).await;
    let all = 1 << 20;
    let response = fetch(&test, fetch_request("t", all, &[(4, 0, all)])).await;
    let unknown = ResponseError::UnknownTopicOrPartition.code();
    assert_eq!(answers(&response), vec![(4, unknown, -1, 0)]);
    let mut req = fetch_request("t", all, &[(0, 0, all)]);
    req.topics[0].partitions[0].current_leader_epoch = 5;
    let response = fetch(&test, req).await;
    let code = ResponseError::UnknownLeaderEpoch.code();
    assert_eq!(answers(&response), vec![(0, code, -1, 0)]);
    let response = fetch(
        &test,
        fetch_request("t", all, &[(0, 0, all)]).with_session_id(9),
    )
    .await;
    assert_eq!(
        response.error_code,
        ResponseError::FetchSessionIdNotFound.code()
    );
    assert!(response.responses.is_empty());
}

//! ListOffsets: the special timestamps and lookups by timestamp.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::{DeleteRecordsRequest, ListOffsetsRequest, delete_records_request};

use super::*;

/// `(error code, timestamp, offset)` for each `timestamp` asked of `t`-0.
async fn list(test: &BrokerTestContext, version: i16, timestamps: &[i64]) -> Vec<(i16, i64, i64)> {
    let req = ListOffsetsRequest::default().with_topics(vec![
        ListOffsetsTopic::default()
            .with_name(topic_name("t"))
            .with_partitions(
                timestamps
                    .iter()
                    .map(|&ts| ListOffsetsPartition::default().with_timestamp(ts))
                    .collect(),
            ),
    ]);
    let ResponseKind::ListOffsets(response) =
        test.call(version, RequestKind::ListOffsets(req)).await
    else {
        panic!("not a ListOffsets response");
    };
    response.topics[0]
        .partitions
        .iter()
        .map(|p| (p.error_code, p.timestamp, p.offset))
        .collect()
}

#[tokio::test]
async fn special_timestamps_and_lookups_by_timestamp() {
    let test = BrokerTestContext::new().await;
    test.create_topic("t", 1).await;
    // Offsets 0-1 at 1000-1001, 2-3 at 3000-3001, 4 at 2000: the newest is not the last.
    fill(
        &test,
        "t",
        0,
        &[
            batch(2, 10, 1_000),
            batch(2, 10, 3_000),
            batch(1, 10, 2_000),
        ],
    )
    .await;
    let (latest, earliest, max_timestamp) = (-1, -2, -3);
    assert_eq!(
        list(
            &test,
            7,
            &[
                latest,
                earliest,
                max_timestamp,
                0,
                1_001,
                1_500,
                2_500,
                3_001,
                3_002
            ]
        )
        .await,
        vec![
            (0, -1, 5),
            (0, -1, 0),
            (0, 3_001, 3),
            (0, 1_000, 0),
            (0, 1_001, 1),
            // The first record at or after the timestamp, in offset order.
            (0, 3_000, 2),
            (0, 3_000, 2),
            (0, 3_001, 3),
            (0, -1, -1),
        ]
    );
    // MAX_TIMESTAMP is a v7 addition.
    assert_eq!(
        list(&test, 6, &[max_timestamp]).await,
        vec![(ResponseError::UnsupportedVersion.code(), -1, -1)]
    );
}

#[tokio::test]
async fn earliest_follows_delete_records() {
    let test = BrokerTestContext::new().await;
    test.create_topic("t", 1).await;
    fill(&test, "t", 0, &[batch(2, 10, 1_000), batch(2, 10, 2_000)]).await;
    let req = DeleteRecordsRequest::default().with_topics(vec![
        delete_records_request::DeleteRecordsTopic::default()
            .with_name(topic_name("t"))
            .with_partitions(vec![
                delete_records_request::DeleteRecordsPartition::default()
                    .with_partition_index(0)
                    .with_offset(3),
            ]),
    ]);
    let ResponseKind::DeleteRecords(deleted) = test.call(2, RequestKind::DeleteRecords(req)).await
    else {
        panic!("not a DeleteRecords response");
    };
    let p = &deleted.topics[0].partitions[0];
    assert_eq!((p.error_code, p.low_watermark), (0, 3));
    assert_eq!(
        list(&test, 7, &[-2, -1, 1_000]).await,
        vec![(0, -1, 3), (0, -1, 4), (0, 2_001, 3)]
    );
}

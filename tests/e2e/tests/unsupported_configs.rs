//! Topic configs for features Sluice lacks are refused rather than silently ignored
//! (`remote.storage.enable=true`: no tiered storage), and `min.insync.replicas` behaves as
//! in Kafka 3.7+ on a single replica.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    AlterConfigsRequest, CreateTopicsRequest, IncrementalAlterConfigsRequest, ProduceRequest,
    TopicName,
};
use kafka_protocol::protocol::StrBytes;
use sluice_e2e::raw::{BatchBuilder, RawConn};
use sluice_e2e::{Broker, create_topic};

const INVALID_CONFIG: i16 = 40;
const TIERED_STORAGE_DISABLED: &str = "Tiered Storage functionality is disabled in the broker. \
                                       Topic cannot be configured with remote log storage.";

fn name(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

/// CreateTopics (v7) of one topic with `configs`; returns (error code, message).
fn create(conn: &mut RawConn, corr: i32, topic: &str, configs: &[(&str, &str)]) -> (i16, String) {
    let req = CreateTopicsRequest::default()
        .with_timeout_ms(5000)
        .with_topics(vec![
            CreatableTopic::default()
                .with_name(TopicName(name(topic)))
                .with_num_partitions(1)
                .with_replication_factor(1)
                .with_configs(
                    configs
                        .iter()
                        .map(|(k, v)| {
                            CreatableTopicConfig::default()
                                .with_name(name(k))
                                .with_value(Some(name(v)))
                        })
                        .collect(),
                ),
        ]);
    let resp = conn.roundtrip(7, corr, &req);
    let t = &resp.topics[0];
    (
        t.error_code,
        t.error_message.as_deref().unwrap_or_default().to_string(),
    )
}

/// AlterConfigs (v2) of one topic; returns (error code, message).
fn alter(conn: &mut RawConn, corr: i32, topic: &str, key: &str, value: &str) -> (i16, String) {
    use kafka_protocol::messages::alter_configs_request::{AlterConfigsResource, AlterableConfig};
    let req = AlterConfigsRequest::default().with_resources(vec![
        AlterConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(name(topic))
            .with_configs(vec![
                AlterableConfig::default()
                    .with_name(name(key))
                    .with_value(Some(name(value))),
            ]),
    ]);
    let resp = conn.roundtrip(2, corr, &req);
    let r = &resp.responses[0];
    (
        r.error_code,
        r.error_message.as_deref().unwrap_or_default().to_string(),
    )
}

/// IncrementalAlterConfigs (v1) SET of one topic config; returns (error code, message).
fn incremental_set(
    conn: &mut RawConn,
    corr: i32,
    topic: &str,
    key: &str,
    value: &str,
) -> (i16, String) {
    use kafka_protocol::messages::incremental_alter_configs_request::{
        AlterConfigsResource, AlterableConfig,
    };
    let req = IncrementalAlterConfigsRequest::default().with_resources(vec![
        AlterConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(name(topic))
            .with_configs(vec![
                AlterableConfig::default()
                    .with_name(name(key))
                    .with_config_operation(0)
                    .with_value(Some(name(value))),
            ]),
    ]);
    let resp = conn.roundtrip(1, corr, &req);
    let r = &resp.responses[0];
    (
        r.error_code,
        r.error_message.as_deref().unwrap_or_default().to_string(),
    )
}

#[test]
fn remote_storage_enable_is_refused_without_tiered_storage() {
    let broker = Broker::start();
    let mut conn = RawConn::connect(broker.addr());
    let refused = (INVALID_CONFIG, TIERED_STORAGE_DISABLED.to_string());
    for value in ["true", "TRUE"] {
        assert_eq!(
            create(&mut conn, 1, "tiered", &[("remote.storage.enable", value)]),
            refused,
            "CreateTopics remote.storage.enable={value}"
        );
    }
    assert_eq!(
        create(&mut conn, 2, "local", &[("remote.storage.enable", "false")]),
        (0, String::new())
    );
    assert_eq!(
        alter(&mut conn, 3, "local", "remote.storage.enable", "true"),
        refused,
        "AlterConfigs"
    );
    assert_eq!(
        incremental_set(&mut conn, 4, "local", "remote.storage.enable", "true"),
        refused,
        "IncrementalAlterConfigs"
    );
    // Nothing was changed, and switching it off stays possible.
    assert_eq!(
        incremental_set(&mut conn, 5, "local", "remote.storage.enable", "false"),
        (0, String::new())
    );
    let md = sluice_e2e::admin(&broker.bootstrap())
        .inner()
        .fetch_metadata(None, sluice_e2e::CALL_TIMEOUT)
        .unwrap();
    let mut topics: Vec<&str> = md.topics().iter().map(|t| t.name()).collect();
    topics.sort_unstable();
    assert_eq!(topics, vec!["local"], "no topic 'tiered' was created");
}

/// Kafka 3.7+ (KAFKA-15583) caps the effective min.insync.replicas at the replica count, so
/// on one replica acks=all succeeds whatever min.insync.replicas says (older Kafka answered
/// NOT_ENOUGH_REPLICAS).
#[test]
fn min_insync_replicas_above_the_replica_count_is_capped_as_in_kafka() {
    let broker = Broker::start();
    create_topic(
        &broker.bootstrap(),
        "min-isr",
        1,
        &[("min.insync.replicas", "2")],
    );
    let mut conn = RawConn::connect(broker.addr());
    for (corr, acks) in [(1, -1i16), (2, 1)] {
        let batch = BatchBuilder::new(1_700_000_000_000)
            .record(None, Some(b"v"))
            .build();
        let req = ProduceRequest::default()
            .with_acks(acks)
            .with_timeout_ms(5000)
            .with_topic_data(vec![
                TopicProduceData::default()
                    .with_name(TopicName(name("min-isr")))
                    .with_partition_data(vec![
                        PartitionProduceData::default()
                            .with_index(0)
                            .with_records(Some(batch)),
                    ]),
            ]);
        let resp = conn.roundtrip(9, corr, &req);
        let p = &resp.responses[0].partition_responses[0];
        assert_eq!(
            (p.error_code, p.base_offset),
            (0, i64::from(corr) - 1),
            "acks={acks}"
        );
    }
}

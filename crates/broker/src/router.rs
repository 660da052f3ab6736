//! Which APIs and versions Sluice speaks, and which handler serves each.

use std::net::SocketAddr;
use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{ApiKey, ApiVersionsResponse, RequestKind, ResponseKind};
use sluice_protocol::kafka_protocol;

use crate::broker::Broker;
use crate::handlers;

/// Who sent a request, and at which version.
#[derive(Debug, Clone)]
pub struct RequestContext {
    /// The version of the request (responses use the same).
    pub api_version: i16,
    /// The client's `client.id`.
    pub client_id: String,
    /// The client's address.
    pub peer: SocketAddr,
}

/// What a handler hands back to the connection.
// Moved once per request; boxing the ready response would only add an allocation.
#[allow(clippy::large_enum_variant)]
pub enum Reply {
    /// The response is ready.
    Now(ResponseKind),
    /// The response is being computed (it waits on something); the connection
    /// writes it when it completes, in request order.
    Later(tokio::task::JoinHandle<ResponseKind>),
    /// No response is sent (produce with acks=0).
    Nothing,
    /// Close the connection (acks=0 produce that failed, as Kafka does).
    Close,
}

/// The versions advertised in ApiVersions: the full range kafka-protocol can
/// decode for every API the broker implements.
pub const SUPPORTED_APIS: &[(ApiKey, i16, i16)] = &[
    (ApiKey::Produce, 3, 13),
    (ApiKey::Fetch, 4, 18),
    (ApiKey::ListOffsets, 1, 10),
    (ApiKey::Metadata, 0, 13),
    (ApiKey::OffsetCommit, 2, 9),
    (ApiKey::OffsetFetch, 1, 9),
    (ApiKey::FindCoordinator, 0, 6),
    (ApiKey::JoinGroup, 0, 9),
    (ApiKey::Heartbeat, 0, 4),
    (ApiKey::LeaveGroup, 0, 5),
    (ApiKey::SyncGroup, 0, 5),
    (ApiKey::DescribeGroups, 0, 6),
    (ApiKey::ListGroups, 0, 5),
    (ApiKey::ApiVersions, 0, 4),
    (ApiKey::CreateTopics, 2, 7),
    (ApiKey::DeleteTopics, 1, 6),
    (ApiKey::DeleteRecords, 0, 2),
    (ApiKey::InitProducerId, 0, 5),
    (ApiKey::AddPartitionsToTxn, 0, 5),
    (ApiKey::AddOffsetsToTxn, 0, 4),
    (ApiKey::EndTxn, 0, 5),
    (ApiKey::TxnOffsetCommit, 0, 5),
    (ApiKey::DescribeProducers, 0, 0),
    (ApiKey::DescribeTransactions, 0, 0),
    (ApiKey::ListTransactions, 0, 2),
    (ApiKey::DescribeConfigs, 1, 4),
    (ApiKey::AlterConfigs, 0, 2),
    (ApiKey::CreatePartitions, 0, 3),
    (ApiKey::DeleteGroups, 0, 2),
    (ApiKey::IncrementalAlterConfigs, 0, 1),
    (ApiKey::OffsetDelete, 0, 0),
    (ApiKey::DescribeCluster, 0, 2),
    (ApiKey::DescribeLogDirs, 1, 4),
];

/// Whether `api` at `version` is one we decode and answer.
pub fn supports(api: ApiKey, version: i16) -> bool {
    SUPPORTED_APIS
        .iter()
        .any(|&(k, min, max)| k == api && (min..=max).contains(&version))
}

/// The lowest version advertised for an API: the legacy module's range
/// reaches below kafka-protocol's for the APIs Kafka 4.0 trimmed (KIP-896).
///
/// This matters beyond old clients: librdkafka before 2.11.1 only compresses
/// with gzip, snappy or lz4 when the broker's Produce range starts at v0 (it
/// checks "supports Produce v0..=0" per codec), so a floor of 3 silently turns
/// compression off for every librdkafka client in the field.
fn advertised_min(api: ApiKey, decodable_min: i16) -> i16 {
    sluice_protocol::legacy::legacy_range(api)
        .map_or(decodable_min, |(lo, _)| lo.min(decodable_min))
}

fn api_versions_table() -> Vec<ApiVersion> {
    SUPPORTED_APIS
        .iter()
        .map(|&(k, min, max)| {
            ApiVersion::default()
                .with_api_key(k as i16)
                .with_min_version(advertised_min(k, min))
                .with_max_version(max)
        })
        .collect()
}

/// ApiVersions answer for a version we do not know (KIP-511): v0 layout,
/// UNSUPPORTED_VERSION, and the table so the client can pick a version.
pub fn unsupported_api_versions() -> ResponseKind {
    ResponseKind::ApiVersions(
        ApiVersionsResponse::default()
            .with_error_code(ResponseError::UnsupportedVersion.code())
            .with_api_keys(api_versions_table()),
    )
}

/// Dispatches a decoded request to its handler.
pub async fn handle(broker: &Arc<Broker>, ctx: &RequestContext, request: RequestKind) -> Reply {
    let v = ctx.api_version;
    let now = |r| Reply::Now(r);
    match request {
        RequestKind::ApiVersions(_) => now(ResponseKind::ApiVersions(
            ApiVersionsResponse::default().with_api_keys(api_versions_table()),
        )),
        RequestKind::Metadata(r) => handlers::metadata::handle(broker, r, v),
        RequestKind::Produce(r) => handlers::produce::handle(broker, r, v),
        RequestKind::Fetch(r) => handlers::fetch::handle(broker, r, v),
        RequestKind::ListOffsets(r) => now(ResponseKind::ListOffsets(
            handlers::list_offsets::handle(broker, r, v),
        )),
        RequestKind::CreateTopics(r) => handlers::topics::create(broker, r, v),
        RequestKind::DeleteTopics(r) => handlers::topics::delete(broker, r, v),
        RequestKind::CreatePartitions(r) => handlers::topics::create_partitions(broker, r, v),
        RequestKind::DeleteRecords(r) => now(ResponseKind::DeleteRecords(
            handlers::delete_records::handle(broker, r, v),
        )),
        RequestKind::DescribeConfigs(r) => now(ResponseKind::DescribeConfigs(
            handlers::configs::describe(broker, r, v),
        )),
        RequestKind::AlterConfigs(r) => handlers::configs::alter(broker, r, v),
        RequestKind::IncrementalAlterConfigs(r) => {
            handlers::configs::incremental_alter(broker, r, v)
        }
        RequestKind::InitProducerId(r)
            if r.transactional_id.as_deref().is_some_and(|t| !t.is_empty()) =>
        {
            handlers::transactions::handle(broker, ctx, RequestKind::InitProducerId(r))
        }
        RequestKind::InitProducerId(r) => now(ResponseKind::InitProducerId(
            handlers::producer::handle(broker, r, v),
        )),
        RequestKind::DescribeProducers(r) => now(ResponseKind::DescribeProducers(
            handlers::transactions::describe_producers(broker, r, v),
        )),
        r @ (RequestKind::AddPartitionsToTxn(_)
        | RequestKind::AddOffsetsToTxn(_)
        | RequestKind::EndTxn(_)
        | RequestKind::TxnOffsetCommit(_)
        | RequestKind::DescribeTransactions(_)
        | RequestKind::ListTransactions(_)) => handlers::transactions::handle(broker, ctx, r),
        RequestKind::DescribeLogDirs(r) => now(ResponseKind::DescribeLogDirs(
            handlers::log_dirs::describe(broker, r),
        )),
        RequestKind::DescribeCluster(r) => now(ResponseKind::DescribeCluster(
            handlers::cluster::describe(broker, r, v),
        )),
        RequestKind::FindCoordinator(r) => handlers::groups::find_coordinator(broker, r, v),
        other => handlers::groups::handle(broker, ctx, other).await,
    }
}

#[cfg(test)]
mod tests {
    //! Every handler's response must encode at every version we advertise:
    //! kafka-protocol refuses to encode a field the version does not have,
    //! and a response that cannot be encoded closes the client's connection.

    use super::*;
    use kafka_protocol::messages::*;
    use kafka_protocol::protocol::StrBytes;
    use sluice_protocol::batch::RecordBatchBuilder;

    use crate::config::BrokerConfig;
    use crate::server::Server;

    fn name(s: &str) -> TopicName {
        TopicName(StrBytes::from_string(s.to_string()))
    }

    fn requests(topic: &str, id: uuid::Uuid, version: i16, api: ApiKey) -> Vec<RequestKind> {
        let batch = bytes::Bytes::from(
            RecordBatchBuilder::new()
                .record(1000, Some(b"k"), Some(b"v"), &[])
                .build(),
        );
        let s = |v: &str| StrBytes::from_string(v.to_string());
        match api {
            ApiKey::Produce => vec![RequestKind::Produce(
                ProduceRequest::default().with_acks(1).with_topic_data(vec![
                    produce_request::TopicProduceData::default()
                        .with_name(name(topic))
                        .with_topic_id(id)
                        .with_partition_data(vec![
                            produce_request::PartitionProduceData::default()
                                .with_index(0)
                                .with_records(Some(batch.clone())),
                            produce_request::PartitionProduceData::default()
                                .with_index(9)
                                .with_records(Some(batch.clone())),
                        ]),
                ]),
            )],
            ApiKey::Fetch => vec![RequestKind::Fetch(
                FetchRequest::default()
                    .with_max_bytes(1 << 20)
                    .with_topics(vec![
                        fetch_request::FetchTopic::default()
                            .with_topic(name(topic))
                            .with_topic_id(id)
                            .with_partitions(vec![
                                fetch_request::FetchPartition::default()
                                    .with_partition(0)
                                    .with_partition_max_bytes(1 << 20),
                                fetch_request::FetchPartition::default()
                                    .with_partition(0)
                                    .with_fetch_offset(1000),
                                fetch_request::FetchPartition::default().with_partition(7),
                            ]),
                    ]),
            )],
            ApiKey::ListOffsets => vec![RequestKind::ListOffsets(
                ListOffsetsRequest::default().with_topics(vec![
                    list_offsets_request::ListOffsetsTopic::default()
                        .with_name(name(topic))
                        .with_partitions(
                            [-1, -2, -3, 500, 5000]
                                .into_iter()
                                .map(|ts| {
                                    list_offsets_request::ListOffsetsPartition::default()
                                        .with_timestamp(ts)
                                })
                                .chain([list_offsets_request::ListOffsetsPartition::default()
                                    .with_partition_index(5)])
                                .collect(),
                        ),
                ]),
            )],
            ApiKey::Metadata => vec![
                RequestKind::Metadata(MetadataRequest::default().with_topics(None)),
                RequestKind::Metadata(MetadataRequest::default().with_topics(Some(vec![
                        metadata_request::MetadataRequestTopic::default()
                            .with_name(Some(name(topic))),
                        metadata_request::MetadataRequestTopic::default()
                            .with_name(Some(name("bad/name"))),
                        metadata_request::MetadataRequestTopic::default()
                            .with_name(Some(name(&format!("auto-{version}")))),
                    ]))),
            ],
            ApiKey::CreateTopics => vec![RequestKind::CreateTopics(
                CreateTopicsRequest::default().with_topics(vec![
                    create_topics_request::CreatableTopic::default()
                        .with_name(name(&format!("created-{version}")))
                        .with_num_partitions(2)
                        .with_replication_factor(1),
                    create_topics_request::CreatableTopic::default()
                        .with_name(name(topic))
                        .with_num_partitions(1),
                    create_topics_request::CreatableTopic::default()
                        .with_name(name("x"))
                        .with_num_partitions(1)
                        .with_replication_factor(3),
                ]),
            )],
            ApiKey::DeleteTopics => vec![RequestKind::DeleteTopics(
                DeleteTopicsRequest::default()
                    .with_topic_names(vec![name("missing"), name(&format!("created-{version}"))])
                    .with_topics(vec![
                        delete_topics_request::DeleteTopicState::default()
                            .with_name(Some(name("missing"))),
                        delete_topics_request::DeleteTopicState::default()
                            .with_topic_id(uuid::Uuid::new_v4()),
                    ]),
            )],
            ApiKey::CreatePartitions => vec![RequestKind::CreatePartitions(
                CreatePartitionsRequest::default().with_topics(vec![
                    create_partitions_request::CreatePartitionsTopic::default()
                        .with_name(name(topic))
                        .with_count(1),
                    create_partitions_request::CreatePartitionsTopic::default()
                        .with_name(name("missing"))
                        .with_count(3),
                ]),
            )],
            ApiKey::DeleteRecords => vec![RequestKind::DeleteRecords(
                DeleteRecordsRequest::default().with_topics(vec![
                    delete_records_request::DeleteRecordsTopic::default()
                        .with_name(name(topic))
                        .with_partitions(vec![
                            delete_records_request::DeleteRecordsPartition::default()
                                .with_offset(0),
                            delete_records_request::DeleteRecordsPartition::default()
                                .with_partition_index(3),
                        ]),
                ]),
            )],
            ApiKey::DescribeConfigs => vec![RequestKind::DescribeConfigs(
                DescribeConfigsRequest::default()
                    .with_include_synonyms(true)
                    .with_resources(vec![
                        describe_configs_request::DescribeConfigsResource::default()
                            .with_resource_type(2)
                            .with_resource_name(s(topic)),
                        describe_configs_request::DescribeConfigsResource::default()
                            .with_resource_type(4)
                            .with_resource_name(s("1")),
                        describe_configs_request::DescribeConfigsResource::default()
                            .with_resource_type(2)
                            .with_resource_name(s("missing")),
                    ]),
            )],
            ApiKey::AlterConfigs => vec![RequestKind::AlterConfigs(
                AlterConfigsRequest::default().with_resources(vec![
                    alter_configs_request::AlterConfigsResource::default()
                        .with_resource_type(2)
                        .with_resource_name(s(topic))
                        .with_configs(vec![
                            alter_configs_request::AlterableConfig::default()
                                .with_name(s("retention.ms"))
                                .with_value(Some(s("1000"))),
                        ]),
                    alter_configs_request::AlterConfigsResource::default()
                        .with_resource_type(2)
                        .with_resource_name(s("missing")),
                ]),
            )],
            ApiKey::IncrementalAlterConfigs => vec![RequestKind::IncrementalAlterConfigs(
                IncrementalAlterConfigsRequest::default().with_resources(vec![
                    incremental_alter_configs_request::AlterConfigsResource::default()
                        .with_resource_type(2)
                        .with_resource_name(s(topic))
                        .with_configs(vec![
                            incremental_alter_configs_request::AlterableConfig::default()
                                .with_name(s("cleanup.policy"))
                                .with_config_operation(2)
                                .with_value(Some(s("compact"))),
                            incremental_alter_configs_request::AlterableConfig::default()
                                .with_name(s("nonsense"))
                                .with_config_operation(0)
                                .with_value(Some(s("1"))),
                        ]),
                ]),
            )],
            ApiKey::FindCoordinator => vec![RequestKind::FindCoordinator(
                FindCoordinatorRequest::default()
                    .with_key(s("g"))
                    .with_coordinator_keys(vec![s("g")]),
            )],
            ApiKey::DescribeCluster => vec![RequestKind::DescribeCluster(
                DescribeClusterRequest::default(),
            )],
            ApiKey::DescribeLogDirs => vec![
                RequestKind::DescribeLogDirs(DescribeLogDirsRequest::default().with_topics(None)),
                RequestKind::DescribeLogDirs(DescribeLogDirsRequest::default().with_topics(Some(
                    vec![
                        describe_log_dirs_request::DescribableLogDirTopic::default()
                            .with_topic(name(topic))
                            .with_partitions(vec![0, 7]),
                    ],
                ))),
            ],
            ApiKey::ApiVersions => vec![RequestKind::ApiVersions(ApiVersionsRequest::default())],
            ApiKey::OffsetFetch => vec![RequestKind::OffsetFetch(
                OffsetFetchRequest::default().with_group_id(GroupId(s("g"))),
            )],
            ApiKey::ListGroups => vec![RequestKind::ListGroups(ListGroupsRequest::default())],
            ApiKey::DescribeGroups => vec![RequestKind::DescribeGroups(
                DescribeGroupsRequest::default().with_groups(vec![GroupId(s("g"))]),
            )],
            ApiKey::Heartbeat => vec![RequestKind::Heartbeat(
                HeartbeatRequest::default().with_group_id(GroupId(s("g"))),
            )],
            _ => Vec::new(),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_response_encodes_at_every_advertised_version() {
        let dir = tempfile::tempdir().unwrap();
        let config = BrokerConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            http_listen: None,
            data_dir: dir.path().to_path_buf(),
            offsets_topic_partitions: 2,
            ..BrokerConfig::default()
        };
        let server = Server::start(config).await.unwrap();
        let broker = server.broker().clone();
        let topic = crate::topic_admin::create_topic(
            &broker,
            crate::topic_admin::NewTopic {
                name: "enc".into(),
                partitions: 1,
                replication_factor: 1,
                configs: Default::default(),
                internal: false,
            },
            false,
        )
        .await
        .unwrap();
        let ctx = |v| RequestContext {
            api_version: v,
            client_id: "test".into(),
            peer: "127.0.0.1:1".parse().unwrap(),
        };
        let mut checked = 0;
        for &(api, min, max) in SUPPORTED_APIS {
            for v in min..=max {
                for request in requests("enc", topic.id, v, api) {
                    let response = match handle(&broker, &ctx(v), request).await {
                        Reply::Now(r) => r,
                        Reply::Later(task) => task.await.unwrap(),
                        Reply::Nothing | Reply::Close => continue,
                    };
                    sluice_protocol::codec::encode_response(1, api, v, &response)
                        .unwrap_or_else(|e| panic!("{api:?} v{v}: {e}"));
                    checked += 1;
                }
            }
        }
        assert!(checked >= 130, "only {checked} responses checked");
        server.shutdown().await.unwrap();
    }
}

//! Which APIs and versions Sluice speaks, and which handler serves each.
//!
//! One table lists every API once, with the versions kafka-protocol decodes for it and
//! its handler; ApiVersions, the connection's version check and dispatch are all generated
//! from it, so an API cannot be advertised without a handler or handled without being
//! advertised. Every handler has the same shape,
//! `async fn(&Arc<Broker>, &RequestContext, <Api>Request) -> Reply`: a check that applies
//! to every request (authorization, quotas) has one place to go, in [`dispatch`].

use std::ops::RangeInclusive;
use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, RequestKind, ResponseKind,
};
use sluice_protocol::kafka_protocol;

use crate::authz::{self, Checked};
use crate::broker::Broker;
use crate::handlers::{
    acls, client_quotas, cluster, configs, delete_records, describe_topic_partitions,
    elect_leaders, fetch, groups, list_offsets, log_dirs, metadata, offset_for_leader_epoch,
    produce, producer, reassignments, scram_users, topics, transactions, txn_markers,
    unregister_broker,
};
use crate::request::{Reply, RequestContext};
use crate::sasl;

/// One API the broker answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiHandler {
    /// The API.
    pub api_key: ApiKey,
    /// The versions kafka-protocol decodes for it; the legacy module reaches below them for
    /// some APIs (see [`advertised_min`]).
    pub versions: RangeInclusive<i16>,
}

/// Declares the handler table: `(Api, min..=max, handler)` per API. Generates [`HANDLERS`],
/// [`dispatch`], and for tests a probe request and the API of a response.
macro_rules! handler_table {
    ($( ($api:ident, $min:literal ..= $max:literal, $handler:path) ),* $(,)?) => {
        /// Every API the broker answers, with its versions.
        pub const HANDLERS: &[ApiHandler] = &[
            $( ApiHandler { api_key: ApiKey::$api, versions: $min..=$max } ),*
        ];

        /// Runs the handler of `request`'s API (authorized already).
        async fn run_handler(
            broker: &Arc<Broker>,
            ctx: &RequestContext,
            request: RequestKind,
        ) -> Reply {
            match request {
                $( RequestKind::$api(r) => $handler(broker, ctx, r).await, )*
                // kafka-protocol's enum lists every Kafka API; the connection decodes only
                // those in the table (`supports`), so this arm means a broken invariant.
                _ => no_handler(ctx),
            }
        }

        /// A request of `api_key` with every field at its default, for tests that reach
        /// every handler.
        #[cfg(test)]
        fn default_request(api_key: ApiKey) -> Option<RequestKind> {
            match api_key {
                $( ApiKey::$api => Some(RequestKind::$api(Default::default())), )*
                _ => None,
            }
        }

        /// The API of a request, if it is one the table lists.
        #[cfg(test)]
        pub(crate) fn request_api(request: &RequestKind) -> Option<ApiKey> {
            match request {
                $( RequestKind::$api(_) => Some(ApiKey::$api), )*
                _ => None,
            }
        }

        /// The API a response answers, if it is one the table lists.
        #[cfg(test)]
        fn response_api(response: &ResponseKind) -> Option<ApiKey> {
            match response {
                $( ResponseKind::$api(_) => Some(ApiKey::$api), )*
                _ => None,
            }
        }
    };
}

handler_table! {
    (Produce, 3..=13, produce::produce),
    (Fetch, 4..=18, fetch::fetch),
    (ListOffsets, 1..=10, list_offsets::list_offsets),
    (Metadata, 0..=13, metadata::metadata),
    (OffsetCommit, 2..=9, groups::offset_commit),
    (OffsetFetch, 1..=9, groups::offset_fetch),
    (FindCoordinator, 0..=6, groups::find_coordinator),
    (JoinGroup, 0..=9, groups::join_group),
    (Heartbeat, 0..=4, groups::heartbeat),
    (LeaveGroup, 0..=5, groups::leave_group),
    (SyncGroup, 0..=5, groups::sync_group),
    (DescribeGroups, 0..=6, groups::describe_groups),
    (ListGroups, 0..=5, groups::list_groups),
    (ApiVersions, 0..=4, api_versions),
    (CreateTopics, 2..=7, topics::create_topics),
    (DeleteTopics, 1..=6, topics::delete_topics),
    (DeleteRecords, 0..=2, delete_records::delete_records),
    (InitProducerId, 0..=5, producer::init_producer_id),
    (AddPartitionsToTxn, 0..=5, transactions::add_partitions_to_txn),
    (AddOffsetsToTxn, 0..=4, transactions::add_offsets_to_txn),
    (EndTxn, 0..=5, transactions::end_txn),
    (TxnOffsetCommit, 0..=5, transactions::txn_offset_commit),
    (DescribeProducers, 0..=0, transactions::describe_producers),
    (DescribeTransactions, 0..=0, transactions::describe_transactions),
    (ListTransactions, 0..=2, transactions::list_transactions),
    (DescribeConfigs, 1..=4, configs::describe_configs),
    (AlterConfigs, 0..=2, configs::alter_configs),
    (CreatePartitions, 0..=3, topics::create_partitions),
    (DeleteGroups, 0..=2, groups::delete_groups),
    (IncrementalAlterConfigs, 0..=1, configs::incremental_alter_configs),
    (OffsetDelete, 0..=0, groups::offset_delete),
    (DescribeCluster, 0..=2, cluster::describe_cluster),
    (DescribeLogDirs, 1..=4, log_dirs::describe_log_dirs),
    (OffsetForLeaderEpoch, 2..=4, offset_for_leader_epoch::offset_for_leader_epoch),
    (WriteTxnMarkers, 1..=1, txn_markers::write_txn_markers),
    (ElectLeaders, 0..=2, elect_leaders::elect_leaders),
    (AlterPartitionReassignments, 0..=1, reassignments::alter_partition_reassignments),
    (ListPartitionReassignments, 0..=0, reassignments::list_partition_reassignments),
    (DescribeTopicPartitions, 0..=0, describe_topic_partitions::describe_topic_partitions),
    (UnregisterBroker, 0..=0, unregister_broker::unregister_broker),
    // SASL listeners answer these in the connection (they change its session); here they
    // are on a listener without SASL. v2 of SaslHandshake breaks clients up to 2.4
    // (KAFKA-9577), so only 0-1 are advertised.
    (SaslHandshake, 0..=1, sasl::handshake_without_sasl),
    (SaslAuthenticate, 0..=2, sasl::authenticate_without_sasl),
    (DescribeUserScramCredentials, 0..=0, scram_users::describe_user_scram_credentials),
    (AlterUserScramCredentials, 0..=0, scram_users::alter_user_scram_credentials),
    (CreateAcls, 1..=3, acls::create_acls),
    (DescribeAcls, 1..=3, acls::describe_acls),
    (DeleteAcls, 1..=3, acls::delete_acls),
    (DescribeClientQuotas, 0..=1, client_quotas::describe_client_quotas),
    (AlterClientQuotas, 0..=1, client_quotas::alter_client_quotas),
}

/// Authorizes `request` (see [`crate::authz`]) and runs its handler on what may run: the one
/// place every request passes, from clients and from the other nodes alike.
pub async fn dispatch(broker: &Arc<Broker>, ctx: &RequestContext, request: RequestKind) -> Reply {
    match authz::check(broker, ctx, request) {
        Checked::Pass(request) => run_handler(broker, ctx, request).await,
        Checked::Deny(response) => Reply::Now(response),
        Checked::Close => {
            tracing::warn!(
                peer = %ctx.peer,
                principal = %ctx.principal,
                api = ?ctx.header.api_key,
                "no authorization rule for this API and no ALTER on the cluster; closing connection"
            );
            Reply::Close
        }
        Checked::Filter(request, post) => match run_handler(broker, ctx, request).await {
            Reply::Now(response) => Reply::Now(post(response)),
            Reply::Later(task) => Reply::Later(tokio::spawn(async move {
                match task.await {
                    Ok(response) => post(response),
                    // The writer closes the connection on a failed task, as before.
                    Err(e) => match e.try_into_panic() {
                        Ok(payload) => std::panic::resume_unwind(payload),
                        Err(_) => std::panic::resume_unwind(Box::new("request task cancelled")),
                    },
                }
            })),
            other => other,
        },
    }
}

/// Whether `api` at `version` is one we decode and answer.
pub fn supports(api: ApiKey, version: i16) -> bool {
    HANDLERS
        .iter()
        .any(|h| h.api_key == api && h.versions.contains(&version))
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

/// The versions ApiVersions advertises: the table, with the legacy floors.
fn api_versions_table() -> Vec<ApiVersion> {
    HANDLERS
        .iter()
        .map(|h| {
            ApiVersion::default()
                .with_api_key(h.api_key as i16)
                .with_min_version(advertised_min(h.api_key, *h.versions.start()))
                .with_max_version(*h.versions.end())
        })
        .collect()
}

/// Handles ApiVersions: the table.
async fn api_versions(_: &Arc<Broker>, _: &RequestContext, _: ApiVersionsRequest) -> Reply {
    Reply::Now(ResponseKind::ApiVersions(
        ApiVersionsResponse::default().with_api_keys(api_versions_table()),
    ))
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

/// A decoded request of an API the table does not list: the connection checks the table
/// before decoding, so this is a bug; the connection is closed rather than answered wrongly.
fn no_handler(ctx: &RequestContext) -> Reply {
    tracing::error!(
        peer = %ctx.peer,
        client_id = ctx.client_id(),
        api = ?ctx.header.api_key,
        "decoded a request the handler table does not list; closing connection"
    );
    Reply::Close
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

    use crate::test_context::{BrokerTestContext, Outcome};

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
        let test = BrokerTestContext::new().await;
        let checked = encode_every_response(&test).await;
        assert!(checked >= 130, "only {checked} responses checked");
    }

    /// The answers of the authorizer (with no ACL, everything is refused) encode too.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_denial_encodes_at_every_advertised_version() {
        let test = BrokerTestContext::with_config(|c| c.authorizer = "on".into()).await;
        let checked = encode_every_response(&test).await;
        assert!(checked >= 130, "only {checked} responses checked");
    }

    /// Sends every fixture request at every advertised version and encodes the answers;
    /// returns how many were encoded.
    async fn encode_every_response(test: &BrokerTestContext) -> usize {
        let topic_id = test.create_topic("enc", 1).await;
        let mut checked = 0;
        for entry in HANDLERS {
            let api = entry.api_key;
            for v in entry.versions.clone() {
                for request in requests("enc", topic_id, v, api) {
                    let response = match test.send(v, request).await {
                        Outcome::Response(r) => r,
                        Outcome::NoResponse | Outcome::Closed => continue,
                    };
                    let frame = sluice_protocol::codec::encode_response(1, api, v, &response)
                        .unwrap_or_else(|e| panic!("{api:?} v{v}: {e}"));
                    // A client reads exactly the frame the length announces, header then
                    // body, and nothing is left over.
                    let announced = u32::from_be_bytes([frame[0], frame[1], frame[2], frame[3]]);
                    assert_eq!(
                        announced as usize,
                        frame.len() - 4,
                        "{api:?} v{v}: frame length"
                    );
                    let mut rest = frame.slice(4..);
                    <kafka_protocol::messages::ResponseHeader as kafka_protocol::protocol::Decodable>::decode(
                        &mut rest,
                        api.response_header_version(v),
                    )
                    .unwrap_or_else(|e| panic!("{api:?} v{v} header: {e}"));
                    ResponseKind::decode(api, &mut rest, v)
                        .unwrap_or_else(|e| panic!("{api:?} v{v} body: {e}"));
                    assert!(
                        rest.is_empty(),
                        "{api:?} v{v}: {} bytes left over",
                        rest.len()
                    );
                    checked += 1;
                }
            }
        }
        checked
    }

    /// ApiVersions advertises exactly the table: every API once, the table's top version,
    /// and the table's lowest version unless the legacy module reaches lower.
    #[tokio::test]
    async fn api_versions_advertises_exactly_the_table() {
        let test = BrokerTestContext::new().await;
        let request = RequestKind::ApiVersions(ApiVersionsRequest::default());
        let ResponseKind::ApiVersions(response) = test.call(3, request).await else {
            panic!("not an ApiVersions response");
        };
        assert_eq!(response.error_code, 0);
        let advertised: Vec<(i16, i16, i16)> = response
            .api_keys
            .iter()
            .map(|k| (k.api_key, k.min_version, k.max_version))
            .collect();
        let table: Vec<(i16, i16, i16)> = HANDLERS
            .iter()
            .map(|h| {
                let min = match sluice_protocol::legacy::legacy_range(h.api_key) {
                    Some((legacy_min, _)) => legacy_min.min(*h.versions.start()),
                    None => *h.versions.start(),
                };
                (h.api_key as i16, min, *h.versions.end())
            })
            .collect();
        assert_eq!(advertised, table);
        // The legacy floors that matter to clients (see `advertised_min`).
        let produce = advertised.iter().find(|a| a.0 == ApiKey::Produce as i16);
        assert_eq!(produce, Some(&(ApiKey::Produce as i16, 0, 13)));
        let mut keys: Vec<i16> = table.iter().map(|t| t.0).collect();
        keys.sort_unstable();
        keys.dedup();
        assert_eq!(keys.len(), HANDLERS.len(), "an API is listed twice");
        // No version beyond what kafka-protocol can decode.
        for h in HANDLERS {
            let decodable = h.api_key.valid_versions();
            assert!(
                decodable.min <= *h.versions.start() && *h.versions.end() <= decodable.max,
                "{:?} {:?} outside {decodable:?}",
                h.api_key,
                h.versions
            );
        }
    }

    /// Every API of the table reaches a handler that answers that API (a request with every
    /// field at its default), and nothing outside the table is supported.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_table_entry_dispatches_to_its_handler() {
        let test = BrokerTestContext::new().await;
        for entry in HANDLERS {
            let api = entry.api_key;
            let mut request = default_request(api).unwrap();
            if let RequestKind::Produce(produce) = &mut request {
                produce.acks = 1; // acks=0 would answer nothing
            }
            assert_eq!(request_api(&request), Some(api));
            let response = test.call(*entry.versions.end(), request).await;
            assert_eq!(response_api(&response), Some(api), "{api:?}");
            assert!(supports(api, *entry.versions.start()));
            assert!(supports(api, *entry.versions.end()));
            assert!(!supports(api, *entry.versions.end() + 1));
        }
        for api in ApiKey::iter() {
            let listed = HANDLERS.iter().any(|h| h.api_key == api);
            assert_eq!(default_request(api).is_some(), listed, "{api:?}");
            if !listed {
                for v in api.valid_versions().min..=api.valid_versions().max {
                    assert!(!supports(api, v), "{api:?} v{v}");
                }
            }
        }
    }
}

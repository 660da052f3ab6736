//! Authorization of every request, in the one place every request passes (the router's
//! dispatch): what Kafka's `KafkaApis` checks for each API, with its error codes
//! (TOPIC_, GROUP_, CLUSTER_ and TRANSACTIONAL_ID_AUTHORIZATION_FAILED).
//!
//! A request is let through whole, refused whole with its API's error response, or
//! filtered: the parts the principal may not touch are taken out before the handler runs
//! and answered with their errors after it, so handlers never see them. Metadata hides
//! topics without DESCRIBE and answers a named one with TOPIC_AUTHORIZATION_FAILED whether
//! it exists or not; ListGroups, ListTransactions and OffsetFetch of all topics filter
//! silently. Authorized-operations fields are computed per principal.
//!
//! Nothing is checked when the authorizer is off, for super users, or for requests of the
//! other nodes of the cluster (the cluster listener: Kafka's inter-broker principal).

use std::net::IpAddr;
use std::sync::Arc;

use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use sluice_protocol::kafka_protocol;
use sluice_security::acl::{AclOperation, AuthorizerData, CLUSTER_NAME, ResourceType};
use uuid::Uuid;

use crate::broker::Broker;
use crate::metadata::MetadataImage;
use crate::request::{KafkaPrincipal, RequestContext};

const TOPIC_DENIED: i16 = 29;
const GROUP_DENIED: i16 = 30;
const CLUSTER_DENIED: i16 = 31;
const TXN_DENIED: i16 = 53;
/// AddPartitionsToTxn: the partitions that were authorized but not added because others
/// were not.
const OPERATION_NOT_ATTEMPTED: i16 = 55;
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;

/// Turns the handler's response into the client's: adds the errors of what was taken out.
pub(crate) type Post = Box<dyn FnOnce(ResponseKind) -> ResponseKind + Send>;

/// What authorization decided about a request.
pub(crate) enum Checked {
    /// Every part is allowed.
    Pass(RequestKind),
    /// Nothing is allowed: this is the answer.
    Deny(ResponseKind),
    /// The allowed parts go to the handler; `Post` completes its response.
    Filter(RequestKind, Post),
    /// An API without a rule, from a principal without ALTER on the cluster.
    Close,
}

/// One principal's view of the ACLs, for one request.
struct Access {
    data: Arc<AuthorizerData>,
    principal: KafkaPrincipal,
    host: IpAddr,
    image: Arc<MetadataImage>,
}

impl Access {
    fn allows(&self, op: AclOperation, kind: ResourceType, name: &str) -> bool {
        self.data
            .authorize(&self.principal, self.host, op, kind, name)
    }

    fn cluster(&self, op: AclOperation) -> bool {
        self.allows(op, ResourceType::Cluster, CLUSTER_NAME)
    }

    fn topic(&self, op: AclOperation, name: &str) -> bool {
        self.allows(op, ResourceType::Topic, name)
    }

    fn group(&self, op: AclOperation, name: &str) -> bool {
        self.allows(op, ResourceType::Group, name)
    }

    fn txn(&self, op: AclOperation, id: &str) -> bool {
        self.allows(op, ResourceType::TransactionalId, id)
    }

    /// CREATE on the cluster, or else on the topic (Kafka's auto-creation and CreateTopics).
    fn can_create_topic(&self, name: &str) -> bool {
        self.cluster(AclOperation::Create) || self.topic(AclOperation::Create, name)
    }

    fn ops(&self, kind: ResourceType, name: &str) -> i32 {
        self.data
            .authorized_operations(&self.principal, self.host, kind, name)
    }

    /// A topic's name, from its name or (newer versions) its id.
    fn topic_name(&self, name: &TopicName, id: Uuid) -> Option<String> {
        if !name.is_empty() {
            return Some(name.to_string());
        }
        self.image.topic_by_id(&id).map(|t| t.name.clone())
    }
}

fn text(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

/// Decides about `request` from the connection of `ctx`.
pub(crate) fn check(broker: &Broker, ctx: &RequestContext, request: RequestKind) -> Checked {
    let security = &broker.security;
    if !security.enforce_acls || ctx.listener.is_cluster() {
        return Checked::Pass(request);
    }
    let data = security.authorizer();
    if data.is_super_user(&ctx.principal) {
        return Checked::Pass(request);
    }
    let a = Access {
        data,
        principal: ctx.principal.clone(),
        host: ctx.peer.ip(),
        image: broker.metadata.image(),
    };
    let version = ctx.api_version();
    use AclOperation::*;
    match request {
        RequestKind::ApiVersions(_)
        | RequestKind::SaslHandshake(_)
        | RequestKind::SaslAuthenticate(_) => Checked::Pass(request),
        RequestKind::Produce(r) => produce(&a, r),
        RequestKind::Fetch(r) => fetch(&a, r),
        RequestKind::ListOffsets(r) => list_offsets(&a, r),
        RequestKind::Metadata(r) => metadata(&a, r, version, broker.config.auto_create_topics),
        RequestKind::DescribeTopicPartitions(r) => describe_topic_partitions(a, r),
        RequestKind::OffsetCommit(r) => offset_commit(&a, r),
        RequestKind::OffsetFetch(r) => offset_fetch(&a, r, version),
        RequestKind::FindCoordinator(r) => find_coordinator(&a, r, version),
        RequestKind::JoinGroup(r) => group_whole(
            &a,
            &r.group_id.clone(),
            Read,
            RequestKind::JoinGroup(r),
            || {
                ResponseKind::JoinGroup(
                    JoinGroupResponse::default()
                        .with_error_code(GROUP_DENIED)
                        .with_generation_id(-1)
                        .with_protocol_name((version < 7).then(StrBytes::default)),
                )
            },
        ),
        RequestKind::SyncGroup(r) => group_whole(
            &a,
            &r.group_id.clone(),
            Read,
            RequestKind::SyncGroup(r),
            || ResponseKind::SyncGroup(SyncGroupResponse::default().with_error_code(GROUP_DENIED)),
        ),
        RequestKind::Heartbeat(r) => group_whole(
            &a,
            &r.group_id.clone(),
            Read,
            RequestKind::Heartbeat(r),
            || ResponseKind::Heartbeat(HeartbeatResponse::default().with_error_code(GROUP_DENIED)),
        ),
        RequestKind::LeaveGroup(r) => group_whole(
            &a,
            &r.group_id.clone(),
            Read,
            RequestKind::LeaveGroup(r),
            || {
                ResponseKind::LeaveGroup(
                    LeaveGroupResponse::default().with_error_code(GROUP_DENIED),
                )
            },
        ),
        RequestKind::DescribeGroups(r) => describe_groups(&a, r),
        RequestKind::ListGroups(r) => list_groups(&a, r),
        RequestKind::DeleteGroups(r) => delete_groups(&a, r),
        RequestKind::OffsetDelete(r) => offset_delete(&a, r),
        RequestKind::CreateTopics(r) => create_topics(&a, r),
        RequestKind::DeleteTopics(r) => delete_topics(&a, r),
        RequestKind::DeleteRecords(r) => delete_records(&a, r),
        RequestKind::CreatePartitions(r) => create_partitions(&a, r),
        RequestKind::DescribeConfigs(r) => describe_configs(&a, r),
        RequestKind::AlterConfigs(r) => alter_configs(&a, r),
        RequestKind::IncrementalAlterConfigs(r) => incremental_alter_configs(&a, r),
        RequestKind::InitProducerId(r) => init_producer_id(&a, r),
        RequestKind::AddPartitionsToTxn(r) => add_partitions_to_txn(&a, r, version),
        RequestKind::AddOffsetsToTxn(r) => add_offsets_to_txn(&a, r),
        RequestKind::EndTxn(r) => {
            if a.txn(Write, &r.transactional_id) {
                Checked::Pass(RequestKind::EndTxn(r))
            } else {
                Checked::Deny(ResponseKind::EndTxn(
                    EndTxnResponse::default()
                        .with_error_code(TXN_DENIED)
                        .with_producer_id(ProducerId(-1))
                        .with_producer_epoch(-1),
                ))
            }
        }
        RequestKind::TxnOffsetCommit(r) => txn_offset_commit(&a, r),
        RequestKind::DescribeProducers(r) => describe_producers(&a, r),
        RequestKind::DescribeTransactions(r) => describe_transactions(&a, r),
        RequestKind::ListTransactions(r) => {
            let post: Post = {
                let a = Arc::new(a);
                Box::new(move |resp| match resp {
                    ResponseKind::ListTransactions(mut l) => {
                        l.transaction_states
                            .retain(|t| a.txn(Describe, &t.transactional_id));
                        ResponseKind::ListTransactions(l)
                    }
                    other => other,
                })
            };
            Checked::Filter(RequestKind::ListTransactions(r), post)
        }
        RequestKind::DescribeCluster(r) => describe_cluster(a, r),
        RequestKind::DescribeLogDirs(r) => {
            cluster_whole(&a, Describe, RequestKind::DescribeLogDirs(r), || {
                ResponseKind::DescribeLogDirs(
                    DescribeLogDirsResponse::default().with_error_code(if version >= 3 {
                        CLUSTER_DENIED
                    } else {
                        0
                    }),
                )
            })
        }
        RequestKind::DescribeAcls(r) => {
            cluster_whole(&a, Describe, RequestKind::DescribeAcls(r), || {
                ResponseKind::DescribeAcls(
                    DescribeAclsResponse::default()
                        .with_error_code(CLUSTER_DENIED)
                        .with_error_message(Some(text("Cluster authorization failed."))),
                )
            })
        }
        RequestKind::CreateAcls(r) => {
            let n = r.creations.len();
            cluster_whole(&a, Alter, RequestKind::CreateAcls(r), || {
                ResponseKind::CreateAcls(
                    CreateAclsResponse::default().with_results(
                        (0..n)
                            .map(|_| {
                                create_acls_response::AclCreationResult::default()
                                    .with_error_code(CLUSTER_DENIED)
                            })
                            .collect(),
                    ),
                )
            })
        }
        RequestKind::DeleteAcls(r) => {
            let n = r.filters.len();
            cluster_whole(&a, Alter, RequestKind::DeleteAcls(r), || {
                ResponseKind::DeleteAcls(
                    DeleteAclsResponse::default().with_filter_results(
                        (0..n)
                            .map(|_| {
                                delete_acls_response::DeleteAclsFilterResult::default()
                                    .with_error_code(CLUSTER_DENIED)
                            })
                            .collect(),
                    ),
                )
            })
        }
        RequestKind::DescribeUserScramCredentials(r) => cluster_whole(
            &a,
            Describe,
            RequestKind::DescribeUserScramCredentials(r),
            || {
                ResponseKind::DescribeUserScramCredentials(
                    DescribeUserScramCredentialsResponse::default().with_error_code(CLUSTER_DENIED),
                )
            },
        ),
        RequestKind::AlterUserScramCredentials(r) => {
            let mut users: Vec<StrBytes> = Vec::new();
            for name in r
                .deletions
                .iter()
                .map(|d| &d.name)
                .chain(r.upsertions.iter().map(|u| &u.name))
            {
                if !users.contains(name) {
                    users.push(name.clone());
                }
            }
            cluster_whole(&a, Alter, RequestKind::AlterUserScramCredentials(r), || {
                ResponseKind::AlterUserScramCredentials(
                    AlterUserScramCredentialsResponse::default().with_results(
                        users
                            .into_iter()
                            .map(|u| {
                                alter_user_scram_credentials_response::AlterUserScramCredentialsResult::default()
                                    .with_user(u)
                                    .with_error_code(CLUSTER_DENIED)
                            })
                            .collect(),
                    ),
                )
            })
        }
        RequestKind::DescribeClientQuotas(r) => cluster_whole(
            &a,
            DescribeConfigs,
            RequestKind::DescribeClientQuotas(r),
            || {
                ResponseKind::DescribeClientQuotas(
                    DescribeClientQuotasResponse::default().with_error_code(CLUSTER_DENIED),
                )
            },
        ),
        RequestKind::AlterClientQuotas(r) => {
            let entries: Vec<_> = r
                .entries
                .iter()
                .map(|e| {
                    alter_client_quotas_response::EntryData::default()
                        .with_error_code(CLUSTER_DENIED)
                        .with_entity(
                            e.entity
                                .iter()
                                .map(|x| {
                                    alter_client_quotas_response::EntityData::default()
                                        .with_entity_type(x.entity_type.clone())
                                        .with_entity_name(x.entity_name.clone())
                                })
                                .collect(),
                        )
                })
                .collect();
            cluster_whole(&a, AlterConfigs, RequestKind::AlterClientQuotas(r), || {
                ResponseKind::AlterClientQuotas(
                    AlterClientQuotasResponse::default().with_entries(entries),
                )
            })
        }
        RequestKind::UnregisterBroker(r) => {
            cluster_whole(&a, Alter, RequestKind::UnregisterBroker(r), || {
                ResponseKind::UnregisterBroker(
                    UnregisterBrokerResponse::default()
                        .with_error_code(CLUSTER_DENIED)
                        .with_error_message(None),
                )
            })
        }
        RequestKind::ElectLeaders(r) => {
            let topics = r.topic_partitions.clone();
            cluster_whole(&a, Alter, RequestKind::ElectLeaders(r), || {
                ResponseKind::ElectLeaders(
                    ElectLeadersResponse::default()
                        .with_error_code(CLUSTER_DENIED)
                        .with_replica_election_results(
                            topics
                                .unwrap_or_default()
                                .into_iter()
                                .map(|t| {
                                    elect_leaders_response::ReplicaElectionResult::default()
                                        .with_topic(t.topic)
                                        .with_partition_result(
                                            t.partitions
                                                .into_iter()
                                                .map(|p| {
                                                    elect_leaders_response::PartitionResult::default()
                                                        .with_partition_id(p)
                                                        .with_error_code(CLUSTER_DENIED)
                                                })
                                                .collect(),
                                        )
                                })
                                .collect(),
                        ),
                )
            })
        }
        RequestKind::AlterPartitionReassignments(r) => {
            let topics: Vec<_> = r
                .topics
                .iter()
                .map(|t| {
                    alter_partition_reassignments_response::ReassignableTopicResponse::default()
                        .with_name(t.name.clone())
                        .with_partitions(
                            t.partitions
                                .iter()
                                .map(|p| {
                                    alter_partition_reassignments_response::ReassignablePartitionResponse::default()
                                        .with_partition_index(p.partition_index)
                                        .with_error_code(CLUSTER_DENIED)
                                        .with_error_message(None)
                                })
                                .collect(),
                        )
                })
                .collect();
            cluster_whole(
                &a,
                Alter,
                RequestKind::AlterPartitionReassignments(r),
                || {
                    ResponseKind::AlterPartitionReassignments(
                        AlterPartitionReassignmentsResponse::default()
                            .with_error_code(CLUSTER_DENIED)
                            .with_error_message(None)
                            .with_responses(topics),
                    )
                },
            )
        }
        RequestKind::ListPartitionReassignments(r) => cluster_whole(
            &a,
            Describe,
            RequestKind::ListPartitionReassignments(r),
            || {
                ResponseKind::ListPartitionReassignments(
                    ListPartitionReassignmentsResponse::default()
                        .with_error_code(CLUSTER_DENIED)
                        .with_error_message(None),
                )
            },
        ),
        RequestKind::OffsetForLeaderEpoch(r) => offset_for_leader_epoch(&a, r),
        RequestKind::WriteTxnMarkers(r) => {
            let markers = r.markers.clone();
            cluster_whole(&a, ClusterAction, RequestKind::WriteTxnMarkers(r), || {
                ResponseKind::WriteTxnMarkers(WriteTxnMarkersResponse::default().with_markers(
                    markers
                        .into_iter()
                        .map(|m| {
                            write_txn_markers_response::WritableTxnMarkerResult::default()
                                .with_producer_id(m.producer_id)
                                .with_topics(
                                    m.topics
                                        .into_iter()
                                        .map(|t| {
                                            write_txn_markers_response::WritableTxnMarkerTopicResult::default()
                                                .with_name(t.name)
                                                .with_partitions(
                                                    t.partition_indexes
                                                        .into_iter()
                                                        .map(|p| {
                                                            write_txn_markers_response::WritableTxnMarkerPartitionResult::default()
                                                                .with_partition_index(p)
                                                                .with_error_code(CLUSTER_DENIED)
                                                        })
                                                        .collect(),
                                                )
                                        })
                                        .collect(),
                                )
                        })
                        .collect(),
                ))
            })
        }
        // An API added to the handler table without a rule here: only a principal allowed
        // to alter the cluster may use it (`every_api_of_the_table_has_a_rule` flags it).
        other => {
            if a.cluster(Alter) {
                Checked::Pass(other)
            } else {
                Checked::Close
            }
        }
    }
}

/// The APIs [`check`] has a rule for.
#[cfg(test)]
pub(crate) const APIS_WITH_RULES: &[ApiKey] = &[
    ApiKey::ApiVersions,
    ApiKey::SaslHandshake,
    ApiKey::SaslAuthenticate,
    ApiKey::Produce,
    ApiKey::Fetch,
    ApiKey::ListOffsets,
    ApiKey::Metadata,
    ApiKey::DescribeTopicPartitions,
    ApiKey::OffsetCommit,
    ApiKey::OffsetFetch,
    ApiKey::FindCoordinator,
    ApiKey::JoinGroup,
    ApiKey::SyncGroup,
    ApiKey::Heartbeat,
    ApiKey::LeaveGroup,
    ApiKey::DescribeGroups,
    ApiKey::ListGroups,
    ApiKey::DeleteGroups,
    ApiKey::OffsetDelete,
    ApiKey::CreateTopics,
    ApiKey::DeleteTopics,
    ApiKey::DeleteRecords,
    ApiKey::CreatePartitions,
    ApiKey::DescribeConfigs,
    ApiKey::AlterConfigs,
    ApiKey::IncrementalAlterConfigs,
    ApiKey::InitProducerId,
    ApiKey::AddPartitionsToTxn,
    ApiKey::AddOffsetsToTxn,
    ApiKey::EndTxn,
    ApiKey::TxnOffsetCommit,
    ApiKey::DescribeProducers,
    ApiKey::DescribeTransactions,
    ApiKey::ListTransactions,
    ApiKey::DescribeCluster,
    ApiKey::DescribeLogDirs,
    ApiKey::DescribeAcls,
    ApiKey::CreateAcls,
    ApiKey::DeleteAcls,
    ApiKey::DescribeUserScramCredentials,
    ApiKey::AlterUserScramCredentials,
    ApiKey::DescribeClientQuotas,
    ApiKey::AlterClientQuotas,
    ApiKey::ElectLeaders,
    ApiKey::UnregisterBroker,
    ApiKey::AlterPartitionReassignments,
    ApiKey::ListPartitionReassignments,
    ApiKey::OffsetForLeaderEpoch,
    ApiKey::WriteTxnMarkers,
];

/// A request on one group needing `op` on it.
fn group_whole(
    a: &Access,
    group: &str,
    op: AclOperation,
    request: RequestKind,
    denied: impl FnOnce() -> ResponseKind,
) -> Checked {
    if a.group(op, group) {
        Checked::Pass(request)
    } else {
        Checked::Deny(denied())
    }
}

/// A request needing `op` on the cluster.
fn cluster_whole(
    a: &Access,
    op: AclOperation,
    request: RequestKind,
    denied: impl FnOnce() -> ResponseKind,
) -> Checked {
    if a.cluster(op) {
        Checked::Pass(request)
    } else {
        Checked::Deny(denied())
    }
}

/// `Pass` when nothing was taken out, else `Filter` with `post`.
fn filtered(nothing_denied: bool, request: RequestKind, post: Post) -> Checked {
    if nothing_denied {
        Checked::Pass(request)
    } else {
        Checked::Filter(request, post)
    }
}

fn produce(a: &Access, mut r: ProduceRequest) -> Checked {
    use produce_response::{PartitionProduceResponse, TopicProduceResponse};
    let partition_error = |index: i32, code: i16| {
        PartitionProduceResponse::default()
            .with_index(index)
            .with_error_code(code)
            .with_base_offset(-1)
            .with_log_append_time_ms(-1)
            .with_log_start_offset(-1)
    };
    let answer = |t: &produce_request::TopicProduceData, code: i16| {
        TopicProduceResponse::default()
            .with_name(t.name.clone())
            .with_topic_id(t.topic_id)
            .with_partition_responses(
                t.partition_data
                    .iter()
                    .map(|p| partition_error(p.index, code))
                    .collect(),
            )
    };
    if let Some(txn) = &r.transactional_id
        && !a.txn(AclOperation::Write, txn)
    {
        return Checked::Deny(ResponseKind::Produce(
            ProduceResponse::default()
                .with_responses(r.topic_data.iter().map(|t| answer(t, TXN_DENIED)).collect()),
        ));
    }
    let mut denied = Vec::new();
    r.topic_data.retain(|t| {
        let Some(name) = a.topic_name(&t.name, t.topic_id) else {
            return true; // an unknown topic id: the handler answers UNKNOWN_TOPIC_ID
        };
        let code = if !a.topic(AclOperation::Write, &name) {
            Some(TOPIC_DENIED)
        } else if a.image.topic(&name).is_none() && !a.can_create_topic(&name) {
            Some(UNKNOWN_TOPIC_OR_PARTITION)
        } else {
            None
        };
        match code {
            Some(code) => {
                denied.push(answer(t, code));
                false
            }
            None => true,
        }
    });
    let none = denied.is_empty();
    filtered(
        none,
        RequestKind::Produce(r),
        Box::new(move |resp| match resp {
            ResponseKind::Produce(mut p) => {
                p.responses.extend(denied);
                ResponseKind::Produce(p)
            }
            other => other,
        }),
    )
}

fn fetch(a: &Access, mut r: FetchRequest) -> Checked {
    use fetch_response::{FetchableTopicResponse, PartitionData};
    let mut denied = Vec::new();
    r.topics.retain(|t| {
        let allowed = a
            .topic_name(&t.topic, t.topic_id)
            .is_none_or(|name| a.topic(AclOperation::Read, &name));
        if !allowed {
            denied.push(
                FetchableTopicResponse::default()
                    .with_topic(t.topic.clone())
                    .with_topic_id(t.topic_id)
                    .with_partitions(
                        t.partitions
                            .iter()
                            .map(|p| {
                                PartitionData::default()
                                    .with_partition_index(p.partition)
                                    .with_error_code(TOPIC_DENIED)
                                    .with_high_watermark(-1)
                                    .with_last_stable_offset(-1)
                                    .with_log_start_offset(-1)
                                    .with_preferred_read_replica(BrokerId(-1))
                            })
                            .collect(),
                    ),
            );
        }
        allowed
    });
    let none = denied.is_empty();
    filtered(
        none,
        RequestKind::Fetch(r),
        Box::new(move |resp| match resp {
            ResponseKind::Fetch(mut f) => {
                f.responses.extend(denied);
                ResponseKind::Fetch(f)
            }
            other => other,
        }),
    )
}

fn list_offsets(a: &Access, mut r: ListOffsetsRequest) -> Checked {
    use list_offsets_response::{ListOffsetsPartitionResponse, ListOffsetsTopicResponse};
    let mut denied = Vec::new();
    r.topics.retain(|t| {
        let allowed = a.topic(AclOperation::Describe, &t.name);
        if !allowed {
            denied.push(
                ListOffsetsTopicResponse::default()
                    .with_name(t.name.clone())
                    .with_partitions(
                        t.partitions
                            .iter()
                            .map(|p| {
                                ListOffsetsPartitionResponse::default()
                                    .with_partition_index(p.partition_index)
                                    .with_error_code(TOPIC_DENIED)
                                    .with_timestamp(-1)
                                    .with_offset(-1)
                                    .with_leader_epoch(-1)
                            })
                            .collect(),
                    ),
            );
        }
        allowed
    });
    let none = denied.is_empty();
    filtered(
        none,
        RequestKind::ListOffsets(r),
        Box::new(move |resp| match resp {
            ResponseKind::ListOffsets(mut l) => {
                l.topics.extend(denied);
                ResponseKind::ListOffsets(l)
            }
            other => other,
        }),
    )
}

/// Metadata: every topic answered hides those without DESCRIBE; a named topic without
/// DESCRIBE (or missing, when auto-creating it needs a CREATE the principal lacks) gets 29
/// whether it exists or not; authorized operations per principal.
fn metadata(a: &Access, mut r: MetadataRequest, version: i16, auto_create: bool) -> Checked {
    use metadata_response::MetadataResponseTopic;
    let auto_creating = auto_create && (version < 4 || r.allow_auto_topic_creation);
    let mut denied: Vec<TopicName> = Vec::new();
    let named = match r.topics.as_mut() {
        Some(list) if !(list.is_empty() && version == 0) => {
            list.retain(|t| {
                let Some(name) = t.name.as_ref() else {
                    return true; // by id: ids are not secret, their names are checked below
                };
                let exists = a.image.topic(name).is_some();
                let ok = a.topic(AclOperation::Describe, name)
                    && (exists || !auto_creating || a.can_create_topic(name));
                if !ok {
                    denied.push(name.clone());
                }
                ok
            });
            true
        }
        _ => false,
    };
    // v0 reads an empty list as "every topic": keep asking for nothing.
    if version == 0 && named && r.topics.as_ref().is_some_and(Vec::is_empty) {
        r.topics = Some(vec![
            metadata_request::MetadataRequestTopic::default().with_name(Some(TopicName(text("")))),
        ]);
    }
    let include_topic_ops = version >= 8 && r.include_topic_authorized_operations;
    let include_cluster_ops =
        (8..=10).contains(&version) && r.include_cluster_authorized_operations;
    let cluster_ops = a.ops(ResourceType::Cluster, CLUSTER_NAME);
    let a = Access {
        data: a.data.clone(),
        principal: a.principal.clone(),
        host: a.host,
        image: a.image.clone(),
    };
    let post: Post = Box::new(move |resp| match resp {
        ResponseKind::Metadata(mut m) => {
            m.topics.retain(|t| {
                let Some(name) = t.name.as_ref() else {
                    return true;
                };
                if named && version == 0 && name.is_empty() {
                    return false;
                }
                named || a.topic(AclOperation::Describe, name)
            });
            for t in &mut m.topics {
                let Some(name) = t.name.as_ref() else {
                    continue;
                };
                if !a.topic(AclOperation::Describe, name) {
                    // Asked by id: the id was known, the name is not the principal's.
                    *t = MetadataResponseTopic::default()
                        .with_name(None)
                        .with_topic_id(t.topic_id)
                        .with_error_code(TOPIC_DENIED);
                } else if include_topic_ops {
                    t.topic_authorized_operations = a.ops(ResourceType::Topic, name);
                }
            }
            m.topics.extend(denied.into_iter().map(|name| {
                MetadataResponseTopic::default()
                    .with_name(Some(name))
                    .with_error_code(TOPIC_DENIED)
                    .with_topic_authorized_operations(if include_topic_ops { 0 } else { i32::MIN })
            }));
            if include_cluster_ops {
                m.cluster_authorized_operations = cluster_ops;
            }
            ResponseKind::Metadata(m)
        }
        other => other,
    });
    Checked::Filter(RequestKind::Metadata(r), post)
}

/// DescribeTopicPartitions (KIP-966): like Metadata, topics without DESCRIBE are hidden
/// when all are listed and answered 29 when named.
fn describe_topic_partitions(a: Access, mut r: DescribeTopicPartitionsRequest) -> Checked {
    use describe_topic_partitions_response::DescribeTopicPartitionsResponseTopic;
    let mut denied = Vec::new();
    r.topics.retain(|t| {
        let ok = a.topic(AclOperation::Describe, &t.name);
        if !ok {
            denied.push(
                DescribeTopicPartitionsResponseTopic::default()
                    .with_name(Some(t.name.clone()))
                    .with_error_code(TOPIC_DENIED)
                    .with_topic_authorized_operations(i32::MIN),
            );
        }
        ok
    });
    let all = r.topics.is_empty() && denied.is_empty();
    if all || !denied.is_empty() {
        if !all && r.topics.is_empty() {
            // Asked only for denied topics: answer without listing every topic.
            return Checked::Deny(ResponseKind::DescribeTopicPartitions(
                DescribeTopicPartitionsResponse::default().with_topics(denied),
            ));
        }
        return Checked::Filter(
            RequestKind::DescribeTopicPartitions(r),
            Box::new(move |resp| match resp {
                ResponseKind::DescribeTopicPartitions(mut d) => {
                    d.topics.retain(|t| {
                        t.name
                            .as_ref()
                            .is_none_or(|n| a.topic(AclOperation::Describe, n))
                    });
                    d.topics.extend(denied);
                    ResponseKind::DescribeTopicPartitions(d)
                }
                other => other,
            }),
        );
    }
    Checked::Pass(RequestKind::DescribeTopicPartitions(r))
}

fn offset_commit(a: &Access, mut r: OffsetCommitRequest) -> Checked {
    use offset_commit_response::{OffsetCommitResponsePartition, OffsetCommitResponseTopic};
    let answer = |t: &offset_commit_request::OffsetCommitRequestTopic, code: i16| {
        OffsetCommitResponseTopic::default()
            .with_name(t.name.clone())
            .with_topic_id(t.topic_id)
            .with_partitions(
                t.partitions
                    .iter()
                    .map(|p| {
                        OffsetCommitResponsePartition::default()
                            .with_partition_index(p.partition_index)
                            .with_error_code(code)
                    })
                    .collect(),
            )
    };
    if !a.group(AclOperation::Read, &r.group_id) {
        return Checked::Deny(ResponseKind::OffsetCommit(
            OffsetCommitResponse::default()
                .with_topics(r.topics.iter().map(|t| answer(t, GROUP_DENIED)).collect()),
        ));
    }
    let mut denied = Vec::new();
    r.topics.retain(|t| {
        let allowed = a
            .topic_name(&t.name, t.topic_id)
            .is_none_or(|name| a.topic(AclOperation::Read, &name));
        if !allowed {
            denied.push(answer(t, TOPIC_DENIED));
        }
        allowed
    });
    let none = denied.is_empty();
    filtered(
        none,
        RequestKind::OffsetCommit(r),
        Box::new(move |resp| match resp {
            ResponseKind::OffsetCommit(mut c) => {
                c.topics.extend(denied);
                ResponseKind::OffsetCommit(c)
            }
            other => other,
        }),
    )
}

/// OffsetFetch: DESCRIBE on the group; the offsets of topics without DESCRIBE are
/// answered 29 when asked for by name and left out when all were asked for.
fn offset_fetch(a: &Access, r: OffsetFetchRequest, version: i16) -> Checked {
    use AclOperation::Describe;
    if version < 8 && !a.group(Describe, &r.group_id) {
        let mut response = OffsetFetchResponse::default();
        if version >= 2 {
            response = response.with_error_code(GROUP_DENIED);
        } else {
            response = response.with_topics(
                r.topics
                    .iter()
                    .flatten()
                    .map(|t| {
                        offset_fetch_response::OffsetFetchResponseTopic::default()
                            .with_name(t.name.clone())
                            .with_partitions(
                                t.partition_indexes
                                    .iter()
                                    .map(|&p| {
                                        offset_fetch_response::OffsetFetchResponsePartition::default()
                                            .with_partition_index(p)
                                            .with_committed_offset(-1)
                                            .with_error_code(GROUP_DENIED)
                                    })
                                    .collect(),
                            )
                    })
                    .collect(),
            );
        }
        return Checked::Deny(ResponseKind::OffsetFetch(response));
    }
    let all_topics = r.topics.is_none();
    let groups_all: Vec<(String, bool)> = r
        .groups
        .iter()
        .map(|g| (g.group_id.to_string(), g.topics.is_none()))
        .collect();
    let a = Access {
        data: a.data.clone(),
        principal: a.principal.clone(),
        host: a.host,
        image: a.image.clone(),
    };
    let post: Post = Box::new(move |resp| match resp {
        ResponseKind::OffsetFetch(mut f) => {
            if all_topics {
                f.topics.retain(|t| a.topic(Describe, &t.name));
            }
            for t in &mut f.topics {
                if !a.topic(Describe, &t.name) {
                    for p in &mut t.partitions {
                        p.committed_offset = -1;
                        p.metadata = None;
                        p.error_code = TOPIC_DENIED;
                    }
                }
            }
            for g in &mut f.groups {
                if !a.group(Describe, &g.group_id) {
                    g.topics.clear();
                    g.error_code = GROUP_DENIED;
                    continue;
                }
                let all = groups_all
                    .iter()
                    .any(|(id, all)| *all && id.as_str() == g.group_id.as_str());
                if all {
                    g.topics.retain(|t| a.topic(Describe, &t.name));
                }
                for t in &mut g.topics {
                    if !a.topic(Describe, &t.name) {
                        for p in &mut t.partitions {
                            p.committed_offset = -1;
                            p.metadata = None;
                            p.error_code = TOPIC_DENIED;
                        }
                    }
                }
            }
            ResponseKind::OffsetFetch(f)
        }
        other => other,
    });
    Checked::Filter(RequestKind::OffsetFetch(r), post)
}

fn find_coordinator(a: &Access, mut r: FindCoordinatorRequest, version: i16) -> Checked {
    let (kind, code) = match r.key_type {
        1 => (ResourceType::TransactionalId, TXN_DENIED),
        _ => (ResourceType::Group, GROUP_DENIED),
    };
    let allowed = |key: &str| a.allows(AclOperation::Describe, kind, key);
    if version < 4 {
        if allowed(&r.key) {
            return Checked::Pass(RequestKind::FindCoordinator(r));
        }
        let response = FindCoordinatorResponse::default()
            .with_error_code(code)
            .with_node_id(BrokerId(-1))
            .with_port(-1);
        let response = if version >= 1 {
            response.with_error_message(Some(text("Authorization failed.")))
        } else {
            response
        };
        return Checked::Deny(ResponseKind::FindCoordinator(response));
    }
    let mut denied = Vec::new();
    r.coordinator_keys.retain(|k| {
        let ok = allowed(k);
        if !ok {
            denied.push(
                find_coordinator_response::Coordinator::default()
                    .with_key(k.clone())
                    .with_node_id(BrokerId(-1))
                    .with_port(-1)
                    .with_error_code(code)
                    .with_error_message(Some(text("Authorization failed."))),
            );
        }
        ok
    });
    let none = denied.is_empty();
    filtered(
        none,
        RequestKind::FindCoordinator(r),
        Box::new(move |resp| match resp {
            ResponseKind::FindCoordinator(mut f) => {
                f.coordinators.extend(denied);
                ResponseKind::FindCoordinator(f)
            }
            other => other,
        }),
    )
}

fn describe_groups(a: &Access, mut r: DescribeGroupsRequest) -> Checked {
    let mut denied = Vec::new();
    r.groups.retain(|g| {
        let ok = a.group(AclOperation::Describe, g);
        if !ok {
            denied.push(
                describe_groups_response::DescribedGroup::default()
                    .with_group_id(g.clone())
                    .with_error_code(GROUP_DENIED)
                    .with_authorized_operations(i32::MIN),
            );
        }
        ok
    });
    let include_ops = r.include_authorized_operations;
    let a = Access {
        data: a.data.clone(),
        principal: a.principal.clone(),
        host: a.host,
        image: a.image.clone(),
    };
    let post: Post = Box::new(move |resp| match resp {
        ResponseKind::DescribeGroups(mut d) => {
            if include_ops {
                for g in &mut d.groups {
                    g.authorized_operations = a.ops(ResourceType::Group, &g.group_id);
                }
            }
            d.groups.extend(denied);
            ResponseKind::DescribeGroups(d)
        }
        other => other,
    });
    Checked::Filter(RequestKind::DescribeGroups(r), post)
}

fn list_groups(a: &Access, r: ListGroupsRequest) -> Checked {
    if a.cluster(AclOperation::Describe) {
        return Checked::Pass(RequestKind::ListGroups(r));
    }
    let a = Access {
        data: a.data.clone(),
        principal: a.principal.clone(),
        host: a.host,
        image: a.image.clone(),
    };
    Checked::Filter(
        RequestKind::ListGroups(r),
        Box::new(move |resp| match resp {
            ResponseKind::ListGroups(mut l) => {
                l.groups
                    .retain(|g| a.group(AclOperation::Describe, &g.group_id));
                ResponseKind::ListGroups(l)
            }
            other => other,
        }),
    )
}

fn delete_groups(a: &Access, mut r: DeleteGroupsRequest) -> Checked {
    let mut denied = Vec::new();
    r.groups_names.retain(|g| {
        let ok = a.group(AclOperation::Delete, g);
        if !ok {
            denied.push(
                delete_groups_response::DeletableGroupResult::default()
                    .with_group_id(g.clone())
                    .with_error_code(GROUP_DENIED),
            );
        }
        ok
    });
    let none = denied.is_empty();
    filtered(
        none,
        RequestKind::DeleteGroups(r),
        Box::new(move |resp| match resp {
            ResponseKind::DeleteGroups(mut d) => {
                d.results.extend(denied);
                ResponseKind::DeleteGroups(d)
            }
            other => other,
        }),
    )
}

fn offset_delete(a: &Access, mut r: OffsetDeleteRequest) -> Checked {
    use offset_delete_response::{OffsetDeleteResponsePartition, OffsetDeleteResponseTopic};
    if !a.group(AclOperation::Delete, &r.group_id) {
        return Checked::Deny(ResponseKind::OffsetDelete(
            OffsetDeleteResponse::default().with_error_code(GROUP_DENIED),
        ));
    }
    let mut denied = Vec::new();
    r.topics.retain(|t| {
        let ok = a.topic(AclOperation::Read, &t.name);
        if !ok {
            denied.push(
                OffsetDeleteResponseTopic::default()
                    .with_name(t.name.clone())
                    .with_partitions(
                        t.partitions
                            .iter()
                            .map(|p| {
                                OffsetDeleteResponsePartition::default()
                                    .with_partition_index(p.partition_index)
                                    .with_error_code(TOPIC_DENIED)
                            })
                            .collect(),
                    ),
            );
        }
        ok
    });
    let none = denied.is_empty();
    filtered(
        none,
        RequestKind::OffsetDelete(r),
        Box::new(move |resp| match resp {
            ResponseKind::OffsetDelete(mut d) => {
                d.topics.extend(denied);
                ResponseKind::OffsetDelete(d)
            }
            other => other,
        }),
    )
}

fn create_topics(a: &Access, mut r: CreateTopicsRequest) -> Checked {
    if a.cluster(AclOperation::Create) {
        return Checked::Pass(RequestKind::CreateTopics(r));
    }
    let mut denied = Vec::new();
    r.topics.retain(|t| {
        let ok = a.topic(AclOperation::Create, &t.name);
        if !ok {
            denied.push(
                create_topics_response::CreatableTopicResult::default()
                    .with_name(t.name.clone())
                    .with_error_code(TOPIC_DENIED)
                    .with_error_message(Some(text("Authorization failed.")))
                    .with_num_partitions(-1)
                    .with_replication_factor(-1)
                    .with_topic_config_error_code(TOPIC_DENIED),
            );
        }
        ok
    });
    let none = denied.is_empty();
    filtered(
        none,
        RequestKind::CreateTopics(r),
        Box::new(move |resp| match resp {
            ResponseKind::CreateTopics(mut c) => {
                c.topics.extend(denied);
                ResponseKind::CreateTopics(c)
            }
            other => other,
        }),
    )
}

fn delete_topics(a: &Access, mut r: DeleteTopicsRequest) -> Checked {
    use delete_topics_response::DeletableTopicResult;
    let mut denied = Vec::new();
    let deny = |name: &TopicName, id: Uuid| {
        DeletableTopicResult::default()
            .with_name(Some(name.clone()))
            .with_topic_id(id)
            .with_error_code(TOPIC_DENIED)
            .with_error_message(Some(text("Authorization failed.")))
    };
    r.topic_names.retain(|name| {
        let ok = a.topic(AclOperation::Delete, name);
        if !ok {
            denied.push(deny(name, Uuid::nil()));
        }
        ok
    });
    r.topics.retain(|t| {
        let name = match &t.name {
            Some(n) if !n.is_empty() => Some(n.to_string()),
            _ => a.image.topic_by_id(&t.topic_id).map(|t| t.name.clone()),
        };
        let ok = name
            .as_ref()
            .is_none_or(|n| a.topic(AclOperation::Delete, n));
        if !ok {
            let name = TopicName(text(name.as_deref().unwrap_or_default()));
            denied.push(deny(&name, t.topic_id));
        }
        ok
    });
    let none = denied.is_empty();
    filtered(
        none,
        RequestKind::DeleteTopics(r),
        Box::new(move |resp| match resp {
            ResponseKind::DeleteTopics(mut d) => {
                d.responses.extend(denied);
                ResponseKind::DeleteTopics(d)
            }
            other => other,
        }),
    )
}

fn delete_records(a: &Access, mut r: DeleteRecordsRequest) -> Checked {
    use delete_records_response::{DeleteRecordsPartitionResult, DeleteRecordsTopicResult};
    let mut denied = Vec::new();
    r.topics.retain(|t| {
        let ok = a.topic(AclOperation::Delete, &t.name);
        if !ok {
            denied.push(
                DeleteRecordsTopicResult::default()
                    .with_name(t.name.clone())
                    .with_partitions(
                        t.partitions
                            .iter()
                            .map(|p| {
                                DeleteRecordsPartitionResult::default()
                                    .with_partition_index(p.partition_index)
                                    .with_low_watermark(-1)
                                    .with_error_code(TOPIC_DENIED)
                            })
                            .collect(),
                    ),
            );
        }
        ok
    });
    let none = denied.is_empty();
    filtered(
        none,
        RequestKind::DeleteRecords(r),
        Box::new(move |resp| match resp {
            ResponseKind::DeleteRecords(mut d) => {
                d.topics.extend(denied);
                ResponseKind::DeleteRecords(d)
            }
            other => other,
        }),
    )
}

fn create_partitions(a: &Access, mut r: CreatePartitionsRequest) -> Checked {
    let mut denied = Vec::new();
    r.topics.retain(|t| {
        let ok = a.topic(AclOperation::Alter, &t.name);
        if !ok {
            denied.push(
                create_partitions_response::CreatePartitionsTopicResult::default()
                    .with_name(t.name.clone())
                    .with_error_code(TOPIC_DENIED)
                    .with_error_message(Some(text("Authorization failed."))),
            );
        }
        ok
    });
    let none = denied.is_empty();
    filtered(
        none,
        RequestKind::CreatePartitions(r),
        Box::new(move |resp| match resp {
            ResponseKind::CreatePartitions(mut c) => {
                c.results.extend(denied);
                ResponseKind::CreatePartitions(c)
            }
            other => other,
        }),
    )
}

/// The error for a config resource without `op`: 29 for topics, 31 for the broker.
fn config_denial(a: &Access, op: AclOperation, resource_type: i8, name: &str) -> Option<i16> {
    const TOPIC: i8 = 2;
    if resource_type == TOPIC {
        (!a.topic(op, name)).then_some(TOPIC_DENIED)
    } else {
        (!a.cluster(op)).then_some(CLUSTER_DENIED)
    }
}

fn describe_configs(a: &Access, mut r: DescribeConfigsRequest) -> Checked {
    let mut denied = Vec::new();
    r.resources.retain(|res| {
        match config_denial(
            a,
            AclOperation::DescribeConfigs,
            res.resource_type,
            &res.resource_name,
        ) {
            Some(code) => {
                denied.push(
                    describe_configs_response::DescribeConfigsResult::default()
                        .with_error_code(code)
                        .with_error_message(Some(text("Authorization failed.")))
                        .with_resource_type(res.resource_type)
                        .with_resource_name(res.resource_name.clone()),
                );
                false
            }
            None => true,
        }
    });
    let none = denied.is_empty();
    filtered(
        none,
        RequestKind::DescribeConfigs(r),
        Box::new(move |resp| match resp {
            ResponseKind::DescribeConfigs(mut d) => {
                d.results.extend(denied);
                ResponseKind::DescribeConfigs(d)
            }
            other => other,
        }),
    )
}

fn alter_configs(a: &Access, mut r: AlterConfigsRequest) -> Checked {
    let mut denied = Vec::new();
    r.resources.retain(|res| {
        match config_denial(
            a,
            AclOperation::AlterConfigs,
            res.resource_type,
            &res.resource_name,
        ) {
            Some(code) => {
                denied.push(
                    alter_configs_response::AlterConfigsResourceResponse::default()
                        .with_error_code(code)
                        .with_error_message(Some(text("Authorization failed.")))
                        .with_resource_type(res.resource_type)
                        .with_resource_name(res.resource_name.clone()),
                );
                false
            }
            None => true,
        }
    });
    let none = denied.is_empty();
    filtered(
        none,
        RequestKind::AlterConfigs(r),
        Box::new(move |resp| match resp {
            ResponseKind::AlterConfigs(mut d) => {
                d.responses.extend(denied);
                ResponseKind::AlterConfigs(d)
            }
            other => other,
        }),
    )
}

fn incremental_alter_configs(a: &Access, mut r: IncrementalAlterConfigsRequest) -> Checked {
    let mut denied = Vec::new();
    r.resources.retain(|res| {
        match config_denial(
            a,
            AclOperation::AlterConfigs,
            res.resource_type,
            &res.resource_name,
        ) {
            Some(code) => {
                denied.push(
                    incremental_alter_configs_response::AlterConfigsResourceResponse::default()
                        .with_error_code(code)
                        .with_error_message(Some(text("Authorization failed.")))
                        .with_resource_type(res.resource_type)
                        .with_resource_name(res.resource_name.clone()),
                );
                false
            }
            None => true,
        }
    });
    let none = denied.is_empty();
    filtered(
        none,
        RequestKind::IncrementalAlterConfigs(r),
        Box::new(move |resp| match resp {
            ResponseKind::IncrementalAlterConfigs(mut d) => {
                d.responses.extend(denied);
                ResponseKind::IncrementalAlterConfigs(d)
            }
            other => other,
        }),
    )
}

/// InitProducerId: WRITE on the transactional id; without one, IDEMPOTENT_WRITE on the
/// cluster or WRITE on some topic (KIP-679).
fn init_producer_id(a: &Access, r: InitProducerIdRequest) -> Checked {
    let (allowed, code) = match &r.transactional_id {
        Some(id) => (a.txn(AclOperation::Write, id), TXN_DENIED),
        None => (
            a.cluster(AclOperation::IdempotentWrite)
                || a.data.authorize_by_resource_type(
                    &a.principal,
                    a.host,
                    AclOperation::Write,
                    ResourceType::Topic,
                ),
            CLUSTER_DENIED,
        ),
    };
    if allowed {
        Checked::Pass(RequestKind::InitProducerId(r))
    } else {
        Checked::Deny(ResponseKind::InitProducerId(
            InitProducerIdResponse::default()
                .with_error_code(code)
                .with_producer_id(ProducerId(-1))
                .with_producer_epoch(-1),
        ))
    }
}

fn add_partitions_to_txn(a: &Access, r: AddPartitionsToTxnRequest, version: i16) -> Checked {
    use add_partitions_to_txn_response::{
        AddPartitionsToTxnPartitionResult, AddPartitionsToTxnTopicResult,
    };
    if version >= 4 {
        // Batched (and verify-only) requests come from brokers.
        return cluster_whole(
            a,
            AclOperation::ClusterAction,
            RequestKind::AddPartitionsToTxn(r),
            || {
                ResponseKind::AddPartitionsToTxn(
                    AddPartitionsToTxnResponse::default().with_error_code(CLUSTER_DENIED),
                )
            },
        );
    }
    let txn_ok = a.txn(AclOperation::Write, &r.v3_and_below_transactional_id);
    let topic_ok: Vec<bool> = r
        .v3_and_below_topics
        .iter()
        .map(|t| a.topic(AclOperation::Write, &t.name))
        .collect();
    if txn_ok && topic_ok.iter().all(|ok| *ok) {
        return Checked::Pass(RequestKind::AddPartitionsToTxn(r));
    }
    let results = r
        .v3_and_below_topics
        .iter()
        .zip(topic_ok)
        .map(|(t, ok)| {
            let code = match (txn_ok, ok) {
                (false, _) => TXN_DENIED,
                (true, false) => TOPIC_DENIED,
                (true, true) => OPERATION_NOT_ATTEMPTED,
            };
            AddPartitionsToTxnTopicResult::default()
                .with_name(t.name.clone())
                .with_results_by_partition(
                    t.partitions
                        .iter()
                        .map(|&p| {
                            AddPartitionsToTxnPartitionResult::default()
                                .with_partition_index(p)
                                .with_partition_error_code(code)
                        })
                        .collect(),
                )
        })
        .collect();
    Checked::Deny(ResponseKind::AddPartitionsToTxn(
        AddPartitionsToTxnResponse::default().with_results_by_topic_v3_and_below(results),
    ))
}

fn add_offsets_to_txn(a: &Access, r: AddOffsetsToTxnRequest) -> Checked {
    let code = if !a.txn(AclOperation::Write, &r.transactional_id) {
        TXN_DENIED
    } else if !a.group(AclOperation::Read, &r.group_id) {
        GROUP_DENIED
    } else {
        return Checked::Pass(RequestKind::AddOffsetsToTxn(r));
    };
    Checked::Deny(ResponseKind::AddOffsetsToTxn(
        AddOffsetsToTxnResponse::default().with_error_code(code),
    ))
}

fn txn_offset_commit(a: &Access, mut r: TxnOffsetCommitRequest) -> Checked {
    use txn_offset_commit_response::{
        TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
    };
    let answer = |t: &txn_offset_commit_request::TxnOffsetCommitRequestTopic, code: i16| {
        TxnOffsetCommitResponseTopic::default()
            .with_name(t.name.clone())
            .with_partitions(
                t.partitions
                    .iter()
                    .map(|p| {
                        TxnOffsetCommitResponsePartition::default()
                            .with_partition_index(p.partition_index)
                            .with_error_code(code)
                    })
                    .collect(),
            )
    };
    let whole = if !a.txn(AclOperation::Write, &r.transactional_id) {
        Some(TXN_DENIED)
    } else if !a.group(AclOperation::Read, &r.group_id) {
        Some(GROUP_DENIED)
    } else {
        None
    };
    if let Some(code) = whole {
        return Checked::Deny(ResponseKind::TxnOffsetCommit(
            TxnOffsetCommitResponse::default()
                .with_topics(r.topics.iter().map(|t| answer(t, code)).collect()),
        ));
    }
    let mut denied = Vec::new();
    r.topics.retain(|t| {
        let ok = a.topic(AclOperation::Read, &t.name);
        if !ok {
            denied.push(answer(t, TOPIC_DENIED));
        }
        ok
    });
    let none = denied.is_empty();
    filtered(
        none,
        RequestKind::TxnOffsetCommit(r),
        Box::new(move |resp| match resp {
            ResponseKind::TxnOffsetCommit(mut c) => {
                c.topics.extend(denied);
                ResponseKind::TxnOffsetCommit(c)
            }
            other => other,
        }),
    )
}

fn describe_producers(a: &Access, mut r: DescribeProducersRequest) -> Checked {
    use describe_producers_response::{PartitionResponse, TopicResponse};
    let mut denied = Vec::new();
    r.topics.retain(|t| {
        let ok = a.topic(AclOperation::Read, &t.name);
        if !ok {
            denied.push(
                TopicResponse::default()
                    .with_name(t.name.clone())
                    .with_partitions(
                        t.partition_indexes
                            .iter()
                            .map(|&p| {
                                PartitionResponse::default()
                                    .with_partition_index(p)
                                    .with_error_code(TOPIC_DENIED)
                            })
                            .collect(),
                    ),
            );
        }
        ok
    });
    let none = denied.is_empty();
    filtered(
        none,
        RequestKind::DescribeProducers(r),
        Box::new(move |resp| match resp {
            ResponseKind::DescribeProducers(mut d) => {
                d.topics.extend(denied);
                ResponseKind::DescribeProducers(d)
            }
            other => other,
        }),
    )
}

fn describe_transactions(a: &Access, mut r: DescribeTransactionsRequest) -> Checked {
    let mut denied = Vec::new();
    r.transactional_ids.retain(|id| {
        let ok = a.txn(AclOperation::Describe, id);
        if !ok {
            denied.push(
                describe_transactions_response::TransactionState::default()
                    .with_transactional_id(id.clone())
                    .with_error_code(TXN_DENIED)
                    .with_producer_id(ProducerId(-1))
                    .with_producer_epoch(-1)
                    .with_transaction_start_time_ms(-1),
            );
        }
        ok
    });
    let none = denied.is_empty();
    filtered(
        none,
        RequestKind::DescribeTransactions(r),
        Box::new(move |resp| match resp {
            ResponseKind::DescribeTransactions(mut d) => {
                d.transaction_states.extend(denied);
                ResponseKind::DescribeTransactions(d)
            }
            other => other,
        }),
    )
}

fn describe_cluster(a: Access, r: DescribeClusterRequest) -> Checked {
    if !a.cluster(AclOperation::Describe) {
        return Checked::Deny(ResponseKind::DescribeCluster(
            DescribeClusterResponse::default()
                .with_error_code(CLUSTER_DENIED)
                .with_error_message(Some(text("Cluster authorization failed.")))
                .with_endpoint_type(1)
                .with_controller_id(BrokerId(-1))
                .with_cluster_authorized_operations(i32::MIN),
        ));
    }
    if !r.include_cluster_authorized_operations {
        return Checked::Pass(RequestKind::DescribeCluster(r));
    }
    let ops = a.ops(ResourceType::Cluster, CLUSTER_NAME);
    Checked::Filter(
        RequestKind::DescribeCluster(r),
        Box::new(move |resp| match resp {
            ResponseKind::DescribeCluster(mut d) => {
                if d.error_code == 0 {
                    d.cluster_authorized_operations = ops;
                }
                ResponseKind::DescribeCluster(d)
            }
            other => other,
        }),
    )
}

fn offset_for_leader_epoch(a: &Access, mut r: OffsetForLeaderEpochRequest) -> Checked {
    use offset_for_leader_epoch_response::{EpochEndOffset, OffsetForLeaderTopicResult};
    let answer = |t: &offset_for_leader_epoch_request::OffsetForLeaderTopic, code: i16| {
        OffsetForLeaderTopicResult::default()
            .with_topic(t.topic.clone())
            .with_partitions(
                t.partitions
                    .iter()
                    .map(|p| {
                        EpochEndOffset::default()
                            .with_partition(p.partition)
                            .with_error_code(code)
                            .with_leader_epoch(-1)
                            .with_end_offset(-1)
                    })
                    .collect(),
            )
    };
    if r.replica_id.0 >= 0 {
        if a.cluster(AclOperation::ClusterAction) {
            return Checked::Pass(RequestKind::OffsetForLeaderEpoch(r));
        }
        return Checked::Deny(ResponseKind::OffsetForLeaderEpoch(
            OffsetForLeaderEpochResponse::default()
                .with_topics(r.topics.iter().map(|t| answer(t, CLUSTER_DENIED)).collect()),
        ));
    }
    let mut denied = Vec::new();
    r.topics.retain(|t| {
        let ok = a.topic(AclOperation::Describe, &t.topic);
        if !ok {
            denied.push(answer(t, TOPIC_DENIED));
        }
        ok
    });
    let none = denied.is_empty();
    filtered(
        none,
        RequestKind::OffsetForLeaderEpoch(r),
        Box::new(move |resp| match resp {
            ResponseKind::OffsetForLeaderEpoch(mut o) => {
                o.topics.extend(denied);
                ResponseKind::OffsetForLeaderEpoch(o)
            }
            other => other,
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::router::HANDLERS;

    /// A new API in the handler table needs a decision here (without one, only principals
    /// allowed to alter the cluster may use it).
    #[test]
    fn every_api_of_the_table_has_a_rule() {
        for h in HANDLERS {
            assert!(
                APIS_WITH_RULES.contains(&h.api_key),
                "{:?} has no authorization rule",
                h.api_key
            );
        }
    }
}

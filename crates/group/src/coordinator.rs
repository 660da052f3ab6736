//! The public face of the crate: one method per group API, taking and
//! returning `kafka-protocol` messages.
//!
//! All group state lives behind one mutex. Handlers lock it, decide, and
//! unlock before waiting for anything (a parked JoinGroup/SyncGroup
//! response, or the log write behind an OffsetCommit), so the mutex is never
//! held across an `.await`.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::messages::{
    DeleteGroupsRequest, DeleteGroupsResponse, DescribeGroupsRequest, DescribeGroupsResponse,
    HeartbeatRequest, HeartbeatResponse, JoinGroupRequest, JoinGroupResponse, LeaveGroupRequest,
    LeaveGroupResponse, ListGroupsRequest, ListGroupsResponse, OffsetCommitRequest,
    OffsetCommitResponse, OffsetDeleteRequest, OffsetDeleteResponse, OffsetFetchRequest,
    OffsetFetchResponse, SyncGroupRequest, SyncGroupResponse, TxnOffsetCommitRequest,
    TxnOffsetCommitResponse,
};
use kafka_protocol::protocol::StrBytes;
use parking_lot::Mutex;
use tokio::sync::oneshot;

use crate::config::GroupConfig;
use crate::error::GroupError;
use crate::fetch::FetchedPartition;
use crate::group::Group;
use crate::join::{JoinParams, join_error};
use sluice_protocol::model::coordinator_partition_for;

use crate::log::GroupLog;
use crate::member::protocols_from_request;
use crate::reply::Reply;
use crate::scheduler::Scheduler;
use crate::sync::{SyncParams, sync_error};
use crate::{admin, commit, expiry, fetch, heartbeat, join, leave, load, sync, txn};

/// Everything behind the coordinator mutex.
pub(crate) struct State {
    pub config: GroupConfig,
    pub groups: HashMap<String, Group>,
    pub sched: Scheduler,
}

pub(crate) struct Inner {
    pub state: Mutex<State>,
}

/// Kafka's classic group coordinator (JoinGroup/SyncGroup/Heartbeat/
/// LeaveGroup, committed offsets, and the group admin APIs).
///
/// Cheap to clone; all clones share the same groups. Create it inside a tokio
/// runtime: timers and log writes run as tasks on it.
#[derive(Clone)]
pub struct GroupCoordinator {
    inner: Arc<Inner>,
}

type FetchTopics = Option<Vec<(String, Vec<i32>)>>;

impl GroupCoordinator {
    /// A coordinator without groups, writing to `log`.
    pub fn new(config: GroupConfig, log: Arc<dyn GroupLog>) -> Self {
        let inner = Arc::new_cyclic(|weak| {
            let sched = Scheduler::new(weak.clone(), log, config.initial_rebalance_delay_ms);
            Inner {
                state: Mutex::new(State {
                    config,
                    groups: HashMap::new(),
                    sched,
                }),
            }
        });
        Self { inner }
    }

    /// Replays records read back from `__consumer_offsets` (in log order) at
    /// startup. Undecodable records are skipped and reported in the error;
    /// everything else is applied either way.
    pub fn load(
        &self,
        records: impl IntoIterator<Item = (Bytes, Option<Bytes>)>,
    ) -> Result<(), GroupError> {
        load::load(&mut self.inner.state.lock(), records, None)
    }

    /// Startup replay of the records of one *transactional* batch of
    /// `producer_id` (TxnOffsetCommit), in log order with the `load` and
    /// [`Self::replay_marker`] calls: their offsets stay pending until the
    /// producer's marker is replayed (or the transaction completes later).
    pub fn load_transactional(
        &self,
        producer_id: i64,
        records: impl IntoIterator<Item = (Bytes, Option<Bytes>)>,
    ) -> Result<(), GroupError> {
        load::load(&mut self.inner.state.lock(), records, Some(producer_id))
    }

    /// Startup replay of a COMMIT (`commit`) or ABORT marker of
    /// `producer_id`: its pending offsets are committed or dropped, in every
    /// group. Correct when markers are replayed while no other
    /// `__consumer_offsets` partition holds pending offsets of the same
    /// producer; otherwise prefer [`Self::replay_marker_in_partition`].
    pub fn replay_marker(&self, producer_id: i64, commit: bool) {
        load::replay_marker(&mut self.inner.state.lock(), producer_id, commit, |_| true);
    }

    /// [`Self::replay_marker`] restricted to the groups of `__consumer_offsets`
    /// partition `partition` (of `partitions`), the partition the marker was
    /// read from — what Kafka does, as it loads each partition separately.
    pub fn replay_marker_in_partition(
        &self,
        partition: i32,
        partitions: i32,
        producer_id: i64,
        commit: bool,
    ) {
        load::replay_marker(
            &mut self.inner.state.lock(),
            producer_id,
            commit,
            |group_id| coordinator_partition_for(group_id, partitions) == partition,
        );
    }

    /// TxnOffsetCommit v0-5. Validated like Kafka (an unknown group becomes a
    /// simple group unless a generation is given; from v3 the member id,
    /// generation and group instance id are checked; metadata size per
    /// partition), then written through the log as a transactional batch of
    /// the producer and answered once durable. The offsets stay invisible to
    /// OffsetFetch until [`Self::complete_transaction`].
    pub async fn txn_offset_commit(
        &self,
        req: TxnOffsetCommitRequest,
        version: i16,
    ) -> TxnOffsetCommitResponse {
        let plan = txn::txn_commit(&mut self.inner.state.lock(), &req, version);
        let (partition_errors, request_error) = match plan {
            Err(e) => (None, Some(e)),
            Ok(plan) => {
                let write_error = match plan.written {
                    None => None,
                    Some(rx) => rx
                        .await
                        .unwrap_or(Err(ResponseError::CoordinatorNotAvailable))
                        .err(),
                };
                (Some(plan.partition_errors), write_error)
            }
        };
        txn::response(&req, partition_errors.as_deref(), request_error)
    }

    /// The broker durably wrote a COMMIT (`commit`) or ABORT marker of
    /// `producer_id` to `__consumer_offsets` partition `partition` (of
    /// `partitions`): the producer's pending offsets in the groups of that
    /// partition become committed (unless a plain OffsetCommit of the same
    /// partition was written after them) or are dropped.
    pub async fn complete_transaction(
        &self,
        partition: i32,
        partitions: i32,
        producer_id: i64,
        commit: bool,
    ) {
        self.replay_marker_in_partition(partition, partitions, producer_id, commit);
    }

    /// JoinGroup. The answer is held until the rebalance completes, exactly
    /// like Kafka parks the request in its join purgatory.
    pub async fn join_group(
        &self,
        req: JoinGroupRequest,
        version: i16,
        client_id: &str,
        client_host: &str,
    ) -> JoinGroupResponse {
        let member_id = req.member_id.as_str().to_owned();
        let response = if req.group_id.is_empty() {
            join_error(&member_id, ResponseError::InvalidGroupId)
        } else {
            let reply = {
                let mut state = self.inner.state.lock();
                let config = &state.config;
                if req.session_timeout_ms < config.min_session_timeout_ms
                    || req.session_timeout_ms > config.max_session_timeout_ms
                {
                    Reply::Now(join_error(&member_id, ResponseError::InvalidSessionTimeout))
                } else {
                    let params = JoinParams {
                        group_id: req.group_id.as_str().to_owned(),
                        member_id: member_id.clone(),
                        instance_id: req
                            .group_instance_id
                            .as_ref()
                            .map(|i| i.as_str().to_owned()),
                        client_id: client_id.to_owned(),
                        client_host: client_host.to_owned(),
                        session_timeout_ms: req.session_timeout_ms,
                        // Version 0 had no rebalance timeout: the session timeout served.
                        rebalance_timeout_ms: if version == 0 {
                            req.session_timeout_ms
                        } else {
                            req.rebalance_timeout_ms
                        },
                        protocol_type: req.protocol_type.as_str().to_owned(),
                        protocols: protocols_from_request(&req.protocols),
                        require_known_member_id: version >= 4,
                        supports_skip_assignment: version >= 9,
                    };
                    join::join(&mut state, params)
                }
            };
            reply
                .resolve(|| join_error(&member_id, ResponseError::CoordinatorNotAvailable))
                .await
        };
        shape_join_response(response, version)
    }

    /// SyncGroup. Followers wait until the leader's assignment is durable.
    pub async fn sync_group(&self, req: SyncGroupRequest, version: i16) -> SyncGroupResponse {
        if req.group_id.is_empty() {
            return sync_error(ResponseError::InvalidGroupId);
        }
        if version >= 5 && (req.protocol_type.is_none() || req.protocol_name.is_none()) {
            // Mandatory from version 5 on.
            return sync_error(ResponseError::InconsistentGroupProtocol);
        }
        let params = SyncParams {
            group_id: req.group_id.as_str().to_owned(),
            generation_id: req.generation_id,
            member_id: req.member_id.as_str().to_owned(),
            instance_id: req
                .group_instance_id
                .as_ref()
                .map(|i| i.as_str().to_owned()),
            protocol_type: req.protocol_type.as_ref().map(|p| p.as_str().to_owned()),
            protocol_name: req.protocol_name.as_ref().map(|p| p.as_str().to_owned()),
            assignments: req
                .assignments
                .iter()
                .map(|a| (a.member_id.as_str().to_owned(), a.assignment.clone()))
                .collect(),
        };
        let reply = sync::sync(&mut self.inner.state.lock(), params);
        reply
            .resolve(|| sync_error(ResponseError::CoordinatorNotAvailable))
            .await
    }

    /// Heartbeat.
    pub async fn heartbeat(&self, req: HeartbeatRequest, _version: i16) -> HeartbeatResponse {
        let result = if req.group_id.is_empty() {
            Err(ResponseError::InvalidGroupId)
        } else {
            heartbeat::heartbeat(
                &mut self.inner.state.lock(),
                req.group_id.as_str(),
                req.member_id.as_str(),
                req.group_instance_id.as_ref().map(|i| i.as_str()),
                req.generation_id,
            )
        };
        HeartbeatResponse::default().with_error_code(code(result))
    }

    /// LeaveGroup: v0-2 carry one member id, v3+ a batch with per-member errors.
    pub async fn leave_group(&self, req: LeaveGroupRequest, version: i16) -> LeaveGroupResponse {
        let members: Vec<MemberIdentity> = if version >= 3 {
            req.members.clone()
        } else {
            vec![MemberIdentity::default().with_member_id(req.member_id.clone())]
        };
        let result = if req.group_id.is_empty() {
            Err(ResponseError::InvalidGroupId)
        } else {
            leave::leave(
                &mut self.inner.state.lock(),
                req.group_id.as_str(),
                &members,
            )
        };
        match result {
            Err(e) => LeaveGroupResponse::default().with_error_code(e.code()),
            Ok(errors) if version < 3 => {
                let first = errors.into_iter().flatten().next();
                LeaveGroupResponse::default().with_error_code(first.map_or(0, |e| e.code()))
            }
            Ok(errors) => LeaveGroupResponse::default().with_members(
                members
                    .into_iter()
                    .zip(errors)
                    .map(|(m, e)| {
                        MemberResponse::default()
                            .with_member_id(m.member_id)
                            .with_group_instance_id(m.group_instance_id)
                            .with_error_code(e.map_or(0, |e| e.code()))
                    })
                    .collect(),
            ),
        }
    }

    /// OffsetCommit. Answered only once the offsets are durable.
    pub async fn offset_commit(
        &self,
        req: OffsetCommitRequest,
        version: i16,
    ) -> OffsetCommitResponse {
        let plan = commit::commit(&mut self.inner.state.lock(), &req, version);
        let (partition_errors, write_error) = match plan {
            Err(e) => (None, Some(e)),
            Ok(plan) => {
                let write_error = match plan.written {
                    None => None,
                    Some(rx) => rx
                        .await
                        .unwrap_or(Err(ResponseError::CoordinatorNotAvailable))
                        .err(),
                };
                (Some(plan.partition_errors), write_error)
            }
        };
        commit::response(&req, partition_errors.as_deref(), write_error)
    }

    /// OffsetFetch: v1-v7 for one group, v8+ for several. Unknown partitions
    /// read as offset -1. With `require_stable` (v7+) the answer waits for
    /// commits of the group that are still being written.
    pub async fn offset_fetch(&self, req: OffsetFetchRequest, version: i16) -> OffsetFetchResponse {
        if version >= 8 {
            let mut groups = Vec::with_capacity(req.groups.len());
            for group in &req.groups {
                let topics: FetchTopics = group.topics.as_ref().map(|ts| {
                    ts.iter()
                        .map(|t| (t.name.as_str().to_owned(), t.partition_indexes.clone()))
                        .collect()
                });
                let fetched = self
                    .fetch_group(group.group_id.as_str(), topics, req.require_stable)
                    .await;
                groups.push(fetch::group_response(group, fetched));
            }
            return OffsetFetchResponse::default().with_groups(groups);
        }
        let topics: FetchTopics = req.topics.as_ref().map(|ts| {
            ts.iter()
                .map(|t| (t.name.as_str().to_owned(), t.partition_indexes.clone()))
                .collect()
        });
        let require_stable = version >= 7 && req.require_stable;
        let fetched = self
            .fetch_group(req.group_id.as_str(), topics, require_stable)
            .await;
        OffsetFetchResponse::default().with_topics(fetch::single_group_topics(fetched))
    }

    async fn fetch_group(
        &self,
        group_id: &str,
        topics: FetchTopics,
        require_stable: bool,
    ) -> Vec<(String, Vec<FetchedPartition>)> {
        if !require_stable {
            return fetch::fetch(&self.inner.state.lock(), group_id, topics.as_deref(), false);
        }
        // Queue behind the group's in-flight writes and read once they applied.
        let (tx, rx) = oneshot::channel();
        {
            let mut state = self.inner.state.lock();
            let owned = group_id.to_owned();
            state.sched.write(
                group_id,
                Ok(Vec::new()),
                Box::new(move |state, _| {
                    let _ = tx.send(fetch::fetch(state, &owned, topics.as_deref(), true));
                }),
            );
        }
        rx.await.unwrap_or_default()
    }

    /// DescribeGroups.
    pub async fn describe_groups(
        &self,
        req: DescribeGroupsRequest,
        version: i16,
    ) -> DescribeGroupsResponse {
        let state = self.inner.state.lock();
        let groups = req
            .groups
            .iter()
            .map(|g| {
                admin::describe(
                    &state,
                    g.as_str(),
                    version,
                    req.include_authorized_operations,
                )
            })
            .collect();
        DescribeGroupsResponse::default().with_groups(groups)
    }

    /// ListGroups with the state filter (v4+) and type filter (v5+).
    pub async fn list_groups(&self, req: ListGroupsRequest, version: i16) -> ListGroupsResponse {
        let states: &[StrBytes] = if version >= 4 {
            &req.states_filter
        } else {
            &[]
        };
        let types: &[StrBytes] = if version >= 5 { &req.types_filter } else { &[] };
        let groups = admin::list(&self.inner.state.lock(), states, types);
        ListGroupsResponse::default().with_groups(groups)
    }

    /// DeleteGroups: only Empty groups; their offsets go with them.
    pub async fn delete_groups(
        &self,
        req: DeleteGroupsRequest,
        _version: i16,
    ) -> DeleteGroupsResponse {
        let replies: Vec<Reply<i16>> = {
            let mut state = self.inner.state.lock();
            req.groups_names
                .iter()
                .map(|g| admin::delete_group(&mut state, g.as_str()))
                .collect()
        };
        let mut results = Vec::with_capacity(replies.len());
        for (group_id, reply) in req.groups_names.iter().zip(replies) {
            let error_code = reply
                .resolve(|| ResponseError::CoordinatorNotAvailable.code())
                .await;
            results.push(
                DeletableGroupResult::default()
                    .with_group_id(group_id.clone())
                    .with_error_code(error_code),
            );
        }
        DeleteGroupsResponse::default().with_results(results)
    }

    /// OffsetDelete: deletes offsets of topics the group does not consume.
    pub async fn offset_delete(
        &self,
        req: OffsetDeleteRequest,
        _version: i16,
    ) -> OffsetDeleteResponse {
        if req.group_id.is_empty() {
            return OffsetDeleteResponse::default()
                .with_error_code(ResponseError::InvalidGroupId.code());
        }
        let topics: Vec<(String, Vec<i32>)> = req
            .topics
            .iter()
            .map(|t| {
                (
                    t.name.as_str().to_owned(),
                    t.partitions.iter().map(|p| p.partition_index).collect(),
                )
            })
            .collect();
        let plan =
            admin::delete_offsets(&mut self.inner.state.lock(), req.group_id.as_str(), &topics);
        let plan = match plan {
            Err(e) => return OffsetDeleteResponse::default().with_error_code(e.code()),
            Ok(plan) => plan,
        };
        if let Some(rx) = plan.written
            && let Err(e) = rx
                .await
                .unwrap_or(Err(ResponseError::CoordinatorNotAvailable))
        {
            return OffsetDeleteResponse::default().with_error_code(e.code());
        }
        let topics = req
            .topics
            .iter()
            .zip(plan.partition_errors)
            .map(|(topic, errors)| {
                OffsetDeleteResponseTopic::default()
                    .with_name(topic.name.clone())
                    .with_partitions(
                        topic
                            .partitions
                            .iter()
                            .zip(errors)
                            .map(|(p, e)| {
                                OffsetDeleteResponsePartition::default()
                                    .with_partition_index(p.partition_index)
                                    .with_error_code(e)
                            })
                            .collect(),
                    )
            })
            .collect();
        OffsetDeleteResponse::default().with_topics(topics)
    }

    /// Expires offsets past `offsets_retention_ms` (for Empty groups counted
    /// from when the group became Empty) and deletes Empty groups left
    /// without offsets. Kafka runs this every `offsets.retention.check.interval.ms`.
    pub async fn expire_offsets(&self, now_ms: i64) {
        let waits = expiry::expire(&mut self.inner.state.lock(), now_ms);
        for rx in waits {
            let _ = rx.await;
        }
    }

    /// A topic was deleted: its committed offsets are deleted in every group.
    pub async fn on_topic_deleted(&self, topic: &str) {
        let waits = expiry::topic_deleted(&mut self.inner.state.lock(), topic);
        for rx in waits {
            let _ = rx.await;
        }
    }
}

fn code(result: Result<(), ResponseError>) -> i16 {
    result.err().map_or(0, |e| e.code())
}

/// Adapts a JoinGroup answer to the request version: the protocol name only
/// became nullable in v7, and `skip_assignment` exists from v9.
fn shape_join_response(mut response: JoinGroupResponse, version: i16) -> JoinGroupResponse {
    if version < 7 && response.protocol_name.is_none() {
        response.protocol_name = Some(StrBytes::default());
    }
    if version < 9 {
        response.skip_assignment = false;
    }
    response
}

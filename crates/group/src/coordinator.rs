//! The public face of the crate: one method per group API, taking and
//! returning `kafka-protocol` messages, plus loading and unloading the
//! shards of `__consumer_offsets` partitions.
//!
//! Each request runs on the shard of its group, under the shard's lock: it
//! decides, queues the records to write, and unlocks before waiting for
//! anything (a parked JoinGroup/SyncGroup response, or the log write behind
//! an OffsetCommit), so a lock is never held across an `.await`. A group
//! whose shard is not loaded here is answered NOT_COORDINATOR, or
//! COORDINATOR_LOAD_IN_PROGRESS while it loads.

use std::collections::BTreeMap;
use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::describe_groups_response::DescribedGroup;
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
use sluice_coordinator::{
    CoordinatorError, CoordinatorShard, LogEntry, PartitionLoader, PartitionWriter, ShardCell,
    Shards,
};
use sluice_protocol::clock::{Clock, SystemClock};
use sluice_protocol::model::{LeaderEpoch, ProducerIdAndEpoch};
use tokio::sync::oneshot;

use crate::commit::CommitPlan;
use crate::config::GroupConfig;
use crate::fetch::FetchedPartition;
use crate::image::GroupImage;
use crate::join::{JoinParams, join_error};
use crate::member::protocols_from_request;
use crate::reply::Reply;
use crate::shard::GroupShard;
use crate::sync::{SyncParams, sync_error};
use crate::{admin, commit, expiry, fetch, heartbeat, join, leave, sync, txn};

struct Inner {
    config: GroupConfig,
    writer: Arc<dyn PartitionWriter>,
    clock: Arc<dyn Clock>,
    shards: Shards<GroupShard>,
}

/// Kafka's classic group coordinator (JoinGroup/SyncGroup/Heartbeat/
/// LeaveGroup, committed offsets, and the group admin APIs).
///
/// Cheap to clone; all clones share the same shards. Load shards inside a
/// tokio runtime: timers and log writes run as tasks on it.
#[derive(Clone)]
pub struct GroupCoordinator {
    inner: Arc<Inner>,
}

type FetchTopics = Option<Vec<(String, Vec<i32>)>>;

/// The answer to a request whose follow-up was dropped because its shard
/// was unloaded before the write completed: another node coordinates the
/// group now.
const SHARD_GONE: ResponseError = ResponseError::NotCoordinator;

/// The per-partition errors of an (offset or transactional offset) commit and its request
/// error: the refusal of the whole request, or the failed write, waited for.
async fn settle_commit(
    plan: Result<CommitPlan, ResponseError>,
) -> (
    Option<Vec<Vec<Option<ResponseError>>>>,
    Option<ResponseError>,
) {
    match plan {
        Err(e) => (None, Some(e)),
        Ok(plan) => {
            let write_error = match plan.written {
                None => None,
                Some(rx) => rx.await.unwrap_or(Err(SHARD_GONE)).err(),
            };
            (Some(plan.partition_errors), write_error)
        }
    }
}

impl GroupCoordinator {
    /// A coordinator without loaded partitions, writing to `writer`; groups
    /// hash over `config.offsets_partitions` partitions. Its timestamps come
    /// from the system clock.
    pub fn new(config: GroupConfig, writer: Arc<dyn PartitionWriter>) -> Self {
        Self::with_clock(config, writer, Arc::new(SystemClock))
    }

    /// Like [`Self::new`], telling the time by `clock`: commit and expiry
    /// timestamps, when groups changed state, and offset retention.
    pub fn with_clock(
        config: GroupConfig,
        writer: Arc<dyn PartitionWriter>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let shards = Shards::new(config.offsets_partitions);
        Self {
            inner: Arc::new(Inner {
                config,
                writer,
                clock,
                shards,
            }),
        }
    }

    /// The partition count of `__consumer_offsets` groups hash over.
    pub fn partition_count(&self) -> i32 {
        self.inner.shards.partition_count()
    }

    /// The `__consumer_offsets` partition of `group_id`.
    pub fn partition_for(&self, group_id: &str) -> i32 {
        self.inner.shards.partition_for(group_id)
    }

    /// Starts loading `partition`, led here at `epoch`: feed the loader the
    /// partition's log, then finish it. Until then its groups are answered
    /// COORDINATOR_LOAD_IN_PROGRESS. `None` when the partition is already
    /// loaded or loading.
    pub fn load(&self, partition: i32, epoch: LeaderEpoch) -> Option<impl PartitionLoader + use<>> {
        let inner = &self.inner;
        inner.shards.load(partition, epoch, |cell| {
            GroupShard::new(
                inner.config.clone(),
                cell,
                inner.writer.clone(),
                partition,
                inner.clock.clone(),
            )
        })
    }

    /// This node stopped leading `partition` (as of leader epoch `epoch`, or
    /// unconditionally with `None`): its groups get NOT_COORDINATOR and their
    /// parked requests are answered so. Returns whether it was loaded.
    pub fn unload(&self, partition: i32, epoch: Option<LeaderEpoch>) -> bool {
        self.inner.shards.unload(partition, epoch)
    }

    /// `__consumer_offsets` now has `partitions` partitions: every shard is
    /// unloaded and groups hash over the new count; load the partitions again.
    pub fn relayout(&self, partitions: i32) {
        self.inner.shards.relayout(partitions);
    }

    /// The durable state of every group of the loaded partitions, by group id.
    pub fn image(&self) -> BTreeMap<String, GroupImage> {
        let mut image = BTreeMap::new();
        for cell in self.inner.shards.cells() {
            if let Ok(shard) = cell.lock() {
                for (id, g) in &shard.groups {
                    image.insert(id.clone(), GroupImage::of(g));
                }
            }
        }
        image
    }

    /// Runs `op` on the shard of `group_id`, or says why it cannot.
    fn on_group<T>(
        &self,
        group_id: &str,
        op: impl FnOnce(&mut GroupShard) -> T,
    ) -> Result<T, ResponseError> {
        self.inner
            .shards
            .with_shard(group_id, |shard| op(shard))
            .map_err(CoordinatorError::response_error)
    }

    /// The active shards, for the operations that span every group; the
    /// error when one of them is still loading.
    fn active_shards(&self) -> Result<Vec<Arc<ShardCell<GroupShard>>>, ResponseError> {
        let cells = self.inner.shards.cells();
        for cell in &cells {
            if let Err(CoordinatorError::LoadInProgress) = cell.lock().map(|_| ()) {
                return Err(ResponseError::CoordinatorLoadInProgress);
            }
        }
        Ok(cells)
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
        let plan = self
            .on_group(req.group_id.as_str(), |shard| {
                txn::txn_commit(shard, &req, version)
            })
            .and_then(|plan| plan);
        let (partition_errors, request_error) = settle_commit(plan).await;
        txn::response(&req, partition_errors.as_deref(), request_error)
    }

    /// The broker durably wrote a COMMIT (`commit`) or ABORT marker of
    /// `producer` to `__consumer_offsets` partition `partition`: replayed,
    /// the producer's pending offsets in the groups of that partition become
    /// committed (unless a plain OffsetCommit of the same partition was
    /// written after them) or are dropped. Nothing happens if the partition
    /// is not loaded here.
    pub async fn complete_transaction(
        &self,
        partition: i32,
        producer: ProducerIdAndEpoch,
        commit: bool,
    ) {
        let marker = LogEntry::Marker { producer, commit };
        let replayed = self
            .inner
            .shards
            .cell(partition)
            .and_then(|cell| cell.lock().map(|mut shard| shard.replay(&marker)));
        match replayed {
            Ok(Ok(())) => {}
            Ok(Err(error)) => {
                tracing::error!(partition, %error, "transaction marker did not replay");
            }
            Err(error) => {
                tracing::warn!(partition, producer_id = producer.producer_id, %error, "transaction marker for a partition not coordinated here");
            }
        }
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
            let config = &self.inner.config;
            let reply = if req.session_timeout_ms < config.min_session_timeout_ms
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
                self.on_group(req.group_id.as_str(), |shard| join::join(shard, params))
                    .unwrap_or_else(|e| Reply::Now(join_error(&member_id, e)))
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
        let reply = self
            .on_group(req.group_id.as_str(), |shard| sync::sync(shard, params))
            .unwrap_or_else(|e| Reply::Now(sync_error(e)));
        reply
            .resolve(|| sync_error(ResponseError::CoordinatorNotAvailable))
            .await
    }

    /// Heartbeat.
    pub async fn heartbeat(&self, req: HeartbeatRequest, _version: i16) -> HeartbeatResponse {
        let result = if req.group_id.is_empty() {
            Err(ResponseError::InvalidGroupId)
        } else {
            self.on_group(req.group_id.as_str(), |shard| {
                heartbeat::heartbeat(
                    shard,
                    req.group_id.as_str(),
                    req.member_id.as_str(),
                    req.group_instance_id.as_ref().map(|i| i.as_str()),
                    req.generation_id,
                )
            })
            .and_then(|result| result)
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
            self.on_group(req.group_id.as_str(), |shard| {
                leave::leave(shard, req.group_id.as_str(), &members)
            })
            .and_then(|result| result)
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
        let plan = self
            .on_group(req.group_id.as_str(), |shard| {
                commit::commit(shard, &req, version)
            })
            .and_then(|plan| plan);
        let (partition_errors, write_error) = settle_commit(plan).await;
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
        match self
            .fetch_group(req.group_id.as_str(), topics, require_stable)
            .await
        {
            Ok(fetched) => {
                OffsetFetchResponse::default().with_topics(fetch::single_group_topics(fetched))
            }
            Err(e) => fetch::single_group_error(&req, version, e),
        }
    }

    async fn fetch_group(
        &self,
        group_id: &str,
        topics: FetchTopics,
        require_stable: bool,
    ) -> Result<Vec<(String, Vec<FetchedPartition>)>, ResponseError> {
        if !require_stable {
            return self.on_group(group_id, |shard| {
                fetch::fetch(shard, group_id, topics.as_deref(), false)
            });
        }
        // Queue behind the group's in-flight writes and read once they applied.
        let (tx, rx) = oneshot::channel();
        self.on_group(group_id, |shard| {
            let owned = group_id.to_owned();
            shard.sched.write(
                group_id,
                Ok(Vec::new()),
                Box::new(move |shard, _| {
                    let _ = tx.send(fetch::fetch(shard, &owned, topics.as_deref(), true));
                }),
            );
        })?;
        rx.await.map_err(|_| SHARD_GONE)
    }

    /// DescribeGroups.
    pub async fn describe_groups(
        &self,
        req: DescribeGroupsRequest,
        version: i16,
    ) -> DescribeGroupsResponse {
        let groups = req
            .groups
            .iter()
            .map(|g| {
                self.on_group(g.as_str(), |shard| {
                    admin::describe(
                        shard,
                        g.as_str(),
                        version,
                        req.include_authorized_operations,
                    )
                })
                .unwrap_or_else(|e| {
                    DescribedGroup::default()
                        .with_group_id(g.clone())
                        .with_error_code(e.code())
                })
            })
            .collect();
        DescribeGroupsResponse::default().with_groups(groups)
    }

    /// ListGroups with the state filter (v4+) and type filter (v5+): the
    /// groups of every partition loaded here, or COORDINATOR_LOAD_IN_PROGRESS
    /// while one is loading, as Kafka answers.
    pub async fn list_groups(&self, req: ListGroupsRequest, version: i16) -> ListGroupsResponse {
        let states: &[StrBytes] = if version >= 4 {
            &req.states_filter
        } else {
            &[]
        };
        let types: &[StrBytes] = if version >= 5 { &req.types_filter } else { &[] };
        let cells = match self.active_shards() {
            Ok(cells) => cells,
            Err(e) => return ListGroupsResponse::default().with_error_code(e.code()),
        };
        let mut groups = Vec::new();
        for cell in cells {
            if let Ok(shard) = cell.lock() {
                groups.extend(admin::list(&shard, states, types));
            }
        }
        groups.sort_by(|a, b| a.group_id.as_str().cmp(b.group_id.as_str()));
        ListGroupsResponse::default().with_groups(groups)
    }

    /// DeleteGroups: only Empty groups; their offsets go with them.
    pub async fn delete_groups(
        &self,
        req: DeleteGroupsRequest,
        _version: i16,
    ) -> DeleteGroupsResponse {
        let replies: Vec<Reply<i16>> = req
            .groups_names
            .iter()
            .map(|g| {
                self.on_group(g.as_str(), |shard| admin::delete_group(shard, g.as_str()))
                    .unwrap_or_else(|e| Reply::Now(e.code()))
            })
            .collect();
        let mut results = Vec::with_capacity(replies.len());
        for (group_id, reply) in req.groups_names.iter().zip(replies) {
            let error_code = reply.resolve(|| SHARD_GONE.code()).await;
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
        let plan = self
            .on_group(req.group_id.as_str(), |shard| {
                admin::delete_offsets(shard, req.group_id.as_str(), &topics)
            })
            .and_then(|plan| plan);
        let plan = match plan {
            Err(e) => return OffsetDeleteResponse::default().with_error_code(e.code()),
            Ok(plan) => plan,
        };
        if let Some(rx) = plan.written
            && let Err(e) = rx.await.unwrap_or(Err(SHARD_GONE))
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

    /// Expires offsets past `offsets_retention_ms` at the clock's current
    /// time (for Empty groups counted from when the group became Empty) and
    /// deletes Empty groups left without offsets. Kafka runs this every
    /// `offsets.retention.check.interval.ms`.
    pub async fn expire_offsets(&self) {
        let now_ms = self.inner.clock.now_ms();
        self.on_every_shard(|shard| expiry::expire(shard, now_ms))
            .await;
    }

    /// A topic was deleted: its committed offsets are deleted in every group.
    pub async fn on_topic_deleted(&self, topic: &str) {
        self.on_every_shard(|shard| expiry::topic_deleted(shard, topic))
            .await;
    }

    /// Runs `op` on every active shard, then waits for the writes it started.
    async fn on_every_shard(
        &self,
        op: impl Fn(&mut GroupShard) -> Vec<oneshot::Receiver<Result<(), ResponseError>>>,
    ) {
        let mut waits = Vec::new();
        for cell in self.inner.shards.cells() {
            if let Ok(mut shard) = cell.lock() {
                waits.extend(op(&mut shard));
            }
        }
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

//! Consumer groups: state, members, committed offsets and lag (in records and in
//! seconds), offset resets and deletion — through the group coordinator's own APIs.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_delete_request::{
    OffsetDeleteRequestPartition, OffsetDeleteRequestTopic,
};
use kafka_protocol::messages::{
    ConsumerProtocolAssignment, DeleteGroupsRequest, DescribeGroupsRequest, GroupId,
    ListGroupsRequest, OffsetCommitRequest, OffsetDeleteRequest, TopicName,
};
use kafka_protocol::protocol::{Decodable, StrBytes};
use sluice_protocol::kafka_protocol;
use sluice_protocol::model::TopicPartition;

use super::{Admin, StartAt};
use crate::topic_admin::AdminError;

/// One group as the group list shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupSummary {
    /// Its id.
    pub id: String,
    /// Its state (`Empty`, `Stable`, `PreparingRebalance`, …).
    pub state: String,
    /// Its protocol type (`consumer`, or empty for a group that only commits offsets).
    pub protocol_type: String,
    /// The assignor its members chose.
    pub protocol: String,
    /// Members now.
    pub members: usize,
    /// Topics it has committed offsets for.
    pub topics: Vec<String>,
    /// Records behind, over its partitions.
    pub total_lag: i64,
    /// The oldest unconsumed record's age over its partitions, in ms.
    pub max_lag_ms: Option<i64>,
}

/// A group's lag on one topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicConsumer {
    /// The group.
    pub group: String,
    /// Records behind over the topic's partitions.
    pub total_lag: i64,
    /// Records behind on its furthest-behind partition.
    pub max_lag: i64,
}

/// One member of a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupMember {
    /// Its member id.
    pub member_id: String,
    /// Its static instance id, if any.
    pub instance_id: Option<String>,
    /// The client's `client.id`.
    pub client_id: String,
    /// The client's address.
    pub host: String,
    /// The partitions assigned to it (consumer protocol), by topic.
    pub assignment: BTreeMap<String, Vec<i32>>,
}

/// One partition a group has committed an offset for, or is assigned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupPartition {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: i32,
    /// The committed offset, if any.
    pub committed: Option<i64>,
    /// The partition's high watermark (-1: not on this node).
    pub end: i64,
    /// Records behind: end minus committed.
    pub lag: Option<i64>,
    /// Age of the first unconsumed record, in ms (0 when caught up).
    pub lag_ms: Option<i64>,
    /// The member it is assigned to, if any.
    pub member_id: Option<String>,
    /// That member's client id.
    pub client_id: Option<String>,
    /// That member's host.
    pub host: Option<String>,
}

/// A group with its members and partitions.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupDetail {
    /// What the list shows.
    pub summary: GroupSummary,
    /// Its members.
    pub members: Vec<GroupMember>,
    /// Its partitions, by topic and partition.
    pub partitions: Vec<GroupPartition>,
}

/// Where an offset reset moves a group's offsets (as `kafka-consumer-groups.sh
/// --reset-offsets` does).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResetTarget {
    /// Each partition's log start offset.
    Earliest,
    /// Each partition's high watermark.
    Latest,
    /// This offset (clamped to the log).
    Offset(i64),
    /// The first record at or after this timestamp (ms).
    Timestamp(i64),
    /// The committed offset moved by this many (clamped to the log).
    ShiftBy(i64),
}

/// A reset's effect on one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetChange {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: i32,
    /// The committed offset before, if any.
    pub current: Option<i64>,
    /// The offset after.
    pub new: i64,
}

/// The version of the group APIs the facade calls the coordinator with.
const LIST_GROUPS_VERSION: i16 = 4;
const DESCRIBE_GROUPS_VERSION: i16 = 5;
const OFFSET_COMMIT_VERSION: i16 = 8;

fn str_bytes(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

fn group_error(code: i16, group: &str) -> AdminError {
    let code = ResponseError::try_from_code(code).unwrap_or(ResponseError::UnknownServerError);
    let message = match code {
        ResponseError::NonEmptyGroup => {
            format!("The group '{group}' has members; stop its consumers first.")
        }
        ResponseError::GroupIdNotFound => format!("The group '{group}' does not exist."),
        ResponseError::GroupSubscribedToTopic => {
            format!("The group '{group}' is subscribed to the topic; stop its consumers first.")
        }
        other => format!("{other:?}"),
    };
    AdminError::new(code, message)
}

/// The partitions in a consumer-protocol assignment, by topic; empty when it is not one.
fn decode_assignment(bytes: &Bytes) -> BTreeMap<String, Vec<i32>> {
    let mut buf = bytes.clone();
    let Some(version) = bytes
        .get(..2)
        .and_then(|b| <[u8; 2]>::try_from(b).ok())
        .map(i16::from_be_bytes)
    else {
        return BTreeMap::new();
    };
    let _ = bytes::Buf::get_i16(&mut buf);
    let Ok(assignment) = ConsumerProtocolAssignment::decode(&mut buf, version.clamp(0, 3)) else {
        return BTreeMap::new();
    };
    assignment
        .assigned_partitions
        .into_iter()
        .map(|tp| (tp.topic.to_string(), tp.partitions))
        .collect()
}

/// A group's membership as DescribeGroups tells it.
struct Described {
    state: String,
    protocol_type: String,
    protocol: String,
    members: Vec<GroupMember>,
}

impl Admin {
    /// Every group, by id, with its lag.
    pub async fn groups(&self) -> Vec<GroupSummary> {
        let listed = self
            .broker
            .groups
            .list_groups(ListGroupsRequest::default(), LIST_GROUPS_VERSION)
            .await;
        let ids: Vec<String> = listed
            .groups
            .iter()
            .map(|g| g.group_id.to_string())
            .collect();
        let described = self.describe(&ids).await;
        let committed = self.committed_offsets();
        let mut groups: Vec<GroupSummary> = ids
            .iter()
            .filter_map(|id| {
                let d = described.get(id)?;
                let partitions = self.lag_of(committed.get(id), &d.members);
                Some(summarize(id, d, &partitions))
            })
            .collect();
        groups.sort_by(|a, b| a.id.cmp(&b.id));
        groups
    }

    /// One group with members and per-partition lag; `None` when it does not exist.
    pub async fn group(&self, id: &str) -> Option<GroupDetail> {
        let described = self.describe(&[id.to_string()]).await;
        let d = described.get(id)?;
        if d.state == "Dead" && !self.committed_offsets().contains_key(id) {
            return None;
        }
        let committed = self.committed_offsets();
        let partitions = self.lag_of(committed.get(id), &d.members);
        Some(GroupDetail {
            summary: summarize(id, d, &partitions),
            members: d.members.clone(),
            partitions,
        })
    }

    /// Groups with committed offsets on `topic`, with their lag on it.
    pub fn topic_consumers(&self, topic: &str) -> Vec<TopicConsumer> {
        self.consumers_by_topic().remove(topic).unwrap_or_default()
    }

    /// For every topic with committed offsets, the groups that committed them and their
    /// lag on it, by group id.
    pub fn consumers_by_topic(&self) -> BTreeMap<String, Vec<TopicConsumer>> {
        let image = self.broker.metadata.image();
        let mut out: BTreeMap<String, Vec<TopicConsumer>> = BTreeMap::new();
        for (group, offsets) in self.committed_offsets() {
            let mut per_topic: BTreeMap<&str, TopicConsumer> = BTreeMap::new();
            for (tp, &committed) in &offsets {
                let Some(end) = image
                    .topic(&tp.topic)
                    .and_then(|t| self.broker.replicas.logs().get(t.id, tp.partition))
                    .map(|p| p.offsets().high_watermark)
                else {
                    continue;
                };
                let lag = (end - committed).max(0);
                let entry = per_topic
                    .entry(tp.topic.as_str())
                    .or_insert_with(|| TopicConsumer {
                        group: group.clone(),
                        total_lag: 0,
                        max_lag: 0,
                    });
                entry.total_lag += lag;
                entry.max_lag = entry.max_lag.max(lag);
            }
            for (topic, consumer) in per_topic {
                out.entry(topic.to_string()).or_default().push(consumer);
            }
        }
        out
    }

    /// Every group's committed offsets, as the coordinator holds them now.
    fn committed_offsets(&self) -> BTreeMap<String, BTreeMap<TopicPartition, i64>> {
        self.broker
            .groups
            .image()
            .into_iter()
            .map(|(id, image)| {
                let offsets = image
                    .offsets
                    .into_iter()
                    .map(|(tp, v)| (tp, v.offset))
                    .collect();
                (id, offsets)
            })
            .collect()
    }

    /// DescribeGroups of `ids`, by id.
    async fn describe(&self, ids: &[String]) -> BTreeMap<String, Described> {
        let request = DescribeGroupsRequest::default()
            .with_groups(ids.iter().map(|id| GroupId(str_bytes(id))).collect());
        let response = self
            .broker
            .groups
            .describe_groups(request, DESCRIBE_GROUPS_VERSION)
            .await;
        response
            .groups
            .into_iter()
            .filter(|g| g.error_code == 0)
            .map(|g| {
                let members = g
                    .members
                    .iter()
                    .map(|m| GroupMember {
                        member_id: m.member_id.to_string(),
                        instance_id: m.group_instance_id.as_ref().map(|s| s.to_string()),
                        client_id: m.client_id.to_string(),
                        host: m.client_host.to_string(),
                        assignment: if g.protocol_type.as_str() == "consumer" {
                            decode_assignment(&m.member_assignment)
                        } else {
                            BTreeMap::new()
                        },
                    })
                    .collect();
                (
                    g.group_id.to_string(),
                    Described {
                        state: g.group_state.to_string(),
                        protocol_type: g.protocol_type.to_string(),
                        protocol: g.protocol_data.to_string(),
                        members,
                    },
                )
            })
            .collect()
    }

    /// Lag of every partition the group committed for or is assigned.
    fn lag_of(
        &self,
        committed: Option<&BTreeMap<TopicPartition, i64>>,
        members: &[GroupMember],
    ) -> Vec<GroupPartition> {
        let mut keys: BTreeSet<(String, i32)> = committed
            .into_iter()
            .flatten()
            .map(|(tp, _)| (tp.topic.clone(), tp.partition))
            .collect();
        for m in members {
            for (topic, partitions) in &m.assignment {
                keys.extend(partitions.iter().map(|&p| (topic.clone(), p)));
            }
        }
        let now = self.now_ms();
        keys.into_iter()
            .map(|(topic, partition)| {
                let committed = committed
                    .and_then(|c| c.get(&TopicPartition::new(topic.as_str(), partition)))
                    .copied();
                let end = self
                    .partition_offsets(&topic, partition)
                    .map_or(-1, |o| o.high_watermark);
                let lag = committed.filter(|_| end >= 0).map(|c| (end - c).max(0));
                let lag_ms = match (lag, committed) {
                    (Some(0), _) => Some(0),
                    (Some(_), Some(c)) => self
                        .timestamp_at(&topic, partition, c)
                        .map(|ts| (now - ts).max(0)),
                    _ => None,
                };
                let owner = members.iter().find(|m| {
                    m.assignment
                        .get(&topic)
                        .is_some_and(|ps| ps.contains(&partition))
                });
                GroupPartition {
                    topic,
                    partition,
                    committed,
                    end,
                    lag,
                    lag_ms,
                    member_id: owner.map(|m| m.member_id.clone()),
                    client_id: owner.map(|m| m.client_id.clone()),
                    host: owner.map(|m| m.host.clone()),
                }
            })
            .collect()
    }

    /// Moves a group's committed offsets on `topics` (every topic it has offsets for
    /// when empty) to `target`; with `dry_run`, only says what would change. Only an
    /// Empty (or offsets-only) group's offsets can be reset, as with Kafka's tool.
    pub async fn reset_offsets(
        &self,
        id: &str,
        topics: &[String],
        target: ResetTarget,
        dry_run: bool,
    ) -> Result<Vec<OffsetChange>, AdminError> {
        let detail = self.group(id).await.ok_or_else(|| {
            AdminError::new(
                ResponseError::GroupIdNotFound,
                format!("The group '{id}' does not exist."),
            )
        })?;
        if !matches!(detail.summary.state.as_str(), "Empty" | "Dead") {
            return Err(AdminError::new(
                ResponseError::NonEmptyGroup,
                format!(
                    "The group '{id}' is {}; offsets can only be reset while it is Empty (stop its consumers first).",
                    detail.summary.state
                ),
            ));
        }
        let mut changes = Vec::new();
        for p in &detail.partitions {
            if !topics.is_empty() && !topics.contains(&p.topic) {
                continue;
            }
            let at = match target {
                ResetTarget::Earliest => StartAt::Oldest,
                ResetTarget::Latest => StartAt::Newest(0),
                ResetTarget::Offset(o) => StartAt::Offset(o),
                ResetTarget::Timestamp(ts) => StartAt::Timestamp(ts),
                ResetTarget::ShiftBy(n) => {
                    StartAt::Offset(p.committed.unwrap_or(0).saturating_add(n))
                }
            };
            let new = self.start_offset(&p.topic, p.partition, at)?;
            changes.push(OffsetChange {
                topic: p.topic.clone(),
                partition: p.partition,
                current: p.committed,
                new,
            });
        }
        if !dry_run && !changes.is_empty() {
            self.commit(id, &changes).await?;
        }
        Ok(changes)
    }

    /// Commits `changes` as an admin's OffsetCommit (no generation, no member).
    async fn commit(&self, id: &str, changes: &[OffsetChange]) -> Result<(), AdminError> {
        let mut by_topic: BTreeMap<&str, Vec<OffsetCommitRequestPartition>> = BTreeMap::new();
        for c in changes {
            by_topic.entry(&c.topic).or_default().push(
                OffsetCommitRequestPartition::default()
                    .with_partition_index(c.partition)
                    .with_committed_offset(c.new)
                    .with_committed_leader_epoch(-1)
                    .with_committed_metadata(Some(StrBytes::from_static_str(""))),
            );
        }
        let request = OffsetCommitRequest::default()
            .with_group_id(GroupId(str_bytes(id)))
            .with_generation_id_or_member_epoch(-1)
            .with_member_id(StrBytes::from_static_str(""))
            .with_retention_time_ms(-1)
            .with_topics(
                by_topic
                    .into_iter()
                    .map(|(topic, partitions)| {
                        OffsetCommitRequestTopic::default()
                            .with_name(TopicName(str_bytes(topic)))
                            .with_partitions(partitions)
                    })
                    .collect(),
            );
        let response = crate::handlers::commit_topics::offset_commit(
            &self.broker,
            request,
            OFFSET_COMMIT_VERSION,
        )
        .await;
        let failed = response
            .topics
            .iter()
            .flat_map(|t| &t.partitions)
            .find(|p| p.error_code != 0);
        match failed {
            Some(p) => Err(group_error(p.error_code, id)),
            None => Ok(()),
        }
    }

    /// Deletes a group with no members, and its offsets (DeleteGroups).
    pub async fn delete_group(&self, id: &str) -> Result<(), AdminError> {
        let response = self
            .broker
            .groups
            .delete_groups(
                DeleteGroupsRequest::default().with_groups_names(vec![GroupId(str_bytes(id))]),
                2,
            )
            .await;
        match response.results.iter().find(|r| r.error_code != 0) {
            Some(r) => Err(group_error(r.error_code, id)),
            None => Ok(()),
        }
    }

    /// Deletes a group's committed offsets of `topic` (OffsetDelete; refused while the
    /// group consumes the topic).
    pub async fn delete_group_offsets(&self, id: &str, topic: &str) -> Result<(), AdminError> {
        let partitions: Vec<OffsetDeleteRequestPartition> = self
            .committed_offsets()
            .get(id)
            .into_iter()
            .flatten()
            .filter(|(tp, _)| tp.topic == topic)
            .map(|(tp, _)| {
                OffsetDeleteRequestPartition::default().with_partition_index(tp.partition)
            })
            .collect();
        let request = OffsetDeleteRequest::default()
            .with_group_id(GroupId(str_bytes(id)))
            .with_topics(vec![
                OffsetDeleteRequestTopic::default()
                    .with_name(TopicName(str_bytes(topic)))
                    .with_partitions(partitions),
            ]);
        let response = self.broker.groups.offset_delete(request, 0).await;
        if response.error_code != 0 {
            return Err(group_error(response.error_code, id));
        }
        match response
            .topics
            .iter()
            .flat_map(|t| &t.partitions)
            .find(|p| p.error_code != 0)
        {
            Some(p) => Err(group_error(p.error_code, id)),
            None => Ok(()),
        }
    }
}

fn summarize(id: &str, d: &Described, partitions: &[GroupPartition]) -> GroupSummary {
    let topics: BTreeSet<&str> = partitions.iter().map(|p| p.topic.as_str()).collect();
    GroupSummary {
        id: id.to_string(),
        state: d.state.clone(),
        protocol_type: d.protocol_type.clone(),
        protocol: d.protocol.clone(),
        members: d.members.len(),
        topics: topics.into_iter().map(String::from).collect(),
        total_lag: partitions.iter().filter_map(|p| p.lag).sum(),
        max_lag_ms: partitions.iter().filter_map(|p| p.lag_ms).max(),
    }
}

//! Consumer groups: coordinator lookup, listing, description, committed offsets.

use std::time::Duration;

use bytes::{Buf, Bytes};
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::{
    ConsumerProtocolAssignment, DeleteGroupsRequest, DescribeGroupsRequest, FindCoordinatorRequest,
    GroupId, ListGroupsRequest, OffsetCommitRequest, OffsetFetchRequest, TopicName,
};
use kafka_protocol::protocol::{Decodable, StrBytes};

use crate::Client;
use crate::conn::is_coordinator_retry;
use crate::error::{Error, KafkaCode, Result, check, entry_about};

/// How often a coordinator lookup is retried while the coordinator is loading.
const COORDINATOR_ATTEMPTS: u32 = 20;

/// A group as ListGroups reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupListing {
    pub group_id: String,
    pub protocol_type: String,
    /// Empty when the broker's ListGroups version does not report states.
    pub state: String,
}

/// One member of a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupMember {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    /// Decoded consumer-protocol assignment: (topic, partitions).
    pub assignment: Vec<(String, Vec<i32>)>,
}

/// What DescribeGroups reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupDescription {
    pub group_id: String,
    pub state: String,
    pub protocol_type: String,
    pub protocol: String,
    pub members: Vec<GroupMember>,
}

/// A committed offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommittedOffset {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub metadata: Option<String>,
}

fn group_id(g: &str) -> GroupId {
    GroupId(StrBytes::from_string(g.to_string()))
}

/// Decodes a consumer-protocol assignment; anything else (or garbage) gives nothing.
fn decode_assignment(bytes: &Bytes) -> Vec<(String, Vec<i32>)> {
    let mut buf = bytes.clone();
    if buf.remaining() < 2 {
        return Vec::new();
    }
    let version = buf.get_i16().clamp(0, 3);
    match ConsumerProtocolAssignment::decode(&mut buf, version) {
        Ok(a) => {
            let mut v: Vec<(String, Vec<i32>)> = a
                .assigned_partitions
                .iter()
                .map(|tp| {
                    let mut parts = tp.partitions.clone();
                    parts.sort_unstable();
                    (tp.topic.0.to_string(), parts)
                })
                .collect();
            v.sort();
            v
        }
        Err(_) => Vec::new(),
    }
}

impl Client {
    /// The node id of the coordinator of `group`.
    pub async fn find_coordinator(&mut self, group: &str) -> Result<i32> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let version = self.bootstrap.version::<FindCoordinatorRequest>()?;
            let mut request = FindCoordinatorRequest::default().with_key_type(0);
            if version >= 4 {
                request.coordinator_keys = vec![StrBytes::from_string(group.to_string())];
            } else {
                request.key = StrBytes::from_string(group.to_string());
            }
            let response = self.bootstrap.request_at(version, &request).await?;
            let (code, message, node, host, port) = if version >= 4 {
                let Some(c) = response.coordinators.first() else {
                    return Err(Error::Protocol {
                        addr: self.bootstrap.addr().to_string(),
                        reason: "FindCoordinator response without coordinators".to_string(),
                    });
                };
                (
                    c.error_code,
                    c.error_message.as_ref().map(|m| m.to_string()),
                    c.node_id.0,
                    c.host.to_string(),
                    c.port,
                )
            } else {
                (
                    response.error_code,
                    response.error_message.as_ref().map(|m| m.to_string()),
                    response.node_id.0,
                    response.host.to_string(),
                    response.port,
                )
            };
            match KafkaCode::from_code(code) {
                None => {
                    self.remember_node(node, &host, port);
                    return Ok(node);
                }
                Some(c) if is_coordinator_retry(c) && attempt < COORDINATOR_ATTEMPTS => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Some(_) => {
                    return check(
                        "FindCoordinator",
                        || format!("group '{group}'"),
                        code,
                        message.as_deref(),
                    )
                    .map(|()| node);
                }
            }
        }
    }

    /// ListGroups on every broker.
    pub async fn list_groups(&mut self) -> Result<Vec<GroupListing>> {
        let md = self.metadata(Some(&[])).await?;
        let mut out: Vec<GroupListing> = Vec::new();
        for b in &md.brokers {
            let conn = self.node(b.node_id).await?;
            let response = conn.request(&ListGroupsRequest::default()).await?;
            check(
                "ListGroups",
                || format!("broker {}", b.node_id),
                response.error_code,
                None,
            )?;
            for g in &response.groups {
                let id = g.group_id.0.to_string();
                if out.iter().any(|o| o.group_id == id) {
                    continue;
                }
                out.push(GroupListing {
                    group_id: id,
                    protocol_type: g.protocol_type.to_string(),
                    state: g.group_state.to_string(),
                });
            }
        }
        out.sort_by(|a, b| a.group_id.cmp(&b.group_id));
        Ok(out)
    }

    /// DescribeGroups for one group. A group that does not exist is reported by Kafka as
    /// state `Dead` with no members.
    pub async fn describe_group(&mut self, group: &str) -> Result<GroupDescription> {
        let coordinator = self.find_coordinator(group).await?;
        let conn = self.node(coordinator).await?;
        let response = conn
            .request(&DescribeGroupsRequest::default().with_groups(vec![group_id(group)]))
            .await?;
        let g = entry_about(
            "DescribeGroups",
            conn.addr(),
            &format!("'{group}'"),
            &response.groups,
            |g| g.group_id.0.as_str() == group,
        )?;
        if g.error_code == KafkaCode::GROUP_ID_NOT_FOUND.0 {
            // DescribeGroups v6 reports a missing group with an error; older versions
            // (and Kafka's tools) call it Dead.
            return Ok(GroupDescription {
                group_id: group.to_string(),
                state: "Dead".to_string(),
                protocol_type: String::new(),
                protocol: String::new(),
                members: Vec::new(),
            });
        }
        check(
            "DescribeGroups",
            || format!("group '{group}'"),
            g.error_code,
            g.error_message.as_deref(),
        )?;
        let consumer = g.protocol_type.as_str() == "consumer";
        let mut members: Vec<GroupMember> = g
            .members
            .iter()
            .map(|m| GroupMember {
                member_id: m.member_id.to_string(),
                group_instance_id: m.group_instance_id.as_ref().map(|s| s.to_string()),
                client_id: m.client_id.to_string(),
                client_host: m.client_host.to_string(),
                assignment: if consumer {
                    decode_assignment(&m.member_assignment)
                } else {
                    Vec::new()
                },
            })
            .collect();
        members.sort_by(|a, b| a.member_id.cmp(&b.member_id));
        Ok(GroupDescription {
            group_id: group.to_string(),
            state: g.group_state.to_string(),
            protocol_type: g.protocol_type.to_string(),
            protocol: g.protocol_data.to_string(),
            members,
        })
    }

    /// OffsetFetch: every committed offset of `group` (`topics` = None) or those of the
    /// given topics' partitions. Partitions without a commit are left out.
    pub async fn committed_offsets(
        &mut self,
        group: &str,
        topics: Option<&[(String, Vec<i32>)]>,
    ) -> Result<Vec<CommittedOffset>> {
        use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
        let coordinator = self.find_coordinator(group).await?;
        let conn = self.node(coordinator).await?;
        let version = conn.version::<OffsetFetchRequest>()?;
        let request = OffsetFetchRequest::default()
            .with_group_id(group_id(group))
            .with_topics(topics.map(|ts| {
                ts.iter()
                    .map(|(t, ps)| {
                        OffsetFetchRequestTopic::default()
                            .with_name(TopicName(StrBytes::from_string(t.clone())))
                            .with_partition_indexes(ps.clone())
                    })
                    .collect()
            }));
        let response = conn.request_at(version, &request).await?;
        check(
            "OffsetFetch",
            || format!("group '{group}'"),
            response.error_code,
            None,
        )?;
        let mut out = Vec::new();
        for t in &response.topics {
            for p in &t.partitions {
                check(
                    "OffsetFetch",
                    || format!("group '{group}' {}-{}", t.name.0, p.partition_index),
                    p.error_code,
                    None,
                )?;
                if p.committed_offset < 0 {
                    continue;
                }
                out.push(CommittedOffset {
                    topic: t.name.0.to_string(),
                    partition: p.partition_index,
                    offset: p.committed_offset,
                    metadata: p.metadata.as_ref().map(|m| m.to_string()),
                });
            }
        }
        out.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
        Ok(out)
    }

    /// OffsetCommit as a simple consumer (no generation, no member id): Kafka accepts it
    /// only while the group has no active members.
    pub async fn commit_offsets(
        &mut self,
        group: &str,
        topic: &str,
        offsets: &[(i32, i64)],
    ) -> Result<()> {
        self.commit_offsets_as(group, -1, "", topic, offsets).await
    }

    /// OffsetCommit as member `member_id` of generation `generation` (-1 and "" for a
    /// simple consumer).
    pub(crate) async fn commit_offsets_as(
        &mut self,
        group: &str,
        generation: i32,
        member_id: &str,
        topic: &str,
        offsets: &[(i32, i64)],
    ) -> Result<()> {
        let coordinator = self.find_coordinator(group).await?;
        let conn = self.node(coordinator).await?;
        let request = OffsetCommitRequest::default()
            .with_group_id(group_id(group))
            .with_generation_id_or_member_epoch(generation)
            .with_member_id(StrBytes::from_string(member_id.to_string()))
            .with_topics(vec![
                OffsetCommitRequestTopic::default()
                    .with_name(TopicName(StrBytes::from_string(topic.to_string())))
                    .with_partitions(
                        offsets
                            .iter()
                            .map(|(p, o)| {
                                OffsetCommitRequestPartition::default()
                                    .with_partition_index(*p)
                                    .with_committed_offset(*o)
                                    .with_committed_leader_epoch(-1)
                                    .with_committed_metadata(Some(StrBytes::from_static_str("")))
                            })
                            .collect(),
                    ),
            ]);
        let response = conn.request(&request).await?;
        for t in &response.topics {
            for p in &t.partitions {
                check(
                    "OffsetCommit",
                    || format!("group '{group}' {topic}-{}", p.partition_index),
                    p.error_code,
                    None,
                )?;
            }
        }
        Ok(())
    }

    /// DeleteGroups for one group (it must be empty).
    pub async fn delete_group(&mut self, group: &str) -> Result<()> {
        let coordinator = self.find_coordinator(group).await?;
        let conn = self.node(coordinator).await?;
        let response = conn
            .request(&DeleteGroupsRequest::default().with_groups_names(vec![group_id(group)]))
            .await?;
        let r = entry_about(
            "DeleteGroups",
            conn.addr(),
            &format!("'{group}'"),
            &response.results,
            |r| r.group_id.0.as_str() == group,
        )?;
        check(
            "DeleteGroups",
            || format!("group '{group}'"),
            r.error_code,
            None,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assignment_garbage_is_empty() {
        assert!(decode_assignment(&Bytes::from_static(b"")).is_empty());
        assert!(decode_assignment(&Bytes::from_static(b"\x00\x00\xff\xff\xff\xff")).is_empty());
    }
}

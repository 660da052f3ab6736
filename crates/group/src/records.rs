//! Codec for the records of `__consumer_offsets`.
//!
//! Keys and values use the schemas Kafka itself writes (`OffsetCommitKey`,
//! `OffsetCommitValue`, `GroupMetadataKey`, `GroupMetadataValue` in Kafka's
//! group coordinator): a big-endian `int16` schema version followed by the
//! fields. Keeping Kafka's layout means the topic can be read with Kafka's own
//! tools (`kafka-console-consumer --formatter ...OffsetsMessageFormatter`).
//!
//! We write the newest non-flexible versions (offset key 1, offset value 3 or
//! 1 when an expire timestamp is set, group key 2, group value 3) and read
//! every version Kafka ever wrote, including the flexible version 4 values.
//! Every read is bounds-checked: a damaged record yields a [`CodecError`].

use bytes::Bytes;
use sluice_coordinator::CoordinatorRecord;
use sluice_protocol::model::TopicPartition;
use sluice_protocol::schema_codec::{Reader, Writer};

use crate::CodecError;

/// Key version of offset commits (0 and 1 share the schema; Kafka writes 1).
const OFFSET_COMMIT_KEY_VERSION: i16 = 1;
/// Key version of group metadata.
const GROUP_METADATA_KEY_VERSION: i16 = 2;
/// Value version of group metadata we write.
const GROUP_METADATA_VALUE_VERSION: i16 = 3;

/// The key of a `__consumer_offsets` record.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum GroupRecordKey {
    /// A committed offset of one partition (key versions 0 and 1).
    OffsetCommit {
        /// Group id.
        group: String,
        /// Topic name.
        topic: String,
        /// Partition index.
        partition: i32,
    },
    /// The membership snapshot of a group (key version 2).
    GroupMetadata {
        /// Group id.
        group: String,
    },
}

/// A committed offset (`OffsetCommitValue`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetCommitValue {
    /// The committed offset.
    pub offset: i64,
    /// Leader epoch of the committed offset, -1 when unknown (versions 3+).
    pub leader_epoch: i32,
    /// Client-supplied metadata string.
    pub metadata: String,
    /// When the commit happened (ms since the epoch).
    pub commit_timestamp: i64,
    /// Explicit expiry from an OffsetCommit v2-v4 retention time, -1 when
    /// absent (only stored in version 1, as Kafka does).
    pub expire_timestamp: i64,
}

/// The membership snapshot of a group (`GroupMetadataValue`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupMetadataValue {
    /// Protocol type (`consumer`, `connect`, ...), empty for simple groups.
    pub protocol_type: String,
    /// Generation id.
    pub generation: i32,
    /// Selected protocol (assignor), null when the group is empty.
    pub protocol: Option<String>,
    /// Leader member id, null when the group is empty.
    pub leader: Option<String>,
    /// When the group entered its current state, -1 when unknown (versions 2+).
    pub current_state_timestamp: i64,
    /// Members with their subscription and assignment.
    pub members: Vec<MemberMetadataValue>,
}

/// One member inside [`GroupMetadataValue`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberMetadataValue {
    /// Member id.
    pub member_id: String,
    /// `group.instance.id` of a static member (versions 3+).
    pub group_instance_id: Option<String>,
    /// Client id.
    pub client_id: String,
    /// Client host.
    pub client_host: String,
    /// Rebalance timeout, -1 when unknown (versions 1+).
    pub rebalance_timeout: i32,
    /// Session timeout.
    pub session_timeout: i32,
    /// Protocol metadata for the selected protocol.
    pub subscription: Bytes,
    /// Assignment from the leader.
    pub assignment: Bytes,
}

impl GroupRecordKey {
    /// The group this record belongs to.
    pub fn group(&self) -> &str {
        match self {
            Self::OffsetCommit { group, .. } | Self::GroupMetadata { group } => group,
        }
    }

    /// Encodes the key in the version Kafka writes.
    pub fn encode(&self) -> Result<Bytes, CodecError> {
        let mut w = Writer::default();
        match self {
            Self::OffsetCommit {
                group,
                topic,
                partition,
            } => {
                w.i16(OFFSET_COMMIT_KEY_VERSION);
                w.string(group, "group")?;
                w.string(topic, "topic")?;
                w.i32(*partition);
            }
            Self::GroupMetadata { group } => {
                w.i16(GROUP_METADATA_KEY_VERSION);
                w.string(group, "group")?;
            }
        }
        Ok(w.finish())
    }

    /// Decodes a key. Versions above 2 are the records of other group types
    /// (KIP-848 consumer groups, share groups) and yield `UnsupportedVersion`.
    pub fn decode(buf: &[u8]) -> Result<Self, CodecError> {
        let mut r = Reader::new(buf, false);
        match r.i16("key version")? {
            0 | 1 => Ok(Self::OffsetCommit {
                group: r.string("group")?,
                topic: r.string("topic")?,
                partition: r.i32("partition")?,
            }),
            2 => Ok(Self::GroupMetadata {
                group: r.string("group")?,
            }),
            version => Err(CodecError::UnsupportedVersion {
                record: "key",
                version,
            }),
        }
    }
}

impl OffsetCommitValue {
    /// Encodes the value: version 1 when an expire timestamp is present (the
    /// only version that stores it), else version 3, like Kafka.
    pub fn encode(&self) -> Result<Bytes, CodecError> {
        let mut w = Writer::default();
        if self.expire_timestamp >= 0 {
            w.i16(1);
            w.i64(self.offset);
            w.string(&self.metadata, "metadata")?;
            w.i64(self.commit_timestamp);
            w.i64(self.expire_timestamp);
        } else {
            w.i16(3);
            w.i64(self.offset);
            w.i32(self.leader_epoch);
            w.string(&self.metadata, "metadata")?;
            w.i64(self.commit_timestamp);
        }
        Ok(w.finish())
    }

    /// Decodes any version Kafka wrote (0 to 4).
    pub fn decode(buf: &[u8]) -> Result<Self, CodecError> {
        let version = Reader::new(buf, false).i16("value version")?;
        if !(0..=4).contains(&version) {
            return Err(CodecError::UnsupportedVersion {
                record: "OffsetCommitValue",
                version,
            });
        }
        let mut r = Reader::new(buf.get(2..).unwrap_or_default(), version >= 4);
        let offset = r.i64("offset")?;
        let leader_epoch = if version >= 3 {
            r.i32("leaderEpoch")?
        } else {
            -1
        };
        let metadata = r.string("metadata")?;
        let commit_timestamp = r.i64("commitTimestamp")?;
        let expire_timestamp = if version == 1 {
            r.i64("expireTimestamp")?
        } else {
            -1
        };
        r.skip_tagged_fields()?;
        Ok(Self {
            offset,
            leader_epoch,
            metadata,
            commit_timestamp,
            expire_timestamp,
        })
    }
}

impl GroupMetadataValue {
    /// Encodes the value in version 3 (the newest non-flexible version).
    pub fn encode(&self) -> Result<Bytes, CodecError> {
        let mut w = Writer::default();
        w.i16(GROUP_METADATA_VALUE_VERSION);
        w.string(&self.protocol_type, "protocolType")?;
        w.i32(self.generation);
        w.nullable_string(self.protocol.as_deref(), "protocol")?;
        w.nullable_string(self.leader.as_deref(), "leader")?;
        w.i64(self.current_state_timestamp);
        w.array_len(self.members.len(), "members")?;
        for m in &self.members {
            w.string(&m.member_id, "memberId")?;
            w.nullable_string(m.group_instance_id.as_deref(), "groupInstanceId")?;
            w.string(&m.client_id, "clientId")?;
            w.string(&m.client_host, "clientHost")?;
            w.i32(m.rebalance_timeout);
            w.i32(m.session_timeout);
            w.bytes(&m.subscription, "subscription")?;
            w.bytes(&m.assignment, "assignment")?;
        }
        Ok(w.finish())
    }

    /// Decodes any version Kafka wrote (0 to 4).
    pub fn decode(buf: &[u8]) -> Result<Self, CodecError> {
        let version = Reader::new(buf, false).i16("value version")?;
        if !(0..=4).contains(&version) {
            return Err(CodecError::UnsupportedVersion {
                record: "GroupMetadataValue",
                version,
            });
        }
        let mut r = Reader::new(buf.get(2..).unwrap_or_default(), version >= 4);
        let protocol_type = r.string("protocolType")?;
        let generation = r.i32("generation")?;
        let protocol = r.nullable_string("protocol")?;
        let leader = r.nullable_string("leader")?;
        let current_state_timestamp = if version >= 2 {
            r.i64("currentStateTimestamp")?
        } else {
            -1
        };
        let count = r.array_len("members", 1)?;
        let mut members = Vec::with_capacity(count);
        for _ in 0..count {
            let member_id = r.string("memberId")?;
            let group_instance_id = if version >= 3 {
                r.nullable_string("groupInstanceId")?
            } else {
                None
            };
            let client_id = r.string("clientId")?;
            let client_host = r.string("clientHost")?;
            let rebalance_timeout = if version >= 1 {
                r.i32("rebalanceTimeout")?
            } else {
                -1
            };
            let session_timeout = r.i32("sessionTimeout")?;
            let subscription = r.bytes("subscription")?;
            let assignment = r.bytes("assignment")?;
            r.skip_tagged_fields()?;
            members.push(MemberMetadataValue {
                member_id,
                group_instance_id,
                client_id,
                client_host,
                rebalance_timeout,
                session_timeout,
                subscription,
                assignment,
            });
        }
        r.skip_tagged_fields()?;
        Ok(Self {
            protocol_type,
            generation,
            protocol,
            leader,
            current_state_timestamp,
            members,
        })
    }
}

/// The record committing `value` for `tp` in `group`.
pub(crate) fn offset_record(
    group: &str,
    tp: &TopicPartition,
    value: &OffsetCommitValue,
) -> Result<CoordinatorRecord, CodecError> {
    Ok(CoordinatorRecord::new(
        offset_key(group, tp).encode()?,
        value.encode()?,
    ))
}

/// Tombstone deleting the committed offset of one partition.
pub(crate) fn offset_tombstone(
    group: &str,
    tp: &TopicPartition,
) -> Result<CoordinatorRecord, CodecError> {
    Ok(CoordinatorRecord::tombstone(
        offset_key(group, tp).encode()?,
    ))
}

fn offset_key(group: &str, tp: &TopicPartition) -> GroupRecordKey {
    GroupRecordKey::OffsetCommit {
        group: group.to_owned(),
        topic: tp.topic.clone(),
        partition: tp.partition,
    }
}

/// The record storing `value` as the membership snapshot of `group`.
pub(crate) fn group_record(
    group: &str,
    value: &GroupMetadataValue,
) -> Result<CoordinatorRecord, CodecError> {
    let key = GroupRecordKey::GroupMetadata {
        group: group.to_owned(),
    };
    Ok(CoordinatorRecord::new(key.encode()?, value.encode()?))
}

/// Tombstone deleting a group's metadata.
pub(crate) fn group_tombstone(group: &str) -> Result<CoordinatorRecord, CodecError> {
    let key = GroupRecordKey::GroupMetadata {
        group: group.to_owned(),
    };
    Ok(CoordinatorRecord::tombstone(key.encode()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(id: &str, instance: Option<&str>) -> MemberMetadataValue {
        MemberMetadataValue {
            member_id: id.into(),
            group_instance_id: instance.map(Into::into),
            client_id: "client".into(),
            client_host: "/127.0.0.1".into(),
            rebalance_timeout: 300_000,
            session_timeout: 45_000,
            subscription: Bytes::from_static(b"\x00\x01sub"),
            assignment: Bytes::from_static(b"assign"),
        }
    }

    #[test]
    fn offset_key_matches_kafka_bytes() {
        let key = GroupRecordKey::OffsetCommit {
            group: "g".into(),
            topic: "t".into(),
            partition: 3,
        };
        let bytes = key.encode().unwrap();
        assert_eq!(
            bytes.as_ref(),
            &[0, 1, 0, 1, b'g', 0, 1, b't', 0, 0, 0, 3][..]
        );
        assert_eq!(GroupRecordKey::decode(&bytes).unwrap(), key);
        // Version 0 keys share the schema.
        let v0 = [0, 0, 0, 1, b'g', 0, 1, b't', 0, 0, 0, 3];
        assert_eq!(GroupRecordKey::decode(&v0).unwrap(), key);
    }

    #[test]
    fn group_key_round_trip() {
        let key = GroupRecordKey::GroupMetadata {
            group: "grp".into(),
        };
        let bytes = key.encode().unwrap();
        assert_eq!(bytes.as_ref(), &[0, 2, 0, 3, b'g', b'r', b'p'][..]);
        assert_eq!(GroupRecordKey::decode(&bytes).unwrap(), key);
        assert_eq!(key.group(), "grp");
    }

    #[test]
    fn offset_value_v3_matches_kafka_bytes() {
        let value = OffsetCommitValue {
            offset: 42,
            leader_epoch: 7,
            metadata: "m".into(),
            commit_timestamp: 1000,
            expire_timestamp: -1,
        };
        let bytes = value.encode().unwrap();
        let mut expected = vec![0, 3];
        expected.extend_from_slice(&42i64.to_be_bytes());
        expected.extend_from_slice(&7i32.to_be_bytes());
        expected.extend_from_slice(&[0, 1, b'm']);
        expected.extend_from_slice(&1000i64.to_be_bytes());
        assert_eq!(bytes.as_ref(), expected.as_slice());
        assert_eq!(OffsetCommitValue::decode(&bytes).unwrap(), value);
    }

    #[test]
    fn offset_value_with_expiry_uses_v1() {
        let value = OffsetCommitValue {
            offset: 5,
            leader_epoch: -1,
            metadata: String::new(),
            commit_timestamp: 10,
            expire_timestamp: 20,
        };
        let bytes = value.encode().unwrap();
        assert_eq!(&bytes[..2], &[0, 1]);
        assert_eq!(OffsetCommitValue::decode(&bytes).unwrap(), value);
    }

    #[test]
    fn offset_value_old_and_flexible_versions_decode() {
        // v0: offset, metadata, commit timestamp.
        let mut v0 = vec![0, 0];
        v0.extend_from_slice(&9i64.to_be_bytes());
        v0.extend_from_slice(&[0, 2, b'h', b'i']);
        v0.extend_from_slice(&77i64.to_be_bytes());
        let d = OffsetCommitValue::decode(&v0).unwrap();
        assert_eq!(
            (
                d.offset,
                d.leader_epoch,
                d.metadata.as_str(),
                d.commit_timestamp
            ),
            (9, -1, "hi", 77)
        );
        // v4: flexible, compact string, empty tagged fields.
        let mut v4 = vec![0, 4];
        v4.extend_from_slice(&9i64.to_be_bytes());
        v4.extend_from_slice(&3i32.to_be_bytes());
        v4.extend_from_slice(&[3, b'h', b'i']);
        v4.extend_from_slice(&77i64.to_be_bytes());
        v4.push(0);
        let d = OffsetCommitValue::decode(&v4).unwrap();
        assert_eq!(
            (d.offset, d.leader_epoch, d.metadata.as_str()),
            (9, 3, "hi")
        );
    }

    #[test]
    fn group_value_round_trip() {
        let value = GroupMetadataValue {
            protocol_type: "consumer".into(),
            generation: 4,
            protocol: Some("range".into()),
            leader: Some("m1".into()),
            current_state_timestamp: 1234,
            members: vec![member("m1", None), member("m2", Some("i2"))],
        };
        let bytes = value.encode().unwrap();
        assert_eq!(&bytes[..2], &[0, 3]);
        assert_eq!(GroupMetadataValue::decode(&bytes).unwrap(), value);

        let empty = GroupMetadataValue {
            protocol_type: String::new(),
            generation: 1,
            protocol: None,
            leader: None,
            current_state_timestamp: -1,
            members: vec![],
        };
        assert_eq!(
            GroupMetadataValue::decode(&empty.encode().unwrap()).unwrap(),
            empty
        );
    }

    #[test]
    fn group_value_v0_decodes() {
        let mut v0 = vec![0, 0];
        v0.extend_from_slice(&[0, 8]);
        v0.extend_from_slice(b"consumer");
        v0.extend_from_slice(&2i32.to_be_bytes());
        v0.extend_from_slice(&[0, 5]);
        v0.extend_from_slice(b"range");
        v0.extend_from_slice(&[0, 1, b'a']);
        v0.extend_from_slice(&1i32.to_be_bytes()); // one member
        v0.extend_from_slice(&[0, 1, b'a', 0, 1, b'c', 0, 1, b'h']);
        v0.extend_from_slice(&10_000i32.to_be_bytes());
        v0.extend_from_slice(&0i32.to_be_bytes());
        v0.extend_from_slice(&1i32.to_be_bytes());
        v0.push(9);
        let d = GroupMetadataValue::decode(&v0).unwrap();
        assert_eq!(d.generation, 2);
        assert_eq!(d.current_state_timestamp, -1);
        let m = &d.members[0];
        assert_eq!((m.rebalance_timeout, m.session_timeout), (-1, 10_000));
        assert_eq!(m.assignment.as_ref(), &[9]);
    }

    #[test]
    fn truncated_and_corrupt_records_are_errors() {
        let value = GroupMetadataValue {
            protocol_type: "consumer".into(),
            generation: 4,
            protocol: Some("range".into()),
            leader: Some("m1".into()),
            current_state_timestamp: 1234,
            members: vec![member("m1", None)],
        };
        let bytes = value.encode().unwrap();
        for cut in 0..bytes.len() {
            assert!(
                GroupMetadataValue::decode(&bytes[..cut]).is_err(),
                "cut at {cut}"
            );
        }
        // A huge member count must not allocate.
        let mut huge = bytes[..bytes.len()].to_vec();
        let pos = 2 + 2 + 8 + 4 + 2 + 5 + 2 + 2 + 8;
        huge[pos..pos + 4].copy_from_slice(&i32::MAX.to_be_bytes());
        assert!(GroupMetadataValue::decode(&huge).is_err());
        assert!(matches!(
            GroupRecordKey::decode(&[0, 9]),
            Err(CodecError::UnsupportedVersion { .. })
        ));
        assert!(matches!(
            GroupRecordKey::decode(&[0, 2, 0, 2, 0xff, 0xfe]),
            Err(CodecError::InvalidUtf8(_))
        ));
        assert!(matches!(
            GroupRecordKey::decode(&[0, 2, 0xff, 0xf0]),
            Err(CodecError::InvalidLength { .. })
        ));
    }

    #[test]
    fn oversized_strings_are_rejected_on_encode() {
        let key = GroupRecordKey::GroupMetadata {
            group: "x".repeat(40_000),
        };
        assert!(matches!(key.encode(), Err(CodecError::TooLarge(_))));
    }
}

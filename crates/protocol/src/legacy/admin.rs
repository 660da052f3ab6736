//! CreateTopics v0-1 → v2, DeleteTopics v0 → v1, DescribeConfigs v0 → v1, DescribeLogDirs
//! v0 → v1.
//!
//! CreateTopics request v0: `[topic string | partitions i32 | replication i16 |
//! [partition i32 | [broker i32]] | [config string | value nullable_string]] | timeout i32`;
//! v1 appends `validate_only bool`. Response v0: `[topic string | error i16]`; v1 adds
//! `error_message nullable_string` per topic (v2 then adds throttle time first).
//!
//! DeleteTopics v0 is v1 on the wire (`[topic string] | timeout i32`); its response lacks
//! v1's leading throttle time: `[topic string | error i16]`.
//!
//! DescribeConfigs v0 request is v1 without `include_synonyms`: `[type i8 | name string |
//! keys nullable [string]]`. Response v0: `throttle i32 | [error i16 | message
//! nullable_string | type i8 | name string | [config string | value nullable_string |
//! read_only bool | is_default bool | is_sensitive bool]]`. v1 replaced `is_default` with
//! `config_source` and added synonyms; a config is default exactly when its source is
//! DEFAULT_CONFIG, which is how Kafka fills `is_default` for v0.
//!
//! DescribeLogDirs v0 is v1 on the wire: `nullable [topic string | [partition i32]]`, and the
//! response `throttle i32 | [error i16 | log_dir string | [name string | [partition i32 | size
//! i64 | offset_lag i64 | is_future bool]]]`.

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::create_topics_request::{
    CreatableReplicaAssignment, CreatableTopic, CreatableTopicConfig, CreateTopicsRequest,
};
use kafka_protocol::messages::create_topics_response::CreateTopicsResponse;
use kafka_protocol::messages::delete_topics_request::DeleteTopicsRequest;
use kafka_protocol::messages::delete_topics_response::DeleteTopicsResponse;
use kafka_protocol::messages::describe_configs_request::{
    DescribeConfigsRequest, DescribeConfigsResource,
};
use kafka_protocol::messages::describe_configs_response::DescribeConfigsResponse;
use kafka_protocol::messages::describe_log_dirs_request::DescribableLogDirTopic;
use kafka_protocol::messages::{
    BrokerId, DescribeLogDirsRequest, DescribeLogDirsResponse, TopicName,
};
use kafka_protocol::protocol::Encodable;

use super::LegacyError;
use super::wire;

/// DescribeLogDirs v1 only changed how quota throttling is signalled; v0 request and
/// response are v1's bytes, so kafka-protocol's v1 encoder writes the response.
const DESCRIBE_LOG_DIRS_V1: i16 = 1;

/// `ConfigSource.DEFAULT_CONFIG` in DescribeConfigs v1+.
const DEFAULT_CONFIG: i8 = 5;

pub(crate) fn decode_create_topics(
    version: i16,
    body: &mut Bytes,
) -> Result<CreateTopicsRequest, LegacyError> {
    // name + partitions + replication + two array counts
    let topic_count = wire::array_len(body, 16, "topics")?;
    let mut topics = Vec::with_capacity(topic_count);
    for _ in 0..topic_count {
        let name = wire::string(body, "topic name")?;
        let num_partitions = wire::i32(body, "partition count")?;
        let replication_factor = wire::i16(body, "replication factor")?;
        let assignment_count = wire::array_len(body, 8, "assignments")?;
        let mut assignments = Vec::with_capacity(assignment_count);
        for _ in 0..assignment_count {
            let partition_index = wire::i32(body, "assignment partition")?;
            let broker_ids = wire::i32_array(body, "assignment brokers", "broker id")?
                .into_iter()
                .map(BrokerId)
                .collect();
            assignments.push(
                CreatableReplicaAssignment::default()
                    .with_partition_index(partition_index)
                    .with_broker_ids(broker_ids),
            );
        }
        let config_count = wire::array_len(body, 4, "configs")?;
        let mut configs = Vec::with_capacity(config_count);
        for _ in 0..config_count {
            let name = wire::string(body, "config name")?;
            let value = wire::nullable_string(body, "config value")?;
            configs.push(
                CreatableTopicConfig::default()
                    .with_name(name)
                    .with_value(value),
            );
        }
        topics.push(
            CreatableTopic::default()
                .with_name(TopicName(name))
                .with_num_partitions(num_partitions)
                .with_replication_factor(replication_factor)
                .with_assignments(assignments)
                .with_configs(configs),
        );
    }
    let timeout_ms = wire::i32(body, "timeout")?;
    let validate_only = if version >= 1 {
        wire::bool(body, "validate only")?
    } else {
        false
    };
    Ok(CreateTopicsRequest::default()
        .with_topics(topics)
        .with_timeout_ms(timeout_ms)
        .with_validate_only(validate_only))
}

pub(crate) fn encode_create_topics_response(
    version: i16,
    response: &CreateTopicsResponse,
) -> Result<Bytes, LegacyError> {
    let mut out = BytesMut::new();
    wire::put_array_len(&mut out, response.topics.len())?;
    for topic in &response.topics {
        wire::put_string(&mut out, &topic.name.0)?;
        out.put_i16(topic.error_code);
        if version >= 1 {
            wire::put_nullable_string(&mut out, topic.error_message.as_deref())?;
        }
    }
    Ok(out.freeze())
}

pub(crate) fn decode_delete_topics(body: &mut Bytes) -> Result<DeleteTopicsRequest, LegacyError> {
    let count = wire::array_len(body, 2, "topic names")?;
    let mut names = Vec::with_capacity(count);
    for _ in 0..count {
        names.push(TopicName(wire::string(body, "topic name")?));
    }
    let timeout_ms = wire::i32(body, "timeout")?;
    Ok(DeleteTopicsRequest::default()
        .with_topic_names(names)
        .with_timeout_ms(timeout_ms))
}

pub(crate) fn encode_delete_topics_response(
    response: &DeleteTopicsResponse,
) -> Result<Bytes, LegacyError> {
    let mut out = BytesMut::new();
    wire::put_array_len(&mut out, response.responses.len())?;
    for r in &response.responses {
        // v1 requests are by name, so the name is always set; "" would only hide a bug.
        wire::put_string(&mut out, r.name.as_ref().map_or("", |n| &n.0))?;
        out.put_i16(r.error_code);
    }
    Ok(out.freeze())
}

pub(crate) fn decode_describe_configs(
    body: &mut Bytes,
) -> Result<DescribeConfigsRequest, LegacyError> {
    // type + name length + keys count
    let count = wire::array_len(body, 7, "resources")?;
    let mut resources = Vec::with_capacity(count);
    for _ in 0..count {
        let resource_type = wire::i8(body, "resource type")?;
        let resource_name = wire::string(body, "resource name")?;
        let keys = match wire::nullable_array_len(body, 2, "configuration keys")? {
            None => None,
            Some(n) => {
                let mut keys = Vec::with_capacity(n);
                for _ in 0..n {
                    keys.push(wire::string(body, "configuration key")?);
                }
                Some(keys)
            }
        };
        resources.push(
            DescribeConfigsResource::default()
                .with_resource_type(resource_type)
                .with_resource_name(resource_name)
                .with_configuration_keys(keys),
        );
    }
    Ok(DescribeConfigsRequest::default()
        .with_resources(resources)
        .with_include_synonyms(false))
}

pub(crate) fn encode_describe_configs_response(
    response: &DescribeConfigsResponse,
) -> Result<Bytes, LegacyError> {
    let mut out = BytesMut::new();
    out.put_i32(response.throttle_time_ms);
    wire::put_array_len(&mut out, response.results.len())?;
    for result in &response.results {
        out.put_i16(result.error_code);
        wire::put_nullable_string(&mut out, result.error_message.as_deref())?;
        out.put_i8(result.resource_type);
        wire::put_string(&mut out, &result.resource_name)?;
        wire::put_array_len(&mut out, result.configs.len())?;
        for c in &result.configs {
            wire::put_string(&mut out, &c.name)?;
            wire::put_nullable_string(&mut out, c.value.as_deref())?;
            out.put_u8(u8::from(c.read_only));
            out.put_u8(u8::from(c.config_source == DEFAULT_CONFIG));
            out.put_u8(u8::from(c.is_sensitive));
        }
    }
    Ok(out.freeze())
}

pub(crate) fn decode_describe_log_dirs(
    body: &mut Bytes,
) -> Result<DescribeLogDirsRequest, LegacyError> {
    // Read by hand (not with kafka-protocol's v1 decoder, which reserves an array's
    // claimed count before checking the bytes exist): topic name length + partitions count.
    let topics = match wire::nullable_array_len(body, 6, "log dir topics")? {
        None => None,
        Some(count) => {
            let mut topics = Vec::with_capacity(count);
            for _ in 0..count {
                let topic = wire::string(body, "log dir topic")?;
                let partitions = wire::i32_array(body, "log dir partitions", "log dir partition")?;
                topics.push(
                    DescribableLogDirTopic::default()
                        .with_topic(TopicName(topic))
                        .with_partitions(partitions),
                );
            }
            Some(topics)
        }
    };
    Ok(DescribeLogDirsRequest::default().with_topics(topics))
}

pub(crate) fn encode_describe_log_dirs_response(
    r: &DescribeLogDirsResponse,
) -> Result<Bytes, LegacyError> {
    let mut out = BytesMut::new();
    r.encode(&mut out, DESCRIBE_LOG_DIRS_V1)
        .map_err(|_| LegacyError::Malformed {
            what: "DescribeLogDirs v0 response",
        })?;
    Ok(out.freeze())
}

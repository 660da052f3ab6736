//! Admin API through librdkafka's AdminClient: CreateTopics, DeleteTopics, CreatePartitions,
//! DescribeConfigs, AlterConfigs, and the metadata that results.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::time::{Duration, Instant};

use kafka_protocol::messages::DescribeConfigsRequest;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::protocol::StrBytes;
use rdkafka::admin::{
    AlterConfig, ConfigResource, ConfigSource, NewPartitions, NewTopic, OwnedResourceSpecifier,
    ResourceSpecifier, TopicReplication,
};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::metadata::Metadata;
use rdkafka::producer::{BaseRecord, Producer};
use sluice_e2e::raw::RawConn;
use sluice_e2e::{
    Broker, CALL_TIMEOUT, admin, admin_opts, block_on, consumer, create_topic, producer,
};

type Admin = rdkafka::admin::AdminClient<DefaultClientContext>;

fn broker() -> Broker {
    Broker::start_with(&["--auto-create-topics", "false", "--default-partitions", "3"])
}

fn metadata(a: &Admin) -> Metadata {
    a.inner()
        .fetch_metadata(None, CALL_TIMEOUT)
        .expect("fetch_metadata")
}

fn partitions_of(a: &Admin, topic: &str) -> Option<usize> {
    metadata(a)
        .topics()
        .iter()
        .find(|t| t.name() == topic)
        .map(|t| t.partitions().len())
}

/// Metadata may lag an admin call in Kafka; wait (bounded) until it shows `want`.
fn wait_partitions(a: &Admin, topic: &str, want: Option<usize>) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let got = partitions_of(a, topic);
        if got == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "metadata for {topic}: want {want:?} partitions, got {got:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn create(
    a: &Admin,
    topics: &[NewTopic<'_>],
    validate_only: bool,
) -> Vec<Result<String, (String, RDKafkaErrorCode)>> {
    block_on(a.create_topics(topics, &admin_opts().validate_only(validate_only)))
        .expect("create_topics request")
}

fn err(name: &str, code: RDKafkaErrorCode) -> Result<String, (String, RDKafkaErrorCode)> {
    Err((name.to_string(), code))
}

#[test]
fn create_topics_and_metadata() {
    let broker = broker();
    let a = admin(&broker.bootstrap());

    let orders = NewTopic::new("orders", 3, TopicReplication::Fixed(1))
        .set("retention.ms", "86400000")
        .set("cleanup.policy", "compact");
    assert_eq!(create(&a, &[orders], false), vec![Ok("orders".to_string())]);

    wait_partitions(&a, "orders", Some(3));
    let md = metadata(&a);
    assert_eq!(md.brokers().len(), 1);
    let b = &md.brokers()[0];
    assert_eq!(b.id(), 1);
    assert_eq!(b.host(), "127.0.0.1");
    assert_eq!(b.port(), i32::from(broker.port()));
    assert_eq!(md.orig_broker_id(), 1);
    let t = md
        .topics()
        .iter()
        .find(|t| t.name() == "orders")
        .expect("orders in metadata");
    assert_eq!(t.error(), None);
    let mut ids: Vec<i32> = t.partitions().iter().map(|p| p.id()).collect();
    ids.sort_unstable();
    assert_eq!(ids, vec![0, 1, 2]);
    for p in t.partitions() {
        assert_eq!(p.error(), None, "partition {}", p.id());
        assert_eq!(p.leader(), 1, "leader of partition {}", p.id());
        assert_eq!(p.replicas(), &[1], "replicas of partition {}", p.id());
        assert_eq!(p.isr(), &[1], "isr of partition {}", p.id());
    }

    // Already exists (also when only validating).
    let again = NewTopic::new("orders", 1, TopicReplication::Fixed(1));
    assert_eq!(
        create(&a, std::slice::from_ref(&again), false),
        vec![err("orders", RDKafkaErrorCode::TopicAlreadyExists)]
    );
    assert_eq!(
        create(&a, &[again], true),
        vec![err("orders", RDKafkaErrorCode::TopicAlreadyExists)]
    );

    // validate_only: success, nothing created.
    let v = NewTopic::new("validated", 2, TopicReplication::Fixed(1));
    assert_eq!(create(&a, &[v], true), vec![Ok("validated".to_string())]);
    assert_eq!(
        partitions_of(&a, "validated"),
        None,
        "validate_only created the topic"
    );

    // Replication factor above the number of brokers.
    let rf2 = NewTopic::new("rf2", 1, TopicReplication::Fixed(2));
    assert_eq!(
        create(&a, &[rf2], false),
        vec![err("rf2", RDKafkaErrorCode::InvalidReplicationFactor)]
    );

    // Invalid names; 249 characters is the longest legal name.
    let long250 = "x".repeat(250);
    let long249 = "y".repeat(249);
    let bad = ["a/b", long250.as_str(), ".", "..", "bad name", "tab\tname"];
    for name in bad {
        let t = NewTopic::new(name, 1, TopicReplication::Fixed(1));
        assert_eq!(
            create(&a, &[t], false),
            vec![err(name, RDKafkaErrorCode::InvalidTopic)],
            "topic name {name:?}"
        );
    }
    let ok249 = NewTopic::new(&long249, 1, TopicReplication::Fixed(1));
    assert_eq!(create(&a, &[ok249], false), vec![Ok(long249.clone())]);

    // Invalid configs.
    let badcfg = NewTopic::new("badcfg", 1, TopicReplication::Fixed(1)).set("retention.ms", "abc");
    assert_eq!(
        create(&a, &[badcfg], false),
        vec![err("badcfg", RDKafkaErrorCode::InvalidConfig)]
    );
    let unknowncfg =
        NewTopic::new("unknowncfg", 1, TopicReplication::Fixed(1)).set("no.such.config", "1");
    assert_eq!(
        create(&a, &[unknowncfg], false),
        vec![err("unknowncfg", RDKafkaErrorCode::InvalidConfig)]
    );

    // Broker defaults for partitions and replication factor (-1 / -1).
    let dflt = NewTopic::new("defaulted", -1, TopicReplication::Fixed(-1));
    assert_eq!(
        create(&a, &[dflt], false),
        vec![Ok("defaulted".to_string())]
    );
    wait_partitions(&a, "defaulted", Some(3));

    // Several topics in one request: each gets its own result.
    let batch = [
        NewTopic::new("multi-ok", 2, TopicReplication::Fixed(1)),
        NewTopic::new("multi/bad", 2, TopicReplication::Fixed(1)),
        NewTopic::new("orders", 2, TopicReplication::Fixed(1)),
    ];
    let mut res = create(&a, &batch, false);
    res.sort_by_key(|r| match r {
        Ok(n) | Err((n, _)) => n.clone(),
    });
    assert_eq!(
        res,
        vec![
            Ok("multi-ok".to_string()),
            err("multi/bad", RDKafkaErrorCode::InvalidTopic),
            err("orders", RDKafkaErrorCode::TopicAlreadyExists),
        ]
    );
    wait_partitions(&a, "multi-ok", Some(2));

    // Nothing failed got created.
    let md = metadata(&a);
    let mut names: Vec<&str> = md
        .topics()
        .iter()
        .map(|t| t.name())
        .filter(|n| !n.starts_with("__"))
        .collect();
    names.sort_unstable();
    let mut want = vec!["defaulted", "multi-ok", "orders", long249.as_str()];
    want.sort_unstable();
    assert_eq!(names, want);
}

#[test]
fn delete_topics_and_create_partitions() {
    let broker = broker();
    let bs = broker.bootstrap();
    let a = admin(&bs);
    create_topic(&bs, "grow", 1, &[]);
    create_topic(&bs, "doomed", 2, &[]);

    let res = block_on(a.create_partitions(&[NewPartitions::new("grow", 4)], &admin_opts()))
        .expect("create_partitions");
    assert_eq!(res, vec![Ok("grow".to_string())]);
    wait_partitions(&a, "grow", Some(4));

    // Shrinking, same count, unknown topic.
    for (n, code) in [
        (2, RDKafkaErrorCode::InvalidPartitions),
        (4, RDKafkaErrorCode::InvalidPartitions),
    ] {
        let res = block_on(a.create_partitions(&[NewPartitions::new("grow", n)], &admin_opts()))
            .expect("create_partitions");
        assert_eq!(res, vec![err("grow", code)], "grow to {n}");
    }
    let res = block_on(a.create_partitions(&[NewPartitions::new("nope", 2)], &admin_opts()))
        .expect("create_partitions");
    assert_eq!(
        res,
        vec![err("nope", RDKafkaErrorCode::UnknownTopicOrPartition)]
    );
    // validate_only does not add partitions.
    let res = block_on(a.create_partitions(
        &[NewPartitions::new("grow", 6)],
        &admin_opts().validate_only(true),
    ))
    .expect("create_partitions");
    assert_eq!(res, vec![Ok("grow".to_string())]);
    assert_eq!(partitions_of(&a, "grow"), Some(4));

    // The new partition takes writes.
    let p = producer(&bs, &[("acks", "all")]);
    p.send(
        BaseRecord::with_opaque_to("grow", 0)
            .key("k")
            .partition(3)
            .payload("p3"),
    )
    .map_err(|(e, _)| e)
    .expect("enqueue");
    p.flush(CALL_TIMEOUT).expect("flush");
    assert_eq!(p.context().deliveries()[0].result, Ok((3, 0)));

    // Put data in "doomed", delete it, recreate it: it comes back empty.
    p.send(
        BaseRecord::with_opaque_to("doomed", 1)
            .key("k")
            .partition(1)
            .payload("gone"),
    )
    .map_err(|(e, _)| e)
    .expect("enqueue");
    p.flush(CALL_TIMEOUT).expect("flush");
    assert_eq!(p.context().deliveries()[1].result, Ok((1, 0)));
    let res = block_on(a.delete_topics(&["doomed"], &admin_opts())).expect("delete_topics");
    assert_eq!(res, vec![Ok("doomed".to_string())]);
    wait_partitions(&a, "doomed", None);
    let res = block_on(a.delete_topics(&["doomed"], &admin_opts())).expect("delete_topics");
    assert_eq!(
        res,
        vec![err("doomed", RDKafkaErrorCode::UnknownTopicOrPartition)]
    );
    create_topic(&bs, "doomed", 2, &[]);
    wait_partitions(&a, "doomed", Some(2));
    let c = consumer(&bs, &[]);
    for part in 0..2 {
        assert_eq!(
            rdkafka::consumer::Consumer::fetch_watermarks(&c, "doomed", part, CALL_TIMEOUT)
                .expect("watermarks"),
            (0, 0),
            "recreated topic partition {part} is empty"
        );
    }
    assert_eq!(partitions_of(&a, "grow"), Some(4), "other topics untouched");
}

fn describe(a: &Admin, spec: ResourceSpecifier<'_>) -> ConfigResource {
    let mut res = block_on(a.describe_configs([&spec], &admin_opts())).expect("describe_configs");
    assert_eq!(res.len(), 1);
    res.remove(0)
        .unwrap_or_else(|e| panic!("describe_configs {spec:?}: {e:?}"))
}

/// Asserts value, source and default flag of one config entry.
fn assert_entry(
    r: &ConfigResource,
    name: &str,
    value: &str,
    source: ConfigSource,
    is_default: bool,
) {
    let e = r
        .get(name)
        .unwrap_or_else(|| panic!("{:?}: no config {name}", r.specifier));
    assert_eq!(e.value.as_deref(), Some(value), "{name}: value");
    assert_eq!(e.source, source, "{name}: source");
    assert_eq!(e.is_default, is_default, "{name}: is_default");
    assert!(!e.is_sensitive, "{name}: is_sensitive");
}

#[test]
fn describe_and_alter_configs() {
    let broker = broker();
    let bs = broker.bootstrap();
    let a = admin(&bs);
    create_topic(
        &bs,
        "cfg",
        1,
        &[("retention.ms", "1000"), ("cleanup.policy", "compact")],
    );

    let t = describe(&a, ResourceSpecifier::Topic("cfg"));
    assert_eq!(
        t.specifier,
        OwnedResourceSpecifier::Topic("cfg".to_string())
    );
    let mut names: Vec<&str> = t.entries.iter().map(|e| e.name.as_str()).collect();
    names.sort_unstable();
    let n = names.len();
    names.dedup();
    assert_eq!(names.len(), n, "duplicate config entries");
    assert_entry(
        &t,
        "retention.ms",
        "1000",
        ConfigSource::DynamicTopic,
        false,
    );
    assert_entry(
        &t,
        "cleanup.policy",
        "compact",
        ConfigSource::DynamicTopic,
        false,
    );
    // Kafka's defaults for everything not set on the topic.
    assert_entry(
        &t,
        "segment.bytes",
        "1073741824",
        ConfigSource::Default,
        true,
    );
    assert_entry(&t, "retention.bytes", "-1", ConfigSource::Default, true);
    assert_entry(
        &t,
        "max.message.bytes",
        "1048588",
        ConfigSource::Default,
        true,
    );
    assert_entry(&t, "min.insync.replicas", "1", ConfigSource::Default, true);
    assert_entry(
        &t,
        "compression.type",
        "producer",
        ConfigSource::Default,
        true,
    );
    assert_entry(
        &t,
        "message.timestamp.type",
        "CreateTime",
        ConfigSource::Default,
        true,
    );
    assert_entry(&t, "segment.ms", "604800000", ConfigSource::Default, true);

    let b = describe(&a, ResourceSpecifier::Broker(1));
    assert_eq!(b.specifier, OwnedResourceSpecifier::Broker(1));
    // Set by the command line (Kafka: server.properties = static broker config).
    assert_entry(&b, "num.partitions", "3", ConfigSource::StaticBroker, false);
    assert_entry(
        &b,
        "auto.create.topics.enable",
        "false",
        ConfigSource::StaticBroker,
        false,
    );
    assert_entry(
        &b,
        "group.initial.rebalance.delay.ms",
        "0",
        ConfigSource::StaticBroker,
        false,
    );
    // Left at Kafka's defaults.
    assert_entry(
        &b,
        "log.segment.bytes",
        "1073741824",
        ConfigSource::Default,
        true,
    );
    assert_entry(
        &b,
        "message.max.bytes",
        "1048588",
        ConfigSource::Default,
        true,
    );
    assert_entry(
        &b,
        "fetch.max.bytes",
        "57671680",
        ConfigSource::Default,
        true,
    );
    // Every setting with a Kafka name is listed, under each of its names.
    assert_entry(
        &b,
        "transaction.max.timeout.ms",
        "900000",
        ConfigSource::Default,
        true,
    );
    assert_entry(&b, "broker.id", "1", ConfigSource::Default, true);
    assert_entry(&b, "node.id", "1", ConfigSource::Default, true);

    // Unknown topic: UNKNOWN_TOPIC_OR_PARTITION for that resource. (The rdkafka crate drops
    // per-resource DescribeConfigs errors, so ask over a raw connection.)
    for version in [1i16, 4] {
        let req = DescribeConfigsRequest::default().with_resources(vec![
            DescribeConfigsResource::default()
                .with_resource_type(2)
                .with_resource_name(StrBytes::from_static_str("missing")),
            DescribeConfigsResource::default()
                .with_resource_type(2)
                .with_resource_name(StrBytes::from_static_str("cfg"))
                .with_configuration_keys(Some(vec![StrBytes::from_static_str("retention.ms")])),
        ]);
        let resp = RawConn::connect(broker.addr()).roundtrip(version, 1, &req);
        let got: Vec<(&str, i16, usize)> = resp
            .results
            .iter()
            .map(|r| (r.resource_name.as_str(), r.error_code, r.configs.len()))
            .collect();
        assert_eq!(
            got,
            vec![("missing", 3, 0), ("cfg", 0, 1)],
            "DescribeConfigs v{version}"
        );
    }

    // AlterConfigs replaces the whole set: cleanup.policy falls back to its default.
    let alter = AlterConfig::new(ResourceSpecifier::Topic("cfg")).set("retention.ms", "2000");
    let res = block_on(a.alter_configs([&alter], &admin_opts())).expect("alter_configs");
    assert_eq!(
        res,
        vec![Ok(OwnedResourceSpecifier::Topic("cfg".to_string()))]
    );
    let t = describe(&a, ResourceSpecifier::Topic("cfg"));
    assert_entry(
        &t,
        "retention.ms",
        "2000",
        ConfigSource::DynamicTopic,
        false,
    );
    assert_entry(&t, "cleanup.policy", "delete", ConfigSource::Default, true);

    // validate_only changes nothing.
    let alter = AlterConfig::new(ResourceSpecifier::Topic("cfg")).set("retention.ms", "5000");
    let res = block_on(a.alter_configs([&alter], &admin_opts().validate_only(true)))
        .expect("alter_configs");
    assert_eq!(
        res,
        vec![Ok(OwnedResourceSpecifier::Topic("cfg".to_string()))]
    );
    let t = describe(&a, ResourceSpecifier::Topic("cfg"));
    assert_entry(
        &t,
        "retention.ms",
        "2000",
        ConfigSource::DynamicTopic,
        false,
    );

    // Deprecated message-format configs: Kafka 3.x accepts them (and ignores them, the
    // format is always v2), so tools that still set them keep working.
    assert_entry(
        &t,
        "message.format.version",
        "3.0-IV1",
        ConfigSource::Default,
        true,
    );
    for (name, value) in [
        ("message.format.version", "0.10.0.0"),
        ("message.downconversion.enable", "false"),
        ("message.timestamp.difference.max.ms", "60000"),
    ] {
        assert_eq!(
            raw_alter(
                &broker,
                1,
                "cfg",
                &[("retention.ms", Some("2000")), (name, Some(value))]
            ),
            0,
            "AlterConfigs {name}={value}"
        );
        let t = describe(&a, ResourceSpecifier::Topic("cfg"));
        assert_entry(&t, name, value, ConfigSource::DynamicTopic, false);
    }
    assert_eq!(
        raw_alter(&broker, 1, "cfg", &[("retention.ms", Some("2000"))]),
        0
    );

    // Per-resource errors (the rdkafka crate drops them from alter_configs results, so ask
    // over a raw connection): invalid value -> INVALID_CONFIG, unknown config name ->
    // INVALID_CONFIG, unknown topic -> UNKNOWN_TOPIC_OR_PARTITION.
    for version in [0i16, 1, 2] {
        assert_eq!(
            raw_alter(&broker, version, "cfg", &[("retention.ms", Some("abc"))]),
            40,
            "AlterConfigs v{version} retention.ms=abc"
        );
        assert_eq!(
            raw_alter(&broker, version, "cfg", &[("no.such.config", Some("1"))]),
            40,
            "AlterConfigs v{version} unknown config"
        );
        assert_eq!(
            raw_alter(&broker, version, "missing", &[("retention.ms", Some("1"))]),
            3,
            "AlterConfigs v{version} unknown topic"
        );
    }
    let t = describe(&a, ResourceSpecifier::Topic("cfg"));
    assert_entry(
        &t,
        "retention.ms",
        "2000",
        ConfigSource::DynamicTopic,
        false,
    );

    // IncrementalAlterConfigs changes only what it names.
    for version in [0i16, 1] {
        assert_eq!(
            raw_incremental(
                &broker,
                version,
                "cfg",
                &[("cleanup.policy", OP_SET, Some("compact"))]
            ),
            0
        );
        let t = describe(&a, ResourceSpecifier::Topic("cfg"));
        assert_entry(
            &t,
            "retention.ms",
            "2000",
            ConfigSource::DynamicTopic,
            false,
        );
        assert_entry(
            &t,
            "cleanup.policy",
            "compact",
            ConfigSource::DynamicTopic,
            false,
        );
        assert_eq!(
            raw_incremental(
                &broker,
                version,
                "cfg",
                &[("cleanup.policy", OP_APPEND, Some("delete"))]
            ),
            0
        );
        let t = describe(&a, ResourceSpecifier::Topic("cfg"));
        assert_entry(
            &t,
            "cleanup.policy",
            "compact,delete",
            ConfigSource::DynamicTopic,
            false,
        );
        assert_eq!(
            raw_incremental(
                &broker,
                version,
                "cfg",
                &[("cleanup.policy", OP_SUBTRACT, Some("compact"))]
            ),
            0
        );
        let t = describe(&a, ResourceSpecifier::Topic("cfg"));
        assert_entry(
            &t,
            "cleanup.policy",
            "delete",
            ConfigSource::DynamicTopic,
            false,
        );
        assert_eq!(
            raw_incremental(
                &broker,
                version,
                "cfg",
                &[("cleanup.policy", OP_DELETE, None)]
            ),
            0
        );
        let t = describe(&a, ResourceSpecifier::Topic("cfg"));
        assert_entry(&t, "cleanup.policy", "delete", ConfigSource::Default, true);
        assert_eq!(
            raw_incremental(
                &broker,
                version,
                "cfg",
                &[("retention.ms", OP_SET, Some("abc"))]
            ),
            40
        );
        assert_eq!(
            raw_incremental(
                &broker,
                version,
                "missing",
                &[("retention.ms", OP_SET, Some("1"))]
            ),
            3
        );
    }
    let t = describe(&a, ResourceSpecifier::Topic("cfg"));
    assert_entry(
        &t,
        "retention.ms",
        "2000",
        ConfigSource::DynamicTopic,
        false,
    );
}

const OP_SET: i8 = 0;
const OP_DELETE: i8 = 1;
const OP_APPEND: i8 = 2;
const OP_SUBTRACT: i8 = 3;

/// AlterConfigs on one topic over a raw connection; returns the resource's error code.
fn raw_alter(broker: &Broker, version: i16, topic: &str, configs: &[(&str, Option<&str>)]) -> i16 {
    use kafka_protocol::messages::AlterConfigsRequest;
    use kafka_protocol::messages::alter_configs_request::{AlterConfigsResource, AlterableConfig};
    let req = AlterConfigsRequest::default().with_resources(vec![
        AlterConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(StrBytes::from_string(topic.to_string()))
            .with_configs(
                configs
                    .iter()
                    .map(|(k, v)| {
                        AlterableConfig::default()
                            .with_name(StrBytes::from_string(k.to_string()))
                            .with_value(v.map(|v| StrBytes::from_string(v.to_string())))
                    })
                    .collect(),
            ),
    ]);
    let resp = RawConn::connect(broker.addr()).roundtrip(version, 1, &req);
    assert_eq!(resp.responses.len(), 1);
    assert_eq!(resp.responses[0].resource_name.as_str(), topic);
    resp.responses[0].error_code
}

/// IncrementalAlterConfigs on one topic over a raw connection; returns the error code.
fn raw_incremental(
    broker: &Broker,
    version: i16,
    topic: &str,
    ops: &[(&str, i8, Option<&str>)],
) -> i16 {
    use kafka_protocol::messages::IncrementalAlterConfigsRequest;
    use kafka_protocol::messages::incremental_alter_configs_request::{
        AlterConfigsResource, AlterableConfig,
    };
    let req = IncrementalAlterConfigsRequest::default().with_resources(vec![
        AlterConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(StrBytes::from_string(topic.to_string()))
            .with_configs(
                ops.iter()
                    .map(|(k, op, v)| {
                        AlterableConfig::default()
                            .with_name(StrBytes::from_string(k.to_string()))
                            .with_config_operation(*op)
                            .with_value(v.map(|v| StrBytes::from_string(v.to_string())))
                    })
                    .collect(),
            ),
    ]);
    let resp = RawConn::connect(broker.addr()).roundtrip(version, 1, &req);
    assert_eq!(resp.responses.len(), 1);
    assert_eq!(resp.responses[0].resource_name.as_str(), topic);
    resp.responses[0].error_code
}

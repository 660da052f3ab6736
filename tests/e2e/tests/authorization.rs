//! ACLs enforced end to end: a broker with `--authorizer on`, the super user `admin`, a SASL
//! user `bob` and an mTLS client whose certificate maps to `User:carol`. Without ACLs they
//! get Kafka's authorization errors for each API; after `sluice acl create` the same
//! clients succeed; ACLs survive kill -9.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::time::Duration;

use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    DescribeGroupsRequest, FetchRequest, GroupId, InitProducerIdRequest, JoinGroupRequest,
    MetadataRequest, ProduceRequest, TopicName, TransactionalId,
};
use kafka_protocol::protocol::StrBytes;
use rdkafka::producer::{BaseRecord, Producer};
use sluice_e2e::certs::TestCa;
use sluice_e2e::raw::{BatchBuilder, RawConn};
use sluice_e2e::*;

const ADMIN_PASSWORD: &str = "admin-secret";
const BOB_PASSWORD: &str = "bob-secret";

struct Secured {
    broker: Broker,
    ca: TestCa,
    _dir: tempfile::TempDir,
    sasl: u16,
    ssl: u16,
}

impl Secured {
    fn start() -> Secured {
        let dir = tempfile::tempdir().unwrap();
        let ca = TestCa::new(dir.path(), "ca");
        let server = ca.server("server");
        let (sasl, ssl) = (free_port(), free_port());
        let (cert, key, ca_file) = (
            server.cert.display().to_string(),
            server.key.display().to_string(),
            ca.cert.display().to_string(),
        );
        let broker = Broker::start_with_port(move |port| {
            [
                "--listeners",
                &format!(
                    "PLAINTEXT://127.0.0.1:{port},SASL_PLAINTEXT://127.0.0.1:{sasl},SSL://127.0.0.1:{ssl}"
                ),
                "--ssl-cert-file",
                &cert,
                "--ssl-key-file",
                &key,
                "--ssl-ca-file",
                &ca_file,
                "--ssl-client-auth",
                "required",
                "--ssl-principal-mapping-rules",
                "RULE:^CN=([^,]+),.*$/$1/L",
                "--authorizer",
                "on",
                "--super-users",
                "User:admin",
                "--bootstrap-user",
                &format!("admin:{ADMIN_PASSWORD}"),
            ]
            .iter()
            .map(|s| s.to_string())
            .collect()
        });
        let s = Secured {
            broker,
            ca,
            _dir: dir,
            sasl,
            ssl,
        };
        s.sluice(&["user", "create", "bob", "--password", BOB_PASSWORD]);
        s.sluice(&["topic", "create", "orders", "--partitions", "4"]);
        s
    }

    /// Runs `sluice <args>` as admin over SASL_PLAINTEXT and returns its stdout.
    fn sluice(&self, args: &[&str]) -> String {
        let brokers = format!("127.0.0.1:{}", self.sasl);
        let mut all = args.to_vec();
        all.extend([
            "--brokers",
            &brokers,
            "--security-protocol",
            "SASL_PLAINTEXT",
            "--sasl-mechanism",
            "SCRAM-SHA-256",
            "--sasl-username",
            "admin",
        ]);
        let out = run_sluice_with_env(
            &all,
            &[("SLUICE_SASL_PASSWORD", ADMIN_PASSWORD)],
            CALL_TIMEOUT,
        );
        assert_eq!(
            out.status.map(|s| s.success()),
            Some(true),
            "sluice {args:?}: {}",
            out.stderr
        );
        out.stdout
    }

    /// A raw connection authenticated with PLAIN as `user`.
    fn login(&self, user: &str, password: &str) -> RawConn {
        RawConn::plain_login(
            format!("127.0.0.1:{}", self.sasl).parse().unwrap(),
            user,
            password,
        )
    }
}

fn name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

/// Produce v9 of one record to each partition of `orders`; the error code per partition.
fn produce_codes(conn: &mut RawConn, id: i32) -> Vec<(i32, i16)> {
    let batch = BatchBuilder::new(1_700_000_000_000)
        .record(Some(b"k"), Some(b"v"))
        .build();
    let request = ProduceRequest::default()
        .with_acks(1)
        .with_timeout_ms(5000)
        .with_topic_data(vec![
            TopicProduceData::default()
                .with_name(name("orders"))
                .with_partition_data(
                    (0..4)
                        .map(|p| {
                            PartitionProduceData::default()
                                .with_index(p)
                                .with_records(Some(batch.clone()))
                        })
                        .collect(),
                ),
        ]);
    let response = conn.roundtrip(9, id, &request);
    let mut codes: Vec<(i32, i16)> = response
        .responses
        .iter()
        .flat_map(|t| {
            t.partition_responses
                .iter()
                .map(|p| (p.index, p.error_code))
        })
        .collect();
    codes.sort_unstable();
    codes
}

/// Fetch v12 of every partition of `orders` from offset 0; the error code per partition.
fn fetch_codes(conn: &mut RawConn, id: i32) -> Vec<(i32, i16)> {
    let request = FetchRequest::default()
        .with_max_wait_ms(0)
        .with_max_bytes(1 << 20)
        .with_topics(vec![
            FetchTopic::default()
                .with_topic(name("orders"))
                .with_partitions(
                    (0..4)
                        .map(|p| {
                            FetchPartition::default()
                                .with_partition(p)
                                .with_partition_max_bytes(1 << 20)
                        })
                        .collect(),
                ),
        ]);
    let response = conn.roundtrip(12, id, &request);
    let mut codes: Vec<(i32, i16)> = response
        .responses
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(|p| (p.partition_index, p.error_code))
        })
        .collect();
    codes.sort_unstable();
    codes
}

fn join_code(conn: &mut RawConn, id: i32) -> i16 {
    let request = JoinGroupRequest::default()
        .with_group_id(kafka_protocol::messages::GroupId(
            StrBytes::from_static_str("g1"),
        ))
        .with_session_timeout_ms(10_000)
        .with_rebalance_timeout_ms(10_000)
        .with_protocol_type(StrBytes::from_static_str("consumer"));
    conn.roundtrip(7, id, &request).error_code
}

fn init_producer_code(conn: &mut RawConn, id: i32, txn: Option<&str>) -> i16 {
    let request = InitProducerIdRequest::default()
        .with_transactional_id(txn.map(|t| TransactionalId(StrBytes::from_string(t.to_string()))))
        .with_transaction_timeout_ms(10_000)
        .with_producer_id(kafka_protocol::messages::ProducerId(-1))
        .with_producer_epoch(-1);
    conn.roundtrip(4, id, &request).error_code
}

/// The authorized operations DescribeGroups (v3+) reports for `group`.
fn group_ops(conn: &mut RawConn, id: i32, group: &str) -> i32 {
    let request = DescribeGroupsRequest::default()
        .with_groups(vec![GroupId(StrBytes::from_string(group.to_string()))])
        .with_include_authorized_operations(true);
    let response = conn.roundtrip(5, id, &request);
    assert_eq!(response.groups.len(), 1);
    response.groups[0].authorized_operations
}

/// Kafka 3.7 has no group configs, so a group's operations are READ (3), DELETE (6) and
/// DESCRIBE (8), with or without an authorizer (librdkafka's 0081 checks exactly these).
#[test]
fn a_group_s_authorized_operations_are_read_delete_and_describe() {
    const READ_DELETE_DESCRIBE: i32 = (1 << 3) | (1 << 6) | (1 << 8);
    let plain = Broker::start();
    let mut anyone = RawConn::connect(plain.addr());
    assert_eq!(group_ops(&mut anyone, 1, "g-ops"), READ_DELETE_DESCRIBE);

    let s = Secured::start();
    let mut admin = s.login("admin", ADMIN_PASSWORD);
    assert_eq!(
        group_ops(&mut admin, 2, "g-ops"),
        READ_DELETE_DESCRIBE,
        "a super user"
    );
    s.sluice(&[
        "acl",
        "create",
        "--allow",
        "User:bob",
        "--operation",
        "READ",
        "--group",
        "g-ops",
    ]);
    let mut bob = s.login("bob", BOB_PASSWORD);
    assert_eq!(
        group_ops(&mut bob, 3, "g-ops"),
        (1 << 3) | (1 << 8),
        "READ and the DESCRIBE it implies"
    );
}

#[test]
fn an_unauthorized_principal_gets_kafka_s_errors_until_an_acl_allows_it() {
    let mut s = Secured::start();
    let mut bob = s.login("bob", BOB_PASSWORD);
    let denied = |code| (0..4).map(|p| (p, code)).collect::<Vec<_>>();
    assert_eq!(produce_codes(&mut bob, 10), denied(29));
    assert_eq!(fetch_codes(&mut bob, 11), denied(29));
    assert_eq!(join_code(&mut bob, 12), 30);
    assert_eq!(init_producer_code(&mut bob, 13, Some("tx-bob")), 53);
    assert_eq!(init_producer_code(&mut bob, 14, None), 31);

    // Metadata hides the topic, and answers it by name exactly as a missing one.
    let all = bob.roundtrip(12, 15, &MetadataRequest::default().with_topics(None));
    assert!(
        all.topics.is_empty(),
        "topics visible to bob: {:?}",
        all.topics
    );
    let named = bob.roundtrip(
        12,
        16,
        &MetadataRequest::default()
            .with_allow_auto_topic_creation(false)
            .with_topics(Some(vec![
                MetadataRequestTopic::default().with_name(Some(name("orders"))),
                MetadataRequestTopic::default().with_name(Some(name("missing"))),
            ])),
    );
    let mut entries: Vec<_> = named.topics.clone();
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    assert_eq!(entries.len(), 2);
    for t in &entries {
        assert_eq!(
            (t.error_code, t.partitions.len(), t.topic_id),
            (29, 0, uuid::Uuid::nil())
        );
    }
    assert_eq!(
        entries[0].clone().with_name(None),
        entries[1].clone().with_name(None),
        "an existing and a missing topic must look alike"
    );

    // ACLs, made before they are needed and listed back.
    s.sluice(&[
        "acl",
        "create",
        "--allow",
        "User:bob",
        "--operation",
        "WRITE",
        "--operation",
        "READ",
        "--topic",
        "orders",
    ]);
    s.sluice(&[
        "acl",
        "create",
        "--allow",
        "User:bob",
        "--operation",
        "READ",
        "--group",
        "g",
        "--pattern",
        "prefixed",
    ]);
    s.sluice(&[
        "acl",
        "create",
        "--allow",
        "User:bob",
        "--operation",
        "WRITE",
        "--transactional-id",
        "tx-bob",
    ]);
    let listed = s.sluice(&["acl", "list", "--principal", "User:bob"]);
    assert_eq!(
        listed.lines().collect::<Vec<_>>(),
        [
            "PRINCIPAL  PERMISSION  OPERATION  HOST  RESOURCE          PATTERN   NAME",
            "User:bob   ALLOW       READ       *     TOPIC             LITERAL   orders",
            "User:bob   ALLOW       WRITE      *     TOPIC             LITERAL   orders",
            "User:bob   ALLOW       READ       *     GROUP             PREFIXED  g",
            "User:bob   ALLOW       WRITE      *     TRANSACTIONAL_ID  LITERAL   tx-bob",
        ]
    );

    assert_eq!(produce_codes(&mut bob, 20), denied(0));
    assert_eq!(fetch_codes(&mut bob, 21), denied(0));
    assert_ne!(join_code(&mut bob, 22), 30);
    assert_eq!(init_producer_code(&mut bob, 23, Some("tx-bob")), 0);
    assert_eq!(
        init_producer_code(&mut bob, 24, None),
        0,
        "WRITE on a topic allows idempotence"
    );
    let all = bob.roundtrip(
        12,
        25,
        &MetadataRequest::default()
            .with_topics(None)
            .with_include_topic_authorized_operations(true),
    );
    let topics: Vec<(String, i32)> = all
        .topics
        .iter()
        .map(|t| {
            (
                t.name.as_ref().unwrap().to_string(),
                t.topic_authorized_operations,
            )
        })
        .collect();
    // READ (3), WRITE (4) and the DESCRIBE (8) they imply.
    assert_eq!(
        topics,
        vec![("orders".to_string(), (1 << 3) | (1 << 4) | (1 << 8))]
    );

    // The ACLs (and users) survive kill -9.
    s.broker.kill9();
    s.broker.restart();
    let mut bob = s.login("bob", BOB_PASSWORD);
    assert_eq!(produce_codes(&mut bob, 30), denied(0));
    let listed_again = s.sluice(&["acl", "list", "--principal", "User:bob"]);
    assert_eq!(listed_again, listed);

    // Deleting them takes the access away again.
    let deleted = s.sluice(&[
        "acl",
        "delete",
        "--principal",
        "User:bob",
        "--topic",
        "orders",
    ]);
    assert_eq!(deleted.lines().count(), 2, "{deleted}");
    assert_eq!(produce_codes(&mut bob, 31), denied(29));
}

#[test]
fn a_client_certificate_names_the_principal_through_the_mapping_rules() {
    let s = Secured::start();
    let carol = s.ca.client("carol", "sluice", "eng", "Carol");
    let settings = [
        ("security.protocol", "ssl".to_string()),
        ("ssl.ca.location", s.ca.cert.display().to_string()),
        ("ssl.certificate.location", carol.cert.display().to_string()),
        ("ssl.key.location", carol.key.display().to_string()),
        ("message.timeout.ms", "5000".to_string()),
    ];
    let settings: Vec<(&str, &str)> = settings.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let bootstrap = format!("127.0.0.1:{}", s.ssl);
    let produce_one = || {
        let p = producer(&bootstrap, &settings);
        p.send(
            BaseRecord::with_opaque_to("orders", 0)
                .key("k")
                .payload("from carol"),
        )
        .map_err(|(e, _)| e)
        .expect("enqueue");
        let _ = p.flush(Duration::from_secs(10));
        p.context().deliveries().remove(0).result
    };
    let refused = produce_one();
    assert!(
        matches!(
            refused,
            Err(rdkafka::error::KafkaError::MessageProduction(
                rdkafka::types::RDKafkaErrorCode::TopicAuthorizationFailed
            ))
        ),
        "{refused:?}"
    );
    // CN=Carol,OU=eng,O=sluice maps to User:carol.
    s.sluice(&[
        "acl",
        "create",
        "--allow",
        "User:carol",
        "--operation",
        "WRITE",
        "--topic",
        "orders",
    ]);
    assert!(produce_one().is_ok());
}

//! Listeners, TLS, mTLS and SASL against a real broker with four listeners (PLAINTEXT, SSL,
//! SASL_PLAINTEXT, SASL_SSL) and certificates made by the test: librdkafka clients over
//! each, hand-built SASL frames for the exact error codes, users that survive kill -9.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use kafka_protocol::messages::{
    ApiVersionsRequest, MetadataRequest, SaslAuthenticateRequest, SaslHandshakeRequest,
};
use kafka_protocol::protocol::StrBytes;
use rdkafka::consumer::Consumer;
use rdkafka::producer::{BaseRecord, Producer};
use sluice_e2e::certs::{Pem, TestCa};
use sluice_e2e::raw::{RawConn, frame};
use sluice_e2e::*;
use sluice_security::sasl::scram::ScramClient;
use sluice_security::sasl::{ClientMechanism, ScramMechanism};

const ADMIN: (&str, &str) = ("admin", "admin-secret");

/// A broker with one listener of each protocol, TLS files made for it, and the bootstrap
/// user `admin`.
struct Secure {
    broker: Broker,
    ca: TestCa,
    _certs: tempfile::TempDir,
    dir: std::path::PathBuf,
    ssl: u16,
    sasl_plaintext: u16,
    sasl_ssl: u16,
}

impl Secure {
    fn start(client_auth: &str, extra: &[&str]) -> Secure {
        let certs = tempfile::tempdir().unwrap();
        let dir = certs.path().to_path_buf();
        let ca = TestCa::new(&dir, "ca");
        let server = ca.server("server");
        let (ssl, sasl_plaintext, sasl_ssl) = (free_port(), free_port(), free_port());
        let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        let (cert, key, ca_file) = (
            server.cert.display().to_string(),
            server.key.display().to_string(),
            ca.cert.display().to_string(),
        );
        let client_auth = client_auth.to_string();
        let broker = Broker::start_with_port(move |port| {
            let mut args: Vec<String> = [
                "--listeners".to_string(),
                format!(
                    "PLAINTEXT://127.0.0.1:{port},SSL://127.0.0.1:{ssl},SASL_PLAINTEXT://127.0.0.1:{sasl_plaintext},SASL_SSL://127.0.0.1:{sasl_ssl}"
                ),
                "--ssl-cert-file".into(),
                cert,
                "--ssl-key-file".into(),
                key,
                "--ssl-ca-file".into(),
                ca_file,
                "--ssl-client-auth".into(),
                client_auth,
                "--sasl-mechanisms".into(),
                "PLAIN,SCRAM-SHA-256,SCRAM-SHA-512,OAUTHBEARER".into(),
                "--bootstrap-user".into(),
                format!("{}:{}", ADMIN.0, ADMIN.1),
            ]
            .into();
            args.extend(extra);
            args
        });
        Secure {
            broker,
            ca,
            _certs: certs,
            dir,
            ssl,
            sasl_plaintext,
            sasl_ssl,
        }
    }

    fn addr(port: u16) -> String {
        format!("127.0.0.1:{port}")
    }

    fn ca_path(&self) -> String {
        self.ca.cert.display().to_string()
    }

    /// librdkafka settings for SASL_SSL with `mechanism` and the user.
    fn sasl_ssl(&self, mechanism: &str, user: (&str, &str)) -> Vec<(String, String)> {
        vec![
            ("security.protocol".into(), "sasl_ssl".into()),
            ("ssl.ca.location".into(), self.ca_path()),
            ("sasl.mechanisms".into(), mechanism.into()),
            ("sasl.username".into(), user.0.into()),
            ("sasl.password".into(), user.1.into()),
        ]
    }

    /// librdkafka settings for SSL, with a client certificate when given.
    fn ssl(&self, client: Option<&Pem>) -> Vec<(String, String)> {
        let mut c = vec![
            ("security.protocol".to_string(), "ssl".to_string()),
            ("ssl.ca.location".into(), self.ca_path()),
        ];
        if let Some(pem) = client {
            c.push((
                "ssl.certificate.location".into(),
                pem.cert.display().to_string(),
            ));
            c.push(("ssl.key.location".into(), pem.key.display().to_string()));
        }
        c
    }
}

fn refs(settings: &[(String, String)]) -> Vec<(&str, &str)> {
    settings
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect()
}

/// Produces `n` keyed records to `topic` (4 partitions, created over the plaintext
/// listener) with `settings`, reads them back with the same settings, and checks keys,
/// values and partitions.
fn round_trip(plain: &str, bootstrap: &str, settings: &[(&str, &str)], topic: &str, n: usize) {
    create_topic(plain, topic, 4, &[]);
    let mut producer_settings = settings.to_vec();
    producer_settings.push(("acks", "all"));
    let p = producer(bootstrap, &producer_settings);
    for i in 0..n {
        let key = format!("key-{}", i % 37);
        let value = format!("value-{i}");
        p.send(
            BaseRecord::with_opaque_to(topic, i)
                .key(&key)
                .payload(&value),
        )
        .map_err(|(e, _)| e)
        .expect("enqueue");
    }
    p.flush(Duration::from_secs(30)).expect("flush");
    let deliveries = p.context().deliveries();
    assert_eq!(deliveries.len(), n);
    let mut sent: BTreeMap<i32, Vec<(String, String)>> = BTreeMap::new();
    let mut by_id: Vec<_> = deliveries.into_iter().collect();
    by_id.sort_by_key(|d| d.result.as_ref().map(|(p, o)| (*p, *o)).unwrap_or((-1, -1)));
    for d in by_id {
        let (partition, _) = d.result.expect("delivered");
        sent.entry(partition)
            .or_default()
            .push((format!("key-{}", d.id % 37), format!("value-{}", d.id)));
    }
    let got = consume_all_with(bootstrap, settings, topic, 4, Duration::from_secs(30));
    let got: BTreeMap<i32, Vec<(String, String)>> = got
        .into_iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(p, msgs)| {
            let records = msgs
                .iter()
                .map(|m| {
                    use rdkafka::message::Message;
                    (
                        String::from_utf8(m.key().unwrap().to_vec()).unwrap(),
                        String::from_utf8(m.payload().unwrap().to_vec()).unwrap(),
                    )
                })
                .collect();
            (p, records)
        })
        .collect();
    assert_eq!(got, sent, "records read back over {settings:?}");
}

#[test]
fn every_listener_answers_metadata_with_its_own_endpoint() {
    let s = Secure::start("requested", &[]);
    let plain = s.broker.bootstrap();
    let cases: Vec<(u16, Vec<(String, String)>)> = vec![
        (s.broker.port(), vec![]),
        (s.ssl, s.ssl(None)),
        (
            s.sasl_plaintext,
            vec![
                ("security.protocol".into(), "sasl_plaintext".into()),
                ("sasl.mechanisms".into(), "SCRAM-SHA-512".into()),
                ("sasl.username".into(), ADMIN.0.into()),
                ("sasl.password".into(), ADMIN.1.into()),
            ],
        ),
        (s.sasl_ssl, s.sasl_ssl("SCRAM-SHA-256", ADMIN)),
    ];
    for (port, settings) in cases {
        let c = consumer(&Secure::addr(port), &refs(&settings));
        let md = c.fetch_metadata(None, CALL_TIMEOUT).expect("metadata");
        let brokers: Vec<(i32, String, i32)> = md
            .brokers()
            .iter()
            .map(|b| (b.id(), b.host().to_string(), b.port()))
            .collect();
        assert_eq!(
            brokers,
            vec![(1, "127.0.0.1".to_string(), i32::from(port))],
            "{settings:?}"
        );
    }
    // DescribeConfigs lists every listener and where it is advertised.
    let admin = admin(&plain);
    let described = block_on(admin.describe_configs(
        [&rdkafka::admin::ResourceSpecifier::Broker(1)],
        &admin_opts(),
    ))
    .expect("describe configs");
    let config = described[0].as_ref().expect("broker config");
    let value = |name: &str| config.get(name).and_then(|e| e.value.clone());
    let listeners = format!(
        "PLAINTEXT://127.0.0.1:{},SSL://127.0.0.1:{},SASL_PLAINTEXT://127.0.0.1:{},SASL_SSL://127.0.0.1:{}",
        s.broker.port(),
        s.ssl,
        s.sasl_plaintext,
        s.sasl_ssl
    );
    assert_eq!(value("listeners").as_deref(), Some(listeners.as_str()));
    assert_eq!(
        value("advertised.listeners").as_deref(),
        Some(listeners.as_str())
    );
    assert_eq!(
        value("sasl.enabled.mechanisms").as_deref(),
        Some("PLAIN,SCRAM-SHA-256,SCRAM-SHA-512,OAUTHBEARER")
    );
    assert_eq!(value("ssl.client.auth").as_deref(), Some("requested"));
    // The start-up log names each listener, its protocol and where it is advertised.
    for (port, name) in [
        (s.broker.port(), "PLAINTEXT (PLAINTEXT)"),
        (s.ssl, "SSL (SSL)"),
        (s.sasl_plaintext, "SASL_PLAINTEXT (SASL_PLAINTEXT)"),
        (s.sasl_ssl, "SASL_SSL (SASL_SSL)"),
    ] {
        let line =
            format!("Kafka listener on 127.0.0.1:{port} (advertised as 127.0.0.1:{port}), {name}");
        assert!(s.broker.log().contains(&line), "no '{line}' in the log");
    }
}

#[test]
fn the_wrong_protocol_fails_fast_with_one_log_line_and_the_broker_keeps_serving() {
    let s = Secure::start("none", &[]);
    let plain = s.broker.bootstrap();
    // A plaintext client on the TLS port, and a TLS client on the plaintext port.
    for (port, settings, line) in [
        (
            s.ssl,
            vec![],
            "plaintext client on TLS listener SSL://127.0.0.1:",
        ),
        (
            s.broker.port(),
            s.ssl(None),
            "TLS client on plaintext listener: closing",
        ),
    ] {
        let started = Instant::now();
        let c = consumer(&Secure::addr(port), &refs(&settings));
        let result = c.fetch_metadata(None, Duration::from_secs(5));
        assert!(
            result.is_err(),
            "port {port}: metadata succeeded: {result:?}"
        );
        assert!(started.elapsed() < Duration::from_secs(10));
        assert!(
            s.broker.log().contains(line),
            "no '{line}' in:\n{}",
            s.broker.log()
        );
    }
    assert_serving(&plain, "alive");
}

#[test]
fn sasl_and_ssl_clients_produce_and_read_back_1000_keyed_records() {
    let s = Secure::start("requested", &[]);
    let plain = s.broker.bootstrap();
    let sasl_ssl = Secure::addr(s.sasl_ssl);
    for mechanism in ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] {
        let settings = s.sasl_ssl(mechanism, ADMIN);
        let topic = format!("records-{}", mechanism.to_lowercase());
        round_trip(&plain, &sasl_ssl, &refs(&settings), &topic, 1000);
    }
    let alice = s.ca.client("alice", "sluice", "eng", "alice");
    let settings = s.ssl(Some(&alice));
    round_trip(
        &plain,
        &Secure::addr(s.ssl),
        &refs(&settings),
        "records-ssl",
        1000,
    );
}

/// SaslHandshake v1 for `mechanism`; asserts it is accepted.
fn handshake(conn: &mut RawConn, mechanism: &str) {
    let r = conn.roundtrip(
        1,
        1,
        &SaslHandshakeRequest::default().with_mechanism(StrBytes::from_string(mechanism.into())),
    );
    assert_eq!(r.error_code, 0, "handshake {mechanism}");
}

/// One SaslAuthenticate v2 exchange: (error code, message, bytes, session lifetime).
fn authenticate(conn: &mut RawConn, id: i32, token: Vec<u8>) -> (i16, String, Vec<u8>, i64) {
    let r = conn.roundtrip(
        2,
        id,
        &SaslAuthenticateRequest::default().with_auth_bytes(token.into()),
    );
    (
        r.error_code,
        r.error_message.map(|m| m.to_string()).unwrap_or_default(),
        r.auth_bytes.to_vec(),
        r.session_lifetime_ms,
    )
}

/// A whole SCRAM exchange over `conn`; returns the failure (code, message) if any.
fn scram_login(conn: &mut RawConn, user: &str, password: &str) -> Option<(i16, String)> {
    handshake(conn, "SCRAM-SHA-256");
    let mut client = ScramClient::new(ScramMechanism::Sha256, user, password);
    let mut token = client.initial();
    for id in 2.. {
        let (code, message, bytes, _) = authenticate(conn, id, token);
        if code != 0 {
            return Some((code, message));
        }
        match client.step(&bytes).expect("server messages well formed") {
            Some(next) => token = next,
            None => return None,
        }
    }
    None
}

#[test]
fn bad_password_and_unknown_user_fail_alike_after_a_delay_and_close() {
    let s = Secure::start("none", &[]);
    let addr = s.broker.addr().to_string();
    let sasl: std::net::SocketAddr = Secure::addr(s.sasl_plaintext).parse().unwrap();
    let plain_failure = "Authentication failed: Invalid username or password".to_string();
    for token in [&b"\0admin\0wrong"[..], b"\0nobody\0admin-secret"] {
        let mut conn = RawConn::connect(sasl);
        handshake(&mut conn, "PLAIN");
        let started = Instant::now();
        let (code, message, _, _) = authenticate(&mut conn, 2, token.to_vec());
        assert_eq!((code, message), (58, plain_failure.clone()));
        assert!(
            started.elapsed() >= Duration::from_millis(100),
            "answered without the delay"
        );
        conn.expect_closed("after a failed authentication");
    }
    let scram_failure = (
        58,
        "Authentication failed during authentication due to invalid credentials with SASL mechanism SCRAM-SHA-256"
            .to_string(),
    );
    for (user, password) in [("admin", "wrong"), ("nobody", "admin-secret")] {
        let mut conn = RawConn::connect(sasl);
        assert_eq!(
            scram_login(&mut conn, user, password),
            Some(scram_failure.clone()),
            "{user}"
        );
        conn.expect_closed("after a failed SCRAM authentication");
    }
    let mut conn = RawConn::connect(sasl);
    assert_eq!(scram_login(&mut conn, ADMIN.0, ADMIN.1), None);
    let md = conn.roundtrip(12, 9, &MetadataRequest::default().with_topics(None));
    assert_eq!(md.brokers.len(), 1);

    // A mechanism not enabled: 33 with the list, then closed.
    let mut conn = RawConn::connect(sasl);
    let r = conn.roundtrip(
        1,
        1,
        &SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str("GSSAPI")),
    );
    let offered: Vec<String> = r.mechanisms.iter().map(|m| m.to_string()).collect();
    assert_eq!(r.error_code, 33);
    assert_eq!(
        offered,
        ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER"]
    );
    conn.expect_closed("after an unsupported mechanism");

    // SaslHandshake on the PLAINTEXT listener: 34, and the connection stays usable.
    let mut conn = RawConn::connect(addr.parse().unwrap());
    let r = conn.roundtrip(
        1,
        1,
        &SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str("PLAIN")),
    );
    assert_eq!(r.error_code, 34);
    let versions = conn.roundtrip(3, 2, &ApiVersionsRequest::default());
    assert_eq!(versions.error_code, 0);

    // Metadata before authenticating: closed without an answer.
    let mut conn = RawConn::connect(sasl);
    conn.send_request(12, 1, &MetadataRequest::default().with_topics(None));
    conn.expect_closed("Metadata before SASL");
    assert!(
        s.broker
            .log()
            .contains("SASL required, client sent Metadata before authenticating")
    );

    // A 1 MiB frame before authenticating: closed (the limit is 512 KiB).
    let mut conn = RawConn::connect(sasl);
    let _ = conn.send(&frame(&vec![0u8; 1 << 20]));
    conn.expect_closed("a 1 MiB frame before SASL");
}

#[test]
fn sasl_handshake_v0_exchanges_raw_tokens() {
    let s = Secure::start("none", &[]);
    let mut conn = RawConn::connect(Secure::addr(s.sasl_plaintext).parse().unwrap());
    let r = conn.roundtrip(
        0,
        1,
        &SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str("PLAIN")),
    );
    assert_eq!(r.error_code, 0);
    conn.send(&frame(b"\0admin\0admin-secret")).unwrap();
    let reply = conn.read_frame().unwrap().expect("a raw reply");
    assert!(reply.is_empty(), "PLAIN's final token is empty");
    let md = conn.roundtrip(1, 2, &MetadataRequest::default().with_topics(None));
    assert_eq!(md.brokers.len(), 1);
    // A wrong password on v0 closes the connection without an answer.
    let mut conn = RawConn::connect(Secure::addr(s.sasl_plaintext).parse().unwrap());
    conn.roundtrip(
        0,
        1,
        &SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str("PLAIN")),
    );
    conn.send(&frame(b"\0admin\0nope")).unwrap();
    conn.expect_closed("wrong password after SaslHandshake v0");
}

#[test]
fn a_session_ends_at_its_lifetime_unless_the_client_reauthenticates() {
    let s = Secure::start("none", &["--connections-max-reauth-ms", "1500"]);
    let sasl: std::net::SocketAddr = Secure::addr(s.sasl_plaintext).parse().unwrap();
    let mut conn = RawConn::connect(sasl);
    handshake(&mut conn, "PLAIN");
    let (code, _, _, lifetime) = authenticate(&mut conn, 2, b"\0admin\0admin-secret".to_vec());
    assert_eq!((code, lifetime), (0, 1500));
    // Re-authenticating as the same user renews the session.
    std::thread::sleep(Duration::from_millis(1600));
    handshake(&mut conn, "PLAIN");
    let (code, _, _, lifetime) = authenticate(&mut conn, 3, b"\0admin\0admin-secret".to_vec());
    assert_eq!((code, lifetime), (0, 1500));
    let md = conn.roundtrip(12, 4, &MetadataRequest::default().with_topics(None));
    assert_eq!(md.brokers.len(), 1);
    // Without re-authenticating, the first request after the lifetime closes it.
    std::thread::sleep(Duration::from_millis(1600));
    conn.send_request(12, 5, &MetadataRequest::default().with_topics(None));
    conn.expect_closed("a request after the session expired");

    // librdkafka re-authenticates by itself and loses nothing.
    let plain = s.broker.bootstrap();
    let settings = s.sasl_ssl("SCRAM-SHA-512", ADMIN);
    create_topic(&plain, "reauth", 1, &[]);
    let p = producer(&Secure::addr(s.sasl_ssl), &refs(&settings));
    for round in 0..3 {
        for i in 0..50 {
            p.send(
                BaseRecord::with_opaque_to("reauth", round * 50 + i)
                    .key("k")
                    .payload("v"),
            )
            .map_err(|(e, _)| e)
            .expect("enqueue");
        }
        p.flush(Duration::from_secs(20)).expect("flush");
        std::thread::sleep(Duration::from_millis(1000));
    }
    assert_eq!(p.context().acked(), 150);
    assert!(p.context().deliveries().iter().all(|d| d.result.is_ok()));
}

#[test]
fn oauthbearer_unsecured_tokens_authenticate_and_expired_or_unscoped_ones_fail() {
    let s = Secure::start(
        "none",
        &["--sasl-oauthbearer-required-scopes", "requiredScope"],
    );
    let plain = s.broker.bootstrap();
    let oauth = |config: &str| -> Vec<(String, String)> {
        vec![
            ("security.protocol".into(), "sasl_ssl".into()),
            ("ssl.ca.location".into(), s.ca_path()),
            ("sasl.mechanisms".into(), "OAUTHBEARER".into()),
            ("enable.sasl.oauthbearer.unsecure.jwt".into(), "true".into()),
            ("sasl.oauthbearer.config".into(), config.into()),
        ]
    };
    let good = oauth("principal=alice scope=requiredScope lifeSeconds=3600");
    round_trip(
        &plain,
        &Secure::addr(s.sasl_ssl),
        &refs(&good),
        "oauth",
        100,
    );
    let wrong_scope = oauth("principal=alice scope=wrongScope lifeSeconds=3600");
    let started = Instant::now();
    let c = consumer(&Secure::addr(s.sasl_ssl), &refs(&wrong_scope));
    let result = c.fetch_metadata(None, Duration::from_secs(5));
    assert!(
        result.is_err(),
        "a token without the required scope authenticated"
    );
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(
        s.broker
            .log()
            .contains("the required scope requiredScope is not granted")
    );
}

#[test]
fn mutual_tls_requires_a_certificate_from_the_ca() {
    let s = Secure::start(
        "required",
        &[
            "--ssl-principal-mapping-rules",
            "RULE:^CN=([^,]+),.*$/$1/L,DEFAULT",
        ],
    );
    let plain = s.broker.bootstrap();
    let alice = s.ca.client("alice", "sluice", "eng", "Alice");
    round_trip(
        &plain,
        &Secure::addr(s.ssl),
        &refs(&s.ssl(Some(&alice))),
        "mtls",
        10,
    );
    // No certificate, or one from another CA: the handshake fails.
    let other = TestCa::new(&s.dir, "other-ca").client("mallory", "evil", "x", "mallory");
    for client in [None, Some(&other)] {
        let started = Instant::now();
        let c = consumer(&Secure::addr(s.ssl), &refs(&s.ssl(client)));
        assert!(c.fetch_metadata(None, Duration::from_secs(5)).is_err());
        assert!(started.elapsed() < Duration::from_secs(10));
    }
    assert!(s.broker.log().contains("TLS handshake failed; closing"));
}

/// Kafka applies a broker-wide `ssl.client.auth` to SSL listeners only: SASL_SSL clients
/// authenticate with SASL and need no certificate (KIP-684; librdkafka's 0097 relies on it).
#[test]
fn sasl_ssl_clients_need_no_certificate_when_ssl_listeners_require_one() {
    let s = Secure::start("required", &[]);
    let plain = s.broker.bootstrap();
    round_trip(
        &plain,
        &Secure::addr(s.sasl_ssl),
        &refs(&s.sasl_ssl("SCRAM-SHA-256", ADMIN)),
        "sasl-ssl-without-cert",
        10,
    );
    // The SSL listener still refuses a client without one.
    let c = consumer(&Secure::addr(s.ssl), &refs(&s.ssl(None)));
    assert!(c.fetch_metadata(None, Duration::from_secs(5)).is_err());
}

/// The CLI's connection from a command-config file with librdkafka's property names: over
/// SASL_SSL with SCRAM, the broker, CA, user and password come only from the file; a flag or
/// environment variable wins over it; a wrong password in it fails with the authentication
/// error and exit code 1.
#[test]
fn the_cli_takes_its_connection_from_a_command_config_file() {
    let s = Secure::start("none", &[]);
    let write_config = |name: &str, password: &str| {
        let path = s.dir.join(name);
        let text = format!(
            "# the CLI's connection\nbootstrap.servers={}\nsecurity.protocol=SASL_SSL\n\
             sasl.mechanism=SCRAM-SHA-256\nsasl.username={}\nsasl.password={password}\n\
             ssl.ca.location={}\n",
            Secure::addr(s.sasl_ssl),
            ADMIN.0,
            s.ca_path()
        );
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    };
    let good = write_config("client.properties", ADMIN.1);
    let bad = write_config("wrong-password.properties", "not-the-password");
    let sluice = |args: &[&str], env: &[(&str, &str)]| run_sluice_with_env(args, env, CALL_TIMEOUT);
    let succeeded = |out: &RunOutput| {
        assert_eq!(
            out.status.map(|s| s.success()),
            Some(true),
            "stdout: {}\nstderr: {}",
            out.stdout,
            out.stderr
        );
    };
    let auth_failure = format!(
        "error: authentication with {} failed: SASL_AUTHENTICATION_FAILED (Authentication failed during authentication due to invalid credentials with SASL mechanism SCRAM-SHA-256)\n",
        Secure::addr(s.sasl_ssl)
    );
    let failed_to_authenticate = |out: &RunOutput| {
        assert_eq!(out.status.and_then(|s| s.code()), Some(1), "{}", out.stderr);
        assert_eq!(out.stderr, auth_failure);
    };

    let out = sluice(
        &[
            "topic",
            "create",
            "from-file",
            "--partitions",
            "1",
            "--command-config",
            &good,
        ],
        &[],
    );
    succeeded(&out);
    assert_eq!(
        out.stdout,
        "created topic from-file (1 partitions, replication factor 1)\n"
    );
    let records = s.dir.join("records.txt");
    std::fs::write(&records, "k1:v1\nk2:v2\n").unwrap();
    let records = records.display().to_string();
    succeeded(&sluice(
        &[
            "produce",
            "from-file",
            "--file",
            &records,
            "--key-separator",
            ":",
            "--command-config",
            &good,
        ],
        &[],
    ));
    // The file named by the environment variable instead of the flag.
    let out = sluice(
        &[
            "consume",
            "from-file",
            "--from",
            "beginning",
            "--exit-at-end",
            "--format",
            "%k=%v",
        ],
        &[("SLUICE_COMMAND_CONFIG", &good)],
    );
    succeeded(&out);
    assert_eq!(out.stdout, "k1=v1\nk2=v2\n");

    // A wrong password in the file, and the right one in a flag or the environment, which win.
    failed_to_authenticate(&sluice(&["topic", "list", "--command-config", &bad], &[]));
    succeeded(&sluice(
        &[
            "topic",
            "list",
            "--command-config",
            &bad,
            "--sasl-password",
            ADMIN.1,
        ],
        &[],
    ));
    succeeded(&sluice(
        &["topic", "list", "--command-config", &bad],
        &[("SLUICE_SASL_PASSWORD", ADMIN.1)],
    ));
    // And the other way round: a wrong password in the environment wins over the file's.
    failed_to_authenticate(&sluice(
        &["topic", "list", "--command-config", &good],
        &[("SLUICE_SASL_PASSWORD", "not-the-password")],
    ));
}

/// Whether any file under `dir` contains `needle`.
fn found_in(dir: &Path, needle: &[u8]) -> Vec<String> {
    let mut hits = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if let Ok(bytes) = std::fs::read(&path)
                && bytes.windows(needle.len()).any(|w| w == needle)
            {
                hits.push(path.display().to_string());
            }
        }
    }
    hits
}

#[test]
fn users_created_with_the_cli_survive_kill_9_and_their_password_is_not_stored() {
    let mut s = Secure::start("none", &[]);
    let sasl = Secure::addr(s.sasl_plaintext);
    let connection = [
        "--brokers",
        &sasl,
        "--security-protocol",
        "SASL_PLAINTEXT",
        "--sasl-mechanism",
        "SCRAM-SHA-512",
        "--sasl-username",
        "admin",
    ];
    let password = "b0b-unique-pa55word";
    let mut args = vec!["user", "create", "bob", "--password", password];
    args.extend(connection);
    let out = run_sluice_with_env(&args, &[("SLUICE_SASL_PASSWORD", ADMIN.1)], CALL_TIMEOUT);
    assert_eq!(
        out.status.map(|s| s.success()),
        Some(true),
        "{}",
        out.stderr
    );
    assert_eq!(
        out.stdout.trim(),
        "user bob has SCRAM-SHA-256 and SCRAM-SHA-512 credentials"
    );
    s.broker.kill9();
    s.broker.restart();
    let mut list = vec!["user", "list", "--json"];
    list.extend(connection);
    let out = run_sluice_with_env(&list, &[("SLUICE_SASL_PASSWORD", ADMIN.1)], CALL_TIMEOUT);
    assert_eq!(
        out.stdout.trim(),
        r#"[{"credentials":[{"iterations":4096,"mechanism":"SCRAM-SHA-256"},{"iterations":4096,"mechanism":"SCRAM-SHA-512"}],"user":"admin"},{"credentials":[{"iterations":4096,"mechanism":"SCRAM-SHA-256"},{"iterations":4096,"mechanism":"SCRAM-SHA-512"}],"user":"bob"}]"#,
        "{}",
        out.stderr
    );
    let mut conn = RawConn::connect(sasl.parse().unwrap());
    assert_eq!(scram_login(&mut conn, "bob", password), None);
    assert_eq!(
        found_in(s.broker.data_dir(), password.as_bytes()),
        Vec::<String>::new()
    );
    assert_eq!(
        found_in(s.broker.data_dir(), ADMIN.1.as_bytes()),
        Vec::<String>::new()
    );
    // Too few iterations: UNACCEPTABLE_CREDENTIAL (93).
    let mut args = vec![
        "user",
        "create",
        "carol",
        "--password",
        "x",
        "--iterations",
        "1000",
    ];
    args.extend(connection);
    let out = run_sluice_with_env(&args, &[("SLUICE_SASL_PASSWORD", ADMIN.1)], CALL_TIMEOUT);
    assert_eq!(out.status.map(|s| s.success()), Some(false));
    assert!(
        out.stderr
            .contains("UNACCEPTABLE_CREDENTIAL (Too few iterations)"),
        "{}",
        out.stderr
    );
}

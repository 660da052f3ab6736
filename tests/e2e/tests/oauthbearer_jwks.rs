//! OAUTHBEARER with signed tokens (KIP-768) against a real broker: the identity provider's
//! keys in a JWKS file or behind a loopback HTTP(S) endpoint the test serves, tokens signed by
//! the test (RS256 with the key in crates/security/testdata, ES256 with keys made here),
//! librdkafka producing with them, and hand-built SASL frames for the exact answers.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::error::Error;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use kafka_protocol::messages::{SaslAuthenticateRequest, SaslHandshakeRequest};
use kafka_protocol::protocol::StrBytes;
use rdkafka::client::{ClientContext, OAuthToken};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use ring::rand::SystemRandom;
use ring::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair, RSA_PKCS1_SHA256, RsaKeyPair,
    RsaPublicKeyComponents,
};
use rustls_pki_types::PrivatePkcs8KeyDer;
use rustls_pki_types::pem::PemObject;
use serde_json::{Value, json};
use sluice_e2e::certs::{Pem, TestCa};
use sluice_e2e::raw::RawConn;
use sluice_e2e::*;
use sluice_security::rustls::{ServerConfig, ServerConnection, StreamOwned};
use sluice_security::tls::{ClientAuth, TlsFiles, server_config};

const ISSUER: &str = "https://idp.test";
const AUDIENCE: &str = "sluice";
const INVALID_TOKEN: &str = r#"{"status":"invalid_token"}"#;

/// A key that signs tokens, with its public half as a JWK.
enum TestKey {
    Rsa(RsaKeyPair),
    Ec(EcdsaKeyPair),
}

impl TestKey {
    fn rsa() -> TestKey {
        let pem = include_str!("../../../crates/security/testdata/jwt-rsa-2048.pem");
        let der = PrivatePkcs8KeyDer::from_pem_slice(pem.as_bytes()).unwrap();
        TestKey::Rsa(RsaKeyPair::from_pkcs8(der.secret_pkcs8_der()).unwrap())
    }

    fn ec() -> TestKey {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        TestKey::Ec(
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
                .unwrap(),
        )
    }

    fn jwk(&self, kid: &str) -> Value {
        match self {
            TestKey::Rsa(key) => {
                let public = RsaPublicKeyComponents::<Vec<u8>>::from(key.public());
                json!({"kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256",
                       "n": B64URL.encode(&public.n), "e": B64URL.encode(&public.e)})
            }
            TestKey::Ec(key) => {
                let point = key.public_key().as_ref();
                json!({"kty": "EC", "kid": kid, "crv": "P-256",
                       "x": B64URL.encode(&point[1..33]), "y": B64URL.encode(&point[33..65])})
            }
        }
    }

    /// A compact JWS of `claims` with `kid` in its header.
    fn sign(&self, kid: &str, claims: &Value) -> String {
        let alg = match self {
            TestKey::Rsa(_) => "RS256",
            TestKey::Ec(_) => "ES256",
        };
        let header = json!({"alg": alg, "typ": "JWT", "kid": kid});
        let input = format!(
            "{}.{}",
            B64URL.encode(header.to_string()),
            B64URL.encode(claims.to_string())
        );
        let rng = SystemRandom::new();
        let signature = match self {
            TestKey::Rsa(key) => {
                let mut sig = vec![0; key.public().modulus_len()];
                key.sign(&RSA_PKCS1_SHA256, &rng, input.as_bytes(), &mut sig)
                    .unwrap();
                sig
            }
            TestKey::Ec(key) => key.sign(&rng, input.as_bytes()).unwrap().as_ref().to_vec(),
        };
        format!("{input}.{}", B64URL.encode(signature))
    }
}

fn now_s() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Claims for `sub`, valid for `life_s` from now, by the expected issuer for the expected
/// audience.
fn claims(sub: &str, life_s: i64) -> Value {
    json!({"sub": sub, "iss": ISSUER, "aud": AUDIENCE, "iat": now_s(), "exp": now_s() + life_s})
}

fn jwks(keys: &[Value]) -> String {
    json!({ "keys": keys }).to_string()
}

/// A broker with a PLAINTEXT listener and an OAUTHBEARER-only SASL_PLAINTEXT listener
/// whose keys come from `jwks_url`.
fn start(jwks_url: &str) -> (Broker, SocketAddr) {
    start_with(jwks_url, &[])
}

/// [`start`] with `extra` flags.
fn start_with(jwks_url: &str, extra: &[&str]) -> (Broker, SocketAddr) {
    start_with_env(jwks_url, extra, &[])
}

/// [`start`] with `extra` flags and environment variables `env`.
fn start_with_env(jwks_url: &str, extra: &[&str], env: &[(&str, &str)]) -> (Broker, SocketAddr) {
    let sasl = free_port();
    let url = jwks_url.to_string();
    let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
    let broker = Broker::start_with_port_and_env(env, move |port| {
        let mut args: Vec<String> = [
            "--listeners",
            &format!("PLAINTEXT://127.0.0.1:{port},SASL_PLAINTEXT://127.0.0.1:{sasl}"),
            "--sasl-mechanisms",
            "OAUTHBEARER",
            "--sasl-oauthbearer-jwks-endpoint-url",
            &url,
            "--sasl-oauthbearer-expected-issuer",
            ISSUER,
            "--sasl-oauthbearer-expected-audience",
            &format!("other,{AUDIENCE}"),
        ]
        .map(String::from)
        .to_vec();
        args.extend(extra);
        args
    });
    (broker, SocketAddr::from(([127, 0, 0, 1], sasl)))
}

/// Logs in with `token` over hand-built frames: (error code, error message, session
/// lifetime) of the last SaslAuthenticate, after answering an error challenge as clients do.
fn login(addr: SocketAddr, token: &str) -> (i16, String, i64) {
    let mut conn = RawConn::connect(addr);
    let r = conn.roundtrip(
        1,
        1,
        &SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str("OAUTHBEARER")),
    );
    assert_eq!(r.error_code, 0);
    let first = format!("n,,\u{1}auth=Bearer {token}\u{1}\u{1}").into_bytes();
    let r = conn.roundtrip(
        2,
        2,
        &SaslAuthenticateRequest::default().with_auth_bytes(first.into()),
    );
    if r.error_code == 0 && !r.auth_bytes.is_empty() {
        assert_eq!(
            &r.auth_bytes[..],
            INVALID_TOKEN.as_bytes(),
            "error challenge"
        );
        let r = conn.roundtrip(
            2,
            3,
            &SaslAuthenticateRequest::default().with_auth_bytes(vec![1u8].into()),
        );
        let message = r.error_message.map(|m| m.to_string()).unwrap_or_default();
        return (r.error_code, message, r.session_lifetime_ms);
    }
    let message = r.error_message.map(|m| m.to_string()).unwrap_or_default();
    (r.error_code, message, r.session_lifetime_ms)
}

/// A producer context handing librdkafka a fixed token and counting what happens.
struct Bearer {
    token: String,
    expires_ms: i64,
    acked: AtomicUsize,
    failed: AtomicUsize,
    auth_errors: AtomicUsize,
}

impl Bearer {
    fn new(token: String, expires_s: i64) -> Bearer {
        Bearer {
            token,
            expires_ms: expires_s * 1000,
            acked: AtomicUsize::new(0),
            failed: AtomicUsize::new(0),
            auth_errors: AtomicUsize::new(0),
        }
    }
}

impl ClientContext for Bearer {
    const ENABLE_REFRESH_OAUTH_TOKEN: bool = true;

    fn generate_oauth_token(&self, _config: Option<&str>) -> Result<OAuthToken, Box<dyn Error>> {
        Ok(OAuthToken {
            token: self.token.clone(),
            principal_name: "alice".into(),
            lifetime_ms: self.expires_ms,
        })
    }

    fn error(&self, error: KafkaError, _reason: &str) {
        if error.rdkafka_error_code() == Some(RDKafkaErrorCode::Authentication) {
            self.auth_errors.fetch_add(1, Ordering::SeqCst);
        }
    }
}

impl ProducerContext for Bearer {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        let counter = if result.is_ok() {
            &self.acked
        } else {
            &self.failed
        };
        counter.fetch_add(1, Ordering::SeqCst);
    }
}

impl ConsumerContext for Bearer {}

/// librdkafka settings for the OAUTHBEARER listener at `addr`.
fn bearer_config(addr: SocketAddr) -> ClientConfig {
    let mut c = client_config(&addr.to_string());
    c.set("security.protocol", "sasl_plaintext")
        .set("sasl.mechanisms", "OAUTHBEARER");
    c
}

fn bearer_producer(addr: SocketAddr, context: Bearer) -> ThreadedProducer<Bearer> {
    let mut c = bearer_config(addr);
    c.set("message.timeout.ms", "15000")
        .set("enable.idempotence", "false")
        .set("linger.ms", "5");
    c.create_with_context(context).expect("create producer")
}

/// The values of partition 0 of `topic` up to its end, read over the OAUTHBEARER listener
/// at `addr` with `context`'s token.
fn bearer_read_values(addr: SocketAddr, context: Bearer, topic: &str) -> Vec<String> {
    let mut c = bearer_config(addr);
    c.set("group.id", "sluice-e2e-bearer")
        .set("enable.partition.eof", "true")
        .set("enable.auto.commit", "false");
    let consumer: BaseConsumer<Bearer> = c.create_with_context(context).expect("create consumer");
    let mut partitions = TopicPartitionList::new();
    partitions
        .add_partition_offset(topic, 0, Offset::Beginning)
        .unwrap();
    consumer.assign(&partitions).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut values = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "no end of {topic} after {values:?}");
        match consumer.poll(left) {
            None => {}
            Some(Ok(m)) => values.push(String::from_utf8(m.payload().unwrap().to_vec()).unwrap()),
            Some(Err(KafkaError::PartitionEOF(0))) => return values,
            Some(Err(e)) => panic!("consume {topic}: {e}"),
        }
    }
}

/// Waits up to `timeout` for `done`.
fn wait_for(timeout: Duration, done: impl Fn() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    done()
}

#[test]
fn signed_tokens_from_a_jwks_file_authenticate_librdkafka_and_invalid_ones_get_58() {
    let (rsa, ec, impostor) = (TestKey::rsa(), TestKey::ec(), TestKey::ec());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("jwks.json");
    std::fs::write(&path, jwks(&[rsa.jwk("rsa-1"), ec.jwk("ec-1")])).unwrap();
    let (broker, sasl) = start(&format!("file:{}", path.display()));
    create_topic(&broker.bootstrap(), "signed", 1, &[]);

    // librdkafka produces with an RS256 token; the records read back exactly.
    let exp = now_s() + 600;
    let token = rsa.sign(
        "rsa-1",
        &json!({"sub": "alice", "iss": ISSUER, "aud": AUDIENCE, "iat": now_s(), "exp": exp}),
    );
    let p = bearer_producer(sasl, Bearer::new(token, exp));
    for i in 0..100 {
        let value = format!("signed-{i}");
        p.send(BaseRecord::<(), _, ()>::with_opaque_to("signed", ()).payload(&value))
            .map_err(|(e, _)| e)
            .unwrap();
    }
    p.flush(Duration::from_secs(30)).unwrap();
    assert_eq!(p.context().acked.load(Ordering::SeqCst), 100);
    assert_eq!(p.context().failed.load(Ordering::SeqCst), 0);
    let read = consume_all(&broker.bootstrap(), "signed", 1, Duration::from_secs(30));
    let values: Vec<String> = read[&0]
        .iter()
        .map(|m| String::from_utf8(m.payload().unwrap().to_vec()).unwrap())
        .collect();
    assert_eq!(
        values,
        (0..100).map(|i| format!("signed-{i}")).collect::<Vec<_>>()
    );

    // An ES256 token logs in with a session that ends when the token does.
    let (code, _, lifetime) = login(sasl, &ec.sign("ec-1", &claims("bob", 60)));
    assert_eq!(code, 0);
    assert!(
        lifetime > 50_000 && lifetime <= 60_000,
        "lifetime {lifetime}"
    );

    // Invalid tokens: the error challenge, then SASL_AUTHENTICATION_FAILED with Kafka's
    // message; the broker logs why.
    let cases = [
        (
            ec.sign("ec-1", &claims("bob", -60)),
            "the token has expired",
        ),
        (
            impostor.sign("ec-1", &claims("bob", 60)),
            "the signature does not verify with the JWKS key",
        ),
        (
            rsa.sign("rsa-1", &json!({"sub": "bob", "iss": "https://evil.test", "aud": AUDIENCE, "iat": now_s(), "exp": now_s() + 60})),
            "the issuer https://evil.test is not the expected https://idp.test",
        ),
        (
            rsa.sign("rsa-1", &json!({"sub": "bob", "iss": ISSUER, "aud": "billing", "iat": now_s(), "exp": now_s() + 60})),
            "the audience [\"billing\"] is none of the expected [\"other\", \"sluice\"]",
        ),
        (
            sluice_security::sasl::oauthbearer::unsecured_token("bob", now_s() + 60, &[]),
            "unsecured JWTs (alg none) are refused when a JWKS endpoint is configured",
        ),
    ];
    for (token, reason) in cases {
        assert_eq!(
            login(sasl, &token),
            (58, INVALID_TOKEN.to_string(), 0),
            "{reason}"
        );
        let log = broker.log();
        assert_eq!(
            log.matches(&format!("OAUTHBEARER token refused: {reason}"))
                .count(),
            1,
            "logged once: {reason}"
        );
    }

    // librdkafka with a token for the wrong audience reports an authentication error.
    let exp = now_s() + 600;
    let token = rsa.sign(
        "rsa-1",
        &json!({"sub": "alice", "iss": ISSUER, "aud": "billing", "iat": now_s(), "exp": exp}),
    );
    let started = Instant::now();
    let p = bearer_producer(sasl, Bearer::new(token, exp));
    p.send(BaseRecord::<(), _, ()>::with_opaque_to("signed", ()).payload("x"))
        .map_err(|(e, _)| e)
        .unwrap();
    assert!(
        wait_for(Duration::from_secs(10), || p
            .context()
            .auth_errors
            .load(Ordering::SeqCst)
            > 0),
        "no authentication error"
    );
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(p.context().acked.load(Ordering::SeqCst), 0);
}

/// A loopback HTTP server (HTTPS with a TLS configuration) answering every request with
/// the current key set, counting them.
#[derive(Clone)]
struct JwksServer {
    addr: SocketAddr,
    doc: Arc<Mutex<String>>,
    requests: Arc<AtomicUsize>,
}

impl JwksServer {
    fn start(doc: String) -> JwksServer {
        JwksServer::start_with(doc, None)
    }

    /// Serves over TLS with the certificate and key of `identity`.
    fn start_https(doc: String, identity: &Pem) -> JwksServer {
        let files = TlsFiles {
            cert: identity.cert.clone(),
            key: identity.key.clone(),
            ca: None,
            client_auth: ClientAuth::None,
        };
        let (config, _) = server_config(&files).unwrap();
        JwksServer::start_with(doc, Some(config))
    }

    fn start_with(doc: String, tls: Option<Arc<ServerConfig>>) -> JwksServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let server = JwksServer {
            addr: listener.local_addr().unwrap(),
            doc: Arc::new(Mutex::new(doc)),
            requests: Arc::new(AtomicUsize::new(0)),
        };
        let serving = server.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                match &tls {
                    None => serving.answer(stream),
                    Some(config) => {
                        let connection = ServerConnection::new(config.clone()).unwrap();
                        serving.answer(StreamOwned::new(connection, stream));
                    }
                }
            }
        });
        server
    }

    /// Reads one request and answers it with the key set (`GET /jwks`) or 404. A client
    /// that gives up during the TLS handshake is not counted.
    fn answer(&self, mut stream: impl Read + Write) {
        let mut request = Vec::new();
        let mut buf = [0u8; 1024];
        while !request.windows(4).any(|w| w == b"\r\n\r\n") {
            match stream.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => request.extend_from_slice(&buf[..n]),
            }
        }
        if !request.starts_with(b"GET /jwks ") {
            let _ = stream.write_all(
                b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            );
            return;
        }
        self.requests.fetch_add(1, Ordering::SeqCst);
        let body = self.doc.lock().unwrap().clone();
        let _ = write!(
            stream,
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        let _ = stream.flush();
    }

    fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }

    fn serve(&self, doc: String) {
        *self.doc.lock().unwrap() = doc;
    }
}

#[test]
fn an_http_jwks_is_fetched_at_start_and_again_for_a_rotated_key_but_not_for_made_up_ones() {
    let (old, new, unknown) = (TestKey::rsa(), TestKey::ec(), TestKey::ec());
    let server = JwksServer::start(jwks(&[old.jwk("old")]));
    let (broker, sasl) = start(&format!("http://{}/jwks", server.addr));
    assert!(
        wait_for(Duration::from_secs(10), || server.requests() == 1),
        "the broker did not fetch the key set at start"
    );
    let (code, _, _) = login(sasl, &old.sign("old", &claims("alice", 60)));
    assert_eq!(code, 0);
    assert_eq!(server.requests(), 1, "a known key fetches nothing");

    // The provider rotates its key: the first login with the new one fetches the set again.
    server.serve(jwks(&[old.jwk("old"), new.jwk("new")]));
    let (code, message, _) = login(sasl, &new.sign("new", &claims("alice", 60)));
    assert_eq!((code, message.as_str()), (0, ""));
    assert_eq!(server.requests(), 2);
    // A made-up kid right after is refused without another fetch (at most one per 10 s).
    let (code, message, _) = login(sasl, &unknown.sign("made-up", &claims("alice", 60)));
    assert_eq!((code, message.as_str()), (58, INVALID_TOKEN));
    assert_eq!(server.requests(), 2);
    assert!(broker.log().contains(
        "OAUTHBEARER token refused: no key in the JWKS for kid Some(\"made-up\") and alg ES256"
    ));
}

#[test]
fn an_https_jwks_is_trusted_through_the_configured_ca_and_refused_from_any_other() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, other_ca) = (
        TestCa::new(dir.path(), "jwks-ca"),
        TestCa::new(dir.path(), "other-ca"),
    );
    let key = TestKey::rsa();
    let server = JwksServer::start_https(jwks(&[key.jwk("rsa-1")]), &ca.server("jwks"));
    let url = format!("https://{}/jwks", server.addr);
    let exp = now_s() + 600;
    let token = key.sign(
        "rsa-1",
        &json!({"sub": "alice", "iss": ISSUER, "aud": AUDIENCE, "iat": now_s(), "exp": exp}),
    );

    // Trusting the CA that signed the endpoint's certificate: the keys are fetched at start,
    // and librdkafka produces and reads back with a token signed by the served key.
    let ca_file = ca.cert.display().to_string();
    let (broker, sasl) = start_with(
        &url,
        &["--sasl-oauthbearer-jwks-endpoint-ca-file", &ca_file],
    );
    assert!(
        wait_for(Duration::from_secs(10), || server.requests() == 1),
        "the broker did not fetch the key set at start"
    );
    create_topic(&broker.bootstrap(), "signed-https", 1, &[]);
    let p = bearer_producer(sasl, Bearer::new(token.clone(), exp));
    let sent: Vec<String> = (0..20).map(|i| format!("https-{i}")).collect();
    for value in &sent {
        p.send(BaseRecord::<(), _, ()>::with_opaque_to("signed-https", ()).payload(value))
            .map_err(|(e, _)| e)
            .unwrap();
    }
    p.flush(Duration::from_secs(30)).unwrap();
    assert_eq!(p.context().acked.load(Ordering::SeqCst), 20);
    assert_eq!(p.context().failed.load(Ordering::SeqCst), 0);
    assert_eq!(p.context().auth_errors.load(Ordering::SeqCst), 0);
    let read = bearer_read_values(sasl, Bearer::new(token.clone(), exp), "signed-https");
    assert_eq!(read, sent);
    assert_eq!(server.requests(), 1, "known keys fetch nothing");

    // Trusting another CA: the TLS handshake fails, so the broker has no keys, says why,
    // and the same token is refused with SASL_AUTHENTICATION_FAILED.
    let other_ca_file = other_ca.cert.display().to_string();
    let (untrusting, sasl) = start_with(
        &url,
        &["--sasl-oauthbearer-jwks-endpoint-ca-file", &other_ca_file],
    );
    assert_eq!(login(sasl, &token), (58, INVALID_TOKEN.to_string(), 0));
    let log = untrusting.log();
    assert!(
        log.contains(&format!(
            "error=GET {url}: TLS: invalid peer certificate: UnknownIssuer"
        )),
        "{log}"
    );
    assert!(
        log.contains(
            "OAUTHBEARER token refused: no key in the JWKS for kid Some(\"rsa-1\") and alg RS256"
        ),
        "{log}"
    );
    assert_eq!(
        server.requests(),
        1,
        "no request over an untrusted connection"
    );
}

/// Without a CA file the endpoint is checked against the operating system's trust store,
/// which OpenSSL's `SSL_CERT_FILE` variable (honoured by the store's loader) points at the
/// test CA here: the keys are fetched and a signed token logs in.
#[test]
fn an_https_jwks_without_a_ca_file_is_trusted_through_the_system_store() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new(dir.path(), "system-ca");
    let key = TestKey::rsa();
    let server = JwksServer::start_https(jwks(&[key.jwk("rsa-1")]), &ca.server("jwks"));
    let url = format!("https://{}/jwks", server.addr);
    let ca_file = ca.cert.display().to_string();
    let (broker, sasl) = start_with_env(&url, &[], &[("SSL_CERT_FILE", &ca_file)]);
    assert!(
        wait_for(Duration::from_secs(10), || server.requests() == 1),
        "the broker did not fetch the key set at start: {}",
        broker.log()
    );
    let (code, message, lifetime) = login(sasl, &key.sign("rsa-1", &claims("alice", 60)));
    assert_eq!((code, message.as_str()), (0, ""), "{}", broker.log());
    assert!(lifetime > 0, "session lifetime {lifetime}");
    assert_eq!(server.requests(), 1, "a known key fetches nothing");
}

#[test]
fn a_broken_jwks_url_or_file_stops_the_start_with_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data").display().to_string();
    let out = run_sluice(
        &[
            "serve",
            "--data-dir",
            &data,
            "--listen",
            "127.0.0.1:0",
            "--http-listen",
            "off",
            "--sasl-oauthbearer-jwks-endpoint-url",
            "http://idp.example/keys",
        ],
        Duration::from_secs(20),
    );
    assert_eq!(out.status.and_then(|s| s.code()), Some(1), "{}", out.stderr);
    assert!(
        out.stderr.contains("'http://idp.example/keys' fetches the signing keys without TLS; use https:// (http:// is for loopback addresses only)"),
        "{}",
        out.stderr
    );
    let missing = dir.path().join("missing.json");
    let out = run_sluice(
        &[
            "serve",
            "--data-dir",
            &data,
            "--listen",
            "127.0.0.1:0",
            "--http-listen",
            "off",
            "--sasl-oauthbearer-jwks-endpoint-url",
            &format!("file:{}", missing.display()),
        ],
        Duration::from_secs(20),
    );
    assert_eq!(out.status.and_then(|s| s.code()), Some(1), "{}", out.stderr);
    assert!(
        out.stderr
            .contains(&format!("cannot read {}", missing.display())),
        "{}",
        out.stderr
    );
}

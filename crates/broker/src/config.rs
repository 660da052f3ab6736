//! Broker configuration: what `sluice serve` runs with.
//!
//! Defaults follow Apache Kafka's (`num.partitions`, `log.retention.ms`, …) so
//! that a client sees the same behaviour it would from Kafka. The binary layers
//! a TOML file, `SLUICE_*` environment variables and flags on top.
//!
//! Every setting is declared once, in the table below: its field (whose kebab-case form is
//! the TOML key, the `--flag` and, upper-cased, the `SLUICE_*` variable), type, default,
//! doc, Kafka's names, range and whether it needs a restart. [`BrokerConfig`], its defaults,
//! its TOML form, validation, the flags of `sluice serve`, the README's settings table and
//! DescribeConfigs for the broker all come from that table ([`SETTINGS`]).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::LazyLock;

use serde::Deserialize;
use sluice_cluster::Voters;
use sluice_security::listener::ListenerSpec;

use crate::topic_config::ConfigType;

/// Seven days, Kafka's default for `log.retention.ms` and `log.roll.ms`.
pub const SEVEN_DAYS_MS: i64 = 7 * 24 * 60 * 60 * 1000;

/// Kafka's default `fetch.max.bytes`: 55 MiB.
pub const DEFAULT_FETCH_MAX_BYTES: i32 = 55 * 1024 * 1024;

/// Where the HTTP listener binds unless told otherwise.
pub const DEFAULT_HTTP_LISTEN: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 9644);

/// Parses an HTTP listen address: `host:port`, or `off` for no HTTP listener.
pub fn parse_http_listen(s: &str) -> Result<Option<SocketAddr>, String> {
    let s = s.trim();
    if s.eq_ignore_ascii_case("off") || s.eq_ignore_ascii_case("none") {
        return Ok(None);
    }
    s.parse()
        .map(Some)
        .map_err(|_| format!("'{s}' is neither ip:port nor 'off'"))
}

/// An optional listen address in TOML: `host:port`, or `off`.
fn deserialize_optional_listen<'de, D>(d: D) -> Result<Option<SocketAddr>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    let s = String::deserialize(d)?;
    parse_http_listen(&s).map_err(serde::de::Error::custom)
}

/// Declares the broker's settings: for each, its doc, field (the name, in kebab-case: TOML
/// key, `--flag`, `SLUICE_*` variable), type, default and [`SettingOptions`]. Generates
/// [`BrokerConfig`], its `Default`, its TOML form and [`SETTINGS`].
macro_rules! broker_settings {
    ($(
        $(#[doc = $doc:literal])+
        $(#[serde($($serde:tt)*)])?
        $field:ident: $ty:ty = $default:expr, { $($option:ident: $value:expr),* $(,)? }
    )*) => {
        /// Everything the broker needs to start.
        #[derive(Debug, Clone, Deserialize, PartialEq)]
        #[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
        pub struct BrokerConfig {
            $(
                $(#[doc = $doc])+
                $(#[serde($($serde)*)])?
                pub $field: $ty,
            )*
        }

        impl Default for BrokerConfig {
            fn default() -> Self {
                Self { $( $field: $default, )* }
            }
        }

        /// Every broker setting, in the order of [`BrokerConfig`]'s fields.
        pub static SETTINGS: &[Setting] = &[$(
            Setting {
                field: stringify!($field),
                doc: concat!($($doc, "\n"),+),
                options: SettingOptions { $($option: $value,)* ..SettingOptions::DEFAULT },
                show: |config| SettingValue::show(&config.$field),
                number: |config| SettingValue::number(&config.$field),
                set: |config, text| {
                    config.$field = SettingValue::parse_flag(text)?;
                    Ok(())
                },
                kafka_type: <$ty as SettingValue>::kafka_type,
            },
        )*];
    };
}

broker_settings! {
    /// Address the Kafka listener binds to.
    listen: SocketAddr = SocketAddr::from(([127, 0, 0, 1], 9092)), {
        kafka_names: &["listeners"],
        kafka_value: KafkaValue::PlaintextListener,
    }
    /// Address of the HTTP listener serving `/metrics`, `/health` and `/ready`; `off` serves
    /// no HTTP.
    #[serde(deserialize_with = "deserialize_optional_listen")]
    http_listen: Option<SocketAddr> = Some(DEFAULT_HTTP_LISTEN), {
        shown_default: Some("`127.0.0.1:9644` (`off` for none)"),
        value_name: Some("ADDR|off"),
    }
    /// Log every request of the client with this `client.id` at INFO (api, version,
    /// correlation id, duration, errors), without debug logging for everyone else.
    debug_client_id: Option<String> = None, {
        shown_default: Some("none"),
        value_name: Some("CLIENT_ID"),
    }
    /// `host:port` clients are told to connect to; required when `listen` is `0.0.0.0` or
    /// `[::]` (port 0 in `listen` advertises the port bound).
    advertise: Option<String> = None, {
        kafka_names: &["advertised.listeners"],
        kafka_value: KafkaValue::Advertised,
        shown_default: Some("the listen address"),
    }
    /// Where logs, metadata and the lock file live.
    data_dir: PathBuf = PathBuf::from("sluice-data"), {
        kafka_names: &["log.dirs"],
        shown_default: Some("`./sluice-data`"),
    }
    /// This broker's node id.
    node_id: i32 = 1, {
        kafka_names: &["node.id", "broker.id"],
        range: Some(0..=INT_MAX),
    }
    /// Address of the cluster listener, where the other nodes of a cluster reach this one
    /// (metadata quorum, replication); with `voters`, this node is one of a cluster.
    #[serde(deserialize_with = "deserialize_optional_listen")]
    cluster_listen: Option<SocketAddr> = None, {
        shown_default: Some("`off` (a single node)"),
        value_name: Some("ADDR|off"),
    }
    /// The voters of the metadata quorum, the same on every node: `id@host:port` of each
    /// node's cluster listener, comma-separated (every node listed is a voter; a node whose
    /// `node-id` is not listed joins as a broker, a learner of the quorum).
    voters: Option<Voters> = None, {
        kafka_names: &["controller.quorum.voters"],
        shown_default: Some("none (a single node)"),
        value_name: Some("ID@HOST:PORT,..."),
    }
    /// This broker's rack: replicas of a partition are spread over racks.
    rack: Option<String> = None, {
        kafka_names: &["broker.rack"],
        shown_default: Some("none"),
    }
    /// Create unknown topics on their first Metadata or Produce reference.
    auto_create_topics: bool = true, {
        kafka_names: &["auto.create.topics.enable"],
    }
    /// Partitions of auto-created topics and of CreateTopics asking for -1.
    default_partitions: i32 = 1, {
        kafka_names: &["num.partitions"],
        range: Some(1..=INT_MAX),
    }
    /// How long records are kept (7 days); `-1` keeps them forever.
    log_retention_ms: i64 = SEVEN_DAYS_MS, {
        kafka_names: &["log.retention.ms"],
        range: Some(-1..=LONG_MAX),
        needs_restart: false,
    }
    /// The most bytes a partition keeps; `-1` means no limit.
    log_retention_bytes: i64 = -1, {
        kafka_names: &["log.retention.bytes"],
        needs_restart: false,
    }
    /// The size at which a partition starts a new segment file.
    log_segment_bytes: i64 = 1024 * 1024 * 1024, {
        kafka_names: &["log.segment.bytes"],
        range: Some(14..=INT_MAX),
        needs_restart: false,
    }
    /// The age at which a partition starts a new segment file (7 days).
    log_segment_ms: i64 = SEVEN_DAYS_MS, {
        kafka_names: &["log.roll.ms"],
        range: Some(1..=LONG_MAX),
        needs_restart: false,
    }
    /// How often retention runs.
    log_retention_check_interval_ms: u64 = 300_000, {
        kafka_names: &["log.retention.check.interval.ms"],
        range: Some(1..=LONG_MAX),
    }
    /// Run the log cleaner, which compacts the topics with `cleanup.policy=compact`
    /// (`__consumer_offsets` and `__transaction_state` among them).
    log_cleaner_enable: bool = true, {
        kafka_names: &["log.cleaner.enable"],
    }
    /// Threads cleaning compacted logs, each on the dirtiest log not being cleaned.
    log_cleaner_threads: u32 = 1, {
        kafka_names: &["log.cleaner.threads"],
        range: Some(0..=INT_MAX),
    }
    /// The most bytes per second the log cleaner reads and writes, over all its threads.
    log_cleaner_io_max_bytes_per_second: BytesPerSecond = BytesPerSecond(None), {
        kafka_names: &["log.cleaner.io.max.bytes.per.second"],
        kafka_value: KafkaValue::UnsetIsDoubleMax,
        range: Some(1..=LONG_MAX),
        shown_default: Some("no limit"),
        value_name: Some("BYTES"),
    }
    /// Memory for the log cleaner's key → offset maps (24 bytes a key), shared by its
    /// threads (128 MiB); a log with more keys is cleaned over several runs.
    log_cleaner_dedupe_buffer_size: u64 = 128 * 1024 * 1024, {
        kafka_names: &["log.cleaner.dedupe.buffer.size"],
        range: Some(1024..=LONG_MAX),
    }
    /// How long a cleaner thread sleeps when no log needs cleaning.
    log_cleaner_backoff_ms: u64 = 15_000, {
        kafka_names: &["log.cleaner.backoff.ms"],
        range: Some(0..=LONG_MAX),
    }
    /// The largest record batch a topic accepts unless its `max.message.bytes` says
    /// otherwise.
    message_max_bytes: i32 = 1_048_588, {
        kafka_names: &["message.max.bytes"],
        range: Some(0..=INT_MAX),
        needs_restart: false,
    }
    /// The largest request frame accepted.
    max_request_bytes: usize = 100 * 1024 * 1024, {
        kafka_names: &["socket.request.max.bytes"],
        range: Some(1024..=INT_MAX),
    }
    /// The most record bytes one Fetch response carries (55 MiB), whatever the request asks
    /// for (the first batch may exceed it, KIP-74).
    fetch_max_bytes: i32 = DEFAULT_FETCH_MAX_BYTES, {
        kafka_names: &["fetch.max.bytes"],
        range: Some(1024..=INT_MAX),
    }
    /// How long a new group waits for more members before its first rebalance.
    group_initial_rebalance_delay_ms: u64 = 3000, {
        kafka_names: &["group.initial.rebalance.delay.ms"],
        range: Some(0..=INT_MAX),
    }
    /// How long the committed offsets of an empty group are kept (7 days).
    offsets_retention_minutes: i64 = 7 * 24 * 60, {
        kafka_names: &["offsets.retention.minutes"],
        range: Some(1..=INT_MAX),
    }
    /// Partitions of `__consumer_offsets`.
    offsets_topic_partitions: i32 = 50, {
        kafka_names: &["offsets.topic.num.partitions"],
        range: Some(1..=INT_MAX),
    }
    /// Partitions of `__transaction_state`.
    transaction_state_partitions: i32 = 50, {
        kafka_names: &["transaction.state.log.num.partitions"],
        range: Some(1..=INT_MAX),
    }
    /// `segment.bytes` of `__consumer_offsets` when it is created (100 MiB): its active
    /// segment is never compacted.
    offsets_topic_segment_bytes: i32 = 100 * 1024 * 1024, {
        kafka_names: &["offsets.topic.segment.bytes"],
        range: Some(1..=INT_MAX),
    }
    /// `segment.bytes` of `__transaction_state` when it is created (100 MiB).
    transaction_state_segment_bytes: i32 = 100 * 1024 * 1024, {
        kafka_names: &["transaction.state.log.segment.bytes"],
        range: Some(1..=INT_MAX),
    }
    /// The longest transaction timeout a producer may ask for (15 minutes).
    transaction_max_timeout_ms: i32 = 900_000, {
        kafka_names: &["transaction.max.timeout.ms"],
        range: Some(1..=INT_MAX),
    }
    /// How long an idle idempotent producer's state is kept (1 day).
    producer_id_expiration_ms: i64 = 24 * 60 * 60 * 1000, {
        kafka_names: &["producer.id.expiration.ms"],
        range: Some(1..=INT_MAX),
    }
    /// How long an idle transactional id is remembered (7 days).
    transactional_id_expiration_ms: i64 = SEVEN_DAYS_MS, {
        kafka_names: &["transactional.id.expiration.ms"],
        range: Some(1..=INT_MAX),
    }
    /// Client connections open at once; further clients wait to be accepted.
    max_connections: Option<u32> = None, {
        kafka_names: &["max.connections"],
        kafka_value: KafkaValue::EffectiveConnections,
        range: Some(1..=INT_MAX),
        shown_default: Some("half of the open-files limit"),
    }
    /// Connections one client address may hold; a connection over it is closed at once.
    max_connections_per_ip: Option<u32> = None, {
        kafka_names: &["max.connections.per.ip"],
        kafka_value: KafkaValue::UnsetIsIntMax,
        range: Some(1..=INT_MAX),
        shown_default: Some("no limit of its own"),
    }
    /// Close connections with no request and no response owed for this long (10 minutes).
    connections_max_idle_ms: u64 = 600_000, {
        kafka_names: &["connections.max.idle.ms"],
        range: Some(1..=LONG_MAX),
    }
    /// The most partitions this broker holds (KIP-578); creating more fails with
    /// POLICY_VIOLATION before anything is written.
    max_broker_partitions: u32 = 100_000, {
        kafka_names: &["max.broker.partitions"],
        range: Some(1..=INT_MAX),
    }
    /// A follower that has not caught up with its leader for this long leaves the ISR.
    replica_lag_time_max_ms: i64 = 30_000, {
        kafka_names: &["replica.lag.time.max.ms"],
        range: Some(1..=LONG_MAX),
    }
    /// How long a follower's fetch waits at the leader for new records.
    replica_fetch_wait_max_ms: i32 = 500, {
        kafka_names: &["replica.fetch.wait.max.ms"],
        range: Some(0..=INT_MAX),
    }
    /// The most bytes a follower's fetch takes of one partition (a larger first batch
    /// still comes whole).
    replica_fetch_max_bytes: i32 = 1_048_576, {
        kafka_names: &["replica.fetch.max.bytes"],
        range: Some(0..=INT_MAX),
    }
    /// The most bytes of one follower fetch response, over all its partitions.
    replica_fetch_response_max_bytes: i32 = 10_485_760, {
        kafka_names: &["replica.fetch.response.max.bytes"],
        range: Some(0..=INT_MAX),
    }
    /// How long a follower waits before fetching a partition again after an error.
    replica_fetch_backoff_ms: i32 = 1_000, {
        kafka_names: &["replica.fetch.backoff.ms"],
        range: Some(0..=INT_MAX),
    }
    /// Replicas of each partition of a topic created with replication factor -1 (and of
    /// auto-created topics); unset: 3, or the number of live brokers when fewer.
    default_replication_factor: Option<u32> = None, {
        kafka_names: &["default.replication.factor"],
        kafka_value: KafkaValue::EffectiveReplicationFactor,
        range: Some(1..=32_767),
        shown_default: Some("3, or the number of brokers when fewer"),
    }
    /// How often a broker of a cluster tells the controller it is alive.
    broker_heartbeat_interval_ms: u64 = 500, {
        kafka_names: &["broker.heartbeat.interval.ms"],
        range: Some(1..=INT_MAX),
    }
    /// A broker of a cluster not heard from for this long is fenced: it leaves every ISR
    /// and its leaderships move to other replicas.
    broker_session_timeout_ms: u64 = 3_000, {
        kafka_names: &["broker.session.timeout.ms"],
        range: Some(1..=INT_MAX),
    }
    /// Move leaderships back to the preferred replicas (the first of each assignment) once
    /// they are in sync again.
    auto_leader_rebalance_enable: bool = true, {
        kafka_names: &["auto.leader.rebalance.enable"],
    }
    /// How often the controller looks for leaderships to move back to preferred replicas.
    leader_imbalance_check_interval_seconds: u64 = 300, {
        kafka_names: &["leader.imbalance.check.interval.seconds"],
        range: Some(1..=INT_MAX),
    }
    /// The web console under `/ui` on the HTTP listener: `read-write`, `read-only` (every
    /// change refused) or `off`. It answers loopback clients only.
    console: ConsoleMode = ConsoleMode::ReadWrite, {
        value_name: Some("off|read-only|read-write"),
    }
    /// More `Host` names the console answers to, comma-separated (it always answers to
    /// `localhost`, loopback addresses and the `advertise` host); requests naming another
    /// host get 421, which defeats DNS rebinding.
    console_hosts: Option<String> = None, {
        shown_default: Some("none"),
        value_name: Some("HOST,..."),
    }
    /// Kafka listeners, `NAME://host:port` comma-separated (e.g.
    /// `PLAINTEXT://127.0.0.1:9092,SASL_SSL://0.0.0.0:9093`); names other than the protocols
    /// need `listener-security-protocol-map`. Replaces `listen` when set.
    listeners: Option<String> = None, {
        shown_default: Some("`PLAINTEXT://` and `listen`"),
        value_name: Some("NAME://HOST:PORT,..."),
    }
    /// Where clients reach each listener, `NAME://host:port` comma-separated; a listener
    /// not named here advertises its bound address.
    advertised_listeners: Option<String> = None, {
        shown_default: Some("each listener's address"),
        value_name: Some("NAME://HOST:PORT,..."),
    }
    /// The security protocol of each custom listener name, `NAME:PROTOCOL` comma-separated
    /// (PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL).
    listener_security_protocol_map: Option<String> = None, {
        kafka_names: &["listener.security.protocol.map"],
        shown_default: Some("each protocol name maps to itself"),
        value_name: Some("NAME:PROTOCOL,..."),
    }
    /// The TLS listeners' certificate chain (PEM), reloaded when it changes and on SIGHUP.
    ssl_cert_file: Option<String> = None, {
        shown_default: Some("none"),
        value_name: Some("PEM"),
    }
    /// The TLS listeners' private key (PEM: PKCS#8, PKCS#1 or SEC1, unencrypted).
    ssl_key_file: Option<String> = None, {
        shown_default: Some("none"),
        value_name: Some("PEM"),
    }
    /// The CA certificates (PEM) client certificates must chain to.
    ssl_ca_file: Option<String> = None, {
        shown_default: Some("none"),
        value_name: Some("PEM"),
    }
    /// Whether clients of SSL listeners present a certificate: `none`, `requested` (one
    /// without connects as `User:ANONYMOUS`) or `required`. SASL_SSL listeners ask for none
    /// (their clients authenticate with SASL), as in Kafka.
    ssl_client_auth: String = "none".to_string(), {
        kafka_names: &["ssl.client.auth"],
        value_name: Some("none|requested|required"),
    }
    /// How a client certificate's subject (`CN=alice,OU=eng,O=sluice`) becomes the principal
    /// name: `RULE:pattern/replacement/[LU]` and `DEFAULT`, comma-separated.
    ssl_principal_mapping_rules: String = "DEFAULT".to_string(), {
        kafka_names: &["ssl.principal.mapping.rules"],
        value_name: Some("RULES"),
    }
    /// The SASL mechanisms SASL listeners offer: PLAIN, SCRAM-SHA-256, SCRAM-SHA-512,
    /// OAUTHBEARER (unsecured JWTs, or signed ones with `sasl-oauthbearer-jwks-endpoint-url`),
    /// comma-separated.
    sasl_mechanisms: String = "PLAIN,SCRAM-SHA-256,SCRAM-SHA-512".to_string(), {
        kafka_names: &["sasl.enabled.mechanisms"],
        value_name: Some("MECHANISMS"),
    }
    /// Scopes an OAUTHBEARER token must grant, space-separated.
    sasl_oauthbearer_required_scopes: Option<String> = None, {
        shown_default: Some("none"),
        value_name: Some("SCOPES"),
    }
    /// The OAUTHBEARER token claim naming the principal.
    sasl_oauthbearer_sub_claim_name: String = "sub".to_string(), {
        kafka_names: &["sasl.oauthbearer.sub.claim.name"],
        value_name: Some("CLAIM"),
    }
    /// The OAUTHBEARER token claim holding its scopes.
    sasl_oauthbearer_scope_claim_name: String = "scope".to_string(), {
        kafka_names: &["sasl.oauthbearer.scope.claim.name"],
        value_name: Some("CLAIM"),
    }
    /// Clock skew tolerated when checking an OAUTHBEARER token's `exp`, `nbf` and `iat`.
    sasl_oauthbearer_clock_skew_seconds: i64 = 30, {
        kafka_names: &["sasl.oauthbearer.clock.skew.seconds"],
        range: Some(0..=INT_MAX),
    }
    /// Where the identity provider publishes the keys that sign OAUTHBEARER tokens (a JWKS):
    /// `https://…`, `http://` on a loopback address, or `file:/path`. With it, OAUTHBEARER
    /// accepts only JWTs signed by one of those keys, with `exp` and `iat` (KIP-768);
    /// without it, unsecured JWTs.
    sasl_oauthbearer_jwks_endpoint_url: Option<String> = None, {
        kafka_names: &["sasl.oauthbearer.jwks.endpoint.url"],
        shown_default: Some("none (unsecured JWTs)"),
        value_name: Some("URL"),
    }
    /// How often the JWKS is fetched again; a token signed with a key it lacks also fetches
    /// it, at most every 10 s.
    sasl_oauthbearer_jwks_endpoint_refresh_ms: u64 = 3_600_000, {
        kafka_names: &["sasl.oauthbearer.jwks.endpoint.refresh.ms"],
        range: Some(1000..=LONG_MAX),
    }
    /// CA certificates (PEM) an `https://` JWKS endpoint must chain to, instead of the
    /// system's.
    sasl_oauthbearer_jwks_endpoint_ca_file: Option<String> = None, {
        shown_default: Some("the system's roots"),
        value_name: Some("PEM"),
    }
    /// The issuer (`iss`) a signed OAUTHBEARER token must name.
    sasl_oauthbearer_expected_issuer: Option<String> = None, {
        kafka_names: &["sasl.oauthbearer.expected.issuer"],
        shown_default: Some("any"),
        value_name: Some("ISSUER"),
    }
    /// Audiences, comma-separated, of which a signed OAUTHBEARER token's `aud` must name one.
    sasl_oauthbearer_expected_audience: Option<String> = None, {
        kafka_names: &["sasl.oauthbearer.expected.audience"],
        shown_default: Some("any"),
        value_name: Some("AUDIENCES"),
    }
    /// The longest a SASL session lasts before the client must re-authenticate (KIP-368);
    /// `0` for no limit (a token's own expiry still applies).
    connections_max_reauth_ms: i64 = 0, {
        kafka_names: &["connections.max.reauth.ms"],
        range: Some(0..=LONG_MAX),
    }
    /// The largest frame a client may send before it has authenticated (512 KiB).
    sasl_server_max_receive_size: usize = 524_288, {
        kafka_names: &["sasl.server.max.receive.size"],
        range: Some(1024..=INT_MAX),
    }
    /// How long a failed authentication waits before it is answered and the connection
    /// closed.
    connection_failed_authentication_delay_ms: u64 = 100, {
        kafka_names: &["connection.failed.authentication.delay.ms"],
        range: Some(0..=INT_MAX),
    }
    /// How long a client may take for the TLS handshake and SASL authentication.
    authentication_timeout_ms: u64 = 30_000, {
        range: Some(1..=INT_MAX),
    }
    /// `user:password` of a user created with SCRAM-SHA-256 and SCRAM-SHA-512 credentials at
    /// start when it has none (e.g. the first super user).
    bootstrap_user: Option<String> = None, {
        shown_default: Some("none"),
        value_name: Some("USER:PASSWORD"),
        sensitive: true,
    }
    /// Enforce ACLs: `on` or `off`. The ACL APIs work either way, so ACLs can be prepared
    /// before enforcement is switched on.
    authorizer: String = "off".to_string(), {
        value_name: Some("on|off"),
    }
    /// Principals allowed everything, `;`-separated (e.g. `User:admin;User:CN=ops`).
    super_users: Option<String> = None, {
        kafka_names: &["super.users"],
        shown_default: Some("none"),
        value_name: Some("PRINCIPALS"),
    }
    /// With the authorizer on, allow a request on a resource no ACL applies to.
    allow_everyone_if_no_acl_found: bool = false, {
        kafka_names: &["allow.everyone.if.no.acl.found"],
    }
    /// Samples a client quota's rate is measured over (the rate spans at least this many
    /// less one windows, so a new client may burst that long before it is throttled).
    quota_window_num: u32 = 11, {
        kafka_names: &["quota.window.num"],
        range: Some(1..=INT_MAX),
    }
    /// The length of one quota sample.
    quota_window_size_seconds: u32 = 1, {
        kafka_names: &["quota.window.size.seconds"],
        range: Some(1..=INT_MAX),
    }
}

/// What the web console may do (see the `console` setting).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ConsoleMode {
    /// No console: `/ui` is not served.
    Off,
    /// Pages only: every change is refused, and no form to make one is shown.
    ReadOnly,
    /// Pages and changes (creating topics, producing, resetting offsets, …).
    ReadWrite,
}

impl SettingValue for ConsoleMode {
    fn parse_flag(text: &str) -> Result<Self, String> {
        match text.trim() {
            "off" => Ok(ConsoleMode::Off),
            "read-only" => Ok(ConsoleMode::ReadOnly),
            "read-write" => Ok(ConsoleMode::ReadWrite),
            other => Err(format!(
                "'{other}' is not a console mode; use off, read-only or read-write"
            )),
        }
    }
    fn show(&self) -> Option<String> {
        Some(
            match self {
                ConsoleMode::Off => "off",
                ConsoleMode::ReadOnly => "read-only",
                ConsoleMode::ReadWrite => "read-write",
            }
            .to_string(),
        )
    }
}

/// What is declared about a setting besides its field, type, default and doc.
#[derive(Debug)]
pub struct SettingOptions {
    /// Kafka's names for it, the main one first; empty when Kafka has no counterpart.
    pub kafka_names: &'static [&'static str],
    /// How DescribeConfigs shows it.
    pub kafka_value: KafkaValue,
    /// The values it accepts, for numbers.
    pub range: Option<Bounds>,
    /// Whether a change takes a restart. A setting that does not is the broker-level default
    /// of a topic config: it can also be set at runtime, as a broker config under its Kafka
    /// name, through AlterConfigs.
    pub needs_restart: bool,
    /// The default as the help and the README read it (Markdown), when printing the default
    /// value would not say it.
    pub shown_default: Option<&'static str>,
    /// The placeholder of the flag's value in `--help`, when not the upper-cased name.
    pub value_name: Option<&'static str>,
    /// Whether the value is a secret: never shown in `--help` or DescribeConfigs.
    pub sensitive: bool,
}

impl SettingOptions {
    /// What a setting gets unless it says otherwise.
    const DEFAULT: SettingOptions = SettingOptions {
        kafka_names: &[],
        kafka_value: KafkaValue::Configured,
        range: None,
        needs_restart: true,
        shown_default: None,
        value_name: None,
        sensitive: false,
    };
}

/// How DescribeConfigs(BROKER) shows a setting under its Kafka name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KafkaValue {
    /// The configured value.
    Configured,
    /// The configured value, or Kafka's "no limit" (`2147483647`) when unset.
    UnsetIsIntMax,
    /// The configured value, or Kafka's "no limit" for a DOUBLE (Java's `Double.MAX_VALUE`)
    /// when unset.
    UnsetIsDoubleMax,
    /// The listeners, `NAME://address` each (`PLAINTEXT://` and `listen` by default).
    PlaintextListener,
    /// The addresses clients are told to use, as worked out at start-up (`NAME://host:port`
    /// per listener; the port bound when a listener asked for port 0).
    Advertised,
    /// The connection limit the broker settled on at start-up, within the open-files limit.
    EffectiveConnections,
    /// The replication factor a topic created with -1 gets now (unset: 3, or the live
    /// brokers when fewer).
    EffectiveReplicationFactor,
}

/// One broker setting, as declared in the settings table.
#[derive(Debug)]
pub struct Setting {
    field: &'static str,
    doc: &'static str,
    /// The rest of what is declared.
    pub options: SettingOptions,
    show: fn(&BrokerConfig) -> Option<String>,
    number: fn(&BrokerConfig) -> Option<i128>,
    set: fn(&mut BrokerConfig, &str) -> Result<(), String>,
    kafka_type: fn(Option<&Bounds>) -> ConfigType,
}

impl Setting {
    /// The name: the TOML key and the flag, e.g. `log-retention-ms`.
    pub fn name(&self) -> String {
        self.field.replace('_', "-")
    }

    /// The environment variable, e.g. `SLUICE_LOG_RETENTION_MS`.
    pub fn env_var(&self) -> String {
        format!("SLUICE_{}", self.field.to_ascii_uppercase())
    }

    /// Kafka's main name for it, if it has one.
    pub fn kafka_name(&self) -> Option<&'static str> {
        self.options.kafka_names.first().copied()
    }

    /// What it does, in one paragraph (Markdown).
    pub fn doc(&self) -> String {
        self.doc
            .lines()
            .map(str::trim)
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// The default, in Markdown: the declared wording, or the default value in backticks.
    pub fn default_text(&self) -> String {
        match self.options.shown_default {
            Some(text) => text.to_string(),
            None => format!(
                "`{}`",
                self.value(BrokerConfig::defaults()).unwrap_or_default()
            ),
        }
    }

    /// The values it accepts (Markdown: `` `14` to `2147483647` ``, `` at least `1` ``), for
    /// numbers with a range.
    pub fn range_text(&self) -> Option<String> {
        self.options.range.as_ref().map(|bounds| {
            if *bounds.end() == LONG_MAX {
                format!("at least `{}`", bounds.start())
            } else {
                format!("`{}` to `{}`", bounds.start(), bounds.end())
            }
        })
    }

    /// The placeholder of the flag's value in `--help`.
    pub fn value_name(&self) -> String {
        match self.options.value_name {
            Some(name) => name.to_string(),
            None => self.field.to_ascii_uppercase(),
        }
    }

    /// Whether the range admits negative numbers (so a flag value may start with `-`).
    pub fn allows_negative(&self) -> bool {
        self.options.range.as_ref().is_none_or(|r| *r.start() < 0)
    }

    /// Sets it in `config` from the text of a flag or environment variable.
    pub fn set(&self, config: &mut BrokerConfig, text: &str) -> Result<(), String> {
        (self.set)(config, text)
    }

    /// Its value in `config` as text; `None` when unset.
    pub fn value(&self, config: &BrokerConfig) -> Option<String> {
        (self.show)(config)
    }

    /// Kafka's type for it, as DescribeConfigs v3+ reports it.
    pub fn kafka_type(&self) -> ConfigType {
        (self.kafka_type)(self.options.range.as_ref())
    }

    /// Refuses a value in `config` outside the range.
    fn check(&self, config: &BrokerConfig) -> Result<(), ConfigError> {
        let (Some(value), Some(bounds)) = ((self.number)(config), &self.options.range) else {
            return Ok(());
        };
        if bounds.contains(&value) {
            return Ok(());
        }
        Err(ConfigError::Invalid {
            name: self.name(),
            reason: format!("{value} is out of range: {}", describe_bounds(bounds)),
        })
    }
}

/// The setting Kafka calls `kafka_name`.
pub fn setting_by_kafka_name(kafka_name: &str) -> Option<&'static Setting> {
    SETTINGS
        .iter()
        .find(|s| s.options.kafka_names.contains(&kafka_name))
}

/// How a setting's type reads from a flag or environment variable and shows as text.
pub trait SettingValue: Sized {
    /// Parses the text of a flag or environment variable.
    fn parse_flag(text: &str) -> Result<Self, String>;
    /// The value as text; `None` when unset.
    fn show(&self) -> Option<String>;
    /// The value as a number, for range checks.
    fn number(&self) -> Option<i128> {
        None
    }
    /// Kafka's type for a setting of this type with `range`.
    fn kafka_type(_range: Option<&Bounds>) -> ConfigType {
        ConfigType::String
    }
}

macro_rules! integer_setting_values {
    ($($t:ty),*) => {$(
        impl SettingValue for $t {
            fn parse_flag(text: &str) -> Result<Self, String> {
                text.parse().map_err(|e: std::num::ParseIntError| e.to_string())
            }
            fn show(&self) -> Option<String> {
                Some(self.to_string())
            }
            fn number(&self) -> Option<i128> {
                Some(i128::try_from(*self).unwrap_or(i128::MAX))
            }
            /// An `INT` in Kafka stops at `i32::MAX`; the rest are `LONG`s.
            fn kafka_type(range: Option<&Bounds>) -> ConfigType {
                match range {
                    Some(r) if *r.end() <= INT_MAX => ConfigType::Int,
                    _ => ConfigType::Long,
                }
            }
        }
    )*};
}

integer_setting_values!(i32, i64, u32, u64, usize);

impl SettingValue for Option<u32> {
    fn parse_flag(text: &str) -> Result<Self, String> {
        u32::parse_flag(text).map(Some)
    }
    fn show(&self) -> Option<String> {
        self.map(|n| n.to_string())
    }
    fn number(&self) -> Option<i128> {
        self.map(i128::from)
    }
    fn kafka_type(range: Option<&Bounds>) -> ConfigType {
        u32::kafka_type(range)
    }
}

/// A rate in bytes per second, which Kafka declares as a DOUBLE; unset is no limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct BytesPerSecond(pub Option<u64>);

impl SettingValue for BytesPerSecond {
    fn parse_flag(text: &str) -> Result<Self, String> {
        u64::parse_flag(text).map(|n| Self(Some(n)))
    }
    fn show(&self) -> Option<String> {
        self.0.map(|n| n.to_string())
    }
    fn number(&self) -> Option<i128> {
        self.0.map(i128::from)
    }
    fn kafka_type(_range: Option<&Bounds>) -> ConfigType {
        ConfigType::Double
    }
}

impl SettingValue for bool {
    fn parse_flag(text: &str) -> Result<Self, String> {
        text.parse()
            .map_err(|_| format!("'{text}' is neither true nor false"))
    }
    fn show(&self) -> Option<String> {
        Some(self.to_string())
    }
    fn kafka_type(_range: Option<&Bounds>) -> ConfigType {
        ConfigType::Boolean
    }
}

impl SettingValue for SocketAddr {
    fn parse_flag(text: &str) -> Result<Self, String> {
        text.parse()
            .map_err(|_| format!("'{text}' is not an ip:port address"))
    }
    fn show(&self) -> Option<String> {
        Some(self.to_string())
    }
}

/// An optional listener address: `off` (or `none`) when there is none.
impl SettingValue for Option<SocketAddr> {
    fn parse_flag(text: &str) -> Result<Self, String> {
        parse_http_listen(text)
    }
    fn show(&self) -> Option<String> {
        Some(self.map_or_else(|| "off".to_string(), |a| a.to_string()))
    }
}

impl SettingValue for Option<String> {
    fn parse_flag(text: &str) -> Result<Self, String> {
        Ok(Some(text.to_string()))
    }
    fn show(&self) -> Option<String> {
        self.clone()
    }
}

impl SettingValue for String {
    fn parse_flag(text: &str) -> Result<Self, String> {
        Ok(text.to_string())
    }
    fn show(&self) -> Option<String> {
        Some(self.clone())
    }
}

impl SettingValue for Option<Voters> {
    fn parse_flag(text: &str) -> Result<Self, String> {
        text.parse().map(Some)
    }
    fn show(&self) -> Option<String> {
        self.as_ref().map(Voters::to_string)
    }
}

impl SettingValue for PathBuf {
    fn parse_flag(text: &str) -> Result<Self, String> {
        Ok(PathBuf::from(text))
    }
    fn show(&self) -> Option<String> {
        Some(self.display().to_string())
    }
}

/// A configuration that cannot work, reported before anything starts.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A value is outside what the setting allows.
    #[error("invalid value for {name}: {reason}")]
    Invalid {
        /// The setting's name.
        name: String,
        /// Why it is invalid and what would be valid.
        reason: String,
    },
    /// No `advertise` was given and the listen address cannot stand in for it: Kafka refuses
    /// to start with the meta-address in `advertised.listeners` for the same reason.
    #[error(
        "the listen address {listen} cannot be advertised to clients: {ip} is the nonroutable \
         meta-address, which no client can connect to; pass --advertise host:port with an \
         address clients can reach"
    )]
    UnroutableListen {
        /// The listen address the advertised one would have been taken from.
        listen: SocketAddr,
        /// Its IP, `0.0.0.0` or `::`.
        ip: std::net::IpAddr,
    },
}

/// The values a numeric setting accepts: Kafka's range for its equivalent, bounded by the
/// type Kafka gives it (an `INT` setting stops at `i32::MAX`).
pub type Bounds = std::ops::RangeInclusive<i128>;

const INT_MAX: i128 = i32::MAX as i128;
const LONG_MAX: i128 = i64::MAX as i128;

impl BrokerConfig {
    /// The defaults, built once.
    pub fn defaults() -> &'static BrokerConfig {
        static DEFAULTS: LazyLock<BrokerConfig> = LazyLock::new(BrokerConfig::default);
        &DEFAULTS
    }

    /// Checks every value before anything starts, so that none is clamped or misread later.
    pub fn validate(&self) -> Result<(), ConfigError> {
        for setting in SETTINGS {
            setting.check(self)?;
        }
        let listeners = self.listener_specs()?;
        if let Some(http) = self.http_listen
            && let Some(kafka) = listeners
                .iter()
                .find(|l| listeners_collide(l.address, http))
        {
            let which = match self.listeners {
                None => format!("listen {}", self.listen),
                Some(_) => format!("listener {kafka}"),
            };
            return Err(ConfigError::Invalid {
                name: "http-listen".into(),
                reason: format!(
                    "{http} overlaps the Kafka listener ({which}): the HTTP and Kafka listeners need different ports"
                ),
            });
        }
        if self.listeners.is_none() {
            self.check_advertised()?;
        }
        self.check_cluster(&listeners)?;
        self.check_security(&listeners)
    }

    /// Cluster mode needs both the cluster listener and the voters, and a port of its own; a
    /// voter listens at the port `--voters` lists for it, and a node outside the voters
    /// (which joins as a learner) at a specific address no voter has. A single node has
    /// neither setting.
    fn check_cluster(&self, listeners: &[ListenerSpec]) -> Result<(), ConfigError> {
        let invalid = |name: &str, reason: String| ConfigError::Invalid {
            name: name.into(),
            reason,
        };
        if let Some(rack) = &self.rack
            && rack.trim().is_empty()
        {
            return Err(invalid("rack", "a rack name cannot be empty".into()));
        }
        let (listen, voters) = match (self.cluster_listen, &self.voters) {
            (None, None) => return Ok(()),
            (Some(_), None) => {
                return Err(invalid(
                    "voters",
                    "a cluster node needs --voters as well as --cluster-listen".into(),
                ));
            }
            (None, Some(_)) => {
                return Err(invalid(
                    "cluster-listen",
                    "a cluster node needs --cluster-listen as well as --voters".into(),
                ));
            }
            (Some(listen), Some(voters)) => (listen, voters),
        };
        match voters.get(self.node_id) {
            Some(me) => {
                let listed_port = me
                    .addr
                    .rsplit_once(':')
                    .and_then(|(_, p)| p.parse::<u16>().ok());
                if listed_port != Some(listen.port()) {
                    return Err(invalid(
                        "cluster-listen",
                        format!(
                            "{listen} is not where --voters says node {} listens ({}): the \
                             other nodes would not reach it",
                            self.node_id, me.addr
                        ),
                    ));
                }
            }
            // A node outside the voters joins as a broker (a learner of the quorum) at the
            // address it listens on: the other nodes must reach it there.
            None => {
                if listen.ip().is_unspecified() {
                    return Err(invalid(
                        "cluster-listen",
                        format!(
                            "{listen} is not an address other nodes can reach: node {} is not \
                             among the voters, so it joins as a learner at the address it \
                             listens on; give it a specific one",
                            self.node_id
                        ),
                    ));
                }
                if let Some(voter) = voters.iter().find(|v| v.addr == listen.to_string()) {
                    return Err(invalid(
                        "cluster-listen",
                        format!(
                            "{listen} is where --voters says node {} listens: node {} joins \
                             as a learner and needs a cluster listener of its own",
                            voter.id, self.node_id
                        ),
                    ));
                }
            }
        }
        let kafka = listeners.iter().map(|l| match self.listeners {
            None => (format!("listen {}", l.address), l.address),
            Some(_) => (format!("listener {l}"), l.address),
        });
        let http = self
            .http_listen
            .map(|addr| (format!("http-listen {addr}"), addr));
        for (other, addr) in kafka.chain(http) {
            if listeners_collide(listen, addr) {
                return Err(invalid(
                    "cluster-listen",
                    format!("{listen} overlaps {other}: every listener needs its own port"),
                ));
            }
        }
        Ok(())
    }

    /// Whether this node is one of a cluster (`cluster-listen` and `voters` set).
    pub fn is_cluster(&self) -> bool {
        self.cluster_listen.is_some() && self.voters.is_some()
    }

    /// The advertised address must be one a client can connect to: `advertise` well formed,
    /// or, without it, a listen address other than the meta-address (port 0 there is fine:
    /// the bound port is advertised).
    fn check_advertised(&self) -> Result<(), ConfigError> {
        match &self.advertise {
            Some(adv) => parse_advertised(adv)
                .map(|_| ())
                .map_err(|reason| ConfigError::Invalid {
                    name: "advertise".into(),
                    reason: format!("{reason}; pass --advertise host:port"),
                }),
            None if self.listen.ip().is_unspecified() => Err(ConfigError::UnroutableListen {
                listen: self.listen,
                ip: self.listen.ip(),
            }),
            None => Ok(()),
        }
    }

    /// The host and port clients are told to use: `advertise`, or else the address the
    /// listener is bound to (so `--listen 127.0.0.1:0` advertises the port it got).
    pub fn advertised(&self, bound: SocketAddr) -> (String, i32) {
        if let Some((host, port)) = self
            .advertise
            .as_deref()
            .and_then(|a| parse_advertised(a).ok())
        {
            return (host, port);
        }
        (bound.ip().to_string(), i32::from(bound.port()))
    }
}

/// Whether two listeners would fight over one port: the same port (not 0, which picks a
/// free one), on the same address or with one of them on every address of the family.
fn listeners_collide(a: SocketAddr, b: SocketAddr) -> bool {
    let same_family = a.is_ipv4() == b.is_ipv4();
    a.port() == b.port()
        && a.port() != 0
        && (a.ip() == b.ip()
            || (same_family && (a.ip().is_unspecified() || b.ip().is_unspecified())))
}

fn describe_bounds(bounds: &Bounds) -> String {
    if *bounds.end() == LONG_MAX {
        format!("must be at least {}", bounds.start())
    } else {
        format!("must be between {} and {}", bounds.start(), bounds.end())
    }
}

/// Splits and checks an advertised `host:port`: the host a name (letters, digits, `-`, `.`,
/// `_`) or an IP address (IPv6 bare or in brackets) other than the meta-address `0.0.0.0` or
/// `::`, the port 1–65535.
pub fn parse_advertised(s: &str) -> Result<(String, i32), String> {
    let (host, port) = s
        .rsplit_once(':')
        .ok_or_else(|| format!("'{s}' is not host:port"))?;
    let port: u16 = port
        .parse()
        .map_err(|_| format!("'{port}' in '{s}' is not a port number"))?;
    if port == 0 {
        return Err(format!("'{s}' has port 0, which no client can connect to"));
    }
    let bracketed = host.strip_prefix('[').and_then(|h| h.strip_suffix(']'));
    let host = bracketed.unwrap_or(host);
    if host.is_empty() {
        return Err(format!("'{s}' has no host"));
    }
    match host.parse::<std::net::IpAddr>() {
        Ok(ip) if ip.is_unspecified() => Err(format!(
            "'{s}' uses the nonroutable meta-address {ip}, which no client can connect to"
        )),
        Ok(std::net::IpAddr::V4(_)) if bracketed.is_some() => {
            Err(format!("'{s}' puts an IPv4 address in brackets"))
        }
        Ok(_) => Ok((host.to_string(), i32::from(port))),
        Err(_) if bracketed.is_none() && is_host_name(host) => {
            Ok((host.to_string(), i32::from(port)))
        }
        Err(_) => Err(format!(
            "'{host}' in '{s}' is neither a host name (letters, digits, '-', '.', '_') nor an IP \
             address"
        )),
    }
}

fn is_host_name(host: &str) -> bool {
    host.bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(config: &BrokerConfig) -> String {
        config
            .validate()
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
    }

    #[test]
    fn every_setting_is_a_toml_key_and_names_are_unique() {
        let mut names: Vec<String> = SETTINGS.iter().map(Setting::name).collect();
        // Each name is a TOML key holding the setting's own value.
        for setting in SETTINGS {
            let value = setting.value(BrokerConfig::defaults());
            let toml_value = match value.as_deref() {
                Some(v) if v.parse::<i64>().is_ok() || v == "true" || v == "false" => v.to_string(),
                Some(v) => format!("{v:?}"),
                None => continue,
            };
            let text = format!("{} = {toml_value}\n", setting.name());
            let parsed: BrokerConfig =
                toml::from_str(&text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(&parsed, BrokerConfig::defaults(), "{text}");
        }
        names.sort();
        names.dedup();
        assert_eq!(names.len(), SETTINGS.len());
        let mut kafka: Vec<&str> = SETTINGS
            .iter()
            .flat_map(|s| s.options.kafka_names.iter().copied())
            .collect();
        let count = kafka.len();
        kafka.sort_unstable();
        kafka.dedup();
        assert_eq!(kafka.len(), count, "a Kafka name is claimed twice");
        assert_eq!(
            SETTINGS
                .iter()
                .find(|s| s.name() == "log-retention-ms")
                .map(Setting::env_var),
            Some("SLUICE_LOG_RETENTION_MS".to_string())
        );
    }

    /// The settings that need no restart are exactly those whose Kafka name is the broker
    /// default of a topic config: DescribeConfigs lists those with the topic configs, and
    /// AlterConfigs on the broker changes them.
    #[test]
    fn settings_without_restart_are_the_broker_defaults_of_topic_configs() {
        for setting in SETTINGS {
            let topic_default = setting.options.kafka_names.iter().any(|name| {
                crate::topic_config::TOPIC_CONFIGS
                    .iter()
                    .any(|def| def.broker_synonym == Some(*name))
            });
            assert_eq!(
                !setting.options.needs_restart,
                topic_default,
                "{}",
                setting.name()
            );
        }
    }

    #[test]
    fn kafka_types_follow_the_range() {
        let kind = |name: &str| {
            SETTINGS
                .iter()
                .find(|s| s.name() == name)
                .map(Setting::kafka_type)
        };
        assert_eq!(kind("node-id"), Some(ConfigType::Int));
        assert_eq!(kind("producer-id-expiration-ms"), Some(ConfigType::Int));
        assert_eq!(kind("connections-max-idle-ms"), Some(ConfigType::Long));
        assert_eq!(kind("log-retention-bytes"), Some(ConfigType::Long));
        assert_eq!(kind("auto-create-topics"), Some(ConfigType::Boolean));
        assert_eq!(kind("data-dir"), Some(ConfigType::String));
    }

    #[test]
    fn defaults_are_valid() {
        assert!(BrokerConfig::default().validate().is_ok());
    }

    #[test]
    fn out_of_range_values_are_refused_with_their_range() {
        type Change = fn(&mut BrokerConfig);
        let cases: [(Change, &str); 5] = [
            (
                |c| c.log_segment_bytes = 99_999_999_999,
                "invalid value for log-segment-bytes: 99999999999 is out of range: must be \
                 between 14 and 2147483647",
            ),
            (
                |c| c.log_retention_check_interval_ms = 0,
                "invalid value for log-retention-check-interval-ms: 0 is out of range: must be \
                 at least 1",
            ),
            (
                |c| c.log_retention_ms = -5,
                "invalid value for log-retention-ms: -5 is out of range: must be at least -1",
            ),
            (
                |c| c.max_request_bytes = 1 << 40,
                "invalid value for max-request-bytes: 1099511627776 is out of range: must be \
                 between 1024 and 2147483647",
            ),
            (
                |c| c.offsets_retention_minutes = i64::from(i32::MAX) + 1,
                "invalid value for offsets-retention-minutes: 2147483648 is out of range: must \
                 be between 1 and 2147483647",
            ),
        ];
        for (set, want) in cases {
            let mut config = BrokerConfig::default();
            set(&mut config);
            assert_eq!(error(&config), want);
        }
        // The edges of each range are accepted.
        let config = BrokerConfig {
            log_retention_ms: -1,
            log_segment_bytes: i64::from(i32::MAX),
            log_retention_check_interval_ms: 1,
            ..BrokerConfig::default()
        };
        assert!(config.validate().is_ok());
    }

    #[test]
    fn cluster_settings_come_together_and_include_this_node() {
        let cluster = |listen: &str, voters: &str| BrokerConfig {
            node_id: 2,
            cluster_listen: Some(listen.parse().unwrap()),
            voters: Some(voters.parse().unwrap()),
            ..BrokerConfig::default()
        };
        let voters = "1@127.0.0.1:9191,2@127.0.0.1:9192,3@127.0.0.1:9193";
        assert!(cluster("127.0.0.1:9192", voters).validate().is_ok());
        assert!(cluster("0.0.0.0:9192", voters).validate().is_ok());
        assert!(cluster("127.0.0.1:9192", voters).is_cluster());
        // A node outside the voters is a broker joining as a learner.
        let learner = BrokerConfig {
            node_id: 4,
            ..cluster("127.0.0.1:9194", voters)
        };
        assert!(learner.validate().is_ok());
        assert!(!BrokerConfig::default().is_cluster());
        for (config, want) in [
            (
                BrokerConfig {
                    voters: None,
                    ..cluster("127.0.0.1:9192", voters)
                },
                "invalid value for voters: a cluster node needs --voters as well as \
                 --cluster-listen",
            ),
            (
                BrokerConfig {
                    cluster_listen: None,
                    ..cluster("127.0.0.1:9192", voters)
                },
                "invalid value for cluster-listen: a cluster node needs --cluster-listen as well \
                 as --voters",
            ),
            (
                BrokerConfig {
                    node_id: 4,
                    ..cluster("0.0.0.0:9194", voters)
                },
                "invalid value for cluster-listen: 0.0.0.0:9194 is not an address other nodes \
                 can reach: node 4 is not among the voters, so it joins as a learner at the \
                 address it listens on; give it a specific one",
            ),
            (
                BrokerConfig {
                    node_id: 4,
                    ..cluster("127.0.0.1:9192", voters)
                },
                "invalid value for cluster-listen: 127.0.0.1:9192 is where --voters says node 2 \
                 listens: node 4 joins as a learner and needs a cluster listener of its own",
            ),
            (
                cluster("127.0.0.1:9191", voters),
                "invalid value for cluster-listen: 127.0.0.1:9191 is not where --voters says \
                 node 2 listens (127.0.0.1:9192): the other nodes would not reach it",
            ),
            (
                cluster("127.0.0.1:9092", "2@127.0.0.1:9092"),
                "invalid value for cluster-listen: 127.0.0.1:9092 overlaps listen \
                 127.0.0.1:9092: every listener needs its own port",
            ),
            (
                BrokerConfig {
                    listeners: Some(
                        "PLAINTEXT://127.0.0.1:9092,SASL_PLAINTEXT://127.0.0.1:9192".into(),
                    ),
                    ..cluster("127.0.0.1:9192", voters)
                },
                "invalid value for cluster-listen: 127.0.0.1:9192 overlaps listener \
                 SASL_PLAINTEXT://127.0.0.1:9192: every listener needs its own port",
            ),
            (
                BrokerConfig {
                    rack: Some(" ".into()),
                    ..BrokerConfig::default()
                },
                "invalid value for rack: a rack name cannot be empty",
            ),
        ] {
            assert_eq!(error(&config), want);
        }
    }

    #[test]
    fn advertised_address_must_be_reachable() {
        let with_advertise = |adv: &str| BrokerConfig {
            advertise: Some(adv.into()),
            ..BrokerConfig::default()
        };
        for (adv, reason) in [
            (
                "0.0.0.0:9092",
                "'0.0.0.0:9092' uses the nonroutable meta-address 0.0.0.0",
            ),
            (
                "[::]:9092",
                "'[::]:9092' uses the nonroutable meta-address ::",
            ),
            ("broker:0", "'broker:0' has port 0"),
            ("broker", "'broker' is not host:port"),
            (
                "broker:99999",
                "'99999' in 'broker:99999' is not a port number",
            ),
            (":9092", "':9092' has no host"),
            (
                "bro ker:9092",
                "'bro ker' in 'bro ker:9092' is neither a host name",
            ),
            (
                "[broker]:9092",
                "'broker' in '[broker]:9092' is neither a host name",
            ),
        ] {
            let message = error(&with_advertise(adv));
            assert!(
                message.starts_with(&format!("invalid value for advertise: {reason}")),
                "{adv}: {message}"
            );
            assert!(
                message.ends_with("; pass --advertise host:port"),
                "{adv}: {message}"
            );
        }
        let bound = SocketAddr::from(([127, 0, 0, 1], 4242));
        for (adv, host, port) in [
            ("broker.example.com:9092", "broker.example.com", 9092),
            ("10.1.2.3:19092", "10.1.2.3", 19092),
            ("[::1]:9093", "::1", 9093),
            ("::1:9094", "::1", 9094),
            ("my_host-1:1", "my_host-1", 1),
        ] {
            let config = with_advertise(adv);
            assert!(config.validate().is_ok(), "{adv}");
            assert_eq!(config.advertised(bound), (host.to_string(), port), "{adv}");
        }

        // Without --advertise the listen address stands in, unless it is the meta-address.
        for listen in ["0.0.0.0:9092", "[::]:9092"] {
            let config = BrokerConfig {
                listen: listen.parse().unwrap(),
                ..BrokerConfig::default()
            };
            let message = error(&config);
            assert!(
                message.starts_with(&format!(
                    "the listen address {listen} cannot be advertised to clients"
                )) && message
                    .ends_with("pass --advertise host:port with an address clients can reach"),
                "{message}"
            );
        }
        // Port 0 in the listen address advertises the port actually bound.
        let config = BrokerConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            ..BrokerConfig::default()
        };
        assert!(config.validate().is_ok());
        assert_eq!(config.advertised(bound), ("127.0.0.1".to_string(), 4242));
    }
}

//! Broker configuration: what `sluice serve` runs with.
//!
//! Defaults follow Apache Kafka's (`num.partitions`, `log.retention.ms`, …) so
//! that a client sees the same behaviour it would from Kafka. The binary layers
//! a TOML file, `SLUICE_*` environment variables and flags on top.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;

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

fn deserialize_http_listen<'de, D>(d: D) -> Result<Option<SocketAddr>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    let s = String::deserialize(d)?;
    parse_http_listen(&s).map_err(serde::de::Error::custom)
}

/// Everything the broker needs to start.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct BrokerConfig {
    /// Address the Kafka listener binds to.
    pub listen: SocketAddr,
    /// Address of the HTTP listener (`/metrics`, `/health`, `/ready`); `None`
    /// (`"off"` in the file) serves no HTTP.
    #[serde(deserialize_with = "deserialize_http_listen")]
    pub http_listen: Option<SocketAddr>,
    /// Requests of the client with this `client.id` are logged one by one at
    /// INFO (api, version, correlation id, duration, errors).
    pub debug_client_id: Option<String>,
    /// `host:port` clients are told to connect to; defaults to `listen`.
    pub advertise: Option<String>,
    /// Where logs, metadata and the lock file live.
    pub data_dir: PathBuf,
    /// This broker's node id (`node.id`).
    pub node_id: i32,
    /// Create topics on first Metadata/Produce reference (`auto.create.topics.enable`).
    pub auto_create_topics: bool,
    /// Partitions of auto-created topics and of CreateTopics with -1 (`num.partitions`).
    pub default_partitions: i32,
    /// `log.retention.ms`; -1 keeps data forever.
    pub log_retention_ms: i64,
    /// `log.retention.bytes`; -1 means no size limit.
    pub log_retention_bytes: i64,
    /// `log.segment.bytes`.
    pub log_segment_bytes: i64,
    /// `log.roll.ms`.
    pub log_segment_ms: i64,
    /// How often retention runs (`log.retention.check.interval.ms`).
    pub log_retention_check_interval_ms: u64,
    /// `message.max.bytes`: the largest record batch a topic accepts by default.
    pub message_max_bytes: i32,
    /// `socket.request.max.bytes`: the largest request frame accepted.
    pub max_request_bytes: usize,
    /// `fetch.max.bytes`: the most record bytes one Fetch response carries,
    /// whatever the request asks for (the first batch may exceed it, KIP-74).
    pub fetch_max_bytes: i32,
    /// `group.initial.rebalance.delay.ms`.
    pub group_initial_rebalance_delay_ms: u64,
    /// `offsets.retention.minutes`.
    pub offsets_retention_minutes: i64,
    /// `offsets.topic.num.partitions`.
    pub offsets_topic_partitions: i32,
    /// `transaction.state.log.num.partitions`.
    pub transaction_state_partitions: i32,
    /// `transaction.max.timeout.ms`: the longest transaction timeout a producer may ask for.
    pub transaction_max_timeout_ms: i32,
    /// `producer.id.expiration.ms`: idempotent producer state is dropped after this long idle.
    pub producer_id_expiration_ms: i64,
    /// `transactional.id.expiration.ms`: transactional ids are forgotten after this long idle.
    pub transactional_id_expiration_ms: i64,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 9092)),
            http_listen: Some(DEFAULT_HTTP_LISTEN),
            debug_client_id: None,
            advertise: None,
            data_dir: PathBuf::from("sluice-data"),
            node_id: 1,
            auto_create_topics: true,
            default_partitions: 1,
            log_retention_ms: SEVEN_DAYS_MS,
            log_retention_bytes: -1,
            log_segment_bytes: 1024 * 1024 * 1024,
            log_segment_ms: SEVEN_DAYS_MS,
            log_retention_check_interval_ms: 300_000,
            message_max_bytes: 1_048_588,
            max_request_bytes: 100 * 1024 * 1024,
            fetch_max_bytes: DEFAULT_FETCH_MAX_BYTES,
            group_initial_rebalance_delay_ms: 3000,
            offsets_retention_minutes: 7 * 24 * 60,
            offsets_topic_partitions: 50,
            transaction_state_partitions: 50,
            transaction_max_timeout_ms: 900_000,
            producer_id_expiration_ms: 24 * 60 * 60 * 1000,
            transactional_id_expiration_ms: SEVEN_DAYS_MS,
        }
    }
}

/// A configuration that cannot work, reported before anything starts.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A value is outside what the setting allows.
    #[error("invalid value for {name}: {reason}")]
    Invalid {
        /// The setting's name.
        name: &'static str,
        /// Why it is invalid and what would be valid.
        reason: String,
    },
}

impl BrokerConfig {
    /// Checks values that would otherwise fail later in obscure ways.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |name, reason: &str| {
            Err(ConfigError::Invalid {
                name,
                reason: reason.to_string(),
            })
        };
        if self.node_id < 0 {
            return invalid("node-id", "must be 0 or greater");
        }
        if self.default_partitions < 1 {
            return invalid("default-partitions", "must be at least 1");
        }
        if self.log_segment_bytes < 14 {
            return invalid("log-segment-bytes", "must be at least 14");
        }
        if self.log_segment_ms < 1 {
            return invalid("log-segment-ms", "must be at least 1");
        }
        if self.message_max_bytes < 0 {
            return invalid("message-max-bytes", "must be 0 or greater");
        }
        if self.max_request_bytes < 1024 {
            return invalid("max-request-bytes", "must be at least 1024");
        }
        if self.fetch_max_bytes < 1024 {
            return invalid("fetch-max-bytes", "must be at least 1024");
        }
        if self.transaction_state_partitions < 1 {
            return invalid("transaction-state-partitions", "must be at least 1");
        }
        if self.transaction_max_timeout_ms < 1 {
            return invalid("transaction-max-timeout-ms", "must be at least 1");
        }
        if self.producer_id_expiration_ms < 1 {
            return invalid("producer-id-expiration-ms", "must be at least 1");
        }
        if self.transactional_id_expiration_ms < 1 {
            return invalid("transactional-id-expiration-ms", "must be at least 1");
        }
        if self.offsets_topic_partitions < 1 {
            return invalid("offsets-topic-partitions", "must be at least 1");
        }
        if let Some(adv) = &self.advertise {
            parse_host_port(adv).map_err(|reason| ConfigError::Invalid {
                name: "advertise",
                reason,
            })?;
        }
        Ok(())
    }

    /// The host and port clients are told to use.
    pub fn advertised(&self, bound: SocketAddr) -> (String, i32) {
        if let Some((host, port)) = self
            .advertise
            .as_deref()
            .and_then(|a| parse_host_port(a).ok())
        {
            return (host, port);
        }
        (bound.ip().to_string(), i32::from(bound.port()))
    }
}

/// Splits `host:port`, accepting `[v6]:port`.
pub fn parse_host_port(s: &str) -> Result<(String, i32), String> {
    let (host, port) = s
        .rsplit_once(':')
        .ok_or_else(|| format!("'{s}' is not host:port"))?;
    let port: u16 = port
        .parse()
        .map_err(|_| format!("'{port}' in '{s}' is not a port number"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err(format!("'{s}' has no host"));
    }
    Ok((host.to_string(), i32::from(port)))
}

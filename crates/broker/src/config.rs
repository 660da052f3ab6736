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
    /// `max.connections`: client connections open at once; further ones wait to be
    /// accepted. `None`: as many as the open-files limit leaves room for.
    pub max_connections: Option<u32>,
    /// `max.connections.per.ip`: connections one address may hold; a further one is closed
    /// at once. `None`: no limit of its own.
    pub max_connections_per_ip: Option<u32>,
    /// `connections.max.idle.ms`: a connection with no request for this long is closed.
    pub connections_max_idle_ms: u64,
    /// The most partitions this broker holds (KIP-578's `max.broker.partitions`); creating
    /// more fails with POLICY_VIOLATION before anything is written.
    pub max_broker_partitions: u32,
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
            max_connections: None,
            max_connections_per_ip: None,
            connections_max_idle_ms: 600_000,
            max_broker_partitions: 100_000,
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
type Bounds = std::ops::RangeInclusive<i128>;

const INT_MAX: i128 = i32::MAX as i128;
const LONG_MAX: i128 = i64::MAX as i128;

impl BrokerConfig {
    /// Checks every value before anything starts, so that none is clamped or misread later.
    pub fn validate(&self) -> Result<(), ConfigError> {
        for (name, value, bounds) in self.numeric_settings() {
            if !bounds.contains(&value) {
                return Err(ConfigError::Invalid {
                    name,
                    reason: format!("{value} is out of range: {}", describe_bounds(&bounds)),
                });
            }
        }
        if let Some(http) = self.http_listen
            && listeners_collide(self.listen, http)
        {
            return Err(ConfigError::Invalid {
                name: "http-listen",
                reason: format!(
                    "{http} overlaps the Kafka listener (listen {}): the HTTP and Kafka listeners need different ports",
                    self.listen
                ),
            });
        }
        self.check_advertised()
    }

    /// Every numeric setting with its value and the values it accepts.
    fn numeric_settings(&self) -> Vec<(&'static str, i128, Bounds)> {
        let optional = |name, value: Option<u32>, bounds| value.map(|v| (name, v.into(), bounds));
        let mut settings = vec![
            ("node-id", self.node_id.into(), 0..=INT_MAX),
            (
                "default-partitions",
                self.default_partitions.into(),
                1..=INT_MAX,
            ),
            (
                "log-retention-ms",
                self.log_retention_ms.into(),
                -1..=LONG_MAX,
            ),
            (
                "log-segment-bytes",
                self.log_segment_bytes.into(),
                14..=INT_MAX,
            ),
            ("log-segment-ms", self.log_segment_ms.into(), 1..=LONG_MAX),
            (
                "log-retention-check-interval-ms",
                self.log_retention_check_interval_ms.into(),
                1..=LONG_MAX,
            ),
            (
                "message-max-bytes",
                self.message_max_bytes.into(),
                0..=INT_MAX,
            ),
            (
                "max-request-bytes",
                i128::try_from(self.max_request_bytes).unwrap_or(i128::MAX),
                1024..=INT_MAX,
            ),
            (
                "group-initial-rebalance-delay-ms",
                self.group_initial_rebalance_delay_ms.into(),
                0..=INT_MAX,
            ),
            (
                "offsets-retention-minutes",
                self.offsets_retention_minutes.into(),
                1..=INT_MAX,
            ),
            (
                "offsets-topic-partitions",
                self.offsets_topic_partitions.into(),
                1..=INT_MAX,
            ),
            (
                "transaction-state-partitions",
                self.transaction_state_partitions.into(),
                1..=INT_MAX,
            ),
            (
                "transaction-max-timeout-ms",
                self.transaction_max_timeout_ms.into(),
                1..=INT_MAX,
            ),
            (
                "producer-id-expiration-ms",
                self.producer_id_expiration_ms.into(),
                1..=INT_MAX,
            ),
            (
                "transactional-id-expiration-ms",
                self.transactional_id_expiration_ms.into(),
                1..=INT_MAX,
            ),
            (
                "fetch-max-bytes",
                self.fetch_max_bytes.into(),
                1024..=INT_MAX,
            ),
            (
                "connections-max-idle-ms",
                self.connections_max_idle_ms.into(),
                1..=LONG_MAX,
            ),
            (
                "max-broker-partitions",
                self.max_broker_partitions.into(),
                1..=INT_MAX,
            ),
        ];
        settings.extend(optional(
            "max-connections",
            self.max_connections,
            1..=INT_MAX,
        ));
        settings.extend(optional(
            "max-connections-per-ip",
            self.max_connections_per_ip,
            1..=INT_MAX,
        ));
        settings
    }

    /// The advertised address must be one a client can connect to: `advertise` well formed,
    /// or, without it, a listen address other than the meta-address (port 0 there is fine:
    /// the bound port is advertised).
    fn check_advertised(&self) -> Result<(), ConfigError> {
        match &self.advertise {
            Some(adv) => parse_advertised(adv)
                .map(|_| ())
                .map_err(|reason| ConfigError::Invalid {
                    name: "advertise",
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

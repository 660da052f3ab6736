//! Topic configuration: Kafka's names, types, defaults and validation.
//!
//! A topic stores only the configs that were set for it (overrides). Every
//! other value comes from the broker (`log.retention.ms` → `retention.ms`) or
//! from Kafka's built-in default, and DescribeConfigs reports which, exactly as
//! Kafka does, so tools that diff configs see what they expect.

use std::collections::BTreeMap;

use sluice_protocol::batch::Compression;
use sluice_storage::LogConfig;

use crate::config::{BrokerConfig, setting_by_kafka_name};

/// Kafka's config value types as DescribeConfigs v3+ reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigType {
    /// `true` / `false`.
    Boolean = 1,
    /// Free text, possibly restricted to a set of choices.
    String = 2,
    /// A 32-bit integer.
    Int = 3,
    /// A 64-bit integer.
    Long = 5,
    /// A floating point number.
    Double = 6,
    /// A comma-separated list.
    List = 7,
}

/// Kafka's ConfigSource codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigSource {
    /// Set on the topic.
    DynamicTopic = 1,
    /// Set on this broker at runtime.
    DynamicBroker = 2,
    /// Set in the broker's startup configuration.
    StaticBroker = 4,
    /// Kafka's built-in default.
    Default = 5,
}

/// One topic-level config Kafka defines.
#[derive(Debug)]
pub struct TopicConfigDef {
    /// The topic-level name, e.g. `retention.ms`.
    pub name: &'static str,
    /// The broker-level setting it defaults to, e.g. `log.retention.ms`.
    pub broker_synonym: Option<&'static str>,
    /// Its value type.
    pub kind: ConfigType,
    /// Kafka's built-in default.
    pub default: &'static str,
    /// Accepted values for enumerated strings and lists.
    pub choices: &'static [&'static str],
    /// Smallest accepted number, for numeric configs.
    pub min: Option<i64>,
}

macro_rules! def {
    ($name:literal, $syn:expr, $kind:ident, $default:literal) => {
        def!($name, $syn, $kind, $default, &[], None)
    };
    ($name:literal, $syn:expr, $kind:ident, $default:literal, min $min:literal) => {
        def!($name, $syn, $kind, $default, &[], Some($min))
    };
    ($name:literal, $syn:expr, $kind:ident, $default:literal, $choices:expr, $min:expr) => {
        TopicConfigDef {
            name: $name,
            broker_synonym: $syn,
            kind: ConfigType::$kind,
            default: $default,
            choices: $choices,
            min: $min,
        }
    };
}

/// Every topic config Kafka 3.x/4.x defines, sorted by name as Kafka lists them.
pub static TOPIC_CONFIGS: &[TopicConfigDef] = &[
    def!(
        "cleanup.policy",
        Some("log.cleanup.policy"),
        List,
        "delete",
        &["delete", "compact"],
        None
    ),
    def!(
        "compression.type",
        Some("compression.type"),
        String,
        "producer",
        &["uncompressed", "zstd", "lz4", "snappy", "gzip", "producer"],
        None
    ),
    def!("delete.retention.ms", Some("log.cleaner.delete.retention.ms"), Long, "86400000", min 0),
    def!("file.delete.delay.ms", Some("log.segment.delete.delay.ms"), Long, "60000", min 0),
    def!("flush.messages", Some("log.flush.interval.messages"), Long, "9223372036854775807", min 1),
    def!("flush.ms", Some("log.flush.interval.ms"), Long, "9223372036854775807", min 0),
    def!("follower.replication.throttled.replicas", None, List, ""),
    def!("index.interval.bytes", Some("log.index.interval.bytes"), Int, "4096", min 0),
    def!("leader.replication.throttled.replicas", None, List, ""),
    def!(
        "local.retention.bytes",
        Some("log.local.retention.bytes"),
        Long,
        "-2",
        min - 2
    ),
    def!(
        "local.retention.ms",
        Some("log.local.retention.ms"),
        Long,
        "-2",
        min - 2
    ),
    def!("max.compaction.lag.ms", Some("log.cleaner.max.compaction.lag.ms"), Long, "9223372036854775807", min 1),
    def!("max.message.bytes", Some("message.max.bytes"), Int, "1048588", min 0),
    // Deprecated since Kafka 3.0 and ignored there (message format v2 always),
    // but still accepted by Kafka 3.x, so clients that set them keep working.
    def!(
        "message.downconversion.enable",
        Some("log.message.downconversion.enable"),
        Boolean,
        "true"
    ),
    def!(
        "message.format.version",
        Some("log.message.format.version"),
        String,
        "3.0-IV1"
    ),
    // Kafka 4.0's default (KIP-1030): records more than an hour ahead of the broker's clock
    // are refused; 3.x accepted any.
    def!("message.timestamp.after.max.ms", Some("log.message.timestamp.after.max.ms"), Long, "3600000", min 0),
    def!("message.timestamp.before.max.ms", Some("log.message.timestamp.before.max.ms"), Long, "9223372036854775807", min 0),
    def!("message.timestamp.difference.max.ms", Some("log.message.timestamp.difference.max.ms"), Long, "9223372036854775807", min 0),
    def!(
        "message.timestamp.type",
        Some("log.message.timestamp.type"),
        String,
        "CreateTime",
        &["CreateTime", "LogAppendTime"],
        None
    ),
    def!(
        "min.cleanable.dirty.ratio",
        Some("log.cleaner.min.cleanable.ratio"),
        Double,
        "0.5"
    ),
    def!("min.compaction.lag.ms", Some("log.cleaner.min.compaction.lag.ms"), Long, "0", min 0),
    def!("min.insync.replicas", Some("min.insync.replicas"), Int, "1", min 1),
    def!("preallocate", Some("log.preallocate"), Boolean, "false"),
    def!("remote.storage.enable", None, Boolean, "false"),
    def!("retention.bytes", Some("log.retention.bytes"), Long, "-1"),
    def!(
        "retention.ms",
        Some("log.retention.ms"),
        Long,
        "604800000",
        min - 1
    ),
    def!("segment.bytes", Some("log.segment.bytes"), Int, "1073741824", min 14),
    def!("segment.index.bytes", Some("log.index.size.max.bytes"), Int, "10485760", min 4),
    def!("segment.jitter.ms", Some("log.roll.jitter.ms"), Long, "0", min 0),
    def!("segment.ms", Some("log.roll.ms"), Long, "604800000", min 1),
    def!(
        "unclean.leader.election.enable",
        Some("unclean.leader.election.enable"),
        Boolean,
        "false"
    ),
];

/// Looks up a topic config definition by name.
pub fn topic_config_def(name: &str) -> Option<&'static TopicConfigDef> {
    TOPIC_CONFIGS.iter().find(|d| d.name == name)
}

/// Why a config name or value was refused (→ INVALID_CONFIG).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigValueError {
    /// Kafka defines no such topic config.
    #[error("Unknown topic config name: {0}")]
    UnknownName(String),
    /// The value does not parse or is out of range.
    #[error("Invalid value {value} for configuration {name}: {reason}")]
    InvalidValue {
        /// Config name.
        name: String,
        /// The rejected value.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
    /// `remote.storage.enable=true`: Sluice has no tiered storage (Kafka's message for a
    /// broker without it).
    #[error(
        "Tiered Storage functionality is disabled in the broker. Topic cannot be configured with remote log storage."
    )]
    TieredStorageUnavailable,
}

/// Checks one `name=value` against Kafka's definition.
pub fn validate_topic_config(name: &str, value: &str) -> Result<(), ConfigValueError> {
    let def = topic_config_def(name).ok_or_else(|| ConfigValueError::UnknownName(name.into()))?;
    let bad = |reason: String| ConfigValueError::InvalidValue {
        name: name.into(),
        value: value.into(),
        reason,
    };
    match def.kind {
        ConfigType::Boolean => {
            let enabled = value.eq_ignore_ascii_case("true");
            if !enabled && !value.eq_ignore_ascii_case("false") {
                return Err(bad("Expected value to be either true or false".into()));
            }
            if enabled && name == "remote.storage.enable" {
                return Err(ConfigValueError::TieredStorageUnavailable);
            }
        }
        ConfigType::Int | ConfigType::Long => {
            let n: i64 = value
                .trim()
                .parse()
                .map_err(|_| bad("Not a number".into()))?;
            if def.kind == ConfigType::Int && i32::try_from(n).is_err() {
                return Err(bad("Not a 32-bit number".into()));
            }
            if let Some(min) = def.min
                && n < min
            {
                return Err(bad(format!("Value must be at least {min}")));
            }
        }
        ConfigType::Double => {
            let d: f64 = value
                .trim()
                .parse()
                .map_err(|_| bad("Not a number".into()))?;
            if !(0.0..=1.0).contains(&d) {
                return Err(bad("Value must be between 0 and 1".into()));
            }
        }
        ConfigType::String => {
            if !def.choices.is_empty() && !def.choices.contains(&value) {
                return Err(bad(format!(
                    "String must be one of: {}",
                    def.choices.join(", ")
                )));
            }
        }
        ConfigType::List => {
            if !def.choices.is_empty() {
                for item in value.split(',').map(str::trim) {
                    if !def.choices.contains(&item) {
                        return Err(bad(format!(
                            "List items must be among: {}",
                            def.choices.join(", ")
                        )));
                    }
                }
            }
        }
    }
    Ok(())
}

/// The broker-level value that a topic config defaults to, when the broker
/// was started with a non-default value for it.
fn broker_static_value(def: &TopicConfigDef, broker: &BrokerConfig) -> Option<String> {
    let setting = def.broker_synonym.and_then(setting_by_kafka_name)?;
    let ours = setting.value(broker)?;
    (setting.value(BrokerConfig::defaults()).as_ref() != Some(&ours)).then_some(ours)
}

/// A config value as DescribeConfigs reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedConfig {
    /// The config name.
    pub name: &'static str,
    /// The effective value.
    pub value: String,
    /// Where the effective value comes from.
    pub source: ConfigSource,
    /// Its type.
    pub kind: ConfigType,
    /// Lower-priority values it overrides, highest first (DescribeConfigs synonyms).
    pub synonyms: Vec<(String, String, ConfigSource)>,
}

/// Resolves every topic config for a topic with the given overrides.
pub fn resolve_topic_configs(
    overrides: &BTreeMap<String, String>,
    broker: &BrokerConfig,
    dynamic_broker: &BTreeMap<String, String>,
) -> Vec<ResolvedConfig> {
    TOPIC_CONFIGS
        .iter()
        .map(|def| {
            let mut layers: Vec<(String, String, ConfigSource)> = Vec::new();
            if let Some(v) = overrides.get(def.name) {
                layers.push((def.name.to_string(), v.clone(), ConfigSource::DynamicTopic));
            }
            if let Some(syn) = def.broker_synonym {
                if let Some(v) = dynamic_broker.get(syn) {
                    layers.push((syn.to_string(), v.clone(), ConfigSource::DynamicBroker));
                }
                if let Some(v) = broker_static_value(def, broker) {
                    layers.push((syn.to_string(), v, ConfigSource::StaticBroker));
                }
                layers.push((
                    syn.to_string(),
                    def.default.to_string(),
                    ConfigSource::Default,
                ));
            } else {
                layers.push((
                    def.name.to_string(),
                    def.default.to_string(),
                    ConfigSource::Default,
                ));
            }
            let (value, source) = layers
                .first()
                .map(|(_, v, s)| (v.clone(), *s))
                .unwrap_or_else(|| (def.default.to_string(), ConfigSource::Default));
            ResolvedConfig {
                name: def.name,
                value,
                source,
                kind: def.kind,
                synonyms: layers,
            }
        })
        .collect()
}

/// The value of one topic config set for the topic or on the broker, None when it has
/// Kafka's default.
fn configured_value(
    def: &TopicConfigDef,
    overrides: &BTreeMap<String, String>,
    broker: &BrokerConfig,
    dynamic_broker: &BTreeMap<String, String>,
) -> Option<String> {
    if let Some(v) = overrides.get(def.name) {
        return Some(v.clone());
    }
    if let Some(v) = def.broker_synonym.and_then(|s| dynamic_broker.get(s)) {
        return Some(v.clone());
    }
    broker_static_value(def, broker)
}

/// The effective value of one topic config.
pub fn effective_value(
    name: &str,
    overrides: &BTreeMap<String, String>,
    broker: &BrokerConfig,
    dynamic_broker: &BTreeMap<String, String>,
) -> Option<String> {
    let def = topic_config_def(name)?;
    Some(
        configured_value(def, overrides, broker, dynamic_broker)
            .unwrap_or_else(|| def.default.to_string()),
    )
}

/// How far a CreateTime record's timestamp may be behind and ahead of the broker's clock
/// (`message.timestamp.before.max.ms`, `message.timestamp.after.max.ms`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimestampBounds {
    /// The most a timestamp may be in the past, in ms.
    pub before_max_ms: i64,
    /// The most a timestamp may be in the future, in ms.
    pub after_max_ms: i64,
}

impl TimestampBounds {
    fn resolve(
        overrides: &BTreeMap<String, String>,
        broker: &BrokerConfig,
        dynamic_broker: &BTreeMap<String, String>,
    ) -> Self {
        let configured = |name: &str| {
            topic_config_def(name)
                .and_then(|def| configured_value(def, overrides, broker, dynamic_broker))
                .and_then(|v| v.trim().parse::<i64>().ok())
        };
        let difference = configured("message.timestamp.difference.max.ms").unwrap_or(i64::MAX);
        let bound = |name: &str| {
            let default = topic_config_def(name)
                .and_then(|def| def.default.parse().ok())
                .unwrap_or(i64::MAX);
            Self::bound(configured(name), default, difference)
        };
        Self {
            before_max_ms: bound("message.timestamp.before.max.ms"),
            after_max_ms: bound("message.timestamp.after.max.ms"),
        }
    }

    /// One bound: its own value when set (other than Long.MAX), else the deprecated
    /// `message.timestamp.difference.max.ms` when that is set (Kafka 3.6+ falls back to it
    /// for a bound left at Long.MAX), else the bound's default.
    fn bound(configured: Option<i64>, default: i64, difference: i64) -> i64 {
        match configured {
            Some(value) if value != i64::MAX => value,
            Some(_) => difference,
            None if difference != i64::MAX => difference,
            None => default,
        }
    }

    /// Whether Kafka's LogValidator refuses a record with this timestamp at `now_ms`
    /// (NO_TIMESTAMP, -1, is never refused). Java's wrapping arithmetic, for the same answer
    /// at the extremes.
    pub fn refuses(&self, timestamp: i64, now_ms: i64) -> bool {
        let behind = now_ms.wrapping_sub(timestamp);
        timestamp != -1
            && (behind > self.before_max_ms || behind.wrapping_neg() > self.after_max_ms)
    }

    /// The accepted range at `now_ms`, as Kafka's error message gives it.
    pub fn range_at(&self, now_ms: i64) -> (i64, i64) {
        (
            now_ms.wrapping_sub(self.before_max_ms),
            now_ms.wrapping_add(self.after_max_ms),
        )
    }
}

/// Whether appends stamp the broker's clock (`message.timestamp.type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimestampType {
    /// Keep the producer's timestamps.
    CreateTime,
    /// Overwrite with the time of append.
    LogAppendTime,
}

/// The settings the produce and storage paths act on, parsed once per change.
#[derive(Debug, Clone, PartialEq)]
pub struct TopicSettings {
    /// Segment and retention settings for the partition logs.
    pub log: LogConfig,
    /// `max.message.bytes`.
    pub max_message_bytes: usize,
    /// `message.timestamp.type`.
    pub timestamp_type: TimestampType,
    /// Bounds of CreateTime timestamps (not checked for LogAppendTime topics).
    pub timestamp_bounds: TimestampBounds,
    /// `cleanup.policy` contains `compact`.
    pub compacted: bool,
    /// `cleanup.policy` contains `delete`.
    pub deletes: bool,
    /// `compression.type`: the codec batches are stored with, or None for `producer`
    /// (stored as the producer compressed them).
    pub compression: Option<Compression>,
    /// `min.insync.replicas`: in-sync replicas an acks=all write needs.
    pub min_insync_replicas: usize,
    /// `unclean.leader.election.enable`: with no in-sync replica left to lead, a replica
    /// out of the ISR may (losing what it lacks) rather than the partition staying offline.
    pub unclean_leader_election: bool,
}

impl TopicSettings {
    /// Parses the effective configs of a topic.
    pub fn resolve(
        overrides: &BTreeMap<String, String>,
        broker: &BrokerConfig,
        dynamic_broker: &BTreeMap<String, String>,
    ) -> Self {
        let get = |name: &str| {
            effective_value(name, overrides, broker, dynamic_broker).unwrap_or_default()
        };
        let long = |name: &str, fallback: i64| get(name).trim().parse::<i64>().unwrap_or(fallback);
        let policy = get("cleanup.policy");
        let deletes = policy.split(',').any(|p| p.trim() == "delete");
        let compacted = policy.split(',').any(|p| p.trim() == "compact");
        let retention_ms = long("retention.ms", crate::config::SEVEN_DAYS_MS);
        let retention_bytes = long("retention.bytes", -1);
        let defaults = LogConfig::default();
        let log = LogConfig {
            segment_bytes: u64::try_from(long("segment.bytes", 1 << 30)).unwrap_or(1 << 30),
            segment_ms: Some(long("segment.ms", crate::config::SEVEN_DAYS_MS)),
            retention_ms: (deletes && retention_ms >= 0).then_some(retention_ms),
            retention_bytes: if deletes {
                u64::try_from(retention_bytes).ok()
            } else {
                None
            },
            index_interval_bytes: u32::try_from(long("index.interval.bytes", 4096)).unwrap_or(4096),
            max_index_bytes: u64::try_from(long("segment.index.bytes", 10 << 20))
                .unwrap_or(defaults.max_index_bytes),
            producer_id_expiration_ms: broker.producer_id_expiration_ms,
        };
        Self {
            log,
            max_message_bytes: usize::try_from(long("max.message.bytes", 1_048_588))
                .unwrap_or(1_048_588),
            timestamp_type: if get("message.timestamp.type") == "LogAppendTime" {
                TimestampType::LogAppendTime
            } else {
                TimestampType::CreateTime
            },
            timestamp_bounds: TimestampBounds::resolve(overrides, broker, dynamic_broker),
            compacted,
            deletes,
            compression: stored_compression(&get("compression.type")),
            min_insync_replicas: usize::try_from(long("min.insync.replicas", 1).max(1))
                .unwrap_or(1),
            unclean_leader_election: get("unclean.leader.election.enable").trim() == "true",
        }
    }
}

/// The codec a `compression.type` value stores batches with; None for `producer` (and for
/// values validation would have refused).
fn stored_compression(value: &str) -> Option<Compression> {
    match value {
        "uncompressed" => Some(Compression::None),
        "gzip" => Some(Compression::Gzip),
        "snappy" => Some(Compression::Snappy),
        "lz4" => Some(Compression::Lz4),
        "zstd" => Some(Compression::Zstd),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_sorted_and_defaults_validate() {
        let names: Vec<_> = TOPIC_CONFIGS.iter().map(|d| d.name).collect();
        let mut sorted = names.clone();
        sorted.sort_unstable();
        assert_eq!(names, sorted);
        for def in TOPIC_CONFIGS {
            assert_eq!(
                validate_topic_config(def.name, def.default),
                Ok(()),
                "{}",
                def.name
            );
        }
    }

    #[test]
    fn validation_matches_kafka() {
        assert!(matches!(
            validate_topic_config("retention.mss", "1"),
            Err(ConfigValueError::UnknownName(_))
        ));
        assert!(validate_topic_config("retention.ms", "abc").is_err());
        assert!(validate_topic_config("retention.ms", "-2").is_err());
        assert!(validate_topic_config("cleanup.policy", "compact,delete").is_ok());
        assert!(validate_topic_config("cleanup.policy", "forever").is_err());
        assert!(validate_topic_config("message.timestamp.type", "LogAppendTime").is_ok());
        assert!(validate_topic_config("segment.bytes", "10").is_err());
        assert!(validate_topic_config("segment.bytes", "99999999999").is_err());
        assert_eq!(
            validate_topic_config("remote.storage.enable", "false"),
            Ok(())
        );
        for enabled in ["true", "TRUE"] {
            assert_eq!(
                validate_topic_config("remote.storage.enable", enabled),
                Err(ConfigValueError::TieredStorageUnavailable)
            );
        }
    }

    #[test]
    fn sources_follow_kafka_precedence() {
        let mut broker = BrokerConfig::default();
        let none = BTreeMap::new();
        let resolved = resolve_topic_configs(&none, &broker, &none);
        let ret = resolved.iter().find(|c| c.name == "retention.ms").unwrap();
        assert_eq!(
            (ret.value.as_str(), ret.source),
            ("604800000", ConfigSource::Default)
        );

        broker.log_retention_ms = 1000;
        let resolved = resolve_topic_configs(&none, &broker, &none);
        let ret = resolved.iter().find(|c| c.name == "retention.ms").unwrap();
        assert_eq!(
            (ret.value.as_str(), ret.source),
            ("1000", ConfigSource::StaticBroker)
        );

        let overrides = BTreeMap::from([("retention.ms".to_string(), "5".to_string())]);
        let resolved = resolve_topic_configs(&overrides, &broker, &none);
        let ret = resolved.iter().find(|c| c.name == "retention.ms").unwrap();
        assert_eq!(
            (ret.value.as_str(), ret.source),
            ("5", ConfigSource::DynamicTopic)
        );
        assert_eq!(ret.synonyms.len(), 3);

        let settings = TopicSettings::resolve(&overrides, &broker, &none);
        assert_eq!(settings.log.retention_ms, Some(5));
    }

    fn bounds(topic: &[(&str, &str)], dynamic_broker: &[(&str, &str)]) -> (i64, i64) {
        let map = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let b = TopicSettings::resolve(&map(topic), &BrokerConfig::default(), &map(dynamic_broker))
            .timestamp_bounds;
        (b.before_max_ms, b.after_max_ms)
    }

    #[test]
    fn timestamp_bounds_follow_kafka() {
        const MAX: i64 = i64::MAX;
        // Kafka 4.0's defaults: any past timestamp, at most an hour ahead.
        assert_eq!(bounds(&[], &[]), (MAX, 3_600_000));
        assert_eq!(
            bounds(&[("message.timestamp.before.max.ms", "10")], &[]),
            (10, 3_600_000)
        );
        // The broker-level synonyms apply to every topic; the topic's own value wins.
        let broker = [
            ("log.message.timestamp.before.max.ms", "20"),
            ("log.message.timestamp.after.max.ms", "30"),
        ];
        assert_eq!(bounds(&[], &broker), (20, 30));
        assert_eq!(
            bounds(&[("message.timestamp.after.max.ms", "40")], &broker),
            (20, 40)
        );
        // The deprecated difference stands in for a bound unset or left at Long.MAX.
        let difference = ("message.timestamp.difference.max.ms", "50");
        assert_eq!(bounds(&[difference], &[]), (50, 50));
        assert_eq!(
            bounds(&[difference, ("message.timestamp.after.max.ms", "60")], &[]),
            (50, 60)
        );
        assert_eq!(
            bounds(
                &[
                    difference,
                    ("message.timestamp.before.max.ms", "9223372036854775807")
                ],
                &[]
            ),
            (50, 50)
        );
        assert_eq!(
            bounds(
                &[("message.timestamp.after.max.ms", "9223372036854775807")],
                &[]
            ),
            (MAX, MAX)
        );
    }

    #[test]
    fn timestamp_bounds_refuse_as_kafka_does() {
        let b = TimestampBounds {
            before_max_ms: 1_000,
            after_max_ms: 500,
        };
        let now = 10_000;
        assert!(!b.refuses(9_000, now) && !b.refuses(10_500, now));
        assert!(b.refuses(8_999, now) && b.refuses(10_501, now));
        assert!(!b.refuses(-1, now), "NO_TIMESTAMP is never checked");
        assert!(b.refuses(-2, now));
        assert_eq!(b.range_at(now), (9_000, 10_500));
        let open = TimestampBounds {
            before_max_ms: i64::MAX,
            after_max_ms: i64::MAX,
        };
        assert!(!open.refuses(0, now) && !open.refuses(i64::MAX, now));
        // Java's overflow: now + Long.MAX wraps, as in Kafka's message.
        assert_eq!(open.range_at(now), (now - i64::MAX, i64::MIN + now - 1));
    }
}

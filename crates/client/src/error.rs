//! Typed client errors. Kafka error codes keep their Kafka names
//! (`UNKNOWN_TOPIC_OR_PARTITION`), so a message can be looked up in Kafka's docs.

use std::fmt;
use std::time::Duration;

use kafka_protocol::ResponseError;

/// A Kafka error code from a response, displayed by its Kafka name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KafkaCode(pub i16);

impl KafkaCode {
    /// `None` for code 0 (no error).
    pub fn from_code(code: i16) -> Option<Self> {
        (code != 0).then_some(Self(code))
    }

    /// Kafka's name of the code (`UNKNOWN_TOPIC_OR_PARTITION`), or `UNKNOWN_CODE_<n>`.
    pub fn name(self) -> String {
        match ResponseError::try_from_code(self.0) {
            None => "NONE".to_string(),
            Some(ResponseError::Unknown(code)) => format!("UNKNOWN_CODE_{code}"),
            Some(e) => screaming_snake(&format!("{e:?}")),
        }
    }

    /// Whether Kafka marks the error as retriable.
    pub fn is_retriable(self) -> bool {
        ResponseError::try_from_code(self.0).is_some_and(|e| e.is_retriable())
    }

    pub const UNKNOWN_TOPIC_OR_PARTITION: KafkaCode = KafkaCode(3);
    pub const LEADER_NOT_AVAILABLE: KafkaCode = KafkaCode(5);
    pub const NOT_LEADER_OR_FOLLOWER: KafkaCode = KafkaCode(6);
    pub const COORDINATOR_LOAD_IN_PROGRESS: KafkaCode = KafkaCode(14);
    pub const COORDINATOR_NOT_AVAILABLE: KafkaCode = KafkaCode(15);
    pub const NOT_COORDINATOR: KafkaCode = KafkaCode(16);
    pub const UNSUPPORTED_VERSION: KafkaCode = KafkaCode(35);
    pub const GROUP_ID_NOT_FOUND: KafkaCode = KafkaCode(69);
}

impl fmt::Display for KafkaCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

fn screaming_snake(camel: &str) -> String {
    let mut out = String::with_capacity(camel.len() + 8);
    for (i, c) in camel.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

/// Everything that can go wrong talking to a broker.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No bootstrap address accepted a connection.
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    /// A broker's address from metadata (or FindCoordinator) does not accept connections.
    #[error(
        "broker {node_id} advertises {addr} (learned from Metadata), which cannot be reached: {source}; check that broker's advertised address (advertised.listeners; --advertise for Sluice)"
    )]
    Unreachable {
        node_id: i32,
        addr: String,
        #[source]
        source: std::io::Error,
    },
    /// The first reply on a connection was not a Kafka response.
    #[error(
        "{addr} does not speak the Kafka protocol: {reply}; check that --brokers names a Kafka listener"
    )]
    NotKafka { addr: String, reply: String },
    /// The TLS handshake failed.
    #[error(
        "TLS with {addr} failed: {reason}; check --ssl-ca-file (and the broker's certificate names this host) and that the port is a TLS listener"
    )]
    Tls { addr: String, reason: String },
    /// SASL authentication failed.
    #[error("authentication with {addr} failed: {reason}")]
    Authentication { addr: String, reason: String },
    /// An established connection failed.
    #[error("connection to {addr} failed: {source}")]
    Io {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    /// The broker did not answer in time.
    #[error("{what} to {addr} timed out after {after:?}")]
    Timeout {
        addr: String,
        what: String,
        after: Duration,
    },
    /// The broker answered with a Kafka error code.
    #[error("{api} {resource}: {code}{}", message.as_deref().map(|m| format!(" ({m})")).unwrap_or_default())]
    Kafka {
        api: &'static str,
        resource: String,
        code: KafkaCode,
        message: Option<String>,
    },
    /// The topic does not exist.
    #[error("unknown topic '{0}'")]
    UnknownTopic(String),
    /// The partition does not exist.
    #[error("topic '{topic}' has no partition {partition}")]
    UnknownPartition { topic: String, partition: i32 },
    /// No version of an API is supported by both sides.
    #[error("broker {addr} does not support {api} in a version this client speaks")]
    Unsupported { addr: String, api: String },
    /// The broker sent something we cannot decode or that breaks the protocol.
    #[error("protocol error from {addr}: {reason}")]
    Protocol { addr: String, reason: String },
    /// The caller asked for something impossible.
    #[error("{0}")]
    Invalid(String),
}

impl Error {
    /// The Kafka error code, when this error carries one.
    pub fn kafka_code(&self) -> Option<KafkaCode> {
        match self {
            Error::Kafka { code, .. } => Some(*code),
            _ => None,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// `Err(Error::Kafka)` for a non-zero code.
pub(crate) fn check(
    api: &'static str,
    resource: impl FnOnce() -> String,
    code: i16,
    message: Option<&str>,
) -> Result<()> {
    match KafkaCode::from_code(code) {
        None => Ok(()),
        Some(code) => Err(Error::Kafka {
            api,
            resource: resource(),
            code,
            message: message.filter(|m| !m.is_empty()).map(str::to_string),
        }),
    }
}

/// The entry of a response's per-resource list that `is_about` the resource the request
/// named (`what`, e.g. "'orders'"), or a protocol error when the broker `addr` left it out.
pub(crate) fn entry_about<'r, T>(
    api: &str,
    addr: &str,
    what: &str,
    entries: &'r [T],
    is_about: impl Fn(&T) -> bool,
) -> Result<&'r T> {
    entries
        .iter()
        .find(|e| is_about(e))
        .ok_or_else(|| Error::Protocol {
            addr: addr.to_string(),
            reason: format!("{api} response does not mention {what}"),
        })
}

/// A topic's result code: an unknown topic as [`Error::UnknownTopic`], any other error as
/// [`Error::Kafka`] of `api`.
pub(crate) fn check_topic(
    api: &'static str,
    name: &str,
    code: i16,
    message: Option<&str>,
) -> Result<()> {
    if code == KafkaCode::UNKNOWN_TOPIC_OR_PARTITION.0 {
        return Err(Error::UnknownTopic(name.to_string()));
    }
    check(api, || format!("topic '{name}'"), code, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_kafka_names() {
        assert_eq!(KafkaCode(3).name(), "UNKNOWN_TOPIC_OR_PARTITION");
        assert_eq!(KafkaCode(36).name(), "TOPIC_ALREADY_EXISTS");
        assert_eq!(KafkaCode(-1).name(), "UNKNOWN_SERVER_ERROR");
        assert_eq!(KafkaCode(9999).name(), "UNKNOWN_CODE_9999");
    }
}

//! Listeners in Kafka's format: `listeners=NAME://host:port,...`, `advertised.listeners` in
//! the same form, and `listener.security.protocol.map=NAME:PROTOCOL,...` for names that are
//! not protocols themselves (KIP-103).

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

/// How a listener's connections are secured: Kafka's `SecurityProtocol`, with its names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SecurityProtocol {
    /// No encryption, no authentication.
    Plaintext,
    /// TLS; a client certificate may name the principal.
    Ssl,
    /// SASL authentication without encryption.
    SaslPlaintext,
    /// SASL authentication over TLS.
    SaslSsl,
}

impl SecurityProtocol {
    /// Every protocol, in Kafka's order.
    pub const ALL: [SecurityProtocol; 4] = [
        SecurityProtocol::Plaintext,
        SecurityProtocol::Ssl,
        SecurityProtocol::SaslPlaintext,
        SecurityProtocol::SaslSsl,
    ];

    /// Kafka's name: `PLAINTEXT`, `SSL`, `SASL_PLAINTEXT`, `SASL_SSL`.
    pub fn name(self) -> &'static str {
        match self {
            SecurityProtocol::Plaintext => "PLAINTEXT",
            SecurityProtocol::Ssl => "SSL",
            SecurityProtocol::SaslPlaintext => "SASL_PLAINTEXT",
            SecurityProtocol::SaslSsl => "SASL_SSL",
        }
    }

    /// The protocol with Kafka's name `name`, in any case (as Kafka's `forName`).
    pub fn for_name(name: &str) -> Option<SecurityProtocol> {
        Self::ALL
            .into_iter()
            .find(|p| p.name().eq_ignore_ascii_case(name))
    }

    /// Whether clients must authenticate with SASL before any other request.
    pub fn uses_sasl(self) -> bool {
        matches!(
            self,
            SecurityProtocol::SaslPlaintext | SecurityProtocol::SaslSsl
        )
    }

    /// Whether connections are wrapped in TLS.
    pub fn uses_tls(self) -> bool {
        matches!(self, SecurityProtocol::Ssl | SecurityProtocol::SaslSsl)
    }
}

impl fmt::Display for SecurityProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A listener's name, upper-cased as Kafka normalizes it (`ListenerName.normalised`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ListenerName(Arc<str>);

impl ListenerName {
    /// The listener called `name`.
    pub fn new(name: &str) -> Self {
        ListenerName(name.to_ascii_uppercase().into())
    }

    /// The listener Kafka names after its protocol when none is configured
    /// (`ListenerName.forSecurityProtocol`), e.g. `PLAINTEXT`.
    pub fn for_security_protocol(protocol: SecurityProtocol) -> Self {
        ListenerName(Arc::from(protocol.name()))
    }

    /// The listener nodes of the cluster talk to each other on (`--cluster-listen`).
    pub fn cluster() -> Self {
        ListenerName::new("CLUSTER")
    }

    /// Whether this is the node-to-node listener (requests on it come from peers).
    pub fn is_cluster(&self) -> bool {
        &*self.0 == "CLUSTER"
    }

    /// The name.
    pub fn value(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ListenerName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One listener to bind: its name, protocol and address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerSpec {
    /// Its name (`PLAINTEXT`, `SASL_SSL`, or a custom one from the protocol map).
    pub name: ListenerName,
    /// How its connections are secured.
    pub protocol: SecurityProtocol,
    /// Where it binds (an empty host in the configuration binds every address).
    pub address: SocketAddr,
}

impl fmt::Display for ListenerSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}", self.name, self.address)
    }
}

/// Why a listener configuration cannot work; each message says what to write instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ListenerError {
    /// An entry is not `NAME://host:port`.
    #[error("'{0}' is not NAME://host:port (e.g. SASL_SSL://127.0.0.1:9093)")]
    Malformed(String),
    /// A listener name that is neither a protocol nor in the protocol map.
    #[error(
        "listener {0} has no security protocol: name it after one (PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL) or map it with listener-security-protocol-map {0}:<PROTOCOL>"
    )]
    NoProtocol(String),
    /// A protocol map entry names an unknown protocol.
    #[error(
        "'{0}' in listener-security-protocol-map is not NAME:PROTOCOL with PROTOCOL one of PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL"
    )]
    BadMapEntry(String),
    /// Two listeners share a name.
    #[error("listener {0} is configured twice; listener names must be unique")]
    Duplicate(String),
    /// An advertised listener that is not also a listener.
    #[error("advertised listener {0} is not one of the listeners")]
    UnknownAdvertised(String),
    /// The host is not an IP address (listeners bind; names other than localhost are not
    /// resolved).
    #[error(
        "'{0}' is not an IP address to bind to (use an IP, localhost, or nothing for every address)"
    )]
    BadHost(String),
}

/// `listener.security.protocol.map`: each listener name's protocol. Without an entry, a
/// name that is a protocol maps to itself (Kafka's default map).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProtocolMap(BTreeMap<ListenerName, SecurityProtocol>);

impl ProtocolMap {
    /// Parses `NAME:PROTOCOL,NAME:PROTOCOL`.
    pub fn parse(text: &str) -> Result<Self, ListenerError> {
        let mut map = BTreeMap::new();
        for entry in entries(text) {
            let (name, protocol) = entry
                .split_once(':')
                .ok_or_else(|| ListenerError::BadMapEntry(entry.to_string()))?;
            let protocol = SecurityProtocol::for_name(protocol.trim())
                .ok_or_else(|| ListenerError::BadMapEntry(entry.to_string()))?;
            map.insert(ListenerName::new(name.trim()), protocol);
        }
        Ok(ProtocolMap(map))
    }

    /// The protocol of the listener `name`.
    pub fn protocol(&self, name: &ListenerName) -> Option<SecurityProtocol> {
        self.0
            .get(name)
            .copied()
            .or_else(|| SecurityProtocol::for_name(name.value()))
    }
}

/// The comma-separated, non-empty entries of a list.
fn entries(text: &str) -> impl Iterator<Item = &str> {
    text.split(',').map(str::trim).filter(|e| !e.is_empty())
}

/// Splits `NAME://host:port` into the name, host (brackets removed) and port.
pub fn split_listener(entry: &str) -> Result<(ListenerName, String, u16), ListenerError> {
    let malformed = || ListenerError::Malformed(entry.to_string());
    let (name, rest) = entry.split_once("://").ok_or_else(malformed)?;
    let (host, port) = rest.rsplit_once(':').ok_or_else(malformed)?;
    if name.is_empty() {
        return Err(malformed());
    }
    let port: u16 = port.parse().map_err(|_| malformed())?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    Ok((ListenerName::new(name), host.to_string(), port))
}

/// Parses `listeners` with `map` giving custom names their protocol.
pub fn parse_listeners(text: &str, map: &ProtocolMap) -> Result<Vec<ListenerSpec>, ListenerError> {
    let mut out: Vec<ListenerSpec> = Vec::new();
    for entry in entries(text) {
        let (name, host, port) = split_listener(entry)?;
        let protocol = map
            .protocol(&name)
            .ok_or_else(|| ListenerError::NoProtocol(name.to_string()))?;
        let ip = bind_ip(&host)?;
        if out.iter().any(|l| l.name == name) {
            return Err(ListenerError::Duplicate(name.to_string()));
        }
        out.push(ListenerSpec {
            name,
            protocol,
            address: SocketAddr::new(ip, port),
        });
    }
    if out.is_empty() {
        return Err(ListenerError::Malformed(text.to_string()));
    }
    Ok(out)
}

/// The address a listener host binds: an IP, `localhost`, or every IPv4 address when empty.
fn bind_ip(host: &str) -> Result<IpAddr, ListenerError> {
    match host {
        "" => Ok(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
        "localhost" => Ok(IpAddr::V4(Ipv4Addr::LOCALHOST)),
        _ => host
            .parse()
            .map_err(|_| ListenerError::BadHost(host.to_string())),
    }
}

/// Parses `advertised.listeners` into (name → `host`, `port`); every name must be one of
/// `listeners`.
pub fn parse_advertised_listeners(
    text: &str,
    listeners: &[ListenerSpec],
) -> Result<BTreeMap<ListenerName, (String, u16)>, ListenerError> {
    let mut out = BTreeMap::new();
    for entry in entries(text) {
        let (name, host, port) = split_listener(entry)?;
        if !listeners.iter().any(|l| l.name == name) {
            return Err(ListenerError::UnknownAdvertised(name.to_string()));
        }
        if host.is_empty() || port == 0 {
            return Err(ListenerError::Malformed(entry.to_string()));
        }
        if out.insert(name.clone(), (host, port)).is_some() {
            return Err(ListenerError::Duplicate(name.to_string()));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    #[test]
    fn names_follow_kafka() {
        assert_eq!(
            ListenerName::for_security_protocol(SecurityProtocol::SaslSsl).value(),
            "SASL_SSL"
        );
        assert_eq!(ListenerName::new("client").value(), "CLIENT");
        for protocol in SecurityProtocol::ALL {
            assert_eq!(
                SecurityProtocol::for_name(&protocol.name().to_lowercase()),
                Some(protocol)
            );
        }
        assert_eq!(SecurityProtocol::for_name("TLS"), None);
    }

    #[test]
    fn listeners_parse_with_the_default_and_custom_protocol_maps() {
        let map = ProtocolMap::parse("CLIENT:SASL_SSL, internal:ssl").unwrap();
        let listeners = parse_listeners(
            "PLAINTEXT://127.0.0.1:9092,client://:9093,INTERNAL://[::1]:9094,SASL_PLAINTEXT://localhost:0",
            &map,
        )
        .unwrap();
        let shown: Vec<(String, SecurityProtocol, String)> = listeners
            .iter()
            .map(|l| (l.name.to_string(), l.protocol, l.address.to_string()))
            .collect();
        assert_eq!(
            shown,
            [
                (
                    "PLAINTEXT".into(),
                    SecurityProtocol::Plaintext,
                    "127.0.0.1:9092".into()
                ),
                (
                    "CLIENT".into(),
                    SecurityProtocol::SaslSsl,
                    "0.0.0.0:9093".into()
                ),
                (
                    "INTERNAL".into(),
                    SecurityProtocol::Ssl,
                    "[::1]:9094".into()
                ),
                (
                    "SASL_PLAINTEXT".into(),
                    SecurityProtocol::SaslPlaintext,
                    "127.0.0.1:0".into()
                ),
            ]
        );
        let advertised =
            parse_advertised_listeners("CLIENT://broker.example.com:19093", &listeners).unwrap();
        assert_eq!(
            advertised.get(&ListenerName::new("client")),
            Some(&("broker.example.com".to_string(), 19093))
        );
    }

    #[test]
    fn bad_listener_lists_are_refused_with_a_fix() {
        let map = ProtocolMap::default();
        assert_eq!(
            parse_listeners("OTHER://127.0.0.1:1", &map),
            Err(ListenerError::NoProtocol("OTHER".into()))
        );
        assert_eq!(
            parse_listeners("PLAINTEXT://127.0.0.1:1,plaintext://127.0.0.1:2", &map),
            Err(ListenerError::Duplicate("PLAINTEXT".into()))
        );
        for bad in [
            "127.0.0.1:9092",
            "PLAINTEXT://127.0.0.1",
            "://1.2.3.4:5",
            "",
        ] {
            assert!(parse_listeners(bad, &map).is_err(), "{bad}");
        }
        assert_eq!(
            parse_listeners("SSL://broker:1", &map),
            Err(ListenerError::BadHost("broker".into()))
        );
        assert!(ProtocolMap::parse("X:TLS").is_err());
        let listeners = parse_listeners("SSL://127.0.0.1:1", &map).unwrap();
        assert_eq!(
            parse_advertised_listeners("SASL_SSL://h:1", &listeners),
            Err(ListenerError::UnknownAdvertised("SASL_SSL".into()))
        );
    }
}

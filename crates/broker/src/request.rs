//! What a handler knows of a request besides its body, and what it hands back.
//!
//! The context carries the request header and the identity of the connection it came in on,
//! shaped like Kafka's `RequestContext`: the listener, its security protocol and the
//! authenticated principal (from a client certificate or SASL; `User:ANONYMOUS` otherwise),
//! so a handler that authorizes reads them here and nowhere else.

use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};

use kafka_protocol::messages::{ApiKey, ResponseKind};
use kafka_protocol::protocol::StrBytes;
use sluice_protocol::kafka_protocol;

/// The request header, as the handler sees it.
#[derive(Debug, Clone)]
pub struct RequestHeader {
    /// Which API the request is for.
    pub api_key: ApiKey,
    /// The version the handler answers at. A legacy request (older than kafka-protocol
    /// decodes) arrives translated to the oldest decodable version and carries that one;
    /// the connection encodes the response back in the client's own version.
    pub api_version: i16,
    /// Echoed in the response.
    pub correlation_id: i32,
    /// The client's `client.id` (empty when it sent none); shares the frame's buffer.
    pub client_id: StrBytes,
}

/// Identifies one client connection (Kafka's `connectionId`): unique within the process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConnectionId(pub u64);

impl ConnectionId {
    /// An id no other connection of this process has had.
    pub fn next() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        ConnectionId(NEXT.fetch_add(1, Ordering::Relaxed))
    }
}

impl fmt::Display for ConnectionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

pub use sluice_security::{KafkaPrincipal, ListenerName, SecurityProtocol};

/// The identity of one connection: the same for every request it carries, until a
/// re-authentication changes the principal.
#[derive(Debug, Clone)]
pub struct ConnectionIdentity {
    /// Which connection.
    pub connection_id: ConnectionId,
    /// The client's address.
    pub peer: SocketAddr,
    /// The listener the client connected to.
    pub listener: ListenerName,
    /// How that listener secures its connections.
    pub security_protocol: SecurityProtocol,
    /// Who the client authenticated as (`User:ANONYMOUS` when it did not).
    pub principal: KafkaPrincipal,
}

impl ConnectionIdentity {
    /// An unauthenticated client on the default PLAINTEXT listener: every connection today.
    pub fn plaintext(connection_id: ConnectionId, peer: SocketAddr) -> Self {
        ConnectionIdentity {
            connection_id,
            peer,
            listener: ListenerName::for_security_protocol(SecurityProtocol::Plaintext),
            security_protocol: SecurityProtocol::Plaintext,
            principal: KafkaPrincipal::anonymous(),
        }
    }
}

impl ConnectionIdentity {
    /// Another node of the cluster, whose requests (replica fetches and the like) arrive
    /// over the cluster listener rather than a client connection. Its address is not
    /// known at this layer (the transport may not be TCP), so it is the unspecified one.
    pub fn peer_node(node: i32) -> Self {
        ConnectionIdentity {
            connection_id: ConnectionId::next(),
            peer: SocketAddr::from(([0, 0, 0, 0], 0)),
            listener: ListenerName::cluster(),
            security_protocol: SecurityProtocol::Plaintext,
            principal: KafkaPrincipal::new(KafkaPrincipal::USER_TYPE, &format!("node-{node}")),
        }
    }
}

/// Everything a handler knows of a request besides its body.
#[derive(Debug, Clone)]
pub struct RequestContext {
    /// The request header.
    pub header: RequestHeader,
    /// Which connection the request came in on.
    pub connection_id: ConnectionId,
    /// The client's address.
    pub peer: SocketAddr,
    /// The listener the client connected to.
    pub listener: ListenerName,
    /// How that listener secures its connections.
    pub security_protocol: SecurityProtocol,
    /// Who sent the request.
    pub principal: KafkaPrincipal,
}

impl RequestContext {
    /// The context of a request with `header` on the connection `identity` describes.
    /// Clones only reference counts: building one per request allocates nothing.
    pub fn new(header: RequestHeader, identity: &ConnectionIdentity) -> Self {
        RequestContext {
            header,
            connection_id: identity.connection_id,
            peer: identity.peer,
            listener: identity.listener.clone(),
            security_protocol: identity.security_protocol,
            principal: identity.principal.clone(),
        }
    }

    /// The version the handler answers at (see [`RequestHeader::api_version`]).
    pub fn api_version(&self) -> i16 {
        self.header.api_version
    }

    /// The client's `client.id`.
    pub fn client_id(&self) -> &str {
        &self.header.client_id
    }
}

/// What a handler hands back to the connection.
// Moved once per request; boxing the ready response would only add an allocation.
#[allow(clippy::large_enum_variant)]
pub enum Reply {
    /// The response is ready.
    Now(ResponseKind),
    /// The response is being computed (it waits on something); the connection
    /// writes it when it completes, in request order.
    Later(tokio::task::JoinHandle<ResponseKind>),
    /// No response is sent (produce with acks=0).
    Nothing,
    /// Close the connection (acks=0 produce that failed, as Kafka does).
    Close,
}

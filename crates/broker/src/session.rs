//! Per-connection state that decides which requests may reach the router.
//!
//! Kafka authenticates a SASL connection before it serves it: until the client has
//! authenticated, only ApiVersions, SaslHandshake and SaslAuthenticate are valid, and any
//! other request closes the connection without a response (`SaslServerAuthenticator`).
//! The session is where that state lives; the connection asks it about every request
//! before decoding the body.

use kafka_protocol::messages::ApiKey;
use sluice_protocol::kafka_protocol;

use crate::request::ConnectionIdentity;

/// How far the client is in authenticating.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Authentication {
    /// The listener does not authenticate with SASL, or the client has: every request passes.
    Complete,
    /// The listener authenticates with SASL and the client has not yet.
    SaslPending,
}

/// One connection's identity and authentication state.
#[derive(Debug)]
pub struct Session {
    identity: ConnectionIdentity,
    authentication: Authentication,
}

/// Why a request may not reach the router; the connection closes without answering.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// A request other than the SASL ones before authentication.
    #[error("{0:?} before SASL authentication")]
    Unauthenticated(ApiKey),
}

impl Session {
    /// A new connection with `identity`: authenticated already unless its listener uses SASL.
    pub fn new(identity: ConnectionIdentity) -> Self {
        let authentication = if identity.security_protocol.uses_sasl() {
            Authentication::SaslPending
        } else {
            Authentication::Complete
        };
        Session {
            identity,
            authentication,
        }
    }

    /// Who the connection is.
    pub fn identity(&self) -> &ConnectionIdentity {
        &self.identity
    }

    /// Whether a request of `api_key` may go on to be decoded and handled now.
    pub fn admit(&self, api_key: ApiKey) -> Result<(), Refusal> {
        match self.authentication {
            Authentication::Complete => Ok(()),
            Authentication::SaslPending
                if matches!(
                    api_key,
                    ApiKey::ApiVersions | ApiKey::SaslHandshake | ApiKey::SaslAuthenticate
                ) =>
            {
                Ok(())
            }
            Authentication::SaslPending => Err(Refusal::Unauthenticated(api_key)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::{ConnectionId, SecurityProtocol};

    fn session(protocol: SecurityProtocol) -> Session {
        let mut identity =
            ConnectionIdentity::plaintext(ConnectionId(1), "127.0.0.1:1".parse().unwrap());
        identity.security_protocol = protocol;
        Session::new(identity)
    }

    #[test]
    fn plaintext_and_ssl_connections_pass_every_request() {
        for protocol in [SecurityProtocol::Plaintext, SecurityProtocol::Ssl] {
            for api in ApiKey::iter() {
                assert_eq!(session(protocol).admit(api), Ok(()), "{protocol} {api:?}");
            }
        }
    }

    #[test]
    fn sasl_connections_pass_only_the_authentication_requests_before_authenticating() {
        for protocol in [SecurityProtocol::SaslPlaintext, SecurityProtocol::SaslSsl] {
            let s = session(protocol);
            for api in [
                ApiKey::ApiVersions,
                ApiKey::SaslHandshake,
                ApiKey::SaslAuthenticate,
            ] {
                assert_eq!(s.admit(api), Ok(()), "{protocol} {api:?}");
            }
            for api in [ApiKey::Metadata, ApiKey::Produce, ApiKey::Fetch] {
                assert_eq!(
                    s.admit(api),
                    Err(Refusal::Unauthenticated(api)),
                    "{protocol} {api:?}"
                );
            }
        }
    }
}

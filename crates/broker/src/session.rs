//! Per-connection state that decides which requests may reach the router.
//!
//! Kafka authenticates a SASL connection before it serves it: until the client has
//! authenticated, only ApiVersions, SaslHandshake and SaslAuthenticate are valid, and any
//! other request closes the connection without a response (`SaslServerAuthenticator`).
//! After SaslHandshake v0 the client's next frames are raw SASL tokens. A session whose
//! lifetime ran out (KIP-368) must re-authenticate before any other request. The session
//! is where that state lives; the connection asks it about every request before decoding
//! the body.

use std::time::Instant;

use kafka_protocol::messages::ApiKey;
use sluice_protocol::kafka_protocol;
use sluice_security::sasl::{Mechanism, ServerMechanism};

use crate::request::{ConnectionIdentity, KafkaPrincipal};

/// A completed SASL authentication.
#[derive(Debug, Clone)]
pub(crate) struct Authenticated {
    /// The mechanism used (a re-authentication must use the same).
    pub mechanism: Mechanism,
    /// Who the client is (a re-authentication must not change it).
    pub principal: KafkaPrincipal,
    /// When the session ends and the client must re-authenticate.
    pub expires_at: Option<Instant>,
}

/// Where a SASL exchange stands.
pub(crate) enum SaslState {
    /// The listener does not use SASL.
    NotSasl,
    /// Waiting for SaslHandshake.
    AwaitingHandshake,
    /// Exchanging tokens.
    Authenticating {
        /// The server side of the chosen mechanism.
        mechanism: Box<dyn ServerMechanism>,
        /// After SaslHandshake v0: tokens arrive as raw frames without a header.
        raw_tokens: bool,
        /// For a re-authentication, the session it renews.
        renewing: Option<Authenticated>,
    },
    /// Authenticated.
    Authenticated(Authenticated),
}

/// One connection's identity and authentication state.
pub struct Session {
    identity: ConnectionIdentity,
    pub(crate) sasl: SaslState,
    /// Until when the client may take to authenticate (None once it has).
    auth_deadline: Option<tokio::time::Instant>,
}

/// Why a request may not reach the router; the connection closes without answering.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// A request other than the SASL ones before authentication.
    #[error("SASL required, client sent {0:?} before authenticating")]
    Unauthenticated(ApiKey),
    /// A request after the SASL session expired, without re-authenticating.
    #[error("SASL session expired; client sent {0:?} without re-authenticating")]
    Expired(ApiKey),
}

impl Session {
    /// A new connection with `identity`: authenticated already unless its listener uses
    /// SASL, in which case it must authenticate within `auth_timeout`.
    pub fn new(identity: ConnectionIdentity, auth_timeout: std::time::Duration) -> Self {
        let (sasl, auth_deadline) = if identity.security_protocol.uses_sasl() {
            (
                SaslState::AwaitingHandshake,
                Some(tokio::time::Instant::now() + auth_timeout),
            )
        } else {
            (SaslState::NotSasl, None)
        };
        Session {
            identity,
            sasl,
            auth_deadline,
        }
    }

    /// Who the connection is.
    pub fn identity(&self) -> &ConnectionIdentity {
        &self.identity
    }

    /// Whether the listener authenticates with SASL.
    pub fn uses_sasl(&self) -> bool {
        !matches!(self.sasl, SaslState::NotSasl)
    }

    /// When the client's time to authenticate runs out, while it has not.
    pub fn auth_deadline(&self) -> Option<tokio::time::Instant> {
        self.auth_deadline
    }

    /// Whether the next frame is a raw SASL token (after SaslHandshake v0).
    pub fn expects_raw_token(&self) -> bool {
        matches!(
            self.sasl,
            SaslState::Authenticating {
                raw_tokens: true,
                ..
            }
        )
    }

    /// The largest frame accepted now: `before_auth` until the client first authenticated.
    pub fn max_frame(&self, after_auth: usize, before_auth: usize) -> usize {
        match &self.sasl {
            SaslState::AwaitingHandshake | SaslState::Authenticating { renewing: None, .. } => {
                before_auth.min(after_auth)
            }
            _ => after_auth,
        }
    }

    /// Records a completed authentication: the principal from now on.
    pub(crate) fn authenticated(&mut self, done: Authenticated) {
        self.identity.principal = done.principal.clone();
        self.sasl = SaslState::Authenticated(done);
        self.auth_deadline = None;
    }

    /// Why the SASL exchange in progress will fail, if the mechanism has decided so already
    /// (a client that ignores an error challenge and sends other requests).
    pub fn pending_refusal(&self) -> Option<String> {
        match &self.sasl {
            SaslState::Authenticating { mechanism, .. } => mechanism.pending_refusal(),
            _ => None,
        }
    }

    /// Whether a request of `api_key` may go on to be decoded and handled at `now`.
    pub fn admit(&self, api_key: ApiKey, now: Instant) -> Result<(), Refusal> {
        match &self.sasl {
            SaslState::NotSasl => Ok(()),
            SaslState::Authenticated(done) => match done.expires_at {
                Some(end) if now >= end && api_key != ApiKey::SaslHandshake => {
                    Err(Refusal::Expired(api_key))
                }
                _ => Ok(()),
            },
            SaslState::AwaitingHandshake
                if matches!(api_key, ApiKey::ApiVersions | ApiKey::SaslHandshake) =>
            {
                Ok(())
            }
            SaslState::Authenticating {
                raw_tokens: false, ..
            } if api_key == ApiKey::SaslAuthenticate => Ok(()),
            SaslState::AwaitingHandshake | SaslState::Authenticating { .. } => {
                Err(Refusal::Unauthenticated(api_key))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::request::{ConnectionId, SecurityProtocol};

    fn session(protocol: SecurityProtocol) -> Session {
        let mut identity =
            ConnectionIdentity::plaintext(ConnectionId(1), "127.0.0.1:1".parse().unwrap());
        identity.security_protocol = protocol;
        Session::new(identity, Duration::from_secs(10))
    }

    #[test]
    fn plaintext_and_ssl_connections_pass_every_request() {
        for protocol in [SecurityProtocol::Plaintext, SecurityProtocol::Ssl] {
            for api in ApiKey::iter() {
                assert_eq!(
                    session(protocol).admit(api, Instant::now()),
                    Ok(()),
                    "{protocol} {api:?}"
                );
            }
        }
    }

    #[test]
    fn sasl_connections_pass_only_the_handshake_requests_before_authenticating() {
        for protocol in [SecurityProtocol::SaslPlaintext, SecurityProtocol::SaslSsl] {
            let s = session(protocol);
            for api in [ApiKey::ApiVersions, ApiKey::SaslHandshake] {
                assert_eq!(s.admit(api, Instant::now()), Ok(()), "{protocol} {api:?}");
            }
            for api in [
                ApiKey::Metadata,
                ApiKey::Produce,
                ApiKey::Fetch,
                ApiKey::SaslAuthenticate,
            ] {
                assert_eq!(
                    s.admit(api, Instant::now()),
                    Err(Refusal::Unauthenticated(api)),
                    "{protocol} {api:?}"
                );
            }
            assert_eq!(s.max_frame(100 << 20, 512 << 10), 512 << 10);
        }
    }

    #[test]
    fn an_expired_session_admits_only_a_new_handshake() {
        let mut s = session(SecurityProtocol::SaslPlaintext);
        let now = Instant::now();
        s.authenticated(Authenticated {
            mechanism: Mechanism::Plain,
            principal: KafkaPrincipal::user("alice"),
            expires_at: Some(now + Duration::from_secs(1)),
        });
        assert_eq!(s.identity().principal.to_string(), "User:alice");
        assert_eq!(s.auth_deadline(), None);
        assert_eq!(s.admit(ApiKey::Metadata, now), Ok(()));
        let later = now + Duration::from_secs(2);
        assert_eq!(
            s.admit(ApiKey::Metadata, later),
            Err(Refusal::Expired(ApiKey::Metadata))
        );
        assert_eq!(s.admit(ApiKey::SaslHandshake, later), Ok(()));
        assert_eq!(s.max_frame(100 << 20, 512 << 10), 100 << 20);
    }
}

//! SASL mechanisms, server and client side, as Kafka speaks them: PLAIN (RFC 4616) and
//! SCRAM-SHA-256/512 (RFC 5802, RFC 7677), checked against salted SCRAM credentials
//! (never a password), and OAUTHBEARER (RFC 7628) with unsecured JWTs or JWTs signed by a
//! key of the identity provider's JWKS.
//!
//! A server mechanism is a state machine fed the client's tokens one by one; it answers
//! with the next challenge, success (the authenticated user and the last token), or failure
//! with the message the client sees. Unknown users and wrong passwords fail alike.

pub mod jwks;
pub mod jwt;
pub mod oauthbearer;
pub mod plain;
pub mod scram;

use std::fmt;

pub use scram::{ScramCredential, ScramMechanism};

/// A mechanism a listener may enable (`sasl.enabled.mechanisms`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mechanism {
    /// `PLAIN`.
    Plain,
    /// `SCRAM-SHA-256` or `SCRAM-SHA-512`.
    Scram(ScramMechanism),
    /// `OAUTHBEARER`.
    OAuthBearer,
}

impl Mechanism {
    /// Every mechanism, in the order brokers list them.
    pub const ALL: [Mechanism; 4] = [
        Mechanism::Plain,
        Mechanism::Scram(ScramMechanism::Sha256),
        Mechanism::Scram(ScramMechanism::Sha512),
        Mechanism::OAuthBearer,
    ];

    /// The IANA name.
    pub fn name(self) -> &'static str {
        match self {
            Mechanism::Plain => "PLAIN",
            Mechanism::Scram(m) => m.name(),
            Mechanism::OAuthBearer => "OAUTHBEARER",
        }
    }

    /// The mechanism called `name` (exactly, as Kafka compares them).
    pub fn for_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.name() == name)
    }

    /// Parses a comma-separated list (case-insensitive), e.g. `PLAIN,SCRAM-SHA-256`.
    pub fn parse_list(text: &str) -> Result<Vec<Mechanism>, String> {
        let mut out = Vec::new();
        for name in text.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            let mechanism = Self::for_name(&name.to_ascii_uppercase()).ok_or_else(|| {
                format!(
                    "'{name}' is not a SASL mechanism Sluice offers: PLAIN, SCRAM-SHA-256, SCRAM-SHA-512, OAUTHBEARER"
                )
            })?;
            if !out.contains(&mechanism) {
                out.push(mechanism);
            }
        }
        Ok(out)
    }
}

impl fmt::Display for Mechanism {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Where server mechanisms find SCRAM credentials.
pub trait CredentialStore: Send + Sync {
    /// The credential of `user` for `mechanism`, if it has one.
    fn scram_credential(&self, user: &str, mechanism: ScramMechanism) -> Option<ScramCredential>;
}

/// What a server mechanism says after a client token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Send this challenge and wait for the next token.
    Continue(Vec<u8>),
    /// Authenticated as `user`; send `reply` (possibly empty) as the last token.
    Done {
        /// The authenticated user name (the principal is `User:<user>`).
        user: String,
        /// The final server token.
        reply: Vec<u8>,
        /// When the credential expires (OAUTHBEARER tokens), in ms since the epoch.
        expires_at_ms: Option<i64>,
    },
    /// Failed: the client is told `message` (and, for OAUTHBEARER, first gets
    /// `challenge` and answers it before the failure).
    Failed(AuthFailure),
}

/// An authentication failure as the client sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthFailure {
    /// The error message of the SaslAuthenticate response.
    pub message: String,
    /// An error challenge to send before failing (OAUTHBEARER's `{"status":...}`).
    pub challenge: Option<Vec<u8>>,
    /// Why, for the broker's log when it says more than `message` (never sent).
    pub reason: Option<String>,
}

impl AuthFailure {
    /// A failure with `message` and no challenge.
    pub fn new(message: impl Into<String>) -> Self {
        AuthFailure {
            message: message.into(),
            challenge: None,
            reason: None,
        }
    }

    /// The same failure, logged with `reason`.
    pub fn with_reason(self, reason: impl Into<String>) -> Self {
        AuthFailure {
            reason: Some(reason.into()),
            ..self
        }
    }

    /// Kafka's message for bad credentials with `mechanism`: the same whether the user is
    /// unknown or the password wrong.
    pub fn invalid_credentials(mechanism: Mechanism) -> Self {
        Self::new(format!(
            "Authentication failed during authentication due to invalid credentials with SASL mechanism {mechanism}"
        ))
    }
}

/// A server side of one mechanism for one authentication.
pub trait ServerMechanism: Send {
    /// Which mechanism.
    fn mechanism(&self) -> Mechanism;
    /// Handles the client's next token.
    fn step(&mut self, token: &[u8]) -> Step;
    /// Why the exchange will fail, when the server has already decided so and waits only
    /// for the client to acknowledge an error challenge (OAUTHBEARER's `invalid_token`):
    /// a client that never answers it (kafkajs) would otherwise leave no reason in the log.
    fn pending_refusal(&self) -> Option<String> {
        None
    }
}

/// A client side of one mechanism (used by the CLI and the tests).
pub trait ClientMechanism: Send {
    /// The first token.
    fn initial(&mut self) -> Vec<u8>;
    /// The answer to a server token; `Ok(None)` when the exchange is complete.
    fn step(&mut self, server: &[u8]) -> Result<Option<Vec<u8>>, String>;
}

/// Random bytes from the operating system.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    if getrandom::fill(&mut out).is_err() {
        // Without the OS generator nonces and salts would repeat: refuse to go on.
        #[allow(clippy::panic)]
        {
            panic!("the operating system's random number generator failed");
        }
    }
    out
}

//! PLAIN (RFC 4616): `authzid NUL authcid NUL password`, checked against the user's SCRAM
//! credential (SHA-256 first, then SHA-512), so one user store serves both mechanisms.

use std::sync::Arc;

use super::{
    AuthFailure, ClientMechanism, CredentialStore, Mechanism, ScramMechanism, ServerMechanism, Step,
};

/// The server side of PLAIN.
pub struct PlainServer {
    store: Arc<dyn CredentialStore>,
    done: bool,
}

impl PlainServer {
    /// A PLAIN exchange against `store`.
    pub fn new(store: Arc<dyn CredentialStore>) -> Self {
        PlainServer { store, done: false }
    }
}

/// Splits a PLAIN message into (authzid, authcid, password).
pub fn parse_plain(message: &[u8]) -> Option<(&str, &str, &[u8])> {
    let mut parts = message.splitn(3, |&b| b == 0);
    let authzid = std::str::from_utf8(parts.next()?).ok()?;
    let authcid = std::str::from_utf8(parts.next()?).ok()?;
    let password = parts.next()?;
    Some((authzid, authcid, password))
}

impl ServerMechanism for PlainServer {
    fn mechanism(&self) -> Mechanism {
        Mechanism::Plain
    }

    fn step(&mut self, token: &[u8]) -> Step {
        if std::mem::replace(&mut self.done, true) {
            return Step::Failed(AuthFailure::new("PLAIN takes one message"));
        }
        let Some((authzid, user, password)) = parse_plain(token) else {
            return Step::Failed(AuthFailure::new(
                "Invalid SASL/PLAIN response: expected 3 tokens",
            ));
        };
        if user.is_empty() {
            return Step::Failed(AuthFailure::new(
                "Authentication failed: username not specified",
            ));
        }
        if password.is_empty() {
            return Step::Failed(AuthFailure::new(
                "Authentication failed: password not specified",
            ));
        }
        if !authzid.is_empty() && authzid != user {
            return Step::Failed(AuthFailure::new(
                "Authentication failed: Client requested an authorization id that is different from username",
            ));
        }
        let verified = ScramMechanism::ALL.into_iter().find_map(|m| {
            self.store
                .scram_credential(user, m)
                .map(|c| c.matches_password(m, password))
        });
        if verified == Some(true) {
            Step::Done {
                user: user.to_string(),
                reply: Vec::new(),
                expires_at_ms: None,
            }
        } else {
            Step::Failed(AuthFailure::new(
                "Authentication failed: Invalid username or password",
            ))
        }
    }
}

/// The client side of PLAIN.
pub struct PlainClient {
    user: String,
    password: String,
}

impl PlainClient {
    /// A client authenticating `user` with `password`.
    pub fn new(user: &str, password: &str) -> Self {
        PlainClient {
            user: user.to_string(),
            password: password.to_string(),
        }
    }
}

impl ClientMechanism for PlainClient {
    fn initial(&mut self) -> Vec<u8> {
        format!("\0{}\0{}", self.user, self.password).into_bytes()
    }

    fn step(&mut self, _server: &[u8]) -> Result<Option<Vec<u8>>, String> {
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::sasl::ScramCredential;

    struct One(ScramCredential);
    impl CredentialStore for One {
        fn scram_credential(&self, user: &str, m: ScramMechanism) -> Option<ScramCredential> {
            (user == "alice" && m == ScramMechanism::Sha512).then(|| self.0.clone())
        }
    }

    #[test]
    fn plain_checks_the_password_against_either_scram_credential() {
        let store: Arc<dyn CredentialStore> = Arc::new(One(ScramCredential::generate(
            ScramMechanism::Sha512,
            b"s3cret",
            4096,
        )));
        let step = |msg: &[u8]| PlainServer::new(store.clone()).step(msg);
        assert!(matches!(step(b"\0alice\0s3cret"), Step::Done { user, .. } if user == "alice"));
        assert!(matches!(step(b"alice\0alice\0s3cret"), Step::Done { .. }));
        let invalid = Step::Failed(AuthFailure::new(
            "Authentication failed: Invalid username or password",
        ));
        assert_eq!(step(b"\0alice\0wrong"), invalid);
        assert_eq!(step(b"\0bob\0s3cret"), invalid);
        assert!(matches!(step(b"bob\0alice\0s3cret"), Step::Failed(_)));
        assert!(matches!(step(b"no separators"), Step::Failed(_)));
        assert_eq!(parse_plain(b"a\0b\0c\0d"), Some(("a", "b", &b"c\0d"[..])));
    }
}

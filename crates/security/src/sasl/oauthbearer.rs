//! OAUTHBEARER (RFC 7628, KIP-255): the client sends a JWT, the broker validates it (see
//! [`super::jwt`]: unsecured, or signed by a key of the provider's JWKS) and authenticates
//! its principal until it expires. An invalid token gets the error challenge
//! `{"status":"invalid_token"}`; the client answers it with `\x01` and the exchange fails
//! with that status as its message, as with Kafka. Why it was invalid is for the broker's
//! log only.

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use serde_json::Value;

use super::jwks::JwksCache;
pub use super::jwt::{InvalidToken, TokenRules, ValidToken, validate_signed, validate_unsecured};
use super::{AuthFailure, ClientMechanism, Mechanism, ServerMechanism, Step};

/// Extracts the bearer token from a client's initial response
/// (`n,[a=authzid],\x01auth=Bearer <token>\x01[key=value\x01]*\x01`).
pub fn parse_client_response(message: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(message).ok()?;
    let (gs2, rest) = text.split_once('\u{1}')?;
    let mut gs2_fields = gs2.split(',');
    if gs2_fields.next()? != "n" {
        return None;
    }
    let rest = rest.strip_suffix("\u{1}\u{1}")?;
    let mut token = None;
    for pair in rest.split('\u{1}') {
        let (key, value) = pair.split_once('=')?;
        if key == "auth" {
            let mut words = value.split(' ').filter(|w| !w.is_empty());
            if !words.next()?.eq_ignore_ascii_case("bearer") {
                return None;
            }
            token = Some(words.next()?.to_string());
            if words.next().is_some() {
                return None;
            }
        }
    }
    token
}

/// How the broker validates tokens: unsecured JWTs, or JWTs signed by a key of a JWKS.
#[derive(Clone)]
pub enum TokenValidator {
    /// Unsecured JWTs (`alg: none`), for development and tests.
    Unsecured(TokenRules),
    /// JWTs signed with a key of the provider's key set (KIP-768).
    Jwks {
        /// The claims' rules.
        rules: TokenRules,
        /// The provider's keys.
        keys: Arc<JwksCache>,
    },
}

impl TokenValidator {
    /// Validates `token` at `now_ms`.
    pub fn validate(&self, token: &str, now_ms: i64) -> Result<ValidToken, InvalidToken> {
        match self {
            TokenValidator::Unsecured(rules) => validate_unsecured(token, rules, now_ms),
            TokenValidator::Jwks { rules, keys } => validate_signed(token, rules, keys, now_ms),
        }
    }
}

/// The server side of OAUTHBEARER.
pub struct OAuthBearerServer {
    validator: TokenValidator,
    now_ms: i64,
    state: OAuthState,
}

enum OAuthState {
    Initial,
    /// Sent the error challenge; the client's `\x01` ends the exchange (the token was
    /// refused for this reason).
    SentError(InvalidToken),
    Finished,
}

impl OAuthBearerServer {
    /// An exchange validating with `validator` at `now_ms`.
    pub fn new(validator: TokenValidator, now_ms: i64) -> Self {
        OAuthBearerServer {
            validator,
            now_ms,
            state: OAuthState::Initial,
        }
    }
}

/// The error challenge and the failure message of an invalid token.
const INVALID_TOKEN: &str = "{\"status\":\"invalid_token\"}";

impl ServerMechanism for OAuthBearerServer {
    fn mechanism(&self) -> Mechanism {
        Mechanism::OAuthBearer
    }

    fn step(&mut self, token: &[u8]) -> Step {
        match std::mem::replace(&mut self.state, OAuthState::Finished) {
            OAuthState::Initial => {
                let checked = parse_client_response(token)
                    .ok_or_else(|| InvalidToken("malformed client response".into()))
                    .and_then(|t| self.validator.validate(&t, self.now_ms));
                match checked {
                    Ok(valid) => Step::Done {
                        user: valid.principal,
                        reply: Vec::new(),
                        expires_at_ms: Some(valid.expires_at_ms),
                    },
                    Err(why) => {
                        self.state = OAuthState::SentError(why);
                        Step::Continue(INVALID_TOKEN.as_bytes().to_vec())
                    }
                }
            }
            OAuthState::SentError(why) => Step::Failed(
                AuthFailure::new(INVALID_TOKEN)
                    .with_reason(format!("OAUTHBEARER token refused: {why}")),
            ),
            OAuthState::Finished => Step::Failed(AuthFailure::new("OAUTHBEARER exchange is over")),
        }
    }

    fn pending_refusal(&self) -> Option<String> {
        match &self.state {
            OAuthState::SentError(why) => Some(format!("OAUTHBEARER token refused: {why}")),
            OAuthState::Initial | OAuthState::Finished => None,
        }
    }
}

/// The client side of OAUTHBEARER with a given token.
pub struct OAuthBearerClient {
    token: String,
}

impl OAuthBearerClient {
    /// A client presenting `token`.
    pub fn new(token: &str) -> Self {
        OAuthBearerClient {
            token: token.to_string(),
        }
    }
}

impl ClientMechanism for OAuthBearerClient {
    fn initial(&mut self) -> Vec<u8> {
        format!("n,,\u{1}auth=Bearer {}\u{1}\u{1}", self.token).into_bytes()
    }

    fn step(&mut self, server: &[u8]) -> Result<Option<Vec<u8>>, String> {
        if server.is_empty() {
            Ok(None)
        } else {
            Ok(Some(vec![1]))
        }
    }
}

/// An unsecured JWT for `principal` with `claims` added (tests and the CLI).
pub fn unsecured_token(principal: &str, exp_s: i64, extra: &[(&str, Value)]) -> String {
    let mut claims = serde_json::Map::new();
    claims.insert("sub".into(), Value::from(principal));
    claims.insert("exp".into(), Value::from(exp_s));
    for (k, v) in extra {
        claims.insert((*k).to_string(), v.clone());
    }
    format!(
        "{}.{}.",
        B64URL.encode(br#"{"alg":"none"}"#),
        B64URL.encode(Value::Object(claims).to_string())
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const NOW_MS: i64 = 1_700_000_000_000;

    #[test]
    fn valid_unsecured_tokens_authenticate_with_their_expiry() {
        let token = unsecured_token(
            "alice",
            NOW_MS / 1000 + 60,
            &[("scope", "requiredScope x".into())],
        );
        let rules = TokenRules {
            required_scopes: vec!["requiredScope".into()],
            ..TokenRules::default()
        };
        let mut server = OAuthBearerServer::new(TokenValidator::Unsecured(rules), NOW_MS);
        let mut client = OAuthBearerClient::new(&token);
        assert_eq!(
            server.step(&client.initial()),
            Step::Done {
                user: "alice".into(),
                reply: Vec::new(),
                expires_at_ms: Some(NOW_MS + 60_000)
            }
        );
    }

    #[test]
    fn expired_or_unscoped_tokens_get_the_error_challenge_then_fail() {
        let rules = TokenValidator::Unsecured(TokenRules {
            required_scopes: vec!["requiredScope".into()],
            ..TokenRules::default()
        });
        for (token, reason) in [
            (
                unsecured_token("a", NOW_MS / 1000 - 1, &[("scope", "requiredScope".into())]),
                "the token has expired",
            ),
            (
                unsecured_token("a", NOW_MS / 1000 + 60, &[("scope", "wrongScope".into())]),
                "the required scope requiredScope is not granted",
            ),
            ("x.y.z".to_string(), "not base64url"),
        ] {
            let mut server = OAuthBearerServer::new(rules.clone(), NOW_MS);
            let mut client = OAuthBearerClient::new(&token);
            let Step::Continue(challenge) = server.step(&client.initial()) else {
                panic!("no challenge for {token}");
            };
            assert_eq!(challenge, INVALID_TOKEN.as_bytes());
            assert_eq!(
                server.pending_refusal(),
                Some(format!("OAUTHBEARER token refused: {reason}"))
            );
            let answer = client.step(&challenge).unwrap().unwrap();
            assert_eq!(
                server.step(&answer),
                Step::Failed(
                    AuthFailure::new(INVALID_TOKEN)
                        .with_reason(format!("OAUTHBEARER token refused: {reason}"))
                )
            );
        }
        assert_eq!(
            parse_client_response(b"n,,\x01auth=Bearer abc\x01host=x\x01\x01").as_deref(),
            Some("abc")
        );
        assert_eq!(
            parse_client_response(b"n,,\x01auth=Basic abc\x01\x01"),
            None
        );
        assert_eq!(
            parse_client_response(b"y,,\x01auth=Bearer abc\x01\x01"),
            None
        );
    }
}

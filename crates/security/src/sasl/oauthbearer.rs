//! OAUTHBEARER (RFC 7628, KIP-255) with unsecured JWTs (`alg: none`), as Kafka's
//! `OAuthBearerUnsecuredValidatorCallbackHandler` checks them: the principal claim (`sub`)
//! and `exp` are required, `iat` optional, and the required scopes must all be granted.
//! An invalid token gets the error challenge `{"status":"invalid_token"}`; the client
//! answers it with `\x01` and the exchange fails.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use serde_json::Value;

use super::{AuthFailure, ClientMechanism, Mechanism, ServerMechanism, Step};

/// How unsecured tokens are validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnsecuredValidation {
    /// The claim naming the principal (`sub`).
    pub principal_claim: String,
    /// The claim holding the granted scopes (`scope`).
    pub scope_claim: String,
    /// Scopes the token must grant.
    pub required_scopes: Vec<String>,
    /// Clock skew tolerated on `exp` and `iat`, in seconds.
    pub allowable_clock_skew_s: i64,
}

impl Default for UnsecuredValidation {
    fn default() -> Self {
        UnsecuredValidation {
            principal_claim: "sub".into(),
            scope_claim: "scope".into(),
            required_scopes: Vec::new(),
            allowable_clock_skew_s: 0,
        }
    }
}

/// A validated token: its principal and expiry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidToken {
    /// The principal's name.
    pub principal: String,
    /// When it expires, in ms since the epoch.
    pub expires_at_ms: i64,
}

/// Why a token is not valid (the server logs it; the client only sees the status).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidToken(pub String);

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

/// Validates an unsecured JWT at `now_ms`.
pub fn validate_unsecured(
    token: &str,
    rules: &UnsecuredValidation,
    now_ms: i64,
) -> Result<ValidToken, InvalidToken> {
    let invalid = |why: &str| InvalidToken(why.to_string());
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(invalid("not a JWT of three parts"));
    };
    if !signature.is_empty() {
        return Err(invalid("an unsecured JWT has no signature"));
    }
    let decode = |part: &str| -> Result<Value, InvalidToken> {
        let bytes = B64URL
            .decode(part.trim_end_matches('='))
            .map_err(|_| invalid("not base64url"))?;
        serde_json::from_slice(&bytes).map_err(|_| invalid("not JSON"))
    };
    let header = decode(header)?;
    if header.get("alg").and_then(Value::as_str) != Some("none") {
        return Err(invalid("the JWT is not unsecured (alg must be none)"));
    }
    let claims = decode(payload)?;
    let principal = claims
        .get(&rules.principal_claim)
        .and_then(Value::as_str)
        .filter(|p| !p.trim().is_empty())
        .ok_or_else(|| invalid("no principal claim"))?;
    let exp = claims
        .get("exp")
        .and_then(Value::as_f64)
        .ok_or_else(|| invalid("no exp claim"))?;
    let skew_ms = rules.allowable_clock_skew_s.saturating_mul(1000) as f64;
    let expires_at_ms = (exp * 1000.0) as i64;
    if (now_ms as f64) - skew_ms >= exp * 1000.0 {
        return Err(invalid("the token has expired"));
    }
    if let Some(iat) = claims.get("iat") {
        let iat = iat.as_f64().ok_or_else(|| invalid("iat is not a number"))?;
        if iat * 1000.0 > now_ms as f64 + skew_ms {
            return Err(invalid("the token is issued in the future"));
        }
    }
    let granted: Vec<String> = match claims.get(&rules.scope_claim) {
        Some(Value::String(s)) => s
            .split(' ')
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect(),
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(Value::as_str)
            .map(String::from)
            .collect(),
        _ => Vec::new(),
    };
    if let Some(missing) = rules.required_scopes.iter().find(|s| !granted.contains(s)) {
        return Err(InvalidToken(format!(
            "the required scope {missing} is not granted"
        )));
    }
    Ok(ValidToken {
        principal: principal.to_string(),
        expires_at_ms,
    })
}

/// The server side of OAUTHBEARER with unsecured tokens.
pub struct OAuthBearerServer {
    rules: UnsecuredValidation,
    now_ms: i64,
    state: OAuthState,
}

enum OAuthState {
    Initial,
    /// Sent the error challenge; the client's `\x01` ends the exchange with `message`.
    SentError(String),
    Finished,
}

impl OAuthBearerServer {
    /// An exchange validating with `rules` at `now_ms`.
    pub fn new(rules: UnsecuredValidation, now_ms: i64) -> Self {
        OAuthBearerServer {
            rules,
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
                    .and_then(|t| validate_unsecured(&t, &self.rules, self.now_ms));
                match checked {
                    Ok(valid) => Step::Done {
                        user: valid.principal,
                        reply: Vec::new(),
                        expires_at_ms: Some(valid.expires_at_ms),
                    },
                    Err(why) => {
                        tracing::info!(reason = %why, "OAUTHBEARER token refused");
                        self.state = OAuthState::SentError(INVALID_TOKEN.to_string());
                        Step::Continue(INVALID_TOKEN.as_bytes().to_vec())
                    }
                }
            }
            OAuthState::SentError(message) => Step::Failed(AuthFailure::new(message)),
            OAuthState::Finished => Step::Failed(AuthFailure::new("OAUTHBEARER exchange is over")),
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
        let rules = UnsecuredValidation {
            required_scopes: vec!["requiredScope".into()],
            ..UnsecuredValidation::default()
        };
        let mut server = OAuthBearerServer::new(rules, NOW_MS);
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
        let rules = UnsecuredValidation {
            required_scopes: vec!["requiredScope".into()],
            ..UnsecuredValidation::default()
        };
        for token in [
            unsecured_token("a", NOW_MS / 1000 - 1, &[("scope", "requiredScope".into())]),
            unsecured_token("a", NOW_MS / 1000 + 60, &[("scope", "wrongScope".into())]),
            "x.y.z".to_string(),
        ] {
            let mut server = OAuthBearerServer::new(rules.clone(), NOW_MS);
            let mut client = OAuthBearerClient::new(&token);
            let Step::Continue(challenge) = server.step(&client.initial()) else {
                panic!("no challenge for {token}");
            };
            assert_eq!(challenge, INVALID_TOKEN.as_bytes());
            let answer = client.step(&challenge).unwrap().unwrap();
            assert_eq!(
                server.step(&answer),
                Step::Failed(AuthFailure::new(INVALID_TOKEN))
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

//! The JSON Web Tokens OAUTHBEARER carries, validated as Kafka's brokers do:
//!
//! - unsecured (`alg: none`), as `OAuthBearerUnsecuredValidatorCallbackHandler`: the
//!   principal claim and `exp` are required, `iat` is optional;
//! - signed (KIP-768, `BrokerJwtValidator`): the signature must verify with a key of the
//!   provider's key set (see [`super::jwks`]), `exp` and `iat` are required, and `iss` and
//!   `aud` must be the expected ones when those are configured.
//!
//! Either way `nbf` is honoured, times tolerate the configured clock skew, and the required
//! scopes must all be granted. Claims of the wrong JSON type are invalid, never ignored.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use serde_json::Value;

use super::jwks::{Algorithm, JwksCache};

/// What a token must satisfy besides its signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRules {
    /// The claim naming the principal (`sub`).
    pub principal_claim: String,
    /// The claim holding the granted scopes (`scope`).
    pub scope_claim: String,
    /// Scopes the token must grant.
    pub required_scopes: Vec<String>,
    /// Clock skew tolerated on `exp`, `nbf` and `iat`, in seconds.
    pub allowable_clock_skew_s: i64,
    /// The issuer (`iss`) a signed token must name, if any.
    pub expected_issuer: Option<String>,
    /// Audiences (`aud`) of which a signed token must name one, if any.
    pub expected_audience: Vec<String>,
}

impl Default for TokenRules {
    fn default() -> Self {
        TokenRules {
            principal_claim: "sub".into(),
            scope_claim: "scope".into(),
            required_scopes: Vec::new(),
            allowable_clock_skew_s: 0,
            expected_issuer: None,
            expected_audience: Vec::new(),
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

/// Why a token is not valid (the broker logs it; the client only sees the status).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidToken(pub String);

fn invalid(why: impl Into<String>) -> InvalidToken {
    InvalidToken(why.into())
}

/// A compact JWS split into its parts.
struct Jws<'a> {
    header: Value,
    claims: Value,
    /// `header.payload`, what the signature covers.
    signing_input: &'a str,
    signature: &'a str,
}

impl<'a> Jws<'a> {
    fn split(token: &'a str) -> Result<Self, InvalidToken> {
        let mut parts = token.split('.');
        let (Some(header), Some(payload), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(invalid("not a JWT of three parts"));
        };
        let signing_input = token
            .get(..header.len() + 1 + payload.len())
            .ok_or_else(|| invalid("not a JWT of three parts"))?;
        Ok(Jws {
            header: decode_json(header)?,
            claims: decode_json(payload)?,
            signing_input,
            signature,
        })
    }

    fn algorithm_name(&self) -> Option<&str> {
        self.header.get("alg").and_then(Value::as_str)
    }
}

fn decode_json(part: &str) -> Result<Value, InvalidToken> {
    let bytes = B64URL
        .decode(part.trim_end_matches('='))
        .map_err(|_| invalid("not base64url"))?;
    serde_json::from_slice(&bytes).map_err(|_| invalid("not JSON"))
}

/// Validates an unsecured JWT at `now_ms`.
pub fn validate_unsecured(
    token: &str,
    rules: &TokenRules,
    now_ms: i64,
) -> Result<ValidToken, InvalidToken> {
    let jws = Jws::split(token)?;
    if !jws.signature.is_empty() {
        return Err(invalid("an unsecured JWT has no signature"));
    }
    if jws.algorithm_name() != Some("none") {
        return Err(invalid("the JWT is not unsecured (alg must be none)"));
    }
    check_claims(&jws.claims, rules, now_ms, Required::Unsecured)
}

/// Validates a signed JWT at `now_ms` against the keys of `keys`.
pub fn validate_signed(
    token: &str,
    rules: &TokenRules,
    keys: &JwksCache,
    now_ms: i64,
) -> Result<ValidToken, InvalidToken> {
    let jws = Jws::split(token)?;
    let alg = match jws.algorithm_name() {
        Some("none") => {
            return Err(invalid(
                "unsecured JWTs (alg none) are refused when a JWKS endpoint is configured",
            ));
        }
        Some(name) => Algorithm::from_name(name)
            .ok_or_else(|| invalid(format!("the JWS algorithm {name} is not supported")))?,
        None => return Err(invalid("the JWS header has no alg")),
    };
    let kid = match jws.header.get("kid") {
        None => None,
        Some(Value::String(kid)) => Some(kid.as_str()),
        Some(_) => return Err(invalid("the JWS header's kid is not a string")),
    };
    let signature = B64URL
        .decode(jws.signature.trim_end_matches('='))
        .map_err(|_| invalid("the signature is not base64url"))?;
    keys.verify(kid, alg, jws.signing_input.as_bytes(), &signature, now_ms)
        .map_err(|e| invalid(e.to_string()))?;
    check_claims(&jws.claims, rules, now_ms, Required::Signed)
}

/// Which claims must be present: Kafka's broker validator requires `iat` and checks `iss`
/// and `aud`; the unsecured one does not.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Required {
    Unsecured,
    Signed,
}

/// A numeric date claim in ms since the epoch; `Err` when present but not a number.
fn date_claim(claims: &Value, name: &str) -> Result<Option<f64>, InvalidToken> {
    match claims.get(name) {
        None => Ok(None),
        Some(value) => value
            .as_f64()
            .map(|s| Some(s * 1000.0))
            .ok_or_else(|| invalid(format!("the {name} claim is not a number"))),
    }
}

fn check_claims(
    claims: &Value,
    rules: &TokenRules,
    now_ms: i64,
    required: Required,
) -> Result<ValidToken, InvalidToken> {
    let skew_ms = rules.allowable_clock_skew_s.saturating_mul(1000) as f64;
    let now = now_ms as f64;
    let exp = date_claim(claims, "exp")?.ok_or_else(|| invalid("no exp claim"))?;
    if now - skew_ms >= exp {
        return Err(invalid("the token has expired"));
    }
    match date_claim(claims, "iat")? {
        Some(iat) if iat > now + skew_ms => {
            return Err(invalid("the token is issued in the future"));
        }
        None if required == Required::Signed => return Err(invalid("no iat claim")),
        _ => {}
    }
    if let Some(nbf) = date_claim(claims, "nbf")?
        && nbf > now + skew_ms
    {
        return Err(invalid("the token is not valid yet (nbf)"));
    }
    if required == Required::Signed {
        check_issuer(claims, rules)?;
        check_audience(claims, rules)?;
    }
    let principal = claims
        .get(&rules.principal_claim)
        .and_then(Value::as_str)
        .filter(|p| !p.trim().is_empty())
        .ok_or_else(|| invalid(format!("no {} claim", rules.principal_claim)))?;
    check_scopes(claims, rules)?;
    Ok(ValidToken {
        principal: principal.to_string(),
        expires_at_ms: exp as i64,
    })
}

fn check_issuer(claims: &Value, rules: &TokenRules) -> Result<(), InvalidToken> {
    let Some(expected) = &rules.expected_issuer else {
        return Ok(());
    };
    match claims.get("iss").and_then(Value::as_str) {
        Some(iss) if iss == expected => Ok(()),
        Some(iss) => Err(invalid(format!(
            "the issuer {iss} is not the expected {expected}"
        ))),
        None => Err(invalid("no iss claim")),
    }
}

fn check_audience(claims: &Value, rules: &TokenRules) -> Result<(), InvalidToken> {
    if rules.expected_audience.is_empty() {
        return Ok(());
    }
    let audiences: Vec<&str> = match claims.get("aud") {
        Some(Value::String(aud)) => vec![aud.as_str()],
        Some(Value::Array(auds)) => auds.iter().filter_map(Value::as_str).collect(),
        Some(_) => return Err(invalid("the aud claim is neither a string nor a list")),
        None => return Err(invalid("no aud claim")),
    };
    if audiences
        .iter()
        .any(|a| rules.expected_audience.iter().any(|e| e == a))
    {
        Ok(())
    } else {
        Err(invalid(format!(
            "the audience {audiences:?} is none of the expected {:?}",
            rules.expected_audience
        )))
    }
}

fn check_scopes(claims: &Value, rules: &TokenRules) -> Result<(), InvalidToken> {
    let granted: Vec<&str> = match claims.get(&rules.scope_claim) {
        Some(Value::String(s)) => s.split(' ').filter(|s| !s.is_empty()).collect(),
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    match rules
        .required_scopes
        .iter()
        .find(|s| !granted.contains(&s.as_str()))
    {
        Some(missing) => Err(invalid(format!(
            "the required scope {missing} is not granted"
        ))),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests;

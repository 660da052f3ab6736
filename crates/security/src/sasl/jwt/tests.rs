//! Signed and unsecured tokens against the rules, with an RSA key from `testdata/` and EC
//! keys made by the test, served by a key set source the test controls.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use parking_lot::Mutex;
use ring::rand::SystemRandom;
use ring::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair, RSA_PKCS1_SHA256, RsaKeyPair,
    RsaPublicKeyComponents,
};
use rustls_pki_types::PrivatePkcs8KeyDer;
use rustls_pki_types::pem::PemObject;
use serde_json::{Value, json};

use super::*;
use crate::sasl::jwks::{JwksCache, JwksSource, KeySet};
use crate::sasl::oauthbearer::{OAuthBearerClient, OAuthBearerServer, TokenValidator};
use crate::sasl::{ClientMechanism, ServerMechanism, Step};

const NOW_MS: i64 = 1_700_000_000_000;
const NOW_S: i64 = NOW_MS / 1000;

/// A key that signs tokens, with its public half as a JWK.
enum TestKey {
    Rsa(RsaKeyPair),
    Ec(EcdsaKeyPair),
}

impl TestKey {
    fn rsa() -> TestKey {
        let pem = include_str!("../../../testdata/jwt-rsa-2048.pem");
        let der = PrivatePkcs8KeyDer::from_pem_slice(pem.as_bytes()).unwrap();
        TestKey::Rsa(RsaKeyPair::from_pkcs8(der.secret_pkcs8_der()).unwrap())
    }

    fn ec() -> TestKey {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        TestKey::Ec(
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
                .unwrap(),
        )
    }

    fn alg(&self) -> &'static str {
        match self {
            TestKey::Rsa(_) => "RS256",
            TestKey::Ec(_) => "ES256",
        }
    }

    fn jwk(&self, kid: &str) -> Value {
        match self {
            TestKey::Rsa(key) => {
                let public = RsaPublicKeyComponents::<Vec<u8>>::from(key.public());
                json!({"kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256",
                       "n": B64URL.encode(&public.n), "e": B64URL.encode(&public.e)})
            }
            TestKey::Ec(key) => {
                let point = key.public_key().as_ref();
                json!({"kty": "EC", "kid": kid, "crv": "P-256",
                       "x": B64URL.encode(&point[1..33]), "y": B64URL.encode(&point[33..65])})
            }
        }
    }

    /// A compact JWS of `claims` with `kid` in its header.
    fn sign(&self, kid: &str, claims: &Value) -> String {
        let header = json!({"alg": self.alg(), "typ": "JWT", "kid": kid});
        let input = format!(
            "{}.{}",
            B64URL.encode(header.to_string()),
            B64URL.encode(claims.to_string())
        );
        let rng = SystemRandom::new();
        let signature = match self {
            TestKey::Rsa(key) => {
                let mut sig = vec![0; key.public().modulus_len()];
                key.sign(&RSA_PKCS1_SHA256, &rng, input.as_bytes(), &mut sig)
                    .unwrap();
                sig
            }
            TestKey::Ec(key) => key.sign(&rng, input.as_bytes()).unwrap().as_ref().to_vec(),
        };
        format!("{input}.{}", B64URL.encode(signature))
    }
}

/// A key set the test changes, counting the fetches.
#[derive(Clone, Default)]
struct Served {
    doc: Arc<Mutex<String>>,
    fetches: Arc<AtomicUsize>,
}

impl Served {
    fn set(&self, keys: &[Value]) {
        *self.doc.lock() = json!({ "keys": keys }).to_string();
    }

    fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }
}

impl JwksSource for Served {
    fn location(&self) -> String {
        "test".into()
    }

    fn fetch(&self) -> Result<String, String> {
        self.fetches.fetch_add(1, Ordering::SeqCst);
        Ok(self.doc.lock().clone())
    }
}

fn cache(served: &Served) -> JwksCache {
    let cache = JwksCache::new(Box::new(served.clone()));
    cache.refresh().unwrap();
    cache
}

fn rules() -> TokenRules {
    TokenRules {
        allowable_clock_skew_s: 30,
        expected_issuer: Some("https://idp.example".into()),
        expected_audience: vec!["sluice".into(), "kafka".into()],
        ..TokenRules::default()
    }
}

/// Claims valid for a minute from now, by the expected issuer for the expected audience.
fn claims() -> Value {
    json!({"sub": "alice", "iss": "https://idp.example", "aud": "sluice",
           "iat": NOW_S, "exp": NOW_S + 60, "scope": "kafka.produce kafka.consume"})
}

fn with(mut claims: Value, key: &str, value: Value) -> Value {
    claims[key] = value;
    claims
}

fn without(mut claims: Value, key: &str) -> Value {
    claims.as_object_mut().unwrap().remove(key);
    claims
}

fn reason(result: Result<ValidToken, InvalidToken>) -> String {
    result.expect_err("the token was accepted").0
}

#[test]
fn tokens_signed_by_a_key_of_the_set_authenticate_their_subject_until_exp() {
    let (rsa, ec) = (TestKey::rsa(), TestKey::ec());
    let served = Served::default();
    served.set(&[rsa.jwk("rsa-1"), ec.jwk("ec-1")]);
    let keys = cache(&served);
    let expected = ValidToken {
        principal: "alice".into(),
        expires_at_ms: NOW_MS + 60_000,
    };
    for (key, kid) in [(&rsa, "rsa-1"), (&ec, "ec-1")] {
        let token = key.sign(kid, &claims());
        assert_eq!(
            validate_signed(&token, &rules(), &keys, NOW_MS),
            Ok(expected.clone()),
            "{}",
            key.alg()
        );
    }
    // An audience list naming one expected audience, another principal claim.
    let rules = TokenRules {
        principal_claim: "client_id".into(),
        ..rules()
    };
    let token = rsa.sign(
        "rsa-1",
        &with(
            with(claims(), "aud", json!(["other", "kafka"])),
            "client_id",
            json!("svc-orders"),
        ),
    );
    assert_eq!(
        validate_signed(&token, &rules, &keys, NOW_MS).map(|t| t.principal),
        Ok("svc-orders".to_string())
    );
    assert_eq!(served.fetches(), 1, "no fetch beyond the first");
}

#[test]
fn a_signature_that_does_not_verify_is_refused() {
    let (rsa, ec, impostor) = (TestKey::rsa(), TestKey::ec(), TestKey::ec());
    let served = Served::default();
    served.set(&[rsa.jwk("rsa-1"), ec.jwk("ec-1")]);
    let keys = cache(&served);
    // Claims changed after signing: the RSA signature no longer matches.
    let token = rsa.sign("rsa-1", &claims());
    let mut parts: Vec<&str> = token.split('.').collect();
    let forged = B64URL.encode(with(claims(), "sub", json!("admin")).to_string());
    parts[1] = &forged;
    assert_eq!(
        reason(validate_signed(&parts.join("."), &rules(), &keys, NOW_MS)),
        "the signature does not verify with the JWKS key"
    );
    // Signed by another EC key claiming the kid of the one in the set.
    let token = impostor.sign("ec-1", &claims());
    assert_eq!(
        reason(validate_signed(&token, &rules(), &keys, NOW_MS)),
        "the signature does not verify with the JWKS key"
    );
    // An ES256 header on a kid whose key is RSA finds no key that fits.
    let token = ec.sign("rsa-1", &claims());
    assert_eq!(
        reason(validate_signed(&token, &rules(), &keys, NOW_MS)),
        "no key in the JWKS for kid Some(\"rsa-1\") and alg ES256"
    );
}

#[test]
fn expired_early_or_future_tokens_are_refused_within_the_clock_skew() {
    let rsa = TestKey::rsa();
    let served = Served::default();
    served.set(&[rsa.jwk("rsa-1")]);
    let keys = cache(&served);
    let check =
        |claims: Value| validate_signed(&rsa.sign("rsa-1", &claims), &rules(), &keys, NOW_MS);
    // Expired 31 s ago: beyond the 30 s skew. Expired 29 s ago: within it.
    assert_eq!(
        reason(check(with(claims(), "exp", json!(NOW_S - 31)))),
        "the token has expired"
    );
    assert!(check(with(claims(), "exp", json!(NOW_S - 29))).is_ok());
    assert_eq!(
        reason(check(with(claims(), "nbf", json!(NOW_S + 31)))),
        "the token is not valid yet (nbf)"
    );
    assert!(check(with(claims(), "nbf", json!(NOW_S + 29))).is_ok());
    assert_eq!(
        reason(check(with(claims(), "iat", json!(NOW_S + 31)))),
        "the token is issued in the future"
    );
    // Kafka's broker validator requires exp and iat; a string is no number.
    assert_eq!(reason(check(without(claims(), "exp"))), "no exp claim");
    assert_eq!(reason(check(without(claims(), "iat"))), "no iat claim");
    assert_eq!(
        reason(check(with(claims(), "nbf", json!("99999999999")))),
        "the nbf claim is not a number"
    );
    assert_eq!(
        reason(check(with(claims(), "exp", json!("never")))),
        "the exp claim is not a number"
    );
}

#[test]
fn the_issuer_audience_subject_and_scopes_must_be_the_expected_ones() {
    let rsa = TestKey::rsa();
    let served = Served::default();
    served.set(&[rsa.jwk("rsa-1")]);
    let keys = cache(&served);
    let check = |rules: &TokenRules, claims: Value| {
        validate_signed(&rsa.sign("rsa-1", &claims), rules, &keys, NOW_MS)
    };
    assert_eq!(
        reason(check(
            &rules(),
            with(claims(), "iss", json!("https://evil.example"))
        )),
        "the issuer https://evil.example is not the expected https://idp.example"
    );
    assert_eq!(
        reason(check(&rules(), without(claims(), "iss"))),
        "no iss claim"
    );
    assert_eq!(
        reason(check(&rules(), with(claims(), "aud", json!("billing")))),
        "the audience [\"billing\"] is none of the expected [\"sluice\", \"kafka\"]"
    );
    assert_eq!(
        reason(check(&rules(), without(claims(), "aud"))),
        "no aud claim"
    );
    assert_eq!(
        reason(check(&rules(), without(claims(), "sub"))),
        "no sub claim"
    );
    // Without expectations, any issuer and audience will do.
    let open = TokenRules {
        expected_issuer: None,
        expected_audience: Vec::new(),
        ..rules()
    };
    assert!(check(&open, without(without(claims(), "iss"), "aud")).is_ok());
    let scoped = TokenRules {
        required_scopes: vec!["kafka.produce".into(), "kafka.admin".into()],
        ..rules()
    };
    assert_eq!(
        reason(check(&scoped, claims())),
        "the required scope kafka.admin is not granted"
    );
    assert!(
        check(
            &scoped,
            with(claims(), "scope", json!(["kafka.admin", "kafka.produce"]))
        )
        .is_ok()
    );
}

#[test]
fn unsecured_and_hmac_tokens_are_refused_when_a_key_set_is_configured() {
    let served = Served::default();
    served.set(&[TestKey::rsa().jwk("rsa-1")]);
    let keys = cache(&served);
    let unsecured = crate::sasl::oauthbearer::unsecured_token("alice", NOW_S + 60, &[]);
    assert_eq!(
        reason(validate_signed(&unsecured, &rules(), &keys, NOW_MS)),
        "unsecured JWTs (alg none) are refused when a JWKS endpoint is configured"
    );
    let hs256 = format!(
        "{}.{}.c2ln",
        B64URL.encode(r#"{"alg":"HS256","kid":"rsa-1"}"#),
        B64URL.encode(claims().to_string())
    );
    assert_eq!(
        reason(validate_signed(&hs256, &rules(), &keys, NOW_MS)),
        "the JWS algorithm HS256 is not supported"
    );
    assert_eq!(
        reason(validate_signed("a.b", &rules(), &keys, NOW_MS)),
        "not a JWT of three parts"
    );
}

#[test]
fn a_token_with_an_unknown_kid_refreshes_the_set_at_most_every_interval() {
    let (old, new, unknown) = (TestKey::rsa(), TestKey::ec(), TestKey::ec());
    let served = Served::default();
    served.set(&[old.jwk("old")]);
    let keys = cache(&served);
    assert_eq!(served.fetches(), 1);
    // The provider rotates to a new key; the first token signed with it fetches the set.
    served.set(&[old.jwk("old"), new.jwk("new")]);
    let token = new.sign("new", &claims());
    assert!(validate_signed(&token, &rules(), &keys, NOW_MS).is_ok());
    assert_eq!(served.fetches(), 2);
    assert_eq!(keys.keys().len(), 2);
    // Made-up kids within the interval fetch nothing more.
    let token = unknown.sign("made-up", &claims());
    let interval = JwksCache::UNKNOWN_KEY_REFRESH_INTERVAL_MS;
    assert_eq!(
        reason(validate_signed(
            &token,
            &rules(),
            &keys,
            NOW_MS + interval - 1
        )),
        "no key in the JWKS for kid Some(\"made-up\") and alg ES256"
    );
    assert_eq!(served.fetches(), 2);
    // After the interval one more fetch; the key is there by then.
    served.set(&[new.jwk("new"), unknown.jwk("made-up")]);
    assert!(validate_signed(&token, &rules(), &keys, NOW_MS + interval).is_ok());
    assert_eq!(served.fetches(), 3);
}

#[test]
fn key_sets_keep_the_signing_keys_and_skip_the_rest() {
    let rsa = TestKey::rsa();
    let set = json!({"keys": [
        rsa.jwk("sig"),
        {"kty": "RSA", "kid": "enc", "use": "enc", "n": "AQAB", "e": "AQAB"},
        {"kty": "oct", "kid": "secret", "k": "c2VjcmV0"},
        {"kty": "AKP", "kid": "pq", "alg": "ML-DSA-44", "pub": "AA"},
        {"kty": "EC", "kid": "short", "crv": "P-256", "x": "AA", "y": "AA"},
    ]});
    let parsed = KeySet::parse(&set.to_string()).unwrap();
    assert_eq!(parsed.len(), 1);
    assert_eq!(
        KeySet::parse("[]"),
        Err("the key set has no 'keys' array".to_string())
    );
    assert!(
        KeySet::parse("not json")
            .unwrap_err()
            .starts_with("the key set is not JSON")
    );
}

#[test]
fn oauthbearer_with_a_key_set_authenticates_signed_tokens_and_refuses_others() {
    let rsa = TestKey::rsa();
    let served = Served::default();
    served.set(&[rsa.jwk("rsa-1")]);
    let validator = TokenValidator::Jwks {
        rules: rules(),
        keys: Arc::new(cache(&served)),
    };
    let token = rsa.sign("rsa-1", &claims());
    let mut server = OAuthBearerServer::new(validator.clone(), NOW_MS);
    assert_eq!(
        server.step(&OAuthBearerClient::new(&token).initial()),
        Step::Done {
            user: "alice".into(),
            reply: Vec::new(),
            expires_at_ms: Some(NOW_MS + 60_000)
        }
    );
    let expired = rsa.sign("rsa-1", &with(claims(), "exp", json!(NOW_S - 60)));
    let mut server = OAuthBearerServer::new(validator, NOW_MS);
    let mut client = OAuthBearerClient::new(&expired);
    let Step::Continue(challenge) = server.step(&client.initial()) else {
        panic!("no error challenge");
    };
    assert_eq!(challenge, br#"{"status":"invalid_token"}"#);
    let Step::Failed(failure) = server.step(&client.step(&challenge).unwrap().unwrap()) else {
        panic!("not failed");
    };
    assert_eq!(failure.message, r#"{"status":"invalid_token"}"#);
    assert_eq!(
        failure.reason.as_deref(),
        Some("OAUTHBEARER token refused: the token has expired")
    );
}

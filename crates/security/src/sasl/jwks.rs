//! JSON Web Key Sets (RFC 7517) for validating signed OAUTHBEARER tokens (KIP-768): the
//! public keys of an identity provider, fetched from `sasl.oauthbearer.jwks.endpoint.url`,
//! kept in memory, refreshed on a schedule and, rate-limited, when a token names a key the
//! set does not have (the provider rotated its keys).
//!
//! Signatures are checked with `ring`, the provider rustls already uses here, so the broker
//! has one cryptographic library: RS256/384/512, PS256/384/512 (RSA of 2048 to 8192 bits),
//! ES256, ES384 and EdDSA (Ed25519). `none` and the HMAC algorithms are refused: a key set
//! holds public keys only.

use std::path::PathBuf;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use parking_lot::{Mutex, RwLock};
use ring::signature::{self, RsaPublicKeyComponents, UnparsedPublicKey};
use serde_json::Value;

/// The largest key set document read (a provider's set is a few KiB).
pub const MAX_JWKS_BYTES: usize = 1 << 20;

/// The most keys kept from one set.
const MAX_KEYS: usize = 256;

/// A JWS signature algorithm a key set can verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    Rs256,
    /// RSASSA-PKCS1-v1_5 with SHA-384.
    Rs384,
    /// RSASSA-PKCS1-v1_5 with SHA-512.
    Rs512,
    /// RSASSA-PSS with SHA-256.
    Ps256,
    /// RSASSA-PSS with SHA-384.
    Ps384,
    /// RSASSA-PSS with SHA-512.
    Ps512,
    /// ECDSA on P-256 with SHA-256.
    Es256,
    /// ECDSA on P-384 with SHA-384.
    Es384,
    /// Ed25519.
    EdDsa,
}

impl Algorithm {
    /// The algorithm of a JWS header's `alg`, if one a public key can verify.
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "RS256" => Algorithm::Rs256,
            "RS384" => Algorithm::Rs384,
            "RS512" => Algorithm::Rs512,
            "PS256" => Algorithm::Ps256,
            "PS384" => Algorithm::Ps384,
            "PS512" => Algorithm::Ps512,
            "ES256" => Algorithm::Es256,
            "ES384" => Algorithm::Es384,
            "EdDSA" => Algorithm::EdDsa,
            _ => return None,
        })
    }

    /// The JWS name.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Rs256 => "RS256",
            Algorithm::Rs384 => "RS384",
            Algorithm::Rs512 => "RS512",
            Algorithm::Ps256 => "PS256",
            Algorithm::Ps384 => "PS384",
            Algorithm::Ps512 => "PS512",
            Algorithm::Es256 => "ES256",
            Algorithm::Es384 => "ES384",
            Algorithm::EdDsa => "EdDSA",
        }
    }

    fn rsa_parameters(self) -> Option<&'static signature::RsaParameters> {
        Some(match self {
            Algorithm::Rs256 => &signature::RSA_PKCS1_2048_8192_SHA256,
            Algorithm::Rs384 => &signature::RSA_PKCS1_2048_8192_SHA384,
            Algorithm::Rs512 => &signature::RSA_PKCS1_2048_8192_SHA512,
            Algorithm::Ps256 => &signature::RSA_PSS_2048_8192_SHA256,
            Algorithm::Ps384 => &signature::RSA_PSS_2048_8192_SHA384,
            Algorithm::Ps512 => &signature::RSA_PSS_2048_8192_SHA512,
            _ => return None,
        })
    }

    /// Whether `signature` by `key` over `message` verifies with this algorithm (false when
    /// the key is of another kind).
    fn verify(self, key: &PublicKey, message: &[u8], sig: &[u8]) -> bool {
        match (key, self) {
            (PublicKey::Rsa { n, e }, _) => self.rsa_parameters().is_some_and(|params| {
                RsaPublicKeyComponents { n, e }
                    .verify(params, message, sig)
                    .is_ok()
            }),
            (PublicKey::Ec { curve, point }, Algorithm::Es256 | Algorithm::Es384) => {
                let algorithm = match (curve, self) {
                    (Curve::P256, Algorithm::Es256) => &signature::ECDSA_P256_SHA256_FIXED,
                    (Curve::P384, Algorithm::Es384) => &signature::ECDSA_P384_SHA384_FIXED,
                    _ => return false,
                };
                UnparsedPublicKey::new(algorithm, point)
                    .verify(message, sig)
                    .is_ok()
            }
            (PublicKey::Ed25519(x), Algorithm::EdDsa) => {
                UnparsedPublicKey::new(&signature::ED25519, x)
                    .verify(message, sig)
                    .is_ok()
            }
            _ => false,
        }
    }

    /// Whether a key of this kind can verify this algorithm.
    fn fits(self, key: &PublicKey) -> bool {
        match key {
            PublicKey::Rsa { .. } => self.rsa_parameters().is_some(),
            PublicKey::Ec {
                curve: Curve::P256, ..
            } => self == Algorithm::Es256,
            PublicKey::Ec {
                curve: Curve::P384, ..
            } => self == Algorithm::Es384,
            PublicKey::Ed25519(_) => self == Algorithm::EdDsa,
        }
    }
}

/// An elliptic curve of an `EC` key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Curve {
    P256,
    P384,
}

/// A public key's material.
#[derive(Debug, Clone, PartialEq, Eq)]
enum PublicKey {
    /// Modulus and exponent, big-endian without leading zeros.
    Rsa { n: Vec<u8>, e: Vec<u8> },
    /// The uncompressed point `04 || x || y`.
    Ec { curve: Curve, point: Vec<u8> },
    /// The 32-byte public key.
    Ed25519(Vec<u8>),
}

/// One verification key of a set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Jwk {
    /// `kid`: which key a token's header names.
    pub kid: Option<String>,
    /// `alg`, when the set restricts the key to one algorithm.
    alg: Option<String>,
    key: PublicKey,
}

impl Jwk {
    /// Parses one key of a set; `Err` says why it is of no use for verifying signatures.
    fn parse(key: &Value) -> Result<Jwk, String> {
        let text = |name: &str| key.get(name).and_then(Value::as_str);
        let bytes = |name: &str| -> Result<Vec<u8>, String> {
            let value = text(name).ok_or_else(|| format!("no '{name}'"))?;
            B64URL
                .decode(value.trim_end_matches('='))
                .map_err(|_| format!("'{name}' is not base64url"))
        };
        if text("use").is_some_and(|u| u != "sig") {
            return Err("not a signing key (use is not sig)".into());
        }
        let material = match text("kty") {
            Some("RSA") => PublicKey::Rsa {
                n: without_leading_zeros(bytes("n")?),
                e: without_leading_zeros(bytes("e")?),
            },
            Some("EC") => {
                let (curve, len) = match text("crv") {
                    Some("P-256") => (Curve::P256, 32),
                    Some("P-384") => (Curve::P384, 48),
                    other => return Err(format!("unsupported EC curve {other:?}")),
                };
                let (x, y) = (bytes("x")?, bytes("y")?);
                if x.len() != len || y.len() != len {
                    return Err("EC coordinates of the wrong length".into());
                }
                let mut point = Vec::with_capacity(1 + 2 * len);
                point.push(4);
                point.extend_from_slice(&x);
                point.extend_from_slice(&y);
                PublicKey::Ec { curve, point }
            }
            Some("OKP") if text("crv") == Some("Ed25519") => PublicKey::Ed25519(bytes("x")?),
            other => return Err(format!("unsupported key type {other:?}")),
        };
        Ok(Jwk {
            kid: text("kid").map(String::from),
            alg: text("alg").map(String::from),
            key: material,
        })
    }

    /// Whether this key may verify a token signed with `alg`.
    fn fits(&self, alg: Algorithm) -> bool {
        alg.fits(&self.key) && self.alg.as_deref().is_none_or(|a| a == alg.name())
    }
}

fn without_leading_zeros(mut bytes: Vec<u8>) -> Vec<u8> {
    let zeros = bytes.iter().take_while(|&&b| b == 0).count();
    bytes.drain(..zeros);
    bytes
}

/// The usable keys of a JSON Web Key Set.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeySet {
    keys: Vec<Jwk>,
}

impl KeySet {
    /// Parses a set (`{"keys": [...]}`), keeping the keys that can verify signatures and
    /// logging the others (an encryption key or an unknown type is no reason to refuse the
    /// whole set).
    pub fn parse(text: &str) -> Result<KeySet, String> {
        let doc: Value =
            serde_json::from_str(text).map_err(|e| format!("the key set is not JSON: {e}"))?;
        let Some(entries) = doc.get("keys").and_then(Value::as_array) else {
            return Err("the key set has no 'keys' array".into());
        };
        let mut keys = Vec::new();
        for entry in entries.iter().take(MAX_KEYS) {
            match Jwk::parse(entry) {
                Ok(key) => keys.push(key),
                Err(why) => {
                    let kid = entry.get("kid").and_then(Value::as_str).unwrap_or("");
                    tracing::debug!(kid, reason = %why, "JWKS key skipped");
                }
            }
        }
        Ok(KeySet { keys })
    }

    /// How many usable keys it has.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether it has no usable key.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// What the keys of this set say about `signature` over `message`.
    fn check(&self, kid: Option<&str>, alg: Algorithm, message: &[u8], sig: &[u8]) -> KeyCheck {
        let mut candidates = self
            .keys
            .iter()
            .filter(|k| kid.is_none_or(|kid| k.kid.as_deref() == Some(kid)) && k.fits(alg))
            .peekable();
        if candidates.peek().is_none() {
            return KeyCheck::NoKey;
        }
        if candidates.any(|k| alg.verify(&k.key, message, sig)) {
            KeyCheck::Verified
        } else {
            KeyCheck::BadSignature
        }
    }
}

enum KeyCheck {
    Verified,
    BadSignature,
    NoKey,
}

/// Where a key set comes from. `fetch` may block (it runs off the async threads).
pub trait JwksSource: Send + Sync {
    /// The location, for logs.
    fn location(&self) -> String;
    /// The key set document.
    fn fetch(&self) -> Result<String, String>;
}

/// A key set in a file (`file:` URLs).
pub struct FileSource {
    path: PathBuf,
}

impl FileSource {
    /// The set in the file at `path`.
    pub fn new(path: PathBuf) -> Self {
        FileSource { path }
    }
}

impl JwksSource for FileSource {
    fn location(&self) -> String {
        self.path.display().to_string()
    }

    fn fetch(&self) -> Result<String, String> {
        let read = |e: std::io::Error| format!("cannot read {}: {e}", self.path.display());
        let len = std::fs::metadata(&self.path).map_err(read)?.len();
        if len > MAX_JWKS_BYTES as u64 {
            return Err(format!(
                "{} is {len} bytes, more than a key set's {MAX_JWKS_BYTES}",
                self.path.display()
            ));
        }
        std::fs::read_to_string(&self.path).map_err(read)
    }
}

/// Why a token's signature was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// No key of the set has the token's `kid` (or fits its algorithm).
    #[error("no key in the JWKS for kid {kid:?} and alg {alg}")]
    NoKey {
        /// The token's `kid`.
        kid: Option<String>,
        /// The token's algorithm.
        alg: &'static str,
    },
    /// The key was found, the signature does not verify with it.
    #[error("the signature does not verify with the JWKS key")]
    BadSignature,
}

/// The keys of one endpoint, refreshed from its source.
pub struct JwksCache {
    source: Box<dyn JwksSource>,
    keys: RwLock<Arc<KeySet>>,
    /// When the last refresh for an unknown key ran (ms since the epoch); held while one runs
    /// so that concurrent logins with the new key wait for it instead of fetching again.
    last_unknown_key_refresh: Mutex<Option<i64>>,
}

impl JwksCache {
    /// The least time between two refreshes caused by unknown keys: a client sending made-up
    /// `kid`s cannot make the broker fetch more often than this.
    pub const UNKNOWN_KEY_REFRESH_INTERVAL_MS: i64 = 10_000;

    /// An empty cache over `source` (call [`JwksCache::refresh`] to load it).
    pub fn new(source: Box<dyn JwksSource>) -> Self {
        JwksCache {
            source,
            keys: RwLock::new(Arc::new(KeySet::default())),
            last_unknown_key_refresh: Mutex::new(None),
        }
    }

    /// Where the keys come from.
    pub fn location(&self) -> String {
        self.source.location()
    }

    /// The current keys.
    pub fn keys(&self) -> Arc<KeySet> {
        self.keys.read().clone()
    }

    /// Fetches the set again and replaces the keys; on failure the old keys stay.
    /// Returns how many usable keys the new set has.
    pub fn refresh(&self) -> Result<usize, String> {
        let set = KeySet::parse(&self.source.fetch()?)?;
        let count = set.len();
        *self.keys.write() = Arc::new(set);
        Ok(count)
    }

    /// Checks `sig` over `message` against the key named `kid` for `alg`. A key the set does
    /// not have triggers one refresh (at most every
    /// [`JwksCache::UNKNOWN_KEY_REFRESH_INTERVAL_MS`]) and a second look.
    pub fn verify(
        &self,
        kid: Option<&str>,
        alg: Algorithm,
        message: &[u8],
        sig: &[u8],
        now_ms: i64,
    ) -> Result<(), SignatureError> {
        let keys = self.keys();
        let outcome = match keys.check(kid, alg, message, sig) {
            KeyCheck::NoKey if self.refresh_for_unknown_key(&keys, now_ms) => {
                self.keys().check(kid, alg, message, sig)
            }
            other => other,
        };
        match outcome {
            KeyCheck::Verified => Ok(()),
            KeyCheck::BadSignature => Err(SignatureError::BadSignature),
            KeyCheck::NoKey => Err(SignatureError::NoKey {
                kid: kid.map(String::from),
                alg: alg.name(),
            }),
        }
    }

    /// Refreshes the keys for a token whose key `seen` did not have, unless one did so
    /// within the interval; true when the keys may have changed since `seen`.
    fn refresh_for_unknown_key(&self, seen: &Arc<KeySet>, now_ms: i64) -> bool {
        let mut last = self.last_unknown_key_refresh.lock();
        if !Arc::ptr_eq(seen, &self.keys()) {
            return true;
        }
        if last.is_some_and(|at| now_ms - at < Self::UNKNOWN_KEY_REFRESH_INTERVAL_MS) {
            return false;
        }
        *last = Some(now_ms);
        match self.refresh() {
            Ok(count) => {
                tracing::info!(
                    source = %self.location(),
                    keys = count,
                    "JWKS refreshed for a token signed with a key it did not have"
                );
                true
            }
            Err(e) => {
                tracing::warn!(source = %self.location(), error = %e, "JWKS refresh failed; keeping the previous keys");
                false
            }
        }
    }
}

//! The SASL servers (PLAIN, SCRAM-SHA-256/512, OAUTHBEARER unsecured and signed) and their
//! parsers (key sets included) must never panic, whatever tokens a client sends, in any order.
//! Run: `cargo +nightly fuzz run sasl_server` from the repository root.
#![no_main]

use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use sluice_security::sasl::jwks::{JwksCache, JwksSource, KeySet};
use sluice_security::sasl::oauthbearer::{
    OAuthBearerServer, TokenRules, TokenValidator, parse_client_response, validate_signed,
    validate_unsecured,
};
use sluice_security::sasl::plain::{PlainServer, parse_plain};
use sluice_security::sasl::scram::{ScramServer, parse_client_final, parse_client_first};
use sluice_security::sasl::{CredentialStore, ScramCredential, ScramMechanism, ServerMechanism};

/// One user, `alice`, with the password `alice-secret` (derived once: PBKDF2 is slow).
struct OneUser;

impl CredentialStore for OneUser {
    fn scram_credential(&self, user: &str, mechanism: ScramMechanism) -> Option<ScramCredential> {
        static CREDENTIALS: OnceLock<[ScramCredential; 2]> = OnceLock::new();
        let [sha256, sha512] = CREDENTIALS.get_or_init(|| {
            [ScramMechanism::Sha256, ScramMechanism::Sha512]
                .map(|m| ScramCredential::derive(m, b"alice-secret", b"fuzz-salt", 4096))
        });
        (user == "alice").then(|| match mechanism {
            ScramMechanism::Sha256 => sha256.clone(),
            ScramMechanism::Sha512 => sha512.clone(),
        })
    }
}

/// A key set with one RSA and one EC key, never fetched again.
struct FixedKeys;

impl JwksSource for FixedKeys {
    fn location(&self) -> String {
        "fuzz".into()
    }

    fn fetch(&self) -> Result<String, String> {
        Ok(r#"{"keys":[{"kty":"RSA","kid":"r","n":"sXchDaQebHnPiGvyDOAT4saGEUetSyo9MKLOoWFsueri23bOdgWp4Dy1WlUzewbgBHod5pcM9H95GQRV3JDXboIRROSBigeC5yjU1hGzHHyXss8UDprecbAYxknTcQkhslANGRUZmdTOQ5qTRsLAt6BTYuyvVRdhS8exSZEy_c4gs_7svlJJQ4H9_NxsiIoLwAEk7-Q3UXERGYw_75IDrGA84-lA_-Ct4eTlXHBIY2EaV7t7LjJaynVJCpkv4LKjTTAumiGUIuQhrNhZLuF_RJLqHpM2kgWFLU7-VTdL1VbC2tejvcI2BlMkEpk1BzBZI0KQB0GaDWFLN-aEAw3vRw","e":"AQAB"},{"kty":"EC","kid":"e","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]}"#.into())
    }
}

fn keys() -> &'static Arc<JwksCache> {
    static KEYS: OnceLock<Arc<JwksCache>> = OnceLock::new();
    KEYS.get_or_init(|| {
        let cache = JwksCache::new(Box::new(FixedKeys));
        let _ = cache.refresh();
        Arc::new(cache)
    })
}

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = KeySet::parse(text);
    }
    let _ = parse_plain(data);
    let _ = parse_client_first(data);
    let _ = parse_client_final(data);
    if let Some(token) = parse_client_response(data) {
        let _ = validate_unsecured(&token, &TokenRules::default(), 1_700_000_000_000);
        let _ = validate_signed(&token, &TokenRules::default(), keys(), 1_700_000_000_000);
    }
    // The first byte picks the mechanism; the rest are tokens separated by 0xff.
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    let store: Arc<dyn CredentialStore> = Arc::new(OneUser);
    let mut server: Box<dyn ServerMechanism> = match which % 5 {
        0 => Box::new(PlainServer::new(store)),
        1 => Box::new(ScramServer::new(ScramMechanism::Sha256, store, [7; 32])),
        2 => Box::new(ScramServer::new(ScramMechanism::Sha512, store, [7; 32])),
        3 => Box::new(OAuthBearerServer::new(
            TokenValidator::Unsecured(TokenRules::default()),
            1_700_000_000_000,
        )),
        _ => Box::new(OAuthBearerServer::new(
            TokenValidator::Jwks {
                rules: TokenRules::default(),
                keys: keys().clone(),
            },
            1_700_000_000_000,
        )),
    };
    for token in rest.split(|&b| b == 0xff) {
        let _ = server.step(token);
    }
});

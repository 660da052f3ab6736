//! The SASL servers (PLAIN, SCRAM-SHA-256/512, OAUTHBEARER) and their parsers must never
//! panic, whatever tokens a client sends, in any order.
//! Run: `cargo +nightly fuzz run sasl_server` from the repository root.
#![no_main]

use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use sluice_security::sasl::oauthbearer::{
    OAuthBearerServer, UnsecuredValidation, parse_client_response, validate_unsecured,
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

fuzz_target!(|data: &[u8]| {
    let _ = parse_plain(data);
    let _ = parse_client_first(data);
    let _ = parse_client_final(data);
    if let Some(token) = parse_client_response(data) {
        let _ = validate_unsecured(&token, &UnsecuredValidation::default(), 1_700_000_000_000);
    }
    // The first byte picks the mechanism; the rest are tokens separated by 0xff.
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    let store: Arc<dyn CredentialStore> = Arc::new(OneUser);
    let mut server: Box<dyn ServerMechanism> = match which % 4 {
        0 => Box::new(PlainServer::new(store)),
        1 => Box::new(ScramServer::new(ScramMechanism::Sha256, store, [7; 32])),
        2 => Box::new(ScramServer::new(ScramMechanism::Sha512, store, [7; 32])),
        _ => Box::new(OAuthBearerServer::new(
            UnsecuredValidation::default(),
            1_700_000_000_000,
        )),
    };
    for token in rest.split(|&b| b == 0xff) {
        let _ = server.step(token);
    }
});

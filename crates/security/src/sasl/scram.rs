//! SCRAM-SHA-256 and SCRAM-SHA-512 (RFC 5802, RFC 7677) as Kafka's `ScramSaslServer`: the
//! credential is stored salted (StoredKey, ServerKey, salt, iterations), never the password.
//!
//! librdkafka before 2.6.1 repeats its own nonce in the final message (`r=<client
//! nonce><client nonce><server nonce>`); Kafka 3.8-3.9 accepted that and so does Sluice,
//! computing the proof over the bytes received, so Debian's kcat (librdkafka 2.0.2) logs in.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256, Sha512};
use subtle::ConstantTimeEq;

use super::{AuthFailure, ClientMechanism, CredentialStore, Mechanism, ServerMechanism, Step};

/// The fewest iterations Kafka accepts (and kafkajs demands).
pub const MIN_ITERATIONS: u32 = 4096;
/// The most iterations Kafka accepts (`ScramControlManager.MAX_ITERATIONS`).
pub const MAX_ITERATIONS: u32 = 16384;
/// The longest user name or nonce accepted in a message (a message is one frame, already
/// bounded; this keeps log lines and stored names sane).
const MAX_FIELD: usize = 1024;

/// The hash a SCRAM mechanism uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum ScramMechanism {
    /// SCRAM-SHA-256 (Kafka's type 1).
    #[serde(rename = "SCRAM-SHA-256")]
    Sha256,
    /// SCRAM-SHA-512 (Kafka's type 2).
    #[serde(rename = "SCRAM-SHA-512")]
    Sha512,
}

impl ScramMechanism {
    /// Both, in Kafka's type order.
    pub const ALL: [ScramMechanism; 2] = [ScramMechanism::Sha256, ScramMechanism::Sha512];

    /// The IANA name.
    pub fn name(self) -> &'static str {
        match self {
            ScramMechanism::Sha256 => "SCRAM-SHA-256",
            ScramMechanism::Sha512 => "SCRAM-SHA-512",
        }
    }

    /// Kafka's `ScramMechanism` type code (DescribeUserScramCredentials).
    pub fn kafka_type(self) -> i8 {
        match self {
            ScramMechanism::Sha256 => 1,
            ScramMechanism::Sha512 => 2,
        }
    }

    /// The mechanism of Kafka's type code.
    pub fn from_kafka_type(code: i8) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.kafka_type() == code)
    }

    /// The mechanism named `name` (case-insensitive).
    pub fn for_name(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|m| m.name().eq_ignore_ascii_case(name))
    }

    fn hash(self, data: &[u8]) -> Vec<u8> {
        match self {
            ScramMechanism::Sha256 => Sha256::digest(data).to_vec(),
            ScramMechanism::Sha512 => Sha512::digest(data).to_vec(),
        }
    }

    fn hmac(self, key: &[u8], data: &[u8]) -> Vec<u8> {
        fn mac<M: Mac + hmac::digest::KeyInit>(key: &[u8], data: &[u8]) -> Vec<u8> {
            // HMAC takes keys of any length: new_from_slice cannot fail.
            match <M as hmac::digest::KeyInit>::new_from_slice(key) {
                Ok(mut m) => {
                    m.update(data);
                    m.finalize().into_bytes().to_vec()
                }
                Err(_) => Vec::new(),
            }
        }
        match self {
            ScramMechanism::Sha256 => mac::<Hmac<Sha256>>(key, data),
            ScramMechanism::Sha512 => mac::<Hmac<Sha512>>(key, data),
        }
    }

    /// PBKDF2 with this mechanism's HMAC: the SaltedPassword of RFC 5802.
    pub fn salted_password(self, password: &[u8], salt: &[u8], iterations: u32) -> Vec<u8> {
        match self {
            ScramMechanism::Sha256 => {
                let mut out = [0u8; 32];
                pbkdf2::pbkdf2_hmac::<Sha256>(password, salt, iterations, &mut out);
                out.to_vec()
            }
            ScramMechanism::Sha512 => {
                let mut out = [0u8; 64];
                pbkdf2::pbkdf2_hmac::<Sha512>(password, salt, iterations, &mut out);
                out.to_vec()
            }
        }
    }
}

/// A stored SCRAM credential: what the server needs to check a proof, and nothing from
/// which the password could be read back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScramCredential {
    /// The salt.
    pub salt: Vec<u8>,
    /// H(HMAC(SaltedPassword, "Client Key")).
    pub stored_key: Vec<u8>,
    /// HMAC(SaltedPassword, "Server Key").
    pub server_key: Vec<u8>,
    /// PBKDF2 iterations.
    pub iterations: u32,
}

impl ScramCredential {
    /// Derives the credential of `password` with `salt` and `iterations`.
    pub fn derive(
        mechanism: ScramMechanism,
        password: &[u8],
        salt: &[u8],
        iterations: u32,
    ) -> Self {
        let salted = mechanism.salted_password(password, salt, iterations);
        Self::from_salted_password(mechanism, &salted, salt, iterations)
    }

    /// The credential from a SaltedPassword (AlterUserScramCredentials carries one).
    pub fn from_salted_password(
        mechanism: ScramMechanism,
        salted_password: &[u8],
        salt: &[u8],
        iterations: u32,
    ) -> Self {
        let client_key = mechanism.hmac(salted_password, b"Client Key");
        ScramCredential {
            salt: salt.to_vec(),
            stored_key: mechanism.hash(&client_key),
            server_key: mechanism.hmac(salted_password, b"Server Key"),
            iterations,
        }
    }

    /// A new credential for `password` with a random salt and `iterations`.
    pub fn generate(mechanism: ScramMechanism, password: &[u8], iterations: u32) -> Self {
        Self::derive(
            mechanism,
            password,
            &super::random_bytes::<32>(),
            iterations,
        )
    }

    /// Whether `password` is the password of this credential (for PLAIN over SCRAM
    /// credentials), compared in constant time.
    pub fn matches_password(&self, mechanism: ScramMechanism, password: &[u8]) -> bool {
        let derived = Self::derive(mechanism, password, &self.salt, self.iterations);
        bool::from(derived.stored_key.ct_eq(&self.stored_key))
    }
}

/// Decodes a SCRAM `saslname`: `=2C` is `,`, `=3D` is `=`, any other `=` is invalid.
pub fn decode_saslname(name: &str) -> Option<String> {
    let mut out = String::with_capacity(name.len());
    let mut rest = name;
    while let Some(i) = rest.find('=') {
        out.push_str(rest.get(..i)?);
        let escape = rest.get(i..i + 3)?;
        out.push(match escape {
            "=2C" => ',',
            "=3D" => '=',
            _ => return None,
        });
        rest = rest.get(i + 3..)?;
    }
    out.push_str(rest);
    Some(out)
}

/// Encodes a user name as a SCRAM `saslname`.
pub fn encode_saslname(name: &str) -> String {
    name.replace('=', "=3D").replace(',', "=2C")
}

/// The parts of a client-first message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientFirst {
    /// The GS2 header as sent (`n,,` or `n,a=<authzid>,`).
    pub gs2_header: String,
    /// The user name (decoded).
    pub user: String,
    /// The client nonce.
    pub nonce: String,
    /// Whether the client asked for delegation-token authentication (`tokenauth=true`).
    pub token_auth: bool,
    /// The message without the GS2 header: part of the AuthMessage.
    pub bare: String,
}

/// Parses a client-first message (Kafka's `ClientFirstMessage`): only the `n` GS2 flag
/// (no channel binding), an optional authzid that must equal the user.
pub fn parse_client_first(message: &[u8]) -> Option<ClientFirst> {
    let text = std::str::from_utf8(message).ok()?;
    let rest = text.strip_prefix("n,")?;
    let (authzid, bare) = rest.split_once(',')?;
    let authzid = match authzid {
        "" => None,
        a => Some(decode_saslname(a.strip_prefix("a=")?)?),
    };
    let mut fields = bare.split(',');
    let user = decode_saslname(fields.next()?.strip_prefix("n=")?)?;
    let nonce = fields.next()?.strip_prefix("r=")?.to_string();
    let mut token_auth = false;
    for extension in fields {
        let (key, value) = extension.split_once('=')?;
        if key == "tokenauth" {
            token_auth = value.eq_ignore_ascii_case("true");
        }
    }
    if user.is_empty() || nonce.is_empty() || user.len() > MAX_FIELD || nonce.len() > MAX_FIELD {
        return None;
    }
    if authzid.as_deref().is_some_and(|a| a != user) {
        return None;
    }
    Some(ClientFirst {
        gs2_header: text.get(..text.len() - bare.len())?.to_string(),
        user,
        nonce,
        token_auth,
        bare: bare.to_string(),
    })
}

/// The parts of a client-final message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientFinal {
    /// The channel binding, base64 as sent.
    pub channel_binding: String,
    /// The nonce as sent.
    pub nonce: String,
    /// The message up to (not including) `,p=`: part of the AuthMessage.
    pub without_proof: String,
    /// The client proof.
    pub proof: Vec<u8>,
}

/// Parses a client-final message (`c=...,r=...[,ext],p=...`).
pub fn parse_client_final(message: &[u8]) -> Option<ClientFinal> {
    let text = std::str::from_utf8(message).ok()?;
    let (without_proof, proof) = text.rsplit_once(",p=")?;
    let mut fields = without_proof.split(',');
    let channel_binding = fields.next()?.strip_prefix("c=")?.to_string();
    let nonce = fields.next()?.strip_prefix("r=")?.to_string();
    let proof = B64.decode(proof).ok()?;
    Some(ClientFinal {
        channel_binding,
        nonce,
        without_proof: without_proof.to_string(),
        proof,
    })
}

/// Whether the nonce of a client-final message is the one the server sent: exactly
/// `client + server`, or (librdkafka before 2.6.1) the client nonce followed by that.
pub fn nonce_accepted(received: &str, client_nonce: &str, server_nonce: &str) -> bool {
    let full = format!("{client_nonce}{server_nonce}");
    received == full
        || (received.len() == client_nonce.len() + full.len()
            && received.starts_with(client_nonce)
            && received.ends_with(&full))
}

enum ServerState {
    /// Waiting for the client-first message.
    Initial,
    /// Sent server-first; waiting for the client-final message.
    SentFirst(Box<SentFirst>),
    /// Done (either way).
    Finished,
}

/// What the server keeps between its first message and the client's final one.
struct SentFirst {
    first: ClientFirst,
    server_first: String,
    server_nonce: String,
    /// None for an unknown user: the exchange goes on with a made-up salt and fails at the
    /// proof, so the client cannot tell.
    credential: Option<ScramCredential>,
}

/// The server side of one SCRAM authentication.
pub struct ScramServer {
    mechanism: ScramMechanism,
    store: std::sync::Arc<dyn CredentialStore>,
    state: ServerState,
    /// Keys the made-up salts of unknown users, so each gets the same one every time.
    fake_salt_key: [u8; 32],
}

impl ScramServer {
    /// A new exchange for `mechanism` against `store`; `fake_salt_key` is a per-process
    /// secret that derives salts for unknown users.
    pub fn new(
        mechanism: ScramMechanism,
        store: std::sync::Arc<dyn CredentialStore>,
        fake_salt_key: [u8; 32],
    ) -> Self {
        ScramServer {
            mechanism,
            store,
            state: ServerState::Initial,
            fake_salt_key,
        }
    }

    fn fail(&mut self) -> Step {
        self.state = ServerState::Finished;
        Step::Failed(AuthFailure::invalid_credentials(Mechanism::Scram(
            self.mechanism,
        )))
    }

    fn client_first(&mut self, token: &[u8]) -> Step {
        let Some(first) = parse_client_first(token) else {
            self.state = ServerState::Finished;
            return Step::Failed(AuthFailure::new(format!(
                "Invalid SCRAM client first message with SASL mechanism {}",
                self.mechanism.name()
            )));
        };
        if first.token_auth {
            self.state = ServerState::Finished;
            return Step::Failed(AuthFailure::new(
                "Delegation tokens are not supported by this broker",
            ));
        }
        let credential = self.store.scram_credential(&first.user, self.mechanism);
        let (salt, iterations) = match &credential {
            Some(c) => (c.salt.clone(), c.iterations),
            None => (
                self.mechanism
                    .hmac(&self.fake_salt_key, first.user.as_bytes())
                    .into_iter()
                    .take(32)
                    .collect(),
                MIN_ITERATIONS,
            ),
        };
        let server_nonce = B64.encode(super::random_bytes::<24>());
        let server_first = format!(
            "r={}{server_nonce},s={},i={iterations}",
            first.nonce,
            B64.encode(&salt)
        );
        let reply = server_first.clone().into_bytes();
        self.state = ServerState::SentFirst(Box::new(SentFirst {
            first,
            server_first,
            server_nonce,
            credential,
        }));
        Step::Continue(reply)
    }

    fn client_final(&mut self, token: &[u8]) -> Step {
        let ServerState::SentFirst(sent) =
            std::mem::replace(&mut self.state, ServerState::Finished)
        else {
            return self.fail();
        };
        let SentFirst {
            first,
            server_first,
            server_nonce,
            credential,
        } = *sent;
        let Some(last) = parse_client_final(token) else {
            return self.fail();
        };
        let binding_ok = B64
            .decode(&last.channel_binding)
            .is_ok_and(|b| b == first.gs2_header.as_bytes());
        if !binding_ok || !nonce_accepted(&last.nonce, &first.nonce, &server_nonce) {
            return self.fail();
        }
        let Some(credential) = credential else {
            return self.fail();
        };
        let auth_message = format!("{},{server_first},{}", first.bare, last.without_proof);
        let client_signature = self
            .mechanism
            .hmac(&credential.stored_key, auth_message.as_bytes());
        if last.proof.len() != client_signature.len() {
            return self.fail();
        }
        let client_key: Vec<u8> = last
            .proof
            .iter()
            .zip(&client_signature)
            .map(|(p, s)| p ^ s)
            .collect();
        let stored = self.mechanism.hash(&client_key);
        if !bool::from(stored.ct_eq(&credential.stored_key)) {
            return self.fail();
        }
        let server_signature = self
            .mechanism
            .hmac(&credential.server_key, auth_message.as_bytes());
        Step::Done {
            user: first.user,
            reply: format!("v={}", B64.encode(server_signature)).into_bytes(),
            expires_at_ms: None,
        }
    }
}

impl ServerMechanism for ScramServer {
    fn mechanism(&self) -> Mechanism {
        Mechanism::Scram(self.mechanism)
    }

    fn step(&mut self, token: &[u8]) -> Step {
        match self.state {
            ServerState::Initial => self.client_first(token),
            ServerState::SentFirst(_) => self.client_final(token),
            ServerState::Finished => self.fail(),
        }
    }
}

/// The client side of SCRAM (for the CLI and tests).
pub struct ScramClient {
    mechanism: ScramMechanism,
    user: String,
    password: String,
    nonce: String,
    state: ClientState,
}

enum ClientState {
    Initial,
    SentFirst,
    SentFinal { server_signature: Vec<u8> },
    Done,
}

impl ScramClient {
    /// A client authenticating `user` with `password`.
    pub fn new(mechanism: ScramMechanism, user: &str, password: &str) -> Self {
        Self::with_nonce(
            mechanism,
            user,
            password,
            &B64.encode(super::random_bytes::<24>()),
        )
    }

    /// A client with a fixed nonce (tests, RFC vectors).
    pub fn with_nonce(mechanism: ScramMechanism, user: &str, password: &str, nonce: &str) -> Self {
        ScramClient {
            mechanism,
            user: user.to_string(),
            password: password.to_string(),
            nonce: nonce.to_string(),
            state: ClientState::Initial,
        }
    }

    fn bare(&self) -> String {
        format!("n={},r={}", encode_saslname(&self.user), self.nonce)
    }
}

impl ClientMechanism for ScramClient {
    fn initial(&mut self) -> Vec<u8> {
        self.state = ClientState::SentFirst;
        format!("n,,{}", self.bare()).into_bytes()
    }

    fn step(&mut self, server: &[u8]) -> Result<Option<Vec<u8>>, String> {
        match std::mem::replace(&mut self.state, ClientState::Done) {
            ClientState::SentFirst => {
                let text = std::str::from_utf8(server).map_err(|_| "server-first is not UTF-8")?;
                let mut nonce = None;
                let mut salt = None;
                let mut iterations = None;
                for field in text.split(',') {
                    match field.split_at_checked(2) {
                        Some(("r=", v)) => nonce = Some(v.to_string()),
                        Some(("s=", v)) => salt = B64.decode(v).ok(),
                        Some(("i=", v)) => iterations = v.parse::<u32>().ok(),
                        _ => {}
                    }
                }
                let (Some(nonce), Some(salt), Some(iterations)) = (nonce, salt, iterations) else {
                    return Err(format!("malformed SCRAM server-first message: {text}"));
                };
                if !nonce.starts_with(&self.nonce) || nonce.len() == self.nonce.len() {
                    return Err("the server's nonce does not extend ours".into());
                }
                if !(MIN_ITERATIONS..=MAX_ITERATIONS).contains(&iterations) {
                    return Err(format!("the server asks for {iterations} iterations"));
                }
                let salted =
                    self.mechanism
                        .salted_password(self.password.as_bytes(), &salt, iterations);
                let without_proof = format!("c=biws,r={nonce}");
                let auth_message = format!("{},{text},{without_proof}", self.bare());
                let client_key = self.mechanism.hmac(&salted, b"Client Key");
                let stored_key = self.mechanism.hash(&client_key);
                let signature = self.mechanism.hmac(&stored_key, auth_message.as_bytes());
                let proof: Vec<u8> = client_key
                    .iter()
                    .zip(&signature)
                    .map(|(k, s)| k ^ s)
                    .collect();
                let server_key = self.mechanism.hmac(&salted, b"Server Key");
                self.state = ClientState::SentFinal {
                    server_signature: self.mechanism.hmac(&server_key, auth_message.as_bytes()),
                };
                Ok(Some(
                    format!("{without_proof},p={}", B64.encode(proof)).into_bytes(),
                ))
            }
            ClientState::SentFinal { server_signature } => {
                let text = std::str::from_utf8(server).map_err(|_| "server-final is not UTF-8")?;
                let verifier = text
                    .strip_prefix("v=")
                    .and_then(|v| B64.decode(v).ok())
                    .ok_or_else(|| format!("SCRAM authentication failed: {text}"))?;
                if !bool::from(verifier.ct_eq(&server_signature)) {
                    return Err("the server's SCRAM signature is wrong".into());
                }
                Ok(None)
            }
            ClientState::Initial | ClientState::Done => Err("SCRAM exchange out of order".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use std::collections::HashMap;
    use std::sync::Arc;

    use super::*;

    struct Users(HashMap<(String, ScramMechanism), ScramCredential>);

    impl CredentialStore for Users {
        fn scram_credential(&self, user: &str, m: ScramMechanism) -> Option<ScramCredential> {
            self.0.get(&(user.to_string(), m)).cloned()
        }
    }

    fn store(user: &str, password: &str) -> Arc<dyn CredentialStore> {
        let mut map = HashMap::new();
        for m in ScramMechanism::ALL {
            map.insert(
                (user.to_string(), m),
                ScramCredential::generate(m, password.as_bytes(), 4096),
            );
        }
        Arc::new(Users(map))
    }

    /// RFC 7677 section 3's SCRAM-SHA-256 exchange, server side, with its salt and nonces.
    #[test]
    fn rfc7677_vector_verifies() {
        let salt = B64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
        let credential = ScramCredential::derive(ScramMechanism::Sha256, b"pencil", &salt, 4096);
        let client_first = "n,,n=user,r=rOprNGfwEbeRWgbNEkqO";
        let server_first = "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
        let client_final = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
        let first = parse_client_first(client_first.as_bytes()).unwrap();
        let last = parse_client_final(client_final.as_bytes()).unwrap();
        let auth = format!("{},{server_first},{}", first.bare, last.without_proof);
        let sig = ScramMechanism::Sha256.hmac(&credential.stored_key, auth.as_bytes());
        let key: Vec<u8> = last.proof.iter().zip(&sig).map(|(a, b)| a ^ b).collect();
        assert_eq!(ScramMechanism::Sha256.hash(&key), credential.stored_key);
        let server_sig = ScramMechanism::Sha256.hmac(&credential.server_key, auth.as_bytes());
        assert_eq!(
            B64.encode(server_sig),
            "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
        );
    }

    fn run(server: &mut ScramServer, client: &mut ScramClient) -> Result<String, String> {
        let mut token = client.initial();
        loop {
            match server.step(&token) {
                Step::Continue(challenge) => {
                    token = client.step(&challenge)?.ok_or("client finished early")?;
                }
                Step::Done { user, reply, .. } => {
                    assert_eq!(client.step(&reply)?, None);
                    return Ok(user);
                }
                Step::Failed(f) => return Err(f.message),
            }
        }
    }

    #[test]
    fn both_mechanisms_authenticate_and_refuse_alike() {
        let users = store("alice,=x", "secret");
        for m in ScramMechanism::ALL {
            let mut server = ScramServer::new(m, users.clone(), [7; 32]);
            let mut client = ScramClient::new(m, "alice,=x", "secret");
            assert_eq!(run(&mut server, &mut client), Ok("alice,=x".to_string()));
            let expected = format!(
                "Authentication failed during authentication due to invalid credentials with SASL mechanism {}",
                m.name()
            );
            for (user, password) in [("alice,=x", "wrong"), ("bob", "secret")] {
                let mut server = ScramServer::new(m, users.clone(), [7; 32]);
                let mut client = ScramClient::new(m, user, password);
                assert_eq!(
                    run(&mut server, &mut client),
                    Err(expected.clone()),
                    "{user}"
                );
            }
        }
    }

    /// librdkafka before 2.6.1 sends its nonce twice in the final message.
    #[test]
    fn the_legacy_librdkafka_nonce_is_accepted() {
        let users = store("kcat", "pw");
        let m = ScramMechanism::Sha256;
        let mut server = ScramServer::new(m, users, [1; 32]);
        let cnonce = "abcDEF123";
        let Step::Continue(server_first) = server.step(format!("n,,n=kcat,r={cnonce}").as_bytes())
        else {
            panic!("no server-first");
        };
        let server_first = String::from_utf8(server_first).unwrap();
        let full_nonce = server_first
            .split(',')
            .next()
            .unwrap()
            .strip_prefix("r=")
            .unwrap()
            .to_string();
        let fields: HashMap<&str, &str> = server_first
            .split(',')
            .filter_map(|f| f.split_at_checked(2))
            .collect();
        let salt = B64.decode(fields["s="]).unwrap();
        let salted = m.salted_password(b"pw", &salt, 4096);
        let without_proof = format!("c=biws,r={cnonce}{full_nonce}");
        let auth = format!("n=kcat,r={cnonce},{server_first},{without_proof}");
        let client_key = m.hmac(&salted, b"Client Key");
        let sig = m.hmac(&m.hash(&client_key), auth.as_bytes());
        let proof: Vec<u8> = client_key.iter().zip(&sig).map(|(a, b)| a ^ b).collect();
        let last = format!("{without_proof},p={}", B64.encode(proof));
        assert!(matches!(server.step(last.as_bytes()), Step::Done { user, .. } if user == "kcat"));
        assert!(nonce_accepted("cs", "c", "s"));
        assert!(nonce_accepted("ccs", "c", "s"));
        assert!(!nonce_accepted("xcs", "c", "s"));
        assert!(!nonce_accepted("cs2", "c", "s"));
    }

    #[test]
    fn malformed_messages_and_token_auth_are_refused() {
        let users = store("a", "b");
        for bad in [
            &b"y,,n=a,r=x"[..],
            b"n,,n=a",
            b"n,a=b,n=a,r=x",
            b"n,,n=a=41,r=x",
            b"\xff",
            b"n,,n=a,r=x,tokenauth=true",
        ] {
            let mut server = ScramServer::new(ScramMechanism::Sha512, users.clone(), [0; 32]);
            assert!(matches!(server.step(bad), Step::Failed(_)), "{bad:?}");
        }
        assert_eq!(decode_saslname("a=2Cb=3Dc").as_deref(), Some("a,b=c"));
        assert_eq!(encode_saslname("a,b=c"), "a=2Cb=3Dc");
        assert!(parse_client_first(b"n,a=a,n=a,r=x").is_some());
    }

    #[test]
    fn plain_passwords_check_against_the_credential() {
        let c = ScramCredential::generate(ScramMechanism::Sha512, b"pw", 4096);
        assert!(c.matches_password(ScramMechanism::Sha512, b"pw"));
        assert!(!c.matches_password(ScramMechanism::Sha512, b"pw2"));
    }
}

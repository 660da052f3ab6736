//! TLS for listeners and clients, on rustls with the ring provider: server configurations
//! built from PEM files (certificate chain, private key, CA for client certificates),
//! client authentication `none`, `requested` or `required` (Kafka's `ssl.client.auth`),
//! hot reloading of the files, and the principal of a client certificate.

pub mod der;
pub mod dn;
pub mod mapping;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// Kafka's `ssl.client.auth`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// No client certificate is asked for.
    None,
    /// A certificate is asked for; a client without one connects as `User:ANONYMOUS`.
    Requested,
    /// A client without a certificate signed by the CA is refused.
    Required,
}

impl ClientAuth {
    /// Parses `none`, `requested` or `required`.
    pub fn parse(text: &str) -> Result<Self, String> {
        match text.trim().to_ascii_lowercase().as_str() {
            "none" => Ok(ClientAuth::None),
            "requested" => Ok(ClientAuth::Requested),
            "required" => Ok(ClientAuth::Required),
            _ => Err(format!(
                "'{text}' is not a client authentication mode: expected none, requested or required"
            )),
        }
    }
}

/// The files a TLS listener is configured with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The certificate chain (PEM), the server's own certificate first.
    pub cert: PathBuf,
    /// The private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// The CA certificates client certificates must chain to (PEM).
    pub ca: Option<PathBuf>,
    /// Whether clients present certificates.
    pub client_auth: ClientAuth,
}

/// Why a TLS configuration cannot be built; each says which file and what to do.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read or holds no usable PEM.
    #[error("cannot read {what} from {path}: {reason}")]
    File {
        /// What the file should hold.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Why it cannot be used.
        reason: String,
    },
    /// rustls refused the combination (e.g. a key that does not match the certificate).
    #[error("invalid TLS configuration: {0}")]
    Invalid(String),
    /// Client authentication needs a CA file.
    #[error("ssl-client-auth {0} needs --ssl-ca-file with the CA that signs client certificates")]
    NoCa(&'static str),
}

fn file_error(what: &'static str, path: &Path, reason: impl ToString) -> TlsError {
    TlsError::File {
        what,
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}

/// The certificates of a PEM file (at least one).
pub fn load_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let what = "certificates";
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .map_err(|e| file_error(what, path, e))?
        .collect::<Result<_, _>>()
        .map_err(|e| file_error(what, path, e))?;
    if certs.is_empty() {
        return Err(file_error(what, path, "no CERTIFICATE block found"));
    }
    Ok(certs)
}

/// The private key of a PEM file.
pub fn load_private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| file_error("a private key", path, e))
}

/// The ring provider. rustls marks it deprecated for lacking post-quantum key exchange,
/// which no Kafka client negotiates; ring keeps the build free of aws-lc's toolchain.
#[allow(deprecated)]
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn roots(path: &Path) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in load_certificates(path)? {
        roots
            .add(cert)
            .map_err(|e| file_error("CA certificates", path, e))?;
    }
    Ok(roots)
}

/// A server configuration from `files`: TLS 1.3 and 1.2, the client certificate checks
/// `client_auth` asks for, and the certificate's expiry (seconds since the epoch).
pub fn server_config(files: &TlsFiles) -> Result<(Arc<ServerConfig>, i64), TlsError> {
    let chain = load_certificates(&files.cert)?;
    let key = load_private_key(&files.key)?;
    let not_after = chain
        .first()
        .and_then(|c| dn::summarize_certificate(c).ok())
        .map_or(0, |s| s.not_after);
    let builder = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| TlsError::Invalid(e.to_string()))?;
    let builder = match (files.client_auth, &files.ca) {
        (ClientAuth::None, _) => builder.with_no_client_auth(),
        (mode, Some(ca)) => {
            let verifier =
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots(ca)?), provider());
            let verifier = if mode == ClientAuth::Requested {
                verifier.allow_unauthenticated()
            } else {
                verifier
            };
            builder.with_client_cert_verifier(
                verifier
                    .build()
                    .map_err(|e| TlsError::Invalid(e.to_string()))?,
            )
        }
        (ClientAuth::Requested, None) => return Err(TlsError::NoCa("requested")),
        (ClientAuth::Required, None) => return Err(TlsError::NoCa("required")),
    };
    let config = builder.with_single_cert(chain, key).map_err(|e| {
        TlsError::Invalid(format!(
            "{} and {}: {e}",
            files.cert.display(),
            files.key.display()
        ))
    })?;
    Ok((Arc::new(config), not_after))
}

/// The modification times of a configuration's files, to notice when they change.
pub fn file_stamps(files: &TlsFiles) -> Vec<Option<SystemTime>> {
    [Some(&files.cert), Some(&files.key), files.ca.as_ref()]
        .into_iter()
        .flatten()
        .map(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok())
        .collect()
}

/// A client configuration: servers must present a certificate chaining to `ca` (or, with
/// none, to nothing: `ca` is required), and with `identity` the client presents that
/// certificate chain and key (mTLS).
pub fn client_config(
    ca: &Path,
    identity: Option<(&Path, &Path)>,
) -> Result<Arc<ClientConfig>, TlsError> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| TlsError::Invalid(e.to_string()))?
        .with_root_certificates(roots(ca)?);
    let config = match identity {
        Some((cert, key)) => builder
            .with_client_auth_cert(load_certificates(cert)?, load_private_key(key)?)
            .map_err(|e| TlsError::Invalid(e.to_string()))?,
        None => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

/// A client configuration trusting the operating system's root certificates (for servers
/// on the internet, such as an identity provider's key set endpoint).
pub fn system_roots_client_config() -> Result<Arc<ClientConfig>, TlsError> {
    let found = rustls_native_certs::load_native_certs();
    let mut roots = RootCertStore::empty();
    let (added, _) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        return Err(TlsError::Invalid(format!(
            "no usable root certificate in the system's store ({} errors)",
            found.errors.len()
        )));
    }
    let config = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| TlsError::Invalid(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// The subject of the first certificate a peer presented, RFC 2253 as Kafka prints it.
pub fn peer_subject(certificates: Option<&[CertificateDer<'_>]>) -> Option<String> {
    let first = certificates?.first()?;
    dn::summarize_certificate(first).ok().map(|s| s.subject)
}

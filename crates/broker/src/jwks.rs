//! Validated OAUTHBEARER (KIP-768) wired into the broker: where the identity provider's key
//! set comes from (`sasl.oauthbearer.jwks.endpoint.url`: a file, or an HTTP(S) endpoint
//! fetched with hyper over rustls), the token rules from the settings, and the task that
//! refreshes the keys every `sasl.oauthbearer.jwks.endpoint.refresh.ms`.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper::Request;
use hyper::header::{ACCEPT, HOST};
use hyper_util::rt::TokioIo;
use sluice_security::rustls::ClientConfig;
use sluice_security::rustls::pki_types::ServerName;
use sluice_security::sasl::jwks::{FileSource, JwksCache, JwksSource, MAX_JWKS_BYTES};
use sluice_security::sasl::oauthbearer::{TokenRules, TokenValidator};
use sluice_security::tls::{client_config, system_roots_client_config};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_rustls::TlsConnector;

use crate::config::{BrokerConfig, ConfigError};

/// How long one fetch of the key set may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

/// How soon a failed periodic refresh is tried again.
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(10);

/// Where a key set is published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JwksEndpoint {
    /// A local file (`file:/path` or `file:///path`).
    File(PathBuf),
    /// An HTTP(S) URL.
    Http(HttpEndpoint),
}

/// An `https://` (or loopback `http://`) URL split for the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpEndpoint {
    tls: bool,
    host: String,
    port: u16,
    /// `host[:port]`, for the `Host` header.
    authority: String,
    /// Path and query.
    target: String,
}

impl JwksEndpoint {
    /// Parses `sasl.oauthbearer.jwks.endpoint.url`. Plain `http://` is refused except on a
    /// loopback address: the keys decide who may log in.
    pub fn parse(url: &str) -> Result<Self, String> {
        let url = url.trim();
        if let Some(rest) = url.strip_prefix("file:") {
            let path = rest.strip_prefix("//").unwrap_or(rest);
            if !Path::new(path).is_absolute() {
                return Err(format!(
                    "'{url}' is not a file URL with an absolute path (file:/path/to/jwks.json)"
                ));
            }
            return Ok(JwksEndpoint::File(PathBuf::from(path)));
        }
        let uri: hyper::Uri = url
            .parse()
            .map_err(|e| format!("'{url}' is not a URL: {e}"))?;
        let tls = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => return Err(format!("'{url}' is neither https://, http:// nor file:")),
        };
        let host = uri
            .host()
            .ok_or_else(|| format!("'{url}' has no host"))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        if !tls && !is_loopback(&host) {
            return Err(format!(
                "'{url}' fetches the signing keys without TLS; use https:// (http:// is for loopback addresses only)"
            ));
        }
        let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
        let authority = uri
            .authority()
            .map(|a| a.as_str().to_string())
            .unwrap_or_else(|| host.clone());
        let target = uri
            .path_and_query()
            .map_or_else(|| "/".to_string(), |p| p.as_str().to_string());
        Ok(JwksEndpoint::Http(HttpEndpoint {
            tls,
            host,
            port,
            authority,
            target,
        }))
    }
}

fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// A key set fetched over HTTP(S); `fetch` blocks the calling thread (never an async one)
/// on the broker's runtime.
struct HttpSource {
    endpoint: HttpEndpoint,
    tls: Option<TlsConnector>,
    runtime: tokio::runtime::Handle,
}

impl JwksSource for HttpSource {
    fn location(&self) -> String {
        let scheme = if self.endpoint.tls { "https" } else { "http" };
        format!(
            "{scheme}://{}{}",
            self.endpoint.authority, self.endpoint.target
        )
    }

    fn fetch(&self) -> Result<String, String> {
        let get = get(&self.endpoint, self.tls.as_ref());
        match self
            .runtime
            .block_on(async { tokio::time::timeout(FETCH_TIMEOUT, get).await })
        {
            Ok(result) => result.map_err(|e| format!("GET {}: {e}", self.location())),
            Err(_) => Err(format!(
                "GET {}: no answer within {FETCH_TIMEOUT:?}",
                self.location()
            )),
        }
    }
}

/// GETs the key set document.
async fn get(endpoint: &HttpEndpoint, tls: Option<&TlsConnector>) -> Result<String, String> {
    let tcp = TcpStream::connect((endpoint.host.as_str(), endpoint.port))
        .await
        .map_err(|e| e.to_string())?;
    match tls {
        None => request(TokioIo::new(tcp), endpoint).await,
        Some(connector) => {
            let name = ServerName::try_from(endpoint.host.clone()).map_err(|e| e.to_string())?;
            let stream = connector
                .connect(name, tcp)
                .await
                .map_err(|e| format!("TLS: {e}"))?;
            request(TokioIo::new(stream), endpoint).await
        }
    }
}

async fn request<S>(io: S, endpoint: &HttpEndpoint) -> Result<String, String>
where
    S: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(connection);
    let request = Request::get(endpoint.target.as_str())
        .header(HOST, endpoint.authority.as_str())
        .header(ACCEPT, "application/json")
        .body(Empty::<Bytes>::new())
        .map_err(|e| e.to_string())?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| e.to_string())?;
    if !response.status().is_success() {
        return Err(format!("HTTP status {}", response.status()));
    }
    let body = Limited::new(response.into_body(), MAX_JWKS_BYTES)
        .collect()
        .await
        .map_err(|e| format!("reading the body: {e}"))?
        .to_bytes();
    String::from_utf8(body.to_vec()).map_err(|_| "the body is not UTF-8".to_string())
}

fn invalid(name: &str, reason: impl ToString) -> ConfigError {
    ConfigError::Invalid {
        name: name.into(),
        reason: reason.to_string(),
    }
}

/// The key set of a validated OAUTHBEARER setup and how often it is fetched again.
#[derive(Clone)]
pub struct JwksRefresh {
    /// The keys.
    pub keys: Arc<JwksCache>,
    /// `sasl.oauthbearer.jwks.endpoint.refresh.ms`.
    pub every: Duration,
    /// Whether the keys were loaded at start (files are; endpoints are fetched by the task).
    pub loaded: bool,
}

/// The token rules of the settings.
fn token_rules(config: &BrokerConfig) -> TokenRules {
    let list = |text: &Option<String>, separators: &[char]| -> Vec<String> {
        text.as_deref()
            .unwrap_or("")
            .split(separators)
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect()
    };
    TokenRules {
        principal_claim: config.sasl_oauthbearer_sub_claim_name.clone(),
        scope_claim: config.sasl_oauthbearer_scope_claim_name.clone(),
        required_scopes: list(&config.sasl_oauthbearer_required_scopes, &[' ', ',']),
        allowable_clock_skew_s: config.sasl_oauthbearer_clock_skew_seconds,
        expected_issuer: config
            .sasl_oauthbearer_expected_issuer
            .clone()
            .filter(|s| !s.trim().is_empty()),
        expected_audience: list(&config.sasl_oauthbearer_expected_audience, &[',']),
    }
}

/// Checks `sasl-oauthbearer-jwks-endpoint-url` without touching the network.
pub(crate) fn check_endpoint(config: &BrokerConfig) -> Result<(), ConfigError> {
    if let Some(url) = &config.sasl_oauthbearer_jwks_endpoint_url {
        JwksEndpoint::parse(url).map_err(|e| invalid("sasl-oauthbearer-jwks-endpoint-url", e))?;
    }
    Ok(())
}

/// How OAUTHBEARER tokens are validated, and the key set to refresh when they are signed.
/// A key set file is read now (a broken one stops the start); an endpoint is fetched by
/// [`refresh_jwks`] (and by the first login that needs it).
pub fn token_validator(
    config: &BrokerConfig,
) -> Result<(TokenValidator, Option<JwksRefresh>), ConfigError> {
    let rules = token_rules(config);
    let Some(url) = &config.sasl_oauthbearer_jwks_endpoint_url else {
        return Ok((TokenValidator::Unsecured(rules), None));
    };
    let setting = "sasl-oauthbearer-jwks-endpoint-url";
    let (source, loaded): (Box<dyn JwksSource>, bool) =
        match JwksEndpoint::parse(url).map_err(|e| invalid(setting, e))? {
            JwksEndpoint::File(path) => (Box::new(FileSource::new(path)), true),
            JwksEndpoint::Http(endpoint) => (Box::new(http_source(config, endpoint)?), false),
        };
    let keys = Arc::new(JwksCache::new(source));
    if loaded {
        let count = keys.refresh().map_err(|e| invalid(setting, e))?;
        tracing::info!(source = %keys.location(), keys = count, "JWKS loaded");
    }
    let refresh = JwksRefresh {
        keys: keys.clone(),
        every: Duration::from_millis(config.sasl_oauthbearer_jwks_endpoint_refresh_ms),
        loaded,
    };
    Ok((TokenValidator::Jwks { rules, keys }, Some(refresh)))
}

fn http_source(config: &BrokerConfig, endpoint: HttpEndpoint) -> Result<HttpSource, ConfigError> {
    let tls = if endpoint.tls {
        let setting = "sasl-oauthbearer-jwks-endpoint-ca-file";
        let client: Arc<ClientConfig> = match &config.sasl_oauthbearer_jwks_endpoint_ca_file {
            Some(ca) => client_config(Path::new(ca), None).map_err(|e| invalid(setting, e))?,
            None => system_roots_client_config().map_err(|e| invalid(setting, e))?,
        };
        Some(TlsConnector::from(client))
    } else {
        None
    };
    let runtime = tokio::runtime::Handle::try_current().map_err(|_| {
        invalid(
            "sasl-oauthbearer-jwks-endpoint-url",
            "an HTTP key set needs the broker's runtime",
        )
    })?;
    Ok(HttpSource {
        endpoint,
        tls,
        runtime,
    })
}

/// Fetches the key set every `refresh.every` (at once when it was not loaded at start; a
/// failure is retried sooner and keeps the previous keys), until `stop`.
pub async fn refresh_jwks(refresh: JwksRefresh, mut stop: watch::Receiver<bool>) {
    let mut wait = if refresh.loaded {
        refresh.every
    } else {
        Duration::ZERO
    };
    loop {
        tokio::select! {
            _ = stop.changed() => if *stop.borrow() { return },
            _ = tokio::time::sleep(wait) => {
                let keys = refresh.keys.clone();
                let fetched = tokio::task::spawn_blocking(move || keys.refresh()).await;
                wait = match fetched {
                    Ok(Ok(count)) => {
                        tracing::debug!(source = %refresh.keys.location(), keys = count, "JWKS refreshed");
                        refresh.every
                    }
                    Ok(Err(e)) => {
                        tracing::warn!(source = %refresh.keys.location(), error = %e, "JWKS refresh failed; keeping the previous keys");
                        RETRY_AFTER_FAILURE.min(refresh.every)
                    }
                    Err(_) => RETRY_AFTER_FAILURE.min(refresh.every),
                };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_parse_and_plain_http_is_for_loopback_only() {
        assert_eq!(
            JwksEndpoint::parse("file:/etc/sluice/jwks.json"),
            Ok(JwksEndpoint::File(PathBuf::from("/etc/sluice/jwks.json")))
        );
        assert_eq!(
            JwksEndpoint::parse("file:///etc/sluice/jwks.json"),
            Ok(JwksEndpoint::File(PathBuf::from("/etc/sluice/jwks.json")))
        );
        assert_eq!(
            JwksEndpoint::parse("https://idp.example/oauth2/v1/keys?x=1"),
            Ok(JwksEndpoint::Http(HttpEndpoint {
                tls: true,
                host: "idp.example".into(),
                port: 443,
                authority: "idp.example".into(),
                target: "/oauth2/v1/keys?x=1".into(),
            }))
        );
        assert_eq!(
            JwksEndpoint::parse("http://127.0.0.1:8080/jwks"),
            Ok(JwksEndpoint::Http(HttpEndpoint {
                tls: false,
                host: "127.0.0.1".into(),
                port: 8080,
                authority: "127.0.0.1:8080".into(),
                target: "/jwks".into(),
            }))
        );
        assert!(JwksEndpoint::parse("http://[::1]:9/k").is_ok());
        assert_eq!(
            JwksEndpoint::parse("http://idp.example/keys"),
            Err("'http://idp.example/keys' fetches the signing keys without TLS; use https:// (http:// is for loopback addresses only)".to_string())
        );
        assert_eq!(
            JwksEndpoint::parse("file:jwks.json"),
            Err("'file:jwks.json' is not a file URL with an absolute path (file:/path/to/jwks.json)".to_string())
        );
        assert_eq!(
            JwksEndpoint::parse("ftp://idp.example/keys"),
            Err("'ftp://idp.example/keys' is neither https://, http:// nor file:".to_string())
        );
    }
}

//! Listeners, TLS and SASL wired into the broker: which listeners the configuration
//! declares and where each is advertised, the TLS configuration they share (reloaded when
//! its files change; SASL_SSL listeners ask for no client certificate), the SASL mechanisms on offer with the SCRAM credentials kept in
//! metadata, the principal of a client certificate, the bootstrap user, and the
//! authentication metrics.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use parking_lot::{Mutex, RwLock};
use sluice_security::listener::{
    ListenerError, ListenerSpec, ProtocolMap, parse_advertised_listeners, parse_listeners,
};
use sluice_security::rustls::ServerConfig;
use sluice_security::sasl::oauthbearer::{OAuthBearerServer, TokenValidator};
use sluice_security::sasl::plain::PlainServer;
use sluice_security::sasl::scram::{MIN_ITERATIONS, ScramServer};
use sluice_security::sasl::{
    CredentialStore, Mechanism, ScramCredential, ScramMechanism, ServerMechanism,
};
use sluice_security::tls::mapping::PrincipalMapper;
use sluice_security::tls::{ClientAuth, TlsError, TlsFiles, file_stamps, server_config};
use sluice_security::{KafkaPrincipal, ListenerName, SecurityProtocol};
use tokio_rustls::TlsAcceptor;

use crate::config::{BrokerConfig, ConfigError};
use crate::metadata::{
    CommitError, EndpointRecord, MetadataDelta, MetadataImage, MetadataPublisher, MetadataRecord,
    MetadataStore, StoredAcl, StoredScramCredential,
};
use crate::metrics::{escape_label, header};
use sluice_security::acl::{
    AclBinding, AclOperation, AclPermissionType, AuthorizerData, PatternType, ResourceType,
};

fn invalid(name: &str, reason: impl ToString) -> ConfigError {
    ConfigError::Invalid {
        name: name.into(),
        reason: reason.to_string(),
    }
}

impl BrokerConfig {
    /// The listeners to bind: `listeners`, or else one PLAINTEXT listener on `listen`.
    pub fn listener_specs(&self) -> Result<Vec<ListenerSpec>, ConfigError> {
        let Some(text) = &self.listeners else {
            return Ok(vec![ListenerSpec {
                name: ListenerName::for_security_protocol(SecurityProtocol::Plaintext),
                protocol: SecurityProtocol::Plaintext,
                address: self.listen,
            }]);
        };
        let map = ProtocolMap::parse(self.listener_security_protocol_map.as_deref().unwrap_or(""))
            .map_err(|e| invalid("listener-security-protocol-map", e))?;
        let specs = parse_listeners(text, &map).map_err(|e| invalid("listeners", e))?;
        if specs.iter().any(|l| l.name.is_cluster()) {
            return Err(invalid(
                "listeners",
                "the listener name CLUSTER is reserved for node-to-node traffic",
            ));
        }
        Ok(specs)
    }

    /// `advertised-listeners`, by listener name.
    fn advertised_overrides(
        &self,
        specs: &[ListenerSpec],
    ) -> Result<BTreeMap<ListenerName, (String, u16)>, ConfigError> {
        parse_advertised_listeners(self.advertised_listeners.as_deref().unwrap_or(""), specs)
            .map_err(|e: ListenerError| invalid("advertised-listeners", e))
    }

    /// Checks the listener, TLS and SASL settings (files are read at start).
    pub(crate) fn check_security(&self, listeners: &[ListenerSpec]) -> Result<(), ConfigError> {
        let advertised = self.advertised_overrides(listeners)?;
        if self.listeners.is_some()
            && let Some(l) = listeners
                .iter()
                .find(|l| l.address.ip().is_unspecified() && !advertised.contains_key(&l.name))
        {
            return Err(invalid(
                "advertised-listeners",
                format!(
                    "listener {l} binds every address, which no client can connect to; pass --advertised-listeners {}://host:port",
                    l.name
                ),
            ));
        }
        ClientAuth::parse(&self.ssl_client_auth).map_err(|e| invalid("ssl-client-auth", e))?;
        PrincipalMapper::parse(&self.ssl_principal_mapping_rules)
            .map_err(|e| invalid("ssl-principal-mapping-rules", e))?;
        let mechanisms = Mechanism::parse_list(&self.sasl_mechanisms)
            .map_err(|e| invalid("sasl-mechanisms", e))?;
        if listeners.iter().any(|l| l.protocol.uses_sasl()) && mechanisms.is_empty() {
            return Err(invalid(
                "sasl-mechanisms",
                "a SASL listener needs at least one mechanism",
            ));
        }
        if listeners.iter().any(|l| l.protocol.uses_tls())
            && (self.ssl_cert_file.is_none() || self.ssl_key_file.is_none())
        {
            return Err(invalid(
                "ssl-cert-file",
                "an SSL or SASL_SSL listener needs --ssl-cert-file and --ssl-key-file",
            ));
        }
        if let Some(user) = &self.bootstrap_user {
            parse_bootstrap_user(user).map_err(|e| invalid("bootstrap-user", e))?;
        }
        crate::jwks::check_endpoint(self)?;
        self.authorizer_enabled()?;
        self.super_user_list()?;
        Ok(())
    }

    /// Whether ACLs are enforced (`authorizer`).
    pub fn authorizer_enabled(&self) -> Result<bool, ConfigError> {
        match self.authorizer.trim().to_ascii_lowercase().as_str() {
            "on" | "true" => Ok(true),
            "off" | "false" => Ok(false),
            other => Err(invalid(
                "authorizer",
                format!("'{other}' is neither on nor off"),
            )),
        }
    }

    /// `super-users` parsed (Kafka separates them with `;`).
    pub fn super_user_list(&self) -> Result<Vec<KafkaPrincipal>, ConfigError> {
        self.super_users
            .as_deref()
            .unwrap_or("")
            .split(';')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(|p| KafkaPrincipal::parse(p).map_err(|e| invalid("super-users", e)))
            .collect()
    }

    /// Where clients reach each listener, given where each was bound: its
    /// `advertised-listeners` entry, else (without `listeners`) `advertise`, else the
    /// bound address.
    pub fn advertised_endpoints(
        &self,
        bound: &[(ListenerSpec, SocketAddr)],
    ) -> Vec<EndpointRecord> {
        let overrides = self
            .listener_specs()
            .and_then(|specs| self.advertised_overrides(&specs))
            .unwrap_or_default();
        bound
            .iter()
            .map(|(spec, addr)| {
                let (host, port) = match overrides.get(&spec.name) {
                    Some((host, port)) => (host.clone(), i32::from(*port)),
                    None if self.listeners.is_none() => self.advertised(*addr),
                    None => (addr.ip().to_string(), i32::from(addr.port())),
                };
                EndpointRecord {
                    listener: spec.name.to_string(),
                    host,
                    port,
                    security_protocol: spec.protocol.name().to_string(),
                }
            })
            .collect()
    }
}

/// Splits `user:password` (the password may contain `:`).
pub fn parse_bootstrap_user(text: &str) -> Result<(&str, &str), String> {
    match text.split_once(':') {
        Some((user, password)) if !user.is_empty() && !password.is_empty() => Ok((user, password)),
        _ => Err("expected user:password with neither empty".to_string()),
    }
}

/// The TLS configurations of the TLS listeners, rebuilt from their files when they change.
pub struct TlsReloader {
    files: TlsFiles,
    current: RwLock<ServerConfigs>,
    stamps: Mutex<Vec<Option<SystemTime>>>,
    not_after: AtomicI64,
    reload_errors: AtomicU64,
}

/// The server configurations built from one set of files: SSL listeners check client
/// certificates as `ssl-client-auth` says; SASL_SSL listeners authenticate clients with SASL
/// and ask for no certificate, whatever `ssl-client-auth` says, as Kafka does with a
/// broker-wide `ssl.client.auth` (KIP-684 makes it apply to SASL_SSL only when set for that
/// listener by name, which Sluice has no setting for).
struct ServerConfigs {
    ssl: Arc<ServerConfig>,
    sasl_ssl: Arc<ServerConfig>,
    not_after: i64,
}

impl ServerConfigs {
    fn build(files: &TlsFiles) -> Result<Self, TlsError> {
        let (ssl, not_after) = server_config(files)?;
        let sasl_ssl_files = TlsFiles {
            client_auth: ClientAuth::None,
            ..files.clone()
        };
        let (sasl_ssl, _) = server_config(&sasl_ssl_files)?;
        Ok(ServerConfigs {
            ssl,
            sasl_ssl,
            not_after,
        })
    }
}

impl TlsReloader {
    /// Loads the configuration from `files`.
    pub fn load(files: TlsFiles) -> Result<Self, TlsError> {
        let stamps = file_stamps(&files);
        let configs = ServerConfigs::build(&files)?;
        Ok(TlsReloader {
            files,
            not_after: AtomicI64::new(configs.not_after),
            current: RwLock::new(configs),
            stamps: Mutex::new(stamps),
            reload_errors: AtomicU64::new(0),
        })
    }

    /// An acceptor for a listener of `protocol` (SSL or SASL_SSL) with the current
    /// configuration (new connections; open ones keep theirs).
    pub fn acceptor(&self, protocol: SecurityProtocol) -> TlsAcceptor {
        let configs = self.current.read();
        let config = if protocol.uses_sasl() {
            &configs.sasl_ssl
        } else {
            &configs.ssl
        };
        TlsAcceptor::from(config.clone())
    }

    /// Rebuilds the configuration from the files; a broken file keeps the old one.
    pub fn reload(&self) -> Result<(), TlsError> {
        *self.stamps.lock() = file_stamps(&self.files);
        match ServerConfigs::build(&self.files) {
            Ok(configs) => {
                self.not_after.store(configs.not_after, Ordering::Relaxed);
                *self.current.write() = configs;
                tracing::info!(cert = %self.files.cert.display(), "TLS certificate reloaded");
                Ok(())
            }
            Err(e) => {
                self.reload_errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(error = %e, "TLS files not reloaded; keeping the previous certificate");
                Err(e)
            }
        }
    }

    /// Reloads when a file's modification time changed since the last look.
    pub fn reload_if_changed(&self) {
        if *self.stamps.lock() != file_stamps(&self.files) {
            let _ = self.reload();
        }
    }
}

/// Reads SCRAM credentials from the metadata image.
struct MetadataCredentials(Arc<MetadataStore>);

impl CredentialStore for MetadataCredentials {
    fn scram_credential(&self, user: &str, mechanism: ScramMechanism) -> Option<ScramCredential> {
        let image = self.0.image();
        let stored = image.security.scram(user, mechanism.name())?;
        Some(ScramCredential {
            salt: stored.salt.clone(),
            stored_key: stored.stored_key.clone(),
            server_key: stored.server_key.clone(),
            iterations: stored.iterations,
        })
    }
}

/// Counts of authentications, by listener, mechanism and result.
#[derive(Default)]
pub struct AuthMetrics {
    counts: Mutex<BTreeMap<(String, &'static str, &'static str), u64>>,
}

impl AuthMetrics {
    /// Counts one authentication.
    pub fn record(&self, listener: &ListenerName, mechanism: &'static str, ok: bool) {
        let result = if ok { "success" } else { "failure" };
        *self
            .counts
            .lock()
            .entry((listener.to_string(), mechanism, result))
            .or_default() += 1;
    }
}

/// What the broker knows about securing its listeners.
pub struct Security {
    /// The SASL mechanisms SASL listeners offer.
    pub mechanisms: Vec<Mechanism>,
    mapper: PrincipalMapper,
    /// The TLS configuration, when a listener uses TLS.
    pub tls: Option<Arc<TlsReloader>>,
    credentials: Arc<dyn CredentialStore>,
    fake_salt_key: [u8; 32],
    oauth: TokenValidator,
    /// The OAUTHBEARER key set to refresh, when tokens are signed.
    pub jwks: Option<crate::jwks::JwksRefresh>,
    /// `connections.max.reauth.ms` (0: none).
    pub reauth_max_ms: i64,
    /// The largest frame before authentication.
    pub pre_auth_max_frame: usize,
    /// How long a failed authentication waits before its answer.
    pub failed_auth_delay: Duration,
    /// How long the TLS handshake and SASL may take.
    pub auth_timeout: Duration,
    /// Authentications counted for `/metrics`.
    pub auth_metrics: AuthMetrics,
    /// Whether ACLs are enforced.
    pub enforce_acls: bool,
    super_users: Vec<KafkaPrincipal>,
    allow_if_no_acl: bool,
    /// The authorizer over the ACLs of the metadata, rebuilt when they change.
    authorizer: RwLock<Arc<AuthorizerData>>,
    /// Produce and fetch byte rates against the client quotas.
    pub quotas: crate::quotas::ClientQuotas,
    /// Responses throttled by a quota, and their throttle times added up.
    throttled: (AtomicU64, AtomicU64),
}

impl Security {
    /// Builds it from a validated `config`, reading the TLS files when a listener needs them.
    pub fn from_config(
        config: &BrokerConfig,
        metadata: Arc<MetadataStore>,
    ) -> Result<Self, ConfigError> {
        let listeners = config.listener_specs()?;
        let tls = if listeners.iter().any(|l| l.protocol.uses_tls()) {
            let path = |p: &Option<String>| p.as_ref().map(PathBuf::from);
            let (Some(cert), Some(key)) = (path(&config.ssl_cert_file), path(&config.ssl_key_file))
            else {
                return Err(invalid(
                    "ssl-cert-file",
                    "a TLS listener needs a certificate and key",
                ));
            };
            let files = TlsFiles {
                cert,
                key,
                ca: path(&config.ssl_ca_file),
                client_auth: ClientAuth::parse(&config.ssl_client_auth)
                    .map_err(|e| invalid("ssl-client-auth", e))?,
            };
            Some(Arc::new(
                TlsReloader::load(files).map_err(|e| invalid("ssl-cert-file", e))?,
            ))
        } else {
            None
        };
        let fake_salt_key = sluice_security::sasl::random_bytes::<32>();
        let (oauth, jwks) = crate::jwks::token_validator(config)?;
        Ok(Security {
            mechanisms: Mechanism::parse_list(&config.sasl_mechanisms)
                .map_err(|e| invalid("sasl-mechanisms", e))?,
            mapper: PrincipalMapper::parse(&config.ssl_principal_mapping_rules)
                .map_err(|e| invalid("ssl-principal-mapping-rules", e))?,
            tls,
            credentials: Arc::new(MetadataCredentials(metadata)),
            fake_salt_key,
            oauth,
            jwks,
            reauth_max_ms: config.connections_max_reauth_ms,
            pre_auth_max_frame: config
                .sasl_server_max_receive_size
                .min(config.max_request_bytes),
            failed_auth_delay: Duration::from_millis(
                config.connection_failed_authentication_delay_ms,
            ),
            auth_timeout: Duration::from_millis(config.authentication_timeout_ms),
            auth_metrics: AuthMetrics::default(),
            enforce_acls: config.authorizer_enabled()?,
            super_users: config.super_user_list()?,
            allow_if_no_acl: config.allow_everyone_if_no_acl_found,
            authorizer: RwLock::new(Arc::new(AuthorizerData::default())),
            quotas: crate::quotas::ClientQuotas::new(config),
            throttled: (AtomicU64::new(0), AtomicU64::new(0)),
        })
    }

    /// The authorizer over the current ACLs.
    pub fn authorizer(&self) -> Arc<AuthorizerData> {
        self.authorizer.read().clone()
    }

    /// Rebuilds the authorizer over the ACLs of `image`.
    pub fn refresh_acls(&self, image: &MetadataImage) {
        let data = AuthorizerData::new(
            image.security.acls().map(|(_, acl)| acl_binding(acl)),
            self.super_users.clone(),
            self.allow_if_no_acl,
        );
        *self.authorizer.write() = Arc::new(data);
    }

    /// The server side of `mechanism` for one authentication at `now_ms`.
    pub fn server_mechanism(&self, mechanism: Mechanism, now_ms: i64) -> Box<dyn ServerMechanism> {
        match mechanism {
            Mechanism::Plain => Box::new(PlainServer::new(self.credentials.clone())),
            Mechanism::Scram(m) => Box::new(ScramServer::new(
                m,
                self.credentials.clone(),
                self.fake_salt_key,
            )),
            Mechanism::OAuthBearer => Box::new(OAuthBearerServer::new(self.oauth.clone(), now_ms)),
        }
    }

    /// The principal of a TLS client: `User:` and its certificate subject through the
    /// mapping rules; `User:ANONYMOUS` without a certificate.
    pub fn certificate_principal(&self, subject: Option<String>) -> Result<KafkaPrincipal, String> {
        match subject {
            None => Ok(KafkaPrincipal::anonymous()),
            Some(subject) => self
                .mapper
                .map(&subject)
                .map(|name| KafkaPrincipal::user(&name))
                .map_err(|e| e.to_string()),
        }
    }

    /// Counts a response throttled for `ms`.
    pub fn throttled(&self, ms: i64) {
        self.throttled.0.fetch_add(1, Ordering::Relaxed);
        self.throttled
            .1
            .fetch_add(u64::try_from(ms).unwrap_or(0), Ordering::Relaxed);
    }

    /// Writes the security metrics: authentications, quota throttling, the TLS certificate.
    pub fn write_metrics(&self, out: &mut String) {
        let name = "sluice_throttled_responses_total";
        header(
            out,
            name,
            "counter",
            "Responses throttled by a client quota.",
        );
        let _ = writeln!(out, "{name} {}", self.throttled.0.load(Ordering::Relaxed));
        let name = "sluice_throttle_time_ms_total";
        header(
            out,
            name,
            "counter",
            "Throttle time given to clients by quotas, in milliseconds.",
        );
        let _ = writeln!(out, "{name} {}", self.throttled.1.load(Ordering::Relaxed));
        let name = "sluice_authentications_total";
        header(
            out,
            name,
            "counter",
            "SASL and TLS authentications by listener, mechanism and result.",
        );
        for ((listener, mechanism, result), n) in self.auth_metrics.counts.lock().iter() {
            let _ = writeln!(
                out,
                "{name}{{listener=\"{}\",mechanism=\"{mechanism}\",result=\"{result}\"}} {n}",
                escape_label(listener)
            );
        }
        if let Some(tls) = &self.tls {
            let name = "sluice_tls_cert_not_after_seconds";
            header(
                out,
                name,
                "gauge",
                "When the TLS listeners' certificate expires (Unix time).",
            );
            let _ = writeln!(out, "{name} {}", tls.not_after.load(Ordering::Relaxed));
            let name = "sluice_tls_reload_errors_total";
            header(
                out,
                name,
                "counter",
                "TLS certificate reloads that failed (the old one stays).",
            );
            let _ = writeln!(out, "{name} {}", tls.reload_errors.load(Ordering::Relaxed));
        }
    }
}

/// The record setting `user`'s credential for `mechanism`.
pub fn scram_record(
    user: &str,
    mechanism: ScramMechanism,
    credential: &ScramCredential,
) -> MetadataRecord {
    MetadataRecord::ScramCredentialUpserted {
        user: user.to_string(),
        mechanism: mechanism.name().to_string(),
        credential: StoredScramCredential {
            salt: credential.salt.clone(),
            stored_key: credential.stored_key.clone(),
            server_key: credential.server_key.clone(),
            iterations: credential.iterations,
        },
    }
}

/// Creates the bootstrap user's SCRAM-SHA-256 and -512 credentials where it has none.
pub async fn ensure_bootstrap_user(
    config: &BrokerConfig,
    metadata: &MetadataStore,
) -> Result<(), CommitError> {
    let Some((user, password)) = config
        .bootstrap_user
        .as_deref()
        .and_then(|u| parse_bootstrap_user(u).ok())
    else {
        return Ok(());
    };
    let missing: Vec<ScramMechanism> = ScramMechanism::ALL
        .into_iter()
        .filter(|m| metadata.image().security.scram(user, m.name()).is_none())
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let records: Vec<MetadataRecord> = missing
        .iter()
        .map(|&m| {
            scram_record(
                user,
                m,
                &ScramCredential::generate(m, password.as_bytes(), MIN_ITERATIONS),
            )
        })
        .collect();
    metadata
        .propose(|image| {
            let records = records
                .into_iter()
                .filter(|r| match r {
                    MetadataRecord::ScramCredentialUpserted {
                        user, mechanism, ..
                    } => image.security.scram(user, mechanism).is_none(),
                    _ => false,
                })
                .collect();
            Ok::<_, CommitError>((records, ()))
        })
        .await?;
    tracing::info!(
        user,
        "bootstrap user created with SCRAM-SHA-256 and SCRAM-SHA-512 credentials"
    );
    Ok(())
}

/// Where the listeners were bound: one address (tests, the single default listener), or
/// each listener with its own.
pub enum BoundListeners {
    /// The first listener's bound address; any others are taken as configured.
    First(SocketAddr),
    /// Every listener with its bound address.
    All(Vec<(ListenerSpec, SocketAddr)>),
}

impl From<SocketAddr> for BoundListeners {
    fn from(addr: SocketAddr) -> Self {
        BoundListeners::First(addr)
    }
}

impl BoundListeners {
    /// Each listener of `config` with its bound address.
    pub fn resolve(self, config: &BrokerConfig) -> Vec<(ListenerSpec, SocketAddr)> {
        match self {
            BoundListeners::All(all) => all,
            BoundListeners::First(first) => config
                .listener_specs()
                .unwrap_or_default()
                .into_iter()
                .enumerate()
                .map(|(i, spec)| {
                    let addr = if i == 0 { first } else { spec.address };
                    (spec, addr)
                })
                .collect(),
        }
    }
}

/// A stored ACL as the authorizer's binding.
pub fn acl_binding(acl: &StoredAcl) -> AclBinding {
    AclBinding {
        resource_type: ResourceType::from_code(acl.resource_type),
        resource_name: acl.resource_name.clone(),
        pattern_type: PatternType::from_code(acl.pattern_type),
        principal: acl.principal.clone(),
        host: acl.host.clone(),
        operation: AclOperation::from_code(acl.operation),
        permission: AclPermissionType::from_code(acl.permission),
    }
}

/// A binding as stored in the metadata.
pub fn stored_acl(b: &AclBinding) -> StoredAcl {
    StoredAcl {
        resource_type: b.resource_type.code(),
        resource_name: b.resource_name.clone(),
        pattern_type: b.pattern_type.code(),
        principal: b.principal.clone(),
        host: b.host.clone(),
        operation: b.operation.code(),
        permission: b.permission.code(),
    }
}

/// Keeps the authorizer in line with the ACLs of each committed image.
pub struct AclPublisher(pub Arc<Security>);

impl MetadataPublisher for AclPublisher {
    fn name(&self) -> &'static str {
        "acls"
    }

    fn publish(&self, delta: &MetadataDelta, image: &MetadataImage) {
        if delta.acls_changed {
            self.0.refresh_acls(image);
        }
    }
}

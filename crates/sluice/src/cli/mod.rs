//! The operator commands: `sluice topic|produce|consume|group|cluster|user|acl|quota`.
//!
//! They talk to any Kafka-compatible broker through the wire protocol with
//! `sluice-client`. Every command prints a table for people, or JSON with `--json`
//! for scripts, and fails with a non-zero exit code and a one-line message.

pub mod acl;
pub mod cluster;
pub mod command_config;
pub mod consume;
pub mod format;
pub mod group;
pub mod produce;
pub mod quota;
pub mod reassign;
pub mod reassign_plan;
pub mod topic;
pub mod user;

use std::future::Future;
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use clap::Args;
use command_config::CommandConfig;
use sluice_client::{Client, ClientConfig, ClientSecurity, SaslCredentials};

/// Where the client commands connect when nothing says otherwise.
const DEFAULT_BROKERS: &str = "127.0.0.1:9092";

/// Connection and output options shared by every command.
#[derive(Args, Debug, Clone)]
pub struct Common {
    /// Comma-separated bootstrap brokers, host:port (bootstrap.servers); 127.0.0.1:9092 when
    /// neither this nor the command-config file gives them.
    #[arg(long, global = true, env = "SLUICE_BROKERS")]
    pub brokers: Option<String>,
    /// Print JSON for scripts instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
    /// How long to wait for each broker response, in milliseconds.
    #[arg(long, global = true, default_value_t = 30_000)]
    pub request_timeout_ms: u64,
    /// A file of Kafka client properties, `key=value` a line (bootstrap.servers,
    /// security.protocol, sasl.mechanism, sasl.username, sasl.password, ssl.ca.location,
    /// ssl.certificate.location, ssl.key.location); flags and environment variables override it.
    #[arg(
        long,
        global = true,
        env = "SLUICE_COMMAND_CONFIG",
        value_name = "FILE"
    )]
    pub command_config: Option<std::path::PathBuf>,
    #[command(flatten)]
    pub security: SecurityArgs,
}

/// How the CLI secures its connections, with Kafka's client setting names.
#[derive(Args, Debug, Clone)]
pub struct SecurityArgs {
    /// PLAINTEXT (the default), SSL, SASL_PLAINTEXT or SASL_SSL (security.protocol).
    #[arg(long, global = true, env = "SLUICE_SECURITY_PROTOCOL")]
    pub security_protocol: Option<String>,
    /// PLAIN, SCRAM-SHA-256 (the default), SCRAM-SHA-512 or OAUTHBEARER (sasl.mechanism).
    #[arg(long, global = true, env = "SLUICE_SASL_MECHANISM")]
    pub sasl_mechanism: Option<String>,
    /// The SASL user name (sasl.username).
    #[arg(long, global = true, env = "SLUICE_SASL_USERNAME")]
    pub sasl_username: Option<String>,
    /// The SASL password, or the token for OAUTHBEARER (sasl.password); prefer the
    /// environment variable or --command-config, which other users cannot see in the process
    /// list.
    #[arg(
        long,
        global = true,
        env = "SLUICE_SASL_PASSWORD",
        hide_env_values = true
    )]
    pub sasl_password: Option<String>,
    /// CA certificates (PEM) the broker's certificate must chain to (ssl.ca.location).
    #[arg(long, global = true, env = "SLUICE_SSL_CA_FILE")]
    pub ssl_ca_file: Option<std::path::PathBuf>,
    /// Client certificate (PEM) for mTLS (ssl.certificate.location).
    #[arg(long, global = true, env = "SLUICE_SSL_CERT_FILE")]
    pub ssl_cert_file: Option<std::path::PathBuf>,
    /// Client private key (PEM) for mTLS (ssl.key.location).
    #[arg(long, global = true, env = "SLUICE_SSL_KEY_FILE")]
    pub ssl_key_file: Option<std::path::PathBuf>,
}

impl SecurityArgs {
    /// These settings, with what they leave unset taken from `file` (flags and environment
    /// variables win over the command-config file).
    fn or_from(self, file: CommandConfig) -> SecurityArgs {
        SecurityArgs {
            security_protocol: self.security_protocol.or(file.security_protocol),
            sasl_mechanism: self.sasl_mechanism.or(file.sasl_mechanism),
            sasl_username: self.sasl_username.or(file.sasl_username),
            sasl_password: self.sasl_password.or(file.sasl_password),
            ssl_ca_file: self.ssl_ca_file.or(file.ssl_ca_location),
            ssl_cert_file: self.ssl_cert_file.or(file.ssl_certificate_location),
            ssl_key_file: self.ssl_key_file.or(file.ssl_key_location),
        }
    }

    /// The client's TLS and SASL settings.
    pub fn client_security(&self) -> Result<ClientSecurity, String> {
        use sluice_client::sluice_security::SecurityProtocol;
        use sluice_client::sluice_security::sasl::Mechanism;
        let protocol_name = self.security_protocol.as_deref().unwrap_or("PLAINTEXT");
        let protocol = SecurityProtocol::for_name(protocol_name).ok_or_else(|| {
            format!(
                "security protocol {protocol_name} is not one of PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL"
            )
        })?;
        let tls = if protocol.uses_tls() {
            let ca = self.ssl_ca_file.as_deref().ok_or_else(|| {
                format!("security protocol {protocol} needs --ssl-ca-file (ssl.ca.location) with the CA that signed the broker's certificate")
            })?;
            let identity = match (&self.ssl_cert_file, &self.ssl_key_file) {
                (Some(cert), Some(key)) => Some((cert.as_path(), key.as_path())),
                (None, None) => None,
                _ => {
                    return Err("--ssl-cert-file and --ssl-key-file (ssl.certificate.location and ssl.key.location) go together".into());
                }
            };
            Some(
                sluice_client::sluice_security::tls::client_config(ca, identity)
                    .map_err(one_line)?,
            )
        } else {
            None
        };
        let sasl = if protocol.uses_sasl() {
            let mechanism_name = self.sasl_mechanism.as_deref().unwrap_or("SCRAM-SHA-256");
            let mechanism = Mechanism::for_name(&mechanism_name.to_ascii_uppercase())
                .ok_or_else(|| {
                    format!(
                        "SASL mechanism {mechanism_name} is not one of PLAIN, SCRAM-SHA-256, SCRAM-SHA-512, OAUTHBEARER"
                    )
                })?;
            let password = self.sasl_password.clone().ok_or(
                "SASL needs a password: set SLUICE_SASL_PASSWORD (or pass --sasl-password, or sasl.password in --command-config)",
            )?;
            let username = match (mechanism, &self.sasl_username) {
                (Mechanism::OAuthBearer, name) => name.clone().unwrap_or_default(),
                (_, Some(name)) => name.clone(),
                (_, None) => return Err("SASL needs --sasl-username (sasl.username)".into()),
            };
            Some(SaslCredentials {
                mechanism,
                username,
                password,
            })
        } else {
            None
        };
        Ok(ClientSecurity { tls, sasl })
    }
}

impl Common {
    pub async fn connect(&self) -> Result<Client, String> {
        let file = match &self.command_config {
            Some(path) => CommandConfig::load(path)?,
            None => CommandConfig::default(),
        };
        let brokers = self
            .brokers
            .clone()
            .or_else(|| file.bootstrap_servers.clone())
            .unwrap_or_else(|| DEFAULT_BROKERS.to_string());
        let config = ClientConfig {
            request_timeout: Duration::from_millis(self.request_timeout_ms),
            security: self.security.clone().or_from(file).client_security()?,
            ..ClientConfig::default()
        };
        Client::connect(&brokers, config).await.map_err(one_line)
    }
}

/// Runs a command on a single-threaded runtime.
pub fn run<F>(future: F) -> Result<(), String>
where
    F: Future<Output = Result<(), String>>,
{
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    runtime.block_on(future)
}

/// An error message on one line.
pub fn one_line(e: impl std::fmt::Display) -> String {
    e.to_string()
        .split(['\n', '\r'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Writes one line to stdout; a closed pipe (`| head`) ends the program quietly.
pub fn out(line: &str) -> Result<(), String> {
    let mut stdout = std::io::stdout().lock();
    match writeln!(stdout, "{line}") {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(0),
        Err(e) => Err(format!("cannot write to stdout: {e}")),
    }
}

/// Prints a JSON value on one line.
pub fn out_json(value: &serde_json::Value) -> Result<(), String> {
    out(&value.to_string())
}

/// Prints an aligned table.
pub fn out_table(headers: &[&str], rows: &[Vec<String>]) -> Result<(), String> {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let fmt_row = |cells: Vec<&str>| -> String {
        let mut line = String::new();
        for (i, cell) in cells.iter().enumerate() {
            let w = widths.get(i).copied().unwrap_or(0);
            if i + 1 == cells.len() {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<w$}  "));
            }
        }
        line.trim_end().to_string()
    };
    out(&fmt_row(headers.to_vec()))?;
    for row in rows {
        out(&fmt_row(row.iter().map(String::as_str).collect()))?;
    }
    Ok(())
}

/// Parses `k=v`.
pub fn key_value(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("expected key=value, got '{s}'")),
    }
}

/// Where to start or reset: `beginning|earliest`, `end|latest`, `offset:N`, `offset:-N`
/// (N before the end, as kcat's `-o -N`), `timestamp:MS`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Position {
    Earliest,
    Latest,
    Offset(i64),
    Timestamp(i64),
}

impl std::str::FromStr for Position {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || {
            format!(
                "'{s}' is not one of beginning, end, offset:N, offset:-N (N before the end), timestamp:MS (milliseconds)"
            )
        };
        match s {
            "beginning" | "earliest" => Ok(Position::Earliest),
            "end" | "latest" => Ok(Position::Latest),
            _ => {
                if let Some(n) = s.strip_prefix("offset:") {
                    n.parse().map(Position::Offset).map_err(|_| bad())
                } else if let Some(ms) = s.strip_prefix("timestamp:") {
                    ms.parse().map(Position::Timestamp).map_err(|_| bad())
                } else {
                    Err(bad())
                }
            }
        }
    }
}

/// Resolves a position to an offset per partition: earliest and latest from ListOffsets,
/// `offset:N` clamped to [log start, log end] (as Kafka's tools do), `offset:-N` to N
/// before the log end (not before the log start), `timestamp:MS` to the first offset at
/// or after it (the log end when none is).
pub async fn resolve_positions(
    client: &mut Client,
    topic: &str,
    partitions: &[i32],
    position: Position,
) -> Result<Vec<(i32, i64)>, String> {
    let query = |ts: i64| partitions.iter().map(|p| (*p, ts)).collect::<Vec<_>>();
    let earliest = client
        .list_offsets(topic, &query(-2))
        .await
        .map_err(one_line)?;
    let latest = client
        .list_offsets(topic, &query(-1))
        .await
        .map_err(one_line)?;
    let find = |v: &[(i32, i64, i64)], p: i32| {
        v.iter()
            .find(|(q, _, _)| *q == p)
            .map(|(_, o, _)| *o)
            .unwrap_or(0)
    };
    let by_time = match position {
        Position::Timestamp(ts) => client
            .list_offsets(topic, &query(ts))
            .await
            .map_err(one_line)?,
        _ => Vec::new(),
    };
    Ok(partitions
        .iter()
        .map(|&p| {
            let (start, end) = (find(&earliest, p), find(&latest, p));
            let offset = match position {
                Position::Earliest => start,
                Position::Latest => end,
                Position::Offset(n) if n < 0 => end.saturating_add(n).max(start),
                Position::Offset(n) => n.clamp(start, end.max(start)),
                Position::Timestamp(_) => match find(&by_time, p) {
                    o if o < 0 => end,
                    o => o,
                },
            };
            (p, offset)
        })
        .collect())
}

/// A progress line on stderr about once a second, for runs longer than a second.
pub struct Progress {
    verb: &'static str,
    enabled: bool,
    tty: bool,
    start: Instant,
    last: Instant,
    printed: bool,
}

impl Progress {
    pub fn new(verb: &'static str, enabled: bool) -> Self {
        let now = Instant::now();
        Self {
            verb,
            enabled,
            tty: std::io::stderr().is_terminal(),
            start: now,
            last: now,
            printed: false,
        }
    }

    pub fn tick(&mut self, records: u64, bytes: u64) {
        if !self.enabled || self.last.elapsed() < Duration::from_secs(1) {
            return;
        }
        self.last = Instant::now();
        let secs = self.start.elapsed().as_secs_f64().max(0.001);
        let line = format!(
            "{} {records} records ({:.1} MiB), {:.0} records/s",
            self.verb,
            bytes as f64 / (1024.0 * 1024.0),
            records as f64 / secs
        );
        let mut err = std::io::stderr().lock();
        let _ = if self.tty {
            write!(err, "\r\x1b[2K{line}")
        } else {
            writeln!(err, "{line}")
        };
        let _ = err.flush();
        self.printed = true;
    }

    /// Ends the progress line (on a terminal).
    pub fn finish(&mut self) {
        if self.printed && self.tty {
            let _ = writeln!(std::io::stderr().lock());
        }
    }
}

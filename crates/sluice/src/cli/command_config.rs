//! `--command-config FILE`: the client commands' connection settings from a file of Kafka
//! client properties, one `key=value` a line with librdkafka's names (the file kcat reads with
//! `-F`, and what Kafka's tools take as `--command-config`), so that a password and paths need
//! not be given on every command line. A flag or environment variable wins over the file.

use std::path::{Path, PathBuf};

/// The settings a command-config file may hold; what it does not set is `None`.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CommandConfig {
    /// `bootstrap.servers`.
    pub bootstrap_servers: Option<String>,
    /// `security.protocol`.
    pub security_protocol: Option<String>,
    /// `sasl.mechanism` (or librdkafka's `sasl.mechanisms`).
    pub sasl_mechanism: Option<String>,
    /// `sasl.username`.
    pub sasl_username: Option<String>,
    /// `sasl.password`.
    pub sasl_password: Option<String>,
    /// `ssl.ca.location`.
    pub ssl_ca_location: Option<PathBuf>,
    /// `ssl.certificate.location`.
    pub ssl_certificate_location: Option<PathBuf>,
    /// `ssl.key.location`.
    pub ssl_key_location: Option<PathBuf>,
}

/// The keys the file may hold, for error messages.
const KNOWN_KEYS: &str = "bootstrap.servers, security.protocol, sasl.mechanism, sasl.username, \
    sasl.password, ssl.ca.location, ssl.certificate.location, ssl.key.location";

impl CommandConfig {
    /// Reads and parses `path`.
    pub fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read --command-config {}: {e}", path.display()))?;
        Self::parse(&text, path)
    }

    /// Parses the text of a properties file: `key=value` (or `key: value`) lines, blank lines
    /// and comments starting with `#` or `!`; a key given twice keeps its last value. Values
    /// are taken as written (no escapes), as librdkafka does. `origin` names the file in
    /// errors, which give its line.
    pub fn parse(text: &str, origin: &Path) -> Result<Self, String> {
        let mut config = CommandConfig::default();
        for (index, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') || line.starts_with('!') {
                continue;
            }
            let at = |message: String| format!("{}:{}: {message}", origin.display(), index + 1);
            let Some((key, value)) = line.split_once(['=', ':']) else {
                return Err(at(format!("expected key=value, got '{line}'")));
            };
            config.set(key.trim(), value.trim()).map_err(at)?;
        }
        Ok(config)
    }

    fn set(&mut self, key: &str, value: &str) -> Result<(), String> {
        let text = || Some(value.to_string());
        let path = || Some(PathBuf::from(value));
        match key {
            "bootstrap.servers" => self.bootstrap_servers = text(),
            "security.protocol" => self.security_protocol = text(),
            "sasl.mechanism" | "sasl.mechanisms" => self.sasl_mechanism = text(),
            "sasl.username" => self.sasl_username = text(),
            "sasl.password" => self.sasl_password = text(),
            "ssl.ca.location" => self.ssl_ca_location = path(),
            "ssl.certificate.location" => self.ssl_certificate_location = path(),
            "ssl.key.location" => self.ssl_key_location = path(),
            "sasl.jaas.config" => {
                return Err(
                    "sasl.jaas.config is Java's; give sasl.username and sasl.password".into(),
                );
            }
            k if k.starts_with("ssl.truststore.") || k.starts_with("ssl.keystore.") => {
                return Err(format!(
                    "{k} is a Java key store setting; give PEM files with ssl.ca.location \
                     (and ssl.certificate.location, ssl.key.location)"
                ));
            }
            other => {
                return Err(format!(
                    "'{other}' is not a setting sluice reads (it reads {KNOWN_KEYS})"
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<CommandConfig, String> {
        CommandConfig::parse(text, Path::new("client.properties"))
    }

    #[test]
    fn reads_every_key_with_comments_and_blank_lines() {
        let config = parse(
            "# the SCRAM user\n\
             ! also a comment\n\
             \n\
             bootstrap.servers = 127.0.0.1:9093\n\
             security.protocol=SASL_SSL\n\
             sasl.mechanisms=SCRAM-SHA-256\n\
             sasl.username: alice\n\
             sasl.password=pa=ss word\n\
             ssl.ca.location=certs/ca.pem\n\
             ssl.certificate.location=certs/client.pem\n\
             ssl.key.location=certs/client.key\n",
        )
        .unwrap();
        assert_eq!(
            config,
            CommandConfig {
                bootstrap_servers: Some("127.0.0.1:9093".into()),
                security_protocol: Some("SASL_SSL".into()),
                sasl_mechanism: Some("SCRAM-SHA-256".into()),
                sasl_username: Some("alice".into()),
                sasl_password: Some("pa=ss word".into()),
                ssl_ca_location: Some("certs/ca.pem".into()),
                ssl_certificate_location: Some("certs/client.pem".into()),
                ssl_key_location: Some("certs/client.key".into()),
            }
        );
    }

    #[test]
    fn the_last_value_of_a_key_wins() {
        let config = parse("sasl.mechanism=PLAIN\nsasl.mechanism=SCRAM-SHA-512\n").unwrap();
        assert_eq!(config.sasl_mechanism.as_deref(), Some("SCRAM-SHA-512"));
    }

    #[test]
    fn errors_name_the_file_and_line() {
        assert_eq!(
            parse("security.protocol=SSL\nsasl.pasword=x\n").unwrap_err(),
            format!(
                "client.properties:2: 'sasl.pasword' is not a setting sluice reads (it reads {KNOWN_KEYS})"
            )
        );
        assert_eq!(
            parse("\nsecurity.protocol\n").unwrap_err(),
            "client.properties:2: expected key=value, got 'security.protocol'"
        );
        assert_eq!(
            parse(
                "sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required;"
            )
            .unwrap_err(),
            "client.properties:1: sasl.jaas.config is Java's; give sasl.username and sasl.password"
        );
        assert!(
            parse("ssl.truststore.location=x.jks")
                .unwrap_err()
                .starts_with("client.properties:1: ssl.truststore.location is a Java key store")
        );
    }
}

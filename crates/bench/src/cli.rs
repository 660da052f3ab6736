//! Command-line interface of `sluice-bench` (also reached as `sluice bench`).
//!
//! The flag names follow Kafka's own vocabulary (acks, linger, batch size, compression) and
//! the conventions of kafka-producer-perf-test and rdkafka_performance, so that a Kafka user
//! can read a command line without looking anything up.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Load generator for Kafka-compatible brokers (Sluice or any other), driving them with
/// librdkafka the way users do, and reporting throughput, latency and broker CPU/memory.
#[derive(Debug, Parser)]
#[command(name = "sluice-bench", version, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: BenchCommand,
}

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Produce records as fast as the client can (or for a duration); reports records/s,
    /// MB/s and produce latency (send → delivery report).
    Produce(ProduceArgs),
    /// Consume a topic from the beginning until its end (or a count); reports records/s and
    /// MB/s.
    Consume(ConsumeArgs),
    /// Produce at a fixed rate with the send time in each payload and consume in the same
    /// process; reports end-to-end latency.
    E2e(E2eArgs),
    /// Start a cluster (--cluster, default 3 nodes), then fail a node again and again (by
    /// default kill -9 of a partition's leader; see --scenario) while an idempotent acks=all
    /// producer writes; reports how long the cluster takes to serve again.
    Failover(FailoverArgs),
    /// Time the broker's ACL authorizer alone (no broker, no network): --acls ACLs of every
    /// pattern kind, --checks checks per round; reports nanoseconds per check.
    Authz(AuthzArgs),
}

/// `authz`: authorization checks against many ACLs.
#[derive(Debug, Args)]
pub struct AuthzArgs {
    /// ACLs to build the authorizer with.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub acls: u32,

    /// Checks per round.
    #[arg(long, default_value_t = 1_000_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub checks: u64,

    /// Timed rounds (the median is reported).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub rounds: u32,

    /// Print one JSON object instead of the table.
    #[arg(long)]
    pub json: bool,

    /// No per-round lines on stderr.
    #[arg(long, short = 'q')]
    pub quiet: bool,
}

/// `failover`: trials of failing a node of a cluster the benchmark starts.
#[derive(Debug, Args)]
pub struct FailoverArgs {
    #[command(flatten)]
    pub common: CommonArgs,

    /// How many trials (each fails one node, or restarts every node for rolling-restart;
    /// failed nodes restart in between and the next trial waits for all replicas in sync).
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub trials: u32,

    /// What each trial does.
    #[arg(long, value_enum, default_value_t = Scenario::KillLeader)]
    pub scenario: Scenario,

    /// rolling-restart only: write with this kafkajs producer script instead of librdkafka
    /// (tests/node/cluster-producer.js: kafkajs' default retries, idempotent, acks=all,
    /// the partitions in turn; needs Node.js and the test dependencies installed).
    #[arg(long, value_name = "SCRIPT")]
    pub kafkajs_producer: Option<std::path::PathBuf>,
}

/// The fault of a `failover` trial.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scenario {
    /// kill -9 of the partition's leader: time to a new leader in another node's Metadata
    /// and to the first acknowledged acks=all write.
    KillLeader,
    /// kill -9 of one of the partition's in-sync followers: how long acks=all writes stall
    /// (until the leader drops it from the in-sync replicas).
    KillFollower,
    /// kill -9 of the node leading the metadata quorum: time until the other nodes agree on
    /// a new quorum leader, and to the first acknowledged acks=all write.
    KillController,
    /// SIGTERM (controlled shutdown) and restart of every node in turn, under producers
    /// writing every partition: the longest pause between acknowledgements per partition,
    /// and every client error.
    RollingRestart,
}

impl CommonArgs {
    /// The flags given that only apply to a broker this benchmark starts, when it starts
    /// none (neither --start-broker nor --cluster).
    pub fn spawn_flags_without_a_broker(&self) -> Vec<&'static str> {
        if self.start_broker || self.cluster.is_some() {
            return Vec::new();
        }
        let mut given = Vec::new();
        if self.sluice_bin.is_some() {
            given.push("--sluice-bin");
        }
        if self.broker_data_dir.is_some() {
            given.push("--broker-data-dir");
        }
        if !self.broker_args.is_empty() {
            given.push("--broker-arg");
        }
        given
    }
}

impl Scenario {
    /// The name the flag takes (`kill-leader`, …).
    pub fn to_possible_value_name(self) -> String {
        self.to_possible_value()
            .map_or_else(String::new, |v| v.get_name().to_string())
    }
}

/// Flags shared by every subcommand: where the broker is, whose CPU and memory to sample,
/// and how to print. The flags that start a broker (--sluice-bin, --broker-data-dir,
/// --broker-arg) need --start-broker or --cluster, except for failover, which always starts
/// its cluster: `spawn_flags_without_a_broker` says which were given in vain.
#[derive(Debug, Args)]
pub struct CommonArgs {
    /// Bootstrap servers (host:port[,host:port…]) [default: 127.0.0.1:9092]
    #[arg(long, conflicts_with = "start_broker")]
    pub brokers: Option<String>,

    /// Topic to use.
    #[arg(long, default_value = "sluice-bench")]
    pub topic: String,

    /// Sample this broker process's CPU time and memory from /proc during the run.
    #[arg(long, value_name = "PID", conflicts_with = "start_broker")]
    pub broker_pid: Option<u32>,

    /// Start `sluice serve` on a free loopback port with a temporary data directory, sample
    /// it, and stop it (SIGTERM) at the end.
    #[arg(long)]
    pub start_broker: bool,

    /// Start a cluster of this many `sluice serve` nodes on loopback (node ids 1..N, each its
    /// own data directory and rack), bootstrap from all of them, sample them all (CPU and
    /// memory summed), and stop them at the end. Pair with --replication-factor.
    #[arg(long, value_name = "N", conflicts_with_all = ["brokers", "broker_pid"], value_parser = clap::value_parser!(u32).range(1..=9))]
    pub cluster: Option<u32>,

    /// The `sluice` binary for --start-broker, --cluster and failover [default: `sluice`
    /// next to this binary].
    #[arg(long, value_name = "PATH")]
    pub sluice_bin: Option<PathBuf>,

    /// Data directory for --start-broker; it is kept afterwards, so a later run can start a
    /// broker on the same data (e.g. produce, then consume) [default: a temporary directory
    /// that is removed].
    #[arg(long, value_name = "DIR")]
    pub broker_data_dir: Option<PathBuf>,

    /// Extra `sluice serve` flag for --start-broker (repeatable), e.g.
    /// --broker-arg=--log-segment-bytes=268435456
    #[arg(long = "broker-arg", value_name = "ARG", allow_hyphen_values = true)]
    pub broker_args: Vec<String>,

    #[command(flatten)]
    pub security: SecurityArgs,

    /// Extra librdkafka property for every client (repeatable), as in rdkafka_performance;
    /// applied last, so it overrides the flags.
    #[arg(short = 'X', long = "property", value_name = "KEY=VALUE")]
    pub properties: Vec<String>,

    /// Print one JSON object with every figure instead of the table.
    #[arg(long)]
    pub json: bool,

    /// No progress lines on stderr.
    #[arg(long, short = 'q')]
    pub quiet: bool,
}

/// How the clients secure their connections: the flags and variables of the other `sluice`
/// client commands, passed to librdkafka under Kafka's client setting names.
#[derive(Debug, Args)]
pub struct SecurityArgs {
    /// PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL (security.protocol).
    #[arg(long, env = "SLUICE_SECURITY_PROTOCOL", value_name = "PROTOCOL")]
    pub security_protocol: Option<String>,

    /// PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (sasl.mechanism).
    #[arg(
        long,
        env = "SLUICE_SASL_MECHANISM",
        default_value = "SCRAM-SHA-256",
        value_name = "MECHANISM"
    )]
    pub sasl_mechanism: String,

    /// The SASL user name (sasl.username).
    #[arg(long, env = "SLUICE_SASL_USERNAME", value_name = "USER")]
    pub sasl_username: Option<String>,

    /// The SASL password (sasl.password); prefer the environment variable, which other users
    /// cannot see in the process list.
    #[arg(
        long,
        env = "SLUICE_SASL_PASSWORD",
        hide_env_values = true,
        value_name = "PASSWORD"
    )]
    pub sasl_password: Option<String>,

    /// CA certificates (PEM) the broker's certificate must chain to (ssl.ca.location).
    #[arg(long, env = "SLUICE_SSL_CA_FILE", value_name = "PEM")]
    pub ssl_ca_file: Option<PathBuf>,

    /// Client certificate (PEM) for mTLS (ssl.certificate.location).
    #[arg(long, env = "SLUICE_SSL_CERT_FILE", value_name = "PEM")]
    pub ssl_cert_file: Option<PathBuf>,

    /// Client private key (PEM) for mTLS (ssl.key.location).
    #[arg(long, env = "SLUICE_SSL_KEY_FILE", value_name = "PEM")]
    pub ssl_key_file: Option<PathBuf>,
}

impl SecurityArgs {
    /// The librdkafka properties these flags stand for; refuses combinations that cannot
    /// connect, with the flag that is missing.
    pub fn properties(&self) -> Result<Vec<(String, String)>, String> {
        let Some(protocol) = &self.security_protocol else {
            return Ok(Vec::new());
        };
        let protocol = protocol.to_ascii_uppercase();
        let (tls, sasl) = match protocol.as_str() {
            "PLAINTEXT" => (false, false),
            "SSL" => (true, false),
            "SASL_PLAINTEXT" => (false, true),
            "SASL_SSL" => (true, true),
            other => {
                return Err(format!(
                    "--security-protocol {other} is not one of PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL"
                ));
            }
        };
        let mut out = vec![("security.protocol".to_string(), protocol.clone())];
        let path = |p: &PathBuf| p.display().to_string();
        if tls {
            let ca = self.ssl_ca_file.as_ref().ok_or_else(|| {
                format!("--security-protocol {protocol} needs --ssl-ca-file with the CA that signed the broker's certificate")
            })?;
            out.push(("ssl.ca.location".into(), path(ca)));
            match (&self.ssl_cert_file, &self.ssl_key_file) {
                (Some(cert), Some(key)) => {
                    out.push(("ssl.certificate.location".into(), path(cert)));
                    out.push(("ssl.key.location".into(), path(key)));
                }
                (None, None) => {}
                _ => return Err("--ssl-cert-file and --ssl-key-file go together".into()),
            }
        }
        if sasl {
            let mechanism = self.sasl_mechanism.to_ascii_uppercase();
            if !["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"].contains(&mechanism.as_str()) {
                return Err(format!(
                    "--sasl-mechanism {mechanism} is not one of PLAIN, SCRAM-SHA-256, SCRAM-SHA-512"
                ));
            }
            let username = self
                .sasl_username
                .clone()
                .ok_or("SASL needs --sasl-username")?;
            let password = self.sasl_password.clone().ok_or(
                "SASL needs a password: set SLUICE_SASL_PASSWORD (or pass --sasl-password)",
            )?;
            out.push(("sasl.mechanism".into(), mechanism));
            out.push(("sasl.username".into(), username));
            out.push(("sasl.password".into(), password));
        }
        Ok(out)
    }
}

/// `acks` as Kafka producers spell it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Acks {
    #[value(name = "0")]
    None,
    #[value(name = "1")]
    Leader,
    #[value(name = "all", alias = "-1")]
    All,
}

impl Acks {
    /// The value of librdkafka's `acks` property.
    pub fn as_config(self) -> &'static str {
        match self {
            Acks::None => "0",
            Acks::Leader => "1",
            Acks::All => "all",
        }
    }
}

/// `compression.type` of the producer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Compression {
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

impl Compression {
    /// The value of librdkafka's `compression.type` property.
    pub fn as_config(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Snappy => "snappy",
            Compression::Lz4 => "lz4",
            Compression::Zstd => "zstd",
        }
    }
}

/// How record keys are chosen; keys decide the partition (murmur2/crc32 hash), no key lets
/// librdkafka's sticky partitioner fill one batch at a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum KeyMode {
    /// No key.
    None,
    /// Uniformly random keys in [0, key-space).
    Random,
    /// 0, 1, 2, … wrapping at key-space.
    Sequential,
}

impl KeyMode {
    pub fn name(self) -> &'static str {
        match self {
            KeyMode::None => "none",
            KeyMode::Random => "random",
            KeyMode::Sequential => "sequential",
        }
    }
}

/// Producer settings shared by `produce` and `e2e`.
#[derive(Debug, Args)]
pub struct ProducerSettings {
    /// Partitions of the topic when it has to be created.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(i32).range(1..=100_000))]
    pub partitions: i32,

    /// Replication factor of the topic when it has to be created.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(i32).range(1..=100))]
    pub replication_factor: i32,

    /// acks: 0 (no response), 1 (leader has written), all or -1 (every in-sync replica,
    /// and on Sluice the data is on disk).
    #[arg(long, value_enum, default_value_t = Acks::All, allow_negative_numbers = true)]
    pub acks: Acks,

    /// Producer compression.type.
    #[arg(long, value_enum, default_value_t = Compression::None)]
    pub compression: Compression,

    /// batch.size in bytes [default: librdkafka's, 1000000].
    #[arg(long, value_name = "BYTES", value_parser = clap::value_parser!(u32).range(1..))]
    pub batch_size: Option<u32>,

    /// A config of the topic when it has to be created (repeatable), e.g.
    /// --topic-config cleanup.policy=compact
    #[arg(long = "topic-config", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    pub topic_configs: Vec<(String, String)>,
}

fn parse_key_value(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("'{s}' is not KEY=VALUE"))
}

#[derive(Debug, Args)]
pub struct ProduceArgs {
    #[command(flatten)]
    pub common: CommonArgs,

    #[command(flatten)]
    pub producer: ProducerSettings,

    /// Value size of each record in bytes.
    #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u32).range(0..=100_000_000))]
    pub record_size: u32,

    /// Records to produce (over all producers) [default: 1000000 unless --duration].
    #[arg(long, conflicts_with = "duration", value_parser = clap::value_parser!(u64).range(1..))]
    pub count: Option<u64>,

    /// Produce for this many seconds instead of a count.
    #[arg(long, value_name = "SECS")]
    pub duration: Option<f64>,

    /// Producer threads, each with its own librdkafka producer.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=256))]
    pub producers: u32,

    /// linger.ms (fractions allowed, as librdkafka takes them).
    #[arg(long, default_value_t = 5.0, value_parser = parse_linger_ms)]
    pub linger_ms: f64,

    /// Key distribution.
    #[arg(long, value_enum, default_value_t = KeyMode::None)]
    pub keys: KeyMode,

    /// Number of distinct keys for --keys random|sequential.
    #[arg(long, default_value_t = 1_000_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub key_space: u64,
}

#[derive(Debug, Args)]
pub struct ConsumeArgs {
    #[command(flatten)]
    pub common: CommonArgs,

    /// Stop after this many records [default: read to the end].
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub count: Option<u64>,

    /// Once every partition is at its end, stop after this long without a record.
    #[arg(long, default_value_t = 1000)]
    pub idle_ms: u64,

    /// Consume in this consumer group (subscribe) instead of assigning every partition.
    /// Offsets are committed as usual, so use a fresh group to read from the beginning again.
    #[arg(long, value_name = "GROUP")]
    pub group: Option<String>,

    /// Start at the log start offset (the default).
    #[arg(long, overrides_with = "from_end")]
    pub from_beginning: bool,

    /// Start at the high watermark instead (for reading while another process produces).
    #[arg(long, overrides_with = "from_beginning")]
    pub from_end: bool,

    /// Consumer threads, each with its own librdkafka consumer (partitions are split between
    /// them, or the group assigns them).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=256))]
    pub consumers: u32,
}

#[derive(Debug, Args)]
pub struct E2eArgs {
    #[command(flatten)]
    pub common: CommonArgs,

    #[command(flatten)]
    pub producer: ProducerSettings,

    /// Records per second to produce.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..=100_000_000))]
    pub rate: u64,

    /// Seconds to produce for.
    #[arg(long, value_name = "SECS", default_value_t = 10.0)]
    pub duration: f64,

    /// Value size of each record in bytes (at least 16: send time and run id).
    #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u32).range(16..=100_000_000))]
    pub record_size: u32,

    /// linger.ms (fractions allowed, as librdkafka takes them); 0 by default because this
    /// mode measures latency.
    #[arg(long, default_value_t = 0.0, value_parser = parse_linger_ms)]
    pub linger_ms: f64,
}

/// librdkafka's range for `linger.ms`: 0 to 900,000 milliseconds, fractions allowed.
fn parse_linger_ms(text: &str) -> Result<f64, String> {
    let value: f64 = text
        .parse()
        .map_err(|_| format!("{text:?} is not a number of milliseconds"))?;
    if (0.0..=900_000.0).contains(&value) {
        Ok(value)
    } else {
        Err(format!("{text} is outside librdkafka's range 0..=900000"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> ProduceArgs {
        let mut argv = vec!["sluice-bench", "produce"];
        argv.extend_from_slice(args);
        match Cli::try_parse_from(argv).unwrap().command {
            BenchCommand::Produce(a) => a,
            other => panic!("parsed as {other:?}"),
        }
    }

    fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter()
            .map(|(k, val)| (k.to_string(), val.to_string()))
            .collect()
    }

    #[test]
    fn security_flags_become_librdkafka_properties() {
        assert_eq!(parse(&[]).common.security.properties(), Ok(Vec::new()));
        let args = parse(&[
            "--security-protocol",
            "sasl_ssl",
            "--ssl-ca-file",
            "/certs/ca.pem",
            "--sasl-mechanism",
            "SCRAM-SHA-512",
            "--sasl-username",
            "bench",
            "--sasl-password",
            "secret",
        ]);
        assert_eq!(
            args.common.security.properties(),
            Ok(pairs(&[
                ("security.protocol", "SASL_SSL"),
                ("ssl.ca.location", "/certs/ca.pem"),
                ("sasl.mechanism", "SCRAM-SHA-512"),
                ("sasl.username", "bench"),
                ("sasl.password", "secret"),
            ]))
        );
        let mtls = parse(&[
            "--security-protocol",
            "SSL",
            "--ssl-ca-file",
            "ca.pem",
            "--ssl-cert-file",
            "c.pem",
            "--ssl-key-file",
            "c.key",
        ]);
        assert_eq!(
            mtls.common.security.properties(),
            Ok(pairs(&[
                ("security.protocol", "SSL"),
                ("ssl.ca.location", "ca.pem"),
                ("ssl.certificate.location", "c.pem"),
                ("ssl.key.location", "c.key"),
            ]))
        );
    }

    #[test]
    fn security_flags_that_cannot_connect_are_refused_with_the_missing_flag() {
        let error = |args: &[&str]| parse(args).common.security.properties().unwrap_err();
        assert_eq!(
            error(&["--security-protocol", "SSL"]),
            "--security-protocol SSL needs --ssl-ca-file with the CA that signed the broker's certificate"
        );
        assert_eq!(
            error(&["--security-protocol", "TLS"]),
            "--security-protocol TLS is not one of PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL"
        );
        assert_eq!(
            error(&[
                "--security-protocol",
                "SASL_PLAINTEXT",
                "--sasl-password",
                "x"
            ]),
            "SASL needs --sasl-username"
        );
        assert_eq!(
            error(&[
                "--security-protocol",
                "SASL_PLAINTEXT",
                "--sasl-mechanism",
                "GSSAPI",
                "--sasl-username",
                "u"
            ]),
            "--sasl-mechanism GSSAPI is not one of PLAIN, SCRAM-SHA-256, SCRAM-SHA-512"
        );
    }
}

//! Client plumbing shared by the subcommands: configuration, the reachability check, and the
//! topic (created when missing, then waited for until every partition has a leader).

use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{ClientConfig, ClientContext};

/// Timeout of single metadata/admin calls.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a TCP connect to a bootstrap address may take in the reachability check.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// Base configuration of every client: the bootstrap servers plus the user's `-X` properties,
/// which are applied last so they override anything the subcommand sets.
#[derive(Debug, Clone)]
pub struct ClientSettings {
    pub brokers: String,
    pub properties: Vec<(String, String)>,
}

impl ClientSettings {
    /// `security` (from the security flags) first, then the `-X` properties over them.
    pub fn new(
        brokers: &str,
        security: Vec<(String, String)>,
        raw_properties: &[String],
    ) -> anyhow::Result<ClientSettings> {
        let mut properties = security;
        for p in raw_properties {
            let Some((k, v)) = p.split_once('=') else {
                bail!("-X {p}: expected KEY=VALUE");
            };
            properties.push((k.trim().to_string(), v.to_string()));
        }
        Ok(ClientSettings {
            brokers: brokers.to_string(),
            properties,
        })
    }

    /// Where librdkafka's own log lines go: to stderr when the user asked for them with
    /// `-X debug=…`, otherwise nowhere (problems show up as counted errors, not as noise).
    pub fn lib_log(&self) -> LibLog {
        LibLog {
            enabled: self.properties.iter().any(|(k, _)| k == "debug"),
        }
    }

    /// A client configuration with `settings` (subcommand defaults) under the user's `-X`.
    pub fn config(&self, settings: &[(&str, String)]) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.brokers);
        for (k, v) in settings {
            c.set(*k, v);
        }
        for (k, v) in &self.properties {
            c.set(k, v);
        }
        // The rdkafka crate derives librdkafka's log level from the `log` crate, which this
        // binary does not use; ask for everything when the user asked for debug output.
        if self.lib_log().enabled {
            c.set_log_level(RDKafkaLogLevel::Debug);
        }
        c
    }
}

/// librdkafka's log and error callbacks, shared by every client context of this crate.
#[derive(Debug, Clone, Copy, Default)]
pub struct LibLog {
    pub enabled: bool,
}

impl LibLog {
    pub fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        if self.enabled {
            let ms = crate::stats::now_nanos() as f64 / 1e6;
            eprintln!("{ms:10.3} ms librdkafka {level:?} {fac}: {message}");
        }
    }

    pub fn error(&self, error: &KafkaError, reason: &str) {
        if self.enabled {
            let ms = crate::stats::now_nanos() as f64 / 1e6;
            eprintln!("{ms:10.3} ms librdkafka error: {error}: {reason}");
        }
    }
}

/// The context of clients that need no callbacks of their own (admin, metadata, e2e
/// consumer).
#[derive(Debug, Clone, Copy, Default)]
pub struct PlainContext(pub LibLog);

impl ClientContext for PlainContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        self.0.log(level, fac, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.0.error(&error, reason);
    }
}

impl ConsumerContext for PlainContext {}

/// Fails with one clear line when no bootstrap address accepts a TCP connection.
///
/// librdkafka never gives up on an unreachable broker (it retries in the background and the
/// first call just times out), so without this check a typo in `--brokers` would look like a
/// hang.
pub fn check_reachable(brokers: &str) -> anyhow::Result<()> {
    let mut last_error = String::from("no address given");
    for entry in brokers.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        // Accept listener-style entries (PLAINTEXT://host:port) too.
        let hostport = entry.rsplit("://").next().unwrap_or(entry);
        let addrs = match hostport.to_socket_addrs() {
            Ok(a) => a,
            Err(e) => {
                last_error = format!("{hostport}: {e}");
                continue;
            }
        };
        for addr in addrs {
            match TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT) {
                Ok(_) => return Ok(()),
                Err(e) => last_error = format!("{addr}: {e}"),
            }
        }
    }
    bail!("cannot reach any broker in --brokers {brokers} ({last_error})")
}

/// Makes sure `topic` exists (created with `configs` when it does not) and every partition
/// has a leader; returns its partition count.
///
/// CreateTopics is sent unconditionally and TOPIC_ALREADY_EXISTS accepted, because asking
/// for metadata first could itself auto-create the topic with the broker's default partition
/// count.
pub fn ensure_topic(
    client: &ClientSettings,
    topic: &str,
    partitions: i32,
    replication_factor: i32,
    configs: &[(String, String)],
) -> anyhow::Result<usize> {
    let admin: AdminClient<PlainContext> = client
        .config(&[])
        .create_with_context(PlainContext(client.lib_log()))
        .context("cannot create the admin client")?;
    let mut new_topic = NewTopic::new(
        topic,
        partitions,
        TopicReplication::Fixed(replication_factor),
    );
    for (key, value) in configs {
        new_topic = new_topic.set(key, value);
    }
    let opts = AdminOptions::new()
        .request_timeout(Some(CALL_TIMEOUT))
        .operation_timeout(Some(CALL_TIMEOUT));
    let results = futures::executor::block_on(admin.create_topics([&new_topic], &opts))
        .with_context(|| format!("cannot create topic {topic}"))?;
    for result in results {
        match result {
            Ok(_) => {}
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((name, code)) => bail!("cannot create topic {name}: {code}"),
        }
    }
    let found = wait_for_leaders(client, topic, true)?;
    if usize::try_from(partitions).ok() != Some(found) {
        eprintln!(
            "note: topic {topic} already exists with {found} partitions (not {partitions}); using it as it is"
        );
    }
    Ok(found)
}

/// The partition ids of an existing topic, waiting (up to 10 s) until each has a leader.
pub fn topic_partitions(client: &ClientSettings, topic: &str) -> anyhow::Result<Vec<i32>> {
    let n = wait_for_leaders(client, topic, false)?;
    (0..n)
        .map(|p| i32::try_from(p).context("partition id out of range"))
        .collect()
}

/// `just_created`: an unknown topic is expected for a moment (metadata propagation), so keep
/// asking; otherwise an unknown topic is an immediate error.
fn wait_for_leaders(
    client: &ClientSettings,
    topic: &str,
    just_created: bool,
) -> anyhow::Result<usize> {
    // A consumer handle: its metadata requests never auto-create topics.
    let probe: BaseConsumer<PlainContext> = client
        .config(&[])
        .create_with_context(PlainContext(client.lib_log()))
        .context("cannot create a metadata client")?;
    let deadline = Instant::now() + CALL_TIMEOUT;
    loop {
        let md = probe
            .fetch_metadata(Some(topic), CALL_TIMEOUT)
            .with_context(|| format!("cannot fetch metadata of topic {topic}"))?;
        let state = md.topics().iter().find(|t| t.name() == topic).map(|t| {
            let ready = !t.partitions().is_empty()
                && t.error().is_none()
                && t.partitions()
                    .iter()
                    .all(|p| p.leader() >= 0 && p.error().is_none());
            (ready, t.partitions().len(), t.error())
        });
        let unknown = RDKafkaRespErr::RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART;
        match state {
            Some((true, n, _)) => return Ok(n),
            Some((_, _, Some(err))) if err == unknown && !just_created => {
                bail!("topic {topic} does not exist")
            }
            _ if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(100)),
            Some((_, _, Some(err))) => {
                bail!(
                    "topic {topic} is not available: {}",
                    RDKafkaErrorCode::from(err)
                )
            }
            _ => bail!("topic {topic} does not exist or has partitions without a leader"),
        }
    }
}

/// Waits (up to 30 s) until the metadata lists `n` brokers: a cluster's nodes serve as soon
/// as they run, but take replicas only once the controller has let them in (unfenced).
pub fn wait_for_brokers(client: &ClientSettings, n: usize) -> anyhow::Result<()> {
    let probe: BaseConsumer<PlainContext> = client
        .config(&[])
        .create_with_context(PlainContext(client.lib_log()))
        .context("cannot create a metadata client")?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let listed = probe
            .fetch_metadata(None, CALL_TIMEOUT)
            .map(|md| md.brokers().len())
            .unwrap_or(0);
        if listed == n {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!("the metadata lists {listed} brokers, not {n}, after 30 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

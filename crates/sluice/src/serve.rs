//! `sluice serve`: configuration layering (defaults → TOML file → `SLUICE_*`
//! environment → flags), logging, signals, and the broker's lifetime.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use clap::{Args, ValueEnum};
use sluice_broker::{BrokerConfig, Server};

/// Flags of `sluice serve`; each can also come from `SLUICE_<NAME>` or the
/// config file (same name in kebab-case).
#[derive(Args, Debug)]
pub struct ServeArgs {
    /// TOML config file; flags and environment variables override it.
    #[arg(long, env = "SLUICE_CONFIG")]
    config: Option<PathBuf>,
    /// Address of the Kafka listener [default: 127.0.0.1:9092].
    #[arg(long, env = "SLUICE_LISTEN")]
    listen: Option<SocketAddr>,
    /// Address of the HTTP listener serving /metrics, /health and /ready, or
    /// `off` [default: 127.0.0.1:9644].
    #[arg(long, env = "SLUICE_HTTP_LISTEN", value_name = "ADDR|off", value_parser = parse_http_listen)]
    http_listen: Option<HttpListen>,
    /// Log every request of the client with this client.id at INFO (api,
    /// version, correlation id, duration, errors), without debug logging for
    /// everyone else.
    #[arg(long, env = "SLUICE_DEBUG_CLIENT_ID", value_name = "CLIENT_ID")]
    debug_client_id: Option<String>,
    /// host:port advertised to clients; required when --listen is 0.0.0.0 or [::]
    /// [default: the listen address].
    #[arg(long, env = "SLUICE_ADVERTISE")]
    advertise: Option<String>,
    /// Data directory [default: ./sluice-data].
    #[arg(long, env = "SLUICE_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Node id [default: 1].
    #[arg(long, env = "SLUICE_NODE_ID")]
    node_id: Option<i32>,
    /// Create unknown topics on first use (auto.create.topics.enable) [default: true].
    #[arg(long, env = "SLUICE_AUTO_CREATE_TOPICS")]
    auto_create_topics: Option<bool>,
    /// Partitions of auto-created topics (num.partitions) [default: 1].
    #[arg(long, env = "SLUICE_DEFAULT_PARTITIONS")]
    default_partitions: Option<i32>,
    /// log.retention.ms; -1 keeps data forever [default: 604800000].
    #[arg(long, env = "SLUICE_LOG_RETENTION_MS", allow_negative_numbers = true)]
    log_retention_ms: Option<i64>,
    /// log.retention.bytes; -1 means unlimited [default: -1].
    #[arg(
        long,
        env = "SLUICE_LOG_RETENTION_BYTES",
        allow_negative_numbers = true
    )]
    log_retention_bytes: Option<i64>,
    /// log.segment.bytes [default: 1073741824].
    #[arg(long, env = "SLUICE_LOG_SEGMENT_BYTES")]
    log_segment_bytes: Option<i64>,
    /// log.roll.ms [default: 604800000].
    #[arg(long, env = "SLUICE_LOG_SEGMENT_MS")]
    log_segment_ms: Option<i64>,
    /// log.retention.check.interval.ms [default: 300000].
    #[arg(long, env = "SLUICE_LOG_RETENTION_CHECK_INTERVAL_MS")]
    log_retention_check_interval_ms: Option<u64>,
    /// message.max.bytes, the default max.message.bytes of topics [default: 1048588].
    #[arg(long, env = "SLUICE_MESSAGE_MAX_BYTES")]
    message_max_bytes: Option<i32>,
    /// socket.request.max.bytes [default: 104857600].
    #[arg(long, env = "SLUICE_MAX_REQUEST_BYTES")]
    max_request_bytes: Option<usize>,
    /// fetch.max.bytes: the most record bytes one Fetch response carries
    /// [default: 57671680].
    #[arg(long, env = "SLUICE_FETCH_MAX_BYTES")]
    fetch_max_bytes: Option<i32>,
    /// group.initial.rebalance.delay.ms [default: 3000].
    #[arg(long, env = "SLUICE_GROUP_INITIAL_REBALANCE_DELAY_MS")]
    group_initial_rebalance_delay_ms: Option<u64>,
    /// offsets.retention.minutes [default: 10080].
    #[arg(long, env = "SLUICE_OFFSETS_RETENTION_MINUTES")]
    offsets_retention_minutes: Option<i64>,
    /// offsets.topic.num.partitions [default: 50].
    #[arg(long, env = "SLUICE_OFFSETS_TOPIC_PARTITIONS")]
    offsets_topic_partitions: Option<i32>,
    /// transaction.state.log.num.partitions [default: 50].
    #[arg(long, env = "SLUICE_TRANSACTION_STATE_PARTITIONS")]
    transaction_state_partitions: Option<i32>,
    /// transaction.max.timeout.ms [default: 900000].
    #[arg(long, env = "SLUICE_TRANSACTION_MAX_TIMEOUT_MS")]
    transaction_max_timeout_ms: Option<i32>,
    /// producer.id.expiration.ms [default: 86400000].
    #[arg(long, env = "SLUICE_PRODUCER_ID_EXPIRATION_MS")]
    producer_id_expiration_ms: Option<i64>,
    /// transactional.id.expiration.ms [default: 604800000].
    #[arg(long, env = "SLUICE_TRANSACTIONAL_ID_EXPIRATION_MS")]
    transactional_id_expiration_ms: Option<i64>,
    /// max.connections: client connections open at once; more wait to be accepted
    /// [default: half of the open-files limit].
    #[arg(long, env = "SLUICE_MAX_CONNECTIONS")]
    max_connections: Option<u32>,
    /// max.connections.per.ip: connections one client address may hold; more are closed
    /// [default: no limit of its own].
    #[arg(long, env = "SLUICE_MAX_CONNECTIONS_PER_IP")]
    max_connections_per_ip: Option<u32>,
    /// connections.max.idle.ms: close connections idle this long [default: 600000].
    #[arg(long, env = "SLUICE_CONNECTIONS_MAX_IDLE_MS")]
    connections_max_idle_ms: Option<u64>,
    /// The most partitions this broker holds; creating more fails with POLICY_VIOLATION
    /// [default: 100000].
    #[arg(long, env = "SLUICE_MAX_BROKER_PARTITIONS")]
    max_broker_partitions: Option<u32>,
    /// Log output format.
    #[arg(long, env = "SLUICE_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

/// `--http-listen`: an address, or `off`.
#[derive(Clone, Copy, Debug)]
struct HttpListen(Option<SocketAddr>);

fn parse_http_listen(s: &str) -> Result<HttpListen, String> {
    sluice_broker::config::parse_http_listen(s).map(HttpListen)
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

macro_rules! override_fields {
    ($config:ident, $args:ident, $($field:ident),* $(,)?) => {
        $(if let Some(v) = &$args.$field { $config.$field = v.clone(); })*
    };
}

fn build_config(args: &ServeArgs) -> Result<BrokerConfig, String> {
    let mut config = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read config file {}: {e}", path.display()))?;
            toml::from_str::<BrokerConfig>(&text).map_err(|e| toml_error(path, &text, &e))?
        }
        None => BrokerConfig::default(),
    };
    override_fields!(
        config,
        args,
        listen,
        data_dir,
        node_id,
        auto_create_topics,
        default_partitions,
        log_retention_ms,
        log_retention_bytes,
        log_segment_bytes,
        log_segment_ms,
        log_retention_check_interval_ms,
        message_max_bytes,
        max_request_bytes,
        fetch_max_bytes,
        group_initial_rebalance_delay_ms,
        offsets_retention_minutes,
        offsets_topic_partitions,
        transaction_state_partitions,
        transaction_max_timeout_ms,
        producer_id_expiration_ms,
        transactional_id_expiration_ms,
        connections_max_idle_ms,
        max_broker_partitions,
    );
    if let Some(n) = args.max_connections {
        config.max_connections = Some(n);
    }
    if let Some(n) = args.max_connections_per_ip {
        config.max_connections_per_ip = Some(n);
    }
    if let Some(adv) = &args.advertise {
        config.advertise = Some(adv.clone());
    }
    if let Some(HttpListen(addr)) = args.http_listen {
        config.http_listen = addr;
    }
    if let Some(id) = &args.debug_client_id {
        config.debug_client_id = Some(id.clone());
    }
    Ok(config)
}

/// A TOML error as `file:line:column: message` (1-based, the column counted in characters),
/// or `file: message` when the error has no position.
fn toml_error(path: &Path, text: &str, e: &toml::de::Error) -> String {
    match e.span() {
        Some(span) => {
            let (line, column) = line_and_column(text, span.start);
            format!("{}:{line}:{column}: {}", path.display(), e.message())
        }
        None => format!("{}: {}", path.display(), e.message()),
    }
}

/// The 1-based line and column of byte `offset` in `text`.
fn line_and_column(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset).unwrap_or(text);
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before.get(line_start..).map_or(0, |l| l.chars().count()) + 1;
    (before.matches('\n').count() + 1, column)
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("SLUICE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// Runs the broker until SIGINT or SIGTERM.
pub fn run(args: ServeArgs) -> Result<(), String> {
    init_logging(args.log_format);
    let config = build_config(&args)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("sluice")
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    runtime.block_on(serve(config))
}

async fn serve(config: BrokerConfig) -> Result<(), String> {
    // Nothing is logged before the data dir is locked and the port bound, so a
    // start-up failure is exactly one line on stderr.
    let data_dir =
        std::path::absolute(&config.data_dir).unwrap_or_else(|_| config.data_dir.clone());
    let server = Server::start(config).await.map_err(|e| e.to_string())?;
    let broker = server.broker();
    tracing::info!("Sluice {} started", env!("CARGO_PKG_VERSION"));
    tracing::info!(
        data_dir = %data_dir.display(),
        partitions = server.recovered_partitions,
        recovery = if server.recovered_unclean { "unclean shutdown: log tails validated" } else { "clean" },
        "storage ready"
    );
    tracing::info!(
        "Kafka listener on {} (advertised as {}:{}), node id {}, cluster id {}",
        server.local_addr(),
        broker.advertised_host,
        broker.advertised_port,
        broker.node_id(),
        broker.cluster_id
    );
    let fds = broker.fd_budget;
    tracing::info!(
        "open files: limit {}{}; up to {} client connections and {} log files open at once",
        fds.limit,
        if fds.limit > fds.limit_before {
            format!(" (raised from {})", fds.limit_before)
        } else {
            String::new()
        },
        fds.connections,
        fds.log_files,
    );
    if let Some(asked) = fds.connections_capped_from {
        tracing::warn!(
            "max-connections {asked} does not fit the open-files limit {}: using {} (raise the limit with `ulimit -n` or in the service's LimitNOFILE)",
            fds.limit,
            fds.connections
        );
    }
    if server.recovered_partitions > fds.log_files {
        tracing::info!(
            "{} partitions, more than the {} log files kept open: idle ones are closed and reopened on use (a higher open-files limit avoids the reopening)",
            server.recovered_partitions,
            fds.log_files
        );
    }
    match server.http_addr() {
        Some(addr) => {
            tracing::info!("HTTP listener on {addr}: http://{addr}/metrics, /health, /ready")
        }
        None => tracing::info!("HTTP listener off"),
    }
    if let Some(id) = &broker.config.debug_client_id {
        tracing::info!(client_id = %id, "logging every request of this client");
    }
    wait_for_signal().await?;
    tracing::info!("shutting down: finishing in-flight requests and syncing logs");
    server.shutdown().await.map_err(|e| e.to_string())?;
    tracing::info!("shutdown complete");
    Ok(())
}

async fn wait_for_signal() -> Result<(), String> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term =
        signal(SignalKind::terminate()).map_err(|e| format!("cannot handle SIGTERM: {e}"))?;
    let mut int =
        signal(SignalKind::interrupt()).map_err(|e| format!("cannot handle SIGINT: {e}"))?;
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    Ok(())
}

//! Starting and stopping the broker: data-dir lock, recovery decision,
//! listener, background tasks, and the clean-shutdown marker.

use std::fs::File;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sluice_cluster::RpcKind;
use sluice_protocol::clock::{Clock, SkewedClock, SystemClock};
use tokio::io::BufReader;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::broker::{Broker, open_broker};
use crate::config::{BrokerConfig, ConfigError};
use crate::connection::SharedStream;
use crate::connection::serve_connection;
use crate::controller::lifecycle::ShutdownOutcome;
use crate::fd_budget::FdBudget;
use crate::log_cleaner::LogCleaner;
use crate::log_throttle::LogThrottle;
use crate::metadata::{CommitError, MetadataLogError};
use crate::peer::PeerRequests;
use crate::request::{ConnectionId, ConnectionIdentity, KafkaPrincipal};
use crate::security::{BoundListeners, TlsReloader};
use sluice_security::listener::ListenerSpec;

const LOCK_FILE: &str = ".lock";
const CLEAN_SHUTDOWN_FILE: &str = ".clean_shutdown";
/// How long a node of a cluster waits for the controller to move its leaderships away
/// before it stops anyway.
const CONTROLLED_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(30);
/// How long shutdown waits for in-flight requests before closing anyway.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a node whose leaderships have just moved away keeps serving before it closes
/// its connections. A client told NOT_LEADER_OR_FOLLOWER asks the same connection for
/// metadata at once (kafkajs does, and librdkafka may); answered, it retries against the
/// new leader after its first backoff. Closed, it keeps its stale metadata and retries
/// against this node, which is gone or back as a follower, and its backoff doubles.
const HANDOVER_LINGER: Duration = Duration::from_millis(500);
/// How long a released node waits for the controller to fence it before it stops anyway.
const FENCE_TIMEOUT: Duration = Duration::from_secs(2);

/// Why the broker could not start; each is reported as one line.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The data directory cannot be created or written.
    #[error("data directory {path} is not usable: {source}")]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
    /// Another broker holds the data directory.
    #[error(
        "data directory {0} is already in use by another sluice process (lock file .lock is held); stop it or use --data-dir"
    )]
    Locked(PathBuf),
    /// The listener could not be bound.
    #[error("cannot listen on {addr}: {source}{hint}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// What failed.
        source: std::io::Error,
        /// A hint on how to fix it.
        hint: &'static str,
    },
    /// The HTTP listener could not be bound.
    #[error("cannot listen for HTTP on {addr}: {source}{hint}")]
    HttpBind {
        /// The address.
        addr: SocketAddr,
        /// What failed.
        source: std::io::Error,
        /// A hint on how to fix it.
        hint: &'static str,
    },
    /// The metadata log could not be read.
    #[error(transparent)]
    Metadata(#[from] MetadataLogError),
    /// This broker could not register itself in the metadata.
    #[error("cannot register the broker in the cluster metadata: {0}")]
    Registration(#[from] CommitError),
    /// A partition log could not be opened.
    #[error("cannot open partition logs: {0}")]
    Storage(#[from] sluice_storage::StorageError),
    /// A `__consumer_offsets` or `__transaction_state` partition could not
    /// be read back.
    #[error(transparent)]
    CoordinatorLoad(#[from] crate::coordinator_load::LoadError),
    /// Other I/O failure during start-up.
    #[error("start-up I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// This node could not start its part of the cluster or join it.
    #[error(transparent)]
    Cluster(#[from] sluice_cluster::ClusterError),
    /// The data directory was written in the other mode (single node or cluster).
    #[error("{0}")]
    DataDirMode(String),
    /// The data directory was part of another cluster.
    #[error(
        "data directory {dir} belongs to cluster {ours}, but the voters form cluster {theirs}: \
         use this node's own data directory, or an empty one"
    )]
    OtherCluster {
        /// The data directory.
        dir: PathBuf,
        /// The cluster id in its meta.properties.
        ours: String,
        /// The cluster the voters form.
        theirs: String,
    },
    /// The node id is registered with another data directory.
    #[error(
        "node id {node_id} is registered with data directory {registered}, not this one \
         ({ours}): node ids are never reused, so a node with a new data directory needs a new \
         --node-id (and its own entry in --voters)"
    )]
    NodeIdReused {
        /// The node id.
        node_id: i32,
        /// The data directory registered under it.
        registered: uuid::Uuid,
        /// This data directory.
        ours: uuid::Uuid,
    },
}

/// Makes the [`crate::http::HttpExtension`] the HTTP listener mounts, from the admin
/// facade and the listener's stop signal; `None` mounts nothing.
pub type HttpExtensionFactory = Box<
    dyn FnOnce(
            crate::admin::Admin,
            watch::Receiver<bool>,
        ) -> Option<Arc<dyn crate::http::HttpExtension>>
        + Send,
>;

/// A running broker; dropping it does not stop it, call [`Server::shutdown`].
pub struct Server {
    broker: Arc<Broker>,
    local_addr: SocketAddr,
    bound: Vec<(ListenerSpec, SocketAddr)>,
    stop: watch::Sender<bool>,
    accept_tasks: Vec<tokio::task::JoinHandle<JoinSet<()>>>,
    background: JoinSet<()>,
    /// The log cleaner's threads.
    cleaner: Option<LogCleaner>,
    http_addr: Option<SocketAddr>,
    /// What `/ready` answers.
    ready: Arc<AtomicBool>,
    http_stop: watch::Sender<bool>,
    http_task: Option<tokio::task::JoinHandle<()>>,
    _lock: File,
    /// Partitions found on disk at start.
    pub recovered_partitions: usize,
    /// Whether the previous shutdown was unclean and tails were recovered.
    pub recovered_unclean: bool,
}

/// The environment variable that shifts a node's wall clock (fault injection).
pub const CLOCK_SKEW_ENV: &str = "SLUICE_FAULT_CLOCK_SKEW_MS";

/// How far [`CLOCK_SKEW_ENV`] may shift the clock: a day either way.
const MAX_CLOCK_SKEW_MS: i64 = 86_400_000;

/// The broker's wall clock: the system's, or — fault injection for testing a cluster
/// whose clocks disagree — the system's shifted by [`CLOCK_SKEW_ENV`] milliseconds, with a
/// warning at start so that a skewed node is never mistaken for a healthy one.
fn wall_clock() -> Result<Arc<dyn Clock>, StartError> {
    let Ok(value) = std::env::var(CLOCK_SKEW_ENV) else {
        return Ok(Arc::new(SystemClock));
    };
    let skew_ms = value
        .trim()
        .parse::<i64>()
        .ok()
        .filter(|ms| ms.abs() <= MAX_CLOCK_SKEW_MS)
        .ok_or_else(|| {
            StartError::Config(ConfigError::Invalid {
                name: CLOCK_SKEW_ENV.into(),
                reason: format!(
                    "{value:?} is not a number of milliseconds within ±{MAX_CLOCK_SKEW_MS}; unset it to use the system clock"
                ),
            })
        })?;
    tracing::warn!(
        skew_ms,
        "the wall clock is shifted by {skew_ms} ms ({CLOCK_SKEW_ENV}, fault injection): record timestamps, retention and timeouts follow the shifted clock"
    );
    Ok(Arc::new(SkewedClock::new(skew_ms)))
}

/// Starts recording the sync ledger when `SLUICE_FAULT_SYNC_LEDGER` names one (fault
/// injection: a harness simulates a power loss with it, see
/// [`sluice_storage::sync_ledger`]), with a warning, so that a node in this test mode is
/// never mistaken for a normal one.
fn record_sync_ledger() -> Result<(), StartError> {
    let Some(path) = std::env::var_os(sluice_storage::sync_ledger::ENV) else {
        return Ok(());
    };
    let path = PathBuf::from(path);
    sluice_storage::sync_ledger::record_to(&path).map_err(|e| {
        StartError::Config(ConfigError::Invalid {
            name: sluice_storage::sync_ledger::ENV.into(),
            reason: format!("{e}; unset it to run without the power-loss test mode"),
        })
    })?;
    tracing::warn!(
        ledger = %path.display(),
        "recording every log file sync ({}, fault injection: a simulated power loss cuts each file back to its last sync)", sluice_storage::sync_ledger::ENV
    );
    Ok(())
}

impl Server {
    /// Locks the data dir, opens metadata and logs, and starts listening.
    pub async fn start(config: BrokerConfig) -> Result<Self, StartError> {
        Self::start_with(config, None).await
    }

    /// As [`Server::start`], with `http_extension` making what the HTTP listener serves
    /// besides `/metrics`, `/health` and `/ready` (not called when HTTP is off). It gets the
    /// admin facade and a signal that fires when the HTTP listener stops.
    pub async fn start_with(
        config: BrokerConfig,
        http_extension: Option<HttpExtensionFactory>,
    ) -> Result<Self, StartError> {
        config.validate()?;
        let data_dir = config.data_dir.clone();
        let dir_err = |source| StartError::DataDir {
            path: data_dir.clone(),
            source,
        };
        std::fs::create_dir_all(data_dir.join("meta")).map_err(dir_err)?;
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(data_dir.join(LOCK_FILE))
            .map_err(dir_err)?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => return Err(StartError::Locked(data_dir)),
            Err(std::fs::TryLockError::Error(e)) => return Err(dir_err(e)),
        }
        let marker = data_dir.join(CLEAN_SHUTDOWN_FILE);
        let clean = marker.exists();
        let metadata_state = if config.is_cluster() {
            "raft"
        } else {
            crate::metadata::LOCAL_LOG_FILE
        };
        let fresh = !data_dir.join("meta").join(metadata_state).exists();
        let recover = !clean && !fresh;
        if clean {
            std::fs::remove_file(&marker).map_err(dir_err)?;
        }

        let mut listeners = Vec::new();
        for spec in config.listener_specs()? {
            let listener = bind(spec.address, config.listeners.is_some()).await?;
            let bound = listener.local_addr()?;
            listeners.push((listener, spec, bound));
        }
        let local_addr = listeners
            .first()
            .map(|(_, _, bound)| *bound)
            .ok_or_else(|| std::io::Error::other("no listener configured"))?;
        let bound: Vec<(ListenerSpec, SocketAddr)> = listeners
            .iter()
            .map(|(_, spec, addr)| (spec.clone(), *addr))
            .collect();
        let http_listener = match config.http_listen {
            Some(addr) => Some(crate::http::bind(addr).await?),
            None => None,
        };
        let http_addr = match &http_listener {
            Some(l) => Some(l.local_addr()?),
            None => None,
        };
        record_sync_ledger()?;
        // Raised before the logs open, so opening many partitions has the whole limit.
        let fd_budget = FdBudget::from_process(config.max_connections);
        let (broker, recovered_partitions) = open_broker(
            config,
            BoundListeners::All(bound.clone()),
            recover,
            fd_budget,
            wall_clock()?,
        )
        .await?;

        let (stop, stop_rx) = watch::channel(false);
        if let Some(cluster) = broker.cluster.get() {
            // The other nodes' Kafka requests (replica fetches, heartbeats, markers) go
            // through this broker's handlers; its own go to them over the cluster listener.
            cluster.register_handler(RpcKind::Kafka, PeerRequests::new(broker.clone()));
            broker.start_cluster(cluster.transport(RpcKind::Kafka), stop_rx.clone());
        }
        let accept_tasks = listeners
            .into_iter()
            .map(|(listener, spec, _)| {
                tokio::spawn(accept_loop(listener, spec, broker.clone(), stop_rx.clone()))
            })
            .collect();
        let mut background = JoinSet::new();
        if let Some(tls) = broker.security.tls.clone() {
            background.spawn(poll_tls_files(tls, stop_rx.clone()));
        }
        if let Some(jwks) = broker.security.jwks.clone() {
            background.spawn(crate::jwks::refresh_jwks(jwks, stop_rx.clone()));
        }
        background.spawn(crate::retention::run(broker.clone(), stop_rx.clone()));
        background.spawn(crate::retention::abort_timed_out_transactions(
            broker.clone(),
            stop_rx,
        ));
        let cleaner = Some(LogCleaner::start(broker.clone())?);
        let ready = Arc::new(AtomicBool::new(false));
        let (http_stop, http_stop_rx) = watch::channel(false);
        let http_task = http_listener.map(|listener| {
            let extension = http_extension.and_then(|make| {
                make(
                    crate::admin::Admin::new(broker.clone()),
                    http_stop_rx.clone(),
                )
            });
            let state = Arc::new(crate::http::HttpState {
                broker: broker.clone(),
                ready: ready.clone(),
                extension,
            });
            tokio::spawn(crate::http::serve(listener, state, http_stop_rx))
        });
        // The logs are open and the Kafka listener accepts.
        ready.store(true, Ordering::Release);
        Ok(Self {
            broker,
            local_addr,
            bound,
            stop,
            accept_tasks,
            background,
            cleaner,
            http_addr,
            ready,
            http_stop,
            http_task,
            _lock: lock,
            recovered_partitions,
            recovered_unclean: recover,
        })
    }

    /// The first listener's bound address (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Every listener with its bound address.
    pub fn listeners(&self) -> &[(ListenerSpec, SocketAddr)] {
        &self.bound
    }

    /// Rebuilds the TLS configuration from its files now (SIGHUP); a broken file keeps the
    /// old one. Open connections keep theirs.
    pub fn reload_tls(&self) {
        if let Some(tls) = &self.broker.security.tls {
            let _ = tls.reload();
        }
    }

    /// The bound HTTP listener address, if HTTP is on.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http_addr
    }

    /// The shared broker state.
    pub fn broker(&self) -> &Arc<Broker> {
        &self.broker
    }

    /// Moves this node's leaderships to other replicas while it still serves, serves a
    /// moment longer if it led any ([`HANDOVER_LINGER`]), then has the controller fence it.
    async fn controlled_shutdown(&self) {
        tracing::info!(
            "controlled shutdown: asking the controller to move this node's leaderships away"
        );
        let lifecycle = &self.broker.lifecycle;
        let unanswered = Duration::from_millis(self.broker.config.broker_session_timeout_ms);
        let led = self
            .broker
            .metadata
            .image()
            .leads_any(self.broker.node_id());
        match lifecycle
            .shut_down(CONTROLLED_SHUTDOWN_TIMEOUT, unanswered)
            .await
        {
            ShutdownOutcome::Released => {
                if led {
                    tracing::info!(
                        "controlled shutdown: this node leads nothing any more; serving {HANDOVER_LINGER:?} longer, so that clients learn the new leaders"
                    );
                    tokio::time::sleep(HANDOVER_LINGER).await;
                } else {
                    tracing::info!("controlled shutdown: this node leads nothing any more");
                }
                if !lifecycle.fence_for_shutdown(FENCE_TIMEOUT).await {
                    tracing::warn!(
                        "controlled shutdown: the controller did not fence this node within {FENCE_TIMEOUT:?}; stopping anyway (it is fenced once its heartbeats stop)"
                    );
                }
            }
            ShutdownOutcome::TimedOut => tracing::warn!(
                "controlled shutdown: the controller did not move every leadership within {CONTROLLED_SHUTDOWN_TIMEOUT:?}; stopping anyway"
            ),
            ShutdownOutcome::NoController => tracing::warn!(
                "controlled shutdown: no controller answered for {unanswered:?} (no quorum); stopping without moving leaderships"
            ),
        }
    }

    /// In a cluster, first moves this node's leaderships to other replicas while it still
    /// serves (controlled shutdown, [`Self::controlled_shutdown`]), so that clients see no
    /// error; then stops accepting, lets in-flight requests finish, syncs every log and
    /// writes the clean-shutdown marker so the next start skips recovery.
    pub async fn shutdown(mut self) -> Result<(), StartError> {
        if self.broker.metadata.has_controller() {
            self.controlled_shutdown().await;
        }
        self.ready.store(false, Ordering::Release);
        let _ = self.stop.send(true);
        let mut connections = JoinSet::new();
        for task in self.accept_tasks.drain(..) {
            if let Ok(mut set) = task.await {
                // Waits for one listener's connections; aborting it (dropping the set)
                // aborts them.
                connections.spawn(async move { while set.join_next().await.is_some() {} });
            }
        }
        let drained = tokio::time::timeout(DRAIN_TIMEOUT, async {
            while connections.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::warn!("in-flight requests did not finish within {DRAIN_TIMEOUT:?}; closing");
            connections.abort_all();
        }
        self.background.abort_all();
        if let Some(cleaner) = self.cleaner.take() {
            tokio::task::spawn_blocking(move || cleaner.shutdown())
                .await
                .map_err(|e| StartError::Io(std::io::Error::other(e)))?;
        }
        // Leave the quorum before the logs close: nothing applies metadata after this.
        if let Some(cluster) = self.broker.cluster.get() {
            cluster.shutdown().await;
        }
        let broker = self.broker.clone();
        tokio::task::spawn_blocking(move || broker.replicas.logs().close_all())
            .await
            .map_err(|e| StartError::Io(std::io::Error::other(e)))??;
        std::fs::write(self.broker.config.data_dir.join(CLEAN_SHUTDOWN_FILE), b"")?;
        // HTTP goes last, so `/ready` says 503 (not connection refused) while draining.
        let _ = self.http_stop.send(true);
        if let Some(task) = self.http_task.take() {
            let _ = task.await;
        }
        Ok(())
    }
}

/// Resolves once shutdown has been requested (or the sender is gone).
pub(crate) async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// Accepts clients while the connection limit leaves room: at the limit it stops
/// accepting, so new clients wait in the listen backlog as with Kafka.
async fn accept_loop(
    listener: TcpListener,
    spec: ListenerSpec,
    broker: Arc<Broker>,
    mut stop: watch::Receiver<bool>,
) -> JoinSet<()> {
    /// A failing accept (EMFILE, ENFILE) is retried after this pause and logged at most
    /// once per `ACCEPT_WARN_INTERVAL`, not every time.
    const ACCEPT_RETRY: Duration = Duration::from_millis(50);
    const ACCEPT_WARN_INTERVAL: Duration = Duration::from_secs(10);
    let accept_failures = LogThrottle::new(ACCEPT_WARN_INTERVAL);
    let limits = broker.connection_limits.clone();
    let mut connections = JoinSet::new();
    let connection_stop = stop.clone();
    let mut slot = None;
    loop {
        tokio::select! {
            _ = crate::server::stopped(&mut stop) => break,
            permit = limits.wait_for_slot(), if slot.is_none() => match permit {
                Some(permit) => slot = Some(permit),
                None => break,
            },
            accepted = listener.accept(), if slot.is_some() => match accepted {
                Ok((socket, peer)) => {
                    let Some(admitted) = slot.take().and_then(|p| limits.admit(p, peer.ip())) else {
                        continue; // over max-connections-per-ip: dropping the socket closes it
                    };
                    let _ = socket.set_nodelay(true);
                    let broker = broker.clone();
                    let stop = connection_stop.clone();
                    let spec = spec.clone();
                    connections.spawn(async move {
                        serve_client(socket, peer, spec, broker, stop).await;
                        drop(admitted);
                    });
                }
                Err(e) => {
                    if let Some(held_back) = accept_failures.ready() {
                        tracing::warn!(error = %e, held_back, "accept failed; retrying");
                    }
                    tokio::time::sleep(ACCEPT_RETRY).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    connections
}

/// Binds one listener's address; `listeners_flag` says which flag to blame.
async fn bind(addr: SocketAddr, listeners_flag: bool) -> Result<TcpListener, StartError> {
    TcpListener::bind(addr).await.map_err(|source| {
        let hint = match source.kind() {
            std::io::ErrorKind::AddrInUse if listeners_flag => {
                " (another process uses this port; stop it or change the port in --listeners)"
            }
            std::io::ErrorKind::AddrInUse => {
                " (another process uses this port; stop it or pass --listen with another port)"
            }
            std::io::ErrorKind::PermissionDenied => " (ports below 1024 need privileges)",
            _ => "",
        };
        StartError::Bind { addr, source, hint }
    })
}

/// Serves one accepted client of the listener `spec`: the TLS handshake first on TLS
/// listeners (its principal from the client certificate on SSL ones), within the
/// authentication timeout, then the Kafka connection.
async fn serve_client(
    socket: TcpStream,
    peer: SocketAddr,
    spec: ListenerSpec,
    broker: Arc<Broker>,
    stop: watch::Receiver<bool>,
) {
    let identity = ConnectionIdentity {
        connection_id: ConnectionId::next(),
        peer,
        listener: spec.name.clone(),
        security_protocol: spec.protocol,
        principal: KafkaPrincipal::anonymous(),
    };
    if !spec.protocol.uses_tls() {
        serve_connection(socket, identity, broker, stop).await;
        return;
    }
    let Some(tls) = broker.security.tls.clone() else {
        tracing::error!(listener = %spec.name, "TLS listener without a TLS configuration; closing");
        return;
    };
    let timeout = broker.security.auth_timeout;
    let first = tokio::time::timeout(timeout, first_byte(&socket))
        .await
        .unwrap_or(FirstByte::Nothing);
    let Some(stream) = tls_handshake(&first, socket, &tls, &spec, timeout).await else {
        return;
    };
    let mut identity = identity;
    if spec.protocol == sluice_security::SecurityProtocol::Ssl {
        let subject = sluice_security::tls::peer_subject(stream.get_ref().1.peer_certificates());
        match broker.security.certificate_principal(subject) {
            Ok(principal) => {
                broker.security.auth_metrics.record(&spec.name, "SSL", true);
                identity.principal = principal;
            }
            Err(reason) => {
                broker
                    .security
                    .auth_metrics
                    .record(&spec.name, "SSL", false);
                tracing::warn!(%peer, listener = %spec.name, %reason, "client certificate refused; closing");
                return;
            }
        }
    }
    serve_connection(SharedStream(stream), identity, broker, stop).await;
}

/// What the first byte of a connection says about the client.
enum FirstByte {
    /// 0x16: a TLS handshake record.
    Tls,
    /// Anything else (a Kafka frame starts with its size, whose first byte is 0).
    Other,
    /// Nothing arrived.
    Nothing,
}

/// Peeks at the first byte the client sent, without consuming it.
async fn first_byte(socket: &TcpStream) -> FirstByte {
    let mut first = [0u8; 1];
    match socket.peek(&mut first).await {
        Ok(1) if first == [0x16] => FirstByte::Tls,
        Ok(1) => FirstByte::Other,
        _ => FirstByte::Nothing,
    }
}

/// How much a TLS connection reads from its socket at once.
const TLS_READ_BUFFER: usize = 64 * 1024;

/// The TLS handshake of a client within `timeout`; failures are logged in one line.
async fn tls_handshake(
    first: &FirstByte,
    socket: TcpStream,
    tls: &TlsReloader,
    spec: &ListenerSpec,
    timeout: Duration,
) -> Option<tokio_rustls::server::TlsStream<BufReader<TcpStream>>> {
    let peer = socket.peer_addr().ok();
    let peer = peer.map_or_else(String::new, |p| p.to_string());
    if let FirstByte::Other = first {
        tracing::warn!(
            %peer,
            listener = %spec.name,
            "plaintext client on TLS listener {spec}: closing (the client needs security.protocol={})",
            spec.protocol
        );
        return None;
    }
    // rustls reads the socket 4 KiB at a time; a buffer under it reads as much as has
    // arrived in one system call (at 250 MB/s, 60,000 reads a second become a few thousand).
    let socket = BufReader::with_capacity(TLS_READ_BUFFER, socket);
    match tokio::time::timeout(timeout, tls.acceptor(spec.protocol).accept(socket)).await {
        Ok(Ok(stream)) => Some(stream),
        Ok(Err(e)) => {
            tracing::warn!(%peer, listener = %spec.name, error = %e, "TLS handshake failed; closing");
            None
        }
        Err(_) => {
            tracing::warn!(%peer, listener = %spec.name, "TLS handshake not finished within {timeout:?}; closing");
            None
        }
    }
}

/// Reloads the TLS files when they change (checked every 10 s) and on SIGHUP, until `stop`.
async fn poll_tls_files(tls: Arc<TlsReloader>, mut stop: watch::Receiver<bool>) {
    const POLL: Duration = Duration::from_secs(10);
    let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
    loop {
        let sighup = async {
            match hangup.as_mut() {
                Some(s) => s.recv().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = stopped(&mut stop) => return,
            _ = tokio::time::sleep(POLL) => tls.reload_if_changed(),
            _ = sighup => { let _ = tls.reload(); }
        }
    }
}

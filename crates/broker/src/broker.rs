//! The broker's shared state: configuration, metadata, partitions and
//! coordinators, wired together once at start-up.

use std::path::Path;
use std::sync::Arc;

use sluice_group::{GroupConfig, GroupCoordinator};
use sluice_protocol::clock::Clock;
use sluice_protocol::kafka_protocol;
use sluice_protocol::model::TopicPartition;
use sluice_storage::{FaultHook, OpenFiles, StorageEnv};
use sluice_txn::{TransactionCoordinator, TxnConfig};

use crate::config::BrokerConfig;
use crate::connection_limits::ConnectionLimits;
use crate::controller::Controller;
use crate::controller::lifecycle::BrokerLifecycle;
use crate::coordinator_load::CoordinatorReconciler;
use crate::coordinator_log::CoordinatorTopicLog;
use crate::fd_budget::FdBudget;
use crate::log_manager::LogManager;
use crate::log_reconciler::LogReconciler;
use crate::metadata::{
    BrokerRegistration, CommitError, EndpointRecord, MetadataImage, MetadataRecord, MetadataStore,
    TopicImage,
};
use crate::metrics::Metrics;
use crate::producer_ids::ProducerIdAllocator;
use crate::replica_fetcher::ReplicaFetchers;
use crate::replica_manager::ReplicaManager;
use crate::security::{BoundListeners, Security};
use crate::topic_admin::{CONSUMER_OFFSETS_TOPIC, TRANSACTION_STATE_TOPIC};
use crate::topic_config::TopicSettings;
use crate::txn_wiring::{BrokerProducerIds, PartitionMarkerWriter};

/// Everything request handlers share.
pub struct Broker {
    /// The configuration the broker started with.
    pub config: BrokerConfig,
    /// Host advertised to clients of the first listener.
    pub advertised_host: String,
    /// Port advertised to clients of the first listener.
    pub advertised_port: i32,
    /// This cluster's id (generated on first start, kept in `meta/`).
    pub cluster_id: String,
    /// The wall clock everything on this broker stamps and compares times
    /// with: appends, retention, produce timestamp checks, coordinator
    /// records and the coordinators' timeouts and expiry.
    pub clock: Arc<dyn Clock>,
    /// Topics and configs.
    pub metadata: Arc<MetadataStore>,
    /// Opens, retunes and removes partition logs as metadata changes.
    pub log_reconciler: Arc<LogReconciler>,
    /// The partitions on this node: every append and read goes through it.
    pub replicas: ReplicaManager,
    /// The other nodes of the cluster (Kafka requests to them), once the node has peers.
    pub peers: std::sync::OnceLock<Arc<dyn sluice_cluster::Transport>>,
    /// Copies the logs of the partitions this node follows from their leaders.
    pub replica_fetchers: Arc<ReplicaFetchers>,
    /// The controller, acting while this node leads the metadata quorum of a cluster.
    pub controller: Arc<Controller>,
    /// This broker's heartbeats to the controller.
    pub lifecycle: Arc<BrokerLifecycle>,
    /// The consumer group coordinator, with the `__consumer_offsets`
    /// partitions this node leads loaded (all of them, on one node).
    pub groups: GroupCoordinator,
    /// Producer ids for InitProducerId.
    pub producer_ids: ProducerIdAllocator,
    /// The transaction coordinator, with the `__transaction_state`
    /// partitions this node leads loaded (all of them, on one node).
    pub txn: TransactionCoordinator,
    /// Request, traffic and sync counters served at `/metrics`.
    pub metrics: Arc<Metrics>,
    /// How the process's file descriptors are shared between connections and log files.
    pub fd_budget: FdBudget,
    /// Connections open now against `max-connections` and `max-connections-per-ip`.
    pub(crate) connection_limits: Arc<ConnectionLimits>,
    /// Where clients reach each listener of this broker, as registered in the metadata.
    pub endpoints: Vec<EndpointRecord>,
    /// TLS, SASL and the credentials they check.
    pub security: Arc<Security>,
}

impl Broker {
    /// Node id of this broker.
    pub fn node_id(&self) -> i32 {
        self.config.node_id
    }

    /// Starts working with the other nodes over `peers` (Kafka requests to them), until
    /// `stop`: followers fetch from their leaders, leaders keep their ISRs, the broker
    /// heartbeats to the controller, and the controller acts while this node leads the
    /// metadata quorum.
    pub fn start_cluster(
        self: &Arc<Self>,
        peers: Arc<dyn sluice_cluster::Transport>,
        stop: tokio::sync::watch::Receiver<bool>,
    ) {
        if self.peers.set(peers).is_err() {
            tracing::error!("the cluster was started twice on this node; keeping the first");
            return;
        }
        self.replica_fetchers.start(stop.clone());
        crate::isr::start(Arc::downgrade(self), stop.clone());
        if self.metadata.has_controller() {
            self.controller.start(stop.clone());
            self.lifecycle.start(stop);
        }
    }

    /// Resolves the settings partitions of `topic` run with.
    pub fn topic_settings(&self, image: &MetadataImage, topic: &TopicImage) -> Arc<TopicSettings> {
        Arc::new(TopicSettings::resolve(
            &topic.configs,
            &self.config,
            &image.broker_configs,
        ))
    }
}

/// Builds the broker state of a single node from the data directory (its metadata in the
/// local metadata log), telling the time by `clock`.
pub(crate) async fn open_broker(
    config: BrokerConfig,
    bound: impl Into<BoundListeners>,
    recover: bool,
    fd_budget: FdBudget,
    clock: Arc<dyn Clock>,
) -> Result<(Arc<Broker>, usize), crate::server::StartError> {
    let meta_dir = config.data_dir.join("meta");
    let metadata = MetadataStore::open_local(&meta_dir, config.node_id)?;
    open_broker_with_metadata(config, metadata, bound, recover, fd_budget, clock, None).await
}

/// Builds the broker state from the data directory with `metadata` (whose backend
/// commits: the local log, or a quorum), telling the time by `clock`; in tests, every
/// file operation of the logs first goes to `storage_faults`.
pub(crate) async fn open_broker_with_metadata(
    config: BrokerConfig,
    metadata: Arc<MetadataStore>,
    bound: impl Into<BoundListeners>,
    recover: bool,
    fd_budget: FdBudget,
    clock: Arc<dyn Clock>,
    storage_faults: Option<FaultHook>,
) -> Result<(Arc<Broker>, usize), crate::server::StartError> {
    let meta_dir = config.data_dir.join("meta");
    let cluster_id = load_or_create_cluster_id(&meta_dir)?;
    let directory_id = load_or_create_directory_id(&meta_dir)?;
    let endpoints = config.advertised_endpoints(&bound.into().resolve(&config));
    let (advertised_host, advertised_port) = endpoints
        .first()
        .map_or((String::new(), 0), |e| (e.host.clone(), e.port));
    let security = Arc::new(Security::from_config(&config, metadata.clone())?);
    let metrics = Arc::new(Metrics::default());
    let logs = LogManager::new(
        config.data_dir.clone(),
        metrics.clone(),
        match storage_faults {
            Some(hook) => StorageEnv::with_faults(OpenFiles::new(fd_budget.log_files), hook),
            None => StorageEnv::new(OpenFiles::new(fd_budget.log_files)),
        },
        config.node_id,
        clock.clone(),
    )?;
    let connection_limits =
        ConnectionLimits::new(fd_budget.connections, config.max_connections_per_ip);
    // Keys hash over the partitions the topics have, or will be created with.
    let image = metadata.image();
    let partitions_of = |topic: &str, configured: i32| {
        image
            .topic(topic)
            .map_or(configured, |t| t.partition_count())
    };
    let offsets_partitions = partitions_of(CONSUMER_OFFSETS_TOPIC, config.offsets_topic_partitions);
    let group_config = GroupConfig {
        initial_rebalance_delay_ms: config.group_initial_rebalance_delay_ms,
        offsets_retention_ms: config.offsets_retention_minutes.saturating_mul(60_000),
        offsets_partitions,
        ..GroupConfig::default()
    };
    let txn_config = TxnConfig {
        transaction_max_timeout_ms: config.transaction_max_timeout_ms,
        state_partitions: partitions_of(
            TRANSACTION_STATE_TOPIC,
            config.transaction_state_partitions,
        ),
        offsets_partitions,
        transactional_id_expiration_ms: config.transactional_id_expiration_ms,
    };
    let producer_ids = ProducerIdAllocator::new(&metadata);
    let broker = Arc::new_cyclic(|weak| Broker {
        advertised_host,
        advertised_port,
        cluster_id,
        clock: clock.clone(),
        metadata,
        log_reconciler: Arc::new(LogReconciler::new(weak.clone())),
        replicas: ReplicaManager::new(logs),
        peers: std::sync::OnceLock::new(),
        replica_fetchers: Arc::new(ReplicaFetchers::new(weak.clone())),
        controller: Arc::new(Controller::new(weak.clone())),
        lifecycle: Arc::new(BrokerLifecycle::new(weak.clone())),
        groups: GroupCoordinator::with_clock(
            group_config,
            Arc::new(CoordinatorTopicLog::new(
                weak.clone(),
                CONSUMER_OFFSETS_TOPIC,
            )),
            clock.clone(),
        ),
        producer_ids,
        txn: TransactionCoordinator::with_clock(
            txn_config,
            Arc::new(CoordinatorTopicLog::new(
                weak.clone(),
                TRANSACTION_STATE_TOPIC,
            )),
            Arc::new(PartitionMarkerWriter::new(weak.clone())),
            Arc::new(BrokerProducerIds::new(weak.clone())),
            clock,
        ),
        metrics,
        fd_budget,
        connection_limits,
        endpoints,
        security,
        config,
    });
    // AddPartitionsToTxn refuses partitions that do not exist, as Kafka does.
    let weak = Arc::downgrade(&broker);
    broker
        .txn
        .set_partition_check(Arc::new(move |tp: &TopicPartition| {
            let exists = weak.upgrade().is_some_and(|b| {
                let image = b.metadata.image();
                image
                    .topic(&tp.topic)
                    .is_some_and(|t| b.replicas.logs().get(t.id, tp.partition).is_some())
            });
            (!exists).then_some(kafka_protocol::error::ResponseError::UnknownTopicOrPartition)
        }));
    let image = broker.metadata.image();
    let node = broker.node_id();
    let opened = broker.replicas.logs().open_all(
        image
            .topics()
            .map(|t| (t, broker.topic_settings(&image, t), t.partitions_on(node))),
        recover,
    )?;
    broker.security.refresh_acls(&broker.metadata.image());
    broker
        .metadata
        .subscribe(Arc::new(crate::security::AclPublisher(
            broker.security.clone(),
        )));
    broker.metadata.subscribe(broker.log_reconciler.clone());
    // After the logs: a coordinator partition is loaded from its opened log.
    broker
        .metadata
        .subscribe(Arc::new(CoordinatorReconciler::new(Arc::downgrade(
            &broker,
        ))));
    register(&broker, directory_id).await?;
    crate::security::ensure_bootstrap_user(&broker.config, &broker.metadata).await?;
    broker.producer_ids.reserve_ahead().await?;
    crate::coordinator_load::load_all(&broker)?;
    Ok((broker, opened))
}

/// Records this broker and where clients reach it in the metadata (Kafka's broker
/// registration). In a cluster every start registers again, fenced, with a new broker
/// epoch, and the controller lets the broker in once it has caught up; a single node
/// registers unfenced, and only when the metadata does not say so already.
async fn register(broker: &Arc<Broker>, incarnation_id: uuid::Uuid) -> Result<(), CommitError> {
    let clustered = broker.metadata.has_controller();
    let record = MetadataRecord::BrokerRegistered {
        id: broker.node_id(),
        incarnation_id,
        endpoints: broker.endpoints.clone(),
        rack: None,
        fenced: clustered,
    };
    broker
        .metadata
        .propose(|image| {
            let mut registered = image.clone();
            registered.apply(&record);
            let unchanged = !clustered
                && image.broker(broker.node_id()).map(registered_as)
                    == registered.broker(broker.node_id()).map(registered_as);
            Ok::<_, CommitError>((if unchanged { Vec::new() } else { vec![record] }, ()))
        })
        .await
}

/// What a single node's registration says about it, its broker epoch aside.
fn registered_as(
    b: &BrokerRegistration,
) -> (uuid::Uuid, Vec<EndpointRecord>, Option<String>, bool) {
    (
        b.incarnation_id,
        b.endpoints.clone(),
        b.rack.clone(),
        b.fenced,
    )
}

/// The id of this data directory, created once (Kafka's `directory.id` in
/// `meta.properties`): a node id reused by another disk registers another incarnation.
fn load_or_create_directory_id(meta_dir: &Path) -> Result<uuid::Uuid, std::io::Error> {
    let path = meta_dir.join("meta.properties");
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    if let Some(id) = text
        .lines()
        .find_map(|l| l.strip_prefix("directory.id="))
        .and_then(|id| uuid::Uuid::parse_str(id.trim()).ok())
    {
        return Ok(id);
    }
    let id = uuid::Uuid::new_v4();
    let mut updated = text;
    if !updated.is_empty() && !updated.ends_with('\n') {
        updated.push('\n');
    }
    updated.push_str(&format!("directory.id={id}\n"));
    std::fs::write(&path, updated)?;
    Ok(id)
}

/// Kafka keeps the cluster id in `meta.properties`; so do we.
fn load_or_create_cluster_id(meta_dir: &Path) -> Result<String, std::io::Error> {
    let path = meta_dir.join("meta.properties");
    if let Ok(text) = std::fs::read_to_string(&path)
        && let Some(id) = text.lines().find_map(|l| l.strip_prefix("cluster.id="))
    {
        return Ok(id.trim().to_string());
    }
    let id = base64_url_uuid(uuid::Uuid::new_v4());
    std::fs::write(&path, format!("version=1\ncluster.id={id}\n"))?;
    Ok(id)
}

/// The URL-safe base64 character for the low six bits of `sextet`.
fn base64_char(sextet: u32) -> char {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    char::from(
        ALPHABET
            .get((sextet & 63) as usize)
            .copied()
            .unwrap_or(b'A'),
    )
}

/// Kafka renders cluster ids as URL-safe base64 of a UUID without padding.
fn base64_url_uuid(id: uuid::Uuid) -> String {
    let bytes = id.as_bytes();
    let mut out = String::with_capacity(22);
    let mut acc: u32 = 0;
    let mut bits = 0;
    for &b in bytes {
        acc = (acc << 8) | u32::from(b);
        bits += 8;
        while bits >= 6 {
            bits -= 6;
            out.push(base64_char(acc >> bits));
        }
    }
    if bits > 0 {
        out.push(base64_char(acc << (6 - bits)));
    }
    out
}

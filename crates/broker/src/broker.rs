//! The broker's shared state: configuration, metadata, partitions and
//! coordinators, wired together once at start-up.

use std::path::Path;
use std::sync::Arc;

use sluice_cluster::{ClusterConfig, ClusterNode};
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
    RecordConflict, TopicImage,
};
use crate::metrics::Metrics;
use crate::producer_ids::ProducerIdAllocator;
use crate::replica_fetcher::ReplicaFetchers;
use crate::replica_manager::ReplicaManager;
use crate::security::{BoundListeners, Security};
use crate::server::StartError;
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
    /// This node's part of the cluster (its transport to the other nodes, the request
    /// handlers it answers them with, the metadata quorum), when it is one of a cluster
    /// started with `--cluster-listen` and `--voters`.
    pub cluster: std::sync::OnceLock<Arc<ClusterNode>>,
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

/// The largest request or answer between nodes: a replica fetch answer holds up to
/// `fetch-max-bytes` of records, the rest is small.
const CLUSTER_FRAME_OVERHEAD: usize = 1024 * 1024;

/// Builds the broker state from the data directory, telling the time by `clock`: a single
/// node's metadata from the local metadata log; a cluster node's from the metadata quorum,
/// once it has joined the cluster and caught up.
pub(crate) async fn open_broker(
    config: BrokerConfig,
    bound: impl Into<BoundListeners>,
    recover: bool,
    fd_budget: FdBudget,
    clock: Arc<dyn Clock>,
) -> Result<(Arc<Broker>, usize), StartError> {
    let meta_dir = config.data_dir.join("meta");
    check_data_dir_mode(&config, &meta_dir)?;
    let directory_id = load_or_create_directory_id(&meta_dir)?;
    let Some(node) = join_cluster(&config, &meta_dir, directory_id).await? else {
        let metadata = MetadataStore::open_local(&meta_dir, config.node_id)?;
        return open_broker_with_metadata(config, metadata, bound, recover, fd_budget, clock, None)
            .await;
    };
    let metadata = node.metadata().clone();
    let opened =
        open_broker_with_metadata(config, metadata, bound, recover, fd_budget, clock, None).await;
    match opened {
        Ok((broker, partitions)) => {
            if broker.cluster.set(node).is_err() {
                tracing::error!("the cluster node was set twice; keeping the first");
            }
            Ok((broker, partitions))
        }
        Err(e) => {
            node.shutdown().await;
            Err(e)
        }
    }
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
) -> Result<(Arc<Broker>, usize), StartError> {
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
        cluster: std::sync::OnceLock::new(),
        config,
    });
    // AddPartitionsToTxn refuses partitions that do not exist, as Kafka does — in the
    // cluster's metadata, wherever their replicas are (the coordinator rarely hosts them).
    let weak = Arc::downgrade(&broker);
    broker
        .txn
        .set_partition_check(Arc::new(move |tp: &TopicPartition| {
            let exists = weak.upgrade().is_some_and(|b| {
                let image = b.metadata.image();
                image
                    .topic(&tp.topic)
                    .is_some_and(|t| t.partition(tp.partition).is_some())
            });
            (!exists).then_some(kafka_protocol::error::ResponseError::UnknownTopicOrPartition)
        }));
    // The logs open from one image and the reconcilers see every change after it: no
    // committed batch (a quorum applies them at any time) falls in between.
    let node = broker.node_id();
    let opened = broker.metadata.with_applies_paused(|image| {
        let opened = broker.replicas.logs().open_all(
            image
                .topics()
                .map(|t| (t, broker.topic_settings(image, t), t.partitions_on(node))),
            recover,
        )?;
        broker.security.refresh_acls(image);
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
        Ok::<_, StartError>(opened)
    })?;
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
///
/// A cluster registration also carries what fencing the broker changes: it leaves every
/// ISR it is not the last member of, and its leaderships go to other in-sync replicas or,
/// with none, to no one, each with a new leader epoch (Kafka's controller does the same
/// when a broker registers after an unclean shutdown). The previous incarnation may have
/// died with writes that no sync covered: were it to lead on in the same epoch, it would
/// write other batches at offsets its followers already hold, and neither side could tell.
/// A new epoch makes the followers truncate to where the leader's log really ends.
pub(crate) async fn register(
    broker: &Arc<Broker>,
    incarnation_id: uuid::Uuid,
) -> Result<(), CommitError> {
    let clustered = broker.metadata.has_controller();
    let record = MetadataRecord::BrokerRegistered {
        id: broker.node_id(),
        incarnation_id,
        endpoints: broker.endpoints.clone(),
        rack: broker.config.rack.clone(),
        fenced: clustered,
    };
    let mut attempt = 1;
    loop {
        let proposed = broker
            .metadata
            .propose(|image| {
                let mut registered = image.clone();
                registered.apply(&record);
                if clustered {
                    let mut records = vec![record.clone()];
                    records.extend(crate::controller::partition_changes(
                        broker,
                        &registered,
                        crate::controller::elections::Election::KeepOrElect,
                    ));
                    return Ok::<_, CommitError>((records, ()));
                }
                let unchanged = image.broker(broker.node_id()).map(registered_as)
                    == registered.broker(broker.node_id()).map(registered_as);
                Ok::<_, CommitError>((
                    if unchanged {
                        Vec::new()
                    } else {
                        vec![record.clone()]
                    },
                    (),
                ))
            })
            .await;
        match proposed {
            // A partition changed between the decision and the commit (a leader's ISR
            // change, the controller's election): nothing of the batch applied, so it is
            // decided again on the newer image.
            Err(CommitError::Conflict(conflict)) if attempt < REGISTRATION_ATTEMPTS => {
                tracing::debug!(%conflict, attempt, "registration raced a partition change; again");
                attempt += 1;
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            other => return other,
        }
    }
}

/// How often a registration is decided again when a partition change committed first.
const REGISTRATION_ATTEMPTS: u32 = 20;

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

/// Refuses a data directory written in the other mode: a single node's metadata log
/// cannot seed a cluster node, and a cluster node's quorum state means nothing to a single
/// node (each would start with other metadata than the directory's logs were written with).
fn check_data_dir_mode(config: &BrokerConfig, meta_dir: &Path) -> Result<(), StartError> {
    let single = meta_dir.join(sluice_metadata::LOCAL_LOG_FILE).exists();
    let cluster = meta_dir.join("raft").exists();
    match (config.is_cluster(), single, cluster) {
        (true, true, _) => Err(StartError::DataDirMode(format!(
            "data directory {} holds a single node's metadata (meta/{}); a cluster node \
             starts from an empty data directory",
            config.data_dir.display(),
            sluice_metadata::LOCAL_LOG_FILE
        ))),
        (false, _, true) => Err(StartError::DataDirMode(format!(
            "data directory {} belongs to a cluster node (meta/raft); start it with \
             --cluster-listen and --voters",
            config.data_dir.display()
        ))),
        _ => Ok(()),
    }
}

/// In cluster mode: starts this node's part of the cluster, waits until it has caught up
/// with the committed metadata, and settles the cluster id (into `meta.properties`);
/// `None` for a single node.
async fn join_cluster(
    config: &BrokerConfig,
    meta_dir: &Path,
    directory_id: uuid::Uuid,
) -> Result<Option<Arc<ClusterNode>>, StartError> {
    let (Some(listen), Some(voters)) = (config.cluster_listen, config.voters.clone()) else {
        return Ok(None);
    };
    let max_frame_bytes = usize::try_from(config.fetch_max_bytes)
        .unwrap_or(usize::MAX)
        .max(config.max_request_bytes)
        .saturating_add(CLUSTER_FRAME_OVERHEAD);
    let node = ClusterNode::start(ClusterConfig {
        node_id: config.node_id,
        listen,
        voters,
        incarnation: directory_id,
        cluster_id: read_meta_property(meta_dir, "cluster.id"),
        meta_dir: meta_dir.to_path_buf(),
        max_frame_bytes,
    })
    .await?;
    if let Err(e) = node.join().await {
        node.shutdown().await;
        return Err(e.into());
    }
    let node = Arc::new(node);
    let adopted = adopt_cluster_id(&node, config, meta_dir, directory_id).await;
    match adopted {
        Ok(()) => Ok(Some(node)),
        Err(e) => {
            node.shutdown().await;
            Err(e)
        }
    }
}

/// Settles the cluster's id: the committed one, or a new one this node commits when there
/// is none yet (the first node to find none decides), kept in `meta.properties`. A data
/// directory that was part of another cluster, or a node id registered with another data
/// directory, refuses to start.
async fn adopt_cluster_id(
    node: &ClusterNode,
    config: &BrokerConfig,
    meta_dir: &Path,
    directory_id: uuid::Uuid,
) -> Result<(), StartError> {
    let metadata = node.metadata();
    if let Some(registered) = metadata.image().broker(config.node_id)
        && registered.incarnation_id != directory_id
    {
        return Err(StartError::NodeIdReused {
            node_id: config.node_id,
            registered: registered.incarnation_id,
            ours: directory_id,
        });
    }
    let proposed = base64_url_uuid(uuid::Uuid::new_v4());
    let decided = metadata
        .propose(|image| {
            let records = match image.cluster_id() {
                Some(_) => Vec::new(),
                None => vec![MetadataRecord::ClusterIdSet {
                    cluster_id: proposed.clone(),
                }],
            };
            Ok::<_, CommitError>((records, ()))
        })
        .await;
    match decided {
        Ok(()) | Err(CommitError::Conflict(RecordConflict::ClusterIdSet(_))) => {}
        Err(e) => return Err(e.into()),
    }
    let cluster_id = metadata
        .image()
        .cluster_id()
        .map(str::to_string)
        .ok_or_else(|| {
            StartError::Registration(CommitError::Unavailable("no cluster id".into()))
        })?;
    match read_meta_property(meta_dir, "cluster.id") {
        Some(ours) if ours != cluster_id => {
            return Err(StartError::OtherCluster {
                dir: config.data_dir.clone(),
                ours,
                theirs: cluster_id,
            });
        }
        Some(_) => {}
        None => write_meta_property(meta_dir, "cluster.id", &cluster_id)?,
    }
    node.set_cluster_id(cluster_id);
    Ok(())
}

/// The id of this data directory, created once (Kafka's `directory.id` in
/// `meta.properties`): a node id reused by another disk registers another incarnation.
fn load_or_create_directory_id(meta_dir: &Path) -> Result<uuid::Uuid, std::io::Error> {
    if let Some(id) =
        read_meta_property(meta_dir, "directory.id").and_then(|id| uuid::Uuid::parse_str(&id).ok())
    {
        return Ok(id);
    }
    let id = uuid::Uuid::new_v4();
    write_meta_property(meta_dir, "directory.id", &id.to_string())?;
    Ok(id)
}

/// Kafka keeps the cluster id in `meta.properties`; so does a single node, which decides
/// its own.
fn load_or_create_cluster_id(meta_dir: &Path) -> Result<String, std::io::Error> {
    if let Some(id) = read_meta_property(meta_dir, "cluster.id") {
        return Ok(id);
    }
    let id = base64_url_uuid(uuid::Uuid::new_v4());
    write_meta_property(meta_dir, "cluster.id", &id)?;
    Ok(id)
}

const META_PROPERTIES: &str = "meta.properties";

/// A value of `meta.properties`.
fn read_meta_property(meta_dir: &Path, key: &str) -> Option<String> {
    let text = std::fs::read_to_string(meta_dir.join(META_PROPERTIES)).ok()?;
    let prefix = format!("{key}=");
    text.lines()
        .find_map(|l| l.strip_prefix(prefix.as_str()))
        .map(|v| v.trim().to_string())
}

/// Sets `key` in `meta.properties` (created with `version=1` first), keeping the rest.
fn write_meta_property(meta_dir: &Path, key: &str, value: &str) -> Result<(), std::io::Error> {
    let path = meta_dir.join(META_PROPERTIES);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|_| "version=1\n".to_string());
    let prefix = format!("{key}=");
    let mut lines: Vec<String> = text
        .lines()
        .filter(|l| !l.starts_with(prefix.as_str()))
        .map(str::to_string)
        .collect();
    lines.push(format!("{key}={value}"));
    std::fs::write(&path, lines.join("\n") + "\n")
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

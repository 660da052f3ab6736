//! The broker's shared state: configuration, metadata, partitions and
//! coordinators, wired together once at start-up.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use sluice_group::{GroupConfig, GroupCoordinator};
use sluice_protocol::kafka_protocol;
use sluice_storage::{OpenFiles, StorageEnv};
use sluice_txn::{TransactionCoordinator, TxnConfig};
use tokio::sync::Notify;

use crate::config::BrokerConfig;
use crate::connection_limits::ConnectionLimits;
use crate::fd_budget::FdBudget;
use crate::group_log::{OffsetsTopicLog, replay};
use crate::log_manager::LogManager;
use crate::metadata::{MetadataImage, MetadataStore, TopicImage};
use crate::metrics::Metrics;
use crate::producer_ids::ProducerIdAllocator;
use crate::topic_config::TopicSettings;
use crate::txn_wiring::{BrokerProducerIds, PartitionMarkerWriter, TransactionStateLog};

/// Everything request handlers share.
pub struct Broker {
    /// The configuration the broker started with.
    pub config: BrokerConfig,
    /// Host and port advertised to clients.
    pub advertised_host: String,
    /// Port advertised to clients.
    pub advertised_port: i32,
    /// This cluster's id (generated on first start, kept in `meta/`).
    pub cluster_id: String,
    /// Topics and configs.
    pub metadata: MetadataStore,
    /// The partitions on disk.
    pub logs: LogManager,
    /// Woken on every append so long-polling fetches can re-check.
    pub appended: Notify,
    /// The consumer group coordinator (every group lives on this node).
    pub groups: GroupCoordinator,
    /// Producer ids for InitProducerId.
    pub producer_ids: ProducerIdAllocator,
    /// The transaction coordinator (every transactional id lives on this node).
    pub txn: TransactionCoordinator,
    /// Request, traffic and sync counters served at `/metrics`.
    pub metrics: Arc<Metrics>,
    /// How the process's file descriptors are shared between connections and log files.
    pub fd_budget: FdBudget,
    /// Connections open now against `max-connections` and `max-connections-per-ip`.
    pub(crate) connection_limits: Arc<ConnectionLimits>,
}

impl Broker {
    /// Node id of this broker.
    pub fn node_id(&self) -> i32 {
        self.config.node_id
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

/// Builds the broker state from the data directory.
pub(crate) fn open_broker(
    config: BrokerConfig,
    bound: SocketAddr,
    recover: bool,
    fd_budget: FdBudget,
) -> Result<(Arc<Broker>, usize), crate::server::StartError> {
    let meta_dir = config.data_dir.join("meta");
    let metadata = MetadataStore::open(&meta_dir)?;
    let cluster_id = load_or_create_cluster_id(&meta_dir)?;
    let (advertised_host, advertised_port) = config.advertised(bound);
    let metrics = Arc::new(Metrics::default());
    let logs = LogManager::new(
        config.data_dir.clone(),
        metrics.clone(),
        StorageEnv::new(OpenFiles::new(fd_budget.log_files)),
    )?;
    let connection_limits =
        ConnectionLimits::new(fd_budget.connections, config.max_connections_per_ip);
    let group_config = GroupConfig {
        initial_rebalance_delay_ms: config.group_initial_rebalance_delay_ms,
        offsets_retention_ms: config.offsets_retention_minutes.saturating_mul(60_000),
        ..GroupConfig::default()
    };
    let txn_config = TxnConfig {
        transaction_max_timeout_ms: config.transaction_max_timeout_ms,
        state_partitions: config.transaction_state_partitions,
        offsets_partitions: config.offsets_topic_partitions,
        transactional_id_expiration_ms: config.transactional_id_expiration_ms,
    };
    let broker = Arc::new_cyclic(|weak| Broker {
        advertised_host,
        advertised_port,
        cluster_id,
        metadata,
        logs,
        appended: Notify::new(),
        groups: GroupCoordinator::new(group_config, Arc::new(OffsetsTopicLog::new(weak.clone()))),
        producer_ids: ProducerIdAllocator::default(),
        txn: TransactionCoordinator::new(
            txn_config,
            Arc::new(TransactionStateLog::new(weak.clone())),
            Arc::new(PartitionMarkerWriter::new(weak.clone())),
            Arc::new(BrokerProducerIds::new(weak.clone())),
        ),
        metrics,
        fd_budget,
        connection_limits,
        config,
    });
    // AddPartitionsToTxn refuses partitions that do not exist, as Kafka does.
    let weak = Arc::downgrade(&broker);
    broker
        .txn
        .set_partition_check(Arc::new(move |topic: &str, partition: i32| {
            let exists = weak
                .upgrade()
                .is_some_and(|b| b.logs.get(topic, partition).is_some());
            (!exists).then_some(kafka_protocol::error::ResponseError::UnknownTopicOrPartition)
        }));
    let image = broker.metadata.image();
    let opened = broker.logs.open_all(
        image
            .topics()
            .map(|t| (t, broker.topic_settings(&image, t))),
        recover,
    )?;
    let replayed = replay(&broker, &broker.groups).map_err(crate::server::StartError::GroupLog)?;
    if replayed > 0 {
        tracing::info!(records = replayed, "loaded consumer group state");
    }
    let replayed = crate::txn_wiring::replay(&broker, &broker.txn)
        .map_err(crate::server::StartError::GroupLog)?;
    if replayed > 0 {
        tracing::info!(records = replayed, "loaded transaction state");
    }
    Ok((broker, opened))
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

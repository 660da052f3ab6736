//! The cluster at a glance: nodes, partition health, disk, connections, settings.

use std::path::PathBuf;
use std::time::Duration;

use super::Admin;
use crate::config::SETTINGS;
use crate::handlers::log_dirs::disk_space;
use crate::metadata::MetadataImage;

/// One registered broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeInfo {
    /// Its node id.
    pub id: i32,
    /// Where clients reach it.
    pub host: String,
    /// Its client port.
    pub port: i32,
    /// Its rack, if it has one.
    pub rack: Option<String>,
    /// Whether it is this process.
    pub is_local: bool,
    /// Fenced by the controller: it leads no partition and is in no ISR.
    pub fenced: bool,
    /// Giving its leaderships away before it stops.
    pub shutting_down: bool,
}

/// Partitions by health, over the whole cluster as the metadata says.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PartitionHealth {
    /// Partitions in all.
    pub partitions: usize,
    /// Without a leader.
    pub offline: usize,
    /// With fewer in-sync replicas than replicas.
    pub under_replicated: usize,
    /// With fewer in-sync replicas than `min.insync.replicas` (acks=all writes fail).
    pub under_min_isr: usize,
}

/// A log directory's use of its disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogDirUsage {
    /// The directory.
    pub path: PathBuf,
    /// Bytes of this node's partition logs in it.
    pub log_bytes: u64,
    /// The file system's size, when known.
    pub total_bytes: Option<u64>,
    /// What this process may still write, when known.
    pub usable_bytes: Option<u64>,
}

/// What the overview page shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterOverview {
    /// The cluster id.
    pub cluster_id: String,
    /// This node's id.
    pub local_node: i32,
    /// This binary's version.
    pub version: &'static str,
    /// How long the broker has been up.
    pub uptime: Duration,
    /// Registered brokers, by id.
    pub nodes: Vec<NodeInfo>,
    /// The metadata quorum's leader, when the cluster runs one.
    pub quorum_leader: Option<i32>,
    /// Partition health.
    pub health: PartitionHealth,
    /// Topics, internal ones included.
    pub topics: usize,
    /// This node's log directories.
    pub log_dirs: Vec<LogDirUsage>,
    /// Kafka client connections open on this node.
    pub connections: i64,
}

/// One broker setting with its value on this node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerSetting {
    /// Its name (`--flag`, TOML key).
    pub name: String,
    /// Kafka's name for it, if any.
    pub kafka_name: Option<&'static str>,
    /// Its value now (`None` when unset).
    pub value: Option<String>,
    /// Whether it differs from the default.
    pub is_default: bool,
    /// What it does.
    pub doc: String,
    /// Whether changing it takes a restart.
    pub needs_restart: bool,
}

impl Admin {
    /// Nodes, health, disk and connections now.
    pub fn overview(&self) -> ClusterOverview {
        let image = self.broker.metadata.image();
        let log_bytes: u64 = self
            .broker
            .replicas
            .logs()
            .all()
            .iter()
            .map(|p| p.size_bytes())
            .sum();
        let dir = self.broker.config.data_dir.clone();
        let (total, usable) = disk_space(&dir);
        ClusterOverview {
            cluster_id: self.broker.cluster_id.clone(),
            local_node: self.broker.node_id(),
            version: env!("CARGO_PKG_VERSION"),
            uptime: self.started.elapsed(),
            nodes: self.nodes(),
            quorum_leader: self
                .broker
                .metadata
                .has_controller()
                .then(|| self.broker.metadata.leader())
                .flatten(),
            health: self.partition_health(&image),
            topics: image.topics().count(),
            log_dirs: vec![LogDirUsage {
                path: std::path::absolute(&dir).unwrap_or(dir),
                log_bytes,
                total_bytes: u64::try_from(total).ok(),
                usable_bytes: u64::try_from(usable).ok(),
            }],
            connections: self.broker.metrics.connections(),
        }
    }

    /// Registered brokers, by id.
    pub fn nodes(&self) -> Vec<NodeInfo> {
        let image = self.broker.metadata.image();
        let local = self.broker.node_id();
        let mut nodes: Vec<NodeInfo> = image
            .brokers()
            .map(|b| {
                let endpoint = b.endpoints.first();
                NodeInfo {
                    id: b.id,
                    host: endpoint.map(|e| e.host.clone()).unwrap_or_default(),
                    port: endpoint.map_or(-1, |e| e.port),
                    rack: b.rack.clone(),
                    is_local: b.id == local,
                    fenced: b.fenced,
                    shutting_down: b.in_controlled_shutdown,
                }
            })
            .collect();
        nodes.sort_by_key(|n| n.id);
        nodes
    }

    /// Counts partitions by health over every topic of `image`.
    fn partition_health(&self, image: &MetadataImage) -> PartitionHealth {
        let mut health = PartitionHealth::default();
        for topic in image.topics() {
            let min_isr = self
                .broker
                .topic_settings(image, topic)
                .min_insync_replicas
                .max(1);
            for p in &topic.partitions {
                health.partitions += 1;
                if p.leader < 0 {
                    health.offline += 1;
                }
                if p.isr.len() < p.replicas.len() {
                    health.under_replicated += 1;
                }
                if p.isr.len() < min_isr.min(p.replicas.len().max(1)) {
                    health.under_min_isr += 1;
                }
            }
        }
        health
    }

    /// Every broker setting with its value on this node.
    pub fn broker_settings(&self) -> Vec<BrokerSetting> {
        let config = &self.broker.config;
        let defaults = crate::config::BrokerConfig::defaults();
        SETTINGS
            .iter()
            .map(|s| BrokerSetting {
                name: s.name(),
                kafka_name: s.kafka_name(),
                value: s.value(config),
                is_default: s.value(config) == s.value(defaults),
                doc: s.doc(),
                needs_restart: s.options.needs_restart,
            })
            .collect()
    }

    /// The broker configs changed at runtime (AlterConfigs on the broker), by Kafka name.
    pub fn dynamic_broker_configs(&self) -> std::collections::BTreeMap<String, String> {
        self.broker.metadata.image().broker_configs.clone()
    }
}

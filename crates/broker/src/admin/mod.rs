//! A typed, in-process admin facade over the broker: what an operator sees and changes
//! (cluster, topics, records, consumer groups), answered from the broker's own state and
//! through the same code paths the Kafka handlers use — no Kafka requests, no codec.
//!
//! The web console reads and changes the broker only through this module; so can the CLI.
//! Every value returned is a plain copy, taken at the time of the call.

mod cluster;
mod groups;
mod records;
mod topics;
mod transactions;

use std::sync::Arc;
use std::time::Instant;

pub use cluster::{BrokerSetting, ClusterOverview, LogDirUsage, NodeInfo, PartitionHealth};
pub use groups::{
    GroupDetail, GroupMember, GroupPartition, GroupSummary, OffsetChange, ResetTarget,
    TopicConsumer,
};
pub use records::{AppendWatch, ProduceRecord, Produced, RecordView, RecordsRead, StartAt};
pub use topics::LocalReplica;
pub use topics::{
    ConfigChange, ConfigEntry, NewTopicSpec, PartitionDetail, TopicDetail, TopicSummary,
};
pub use transactions::{ProducerInfo, TransactionInfo};

use crate::broker::Broker;
pub use crate::metrics::{HistogramSnapshot, MetricsSnapshot, TrafficTotals};
pub use crate::topic_admin::AdminError;
pub use crate::topic_config::ConfigSource;
/// Kafka's error codes, which [`AdminError`]s carry.
pub use sluice_protocol::kafka_protocol::error::ResponseError as KafkaError;

/// The admin facade of one broker. Cheap to clone.
#[derive(Clone)]
pub struct Admin {
    broker: Arc<Broker>,
    started: Instant,
}

impl Admin {
    /// The facade of `broker`; its uptime counts from now.
    pub fn new(broker: Arc<Broker>) -> Self {
        Self {
            broker,
            started: Instant::now(),
        }
    }

    /// This node's id.
    pub fn node_id(&self) -> i32 {
        self.broker.node_id()
    }

    /// The wall-clock time the broker tells, in milliseconds since the epoch.
    pub fn now_ms(&self) -> i64 {
        self.broker.clock.now_ms()
    }

    /// Every counter the charts read, now.
    pub fn metrics(&self) -> MetricsSnapshot {
        self.broker.metrics.snapshot()
    }

    /// Each topic's traffic counters now, by name.
    pub fn topic_traffic(&self) -> std::collections::HashMap<String, TrafficTotals> {
        self.broker.metrics.topic_totals()
    }
}

/// Kafka's name for an error code, as the console shows it (e.g. `TopicAlreadyExists`).
pub fn error_name(error: &AdminError) -> String {
    format!("{:?}", error.code)
}

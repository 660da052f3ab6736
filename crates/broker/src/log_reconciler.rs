//! Keeps this node's partitions in line with metadata (Kafka's
//! `ReplicaManager.applyDelta`, Redpanda's `controller_backend`): for every committed
//! delta it opens the partitions that now have a replica here, takes the role each
//! registration gives this node, retunes partitions whose configs changed, and closes
//! and removes the partitions of deleted topics and the replicas a reassignment moved
//! away. Admin code only writes records; this is where they turn into files.

use std::collections::HashMap;
use std::sync::Weak;

use parking_lot::Mutex;
use uuid::Uuid;

use crate::broker::Broker;
use crate::metadata::{
    MetadataDelta, MetadataImage, MetadataPublisher, PartitionRegistration, TopicImage,
};

/// The publisher that owns the partition logs' lifecycle.
pub struct LogReconciler {
    broker: Weak<Broker>,
    /// Why opening a topic's partitions failed, until the admin path that created it asks.
    failures: Mutex<HashMap<Uuid, String>>,
}

impl LogReconciler {
    /// A reconciler that reaches the broker without keeping it alive.
    pub fn new(broker: Weak<Broker>) -> Self {
        Self {
            broker,
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// Why the partitions of `topic` could not be opened here, if they could not.
    pub fn take_failure(&self, topic: Uuid) -> Option<String> {
        self.failures.lock().remove(&topic)
    }

    /// Opens the partitions `indexes` of `topic` here, noting a failure.
    fn open(&self, broker: &Broker, image: &MetadataImage, topic: &TopicImage, indexes: Vec<i32>) {
        if indexes.is_empty() {
            return;
        }
        let settings = broker.topic_settings(image, topic);
        if let Err(e) = broker
            .replicas
            .logs()
            .open_partitions(topic, indexes, settings, false)
        {
            tracing::error!(topic = %topic.name, error = %e, "cannot open the topic's partition logs");
            self.failures.lock().insert(topic.id, e.to_string());
        }
    }
}

impl MetadataPublisher for LogReconciler {
    fn name(&self) -> &'static str {
        "log reconciler"
    }

    fn publish(&self, delta: &MetadataDelta, image: &MetadataImage) {
        let Some(broker) = self.broker.upgrade() else {
            return;
        };
        let node = broker.node_id();
        let logs = broker.replicas.logs();
        for topic in &delta.topics_deleted {
            logs.delete_topic(topic.id);
            tracing::info!(topic = %topic.name, id = %topic.id, "deleted topic");
        }
        let mut roles_changed = false;
        for id in &delta.topics_created {
            if let Some(topic) = image.topic_by_id(id) {
                self.open(&broker, image, topic, topic.partitions_on(node));
                roles_changed = true;
            }
        }
        for (id, index) in &delta.partitions_changed {
            let Some(topic) = image.topic_by_id(id) else {
                continue;
            };
            let Some(registration) = topic.partition(*index) else {
                continue;
            };
            match logs.get(*id, *index) {
                Some(partition) if !registration.replicas.contains(&node) => {
                    // Whoever waits on it (acks=all, a long poll) learns it is not the
                    // leader any more before the files go.
                    partition.apply_registration(registration, node);
                    logs.delete_partition(*id, *index);
                    tracing::info!(
                        topic = %partition.topic,
                        partition = index,
                        replicas = ?registration.replicas,
                        leader = registration.leader,
                        "this node holds no replica of the partition any more: its log is deleted"
                    );
                    roles_changed = true;
                }
                Some(partition) if partition.apply_registration(registration, node) => {
                    log_role_change(&partition.topic, *index, registration, node);
                    roles_changed = true;
                }
                Some(_) => {}
                None if registration.replicas.contains(&node) => {
                    self.open(&broker, image, topic, vec![*index]);
                    roles_changed = true;
                }
                None => {}
            }
        }
        for id in &delta.topic_configs_changed {
            if let Some(topic) = image.topic_by_id(id) {
                logs.update_settings(topic.id, broker.topic_settings(image, topic));
            }
        }
        if delta.broker_configs_changed {
            for topic in image.topics() {
                logs.update_settings(topic.id, broker.topic_settings(image, topic));
            }
        }
        if roles_changed {
            broker.replica_fetchers.roles_changed();
        }
    }
}

/// One line per leadership change of a local replica: who leads now, at which epoch.
fn log_role_change(topic: &str, index: i32, registration: &PartitionRegistration, node: i32) {
    let role = if registration.leader == node {
        "leader"
    } else {
        "follower"
    };
    tracing::info!(
        topic,
        partition = index,
        leader = registration.leader,
        leader_epoch = registration.leader_epoch.0,
        isr = ?registration.isr,
        "this node is now {role} of the partition"
    );
}

//! The changes the metadata log records.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::security::{QuotaEntityRecord, StoredAcl, StoredScramCredential};

/// The replicas of one partition, the preferred leader first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PartitionAssignment(pub Vec<i32>);

/// One listener of a broker, as clients reach it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointRecord {
    /// The listener's name (`PLAINTEXT`, or a custom one).
    pub listener: String,
    /// The advertised host.
    pub host: String,
    /// The advertised port.
    pub port: i32,
    /// The listener's security protocol (`PLAINTEXT`, `SSL`, `SASL_PLAINTEXT`, `SASL_SSL`).
    pub security_protocol: String,
}

/// One change to cluster metadata.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum MetadataRecord {
    /// A topic was created with its partition count and config overrides.
    TopicCreated {
        /// Topic name.
        name: String,
        /// Topic id (KIP-516).
        id: Uuid,
        /// Number of partitions.
        partitions: i32,
        /// Config overrides set at creation.
        configs: BTreeMap<String, String>,
        /// Internal topics (`__consumer_offsets`) are flagged in Metadata.
        #[serde(default)]
        internal: bool,
        /// The replicas of each partition, by index (absent in logs written before
        /// partitions were registered: then every replica is on the single node).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        replicas: Vec<PartitionAssignment>,
    },
    /// A topic was deleted.
    TopicDeleted {
        /// Topic id.
        id: Uuid,
    },
    /// Partitions were added; `partitions` is the new total.
    PartitionsCreated {
        /// Topic id.
        id: Uuid,
        /// New partition count.
        partitions: i32,
        /// The replicas of each new partition, in index order (see `TopicCreated`).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        replicas: Vec<PartitionAssignment>,
    },
    /// A partition's leader, ISR or replicas changed (Kafka's `PartitionChangeRecord`).
    PartitionChanged {
        /// Topic id.
        topic_id: Uuid,
        /// Partition index.
        partition: i32,
        /// The new leader (-1: none).
        leader: i32,
        /// The leader epoch from now on.
        leader_epoch: i32,
        /// The in-sync replicas from now on.
        isr: Vec<i32>,
        /// The replicas from now on, when they changed (reassignment).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        replicas: Option<Vec<i32>>,
        /// The replicas a reassignment is adding from now on, when they changed (KIP-455;
        /// empty: none, or the reassignment is over).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        adding_replicas: Option<Vec<i32>>,
        /// The replicas a reassignment is removing from now on, when they changed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        removing_replicas: Option<Vec<i32>>,
        /// The partition epoch the change was decided against (AlterPartition's
        /// compare-and-swap): a change decided against an older registration is refused.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        expected_partition_epoch: Option<i32>,
    },
    /// A broker registered (or changed its endpoints), as Kafka's `RegisterBrokerRecord`.
    BrokerRegistered {
        /// Its node id.
        id: i32,
        /// The id of its data directory incarnation.
        incarnation_id: Uuid,
        /// Where clients reach it.
        endpoints: Vec<EndpointRecord>,
        /// Its rack, if configured.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        rack: Option<String>,
        /// Whether it starts fenced (Kafka's `RegisterBrokerRecord.fenced`): in a cluster a
        /// broker is fenced until the controller sees it caught up with the metadata; a
        /// single node is its own controller and registers unfenced.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        fenced: bool,
    },
    /// A broker left the cluster, as Kafka's `UnregisterBrokerRecord`: its registration
    /// is gone (it hosts no replica any more).
    BrokerUnregistered {
        /// Its node id.
        id: i32,
    },
    /// A topic's config overrides were replaced by `configs`.
    TopicConfigsChanged {
        /// Topic id.
        id: Uuid,
        /// The full set of overrides after the change.
        configs: BTreeMap<String, String>,
    },
    /// Producer ids below `next` are handed out (or reserved by a running broker).
    ProducerIdsAllocated {
        /// First producer id of the next block.
        next: i64,
    },
    /// The broker's dynamic configs were replaced by `configs`.
    BrokerConfigsChanged {
        /// The full set of dynamic broker configs after the change.
        configs: BTreeMap<String, String>,
    },
    /// The cluster's id, decided once by the first node that finds none (Kafka keeps it in
    /// every node's `meta.properties`; here every node adopts the committed one).
    ClusterIdSet {
        /// The id, URL-safe base64 of a UUID as Kafka renders it.
        cluster_id: String,
    },
    /// A partition's whole registration, as a snapshot of the image records it (Kafka's
    /// `PartitionRecord`): unlike `PartitionChanged` it sets the epochs as they are.
    PartitionState {
        /// Topic id.
        topic_id: Uuid,
        /// Partition index.
        partition: i32,
        /// The replicas, the preferred leader first.
        replicas: Vec<i32>,
        /// The in-sync replicas.
        isr: Vec<i32>,
        /// The leader (-1: none).
        leader: i32,
        /// The leader epoch.
        leader_epoch: i32,
        /// The partition epoch.
        partition_epoch: i32,
        /// The replicas an ongoing reassignment is adding (absent in snapshots written
        /// before reassignments existed: none).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        adding_replicas: Vec<i32>,
        /// The replicas an ongoing reassignment is removing.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        removing_replicas: Vec<i32>,
    },
    /// A broker's whole registration, as a snapshot of the image records it (Kafka's
    /// snapshots carry `RegisterBrokerRecord` with its epoch): unlike `BrokerRegistered`,
    /// whose epoch is where it lands in the log, it sets the epoch and state as they are.
    BrokerState {
        /// Its node id.
        id: i32,
        /// The id of its data directory incarnation.
        incarnation_id: Uuid,
        /// Where clients reach it.
        endpoints: Vec<EndpointRecord>,
        /// Its rack, if configured.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        rack: Option<String>,
        /// Its broker epoch.
        epoch: u64,
        /// Fenced by the controller.
        fenced: bool,
        /// Giving its leaderships away before it stops.
        in_controlled_shutdown: bool,
    },
    /// The controller fenced or unfenced a broker, or it began a controlled shutdown
    /// (Kafka's `BrokerRegistrationChangeRecord`). A fenced broker leads nothing and is in
    /// no ISR; one in controlled shutdown gives its leaderships away.
    BrokerRegistrationChanged {
        /// Its node id.
        id: i32,
        /// Fenced from now on (`Some(true)`), unfenced (`Some(false)`), or unchanged.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        fenced: Option<bool>,
        /// In controlled shutdown from now on, or not, or unchanged.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        in_controlled_shutdown: Option<bool>,
    },
    /// A user's SCRAM credential for one mechanism was set (Kafka's
    /// `UserScramCredentialRecord`): salted, never the password.
    ScramCredentialUpserted {
        /// The user name.
        user: String,
        /// `SCRAM-SHA-256` or `SCRAM-SHA-512`.
        mechanism: String,
        /// The credential.
        credential: StoredScramCredential,
    },
    /// A user's SCRAM credential for one mechanism was removed.
    ScramCredentialDeleted {
        /// The user name.
        user: String,
        /// `SCRAM-SHA-256` or `SCRAM-SHA-512`.
        mechanism: String,
    },
    /// An ACL was created (Kafka's `AccessControlEntryRecord`).
    AclCreated {
        /// Its id.
        id: Uuid,
        /// The ACL.
        acl: StoredAcl,
    },
    /// An ACL was deleted (Kafka's `RemoveAccessControlEntryRecord`).
    AclDeleted {
        /// Its id.
        id: Uuid,
    },
    /// A client quota was set or removed (Kafka's `ClientQuotaRecord`).
    ClientQuotaChanged {
        /// The entity (types with names, `None` for the default; sorted by type).
        entity: QuotaEntityRecord,
        /// The quota key, e.g. `producer_byte_rate`.
        key: String,
        /// The new value; `None` removes it.
        #[serde(default)]
        value: Option<f64>,
    },
}

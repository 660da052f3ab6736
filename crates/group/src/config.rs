//! Coordinator settings, named after the Kafka broker configs they mirror.

/// Settings of the group coordinator.
///
/// Every field mirrors a Kafka broker config so operators can carry their
/// `server.properties` knowledge over unchanged; the defaults are Kafka's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupConfig {
    /// `group.initial.rebalance.delay.ms`: how long the first rebalance of an
    /// Empty group waits for more members before completing, so that a
    /// deployment of N consumers starting together causes one rebalance, not N.
    pub initial_rebalance_delay_ms: u64,
    /// `group.min.session.timeout.ms`: smaller session timeouts are rejected
    /// with INVALID_SESSION_TIMEOUT (protects the coordinator from members
    /// that would expire between two heartbeats).
    pub min_session_timeout_ms: i32,
    /// `group.max.session.timeout.ms`: larger session timeouts are rejected
    /// with INVALID_SESSION_TIMEOUT (bounds how long a dead member is kept).
    pub max_session_timeout_ms: i32,
    /// `group.max.size`: joins beyond this many members get GROUP_MAX_SIZE_REACHED.
    pub max_group_size: usize,
    /// `offsets.retention.minutes` in milliseconds: committed offsets of a
    /// group without active members expire after this long.
    pub offsets_retention_ms: i64,
    /// `offset.metadata.max.bytes`: longer commit metadata strings get
    /// OFFSET_METADATA_TOO_LARGE. Like Kafka, the length is counted in UTF-16
    /// code units (Java's `String.length()`), not in bytes.
    pub max_metadata_bytes: usize,
    /// `offsets.topic.num.partitions`: the partitions of `__consumer_offsets`
    /// (or, when the topic already exists, its actual count). A group lives
    /// in the shard of partition `coordinator_partition_for(group, this)`.
    pub offsets_partitions: i32,
}

/// Kafka's `group.classic.new.member.join.timeout.ms`: a member that joined
/// for the first time and is parked in a rebalance is dropped after this long,
/// because it cannot heartbeat before it knows its member id.
pub(crate) const NEW_MEMBER_JOIN_TIMEOUT_MS: u64 = 5 * 60 * 1000;

impl Default for GroupConfig {
    fn default() -> Self {
        Self {
            initial_rebalance_delay_ms: 3000,
            min_session_timeout_ms: 6000,
            max_session_timeout_ms: 1_800_000,
            max_group_size: usize::MAX,
            offsets_retention_ms: 7 * 24 * 60 * 60 * 1000,
            max_metadata_bytes: 4096,
            offsets_partitions: 50,
        }
    }
}

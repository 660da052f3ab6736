//! Per-partition log settings (the storage half of Kafka's topic configs).

/// Settings of one partition log. Kafka's topic config names are given per field.
#[derive(Debug, Clone, PartialEq)]
pub struct LogConfig {
    /// `segment.bytes`: the active segment is rolled before it would grow past this.
    pub segment_bytes: u64,
    /// `segment.ms`: the active segment is rolled once it is older than this.
    pub segment_ms: Option<i64>,
    /// `retention.ms`: segments whose newest record is older are deleted (the active one
    /// after a roll, when not empty); `None` keeps data forever.
    pub retention_ms: Option<i64>,
    /// `retention.bytes`: oldest segments are deleted while the log is larger.
    pub retention_bytes: Option<u64>,
    /// `index.interval.bytes`: bytes of log between two sparse index entries.
    pub index_interval_bytes: u32,
    /// `segment.index.bytes`: a segment is rolled when its offset index reaches this size.
    pub max_index_bytes: u64,
    /// `producer.id.expiration.ms`: idempotent producer state is forgotten after this long
    /// without a write.
    pub producer_id_expiration_ms: i64,
    /// `cleanup.policy` contains `compact`: the log cleaner's settings for this log
    /// (see [`crate::cleaner`]); `None` for a log that is not compacted.
    pub compaction: Option<CompactionConfig>,
}

/// How the log cleaner treats a compacted log (the topic configs Kafka's cleaner reads).
#[derive(Debug, Clone, PartialEq)]
pub struct CompactionConfig {
    /// `delete.retention.ms`: how long tombstones, and transaction markers the cleaner may
    /// drop, stay after the cleaner first kept them (their batch's delete horizon, KIP-534).
    pub delete_retention_ms: i64,
    /// `min.compaction.lag.ms`: records younger than this are not cleaned.
    pub min_compaction_lag_ms: i64,
    /// `max.compaction.lag.ms`: a log whose oldest dirty record is older than this is
    /// cleaned whatever its dirty ratio (KIP-354), and its active segment rolls by then.
    pub max_compaction_lag_ms: i64,
    /// `min.cleanable.dirty.ratio`: the share of the log that must be dirty (written since
    /// the last cleaning) before the cleaner picks it.
    pub min_cleanable_dirty_ratio: f64,
}

const SEVEN_DAYS_MS: i64 = 7 * 24 * 60 * 60 * 1000;

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            segment_bytes: 1 << 30,
            segment_ms: Some(SEVEN_DAYS_MS),
            retention_ms: Some(SEVEN_DAYS_MS),
            retention_bytes: None,
            index_interval_bytes: 4096,
            max_index_bytes: 10 << 20,
            producer_id_expiration_ms: 24 * 60 * 60 * 1000,
            compaction: None,
        }
    }
}

/// Kafka's defaults.
impl Default for CompactionConfig {
    fn default() -> Self {
        Self {
            delete_retention_ms: 24 * 60 * 60 * 1000,
            min_compaction_lag_ms: 0,
            max_compaction_lag_ms: i64::MAX,
            min_cleanable_dirty_ratio: 0.5,
        }
    }
}

impl LogConfig {
    /// Segment size limit actually used: file positions in the index are u32 and Kafka caps
    /// `segment.bytes` at `i32::MAX`, so larger values are clamped.
    pub(crate) fn effective_segment_bytes(&self) -> u64 {
        self.segment_bytes.clamp(1, i32::MAX as u64)
    }

    /// How old the active segment may get before it rolls: `segment.ms`, or for a
    /// compacted log `max.compaction.lag.ms` when that is sooner, so that its records
    /// leave the (never cleaned) active segment in time (Kafka's `LogConfig.maxSegmentMs`).
    pub(crate) fn max_segment_ms(&self) -> Option<i64> {
        let lag = self
            .compaction
            .as_ref()
            .map(|c| c.max_compaction_lag_ms)
            .filter(|lag| *lag > 0 && *lag < i64::MAX);
        match (self.segment_ms, lag) {
            (Some(ms), Some(lag)) => Some(ms.min(lag)),
            (ms, lag) => ms.or(lag),
        }
    }
}

//! Per-partition log settings (the storage half of Kafka's topic configs).

/// Settings of one partition log. Kafka's topic config names are given per field.
#[derive(Debug, Clone, PartialEq, Eq)]
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
        }
    }
}

impl LogConfig {
    /// Segment size limit actually used: file positions in the index are u32 and Kafka caps
    /// `segment.bytes` at `i32::MAX`, so larger values are clamped.
    pub(crate) fn effective_segment_bytes(&self) -> u64 {
        self.segment_bytes.clamp(1, i32::MAX as u64)
    }
}

//! How dirty a compacted log is (Kafka's `LogToClean`).

/// How dirty a compacted log is (Kafka's `LogToClean`); see [`crate::PartitionLog::dirty_stats`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DirtyStats {
    /// Where the dirty part starts: the cleaner checkpoint, or the log start.
    pub first_dirty_offset: i64,
    /// Base of the first segment the cleaner may not touch: the active one, the one holding
    /// the last stable offset (or the high watermark), or the first with records younger
    /// than `min.compaction.lag.ms`.
    pub first_uncleanable_offset: i64,
    /// Bytes of the segments below the first dirty offset.
    pub clean_bytes: u64,
    /// Bytes of the dirty segments the cleaner may clean.
    pub cleanable_bytes: u64,
    /// `cleanable / (clean + cleanable)`, 0 for an empty log.
    pub dirty_ratio: f64,
    /// How long ago the oldest dirty batch passed `max.compaction.lag.ms` (0: none did).
    pub compaction_delay_ms: i64,
}

impl DirtyStats {
    /// Whether the cleaner should clean the log now (Kafka's rule): some bytes are overdue
    /// by `max.compaction.lag.ms`, or more than `min_ratio` of it is dirty.
    pub fn needs_cleaning(&self, min_ratio: f64) -> bool {
        (self.compaction_delay_ms > 0 && self.cleanable_bytes > 0) || self.dirty_ratio > min_ratio
    }

    /// Bytes of the clean and cleanable parts.
    pub fn total_bytes(&self) -> u64 {
        self.clean_bytes.saturating_add(self.cleanable_bytes)
    }
}

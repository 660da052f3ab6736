//! The per-record checks of Kafka's LogValidator on a produced batch: a compacted topic
//! refuses records without a key, a CreateTime topic refuses timestamps outside
//! `message.timestamp.before.max.ms` / `after.max.ms` of the broker's clock. Each offending
//! record is named in the response's `record_errors`; a key error takes precedence within a
//! record, and any timestamp error makes the whole batch INVALID_TIMESTAMP.
//!
//! The produce path reads batch headers only, so records are decoded just when a check
//! needs them: always for compacted topics and for a finite `before` bound (a batch header
//! has no minimum timestamp), and for the `after` bound only when the header's max
//! timestamp breaks it (the header is trusted for that, as for retention and the time
//! index).

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::produce_response::BatchIndexAndErrorMessage;
use kafka_protocol::protocol::StrBytes;
use sluice_protocol::batch::BatchHeader;
use sluice_protocol::kafka_protocol;
use sluice_protocol::records::{MAX_DECOMPRESSED_BYTES, decode_records};

use crate::topic_config::{TimestampBounds, TimestampType, TopicSettings};

/// The top-level error message Kafka gives with INVALID_TIMESTAMP record errors.
const INVALID_TIMESTAMP_MESSAGE: &str =
    "One or more records have been rejected due to invalid timestamp";

/// Why a batch was refused: the partition's error, its message and the records at fault.
pub(crate) struct RecordsRefused {
    pub code: ResponseError,
    pub message: String,
    pub record_errors: Vec<BatchIndexAndErrorMessage>,
}

/// The checks a topic's settings call for, at one moment.
pub(crate) struct RecordChecks<'a> {
    /// The partition, as the key error names it.
    topic: &'a str,
    partition: i32,
    compacted: bool,
    /// None for LogAppendTime topics: the broker's clock replaces the timestamps.
    timestamp_bounds: Option<TimestampBounds>,
    now_ms: i64,
}

impl<'a> RecordChecks<'a> {
    pub(crate) fn new(
        settings: &TopicSettings,
        topic: &'a str,
        partition: i32,
        now_ms: i64,
    ) -> Self {
        RecordChecks {
            topic,
            partition,
            compacted: settings.compacted,
            timestamp_bounds: (settings.timestamp_type == TimestampType::CreateTime)
                .then_some(settings.timestamp_bounds),
            now_ms,
        }
    }

    /// Checks every record of `batch` (one whole, CRC-checked batch with header `header`).
    pub(crate) fn check(&self, header: &BatchHeader, batch: &Bytes) -> Result<(), RecordsRefused> {
        if !self.needs_records(header) {
            return Ok(());
        }
        let corrupt = |e: &dyn std::fmt::Display| RecordsRefused {
            code: ResponseError::CorruptMessage,
            message: e.to_string(),
            record_errors: Vec::new(),
        };
        let records = decode_records(batch, MAX_DECOMPRESSED_BYTES).map_err(|e| corrupt(&e))?;
        let mut errors = Vec::new();
        let mut any_timestamp_error = false;
        for (index, record) in (0i32..).zip(records) {
            let record = record.map_err(|e| corrupt(&e))?;
            let error = if self.compacted && record.key.is_none() {
                Some(self.key_message())
            } else if self.timestamp_refused(record.timestamp) {
                any_timestamp_error = true;
                Some(self.timestamp_message(record.timestamp, record.offset))
            } else {
                None
            };
            if let Some(message) = error {
                errors.push(
                    BatchIndexAndErrorMessage::default()
                        .with_batch_index(index)
                        .with_batch_index_error_message(Some(StrBytes::from_string(message))),
                );
            }
        }
        if errors.is_empty() {
            return Ok(());
        }
        let (code, message) = if any_timestamp_error {
            (
                ResponseError::InvalidTimestamp,
                INVALID_TIMESTAMP_MESSAGE.to_string(),
            )
        } else {
            (ResponseError::InvalidRecord, self.key_message())
        };
        Err(RecordsRefused {
            code,
            message,
            record_errors: errors,
        })
    }

    /// Whether a check needs the records decoded, or the header shows them all fine.
    fn needs_records(&self, header: &BatchHeader) -> bool {
        self.compacted
            || self.timestamp_bounds.is_some_and(|bounds| {
                bounds.before_max_ms != i64::MAX
                    || bounds.refuses(header.max_timestamp, self.now_ms)
            })
    }

    fn timestamp_refused(&self, timestamp: i64) -> bool {
        self.timestamp_bounds
            .is_some_and(|bounds| bounds.refuses(timestamp, self.now_ms))
    }

    fn key_message(&self) -> String {
        format!(
            "Compacted topic cannot accept message without key in topic partition {}-{}.",
            self.topic, self.partition
        )
    }

    /// Kafka's message for one record (its offset is the one in the produced batch).
    fn timestamp_message(&self, timestamp: i64, offset: i64) -> String {
        let (from, to) = self
            .timestamp_bounds
            .map_or((i64::MIN, i64::MAX), |b| b.range_at(self.now_ms));
        format!(
            "Timestamp {timestamp} of message with offset {offset} is out of range. The \
             timestamp should be within [{from}, {to}]"
        )
    }
}

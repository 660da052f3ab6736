//! The durable side of the coordinator: the `__consumer_offsets` log.
//!
//! The coordinator never touches storage itself. It hands finished records to
//! a [`GroupLog`] and acknowledges the client only once the log says they are
//! durable, exactly as Kafka acknowledges an OffsetCommit only after the
//! `__consumer_offsets` append is replicated.

use std::future::Future;
use std::pin::Pin;

use bytes::Bytes;
use parking_lot::Mutex;

use crate::error::GroupLogError;

/// One record for `__consumer_offsets`: key and value, or `None` for a tombstone.
pub type GroupRecord = (Bytes, Option<Bytes>);

/// The future returned by [`GroupLog::append`].
pub type AppendFuture<'a> = Pin<Box<dyn Future<Output = Result<(), GroupLogError>> + Send + 'a>>;

/// Where the coordinator writes its records.
///
/// All records of one group go to one partition (see [`partition_for`]), and
/// the coordinator calls `append` for one group at a time, in the order the
/// changes happened, so the log order is the order of the in-memory changes.
pub trait GroupLog: Send + Sync {
    /// Durably append `records` to the `__consumer_offsets` partition of
    /// `group_id`. Resolves only once the records are durable.
    fn append(&self, group_id: &str, records: Vec<GroupRecord>) -> AppendFuture<'_>;
}

/// The `__consumer_offsets` partition of a group: Kafka's
/// `Utils.abs(groupId.hashCode()) % partitions`, with Java's `String.hashCode`
/// (31-based over UTF-16 code units, wrapping), so that a group lands on the
/// same partition number as it would on a Kafka cluster.
pub fn partition_for(group_id: &str, partitions: i32) -> i32 {
    if partitions <= 0 {
        return 0;
    }
    let hash = group_id.encode_utf16().fold(0i32, |h, unit| {
        h.wrapping_mul(31).wrapping_add(i32::from(unit))
    });
    // Kafka's Utils.abs maps Integer.MIN_VALUE to 0 instead of overflowing.
    let positive = if hash == i32::MIN { 0 } else { hash.abs() };
    positive % partitions
}

/// A [`GroupLog`] kept in memory: for tests, and for running without storage.
#[derive(Debug, Default)]
pub struct MemoryGroupLog {
    inner: Mutex<MemoryLogInner>,
}

#[derive(Debug, Default)]
struct MemoryLogInner {
    records: Vec<(String, GroupRecord)>,
    fail_next: Vec<GroupLogError>,
}

impl MemoryGroupLog {
    /// An empty log.
    pub fn new() -> Self {
        Self::default()
    }

    /// Every record appended so far, in order, with the group it was written for.
    pub fn records(&self) -> Vec<(String, GroupRecord)> {
        self.inner.lock().records.clone()
    }

    /// The appended records without group ids, ready for `GroupCoordinator::load`.
    pub fn replay(&self) -> Vec<GroupRecord> {
        self.inner
            .lock()
            .records
            .iter()
            .map(|(_, r)| r.clone())
            .collect()
    }

    /// Make the next append fail with `error` (queued: call repeatedly to fail
    /// several appends in a row).
    pub fn fail_next(&self, error: GroupLogError) {
        self.inner.lock().fail_next.push(error);
    }
}

impl GroupLog for MemoryGroupLog {
    fn append(&self, group_id: &str, records: Vec<GroupRecord>) -> AppendFuture<'_> {
        let mut inner = self.inner.lock();
        let result = if inner.fail_next.is_empty() {
            inner
                .records
                .extend(records.into_iter().map(|r| (group_id.to_owned(), r)));
            Ok(())
        } else {
            Err(inner.fail_next.remove(0))
        };
        Box::pin(std::future::ready(result))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_matches_java_string_hash_code() {
        // "abc".hashCode() == 96354 in Java.
        assert_eq!(partition_for("abc", 50), 96354 % 50);
        assert_eq!(partition_for("", 50), 0);
        // "polygenelubricants".hashCode() == Integer.MIN_VALUE in Java.
        assert_eq!(partition_for("polygenelubricants", 50), 0);
        // A name with a negative hash is folded to the hash's absolute value.
        let h = "my-group"
            .encode_utf16()
            .fold(0i32, |h, u| h.wrapping_mul(31).wrapping_add(i32::from(u)));
        assert_eq!(partition_for("my-group", 50), h.abs() % 50);
        assert_eq!(partition_for("x", 0), 0);
    }
}

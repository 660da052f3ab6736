//! The names Kafka gives the things every layer talks about: a topic partition, an offset,
//! a leader epoch, a producer's id and epoch. Newtypes rather than tuples and bare
//! integers, so that a signature says which number it means and a partition index cannot
//! be passed where an offset is expected.

use std::fmt;

use uuid::Uuid;

/// Sluice's own tagged field of a DescribeLogDirs response partition (versions 2 and up,
/// which have tagged fields): the dirty ratio of a compacted partition's log, as an `f64`
/// big-endian, the share of the log the cleaner would rewrite now. Kafka clients skip
/// tags they do not know; a Kafka broker never sends it.
pub const DIRTY_RATIO_TAG: i32 = 0x51C0;

/// A partition of a topic named by the topic's name (Kafka's `TopicPartition`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicPartition {
    /// The topic's name.
    pub topic: String,
    /// The partition's index within the topic.
    pub partition: i32,
}

impl TopicPartition {
    /// The partition `partition` of `topic`.
    pub fn new(topic: impl Into<String>, partition: i32) -> Self {
        Self {
            topic: topic.into(),
            partition,
        }
    }
}

impl fmt::Display for TopicPartition {
    /// `topic-partition`, as Kafka prints it (and names the partition's directory).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.topic, self.partition)
    }
}

/// A partition of one incarnation of a topic (Kafka's `TopicIdPartition`): a topic
/// deleted and created again under the same name has another id, so state kept for the
/// old one is never mistaken for the new one's.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicIdPartition {
    /// The topic incarnation's id.
    pub topic_id: Uuid,
    /// The topic's name and the partition's index.
    pub partition: TopicPartition,
}

impl TopicIdPartition {
    /// The partition `partition` of topic `topic` with id `topic_id`.
    pub fn new(topic_id: Uuid, topic: impl Into<String>, partition: i32) -> Self {
        Self {
            topic_id,
            partition: TopicPartition::new(topic, partition),
        }
    }

    /// The topic's name.
    pub fn topic(&self) -> &str {
        &self.partition.topic
    }

    /// The partition's index.
    pub fn index(&self) -> i32 {
        self.partition.partition
    }
}

impl fmt::Display for TopicIdPartition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.topic_id, self.partition)
    }
}

/// A partition's leader epoch: raised each time its leadership changes, stamped into every
/// batch its leader appends, and compared by clients (KIP-320) and followers to detect a
/// stale leader or a diverged log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct LeaderEpoch(pub i32);

impl LeaderEpoch {
    /// "No epoch given" in requests (`-1` on the wire).
    pub const UNKNOWN: LeaderEpoch = LeaderEpoch(-1);
}

impl fmt::Display for LeaderEpoch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A position in a partition's log: the offset of a record, or of the next one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Offset(pub i64);

impl fmt::Display for Offset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// An idempotent or transactional producer as brokers know it: its id, and the epoch that
/// fences its older incarnations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProducerIdAndEpoch {
    /// The producer id InitProducerId handed out.
    pub producer_id: i64,
    /// The producer's current epoch.
    pub epoch: i16,
}

impl ProducerIdAndEpoch {
    /// The producer `producer_id` at epoch `epoch`.
    pub const fn new(producer_id: i64, epoch: i16) -> Self {
        Self { producer_id, epoch }
    }
}

/// The partition of a coordinator's internal topic that owns `key` (a group id for
/// `__consumer_offsets`, a transactional id for `__transaction_state`): Kafka's
/// `Utils.abs(key.hashCode()) % partitions` with Java's `String.hashCode` (31-based over
/// UTF-16 code units, wrapping), so that a key lands on the partition number it would on a
/// Kafka cluster.
pub fn coordinator_partition_for(key: &str, partitions: i32) -> i32 {
    if partitions <= 0 {
        return 0;
    }
    let hash = key.encode_utf16().fold(0i32, |h, unit| {
        h.wrapping_mul(31).wrapping_add(i32::from(unit))
    });
    // Kafka's Utils.abs maps Integer.MIN_VALUE to 0 instead of overflowing.
    let positive = if hash == i32::MIN { 0 } else { hash.abs() };
    positive % partitions
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coordinator_partitions_match_java_string_hash_code() {
        assert_eq!(coordinator_partition_for("abc", 50), 96354 % 50);
        assert_eq!(coordinator_partition_for("", 50), 0);
        // "polygenelubricants".hashCode() == Integer.MIN_VALUE; Kafka's abs makes it 0.
        assert_eq!(coordinator_partition_for("polygenelubricants", 50), 0);
        assert_eq!(coordinator_partition_for("x", 0), 0);
    }

    #[test]
    fn names_print_as_kafka_prints_them() {
        assert_eq!(TopicPartition::new("orders", 3).to_string(), "orders-3");
        assert_eq!(LeaderEpoch(7).to_string(), "7");
        assert_eq!(Offset(42).to_string(), "42");
    }
}

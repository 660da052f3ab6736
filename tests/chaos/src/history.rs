//! What the clients of a run did and saw: every send and its outcome, every record an
//! assign-mode consumer polled, and the final read of every partition after the faults
//! healed. The checker ([`crate::checker`]) judges a [`History`]; nothing here knows how it
//! was recorded, so hand-made histories test the checker.

use std::collections::BTreeMap;

/// A partition of the workload's topic.
pub type Partition = i32;
/// A value a producer sent; unique within its partition.
pub type Value = u64;
/// An offset in a partition.
pub type Offset = i64;

/// How a send ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendOutcome {
    /// Acknowledged (acks=all) at this offset; None when the client acknowledged it
    /// without an offset: librdkafka acks an idempotent producer's earlier records
    /// "implicitly", with offset -1001, when a later batch of the same producer and
    /// partition succeeds while their own response was lost (rd_kafka_dr_implicit_ack).
    Acked(Option<Offset>),
    /// Definitely not written: refused before it was ever transmitted.
    Failed(String),
    /// Unknown: an idempotent producer's send that timed out or failed after it was
    /// transmitted may or may not have been written (Jepsen's `:info`).
    Indeterminate(String),
}

/// When an operation began and ended, in nanoseconds since the run started (Jepsen's
/// `:time`): what orders a history's operations for an external checker. Zero in
/// hand-made histories; the checker here does not read it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Span {
    pub invoked_ns: u64,
    /// None while the operation has no outcome (a send never reported).
    pub completed_ns: Option<u64>,
}

/// One send of one value to one partition, by one producer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Send {
    /// Which producer sent it (each producer's sends are in [`History::sends`] in the order
    /// it issued them).
    pub producer: usize,
    pub partition: Partition,
    pub value: Value,
    pub outcome: SendOutcome,
    pub span: Span,
    /// The transaction it was sent in (a transactional producer's; numbered across the
    /// run), whose end decided its outcome; None for a plain send.
    pub txn: Option<u64>,
}

/// What a consumer saw, in the order it saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PollEvent {
    /// A record at `offset` of `partition` holding `value`.
    Record {
        consumer: usize,
        partition: Partition,
        offset: Offset,
        value: Value,
        /// When the consumer got it, in nanoseconds since the run started.
        at_ns: u64,
    },
    /// The consumer was (re)assigned these partitions (by itself, or by its group's
    /// rebalance): what it reads next need not follow what it read before.
    Reassigned {
        consumer: usize,
        at_ns: u64,
        partitions: Vec<Partition>,
    },
}

/// Everything a run recorded.
#[derive(Debug, Clone, Default)]
pub struct History {
    /// Every send, each producer's in issue order.
    pub sends: Vec<Send>,
    /// Every consumer's polls, each consumer's in the order it polled.
    pub polls: Vec<PollEvent>,
    /// Each partition read from its start to its high watermark after every fault healed:
    /// (offset, value) in log order.
    pub final_read: BTreeMap<Partition, Vec<(Offset, Value)>>,
    /// When the final read ended, in nanoseconds since the run started.
    pub final_read_ns: u64,
    /// Lines of the nodes' logs that report a panic: (node, line).
    pub panics: Vec<(String, String)>,
}

impl History {
    /// Operations in the history: sends, polled records and the final read of each
    /// partition.
    pub fn operations(&self) -> usize {
        let records = self
            .polls
            .iter()
            .filter(|p| matches!(p, PollEvent::Record { .. }))
            .count();
        self.sends.len() + records + self.final_read.len()
    }
}

/// The record payload for `value`: what producers send and readers parse back.
pub fn payload(value: Value) -> String {
    format!("v{value}")
}

/// The value a record payload carries, if it is one of ours.
pub fn parse_payload(payload: &[u8]) -> Option<Value> {
    std::str::from_utf8(payload)
        .ok()?
        .strip_prefix('v')?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_round_trip_and_foreign_ones_are_not_values() {
        assert_eq!(parse_payload(payload(42).as_bytes()), Some(42));
        assert_eq!(parse_payload(b"42"), None);
        assert_eq!(parse_payload(b"vx"), None);
        assert_eq!(parse_payload(&[0xff, 0xfe]), None);
    }
}

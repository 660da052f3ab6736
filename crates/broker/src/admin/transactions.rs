//! Transactions and producers: the transaction coordinator's transactional ids, and
//! the idempotent and transactional producers each partition knows (DescribeProducers),
//! so a hanging transaction shows at a glance.

use sluice_txn::TxnState;

use super::Admin;

/// Whether a transaction in `state` is still open (not yet complete).
fn is_open(state: TxnState) -> bool {
    matches!(
        state,
        TxnState::Ongoing
            | TxnState::PrepareCommit
            | TxnState::PrepareAbort
            | TxnState::PrepareEpochFence
    )
}

/// One transactional id as the coordinator keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactionInfo {
    /// The transactional id.
    pub id: String,
    /// Its producer id and epoch.
    pub producer_id: i64,
    /// The producer epoch.
    pub epoch: i16,
    /// `Empty`, `Ongoing`, `PrepareCommit`, `CompleteCommit`, …
    pub state: &'static str,
    /// The transaction timeout the producer asked for.
    pub timeout_ms: i32,
    /// The partitions of the open transaction, by topic.
    pub partitions: Vec<(String, Vec<i32>)>,
    /// When the open transaction started (ms); `None` unless one is open.
    pub started_ms: Option<i64>,
    /// When its state last changed (ms).
    pub updated_ms: i64,
}

impl TransactionInfo {
    /// Whether a transaction has been open for longer than its timeout at `now_ms` (the
    /// coordinator aborts such transactions; one that stays is hanging).
    pub fn overdue(&self, now_ms: i64) -> bool {
        self.started_ms
            .is_some_and(|start| now_ms - start > i64::from(self.timeout_ms))
    }
}

/// One producer's state in one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerInfo {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: i32,
    /// The producer id.
    pub producer_id: i64,
    /// Its epoch.
    pub epoch: i16,
    /// The sequence of its last record (-1: none).
    pub last_sequence: i32,
    /// The timestamp of its last batch.
    pub last_timestamp: i64,
    /// The first offset of its open transaction in this partition, if any.
    pub ongoing_txn_first_offset: Option<i64>,
}

impl Admin {
    /// Every transactional id of the coordinator partitions this node leads, by id.
    pub fn transactions(&self) -> Vec<TransactionInfo> {
        self.broker
            .txn
            .image()
            .into_iter()
            .map(|(id, v)| TransactionInfo {
                id,
                producer_id: v.producer_id,
                epoch: v.producer_epoch,
                state: v.state.as_str(),
                timeout_ms: v.transaction_timeout_ms,
                partitions: v.partitions,
                started_ms: (is_open(v.state) && v.start_timestamp_ms >= 0)
                    .then_some(v.start_timestamp_ms),
                updated_ms: v.last_update_timestamp_ms,
            })
            .collect()
    }

    /// Every producer with state in a partition on this node, by topic and partition.
    pub fn producers(&self) -> Vec<ProducerInfo> {
        let mut out: Vec<ProducerInfo> = self
            .broker
            .replicas
            .logs()
            .all()
            .iter()
            .flat_map(|p| {
                p.producers().into_iter().map(|s| ProducerInfo {
                    topic: p.topic.clone(),
                    partition: p.index,
                    producer_id: s.producer.producer_id,
                    epoch: s.producer.epoch,
                    last_sequence: s.last_sequence,
                    last_timestamp: s.last_timestamp,
                    ongoing_txn_first_offset: s.ongoing_txn_first_offset,
                })
            })
            .collect();
        out.sort_by(|a, b| {
            (&a.topic, a.partition, a.producer_id).cmp(&(&b.topic, b.partition, b.producer_id))
        });
        out
    }
}

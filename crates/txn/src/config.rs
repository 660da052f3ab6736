//! Coordinator settings, named after the Kafka broker configs they mirror.

/// Settings of the transaction coordinator.
///
/// Every field mirrors a Kafka broker config so operators can carry their
/// `server.properties` knowledge over unchanged; the defaults are Kafka's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnConfig {
    /// `transaction.max.timeout.ms`: InitProducerId with a larger
    /// `transaction_timeout_ms` gets INVALID_TRANSACTION_TIMEOUT, so a client
    /// cannot keep a transaction (and the last stable offset of every
    /// partition it touched) open for longer than the operator allows.
    pub transaction_max_timeout_ms: i32,
    /// `transactional.id.expiration.ms`: a transactional id without a
    /// transaction for this long is forgotten (tombstoned), like Kafka, so
    /// that ids of applications long gone do not accumulate forever.
    pub transactional_id_expiration_ms: i64,
    /// `transaction.state.log.num.partitions`: the number of partitions of
    /// `__transaction_state` (the log decides where a transactional id lives).
    pub state_partitions: i32,
    /// `offsets.topic.num.partitions`: needed to name the `__consumer_offsets`
    /// partition of a group that AddOffsetsToTxn adds to a transaction.
    pub offsets_partitions: i32,
}

impl Default for TxnConfig {
    fn default() -> Self {
        Self {
            transaction_max_timeout_ms: 900_000,
            transactional_id_expiration_ms: 7 * 24 * 60 * 60 * 1000,
            state_partitions: 50,
            offsets_partitions: 50,
        }
    }
}

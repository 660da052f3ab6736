//! Background housekeeping: log retention and committed-offset expiry.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::broker::Broker;

/// Runs retention every `log.retention.check.interval.ms` until stopped.
pub async fn run(broker: Arc<Broker>, mut stop: watch::Receiver<bool>) {
    // At least 1 ms: BrokerConfig::validate refuses 0.
    let interval = Duration::from_millis(broker.config.log_retention_check_interval_ms);
    loop {
        tokio::select! {
            _ = crate::server::stopped(&mut stop) => return,
            _ = tokio::time::sleep(interval) => {}
        }
        let b = broker.clone();
        let deleted = tokio::task::spawn_blocking(move || {
            let mut deleted = 0usize;
            for p in b.replicas.logs().all() {
                match p.apply_retention() {
                    Ok(n) => deleted += n,
                    Err(e) => tracing::warn!(topic = %p.topic, partition = p.index, error = %e, "retention failed"),
                }
            }
            deleted
        })
        .await
        .unwrap_or(0);
        if deleted > 0 {
            tracing::info!(segments = deleted, "retention deleted old segments");
        }
        broker.groups.expire_offsets().await;
    }
}

/// How often open transactions are checked against their timeouts.
const TRANSACTION_TIMEOUT_CHECK: Duration = Duration::from_secs(1);

/// Aborts transactions that outlived their timeout, until stopped.
pub async fn abort_timed_out_transactions(broker: Arc<Broker>, mut stop: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = crate::server::stopped(&mut stop) => return,
            _ = tokio::time::sleep(TRANSACTION_TIMEOUT_CHECK) => {}
        }
        broker.txn.abort_timed_out().await;
    }
}

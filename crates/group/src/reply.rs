//! Responses that are either ready now or parked until the group moves on.

use tokio::sync::oneshot;

/// A response available now, or one the coordinator will send later (a
/// JoinGroup held for the rebalance, a SyncGroup waiting for the leader, an
/// OffsetCommit waiting for the log).
pub(crate) enum Reply<T> {
    Now(T),
    Wait(oneshot::Receiver<T>),
}

impl<T> Reply<T> {
    /// Waits for the response. A parked response whose sender was dropped
    /// (superseded by a newer request of the same member, or the coordinator
    /// shut down) resolves to `fallback`, a retriable error for the client.
    pub async fn resolve(self, fallback: impl FnOnce() -> T) -> T {
        match self {
            Self::Now(value) => value,
            Self::Wait(receiver) => receiver.await.unwrap_or_else(|_| fallback()),
        }
    }
}

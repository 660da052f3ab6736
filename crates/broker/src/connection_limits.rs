//! Kafka's connection quotas: `max.connections` for the broker and
//! `max.connections.per.ip` for one client address. As in Kafka, a broker at its limit
//! stops accepting (new clients wait in the listen backlog until a connection closes),
//! while a connection over the per-address limit is closed at once.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::log_throttle::LogThrottle;

/// How often a "limit reached" warning may repeat.
const WARN_INTERVAL: Duration = Duration::from_secs(10);

/// The connections open now, against their limits.
pub(crate) struct ConnectionLimits {
    max: u32,
    slots: Arc<Semaphore>,
    max_per_ip: Option<u32>,
    per_ip: Mutex<HashMap<IpAddr, u32>>,
    full: LogThrottle,
    over_per_ip: LogThrottle,
}

/// One admitted connection; dropping it frees its place.
pub(crate) struct ConnectionSlot {
    _permit: OwnedSemaphorePermit,
    ip: IpAddr,
    limits: Arc<ConnectionLimits>,
}

impl ConnectionLimits {
    pub(crate) fn new(max: u32, max_per_ip: Option<u32>) -> Arc<Self> {
        Arc::new(Self {
            max,
            slots: Arc::new(Semaphore::new(usize::try_from(max).unwrap_or(usize::MAX))),
            max_per_ip,
            per_ip: Mutex::new(HashMap::new()),
            full: LogThrottle::new(WARN_INTERVAL),
            over_per_ip: LogThrottle::new(WARN_INTERVAL),
        })
    }

    /// Waits until fewer than `max` connections are open and reserves a place.
    pub(crate) async fn wait_for_slot(&self) -> Option<OwnedSemaphorePermit> {
        if self.slots.available_permits() == 0
            && let Some(held_back) = self.full.ready()
        {
            tracing::warn!(
                connections = self.max,
                held_back,
                "connection limit reached (max-connections); new clients wait until a connection closes"
            );
        }
        self.slots.clone().acquire_owned().await.ok()
    }

    /// Admits a connection from `ip` into the place `permit` reserved, or refuses it when
    /// that address already holds `max-connections-per-ip` connections.
    pub(crate) fn admit(
        self: &Arc<Self>,
        permit: OwnedSemaphorePermit,
        ip: IpAddr,
    ) -> Option<ConnectionSlot> {
        let mut per_ip = self.per_ip.lock();
        let count = per_ip.entry(ip).or_insert(0);
        if self.max_per_ip.is_some_and(|max| *count >= max) {
            drop(per_ip);
            if let Some(held_back) = self.over_per_ip.ready() {
                tracing::warn!(
                    %ip,
                    limit = self.max_per_ip,
                    held_back,
                    "closing a new connection: this address is at max-connections-per-ip"
                );
            }
            return None;
        }
        *count += 1;
        Some(ConnectionSlot {
            _permit: permit,
            ip,
            limits: self.clone(),
        })
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let mut per_ip = self.limits.per_ip.lock();
        if let Some(count) = per_ip.get_mut(&self.ip) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                per_ip.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[tokio::test]
    async fn per_ip_limit_refuses_and_frees_on_drop() {
        let limits = ConnectionLimits::new(10, Some(2));
        let ip: IpAddr = [127, 0, 0, 1].into();
        let other: IpAddr = [127, 0, 0, 2].into();
        let a = limits.admit(limits.wait_for_slot().await.unwrap(), ip);
        let b = limits.admit(limits.wait_for_slot().await.unwrap(), ip);
        assert!(a.is_some() && b.is_some());
        assert!(
            limits
                .admit(limits.wait_for_slot().await.unwrap(), ip)
                .is_none()
        );
        assert!(
            limits
                .admit(limits.wait_for_slot().await.unwrap(), other)
                .is_some()
        );
        drop(a);
        assert!(
            limits
                .admit(limits.wait_for_slot().await.unwrap(), ip)
                .is_some()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn the_broker_limit_makes_new_connections_wait() {
        let limits = ConnectionLimits::new(1, None);
        let ip: IpAddr = [127, 0, 0, 1].into();
        let first = limits.admit(limits.wait_for_slot().await.unwrap(), ip);
        let waiting = tokio::time::timeout(Duration::from_secs(1), limits.wait_for_slot()).await;
        assert!(waiting.is_err(), "no slot while one connection is open");
        drop(first);
        assert!(limits.wait_for_slot().await.is_some());
    }
}

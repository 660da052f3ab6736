//! Client byte-rate quotas (KIP-13, KIP-55, KIP-219): produced request bytes and fetched
//! response bytes are recorded per quota entity (the one whose quota applies to the user
//! and client id, in Kafka's precedence), and a rate over the quota yields a throttle time.
//! The connection answers at once with `throttle_time_ms` and then reads nothing from the
//! client for that long ("respond, then mute").

use std::collections::HashMap;

use parking_lot::Mutex;
use sluice_security::quota::{QuotaEntity, SampledRate, precedence};

use crate::config::BrokerConfig;
use crate::metadata::MetadataImage;

/// Which byte rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QuotaKind {
    /// `producer_byte_rate`: Produce request bytes.
    Produce,
    /// `consumer_byte_rate`: Fetch response bytes.
    Fetch,
}

impl QuotaKind {
    /// The quota key.
    pub fn key(self) -> &'static str {
        match self {
            QuotaKind::Produce => "producer_byte_rate",
            QuotaKind::Fetch => "consumer_byte_rate",
        }
    }
}

/// The rates of every quota entity in use.
pub struct ClientQuotas {
    sensors: Mutex<HashMap<(QuotaKind, QuotaEntity), SampledRate>>,
    samples: usize,
    window_ms: i64,
}

impl ClientQuotas {
    /// Rates over `quota.window.num` samples of `quota.window.size.seconds`.
    pub fn new(config: &BrokerConfig) -> Self {
        ClientQuotas {
            sensors: Mutex::new(HashMap::new()),
            samples: usize::try_from(config.quota_window_num).unwrap_or(11),
            window_ms: i64::from(config.quota_window_size_seconds) * 1000,
        }
    }

    /// Records `bytes` of `kind` for `user` and `client_id` at `now_ms`; returns how long
    /// the client is throttled (0 without a quota or within it).
    pub fn record(
        &self,
        image: &MetadataImage,
        kind: QuotaKind,
        user: &str,
        client_id: &str,
        bytes: usize,
        now_ms: i64,
    ) -> i64 {
        let quotas = image.security.quotas();
        if quotas.is_empty() {
            return 0;
        }
        let found = precedence(user, client_id).into_iter().find_map(|entity| {
            let quota = *quotas.get(&entity)?.get(kind.key())?;
            Some((entity, quota))
        });
        let Some((entity, quota)) = found else {
            return 0;
        };
        let mut sensors = self.sensors.lock();
        let rate = sensors
            .entry((kind, entity))
            .or_insert_with(|| SampledRate::new(self.samples, self.window_ms));
        rate.record(bytes as f64, now_ms);
        rate.throttle_ms(quota, now_ms)
    }
}

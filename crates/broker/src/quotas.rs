//! Client quotas (KIP-13, KIP-55, KIP-124, KIP-219): produced request bytes, fetched
//! response bytes and the time spent handling requests are recorded per quota entity (the
//! one whose quota applies to the user and client id, in Kafka's precedence), and a rate
//! over the quota yields a throttle time. The connection answers at once with
//! `throttle_time_ms` and then reads nothing from the client for that long ("respond, then
//! mute").
//!
//! `request_percentage` is Kafka's request time quota: the percentage of one request
//! thread a client may keep busy, so 100 is a whole thread. Its throttle time is at most
//! one quota window, as Kafka's `ClientRequestQuotaManager` bounds it.

use std::collections::HashMap;
use std::time::Duration;

use parking_lot::Mutex;
use sluice_security::quota::{QuotaEntity, SampledRate, precedence};

use crate::config::BrokerConfig;
use crate::metadata::MetadataImage;

/// Which rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QuotaKind {
    /// `producer_byte_rate`: Produce request bytes.
    Produce,
    /// `consumer_byte_rate`: Fetch response bytes.
    Fetch,
    /// `request_percentage`: time spent handling requests, in percent of one thread.
    RequestTime,
}

impl QuotaKind {
    /// The quota key.
    pub fn key(self) -> &'static str {
        match self {
            QuotaKind::Produce => "producer_byte_rate",
            QuotaKind::Fetch => "consumer_byte_rate",
            QuotaKind::RequestTime => "request_percentage",
        }
    }
}

/// Handling time as Kafka records it against `request_percentage`: percent of one thread
/// for one second, so a rate per second is a percentage of a thread.
pub fn request_time_percent(handling: Duration) -> f64 {
    handling.as_nanos() as f64 * 100.0 / 1e9
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
        self.record_value(image, kind, user, client_id, bytes as f64, now_ms)
    }

    /// Records `handling`, the time one request of `user` and `client_id` kept the broker
    /// busy, at `now_ms`; returns how long the client is throttled by `request_percentage`
    /// (0 without that quota or within it, never more than one quota window).
    pub fn record_request_time(
        &self,
        image: &MetadataImage,
        user: &str,
        client_id: &str,
        handling: Duration,
        now_ms: i64,
    ) -> i64 {
        let percent = request_time_percent(handling);
        self.record_value(
            image,
            QuotaKind::RequestTime,
            user,
            client_id,
            percent,
            now_ms,
        )
        .min(self.window_ms)
    }

    fn record_value(
        &self,
        image: &MetadataImage,
        kind: QuotaKind,
        user: &str,
        client_id: &str,
        value: f64,
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
        rate.record(value, now_ms);
        rate.throttle_ms(quota, now_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::MetadataRecord;

    fn image_with_request_quota(user: &str, percent: f64) -> MetadataImage {
        let mut image = MetadataImage::new(1);
        image.apply(&MetadataRecord::ClientQuotaChanged {
            entity: vec![("user".into(), Some(user.into()))],
            key: "request_percentage".into(),
            value: Some(percent),
        });
        image
    }

    /// 11 windows of 1 s: the first rate spans 10 s. 50 ms of handling in 10 s is 0.5 %
    /// of a thread; against 0.1 % that is (0.5 - 0.1) / 0.1 × 10 s, bounded by the 1 s
    /// window.
    #[test]
    fn request_time_over_the_percentage_throttles_for_at_most_a_window() {
        let quotas = ClientQuotas::new(&BrokerConfig::default());
        let image = image_with_request_quota("alice", 0.1);
        let now = 1_700_000_000_000;
        let record = |user: &str, ms: u64| {
            quotas.record_request_time(&image, user, "app", Duration::from_millis(ms), now)
        };
        assert_eq!(record("alice", 5), 0, "0.05 % is within 0.1 %");
        assert_eq!(record("alice", 45), 1000);
        assert_eq!(record("bob", 500), 0, "bob has no quota");
        // Byte rates are kept apart from request time.
        assert_eq!(
            quotas.record(&image, QuotaKind::Produce, "alice", "app", 1 << 30, now),
            0
        );
    }

    #[test]
    fn handling_time_counts_in_percent_of_a_thread_second() {
        assert_eq!(request_time_percent(Duration::from_secs(1)), 100.0);
        assert_eq!(request_time_percent(Duration::from_millis(10)), 1.0);
        assert_eq!(request_time_percent(Duration::from_micros(50)), 0.005);
    }
}

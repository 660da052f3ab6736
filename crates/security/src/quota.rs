//! Client quotas as Kafka's `ClientQuotaManager` keeps them: byte rates per user, client id
//! and their defaults, resolved with Kafka's precedence, measured over a sampled window,
//! and turned into a throttle time (KIP-13, KIP-55, KIP-219).

use std::collections::BTreeMap;

/// `user` entity type.
pub const USER: &str = "user";
/// `client-id` entity type.
pub const CLIENT_ID: &str = "client-id";
/// `ip` entity type.
pub const IP: &str = "ip";

/// The quota keys Kafka knows, with the entity types they apply to.
pub const KEYS: &[(&str, &[&str])] = &[
    ("producer_byte_rate", &[USER, CLIENT_ID]),
    ("consumer_byte_rate", &[USER, CLIENT_ID]),
    ("request_percentage", &[USER, CLIENT_ID]),
    ("controller_mutation_rate", &[USER, CLIENT_ID]),
    ("connection_creation_rate", &[IP]),
];

/// A quota entity: each of its types with a name, or `None` for the default
/// (`<default>`). Sorted by type, so equal entities compare equal.
pub type QuotaEntity = Vec<(String, Option<String>)>;

/// Checks an entity of AlterClientQuotas: known types, each once, `ip` alone.
pub fn validate_entity(entity: &QuotaEntity) -> Result<(), String> {
    if entity.is_empty() {
        return Err("Invalid empty client quota entity".into());
    }
    for (i, (kind, _)) in entity.iter().enumerate() {
        if ![USER, CLIENT_ID, IP].contains(&kind.as_str()) {
            return Err(format!("Unhandled client quota entity type: {kind}"));
        }
        if entity.iter().skip(i + 1).any(|(k, _)| k == kind) {
            return Err(format!("Duplicate {kind} entity type"));
        }
    }
    if entity.len() > 1 && entity.iter().any(|(k, _)| k == IP) {
        return Err(
            "Invalid quota entity combination: ip cannot be combined with other entity types"
                .into(),
        );
    }
    Ok(())
}

/// Checks a quota key and value for `entity`.
pub fn validate_key(entity: &QuotaEntity, key: &str, value: f64) -> Result<(), String> {
    let Some((_, types)) = KEYS.iter().find(|(k, _)| *k == key) else {
        return Err(format!("Unknown quota key: {key}"));
    };
    if !entity
        .iter()
        .all(|(kind, _)| types.contains(&kind.as_str()))
    {
        return Err(format!("Invalid quota key {key} for this entity"));
    }
    if !value.is_finite() || value <= 0.0 {
        return Err(format!("Invalid value {value} for {key}: must be positive"));
    }
    if key != "request_percentage" && value.fract() != 0.0 {
        return Err(format!(
            "Invalid value {value} for {key}: must be a whole number"
        ));
    }
    Ok(())
}

/// The entities that may set a quota for (`user`, `client_id`), in Kafka's precedence:
/// user+client, user+default client, user, default user+client, default user+default
/// client, default user, client, default client.
pub fn precedence(user: &str, client_id: &str) -> [QuotaEntity; 8] {
    let u = |name: Option<&str>| (USER.to_string(), name.map(String::from));
    let c = |name: Option<&str>| (CLIENT_ID.to_string(), name.map(String::from));
    [
        vec![c(Some(client_id)), u(Some(user))],
        vec![c(None), u(Some(user))],
        vec![u(Some(user))],
        vec![c(Some(client_id)), u(None)],
        vec![c(None), u(None)],
        vec![u(None)],
        vec![c(Some(client_id))],
        vec![c(None)],
    ]
}

/// The quota for `key` of (`user`, `client_id`): the first entity in precedence order that
/// sets it.
pub fn resolve(
    quotas: &BTreeMap<QuotaEntity, BTreeMap<String, f64>>,
    user: &str,
    client_id: &str,
    key: &str,
) -> Option<f64> {
    precedence(user, client_id)
        .iter()
        .find_map(|entity| quotas.get(entity)?.get(key).copied())
}

/// A rate over `samples` windows of `window_ms` (Kafka's `Rate` over a `SampledStat`):
/// the total of the live samples divided by the time they span, never less than
/// `samples - 1` windows.
#[derive(Debug, Clone)]
pub struct SampledRate {
    samples: Vec<(i64, f64)>,
    window_ms: i64,
    count: usize,
}

impl SampledRate {
    /// A rate over `count` samples of `window_ms`.
    pub fn new(count: usize, window_ms: i64) -> Self {
        SampledRate {
            samples: Vec::with_capacity(count.max(1)),
            window_ms: window_ms.max(1),
            count: count.max(1),
        }
    }

    /// Adds `value` at `now_ms`.
    pub fn record(&mut self, value: f64, now_ms: i64) {
        self.expire(now_ms);
        let start = now_ms - now_ms.rem_euclid(self.window_ms);
        match self.samples.last_mut() {
            Some((s, total)) if *s == start => *total += value,
            _ => {
                if self.samples.len() == self.count {
                    self.samples.remove(0);
                }
                self.samples.push((start, value));
            }
        }
    }

    /// Drops the samples that started `count` windows ago or earlier (Kafka's
    /// `purgeObsoleteSamples`).
    fn expire(&mut self, now_ms: i64) {
        let age = self.window_ms * i64::try_from(self.count).unwrap_or(i64::MAX);
        self.samples.retain(|(start, _)| now_ms - *start < age);
    }

    /// The time the rate is measured over at `now_ms`, in ms.
    pub fn window_span_ms(&self, now_ms: i64) -> i64 {
        let oldest = self.samples.first().map_or(now_ms, |(s, _)| *s);
        let elapsed = (now_ms - oldest).max(0);
        let min = self.window_ms * i64::try_from(self.count - 1).unwrap_or(0);
        elapsed.max(min).max(1)
    }

    /// The rate per second at `now_ms`.
    pub fn per_second(&mut self, now_ms: i64) -> f64 {
        self.expire(now_ms);
        let total: f64 = self.samples.iter().map(|(_, v)| v).sum();
        total * 1000.0 / self.window_span_ms(now_ms) as f64
    }

    /// Kafka's throttle time for `quota` (per second): `(rate - quota) / quota × window`,
    /// 0 while the rate is within it.
    pub fn throttle_ms(&mut self, quota: f64, now_ms: i64) -> i64 {
        let rate = self.per_second(now_ms);
        if rate <= quota || quota <= 0.0 {
            return 0;
        }
        ((rate - quota) / quota * self.window_span_ms(now_ms) as f64) as i64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entity(parts: &[(&str, Option<&str>)]) -> QuotaEntity {
        let mut e: QuotaEntity = parts
            .iter()
            .map(|(k, v)| (k.to_string(), v.map(String::from)))
            .collect();
        e.sort();
        e
    }

    #[test]
    fn quotas_resolve_in_kafka_s_precedence() {
        let mut quotas = BTreeMap::new();
        let mut set = |parts: &[(&str, Option<&str>)], v: f64| {
            quotas.insert(
                entity(parts),
                BTreeMap::from([("producer_byte_rate".to_string(), v)]),
            );
        };
        set(&[(CLIENT_ID, None)], 8.0);
        set(&[(CLIENT_ID, Some("app"))], 7.0);
        set(&[(USER, None)], 6.0);
        set(&[(USER, None), (CLIENT_ID, None)], 5.0);
        set(&[(USER, None), (CLIENT_ID, Some("app"))], 4.0);
        set(&[(USER, Some("alice"))], 3.0);
        set(&[(USER, Some("alice")), (CLIENT_ID, None)], 2.0);
        set(&[(USER, Some("alice")), (CLIENT_ID, Some("app"))], 1.0);
        let q = |quotas: &BTreeMap<_, _>, u, c| resolve(quotas, u, c, "producer_byte_rate");
        assert_eq!(q(&quotas, "alice", "app"), Some(1.0));
        assert_eq!(q(&quotas, "alice", "other"), Some(2.0));
        assert_eq!(q(&quotas, "bob", "app"), Some(4.0));
        assert_eq!(q(&quotas, "bob", "other"), Some(5.0));
        let only_clients: BTreeMap<_, _> = quotas
            .iter()
            .filter(|(e, _)| e.iter().all(|(k, _)| k == CLIENT_ID))
            .map(|(e, v)| (e.clone(), v.clone()))
            .collect();
        assert_eq!(q(&only_clients, "bob", "app"), Some(7.0));
        assert_eq!(q(&only_clients, "bob", "x"), Some(8.0));
        assert_eq!(resolve(&quotas, "bob", "x", "consumer_byte_rate"), None);
    }

    #[test]
    fn entities_and_keys_are_validated() {
        assert!(validate_entity(&entity(&[(USER, Some("a")), (CLIENT_ID, None)])).is_ok());
        assert!(validate_entity(&entity(&[(IP, None), (USER, None)])).is_err());
        assert!(validate_entity(&entity(&[("group", None)])).is_err());
        assert!(validate_entity(&Vec::new()).is_err());
        let user = entity(&[(USER, Some("a"))]);
        assert!(validate_key(&user, "producer_byte_rate", 1024.0).is_ok());
        assert!(validate_key(&user, "producer_byte_rate", 1.5).is_err());
        assert!(validate_key(&user, "request_percentage", 12.5).is_ok());
        assert!(validate_key(&user, "connection_creation_rate", 1.0).is_err());
        assert!(validate_key(&user, "nope", 1.0).is_err());
        assert!(validate_key(&user, "consumer_byte_rate", -1.0).is_err());
    }

    /// A fresh rate spans at least `samples - 1` windows, so the first burst is spread
    /// over them; throttling brings it back to the quota.
    #[test]
    fn the_rate_and_throttle_follow_kafka_s_formula() {
        let mut rate = SampledRate::new(11, 1000);
        rate.record(5_000_000.0, 500);
        assert_eq!(rate.window_span_ms(500), 10_000);
        assert!((rate.per_second(500) - 500_000.0).abs() < 1e-6);
        assert_eq!(rate.throttle_ms(1_000_000.0, 500), 0);
        rate.record(15_000_000.0, 900);
        // 20 MB over 10 s is 2 MB/s: (2 - 1) / 1 × 10 s.
        assert_eq!(rate.throttle_ms(1_000_000.0, 900), 10_000);
        // Samples older than the window are dropped.
        assert_eq!(rate.per_second(20_000), 0.0);
        let mut short = SampledRate::new(2, 1000);
        short.record(2_000_000.0, 0);
        assert_eq!(short.throttle_ms(1_000_000.0, 0), 1000);
    }
}

//! The cluster's recent history for the charts: one point a second for the last hour,
//! in a bounded ring, sampled from the broker's counters while the console is on.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use parking_lot::Mutex;
use serde::Serialize;
use sluice_broker::admin::{Admin, MetricsSnapshot, TrafficTotals};
use tokio::sync::watch;

/// How often a point is taken.
pub const SAMPLE_INTERVAL: Duration = Duration::from_secs(1);
/// Points kept: one hour.
pub const CAPACITY: usize = 3600;

/// One moment: the rates over the second before it and the p99s of that second
/// (`None` when nothing was observed).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Point {
    /// Seconds since the epoch.
    pub t: i64,
    /// Bytes in and out, records in and out, requests (each per second), request p99
    /// and fsync p99 (ms).
    pub v: [Option<f64>; 7],
}

/// A topic's bytes in and out per second over the last sample.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct TopicRate {
    /// Bytes produced per second.
    pub bytes_in: f64,
    /// Bytes fetched per second.
    pub bytes_out: f64,
}

/// The ring of points, each topic's latest rates, and a counter that moves with each
/// new point.
pub struct History {
    points: Mutex<VecDeque<Point>>,
    topic_rates: Mutex<HashMap<String, TopicRate>>,
    added: watch::Sender<u64>,
}

impl Default for History {
    fn default() -> Self {
        Self {
            points: Mutex::new(VecDeque::with_capacity(CAPACITY)),
            topic_rates: Mutex::new(HashMap::new()),
            added: watch::channel(0).0,
        }
    }
}

impl History {
    /// Each topic's rates over the last second (topics without traffic are absent).
    pub fn topic_rate(&self, topic: &str) -> TopicRate {
        self.topic_rates
            .lock()
            .get(topic)
            .copied()
            .unwrap_or_default()
    }

    fn set_topic_rates(&self, rates: HashMap<String, TopicRate>) {
        *self.topic_rates.lock() = rates;
    }

    /// Appends a point, dropping the oldest beyond [`CAPACITY`].
    pub fn push(&self, point: Point) {
        let mut points = self.points.lock();
        if points.len() == CAPACITY {
            points.pop_front();
        }
        points.push_back(point);
        drop(points);
        self.added.send_modify(|n| *n += 1);
    }

    /// Wakes on each new point.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.added.subscribe()
    }

    /// Points after second `after`.
    pub fn since(&self, after: i64) -> Vec<Point> {
        self.points
            .lock()
            .iter()
            .filter(|p| p.t > after)
            .cloned()
            .collect()
    }

    /// The whole hour in buckets of `bucket` seconds: rates averaged, p99s the worst of
    /// the bucket; each bucket is stamped with its last second.
    pub fn downsampled(&self, bucket: i64) -> Vec<Point> {
        let points = self.points.lock();
        let mut out: Vec<Point> = Vec::new();
        let mut counts: Vec<[u32; 7]> = Vec::new();
        for p in points.iter() {
            let key = p.t.div_euclid(bucket.max(1));
            let same = out
                .last()
                .is_some_and(|last| last.t.div_euclid(bucket.max(1)) == key);
            if !same {
                out.push(Point {
                    t: p.t,
                    v: [None; 7],
                });
                counts.push([0; 7]);
            }
            let (Some(last), Some(count)) = (out.last_mut(), counts.last_mut()) else {
                continue;
            };
            last.t = p.t;
            for (i, value) in p.v.iter().enumerate() {
                let (Some(value), Some(slot), Some(n)) =
                    (value, last.v.get_mut(i), count.get_mut(i))
                else {
                    continue;
                };
                let is_p99 = i >= 5;
                *slot = Some(match *slot {
                    None => *value,
                    Some(s) if is_p99 => s.max(*value),
                    Some(s) => s + value,
                });
                *n += 1;
            }
        }
        for (p, count) in out.iter_mut().zip(&counts) {
            for (i, slot) in p.v.iter_mut().enumerate().take(5) {
                if let (Some(s), Some(&n)) = (slot.as_mut(), count.get(i))
                    && n > 0
                {
                    *s /= f64::from(n);
                }
            }
        }
        out
    }
}

/// The point between two snapshots taken `secs` apart, stamped `t`.
pub fn point_between(
    before: &MetricsSnapshot,
    after: &MetricsSnapshot,
    secs: f64,
    t: i64,
) -> Point {
    let rate = |a: u64, b: u64| Some(a.saturating_sub(b) as f64 / secs.max(0.001));
    let (now, then) = (&after.traffic, &before.traffic);
    let ms = |q: Option<f64>| q.map(|s| s * 1000.0);
    Point {
        t,
        v: [
            rate(now.bytes_in, then.bytes_in),
            rate(now.bytes_out, then.bytes_out),
            rate(now.records_in, then.records_in),
            rate(now.records_out, then.records_out),
            rate(after.requests, before.requests),
            ms(after
                .request_latency
                .since(&before.request_latency)
                .quantile(0.99)),
            ms(after.fsync.since(&before.fsync).quantile(0.99)),
        ],
    }
}

/// Each topic's byte rates between two snapshots `secs` apart (only topics that moved).
fn topic_rates(
    before: &HashMap<String, TrafficTotals>,
    after: &HashMap<String, TrafficTotals>,
    secs: f64,
) -> HashMap<String, TopicRate> {
    after
        .iter()
        .filter_map(|(name, now)| {
            let then = before.get(name).copied().unwrap_or_default();
            let rate = TopicRate {
                bytes_in: now.bytes_in.saturating_sub(then.bytes_in) as f64 / secs.max(0.001),
                bytes_out: now.bytes_out.saturating_sub(then.bytes_out) as f64 / secs.max(0.001),
            };
            (rate != TopicRate::default()).then(|| (name.clone(), rate))
        })
        .collect()
}

/// Samples the broker's counters every second into `history` until `stop` fires.
pub fn start_sampler(
    admin: Admin,
    history: std::sync::Arc<History>,
    mut stop: watch::Receiver<bool>,
) {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(SAMPLE_INTERVAL);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut before = (admin.metrics(), tokio::time::Instant::now());
        let mut topics_before = admin.topic_traffic();
        ticks.tick().await;
        loop {
            tokio::select! {
                _ = stop.wait_for(|s| *s) => break,
                _ = ticks.tick() => {
                    let after = (admin.metrics(), tokio::time::Instant::now());
                    let secs = after.1.duration_since(before.1).as_secs_f64();
                    let t = admin.now_ms().div_euclid(1000);
                    history.push(point_between(&before.0, &after.0, secs, t));
                    let topics_after = admin.topic_traffic();
                    history.set_topic_rates(topic_rates(&topics_before, &topics_after, secs));
                    topics_before = topics_after;
                    before = after;
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(t: i64, a: f64, p99: Option<f64>) -> Point {
        Point {
            t,
            v: [Some(a), Some(a), Some(a), Some(a), Some(a), p99, None],
        }
    }

    #[test]
    fn the_ring_keeps_an_hour_and_buckets_average_rates_and_keep_the_worst_p99() {
        let history = History::default();
        for t in 0..(CAPACITY as i64 + 10) {
            history.push(point(t, 1.0, None));
        }
        assert_eq!(history.since(-1).len(), CAPACITY);
        assert_eq!(history.since(-1).first().map(|p| p.t), Some(10));

        let history = History::default();
        history.push(point(100, 2.0, Some(1.0)));
        history.push(point(101, 4.0, Some(5.0)));
        history.push(point(110, 6.0, None));
        let buckets = history.downsampled(10);
        assert_eq!(
            buckets,
            vec![
                Point {
                    t: 101,
                    v: [
                        Some(3.0),
                        Some(3.0),
                        Some(3.0),
                        Some(3.0),
                        Some(3.0),
                        Some(5.0),
                        None
                    ]
                },
                point(110, 6.0, None),
            ]
        );
        assert_eq!(history.since(100).len(), 2);
    }
}

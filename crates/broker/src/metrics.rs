//! Broker metrics: lock-free counters updated on the request path, and the
//! Prometheus text exposition (format 0.0.4) that `/metrics` serves.
//!
//! Cost on the hot path: a request adds to two atomics (its counter and its
//! latency histogram); a produced or fetched partition adds to the counters
//! of its topic through an `Arc` the partition holds, so no map is consulted
//! per record or per batch. Gauges (log sizes and offsets, group lag, process
//! CPU and memory) are computed when scraped.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use kafka_protocol::messages::ApiKey;
use parking_lot::RwLock;
use sluice_protocol::kafka_protocol;

/// Api keys with a slot of their own (every key Kafka defines is below this).
const API_SLOTS: usize = 128;
/// Versions with a slot of their own per api key.
const VERSION_SLOTS: usize = 32;
/// One more slot for requests whose api key or version is out of range.
const UNKNOWN_SLOT: usize = API_SLOTS * VERSION_SLOTS;

/// Upper bounds (seconds) of the request latency histogram buckets.
const REQUEST_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Upper bounds (seconds) of the fsync latency histogram buckets.
const FSYNC_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// A histogram with fixed buckets; observing is a few relaxed atomic adds.
pub struct Histogram {
    bounds: &'static [f64],
    /// Per bucket (not cumulative); the last one is +Inf.
    counts: Box<[AtomicU64]>,
    sum_nanos: AtomicU64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Self {
        Self {
            bounds,
            counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_nanos: AtomicU64::new(0),
        }
    }

    /// Records one observation.
    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        let bucket = self
            .bounds
            .iter()
            .position(|&b| secs <= b)
            .unwrap_or(self.bounds.len());
        if let Some(c) = self.counts.get(bucket) {
            c.fetch_add(1, Ordering::Relaxed);
        }
        let nanos = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    fn count(&self) -> u64 {
        self.counts.iter().map(|c| c.load(Ordering::Relaxed)).sum()
    }

    /// The bucket counts now.
    pub fn snapshot(&self) -> HistogramSnapshot {
        HistogramSnapshot {
            bounds: self.bounds,
            counts: self
                .counts
                .iter()
                .map(|c| c.load(Ordering::Relaxed))
                .collect(),
        }
    }

    /// Writes the `_bucket`, `_sum` and `_count` samples; `labels` is empty
    /// or `name="value",…` without braces.
    fn write(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        let mut cumulative = 0u64;
        for (i, c) in self.counts.iter().enumerate() {
            cumulative += c.load(Ordering::Relaxed);
            let le = self
                .bounds
                .get(i)
                .map_or_else(|| "+Inf".to_string(), |b| b.to_string());
            let _ = writeln!(
                out,
                "{name}_bucket{{{labels}{sep}le=\"{le}\"}} {cumulative}"
            );
        }
        let braces = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{labels}}}")
        };
        let sum = self.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
        let _ = writeln!(out, "{name}_sum{braces} {sum}");
        let _ = writeln!(out, "{name}_count{braces} {cumulative}");
    }
}

/// A histogram's bucket counts at one moment: two of them give the distribution of what
/// was observed in between.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HistogramSnapshot {
    /// Upper bounds (seconds) of the buckets but the last (+Inf).
    pub bounds: &'static [f64],
    /// Observations per bucket (not cumulative), one more than `bounds`.
    pub counts: Vec<u64>,
}

impl HistogramSnapshot {
    /// What was observed after `earlier` (a snapshot of the same histogram).
    pub fn since(&self, earlier: &HistogramSnapshot) -> HistogramSnapshot {
        HistogramSnapshot {
            bounds: self.bounds,
            counts: self
                .counts
                .iter()
                .enumerate()
                .map(|(i, n)| n.saturating_sub(earlier.counts.get(i).copied().unwrap_or(0)))
                .collect(),
        }
    }

    /// Adds another histogram's counts with the same buckets.
    pub fn add(&mut self, other: &HistogramSnapshot) {
        if self.counts.is_empty() {
            self.bounds = other.bounds;
            self.counts = vec![0; other.counts.len()];
        }
        for (mine, theirs) in self.counts.iter_mut().zip(&other.counts) {
            *mine += theirs;
        }
    }

    /// Observations counted.
    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// The upper bound (seconds) of the bucket holding quantile `q` (0..=1): an upper
    /// estimate, as Prometheus' `histogram_quantile` would give without interpolation.
    /// `None` when nothing was observed; the last finite bound for the +Inf bucket.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let total = self.count();
        if total == 0 {
            return None;
        }
        let rank = (q.clamp(0.0, 1.0) * total as f64).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, n) in self.counts.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return self.bounds.get(i).or(self.bounds.last()).copied();
            }
        }
        self.bounds.last().copied()
    }
}

/// A topic's traffic counters at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TrafficTotals {
    /// Bytes of batches appended by Produce.
    pub bytes_in: u64,
    /// Records appended by Produce.
    pub records_in: u64,
    /// Bytes of batches returned by Fetch.
    pub bytes_out: u64,
    /// Records returned by Fetch.
    pub records_out: u64,
}

impl TrafficTotals {
    fn add(&mut self, other: TrafficTotals) {
        self.bytes_in += other.bytes_in;
        self.records_in += other.records_in;
        self.bytes_out += other.bytes_out;
        self.records_out += other.records_out;
    }
}

/// The broker's counters at one moment (for rates and windowed percentiles).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MetricsSnapshot {
    /// Traffic over every topic.
    pub traffic: TrafficTotals,
    /// Requests received.
    pub requests: u64,
    /// Latency of every request but those that wait by design (Fetch's long poll,
    /// JoinGroup and SyncGroup waiting for the group).
    pub request_latency: HistogramSnapshot,
    /// Sync latency of partition logs.
    pub fsync: HistogramSnapshot,
    /// Kafka client connections open.
    pub connections: i64,
}

/// Requests whose duration is mostly waiting by design, left out of
/// [`MetricsSnapshot::request_latency`].
const WAITING_APIS: [ApiKey; 3] = [ApiKey::Fetch, ApiKey::JoinGroup, ApiKey::SyncGroup];

/// Bytes and records produced to and fetched from one topic.
#[derive(Default)]
pub struct TopicTraffic {
    bytes_in: AtomicU64,
    records_in: AtomicU64,
    bytes_out: AtomicU64,
    records_out: AtomicU64,
}

impl TopicTraffic {
    /// The counters now.
    pub fn totals(&self) -> TrafficTotals {
        TrafficTotals {
            bytes_in: self.bytes_in.load(Ordering::Relaxed),
            records_in: self.records_in.load(Ordering::Relaxed),
            bytes_out: self.bytes_out.load(Ordering::Relaxed),
            records_out: self.records_out.load(Ordering::Relaxed),
        }
    }

    /// Counts appended batches: their bytes and their header record counts.
    pub fn produced(&self, bytes: u64, records: u64) {
        self.bytes_in.fetch_add(bytes, Ordering::Relaxed);
        self.records_in.fetch_add(records, Ordering::Relaxed);
    }

    /// Counts the batches of a fetch response.
    pub fn fetched(&self, bytes: u64, records: u64) {
        if bytes > 0 {
            self.bytes_out.fetch_add(bytes, Ordering::Relaxed);
            self.records_out.fetch_add(records, Ordering::Relaxed);
        }
    }
}

/// Sums the sizes and header record counts of the whole v2 batches in `records`.
pub fn batch_totals(records: &[u8]) -> (u64, u64) {
    sluice_protocol::batch::split_batches(records)
        .filter_map(Result::ok)
        .fold((0, 0), |(bytes, count), (h, _)| {
            (
                bytes + h.total_len() as u64,
                count + u64::try_from(h.records_count.max(0)).unwrap_or(0),
            )
        })
}

/// Picks one counter of a topic's traffic.
type TrafficField = fn(&TopicTraffic) -> &AtomicU64;

/// What the log cleaner did (see [`crate::log_cleaner`]).
#[derive(Default)]
pub struct CleanerMetrics {
    runs: AtomicU64,
    bytes_read: AtomicU64,
    bytes_written: AtomicU64,
    records_removed: AtomicU64,
    /// When a cleaner thread last looked for a log to clean; 0 before it first did.
    last_run_ms: AtomicI64,
    /// The largest dirty ratio it saw then, as `f64` bits.
    max_dirty_ratio: AtomicU64,
    /// Partitions it gave up on after an error, until restart.
    uncleanable_partitions: AtomicU64,
}

impl CleanerMetrics {
    /// A cleaner thread looked for work at `now_ms` and found `max_dirty_ratio` at most.
    pub fn looked(&self, now_ms: i64, max_dirty_ratio: f64) {
        self.last_run_ms.store(now_ms, Ordering::Relaxed);
        self.max_dirty_ratio
            .store(max_dirty_ratio.to_bits(), Ordering::Relaxed);
    }

    /// One cleaning was swapped in.
    pub fn cleaned(&self, stats: &sluice_storage::CleanStats) {
        self.runs.fetch_add(1, Ordering::Relaxed);
        self.bytes_read
            .fetch_add(stats.bytes_read, Ordering::Relaxed);
        self.bytes_written
            .fetch_add(stats.bytes_written, Ordering::Relaxed);
        self.records_removed.fetch_add(
            stats.records_read.saturating_sub(stats.records_retained),
            Ordering::Relaxed,
        );
    }

    /// How many partitions the cleaner skips after errors.
    pub fn set_uncleanable_partitions(&self, count: usize) {
        self.uncleanable_partitions
            .store(count as u64, Ordering::Relaxed);
    }

    fn write(&self, out: &mut String, now_ms: i64) {
        let counters: [(&str, &str, &AtomicU64); 4] = [
            (
                "sluice_log_cleaner_runs_total",
                "Cleanings of compacted logs swapped in.",
                &self.runs,
            ),
            (
                "sluice_log_cleaner_read_bytes_total",
                "Bytes of log segments the cleaner rewrote.",
                &self.bytes_read,
            ),
            (
                "sluice_log_cleaner_written_bytes_total",
                "Bytes of the cleaned segments it wrote in their place.",
                &self.bytes_written,
            ),
            (
                "sluice_log_cleaner_removed_records_total",
                "Records the cleaner removed (superseded, expired tombstones, aborted, keyless).",
                &self.records_removed,
            ),
        ];
        for (name, help, counter) in counters {
            header(out, name, "counter", help);
            let _ = writeln!(out, "{name} {}", counter.load(Ordering::Relaxed));
        }
        header(
            out,
            "sluice_log_cleaner_max_dirty_ratio",
            "gauge",
            "Largest dirty ratio of a compacted log when the cleaner last looked.",
        );
        let ratio = f64::from_bits(self.max_dirty_ratio.load(Ordering::Relaxed));
        let _ = writeln!(out, "sluice_log_cleaner_max_dirty_ratio {ratio}");
        header(
            out,
            "sluice_log_cleaner_uncleanable_partitions",
            "gauge",
            "Partitions the cleaner skips until restart after an error cleaning them.",
        );
        let _ = writeln!(
            out,
            "sluice_log_cleaner_uncleanable_partitions {}",
            self.uncleanable_partitions.load(Ordering::Relaxed)
        );
        let last = self.last_run_ms.load(Ordering::Relaxed);
        if last > 0 {
            header(
                out,
                "sluice_log_cleaner_seconds_since_last_run",
                "gauge",
                "Time since a cleaner thread last looked for a log to clean.",
            );
            let seconds = now_ms.saturating_sub(last).max(0) as f64 / 1000.0;
            let _ = writeln!(out, "sluice_log_cleaner_seconds_since_last_run {seconds}");
        }
    }
}

/// Every counter and histogram of the broker.
pub struct Metrics {
    requests: Box<[AtomicU64]>,
    request_errors: Box<[AtomicU64]>,
    /// Request latency per api key (the last one for unknown keys).
    durations: Box<[Histogram]>,
    /// Sync latency of partition logs.
    pub fsync: Arc<Histogram>,
    active_connections: AtomicI64,
    topics: RwLock<HashMap<String, Arc<TopicTraffic>>>,
    /// The log cleaner's counters.
    pub cleaner: CleanerMetrics,
    /// ISR changes this node's leaderships committed: replicas dropped, and taken back.
    isr_shrinks: AtomicU64,
    isr_expands: AtomicU64,
}

impl Default for Metrics {
    fn default() -> Self {
        let slots = || (0..=UNKNOWN_SLOT).map(|_| AtomicU64::new(0)).collect();
        Self {
            requests: slots(),
            request_errors: slots(),
            durations: (0..=API_SLOTS)
                .map(|_| Histogram::new(REQUEST_BUCKETS))
                .collect(),
            fsync: Arc::new(Histogram::new(FSYNC_BUCKETS)),
            active_connections: AtomicI64::new(0),
            topics: RwLock::new(HashMap::new()),
            cleaner: CleanerMetrics::default(),
            isr_shrinks: AtomicU64::new(0),
            isr_expands: AtomicU64::new(0),
        }
    }
}

fn slot(api_key: i16, version: i16) -> usize {
    match (usize::try_from(api_key), usize::try_from(version)) {
        (Ok(k), Ok(v)) if k < API_SLOTS && v < VERSION_SLOTS => k * VERSION_SLOTS + v,
        _ => UNKNOWN_SLOT,
    }
}

fn api_slot(api_key: i16) -> usize {
    usize::try_from(api_key)
        .ok()
        .filter(|&k| k < API_SLOTS)
        .unwrap_or(API_SLOTS)
}

/// Decrements the connection gauge when the connection ends.
pub struct ConnectionGuard(Arc<Metrics>);

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.0.active_connections.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Metrics {
    /// Counts one request received.
    pub fn request(&self, api_key: i16, version: i16) {
        if let Some(c) = self.requests.get(slot(api_key, version)) {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Counts `n` errors of a request (see the README's definition).
    pub fn request_errors(&self, api_key: i16, version: i16, n: u64) {
        if n > 0
            && let Some(c) = self.request_errors.get(slot(api_key, version))
        {
            c.fetch_add(n, Ordering::Relaxed);
        }
    }

    /// Records how long a request took, from receipt to its response written.
    pub fn request_duration(&self, api_key: i16, d: Duration) {
        if let Some(h) = self.durations.get(api_slot(api_key)) {
            h.observe(d);
        }
    }

    /// Counts a connection as open until the guard is dropped.
    pub fn connection_opened(self: &Arc<Self>) -> ConnectionGuard {
        self.active_connections.fetch_add(1, Ordering::Relaxed);
        ConnectionGuard(self.clone())
    }

    /// The traffic counters of `topic` (created on first use). Partitions
    /// look this up once, when they are opened.
    pub fn topic(&self, topic: &str) -> Arc<TopicTraffic> {
        if let Some(t) = self.topics.read().get(topic) {
            return t.clone();
        }
        self.topics
            .write()
            .entry(topic.to_string())
            .or_default()
            .clone()
    }

    /// Counts an ISR change a leadership of this node committed.
    pub fn isr_changed(&self, shrank: bool) {
        let counter = if shrank {
            &self.isr_shrinks
        } else {
            &self.isr_expands
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// The counters of every topic now, by name.
    pub fn topic_totals(&self) -> HashMap<String, TrafficTotals> {
        self.topics
            .read()
            .iter()
            .map(|(name, t)| (name.clone(), t.totals()))
            .collect()
    }

    /// Kafka client connections open now.
    pub fn connections(&self) -> i64 {
        self.active_connections.load(Ordering::Relaxed).max(0)
    }

    /// Every counter the console charts, now.
    pub fn snapshot(&self) -> MetricsSnapshot {
        let mut traffic = TrafficTotals::default();
        for t in self.topics.read().values() {
            traffic.add(t.totals());
        }
        let mut request_latency = HistogramSnapshot::default();
        for (slot, h) in self.durations.iter().enumerate() {
            let waits = WAITING_APIS
                .iter()
                .any(|k| usize::try_from(*k as i16).ok() == Some(slot));
            if !waits {
                request_latency.add(&h.snapshot());
            }
        }
        MetricsSnapshot {
            traffic,
            requests: self
                .requests
                .iter()
                .map(|c| c.load(Ordering::Relaxed))
                .sum(),
            request_latency,
            fsync: self.fsync.snapshot(),
            connections: self.connections(),
        }
    }

    /// Forgets the counters of a deleted topic.
    pub fn remove_topic(&self, topic: &str) {
        self.topics.write().remove(topic);
    }

    /// Writes the broker's counters and histograms in the text format; `now_ms` dates the
    /// cleaner's "seconds since" gauges.
    pub fn write_counters(&self, out: &mut String, now_ms: i64) {
        header(
            out,
            "sluice_requests_total",
            "counter",
            "Requests received, by API and version.",
        );
        write_per_api_version(out, "sluice_requests_total", &self.requests);
        header(
            out,
            "sluice_request_errors_total",
            "counter",
            "Requests closed as undecodable or unsupported, plus Produce and Fetch partitions answered with a non-zero error code.",
        );
        write_per_api_version(out, "sluice_request_errors_total", &self.request_errors);

        header(
            out,
            "sluice_request_duration_seconds",
            "histogram",
            "Time from receiving a request to writing its response, by API.",
        );
        for (i, h) in self.durations.iter().enumerate() {
            if h.count() == 0 {
                continue;
            }
            let api = api_name_of_slot(i);
            h.write(
                out,
                "sluice_request_duration_seconds",
                &format!("api=\"{api}\""),
            );
        }

        let topics: Vec<(String, Arc<TopicTraffic>)> = {
            let map = self.topics.read();
            let mut v: Vec<_> = map.iter().map(|(k, t)| (k.clone(), t.clone())).collect();
            v.sort_by(|a, b| a.0.cmp(&b.0));
            v
        };
        let per_topic: [(&str, &str, TrafficField); 4] = [
            (
                "sluice_bytes_in_total",
                "Bytes of record batches appended by Produce, by topic.",
                |t| &t.bytes_in,
            ),
            (
                "sluice_records_in_total",
                "Records appended by Produce (batch header record counts), by topic.",
                |t| &t.records_in,
            ),
            (
                "sluice_bytes_out_total",
                "Bytes of record batches returned by Fetch, by topic.",
                |t| &t.bytes_out,
            ),
            (
                "sluice_records_out_total",
                "Records returned by Fetch (batch header record counts), by topic.",
                |t| &t.records_out,
            ),
        ];
        for (name, help, field) in per_topic {
            header(out, name, "counter", help);
            for (topic, t) in &topics {
                let _ = writeln!(
                    out,
                    "{name}{{topic=\"{}\"}} {}",
                    escape_label(topic),
                    field(t).load(Ordering::Relaxed)
                );
            }
        }

        header(
            out,
            "sluice_active_connections",
            "gauge",
            "Open Kafka client connections.",
        );
        let _ = writeln!(
            out,
            "sluice_active_connections {}",
            self.active_connections.load(Ordering::Relaxed).max(0)
        );
        header(
            out,
            "sluice_fsync_duration_seconds",
            "histogram",
            "Duration of partition log syncs (fdatasync).",
        );
        self.fsync.write(out, "sluice_fsync_duration_seconds", "");
        for (name, help, counter) in [
            (
                "sluice_isr_shrinks_total",
                "ISR changes that dropped replicas, committed by partitions this node leads.",
                &self.isr_shrinks,
            ),
            (
                "sluice_isr_expands_total",
                "ISR changes that took replicas back, committed by partitions this node leads.",
                &self.isr_expands,
            ),
        ] {
            header(out, name, "counter", help);
            let _ = writeln!(out, "{name} {}", counter.load(Ordering::Relaxed));
        }
        self.cleaner.write(out, now_ms);
    }
}

fn api_name_of_slot(slot: usize) -> String {
    i16::try_from(slot)
        .ok()
        .filter(|_| slot < API_SLOTS)
        .and_then(|k| ApiKey::try_from(k).ok())
        .map_or_else(|| "unknown".to_string(), |k| format!("{k:?}"))
}

fn write_per_api_version(out: &mut String, name: &str, slots: &[AtomicU64]) {
    for (i, c) in slots.iter().enumerate() {
        let n = c.load(Ordering::Relaxed);
        if n == 0 {
            continue;
        }
        if i == UNKNOWN_SLOT {
            let _ = writeln!(out, "{name}{{api=\"unknown\",version=\"unknown\"}} {n}");
        } else {
            let api = api_name_of_slot(i / VERSION_SLOTS);
            let version = i % VERSION_SLOTS;
            let _ = writeln!(out, "{name}{{api=\"{api}\",version=\"{version}\"}} {n}");
        }
    }
}

/// Writes the `# HELP` and `# TYPE` lines of a metric family.
pub fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {}", escape_help(help));
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn escape_help(s: &str) -> String {
    s.replace('\\', "\\\\").replace('\n', "\\n")
}

/// Escapes a label value for the text format.
pub fn escape_label(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// CPU seconds (user + system) and resident memory of this process, from
/// `/proc/self/stat` and `/proc/self/status`; `None` where /proc is missing.
pub fn process_stats() -> (Option<f64>, Option<u64>) {
    let cpu = std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| cpu_seconds_from_stat(&s, clock_ticks()));
    let rss = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| resident_bytes_from_status(&s));
    (cpu, rss)
}

fn clock_ticks() -> u64 {
    rustix::param::clock_ticks_per_second()
}

/// utime + stime (fields 14 and 15) in seconds. The command name (field 2)
/// may contain spaces and parentheses, so fields are counted after the last ')'.
fn cpu_seconds_from_stat(stat: &str, ticks_per_second: u64) -> Option<f64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    // `rest` starts at field 3 (state); utime is field 14.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    if ticks_per_second == 0 {
        return None;
    }
    Some((utime + stime) as f64 / ticks_per_second as f64)
}

/// `VmRSS:  1234 kB` in bytes.
fn resident_bytes_from_status(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let mut parts = line.split_whitespace().skip(1);
    let kb: u64 = parts.next()?.parse().ok()?;
    Some(kb * 1024)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// The console's charts: a window's p99 is the bucket bound holding it, Fetch's long
    /// polls are left out of request latency, traffic sums over topics.
    #[test]
    fn snapshots_give_windowed_quantiles_and_totals() {
        let m = Metrics::default();
        let before = m.snapshot();
        for _ in 0..98 {
            m.request_duration(ApiKey::Produce as i16, Duration::from_micros(300));
        }
        m.request_duration(ApiKey::Metadata as i16, Duration::from_millis(20));
        m.request_duration(ApiKey::Metadata as i16, Duration::from_millis(20));
        m.request_duration(ApiKey::Fetch as i16, Duration::from_millis(500));
        m.topic("a").produced(100, 3);
        m.topic("b").produced(50, 1);
        m.topic("b").fetched(10, 1);
        let window = m.snapshot().request_latency.since(&before.request_latency);
        assert_eq!(window.count(), 100);
        assert_eq!(window.quantile(0.5), Some(0.0005));
        assert_eq!(window.quantile(0.99), Some(0.025));
        assert_eq!(HistogramSnapshot::default().quantile(0.99), None);
        assert_eq!(
            m.snapshot().traffic,
            TrafficTotals {
                bytes_in: 150,
                records_in: 4,
                bytes_out: 10,
                records_out: 1
            }
        );
        m.fsync.observe(Duration::from_secs(9));
        assert_eq!(m.snapshot().fsync.quantile(0.99), Some(2.5));
    }

    #[test]
    fn stat_parsing_skips_the_command_name() {
        let stat =
            "42 (my (odd) proc) S 1 42 42 0 -1 4194560 100 0 0 0 250 150 0 0 20 0 3 0 100 1000 200";
        assert_eq!(cpu_seconds_from_stat(stat, 100), Some(4.0));
        let status = "Name:\tsluice\nVmRSS:\t    2048 kB\nThreads:\t3\n";
        assert_eq!(resident_bytes_from_status(status), Some(2 * 1024 * 1024));
    }

    #[test]
    fn counters_render_per_api_and_version() {
        let m = Arc::new(Metrics::default());
        m.request(ApiKey::Produce as i16, 9);
        m.request(ApiKey::Produce as i16, 9);
        m.request(ApiKey::Fetch as i16, 12);
        m.request(-3, 1);
        m.request_errors(ApiKey::Fetch as i16, 12, 2);
        m.request_duration(ApiKey::Produce as i16, Duration::from_millis(3));
        m.topic("a\"b").produced(100, 3);
        let _conn = m.connection_opened();
        let mut out = String::new();
        m.write_counters(&mut out, 0);
        assert!(out.contains("sluice_requests_total{api=\"Produce\",version=\"9\"} 2\n"));
        assert!(out.contains("sluice_requests_total{api=\"Fetch\",version=\"12\"} 1\n"));
        assert!(out.contains("sluice_requests_total{api=\"unknown\",version=\"unknown\"} 1\n"));
        assert!(out.contains("sluice_request_errors_total{api=\"Fetch\",version=\"12\"} 2\n"));
        assert!(
            out.contains(
                "sluice_request_duration_seconds_bucket{api=\"Produce\",le=\"0.0025\"} 0\n"
            )
        );
        assert!(
            out.contains(
                "sluice_request_duration_seconds_bucket{api=\"Produce\",le=\"0.005\"} 1\n"
            )
        );
        assert!(out.contains("sluice_request_duration_seconds_count{api=\"Produce\"} 1\n"));
        assert!(out.contains("sluice_bytes_in_total{topic=\"a\\\"b\"} 100\n"));
        assert!(out.contains("sluice_records_in_total{topic=\"a\\\"b\"} 3\n"));
        assert!(out.contains("sluice_active_connections 1\n"));
        assert!(out.contains("sluice_fsync_duration_seconds_bucket{le=\"+Inf\"} 0\n"));
        assert!(out.contains("sluice_log_cleaner_runs_total 0\n"));
        assert!(!out.contains("sluice_log_cleaner_seconds_since_last_run"));
    }

    #[test]
    fn cleaner_metrics_add_up_its_cleanings() {
        let m = CleanerMetrics::default();
        let stats = sluice_storage::CleanStats {
            bytes_read: 1000,
            bytes_written: 300,
            records_read: 50,
            records_retained: 8,
            ..Default::default()
        };
        m.cleaned(&stats);
        m.cleaned(&stats);
        m.looked(10_000, 0.75);
        m.set_uncleanable_partitions(1);
        let mut out = String::new();
        m.write(&mut out, 12_500);
        for line in [
            "sluice_log_cleaner_runs_total 2\n",
            "sluice_log_cleaner_read_bytes_total 2000\n",
            "sluice_log_cleaner_written_bytes_total 600\n",
            "sluice_log_cleaner_removed_records_total 84\n",
            "sluice_log_cleaner_max_dirty_ratio 0.75\n",
            "sluice_log_cleaner_uncleanable_partitions 1\n",
            "sluice_log_cleaner_seconds_since_last_run 2.5\n",
        ] {
            assert!(out.contains(line), "{line} in {out}");
        }
    }
}

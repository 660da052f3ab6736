//! What a run reports: the figures as serialisable structs (`--json`, one object per run),
//! the human table, and the once-a-second progress line on stderr.
//!
//! Every figure in the table is also in the JSON, under a name with its unit, so scripts
//! (docs/PERFORMANCE.md's medians) never parse the table.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::broker_proc::BrokerUsage;
use crate::stats::{LatencySummary, MB, Throughput};

/// How the run was configured, common to the three modes.
#[derive(Debug, Clone, Serialize)]
pub struct RunInfo {
    pub brokers: String,
    pub topic: String,
    pub partitions: usize,
}

/// Producer settings as reported.
#[derive(Debug, Clone, Serialize)]
pub struct ProducerInfo {
    pub record_size: u32,
    pub acks: &'static str,
    pub compression: &'static str,
    pub linger_ms: f64,
    /// `None`: librdkafka's default.
    pub batch_size: Option<u32>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ProduceReport {
    #[serde(flatten)]
    pub run: RunInfo,
    #[serde(flatten)]
    pub producer: ProducerInfo,
    pub producers: u32,
    pub keys: &'static str,
    pub key_space: Option<u64>,
    /// Records delivered (acknowledged) and their bytes, over the time from the first send to
    /// the last delivery report.
    #[serde(flatten)]
    pub throughput: Throughput,
    pub errors: u64,
    pub first_error: Option<String>,
    /// Send (enqueue in librdkafka) to delivery report.
    pub latency_ms: LatencySummary,
    pub client_cpu_s: f64,
    pub broker: Option<BrokerUsage>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ConsumeReport {
    #[serde(flatten)]
    pub run: RunInfo,
    pub group: Option<String>,
    pub consumers: u32,
    pub from: &'static str,
    /// Records consumed, over the time from the partition assignment to the last record.
    #[serde(flatten)]
    pub throughput: Throughput,
    /// Assignment to first record (fetch round trip plus, in a group, nothing else: the join
    /// happens before the assignment).
    pub first_record_ms: Option<f64>,
    pub errors: u64,
    pub first_error: Option<String>,
    pub client_cpu_s: f64,
    pub broker: Option<BrokerUsage>,
}

#[derive(Debug, Clone, Serialize)]
pub struct E2eReport {
    #[serde(flatten)]
    pub run: RunInfo,
    #[serde(flatten)]
    pub producer: ProducerInfo,
    pub target_rate: u64,
    /// Records handed to the producer per second of the sending phase.
    pub achieved_rate: f64,
    pub sent: u64,
    pub delivered: u64,
    /// Records of this run read back by the in-process consumer.
    pub received: u64,
    /// Delivered but not read back before the drain timeout.
    pub missing: u64,
    /// Records in the topic from other writers (skipped).
    pub foreign: u64,
    /// Records received and their bytes, first send to last receipt.
    #[serde(flatten)]
    pub throughput: Throughput,
    /// Send to delivery report.
    pub produce_latency_ms: LatencySummary,
    /// Send to receipt by the consumer.
    pub e2e_latency_ms: LatencySummary,
    pub errors: u64,
    pub first_error: Option<String>,
    pub client_cpu_s: f64,
    pub broker: Option<BrokerUsage>,
}

/// The result of one run.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "mode", rename_all = "snake_case")]
pub enum Report {
    Produce(ProduceReport),
    Consume(ConsumeReport),
    E2e(E2eReport),
    Failover(crate::failover::FailoverReport),
}

impl Report {
    /// One JSON object on one line (appendable to a JSON-lines file).
    pub fn to_json(&self) -> anyhow::Result<String> {
        Ok(serde_json::to_string(self)?)
    }

    /// The human-readable table.
    pub fn to_table(&self) -> String {
        let mut t = Table::default();
        match self {
            Report::Produce(r) => {
                t.title("produce", &r.run);
                t.row(
                    "settings",
                    format!(
                        "{}, {} producer{}, keys {}{}",
                        producer_settings(&r.producer),
                        r.producers,
                        plural(u64::from(r.producers)),
                        r.keys,
                        r.key_space
                            .map(|k| format!(" (space {})", int(k)))
                            .unwrap_or_default()
                    ),
                );
                t.records(&r.throughput, r.errors, r.first_error.as_deref());
                t.throughput(&r.throughput);
                t.latency("latency", &r.latency_ms, "send → delivery report");
                t.usage(r.broker.as_ref(), r.client_cpu_s);
            }
            Report::Consume(r) => {
                t.title("consume", &r.run);
                t.row(
                    "settings",
                    format!(
                        "from {}, {}, {} consumer{}",
                        r.from,
                        r.group
                            .as_ref()
                            .map(|g| format!("group {g}"))
                            .unwrap_or_else(|| "assigned partitions".into()),
                        r.consumers,
                        plural(u64::from(r.consumers))
                    ),
                );
                t.records(&r.throughput, r.errors, r.first_error.as_deref());
                t.throughput(&r.throughput);
                if let Some(ms) = r.first_record_ms {
                    t.row("first record", format!("{} after assignment", millis(ms)));
                }
                t.usage(r.broker.as_ref(), r.client_cpu_s);
            }
            Report::E2e(r) => {
                t.title("e2e", &r.run);
                t.row("settings", producer_settings(&r.producer));
                t.row(
                    "rate",
                    format!(
                        "target {} records/s, achieved {} records/s",
                        int(r.target_rate),
                        rate(r.achieved_rate)
                    ),
                );
                t.row(
                    "records",
                    format!(
                        "{} sent, {} delivered, {} received, {} missing, {} errors{}",
                        int(r.sent),
                        int(r.delivered),
                        int(r.received),
                        int(r.missing),
                        int(r.errors),
                        first_error_suffix(r.first_error.as_deref())
                    ),
                );
                t.throughput(&r.throughput);
                t.latency("end-to-end", &r.e2e_latency_ms, "send → consumer");
                t.latency("produce", &r.produce_latency_ms, "send → delivery report");
                t.usage(r.broker.as_ref(), r.client_cpu_s);
            }
            Report::Failover(r) => {
                t.title("failover", &r.run);
                t.row(
                    "settings",
                    format!(
                        "{} nodes, replication factor {}, acks=all ({}), {} trial{} of {}",
                        r.nodes,
                        r.nodes,
                        r.client,
                        r.trials,
                        plural(u64::from(r.trials)),
                        r.scenario.to_possible_value_name()
                    ),
                );
                for m in &r.measures {
                    t.row(
                        &m.name.replace('_', " "),
                        format!(
                            "median {}, p99 {}, max {} ({})",
                            millis(m.spread.median_ms),
                            millis(m.spread.p99_ms),
                            millis(m.spread.max_ms),
                            m.what
                        ),
                    );
                }
                if r.scenario == crate::cli::Scenario::RollingRestart {
                    t.row(
                        "client errors",
                        format!(
                            "{}{}",
                            int(r.client_errors),
                            first_error_suffix(r.first_error.as_deref())
                        ),
                    );
                }
            }
        }
        t.0
    }
}

/// Label/value lines with the values aligned.
#[derive(Default)]
struct Table(String);

const LABEL_WIDTH: usize = 14;

impl Table {
    fn title(&mut self, mode: &str, run: &RunInfo) {
        let _ = writeln!(
            self.0,
            "sluice-bench {mode}: topic {} ({} partition{}) at {}",
            run.topic,
            run.partitions,
            plural(run.partitions as u64),
            run.brokers
        );
    }

    fn row(&mut self, label: &str, value: impl AsRef<str>) {
        let _ = writeln!(self.0, "  {label:<LABEL_WIDTH$}{}", value.as_ref());
    }

    fn records(&mut self, t: &Throughput, errors: u64, first_error: Option<&str>) {
        self.row(
            "records",
            format!(
                "{} ({}) in {:.3} s, {} error{}{}",
                int(t.records),
                bytes(t.bytes),
                t.elapsed_s,
                int(errors),
                plural(errors),
                first_error_suffix(first_error)
            ),
        );
    }

    fn throughput(&mut self, t: &Throughput) {
        self.row(
            "throughput",
            format!(
                "{} records/s, {:.2} MB/s ({:.2} MiB/s)",
                rate(t.records_per_sec),
                t.mb_per_sec,
                t.mib_per_sec
            ),
        );
    }

    fn latency(&mut self, label: &str, l: &LatencySummary, what: &str) {
        if l.count == 0 {
            self.row(label, format!("n/a (nothing measured; {what})"));
            return;
        }
        self.row(
            label,
            format!(
                "p50 {}, p99 {}, p99.9 {}, max {} (mean {}; {what})",
                millis(l.p50_ms),
                millis(l.p99_ms),
                millis(l.p999_ms),
                millis(l.max_ms),
                millis(l.mean_ms)
            ),
        );
    }

    fn usage(&mut self, broker: Option<&BrokerUsage>, client_cpu_s: f64) {
        if let Some(b) = broker {
            self.row(
                "broker",
                format!(
                    "pid {}: {:.2} CPU-s ({:.2} cores){}, peak RSS {:.1} MB (VmHWM {:.1} MB)",
                    b.pids
                        .iter()
                        .map(u32::to_string)
                        .collect::<Vec<_>>()
                        .join("+"),
                    b.cpu_s,
                    b.cores,
                    b.cpu_s_per_gb
                        .map(|c| format!(", {c:.2} CPU-s/GB"))
                        .unwrap_or_default(),
                    b.peak_rss_mb,
                    b.vm_hwm_mb
                ),
            );
        }
        self.row("client", format!("{client_cpu_s:.2} CPU-s"));
    }
}

fn producer_settings(p: &ProducerInfo) -> String {
    format!(
        "record size {} B, acks={}, compression {}, linger.ms {}, batch.size {}",
        int(u64::from(p.record_size)),
        p.acks,
        p.compression,
        p.linger_ms,
        p.batch_size
            .map(|b| int(u64::from(b)))
            .unwrap_or_else(|| "default".into())
    )
}

fn first_error_suffix(first_error: Option<&str>) -> String {
    first_error
        .map(|e| format!(" (first: {e})"))
        .unwrap_or_default()
}

fn plural(n: u64) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// An integer with thousands separators: 1234567 → "1,234,567".
pub fn int(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A rate rounded to a whole number, with separators.
pub fn rate(per_sec: f64) -> String {
    int(per_sec.round().max(0.0) as u64)
}

/// A byte count in MB (10^6).
fn bytes(n: u64) -> String {
    format!("{:.1} MB", n as f64 / MB)
}

/// Milliseconds with three significant digits down to 0.1 ms, then to 0.1 µs (0.0123 ms,
/// 1.23 ms, 123 ms).
pub fn millis(ms: f64) -> String {
    let decimals = if ms < 0.1 {
        4
    } else if ms < 1.0 {
        3
    } else if ms < 10.0 {
        2
    } else if ms < 100.0 {
        1
    } else {
        0
    };
    format!("{ms:.decimals$} ms")
}

/// The progress line on stderr, at most once a second, for runs that last long enough to
/// leave the user wondering.
pub struct Progress {
    label: &'static str,
    enabled: bool,
    start: Instant,
    last_at: Instant,
    last_records: u64,
    last_bytes: u64,
}

const PROGRESS_INTERVAL: Duration = Duration::from_secs(1);

impl Progress {
    pub fn new(label: &'static str, enabled: bool) -> Progress {
        let now = Instant::now();
        Progress {
            label,
            enabled,
            start: now,
            last_at: now,
            last_records: 0,
            last_bytes: 0,
        }
    }

    /// Prints a line when a second has passed since the last one; `records` and `bytes` are
    /// running totals, `extra` is appended.
    pub fn tick(&mut self, records: u64, bytes: u64, extra: &str) {
        if !self.enabled {
            return;
        }
        let now = Instant::now();
        let dt = now.duration_since(self.last_at);
        if dt < PROGRESS_INTERVAL {
            return;
        }
        eprintln!(
            "{}",
            progress_line(
                self.label,
                now.duration_since(self.start),
                records,
                records.saturating_sub(self.last_records),
                bytes.saturating_sub(self.last_bytes),
                dt,
                extra
            )
        );
        self.last_at = now;
        self.last_records = records;
        self.last_bytes = bytes;
    }
}

fn progress_line(
    label: &str,
    elapsed: Duration,
    total_records: u64,
    interval_records: u64,
    interval_bytes: u64,
    interval: Duration,
    extra: &str,
) -> String {
    let secs = interval.as_secs_f64().max(1e-9);
    format!(
        "[{label}] {:6.1} s  {:>13} records  {:>11} records/s  {:8.2} MB/s{}{extra}",
        elapsed.as_secs_f64(),
        int(total_records),
        rate(interval_records as f64 / secs),
        interval_bytes as f64 / secs / MB,
        if extra.is_empty() { "" } else { "  " }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_separators() {
        assert_eq!(int(0), "0");
        assert_eq!(int(999), "999");
        assert_eq!(int(1_000), "1,000");
        assert_eq!(int(1_234_567), "1,234,567");
        assert_eq!(int(u64::MAX), "18,446,744,073,709,551,615");
        assert_eq!(rate(62_229.6), "62,230");
        assert_eq!(rate(-1.0), "0");
    }

    #[test]
    fn milliseconds_keep_three_significant_digits() {
        assert_eq!(millis(0.004_56), "0.0046 ms");
        assert_eq!(millis(0.0456), "0.0456 ms");
        assert_eq!(millis(0.456), "0.456 ms");
        assert_eq!(millis(4.567), "4.57 ms");
        assert_eq!(millis(45.67), "45.7 ms");
        assert_eq!(millis(456.7), "457 ms");
    }

    fn sample_produce() -> Report {
        Report::Produce(ProduceReport {
            run: RunInfo {
                brokers: "127.0.0.1:9092".into(),
                topic: "t".into(),
                partitions: 8,
            },
            producer: ProducerInfo {
                record_size: 1024,
                acks: "1",
                compression: "none",
                linger_ms: 5.0,
                batch_size: None,
            },
            producers: 1,
            keys: "none",
            key_space: None,
            throughput: Throughput::new(200_000, 204_800_000, Duration::from_secs(2)),
            errors: 0,
            first_error: None,
            latency_ms: LatencySummary {
                count: 200_000,
                min_ms: 0.2,
                mean_ms: 1.5,
                p50_ms: 1.25,
                p95_ms: 3.0,
                p99_ms: 4.5,
                p999_ms: 7.0,
                max_ms: 12.0,
            },
            client_cpu_s: 1.5,
            broker: Some(BrokerUsage {
                pids: vec![42],
                cpu_s: 1.0,
                cpu_s_per_gb: Some(1.0 / 0.2048),
                cores: 0.5,
                peak_rss_bytes: 45_000_000,
                peak_rss_mb: 45.0,
                vm_hwm_bytes: 47_000_000,
                vm_hwm_mb: 47.0,
                rss_start_bytes: 20_000_000,
                rss_end_bytes: 40_000_000,
                samples: 21,
            }),
        })
    }

    #[test]
    fn json_is_one_flat_object_with_units_in_the_names() {
        let json = sample_produce().to_json().unwrap();
        assert!(!json.contains('\n'));
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["mode"], "produce");
        assert_eq!(v["records"], 200_000);
        assert_eq!(v["bytes"], 204_800_000);
        assert_eq!(v["records_per_sec"], 100_000.0);
        assert_eq!(v["mb_per_sec"], 102.4);
        assert_eq!(v["record_size"], 1024);
        assert_eq!(v["acks"], "1");
        assert_eq!(v["latency_ms"]["p999_ms"], 7.0);
        assert_eq!(v["broker"]["peak_rss_bytes"], 45_000_000);
        assert_eq!(v["broker"]["cpu_s"], 1.0);
        assert!(v["batch_size"].is_null());
    }

    #[test]
    fn table_shows_the_headline_figures() {
        let table = sample_produce().to_table();
        assert!(
            table.starts_with("sluice-bench produce: topic t (8 partitions) at 127.0.0.1:9092\n")
        );
        assert!(
            table.contains("200,000 (204.8 MB) in 2.000 s, 0 errors"),
            "{table}"
        );
        assert!(
            table.contains("100,000 records/s, 102.40 MB/s (97.66 MiB/s)"),
            "{table}"
        );
        assert!(
            table.contains("p50 1.25 ms, p99 4.50 ms, p99.9 7.00 ms, max 12.0 ms"),
            "{table}"
        );
        assert!(
            table.contains("pid 42: 1.00 CPU-s (0.50 cores), 4.88 CPU-s/GB, peak RSS 45.0 MB"),
            "{table}"
        );
    }

    #[test]
    fn progress_line_reports_the_interval_rate() {
        let line = progress_line(
            "produce",
            Duration::from_secs(3),
            3_000_000,
            1_000_000,
            1_024_000_000,
            Duration::from_secs(1),
            "in flight 5",
        );
        assert!(line.starts_with("[produce]    3.0 s"), "{line}");
        assert!(line.contains("3,000,000 records"), "{line}");
        assert!(line.contains("1,000,000 records/s"), "{line}");
        assert!(line.contains("1024.00 MB/s"), "{line}");
        assert!(line.ends_with("  in flight 5"), "{line}");
    }
}

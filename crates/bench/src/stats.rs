//! Latency histograms and throughput figures.
//!
//! Latencies go into an HDR histogram (3 significant digits, 1 ns to 1 hour) rather than a
//! sample list: recording is O(1) with no allocation on the delivery-report path, memory is
//! fixed (~200 KiB) however long the run, and per-thread histograms merge exactly. Percentiles
//! are the histogram's "highest equivalent value", i.e. accurate to 0.1 %.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::Serialize;

/// One megabyte as throughput is reported (10^6 bytes, like rdkafka_performance and disk
/// vendors); MiB/s is reported beside it because kafka-producer-perf-test's "MB" is 2^20.
pub const MB: f64 = 1_000_000.0;
/// One mebibyte (2^20 bytes).
pub const MIB: f64 = 1_048_576.0;

/// Highest latency the histograms track; longer ones are recorded as this (saturated).
const MAX_TRACKABLE_NANOS: u64 = 3_600 * 1_000_000_000;
const SIGNIFICANT_DIGITS: u8 = 3;

static EPOCH: OnceLock<Instant> = OnceLock::new();

/// Nanoseconds on a monotonic clock shared by every thread of this process.
///
/// Used for latency stamps that travel through librdkafka (delivery opaques) or inside
/// payloads (e2e): both ends are in this process, so one `Instant` origin makes the numbers
/// comparable without trusting the wall clock.
pub fn now_nanos() -> u64 {
    let epoch = *EPOCH.get_or_init(Instant::now);
    u64::try_from(epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// A latency histogram in nanoseconds.
#[derive(Debug, Clone)]
pub struct LatencyHistogram {
    hist: Histogram<u64>,
}

impl LatencyHistogram {
    pub fn new() -> anyhow::Result<Self> {
        let hist = Histogram::new_with_bounds(1, MAX_TRACKABLE_NANOS, SIGNIFICANT_DIGITS)
            .map_err(|e| anyhow::anyhow!("cannot create latency histogram: {e:?}"))?;
        Ok(LatencyHistogram { hist })
    }

    /// Records one latency; values beyond an hour are clamped rather than lost.
    pub fn record_nanos(&mut self, nanos: u64) {
        self.hist.saturating_record(nanos);
    }

    /// Adds every value of `other` (per-thread histograms into one).
    pub fn merge(&mut self, other: &LatencyHistogram) -> anyhow::Result<()> {
        self.hist
            .add(&other.hist)
            .map_err(|e| anyhow::anyhow!("cannot merge latency histograms: {e:?}"))
    }

    /// The percentiles reported, in milliseconds.
    pub fn summary(&self) -> LatencySummary {
        let h = &self.hist;
        if h.is_empty() {
            return LatencySummary::default();
        }
        let q = |q: f64| nanos_to_ms(h.value_at_quantile(q));
        LatencySummary {
            count: h.len(),
            min_ms: nanos_to_ms(h.min()),
            mean_ms: h.mean() / 1e6,
            p50_ms: q(0.50),
            p95_ms: q(0.95),
            p99_ms: q(0.99),
            p999_ms: q(0.999),
            max_ms: nanos_to_ms(h.max()),
        }
    }
}

fn nanos_to_ms(nanos: u64) -> f64 {
    // Exact for every latency below 2^53 ns (104 days).
    nanos as f64 / 1e6
}

/// Latency percentiles in milliseconds; all zero when nothing was recorded (`count` 0).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct LatencySummary {
    pub count: u64,
    pub min_ms: f64,
    pub mean_ms: f64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    /// The 99.9th percentile.
    pub p999_ms: f64,
    pub max_ms: f64,
}

/// Records and bytes moved over a time, with the derived rates.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Throughput {
    pub records: u64,
    /// Key plus value bytes (what the user sent), not wire bytes.
    pub bytes: u64,
    pub elapsed_s: f64,
    pub records_per_sec: f64,
    /// 10^6 bytes per second.
    pub mb_per_sec: f64,
    /// 2^20 bytes per second.
    pub mib_per_sec: f64,
}

impl Throughput {
    /// Rates are 0 when no time has passed, instead of infinite.
    pub fn new(records: u64, bytes: u64, elapsed: Duration) -> Throughput {
        let secs = elapsed.as_secs_f64();
        let per_sec = |n: f64| if secs > 0.0 { n / secs } else { 0.0 };
        Throughput {
            records,
            bytes,
            elapsed_s: secs,
            records_per_sec: per_sec(records as f64),
            mb_per_sec: per_sec(bytes as f64) / MB,
            mib_per_sec: per_sec(bytes as f64) / MIB,
        }
    }
}

/// A small, fast, seeded pseudo-random generator (SplitMix64).
///
/// Payload bytes and random keys need only be unpredictable enough to defeat compression
/// and spread partitions; a cryptographic generator would cost time on the produce path.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    /// A seed that differs between runs and threads.
    pub fn from_clock(salt: u64) -> Self {
        let wall = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        SplitMix64::new(wall ^ now_nanos() ^ salt.wrapping_mul(0x9E37_79B9_7F4A_7C15))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A value in [0, bound) (bound > 0); the modulo bias is irrelevant for key spreading.
    pub fn below(&mut self, bound: u64) -> u64 {
        self.next_u64() % bound.max(1)
    }
}

/// A payload of random upper-case letters, as kafka-producer-perf-test sends: compressible
/// like text (about 4.7 bits of entropy per byte), so --compression has something to do but
/// cannot shrink it to nothing.
pub fn text_payload(len: usize, rng: &mut SplitMix64) -> Vec<u8> {
    (0..len).map(|_| b'A' + (rng.below(26) as u8)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, rel: f64) -> bool {
        (a - b).abs() <= b.abs() * rel
    }

    #[test]
    fn percentiles_of_a_uniform_distribution() {
        let mut h = LatencyHistogram::new().unwrap();
        // 1..=1000 ms, one each.
        for ms in 1..=1000u64 {
            h.record_nanos(ms * 1_000_000);
        }
        let s = h.summary();
        assert_eq!(s.count, 1000);
        assert!(close(s.min_ms, 1.0, 0.001), "{s:?}");
        assert!(close(s.p50_ms, 500.0, 0.001), "{s:?}");
        assert!(close(s.p95_ms, 950.0, 0.001), "{s:?}");
        assert!(close(s.p99_ms, 990.0, 0.001), "{s:?}");
        assert!(close(s.p999_ms, 999.0, 0.001), "{s:?}");
        assert!(close(s.max_ms, 1000.0, 0.001), "{s:?}");
        assert!(close(s.mean_ms, 500.5, 0.001), "{s:?}");
    }

    #[test]
    fn percentiles_are_ordered_with_a_long_tail() {
        let mut h = LatencyHistogram::new().unwrap();
        for _ in 0..9_980 {
            h.record_nanos(200_000); // 0.2 ms
        }
        for _ in 0..19 {
            h.record_nanos(5_000_000); // 5 ms
        }
        h.record_nanos(750_000_000); // one 750 ms stall
        let s = h.summary();
        assert!(close(s.p50_ms, 0.2, 0.001), "{s:?}");
        assert!(close(s.p99_ms, 0.2, 0.001), "{s:?}");
        assert!(close(s.p999_ms, 5.0, 0.001), "{s:?}");
        assert!(close(s.max_ms, 750.0, 0.001), "{s:?}");
        assert!(s.min_ms <= s.p50_ms && s.p50_ms <= s.p99_ms);
        assert!(s.p99_ms <= s.p999_ms && s.p999_ms <= s.max_ms);
    }

    #[test]
    fn empty_histogram_summarises_to_zero() {
        let h = LatencyHistogram::new().unwrap();
        assert_eq!(h.summary(), LatencySummary::default());
    }

    #[test]
    fn out_of_range_values_saturate_instead_of_vanishing() {
        let mut h = LatencyHistogram::new().unwrap();
        h.record_nanos(u64::MAX);
        h.record_nanos(0);
        assert_eq!(h.summary().count, 2);
        assert!(close(h.summary().max_ms, 3_600_000.0, 0.001));
    }

    #[test]
    fn merged_histograms_keep_every_value() {
        let mut a = LatencyHistogram::new().unwrap();
        let mut b = LatencyHistogram::new().unwrap();
        for i in 0..100 {
            a.record_nanos(1_000_000 + i);
            b.record_nanos(3_000_000 + i);
        }
        a.merge(&b).unwrap();
        let s = a.summary();
        assert_eq!(s.count, 200);
        assert!(close(s.p50_ms, 1.0, 0.002), "{s:?}");
        assert!(close(s.max_ms, 3.0, 0.002), "{s:?}");
    }

    #[test]
    fn throughput_uses_decimal_and_binary_megabytes() {
        let t = Throughput::new(2_000, 2_048_000, Duration::from_secs(2));
        assert_eq!(t.records_per_sec, 1_000.0);
        assert_eq!(t.mb_per_sec, 1.024);
        assert_eq!(t.mib_per_sec, 1_024_000.0 / 1_048_576.0);
        let zero = Throughput::new(5, 5, Duration::ZERO);
        assert_eq!(zero.records_per_sec, 0.0);
        assert_eq!(zero.mb_per_sec, 0.0);
    }

    #[test]
    fn payload_is_upper_case_text_and_keys_stay_in_range() {
        let mut rng = SplitMix64::new(42);
        let p = text_payload(4096, &mut rng);
        assert_eq!(p.len(), 4096);
        assert!(p.iter().all(u8::is_ascii_uppercase));
        assert!((0..10_000).all(|_| rng.below(7) < 7));
        assert_eq!(SplitMix64::new(1).next_u64(), SplitMix64::new(1).next_u64());
    }
}

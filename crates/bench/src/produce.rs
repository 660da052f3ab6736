//! `produce`: as many records as the client can push (or for a duration), measuring each
//! record from the moment librdkafka accepts it to its delivery report.
//!
//! Each `--producers` thread owns one librdkafka producer, as kafka-producer-perf-test
//! instances would. Delivery reports are served by the `ThreadedProducer`'s own polling
//! thread, so a report is timestamped when it arrives rather than when the busy send loop
//! next finds time to poll — otherwise the send loop would inflate the latency it measures.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use rdkafka::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};

use crate::broker_proc::{OwnCpu, Sampler};
use crate::cli::{KeyMode, ProduceArgs, ProducerSettings};
use crate::kafka::{CALL_TIMEOUT, ClientSettings, LibLog};
use crate::report::{ProduceReport, ProducerInfo, Progress, Report, RunInfo, int};
use crate::stats::{LatencyHistogram, SplitMix64, Throughput, now_nanos, text_payload};

/// Default record count when neither --count nor --duration is given.
const DEFAULT_COUNT: u64 = 1_000_000;
/// How long to wait for outstanding deliveries at the end (message.timeout.ms is 30 s).
const FLUSH_TIMEOUT: Duration = Duration::from_secs(60);
/// Pause when librdkafka's queue is full; short next to the time the queue takes to drain.
const QUEUE_FULL_BACKOFF: Duration = Duration::from_micros(200);

/// Counters shared by every producer of a run (and read by the progress line).
#[derive(Debug, Default)]
pub struct Counters {
    pub sent: AtomicU64,
    pub delivered: AtomicU64,
    pub delivered_bytes: AtomicU64,
    pub errors: AtomicU64,
    pub first_error: Mutex<Option<String>>,
}

impl Counters {
    pub fn error(&self, message: String) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut first) = self.first_error.lock()
            && first.is_none()
        {
            *first = Some(message);
        }
    }

    pub fn first_error(&self) -> Option<String> {
        self.first_error.lock().ok().and_then(|e| e.clone())
    }

    /// Records enqueued but not yet reported delivered or failed.
    pub fn in_flight(&self) -> u64 {
        self.sent
            .load(Ordering::Relaxed)
            .saturating_sub(self.delivered.load(Ordering::Relaxed))
            .saturating_sub(self.errors.load(Ordering::Relaxed))
    }
}

/// Delivery-report handler: counts and times every record.
///
/// The delivery opaque is the send time (`now_nanos`) as a `usize`, so timing a record
/// costs no allocation.
pub struct DeliveryTimer {
    counters: Arc<Counters>,
    latency: Mutex<LatencyHistogram>,
    lib_log: LibLog,
}

impl DeliveryTimer {
    pub fn new(counters: Arc<Counters>, lib_log: LibLog) -> anyhow::Result<DeliveryTimer> {
        Ok(DeliveryTimer {
            counters,
            lib_log,
            latency: Mutex::new(LatencyHistogram::new()?),
        })
    }

    pub fn histogram(&self) -> anyhow::Result<LatencyHistogram> {
        self.latency
            .lock()
            .map(|h| h.clone())
            .map_err(|_| anyhow::anyhow!("a delivery callback panicked"))
    }
}

impl ClientContext for DeliveryTimer {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        self.lib_log.log(level, fac, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.lib_log.error(&error, reason);
    }
}

impl ProducerContext for DeliveryTimer {
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, sent_at: usize) {
        match result {
            Ok(msg) => {
                let latency = now_nanos().saturating_sub(sent_at as u64);
                let len = msg.payload_len() + msg.key_len();
                self.counters.delivered.fetch_add(1, Ordering::Relaxed);
                self.counters
                    .delivered_bytes
                    .fetch_add(len as u64, Ordering::Relaxed);
                if let Ok(mut h) = self.latency.lock() {
                    h.record_nanos(latency);
                }
            }
            Err((err, _)) => self.counters.error(err.to_string()),
        }
    }
}

pub type TimedProducer = ThreadedProducer<DeliveryTimer>;

/// Producer configuration shared with `e2e`.
pub fn producer_config(
    client: &ClientSettings,
    settings: &ProducerSettings,
    linger_ms: f64,
) -> rdkafka::ClientConfig {
    let mut props: Vec<(&str, String)> = vec![
        ("acks", settings.acks.as_config().into()),
        ("compression.type", settings.compression.as_config().into()),
        ("linger.ms", linger_ms.to_string()),
        // Fail a record after 30 s rather than librdkafka's 5 minutes, so a dead broker ends
        // the run with errors instead of a long hang.
        ("message.timeout.ms", "30000".into()),
    ];
    if let Some(b) = settings.batch_size {
        props.push(("batch.size", b.to_string()));
    }
    client.config(&props)
}

/// Creates a producer and connects it (metadata of `topic`) so that connection setup is not
/// part of the measured time.
pub fn connected_producer(
    client: &ClientSettings,
    config: &rdkafka::ClientConfig,
    topic: &str,
    counters: &Arc<Counters>,
) -> anyhow::Result<TimedProducer> {
    let timer = DeliveryTimer::new(Arc::clone(counters), client.lib_log())?;
    let producer: TimedProducer = config
        .create_with_context(timer)
        .context("cannot create the producer (check -X properties)")?;
    producer
        .client()
        .fetch_metadata(Some(topic), CALL_TIMEOUT)
        .context("producer cannot fetch metadata")?;
    Ok(producer)
}

/// Sends one record, waiting while librdkafka's queue is full. The record is stamped when
/// it is accepted, so time spent waiting for queue space is not counted as latency (the
/// queue wait is visible as lower throughput instead).
pub fn send_timed(
    producer: &TimedProducer,
    mut record: BaseRecord<'_, [u8], [u8], usize>,
) -> anyhow::Result<()> {
    loop {
        record.delivery_opaque = usize::try_from(now_nanos()).unwrap_or(usize::MAX);
        match producer.send(record) {
            Ok(()) => return Ok(()),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                record = back;
                thread::sleep(QUEUE_FULL_BACKOFF);
            }
            Err((e, _)) => bail!("cannot produce: {e}"),
        }
    }
}

/// How much one producer thread sends.
#[derive(Debug, Clone, Copy)]
enum Quota {
    Count(u64),
    Until(Instant),
}

struct KeyGen {
    mode: KeyMode,
    space: u64,
    next: u64,
    stride: u64,
    rng: SplitMix64,
    buf: String,
}

impl KeyGen {
    /// Sequential keys interleave between producers (producer i sends i, i+P, i+2P, …) so
    /// that together they walk the key space once.
    fn new(mode: KeyMode, space: u64, producer: u64, producers: u64) -> KeyGen {
        KeyGen {
            mode,
            space: space.max(1),
            next: producer,
            stride: producers.max(1),
            rng: SplitMix64::from_clock(producer),
            buf: String::with_capacity(20),
        }
    }

    /// The next key as decimal text, or `None` for keyless records.
    fn next_key(&mut self) -> Option<&[u8]> {
        let k = match self.mode {
            KeyMode::None => return None,
            KeyMode::Random => self.rng.below(self.space),
            KeyMode::Sequential => {
                let k = self.next % self.space;
                self.next = self.next.wrapping_add(self.stride);
                k
            }
        };
        self.buf.clear();
        let _ = write!(self.buf, "{k}");
        Some(self.buf.as_bytes())
    }
}

fn producer_loop(
    producer: &TimedProducer,
    topic: &str,
    payload: &[u8],
    quota: Quota,
    mut keys: KeyGen,
    counters: &Counters,
) -> anyhow::Result<()> {
    let mut sent: u64 = 0;
    loop {
        match quota {
            Quota::Count(n) if sent >= n => break,
            // Reading the clock every 64 records keeps it off the per-record cost.
            Quota::Until(deadline) if sent.is_multiple_of(64) && Instant::now() >= deadline => {
                break;
            }
            _ => {}
        }
        let mut record = BaseRecord::with_opaque_to(topic, 0usize).payload(payload);
        if let Some(key) = keys.next_key() {
            record = record.key(key);
        }
        send_timed(producer, record)?;
        sent += 1;
        counters.sent.fetch_add(1, Ordering::Relaxed);
    }
    producer.flush(FLUSH_TIMEOUT).with_context(|| {
        format!(
            "{} records not delivered within {FLUSH_TIMEOUT:?}",
            int(counters.in_flight())
        )
    })
}

pub fn run(
    args: &ProduceArgs,
    client: &ClientSettings,
    partitions: usize,
    broker_pids: &[u32],
) -> anyhow::Result<Report> {
    let quota_total = match args.duration {
        Some(d) if !(d.is_finite() && d > 0.0) => {
            bail!("--duration must be a positive number of seconds")
        }
        Some(_) => None,
        None => Some(args.count.unwrap_or(DEFAULT_COUNT)),
    };
    let producers = u64::from(args.producers);
    let topic = args.common.topic.as_str();
    let config = producer_config(client, &args.producer, args.linger_ms);
    let counters = Arc::new(Counters::default());
    let mut rng = SplitMix64::from_clock(0);
    let payload = text_payload(args.record_size as usize, &mut rng);

    let mut clients = Vec::with_capacity(args.producers as usize);
    for _ in 0..producers {
        clients.push(connected_producer(client, &config, topic, &counters)?);
    }

    let sampler = (!broker_pids.is_empty())
        .then(|| Sampler::start(broker_pids))
        .transpose()?;
    let client_cpu = OwnCpu::start();
    let start = Instant::now();
    let deadline = args.duration.map(|d| start + Duration::from_secs_f64(d));
    let mut progress = Progress::new("produce", !args.common.quiet);

    type ThreadResult = (anyhow::Result<()>, anyhow::Result<LatencyHistogram>);
    let results: Vec<ThreadResult> = thread::scope(|s| {
        let handles: Vec<_> = clients
            .iter()
            .enumerate()
            .map(|(i, producer)| {
                let i = i as u64;
                let quota = match (quota_total, deadline) {
                    // Split the count evenly; the first `total % producers` send one more.
                    (Some(total), _) => {
                        Quota::Count(total / producers + u64::from(i < total % producers))
                    }
                    (None, Some(d)) => Quota::Until(d),
                    (None, None) => Quota::Count(0),
                };
                let keys = KeyGen::new(args.keys, args.key_space, i, producers);
                let counters = &counters;
                let payload = &payload;
                s.spawn(move || {
                    let sent = producer_loop(producer, topic, payload, quota, keys, counters);
                    // The latencies of what was delivered count even if the loop failed.
                    (sent, producer.context().histogram())
                })
            })
            .collect();
        while !handles.iter().all(|h| h.is_finished()) {
            thread::sleep(Duration::from_millis(50));
            progress.tick(
                counters.delivered.load(Ordering::Relaxed),
                counters.delivered_bytes.load(Ordering::Relaxed),
                &format!(
                    "in flight {}  errors {}",
                    int(counters.in_flight()),
                    int(counters.errors.load(Ordering::Relaxed))
                ),
            );
        }
        handles
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|_| {
                    let panicked = "a producer thread panicked";
                    (
                        Err(anyhow::anyhow!(panicked)),
                        Err(anyhow::anyhow!(panicked)),
                    )
                })
            })
            .collect()
    });
    let elapsed = start.elapsed();
    let client_cpu_s = client_cpu.seconds();

    let mut latency = LatencyHistogram::new()?;
    let mut failure = None;
    for (sent, histogram) in results {
        if let Err(e) = sent {
            counters.error(format!("{e:#}"));
            failure.get_or_insert(e);
        }
        if let Ok(h) = histogram {
            latency.merge(&h)?;
        }
    }
    let delivered = counters.delivered.load(Ordering::Relaxed);
    let bytes = counters.delivered_bytes.load(Ordering::Relaxed);
    let broker = sampler.map(|s| s.finish(bytes));
    if delivered == 0 {
        let why = counters
            .first_error()
            .unwrap_or_else(|| "no error reported".into());
        return Err(failure.unwrap_or_else(|| anyhow::anyhow!("no record was delivered: {why}")));
    }

    Ok(Report::Produce(ProduceReport {
        run: RunInfo {
            brokers: client.brokers.clone(),
            topic: topic.to_string(),
            partitions,
        },
        producer: ProducerInfo {
            record_size: args.record_size,
            acks: args.producer.acks.as_config(),
            compression: args.producer.compression.as_config(),
            linger_ms: args.linger_ms,
            batch_size: args.producer.batch_size,
        },
        producers: args.producers,
        keys: args.keys.name(),
        key_space: (args.keys != KeyMode::None).then_some(args.key_space),
        throughput: Throughput::new(delivered, bytes, elapsed),
        errors: counters.errors.load(Ordering::Relaxed),
        first_error: counters.first_error(),
        latency_ms: latency.summary(),
        client_cpu_s,
        broker,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequential_keys_interleave_between_producers_and_wrap() {
        let mut a = KeyGen::new(KeyMode::Sequential, 5, 0, 2);
        let mut b = KeyGen::new(KeyMode::Sequential, 5, 1, 2);
        let take = |g: &mut KeyGen| String::from_utf8(g.next_key().unwrap().to_vec()).unwrap();
        let a_keys: Vec<String> = (0..4).map(|_| take(&mut a)).collect();
        let b_keys: Vec<String> = (0..4).map(|_| take(&mut b)).collect();
        assert_eq!(a_keys, ["0", "2", "4", "1"]);
        assert_eq!(b_keys, ["1", "3", "0", "2"]);
    }

    #[test]
    fn random_keys_stay_in_the_key_space_and_none_means_none() {
        let mut g = KeyGen::new(KeyMode::Random, 10, 0, 1);
        for _ in 0..1000 {
            let k: u64 = std::str::from_utf8(g.next_key().unwrap())
                .unwrap()
                .parse()
                .unwrap();
            assert!(k < 10);
        }
        assert!(KeyGen::new(KeyMode::None, 10, 0, 1).next_key().is_none());
    }
}

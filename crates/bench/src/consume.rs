//! `consume`: reads a topic from the beginning (or the end) until every partition is at its
//! end, or until a count, measuring records/s and MB/s.
//!
//! The end is detected with librdkafka's `enable.partition.eof` events rather than by
//! comparing offsets with watermarks: it is how librdkafka itself knows it has caught up,
//! and it works the same with assigned partitions and in a group. The clock runs from the
//! moment partitions are assigned (for a group, after the join) to the last record, so
//! neither the group join nor the idle wait at the end dilutes the rate.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use rdkafka::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

use crate::broker_proc::{OwnCpu, Sampler};
use crate::cli::ConsumeArgs;
use crate::kafka::{CALL_TIMEOUT, ClientSettings, LibLog};
use crate::report::{ConsumeReport, Progress, Report, RunInfo, int};
use crate::stats::Throughput;

/// A consumer that has neither read a record nor reached the end of every partition for this
/// long gives up: the broker is not serving fetches.
const STALL_TIMEOUT: Duration = Duration::from_secs(60);
const POLL_TIMEOUT: Duration = Duration::from_millis(100);

/// Remembers when partitions were (first) assigned: the start of the measured time.
#[derive(Default)]
struct AssignClock {
    assigned_at: Mutex<Option<Instant>>,
    lib_log: LibLog,
}

impl AssignClock {
    fn mark(&self) {
        if let Ok(mut t) = self.assigned_at.lock() {
            t.get_or_insert_with(Instant::now);
        }
    }

    fn get(&self) -> Option<Instant> {
        self.assigned_at.lock().ok().and_then(|t| *t)
    }
}

impl ClientContext for AssignClock {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        self.lib_log.log(level, fac, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.lib_log.error(&error, reason);
    }
}

impl ConsumerContext for AssignClock {
    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(tpl) = rebalance
            && tpl.count() > 0
        {
            self.mark();
        }
    }
}

type ClockedConsumer = BaseConsumer<AssignClock>;

/// Totals shared by the consumer threads.
#[derive(Default)]
struct Shared {
    records: AtomicU64,
    bytes: AtomicU64,
    errors: AtomicU64,
    first_error: Mutex<Option<String>>,
    /// Set when --count is reached: every thread stops.
    stop: AtomicBool,
    /// Threads that have read to the end. In a group with more consumers than partitions,
    /// a consumer left without partitions stops once another one has finished.
    finished: AtomicU32,
}

impl Shared {
    fn error(&self, message: String) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut first) = self.first_error.lock()
            && first.is_none()
        {
            *first = Some(message);
        }
    }
}

/// What one consumer thread saw.
#[derive(Default)]
struct ThreadResult {
    assigned_at: Option<Instant>,
    first_record: Option<Instant>,
    last_record: Option<Instant>,
}

/// Which partitions a thread reads: fixed ones, or whatever the group gives it.
enum Source {
    Assigned(Vec<i32>),
    Group,
}

struct Plan<'a> {
    topic: &'a str,
    count: Option<u64>,
    idle: Duration,
}

fn consumer_config(client: &ClientSettings, args: &ConsumeArgs) -> rdkafka::ClientConfig {
    let from_end = args.from_end && !args.from_beginning;
    let (group, auto_commit) = match &args.group {
        Some(g) => (g.clone(), "true"),
        // librdkafka wants a group id even for assign(); nothing is committed to it.
        None => (format!("sluice-bench-{}", std::process::id()), "false"),
    };
    client.config(&[
        ("group.id", group),
        ("enable.auto.commit", auto_commit.into()),
        (
            "auto.offset.reset",
            if from_end { "latest" } else { "earliest" }.into(),
        ),
        ("enable.partition.eof", "true".into()),
        // Large fetches: the benchmark is about how fast the broker can serve bytes, not
        // about librdkafka's conservative 1 MiB-per-partition default.
        ("fetch.message.max.bytes", "8388608".into()),
        ("fetch.max.bytes", "67108864".into()),
        ("receive.message.max.bytes", "134217728".into()),
    ])
}

fn consume_loop(
    consumer: &ClockedConsumer,
    source: &Source,
    plan: &Plan<'_>,
    shared: &Shared,
) -> anyhow::Result<ThreadResult> {
    let mut at_end = EndFlags::default();
    let mut result = ThreadResult::default();
    let mut last_progress = Instant::now();
    let mut seen_total = 0;
    loop {
        if shared.stop.load(Ordering::Relaxed) {
            break;
        }
        let got_record = match consumer.poll(POLL_TIMEOUT) {
            Some(Ok(msg)) => {
                let now = Instant::now();
                result.first_record.get_or_insert(now);
                result.last_record = Some(now);
                last_progress = now;
                at_end.set(msg.partition(), false);
                let len = (msg.payload_len() + msg.key_len()) as u64;
                shared.bytes.fetch_add(len, Ordering::Relaxed);
                let n = shared.records.fetch_add(1, Ordering::Relaxed) + 1;
                if plan.count.is_some_and(|c| n >= c) {
                    shared.stop.store(true, Ordering::Relaxed);
                    break;
                }
                true
            }
            Some(Err(KafkaError::PartitionEOF(p))) => {
                at_end.set(p, true);
                false
            }
            Some(Err(KafkaError::MessageConsumptionFatal(code))) => {
                bail!("fatal consumer error: {code}")
            }
            Some(Err(e)) => {
                shared.error(e.to_string());
                false
            }
            None => false,
        };
        if got_record {
            continue;
        }
        let assigned = match source {
            Source::Assigned(p) => p.clone(),
            Source::Group => consumer
                .assignment()
                .map(|tpl| tpl.elements().iter().map(|e| e.partition()).collect())
                .unwrap_or_default(),
        };
        if assigned.is_empty() && shared.finished.load(Ordering::Relaxed) > 0 {
            break;
        }
        // Progress of any consumer of this run keeps a consumer without partitions waiting.
        let total = shared.records.load(Ordering::Relaxed);
        if total != seen_total {
            seen_total = total;
            last_progress = Instant::now();
        }
        let all_at_end = !assigned.is_empty() && assigned.iter().all(|&p| at_end.get(p));
        let quiet_since = result
            .last_record
            .or(consumer.context().get())
            .unwrap_or(last_progress);
        if all_at_end {
            last_progress = Instant::now();
            if quiet_since.elapsed() >= plan.idle {
                break;
            }
        } else if last_progress.elapsed() >= STALL_TIMEOUT {
            bail!(
                "no record and no end of partition for {STALL_TIMEOUT:?} (read {} records)",
                int(shared.records.load(Ordering::Relaxed))
            );
        }
    }
    shared.finished.fetch_add(1, Ordering::Relaxed);
    result.assigned_at = consumer.context().get();
    Ok(result)
}

/// Which partitions are at their end, indexed by partition id (a hash map would cost a
/// hash per record).
#[derive(Default)]
struct EndFlags(Vec<bool>);

/// Partition ids beyond this are not tracked (and so never count as at the end); no topic
/// has that many partitions.
const MAX_TRACKED_PARTITION: usize = 1 << 20;

impl EndFlags {
    fn set(&mut self, partition: i32, at_end: bool) {
        let Ok(i) = usize::try_from(partition) else {
            return;
        };
        if i >= MAX_TRACKED_PARTITION {
            return;
        }
        if i >= self.0.len() {
            self.0.resize(i + 1, false);
        }
        if let Some(flag) = self.0.get_mut(i) {
            *flag = at_end;
        }
    }

    fn get(&self, partition: i32) -> bool {
        usize::try_from(partition)
            .ok()
            .and_then(|i| self.0.get(i).copied())
            .unwrap_or(false)
    }
}

fn create_consumer(
    client: &ClientSettings,
    config: &rdkafka::ClientConfig,
    topic: &str,
    source: &Source,
    from_end: bool,
) -> anyhow::Result<ClockedConsumer> {
    let consumer: ClockedConsumer = config
        .create_with_context(AssignClock {
            lib_log: client.lib_log(),
            ..AssignClock::default()
        })
        .context("cannot create the consumer (check -X properties)")?;
    match source {
        Source::Assigned(partitions) => {
            // Learn the leaders first: librdkafka assigned a partition whose leader it does
            // not know yet retries the offset lookup only after 500 ms.
            consumer
                .fetch_metadata(Some(topic), CALL_TIMEOUT)
                .context("consumer cannot fetch metadata")?;
            let mut tpl = TopicPartitionList::with_capacity(partitions.len());
            let offset = if from_end {
                Offset::End
            } else {
                Offset::Beginning
            };
            for p in partitions {
                tpl.add_partition_offset(topic, *p, offset)
                    .context("cannot build the partition assignment")?;
            }
            consumer
                .assign(&tpl)
                .context("cannot assign the partitions")?;
            consumer.context().mark();
        }
        Source::Group => consumer
            .subscribe(&[topic])
            .with_context(|| format!("cannot subscribe to {topic}"))?,
    }
    Ok(consumer)
}

pub fn run(
    args: &ConsumeArgs,
    client: &ClientSettings,
    partitions: &[i32],
    broker_pids: &[u32],
) -> anyhow::Result<Report> {
    let topic = args.common.topic.as_str();
    let from_end = args.from_end && !args.from_beginning;
    let config = consumer_config(client, args);
    // More consumers than partitions would leave some with nothing to read.
    let threads = if args.group.is_some() {
        args.consumers as usize
    } else {
        (args.consumers as usize).min(partitions.len()).max(1)
    };
    let sources: Vec<Source> = (0..threads)
        .map(|i| match args.group {
            Some(_) => Source::Group,
            None => Source::Assigned(
                partitions
                    .iter()
                    .copied()
                    .enumerate()
                    .filter(|(j, _)| j % threads == i)
                    .map(|(_, p)| p)
                    .collect(),
            ),
        })
        .collect();
    let plan = Plan {
        topic,
        count: args.count,
        idle: Duration::from_millis(args.idle_ms),
    };
    let shared = Shared::default();

    let sampler = (!broker_pids.is_empty())
        .then(|| Sampler::start(broker_pids))
        .transpose()?;
    let client_cpu = OwnCpu::start();
    let mut consumers = Vec::with_capacity(threads);
    for source in &sources {
        consumers.push(create_consumer(
            client, &config, plan.topic, source, from_end,
        )?);
    }
    let mut progress = Progress::new("consume", !args.common.quiet);

    let results: Vec<anyhow::Result<ThreadResult>> = thread::scope(|s| {
        let handles: Vec<_> = consumers
            .iter()
            .zip(&sources)
            .map(|(c, source)| {
                let (plan, shared) = (&plan, &shared);
                s.spawn(move || consume_loop(c, source, plan, shared))
            })
            .collect();
        while !handles.iter().all(|h| h.is_finished()) {
            thread::sleep(Duration::from_millis(50));
            progress.tick(
                shared.records.load(Ordering::Relaxed),
                shared.bytes.load(Ordering::Relaxed),
                "",
            );
        }
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("a consumer thread panicked")))
            })
            .collect()
    });
    let client_cpu_s = client_cpu.seconds();
    let records = shared.records.load(Ordering::Relaxed);
    let bytes = shared.bytes.load(Ordering::Relaxed);
    let broker = sampler.map(|s| s.finish(bytes));

    let mut start: Option<Instant> = None;
    let mut first: Option<Instant> = None;
    let mut last: Option<Instant> = None;
    for r in results {
        let r = r?;
        start = min_instant(start, r.assigned_at);
        first = min_instant(first, r.first_record);
        last = last.max(r.last_record);
    }
    let elapsed = match (start, last) {
        (Some(s), Some(l)) => l.saturating_duration_since(s),
        _ => Duration::ZERO,
    };
    let first_record_ms = match (start, first) {
        (Some(s), Some(f)) => Some(f.saturating_duration_since(s).as_secs_f64() * 1e3),
        _ => None,
    };
    drop(consumers);

    Ok(Report::Consume(ConsumeReport {
        run: RunInfo {
            brokers: client.brokers.clone(),
            topic: topic.to_string(),
            partitions: partitions.len(),
        },
        group: args.group.clone(),
        consumers: u32::try_from(threads).unwrap_or(u32::MAX),
        from: if from_end { "end" } else { "beginning" },
        throughput: Throughput::new(records, bytes, elapsed),
        first_record_ms,
        errors: shared.errors.load(Ordering::Relaxed),
        first_error: shared.first_error.lock().ok().and_then(|e| e.clone()),
        client_cpu_s,
        broker,
    }))
}

fn min_instant(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn end_flags_track_partitions_and_ignore_nonsense_ids() {
        let mut f = EndFlags::default();
        assert!(!f.get(0));
        f.set(3, true);
        assert!(f.get(3) && !f.get(2) && !f.get(4));
        f.set(3, false);
        assert!(!f.get(3));
        f.set(-1, true);
        f.set(i32::MAX, true);
        assert!(!f.get(-1) && !f.get(i32::MAX));
        assert!(f.0.len() <= 4);
    }

    #[test]
    fn instants_combine_to_the_earliest() {
        let a = Instant::now();
        let b = a + Duration::from_millis(5);
        assert_eq!(min_instant(Some(b), Some(a)), Some(a));
        assert_eq!(min_instant(None, Some(b)), Some(b));
        assert_eq!(min_instant(Some(a), None), Some(a));
        assert_eq!(min_instant(None, None), None);
    }
}

//! `e2e`: a fixed produce rate, and a consumer in the same process that measures how long
//! each record took from send to receipt.
//!
//! Payload layout: bytes 0..8 are the send time (`now_nanos`, little endian), bytes 8..16 a
//! random id of this run, the rest filler. Both ends read the same in-process monotonic
//! clock, so no clock synchronisation is involved; the run id lets the consumer skip records
//! that other writers put in the same topic.
//!
//! The consumer is assigned every partition at its high watermark, read before the first
//! send, so it neither misses this run's first records nor reads older ones.
//!
//! The send time is the actual send time, so when the generator falls behind the schedule
//! (achieved rate below target) the latency does not include that lag; the achieved rate is
//! reported beside it to make such runs visible.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, Producer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

use crate::broker_proc::{OwnCpu, Sampler};
use crate::cli::E2eArgs;
use crate::kafka::{CALL_TIMEOUT, ClientSettings, PlainContext};
use crate::produce::{Counters, connected_producer, producer_config, send_timed};
use crate::report::{E2eReport, ProducerInfo, Progress, Report, RunInfo, int};
use crate::stats::{LatencyHistogram, SplitMix64, Throughput, now_nanos, text_payload};

/// After the last delivery, how long the consumer may take to read the rest.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
const FLUSH_TIMEOUT: Duration = Duration::from_secs(60);
/// The pacing loop never sleeps longer than this, so bursts stay small at high rates.
const MAX_PACING_SLEEP: Duration = Duration::from_millis(1);

/// What the consumer thread counts, readable while it runs.
#[derive(Default)]
struct Received {
    records: AtomicU64,
    bytes: AtomicU64,
    foreign: AtomicU64,
    last_at_nanos: AtomicU64,
    stop: AtomicBool,
}

/// Reads the send time of a payload of this run; `None` for anyone else's record.
fn decode_stamp(payload: &[u8], run_id: u64) -> Option<u64> {
    let sent = u64::from_le_bytes(payload.get(0..8)?.try_into().ok()?);
    let id = u64::from_le_bytes(payload.get(8..16)?.try_into().ok()?);
    (id == run_id).then_some(sent)
}

/// Writes the send time and run id into the first 16 bytes (the payload is at least that
/// long: --record-size has a minimum of 16).
fn encode_stamp(payload: &mut [u8], sent: u64, run_id: u64) {
    if let Some(head) = payload.get_mut(0..8) {
        head.copy_from_slice(&sent.to_le_bytes());
    }
    if let Some(id) = payload.get_mut(8..16) {
        id.copy_from_slice(&run_id.to_le_bytes());
    }
}

fn consumer_at_high_watermarks(
    client: &ClientSettings,
    topic: &str,
    partitions: &[i32],
) -> anyhow::Result<BaseConsumer<PlainContext>> {
    let consumer: BaseConsumer<PlainContext> = client
        .config(&[
            (
                "group.id",
                format!("sluice-bench-e2e-{}", std::process::id()),
            ),
            ("enable.auto.commit", "false".into()),
            // Latency mode: hand records over as soon as a fetch returns any.
            ("fetch.wait.max.ms", "100".into()),
            ("fetch.message.max.bytes", "8388608".into()),
        ])
        .create_with_context(PlainContext(client.lib_log()))
        .context("cannot create the consumer (check -X properties)")?;
    // Leaders known before assign(), or librdkafka starts fetching only after 500 ms.
    consumer
        .fetch_metadata(Some(topic), CALL_TIMEOUT)
        .context("consumer cannot fetch metadata")?;
    let mut tpl = TopicPartitionList::with_capacity(partitions.len());
    for &p in partitions {
        let (_, high) = consumer
            .fetch_watermarks(topic, p, CALL_TIMEOUT)
            .with_context(|| format!("cannot read the high watermark of {topic}-{p}"))?;
        tpl.add_partition_offset(topic, p, Offset::Offset(high))
            .context("cannot build the partition assignment")?;
    }
    consumer
        .assign(&tpl)
        .context("cannot assign the partitions")?;
    Ok(consumer)
}

fn consume_loop(
    consumer: &BaseConsumer<PlainContext>,
    run_id: u64,
    received: &Received,
    errors: &Counters,
) -> anyhow::Result<LatencyHistogram> {
    let mut latency = LatencyHistogram::new()?;
    while !received.stop.load(Ordering::Relaxed) {
        match consumer.poll(Duration::from_millis(50)) {
            Some(Ok(msg)) => {
                let now = now_nanos();
                match msg.payload().and_then(|p| decode_stamp(p, run_id)) {
                    Some(sent) => {
                        latency.record_nanos(now.saturating_sub(sent));
                        let len = (msg.payload_len() + msg.key_len()) as u64;
                        received.bytes.fetch_add(len, Ordering::Relaxed);
                        received.last_at_nanos.store(now, Ordering::Relaxed);
                        received.records.fetch_add(1, Ordering::Relaxed);
                    }
                    None => {
                        received.foreign.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            Some(Err(KafkaError::PartitionEOF(_))) | None => {}
            Some(Err(KafkaError::MessageConsumptionFatal(code))) => {
                bail!("fatal consumer error: {code}")
            }
            Some(Err(e)) => errors.error(format!("consumer: {e}")),
        }
    }
    Ok(latency)
}

pub fn run(
    args: &E2eArgs,
    client: &ClientSettings,
    partitions: &[i32],
    broker_pids: &[u32],
) -> anyhow::Result<Report> {
    if !(args.duration.is_finite() && args.duration > 0.0) {
        bail!("--duration must be a positive number of seconds");
    }
    let topic = args.common.topic.as_str();
    let mut rng = SplitMix64::from_clock(u64::from(std::process::id()));
    let run_id = rng.next_u64();
    let mut payload = text_payload(args.record_size as usize, &mut rng);
    // Whole records only: the schedule sends `rate × duration` records.
    let total = (args.rate as f64 * args.duration).round().max(1.0) as u64;
    let interval_nanos = 1e9 / args.rate as f64;

    let counters = Arc::new(Counters::default());
    let config = producer_config(client, &args.producer, args.linger_ms);
    let producer = connected_producer(client, &config, topic, &counters)?;
    let consumer = consumer_at_high_watermarks(client, topic, partitions)?;
    let received = Received::default();

    let sampler = (!broker_pids.is_empty())
        .then(|| Sampler::start(broker_pids))
        .transpose()?;
    let client_cpu = OwnCpu::start();
    let mut progress = Progress::new("e2e", !args.common.quiet);

    let (send_result, e2e_latency) = thread::scope(|s| {
        let consumer_thread = s.spawn(|| consume_loop(&consumer, run_id, &received, &counters));
        let start = Instant::now();
        let start_nanos = now_nanos();
        let mut sent: u64 = 0;
        let send_result = (|| -> anyhow::Result<(Duration, Duration)> {
            while sent < total {
                // Records due by now under the fixed schedule.
                let elapsed = now_nanos().saturating_sub(start_nanos) as f64;
                let due = ((elapsed / interval_nanos) as u64 + 1).min(total);
                while sent < due {
                    encode_stamp(&mut payload, now_nanos(), run_id);
                    let record = BaseRecord::with_opaque_to(topic, 0usize).payload(&payload[..]);
                    send_timed(&producer, record)?;
                    sent += 1;
                    counters.sent.fetch_add(1, Ordering::Relaxed);
                }
                progress.tick(
                    received.records.load(Ordering::Relaxed),
                    received.bytes.load(Ordering::Relaxed),
                    &format!(
                        "sent {}  errors {}",
                        int(sent),
                        int(counters.errors.load(Ordering::Relaxed))
                    ),
                );
                if sent < total {
                    let next_due = (sent as f64 * interval_nanos) as u64;
                    let now = now_nanos().saturating_sub(start_nanos);
                    let wait = Duration::from_nanos(next_due.saturating_sub(now));
                    thread::sleep(wait.min(MAX_PACING_SLEEP));
                }
            }
            let send_elapsed = start.elapsed();
            producer.flush(FLUSH_TIMEOUT).with_context(|| {
                format!(
                    "{} records not delivered within {FLUSH_TIMEOUT:?}",
                    int(counters.in_flight())
                )
            })?;
            // Let the consumer catch up with everything delivered.
            let delivered = counters.delivered.load(Ordering::Relaxed);
            let drain_deadline = Instant::now() + DRAIN_TIMEOUT;
            while received.records.load(Ordering::Relaxed) < delivered
                && Instant::now() < drain_deadline
                && !consumer_thread.is_finished()
            {
                thread::sleep(Duration::from_millis(5));
            }
            Ok((send_elapsed, start.elapsed()))
        })();
        received.stop.store(true, Ordering::Relaxed);
        let e2e_latency = consumer_thread
            .join()
            .unwrap_or_else(|_| Err(anyhow::anyhow!("the consumer thread panicked")));
        let send_result = send_result.map(|(send_elapsed, _)| {
            let last = received.last_at_nanos.load(Ordering::Relaxed);
            let until_last = Duration::from_nanos(last.saturating_sub(start_nanos));
            (send_elapsed, until_last)
        });
        (send_result, e2e_latency)
    });
    let client_cpu_s = client_cpu.seconds();
    let (send_elapsed, until_last_receipt) = send_result?;
    let e2e_latency = e2e_latency?;
    let produce_latency = producer.context().histogram()?;

    let sent = counters.sent.load(Ordering::Relaxed);
    let delivered = counters.delivered.load(Ordering::Relaxed);
    let delivered_bytes = counters.delivered_bytes.load(Ordering::Relaxed);
    let received_records = received.records.load(Ordering::Relaxed);
    let received_bytes = received.bytes.load(Ordering::Relaxed);
    // Bytes through the broker: in (produced) plus out (consumed).
    let broker = sampler.map(|s| s.finish(delivered_bytes + received_bytes));
    let send_secs = send_elapsed.as_secs_f64();

    Ok(Report::E2e(E2eReport {
        run: RunInfo {
            brokers: client.brokers.clone(),
            topic: topic.to_string(),
            partitions: partitions.len(),
        },
        producer: ProducerInfo {
            record_size: args.record_size,
            acks: args.producer.acks.as_config(),
            compression: args.producer.compression.as_config(),
            linger_ms: args.linger_ms,
            batch_size: args.producer.batch_size,
        },
        target_rate: args.rate,
        achieved_rate: if send_secs > 0.0 {
            sent as f64 / send_secs
        } else {
            0.0
        },
        sent,
        delivered,
        received: received_records,
        missing: delivered.saturating_sub(received_records),
        foreign: received.foreign.load(Ordering::Relaxed),
        throughput: Throughput::new(received_records, received_bytes, until_last_receipt),
        produce_latency_ms: produce_latency.summary(),
        e2e_latency_ms: e2e_latency.summary(),
        errors: counters.errors.load(Ordering::Relaxed),
        first_error: counters.first_error(),
        client_cpu_s,
        broker,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamp_round_trips_and_rejects_other_runs() {
        let mut p = vec![b'A'; 32];
        encode_stamp(&mut p, 123_456_789, 42);
        assert_eq!(decode_stamp(&p, 42), Some(123_456_789));
        assert_eq!(decode_stamp(&p, 43), None);
        assert_eq!(decode_stamp(&p[..15], 42), None);
        assert_eq!(&p[16..], &[b'A'; 16]);
    }
}

//! The workload, with librdkafka: idempotent acks=all producers sending unique values to
//! every partition, an assign-mode consumer polling all partitions and consumers in a
//! consumer group sharing them while faults come and go, and the final read of every
//! partition. Everything they do goes into a
//! [`Recorder`], which becomes the run's [`History`].

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use parking_lot::Mutex;
use rdkafka::Message;
use rdkafka::client::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::topic_partition_list::{Offset as KafkaOffset, TopicPartitionList};

use crate::history::{
    History, Offset, Partition, PollEvent, Send, SendOutcome, Span, Value, parse_payload, payload,
};

/// What a send is recorded as until its delivery report arrives; a send never reported
/// stays so.
const UNREPORTED: &str = "no delivery report";

/// Sends and polls as they happen, from every client thread.
pub struct Recorder {
    /// Time zero of the history's timestamps.
    started: Instant,
    sends: Mutex<Vec<Send>>,
    polls: Mutex<Vec<PollEvent>>,
    acked: AtomicUsize,
    indeterminate: AtomicUsize,
    consumer_errors: AtomicUsize,
    /// The highest offset the consumers polled, per partition.
    polled_up_to: Mutex<BTreeMap<Partition, Offset>>,
    producer_restarts: AtomicUsize,
    /// Transactions begun so far: the next one's number.
    transactions: AtomicU64,
}

impl Default for Recorder {
    fn default() -> Self {
        Recorder {
            started: Instant::now(),
            sends: Mutex::default(),
            polls: Mutex::default(),
            acked: AtomicUsize::default(),
            indeterminate: AtomicUsize::default(),
            consumer_errors: AtomicUsize::default(),
            polled_up_to: Mutex::default(),
            producer_restarts: AtomicUsize::default(),
            transactions: AtomicU64::default(),
        }
    }
}

impl Recorder {
    /// Nanoseconds since the recorder started: the history's clock.
    pub fn now_ns(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// The number of a transaction that begins (unique in the run).
    pub(crate) fn begin_transaction(&self) -> u64 {
        self.transactions.fetch_add(1, Ordering::Relaxed)
    }

    /// A send of `value` to `partition` by `producer` begins (in transaction `txn`, if
    /// any); returns its index for [`Recorder::finish_send`].
    pub(crate) fn begin_send(
        &self,
        producer: usize,
        partition: Partition,
        value: Value,
        txn: Option<u64>,
    ) -> usize {
        let invoked_ns = self.now_ns();
        let mut sends = self.sends.lock();
        sends.push(Send {
            producer,
            partition,
            value,
            outcome: SendOutcome::Indeterminate(UNREPORTED.into()),
            span: Span {
                invoked_ns,
                completed_ns: None,
            },
            txn,
        });
        sends.len() - 1
    }

    pub(crate) fn finish_send(&self, index: usize, outcome: SendOutcome) {
        match outcome {
            SendOutcome::Acked(_) => self.acked.fetch_add(1, Ordering::Relaxed),
            SendOutcome::Indeterminate(_) => self.indeterminate.fetch_add(1, Ordering::Relaxed),
            SendOutcome::Failed(_) => 0,
        };
        let completed_ns = self.now_ns();
        if let Some(send) = self.sends.lock().get_mut(index) {
            send.outcome = outcome;
            send.span.completed_ns = Some(completed_ns);
        }
    }

    fn polled(&self, event: PollEvent) {
        if let PollEvent::Record {
            partition, offset, ..
        } = event
        {
            let mut up_to = self.polled_up_to.lock();
            let at = up_to.entry(partition).or_insert(offset);
            *at = (*at).max(offset);
        }
        self.polls.lock().push(event);
    }

    /// A one-line account of the clients so far.
    pub fn progress(&self) -> String {
        format!(
            "{} sent, {} acked, {} indeterminate, {} polled, {} consumer errors, {} producer restarts",
            self.sends.lock().len(),
            self.acked.load(Ordering::Relaxed),
            self.indeterminate.load(Ordering::Relaxed),
            self.polls.lock().len(),
            self.consumer_errors.load(Ordering::Relaxed),
            self.producer_restarts.load(Ordering::Relaxed),
        )
    }

    /// The highest offset polled of each partition.
    pub fn polled_up_to(&self) -> BTreeMap<Partition, Offset> {
        self.polled_up_to.lock().clone()
    }

    /// The highest offset of each partition a send was acknowledged at.
    pub fn acked_up_to(&self) -> BTreeMap<Partition, Offset> {
        let mut up_to = BTreeMap::new();
        for send in self.sends.lock().iter() {
            if let SendOutcome::Acked(Some(offset)) = send.outcome {
                let at = up_to.entry(send.partition).or_insert(offset);
                *at = (*at).max(offset);
            }
        }
        up_to
    }

    /// The history so far, with `final_read`, which ends now.
    pub fn history(&self, final_read: BTreeMap<Partition, Vec<(Offset, Value)>>) -> History {
        History {
            sends: self.sends.lock().clone(),
            polls: self.polls.lock().clone(),
            final_read,
            final_read_ns: self.now_ns(),
            panics: Vec::new(),
        }
    }
}

/// Settings of the workload.
#[derive(Clone)]
pub struct WorkloadConfig {
    pub bootstrap: String,
    pub topic: String,
    pub partitions: i32,
    /// Sends per second of each producer.
    pub rate: u32,
    /// librdkafka's `message.timeout.ms`: how long a send may retry before it is reported
    /// (as indeterminate).
    pub message_timeout: Duration,
    /// Where librdkafka's producer log goes, if anywhere.
    pub client_log: Option<Arc<Mutex<std::fs::File>>>,
}

/// Base client settings: short timeouts, quick reconnects.
pub(crate) fn client_config(bootstrap: &str) -> ClientConfig {
    let mut c = sluice_e2e::client_config(bootstrap);
    c.set("log_level", "0");
    c
}

/// Records each delivery report against its send, and writes librdkafka's log (its
/// idempotence events: `debug=eos`) to the producers' log file.
struct Reports {
    recorder: Arc<Recorder>,
    log: Option<Arc<Mutex<std::fs::File>>>,
}

impl ClientContext for Reports {
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, fac: &str, message: &str) {
        if let Some(log) = &self.log {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default();
            let _ = writeln!(
                log.lock(),
                "{:.3} {level:?} {fac} {message}",
                now.as_secs_f64()
            );
        }
    }
}

impl ProducerContext for Reports {
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, index: usize) {
        let outcome = match result {
            Ok(m) => SendOutcome::Acked((m.offset() >= 0).then_some(m.offset())),
            // librdkafka tells "possibly persisted" from "not persisted" only through
            // rd_kafka_message_status, which the rdkafka crate does not expose: every
            // reported failure of an idempotent send counts as indeterminate.
            Err((e, _)) => SendOutcome::Indeterminate(e.to_string()),
        };
        self.recorder.finish_send(index, outcome);
    }
}

type ChaosProducer = ThreadedProducer<Reports>;

fn producer(config: &WorkloadConfig, recorder: &Arc<Recorder>) -> anyhow::Result<ChaosProducer> {
    let mut c = client_config(&config.bootstrap);
    c.set("acks", "all")
        .set("enable.idempotence", "true")
        .set(
            "message.timeout.ms",
            config.message_timeout.as_millis().to_string(),
        )
        .set("request.timeout.ms", "5000")
        .set("linger.ms", "5");
    if config.client_log.is_some() {
        c.set("debug", "eos");
    }
    c.create_with_context(Reports {
        recorder: recorder.clone(),
        log: config.client_log.clone(),
    })
    .context("cannot create a producer")
}

/// The next value of each partition, shared by every producer, so that each value is
/// unique in its partition.
#[derive(Clone)]
pub struct Values(Arc<Vec<AtomicU64>>);

impl Values {
    pub fn new(partitions: i32) -> Values {
        Values(Arc::new(
            (0..partitions).map(|_| AtomicU64::new(0)).collect(),
        ))
    }

    /// A new value for `partition` (None for a partition the topic does not have).
    pub(crate) fn next(&self, partition: Partition) -> Option<Value> {
        let counter = self.0.get(usize::try_from(partition).ok()?)?;
        Some(counter.fetch_add(1, Ordering::SeqCst))
    }
}

/// Queues the record of `value` for `partition`, waiting while librdkafka's queue is full
/// (unless `stop` is set); `index` is its send in the history. An error means it was
/// refused before it was queued: it was never transmitted.
pub(crate) fn enqueue<C>(
    producer: &ThreadedProducer<C>,
    topic: &str,
    partition: Partition,
    value: Value,
    index: usize,
    stop: &AtomicBool,
) -> Result<(), KafkaError>
where
    C: ProducerContext<DeliveryOpaque = usize>,
{
    let text = payload(value);
    loop {
        let record = BaseRecord::<(), String, usize>::with_opaque_to(topic, index)
            .partition(partition)
            .payload(&text);
        match producer.send(record) {
            Ok(()) => return Ok(()),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _))
                if !stop.load(Ordering::SeqCst) =>
            {
                thread::sleep(Duration::from_millis(10));
            }
            Err((e, _)) => return Err(e),
        }
    }
}

/// Client threads (producers, consumers) that run until told to stop.
pub struct Workers {
    stop: Arc<AtomicBool>,
    threads: Vec<thread::JoinHandle<()>>,
}

impl Workers {
    /// Runs each of `workers` on its own thread; each gets the shared stop flag.
    pub(crate) fn spawn<W: FnOnce(Arc<AtomicBool>) + std::marker::Send + 'static>(
        workers: impl IntoIterator<Item = W>,
    ) -> Workers {
        let stop = Arc::new(AtomicBool::new(false));
        let threads = workers
            .into_iter()
            .map(|work| {
                let stop = stop.clone();
                thread::spawn(move || work(stop))
            })
            .collect();
        Workers { stop, threads }
    }

    /// Tells them to stop and waits until each has finished (a producer flushes first,
    /// bounded by its message timeout; a transactional one ends its transaction).
    pub fn stop(self) {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.threads {
            let _ = t.join();
        }
    }
}

/// Starts `count` idempotent producers, each sending to every partition in turn until
/// stopped, then waiting for its last reports; values come from one counter per
/// partition, so each is unique in its partition.
pub fn start_producers(
    count: usize,
    config: &WorkloadConfig,
    recorder: &Arc<Recorder>,
    values: &Values,
    instances: &Arc<AtomicUsize>,
) -> anyhow::Result<Workers> {
    let mut workers = Vec::new();
    for first_partition in 0..count {
        let first = producer(config, recorder)?;
        let (config, recorder) = (config.clone(), recorder.clone());
        let (values, instances) = (values.clone(), instances.clone());
        let partition = (first_partition as i32) % config.partitions.max(1);
        workers.push(move |stop| {
            let worker = ProducerWorker {
                config,
                recorder,
                values,
                instances,
                stop,
            };
            worker.run(first, partition);
        });
    }
    Ok(Workers::spawn(workers))
}

struct ProducerWorker {
    config: WorkloadConfig,
    recorder: Arc<Recorder>,
    values: Values,
    /// Producer instances so far (of every kind): each gets its own number in the history.
    instances: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl ProducerWorker {
    fn run(self, mut producer: ChaosProducer, mut partition: i32) {
        let mut id = self.instances.fetch_add(1, Ordering::SeqCst);
        let pause = Duration::from_secs_f64(1.0 / f64::from(self.config.rate.max(1)));
        while !self.stop.load(Ordering::SeqCst) {
            self.send_one(&producer, id, partition);
            partition = (partition + 1) % self.config.partitions.max(1);
            // An idempotent producer that hit a fatal error sends nothing more: replace it,
            // as an application would, by a new one (a new producer id).
            if producer.client().fatal_error().is_some() {
                let _ = producer.flush(Duration::from_secs(1));
                match self::producer(&self.config, &self.recorder) {
                    Ok(p) => {
                        producer = p;
                        id = self.instances.fetch_add(1, Ordering::SeqCst);
                        self.recorder
                            .producer_restarts
                            .fetch_add(1, Ordering::Relaxed);
                    }
                    Err(_) => break,
                }
            }
            thread::sleep(pause);
        }
        let _ = producer.flush(self.config.message_timeout + Duration::from_secs(10));
    }

    fn send_one(&self, producer: &ChaosProducer, id: usize, partition: i32) {
        let Some(value) = self.values.next(partition) else {
            return;
        };
        let index = self.recorder.begin_send(id, partition, value, None);
        let queued = enqueue(
            producer,
            &self.config.topic,
            partition,
            value,
            index,
            &self.stop,
        );
        if let Err(e) = queued {
            self.recorder
                .finish_send(index, SendOutcome::Failed(e.to_string()));
        }
    }
}

/// How a workload consumer gets its partitions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsumerMode {
    /// assign() of every partition from the start: never rebalanced, so its polls of a
    /// partition must go forward without gaps (Jepsen's assign mode).
    Assign,
    /// subscribe() in the workload's consumer group, committing what it polled every
    /// second: the group coordinator shares the partitions among the members, rebalances
    /// them under faults, and a new owner starts at the committed offset.
    Subscribe,
}

/// The consumer group of [`ConsumerMode::Subscribe`] consumers.
const GROUP: &str = "sluice-chaos-group";

/// Records a consumer's every new assignment: what it polls afterwards need not follow
/// what it polled before. (librdkafka calls it from `poll`, on the polling thread, so it
/// falls in order among the records.)
struct Assignments {
    /// None for the final read, which is not one of the consumers.
    recorder: Option<Arc<Recorder>>,
    consumer: usize,
}

impl ClientContext for Assignments {}

impl ConsumerContext for Assignments {
    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let (Rebalance::Assign(list), Some(recorder)) = (rebalance, &self.recorder) {
            recorder.polled(PollEvent::Reassigned {
                consumer: self.consumer,
                at_ns: recorder.now_ns(),
                partitions: list.elements().iter().map(|e| e.partition()).collect(),
            });
        }
    }
}

type WorkloadConsumer = BaseConsumer<Assignments>;

/// A consumer of the workload's topic in `mode`, whose assignments go to `recorder`;
/// without one, the final read's consumer, which is told when it reaches each
/// partition's end.
fn workload_consumer(
    mode: ConsumerMode,
    consumer_id: usize,
    config: &WorkloadConfig,
    recorder: Option<&Arc<Recorder>>,
) -> anyhow::Result<WorkloadConsumer> {
    let mut settings = client_config(&config.bootstrap);
    settings
        .set("auto.offset.reset", "earliest")
        .set("fetch.wait.max.ms", "100")
        .set("check.crcs", "true");
    if recorder.is_none() {
        // The final read: told when it reaches each partition's end.
        settings.set("enable.partition.eof", "true");
    }
    match mode {
        // librdkafka wants a group id even in assign mode; it never joins the group.
        ConsumerMode::Assign => settings
            .set("group.id", "sluice-chaos")
            .set("enable.auto.commit", "false"),
        ConsumerMode::Subscribe => settings
            .set("group.id", GROUP)
            .set("enable.auto.commit", "true")
            .set("auto.commit.interval.ms", "1000")
            .set("session.timeout.ms", "10000")
            .set("heartbeat.interval.ms", "1000"),
    };
    let consumer: WorkloadConsumer = settings
        .create_with_context(Assignments {
            recorder: recorder.cloned(),
            consumer: consumer_id,
        })
        .context("cannot create a consumer")?;
    match mode {
        ConsumerMode::Assign => {
            let mut list = TopicPartitionList::new();
            for p in 0..config.partitions {
                list.add_partition_offset(&config.topic, p, KafkaOffset::Beginning)?;
            }
            consumer.assign(&list)?;
            if let Some(recorder) = recorder {
                recorder.polled(PollEvent::Reassigned {
                    consumer: consumer_id,
                    at_ns: recorder.now_ns(),
                    partitions: (0..config.partitions).collect(),
                });
            }
        }
        ConsumerMode::Subscribe => consumer.subscribe(&[&config.topic])?,
    }
    Ok(consumer)
}

/// The value of a record, or `Value::MAX` for one that is not the workload's (a phantom).
fn value_of<M: Message>(m: &M) -> Value {
    m.payload().and_then(parse_payload).unwrap_or(Value::MAX)
}

/// Starts a consumer in `mode` polling on its own thread until stopped.
pub fn start_poller(
    consumer_id: usize,
    mode: ConsumerMode,
    config: &WorkloadConfig,
    recorder: &Arc<Recorder>,
) -> anyhow::Result<Workers> {
    let consumer = workload_consumer(mode, consumer_id, config, Some(recorder))?;
    let recorder = recorder.clone();
    Ok(Workers::spawn([move |stop: Arc<AtomicBool>| {
        while !stop.load(Ordering::SeqCst) {
            match consumer.poll(Duration::from_millis(100)) {
                None => {}
                Some(Ok(m)) => recorder.polled(PollEvent::Record {
                    consumer: consumer_id,
                    partition: m.partition(),
                    offset: m.offset(),
                    value: value_of(&m),
                    at_ns: recorder.now_ns(),
                }),
                Some(Err(_)) => {
                    recorder.consumer_errors.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        // A group member leaves its group, as an application closing it would.
        if mode == ConsumerMode::Subscribe {
            consumer.unsubscribe();
        }
    }]))
}

/// The high watermark of every partition.
pub fn high_watermarks(config: &WorkloadConfig) -> anyhow::Result<BTreeMap<Partition, Offset>> {
    let consumer: BaseConsumer = client_config(&config.bootstrap)
        .set("group.id", "sluice-chaos")
        .create()?;
    (0..config.partitions)
        .map(|p| {
            let (_, high) = consumer
                .fetch_watermarks(&config.topic, p, Duration::from_secs(10))
                .with_context(|| format!("watermarks of partition {p}"))?;
            Ok((p, high))
        })
        .collect()
}

/// Reads every partition from its start up to its high watermark now.
pub fn final_read(
    config: &WorkloadConfig,
    timeout: Duration,
) -> anyhow::Result<BTreeMap<Partition, Vec<(Offset, Value)>>> {
    let ends = high_watermarks(config)?;
    let consumer = workload_consumer(ConsumerMode::Assign, 0, config, None)?;
    let mut log: BTreeMap<Partition, Vec<(Offset, Value)>> =
        (0..config.partitions).map(|p| (p, Vec::new())).collect();
    // Partitions read to their end: a transaction's last marker is never returned as a
    // record, so a partition whose log ends with one is done when librdkafka reports its
    // end (read_committed: the last stable offset, which is the high watermark once every
    // transaction has ended).
    let mut at_end: BTreeSet<Partition> = BTreeSet::new();
    let done = |log: &BTreeMap<Partition, Vec<(Offset, Value)>>, at_end: &BTreeSet<Partition>| {
        ends.iter().all(|(p, end)| {
            *end == 0
                || at_end.contains(p)
                || log
                    .get(p)
                    .and_then(|records| records.last())
                    .is_some_and(|(offset, _)| *offset + 1 >= *end)
        })
    };
    let deadline = Instant::now() + timeout;
    while !done(&log, &at_end) {
        if Instant::now() > deadline {
            let got: BTreeMap<_, _> = log
                .iter()
                .map(|(p, r)| (*p, r.last().map(|(o, _)| *o)))
                .collect();
            bail!(
                "the final read did not reach the high watermarks {ends:?} within {timeout:?}: last offsets read {got:?}"
            );
        }
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => log
                .entry(m.partition())
                .or_default()
                .push((m.offset(), value_of(&m))),
            Some(Err(KafkaError::PartitionEOF(partition))) => {
                at_end.insert(partition);
            }
            _ => {}
        }
    }
    Ok(log)
}

//! Transactional producers for the workload (`--transactional-producers`): each sends a
//! few records to several partitions in one transaction, then commits it — or, one time in
//! four, aborts it. A committed transaction's records are acknowledged sends (at the
//! offsets their delivery reports gave); an aborted one's are failed sends, which no
//! consumer may read (the consumers and the final read are librdkafka's default
//! `read_committed`): reading one is G1a, Jepsen's aborted read. A transaction whose end
//! is unknown (a commit that failed for good) leaves its records indeterminate.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread;
use std::time::Duration;

use anyhow::Context;
use parking_lot::Mutex;
use rdkafka::Message;
use rdkafka::client::ClientContext;
use rdkafka::error::KafkaError;
use rdkafka::producer::{DeliveryResult, Producer, ProducerContext, ThreadedProducer};

use crate::history::{Offset, Partition, SendOutcome};
use crate::workload::{Recorder, Values, Workers, WorkloadConfig, client_config, enqueue};

/// How long librdkafka may take to init, commit or abort a transaction.
const TXN_CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// The broker aborts a transaction its producer left open after this long, so that a
/// producer lost mid-transaction does not hold back the read_committed readers for long.
const TRANSACTION_TIMEOUT_MS: &str = "10000";
/// Records per transaction.
const RECORDS_PER_TRANSACTION: usize = 4;
/// Every this many transactions, one is aborted on purpose.
const ABORT_EVERY: u64 = 4;
/// How many times a retriable commit or abort is tried before its outcome counts as unknown.
const END_ATTEMPTS: usize = 5;

/// Keeps the offset of each delivered record until its transaction ends.
#[derive(Default)]
struct Delivered {
    offsets: Mutex<HashMap<usize, Offset>>,
}

impl ClientContext for Delivered {}

impl ProducerContext for Delivered {
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, index: usize) {
        if let Ok(m) = result
            && m.offset() >= 0
        {
            self.offsets.lock().insert(index, m.offset());
        }
    }
}

type TxnProducer = ThreadedProducer<Delivered>;

/// A transactional producer (transactions not initialised yet).
fn txn_producer(config: &WorkloadConfig, transactional_id: &str) -> anyhow::Result<TxnProducer> {
    client_config(&config.bootstrap)
        .set("transactional.id", transactional_id)
        .set("transaction.timeout.ms", TRANSACTION_TIMEOUT_MS)
        // librdkafka wants records to time out within the transaction's timeout.
        .set("message.timeout.ms", TRANSACTION_TIMEOUT_MS)
        .set("request.timeout.ms", "5000")
        .set("linger.ms", "5")
        .create_with_context(Delivered::default())
        .context("cannot create a transactional producer")
}

/// Starts `count` transactional producers, with transactional ids `sluice-chaos-txn-N`,
/// until stopped (each ends its transaction in flight first).
pub fn start_transactional_producers(
    count: usize,
    config: &WorkloadConfig,
    recorder: &Arc<Recorder>,
    values: &Values,
    instances: &Arc<AtomicUsize>,
) -> anyhow::Result<Workers> {
    // A configuration librdkafka refuses is the harness's bug: say so at once.
    if count > 0 {
        drop(txn_producer(config, "sluice-chaos-txn-check")?);
    }
    let workers = (0..count).map(|n| {
        let (config, recorder) = (config.clone(), recorder.clone());
        let (values, instances) = (values.clone(), instances.clone());
        move |stop| {
            let worker = TxnWorker {
                transactional_id: format!("sluice-chaos-txn-{n}"),
                config,
                recorder,
                values,
                instances,
                stop,
            };
            worker.run();
        }
    });
    Ok(Workers::spawn(workers.collect::<Vec<_>>()))
}

struct TxnWorker {
    transactional_id: String,
    config: WorkloadConfig,
    recorder: Arc<Recorder>,
    values: Values,
    instances: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

/// How a transaction ended.
enum Ended {
    Committed,
    Aborted(String),
    /// Unknown: the producer failed for good; it is replaced.
    Unknown(String),
}

impl TxnWorker {
    fn run(self) {
        let mut transactions = 0u64;
        while !self.stop.load(Ordering::SeqCst) {
            let Some(producer) = self.ready_producer() else {
                thread::sleep(Duration::from_secs(1));
                continue;
            };
            let id = self.instances.fetch_add(1, Ordering::SeqCst);
            // One producer instance until it fails for good.
            while !self.stop.load(Ordering::SeqCst) {
                transactions += 1;
                let abort = transactions.is_multiple_of(ABORT_EVERY);
                let first = (transactions % self.config.partitions.max(1) as u64) as Partition;
                if let Ended::Unknown(_) = self.one_transaction(&producer, id, first, abort) {
                    break;
                }
                thread::sleep(Duration::from_millis(50));
            }
        }
    }

    /// A transactional producer with its transactions initialised (None while the
    /// cluster cannot do it).
    fn ready_producer(&self) -> Option<TxnProducer> {
        let producer = txn_producer(&self.config, &self.transactional_id).ok()?;
        producer.init_transactions(TXN_CALL_TIMEOUT).ok()?;
        Some(producer)
    }

    /// Sends `RECORDS_PER_TRANSACTION` records, to partitions from `first` on, in one
    /// transaction, ends it (aborts it when `abort`), and records the outcome of each.
    fn one_transaction(
        &self,
        producer: &TxnProducer,
        id: usize,
        first: Partition,
        abort: bool,
    ) -> Ended {
        if let Err(e) = producer.begin_transaction() {
            return Ended::Unknown(e.to_string());
        }
        let txn = self.recorder.begin_transaction();
        let mut sent = Vec::new();
        let mut refused = None;
        for k in 0..RECORDS_PER_TRANSACTION {
            let partition = (first + k as Partition) % self.config.partitions.max(1);
            let Some(value) = self.values.next(partition) else {
                continue;
            };
            let index = self.recorder.begin_send(id, partition, value, Some(txn));
            sent.push(index);
            if let Err(e) = enqueue(
                producer,
                &self.config.topic,
                partition,
                value,
                index,
                &self.stop,
            ) {
                refused = Some(e.to_string());
                break;
            }
        }
        let ended = match (abort, refused) {
            (false, None) => self.commit(producer),
            (true, None) => self.abort(producer, "aborted by the workload".into()),
            (_, Some(why)) => self.abort(producer, format!("aborted after a refused send: {why}")),
        };
        let delivered = std::mem::take(&mut *producer.context().offsets.lock());
        for index in sent {
            let outcome = match &ended {
                Ended::Committed => SendOutcome::Acked(delivered.get(&index).copied()),
                Ended::Aborted(why) => SendOutcome::Failed(why.clone()),
                Ended::Unknown(why) => SendOutcome::Indeterminate(why.clone()),
            };
            self.recorder.finish_send(index, outcome);
        }
        ended
    }

    /// Commits, retrying what librdkafka says may be retried; a commit that needs an abort
    /// is aborted.
    fn commit(&self, producer: &TxnProducer) -> Ended {
        let mut last = String::new();
        for _ in 0..END_ATTEMPTS {
            match producer.commit_transaction(TXN_CALL_TIMEOUT) {
                Ok(()) => return Ended::Committed,
                Err(KafkaError::Transaction(e)) if e.is_retriable() => last = e.to_string(),
                Err(KafkaError::Transaction(e)) if e.txn_requires_abort() => {
                    return self.abort(producer, format!("commit failed, aborted: {e}"));
                }
                Err(e) => return Ended::Unknown(format!("commit failed: {e}")),
            }
        }
        Ended::Unknown(format!("commit still failing: {last}"))
    }

    fn abort(&self, producer: &TxnProducer, why: String) -> Ended {
        let mut last = String::new();
        for _ in 0..END_ATTEMPTS {
            match producer.abort_transaction(TXN_CALL_TIMEOUT) {
                Ok(()) => return Ended::Aborted(why),
                Err(KafkaError::Transaction(e)) if e.is_retriable() => last = e.to_string(),
                Err(e) => return Ended::Unknown(format!("{why}; the abort failed: {e}")),
            }
        }
        Ended::Unknown(format!("{why}; the abort still failing: {last}"))
    }
}

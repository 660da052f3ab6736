//! Moving replicas under load across `sluice serve` processes: an idempotent acks=all
//! producer that keeps writing while partitions move and nodes die, and the CLI calls and
//! plan files of `sluice cluster reassign`.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::Duration;

use rdkafka::admin::{NewTopic, TopicReplication};
use rdkafka::producer::Producer;
use serde_json::json;

use crate::{
    Cluster, RunOutput, TestProducer, admin, admin_opts, block_on, producer, run_sluice,
    send_numbered,
};

/// How long partitions and the broker list may take to settle after a node comes back, a
/// move completes or a node leaves.
pub const SETTLE: Duration = Duration::from_secs(40);
/// How long reading a whole topic back may take.
pub const READ: Duration = Duration::from_secs(30);
/// How long one `sluice` CLI call may take.
pub const CLI: Duration = Duration::from_secs(60);

/// Creates `topic` with the given replica assignment (one list of node ids per partition)
/// and `min.insync.replicas`, and waits until every partition is led by its first replica
/// with every replica in sync.
pub fn create_placed_topic(
    cluster: &mut Cluster,
    topic: &str,
    assignment: &[&[i32]],
    min_insync_replicas: &str,
) {
    let admin = admin(&cluster.bootstrap());
    let t = NewTopic::new(
        topic,
        assignment.len() as i32,
        TopicReplication::Variable(assignment),
    )
    .set("min.insync.replicas", min_insync_replicas);
    let res = block_on(admin.create_topics([&t], &admin_opts())).expect("create_topics");
    assert_eq!(res, vec![Ok(topic.to_string())]);
    cluster.wait_partitions(
        topic,
        assignment.len() as i32,
        SETTLE,
        "led by their first replica, all in sync",
        |p| p.leader == p.replicas[0] && p.isr.len() == p.replicas.len(),
    );
}

/// An idempotent acks=all producer that rides out leader moves and killed nodes.
pub fn acks_all_producer(bootstrap: &str) -> TestProducer {
    producer(
        bootstrap,
        &[
            ("acks", "all"),
            ("enable.idempotence", "true"),
            ("message.timeout.ms", "60000"),
            ("request.timeout.ms", "5000"),
            ("linger.ms", "2"),
        ],
    )
}

/// Sends `record-<id>` for ids 0, 1, … to partition `id % partitions` of `topic`, about
/// one per millisecond, until `stop`; returns how many were sent.
pub fn send_until(
    producer: &TestProducer,
    topic: &str,
    partitions: usize,
    stop: &AtomicBool,
) -> usize {
    let mut id = 0;
    while !stop.load(Ordering::SeqCst) {
        send_numbered(producer, topic, (id % partitions) as i32, id);
        id += 1;
        thread::sleep(Duration::from_millis(1));
    }
    id
}

/// Sets its flag when dropped, also while a test panics: the sending threads of a
/// `thread::scope` then end, and the panic is reported instead of the scope waiting for
/// them for ever.
pub struct StopOnDrop<'a>(pub &'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// Waits (at most `timeout`) until `more` records beyond those acknowledged now are
/// acknowledged: writes go on.
pub fn wait_more_acked(producer: &TestProducer, more: usize, timeout: Duration) {
    let target = producer.context().acked() + more;
    assert!(
        producer.context().wait_acked(target, timeout),
        "only {} of {target} acknowledged",
        producer.context().acked()
    );
}

/// `sluice <args> --brokers <brokers>`, waited for at most `timeout`.
pub fn sluice_at(brokers: &str, args: &[&str], timeout: Duration) -> RunOutput {
    let mut all: Vec<&str> = args.to_vec();
    all.extend(["--brokers", brokers]);
    run_sluice(&all, timeout)
}

/// Whether the command exited with success.
pub fn succeeded(out: &RunOutput) -> bool {
    out.status.is_some_and(|s| s.success())
}

/// Writes a reassignment JSON file of `moves` (topic, partition, replicas) into `dir`.
pub fn plan_file(dir: &Path, moves: &[(&str, i32, &[i32])]) -> PathBuf {
    let partitions: Vec<_> = moves
        .iter()
        .map(|(t, p, r)| json!({ "topic": t, "partition": p, "replicas": r }))
        .collect();
    let path = dir.join("plan.json");
    std::fs::write(
        &path,
        json!({ "version": 1, "partitions": partitions }).to_string(),
    )
    .expect("write the reassignment plan");
    path
}

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
//! Consumer groups driven by librdkafka against a real broker process: cooperative-sticky
//! handovers under continuous produce, static membership restarts, the range and roundrobin
//! assignors, and the time a lone consumer needs to get its first record.
//!
//! Every broker runs with `--group-initial-rebalance-delay-ms 0` (the harness passes it).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes};
use kafka_protocol::messages::{ConsumerProtocolAssignment, ConsumerProtocolSubscription};
use kafka_protocol::protocol::Decodable;
use rdkafka::client::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, RebalanceProtocol,
};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, Producer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use sluice_e2e::{
    Broker, CALL_TIMEOUT, TestProducer, client_config, consumer, create_topic, producer,
    wait_high_watermarks,
};

/// How long a group may take to settle after a member joins or leaves.
const SETTLE: Duration = Duration::from_secs(20);

// ---------------------------------------------------------------------------------------------
// A group member: a BaseConsumer polled on its own thread, recording what happens to it
// ---------------------------------------------------------------------------------------------

/// One record as a member of the group received it.
#[derive(Debug, Clone)]
struct Consumed {
    member: String,
    partition: i32,
    offset: i64,
    value: String,
}

/// A rebalance callback as the member saw it (empty assignments and revocations, which
/// librdkafka reports for cooperative rebalances that do not concern the member, are
/// not recorded).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Event {
    Assign(BTreeSet<i32>),
    Revoke(BTreeSet<i32>),
    Error(String),
}

#[derive(Default)]
struct MemberState {
    /// Partitions assigned now (updated after librdkafka applied each change).
    assigned: BTreeSet<i32>,
    /// Next offset to commit, per partition consumed from since it was assigned.
    positions: BTreeMap<i32, i64>,
    events: Vec<Event>,
    /// Every commit made on revoke: the offsets and the result.
    commits: Vec<(BTreeMap<i32, i64>, Result<(), String>)>,
    /// Errors returned by poll.
    errors: Vec<String>,
    /// The rebalance protocol librdkafka reported at the last assignment.
    protocol: Option<&'static str>,
}

struct MemberCtx {
    topic: String,
    state: Arc<Mutex<MemberState>>,
}

fn partitions_of(tpl: &TopicPartitionList) -> BTreeSet<i32> {
    tpl.elements().iter().map(|e| e.partition()).collect()
}

fn protocol_name(p: RebalanceProtocol) -> &'static str {
    match p {
        RebalanceProtocol::None => "none",
        RebalanceProtocol::Eager => "eager",
        RebalanceProtocol::Cooperative => "cooperative",
    }
}

impl ClientContext for MemberCtx {}

impl ConsumerContext for MemberCtx {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Revoke(tpl) => {
                let revoked = partitions_of(tpl);
                // Commit synchronously what this member consumed from the partitions it is
                // giving up, so that the next owner starts right after it.
                let to_commit: BTreeMap<i32, i64> = {
                    let mut st = self.state.lock().unwrap();
                    if !revoked.is_empty() {
                        st.events.push(Event::Revoke(revoked.clone()));
                    }
                    revoked
                        .iter()
                        .filter_map(|p| st.positions.remove(p).map(|o| (*p, o)))
                        .collect()
                };
                if !to_commit.is_empty() {
                    let mut offsets = TopicPartitionList::new();
                    for (p, o) in &to_commit {
                        offsets
                            .add_partition_offset(&self.topic, *p, Offset::Offset(*o))
                            .expect("add offset");
                    }
                    let result = consumer
                        .commit(&offsets, CommitMode::Sync)
                        .map_err(|e| e.to_string());
                    self.state.lock().unwrap().commits.push((to_commit, result));
                }
            }
            Rebalance::Assign(_) => {}
            Rebalance::Error(e) => {
                self.state
                    .lock()
                    .unwrap()
                    .events
                    .push(Event::Error(e.to_string()));
            }
        }
    }

    /// Asks librdkafka for the rebalance protocol only on assignment. On a revocation the
    /// protocol recorded then is used: the revocation that closing a consumer triggers
    /// may end the group handler before `rd_kafka_rebalance_protocol` is answered, and
    /// that call then waits forever (librdkafka issue 4041).
    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let mut st = self.state.lock().unwrap();
        match rebalance {
            Rebalance::Assign(tpl) => {
                let added = partitions_of(tpl);
                let protocol = protocol_name(consumer.rebalance_protocol());
                st.protocol = Some(protocol);
                if !added.is_empty() {
                    st.events.push(Event::Assign(added.clone()));
                }
                if protocol == "cooperative" {
                    st.assigned.extend(added);
                } else {
                    st.assigned = added;
                }
            }
            Rebalance::Revoke(tpl) => {
                if st.protocol == Some("cooperative") {
                    for p in partitions_of(tpl) {
                        st.assigned.remove(&p);
                    }
                } else {
                    st.assigned.clear();
                }
            }
            Rebalance::Error(_) => {}
        }
    }
}

/// Everything every member of a test received.
type Sink = Arc<Mutex<Vec<Consumed>>>;

struct Member {
    name: String,
    state: Arc<Mutex<MemberState>>,
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
    /// Signalled when the member thread ends (also when it panics).
    done: mpsc::Receiver<()>,
}

/// How long closing a consumer may take before the test gives up on it.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(30);

/// Sends on drop: tells [`Member::stop`] that the thread ended, however it ended.
struct Done(mpsc::Sender<()>);

impl Drop for Done {
    fn drop(&mut self) {
        let _ = self.0.send(());
    }
}

/// Group consumer settings shared by the tests: manual commits, fast heartbeats.
fn group_config(bootstrap: &str, group: &str, name: &str, extra: &[(&str, &str)]) -> ClientConfig {
    let mut c = client_config(bootstrap);
    c.set("group.id", group)
        .set("client.id", name)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "false")
        .set("session.timeout.ms", "6000")
        .set("heartbeat.interval.ms", "100")
        .set("fetch.wait.max.ms", "100");
    for (k, v) in extra {
        c.set(*k, *v);
    }
    c
}

impl Member {
    /// Starts a consumer thread that subscribes to `topic` and records everything it gets.
    fn start(
        bootstrap: &str,
        topic: &str,
        group: &str,
        name: &str,
        extra: &[(&str, &str)],
        sink: &Sink,
    ) -> Member {
        let config = group_config(bootstrap, group, name, extra);
        let state = Arc::new(Mutex::new(MemberState::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let ctx = MemberCtx {
            topic: topic.to_string(),
            state: state.clone(),
        };
        let (done_tx, done) = mpsc::channel();
        let (topic, member, sink, st, stop2) = (
            topic.to_string(),
            name.to_string(),
            sink.clone(),
            state.clone(),
            stop.clone(),
        );
        let handle = thread::Builder::new()
            .name(format!("member-{name}"))
            .spawn(move || {
                let _done = Done(done_tx);
                let consumer: BaseConsumer<MemberCtx> = config
                    .create_with_context(ctx)
                    .expect("create group consumer");
                consumer.subscribe(&[&topic]).expect("subscribe");
                while !stop2.load(Ordering::SeqCst) {
                    match consumer.poll(Duration::from_millis(50)) {
                        None => {}
                        Some(Ok(m)) => {
                            let value = String::from_utf8(m.payload().unwrap_or_default().to_vec())
                                .expect("utf8 value");
                            sink.lock().unwrap().push(Consumed {
                                member: member.clone(),
                                partition: m.partition(),
                                offset: m.offset(),
                                value,
                            });
                            st.lock()
                                .unwrap()
                                .positions
                                .insert(m.partition(), m.offset() + 1);
                        }
                        Some(Err(e)) => st.lock().unwrap().errors.push(e.to_string()),
                    }
                }
                // Dropping the consumer closes it: librdkafka revokes the assignment (our
                // callback commits) and, for a dynamic member, sends LeaveGroup.
                drop(consumer);
            })
            .expect("spawn member thread");
        Member {
            name: name.to_string(),
            state,
            stop,
            handle: Some(handle),
            done,
        }
    }

    fn assigned(&self) -> BTreeSet<i32> {
        self.state.lock().unwrap().assigned.clone()
    }

    fn events(&self) -> Vec<Event> {
        self.state.lock().unwrap().events.clone()
    }

    /// Closes the consumer (a clean handover) and waits for its thread, at most
    /// [`CLOSE_TIMEOUT`].
    fn stop(mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let h = self.handle.take().expect("member thread");
        if self.done.recv_timeout(CLOSE_TIMEOUT).is_err() {
            // The thread is left behind (detached); the test fails instead of hanging.
            panic!(
                "member {} did not close within {CLOSE_TIMEOUT:?}",
                self.name
            );
        }
        if h.join().is_err() {
            panic!("member {} panicked", self.name);
        }
    }

    /// Checks done on every member at the end of a test.
    fn assert_clean(&self) {
        let st = self.state.lock().unwrap();
        assert!(
            st.errors.is_empty(),
            "member {} got errors from poll: {:?}",
            self.name,
            st.errors
        );
        for (offsets, result) in &st.commits {
            assert_eq!(
                result,
                &Ok(()),
                "member {}: commit on revoke of {offsets:?} failed",
                self.name
            );
        }
        assert!(
            !st.events.iter().any(|e| matches!(e, Event::Error(_))),
            "member {}: rebalance errors {:?}",
            self.name,
            st.events
        );
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.handle.take()
            && self.done.recv_timeout(CLOSE_TIMEOUT).is_ok()
        {
            let _ = h.join();
        }
    }
}

/// Polls `check` every 10 ms until it succeeds; panics with its last complaint after `timeout`.
fn wait_until<T>(what: &str, timeout: Duration, mut check: impl FnMut() -> Result<T, String>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        match check() {
            Ok(v) => return v,
            Err(why) => assert!(
                Instant::now() < deadline,
                "{what}: not reached within {timeout:?}: {why}"
            ),
        }
        thread::sleep(Duration::from_millis(10));
    }
}

/// The members' assignments when they are disjoint, cover `0..partitions` and each member
/// has `partitions / members.len()` of them.
fn balanced(
    members: &[&Member],
    partitions: i32,
) -> Result<BTreeMap<String, BTreeSet<i32>>, String> {
    let now: BTreeMap<String, BTreeSet<i32>> = members
        .iter()
        .map(|m| (m.name.clone(), m.assigned()))
        .collect();
    let total: usize = now.values().map(BTreeSet::len).sum();
    let union: BTreeSet<i32> = now.values().flatten().copied().collect();
    let all: BTreeSet<i32> = (0..partitions).collect();
    let each = usize::try_from(partitions).unwrap() / members.len();
    if total == union.len() && union == all && now.values().all(|s| s.len() == each) {
        Ok(now)
    } else {
        Err(format!("assignments {now:?}"))
    }
}

// ---------------------------------------------------------------------------------------------
// Producing
// ---------------------------------------------------------------------------------------------

fn value(id: usize) -> String {
    format!("v{id:07}")
}

fn id_of(v: &str) -> usize {
    v.strip_prefix('v')
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("foreign record {v:?}"))
}

fn send(p: &TestProducer, topic: &str, partition: i32, id: usize) {
    p.send(
        BaseRecord::<(), String, usize>::with_opaque_to(topic, id)
            .partition(partition)
            .payload(&value(id)),
    )
    .map_err(|(e, _)| e)
    .expect("enqueue");
}

/// Every delivery report of `p` is a success; returns id -> (partition, offset).
fn delivered(p: &TestProducer, expected: usize) -> BTreeMap<usize, (i32, i64)> {
    p.flush(Duration::from_secs(20)).expect("flush");
    let mut out = BTreeMap::new();
    for d in p.context().deliveries() {
        let at = d
            .result
            .unwrap_or_else(|e| panic!("record {} not delivered: {e}", d.id));
        assert!(out.insert(d.id, at).is_none(), "two reports for {}", d.id);
    }
    assert_eq!(out.len(), expected, "delivery reports");
    out
}

// ---------------------------------------------------------------------------------------------
// Cooperative-sticky under continuous produce
// ---------------------------------------------------------------------------------------------

/// Clears the flag when dropped (also while unwinding).
struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::SeqCst);
    }
}

/// One membership change of the cooperative test and how the survivors must react.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Change {
    Joined,
    Left,
}

/// Waits until `members` are balanced over `partitions`, then checks the cooperative-sticky
/// promise against the assignments `before` the change: on a join, members that stay only
/// give partitions up (and revoke exactly those, not their whole assignment as an eager
/// rebalance would); on a leave, members that stay only gain partitions and revoke nothing.
fn settle(
    what: &str,
    members: &[&Member],
    partitions: i32,
    before: &BTreeMap<String, BTreeSet<i32>>,
    events_before: &BTreeMap<String, usize>,
    change: Change,
) -> BTreeMap<String, BTreeSet<i32>> {
    let now = wait_until(what, SETTLE, || balanced(members, partitions));
    for m in members {
        let Some(old) = before.get(&m.name) else {
            continue;
        };
        let new = &now[&m.name];
        let since = m.events().split_off(events_before[&m.name]);
        let revoked: BTreeSet<i32> = since
            .iter()
            .filter_map(|e| match e {
                Event::Revoke(ps) => Some(ps.clone()),
                _ => None,
            })
            .flatten()
            .collect();
        match change {
            Change::Joined => {
                assert!(
                    new.is_subset(old),
                    "{what}: {} had {old:?} and now has {new:?}; with cooperative-sticky a \
                     member that stays only gives partitions up when another joins",
                    m.name
                );
                let given_up: BTreeSet<i32> = old.difference(new).copied().collect();
                assert_eq!(
                    revoked, given_up,
                    "{what}: {} revoked {revoked:?} (events {since:?}) but only had to give \
                     up {given_up:?}",
                    m.name
                );
            }
            Change::Left => {
                assert!(
                    new.is_superset(old),
                    "{what}: {} had {old:?} and now has {new:?}; a member that stays keeps \
                     its partitions when another leaves",
                    m.name
                );
                assert!(
                    revoked.is_empty(),
                    "{what}: {} revoked {revoked:?} (events {since:?}) although it only \
                     gained partitions",
                    m.name
                );
            }
        }
    }
    now
}

fn event_counts(members: &[&Member]) -> BTreeMap<String, usize> {
    members
        .iter()
        .map(|m| (m.name.clone(), m.events().len()))
        .collect()
}

/// Waits until every member in `members` received at least one record after `mark`
/// (the length of the sink when the phase settled): handovers keep the data flowing.
fn wait_progress(what: &str, sink: &Sink, members: &[&Member]) {
    let mark = sink.lock().unwrap().len();
    wait_until(what, SETTLE, || {
        let got = sink.lock().unwrap();
        let fresh: BTreeSet<&str> = got[mark..].iter().map(|c| c.member.as_str()).collect();
        let missing: Vec<&str> = members
            .iter()
            .map(|m| m.name.as_str())
            .filter(|n| !fresh.contains(n))
            .collect();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(format!("no new records for {missing:?}"))
        }
    });
}

#[test]
fn cooperative_sticky_members_join_and_leave_under_produce_without_loss_or_duplicates() {
    const TOPIC: &str = "coop";
    const GROUP: &str = "coop-group";
    const PARTITIONS: i32 = 6;
    let broker = Broker::start();
    let bs = broker.bootstrap();
    create_topic(&bs, TOPIC, PARTITIONS, &[]);
    let coop = [("partition.assignment.strategy", "cooperative-sticky")];
    let sink: Sink = Arc::default();
    let p = producer(&bs, &[("acks", "all"), ("linger.ms", "1")]);
    let producing = AtomicBool::new(true);

    let (produced, members) = thread::scope(|s| {
        // Continuous produce, round robin over the partitions, about one record a millisecond.
        let prod = s.spawn(|| {
            let mut id = 0;
            while producing.load(Ordering::SeqCst) {
                send(&p, TOPIC, i32::try_from(id).unwrap() % PARTITIONS, id);
                id += 1;
                thread::sleep(Duration::from_millis(1));
            }
            id
        });
        // Stop the producer thread even when an assertion below fails, or the scope hangs.
        let _stop_producing = StopOnDrop(&producing);
        let start = |name: &str| Member::start(&bs, TOPIC, GROUP, name, &coop, &sink);

        // a alone: everything.
        let a = start("a");
        let mut now = wait_until("a alone owns all partitions", SETTLE, || {
            balanced(&[&a], PARTITIONS)
        });
        wait_progress("a consumes", &sink, &[&a]);

        // b joins: 3 + 3.
        let counts = event_counts(&[&a]);
        let b = start("b");
        now = settle(
            "b joined",
            &[&a, &b],
            PARTITIONS,
            &now,
            &counts,
            Change::Joined,
        );
        wait_progress("a and b consume", &sink, &[&a, &b]);

        // c joins: 2 + 2 + 2.
        let counts = event_counts(&[&a, &b]);
        let c = start("c");
        now = settle(
            "c joined",
            &[&a, &b, &c],
            PARTITIONS,
            &now,
            &counts,
            Change::Joined,
        );
        wait_progress("a, b and c consume", &sink, &[&a, &b, &c]);

        // a leaves cleanly: b and c take its partitions over.
        let counts = event_counts(&[&b, &c]);
        let a_state = a.state.clone();
        a.stop();
        now = settle("a left", &[&b, &c], PARTITIONS, &now, &counts, Change::Left);
        wait_progress("b and c consume", &sink, &[&b, &c]);

        // d joins.
        let counts = event_counts(&[&b, &c]);
        let d = start("d");
        now = settle(
            "d joined",
            &[&b, &c, &d],
            PARTITIONS,
            &now,
            &counts,
            Change::Joined,
        );
        wait_progress("b, c and d consume", &sink, &[&b, &c, &d]);

        // b leaves cleanly.
        let counts = event_counts(&[&c, &d]);
        let b_state = b.state.clone();
        b.stop();
        settle("b left", &[&c, &d], PARTITIONS, &now, &counts, Change::Left);
        wait_progress("c and d consume", &sink, &[&c, &d]);

        producing.store(false, Ordering::SeqCst);
        let produced = prod.join().expect("producer thread");
        (produced, (a_state, b_state, c, d))
    });
    let (a_state, b_state, c, d) = members;

    let deliveries = delivered(&p, produced);
    wait_high_watermarks(
        &bs,
        TOPIC,
        PARTITIONS,
        i64::try_from(produced).unwrap(),
        Duration::from_secs(10),
    );
    // The two remaining members drain the topic.
    wait_until(
        "c and d consume everything",
        Duration::from_secs(20),
        || {
            let got = sink.lock().unwrap();
            let distinct: BTreeSet<(i32, i64)> =
                got.iter().map(|r| (r.partition, r.offset)).collect();
            if distinct.len() == produced {
                Ok(())
            } else {
                Err(format!("{} of {produced} records consumed", distinct.len()))
            }
        },
    );
    c.assert_clean();
    d.assert_clean();
    let (c_state, d_state) = (c.state.clone(), d.state.clone());
    c.stop();
    d.stop();

    let got = sink.lock().unwrap().clone();
    // No record consumed twice by members of the group.
    let mut by_position: BTreeMap<(i32, i64), Vec<&Consumed>> = BTreeMap::new();
    for r in &got {
        by_position
            .entry((r.partition, r.offset))
            .or_default()
            .push(r);
    }
    let dups: Vec<String> = by_position
        .iter()
        .filter(|(_, rs)| rs.len() > 1)
        .map(|((p, o), rs)| {
            let who: Vec<&str> = rs.iter().map(|r| r.member.as_str()).collect();
            format!("p{p}@{o} by {who:?}")
        })
        .collect();
    assert!(
        dups.is_empty(),
        "{} records consumed more than once (first 20): {:?}",
        dups.len(),
        &dups[..dups.len().min(20)]
    );
    // Every produced record consumed, exactly where it was acknowledged.
    assert_eq!(got.len(), produced, "records consumed");
    for r in &got {
        let id = id_of(&r.value);
        assert_eq!(
            deliveries.get(&id),
            Some(&(r.partition, r.offset)),
            "record {} consumed by {} at p{}@{}",
            r.value,
            r.member,
            r.partition,
            r.offset
        );
    }
    let ids: BTreeSet<usize> = got.iter().map(|r| id_of(&r.value)).collect();
    assert_eq!(ids, (0..produced).collect::<BTreeSet<_>>(), "consumed ids");
    // Every member consumed, committed on every revoke, and ran the cooperative protocol.
    for (name, st) in [
        ("a", &a_state),
        ("b", &b_state),
        ("c", &c_state),
        ("d", &d_state),
    ] {
        let st = st.lock().unwrap();
        assert_eq!(st.protocol, Some("cooperative"), "member {name} protocol");
        assert!(
            st.errors.is_empty(),
            "member {name} poll errors {:?}",
            st.errors
        );
        for (offsets, result) in &st.commits {
            assert_eq!(
                result,
                &Ok(()),
                "member {name}: commit of {offsets:?} on revoke"
            );
        }
        assert!(
            got.iter().any(|r| r.member == name),
            "member {name} consumed nothing"
        );
    }
    eprintln!(
        "cooperative-sticky: {produced} records, {} commits on revoke",
        [&a_state, &b_state, &c_state, &d_state]
            .iter()
            .map(|s| s.lock().unwrap().commits.len())
            .sum::<usize>()
    );
}

// ---------------------------------------------------------------------------------------------
// The broker's view of a group (DescribeGroups through librdkafka)
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Eq)]
struct MemberView {
    member_id: String,
    client_id: String,
    client_host: String,
    subscription: Vec<String>,
    assignment: BTreeSet<i32>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct GroupView {
    state: String,
    protocol_type: String,
    protocol: String,
    members: Vec<MemberView>,
}

fn decode_subscription(b: &[u8]) -> Vec<String> {
    let mut buf = Bytes::copy_from_slice(b);
    let version = buf.get_i16();
    let s = ConsumerProtocolSubscription::decode(&mut buf, version).expect("subscription");
    s.topics.iter().map(|t| t.to_string()).collect()
}

fn decode_assignment(b: &[u8], topic: &str) -> BTreeSet<i32> {
    let mut buf = Bytes::copy_from_slice(b);
    let version = buf.get_i16();
    let a = ConsumerProtocolAssignment::decode(&mut buf, version).expect("assignment");
    let mut out = BTreeSet::new();
    for tp in &a.assigned_partitions {
        let t: &str = &tp.topic;
        assert_eq!(t, topic, "assigned topic");
        out.extend(tp.partitions.iter().copied());
    }
    out
}

fn describe(bootstrap: &str, group: &str, topic: &str) -> GroupView {
    let c = consumer(bootstrap, &[]);
    let list = c
        .fetch_group_list(Some(group), CALL_TIMEOUT)
        .expect("describe group");
    assert_eq!(list.groups().len(), 1, "one group described");
    let g = &list.groups()[0];
    assert_eq!(g.name(), group);
    let mut members: Vec<MemberView> = g
        .members()
        .iter()
        .map(|m| MemberView {
            member_id: m.id().to_string(),
            client_id: m.client_id().to_string(),
            client_host: m.client_host().to_string(),
            subscription: m.metadata().map(decode_subscription).unwrap_or_default(),
            assignment: m
                .assignment()
                .map(|a| decode_assignment(a, topic))
                .unwrap_or_default(),
        })
        .collect();
    members.sort_by(|a, b| a.member_id.cmp(&b.member_id));
    GroupView {
        state: g.state().to_string(),
        protocol_type: g.protocol_type().to_string(),
        protocol: g.protocol().to_string(),
        members,
    }
}

// ---------------------------------------------------------------------------------------------
// Static membership
// ---------------------------------------------------------------------------------------------

#[test]
fn static_member_restart_within_session_timeout_gets_its_partitions_back_without_rebalance() {
    const TOPIC: &str = "static";
    const GROUP: &str = "static-group";
    let broker = Broker::start();
    let bs = broker.bootstrap();
    create_topic(&bs, TOPIC, 4, &[]);
    let sink: Sink = Arc::default();
    let settings = |instance: &'static str| {
        [
            ("partition.assignment.strategy", "range"),
            ("group.instance.id", instance),
            ("session.timeout.ms", "10000"),
        ]
    };

    // s2 first, so that it is the leader and stays the leader.
    let s2 = Member::start(&bs, TOPIC, GROUP, "s2", &settings("i-2"), &sink);
    wait_until("s2 alone owns all partitions", SETTLE, || {
        balanced(&[&s2], 4)
    });
    let s1 = Member::start(&bs, TOPIC, GROUP, "s1", &settings("i-1"), &sink);
    let now = wait_until("s1 and s2 share the partitions", SETTLE, || {
        balanced(&[&s1, &s2], 4)
    });
    // librdkafka's range assignor orders static members by group.instance.id.
    assert_eq!(now["s1"], BTreeSet::from([0, 1]), "range: i-1 gets 0,1");
    assert_eq!(now["s2"], BTreeSet::from([2, 3]), "range: i-2 gets 2,3");
    let before = wait_until("the broker shows the group stable", SETTLE, || {
        let v = describe(&bs, GROUP, TOPIC);
        if v.state == "Stable" && v.members.iter().all(|m| !m.assignment.is_empty()) {
            Ok(v)
        } else {
            Err(format!("{v:?}"))
        }
    });
    assert_eq!(before.members.len(), 2, "{before:?}");
    let s2_events = s2.events();
    let s2_view = before
        .members
        .iter()
        .find(|m| m.client_id == "s2")
        .expect("s2 in the group")
        .clone();
    let s1_view = before
        .members
        .iter()
        .find(|m| m.client_id == "s1")
        .expect("s1 in the group")
        .clone();
    assert_eq!(s2_view.assignment, BTreeSet::from([2, 3]));
    assert_eq!(s1_view.assignment, BTreeSet::from([0, 1]));

    // Restart s1: a static member closes without LeaveGroup and rejoins with the same
    // group.instance.id well within the 10 s session timeout.
    let restarted_at = Instant::now();
    s1.stop();
    let s1b = Member::start(&bs, TOPIC, GROUP, "s1", &settings("i-1"), &sink);
    wait_until("restarted s1 gets its partitions back", SETTLE, || {
        let got = s1b.assigned();
        if got == BTreeSet::from([0, 1]) {
            Ok(())
        } else {
            Err(format!("s1 has {got:?}, s2 has {:?}", s2.assigned()))
        }
    });
    let rejoin = restarted_at.elapsed();
    assert!(
        rejoin < Duration::from_secs(10),
        "the static rejoin took {rejoin:?}, beyond the session timeout"
    );
    assert_eq!(
        s1b.events(),
        vec![Event::Assign(BTreeSet::from([0, 1]))],
        "restarted s1 is assigned its old partitions once"
    );

    // Records produced now reach both members where they were before.
    let p = producer(&bs, &[("acks", "all")]);
    for id in 0..40 {
        send(&p, TOPIC, i32::try_from(id % 4).unwrap(), id);
    }
    delivered(&p, 40);
    wait_until("both members consume the new records", SETTLE, || {
        let got = sink.lock().unwrap();
        let by: BTreeMap<&str, usize> = got.iter().fold(BTreeMap::new(), |mut m, r| {
            *m.entry(r.member.as_str()).or_default() += 1;
            m
        });
        if by.get("s1") == Some(&20) && by.get("s2") == Some(&20) {
            Ok(())
        } else {
            Err(format!("{by:?}"))
        }
    });
    for r in sink.lock().unwrap().iter() {
        let expected = if r.partition < 2 { "s1" } else { "s2" };
        assert_eq!(r.member, expected, "record on partition {}", r.partition);
    }

    // The broker kept s2 untouched and swapped s1's member id in place.
    let after = describe(&bs, GROUP, TOPIC);
    assert_eq!(after.state, "Stable", "{after:?}");
    assert_eq!(after.protocol, "range");
    assert_eq!(after.members.len(), 2, "{after:?}");
    let s2_after = after.members.iter().find(|m| m.client_id == "s2").unwrap();
    assert_eq!(s2_after, &s2_view, "s2 as the broker sees it");
    let s1_after = after.members.iter().find(|m| m.client_id == "s1").unwrap();
    assert_ne!(
        s1_after.member_id, s1_view.member_id,
        "a rejoining static member gets a new member id"
    );
    assert_eq!(s1_after.assignment, BTreeSet::from([0, 1]));

    // No rebalance: s2 never saw a revoke or an assignment after the restart. A rebalance
    // reaches s2 through its next heartbeat (every 100 ms), so also watch it for 20
    // heartbeat intervals: absence can only be asserted over a window.
    let quiet_until = Instant::now() + Duration::from_secs(2);
    while Instant::now() < quiet_until {
        assert_eq!(s2.events(), s2_events, "s2 saw a rebalance");
        assert_eq!(s2.assigned(), BTreeSet::from([2, 3]));
        thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        s1b.events(),
        vec![Event::Assign(BTreeSet::from([0, 1]))],
        "restarted s1 saw no further rebalance"
    );
    s1b.assert_clean();
    s2.assert_clean();
}

// ---------------------------------------------------------------------------------------------
// Range and roundrobin
// ---------------------------------------------------------------------------------------------

/// Two dynamic members on a 4-partition topic with `strategy`; returns the assignment of
/// the member whose member id sorts first and of the other one, checked against the
/// broker's DescribeGroups view.
fn two_member_split(strategy: &str) -> (BTreeSet<i32>, BTreeSet<i32>) {
    let topic = format!("split-{strategy}");
    let group = format!("split-{strategy}-group");
    let broker = Broker::start();
    let bs = broker.bootstrap();
    create_topic(&bs, &topic, 4, &[]);
    let sink: Sink = Arc::default();
    let settings = [("partition.assignment.strategy", strategy)];
    let x = Member::start(&bs, &topic, &group, "x", &settings, &sink);
    wait_until("x alone owns all partitions", SETTLE, || balanced(&[&x], 4));
    let y = Member::start(&bs, &topic, &group, "y", &settings, &sink);
    let now = wait_until("x and y share the partitions", SETTLE, || {
        balanced(&[&x, &y], 4)
    });
    let view = wait_until("the broker shows the group stable", SETTLE, || {
        let v = describe(&bs, &group, &topic);
        if v.state == "Stable" && v.members.iter().all(|m| !m.assignment.is_empty()) {
            Ok(v)
        } else {
            Err(format!("{v:?}"))
        }
    });
    assert_eq!(view.protocol_type, "consumer");
    assert_eq!(view.protocol, strategy);
    assert_eq!(view.members.len(), 2, "{view:?}");
    for m in &view.members {
        assert_eq!(m.client_host, "/127.0.0.1", "{m:?}");
        assert_eq!(m.subscription, vec![topic.clone()], "{m:?}");
        assert_eq!(
            m.assignment, now[&m.client_id],
            "the broker hands each member the leader's assignment"
        );
    }
    x.assert_clean();
    y.assert_clean();
    // `view.members` is sorted by member id, which is how librdkafka orders dynamic members.
    (
        view.members[0].assignment.clone(),
        view.members[1].assignment.clone(),
    )
}

#[test]
fn range_assignor_splits_four_partitions_into_two_ranges() {
    let (first, second) = two_member_split("range");
    assert_eq!(first, BTreeSet::from([0, 1]));
    assert_eq!(second, BTreeSet::from([2, 3]));
}

#[test]
fn roundrobin_assignor_deals_four_partitions_alternately() {
    let (first, second) = two_member_split("roundrobin");
    assert_eq!(first, BTreeSet::from([0, 2]));
    assert_eq!(second, BTreeSet::from([1, 3]));
}

// ---------------------------------------------------------------------------------------------
// Time to first message
// ---------------------------------------------------------------------------------------------

#[test]
fn lone_consumer_gets_its_first_record_within_one_second() {
    const TOPIC: &str = "first";
    let broker = Broker::start();
    let bs = broker.bootstrap();
    create_topic(&bs, TOPIC, 1, &[]);
    let p = producer(&bs, &[("acks", "all")]);
    send(&p, TOPIC, 0, 0);
    delivered(&p, 1);

    let c: BaseConsumer = group_config(&bs, "first-group", "lone", &[])
        .create()
        .expect("consumer");
    let started = Instant::now();
    c.subscribe(&[TOPIC]).expect("subscribe");
    let m = loop {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no record within 10 s"
        );
        match c.poll(Duration::from_millis(100)) {
            None => {}
            Some(Ok(m)) => break m,
            Some(Err(e)) => panic!("poll: {e}"),
        }
    };
    let took = started.elapsed();
    assert_eq!(m.payload(), Some(value(0).as_bytes()));
    assert_eq!((m.partition(), m.offset()), (0, 0));
    eprintln!("time to first message for a new single-member group: {took:?}");
    assert!(
        took < Duration::from_secs(1),
        "first record after {took:?} (group.initial.rebalance.delay.ms = 0)"
    );
}

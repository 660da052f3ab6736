//! A [`History`] written as Jepsen's history: one EDN operation map per line, in time
//! order, shaped like the operations of Jepsen's Kafka queue workload (`jepsen.tests.kafka`)
//! so that its checker can judge a Sluice run too. Keys are partitions, processes are
//! producer instances (a replaced producer is a new process, as after a crash in Jepsen),
//! then the assign-mode consumers, then the final reader.
//!
//! - a send: `:invoke` with `[[:send k v]]`, then `:ok` with `[[:send k [offset v]]]`
//!   (`nil` for an offset the client acknowledged without knowing it),
//!   `:fail`, or `:info` (indeterminate; a send never reported completes at the end);
//! - a transaction: the same as one `:txn` operation of all its sends (`:ok` committed,
//!   `:fail` aborted, `:info` unknown);
//! - a consumer's (re)assignment (its own, or its group's rebalance): `:assign` of its
//!   partitions, invoked and completed at once;
//! - the records one consumer polled within [`POLL_WINDOW_NS`]: `:invoke` `[[:poll]]` at
//!   the first, then `:ok` `[[:poll {k [[offset v] …]}]]` at the last;
//! - the final read: an `:assign` and one `:poll` holding every partition's records.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::history::{History, Offset, Partition, PollEvent, Send, SendOutcome, Value};

/// How long one poll operation gathers a consumer's records: the consumer polls one record
/// at a time, and Jepsen's polls return what arrived within a poll timeout; 100 ms is the
/// workload consumer's own poll timeout.
pub const POLL_WINDOW_NS: u64 = 100_000_000;

/// A record a consumer polled: (partition, offset, value, when).
type Polled = (Partition, Offset, Value, u64);

/// The records one consumer polled since its last operation, and when the first came.
struct PollRun {
    invoked: u64,
    records: Vec<Polled>,
}

/// One operation before it is numbered: (time, order of creation) sorts a history.
struct Op {
    time: u64,
    process: usize,
    kind: &'static str,
    f: &'static str,
    value: String,
    error: Option<String>,
}

/// The history as EDN lines, each ending in a newline.
pub fn to_edn(history: &History) -> String {
    let mut ops = Vec::new();
    let producers = sends(history, &mut ops);
    let consumers = polls(history, producers, &mut ops);
    final_read(history, producers + consumers, &mut ops);
    // A stable sort keeps each process's invocation before its completion at equal times.
    ops.sort_by_key(|op| op.time);
    let mut out = String::new();
    for (index, op) in ops.iter().enumerate() {
        let _ = write!(
            out,
            "{{:index {index}, :time {}, :type {}, :process {}, :f {}, :value {}",
            op.time, op.kind, op.process, op.f, op.value
        );
        if let Some(error) = &op.error {
            let _ = write!(out, ", :error {}", edn_string(error));
        }
        out.push_str("}\n");
    }
    out
}

/// Every send's invocation and completion, a transaction's sends as one `:txn`
/// operation; returns how many producer processes there are.
fn sends(history: &History, ops: &mut Vec<Op>) -> usize {
    let end = history.final_read_ns;
    let mut transactions: BTreeMap<u64, Vec<&Send>> = BTreeMap::new();
    for send in &history.sends {
        match send.txn {
            Some(txn) => transactions.entry(txn).or_default().push(send),
            None => push_sends(":send", &[send], end, ops),
        }
    }
    for sends in transactions.values() {
        push_sends(":txn", sends, end, ops);
    }
    history
        .sends
        .iter()
        .map(|s| s.producer + 1)
        .max()
        .unwrap_or(0)
}

/// One operation `f` of `sends` (one producer's, ended together): invoked with the first,
/// completed with the last, its type from the first's outcome (a transaction's sends share
/// theirs).
fn push_sends(f: &'static str, sends: &[&Send], end: u64, ops: &mut Vec<Op>) {
    let Some(first) = sends.first() else {
        return;
    };
    let micro_ops = |completed: bool| {
        let ops: Vec<String> = sends
            .iter()
            .map(|s| {
                let (k, v) = (s.partition, s.value);
                match &s.outcome {
                    SendOutcome::Acked(Some(offset)) if completed => {
                        format!("[:send {k} [{offset} {v}]]")
                    }
                    SendOutcome::Acked(None) if completed => format!("[:send {k} [nil {v}]]"),
                    _ => format!("[:send {k} {v}]"),
                }
            })
            .collect();
        format!("[{}]", ops.join(" "))
    };
    let invoked = sends.iter().map(|s| s.span.invoked_ns).min().unwrap_or(0);
    let completed = sends
        .iter()
        .map(|s| s.span.completed_ns.unwrap_or(end))
        .max()
        .unwrap_or(end);
    ops.push(Op {
        time: invoked,
        process: first.producer,
        kind: ":invoke",
        f,
        value: micro_ops(false),
        error: None,
    });
    let (kind, error) = match &first.outcome {
        SendOutcome::Acked(_) => (":ok", None),
        SendOutcome::Failed(e) => (":fail", Some(e.clone())),
        SendOutcome::Indeterminate(e) => (":info", Some(e.clone())),
    };
    ops.push(Op {
        time: completed,
        process: first.producer,
        kind,
        f,
        value: micro_ops(kind == ":ok"),
        error,
    });
}

/// Every consumer's assignments and polled records, as operations of processes numbered
/// from `first`; returns how many consumers there are.
fn polls(history: &History, first: usize, ops: &mut Vec<Op>) -> usize {
    let mut open: BTreeMap<usize, PollRun> = BTreeMap::new();
    let mut consumers = 0;
    for event in &history.polls {
        match *event {
            PollEvent::Reassigned {
                consumer,
                at_ns,
                ref partitions,
            } => {
                consumers = consumers.max(consumer + 1);
                if let Some(run) = open.remove(&consumer) {
                    poll_op(first + consumer, run, ops);
                }
                assign_op(first + consumer, at_ns, partitions, ops);
            }
            PollEvent::Record {
                consumer,
                partition,
                offset,
                value,
                at_ns,
            } => {
                consumers = consumers.max(consumer + 1);
                let window_over = open
                    .get(&consumer)
                    .is_some_and(|run| at_ns.saturating_sub(run.invoked) >= POLL_WINDOW_NS);
                if window_over && let Some(run) = open.remove(&consumer) {
                    poll_op(first + consumer, run, ops);
                }
                open.entry(consumer)
                    .or_insert_with(|| PollRun {
                        invoked: at_ns,
                        records: Vec::new(),
                    })
                    .records
                    .push((partition, offset, value, at_ns));
            }
        }
    }
    for (consumer, run) in open {
        poll_op(first + consumer, run, ops);
    }
    consumers
}

/// One poll of the records in `run`, completed when its last record came.
fn poll_op(process: usize, run: PollRun, ops: &mut Vec<Op>) {
    let PollRun { invoked, records } = run;
    let completed = records.last().map_or(invoked, |r| r.3);
    let mut by_partition: BTreeMap<Partition, Vec<(Offset, Value)>> = BTreeMap::new();
    for (partition, offset, value, _) in records {
        by_partition
            .entry(partition)
            .or_default()
            .push((offset, value));
    }
    push_poll(process, invoked, completed, &by_partition, ops);
}

fn push_poll(
    process: usize,
    invoked: u64,
    completed: u64,
    records: &BTreeMap<Partition, Vec<(Offset, Value)>>,
    ops: &mut Vec<Op>,
) {
    ops.push(Op {
        time: invoked,
        process,
        kind: ":invoke",
        f: ":poll",
        value: "[[:poll]]".into(),
        error: None,
    });
    let mut value = String::from("[[:poll {");
    for (i, (partition, pairs)) in records.iter().enumerate() {
        if i > 0 {
            value.push_str(", ");
        }
        let _ = write!(value, "{partition} [");
        for (j, (offset, v)) in pairs.iter().enumerate() {
            if j > 0 {
                value.push(' ');
            }
            let _ = write!(value, "[{offset} {v}]");
        }
        value.push(']');
    }
    value.push_str("}]]");
    ops.push(Op {
        time: completed,
        process,
        kind: ":ok",
        f: ":poll",
        value,
        error: None,
    });
}

fn assign_op(process: usize, at: u64, partitions: &[Partition], ops: &mut Vec<Op>) {
    let keys: Vec<String> = partitions.iter().map(ToString::to_string).collect();
    let value = format!("[{}]", keys.join(" "));
    for kind in [":invoke", ":ok"] {
        ops.push(Op {
            time: at,
            process,
            kind,
            f: ":assign",
            value: value.clone(),
            error: None,
        });
    }
}

/// The final read as one assignment and one poll by its own process, at the end.
fn final_read(history: &History, process: usize, ops: &mut Vec<Op>) {
    let at = history.final_read_ns;
    let partitions: Vec<Partition> = history.final_read.keys().copied().collect();
    assign_op(process, at, &partitions, ops);
    push_poll(process, at, at, &history.final_read, ops);
}

/// `text` as an EDN string literal.
fn edn_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::Span;

    fn send(producer: usize, value: Value, outcome: SendOutcome, span: (u64, Option<u64>)) -> Send {
        Send {
            producer,
            partition: 1,
            value,
            outcome,
            span: Span {
                invoked_ns: span.0,
                completed_ns: span.1,
            },
            txn: None,
        }
    }

    #[test]
    fn a_history_becomes_jepsen_operations_in_time_order() {
        let mut h = History::default();
        h.sends
            .push(send(0, 7, SendOutcome::Acked(Some(0)), (10, Some(40))));
        h.sends.push(send(
            1,
            8,
            SendOutcome::Indeterminate("Local: Message \"timed\" out".into()),
            (20, None),
        ));
        h.sends.push(send(
            0,
            9,
            SendOutcome::Failed("Local: Queue full".into()),
            (45, Some(46)),
        ));
        h.polls.push(PollEvent::Reassigned {
            consumer: 0,
            at_ns: 5,
            partitions: vec![0, 1],
        });
        for (offset, value, at_ns) in [(0, 7, 50), (1, 8, 60)] {
            h.polls.push(PollEvent::Record {
                consumer: 0,
                partition: 1,
                offset,
                value,
                at_ns,
            });
        }
        h.final_read.insert(0, vec![]);
        h.final_read.insert(1, vec![(0, 7), (1, 8)]);
        h.final_read_ns = 100;

        let expected = [
            "{:index 0, :time 5, :type :invoke, :process 2, :f :assign, :value [0 1]}",
            "{:index 1, :time 5, :type :ok, :process 2, :f :assign, :value [0 1]}",
            "{:index 2, :time 10, :type :invoke, :process 0, :f :send, :value [[:send 1 7]]}",
            "{:index 3, :time 20, :type :invoke, :process 1, :f :send, :value [[:send 1 8]]}",
            "{:index 4, :time 40, :type :ok, :process 0, :f :send, :value [[:send 1 [0 7]]]}",
            "{:index 5, :time 45, :type :invoke, :process 0, :f :send, :value [[:send 1 9]]}",
            "{:index 6, :time 46, :type :fail, :process 0, :f :send, :value [[:send 1 9]], :error \"Local: Queue full\"}",
            "{:index 7, :time 50, :type :invoke, :process 2, :f :poll, :value [[:poll]]}",
            "{:index 8, :time 60, :type :ok, :process 2, :f :poll, :value [[:poll {1 [[0 7] [1 8]]}]]}",
            "{:index 9, :time 100, :type :info, :process 1, :f :send, :value [[:send 1 8]], :error \"Local: Message \\\"timed\\\" out\"}",
            "{:index 10, :time 100, :type :invoke, :process 3, :f :assign, :value [0 1]}",
            "{:index 11, :time 100, :type :ok, :process 3, :f :assign, :value [0 1]}",
            "{:index 12, :time 100, :type :invoke, :process 3, :f :poll, :value [[:poll]]}",
            "{:index 13, :time 100, :type :ok, :process 3, :f :poll, :value [[:poll {0 [], 1 [[0 7] [1 8]]}]]}",
        ];
        let edn = to_edn(&h);
        let lines: Vec<&str> = edn.lines().collect();
        assert_eq!(lines, expected);
        assert!(edn.ends_with("}\n"));
    }

    #[test]
    fn a_transaction_s_sends_are_one_txn_operation() {
        let mut h = History::default();
        let in_txn = |txn, value, outcome: SendOutcome, span| Send {
            txn: Some(txn),
            ..send(0, value, outcome, span)
        };
        // Two transactions of producer 0, their sends interleaved with producer 1's send.
        h.sends
            .push(in_txn(0, 7, SendOutcome::Acked(Some(3)), (10, Some(30))));
        h.sends
            .push(send(1, 9, SendOutcome::Acked(Some(4)), (12, Some(14))));
        h.sends.push(Send {
            partition: 2,
            ..in_txn(0, 8, SendOutcome::Acked(Some(0)), (11, Some(31)))
        });
        let aborted = SendOutcome::Failed("aborted by the workload".into());
        h.sends.push(in_txn(1, 10, aborted.clone(), (40, Some(50))));
        h.sends.push(in_txn(1, 11, aborted, (41, Some(50))));
        h.final_read_ns = 60;

        let lines: Vec<String> = to_edn(&h)
            .lines()
            .filter(|l| l.contains(":f :txn"))
            .map(str::to_string)
            .collect();
        assert_eq!(
            lines,
            [
                "{:index 0, :time 10, :type :invoke, :process 0, :f :txn, :value [[:send 1 7] [:send 2 8]]}",
                "{:index 3, :time 31, :type :ok, :process 0, :f :txn, :value [[:send 1 [3 7]] [:send 2 [0 8]]]}",
                "{:index 4, :time 40, :type :invoke, :process 0, :f :txn, :value [[:send 1 10] [:send 1 11]]}",
                "{:index 5, :time 50, :type :fail, :process 0, :f :txn, :value [[:send 1 10] [:send 1 11]], :error \"aborted by the workload\"}",
            ]
        );
        // The plain send stays a :send of its own.
        assert!(to_edn(&h).contains(
            "{:index 1, :time 12, :type :invoke, :process 1, :f :send, :value [[:send 1 9]]}"
        ));
    }

    #[test]
    fn a_reassignment_closes_the_consumer_s_poll_before_it() {
        let mut h = History::default();
        for (offset, at_ns) in [(0, 1), (1, 2)] {
            h.polls.push(PollEvent::Record {
                consumer: 0,
                partition: 0,
                offset,
                value: offset as Value,
                at_ns,
            });
            if offset == 0 {
                h.polls.push(PollEvent::Reassigned {
                    consumer: 0,
                    at_ns: 1,
                    partitions: vec![0],
                });
            }
        }
        h.final_read.insert(0, vec![(0, 0), (1, 1)]);
        h.final_read_ns = 3;
        let edn = to_edn(&h);
        let polls: Vec<&str> = edn
            .lines()
            .filter(|l| l.contains(":process 0, :f :poll") && l.contains(":ok"))
            .collect();
        assert_eq!(polls.len(), 2, "{edn}");
        assert!(polls[0].ends_with(":value [[:poll {0 [[0 0]]}]]}"), "{edn}");
        assert!(polls[1].ends_with(":value [[:poll {0 [[1 1]]}]]}"), "{edn}");
    }

    #[test]
    fn a_consumer_s_records_are_one_poll_per_window() {
        let mut h = History::default();
        let at = [0, POLL_WINDOW_NS - 1, POLL_WINDOW_NS, POLL_WINDOW_NS + 5];
        for (offset, at_ns) in at.into_iter().enumerate() {
            h.polls.push(PollEvent::Record {
                consumer: 0,
                partition: 0,
                offset: offset as Offset,
                value: offset as Value,
                at_ns,
            });
        }
        h.final_read.insert(0, vec![]);
        h.final_read_ns = 2 * POLL_WINDOW_NS;
        let edn = to_edn(&h);
        let polls: Vec<&str> = edn
            .lines()
            .filter(|l| l.contains(":process 0, :f :poll"))
            .collect();
        assert_eq!(
            polls,
            [
                "{:index 0, :time 0, :type :invoke, :process 0, :f :poll, :value [[:poll]]}",
                "{:index 1, :time 99999999, :type :ok, :process 0, :f :poll, :value [[:poll {0 [[0 0] [1 1]]}]]}",
                "{:index 2, :time 100000000, :type :invoke, :process 0, :f :poll, :value [[:poll]]}",
                "{:index 3, :time 100000005, :type :ok, :process 0, :f :poll, :value [[:poll {0 [[2 2] [3 3]]}]]}",
            ]
        );
    }
}

//! The checker: the analysis of Jepsen's Kafka queue workload (`jepsen.tests.kafka`) over a
//! [`History`]. The partition's log, as the final read after every fault healed shows it,
//! is the version order; every acknowledgement and every poll must agree with it.
//!
//! - lost-write: an acknowledged value is not in the final read.
//! - duplicate: a value is in the final read more than once.
//! - inconsistent-offsets: one offset holds two values (by acknowledgements, polls and the
//!   final read together), or a value was seen at two offsets without being duplicated in
//!   the log.
//! - G1a: a value whose send failed definitively was read (an indeterminate send, which an
//!   idempotent producer's timed-out send is, may legitimately have been written).
//! - phantom-read: a value read that no producer ever sent.
//! - nonmonotonic-send: one producer's acknowledged sends to a partition are not at
//!   increasing offsets in the order it issued them.
//! - nonmonotonic-poll: one consumer read a partition at an offset not after the one it
//!   read before (with no reassignment between).
//! - poll-skip: one consumer read two records of a partition one after the other while the
//!   log holds records between them.
//! - panic: a node's log reports a panic.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use crate::history::{History, Offset, Partition, PollEvent, SendOutcome, Value};

/// One thing that should not have happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Anomaly {
    LostWrite {
        partition: Partition,
        value: Value,
        /// None: acknowledged without an offset.
        acked_at: Option<Offset>,
    },
    Duplicate {
        partition: Partition,
        value: Value,
        offsets: Vec<Offset>,
    },
    /// One offset, several values.
    OffsetValues {
        partition: Partition,
        offset: Offset,
        values: Vec<Value>,
    },
    /// One value, several offsets (not duplicated in the log).
    ValueOffsets {
        partition: Partition,
        value: Value,
        offsets: Vec<Offset>,
    },
    G1a {
        partition: Partition,
        value: Value,
        error: String,
    },
    PhantomRead {
        partition: Partition,
        offset: Offset,
        value: Value,
    },
    NonmonotonicSend {
        producer: usize,
        partition: Partition,
        previous: Offset,
        next: Offset,
    },
    NonmonotonicPoll {
        consumer: usize,
        partition: Partition,
        previous: Offset,
        next: Offset,
    },
    PollSkip {
        consumer: usize,
        partition: Partition,
        previous: Offset,
        next: Offset,
        skipped: Vec<Value>,
    },
    Panic {
        node: String,
        line: String,
    },
    /// The harness could not bring the cluster back to health or finish the final read.
    Unrecovered {
        reason: String,
    },
}

impl Anomaly {
    /// The anomaly's name, as Jepsen spells it.
    pub fn kind(&self) -> &'static str {
        match self {
            Anomaly::LostWrite { .. } => "lost-write",
            Anomaly::Duplicate { .. } => "duplicate",
            Anomaly::OffsetValues { .. } | Anomaly::ValueOffsets { .. } => "inconsistent-offsets",
            Anomaly::G1a { .. } => "G1a",
            Anomaly::PhantomRead { .. } => "phantom-read",
            Anomaly::NonmonotonicSend { .. } => "nonmonotonic-send",
            Anomaly::NonmonotonicPoll { .. } => "nonmonotonic-poll",
            Anomaly::PollSkip { .. } => "poll-skip",
            Anomaly::Panic { .. } => "panic",
            Anomaly::Unrecovered { .. } => "unrecovered",
        }
    }
}

impl fmt::Display for Anomaly {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Anomaly::LostWrite {
                partition,
                value,
                acked_at,
            } => match acked_at {
                Some(offset) => write!(
                    f,
                    "partition {partition}: value {value} acknowledged at offset {offset} is not in the log"
                ),
                None => write!(
                    f,
                    "partition {partition}: value {value} acknowledged (offset unknown) is not in the log"
                ),
            },
            Anomaly::Duplicate {
                partition,
                value,
                offsets,
            } => write!(
                f,
                "partition {partition}: value {value} is in the log at offsets {offsets:?}"
            ),
            Anomaly::OffsetValues {
                partition,
                offset,
                values,
            } => write!(
                f,
                "partition {partition}: offset {offset} was seen holding values {values:?}"
            ),
            Anomaly::ValueOffsets {
                partition,
                value,
                offsets,
            } => write!(
                f,
                "partition {partition}: value {value} was seen at offsets {offsets:?}"
            ),
            Anomaly::G1a {
                partition,
                value,
                error,
            } => write!(
                f,
                "partition {partition}: value {value} was read though its send failed ({error})"
            ),
            Anomaly::PhantomRead {
                partition,
                offset,
                value,
            } => write!(
                f,
                "partition {partition}: value {value} at offset {offset} was never sent"
            ),
            Anomaly::NonmonotonicSend {
                producer,
                partition,
                previous,
                next,
            } => write!(
                f,
                "producer {producer}, partition {partition}: a send acknowledged at offset {next} after one at {previous}"
            ),
            Anomaly::NonmonotonicPoll {
                consumer,
                partition,
                previous,
                next,
            } => write!(
                f,
                "consumer {consumer}, partition {partition}: read offset {next} after offset {previous}"
            ),
            Anomaly::PollSkip {
                consumer,
                partition,
                previous,
                next,
                skipped,
            } => write!(
                f,
                "consumer {consumer}, partition {partition}: read offset {next} right after {previous}, skipping values {skipped:?}"
            ),
            Anomaly::Panic { node, line } => write!(f, "{node}: {line}"),
            Anomaly::Unrecovered { reason } => f.write_str(reason),
        }
    }
}

/// Every anomaly in `history`, grouped by kind in the order of the module docs.
pub fn check(history: &History) -> Vec<Anomaly> {
    let log = Log::of(history);
    let mut anomalies = Vec::new();
    anomalies.extend(lost_writes(history, &log));
    anomalies.extend(duplicates(&log));
    anomalies.extend(inconsistent_offsets(history, &log));
    anomalies.extend(failed_reads(history));
    anomalies.extend(phantom_reads(history));
    anomalies.extend(nonmonotonic_sends(history));
    anomalies.extend(poll_order(history, &log));
    anomalies.extend(history.panics.iter().map(|(node, line)| Anomaly::Panic {
        node: node.clone(),
        line: line.clone(),
    }));
    anomalies
}

/// The final read, indexed.
struct Log<'a> {
    /// Offsets of each (partition, value) in the final read.
    offsets_of: BTreeMap<(Partition, Value), Vec<Offset>>,
    by_partition: &'a BTreeMap<Partition, Vec<(Offset, Value)>>,
}

impl<'a> Log<'a> {
    fn of(history: &'a History) -> Log<'a> {
        let mut offsets_of: BTreeMap<(Partition, Value), Vec<Offset>> = BTreeMap::new();
        for (partition, records) in &history.final_read {
            for (offset, value) in records {
                offsets_of
                    .entry((*partition, *value))
                    .or_default()
                    .push(*offset);
            }
        }
        Log {
            offsets_of,
            by_partition: &history.final_read,
        }
    }

    fn contains(&self, partition: Partition, value: Value) -> bool {
        self.offsets_of.contains_key(&(partition, value))
    }

    /// The values the log holds strictly between two offsets of `partition`.
    fn between(&self, partition: Partition, after: Offset, before: Offset) -> Vec<Value> {
        self.by_partition
            .get(&partition)
            .map(|records| {
                records
                    .iter()
                    .filter(|(offset, _)| *offset > after && *offset < before)
                    .map(|(_, value)| *value)
                    .collect()
            })
            .unwrap_or_default()
    }
}

fn lost_writes(history: &History, log: &Log) -> Vec<Anomaly> {
    history
        .sends
        .iter()
        .filter_map(|send| match send.outcome {
            SendOutcome::Acked(acked_at) if !log.contains(send.partition, send.value) => {
                Some(Anomaly::LostWrite {
                    partition: send.partition,
                    value: send.value,
                    acked_at,
                })
            }
            _ => None,
        })
        .collect()
}

fn duplicates(log: &Log) -> Vec<Anomaly> {
    log.offsets_of
        .iter()
        .filter(|(_, offsets)| offsets.len() > 1)
        .map(|((partition, value), offsets)| Anomaly::Duplicate {
            partition: *partition,
            value: *value,
            offsets: offsets.clone(),
        })
        .collect()
}

/// Every (partition, offset, value) read: by polls and by the final read.
fn reads(history: &History) -> impl Iterator<Item = (Partition, Offset, Value)> + '_ {
    let polled = history.polls.iter().filter_map(|p| match p {
        PollEvent::Record {
            partition,
            offset,
            value,
            ..
        } => Some((*partition, *offset, *value)),
        PollEvent::Reassigned { .. } => None,
    });
    let logged = history
        .final_read
        .iter()
        .flat_map(|(p, records)| records.iter().map(move |(o, v)| (*p, *o, *v)));
    polled.chain(logged)
}

/// Every (partition, offset, value) anyone saw: acknowledgements and reads.
fn observations(history: &History) -> impl Iterator<Item = (Partition, Offset, Value)> + '_ {
    let acked = history.sends.iter().filter_map(|s| match s.outcome {
        SendOutcome::Acked(Some(offset)) => Some((s.partition, offset, s.value)),
        _ => None,
    });
    acked.chain(reads(history))
}

fn inconsistent_offsets(history: &History, log: &Log) -> Vec<Anomaly> {
    let mut values_at: BTreeMap<(Partition, Offset), BTreeSet<Value>> = BTreeMap::new();
    let mut offsets_of: BTreeMap<(Partition, Value), BTreeSet<Offset>> = BTreeMap::new();
    for (partition, offset, value) in observations(history) {
        values_at
            .entry((partition, offset))
            .or_default()
            .insert(value);
        offsets_of
            .entry((partition, value))
            .or_default()
            .insert(offset);
    }
    let by_offset = values_at
        .into_iter()
        .filter(|(_, values)| values.len() > 1)
        .map(|((partition, offset), values)| Anomaly::OffsetValues {
            partition,
            offset,
            values: values.into_iter().collect(),
        });
    // A value the log holds twice is reported as a duplicate already.
    let by_value = offsets_of
        .into_iter()
        .filter(|((partition, value), offsets)| {
            offsets.len() > 1
                && log
                    .offsets_of
                    .get(&(*partition, *value))
                    .is_none_or(|o| o.len() < 2)
        })
        .map(|((partition, value), offsets)| Anomaly::ValueOffsets {
            partition,
            value,
            offsets: offsets.into_iter().collect(),
        });
    by_offset.chain(by_value).collect()
}

fn failed_reads(history: &History) -> Vec<Anomaly> {
    let failed: Vec<_> = history
        .sends
        .iter()
        .filter_map(|s| match &s.outcome {
            SendOutcome::Failed(error) => Some((s.partition, s.value, error)),
            _ => None,
        })
        .collect();
    if failed.is_empty() {
        return Vec::new();
    }
    let read: BTreeSet<(Partition, Value)> = reads(history).map(|(p, _, v)| (p, v)).collect();
    failed
        .into_iter()
        .filter(|(partition, value, _)| read.contains(&(*partition, *value)))
        .map(|(partition, value, error)| Anomaly::G1a {
            partition,
            value,
            error: error.clone(),
        })
        .collect()
}

fn phantom_reads(history: &History) -> Vec<Anomaly> {
    let sent: BTreeSet<(Partition, Value)> = history
        .sends
        .iter()
        .map(|s| (s.partition, s.value))
        .collect();
    let unsent: BTreeSet<(Partition, Offset, Value)> = reads(history)
        .filter(|(partition, _, value)| !sent.contains(&(*partition, *value)))
        .collect();
    unsent
        .into_iter()
        .map(|(partition, offset, value)| Anomaly::PhantomRead {
            partition,
            offset,
            value,
        })
        .collect()
}

fn nonmonotonic_sends(history: &History) -> Vec<Anomaly> {
    let mut last: BTreeMap<(usize, Partition), Offset> = BTreeMap::new();
    let mut anomalies = Vec::new();
    for send in &history.sends {
        // An acknowledgement without an offset says nothing about order.
        let SendOutcome::Acked(Some(offset)) = send.outcome else {
            continue;
        };
        let key = (send.producer, send.partition);
        if let Some(previous) = last.insert(key, offset)
            && offset <= previous
        {
            anomalies.push(Anomaly::NonmonotonicSend {
                producer: send.producer,
                partition: send.partition,
                previous,
                next: offset,
            });
        }
    }
    anomalies
}

fn poll_order(history: &History, log: &Log) -> Vec<Anomaly> {
    let mut last: BTreeMap<(usize, Partition), Offset> = BTreeMap::new();
    let mut anomalies = Vec::new();
    for event in &history.polls {
        match event {
            PollEvent::Reassigned { consumer, .. } => last.retain(|(c, _), _| c != consumer),
            PollEvent::Record {
                consumer,
                partition,
                offset,
                ..
            } => {
                let Some(previous) = last.insert((*consumer, *partition), *offset) else {
                    continue;
                };
                if *offset <= previous {
                    anomalies.push(Anomaly::NonmonotonicPoll {
                        consumer: *consumer,
                        partition: *partition,
                        previous,
                        next: *offset,
                    });
                    continue;
                }
                let skipped = log.between(*partition, previous, *offset);
                if !skipped.is_empty() {
                    anomalies.push(Anomaly::PollSkip {
                        consumer: *consumer,
                        partition: *partition,
                        previous,
                        next: *offset,
                        skipped,
                    });
                }
            }
        }
    }
    anomalies
}

/// Anomaly counts by kind, and the first few of each kind, for the end of a run.
pub fn summarize(anomalies: &[Anomaly], examples: usize) -> String {
    let mut by_kind: BTreeMap<&str, Vec<&Anomaly>> = BTreeMap::new();
    for a in anomalies {
        by_kind.entry(a.kind()).or_default().push(a);
    }
    let mut out = String::new();
    for (kind, list) in by_kind {
        out.push_str(&format!("{kind}: {}\n", list.len()));
        for a in list.iter().take(examples) {
            out.push_str(&format!("  {a}\n"));
        }
        if list.len() > examples {
            out.push_str(&format!("  … and {} more\n", list.len() - examples));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{Send, Span};

    fn acked(producer: usize, partition: Partition, value: Value, offset: Offset) -> Send {
        Send {
            producer,
            partition,
            value,
            outcome: SendOutcome::Acked(Some(offset)),
            span: Span::default(),
            txn: None,
        }
    }

    fn record(consumer: usize, partition: Partition, offset: Offset, value: Value) -> PollEvent {
        PollEvent::Record {
            consumer,
            partition,
            offset,
            value,
            at_ns: 0,
        }
    }

    /// Values 1..=n acknowledged at offsets 0..n of partition 0 by producer 0, the log
    /// holding exactly them, and consumer 0 polling all of them in order: a valid history.
    fn valid(n: u64) -> History {
        let mut h = History::default();
        let mut log = Vec::new();
        for value in 1..=n {
            let offset = value as Offset - 1;
            h.sends.push(acked(0, 0, value, offset));
            h.polls.push(record(0, 0, offset, value));
            log.push((offset, value));
        }
        h.final_read.insert(0, log);
        h
    }

    #[test]
    fn a_valid_history_has_no_anomaly_and_counts_its_operations() {
        let mut h = valid(5);
        h.sends.push(Send {
            producer: 1,
            partition: 0,
            value: 99,
            outcome: SendOutcome::Indeterminate("Message timed out".into()),
            span: Span::default(),
            txn: None,
        });
        assert_eq!(check(&h), vec![]);
        assert_eq!(h.operations(), 6 + 5 + 1);
    }

    #[test]
    fn an_indeterminate_send_may_be_read() {
        let mut h = valid(2);
        h.sends.push(Send {
            producer: 0,
            partition: 0,
            value: 3,
            outcome: SendOutcome::Indeterminate("Message timed out".into()),
            span: Span::default(),
            txn: None,
        });
        h.final_read.entry(0).or_default().push((2, 3));
        assert_eq!(check(&h), vec![]);
    }

    #[test]
    fn an_acknowledged_value_missing_from_the_log_is_a_lost_write() {
        let mut h = valid(3);
        h.final_read.insert(0, vec![(0, 1), (1, 2)]);
        h.polls.pop();
        assert_eq!(
            check(&h),
            vec![Anomaly::LostWrite {
                partition: 0,
                value: 3,
                acked_at: Some(2)
            }]
        );
    }

    /// librdkafka's implicit acknowledgements carry no offset: such a value must still be
    /// in the log, but says nothing about offsets or their order.
    #[test]
    fn an_acknowledgement_without_an_offset_is_checked_for_loss_only() {
        let mut h = valid(4);
        h.sends[1].outcome = SendOutcome::Acked(None);
        h.sends[2].outcome = SendOutcome::Acked(None);
        assert_eq!(check(&h), vec![]);

        h.final_read.insert(0, vec![(0, 1), (2, 3), (3, 4)]);
        h.polls
            .retain(|p| !matches!(p, PollEvent::Record { value: 2, .. }));
        let anomalies = check(&h);
        assert_eq!(
            anomalies,
            vec![Anomaly::LostWrite {
                partition: 0,
                value: 2,
                acked_at: None
            }]
        );
        assert_eq!(
            anomalies[0].to_string(),
            "partition 0: value 2 acknowledged (offset unknown) is not in the log"
        );
    }

    #[test]
    fn a_value_twice_in_the_log_is_a_duplicate() {
        let mut h = valid(2);
        h.final_read.entry(0).or_default().push((2, 2));
        let anomalies = check(&h);
        assert_eq!(
            anomalies,
            vec![Anomaly::Duplicate {
                partition: 0,
                value: 2,
                offsets: vec![1, 2]
            }]
        );
        assert_eq!(anomalies[0].kind(), "duplicate");
    }

    #[test]
    fn one_offset_with_two_values_is_inconsistent() {
        let mut h = valid(2);
        // A consumer saw value 7 (sent, indeterminate) at offset 1, where the log has 2.
        h.sends.push(Send {
            producer: 1,
            partition: 0,
            value: 7,
            outcome: SendOutcome::Indeterminate("timed out".into()),
            span: Span::default(),
            txn: None,
        });
        h.polls.push(PollEvent::Reassigned {
            consumer: 1,
            at_ns: 0,
            partitions: vec![0],
        });
        h.polls.push(record(1, 0, 1, 7));
        let anomalies = check(&h);
        assert_eq!(
            anomalies,
            vec![Anomaly::OffsetValues {
                partition: 0,
                offset: 1,
                values: vec![2, 7]
            },]
        );
        assert_eq!(anomalies[0].kind(), "inconsistent-offsets");
    }

    #[test]
    fn one_value_acknowledged_at_one_offset_and_logged_at_another_is_inconsistent() {
        let mut h = valid(3);
        h.sends[2].outcome = SendOutcome::Acked(Some(5));
        let anomalies = check(&h);
        assert_eq!(
            anomalies,
            vec![Anomaly::ValueOffsets {
                partition: 0,
                value: 3,
                offsets: vec![2, 5]
            }]
        );
        assert_eq!(anomalies[0].kind(), "inconsistent-offsets");
    }

    #[test]
    fn reading_a_value_whose_send_failed_definitively_is_g1a() {
        let mut h = valid(2);
        h.sends.push(Send {
            producer: 0,
            partition: 0,
            value: 3,
            outcome: SendOutcome::Failed("queue full".into()),
            span: Span::default(),
            txn: None,
        });
        h.final_read.entry(0).or_default().push((2, 3));
        let anomalies = check(&h);
        assert_eq!(
            anomalies,
            vec![Anomaly::G1a {
                partition: 0,
                value: 3,
                error: "queue full".into()
            }]
        );
        assert_eq!(anomalies[0].kind(), "G1a");
    }

    #[test]
    fn a_failed_send_nobody_read_is_fine() {
        let mut h = valid(2);
        h.sends.push(Send {
            producer: 0,
            partition: 0,
            value: 3,
            outcome: SendOutcome::Failed("queue full".into()),
            span: Span::default(),
            txn: None,
        });
        assert_eq!(check(&h), vec![]);
    }

    #[test]
    fn a_value_nobody_sent_is_a_phantom_read() {
        let mut h = valid(2);
        h.final_read.entry(0).or_default().push((2, 42));
        assert_eq!(
            check(&h),
            vec![Anomaly::PhantomRead {
                partition: 0,
                offset: 2,
                value: 42
            }]
        );
    }

    #[test]
    fn acknowledgements_going_backwards_for_one_producer_are_a_nonmonotonic_send() {
        let mut h = History::default();
        // Producer 0 sent 1 then 2 and was told 2 went first; producer 1's send in between
        // does not matter, and neither does another partition.
        h.sends.push(acked(0, 0, 1, 1));
        h.sends.push(acked(1, 0, 3, 2));
        h.sends.push(acked(0, 1, 9, 0));
        h.sends.push(acked(0, 0, 2, 0));
        h.final_read.insert(0, vec![(0, 2), (1, 1), (2, 3)]);
        h.final_read.insert(1, vec![(0, 9)]);
        let anomalies = check(&h);
        assert_eq!(
            anomalies,
            vec![Anomaly::NonmonotonicSend {
                producer: 0,
                partition: 0,
                previous: 1,
                next: 0
            }]
        );
        assert_eq!(anomalies[0].kind(), "nonmonotonic-send");
    }

    #[test]
    fn a_consumer_reading_backwards_without_a_reassignment_is_a_nonmonotonic_poll() {
        let mut h = valid(3);
        h.polls.push(record(0, 0, 1, 2));
        let anomalies = check(&h);
        assert_eq!(
            anomalies,
            vec![Anomaly::NonmonotonicPoll {
                consumer: 0,
                partition: 0,
                previous: 2,
                next: 1
            }]
        );
        assert_eq!(anomalies[0].kind(), "nonmonotonic-poll");
    }

    #[test]
    fn rereading_after_a_reassignment_is_fine() {
        let mut h = valid(3);
        h.polls.push(PollEvent::Reassigned {
            consumer: 0,
            at_ns: 0,
            partitions: vec![0],
        });
        h.polls.push(record(0, 0, 0, 1));
        h.polls.push(record(0, 0, 1, 2));
        assert_eq!(check(&h), vec![]);
    }

    #[test]
    fn a_consumer_jumping_over_logged_records_is_a_poll_skip() {
        let mut h = valid(4);
        // Consumer 1 reads offsets 0 then 3: values 2 and 3 sit between.
        h.polls.push(record(1, 0, 0, 1));
        h.polls.push(record(1, 0, 3, 4));
        let anomalies = check(&h);
        assert_eq!(
            anomalies,
            vec![Anomaly::PollSkip {
                consumer: 1,
                partition: 0,
                previous: 0,
                next: 3,
                skipped: vec![2, 3]
            }]
        );
        assert_eq!(anomalies[0].kind(), "poll-skip");
    }

    #[test]
    fn a_gap_in_offsets_the_log_also_has_is_not_a_skip() {
        let mut h = History::default();
        h.sends.push(acked(0, 0, 1, 0));
        h.sends.push(acked(0, 0, 2, 5));
        h.final_read.insert(0, vec![(0, 1), (5, 2)]);
        h.polls.push(record(0, 0, 0, 1));
        h.polls.push(record(0, 0, 5, 2));
        assert_eq!(check(&h), vec![]);
    }

    #[test]
    fn a_panic_in_a_node_log_is_an_anomaly() {
        let mut h = valid(1);
        h.panics.push((
            "node 2".into(),
            "thread 'tokio-runtime-worker' panicked at crates/broker/src/x.rs:1:2".into(),
        ));
        let anomalies = check(&h);
        assert_eq!(anomalies.len(), 1);
        assert_eq!(anomalies[0].kind(), "panic");
        assert_eq!(
            anomalies[0].to_string(),
            "node 2: thread 'tokio-runtime-worker' panicked at crates/broker/src/x.rs:1:2"
        );
    }

    #[test]
    fn the_summary_counts_each_kind_and_shows_a_few_examples() {
        let mut h = valid(4);
        h.final_read.insert(0, vec![]);
        h.polls.clear();
        let anomalies = check(&h);
        assert_eq!(anomalies.len(), 4);
        assert_eq!(
            summarize(&anomalies, 2),
            "lost-write: 4\n  partition 0: value 1 acknowledged at offset 0 is not in the log\n  \
             partition 0: value 2 acknowledged at offset 1 is not in the log\n  … and 2 more\n"
        );
    }
}

//! Crash tests: kill -9 the broker in the middle of an acks=all produce stream — alone, or
//! with a simulated power loss that also drops every write no completed sync covered —
//! restart it on the same data dir, and check that every acknowledged record is there
//! exactly once, in order, at the offset it was acknowledged with, and that the log takes
//! new writes.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, Producer};
use sluice_e2e::{Broker, consume_all, create_topic, producer};
use sluice_storage::sync_ledger;

const TOPIC: &str = "crash";
const RECORDS: usize = 50_000;
const KILL_AFTER_ACKED: usize = 20_000;

fn value(seq: usize) -> String {
    format!("seq={seq:08};{}", "p".repeat(seq % 64))
}

fn seq_of(v: &[u8]) -> usize {
    let s = std::str::from_utf8(v).expect("utf8 value");
    let n = s
        .strip_prefix("seq=")
        .and_then(|s| s.get(..8))
        .unwrap_or_else(|| panic!("foreign record {s:?}"));
    let seq: usize = n.parse().expect("sequence number");
    assert_eq!(s, value(seq), "record content");
    seq
}

#[test]
fn kill9_during_acks_all_produce_loses_no_acknowledged_record() {
    crash_during_acks_all_produce(Crash::Kill9);
}

#[test]
fn a_power_loss_during_acks_all_produce_loses_no_acknowledged_record() {
    crash_during_acks_all_produce(Crash::PowerLoss);
}

enum Crash {
    /// The process dies; the page cache keeps what it wrote.
    Kill9,
    /// The process dies and the disk keeps only what completed syncs covered (the broker
    /// records its syncs, `SLUICE_FAULT_SYNC_LEDGER`).
    PowerLoss,
}

fn crash_during_acks_all_produce(crash: Crash) {
    let ledger_dir = tempfile::tempdir().unwrap();
    let ledger = ledger_dir.path().join("sync-ledger");
    let mut broker = match crash {
        Crash::Kill9 => Broker::start(),
        Crash::PowerLoss => {
            Broker::start_with_env(&[(sync_ledger::ENV, ledger.to_str().unwrap())], &[])
        }
    };
    let bs = broker.bootstrap();
    create_topic(&bs, TOPIC, 1, &[]);

    // No retries: a request in flight at the kill fails (its records may or may not have
    // reached the log) and is never resent, so the log can hold no duplicates at all.
    let p = producer(
        &bs,
        &[
            ("acks", "all"),
            ("message.send.max.retries", "0"),
            ("message.timeout.ms", "60000"),
            ("linger.ms", "2"),
            ("batch.num.messages", "250"),
            ("max.in.flight.requests.per.connection", "5"),
        ],
    );
    let values: Vec<String> = (0..RECORDS).map(value).collect();
    // Enqueue from another thread so the stream keeps flowing across the kill.
    std::thread::scope(|s| {
        let sender = s.spawn(|| {
            for (seq, v) in values.iter().enumerate() {
                p.send(
                    BaseRecord::with_opaque_to(TOPIC, seq)
                        .partition(0)
                        .key(&v[..12])
                        .payload(v),
                )
                .map_err(|(e, _)| e)
                .expect("enqueue");
            }
        });
        assert!(
            p.context()
                .wait_acked(KILL_AFTER_ACKED, Duration::from_secs(90)),
            "only {} records acknowledged before the kill",
            p.context().acked()
        );
        broker.kill9();
        let acked_at_kill = p.context().acked();
        eprintln!("killed the broker with {acked_at_kill} records acknowledged");
        if let Crash::PowerLoss = crash {
            let lost = sync_ledger::lose_unsynced(&ledger).unwrap();
            eprintln!(
                "power loss: {} unsynced bytes of {} files lost",
                lost.bytes, lost.files
            );
        }
        broker.restart();
        sender.join().expect("sender thread");
    });
    p.flush(Duration::from_secs(120))
        .expect("flush after restart");

    let deliveries = p.context().deliveries();
    assert_eq!(deliveries.len(), RECORDS, "one delivery report per record");
    let mut acked: BTreeMap<usize, i64> = BTreeMap::new(); // seq -> acknowledged offset
    let mut failed = 0usize;
    for d in &deliveries {
        match &d.result {
            Ok((part, off)) => {
                assert_eq!(*part, 0);
                assert!(
                    acked.insert(d.id, *off).is_none(),
                    "two reports for {}",
                    d.id
                );
            }
            Err(_) => failed += 1,
        }
    }
    eprintln!("{} acknowledged, {failed} failed", acked.len());
    assert!(
        acked.len() > KILL_AFTER_ACKED,
        "nothing was acknowledged after the restart"
    );

    // Acknowledged offsets increase with the sequence number.
    let mut prev = -1i64;
    for (&seq, &off) in &acked {
        assert!(
            off > prev,
            "record {seq} acknowledged at offset {off} after offset {prev}"
        );
        prev = off;
    }

    let got = consume_all(&bs, TOPIC, 1, Duration::from_secs(60));
    let msgs = &got[&0];
    let mut seen: BTreeMap<usize, i64> = BTreeMap::new(); // seq -> offset in the log
    let mut last_seq: Option<usize> = None;
    for (i, m) in msgs.iter().enumerate() {
        assert_eq!(m.offset(), i as i64, "offsets are dense from 0");
        let seq = seq_of(m.payload().expect("value"));
        if let Some(prev) = seen.insert(seq, m.offset()) {
            panic!(
                "record {seq} is in the log twice: offsets {prev} and {}",
                m.offset()
            );
        }
        if let Some(l) = last_seq {
            assert!(
                seq > l,
                "record {seq} at offset {} follows record {l}",
                m.offset()
            );
        }
        last_seq = Some(seq);
    }
    for (&seq, &off) in &acked {
        match seen.get(&seq) {
            Some(&at) => assert_eq!(at, off, "record {seq} acknowledged at {off}, found at {at}"),
            None => panic!("acknowledged record {seq} (offset {off}) is missing after the crash"),
        }
    }
    eprintln!(
        "{} records in the log ({} acknowledged, {} unacknowledged survivors)",
        msgs.len(),
        acked.len(),
        msgs.len() - acked.len()
    );

    // The recovered log takes new writes at its end.
    let end = msgs.len() as i64;
    let p2 = producer(&bs, &[("acks", "all")]);
    p2.send(
        BaseRecord::with_opaque_to(TOPIC, 0)
            .key("end")
            .partition(0)
            .payload("after-restart"),
    )
    .map_err(|(e, _)| e)
    .expect("enqueue");
    p2.flush(Duration::from_secs(10)).expect("flush");
    assert_eq!(p2.context().deliveries()[0].result, Ok((0, end)));
    let got = consume_all(&bs, TOPIC, 1, Duration::from_secs(60));
    assert_eq!(got[&0].len() as i64, end + 1);
    assert_eq!(got[&0][msgs.len()].payload(), Some(&b"after-restart"[..]));
}

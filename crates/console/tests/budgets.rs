//! Measurements for docs/PERFORMANCE.md, not assertions: they print figures and are
//! ignored by default (timings in a shared CI machine prove nothing). Run them in release:
//!
//! ```sh
//! cargo test --release -p sluice-console --test budgets -- --ignored --nocapture --test-threads 1
//! ```
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use std::time::{Duration, Instant};

use bytes::Bytes;
use sluice_protocol::batch::RecordBatchBuilder;
use support::{Running, read_write, start};

/// Median and 99th percentile of `samples`, in ms.
fn median_p99(mut samples: Vec<Duration>) -> (f64, f64) {
    samples.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let median = ms(samples[samples.len() / 2]);
    let p99 = ms(samples[(samples.len() * 99 / 100).min(samples.len() - 1)]);
    (median, p99)
}

/// Times `n` GETs of `path` (the whole exchange over loopback: an upper bound of the
/// server's time).
async fn time_gets(broker: &Running, path: &str, n: usize) -> (f64, f64) {
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        let started = Instant::now();
        let reply = broker.get(path).await;
        samples.push(started.elapsed());
        assert_eq!(reply.status, 200, "{path}");
    }
    median_p99(samples)
}

/// A 1 KiB JSON value.
fn kib_json(i: usize) -> Vec<u8> {
    let mut value = format!("{{\"id\":{i},\"customer\":\"c-{}\",\"pad\":\"", i % 97).into_bytes();
    value.resize(1021, b'x');
    value.extend_from_slice(b"\"}\n");
    value.truncate(1024);
    value
}

/// Appends `count` 1 KiB records to partition 0 of `topic`, 100 a batch, timestamps
/// 1 ms apart from `base_ts`.
async fn fill(broker: &Running, topic: &str, count: usize, base_ts: i64) {
    let mut client = broker.client().await;
    for start in (0..count).step_by(100) {
        let mut builder = RecordBatchBuilder::new();
        for i in start..(start + 100).min(count) {
            builder.push(
                base_ts + i64::try_from(i).unwrap(),
                Some(format!("k{i}").as_bytes()),
                Some(&kib_json(i)),
                &[],
            );
        }
        client
            .produce(topic, &[(0, Bytes::from(builder.build()))], 1, 10_000)
            .await
            .unwrap();
    }
}

async fn create(broker: &Running, name: &str, partitions: i32) {
    let mut client = broker.client().await;
    client
        .create_topic(&sluice_client::NewTopic {
            name: name.into(),
            partitions: Some(partitions),
            replication_factor: Some(1),
            configs: Vec::new(),
        })
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement; run with --ignored in release"]
async fn topics_page_with_1000_topics() {
    let broker = start(read_write()).await;
    for i in 0..1000 {
        create(&broker, &format!("topic-{i:04}"), 3).await;
    }
    let (median, p99) = time_gets(&broker, "/ui/topics", 200).await;
    println!("topics page, 1,000 topics x 3 partitions: median {median:.2} ms, p99 {p99:.2} ms");
    let (median, p99) = time_gets(&broker, "/ui/", 200).await;
    println!("overview, 1,000 topics: median {median:.2} ms, p99 {p99:.2} ms");
    broker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement; run with --ignored in release"]
async fn first_50_records_and_filter_scan_throughput() {
    let broker = start(read_write()).await;
    create(&broker, "kib", 1).await;
    let records = 200_000;
    let base_ts = 1_700_000_000_000;
    fill(&broker, "kib", records, base_ts).await;
    let (median, p99) = time_gets(
        &broker,
        "/ui/topics/kib/messages?partition=0&start=offset&offset=150000&n=50",
        200,
    )
    .await;
    println!("first 50 records of 1 KiB by offset: median {median:.2} ms, p99 {p99:.2} ms");
    let ts = base_ts + 150_000;
    let (median, p99) = time_gets(
        &broker,
        &format!("/ui/topics/kib/messages?partition=0&start=timestamp&ts={ts}&n=50"),
        200,
    )
    .await;
    println!("first 50 records of 1 KiB by timestamp: median {median:.2} ms, p99 {p99:.2} ms");

    // A value filter that matches nothing reads the whole partition.
    let path =
        "/ui/topics/kib/messages?partition=0&start=oldest&field=value&op=contains&q=never-there";
    let mut rates = Vec::new();
    for _ in 0..5 {
        let started = Instant::now();
        let reply = broker.get(path).await;
        let secs = started.elapsed().as_secs_f64();
        assert!(
            reply.body.contains("0 matches in 200,000 records"),
            "{}",
            reply.body
        );
        // Bytes of the batches read: 200,000 records of 1 KiB and their framing.
        let mib = 1024.0 * records as f64 / (1 << 20) as f64;
        rates.push(mib / secs);
    }
    rates.sort_by(f64::total_cmp);
    println!(
        "contains-filter scan of 200,000 x 1 KiB JSON records: median {:.0} MiB/s (runs: {:?})",
        rates[2],
        rates.iter().map(|r| r.round()).collect::<Vec<_>>()
    );
    broker.stop().await;
}

/// Produces 1 KiB records in batches of 100 (acks=1) for `secs` seconds; records/s.
async fn produce_rate(broker: &Running, topic: &str, secs: u64) -> f64 {
    let mut client = broker.client().await;
    let mut builder = RecordBatchBuilder::new();
    for i in 0..100 {
        builder.push(1_700_000_000_000, None, Some(&kib_json(i)), &[]);
    }
    let batch = Bytes::from(builder.build());
    let deadline = Instant::now() + Duration::from_secs(secs);
    let started = Instant::now();
    let mut sent = 0u64;
    while Instant::now() < deadline {
        client
            .produce(topic, &[(0, batch.clone())], 1, 10_000)
            .await
            .unwrap();
        sent += 100;
    }
    sent as f64 / started.elapsed().as_secs_f64()
}

/// Opens a live tail of `topic` and drains its events as a browser would.
async fn open_tail(broker: &Running, topic: &str) -> tokio::task::JoinHandle<usize> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tail = tokio::net::TcpStream::connect(broker.http).await.unwrap();
    let request = format!(
        "GET /ui/topics/{topic}/messages/tail HTTP/1.1\r\nHost: {}\r\n\r\n",
        broker.host()
    );
    tail.write_all(request.as_bytes()).await.unwrap();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 1 << 16];
        let mut total = 0usize;
        while let Ok(n) = tail.read(&mut buf).await {
            if n == 0 {
                break;
            }
            total += n;
        }
        total
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement; run with --ignored in release"]
async fn produce_throughput_with_and_without_a_live_tail() {
    let (mut without, mut with) = (Vec::new(), Vec::new());
    for round in 0..4 {
        let broker = start(read_write()).await;
        create(&broker, "tp", 1).await;
        // Alternate which runs first, so warm-up favours neither.
        let tail_first = round % 2 == 1;
        for tailed in [tail_first, !tail_first] {
            let tail = if tailed {
                Some(open_tail(&broker, "tp").await)
            } else {
                None
            };
            let rate = produce_rate(&broker, "tp", 5).await;
            if let Some(tail) = tail {
                tail.abort();
                with.push(rate);
            } else {
                without.push(rate);
            }
        }
        println!(
            "round {round}: without a tail {:.0} records/s, with one {:.0}",
            without[round], with[round]
        );
        broker.stop().await;
    }
    let sum = |v: &[f64]| v.iter().sum::<f64>();
    println!(
        "produce throughput with a live tail open: {:.1}% of without (4 rounds of 5 s each)",
        100.0 * sum(&with) / sum(&without)
    );
}

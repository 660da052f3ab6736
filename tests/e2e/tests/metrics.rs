//! The HTTP listener: `/metrics` after exactly known traffic (every counter moved by exactly
//! what was sent; the page parses as Prometheus text format 0.0.4), `/health`, `/ready`,
//! `--http-listen off`, a busy HTTP port, and `--debug-client-id`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use bytes::Buf;
use kafka_protocol::messages::MetadataRequest;
use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use sluice_e2e::raw::produce_request;
use sluice_e2e::raw::{BatchBuilder, RawConn, fetch, fetch_batch_headers};
use sluice_e2e::{
    Broker, CALL_TIMEOUT, consume_all, consumer, create_topic, free_port, run_sluice,
};

const TOPIC: &str = "m";
const BASE_TS: i64 = 1_700_000_000_000;

// ---------------------------------------------------------------------------------------------
// HTTP and the text format
// ---------------------------------------------------------------------------------------------

/// One HTTP/1.1 GET over a fresh connection: (status, body).
fn http_get(addr: SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let text = String::from_utf8(raw).expect("HTTP response is UTF-8");
    let (head, body) = text.split_once("\r\n\r\n").expect("HTTP header end");
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .expect("status code")
        .parse()
        .expect("numeric status");
    let chunked = head
        .lines()
        .any(|l| l.eq_ignore_ascii_case("transfer-encoding: chunked"));
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_string()
    };
    Ok((status, body))
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    loop {
        let (size, rest) = s.split_once("\r\n").expect("chunk size line");
        let n = usize::from_str_radix(size.trim(), 16).expect("hex chunk size");
        if n == 0 {
            return out;
        }
        out.push_str(&rest[..n]);
        s = &rest[n + 2..];
    }
}

/// GET with retries until the listener is up and answers 200 (the Kafka port accepts
/// slightly before the broker has finished starting).
fn get_ok(addr: SocketAddr, path: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let last = match http_get(addr, path) {
            Ok((200, body)) => return body,
            other => format!("{other:?}"),
        };
        assert!(
            Instant::now() < deadline,
            "GET {path} did not answer 200: {last}"
        );
        thread::sleep(Duration::from_millis(50));
    }
}

/// Label pairs, sorted by name.
type Labels = Vec<(String, String)>;

/// Samples by name and sorted labels.
#[derive(Debug, Default)]
struct Scrape {
    samples: BTreeMap<(String, Labels), f64>,
    types: HashMap<String, String>,
}

impl Scrape {
    /// The value of the sample with exactly these labels.
    fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let mut l: Vec<(String, String)> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        l.sort();
        self.samples.get(&(name.to_string(), l)).copied()
    }

    fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.get(name, labels)
            .unwrap_or_else(|| panic!("no sample {name}{labels:?} in the scrape"))
    }

    /// Samples of `name` whose labels include all of `labels`.
    fn matching(&self, name: &str, labels: &[(&str, &str)]) -> Vec<(&[(String, String)], f64)> {
        self.samples
            .iter()
            .filter(|((n, l), _)| {
                n == name
                    && labels
                        .iter()
                        .all(|(k, v)| l.iter().any(|(lk, lv)| lk == k && lv == v))
            })
            .map(|((_, l), v)| (l.as_slice(), *v))
            .collect()
    }
}

fn is_metric_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn is_label_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn parse_value(s: &str) -> Option<f64> {
    match s {
        "+Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        "NaN" => Some(f64::NAN),
        _ => s.parse().ok(),
    }
}

/// `{a="x",b="y\"z"}` → labels and the rest of the line after `}`.
fn parse_labels(s: &str, line: &str) -> (Vec<(String, String)>, String) {
    let mut labels = Vec::new();
    let mut rest = s.strip_prefix('{').expect("labels start with {");
    loop {
        if let Some(after) = rest.strip_prefix('}') {
            labels.sort();
            return (labels, after.to_string());
        }
        let (name, after) = rest
            .split_once("=\"")
            .unwrap_or_else(|| panic!("label without =\" in {line:?}"));
        assert!(is_label_name(name), "bad label name {name:?} in {line:?}");
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            match chars.next() {
                Some((_, '\\')) => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, '\\')) => value.push('\\'),
                    Some((_, '"')) => value.push('"'),
                    other => panic!("bad escape {other:?} in {line:?}"),
                },
                Some((i, '"')) => break i,
                Some((_, c)) => value.push(c),
                None => panic!("unterminated label value in {line:?}"),
            }
        };
        assert!(
            !labels.iter().any(|(n, _)| n == name),
            "label {name} twice in {line:?}"
        );
        labels.push((name.to_string(), value));
        rest = &after[end + 1..];
        if let Some(r) = rest.strip_prefix(',') {
            rest = r;
        } else {
            assert!(rest.starts_with('}'), "expected , or }} in {line:?}");
        }
    }
}

/// Parses the text exposition format strictly enough to catch what Prometheus rejects:
/// well-formed HELP/TYPE lines, at most one TYPE per family and before its samples, every
/// sample `name{labels} value` of a declared family, no duplicate series, and histogram
/// buckets that are cumulative and end in `+Inf` equal to `_count`.
fn parse_exposition(text: &str) -> Scrape {
    let mut scrape = Scrape::default();
    let mut helped = BTreeSet::new();
    let mut sampled = BTreeSet::new();
    assert!(text.ends_with('\n'), "exposition ends with a newline");
    for line in text.lines() {
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# ") {
            let mut parts = rest.splitn(3, ' ');
            match parts.next() {
                Some("HELP") => {
                    let name = parts.next().expect("HELP has a name");
                    assert!(is_metric_name(name), "bad HELP name in {line:?}");
                    assert!(parts.next().is_some(), "HELP without text: {line:?}");
                    assert!(helped.insert(name.to_string()), "HELP twice for {name}");
                }
                Some("TYPE") => {
                    let name = parts.next().expect("TYPE has a name");
                    let kind = parts.next().expect("TYPE has a kind");
                    assert!(is_metric_name(name), "bad TYPE name in {line:?}");
                    assert!(
                        ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                        "bad TYPE kind in {line:?}"
                    );
                    assert!(!sampled.contains(name), "TYPE of {name} after its samples");
                    assert!(
                        scrape
                            .types
                            .insert(name.to_string(), kind.to_string())
                            .is_none(),
                        "TYPE twice for {name}"
                    );
                }
                _ => {}
            }
            continue;
        }
        assert!(!line.starts_with('#'), "bad comment line {line:?}");
        let name_end = line
            .find(['{', ' '])
            .unwrap_or_else(|| panic!("sample without value: {line:?}"));
        let name = &line[..name_end];
        assert!(is_metric_name(name), "bad metric name in {line:?}");
        let (labels, rest) = if line[name_end..].starts_with('{') {
            parse_labels(&line[name_end..], line)
        } else {
            (Vec::new(), line[name_end..].to_string())
        };
        let rest = rest
            .strip_prefix(' ')
            .unwrap_or_else(|| panic!("no space before the value in {line:?}"));
        let mut fields = rest.split(' ');
        let value = fields.next().expect("value");
        let value = parse_value(value).unwrap_or_else(|| panic!("bad value in {line:?}"));
        if let Some(ts) = fields.next() {
            ts.parse::<i64>()
                .unwrap_or_else(|_| panic!("bad timestamp in {line:?}"));
        }
        assert!(fields.next().is_none(), "trailing fields in {line:?}");
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|suffix| {
                name.strip_suffix(suffix)
                    .filter(|f| scrape.types.get(*f).is_some_and(|k| k == "histogram"))
            })
            .unwrap_or(name);
        assert!(
            scrape.types.contains_key(family),
            "sample {name} has no TYPE line before it"
        );
        sampled.insert(family.to_string());
        assert!(
            scrape
                .samples
                .insert((name.to_string(), labels), value)
                .is_none(),
            "duplicate series in {line:?}"
        );
    }
    check_histograms(&scrape);
    scrape
}

fn check_histograms(scrape: &Scrape) {
    for (family, kind) in &scrape.types {
        if kind != "histogram" {
            continue;
        }
        let bucket_name = format!("{family}_bucket");
        // Group buckets by their labels without `le`.
        let mut series: BTreeMap<Labels, Vec<(f64, f64)>> = BTreeMap::new();
        for ((name, labels), v) in &scrape.samples {
            if *name != bucket_name {
                continue;
            }
            let le = labels
                .iter()
                .find(|(k, _)| k == "le")
                .map(|(_, v)| parse_value(v).expect("numeric le"))
                .expect("bucket has le");
            let rest: Vec<_> = labels.iter().filter(|(k, _)| k != "le").cloned().collect();
            series.entry(rest).or_default().push((le, *v));
        }
        for (labels, mut buckets) in series {
            buckets.sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap());
            assert!(
                buckets.windows(2).all(|w| w[0].1 <= w[1].1),
                "{family}{labels:?} buckets are not cumulative"
            );
            let (le, inf) = *buckets.last().unwrap();
            assert!(le.is_infinite(), "{family}{labels:?} has no +Inf bucket");
            let count = scrape
                .samples
                .get(&(format!("{family}_count"), labels.clone()))
                .unwrap_or_else(|| panic!("{family}{labels:?} has no _count"));
            assert_eq!(inf, *count, "{family}{labels:?}: +Inf bucket != _count");
            assert!(
                scrape
                    .samples
                    .contains_key(&(format!("{family}_sum"), labels.clone())),
                "{family}{labels:?} has no _sum"
            );
        }
    }
}

fn scrape(addr: SocketAddr) -> Scrape {
    parse_exposition(&get_ok(addr, "/metrics"))
}

// ---------------------------------------------------------------------------------------------
// Kafka traffic helpers
// ---------------------------------------------------------------------------------------------

/// Sizes of the stored batches of a partition, read with one raw fetch from offset 0.
fn stored_batch_sizes(addr: SocketAddr, topic: &str) -> Vec<u64> {
    let mut conn = RawConn::connect(addr);
    let p = fetch(&mut conn, 1, topic, 0, 0, 8 << 20);
    let mut records = p.records.expect("records");
    let mut sizes = Vec::new();
    while records.remaining() >= 12 {
        let _base_offset = records.get_i64();
        let len = usize::try_from(records.get_i32()).expect("batch length");
        sizes.push(12 + len as u64);
        records.advance(len);
    }
    sizes
}

/// Ports this process listens on (TCP, IPv4 and IPv6), from /proc.
fn listening_ports(pid: u32) -> BTreeSet<u16> {
    let mut inodes = BTreeSet::new();
    for fd in std::fs::read_dir(format!("/proc/{pid}/fd")).expect("read fds") {
        let Ok(target) = std::fs::read_link(fd.expect("fd").path()) else {
            continue;
        };
        let target = target.to_string_lossy().into_owned();
        if let Some(inode) = target
            .strip_prefix("socket:[")
            .and_then(|s| s.strip_suffix(']'))
        {
            inodes.insert(inode.to_string());
        }
    }
    let mut ports = BTreeSet::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            // local_address is field 1 (hex ip:port), st is field 3 (0A = LISTEN), inode field 9.
            if f.len() > 9 && f[3] == "0A" && inodes.contains(f[9]) {
                let port = f[1].rsplit(':').next().expect("port");
                ports.insert(u16::from_str_radix(port, 16).expect("hex port"));
            }
        }
    }
    ports
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

#[test]
fn metrics_count_exactly_the_traffic_sent() {
    let http_port = free_port();
    let http = SocketAddr::from(([127, 0, 0, 1], http_port));
    let broker = Broker::start_with(&["--http-listen", &http.to_string()]);
    let bootstrap = broker.bootstrap();

    assert_eq!(get_ok(http, "/health"), "ok\n");
    get_ok(http, "/ready");
    assert_eq!(http_get(http, "/nope").unwrap().0, 404);
    assert_eq!(
        listening_ports(broker.pid()),
        BTreeSet::from([broker.port(), http_port]),
        "the broker listens on its Kafka and HTTP ports"
    );

    create_topic(&bootstrap, TOPIC, 1, &[]);
    create_topic(&bootstrap, "durable", 1, &[]);

    // Ten Produce v9 requests (acks=1), each one batch of ten 100-byte records.
    let mut conn = RawConn::connect(broker.addr());
    let value = [b'v'; 100];
    let mut sent_bytes = 0u64;
    for i in 0..10 {
        let mut b = BatchBuilder::new(BASE_TS + i);
        for _ in 0..10 {
            b = b.record(None, Some(&value));
        }
        let batch = b.build();
        sent_bytes += batch.len() as u64;
        let resp = conn.roundtrip(
            9,
            100 + i32::try_from(i).unwrap(),
            &produce_request(TOPIC, 0, 1, batch),
        );
        let p = &resp.responses[0].partition_responses[0];
        assert_eq!(p.error_code, 0, "produce {i}");
        assert_eq!(p.base_offset, i * 10, "produce {i}");
    }
    // One Produce v8 to a partition that does not exist: one partition error.
    let one = BatchBuilder::new(BASE_TS).record(None, Some(b"x")).build();
    let resp = conn.roundtrip(8, 200, &produce_request(TOPIC, 7, 1, one.clone()));
    assert_ne!(resp.responses[0].partition_responses[0].error_code, 0);
    // One Produce v7 with acks=all to another topic: one fsync at least.
    let resp = conn.roundtrip(7, 201, &produce_request("durable", 0, -1, one.clone()));
    assert_eq!(resp.responses[0].partition_responses[0].error_code, 0);

    // A request's duration is observed once its response is written, which can be just
    // after the client has read it: scrape until the last one is in.
    let deadline = Instant::now() + Duration::from_secs(5);
    let s = loop {
        let s = scrape(http);
        let observed = s.get(
            "sluice_request_duration_seconds_count",
            &[("api", "Produce")],
        );
        if observed.is_some_and(|n| n >= 12.0) || Instant::now() > deadline {
            break s;
        }
        thread::sleep(Duration::from_millis(20));
    };
    let produce = |v: &str| {
        s.get(
            "sluice_requests_total",
            &[("api", "Produce"), ("version", v)],
        )
    };
    assert_eq!(produce("9"), Some(10.0));
    assert_eq!(produce("8"), Some(1.0));
    assert_eq!(produce("7"), Some(1.0));
    let produce_requests: f64 = s
        .matching("sluice_requests_total", &[("api", "Produce")])
        .iter()
        .map(|(_, v)| v)
        .sum();
    assert_eq!(
        produce_requests, 12.0,
        "no other Produce requests were sent"
    );
    assert_eq!(
        s.get(
            "sluice_request_errors_total",
            &[("api", "Produce"), ("version", "8")]
        ),
        Some(1.0)
    );
    assert_eq!(
        s.get(
            "sluice_request_errors_total",
            &[("api", "Produce"), ("version", "9")]
        ),
        None,
        "no errors on the good produce requests"
    );
    assert_eq!(
        s.value(
            "sluice_request_duration_seconds_count",
            &[("api", "Produce")]
        ),
        12.0
    );
    assert!(s.value("sluice_request_duration_seconds_sum", &[("api", "Produce")]) > 0.0);
    assert_eq!(
        s.value("sluice_records_in_total", &[("topic", TOPIC)]),
        100.0
    );
    assert_eq!(
        s.value("sluice_bytes_in_total", &[("topic", TOPIC)]),
        sent_bytes as f64
    );
    assert_eq!(
        s.value("sluice_records_in_total", &[("topic", "durable")]),
        1.0
    );
    assert_eq!(
        s.value("sluice_bytes_in_total", &[("topic", "durable")]),
        one.len() as f64
    );
    assert_eq!(
        s.value("sluice_records_out_total", &[("topic", TOPIC)]),
        0.0,
        "nothing fetched yet"
    );
    let partition = [("topic", TOPIC), ("partition", "0")];
    assert_eq!(
        s.value("sluice_partition_log_end_offset", &partition),
        100.0
    );
    assert_eq!(
        s.value("sluice_partition_log_start_offset", &partition),
        0.0
    );
    assert!(s.value("sluice_partition_log_size_bytes", &partition) >= sent_bytes as f64);
    assert!(s.value("sluice_fsync_duration_seconds_count", &[]) >= 1.0);
    assert!(s.value("sluice_active_connections", &[]) >= 1.0);
    assert!(s.value("process_resident_memory_bytes", &[]) > 1e6);
    assert!(s.value("process_cpu_seconds_total", &[]) >= 0.0);
    assert_eq!(s.types["sluice_requests_total"], "counter");
    assert_eq!(s.types["sluice_request_duration_seconds"], "histogram");
    assert_eq!(s.types["sluice_partition_log_end_offset"], "gauge");

    // The stored batches are the produced ones, byte for byte in size.
    let headers = fetch_batch_headers(broker.addr(), TOPIC, 0);
    assert_eq!(headers.len(), 10);
    assert!(headers.iter().all(|h| h.records == 10));
    let sizes = stored_batch_sizes(broker.addr(), TOPIC);
    let stored: u64 = sizes.iter().sum();
    assert_eq!(stored, sent_bytes, "stored batch sizes: {sizes:?}");
    // fetch_batch_headers read every batch once (a second fetch at the end returned
    // nothing), stored_batch_sizes once more.
    let s = scrape(http);
    assert_eq!(
        s.value("sluice_records_out_total", &[("topic", TOPIC)]),
        200.0
    );
    assert_eq!(
        s.value("sluice_bytes_out_total", &[("topic", TOPIC)]),
        2.0 * stored as f64
    );
    assert_eq!(
        s.get(
            "sluice_request_errors_total",
            &[("api", "Fetch"), ("version", "11")]
        ),
        None
    );

    // librdkafka consumes everything and a group commits offset 40.
    let got = consume_all(&bootstrap, TOPIC, 1, CALL_TIMEOUT);
    assert_eq!(got[&0].len(), 100);
    let c = consumer(&bootstrap, &[("group.id", "mg")]);
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(TOPIC, 0, Offset::Offset(40))
        .unwrap();
    c.commit(&tpl, CommitMode::Sync).expect("commit");

    let s = scrape(http);
    assert!(s.value("sluice_records_out_total", &[("topic", TOPIC)]) >= 300.0);
    assert!(s.value("sluice_bytes_out_total", &[("topic", TOPIC)]) >= 3.0 * stored as f64);
    assert_eq!(
        s.value(
            "sluice_consumer_group_lag",
            &[("group", "mg"), ("topic", TOPIC), ("partition", "0")]
        ),
        60.0
    );
    assert!(
        !s.matching("sluice_requests_total", &[("api", "OffsetCommit")])
            .is_empty()
    );
    assert!(s.value("sluice_active_connections", &[]) >= 1.0);
    drop(conn);
}

#[test]
fn http_listen_off_serves_no_http() {
    let broker = Broker::start_with(&["--http-listen", "off"]);
    assert_eq!(
        listening_ports(broker.pid()),
        BTreeSet::from([broker.port()]),
        "only the Kafka listener"
    );
    let log = broker.log();
    assert!(log.contains("HTTP listener off"), "log:\n{log}");
}

#[test]
fn busy_http_port_is_a_one_line_start_error() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let kafka = format!("127.0.0.1:{}", free_port());
    let out = run_sluice(
        &[
            "serve",
            "--listen",
            &kafka,
            "--data-dir",
            dir.path().to_str().unwrap(),
            "--http-listen",
            &addr,
        ],
        Duration::from_secs(20),
    );
    let status = out.status.expect("sluice exits");
    assert!(!status.success());
    let lines: Vec<&str> = out.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "stderr: {}", out.stderr);
    assert!(
        lines[0].contains(&format!("cannot listen for HTTP on {addr}")),
        "stderr: {}",
        out.stderr
    );
    drop(taken);
}

#[test]
fn http_listen_on_the_kafka_listeners_port_is_refused_before_binding() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let kafka = format!("127.0.0.1:{port}");
    for http in [kafka.clone(), format!("0.0.0.0:{port}")] {
        let out = run_sluice(
            &[
                "serve",
                "--listen",
                &kafka,
                "--data-dir",
                dir.path().to_str().unwrap(),
                "--http-listen",
                &http,
            ],
            Duration::from_secs(20),
        );
        assert!(!out.status.expect("sluice exits").success());
        assert_eq!(
            out.stderr,
            format!(
                "error: invalid value for http-listen: {http} overlaps the Kafka listener (listen {kafka}): the HTTP and Kafka listeners need different ports\n"
            )
        );
    }
}

#[test]
fn debug_client_id_logs_that_clients_requests_at_info() {
    // The raw connection's client id is "sluice-e2e-raw"; librdkafka's is "rdkafka".
    let broker = Broker::start_with(&[
        "--http-listen",
        "off",
        "--debug-client-id",
        "sluice-e2e-raw",
    ]);
    create_topic(&broker.bootstrap(), TOPIC, 1, &[]);
    let mut conn = RawConn::connect(broker.addr());
    conn.roundtrip(12, 41, &MetadataRequest::default().with_topics(None));
    let one = BatchBuilder::new(BASE_TS).record(None, Some(b"x")).build();
    conn.roundtrip(9, 42, &produce_request(TOPIC, 5, 1, one));
    let deadline = Instant::now() + Duration::from_secs(5);
    let log = loop {
        let log = broker.log();
        if log.contains("correlation_id=42") || Instant::now() > deadline {
            break log;
        }
        thread::sleep(Duration::from_millis(20));
    };
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("client_id=sluice-e2e-raw") && l.contains(" request "))
        .collect();
    let metadata = lines
        .iter()
        .find(|l| l.contains("correlation_id=41"))
        .unwrap_or_else(|| panic!("no log line for the Metadata request:\n{log}"));
    assert!(metadata.contains("INFO"), "{metadata}");
    assert!(metadata.contains("api=Metadata"), "{metadata}");
    assert!(metadata.contains("version=12"), "{metadata}");
    assert!(metadata.contains("duration_us="), "{metadata}");
    assert!(metadata.contains("errors=\"none\""), "{metadata}");
    let produce = lines
        .iter()
        .find(|l| l.contains("correlation_id=42"))
        .unwrap_or_else(|| panic!("no log line for the Produce request:\n{log}"));
    assert!(produce.contains("api=Produce"), "{produce}");
    assert!(
        produce.contains("UnknownTopicOrPartition"),
        "the error is summarised: {produce}"
    );
    assert!(
        !log.contains("client_id=rdkafka"),
        "other clients' requests are not logged:\n{log}"
    );
}

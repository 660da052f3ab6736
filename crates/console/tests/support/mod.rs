//! A real broker with the console mounted on its HTTP listener (both on loopback port 0),
//! a raw HTTP/1.1 client that sets every header itself (Host, Origin, fetch metadata),
//! and a Kafka client for the data the pages show.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    dead_code
)]

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use sluice_broker::{BrokerConfig, HttpExtensionFactory, Server};
use sluice_console::{ConsoleConfig, Limits};
use sluice_protocol::batch::RecordBatchBuilder;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long one HTTP exchange may take.
const TIMEOUT: Duration = Duration::from_secs(20);

/// A broker under test.
pub struct Running {
    server: Option<Server>,
    pub http: SocketAddr,
    pub kafka: SocketAddr,
    _dir: tempfile::TempDir,
}

/// The console as most tests run it: read-write, default limits.
pub fn read_write() -> ConsoleConfig {
    ConsoleConfig {
        read_only: false,
        extra_hosts: Vec::new(),
        limits: Limits::default(),
    }
}

/// Starts a broker whose HTTP listener mounts the console configured as `console`.
pub async fn start(console: ConsoleConfig) -> Running {
    let dir = tempfile::tempdir().unwrap();
    let config = BrokerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        http_listen: Some("127.0.0.1:0".parse().unwrap()),
        data_dir: dir.path().join("data"),
        group_initial_rebalance_delay_ms: 0,
        offsets_topic_partitions: 3,
        transaction_state_partitions: 2,
        ..BrokerConfig::default()
    };
    let mount: HttpExtensionFactory =
        Box::new(move |admin, stop| Some(sluice_console::extension(admin, console, stop)));
    let server = Server::start_with(config, Some(mount)).await.unwrap();
    Running {
        http: server.http_addr().unwrap(),
        kafka: server.local_addr(),
        server: Some(server),
        _dir: dir,
    }
}

/// One HTTP response.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    /// The body, bytes that are not UTF-8 replaced.
    pub body: String,
}

impl Reply {
    /// The first header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Percent-encodes a form or query value.
pub fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn decode_chunked(mut body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(line_end) = body.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
        let size_text = String::from_utf8_lossy(&body[..line_end]);
        let size = usize::from_str_radix(size_text.trim(), 16).unwrap_or(0);
        if size == 0 {
            return out;
        }
        let start = line_end + 2;
        out.extend_from_slice(&body[start..(start + size).min(body.len())]);
        body = &body[(start + size + 2).min(body.len())..];
    }
}

fn parse(raw: &[u8]) -> Reply {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a complete response head");
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .expect("a status line");
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    let chunked = headers.iter().any(|(k, v)| {
        k.eq_ignore_ascii_case("transfer-encoding") && v.eq_ignore_ascii_case("chunked")
    });
    if chunked {
        body = decode_chunked(&body);
    }
    Reply {
        status,
        headers,
        body: String::from_utf8_lossy(&body).to_string(),
    }
}

impl Running {
    /// The `Host` a browser would send.
    pub fn host(&self) -> String {
        self.http.to_string()
    }

    /// Sends a request with exactly these extra headers and `body`; reads the whole
    /// answer (the connection is closed after it).
    pub async fn request(
        &self,
        method: &str,
        path: &str,
        host: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> Reply {
        let mut stream = TcpStream::connect(self.http).await.unwrap();
        let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        if method != "GET" {
            head.push_str(&format!(
                "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n",
                body.len()
            ));
        }
        head.push_str("\r\n");
        head.push_str(body);
        stream.write_all(head.as_bytes()).await.unwrap();
        let mut raw = Vec::new();
        tokio::time::timeout(TIMEOUT, stream.read_to_end(&mut raw))
            .await
            .expect("response in time")
            .unwrap();
        parse(&raw)
    }

    /// GET as a browser on this origin would.
    pub async fn get(&self, path: &str) -> Reply {
        self.request("GET", path, &self.host(), &[], "").await
    }

    /// The form token, read from a page's form.
    pub async fn token(&self) -> String {
        let page = self.get("/ui/topics").await;
        let marker = "name=\"_csrf\" value=\"";
        let start = page.body.find(marker).expect("a form with a token") + marker.len();
        page.body[start..start + 64].to_string()
    }

    /// POSTs a form as the console's own page would (same origin, with the token).
    pub async fn post(&self, path: &str, fields: &[(&str, &str)]) -> Reply {
        let token = self.token().await;
        let mut body = format!("_csrf={token}");
        for (k, v) in fields {
            body.push_str(&format!("&{}={}", encode(k), encode(v)));
        }
        self.request(
            "POST",
            path,
            &self.host(),
            &[("Sec-Fetch-Site", "same-origin")],
            &body,
        )
        .await
    }

    /// Reads a server-sent event stream until its text contains `needle` (or panics
    /// after `timeout`), running `during` once the stream's head has arrived.
    pub async fn sse_until<F: std::future::Future<Output = ()>>(
        &self,
        path: &str,
        needle: &str,
        timeout: Duration,
        during: F,
    ) -> (Reply, String) {
        let mut stream = TcpStream::connect(self.http).await.unwrap();
        let head = format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\nAccept: text/event-stream\r\n\r\n",
            self.host()
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        let mut raw = Vec::new();
        let mut buf = vec![0u8; 65536];
        let deadline = tokio::time::Instant::now() + timeout;
        let mut during = Some(Box::pin(during));
        loop {
            let text = String::from_utf8_lossy(&raw).to_string();
            if let Some(split) = text.find("\r\n\r\n") {
                if let Some(f) = during.take() {
                    f.await;
                }
                if text[split..].contains(needle) {
                    let reply = parse(&raw[..split + 4]);
                    return (reply, text[split + 4..].to_string());
                }
            }
            let n = tokio::time::timeout_at(deadline, stream.read(&mut buf))
                .await
                .unwrap_or_else(|_| {
                    panic!("no '{needle}' in the stream within {timeout:?}: {text}")
                })
                .unwrap();
            if n == 0 {
                panic!("stream closed before '{needle}': {text}");
            }
            raw.extend_from_slice(&buf[..n]);
        }
    }

    /// A Kafka client of this broker.
    pub async fn client(&self) -> sluice_client::Client {
        sluice_client::Client::connect(
            &self.kafka.to_string(),
            sluice_client::ClientConfig::default(),
        )
        .await
        .unwrap()
    }

    /// Produces one record to `partition` of `topic` over the Kafka protocol.
    pub async fn produce(
        &self,
        topic: &str,
        partition: i32,
        timestamp: i64,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: &[(&str, Option<&[u8]>)],
    ) {
        let batch = RecordBatchBuilder::new()
            .record(timestamp, key, value, headers)
            .build();
        let mut client = self.client().await;
        client
            .produce(topic, &[(partition, Bytes::from(batch))], -1, 10_000)
            .await
            .unwrap();
    }

    /// Stops the broker.
    pub async fn stop(mut self) {
        if let Some(server) = self.server.take() {
            server.shutdown().await.unwrap();
        }
    }
}

//! The web console as `sluice serve` mounts it: `--console read-write | read-only | off`
//! (the URLs and modes outside tests rely on), the start-up lines that say where it is,
//! and the audit line every change through it writes.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use sluice_e2e::{Broker, free_port, run_sluice};

/// One HTTP/1.1 request over a fresh connection, as a browser on the console's own page
/// would send it: (status, head, body).
fn http(addr: SocketAddr, method: &str, path: &str, body: &str) -> (u16, String, String) {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nSec-Fetch-Site: same-origin\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8_lossy(&raw).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, head.to_string(), body.to_string())
}

fn token(addr: SocketAddr) -> String {
    let (_, _, page) = http(addr, "GET", "/ui/topics", "");
    let marker = "name=\"_csrf\" value=\"";
    let start = page.find(marker).expect("a form token") + marker.len();
    page[start..start + 64].to_string()
}

/// Waits for `line` in the broker's log (it is written as the request is answered).
fn wait_for_log(broker: &Broker, line: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let log = broker.log();
        if log.contains(line) {
            return log;
        }
        assert!(Instant::now() < deadline, "no {line:?} in the log:\n{log}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn start(console: Option<&str>) -> (Broker, SocketAddr) {
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let mut args = vec!["--http-listen", listen.as_str()];
    if let Some(mode) = console {
        args.extend(["--console", mode]);
    }
    let broker = Broker::start_with(&args);
    (broker, SocketAddr::from(([127, 0, 0, 1], port)))
}

#[test]
fn the_console_is_on_by_default_and_audits_every_change() {
    let (broker, http_addr) = start(None);
    wait_for_log(&broker, &format!("web console on http://{http_addr}/ui/"));
    for path in ["/ui/", "/ui/topics", "/ui/groups", "/ui/brokers"] {
        assert_eq!(http(http_addr, "GET", path, "").0, 200, "{path}");
    }
    let token = token(http_addr);
    let (status, head, _) = http(
        http_addr,
        "POST",
        "/ui/topics",
        &format!("_csrf={token}&name=audited&partitions=2&replication_factor=1&configs="),
    );
    assert_eq!(status, 303);
    assert!(
        head.contains("location: /ui/topics/audited?notice=created"),
        "{head}"
    );
    let log = wait_for_log(&broker, "console change: create-topic audited");
    let line = log
        .lines()
        .find(|l| l.contains("console change: create-topic audited"))
        .unwrap();
    assert!(line.contains("peer=127.0.0.1:"), "{line}");
    assert_eq!(http(http_addr, "GET", "/ui/topics/audited", "").0, 200);

    let (status, _, _) = http(
        http_addr,
        "POST",
        "/ui/topics/audited",
        &format!("_csrf={token}&action=delete&confirm=wrong"),
    );
    assert_eq!(status, 400);
    let log = wait_for_log(&broker, "console change refused: delete audited");
    assert!(log.contains("error=The name typed does not match"), "{log}");
}

#[test]
fn read_only_refuses_changes_and_off_serves_no_console() {
    let (broker, http_addr) = start(Some("read-only"));
    wait_for_log(
        &broker,
        &format!("web console (read-only) on http://{http_addr}/ui/"),
    );
    let (status, _, page) = http(http_addr, "GET", "/ui/topics", "");
    assert_eq!(status, 200);
    assert!(!page.contains("method=\"post\""));
    let (status, _, body) = http(
        http_addr,
        "POST",
        "/ui/topics",
        "name=x&partitions=1&replication_factor=1",
    );
    assert_eq!(
        (status, body.as_str()),
        (403, "the console is read-only (console = read-only)\n")
    );
    drop(broker);

    let (broker, http_addr) = start(Some("off"));
    wait_for_log(&broker, "web console off");
    let (status, _, body) = http(http_addr, "GET", "/ui/", "");
    assert_eq!(
        (status, body.as_str()),
        (404, "not found; try /metrics, /health or /ready\n")
    );
    assert_eq!(http(http_addr, "GET", "/metrics", "").0, 200);
}

#[test]
fn an_unknown_console_mode_is_refused_at_start() {
    let out = run_sluice(
        &["serve", "--console", "public", "--http-listen", "off"],
        Duration::from_secs(10),
    );
    assert_eq!(out.status.and_then(|s| s.code()), Some(2), "{}", out.stderr);
    assert!(
        out.stderr.contains(
            "invalid value 'public' for '--console <off|read-only|read-write>': 'public' is not a console mode; use off, read-only or read-write"
        ),
        "{}",
        out.stderr
    );
}

//! `sluice serve` refuses configurations that cannot work, before it binds anything: an
//! advertised address clients cannot reach, out-of-range settings (never clamped), and TOML
//! errors, which name the file, line and column. Each is one line on stderr and exit code 1.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use sluice_e2e::{
    CALL_TIMEOUT, RunOutput, admin, free_port, run_sluice, run_sluice_with_env, sluice_bin,
};

const RUN_TIMEOUT: Duration = Duration::from_secs(20);

/// Runs `sluice serve <args>` with a fresh data dir and no HTTP listener.
fn serve(args: &[&str]) -> RunOutput {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data").display().to_string();
    let mut all = vec!["serve", "--data-dir", &data_dir, "--http-listen", "off"];
    all.extend_from_slice(args);
    run_sluice(&all, RUN_TIMEOUT)
}

/// Asserts that the run failed with exit code 1 and exactly `error: <message>` on stderr.
fn assert_refused(out: &RunOutput, message: &str) {
    let status = out.status.expect("sluice exits on its own");
    assert_eq!(status.code(), Some(1), "stderr: {}", out.stderr);
    assert_eq!(out.stderr, format!("error: {message}\n"));
}

fn loopback() -> String {
    format!("127.0.0.1:{}", free_port())
}

#[test]
fn meta_address_without_advertise_is_refused() {
    for (listen, ip) in [("0.0.0.0", "0.0.0.0"), ("[::]", "::")] {
        let listen = format!("{listen}:{}", free_port());
        let out = serve(&["--listen", &listen]);
        assert_refused(
            &out,
            &format!(
                "the listen address {listen} cannot be advertised to clients: {ip} is the \
                 nonroutable meta-address, which no client can connect to; pass --advertise \
                 host:port with an address clients can reach"
            ),
        );
    }
}

#[test]
fn unreachable_advertised_addresses_are_refused() {
    let listen = loopback();
    for (advertise, reason) in [
        (
            "0.0.0.0:9092",
            "'0.0.0.0:9092' uses the nonroutable meta-address 0.0.0.0, which no client can \
             connect to",
        ),
        (
            "[::]:9092",
            "'[::]:9092' uses the nonroutable meta-address ::, which no client can connect to",
        ),
        (
            "broker.example.com:0",
            "'broker.example.com:0' has port 0, which no client can connect to",
        ),
        (
            "broker.example.com",
            "'broker.example.com' is not host:port",
        ),
        (
            "bad host:9092",
            "'bad host' in 'bad host:9092' is neither a host name (letters, digits, '-', '.', \
             '_') nor an IP address",
        ),
    ] {
        let out = serve(&["--listen", &listen, "--advertise", advertise]);
        assert_refused(
            &out,
            &format!("invalid value for advertise: {reason}; pass --advertise host:port"),
        );
    }
}

#[test]
fn out_of_range_settings_are_refused_with_their_range() {
    let listen = loopback();
    for (flag, value, range) in [
        (
            "--log-segment-bytes",
            "99999999999",
            "must be between 14 and 2147483647",
        ),
        (
            "--log-segment-bytes",
            "13",
            "must be between 14 and 2147483647",
        ),
        (
            "--log-retention-check-interval-ms",
            "0",
            "must be at least 1",
        ),
        ("--log-retention-ms", "-5", "must be at least -1"),
        (
            "--max-request-bytes",
            "4294967296",
            "must be between 1024 and 2147483647",
        ),
        (
            "--offsets-retention-minutes",
            "0",
            "must be between 1 and 2147483647",
        ),
        (
            "--producer-id-expiration-ms",
            "2147483648",
            "must be between 1 and 2147483647",
        ),
        (
            "--group-initial-rebalance-delay-ms",
            "2147483648",
            "must be between 0 and 2147483647",
        ),
    ] {
        let out = serve(&["--listen", &listen, flag, value]);
        let name = flag.trim_start_matches("--");
        assert_refused(
            &out,
            &format!("invalid value for {name}: {value} is out of range: {range}"),
        );
    }
}

/// Every setting is also a `SLUICE_*` variable, checked like its flag; a flag wins over the
/// variable.
#[test]
fn environment_variables_set_settings_and_flags_win() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data").display().to_string();
    let listen = loopback();
    let serve = |flags: &[&str], env: &[(&str, &str)]| {
        let mut args = vec!["serve", "--data-dir", &data_dir, "--http-listen", "off"];
        args.extend_from_slice(&["--listen", &listen]);
        args.extend_from_slice(flags);
        run_sluice_with_env(&args, env, RUN_TIMEOUT)
    };
    let out = serve(&[], &[("SLUICE_LOG_SEGMENT_BYTES", "13")]);
    assert_refused(
        &out,
        "invalid value for log-segment-bytes: 13 is out of range: must be between 14 and \
         2147483647",
    );
    // Settings are checked in table order (log-retention-ms before max-request-bytes): the
    // flag's valid retention replaced the variable's invalid one.
    let out = serve(
        &["--log-retention-ms", "100"],
        &[
            ("SLUICE_LOG_RETENTION_MS", "-5"),
            ("SLUICE_MAX_REQUEST_BYTES", "10"),
        ],
    );
    assert_refused(
        &out,
        "invalid value for max-request-bytes: 10 is out of range: must be between 1024 and \
         2147483647",
    );
    // A value that does not parse is refused before anything else, naming its flag.
    let out = serve(&[], &[("SLUICE_NODE_ID", "abc")]);
    assert_eq!(out.status.and_then(|s| s.code()), Some(2), "{}", out.stderr);
    assert!(
        out.stderr.starts_with(
            "error: invalid value 'abc' for '--node-id <NODE_ID>': invalid digit found in string"
        ),
        "{}",
        out.stderr
    );
}

#[test]
fn toml_errors_name_file_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sluice.toml");
    let file = path.display().to_string();
    let listen = loopback();
    // Each message is the whole of stderr, except the list of known settings after an
    // unknown one (it grows with every new setting).
    for (text, message, whole) in [
        (
            format!("listen = \"{listen}\"\nnode-id = \"one\"\n"),
            "2:11: invalid type: string \"one\", expected i32",
            true,
        ),
        (
            format!("listen = \"{listen}\"\ndata-dir = \"x\n"),
            "2:14: invalid basic string, expected `\"`",
            true,
        ),
        (
            format!("listen = \"{listen}\"\n\nno-such-setting = 1\n"),
            "3:1: unknown field `no-such-setting`, expected one of `listen`, ",
            false,
        ),
    ] {
        std::fs::write(&path, &text).unwrap();
        let out = serve(&["--config", &file]);
        let expected = format!("{file}:{message}");
        if whole {
            assert_refused(&out, &expected);
        } else {
            assert_eq!(out.status.and_then(|s| s.code()), Some(1), "{}", out.stderr);
            assert!(
                out.stderr.starts_with(&format!("error: {expected}"))
                    && out.stderr.lines().count() == 1,
                "{text:?}: expected one line starting with {expected:?}, got {:?}",
                out.stderr
            );
        }
    }
    // A value out of range in the file is refused like the flag.
    std::fs::write(
        &path,
        format!("listen = \"{listen}\"\nlog-retention-ms = -5\n"),
    )
    .unwrap();
    let out = serve(&["--config", &file]);
    assert_refused(
        &out,
        "invalid value for log-retention-ms: -5 is out of range: must be at least -1",
    );
}

/// `--listen 127.0.0.1:0` without `--advertise` still starts, and advertises the port the
/// listener was given.
#[test]
fn listen_port_zero_advertises_the_bound_port() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data").display().to_string();
    let mut child = Command::new(sluice_bin())
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir", &data_dir])
        .args(["--http-listen", "off"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Read stderr to its end on a thread (a closed pipe would fail the broker's logging),
    // handing over the line that names the listener.
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in stderr.lines().map_while(Result::ok) {
            if line.contains("Kafka listener on ") {
                let _ = tx.send(line);
            }
        }
    });
    let line = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("the broker logs its listener");
    let bound = line
        .split("Kafka listener on ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .unwrap()
        .to_string();
    let port: u16 = bound.rsplit_once(':').unwrap().1.parse().unwrap();
    assert_ne!(port, 0);
    assert!(
        line.contains(&format!("(advertised as 127.0.0.1:{port})")),
        "{line}"
    );
    let md = admin(&bound)
        .inner()
        .fetch_metadata(None, CALL_TIMEOUT)
        .unwrap();
    let brokers: Vec<(String, i32)> = md
        .brokers()
        .iter()
        .map(|b| (b.host().to_string(), b.port()))
        .collect();
    assert_eq!(brokers, vec![("127.0.0.1".to_string(), i32::from(port))]);
    child.kill().unwrap();
    child.wait().unwrap();
}

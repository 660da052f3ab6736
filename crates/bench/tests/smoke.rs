//! Smoke run of `sluice-bench` against a real `sluice serve` that it starts itself
//! (`--start-broker`): a seconds-long produce, then a consume of the same data directory by
//! a second broker process, both with `--json`.
//!
//! It checks that the figures are sane (exact record counts, ordered percentiles, broker
//! CPU and memory sampled), never that they are fast: performance is judged by people
//! reading `sluice bench` output on a known machine, not by a CI threshold.
//!
//! The broker binary is `$SLUICE_BIN`, else `<target dir>/debug/sluice`; when neither exists
//! the test says so and passes without running (build it with `cargo build -p sluice`).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

const RECORDS: u64 = 20_000;
const RECORD_SIZE: u64 = 1024;

fn sluice_bin() -> Option<PathBuf> {
    if let Some(bin) = std::env::var_os("SLUICE_BIN") {
        return Some(PathBuf::from(bin));
    }
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|p| {
            if p.is_absolute() {
                p
            } else {
                workspace.join(p)
            }
        })
        .unwrap_or_else(|| workspace.join("target"));
    let bin = target.join("debug").join("sluice");
    bin.is_file().then_some(bin)
}

/// Runs `sluice-bench <args> --json` and returns its JSON report.
fn bench(args: &[&str]) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_sluice-bench"))
        .args(args)
        .arg("--json")
        .stdin(Stdio::null())
        .output()
        .expect("run sluice-bench");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "sluice-bench {args:?} failed ({}):\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );
    serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("not one JSON object ({e}):\n{stdout}\nstderr:\n{stderr}"))
}

fn f64_of(v: &Value, path: &[&str]) -> f64 {
    let mut cur = v;
    for key in path {
        cur = &cur[*key];
    }
    cur.as_f64()
        .unwrap_or_else(|| panic!("{path:?} is not a number in {v}"))
}

fn assert_broker_sampled(report: &Value) {
    assert_broker_processes_sampled(report, 1);
}

fn assert_broker_processes_sampled(report: &Value, processes: usize) {
    let pids = report["broker"]["pids"].as_array().unwrap();
    assert_eq!(pids.len(), processes, "{report}");
    assert!(pids.iter().all(|p| p.as_u64().unwrap() > 0), "{report}");
    assert!(f64_of(report, &["broker", "cpu_s"]) > 0.0, "{report}");
    assert!(
        f64_of(report, &["broker", "cpu_s_per_gb"]) > 0.0,
        "{report}"
    );
    assert!(
        f64_of(report, &["broker", "peak_rss_bytes"]) > 0.0,
        "{report}"
    );
    assert!(f64_of(report, &["broker", "peak_rss_mb"]) > 0.0, "{report}");
}

#[test]
fn produce_then_consume_report_sane_figures() {
    // A missing broker binary is a failure, not a skip: this test must not
    // pass without measuring anything.
    let sluice = sluice_bin().expect(
        "no sluice binary: set SLUICE_BIN or run `cargo build -p sluice` first \
         (the bench smoke test needs a broker to start)",
    );
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let common = [
        "--start-broker",
        "--sluice-bin",
        sluice.to_str().unwrap(),
        "--broker-data-dir",
        data.to_str().unwrap(),
        "--topic",
        "smoke",
        "--quiet",
    ];
    let count = RECORDS.to_string();
    let size = RECORD_SIZE.to_string();

    let mut args = vec![
        "produce",
        "--partitions",
        "4",
        "--count",
        &count,
        "--record-size",
        &size,
        "--acks",
        "1",
    ];
    args.extend(common);
    let produced = bench(&args);
    assert_eq!(produced["mode"], "produce", "{produced}");
    assert_eq!(produced["partitions"], 4, "{produced}");
    assert_eq!(produced["records"].as_u64(), Some(RECORDS), "{produced}");
    assert_eq!(
        produced["bytes"].as_u64(),
        Some(RECORDS * RECORD_SIZE),
        "{produced}"
    );
    assert_eq!(produced["errors"].as_u64(), Some(0), "{produced}");
    assert!(f64_of(&produced, &["records_per_sec"]) > 0.0, "{produced}");
    assert!(f64_of(&produced, &["mb_per_sec"]) > 0.0, "{produced}");
    let p50 = f64_of(&produced, &["latency_ms", "p50_ms"]);
    let p99 = f64_of(&produced, &["latency_ms", "p99_ms"]);
    let p999 = f64_of(&produced, &["latency_ms", "p999_ms"]);
    let max = f64_of(&produced, &["latency_ms", "max_ms"]);
    assert!(
        0.0 < p50 && p50 <= p99 && p99 <= p999 && p999 <= max,
        "{produced}"
    );
    assert_eq!(
        produced["latency_ms"]["count"].as_u64(),
        Some(RECORDS),
        "{produced}"
    );
    assert_broker_sampled(&produced);

    // A second broker process on the same data directory reads it back.
    let mut args = vec!["consume", "--idle-ms", "200"];
    args.extend(common);
    let consumed = bench(&args);
    assert_eq!(consumed["mode"], "consume", "{consumed}");
    assert_eq!(consumed["records"].as_u64(), Some(RECORDS), "{consumed}");
    assert_eq!(
        consumed["bytes"].as_u64(),
        Some(RECORDS * RECORD_SIZE),
        "{consumed}"
    );
    assert_eq!(consumed["errors"].as_u64(), Some(0), "{consumed}");
    assert!(f64_of(&consumed, &["records_per_sec"]) > 0.0, "{consumed}");
    assert!(f64_of(&consumed, &["mb_per_sec"]) > 0.0, "{consumed}");
    assert_broker_sampled(&consumed);
}

#[test]
fn a_started_cluster_takes_replicated_acks_all_writes_and_survives_killed_leaders() {
    let sluice = sluice_bin().expect(
        "no sluice binary: set SLUICE_BIN or run `cargo build -p sluice` first \
         (the bench smoke test needs a broker to start)",
    );
    let count = RECORDS.to_string();
    let size = RECORD_SIZE.to_string();
    let produced = bench(&[
        "produce",
        "--cluster",
        "3",
        "--replication-factor",
        "3",
        "--partitions",
        "3",
        "--count",
        &count,
        "--record-size",
        &size,
        "--acks",
        "all",
        "--sluice-bin",
        sluice.to_str().unwrap(),
        "--topic",
        "replicated",
        "--quiet",
    ]);
    assert_eq!(produced["records"].as_u64(), Some(RECORDS), "{produced}");
    assert_eq!(produced["errors"].as_u64(), Some(0), "{produced}");
    assert_eq!(
        produced["brokers"].as_str().map(|b| b.split(',').count()),
        Some(3),
        "{produced}"
    );
    assert_broker_processes_sampled(&produced, 3);

    let failover = |scenario: &str, trials: &str| {
        bench(&[
            "failover",
            "--cluster",
            "3",
            "--scenario",
            scenario,
            "--trials",
            trials,
            "--sluice-bin",
            sluice.to_str().unwrap(),
            "--quiet",
        ])
    };
    let measures = |report: &serde_json::Value| -> Vec<(String, Vec<f64>)> {
        report["measures"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                let values = m["values_ms"].as_array().unwrap();
                let values = values.iter().map(|v| v.as_f64().unwrap()).collect();
                (m["name"].as_str().unwrap().to_string(), values)
            })
            .collect()
    };
    let killed_leaders = failover("kill-leader", "2");
    assert_eq!(killed_leaders["mode"], "failover", "{killed_leaders}");
    assert_eq!(killed_leaders["nodes"], 3, "{killed_leaders}");
    assert_eq!(
        killed_leaders["scenario"], "kill-leader",
        "{killed_leaders}"
    );
    let series = measures(&killed_leaders);
    let names: Vec<&str> = series.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["leader_visible", "first_ack"], "{killed_leaders}");
    for (_, values) in &series {
        assert_eq!(values.len(), 2, "{killed_leaders}");
        assert!(values.iter().all(|v| *v > 0.0), "{killed_leaders}");
    }

    // The quorum leader killed: the two others agree on a new one, and writes go on.
    let killed_controller = failover("kill-controller", "1");
    let series = measures(&killed_controller);
    let names: Vec<&str> = series.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        ["controller_visible", "first_ack"],
        "{killed_controller}"
    );

    // A rolling restart (SIGTERM, node after node) costs the producers no error at all.
    let rolling = failover("rolling-restart", "1");
    assert_eq!(rolling["partitions"], 3, "{rolling}");
    assert_eq!(rolling["client_errors"], 0, "{rolling}");
    let series = measures(&rolling);
    assert_eq!(series.len(), 1, "{rolling}");
    assert_eq!(series[0].0, "produce_gap", "{rolling}");
    // One longest pause per partition of the one trial.
    assert_eq!(series[0].1.len(), 3, "{rolling}");
}

/// `--topic-config` reaches CreateTopics: keyless records are refused by a topic created
/// compacted (INVALID_RECORD, as Kafka refuses them), so the run delivers nothing and fails
/// with the broker's error; the same run with keys delivers every record.
#[test]
fn topic_configs_apply_to_the_topic_the_run_creates() {
    let sluice = sluice_bin().expect(
        "no sluice binary: set SLUICE_BIN or run `cargo build -p sluice` first \
         (the bench smoke test needs a broker to start)",
    );
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let args = |keys: &'static str| {
        vec![
            "produce".to_string(),
            "--start-broker".into(),
            "--sluice-bin".into(),
            sluice.to_str().unwrap().into(),
            "--broker-data-dir".into(),
            data.to_str().unwrap().into(),
            "--topic".into(),
            "compacted".into(),
            "--topic-config".into(),
            "cleanup.policy=compact".into(),
            "--count".into(),
            "100".into(),
            "--keys".into(),
            keys.into(),
            "--quiet".into(),
        ]
    };

    let keyless = Command::new(env!("CARGO_BIN_EXE_sluice-bench"))
        .args(args("none"))
        .stdin(Stdio::null())
        .output()
        .expect("run sluice-bench");
    let stderr = String::from_utf8_lossy(&keyless.stderr);
    assert!(!keyless.status.success(), "keyless run succeeded: {stderr}");
    assert!(
        stderr.contains("no record was delivered") && stderr.contains("InvalidRecord"),
        "{stderr}"
    );

    let keyed: Vec<String> = args("sequential");
    let keyed: Vec<&str> = keyed.iter().map(String::as_str).collect();
    let produced = bench(&keyed);
    assert_eq!(produced["records"].as_u64(), Some(100), "{produced}");
    assert_eq!(produced["errors"].as_u64(), Some(0), "{produced}");
}

/// The flags that start a broker are refused, with the fix, when no broker is started; a
/// failover run, which always starts its cluster, takes --sluice-bin alone.
#[test]
fn broker_flags_need_a_started_broker_except_for_failover() {
    let refused = Command::new(env!("CARGO_BIN_EXE_sluice-bench"))
        .args([
            "produce",
            "--sluice-bin",
            "/nonexistent/sluice",
            "--count",
            "1",
        ])
        .stdin(Stdio::null())
        .output()
        .expect("run sluice-bench");
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "{stderr}");
    assert!(
        stderr.contains(
            "--sluice-bin given, but this run starts no broker: add --start-broker or --cluster N"
        ),
        "{stderr}"
    );

    // Accepted (before: a usage error): it goes on to look for the binary it was given.
    let failover = Command::new(env!("CARGO_BIN_EXE_sluice-bench"))
        .args([
            "failover",
            "--sluice-bin",
            "/nonexistent/sluice",
            "--trials",
            "1",
        ])
        .stdin(Stdio::null())
        .output()
        .expect("run sluice-bench");
    let stderr = String::from_utf8_lossy(&failover.stderr);
    assert!(!failover.status.success(), "{stderr}");
    assert!(stderr.contains("/nonexistent/sluice not found"), "{stderr}");
}

//! `sluice bench`: hands over to the `sluice-bench` load generator.
//!
//! The load generator drives librdkafka (a C library); keeping it in its own
//! binary keeps the broker pure Rust. It is looked up next to this executable,
//! then on `PATH`.

use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;

const BENCH_BINARY: &str = "sluice-bench";

fn bench_binary() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|dir| dir.join(BENCH_BINARY)))
        .filter(|candidate| candidate.is_file())
        .unwrap_or_else(|| PathBuf::from(BENCH_BINARY))
}

/// How the load generator names itself in usage and help texts when reached through
/// this command (its argv[0], which clap takes as the program's name).
const SHOWN_AS: &str = "sluice bench";

/// Replaces this process with `sluice-bench <args>`; returns only on failure.
pub fn run(args: Vec<OsString>) -> Result<(), String> {
    let binary = bench_binary();
    let error = std::process::Command::new(&binary)
        .arg0(SHOWN_AS)
        .args(args)
        .exec();
    Err(format!(
        "cannot run {}: {error} (build it with `cargo build --release -p sluice-bench`)",
        binary.display()
    ))
}

//! Internal invariants, checked in release builds too.
//!
//! The workspace lints warn on `panic!`, `unwrap` and unchecked indexing, because most
//! failures come from peers or files and must become errors the caller can answer. A broken
//! internal invariant is different: the state is already wrong, and carrying on would write
//! that wrongness to disk or to clients (TigerStyle's assertions, Redpanda's `vassert`).
//! [`invariant!`](crate::invariant!) stops the process instead, with a message naming the condition, where it
//! was checked and the values involved; restart and recovery then start from what is on
//! disk.
//!
//! It aborts rather than panics: a panic in a tokio task ends only that task, and the
//! broker would go on serving from the broken state. So there is no `panic!` here, and no
//! lint to allow.
//!
//! Never check anything read from a peer or a file with it: such input is refused with an
//! error, by the no-panic rules.

use std::fmt;

/// Stops the process when `condition` is false: logs the violation at ERROR, prints it to
/// stderr and aborts. For internal invariants only, never for peer or file input (see the
/// [module docs](mod@crate::invariant)).
///
/// ```ignore
/// sluice_storage::invariant!(start <= end, "log start {start} past the log end {end}");
/// ```
#[macro_export]
macro_rules! invariant {
    ($condition:expr, $($message:tt)+) => {
        if !$condition {
            $crate::invariant::violated(
                stringify!($condition),
                format_args!($($message)+),
                file!(),
                line!(),
            );
        }
    };
}

/// Reports a violated invariant and aborts; called by [`invariant!`](crate::invariant!).
#[cold]
#[inline(never)]
pub fn violated(condition: &str, message: fmt::Arguments<'_>, file: &str, line: u32) -> ! {
    tracing::error!(%condition, %message, %file, line, "invariant violated, stopping");
    // Also straight to stderr: the process is about to end, and tracing may not be set up.
    eprintln!("invariant violated at {file}:{line}: {condition}: {message}");
    std::process::abort()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::os::unix::process::ExitStatusExt;
    use std::process::Command;

    /// Set in the child process that trips the invariant.
    const CHILD: &str = "SLUICE_INVARIANT_TEST_CHILD";
    const SIGABRT: i32 = 6;

    #[test]
    fn a_holding_invariant_does_nothing() {
        let (start, end) = (1, 2);
        invariant!(start <= end, "start {start} past end {end}");
    }

    /// Runs itself again as a child that trips an invariant: the child must die of
    /// SIGABRT, and say which invariant broke, where, and with which values.
    #[test]
    fn a_broken_invariant_stops_the_process_with_its_message() {
        if std::env::var_os(CHILD).is_some() {
            let (high_watermark, log_end) = (7, 5);
            invariant!(
                high_watermark <= log_end,
                "high watermark {high_watermark} above the log end {log_end}"
            );
            return;
        }
        let name = "invariant::tests::a_broken_invariant_stops_the_process_with_its_message";
        let out = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", name, "--nocapture", "--test-threads=1"])
            .env(CHILD, "1")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.signal(), Some(SIGABRT), "{stderr}");
        assert!(
            stderr.contains("invariant violated at crates/storage/src/invariant.rs:")
                && stderr
                    .contains(": high_watermark <= log_end: high watermark 7 above the log end 5"),
            "{stderr}"
        );
    }
}

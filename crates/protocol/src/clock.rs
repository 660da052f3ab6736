//! Wall-clock time in Kafka's unit: milliseconds since the Unix epoch, the
//! unit of record timestamps, commit and expiry timestamps, and transaction
//! start times.
//!
//! Everything that stamps or compares such a time reads it from one injected
//! [`Clock`]: the broker holds one and hands it to its partitions and the
//! coordinators, production runs on [`SystemClock`], and tests move a
//! [`ManualClock`] to reach a deadline exactly instead of sleeping past it.
//! (A paused tokio clock covers timers only: `tokio::time` never changes what
//! `SystemTime` says.)
//!
//! It lives here because every crate that needs the time already depends on
//! this one and on nothing below it: storage and the client as well as the
//! coordinators and the broker. `sluice-coordinator` would serve the group and
//! transaction coordinators, but the produce path and the log manager would
//! then depend on coordinator machinery for nothing but the time.

use std::fmt::Debug;
use std::sync::atomic::{AtomicI64, Ordering};

/// A source of wall-clock time in milliseconds since the Unix epoch.
pub trait Clock: Send + Sync + Debug {
    /// The current time, in milliseconds since the Unix epoch.
    fn now_ms(&self) -> i64;
}

/// The operating system's wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    /// `SystemTime::now()` in milliseconds; 0 for a clock set before 1970.
    fn now_ms(&self) -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
            .unwrap_or(0)
    }
}

/// The system clock shifted by a fixed number of milliseconds: fault injection, so that
/// one node's wall clock disagrees with the others' and with its own before a restart,
/// as on a machine whose clock is set wrong.
#[derive(Debug, Clone, Copy)]
pub struct SkewedClock {
    skew_ms: i64,
}

impl SkewedClock {
    /// The system clock plus `skew_ms` (negative: behind).
    pub fn new(skew_ms: i64) -> Self {
        Self { skew_ms }
    }
}

impl Clock for SkewedClock {
    fn now_ms(&self) -> i64 {
        SystemClock.now_ms().saturating_add(self.skew_ms).max(0)
    }
}

/// A clock that moves only when told to, for tests (Kafka's `MockTime`).
#[derive(Debug)]
pub struct ManualClock {
    now_ms: AtomicI64,
}

impl ManualClock {
    /// A clock standing at `now_ms`.
    pub fn new(now_ms: i64) -> Self {
        Self {
            now_ms: AtomicI64::new(now_ms),
        }
    }

    /// Moves the clock to `now_ms` (backwards too, as a wall clock may jump).
    pub fn set(&self, now_ms: i64) {
        self.now_ms.store(now_ms, Ordering::SeqCst);
    }

    /// Moves the clock `ms` milliseconds on and returns the new time.
    pub fn advance(&self, ms: i64) -> i64 {
        let step = |now: i64| now.saturating_add(ms);
        let before = self
            .now_ms
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |now| Some(step(now)));
        // The update never declines, so `before` is always `Ok`.
        step(before.unwrap_or_else(|now| now))
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.now_ms.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_told() {
        let clock = ManualClock::new(1_000);
        assert_eq!(clock.now_ms(), 1_000);
        assert_eq!(clock.advance(250), 1_250);
        assert_eq!(clock.now_ms(), 1_250);
        clock.set(900);
        assert_eq!(clock.now_ms(), 900);
    }

    #[test]
    fn manual_clock_saturates_instead_of_wrapping() {
        let clock = ManualClock::new(i64::MAX - 1);
        assert_eq!(clock.advance(5), i64::MAX);
        assert_eq!(clock.now_ms(), i64::MAX);
    }

    #[test]
    fn skewed_clock_is_the_system_clock_shifted() {
        for skew in [-60_000, 0, 60_000] {
            let before = SystemClock.now_ms();
            let now = SkewedClock::new(skew).now_ms();
            let after = SystemClock.now_ms();
            assert!(
                (before + skew..=after + skew).contains(&now),
                "{skew}: {before} <= {now} - skew <= {after}"
            );
        }
        assert_eq!(SkewedClock::new(i64::MIN).now_ms(), 0);
    }

    #[test]
    fn system_clock_reads_the_wall_clock() {
        let wall = || {
            let since_epoch = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
            i64::try_from(since_epoch.map(|d| d.as_millis()).unwrap_or(0)).unwrap_or(i64::MAX)
        };
        let before = wall();
        let now = SystemClock.now_ms();
        let after = wall();
        assert!(
            (before..=after).contains(&now),
            "{before} <= {now} <= {after}"
        );
    }
}

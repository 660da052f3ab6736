//! Rate limits for warnings that can repeat as fast as a client or a failing disk can
//! make them (accept failures, refused connections, storage errors): one line per
//! interval, saying how many were held back, so the log stays readable and cheap.

use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// Lets a repeated warning through at most once per interval.
pub(crate) struct LogThrottle {
    interval: Duration,
    /// When a line last went through, and how many were held back since.
    state: Mutex<(Option<Instant>, u64)>,
}

impl LogThrottle {
    /// At most one line per `interval`.
    pub(crate) const fn new(interval: Duration) -> Self {
        Self {
            interval,
            state: Mutex::new((None, 0)),
        }
    }

    /// `Some(held_back)` when a line may be logged now (with the number of occurrences
    /// not logged since the last one); `None` when this one is held back.
    pub(crate) fn ready(&self) -> Option<u64> {
        let now = Instant::now();
        let mut state = self.state.lock();
        let (last, held_back) = &mut *state;
        if last.is_some_and(|t| now.duration_since(t) < self.interval) {
            *held_back = held_back.saturating_add(1);
            return None;
        }
        *last = Some(now);
        Some(std::mem::take(held_back))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_interval_counting_the_rest() {
        let throttle = LogThrottle::new(Duration::from_secs(3600));
        assert_eq!(throttle.ready(), Some(0));
        assert_eq!(throttle.ready(), None);
        assert_eq!(throttle.ready(), None);
        let passed = LogThrottle::new(Duration::ZERO);
        assert_eq!(passed.ready(), Some(0));
        assert_eq!(passed.ready(), Some(0));
    }
}

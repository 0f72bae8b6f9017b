//! Exponential backoff for retried writes: while the apiserver is unreachable
//! every loop keeps trying, but ever more slowly, and resumes at full speed on
//! the first success.

use std::time::Duration;

use tokio::time::Instant;

const FIRST: Duration = Duration::from_millis(250);
const MAX: Duration = Duration::from_secs(30);

/// The wait before retry number `failures` (1 = first retry): 250 ms, doubling, at most 30 s.
pub fn delay(failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(16);
    FIRST.saturating_mul(1 << doublings).min(MAX)
}

/// A loop's write phase: skipped while backing off after a failed attempt.
#[derive(Debug, Default)]
pub struct Backoff {
    failures: u32,
    until: Option<Instant>,
}

impl Backoff {
    pub fn ready(&self, now: Instant) -> bool {
        self.until.is_none_or(|until| now >= until)
    }

    /// Records a failed attempt; returns the wait before the next one.
    pub fn failed(&mut self, now: Instant) -> Duration {
        self.failures = self.failures.saturating_add(1);
        let wait = delay(self.failures);
        self.until = Some(now + wait);
        wait
    }

    pub fn succeeded(&mut self) {
        *self = Self::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_a_cap() {
        assert_eq!(delay(1), Duration::from_millis(250));
        assert_eq!(delay(2), Duration::from_millis(500));
        assert_eq!(delay(4), Duration::from_secs(2));
        assert_eq!(delay(20), MAX);
        assert_eq!(delay(u32::MAX), MAX);
    }

    #[test]
    fn waits_after_a_failure_and_resets_on_success() {
        let now = Instant::now();
        let mut b = Backoff::default();
        assert!(b.ready(now));
        let wait = b.failed(now);
        assert!(!b.ready(now));
        assert!(b.ready(now + wait));
        assert_eq!(b.failed(now), Duration::from_millis(500));
        b.succeeded();
        assert!(b.ready(now));
    }
}

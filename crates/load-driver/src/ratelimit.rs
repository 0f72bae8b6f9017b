//! A token bucket: `rate` tokens per second, holding at most `burst`. The client-side
//! QPS limit is one; a ramp is paced by another with a burst of 1.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

pub struct TokenBucket {
    rate: f64,
    burst: f64,
    state: Mutex<State>,
}

struct State {
    /// Negative while callers wait: each waiter has reserved the token it sleeps for.
    tokens: f64,
    refilled_at: Instant,
}

impl TokenBucket {
    /// A full bucket. `rate` > 0 and `burst` >= 1 (the profile validates both; smaller
    /// values are raised so the bucket can always hand out a token eventually).
    pub fn new(rate: f64, burst: u32) -> Self {
        let rate = if rate.is_finite() && rate > 0.0 { rate } else { f64::MIN_POSITIVE };
        let burst = f64::from(burst.max(1));
        Self { rate, burst, state: Mutex::new(State { tokens: burst, refilled_at: Instant::now() }) }
    }

    /// Waits until one token is ours. Callers are served in the order they call: the
    /// token is reserved at once and only the wait for it happens outside the lock.
    /// Dropping the future mid-wait forfeits the reserved token.
    pub async fn acquire(&self) {
        let wait = self.reserve(Instant::now());
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }

    /// Takes one token at `now`; returns how long until it is really available.
    fn reserve(&self, now: Instant) -> Duration {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let elapsed = now.saturating_duration_since(s.refilled_at).as_secs_f64();
        s.tokens = (s.tokens + elapsed * self.rate).min(self.burst);
        s.refilled_at = now;
        s.tokens -= 1.0;
        if s.tokens >= 0.0 { Duration::ZERO } else { Duration::from_secs_f64(-s.tokens / self.rate) }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    /// Seconds since `start` at which each of `n` sequential acquires returned.
    async fn acquire_times(bucket: &TokenBucket, n: usize, start: Instant) -> Vec<f64> {
        let mut times = Vec::with_capacity(n);
        for _ in 0..n {
            bucket.acquire().await;
            times.push((Instant::now() - start).as_secs_f64());
        }
        times
    }

    fn assert_close(actual: &[f64], expected: &[f64]) {
        assert_eq!(actual.len(), expected.len(), "{actual:?} vs {expected:?}");
        for (a, e) in actual.iter().zip(expected) {
            assert!((a - e).abs() < 1e-3, "{actual:?} vs {expected:?}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn burst_is_free_then_tokens_come_at_the_rate() {
        let bucket = TokenBucket::new(10.0, 3);
        let start = Instant::now();
        let times = acquire_times(&bucket, 6, start).await;
        assert_close(&times, &[0.0, 0.0, 0.0, 0.1, 0.2, 0.3]);
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_bucket_refills_only_up_to_its_burst() {
        let bucket = TokenBucket::new(2.0, 2);
        let _ = acquire_times(&bucket, 2, Instant::now()).await;
        tokio::time::sleep(Duration::from_secs(60)).await;
        let start = Instant::now();
        let times = acquire_times(&bucket, 4, start).await;
        assert_close(&times, &[0.0, 0.0, 0.5, 1.0]);
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_callers_share_the_rate() {
        let bucket = Arc::new(TokenBucket::new(10.0, 5));
        let start = Instant::now();
        let tasks: Vec<_> = (0..25)
            .map(|_| {
                let bucket = bucket.clone();
                tokio::spawn(async move {
                    bucket.acquire().await;
                    Instant::now()
                })
            })
            .collect();
        let mut done = Vec::new();
        for t in tasks {
            done.push((t.await.unwrap() - start).as_secs_f64());
        }
        done.sort_by(f64::total_cmp);
        // 5 at once, then the other 20 at 10/s.
        assert_eq!(done.iter().filter(|t| **t < 1e-3).count(), 5, "{done:?}");
        assert!((done[24] - 2.0).abs() < 1e-3, "{done:?}");
        for pair in done[4..].windows(2) {
            assert!((pair[1] - pair[0] - 0.1).abs() < 1e-3, "{done:?}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_of_one_paces_evenly() {
        let bucket = TokenBucket::new(4.0, 1);
        let times = acquire_times(&bucket, 5, Instant::now()).await;
        assert_close(&times, &[0.0, 0.25, 0.5, 0.75, 1.0]);
    }
}

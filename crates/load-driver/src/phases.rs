//! The profile's phases, in order: ramp (create at a rate up to the target), burst
//! (create at once, as fast as the client limit allows), steady (hold, with churn);
//! then hold until shutdown. Which objects churn comes from a ChaCha8 generator
//! seeded by the profile, so a run is repeatable.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, MutexGuard};

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use scaletest_core::profile::{Phase, SteadyPhase};
use tokio::task::JoinSet;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::metrics::{Metrics, PhaseName};
use crate::ops::Ops;
use crate::ratelimit::TokenBucket;

/// Shutdown arrived mid-phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cancelled;

/// Objects to create so `active` reaches `target`.
pub fn missing(active: usize, target: u64) -> u64 {
    target.saturating_sub(active as u64)
}

/// A burst of `count`, capped at what is missing to the target.
pub fn burst_size(count: u64, active: usize, target: u64) -> u64 {
    count.min(missing(active, target))
}

/// Objects one churn round replaces: `percent` % of `active`, rounded.
pub fn churn_count(active: usize, percent: f64) -> usize {
    let n = (active as f64 * percent.clamp(0.0, 100.0) / 100.0).round();
    (n as usize).min(active)
}

/// `count` distinct active indices, chosen by `rng` over the sorted active set: the same
/// seed and the same history give the same victims. Returned sorted.
pub fn pick_victims(active: &BTreeSet<u64>, count: usize, rng: &mut ChaCha8Rng) -> Vec<u64> {
    let sorted: Vec<u64> = active.iter().copied().collect();
    let mut victims: Vec<u64> =
        rand::seq::index::sample(rng, sorted.len(), count.min(sorted.len())).into_iter().map(|i| sorted[i]).collect();
    victims.sort_unstable();
    victims
}

/// The indices of the objects the driver holds, shared with the status reporter.
#[derive(Clone, Default)]
pub struct Active(Arc<Mutex<BTreeSet<u64>>>);

impl Active {
    pub fn new(indices: BTreeSet<u64>) -> Self {
        Self(Arc::new(Mutex::new(indices)))
    }

    pub fn lock(&self) -> MutexGuard<'_, BTreeSet<u64>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }
}

pub struct Driver {
    ops: Arc<Ops>,
    target: u64,
    active: Active,
    /// The next never-used index.
    next_index: u64,
    /// Indices whose create gave up: tried again first, so a create that did land
    /// (a timeout after the write) is found by its 409 rather than leaked.
    retry: Vec<u64>,
    rng: ChaCha8Rng,
    /// Requests in flight at once (the client burst: enough to reach the QPS).
    max_in_flight: usize,
    metrics: Metrics,
    shutdown: CancellationToken,
}

impl Driver {
    /// `active` holds what already exists (adopted after a restart); new indices start
    /// after the highest of it.
    pub fn new(
        ops: Arc<Ops>,
        target: u64,
        active: Active,
        seed: u64,
        max_in_flight: usize,
        shutdown: CancellationToken,
    ) -> Self {
        let next_index = active.lock().last().map_or(0, |last| last + 1);
        let metrics = ops.metrics.clone();
        metrics.objects_active.set(active.len() as i64);
        Self {
            ops,
            target,
            active,
            next_index,
            retry: Vec::new(),
            rng: ChaCha8Rng::seed_from_u64(seed),
            max_in_flight: max_in_flight.max(1),
            metrics,
            shutdown,
        }
    }

    /// Runs every phase, then holds until shutdown.
    pub async fn run(mut self, phases: &[Phase]) {
        for (i, phase) in phases.iter().enumerate() {
            let started = Instant::now();
            tracing::info!(phase = phase.kind(), index = i, active = self.active.len(), "phase starts");
            let done = match phase {
                Phase::Ramp(ramp) => self.ramp(ramp.rate).await,
                Phase::Burst(burst) => self.burst(burst.count).await,
                Phase::Steady(steady) => self.steady(steady).await,
            };
            if done.is_err() {
                return;
            }
            tracing::info!(
                phase = phase.kind(),
                index = i,
                active = self.active.len(),
                seconds = started.elapsed().as_secs_f64(),
                "phase done"
            );
        }
        self.metrics.set_phase(Some(PhaseName::holding));
        tracing::info!(active = self.active.len(), "holding until shutdown");
        self.shutdown.cancelled().await;
    }

    async fn ramp(&mut self, rate: f64) -> Result<(), Cancelled> {
        self.metrics.set_phase(Some(PhaseName::ramp));
        let pacer = TokenBucket::new(rate, 1);
        let n = missing(self.active.len(), self.target);
        self.create(n, Some(&pacer)).await
    }

    async fn burst(&mut self, count: u64) -> Result<(), Cancelled> {
        self.metrics.set_phase(Some(PhaseName::burst));
        let n = burst_size(count, self.active.len(), self.target);
        self.create(n, None).await
    }

    async fn steady(&mut self, steady: &SteadyPhase) -> Result<(), Cancelled> {
        self.metrics.set_phase(Some(PhaseName::steady));
        let start = Instant::now();
        let end = start + steady.duration;
        let mut ticks = tokio::time::interval_at(start + steady.churn_interval, steady.churn_interval);
        // A round slower than the interval delays the next one rather than bunching them.
        ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let shutdown = self.shutdown.clone();
        loop {
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => return Err(Cancelled),
                _ = tokio::time::sleep_until(end) => return Ok(()),
                _ = ticks.tick() => self.churn(steady.churn_percent).await?,
            }
        }
    }

    /// Deletes `percent` % of the active objects and creates as many new ones.
    async fn churn(&mut self, percent: f64) -> Result<(), Cancelled> {
        let victims = {
            let active = self.active.lock();
            pick_victims(&active, churn_count(active.len(), percent), &mut self.rng)
        };
        if victims.is_empty() {
            return Ok(());
        }
        tracing::info!(objects = victims.len(), "churn round");
        let deleted = self.delete(victims).await?;
        self.create(deleted, None).await
    }

    fn take_index(&mut self) -> u64 {
        self.retry.pop().unwrap_or_else(|| {
            self.next_index += 1;
            self.next_index - 1
        })
    }

    fn set_active(&self, update: impl FnOnce(&mut BTreeSet<u64>)) {
        let mut active = self.active.lock();
        update(&mut active);
        self.metrics.objects_active.set(active.len() as i64);
    }

    /// Creates `n` objects, each when `pacer` (if any) allows, with up to `max_in_flight`
    /// requests at once. An object whose create gives up is tried again until `n` exist.
    async fn create(&mut self, n: u64, pacer: Option<&TokenBucket>) -> Result<(), Cancelled> {
        let mut tasks: JoinSet<(u64, bool)> = JoinSet::new();
        let mut done = 0u64;
        let shutdown = self.shutdown.clone();
        loop {
            while let Some(joined) = tasks.try_join_next() {
                done += u64::from(self.created(joined));
            }
            if done >= n {
                return Ok(());
            }
            let in_flight = tasks.len();
            if done + (in_flight as u64) < n && in_flight < self.max_in_flight {
                // Only shutdown interrupts the pacer: a dropped wait would forfeit its token.
                tokio::select! {
                    biased;
                    _ = shutdown.cancelled() => return Err(Cancelled),
                    _ = pace(pacer) => {
                        let index = self.take_index();
                        let ops = self.ops.clone();
                        tasks.spawn(async move { (index, ops.create(index).await.is_ok()) }.in_current_span());
                    }
                }
            } else {
                tokio::select! {
                    biased;
                    _ = shutdown.cancelled() => return Err(Cancelled),
                    Some(joined) = tasks.join_next() => done += u64::from(self.created(joined)),
                }
            }
        }
    }

    /// Books a finished create; true when the object now exists.
    fn created(&mut self, joined: Result<(u64, bool), tokio::task::JoinError>) -> bool {
        match joined {
            Ok((index, true)) => {
                self.set_active(|a| {
                    a.insert(index);
                });
                true
            }
            Ok((index, false)) => {
                self.retry.push(index);
                false
            }
            Err(error) => {
                tracing::error!(%error, "create task failed");
                false
            }
        }
    }

    /// Deletes `victims` (up to `max_in_flight` at once); returns how many are gone.
    /// One whose delete gives up is active again, to be picked (or not) by a later round.
    async fn delete(&mut self, victims: Vec<u64>) -> Result<u64, Cancelled> {
        let mut tasks: JoinSet<(u64, bool)> = JoinSet::new();
        let mut deleted = 0u64;
        let mut victims = victims.into_iter();
        let shutdown = self.shutdown.clone();
        loop {
            if tasks.len() < self.max_in_flight
                && let Some(index) = victims.next()
            {
                // Out of the books before the request leaves, so the auditor never takes an
                // object being deleted for a lost one; back in if the delete gives up.
                self.set_active(|a| {
                    a.remove(&index);
                });
                let ops = self.ops.clone();
                tasks.spawn(async move { (index, ops.delete(index).await.is_ok()) }.in_current_span());
                continue;
            }
            let joined = tokio::select! {
                biased;
                _ = shutdown.cancelled() => return Err(Cancelled),
                joined = tasks.join_next() => joined,
            };
            match joined {
                None => return Ok(deleted),
                Some(Ok((_, true))) => deleted += 1,
                Some(Ok((index, false))) => self.set_active(|a| {
                    a.insert(index);
                }),
                Some(Err(error)) => tracing::error!(%error, "delete task failed"),
            }
        }
    }
}

async fn pace(pacer: Option<&TokenBucket>) {
    if let Some(p) = pacer {
        p.acquire().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creation_stops_at_the_target() {
        assert_eq!(missing(0, 60), 60);
        assert_eq!(missing(70, 60), 0);
        assert_eq!(burst_size(5000, 0, 5000), 5000);
        assert_eq!(burst_size(100, 950, 1000), 50);
        assert_eq!(burst_size(100, 1000, 1000), 0);
    }

    #[test]
    fn churn_takes_a_rounded_percentage() {
        assert_eq!(churn_count(60, 20.0), 12);
        assert_eq!(churn_count(1000, 10.0), 100);
        assert_eq!(churn_count(5, 10.0), 1); // 0.5 rounds up
        assert_eq!(churn_count(3, 10.0), 0);
        assert_eq!(churn_count(10, 0.0), 0);
        assert_eq!(churn_count(10, 100.0), 10);
        assert_eq!(churn_count(0, 50.0), 0);
    }

    /// Victims of `rounds` churn rounds over objects 0..n, replacing each round's victims
    /// with new indices as the driver does.
    fn simulate(seed: u64, n: u64, percent: f64, rounds: usize) -> Vec<Vec<u64>> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut active: BTreeSet<u64> = (0..n).collect();
        let mut next = n;
        (0..rounds)
            .map(|_| {
                let victims = pick_victims(&active, churn_count(active.len(), percent), &mut rng);
                for v in &victims {
                    active.remove(v);
                    active.insert(next);
                    next += 1;
                }
                victims
            })
            .collect()
    }

    #[test]
    fn churn_is_repeatable_from_the_seed() {
        let a = simulate(7, 100, 10.0, 5);
        assert_eq!(a, simulate(7, 100, 10.0, 5));
        assert_ne!(a, simulate(8, 100, 10.0, 5));
        for round in &a {
            assert_eq!(round.len(), 10);
            assert!(round.windows(2).all(|w| w[0] < w[1]), "sorted and distinct: {round:?}");
        }
        // Later rounds can pick objects created by earlier ones.
        assert!(a.iter().flatten().any(|&i| i >= 100), "{a:?}");
    }

    #[test]
    fn victims_are_active_objects() {
        let active: BTreeSet<u64> = [3, 9, 27, 81].into();
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let victims = pick_victims(&active, 10, &mut rng);
        assert_eq!(victims, [3, 9, 27, 81], "capped at what is active");
        let victims = pick_victims(&active, 2, &mut rng);
        assert_eq!(victims.len(), 2);
        assert!(victims.iter().all(|v| active.contains(v)));
        assert!(pick_victims(&BTreeSet::new(), 3, &mut rng).is_empty());
    }
}

//! Keeps the driver's books honest: an object it created (the apiserver answered 201
//! or 409) that the watch has not seen for [`GRACE`] is looked up, and if the
//! apiserver does not have it, counted lost, logged by name and created again. kine on
//! SQLite has been seen to lose a few acknowledged creates when overloaded; without
//! this a run would wait for steady state on an object that does not exist.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use crate::measure::Tracker;
use crate::ops::Ops;
use crate::phases::Active;

/// How long an acknowledged object may stay unseen before it is looked up: far
/// beyond watch lag, short next to a steady-state timeout.
pub const GRACE: Duration = Duration::from_secs(30);
const EVERY: Duration = Duration::from_secs(10);

/// Which of the driver's objects have been missing from the watch since when.
#[derive(Debug, Default)]
pub struct Absences(HashMap<u64, Instant>);

impl Absences {
    /// Folds in the indices missing at `now`; returns those missing for at least `grace`.
    pub fn update(&mut self, missing: &BTreeSet<u64>, now: Instant, grace: Duration) -> Vec<u64> {
        self.0.retain(|i, _| missing.contains(i));
        for &i in missing {
            self.0.entry(i).or_insert(now);
        }
        let mut overdue: Vec<u64> = self
            .0
            .iter()
            .filter(|(_, since)| now.saturating_duration_since(**since) >= grace)
            .map(|(&i, _)| i)
            .collect();
        overdue.sort_unstable();
        overdue
    }

    /// Starts `index`'s clock again (it was found, or created again).
    pub fn reset(&mut self, index: u64, now: Instant) {
        self.0.insert(index, now);
    }
}

pub struct Auditor {
    pub active: Active,
    pub tracker: Arc<Tracker>,
    pub ops: Arc<Ops>,
}

impl Auditor {
    pub async fn run(self, shutdown: CancellationToken) {
        let mut ticks = tokio::time::interval(EVERY);
        ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut absences = Absences::default();
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = ticks.tick() => {}
            }
            if !self.tracker.synced() {
                continue;
            }
            let missing: BTreeSet<u64> = {
                let active = self.active.lock();
                active.iter().copied().filter(|&i| !self.tracker.is_present(&self.ops.factory.key(i))).collect()
            };
            for index in absences.update(&missing, Instant::now(), GRACE) {
                let key = self.ops.factory.key(index);
                match self.ops.exists(index).await {
                    // Still there: the watch is behind; look again later.
                    Ok(true) => {}
                    // Deleted by the driver meanwhile: not lost.
                    Ok(false) if !self.active.lock().contains(&index) => {}
                    Ok(false) => {
                        self.ops.metrics.objects_lost.inc();
                        tracing::warn!(object = %key, "acknowledged but missing from the apiserver; creating it again");
                        if let Err(error) = self.ops.create(index).await {
                            tracing::warn!(object = %key, error = %error, "re-creating a lost object failed; will retry");
                        }
                    }
                    Err(error) => tracing::warn!(object = %key, %error, "cannot look up an unseen object; will retry"),
                }
                absences.reset(index, Instant::now());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_object_is_overdue_only_after_being_missing_for_the_grace() {
        let mut a = Absences::default();
        let t0 = Instant::now();
        let grace = Duration::from_secs(30);
        assert!(a.update(&[1, 2].into(), t0, grace).is_empty());
        assert!(a.update(&[1, 2].into(), t0 + Duration::from_secs(29), grace).is_empty());
        assert_eq!(a.update(&[1, 2, 3].into(), t0 + grace, grace), [1, 2]);
        // Seen again: forgotten; missing again later: its clock restarts.
        assert!(a.update(&[3].into(), t0 + Duration::from_secs(31), grace).is_empty());
        assert!(a.update(&[1, 3].into(), t0 + Duration::from_secs(40), grace).is_empty());
        assert_eq!(a.update(&[1, 3].into(), t0 + Duration::from_secs(70), grace), [1, 3]);
        a.reset(1, t0 + Duration::from_secs(70));
        assert_eq!(a.update(&[1, 3].into(), t0 + Duration::from_secs(71), grace), [3]);
    }
}

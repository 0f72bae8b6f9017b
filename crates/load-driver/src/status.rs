//! Keeps `steady_state` current: 1 while the driver holds its target and every object
//! it holds is bound (acknowledged). The runner's steady-state wait reads this gauge.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use crate::measure::Tracker;
use crate::metrics::Metrics;
use crate::objects::{Factory, ObjectKey};
use crate::phases::Active;

/// How often the gauge is recomputed (a pass over the active set; cheap at 10K objects).
pub const REPORT_INTERVAL: Duration = Duration::from_millis(500);

/// Which objects must be bound for the cluster to be steady.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SteadyRule {
    /// The driver's own objects are what the watch measures (Pods, CapacityRequests).
    EveryActiveReached,
    /// Manifest objects are not measured themselves: the Pods they make (each object
    /// `pods_per_object` of them, per its `spec.replicas`) must all exist and be bound.
    EveryWatchedReached { pods_per_object: u64 },
}

pub fn is_steady(active: usize, target: u64, synced: bool, all_reached: bool) -> bool {
    synced && active as u64 == target && all_reached
}

/// Whether the Pods `active` manifest objects make are all there and bound. More Pods
/// than expected is fine (a DaemonSet's count depends on the Nodes); fewer is not yet.
pub fn workload_pods_bound(active: usize, pods_per_object: u64, reached: usize, all_present_reached: bool) -> bool {
    all_present_reached && reached as u64 >= (active as u64).saturating_mul(pods_per_object)
}

pub struct Reporter {
    pub active: Active,
    pub factory: Factory,
    pub tracker: Arc<Tracker>,
    pub rule: SteadyRule,
    pub target: u64,
    pub metrics: Metrics,
}

impl Reporter {
    pub fn steady(&self) -> bool {
        let keys: Vec<ObjectKey> = self.active.lock().iter().map(|&i| self.factory.key(i)).collect();
        let all_reached = match self.rule {
            SteadyRule::EveryActiveReached => self.tracker.all_reached(keys.iter()),
            SteadyRule::EveryWatchedReached { pods_per_object } => workload_pods_bound(
                keys.len(),
                pods_per_object,
                self.tracker.reached_count(),
                self.tracker.all_present_reached(),
            ),
        };
        is_steady(keys.len(), self.target, self.tracker.synced(), all_reached)
    }

    pub async fn run(self, shutdown: CancellationToken) {
        let mut ticks = tokio::time::interval(REPORT_INTERVAL);
        ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut was = false;
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = ticks.tick() => {
                    let steady = self.steady();
                    self.metrics.steady_state.set(i64::from(steady));
                    if steady != was {
                        tracing::info!(steady, active = self.active.len(), target = self.target, "steady state changed");
                        was = steady;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steady_needs_the_target_a_synced_watch_and_everything_bound() {
        assert!(is_steady(60, 60, true, true));
        assert!(!is_steady(59, 60, true, true));
        assert!(!is_steady(61, 60, true, true));
        assert!(!is_steady(60, 60, false, true));
        assert!(!is_steady(60, 60, true, false));
    }

    #[test]
    fn workloads_are_steady_once_their_pods_are_bound() {
        assert!(!workload_pods_bound(4, 2, 0, true), "no Pods yet is not steady");
        assert!(!workload_pods_bound(4, 2, 7, true));
        assert!(workload_pods_bound(4, 2, 8, true));
        assert!(workload_pods_bound(4, 2, 9, true));
        assert!(!workload_pods_bound(4, 2, 8, false), "a Pod still unbound");
        assert!(workload_pods_bound(4, 0, 0, true), "objects that make no Pods");
    }
}

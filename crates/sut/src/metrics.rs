//! The reference SUT's metrics, `scaletest_sut_*`. The three histograms are the
//! ones the default SLOs query (`scaletest_core::profile::SUT_*_METRIC`), so
//! their names are derived from those constants rather than retyped. Labels
//! name operations only, never objects: cardinality stays fixed at any scale.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use scaletest_core::profile::{SUT_ACKNOWLEDGE_DURATION_METRIC, SUT_CYCLE_DURATION_METRIC, SUT_ROLLUP_DURATION_METRIC};

/// Registry prefix of this process.
pub const PREFIX: &str = "scaletest_sut";

/// What failed, for `scaletest_sut_errors_total{operation}`.
pub mod operation {
    pub const WATCH_PODS: &str = "watch_pods";
    pub const WATCH_CAPACITY_REQUESTS: &str = "watch_capacity_requests";
    pub const WATCH_UPCOMING_NODES: &str = "watch_upcoming_nodes";
    pub const POD_REQUESTS: &str = "pod_requests";
    pub const CREATE_CAPACITY_REQUEST: &str = "create_capacity_request";
    pub const ACKNOWLEDGE: &str = "acknowledge";
    pub const CREATE_UPCOMING_NODE: &str = "create_upcoming_node";
    pub const ASSIGN_UPCOMING_NODE: &str = "assign_upcoming_node";
    pub const UPDATE_STATUS: &str = "update_status";
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OperationLabel {
    pub operation: &'static str,
}

#[derive(Clone)]
pub struct Metrics {
    pub cycle_duration: Histogram,
    pub rollup_duration: Histogram,
    pub acknowledge_duration: Histogram,
    pub capacity_requests_created: Counter,
    pub acknowledged: Counter,
    pub failed: Counter,
    pub fulfilled: Counter,
    pub upcoming_nodes_published: Counter,
    pub shortfalls: Gauge,
    errors: Family<OperationLabel, Counter>,
}

/// `scaletest_sut_cycle_duration_seconds` → `cycle_duration_seconds`: the name to
/// register under [`PREFIX`].
fn unprefixed(full: &'static str) -> &'static str {
    full.strip_prefix(PREFIX)
        .and_then(|rest| rest.strip_prefix('_'))
        .unwrap_or_else(|| panic!("SLO metric {full} must start with {PREFIX}_"))
}

impl Metrics {
    pub fn register(registry: &mut Registry) -> Self {
        let histogram = || Histogram::new(scaletest_core::metrics::latency_buckets());
        let m = Self {
            cycle_duration: histogram(),
            rollup_duration: histogram(),
            acknowledge_duration: histogram(),
            capacity_requests_created: Counter::default(),
            acknowledged: Counter::default(),
            failed: Counter::default(),
            fulfilled: Counter::default(),
            upcoming_nodes_published: Counter::default(),
            shortfalls: Gauge::default(),
            errors: Family::default(),
        };
        registry.register(
            unprefixed(SUT_CYCLE_DURATION_METRIC),
            "One provisioning cycle: rollup plus decision (the hot path; API writes excluded)",
            m.cycle_duration.clone(),
        );
        registry.register(
            unprefixed(SUT_ROLLUP_DURATION_METRIC),
            "Gathering acknowledged, unassigned CapacityRequests and grouping them by per-Pod shape",
            m.rollup_duration.clone(),
        );
        registry.register(
            unprefixed(SUT_ACKNOWLEDGE_DURATION_METRIC),
            "A Pending CapacityRequest first seen to its Acknowledged status written",
            m.acknowledge_duration.clone(),
        );
        registry.register(
            "capacity_requests_created",
            "CapacityRequests created for unschedulable Pods",
            m.capacity_requests_created.clone(),
        );
        registry.register("acknowledged", "CapacityRequests acknowledged", m.acknowledged.clone());
        registry.register("failed", "Malformed CapacityRequests marked Failed", m.failed.clone());
        registry.register("fulfilled", "CapacityRequests marked Fulfilled", m.fulfilled.clone());
        registry.register(
            "upcoming_nodes_published",
            "UpcomingNodes created after the provisioning delay",
            m.upcoming_nodes_published.clone(),
        );
        registry.register(
            "shortfalls",
            "CapacityRequests acknowledged more than two cycles plus the provisioning delay ago and still without an UpcomingNode",
            m.shortfalls.clone(),
        );
        registry.register("errors", "Failed API calls and unusable input, by operation", m.errors.clone());
        m
    }

    pub fn error(&self, operation: &'static str) {
        self.errors.get_or_create(&OperationLabel { operation }).inc();
    }
}

#[cfg(test)]
mod tests {
    use prometheus_client::encoding::text::encode;

    use super::*;

    #[test]
    fn exports_what_the_default_slos_and_the_brief_name() {
        let mut registry = Registry::with_prefix(PREFIX);
        let m = Metrics::register(&mut registry);
        m.cycle_duration.observe(0.01);
        m.error(operation::ACKNOWLEDGE);
        let mut text = String::new();
        encode(&mut text, &registry).unwrap();
        for histogram in [SUT_CYCLE_DURATION_METRIC, SUT_ROLLUP_DURATION_METRIC, SUT_ACKNOWLEDGE_DURATION_METRIC] {
            assert!(text.contains(&format!("{histogram}_bucket{{")), "{histogram} missing:\n{text}");
        }
        for counter in [
            "scaletest_sut_capacity_requests_created_total",
            "scaletest_sut_acknowledged_total",
            "scaletest_sut_upcoming_nodes_published_total",
            "scaletest_sut_errors_total{operation=\"acknowledge\"} 1",
            "scaletest_sut_shortfalls 0",
        ] {
            assert!(text.contains(counter), "{counter} missing:\n{text}");
        }
    }
}

//! The load-driver's metrics, all under `scaletest_load_driver_*`. Labels are a
//! closed set (operation, phase): never object names.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Prefix of every metric this binary exports.
pub const PREFIX: &str = "scaletest_load_driver";

/// What failed, for `errors_total{operation}`.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum Operation {
    create,
    delete,
    watch,
    /// Listing the run's objects at start (adopting what a previous instance created).
    list,
    /// Resolving a manifest template's apiVersion/kind.
    discovery,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OperationLabel {
    operation: Operation,
}

/// The driver's current phase, for `phase{phase}`.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum PhaseName {
    ramp,
    burst,
    steady,
    holding,
}

impl PhaseName {
    const ALL: [Self; 4] = [Self::ramp, Self::burst, Self::steady, Self::holding];
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PhaseLabel {
    phase: PhaseName,
}

#[derive(Clone)]
pub struct Metrics {
    pub created: Counter,
    pub deleted: Counter,
    pub objects_lost: Counter,
    errors: Family<OperationLabel, Counter>,
    pub objects_target: Gauge,
    pub objects_active: Gauge,
    pub objects_bound: Gauge,
    phase: Family<PhaseLabel, Gauge>,
    pub steady_state: Gauge,
    pub binding_latency: Histogram,
    pub acknowledge_latency: Histogram,
    // Autoscaler KPIs (see `kpi`).
    pub time_to_capacity: Histogram,
    pub pending_pod_seconds: Counter<f64, AtomicU64>,
    pub node_ready_latency: Histogram,
    pub nodes: Gauge,
    pub nodes_ideal: Gauge,
    pub nodes_created: Counter,
    pub scale_ups: Counter,
}

impl Metrics {
    /// Registers every metric into `registry` (made with [`PREFIX`]).
    pub fn register(registry: &mut Registry) -> Self {
        let histogram = || Histogram::new(scaletest_core::metrics::latency_buckets());
        let m = Self {
            created: Counter::default(),
            deleted: Counter::default(),
            objects_lost: Counter::default(),
            errors: Family::default(),
            objects_target: Gauge::default(),
            objects_active: Gauge::default(),
            objects_bound: Gauge::default(),
            phase: Family::default(),
            steady_state: Gauge::default(),
            binding_latency: histogram(),
            acknowledge_latency: histogram(),
            time_to_capacity: histogram(),
            pending_pod_seconds: Counter::default(),
            node_ready_latency: histogram(),
            nodes: Gauge::default(),
            nodes_ideal: Gauge::default(),
            nodes_created: Counter::default(),
            scale_ups: Counter::default(),
        };
        registry.register("created", "Objects this driver created (409 AlreadyExists included)", m.created.clone());
        registry.register("deleted", "Objects this driver deleted (churn)", m.deleted.clone());
        registry.register(
            "objects_lost",
            "Objects the apiserver acknowledged that later were not there (created again)",
            m.objects_lost.clone(),
        );
        registry.register("errors", "Failed requests (each attempt), by operation", m.errors.clone());
        registry.register(
            "objects_target",
            "Objects this cluster should hold (loadProfile.objectsPerCluster)",
            m.objects_target.clone(),
        );
        registry.register("objects_active", "Objects created and not deleted by this driver", m.objects_active.clone());
        registry.register(
            "objects_bound",
            "Run objects currently bound (Pods) or acknowledged (CapacityRequests)",
            m.objects_bound.clone(),
        );
        registry.register("phase", "1 for the phase the driver is in", m.phase.clone());
        registry.register(
            "steady_state",
            "1 while objects_active equals objects_target and every active object is bound or acknowledged",
            m.steady_state.clone(),
        );
        registry.register(
            "binding_latency_seconds",
            "Pod created to first seen with PodScheduled=True",
            m.binding_latency.clone(),
        );
        registry.register(
            "acknowledge_latency_seconds",
            "CapacityRequest created to first seen Acknowledged (or a later phase)",
            m.acknowledge_latency.clone(),
        );
        registry.register(
            "time_to_capacity_seconds",
            "Run Pod first marked PodScheduled=False/Unschedulable to PodScheduled=True (the conditions' \
             lastTransitionTimes; the watch's instants when one is missing). Pods bound without ever being \
             marked found capacity and are not observed",
            m.time_to_capacity.clone(),
        );
        registry.register(
            "pending_pod_seconds",
            "Integral over time of the run Pods present and not bound (added every second)",
            m.pending_pod_seconds.clone(),
        );
        registry.register(
            "node_ready_latency_seconds",
            "Node creationTimestamp to its Ready=True lastTransitionTime, once per Node created since the \
             driver started",
            m.node_ready_latency.clone(),
        );
        registry.register("nodes", "Nodes in the cluster not being deleted, whoever made them", m.nodes.clone());
        registry.register(
            "nodes_ideal",
            "Nodes the density model needs for the run's Pods present: ceil(Pods / harness.density)",
            m.nodes_ideal.clone(),
        );
        registry.register(
            "nodes_created",
            "Nodes created since the driver started (creationTimestamp, 1 s clock slack)",
            m.nodes_created.clone(),
        );
        registry.register(
            "scale_ups",
            "Scale-up decisions: Nodes created within 2 s of each other (by creationTimestamp) are one \
             decision; a Node created more than 2 s after the previous one starts a new one",
            m.scale_ups.clone(),
        );
        // Every label value exists from the start, so a scrape shows 0 rather than nothing.
        for operation in [Operation::create, Operation::delete, Operation::watch] {
            let _ = m.errors.get_or_create(&OperationLabel { operation });
        }
        m.set_phase(None);
        m
    }

    pub fn error(&self, operation: Operation) {
        self.errors.get_or_create(&OperationLabel { operation }).inc();
    }

    /// Marks `current` as the one phase at 1 (`None`: not started yet).
    pub fn set_phase(&self, current: Option<PhaseName>) {
        for phase in PhaseName::ALL {
            self.phase.get_or_create(&PhaseLabel { phase }).set(i64::from(Some(phase) == current));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::encoding::text::encode;
    use scaletest_core::profile::BINDING_LATENCY_METRIC;

    fn scrape(registry: &Registry) -> String {
        let mut out = String::new();
        encode(&mut out, registry).unwrap();
        out
    }

    #[test]
    fn names_match_what_slos_and_the_runner_read() {
        let mut registry = Registry::with_prefix(PREFIX);
        let m = Metrics::register(&mut registry);
        m.binding_latency.observe(0.3);
        m.created.inc();
        m.error(Operation::delete);
        m.set_phase(Some(PhaseName::steady));
        let text = scrape(&registry);
        assert!(text.contains(&format!("{BINDING_LATENCY_METRIC}_count 1")), "{text}");
        assert!(text.contains(&format!("{BINDING_LATENCY_METRIC}_bucket{{le=\"0.5\"}} 1")), "{text}");
        assert!(text.contains("scaletest_load_driver_acknowledge_latency_seconds_count 0"), "{text}");
        assert!(text.contains("scaletest_load_driver_created_total 1"), "{text}");
        assert!(text.contains("scaletest_load_driver_deleted_total 0"), "{text}");
        assert!(text.contains("scaletest_load_driver_errors_total{operation=\"delete\"} 1"), "{text}");
        assert!(text.contains("scaletest_load_driver_errors_total{operation=\"watch\"} 0"), "{text}");
        assert!(text.contains("scaletest_load_driver_phase{phase=\"steady\"} 1"), "{text}");
        assert!(text.contains("scaletest_load_driver_phase{phase=\"ramp\"} 0"), "{text}");
        m.time_to_capacity.observe(4.0);
        m.node_ready_latency.observe(0.2);
        m.pending_pod_seconds.inc_by(1.5);
        m.nodes.set(3);
        m.nodes_ideal.set(2);
        m.nodes_created.inc();
        m.scale_ups.inc();
        let text = scrape(&registry);
        for series in [
            "scaletest_load_driver_time_to_capacity_seconds_bucket{le=\"5.0\"} 1",
            "scaletest_load_driver_time_to_capacity_seconds_count 1",
            "scaletest_load_driver_node_ready_latency_seconds_count 1",
            "scaletest_load_driver_pending_pod_seconds_total 1.5",
            "scaletest_load_driver_nodes 3",
            "scaletest_load_driver_nodes_ideal 2",
            "scaletest_load_driver_nodes_created_total 1",
            "scaletest_load_driver_scale_ups_total 1",
        ] {
            assert!(text.contains(series), "{series}: {text}");
        }
        for gauge in ["objects_target", "objects_active", "objects_bound", "steady_state"] {
            assert!(text.contains(&format!("scaletest_load_driver_{gauge} 0")), "{gauge}: {text}");
        }
    }
}

//! node-creator's metrics, registered under whatever prefix the process uses
//! (`scaletest_node_creator_*`, or `scaletest_pod_shim_*` inside pod-shim).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: String,
}

#[derive(Clone)]
pub struct NodeMetrics {
    pub nodes_created: Counter,
    pub errors: Family<ReasonLabel, Counter>,
    pub latency: Histogram,
}

impl NodeMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self {
            nodes_created: Counter::default(),
            errors: Family::default(),
            latency: Histogram::new(scaletest_core::metrics::latency_buckets()),
        };
        registry.register("nodes_created", "Fake Nodes created for UpcomingNodes", m.nodes_created.clone());
        registry.register(
            "node_errors",
            "UpcomingNodes that could not be turned into a Node, by reason",
            m.errors.clone(),
        );
        registry.register(
            "upcoming_node_to_node_seconds",
            "UpcomingNode created to its fake Node created",
            m.latency.clone(),
        );
        m
    }

    pub fn error(&self, reason: &str) {
        self.errors.get_or_create(&ReasonLabel { reason: reason.to_string() }).inc();
    }
}

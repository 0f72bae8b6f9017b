//! pod-shim's binder metrics (`scaletest_pod_shim_*`).

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

#[derive(Clone)]
pub struct BinderMetrics {
    pub binds: Counter,
    pub bind_errors: Counter,
    pub bind_read_backs: Counter,
    pub bind_latency: Histogram,
    pub unschedulable_marks: Counter,
    pub queue_depth: Gauge,
    pub workers: Gauge,
    pub workers_busy: Gauge,
}

impl BinderMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self {
            binds: Counter::default(),
            bind_errors: Counter::default(),
            bind_read_backs: Counter::default(),
            bind_latency: Histogram::new(scaletest_core::metrics::latency_buckets()),
            unschedulable_marks: Counter::default(),
            queue_depth: Gauge::default(),
            workers: Gauge::default(),
            workers_busy: Gauge::default(),
        };
        registry.register("binds", "Pods bound through the /binding subresource", m.binds.clone());
        registry.register("bind_errors", "Failed /binding calls", m.bind_errors.clone());
        registry.register(
            "bind_read_backs",
            "/binding calls without a definite answer, settled by reading the Pod back",
            m.bind_read_backs.clone(),
        );
        registry.register(
            "bind_latency_seconds",
            "Pod first seen unbound to bound by pod-shim",
            m.bind_latency.clone(),
        );
        registry.register(
            "unschedulable_marks",
            "Pods marked PodScheduled=False/Unschedulable",
            m.unschedulable_marks.clone(),
        );
        registry.register("queue_depth", "Pods waiting for a binder worker", m.queue_depth.clone());
        registry.register("workers", "Binder workers", m.workers.clone());
        registry.register("workers_busy", "Binder workers busy (saturation = busy / workers)", m.workers_busy.clone());
        m
    }
}

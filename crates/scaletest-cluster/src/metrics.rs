//! The supervisor's own metrics (`scaletest_cluster_*`).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ComponentLabel {
    pub component: String,
}

#[derive(Clone, Default)]
pub struct SupervisorMetrics {
    restarts: Family<ComponentLabel, Counter>,
    up: Family<ComponentLabel, Gauge>,
    pub startup_seconds: Gauge<f64, AtomicU64>,
    pub ready: Gauge,
}

impl SupervisorMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self::default();
        registry.register("child_restarts", "Times a child process was restarted after exiting", m.restarts.clone());
        registry.register("child_up", "1 while a child process is running", m.up.clone());
        registry.register(
            "startup_seconds",
            "Seconds from supervisor start to every component ready",
            m.startup_seconds.clone(),
        );
        registry.register("ready", "1 once the simulated cluster is ready", m.ready.clone());
        m
    }

    fn label(name: &str) -> ComponentLabel {
        ComponentLabel { component: name.to_string() }
    }

    pub fn restarted(&self, name: &str) {
        self.restarts.get_or_create(&Self::label(name)).inc();
    }

    pub fn restarts(&self, name: &str) -> u64 {
        self.restarts.get_or_create(&Self::label(name)).get()
    }

    pub fn set_up(&self, name: &str, up: bool) {
        self.up.get_or_create(&Self::label(name)).set(i64::from(up));
    }
}

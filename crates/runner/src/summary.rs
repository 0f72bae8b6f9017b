//! `summary.json`: the seed's shape (runId, profile, target, cost, scale,
//! metrics, passed) plus every SLO's value, threshold and verdict, and the
//! reason a run failed.

use std::collections::BTreeMap;
use std::path::Path;

use scaletest_core::profile::{Comparison, Slo};
use serde::{Deserialize, Serialize};

use crate::faults::FaultRecord;
use crate::invariants::InvariantResult;
use crate::saturation::ControlPlane;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    pub run_id: String,
    pub profile: String,
    pub target: Target,
    pub cost: Cost,
    pub scale: Scale,
    pub metrics: BTreeMap<String, Option<f64>>,
    pub slos: Vec<SloResult>,
    pub passed: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Whether the simulated control plane kept up (upstream API latency SLOs).
    #[serde(default)]
    pub control_plane: ControlPlane,
    pub started_at: String,
    pub finished_at: String,
    /// Seconds spent in each phase that ran.
    pub phases: BTreeMap<String, f64>,
    pub clusters: Vec<ClusterResult>,
}

/// One autoscaler KPI in `metrics`: measured by every cluster's load-driver from the
/// apiserver alone, so any system under test is judged without exporting anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Kpi {
    pub key: &'static str,
    /// What it is, for the report.
    pub meaning: &'static str,
    pub unit: &'static str,
}

/// The autoscaler KPIs, in report order; [`kpi_queries`] gives each its query.
pub const KPIS: [Kpi; 9] = [
    Kpi {
        key: "timeToCapacityP50Seconds",
        meaning: "time to capacity p50: Pod marked Unschedulable → bound",
        unit: "s",
    },
    Kpi { key: "timeToCapacityP99Seconds", meaning: "time to capacity p99", unit: "s" },
    Kpi {
        key: "pendingPodSeconds",
        meaning: "pending-Pod-seconds: unbound run Pods integrated over the run",
        unit: "Pod·s",
    },
    Kpi { key: "nodeReadyLatencyP99Seconds", meaning: "Node created → Ready, p99", unit: "s" },
    Kpi { key: "nodesCreated", meaning: "Nodes created during the run (whoever made them)", unit: "" },
    Kpi { key: "nodesProvisioned", meaning: "peak Nodes present (all clusters)", unit: "" },
    Kpi { key: "nodesIdeal", meaning: "peak of the density model's ideal: ceil(Pods / density) per cluster", unit: "" },
    Kpi {
        key: "nodesOvershootRatio",
        meaning: "nodesProvisioned / nodesIdeal (1 is exact; above is overshoot)",
        unit: "",
    },
    Kpi {
        key: "scaleUpsPerMinute",
        meaning: "scale-up decisions per minute (Nodes created within 2 s of each other are one)",
        unit: "/min",
    },
];

/// The PromQL of every [`KPIS`] entry, in that order, over the run's `window`;
/// `quantile(histogram, q)` is the runner's histogram quantile over the same window.
pub fn kpi_queries(window: &str, quantile: impl Fn(&str, f64) -> String) -> Vec<(&'static str, String)> {
    const DRIVER: &str = "scaletest_load_driver";
    // Peak of the sum over clusters, sampled at the scrape interval.
    let peak = |gauge: &str| format!("max_over_time(sum({DRIVER}_{gauge})[{window}:{}])", crate::prom::SCRAPE_INTERVAL);
    let queries = [
        quantile(&format!("{DRIVER}_time_to_capacity_seconds"), 0.5),
        quantile(&format!("{DRIVER}_time_to_capacity_seconds"), 0.99),
        format!("sum(increase({DRIVER}_pending_pod_seconds_total[{window}]))"),
        quantile(&format!("{DRIVER}_node_ready_latency_seconds"), 0.99),
        // The load-driver's own count: right whether node-creator or the SUT makes Nodes.
        format!("sum({DRIVER}_nodes_created_total)"),
        peak("nodes"),
        peak("nodes_ideal"),
        // No ideal (no Pods) divides by zero: +Inf, which reads as no data.
        format!("{} / {}", peak("nodes"), peak("nodes_ideal")),
        format!("sum(rate({DRIVER}_scale_ups_total[{window}])) * 60"),
    ];
    KPIS.iter().map(|k| k.key).zip(queries).collect()
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Target {
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Cost {
    pub estimated_usd: f64,
    pub hours: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Scale {
    pub kwok_clusters: u32,
    pub objects_per_cluster: u64,
    pub total_objects: u64,
    pub object_kind: String,
    pub density: u32,
    pub scheduler: String,
    /// How kwok played the kubelet: `fast` or `faithful` (results/fidelity.md).
    #[serde(default)]
    pub kwok_mode: String,
    /// Who made the Nodes: `node-creator` or `sut`.
    #[serde(default)]
    pub nodes: String,
    /// `reference`, or the user's controller (its program or image).
    #[serde(default)]
    pub sut: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SloResult {
    pub name: String,
    pub query: String,
    pub threshold: f64,
    pub comparison: Comparison,
    /// None: the query returned no data, which fails the SLO.
    pub value: Option<f64>,
    pub passed: bool,
}

impl SloResult {
    pub fn judge(slo: &Slo, value: Option<f64>) -> Self {
        Self {
            name: slo.name.clone(),
            query: slo.query.clone(),
            threshold: slo.threshold,
            comparison: slo.comparison,
            value,
            passed: value.is_some_and(|v| slo.passes(v)),
        }
    }

    pub fn describe(&self) -> String {
        let op = match self.comparison {
            Comparison::Below => "≤",
            Comparison::Above => "≥",
        };
        match self.value {
            Some(v) => format!("{} = {v:.4} (threshold {op} {})", self.name, self.threshold),
            None => format!("{} had no data (threshold {op} {})", self.name, self.threshold),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ClusterResult {
    pub name: String,
    pub startup_seconds: Option<f64>,
    pub objects_active: Option<f64>,
    pub log_dir: String,
    /// End-of-soak invariants (empty when the run ended before they were checked).
    #[serde(default)]
    pub invariants: Vec<InvariantResult>,
    /// Faults injected into this cluster, with their recovery times.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub faults: Vec<FaultRecord>,
}

impl Summary {
    pub fn write(&self, path: &Path) -> std::io::Result<()> {
        std::fs::write(path, serde_json::to_string_pretty(self).expect("summary serialises") + "\n")
    }

    pub fn read(path: &Path) -> std::io::Result<Self> {
        let text = std::fs::read_to_string(path)?;
        serde_json::from_str(&text).map_err(std::io::Error::other)
    }

    /// The invariants that failed, as `cluster name (detail)`, for the reason line.
    pub fn failed_invariants(&self) -> Vec<String> {
        self.clusters
            .iter()
            .flat_map(|c| {
                c.invariants.iter().filter(|i| !i.held).map(move |i| format!("{} {} ({})", c.name, i.name, i.detail))
            })
            .collect()
    }

    /// The failed SLOs, named, for the reason line.
    pub fn failed_slos(&self) -> Vec<String> {
        self.slos.iter().filter(|s| !s.passed).map(SloResult::describe).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kpi_has_its_query_over_the_window() {
        let queries = kpi_queries("300s", |h, q| format!("q({h},{q})"));
        assert_eq!(queries.len(), KPIS.len());
        let get = |key: &str| &queries.iter().find(|(k, _)| *k == key).unwrap().1;
        assert_eq!(get("timeToCapacityP99Seconds"), "q(scaletest_load_driver_time_to_capacity_seconds,0.99)");
        assert_eq!(get("nodeReadyLatencyP99Seconds"), "q(scaletest_load_driver_node_ready_latency_seconds,0.99)");
        assert_eq!(get("pendingPodSeconds"), "sum(increase(scaletest_load_driver_pending_pod_seconds_total[300s]))");
        assert_eq!(get("nodesCreated"), "sum(scaletest_load_driver_nodes_created_total)");
        assert_eq!(get("nodesProvisioned"), "max_over_time(sum(scaletest_load_driver_nodes)[300s:5s])");
        assert_eq!(
            get("nodesOvershootRatio"),
            "max_over_time(sum(scaletest_load_driver_nodes)[300s:5s]) / \
             max_over_time(sum(scaletest_load_driver_nodes_ideal)[300s:5s])"
        );
        assert_eq!(get("scaleUpsPerMinute"), "sum(rate(scaletest_load_driver_scale_ups_total[300s])) * 60");
    }
}

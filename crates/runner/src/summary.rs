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

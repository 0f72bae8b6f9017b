//! Whether the simulated control plane kept up: a run whose apiservers were saturated
//! measures the simulator, not the system under test. Judged against the upstream
//! Kubernetes scalability SLOs for API call latency (p99 of mutating calls ≤ 1 s;
//! of non-streaming reads ≤ 1 s for one object or a namespace, ≤ 30 s cluster-wide),
//! in the worst cluster over the whole run.

use serde::{Deserialize, Serialize};

/// The upstream SLO thresholds, in seconds.
const MUTATING_SLO: f64 = 1.0;
const READ_SLO: f64 = 1.0;
const CLUSTER_READ_SLO: f64 = 30.0;

/// One p99 per cluster, the worst of them; `{window}` is the run's length.
fn worst_p99(selector: &str, window: &str) -> String {
    format!(
        "max(histogram_quantile(0.99, sum by (cluster, le) (rate(apiserver_request_duration_seconds_bucket{{{selector}}}[{window}]))))"
    )
}

/// (summary key, query, threshold) of each check.
pub fn queries(window: &str) -> [(&'static str, String, f64); 3] {
    [
        ("mutatingP99Seconds", worst_p99(r#"verb=~"POST|PUT|PATCH|DELETE|APPLY""#, window), MUTATING_SLO),
        ("readP99Seconds", worst_p99(r#"verb=~"GET|LIST", scope=~"resource|namespace""#, window), READ_SLO),
        ("clusterReadP99Seconds", worst_p99(r#"verb="LIST", scope="cluster""#, window), CLUSTER_READ_SLO),
    ]
}

/// `summary.json`'s `controlPlane`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ControlPlane {
    pub saturated: bool,
    /// Each upstream SLO the worst cluster's apiserver missed, with its value.
    pub evidence: Vec<String>,
    pub mutating_p99_seconds: Option<f64>,
    pub read_p99_seconds: Option<f64>,
    pub cluster_read_p99_seconds: Option<f64>,
}

impl ControlPlane {
    /// `values` in the order of [`queries`]; a missing value is no evidence either way.
    pub fn judge(values: [Option<f64>; 3]) -> Self {
        let evidence: Vec<String> = queries("")
            .iter()
            .zip(values)
            .filter_map(|((key, _, threshold), v)| {
                v.filter(|v| v > threshold).map(|v| format!("apiserver {key} {v:.2} > {threshold} (upstream SLO)"))
            })
            .collect();
        Self {
            saturated: !evidence.is_empty(),
            evidence,
            mutating_p99_seconds: values[0],
            read_p99_seconds: values[1],
            cluster_read_p99_seconds: values[2],
        }
    }

    /// What the verdict line adds when the figures are the simulator's.
    pub fn warning(&self) -> Option<String> {
        self.saturated.then(|| {
            format!(
                "the simulated control plane was saturated ({}): latencies measure the simulator, not the system under test; run fewer clusters or objects per machine",
                self.evidence.join("; ")
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn within_the_upstream_slos_is_not_saturated() {
        let c = ControlPlane::judge([Some(0.4), Some(0.9), None]);
        assert!(!c.saturated && c.evidence.is_empty() && c.warning().is_none(), "{c:?}");
    }

    #[test]
    fn a_slow_write_path_is_named_with_its_value() {
        let c = ControlPlane::judge([Some(7.3), Some(0.2), Some(31.0)]);
        assert!(c.saturated);
        assert_eq!(c.evidence.len(), 2, "{c:?}");
        assert!(c.evidence[0].contains("mutatingP99Seconds 7.30 > 1"), "{c:?}");
        assert!(c.warning().unwrap().contains("not the system under test"));
    }

    #[test]
    fn queries_take_the_worst_cluster() {
        let q = &queries("5m")[0].1;
        assert!(q.starts_with("max(histogram_quantile(0.99, sum by (cluster, le)"), "{q}");
        // Server-side apply is reported as its own verb, and mutates.
        assert!(q.contains(r#"verb=~"POST|PUT|PATCH|DELETE|APPLY""#) && q.contains("[5m]"), "{q}");
    }
}

//! Baselines: `results/baselines.json` holds each profile's best passing run,
//! and `results/README.md`'s table is regenerated from it. A baseline moves
//! only when a passing run beats it on binding latency p99.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::summary::Summary;

pub const KEY_METRIC: &str = "bindingLatencyP99Seconds";
const BEGIN: &str = "<!-- baselines:begin (scaletest-runner baseline) -->";
const END: &str = "<!-- baselines:end -->";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Baseline {
    pub run_id: String,
    pub value: f64,
    pub objects_created_per_sec: Option<f64>,
    pub apiserver_request_p99_seconds: Option<f64>,
    pub date: String,
}

#[derive(Debug, PartialEq)]
pub enum Decision {
    NotPassed,
    /// Passed, but on a saturated control plane: its figures are the simulator's.
    Saturated,
    NoValue,
    Kept {
        current: f64,
        candidate: f64,
    },
    Moved {
        previous: Option<f64>,
        candidate: f64,
    },
}

/// Pure: would `s` replace `current`?
pub fn decide(current: Option<&Baseline>, s: &Summary) -> Decision {
    if !s.passed {
        return Decision::NotPassed;
    }
    if s.control_plane.saturated {
        return Decision::Saturated;
    }
    let Some(candidate) = s.metrics.get(KEY_METRIC).copied().flatten() else { return Decision::NoValue };
    match current {
        Some(b) if b.value <= candidate => Decision::Kept { current: b.value, candidate },
        _ => Decision::Moved { previous: current.map(|b| b.value), candidate },
    }
}

pub fn update(summary_path: &Path, results: &Path) -> anyhow::Result<Decision> {
    let s = Summary::read(summary_path)?;
    let store = results.join("baselines.json");
    let mut all: BTreeMap<String, Baseline> = match std::fs::read_to_string(&store) {
        Ok(t) => serde_json::from_str(&t)?,
        Err(_) => BTreeMap::new(),
    };
    let d = decide(all.get(&s.profile), &s);
    if let Decision::Moved { candidate, .. } = d {
        all.insert(
            s.profile.clone(),
            Baseline {
                run_id: s.run_id.clone(),
                value: candidate,
                objects_created_per_sec: s.metrics.get("objectsCreatedPerSec").copied().flatten(),
                apiserver_request_p99_seconds: s.metrics.get("apiserverRequestP99Seconds").copied().flatten(),
                date: s.finished_at.chars().take(10).collect(),
            },
        );
        std::fs::write(&store, serde_json::to_string_pretty(&all)? + "\n")?;
        write_table(&results.join("README.md"), &all)?;
    }
    Ok(d)
}

fn write_table(readme: &Path, all: &BTreeMap<String, Baseline>) -> std::io::Result<()> {
    let mut table = format!(
        "{BEGIN}\n| profile | run | binding p99 (s) | created/s | apiserver p99 (s) | date |\n|---|---|---:|---:|---:|---|\n"
    );
    let f = |v: Option<f64>| v.map_or("–".to_string(), |v| format!("{v:.3}"));
    for (p, b) in all {
        table.push_str(&format!(
            "| {p} | {} | {:.3} | {} | {} | {} |\n",
            b.run_id,
            b.value,
            f(b.objects_created_per_sec),
            f(b.apiserver_request_p99_seconds),
            b.date
        ));
    }
    table.push_str(END);
    let text = std::fs::read_to_string(readme).unwrap_or_else(|_| format!("# Results\n\n{BEGIN}\n{END}\n"));
    let new = match (text.find(BEGIN), text.find(END)) {
        (Some(a), Some(b)) if a < b => format!("{}{table}{}", &text[..a], &text[b + END.len()..]),
        _ => format!("{text}\n{table}\n"),
    };
    std::fs::write(readme, new)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(passed: bool, p99: Option<f64>) -> Summary {
        let mut s: Summary = serde_json::from_value(serde_json::json!({
            "runId": "r", "profile": "smoke", "target": {"kind": "local"},
            "cost": {"estimatedUsd": 0.0, "hours": 0.1},
            "scale": {"kwokClusters": 1, "objectsPerCluster": 1, "totalObjects": 1, "objectKind": "pods", "density": 100, "scheduler": "kube-scheduler"},
            "metrics": {}, "slos": [], "passed": passed, "startedAt": "", "finishedAt": "2026-11-24T00:00:00Z",
            "phases": {}, "clusters": []
        }))
        .unwrap();
        s.metrics.insert(KEY_METRIC.into(), p99);
        s
    }

    #[test]
    fn only_a_better_passing_run_moves_the_baseline() {
        let b = Baseline {
            run_id: "old".into(),
            value: 2.0,
            objects_created_per_sec: None,
            apiserver_request_p99_seconds: None,
            date: String::new(),
        };
        assert_eq!(decide(Some(&b), &summary(false, Some(1.0))), Decision::NotPassed);
        assert_eq!(decide(Some(&b), &summary(true, None)), Decision::NoValue);
        assert!(matches!(decide(Some(&b), &summary(true, Some(3.0))), Decision::Kept { .. }));
        assert!(matches!(decide(Some(&b), &summary(true, Some(1.0))), Decision::Moved { previous: Some(_), .. }));
        assert!(matches!(decide(None, &summary(true, Some(9.0))), Decision::Moved { previous: None, .. }));
        let mut saturated = summary(true, Some(0.5));
        saturated.control_plane = crate::saturation::ControlPlane::judge([Some(7.3), None, None]);
        assert_eq!(decide(Some(&b), &saturated), Decision::Saturated);
    }

    #[test]
    fn table_is_rewritten_between_markers() {
        let dir = tempfile::tempdir().unwrap();
        let readme = dir.path().join("README.md");
        std::fs::write(&readme, format!("# R\n\nintro\n\n{BEGIN}\nold\n{END}\n\nafter\n")).unwrap();
        let all = BTreeMap::from([(
            "smoke".to_string(),
            Baseline {
                run_id: "r1".into(),
                value: 0.5,
                objects_created_per_sec: Some(40.0),
                apiserver_request_p99_seconds: None,
                date: "d".into(),
            },
        )]);
        write_table(&readme, &all).unwrap();
        let t = std::fs::read_to_string(&readme).unwrap();
        assert!(t.contains("| smoke | r1 | 0.500 | 40.000 | – | d |"), "{t}");
        assert!(!t.contains("old") && t.contains("intro") && t.contains("after"));
    }
}

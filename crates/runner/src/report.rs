//! The human report: `report.md` with the autoscaler KPIs and SVG plots (binding
//! latency, time to capacity, objects, Nodes, apiserver request latency over the
//! run), drawn from Prometheus.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use scaletest_core::profile::KwokMode;

use crate::faults::FaultRecord;
use crate::invariants::InvariantResult;
use crate::prom::{self, QueryError};
use crate::summary::{KPIS, SloResult};

struct Plot {
    file: &'static str,
    title: &'static str,
    unit: &'static str,
    query: &'static str,
}

const PLOTS: [Plot; 5] = [
    Plot {
        file: "binding-latency.svg",
        title: "Binding latency p99 (Pod created → PodScheduled)",
        unit: "s",
        query: "histogram_quantile(0.99, sum(rate(scaletest_load_driver_binding_latency_seconds_bucket[30s])) by (le))",
    },
    Plot {
        file: "time-to-capacity.svg",
        title: "Time to capacity p99 (Pod marked Unschedulable → bound)",
        unit: "s",
        query: "histogram_quantile(0.99, sum(rate(scaletest_load_driver_time_to_capacity_seconds_bucket[30s])) by (le))",
    },
    Plot {
        file: "objects.svg",
        title: "Objects active (all clusters)",
        unit: "",
        query: "sum(scaletest_load_driver_objects_active)",
    },
    Plot {
        file: "nodes.svg",
        title: "Fake Nodes (all clusters)",
        unit: "",
        query: "sum(kwok_node_count) or sum(scaletest_node_creator_nodes_created_total)",
    },
    Plot {
        file: "apiserver-latency.svg",
        title: "kube-apiserver request latency p99 (non-watch)",
        unit: "s",
        query: "histogram_quantile(0.99, sum(rate(apiserver_request_duration_seconds_bucket{verb!~\"WATCH|CONNECT\"}[30s])) by (le))",
    },
];

/// A line chart as SVG: pure, so it is testable without Prometheus.
pub fn svg(title: &str, unit: &str, points: &[(f64, f64)]) -> String {
    let (w, h, left, bottom, top, right) = (640.0, 240.0, 60.0, 30.0, 28.0, 12.0);
    let mut s = String::new();
    let _ = write!(
        s,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="11">
<rect width="100%" height="100%" fill="white"/>
<text x="{left}" y="16" font-size="13">{title}</text>
"##
    );
    if points.is_empty() {
        let _ = write!(s, r#"<text x="{}" y="{}">no data</text></svg>"#, w / 2.0 - 20.0, h / 2.0);
        return s;
    }
    let (t0, t1) = (points[0].0, points[points.len() - 1].0.max(points[0].0 + 1.0));
    let ymax = points.iter().map(|p| p.1).fold(0.0_f64, f64::max).max(1e-9) * 1.1;
    let x = |t: f64| left + (t - t0) / (t1 - t0) * (w - left - right);
    let y = |v: f64| top + (1.0 - v / ymax) * (h - top - bottom);
    let _ = write!(
        s,
        r##"<line x1="{left}" y1="{b}" x2="{r}" y2="{b}" stroke="#888"/><line x1="{left}" y1="{top}" x2="{left}" y2="{b}" stroke="#888"/>
<text x="4" y="{yt}">{ymax:.3}{unit}</text><text x="4" y="{b}">0</text>
<text x="{left}" y="{lx}">0 s</text><text x="{rx}" y="{lx}">{dur:.0} s</text>
"##,
        b = h - bottom,
        r = w - right,
        yt = top + 4.0,
        lx = h - 10.0,
        rx = w - right - 40.0,
        dur = t1 - t0,
    );
    let path: Vec<String> = points.iter().map(|(t, v)| format!("{:.1},{:.1}", x(*t), y(*v))).collect();
    let _ =
        write!(s, r##"<polyline fill="none" stroke="#1f77b4" stroke-width="1.5" points="{}"/></svg>"##, path.join(" "));
    s
}

/// The "Autoscaler KPIs" section: each KPI of `metrics` with what it means.
pub fn kpi_markdown(metrics: &BTreeMap<String, Option<f64>>) -> String {
    let mut md = String::from(
        "\n## Autoscaler KPIs\n\nMeasured by each cluster's load-driver from the apiserver, whatever made the \
         Nodes.\n\n| KPI | value |\n|---|---:|\n",
    );
    for k in &KPIS {
        let value = match metrics.get(k.key).copied().flatten() {
            Some(v) => format!("{v:.2} {}", k.unit).trim_end().to_string(),
            None => "no data".into(),
        };
        let _ = writeln!(md, "| {} (`{}`) | {value} |", k.meaning, k.key);
    }
    md
}

/// The invariants and faults of every cluster (name, invariants, faults) as markdown;
/// empty when nothing was checked.
pub fn failover_markdown(clusters: &[(String, Vec<InvariantResult>, Vec<FaultRecord>)]) -> String {
    let mut md = String::new();
    if clusters.iter().any(|(_, i, _)| !i.is_empty()) {
        md.push_str("\n## Invariants\n\n| cluster | invariant | verdict | detail |\n|---|---|---|---|\n");
        for (cluster, invariants, _) in clusters {
            for i in invariants {
                let verdict = if i.held { "held" } else { "**FAILED**" };
                let _ = writeln!(md, "| {cluster} | {} | {verdict} | {} |", i.name, i.detail.replace('|', "\\|"));
            }
        }
    }
    if clusters.iter().any(|(_, _, f)| !f.is_empty()) {
        md.push_str(
            "\n## Faults\n\nRecovery: from the fault until the component is ready again, kube-apiserver is ready and \
             the load-driver reports steady state.\n\n| cluster | at (s into soak) | target | action | recovery (s) |\n|---|---:|---|---|---:|\n",
        );
        for (cluster, _, faults) in clusters {
            for f in faults {
                let action = match f.hold_seconds {
                    Some(h) => format!("{} for {h:.0}s", f.action),
                    None => f.action.clone(),
                };
                let recovery = match (f.recovery_seconds, &f.error) {
                    (Some(r), _) => format!("{r:.1}"),
                    (None, Some(e)) => format!("**none**: {e}"),
                    (None, None) => "**none**".into(),
                };
                let _ = writeln!(md, "| {cluster} | {:.1} | {} | {action} | {recovery} |", f.at_seconds, f.target);
            }
        }
    }
    md
}

#[allow(clippy::too_many_arguments)]
pub async fn write(
    prom_addr: &str,
    output: &Path,
    run_id: &str,
    kwok_mode: KwokMode,
    elapsed: Duration,
    metrics: &BTreeMap<String, Option<f64>>,
    slos: &[SloResult],
    failover: &str,
) -> Result<(), QueryError> {
    let end = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs_f64();
    let start = end - elapsed.as_secs_f64().max(60.0);
    let step = ((end - start) / 200.0).max(5.0);
    let mut md = format!(
        "# scaletest run {run_id}\n\nkwok mode: **{kwok_mode}** (how closely kwok plays the kubelet: results/fidelity.md)\n\n\
         ## SLOs\n\n| SLO | value | threshold | verdict |\n|---|---:|---:|---|\n"
    );
    for s in slos {
        let v = s.value.map_or("no data".to_string(), |v| format!("{v:.4}"));
        let verdict = if s.passed { "pass" } else { "**FAIL**" };
        let _ = writeln!(md, "| {} | {v} | {:?} {} | {verdict} |", s.name, s.comparison, s.threshold);
    }
    md.push_str(&kpi_markdown(metrics));
    md.push_str(failover);
    md.push_str("\n## Metrics\n\n| metric | value |\n|---|---:|\n");
    for (k, v) in metrics {
        let _ = writeln!(md, "| {k} | {} |", v.map_or("no data".to_string(), |v| format!("{v:.4}")));
    }
    md.push_str("\n## Over time\n\n");
    for p in &PLOTS {
        let points = prom::query_range(prom_addr, p.query, start, end, step).await?;
        let rebased: Vec<(f64, f64)> = points.iter().map(|(t, v)| (t - start, *v)).collect();
        std::fs::write(output.join(p.file), svg(p.title, p.unit, &rebased))
            .map_err(|e| QueryError::Shape { query: p.file.into(), detail: e.to_string() })?;
        let _ = writeln!(md, "![{}]({})\n", p.title, p.file);
    }
    std::fs::write(output.join("report.md"), md)
        .map_err(|e| QueryError::Shape { query: "report.md".into(), detail: e.to_string() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_a_polyline_through_every_point() {
        let s = svg("t", "s", &[(0.0, 0.0), (10.0, 1.0), (20.0, 0.5)]);
        assert!(s.starts_with("<svg"));
        assert!(s.ends_with("</svg>"));
        let pts = s.split("points=\"").nth(1).unwrap().split('"').next().unwrap();
        assert_eq!(pts.split(' ').count(), 3);
        assert!(svg("t", "", &[]).contains("no data"));
    }

    #[test]
    fn the_kpi_section_lists_every_kpi_with_its_unit() {
        let metrics = BTreeMap::from([
            ("timeToCapacityP99Seconds".to_string(), Some(12.345)),
            ("nodesProvisioned".to_string(), Some(3.0)),
            ("nodesOvershootRatio".to_string(), None),
        ]);
        let md = kpi_markdown(&metrics);
        assert!(md.contains("## Autoscaler KPIs"), "{md}");
        assert_eq!(md.lines().filter(|l| l.starts_with("| ") && l.contains("(`")).count(), KPIS.len(), "{md}");
        assert!(md.contains("(`timeToCapacityP99Seconds`) | 12.35 s |"), "{md}");
        assert!(md.contains("(`nodesProvisioned`) | 3.00 |"), "{md}");
        assert!(md.contains("(`nodesOvershootRatio`) | no data |"), "{md}");
        assert!(md.contains("(`scaleUpsPerMinute`) | no data |"), "{md}");
    }

    #[test]
    fn failover_sections_name_failed_invariants_and_recoveries() {
        assert_eq!(failover_markdown(&[("c0".into(), vec![], vec![])]), "");
        let inv = |held| InvariantResult { name: "upcomingNodesHaveExactlyOneNode".into(), held, detail: "a|b".into() };
        let fault = |secs| FaultRecord {
            fault: 0,
            target: "kine".into(),
            action: "stop".into(),
            hold_seconds: Some(5.0),
            at_seconds: 10.0,
            injected_at: String::new(),
            pid: Some(1),
            recovery_seconds: secs,
            error: None,
        };
        let md = failover_markdown(&[("c0".into(), vec![inv(true), inv(false)], vec![fault(Some(7.26)), fault(None)])]);
        assert!(md.contains("| c0 | upcomingNodesHaveExactlyOneNode | **FAILED** | a\\|b |"), "{md}");
        assert!(md.contains("| c0 | 10.0 | kine | stop for 5s | 7.3 |"), "{md}");
        assert!(md.contains("| **none** |"), "{md}");
    }
}

//! Whole local runs of the runner, through the real binaries: every cluster,
//! harness process and Prometheus real. Serialised: each run loads both cores.

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::sync::Mutex;

use serde_json::Value;

mod common;

use common::{leftovers, runner, smoke_lifted, smoke_variant, summary};

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

#[test]
fn smoke_passes_with_measured_values_and_an_openable_snapshot() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let tmp = tempfile::tempdir().unwrap();
    let profile = smoke_lifted(tmp.path(), "smoke-lifted");
    let out = tmp.path().join("out");
    let status = runner(tmp.path())
        .args(["run", "--yes", "--profile"])
        .arg(&profile)
        .arg("--output")
        .arg(&out)
        .status()
        .unwrap();
    let s = summary(&out);
    assert_eq!(status.code(), Some(0), "summary: {s:#}");
    assert_eq!(s["passed"], true);
    assert_eq!(s["profile"], "smoke-lifted");
    assert_eq!(s["slos"].as_array().unwrap().len(), 4, "{:#}", s["slos"]);
    let m = &s["metrics"];
    assert_eq!(m["objectsActive"].as_f64(), Some(200.0), "{m:#}");
    let p99 = m["bindingLatencyP99Seconds"].as_f64().unwrap();
    let p50 = m["bindingLatencyP50Seconds"].as_f64().unwrap();
    assert!(p99 > 0.0 && p50 > 0.0 && p50 <= p99, "{m:#}");
    assert!(m["objectsCreatedPerSec"].as_f64().unwrap() > 0.0);
    assert!(m["apiserverRequestP99Seconds"].as_f64().unwrap() > 0.0);
    // Autoscaler KPIs, from the load-driver alone: no Node at first, so every Pod waited
    // for the reference SUT's; 200 Pods at density 100 need 2 (churn may briefly need more).
    let kpi = |key: &str| m[key].as_f64().unwrap_or_else(|| panic!("{key}: {m:#}"));
    assert!(kpi("timeToCapacityP99Seconds") > 0.0 && kpi("pendingPodSeconds") > 0.0, "{m:#}");
    assert!(kpi("nodesCreated") >= 2.0 && kpi("nodesProvisioned") >= 2.0 && kpi("nodesIdeal") >= 2.0, "{m:#}");
    assert!(kpi("nodesOvershootRatio") > 0.0 && kpi("scaleUpsPerMinute") > 0.0, "{m:#}");
    kpi("nodeReadyLatencyP99Seconds");
    assert!(s["slos"].as_array().unwrap().iter().all(|x| x["value"].is_number()), "{:#}", s["slos"]);
    for f in ["report.md", "binding-latency.svg", "time-to-capacity.svg", "objects.svg"] {
        assert!(out.join(f).exists(), "{f} missing");
    }
    assert!(leftovers(tmp.path()).is_empty(), "{:#?}", leftovers(tmp.path()));

    // The snapshot opens in Prometheus and holds the run's series.
    let value = common::replay_snapshot(tmp.path(), &out, "max_over_time(scaletest_load_driver_objects_active[1h])");
    assert_eq!(value, 200.0);
}

#[test]
fn an_impossible_slo_fails_the_run_and_names_it() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let tmp = tempfile::tempdir().unwrap();
    let profile = smoke_variant(tmp.path(), "smoke-impossible", |t| {
        t.replace(
            "# `slos` is left out",
            "slos:\n  - name: impossibleBindingP99\n    query: histogram_quantile(0.99, sum(rate(scaletest_load_driver_binding_latency_seconds_bucket[$window])) by (le))\n    threshold: 0.000001\n# `slos` was left out",
        )
    });
    let (code, s, _) = common::run(tmp.path(), &profile, &["--duration", "10s"]);
    assert_eq!(code, Some(1), "{s:#}");
    assert_eq!(s["passed"], false);
    let reason = s["reason"].as_str().unwrap();
    assert!(reason.contains("impossibleBindingP99"), "{reason}");
    assert!(s["slos"][0]["value"].as_f64().unwrap() > 0.000001);
    assert!(leftovers(tmp.path()).is_empty());
}

#[test]
fn an_slo_query_prometheus_refuses_fails_the_run_before_the_load() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let tmp = tempfile::tempdir().unwrap();
    // Valid PromQL to the profile's parser, which knows newer functions; Debian's
    // Prometheus 2.42 does not know mad_over_time (3.x keeps it behind a feature flag).
    let profile = smoke_variant(tmp.path(), "smoke-refused-slo", |t| {
        t.replace(
            "# `slos` is left out",
            "slos:\n  - name: objectsSpread\n    query: sum(mad_over_time(scaletest_load_driver_objects_active[$window]))\n    threshold: 1\n# `slos` was left out",
        )
    });
    let (code, s, _) = common::run(tmp.path(), &profile, &["--duration", "10m"]);
    assert_eq!(code, Some(1), "{s:#}");
    assert_eq!(s["passed"], false);
    let reason = s["reason"].as_str().unwrap();
    let expected =
        format!("{}: slos[0].query: Prometheus refused the query of SLO \"objectsSpread\": ", profile.display());
    assert!(reason.starts_with(&expected), "{reason}");
    assert!(reason.contains("mad_over_time") && !reason.contains("%28"), "{reason}");
    // Refused before the load: no steady state, no soak, nothing judged.
    let phases = s["phases"].as_object().unwrap();
    assert!(!phases.contains_key("steadyState") && !phases.contains_key("soak"), "{phases:?}");
    assert!(phases.contains_key("teardown"), "{phases:?}");
    assert_eq!(s["slos"], serde_json::json!([]));
    assert!(leftovers(tmp.path()).is_empty(), "{:#?}", leftovers(tmp.path()));
}

#[test]
fn validate_refuses_an_slo_query_that_does_not_parse() {
    let tmp = tempfile::tempdir().unwrap();
    let profile = smoke_variant(tmp.path(), "smoke-typo", |t| {
        t.replace(
            "# `slos` is left out",
            "slos:\n  - name: myP99\n    query: histogram_quantile(0.99, sum(rate(x_bucket[$window])) by (le)\n    threshold: 1\n# `slos` was left out",
        )
    });
    let out = runner(tmp.path()).arg("validate").arg(&profile).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    let line = format!(
        "{}: slos[0].query: expected a PromQL expression (SLO \"myP99\"), found \"histogram_quantile(0.99, sum(rate(x_bucket[$window])) by (le)\": unclosed left parenthesis",
        profile.display()
    );
    assert!(stderr.lines().any(|l| l == line), "{stderr}");
}

#[test]
fn sigint_mid_soak_tears_everything_down() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let mut child = runner(tmp.path())
        .args(["run", "--profile", "profiles/smoke.yaml", "--yes", "--duration", "10m", "--output"])
        .arg(&out)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut ports = Vec::new();
    let lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut lines = lines.map_while(Result::ok);
    for line in lines.by_ref() {
        if let Some(url) = line.strip_prefix("[install] prometheus on http://127.0.0.1:") {
            ports.push(url.trim().parse::<u16>().unwrap());
        }
        if line.starts_with("[soak]") {
            break;
        }
    }
    // Every port the clusters hold, from their endpoints files.
    for dir in std::fs::read_dir(tmp.path())
        .unwrap()
        .flatten()
        .filter(|d| d.file_name().to_string_lossy().starts_with("scaletest-run-"))
    {
        for c in std::fs::read_dir(dir.path()).unwrap().flatten() {
            if let Ok(t) = std::fs::read_to_string(c.path().join("endpoints.json")) {
                let e: Value = serde_json::from_str(&t).unwrap();
                ports.extend(e["ports"].as_object().unwrap().values().map(|p| p.as_u64().unwrap() as u16));
            }
        }
    }
    assert!(ports.len() > 5, "ports seen: {ports:?}");
    assert!(!leftovers(tmp.path()).is_empty(), "the run should be up");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGINT).unwrap();
    let rest: Vec<String> = lines.collect();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130), "{rest:#?}");
    let s = summary(&out);
    assert_eq!(s["passed"], false);
    assert!(s["reason"].as_str().unwrap().contains("interrupted"));
    assert!(leftovers(tmp.path()).is_empty(), "{:#?}", leftovers(tmp.path()));
    for p in ports {
        assert!(scaletest_cluster::ports::is_free(p), "port {p} still held");
    }
    let temp_dirs: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .flatten()
        .filter(|d| d.file_name().to_string_lossy().starts_with("scaletest-"))
        .collect();
    assert!(temp_dirs.is_empty(), "temp dirs left: {temp_dirs:?}");
}

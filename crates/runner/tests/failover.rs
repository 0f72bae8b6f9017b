//! The failover soak, CI-sized: real processes, one simulated cluster, 300 Pods on 30
//! fake Nodes, a one-minute soak during which the runner kills the SUT, kube-apiserver
//! and kine once each. The invariants must hold and every recovery be measured; with a
//! node-creator that skips every 10th UpcomingNode, the verdict must fail naming the
//! invariant. Serialised: each run loads both cores.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use serde_json::Value;

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Density 10 makes 30 UpcomingNodes, so "every 10th" skips three. No SLOs: their
/// thresholds are not what this test is about (the smoke test judges them), and
/// binding latency across an apiserver outage on 2 shared cores is not a verdict.
const PROFILE: &str = "\
name: failover-ci
description: 1 cluster x 300 Pods; kills the SUT, kube-apiserver and kine once each mid-soak.
kwok: {clusterCount: 1}
harness: {scheduler: kube-scheduler, density: 10}
loadProfile:
  kind: pods
  objectsPerCluster: 300
  seed: 7
  phases:
    - ramp: {rate: 50}
    - steady: {duration: 45s, churnPercent: 10, churnInterval: 10s}
sut:
  reference: {provisioningDelay: 1s, cycleInterval: 1s}
slos: []
costEstimate: {awsSpotUsdPerHour: 0, vcpu: 1, memoryGb: 1}
durations: {soak: 60s, steadyStateTimeout: 5m}
faults:
  - {at: 5s, target: sut, action: kill}
  - {at: 20s, target: kube-apiserver, action: kill}
  - {at: 40s, target: kine, action: kill}
";

const INVARIANTS: [&str; 6] = [
    "podsBoundOrDeleted",
    "capacityRequestsFulfilledOrCollected",
    "upcomingNodesHaveExactlyOneNode",
    "nodesHaveAnUpcomingNode",
    "driverCountsMatchApiserver",
    "recoveredAfterEveryFault",
];

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Runs the runner on [`PROFILE`] with `extra` flags; returns its exit code and summary.
fn run(tmp: &Path, extra: &[&str]) -> (Option<i32>, Value, PathBuf) {
    let profile = tmp.join("failover-ci.yaml");
    std::fs::write(&profile, PROFILE).unwrap();
    let out = tmp.join("out");
    let status = Command::new(env!("CARGO_BIN_EXE_scaletest-runner"))
        .env("TMPDIR", tmp)
        .env("NO_COLOR", "1")
        .current_dir(repo())
        .args(["run", "--yes", "--profile"])
        .arg(&profile)
        .arg("--output")
        .arg(&out)
        .args(extra)
        .status()
        .unwrap();
    let text = std::fs::read_to_string(out.join("summary.json")).expect("summary.json written");
    (status.code(), serde_json::from_str(&text).unwrap(), out)
}

fn invariant<'a>(cluster: &'a Value, name: &str) -> &'a Value {
    cluster["invariants"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["name"] == name)
        .unwrap_or_else(|| panic!("no invariant {name} in {cluster:#}"))
}

#[test]
fn killing_sut_apiserver_and_kine_mid_soak_loses_nothing() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let tmp = tempfile::tempdir().unwrap();
    let (code, s, out) = run(tmp.path(), &[]);
    assert_eq!(code, Some(0), "{s:#}");
    assert_eq!(s["passed"], true);
    let cluster = &s["clusters"][0];
    for name in INVARIANTS {
        let i = invariant(cluster, name);
        assert_eq!(i["held"], true, "{i:#}");
    }
    assert!(invariant(cluster, "podsBoundOrDeleted")["detail"].as_str().unwrap().starts_with("300 Pods, all bound"));

    // Each fault really hit, and the cluster came back: a measured recovery each.
    let faults = cluster["faults"].as_array().unwrap();
    let targets: Vec<&str> = faults.iter().map(|f| f["target"].as_str().unwrap()).collect();
    assert_eq!(targets, ["sut", "kube-apiserver", "kine"], "{faults:#?}");
    // Each injected at its own offset into the soak, not before.
    for (f, offset) in faults.iter().zip([5.0, 20.0, 40.0]) {
        assert!(f["atSeconds"].as_f64().unwrap() >= offset, "{f:#}");
    }
    for f in faults {
        assert_eq!(f["action"], "kill");
        assert!(f["pid"].as_u64().unwrap() > 1, "{f:#}");
        assert!(f["recoverySeconds"].as_f64().unwrap() > 0.0, "{f:#}");
    }
    let m = &s["metrics"];
    assert_eq!(m["faultsInjected"].as_f64(), Some(3.0), "{m:#}");
    assert!(m["faultRecoveryMaxSeconds"].as_f64().unwrap() >= m["faultRecoveryMeanSeconds"].as_f64().unwrap());
    assert!(m["componentRestarts"].as_f64().unwrap() >= 3.0, "{m:#}");
    assert_eq!(m["objectsActive"].as_f64(), Some(300.0), "{m:#}");

    // The supervisor started each killed component a second time (its log says so).
    for component in ["sut", "kube-apiserver", "kine"] {
        let log = std::fs::read_to_string(out.join("logs/cluster-0").join(format!("{component}.log"))).unwrap();
        assert!(log.contains(&format!("start #2 of {component}")), "{component} was not restarted");
    }
    let report = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(report.contains("## Invariants") && report.contains("## Faults"), "{report}");
}

#[test]
fn a_node_creator_that_skips_every_10th_upcoming_node_fails_the_verdict() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let tmp = tempfile::tempdir().unwrap();
    let (code, s, _) = run(tmp.path(), &["--node-creator-skip-every", "10"]);
    assert_eq!(code, Some(1), "{s:#}");
    assert_eq!(s["passed"], false);
    let reason = s["reason"].as_str().unwrap();
    assert!(
        reason.contains("invariant failed: ") && reason.contains("cluster-0 upcomingNodesHaveExactlyOneNode ("),
        "{reason}"
    );
    let i = invariant(&s["clusters"][0], "upcomingNodesHaveExactlyOneNode");
    assert_eq!(i["held"], false);
    // Every 10th of the UpcomingNodes node-creator saw has no Node.
    assert!(i["detail"].as_str().unwrap().contains("(0 Nodes)"), "{i:#}");
}

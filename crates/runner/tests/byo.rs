//! Bringing your own controller: whole local runs with a user's controller as the
//! system under test, through the real binaries (clusters, Prometheus, the controller).
//! Serialised: each run loads both cores.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

mod common;

use common::{leftovers, repo, run};

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// A profile file `name`.yaml in `dir`, from `profiles/<from>.yaml` with `edit` applied
/// (its relative paths are made absolute, as they are resolved against the original).
fn variant(dir: &Path, from: &str, name: &str, edit: impl Fn(String) -> String) -> PathBuf {
    let text = std::fs::read_to_string(repo().join(format!("profiles/{from}.yaml"))).unwrap();
    let profiles = repo().join("profiles").canonicalize().unwrap();
    let text = text.replace(&format!("name: {from}\n"), &format!("name: {name}\n")).replace(
        "manifests: [karpenter/crds, karpenter]",
        &format!("manifests: [{0}/karpenter/crds, {0}/karpenter]", profiles.display()),
    );
    let path = dir.join(format!("{name}.yaml"));
    std::fs::write(&path, edit(text)).unwrap();
    path
}

/// A controller that never provisions: the run fails at its steady-state timeout and
/// says where the chain stuck (Pods active and bound, the invariant that does not hold).
#[test]
fn a_controller_that_never_provisions_fails_with_the_chains_state() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let tmp = tempfile::tempdir().unwrap();
    let profile = variant(tmp.path(), "smoke", "byo-idle", |t| {
        t.replace("  binderWorkers: 16             # pod-shim only\n", "  nodes: sut\n")
            .replace(
                "sut:\n  reference:\n    provisioningDelay: 2s\n    acknowledgeConcurrency: 16\n    cycleInterval: 1s\n",
                "sut:\n  command: [sleep, \"3600\"]\n",
            )
            .replace("objectsPerCluster: 200", "objectsPerCluster: 40")
            .replace("steadyStateTimeout: 5m", "steadyStateTimeout: 45s")
    });
    let (code, s, _) = run(tmp.path(), &profile, &[]);
    assert_eq!(code, Some(1), "{s:#}");
    assert_eq!(s["passed"], false);
    let reason = s["reason"].as_str().unwrap();
    assert!(reason.contains("steady state not reached"), "{reason}");
    assert!(reason.contains("40 active, 0 bound"), "{reason}");
    assert!(reason.contains("podsBoundOrDeleted (40 of 40 Pods not bound"), "{reason}");
    assert!(leftovers(tmp.path()).is_empty(), "{:#?}", leftovers(tmp.path()));
}

/// Karpenter's kwok provider as the SUT, end to end and small enough for CI: all Pods
/// bound on Nodes it made, the harness's KPIs in the summary, its own `karpenter_*`
/// series scraped with the cluster label. The SLO thresholds are lifted: this proves
/// the chain on a shared machine; how fast it is belongs to `make bench` and results/.
#[test]
fn karpenter_provisions_every_pod_and_passes() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let bin = scaletest_cluster::binaries::default_bin_dir();
    scaletest_cluster::binaries::find("karpenter-kwok", &bin)
        .unwrap_or_else(|e| panic!("{e} (scripts/upstream.sh build builds it)"));
    let tmp = tempfile::tempdir().unwrap();
    let profile = variant(tmp.path(), "karpenter", "karpenter-ci", |t| {
        t.replace("objectsPerCluster: 1000", "objectsPerCluster: 300")
            .replace("- ramp: {rate: 20}", "- ramp: {rate: 30}")
            .replace(
                "{duration: 2m, churnPercent: 5, churnInterval: 30s}",
                "{duration: 30s, churnPercent: 10, churnInterval: 10s}",
            )
            .replace("  soak: 2m\n", "  soak: 30s\n")
            // Karpenter observes its bound duration only for Pods its pod-metrics controller
            // saw unbound: at 300 Pods on a quiet machine it had none twice. Its series are
            // checked in the snapshot below; the SLO over them is the 1K profile's.
            .replace(
                "  - name: karpenterPodsBoundP99Seconds\n    query: histogram_quantile(0.99, sum(max_over_time(karpenter_pods_bound_duration_seconds_bucket[$window])) by (le))\n    threshold: 30\n",
                "",
            )
            .replace("    threshold: 30\n", "    threshold: 600\n")
    });
    let (code, s, out) = run(tmp.path(), &profile, &[]);
    assert_eq!(code, Some(0), "{s:#}");
    let m = &s["metrics"];
    assert_eq!(m["objectsActive"].as_f64(), Some(300.0), "{m:#}");
    assert!(m["nodesProvisioned"].as_f64().unwrap() >= 1.0, "{m:#}");
    assert!(m["timeToCapacityP99Seconds"].as_f64().unwrap() > 0.0, "{m:#}");
    let invariants = s["clusters"][0]["invariants"].as_array().unwrap();
    let from_sut = invariants.iter().find(|i| i["name"] == "nodesMadeByTheSut").unwrap();
    assert_eq!(from_sut["held"], true, "{invariants:#?}");
    let detail = from_sut["detail"].as_str().unwrap();
    assert!(detail.contains("created by: karpenter ("), "{from_sut}");
    assert_eq!(m["nodesCreated"], m["nodesProvisioned"], "{m:#}");
    let report = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(report.contains("Time to capacity") || report.contains("time to capacity"), "{report}");
    assert!(leftovers(tmp.path()).is_empty(), "{:#?}", leftovers(tmp.path()));

    // The snapshot holds Karpenter's own series with the cluster label.
    let query = "sum(max_over_time(karpenter_nodeclaims_created_total{cluster=\"cluster-0\", component=\"sut\"}[1h]))";
    let claims = common::replay_snapshot(tmp.path(), &out, query);
    assert!(claims >= 1.0, "karpenter_nodeclaims_created_total of cluster-0 in the snapshot: {claims}");
}

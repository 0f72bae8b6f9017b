//! kube-apiserver through a 2,000-Pod burst, scheduled by kube-scheduler onto
//! Nodes the reference SUT provisions (issue #14). When kine reported an etcd
//! that supports RequestWatchProgress (its default, 3.6.11), the watch cache
//! asked kine for progress whenever a consistent read waited for it, and kine
//! answered with a broadcast notification (watch id -1). The etcd v3.7.0 client
//! sends a broadcast to every substream, including one kine has just cancelled
//! (its broadcaster drops a watcher that fell behind) and the client has closed
//! but not yet removed: "panic: send on closed channel" (watch.go:747), the
//! apiserver dies and the supervisor restarts it. This burst did that twice in
//! its first minute on two cores; the test fails if the apiserver ever restarted.

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};
use scaletest_cluster::control;
use scaletest_cluster::testkit::{TestCluster, eventually_described};

const PODS: usize = 2000;

fn profile(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("burst.yaml");
    // As `make bench`'s binding run: everything at once, no apiserver throttling.
    std::fs::write(
        &path,
        format!(
            "name: burst
kwok: {{clusterCount: 1}}
harness: {{scheduler: kube-scheduler, density: 100, apiserverLimits: unlimited}}
loadProfile:
  kind: pods
  objectsPerCluster: {PODS}
  namespaces: 10
  pod: {{cpu: 100m, memory: 128Mi}}
  qps: 1000000
  burst: 100
  phases:
    - burst: {{count: {PODS}}}
sut:
  reference: {{provisioningDelay: 1s, cycleInterval: 1s}}
costEstimate: {{awsSpotUsdPerHour: 0, vcpu: 1, memoryGb: 1}}
"
        ),
    )
    .unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apiserver_survives_a_two_thousand_pod_burst() {
    let dir = tempfile::tempdir().unwrap();
    let p = profile(dir.path());
    let c = TestCluster::start("burst", &["--profile", p.to_str().unwrap(), "--run-id", "burst"]).await;
    let admin = c.endpoints.metrics_address("scaletest-cluster").unwrap().to_string();
    let pods: Api<Pod> = Api::all(c.client.clone());

    // Polling with consistent LISTs (resourceVersion unset) is part of the load: each one
    // made the old configuration request watch progress.
    let bound = eventually_described(Duration::from_secs(900), "every Pod bound", || async {
        let status = control::child_status(&admin, "kube-apiserver").await.map_err(|e| e.to_string())?;
        assert_eq!(status.starts, 1, "kube-apiserver restarted during the burst: {status:?}");
        let list = pods.list(&ListParams::default().labels("scaletest-run=burst")).await.map_err(|e| e.to_string())?;
        let bound = list.items.iter().filter(|p| p.spec.as_ref().is_some_and(|s| s.node_name.is_some())).count();
        if list.items.len() == PODS && bound == PODS {
            return Ok(bound);
        }
        Err(format!("{} Pods, {bound} bound", list.items.len()))
    })
    .await;
    assert_eq!(bound, PODS);

    let status = control::child_status(&admin, "kube-apiserver").await.unwrap();
    let log = std::fs::read_to_string(c.endpoints.data_dir.join("logs/kube-apiserver.log")).unwrap();
    let panics: Vec<&str> = log.lines().filter(|l| l.starts_with("panic:")).collect();
    assert!(status.starts == 1 && panics.is_empty(), "kube-apiserver restarted: {status:?} {panics:?}");
    // The configuration took: the apiserver does not ask kine for watch progress.
    assert!(log.contains("RequestWatchProgress feature is not supported"), "kine's reported etcd version");
    c.stop_and_assert_clean().await;
}

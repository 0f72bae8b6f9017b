//! The load-driver against one real simulated cluster (kine, kube-apiserver,
//! kube-controller-manager, kube-scheduler, kwok) started through `scaletest-cluster`.
//! Build the supervisor and what it runs first:
//! `cargo build -p scaletest-cluster -p scaletest-node-creator --bins`.

use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Node, Pod};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use scaletest_cluster::process::log_tail;
use scaletest_cluster::testkit::{
    LOG_TAIL_LINES, TestCluster, eventually, eventually_described, fake_node, http_get, is_unschedulable,
};
use scaletest_core::constants::RUN_LABEL;
use scaletest_core::crd::CapacityRequest;
use scaletest_core::density::DensityModel;
use scaletest_core::profile::BINDING_LATENCY_METRIC;
use tokio::process::{Child, Command};

/// Long enough for a loaded CI machine; every wait ends as soon as its condition holds.
const LOAD_TIMEOUT: Duration = Duration::from_secs(120);

const COST: &str = "costEstimate: {awsSpotUsdPerHour: 0, vcpu: 1, memoryGb: 1}\n";

/// A running simulated cluster with one kwok-managed Node with room for every Pod,
/// churned ones still terminating included.
async fn start_cluster(name: &str) -> TestCluster {
    let c = TestCluster::start(name, &[]).await;
    let density = DensityModel { pods_per_node: 200, ..DensityModel::default() };
    let node = fake_node("kwok-node-0", &density);
    Api::<Node>::all(c.client.clone()).create(&PostParams::default(), &node).await.unwrap();
    c
}

/// Writes `text` to `file` in the cluster's scratch directory.
fn write_file(c: &TestCluster, file: &str, text: &str) -> PathBuf {
    let path = c.dir.path().join(file);
    std::fs::write(&path, text).unwrap();
    path
}

struct Driver {
    child: Child,
    metrics_addr: String,
    log: PathBuf,
}

impl Driver {
    /// Starts the driver on `profile` with `run_id`, logging to `<log_name>.log`.
    fn start(c: &TestCluster, profile: &Path, run_id: &str, log_name: &str, extra: &[&str]) -> Self {
        let metrics_addr = format!("127.0.0.1:{}", free_port());
        let log = c.dir.path().join(format!("{log_name}.log"));
        let log_file = std::fs::File::create(&log).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_scaletest-load-driver"))
            .arg("--kubeconfig")
            .arg(&c.endpoints.kubeconfig)
            .arg("--profile")
            .arg(profile)
            .args(["--run-id", run_id, "--cluster", "it", "--metrics-addr", &metrics_addr])
            .args(extra)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().unwrap())
            .stderr(log_file)
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        Driver { child, metrics_addr, log }
    }

    async fn metrics(&self) -> Option<String> {
        http_get(&self.metrics_addr, "/metrics").await
    }

    /// Polls the metrics until `check` accepts them; returns that scrape.
    async fn metrics_until(&self, what: &str, check: impl Fn(&Metrics) -> bool) -> Metrics {
        eventually(LOAD_TIMEOUT, what, Some(self.log.as_path()), || async {
            let m = Metrics(self.metrics().await?);
            check(&m).then_some(m)
        })
        .await
    }

    /// SIGTERM: the driver must exit promptly and cleanly.
    async fn terminate(mut self) -> ExitStatus {
        kill(Pid::from_raw(self.child.id().unwrap() as i32), Signal::SIGTERM).unwrap();
        let status = tokio::time::timeout(Duration::from_secs(10), self.child.wait())
            .await
            .unwrap_or_else(|_| {
                panic!("driver still running 10 s after SIGTERM:\n{}", log_tail(&self.log, LOG_TAIL_LINES))
            })
            .unwrap();
        assert!(status.success(), "driver exited with {status}:\n{}", log_tail(&self.log, LOG_TAIL_LINES));
        status
    }
}

/// One scrape of the driver's metrics.
struct Metrics(String);

impl Metrics {
    /// The value of the sample named exactly `series` (name plus labels), if present.
    fn get(&self, series: &str) -> Option<f64> {
        self.0.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.split_whitespace().next()?.parse().ok())
    }

    fn value(&self, series: &str) -> f64 {
        self.get(series).unwrap_or_else(|| panic!("no {series} in:\n{}", self.0))
    }

    fn driver(&self, name: &str) -> f64 {
        self.value(&format!("scaletest_load_driver_{name}"))
    }

    fn holding_steady(&self) -> bool {
        self.get("scaletest_load_driver_phase{phase=\"holding\"}") == Some(1.0)
            && self.get("scaletest_load_driver_steady_state") == Some(1.0)
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn selector(run_id: &str) -> ListParams {
    ListParams::default().labels(&format!("{RUN_LABEL}={run_id}"))
}

async fn live_pods(client: &Client, run_id: &str) -> Vec<Pod> {
    let pods = Api::<Pod>::all(client.clone()).list(&selector(run_id)).await.unwrap();
    pods.items.into_iter().filter(|p| p.metadata.deletion_timestamp.is_none()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_ramp_churn_and_are_held_bound_until_sigterm() {
    const RUN: &str = "it-pods";
    const OBJECTS: f64 = 60.0;
    // 20 % of 60 Pods every 2 s for 5 s: rounds of 12.
    const CHURN_PER_ROUND: f64 = 12.0;
    let c = start_cluster("pods").await;
    let profile = write_file(
        &c,
        "it-pods.yaml",
        &format!(
            "name: it-pods\nkwok: {{clusterCount: 1}}\nloadProfile:\n  kind: pods\n  objectsPerCluster: 60\n  \
             namespaces: 2\n  pod: {{cpu: 100m, memory: 128Mi}}\n  seed: 7\n  qps: 100\n  burst: 50\n  phases:\n    \
             - ramp: {{rate: 30}}\n    - steady: {{duration: 5s, churnPercent: 20, churnInterval: 2s}}\n{COST}"
        ),
    );
    let gate = c.dir.path().join("start");
    let driver = Driver::start(&c, &profile, RUN, "pods", &["--start-gate", gate.to_str().unwrap()]);

    // Ready (watch synced) before the gate opens, and no load until it does.
    eventually(LOAD_TIMEOUT, "the driver ready", Some(driver.log.as_path()), || async {
        http_get(&driver.metrics_addr, "/readyz").await.map(drop)
    })
    .await;
    let before = Metrics(driver.metrics().await.unwrap());
    assert_eq!(before.driver("created_total"), 0.0);
    std::fs::write(&gate, "").unwrap();

    // Ramp (2 s), steady with churn (5 s), then holding with every Pod bound.
    let m = driver.metrics_until("holding a steady state", Metrics::holding_steady).await;
    assert_eq!(m.driver("objects_target"), OBJECTS);
    assert_eq!(m.driver("objects_active"), OBJECTS);
    assert_eq!(m.driver("objects_bound"), OBJECTS);
    let (created, deleted) = (m.driver("created_total"), m.driver("deleted_total"));
    assert!(deleted >= CHURN_PER_ROUND, "at least one churn round: deleted {deleted}");
    assert_eq!(deleted % CHURN_PER_ROUND, 0.0, "whole rounds of 20 %: deleted {deleted}");
    assert!(created >= OBJECTS + deleted, "created {created}, deleted {deleted}");
    assert!(m.value(&format!("{BINDING_LATENCY_METRIC}_count")) >= OBJECTS);
    assert_eq!(m.driver("errors_total{operation=\"create\"}"), 0.0);

    // What the cluster holds: 60 live Pods of the run, each bound to the fake Node.
    let live = live_pods(&c.client, RUN).await;
    assert_eq!(live.len() as f64, OBJECTS);
    for pod in &live {
        assert_eq!(pod.spec.as_ref().unwrap().node_name.as_deref(), Some("kwok-node-0"), "{}", pod.name_any());
    }
    let mut namespaces: Vec<String> = live.iter().filter_map(|p| p.namespace()).collect();
    namespaces.sort_unstable();
    namespaces.dedup();
    assert_eq!(namespaces, ["scaletest-0", "scaletest-1"]);
    let ns = Api::<Namespace>::all(c.client.clone()).get("scaletest-1").await.unwrap();
    assert_eq!(ns.labels().get(RUN_LABEL).map(String::as_str), Some(RUN));
    // Churned Pods were replaced under new indices, past the first 60.
    let indices = live.iter().filter_map(|p| p.name_any().strip_prefix("pod-")?.parse::<u64>().ok());
    assert!(indices.max().unwrap() >= 60, "churn recreates under new names");
    assert_eq!(m.driver("objects_lost_total"), 0.0);

    // Pods that vanish behind the driver's back (as kine has lost acknowledged
    // creates) are counted lost and created again under the same names.
    let mut gone: Vec<String> = Vec::new();
    for pod in live.iter().take(3) {
        let api: Api<Pod> = Api::namespaced(c.client.clone(), &pod.namespace().unwrap());
        api.delete(&pod.name_any(), &DeleteParams::default().grace_period(0)).await.unwrap();
        gone.push(pod.name_any());
    }
    let m = driver
        .metrics_until("3 lost Pods found and created again", |m| {
            m.driver("objects_lost_total") == 3.0 && m.driver("steady_state") == 1.0
        })
        .await;
    assert_eq!(m.driver("objects_active"), OBJECTS);
    let live = live_pods(&c.client, RUN).await;
    assert_eq!(live.len() as f64, OBJECTS);
    for name in &gone {
        assert!(live.iter().any(|p| &p.name_any() == name), "{name} created again");
    }

    driver.terminate().await;
    c.stop().await;
}

const DEPLOYMENT: &str = r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: "{{name}}"
  labels: {app: "{{name}}"}
  annotations: {scaletest.dev/index: "{{index}}"}
spec:
  replicas: 2
  selector: {matchLabels: {app: "{{name}}"}}
  template:
    metadata:
      labels: {app: "{{name}}"}
    spec:
      automountServiceAccountToken: false
      containers:
        - name: app
          image: registry.invalid/scaletest:fake
          resources: {requests: {cpu: 100m, memory: 128Mi}}
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manifest_deployments_are_applied_and_their_pods_measured() {
    const RUN: &str = "it-manifest";
    let c = start_cluster("manifest").await;
    write_file(&c, "deployment.yaml", DEPLOYMENT);
    let profile = write_file(
        &c,
        "it-manifest.yaml",
        &format!(
            "name: it-manifest\nkwok: {{clusterCount: 1}}\nloadProfile:\n  kind: manifest\n  template: deployment.yaml\n  \
             objectsPerCluster: 4\n  namespaces: 2\n  phases:\n    - burst: {{count: 4}}\n{COST}"
        ),
    );
    let driver = Driver::start(&c, &profile, RUN, "manifest", &[]);

    // Steady only once every Deployment's two Pods exist and are bound.
    let m = driver.metrics_until("holding a steady state", Metrics::holding_steady).await;
    assert_eq!(m.driver("objects_active"), 4.0);
    assert_eq!(m.driver("objects_bound"), 8.0);
    assert!(m.value(&format!("{BINDING_LATENCY_METRIC}_count")) >= 8.0);

    let deployments = Api::<Deployment>::all(c.client.clone()).list(&selector(RUN)).await.unwrap();
    let mut names: Vec<(String, String)> =
        deployments.items.iter().map(|d| (d.namespace().unwrap(), d.name_any())).collect();
    names.sort();
    let mut expected: Vec<(String, String)> =
        (0..4).map(|i| (format!("scaletest-{}", i % 2), format!("deployment-{i}"))).collect();
    expected.sort();
    assert_eq!(names, expected);
    let d3 = deployments.items.iter().find(|d| d.name_any() == "deployment-3").unwrap();
    assert_eq!(d3.annotations().get("scaletest.dev/index").map(String::as_str), Some("3"));
    let pods = live_pods(&c.client, RUN).await;
    assert_eq!(pods.len(), 8, "the run label reaches the Pods through the Pod template");
    assert!(pods.iter().all(|p| p.spec.as_ref().unwrap().node_name.is_some()));

    driver.terminate().await;
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capacity_requests_are_measured_until_acknowledged_and_adopted_after_a_restart() {
    const RUN: &str = "it-capreq";
    const OBJECTS: usize = 10;
    let c = start_cluster("capreq").await;
    let profile = write_file(
        &c,
        "it-capreq.yaml",
        &format!(
            "name: it-capreq\nkwok: {{clusterCount: 1}}\nloadProfile:\n  kind: capacityRequests\n  \
             objectsPerCluster: 10\n  namespaces: 2\n  pod: {{cpu: 250m, memory: 1Gi}}\n  phases:\n    \
             - ramp: {{rate: 20}}\n{COST}"
        ),
    );
    let driver = Driver::start(&c, &profile, RUN, "capreq", &[]);
    let created = driver.metrics_until("every CapacityRequest created", |m| m.driver("objects_active") == 10.0).await;
    assert_eq!(created.driver("steady_state"), 0.0, "nothing acknowledged yet");

    // Play the system under test: acknowledge every request of the run.
    let api: Api<CapacityRequest> = Api::all(c.client.clone());
    let crs = api.list(&selector(RUN)).await.unwrap().items;
    assert_eq!(crs.len(), OBJECTS);
    for cr in &crs {
        assert_eq!(cr.spec.need.count, 1);
        assert_eq!(cr.spec.need.cpu.0, "250m");
        let ns_api: Api<CapacityRequest> = Api::namespaced(c.client.clone(), &cr.namespace().unwrap());
        let now = k8s_openapi::jiff::Timestamp::now().to_string();
        let status = serde_json::json!({"status": {"phase": "Acknowledged", "acknowledgedAt": now}});
        ns_api.patch_status(&cr.name_any(), &PatchParams::default(), &Patch::Merge(&status)).await.unwrap();
    }
    let m = driver.metrics_until("every request acknowledged", Metrics::holding_steady).await;
    assert_eq!(m.driver("objects_bound"), 10.0);
    assert_eq!(m.driver("acknowledge_latency_seconds_count"), 10.0);
    assert_eq!(m.value(&format!("{BINDING_LATENCY_METRIC}_count")), 0.0);
    driver.terminate().await;

    // A restarted driver adopts what exists: nothing new, steady at once, latencies from
    // the server's timestamps.
    let again = Driver::start(&c, &profile, RUN, "capreq-again", &[]);
    let m = again.metrics_until("the restarted driver steady", Metrics::holding_steady).await;
    assert_eq!(m.driver("created_total"), 0.0);
    assert_eq!(m.driver("objects_active"), 10.0);
    assert_eq!(m.driver("acknowledge_latency_seconds_count"), 10.0);
    assert_eq!(api.list(&selector(RUN)).await.unwrap().items.len(), OBJECTS);
    again.terminate().await;
    c.stop().await;
}

/// Plays an autoscaler that makes Nodes itself (as Karpenter's kwok provider does):
/// the driver's KPIs come from the apiserver alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kpis_measure_a_controller_that_makes_nodes_itself() {
    const RUN: &str = "it-kpis";
    const PODS: f64 = 5.0;
    // No Node yet: the Pods cannot fit until the "autoscaler" below makes one.
    let c = TestCluster::start("kpis", &[]).await;
    let profile = write_file(
        &c,
        "it-kpis.yaml",
        &format!(
            "name: it-kpis\nkwok: {{clusterCount: 1}}\nharness: {{density: 2}}\nloadProfile:\n  kind: pods\n  \
             objectsPerCluster: 5\n  namespaces: 1\n  pod: {{cpu: 100m, memory: 128Mi}}\n  phases:\n    \
             - burst: {{count: 5}}\n{COST}"
        ),
    );
    let driver = Driver::start(&c, &profile, RUN, "kpis", &[]);

    // Every Pod marked Unschedulable, and the driver counting them pending.
    eventually_described(LOAD_TIMEOUT, "5 run Pods marked Unschedulable", || async {
        let pods = live_pods(&c.client, RUN).await;
        let marked = pods.iter().filter(|p| is_unschedulable(p)).count();
        (marked as f64 == PODS).then_some(()).ok_or(format!("{} Pods, {marked} marked", pods.len()))
    })
    .await;
    // The ideal is ceil(5 Pods / density 2).
    let m = driver
        .metrics_until("pending-Pod-seconds accumulating and an ideal of 3 Nodes", |m| {
            m.driver("pending_pod_seconds_total") > 0.0 && m.driver("nodes_ideal") == 3.0
        })
        .await;
    assert_eq!(m.driver("nodes"), 0.0);
    assert_eq!(m.driver("time_to_capacity_seconds_count"), 0.0);

    // One kwok-managed Node with room for every Pod.
    let density = DensityModel { pods_per_node: 10, ..DensityModel::default() };
    Api::<Node>::all(c.client.clone())
        .create(&PostParams::default(), &fake_node("kpi-node-0", &density))
        .await
        .unwrap();
    let m = driver
        .metrics_until("every Pod's time to capacity and the Node Ready", |m| {
            m.driver("time_to_capacity_seconds_count") == PODS
                && m.driver("node_ready_latency_seconds_count") == 1.0
                && m.driver("steady_state") == 1.0
        })
        .await;
    assert_eq!(m.driver("nodes"), 1.0);
    assert_eq!(m.driver("nodes_created_total"), 1.0);
    assert_eq!(m.driver("scale_ups_total"), 1.0);
    assert_eq!(m.value(&format!("{BINDING_LATENCY_METRIC}_count")), PODS);

    // Every Pod bound: pending time stops growing. A tick that read its counts just
    // before the last bind may still land, so wait for two scrapes, a few ticks apart, to agree.
    let last = std::cell::Cell::new(m.driver("pending_pod_seconds_total"));
    eventually(LOAD_TIMEOUT, "pending-Pod-seconds to stop growing", Some(driver.log.as_path()), || async {
        tokio::time::sleep(Duration::from_millis(2500)).await;
        let now = Metrics(driver.metrics().await?).driver("pending_pod_seconds_total");
        (now == last.replace(now)).then_some(())
    })
    .await;

    driver.terminate().await;
    c.stop().await;
}

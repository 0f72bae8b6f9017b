//! Helpers for integration tests that run real simulated clusters: start one
//! through the `scaletest-cluster` binary and stop it, wait for a condition,
//! build the objects the tests create, and read loopback HTTP endpoints.
//!
//! They panic instead of returning errors, as a test wants. The supervisor and
//! what it runs must be built first: `cargo build --workspace --bins`.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, Node, NodeStatus, Pod, PodSpec, ResourceRequirements, ServiceAccount};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::Client;
use kube::api::{Api, ObjectMeta};
use scaletest_core::constants::{KWOK_NODE_ANNOTATION, KWOK_NODE_ANNOTATION_VALUE};
use scaletest_core::density::DensityModel;
use scaletest_core::endpoints::Endpoints;

use crate::launcher::{ClusterProcess, built_binary};
use crate::process::log_tail;

/// How long a cluster may take to become ready.
pub const READY_TIMEOUT: Duration = Duration::from_secs(180);
/// How many lines of a log a failure shows.
pub const LOG_TAIL_LINES: usize = 40;
/// How many lines of each component's log a failed test shows.
const FAILURE_LOG_LINES: usize = 12;

/// A running simulated cluster, started by [`TestCluster::start`]. If a test
/// panics while holding one, its directory is kept and its logs' tails are
/// printed, so a failure in CI shows what each component was doing.
pub struct TestCluster {
    process: Option<ClusterProcess>,
    pub endpoints: Endpoints,
    pub client: Client,
    /// Scratch directory holding the cluster's data dir; removed on drop.
    pub dir: tempfile::TempDir,
}

impl TestCluster {
    /// Starts the supervisor as cluster `name` with `extra` flags, in a fresh
    /// temporary directory, and waits until it is ready.
    pub async fn start(name: &str, extra: &[&str]) -> Self {
        scaletest_core::telemetry::init();
        let supervisor = built_binary("scaletest-cluster");
        assert!(supervisor.exists(), "{} missing: run `cargo build --workspace --bins` first", supervisor.display());
        let dir = tempfile::Builder::new().prefix("scaletest-it-").tempdir().unwrap();
        let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        let mut process = ClusterProcess::spawn(&supervisor, name, &dir.path().join(name), &extra).unwrap();
        let endpoints = match process.wait_ready(READY_TIMEOUT).await {
            Ok(e) => e,
            Err(e) => panic!("{e} (build first: cargo build --workspace --bins)"),
        };
        let client = scaletest_core::client::from_kubeconfig(&endpoints.kubeconfig).await.unwrap();
        Self { process: Some(process), endpoints, client, dir }
    }

    /// Stops the supervisor and asserts it exited cleanly.
    pub async fn stop(mut self) {
        let process = self.process.take().expect("a started cluster");
        let status = process.stop(Duration::from_secs(60)).await.expect("supervisor exit status");
        assert!(status.success(), "supervisor exited with {status}");
    }

    /// [`stop`](Self::stop), then asserts no process, port or endpoints file is left.
    pub async fn stop_and_assert_clean(self) {
        let data_dir = self.endpoints.data_dir.clone();
        let ports = self.endpoints.ports.clone();
        self.stop().await;
        let left = processes_mentioning(&data_dir);
        assert!(left.is_empty(), "processes left behind: {left:#?}");
        for (role, port) in ports {
            assert!(crate::ports::is_free(port), "port {port} ({role}) still in use");
        }
        assert!(!data_dir.join("endpoints.json").exists(), "endpoints.json left behind");
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        self.dir.disable_cleanup(true);
        eprintln!("simulated cluster kept for inspection in {}", self.dir.path().display());
        let Ok(entries) = std::fs::read_dir(self.endpoints.data_dir.join("logs")) else { return };
        let mut logs: Vec<_> = entries.flatten().map(|e| e.path()).collect();
        logs.sort();
        for log in logs {
            eprintln!("--- last lines of {}:\n{}", log.display(), log_tail(&log, FAILURE_LOG_LINES));
        }
    }
}

/// PIDs and command lines of live processes whose command line mentions
/// `needle` (every child of a supervisor names its data dir in its flags).
pub fn processes_mentioning(needle: &Path) -> Vec<(u32, String)> {
    let needle = needle.to_string_lossy().to_string();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
        if pid == std::process::id() {
            continue;
        }
        let Ok(raw) = std::fs::read(entry.path().join("cmdline")) else { continue };
        let cmdline = String::from_utf8_lossy(&raw).replace('\0', " ");
        // Zombies have an empty cmdline and hold nothing.
        if cmdline.contains(&needle) {
            found.push((pid, cmdline));
        }
    }
    found
}

/// PID of the cluster's `component` process (named by its binary); panics if none.
pub fn pid_of(component: &str, data_dir: &Path) -> u32 {
    processes_mentioning(data_dir)
        .into_iter()
        .find(|(_, cmd)| cmd.split_whitespace().next().is_some_and(|p| p.ends_with(&format!("/{component}"))))
        .unwrap_or_else(|| panic!("no {component} process for {}", data_dir.display()))
        .0
}

/// Polls `check` every 250 ms until it returns Ok; after `timeout` fails
/// naming `what` and the last state `check` described in its Err.
pub async fn eventually_described<T, F, Fut>(timeout: Duration, what: &str, check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    poll_until(timeout, check, |state| format!("timed out after {timeout:?} waiting for {what}; last seen: {state}"))
        .await
}

/// Polls `check` every 250 ms until it returns Some; after `timeout` fails
/// naming `what`, with the tail of `log` if given.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, log: Option<&Path>, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let failure = |()| match log {
        Some(log) => format!(
            "timed out after {timeout:?} waiting for {what}; {}:\n{}",
            log.display(),
            log_tail(log, LOG_TAIL_LINES)
        ),
        None => format!("timed out after {timeout:?} waiting for {what}"),
    };
    poll_until(
        timeout,
        || {
            let v = check();
            async { v.await.ok_or(()) }
        },
        failure,
    )
    .await
}

async fn poll_until<T, E, F, Fut>(timeout: Duration, mut check: F, failure: impl FnOnce(E) -> String) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, E>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        match check().await {
            Ok(v) => return v,
            Err(e) if tokio::time::Instant::now() >= deadline => panic!("{}", failure(e)),
            Err(_) => tokio::time::sleep(Duration::from_millis(250)).await,
        }
    }
}

/// Waits up to 60 s for the `default` ServiceAccount of `namespace`, which
/// kube-controller-manager makes: Pods are admitted only once it exists.
pub async fn default_service_account(client: &Client, namespace: &str, log: Option<&Path>) {
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), namespace);
    eventually(Duration::from_secs(60), "the default ServiceAccount", log, || async {
        accounts.get_opt("default").await.ok().flatten()
    })
    .await;
}

/// A kwok-managed Node (labelled `type=kwok`) advertising `density`'s Allocatable.
pub fn fake_node(name: &str, density: &DensityModel) -> Node {
    let resources = density.allocatable().to_resource_map();
    Node {
        metadata: ObjectMeta {
            name: Some(name.into()),
            annotations: Some(BTreeMap::from([(KWOK_NODE_ANNOTATION.into(), KWOK_NODE_ANNOTATION_VALUE.into())])),
            labels: Some(BTreeMap::from([("type".into(), "kwok".into())])),
            ..Default::default()
        },
        status: Some(NodeStatus {
            allocatable: Some(resources.clone()),
            capacity: Some(resources),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A one-container Pod requesting `cpu` and `memory` (Kubernetes quantities).
pub fn pod_requesting(name: &str, cpu: &str, memory: &str) -> Pod {
    let requests =
        BTreeMap::from([("cpu".to_string(), Quantity(cpu.into())), ("memory".to_string(), Quantity(memory.into()))]);
    Pod {
        metadata: ObjectMeta { name: Some(name.into()), ..Default::default() },
        spec: Some(PodSpec {
            containers: vec![Container {
                name: "app".into(),
                image: Some("registry.invalid/fake:1".into()),
                resources: Some(ResourceRequirements { requests: Some(requests), ..Default::default() }),
                ..Default::default()
            }],
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Whether the scheduler (or pod-shim) marked `pod` Unschedulable.
pub fn is_unschedulable(pod: &Pod) -> bool {
    pod.status.as_ref().and_then(|s| s.conditions.as_ref()).is_some_and(|cs| {
        cs.iter()
            .any(|c| c.type_ == "PodScheduled" && c.status == "False" && c.reason.as_deref() == Some("Unschedulable"))
    })
}

/// Body of `GET path` on a plain-HTTP loopback server; None while it does not
/// answer or answers anything but 200.
pub async fn http_get(address: &str, path: &str) -> Option<String> {
    scaletest_core::http::get(address, path).await.ok()
}

/// Text of the metrics endpoint at `address`; panics if it does not answer 200.
pub async fn scrape(address: &str) -> String {
    http_get(address, "/metrics").await.unwrap_or_else(|| panic!("no metrics from {address}"))
}

//! Shared by the integration tests: start a real simulated cluster through the
//! `scaletest-cluster` binary, and check that nothing of it is left afterwards.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use kube::Client;
use scaletest_cluster::launcher::ClusterProcess;
use scaletest_core::endpoints::Endpoints;

pub const READY_TIMEOUT: Duration = Duration::from_secs(180);

pub struct TestCluster {
    pub process: ClusterProcess,
    pub endpoints: Endpoints,
    pub client: Client,
    // Held so the data dir outlives the cluster; removed on drop.
    pub dir: tempfile::TempDir,
}

pub fn supervisor_binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_scaletest-cluster"))
}

pub async fn start(name: &str, extra: &[&str]) -> TestCluster {
    scaletest_core::telemetry::init();
    let dir = tempfile::Builder::new().prefix("scaletest-it-").tempdir().unwrap();
    let data = dir.path().join(name);
    let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
    let mut process = ClusterProcess::spawn(&supervisor_binary(), name, &data, &extra).unwrap();
    let endpoints = match process.wait_ready(READY_TIMEOUT).await {
        Ok(e) => e,
        Err(e) => panic!("{e}"),
    };
    let client = scaletest_core::client::from_kubeconfig(&endpoints.kubeconfig).await.unwrap();
    TestCluster { process, endpoints, client, dir }
}

/// PIDs of live processes whose command line mentions `needle` (every child
/// of a supervisor names its data dir in its flags).
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

pub fn pid_of(component: &str, data_dir: &Path) -> u32 {
    processes_mentioning(data_dir)
        .into_iter()
        .find(|(_, cmd)| cmd.split_whitespace().next().is_some_and(|p| p.ends_with(&format!("/{component}"))))
        .unwrap_or_else(|| panic!("no {component} process for {}", data_dir.display()))
        .0
}

/// Polls `check` every 250 ms until it returns Some or `timeout` passes.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out after {timeout:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Stops the supervisor and asserts it exited cleanly leaving no process or port.
pub async fn stop_and_assert_clean(c: TestCluster) {
    let data_dir = c.endpoints.data_dir.clone();
    let ports = c.endpoints.ports.clone();
    let status = c.process.stop(Duration::from_secs(60)).await.expect("supervisor exit status");
    assert!(status.success(), "supervisor exited with {status}");
    let left = processes_mentioning(&data_dir);
    assert!(left.is_empty(), "processes left behind: {left:#?}");
    for (role, port) in ports {
        assert!(scaletest_cluster::ports::is_free(port), "port {port} ({role}) still in use");
    }
    assert!(!data_dir.join("endpoints.json").exists(), "endpoints.json left behind");
}

/// Text of a metrics endpoint served over plain HTTP on loopback.
pub async fn scrape(address: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(address).await.unwrap();
    s.write_all(format!("GET /metrics HTTP/1.0\r\nHost: {address}\r\n\r\n").as_bytes()).await.unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    out
}

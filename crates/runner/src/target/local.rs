//! The local target: `clusterCount` supervisors on this machine ([`crate::local`]), the
//! run's Prometheus as a supervised process, and a load-gate file every load-driver waits for.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use scaletest_cluster::components::Component;
use scaletest_cluster::metrics::SupervisorMetrics;
use scaletest_cluster::process::{RestartPolicy, Supervised};
use scaletest_core::http;
use scaletest_core::profile::Profile;

use super::{Checked, Context, Findings, Target, faults_of, unreachable};
use crate::cli::RunArgs;
use crate::estimate;
use crate::faults::{ClusterTarget, FaultRecord};
use crate::invariants::{self, InvariantResult};
use crate::local::{self, LocalCluster};
use crate::prom;
use crate::run::{Refusal, RunFailure, fail};
use crate::summary::ClusterResult;

/// The local target's refusals of kube-only flags.
pub fn refuse(args: &RunArgs) -> Result<(), Refusal> {
    if !args.images.is_empty() {
        return Err(Refusal::Unsupported(
            "--image names the kube target's images; the local target runs the binaries of `make upstream` and `make build`"
                .into(),
        ));
    }
    if !args.chart_values.is_empty() {
        return Err(Refusal::Unsupported("--set is a chart value of the kube target".into()));
    }
    Ok(())
}

/// Every cluster and the run's Prometheus within this machine's memory.
pub fn budget(profile: &Profile) -> Result<(), Refusal> {
    estimate::local_budget(profile, estimate::machine_memory_gib()).map_err(Refusal::Budget)
}

pub struct LocalTarget {
    supervisor: PathBuf,
    prometheus_bin: PathBuf,
    bin_dir: Option<PathBuf>,
    /// Test-only broken node-creator, passed to every supervisor.
    node_creator_skip_every: u64,
    clusters: Vec<LocalCluster>,
    prometheus: Option<(Supervised, String, PathBuf)>,
}

impl LocalTarget {
    /// The binaries a local run needs, or the refusal naming the one missing.
    pub fn find(profile: &Profile, args: &RunArgs) -> Result<Self, Refusal> {
        let bin_dir = args.bin_dir.as_deref();
        sut_runnable(profile, &args.profile, bin_dir)?;
        Ok(Self {
            supervisor: find_binary("scaletest-cluster", bin_dir)?,
            prometheus_bin: find_binary("prometheus", bin_dir)?,
            bin_dir: args.bin_dir.clone(),
            node_creator_skip_every: args.node_creator_skip_every,
            clusters: Vec::new(),
            prometheus: None,
        })
    }

    /// What every supervisor is started with (besides its ports and index).
    fn supervisor_args(&self, cx: &Context) -> Vec<String> {
        let mut args = vec![
            format!("--profile={}", cx.effective.display()),
            format!("--run-id={}", cx.run_id),
            format!("--load-gate={}", load_gate(cx).display()),
        ];
        args.extend(self.bin_dir.as_ref().map(|b| format!("--bin-dir={}", b.display())));
        if self.node_creator_skip_every > 0 {
            args.push(format!("--node-creator-skip-every={}", self.node_creator_skip_every));
        }
        args
    }

    async fn start_prometheus(&mut self, work: &Path) -> Result<(), RunFailure> {
        let dir = work.join("prometheus");
        let tsdb = dir.join("data");
        std::fs::create_dir_all(&tsdb).map_err(fail)?;
        let endpoints: Vec<_> = self.clusters.iter().map(|c| c.endpoints.clone()).collect();
        let (config, files) = prom::render(&endpoints, &dir);
        for (path, body) in files {
            std::fs::write(&path, serde_json::to_string_pretty(&body).map_err(fail)?).map_err(fail)?;
        }
        let config_path = dir.join("prometheus.yml");
        std::fs::write(&config_path, serde_json::to_string_pretty(&config).map_err(fail)?).map_err(fail)?;
        let port = free_port().map_err(fail)?;
        let component: Component = prom::component(&self.prometheus_bin, &config_path, &tsdb, port);
        let logs = dir.join("logs");
        std::fs::create_dir_all(&logs).map_err(fail)?;
        let mut running = Vec::new();
        let started = scaletest_cluster::supervisor::start_one(
            &component,
            &logs,
            RestartPolicy::default(),
            &SupervisorMetrics::default(),
            Duration::from_secs(60),
            &mut running,
        )
        .await;
        let child = running.pop();
        started.map_err(fail)?;
        let child = child.ok_or_else(|| fail("prometheus did not start"))?;
        println!("[install] prometheus on http://127.0.0.1:{port}");
        self.prometheus = Some((child, format!("127.0.0.1:{port}"), tsdb));
        Ok(())
    }

    /// The clusters short of steady state: each with its objects active and bound.
    async fn behind(&self) -> Vec<(&LocalCluster, f64, f64)> {
        let mut behind = Vec::new();
        for c in &self.clusters {
            if driver_sample(c, "steady_state").await != Some(1.0) {
                let active = driver_sample(c, "objects_active").await.unwrap_or(0.0);
                let bound = driver_sample(c, "objects_bound").await.unwrap_or(0.0);
                behind.push((c, active, bound));
            }
        }
        behind
    }
}

impl Target for LocalTarget {
    const INVARIANTS_EXPLAIN_A_STALL: bool = true;

    async fn install(&mut self, cx: &Context) -> Result<(), RunFailure> {
        println!("[install] starting {} simulated cluster(s)", cx.profile.kwok.cluster_count);
        let args = self.supervisor_args(cx);
        let (work, count) = (cx.work.path(), cx.profile.kwok.cluster_count);
        local::start_all(&self.supervisor, work, count, &args, &mut self.clusters).await.map_err(fail)?;
        self.start_prometheus(work).await
    }

    fn prometheus(&self) -> Option<&str> {
        self.prometheus.as_ref().map(|(_, a, _)| a.as_str())
    }

    /// Waits until Prometheus has scraped every target once.
    async fn wait_until_scraped(&self, cx: &Context, prometheus: &str) -> Result<(), RunFailure> {
        let want: usize =
            self.clusters.iter().map(|c| c.endpoints.components.iter().filter(|x| x.metrics.is_some()).count()).sum();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let up = prom::query(prometheus, "count(up == 1)").await.ok().flatten().unwrap_or(0.0);
            if up as usize >= want {
                return Ok(());
            }
            if Instant::now() >= deadline {
                let down = prom::query(prometheus, "count(up == 0)").await.ok().flatten().unwrap_or(0.0);
                return Err(fail(format!(
                    "Prometheus scrapes {up} of {want} targets after 60 s ({down} down); see {}",
                    cx.output.join("logs/prometheus/prometheus.log").display()
                )));
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                _ = cx.shutdown.cancelled() => return Err(RunFailure::Interrupted),
            }
        }
    }

    async fn open_load_gates(&self, cx: &Context) -> Result<(), RunFailure> {
        std::fs::write(load_gate(cx), b"").map_err(fail)
    }

    /// Reads each cluster's load-driver until every one reports steady state.
    async fn wait_steady(&self, cx: &Context, _prometheus: &str) -> Result<(), RunFailure> {
        let timeout = cx.profile.durations.steady_state_timeout;
        let deadline = Instant::now() + timeout;
        let mut last_print = Instant::now();
        loop {
            let behind = self.behind().await;
            if behind.is_empty() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                let names: Vec<String> = behind
                    .iter()
                    .map(|(c, a, b)| {
                        format!(
                            "{} ({a} active, {b} bound; logs {})",
                            c.endpoints.cluster,
                            c.endpoints.data_dir.join("logs").display()
                        )
                    })
                    .collect();
                return Err(fail(format!(
                    "steady state not reached within {}: {}",
                    humantime::format_duration(timeout),
                    names.join(", ")
                )));
            }
            if last_print.elapsed() >= Duration::from_secs(10) {
                let (c, a, b) = &behind[0];
                println!(
                    "[steady] {} of {} clusters behind, e.g. {}: {a} active, {b} bound",
                    behind.len(),
                    self.clusters.len(),
                    c.endpoints.cluster
                );
                last_print = Instant::now();
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(2)) => {}
                _ = cx.shutdown.cancelled() => return Err(RunFailure::Interrupted),
            }
        }
    }

    async fn objects_active(&self, _prometheus: Option<&str>) -> Vec<f64> {
        let mut objects = Vec::new();
        for c in &self.clusters {
            objects.push(driver_sample(c, "objects_active").await.unwrap_or(0.0));
        }
        objects
    }

    /// Where each cluster's supervisor (control routes) and load-driver answer.
    fn fault_targets(&self) -> Vec<ClusterTarget> {
        let addr = |c: &LocalCluster, name: &str| c.endpoints.metrics_address(name).map(str::to_string);
        self.clusters
            .iter()
            .enumerate()
            .map(|(i, c)| ClusterTarget {
                index: i as u32,
                name: c.endpoints.cluster.clone(),
                supervisor: addr(c, "scaletest-cluster").unwrap_or_default(),
                load_driver: addr(c, "load-driver"),
            })
            .collect()
    }

    /// Every cluster's invariants, checked side by side.
    async fn invariants(&self, cx: &Context, settle: Duration, faults: &[(u32, FaultRecord)]) -> Checked {
        println!("[invariants] checking {} cluster(s)", self.clusters.len());
        let (kind, nodes) = (cx.profile.load_profile.kind, cx.profile.harness.nodes);
        let checks = self.clusters.iter().enumerate().map(|(i, c)| {
            let run_id = cx.run_id.clone();
            let records = faults_of(faults, i as u32);
            async move {
                let load_driver = c.endpoints.metrics_address("load-driver");
                let mut results = match scaletest_core::client::from_kubeconfig(&c.endpoints.kubeconfig).await {
                    Ok(client) => invariants::settle(&client, &run_id, load_driver, kind, nodes, settle).await,
                    Err(e) => vec![unreachable(e)],
                };
                if !records.is_empty() {
                    results.push(invariants::recovered(&records));
                }
                (c.endpoints.cluster.clone(), results)
            }
        });
        Ok(futures::future::join_all(checks).await)
    }

    fn failover(&self, found: &Findings<'_>) -> Vec<(String, Vec<InvariantResult>, Vec<FaultRecord>)> {
        self.clusters
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let name = c.endpoints.cluster.clone();
                let invariants = found.invariants.get(&name).cloned().unwrap_or_default();
                (name, invariants, faults_of(found.faults, i as u32))
            })
            .collect()
    }

    /// A TSDB snapshot through the admin API, archived with `tar`.
    async fn snapshot(&self, prometheus: &str, tar: &Path) -> Result<(), String> {
        let Some((_, _, tsdb)) = &self.prometheus else { return Ok(()) };
        let dir = prom::snapshot(prometheus, tsdb).await.map_err(|e| format!("no Prometheus snapshot: {e}"))?;
        let ok = tokio::process::Command::new("tar")
            .arg("-czf")
            .arg(tar)
            .arg("-C")
            .arg(&dir)
            .arg(".")
            .status()
            .await
            .is_ok_and(|s| s.success());
        if ok { Ok(()) } else { Err(format!("could not write {}", tar.display())) }
    }

    async fn cluster_results(&self, output: &Path, found: &Findings<'_>) -> Vec<ClusterResult> {
        let mut clusters = Vec::new();
        let mut failover = self.failover(found).into_iter();
        for c in &self.clusters {
            let active = driver_sample(c, "objects_active").await;
            let logs = output.join("logs").join(&c.endpoints.cluster);
            let (_, invariants, faults) = failover.next().unwrap_or_default();
            clusters.push(ClusterResult {
                name: c.endpoints.cluster.clone(),
                startup_seconds: Some(c.endpoints.startup_seconds),
                objects_active: active,
                log_dir: logs.display().to_string(),
                invariants,
                faults,
            });
        }
        clusters
    }

    fn clusters_here(&self) -> usize {
        self.clusters.len()
    }

    async fn stop(&mut self) {
        local::stop_all(std::mem::take(&mut self.clusters)).await;
        if let Some((p, _, _)) = self.prometheus.take() {
            p.stop().await;
        }
    }
}

/// The file every load-driver waits for before it makes its first object.
fn load_gate(cx: &Context) -> PathBuf {
    cx.work.path().join("start-load")
}

/// Reads the load-driver's own gauges straight from a cluster.
async fn driver_sample(c: &LocalCluster, name: &str) -> Option<f64> {
    let text = http::get(c.endpoints.metrics_address("load-driver")?, "/metrics").await.ok()?;
    http::sample(&text, &format!("scaletest_load_driver_{name}"))
}

/// A user's controller runs locally from its `command`: refuse a profile that gives only
/// an image, or names a program that is not installed, before anything starts.
fn sut_runnable(profile: &Profile, path: &Path, bin_dir: Option<&Path>) -> Result<(), Refusal> {
    let Some(sut) = profile.sut.external() else { return Ok(()) };
    match sut.command.first() {
        None => Err(Refusal::Unsupported(format!(
            "{}: sut.command: the local target runs your controller's command, and this profile gives only `image` ({}); add `command`, or run it with --target kube",
            path.display(),
            sut.image.as_deref().unwrap_or_default()
        ))),
        // A path was checked when the profile was loaded.
        Some(program) if program.contains('/') => Ok(()),
        Some(name) => find_binary(name, bin_dir)
            .map(drop)
            .map_err(|e| Refusal::Missing(format!("{}: sut.command[0]: {e}", path.display()))),
    }
}

fn find_binary(name: &str, bin_dir: Option<&Path>) -> Result<PathBuf, Refusal> {
    let dir = bin_dir.map(Path::to_path_buf).unwrap_or_else(scaletest_cluster::binaries::default_bin_dir);
    scaletest_cluster::binaries::find(name, &dir).map_err(|e| {
        let hint = if name == "prometheus" { " (make upstream installs it with apt)" } else { "" };
        Refusal::Missing(format!("{e}{hint}"))
    })
}

fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

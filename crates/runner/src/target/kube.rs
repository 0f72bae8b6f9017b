//! The kube target: one helm release of `charts/scaletest` ([`crate::kube::KubeRun`]) on
//! the user's cluster, its Prometheus reached through `kubectl port-forward`, the load
//! gates opened with `kubectl exec`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use scaletest_core::profile::{self, Profile};

use super::{Checked, Context, Findings, Target, unreachable};
use crate::cli::RunArgs;
use crate::estimate;
use crate::faults::{ClusterTarget, FaultRecord};
use crate::invariants::{self, InvariantResult};
use crate::kube::{self, Kube, KubeError, KubeRun};
use crate::prom;
use crate::run::{Refusal, RunFailure, fail};
use crate::summary::ClusterResult;

/// What the kube target cannot run yet, refused before anything starts.
pub fn refuse(profile: &Profile, args: &RunArgs) -> Result<(), Refusal> {
    if !profile.faults.is_empty() {
        return Err(Refusal::Unsupported(format!(
            "{}: faults: the kube target does not inject faults yet (see crates/runner/src/faults.rs); run it with --target local or without `faults`",
            args.profile.display()
        )));
    }
    sut_runnable(profile, &args.profile, &args.images)
}

/// On the kube target a user's controller runs from an image (a sidecar): refuse a
/// profile that gives only its local `command` when no `--image sut=` names one.
fn sut_runnable(profile: &Profile, path: &Path, images: &[crate::images::ImageOverride]) -> Result<(), Refusal> {
    match profile.sut.external() {
        Some(sut) if sut.image.is_none() && crate::images::sut_image(images).is_none() => {
            Err(Refusal::Unsupported(format!(
                "{}: sut.image: the kube target runs your controller from its image, beside each simulated cluster, and this profile gives only `command` ({}); add `image`, or name it with --image sut=REPOSITORY:TAG",
                path.display(),
                sut.command.join(" ")
            )))
        }
        _ => Ok(()),
    }
}

/// Reaches the context and fits the run in its Nodes' allocatable CPU and memory.
pub async fn connect(profile: &Profile, args: &RunArgs) -> Result<Kube, Refusal> {
    let (kubectl, helm) = kube::tools(args.bin_dir.as_deref()).map_err(|e| Refusal::Missing(e.to_string()))?;
    let kube = Kube::connect(kubectl, helm, args.context.as_deref()).await.map_err(Refusal::Kube)?;
    let (vcpu, gb) = kube.allocatable().await.map_err(Refusal::Kube)?;
    estimate::kube_budget(profile, vcpu, gb).map_err(Refusal::Budget)?;
    Ok(kube)
}

/// The profile as mounted in the Pods, and the files that travel beside it: a manifest
/// template travels beside it (the chart's profileFiles), so the mounted profile names
/// it by file name, relative to itself; likewise the SUT's manifests, bundled in `output`.
pub fn mount(profile: &Profile, args: &RunArgs, output: &Path) -> Result<(Profile, Vec<PathBuf>), KubeError> {
    let mut mounted = profile.clone();
    let mut files = Vec::new();
    if let Some(t) = &profile.load_profile.template {
        mounted.load_profile.template = Some(kube::mounted_name(t));
        files.push(t.clone());
    }
    if let profile::Sut::External(sut) = &mut mounted.sut {
        if !sut.manifests.is_empty() {
            let bundle = kube::bundle_manifests(&sut.manifests, output)?;
            sut.manifests = vec![kube::mounted_name(&bundle)];
            files.push(bundle);
        }
        if let Some(image) = crate::images::sut_image(&args.images) {
            sut.image = Some(image);
        }
        // The Pod runs the controller from its image (a sidecar): a host path means nothing there.
        if sut.image.is_some() {
            sut.command.clear();
        }
    }
    Ok((mounted, files))
}

pub struct KubeTarget {
    release: KubeRun,
}

impl KubeTarget {
    /// The release to install, named after the run's `stamp`, with `files` beside the profile.
    pub fn new(kube: Kube, stamp: &str, profile: &Profile, args: &RunArgs, files: Vec<PathBuf>) -> Self {
        // The chart sized by the footprint rule, then the user's --set (which win).
        let mut chart_values = kube::footprint_values(profile);
        chart_values.extend(args.chart_values.iter().cloned());
        let images = crate::images::helm_set_strings(&args.images);
        Self { release: KubeRun::new(kube, stamp, images, chart_values, files) }
    }
}

impl Target for KubeTarget {
    const INVARIANTS_EXPLAIN_A_STALL: bool = false;

    async fn install(&mut self, cx: &Context) -> Result<(), RunFailure> {
        let k = &mut self.release;
        println!(
            "[install] helm install {} into namespace {} ({} simulated cluster(s))",
            k.release, k.namespace, cx.profile.kwok.cluster_count
        );
        k.install(&cx.effective, &cx.run_id).await.map_err(fail)?;
        let timeout = cx.profile.durations.steady_state_timeout;
        let addr = k.forward_prometheus(timeout, &cx.shutdown).await.map_err(fail)?;
        println!("[install] prometheus forwarded to http://{addr}");
        Ok(())
    }

    fn prometheus(&self) -> Option<&str> {
        self.release.prometheus.as_ref().map(|(_, a)| a.as_str())
    }

    /// Every cluster's load-driver scraped (and its SUT, where it has metrics).
    async fn wait_until_scraped(&self, cx: &Context, prometheus: &str) -> Result<(), RunFailure> {
        let up = "count(up{component=\"load-driver\"} == 1)";
        wait_for_clusters(cx, &self.release, prometheus, up, "load-drivers scraped").await?;
        // The SUT scraped once before the load too: its histograms' first sample must
        // precede its first observations, or rate() over the run sees no increase (a fast
        // ramp is acknowledged within one scrape interval).
        let sut_scraped = match &cx.profile.sut {
            profile::Sut::Reference(_) => true,
            profile::Sut::External(e) => e.metrics.is_some(),
        };
        if sut_scraped {
            let up = "count(up{component=\"sut\"} == 1)";
            wait_for_clusters(cx, &self.release, prometheus, up, "SUTs scraped").await?;
        }
        Ok(())
    }

    /// Once every simulated-cluster Pod is Ready (the user's controller included).
    async fn open_load_gates(&self, cx: &Context) -> Result<(), RunFailure> {
        let timeout = cx.profile.durations.steady_state_timeout;
        if let Err(e) = self.release.wait_clusters_ready(timeout, &cx.shutdown).await {
            let pods = self.release.unready_pods().await.unwrap_or_default();
            return Err(fail(if pods.is_empty() {
                e.to_string()
            } else {
                format!("{e}; not Ready: {}", pods.join("; "))
            }));
        }
        self.release.open_load_gates().await.map_err(fail)
    }

    async fn wait_steady(&self, cx: &Context, prometheus: &str) -> Result<(), RunFailure> {
        let steady = "count(scaletest_load_driver_steady_state == 1)";
        wait_for_clusters(cx, &self.release, prometheus, steady, "steady state").await
    }

    /// All clusters' objects, summed by Prometheus.
    async fn objects_active(&self, prometheus: Option<&str>) -> Vec<f64> {
        let Some(a) = prometheus else { return Vec::new() };
        vec![prom::query(a, "sum(scaletest_load_driver_objects_active)").await.ok().flatten().unwrap_or(0.0)]
    }

    /// None: a profile with faults is refused before the run starts (see [`refuse`]).
    fn fault_targets(&self) -> Vec<ClusterTarget> {
        Vec::new()
    }

    /// The local target's invariants, on every simulated-cluster Pod: its apiserver and
    /// load-driver port-forwarded, its admin certificate copied out.
    async fn invariants(&self, cx: &Context, settle: Duration, _faults: &[(u32, FaultRecord)]) -> Checked {
        let (kind, nodes) = (cx.profile.load_profile.kind, cx.profile.harness.nodes);
        let pods = self.release.cluster_pods().await.map_err(|e| {
            let r = InvariantResult {
                name: invariants::PODS_BOUND.into(),
                held: false,
                detail: format!("cannot list the simulated-cluster Pods: {e}"),
            };
            ("(kube)".to_string(), r)
        })?;
        println!("[invariants] checking {} cluster(s)", pods.len());
        let dir = cx.work.path().join("kube-access");
        let checks = pods.iter().map(|pod| {
            let (run_id, dir) = (cx.run_id.clone(), dir.join(pod));
            async move {
                let results = match self.release.cluster_access(pod, &dir).await {
                    Ok(access) => match scaletest_core::client::from_kubeconfig(&access.kubeconfig).await {
                        Ok(client) => {
                            invariants::settle(&client, &run_id, Some(&access.load_driver), kind, nodes, settle).await
                        }
                        Err(e) => vec![unreachable(e)],
                    },
                    Err(e) => vec![unreachable(e)],
                };
                (pod.clone(), results)
            }
        });
        Ok(futures::future::join_all(checks).await)
    }

    /// None: the report's failover section is of local clusters (no faults here).
    fn failover(&self, _found: &Findings<'_>) -> Vec<(String, Vec<InvariantResult>, Vec<FaultRecord>)> {
        Vec::new()
    }

    /// Through the admin API, streamed out of the Prometheus Pod.
    async fn snapshot(&self, prometheus: &str, tar: &Path) -> Result<(), String> {
        self.release.snapshot(prometheus, tar).await.map_err(|e| format!("no Prometheus snapshot: {e}"))
    }

    /// One entry per simulated-cluster Pod whose invariants were checked.
    async fn cluster_results(&self, _output: &Path, found: &Findings<'_>) -> Vec<ClusterResult> {
        found
            .invariants
            .iter()
            .map(|(name, invariants)| ClusterResult {
                name: name.clone(),
                startup_seconds: None,
                objects_active: None,
                log_dir: String::new(),
                invariants: invariants.clone(),
                faults: Vec::new(),
            })
            .collect()
    }

    /// `helm uninstall`: what the run leaves on the user's cluster is part of the verdict.
    async fn uninstall(&mut self, run_id: &str) -> Result<(), RunFailure> {
        println!("[teardown] helm uninstall {}", self.release.release);
        self.release.uninstall(run_id).await.map_err(fail)
    }
}

/// Polls an instant query until it counts every cluster (bounded by the steady-state timeout).
/// How often a wait says which Pods are not Ready yet.
const UNREADY_REPORT: Duration = Duration::from_secs(30);

async fn wait_for_clusters(
    cx: &Context,
    release: &KubeRun,
    prometheus: &str,
    query: &str,
    what: &str,
) -> Result<(), RunFailure> {
    let want = f64::from(cx.profile.kwok.cluster_count);
    let timeout = cx.profile.durations.steady_state_timeout;
    let deadline = Instant::now() + timeout;
    let mut next_report = Instant::now() + UNREADY_REPORT;
    loop {
        let v = prom::query(prometheus, query).await.ok().flatten().unwrap_or(0.0);
        if v >= want {
            return Ok(());
        }
        // A Pod that cannot start (no Node with room, a taint, an image not pulled) would
        // otherwise show only as a timeout: say which and why, as it happens and at the end.
        let unready = || async { release.unready_pods().await.unwrap_or_default() };
        if Instant::now() >= deadline {
            let pods = unready().await;
            let why = if pods.is_empty() { String::new() } else { format!("; not Ready: {}", pods.join("; ")) };
            return Err(fail(format!(
                "{what}: {v} of {want} clusters within {}{why}",
                humantime::format_duration(timeout)
            )));
        }
        if Instant::now() >= next_report {
            next_report = Instant::now() + UNREADY_REPORT;
            for pod in unready().await {
                println!("[install] waiting for {what}: {pod}");
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(2)) => {}
            _ = cx.shutdown.cancelled() => return Err(RunFailure::Interrupted),
        }
    }
}

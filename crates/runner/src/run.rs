//! `scaletest-runner run`: estimate → install → steady state → soak →
//! evaluate → report → snapshot → summary.json → teardown (always).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use scaletest_cluster::components::Component;
use scaletest_cluster::metrics::SupervisorMetrics;
use scaletest_cluster::process::{RestartPolicy, Supervised};
use scaletest_core::profile::{self, Profile};
use tokio_util::sync::CancellationToken;

use crate::cli::{RunArgs, TargetKind};
use crate::estimate;
use crate::faults::{self, FaultRecord};
use crate::invariants::{self, InvariantResult};
use crate::kube::KubeRun;
use crate::local::{self, LocalCluster};
use crate::prom;
use crate::report;
use crate::saturation::{self, ControlPlane};
use crate::summary::{self, ClusterResult, Cost, Scale, SloResult, Summary, Target};
use scaletest_core::http;

/// How a run ended, for the exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Passed,
    Failed,
    Interrupted,
}

/// Refusals before anything starts (exit code 2).
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    #[error(transparent)]
    Profile(#[from] profile::ProfileError),
    #[error("{0}")]
    Budget(String),
    #[error(transparent)]
    Kube(#[from] crate::kube::KubeError),
    #[error(
        "the estimate is ${usd:.2} on a cloud-looking context ({context}) and there is no terminal to ask: rerun with --yes"
    )]
    NoTerminal { usd: f64, context: String },
    #[error("not confirmed: nothing was started")]
    Declined,
    #[error("cannot create the output directory {path}: {source}")]
    Output { path: PathBuf, source: std::io::Error },
    #[error("{0}")]
    Missing(String),
    #[error("{}: {violation} (the soak is --duration {duration})", path.display())]
    Duration { path: PathBuf, duration: String, violation: profile::Violation },
    #[error("{0}")]
    Unsupported(String),
}

/// How long the end-of-soak invariants may take to hold: a churn or a garbage
/// collection caught mid-way settles within seconds; a loss never does.
const INVARIANT_SETTLE: Duration = Duration::from_secs(45);

/// Everything the phases share, and what teardown must undo.
struct Run {
    run_id: String,
    profile: Profile,
    /// The user's profile file, for messages that point at one of its fields.
    profile_file: PathBuf,
    output: PathBuf,
    work: tempfile::TempDir,
    clusters: Vec<LocalCluster>,
    prometheus: Option<(Supervised, String, PathBuf)>,
    kube: Option<KubeRun>,
    phases: BTreeMap<String, f64>,
    metrics: BTreeMap<String, Option<f64>>,
    slos: Vec<SloResult>,
    /// Faults injected, by cluster index.
    faults: Vec<(u32, FaultRecord)>,
    /// End-of-soak invariants, by cluster name.
    invariants: BTreeMap<String, Vec<InvariantResult>>,
    /// The simulated control plane against the upstream latency SLOs.
    control_plane: ControlPlane,
    /// Test-only broken node-creator, passed to every supervisor.
    node_creator_skip_every: u64,
    started: Instant,
}

pub async fn run(args: RunArgs) -> anyhow::Result<Outcome> {
    let mut profile = profile::load(&args.profile)?;
    if let Some(seed) = args.seed {
        profile.load_profile.seed = seed;
    }
    let soak = args.duration.unwrap_or(profile.durations.soak);
    if let Some(d) = args.duration {
        // Fault times must fall inside the soak actually run.
        profile.durations.soak = d;
        profile.validate().map_err(|violation| Refusal::Duration {
            path: args.profile.clone(),
            duration: humantime::format_duration(d).to_string(),
            violation,
        })?;
    }
    if args.target == TargetKind::Kube && !profile.faults.is_empty() {
        return Err(Refusal::Unsupported(format!(
            "{}: faults: the kube target does not inject faults yet (see crates/runner/src/faults.rs); run it with --target local or without `faults`",
            args.profile.display()
        ))
        .into());
    }
    if args.target == TargetKind::Local && !args.images.is_empty() {
        return Err(Refusal::Unsupported(
            "--image names the kube target's images; the local target runs the binaries of `make upstream` and `make build`"
                .into(),
        )
        .into());
    }
    if args.target == TargetKind::Kube {
        kube_sut_runnable(&profile, &args.profile, &args.images)?;
    }
    if args.target == TargetKind::Local && !args.chart_values.is_empty() {
        return Err(Refusal::Unsupported("--set is a chart value of the kube target".into()).into());
    }
    if let Some(bad) = args.chart_values.iter().find(|v| v.split_once('=').is_none_or(|(k, _)| k.trim().is_empty())) {
        return Err(Refusal::Unsupported(format!("--set {bad:?}: expected KEY=VALUE (a chart value)")).into());
    }
    let run_length = soak + Duration::from_secs(60);
    let est = estimate::estimate(&profile, run_length);
    println!("{}", est.describe(&profile));
    let kube = match args.target {
        TargetKind::Kube => {
            let (kubectl, helm) =
                crate::kube::tools(args.bin_dir.as_deref()).map_err(|e| Refusal::Missing(e.to_string()))?;
            let kube =
                crate::kube::Kube::connect(kubectl, helm, args.context.as_deref()).await.map_err(Refusal::Kube)?;
            let (vcpu, gb) = kube.allocatable().await.map_err(Refusal::Kube)?;
            estimate::kube_budget(&profile, vcpu, gb).map_err(Refusal::Budget)?;
            Some(kube)
        }
        TargetKind::Local => {
            estimate::local_budget(&profile, estimate::machine_memory_gib()).map_err(Refusal::Budget)?;
            None
        }
    };
    if estimate::needs_confirmation(args.context.as_deref(), &est) && !args.yes {
        confirm(est.usd, args.context.as_deref().unwrap_or_default())?;
    }
    let (supervisor, prometheus_bin) = match kube {
        Some(_) => (PathBuf::new(), PathBuf::new()),
        None => {
            local_sut_runnable(&profile, &args.profile, args.bin_dir.as_deref())?;
            (
                find_binary("scaletest-cluster", args.bin_dir.as_deref())?,
                find_binary("prometheus", args.bin_dir.as_deref())?,
            )
        }
    };

    let started_at = humantime::format_rfc3339_seconds(SystemTime::now()).to_string();
    let stamp = started_at.replace(['-', ':'], "").replace('T', "-").trim_end_matches('Z').to_string();
    let run_id = format!("{stamp}-{}", profile.name);
    let output = args.output.clone().unwrap_or_else(|| PathBuf::from("results").join(&run_id));
    std::fs::create_dir_all(&output).map_err(|source| Refusal::Output { path: output.clone(), source })?;
    let output = std::fs::canonicalize(&output).map_err(|source| Refusal::Output { path: output.clone(), source })?;
    // The effective profile (seed override included) is what every cluster runs. In
    // the kube target a manifest template travels beside it (the chart's profileFiles),
    // so the mounted profile names it by file name, relative to itself.
    let effective = output.join(format!("{}.yaml", profile.name));
    let mut mounted = profile.clone();
    let mut files = Vec::new();
    if args.target == TargetKind::Kube {
        if let Some(t) = &profile.load_profile.template {
            mounted.load_profile.template = Some(crate::kube::mounted_name(t));
            files.push(t.clone());
        }
        if let profile::Sut::External(sut) = &mut mounted.sut {
            if !sut.manifests.is_empty() {
                let bundle = crate::kube::bundle_manifests(&sut.manifests, &output)?;
                sut.manifests = vec![crate::kube::mounted_name(&bundle)];
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
    }
    std::fs::write(&effective, serde_yaml_ng::to_string(&mounted)?)?;
    let work = tempfile::Builder::new().prefix("scaletest-run-").tempdir()?;
    println!("run {run_id}: output {}", output.display());

    // The chart sized by the footprint rule, then the user's --set (which win).
    let mut chart_values = crate::kube::footprint_values(&profile);
    chart_values.extend(args.chart_values.iter().cloned());
    let mut run = Run {
        run_id,
        profile,
        profile_file: args.profile.clone(),
        output,
        work,
        clusters: Vec::new(),
        prometheus: None,
        kube: kube.map(|k| KubeRun::new(k, &stamp, crate::images::helm_set_strings(&args.images), chart_values, files)),
        phases: BTreeMap::new(),
        metrics: BTreeMap::new(),
        slos: Vec::new(),
        faults: Vec::new(),
        invariants: BTreeMap::new(),
        control_plane: ControlPlane::default(),
        node_creator_skip_every: args.node_creator_skip_every,
        started: Instant::now(),
    };
    let shutdown = scaletest_core::shutdown::on_signals();
    let result = tokio::select! {
        r = run.phases(&supervisor, &prometheus_bin, &effective, soak, args.bin_dir.as_deref(), &shutdown) => r,
        _ = shutdown.cancelled() => Err(RunFailure::Interrupted),
        _ = tokio::time::sleep(args.max_duration) => Err(RunFailure::Other(format!(
            "exceeded --max-duration {}", humantime::format_duration(args.max_duration)))),
    };
    let failed_invariants: Vec<String> = run
        .invariants
        .iter()
        .flat_map(|(cluster, results)| {
            results.iter().filter(|i| !i.held).map(move |i| format!("{cluster} {} ({})", i.name, i.detail))
        })
        .collect();
    let outcome = match &result {
        Ok(()) if run.slos.iter().all(|s| s.passed) && failed_invariants.is_empty() => Outcome::Passed,
        Err(RunFailure::Interrupted) => Outcome::Interrupted,
        _ => Outcome::Failed,
    };
    let reason = (outcome != Outcome::Passed).then(|| {
        let mut why = Vec::new();
        if let Err(e) = &result {
            why.push(e.to_string());
        }
        if !failed_invariants.is_empty() {
            why.push(format!("invariant failed: {}", failed_invariants.join("; ")));
        }
        let slos: Vec<String> = run.slos.iter().filter(|s| !s.passed).map(SloResult::describe).collect();
        if !slos.is_empty() {
            why.push(format!("SLO failed: {}", slos.join("; ")));
        }
        why.join("; ")
    });
    let output = run.output.clone();
    let summary = run.teardown(&args, est, &started_at, outcome == Outcome::Passed, reason).await;
    // A teardown that failed (e.g. `helm uninstall`) fails a run that had passed.
    let outcome = if outcome == Outcome::Passed && !summary.passed { Outcome::Failed } else { outcome };
    println!("{}", serde_json::to_string_pretty(&summary.metrics)?);
    for s in &summary.slos {
        println!("  {} {}", if s.passed { "PASS" } else { "FAIL" }, s.describe());
    }
    for c in &summary.clusters {
        for i in &c.invariants {
            println!("  {} {} {}: {}", if i.held { "HELD" } else { "FAIL" }, c.name, i.name, i.detail);
        }
    }
    let caveat = summary.control_plane.warning().map(|w| format!(" (but {w})")).unwrap_or_default();
    match &summary.reason {
        None => println!("PASSED{caveat}: summary {}", summary_path(&output).display()),
        Some(r) => println!("FAILED: {r}{caveat}\nsummary {}", summary_path(&output).display()),
    }
    Ok(outcome)
}

/// The seed's guardrail: a person says yes to a costly cloud run.
fn confirm(usd: f64, context: &str) -> Result<(), Refusal> {
    use std::io::{BufRead, IsTerminal, Write};
    if !std::io::stdin().is_terminal() {
        return Err(Refusal::NoTerminal { usd, context: context.into() });
    }
    print!("This run is estimated at ${usd:.2} on {context}. Proceed? [y/N] ");
    let _ = std::io::stdout().flush();
    let mut line = String::new();
    let _ = std::io::stdin().lock().read_line(&mut line);
    if matches!(line.trim(), "y" | "Y" | "yes") { Ok(()) } else { Err(Refusal::Declined) }
}

fn summary_path(output: &Path) -> PathBuf {
    output.join("summary.json")
}

/// A user's controller runs locally from its `command`: refuse a profile that gives only
/// an image, or names a program that is not installed, before anything starts.
fn local_sut_runnable(profile: &Profile, path: &Path, bin_dir: Option<&Path>) -> Result<(), Refusal> {
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

/// On the kube target a user's controller runs from an image (a sidecar): refuse a
/// profile that gives only its local `command` when no `--image sut=` names one.
fn kube_sut_runnable(profile: &Profile, path: &Path, images: &[crate::images::ImageOverride]) -> Result<(), Refusal> {
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

fn find_binary(name: &str, bin_dir: Option<&Path>) -> Result<PathBuf, Refusal> {
    let dir = bin_dir.map(Path::to_path_buf).unwrap_or_else(scaletest_cluster::binaries::default_bin_dir);
    scaletest_cluster::binaries::find(name, &dir).map_err(|e| {
        let hint = if name == "prometheus" { " (make upstream installs it with apt)" } else { "" };
        Refusal::Missing(format!("{e}{hint}"))
    })
}

#[derive(Debug, thiserror::Error)]
enum RunFailure {
    #[error("interrupted by a signal")]
    Interrupted,
    #[error("{0}")]
    Other(String),
}

/// The verdict for a cluster the invariants could not be checked on.
fn unreachable(e: impl std::fmt::Display) -> InvariantResult {
    InvariantResult {
        name: invariants::PODS_BOUND.into(),
        held: false,
        detail: format!("cannot reach the cluster's apiserver: {e}"),
    }
}

fn fail(e: impl std::fmt::Display) -> RunFailure {
    RunFailure::Other(e.to_string())
}

const BINDING_P99: &str =
    "histogram_quantile(0.99, sum(rate(scaletest_load_driver_binding_latency_seconds_bucket[1m])) by (le))";

impl Run {
    async fn phases(
        &mut self,
        supervisor: &Path,
        prometheus_bin: &Path,
        profile_path: &Path,
        soak: Duration,
        bin_dir: Option<&Path>,
        shutdown: &CancellationToken,
    ) -> Result<(), RunFailure> {
        if self.kube.is_some() {
            return self.kube_phases(profile_path, soak, shutdown).await;
        }
        let t = Instant::now();
        println!("[install] starting {} simulated cluster(s)", self.profile.kwok.cluster_count);
        let mut args = vec![
            format!("--profile={}", profile_path.display()),
            format!("--run-id={}", self.run_id),
            format!("--load-gate={}", self.load_gate().display()),
        ];
        args.extend(bin_dir.map(|b| format!("--bin-dir={}", b.display())));
        if self.node_creator_skip_every > 0 {
            args.push(format!("--node-creator-skip-every={}", self.node_creator_skip_every));
        }
        local::start_all(supervisor, self.work.path(), self.profile.kwok.cluster_count, &args, &mut self.clusters)
            .await
            .map_err(fail)?;
        self.start_prometheus(prometheus_bin).await?;
        self.wait_first_scrape(shutdown).await?;
        self.check_slo_queries().await?;
        // Only now does load start: every object it makes is measured.
        std::fs::write(self.load_gate(), b"").map_err(fail)?;
        self.phases.insert("install".into(), t.elapsed().as_secs_f64());

        let t = Instant::now();
        println!(
            "[steady] waiting for every cluster to reach {} objects",
            self.profile.load_profile.objects_per_cluster
        );
        if let Err(e) = self.wait_steady(shutdown).await {
            if !matches!(e, RunFailure::Interrupted) {
                // Say what is missing, not only that the cluster never settled.
                self.check_invariants(Duration::ZERO).await;
            }
            return Err(e);
        }
        self.phases.insert("steadyState".into(), t.elapsed().as_secs_f64());

        let t = Instant::now();
        println!("[soak] {}", humantime::format_duration(soak));
        let plan = faults::plan(&self.profile.faults, soak, self.profile.kwok.cluster_count);
        let targets = self.fault_targets();
        let recover_within = self.profile.durations.steady_state_timeout;
        let (_, records) = tokio::join!(self.soak(soak), faults::run(&plan, &targets, t, recover_within));
        self.faults = records;
        self.phases.insert("soak".into(), t.elapsed().as_secs_f64());

        let t = Instant::now();
        self.check_invariants(INVARIANT_SETTLE).await;
        self.phases.insert("invariants".into(), t.elapsed().as_secs_f64());

        self.evaluate().await?;
        Ok(())
    }

    /// Where each local cluster's supervisor (control routes) and load-driver answer.
    fn fault_targets(&self) -> Vec<faults::ClusterTarget> {
        let addr = |c: &LocalCluster, name: &str| c.endpoints.metrics_address(name).map(str::to_string);
        self.clusters
            .iter()
            .enumerate()
            .map(|(i, c)| faults::ClusterTarget {
                index: i as u32,
                name: c.endpoints.cluster.clone(),
                supervisor: addr(c, "scaletest-cluster").unwrap_or_default(),
                load_driver: addr(c, "load-driver"),
            })
            .collect()
    }

    /// Every local cluster's invariants, checked side by side (kube target:
    /// [`Run::check_kube_invariants`]).
    async fn check_invariants(&mut self, settle: Duration) {
        println!("[invariants] checking {} cluster(s)", self.clusters.len());
        let kind = self.profile.load_profile.kind;
        let nodes = self.profile.harness.nodes;
        let run_id = self.run_id.clone();
        let checks = self.clusters.iter().enumerate().map(|(i, c)| {
            let run_id = run_id.clone();
            let records: Vec<FaultRecord> =
                self.faults.iter().filter(|(ci, _)| *ci == i as u32).map(|(_, r)| r.clone()).collect();
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
        for (cluster, results) in futures::future::join_all(checks).await {
            for r in results.iter().filter(|r| !r.held) {
                println!("[invariants] {cluster}: {} FAILED: {}", r.name, r.detail);
            }
            self.invariants.insert(cluster, results);
        }
    }

    async fn start_prometheus(&mut self, program: &Path) -> Result<(), RunFailure> {
        let dir = self.work.path().join("prometheus");
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
        let component: Component = prom::component(program, &config_path, &tsdb, port);
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

    fn load_gate(&self) -> PathBuf {
        self.work.path().join("start-load")
    }

    /// Waits until Prometheus has scraped every target once.
    async fn wait_first_scrape(&self, shutdown: &CancellationToken) -> Result<(), RunFailure> {
        let addr = self.prom_addr().ok_or_else(|| fail("no Prometheus"))?.to_string();
        let want: usize =
            self.clusters.iter().map(|c| c.endpoints.components.iter().filter(|x| x.metrics.is_some()).count()).sum();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let up = prom::query(&addr, "count(up == 1)").await.ok().flatten().unwrap_or(0.0);
            if up as usize >= want {
                return Ok(());
            }
            if Instant::now() >= deadline {
                let down = prom::query(&addr, "count(up == 0)").await.ok().flatten().unwrap_or(0.0);
                return Err(fail(format!(
                    "Prometheus scrapes {up} of {want} targets after 60 s ({down} down); see {}",
                    self.output.join("logs/prometheus/prometheus.log").display()
                )));
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                _ = shutdown.cancelled() => return Err(RunFailure::Interrupted),
            }
        }
    }

    /// Has the run's Prometheus evaluate every SLO query once before the load starts, so a
    /// query it refuses (a function it does not know) fails the run now, not after the soak.
    /// No data yet is fine; any other trouble is left for the evaluation to report.
    async fn check_slo_queries(&self) -> Result<(), RunFailure> {
        let addr = self.prom_addr().ok_or_else(|| fail("no Prometheus"))?;
        for (i, slo) in self.profile.slos().iter().enumerate() {
            // Any valid range will do: what is checked is the query, not a value.
            let query = slo.query.replace(profile::SLO_WINDOW, "60s");
            match prom::query(addr, &query).await {
                Ok(_) => {}
                Err(prom::QueryError::Refused { message, .. }) => {
                    return Err(fail(format!(
                        "{}: slos[{i}].query: Prometheus refused the query of SLO {:?}: {message}",
                        self.profile_file.display(),
                        slo.name
                    )));
                }
                Err(e) => eprintln!("warning: SLO {:?} could not be checked before the load: {e}", slo.name),
            }
        }
        Ok(())
    }

    fn prom_addr(&self) -> Option<&str> {
        match &self.kube {
            Some(k) => k.prometheus.as_ref().map(|(_, a)| a.as_str()),
            None => self.prometheus.as_ref().map(|(_, a, _)| a.as_str()),
        }
    }

    async fn kube_phases(
        &mut self,
        profile_path: &Path,
        soak: Duration,
        shutdown: &CancellationToken,
    ) -> Result<(), RunFailure> {
        let t = Instant::now();
        let clusters = self.profile.kwok.cluster_count;
        let timeout = self.profile.durations.steady_state_timeout;
        let k = self.kube.as_mut().expect("kube run");
        println!(
            "[install] helm install {} into namespace {} ({clusters} simulated cluster(s))",
            k.release, k.namespace
        );
        k.install(profile_path, &self.run_id).await.map_err(fail)?;
        let addr = k.forward_prometheus(timeout, shutdown).await.map_err(fail)?;
        println!("[install] prometheus forwarded to http://{addr}");
        // Every cluster's load-driver scraped, then the gates open.
        let up = "count(up{component=\"load-driver\"} == 1)";
        wait_for_value(&addr, up, f64::from(clusters), timeout, shutdown, "load-drivers scraped").await?;
        // The SUT scraped once before the load too: its histograms' first sample must
        // precede its first observations, or rate() over the run sees no increase (a fast
        // ramp is acknowledged within one scrape interval).
        let sut_scraped = match &self.profile.sut {
            profile::Sut::Reference(_) => true,
            profile::Sut::External(e) => e.metrics.is_some(),
        };
        if sut_scraped {
            let up = "count(up{component=\"sut\"} == 1)";
            wait_for_value(&addr, up, f64::from(clusters), timeout, shutdown, "SUTs scraped").await?;
        }
        self.check_slo_queries().await?;
        let k = self.kube.as_ref().expect("kube run");
        k.wait_clusters_ready(timeout, shutdown).await.map_err(fail)?;
        k.open_load_gates().await.map_err(fail)?;
        self.phases.insert("install".into(), t.elapsed().as_secs_f64());

        let t = Instant::now();
        println!(
            "[steady] waiting for every cluster to reach {} objects",
            self.profile.load_profile.objects_per_cluster
        );
        let steady = "count(scaletest_load_driver_steady_state == 1)";
        wait_for_value(&addr, steady, f64::from(clusters), timeout, shutdown, "steady state").await?;
        self.phases.insert("steadyState".into(), t.elapsed().as_secs_f64());

        let t = Instant::now();
        println!("[soak] {}", humantime::format_duration(soak));
        self.soak(soak).await;
        self.phases.insert("soak".into(), t.elapsed().as_secs_f64());

        let t = Instant::now();
        self.check_kube_invariants(INVARIANT_SETTLE).await;
        self.phases.insert("invariants".into(), t.elapsed().as_secs_f64());
        self.evaluate().await
    }

    /// The local target's invariants, on every simulated-cluster Pod: its apiserver and
    /// load-driver port-forwarded, its admin certificate copied out.
    async fn check_kube_invariants(&mut self, settle: Duration) {
        let Some(k) = self.kube.as_ref() else { return };
        let kind = self.profile.load_profile.kind;
        let nodes = self.profile.harness.nodes;
        let pods = match k.cluster_pods().await {
            Ok(p) => p,
            Err(e) => {
                let r = InvariantResult {
                    name: invariants::PODS_BOUND.into(),
                    held: false,
                    detail: format!("cannot list the simulated-cluster Pods: {e}"),
                };
                self.invariants.insert("(kube)".into(), vec![r]);
                return;
            }
        };
        println!("[invariants] checking {} cluster(s)", pods.len());
        let dir = self.work.path().join("kube-access");
        let checks = pods.iter().map(|pod| {
            let (run_id, dir) = (self.run_id.clone(), dir.join(pod));
            async move {
                let results = match k.cluster_access(pod, &dir).await {
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
        for (cluster, results) in futures::future::join_all(checks).await {
            for r in results.iter().filter(|r| !r.held) {
                println!("[invariants] {cluster}: {} FAILED: {}", r.name, r.detail);
            }
            self.invariants.insert(cluster, results);
        }
    }

    /// Reads the load-driver's own gauges straight from each cluster.
    async fn driver_sample(c: &LocalCluster, name: &str) -> Option<f64> {
        let text = http::get(c.endpoints.metrics_address("load-driver")?, "/metrics").await.ok()?;
        http::sample(&text, &format!("scaletest_load_driver_{name}"))
    }

    async fn wait_steady(&self, shutdown: &CancellationToken) -> Result<(), RunFailure> {
        let deadline = Instant::now() + self.profile.durations.steady_state_timeout;
        let mut last_print = Instant::now();
        loop {
            let mut behind = Vec::new();
            for c in &self.clusters {
                if Self::driver_sample(c, "steady_state").await != Some(1.0) {
                    let active = Self::driver_sample(c, "objects_active").await.unwrap_or(0.0);
                    let bound = Self::driver_sample(c, "objects_bound").await.unwrap_or(0.0);
                    behind.push((c, active, bound));
                }
            }
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
                    humantime::format_duration(self.profile.durations.steady_state_timeout),
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
                _ = shutdown.cancelled() => return Err(RunFailure::Interrupted),
            }
        }
    }

    async fn soak(&self, soak: Duration) {
        let end = Instant::now() + soak;
        while Instant::now() < end {
            tokio::time::sleep(Duration::from_secs(10).min(end - Instant::now())).await;
            let mut objects = Vec::new();
            for c in &self.clusters {
                objects.push(Self::driver_sample(c, "objects_active").await.unwrap_or(0.0));
            }
            if let (Some(_), Some(a)) = (&self.kube, self.prom_addr()) {
                objects.push(
                    prom::query(a, "sum(scaletest_load_driver_objects_active)").await.ok().flatten().unwrap_or(0.0),
                );
            }
            let p99 = match self.prom_addr() {
                Some(a) => prom::query(a, BINDING_P99).await.ok().flatten(),
                None => None,
            };
            let shown: Vec<String> = objects.iter().take(8).map(|o| format!("{o:.0}")).collect();
            println!(
                "[soak] {:>4.0}s left | objects/cluster [{}{}] | binding p99 {}",
                end.saturating_duration_since(Instant::now()).as_secs_f64(),
                shown.join(" "),
                if objects.len() > 8 { " …" } else { "" },
                p99.map_or("n/a".to_string(), |v| format!("{v:.3}s")),
            );
        }
    }

    async fn evaluate(&mut self) -> Result<(), RunFailure> {
        let addr = self.prom_addr().ok_or_else(|| fail("no Prometheus"))?.to_string();
        // One more scrape so the last values are in.
        tokio::time::sleep(Duration::from_secs(6)).await;
        // One instant for every query, the window ending there (see prom::query_at).
        let at = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64());
        let window = format!("{}s", self.started.elapsed().as_secs().max(60));
        let q = |h: &str, quantile: f64| {
            format!("histogram_quantile({quantile}, sum(increase({h}_bucket[{window}])) by (le))")
        };
        let mut queries: Vec<(&str, String)> = vec![
            ("objectsActive", "sum(scaletest_load_driver_objects_active)".into()),
            ("objectsCreatedPerSec", format!("sum(rate(scaletest_load_driver_created_total[{window}]))")),
            // Acknowledged by the apiserver, then not there (see the load-driver's audit).
            ("objectsLost", "sum(scaletest_load_driver_objects_lost_total) or vector(0)".into()),
            ("bindingLatencyP50Seconds", q(profile::BINDING_LATENCY_METRIC, 0.5)),
            ("bindingLatencyP99Seconds", q(profile::BINDING_LATENCY_METRIC, 0.99)),
            ("acknowledgeLatencyP99Seconds", q("scaletest_load_driver_acknowledge_latency_seconds", 0.99)),
            ("sutCycleDurationP99Seconds", q(profile::SUT_CYCLE_DURATION_METRIC, 0.99)),
            ("sutShortfalls", "sum(scaletest_sut_shortfalls)".into()),
            (
                "apiserverRequestP99Seconds",
                format!(
                    "histogram_quantile(0.99, sum(rate(apiserver_request_duration_seconds_bucket{{verb!~\"WATCH|CONNECT\"}}[{window}])) by (le))"
                ),
            ),
            ("componentRestarts", "sum(scaletest_cluster_child_restarts_total) or vector(0)".into()),
        ];
        // Autoscaler KPIs (nodesCreated among them), measured by the load-drivers for any SUT.
        queries.extend(summary::kpi_queries(&window, q));
        for (name, query) in queries {
            let v = prom::query_at(&addr, &query, at).await.map_err(fail)?;
            self.metrics.insert(name.to_string(), v);
        }
        let records: Vec<FaultRecord> = self.faults.iter().map(|(_, r)| r.clone()).collect();
        if !self.profile.faults.is_empty() {
            for (name, v) in faults::recovery_metrics(&records) {
                self.metrics.insert(name.to_string(), v);
            }
        }
        let mut apiserver = [None; 3];
        for (slot, (_, query, _)) in apiserver.iter_mut().zip(saturation::queries(&window)) {
            *slot = prom::query_at(&addr, &query, at).await.map_err(fail)?;
        }
        self.control_plane = ControlPlane::judge(apiserver);
        for mut slo in self.profile.slos() {
            slo.query = slo.query.replace(profile::SLO_WINDOW, &window);
            let v = prom::query_at(&addr, &slo.query, at).await.map_err(fail)?;
            self.metrics.insert(slo.name.clone(), v);
            self.slos.push(SloResult::judge(&slo, v));
        }
        let took = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64()) - at;
        self.phases.insert("evaluate".into(), took);
        Ok(())
    }

    /// Each cluster's name, invariants and faults, in cluster order.
    fn clusters_failover(&self) -> Vec<(String, Vec<InvariantResult>, Vec<FaultRecord>)> {
        self.clusters
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let name = c.endpoints.cluster.clone();
                let invariants = self.invariants.get(&name).cloned().unwrap_or_default();
                let faults = self.faults.iter().filter(|(ci, _)| *ci == i as u32).map(|(_, r)| r.clone()).collect();
                (name, invariants, faults)
            })
            .collect()
    }

    /// Report, snapshot, summary, and every process and temp dir gone.
    async fn teardown(
        mut self,
        args: &RunArgs,
        est: estimate::Estimate,
        started_at: &str,
        mut passed: bool,
        mut reason: Option<String>,
    ) -> Summary {
        println!("[teardown] collecting results");
        let t = Instant::now();
        if let Some(addr) = self.prom_addr().map(str::to_string) {
            let failover = report::failover_markdown(&self.clusters_failover());
            if let Err(e) = report::write(
                &addr,
                &self.output,
                &self.run_id,
                self.profile.kwok.mode,
                self.started.elapsed(),
                &self.metrics,
                &self.slos,
                &failover,
            )
            .await
            {
                eprintln!("warning: report not written: {e}");
            }
            if let Some(k) = &self.kube {
                let tar = self.output.join("prometheus-snapshot.tar.gz");
                if let Err(e) = k.snapshot(&addr, &tar).await {
                    eprintln!("warning: no Prometheus snapshot: {e}");
                }
            }
            if let Some((_, _, tsdb)) = &self.prometheus {
                match prom::snapshot(&addr, tsdb).await {
                    Ok(dir) => {
                        let tar = self.output.join("prometheus-snapshot.tar.gz");
                        let ok = tokio::process::Command::new("tar")
                            .arg("-czf")
                            .arg(&tar)
                            .arg("-C")
                            .arg(&dir)
                            .arg(".")
                            .status()
                            .await
                            .is_ok_and(|s| s.success());
                        if !ok {
                            eprintln!("warning: could not write {}", tar.display());
                        }
                    }
                    Err(e) => eprintln!("warning: no Prometheus snapshot: {e}"),
                }
            }
        }
        let mut clusters = Vec::new();
        let mut failover = self.clusters_failover().into_iter();
        for c in &self.clusters {
            let active = Self::driver_sample(c, "objects_active").await;
            let logs = self.output.join("logs").join(&c.endpoints.cluster);
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
        if self.kube.is_some() {
            // One entry per simulated-cluster Pod whose invariants were checked.
            for (name, invariants) in &self.invariants {
                clusters.push(ClusterResult {
                    name: name.clone(),
                    startup_seconds: None,
                    objects_active: None,
                    log_dir: String::new(),
                    invariants: invariants.clone(),
                    faults: Vec::new(),
                });
            }
        }
        if let Some(k) = self.kube.take() {
            println!("[teardown] helm uninstall {}", k.release);
            if let Err(e) = k.uninstall(&self.run_id).await {
                // What the run leaves on the user's cluster is part of the verdict.
                eprintln!("error: {e}");
                passed = false;
                let teardown = format!("teardown failed: {e}");
                reason = Some(match reason {
                    Some(r) => format!("{r}; {teardown}"),
                    None => teardown,
                });
            }
        }
        println!("[teardown] stopping {} cluster(s) and Prometheus", self.clusters.len());
        local::stop_all(std::mem::take(&mut self.clusters)).await;
        if let Some((p, _, _)) = self.prometheus.take() {
            p.stop().await;
        }
        // Keep the logs (small) for diagnosis; the rest of the work dir goes.
        for entry in std::fs::read_dir(self.work.path()).into_iter().flatten().flatten() {
            let src = entry.path().join("logs");
            if src.is_dir() {
                let dst = self.output.join("logs").join(entry.file_name());
                let _ = copy_dir(&src, &dst);
            }
        }
        self.phases.insert("teardown".into(), t.elapsed().as_secs_f64());
        let summary = Summary {
            run_id: self.run_id.clone(),
            profile: self.profile.name.clone(),
            target: Target { kind: args.target.as_str().into(), context: args.context.clone() },
            cost: Cost { estimated_usd: est.usd, hours: est.hours },
            scale: Scale {
                kwok_clusters: est.clusters,
                objects_per_cluster: est.objects_per_cluster,
                total_objects: est.total_objects,
                object_kind: self.profile.load_profile.kind.to_string(),
                density: self.profile.harness.density,
                scheduler: self.profile.harness.scheduler.to_string(),
                kwok_mode: self.profile.kwok.mode.to_string(),
                nodes: self.profile.harness.nodes.to_string(),
                sut: match self.profile.sut.external() {
                    None => "reference".into(),
                    Some(e) => e.command.first().or(e.image.as_ref()).cloned().unwrap_or_default(),
                },
            },
            metrics: self.metrics.clone(),
            slos: self.slos.clone(),
            passed,
            reason,
            control_plane: self.control_plane.clone(),
            started_at: started_at.to_string(),
            finished_at: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
            phases: self.phases.clone(),
            clusters,
        };
        if let Err(e) = summary.write(&summary_path(&self.output)) {
            eprintln!("error: cannot write {}: {e}", summary_path(&self.output).display());
        }
        let work = self.work;
        let _ = work.close();
        summary
    }
}

/// Polls an instant query until it reaches `want` (bounded by `timeout`).
async fn wait_for_value(
    addr: &str,
    query: &str,
    want: f64,
    timeout: Duration,
    shutdown: &CancellationToken,
    what: &str,
) -> Result<(), RunFailure> {
    let deadline = Instant::now() + timeout;
    loop {
        let v = prom::query(addr, query).await.ok().flatten().unwrap_or(0.0);
        if v >= want {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(fail(format!("{what}: {v} of {want} clusters within {}", humantime::format_duration(timeout))));
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(2)) => {}
            _ = shutdown.cancelled() => return Err(RunFailure::Interrupted),
        }
    }
}

fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn copy_dir(src: &Path, dst: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dst)?;
    for entry in std::fs::read_dir(src)? {
        let entry = entry?;
        if entry.file_type()?.is_file() {
            std::fs::copy(entry.path(), dst.join(entry.file_name()))?;
        }
    }
    Ok(())
}

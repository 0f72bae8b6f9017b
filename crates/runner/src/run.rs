//! `scaletest-runner run`: estimate → install → steady state → soak →
//! evaluate → report → snapshot → summary.json → teardown (always): one sequence of
//! phases over a target (`crate::target`: local or kube), which does each phase's
//! target-specific part.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use scaletest_core::profile::{self, Profile};

use crate::cli::{RunArgs, TargetKind};
use crate::estimate;
use crate::faults::{self, FaultRecord};
use crate::invariants::InvariantResult;
use crate::prom;
use crate::report;
use crate::saturation::{self, ControlPlane};
use crate::summary::{self, ClusterResult, Cost, Scale, SloResult, Summary};
use crate::target::kube::KubeTarget;
use crate::target::local::LocalTarget;
use crate::target::{self, Context, Findings, Target};

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
struct Run<T> {
    cx: Context,
    target: T,
    phases: BTreeMap<String, f64>,
    metrics: BTreeMap<String, Option<f64>>,
    slos: Vec<SloResult>,
    /// Faults injected, by cluster index.
    faults: Vec<(u32, FaultRecord)>,
    /// End-of-soak invariants, by cluster name.
    invariants: BTreeMap<String, Vec<InvariantResult>>,
    /// The simulated control plane against the upstream latency SLOs.
    control_plane: ControlPlane,
}

pub async fn run(args: RunArgs) -> anyhow::Result<Outcome> {
    let (profile, soak) = load(&args)?;
    refuse(&profile, &args)?;
    let run_length = soak + Duration::from_secs(60);
    let est = estimate::estimate(&profile, run_length);
    println!("{}", est.describe(&profile));
    match args.target {
        TargetKind::Local => {
            target::local::budget(&profile)?;
            confirm_if_costly(&args, &est)?;
            let local = LocalTarget::find(&profile, &args)?;
            let start = Start::new(&profile, &args)?;
            let cx = start.context(profile.clone(), &profile, &args)?;
            execute(Run::new(cx, local), &args, est, &start.started_at, soak).await
        }
        TargetKind::Kube => {
            let kube = target::kube::connect(&profile, &args).await?;
            confirm_if_costly(&args, &est)?;
            let start = Start::new(&profile, &args)?;
            let (mounted, files) = target::kube::mount(&profile, &args, &start.output)?;
            let kube = KubeTarget::new(kube, &start.stamp, &profile, &args, files);
            let cx = start.context(profile, &mounted, &args)?;
            execute(Run::new(cx, kube), &args, est, &start.started_at, soak).await
        }
    }
}

/// The profile with the command line's overrides, and the soak to run.
fn load(args: &RunArgs) -> anyhow::Result<(Profile, Duration)> {
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
    Ok((profile, soak))
}

/// The target's own refusals, then the chart values' form.
fn refuse(profile: &Profile, args: &RunArgs) -> Result<(), Refusal> {
    match args.target {
        TargetKind::Kube => target::kube::refuse(profile, args)?,
        TargetKind::Local => target::local::refuse(args)?,
    }
    if let Some(bad) = args.chart_values.iter().find(|v| v.split_once('=').is_none_or(|(k, _)| k.trim().is_empty())) {
        return Err(Refusal::Unsupported(format!("--set {bad:?}: expected KEY=VALUE (a chart value)")));
    }
    Ok(())
}

fn confirm_if_costly(args: &RunArgs, est: &estimate::Estimate) -> Result<(), Refusal> {
    if estimate::needs_confirmation(args.context.as_deref(), est) && !args.yes {
        confirm(est.usd, args.context.as_deref().unwrap_or_default())?;
    }
    Ok(())
}

/// The run's name and output directory, made once nothing can refuse the run.
struct Start {
    started_at: String,
    stamp: String,
    run_id: String,
    output: PathBuf,
}

impl Start {
    fn new(profile: &Profile, args: &RunArgs) -> Result<Self, Refusal> {
        let started_at = humantime::format_rfc3339_seconds(SystemTime::now()).to_string();
        let stamp = started_at.replace(['-', ':'], "").replace('T', "-").trim_end_matches('Z').to_string();
        let run_id = format!("{stamp}-{}", profile.name);
        let output = args.output.clone().unwrap_or_else(|| PathBuf::from("results").join(&run_id));
        std::fs::create_dir_all(&output).map_err(|source| Refusal::Output { path: output.clone(), source })?;
        let output =
            std::fs::canonicalize(&output).map_err(|source| Refusal::Output { path: output.clone(), source })?;
        Ok(Self { started_at, stamp, run_id, output })
    }

    /// Writes the effective profile (seed override included), which every cluster runs,
    /// as the target mounts it (`mounted`), and makes the work dir.
    fn context(&self, profile: Profile, mounted: &Profile, args: &RunArgs) -> anyhow::Result<Context> {
        let effective = self.output.join(format!("{}.yaml", profile.name));
        std::fs::write(&effective, serde_yaml_ng::to_string(mounted)?)?;
        let work = tempfile::Builder::new().prefix("scaletest-run-").tempdir()?;
        println!("run {}: output {}", self.run_id, self.output.display());
        Ok(Context {
            run_id: self.run_id.clone(),
            profile,
            profile_file: args.profile.clone(),
            effective,
            output: self.output.clone(),
            work,
            started: Instant::now(),
            shutdown: scaletest_core::shutdown::on_signals(),
        })
    }
}

/// The phases (bounded by a signal and --max-duration), the teardown, and the verdict printed.
async fn execute<T: Target>(
    mut run: Run<T>,
    args: &RunArgs,
    est: estimate::Estimate,
    started_at: &str,
    soak: Duration,
) -> anyhow::Result<Outcome> {
    let shutdown = run.cx.shutdown.clone();
    let result = tokio::select! {
        r = run.phases(soak) => r,
        _ = shutdown.cancelled() => Err(RunFailure::Interrupted),
        _ = tokio::time::sleep(args.max_duration) => Err(RunFailure::Other(format!(
            "exceeded --max-duration {}", humantime::format_duration(args.max_duration)))),
    };
    let (outcome, reason) = run.verdict(&result);
    let output = run.cx.output.clone();
    let summary = run.teardown(args, est, started_at, outcome == Outcome::Passed, reason).await;
    // A teardown that failed (e.g. `helm uninstall`) fails a run that had passed.
    let outcome = if outcome == Outcome::Passed && !summary.passed { Outcome::Failed } else { outcome };
    print_summary(&summary, &output)?;
    Ok(outcome)
}

fn print_summary(summary: &Summary, output: &Path) -> anyhow::Result<()> {
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
        None => println!("PASSED{caveat}: summary {}", summary_path(output).display()),
        Some(r) => println!("FAILED: {r}{caveat}\nsummary {}", summary_path(output).display()),
    }
    Ok(())
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

#[derive(Debug, thiserror::Error)]
pub(crate) enum RunFailure {
    #[error("interrupted by a signal")]
    Interrupted,
    #[error("{0}")]
    Other(String),
}

pub(crate) fn fail(e: impl std::fmt::Display) -> RunFailure {
    RunFailure::Other(e.to_string())
}

const BINDING_P99: &str =
    "histogram_quantile(0.99, sum(rate(scaletest_load_driver_binding_latency_seconds_bucket[1m])) by (le))";

impl<T: Target> Run<T> {
    fn new(cx: Context, target: T) -> Self {
        Self {
            cx,
            target,
            phases: BTreeMap::new(),
            metrics: BTreeMap::new(),
            slos: Vec::new(),
            faults: Vec::new(),
            invariants: BTreeMap::new(),
            control_plane: ControlPlane::default(),
        }
    }

    fn timed(&mut self, phase: &str, since: Instant) {
        self.phases.insert(phase.into(), since.elapsed().as_secs_f64());
    }

    async fn phases(&mut self, soak: Duration) -> Result<(), RunFailure> {
        let t = Instant::now();
        let prometheus = self.install().await?;
        self.timed("install", t);

        let t = Instant::now();
        println!(
            "[steady] waiting for every cluster to reach {} objects",
            self.cx.profile.load_profile.objects_per_cluster
        );
        self.wait_steady(&prometheus).await?;
        self.timed("steadyState", t);

        let t = Instant::now();
        println!("[soak] {}", humantime::format_duration(soak));
        let plan = faults::plan(&self.cx.profile.faults, soak, self.cx.profile.kwok.cluster_count);
        let targets = self.target.fault_targets();
        let recover_within = self.cx.profile.durations.steady_state_timeout;
        let (_, records) = tokio::join!(self.soak(soak), faults::run(&plan, &targets, t, recover_within));
        self.faults = records;
        self.timed("soak", t);

        let t = Instant::now();
        self.check_invariants(INVARIANT_SETTLE).await;
        self.timed("invariants", t);

        self.evaluate().await
    }

    /// The clusters and Prometheus up and scraped, every SLO query accepted, then the
    /// load let in. Returns the Prometheus address.
    async fn install(&mut self) -> Result<String, RunFailure> {
        self.target.install(&self.cx).await?;
        let prometheus = self.target.prometheus().ok_or_else(|| fail("no Prometheus"))?.to_string();
        self.target.wait_until_scraped(&self.cx, &prometheus).await?;
        self.check_slo_queries(&prometheus).await?;
        // Only now does load start: every object it makes is measured.
        self.target.open_load_gates(&self.cx).await?;
        Ok(prometheus)
    }

    async fn wait_steady(&mut self, prometheus: &str) -> Result<(), RunFailure> {
        let Err(e) = self.target.wait_steady(&self.cx, prometheus).await else { return Ok(()) };
        if T::INVARIANTS_EXPLAIN_A_STALL && !matches!(e, RunFailure::Interrupted) {
            // Say what is missing, not only that the cluster never settled.
            self.check_invariants(Duration::ZERO).await;
        }
        Err(e)
    }

    /// Every cluster's invariants, its failures printed as they come.
    async fn check_invariants(&mut self, settle: Duration) {
        match self.target.invariants(&self.cx, settle, &self.faults).await {
            Ok(checked) => {
                for (cluster, results) in checked {
                    for r in results.iter().filter(|r| !r.held) {
                        println!("[invariants] {cluster}: {} FAILED: {}", r.name, r.detail);
                    }
                    self.invariants.insert(cluster, results);
                }
            }
            Err((what, result)) => {
                self.invariants.insert(what, vec![result]);
            }
        }
    }

    /// Has the run's Prometheus evaluate every SLO query once before the load starts, so a
    /// query it refuses (a function it does not know) fails the run now, not after the soak.
    /// No data yet is fine; any other trouble is left for the evaluation to report.
    async fn check_slo_queries(&self, prometheus: &str) -> Result<(), RunFailure> {
        for (i, slo) in self.cx.profile.slos().iter().enumerate() {
            // Any valid range will do: what is checked is the query, not a value.
            let query = slo.query.replace(profile::SLO_WINDOW, "60s");
            match prom::query(prometheus, &query).await {
                Ok(_) => {}
                Err(prom::QueryError::Refused { message, .. }) => {
                    return Err(fail(format!(
                        "{}: slos[{i}].query: Prometheus refused the query of SLO {:?}: {message}",
                        self.cx.profile_file.display(),
                        slo.name
                    )));
                }
                Err(e) => eprintln!("warning: SLO {:?} could not be checked before the load: {e}", slo.name),
            }
        }
        Ok(())
    }

    async fn soak(&self, soak: Duration) {
        let end = Instant::now() + soak;
        while Instant::now() < end {
            tokio::time::sleep(Duration::from_secs(10).min(end - Instant::now())).await;
            let prometheus = self.target.prometheus();
            let objects = self.target.objects_active(prometheus).await;
            let p99 = match prometheus {
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
        let addr = self.target.prometheus().ok_or_else(|| fail("no Prometheus"))?.to_string();
        // One more scrape so the last values are in.
        tokio::time::sleep(Duration::from_secs(6)).await;
        // One instant for every query, the window ending there (see prom::query_at).
        let at = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64());
        let window = format!("{}s", self.cx.started.elapsed().as_secs().max(60));
        for (name, query) in metric_queries(&window) {
            let v = prom::query_at(&addr, &query, at).await.map_err(fail)?;
            self.metrics.insert(name.to_string(), v);
        }
        let records: Vec<FaultRecord> = self.faults.iter().map(|(_, r)| r.clone()).collect();
        if !self.cx.profile.faults.is_empty() {
            for (name, v) in faults::recovery_metrics(&records) {
                self.metrics.insert(name.to_string(), v);
            }
        }
        let mut apiserver = [None; 3];
        for (slot, (_, query, _)) in apiserver.iter_mut().zip(saturation::queries(&window)) {
            *slot = prom::query_at(&addr, &query, at).await.map_err(fail)?;
        }
        self.control_plane = ControlPlane::judge(apiserver);
        for mut slo in self.cx.profile.slos() {
            slo.query = slo.query.replace(profile::SLO_WINDOW, &window);
            let v = prom::query_at(&addr, &slo.query, at).await.map_err(fail)?;
            self.metrics.insert(slo.name.clone(), v);
            self.slos.push(SloResult::judge(&slo, v));
        }
        let took = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64()) - at;
        self.phases.insert("evaluate".into(), took);
        Ok(())
    }

    /// Passed only with every phase done, every SLO met and every invariant held; else why not.
    fn verdict(&self, result: &Result<(), RunFailure>) -> (Outcome, Option<String>) {
        let failed_invariants: Vec<String> = self
            .invariants
            .iter()
            .flat_map(|(cluster, results)| {
                results.iter().filter(|i| !i.held).map(move |i| format!("{cluster} {} ({})", i.name, i.detail))
            })
            .collect();
        let outcome = match result {
            Ok(()) if self.slos.iter().all(|s| s.passed) && failed_invariants.is_empty() => Outcome::Passed,
            Err(RunFailure::Interrupted) => Outcome::Interrupted,
            _ => Outcome::Failed,
        };
        let reason = (outcome != Outcome::Passed).then(|| {
            let mut why = Vec::new();
            if let Err(e) = result {
                why.push(e.to_string());
            }
            if !failed_invariants.is_empty() {
                why.push(format!("invariant failed: {}", failed_invariants.join("; ")));
            }
            let slos: Vec<String> = self.slos.iter().filter(|s| !s.passed).map(SloResult::describe).collect();
            if !slos.is_empty() {
                why.push(format!("SLO failed: {}", slos.join("; ")));
            }
            why.join("; ")
        });
        (outcome, reason)
    }

    fn findings(&self) -> Findings<'_> {
        Findings { invariants: &self.invariants, faults: &self.faults }
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
        self.write_report().await;
        let clusters = self.target.cluster_results(&self.cx.output, &self.findings()).await;
        if let Err(e) = self.target.uninstall(&self.cx.run_id).await {
            // What the run leaves on the user's cluster is part of the verdict.
            eprintln!("error: {e}");
            passed = false;
            let teardown = format!("teardown failed: {e}");
            reason = Some(match reason {
                Some(r) => format!("{r}; {teardown}"),
                None => teardown,
            });
        }
        println!("[teardown] stopping {} cluster(s) and Prometheus", self.target.clusters_here());
        self.target.stop().await;
        self.keep_logs();
        self.timed("teardown", t);
        let summary = self.summary(args, est, started_at, passed, reason, clusters);
        if let Err(e) = summary.write(&summary_path(&self.cx.output)) {
            eprintln!("error: cannot write {}: {e}", summary_path(&self.cx.output).display());
        }
        let work = self.cx.work;
        let _ = work.close();
        summary
    }

    /// The report and the Prometheus snapshot, while Prometheus still answers.
    async fn write_report(&self) {
        let Some(addr) = self.target.prometheus() else { return };
        let failover = report::failover_markdown(&self.target.failover(&self.findings()));
        let cx = &self.cx;
        let elapsed = cx.started.elapsed();
        let mode = cx.profile.kwok.mode;
        if let Err(e) =
            report::write(addr, &cx.output, &cx.run_id, mode, elapsed, &self.metrics, &self.slos, &failover).await
        {
            eprintln!("warning: report not written: {e}");
        }
        let tar = cx.output.join("prometheus-snapshot.tar.gz");
        if let Err(warning) = self.target.snapshot(addr, &tar).await {
            eprintln!("warning: {warning}");
        }
    }

    /// Keeps the logs (small) for diagnosis; the rest of the work dir goes.
    fn keep_logs(&self) {
        for entry in std::fs::read_dir(self.cx.work.path()).into_iter().flatten().flatten() {
            let src = entry.path().join("logs");
            if src.is_dir() {
                let dst = self.cx.output.join("logs").join(entry.file_name());
                let _ = copy_dir(&src, &dst);
            }
        }
    }

    fn summary(
        &self,
        args: &RunArgs,
        est: estimate::Estimate,
        started_at: &str,
        passed: bool,
        reason: Option<String>,
        clusters: Vec<ClusterResult>,
    ) -> Summary {
        let profile = &self.cx.profile;
        Summary {
            run_id: self.cx.run_id.clone(),
            profile: profile.name.clone(),
            target: summary::Target { kind: args.target.as_str().into(), context: args.context.clone() },
            cost: Cost { estimated_usd: est.usd, hours: est.hours },
            scale: Scale {
                kwok_clusters: est.clusters,
                objects_per_cluster: est.objects_per_cluster,
                total_objects: est.total_objects,
                object_kind: profile.load_profile.kind.to_string(),
                density: profile.harness.density,
                scheduler: profile.harness.scheduler.to_string(),
                kwok_mode: profile.kwok.mode.to_string(),
                nodes: profile.harness.nodes.to_string(),
                sut: match profile.sut.external() {
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
        }
    }
}

/// The summary's metrics and their queries over `window`.
fn metric_queries(window: &str) -> Vec<(&'static str, String)> {
    let q =
        |h: &str, quantile: f64| format!("histogram_quantile({quantile}, sum(increase({h}_bucket[{window}])) by (le))");
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
    queries.extend(summary::kpi_queries(window, q));
    queries
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

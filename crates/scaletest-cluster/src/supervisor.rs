//! Brings one simulated cluster up in dependency order, keeps it up, and
//! takes it down in reverse order, leaving no process, port or temp dir.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use prometheus_client::registry::Registry;
use scaletest_core::endpoints::{self, ComponentEndpoint, Endpoints, MetricsTarget};
use scaletest_core::metrics::{self as admin, Readiness};
use tokio_util::sync::CancellationToken;

use crate::binaries::{self, MissingBinary};
use crate::components::{self, Component, Layout, Programs};
use crate::config::{ApiserverLimits, ClusterArgs, ControlPlane};
use crate::harness::{self, HarnessPrograms, HarnessSpec};
use crate::lean::{self, Lean};
use crate::metrics::SupervisorMetrics;
use crate::pki::{self, PkiError};
use crate::ports::{PortError, Ports};
use crate::probe::Prober;
use crate::process::{ChildState, ProcessError, RestartPolicy, Supervised, log_tail};

#[derive(Debug, thiserror::Error)]
pub enum SupervisorError {
    #[error(transparent)]
    MissingBinary(#[from] MissingBinary),
    #[error(transparent)]
    Ports(#[from] PortError),
    #[error(transparent)]
    Pki(#[from] PkiError),
    #[error(transparent)]
    Process(#[from] ProcessError),
    #[error(transparent)]
    Metrics(#[from] admin::MetricsError),
    #[error(transparent)]
    Endpoints(#[from] endpoints::EndpointsError),
    #[error("cannot prepare {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{name} exited before it was ready ({status}); see {log}:\n{tail}")]
    ExitedEarly { name: &'static str, status: String, log: String, tail: String },
    #[error("{name} was not ready within {timeout:?} (last probe: {probe}); see {log}:\n{tail}")]
    NotReady { name: &'static str, timeout: Duration, probe: String, log: String, tail: String },
    #[error("{name} kept exiting ({status}, {starts} starts); see {log}")]
    GaveUp { name: &'static str, status: String, starts: u32, log: String },
    #[error("cannot install the CRDs")]
    Crds(#[from] crate::crds::CrdError),
    #[error("cannot connect to the cluster's apiserver")]
    Client(#[from] scaletest_core::client::ClientError),
    #[error("interrupted during startup")]
    Interrupted,
    #[error(transparent)]
    Profile(#[from] scaletest_core::profile::ProfileError),
    #[error("cannot read the system under test's manifests")]
    Manifests(#[from] scaletest_core::manifests::ManifestError),
    #[error("cannot apply the system under test's manifests")]
    Apply(#[from] crate::apply::ApplyError),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> SupervisorError + '_ {
    move |source| SupervisorError::Io { path: path.to_owned(), source }
}

/// The data directory: the one given, or a temporary one removed at exit.
enum DataDir {
    Given(PathBuf),
    Temp(tempfile::TempDir),
}

impl DataDir {
    fn path(&self) -> &Path {
        match self {
            DataDir::Given(p) => p,
            DataDir::Temp(t) => t.path(),
        }
    }
}

/// A lean control plane for the profile's objects: the load's (its template's type, given
/// its text) and the SUT's manifests.
fn lean_for(
    template: Option<&str>,
    sut_manifests: &[scaletest_core::manifests::Manifest],
    limits: ApiserverLimits,
) -> Lean {
    let mut objects: Vec<(String, String)> =
        sut_manifests.iter().map(|m| (m.api_version.clone(), m.kind.clone())).collect();
    objects.extend(template.and_then(lean::template_type));
    Lean::for_objects(objects.iter().map(|(v, k)| (v.as_str(), k.as_str())), limits == ApiserverLimits::Default)
}

/// Runs the cluster until `shutdown` fires (or a component gives up).
pub async fn run(args: ClusterArgs, shutdown: CancellationToken) -> Result<(), SupervisorError> {
    let t0 = Instant::now();
    // A bad profile or a missing binary is reported before anything starts.
    let profile = match &args.profile {
        Some(p) => Some((p.clone(), scaletest_core::profile::load(p)?)),
        None => None,
    };
    let scheduler_mode = args.scheduler.or(profile.as_ref().map(|(_, p)| p.harness.scheduler)).unwrap_or_default();
    let limits =
        args.apiserver_limits.or(profile.as_ref().map(|(_, p)| p.harness.apiserver_limits)).unwrap_or_default();
    let kwok_mode = args.kwok_mode.or(profile.as_ref().map(|(_, p)| p.kwok.mode)).unwrap_or_default();
    let spec = HarnessSpec {
        profile: profile.as_ref().map(|(path, p)| (path.as_path(), p)),
        run_id: &args.run_id,
        cluster: &args.name,
        cluster_index: args.cluster_index(),
        node_creator_skip_every: args.node_creator_skip_every,
        load_gate: args.load_gate.as_deref(),
        density: args.density,
        run_sut: !args.no_sut,
    };
    let find = |n: &str| binaries::find(n, &args.bin_dir);
    let (kine, apiserver, kcm, kwok) =
        (find("kine")?, find("kube-apiserver")?, find("kube-controller-manager")?, find("kwok")?);
    let scheduler = match scheduler_mode {
        crate::config::SchedulerMode::KubeScheduler => find("kube-scheduler")?,
        crate::config::SchedulerMode::PodShim => PathBuf::new(),
    };
    let node_agents = match kwok_mode {
        crate::config::KwokMode::Faithful => find("scaletest-node-agents")?,
        crate::config::KwokMode::Fast => PathBuf::new(),
    };
    for name in HarnessPrograms::needed(scheduler_mode, &spec) {
        find(&name)?;
    }
    let found = |n: &str| find(n).unwrap_or_default();
    let harness_programs = HarnessPrograms {
        node_creator: found("scaletest-node-creator"),
        pod_shim: found("scaletest-pod-shim"),
        load_driver: found("scaletest-load-driver"),
        sut: match profile.as_ref().and_then(|(_, p)| p.sut.external()).and_then(|e| e.command.first()) {
            Some(program) if program.contains('/') => PathBuf::from(program),
            Some(name) => found(name),
            None => found("scaletest-sut"),
        },
    };
    // A user's controller finds its CRDs and objects in place when it starts, here or
    // in a sidecar container (--no-sut): they go in with the project's own CRDs.
    let sut_manifests = match profile.as_ref().and_then(|(_, p)| p.sut.external()) {
        Some(e) => scaletest_core::manifests::read_all(&e.manifests)?,
        None => Vec::new(),
    };
    let ports = match args.port_base {
        Some(base) => Ports::fixed(base)?,
        None => Ports::pick()?,
    };

    let data = match &args.data_dir {
        Some(d) => {
            std::fs::create_dir_all(d).map_err(io(d))?;
            DataDir::Given(std::fs::canonicalize(d).map_err(io(d))?)
        }
        None => DataDir::Temp(
            tempfile::Builder::new().prefix("scaletest-cluster-").tempdir().map_err(io(Path::new("$TMPDIR")))?,
        ),
    };
    let dir = data.path().to_path_buf();
    let logs = dir.join("logs");
    std::fs::create_dir_all(&logs).map_err(io(&logs))?;

    let lean = match args.control_plane.or(profile.as_ref().map(|(_, p)| p.control_plane())) {
        Some(ControlPlane::Lean) => {
            let template = match profile.as_ref().and_then(|(_, p)| p.load_profile.template.as_ref()) {
                Some(t) => Some(std::fs::read_to_string(t).map_err(io(t))?),
                None => None,
            };
            Some(lean_for(template.as_deref(), &sut_manifests, limits))
        }
        Some(ControlPlane::Full) | None => None,
    };

    let apiserver_url = format!("https://127.0.0.1:{}", ports.apiserver);
    let pki = pki::ensure(&dir.join("pki"), &apiserver_url, &args.extra_sans)?;
    let layout = Layout {
        data_dir: dir.clone(),
        pki,
        ports,
        bind_address: args.bind_address.to_string(),
        advertise_address: args.advertise_address.to_string(),
        scheduler: scheduler_mode,
        apiserver_limits: limits,
        lean,
        kwok_mode,
        apiserver_args: args.apiserver_args.clone(),
    };
    let mut plan = components::control_plane(
        &layout,
        &Programs {
            kine: &kine,
            apiserver: &apiserver,
            controller_manager: &kcm,
            scheduler: &scheduler,
            kwok: &kwok,
            node_agents: &node_agents,
        },
    );
    plan.extend(harness::harness(&layout, &harness_programs, &spec));

    let mut registry = Registry::with_prefix("scaletest_cluster");
    let metrics = SupervisorMetrics::register(&mut registry);
    let admin_addr = SocketAddr::new(args.bind_address, ports.supervisor);
    let admin_listener = admin::bind(admin_addr).await?;
    let ready = Readiness::default();
    let admin_stop = CancellationToken::new();
    let children = crate::control::Children::default();
    let admin_task = tokio::spawn(admin::serve_with(
        admin_listener,
        Arc::new(registry),
        ready.clone(),
        crate::control::router(children.clone())
            .merge(crate::apiserver_metrics::router(layout.pki.admin_kubeconfig.clone())),
        admin_stop.clone(),
    ));

    let policy = RestartPolicy { max_restarts: args.max_restarts, ..RestartPolicy::default() };
    let mut running: Vec<Supervised> = Vec::new();
    let endpoints_path = dir.join(endpoints::FILE_NAME);
    let result = async {
        tokio::select! {
            r = start_all(&plan, &sut_manifests, &logs, policy, &metrics, args.startup_timeout, &mut running, &layout) => r?,
            _ = shutdown.cancelled() => return Err(SupervisorError::Interrupted),
        }
        children.set(running.iter().map(Supervised::handle).collect());
        let startup = t0.elapsed().as_secs_f64();
        metrics.startup_seconds.set(startup);
        metrics.ready.set(1);
        ready.set_ready();
        let e = endpoints_of(&args.name, &layout, &plan, &logs, startup);
        e.write(&endpoints_path)?;
        tracing::info!(cluster = %args.name, seconds = format!("{startup:.1}"), endpoints = %endpoints_path.display(), "simulated cluster ready");
        watch(&running, &shutdown).await
    }
    .await;

    // Teardown, always, in reverse start order.
    let _ = std::fs::remove_file(&endpoints_path);
    while let Some(child) = running.pop() {
        tracing::info!(component = child.name, "stopping");
        child.stop().await;
    }
    admin_stop.cancel();
    let _ = admin_task.await;
    if let DataDir::Temp(t) = data {
        let _ = t.close();
    }
    tracing::info!(cluster = %args.name, "simulated cluster stopped");
    result
}

#[allow(clippy::too_many_arguments)]
async fn start_all(
    plan: &[Component],
    sut_manifests: &[scaletest_core::manifests::Manifest],
    logs: &Path,
    policy: RestartPolicy,
    metrics: &SupervisorMetrics,
    timeout: Duration,
    running: &mut Vec<Supervised>,
    layout: &Layout,
) -> Result<(), SupervisorError> {
    for c in plan {
        start_one(c, logs, policy, metrics, timeout, running).await?;
        if c.name == "kube-apiserver" {
            // The CRDs go in as soon as the apiserver serves, so that
            // components started later can watch them.
            let client = scaletest_core::client::from_kubeconfig(&layout.pki.admin_kubeconfig).await?;
            crate::crds::install(&client, timeout).await?;
            if !sut_manifests.is_empty() {
                tracing::info!(objects = sut_manifests.len(), "applying the system under test's manifests");
                crate::apply::apply(&client, sut_manifests, timeout).await?;
            }
        }
    }
    Ok(())
}

/// Starts `c` under supervision and waits until its probe passes (or it
/// exits, or `timeout`). Also used by the runner for Prometheus.
pub async fn start_one(
    c: &Component,
    logs: &Path,
    policy: RestartPolicy,
    metrics: &SupervisorMetrics,
    timeout: Duration,
    running: &mut Vec<Supervised>,
) -> Result<(), SupervisorError> {
    for (path, body) in &c.files {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io(parent))?;
        }
        std::fs::write(path, body).map_err(io(path))?;
    }
    for dir in &c.dirs {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
    }
    let log = logs.join(format!("{}.log", c.name));
    tracing::info!(component = c.name, log = %log.display(), "starting");
    let child = Supervised::start(c.clone(), log.clone(), policy, metrics.clone())?;
    let mut state = child.state.clone();
    running.push(child);

    let prober = Prober::new(c.probe.clone());
    let deadline = tokio::time::Instant::now() + timeout;
    let fail_tail = || (log.display().to_string(), log_tail(&log, 15));
    loop {
        if prober.ready().await {
            tracing::info!(component = c.name, "ready");
            return Ok(());
        }
        if let ChildState::Exited { status, .. } | ChildState::GaveUp { status, .. } = state.borrow_and_update().clone()
        {
            let (log, tail) = fail_tail();
            return Err(SupervisorError::ExitedEarly { name: c.name, status, log, tail });
        }
        if tokio::time::Instant::now() >= deadline {
            let (log, tail) = fail_tail();
            let probe = prober.last_error().unwrap_or_else(|| "no answer".into());
            return Err(SupervisorError::NotReady { name: c.name, timeout, probe, log, tail });
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(250)) => {}
            _ = state.changed() => {}
        }
    }
}

/// Waits for shutdown; fails if any child exceeds its restart budget.
async fn watch(running: &[Supervised], shutdown: &CancellationToken) -> Result<(), SupervisorError> {
    // One receiver per child for the whole loop, each marked seen as it is read: a
    // fresh clone of a never-updated receiver reports every past change again, and the
    // loop would spin on the first restart. A child whose task has ended drops out.
    let mut states: Vec<Option<tokio::sync::watch::Receiver<ChildState>>> =
        running.iter().map(|c| Some(c.state.clone())).collect();
    loop {
        for (c, state) in running.iter().zip(&mut states) {
            let Some(rx) = state else { continue };
            if let ChildState::GaveUp { status, starts } = rx.borrow_and_update().clone() {
                let log = c.log_file.display().to_string();
                return Err(SupervisorError::GaveUp { name: c.name, status, starts, log });
            }
            if rx.has_changed().is_err() {
                *state = None;
            }
        }
        let live: Vec<_> = states.iter_mut().flatten().map(|rx| Box::pin(rx.changed())).collect();
        if live.is_empty() {
            shutdown.cancelled().await;
            return Ok(());
        }
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            _ = futures::future::select_all(live) => {}
        }
    }
}

fn endpoints_of(name: &str, l: &Layout, plan: &[Component], logs: &Path, startup: f64) -> Endpoints {
    let mut components: Vec<ComponentEndpoint> = plan
        .iter()
        .map(|c| ComponentEndpoint {
            name: c.name.to_string(),
            log_file: logs.join(format!("{}.log", c.name)),
            metrics: c.metrics.clone(),
        })
        .collect();
    components.push(ComponentEndpoint {
        name: "scaletest-cluster".into(),
        log_file: logs.join("scaletest-cluster.log"),
        metrics: Some(MetricsTarget {
            scheme: "http".into(),
            address: format!("{}:{}", l.advertise_address, l.ports.supervisor),
            path: "/metrics".into(),
            tls: None,
        }),
    });
    Endpoints {
        cluster: name.to_string(),
        data_dir: l.data_dir.clone(),
        kubeconfig: l.pki.admin_kubeconfig.clone(),
        apiserver_url: l.apiserver_url(),
        supervisor_pid: std::process::id(),
        startup_seconds: startup,
        ports: l.ports.all().iter().map(|(role, port)| (role.to_string(), *port)).collect(),
        components,
    }
}

//! Builders for the harness processes a supervisor runs beside the control
//! plane: node-creator (or pod-shim), the per-cluster system under test and
//! the load-driver. Pure, like [`crate::components`].

use std::path::{Path, PathBuf};

use scaletest_core::profile::{
    ExternalSut, NodeSource, Placeholder, PortRef, Profile, SUT_KUBECONFIG_ENV, Scheduler, Sut, substitute,
};

use crate::components::{Component, Layout, Probe};

/// What the harness needs beyond the control plane's layout.
pub struct HarnessSpec<'a> {
    pub profile: Option<(&'a Path, &'a Profile)>,
    pub run_id: &'a str,
    pub cluster: &'a str,
    /// 0-based index of the cluster in the run (`${clusterIndex}`).
    pub cluster_index: u32,
    /// Test-only fault injection passed to node-creator (`--skip-every`).
    pub node_creator_skip_every: u64,
    /// File the load-driver waits for before its first phase.
    pub load_gate: Option<&'a Path>,
    /// Overrides the profile's harness.density for the reference SUT.
    pub density: Option<u32>,
    /// False when the system under test runs outside this supervisor.
    pub run_sut: bool,
}

/// Our harness binaries, resolved once by the caller.
pub struct HarnessPrograms {
    pub node_creator: PathBuf,
    pub pod_shim: PathBuf,
    pub load_driver: PathBuf,
    pub sut: PathBuf,
}

impl HarnessPrograms {
    /// The names to look up: only what `spec` will run. A user's controller given by
    /// path is the profile's business (checked when it is loaded).
    pub fn needed(scheduler: Scheduler, spec: &HarnessSpec) -> Vec<String> {
        let mut v = Vec::new();
        if runs_node_maker(spec) {
            v.push(match scheduler {
                Scheduler::KubeScheduler => "scaletest-node-creator".to_string(),
                Scheduler::PodShim => "scaletest-pod-shim".to_string(),
            });
        }
        if let Some((_, profile)) = spec.profile {
            match &profile.sut {
                _ if !spec.run_sut => {}
                Sut::Reference(_) => v.push("scaletest-sut".into()),
                Sut::External(e) => v.extend(e.command.first().filter(|p| !p.contains('/')).cloned()),
            }
            v.push("scaletest-load-driver".into());
        }
        v
    }
}

/// node-creator (or pod-shim) runs unless the profile's SUT makes the Nodes itself.
fn runs_node_maker(spec: &HarnessSpec) -> bool {
    spec.profile.is_none_or(|(_, p)| p.harness.nodes == NodeSource::NodeCreator)
}

fn base(l: &Layout, name: &'static str, program: &Path, port: u16) -> Component {
    let addr = format!("{}:{port}", l.bind_address);
    Component {
        name,
        program: program.into(),
        args: vec![format!("--kubeconfig={}", l.pki.admin_kubeconfig.display()), format!("--metrics-addr={addr}")],
        env: vec![("NO_COLOR".into(), "1".into())],
        files: vec![],
        dirs: vec![],
        probe: Probe::Http(format!("http://127.0.0.1:{port}/readyz")),
        metrics: Some(scaletest_core::endpoints::MetricsTarget {
            scheme: "http".into(),
            address: format!("{}:{port}", l.advertise_address),
            path: "/metrics".into(),
            tls: None,
        }),
    }
}

/// The value of a placeholder in this cluster.
fn fact(l: &Layout, spec: &HarnessSpec, p: Placeholder) -> String {
    match p {
        Placeholder::Kubeconfig => l.pki.admin_kubeconfig.display().to_string(),
        Placeholder::ApiserverUrl => l.apiserver_url(),
        Placeholder::ClusterIndex => spec.cluster_index.to_string(),
        Placeholder::ClusterName => spec.cluster.to_string(),
        Placeholder::RunId => spec.run_id.to_string(),
        Placeholder::MetricsPort => l.ports.sut.to_string(),
        Placeholder::HealthPort => l.ports.sut_health.to_string(),
        Placeholder::DataDir => l.data_dir.join("sut").display().to_string(),
    }
}

fn port(l: &Layout, port: PortRef) -> u16 {
    match port {
        PortRef::Fixed(n) => n,
        PortRef::Allocated(Placeholder::HealthPort) => l.ports.sut_health,
        PortRef::Allocated(_) => l.ports.sut,
    }
}

/// The user's own controller: its command with this cluster's facts in place of the
/// placeholders, probed and scraped where the profile says.
fn external_sut(l: &Layout, program: &Path, spec: &HarnessSpec, sut: &ExternalSut) -> Component {
    // The profile was validated when loaded: every placeholder is known.
    let fill = |text: &str| substitute(text, |p| fact(l, spec, p)).unwrap_or_else(|_| text.to_string());
    let kubeconfig = fact(l, spec, Placeholder::Kubeconfig);
    let mut env: Vec<(String, String)> = vec![];
    for name in ["KUBECONFIG", SUT_KUBECONFIG_ENV] {
        if !sut.env.contains_key(name) {
            env.push((name.into(), kubeconfig.clone()));
        }
    }
    env.extend(sut.env.iter().map(|(k, v)| (k.clone(), fill(v))));
    let probe = match &sut.readiness {
        Some(r) => Probe::Http(format!("{}://127.0.0.1:{}{}", r.scheme.as_str(), port(l, r.port), r.path)),
        None => Probe::Started,
    };
    let metrics = sut.metrics.as_ref().map(|m| scaletest_core::endpoints::MetricsTarget {
        scheme: m.scheme.as_str().into(),
        address: format!("{}:{}", l.advertise_address, port(l, m.port)),
        path: m.path.clone(),
        // Controllers serve self-signed certificates: reachability is what counts.
        tls: (m.scheme == scaletest_core::profile::Scheme::Https).then_some(scaletest_core::endpoints::TlsTarget {
            ca_file: None,
            cert_file: None,
            key_file: None,
            insecure_skip_verify: true,
        }),
    });
    Component {
        name: "sut",
        program: program.into(),
        args: sut.command.iter().skip(1).map(|a| fill(a)).collect(),
        env,
        files: vec![],
        dirs: vec![l.data_dir.join("sut")],
        probe,
        metrics,
    }
}

/// Harness processes in start order (stopped in reverse, before the control plane).
pub fn harness(l: &Layout, programs: &HarnessPrograms, spec: &HarnessSpec) -> Vec<Component> {
    let mut v = Vec::new();
    match l.scheduler {
        _ if !runs_node_maker(spec) => {}
        Scheduler::KubeScheduler => {
            let mut c = base(l, "node-creator", &programs.node_creator, l.ports.node_creator);
            if spec.node_creator_skip_every > 0 {
                c.args.push(format!("--skip-every={}", spec.node_creator_skip_every));
            }
            v.push(c);
        }
        Scheduler::PodShim => {
            let mut c = base(l, "pod-shim", &programs.pod_shim, l.ports.pod_shim);
            let workers = spec.profile.map_or(16, |(_, p)| p.harness.binder_workers);
            c.args.push(format!("--binder-workers={workers}"));
            v.push(c);
        }
    }
    let Some((path, profile)) = spec.profile else { return v };
    match &profile.sut {
        _ if !spec.run_sut => {}
        Sut::Reference(r) => {
            let mut c = base(l, "sut", &programs.sut, l.ports.sut);
            c.args.extend([
                format!("--provisioning-delay={}", humantime::format_duration(r.provisioning_delay)),
                format!("--acknowledge-concurrency={}", r.acknowledge_concurrency),
                format!("--cycle-interval={}", humantime::format_duration(r.cycle_interval)),
                format!("--density={}", spec.density.unwrap_or(profile.harness.density)),
            ]);
            v.push(c);
        }
        Sut::External(sut) => v.push(external_sut(l, &programs.sut, spec, sut)),
    }
    let mut c = base(l, "load-driver", &programs.load_driver, l.ports.load_driver);
    c.args.extend([
        format!("--profile={}", path.display()),
        format!("--run-id={}", spec.run_id),
        format!("--cluster={}", spec.cluster),
    ]);
    if let Some(gate) = spec.load_gate {
        c.args.push(format!("--start-gate={}", gate.display()));
    }
    v.push(c);
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::Pki;
    use crate::ports::Ports;
    use scaletest_core::profile::ApiserverLimits;

    fn layout(scheduler: Scheduler) -> Layout {
        let dir = PathBuf::from("/data/c0");
        Layout {
            pki: Pki::at(&dir.join("pki")),
            data_dir: dir,
            ports: Ports::fixed_unchecked(30000),
            bind_address: "127.0.0.1".into(),
            advertise_address: "127.0.0.1".into(),
            scheduler,
            apiserver_limits: ApiserverLimits::Default,
            lean: None,
            kwok_mode: scaletest_core::profile::KwokMode::Fast,
            apiserver_args: vec![],
        }
    }

    fn programs() -> HarnessPrograms {
        let p = PathBuf::from("/bin/x");
        HarnessPrograms { node_creator: p.clone(), pod_shim: p.clone(), load_driver: p.clone(), sut: p }
    }

    fn smoke() -> Profile {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../profiles/smoke.yaml");
        scaletest_core::profile::load(&path).unwrap()
    }

    #[test]
    fn without_a_profile_only_the_node_maker_runs() {
        let spec = HarnessSpec {
            profile: None,
            run_id: "r",
            cluster: "c",
            cluster_index: 0,
            node_creator_skip_every: 0,
            load_gate: None,
            density: None,
            run_sut: true,
        };
        let names = |s| harness(&layout(s), &programs(), &spec).iter().map(|c| c.name).collect::<Vec<_>>();
        assert_eq!(names(Scheduler::KubeScheduler), ["node-creator"]);
        assert_eq!(names(Scheduler::PodShim), ["pod-shim"]);
    }

    #[test]
    fn a_profile_adds_the_sut_and_then_the_load_driver() {
        let profile = smoke();
        let path = PathBuf::from("/p/smoke.yaml");
        let spec = HarnessSpec {
            profile: Some((&path, &profile)),
            run_id: "run-1",
            cluster: "c0",
            cluster_index: 0,
            node_creator_skip_every: 0,
            load_gate: Some(Path::new("/w/start")),
            density: None,
            run_sut: true,
        };
        let v = harness(&layout(Scheduler::KubeScheduler), &programs(), &spec);
        assert_eq!(v.iter().map(|c| c.name).collect::<Vec<_>>(), ["node-creator", "sut", "load-driver"]);
        let ld = &v[2];
        assert!(ld.args.contains(&"--profile=/p/smoke.yaml".to_string()));
        assert!(ld.args.contains(&"--run-id=run-1".to_string()));
        assert!(ld.args.contains(&"--start-gate=/w/start".to_string()));
        assert!(v[1].args.contains(&"--density=100".to_string()));
        let Sut::Reference(r) = &profile.sut else { panic!("smoke runs the reference SUT") };
        let delay = format!("--provisioning-delay={}", humantime::format_duration(r.provisioning_delay));
        assert!(v[1].args.contains(&delay), "{:?}", v[1].args);
    }

    #[test]
    fn density_and_sut_can_be_overridden_without_touching_the_profile() {
        let profile = smoke();
        let path = PathBuf::from("/p/smoke.yaml");
        let mut spec = HarnessSpec {
            profile: Some((&path, &profile)),
            run_id: "run-1",
            cluster: "c0",
            cluster_index: 0,
            node_creator_skip_every: 0,
            load_gate: None,
            density: Some(30),
            run_sut: true,
        };
        let v = harness(&layout(Scheduler::KubeScheduler), &programs(), &spec);
        assert!(v[1].args.contains(&"--density=30".to_string()), "{:?}", v[1].args);
        spec.run_sut = false;
        let v = harness(&layout(Scheduler::KubeScheduler), &programs(), &spec);
        assert_eq!(v.iter().map(|c| c.name).collect::<Vec<_>>(), ["node-creator", "load-driver"]);
        let needed = HarnessPrograms::needed(Scheduler::KubeScheduler, &spec);
        assert_eq!(needed, ["scaletest-node-creator", "scaletest-load-driver"]);
    }

    #[test]
    fn a_users_controller_gets_the_clusters_facts_and_replaces_node_creator() {
        let text = r#"
name: byo
kwok: {clusterCount: 2}
harness: {nodes: sut}
loadProfile: {objectsPerCluster: 10, phases: [{ramp: {rate: 5}}]}
sut:
  command: [ctl, "--kubeconfig=${kubeconfig}", "--id=${clusterName}/${clusterIndex}"]
  env: {METRICS_PORT: "${metricsPort}", HEALTH: "${healthPort}", KUBECONFIG: /elsewhere, DIR: "${dataDir}"}
  metrics: {port: "${metricsPort}", path: /m}
  readiness: {port: "${healthPort}"}
costEstimate: {awsSpotUsdPerHour: 0, vcpu: 1, memoryGb: 1}
"#;
        let profile = scaletest_core::profile::parse_str(text, Path::new("byo.yaml")).unwrap();
        let path = PathBuf::from("/p/byo.yaml");
        let spec = HarnessSpec {
            profile: Some((&path, &profile)),
            run_id: "run-1",
            cluster: "cluster-1",
            cluster_index: 1,
            node_creator_skip_every: 0,
            load_gate: None,
            density: None,
            run_sut: true,
        };
        let l = layout(Scheduler::KubeScheduler);
        let v = harness(&l, &programs(), &spec);
        assert_eq!(v.iter().map(|c| c.name).collect::<Vec<_>>(), ["sut", "load-driver"]);
        let sut = &v[0];
        assert_eq!(sut.args, ["--kubeconfig=/data/c0/pki/admin.kubeconfig", "--id=cluster-1/1"]);
        let env: std::collections::BTreeMap<_, _> = sut.env.iter().cloned().collect();
        assert_eq!(env["METRICS_PORT"], l.ports.sut.to_string());
        assert_eq!(env["HEALTH"], l.ports.sut_health.to_string());
        assert_eq!(env["KUBECONFIG"], "/elsewhere", "the profile's own value wins");
        assert_eq!(env[SUT_KUBECONFIG_ENV], "/data/c0/pki/admin.kubeconfig");
        assert_eq!(env["DIR"], "/data/c0/sut");
        assert_eq!(sut.probe, Probe::Http(format!("http://127.0.0.1:{}/readyz", l.ports.sut_health)));
        let m = sut.metrics.as_ref().unwrap();
        assert_eq!((m.address.as_str(), m.path.as_str()), (format!("127.0.0.1:{}", l.ports.sut).as_str(), "/m"));
        assert_eq!(HarnessPrograms::needed(Scheduler::KubeScheduler, &spec), ["ctl", "scaletest-load-driver"]);
    }
}

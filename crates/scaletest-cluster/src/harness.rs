//! Builders for the harness processes a supervisor runs beside the control
//! plane: node-creator (or pod-shim), the per-cluster system under test and
//! the load-driver. Pure, like [`crate::components`].

use std::path::{Path, PathBuf};

use scaletest_core::profile::{Profile, SUT_KUBECONFIG_ENV, Scheduler, Sut};

use crate::components::{Component, Layout, Probe};

/// What the harness needs beyond the control plane's layout.
pub struct HarnessSpec<'a> {
    pub profile: Option<(&'a Path, &'a Profile)>,
    pub run_id: &'a str,
    pub cluster: &'a str,
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
    /// The names to look up: only what `spec` will run.
    pub fn needed(scheduler: Scheduler, spec: &HarnessSpec) -> Vec<&'static str> {
        let mut v = vec![match scheduler {
            Scheduler::KubeScheduler => "scaletest-node-creator",
            Scheduler::PodShim => "scaletest-pod-shim",
        }];
        if let Some((_, profile)) = spec.profile {
            if spec.run_sut && matches!(profile.sut, Sut::Reference(_)) {
                v.push("scaletest-sut");
            }
            v.push("scaletest-load-driver");
        }
        v
    }
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

/// Harness processes in start order (stopped in reverse, before the control plane).
pub fn harness(l: &Layout, programs: &HarnessPrograms, spec: &HarnessSpec) -> Vec<Component> {
    let mut v = Vec::new();
    match l.scheduler {
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
        Sut::Command(cmd) => {
            // The user's own controller: we only know how to start it.
            let kubeconfig = l.pki.admin_kubeconfig.display().to_string();
            v.push(Component {
                name: "sut",
                program: PathBuf::from(&cmd.command[0]),
                args: cmd.command[1..].to_vec(),
                env: vec![(SUT_KUBECONFIG_ENV.into(), kubeconfig.clone()), ("KUBECONFIG".into(), kubeconfig)],
                files: vec![],
                dirs: vec![],
                probe: Probe::Started,
                metrics: None,
            });
        }
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
}

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::validate::validate_slos;
use super::*;

const MINIMAL: &str = "\
name: t
kwok: {clusterCount: 2}
loadProfile:
  objectsPerCluster: 250
  phases:
    - ramp: {rate: 50}
    - steady: {duration: 30s, churnPercent: 10, churnInterval: 10s}
    - burst: {count: 100}
costEstimate: {awsSpotUsdPerHour: 1.0, vcpu: 4, memoryGb: 8}
";

fn minimal() -> Profile {
    parse_str(MINIMAL, Path::new("t.yaml")).expect("minimal profile parses")
}

fn parse_err(text: &str) -> ProfileError {
    parse_str(text, Path::new("profiles/t.yaml")).expect_err("profile must be rejected")
}

#[test]
fn control_plane_is_lean_for_the_reference_sut_and_full_for_a_users_unless_chosen() {
    assert_eq!(minimal().control_plane(), ControlPlane::Lean);
    let users = parse_str(&format!("{MINIMAL}sut: {{command: [x]}}\n"), Path::new("t.yaml")).unwrap();
    assert_eq!(users.control_plane(), ControlPlane::Full);
    let chosen =
        parse_str(&format!("{MINIMAL}sut: {{command: [x]}}\nharness: {{controlPlane: lean}}\n"), Path::new("t.yaml"))
            .unwrap();
    assert_eq!(chosen.control_plane(), ControlPlane::Lean);
}

#[test]
fn minimal_profile_gets_defaults() {
    let p = minimal();
    assert_eq!(p.harness, Harness::default());
    assert_eq!(p.harness.scheduler, Scheduler::KubeScheduler);
    assert_eq!(p.kwok.mode, KwokMode::Fast, "fast stays the default");
    assert_eq!(p.harness.density, 100);
    assert_eq!(p.harness.apiserver_limits, ApiserverLimits::Default);
    assert_eq!(p.harness.binder_workers, 16);
    assert_eq!(p.load_profile.kind, ObjectKind::Pods);
    assert_eq!(p.load_profile.namespaces, 1);
    assert_eq!(p.load_profile.pod, PodResources::default());
    assert_eq!(p.load_profile.seed, 1);
    assert_eq!(p.load_profile.qps, 50.0);
    assert_eq!(p.load_profile.burst, 100);
    assert_eq!(p.sut, Sut::Reference(ReferenceSut::default()));
    assert_eq!(p.slos, None);
    assert_eq!(p.slos(), default_slos());
    assert_eq!(p.durations.soak, Duration::from_secs(120));
    assert_eq!(p.durations.steady_state_timeout, Duration::from_secs(600));
    assert_eq!(p.total_objects(), 500);
    assert_eq!(p.nodes_per_cluster(), 3);
    assert_eq!(p.total_nodes(), 6);
    assert_eq!(p.kwok_controllers_per_cluster(), 1);
}

#[test]
fn phases_parse_as_one_key_maps() {
    let p = minimal();
    assert_eq!(
        p.load_profile.phases,
        vec![
            Phase::Ramp(RampPhase { rate: 50.0 }),
            Phase::Steady(SteadyPhase {
                duration: Duration::from_secs(30),
                churn_percent: 10.0,
                churn_interval: Duration::from_secs(10),
            }),
            Phase::Burst(BurstPhase { count: 100 }),
        ]
    );
}

#[test]
fn yaml_round_trip() {
    let p = minimal();
    let text = serde_yaml_ng::to_string(&p).unwrap();
    assert!(text.contains("- ramp:"), "phases serialize as one-key maps:\n{text}");
    assert_eq!(parse_str(&text, Path::new("t.yaml")).unwrap(), p);

    let mut custom = p.clone();
    custom.sut = Sut::External(ExternalSut {
        command: vec!["my-controller".into(), "--fast".into(), "--kubeconfig=${kubeconfig}".into()],
        image: Some("example.invalid/ctl:1".into()),
        env: [("METRICS_PORT".to_string(), "${metricsPort}".to_string())].into(),
        manifests: vec![],
        metrics: Some(SutMetrics {
            port: PortRef::Allocated(Placeholder::MetricsPort),
            path: "/m".into(),
            scheme: Scheme::Https,
        }),
        readiness: Some(SutReadiness { port: PortRef::Fixed(8081), path: "/readyz".into(), scheme: Scheme::Http }),
        resources: Some(SutResources { cpu: "1".into(), memory: "512Mi".into() }),
    });
    custom.harness.nodes = NodeSource::Sut;
    let text = serde_yaml_ng::to_string(&custom).unwrap();
    assert_eq!(parse_str(&text, Path::new("t.yaml")).unwrap(), custom);
}

#[test]
fn default_slos_match_the_seed_table() {
    let slos = default_slos();
    let table: Vec<(&str, f64)> = slos.iter().map(|s| (s.name.as_str(), s.threshold)).collect();
    assert_eq!(
        table,
        [
            ("shardCycleDurationP99Seconds", 0.1),
            ("operatorRollupP99Seconds", 1.0),
            ("acknowledgeP99Seconds", 12.0),
            ("internalBindingLatencyP99Seconds", 20.0),
        ]
    );
    assert_eq!(
        slos[0].query,
        "histogram_quantile(0.99, sum(rate(scaletest_sut_cycle_duration_seconds_bucket[$window])) by (le))"
    );
    assert!(slos[3].query.contains("scaletest_load_driver_binding_latency_seconds_bucket"));
    assert!(slos.iter().all(|s| s.comparison == Comparison::Below));
    assert!(validate_slos(&slos).is_ok());
}

#[test]
fn slo_comparison() {
    let mut slo = default_slos().remove(0);
    assert!(slo.passes(0.1));
    assert!(!slo.passes(0.11));
    assert!(!slo.passes(f64::NAN));
    slo.comparison = Comparison::Above;
    assert!(slo.passes(0.1));
    assert!(!slo.passes(0.09));
}

#[test]
fn cost_estimate() {
    let mut p = minimal();
    p.cost_estimate.aws_spot_usd_per_hour = 36.0;
    assert!((p.estimated_cost_usd(Duration::from_secs(3600)) - 36.0).abs() < 1e-9);
    assert!((p.estimated_cost_usd(Duration::from_secs(600)) - 6.0).abs() < 1e-9);
    assert_eq!(p.estimate_duration(), p.durations.soak);
    p.cost_estimate.hours = Some(0.5);
    assert_eq!(p.estimate_duration(), Duration::from_secs(1800));
}

#[test]
fn unlimited_apiserver_disables_every_limit() {
    assert!(ApiserverLimits::Default.apiserver_flags().is_empty());
    let flags = ApiserverLimits::Unlimited.apiserver_flags();
    assert!(flags.contains(&"--max-requests-inflight=0"));
    assert!(flags.contains(&"--max-mutating-requests-inflight=0"));
    assert!(flags.contains(&"--enable-priority-and-fairness=false"));
}

/// Every validation rule, broken one at a time, names its field.
#[test]
fn each_rule_can_fail() {
    type Breaker = fn(&mut Profile);
    let cases: &[(&str, Breaker)] = &[
        ("name", |p| p.name = "Not_A_Label".into()),
        ("name", |p| p.name = String::new()),
        ("name", |p| p.name = "-t".into()),
        ("name", |p| p.name = "a".repeat(MAX_NAME_LEN + 1)),
        ("kwok.clusterCount", |p| p.kwok.cluster_count = 0),
        ("kwok.nodesPerController", |p| p.kwok.nodes_per_controller = Some(0)),
        ("harness.density", |p| p.harness.density = 0),
        ("harness.density", |p| p.harness.density = 1001),
        ("harness.binderWorkers", |p| p.harness.binder_workers = 0),
        ("loadProfile.objectsPerCluster", |p| p.load_profile.objects_per_cluster = 0),
        ("loadProfile.namespaces", |p| p.load_profile.namespaces = 0),
        ("loadProfile.pod.cpu", |p| p.load_profile.pod.cpu = "lots".into()),
        ("loadProfile.pod.cpu", |p| p.load_profile.pod.cpu = "0".into()),
        ("loadProfile.pod.memory", |p| p.load_profile.pod.memory = "12Qx".into()),
        ("loadProfile.pod.memory", |p| p.load_profile.pod.memory = "0".into()),
        ("loadProfile.template", |p| p.load_profile.kind = ObjectKind::Manifest),
        ("loadProfile.template", |p| {
            p.load_profile.kind = ObjectKind::Manifest;
            p.load_profile.template = Some(PathBuf::new());
        }),
        ("loadProfile.template", |p| {
            p.load_profile.template = Some("deploy.yaml".into());
        }),
        ("loadProfile.qps", |p| p.load_profile.qps = 0.0),
        ("loadProfile.qps", |p| p.load_profile.qps = f64::NAN),
        ("loadProfile.burst", |p| p.load_profile.burst = 0),
        ("loadProfile.phases", |p| p.load_profile.phases.clear()),
        ("loadProfile.phases[0]", |p| {
            p.load_profile.phases.remove(0);
        }),
        ("loadProfile.phases[0].ramp.rate", |p| {
            p.load_profile.phases[0] = Phase::Ramp(RampPhase { rate: -1.0 });
        }),
        ("loadProfile.phases[1].steady.duration", |p| {
            set_steady(p, |s| s.duration = Duration::ZERO);
        }),
        ("loadProfile.phases[1].steady.churnPercent", |p| {
            set_steady(p, |s| s.churn_percent = 101.0);
        }),
        ("loadProfile.phases[1].steady.churnPercent", |p| {
            set_steady(p, |s| s.churn_percent = -0.5);
        }),
        ("loadProfile.phases[1].steady.churnInterval", |p| {
            set_steady(p, |s| s.churn_interval = Duration::ZERO);
        }),
        ("loadProfile.phases[2].burst.count", |p| {
            p.load_profile.phases[2] = Phase::Burst(BurstPhase { count: 0 });
        }),
        ("loadProfile.phases[2].burst.count", |p| {
            p.load_profile.phases[2] = Phase::Burst(BurstPhase { count: 251 });
        }),
        ("sut.reference.acknowledgeConcurrency", |p| {
            p.sut = Sut::Reference(ReferenceSut { acknowledge_concurrency: 0, ..ReferenceSut::default() });
        }),
        ("sut.reference.cycleInterval", |p| {
            p.sut = Sut::Reference(ReferenceSut { cycle_interval: Duration::ZERO, ..ReferenceSut::default() });
        }),
        ("sut", |p| p.sut = Sut::External(ExternalSut::default())),
        ("sut.command[0]", |p| p.sut = external(&[" "])),
        ("sut.image", |p| {
            p.sut = Sut::External(ExternalSut { image: Some(String::new()), ..ExternalSut::default() });
        }),
        ("sut.command[1]", |p| p.sut = external(&["ctl", "--kubeconfig=${kubeconf}"])),
        ("sut.resources.cpu", |p| {
            let resources = SutResources { cpu: "lots".into(), memory: "1Gi".into() };
            p.sut = Sut::External(ExternalSut {
                image: Some("ctl:1".into()),
                resources: Some(resources),
                ..ExternalSut::default()
            });
        }),
        ("sut.resources.memory", |p| {
            let resources = SutResources { cpu: "1".into(), memory: "0".into() };
            p.sut = Sut::External(ExternalSut {
                image: Some("ctl:1".into()),
                resources: Some(resources),
                ..ExternalSut::default()
            });
        }),
        ("sut.env.PORT", |p| {
            let mut sut = ExternalSut { command: vec!["ctl".into()], ..ExternalSut::default() };
            sut.env.insert("PORT".into(), "${metricsPort".into());
            p.sut = Sut::External(sut);
        }),
        ("sut.env", |p| {
            let mut sut = ExternalSut { command: vec!["ctl".into()], ..ExternalSut::default() };
            sut.env.insert("1X".into(), "1".into());
            p.sut = Sut::External(sut);
        }),
        ("sut.metrics.path", |p| {
            let metrics = SutMetrics { port: PortRef::Fixed(1), path: "metrics".into(), scheme: Scheme::Http };
            p.sut = Sut::External(ExternalSut {
                metrics: Some(metrics),
                ..ExternalSut { command: vec!["c".into()], ..ExternalSut::default() }
            });
        }),
        ("harness.nodes", |p| p.harness.nodes = NodeSource::Sut),
        ("harness.scheduler", |p| {
            p.sut = external(&["ctl"]);
            p.harness.nodes = NodeSource::Sut;
            p.harness.scheduler = Scheduler::PodShim;
        }),
        ("loadProfile.kind", |p| {
            p.sut = external(&["ctl"]);
            p.harness.nodes = NodeSource::Sut;
            p.load_profile.kind = ObjectKind::CapacityRequests;
        }),
        ("slos[1].name", |p| p.slos = Some(with_slo(|s| s[1].name = s[0].name.clone()))),
        ("slos[0].name", |p| p.slos = Some(with_slo(|s| s[0].name = "p99 latency".into()))),
        ("slos[0].name", |p| p.slos = Some(with_slo(|s| s[0].name = "9lives".into()))),
        ("slos[2].query", |p| p.slos = Some(with_slo(|s| s[2].query = "  ".into()))),
        ("slos[3].threshold", |p| p.slos = Some(with_slo(|s| s[3].threshold = f64::INFINITY))),
        ("costEstimate.awsSpotUsdPerHour", |p| {
            p.cost_estimate.aws_spot_usd_per_hour = -1.0;
        }),
        ("costEstimate.vcpu", |p| p.cost_estimate.vcpu = 0.0),
        ("costEstimate.memoryGb", |p| p.cost_estimate.memory_gb = 0.0),
        ("costEstimate.hours", |p| p.cost_estimate.hours = Some(0.0)),
        ("durations.soak", |p| p.durations.soak = Duration::ZERO),
        ("durations.steadyStateTimeout", |p| {
            p.durations.steady_state_timeout = Duration::ZERO;
        }),
        ("faults[0]", |p| p.faults = vec![Fault { at: None, ..fault() }]),
        ("faults[0].every", |p| p.faults = vec![Fault { every: Some(Duration::from_secs(10)), ..fault() }]),
        ("faults[0].at", |p| p.faults = vec![Fault { at: Some(Duration::from_secs(120)), ..fault() }]),
        ("faults[0].at", |p| {
            p.faults = vec![Fault {
                at: Some(Duration::from_secs(110)),
                action: FaultAction::Stop,
                hold: Some(Duration::from_secs(11)),
                ..fault()
            }];
        }),
        ("faults[0].every", |p| p.faults = vec![Fault { at: None, every: Some(Duration::ZERO), ..fault() }]),
        ("faults[0].every", |p| {
            p.faults = vec![Fault { at: None, every: Some(Duration::from_secs(121)), ..fault() }];
        }),
        ("faults[0].target", |p| p.faults = vec![Fault { target: FaultTarget::PodShim, ..fault() }]),
        ("faults[0].target", |p| {
            p.harness.scheduler = Scheduler::PodShim;
            p.faults = vec![Fault { target: FaultTarget::NodeCreator, ..fault() }];
        }),
        ("faults[0].for", |p| p.faults = vec![Fault { action: FaultAction::Stop, ..fault() }]),
        ("faults[0].for", |p| {
            p.faults = vec![Fault { action: FaultAction::Stop, hold: Some(Duration::ZERO), ..fault() }];
        }),
        ("faults[0].for", |p| p.faults = vec![Fault { hold: Some(Duration::from_secs(5)), ..fault() }]),
        ("faults[0].for", |p| {
            p.faults = vec![Fault {
                at: None,
                every: Some(Duration::from_secs(10)),
                action: FaultAction::Stop,
                hold: Some(Duration::from_secs(10)),
                ..fault()
            }];
        }),
        ("faults[1].clusters", |p| p.faults = vec![fault(), Fault { clusters: Some(vec![]), ..fault() }]),
        ("faults[0].clusters[1]", |p| p.faults = vec![Fault { clusters: Some(vec![0, 2]), ..fault() }]),
        ("faults[0].clusters[1]", |p| p.faults = vec![Fault { clusters: Some(vec![1, 1]), ..fault() }]),
    ];
    assert!(minimal().validate().is_ok());
    for (field, breaker) in cases {
        let mut p = minimal();
        breaker(&mut p);
        let violation = p.validate().expect_err(field);
        assert_eq!(violation.field, *field, "{violation}");
        assert!(!violation.expected.is_empty() && !violation.found.is_empty());
        assert!(!violation.to_string().contains('\n'), "{violation}");
    }
}

/// A valid fault for [`minimal`] (2 clusters, 2 min soak).
fn fault() -> Fault {
    Fault {
        at: Some(Duration::from_secs(30)),
        every: None,
        target: FaultTarget::Sut,
        action: FaultAction::Kill,
        hold: None,
        clusters: None,
    }
}

#[test]
fn faults_parse_and_round_trip() {
    let text = format!(
        "{MINIMAL}faults:\n  - {{at: 30s, target: sut, action: kill}}\n  - {{every: 1m, target: kube-apiserver, action: stop, for: 10s, clusters: [1]}}\n  - {{at: 0s, target: kine, action: restart}}\n"
    );
    let p = parse_str(&text, Path::new("t.yaml")).unwrap();
    assert_eq!(p.faults.len(), 3);
    assert_eq!(p.faults[0], fault());
    let f = &p.faults[1];
    assert_eq!(
        (f.every, f.target, f.action),
        (Some(Duration::from_secs(60)), FaultTarget::KubeApiserver, FaultAction::Stop)
    );
    assert_eq!((f.hold, f.clusters.clone()), (Some(Duration::from_secs(10)), Some(vec![1])));
    assert!(f.hits(1) && !f.hits(0) && p.faults[0].hits(0));
    assert_eq!(p.faults[2].at, Some(Duration::ZERO));
    let again = serde_yaml_ng::to_string(&p).unwrap();
    assert!(again.contains("for: 10s"), "{again}");
    assert_eq!(parse_str(&again, Path::new("t.yaml")).unwrap(), p);
    for t in FaultTarget::ALL {
        assert_eq!(FaultTarget::parse(t.as_str()), Some(t));
    }
    for a in FaultAction::ALL {
        assert_eq!(FaultAction::parse(a.as_str()), Some(a));
    }
}

#[test]
fn malformed_faults_name_their_field() {
    let cases = [
        ("- {at: 30s, target: etcd, action: kill}", "faults[0].target", "unknown variant `etcd`"),
        ("- {at: 30s, target: sut, action: nuke}", "faults[0].action", "unknown variant `nuke`"),
        ("- {at: soon, target: sut, action: kill}", "faults[0].at", "expected a duration such as"),
        ("- {at: 30s, target: sut, action: kill, when: 1}", "faults[0].when", "unknown field `when`"),
        ("- {at: 30s, action: kill}", "faults[0].target", "required field missing"),
        (
            "- {at: 30s, target: sut, action: kill, clusters: [-1]}",
            "faults[0].clusters[0]",
            "expected a non-negative integer",
        ),
        ("- {target: sut, action: kill}", "faults[0]", "expected exactly one of `at`"),
        ("- {at: 3m, target: sut, action: kill}", "faults[0].at", "expected an offset within the soak"),
        ("- {at: 1m, target: sut, action: stop}", "faults[0].for", "action: stop needs it"),
    ];
    for (entry, field, needle) in cases {
        let err = parse_err(&format!("{MINIMAL}faults:\n  {entry}\n"));
        assert_eq!(err.field(), Some(field), "{err}");
        let shown = err.to_string();
        assert!(shown.starts_with(&format!("profiles/t.yaml: {field}: ")), "{shown}");
        assert!(shown.contains(needle), "{shown}");
    }
}

fn set_steady(p: &mut Profile, f: impl FnOnce(&mut SteadyPhase)) {
    match &mut p.load_profile.phases[1] {
        Phase::Steady(s) => f(s),
        other => panic!("phase 1 is {other:?}"),
    }
}

#[test]
fn zero_churn_and_zero_provisioning_delay_are_fine() {
    let mut p = minimal();
    set_steady(&mut p, |s| s.churn_percent = 0.0);
    p.sut = Sut::Reference(ReferenceSut { provisioning_delay: Duration::ZERO, ..ReferenceSut::default() });
    p.slos = Some(vec![]);
    p.cost_estimate.aws_spot_usd_per_hour = 0.0;
    assert_eq!(p.validate(), Ok(()));
}

#[test]
fn invalid_error_is_one_line_with_file_field_and_expectation() {
    let text = MINIMAL.replace("objectsPerCluster: 250", "objectsPerCluster: 0");
    let err = parse_err(&text);
    assert_eq!(err.to_string(), "profiles/t.yaml: loadProfile.objectsPerCluster: expected a positive integer, found 0");
    assert_eq!(err.field(), Some("loadProfile.objectsPerCluster"));
    assert_eq!(err.path(), Path::new("profiles/t.yaml"));
}

#[test]
fn type_error_names_the_field_path() {
    let text = MINIMAL.replace("churnPercent: 10", "churnPercent: lots");
    let err = parse_err(&text);
    assert!(matches!(err, ProfileError::Parse { .. }), "{err:?}");
    assert_eq!(err.field(), Some("loadProfile.phases[1].steady.churnPercent"));
    let shown = err.to_string();
    assert!(shown.starts_with("profiles/t.yaml: loadProfile.phases[1].steady.churnPercent: "), "{shown}");
    assert!(shown.contains("expected a number"), "{shown}");
    assert!(!shown.contains('\n'));
}

#[test]
fn parse_errors_name_their_field() {
    let cases = [
        (
            MINIMAL.replace("kwok: {clusterCount: 2}", "kwok: {clusterCount: 2, clusters: 3}"),
            "kwok.clusters",
            "unknown field `clusters`",
        ),
        (MINIMAL.replace("- burst:", "- blast:"), "loadProfile.phases[2].blast", "unknown variant `blast`"),
        (
            MINIMAL.replace("duration: 30s", "duration: 30 parsecs"),
            "loadProfile.phases[1].steady.duration",
            "expected a duration such as",
        ),
        (
            MINIMAL.replace("duration: 30s", "duration: 30"),
            "loadProfile.phases[1].steady.duration",
            "expected a duration such as",
        ),
        (MINIMAL.replace("kwok: {clusterCount: 2}\n", ""), "kwok", "required field missing"),
        (
            MINIMAL.replace("    - ramp: {rate: 50}\n", "    - ramp: {}\n"),
            "loadProfile.phases[0].ramp.rate",
            "required field missing",
        ),
        (
            format!("{MINIMAL}harness: {{scheduler: kube-shim}}\n"),
            "harness.scheduler",
            "unknown variant `kube-shim`, expected `kube-scheduler` or `pod-shim`",
        ),
        (
            format!("{MINIMAL}harness: {{controlPlane: slim}}\n"),
            "harness.controlPlane",
            "unknown variant `slim`, expected `full` or `lean`",
        ),
        (
            format!("{MINIMAL}sut: {{reference: {{}}, command: [x]}}\n"),
            "sut",
            "expected either `reference` or your own controller's fields",
        ),
        (format!("{MINIMAL}sut: {{command: [x], colour: red}}\n"), "sut.colour", "unknown field `colour`"),
        (
            format!("{MINIMAL}sut: {{command: [x], metrics: {{port: \"${{kubeconfig}}\"}}}}\n"),
            "sut.metrics.port",
            "expected a port number in 1..=65535",
        ),
        (format!("{MINIMAL}sut: {{command: [x], manifests: [no-such-dir]}}\n"), "sut.manifests[0]", "no-such-dir"),
        (format!("{MINIMAL}sut: {{command: [./no-such-ctl]}}\n"), "sut.command[0]", "no-such-ctl"),
        (format!("{MINIMAL}harness: {{nodes: karpenter}}\n"), "harness.nodes", "expected `node-creator` or `sut`"),
        (
            MINIMAL.replace("kwok: {clusterCount: 2}", "kwok: {clusterCount: 2, mode: kubelet}"),
            "kwok.mode",
            "unknown variant `kubelet`, expected `fast` or `faithful`",
        ),
        ("name: t\nkwok: {clusterCount: 2\n".to_owned(), "kwok", "did not find expected ',' or '}' at line 3 column 1"),
        (
            format!("{MINIMAL}sut: {{command: [x, --k=${{kubeconfig}}]}}\n"),
            "sut.command",
            "quote a value holding ${...} inside [...] or {...}",
        ),
        ("[1, 2]\n".to_owned(), "(document)", "invalid type: sequence, expected struct Profile"),
    ];
    for (text, field, needle) in cases {
        let err = parse_err(&text);
        assert_eq!(err.field(), Some(field), "{err}");
        let shown = err.to_string();
        assert!(shown.contains(needle), "{shown}");
        assert!(shown.starts_with(&format!("profiles/t.yaml: {field}: ")), "{shown}");
        assert!(!shown.contains('\n'), "{shown}");
    }
}

#[test]
fn quantities_accept_bare_numbers() {
    let text = MINIMAL
        .replace("  objectsPerCluster: 250\n", "  objectsPerCluster: 250\n  pod: {cpu: 1, memory: 1073741824}\n");
    let p = parse_str(&text, Path::new("t.yaml")).unwrap();
    assert_eq!(p.load_profile.pod.cpu, "1");
    assert_eq!(p.load_profile.pod.memory, "1073741824");
}

#[test]
fn custom_sut_and_explicit_reference() {
    let text = format!("{MINIMAL}sut:\n  command: [ctl, --v=2]\n");
    let p = parse_str(&text, Path::new("t.yaml")).unwrap();
    assert_eq!(p.sut, external(&["ctl", "--v=2"]));
    assert_eq!(p.slos(), default_external_slos(), "an external SUT is judged by the harness's KPIs");
    let text = format!("{MINIMAL}sut:\n  reference: {{provisioningDelay: 1m}}\n");
    let p = parse_str(&text, Path::new("t.yaml")).unwrap();
    assert_eq!(
        p.sut,
        Sut::Reference(ReferenceSut { provisioning_delay: Duration::from_secs(60), ..ReferenceSut::default() })
    );
    let text = format!("{MINIMAL}sut: {{}}\n");
    assert_eq!(parse_str(&text, Path::new("t.yaml")).unwrap().sut, Sut::default());
}

#[test]
fn name_must_match_file_stem() {
    let err = parse_str(MINIMAL, Path::new("profiles/other.yaml")).unwrap_err();
    assert_eq!(err.field(), Some("name"));
    assert_eq!(
        err.to_string(),
        "profiles/other.yaml: name: expected the file name without its extension (\"other\"), found \"t\""
    );
    // Not from a profile file (e.g. stdin): no file-name rule.
    assert!(parse_str(MINIMAL, Path::new("<stdin>")).is_ok());
}

#[test]
fn missing_template_file_is_reported() {
    let text = MINIMAL.replace(
        "  objectsPerCluster: 250\n",
        "  objectsPerCluster: 250\n  kind: manifest\n  template: no-such-template.yaml\n",
    );
    let err = parse_str(&text, Path::new("/nonexistent-dir/t.yaml")).unwrap_err();
    assert_eq!(err.field(), Some("loadProfile.template"), "{err}");
    assert!(err.to_string().contains("no-such-template.yaml"), "{err}");
}

fn external(command: &[&str]) -> Sut {
    Sut::External(ExternalSut { command: command.iter().map(|s| s.to_string()).collect(), ..ExternalSut::default() })
}

fn with_slo(edit: impl FnOnce(&mut Vec<Slo>)) -> Vec<Slo> {
    let mut slos = default_slos();
    edit(&mut slos);
    slos
}

#[test]
fn an_external_sut_resolves_its_program_and_manifests_against_the_profile() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("bin")).unwrap();
    std::fs::write(dir.path().join("bin/ctl"), "#!/bin/sh\n").unwrap();
    std::fs::create_dir_all(dir.path().join("m")).unwrap();
    std::fs::write(dir.path().join("m/ns.yaml"), "apiVersion: v1\nkind: Namespace\nmetadata: {name: ctl}\n").unwrap();
    let text = format!(
        "{MINIMAL}harness: {{nodes: sut}}\nsut:\n  command: [./bin/ctl, \"--port=${{healthPort}}\"]\n  manifests: [m]\n"
    );
    let origin = dir.path().join("t.yaml");
    let p = parse_str(&text, &origin).unwrap();
    let sut = p.sut.external().unwrap();
    assert_eq!(sut.command[0], dir.path().join("./bin/ctl").display().to_string());
    assert_eq!(sut.command[1], "--port=${healthPort}");
    assert_eq!(sut.manifests, [dir.path().join("m")]);
    // A malformed manifest is refused with its file and document.
    std::fs::write(dir.path().join("m/bad.yaml"), "apiVersion: v1\nkind: ConfigMap\n").unwrap();
    let err = parse_str(&text, &origin).unwrap_err();
    assert_eq!(err.field(), Some("sut.manifests[0]"), "{err}");
    assert!(err.to_string().contains("bad.yaml document 1"), "{err}");
}

fn slo_error(query: &str) -> Result<(), String> {
    let slo = Slo { name: "myP99".into(), query: query.into(), threshold: 1.0, comparison: Comparison::Below };
    validate_slos(&[slo]).map_err(|v| v.to_string())
}

#[test]
fn slo_queries_are_parsed_as_promql() {
    // `$window` stands for a duration, wherever a range goes.
    for ok in [
        "histogram_quantile(0.99, sum(rate(x_bucket[$window])) by (le))",
        "sum(increase(x_total{job=~\"a|b\", le!=\"+Inf\"}[$window])) / sum(max_over_time(y[$window:1m]))",
        "1",
    ] {
        assert_eq!(slo_error(ok), Ok(()), "{ok}");
    }
    let cases = [
        ("histogram_quantile(0.99, sum(rate(x[$window])) by (le)", "unclosed left parenthesis"),
        ("histogram_quantil(0.99, sum(rate(x[$window])) by (le))", "unknown function with name 'histogram_quantil'"),
        ("rate(x{job~\"a\"}[$window])", "unexpected character inside braces: '~'"),
        ("rate(x{job=\"a}[$window])", "unterminated quoted string"),
        ("rate(x{job=~\"(\"}[$window])", "illegal regex"),
        ("rate(x)", "expected type matrix in call to function 'rate', got vector"),
        ("rate(x[$windw])", "unexpected character inside brackets: '$'"),
        ("sum(x) +", "invalid promql query"),
        ("x[$window]", "it evaluates to a matrix"),
    ];
    for (query, message) in cases {
        let err = slo_error(query).expect_err(query);
        let expected = format!("slos[0].query: expected a PromQL expression (SLO \"myP99\"), found {query:?}: ");
        assert!(err.starts_with(&expected), "{err}");
        assert!(err.contains(message), "{err}");
        assert!(!err.contains('\n'), "{err}");
    }
}

#[test]
fn an_unparsable_slo_names_file_field_and_slo_in_one_line() {
    let text = format!(
        "{MINIMAL}slos:\n  - {{name: myP99, threshold: 1, query: 'histogram_quantile(0.99,\n      sum(rate(x[$window])) by (le)'}}\n"
    );
    let err = parse_err(&text);
    assert_eq!(err.field(), Some("slos[0].query"));
    assert_eq!(
        err.to_string(),
        "profiles/t.yaml: slos[0].query: expected a PromQL expression (SLO \"myP99\"), found \"histogram_quantile(0.99, sum(rate(x[$window])) by (le)\": unclosed left parenthesis"
    );
}

#[test]
fn slo_metrics_name_every_selector() {
    let mut p = minimal();
    p.slos = Some(vec![Slo {
        query: "histogram_quantile(0.99, sum(rate(a_bucket[$window])) by (le)) + max({__name__=~\"b_.+\"}) / c_total"
            .into(),
        ..p.slos()[0].clone()
    }]);
    assert_eq!(p.slo_metrics(), ["a_bucket", "b_.+", "c_total"]);
    // The default SLOs read the load-driver's and the reference SUT's histograms.
    let defaults = minimal().slo_metrics();
    assert!(defaults.iter().all(|m| m.starts_with("scaletest_")), "{defaults:?}");
}

#[test]
fn kwok_mode_faithful_is_a_profile_choice() {
    let p = parse_str(
        &MINIMAL.replace("kwok: {clusterCount: 2}", "kwok: {clusterCount: 2, mode: faithful}"),
        Path::new("profiles/t.yaml"),
    )
    .unwrap();
    assert_eq!(p.kwok.mode, KwokMode::Faithful);
    assert_eq!(p.kwok.mode.to_string(), "faithful");
}

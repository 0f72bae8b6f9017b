//! Every shipped profile loads and validates; broken profiles are reported with the
//! file and the field path.

use std::path::{Path, PathBuf};
use std::time::Duration;

use scaletest_core::profile::{self, ObjectKind, Phase, Profile, ProfileError, Scheduler, Sut, default_slos};

fn profiles_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../profiles")
}

fn shipped(name: &str) -> Profile {
    let path = profiles_dir().join(format!("{name}.yaml"));
    profile::load(&path).unwrap_or_else(|e| panic!("{e}"))
}

/// The seed's profiles plus `smoke`.
const SHIPPED: [&str; 10] = [
    "cloud-5m",
    "dev-500",
    "dev-5k",
    "devpod-5k",
    "failover-soak",
    "homelab-500k",
    "local-50k",
    "scaleway-50k",
    "smoke",
    "thundering-herd",
];

#[test]
fn every_shipped_profile_loads_and_validates() {
    let loaded = profile::load_dir(&profiles_dir()).unwrap_or_else(|e| panic!("{e}"));
    let names: Vec<&str> = loaded.iter().map(|(_, p)| p.name.as_str()).collect();
    for name in SHIPPED {
        assert!(names.contains(&name), "profiles/{name}.yaml is missing: {names:?}");
    }
    for (path, p) in &loaded {
        // validate() also parses every effective SLO query as PromQL (`$window` included).
        assert_eq!(p.validate(), Ok(()), "{}", path.display());
        assert!(!p.slos().is_empty(), "{}: judged by at least one SLO", path.display());
        assert_eq!(Some(p.name.as_str()), path.file_stem().and_then(|s| s.to_str()));
        // Nothing ships on the legacy binder; the comments say how to switch.
        assert_eq!(p.harness.scheduler, Scheduler::KubeScheduler, "{}", path.display());
        assert_eq!(p.load_profile.kind, ObjectKind::Pods, "{}", path.display());
        let text = std::fs::read_to_string(path).unwrap();
        assert!(
            text.lines().take(2).all(|l| l.starts_with("# ")),
            "{} must open with a comment saying what it is for and where it runs",
            path.display()
        );
        // A user-brought controller that makes its own Nodes has no legacy path.
        if matches!(p.sut, Sut::Reference(_)) {
            assert!(text.contains("pod-shim"), "{} must say how to switch", path.display());
        }
    }
}

#[test]
fn the_karpenter_profiles_bring_their_own_controller() {
    for name in ["karpenter", "karpenter-5k"] {
        let p = shipped(name);
        let sut = p.sut.external().unwrap_or_else(|| panic!("{name} runs Karpenter"));
        assert_eq!(p.harness.nodes, scaletest_core::profile::NodeSource::Sut, "{name}");
        assert_eq!(sut.command, ["karpenter-kwok"], "{name}");
        let objects = scaletest_core::manifests::read_all(&sut.manifests).unwrap();
        let kinds: Vec<&str> = objects.iter().map(|m| m.kind.as_str()).collect();
        assert_eq!(&kinds[..4], ["CustomResourceDefinition"; 4], "{name}: CRDs first");
        assert!(kinds.contains(&"NodePool") && kinds.contains(&"KWOKNodeClass"), "{name}: {kinds:?}");
        let slos: Vec<String> = p.slos().into_iter().map(|s| s.query).collect();
        assert!(slos.iter().any(|q| q.contains("karpenter_")), "{name}: one SLO over Karpenter's own metrics");
    }
}

#[test]
fn shipped_profiles_use_the_default_slos() {
    for name in SHIPPED {
        assert_eq!(shipped(name).slos(), default_slos(), "{name}");
    }
}

#[test]
fn shipped_scales_match_the_seed_table() {
    let expected: [(&str, u32, u64); 9] = [
        ("dev-500", 1, 500),
        ("dev-5k", 5, 5_000),
        ("devpod-5k", 5, 5_000),
        ("local-50k", 50, 50_000),
        ("homelab-500k", 500, 500_000),
        ("cloud-5m", 5_000, 5_000_000),
        ("failover-soak", 50, 50_000),
        ("scaleway-50k", 50, 50_000),
        ("smoke", 1, 200),
    ];
    for (name, clusters, total) in expected {
        let p = shipped(name);
        assert_eq!(p.kwok.cluster_count, clusters, "{name}");
        assert_eq!(p.total_objects(), total, "{name}");
    }
}

#[test]
fn smoke_is_small() {
    let p = shipped("smoke");
    assert_eq!(p.kwok.cluster_count, 1);
    assert_eq!(p.load_profile.objects_per_cluster, 200);
    assert_eq!(p.harness.density, 100);
    assert_eq!(p.nodes_per_cluster(), 2);
    assert_eq!(p.durations.soak, Duration::from_secs(30));
    match p.load_profile.phases.as_slice() {
        [Phase::Ramp(ramp), Phase::Steady(steady)] => {
            assert_eq!(ramp.rate, 50.0);
            assert_eq!(steady.duration, Duration::from_secs(30));
            assert_eq!(steady.churn_percent, 10.0);
            assert_eq!(steady.churn_interval, Duration::from_secs(10));
        }
        other => panic!("smoke phases: {other:?}"),
    }
}

#[test]
fn thundering_herd_bursts_5k_per_cluster() {
    let p = shipped("thundering-herd");
    assert_eq!(p.kwok.cluster_count, 100);
    let burst: u64 = p
        .load_profile
        .phases
        .iter()
        .filter_map(|phase| match phase {
            Phase::Burst(b) => Some(b.count),
            _ => None,
        })
        .sum();
    assert_eq!(burst, 5_000);
    assert_eq!(u64::from(p.kwok.cluster_count) * burst, 500_000);
}

#[test]
fn failover_soak_is_long_and_churns() {
    let p = shipped("failover-soak");
    let steady = p.load_profile.phases.iter().find_map(|phase| match phase {
        Phase::Steady(s) => Some(s),
        _ => None,
    });
    let steady = steady.expect("a steady phase");
    assert!(steady.duration >= Duration::from_secs(3600));
    assert!(steady.churn_percent > 0.0);
    // A real failover soak: the SUT, the apiserver and its storage are each hit.
    let targets: Vec<&str> = p.faults.iter().map(|f| f.target.as_str()).collect();
    for t in ["sut", "kube-apiserver", "kine"] {
        assert!(targets.contains(&t), "failover-soak never hits {t}: {targets:?}");
    }
}

#[test]
fn cost_estimates_follow_the_seed() {
    let hour = Duration::from_secs(3600);
    // The footprint rule's memory (crates/scaletest-core/src/footprint.rs) on m-class spot,
    // not the seed's $35-40 quote, which assumed ~50 MB per simulated cluster.
    let cloud = shipped("cloud-5m").estimated_cost_usd(hour);
    assert!((300.0..=350.0).contains(&cloud), "cloud-5m for 60 m: ${cloud:.2}");

    let scaleway = shipped("scaleway-50k");
    assert_eq!(scaleway.cost_estimate.vcpu, 16.0);
    assert_eq!(scaleway.cost_estimate.memory_gb, 64.0);

    // The local profiles stay well below the runner's $5 prompt threshold per run.
    for name in ["smoke", "dev-500", "dev-5k", "devpod-5k"] {
        let p = shipped(name);
        let usd = p.estimated_cost_usd(p.estimate_duration());
        assert!(usd < 5.0, "{name}: ${usd:.2}");
    }
}

// ---- malformed profiles ------------------------------------------------------------

/// A scratch directory for profile files, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(test: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("scaletest-profiles-{}-{test}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    fn write(&self, file: &str, text: &str) -> PathBuf {
        let path = self.0.join(file);
        std::fs::write(&path, text).unwrap();
        path
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The smoke profile renamed to `bad`, with one edit.
fn smoke_with(from: &str, to: &str) -> String {
    let text = std::fs::read_to_string(profiles_dir().join("smoke.yaml")).unwrap().replace("name: smoke", "name: bad");
    assert!(text.contains(from), "smoke.yaml no longer contains {from:?}");
    text.replacen(from, to, 1)
}

fn load_err(scratch: &Scratch, text: &str) -> ProfileError {
    let path = scratch.write("bad.yaml", text);
    let err = profile::load(&path).expect_err("profile must be rejected");
    let shown = err.to_string();
    assert!(shown.starts_with(&format!("{}: ", path.display())), "error must name the file: {shown}");
    assert!(!shown.contains('\n'), "error must be one line: {shown}");
    err
}

#[test]
fn malformed_profiles_name_file_and_field() {
    let scratch = Scratch::new("malformed");
    let cases = [
        // wrong type
        (
            smoke_with("churnPercent: 10", "churnPercent: lots"),
            "loadProfile.phases[1].steady.churnPercent",
            "invalid type: string \"lots\", expected a number",
        ),
        (smoke_with("clusterCount: 1", "clusterCount: one"), "kwok.clusterCount", "expected a non-negative integer"),
        // unknown field
        (smoke_with("  density: 100", "  densty: 100"), "harness.densty", "unknown field `densty`"),
        // bad quantity
        (smoke_with("cpu: 100m", "cpu: 100 millicores"), "loadProfile.pod.cpu", "expected a positive CPU quantity"),
        (
            smoke_with("memory: 128Mi", "memory: 128MB!"),
            "loadProfile.pod.memory",
            "expected a positive memory quantity",
        ),
        // bad duration
        (smoke_with("soak: 30s", "soak: half a minute"), "durations.soak", "expected a duration such as"),
        (
            smoke_with("churnInterval: 10s", "churnInterval: 0s"),
            "loadProfile.phases[1].steady.churnInterval",
            "expected a positive duration",
        ),
        // missing template
        (smoke_with("kind: pods", "kind: manifest"), "loadProfile.template", "kind: manifest needs one"),
        (
            smoke_with("kind: pods", "kind: manifest\n  template: templates/nope.yaml"),
            "loadProfile.template",
            "templates/nope.yaml",
        ),
        // out of range
        (
            smoke_with("objectsPerCluster: 200", "objectsPerCluster: 0"),
            "loadProfile.objectsPerCluster",
            "expected a positive integer, found 0",
        ),
        // name must match the file
        (smoke_with("name: bad", "name: smoke"), "name", "expected the file name without its extension (\"bad\")"),
    ];
    for (text, field, needle) in cases {
        let err = load_err(&scratch, &text);
        assert_eq!(err.field(), Some(field), "{err}");
        let shown = err.to_string();
        assert!(shown.contains(&format!(": {field}: ")), "{shown}");
        assert!(shown.contains(needle), "{shown}");
    }
}

#[test]
fn manifest_template_resolves_against_the_profile_directory() {
    let scratch = Scratch::new("template");
    std::fs::create_dir_all(scratch.0.join("templates")).unwrap();
    scratch.write("templates/deployment.yaml", "kind: Deployment\n");
    let path =
        scratch.write("bad.yaml", &smoke_with("kind: pods", "kind: manifest\n  template: templates/deployment.yaml"));
    let p = profile::load(&path).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(p.load_profile.template.as_deref(), Some(scratch.0.join("templates/deployment.yaml").as_path()));
}

#[test]
fn missing_file_is_a_read_error() {
    let path = profiles_dir().join("no-such-profile.yaml");
    let err = profile::load(&path).unwrap_err();
    assert!(matches!(err, ProfileError::Read { .. }), "{err:?}");
    assert!(err.to_string().starts_with(&format!("{}: ", path.display())));
}

#[test]
fn load_dir_reports_the_broken_file() {
    let scratch = Scratch::new("dir");
    scratch.write("ok.yaml", &smoke_with("name: bad", "name: ok"));
    scratch.write("bad.yaml", &smoke_with("qps: 50", "qps: -1"));
    scratch.write("notes.txt", "not a profile");
    let err = profile::load_dir(&scratch.0).unwrap_err();
    assert_eq!(err.path(), scratch.0.join("bad.yaml"));
    assert_eq!(err.field(), Some("loadProfile.qps"));

    std::fs::remove_file(scratch.0.join("bad.yaml")).unwrap();
    let loaded = profile::load_dir(&scratch.0).unwrap();
    assert_eq!(loaded.len(), 1);
    assert_eq!(loaded[0].1.name, "ok");
}

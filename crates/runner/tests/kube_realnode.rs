//! `--target kube` for real, as a user runs it: `scripts/kube-e2e.sh` builds the images
//! daemonlessly, brings up the real single-node Kubernetes of `scripts/realnode.sh`
//! (kubelet + containerd) with them imported, runs smoke with `--target kube` and
//! tears the node down. The run must pass with measured values, held invariants and a
//! snapshot that replays, and the machine must be as it was before: no process, mount,
//! network namespace, link, iptables rule, CNI or kubelet state left.
//!
//! A machine that cannot run containers skips this test with one line naming what it
//! lacks (`scripts/realnode.sh preflight`).

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

mod common;

use common::{leftovers, repo, smoke_lifted, summary};

/// The machine-wide lock every user of the real node holds from up to down.
const REALNODE_LOCK: &str = "/tmp/scaletest-realnode.lock";
/// Another user's node may be up (one run of kube-e2e.sh takes ~10 min): a bound, not a
/// pass criterion.
const LOCK_WAIT: Duration = Duration::from_secs(3600);
const LOCK_POLL: Duration = Duration::from_secs(5);
const REALNODE_DIR: &str = "/var/lib/scaletest-realnode";
/// Paths the node's programs create whatever their configured roots (realnode.sh's
/// FIXED_PATHS but buildah's /var/lib/containers, which any image build beside this
/// test makes and removes, lock or not), and the sysctls the kubelet sets.
const FIXED_PATHS: [&str; 5] =
    [REALNODE_DIR, "/var/lib/cni", "/var/log/containers", "/var/lib/kubelet", "/run/containerd"];
const SYSCTLS: [&str; 3] = ["kernel/panic", "kernel/panic_on_oops", "vm/overcommit_memory"];
const NODE_PROGRAMS: [&str; 5] = ["kubelet", "kube-proxy", "containerd", "containerd-shim-runc-v2", "pause"];

#[test]
fn smoke_on_a_real_node_passes_and_leaves_the_machine_as_it_was() {
    let preflight = Command::new(repo().join("scripts/realnode.sh")).arg("preflight").output().unwrap();
    if !preflight.status.success() {
        // Written past the test harness's capture: the one line a user should see.
        let why = String::from_utf8_lossy(&preflight.stderr);
        let why = why.lines().last().unwrap_or("scripts/realnode.sh preflight failed");
        let _ = writeln!(std::io::stderr(), "kube_realnode: skipped, this machine cannot run a real node: {why}");
        return;
    }
    // Held across up..down and the checks after: nobody else's node can come or go
    // while this test compares the machine before and after.
    let lock = std::fs::OpenOptions::new().create(true).append(true).open(REALNODE_LOCK).unwrap();
    let deadline = Instant::now() + LOCK_WAIT;
    if lock.try_lock().is_err() {
        let _ = writeln!(std::io::stderr(), "kube_realnode: waiting for {REALNODE_LOCK} (a real node is up)");
        while lock.try_lock().is_err() {
            assert!(Instant::now() < deadline, "{REALNODE_LOCK} still held after {LOCK_WAIT:?}: a real node is up");
            std::thread::sleep(LOCK_POLL);
        }
    }
    let before = machine_state();
    assert!(!Path::new(REALNODE_DIR).exists(), "{REALNODE_DIR} exists: a real node is up without holding the lock");

    let tmp = tempfile::tempdir().unwrap();
    let profile = smoke_lifted(tmp.path(), "smoke-kube");
    let out = tmp.path().join("out");
    let status = Command::new(repo().join("scripts/kube-e2e.sh"))
        .env("PROFILE", &profile)
        .env("OUTPUT", &out)
        .env("SCALETEST_RUNNER", env!("CARGO_BIN_EXE_scaletest-runner"))
        .env("TMPDIR", tmp.path())
        .env("NO_COLOR", "1")
        .current_dir(repo())
        .status()
        .unwrap();
    let after = machine_state();

    let s = summary(&out);
    assert_eq!(status.code(), Some(0), "kube-e2e.sh failed; summary: {s:#}");
    assert_eq!(s["passed"], true, "{s:#}");
    assert_eq!(s["target"]["kind"], "kube", "{:#}", s["target"]);
    assert_eq!(s["profile"], "smoke-kube");
    let m = &s["metrics"];
    assert_eq!(m["objectsActive"].as_f64(), Some(200.0), "{m:#}");
    let p99 = m["bindingLatencyP99Seconds"].as_f64().unwrap();
    assert!(p99 > 0.0, "{m:#}");
    // kube-apiserver's latency, scraped through its supervisor (/metrics/kube-apiserver): the
    // simulated control plane is judged on kube too.
    assert!(m["apiserverRequestP99Seconds"].as_f64().is_some_and(|v| v > 0.0), "{m:#}");
    let cp = &s["controlPlane"];
    assert!(cp["mutatingP99Seconds"].as_f64().is_some_and(|v| v > 0.0), "{cp:#}");
    assert!(cp["saturated"].is_boolean(), "{cp:#}");
    assert!(m["timeToCapacityP99Seconds"].as_f64().unwrap() > 0.0, "{m:#}");
    assert!(s["slos"].as_array().unwrap().iter().all(|x| x["value"].is_number()), "{:#}", s["slos"]);
    // One simulated-cluster Pod, its invariants checked through its port-forwards.
    let clusters = s["clusters"].as_array().unwrap();
    assert_eq!(clusters.len(), 1, "{clusters:#?}");
    let invariants = clusters[0]["invariants"].as_array().unwrap();
    assert!(!invariants.is_empty() && invariants.iter().all(|i| i["held"] == true), "{invariants:#?}");
    assert!(leftovers(tmp.path()).is_empty(), "{:#?}", leftovers(tmp.path()));

    // The TSDB copied out of the in-cluster Prometheus opens and holds the run's series.
    let value = common::replay_snapshot(tmp.path(), &out, "max_over_time(scaletest_load_driver_objects_active[1h])");
    assert_eq!(value, 200.0);

    let left: Vec<String> = after
        .iter()
        .flat_map(|(aspect, now)| {
            let was = before.get(aspect).cloned().unwrap_or_default();
            let added = now.difference(&was).map(move |x| format!("{aspect}: + {x}"));
            let gone = was.difference(now).map(move |x| format!("{aspect}: - {x}")).collect::<Vec<_>>();
            added.chain(gone).collect::<Vec<_>>()
        })
        .collect();
    assert!(left.is_empty(), "the machine changed across up..down:\n{}", left.join("\n"));
    drop(lock);
}

/// What a real node changes on the machine, by aspect: every item a node leaves
/// behind shows as a difference between before and after.
fn machine_state() -> BTreeMap<&'static str, BTreeSet<String>> {
    let mut state = BTreeMap::new();
    state.insert("network namespace", dir_names("/run/netns"));
    state.insert("link", dir_names("/sys/class/net"));
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    state.insert("mount", mountinfo.lines().filter_map(|l| l.split(' ').nth(4)).map(String::from).collect());
    // Rules and chains, without the packet counters that move on their own.
    let rules = Command::new("iptables-save").output().map(|o| String::from_utf8_lossy(&o.stdout).to_string());
    state.insert(
        "iptables",
        rules
            .unwrap_or_default()
            .lines()
            .filter(|l| !l.starts_with('#'))
            .map(|l| l.split(" [").next().unwrap_or(l).to_string())
            .collect(),
    );
    state.insert("path", FIXED_PATHS.iter().filter(|p| Path::new(p).exists()).map(|p| p.to_string()).collect());
    state.insert(
        "sysctl",
        SYSCTLS
            .iter()
            .map(|k| format!("{k}={}", std::fs::read_to_string(format!("/proc/sys/{k}")).unwrap_or_default().trim()))
            .collect(),
    );
    let cgroups = dir_names("/sys/fs/cgroup")
        .into_iter()
        .filter(|c| {
            ["kubepods", "kubepods.slice"].iter().any(|k| Path::new(&format!("/sys/fs/cgroup/{c}/{k}")).exists())
        })
        .collect();
    state.insert("kubepods cgroup", cgroups);
    state.insert("process", node_processes());
    state
}

fn dir_names(dir: &str) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .map(|d| d.flatten().map(|e| e.file_name().to_string_lossy().to_string()).collect())
        .unwrap_or_default()
}

/// Processes of a node: one of its programs, or anything under its directory.
fn node_processes() -> BTreeSet<String> {
    dir_names("/proc")
        .into_iter()
        .filter(|p| p.parse::<u32>().is_ok())
        .filter_map(|p| std::fs::read(format!("/proc/{p}/cmdline")).ok().map(|raw| (p, raw)))
        .map(|(p, raw)| (p, String::from_utf8_lossy(&raw).replace('\0', " ")))
        .filter(|(_, cmd)| {
            let program = cmd.split(' ').next().unwrap_or("").rsplit('/').next().unwrap_or("");
            NODE_PROGRAMS.contains(&program) || cmd.contains(REALNODE_DIR)
        })
        .map(|(p, cmd)| format!("{p} {cmd}"))
        .collect()
}

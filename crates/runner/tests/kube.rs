//! `--target kube`: one clear line for a missing or unreachable context, and
//! teardown (helm uninstall, nothing labelled with the run id left) when the
//! run fails — against a real simulated cluster standing in for "any
//! Kubernetes", with a kwok Node so the chart's Pods are (fake) scheduled.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use scaletest_cluster::launcher::{ClusterProcess, built_binary};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn runner(kubeconfig: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_scaletest-runner"))
        .args(args)
        .env("KUBECONFIG", kubeconfig)
        .env("NO_COLOR", "1")
        .current_dir(repo())
        .output()
        .unwrap()
}

fn refusal(out: &Output) -> String {
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    errors[0].to_string()
}

#[test]
fn a_missing_or_unreachable_context_is_refused_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let kc = dir.path().join("kubeconfig");
    std::fs::write(
        &kc,
        "apiVersion: v1\nkind: Config\nclusters:\n- name: dead\n  cluster: {server: 'https://127.0.0.1:1', insecure-skip-tls-verify: true}\n\
         users:\n- name: u\n  user: {token: x}\ncontexts:\n- name: dead\n  context: {cluster: dead, user: u}\ncurrent-context: dead\n",
    )
    .unwrap();
    let base = ["run", "--profile", "profiles/smoke.yaml", "--target", "kube", "--yes"];
    let line = refusal(&runner(&kc, &base));
    assert!(line.contains("needs --context"), "{line}");
    let line = refusal(&runner(&kc, &[&base[..], &["--context", "nope"]].concat()));
    assert!(line.contains("context \"nope\" is not in your kubeconfig"), "{line}");
    let line = refusal(&runner(&kc, &[&base[..], &["--context", "dead"]].concat()));
    assert!(line.contains("context \"dead\" is unreachable"), "{line}");
}

/// A user's controller runs from its image on the kube target: a profile giving only its
/// local command is refused before anything is installed, unless `--image sut=` names one.
#[test]
fn a_users_controller_without_an_image_is_refused_on_kube() {
    let dir = tempfile::tempdir().unwrap();
    let kc = dir.path().join("kubeconfig");
    std::fs::write(&kc, "apiVersion: v1\nkind: Config\nclusters: []\nusers: []\ncontexts: []\n").unwrap();
    let smoke = std::fs::read_to_string(repo().join("profiles/smoke.yaml")).unwrap();
    let profile = dir.path().join("smoke.yaml");
    let text = smoke.replace("  binderWorkers: 16             # pod-shim only\n", "  nodes: sut\n").replace(
        "sut:\n  reference:\n    provisioningDelay: 2s\n    acknowledgeConcurrency: 16\n    cycleInterval: 1s\n",
        "sut:\n  command: [sleep, \"3600\"]\n",
    );
    assert!(text.contains("command: [sleep"), "smoke.yaml changed: update this test");
    std::fs::write(&profile, text).unwrap();
    let p = profile.display().to_string();
    let base = ["run", "--profile", &p, "--target", "kube", "--yes"];
    let line = refusal(&runner(&kc, &base));
    assert!(line.contains("sut.image: the kube target runs your controller from its image"), "{line}");
    assert!(line.contains("gives only `command` (sleep 3600)"), "{line}");
    // Named on the command line, the image passes this check (and the next refusal is the context's).
    let line = refusal(&runner(&kc, &[&base[..], &["--image", "sut=registry.local/ctl:1"]].concat()));
    assert!(line.contains("needs --context"), "{line}");
}

#[test]
fn a_failed_kube_run_uninstalls_and_leaves_nothing_labelled() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let _in_runtime = rt.enter();
    let dir = tempfile::tempdir().unwrap();
    let mut cluster =
        ClusterProcess::spawn(&built_binary("scaletest-cluster"), "host", &dir.path().join("host"), &[]).unwrap();
    let endpoints = rt.block_on(cluster.wait_ready(Duration::from_secs(180))).unwrap();
    let kubectl =
        scaletest_cluster::binaries::find("kubectl", &scaletest_cluster::binaries::default_bin_dir()).unwrap();
    let node = "apiVersion: v1\nkind: Node\nmetadata:\n  name: host-node\n  annotations: {kwok.x-k8s.io/node: fake}\n\
                status:\n  allocatable: {cpu: '32', memory: 64Gi, pods: '110'}\n  capacity: {cpu: '32', memory: 64Gi, pods: '110'}\n";
    let node_file = dir.path().join("node.yaml");
    std::fs::write(&node_file, node).unwrap();
    let applied = Command::new(&kubectl)
        .arg("--kubeconfig")
        .arg(&endpoints.kubeconfig)
        .args(["apply", "-f"])
        .arg(&node_file)
        .output()
        .unwrap();
    assert!(applied.status.success(), "{}", String::from_utf8_lossy(&applied.stderr));

    // Steady state can never come (the Pods are kwok's fakes): the run fails
    // within the profile's timeout and must tear down.
    let text = std::fs::read_to_string(repo().join("profiles/smoke.yaml")).unwrap();
    let profile = dir.path().join("smoke-kube.yaml");
    std::fs::write(
        &profile,
        text.replace("name: smoke", "name: smoke-kube").replace("steadyStateTimeout: 5m", "steadyStateTimeout: 20s"),
    )
    .unwrap();
    let out_dir = dir.path().join("out");
    let out = runner(
        &endpoints.kubeconfig,
        &[
            "run",
            "--target",
            "kube",
            "--context",
            "scaletest",
            "--yes",
            "--profile",
            profile.to_str().unwrap(),
            "--output",
            out_dir.to_str().unwrap(),
        ],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("[install] helm install"), "{stdout}");
    assert!(stdout.contains("[teardown] helm uninstall"), "{stdout}");
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out_dir.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["passed"], false);
    assert_eq!(summary["target"]["kind"], "kube");
    let run_id = summary["runId"].as_str().unwrap();
    let left = Command::new(&kubectl)
        .arg("--kubeconfig")
        .arg(&endpoints.kubeconfig)
        .args([
            "get",
            "statefulsets,deployments,services,configmaps,serviceaccounts,roles,rolebindings,pods",
            "-A",
            "-o",
            "name",
            "-l",
        ])
        .arg(format!("scaletest-run={run_id}"))
        .output()
        .unwrap();
    assert!(left.status.success());
    assert_eq!(String::from_utf8_lossy(&left.stdout).trim(), "", "left behind after teardown");
    let _ = rt.block_on(cluster.stop(Duration::from_secs(60)));
}

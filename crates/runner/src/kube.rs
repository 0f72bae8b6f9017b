//! The kube target: the same phases as local, on any Kubernetes cluster, by
//! way of `charts/scaletest` (helm) and kubectl — both the pinned builds from
//! `make upstream`. Prometheus runs in the cluster; the runner reaches it
//! through `kubectl port-forward`.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// The tools and the context a kube run talks through.
#[derive(Clone, Debug)]
pub struct Kube {
    pub kubectl: PathBuf,
    pub helm: PathBuf,
    pub context: String,
}

#[derive(Debug, thiserror::Error)]
pub enum KubeError {
    #[error("--target kube needs --context: one of `kubectl config get-contexts`")]
    NoContext,
    #[error("context {context:?} is not in your kubeconfig (`kubectl config get-contexts` lists them)")]
    UnknownContext { context: String },
    #[error("context {context:?} is unreachable: {detail}")]
    Unreachable { context: String, detail: String },
    #[error("{what} failed: {detail}")]
    Command { what: String, detail: String },
}

fn first_line(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    text.lines().find(|l| !l.trim().is_empty()).unwrap_or("no output").trim().to_string()
}

impl Kube {
    /// Refuses, in one line, a missing or unreachable context.
    pub async fn connect(kubectl: PathBuf, helm: PathBuf, context: Option<&str>) -> Result<Self, KubeError> {
        let context = context.ok_or(KubeError::NoContext)?.to_string();
        let known =
            Command::new(&kubectl).args(["config", "get-contexts", "-o", "name"]).output().await.map_err(|e| {
                KubeError::Command { what: "kubectl config get-contexts".into(), detail: e.to_string() }
            })?;
        if !String::from_utf8_lossy(&known.stdout).lines().any(|l| l.trim() == context) {
            return Err(KubeError::UnknownContext { context });
        }
        let kube = Self { kubectl, helm, context };
        let probe = kube.kubectl(&["get", "--raw", "/readyz", "--request-timeout=5s"]).output().await;
        match probe {
            Ok(o) if o.status.success() => Ok(kube),
            Ok(o) => Err(KubeError::Unreachable { context: kube.context, detail: first_line(&o.stderr) }),
            Err(e) => Err(KubeError::Unreachable { context: kube.context, detail: e.to_string() }),
        }
    }

    pub fn kubectl(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.kubectl);
        c.arg("--context").arg(&self.context).args(args).stdin(Stdio::null());
        c
    }

    pub fn helm(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.helm);
        c.arg("--kube-context").arg(&self.context).args(args).stdin(Stdio::null());
        c
    }

    /// Runs a command to completion; its first stderr line on failure.
    pub async fn check(what: &str, mut cmd: Command) -> Result<String, KubeError> {
        let out = cmd.output().await.map_err(|e| KubeError::Command { what: what.into(), detail: e.to_string() })?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(KubeError::Command { what: what.into(), detail: first_line(&out.stderr) })
        }
    }

    /// `kubectl port-forward` to `target` (e.g. `svc/x`) on a free local port;
    /// returns the child (killed on drop) and `127.0.0.1:port`.
    pub async fn port_forward(&self, namespace: &str, target: &str, remote: u16) -> Result<(Child, String), KubeError> {
        let mut child = self
            .kubectl(&["-n", namespace, "port-forward", target, &format!(":{remote}"), "--address=127.0.0.1"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| KubeError::Command { what: "kubectl port-forward".into(), detail: e.to_string() })?;
        let stdout = child.stdout.take().expect("piped");
        let mut lines = BufReader::new(stdout).lines();
        // "Forwarding from 127.0.0.1:PORT -> REMOTE"
        let found = tokio::time::timeout(Duration::from_secs(30), async {
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(rest) = line.strip_prefix("Forwarding from 127.0.0.1:") {
                    return rest.split_whitespace().next().map(str::to_string);
                }
            }
            None
        })
        .await
        .ok()
        .flatten();
        match found {
            Some(port) => {
                // Keep draining so kubectl never blocks on a full pipe.
                tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
                Ok((child, format!("127.0.0.1:{port}")))
            }
            None => Err(KubeError::Command {
                what: format!("kubectl port-forward {target}"),
                detail: "no port within 30 s".into(),
            }),
        }
    }
}

/// The pinned helm/kubectl, as for the local target's binaries.
pub fn tools(bin_dir: Option<&Path>) -> Result<(PathBuf, PathBuf), scaletest_cluster::binaries::MissingBinary> {
    let dir = bin_dir.map(Path::to_path_buf).unwrap_or_else(scaletest_cluster::binaries::default_bin_dir);
    Ok((scaletest_cluster::binaries::find("kubectl", &dir)?, scaletest_cluster::binaries::find("helm", &dir)?))
}

impl Kube {
    /// Total allocatable CPU (vCPU) and memory (GB) of the target's Nodes (the budget's input).
    pub async fn allocatable(&self) -> Result<(f64, f64), KubeError> {
        let out = Self::check(
            "kubectl get nodes",
            self.kubectl(&[
                "get",
                "nodes",
                "-o",
                "jsonpath={range .items[*]}{.status.allocatable.cpu} {.status.allocatable.memory}{\"\\n\"}{end}",
            ]),
        )
        .await?;
        let (mut millis, mut bytes) = (0u64, 0u64);
        for line in out.lines() {
            let mut fields = line.split_whitespace();
            millis += fields.next().and_then(|q| scaletest_core::quantity::parse_cpu_millis(q).ok()).unwrap_or(0);
            bytes += fields.next().and_then(|q| scaletest_core::quantity::parse_memory_bytes(q).ok()).unwrap_or(0);
        }
        Ok((millis as f64 / 1000.0, bytes as f64 / 1e9))
    }
}

/// What the run's Prometheus keeps when it keeps only what the run reads: the runner's
/// own queries (summary, report, saturation, load gate) besides the SLOs' metrics.
const RUNNER_READS: &str = "scaletest_.+|up|kwok_node_count|apiserver_request_duration_seconds_bucket";
/// The components whose targets carry what the runner reads (the harness's own, and
/// kube-apiserver's request latency through the supervisor).
const HARNESS_COMPONENTS: &str = "{scaletest-cluster,load-driver,sut,node-creator,pod-shim,kube-apiserver}";
/// The labels of kube-apiserver's histogram the runner reads (crates/runner/src/saturation.rs
/// and report.rs sum over the rest): the supervisor adds up the others.
const APISERVER_SUM_BY: &str = "{verb,scope}";

/// `helm --set` values sizing the chart by the footprint rule (scaletest-core's
/// footprint.rs): every cluster's and Prometheus's requests/limits, and past one
/// Prometheus's series budget, only the series the run reads. The user's `--set` come
/// after these and win.
pub fn footprint_values(profile: &scaletest_core::profile::Profile) -> Vec<String> {
    use scaletest_core::footprint::{self, PrometheusScrape, Resources, Target};
    use scaletest_core::quantity::{format_cpu_millis, format_memory_bytes};
    let plan = footprint::plan(profile, Target::Kube);
    // A cluster and its controller get CPU requests, never CPU limits: a control plane's
    // work comes in bursts, and CFS quota throttles them. On the real node, 3 clusters x
    // 1K Pods at the rule's 480m limit: binding p99 117 s; without it 17.7 s, at the same
    // mean use (0.35 vCPU; results/README.md, the kube target). Memory: requested at the
    // measured mean, limited at the measured peak (footprint.rs).
    let resources = |key: &str, r: &Resources, cpu_limit: bool| {
        let mut v = vec![
            format!("{key}.requests.cpu={}", format_cpu_millis(r.cpu_request_millis)),
            format!("{key}.requests.memory={}", format_memory_bytes(r.memory_bytes)),
            format!("{key}.limits.memory={}", format_memory_bytes(r.memory_limit_bytes)),
        ];
        if cpu_limit {
            v.push(format!("{key}.limits.cpu={}", format_cpu_millis(r.cpu_limit_millis)));
        }
        v
    };
    let mut values = resources("cluster.resources", &plan.cluster, false);
    values.extend(resources("prometheus.resources", &plan.prometheus, true));
    if let Some(sut) = &plan.sut {
        values.extend(resources("sut.resources", sut, false));
    }
    if plan.scrape == PrometheusScrape::Read {
        let slo = profile.slo_metrics();
        let mut keep = vec![RUNNER_READS.to_string()];
        keep.extend(slo.iter().cloned());
        values.push(format!("prometheus.keepMetrics={}", keep.join("|")));
        values.push(format!("prometheus.kubeApiserver.sumBy={APISERVER_SUM_BY}"));
        // An SLO on another component's metric needs that component's targets too.
        if slo.iter().all(|m| m.starts_with("scaletest_")) {
            values.push(format!("prometheus.components={HARNESS_COMPONENTS}"));
        }
    }
    values
}

/// [`KubeRun::unready_pods`] over a `kubectl get pods -o json` list: a Pod that is not
/// Ready, with its phase and the first reason found (its scheduling condition's message,
/// a container waiting or terminated with a reason, or a readiness condition's).
fn unready(list: &serde_json::Value) -> Vec<String> {
    let text = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_string();
    let mut lines = Vec::new();
    for pod in list["items"].as_array().into_iter().flatten() {
        let status = &pod["status"];
        let conditions = status["conditions"].as_array().cloned().unwrap_or_default();
        let condition = |kind: &str| conditions.iter().find(|c| c["type"] == kind).cloned();
        let phase = text(&status["phase"]);
        // An evicted or finished Pod of a Deployment is replaced; it is not what waits.
        if phase == "Succeeded" || phase == "Failed" {
            continue;
        }
        if condition("Ready").is_some_and(|c| c["status"] == "True") {
            continue;
        }
        let scheduling = condition("PodScheduled").filter(|c| c["status"] == "False").map(|c| text(&c["message"]));
        let containers = ["initContainerStatuses", "containerStatuses"]
            .iter()
            .flat_map(|k| status[*k].as_array().cloned().unwrap_or_default())
            .find_map(|c| {
                let state = &c["state"];
                let (how, detail) = if state["waiting"].is_object() {
                    ("waiting", &state["waiting"])
                } else if state["terminated"].is_object() {
                    ("terminated", &state["terminated"])
                } else {
                    return None;
                };
                let reason = text(&detail["reason"]);
                (!reason.is_empty() && reason != "PodInitializing").then(|| {
                    let message = text(&detail["message"]);
                    let message = message.lines().next().unwrap_or_default();
                    format!(
                        "container {} {how}: {reason}{}",
                        text(&c["name"]),
                        if message.is_empty() { String::new() } else { format!(" ({message})") }
                    )
                })
            });
        let ready = condition("Ready").map(|c| text(&c["message"])).filter(|m| !m.is_empty());
        let why = scheduling.or(containers).or(ready).unwrap_or_else(|| "not Ready".into());
        lines.push(format!("{}: {phase}: {why}", text(&pod["metadata"]["name"])));
    }
    lines
}

/// One helm release of `charts/scaletest`, and how to reach its Prometheus.
pub struct KubeRun {
    pub kube: Kube,
    pub release: String,
    pub namespace: String,
    pub prometheus: Option<(Child, String)>,
    /// `helm --set-string` values naming the images (`--image`).
    pub image_values: Vec<String>,
    /// `helm --set` values the user gave (`--set`), after the runner's own.
    pub chart_values: Vec<String>,
    /// The install created the namespace (it did not exist): teardown deletes it.
    pub created_namespace: bool,
    /// Files mounted beside the profile by file name (`profileFiles`): a manifest
    /// profile's template, the SUT's manifests bundled into one file.
    pub files: Vec<PathBuf>,
}

/// The simulated-cluster Pods' fixed layout (the chart's `cluster.portBase`, which the
/// runner leaves at its default; offsets of crates/scaletest-cluster/src/ports.rs).
const CLUSTER_PORT_BASE: u16 = 6443;
const APISERVER_OFFSET: u16 = 0;
const LOAD_DRIVER_OFFSET: u16 = 9;
/// The chart's data dir in the cluster container (the supervisor's --data-dir).
const CLUSTER_DATA_DIR: &str = "/var/lib/scaletest";

/// One simulated-cluster Pod reached from here for the end-of-run checks: its
/// apiserver and load-driver forwarded to loopback, and a kubeconfig with the
/// cluster's own CA and admin certificate (copied out of the Pod).
pub struct ClusterAccess {
    pub pod: String,
    pub kubeconfig: PathBuf,
    pub load_driver: String,
    /// The port-forwards (killed on drop).
    _forwards: [Child; 2],
}

/// A kubeconfig for a simulated cluster's apiserver forwarded to `server_addr`
/// (`127.0.0.1:PORT`; its serving cert names 127.0.0.1), with the files in `dir`.
pub fn forwarded_kubeconfig(server_addr: &str, dir: &Path) -> String {
    // The files copied out of the Pod keep the names the supervisor gave them.
    scaletest_cluster::pki::kubeconfig(&scaletest_cluster::pki::Pki::at(dir), &format!("https://{server_addr}"))
}

/// The file name a file travels under beside the profile in the Pod (`profileFiles`).
pub fn mounted_name(file: &Path) -> PathBuf {
    PathBuf::from(file.file_name().unwrap_or(file.as_os_str()))
}

/// The SUT's manifests as one multi-document file in `dir` (`sut-manifests.yaml`), in
/// apply order: what travels into the Pod beside the profile.
pub fn bundle_manifests(paths: &[PathBuf], dir: &Path) -> Result<PathBuf, KubeError> {
    let fail = |detail: String| KubeError::Command { what: "bundling sut.manifests".into(), detail };
    let objects = scaletest_core::manifests::read_all(paths).map_err(|e| fail(e.to_string()))?;
    let docs: Result<Vec<String>, _> = objects.iter().map(|m| serde_yaml_ng::to_string(&m.object)).collect();
    let bundle = dir.join("sut-manifests.yaml");
    std::fs::write(&bundle, docs.map_err(|e| fail(e.to_string()))?.join("---\n")).map_err(|e| fail(e.to_string()))?;
    Ok(bundle)
}

/// `helm --set-file` for a `profileFiles` entry: dots in the file name escaped, as
/// helm reads an unescaped dot as a nested key.
fn profile_file_arg(template: &Path) -> String {
    let name = mounted_name(template).display().to_string().replace('.', "\\.");
    format!("profileFiles.{name}={}", template.display())
}

/// The chart, found from the working directory (a checkout) or next to the binaries.
fn chart_dir() -> PathBuf {
    let here = PathBuf::from("charts/scaletest");
    if here.is_dir() {
        return here;
    }
    let exe = std::env::current_exe().unwrap_or_default();
    exe.ancestors().map(|a| a.join("charts/scaletest")).find(|p| p.is_dir()).unwrap_or(here)
}

impl KubeRun {
    pub fn new(
        kube: Kube,
        stamp: &str,
        image_values: Vec<String>,
        chart_values: Vec<String>,
        files: Vec<PathBuf>,
    ) -> Self {
        // Release names are at most 53 characters; the stamp keeps them unique.
        let release = format!("st-{}", stamp.to_ascii_lowercase());
        Self {
            kube,
            namespace: "scaletest".into(),
            release,
            prometheus: None,
            image_values,
            chart_values,
            created_namespace: false,
            files,
        }
    }

    fn fullname(&self) -> String {
        format!("{}-scaletest", self.release).chars().take(40).collect::<String>().trim_end_matches('-').to_string()
    }

    pub async fn install(&mut self, profile: &Path, run_id: &str) -> Result<(), KubeError> {
        let exists = self
            .kube
            .kubectl(&["get", "namespace", &self.namespace, "-o", "name"])
            .output()
            .await
            .map_err(|e| KubeError::Command { what: "kubectl get namespace".into(), detail: e.to_string() })?;
        self.created_namespace = !exists.status.success();
        let chart = chart_dir();
        let profile_arg = format!("profile={}", profile.display());
        let run_arg = format!("runId={run_id}");
        let mut cmd = self.kube.helm(&[
            "install",
            &self.release,
            &chart.display().to_string(),
            "--namespace",
            &self.namespace,
            "--create-namespace",
            "--set-file",
            &profile_arg,
            "--set-string",
            &run_arg,
            "--set",
            "harness.loadGate=true",
            "--timeout",
            "5m",
        ]);
        for v in &self.image_values {
            cmd.args(["--set-string", v]);
        }
        for f in &self.files {
            cmd.args(["--set-file", &profile_file_arg(f)]);
        }
        for v in &self.chart_values {
            cmd.args(["--set", v]);
        }
        Kube::check("helm install", cmd).await.map(|_| ())
    }

    /// Port-forwards the release's Prometheus once its Pod is ready.
    pub async fn forward_prometheus(
        &mut self,
        timeout: Duration,
        shutdown: &tokio_util::sync::CancellationToken,
    ) -> Result<String, KubeError> {
        let deploy = format!("deploy/{}-prometheus", self.fullname());
        let wait = self.kube.kubectl(&[
            "-n",
            &self.namespace,
            "rollout",
            "status",
            &deploy,
            &format!("--timeout={}s", timeout.as_secs().max(1)),
        ]);
        tokio::select! {
            r = Kube::check("Prometheus rollout", wait) => { r?; }
            _ = shutdown.cancelled() => return Err(KubeError::Command { what: "Prometheus rollout".into(), detail: "interrupted".into() }),
        }
        let svc = format!("svc/{}-prometheus", self.fullname());
        let (child, addr) = self.kube.port_forward(&self.namespace, &svc, 9090).await?;
        self.prometheus = Some((child, addr.clone()));
        Ok(addr)
    }

    /// Waits until every simulated-cluster Pod is Ready: each container's readiness,
    /// the user's controller sidecar included (its `sut.readiness`), so the load never
    /// starts before the controller that has to answer it.
    pub async fn wait_clusters_ready(
        &self,
        timeout: Duration,
        shutdown: &tokio_util::sync::CancellationToken,
    ) -> Result<(), KubeError> {
        let wait = self.kube.kubectl(&[
            "-n",
            &self.namespace,
            "wait",
            "pod",
            "-l",
            &self.cluster_selector(),
            "--for=condition=Ready",
            &format!("--timeout={}s", timeout.as_secs().max(1)),
        ]);
        tokio::select! {
            r = Kube::check("simulated-cluster Pods Ready", wait) => r.map(drop),
            _ = shutdown.cancelled() => Err(KubeError::Command { what: "simulated-cluster Pods Ready".into(), detail: "interrupted".into() }),
        }
    }

    fn cluster_selector(&self) -> String {
        format!("app.kubernetes.io/instance={},app.kubernetes.io/component=cluster", self.release)
    }

    /// Why this release's Pods are not all Ready yet, one line per Pod that is not
    /// (`name: Pending: 0/1 nodes are available: ...`); empty when every Pod is Ready.
    pub async fn unready_pods(&self) -> Result<Vec<String>, KubeError> {
        let selector = format!("app.kubernetes.io/instance={}", self.release);
        let out = Kube::check(
            "kubectl get pods",
            self.kube.kubectl(&["-n", &self.namespace, "get", "pods", "-l", &selector, "-o", "json"]),
        )
        .await?;
        let list: serde_json::Value = serde_json::from_str(&out)
            .map_err(|e| KubeError::Command { what: "kubectl get pods -o json".into(), detail: e.to_string() })?;
        Ok(unready(&list))
    }

    /// The simulated-cluster Pods of this release, by name.
    pub async fn cluster_pods(&self) -> Result<Vec<String>, KubeError> {
        let out = Kube::check(
            "kubectl get pods",
            self.kube.kubectl(&[
                "-n",
                &self.namespace,
                "get",
                "pods",
                "-l",
                &self.cluster_selector(),
                "-o",
                "jsonpath={.items[*].metadata.name}",
            ]),
        )
        .await?;
        Ok(out.split_whitespace().map(str::to_string).collect())
    }

    /// Reaches one simulated cluster from here (see [`ClusterAccess`]); `dir` receives
    /// its certificates and kubeconfig.
    pub async fn cluster_access(&self, pod: &str, dir: &Path) -> Result<ClusterAccess, KubeError> {
        let io =
            |e: std::io::Error| KubeError::Command { what: format!("write {}", dir.display()), detail: e.to_string() };
        std::fs::create_dir_all(dir).map_err(io)?;
        for file in ["ca.crt", "admin.crt", "admin.key"] {
            let path = format!("{CLUSTER_DATA_DIR}/pki/{file}");
            let body = Kube::check(
                &format!("kubectl exec {pod} -- cat {path}"),
                self.kube.kubectl(&["-n", &self.namespace, "exec", pod, "-c", "cluster", "--", "cat", &path]),
            )
            .await?;
            std::fs::write(dir.join(file), body).map_err(io)?;
        }
        let target = format!("pod/{pod}");
        let (api, api_addr) =
            self.kube.port_forward(&self.namespace, &target, CLUSTER_PORT_BASE + APISERVER_OFFSET).await?;
        let (driver, load_driver) =
            self.kube.port_forward(&self.namespace, &target, CLUSTER_PORT_BASE + LOAD_DRIVER_OFFSET).await?;
        let kubeconfig = dir.join("admin.kubeconfig");
        std::fs::write(&kubeconfig, forwarded_kubeconfig(&api_addr, dir)).map_err(io)?;
        Ok(ClusterAccess { pod: pod.to_string(), kubeconfig, load_driver, _forwards: [api, driver] })
    }

    /// Lets every load-driver start (`harness.loadGate`).
    pub async fn open_load_gates(&self) -> Result<(), KubeError> {
        let pods = Kube::check(
            "kubectl get pods",
            self.kube.kubectl(&["-n", &self.namespace, "get", "pods", "-l", &self.cluster_selector(), "-o", "name"]),
        )
        .await?;
        for pod in pods.lines().filter(|l| !l.is_empty()) {
            let cmd = self.kube.kubectl(&[
                "-n",
                &self.namespace,
                "exec",
                pod,
                "-c",
                "cluster",
                "--",
                "touch",
                "/var/lib/scaletest/load-gate",
            ]);
            Kube::check("kubectl exec (load gate)", cmd).await?;
        }
        Ok(())
    }

    /// TSDB snapshot through the admin API, streamed out of the Prometheus Pod.
    pub async fn snapshot(&self, addr: &str, tar: &Path) -> Result<(), KubeError> {
        let dir = crate::prom::snapshot(addr, Path::new("/prometheus"))
            .await
            .map_err(|e| KubeError::Command { what: "snapshot".into(), detail: e.to_string() })?;
        let deploy = format!("deploy/{}-prometheus", self.fullname());
        // The TSDB at the archive's top level, as the local target writes it: a replay
        // opens the unpacked directory itself.
        let dir = dir.to_string_lossy().to_string();
        let out = self
            .kube
            .kubectl(&["-n", &self.namespace, "exec", &deploy, "--", "tar", "-C", &dir, "-czf", "-", "."])
            .output()
            .await
            .map_err(|e| KubeError::Command { what: "kubectl exec tar".into(), detail: e.to_string() })?;
        if !out.status.success() {
            return Err(KubeError::Command { what: "kubectl exec tar".into(), detail: first_line(&out.stderr) });
        }
        std::fs::write(tar, out.stdout)
            .map_err(|e| KubeError::Command { what: "write snapshot".into(), detail: e.to_string() })
    }

    /// `helm uninstall --wait`, then a check that nothing labelled with the run id is
    /// left, then the namespace deleted if the install created it.
    pub async fn uninstall(&mut self, run_id: &str) -> Result<(), KubeError> {
        self.prometheus = None; // stops the port-forward
        Kube::check(
            "helm uninstall",
            self.kube.helm(&["uninstall", &self.release, "--namespace", &self.namespace, "--wait", "--timeout", "5m"]),
        )
        .await?;
        let left = Kube::check(
            "kubectl get (leftovers)",
            self.kube.kubectl(&[
                "-n",
                &self.namespace,
                "get",
                "statefulsets,deployments,services,configmaps,serviceaccounts,roles,rolebindings",
                "-l",
                &format!("{}={run_id}", scaletest_core::constants::RUN_LABEL),
                "-o",
                "name",
            ]),
        )
        .await?;
        if left.trim().is_empty() {
            if self.created_namespace {
                Kube::check(
                    "kubectl delete namespace",
                    self.kube.kubectl(&["delete", "namespace", &self.namespace, "--wait", "--timeout=3m"]),
                )
                .await?;
            }
            Ok(())
        } else {
            Err(KubeError::Command {
                what: "teardown".into(),
                detail: format!("left behind: {}", left.split_whitespace().collect::<Vec<_>>().join(", ")),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn says_why_each_pod_is_not_ready() {
        let list = serde_json::json!({"items": [
            {"metadata": {"name": "c-0"}, "status": {"phase": "Pending", "conditions": [
                {"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                 "message": "0/1 nodes are available: 1 node(s) had untolerated taint(s)."}]}},
            {"metadata": {"name": "c-1"}, "status": {"phase": "Pending", "conditions": [
                {"type": "PodScheduled", "status": "True"}, {"type": "Ready", "status": "False"}],
                "initContainerStatuses": [{"name": "cluster", "state": {"waiting": {
                    "reason": "ErrImagePull", "message": "failed to pull \"x:1\": not found\nmore"}}}]}},
            {"metadata": {"name": "c-2"}, "status": {"phase": "Running", "conditions": [
                {"type": "Ready", "status": "False", "message": "containers with unready status: [sut]"}],
                "containerStatuses": [{"name": "sut", "state": {"running": {}}}]}},
            {"metadata": {"name": "c-3"}, "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}},
            {"metadata": {"name": "prom-old"}, "status": {"phase": "Failed", "reason": "Evicted"}}
        ]});
        assert_eq!(
            unready(&list),
            [
                "c-0: Pending: 0/1 nodes are available: 1 node(s) had untolerated taint(s).",
                "c-1: Pending: container cluster waiting: ErrImagePull (failed to pull \"x:1\": not found)",
                "c-2: Running: containers with unready status: [sut]",
            ]
        );
    }

    #[test]
    fn forwarded_kubeconfig_names_the_forward_and_the_copied_files() {
        let k = forwarded_kubeconfig("127.0.0.1:40001", Path::new("/tmp/x/c0"));
        assert!(k.contains("server: https://127.0.0.1:40001\n"), "{k}");
        for f in [
            "certificate-authority: /tmp/x/c0/ca.crt",
            "client-certificate: /tmp/x/c0/admin.crt",
            "client-key: /tmp/x/c0/admin.key",
        ] {
            assert!(k.contains(f), "{f} missing:\n{k}");
        }
    }

    #[test]
    fn the_chart_is_sized_by_the_footprint_rule() {
        let profile = |name: &str| {
            let p = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../../profiles/{name}.yaml"));
            scaletest_core::profile::load(&p).unwrap()
        };
        // dev-5k: values.yaml's defaults (crates/scaletest-cluster/tests/chart.rs checks the render).
        let dev = footprint_values(&profile("dev-5k"));
        for v in [
            "cluster.resources.requests.cpu=280m",
            "cluster.resources.requests.memory=1023Mi",
            "cluster.resources.limits.memory=1234Mi",
        ] {
            assert!(dev.contains(&v.to_string()), "{v} not in {dev:?}");
        }
        assert!(!dev.iter().any(|v| v.starts_with("prometheus.keepMetrics")), "{dev:?}");
        assert!(!dev.iter().any(|v| v.starts_with("sut.")), "the reference SUT runs in the cluster container: {dev:?}");
        // A user's controller gets what its profile declares (sut.resources), request and limit.
        let karpenter = footprint_values(&profile("karpenter"));
        for v in ["sut.resources.requests.cpu=", "sut.resources.requests.memory=", "sut.resources.limits.memory="] {
            assert!(karpenter.iter().any(|k| k.starts_with(v)), "{v} not in {karpenter:?}");
        }
        // CPU is requested, never limited, for a cluster and its controller.
        for values in [&dev, &karpenter] {
            for key in ["cluster.resources.limits.cpu", "sut.resources.limits.cpu"] {
                assert!(!values.iter().any(|v| v.starts_with(key)), "{key} in {values:?}");
            }
        }
        // 5,000 clusters: past one Prometheus's series budget, only what the run reads.
        let cloud = footprint_values(&profile("cloud-5m"));
        let keep = cloud.iter().find_map(|v| v.strip_prefix("prometheus.keepMetrics=")).unwrap();
        assert!(
            keep.starts_with(RUNNER_READS) && keep.contains("scaletest_load_driver_binding_latency_seconds_bucket"),
            "{keep}"
        );
        assert!(cloud.contains(&format!("prometheus.components={HARNESS_COMPONENTS}")), "{cloud:?}");
        // kube-apiserver's latency, summed down to the labels the verdict reads.
        assert!(
            HARNESS_COMPONENTS.contains("kube-apiserver") && keep.contains("apiserver_request_duration_seconds_bucket")
        );
        assert!(cloud.contains(&"prometheus.kubeApiserver.sumBy={verb,scope}".to_string()), "{cloud:?}");
        assert!(!dev.iter().any(|v| v.starts_with("prometheus.kubeApiserver")), "{dev:?}");
    }

    #[test]
    fn a_template_is_mounted_by_file_name_with_escaped_dots() {
        let t = Path::new("/home/u/scaletest/profiles/deployment.v1.yaml");
        assert_eq!(mounted_name(t), PathBuf::from("deployment.v1.yaml"));
        assert_eq!(
            profile_file_arg(t),
            "profileFiles.deployment\\.v1\\.yaml=/home/u/scaletest/profiles/deployment.v1.yaml"
        );
    }

    #[test]
    fn the_suts_manifests_travel_as_one_file_in_apply_order() {
        let dir = tempfile::tempdir().unwrap();
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../profiles/karpenter");
        let bundle = bundle_manifests(&[repo.join("crds"), repo.clone()], dir.path()).unwrap();
        assert_eq!(mounted_name(&bundle), PathBuf::from("sut-manifests.yaml"));
        let objects = scaletest_core::manifests::read_file(&bundle).unwrap();
        let kinds: Vec<&str> = objects.iter().map(|m| m.kind.as_str()).collect();
        assert_eq!(
            kinds,
            ["CustomResourceDefinition"; 4].into_iter().chain(["KWOKNodeClass", "NodePool"]).collect::<Vec<_>>()
        );
    }
}

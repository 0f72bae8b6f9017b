//! One pure builder per process of a simulated cluster (as kwokctl's
//! `components/` does): each computes name, program, arguments, the files it
//! needs, how to tell it is ready and where it serves metrics. Nothing here
//! starts anything, so every flag set is unit-testable.

use std::path::{Path, PathBuf};

use scaletest_core::constants::{KWOK_NODE_ANNOTATION, KWOK_NODE_ANNOTATION_VALUE};
use scaletest_core::endpoints::{MetricsTarget, TlsTarget};

use crate::config::{ApiserverLimits, KwokMode, SchedulerMode};
use crate::lean::Lean;
use crate::pki::Pki;
use crate::ports::Ports;

/// How the supervisor decides a component is up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Probe {
    /// Accepts TCP connections on loopback.
    Tcp(u16),
    /// Answers 2xx on this plain-http URL.
    Http(String),
    /// Answers 2xx on this https URL. The client trusts `ca_file` (the cluster's
    /// CA) and nothing else, so the probe works in an image without a CA bundle;
    /// `verify: false` accepts any serving cert (kube-controller-manager and
    /// kube-scheduler serve self-signed ones).
    Https { url: String, ca_file: PathBuf, verify: bool },
    /// Nothing to ask (a user's own process): started is ready.
    Started,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Component {
    pub name: &'static str,
    pub program: PathBuf,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    /// Files written into the data dir before the first start.
    pub files: Vec<(PathBuf, String)>,
    /// Directories it writes into, created before the first start.
    pub dirs: Vec<PathBuf>,
    pub probe: Probe,
    pub metrics: Option<MetricsTarget>,
}

/// Everything the builders read: the cluster's layout on disk and on the network.
#[derive(Clone, Debug)]
pub struct Layout {
    pub data_dir: PathBuf,
    pub pki: Pki,
    pub ports: Ports,
    /// Address the components' metrics/health listeners bind (0.0.0.0 in kube mode).
    pub bind_address: String,
    /// Address advertised to scrapers (the pod IP in kube mode).
    pub advertise_address: String,
    pub scheduler: SchedulerMode,
    pub apiserver_limits: ApiserverLimits,
    /// `harness.controlPlane: lean`: only these API groups and controllers. None: all of them.
    pub lean: Option<Lean>,
    pub kwok_mode: KwokMode,
    /// Extra kube-apiserver flags, last (the hidden `--apiserver-arg`).
    pub apiserver_args: Vec<String>,
}

impl Layout {
    pub fn apiserver_url(&self) -> String {
        format!("https://127.0.0.1:{}", self.ports.apiserver)
    }

    fn dir(&self, sub: &str) -> PathBuf {
        self.data_dir.join(sub)
    }

    fn target(&self, scheme: &str, port: u16, tls: Option<TlsTarget>) -> Option<MetricsTarget> {
        Some(MetricsTarget {
            scheme: scheme.into(),
            address: format!("{}:{port}", self.advertise_address),
            path: "/metrics".into(),
            tls,
        })
    }

    /// Kubernetes components serve metrics on self-signed certs and let anyone
    /// read `/metrics` (`--authorization-always-allow-paths`).
    fn insecure_tls() -> Option<TlsTarget> {
        Some(TlsTarget { ca_file: None, cert_file: None, key_file: None, insecure_skip_verify: true })
    }

    fn kubeconfig(&self) -> String {
        p(&self.pki.admin_kubeconfig)
    }
}

fn p(path: &Path) -> String {
    path.display().to_string()
}

fn flag(name: &str, value: impl std::fmt::Display) -> String {
    format!("--{name}={value}")
}

/// Program paths, resolved once by the caller.
pub struct Programs<'a> {
    pub kine: &'a Path,
    pub apiserver: &'a Path,
    pub controller_manager: &'a Path,
    pub scheduler: &'a Path,
    pub kwok: &'a Path,
    /// `scaletest-node-agents`; only run with `kwok.mode: faithful`.
    pub node_agents: &'a Path,
}

/// GOGC of the control plane's Go processes: the heap may grow to (1 + GOGC/100) x the
/// live heap before a collection. At Go's 100 an idle kube-apiserver holds twice its
/// ~85 MiB live heap; at 50 one and a half, which cut an idle cluster's private memory by
/// about a sixth at the same CPU (results/bench/README.md). A fixed GOMEMLIMIT would
/// instead have to be sized above a live heap that grows with the objects stored (about
/// 70 MiB per 1,000 Pods in the apiserver): below it the collector never stops.
/// Not kine: every write of the cluster goes through its one SQLite write lock, and a
/// collection's assists slow the lock holder. 10,000 Pods created at once into one lean
/// cluster: kine at GOGC=50 took 13.5 min to bind them, once, and stalled at ~6,000 bound
/// the next time (reads waiting 13-40 s for a pool connection, the watch cache 12K
/// revisions behind); at Go's 100, 421 s (2026-12-06, the 2-core machine).
const GO_GC_PERCENT: u32 = 50;

fn go_env() -> Vec<(String, String)> {
    vec![("GOGC".into(), GO_GC_PERCENT.to_string())]
}

/// The control plane in start order; stopped in reverse.
pub fn control_plane(l: &Layout, programs: &Programs) -> Vec<Component> {
    let mut v = vec![
        kine(l, programs.kine),
        kube_apiserver(l, programs.apiserver),
        kube_controller_manager(l, programs.controller_manager),
    ];
    if l.scheduler == SchedulerMode::KubeScheduler {
        v.push(kube_scheduler(l, programs.scheduler));
    }
    v.push(kwok(l, programs.kwok));
    if l.kwok_mode == KwokMode::Faithful {
        v.push(node_agents(l, programs.node_agents));
    }
    v
}

/// kube-apiserver's --request-timeout (its default, set explicitly to keep the two tied).
const APISERVER_REQUEST_TIMEOUT_SECS: u64 = 60;

/// How long a kine write waits for SQLite's lock. It must outlast every request: kine
/// v0.17.5 answers a create whose insert gave up on the lock (SQLITE_BUSY) with success
/// (`LogStructured.Create` reads the key back, finds nothing and returns no error), so a
/// create that waits out the busy timeout is acknowledged and lost (4,451 of 5,000
/// ConfigMaps with 1 s). Past the request timeout the apiserver's cancellation ends
/// the wait first, and the client gets an error it retries.
const KINE_BUSY_TIMEOUT_MS: u64 = 2 * APISERVER_REQUEST_TIMEOUT_SECS * 1000;

/// kine's SQLite connections (one writer at a time; the rest serve reads and its poll loop).
const KINE_CONNECTIONS: u32 = 16;

/// The etcd version kine reports: below 3.5.13, the first the apiserver trusts with
/// RequestWatchProgress (k8s.io/apiserver pkg/storage/feature). With kine's default (3.6.11)
/// the watch cache asks kine for progress whenever a consistent read waits for it, and kine
/// answers with a broadcast notification (watch id -1) that the etcd v3.7.0 client sends to
/// every substream, including one kine has just cancelled (its broadcaster drops a watcher
/// that fell behind) and the client has closed but not yet removed: "send on closed
/// channel", and the apiserver dies (tests/watch_progress.rs). v1.37 has no gate left for
/// this (ConsistentListFromCache is gone). The cost: consistent LISTs (resourceVersion
/// unset) are served by kine instead of the cache, and WatchList requests are refused, so
/// clients fall back to LIST + WATCH.
const KINE_EMULATED_ETCD_VERSION: &str = "3.5.12";

pub fn kine(l: &Layout, program: &Path) -> Component {
    let db = l.dir("kine").join("state.db");
    Component {
        name: "kine",
        program: program.into(),
        args: vec![
            flag("listen-address", format!("127.0.0.1:{}", l.ports.kine)),
            flag(
                "endpoint",
                // No cache=shared: kine drops it with its pure-Go SQLite driver anyway.
                format!("sqlite://{}?_journal=WAL&_busy_timeout={KINE_BUSY_TIMEOUT_MS}&_txlock=immediate", p(&db)),
            ),
            flag("metrics-bind-address", format!("{}:{}", l.bind_address, l.ports.kine_metrics)),
            // A bounded pool, kept open: writers queue in Go (FIFO, cancelled with their
            // request) instead of in SQLite's sleeping busy handler, and no connection is
            // opened and closed per burst. Unbounded (kine's default), 10,000 ConfigMaps
            // sent at once took 77 s with 6,191 requests timing out; with 16, 15 s and none.
            flag("datastore-max-open-connections", KINE_CONNECTIONS),
            flag("datastore-max-idle-connections", KINE_CONNECTIONS),
            flag("emulated-etcd-version", KINE_EMULATED_ETCD_VERSION),
            // kine polls SQLite for rows another writer inserted; it is the only writer and
            // wakes its watchers on its own inserts at once, so the poll is an idle loop:
            // every 5 s instead of every second (with the apiserver's key count below, about
            // 4 mvCPU of an idle cluster's 21, results/bench/README.md lever `idleLoops`).
            flag("datastore-poll-interval", "5s"),
        ],
        // Go's own GOGC, not GO_GC_PERCENT: see there.
        env: vec![],
        files: vec![],
        dirs: vec![l.dir("kine")],
        probe: Probe::Tcp(l.ports.kine),
        metrics: l.target("http", l.ports.kine_metrics, None),
    }
}

pub fn kube_apiserver(l: &Layout, program: &Path) -> Component {
    let pki = &l.pki;
    let mut args = vec![
        flag("etcd-servers", format!("http://127.0.0.1:{}", l.ports.kine)),
        flag("bind-address", &l.bind_address),
        flag("advertise-address", "127.0.0.1"),
        flag("secure-port", l.ports.apiserver),
        flag("cert-dir", p(&l.dir("apiserver"))),
        flag("tls-cert-file", p(&pki.serving_cert)),
        flag("tls-private-key-file", p(&pki.serving_key)),
        flag("client-ca-file", p(&pki.ca_cert)),
        flag("service-account-issuer", "https://kubernetes.default.svc.cluster.local"),
        flag("service-account-key-file", p(&pki.service_account_pub)),
        flag("service-account-signing-key-file", p(&pki.service_account_key)),
        flag("service-cluster-ip-range", "10.0.0.0/24"),
        flag("authorization-mode", "Node,RBAC"),
        flag("allow-privileged", "true"),
        // 127.0.0.1 is not a valid Endpoints address; nothing in a simulated
        // cluster reaches the apiserver through the `kubernetes` Service.
        flag("endpoint-reconciler-type", "none"),
        flag("request-timeout", format!("{APISERVER_REQUEST_TIMEOUT_SECS}s")),
        flag("profiling", "false"),
        // It counts every resource's keys in kine for apiserver_storage_objects every minute:
        // a full scan per resource that nothing in a run reads.
        flag("etcd-count-metric-poll-period", "5m"),
        // With WatchList on, a watch from resourceVersion=0 (kwok's informers, and a
        // kubelet's) is turned into a watch stream, which the cacher refuses without watch
        // progress (KINE_EMULATED_ETCD_VERSION): the watch ends at once, every time, and kwok
        // held no watch at all, relisting instead (results/fidelity.md). Off, such a watch is
        // served from the cache as before WatchList, and a client's explicit WatchList
        // request is refused, so it falls back to LIST + WATCH.
        flag("feature-gates", "WatchList=false"),
    ];
    // What kwokctl does for scale runs, when the profile asks: no inflight caps, no APF.
    args.extend(l.apiserver_limits.apiserver_flags().iter().map(|f| f.to_string()));
    if let Some(lean) = &l.lean {
        // Each group version served costs memory whether used or not: its storage, watch
        // cache, OpenAPI and discovery documents.
        args.push(flag("runtime-config", lean.runtime_config()));
    }
    args.extend(l.apiserver_args.iter().cloned());
    Component {
        name: "kube-apiserver",
        program: program.into(),
        args,
        env: go_env(),
        files: vec![],
        dirs: vec![l.dir("apiserver")],
        probe: Probe::Https {
            url: format!("https://127.0.0.1:{}/readyz", l.ports.apiserver),
            ca_file: pki.ca_cert.clone(),
            // The serving cert is signed by the cluster's CA and names 127.0.0.1.
            verify: true,
        },
        metrics: l.target(
            "https",
            l.ports.apiserver,
            Some(TlsTarget {
                ca_file: Some(pki.ca_cert.clone()),
                cert_file: Some(pki.admin_cert.clone()),
                key_file: Some(pki.admin_key.clone()),
                // The serving cert names 127.0.0.1, not the advertised address.
                insecure_skip_verify: l.advertise_address != "127.0.0.1",
            }),
        ),
    }
}

/// Flags the secure-serving Kubernetes components share.
fn secure_serving(l: &Layout, port: u16, cert_dir: &str) -> Vec<String> {
    let kc = l.kubeconfig();
    vec![
        flag("bind-address", &l.bind_address),
        flag("secure-port", port),
        flag("cert-dir", p(&l.dir(cert_dir))),
        flag("authentication-kubeconfig", &kc),
        flag("authorization-kubeconfig", &kc),
        flag("authorization-always-allow-paths", "/healthz,/readyz,/livez,/metrics"),
    ]
}

pub fn kube_controller_manager(l: &Layout, program: &Path) -> Component {
    let mut args = vec![
        flag("kubeconfig", l.kubeconfig()),
        flag("leader-elect", "false"),
        flag("service-account-private-key-file", p(&l.pki.service_account_key)),
        flag("root-ca-file", p(&l.pki.ca_cert)),
        flag("use-service-account-credentials", "false"),
        // Garbage collection of CapacityRequests with their Pods is on the
        // measured path: do not throttle it at client-go's default 20 QPS.
        flag("kube-api-qps", 200),
        flag("kube-api-burst", 400),
        // New fake Nodes start tainted not-ready (TaintNodesByCondition); the
        // node lifecycle controller lifts it on its monitor tick, which is on
        // the binding-latency path: tick every second, not every five.
        flag("node-monitor-period", "1s"),
    ];
    if let Some(lean) = &l.lean {
        // Every controller runs its informers (and the groups it lists must be served).
        args.push(flag("controllers", lean.controllers_flag()));
    }
    args.extend(secure_serving(l, l.ports.controller_manager, "controller-manager"));
    Component {
        name: "kube-controller-manager",
        program: program.into(),
        args,
        env: go_env(),
        files: vec![],
        dirs: vec![l.dir("controller-manager")],
        probe: Probe::Https {
            url: format!("https://127.0.0.1:{}/healthz", l.ports.controller_manager),
            ca_file: l.pki.ca_cert.clone(),
            verify: false,
        },
        metrics: l.target("https", l.ports.controller_manager, Layout::insecure_tls()),
    }
}

/// KubeSchedulerConfiguration packing Pods onto Nodes up to Allocatable
/// (NodeResourcesFit / MostAllocated), the density model's placement rule.
pub fn scheduler_config(kubeconfig: &str) -> String {
    format!(
        r#"apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
clientConnection:
  kubeconfig: {kubeconfig}
  qps: 500
  burst: 1000
leaderElection:
  leaderElect: false
profiles:
- schedulerName: default-scheduler
  pluginConfig:
  - name: NodeResourcesFit
    args:
      scoringStrategy:
        type: MostAllocated
        resources:
        - name: cpu
          weight: 1
        - name: memory
          weight: 1
"#
    )
}

pub fn kube_scheduler(l: &Layout, program: &Path) -> Component {
    let config = l.dir("scheduler").join("config.yaml");
    // Without async API calls (beta, off by default in v1.37) every failed attempt waits for
    // its own PodScheduled=False patch: on a busy apiserver that caps scheduling at a few
    // Pods/s and most Pods are never even marked unschedulable for the SUT to see.
    let mut args = vec![flag("config", p(&config)), flag("feature-gates", "SchedulerAsyncAPICalls=true")];
    args.extend(secure_serving(l, l.ports.scheduler, "scheduler"));
    Component {
        name: "kube-scheduler",
        program: program.into(),
        args,
        env: go_env(),
        files: vec![(config, scheduler_config(&l.kubeconfig()))],
        dirs: vec![l.dir("scheduler")],
        probe: Probe::Https {
            url: format!("https://127.0.0.1:{}/healthz", l.ports.scheduler),
            ca_file: l.pki.ca_cert.clone(),
            verify: false,
        },
        metrics: l.target("https", l.ports.scheduler, Layout::insecure_tls()),
    }
}

/// kwok v0.8.0 ships no default stages: these are its `fast` Node/Pod stages
/// with lease heartbeats, copied from the pinned module.
pub const KWOK_FAST_STAGES: [(&str, &str); 5] = [
    ("node-initialize.yaml", include_str!("../kwok-stages/node-initialize.yaml")),
    ("node-heartbeat-with-lease.yaml", include_str!("../kwok-stages/node-heartbeat-with-lease.yaml")),
    ("pod-ready.yaml", include_str!("../kwok-stages/pod-ready.yaml")),
    ("pod-complete.yaml", include_str!("../kwok-stages/pod-complete.yaml")),
    ("pod-delete.yaml", include_str!("../kwok-stages/pod-delete.yaml")),
];

/// `kwok.mode: faithful`: what a kubelet writes per Node and Pod (results/fidelity.md
/// compares them with a real kubelet's): Node status every 5 min; a Pod's status in the
/// kubelet's steps with its events (three to Running, its resources ~75 s later, three
/// to stop it) before the delete.
pub const KWOK_FAITHFUL_STAGES: [(&str, &str); 10] = [
    ("node-initialize.yaml", include_str!("../kwok-stages/node-initialize.yaml")),
    ("faithful/pod-create.yaml", include_str!("../kwok-stages/faithful/pod-create.yaml")),
    ("faithful/pod-sandbox.yaml", include_str!("../kwok-stages/faithful/pod-sandbox.yaml")),
    ("faithful/pod-ready.yaml", include_str!("../kwok-stages/faithful/pod-ready.yaml")),
    ("faithful/pod-resources.yaml", include_str!("../kwok-stages/faithful/pod-resources.yaml")),
    ("pod-complete.yaml", include_str!("../kwok-stages/pod-complete.yaml")),
    ("faithful/pod-terminating.yaml", include_str!("../kwok-stages/faithful/pod-terminating.yaml")),
    ("faithful/pod-terminate.yaml", include_str!("../kwok-stages/faithful/pod-terminate.yaml")),
    ("faithful/pod-stopped.yaml", include_str!("../kwok-stages/faithful/pod-stopped.yaml")),
    ("faithful/pod-delete.yaml", include_str!("../kwok-stages/faithful/pod-delete.yaml")),
];

/// fast's Node heartbeat at a kubelet's nodeStatusReportFrequency (5 min, not 10).
fn faithful_heartbeat() -> String {
    KWOK_FAST_STAGES[1]
        .1
        .replace("durationMilliseconds: 600000", "durationMilliseconds: 300000")
        .replace("jitterDurationMilliseconds: 610000", "jitterDurationMilliseconds: 305000")
}

/// The Stage documents kwok runs in `mode`.
pub fn kwok_stages(mode: KwokMode) -> Vec<String> {
    match mode {
        KwokMode::Fast => KWOK_FAST_STAGES.iter().map(|(_, y)| y.to_string()).collect(),
        KwokMode::Faithful => std::iter::once(faithful_heartbeat())
            .chain(KWOK_FAITHFUL_STAGES.iter().map(|(_, y)| y.to_string()))
            .collect(),
    }
}

pub fn kwok(l: &Layout, program: &Path) -> Component {
    let dir = l.dir("kwok");
    let stages = dir.join("stages.yaml");
    let body = kwok_stages(l.kwok_mode).iter().map(|y| y.trim_end()).collect::<Vec<_>>().join("\n---\n");
    Component {
        name: "kwok",
        program: program.into(),
        args: vec![
            flag("kubeconfig", l.kubeconfig()),
            flag("config", p(&stages)),
            flag(
                "manage-nodes-with-annotation-selector",
                format!("{KWOK_NODE_ANNOTATION}={KWOK_NODE_ANNOTATION_VALUE}"),
            ),
            flag("server-address", format!("{}:{}", l.bind_address, l.ports.kwok)),
            flag("node-lease-duration-seconds", 40),
            // Pod IPs: the default /24 runs out at 254 Pods.
            flag("cidr", "10.64.0.1/10"),
        ],
        // kwok also reads ~/.kwok/kwok.yaml: keep a user's file out of the run.
        env: [go_env(), vec![("HOME".into(), p(&dir))]].concat(),
        files: vec![(stages, body + "\n")],
        dirs: vec![dir.clone()],
        probe: Probe::Http(format!("http://127.0.0.1:{}/healthz", l.ports.kwok)),
        metrics: l.target("http", l.ports.kwok, None),
    }
}

/// `scaletest-node-agents`: the kubelet's and kube-proxy's watches per kwok Node.
pub fn node_agents(l: &Layout, program: &Path) -> Component {
    Component {
        name: "node-agents",
        program: program.into(),
        args: vec![flag("kubeconfig", l.kubeconfig())],
        env: vec![("NO_COLOR".into(), "1".into())],
        files: vec![],
        dirs: vec![],
        // It serves nothing: its watches show in the apiserver's metrics.
        probe: Probe::Started,
        metrics: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(scheduler: SchedulerMode) -> Layout {
        let dir = PathBuf::from("/data/c0");
        Layout {
            pki: Pki::at(&dir.join("pki")),
            data_dir: dir,
            ports: Ports::fixed_unchecked(20000),
            bind_address: "127.0.0.1".into(),
            advertise_address: "127.0.0.1".into(),
            scheduler,
            apiserver_limits: ApiserverLimits::Default,
            lean: None,
            kwok_mode: KwokMode::Fast,
            apiserver_args: vec![],
        }
    }

    fn programs() -> Programs<'static> {
        let b = Path::new("/bin/x");
        Programs { kine: b, apiserver: b, controller_manager: b, scheduler: b, kwok: b, node_agents: b }
    }

    #[test]
    fn start_order_and_scheduler_mode() {
        let names = |m| control_plane(&layout(m), &programs()).iter().map(|c| c.name).collect::<Vec<_>>();
        assert_eq!(
            names(SchedulerMode::KubeScheduler),
            ["kine", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok"]
        );
        assert_eq!(names(SchedulerMode::PodShim), ["kine", "kube-apiserver", "kube-controller-manager", "kwok"]);
        let mut l = layout(SchedulerMode::KubeScheduler);
        l.kwok_mode = KwokMode::Faithful;
        let faithful: Vec<_> = control_plane(&l, &programs()).iter().map(|c| c.name).collect();
        assert_eq!(faithful.last(), Some(&"node-agents"), "faithful mode runs the node agents after kwok");
    }

    #[test]
    fn apiserver_serves_resource_version_zero_watches_from_its_cache() {
        let mut l = layout(SchedulerMode::KubeScheduler);
        let a = kube_apiserver(&l, Path::new("/bin/x"));
        assert!(a.args.contains(&"--feature-gates=WatchList=false".to_string()), "{:?}", a.args);
        l.apiserver_args = vec!["--audit-log-path=/x".into()];
        let a = kube_apiserver(&l, Path::new("/bin/x"));
        assert_eq!(a.args.last().map(String::as_str), Some("--audit-log-path=/x"), "extra flags come last");
    }

    #[test]
    fn apiserver_talks_to_kine_and_lifts_limits_only_when_asked() {
        let mut l = layout(SchedulerMode::KubeScheduler);
        let a = kube_apiserver(&l, Path::new("/bin/x"));
        assert!(a.args.contains(&"--etcd-servers=http://127.0.0.1:20001".to_string()));
        assert!(!a.args.iter().any(|f| f.starts_with("--max-requests-inflight")));
        l.apiserver_limits = ApiserverLimits::Unlimited;
        let a = kube_apiserver(&l, Path::new("/bin/x"));
        assert!(a.args.contains(&"--max-requests-inflight=0".to_string()));
    }

    #[test]
    fn a_lean_cluster_serves_and_runs_only_what_it_derived() {
        let mut l = layout(SchedulerMode::KubeScheduler);
        let full = (kube_apiserver(&l, Path::new("/bin/x")), kube_controller_manager(&l, Path::new("/bin/x")));
        assert!(!full.0.args.iter().any(|a| a.starts_with("--runtime-config")));
        assert!(!full.1.args.iter().any(|a| a.starts_with("--controllers")));
        l.lean = Some(Lean::for_objects([("apps/v1", "Deployment")], true));
        let a = kube_apiserver(&l, Path::new("/bin/x")).args;
        assert!(
            a.iter().any(|f| f.starts_with("--runtime-config=api/all=false,") && f.contains("apps/v1=true")),
            "{a:?}"
        );
        let c = kube_controller_manager(&l, Path::new("/bin/x")).args;
        assert!(c.iter().any(|f| f.starts_with("--controllers=") && f.contains("deployment-controller")), "{c:?}");
        // Every resource keeps its watch cache (lean.rs says why).
        assert!(!a.iter().any(|f| f.starts_with("--watch-cache-sizes")), "{a:?}");
    }

    #[test]
    fn every_go_process_of_the_control_plane_but_kine_collects_at_the_same_gogc() {
        for c in control_plane(&layout(SchedulerMode::KubeScheduler), &programs()) {
            let gogc = c.env.contains(&("GOGC".into(), GO_GC_PERCENT.to_string()));
            assert_eq!(gogc, c.name != "kine", "{}: {:?}", c.name, c.env);
        }
    }

    #[test]
    fn kine_waits_for_its_lock_longer_than_any_request() {
        let l = layout(SchedulerMode::KubeScheduler);
        let value = |args: &[String], prefix: &str| {
            args.iter().find_map(|a| a.strip_prefix(prefix)).map(str::to_owned).expect(prefix)
        };
        let dsn = value(&kine(&l, Path::new("/bin/x")).args, "--endpoint=");
        let busy_ms: u64 = dsn.split("_busy_timeout=").nth(1).unwrap().split('&').next().unwrap().parse().unwrap();
        let timeout = value(&kube_apiserver(&l, Path::new("/bin/x")).args, "--request-timeout=");
        let request_ms = 1000 * timeout.strip_suffix('s').unwrap().parse::<u64>().unwrap();
        assert!(busy_ms > request_ms, "busy timeout {busy_ms} ms must outlast requests of {request_ms} ms");
        assert!(!dsn.contains("cache=shared"), "{dsn}");
        let pool = value(&kine(&l, Path::new("/bin/x")).args, "--datastore-max-open-connections=");
        assert!(pool.parse::<u32>().unwrap() > 0, "an unbounded pool queues writers in SQLite's busy handler");
    }

    #[test]
    fn kine_reports_an_etcd_the_apiserver_requests_no_watch_progress_from() {
        let l = layout(SchedulerMode::KubeScheduler);
        let args = kine(&l, Path::new("/bin/x")).args;
        let reported =
            args.iter().find_map(|a| a.strip_prefix("--emulated-etcd-version=")).expect("a reported version");
        // The apiserver's rule: RequestWatchProgress only from >= 3.5.13 (3.4.31 on 3.4).
        let v: Vec<u32> = reported.split('.').map(|p| p.parse().unwrap()).collect();
        assert_eq!(v.len(), 3, "{reported}");
        let (major, minor, patch) = (v[0], v[1], v[2]);
        let progress = (major, minor) > (3, 5)
            || (major, minor) == (3, 5) && patch >= 13
            || (major, minor) == (3, 4) && patch >= 31;
        assert!(!progress, "kine reporting etcd {reported} lets the apiserver request watch progress");
    }

    #[test]
    fn scheduler_packs_with_most_allocated() {
        let s = kube_scheduler(&layout(SchedulerMode::KubeScheduler), Path::new("/bin/x"));
        let (path, body) = &s.files[0];
        assert!(s.args.contains(&format!("--config={}", path.display())));
        let v: serde_yaml_ng::Value = serde_yaml_ng::from_str(body).unwrap();
        let fit = &v["profiles"][0]["pluginConfig"][0];
        assert_eq!(fit["name"], "NodeResourcesFit");
        assert_eq!(fit["args"]["scoringStrategy"]["type"], "MostAllocated");
        assert_eq!(v["leaderElection"]["leaderElect"], false);
        assert!(s.args.contains(&"--feature-gates=SchedulerAsyncAPICalls=true".to_string()), "{:?}", s.args);
    }

    /// The Stage documents kwok gets in `mode`, parsed.
    fn stages(mode: KwokMode) -> Vec<serde_yaml_ng::Value> {
        let mut l = layout(SchedulerMode::KubeScheduler);
        l.kwok_mode = mode;
        let k = kwok(&l, Path::new("/bin/x"));
        k.files[0].1.split("\n---\n").map(|d| serde_yaml_ng::from_str(d).unwrap()).collect()
    }

    fn stage<'a>(docs: &'a [serde_yaml_ng::Value], name: &str) -> &'a serde_yaml_ng::Value {
        docs.iter().find(|d| d["metadata"]["name"] == name).unwrap_or_else(|| panic!("no stage {name}"))
    }

    #[test]
    fn faithful_stages_write_what_a_kubelet_writes() {
        let docs = stages(KwokMode::Faithful);
        assert_eq!(docs.len(), KWOK_FAITHFUL_STAGES.len() + 1);
        let names: std::collections::BTreeSet<_> =
            docs.iter().map(|d| d["metadata"]["name"].as_str().unwrap()).collect();
        assert_eq!(names.len(), docs.len(), "stage names are unique: {names:?}");
        // A Pod reaches Running in three status writes, each with its event, as a kubelet's.
        let events: Vec<_> = ["pod-create", "pod-sandbox", "pod-ready"]
            .iter()
            .map(|n| stage(&docs, n)["spec"]["next"]["event"]["reason"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(events, ["Pulled", "Created", "Started"]);
        assert!(
            stage(&docs, "pod-ready")["spec"]["next"]["statusTemplate"].as_str().unwrap().contains("phase: Running")
        );
        // A deleted Pod is stopped in three writes (the first with its event, the last its
        // terminal phase) before kwok deletes it.
        assert_eq!(stage(&docs, "pod-terminating")["spec"]["next"]["event"]["reason"], "Killing");
        assert!(
            stage(&docs, "pod-terminate")["spec"]["next"]["statusTemplate"].as_str().unwrap().contains("terminated")
        );
        assert!(stage(&docs, "pod-stopped")["spec"]["next"]["statusTemplate"].as_str().unwrap().contains("Succeeded"));
        assert_eq!(stage(&docs, "pod-delete")["spec"]["next"]["delete"], true);
        // Node status every 5 min (a kubelet's nodeStatusReportFrequency), not fast's 10.
        let delay = |d: &[serde_yaml_ng::Value], n: &str| stage(d, n)["spec"]["delay"]["durationMilliseconds"].as_u64();
        assert_eq!(delay(&docs, "node-heartbeat-with-lease"), Some(300_000));
        assert_eq!(delay(&stages(KwokMode::Fast), "node-heartbeat-with-lease"), Some(600_000));
    }

    #[test]
    fn kwok_gets_every_stage_and_the_annotation_selector() {
        let k = kwok(&layout(SchedulerMode::KubeScheduler), Path::new("/bin/x"));
        let docs: Vec<serde_yaml_ng::Value> =
            k.files[0].1.split("\n---\n").map(|d| serde_yaml_ng::from_str(d).unwrap()).collect();
        assert_eq!(docs.len(), KWOK_FAST_STAGES.len());
        assert!(docs.iter().all(|d| d["kind"] == "Stage"));
        assert!(k.args.contains(&"--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake".to_string()));
    }
}

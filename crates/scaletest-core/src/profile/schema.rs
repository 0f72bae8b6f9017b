//! The profile's types: what each key of `profiles/*.yaml` means and its default.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{
    BINDING_LATENCY_METRIC, SLO_WINDOW, SUT_ACKNOWLEDGE_DURATION_METRIC, SUT_CYCLE_DURATION_METRIC,
    SUT_ROLLUP_DURATION_METRIC, Sut, TIME_TO_CAPACITY_METRIC,
};
use crate::quantity;

/// One `profiles/<name>.yaml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Profile {
    /// Equals the file stem when loaded from a file; becomes part of the run id.
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub kwok: Kwok,
    #[serde(default)]
    pub harness: Harness,
    pub load_profile: LoadProfile,
    #[serde(default)]
    pub sut: Sut,
    /// The run fails if any of these fails. Absent: the defaults for the profile's SUT
    /// ([`Profile::slos`]). Present: replaces them (copy them in to keep them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slos: Option<Vec<Slo>>,
    pub cost_estimate: CostEstimate,
    #[serde(default)]
    pub durations: Durations,
    /// Faults injected during the soak (failover runs). Absent: none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub faults: Vec<Fault>,
}

/// How many simulated clusters the run starts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Kwok {
    /// Simulated clusters (each: its own apiserver, scheduler, kwok, load-driver). >= 1.
    pub cluster_count: u32,
    /// How many fake Nodes one kwok controller should manage. Unset: one kwok controller
    /// per simulated cluster manages all of its Nodes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nodes_per_controller: Option<u32>,
    /// How closely kwok plays the kubelet: `fast` (one status write per Pod) or
    /// `faithful` (a kubelet's writes, events and watches; results/fidelity.md).
    #[serde(default)]
    pub mode: KwokMode,
}

/// How kwok plays each fake Node's kubelet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum KwokMode {
    /// One status write per Pod transition, Node status every ~10 min, three watches in all.
    #[default]
    Fast,
    /// A kubelet's multi-step Pod status with events, Node status every ~5 min, and each
    /// Node's kubelet + kube-proxy watch set opened by the supervisor's node agents.
    Faithful,
}

impl KwokMode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Fast => "fast",
            Self::Faithful => "faithful",
        }
    }
}

impl fmt::Display for KwokMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How each simulated cluster is put together.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct Harness {
    pub scheduler: Scheduler,
    /// Pods per fake Node (the density model: Allocatable = density × the per-Pod need). 1..=1000.
    pub density: u32,
    pub apiserver_limits: ApiserverLimits,
    /// Binding workers of pod-shim; only used with `scheduler: pod-shim`. >= 1.
    pub binder_workers: u32,
    /// Who makes the Nodes Pods land on.
    pub nodes: NodeSource,
    /// What the simulated control plane serves and runs. Unset: `lean` for the reference
    /// SUT (what it uses is known), `full` for a user's controller ([`Profile::control_plane`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub control_plane: Option<ControlPlane>,
}

impl Harness {
    pub const DEFAULT_DENSITY: u32 = crate::density::DEFAULT_PODS_PER_NODE;
    pub const MAX_DENSITY: u32 = 1000;
    pub const DEFAULT_BINDER_WORKERS: u32 = 16;
}

impl Default for Harness {
    fn default() -> Self {
        Self {
            scheduler: Scheduler::default(),
            density: Self::DEFAULT_DENSITY,
            apiserver_limits: ApiserverLimits::default(),
            binder_workers: Self::DEFAULT_BINDER_WORKERS,
            nodes: NodeSource::default(),
            control_plane: None,
        }
    }
}

/// Who makes Nodes: the harness's node-creator, from the UpcomingNodes a SUT publishes
/// (the CapacityRequest contract), or the SUT itself (an autoscaler's kwok provider,
/// e.g. Karpenter's), whose Nodes carry `kwok.x-k8s.io/node: fake` so kwok runs them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NodeSource {
    #[default]
    NodeCreator,
    Sut,
}

impl NodeSource {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NodeCreator => "node-creator",
            Self::Sut => "sut",
        }
    }
}

impl fmt::Display for NodeSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What binds Pods to fake Nodes: a real kube-scheduler, or the legacy harness binder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Scheduler {
    /// A real kube-scheduler with NodeResourcesFit / MostAllocated.
    #[default]
    KubeScheduler,
    /// The legacy harness binder.
    PodShim,
}

impl Scheduler {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::KubeScheduler => "kube-scheduler",
            Self::PodShim => "pod-shim",
        }
    }
}

impl fmt::Display for Scheduler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a simulated control plane serves and runs. Everything a system under test can
/// see differently is here, so `full` is the faithful setting and `lean` a profile's choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum ControlPlane {
    /// Every built-in API group and kube-controller-manager controller, as a real cluster.
    Full,
    /// Only the API groups and controllers the chain and the profile's objects need; the
    /// rest is neither served (API discovery lists less) nor run. Less memory per cluster:
    /// results/bench/README.md, `scripts/footprint.py`.
    Lean,
}

impl ControlPlane {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Full => "full",
            Self::Lean => "lean",
        }
    }
}

impl fmt::Display for ControlPlane {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The simulated apiservers' request limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum ApiserverLimits {
    /// kube-apiserver's own defaults (priority and fairness on).
    #[default]
    Default,
    /// No in-flight limits: measures the system under test, not apiserver throttling.
    Unlimited,
}

impl ApiserverLimits {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Default => "default",
            Self::Unlimited => "unlimited",
        }
    }

    /// Extra kube-apiserver flags. A zero in-flight limit means "no limit" only with
    /// priority and fairness off (with it on, the two limits are summed and must be > 0).
    pub fn apiserver_flags(self) -> &'static [&'static str] {
        match self {
            Self::Default => &[],
            Self::Unlimited => &[
                "--max-requests-inflight=0",
                "--max-mutating-requests-inflight=0",
                "--enable-priority-and-fairness=false",
            ],
        }
    }
}

impl fmt::Display for ApiserverLimits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the load-driver creates in every simulated cluster, and when.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LoadProfile {
    #[serde(default)]
    pub kind: ObjectKind,
    /// The object count every cluster reaches and holds (the steady-state target). >= 1.
    pub objects_per_cluster: u64,
    /// Namespaces the objects are spread over. >= 1.
    #[serde(default = "LoadProfile::default_namespaces")]
    pub namespaces: u32,
    /// Per-Pod requests (the Pods' requests, or a CapacityRequest's per-Pod need).
    #[serde(default)]
    pub pod: PodResources,
    /// Manifest template; required iff `kind: manifest`. Written relative to the profile
    /// file; [`parse_str`] and [`load`] resolve it against the profile's directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<PathBuf>,
    /// Seed of the load-driver's rand_chacha generator: same seed, same run.
    #[serde(default = "LoadProfile::default_seed")]
    pub seed: u64,
    /// The load-driver's client-side rate limit (requests/s) per cluster. > 0.
    #[serde(default = "LoadProfile::default_qps")]
    pub qps: f64,
    /// The load-driver's client-side burst per cluster. >= 1.
    #[serde(default = "LoadProfile::default_burst")]
    pub burst: u32,
    /// Run in order; the first one must create objects (ramp or burst).
    #[serde(with = "serde_yaml_ng::with::singleton_map_recursive")]
    pub phases: Vec<Phase>,
}

impl LoadProfile {
    pub const DEFAULT_NAMESPACES: u32 = 1;
    pub const DEFAULT_SEED: u64 = 1;
    pub const DEFAULT_QPS: f64 = 50.0;
    pub const DEFAULT_BURST: u32 = 100;

    fn default_namespaces() -> u32 {
        Self::DEFAULT_NAMESPACES
    }
    fn default_seed() -> u64 {
        Self::DEFAULT_SEED
    }
    fn default_qps() -> f64 {
        Self::DEFAULT_QPS
    }
    fn default_burst() -> u32 {
        Self::DEFAULT_BURST
    }
}

/// The objects the load-driver creates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ObjectKind {
    /// Pods that no Node fits yet: the full chain through the scheduler.
    #[default]
    Pods,
    /// CapacityRequests directly: skips the scheduler and the unschedulable-pod controller.
    CapacityRequests,
    /// Objects rendered from `loadProfile.template`.
    Manifest,
}

impl ObjectKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pods => "pods",
            Self::CapacityRequests => "capacityRequests",
            Self::Manifest => "manifest",
        }
    }
}

impl fmt::Display for ObjectKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Per-Pod resource requests, as Kubernetes quantities.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct PodResources {
    #[serde(deserialize_with = "quantity_string::deserialize")]
    pub cpu: String,
    #[serde(deserialize_with = "quantity_string::deserialize")]
    pub memory: String,
}

impl PodResources {
    pub const DEFAULT_CPU: &str = "100m";
    pub const DEFAULT_MEMORY: &str = "128Mi";

    pub fn cpu_millis(&self) -> Result<u64, quantity::QuantityError> {
        quantity::parse_cpu_millis(&self.cpu)
    }

    pub fn memory_bytes(&self) -> Result<u64, quantity::QuantityError> {
        quantity::parse_memory_bytes(&self.memory)
    }
}

impl Default for PodResources {
    fn default() -> Self {
        Self { cpu: Self::DEFAULT_CPU.to_owned(), memory: Self::DEFAULT_MEMORY.to_owned() }
    }
}

/// One step of the load, written as a one-key map: `- ramp: {rate: 50}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Phase {
    Ramp(RampPhase),
    Steady(SteadyPhase),
    Burst(BurstPhase),
}

impl Phase {
    /// The YAML key of this phase.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Ramp(_) => "ramp",
            Self::Steady(_) => "steady",
            Self::Burst(_) => "burst",
        }
    }
}

/// Create objects at `rate` per second (per cluster) until the cluster holds
/// `objectsPerCluster`. The load-driver's `qps`/`burst` still cap the request rate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RampPhase {
    /// Objects per second per cluster. > 0.
    pub rate: f64,
}

/// Hold the object count for `duration`; every `churnInterval`, delete and recreate
/// `churnPercent` % of the cluster's objects.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SteadyPhase {
    #[serde(with = "duration_string")]
    pub duration: Duration,
    /// 0..=100.
    #[serde(default)]
    pub churn_percent: f64,
    #[serde(with = "duration_string", default = "SteadyPhase::default_churn_interval")]
    pub churn_interval: Duration,
}

impl SteadyPhase {
    pub const DEFAULT_CHURN_INTERVAL: Duration = Duration::from_secs(10);

    fn default_churn_interval() -> Duration {
        Self::DEFAULT_CHURN_INTERVAL
    }
}

/// Create `count` objects per cluster at once (as fast as `qps`/`burst` allow): the
/// thundering herd.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct BurstPhase {
    /// 1..=objectsPerCluster.
    pub count: u64,
}

/// One entry of `faults`: hit one component of some (default: every) simulated cluster
/// at an offset into the soak (`at`) or periodically (`every`).
///
/// ```yaml
/// faults:
///   - {at: 30s, target: sut, action: kill}
///   - {every: 10m, target: kube-apiserver, action: stop, for: 15s, clusters: [0, 1]}
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Fault {
    /// Offset from the start of the soak; less than `durations.soak`.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "option_duration_string")]
    pub at: Option<Duration>,
    /// Interval: first at `every`, then every `every` while the soak lasts.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "option_duration_string")]
    pub every: Option<Duration>,
    pub target: FaultTarget,
    pub action: FaultAction,
    /// How long `action: stop` holds the component stopped (SIGSTOP, then SIGCONT).
    #[serde(rename = "for", default, skip_serializing_if = "Option::is_none", with = "option_duration_string")]
    pub hold: Option<Duration>,
    /// Indices (0-based) of the simulated clusters to hit. Absent: all of them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clusters: Option<Vec<u32>>,
}

impl Fault {
    /// Whether the fault hits cluster `index`.
    pub fn hits(&self, index: u32) -> bool {
        self.clusters.as_ref().is_none_or(|c| c.contains(&index))
    }
}

/// A component of a simulated cluster that a fault can hit (its supervisor's child name).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FaultTarget {
    Sut,
    KubeApiserver,
    Kine,
    KubeControllerManager,
    KubeScheduler,
    Kwok,
    NodeCreator,
    PodShim,
    LoadDriver,
}

impl FaultTarget {
    pub const ALL: [Self; 9] = [
        Self::Sut,
        Self::KubeApiserver,
        Self::Kine,
        Self::KubeControllerManager,
        Self::KubeScheduler,
        Self::Kwok,
        Self::NodeCreator,
        Self::PodShim,
        Self::LoadDriver,
    ];

    /// The component name, as the supervisor and `endpoints.json` spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sut => "sut",
            Self::KubeApiserver => "kube-apiserver",
            Self::Kine => "kine",
            Self::KubeControllerManager => "kube-controller-manager",
            Self::KubeScheduler => "kube-scheduler",
            Self::Kwok => "kwok",
            Self::NodeCreator => "node-creator",
            Self::PodShim => "pod-shim",
            Self::LoadDriver => "load-driver",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == name)
    }

    /// The scheduler mode this component only runs in, if any.
    pub fn needs_scheduler(self) -> Option<Scheduler> {
        match self {
            Self::KubeScheduler | Self::NodeCreator => Some(Scheduler::KubeScheduler),
            Self::PodShim => Some(Scheduler::PodShim),
            _ => None,
        }
    }
}

impl fmt::Display for FaultTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a fault does to its target's process group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FaultAction {
    /// SIGKILL: a crash. The supervisor restarts it.
    Kill,
    /// SIGSTOP for `for`, then SIGCONT: a hang (GC pause, frozen VM, partition).
    Stop,
    /// SIGTERM: a graceful restart (rollout). The supervisor starts it again.
    Restart,
}

impl FaultAction {
    pub const ALL: [Self; 3] = [Self::Kill, Self::Stop, Self::Restart];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Kill => "kill",
            Self::Stop => "stop",
            Self::Restart => "restart",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == name)
    }
}

impl fmt::Display for FaultAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A pass/fail check on one PromQL value at the end of the soak.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Slo {
    /// Key in `summary.json`'s metrics: letters, digits and `_`, starting with a letter.
    pub name: String,
    /// A PromQL expression evaluating to one sample; `$window` stands for the run's length.
    pub query: String,
    pub threshold: f64,
    #[serde(default)]
    pub comparison: Comparison,
}

impl Slo {
    /// Whether `value` meets the SLO; bounds are inclusive and NaN never passes.
    pub fn passes(&self, value: f64) -> bool {
        match self.comparison {
            Comparison::Below => value <= self.threshold,
            Comparison::Above => value >= self.threshold,
        }
    }
}

/// Which side of the threshold passes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Comparison {
    /// Passes when value <= threshold (latencies).
    #[default]
    Below,
    /// Passes when value >= threshold (throughputs).
    Above,
}

/// The up-front cost estimate, as if run on AWS spot (seed cost model: c6i spot at
/// $0.20–0.30 per vCPU-hour plus $0.10/h for the EKS control plane).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CostEstimate {
    /// Everything the run needs, per hour, in USD. >= 0.
    pub aws_spot_usd_per_hour: f64,
    /// The vCPUs that rate pays for. > 0.
    pub vcpu: f64,
    /// The memory (GB) that rate pays for. > 0.
    pub memory_gb: f64,
    /// Typical length of a whole run (install to teardown), in hours; what the estimate
    /// uses when no run duration is given. > 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hours: Option<f64>,
}

/// How long the runner waits and soaks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct Durations {
    /// Soak after steady state (the runner's `--duration` overrides it). > 0.
    #[serde(with = "duration_string")]
    pub soak: Duration,
    /// Give up when not every cluster reports its target object count by then. > 0.
    #[serde(with = "duration_string")]
    pub steady_state_timeout: Duration,
}

impl Durations {
    pub const DEFAULT_SOAK: Duration = Duration::from_secs(2 * 60);
    pub const DEFAULT_STEADY_STATE_TIMEOUT: Duration = Duration::from_secs(10 * 60);
}

impl Default for Durations {
    fn default() -> Self {
        Self { soak: Self::DEFAULT_SOAK, steady_state_timeout: Self::DEFAULT_STEADY_STATE_TIMEOUT }
    }
}

/// `histogram_quantile(0.99, ...)` over the `_bucket` series of `histogram`, summed over
/// every series (all clusters), over the run ([`SLO_WINDOW`]).
pub fn p99_query(histogram: &str) -> String {
    format!("histogram_quantile(0.99, sum(rate({histogram}_bucket[{SLO_WINDOW}])) by (le))")
}

/// The seed's pass/fail table, mapped to the metrics our components export.
pub fn default_slos() -> Vec<Slo> {
    [
        ("shardCycleDurationP99Seconds", SUT_CYCLE_DURATION_METRIC, 0.1),
        ("operatorRollupP99Seconds", SUT_ROLLUP_DURATION_METRIC, 1.0),
        ("acknowledgeP99Seconds", SUT_ACKNOWLEDGE_DURATION_METRIC, 12.0),
        ("internalBindingLatencyP99Seconds", BINDING_LATENCY_METRIC, 20.0),
    ]
    .into_iter()
    .map(|(name, histogram, threshold)| Slo {
        name: name.to_owned(),
        query: p99_query(histogram),
        threshold,
        comparison: Comparison::Below,
    })
    .collect()
}

/// What an external controller is judged by when its profile names no SLOs: the
/// harness's own measurements, which need nothing from the controller's metrics.
pub fn default_external_slos() -> Vec<Slo> {
    [
        ("internalBindingLatencyP99Seconds", BINDING_LATENCY_METRIC, 20.0),
        ("timeToCapacityP99Seconds", TIME_TO_CAPACITY_METRIC, 20.0),
    ]
    .into_iter()
    .map(|(name, histogram, threshold)| Slo {
        name: name.to_owned(),
        query: p99_query(histogram),
        threshold,
        comparison: Comparison::Below,
    })
    .collect()
}

// ---------------------------------------------------------------------------------------
// serde helpers
// ---------------------------------------------------------------------------------------

/// `Duration` as a humantime string: "30s", "2m", "1h 30m".
pub(super) mod duration_string {
    use std::fmt;
    use std::time::Duration;

    use serde::{Deserializer, Serializer, de};

    const EXPECTED: &str = "a duration such as \"30s\", \"2m\" or \"1h30m\"";

    pub fn serialize<S: Serializer>(value: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&humantime::format_duration(*value))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        deserializer.deserialize_str(Visitor)
    }

    struct Visitor;

    impl de::Visitor<'_> for Visitor {
        type Value = Duration;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(EXPECTED)
        }

        fn visit_str<E: de::Error>(self, text: &str) -> Result<Duration, E> {
            humantime::parse_duration(text)
                .map_err(|err| E::custom(format_args!("invalid value: string {text:?} ({err}), expected {EXPECTED}")))
        }
    }
}

/// `Option<Duration>` as an optional humantime string (absent = `None`).
mod option_duration_string {
    use std::time::Duration;

    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &Option<Duration>, serializer: S) -> Result<S::Ok, S::Error> {
        match value {
            Some(d) => super::duration_string::serialize(d, serializer),
            None => serializer.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Duration>, D::Error> {
        super::duration_string::deserialize(deserializer).map(Some)
    }
}

/// A Kubernetes quantity written as a string or a bare YAML number (`cpu: 1`).
pub(super) mod quantity_string {
    use std::fmt;

    use serde::{Deserializer, de};

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
        deserializer.deserialize_any(Visitor)
    }

    struct Visitor;

    impl de::Visitor<'_> for Visitor {
        type Value = String;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a Kubernetes quantity such as \"100m\" or \"128Mi\"")
        }

        fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
            Ok(v.to_owned())
        }

        fn visit_u64<E: de::Error>(self, v: u64) -> Result<String, E> {
            Ok(v.to_string())
        }

        fn visit_i64<E: de::Error>(self, v: i64) -> Result<String, E> {
            Ok(v.to_string())
        }

        fn visit_f64<E: de::Error>(self, v: f64) -> Result<String, E> {
            Ok(v.to_string())
        }
    }
}

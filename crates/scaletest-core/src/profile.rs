//! The `profiles/*.yaml` schema, its loading and its validation.
//!
//! A profile says what a run simulates (`kwok`, `harness`), how it loads the system under
//! test (`loadProfile`), which system that is (`sut`), what the run must meet (`slos`),
//! what it costs on AWS spot (`costEstimate`) and which components fail mid-soak
//! (`faults`). Keys are camelCase; unknown keys are errors.
//!
//! [`load`] / [`parse_str`] parse a profile and then check it with [`Profile::validate`].
//! Every error prints on one line and names the file, the field path and the form
//! expected, e.g.
//! `profiles/x.yaml: loadProfile.objectsPerCluster: expected a positive integer, found 0`.
//!
//! ```yaml
//! name: smoke
//! kwok: {clusterCount: 1}
//! loadProfile:
//!   kind: pods
//!   objectsPerCluster: 200
//!   phases:
//!     - ramp: {rate: 50}
//!     - steady: {duration: 30s, churnPercent: 10, churnInterval: 10s}
//! costEstimate: {awsSpotUsdPerHour: 0.95, vcpu: 3.4, memoryGb: 10.5}
//! ```

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::quantity;

/// Environment variable that carries the simulated cluster's kubeconfig path to a
/// user-supplied system under test ([`Sut::Command`]).
pub const SUT_KUBECONFIG_ENV: &str = "SCALETEST_KUBECONFIG";

/// Placeholder for the range of an SLO query (`rate(x[$window])`): the runner puts the
/// whole run in its place, so a verdict covers every observation of the run, and a
/// soak longer than a fixed window cannot leave a rare event's histogram without data.
pub const SLO_WINDOW: &str = "$window";

/// Longest profile name. Run ids are `YYYYMMDD-HHMMSS-<name>` (16 + name characters) and
/// end up in the `scaletest-run` label, whose values are at most 63 characters.
pub const MAX_NAME_LEN: usize = 47;

/// Histograms the default SLOs read (base names; the queries use their `_bucket` series).
pub const SUT_CYCLE_DURATION_METRIC: &str = "scaletest_sut_cycle_duration_seconds";
pub const SUT_ROLLUP_DURATION_METRIC: &str = "scaletest_sut_rollup_duration_seconds";
pub const SUT_ACKNOWLEDGE_DURATION_METRIC: &str = "scaletest_sut_acknowledge_duration_seconds";
pub const BINDING_LATENCY_METRIC: &str = "scaletest_load_driver_binding_latency_seconds";

/// Profile files are the `*.yaml` / `*.yml` files of a directory.
const PROFILE_EXTENSIONS: [&str; 2] = ["yaml", "yml"];

// ---------------------------------------------------------------------------------------
// Schema
// ---------------------------------------------------------------------------------------

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
    /// The run fails if any of these fails. Absent: [`default_slos`]. Present: replaces
    /// the defaults (copy them in to keep them and add your own).
    #[serde(default = "default_slos")]
    pub slos: Vec<Slo>,
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
}

/// How each simulated cluster is put together.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct Harness {
    pub scheduler: Scheduler,
    /// Pods per fake Node (ADR-0022's density model). 1..=1000.
    pub density: u32,
    pub apiserver_limits: ApiserverLimits,
    /// Binding workers of pod-shim; only used with `scheduler: pod-shim`. >= 1.
    pub binder_workers: u32,
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
        }
    }
}

/// What binds Pods to fake Nodes (ADR-0023).
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

/// The system under test: the project's reference controller, or the user's own.
///
/// YAML: `sut: {reference: {...}}` or `sut: {command: [argv...], image: ...}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "SutSpec", into = "SutSpec")]
pub enum Sut {
    Reference(ReferenceSut),
    Command(CommandSut),
}

impl Default for Sut {
    fn default() -> Self {
        Self::Reference(ReferenceSut::default())
    }
}

/// The reference system under test: an unschedulable-pod controller and a provisioner
/// that acknowledges CapacityRequests and publishes UpcomingNodes after a delay.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct ReferenceSut {
    /// Between acknowledging a CapacityRequest and publishing its UpcomingNodes.
    #[serde(with = "duration_string")]
    pub provisioning_delay: Duration,
    /// CapacityRequests acknowledged in parallel. >= 1.
    pub acknowledge_concurrency: u32,
    /// Period of the provisioner's decision cycle. > 0.
    #[serde(with = "duration_string")]
    pub cycle_interval: Duration,
}

impl ReferenceSut {
    pub const DEFAULT_PROVISIONING_DELAY: Duration = Duration::from_secs(5);
    pub const DEFAULT_ACKNOWLEDGE_CONCURRENCY: u32 = 16;
    pub const DEFAULT_CYCLE_INTERVAL: Duration = Duration::from_secs(1);
}

impl Default for ReferenceSut {
    fn default() -> Self {
        Self {
            provisioning_delay: Self::DEFAULT_PROVISIONING_DELAY,
            acknowledge_concurrency: Self::DEFAULT_ACKNOWLEDGE_CONCURRENCY,
            cycle_interval: Self::DEFAULT_CYCLE_INTERVAL,
        }
    }
}

/// The user's own controller. Locally the runner starts `command` once per simulated
/// cluster with [`SUT_KUBECONFIG_ENV`] set; in kube mode the chart runs `image`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CommandSut {
    /// Program first, then its arguments. Non-empty.
    pub command: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
}

/// The YAML shape of [`Sut`]: one of `reference` or `command` (+ `image`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct SutSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    reference: Option<ReferenceSut>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    command: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    image: Option<String>,
}

impl TryFrom<SutSpec> for Sut {
    type Error = String;

    fn try_from(spec: SutSpec) -> Result<Self, String> {
        match spec {
            SutSpec { reference: Some(_), command: Some(_), .. } => {
                Err("expected either `reference` or `command`, found both".to_owned())
            }
            SutSpec { reference: Some(_), image: Some(_), .. } => {
                Err("expected `image` only with `command`, found it with `reference`".to_owned())
            }
            SutSpec { command: None, image: Some(_), .. } => {
                Err("expected `command` alongside `image`, found `image` alone".to_owned())
            }
            SutSpec { command: Some(command), image, .. } => Ok(Self::Command(CommandSut { command, image })),
            SutSpec { reference, .. } => Ok(Self::Reference(reference.unwrap_or_default())),
        }
    }
}

impl From<Sut> for SutSpec {
    fn from(sut: Sut) -> Self {
        match sut {
            Sut::Reference(reference) => Self { reference: Some(reference), ..Self::default() },
            Sut::Command(CommandSut { command, image }) => Self { command: Some(command), image, ..Self::default() },
        }
    }
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

// ---------------------------------------------------------------------------------------
// Derived numbers
// ---------------------------------------------------------------------------------------

impl Profile {
    /// Objects across every cluster at steady state.
    pub fn total_objects(&self) -> u64 {
        u64::from(self.kwok.cluster_count).saturating_mul(self.load_profile.objects_per_cluster)
    }

    /// Fake Nodes one cluster needs at steady state: ceil(objects / density).
    pub fn nodes_per_cluster(&self) -> u64 {
        self.load_profile.objects_per_cluster.div_ceil(u64::from(self.harness.density.max(1)))
    }

    /// Fake Nodes across every cluster at steady state.
    pub fn total_nodes(&self) -> u64 {
        u64::from(self.kwok.cluster_count).saturating_mul(self.nodes_per_cluster())
    }

    /// kwok controllers one cluster runs: ceil(nodes / nodesPerController), at least 1.
    pub fn kwok_controllers_per_cluster(&self) -> u64 {
        match self.kwok.nodes_per_controller {
            Some(per) if per > 0 => self.nodes_per_cluster().div_ceil(u64::from(per)).max(1),
            _ => 1,
        }
    }

    /// Estimated USD for a run lasting `run`: `costEstimate.awsSpotUsdPerHour` × hours.
    pub fn estimated_cost_usd(&self, run: Duration) -> f64 {
        self.cost_estimate.aws_spot_usd_per_hour * run.as_secs_f64() / 3600.0
    }

    /// The run length to estimate with when none is given: `costEstimate.hours`, else
    /// `durations.soak`.
    pub fn estimate_duration(&self) -> Duration {
        self.cost_estimate
            .hours
            .filter(|h| h.is_finite() && *h > 0.0)
            .map_or(self.durations.soak, |h| Duration::from_secs_f64(h * 3600.0))
    }
}

// ---------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------

/// Why a profile could not be used. Display is one line: file, field path, expectation.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    #[error("{}: cannot read profile: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: {field}: {message}", path.display())]
    Parse { path: PathBuf, field: String, message: String },
    #[error("{}: {field}: expected {expected}, found {found}", path.display())]
    Invalid { path: PathBuf, field: String, expected: String, found: String },
}

impl ProfileError {
    /// The profile file (or directory) the error is about.
    pub fn path(&self) -> &Path {
        match self {
            Self::Read { path, .. } | Self::Parse { path, .. } | Self::Invalid { path, .. } => path,
        }
    }

    /// The field path (`loadProfile.phases[1].steady.churnPercent`), if the error has one.
    pub fn field(&self) -> Option<&str> {
        match self {
            Self::Read { .. } => None,
            Self::Parse { field, .. } | Self::Invalid { field, .. } => Some(field),
        }
    }

    fn invalid(path: &Path, violation: Violation) -> Self {
        Self::Invalid {
            path: path.to_owned(),
            field: violation.field,
            expected: violation.expected,
            found: violation.found,
        }
    }
}

/// A rule of [`Profile::validate`] that a parsed profile breaks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: expected {expected}, found {found}")]
pub struct Violation {
    pub field: String,
    pub expected: String,
    pub found: String,
}

impl Violation {
    fn new(field: impl Into<String>, expected: impl Into<String>, found: impl fmt::Display) -> Self {
        Self { field: field.into(), expected: expected.into(), found: one_line(&found.to_string()) }
    }
}

// ---------------------------------------------------------------------------------------
// Loading
// ---------------------------------------------------------------------------------------

/// Reads, parses and validates one profile file.
pub fn load(path: &Path) -> Result<Profile, ProfileError> {
    let text = std::fs::read_to_string(path).map_err(|source| ProfileError::Read { path: path.to_owned(), source })?;
    parse_str(&text, path)
}

/// Loads every `*.yaml` / `*.yml` file of `dir` (not recursive), sorted by path.
pub fn load_dir(dir: &Path) -> Result<Vec<(PathBuf, Profile)>, ProfileError> {
    let read_err = |source| ProfileError::Read { path: dir.to_owned(), source };
    let mut paths = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(read_err)? {
        let path = entry.map_err(read_err)?.path();
        if path.is_file() && has_profile_extension(&path) {
            paths.push(path);
        }
    }
    paths.sort();
    paths.into_iter().map(|path| load(&path).map(|profile| (path, profile))).collect()
}

/// Parses and validates a profile read from `origin` (used in error messages).
///
/// When `origin` ends in `.yaml`/`.yml`, `name` must equal its stem. A `template` is
/// resolved against `origin`'s directory and must exist.
pub fn parse_str(text: &str, origin: &Path) -> Result<Profile, ProfileError> {
    let de = serde_yaml_ng::Deserializer::from_str(text);
    let mut profile: Profile = serde_path_to_error::deserialize(de).map_err(|err| parse_error(origin, &err))?;
    profile.validate().map_err(|v| ProfileError::invalid(origin, v))?;

    if has_profile_extension(origin)
        && let Some(stem) = origin.file_stem().and_then(|s| s.to_str())
        && profile.name != stem
    {
        return Err(ProfileError::invalid(
            origin,
            Violation::new(
                "name",
                format!("the file name without its extension ({stem:?})"),
                format!("{:?}", profile.name),
            ),
        ));
    }

    if let Some(template) = &profile.load_profile.template {
        let resolved = match origin.parent() {
            Some(dir) if template.is_relative() => dir.join(template),
            _ => template.clone(),
        };
        if !resolved.is_file() {
            return Err(ProfileError::invalid(
                origin,
                Violation::new(
                    "loadProfile.template",
                    "an existing manifest template file, relative to the profile's directory",
                    format!("{:?} (no file at {})", template, resolved.display()),
                ),
            ));
        }
        profile.load_profile.template = Some(resolved);
    }
    Ok(profile)
}

fn has_profile_extension(path: &Path) -> bool {
    path.extension().and_then(|e| e.to_str()).is_some_and(|e| PROFILE_EXTENSIONS.contains(&e))
}

fn parse_error(origin: &Path, err: &serde_path_to_error::Error<serde_yaml_ng::Error>) -> ProfileError {
    // A syntax error leaves unknown segments ("kwok.?"): keep the known prefix.
    let path = err.path().to_string();
    let mut field = path.trim_end_matches(".?").trim_matches(['.', '?']).to_owned();
    let mut message = err.inner().to_string();
    // serde_yaml_ng prefixes its own, coarser path ("loadProfile: unknown field ..."); ours
    // is in `field`. Its messages themselves never start with a space-free word and ": ".
    if let Some((head, rest)) = message.split_once(": ")
        && !head.is_empty()
        && !head.contains(char::is_whitespace)
    {
        message = rest.to_owned();
    }
    // Say serde's Rust type names in YAML terms.
    for (rust, yaml) in SERDE_TYPE_NAMES {
        message = message.replace(&format!("expected {rust} "), &format!("expected {yaml} "));
        if let Some(head) = message.strip_suffix(&format!("expected {rust}")) {
            message = format!("{head}expected {yaml}");
        }
    }
    // Point at the missing field itself rather than at the mapping that lacks it.
    if let Some(rest) = message.strip_prefix("missing field `")
        && let Some((name, tail)) = rest.split_once('`')
    {
        field = if field.is_empty() { name.to_owned() } else { format!("{field}.{name}") };
        message = format!("expected a value, found nothing (required field missing{tail})");
    }
    if field.is_empty() {
        field = "(document)".to_owned();
    }
    ProfileError::Parse { path: origin.to_owned(), field, message: one_line(&message) }
}

const SERDE_TYPE_NAMES: [(&str, &str); 5] = [
    ("f64", "a number"),
    ("u64", "a non-negative integer"),
    ("u32", "a non-negative integer"),
    ("a sequence", "a list"),
    ("a map", "a mapping"),
];

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

// ---------------------------------------------------------------------------------------
// Validation
// ---------------------------------------------------------------------------------------

const POSITIVE_INTEGER: &str = "a positive integer";
const POSITIVE_NUMBER: &str = "a positive number";
const POSITIVE_DURATION: &str = "a positive duration such as \"30s\" or \"2m\"";

impl Profile {
    /// Checks every rule that the types alone do not; returns the first violation.
    ///
    /// Does no I/O: the file-name and template checks are [`parse_str`]'s.
    pub fn validate(&self) -> Result<(), Violation> {
        validate_name(&self.name)?;
        self.validate_kwok()?;
        self.validate_harness()?;
        self.validate_load_profile()?;
        self.validate_sut()?;
        validate_slos(&self.slos)?;
        self.validate_cost()?;
        positive_duration("durations.soak", self.durations.soak)?;
        positive_duration("durations.steadyStateTimeout", self.durations.steady_state_timeout)?;
        self.validate_faults()
    }

    fn validate_kwok(&self) -> Result<(), Violation> {
        positive("kwok.clusterCount", u64::from(self.kwok.cluster_count))?;
        if let Some(per) = self.kwok.nodes_per_controller {
            positive("kwok.nodesPerController", u64::from(per))?;
        }
        Ok(())
    }

    fn validate_harness(&self) -> Result<(), Violation> {
        let density = self.harness.density;
        if !(1..=Harness::MAX_DENSITY).contains(&density) {
            return Err(Violation::new(
                "harness.density",
                format!("Pods per fake Node in 1..={}", Harness::MAX_DENSITY),
                density,
            ));
        }
        positive("harness.binderWorkers", u64::from(self.harness.binder_workers))
    }

    fn validate_load_profile(&self) -> Result<(), Violation> {
        let lp = &self.load_profile;
        positive("loadProfile.objectsPerCluster", lp.objects_per_cluster)?;
        positive("loadProfile.namespaces", u64::from(lp.namespaces))?;

        quantity_rule(
            "loadProfile.pod.cpu",
            "a positive CPU quantity such as \"100m\" or \"0.5\"",
            &lp.pod.cpu,
            lp.pod.cpu_millis(),
        )?;
        quantity_rule(
            "loadProfile.pod.memory",
            "a positive memory quantity such as \"128Mi\" or \"1Gi\"",
            &lp.pod.memory,
            lp.pod.memory_bytes(),
        )?;

        match (lp.kind, &lp.template) {
            (ObjectKind::Manifest, None) => {
                return Err(Violation::new(
                    "loadProfile.template",
                    "a manifest template path (kind: manifest needs one)",
                    "nothing",
                ));
            }
            (ObjectKind::Manifest, Some(t)) if t.as_os_str().is_empty() => {
                return Err(Violation::new(
                    "loadProfile.template",
                    "a manifest template path (kind: manifest needs one)",
                    "an empty path",
                ));
            }
            (kind @ (ObjectKind::Pods | ObjectKind::CapacityRequests), Some(t)) => {
                return Err(Violation::new(
                    "loadProfile.template",
                    format!("no template (only kind: manifest uses one; kind is {kind})"),
                    format!("{:?}", t.display().to_string()),
                ));
            }
            _ => {}
        }

        positive_number("loadProfile.qps", lp.qps)?;
        positive("loadProfile.burst", u64::from(lp.burst))?;
        self.validate_phases()
    }

    fn validate_phases(&self) -> Result<(), Violation> {
        let lp = &self.load_profile;
        match lp.phases.first() {
            None => {
                return Err(Violation::new(
                    "loadProfile.phases",
                    "at least one phase (ramp, steady or burst)",
                    "an empty list",
                ));
            }
            Some(Phase::Steady(_)) => {
                return Err(Violation::new(
                    "loadProfile.phases[0]",
                    "a ramp or burst phase first (a steady phase has nothing to hold yet)",
                    "steady",
                ));
            }
            Some(_) => {}
        }
        for (i, phase) in lp.phases.iter().enumerate() {
            let at = |key: &str| format!("loadProfile.phases[{i}].{}.{key}", phase.kind());
            match phase {
                Phase::Ramp(ramp) => positive_number(&at("rate"), ramp.rate)?,
                Phase::Steady(steady) => {
                    positive_duration(&at("duration"), steady.duration)?;
                    let churn = steady.churn_percent;
                    if !(churn.is_finite() && (0.0..=100.0).contains(&churn)) {
                        return Err(Violation::new(at("churnPercent"), "a percentage in 0..=100", churn));
                    }
                    positive_duration(&at("churnInterval"), steady.churn_interval)?;
                }
                Phase::Burst(burst) => {
                    if !(1..=lp.objects_per_cluster).contains(&burst.count) {
                        return Err(Violation::new(
                            at("count"),
                            format!(
                                "an object count in 1..={} (loadProfile.objectsPerCluster)",
                                lp.objects_per_cluster
                            ),
                            burst.count,
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    fn validate_sut(&self) -> Result<(), Violation> {
        match &self.sut {
            Sut::Reference(reference) => {
                positive("sut.reference.acknowledgeConcurrency", u64::from(reference.acknowledge_concurrency))?;
                positive_duration("sut.reference.cycleInterval", reference.cycle_interval)
            }
            Sut::Command(custom) => {
                match custom.command.first() {
                    None => {
                        return Err(Violation::new(
                            "sut.command",
                            "a non-empty argv list, program first",
                            "an empty list",
                        ));
                    }
                    Some(program) if program.trim().is_empty() => {
                        return Err(Violation::new("sut.command[0]", "a program name or path", format!("{program:?}")));
                    }
                    Some(_) => {}
                }
                match &custom.image {
                    Some(image) if image.trim().is_empty() => {
                        Err(Violation::new("sut.image", "a container image reference", format!("{image:?}")))
                    }
                    _ => Ok(()),
                }
            }
        }
    }

    fn validate_cost(&self) -> Result<(), Violation> {
        let cost = &self.cost_estimate;
        let rate = cost.aws_spot_usd_per_hour;
        if !(rate.is_finite() && rate >= 0.0) {
            return Err(Violation::new(
                "costEstimate.awsSpotUsdPerHour",
                "a non-negative number of US dollars per hour",
                rate,
            ));
        }
        positive_number("costEstimate.vcpu", cost.vcpu)?;
        positive_number("costEstimate.memoryGb", cost.memory_gb)?;
        if let Some(hours) = cost.hours {
            positive_number("costEstimate.hours", hours)?;
        }
        Ok(())
    }
}

impl Profile {
    /// Fault times fall within the soak (a runner `--duration` override sets
    /// `durations.soak` and validates again), each target runs in this profile.
    fn validate_faults(&self) -> Result<(), Violation> {
        let soak = self.durations.soak;
        let soak_text = humantime::format_duration(soak);
        for (i, fault) in self.faults.iter().enumerate() {
            let at = |key: &str| format!("faults[{i}].{key}");
            match (fault.at, fault.every) {
                (None, None) => {
                    return Err(Violation::new(
                        format!("faults[{i}]"),
                        "exactly one of `at` (an offset into the soak) or `every` (an interval)",
                        "neither",
                    ));
                }
                (Some(_), Some(_)) => {
                    return Err(Violation::new(
                        at("every"),
                        "exactly one of `at` (an offset into the soak) or `every` (an interval)",
                        "both",
                    ));
                }
                (Some(offset), None) => {
                    let end = offset + fault.hold.unwrap_or_default();
                    if offset >= soak || end > soak {
                        return Err(Violation::new(
                            at("at"),
                            format!("an offset within the soak (durations.soak = {soak_text}), `for` included"),
                            humantime::format_duration(offset),
                        ));
                    }
                }
                (None, Some(every)) => {
                    if every.is_zero() || every > soak {
                        return Err(Violation::new(
                            at("every"),
                            format!("a positive interval no longer than the soak (durations.soak = {soak_text})"),
                            humantime::format_duration(every),
                        ));
                    }
                }
            }
            if let Some(needs) = fault.target.needs_scheduler()
                && needs != self.harness.scheduler
            {
                return Err(Violation::new(
                    at("target"),
                    format!(
                        "a component this profile runs ({} runs only with harness.scheduler: {needs}; it is {})",
                        fault.target, self.harness.scheduler
                    ),
                    fault.target,
                ));
            }
            match (fault.action, fault.hold) {
                (FaultAction::Stop, None) => {
                    return Err(Violation::new(
                        at("for"),
                        "how long to hold the component stopped (action: stop needs it), e.g. \"10s\"",
                        "nothing",
                    ));
                }
                (FaultAction::Stop, Some(hold)) => {
                    positive_duration(&at("for"), hold)?;
                    if let Some(every) = fault.every
                        && hold >= every
                    {
                        return Err(Violation::new(
                            at("for"),
                            format!("a hold shorter than `every` ({})", humantime::format_duration(every)),
                            humantime::format_duration(hold),
                        ));
                    }
                }
                (action, Some(hold)) => {
                    return Err(Violation::new(
                        at("for"),
                        format!("no `for` (only action: stop takes one; action is {action})"),
                        humantime::format_duration(hold),
                    ));
                }
                (_, None) => {}
            }
            if let Some(clusters) = &fault.clusters {
                if clusters.is_empty() {
                    return Err(Violation::new(
                        at("clusters"),
                        "a non-empty list of cluster indices (leave it out for every cluster)",
                        "an empty list",
                    ));
                }
                let count = self.kwok.cluster_count;
                for (j, &c) in clusters.iter().enumerate() {
                    if c >= count {
                        return Err(Violation::new(
                            format!("faults[{i}].clusters[{j}]"),
                            format!("a cluster index in 0..{count} (kwok.clusterCount)"),
                            c,
                        ));
                    }
                    if clusters[..j].contains(&c) {
                        return Err(Violation::new(
                            format!("faults[{i}].clusters[{j}]"),
                            "an index not already listed",
                            c,
                        ));
                    }
                }
            }
        }
        Ok(())
    }
}

fn validate_name(name: &str) -> Result<(), Violation> {
    let dns_label = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if dns_label {
        Ok(())
    } else {
        Err(Violation::new(
            "name",
            format!("a lowercase DNS label (a-z, 0-9, '-') of 1..={MAX_NAME_LEN} characters"),
            format!("{name:?}"),
        ))
    }
}

fn validate_slos(slos: &[Slo]) -> Result<(), Violation> {
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (i, slo) in slos.iter().enumerate() {
        let mut chars = slo.name.chars();
        let identifier = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !identifier {
            return Err(Violation::new(
                format!("slos[{i}].name"),
                "letters, digits and '_', starting with a letter (a summary.json key)",
                format!("{:?}", slo.name),
            ));
        }
        if let Some(first) = seen.insert(&slo.name, i) {
            return Err(Violation::new(
                format!("slos[{i}].name"),
                "a name no other SLO uses",
                format!("{:?} (also slos[{first}].name)", slo.name),
            ));
        }
        if slo.query.trim().is_empty() {
            return Err(Violation::new(format!("slos[{i}].query"), "a PromQL expression", "an empty string"));
        }
        if !slo.threshold.is_finite() {
            return Err(Violation::new(format!("slos[{i}].threshold"), "a finite number", slo.threshold));
        }
    }
    Ok(())
}

/// A quantity that parses (the parse error itself only repeats the input) and is > 0.
fn quantity_rule(
    field: &str,
    expected: &str,
    text: &str,
    parsed: Result<u64, quantity::QuantityError>,
) -> Result<(), Violation> {
    match parsed {
        Ok(value) if value > 0 => Ok(()),
        _ => Err(Violation::new(field, expected, format!("{text:?}"))),
    }
}

fn positive(field: &str, value: u64) -> Result<(), Violation> {
    if value > 0 { Ok(()) } else { Err(Violation::new(field, POSITIVE_INTEGER, value)) }
}

fn positive_number(field: &str, value: f64) -> Result<(), Violation> {
    if value.is_finite() && value > 0.0 { Ok(()) } else { Err(Violation::new(field, POSITIVE_NUMBER, value)) }
}

fn positive_duration(field: &str, value: Duration) -> Result<(), Violation> {
    if value.is_zero() {
        Err(Violation::new(field, POSITIVE_DURATION, humantime::format_duration(value)))
    } else {
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------
// serde helpers
// ---------------------------------------------------------------------------------------

/// `Duration` as a humantime string: "30s", "2m", "1h 30m".
mod duration_string {
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
mod quantity_string {
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

// ---------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------

#[cfg(test)]
mod tests {
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
    fn minimal_profile_gets_defaults() {
        let p = minimal();
        assert_eq!(p.harness, Harness::default());
        assert_eq!(p.harness.scheduler, Scheduler::KubeScheduler);
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
        assert_eq!(p.slos, default_slos());
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
        custom.sut = Sut::Command(CommandSut {
            command: vec!["./my-controller".into(), "--fast".into()],
            image: Some("example.invalid/ctl:1".into()),
        });
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
            ("sut.command", |p| {
                p.sut = Sut::Command(CommandSut { command: vec![], image: None });
            }),
            ("sut.command[0]", |p| {
                p.sut = Sut::Command(CommandSut { command: vec![" ".into()], image: None });
            }),
            ("sut.image", |p| {
                p.sut = Sut::Command(CommandSut { command: vec!["ctl".into()], image: Some(String::new()) });
            }),
            ("slos[1].name", |p| p.slos[1].name = p.slos[0].name.clone()),
            ("slos[0].name", |p| p.slos[0].name = "p99 latency".into()),
            ("slos[0].name", |p| p.slos[0].name = "9lives".into()),
            ("slos[2].query", |p| p.slos[2].query = "  ".into()),
            ("slos[3].threshold", |p| p.slos[3].threshold = f64::INFINITY),
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
        p.slos.clear();
        p.cost_estimate.aws_spot_usd_per_hour = 0.0;
        assert_eq!(p.validate(), Ok(()));
    }

    #[test]
    fn invalid_error_is_one_line_with_file_field_and_expectation() {
        let text = MINIMAL.replace("objectsPerCluster: 250", "objectsPerCluster: 0");
        let err = parse_err(&text);
        assert_eq!(
            err.to_string(),
            "profiles/t.yaml: loadProfile.objectsPerCluster: expected a positive integer, found 0"
        );
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
                format!("{MINIMAL}sut: {{reference: {{}}, command: [x]}}\n"),
                "sut",
                "expected either `reference` or `command`, found both",
            ),
            (format!("{MINIMAL}sut: {{image: x}}\n"), "sut", "expected `command` alongside `image`"),
            (
                "name: t\nkwok: {clusterCount: 2\n".to_owned(),
                "kwok",
                "did not find expected ',' or '}' at line 3 column 1",
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
        let text = format!("{MINIMAL}sut:\n  command: [./ctl, --v=2]\n");
        let p = parse_str(&text, Path::new("t.yaml")).unwrap();
        assert_eq!(p.sut, Sut::Command(CommandSut { command: vec!["./ctl".into(), "--v=2".into()], image: None }));
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
}

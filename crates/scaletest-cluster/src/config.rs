//! Command-line configuration of `scaletest-cluster`.

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

use crate::binaries;

pub use scaletest_core::profile::{ApiserverLimits, ControlPlane, KwokMode, Scheduler as SchedulerMode};

/// Supervises one simulated Kubernetes cluster: kine, kube-apiserver,
/// kube-controller-manager, kube-scheduler and kwok, on this machine.
#[derive(Debug, Parser)]
#[command(name = "scaletest-cluster", version, about)]
pub struct ClusterArgs {
    /// Name of this simulated cluster (in logs, metrics and the endpoints file).
    #[arg(long, env = "SCALETEST_CLUSTER_NAME", default_value = "cluster-0")]
    pub name: String,

    /// 0-based index of this cluster in the run (`${clusterIndex}` for a user's
    /// controller) [default: the number that ends --name, else 0].
    #[arg(long, env = "SCALETEST_CLUSTER_INDEX")]
    pub cluster_index: Option<u32>,

    /// Directory for state, certificates, configs and logs. Default: a
    /// temporary directory that is removed at exit.
    #[arg(long, env = "SCALETEST_DATA_DIR")]
    pub data_dir: Option<PathBuf>,

    /// Where the pinned upstream binaries are (`make upstream` fills it).
    #[arg(long, env = "SCALETEST_BIN_DIR", default_value_os_t = binaries::default_bin_dir())]
    pub bin_dir: PathBuf,

    /// First of a fixed block of ports (apiserver = N, kine = N+1, …). Default: free ports.
    #[arg(long, env = "SCALETEST_PORT_BASE", value_parser = clap::value_parser!(u16).range(1..))]
    pub port_base: Option<u16>,

    /// Address health and metrics listeners bind (0.0.0.0 when scraped from outside).
    #[arg(long, env = "SCALETEST_BIND_ADDRESS", default_value = "127.0.0.1")]
    pub bind_address: std::net::IpAddr,

    /// Address advertised to metrics scrapers in the endpoints file (a pod IP in kube mode).
    #[arg(long, env = "SCALETEST_ADVERTISE_ADDRESS", default_value = "127.0.0.1")]
    pub advertise_address: std::net::IpAddr,

    /// What binds Pods [default: the profile's harness.scheduler, else kube-scheduler].
    #[arg(long, env = "SCALETEST_SCHEDULER", value_enum)]
    pub scheduler: Option<SchedulerMode>,

    /// The apiserver's request limits [default: the profile's harness.apiserverLimits, else default].
    #[arg(long, env = "SCALETEST_APISERVER_LIMITS", value_enum)]
    pub apiserver_limits: Option<ApiserverLimits>,

    /// What the control plane serves and runs: every API group and controller (full), or
    /// only what the chain and the profile's objects need (lean) [default: the profile's
    /// harness.controlPlane, else lean for the reference SUT and full for a user's; full
    /// without a profile].
    #[arg(long, env = "SCALETEST_CONTROL_PLANE", value_enum)]
    pub control_plane: Option<ControlPlane>,

    /// A scale profile: also runs its system under test and its load-driver in this cluster.
    #[arg(long, env = "SCALETEST_PROFILE")]
    pub profile: Option<PathBuf>,

    /// Pods per fake Node the reference SUT opens [default: the profile's harness.density].
    #[arg(long, env = "SCALETEST_DENSITY", value_parser = clap::value_parser!(u32).range(1..))]
    pub density: Option<u32>,

    /// Start no system under test: it runs elsewhere (a sidecar container, or
    /// one central SUT for every cluster) and reaches this apiserver itself.
    #[arg(long, env = "SCALETEST_NO_SUT")]
    pub no_sut: bool,

    /// Run id every created object is labelled with (`scaletest-run=<id>`).
    #[arg(long, env = "SCALETEST_RUN_ID", default_value = "local")]
    pub run_id: String,

    /// Hold the load-driver until this file exists (the runner creates it once
    /// every cluster is up and Prometheus scrapes them, so no load goes unmeasured).
    #[arg(long, env = "SCALETEST_LOAD_GATE")]
    pub load_gate: Option<PathBuf>,

    /// Test-only fault injection: node-creator skips every Nth UpcomingNode.
    #[arg(long, default_value_t = 0, hide = true)]
    pub node_creator_skip_every: u64,

    /// How long each component may take to become ready.
    #[arg(long, default_value = "3m", value_parser = humantime::parse_duration)]
    pub startup_timeout: Duration,

    /// Restarts of one component (within a minute of each other) before the
    /// supervisor gives up on the cluster.
    #[arg(long, default_value_t = 10)]
    pub max_restarts: u32,

    /// Test/measurement-only: an extra kube-apiserver flag, repeatable (scripts/fidelity.py
    /// turns on the audit log with it to attribute requests to clients).
    #[arg(long = "apiserver-arg", hide = true)]
    pub apiserver_args: Vec<String>,

    /// How kwok plays the kubelet [default: the profile's kwok.mode, else fast].
    #[arg(long, env = "SCALETEST_KWOK_MODE", value_enum)]
    pub kwok_mode: Option<KwokMode>,

    /// Extra DNS names or IPs for the apiserver's serving certificate.
    #[arg(long = "extra-san", value_delimiter = ',')]
    pub extra_sans: Vec<String>,
}

impl ClusterArgs {
    /// `--cluster-index`, else the trailing number of the name (`cluster-3`, or a
    /// StatefulSet Pod's `…-cluster-3`), else 0.
    pub fn cluster_index(&self) -> u32 {
        self.cluster_index.unwrap_or_else(|| {
            let digits = self.name.len() - self.name.trim_end_matches(|c: char| c.is_ascii_digit()).len();
            self.name[self.name.len() - digits..].parse().unwrap_or(0)
        })
    }
}

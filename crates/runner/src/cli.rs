//! The runner's command line.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "scaletest-runner",
    version,
    about = "Runs scaletest profiles: estimate, install, soak, verdict, teardown"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a profile end to end and write summary.json (exit 0 = passed, 1 = failed, 2 = refused, 130 = interrupted).
    Run(RunArgs),
    /// Check profiles (default: every file in profiles/).
    Validate {
        /// Profile files or directories.
        paths: Vec<PathBuf>,
    },
    /// Print a profile's scale and cost estimate.
    Estimate {
        #[arg(long)]
        profile: PathBuf,
        /// Run length to price [default: the profile's costEstimate.hours or soak].
        #[arg(long, value_parser = humantime::parse_duration)]
        duration: Option<Duration>,
    },
    /// Move a profile's baseline in results/README.md if this passing run beats it.
    Baseline {
        /// A run's summary.json.
        summary: PathBuf,
        /// The results directory holding README.md.
        #[arg(long, default_value = "results")]
        results: PathBuf,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TargetKind {
    /// Every process on this machine.
    Local,
    /// The Helm chart on a Kubernetes cluster.
    Kube,
}

impl TargetKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Local => "local",
            Self::Kube => "kube",
        }
    }
}

#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {
    #[arg(long)]
    pub profile: PathBuf,
    #[arg(long, value_enum, default_value = "local")]
    pub target: TargetKind,
    /// kubeconfig context (kube target).
    #[arg(long)]
    pub context: Option<String>,
    /// An image the chart installs, as ROLE=REPOSITORY:TAG (kube target; repeatable):
    /// harness (the combined image), sut (the SUT sidecar: the reference SUT, or the
    /// image of a profile's own controller, replacing its sut.image), prometheus.
    /// E.g. --image harness=registry.local:5000/scaletest-harness:v1
    /// [default: the chart's values: scaletest-harness:dev, scaletest-sut:dev, prom/prometheus:v2.55.0].
    #[arg(long = "image", value_name = "ROLE=REPOSITORY:TAG")]
    pub images: Vec<crate::images::ImageOverride>,
    /// A chart value for the kube target (repeatable; passed as `helm --set`), e.g.
    /// `--set sut.mode=sidecar`, `--set imagePullSecrets[0].name=regcred`,
    /// `--set cluster.resources.limits.cpu=1`. Values: charts/scaletest/values.yaml.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub chart_values: Vec<String>,
    /// Soak length [default: the profile's durations.soak].
    #[arg(long, value_parser = humantime::parse_duration)]
    pub duration: Option<Duration>,
    /// Hard cap on the whole run; teardown follows.
    #[arg(long, default_value = "2h", value_parser = humantime::parse_duration)]
    pub max_duration: Duration,
    /// Output directory [default: results/<date>-<profile>/].
    #[arg(long)]
    pub output: Option<PathBuf>,
    /// Skip the cost confirmation.
    #[arg(long)]
    pub yes: bool,
    /// Override loadProfile.seed.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Where the upstream binaries are [default: the `make upstream` cache].
    #[arg(long, env = "SCALETEST_BIN_DIR")]
    pub bin_dir: Option<PathBuf>,
    /// Test-only: every cluster's node-creator skips every Nth UpcomingNode (passed to
    /// `scaletest-cluster --node-creator-skip-every`), so the invariants have a loss to catch.
    #[arg(long, default_value_t = 0, hide = true)]
    pub node_creator_skip_every: u64,
}

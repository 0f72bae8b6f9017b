//! Where a run's clusters live: the phases of run.rs over one target, [`local`] (every
//! process on this machine) or [`kube`] (the chart on a Kubernetes cluster).

pub mod kube;
pub mod local;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use scaletest_core::profile::Profile;
use tokio_util::sync::CancellationToken;

use crate::faults::{ClusterTarget, FaultRecord};
use crate::invariants::{self, InvariantResult};
use crate::run::RunFailure;
use crate::summary::ClusterResult;

/// What every phase reads, whichever the target.
pub struct Context {
    pub run_id: String,
    pub profile: Profile,
    /// The user's profile file, for messages that point at one of its fields.
    pub profile_file: PathBuf,
    /// The effective profile (seed override included): what every cluster runs.
    pub effective: PathBuf,
    pub output: PathBuf,
    pub work: tempfile::TempDir,
    pub started: Instant,
    pub shutdown: CancellationToken,
}

/// What the run found on its clusters: the end-of-soak invariants by cluster name, the
/// faults injected by cluster index.
pub struct Findings<'a> {
    pub invariants: &'a BTreeMap<String, Vec<InvariantResult>>,
    pub faults: &'a [(u32, FaultRecord)],
}

/// The faults injected into cluster `index`.
pub fn faults_of(faults: &[(u32, FaultRecord)], index: u32) -> Vec<FaultRecord> {
    faults.iter().filter(|(ci, _)| *ci == index).map(|(_, r)| r.clone()).collect()
}

/// The end-of-soak invariants of every cluster, by name; `Err` with the one verdict when
/// the clusters could not even be listed.
pub type Checked = Result<Vec<(String, Vec<InvariantResult>)>, (String, InvariantResult)>;

/// One target's side of each phase. Run.rs calls them in this order: install, wait until
/// scraped, (the SLO queries checked,) open the load gates, wait for steady state, the
/// soak's object counts beside its faults, invariants, (evaluate,) then in the teardown
/// the report's failover rows, snapshot, cluster results, uninstall, stop.
pub trait Target {
    /// Whether a steady state never reached is explained by the invariants, checked at once.
    const INVARIANTS_EXPLAIN_A_STALL: bool;

    /// Starts every simulated cluster and the run's Prometheus.
    async fn install(&mut self, cx: &Context) -> Result<(), RunFailure>;
    /// The run's Prometheus (`127.0.0.1:PORT`), once installed.
    fn prometheus(&self) -> Option<&str>;
    /// Until Prometheus has scraped every cluster once: no load goes unmeasured.
    async fn wait_until_scraped(&self, cx: &Context, prometheus: &str) -> Result<(), RunFailure>;
    /// Lets every load-driver start.
    async fn open_load_gates(&self, cx: &Context) -> Result<(), RunFailure>;
    /// Until every cluster holds its objects, bound (bounded by the steady-state timeout).
    async fn wait_steady(&self, cx: &Context, prometheus: &str) -> Result<(), RunFailure>;
    /// Objects active now, per cluster (or in all, where only the sum is at hand).
    async fn objects_active(&self, prometheus: Option<&str>) -> Vec<f64>;
    /// Where faults are injected, by cluster.
    fn fault_targets(&self) -> Vec<ClusterTarget>;
    /// Every cluster's invariants, each allowed `settle` to hold.
    async fn invariants(&self, cx: &Context, settle: Duration, faults: &[(u32, FaultRecord)]) -> Checked;
    /// Each cluster's name, invariants and faults, in cluster order (the report's failover section).
    fn failover(&self, found: &Findings<'_>) -> Vec<(String, Vec<InvariantResult>, Vec<FaultRecord>)>;
    /// The Prometheus TSDB as `tar` (a .tar.gz); `Err` is the warning to print.
    async fn snapshot(&self, prometheus: &str, tar: &Path) -> Result<(), String>;
    /// Each cluster's entry in summary.json, read while the clusters still run.
    async fn cluster_results(&self, output: &Path, found: &Findings<'_>) -> Vec<ClusterResult>;
    /// Removes what the run installed beyond this machine: its failure fails the run.
    async fn uninstall(&mut self, _run_id: &str) -> Result<(), RunFailure> {
        Ok(())
    }
    /// The clusters running on this machine, for the teardown's line.
    fn clusters_here(&self) -> usize {
        0
    }
    /// Stops every process the run started on this machine.
    async fn stop(&mut self) {}
}

/// The verdict for a cluster the invariants could not be checked on.
pub fn unreachable(e: impl std::fmt::Display) -> InvariantResult {
    InvariantResult {
        name: invariants::PODS_BOUND.into(),
        held: false,
        detail: format!("cannot reach the cluster's apiserver: {e}"),
    }
}

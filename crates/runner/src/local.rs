//! The local target: `clusterCount` supervisors on this machine, each on its
//! own free ports and data dir, started a few at a time.

use std::path::{Path, PathBuf};
use std::time::Duration;

use futures::StreamExt;
use scaletest_cluster::launcher::{ClusterProcess, LaunchError};
use scaletest_core::endpoints::Endpoints;

/// Cold starts compete for 2 cores: a few at a time keeps each one quick.
const PARALLEL_STARTS: usize = 4;
pub const STARTUP_TIMEOUT: Duration = Duration::from_secs(300);

pub struct LocalCluster {
    pub process: ClusterProcess,
    pub endpoints: Endpoints,
}

pub fn cluster_name(i: u32) -> String {
    format!("cluster-{i}")
}

/// Starts every cluster; on the first failure the ones already up are
/// returned too (in `started`) so the caller tears them down.
/// `args` go to every supervisor (profile, run id, load gate, bin dir).
pub async fn start_all(
    supervisor: &Path,
    work: &Path,
    count: u32,
    args: &[String],
    started: &mut Vec<LocalCluster>,
) -> Result<(), LaunchError> {
    // Port layouts chosen here, one per cluster, below the ephemeral range: ports
    // each supervisor picked for itself could be taken by another cluster's outgoing
    // connections before its component bound them.
    let seed = u64::from(std::process::id()).wrapping_mul(2_654_435_761);
    let bases = scaletest_cluster::ports::bases(count, seed)?;
    let results: Vec<Result<LocalCluster, (Option<ClusterProcess>, LaunchError)>> = futures::stream::iter(0..count)
        .map(|i| {
            let mut args = args.to_vec();
            args.push(format!("--port-base={}", bases[i as usize]));
            args.push(format!("--cluster-index={i}"));
            async move {
                let name = cluster_name(i);
                let dir: PathBuf = work.join(&name);
                let mut process = ClusterProcess::spawn(supervisor, &name, &dir, &args).map_err(|e| (None, e))?;
                match process.wait_ready(STARTUP_TIMEOUT).await {
                    Ok(endpoints) => {
                        tracing::info!(cluster = %name, seconds = format!("{:.1}", endpoints.startup_seconds), "cluster ready");
                        Ok(LocalCluster { process, endpoints })
                    }
                    Err(e) => Err((Some(process), e)),
                }
            }
        })
        .buffer_unordered(PARALLEL_STARTS)
        .collect()
        .await;
    let mut first_error = None;
    for r in results {
        match r {
            Ok(c) => started.push(c),
            Err((process, e)) => {
                if let Some(p) = process {
                    let _ = p.stop(Duration::from_secs(30)).await;
                }
                first_error.get_or_insert(e);
            }
        }
    }
    started.sort_by(|a, b| a.endpoints.cluster.cmp(&b.endpoints.cluster));
    first_error.map_or(Ok(()), Err)
}

/// Stops every cluster at once (each stops its children in order).
pub async fn stop_all(clusters: Vec<LocalCluster>) {
    futures::future::join_all(clusters.into_iter().map(|c| c.process.stop(Duration::from_secs(60)))).await;
}

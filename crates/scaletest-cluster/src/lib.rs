//! `scaletest-cluster`: the supervisor of one simulated cluster. The combined
//! image's entrypoint and the unit the local mode starts N times.

pub mod apiserver_metrics;
pub mod apply;
pub mod binaries;
pub mod components;
pub mod config;
pub mod control;
pub mod crds;
pub mod harness;
pub mod launcher;
pub mod lean;
pub mod metrics;
pub mod node_agents;
pub mod pki;
pub mod ports;
pub mod probe;
pub mod process;
pub mod supervisor;
pub mod testkit;

pub use config::ClusterArgs;

/// Parses nothing: runs with already-parsed args until SIGTERM/Ctrl-C.
pub async fn run(args: ClusterArgs) -> anyhow::Result<()> {
    let shutdown = scaletest_core::shutdown::on_signals();
    supervisor::run(args, shutdown).await?;
    Ok(())
}

//! `scaletest-node-agents`: a kubelet's and a kube-proxy's watches for every kwok Node of
//! one simulated cluster (`kwok.mode: faithful`; see scaletest_cluster::node_agents).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use http::{HeaderValue, header::USER_AGENT};
use scaletest_cluster::node_agents;

#[derive(Debug, Parser)]
#[command(name = "scaletest-node-agents", version, about)]
struct Args {
    /// The simulated cluster's admin kubeconfig.
    #[arg(long)]
    kubeconfig: PathBuf,
}

async fn run(args: Args) -> anyhow::Result<()> {
    let mut config = scaletest_core::client::config_from_kubeconfig(&args.kubeconfig).await?;
    config.headers.push((USER_AGENT, HeaderValue::from_static(node_agents::USER_AGENT)));
    let client = kube::Client::try_from(config)?;
    node_agents::run(client, scaletest_core::shutdown::on_signals()).await;
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    scaletest_core::telemetry::init();
    scaletest_core::component::exit(run(Args::parse()).await)
}

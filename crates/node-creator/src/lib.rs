//! node-creator: watches UpcomingNode objects and creates one fake,
//! kwok-managed Node each (the node-creator of the kube-scheduler flow).

pub mod controller;
pub mod materialize;
pub mod metrics;

use clap::Parser;
use prometheus_client::registry::Registry;
use scaletest_core::component::{CommonArgs, ComponentRuntime};

#[derive(Debug, Parser)]
#[command(name = "scaletest-node-creator", version, about = "Turns UpcomingNodes into fake kwok Nodes")]
pub struct Args {
    #[command(flatten)]
    pub common: CommonArgs,

    /// UpcomingNodes reconciled in parallel.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..))]
    pub concurrency: u16,

    /// Test-only fault injection: skip every Nth UpcomingNode (0 = never).
    #[arg(long, default_value_t = 0, hide = true)]
    pub skip_every: u64,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let mut registry = Registry::with_prefix("scaletest_node_creator");
    let metrics = metrics::NodeMetrics::register(&mut registry);
    let rt = ComponentRuntime::start(&args.common, registry).await?;
    let options = controller::Options { concurrency: args.concurrency, skip_every: args.skip_every };
    let ready = rt.ready.clone();
    controller::run(rt.client.clone(), metrics, options, rt.shutdown.clone(), move || ready.set_ready()).await;
    rt.finish().await;
    Ok(())
}

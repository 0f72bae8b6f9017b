//! pod-shim, the legacy harness binder (kept while kube-scheduler is the default), used only when a profile
//! sets `harness.scheduler: pod-shim`. Its three jobs: UpcomingNode → Node
//! (node-creator's own code), marking Pods Unschedulable when nothing fits,
//! and binding Pods first-fit through `/binding` with a pool of workers.

pub mod binder;
pub mod fit;
pub mod metrics;
pub mod outcome;

use clap::Parser;
use prometheus_client::registry::Registry;
use scaletest_core::component::{CommonArgs, ComponentRuntime};
use scaletest_node_creator::{controller, metrics::NodeMetrics};

#[derive(Debug, Parser)]
#[command(name = "scaletest-pod-shim", version, about = "Legacy binder: Nodes for UpcomingNodes, first-fit binding")]
pub struct Args {
    #[command(flatten)]
    pub common: CommonArgs,

    /// Binder workers (concurrent /binding calls).
    #[arg(long, env = "SCALETEST_BINDER_WORKERS", default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub binder_workers: u32,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let mut registry = Registry::with_prefix("scaletest_pod_shim");
    let node_metrics = NodeMetrics::register(&mut registry);
    let binder_metrics = metrics::BinderMetrics::register(&mut registry);
    let rt = ComponentRuntime::start(&args.common, registry).await?;
    // Ready once both halves have synced.
    let (ready, synced) = (rt.ready.clone(), std::sync::Arc::new(std::sync::atomic::AtomicU8::new(0)));
    let one_synced = move || {
        if synced.fetch_add(1, std::sync::atomic::Ordering::AcqRel) == 1 {
            ready.set_ready();
        }
    };
    let nodes = controller::run(
        rt.client.clone(),
        node_metrics,
        controller::Options::default(),
        rt.shutdown.clone(),
        one_synced.clone(),
    );
    let binder =
        binder::run(rt.client.clone(), binder_metrics, args.binder_workers as usize, rt.shutdown.clone(), one_synced);
    tokio::join!(nodes, binder);
    rt.finish().await;
    Ok(())
}

//! `scaletest-sut`: the reference system under test (DESIGN §3), a stand-in
//! for a real fleet controller such as BigFleet so that every profile runs out
//! of the box. One process per simulated cluster runs:
//!
//! - [`pod_controller`]: one CapacityRequest per unschedulable Pod, owned by it;
//! - [`acknowledge`]: Pending requests → Acknowledged (or Failed when malformed),
//!   `--acknowledge-concurrency` at a time;
//! - [`provisioner`]: every `--cycle-interval`, the rollup and the [`decide`]
//!   decision; UpcomingNodes published after `--provisioning-delay`; requests
//!   Fulfilled once their fake Nodes exist ([`requests`]: and provided for
//!   again if their Pod stays unschedulable `--reprovision-after` that).
//!
//! All state that matters lives in the apiserver (request statuses and the
//! UpcomingNodes' own records, see [`ledger`]), so a restart neither repeats
//! nor forgets work. docs/sut-contract.md is the contract for replacing it.

pub mod acknowledge;
pub mod backoff;
pub mod decide;
pub mod informers;
pub mod ledger;
pub mod metrics;
pub mod pod_controller;
pub mod provisioner;
pub mod requests;
pub mod shape;

use std::time::Duration;

use clap::Parser;
use kube::Resource;
use kube::runtime::reflector::{self, Store};
use prometheus_client::registry::Registry;
use scaletest_core::component::{CommonArgs, ComponentRuntime};
use scaletest_core::profile::ReferenceSut;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::acknowledge::Acknowledger;
use crate::metrics::Metrics;
use crate::pod_controller::PodController;
use crate::provisioner::{Caches, Provisioner, Settings};

/// This component's name: its label value, field manager and metric prefix stem.
pub const NAME: &str = "scaletest-sut";
/// Field manager of every write, so `--show-managed-fields` tells ours apart.
pub const FIELD_MANAGER: &str = NAME;

#[derive(Debug, Parser)]
#[command(
    name = "scaletest-sut",
    version,
    about = "Reference system under test: unschedulable Pods → CapacityRequests → UpcomingNodes"
)]
pub struct Args {
    #[command(flatten)]
    pub common: CommonArgs,

    /// Between deciding on an UpcomingNode and publishing it: the time a real
    /// provider takes to deliver a machine.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    pub provisioning_delay: Duration,

    /// CapacityRequest status writes (and Pod reconciles) in flight at once.
    #[arg(long, default_value_t = ReferenceSut::DEFAULT_ACKNOWLEDGE_CONCURRENCY,
          value_parser = clap::value_parser!(u32).range(1..=65_535))]
    pub acknowledge_concurrency: u32,

    /// Period of the provisioning cycle (rollup + decision).
    #[arg(long, default_value = "1s", value_parser = positive_duration)]
    pub cycle_interval: Duration,

    /// Pods per UpcomingNode: Allocatable = density × the per-Pod need.
    #[arg(long, default_value_t = scaletest_core::density::DEFAULT_PODS_PER_NODE,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub density: u32,

    /// How long a Pod may stay unschedulable after its Node appeared (the
    /// scheduler gave the room to another Pod) before it gets another node.
    #[arg(long, default_value = "30s", value_parser = positive_duration)]
    pub reprovision_after: Duration,
}

fn positive_duration(s: &str) -> Result<Duration, String> {
    match humantime::parse_duration(s) {
        Ok(d) if d.is_zero() => Err("expected a positive duration, found 0".into()),
        Ok(d) => Ok(d),
        Err(e) => Err(e.to_string()),
    }
}

/// Waits for a cache's first full list; false if shut down first.
async fn synced<K>(store: &Store<K>, shutdown: &CancellationToken) -> bool
where
    K: Resource + Clone + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return false,
            r = store.wait_until_ready() => return r.is_ok(),
            // kube-runtime's readiness signal wakes only its latest waiter, and a
            // Controller waits on its own store too: ask again now and then.
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
        }
    }
}

/// Runs until SIGTERM / Ctrl-C. Every loop retries on its own; only startup errors return.
pub async fn run(args: Args) -> anyhow::Result<()> {
    let mut registry = Registry::with_prefix(metrics::PREFIX);
    let metrics = Metrics::register(&mut registry);
    let rt = ComponentRuntime::start(&args.common, registry).await?;
    let (client, shutdown) = (rt.client.clone(), rt.shutdown.clone());
    let concurrency = args.acknowledge_concurrency;
    let tasks = TaskTracker::new();

    let (requests, requests_writer) = reflector::store();
    let (nodes, nodes_writer) = reflector::store();
    let (acknowledger, queue) =
        Acknowledger::new(client.clone(), requests.clone(), concurrency as usize, metrics.clone());
    tasks.spawn(informers::capacity_requests(
        client.clone(),
        requests_writer,
        acknowledger.clone(),
        metrics.clone(),
        shutdown.clone(),
    ));
    tasks.spawn(informers::upcoming_nodes(client.clone(), nodes_writer, metrics.clone(), shutdown.clone()));
    tasks.spawn(acknowledger.clone().run(queue, shutdown.clone()));

    // The pod controller looks requests up in the cache before creating one:
    // started on a full cache, a restart does not re-create every request.
    let mut started = synced(&requests, &shutdown).await;
    if started {
        let pod_controller = PodController::new(client.clone(), requests.clone(), metrics.clone(), concurrency as u16);
        let pods = pod_controller.store();
        tasks.spawn(pod_controller.run(shutdown.clone()));
        started = synced(&nodes, &shutdown).await && synced(&pods, &shutdown).await;
        if started {
            rt.ready.set_ready();
            tracing::info!(
                provisioning_delay = ?args.provisioning_delay,
                cycle_interval = ?args.cycle_interval,
                density = args.density,
                acknowledge_concurrency = concurrency,
                reprovision_after = ?args.reprovision_after,
                "caches synced; provisioning"
            );
            let settings = Settings {
                provisioning_delay: args.provisioning_delay,
                cycle_interval: args.cycle_interval,
                density: args.density,
                reprovision_after: args.reprovision_after,
                write_concurrency: concurrency as usize,
            };
            let caches = Caches { requests, nodes, pods };
            let provisioner = Provisioner::new(client, caches, acknowledger, metrics, settings);
            tasks.spawn(provisioner.run(shutdown.clone()));
        }
    }

    shutdown.cancelled().await;
    tasks.close();
    tasks.wait().await;
    rt.finish().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_profile_schema() {
        let args = Args::try_parse_from(["scaletest-sut", "--kubeconfig", "/k"]).unwrap();
        let reference = ReferenceSut::default();
        assert_eq!(args.provisioning_delay, reference.provisioning_delay);
        assert_eq!(args.acknowledge_concurrency, reference.acknowledge_concurrency);
        assert_eq!(args.cycle_interval, reference.cycle_interval);
        assert_eq!(args.density, 100);
    }

    #[test]
    fn rejects_what_the_profile_schema_rejects() {
        for bad in [
            ["--cycle-interval", "0s"],
            ["--acknowledge-concurrency", "0"],
            ["--density", "0"],
            ["--provisioning-delay", "soon"],
        ] {
            let argv = ["scaletest-sut", "--kubeconfig", "/k", bad[0], bad[1]];
            assert!(Args::try_parse_from(argv).is_err(), "{bad:?} accepted");
        }
        let zero_delay = ["scaletest-sut", "--kubeconfig", "/k", "--provisioning-delay", "0s"];
        assert_eq!(Args::try_parse_from(zero_delay).unwrap().provisioning_delay, Duration::ZERO);
    }
}

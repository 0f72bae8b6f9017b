//! load-driver: creates a profile's objects in one simulated cluster (`loadProfile`:
//! ramp, burst, steady churn), then holds them until SIGTERM, measuring how long each
//! Pod takes to be bound (or each CapacityRequest to be acknowledged).
//!
//! - [`objects`]: pure builders of every object (names, labels, templates).
//! - [`ratelimit`]: the client-side QPS/burst token bucket.
//! - [`ops`]: one create/delete with retries; [`setup`]: namespaces, discovery, adoption.
//! - [`phases`]: the phase loop and churn selection; [`measure`]: the watch and latencies.
//! - [`status`]: the `steady_state` gauge; [`metrics`]: every metric.
//! - [`kpi`]: autoscaler KPIs from the apiserver (time to capacity, pending-Pod-seconds,
//!   Nodes against the density model's ideal, scale-ups, Node-ready latency).

pub mod audit;
pub mod kpi;
pub mod measure;
pub mod metrics;
pub mod objects;
pub mod ops;
pub mod phases;
pub mod ratelimit;
pub mod setup;
pub mod status;

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use kube::api::ApiResource;
use kube::core::GroupVersionKind;
use kube::{Api, Client};
use prometheus_client::registry::Registry;
use scaletest_core::component::{CommonArgs, ComponentRuntime};
use scaletest_core::crd::CapacityRequest;
use scaletest_core::profile::{self, LoadProfile, ObjectKind};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::measure::Tracker;
use crate::metrics::Metrics;
use crate::objects::{Blueprint, Factory, Template, Vars};
use crate::phases::{Active, Cancelled, Driver};
use crate::ratelimit::TokenBucket;
use crate::status::{Reporter, SteadyRule};

#[derive(Debug, Parser)]
#[command(name = "scaletest-load-driver", version, about = "Creates a profile's load in one simulated cluster")]
pub struct Args {
    #[command(flatten)]
    pub common: CommonArgs,

    /// Profile whose `loadProfile` to run.
    #[arg(long, env = "SCALETEST_PROFILE")]
    pub profile: PathBuf,

    /// Run id: every object is labelled `scaletest-run=<ID>` (a label value).
    #[arg(long, env = "SCALETEST_RUN_ID", default_value = "local", value_parser = parse_run_id)]
    pub run_id: String,

    /// Name of the simulated cluster (for logs).
    #[arg(long, env = "SCALETEST_CLUSTER_NAME", default_value = "cluster-0")]
    pub cluster: String,

    /// Overrides `loadProfile.seed` (which objects churn).
    #[arg(long, env = "SCALETEST_SEED")]
    pub seed: Option<u64>,

    /// Wait for this file to exist before the first phase (the runner creates it once
    /// every cluster is up and scraped, so no load goes unmeasured). Setup and the
    /// watch run before it; `/readyz` does not wait for it.
    #[arg(long, env = "SCALETEST_LOAD_GATE")]
    pub start_gate: Option<PathBuf>,
}

/// A run id must be a valid label value: it ends up on every object.
fn parse_run_id(s: &str) -> Result<String, String> {
    let ok = !s.is_empty()
        && s.len() <= 63
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && s.starts_with(|c: char| c.is_ascii_alphanumeric())
        && s.ends_with(|c: char| c.is_ascii_alphanumeric());
    if ok {
        Ok(s.to_owned())
    } else {
        Err(format!(
            "expected a label value (1..=63 of a-z, A-Z, 0-9, '-', '_', '.', alphanumeric at both ends), found {s:?}"
        ))
    }
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let mut profile = profile::load(&args.profile)?;
    if let Some(seed) = args.seed {
        profile.load_profile.seed = seed;
    }
    let load = profile.load_profile;
    // A broken template fails here, before anything starts.
    let (blueprint, manifest) = blueprint(&load, &args.run_id)?;

    let mut registry = Registry::with_prefix(metrics::PREFIX);
    let metrics = Metrics::register(&mut registry);
    let rt = ComponentRuntime::start(&args.common, registry).await?;
    let span = tracing::info_span!("load-driver", cluster = %args.cluster, run = %args.run_id);
    tracing::info!(
        parent: &span,
        profile = %profile.name,
        kind = %load.kind,
        objects = load.objects_per_cluster,
        seed = load.seed,
        "starting"
    );
    let ready = rt.ready.clone();
    let plan = Plan {
        load,
        blueprint,
        manifest,
        run_id: args.run_id,
        start_gate: args.start_gate,
        density: profile.harness.density,
    };
    drive(rt.client.clone(), plan, metrics, rt.shutdown.clone(), move || ready.set_ready()).instrument(span).await;
    rt.finish().await;
    Ok(())
}

/// What a manifest template renders to: its apiVersion/kind and the Pods each object makes.
struct ManifestShape {
    kind: GroupVersionKind,
    pods_per_object: u64,
}

/// What to create, checked before anything starts: a broken template fails here.
fn blueprint(load: &LoadProfile, run_id: &str) -> anyhow::Result<(Blueprint, Option<ManifestShape>)> {
    Ok(match load.kind {
        ObjectKind::Pods => (Blueprint::Pods(load.pod.clone()), None),
        ObjectKind::CapacityRequests => (Blueprint::CapacityRequests(load.pod.clone()), None),
        ObjectKind::Manifest => {
            let path = load.template.as_deref().context("loadProfile.template: required with kind: manifest")?;
            let template = Template::read(path)?;
            let namespace = objects::namespace_name(0);
            let sample = template.build(&Vars { name: "check-0", namespace: &namespace, index: 0, run_id }, true)?;
            let pods_per_object = objects::pods_per_object(&sample);
            let types = sample.types.unwrap_or_default();
            let kind = GroupVersionKind::try_from(&types)
                .with_context(|| format!("manifest template {}: apiVersion {:?}", path.display(), types.api_version))?;
            (Blueprint::Manifest(template), Some(ManifestShape { kind, pods_per_object }))
        }
    })
}

struct Plan {
    load: LoadProfile,
    blueprint: Blueprint,
    manifest: Option<ManifestShape>,
    run_id: String,
    start_gate: Option<PathBuf>,
    /// `harness.density`: Pods per Node, for the ideal Node count.
    density: u32,
}

/// Everything between start and shutdown; returns once `shutdown` fires.
async fn drive(
    client: Client,
    plan: Plan,
    metrics: Metrics,
    shutdown: CancellationToken,
    on_synced: impl FnOnce() + Send + 'static,
) {
    let Plan { load, blueprint, manifest, run_id, start_gate, density } = plan;
    // Nodes created from now on are the ones the system under test made for this run.
    let nodes = kpi::NodeBook::new(Timestamp::now());
    let Ok((resource, namespaced, prefix)) =
        resolve(&client, manifest.as_ref().map(|m| &m.kind), &blueprint, &metrics, &shutdown).await
    else {
        return;
    };
    let factory = Factory { blueprint, run_id: run_id.clone(), namespaces: load.namespaces, prefix, namespaced };
    metrics.objects_target.set(load.objects_per_cluster as i64);

    // Pods are watched for every kind but CapacityRequests: a manifest's workloads make Pods too.
    let selector = objects::run_selector(&run_id);
    let (tracker, rule) = match factory.blueprint {
        Blueprint::CapacityRequests(_) => {
            let tracker = Arc::new(Tracker::new(metrics.acknowledge_latency.clone(), metrics.objects_bound.clone()));
            let api: Api<CapacityRequest> = Api::all(client.clone());
            let watch = measure::watch(
                api,
                selector.clone(),
                tracker.clone(),
                metrics.clone(),
                shutdown.clone(),
                on_synced,
                |_: &_| {},
            );
            tokio::spawn(watch.in_current_span());
            (tracker, SteadyRule::EveryActiveReached)
        }
        Blueprint::Pods(_) | Blueprint::Manifest(_) => {
            let tracker = Arc::new(Tracker::new(metrics.binding_latency.clone(), metrics.objects_bound.clone()));
            let api: Api<Pod> = Api::all(client.clone());
            let tap = kpi::time_to_capacity_tap(&metrics);
            let watch = measure::watch(
                api,
                selector.clone(),
                tracker.clone(),
                metrics.clone(),
                shutdown.clone(),
                on_synced,
                tap,
            );
            tokio::spawn(watch.in_current_span());
            let rule = match &manifest {
                Some(m) => SteadyRule::EveryWatchedReached { pods_per_object: m.pods_per_object },
                None => SteadyRule::EveryActiveReached,
            };
            (tracker, rule)
        }
    };

    let watches_pods = !matches!(factory.blueprint, Blueprint::CapacityRequests(_));
    let tick = kpi::tick(tracker.clone(), watches_pods, density, metrics.clone(), shutdown.clone());
    tokio::spawn(tick.in_current_span());
    let node_watch = kpi::watch_nodes(Api::all(client.clone()), nodes, metrics.clone(), shutdown.clone());
    tokio::spawn(node_watch.in_current_span());

    let limiter = Arc::new(TokenBucket::new(load.qps, load.burst));
    let is_pods = matches!(factory.blueprint, Blueprint::Pods(_));
    if setup::ensure_namespaces(&client, &factory, is_pods, &limiter, &metrics, &shutdown).await.is_err() {
        return;
    }
    let Ok(existing) = setup::adopt(&client, &resource, &factory, &metrics, &shutdown).await else {
        return;
    };
    if !existing.is_empty() {
        tracing::info!(objects = existing.len(), "adopting the run's existing objects");
    }
    let active = Active::new(existing);

    let reporter = Reporter {
        active: active.clone(),
        factory: factory.clone(),
        tracker: tracker.clone(),
        rule,
        target: load.objects_per_cluster,
        metrics: metrics.clone(),
    };
    tokio::spawn(reporter.run(shutdown.clone()).in_current_span());

    // Manifest objects are not what the Pod watch sees: neither measured nor audited.
    let watched = rule == SteadyRule::EveryActiveReached;
    let ops =
        Arc::new(ops::Ops { client, resource, factory, limiter, tracker: watched.then(|| tracker.clone()), metrics });
    if watched {
        let auditor = audit::Auditor { active: active.clone(), tracker, ops: ops.clone() };
        tokio::spawn(auditor.run(shutdown.clone()).in_current_span());
    }
    if let Some(gate) = &start_gate
        && setup::wait_for_gate(gate, &shutdown).await.is_err()
    {
        return;
    }
    let max_in_flight = usize::try_from(load.burst).unwrap_or(usize::MAX);
    Driver::new(ops, load.objects_per_cluster, active, load.seed, max_in_flight, shutdown).run(&load.phases).await;
}

/// The API resource the blueprint's objects are, whether they are namespaced, and
/// their name prefix (a manifest's kind, lowercased). Only a manifest needs discovery.
async fn resolve(
    client: &Client,
    manifest_kind: Option<&GroupVersionKind>,
    blueprint: &Blueprint,
    metrics: &Metrics,
    shutdown: &CancellationToken,
) -> Result<(ApiResource, bool, String), Cancelled> {
    if let Some(gvk) = manifest_kind {
        let (resource, namespaced) = setup::discover(client, gvk, metrics, shutdown).await?;
        return Ok((resource, namespaced, gvk.kind.to_ascii_lowercase()));
    }
    Ok(match blueprint {
        Blueprint::CapacityRequests(_) => {
            (ApiResource::erase::<CapacityRequest>(&()), true, objects::CAPACITY_REQUEST_PREFIX.to_owned())
        }
        Blueprint::Pods(_) | Blueprint::Manifest(_) => {
            (ApiResource::erase::<Pod>(&()), true, objects::POD_PREFIX.to_owned())
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_ids_must_be_label_values() {
        for ok in ["local", "20250101-120000-smoke", "a", "A.b_c-1"] {
            assert_eq!(parse_run_id(ok).as_deref(), Ok(ok));
        }
        for bad in ["", "-x", "x-", "a b", "x/y", &"a".repeat(64)] {
            assert!(parse_run_id(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn cli_flags() {
        let args = Args::try_parse_from([
            "scaletest-load-driver",
            "--kubeconfig",
            "/k",
            "--profile",
            "p.yaml",
            "--run-id",
            "r1",
            "--cluster",
            "c3",
            "--seed",
            "9",
        ])
        .unwrap();
        assert_eq!((args.run_id.as_str(), args.cluster.as_str(), args.seed), ("r1", "c3", Some(9)));
        assert!(Args::try_parse_from(["x", "--kubeconfig", "/k", "--profile", "p", "--run-id", "a b"]).is_err());
    }
}

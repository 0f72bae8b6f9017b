//! The UpcomingNode controller (kube-runtime `Controller`): reconciles every
//! UpcomingNode into its Node, and every deleted Node back into existence
//! while its UpcomingNode lives.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Node;
use kube::runtime::controller::{Action, Config, Controller};
use kube::runtime::watcher;
use kube::{Api, Client, ResourceExt};
use scaletest_core::crd::UpcomingNode;
use tokio_util::sync::CancellationToken;

use crate::materialize::{self, MaterializeError, Outcome};
use crate::metrics::NodeMetrics;

#[derive(Clone, Debug)]
pub struct Options {
    /// UpcomingNodes reconciled in parallel.
    pub concurrency: u16,
    /// Test-only fault: skip every Nth UpcomingNode (0 = never), for good. Lets the
    /// failover invariants prove they catch a broken node-creator.
    pub skip_every: u64,
}

impl Default for Options {
    fn default() -> Self {
        Self { concurrency: 16, skip_every: 0 }
    }
}

struct Ctx {
    nodes: Api<Node>,
    upcoming: Api<UpcomingNode>,
    metrics: NodeMetrics,
    options: Options,
    skips: std::sync::Mutex<Skips>,
}

/// The `--skip-every` fault, by UpcomingNode: counting reconciles instead would skip a
/// repeat visit of one already done (harmless), and a skipped one would be made on
/// its next visit (a watch re-list), so the fault would come and go by timing.
#[derive(Default)]
pub struct Skips {
    seen: std::collections::HashSet<String>,
    skipped: std::collections::HashSet<String>,
}

impl Skips {
    /// Whether to skip `name`: every `every`th distinct name, then always that name.
    pub fn skip(&mut self, name: &str, every: u64) -> bool {
        if self.skipped.contains(name) {
            return true;
        }
        if every == 0 || !self.seen.insert(name.to_string()) {
            return false;
        }
        let skip = (self.seen.len() as u64).is_multiple_of(every);
        if skip {
            self.skipped.insert(name.to_string());
        }
        skip
    }
}

async fn reconcile(un: Arc<UpcomingNode>, ctx: Arc<Ctx>) -> Result<Action, MaterializeError> {
    if un.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let recorded = un.status.as_ref().and_then(|s| s.node_name.as_deref()).is_some();
    if !recorded && ctx.options.skip_every > 0 {
        let skip = ctx.skips.lock().unwrap_or_else(|e| e.into_inner()).skip(&un.name_any(), ctx.options.skip_every);
        if skip {
            tracing::warn!(upcoming_node = %un.name_any(), "skipping on purpose (--skip-every)");
            return Ok(Action::await_change());
        }
    }
    match materialize::ensure_node(&ctx.nodes, &ctx.upcoming, &un).await? {
        Outcome::Created => {
            ctx.metrics.nodes_created.inc();
            if let Some(age) = materialize::age_seconds(&un) {
                ctx.metrics.latency.observe(age);
            }
            tracing::debug!(node = %un.name_any(), "created");
        }
        Outcome::AlreadyPresent | Outcome::UpToDate => {}
    }
    Ok(Action::await_change())
}

fn error_policy(un: Arc<UpcomingNode>, err: &MaterializeError, ctx: Arc<Ctx>) -> Action {
    ctx.metrics.error(err.reason());
    if err.is_permanent() {
        // Logged with its name and skipped until the object changes.
        tracing::error!(upcoming_node = %un.name_any(), error = %err, "skipping");
        Action::await_change()
    } else {
        tracing::warn!(upcoming_node = %un.name_any(), error = %err, "retrying");
        Action::requeue(Duration::from_secs(2))
    }
}

/// Runs until `shutdown`; calls `on_synced` once both caches are filled.
pub async fn run(
    client: Client,
    metrics: NodeMetrics,
    options: Options,
    shutdown: CancellationToken,
    on_synced: impl FnOnce(),
) {
    let upcoming: Api<UpcomingNode> = Api::all(client.clone());
    let nodes: Api<Node> = Api::all(client);
    let ctx = Arc::new(Ctx {
        nodes: nodes.clone(),
        upcoming: upcoming.clone(),
        metrics,
        options: options.clone(),
        skips: Default::default(),
    });
    let controller = Controller::new(upcoming, watcher::Config::default())
        .owns(nodes, watcher::Config::default())
        .with_config(Config::default().concurrency(options.concurrency));
    let store = controller.store();
    let shutdown_signal = shutdown.clone();
    let run = controller
        .graceful_shutdown_on(async move { shutdown_signal.cancelled().await })
        .run(reconcile, error_policy, ctx)
        .for_each(|_| futures::future::ready(()));
    let synced = async {
        if store.wait_until_ready().await.is_ok() {
            on_synced();
        }
        futures::future::pending::<()>().await
    };
    tokio::select! {
        _ = run => {}
        _ = synced => {}
    }
}

#[cfg(test)]
mod tests {
    use super::Skips;

    #[test]
    fn skips_every_nth_distinct_upcoming_node_for_good() {
        let mut s = Skips::default();
        let names: Vec<String> = (0..7).map(|i| format!("un-{i}")).collect();
        let first: Vec<bool> = names.iter().map(|n| s.skip(n, 3)).collect();
        assert_eq!(first, [false, false, true, false, false, true, false]);
        // Visiting again changes nothing: done ones stay done, skipped ones stay skipped.
        let again: Vec<bool> = names.iter().map(|n| s.skip(n, 3)).collect();
        assert_eq!(again, first);
        assert!(!Skips::default().skip("un-0", 0));
    }
}

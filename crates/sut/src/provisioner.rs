//! The provisioner's cycle, every `--cycle-interval`:
//!
//! 1. **rollup**: read the caches into the [`Ledger`] (the UpcomingNodes this
//!    SUT labelled, plus the nodes it planned or just wrote) and gather the
//!    demand, the Pods of acknowledged requests that no node provides
//!    ([`unprovided`]), and the room left on nodes still coming;
//! 2. **decision**: [`decide`], a pure function;
//! 3. **apply**: additions to planned nodes stay in memory; additions to
//!    published nodes, and planned nodes whose provisioning delay has passed,
//!    are written;
//! 4. **statuses**: each request's status follows the ledger
//!    ([`status_update`]): `upcomingNodes`, and Fulfilled once every node
//!    holding it has its fake Node (`status.nodeName`, set by node-creator).
//!    Written in batches beside the cycle, so that hundreds of status writes
//!    never hold up the next node (they do not bind a single Pod).
//!
//! Steps 1–2 are the cycle histogram (the hot path, no API calls, as in
//! BigFleet's shard cycle); step 1 alone is the rollup histogram. Writes run
//! `--acknowledge-concurrency` at a time, and node writes or status writes
//! that fail back off before writing again, while the decision keeps running.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Client, ResourceExt};
use scaletest_core::constants::RUN_LABEL;
use scaletest_core::crd::{CapacityRequest, CapacityRequestPhase, UpcomingNode};
use serde_json::{Value, json};
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use crate::FIELD_MANAGER;
use crate::acknowledge::Acknowledger;
use crate::backoff::Backoff;
use crate::decide::{Demand, NewNode, Room, decide};
use crate::ledger::{ASSIGNMENTS_ANNOTATION, Assignment, Ledger, LedgerNode, NodeState, Published, encode};
use crate::metrics::{Metrics, operation};
use crate::requests::{Waiting, status_update, unprovided};
use crate::shape::parse_request;

/// How long a node this process wrote may stay unseen by its cache before the
/// write is assumed undone (someone deleted the node at once).
const UNSEEN_TTL: Duration = Duration::from_secs(60);

#[derive(Clone, Debug)]
pub struct Settings {
    pub provisioning_delay: Duration,
    pub cycle_interval: Duration,
    /// Pods per UpcomingNode.
    pub density: u32,
    /// How long a Pod may stay unbound after its Node appeared before it is provided for again.
    pub reprovision_after: Duration,
    /// API writes in flight at once.
    pub write_concurrency: usize,
}

impl Settings {
    /// Age past which an acknowledged, still unprovisioned request is a shortfall.
    pub fn shortfall_after(&self) -> Duration {
        self.cycle_interval * 2 + self.provisioning_delay
    }
}

/// The watch caches the provisioner reads.
pub struct Caches {
    pub requests: Store<CapacityRequest>,
    pub nodes: Store<UpcomingNode>,
    /// Unbound Pods (the pod controller's cache).
    pub pods: Store<Pod>,
}

fn phase(cr: &CapacityRequest) -> Option<CapacityRequestPhase> {
    cr.status.as_ref().and_then(|s| s.phase)
}

fn fulfilled_at(cr: &CapacityRequest) -> Option<Timestamp> {
    cr.status.as_ref().and_then(|s| s.fulfilled_at.as_ref()).map(|t| t.0)
}

/// A request's owner Pod, when it has one.
fn owner_pod(cr: &CapacityRequest) -> Option<(&str, &str)> {
    cr.owner_references()
        .iter()
        .find(|o| o.kind == "Pod" && o.api_version == "v1")
        .map(|o| (o.name.as_str(), o.uid.as_str()))
}

struct Planned {
    node: LedgerNode,
    due: Instant,
}

struct Written {
    node: LedgerNode,
    at: Instant,
}

/// An addition to a published node: its full new record, conditional on the version read.
struct Addition {
    name: String,
    node: LedgerNode,
    resource_version: Option<String>,
}

/// A status patch for one request, and what it means once written.
struct StatusWrite {
    key: ObjectRef<CapacityRequest>,
    resource_version: Option<String>,
    status: Value,
    outcome: Outcome,
}

enum Outcome {
    Update {
        fulfils: bool,
    },
    /// Marked Failed, for this reason.
    Fail(String),
}

pub struct Provisioner {
    client: Client,
    caches: Caches,
    acknowledger: Acknowledger,
    metrics: Metrics,
    settings: Settings,
    /// Decided, waiting out the provisioning delay. Lost on a restart, harmlessly:
    /// nothing of them was published.
    planned: BTreeMap<String, Planned>,
    /// The cache's nodes, parsed and indexed.
    published: Published,
    /// Written by this process but not yet (or not in this version) in the cache.
    written: HashMap<String, Written>,
    /// Requests whose status was written against the version (value) the cache
    /// still shows: not written again until the cache catches up.
    status_written: HashMap<ObjectRef<CapacityRequest>, String>,
    backoff: Backoff,
    status_backoff: Backoff,
}

impl Provisioner {
    pub fn new(
        client: Client,
        caches: Caches,
        acknowledger: Acknowledger,
        metrics: Metrics,
        settings: Settings,
    ) -> Self {
        Self {
            client,
            caches,
            acknowledger,
            metrics,
            settings,
            planned: BTreeMap::new(),
            published: Published::default(),
            written: HashMap::new(),
            status_written: HashMap::new(),
            backoff: Backoff::default(),
            status_backoff: Backoff::default(),
        }
    }

    pub async fn run(mut self, shutdown: CancellationToken) {
        // The first read parses every record; keep it out of the cycle histogram.
        self.refresh();
        let mut tick = tokio::time::interval(self.settings.cycle_interval);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        // Status writes run beside the cycle, one batch at a time: a batch can be
        // hundreds of requests long, and the next node must not wait behind it.
        let mut statuses: Option<BoxFuture<'static, Vec<StatusResult>>> = None;
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                results = async { statuses.as_mut().expect("guarded by the branch condition").await },
                    if statuses.is_some() =>
                {
                    statuses = None;
                    let now = Instant::now();
                    if self.record_statuses(results) {
                        self.status_backoff.succeeded();
                    } else {
                        let wait = self.status_backoff.failed(now);
                        tracing::warn!(retry_in = ?wait, "status writes failed; backing off");
                    }
                }
                _ = tick.tick() => {
                    self.cycle().await;
                    if statuses.is_none() && self.status_backoff.ready(Instant::now()) {
                        let writes = self.status_writes();
                        if !writes.is_empty() {
                            let (client, params) = (self.client.clone(), self.params());
                            let batch = write_statuses(client, params, writes, self.settings.write_concurrency);
                            statuses = Some(batch.boxed());
                        }
                    }
                }
            }
        }
    }

    async fn cycle(&mut self) {
        let started = Instant::now();
        self.refresh();
        let (additions, new_nodes) = {
            let ledger = self.ledger();
            let (demand, rooms) = self.rollup(&ledger);
            self.metrics.rollup_duration.observe(started.elapsed().as_secs_f64());
            let decision = decide(&demand, &rooms, &ledger.taken, self.settings.density);
            if !demand.is_empty() {
                tracing::debug!(
                    requests = demand.len(),
                    pods = demand.iter().map(|d| u64::from(d.pods)).sum::<u64>(),
                    additions = decision.additions.len(),
                    new_nodes = decision.new_nodes.len(),
                    "decided"
                );
            }
            (self.additions(decision.additions, &ledger), decision.new_nodes)
        };
        let additions = self.plan(additions, new_nodes);
        self.metrics.cycle_duration.observe(started.elapsed().as_secs_f64());

        let now = Instant::now();
        if !self.backoff.ready(now) {
            return;
        }
        // Each step runs even if the other failed: they touch different objects.
        let added = self.add_to_published(additions).await;
        let published = self.publish_due().await;
        self.refresh();
        if added && published {
            self.backoff.succeeded();
        } else {
            let wait = self.backoff.failed(now);
            tracing::warn!(retry_in = ?wait, "provisioning writes failed; backing off");
        }
    }

    /// Catches up with the node cache; drops own writes it now shows.
    fn refresh(&mut self) {
        self.published.refresh(&self.caches.nodes.state());
        let published = &self.published;
        self.written.retain(|name, w| match published.get(name) {
            Some(seen) => !seen.covers(&w.node.entries),
            // Not seen yet; or deleted right away, if never.
            None => w.at.elapsed() < UNSEEN_TTL,
        });
    }

    /// The cache's nodes overlaid with this process's plans and unseen writes.
    fn ledger(&self) -> Ledger<'_> {
        let mut overlay = BTreeMap::new();
        for (name, w) in &self.written {
            let mut node = w.node.clone();
            // The cache is behind the write, but may already know the fake Node.
            if let (
                NodeState::Published { node_name, materialized_at, .. },
                Some(NodeState::Published { node_name: seen_name, materialized_at: seen_at, .. }),
            ) = (&mut node.state, self.published.get(name).map(|n| &n.state))
            {
                *node_name = node_name.take().or_else(|| seen_name.clone());
                *materialized_at = materialized_at.or(*seen_at);
            }
            overlay.insert(name.clone(), node);
        }
        for (name, p) in &self.planned {
            overlay.insert(name.clone(), p.node.clone());
        }
        Ledger::new(&self.published, overlay)
    }

    /// A request that exists, is the same one (uid) and can still use its room.
    fn is_live(&self, a: &Assignment) -> bool {
        self.caches.requests.get(&ObjectRef::new(&a.name).within(&a.namespace)).is_some_and(|cr| {
            cr.uid().as_deref() == Some(a.uid.as_str()) && phase(&cr) != Some(CapacityRequestPhase::Failed)
        })
    }

    /// What became of the request's owner Pod: the cache holds unbound Pods only.
    fn waiting(&self, cr: &CapacityRequest) -> Waiting {
        let Some((name, uid)) = owner_pod(cr) else { return Waiting::NoPod };
        let namespace = cr.namespace().unwrap_or_default();
        let pod = self.caches.pods.get(&ObjectRef::new(name).within(&namespace));
        if pod.is_some_and(|pod| pod.uid().as_deref() == Some(uid)) { Waiting::Unbound } else { Waiting::Placed }
    }

    /// The requests that may still need something: every Acknowledged one, and
    /// the Fulfilled ones whose Pod still waits, found from the (few) unbound
    /// Pods rather than among all requests. Also offers Pending ones to the
    /// acknowledger, a sweep behind the watch (it ignores what it already has).
    fn tended(&self, sweep: bool) -> Vec<Arc<CapacityRequest>> {
        let mut tended = Vec::new();
        for cr in self.caches.requests.state() {
            if cr.metadata.deletion_timestamp.is_some() {
                continue;
            }
            match phase(&cr) {
                Some(CapacityRequestPhase::Acknowledged) => tended.push(cr),
                None | Some(CapacityRequestPhase::Pending) if sweep => self.acknowledger.offer(&cr),
                _ => {}
            }
        }
        for pod in self.caches.pods.state() {
            let key = ObjectRef::new(&pod.name_any()).within(&pod.namespace().unwrap_or_default());
            let Some(cr) = self.caches.requests.get(&key) else { continue };
            let owned = owner_pod(&cr).is_some_and(|(_, uid)| pod.uid().as_deref() == Some(uid));
            if owned && phase(&cr) == Some(CapacityRequestPhase::Fulfilled) && cr.metadata.deletion_timestamp.is_none()
            {
                tended.push(cr);
            }
        }
        tended
    }

    /// Demand (oldest acknowledgement first) and the room left on every open node.
    fn rollup(&self, ledger: &Ledger) -> (Vec<Demand>, Vec<Room>) {
        let now = Timestamp::now();
        let mut waiting: Vec<(Option<Timestamp>, Demand)> = Vec::new();
        for cr in self.tended(false) {
            // Malformed ones are failed by the status step.
            let Ok(request) = parse_request(&cr.spec) else { continue };
            let Some(uid) = cr.uid() else { continue };
            let pods = unprovided(
                request.count,
                &ledger.holding(&uid),
                self.waiting(&cr),
                fulfilled_at(&cr),
                now,
                self.settings.reprovision_after,
            );
            if pods == 0 {
                continue;
            }
            let acknowledged_at = cr.status.as_ref().and_then(|s| s.acknowledged_at.as_ref()).map(|t| t.0);
            waiting.push((
                acknowledged_at,
                Demand {
                    namespace: cr.namespace().unwrap_or_default(),
                    name: cr.name_any(),
                    uid,
                    shape: request.shape,
                    pods,
                },
            ));
        }
        waiting.sort_by(|(at_a, a), (at_b, b)| (at_a, &a.namespace, &a.name).cmp(&(at_b, &b.namespace, &b.name)));
        let demand = waiting.into_iter().map(|(_, d)| d).collect();
        let mut rooms: Vec<Room> = ledger
            .nodes()
            .filter(|(_, node)| node.is_open())
            .map(|(name, node)| Room {
                node: name.to_string(),
                shape: node.shape,
                spare: node.capacity.saturating_sub(node.occupied(|e| self.is_live(e))),
            })
            .collect();
        rooms.sort_by(|a, b| a.node.cmp(&b.node));
        (demand, rooms)
    }

    /// The decision's additions: to planned nodes as they are, to published ones as
    /// their full new record, conditional on the version read.
    fn additions(&self, decided: BTreeMap<String, Vec<Assignment>>, ledger: &Ledger) -> Vec<Addition> {
        let mut out = Vec::new();
        for (name, added) in decided {
            let Some(node) = ledger.node(&name) else { continue };
            let resource_version = match &node.state {
                NodeState::Planned => None,
                NodeState::Published { resource_version, .. } => resource_version.clone(),
            };
            let mut node = node.clone();
            if resource_version.is_some() {
                // The new record drops requests that are gone: their room is what was just reused.
                node.entries.retain(|e| self.is_live(e));
            }
            node.entries.extend(added);
            out.push(Addition { name, node, resource_version });
        }
        out
    }

    /// Applies additions to planned nodes and plans the new ones; returns the
    /// additions to published nodes, to write.
    fn plan(&mut self, additions: Vec<Addition>, new_nodes: Vec<NewNode>) -> Vec<Addition> {
        let mut writes = Vec::new();
        for a in additions {
            match self.planned.get_mut(&a.name) {
                Some(p) => p.node.entries = a.node.entries,
                None => writes.push(a),
            }
        }
        let due = Instant::now() + self.settings.provisioning_delay;
        for new in new_nodes {
            let node = LedgerNode {
                shape: new.shape,
                capacity: new.capacity,
                entries: new.assignments,
                state: NodeState::Planned,
            };
            self.planned.insert(new.name, Planned { node, due });
        }
        writes
    }

    fn params(&self) -> PatchParams {
        PatchParams { field_manager: Some(FIELD_MANAGER.into()), ..Default::default() }
    }

    /// Records a write the API answered with `un`.
    fn remember(&mut self, un: &UpcomingNode) {
        if let Some(Ok(node)) = LedgerNode::read(un) {
            self.written.insert(un.name_any(), Written { node, at: Instant::now() });
        }
    }

    /// Returns false when a write failed for another reason than a lost race.
    async fn add_to_published(&mut self, additions: Vec<Addition>) -> bool {
        let api: Api<UpcomingNode> = Api::all(self.client.clone());
        let params = self.params();
        let results: Vec<_> = futures::stream::iter(additions)
            .map(|a| {
                let (api, params) = (api.clone(), params.clone());
                async move {
                    let patch = json!({
                        "metadata": {
                            "resourceVersion": a.resource_version,
                            "annotations": {ASSIGNMENTS_ANNOTATION: encode(a.node.shape, &a.node.entries)},
                        }
                    });
                    let result = api.patch(&a.name, &params, &Patch::Merge(&patch)).await;
                    (a.name, result)
                }
            })
            .buffer_unordered(self.settings.write_concurrency)
            .collect()
            .await;
        let mut ok = true;
        for (name, result) in results {
            match result {
                Ok(un) => self.remember(&un),
                // Changed since it was read (node-creator wrote its status), or deleted:
                // the next cycle decides again on fresh data.
                Err(kube::Error::Api(s)) if s.is_conflict() || s.is_not_found() => {
                    tracing::debug!(upcoming_node = %name, reason = %s.reason, "addition skipped");
                }
                Err(e) => {
                    ok = false;
                    self.metrics.error(operation::ASSIGN_UPCOMING_NODE);
                    tracing::warn!(upcoming_node = %name, error = %e, "cannot add requests to UpcomingNode");
                }
            }
        }
        ok
    }

    /// The `scaletest-run` label of a request: runs tear down by it, so a node goes
    /// with the run that asked for it.
    fn run_label(&self, a: &Assignment) -> Option<String> {
        let cr = self.caches.requests.get(&ObjectRef::new(&a.name).within(&a.namespace))?;
        cr.labels().get(RUN_LABEL).cloned()
    }

    /// Creates the planned nodes whose provisioning delay has passed.
    async fn publish_due(&mut self) -> bool {
        let now = Instant::now();
        let due: Vec<String> = self.planned.iter().filter(|(_, p)| p.due <= now).map(|(n, _)| n.clone()).collect();
        let mut creates = Vec::new();
        for name in due {
            let Some(mut p) = self.planned.remove(&name) else { continue };
            // Requests deleted while the node waited take no room on it; with none left there is nothing to provision.
            p.node.entries.retain(|e| self.is_live(e));
            if p.node.entries.is_empty() {
                continue;
            }
            let run = self.run_label(&p.node.entries[0]);
            creates.push((p.node.upcoming_node(&name, run), p));
        }
        let api: Api<UpcomingNode> = Api::all(self.client.clone());
        let params = PostParams { field_manager: Some(FIELD_MANAGER.into()), ..Default::default() };
        let results: Vec<_> = futures::stream::iter(creates)
            .map(|(un, p)| {
                let (api, params) = (api.clone(), params.clone());
                async move { (api.create(&params, &un).await, un.name_any(), p) }
            })
            .buffer_unordered(self.settings.write_concurrency)
            .collect()
            .await;
        let mut ok = true;
        let mut published = 0usize;
        for (result, name, p) in results {
            match result {
                Ok(un) => {
                    published += 1;
                    self.metrics.upcoming_nodes_published.inc();
                    self.remember(&un);
                }
                // Taken meanwhile (another instance, or a create that succeeded although its
                // answer was lost): the cache shows it soon, and the next cycle decides again.
                Err(kube::Error::Api(s)) if s.is_already_exists() => {
                    tracing::info!(upcoming_node = %name, "name taken; deciding again");
                }
                Err(e) => {
                    ok = false;
                    self.metrics.error(operation::CREATE_UPCOMING_NODE);
                    tracing::warn!(upcoming_node = %name, error = %e, "cannot create UpcomingNode; retrying");
                    self.planned.insert(name, p);
                }
            }
        }
        if published > 0 {
            tracing::info!(published, "published UpcomingNodes");
        }
        ok
    }

    /// The status writes that bring every tended request in line with the ledger; sets the shortfall gauge.
    fn status_writes(&mut self) -> Vec<StatusWrite> {
        let now = Timestamp::now();
        let shortfall_after = self.settings.shortfall_after();
        let mut shortfalls = 0i64;
        let mut writes = Vec::new();
        let mut still_behind = HashMap::new();
        {
            let ledger = self.ledger();
            for cr in self.tended(true) {
                let key = ObjectRef::from_obj(&*cr);
                let resource_version = cr.resource_version();
                // Written against this very version already: the cache has not caught up yet.
                let behind = resource_version.is_some() && self.status_written.get(&key) == resource_version.as_ref();
                let request = parse_request(&cr.spec);
                let holding = cr.uid().map(|uid| ledger.holding(&uid)).unwrap_or_default();
                let waiting = self.waiting(&cr);
                if behind {
                    still_behind.insert(key, resource_version.unwrap_or_default());
                } else {
                    let write = match &request {
                        // Edited into nonsense after it was acknowledged.
                        Err(m) => Some((
                            json!({"status": {"phase": CapacityRequestPhase::Failed, "message": m.to_string()}}),
                            Outcome::Fail(m.to_string()),
                        )),
                        Ok(r) => status_update(&cr, r.count, &holding, waiting, now).map(|status| {
                            let fulfils = status["status"]["phase"] == json!(CapacityRequestPhase::Fulfilled);
                            (status, Outcome::Update { fulfils })
                        }),
                    };
                    if let Some((status, outcome)) = write {
                        writes.push(StatusWrite { key, resource_version, status, outcome });
                    }
                }
                // A shortfall: acknowledged long ago, yet no created node holds all of it.
                let Ok(request) = request else { continue };
                let acknowledged = cr.status.as_ref().and_then(|s| s.acknowledged_at.as_ref());
                let waited = acknowledged.map(|t| now.duration_since(t.0).unsigned_abs()).unwrap_or_default();
                let published = holding.upcoming_pods.saturating_add(holding.materialized_pods);
                if phase(&cr) == Some(CapacityRequestPhase::Acknowledged)
                    && published < request.count
                    && waited > shortfall_after
                    && waiting != Waiting::Placed
                {
                    shortfalls += 1;
                }
            }
        }
        self.status_written = still_behind;
        self.metrics.shortfalls.set(shortfalls);
        writes
    }

    /// Takes in a batch's outcome; false when a write failed for another reason than a lost race.
    fn record_statuses(&mut self, results: Vec<StatusResult>) -> bool {
        let mut ok = true;
        for (w, result) in results {
            let namespace = w.key.namespace.as_deref().unwrap_or_default();
            let name = &w.key.name;
            match result {
                Ok(_) => {
                    if let Outcome::Fail(reason) = &w.outcome {
                        tracing::warn!(%namespace, %name, %reason, "malformed CapacityRequest marked Failed");
                        self.metrics.failed.inc();
                    }
                    if let Outcome::Update { fulfils: true } = w.outcome {
                        self.metrics.fulfilled.inc();
                    }
                    if let Some(rv) = w.resource_version {
                        self.status_written.insert(w.key, rv);
                    }
                }
                // Deleted, or changed since the cache saw it: the next cycle looks again.
                Err(kube::Error::Api(s)) if s.is_not_found() || s.is_conflict() => {}
                Err(e) => {
                    ok = false;
                    self.metrics.error(operation::UPDATE_STATUS);
                    tracing::warn!(%namespace, %name, error = %e, "cannot update CapacityRequest status");
                }
            }
        }
        ok
    }
}

type StatusResult = (StatusWrite, kube::Result<CapacityRequest>);

/// Writes a batch of statuses, `concurrency` at a time. Owns everything it
/// needs, so it runs while the next cycles decide.
async fn write_statuses(
    client: Client,
    params: PatchParams,
    writes: Vec<StatusWrite>,
    concurrency: usize,
) -> Vec<StatusResult> {
    futures::stream::iter(writes)
        .map(|w| {
            let (client, params) = (client.clone(), params.clone());
            async move {
                // Conditional on the version the decision read, so a write from a
                // stale cache never lands on a newer status.
                let mut patch = w.status.clone();
                patch["metadata"] = json!({"resourceVersion": w.resource_version});
                let api: Api<CapacityRequest> = Api::namespaced(client, w.key.namespace.as_deref().unwrap_or_default());
                let result = api.patch_status(&w.key.name, &params, &Patch::Merge(&patch)).await;
                (w, result)
            }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shortfall_threshold_is_two_cycles_plus_the_delay() {
        let s = Settings {
            provisioning_delay: Duration::from_secs(5),
            cycle_interval: Duration::from_secs(1),
            density: 100,
            reprovision_after: Duration::from_secs(30),
            write_concurrency: 16,
        };
        assert_eq!(s.shortfall_after(), Duration::from_secs(7));
    }
}

#[cfg(test)]
mod scale {
    use std::collections::BTreeMap;

    use k8s_openapi::api::core::v1::Pod;
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{OwnerReference, Time};
    use kube::api::ObjectMeta;
    use kube::runtime::reflector;
    use kube::runtime::watcher::Event;
    use prometheus_client::registry::Registry;
    use scaletest_core::crd::{CapacityRequestSpec, CapacityRequestStatus, Need, UpcomingNodeStatus};

    use super::*;
    use crate::shape::Shape;

    /// One cycle's hot path (rollup + decision) over BigFleet's per-cluster worst
    /// case: 250K requests, 245K of them Fulfilled on 2,450 nodes, 5K just
    /// acknowledged. Must stay well inside the default 100 ms cycle SLO. Run:
    /// `cargo test --release -p scaletest-sut --lib -- --ignored --nocapture`.
    #[tokio::test]
    #[ignore]
    async fn cycle_at_a_quarter_million_requests() {
        const N: usize = 250_000;
        const NEW: usize = 5_000;
        let (requests, mut rw) = reflector::store::<CapacityRequest>();
        let (nodes, mut nw) = reflector::store::<UpcomingNode>();
        let (pods, mut pw) = reflector::store::<Pod>();
        let now = Timestamp::now();
        let shape = Shape { cpu_millis: 100, memory_bytes: 128 << 20 };
        let mut node_entries: BTreeMap<usize, Vec<Assignment>> = BTreeMap::new();
        rw.apply_watcher_event(&Event::Init);
        pw.apply_watcher_event(&Event::Init);
        for i in 0..N {
            let name = format!("pod-{i:06}");
            let need = Need { count: 1, cpu: Quantity("100m".into()), memory: Quantity("128Mi".into()) };
            let mut cr = CapacityRequest::new(&name, CapacityRequestSpec { need });
            cr.metadata.namespace = Some("ns".into());
            cr.metadata.uid = Some(format!("uid-{i}"));
            cr.metadata.resource_version = Some("1".into());
            let owner = OwnerReference {
                api_version: "v1".into(),
                kind: "Pod".into(),
                name: name.clone(),
                uid: format!("pod-uid-{i}"),
                ..Default::default()
            };
            cr.metadata.owner_references = Some(vec![owner]);
            let mut status = CapacityRequestStatus {
                phase: Some(CapacityRequestPhase::Acknowledged),
                acknowledged_at: Some(Time(now)),
                ..Default::default()
            };
            if i < N - NEW {
                let node = format!("sut-100m-128mi-{}", i / 100 + 1);
                status.phase = Some(CapacityRequestPhase::Fulfilled);
                status.fulfilled_at = Some(Time(now));
                status.upcoming_nodes = vec![node];
                let a = Assignment { namespace: "ns".into(), name, uid: format!("uid-{i}"), pods: 1 };
                node_entries.entry(i / 100 + 1).or_default().push(a);
            } else {
                let meta = ObjectMeta {
                    name: Some(name),
                    namespace: Some("ns".into()),
                    uid: Some(format!("pod-uid-{i}")),
                    ..Default::default()
                };
                pw.apply_watcher_event(&Event::InitApply(Pod { metadata: meta, ..Default::default() }));
            }
            cr.status = Some(status);
            rw.apply_watcher_event(&Event::InitApply(cr));
        }
        rw.apply_watcher_event(&Event::InitDone);
        pw.apply_watcher_event(&Event::InitDone);
        nw.apply_watcher_event(&Event::Init);
        for (n, entries) in node_entries {
            let name = format!("sut-100m-128mi-{n}");
            let mut un =
                LedgerNode { shape, capacity: 100, entries, state: NodeState::Planned }.upcoming_node(&name, None);
            un.status = Some(UpcomingNodeStatus { node_name: Some(name), created_at: Some(Time(now)) });
            un.metadata.resource_version = Some("1".into());
            nw.apply_watcher_event(&Event::InitApply(un));
        }
        nw.apply_watcher_event(&Event::InitDone);

        let client = Client::try_from(kube::Config::new("http://127.0.0.1:9".parse().unwrap())).unwrap();
        let metrics = Metrics::register(&mut Registry::default());
        let (acknowledger, _queue) = Acknowledger::new(client.clone(), requests.clone(), 1, metrics.clone());
        let settings = Settings {
            provisioning_delay: Duration::from_secs(5),
            cycle_interval: Duration::from_secs(1),
            density: 100,
            reprovision_after: Duration::from_secs(30),
            write_concurrency: 16,
        };
        let mut p = Provisioner::new(client, Caches { requests, nodes, pods }, acknowledger, metrics, settings);
        let started = std::time::Instant::now();
        p.refresh();
        eprintln!("first refresh (parses every record once): {:?}", started.elapsed());
        let mut slowest = Duration::ZERO;
        for _ in 0..5 {
            let started = std::time::Instant::now();
            p.refresh();
            let ledger = p.ledger();
            let (demand, rooms) = p.rollup(&ledger);
            let decision = decide(&demand, &rooms, &ledger.taken, 100);
            let took = started.elapsed();
            eprintln!("cycle {took:?}");
            slowest = slowest.max(took);
            assert_eq!(demand.len(), NEW);
            assert_eq!(decision.new_nodes.len(), NEW / 100);
            assert_eq!(decision.new_nodes[0].name, format!("sut-100m-128mi-{}", (N - NEW) / 100 + 1));
        }
        assert!(slowest < Duration::from_millis(100), "slowest cycle {slowest:?}");
    }
}

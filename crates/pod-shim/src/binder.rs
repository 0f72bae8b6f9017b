//! pod-shim's scheduling stand-in: watches Nodes and Pods, binds each unbound
//! Pod to the first Node with room (through `/binding`, by a pool of
//! workers), and marks a Pod `PodScheduled=False/Unschedulable` when no Node
//! has room, so the system under test sees it as demand. Parked Pods are
//! retried whenever a Node appears or capacity is freed.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Binding, Node, ObjectReference, Pod};
use kube::api::{Api, ObjectMeta, Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use scaletest_core::density::PodNeed;
use scaletest_core::quantity;
use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;

use crate::fit::{Allocator, Capacity};
use crate::metrics::BinderMetrics;
use crate::outcome::{self, BindOutcome, Verdict};

/// A Pod waiting to be bound.
#[derive(Clone, Debug)]
struct Pending {
    namespace: String,
    name: String,
    uid: String,
    need: PodNeed,
    first_seen: Instant,
    attempts: u32,
}

const MAX_BIND_ATTEMPTS: u32 = 5;

#[derive(Default)]
struct State {
    alloc: Allocator,
    /// Queued or being bound: never queued twice. Leaving it (bound, gone,
    /// parked) makes a queued retry or a late result for the Pod a no-op.
    inflight: HashSet<String>,
    /// No Node had room, or binding kept failing: retried when capacity appears.
    parked: HashMap<String, Pending>,
    /// Already marked Unschedulable.
    marked: HashSet<String>,
    /// Known bound. A nodeName is never unset, so a later event showing the
    /// Pod unbound is stale (sent before the binding) and must not requeue it.
    bound: HashSet<String>,
}

impl State {
    /// The apiserver shows `uid` on `node` (watch or read back): the allocator follows it,
    /// whichever Node it had reserved.
    fn bound_to(&mut self, uid: &str, node: &str, need: PodNeed) {
        self.alloc.account(uid, node, need);
        self.bound.insert(uid.to_string());
        self.parked.remove(uid);
        self.marked.remove(uid);
        self.inflight.remove(uid);
    }

    /// Books a Pod the watch shows; returns it if it is to be bound.
    fn on_pod_seen(&mut self, pod: &Pod) -> Option<Pending> {
        let uid = pod.uid().unwrap_or_default();
        let need = PodNeed::of_pod(pod);
        if let Some(node) = pod.spec.as_ref().and_then(|s| s.node_name.as_deref()) {
            self.bound_to(&uid, node, need);
            return None;
        }
        if pod.metadata.deletion_timestamp.is_some()
            || self.inflight.contains(&uid)
            || self.parked.contains_key(&uid)
            || self.bound.contains(&uid)
        {
            return None;
        }
        if is_marked_unschedulable(pod) {
            self.marked.insert(uid.clone());
        }
        self.inflight.insert(uid.clone());
        Some(Pending {
            namespace: pod.namespace().unwrap_or_default(),
            name: pod.name_any(),
            uid,
            need,
            first_seen: Instant::now(),
            attempts: 0,
        })
    }

    fn gone(&mut self, uid: &str) -> bool {
        self.parked.remove(uid);
        self.marked.remove(uid);
        self.inflight.remove(uid);
        self.bound.remove(uid);
        self.alloc.release(uid)
    }

    /// Books where a binding left `p`; returns it if it should be bound again. Room is
    /// released only when the Pod is known gone: a binding with no definite answer may
    /// land later, so its Node's room stays reserved and the retry asks for the same Node.
    fn settle(&mut self, mut p: Pending, verdict: Verdict) -> Option<Pending> {
        if !self.inflight.contains(&p.uid) {
            // The watch saw it bound or deleted meanwhile and booked that.
            return None;
        }
        match verdict {
            Verdict::BoundTo(node) => self.bound_to(&p.uid, &node, p.need),
            Verdict::Gone => {
                self.gone(&p.uid);
            }
            // Unbound Pods are deleted at once; the watch's Delete frees the room.
            Verdict::Deleting => {
                self.inflight.remove(&p.uid);
            }
            Verdict::Unresolved => {
                p.attempts += 1;
                if p.attempts < MAX_BIND_ATTEMPTS {
                    return Some(p);
                }
                // Still holding its room: a wake-up binds it to the same Node.
                tracing::error!(pod = %format!("{}/{}", p.namespace, p.name), "giving up binding; parked until capacity changes");
                self.inflight.remove(&p.uid);
                self.parked.insert(p.uid.clone(), p);
            }
        }
        None
    }
}

struct Binder {
    client: Client,
    state: Mutex<State>,
    queue: mpsc::UnboundedSender<Pending>,
    metrics: BinderMetrics,
}

fn capacity_of(node: &Node) -> Option<Capacity> {
    let a = node.status.as_ref()?.allocatable.as_ref()?;
    Some(Capacity {
        cpu_millis: quantity::parse_cpu_millis(&a.get("cpu")?.0).ok()?,
        memory_bytes: quantity::parse_memory_bytes(&a.get("memory")?.0).ok()?,
        pods: a.get("pods")?.0.parse().ok()?,
    })
}

fn is_marked_unschedulable(pod: &Pod) -> bool {
    pod.status.as_ref().and_then(|s| s.conditions.as_ref()).is_some_and(|cs| {
        cs.iter()
            .any(|c| c.type_ == "PodScheduled" && c.status == "False" && c.reason.as_deref() == Some("Unschedulable"))
    })
}

impl Binder {
    fn enqueue(&self, p: Pending) {
        self.metrics.queue_depth.inc();
        let _ = self.queue.send(p);
    }

    /// Moves every parked Pod back to the queue (capacity changed).
    fn wake_parked(&self, st: &mut State) {
        for (_, p) in st.parked.drain() {
            st.inflight.insert(p.uid.clone());
            self.enqueue(p);
        }
    }

    fn on_node(&self, event: &watcher::Event<Node>) {
        let mut st = self.state.lock().expect("binder state");
        match event {
            watcher::Event::Apply(n) | watcher::Event::InitApply(n) => {
                if let Some(cap) = capacity_of(n) {
                    st.alloc.upsert_node(&n.name_any(), cap);
                    self.wake_parked(&mut st);
                }
            }
            watcher::Event::Delete(n) => st.alloc.remove_node(&n.name_any()),
            _ => {}
        }
    }

    fn on_pod(&self, event: &watcher::Event<Pod>) {
        let mut st = self.state.lock().expect("binder state");
        match event {
            watcher::Event::Apply(pod) | watcher::Event::InitApply(pod) => {
                if let Some(p) = st.on_pod_seen(pod) {
                    self.enqueue(p);
                }
            }
            watcher::Event::Delete(pod) => {
                let freed = st.gone(&pod.uid().unwrap_or_default());
                if freed {
                    self.wake_parked(&mut st);
                }
            }
            _ => {}
        }
    }

    async fn bind(self: Arc<Self>, p: Pending) {
        let placed = {
            let mut st = self.state.lock().expect("binder state");
            if !st.inflight.contains(&p.uid) {
                // Bound or deleted while queued.
                return;
            }
            // A Pod still holding room from an unresolved binding gets the same Node.
            match st.alloc.reserve_first_fit(&p.uid, p.need) {
                Some(node) => Ok(node),
                None => {
                    st.inflight.remove(&p.uid);
                    st.parked.insert(p.uid.clone(), p.clone());
                    Err(st.marked.insert(p.uid.clone()))
                }
            }
        };
        let node = match placed {
            Ok(node) => node,
            Err(first_time) => {
                if first_time {
                    self.mark_unschedulable(&p).await;
                }
                return;
            }
        };
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), &p.namespace);
        let binding = Binding {
            metadata: ObjectMeta { name: Some(p.name.clone()), ..Default::default() },
            target: ObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Node".into()),
                name: Some(node.clone()),
                ..Default::default()
            },
        };
        let result: Result<serde_json::Value, _> =
            pods.create_subresource("binding", &p.name, &PostParams::default(), &binding).await;
        let verdict = match outcome::classify(&result) {
            BindOutcome::Bound => {
                self.metrics.binds.inc();
                self.metrics.bind_latency.observe(p.first_seen.elapsed().as_secs_f64());
                Verdict::BoundTo(node)
            }
            BindOutcome::Gone => Verdict::Gone,
            BindOutcome::Rejected | BindOutcome::Unknown => {
                self.metrics.bind_errors.inc();
                self.metrics.bind_read_backs.inc();
                let verdict = outcome::read_back(&p.uid, pods.get_opt(&p.name).await);
                let pod = format!("{}/{}", p.namespace, p.name);
                let error = result.err().map(|e| e.to_string()).unwrap_or_default();
                tracing::warn!(%pod, %node, %error, ?verdict, attempts = p.attempts + 1, "binding unsettled; read back");
                verdict
            }
        };
        let retry = self.state.lock().expect("binder state").settle(p, verdict);
        if let Some(p) = retry {
            tokio::time::sleep(Duration::from_millis(200 << p.attempts)).await;
            self.enqueue(p);
        }
    }

    async fn mark_unschedulable(&self, p: &Pending) {
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), &p.namespace);
        let patch = serde_json::json!({"status": {"conditions": [{
            "type": "PodScheduled",
            "status": "False",
            "reason": "Unschedulable",
            "message": "pod-shim: no fake Node has room for this Pod",
        }]}});
        match pods.patch_status(&p.name, &PatchParams::default(), &Patch::Strategic(&patch)).await {
            Ok(_) => {
                self.metrics.unschedulable_marks.inc();
            }
            Err(e) => {
                // It stays parked; the next capacity change retries it.
                tracing::warn!(pod = %format!("{}/{}", p.namespace, p.name), error = %e, "cannot mark Unschedulable");
                self.state.lock().expect("binder state").marked.remove(&p.uid);
            }
        }
    }
}

/// Runs until `shutdown`; calls `on_synced` once Nodes and Pods are listed.
pub async fn run(
    client: Client,
    metrics: BinderMetrics,
    workers: usize,
    shutdown: CancellationToken,
    on_synced: impl FnOnce(),
) {
    let (tx, mut rx) = mpsc::unbounded_channel();
    metrics.workers.set(workers as i64);
    let binder =
        Arc::new(Binder { client: client.clone(), state: Mutex::default(), queue: tx, metrics: metrics.clone() });

    // A watch error (the apiserver restarting) is yielded and then retried with backoff:
    // log it and keep going; ending on it would stop binding for good.
    let b = binder.clone();
    let nodes =
        watcher(Api::<Node>::all(client.clone()), watcher::Config::default()).default_backoff().for_each(move |e| {
            match e {
                Ok(e) => b.on_node(&e),
                Err(error) => tracing::warn!(%error, "node watch failed; retrying"),
            }
            futures::future::ready(())
        });
    // A Pod seen before the Nodes are listed is parked, and retried when they arrive.
    let b = binder.clone();
    let (synced_tx, synced_rx) = tokio::sync::oneshot::channel::<()>();
    let mut synced_tx = Some(synced_tx);
    let pods = watcher(Api::<Pod>::all(client), watcher::Config::default()).default_backoff().for_each(move |e| {
        match e {
            Ok(e) => {
                if matches!(e, watcher::Event::InitDone)
                    && let Some(tx) = synced_tx.take()
                {
                    let _ = tx.send(());
                }
                b.on_pod(&e);
            }
            Err(error) => tracing::warn!(%error, "pod watch failed; retrying"),
        }
        futures::future::ready(())
    });

    let slots = Arc::new(Semaphore::new(workers));
    let dispatch = async {
        while let Some(p) = rx.recv().await {
            binder.metrics.queue_depth.dec();
            let Ok(permit) = slots.clone().acquire_owned().await else { break };
            binder.metrics.workers_busy.inc();
            let b = binder.clone();
            tokio::spawn(async move {
                b.clone().bind(p).await;
                b.metrics.workers_busy.dec();
                drop(permit);
            });
        }
    };
    let synced = async {
        if synced_rx.await.is_ok() {
            on_synced();
        }
        futures::future::pending::<()>().await
    };
    tokio::select! {
        _ = shutdown.cancelled() => {}
        _ = nodes => tracing::error!("node watch ended"),
        _ = pods => tracing::error!("pod watch ended"),
        _ = dispatch => {}
        _ = synced => {}
    }
    // Let in-flight bindings finish (bounded).
    let _ = tokio::time::timeout(Duration::from_secs(10), slots.acquire_many(workers as u32)).await;
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::{Container, PodSpec, ResourceRequirements};
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

    use super::*;

    const ROOM_FOR_ONE: Capacity = Capacity { cpu_millis: 1000, memory_bytes: 1 << 30, pods: 1 };

    fn pod(uid: &str, node: Option<&str>) -> Pod {
        let requests = [("cpu", "100m"), ("memory", "128Mi")].map(|(k, v)| (k.to_string(), Quantity(v.into())));
        Pod {
            metadata: ObjectMeta {
                name: Some(uid.into()),
                namespace: Some("ns".into()),
                uid: Some(uid.into()),
                ..Default::default()
            },
            spec: Some(PodSpec {
                node_name: node.map(Into::into),
                containers: vec![Container {
                    name: "c".into(),
                    resources: Some(ResourceRequirements { requests: Some(requests.into()), ..Default::default() }),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    /// Two one-Pod Nodes, `a` before `b`, and `p0` queued and placed on `a`.
    fn placed_on_a() -> (State, Pending) {
        let mut st = State::default();
        st.alloc.upsert_node("a", ROOM_FOR_ONE);
        st.alloc.upsert_node("b", ROOM_FOR_ONE);
        let p = st.on_pod_seen(&pod("p0", None)).expect("queued");
        assert_eq!(st.alloc.reserve_first_fit(&p.uid, p.need).as_deref(), Some("a"));
        (st, p)
    }

    #[test]
    fn an_unresolved_binding_keeps_its_room_and_retries_the_same_node() {
        let (mut st, p) = placed_on_a();
        let retry = st.settle(p, Verdict::Unresolved).expect("retried");
        assert_eq!(retry.attempts, 1);
        assert_eq!(st.alloc.pods_on("a"), 1, "a binding that may have landed holds its room");
        let other = st.on_pod_seen(&pod("p1", None)).expect("queued");
        assert_eq!(st.alloc.reserve_first_fit(&other.uid, other.need).as_deref(), Some("b"), "not a");
        assert_eq!(st.alloc.reserve_first_fit(&retry.uid, retry.need).as_deref(), Some("a"));
    }

    #[test]
    fn giving_up_parks_the_pod_still_holding_its_room() {
        let (mut st, mut p) = placed_on_a();
        for _ in 1..MAX_BIND_ATTEMPTS {
            p = st.settle(p, Verdict::Unresolved).expect("retried");
        }
        assert!(st.settle(p, Verdict::Unresolved).is_none());
        assert!(st.parked.contains_key("p0") && !st.inflight.contains("p0"));
        assert_eq!(st.alloc.pods_on("a"), 1);
        // The watch then shows an earlier attempt landed: booked once, no longer parked.
        assert!(st.on_pod_seen(&pod("p0", Some("a"))).is_none());
        assert!(st.parked.is_empty());
        assert_eq!((st.alloc.pods_on("a"), st.alloc.pods_on("b")), (1, 0));
    }

    #[test]
    fn the_allocator_follows_where_the_apiserver_says_the_pod_is() {
        let (mut st, p) = placed_on_a();
        // Read back after a 409: an earlier attempt bound it to b.
        assert!(st.settle(p, Verdict::BoundTo("b".into())).is_none());
        assert_eq!((st.alloc.pods_on("a"), st.alloc.pods_on("b")), (0, 1));
        // The same from the watch, with the allocator holding another Node.
        let (mut st, _) = placed_on_a();
        assert!(st.on_pod_seen(&pod("p0", Some("b"))).is_none());
        assert_eq!((st.alloc.pods_on("a"), st.alloc.pods_on("b")), (0, 1));
        assert!(!st.inflight.contains("p0"), "a queued retry becomes a no-op");
    }

    #[test]
    fn a_late_result_cannot_undo_what_the_watch_booked() {
        let (mut st, p) = placed_on_a();
        assert!(st.on_pod_seen(&pod("p0", Some("a"))).is_none());
        assert!(st.settle(p.clone(), Verdict::Unresolved).is_none());
        assert!(st.settle(p, Verdict::Gone).is_none());
        assert_eq!(st.alloc.pods_on("a"), 1);
    }

    #[test]
    fn a_stale_unbound_event_after_the_binding_does_not_requeue_it() {
        let (mut st, p) = placed_on_a();
        assert!(st.settle(p, Verdict::BoundTo("a".into())).is_none());
        assert!(st.on_pod_seen(&pod("p0", None)).is_none(), "sent before the binding");
        assert_eq!(st.alloc.pods_on("a"), 1);
    }

    #[test]
    fn only_a_gone_pod_frees_its_room() {
        let (mut st, p) = placed_on_a();
        assert!(st.settle(p.clone(), Verdict::Deleting).is_none());
        assert_eq!(st.alloc.pods_on("a"), 1, "held until the watch sees it deleted");
        assert!(st.gone("p0"));
        assert_eq!(st.alloc.pods_on("a"), 0);
        let (mut st, p) = placed_on_a();
        assert!(st.settle(p, Verdict::Gone).is_none());
        assert_eq!(st.alloc.pods_on("a"), 0);
    }
}

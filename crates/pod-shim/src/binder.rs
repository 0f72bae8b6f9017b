//! pod-shim's scheduling stand-in: watches Nodes and Pods, binds each unbound
//! Pod to the first Node with room (through `/binding`, by a pool of
//! workers), and marks a Pod `PodScheduled=False/Unschedulable` when no Node
//! has room, so the system under test sees it as demand. Parked Pods are
//! retried whenever a Node appears or capacity is freed.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::TryStreamExt;
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
    /// Queued or being bound: never queued twice.
    inflight: HashSet<String>,
    /// No Node had room: retried when capacity appears.
    parked: HashMap<String, Pending>,
    /// Already marked Unschedulable.
    marked: HashSet<String>,
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
                let uid = pod.uid().unwrap_or_default();
                let need = PodNeed::of_pod(pod);
                if let Some(node) = pod.spec.as_ref().and_then(|s| s.node_name.as_deref()) {
                    st.alloc.account(&uid, node, need);
                    st.parked.remove(&uid);
                    return;
                }
                if pod.metadata.deletion_timestamp.is_some()
                    || st.inflight.contains(&uid)
                    || st.parked.contains_key(&uid)
                {
                    return;
                }
                if is_marked_unschedulable(pod) {
                    st.marked.insert(uid.clone());
                }
                st.inflight.insert(uid.clone());
                self.enqueue(Pending {
                    namespace: pod.namespace().unwrap_or_default(),
                    name: pod.name_any(),
                    uid,
                    need,
                    first_seen: Instant::now(),
                    attempts: 0,
                });
            }
            watcher::Event::Delete(pod) => {
                let uid = pod.uid().unwrap_or_default();
                st.parked.remove(&uid);
                st.marked.remove(&uid);
                if st.alloc.release(&uid) {
                    self.wake_parked(&mut st);
                }
            }
            _ => {}
        }
    }

    async fn bind(self: Arc<Self>, p: Pending) {
        let placed = {
            let mut st = self.state.lock().expect("binder state");
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
        let retry = self.settle(p, result);
        if let Some(p) = retry {
            tokio::time::sleep(Duration::from_millis(200 << p.attempts)).await;
            self.enqueue(p);
        }
    }

    /// Books the outcome of a /binding call; returns the Pod if it should be retried.
    fn settle(&self, mut p: Pending, result: Result<serde_json::Value, kube::Error>) -> Option<Pending> {
        let mut st = self.state.lock().expect("binder state");
        match result {
            Ok(_) => {
                st.inflight.remove(&p.uid);
                self.metrics.binds.inc();
                self.metrics.bind_latency.observe(p.first_seen.elapsed().as_secs_f64());
                None
            }
            // Gone, or bound by someone else: the watch accounts the truth.
            Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => {
                st.alloc.release(&p.uid);
                st.inflight.remove(&p.uid);
                None
            }
            Err(e) => {
                st.alloc.release(&p.uid);
                self.metrics.bind_errors.inc();
                p.attempts += 1;
                if p.attempts >= MAX_BIND_ATTEMPTS {
                    tracing::error!(pod = %format!("{}/{}", p.namespace, p.name), error = %e, "giving up binding; parked until capacity changes");
                    st.inflight.remove(&p.uid);
                    st.parked.insert(p.uid.clone(), p);
                    None
                } else {
                    tracing::warn!(pod = %format!("{}/{}", p.namespace, p.name), error = %e, "bind failed; retrying");
                    Some(p)
                }
            }
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

    let b = binder.clone();
    let nodes = watcher(Api::<Node>::all(client.clone()), watcher::Config::default()).default_backoff().try_for_each(
        move |e| {
            b.on_node(&e);
            futures::future::ready(Ok(()))
        },
    );
    // A Pod seen before the Nodes are listed is parked, and retried when they arrive.
    let b = binder.clone();
    let (synced_tx, synced_rx) = tokio::sync::oneshot::channel::<()>();
    let mut synced_tx = Some(synced_tx);
    let pods = watcher(Api::<Pod>::all(client), watcher::Config::default()).default_backoff().try_for_each(move |e| {
        if matches!(e, watcher::Event::InitDone)
            && let Some(tx) = synced_tx.take()
        {
            let _ = tx.send(());
        }
        b.on_pod(&e);
        futures::future::ready(Ok(()))
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
        r = nodes => tracing::error!(error = ?r.err(), "node watch ended"),
        r = pods => tracing::error!(error = ?r.err(), "pod watch ended"),
        _ = dispatch => {}
        _ = synced => {}
    }
    // Let in-flight bindings finish (bounded).
    let _ = tokio::time::timeout(Duration::from_secs(10), slots.acquire_many(workers as u32)).await;
}

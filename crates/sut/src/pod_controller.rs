//! The unschedulable-pod controller, in BigFleet's default "unschedulable-only"
//! mode: one CapacityRequest per Pod that the scheduler marked
//! `PodScheduled=False/Unschedulable`, in the Pod's namespace, named after it
//! and owned by it, so garbage collection removes it with the Pod. That caps
//! the request count at the unschedulable-Pod count.
//!
//! It watches only unbound Pods (`spec.nodeName=`): bound Pods never need a
//! request, and at scale they are nearly all of them. Creating is idempotent
//! (AlreadyExists means done) and the CapacityRequest cache is consulted
//! first, so a restart re-lists without re-creating.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Api, ObjectMeta, PostParams};
use kube::runtime::controller::{Action, Config, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Client, Resource, ResourceExt};
use scaletest_core::constants::{MANAGED_BY_LABEL, RUN_LABEL};
use scaletest_core::crd::{CapacityRequest, CapacityRequestSpec, Need};
use tokio_util::sync::CancellationToken;

use crate::metrics::{Metrics, operation};
use crate::shape::{Shape, pod_shape};
use crate::{FIELD_MANAGER, backoff};

/// How often a Pod that has its request is looked at again, in case someone
/// deleted the request: a cache lookup, so cheap even for many Pods.
const RESYNC: Duration = Duration::from_secs(300);
/// How soon to look again when a request of the Pod's name belongs to an
/// earlier Pod of that name, which garbage collection is about to remove.
const AWAIT_GC: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub enum PodError {
    #[error("cannot create CapacityRequest {namespace}/{name}: {error}")]
    Create { namespace: String, name: String, error: kube::Error },
}

/// A Pod the scheduler found no Node for, and still waiting for one.
pub fn is_unschedulable(pod: &Pod) -> bool {
    let unbound = pod.spec.as_ref().is_none_or(|s| s.node_name.as_deref().unwrap_or_default().is_empty());
    let marked = pod.status.as_ref().and_then(|s| s.conditions.as_ref()).is_some_and(|cs| {
        cs.iter()
            .any(|c| c.type_ == "PodScheduled" && c.status == "False" && c.reason.as_deref() == Some("Unschedulable"))
    });
    pod.metadata.deletion_timestamp.is_none() && unbound && marked
}

/// The CapacityRequest standing for `pod`: one Pod of its shape.
pub fn capacity_request_for(pod: &Pod, shape: Shape) -> Option<CapacityRequest> {
    let owner = OwnerReference {
        // Blocking the owner's deletion needs rights on pods/finalizers and buys nothing here.
        block_owner_deletion: Some(false),
        ..pod.controller_owner_ref(&())?
    };
    let mut labels = BTreeMap::from([(MANAGED_BY_LABEL.to_string(), crate::NAME.to_string())]);
    // Runs tear down by this label: the request goes with the run's Pods.
    if let Some(run) = pod.labels().get(RUN_LABEL) {
        labels.insert(RUN_LABEL.to_string(), run.clone());
    }
    Some(CapacityRequest {
        metadata: ObjectMeta {
            name: Some(pod.name_any()),
            namespace: pod.namespace(),
            owner_references: Some(vec![owner]),
            labels: Some(labels),
            ..Default::default()
        },
        spec: CapacityRequestSpec {
            need: Need { count: 1, cpu: Quantity(shape.cpu()), memory: Quantity(shape.memory()) },
        },
        status: None,
    })
}

struct Ctx {
    client: Client,
    requests: Store<CapacityRequest>,
    metrics: Metrics,
    /// Consecutive failures per Pod, for the error policy's backoff.
    failures: Mutex<HashMap<ObjectRef<Pod>, u32>>,
}

impl Ctx {
    fn succeeded(&self, pod: &Pod) {
        self.failures.lock().expect("failures lock").remove(&ObjectRef::from_obj(pod));
    }
}

async fn reconcile(pod: Arc<Pod>, ctx: Arc<Ctx>) -> Result<Action, PodError> {
    let result = ensure_request(&pod, &ctx).await;
    if result.is_ok() {
        ctx.succeeded(&pod);
    }
    result
}

async fn ensure_request(pod: &Pod, ctx: &Ctx) -> Result<Action, PodError> {
    if !is_unschedulable(pod) {
        return Ok(Action::await_change());
    }
    let namespace = pod.namespace().unwrap_or_default();
    let name = pod.name_any();
    if let Some(existing) = ctx.requests.get(&ObjectRef::new(&name).within(&namespace)) {
        let owners = existing.owner_references();
        let stale = owners.iter().any(|o| o.kind == "Pod" && Some(&o.uid) != pod.uid().as_ref());
        return Ok(Action::requeue(if stale { AWAIT_GC } else { RESYNC }));
    }
    let shape = match pod_shape(pod) {
        Ok(shape) => shape,
        Err(e) => {
            // Retrying cannot help until the Pod changes (a Pod's requests rarely do).
            ctx.metrics.error(operation::POD_REQUESTS);
            tracing::warn!(pod = %format!("{namespace}/{name}"), error = %e, "cannot size the Pod; skipping it");
            return Ok(Action::await_change());
        }
    };
    let Some(cr) = capacity_request_for(pod, shape) else {
        // Only a Pod without a uid, i.e. never one from the apiserver.
        return Ok(Action::await_change());
    };
    let api: Api<CapacityRequest> = Api::namespaced(ctx.client.clone(), &namespace);
    let params = PostParams { field_manager: Some(FIELD_MANAGER.into()), ..Default::default() };
    match api.create(&params, &cr).await {
        Ok(_) => {
            ctx.metrics.capacity_requests_created.inc();
            Ok(Action::requeue(RESYNC))
        }
        // Created already (by an earlier run, or a reconcile the cache had not caught up with).
        // Look again soon in case it was an earlier Pod's, on its way out.
        Err(kube::Error::Api(s)) if s.is_already_exists() => Ok(Action::requeue(AWAIT_GC)),
        Err(error) => Err(PodError::Create { namespace, name, error }),
    }
}

fn error_policy(pod: Arc<Pod>, err: &PodError, ctx: Arc<Ctx>) -> Action {
    ctx.metrics.error(operation::CREATE_CAPACITY_REQUEST);
    let failures = {
        let mut failures = ctx.failures.lock().expect("failures lock");
        let n = failures.entry(ObjectRef::from_obj(&*pod)).or_default();
        *n = n.saturating_add(1);
        *n
    };
    let wait = backoff::delay(failures);
    tracing::warn!(error = %err, retry_in = ?wait, "retrying");
    Action::requeue(wait)
}

pub struct PodController {
    controller: Controller<Pod>,
    ctx: Arc<Ctx>,
    concurrency: u16,
}

impl PodController {
    pub fn new(client: Client, requests: Store<CapacityRequest>, metrics: Metrics, concurrency: u16) -> Self {
        let pods: Api<Pod> = Api::all(client.clone());
        let controller = Controller::new(pods, watcher::Config::default().fields("spec.nodeName="));
        let ctx = Arc::new(Ctx { client, requests, metrics, failures: Mutex::default() });
        Self { controller, ctx, concurrency }
    }

    /// The unbound Pods it watches (the provisioner checks owners against it).
    pub fn store(&self) -> Store<Pod> {
        self.controller.store()
    }

    pub async fn run(self, shutdown: CancellationToken) {
        let metrics = self.ctx.metrics.clone();
        self.controller
            .with_config(Config::default().concurrency(self.concurrency))
            .graceful_shutdown_on(async move { shutdown.cancelled().await })
            .run(reconcile, error_policy, self.ctx)
            .for_each(|result| {
                // Reconcile errors went through error_policy; what is left here is the Pod watch.
                if let Err(kube::runtime::controller::Error::QueueError(e)) = result {
                    metrics.error(operation::WATCH_PODS);
                    tracing::warn!(error = %e, "watching Pods failed; retrying with backoff");
                }
                futures::future::ready(())
            })
            .await;
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::{PodCondition, PodSpec, PodStatus};

    use super::*;

    fn pod(condition: Option<(&str, &str)>, node: Option<&str>) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some("web-0".into()),
                namespace: Some("shop".into()),
                uid: Some("pod-uid".into()),
                labels: Some([(RUN_LABEL.to_string(), "20260101-000000-smoke".to_string())].into()),
                ..Default::default()
            },
            spec: Some(PodSpec { node_name: node.map(Into::into), ..Default::default() }),
            status: Some(PodStatus {
                conditions: condition.map(|(status, reason)| {
                    vec![PodCondition {
                        type_: "PodScheduled".into(),
                        status: status.into(),
                        reason: Some(reason.into()),
                        ..Default::default()
                    }]
                }),
                ..Default::default()
            }),
        }
    }

    #[test]
    fn only_unbound_pods_marked_unschedulable_need_capacity() {
        assert!(is_unschedulable(&pod(Some(("False", "Unschedulable")), None)));
        assert!(is_unschedulable(&pod(Some(("False", "Unschedulable")), Some(""))));
        assert!(!is_unschedulable(&pod(Some(("False", "Unschedulable")), Some("node-1"))));
        assert!(!is_unschedulable(&pod(Some(("False", "SchedulingGated")), None)));
        assert!(!is_unschedulable(&pod(Some(("True", "")), None)));
        assert!(!is_unschedulable(&pod(None, None)));
        let mut deleting = pod(Some(("False", "Unschedulable")), None);
        deleting.metadata.deletion_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(k8s_openapi::jiff::Timestamp::now()));
        assert!(!is_unschedulable(&deleting));
    }

    #[test]
    fn the_request_is_named_after_and_owned_by_its_pod() {
        let shape = Shape { cpu_millis: 350, memory_bytes: 192 << 20 };
        let cr = capacity_request_for(&pod(Some(("False", "Unschedulable")), None), shape).unwrap();
        assert_eq!((cr.name_any().as_str(), cr.namespace().as_deref()), ("web-0", Some("shop")));
        let owner = &cr.owner_references()[0];
        assert_eq!((owner.kind.as_str(), owner.name.as_str(), owner.uid.as_str()), ("Pod", "web-0", "pod-uid"));
        assert_eq!((owner.api_version.as_str(), owner.controller), ("v1", Some(true)));
        assert_eq!(cr.spec.need, Need { count: 1, cpu: Quantity("350m".into()), memory: Quantity("192Mi".into()) });
        assert_eq!(cr.labels()[RUN_LABEL], "20260101-000000-smoke");
        assert_eq!(cr.labels()[MANAGED_BY_LABEL], "scaletest-sut");
        assert!(cr.status.is_none());
    }
}

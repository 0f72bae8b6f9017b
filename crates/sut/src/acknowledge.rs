//! Acknowledging Pending CapacityRequests, at most `--acknowledge-concurrency`
//! status writes at a time (BigFleet's AcknowledgeConcurrency: too few and the
//! writes queue behind each other at a thousand pending requests, too many and
//! they crowd the apiserver). A malformed request is marked Failed instead.
//!
//! Each request is queued once: a `tracked` entry holds it from first sight
//! until the watch shows it acknowledged (the cache can trail a write by a
//! second with kine), so watch events and the provisioner's sweep can offer it
//! as often as they like without a second write. A failed write is retried
//! with exponential backoff.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Client, ResourceExt};
use scaletest_core::crd::{CapacityRequest, CapacityRequestPhase};
use serde_json::json;
use tokio::sync::{Semaphore, mpsc};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::metrics::{Metrics, operation};
use crate::shape::parse_request;
use crate::{FIELD_MANAGER, backoff};

type Key = ObjectRef<CapacityRequest>;

/// Queue of requests to acknowledge; drained by [`Acknowledger::run`].
pub struct Queue(mpsc::UnboundedReceiver<Key>);

/// Whether `cr` still waits for its acknowledgement.
pub fn is_pending(cr: &CapacityRequest) -> bool {
    cr.metadata.deletion_timestamp.is_none()
        && matches!(cr.status.as_ref().and_then(|s| s.phase), None | Some(CapacityRequestPhase::Pending))
}

/// The status patch that acknowledges a well-formed request, or fails a
/// malformed one. `resourceVersion` makes it conditional: it applies only to
/// the version that was checked, so a stale cache can never overwrite a later
/// phase.
pub fn status_patch(cr: &CapacityRequest, now: Timestamp) -> (serde_json::Value, Result<(), String>) {
    let rv = cr.resource_version();
    match parse_request(&cr.spec) {
        Ok(_) => (
            json!({
                "metadata": {"resourceVersion": rv},
                "status": {"phase": CapacityRequestPhase::Acknowledged, "acknowledgedAt": Time(now)},
            }),
            Ok(()),
        ),
        Err(malformed) => {
            let message = malformed.to_string();
            (
                json!({
                    "metadata": {"resourceVersion": rv},
                    "status": {"phase": CapacityRequestPhase::Failed, "message": message},
                }),
                Err(message),
            )
        }
    }
}

struct Tracked {
    first_seen: Instant,
    failures: u32,
    /// Once the status is written: the version it was written against, until
    /// the cache shows the write.
    written_against: Option<String>,
}

struct Inner {
    client: Client,
    store: Store<CapacityRequest>,
    queue: mpsc::UnboundedSender<Key>,
    tracked: Mutex<HashMap<Key, Tracked>>,
    permits: Arc<Semaphore>,
    metrics: Metrics,
}

#[derive(Clone)]
pub struct Acknowledger(Arc<Inner>);

impl Acknowledger {
    pub fn new(client: Client, store: Store<CapacityRequest>, concurrency: usize, metrics: Metrics) -> (Self, Queue) {
        let (tx, rx) = mpsc::unbounded_channel();
        let inner = Inner {
            client,
            store,
            queue: tx,
            tracked: Mutex::default(),
            permits: Arc::new(Semaphore::new(concurrency.max(1))),
            metrics,
        };
        (Self(Arc::new(inner)), Queue(rx))
    }

    /// Queues `cr` if it is pending and not tracked already. `cr` must be in the
    /// store by now (the watch loop offers after the reflector applied it).
    pub fn offer(&self, cr: &CapacityRequest) {
        let key = ObjectRef::from_obj(cr);
        let mut tracked = self.0.tracked.lock().expect("tracked lock");
        if !is_pending(cr) {
            // The cache has caught up with the write (or someone else acknowledged it).
            tracked.remove(&key);
            return;
        }
        match tracked.get(&key).map(|t| t.written_against.as_ref()) {
            // Queued, in flight or waiting to retry.
            Some(None) => return,
            // Written, and the cache still shows the version written against. (It never
            // goes back to an older one: that version came from the cache.)
            Some(Some(rv)) if cr.resource_version().as_ref() == Some(rv) => return,
            // Never seen, or pending again in a later version (someone reset it).
            _ => {}
        }
        tracked.insert(key.clone(), Tracked { first_seen: Instant::now(), failures: 0, written_against: None });
        let _ = self.0.queue.send(key);
    }

    /// Drops a deleted request (a queued copy finds nothing in the store).
    pub fn forget(&self, cr: &CapacityRequest) {
        self.0.tracked.lock().expect("tracked lock").remove(&ObjectRef::from_obj(cr));
    }

    /// Drains the queue until `shutdown`, then lets writes in flight finish.
    pub async fn run(self, mut queue: Queue, shutdown: CancellationToken) {
        let writes = TaskTracker::new();
        loop {
            let key = tokio::select! {
                _ = shutdown.cancelled() => break,
                key = queue.0.recv() => match key { Some(k) => k, None => break },
            };
            let permit = tokio::select! {
                _ = shutdown.cancelled() => break,
                p = self.0.permits.clone().acquire_owned() => p.expect("the semaphore is never closed"),
            };
            let this = self.clone();
            writes.spawn(async move {
                this.acknowledge(key).await;
                drop(permit);
            });
        }
        writes.close();
        writes.wait().await;
    }

    fn untrack(&self, key: &Key) {
        self.0.tracked.lock().expect("tracked lock").remove(key);
    }

    /// Marks the status written against `rv`; returns when the request was first seen.
    fn written(&self, key: &Key, rv: Option<String>) -> Option<Instant> {
        let mut tracked = self.0.tracked.lock().expect("tracked lock");
        let t = tracked.get_mut(key)?;
        t.written_against = Some(rv.unwrap_or_default());
        Some(t.first_seen)
    }

    async fn acknowledge(&self, key: Key) {
        let Some(cr) = self.0.store.get(&key).filter(|cr| is_pending(cr)) else {
            // Deleted, or acknowledged meanwhile.
            self.untrack(&key);
            return;
        };
        let namespace = key.namespace.clone().unwrap_or_default();
        let api: Api<CapacityRequest> = Api::namespaced(self.0.client.clone(), &namespace);
        let (patch, verdict) = status_patch(&cr, Timestamp::now());
        let params = PatchParams { field_manager: Some(FIELD_MANAGER.into()), ..Default::default() };
        match api.patch_status(&key.name, &params, &Patch::Merge(&patch)).await {
            Ok(_) => {
                let first_seen = self.written(&key, cr.resource_version());
                match verdict {
                    Ok(()) => {
                        if let Some(t) = first_seen {
                            self.0.metrics.acknowledge_duration.observe(t.elapsed().as_secs_f64());
                        }
                        self.0.metrics.acknowledged.inc();
                    }
                    Err(message) => {
                        self.0.metrics.failed.inc();
                        tracing::warn!(%namespace, name = %key.name, reason = %message, "malformed CapacityRequest marked Failed");
                    }
                }
            }
            Err(kube::Error::Api(s)) if s.is_not_found() => {
                self.untrack(&key);
            }
            Err(e) => {
                // A conflict only means the cache was behind: retry on the newer version, quietly.
                let conflict = matches!(&e, kube::Error::Api(s) if s.is_conflict());
                if !conflict {
                    self.0.metrics.error(operation::ACKNOWLEDGE);
                    tracing::warn!(%namespace, name = %key.name, error = %e, "acknowledging failed; retrying");
                }
                self.retry_later(key);
            }
        }
    }

    fn retry_later(&self, key: Key) {
        let failures = {
            let mut tracked = self.0.tracked.lock().expect("tracked lock");
            let Some(t) = tracked.get_mut(&key) else { return };
            t.failures = t.failures.saturating_add(1);
            t.failures
        };
        let queue = self.0.queue.clone();
        tokio::spawn(async move {
            tokio::time::sleep(backoff::delay(failures)).await;
            // After shutdown nobody listens any more; nothing to do then.
            let _ = queue.send(key);
        });
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
    use scaletest_core::crd::{CapacityRequestSpec, CapacityRequestStatus, Need};

    use super::*;

    fn cr(count: u32, cpu: &str, phase: Option<CapacityRequestPhase>) -> CapacityRequest {
        let mut cr = CapacityRequest::new(
            "r",
            CapacityRequestSpec { need: Need { count, cpu: Quantity(cpu.into()), memory: Quantity("1Gi".into()) } },
        );
        cr.metadata.resource_version = Some("42".into());
        cr.status = phase.map(|p| CapacityRequestStatus { phase: Some(p), ..Default::default() });
        cr
    }

    #[test]
    fn pending_means_no_phase_or_pending() {
        assert!(is_pending(&cr(1, "1", None)));
        assert!(is_pending(&cr(1, "1", Some(CapacityRequestPhase::Pending))));
        assert!(!is_pending(&cr(1, "1", Some(CapacityRequestPhase::Acknowledged))));
        assert!(!is_pending(&cr(1, "1", Some(CapacityRequestPhase::Failed))));
    }

    #[test]
    fn acknowledges_a_well_formed_request_conditionally() {
        let now = Timestamp::from_second(1_700_000_000).unwrap();
        let (patch, verdict) = status_patch(&cr(2, "250m", None), now);
        assert_eq!(verdict, Ok(()));
        assert_eq!(
            patch,
            json!({
                "metadata": {"resourceVersion": "42"},
                "status": {"phase": "Acknowledged", "acknowledgedAt": "2023-11-14T22:13:20Z"},
            })
        );
    }

    #[test]
    fn fails_a_malformed_request_with_the_reason() {
        let now = Timestamp::now();
        for (request, reason) in [(cr(1, "lots", None), "spec.need.cpu"), (cr(0, "1", None), "spec.need.count is 0")] {
            let (patch, verdict) = status_patch(&request, now);
            let message = verdict.unwrap_err();
            assert!(message.contains(reason), "{message}");
            assert_eq!(patch["status"]["phase"], "Failed");
            assert_eq!(patch["status"]["message"], message.as_str());
            assert_eq!(patch["metadata"]["resourceVersion"], "42");
        }
    }
}

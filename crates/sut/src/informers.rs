//! The caches the provisioner reads: every CapacityRequest and every
//! UpcomingNode, each kept by one watch (kube-runtime `watcher` + reflector,
//! with its default backoff, so an unreachable apiserver is retried ever more
//! slowly and the loop carries on). The CapacityRequest watch also hands each
//! pending request to the acknowledger as soon as the cache holds it.

use std::pin::pin;

use futures::{Stream, StreamExt};
use kube::runtime::reflector::store::Writer;
use kube::runtime::watcher::{self, Event};
use kube::runtime::{WatchStreamExt, watcher as watch};
use kube::{Api, Client, Resource, ResourceExt};
use scaletest_core::crd::{CapacityRequest, UpcomingNode};
use serde::de::DeserializeOwned;
use tokio_util::sync::CancellationToken;

use crate::acknowledge::{Acknowledger, is_pending};
use crate::metrics::{Metrics, operation};

/// managedFields are most of an object's bytes and never read here; at a
/// quarter of a million requests per cluster that is most of the cache.
fn trimmed<K>(api: Api<K>) -> impl Stream<Item = watcher::Result<Event<K>>> + Send
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug + Send + 'static,
{
    watch(api, watcher::Config::default()).modify(|o| o.managed_fields_mut().clear()).default_backoff()
}

/// Runs the watch until `shutdown`, passing every event to `on_event` after the
/// store has applied it.
async fn drive<K>(
    api: Api<K>,
    writer: Writer<K>,
    metrics: &Metrics,
    failed_operation: &'static str,
    shutdown: CancellationToken,
    mut on_event: impl FnMut(Event<K>),
) where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
{
    let mut events = pin!(trimmed(api).reflect(writer));
    loop {
        let event = tokio::select! {
            _ = shutdown.cancelled() => return,
            e = events.next() => e,
        };
        match event {
            Some(Ok(e)) => on_event(e),
            Some(Err(e)) => {
                metrics.error(failed_operation);
                tracing::warn!(kind = %K::kind(&()), error = %e, "watch failed; retrying with backoff");
            }
            // A watcher never ends by itself.
            None => return,
        }
    }
}

pub async fn capacity_requests(
    client: Client,
    writer: Writer<CapacityRequest>,
    acknowledger: Acknowledger,
    metrics: Metrics,
    shutdown: CancellationToken,
) {
    // During a (re)list the store keeps serving the previous state until
    // InitDone; pending requests seen meanwhile are offered from then on, once
    // the acknowledger can find them in the store.
    let mut listed: Vec<CapacityRequest> = Vec::new();
    drive(Api::all(client), writer, &metrics, operation::WATCH_CAPACITY_REQUESTS, shutdown, |event| match event {
        Event::Apply(cr) => acknowledger.offer(&cr),
        Event::Delete(cr) => acknowledger.forget(&cr),
        Event::Init => listed.clear(),
        Event::InitApply(cr) if is_pending(&cr) => listed.push(cr),
        Event::InitApply(_) => {}
        Event::InitDone => listed.drain(..).for_each(|cr| acknowledger.offer(&cr)),
    })
    .await;
}

pub async fn upcoming_nodes(
    client: Client,
    writer: Writer<UpcomingNode>,
    metrics: Metrics,
    shutdown: CancellationToken,
) {
    drive(Api::all(client), writer, &metrics, operation::WATCH_UPCOMING_NODES, shutdown, |_| {}).await;
}

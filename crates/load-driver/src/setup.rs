//! What happens before the first phase: resolving a manifest's kind, creating the
//! namespaces, and adopting the objects a previous instance of the driver created.
//! Each step retries with backoff until it succeeds or shutdown: an apiserver that is
//! not up yet only delays the run.

use std::collections::BTreeSet;
use std::fmt::Display;
use std::future::Future;
use std::path::Path;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use kube::api::{ApiResource, DynamicObject, ListParams, PostParams};
use kube::core::GroupVersionKind;
use kube::discovery::Scope;
use kube::{Api, Client};
use tokio_util::sync::CancellationToken;

use crate::metrics::{Metrics, Operation};
use crate::objects::{self, Factory};
use crate::ops::backoff;
use crate::phases::Cancelled;
use crate::ratelimit::TokenBucket;

/// Page size when listing the run's objects.
const LIST_PAGE: u32 = 500;
/// How often the start gate is looked for.
const GATE_POLL: Duration = Duration::from_millis(250);

/// Calls `attempt` until it returns Ok (backing off, counting `operation` errors when
/// given) or shutdown fires.
pub async fn retry_until<T, E, F, Fut>(
    shutdown: &CancellationToken,
    what: &str,
    errors: Option<(&Metrics, Operation)>,
    mut attempt: F,
) -> Result<T, Cancelled>
where
    E: Display,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let mut failures = 0;
    loop {
        let result = tokio::select! {
            _ = shutdown.cancelled() => return Err(Cancelled),
            result = attempt() => result,
        };
        match result {
            Ok(v) => return Ok(v),
            Err(error) => {
                if let Some((metrics, operation)) = errors {
                    metrics.error(operation);
                    tracing::warn!(%error, attempt = failures + 1, "{what} failed; retrying");
                } else {
                    tracing::debug!(%error, attempt = failures + 1, "{what}: not yet");
                }
                let wait = backoff(failures);
                failures += 1;
                tokio::select! {
                    _ = shutdown.cancelled() => return Err(Cancelled),
                    _ = tokio::time::sleep(wait) => {}
                }
            }
        }
    }
}

/// The API resource of a manifest's `apiVersion`/`kind`, and whether it is namespaced.
pub async fn discover(
    client: &Client,
    gvk: &GroupVersionKind,
    metrics: &Metrics,
    shutdown: &CancellationToken,
) -> Result<(ApiResource, bool), Cancelled> {
    let what = format!("discovery of {}/{} {}", gvk.group, gvk.version, gvk.kind);
    let (resource, caps) = retry_until(shutdown, &what, Some((metrics, Operation::discovery)), || {
        kube::discovery::pinned_kind(client, gvk)
    })
    .await?;
    Ok((resource, caps.scope == Scope::Namespaced))
}

/// Creates the run's namespaces (an existing one is fine). With `pods`, also waits for
/// each one's `default` ServiceAccount, without which the apiserver rejects Pods.
pub async fn ensure_namespaces(
    client: &Client,
    factory: &Factory,
    pods: bool,
    limiter: &TokenBucket,
    metrics: &Metrics,
    shutdown: &CancellationToken,
) -> Result<(), Cancelled> {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    for name in factory.namespace_names() {
        let ns = objects::build_namespace(&name, &factory.run_id);
        retry_until(shutdown, &format!("creating namespace {name}"), Some((metrics, Operation::create)), || async {
            limiter.acquire().await;
            match namespaces.create(&PostParams::default(), &ns).await {
                Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
                other => other.map(drop),
            }
        })
        .await?;
        if pods {
            let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), &name);
            retry_until(shutdown, &format!("waiting for {name}/default ServiceAccount"), None, || async {
                limiter.acquire().await;
                match accounts.get_opt("default").await {
                    Ok(Some(_)) => Ok(()),
                    Ok(None) => Err("not created yet".to_owned()),
                    Err(e) => Err(e.to_string()),
                }
            })
            .await?;
        }
    }
    Ok(())
}

/// Indices of the run's objects that already exist and are not being deleted: what a
/// restarted driver holds already.
pub async fn adopt(
    client: &Client,
    resource: &ApiResource,
    factory: &Factory,
    metrics: &Metrics,
    shutdown: &CancellationToken,
) -> Result<BTreeSet<u64>, Cancelled> {
    let api: Api<DynamicObject> = Api::all_with(client.clone(), resource);
    let selector = objects::run_selector(&factory.run_id);
    retry_until(shutdown, "listing the run's objects", Some((metrics, Operation::list)), || async {
        let mut found = BTreeSet::new();
        let mut params = ListParams::default().labels(&selector).limit(LIST_PAGE);
        loop {
            let page = api.list(&params).await?;
            for obj in &page.items {
                if obj.metadata.deletion_timestamp.is_none()
                    && let Some(index) =
                        obj.metadata.name.as_deref().and_then(|n| objects::parse_index(&factory.prefix, n))
                {
                    found.insert(index);
                }
            }
            match page.metadata.continue_.filter(|c| !c.is_empty()) {
                Some(token) => params = params.continue_token(&token),
                None => return Ok::<_, kube::Error>(found),
            }
        }
    })
    .await
}

/// Returns once `gate` exists: the runner's go for the load.
pub async fn wait_for_gate(gate: &Path, shutdown: &CancellationToken) -> Result<(), Cancelled> {
    let mut logged = false;
    loop {
        if tokio::fs::try_exists(gate).await.unwrap_or(false) {
            tracing::info!(gate = %gate.display(), "start gate open");
            return Ok(());
        }
        if !logged {
            tracing::info!(gate = %gate.display(), "waiting for the start gate");
            logged = true;
        }
        tokio::select! {
            _ = shutdown.cancelled() => return Err(Cancelled),
            _ = tokio::time::sleep(GATE_POLL) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn retries_until_success_and_stops_on_shutdown() {
        let shutdown = CancellationToken::new();
        let calls = AtomicU32::new(0);
        let got = retry_until(&shutdown, "thing", None, || async {
            if calls.fetch_add(1, Ordering::Relaxed) < 3 { Err("down") } else { Ok(7) }
        })
        .await;
        assert_eq!(got, Ok(7));
        assert_eq!(calls.load(Ordering::Relaxed), 4);

        let stopper = shutdown.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(30)).await;
            stopper.cancel();
        });
        let never: Result<(), Cancelled> =
            retry_until(&shutdown, "never", None, || async { Err::<(), _>("down") }).await;
        assert_eq!(never, Err(Cancelled));
    }

    #[tokio::test]
    async fn the_gate_opens_when_its_file_appears() {
        let dir = tempfile::tempdir().unwrap();
        let gate = dir.path().join("start");
        let shutdown = CancellationToken::new();
        let waiting = tokio::spawn({
            let (gate, shutdown) = (gate.clone(), shutdown.clone());
            async move { wait_for_gate(&gate, &shutdown).await }
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        std::fs::write(&gate, "").unwrap();
        assert_eq!(tokio::time::timeout(Duration::from_secs(5), waiting).await.unwrap().unwrap(), Ok(()));

        shutdown.cancel();
        assert_eq!(wait_for_gate(&dir.path().join("never"), &shutdown).await, Err(Cancelled));
    }
}

//! `kwok.mode: faithful`'s reads: the watches and requests a kubelet and a kube-proxy
//! make per Node, opened against a simulated cluster for each of its kwok Nodes (kwok's
//! stages make the writes). Started by the supervisor as `scaletest-node-agents`; what it
//! opens is compared with a real node's in results/fidelity.md.

use std::collections::HashMap;
use std::fmt::Debug;

use futures::StreamExt;
use k8s_openapi::api::authentication::v1::{BoundObjectReference, TokenRequest, TokenRequestSpec};
use k8s_openapi::api::certificates::v1::PodCertificateRequest;
use k8s_openapi::api::core::v1::{ConfigMap, Node, Pod, Service, ServiceAccount};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::ServiceCIDR;
use k8s_openapi::api::node::v1::RuntimeClass;
use k8s_openapi::api::storage::v1::CSIDriver;
use kube::api::{Api, PostParams};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event, watcher};
use kube::{Client, Resource};
use scaletest_core::constants::{KWOK_NODE_ANNOTATION, KWOK_NODE_ANNOTATION_VALUE};
use serde::de::DeserializeOwned;
use tokio_util::sync::CancellationToken;

/// Sent with every request, so an audit log tells these apart (scripts/fidelity.py).
pub const USER_AGENT: &str = concat!("scaletest-node-agents/", env!("CARGO_PKG_VERSION"));

/// The ConfigMap every Pod's service-account volume projects (the kubelet watches each
/// ConfigMap and Secret its Pods reference, by name).
const ROOT_CA_CONFIGMAP: &str = "kube-root-ca.crt";

/// client-go's watch timeouts: uniform in [5, 10) min, so watches do not all reopen at once
/// (kube-rs's fixed 290 s would reopen every Node's watches together).
const WATCH_TIMEOUT_SECS: std::ops::Range<u32> = 300..600;

/// A watch's configuration as client-go's informers make it: listed from the watch cache
/// (resourceVersion=0), with a jittered timeout.
fn informer_config(field_selector: Option<&str>) -> watcher::Config {
    let config = watcher::Config::default().any_semantic().timeout(rand::random_range(WATCH_TIMEOUT_SECS));
    match field_selector {
        Some(f) => config.fields(f),
        None => config,
    }
}

/// A kubelet's bound service-account token lifetime (kube-apiserver's default for them).
const TOKEN_SECONDS: i64 = 3607;

/// What one of a Node's watches covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Watched {
    Pods,
    Node,
    Services,
    EndpointSlices,
    CsiDrivers,
    RuntimeClasses,
    PodCertificateRequests,
    ServiceCidrs,
}

/// One watch of a Node's agents: who opens it, what, and with which field selector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchSpec {
    pub agent: &'static str,
    pub watched: Watched,
    pub field_selector: Option<String>,
}

/// The watches a v1.37 kubelet and kube-proxy of `node` keep open whatever its Pods, as
/// a real node's audit log shows them (scripts/fidelity.py); each ConfigMap its Pods
/// reference adds one more, per namespace here (see [`ROOT_CA_CONFIGMAP`]).
pub fn watch_set(node: &str) -> Vec<WatchSpec> {
    let w = |agent, watched, field_selector: Option<String>| WatchSpec { agent, watched, field_selector };
    let by_name = Some(format!("metadata.name={node}"));
    let on_node = Some(format!("spec.nodeName={node}"));
    let with_ip = Some("spec.clusterIP!=None".to_string());
    vec![
        w("kubelet", Watched::Pods, on_node.clone()),
        w("kubelet", Watched::Node, by_name.clone()),
        w("kubelet", Watched::Services, with_ip.clone()),
        w("kubelet", Watched::CsiDrivers, None),
        w("kubelet", Watched::RuntimeClasses, None),
        w("kubelet", Watched::PodCertificateRequests, on_node),
        w("kube-proxy", Watched::Node, by_name),
        w("kube-proxy", Watched::Services, with_ip),
        w("kube-proxy", Watched::EndpointSlices, None),
        w("kube-proxy", Watched::ServiceCidrs, None),
    ]
}

/// Whether kwok runs `node` (and so whether it gets agents).
pub fn is_kwok_node(node: &Node) -> bool {
    node.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(KWOK_NODE_ANNOTATION))
        .is_some_and(|v| v == KWOK_NODE_ANNOTATION_VALUE)
}

/// Runs until `shutdown`: one agent set per kwok Node, ended when the Node goes.
pub async fn run(client: Client, shutdown: CancellationToken) {
    let mut agents: HashMap<String, CancellationToken> = HashMap::new();
    let nodes = watcher(Api::<Node>::all(client.clone()), informer_config(None)).default_backoff();
    let mut nodes = std::pin::pin!(nodes);
    loop {
        let event = tokio::select! {
            _ = shutdown.cancelled() => break,
            e = nodes.next() => e,
        };
        let seen: Vec<(String, bool)> = match event {
            None => break,
            Some(Err(e)) => {
                tracing::warn!(error = %e, "node watch");
                continue;
            }
            Some(Ok(Event::Apply(n) | Event::InitApply(n))) => {
                vec![(n.metadata.name.clone().unwrap_or_default(), is_kwok_node(&n))]
            }
            Some(Ok(Event::Delete(n))) => vec![(n.metadata.name.clone().unwrap_or_default(), false)],
            Some(Ok(Event::Init | Event::InitDone)) => vec![],
        };
        for (name, wanted) in seen {
            match (wanted, agents.contains_key(&name)) {
                (true, false) => {
                    let token = shutdown.child_token();
                    tokio::spawn(node_agents(client.clone(), name.clone(), token.clone()));
                    agents.insert(name, token);
                }
                (false, true) => agents.remove(&name).into_iter().for_each(|t| t.cancel()),
                _ => {}
            }
        }
    }
    agents.values().for_each(CancellationToken::cancel);
}

/// Keeps a watch open (relisting as informers do) and drops what it delivers.
async fn drain<K>(api: Api<K>, field_selector: Option<String>, stop: CancellationToken)
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + 'static,
{
    let stream = watcher(api, informer_config(field_selector.as_deref())).default_backoff();
    let mut stream = std::pin::pin!(stream);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            e = stream.next() => match e {
                None => return,
                Some(Err(e)) => tracing::debug!(error = %e, "watch"),
                Some(Ok(_)) => {}
            },
        }
    }
}

fn spawn_watch(client: &Client, spec: &WatchSpec, stop: &CancellationToken) {
    let (c, f, s) = (client.clone(), spec.field_selector.clone(), stop.clone());
    match spec.watched {
        Watched::Pods => {} // the Pod watch is the agent's own loop
        Watched::Node => drop(tokio::spawn(drain(Api::<Node>::all(c), f, s))),
        Watched::Services => drop(tokio::spawn(drain(Api::<Service>::all(c), f, s))),
        Watched::EndpointSlices => drop(tokio::spawn(drain(Api::<EndpointSlice>::all(c), f, s))),
        Watched::CsiDrivers => drop(tokio::spawn(drain(Api::<CSIDriver>::all(c), f, s))),
        Watched::RuntimeClasses => drop(tokio::spawn(drain(Api::<RuntimeClass>::all(c), f, s))),
        Watched::PodCertificateRequests => drop(tokio::spawn(drain(Api::<PodCertificateRequest>::all(c), f, s))),
        Watched::ServiceCidrs => drop(tokio::spawn(drain(Api::<ServiceCIDR>::all(c), f, s))),
    }
}

/// The service account whose token a Pod's projected volume asks for, if any.
pub fn projected_token_account(pod: &Pod) -> Option<String> {
    let spec = pod.spec.as_ref()?;
    let projects_token = spec.volumes.iter().flatten().any(|v| {
        v.projected
            .as_ref()
            .and_then(|p| p.sources.as_ref())
            .is_some_and(|s| s.iter().any(|s| s.service_account_token.is_some()))
    });
    projects_token.then(|| spec.service_account_name.clone().unwrap_or_else(|| "default".into()))
}

/// A kubelet's reads for one Node: its watch set; per Pod it starts, the service account
/// token request and the watch of the ConfigMap its volume projects; and the GET its
/// status manager makes before each status write (here: after each change it sees).
async fn node_agents(client: Client, node: String, stop: CancellationToken) {
    let specs = watch_set(&node);
    for spec in &specs {
        spawn_watch(&client, spec, &stop);
    }
    let pods_selector = specs.iter().find(|s| s.watched == Watched::Pods).and_then(|s| s.field_selector.clone());
    let stream = watcher(Api::<Pod>::all(client.clone()), informer_config(pods_selector.as_deref())).default_backoff();
    let mut stream = std::pin::pin!(stream);
    // A hash of each Pod's last seen status: a status write after the first sight costs
    // a GET (a kubelet's status manager reads the Pod before each write it makes; other
    // changes, such as the deletion mark, cost none).
    let mut statuses: HashMap<String, u64> = HashMap::new();
    // Pods per namespace, and the ConfigMap watch their volumes hold open.
    let mut namespaces: HashMap<String, (usize, CancellationToken)> = HashMap::new();
    let mut pod_namespace: HashMap<String, String> = HashMap::new();
    loop {
        let event = tokio::select! {
            _ = stop.cancelled() => return,
            e = stream.next() => e,
        };
        let (pod, gone) = match event {
            None => return,
            Some(Err(e)) => {
                tracing::debug!(node, error = %e, "pod watch");
                continue;
            }
            Some(Ok(Event::Apply(p) | Event::InitApply(p))) => (p, false),
            Some(Ok(Event::Delete(p))) => (p, true),
            Some(Ok(_)) => continue,
        };
        let (Some(uid), Some(ns), Some(name)) =
            (pod.metadata.uid.clone(), pod.metadata.namespace.clone(), pod.metadata.name.clone())
        else {
            continue;
        };
        if gone {
            statuses.remove(&uid);
            if pod_namespace.remove(&uid).is_some()
                && let Some((count, token)) = namespaces.get_mut(&ns)
            {
                *count -= 1;
                if *count == 0 {
                    token.cancel();
                    namespaces.remove(&ns);
                }
            }
            continue;
        }
        let status = status_hash(&pod);
        match statuses.insert(uid.clone(), status) {
            Some(before) if before != status => {
                let pods = Api::<Pod>::namespaced(client.clone(), &ns);
                tokio::spawn(async move {
                    if let Err(e) = pods.get(&name).await {
                        tracing::debug!(error = %e, "pod get");
                    }
                });
                continue;
            }
            Some(_) => continue,
            None => {} // first sight: the Pod starts on this Node
        }
        if let Some(account) = projected_token_account(&pod) {
            pod_namespace.insert(uid.clone(), ns.clone());
            let entry = namespaces.entry(ns.clone()).or_insert_with(|| {
                let token = stop.child_token();
                let api = Api::<ConfigMap>::namespaced(client.clone(), &ns);
                tokio::spawn(drain(api, Some(format!("metadata.name={ROOT_CA_CONFIGMAP}")), token.clone()));
                (0, token)
            });
            entry.0 += 1;
            let accounts = Api::<ServiceAccount>::namespaced(client.clone(), &ns);
            let request = token_request(&name, &uid);
            tokio::spawn(async move {
                if let Err(e) = accounts.create_token_request(&account, &PostParams::default(), &request).await {
                    tracing::debug!(error = %e, "token request");
                }
            });
        }
    }
}

fn status_hash(pod: &Pod) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    serde_json::to_string(&pod.status).unwrap_or_default().hash(&mut h);
    h.finish()
}

fn token_request(pod: &str, uid: &str) -> TokenRequest {
    TokenRequest {
        spec: Some(TokenRequestSpec {
            expiration_seconds: Some(TOKEN_SECONDS),
            bound_object_ref: Some(BoundObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Pod".into()),
                name: Some(pod.into()),
                uid: Some(uid.into()),
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        PodSpec, ProjectedVolumeSource, ServiceAccountTokenProjection, Volume, VolumeProjection,
    };

    #[test]
    fn a_node_gets_a_kubelets_and_a_kube_proxys_watches() {
        let set = watch_set("n1");
        assert_eq!(set.len(), 10);
        assert_eq!(set.iter().filter(|w| w.agent == "kubelet").count(), 6);
        let pods = set.iter().find(|w| w.watched == Watched::Pods).unwrap();
        assert_eq!(pods.field_selector.as_deref(), Some("spec.nodeName=n1"));
        assert!(
            set.iter()
                .filter(|w| w.watched == Watched::Node)
                .all(|w| w.field_selector.as_deref() == Some("metadata.name=n1"))
        );
    }

    #[test]
    fn only_a_projected_token_volume_asks_for_a_token() {
        let mut pod = Pod { spec: Some(PodSpec::default()), ..Default::default() };
        assert_eq!(projected_token_account(&pod), None);
        pod.spec.as_mut().unwrap().volumes = Some(vec![Volume {
            name: "kube-api-access".into(),
            projected: Some(ProjectedVolumeSource {
                sources: Some(vec![VolumeProjection {
                    service_account_token: Some(ServiceAccountTokenProjection {
                        path: "token".into(),
                        ..Default::default()
                    }),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        }]);
        assert_eq!(projected_token_account(&pod).as_deref(), Some("default"));
    }
}

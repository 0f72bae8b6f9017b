//! Applies a profile's `sut.manifests` to a cluster before its controller starts: CRDs
//! first (waited for until established, so the controller's informers find them), then
//! everything else, by server-side apply (re-applying after a restart changes nothing).

use std::collections::HashMap;
use std::time::Duration;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Client;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::core::GroupVersionKind;
use kube::discovery::{self, ApiCapabilities, ApiResource, Scope};
use kube::runtime::wait::{await_condition, conditions};
use scaletest_core::constants::FIELD_MANAGER;
use scaletest_core::manifests::Manifest;

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("cannot apply {what} from {file} (document {document})")]
    Apply {
        what: String,
        file: String,
        document: usize,
        #[source]
        source: kube::Error,
    },
    #[error("{what} from {file}: the apiserver serves no {api_version} {kind} (a CRD missing from sut.manifests?)")]
    UnknownKind { what: String, file: String, api_version: String, kind: String, source: kube::Error },
    #[error("CRD {name} not established within {timeout:?}")]
    NotEstablished { name: String, timeout: Duration },
}

/// Applies `objects` (already in apply order: see [`scaletest_core::manifests::read_all`]).
pub async fn apply(client: &Client, objects: &[Manifest], timeout: Duration) -> Result<(), ApplyError> {
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let mut kinds: HashMap<(String, String), (ApiResource, ApiCapabilities)> = HashMap::new();
    for m in objects {
        let err = |source| ApplyError::Apply {
            what: m.describe(),
            file: m.file.display().to_string(),
            document: m.document,
            source,
        };
        if m.is_crd() {
            crds.patch(&m.name, &params, &Patch::Apply(&m.object)).await.map_err(err)?;
            let established = await_condition(crds.clone(), &m.name, conditions::is_crd_established());
            if !matches!(tokio::time::timeout(timeout, established).await, Ok(Ok(_))) {
                return Err(ApplyError::NotEstablished { name: m.name.clone(), timeout });
            }
            continue;
        }
        let key = (m.api_version.clone(), m.kind.clone());
        if !kinds.contains_key(&key) {
            let (group, version) = match m.api_version.split_once('/') {
                Some((g, v)) => (g, v),
                None => ("", m.api_version.as_str()),
            };
            let gvk = GroupVersionKind::gvk(group, version, &m.kind);
            let found = discovery::pinned_kind(client, &gvk).await.map_err(|source| ApplyError::UnknownKind {
                what: m.describe(),
                file: m.file.display().to_string(),
                api_version: m.api_version.clone(),
                kind: m.kind.clone(),
                source,
            })?;
            kinds.insert(key.clone(), found);
        }
        let (resource, caps) = &kinds[&key];
        let api: Api<DynamicObject> = match caps.scope {
            Scope::Namespaced => {
                Api::namespaced_with(client.clone(), m.namespace.as_deref().unwrap_or("default"), resource)
            }
            Scope::Cluster => Api::all_with(client.clone(), resource),
        };
        api.patch(&m.name, &params, &Patch::Apply(&m.object)).await.map_err(err)?;
    }
    Ok(())
}

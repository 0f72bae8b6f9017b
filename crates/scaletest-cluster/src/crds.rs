//! Installs the project's CRDs into a freshly started cluster.

use std::time::Duration;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Client;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::wait::{await_condition, conditions};
use scaletest_core::constants::FIELD_MANAGER;

#[derive(Debug, thiserror::Error)]
pub enum CrdError {
    #[error("cannot apply CRD {name}")]
    Apply {
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("CRD {name} not established within {timeout:?}")]
    NotEstablished { name: String, timeout: Duration },
}

/// Server-side applies every CRD of [`scaletest_core::crd::all`] and waits until each is established.
pub async fn install(client: &Client, timeout: Duration) -> Result<(), CrdError> {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let params = PatchParams::apply(FIELD_MANAGER).force();
    for crd in scaletest_core::crd::all() {
        let name = crd.metadata.name.clone().unwrap_or_default();
        api.patch(&name, &params, &Patch::Apply(&crd))
            .await
            .map_err(|source| CrdError::Apply { name: name.clone(), source })?;
        let established = await_condition(api.clone(), &name, conditions::is_crd_established());
        match tokio::time::timeout(timeout, established).await {
            Ok(Ok(_)) => {}
            _ => return Err(CrdError::NotEstablished { name, timeout }),
        }
    }
    Ok(())
}

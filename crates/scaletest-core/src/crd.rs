//! The contract with the system under test (DESIGN §3): CapacityRequest and
//! UpcomingNode, group `scaletest.dev`, version `v1alpha1`. The YAML under
//! `crds/` is generated from these types (`tests/crds.rs` fails on drift).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Taint;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::{CustomResource, CustomResourceExt};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Demand for capacity: `need.count` Pods of `need.cpu` / `need.memory` each
/// (a Pod count, not a Node count). Owned by the Pod it stands for, when
/// there is one, so garbage collection removes it with the Pod.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "scaletest.dev",
    version = "v1alpha1",
    kind = "CapacityRequest",
    namespaced,
    status = "CapacityRequestStatus",
    shortname = "capreq",
    printcolumn = r#"{"name":"Count","type":"integer","jsonPath":".spec.need.count"}"#,
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct CapacityRequestSpec {
    pub need: Need,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Need {
    /// Number of Pods.
    // The bound keeps every typed (u32) watcher from meeting a value it cannot decode.
    #[schemars(range(max = 4294967295u32))]
    pub count: u32,
    /// CPU per Pod.
    pub cpu: Quantity,
    /// Memory per Pod.
    pub memory: Quantity,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
pub enum CapacityRequestPhase {
    #[default]
    Pending,
    Acknowledged,
    Fulfilled,
    Failed,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CapacityRequestStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<CapacityRequestPhase>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acknowledged_at: Option<Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fulfilled_at: Option<Time>,
    /// Names of the UpcomingNodes published for this request.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub upcoming_nodes: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// A Node the system under test has decided to provide. node-creator (or
/// pod-shim) turns each into exactly one fake, kwok-managed Node.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "scaletest.dev",
    version = "v1alpha1",
    kind = "UpcomingNode",
    status = "UpcomingNodeStatus",
    shortname = "upn",
    printcolumn = r#"{"name":"Node","type":"string","jsonPath":".status.nodeName"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct UpcomingNodeSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity_request_ref: Option<CapacityRequestRef>,
    pub allocatable: NodeAllocatable,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub taints: Vec<Taint>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CapacityRequestRef {
    pub namespace: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
pub struct NodeAllocatable {
    pub cpu: Quantity,
    pub memory: Quantity,
    pub pods: Quantity,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UpcomingNodeStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<Time>,
}

impl From<crate::density::Allocatable> for NodeAllocatable {
    fn from(a: crate::density::Allocatable) -> Self {
        Self { cpu: Quantity(a.cpu), memory: Quantity(a.memory), pods: Quantity(a.pods) }
    }
}

/// Every CRD the project defines, in install order.
pub fn all() -> Vec<CustomResourceDefinition> {
    vec![CapacityRequest::crd(), UpcomingNode::crd()]
}

/// The checked-in YAML for one CRD (file name, contents).
pub fn render(crd: &CustomResourceDefinition) -> (String, String) {
    let name = crd.metadata.name.clone().unwrap_or_default();
    let yaml = serde_yaml_ng::to_string(crd).expect("a CRD always serialises");
    (
        format!("{name}.yaml"),
        format!(
            "# Generated from crates/scaletest-core/src/crd.rs: do not edit.\n# Regenerate: UPDATE_CRDS=1 cargo test -p scaletest-core --test crds\n{yaml}"
        ),
    )
}

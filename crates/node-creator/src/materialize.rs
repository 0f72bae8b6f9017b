//! UpcomingNode → one fake Node: the job node-creator does alone and pod-shim
//! shares. The Node is named after its UpcomingNode and owned by it, so a
//! retry or a restart can never make a second one, and deleting the
//! UpcomingNode removes the Node.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Node, NodeSpec, NodeStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{OwnerReference, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ObjectMeta, Patch, PatchParams, PostParams};
use kube::{Resource, ResourceExt};
use scaletest_core::constants::{
    FAKE_NODE_TYPE_LABEL, FAKE_NODE_TYPE_VALUE, FIELD_MANAGER, KWOK_NODE_ANNOTATION, KWOK_NODE_ANNOTATION_VALUE,
    UPCOMING_NODE_LABEL,
};
use scaletest_core::crd::UpcomingNode;
use scaletest_core::quantity;

#[derive(Debug, thiserror::Error)]
pub enum MaterializeError {
    #[error("UpcomingNode {name} is malformed: {reason}")]
    Malformed { name: String, reason: String },
    #[error("Node {name} exists but belongs to UpcomingNode {owner:?}")]
    Conflict { name: String, owner: Option<String> },
    #[error("cannot create Node {name}")]
    Create {
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("cannot record Node {name} in its UpcomingNode's status")]
    Status {
        name: String,
        #[source]
        source: kube::Error,
    },
}

impl MaterializeError {
    /// Malformed input is skipped until it changes; everything else is retried.
    pub fn is_permanent(&self) -> bool {
        matches!(self, Self::Malformed { .. } | Self::Conflict { .. })
    }

    pub fn reason(&self) -> &'static str {
        match self {
            Self::Malformed { .. } => "malformed",
            Self::Conflict { .. } => "conflict",
            Self::Create { .. } => "create",
            Self::Status { .. } => "status",
        }
    }
}

/// The fake Node for `un`: kwok-managed, Allocatable = Capacity = the spec's.
pub fn build_node(un: &UpcomingNode) -> Result<Node, MaterializeError> {
    let name = un.name_any();
    let malformed = |reason: String| MaterializeError::Malformed { name: name.clone(), reason };
    let a = &un.spec.allocatable;
    quantity::parse_cpu_millis(&a.cpu.0).map_err(|e| malformed(format!("allocatable.cpu: {e}")))?;
    quantity::parse_memory_bytes(&a.memory.0).map_err(|e| malformed(format!("allocatable.memory: {e}")))?;
    let pods: u64 =
        a.pods.0.parse().map_err(|_| malformed(format!("allocatable.pods {:?} is not a count", a.pods.0)))?;
    if pods == 0 {
        return Err(malformed("allocatable.pods is 0".into()));
    }
    let resources = BTreeMap::from([
        ("cpu".to_string(), a.cpu.clone()),
        ("memory".to_string(), a.memory.clone()),
        ("pods".to_string(), a.pods.clone()),
    ]);
    let mut labels = un.spec.labels.clone();
    labels.insert(UPCOMING_NODE_LABEL.into(), name.clone());
    labels.entry(FAKE_NODE_TYPE_LABEL.into()).or_insert_with(|| FAKE_NODE_TYPE_VALUE.into());
    labels.insert("kubernetes.io/hostname".into(), name.clone());
    let owner = un.controller_owner_ref(&()).map(|o| OwnerReference { block_owner_deletion: Some(false), ..o });
    Ok(Node {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            labels: Some(labels),
            annotations: Some(BTreeMap::from([(KWOK_NODE_ANNOTATION.into(), KWOK_NODE_ANNOTATION_VALUE.into())])),
            owner_references: owner.map(|o| vec![o]),
            ..Default::default()
        },
        spec: Some(NodeSpec {
            taints: (!un.spec.taints.is_empty()).then(|| un.spec.taints.clone()),
            ..Default::default()
        }),
        status: Some(NodeStatus {
            allocatable: Some(resources.clone()),
            capacity: Some(resources),
            ..Default::default()
        }),
    })
}

/// What [`ensure_node`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Created the Node now.
    Created,
    /// The Node was already there (a retry or a restart); status recorded.
    AlreadyPresent,
    /// Node present and status already recorded: nothing to do.
    UpToDate,
}

/// Makes sure the Node of `un` exists and `un.status.nodeName` names it.
pub async fn ensure_node(
    nodes: &Api<Node>,
    upcoming: &Api<UpcomingNode>,
    un: &UpcomingNode,
) -> Result<Outcome, MaterializeError> {
    let name = un.name_any();
    let node = build_node(un)?;
    let recorded = un.status.as_ref().and_then(|s| s.node_name.as_deref()) == Some(name.as_str());
    let outcome = match nodes.create(&PostParams::default(), &node).await {
        Ok(_) => Outcome::Created,
        Err(kube::Error::Api(e)) if e.code == 409 => {
            let existing =
                nodes.get(&name).await.map_err(|source| MaterializeError::Create { name: name.clone(), source })?;
            let owner = existing.labels().get(UPCOMING_NODE_LABEL).cloned();
            if owner.as_deref() != Some(name.as_str()) {
                return Err(MaterializeError::Conflict { name, owner });
            }
            if recorded { Outcome::UpToDate } else { Outcome::AlreadyPresent }
        }
        Err(source) => return Err(MaterializeError::Create { name, source }),
    };
    if outcome != Outcome::UpToDate {
        let status = serde_json::json!({
            "apiVersion": "scaletest.dev/v1alpha1",
            "kind": "UpcomingNode",
            "status": { "nodeName": name, "createdAt": Time(Timestamp::now()) }
        });
        upcoming
            .patch_status(&name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&status))
            .await
            .map_err(|source| MaterializeError::Status { name: name.clone(), source })?;
    }
    Ok(outcome)
}

/// Seconds from the UpcomingNode's creation to now (creationTimestamp has 1 s resolution).
pub fn age_seconds(un: &UpcomingNode) -> Option<f64> {
    let created = un.meta().creation_timestamp.as_ref()?;
    let d = Timestamp::now().duration_since(created.0);
    Some(d.as_secs_f64().max(0.0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Taint;
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
    use scaletest_core::crd::{NodeAllocatable, UpcomingNodeSpec};

    fn upcoming(cpu: &str, pods: &str) -> UpcomingNode {
        let mut un = UpcomingNode::new(
            "un-1",
            UpcomingNodeSpec {
                capacity_request_ref: None,
                allocatable: NodeAllocatable {
                    cpu: Quantity(cpu.into()),
                    memory: Quantity("12800Mi".into()),
                    pods: Quantity(pods.into()),
                },
                labels: BTreeMap::from([("pool".into(), "a".into())]),
                taints: vec![Taint { key: "k".into(), effect: "NoSchedule".into(), ..Default::default() }],
            },
        );
        un.metadata.uid = Some("uid-1".into());
        un
    }

    #[test]
    fn node_is_kwok_managed_owned_and_sized_from_the_spec() {
        let n = build_node(&upcoming("10", "100")).unwrap();
        assert_eq!(n.metadata.name.as_deref(), Some("un-1"));
        assert_eq!(n.annotations()[KWOK_NODE_ANNOTATION], "fake");
        assert_eq!(n.labels()["pool"], "a");
        assert_eq!(n.labels()[UPCOMING_NODE_LABEL], "un-1");
        assert_eq!(n.labels()[FAKE_NODE_TYPE_LABEL], FAKE_NODE_TYPE_VALUE);
        let status = n.status.unwrap();
        assert_eq!(status.allocatable.as_ref().unwrap()["pods"].0, "100");
        assert_eq!(status.allocatable, status.capacity);
        assert_eq!(n.spec.unwrap().taints.unwrap()[0].key, "k");
        let owner = &n.metadata.owner_references.unwrap()[0];
        assert_eq!((owner.kind.as_str(), owner.uid.as_str()), ("UpcomingNode", "uid-1"));
    }

    #[test]
    fn malformed_allocatable_is_named_and_permanent() {
        for (cpu, pods) in [("lots", "100"), ("10", "many"), ("10", "0")] {
            let e = build_node(&upcoming(cpu, pods)).unwrap_err();
            assert!(e.is_permanent());
            assert!(e.to_string().starts_with("UpcomingNode un-1 is malformed"), "{e}");
        }
    }
}

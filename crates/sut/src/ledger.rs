//! Which CapacityRequests each UpcomingNode stands for.
//!
//! The UpcomingNode records it itself, in an annotation written by the same
//! request that creates the node or adds to it. So the apiserver, not this
//! process's memory, says what is in flight: after a restart the provisioner
//! re-reads it and neither provisions a request twice nor forgets one (the
//! requests' `status.upcomingNodes` is only a projection of it, repaired every
//! cycle). Only nodes still waiting out the provisioning delay live in memory,
//! and losing those on a crash loses nothing that was published.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::api::ObjectMeta;
use scaletest_core::constants::{MANAGED_BY_LABEL, RUN_LABEL};
use scaletest_core::crd::{CapacityRequestRef, UpcomingNode, UpcomingNodeSpec};
use scaletest_core::quantity::{self, QuantityError};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::shape::Shape;

/// Metadata label on every UpcomingNode this SUT creates (it only ever adds to those).
pub const PROVISIONED_BY_LABEL: &str = "scaletest.dev/provisioned-by";
pub const PROVISIONED_BY: &str = "scaletest-sut";
/// Annotation holding, as JSON, the per-Pod shape and the requests the node serves
/// (`{"podCpu", "podMemory", "capacityRequests": [{namespace, name, uid, pods}]}`).
pub const ASSIGNMENTS_ANNOTATION: &str = "scaletest.dev/capacity-requests";

/// `pods` Pods of one CapacityRequest placed on one UpcomingNode. `uid` tells a
/// request from a later one of the same name.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Assignment {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub pods: u32,
}

/// The annotation's content.
#[derive(Serialize, Deserialize, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
struct Record {
    pod_cpu: String,
    pod_memory: String,
    capacity_requests: Vec<Assignment>,
}

pub fn encode(shape: Shape, entries: &[Assignment]) -> String {
    let record = Record { pod_cpu: shape.cpu(), pod_memory: shape.memory(), capacity_requests: entries.to_vec() };
    serde_json::to_string(&record).expect("a record always serialises")
}

#[derive(Debug, Error)]
pub enum LedgerError {
    #[error("annotation {ASSIGNMENTS_ANNOTATION} is missing")]
    Missing,
    #[error("annotation {ASSIGNMENTS_ANNOTATION} is not a record")]
    Json(#[source] serde_json::Error),
    #[error("annotation {ASSIGNMENTS_ANNOTATION} has no usable shape")]
    Shape(#[source] QuantityError),
    #[error("spec.allocatable.pods {0:?} is not a Pod count")]
    Capacity(String),
}

/// Where a node stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NodeState {
    /// Decided; created once the provisioning delay has passed. Memory only.
    Planned,
    /// Created. `resource_version` guards additions against concurrent writers;
    /// `node_name` and `materialized_at` (`status.nodeName`, `status.createdAt`)
    /// say node-creator made its fake Node, and when.
    Published { resource_version: Option<String>, node_name: Option<String>, materialized_at: Option<Timestamp> },
}

/// One of this SUT's UpcomingNodes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LedgerNode {
    pub shape: Shape,
    /// Pods it holds (its `allocatable.pods`).
    pub capacity: u32,
    pub entries: Vec<Assignment>,
    pub state: NodeState,
}

impl LedgerNode {
    /// Reads one of our UpcomingNodes; `None` for anyone else's.
    pub fn read(un: &UpcomingNode) -> Option<Result<Self, LedgerError>> {
        if un.labels().get(PROVISIONED_BY_LABEL).map(String::as_str) != Some(PROVISIONED_BY) {
            return None;
        }
        Some(Self::parse(un))
    }

    fn parse(un: &UpcomingNode) -> Result<Self, LedgerError> {
        let raw = un.annotations().get(ASSIGNMENTS_ANNOTATION).ok_or(LedgerError::Missing)?;
        let record: Record = serde_json::from_str(raw).map_err(LedgerError::Json)?;
        let shape = Shape {
            cpu_millis: quantity::parse_cpu_millis(&record.pod_cpu).map_err(LedgerError::Shape)?,
            memory_bytes: quantity::parse_memory_bytes(&record.pod_memory).map_err(LedgerError::Shape)?,
        };
        let pods = &un.spec.allocatable.pods.0;
        let capacity = pods.parse().map_err(|_| LedgerError::Capacity(pods.clone()))?;
        let status = un.status.as_ref();
        Ok(Self {
            shape,
            capacity,
            entries: record.capacity_requests,
            state: NodeState::Published {
                resource_version: un.resource_version(),
                node_name: status.and_then(|s| s.node_name.clone()),
                materialized_at: status.and_then(|s| s.created_at.as_ref()).map(|t| t.0),
            },
        })
    }

    /// The UpcomingNode to create for this (planned) node: sized density ×
    /// shape, pointing at its first request, carrying its record.
    pub fn upcoming_node(&self, name: &str, run: Option<String>) -> UpcomingNode {
        let first = &self.entries[0];
        let mut labels = BTreeMap::from([
            (PROVISIONED_BY_LABEL.to_string(), PROVISIONED_BY.to_string()),
            (MANAGED_BY_LABEL.to_string(), crate::NAME.to_string()),
        ]);
        if let Some(run) = run {
            labels.insert(RUN_LABEL.to_string(), run);
        }
        UpcomingNode {
            metadata: ObjectMeta {
                name: Some(name.to_string()),
                labels: Some(labels),
                annotations: Some(BTreeMap::from([(
                    ASSIGNMENTS_ANNOTATION.to_string(),
                    encode(self.shape, &self.entries),
                )])),
                ..Default::default()
            },
            spec: UpcomingNodeSpec {
                capacity_request_ref: Some(CapacityRequestRef {
                    namespace: first.namespace.clone(),
                    name: first.name.clone(),
                    uid: Some(first.uid.clone()),
                }),
                allocatable: self.shape.allocatable(self.capacity).into(),
                labels: BTreeMap::new(),
                taints: Vec::new(),
            },
            status: None,
        }
    }

    /// Whether it can take more Pods: only until its fake Node exists. After
    /// that the scheduler owns the room, and a Pod it did not place there
    /// cannot be placed there by bookkeeping.
    pub fn is_open(&self) -> bool {
        matches!(self.state, NodeState::Planned | NodeState::Published { node_name: None, .. })
    }

    /// Whether every request in `entries` is also here (by uid).
    pub fn covers(&self, entries: &[Assignment]) -> bool {
        entries.iter().all(|e| self.entries.iter().any(|mine| mine.uid == e.uid))
    }

    /// Pods of live requests on this node; requests that are gone free their room.
    pub fn occupied(&self, live: impl Fn(&Assignment) -> bool) -> u32 {
        self.entries.iter().filter(|e| live(e)).fold(0u32, |sum, e| sum.saturating_add(e.pods))
    }
}

/// What one CapacityRequest holds across the ledger.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Holding {
    /// Pods on nodes still waiting out the provisioning delay.
    pub planned_pods: u32,
    /// Pods on created nodes whose fake Node does not exist yet.
    pub upcoming_pods: u32,
    /// Pods on created nodes whose fake Node exists.
    pub materialized_pods: u32,
    /// Created nodes holding it, sorted (the request's `status.upcomingNodes`).
    pub published_nodes: Vec<String>,
    /// When the latest of its fake Nodes appeared, when node-creator said so.
    pub materialized_at: Option<Timestamp>,
}

impl Holding {
    pub fn pods(&self) -> u32 {
        self.in_flight().saturating_add(self.materialized_pods)
    }

    /// Pods on nodes that are still coming.
    pub fn in_flight(&self) -> u32 {
        self.planned_pods.saturating_add(self.upcoming_pods)
    }
}

/// Every node this SUT planned or published, and every UpcomingNode name taken.
#[derive(Debug, Default)]
pub struct Ledger {
    pub nodes: BTreeMap<String, LedgerNode>,
    /// Names of all UpcomingNodes (anyone's) and of planned ones: new names avoid them.
    pub taken: BTreeSet<String>,
}

impl Ledger {
    pub fn insert(&mut self, name: String, node: LedgerNode) {
        self.taken.insert(name.clone());
        self.nodes.insert(name, node);
    }

    /// Per request uid.
    pub fn holdings(&self) -> HashMap<&str, Holding> {
        let mut out: HashMap<&str, Holding> = HashMap::new();
        for (name, node) in &self.nodes {
            for e in &node.entries {
                let h = out.entry(e.uid.as_str()).or_default();
                match &node.state {
                    NodeState::Planned => h.planned_pods = h.planned_pods.saturating_add(e.pods),
                    NodeState::Published { node_name: None, .. } => {
                        h.upcoming_pods = h.upcoming_pods.saturating_add(e.pods);
                        h.published_nodes.push(name.clone());
                    }
                    NodeState::Published { node_name: Some(_), materialized_at, .. } => {
                        h.materialized_pods = h.materialized_pods.saturating_add(e.pods);
                        h.published_nodes.push(name.clone());
                        h.materialized_at = h.materialized_at.max(*materialized_at);
                    }
                }
            }
        }
        // BTreeMap iteration already yields names in order.
        out
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use scaletest_core::crd::{NodeAllocatable, UpcomingNodeStatus};

    use super::*;

    fn a(uid: &str, pods: u32) -> Assignment {
        Assignment { namespace: "ns".into(), name: format!("cr-{uid}"), uid: uid.into(), pods }
    }

    const SHAPE: Shape = Shape { cpu_millis: 100, memory_bytes: 128 << 20 };

    fn upcoming(labelled: bool, annotation: Option<String>, node_name: Option<&str>) -> UpcomingNode {
        let mut un = UpcomingNode::new(
            "n1",
            UpcomingNodeSpec {
                capacity_request_ref: None,
                allocatable: NodeAllocatable {
                    cpu: Quantity("10".into()),
                    memory: Quantity("12800Mi".into()),
                    pods: Quantity("100".into()),
                },
                labels: Default::default(),
                taints: vec![],
            },
        );
        un.metadata = ObjectMeta {
            name: Some("n1".into()),
            resource_version: Some("7".into()),
            labels: labelled.then(|| [(PROVISIONED_BY_LABEL.to_string(), PROVISIONED_BY.to_string())].into()),
            annotations: annotation.map(|v| [(ASSIGNMENTS_ANNOTATION.to_string(), v)].into()),
            ..Default::default()
        };
        un.status = Some(UpcomingNodeStatus {
            node_name: node_name.map(Into::into),
            created_at: node_name.map(|_| Time(Timestamp::from_second(1_700_000_000).unwrap())),
        });
        un
    }

    #[test]
    fn reads_back_what_it_wrote() {
        let entries = vec![a("u1", 1), a("u2", 40)];
        let node = LedgerNode::read(&upcoming(true, Some(encode(SHAPE, &entries)), Some("n1"))).unwrap().unwrap();
        assert_eq!(
            node,
            LedgerNode {
                shape: SHAPE,
                capacity: 100,
                entries,
                state: NodeState::Published {
                    resource_version: Some("7".into()),
                    node_name: Some("n1".into()),
                    materialized_at: Some(Timestamp::from_second(1_700_000_000).unwrap()),
                },
            }
        );
        assert_eq!(node.occupied(|e| e.uid != "u2"), 1);
        assert!(node.covers(&[a("u2", 40)]) && !node.covers(&[a("u3", 1)]));
    }

    #[test]
    fn a_planned_node_becomes_an_upcoming_node_that_reads_back_the_same() {
        let planned = LedgerNode {
            shape: SHAPE,
            capacity: 100,
            entries: vec![a("u1", 1), a("u2", 2)],
            state: NodeState::Planned,
        };
        let un = planned.upcoming_node("sut-100m-128mi-1", Some("run-1".into()));
        let a = &un.spec.allocatable;
        assert_eq!((a.cpu.0.as_str(), a.memory.0.as_str(), a.pods.0.as_str()), ("10", "12800Mi", "100"));
        let first = un.spec.capacity_request_ref.as_ref().unwrap();
        assert_eq!((first.namespace.as_str(), first.name.as_str(), first.uid.as_deref()), ("ns", "cr-u1", Some("u1")));
        assert_eq!(un.labels()[PROVISIONED_BY_LABEL], PROVISIONED_BY);
        assert_eq!(un.labels()[RUN_LABEL], "run-1");
        let back = LedgerNode::read(&un).unwrap().unwrap();
        assert!(back.is_open(), "no fake Node yet");
        assert_eq!((back.shape, back.capacity, back.entries), (planned.shape, planned.capacity, planned.entries));
    }

    #[test]
    fn ignores_other_controllers_nodes_and_rejects_tampered_ones() {
        assert!(LedgerNode::read(&upcoming(false, None, None)).is_none());
        assert!(matches!(LedgerNode::read(&upcoming(true, None, None)), Some(Err(LedgerError::Missing))));
        assert!(matches!(LedgerNode::read(&upcoming(true, Some("{".into()), None)), Some(Err(LedgerError::Json(_)))));
    }

    #[test]
    fn holdings_split_planned_upcoming_and_materialized() {
        let mut l = Ledger::default();
        let at = |s| Some(Timestamp::from_second(s).unwrap());
        let published = |node_name: Option<&str>, materialized_at| NodeState::Published {
            resource_version: None,
            node_name: node_name.map(Into::into),
            materialized_at,
        };
        let node = |entries, state| LedgerNode { shape: SHAPE, capacity: 100, entries, state };
        l.insert("b".into(), node(vec![a("u1", 60)], published(None, None)));
        l.insert("a".into(), node(vec![a("u1", 40), a("u2", 1)], published(Some("a"), at(10))));
        l.insert("d".into(), node(vec![a("u1", 2)], published(Some("d"), at(20))));
        l.insert("c".into(), node(vec![a("u1", 5)], NodeState::Planned));
        let h = l.holdings();
        assert_eq!(
            h["u1"],
            Holding {
                planned_pods: 5,
                upcoming_pods: 60,
                materialized_pods: 42,
                published_nodes: vec!["a".into(), "b".into(), "d".into()],
                materialized_at: at(20),
            }
        );
        assert_eq!((h["u1"].pods(), h["u1"].in_flight()), (107, 65));
        assert_eq!(h["u2"].materialized_at, at(10));
        let open: Vec<_> = l.nodes.iter().filter(|(_, n)| n.is_open()).map(|(name, _)| name.as_str()).collect();
        assert_eq!(open, ["b", "c"]);
    }
}

//! Which CapacityRequests each UpcomingNode stands for.
//!
//! The UpcomingNode records it itself, in an annotation written by the same
//! request that creates the node or adds to it. So the apiserver, not this
//! process's memory, says what is in flight: after a restart the provisioner
//! re-reads it and neither provisions a request twice nor forgets one (the
//! requests' `status.upcomingNodes` is only a projection of it, repaired every
//! cycle). Only nodes still waiting out the provisioning delay live in memory,
//! and losing those on a crash loses nothing that was published.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

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

    fn add(&mut self, name: &str, node: &LedgerNode, pods: u32) {
        match &node.state {
            NodeState::Planned => self.planned_pods = self.planned_pods.saturating_add(pods),
            NodeState::Published { node_name: None, .. } => {
                self.upcoming_pods = self.upcoming_pods.saturating_add(pods);
                self.published_nodes.push(name.to_string());
            }
            NodeState::Published { node_name: Some(_), materialized_at, .. } => {
                self.materialized_pods = self.materialized_pods.saturating_add(pods);
                self.published_nodes.push(name.to_string());
                self.materialized_at = self.materialized_at.max(*materialized_at);
            }
        }
    }
}

/// Pods of request `uid` on `node`.
fn pods_of(node: &LedgerNode, uid: &str) -> u32 {
    node.entries.iter().filter(|e| e.uid == uid).fold(0u32, |sum, e| sum.saturating_add(e.pods))
}

/// The UpcomingNodes in the cache, each record parsed once per resourceVersion,
/// and indexed by request: a cycle over a quarter of a million requests then
/// touches only what changed and the requests that still need something.
#[derive(Debug, Default)]
pub struct Published {
    /// Every UpcomingNode by name (anyone's): its version, and our record if it is ours.
    nodes: HashMap<String, (Option<String>, Option<LedgerNode>)>,
    /// Request uid → the nodes whose record names it.
    by_request: HashMap<String, Vec<Arc<str>>>,
}

impl Published {
    /// Brings the index in line with the cache's UpcomingNodes.
    pub fn refresh(&mut self, cache: &[Arc<UpcomingNode>]) {
        let mut seen = HashSet::with_capacity(cache.len());
        for un in cache {
            let name = un.name_any();
            let rv = un.resource_version();
            seen.insert(name.clone());
            if self.nodes.get(&name).is_some_and(|(known, _)| *known == rv) {
                continue;
            }
            let node = match LedgerNode::read(un) {
                Some(Ok(node)) => Some(node),
                // Someone edited our record: the node takes no more requests, and the
                // ones it held are provisioned again rather than guessed at.
                Some(Err(e)) => {
                    tracing::warn!(upcoming_node = %name, error = %e, "unreadable UpcomingNode record");
                    None
                }
                None => None,
            };
            self.unindex(&name);
            if let Some(node) = &node {
                let shared: Arc<str> = name.as_str().into();
                for e in &node.entries {
                    self.by_request.entry(e.uid.clone()).or_default().push(shared.clone());
                }
            }
            self.nodes.insert(name, (rv, node));
        }
        let gone: Vec<String> = self.nodes.keys().filter(|n| !seen.contains(*n)).cloned().collect();
        for name in gone {
            self.unindex(&name);
            self.nodes.remove(&name);
        }
    }

    fn unindex(&mut self, name: &str) {
        let Some((_, Some(old))) = self.nodes.get(name) else { return };
        for e in &old.entries {
            if let Some(names) = self.by_request.get_mut(&e.uid) {
                names.retain(|n| &**n != name);
                if names.is_empty() {
                    self.by_request.remove(&e.uid);
                }
            }
        }
    }

    /// One of our nodes, as the cache shows it.
    pub fn get(&self, name: &str) -> Option<&LedgerNode> {
        self.nodes.get(name).and_then(|(_, node)| node.as_ref())
    }
}

/// One cycle's view: the cache's nodes ([`Published`]) overlaid with what this
/// process planned, or wrote and the cache does not show yet.
#[derive(Debug)]
pub struct Ledger<'a> {
    published: &'a Published,
    overlay: BTreeMap<String, LedgerNode>,
    overlay_by_request: HashMap<String, Vec<String>>,
    /// Names of all UpcomingNodes (anyone's) and of planned ones: new names avoid them.
    pub taken: BTreeSet<String>,
}

impl<'a> Ledger<'a> {
    pub fn new(published: &'a Published, overlay: BTreeMap<String, LedgerNode>) -> Self {
        let mut overlay_by_request: HashMap<String, Vec<String>> = HashMap::new();
        for (name, node) in &overlay {
            for e in &node.entries {
                overlay_by_request.entry(e.uid.clone()).or_default().push(name.clone());
            }
        }
        let taken = published.nodes.keys().chain(overlay.keys()).cloned().collect();
        Self { published, overlay, overlay_by_request, taken }
    }

    pub fn node(&self, name: &str) -> Option<&LedgerNode> {
        self.overlay.get(name).or_else(|| self.published.get(name))
    }

    /// Every node of ours, overlay first.
    pub fn nodes(&self) -> impl Iterator<Item = (&str, &LedgerNode)> {
        let cached = self
            .published
            .nodes
            .iter()
            .filter(|(name, _)| !self.overlay.contains_key(*name))
            .filter_map(|(name, (_, node))| Some((name.as_str(), node.as_ref()?)));
        self.overlay.iter().map(|(name, node)| (name.as_str(), node)).chain(cached)
    }

    /// What request `uid` holds.
    pub fn holding(&self, uid: &str) -> Holding {
        let mut h = Holding::default();
        let cached = self.published.by_request.get(uid).into_iter().flatten();
        for name in cached.filter(|name| !self.overlay.contains_key(&***name)) {
            if let Some(node) = self.published.get(name) {
                h.add(name, node, pods_of(node, uid));
            }
        }
        for name in self.overlay_by_request.get(uid).into_iter().flatten() {
            let node = &self.overlay[name];
            h.add(name, node, pods_of(node, uid));
        }
        h.published_nodes.sort_unstable();
        h.published_nodes.dedup();
        h
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

    fn published(node_name: Option<&str>, materialized_at: Option<Timestamp>) -> NodeState {
        NodeState::Published { resource_version: None, node_name: node_name.map(Into::into), materialized_at }
    }

    #[test]
    fn holdings_split_planned_upcoming_and_materialized() {
        let at = |s| Some(Timestamp::from_second(s).unwrap());
        let node = |entries, state| LedgerNode { shape: SHAPE, capacity: 100, entries, state };
        let empty = Published::default();
        let overlay = BTreeMap::from([
            ("b".to_string(), node(vec![a("u1", 60)], published(None, None))),
            ("a".to_string(), node(vec![a("u1", 40), a("u2", 1)], published(Some("a"), at(10)))),
            ("d".to_string(), node(vec![a("u1", 2)], published(Some("d"), at(20)))),
            ("c".to_string(), node(vec![a("u1", 5)], NodeState::Planned)),
        ]);
        let l = Ledger::new(&empty, overlay);
        let h = l.holding("u1");
        assert_eq!(
            h,
            Holding {
                planned_pods: 5,
                upcoming_pods: 60,
                materialized_pods: 42,
                published_nodes: vec!["a".into(), "b".into(), "d".into()],
                materialized_at: at(20),
            }
        );
        assert_eq!((h.pods(), h.in_flight()), (107, 65));
        assert_eq!(l.holding("u2").materialized_at, at(10));
        assert_eq!(l.holding("nobody"), Holding::default());
        let open: Vec<_> = l.nodes().filter(|(_, n)| n.is_open()).map(|(name, _)| name).collect();
        assert_eq!(open, ["b", "c"]);
        assert_eq!(l.taken.iter().collect::<Vec<_>>(), ["a", "b", "c", "d"]);
    }

    fn cached(name: &str, rv: &str, entries: &[Assignment], node_name: Option<&str>) -> Arc<UpcomingNode> {
        let planned = LedgerNode { shape: SHAPE, capacity: 100, entries: entries.to_vec(), state: NodeState::Planned };
        let mut un = planned.upcoming_node(name, None);
        un.metadata.resource_version = Some(rv.into());
        un.status = Some(UpcomingNodeStatus { node_name: node_name.map(Into::into), created_at: None });
        Arc::new(un)
    }

    #[test]
    fn the_index_follows_the_cache_version_by_version() {
        let mut p = Published::default();
        let foreign = Arc::new(upcoming(false, None, None));
        p.refresh(&[cached("x", "1", &[a("u1", 1)], None), foreign.clone()]);
        let l = Ledger::new(&p, BTreeMap::new());
        assert_eq!(l.holding("u1").upcoming_pods, 1);
        assert!(l.taken.contains("n1"), "anyone's name is taken");
        assert_eq!(l.nodes().count(), 1, "only ours are in the ledger");

        // A new version: u1 moved out, u2 in, and the fake Node exists.
        p.refresh(&[cached("x", "2", &[a("u2", 3)], Some("x")), foreign.clone()]);
        let l = Ledger::new(&p, BTreeMap::new());
        assert_eq!(l.holding("u1"), Holding::default());
        assert_eq!(l.holding("u2").materialized_pods, 3);

        // The overlay (a write the cache has not shown yet) wins over the cached version.
        let written = LedgerNode { state: published(None, None), ..l.node("x").unwrap().clone() };
        let written = LedgerNode { entries: vec![a("u2", 3), a("u3", 1)], ..written };
        let l = Ledger::new(&p, BTreeMap::from([("x".to_string(), written)]));
        assert_eq!((l.holding("u2").upcoming_pods, l.holding("u3").upcoming_pods), (3, 1));

        // Deleted: gone from the index.
        p.refresh(&[foreign]);
        let l = Ledger::new(&p, BTreeMap::new());
        assert_eq!(l.holding("u2"), Holding::default());
        assert!(!l.taken.contains("x"));
    }
}

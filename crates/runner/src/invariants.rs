//! What must hold in every simulated cluster at the end of the soak, whatever was
//! killed during it: nothing the chain was given is lost or doubled.
//!
//! [`check`] is pure (a [`Snapshot`] of the apiserver and the load-driver's own
//! counts in, one [`InvariantResult`] per rule out); [`settle`] reads the cluster and
//! checks again for a short while, so that a churn or a garbage collection in
//! flight at the instant of reading is not taken for a loss.

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::ListParams;
use kube::{Api, Client, ResourceExt};
use scaletest_core::constants::{
    FIELD_MANAGER, KWOK_NODE_ANNOTATION, KWOK_NODE_ANNOTATION_VALUE, RUN_LABEL, UPCOMING_NODE_LABEL,
};
use scaletest_core::crd::{CapacityRequest, CapacityRequestPhase, UpcomingNode};
use scaletest_core::http;
use scaletest_core::profile::{NodeSource, ObjectKind};
use serde::{Deserialize, Serialize};

use crate::faults::FaultRecord;

pub const PODS_BOUND: &str = "podsBoundOrDeleted";
pub const REQUESTS_SETTLED: &str = "capacityRequestsFulfilledOrCollected";
pub const UPCOMING_NODE_HAS_ONE_NODE: &str = "upcomingNodesHaveExactlyOneNode";
pub const NODE_HAS_UPCOMING_NODE: &str = "nodesHaveAnUpcomingNode";
pub const DRIVER_MATCHES_APISERVER: &str = "driverCountsMatchApiserver";
pub const RECOVERED: &str = "recoveredAfterEveryFault";
pub const NODES_KWOK_READY: &str = "nodesKwokManagedAndReady";
pub const NODES_FROM_SUT: &str = "nodesMadeByTheSut";

/// Names shown in a detail before "…".
const SHOWN: usize = 5;

/// One rule's verdict in one cluster: part of `summary.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InvariantResult {
    pub name: String,
    pub held: bool,
    pub detail: String,
}

impl InvariantResult {
    fn new(name: &str, held: bool, detail: impl Into<String>) -> Self {
        Self { name: name.to_string(), held, detail: detail.into() }
    }
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct PodFacts {
    pub key: String,
    pub uid: String,
    pub node: Option<String>,
    pub terminating: bool,
    /// Carries the run label (made by the load-driver).
    pub of_run: bool,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct RequestFacts {
    pub key: String,
    pub phase: Option<CapacityRequestPhase>,
    pub terminating: bool,
    /// uid of the owner Pod, when the request stands for one.
    pub owner_pod: Option<String>,
    pub of_run: bool,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct NodeFacts {
    pub name: String,
    pub upcoming_node: Option<String>,
    /// Annotated `kwok.x-k8s.io/node: fake`, so kwok runs it.
    pub kwok_managed: bool,
    pub ready: bool,
    pub terminating: bool,
    /// The field manager that created it (its earliest managedFields entry).
    pub creator: Option<String>,
}

/// The cluster's objects as the apiserver lists them.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Snapshot {
    pub pods: Vec<PodFacts>,
    pub requests: Vec<RequestFacts>,
    /// Names of the UpcomingNodes not being deleted.
    pub upcoming_nodes: Vec<String>,
    pub nodes: Vec<NodeFacts>,
}

/// What the load-driver believes (its gauges), read around the snapshot.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct DriverView {
    pub objects_active: Option<f64>,
    pub objects_bound: Option<f64>,
    /// The counts read before and after the listing differ: the cluster was still moving.
    pub moving: bool,
}

fn listed(names: &[String]) -> String {
    let mut shown = names.iter().take(SHOWN).cloned().collect::<Vec<_>>().join(", ");
    if names.len() > SHOWN {
        shown.push_str(", …");
    }
    shown
}

/// Every rule over one snapshot. `kind` is what the load-driver creates; `nodes` who
/// makes the Nodes (the UpcomingNode rules are node-creator's contract).
pub fn check(s: &Snapshot, driver: DriverView, kind: ObjectKind, node_source: NodeSource) -> Vec<InvariantResult> {
    let nodes: HashSet<&str> = s.nodes.iter().map(|n| n.name.as_str()).collect();
    let live_pods: Vec<&PodFacts> = s.pods.iter().filter(|p| !p.terminating).collect();
    let mut out = Vec::new();

    // Pods: bound to a Node that exists; a terminating Pod was deleted on purpose
    // (churn) and is no loss.
    let unbound: Vec<String> = live_pods
        .iter()
        .filter(|p| !p.node.as_deref().is_some_and(|n| nodes.contains(n)))
        .map(|p| match &p.node {
            Some(n) => format!("{} (on missing Node {n})", p.key),
            None => p.key.clone(),
        })
        .collect();
    let deleting = s.pods.len() - live_pods.len();
    out.push(if unbound.is_empty() {
        InvariantResult::new(PODS_BOUND, true, format!("{} Pods, all bound; {deleting} being deleted", live_pods.len()))
    } else {
        InvariantResult::new(
            PODS_BOUND,
            false,
            format!("{} of {} Pods not bound: {}", unbound.len(), live_pods.len(), listed(&unbound)),
        )
    });

    if node_source == NodeSource::Sut {
        out.extend(sut_nodes(s));
        out.push(driver_counts(s, driver, kind));
        return out;
    }

    // CapacityRequests: Fulfilled, or on their way out with their Pod.
    let pod_uids: HashSet<&str> = live_pods.iter().map(|p| p.uid.as_str()).collect();
    let unsettled: Vec<String> = s
        .requests
        .iter()
        .filter(|r| !r.terminating && r.phase != Some(CapacityRequestPhase::Fulfilled))
        .map(|r| match (&r.owner_pod, r.phase) {
            (Some(uid), _) if !pod_uids.contains(uid.as_str()) => format!("{} (its Pod is gone, not collected)", r.key),
            (_, phase) => format!("{} ({})", r.key, phase.map_or("no phase".to_string(), |p| format!("{p:?}"))),
        })
        .collect();
    out.push(InvariantResult::new(
        REQUESTS_SETTLED,
        unsettled.is_empty(),
        if unsettled.is_empty() {
            format!("{} CapacityRequests, all Fulfilled or being collected", s.requests.len())
        } else {
            format!("{} of {} CapacityRequests unsettled: {}", unsettled.len(), s.requests.len(), listed(&unsettled))
        },
    ));

    // UpcomingNode ↔ Node: exactly one each way.
    let mut per_upcoming: BTreeMap<&str, usize> = s.upcoming_nodes.iter().map(|u| (u.as_str(), 0)).collect();
    let mut orphans = Vec::new();
    for n in &s.nodes {
        match n.upcoming_node.as_deref().and_then(|u| per_upcoming.get_mut(u)) {
            Some(count) => *count += 1,
            None => orphans.push(match &n.upcoming_node {
                Some(u) => format!("{} (for missing UpcomingNode {u})", n.name),
                None => format!("{} (no {UPCOMING_NODE_LABEL} label)", n.name),
            }),
        }
    }
    let wrong: Vec<String> =
        per_upcoming.iter().filter(|(_, c)| **c != 1).map(|(u, c)| format!("{u} ({c} Nodes)")).collect();
    out.push(InvariantResult::new(
        UPCOMING_NODE_HAS_ONE_NODE,
        wrong.is_empty(),
        if wrong.is_empty() {
            format!("{} UpcomingNodes, each with one Node", s.upcoming_nodes.len())
        } else {
            format!(
                "{} of {} UpcomingNodes without exactly one Node: {}",
                wrong.len(),
                s.upcoming_nodes.len(),
                listed(&wrong)
            )
        },
    ));
    out.push(InvariantResult::new(
        NODE_HAS_UPCOMING_NODE,
        orphans.is_empty(),
        if orphans.is_empty() {
            format!("{} Nodes, each for an UpcomingNode", s.nodes.len())
        } else {
            format!("{} of {} Nodes without an UpcomingNode: {}", orphans.len(), s.nodes.len(), listed(&orphans))
        },
    ));

    out.push(driver_counts(s, driver, kind));
    out
}

/// What holds for any controller that makes its own Nodes: each is run by kwok and
/// Ready, and none came from the harness's node-creator (nor anyone but the SUT).
fn sut_nodes(s: &Snapshot) -> [InvariantResult; 2] {
    let live: Vec<&NodeFacts> = s.nodes.iter().filter(|n| !n.terminating).collect();
    let bad: Vec<String> = live
        .iter()
        .filter(|n| !(n.kwok_managed && n.ready))
        .map(|n| match (n.kwok_managed, n.ready) {
            (false, _) => format!("{} (no {KWOK_NODE_ANNOTATION}={KWOK_NODE_ANNOTATION_VALUE} annotation)", n.name),
            _ => format!("{} (not Ready)", n.name),
        })
        .collect();
    let kwok_ready = InvariantResult::new(
        NODES_KWOK_READY,
        bad.is_empty(),
        if bad.is_empty() {
            format!("{} Nodes, all kwok-managed and Ready", live.len())
        } else {
            format!("{} of {} Nodes not kwok-managed and Ready: {}", bad.len(), live.len(), listed(&bad))
        },
    );
    let mut creators: BTreeMap<&str, usize> = BTreeMap::new();
    for n in &live {
        *creators.entry(n.creator.as_deref().unwrap_or("unknown")).or_default() += 1;
    }
    let by = creators.iter().map(|(c, n)| format!("{c} ({n})")).collect::<Vec<_>>().join(", ");
    let foreign: Vec<String> = live
        .iter()
        .filter(|n| n.upcoming_node.is_some() || n.creator.as_deref() == Some(FIELD_MANAGER))
        .map(|n| n.name.clone())
        .collect();
    let from_sut = InvariantResult::new(
        NODES_FROM_SUT,
        foreign.is_empty(),
        if foreign.is_empty() {
            format!("{} Nodes, created by: {}", live.len(), if by.is_empty() { "nobody".into() } else { by })
        } else {
            format!("{} Nodes made by the harness, not the SUT: {}", foreign.len(), listed(&foreign))
        },
    );
    [kwok_ready, from_sut]
}

/// The load-driver's active/bound counts against the apiserver's, for its own objects.
fn driver_counts(s: &Snapshot, driver: DriverView, kind: ObjectKind) -> InvariantResult {
    let (what, live, bound) = match kind {
        ObjectKind::Pods => {
            let live: Vec<&PodFacts> = s.pods.iter().filter(|p| p.of_run && !p.terminating).collect();
            let bound = live.iter().filter(|p| p.node.is_some()).count();
            ("Pods", live.len(), bound)
        }
        ObjectKind::CapacityRequests => {
            let live: Vec<&RequestFacts> = s.requests.iter().filter(|r| r.of_run && !r.terminating).collect();
            let acknowledged = live
                .iter()
                .filter(|r| {
                    matches!(r.phase, Some(CapacityRequestPhase::Acknowledged | CapacityRequestPhase::Fulfilled))
                })
                .count();
            ("CapacityRequests", live.len(), acknowledged)
        }
        ObjectKind::Manifest => {
            return InvariantResult::new(
                DRIVER_MATCHES_APISERVER,
                true,
                "not compared for kind: manifest (the driver counts template objects of any kind)",
            );
        }
    };
    if driver.moving {
        let detail = "the load-driver's counts changed while the cluster was listed (objects still being created, bound or churned)";
        return InvariantResult::new(DRIVER_MATCHES_APISERVER, false, detail);
    }
    let (Some(active), Some(driver_bound)) = (driver.objects_active, driver.objects_bound) else {
        return InvariantResult::new(DRIVER_MATCHES_APISERVER, false, "the load-driver's metrics could not be read");
    };
    let held = active == live as f64 && driver_bound == bound as f64;
    InvariantResult::new(
        DRIVER_MATCHES_APISERVER,
        held,
        format!(
            "load-driver: {active} active, {driver_bound} bound; apiserver: {live} {what} of the run, {bound} bound"
        ),
    )
}

/// Every fault was injected and the cluster came back to steady state after it.
pub fn recovered(records: &[FaultRecord]) -> InvariantResult {
    let failed: Vec<String> = records
        .iter()
        .filter(|r| r.recovery_seconds.is_none())
        .map(|r| format!("{} {} at {:.0}s: {}", r.action, r.target, r.at_seconds, r.error.as_deref().unwrap_or("?")))
        .collect();
    let worst = records.iter().filter_map(|r| r.recovery_seconds).reduce(f64::max);
    InvariantResult::new(
        RECOVERED,
        failed.is_empty(),
        if failed.is_empty() {
            format!("{} faults, slowest recovery {}", records.len(), worst.map_or("n/a".into(), |w| format!("{w:.1}s")))
        } else {
            format!("{} of {} faults not recovered: {}", failed.len(), records.len(), listed(&failed))
        },
    )
}

// ---------------------------------------------------------------------------------------
// Reading a cluster
// ---------------------------------------------------------------------------------------

/// Lists the cluster's Pods, CapacityRequests, UpcomingNodes and Nodes.
pub async fn snapshot(client: &Client, run_id: &str) -> Result<Snapshot, kube::Error> {
    let all = ListParams::default();
    let of_run = |labels: &BTreeMap<String, String>| labels.get(RUN_LABEL).is_some_and(|v| v == run_id);
    let key = |ns: Option<String>, name: String| format!("{}/{name}", ns.unwrap_or_default());

    let pods = Api::<Pod>::all(client.clone()).list(&all).await?;
    let pods = pods
        .items
        .into_iter()
        .filter(|p| p.namespace().as_deref() != Some("kube-system"))
        .map(|p| PodFacts {
            of_run: of_run(p.labels()),
            uid: p.uid().unwrap_or_default(),
            node: p.spec.as_ref().and_then(|s| s.node_name.clone()),
            terminating: p.metadata.deletion_timestamp.is_some(),
            key: key(p.namespace(), p.name_any()),
        })
        .collect();
    let requests = Api::<CapacityRequest>::all(client.clone()).list(&all).await?;
    let requests = requests
        .items
        .into_iter()
        .map(|r| RequestFacts {
            of_run: of_run(r.labels()),
            phase: r.status.as_ref().and_then(|s| s.phase),
            terminating: r.metadata.deletion_timestamp.is_some(),
            owner_pod: r.owner_references().iter().find(|o| o.kind == "Pod").map(|o| o.uid.clone()),
            key: key(r.namespace(), r.name_any()),
        })
        .collect();
    let upcoming = Api::<UpcomingNode>::all(client.clone()).list(&all).await?;
    let upcoming_nodes =
        upcoming.items.iter().filter(|u| u.metadata.deletion_timestamp.is_none()).map(|u| u.name_any()).collect();
    let nodes = Api::<Node>::all(client.clone()).list(&all).await?;
    let nodes = nodes
        .items
        .iter()
        .map(|n| NodeFacts {
            name: n.name_any(),
            upcoming_node: n.labels().get(UPCOMING_NODE_LABEL).cloned(),
            kwok_managed: n.annotations().get(KWOK_NODE_ANNOTATION).is_some_and(|v| v == KWOK_NODE_ANNOTATION_VALUE),
            ready: n
                .status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True")),
            terminating: n.metadata.deletion_timestamp.is_some(),
            creator: creator(&n.metadata),
        })
        .collect();
    Ok(Snapshot { pods, requests, upcoming_nodes, nodes })
}

/// Who created a Node, as the apiserver recorded it in managedFields: the manager that
/// set the kwok annotation (the Node-maker's side of the contract; others only patch
/// status, taints or labels later), else the earliest entry on the object itself.
fn creator(meta: &kube::api::ObjectMeta) -> Option<String> {
    let fields = meta.managed_fields.as_deref().unwrap_or_default();
    let on_object = || fields.iter().filter(|f| f.subresource.as_deref().unwrap_or_default().is_empty());
    let annotated = on_object().find(|f| {
        f.fields_v1.as_ref().is_some_and(|v| {
            // JSON pointer: '/' in a key is written "~1".
            let key = KWOK_NODE_ANNOTATION.replace('/', "~1");
            v.0.pointer(&format!("/f:metadata/f:annotations/f:{key}")).is_some()
        })
    });
    annotated.or_else(|| on_object().min_by_key(|f| f.time.as_ref().map(|t| t.0))).and_then(|f| f.manager.clone())
}

async fn driver_view(load_driver: Option<&str>) -> Option<DriverView> {
    let text = http::get(load_driver?, "/metrics").await.ok()?;
    Some(DriverView {
        objects_active: http::sample(&text, "scaletest_load_driver_objects_active"),
        objects_bound: http::sample(&text, "scaletest_load_driver_objects_bound"),
        moving: false,
    })
}

/// Checks one cluster until every rule holds or `within` has passed; returns the last
/// verdicts. The driver's counts must read the same before and after the listing,
/// so a churn in between is not compared against a half-old snapshot.
pub async fn settle(
    client: &Client,
    run_id: &str,
    load_driver: Option<&str>,
    kind: ObjectKind,
    nodes: NodeSource,
    within: Duration,
) -> Vec<InvariantResult> {
    let deadline = Instant::now() + within;
    loop {
        let before = driver_view(load_driver).await;
        let results = match snapshot(client, run_id).await {
            Ok(s) => {
                let after = driver_view(load_driver).await;
                let driver = match (before, after) {
                    (before, Some(after)) if before == Some(after) => after,
                    (Some(_), Some(_)) => DriverView { moving: true, ..DriverView::default() },
                    _ => DriverView::default(),
                };
                check(&s, driver, kind, nodes)
            }
            Err(e) => vec![InvariantResult::new(PODS_BOUND, false, format!("cannot list the cluster's objects: {e}"))],
        };
        if results.iter().all(|r| r.held) || Instant::now() >= deadline {
            return results;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str, node: Option<&str>) -> PodFacts {
        PodFacts {
            key: format!("scaletest-0/{name}"),
            uid: format!("uid-{name}"),
            node: node.map(str::to_string),
            terminating: false,
            of_run: true,
        }
    }

    fn request(name: &str, phase: Option<CapacityRequestPhase>, owner: Option<&str>) -> RequestFacts {
        RequestFacts {
            key: format!("scaletest-0/{name}"),
            phase,
            terminating: false,
            owner_pod: owner.map(|o| format!("uid-{o}")),
            of_run: false,
        }
    }

    fn node(name: &str, upcoming: Option<&str>) -> NodeFacts {
        NodeFacts {
            name: name.into(),
            upcoming_node: upcoming.map(str::to_string),
            kwok_managed: true,
            ready: true,
            terminating: false,
            creator: Some("scaletest".into()),
        }
    }

    /// Two Pods bound on one Node made for one UpcomingNode; a third being deleted.
    fn healthy() -> Snapshot {
        let mut deleting = pod("pod-2", Some("un-0"));
        deleting.terminating = true;
        Snapshot {
            pods: vec![pod("pod-0", Some("un-0")), pod("pod-1", Some("un-0")), deleting],
            requests: vec![request("pod-0", Some(CapacityRequestPhase::Fulfilled), Some("pod-0"))],
            upcoming_nodes: vec!["un-0".into()],
            nodes: vec![node("un-0", Some("un-0"))],
        }
    }

    fn driver(active: f64, bound: f64) -> DriverView {
        DriverView { objects_active: Some(active), objects_bound: Some(bound), moving: false }
    }

    fn failed(results: &[InvariantResult]) -> Vec<&str> {
        results.iter().filter(|r| !r.held).map(|r| r.name.as_str()).collect()
    }

    #[test]
    fn a_healthy_cluster_holds_every_invariant() {
        let r = check(&healthy(), driver(2.0, 2.0), ObjectKind::Pods, NodeSource::NodeCreator);
        assert_eq!(failed(&r), Vec::<&str>::new(), "{r:#?}");
        assert_eq!(r.len(), 5);
        assert_eq!(r[0].detail, "2 Pods, all bound; 1 being deleted");
    }

    #[test]
    fn an_upcoming_node_without_its_node_is_named() {
        let mut s = healthy();
        s.upcoming_nodes.push("un-1".into());
        let r = check(&s, driver(2.0, 2.0), ObjectKind::Pods, NodeSource::NodeCreator);
        assert_eq!(failed(&r), [UPCOMING_NODE_HAS_ONE_NODE]);
        assert!(r[2].detail.contains("un-1 (0 Nodes)"), "{}", r[2].detail);
    }

    #[test]
    fn doubled_and_orphaned_nodes_fail() {
        let mut s = healthy();
        s.nodes.push(node("un-0-again", Some("un-0")));
        s.nodes.push(node("stray", None));
        let r = check(&s, driver(2.0, 2.0), ObjectKind::Pods, NodeSource::NodeCreator);
        assert_eq!(failed(&r), [UPCOMING_NODE_HAS_ONE_NODE, NODE_HAS_UPCOMING_NODE]);
        assert!(r[2].detail.contains("un-0 (2 Nodes)"));
        assert!(r[3].detail.contains("stray (no scaletest.dev/upcoming-node label)"));
    }

    #[test]
    fn unbound_pods_and_unsettled_requests_fail() {
        let mut s = healthy();
        s.pods.push(pod("pod-3", None));
        s.pods.push(pod("pod-4", Some("gone")));
        s.requests.push(request("pod-3", Some(CapacityRequestPhase::Acknowledged), Some("pod-3")));
        s.requests.push(request("pod-9", Some(CapacityRequestPhase::Fulfilled), Some("pod-9")));
        s.requests.push(request("pod-8", None, Some("pod-8")));
        let r = check(&s, driver(4.0, 3.0), ObjectKind::Pods, NodeSource::NodeCreator);
        assert_eq!(failed(&r), [PODS_BOUND, REQUESTS_SETTLED]);
        assert!(
            r[0].detail.contains("2 of 4 Pods not bound: scaletest-0/pod-3, scaletest-0/pod-4 (on missing Node gone)")
        );
        assert!(r[1].detail.contains("scaletest-0/pod-3 (Acknowledged)"), "{}", r[1].detail);
        assert!(r[1].detail.contains("scaletest-0/pod-8 (its Pod is gone, not collected)"), "{}", r[1].detail);
    }

    #[test]
    fn driver_counts_must_match_the_apiserver() {
        let r = check(&healthy(), driver(3.0, 2.0), ObjectKind::Pods, NodeSource::NodeCreator);
        assert_eq!(failed(&r), [DRIVER_MATCHES_APISERVER]);
        assert_eq!(r[4].detail, "load-driver: 3 active, 2 bound; apiserver: 2 Pods of the run, 2 bound");
        let r = check(&healthy(), DriverView::default(), ObjectKind::Pods, NodeSource::NodeCreator);
        assert_eq!(failed(&r), [DRIVER_MATCHES_APISERVER]);
        assert!(r[4].detail.contains("could not be read"), "{}", r[4].detail);
        let r = check(
            &healthy(),
            DriverView { moving: true, ..driver(2.0, 2.0) },
            ObjectKind::Pods,
            NodeSource::NodeCreator,
        );
        assert_eq!(failed(&r), [DRIVER_MATCHES_APISERVER]);
        assert!(r[4].detail.contains("changed while the cluster was listed"), "{}", r[4].detail);
        let r = check(&healthy(), DriverView::default(), ObjectKind::Manifest, NodeSource::NodeCreator);
        assert!(failed(&r).is_empty());
    }

    #[test]
    fn capacity_request_load_counts_acknowledged_requests() {
        let mut s = healthy();
        s.requests = vec![
            RequestFacts { of_run: true, ..request("capreq-0", Some(CapacityRequestPhase::Fulfilled), None) },
            RequestFacts { of_run: true, ..request("capreq-1", Some(CapacityRequestPhase::Fulfilled), None) },
        ];
        assert!(failed(&check(&s, driver(2.0, 2.0), ObjectKind::CapacityRequests, NodeSource::NodeCreator)).is_empty());
    }

    #[test]
    fn long_lists_are_cut() {
        let names: Vec<String> = (0..8).map(|i| format!("n{i}")).collect();
        assert_eq!(listed(&names), "n0, n1, n2, n3, n4, …");
    }

    #[test]
    fn unrecovered_faults_are_named() {
        let rec = |secs, error: Option<&str>| FaultRecord {
            fault: 0,
            target: "kine".into(),
            action: "kill".into(),
            hold_seconds: None,
            at_seconds: 12.0,
            injected_at: String::new(),
            pid: Some(7),
            recovery_seconds: secs,
            error: error.map(str::to_string),
        };
        let ok = recovered(&[rec(Some(3.5), None), rec(Some(1.0), None)]);
        assert!(ok.held);
        assert_eq!(ok.detail, "2 faults, slowest recovery 3.5s");
        let bad = recovered(&[rec(Some(3.5), None), rec(None, Some("not back at steady state within 5m"))]);
        assert!(!bad.held);
        assert_eq!(bad.detail, "1 of 2 faults not recovered: kill kine at 12s: not back at steady state within 5m");
    }

    #[test]
    fn a_controller_that_makes_its_nodes_is_judged_by_pods_and_nodes() {
        let karpenter = |name: &str| NodeFacts { creator: Some("karpenter".into()), ..node(name, None) };
        let mut s = healthy();
        s.nodes = vec![karpenter("un-0")];
        s.upcoming_nodes.clear();
        s.requests.clear();
        let r = check(&s, driver(2.0, 2.0), ObjectKind::Pods, NodeSource::Sut);
        assert!(failed(&r).is_empty(), "{r:?}");
        let names: Vec<&str> = r.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, [PODS_BOUND, NODES_KWOK_READY, NODES_FROM_SUT, DRIVER_MATCHES_APISERVER]);
        assert!(r[2].detail.contains("karpenter (1)"), "{}", r[2].detail);

        // Not Ready, not run by kwok, or made by node-creator: each is named.
        let mut not_ready = karpenter("n-1");
        not_ready.ready = false;
        let mut not_kwok = karpenter("n-2");
        not_kwok.kwok_managed = false;
        let mut leaving = karpenter("n-3");
        leaving.ready = false;
        leaving.terminating = true;
        s.nodes.extend([not_ready, not_kwok, leaving, node("un-9", Some("un-9"))]);
        let r = check(&s, driver(2.0, 2.0), ObjectKind::Pods, NodeSource::Sut);
        assert_eq!(failed(&r), [NODES_KWOK_READY, NODES_FROM_SUT]);
        assert!(r[1].detail.starts_with("2 of 4 Nodes"), "{}", r[1].detail);
        assert!(r[1].detail.contains("n-1 (not Ready)") && r[1].detail.contains("n-2 (no kwok"), "{}", r[1].detail);
        assert!(r[2].detail.contains("un-9"), "{}", r[2].detail);
    }

    #[test]
    fn the_creator_is_who_set_the_kwok_annotation() {
        use k8s_openapi::apimachinery::pkg::apis::meta::v1::{FieldsV1, ManagedFieldsEntry, Time};
        let at = |s: i64| Some(Time(k8s_openapi::jiff::Timestamp::from_second(s).unwrap()));
        let entry = |manager: &str, time, fields: serde_json::Value| ManagedFieldsEntry {
            manager: Some(manager.into()),
            operation: Some("Update".into()),
            time,
            fields_v1: Some(FieldsV1(fields)),
            ..ManagedFieldsEntry::default()
        };
        // Same second: the node lifecycle controller's taint patch is listed first.
        let mut meta = kube::api::ObjectMeta {
            managed_fields: Some(vec![
                entry("kube-controller-manager", at(10), serde_json::json!({"f:spec": {"f:taints": {}}})),
                entry(
                    "karpenter",
                    at(10),
                    serde_json::json!({"f:metadata": {"f:annotations": {"f:kwok.x-k8s.io/node": {}}}}),
                ),
            ]),
            ..Default::default()
        };
        assert_eq!(creator(&meta).as_deref(), Some("karpenter"));
        // Without the annotation: the earliest entry.
        meta.managed_fields.as_mut().unwrap()[1].fields_v1 = None;
        meta.managed_fields.as_mut().unwrap()[1].time = at(9);
        assert_eq!(creator(&meta).as_deref(), Some("karpenter"));
    }
}

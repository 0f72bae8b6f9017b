//! Where one CapacityRequest stands, from what the ledger holds for it: how
//! many of its Pods no node provides yet (the demand the decision sees), and
//! the status it should show. Pure functions, unit-tested without a cluster.
//!
//! A request is provided for by nodes still coming (planned, or created
//! without their fake Node yet) and, once their fake Nodes exist, by those
//! Nodes. But the scheduler, not this SUT, decides which Pod gets a new Node's
//! room: while Pods keep arriving it may give it to a newer one. So a request
//! whose Pod is still unbound `--reprovision-after` after its Node appeared is
//! demand again, and gets another node. Requests without an owner Pod have
//! nothing to observe: what they were given is final.

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use scaletest_core::crd::{CapacityRequest, CapacityRequestPhase};
use serde_json::{Value, json};

use crate::ledger::Holding;

/// What became of the Pod a request stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Waiting {
    /// The request has no owner Pod (created directly, e.g. by the load-driver).
    NoPod,
    /// Its Pod is still unbound.
    Unbound,
    /// Its Pod was bound (or is gone): nothing more to provide.
    Placed,
}

fn age(now: Timestamp, then: Timestamp) -> Duration {
    Duration::try_from(now.duration_since(then)).unwrap_or_default()
}

/// Pods of a request that no node provides.
pub fn unprovided(
    count: u32,
    holding: &Holding,
    waiting: Waiting,
    fulfilled_at: Option<Timestamp>,
    now: Timestamp,
    reprovision_after: Duration,
) -> u32 {
    match waiting {
        Waiting::Placed => 0,
        Waiting::NoPod => count.saturating_sub(holding.pods()),
        Waiting::Unbound => {
            // Nodes that appeared lately still count: the scheduler may not have got to the Pod yet.
            let since = holding.materialized_at.or(fulfilled_at);
            let settling = since.is_none_or(|t| age(now, t) < reprovision_after);
            let materialized = if settling { holding.materialized_pods } else { 0 };
            count.saturating_sub(holding.in_flight().saturating_add(materialized))
        }
    }
}

/// The status patch that brings a request in line with the ledger, if it is not:
/// `upcomingNodes` lists the created nodes holding its Pods; it is Fulfilled
/// once nothing more is coming for it and the fake Nodes that exist hold all
/// its Pods (or its Pod was scheduled before any node was made for it); and
/// back to Acknowledged when a node is coming for it again.
pub fn status_update(
    cr: &CapacityRequest,
    count: u32,
    holding: &Holding,
    waiting: Waiting,
    now: Timestamp,
) -> Option<Value> {
    let status = cr.status.as_ref();
    let mut patch = serde_json::Map::new();
    let recorded = status.map(|s| s.upcoming_nodes.as_slice()).unwrap_or_default();
    if holding.published_nodes != recorded {
        patch.insert("upcomingNodes".into(), json!(holding.published_nodes));
    }
    let complete = holding.in_flight() == 0 && holding.materialized_pods >= count;
    let placed_anyway = waiting == Waiting::Placed && holding.pods() == 0;
    match status.and_then(|s| s.phase) {
        Some(CapacityRequestPhase::Acknowledged) if complete || placed_anyway => {
            patch.insert("phase".into(), json!(CapacityRequestPhase::Fulfilled));
            patch.insert("fulfilledAt".into(), json!(Time(now)));
            let message = placed_anyway.then_some("its Pod was scheduled onto room that was already there");
            if message.is_some() || status.is_some_and(|s| s.message.is_some()) {
                patch.insert("message".into(), json!(message));
            }
        }
        Some(CapacityRequestPhase::Fulfilled) if holding.in_flight() > 0 => {
            patch.insert("phase".into(), json!(CapacityRequestPhase::Acknowledged));
            patch.insert(
                "message".into(),
                json!("its Pod stayed unschedulable after its Node appeared: provisioning another"),
            );
        }
        _ => {}
    }
    (!patch.is_empty()).then(|| json!({ "status": patch }))
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
    use scaletest_core::crd::{CapacityRequestSpec, CapacityRequestStatus, Need};

    use super::*;

    const AFTER: Duration = Duration::from_secs(30);

    fn at(s: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + s).unwrap()
    }

    fn holding(planned: u32, upcoming: u32, materialized: u32, materialized_at: Option<i64>) -> Holding {
        let mut published_nodes = Vec::new();
        if upcoming > 0 {
            published_nodes.push("up".to_string());
        }
        if materialized > 0 {
            published_nodes.insert(0, "done".to_string());
        }
        Holding {
            planned_pods: planned,
            upcoming_pods: upcoming,
            materialized_pods: materialized,
            published_nodes,
            materialized_at: materialized_at.map(at),
        }
    }

    #[test]
    fn nothing_is_counted_twice_while_its_node_is_coming() {
        for h in [holding(1, 0, 0, None), holding(0, 1, 0, None)] {
            assert_eq!(unprovided(1, &h, Waiting::Unbound, None, at(0), AFTER), 0);
            assert_eq!(unprovided(1, &h, Waiting::NoPod, None, at(0), AFTER), 0);
        }
        assert_eq!(unprovided(1, &Holding::default(), Waiting::Unbound, None, at(0), AFTER), 1);
        assert_eq!(unprovided(250, &holding(100, 100, 0, None), Waiting::NoPod, None, at(0), AFTER), 50);
    }

    #[test]
    fn a_placed_pod_needs_nothing() {
        assert_eq!(unprovided(1, &Holding::default(), Waiting::Placed, None, at(0), AFTER), 0);
    }

    #[test]
    fn a_pod_left_unbound_by_its_node_is_provided_for_again() {
        let h = holding(0, 0, 1, Some(0));
        assert_eq!(unprovided(1, &h, Waiting::Unbound, None, at(29), AFTER), 0, "the scheduler gets its time");
        assert_eq!(unprovided(1, &h, Waiting::Unbound, None, at(31), AFTER), 1);
        // Without node-creator's createdAt the request's fulfilledAt tells the time.
        let h = holding(0, 0, 1, None);
        assert_eq!(unprovided(1, &h, Waiting::Unbound, Some(at(0)), at(31), AFTER), 1);
        assert_eq!(unprovided(1, &h, Waiting::Unbound, None, at(31), AFTER), 0, "no time known yet: wait");
        // Once another node is coming for it, it is provided for again.
        let h = holding(1, 0, 1, Some(0));
        assert_eq!(unprovided(1, &h, Waiting::Unbound, None, at(31), AFTER), 0);
        // Without a Pod to watch, what was given is final.
        assert_eq!(unprovided(1, &holding(0, 0, 1, Some(0)), Waiting::NoPod, None, at(31), AFTER), 0);
    }

    fn cr(phase: CapacityRequestPhase, upcoming: &[&str]) -> CapacityRequest {
        let need = Need { count: 1, cpu: Quantity("100m".into()), memory: Quantity("128Mi".into()) };
        let mut cr = CapacityRequest::new("r", CapacityRequestSpec { need });
        cr.status = Some(CapacityRequestStatus {
            phase: Some(phase),
            upcoming_nodes: upcoming.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        });
        cr
    }

    const W: Waiting = Waiting::Unbound;

    #[test]
    fn records_the_nodes_once_they_are_created() {
        use CapacityRequestPhase::Acknowledged;
        assert_eq!(status_update(&cr(Acknowledged, &[]), 1, &Holding::default(), W, at(0)), None);
        assert_eq!(status_update(&cr(Acknowledged, &[]), 1, &holding(1, 0, 0, None), W, at(0)), None);
        let patch = status_update(&cr(Acknowledged, &[]), 1, &holding(0, 1, 0, None), W, at(0)).unwrap();
        assert_eq!(patch, json!({"status": {"upcomingNodes": ["up"]}}));
        assert_eq!(status_update(&cr(Acknowledged, &["up"]), 1, &holding(0, 1, 0, None), W, at(0)), None);
    }

    #[test]
    fn fulfils_once_its_fake_nodes_hold_it_and_reopens_when_provided_for_again() {
        use CapacityRequestPhase::{Acknowledged, Fulfilled};
        // Part of it still coming.
        let partly = holding(0, 1, 1, Some(0));
        assert_eq!(status_update(&cr(Acknowledged, &["done", "up"]), 2, &partly, W, at(0)), None);
        let patch = status_update(&cr(Acknowledged, &[]), 1, &holding(0, 0, 1, Some(0)), W, at(0)).unwrap();
        assert_eq!(
            patch,
            json!({"status": {"upcomingNodes": ["done"], "phase": "Fulfilled", "fulfilledAt": "2023-11-14T22:13:20Z"}})
        );
        assert_eq!(status_update(&cr(Fulfilled, &["done"]), 1, &holding(0, 0, 1, Some(0)), W, at(9)), None);
        let mut reopened = cr(Fulfilled, &["done"]);
        let patch = status_update(&reopened, 1, &holding(1, 0, 1, Some(0)), W, at(40)).unwrap();
        assert_eq!(patch["status"]["phase"], "Acknowledged");
        assert!(patch["status"]["message"].as_str().unwrap().contains("provisioning another"));
        assert!(patch["status"].get("upcomingNodes").is_none(), "planned nodes are not listed yet");
        // Fulfilled again once the second node exists; the message goes.
        let status = reopened.status.as_mut().unwrap();
        (status.phase, status.message) = (Some(Acknowledged), Some("provisioning another".into()));
        let again = holding(0, 0, 2, Some(45));
        let patch = status_update(&reopened, 1, &again, W, at(45)).unwrap();
        assert_eq!(patch["status"]["phase"], "Fulfilled");
        assert_eq!(patch["status"]["message"], Value::Null);
    }

    #[test]
    fn a_pod_scheduled_before_any_node_was_made_fulfils_its_request() {
        use CapacityRequestPhase::Acknowledged;
        let patch = status_update(&cr(Acknowledged, &[]), 1, &Holding::default(), Waiting::Placed, at(0)).unwrap();
        assert_eq!(patch["status"]["phase"], "Fulfilled");
        assert!(patch["status"]["message"].as_str().unwrap().contains("already there"));
        // With a node on its way, the node decides.
        assert_eq!(status_update(&cr(Acknowledged, &[]), 1, &holding(1, 0, 0, None), Waiting::Placed, at(0)), None);
    }
}

//! The decision: a pure function of the rollup, unit-tested without a cluster.
//!
//! Demand is grouped by per-Pod shape, because a Node sized density × shape
//! only packs Pods of that shape to its Allocatable. For each shape
//! the demand first fills the room left on the shape's existing nodes (planned
//! or published: a node published for 30 Pods still has room for 70), then
//! opens new nodes of `density` Pods, ceil(pods / density) of them when no room
//! was left. So a shape never has two nodes with room to spare, and however
//! demand trickles in across cycles, its node count stays ceil(total / density).
//! The caller passes only demand not already held by a node: nothing is
//! counted twice.

use std::collections::{BTreeMap, BTreeSet};

use crate::ledger::Assignment;
use crate::shape::Shape;

/// Pods of one acknowledged CapacityRequest that no node holds yet. Served in
/// the order given (the caller puts the longest-waiting first).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Demand {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub shape: Shape,
    pub pods: u32,
}

/// Room left on an existing node. Filled in the order given.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Room {
    pub node: String,
    pub shape: Shape,
    pub spare: u32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewNode {
    pub name: String,
    pub shape: Shape,
    /// Pods it holds: the density.
    pub capacity: u32,
    pub assignments: Vec<Assignment>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Decision {
    /// Requests added to existing nodes, by node name.
    pub additions: BTreeMap<String, Vec<Assignment>>,
    pub new_nodes: Vec<NewNode>,
}

/// A node being filled during one decision.
struct Bin {
    node: String,
    spare: u32,
    new: bool,
    assignments: Vec<Assignment>,
}

/// `taken`: every UpcomingNode name in use (anyone's, planned ones included);
/// new names continue after the highest of their shape.
pub fn decide(demand: &[Demand], rooms: &[Room], taken: &BTreeSet<String>, pods_per_node: u32) -> Decision {
    let per_node = pods_per_node.max(1);
    let mut by_shape: BTreeMap<Shape, Vec<&Demand>> = BTreeMap::new();
    for d in demand.iter().filter(|d| d.pods > 0) {
        by_shape.entry(d.shape).or_default().push(d);
    }
    let mut decision = Decision::default();
    for (shape, demand) in by_shape {
        let mut bins: Vec<Bin> = rooms
            .iter()
            .filter(|r| r.shape == shape && r.spare > 0)
            .map(|r| Bin { node: r.node.clone(), spare: r.spare, new: false, assignments: Vec::new() })
            .collect();
        let mut next = next_sequence(shape, taken);
        let mut current = 0;
        for d in demand {
            let mut left = d.pods;
            while left > 0 {
                if current == bins.len() {
                    bins.push(Bin {
                        node: node_name(shape, next),
                        spare: per_node,
                        new: true,
                        assignments: Vec::new(),
                    });
                    next += 1;
                }
                let bin = &mut bins[current];
                let take = left.min(bin.spare);
                bin.assignments.push(Assignment {
                    namespace: d.namespace.clone(),
                    name: d.name.clone(),
                    uid: d.uid.clone(),
                    pods: take,
                });
                bin.spare -= take;
                left -= take;
                if bin.spare == 0 {
                    current += 1;
                }
            }
        }
        for bin in bins.into_iter().filter(|b| !b.assignments.is_empty()) {
            if bin.new {
                decision.new_nodes.push(NewNode {
                    name: bin.node,
                    shape,
                    capacity: per_node,
                    assignments: bin.assignments,
                });
            } else {
                decision.additions.insert(bin.node, bin.assignments);
            }
        }
    }
    decision
}

fn prefix(shape: Shape) -> String {
    format!("sut-{}-{}-", shape.cpu(), shape.memory()).to_ascii_lowercase()
}

/// `sut-<cpu>-<memory>-<n>`, e.g. `sut-100m-128mi-3`: readable in `kubectl get`,
/// and short enough for the fake Node's `kubernetes.io/hostname` label (≤ 63).
pub fn node_name(shape: Shape, n: u64) -> String {
    format!("{}{n}", prefix(shape))
}

/// One past the highest `n` among the shape's names in `taken` (1 when none).
fn next_sequence(shape: Shape, taken: &BTreeSet<String>) -> u64 {
    let prefix = prefix(shape);
    taken
        .range(prefix.clone()..)
        .take_while(|name| name.starts_with(&prefix))
        .filter_map(|name| name[prefix.len()..].parse::<u64>().ok())
        .max()
        .map_or(1, |n| n.saturating_add(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMALL: Shape = Shape { cpu_millis: 100, memory_bytes: 128 << 20 };
    const LARGE: Shape = Shape { cpu_millis: 2000, memory_bytes: 4 << 30 };

    fn demand(name: &str, shape: Shape, pods: u32) -> Demand {
        Demand { namespace: "ns".into(), name: name.into(), uid: format!("uid-{name}"), shape, pods }
    }

    fn pods(shape: Shape, n: usize) -> Vec<Demand> {
        (0..n).map(|i| demand(&format!("p{i:03}"), shape, 1)).collect()
    }

    fn total(assignments: &[Assignment]) -> u32 {
        assignments.iter().map(|a| a.pods).sum()
    }

    #[test]
    fn ceil_of_pods_over_density_new_nodes_per_shape() {
        let d = decide(&pods(SMALL, 250), &[], &BTreeSet::new(), 100);
        assert!(d.additions.is_empty());
        let names: Vec<_> = d.new_nodes.iter().map(|n| n.name.as_str()).collect();
        assert_eq!(names, ["sut-100m-128mi-1", "sut-100m-128mi-2", "sut-100m-128mi-3"]);
        let sizes: Vec<_> = d.new_nodes.iter().map(|n| total(&n.assignments)).collect();
        assert_eq!(sizes, [100, 100, 50]);
        assert!(d.new_nodes.iter().all(|n| n.capacity == 100 && n.shape == SMALL));
        // Oldest first: the first node holds the first hundred.
        assert_eq!(d.new_nodes[0].assignments[0].name, "p000");
        assert_eq!(d.new_nodes[2].assignments[49].name, "p249");

        for (n, nodes) in [(1, 1), (100, 1), (101, 2), (500, 5)] {
            assert_eq!(decide(&pods(SMALL, n), &[], &BTreeSet::new(), 100).new_nodes.len(), nodes, "{n} pods");
        }
        assert_eq!(decide(&[], &[], &BTreeSet::new(), 100), Decision::default());
    }

    #[test]
    fn groups_by_shape() {
        let mut mixed = pods(SMALL, 150);
        mixed.extend((0..30).map(|i| demand(&format!("big{i}"), LARGE, 1)));
        let d = decide(&mixed, &[], &BTreeSet::new(), 100);
        let by_shape: Vec<_> = d.new_nodes.iter().map(|n| (n.name.as_str(), total(&n.assignments))).collect();
        assert_eq!(by_shape, [("sut-100m-128mi-1", 100), ("sut-100m-128mi-2", 50), ("sut-2-4gi-1", 30)]);
        assert!(
            d.new_nodes.iter().all(|n| n.assignments.iter().all(|a| (a.name.starts_with("big")) == (n.shape == LARGE)))
        );
    }

    #[test]
    fn a_request_for_many_pods_spans_nodes() {
        let d = decide(&[demand("herd", SMALL, 250)], &[], &BTreeSet::new(), 100);
        let parts: Vec<_> = d.new_nodes.iter().map(|n| (n.assignments.len(), total(&n.assignments))).collect();
        assert_eq!(parts, [(1, 100), (1, 100), (1, 50)]);
    }

    #[test]
    fn fills_room_on_existing_nodes_before_opening_new_ones() {
        let rooms = [
            Room { node: "full".into(), shape: SMALL, spare: 0 },
            Room { node: "other-shape".into(), shape: LARGE, spare: 50 },
            Room { node: "sut-100m-128mi-1".into(), shape: SMALL, spare: 30 },
        ];
        let taken = BTreeSet::from(["sut-100m-128mi-1".to_string()]);
        let d = decide(&pods(SMALL, 100), &rooms, &taken, 100);
        assert_eq!(d.additions.keys().collect::<Vec<_>>(), ["sut-100m-128mi-1"]);
        assert_eq!(total(&d.additions["sut-100m-128mi-1"]), 30);
        assert_eq!(d.new_nodes.len(), 1);
        assert_eq!((d.new_nodes[0].name.as_str(), total(&d.new_nodes[0].assignments)), ("sut-100m-128mi-2", 70));

        // Demand that fits the room opens nothing.
        let d = decide(&pods(SMALL, 30), &rooms, &taken, 100);
        assert!(d.new_nodes.is_empty());
        assert_eq!(total(&d.additions["sut-100m-128mi-1"]), 30);
    }

    #[test]
    fn a_request_split_by_a_full_room_continues_on_a_new_node() {
        let rooms = [Room { node: "sut-100m-128mi-4".into(), shape: SMALL, spare: 10 }];
        let taken = BTreeSet::from(["sut-100m-128mi-4".to_string()]);
        let d = decide(&[demand("herd", SMALL, 25)], &rooms, &taken, 100);
        assert_eq!(d.additions["sut-100m-128mi-4"][0].pods, 10);
        assert_eq!(d.new_nodes[0].name, "sut-100m-128mi-5");
        assert_eq!(d.new_nodes[0].assignments[0].pods, 15);
    }

    #[test]
    fn names_are_deterministic_and_skip_every_taken_name() {
        let taken = BTreeSet::from([
            "sut-100m-128mi-1".to_string(),
            "sut-100m-128mi-9".to_string(),
            "sut-100m-128mi-x".to_string(),
            "sut-100m-128mi-10-old".to_string(),
            "unrelated".to_string(),
        ]);
        let a = decide(&pods(SMALL, 101), &[], &taken, 100);
        let b = decide(&pods(SMALL, 101), &[], &taken, 100);
        assert_eq!(a, b);
        let names: Vec<_> = a.new_nodes.iter().map(|n| n.name.as_str()).collect();
        assert_eq!(names, ["sut-100m-128mi-10", "sut-100m-128mi-11"]);
        assert_eq!(node_name(Shape { cpu_millis: 1500, memory_bytes: 1000 }, 2), "sut-1500m-1000-2");
    }

    #[test]
    fn demand_of_zero_pods_is_ignored() {
        let d = decide(&[demand("done", SMALL, 0)], &[], &BTreeSet::new(), 100);
        assert_eq!(d, Decision::default());
    }
}

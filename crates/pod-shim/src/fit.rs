//! First-fit packing to Allocatable, pod-shim's placement rule: the first
//! Node (by name) with room for the Pod gets it. Pure bookkeeping; the binder
//! holds it behind one lock.

use std::collections::{BTreeMap, HashMap};

use scaletest_core::density::PodNeed;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Capacity {
    pub cpu_millis: u64,
    pub memory_bytes: u64,
    pub pods: u64,
}

#[derive(Default, Debug)]
struct NodeUse {
    capacity: Capacity,
    cpu_millis: u64,
    memory_bytes: u64,
    pods: u64,
}

impl NodeUse {
    fn fits(&self, need: PodNeed) -> bool {
        self.pods < self.capacity.pods
            && self.cpu_millis + need.cpu_millis <= self.capacity.cpu_millis
            && self.memory_bytes + need.memory_bytes <= self.capacity.memory_bytes
    }
}

/// Which Pod (by uid) uses how much of which Node.
#[derive(Default, Debug)]
pub struct Allocator {
    nodes: BTreeMap<String, NodeUse>,
    placed: HashMap<String, (String, PodNeed)>,
}

impl Allocator {
    pub fn upsert_node(&mut self, name: &str, capacity: Capacity) {
        self.nodes.entry(name.to_string()).or_default().capacity = capacity;
    }

    pub fn remove_node(&mut self, name: &str) {
        self.nodes.remove(name);
        self.placed.retain(|_, (n, _)| n != name);
    }

    /// Records that `uid` sits on `node` (idempotent; a move re-accounts it).
    pub fn account(&mut self, uid: &str, node: &str, need: PodNeed) {
        if self.placed.get(uid).is_some_and(|(n, _)| n == node) {
            return;
        }
        self.release(uid);
        let u = self.nodes.entry(node.to_string()).or_default();
        u.cpu_millis += need.cpu_millis;
        u.memory_bytes += need.memory_bytes;
        u.pods += 1;
        self.placed.insert(uid.to_string(), (node.to_string(), need));
    }

    /// Frees what `uid` held; true if it held anything.
    pub fn release(&mut self, uid: &str) -> bool {
        let Some((node, need)) = self.placed.remove(uid) else { return false };
        if let Some(u) = self.nodes.get_mut(&node) {
            u.cpu_millis -= need.cpu_millis;
            u.memory_bytes -= need.memory_bytes;
            u.pods -= 1;
        }
        true
    }

    /// Reserves the first Node with room for `need`, for `uid`.
    pub fn reserve_first_fit(&mut self, uid: &str, need: PodNeed) -> Option<String> {
        if let Some((node, _)) = self.placed.get(uid) {
            return Some(node.clone());
        }
        let node = self.nodes.iter().find(|(_, u)| u.fits(need)).map(|(n, _)| n.clone())?;
        self.account(uid, &node, need);
        Some(node)
    }

    pub fn pods_on(&self, node: &str) -> u64 {
        self.nodes.get(node).map_or(0, |u| u.pods)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NEED: PodNeed = PodNeed { cpu_millis: 100, memory_bytes: 128 << 20 };
    const NODE: Capacity = Capacity { cpu_millis: 1000, memory_bytes: 10 * (128 << 20), pods: 10 };

    #[test]
    fn packs_the_first_node_to_allocatable_then_the_next() {
        let mut a = Allocator::default();
        a.upsert_node("b", NODE);
        a.upsert_node("a", NODE);
        let placed: Vec<_> = (0..15).map(|i| a.reserve_first_fit(&format!("p{i}"), NEED)).collect();
        assert!(placed[..10].iter().all(|n| n.as_deref() == Some("a")));
        assert!(placed[10..].iter().all(|n| n.as_deref() == Some("b")));
        assert_eq!((a.pods_on("a"), a.pods_on("b")), (10, 5));
    }

    #[test]
    fn no_room_means_none_and_release_makes_room() {
        let mut a = Allocator::default();
        a.upsert_node("a", Capacity { pods: 1, ..NODE });
        assert_eq!(a.reserve_first_fit("p0", NEED).as_deref(), Some("a"));
        assert_eq!(a.reserve_first_fit("p1", NEED), None);
        assert!(a.release("p0"));
        assert!(!a.release("p0"));
        assert_eq!(a.reserve_first_fit("p1", NEED).as_deref(), Some("a"));
    }

    #[test]
    fn accounting_is_idempotent_and_respects_cpu() {
        let mut a = Allocator::default();
        a.upsert_node("a", NODE);
        a.account("x", "a", PodNeed { cpu_millis: 950, memory_bytes: 0 });
        a.account("x", "a", PodNeed { cpu_millis: 950, memory_bytes: 0 });
        assert_eq!(a.pods_on("a"), 1);
        assert_eq!(a.reserve_first_fit("y", NEED), None, "only 50m CPU left");
        a.remove_node("a");
        assert_eq!(a.pods_on("a"), 0);
    }
}

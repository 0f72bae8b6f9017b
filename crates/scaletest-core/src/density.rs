//! The density model: one fake Node holds `pods_per_node` Pods, and
//! its Allocatable is exactly that many times the per-Pod need, so a scheduler
//! packing to Allocatable puts `pods_per_node` Pods on every full Node.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use crate::quantity::{self, QuantityError};

pub const DEFAULT_PODS_PER_NODE: u32 = 100;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PodNeed {
    pub cpu_millis: u64,
    pub memory_bytes: u64,
}

impl PodNeed {
    pub fn parse(cpu: &str, memory: &str) -> Result<Self, QuantityError> {
        Ok(Self { cpu_millis: quantity::parse_cpu_millis(cpu)?, memory_bytes: quantity::parse_memory_bytes(memory)? })
    }
}

impl Default for PodNeed {
    fn default() -> Self {
        Self { cpu_millis: 100, memory_bytes: 128 << 20 }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DensityModel {
    pub pods_per_node: u32,
    pub pod: PodNeed,
}

impl Default for DensityModel {
    fn default() -> Self {
        Self { pods_per_node: DEFAULT_PODS_PER_NODE, pod: PodNeed::default() }
    }
}

/// What a fake Node advertises, in Kubernetes quantity strings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Allocatable {
    pub cpu: String,
    pub memory: String,
    pub pods: String,
}

impl Allocatable {
    /// The `status.allocatable` / `status.capacity` map of a Node.
    pub fn to_resource_map(&self) -> BTreeMap<String, Quantity> {
        BTreeMap::from([
            ("cpu".to_string(), Quantity(self.cpu.clone())),
            ("memory".to_string(), Quantity(self.memory.clone())),
            ("pods".to_string(), Quantity(self.pods.clone())),
        ])
    }
}

impl DensityModel {
    pub fn allocatable(&self) -> Allocatable {
        let n = u64::from(self.pods_per_node);
        Allocatable {
            cpu: quantity::format_cpu_millis(self.pod.cpu_millis * n),
            memory: quantity::format_memory_bytes(self.pod.memory_bytes * n),
            pods: n.to_string(),
        }
    }

    /// Nodes needed for `pods` Pods: ceil(pods / density).
    pub fn nodes_for(&self, pods: u64) -> u64 {
        pods.div_ceil(u64::from(self.pods_per_node.max(1)))
    }
}

impl PodNeed {
    /// What a Pod asks for: the sum of its containers' requests (an init
    /// container's larger request wins, as the scheduler computes it).
    /// Unparsable quantities count as zero (the apiserver validated them).
    pub fn of_pod(pod: &k8s_openapi::api::core::v1::Pod) -> Self {
        let requests = |c: &k8s_openapi::api::core::v1::Container| {
            let r = c.resources.as_ref().and_then(|r| r.requests.as_ref());
            let get = |k: &str, parse: fn(&str) -> Result<u64, QuantityError>| {
                r.and_then(|r| r.get(k)).and_then(|q| parse(&q.0).ok()).unwrap_or(0)
            };
            (get("cpu", quantity::parse_cpu_millis), get("memory", quantity::parse_memory_bytes))
        };
        let Some(spec) = pod.spec.as_ref() else { return Self { cpu_millis: 0, memory_bytes: 0 } };
        let (mut cpu, mut mem) = spec.containers.iter().map(requests).fold((0, 0), |(a, b), (c, d)| (a + c, b + d));
        for (c, m) in spec.init_containers.iter().flatten().map(requests) {
            cpu = cpu.max(c);
            mem = mem.max(m);
        }
        Self { cpu_millis: cpu, memory_bytes: mem }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_node_holds_a_hundred_default_pods() {
        let a = DensityModel::default().allocatable();
        assert_eq!(a.cpu, "10");
        assert_eq!(a.memory, "12800Mi");
        assert_eq!(a.pods, "100");
    }

    #[test]
    fn nodes_round_up() {
        let d = DensityModel::default();
        assert_eq!(d.nodes_for(0), 0);
        assert_eq!(d.nodes_for(1), 1);
        assert_eq!(d.nodes_for(100), 1);
        assert_eq!(d.nodes_for(101), 2);
        assert_eq!(d.nodes_for(500), 5);
    }

    #[test]
    fn odd_needs_stay_exact() {
        let d = DensityModel { pods_per_node: 7, pod: PodNeed::parse("150m", "100Mi").unwrap() };
        let a = d.allocatable();
        assert_eq!(quantity::parse_cpu_millis(&a.cpu), Ok(1050));
        assert_eq!(quantity::parse_memory_bytes(&a.memory), Ok(700 << 20));
    }
}

//! What one Pod needs (its *shape*: CPU and memory), read either from a Pod's
//! container requests or from a CapacityRequest's `spec.need`, and the check
//! that turns a malformed CapacityRequest into a message instead of a crash.

use std::fmt;

use k8s_openapi::api::core::v1::Pod;
use scaletest_core::crd::CapacityRequestSpec;
use scaletest_core::density::{Allocatable, DensityModel, PodNeed};
use scaletest_core::quantity::{self, QuantityError};
use thiserror::Error;

/// Per-Pod CPU and memory. Ordered and hashable so the decision can group by it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Shape {
    pub cpu_millis: u64,
    pub memory_bytes: u64,
}

impl Shape {
    pub fn cpu(&self) -> String {
        quantity::format_cpu_millis(self.cpu_millis)
    }

    pub fn memory(&self) -> String {
        quantity::format_memory_bytes(self.memory_bytes)
    }

    /// A Node holding `pods_per_node` Pods of this shape.
    pub fn allocatable(&self, pods_per_node: u32) -> Allocatable {
        DensityModel { pods_per_node, pod: (*self).into() }.allocatable()
    }
}

impl From<Shape> for PodNeed {
    fn from(s: Shape) -> Self {
        Self { cpu_millis: s.cpu_millis, memory_bytes: s.memory_bytes }
    }
}

impl From<PodNeed> for Shape {
    fn from(n: PodNeed) -> Self {
        Self { cpu_millis: n.cpu_millis, memory_bytes: n.memory_bytes }
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.cpu(), self.memory())
    }
}

#[derive(Debug, Error, PartialEq, Eq)]
#[error("container {container:?} requests {resource}: {error}")]
pub struct PodRequestError {
    pub container: String,
    pub resource: &'static str,
    pub error: QuantityError,
}

/// The sum of the requests of the Pod's containers. A resource that no container
/// requests gets the density model's per-Pod default, so a request-less Pod still
/// asks for a Node with room for it.
pub fn pod_shape(pod: &Pod) -> Result<Shape, PodRequestError> {
    let mut cpu: Option<u64> = None;
    let mut memory: Option<u64> = None;
    for c in pod.spec.iter().flat_map(|s| &s.containers) {
        let Some(requests) = c.resources.as_ref().and_then(|r| r.requests.as_ref()) else { continue };
        let err = |resource, error| PodRequestError { container: c.name.clone(), resource, error };
        if let Some(q) = requests.get("cpu") {
            let m = quantity::parse_cpu_millis(&q.0).map_err(|e| err("cpu", e))?;
            cpu = Some(cpu.unwrap_or(0).saturating_add(m));
        }
        if let Some(q) = requests.get("memory") {
            let b = quantity::parse_memory_bytes(&q.0).map_err(|e| err("memory", e))?;
            memory = Some(memory.unwrap_or(0).saturating_add(b));
        }
    }
    let default = PodNeed::default();
    Ok(Shape { cpu_millis: cpu.unwrap_or(default.cpu_millis), memory_bytes: memory.unwrap_or(default.memory_bytes) })
}

/// Above this a CapacityRequest is refused rather than turned into ten
/// thousand UpcomingNodes by a typo: far beyond any profile's objects per cluster.
pub const MAX_PODS_PER_REQUEST: u32 = 1_000_000;

/// Why a CapacityRequest cannot be provisioned. Written to its `status.message`.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum Malformed {
    #[error("spec.need.count is 0: a CapacityRequest asks for at least one Pod")]
    ZeroCount,
    #[error("spec.need.count {0} is above the limit of {MAX_PODS_PER_REQUEST} Pods per request")]
    TooManyPods(u32),
    #[error("spec.need.cpu: {0}")]
    Cpu(QuantityError),
    #[error("spec.need.memory: {0}")]
    Memory(QuantityError),
}

/// A well-formed `spec.need`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Request {
    pub shape: Shape,
    pub count: u32,
}

pub fn parse_request(spec: &CapacityRequestSpec) -> Result<Request, Malformed> {
    let need = &spec.need;
    match need.count {
        0 => return Err(Malformed::ZeroCount),
        n if n > MAX_PODS_PER_REQUEST => return Err(Malformed::TooManyPods(n)),
        _ => {}
    }
    let cpu_millis = quantity::parse_cpu_millis(&need.cpu.0).map_err(Malformed::Cpu)?;
    let memory_bytes = quantity::parse_memory_bytes(&need.memory.0).map_err(Malformed::Memory)?;
    Ok(Request { shape: Shape { cpu_millis, memory_bytes }, count: need.count })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use k8s_openapi::api::core::v1::{Container, PodSpec, ResourceRequirements};
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
    use scaletest_core::crd::Need;

    use super::*;

    fn container(name: &str, requests: &[(&str, &str)]) -> Container {
        let requests: BTreeMap<_, _> = requests.iter().map(|(k, v)| (k.to_string(), Quantity(v.to_string()))).collect();
        Container {
            name: name.into(),
            resources: Some(ResourceRequirements { requests: Some(requests), ..Default::default() }),
            ..Default::default()
        }
    }

    fn pod(containers: Vec<Container>) -> Pod {
        Pod { spec: Some(PodSpec { containers, ..Default::default() }), ..Default::default() }
    }

    #[test]
    fn sums_every_containers_requests() {
        let p = pod(vec![
            container("app", &[("cpu", "100m"), ("memory", "128Mi")]),
            container("sidecar", &[("cpu", "0.25"), ("memory", "64Mi")]),
        ]);
        assert_eq!(pod_shape(&p), Ok(Shape { cpu_millis: 350, memory_bytes: 192 << 20 }));
    }

    #[test]
    fn absent_requests_take_the_default_per_resource() {
        let default: Shape = PodNeed::default().into();
        assert_eq!(pod_shape(&pod(vec![Container::default()])), Ok(default));
        assert_eq!(pod_shape(&Pod::default()), Ok(default));
        let cpu_only = pod(vec![container("app", &[("cpu", "2")])]);
        assert_eq!(pod_shape(&cpu_only), Ok(Shape { cpu_millis: 2000, memory_bytes: default.memory_bytes }));
    }

    #[test]
    fn an_unreadable_request_names_its_container() {
        let err = pod_shape(&pod(vec![container("app", &[("cpu", "100u")])])).unwrap_err();
        assert_eq!((err.container.as_str(), err.resource), ("app", "cpu"));
        assert!(err.to_string().contains("\"app\" requests cpu"), "{err}");
    }

    fn spec(count: u32, cpu: &str, memory: &str) -> CapacityRequestSpec {
        CapacityRequestSpec { need: Need { count, cpu: Quantity(cpu.into()), memory: Quantity(memory.into()) } }
    }

    #[test]
    fn well_formed_requests_parse() {
        assert_eq!(
            parse_request(&spec(3, "100m", "128Mi")),
            Ok(Request { shape: Shape { cpu_millis: 100, memory_bytes: 128 << 20 }, count: 3 })
        );
    }

    #[test]
    fn malformed_requests_say_what_is_wrong() {
        assert_eq!(parse_request(&spec(0, "100m", "128Mi")), Err(Malformed::ZeroCount));
        assert_eq!(parse_request(&spec(u32::MAX, "100m", "128Mi")), Err(Malformed::TooManyPods(u32::MAX)));
        let cpu = parse_request(&spec(1, "lots", "128Mi")).unwrap_err();
        assert!(matches!(cpu, Malformed::Cpu(_)) && cpu.to_string().starts_with("spec.need.cpu: \"lots\""), "{cpu}");
        let memory = parse_request(&spec(1, "1", "12MB")).unwrap_err();
        assert!(matches!(memory, Malformed::Memory(_)) && memory.to_string().contains("12MB"), "{memory}");
    }

    #[test]
    fn allocatable_is_density_times_shape() {
        let a = Shape { cpu_millis: 100, memory_bytes: 128 << 20 }.allocatable(100);
        assert_eq!((a.cpu.as_str(), a.memory.as_str(), a.pods.as_str()), ("10", "12800Mi", "100"));
    }
}

//! What a lean control plane keeps (`harness.controlPlane: lean`): the API groups and
//! kube-controller-manager controllers the chain needs, plus what the profile's own objects
//! need (a manifest template's Deployments, a SUT manifest's Jobs). Pure: the supervisor
//! passes the objects' apiVersion/kind in, components.rs turns it into flags.
//!
//! Every resource served keeps its watch cache. Without one, each client's watch on it is
//! its own watch on kine, which hands every write to every watch and drops one that falls
//! 100 batches behind (it then re-reads from its revision). A lean cluster that served 46
//! unread resources uncached (11 MiB and 7 mvCPU less idle) did not survive 10,000 Pods
//! created at once: kine grew to 7.3 GB, the run took 24 min and 611 acknowledged Pods
//! went missing; with the caches the same burst settled in 329 s, kine at 269 MiB
//! (2026-12-06; results/bench/rule.json).

use std::collections::BTreeSet;

/// API group versions every simulated cluster serves, and who needs each. Found by
/// starting kube-apiserver v1.37.2 with `api/all=false` plus this list: without any one
/// of them it never turns ready (its own informers or post-start hooks wait for the
/// group) or a component's informer fails forever.
pub const CHAIN_GROUPS: [(&str, &str); 19] = [
    ("v1", "Pods, Nodes, Namespaces, ServiceAccounts, Events, ConfigMaps"),
    ("apps/v1", "kube-scheduler's spreading (ReplicaSets, StatefulSets), node lifecycle's DaemonSets"),
    ("apiextensions.k8s.io/v1", "the harness's CRDs (CapacityRequests, UpcomingNodes)"),
    ("apiregistration.k8s.io/v1", "the apiserver's own APIService objects"),
    ("authentication.k8s.io/v1", "TokenReviews: delegated authentication of kcm and kube-scheduler"),
    ("authorization.k8s.io/v1", "SubjectAccessReviews: their delegated authorization"),
    ("rbac.authorization.k8s.io/v1", "the RBAC authorizer and its bootstrap roles"),
    ("coordination.k8s.io/v1", "kwok's Node leases, the apiserver's identity lease"),
    ("events.k8s.io/v1", "kube-scheduler's and kcm's events"),
    ("scheduling.k8s.io/v1", "the system PriorityClasses (post-start hook, Priority admission)"),
    ("admissionregistration.k8s.io/v1", "the webhook and policy admission plugins' informers"),
    ("networking.k8s.io/v1", "ServiceCIDRs and IPAddresses: the Service IP repair loop"),
    ("discovery.k8s.io/v1", "EndpointSlices: an apiserver informer"),
    ("certificates.k8s.io/v1", "PodCertificateRequests: the Node authorizer's graph"),
    ("storage.k8s.io/v1", "StorageClasses (admission), VolumeAttachments (Node authorizer), scheduler"),
    ("resource.k8s.io/v1", "ResourceSlices (Node authorizer), kube-scheduler's DRA plugin"),
    ("node.k8s.io/v1", "RuntimeClasses: the RuntimeClass admission plugin"),
    ("policy/v1", "PodDisruptionBudgets: kube-scheduler's preemption"),
    ("flowcontrol.apiserver.k8s.io/v1", "priority and fairness (only with it on: apiserverLimits default)"),
];

/// kube-controller-manager controllers every simulated cluster runs, and why.
pub const CHAIN_CONTROLLERS: [(&str, &str); 6] = [
    ("garbage-collector-controller", "CapacityRequests go with their Pods, ReplicaSets with Deployments"),
    ("namespace-controller", "a deleted Namespace's objects are deleted"),
    ("node-lifecycle-controller", "lifts new Nodes' not-ready taint (binding path), marks lapsed leases"),
    ("taint-eviction-controller", "evicts Pods from Nodes that went NotReady (faults)"),
    ("pod-garbage-collector-controller", "deletes Pods bound to Nodes a SUT removed"),
    ("serviceaccount-controller", "each Namespace's default ServiceAccount, which Pod admission needs"),
];

/// Built-in kinds whose objects a controller acts on: (apiVersion, kind, controllers).
const KIND_CONTROLLERS: [(&str, &str, &[&str]); 9] = [
    ("apps/v1", "Deployment", &["deployment-controller", "replicaset-controller"]),
    ("apps/v1", "ReplicaSet", &["replicaset-controller"]),
    ("apps/v1", "StatefulSet", &["statefulset-controller"]),
    ("apps/v1", "DaemonSet", &["daemonset-controller"]),
    ("batch/v1", "Job", &["job-controller", "ttl-after-finished-controller"]),
    ("batch/v1", "CronJob", &["cronjob-controller", "job-controller", "ttl-after-finished-controller"]),
    ("v1", "ReplicationController", &["replicationcontroller-controller"]),
    ("policy/v1", "PodDisruptionBudget", &["disruption-controller"]),
    ("v1", "ResourceQuota", &["resourcequota-controller"]),
];

/// API groups built into kube-apiserver: an object of one of them has its group version
/// served; any other group is a CRD's, served whatever `--runtime-config` says.
const BUILT_IN_GROUPS: [&str; 22] = [
    "",
    "admissionregistration.k8s.io",
    "apiextensions.k8s.io",
    "apiregistration.k8s.io",
    "apps",
    "authentication.k8s.io",
    "authorization.k8s.io",
    "autoscaling",
    "batch",
    "certificates.k8s.io",
    "coordination.k8s.io",
    "discovery.k8s.io",
    "events.k8s.io",
    "flowcontrol.apiserver.k8s.io",
    "internal.apiserver.k8s.io",
    "networking.k8s.io",
    "node.k8s.io",
    "policy",
    "rbac.authorization.k8s.io",
    "resource.k8s.io",
    "scheduling.k8s.io",
    "storage.k8s.io",
];

/// What a lean cluster serves and runs for a given set of the profile's objects.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Lean {
    /// Group versions for `--runtime-config=api/all=false,<gv>=true,…`.
    pub group_versions: BTreeSet<String>,
    /// For `--controllers`.
    pub controllers: BTreeSet<String>,
}

impl Lean {
    /// The chain's groups and controllers plus what `objects` (apiVersion, kind) need.
    /// `priority_and_fairness`: the apiserver runs APF, which refuses to start without its group.
    pub fn for_objects<'a>(objects: impl IntoIterator<Item = (&'a str, &'a str)>, priority_and_fairness: bool) -> Self {
        let mut lean = Lean {
            group_versions: CHAIN_GROUPS
                .iter()
                .filter(|(gv, _)| priority_and_fairness || !gv.starts_with("flowcontrol."))
                .map(|(gv, _)| gv.to_string())
                .collect(),
            controllers: CHAIN_CONTROLLERS.iter().map(|(c, _)| c.to_string()).collect(),
        };
        for (api_version, kind) in objects {
            let group = api_version.rsplit_once('/').map_or("", |(g, _)| g);
            if BUILT_IN_GROUPS.contains(&group) {
                lean.group_versions.insert(api_version.to_string());
            }
            for (_, _, controllers) in KIND_CONTROLLERS.iter().filter(|(v, k, _)| *v == api_version && *k == kind) {
                lean.controllers.extend(controllers.iter().map(|c| c.to_string()));
            }
        }
        lean
    }

    pub fn runtime_config(&self) -> String {
        let served = self.group_versions.iter().map(|gv| format!("{gv}=true"));
        std::iter::once("api/all=false".to_string()).chain(served).collect::<Vec<_>>().join(",")
    }

    pub fn controllers_flag(&self) -> String {
        self.controllers.iter().cloned().collect::<Vec<_>>().join(",")
    }
}

/// The top-level `apiVersion` and `kind` of a manifest template (`loadProfile.template`),
/// read line by line: its placeholders (`{{name}}`) need not be valid YAML before rendering.
pub fn template_type(text: &str) -> Option<(String, String)> {
    let top = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key).and_then(|v| v.strip_prefix(':')))
            .map(|v| v.split('#').next().unwrap_or_default().trim().trim_matches(|c| c == '"' || c == '\'').to_string())
    };
    Some((top("apiVersion")?, top("kind")?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chain_alone_serves_no_batch_and_runs_no_workload_controller() {
        let l = Lean::for_objects([("v1", "Pod")], true);
        assert!(l.group_versions.contains("v1") && l.group_versions.contains("flowcontrol.apiserver.k8s.io/v1"));
        assert!(!l.group_versions.iter().any(|g| g.starts_with("batch/")));
        assert!(l.controllers.contains("garbage-collector-controller"));
        assert!(!l.controllers.contains("replicaset-controller"));
        assert!(l.runtime_config().starts_with("api/all=false,"), "{}", l.runtime_config());
    }

    #[test]
    fn a_templates_deployments_bring_their_controllers_and_jobs_their_group() {
        let l = Lean::for_objects([("apps/v1", "Deployment"), ("batch/v1", "Job")], true);
        for c in ["deployment-controller", "replicaset-controller", "job-controller"] {
            assert!(l.controllers.contains(c), "{c}: {:?}", l.controllers);
        }
        assert!(l.group_versions.contains("batch/v1"));
        assert!(l.controllers_flag().split(',').all(|c| !c.is_empty()));
    }

    #[test]
    fn a_crds_group_is_not_put_in_runtime_config() {
        let l = Lean::for_objects([("karpenter.sh/v1", "NodePool")], true);
        assert!(!l.runtime_config().contains("karpenter.sh"), "{}", l.runtime_config());
    }

    #[test]
    fn without_priority_and_fairness_its_group_is_not_served() {
        let l = Lean::for_objects([], false);
        assert!(!l.group_versions.iter().any(|g| g.starts_with("flowcontrol.")));
    }

    #[test]
    fn template_type_reads_top_level_keys_past_placeholders() {
        let t = "apiVersion: apps/v1\nkind: \"Deployment\" # workload\nmetadata:\n  name: {{name}}\n  kind: x\n";
        assert_eq!(template_type(t), Some(("apps/v1".into(), "Deployment".into())));
        assert_eq!(template_type("metadata: {}\n"), None);
    }
}

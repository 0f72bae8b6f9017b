//! Scale and cost, printed before anything starts, and the guardrails the
//! seed's runbook sets: a prompt for costly cloud runs, a refusal for
//! profiles bigger than the target.

use std::time::Duration;

use scaletest_core::profile::Profile;

/// Prompt above this estimate when the context looks like a cloud.
pub const CONFIRM_USD: f64 = 5.0;

/// Context-name substrings that suggest a paid cloud cluster.
const CLOUD_HINTS: [&str; 6] = ["eks", "gke", "aks", "aws", "gcp", "azure"];

/// Measured idle footprint of one simulated cluster plus its harness
/// (results/cluster-start.md rounds to ~0.6 GiB), with headroom for load.
pub const LOCAL_GIB_PER_CLUSTER: f64 = 0.75;
/// Per object in a cluster: the apiserver's watch cache, kine's rows and a copy
/// in each of five watchers. Measured for Pods by `make bench`
/// (results/bench/README.md, section 4): one cluster holding 10,000 Pods used
/// ~1.8 GiB against ~0.57 GiB idle, ~128 KiB per Pod (the old 20 KiB
/// undercounted 10K-object clusters by half). Re-measured with kine's fixes: mean
/// 4.1-4.4 GiB at 50,000 Pods (plan 6.9), and the sum of each process's peak 2.7 GiB
/// at 10,000 (plan 2.0) and 6.2 GiB at 50,000: the plan sits between mean and peak;
/// CPU, not memory, limits loaded runs here first.
pub const LOCAL_GIB_PER_OBJECT: f64 = 128.0 / (1024.0 * 1024.0);
/// Share of this machine's memory a local run may plan to use.
pub const LOCAL_MEMORY_SHARE: f64 = 0.8;

#[derive(Debug, Clone, PartialEq)]
pub struct Estimate {
    pub clusters: u32,
    pub objects_per_cluster: u64,
    pub total_objects: u64,
    pub nodes_per_cluster: u64,
    pub hours: f64,
    pub usd: f64,
}

pub fn estimate(profile: &Profile, run: Duration) -> Estimate {
    Estimate {
        clusters: profile.kwok.cluster_count,
        objects_per_cluster: profile.load_profile.objects_per_cluster,
        total_objects: profile.total_objects(),
        nodes_per_cluster: profile.nodes_per_cluster(),
        hours: run.as_secs_f64() / 3600.0,
        usd: profile.estimated_cost_usd(run),
    }
}

impl Estimate {
    pub fn describe(&self, profile: &Profile) -> String {
        format!(
            "profile {}: {} cluster(s) × {} {} = {} objects ({} fake Node(s) per cluster at density {}), scheduler {}\n\
             estimate: {:.2} h, ${:.2} at ${:.2}/h (costEstimate; $0 on a laptop or homelab)",
            profile.name,
            self.clusters,
            self.objects_per_cluster,
            profile.load_profile.kind,
            self.total_objects,
            self.nodes_per_cluster,
            profile.harness.density,
            profile.harness.scheduler,
            self.hours,
            self.usd,
            profile.cost_estimate.aws_spot_usd_per_hour,
        )
    }
}

pub fn looks_like_cloud(context: &str) -> bool {
    let c = context.to_ascii_lowercase();
    CLOUD_HINTS.iter().any(|h| c.contains(h))
}

/// Whether the run needs a yes from a person first.
pub fn needs_confirmation(context: Option<&str>, e: &Estimate) -> bool {
    context.is_some_and(looks_like_cloud) && e.usd >= CONFIRM_USD
}

/// The local target's budget: memory for every cluster and its objects.
pub fn local_budget(profile: &Profile, memory_gib: f64) -> Result<(), String> {
    let per_cluster = LOCAL_GIB_PER_CLUSTER + profile.load_profile.objects_per_cluster as f64 * LOCAL_GIB_PER_OBJECT;
    let need = per_cluster * f64::from(profile.kwok.cluster_count);
    let have = memory_gib * LOCAL_MEMORY_SHARE;
    if need <= have {
        Ok(())
    } else {
        let fits = (have / per_cluster).floor();
        Err(format!(
            "profile {} needs ~{need:.0} GiB for {} simulated clusters locally ({per_cluster:.2} GiB each), this machine \
             allows {have:.0} GiB (80% of {memory_gib:.0} GiB): at most {fits} such clusters fit; use --target kube",
            profile.name, profile.kwok.cluster_count
        ))
    }
}

/// The seed's rule for a Kubernetes target: RAM GB × 5 = simulated-cluster pods.
pub fn kube_budget(profile: &Profile, cluster_memory_gb: f64) -> Result<(), String> {
    let max = (cluster_memory_gb * 5.0).floor();
    if f64::from(profile.kwok.cluster_count) <= max {
        Ok(())
    } else {
        Err(format!(
            "profile {} asks for {} simulated clusters; a target with {cluster_memory_gb:.0} GB of RAM holds {max} (RAM GB × 5)",
            profile.name, profile.kwok.cluster_count
        ))
    }
}

/// Total memory of this machine, from /proc/meminfo.
pub fn machine_memory_gib() -> f64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| m.lines().find(|l| l.starts_with("MemTotal:"))?.split_whitespace().nth(1)?.parse::<f64>().ok())
        .map_or(0.0, |kib| kib / (1024.0 * 1024.0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn profile(name: &str) -> Profile {
        let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("../../profiles/{name}.yaml"));
        scaletest_core::profile::load(&p).unwrap()
    }

    #[test]
    fn cloud_contexts_prompt_only_when_costly() {
        let p = profile("cloud-5m");
        let hour = estimate(&p, Duration::from_secs(3600));
        assert!(hour.usd >= 30.0 && hour.usd <= 45.0, "{}", hour.usd);
        assert!(needs_confirmation(Some("arn:aws:eks:us-west-2:1:cluster/x"), &hour));
        assert!(!needs_confirmation(Some("kind-scaletest"), &hour));
        assert!(!needs_confirmation(None, &hour));
        let minute = estimate(&p, Duration::from_secs(60));
        assert!(!needs_confirmation(Some("gke_x"), &minute));
    }

    #[test]
    fn local_budget_refuses_what_does_not_fit() {
        assert!(local_budget(&profile("smoke"), 24.0).is_ok());
        assert!(local_budget(&profile("dev-5k"), 24.0).is_ok());
        let err = local_budget(&profile("homelab-500k"), 24.0).unwrap_err();
        assert!(err.contains("use --target kube"), "{err}");
        assert!(kube_budget(&profile("homelab-500k"), 64.0).is_err());
        assert!(kube_budget(&profile("dev-5k"), 8.0).is_ok());
    }
}

//! Scale and cost, printed before anything starts, and the guardrails the
//! seed's runbook sets: a prompt for costly cloud runs, a refusal for
//! profiles bigger than the target.

use std::time::Duration;

use scaletest_core::footprint::{self, Target};
use scaletest_core::profile::Profile;

/// Prompt above this estimate when the context looks like a cloud.
pub const CONFIRM_USD: f64 = 5.0;

/// Context-name substrings that suggest a paid cloud cluster.
const CLOUD_HINTS: [&str; 6] = ["eks", "gke", "aks", "aws", "gcp", "azure"];

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

/// The local target's budget: every cluster and the run's Prometheus by the footprint
/// rule (scaletest-core's footprint.rs), within [`LOCAL_MEMORY_SHARE`] of this machine.
pub fn local_budget(profile: &Profile, memory_gib: f64) -> Result<(), String> {
    let plan = footprint::plan(profile, Target::Local);
    let need = plan.memory_gib();
    let have = memory_gib * LOCAL_MEMORY_SHARE;
    if need <= have {
        Ok(())
    } else {
        let per_cluster = plan.cluster.memory_bytes as f64 / f64::from(1u32 << 30);
        let fits = footprint::clusters_within(profile, Target::Local, have);
        Err(format!(
            "profile {} needs ~{need:.0} GiB for {} simulated clusters locally ({per_cluster:.2} GiB each, plus Prometheus), \
             this machine allows {have:.0} GiB (80% of {memory_gib:.0} GiB): at most {fits} such clusters fit; use --target kube",
            profile.name, profile.kwok.cluster_count
        ))
    }
}

/// The kube target's budget: the chart's requests by the same rule (the runner passes
/// them to helm) against the Nodes' allocatable CPU and memory, summed.
pub fn kube_budget(profile: &Profile, cluster_vcpu: f64, cluster_memory_gb: f64) -> Result<(), String> {
    footprint::plan(profile, Target::Kube).fits(cluster_vcpu, cluster_memory_gb).map_err(|short| {
        format!(
            "profile {} does not fit this Kubernetes cluster ({cluster_vcpu:.1} vCPU, {cluster_memory_gb:.0} GB allocatable): \
             it requests {short}",
            profile.name
        )
    })
}

/// The footprint line and whether the run fits the target its costEstimate names (a
/// Kubernetes cluster: the cost model prices cloud Nodes).
pub fn fit(profile: &Profile) -> (String, Result<(), String>) {
    let plan = footprint::plan(profile, Target::Kube);
    let cost = &profile.cost_estimate;
    (plan.describe(), plan.fits(cost.vcpu, cost.memory_gb))
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
        assert!(hour.usd >= 300.0 && hour.usd <= 350.0, "{}", hour.usd);
        assert!(needs_confirmation(Some("arn:aws:eks:us-west-2:1:cluster/x"), &hour));
        assert!(!needs_confirmation(Some("kind-scaletest"), &hour));
        assert!(!needs_confirmation(None, &hour));
        let short = estimate(&p, Duration::from_secs(30));
        assert!(!needs_confirmation(Some("gke_x"), &short));
    }

    #[test]
    fn local_budget_refuses_what_does_not_fit() {
        assert!(local_budget(&profile("smoke"), 24.0).is_ok());
        assert!(local_budget(&profile("dev-5k"), 24.0).is_ok());
        assert!(local_budget(&profile("dev-5k"), 4.0).is_err());
        let err = local_budget(&profile("homelab-500k"), 24.0).unwrap_err();
        assert!(err.contains("use --target kube"), "{err}");
        assert!(kube_budget(&profile("homelab-500k"), 64.0, 256.0).is_err());
        assert!(kube_budget(&profile("dev-5k"), 8.0, 16.0).is_ok());
        let err = kube_budget(&profile("dev-5k"), 0.5, 16.0).unwrap_err();
        assert!(err.contains("vCPU of requests"), "{err}");
    }

    /// Every shipped profile fits the target its costEstimate names, by the footprint rule.
    #[test]
    fn every_shipped_profile_fits_its_target() {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../profiles");
        for (path, p) in scaletest_core::profile::load_dir(&dir).unwrap() {
            let (line, fits) = fit(&p);
            assert!(fits.is_ok(), "{}: {:?}\n{line}", path.display(), fits);
        }
    }
}

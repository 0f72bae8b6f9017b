//! What a simulated cluster and the run's Prometheus cost, as measured: the one rule
//! the runner's local and kube budgets, the chart's requests/limits (the runner passes
//! them to helm; `charts/scaletest/values.yaml` holds them for dev-5k's shape, checked by
//! a test) and the profiles' fit (`scaletest-runner validate` / `estimate`) come from.
//! When `make bench` re-measures, update the figures in this file and nothing else.

use std::time::Duration;

use crate::profile::{ControlPlane, Phase, Profile};

/// Memory of one simulated cluster holding `objects` Pods: the RSS of every process of
/// its control plane and harness, summed, mean and peak over a loaded window. RSS counts
/// each process's mapped binary, which a Pod's memory cgroup may be charged for: the
/// safe figure for a limit (PSS / private, lower, are what the footprint work cuts).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MemoryPoint {
    pub objects: u64,
    pub mean_mib: f64,
    pub peak_mib: f64,
}

/// Measured points by object count, per control plane (`harness.controlPlane`), all with
/// one method: one cluster, its Pods created at once and bound by kube-scheduler onto the
/// reference SUT's Nodes; mean of the summed RSS over the loaded window, and each process
/// class's peak summed. 0, 1K and 10K: results/bench/rule.json (`scripts/bench.py --only
/// rule`, 2026-12-06). 50K: results/bench/binding.json's kube-scheduler row (2026-11-30, a
/// full control plane, before GOGC=50 and the lean lever), which `lean` shares as its upper
/// bound (lean cuts fixed costs, not per-Pod ones). A lean row that is no working cluster's
/// footprint (its run lost acknowledged objects, restarted or broke an invariant: rule.json's
/// `notAPoint`) would give way to full's. A test checks every figure against its file.
/// Between two points the rule interpolates linearly, past the last it extends the last
/// segment.
pub const MEMORY_LEAN: [MemoryPoint; 4] = [
    MemoryPoint { objects: 0, mean_mib: 501.9, peak_mib: 501.9 },
    MemoryPoint { objects: 1_000, mean_mib: 929.8, peak_mib: 1_121.7 },
    MemoryPoint { objects: 10_000, mean_mib: 1_506.7, peak_mib: 1_963.4 },
    MEMORY_FULL[3],
];
pub const MEMORY_FULL: [MemoryPoint; 4] = [
    MemoryPoint { objects: 0, mean_mib: 536.4, peak_mib: 536.4 },
    MemoryPoint { objects: 1_000, mean_mib: 953.8, peak_mib: 1_057.1 },
    MemoryPoint { objects: 10_000, mean_mib: 1_580.3, peak_mib: 2_076.8 },
    MemoryPoint { objects: 50_000, mean_mib: 4_369.3, peak_mib: 6_373.4 },
];

/// The points of a control plane.
pub fn memory(control_plane: ControlPlane) -> &'static [MemoryPoint] {
    match control_plane {
        ControlPlane::Lean => &MEMORY_LEAN,
        ControlPlane::Full => &MEMORY_FULL,
    }
}

/// A cluster's memory request over the measured mean, its limit over the measured peak: the
/// bench samples RSS every 0.5 s, and a cgroup at its limit is OOM-killed at once.
pub const MEMORY_HEADROOM: f64 = 1.1;

/// Idle CPU of one cluster (results/bench/rule.json, the 0-Pod rows' `vcpu`).
pub fn idle_vcpu(control_plane: ControlPlane) -> f64 {
    match control_plane {
        ControlPlane::Lean => 0.028,
        ControlPlane::Full => 0.027,
    }
}

/// CPU seconds a cluster's processes spend per Pod created (the create, its binding,
/// kwok's status writes, five watchers' copies). results/bench/overhead.json: 60.6 CPU s
/// per cluster over its 267.7 s window, less idle (6.8), for ~1,200 Pods (1,000 ramped,
/// 5 % replaced every 30 s in the 2 m steady phase). The binding bench agrees: 41 ms per
/// Pod at 50,000 (kube-scheduler), 68 ms at 10,000 with preemption's retries. ConfigMaps
/// cost less; the rule prices every object as a Pod.
pub const CPU_SECONDS_PER_POD: f64 = 0.045;

/// Series one simulated cluster puts in Prometheus: a 2 x 1,000-Pod run of dev-5k's shape on
/// 2026-12-01 (results/20261201-014335-prom-2x1k/prometheus-series.json: its snapshot replayed,
/// `count by (cluster, component) ({__name__=~".+"})` at its last sample), cluster-0:
/// kube-apiserver 26,678, kube-controller-manager 3,798, kube-scheduler 3,262, kine 310,
/// load-driver 108, sut 74, kwok 53, node-creator 27, supervisor 15 (each figure includes
/// the 5 series Prometheus adds per target: `up` and `scrape_*`).
pub const SERIES_PER_CLUSTER: u64 = 34_325;
/// Of those, kube-apiserver's whole /metrics, which the local target scrapes.
pub const SERIES_APISERVER: u64 = 26_678;
/// What the kube target scrapes of kube-apiserver instead: its supervisor's
/// /metrics/kube-apiserver (the cluster's client certificate stays in the Pod), only the
/// request families. A smoke run on 2026-12-01 (profiles/smoke.yaml, local, every series
/// the run's Prometheus held, `count(last_over_time(...[10m]))`, and the route itself at
/// the end of the soak, alike): apiserver_request_duration_seconds_bucket 4,248 (177
/// label sets x 24 buckets), `_sum` 177, `_count` 177, apiserver_request_total 195; plus
/// the 5 series Prometheus adds per target. The whole endpoint had 26,582 there. (Counted
/// again from a saved scrape: crates/scaletest-cluster/src/apiserver_metrics.rs,
/// `count_series_of_a_saved_scrape`.)
pub const SERIES_APISERVER_REQUESTS: u64 = 4_248 + 177 + 177 + 195 + 5;
/// What the run reads of those: the histogram's buckets summed by (verb, scope) (the
/// route's `?by=verb,scope`), 11 label pairs x 24 buckets in the same scrape.
pub const SERIES_APISERVER_READ: u64 = 11 * 24;
/// What a Prometheus keeping only what the run reads holds per cluster: the 213 series of
/// `scaletest_.*`, `up` and `kwok_node_count` in the same run, plus `scrape_*` (4 series)
/// for each of the 4 harness targets it still scrapes, plus kube-apiserver's summed
/// buckets with that target's `up` and `scrape_*`.
pub const SERIES_READ: u64 = 213 + 4 * 4 + SERIES_APISERVER_READ + 5;
/// Prometheus's RSS: a base plus a share per head series, through two measured peaks:
/// 382 MB (364 MiB) at 68,611 series (the same run: process_resident_memory_bytes and
/// prometheus_tsdb_head_series sampled every 10 s, results/20261201-014335-prom-2x1k/
/// prometheus-self.txt; its peak is the end of the run, answering the runner's report
/// queries) and 578.2 MiB for 5 clusters (results/bench/overhead.json `prometheus`
/// rssPeakMiB; 5 x the 34,325 series per cluster above): 2.13 KiB per series, 222 MiB base.
pub const PROMETHEUS_BASE_MIB: f64 = 222.0;
pub const PROMETHEUS_BYTES_PER_SERIES: f64 = 2.13 * 1024.0;
/// Prometheus's CPU seconds per sample ingested, the runner's queries included: 8.7 CPU s
/// for 3.11 million samples over the same run (process_cpu_seconds_total,
/// prometheus_tsdb_head_samples_appended_total).
pub const PROMETHEUS_CPU_SECONDS_PER_SAMPLE: f64 = 2.8e-6;
/// Prometheus's request/limit over the measured figures: head compaction (every 2 h) and
/// the runner's range queries for the report come on top of ingestion.
pub const PROMETHEUS_HEADROOM: f64 = 2.0;
/// The most series the rule plans for one Prometheus: ~4.3 GiB RSS and 400,000 samples/s
/// (~2.2 vCPU) by the figures above, a cap the rule chooses, not one measured (the
/// figures come from at most 171,625 series).
/// Past it a kube run keeps only the series the run reads ([`PrometheusScrape::Read`]).
pub const PROMETHEUS_MAX_SERIES: u64 = 2_000_000;
/// Scrape interval of both targets (the runner's local Prometheus and the chart's).
pub const SCRAPE_INTERVAL: Duration = Duration::from_secs(5);
/// Floors: a Prometheus or a cluster never gets less than these, whatever the arithmetic.
const PROMETHEUS_MIN_MEMORY_MIB: f64 = 512.0;
const PROMETHEUS_MIN_MILLIS: u64 = 100;
const PROMETHEUS_LIMIT_MILLIS: u64 = 1000;

/// Where a run goes: the local target scrapes kube-apiserver's every series, the kube
/// target its request families only (through the supervisor).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Local,
    Kube,
}

/// What the run's Prometheus scrapes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrometheusScrape {
    /// Every component's every series (a replayable TSDB of the whole control plane).
    Everything,
    /// Only the harness's components and the series the runner and the SLOs read.
    Read,
}

/// Requests and limits of one container, in the units Kubernetes takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resources {
    pub cpu_request_millis: u64,
    /// At the fastest phase: planned for (`peak_vcpu`), set as a limit on Prometheus only;
    /// a cluster's or controller's bursts must not be throttled (crates/runner/src/kube.rs).
    pub cpu_limit_millis: u64,
    /// The request: what the Node (or the local machine) must hold for it over the run.
    pub memory_bytes: u64,
    /// The limit: memory cannot be throttled, only killed, so it holds the measured peak.
    pub memory_limit_bytes: u64,
}

/// The whole run by the rule.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub clusters: u32,
    pub objects_per_cluster: u64,
    /// Pods created per second per cluster: over the run, and at its fastest phase.
    pub mean_rate: f64,
    pub peak_rate: f64,
    /// What the clusters run (the memory points differ).
    pub control_plane: ControlPlane,
    pub cluster: Resources,
    /// The user's controller beside each cluster, as its profile declares (`sut.resources`).
    pub sut: Option<Resources>,
    pub series: u64,
    pub scrape: PrometheusScrape,
    pub prometheus: Resources,
}

impl Plan {
    /// One cluster with its controller, if the profile declares one's resources.
    fn per_cluster(&self, f: impl Fn(&Resources) -> u64) -> u64 {
        f(&self.cluster) + self.sut.as_ref().map_or(0, &f)
    }

    /// vCPU the run requests (every cluster plus Prometheus).
    pub fn vcpu(&self) -> f64 {
        let cluster = self.per_cluster(|r| r.cpu_request_millis);
        (u64::from(self.clusters) * cluster + self.prometheus.cpu_request_millis) as f64 / 1000.0
    }

    /// vCPU every cluster asks for at its fastest phase at once, plus Prometheus.
    pub fn peak_vcpu(&self) -> f64 {
        let cluster = self.per_cluster(|r| r.cpu_limit_millis);
        (u64::from(self.clusters) * cluster + self.prometheus.cpu_request_millis) as f64 / 1000.0
    }

    /// Memory (GiB) the run requests.
    pub fn memory_gib(&self) -> f64 {
        let cluster = self.per_cluster(|r| r.memory_bytes);
        (u64::from(self.clusters) * cluster + self.prometheus.memory_bytes) as f64 / f64::from(1u32 << 30)
    }

    /// One line for `estimate` and `validate`.
    pub fn describe(&self) -> String {
        let mib = |b: u64| b >> 20;
        format!(
            "footprint (crates/scaletest-core/src/footprint.rs): per cluster ({} control plane) {}m CPU ({:.1} Pods/s over the run; {}m at {:.1} Pods/s), {} MiB (limit {} MiB){}; \
             Prometheus {}m / {} MiB for {} series ({}); in all {:.1} vCPU ({:.1} with every cluster at its fastest phase), {:.1} GiB",
            self.control_plane,
            self.cluster.cpu_request_millis,
            self.mean_rate,
            self.cluster.cpu_limit_millis,
            self.peak_rate,
            mib(self.cluster.memory_bytes),
            mib(self.cluster.memory_limit_bytes),
            self.sut.as_ref().map_or(String::new(), |r| format!(
                " (+ your controller {}m / {} MiB: sut.resources)",
                r.cpu_request_millis,
                mib(r.memory_bytes)
            )),
            self.prometheus.cpu_request_millis,
            mib(self.prometheus.memory_bytes),
            self.series,
            match self.scrape {
                PrometheusScrape::Everything => "every component",
                PrometheusScrape::Read => "only what the run reads",
            },
            self.vcpu(),
            self.peak_vcpu(),
            self.memory_gib(),
        )
    }

    /// Whether the run fits `vcpu` / `memory_gb` (GB, as costEstimate and Nodes state it).
    pub fn fits(&self, vcpu: f64, memory_gb: f64) -> Result<(), String> {
        let gib = memory_gb * 1e9 / f64::from(1u32 << 30);
        let mut short = Vec::new();
        if self.vcpu() > vcpu {
            short.push(format!("{:.1} vCPU of requests, {vcpu} vCPU there", self.vcpu()));
        }
        if self.memory_gib() > gib {
            short.push(format!("{:.1} GiB of memory, {gib:.1} GiB ({memory_gb} GB) there", self.memory_gib()));
        }
        if short.is_empty() { Ok(()) } else { Err(short.join("; ")) }
    }
}

/// The most clusters of `profile`'s shape whose plan on `target` needs at most `gib`.
pub fn clusters_within(profile: &Profile, target: Target, gib: f64) -> u32 {
    let mut p = profile.clone();
    let (mut lo, mut hi) = (0u32, profile.kwok.cluster_count);
    // Memory grows with the cluster count: bisect for the last count that fits.
    while lo < hi {
        let mid = lo + (hi - lo).div_ceil(2);
        p.kwok.cluster_count = mid;
        if plan(&p, target).memory_gib() <= gib { lo = mid } else { hi = mid - 1 }
    }
    lo
}

/// Memory (MiB) of one cluster holding `objects`, by `point`'s field, from `points`.
fn interpolate(points: &[MemoryPoint], objects: u64, field: fn(&MemoryPoint) -> f64) -> f64 {
    let segment = points.windows(2).find(|w| objects <= w[1].objects).unwrap_or(&points[points.len() - 2..]);
    let (a, b) = (&segment[0], &segment[1]);
    let slope = (field(b) - field(a)) / (b.objects - a.objects) as f64;
    field(a) + slope * (objects as f64 - a.objects as f64)
}

fn millis(vcpu: f64) -> u64 {
    // Whole 10m steps, rounded up.
    ((vcpu * 100.0).ceil() as u64) * 10
}

fn mib_bytes(mib: f64) -> u64 {
    (mib.ceil() as u64) << 20
}

/// One cluster's resources at `objects` Pods, created at `mean_rate` / `peak_rate` per second.
pub fn cluster(control_plane: ControlPlane, objects: u64, mean_rate: f64, peak_rate: f64) -> Resources {
    let idle = idle_vcpu(control_plane);
    Resources {
        cpu_request_millis: millis(idle + CPU_SECONDS_PER_POD * mean_rate),
        cpu_limit_millis: millis(idle + CPU_SECONDS_PER_POD * peak_rate.max(mean_rate)),
        memory_bytes: mib_bytes(interpolate(memory(control_plane), objects, |p| p.mean_mib) * MEMORY_HEADROOM),
        memory_limit_bytes: mib_bytes(interpolate(memory(control_plane), objects, |p| p.peak_mib) * MEMORY_HEADROOM),
    }
}

/// Prometheus's resources for `series` head series scraped every [`SCRAPE_INTERVAL`].
pub fn prometheus(series: u64) -> Resources {
    let samples_per_second = series as f64 / SCRAPE_INTERVAL.as_secs_f64();
    let cpu =
        millis(samples_per_second * PROMETHEUS_CPU_SECONDS_PER_SAMPLE * PROMETHEUS_HEADROOM).max(PROMETHEUS_MIN_MILLIS);
    let memory = ((PROMETHEUS_BASE_MIB + series as f64 * PROMETHEUS_BYTES_PER_SERIES / f64::from(1u32 << 20))
        * PROMETHEUS_HEADROOM)
        .max(PROMETHEUS_MIN_MEMORY_MIB);
    // Its limit leaves room for the runner's bursts of range queries (report, snapshot).
    Resources {
        cpu_request_millis: cpu,
        cpu_limit_millis: cpu.max(PROMETHEUS_LIMIT_MILLIS),
        memory_bytes: mib_bytes(memory),
        memory_limit_bytes: mib_bytes(memory),
    }
}

/// Pods created per second per cluster: (over the whole load, at its fastest phase).
pub fn creation_rates(profile: &Profile) -> (f64, f64) {
    let load = &profile.load_profile;
    let objects = load.objects_per_cluster as f64;
    let (mut created, mut seconds, mut peak) = (0.0_f64, 0.0_f64, 0.0_f64);
    for phase in &load.phases {
        // (Pods created, seconds the phase lasts) per cluster; qps caps a ramp and a burst.
        let (n, secs) = match phase {
            Phase::Ramp(r) => (objects, objects / r.rate.min(load.qps)),
            Phase::Burst(b) => (b.count as f64, b.count as f64 / load.qps),
            Phase::Steady(s) => {
                let cycles = s.duration.as_secs_f64() / s.churn_interval.as_secs_f64().max(1.0);
                (objects * s.churn_percent / 100.0 * cycles, s.duration.as_secs_f64())
            }
        };
        created += n;
        seconds += secs;
        if secs > 0.0 {
            peak = peak.max(n / secs);
        }
    }
    let mean = if seconds > 0.0 { created / seconds } else { 0.0 };
    (mean, peak)
}

/// The run by the rule, on `target`.
/// The controller's declared resources (validate refuses unparsable ones).
fn sut(profile: &Profile) -> Option<Resources> {
    let crate::profile::Sut::External(e) = &profile.sut else { return None };
    let r = e.resources.as_ref()?;
    let cpu = r.cpu_millis().ok()?;
    let memory = r.memory_bytes().ok()?;
    Some(Resources { cpu_request_millis: cpu, cpu_limit_millis: cpu, memory_bytes: memory, memory_limit_bytes: memory })
}

pub fn plan(profile: &Profile, target: Target) -> Plan {
    let (mean_rate, peak_rate) = creation_rates(profile);
    let clusters = profile.kwok.cluster_count;
    let every = match target {
        Target::Local => SERIES_PER_CLUSTER,
        Target::Kube => SERIES_PER_CLUSTER - SERIES_APISERVER + SERIES_APISERVER_REQUESTS,
    };
    let (scrape, per_cluster) = if target == Target::Kube && every * u64::from(clusters) > PROMETHEUS_MAX_SERIES {
        (PrometheusScrape::Read, SERIES_READ)
    } else {
        (PrometheusScrape::Everything, every)
    };
    let series = per_cluster * u64::from(clusters);
    Plan {
        clusters,
        objects_per_cluster: profile.load_profile.objects_per_cluster,
        mean_rate,
        peak_rate,
        control_plane: profile.control_plane(),
        cluster: cluster(profile.control_plane(), profile.load_profile.objects_per_cluster, mean_rate, peak_rate),
        sut: sut(profile),
        series,
        scrape,
        prometheus: prometheus(series),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_follows_the_measured_points() {
        let [zero, one, ten, fifty] = MEMORY_FULL;
        let peak = |objects| interpolate(&MEMORY_FULL, objects, |p| p.peak_mib);
        assert_eq!(peak(0), zero.peak_mib);
        assert!((peak(1_000) - one.peak_mib).abs() < 1e-9);
        let half = interpolate(&MEMORY_FULL, 500, |p| p.mean_mib);
        assert!((half - (zero.mean_mib + one.mean_mib) / 2.0).abs() < 1e-9, "{half}");
        assert!((peak(10_000) - ten.peak_mib).abs() < 1e-9);
        // Past the last point: the last segment extended.
        let beyond = peak(90_000);
        assert!((beyond - (fifty.peak_mib + (fifty.peak_mib - ten.peak_mib))).abs() < 1e-6, "{beyond}");
    }

    #[test]
    fn a_limit_never_sits_below_a_measured_peak() {
        for cp in [ControlPlane::Lean, ControlPlane::Full] {
            for p in memory(cp) {
                let r = cluster(cp, p.objects, 10.0, 10.0);
                let mib = |b: u64| b as f64 / f64::from(1u32 << 20);
                assert!(mib(r.memory_limit_bytes) >= p.peak_mib * MEMORY_HEADROOM, "{cp}: {p:?}");
                assert!(mib(r.memory_bytes) >= p.mean_mib * MEMORY_HEADROOM, "{cp}: {p:?}");
            }
        }
    }

    /// The points are what the bench last wrote: a re-measure that moves a figure fails
    /// here until this file carries it.
    #[test]
    fn the_points_are_the_benchs() {
        let bench = |name: &str| -> serde_json::Value {
            let path =
                std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../../results/bench/{name}.json"));
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
        };
        let (rule, binding) = (bench("rule"), bench("binding"));
        for cp in [ControlPlane::Lean, ControlPlane::Full] {
            let points = memory(cp);
            let rows = &rule["points"][cp.as_str()];
            assert_eq!(Some(idle_vcpu(cp)), rows["0"]["vcpu"].as_f64(), "{cp}: idle vCPU");
            for p in points {
                // A lean row that is no working cluster's footprint gives way to full's.
                let point = |cp: &str| {
                    Some(&rule["points"][cp][p.objects.to_string()])
                        .filter(|r| r.is_object() && r["notAPoint"].is_null())
                };
                if let Some(row) = point(cp.as_str()).or_else(|| point("full")) {
                    assert_eq!(
                        (Some(p.mean_mib), Some(p.peak_mib)),
                        (row["meanMiB"].as_f64(), row["peakMiB"].as_f64()),
                        "{cp}: {p:?}"
                    );
                    continue;
                }
                // Every process class of the run but the runner and Prometheus, summed.
                let classes =
                    binding["sizes"][p.objects.to_string()]["kube-scheduler"]["window"]["classes"].as_object().unwrap();
                let sum = |field: &str| -> f64 {
                    classes
                        .iter()
                        .filter(|(c, _)| !["runner", "prometheus"].contains(&c.as_str()))
                        .map(|(_, v)| v[field].as_f64().unwrap())
                        .sum()
                };
                assert!(
                    (sum("rssMeanMiB") - p.mean_mib).abs() < 0.05 && (sum("rssPeakMiB") - p.peak_mib).abs() < 0.05,
                    "{cp}: {p:?}"
                );
            }
        }
    }

    #[test]
    fn cpu_grows_with_the_creation_rate() {
        let idle = idle_vcpu(ControlPlane::Lean);
        assert_eq!(cluster(ControlPlane::Lean, 1_000, 0.0, 0.0).cpu_request_millis, millis(idle));
        let ramp = cluster(ControlPlane::Lean, 1_000, 5.0, 50.0);
        assert_eq!(ramp.cpu_request_millis, millis(idle + 0.225));
        assert_eq!(ramp.cpu_limit_millis, millis(idle + 2.25));
    }

    #[test]
    fn kube_counts_the_apiservers_request_series_not_its_whole_metrics() {
        let smoke = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../profiles/smoke.yaml");
        let mut p = crate::profile::load(&smoke).unwrap();
        p.kwok.cluster_count = 2;
        let kube = plan(&p, Target::Kube);
        assert_eq!(kube.scrape, PrometheusScrape::Everything);
        assert_eq!(kube.series, 2 * (SERIES_PER_CLUSTER - SERIES_APISERVER + SERIES_APISERVER_REQUESTS));
        assert_eq!(plan(&p, Target::Local).series, 2 * SERIES_PER_CLUSTER);
        // Past the budget: only what the run reads, kube-apiserver's summed buckets included.
        p.kwok.cluster_count = 1_000;
        let read = plan(&p, Target::Kube);
        assert_eq!((read.scrape, read.series), (PrometheusScrape::Read, 1_000 * SERIES_READ));
    }

    #[test]
    fn prometheus_has_floors_and_grows_with_series() {
        assert_eq!(prometheus(0).memory_bytes, 512 << 20);
        assert_eq!(prometheus(0).cpu_request_millis, 100);
        let big = prometheus(1_000_000);
        assert!(big.memory_bytes > 4 << 30, "{}", big.memory_bytes);
    }
}

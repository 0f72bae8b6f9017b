//! The profile's `faults`, applied during the soak, and each one's recovery time.
//!
//! Local target: every simulated cluster's supervisor serves `POST /faults/{component}/{action}`
//! and `GET /children/{component}` on its admin port (loopback only; see
//! `scaletest_cluster::control`). The runner posts the fault, then measures the
//! **recovery time**: from the fault until (1) the component runs again (restarted,
//! or resumed after a stop) and its readiness probe passes, (2) kube-apiserver is
//! ready, and (3) the load-driver reports steady state (every object there and bound).
//!
//! Kube target (not wired yet; the runner refuses a profile with faults there): the
//! same routes answer through `kubectl port-forward pod/<release>-cluster-<i> :<portBase+6>`
//! (the supervisor's port), since the control routes accept loopback peers and a
//! port-forward arrives on loopback. The one exception is `target: sut`, which the
//! chart runs as its own container beside the supervisor: kill/restart it with
//! `kubectl exec <pod> -c sut -- kill -KILL 1` (or `-TERM`); stop is not possible there
//! without a shared PID namespace (`shareProcessNamespace: true` in the pod spec).

use std::time::{Duration, Instant, SystemTime};

use scaletest_cluster::control::{self, ControlError, FaultReply};
use scaletest_core::http::{self, HttpError};
use scaletest_core::profile::{Fault, FaultAction, FaultTarget};
use serde::{Deserialize, Serialize};

/// How often a recovering cluster is asked where it stands.
const POLL: Duration = Duration::from_millis(250);

/// One fault occurrence of the schedule: what to hit, where, and when.
#[derive(Clone, Debug, PartialEq)]
pub struct Planned {
    /// From the start of the soak.
    pub offset: Duration,
    /// Index into the profile's `faults`.
    pub fault: usize,
    pub target: FaultTarget,
    pub action: FaultAction,
    pub hold: Option<Duration>,
    /// Cluster indices.
    pub clusters: Vec<u32>,
}

/// Expands `faults` over a soak of `soak` with `cluster_count` clusters, in time order.
/// `every: X` fires at X, 2X, … while the offset is inside the soak.
pub fn plan(faults: &[Fault], soak: Duration, cluster_count: u32) -> Vec<Planned> {
    let mut out = Vec::new();
    for (i, f) in faults.iter().enumerate() {
        let clusters: Vec<u32> = (0..cluster_count).filter(|c| f.hits(*c)).collect();
        let mut push = |offset| {
            out.push(Planned {
                offset,
                fault: i,
                target: f.target,
                action: f.action,
                hold: f.hold,
                clusters: clusters.clone(),
            })
        };
        match (f.at, f.every) {
            (Some(at), _) => push(at),
            (None, Some(every)) if !every.is_zero() => {
                let mut offset = every;
                while offset < soak {
                    push(offset);
                    offset += every;
                }
            }
            _ => {}
        }
    }
    // Stable: equal offsets keep the profile's order.
    out.sort_by_key(|p| p.offset);
    out
}

/// Where one cluster's supervisor and load-driver answer.
#[derive(Clone, Debug)]
pub struct ClusterTarget {
    pub index: u32,
    pub name: String,
    /// The supervisor's admin address (metrics + control routes).
    pub supervisor: String,
    /// The load-driver's metrics address.
    pub load_driver: Option<String>,
}

/// One fault as it happened in one cluster: part of `summary.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FaultRecord {
    /// Index into the profile's `faults`.
    pub fault: usize,
    pub target: String,
    pub action: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold_seconds: Option<f64>,
    /// When it was injected, from the start of the soak.
    pub at_seconds: f64,
    pub injected_at: String,
    /// The process group hit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    /// Fault → component ready again, apiserver ready and the load-driver steady.
    /// None: not recovered within the steady-state timeout (or never injected).
    pub recovery_seconds: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Applies `plan` from `soak_start`, then waits for every recovery (each bounded by
/// `recover_within`). Returns one record per fault and cluster, by cluster then time.
pub async fn run(
    plan: &[Planned],
    clusters: &[ClusterTarget],
    soak_start: Instant,
    recover_within: Duration,
) -> Vec<(u32, FaultRecord)> {
    // Spawned, so that each fault is injected on time while earlier ones still recover.
    let mut recoveries = tokio::task::JoinSet::new();
    for p in plan {
        tokio::time::sleep_until((soak_start + p.offset).into()).await;
        for c in clusters.iter().filter(|c| p.clusters.contains(&c.index)) {
            let (p, c) = (p.clone(), c.clone());
            recoveries.spawn(async move { hit(&p, &c, soak_start, recover_within).await });
        }
    }
    let mut records = Vec::new();
    while let Some(r) = recoveries.join_next().await {
        match r {
            Ok(r) => records.push(r),
            Err(e) => tracing::error!(error = %e, "a fault task failed"),
        }
    }
    records.sort_by(|(a, x), (b, y)| a.cmp(b).then(x.at_seconds.total_cmp(&y.at_seconds)));
    records
}

/// Injects one fault into one cluster and measures its recovery.
async fn hit(p: &Planned, c: &ClusterTarget, soak_start: Instant, recover_within: Duration) -> (u32, FaultRecord) {
    let target = p.target.as_str();
    let deadline = Instant::now() + recover_within;
    // A component still restarting from an earlier fault is hit once it runs again.
    let (reply, injected) = loop {
        let injected = Instant::now();
        match control::send_fault(&c.supervisor, target, p.action, p.hold).await {
            Ok(reply) => break (Ok(reply), injected),
            // 409: not running (yet) or held by a stop; anything else will not change.
            Err(e @ ControlError::Http(HttpError::Status { status, .. })) if status != 409 => {
                break (Err(e.to_string()), injected);
            }
            Err(e) if Instant::now() >= deadline => break (Err(e.to_string()), injected),
            Err(_) => tokio::time::sleep(POLL).await,
        }
    };
    let mut record = FaultRecord {
        fault: p.fault,
        target: target.to_string(),
        action: p.action.to_string(),
        hold_seconds: p.hold.map(|h| h.as_secs_f64()),
        at_seconds: injected.duration_since(soak_start).as_secs_f64(),
        injected_at: humantime::format_rfc3339_millis(SystemTime::now() - injected.elapsed()).to_string(),
        pid: None,
        recovery_seconds: None,
        error: None,
    };
    match reply {
        Err(e) => record.error = Some(format!("not injected: {e}")),
        Ok(reply) => {
            record.pid = Some(reply.pid);
            println!(
                "[fault] {}: {} {target} (pid {}){}",
                c.name,
                p.action,
                reply.pid,
                p.hold.map_or(String::new(), |h| format!(" for {}", humantime::format_duration(h)))
            );
            match recovered(c, p, &reply, injected, injected + recover_within).await {
                Some(t) => {
                    println!("[fault] {}: {target} {} recovered in {:.1}s", c.name, p.action, t.as_secs_f64());
                    record.recovery_seconds = Some(t.as_secs_f64());
                }
                None => {
                    record.error =
                        Some(format!("not back at steady state within {}", humantime::format_duration(recover_within)));
                }
            }
        }
    }
    (c.index, record)
}

/// Polls until the cluster is back at steady state after `reply`'s fault; the time
/// from `injected`, or None at `deadline`.
async fn recovered(
    c: &ClusterTarget,
    p: &Planned,
    reply: &FaultReply,
    injected: Instant,
    deadline: Instant,
) -> Option<Duration> {
    // A stopped component is not back before its SIGCONT, whatever its probe said before.
    let resumed = injected + p.hold.unwrap_or_default();
    loop {
        let now = Instant::now();
        if now >= deadline {
            return None;
        }
        if now >= resumed && component_back(c, p, reply).await && cluster_steady(c).await {
            return Some(injected.elapsed());
        }
        tokio::time::sleep(POLL).await;
    }
}

async fn component_back(c: &ClusterTarget, p: &Planned, reply: &FaultReply) -> bool {
    let Ok(s) = control::child_status(&c.supervisor, p.target.as_str()).await else { return false };
    let restarted = match p.action {
        FaultAction::Stop => s.pid == Some(reply.pid),
        FaultAction::Kill | FaultAction::Restart => s.starts > reply.starts,
    };
    s.state == "running" && s.ready && !s.paused && restarted
}

/// The apiserver is ready and the load-driver holds every object, bound.
async fn cluster_steady(c: &ClusterTarget) -> bool {
    let apiserver = control::child_status(&c.supervisor, FaultTarget::KubeApiserver.as_str())
        .await
        .is_ok_and(|s| s.state == "running" && s.ready);
    if !apiserver {
        return false;
    }
    let Some(addr) = &c.load_driver else { return true };
    let Ok(text) = http::get(addr, "/metrics").await else { return false };
    http::sample(&text, "scaletest_load_driver_steady_state") == Some(1.0)
}

/// Recovery figures over every record, for `summary.json`'s metrics.
pub fn recovery_metrics(records: &[FaultRecord]) -> Vec<(&'static str, Option<f64>)> {
    let times: Vec<f64> = records.iter().filter_map(|r| r.recovery_seconds).collect();
    let max = times.iter().copied().reduce(f64::max);
    let mean = (!times.is_empty()).then(|| times.iter().sum::<f64>() / times.len() as f64);
    vec![
        ("faultsInjected", Some(records.iter().filter(|r| r.pid.is_some()).count() as f64)),
        ("faultRecoveryMaxSeconds", max),
        ("faultRecoveryMeanSeconds", mean),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fault(at: Option<u64>, every: Option<u64>, target: FaultTarget, clusters: Option<Vec<u32>>) -> Fault {
        Fault {
            at: at.map(Duration::from_secs),
            every: every.map(Duration::from_secs),
            target,
            action: FaultAction::Kill,
            hold: None,
            clusters,
        }
    }

    #[test]
    fn plans_offsets_in_time_order_over_the_soak() {
        let faults = [
            fault(Some(50), None, FaultTarget::Kine, None),
            fault(None, Some(20), FaultTarget::Sut, Some(vec![1])),
            fault(Some(20), None, FaultTarget::KubeApiserver, Some(vec![0, 2])),
        ];
        let p = plan(&faults, Duration::from_secs(60), 3);
        let shown: Vec<(u64, FaultTarget, Vec<u32>)> =
            p.iter().map(|p| (p.offset.as_secs(), p.target, p.clusters.clone())).collect();
        assert_eq!(
            shown,
            [
                (20, FaultTarget::Sut, vec![1]),
                (20, FaultTarget::KubeApiserver, vec![0, 2]),
                (40, FaultTarget::Sut, vec![1]),
                (50, FaultTarget::Kine, vec![0, 1, 2]),
            ]
        );
        assert_eq!(p[0].fault, 1);
    }

    #[test]
    fn an_interval_as_long_as_the_soak_fires_never() {
        assert!(plan(&[fault(None, Some(60), FaultTarget::Sut, None)], Duration::from_secs(60), 1).is_empty());
    }

    #[test]
    fn recovery_figures() {
        let r = |pid, secs| FaultRecord {
            fault: 0,
            target: "sut".into(),
            action: "kill".into(),
            hold_seconds: None,
            at_seconds: 0.0,
            injected_at: String::new(),
            pid,
            recovery_seconds: secs,
            error: None,
        };
        let m = recovery_metrics(&[r(Some(1), Some(2.0)), r(Some(2), Some(4.0)), r(Some(3), None), r(None, None)]);
        assert_eq!(
            m,
            [
                ("faultsInjected", Some(3.0)),
                ("faultRecoveryMaxSeconds", Some(4.0)),
                ("faultRecoveryMeanSeconds", Some(3.0))
            ]
        );
        assert_eq!(recovery_metrics(&[])[1], ("faultRecoveryMaxSeconds", None));
    }
}

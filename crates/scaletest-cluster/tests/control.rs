//! The supervisor's fault routes against one real simulated cluster: a kill is a
//! restart that does not spend the restart budget, a stop really stops the process
//! group and resumes it, and only loopback callers may use them.

use std::time::Duration;

use scaletest_cluster::control::{self, ControlError};
use scaletest_cluster::testkit::{TestCluster, eventually, pid_of};
use scaletest_core::http::HttpError;
use scaletest_core::profile::FaultAction;

/// The fields of /proc/<pid>/stat after the command name (state first).
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    Some(stat.rsplit_once(") ")?.1.split_whitespace().map(str::to_string).collect())
}

/// The scheduler state letter of a process (`T` = stopped), from /proc.
fn proc_state(pid: u32) -> Option<char> {
    stat_fields(pid)?.first()?.chars().next()
}

/// User plus system CPU time of a process, from /proc (in USER_HZ, 100 per second on Linux).
fn cpu_seconds(pid: u32) -> f64 {
    let f = stat_fields(pid).expect("a live process");
    (f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()) as f64 / 100.0
}

/// An address of this machine that is not loopback, if it has one.
fn non_loopback_ip() -> Option<std::net::IpAddr> {
    let s = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
    s.connect("10.255.255.255:9").ok()?; // no packet is sent: this only picks a route
    let ip = s.local_addr().ok()?.ip();
    (!ip.is_loopback() && !ip.is_unspecified()).then_some(ip)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn injected_faults_restart_or_pause_a_child_without_spending_its_budget() {
    // A budget of one restart: three injected kills must not exhaust it.
    let c = TestCluster::start("faults", &["--max-restarts", "1", "--bind-address", "0.0.0.0"]).await;
    let log = c.endpoints.data_dir.join("logs/kine.log");
    let admin = c.endpoints.metrics_address("scaletest-cluster").unwrap().to_string();

    for round in 1..=3u32 {
        let reply = control::send_fault(&admin, "kine", FaultAction::Kill, None).await.unwrap();
        assert_eq!((reply.name.as_str(), reply.starts), ("kine", round));
        eventually(Duration::from_secs(60), "kine restarted and ready", Some(&log), || async {
            let s = control::child_status(&admin, "kine").await.ok()?;
            (s.state == "running" && s.ready && s.starts == round + 1 && s.pid != Some(reply.pid)).then_some(())
        })
        .await;
    }
    let apiserver_log = c.endpoints.data_dir.join("logs/kube-apiserver.log");
    eventually(Duration::from_secs(60), "kube-apiserver ready on the restarted kine", Some(&apiserver_log), || async {
        control::child_status(&admin, "kube-apiserver").await.ok().filter(|s| s.ready).map(|_| ())
    })
    .await;

    // Stop: the whole group is stopped (not ready, state T), then resumed, same pid.
    let reply =
        control::send_fault(&admin, "kube-apiserver", FaultAction::Stop, Some(Duration::from_secs(3))).await.unwrap();
    let held = control::child_status(&admin, "kube-apiserver").await.unwrap();
    assert!(held.paused && !held.ready && held.pid == Some(reply.pid), "{held:?}");
    // The kernel stops the task once it next runs: soon, not at once.
    let stopped = eventually(Duration::from_secs(2), "kube-apiserver stopped (state T)", None, || async {
        (proc_state(reply.pid) == Some('T')).then_some(true)
    })
    .await;
    assert!(stopped);
    let again = control::send_fault(&admin, "kube-apiserver", FaultAction::Kill, None).await;
    assert!(matches!(again, Err(ControlError::Http(HttpError::Status { status: 409, .. }))), "{again:?}");
    eventually(Duration::from_secs(60), "kube-apiserver resumed", Some(&apiserver_log), || async {
        let s = control::child_status(&admin, "kube-apiserver").await.ok()?;
        (!s.paused && s.ready && s.pid == Some(reply.pid) && s.starts == reply.starts).then_some(())
    })
    .await;
    assert_ne!(proc_state(reply.pid), Some('T'));

    // Restart (SIGTERM) is a restart too.
    let reply = control::send_fault(&admin, "kwok", FaultAction::Restart, None).await.unwrap();
    eventually(Duration::from_secs(60), "kwok restarted", None, || async {
        let s = control::child_status(&admin, "kwok").await.ok()?;
        (s.ready && s.starts == reply.starts + 1).then_some(())
    })
    .await;

    // Malformed requests name what is wrong.
    let unknown = control::send_fault(&admin, "etcd", FaultAction::Kill, None).await;
    assert!(matches!(unknown, Err(ControlError::Http(HttpError::Status { status: 404, .. }))), "{unknown:?}");
    let no_hold = scaletest_core::http::post(&admin, "/faults/kine/stop").await;
    assert!(matches!(no_hold, Err(HttpError::Status { status: 400, .. })), "{no_hold:?}");

    // Scrapers on the pod network may read metrics, not kill processes.
    if let Some(ip) = non_loopback_ip() {
        let port = admin.rsplit_once(':').unwrap().1;
        let outside = format!("{ip}:{port}");
        assert!(scaletest_core::http::get(&outside, "/metrics").await.is_ok());
        let refused = control::send_fault(&outside, "kine", FaultAction::Kill, None).await;
        assert!(matches!(refused, Err(ControlError::Http(HttpError::Status { status: 403, .. }))), "{refused:?}");
    }

    // Five exits with a budget of one, and the cluster is still whole.
    let all: Vec<control::ChildStatus> =
        serde_json::from_str(&scaletest_core::http::get(&admin, "/children").await.unwrap()).unwrap();
    assert!(all.iter().all(|s| s.state == "running"), "{all:#?}");

    // After those restarts the supervisor is idle: it waits on its children's state,
    // it does not spin on it (it once did, from the first restart on).
    let supervisor = pid_of("scaletest-cluster", &c.endpoints.data_dir);
    let before = cpu_seconds(supervisor);
    tokio::time::sleep(Duration::from_secs(5)).await;
    let used = cpu_seconds(supervisor) - before;
    assert!(used < 1.0, "the supervisor used {used:.2} CPU s in 5 s with nothing to do");
    c.stop_and_assert_clean().await;
}

//! The reference SUT against one real simulated cluster (kube-apiserver,
//! kube-controller-manager for garbage collection, kube-scheduler, kwok,
//! node-creator; no Nodes at first), both started as the binaries a run
//! starts. Build the supervisor first: `cargo build -p scaletest-cluster --bins`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams, ObjectMeta, Patch, PatchParams, PostParams};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use scaletest_cluster::process::log_tail;
use scaletest_cluster::testkit::{
    LOG_TAIL_LINES, TestCluster, default_service_account, eventually, http_get, pod_requesting,
};
use scaletest_core::crd::{CapacityRequest, CapacityRequestPhase, CapacityRequestSpec, Need, UpcomingNode};
use scaletest_core::profile::{SUT_ACKNOWLEDGE_DURATION_METRIC, SUT_CYCLE_DURATION_METRIC, SUT_ROLLUP_DURATION_METRIC};
use tokio::process::{Child, Command};

const NAMESPACE: &str = "sut-it";
const PODS: usize = 250;
const OURS: &str = "scaletest.dev/provisioned-by=scaletest-sut";
const ASSIGNMENTS_ANNOTATION: &str = "scaletest.dev/capacity-requests";

/// The SUT process: its admin address and its log.
struct Sut {
    child: Child,
    admin: String,
    log: PathBuf,
}

impl Sut {
    fn start(kubeconfig: &Path, dir: &Path) -> Self {
        // A port nobody holds right now; the SUT binds it a moment later.
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let admin = format!("127.0.0.1:{port}");
        let log = dir.join("scaletest-sut.log");
        let out = std::fs::OpenOptions::new().create(true).append(true).open(&log).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_scaletest-sut"))
            .arg("--kubeconfig")
            .arg(kubeconfig)
            .args(["--metrics-addr", &admin, "--provisioning-delay", "1s", "--cycle-interval", "1s"])
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        Self { child, admin, log }
    }

    /// SIGKILL: no chance to finish anything.
    async fn crash(mut self) {
        self.child.start_kill().unwrap();
        self.child.wait().await.unwrap();
    }

    async fn stop(mut self) {
        let pid = self.child.id().expect("scaletest-sut still running");
        kill(Pid::from_raw(pid as i32), Signal::SIGTERM).unwrap();
        let status = tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .expect("scaletest-sut stops within 30 s of SIGTERM")
            .unwrap();
        assert!(status.success(), "scaletest-sut exited with {status}:\n{}", log_tail(&self.log, LOG_TAIL_LINES));
    }
}

/// Every line is in the SUT's metrics, and so are the histograms the default SLOs read.
async fn assert_metrics(admin: &str, lines: &[&str]) {
    let metrics = http_get(admin, "/metrics").await.expect("metrics");
    for histogram in [SUT_CYCLE_DURATION_METRIC, SUT_ROLLUP_DURATION_METRIC, SUT_ACKNOWLEDGE_DURATION_METRIC] {
        assert!(metrics.contains(&format!("{histogram}_count")), "{histogram} missing:\n{metrics}");
    }
    for line in lines {
        assert!(metrics.lines().any(|l| l == *line), "{line:?} missing:\n{metrics}");
    }
}

fn pod(i: usize) -> Pod {
    pod_requesting(&format!("pod-{i:03}"), "100m", "128Mi")
}

fn capacity_request(name: &str, count: u32, cpu: &str) -> CapacityRequest {
    CapacityRequest::new(
        name,
        CapacityRequestSpec { need: Need { count, cpu: Quantity(cpu.into()), memory: Quantity("128Mi".into()) } },
    )
}

fn phase(cr: &CapacityRequest) -> Option<CapacityRequestPhase> {
    cr.status.as_ref().and_then(|s| s.phase)
}

/// Pods in the record of an UpcomingNode this SUT created.
fn recorded_pods(un: &UpcomingNode) -> u64 {
    let record: serde_json::Value = serde_json::from_str(&un.annotations()[ASSIGNMENTS_ANNOTATION]).unwrap();
    record["capacityRequests"].as_array().unwrap().iter().map(|a| a["pods"].as_u64().unwrap()).sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn turns_unschedulable_pods_into_requests_nodes_and_fulfilment() {
    // node-creator leaves every UpcomingNode alone until its status.nodeName is
    // recorded: the test records it, standing in for node-creator's own step,
    // and node-creator then makes the Node.
    let cluster = TestCluster::start("sut", &["--node-creator-skip-every=1"]).await;
    let client = cluster.client.clone();

    let sut = Sut::start(&cluster.endpoints.kubeconfig, cluster.dir.path());
    let log_path = sut.log.clone();
    let log = Some(log_path.as_path());
    let admin = sut.admin.clone();
    eventually(Duration::from_secs(60), "the SUT ready", log, || http_get(&admin, "/readyz")).await;

    // Malformed requests first: they are failed, and everything after shows the SUT carried on.
    let default_crs: Api<CapacityRequest> = Api::namespaced(client.clone(), "default");
    for bad in [capacity_request("bad-cpu", 1, "lots"), capacity_request("zero-count", 0, "100m")] {
        default_crs.create(&PostParams::default(), &bad).await.unwrap();
    }
    for (name, reason) in [("bad-cpu", "spec.need.cpu"), ("zero-count", "spec.need.count is 0")] {
        let message = eventually(Duration::from_secs(30), &format!("{name} Failed"), log, || async {
            let cr = default_crs.get(name).await.ok()?;
            let status = cr.status?;
            (status.phase == Some(CapacityRequestPhase::Failed)).then_some(status.message.unwrap_or_default())
        })
        .await;
        assert!(message.contains(reason), "{name}: {message}");
    }

    // 250 Pods the scheduler cannot place: there is no Node at all.
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let ns =
        Namespace { metadata: ObjectMeta { name: Some(NAMESPACE.into()), ..Default::default() }, ..Default::default() };
    namespaces.create(&PostParams::default(), &ns).await.unwrap();
    default_service_account(&client, NAMESPACE, log).await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), NAMESPACE);
    let created: Vec<Pod> = futures::stream::iter(0..PODS)
        .map(|i| {
            let pods = pods.clone();
            async move { pods.create(&PostParams::default(), &pod(i)).await.unwrap() }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    let uids: BTreeMap<String, String> = created.iter().map(|p| (p.name_any(), p.uid().unwrap())).collect();

    // One request per Pod, owned by it, acknowledged.
    let crs: Api<CapacityRequest> = Api::namespaced(client.clone(), NAMESPACE);
    let lp = ListParams::default();
    let requests = eventually(Duration::from_secs(120), "250 acknowledged CapacityRequests", log, || async {
        let items = crs.list(&lp).await.ok()?.items;
        let acknowledged = items.iter().filter(|cr| phase(cr) == Some(CapacityRequestPhase::Acknowledged)).count();
        (items.len() == PODS && acknowledged == PODS).then_some(items)
    })
    .await;
    for cr in &requests {
        let owner = &cr.owner_references()[0];
        assert_eq!((owner.kind.as_str(), owner.name.as_str()), ("Pod", cr.name_any().as_str()));
        assert_eq!(Some(&owner.uid), uids.get(&cr.name_any()), "{} owned by another Pod", cr.name_any());
        assert_eq!(cr.spec.need, Need { count: 1, cpu: Quantity("100m".into()), memory: Quantity("128Mi".into()) });
        assert!(cr.status.as_ref().unwrap().acknowledged_at.is_some());
    }

    // ceil(250 / 100) = 3 UpcomingNodes, however the requests trickled in across cycles.
    let upcoming: Api<UpcomingNode> = Api::all(client.clone());
    let ours = ListParams::default().labels(OURS);
    let assigned = eventually(Duration::from_secs(60), "every request on an UpcomingNode", log, || async {
        let items = crs.list(&lp).await.ok()?.items;
        items.iter().all(|cr| cr.status.as_ref().is_some_and(|s| !s.upcoming_nodes.is_empty())).then_some(items)
    })
    .await;
    let nodes = upcoming.list(&ours).await.unwrap().items;
    assert_eq!(nodes.len(), 3, "{:?}", nodes.iter().map(|n| n.name_any()).collect::<Vec<_>>());
    for un in &nodes {
        let a = &un.spec.allocatable;
        assert_eq!((a.cpu.0.as_str(), a.memory.0.as_str(), a.pods.0.as_str()), ("10", "12800Mi", "100"));
        assert_eq!(un.spec.capacity_request_ref.as_ref().unwrap().namespace, NAMESPACE);
    }
    assert_eq!(nodes.iter().map(recorded_pods).sum::<u64>(), PODS as u64);
    let names: BTreeSet<String> = nodes.iter().map(|n| n.name_any()).collect();
    for cr in &assigned {
        assert!(cr.status.as_ref().unwrap().upcoming_nodes.iter().all(|n| names.contains(n)), "{cr:?}");
    }

    assert_metrics(
        &admin,
        &[
            "scaletest_sut_capacity_requests_created_total 250",
            "scaletest_sut_acknowledged_total 250",
            "scaletest_sut_upcoming_nodes_published_total 3",
            "scaletest_sut_failed_total 2",
            "scaletest_sut_shortfalls 0",
        ],
    )
    .await;

    // A crash and a fresh process: everything it needs is in the apiserver, so it
    // neither provisions again nor forgets to fulfil.
    sut.crash().await;
    let sut = Sut::start(&cluster.endpoints.kubeconfig, cluster.dir.path());
    let admin = sut.admin.clone();
    eventually(Duration::from_secs(60), "the restarted SUT ready", log, || http_get(&admin, "/readyz")).await;

    // The node-creator's part: each UpcomingNode gets its Node.
    for name in &names {
        let patch = serde_json::json!({"status": {"nodeName": name}});
        upcoming.patch_status(name, &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
    }
    eventually(Duration::from_secs(60), "250 Fulfilled CapacityRequests", log, || async {
        let items = crs.list(&lp).await.ok()?.items;
        let fulfilled = items.iter().filter(|cr| {
            phase(cr) == Some(CapacityRequestPhase::Fulfilled) && cr.status.as_ref().unwrap().fulfilled_at.is_some()
        });
        (fulfilled.count() == PODS).then_some(())
    })
    .await;
    assert_eq!(upcoming.list(&ours).await.unwrap().items.len(), 3, "no UpcomingNode beyond the three");

    // The rest of the chain: the Nodes appear and the scheduler packs them to Allocatable.
    let per_node = eventually(Duration::from_secs(120), "every Pod bound", log, || async {
        let items = pods.list(&lp).await.ok()?.items;
        let bound: Vec<String> = items.iter().filter_map(|p| p.spec.as_ref()?.node_name.clone()).collect();
        (bound.len() == PODS).then(|| {
            let mut per_node = BTreeMap::<String, usize>::new();
            bound.into_iter().for_each(|n| *per_node.entry(n).or_default() += 1);
            per_node
        })
    })
    .await;
    assert_eq!(per_node.keys().cloned().collect::<BTreeSet<_>>(), names);
    let mut counts: Vec<usize> = per_node.into_values().collect();
    counts.sort_unstable();
    assert_eq!(counts, [50, 100, 100]);

    // The restarted process only fulfilled.
    assert_metrics(
        &admin,
        &[
            "scaletest_sut_capacity_requests_created_total 0",
            "scaletest_sut_acknowledged_total 0",
            "scaletest_sut_upcoming_nodes_published_total 0",
            "scaletest_sut_fulfilled_total 250",
            "scaletest_sut_shortfalls 0",
        ],
    )
    .await;

    // Garbage collection removes each request with its Pod.
    pods.delete_collection(&DeleteParams::default(), &ListParams::default()).await.unwrap();
    eventually(Duration::from_secs(120), "every CapacityRequest garbage-collected", log, || async {
        crs.list(&lp).await.ok()?.items.is_empty().then_some(())
    })
    .await;

    sut.stop().await;
    cluster.stop().await;
}

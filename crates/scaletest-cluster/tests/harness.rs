//! The harness pieces under a real supervisor: node-creator (kube-scheduler
//! mode) and pod-shim (pod-shim mode) turning UpcomingNodes into kwok Nodes.

use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::ResourceExt;
use kube::api::{Api, ListParams, PostParams};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use scaletest_cluster::testkit::{
    TestCluster, default_service_account, eventually, is_unschedulable, pid_of, pod_requesting, scrape,
};
use scaletest_core::crd::{NodeAllocatable, UpcomingNode, UpcomingNodeSpec};
use scaletest_core::density::DensityModel;

fn upcoming(name: &str) -> UpcomingNode {
    UpcomingNode::new(
        name,
        UpcomingNodeSpec {
            capacity_request_ref: None,
            allocatable: DensityModel::default().allocatable().into(),
            labels: [("pool".to_string(), "test".to_string())].into(),
            taints: vec![],
        },
    )
}

async fn create_upcoming(api: &Api<UpcomingNode>, names: impl IntoIterator<Item = String>) {
    for n in names {
        api.create(&PostParams::default(), &upcoming(&n)).await.unwrap();
    }
}

async fn all_materialized(client: &kube::Client, expected: usize) -> Option<Vec<Node>> {
    let un: Api<UpcomingNode> = Api::all(client.clone());
    let nodes: Api<Node> = Api::all(client.clone());
    let list = un.list(&ListParams::default()).await.ok()?;
    let done = list.items.iter().filter(|u| u.status.as_ref().and_then(|s| s.node_name.as_ref()).is_some()).count();
    let nodes = nodes.list(&ListParams::default()).await.ok()?.items;
    (done == expected && nodes.len() >= expected).then_some(nodes)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_creator_makes_one_node_per_upcoming_node_across_restarts() {
    let c = TestCluster::start("nodes", &[]).await;
    let api: Api<UpcomingNode> = Api::all(c.client.clone());
    create_upcoming(&api, (0..10).map(|i| format!("un-{i:02}"))).await;
    // A malformed one is skipped, never crashes the loop.
    let mut bad = upcoming("un-bad");
    bad.spec.allocatable = NodeAllocatable { pods: Quantity("many".into()), ..bad.spec.allocatable };
    api.create(&PostParams::default(), &bad).await.unwrap();

    eventually(Duration::from_secs(60), "10 Nodes", None, || all_materialized(&c.client, 10)).await;
    // Kill node-creator mid-run: the supervisor restarts it, and the next
    // UpcomingNodes still get exactly one Node each.
    let pid = pid_of("scaletest-node-creator", &c.endpoints.data_dir);
    kill(Pid::from_raw(pid as i32), Signal::SIGKILL).unwrap();
    create_upcoming(&api, (10..20).map(|i| format!("un-{i:02}"))).await;
    let nodes = eventually(Duration::from_secs(90), "20 Nodes", None, || all_materialized(&c.client, 20)).await;
    assert_eq!(
        nodes.len(),
        20,
        "exactly one Node per UpcomingNode: {:?}",
        nodes.iter().map(|n| n.name_any()).collect::<Vec<_>>()
    );
    for n in &nodes {
        let alloc = n.status.as_ref().unwrap().allocatable.as_ref().unwrap();
        assert_eq!(alloc["pods"].0, "100");
        assert_eq!(n.annotations()["kwok.x-k8s.io/node"], "fake");
        assert_eq!(n.labels()["pool"], "test");
    }
    assert!(nodes.iter().all(|n| n.name_any() != "un-bad"));
    let metrics = scrape(c.endpoints.metrics_address("node-creator").unwrap()).await;
    assert!(metrics.contains("scaletest_node_creator_node_errors_total{reason=\"malformed\"}"), "{metrics}");
    c.stop_and_assert_clean().await;
}

fn pod(i: usize) -> Pod {
    pod_requesting(&format!("p-{i:03}"), "100m", "128Mi")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pod_shim_binds_first_fit_and_marks_the_rest_unschedulable() {
    let c = TestCluster::start("shim", &["--scheduler", "pod-shim"]).await;
    assert!(c.endpoints.component("kube-scheduler").is_none(), "no kube-scheduler in pod-shim mode");
    let pods: Api<Pod> = Api::default_namespaced(c.client.clone());
    default_service_account(&c.client, c.client.default_namespace(), None).await;
    for i in 0..150 {
        pods.create(&PostParams::default(), &pod(i)).await.unwrap();
    }
    // No Node yet: every Pod is marked Unschedulable.
    eventually(Duration::from_secs(60), "150 Unschedulable Pods", None, || async {
        let list = pods.list(&ListParams::default()).await.ok()?;
        let n = list.items.iter().filter(|p| is_unschedulable(p)).count();
        (n == 150).then_some(())
    })
    .await;
    // One UpcomingNode: pod-shim makes the Node and packs it to 100.
    let api: Api<UpcomingNode> = Api::all(c.client.clone());
    create_upcoming(&api, ["shim-node-0".to_string()]).await;
    let bound = eventually(Duration::from_secs(90), "100 bound Pods", None, || async {
        let list = pods.list(&ListParams::default()).await.ok()?;
        let bound: Vec<_> = list.items.iter().filter_map(|p| p.spec.as_ref()?.node_name.clone()).collect();
        (bound.len() >= 100).then_some(bound)
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await; // would reveal over-binding
    let list = pods.list(&ListParams::default()).await.unwrap();
    let bound_now = list.items.iter().filter(|p| p.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_some()).count();
    assert_eq!(bound_now, 100, "first-fit must stop at Allocatable pods=100");
    assert!(bound.iter().all(|n| n == "shim-node-0"));
    let m = scrape(c.endpoints.metrics_address("pod-shim").unwrap()).await;
    assert!(m.contains("scaletest_pod_shim_binds_total 100"), "{m}");
    assert!(m.contains("scaletest_pod_shim_unschedulable_marks_total 150"), "{m}");
    assert!(m.contains("scaletest_pod_shim_nodes_created_total 1"), "{m}");
    c.stop_and_assert_clean().await;
}

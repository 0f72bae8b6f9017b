//! One real simulated cluster (kine, kube-apiserver, kube-controller-manager,
//! kube-scheduler, kwok) started through `scaletest-cluster`.

use std::time::Duration;

use k8s_openapi::api::core::v1::{Namespace, Node, Pod};
use kube::api::{Api, ListParams, ObjectMeta, PostParams};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use scaletest_cluster::testkit::{
    TestCluster, default_service_account, eventually, fake_node, is_unschedulable, pid_of, pod_requesting, scrape,
};
use scaletest_core::density::DensityModel;

fn pod(i: usize) -> Pod {
    let need = DensityModel::default().pod;
    pod_requesting(&format!("pod-{i:03}"), &format!("{}m", need.cpu_millis), &need.memory_bytes.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kube_scheduler_packs_a_density_node_and_leaves_the_rest_unschedulable() {
    let c = TestCluster::start("pack", &[]).await;
    let nodes: Api<Node> = Api::all(c.client.clone());
    let pods: Api<Pod> = Api::default_namespaced(c.client.clone());
    let density = DensityModel::default();
    assert_eq!(density.allocatable().pods, "100");

    nodes.create(&PostParams::default(), &fake_node("kwok-node-0", &density)).await.unwrap();
    // The default ServiceAccount (made by kube-controller-manager) must exist before Pods are admitted.
    default_service_account(&c.client, c.client.default_namespace(), None).await;
    for i in 0..150 {
        pods.create(&PostParams::default(), &pod(i)).await.unwrap();
    }

    let (bound, pending) =
        eventually(Duration::from_secs(120), "100 bound and 50 unschedulable Pods", None, || async {
            let list = pods.list(&ListParams::default()).await.ok()?;
            let bound: Vec<_> = list.items.iter().filter_map(|p| p.spec.as_ref()?.node_name.clone()).collect();
            let pending = list.items.iter().filter(|p| is_unschedulable(p)).count();
            (bound.len() + pending == 150).then_some((bound, pending))
        })
        .await;
    assert_eq!(bound.len(), 100, "MostAllocated must fill the Node to its pods=100 Allocatable");
    assert!(bound.iter().all(|n| n == "kwok-node-0"));
    assert_eq!(pending, 50);

    // kwok fakes the kubelet: the Node goes Ready and bound Pods Running.
    eventually(Duration::from_secs(60), "bound Pods Running", None, || async {
        let list = pods.list(&ListParams::default()).await.ok()?;
        let running =
            list.items.iter().filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")).count();
        (running == 100).then_some(())
    })
    .await;

    // kube-apiserver's request metrics through the supervisor's plain-HTTP port (what the
    // chart's Prometheus scrapes): only those families, the Pods' creates among them.
    let admin = c.endpoints.metrics_address("scaletest-cluster").unwrap().to_string();
    let path = scaletest_cluster::apiserver_metrics::PATH;
    let text = scaletest_core::http::get(&admin, path).await.unwrap();
    let post_pods = text
        .lines()
        .find(|l| {
            l.starts_with("apiserver_request_duration_seconds_count{")
                && l.contains(r#"resource="pods""#)
                && l.contains(r#"verb="POST""#)
        })
        .unwrap_or_else(|| panic!("no Pod creates in:\n{text}"));
    assert!(post_pods.ends_with(" 150"), "{post_pods}");
    assert!(text.contains("\napiserver_request_total{"), "{text}");
    assert!(!text.contains("process_cpu_seconds_total") && !text.contains("etcd_"), "{text}");
    // Summed by (verb, scope): the 150 creates in one series, le kept on the buckets.
    let summed = scaletest_core::http::get(&admin, &format!("{path}?by=verb,scope")).await.unwrap();
    let creates = summed
        .lines()
        .find(|l| l.starts_with(r#"apiserver_request_duration_seconds_count{scope="resource",verb="POST"}"#))
        .unwrap_or_else(|| panic!("{summed}"));
    let n: f64 = creates.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(n >= 150.0 && !summed.contains("resource=\""), "{creates}");
    assert!(summed.contains(r#"verb="POST",le="+Inf"}"#), "{summed}");
    c.stop_and_assert_clean().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_apiserver_or_kine_comes_back_and_serves_again() {
    let c = TestCluster::start("restart", &[]).await;
    let supervisor = c.endpoints.component("scaletest-cluster").unwrap().metrics.clone().unwrap();
    for (i, component) in ["kube-apiserver", "kine"].into_iter().enumerate() {
        let pid = pid_of(component, &c.endpoints.data_dir);
        kill(Pid::from_raw(pid as i32), Signal::SIGKILL).unwrap();
        let restarted = format!("scaletest_cluster_child_restarts_total{{component=\"{component}\"}} 1");
        eventually(Duration::from_secs(60), &format!("{component} restarted"), None, || async {
            scrape(&supervisor.address).await.contains(&restarted).then_some(())
        })
        .await;
        assert_ne!(pid_of(component, &c.endpoints.data_dir), pid);
        // Serving again: a write goes through to storage and reads back.
        let ns: Api<Namespace> = Api::all(c.client.clone());
        let name = format!("after-kill-{i}");
        eventually(Duration::from_secs(90), &format!("a write after killing {component}"), None, || async {
            let obj = Namespace {
                metadata: ObjectMeta { name: Some(name.clone()), ..Default::default() },
                ..Default::default()
            };
            match ns.create(&PostParams::default(), &obj).await {
                Ok(_) => Some(()),
                Err(kube::Error::Api(e)) if e.code == 409 => Some(()),
                Err(_) => None,
            }
        })
        .await;
        assert!(ns.get(&name).await.is_ok());
    }
    c.stop_and_assert_clean().await;
}

//! One real simulated cluster (kine, kube-apiserver, kube-controller-manager,
//! kube-scheduler, kwok) started through `scaletest-cluster`.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, Namespace, Node, NodeStatus, Pod, PodSpec, ResourceRequirements};
use kube::api::{Api, ListParams, ObjectMeta, PostParams};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use scaletest_core::constants::{KWOK_NODE_ANNOTATION, KWOK_NODE_ANNOTATION_VALUE};
use scaletest_core::density::DensityModel;
use support::*;

fn fake_node(name: &str, density: &DensityModel) -> Node {
    let resources = density.allocatable().to_resource_map();
    Node {
        metadata: ObjectMeta {
            name: Some(name.into()),
            annotations: Some(BTreeMap::from([(KWOK_NODE_ANNOTATION.into(), KWOK_NODE_ANNOTATION_VALUE.into())])),
            labels: Some(BTreeMap::from([("type".into(), "kwok".into())])),
            ..Default::default()
        },
        status: Some(NodeStatus {
            allocatable: Some(resources.clone()),
            capacity: Some(resources),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn pod(i: usize) -> Pod {
    let need = DensityModel::default().pod;
    let requests = BTreeMap::from([
        ("cpu".into(), k8s_openapi::apimachinery::pkg::api::resource::Quantity(format!("{}m", need.cpu_millis))),
        ("memory".into(), k8s_openapi::apimachinery::pkg::api::resource::Quantity(need.memory_bytes.to_string())),
    ]);
    Pod {
        metadata: ObjectMeta { name: Some(format!("pod-{i:03}")), ..Default::default() },
        spec: Some(PodSpec {
            containers: vec![Container {
                name: "app".into(),
                image: Some("registry.invalid/fake:1".into()),
                resources: Some(ResourceRequirements { requests: Some(requests), ..Default::default() }),
                ..Default::default()
            }],
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn unschedulable(p: &Pod) -> bool {
    p.status.as_ref().and_then(|s| s.conditions.as_ref()).is_some_and(|cs| {
        cs.iter()
            .any(|c| c.type_ == "PodScheduled" && c.status == "False" && c.reason.as_deref() == Some("Unschedulable"))
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kube_scheduler_packs_a_density_node_and_leaves_the_rest_unschedulable() {
    let c = start("pack", &[]).await;
    let nodes: Api<Node> = Api::all(c.client.clone());
    let pods: Api<Pod> = Api::default_namespaced(c.client.clone());
    let density = DensityModel::default();
    assert_eq!(density.allocatable().pods, "100");

    nodes.create(&PostParams::default(), &fake_node("kwok-node-0", &density)).await.unwrap();
    // The default ServiceAccount (made by kube-controller-manager) must exist before Pods are admitted.
    eventually(Duration::from_secs(60), "the default ServiceAccount", || async {
        let sa: Api<k8s_openapi::api::core::v1::ServiceAccount> = Api::default_namespaced(c.client.clone());
        sa.get_opt("default").await.ok().flatten()
    })
    .await;
    for i in 0..150 {
        pods.create(&PostParams::default(), &pod(i)).await.unwrap();
    }

    let (bound, pending) = eventually(Duration::from_secs(120), "100 bound and 50 unschedulable Pods", || async {
        let list = pods.list(&ListParams::default()).await.ok()?;
        let bound: Vec<_> = list.items.iter().filter_map(|p| p.spec.as_ref()?.node_name.clone()).collect();
        let pending = list.items.iter().filter(|p| unschedulable(p)).count();
        (bound.len() + pending == 150).then_some((bound, pending))
    })
    .await;
    assert_eq!(bound.len(), 100, "MostAllocated must fill the Node to its pods=100 Allocatable");
    assert!(bound.iter().all(|n| n == "kwok-node-0"));
    assert_eq!(pending, 50);

    // kwok fakes the kubelet: the Node goes Ready and bound Pods Running.
    eventually(Duration::from_secs(60), "bound Pods Running", || async {
        let list = pods.list(&ListParams::default()).await.ok()?;
        let running =
            list.items.iter().filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")).count();
        (running == 100).then_some(())
    })
    .await;
    stop_and_assert_clean(c).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_apiserver_or_kine_comes_back_and_serves_again() {
    let c = start("restart", &[]).await;
    let supervisor = c.endpoints.component("scaletest-cluster").unwrap().metrics.clone().unwrap();
    for (i, component) in ["kube-apiserver", "kine"].into_iter().enumerate() {
        let pid = pid_of(component, &c.endpoints.data_dir);
        kill(Pid::from_raw(pid as i32), Signal::SIGKILL).unwrap();
        let restarted = format!("scaletest_cluster_child_restarts_total{{component=\"{component}\"}} 1");
        eventually(Duration::from_secs(60), &format!("{component} restarted"), || async {
            scrape(&supervisor.address).await.contains(&restarted).then_some(())
        })
        .await;
        assert_ne!(pid_of(component, &c.endpoints.data_dir), pid);
        // Serving again: a write goes through to storage and reads back.
        let ns: Api<Namespace> = Api::all(c.client.clone());
        let name = format!("after-kill-{i}");
        eventually(Duration::from_secs(90), &format!("a write after killing {component}"), || async {
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
    stop_and_assert_clean(c).await;
}

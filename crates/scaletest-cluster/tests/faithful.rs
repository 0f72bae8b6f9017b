//! `kwok.mode: faithful` against a real simulated cluster: the node agents' per-Node watches
//! and kwok's kubelet-like writes reach the apiserver, counted on its own /metrics.

use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::Client;
use kube::api::{Api, DeleteParams, PostParams};
use scaletest_cluster::testkit::{TestCluster, default_service_account, eventually, fake_node, pod_requesting};
use scaletest_core::density::DensityModel;

/// Sum of `metric`'s samples whose labels include every one of `labels`.
fn sum(text: &str, metric: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(&format!("{metric}{{")))
        .filter(|l| labels.iter().all(|(k, v)| l.contains(&format!("{k}=\"{v}\""))))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

async fn apiserver_metrics(client: &Client) -> String {
    client.request_text(http::Request::get("/metrics").body(vec![]).unwrap()).await.unwrap()
}

/// What the faithful mode adds, read off the apiserver: open watches of Nodes, Pod status
/// writes, Events, token requests.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Counts {
    node_watches: f64,
    status_patches: f64,
    events: f64,
    tokens: f64,
}

async fn counts(client: &Client) -> Counts {
    let m = apiserver_metrics(client).await;
    Counts {
        node_watches: sum(&m, "apiserver_longrunning_requests", &[("verb", "WATCH"), ("resource", "nodes")]),
        status_patches: sum(
            &m,
            "apiserver_request_total",
            &[("verb", "PATCH"), ("resource", "pods"), ("subresource", "status")],
        ),
        events: sum(&m, "apiserver_request_total", &[("verb", "POST"), ("resource", "events")]),
        tokens: sum(
            &m,
            "apiserver_request_total",
            &[("verb", "POST"), ("resource", "serviceaccounts"), ("subresource", "token")],
        ),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faithful_mode_opens_a_kubelets_watches_and_writes_its_pod_steps() {
    let c = TestCluster::start("faithful", &["--kwok-mode=faithful"]).await;
    let nodes: Api<Node> = Api::all(c.client.clone());
    let pods: Api<Pod> = Api::default_namespaced(c.client.clone());
    default_service_account(&c.client, c.client.default_namespace(), None).await;
    let before = counts(&c.client).await;

    // Two Nodes: each gets a kubelet's and a kube-proxy's watch of it (2 per Node).
    let density = DensityModel::default();
    for n in ["kwok-node-0", "kwok-node-1"] {
        nodes.create(&PostParams::default(), &fake_node(n, &density)).await.unwrap();
    }
    eventually(Duration::from_secs(120), "4 more Node watches", None, || async {
        let now = counts(&c.client).await;
        (now.node_watches >= before.node_watches + 4.0).then_some(())
    })
    .await;

    // One Pod: three status writes and three events from kwok's stages (Pulled, Created,
    // Started), one token request from the agents; fast mode makes one write and no event.
    let need = density.pod;
    let pod = pod_requesting("p0", &format!("{}m", need.cpu_millis), &need.memory_bytes.to_string());
    pods.create(&PostParams::default(), &pod).await.unwrap();
    let after = eventually(Duration::from_secs(120), "the Pod's writes", None, || async {
        let now = counts(&c.client).await;
        (now.status_patches >= before.status_patches + 3.0
            && now.events >= before.events + 3.0
            && now.tokens >= before.tokens + 1.0)
            .then_some(now)
    })
    .await;
    let running = pods.get("p0").await.unwrap().status.and_then(|s| s.phase);
    assert_eq!(running.as_deref(), Some("Running"), "{after:?}");

    // Deleted: stopped in three writes (no longer Ready, containers terminated, the terminal
    // phase) with the Killing event before kwok deletes it.
    pods.delete("p0", &DeleteParams::default()).await.unwrap();
    eventually(Duration::from_secs(120), "the Pod stopped and gone", None, || async {
        let now = counts(&c.client).await;
        let gone = pods.get_opt("p0").await.ok()?.is_none();
        (gone && now.status_patches >= after.status_patches + 3.0 && now.events >= after.events + 1.0).then_some(())
    })
    .await;

    // A Node gone: its agents close its watches (the cluster-wide one stays).
    let open = counts(&c.client).await.node_watches;
    nodes.delete("kwok-node-1", &DeleteParams::default()).await.unwrap();
    eventually(Duration::from_secs(120), "the deleted Node's 2 watches closed", None, || async {
        (counts(&c.client).await.node_watches <= open - 2.0).then_some(())
    })
    .await;
    c.stop_and_assert_clean().await;
}

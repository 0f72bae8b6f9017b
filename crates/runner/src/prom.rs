//! The run's Prometheus: its config (file-based service discovery from the
//! clusters' endpoint files), its process, and the queries the runner asks.

use std::path::{Path, PathBuf};

use scaletest_cluster::components::{Component, Probe};
use scaletest_core::endpoints::Endpoints;
use serde_json::{Value, json};

use scaletest_core::http::{self, HttpError};

pub const SCRAPE_INTERVAL: &str = "5s";

/// One scrape job: a TLS setting shared by its targets.
fn job(name: &str, scheme: &str, tls: Option<Value>, sd_file: &Path) -> Value {
    let mut j = json!({
        "job_name": name,
        "scheme": scheme,
        "file_sd_configs": [{"files": [sd_file.display().to_string()], "refresh_interval": "5s"}],
    });
    if let Some(tls) = tls {
        j["tls_config"] = tls;
    }
    j
}

/// `prometheus.yml` (as JSON, which is YAML) plus its service-discovery files.
/// Targets differ in TLS: plain HTTP, self-signed HTTPS (controller-manager,
/// scheduler), and each apiserver with its own client certificate.
pub fn render(clusters: &[Endpoints], dir: &Path) -> (Value, Vec<(PathBuf, Value)>) {
    let mut http_targets = Vec::new();
    let mut insecure_targets = Vec::new();
    let mut jobs = Vec::new();
    let mut files = Vec::new();
    for e in clusters {
        for c in &e.components {
            let Some(m) = &c.metrics else { continue };
            // `__metrics_path__` per target: a user's controller may serve elsewhere than /metrics.
            let group = json!({"targets": [m.address], "labels": {
                "cluster": e.cluster, "component": c.name, "__metrics_path__": m.path,
            }});
            match (&*m.scheme, &m.tls) {
                ("http", _) => http_targets.push(group),
                (_, Some(t)) if t.cert_file.is_some() => {
                    let sd = dir.join(format!("sd-{}-{}.json", e.cluster, c.name));
                    let tls = json!({
                        "ca_file": t.ca_file.as_ref().map(|p| p.display().to_string()),
                        "cert_file": t.cert_file.as_ref().map(|p| p.display().to_string()),
                        "key_file": t.key_file.as_ref().map(|p| p.display().to_string()),
                        "insecure_skip_verify": t.insecure_skip_verify,
                    });
                    jobs.push(job(&format!("{}-{}", e.cluster, c.name), "https", Some(tls), &sd));
                    files.push((sd, json!([group])));
                }
                _ => insecure_targets.push(group),
            }
        }
    }
    let http_sd = dir.join("sd-http.json");
    let insecure_sd = dir.join("sd-https-insecure.json");
    jobs.insert(0, job("scaletest-http", "http", None, &http_sd));
    jobs.insert(1, job("scaletest-https", "https", Some(json!({"insecure_skip_verify": true})), &insecure_sd));
    files.push((http_sd, Value::Array(http_targets)));
    files.push((insecure_sd, Value::Array(insecure_targets)));
    let config = json!({
        "global": {"scrape_interval": SCRAPE_INTERVAL, "evaluation_interval": SCRAPE_INTERVAL},
        "scrape_configs": jobs,
    });
    (config, files)
}

/// Prometheus itself, run under the same process supervision as the clusters.
pub fn component(program: &Path, config: &Path, tsdb: &Path, port: u16) -> Component {
    Component {
        name: "prometheus",
        program: program.into(),
        args: vec![
            format!("--config.file={}", config.display()),
            format!("--storage.tsdb.path={}", tsdb.display()),
            format!("--web.listen-address=127.0.0.1:{port}"),
            "--web.enable-admin-api".into(),
            "--storage.tsdb.retention.time=30d".into(),
        ],
        env: vec![],
        files: vec![],
        dirs: vec![],
        probe: Probe::Http(format!("http://127.0.0.1:{port}/-/ready")),
        metrics: None,
    }
}

#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// HTTP 400: Prometheus will not evaluate the query whatever the data (it does not
    /// parse, or names a function this Prometheus does not know); `message` is its own
    /// `error` field, decoded.
    #[error("Prometheus refused {query:?}: {message}")]
    Refused { query: String, message: String },
    #[error(transparent)]
    Http(#[from] HttpError),
    #[error("Prometheus answered something unexpected for {query}: {detail}")]
    Shape { query: String, detail: String },
}

impl QueryError {
    /// A 400 carries Prometheus's reason as JSON (`{"status":"error","errorType":"bad_data",
    /// "error":"..."}`): keep that readable instead of the URL-encoded request.
    fn from_http(query: &str, e: HttpError) -> Self {
        match e {
            HttpError::Status { status: 400, body, .. } => {
                let error =
                    serde_json::from_str::<Value>(&body).ok().and_then(|v| v["error"].as_str().map(str::to_string));
                // The body is cut at 300 characters; a cut one is still better shown than dropped.
                Self::Refused { query: query.into(), message: error.unwrap_or(body) }
            }
            e => Self::Http(e),
        }
    }
}

fn parse_value(v: &Value) -> Option<f64> {
    v.get(1)?.as_str()?.parse().ok()
}

/// An instant query's value: the single sample, the sum of a vector's samples
/// (callers aggregate in PromQL), or None when there is no data yet.
pub async fn query(addr: &str, promql: &str) -> Result<Option<f64>, QueryError> {
    instant_query(addr, &format!("/api/v1/query?query={}", http::encode(promql)), promql).await
}

/// [`query`] evaluated at `at` (unix seconds) rather than when Prometheus answers: a
/// run's verdict reads every query at one instant, its window ending there, however long
/// the queries take (through a kube port-forward, tens of seconds for them all).
pub async fn query_at(addr: &str, promql: &str, at: f64) -> Result<Option<f64>, QueryError> {
    instant_query(addr, &format!("/api/v1/query?query={}&time={at:.3}", http::encode(promql)), promql).await
}

async fn instant_query(addr: &str, path: &str, promql: &str) -> Result<Option<f64>, QueryError> {
    let body = http::get(addr, path).await.map_err(|e| QueryError::from_http(promql, e))?;
    let shape = |detail: &str| QueryError::Shape { query: promql.into(), detail: detail.into() };
    let v: Value = serde_json::from_str(&body).map_err(|e| shape(&e.to_string()))?;
    let data = &v["data"];
    match data["resultType"].as_str() {
        Some("scalar") => Ok(parse_value(&data["result"]).filter(|x| x.is_finite())),
        Some("vector") => {
            let values: Vec<f64> = data["result"]
                .as_array()
                .ok_or_else(|| shape("vector without result"))?
                .iter()
                .filter_map(|s| parse_value(&s["value"]))
                .filter(|x| x.is_finite())
                .collect();
            Ok((!values.is_empty()).then(|| values.iter().sum()))
        }
        _ => Err(shape(&body.chars().take(200).collect::<String>())),
    }
}

/// A range query summed over series: (unix seconds, value) points.
pub async fn query_range(
    addr: &str,
    promql: &str,
    start: f64,
    end: f64,
    step: f64,
) -> Result<Vec<(f64, f64)>, QueryError> {
    let path =
        format!("/api/v1/query_range?query={}&start={start:.3}&end={end:.3}&step={step:.3}", http::encode(promql));
    let body = http::get(addr, &path).await.map_err(|e| QueryError::from_http(promql, e))?;
    let v: Value =
        serde_json::from_str(&body).map_err(|e| QueryError::Shape { query: promql.into(), detail: e.to_string() })?;
    let mut points: std::collections::BTreeMap<i64, f64> = Default::default();
    for series in v["data"]["result"].as_array().into_iter().flatten() {
        for p in series["values"].as_array().into_iter().flatten() {
            let (Some(t), Some(x)) = (p.get(0).and_then(Value::as_f64), parse_value(p)) else { continue };
            if x.is_finite() {
                *points.entry((t * 1000.0) as i64).or_default() += x;
            }
        }
    }
    Ok(points.into_iter().map(|(t, x)| (t as f64 / 1000.0, x)).collect())
}

/// Takes a TSDB snapshot through the admin API; returns its directory.
pub async fn snapshot(addr: &str, tsdb: &Path) -> Result<PathBuf, QueryError> {
    let body = http::post(addr, "/api/v1/admin/tsdb/snapshot").await?;
    let v: Value = serde_json::from_str(&body)
        .map_err(|e| QueryError::Shape { query: "snapshot".into(), detail: e.to_string() })?;
    let name = v["data"]["name"]
        .as_str()
        .ok_or_else(|| QueryError::Shape { query: "snapshot".into(), detail: body.clone() })?;
    Ok(tsdb.join("snapshots").join(name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use scaletest_core::endpoints::{ComponentEndpoint, MetricsTarget, TlsTarget};

    fn endpoints(cluster: &str) -> Endpoints {
        let target = |scheme: &str, port: u16, tls: Option<TlsTarget>| {
            Some(MetricsTarget {
                scheme: scheme.into(),
                address: format!("127.0.0.1:{port}"),
                path: "/metrics".into(),
                tls,
            })
        };
        Endpoints {
            cluster: cluster.into(),
            data_dir: "/d".into(),
            kubeconfig: "/d/k".into(),
            apiserver_url: "https://127.0.0.1:1".into(),
            supervisor_pid: 1,
            startup_seconds: 1.0,
            ports: Default::default(),
            components: vec![
                ComponentEndpoint { name: "kwok".into(), log_file: "/l".into(), metrics: target("http", 2, None) },
                ComponentEndpoint {
                    name: "kube-apiserver".into(),
                    log_file: "/l".into(),
                    metrics: target(
                        "https",
                        1,
                        Some(TlsTarget {
                            ca_file: Some("/ca".into()),
                            cert_file: Some("/c".into()),
                            key_file: Some("/k".into()),
                            insecure_skip_verify: false,
                        }),
                    ),
                },
                ComponentEndpoint {
                    name: "kube-scheduler".into(),
                    log_file: "/l".into(),
                    metrics: target(
                        "https",
                        3,
                        Some(TlsTarget { ca_file: None, cert_file: None, key_file: None, insecure_skip_verify: true }),
                    ),
                },
            ],
        }
    }

    #[test]
    fn every_target_lands_in_the_job_matching_its_tls() {
        let (config, files) = render(&[endpoints("c0"), endpoints("c1")], Path::new("/p"));
        let jobs: Vec<&str> =
            config["scrape_configs"].as_array().unwrap().iter().map(|j| j["job_name"].as_str().unwrap()).collect();
        assert_eq!(jobs, ["scaletest-http", "scaletest-https", "c0-kube-apiserver", "c1-kube-apiserver"]);
        let file = |name: &str| files.iter().find(|(p, _)| p.ends_with(name)).unwrap().1.clone();
        assert_eq!(file("sd-http.json").as_array().unwrap().len(), 2);
        assert_eq!(file("sd-https-insecure.json")[1]["labels"]["component"], "kube-scheduler");
        assert_eq!(file("sd-c1-kube-apiserver.json")[0]["labels"]["cluster"], "c1");
        assert_eq!(config["scrape_configs"][2]["tls_config"]["cert_file"], "/c");
    }

    #[test]
    fn a_400_carries_prometheus_own_error() {
        let status = |body: &str| HttpError::Status {
            addr: "127.0.0.1:9090".into(),
            path: "/api/v1/query?query=mad_over_time%28x%5B60s%5D%29".into(),
            status: 400,
            body: body.into(),
        };
        let body = r#"{"status":"error","errorType":"bad_data","error":"invalid parameter \"query\": 1:1: parse error: unknown function with name \"mad_over_time\""}"#;
        let e = QueryError::from_http("mad_over_time(x[60s])", status(body));
        assert!(
            matches!(&e, QueryError::Refused { message, .. }
            if message == r#"invalid parameter "query": 1:1: parse error: unknown function with name "mad_over_time""#),
            "{e:?}"
        );
        assert_eq!(
            e.to_string(),
            r#"Prometheus refused "mad_over_time(x[60s])": invalid parameter "query": 1:1: parse error: unknown function with name "mad_over_time""#
        );
        // Cut short by the HTTP client: shown as it came.
        let e = QueryError::from_http("q", status(&body[..40]));
        assert!(matches!(&e, QueryError::Refused { message, .. } if message == &body[..40]), "{e:?}");
        // Anything but a 400 stays an HTTP error.
        let e = QueryError::from_http("q", HttpError::Malformed { addr: "a".into() });
        assert!(matches!(e, QueryError::Http(_)), "{e:?}");
    }
}

//! kube-apiserver's request metrics on the supervisor's plain-HTTP admin port, at
//! [`PATH`], for a Prometheus that cannot present the cluster's client certificate
//! (the kube target's: the certificate stays in the Pod).
//!
//! The supervisor fetches the apiserver's `/metrics` with the cluster's admin
//! kubeconfig and returns only [`FAMILIES`]: what the run judges the simulated control
//! plane by (crates/runner/src/saturation.rs) and its request counts by code (429s),
//! not the ~27K series of the whole endpoint (footprint.rs). A failure is a 502 with
//! the reason, within [`TIMEOUT`].
//!
//! `?by=verb,scope` sums each series over every other label (a histogram's `le` kept):
//! what a Prometheus keeping only what the run reads asks for at thousands of clusters,
//! 264 series of the histogram's buckets instead of 4,248 (footprint.rs).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use kube::Client;
use tokio::sync::OnceCell;

use crate::probe::error_chain;

/// Where the supervisor serves them.
pub const PATH: &str = "/metrics/kube-apiserver";
/// The metric families passed on (each with its `_bucket`, `_sum` and `_count`).
pub const FAMILIES: &[&str] = &["apiserver_request_duration_seconds", "apiserver_request_total"];
/// How long one fetch may take: inside the scrape's own timeout (Prometheus's default
/// 10 s, capped at the chart's 5 s interval), so the target says why, not just "timeout".
pub const TIMEOUT: Duration = Duration::from_secs(4);

/// The Prometheus text format the apiserver answers in (no `Accept` asked otherwise).
const TEXT_FORMAT: &str = "text/plain; version=0.0.4; charset=utf-8";

struct Source {
    kubeconfig: PathBuf,
    /// Built on first use: the kubeconfig is there before the admin server starts, the
    /// apiserver answering only later.
    client: OnceCell<Client>,
}

/// The route, to merge into the supervisor's admin server.
pub fn router(kubeconfig: PathBuf) -> Router {
    Router::new().route(PATH, get(serve)).with_state(Arc::new(Source { kubeconfig, client: OnceCell::new() }))
}

async fn serve(State(source): State<Arc<Source>>, RawQuery(query): RawQuery) -> Response {
    let by = sum_by(query.as_deref().unwrap_or(""));
    match tokio::time::timeout(TIMEOUT, fetch(&source)).await {
        Ok(Ok(text)) => {
            let kept = filter(&text, FAMILIES);
            let body = match &by {
                Some(by) => sum(&kept, by),
                None => kept,
            };
            ([(header::CONTENT_TYPE, TEXT_FORMAT)], body).into_response()
        }
        Ok(Err(e)) => bad_gateway(format!("cannot read kube-apiserver's /metrics: {e}")),
        Err(_) => bad_gateway(format!("cannot read kube-apiserver's /metrics: no answer within {TIMEOUT:?}")),
    }
}

fn bad_gateway(reason: String) -> Response {
    (StatusCode::BAD_GATEWAY, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], reason + "\n").into_response()
}

async fn fetch(source: &Source) -> Result<String, String> {
    let client = source
        .client
        .get_or_try_init(|| scaletest_core::client::from_kubeconfig(&source.kubeconfig))
        .await
        .map_err(|e| error_chain(&e))?;
    let req = http::Request::get("/metrics").body(Vec::new()).expect("static request");
    client.request_text(req).await.map_err(|e| error_chain(&e))
}

/// The lines of Prometheus text `metrics` that belong to `families`: their samples
/// (`name`, `name_bucket`, `name_sum`, `name_count`) and their `# HELP` / `# TYPE`.
pub fn filter(metrics: &str, families: &[&str]) -> String {
    let wanted = |name: &str| {
        families
            .iter()
            .any(|f| name.strip_prefix(f).is_some_and(|suffix| matches!(suffix, "" | "_bucket" | "_sum" | "_count")))
    };
    let mut out = String::new();
    for line in metrics.lines() {
        let name = match line.strip_prefix('#') {
            // `# HELP name ...`, `# TYPE name ...`; other comments go.
            Some(comment) => {
                let mut words = comment.split_whitespace();
                words.next().filter(|w| matches!(*w, "HELP" | "TYPE")).and(words.next())
            }
            None => line.split(['{', ' ']).next(),
        };
        if name.is_some_and(|n| !n.is_empty() && wanted(n)) {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// The labels of `?by=a,b&by=c` (`None` without one: every series as it is).
fn sum_by(query: &str) -> Option<Vec<String>> {
    let mut by: Option<Vec<String>> = None;
    for (key, value) in query.split('&').filter_map(|kv| kv.split_once('=')) {
        if key == "by" {
            let labels = by.get_or_insert_with(Vec::new);
            labels.extend(value.split([',', ' ']).filter(|l| !l.is_empty()).map(str::to_string));
        }
    }
    by
}

/// A sample's labels, each value as written (escapes kept).
type Labels<'a> = Vec<(&'a str, &'a str)>;

/// One sample line: its name, its labels and its value.
fn parse_sample(line: &str) -> Option<(&str, Labels<'_>, f64)> {
    let name_end = line.find(['{', ' '])?;
    let (name, mut rest) = line.split_at(name_end);
    let mut labels = Vec::new();
    if let Some(mut inner) = rest.strip_prefix('{') {
        loop {
            inner = inner.trim_start_matches([',', ' ']);
            if let Some(after) = inner.strip_prefix('}') {
                rest = after;
                break;
            }
            let (label, after) = inner.split_once("=\"")?;
            // The value ends at the first quote not escaped by a backslash.
            let mut escaped = false;
            let end = after.char_indices().find_map(|(i, c)| {
                let end = c == '"' && !escaped;
                escaped = c == '\\' && !escaped;
                end.then_some(i)
            })?;
            labels.push((label.trim(), &after[..end]));
            inner = &after[end + 1..];
        }
    }
    let value = rest.split_whitespace().next()?.parse().ok()?;
    Some((name, labels, value))
}

/// Prometheus text `metrics` with each sample summed over every label but `by` (and a
/// bucket's `le`); comments are kept, each family's samples follow them as before.
pub fn sum(metrics: &str, by: &[String]) -> String {
    let mut out = String::new();
    let mut family: BTreeMap<String, f64> = BTreeMap::new();
    let flush = |family: &mut BTreeMap<String, f64>, out: &mut String| {
        for (series, value) in std::mem::take(family) {
            out.push_str(&format!("{series} {value}\n"));
        }
    };
    for line in metrics.lines() {
        if line.starts_with('#') {
            flush(&mut family, &mut out);
            out.push_str(line);
            out.push('\n');
            continue;
        }
        let Some((name, labels, value)) = parse_sample(line) else { continue };
        let kept: Vec<String> = labels
            .iter()
            .filter(|(l, _)| *l == "le" || by.iter().any(|b| b == l))
            .map(|(l, v)| format!("{l}=\"{v}\""))
            .collect();
        let series = if kept.is_empty() { name.to_string() } else { format!("{name}{{{}}}", kept.join(",")) };
        *family.entry(series).or_default() += value;
    }
    flush(&mut family, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCRAPE: &str = r#"# HELP aggregator_unavailable_apiservice [ALPHA] Gauge of APIServices which are marked as unavailable broken down by APIService name.
# TYPE aggregator_unavailable_apiservice gauge
aggregator_unavailable_apiservice{name="v1."} 0
# HELP apiserver_request_duration_seconds [STABLE] Response latency distribution in seconds for each verb, dry run value, group, version, resource, subresource, scope and component.
# TYPE apiserver_request_duration_seconds histogram
apiserver_request_duration_seconds_bucket{component="apiserver",dry_run="",group="",resource="pods",scope="resource",subresource="",verb="POST",version="v1",le="0.005"} 3
apiserver_request_duration_seconds_bucket{component="apiserver",dry_run="",group="",resource="pods",scope="resource",subresource="",verb="POST",version="v1",le="+Inf"} 7
apiserver_request_duration_seconds_sum{component="apiserver",dry_run="",group="",resource="pods",scope="resource",subresource="",verb="POST",version="v1"} 0.12
apiserver_request_duration_seconds_count{component="apiserver",dry_run="",group="",resource="pods",scope="resource",subresource="",verb="POST",version="v1"} 7
# HELP apiserver_request_filter_duration_seconds [BETA] Request filter latency distribution in seconds, for each filter type
# TYPE apiserver_request_filter_duration_seconds histogram
apiserver_request_filter_duration_seconds_bucket{filter="audit",le="0.0001"} 12
apiserver_request_filter_duration_seconds_count{filter="audit"} 12
# HELP apiserver_request_total [STABLE] Counter of apiserver requests broken out for each verb, dry run value, group, version, resource, scope, component, and HTTP response code.
# TYPE apiserver_request_total counter
apiserver_request_total{code="201",component="apiserver",dry_run="",group="",resource="pods",scope="resource",subresource="",verb="POST",version="v1"} 7
apiserver_request_total{code="429",component="apiserver",dry_run="",group="",resource="pods",scope="resource",subresource="",verb="POST",version="v1"} 1
# HELP apiserver_request_sli_duration_seconds [ALPHA] Response latency distribution (not counting webhook duration and priority & fairness queue wait times) in seconds for each verb, group, version, resource, subresource, scope and component.
# TYPE apiserver_request_sli_duration_seconds histogram
apiserver_request_sli_duration_seconds_bucket{verb="POST",le="0.05"} 7
apiserver_request_total_extra 1
process_cpu_seconds_total 4.2
# EOF
"#;

    #[test]
    fn keeps_only_the_families_asked_for_with_their_help_and_type() {
        let kept = filter(SCRAPE, FAMILIES);
        let lines: Vec<&str> = kept.lines().collect();
        assert_eq!(lines.len(), 10, "{kept}");
        assert!(lines[0].starts_with("# HELP apiserver_request_duration_seconds [STABLE]"), "{kept}");
        assert_eq!(lines[1], "# TYPE apiserver_request_duration_seconds histogram");
        assert_eq!(lines.iter().filter(|l| l.starts_with("apiserver_request_duration_seconds_bucket{")).count(), 2);
        assert!(lines.iter().any(|l| l.starts_with("apiserver_request_duration_seconds_sum{")), "{kept}");
        assert!(lines.iter().any(|l| l.starts_with("apiserver_request_duration_seconds_count{")), "{kept}");
        assert_eq!(lines.iter().filter(|l| l.starts_with("apiserver_request_total{")).count(), 2);
        // Families sharing a prefix, other metrics and other comments go.
        for gone in ["filter_duration", "sli_duration", "total_extra", "aggregator", "process_cpu", "# EOF"] {
            assert!(!kept.contains(gone), "{gone} kept:\n{kept}");
        }
    }

    #[test]
    fn a_sample_without_labels_and_an_empty_scrape() {
        assert_eq!(filter("apiserver_request_total 3\nup 1\n\n", FAMILIES), "apiserver_request_total 3\n");
        assert_eq!(filter("", FAMILIES), "");
        assert_eq!(filter("apiserver_request_total 3\n", &[]), "");
    }

    #[test]
    fn summed_by_verb_and_scope_keeps_le_and_adds_up_the_rest() {
        let text = r#"# TYPE apiserver_request_duration_seconds histogram
apiserver_request_duration_seconds_bucket{resource="pods",scope="resource",verb="POST",le="0.005"} 3
apiserver_request_duration_seconds_bucket{resource="pods",scope="resource",verb="POST",le="+Inf"} 7
apiserver_request_duration_seconds_bucket{resource="nodes",scope="resource",verb="POST",le="0.005"} 1
apiserver_request_duration_seconds_bucket{resource="nodes",scope="resource",verb="POST",le="+Inf"} 2
apiserver_request_duration_seconds_bucket{resource="pods",scope="namespace",verb="LIST",le="+Inf"} 4
apiserver_request_duration_seconds_sum{resource="pods",scope="resource",verb="POST"} 0.25
apiserver_request_duration_seconds_sum{resource="nodes",scope="resource",verb="POST"} 0.5
# TYPE apiserver_request_total counter
apiserver_request_total{code="201",resource="pods",scope="resource",subresource="a \"quoted\", value",verb="POST"} 7
apiserver_request_total{code="429",resource="pods",scope="resource",subresource="",verb="POST"} 1
"#;
        let by = sum_by("by=verb,scope").unwrap();
        assert_eq!(
            sum(text, &by),
            r#"# TYPE apiserver_request_duration_seconds histogram
apiserver_request_duration_seconds_bucket{scope="namespace",verb="LIST",le="+Inf"} 4
apiserver_request_duration_seconds_bucket{scope="resource",verb="POST",le="+Inf"} 9
apiserver_request_duration_seconds_bucket{scope="resource",verb="POST",le="0.005"} 4
apiserver_request_duration_seconds_sum{scope="resource",verb="POST"} 0.75
# TYPE apiserver_request_total counter
apiserver_request_total{scope="resource",verb="POST"} 8
"#
        );
        // By nothing: one series per name (and bucket).
        assert!(sum(text, &[]).contains("apiserver_request_total 8\n"));
    }

    #[test]
    fn by_is_read_from_the_query() {
        assert_eq!(sum_by(""), None);
        assert_eq!(sum_by("other=1"), None);
        assert_eq!(sum_by("by=verb&by=scope,code"), Some(vec!["verb".into(), "scope".into(), "code".into()]));
        assert_eq!(sum_by("by="), Some(vec![]));
        let (name, labels, value) = parse_sample(r#"x{a="1\\",b="\"}"} 2.5"#).unwrap();
        assert_eq!((name, labels, value), ("x", vec![("a", r"1\\"), ("b", r#"\"}"#)], 2.5));
        assert_eq!(parse_sample("y 3").unwrap().2, 3.0);
        assert!(parse_sample("z{a=\"open 1").is_none());
    }

    /// The measured figure of footprint.rs, from a real apiserver's /metrics when one was
    /// saved next to the test (`APISERVER_METRICS=/path cargo test ... -- --ignored`).
    #[test]
    #[ignore = "needs a saved kube-apiserver /metrics: APISERVER_METRICS=<file>"]
    fn count_series_of_a_saved_scrape() {
        let text = std::fs::read_to_string(std::env::var("APISERVER_METRICS").unwrap()).unwrap();
        let count = |t: &str, prefix: &str| t.lines().filter(|l| l.starts_with(prefix)).count();
        let kept = filter(&text, FAMILIES);
        let summed = sum(&kept, &sum_by("by=verb,scope").unwrap());
        for (what, t) in [("whole", text.as_str()), ("filtered", kept.as_str()), ("by verb,scope", summed.as_str())] {
            println!(
                "{what}: {} samples, {} buckets",
                t.lines().filter(|l| !l.starts_with('#')).count(),
                count(t, "apiserver_request_duration_seconds_bucket")
            );
        }
    }

    #[tokio::test]
    async fn an_unreachable_apiserver_is_a_502_with_the_reason() {
        let dir = tempfile::tempdir().unwrap();
        // A closed port: the kubeconfig is fine, nothing answers.
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let pki = crate::pki::ensure(&dir.path().join("pki"), &format!("https://127.0.0.1:{port}"), &[]).unwrap();
        let source = Arc::new(Source { kubeconfig: pki.admin_kubeconfig, client: OnceCell::new() });
        let reply = serve(State(source), RawQuery(None)).await;
        assert_eq!(reply.status(), StatusCode::BAD_GATEWAY);
        let body = axum::body::to_bytes(reply.into_body(), 1 << 16).await.unwrap();
        let text = String::from_utf8_lossy(&body);
        assert!(text.starts_with("cannot read kube-apiserver's /metrics: "), "{text}");

        // A kubeconfig that is not there says which.
        let missing = Arc::new(Source { kubeconfig: dir.path().join("none.kubeconfig"), client: OnceCell::new() });
        let reply = serve(State(missing), RawQuery(None)).await;
        assert_eq!(reply.status(), StatusCode::BAD_GATEWAY);
        let body = axum::body::to_bytes(reply.into_body(), 1 << 16).await.unwrap();
        assert!(String::from_utf8_lossy(&body).contains("none.kubeconfig"), "{body:?}");
    }
}

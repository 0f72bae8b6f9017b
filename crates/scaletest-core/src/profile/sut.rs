//! `sut`: the system under test, the project's reference controller or the user's own.
//!
//! ```yaml
//! sut:
//!   command: [karpenter-kwok]                # locally; relative paths: from the profile's directory
//!   image: registry.example/karpenter:v1      # on the kube target (a sidecar; its own entrypoint)
//!   env:
//!     KUBECONFIG: ${kubeconfig}
//!     METRICS_PORT: ${metricsPort}
//!   manifests: [karpenter/crds, karpenter/nodepool.yaml]   # applied to each cluster first, CRDs first
//!   metrics: {port: ${metricsPort}, path: /metrics}        # scraped like every component
//!   readiness: {port: ${healthPort}, path: /readyz}        # absent: ready once started
//!   resources: {cpu: 500m, memory: 1Gi}                     # kube: the sidecar's CPU request, memory request = limit
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::schema::{duration_string, quantity_string};
use crate::quantity;

/// The system under test: the project's reference controller, or the user's own.
///
/// YAML: `sut: {reference: {...}}` or `sut: {command: [...], image: ..., env: ..., ...}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "SutSpec", into = "SutSpec")]
pub enum Sut {
    Reference(ReferenceSut),
    External(ExternalSut),
}

impl Default for Sut {
    fn default() -> Self {
        Self::Reference(ReferenceSut::default())
    }
}

impl Sut {
    pub fn external(&self) -> Option<&ExternalSut> {
        match self {
            Self::External(e) => Some(e),
            Self::Reference(_) => None,
        }
    }
}

/// The reference system under test: an unschedulable-pod controller and a provisioner
/// that acknowledges CapacityRequests and publishes UpcomingNodes after a delay.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct ReferenceSut {
    /// Between acknowledging a CapacityRequest and publishing its UpcomingNodes.
    #[serde(with = "duration_string")]
    pub provisioning_delay: Duration,
    /// CapacityRequests acknowledged in parallel. >= 1.
    pub acknowledge_concurrency: u32,
    /// Period of the provisioner's decision cycle. > 0.
    #[serde(with = "duration_string")]
    pub cycle_interval: Duration,
}

impl ReferenceSut {
    pub const DEFAULT_PROVISIONING_DELAY: Duration = Duration::from_secs(5);
    pub const DEFAULT_ACKNOWLEDGE_CONCURRENCY: u32 = 16;
    pub const DEFAULT_CYCLE_INTERVAL: Duration = Duration::from_secs(1);
}

impl Default for ReferenceSut {
    fn default() -> Self {
        Self {
            provisioning_delay: Self::DEFAULT_PROVISIONING_DELAY,
            acknowledge_concurrency: Self::DEFAULT_ACKNOWLEDGE_CONCURRENCY,
            cycle_interval: Self::DEFAULT_CYCLE_INTERVAL,
        }
    }
}

/// The user's own controller, one instance per simulated cluster. Locally the cluster's
/// supervisor runs `command` (and restarts it when it exits); on the kube target the
/// chart runs `image` with its own entrypoint beside the cluster. Both get `env`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ExternalSut {
    /// Program first, then its arguments (placeholders allowed). A program path with a
    /// `/` is taken relative to the profile's directory; a bare name is looked up in the
    /// upstream bin dir, then on PATH. The local target needs it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
    /// Container image for the kube target (registry/name:tag).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Environment of the controller; values may use [`Placeholder`]s such as `${kubeconfig}`.
    /// `KUBECONFIG` and `SCALETEST_KUBECONFIG` are set to the cluster's kubeconfig unless given.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// Files or directories (their `*.yaml`, `*.yml`, `*.json`) of Kubernetes objects
    /// applied to every simulated cluster before the controller starts: CRDs first
    /// (waited for until established), then Namespaces, then the rest. Relative to the
    /// profile's directory.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub manifests: Vec<PathBuf>,
    /// Where the controller serves Prometheus metrics; absent: not scraped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics: Option<SutMetrics>,
    /// How to tell it is ready; absent: ready once its process has started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub readiness: Option<SutReadiness>,
    /// What the kube target's sidecar requests (and its memory limit); absent: the chart's
    /// `sut.resources` (sized for the reference SUT). The local target does not limit it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<SutResources>,
}

/// `sut.resources`: the controller sidecar's CPU (requested, never limited: a throttled
/// controller measures its limit) and memory (request and limit).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SutResources {
    #[serde(deserialize_with = "quantity_string::deserialize")]
    pub cpu: String,
    #[serde(deserialize_with = "quantity_string::deserialize")]
    pub memory: String,
}

impl SutResources {
    pub fn cpu_millis(&self) -> Result<u64, quantity::QuantityError> {
        quantity::parse_cpu_millis(&self.cpu)
    }

    pub fn memory_bytes(&self) -> Result<u64, quantity::QuantityError> {
        quantity::parse_memory_bytes(&self.memory)
    }
}

/// `sut.metrics`: scraped by the run's Prometheus with the cluster's labels.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SutMetrics {
    pub port: PortRef,
    #[serde(default = "default_metrics_path")]
    pub path: String,
    #[serde(default)]
    pub scheme: Scheme,
}

/// `sut.readiness`: an HTTP GET on the controller that answers 2xx once it is ready.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SutReadiness {
    pub port: PortRef,
    #[serde(default = "default_readiness_path")]
    pub path: String,
    #[serde(default)]
    pub scheme: Scheme,
}

fn default_metrics_path() -> String {
    "/metrics".into()
}

fn default_readiness_path() -> String {
    "/readyz".into()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scheme {
    #[default]
    Http,
    /// TLS; the certificate is not verified (controllers serve self-signed ones).
    Https,
}

impl Scheme {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Http => "http",
            Self::Https => "https",
        }
    }
}

/// A port of the controller: a fixed number, or one the supervisor allocates for it
/// (`${metricsPort}`, `${healthPort}`), so that many clusters on one machine never clash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "PortSpec", into = "PortSpec")]
pub enum PortRef {
    Fixed(u16),
    Allocated(Placeholder),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged, expecting = "a port number or \"${metricsPort}\" / \"${healthPort}\"")]
enum PortSpec {
    Number(u16),
    Text(String),
}

impl TryFrom<PortSpec> for PortRef {
    type Error = String;

    fn try_from(spec: PortSpec) -> Result<Self, String> {
        let expected = "expected a port number in 1..=65535 or \"${metricsPort}\" / \"${healthPort}\"";
        match spec {
            PortSpec::Number(0) => Err(format!("{expected}, found 0")),
            PortSpec::Number(n) => Ok(Self::Fixed(n)),
            PortSpec::Text(text) => match Placeholder::parse_whole(&text) {
                Some(p @ (Placeholder::MetricsPort | Placeholder::HealthPort)) => Ok(Self::Allocated(p)),
                _ => text
                    .parse::<u16>()
                    .ok()
                    .filter(|n| *n > 0)
                    .map(Self::Fixed)
                    .ok_or_else(|| format!("{expected}, found {text:?}")),
            },
        }
    }
}

impl From<PortRef> for PortSpec {
    fn from(port: PortRef) -> Self {
        match port {
            PortRef::Fixed(n) => Self::Number(n),
            PortRef::Allocated(p) => Self::Text(p.token()),
        }
    }
}

/// A fact of the simulated cluster that `sut.command`, `sut.env` and ports may name as
/// `${name}`; the supervisor puts the value in place when it starts the controller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Placeholder {
    /// Path of the cluster's admin kubeconfig.
    Kubeconfig,
    /// `https://127.0.0.1:<port>` of the cluster's kube-apiserver.
    ApiserverUrl,
    /// 0-based index of the cluster in the run.
    ClusterIndex,
    /// The cluster's name (`cluster-0`, or the Pod's name on the kube target).
    ClusterName,
    /// The run id (`scaletest-run` label value).
    RunId,
    /// A free port allocated for the controller's metrics.
    MetricsPort,
    /// A second free port for its health/readiness endpoint.
    HealthPort,
    /// A directory of the cluster's data dir the controller may write to.
    DataDir,
}

impl Placeholder {
    pub const ALL: [Self; 8] = [
        Self::Kubeconfig,
        Self::ApiserverUrl,
        Self::ClusterIndex,
        Self::ClusterName,
        Self::RunId,
        Self::MetricsPort,
        Self::HealthPort,
        Self::DataDir,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::Kubeconfig => "kubeconfig",
            Self::ApiserverUrl => "apiserverUrl",
            Self::ClusterIndex => "clusterIndex",
            Self::ClusterName => "clusterName",
            Self::RunId => "runId",
            Self::MetricsPort => "metricsPort",
            Self::HealthPort => "healthPort",
            Self::DataDir => "dataDir",
        }
    }

    /// `${name}`.
    pub fn token(self) -> String {
        format!("${{{}}}", self.name())
    }

    /// Every placeholder, as a reader should write them: "${kubeconfig}, ${apiserverUrl}, …".
    pub fn listed() -> String {
        Self::ALL.iter().map(|p| p.token()).collect::<Vec<_>>().join(", ")
    }

    fn by_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.name() == name)
    }

    /// `text` is exactly one placeholder.
    fn parse_whole(text: &str) -> Option<Self> {
        Self::by_name(text.trim().strip_prefix("${")?.strip_suffix('}')?)
    }
}

impl fmt::Display for Placeholder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.token())
    }
}

/// A `${...}` in a value that names no [`Placeholder`], or one left open.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not one of {list}", list = Placeholder::listed())]
pub struct UnknownPlaceholder(pub String);

/// Replaces every `${name}` of `text` with `value(placeholder)`; `$` not followed by `{`
/// stays as it is (shell-style `$HOME` is the controller's business).
pub fn substitute(text: &str, mut value: impl FnMut(Placeholder) -> String) -> Result<String, UnknownPlaceholder> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("${") {
        out.push_str(&rest[..at]);
        let after = &rest[at + 2..];
        let Some(end) = after.find('}') else { return Err(UnknownPlaceholder(rest[at..].to_string())) };
        let name = &after[..end];
        let p = Placeholder::by_name(name).ok_or_else(|| UnknownPlaceholder(format!("${{{name}}}")))?;
        out.push_str(&value(p));
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// The placeholders `text` uses (checks it too).
pub fn placeholders_in(text: &str) -> Result<Vec<Placeholder>, UnknownPlaceholder> {
    let mut used = Vec::new();
    substitute(text, |p| {
        used.push(p);
        String::new()
    })?;
    Ok(used)
}

/// The YAML shape of [`Sut`]: `reference`, or the external controller's fields.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct SutSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    reference: Option<ReferenceSut>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    command: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    image: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    env: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    manifests: Vec<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    metrics: Option<SutMetrics>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    readiness: Option<SutReadiness>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    resources: Option<SutResources>,
}

impl TryFrom<SutSpec> for Sut {
    type Error = String;

    fn try_from(spec: SutSpec) -> Result<Self, String> {
        let external = ExternalSut {
            command: spec.command,
            image: spec.image,
            env: spec.env,
            manifests: spec.manifests,
            metrics: spec.metrics,
            readiness: spec.readiness,
            resources: spec.resources,
        };
        match spec.reference {
            Some(_) if external != ExternalSut::default() => Err(
                "expected either `reference` or your own controller's fields (command, image, env, manifests, metrics, readiness, resources), found both"
                    .to_owned(),
            ),
            Some(reference) => Ok(Self::Reference(reference)),
            None if external == ExternalSut::default() => Ok(Self::Reference(ReferenceSut::default())),
            None => Ok(Self::External(external)),
        }
    }
}

impl From<Sut> for SutSpec {
    fn from(sut: Sut) -> Self {
        match sut {
            Sut::Reference(reference) => Self { reference: Some(reference), ..Self::default() },
            Sut::External(e) => Self {
                reference: None,
                command: e.command,
                image: e.image,
                env: e.env,
                manifests: e.manifests,
                metrics: e.metrics,
                readiness: e.readiness,
                resources: e.resources,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn substitutes_known_placeholders_and_leaves_shell_dollars() {
        let got = substitute("--kubeconfig=${kubeconfig} $HOME ${metricsPort}", |p| match p {
            Placeholder::Kubeconfig => "/k".into(),
            Placeholder::MetricsPort => "9000".into(),
            _ => "?".into(),
        })
        .unwrap();
        assert_eq!(got, "--kubeconfig=/k $HOME 9000");
    }

    #[test]
    fn unknown_or_open_placeholders_are_named() {
        let err = substitute("x ${kubeconf} y", |_| String::new()).unwrap_err();
        assert_eq!(err.0, "${kubeconf}");
        assert!(err.to_string().contains("${kubeconfig}"), "{err}");
        assert_eq!(substitute("${kubeconfig", |_| String::new()).unwrap_err().0, "${kubeconfig");
    }

    #[test]
    fn ports_are_numbers_or_allocated() {
        let port = |y: &str| serde_yaml_ng::from_str::<PortRef>(y);
        assert_eq!(port("8080").unwrap(), PortRef::Fixed(8080));
        assert_eq!(port("\"8080\"").unwrap(), PortRef::Fixed(8080));
        assert_eq!(port("${metricsPort}").unwrap(), PortRef::Allocated(Placeholder::MetricsPort));
        assert_eq!(port("${healthPort}").unwrap(), PortRef::Allocated(Placeholder::HealthPort));
        assert!(port("${kubeconfig}").is_err());
        assert!(port("0").is_err());
        assert_eq!(
            serde_yaml_ng::to_string(&PortRef::Allocated(Placeholder::HealthPort)).unwrap().trim(),
            "${healthPort}"
        );
    }
}

//! Pure builders of everything the driver creates: names, labels, namespaces, Pods,
//! CapacityRequests and rendered manifest templates. No I/O except reading a template.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{Container, Namespace, Pod, PodSpec, ResourceRequirements};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::api::{DynamicObject, ObjectMeta};
use scaletest_core::constants::{MANAGED_BY_LABEL, RUN_LABEL};
use scaletest_core::crd::{CapacityRequest, CapacityRequestSpec, Need};
use scaletest_core::profile::PodResources;
use serde::Serialize;

/// Value of [`MANAGED_BY_LABEL`] on every object the driver creates.
pub const MANAGED_BY: &str = "scaletest-load-driver";
/// Never pulled: kwok fakes the kubelet.
pub const IMAGE: &str = "registry.invalid/scaletest:fake";
/// Namespaces are `scaletest-0`, `scaletest-1`, …
pub const NAMESPACE_PREFIX: &str = "scaletest-";
pub const POD_PREFIX: &str = "pod";
pub const CAPACITY_REQUEST_PREFIX: &str = "capreq";

/// Where an object lives: namespace (empty for cluster-scoped objects) and name.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectKey {
    pub namespace: String,
    pub name: String,
}

impl ObjectKey {
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        Self { namespace: namespace.into(), name: name.into() }
    }
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.namespace.is_empty() { f.write_str(&self.name) } else { write!(f, "{}/{}", self.namespace, self.name) }
    }
}

/// The labels every object of the run carries.
pub fn labels(run_id: &str) -> BTreeMap<String, String> {
    BTreeMap::from([(RUN_LABEL.to_owned(), run_id.to_owned()), (MANAGED_BY_LABEL.to_owned(), MANAGED_BY.to_owned())])
}

/// Label selector matching every object of the run.
pub fn run_selector(run_id: &str) -> String {
    format!("{RUN_LABEL}={run_id}")
}

pub fn namespace_name(i: u64) -> String {
    format!("{NAMESPACE_PREFIX}{i}")
}

/// Objects go round-robin over the namespaces by index.
pub fn namespace_for(index: u64, namespaces: u32) -> String {
    namespace_name(index % u64::from(namespaces.max(1)))
}

pub fn object_name(prefix: &str, index: u64) -> String {
    format!("{prefix}-{index}")
}

/// The index in a name made by [`object_name`] with `prefix`.
pub fn parse_index(prefix: &str, name: &str) -> Option<u64> {
    let digits = name.strip_prefix(prefix)?.strip_prefix('-')?;
    // Only the canonical spelling: "pod-007" was not made by us.
    (!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) && (digits == "0" || !digits.starts_with('0')))
        .then(|| digits.parse().ok())
        .flatten()
}

pub fn build_namespace(name: &str, run_id: &str) -> Namespace {
    Namespace {
        metadata: ObjectMeta { name: Some(name.to_owned()), labels: Some(labels(run_id)), ..Default::default() },
        ..Default::default()
    }
}

fn requests(pod: &PodResources) -> BTreeMap<String, Quantity> {
    BTreeMap::from([("cpu".to_owned(), Quantity(pod.cpu.clone())), ("memory".to_owned(), Quantity(pod.memory.clone()))])
}

/// A Pod that only a Node with room for `pod`'s requests can take.
pub fn build_pod(name: &str, namespace: &str, run_id: &str, pod: &PodResources) -> Pod {
    Pod {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            namespace: Some(namespace.to_owned()),
            labels: Some(labels(run_id)),
            ..Default::default()
        },
        spec: Some(PodSpec {
            containers: vec![Container {
                name: "app".to_owned(),
                image: Some(IMAGE.to_owned()),
                resources: Some(ResourceRequirements { requests: Some(requests(pod)), ..Default::default() }),
                ..Default::default()
            }],
            // Nothing runs: no token to mount, nothing to wait for on delete.
            automount_service_account_token: Some(false),
            termination_grace_period_seconds: Some(0),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A CapacityRequest for one Pod of `pod`'s size (count is a Pod count, not a Node count).
pub fn build_capacity_request(name: &str, namespace: &str, run_id: &str, pod: &PodResources) -> CapacityRequest {
    let mut cr = CapacityRequest::new(
        name,
        CapacityRequestSpec {
            need: Need { count: 1, cpu: Quantity(pod.cpu.clone()), memory: Quantity(pod.memory.clone()) },
        },
    );
    cr.metadata.namespace = Some(namespace.to_owned());
    cr.metadata.labels = Some(labels(run_id));
    cr
}

#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("cannot read manifest template {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("manifest template {}, line {line}: unknown placeholder {{{{{placeholder}}}}} (known: {})", path.display(), PLACEHOLDERS.join(", "))]
    UnknownPlaceholder { path: PathBuf, line: usize, placeholder: String },
    #[error("manifest template {}, line {line}: `{{{{` without a closing `}}}}`", path.display())]
    Unterminated { path: PathBuf, line: usize },
    #[error("manifest template {} does not render to one Kubernetes object", path.display())]
    Parse {
        path: PathBuf,
        #[source]
        source: serde_yaml_ng::Error,
    },
    #[error("manifest template {} renders an object without apiVersion and kind", path.display())]
    MissingType { path: PathBuf },
}

/// The placeholders a template may use, each written `{{name}}` (inner spaces allowed).
pub const PLACEHOLDERS: [&str; 4] = ["name", "namespace", "index", "runId"];

/// What one object's placeholders stand for.
#[derive(Clone, Copy, Debug)]
pub struct Vars<'a> {
    pub name: &'a str,
    pub namespace: &'a str,
    pub index: u64,
    pub run_id: &'a str,
}

/// A manifest template (`loadProfile.template`): YAML of one object with placeholders.
#[derive(Clone, Debug)]
pub struct Template {
    path: PathBuf,
    text: String,
}

impl Template {
    pub fn new(path: impl Into<PathBuf>, text: impl Into<String>) -> Self {
        Self { path: path.into(), text: text.into() }
    }

    pub fn read(path: &Path) -> Result<Self, TemplateError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| TemplateError::Read { path: path.to_owned(), source })?;
        Ok(Self::new(path, text))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The text with every placeholder substituted.
    pub fn render(&self, vars: &Vars<'_>) -> Result<String, TemplateError> {
        let mut out = String::with_capacity(self.text.len());
        let mut rest = self.text.as_str();
        while let Some(start) = rest.find("{{") {
            out.push_str(&rest[..start]);
            let line = self.line_of(rest, start);
            let after = &rest[start + 2..];
            let end = after.find("}}").ok_or_else(|| TemplateError::Unterminated { path: self.path.clone(), line })?;
            let placeholder = after[..end].trim();
            match placeholder {
                "name" => out.push_str(vars.name),
                "namespace" => out.push_str(vars.namespace),
                "index" => out.push_str(&vars.index.to_string()),
                "runId" => out.push_str(vars.run_id),
                _ => {
                    return Err(TemplateError::UnknownPlaceholder {
                        path: self.path.clone(),
                        line,
                        placeholder: placeholder.to_owned(),
                    });
                }
            }
            rest = &after[end + 2..];
        }
        out.push_str(rest);
        Ok(out)
    }

    /// 1-based line of `rest[offset]`, `rest` being a suffix of the template text.
    fn line_of(&self, rest: &str, offset: usize) -> usize {
        let consumed = self.text.len() - rest.len() + offset;
        self.text[..consumed].matches('\n').count() + 1
    }

    /// The rendered object, named and placed as the driver wants it and labelled with the
    /// run. Workloads' Pod templates (`spec.template.metadata`) get the run labels too, so
    /// the Pods a Deployment creates are watched and their binding latency measured.
    pub fn build(&self, vars: &Vars<'_>, namespaced: bool) -> Result<DynamicObject, TemplateError> {
        let rendered = self.render(vars)?;
        let mut obj: DynamicObject = serde_yaml_ng::from_str(&rendered)
            .map_err(|source| TemplateError::Parse { path: self.path.clone(), source })?;
        if obj.types.as_ref().is_none_or(|t| t.api_version.is_empty() || t.kind.is_empty()) {
            return Err(TemplateError::MissingType { path: self.path.clone() });
        }
        obj.metadata.name = Some(vars.name.to_owned());
        obj.metadata.namespace = namespaced.then(|| vars.namespace.to_owned());
        obj.metadata.labels.get_or_insert_with(BTreeMap::new).extend(labels(vars.run_id));
        if let Some(pod_meta) = obj.data.pointer_mut("/spec/template").and_then(|t| t.as_object_mut()) {
            let meta = pod_meta.entry("metadata").or_insert_with(|| serde_json::json!({}));
            if let Some(meta) = meta.as_object_mut() {
                let pod_labels = meta.entry("labels").or_insert_with(|| serde_json::json!({}));
                if let Some(pod_labels) = pod_labels.as_object_mut() {
                    for (k, v) in labels(vars.run_id) {
                        pod_labels.insert(k, v.into());
                    }
                }
            }
        }
        Ok(obj)
    }
}

/// Pods one manifest object makes: `spec.replicas` of a workload (an object with a Pod
/// template; 1 when unset, as for Deployments), none for anything else.
pub fn pods_per_object(obj: &DynamicObject) -> u64 {
    match obj.data.pointer("/spec/template") {
        Some(t) if t.is_object() => obj.data.pointer("/spec/replicas").map_or(1, |r| r.as_u64().unwrap_or(0)),
        _ => 0,
    }
}

/// What the driver makes for each index.
#[derive(Clone, Debug)]
pub enum Blueprint {
    Pods(PodResources),
    CapacityRequests(PodResources),
    Manifest(Template),
}

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Template(#[from] TemplateError),
    #[error("cannot encode {key}")]
    Encode {
        key: ObjectKey,
        #[source]
        source: serde_json::Error,
    },
}

/// Names, places and builds the run's objects by index: index `i` is always the same
/// object, so a restarted driver finds (and a retried create conflicts with) it.
#[derive(Clone, Debug)]
pub struct Factory {
    pub blueprint: Blueprint,
    pub run_id: String,
    pub namespaces: u32,
    /// Objects are `<prefix>-<index>`.
    pub prefix: String,
    /// False for cluster-scoped manifest objects.
    pub namespaced: bool,
}

impl Factory {
    pub fn name(&self, index: u64) -> String {
        object_name(&self.prefix, index)
    }

    /// The namespace a manifest's `{{namespace}}` renders to, even for cluster-scoped objects.
    fn namespace_var(&self, index: u64) -> String {
        namespace_for(index, self.namespaces)
    }

    pub fn key(&self, index: u64) -> ObjectKey {
        let namespace = if self.namespaced { self.namespace_var(index) } else { String::new() };
        ObjectKey::new(namespace, self.name(index))
    }

    /// The namespaces objects go to (none for cluster-scoped objects).
    pub fn namespace_names(&self) -> Vec<String> {
        if self.namespaced { (0..u64::from(self.namespaces.max(1))).map(namespace_name).collect() } else { Vec::new() }
    }

    pub fn build(&self, index: u64) -> Result<DynamicObject, BuildError> {
        let name = self.name(index);
        let namespace = self.namespace_var(index);
        match &self.blueprint {
            Blueprint::Pods(pod) => to_dynamic(&build_pod(&name, &namespace, &self.run_id, pod), self.key(index)),
            Blueprint::CapacityRequests(pod) => {
                to_dynamic(&build_capacity_request(&name, &namespace, &self.run_id, pod), self.key(index))
            }
            Blueprint::Manifest(template) => {
                let vars = Vars { name: &name, namespace: &namespace, index, run_id: &self.run_id };
                Ok(template.build(&vars, self.namespaced)?)
            }
        }
    }
}

fn to_dynamic<K: Serialize>(obj: &K, key: ObjectKey) -> Result<DynamicObject, BuildError> {
    serde_json::to_value(obj).and_then(serde_json::from_value).map_err(|source| BuildError::Encode { key, source })
}

#[cfg(test)]
mod tests {
    use super::*;

    const RUN: &str = "20250101-000000-smoke";

    fn run_labels_of(meta: &ObjectMeta) -> (Option<&str>, Option<&str>) {
        let labels = meta.labels.as_ref().expect("labels");
        (labels.get(RUN_LABEL).map(String::as_str), labels.get(MANAGED_BY_LABEL).map(String::as_str))
    }

    #[test]
    fn names_and_namespaces_are_deterministic() {
        assert_eq!(object_name("pod", 42), "pod-42");
        assert_eq!(parse_index("pod", "pod-42"), Some(42));
        assert_eq!(parse_index("pod", "pod-0"), Some(0));
        for foreign in ["pod-", "pod-007", "pod-4x", "podx-1", "capreq-1", "pod-1-2"] {
            assert_eq!(parse_index("pod", foreign), None, "{foreign}");
        }
        let spread: Vec<_> = (0..5).map(|i| namespace_for(i, 3)).collect();
        assert_eq!(spread, ["scaletest-0", "scaletest-1", "scaletest-2", "scaletest-0", "scaletest-1"]);
        assert_eq!(namespace_for(7, 0), "scaletest-0");
    }

    #[test]
    fn pods_request_the_profiles_resources_and_carry_the_run_labels() {
        let resources = PodResources { cpu: "250m".into(), memory: "1Gi".into() };
        let pod = build_pod("pod-3", "scaletest-1", RUN, &resources);
        assert_eq!(pod.metadata.name.as_deref(), Some("pod-3"));
        assert_eq!(pod.metadata.namespace.as_deref(), Some("scaletest-1"));
        assert_eq!(run_labels_of(&pod.metadata), (Some(RUN), Some(MANAGED_BY)));
        let spec = pod.spec.unwrap();
        assert_eq!(spec.containers.len(), 1);
        assert_eq!(spec.containers[0].image.as_deref(), Some(IMAGE));
        let requests = spec.containers[0].resources.as_ref().unwrap().requests.as_ref().unwrap();
        assert_eq!(requests["cpu"], Quantity("250m".into()));
        assert_eq!(requests["memory"], Quantity("1Gi".into()));
        assert!(spec.node_name.is_none(), "the scheduler binds, not the driver");
    }

    #[test]
    fn capacity_requests_need_one_pod() {
        let cr = build_capacity_request("capreq-0", "scaletest-0", RUN, &PodResources::default());
        assert_eq!(cr.spec.need.count, 1);
        assert_eq!(cr.spec.need.cpu, Quantity(PodResources::DEFAULT_CPU.into()));
        assert_eq!(cr.spec.need.memory, Quantity(PodResources::DEFAULT_MEMORY.into()));
        assert_eq!(cr.metadata.namespace.as_deref(), Some("scaletest-0"));
        assert_eq!(run_labels_of(&cr.metadata), (Some(RUN), Some(MANAGED_BY)));
        assert!(cr.status.is_none());
    }

    #[test]
    fn namespaces_are_labelled_with_the_run() {
        let ns = build_namespace("scaletest-2", RUN);
        assert_eq!(ns.metadata.name.as_deref(), Some("scaletest-2"));
        assert_eq!(run_labels_of(&ns.metadata), (Some(RUN), Some(MANAGED_BY)));
    }

    const DEPLOYMENT: &str = r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: "{{name}}"
  labels: {app: "{{ name }}", tier: load}
spec:
  replicas: 2
  selector: {matchLabels: {app: "{{name}}"}}
  template:
    metadata:
      labels: {app: "{{name}}"}
      annotations: {index: "{{index}}", run: "{{runId}}", ns: "{{namespace}}"}
    spec:
      containers: [{name: app, image: registry.invalid/scaletest:fake}]
"#;

    fn vars() -> Vars<'static> {
        Vars { name: "deployment-7", namespace: "scaletest-1", index: 7, run_id: RUN }
    }

    #[test]
    fn templates_substitute_every_placeholder() {
        let t = Template::new("d.yaml", "a: {{name}}\nb: {{ namespace }}\nc: '{{index}}-{{runId}}'\nd: x");
        assert_eq!(t.render(&vars()).unwrap(), format!("a: deployment-7\nb: scaletest-1\nc: '7-{RUN}'\nd: x"));
        assert_eq!(Template::new("d.yaml", "no placeholders").render(&vars()).unwrap(), "no placeholders");
    }

    #[test]
    fn template_errors_name_file_line_and_placeholder() {
        let err = Template::new("t/d.yaml", "a: 1\nb: {{ nmae }}\n").render(&vars()).unwrap_err();
        assert!(
            matches!(err, TemplateError::UnknownPlaceholder { line: 2, ref placeholder, .. } if placeholder == "nmae")
        );
        assert_eq!(
            err.to_string(),
            "manifest template t/d.yaml, line 2: unknown placeholder {{nmae}} (known: name, namespace, index, runId)"
        );
        let err = Template::new("t/d.yaml", "a: 1\n\nb: {{name\n").render(&vars()).unwrap_err();
        assert!(matches!(err, TemplateError::Unterminated { line: 3, .. }), "{err}");
        let err = Template::new("d.yaml", "metadata: {name: x}\n").build(&vars(), true).unwrap_err();
        assert!(matches!(err, TemplateError::MissingType { .. }), "{err}");
        let err = Template::new("d.yaml", "a: [\n").build(&vars(), true).unwrap_err();
        assert!(matches!(err, TemplateError::Parse { .. }), "{err}");
    }

    #[test]
    fn manifests_are_named_placed_and_labelled_by_the_driver() {
        let obj = Template::new("d.yaml", DEPLOYMENT).build(&vars(), true).unwrap();
        let types = obj.types.as_ref().unwrap();
        assert_eq!((types.api_version.as_str(), types.kind.as_str()), ("apps/v1", "Deployment"));
        assert_eq!(obj.metadata.name.as_deref(), Some("deployment-7"));
        assert_eq!(obj.metadata.namespace.as_deref(), Some("scaletest-1"));
        let labels = obj.metadata.labels.as_ref().unwrap();
        assert_eq!(labels["app"], "deployment-7");
        assert_eq!(labels["tier"], "load");
        assert_eq!(labels[RUN_LABEL], RUN);
        let pod_labels = &obj.data["spec"]["template"]["metadata"]["labels"];
        assert_eq!(pod_labels["app"], "deployment-7");
        assert_eq!(pod_labels[RUN_LABEL], RUN);
        assert_eq!(pod_labels[MANAGED_BY_LABEL], MANAGED_BY);
        let annotations = &obj.data["spec"]["template"]["metadata"]["annotations"];
        assert_eq!(annotations["index"], "7");
        assert_eq!(annotations["run"], RUN);
        assert_eq!(annotations["ns"], "scaletest-1");
        assert_eq!(obj.data["spec"]["replicas"], 2);

        assert_eq!(pods_per_object(&obj), 2);

        // The template's own name or namespace never wins; cluster-scoped objects get none.
        let t = Template::new("c.yaml", "apiVersion: v1\nkind: Namespace\nmetadata: {name: fixed, namespace: x}\n");
        let obj = t.build(&vars(), false).unwrap();
        assert_eq!(obj.metadata.name.as_deref(), Some("deployment-7"));
        assert_eq!(obj.metadata.namespace, None);
        assert_eq!(pods_per_object(&obj), 0);
        let t = Template::new("d.yaml", "apiVersion: apps/v1\nkind: Deployment\nspec: {template: {}}\n");
        assert_eq!(pods_per_object(&t.build(&vars(), true).unwrap()), 1);
    }

    #[test]
    fn factory_builds_the_same_object_for_the_same_index() {
        let factory = Factory {
            blueprint: Blueprint::Pods(PodResources::default()),
            run_id: RUN.into(),
            namespaces: 2,
            prefix: POD_PREFIX.into(),
            namespaced: true,
        };
        assert_eq!(factory.key(5), ObjectKey::new("scaletest-1", "pod-5"));
        assert_eq!(factory.key(5).to_string(), "scaletest-1/pod-5");
        assert_eq!(factory.namespace_names(), ["scaletest-0", "scaletest-1"]);
        let obj = factory.build(5).unwrap();
        assert_eq!(obj, factory.build(5).unwrap());
        let types = obj.types.as_ref().unwrap();
        assert_eq!((types.api_version.as_str(), types.kind.as_str()), ("v1", "Pod"));
        assert_eq!(obj.metadata.namespace.as_deref(), Some("scaletest-1"));
        assert_eq!(obj.data["spec"]["containers"][0]["resources"]["requests"]["cpu"], "100m");

        let crs = Factory {
            blueprint: Blueprint::CapacityRequests(PodResources::default()),
            prefix: CAPACITY_REQUEST_PREFIX.into(),
            ..factory
        };
        let obj = crs.build(4).unwrap();
        let types = obj.types.as_ref().unwrap();
        assert_eq!((types.api_version.as_str(), types.kind.as_str()), ("scaletest.dev/v1alpha1", "CapacityRequest"));
        assert_eq!(obj.data["spec"]["need"]["count"], 1);
        assert_eq!(obj.metadata.name.as_deref(), Some("capreq-4"));
    }
}

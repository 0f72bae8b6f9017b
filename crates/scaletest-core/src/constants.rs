//! Every label, annotation and API name the components agree on.

/// API group of the project's own CRDs.
pub const API_GROUP: &str = "scaletest.dev";
pub const API_VERSION: &str = "v1alpha1";

/// Label carried by every object a run creates (load-driver objects, chart objects).
pub const RUN_LABEL: &str = "scaletest-run";
/// Label naming the component that created an object.
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";

/// kwok manages Nodes carrying this annotation (`--manage-nodes-with-annotation-selector`);
/// autoscalers' own kwok providers follow the same convention.
pub const KWOK_NODE_ANNOTATION: &str = "kwok.x-k8s.io/node";
pub const KWOK_NODE_ANNOTATION_VALUE: &str = "fake";
/// Label on fake Nodes naming the UpcomingNode they were created for.
pub const UPCOMING_NODE_LABEL: &str = "scaletest.dev/upcoming-node";
/// Taint-free fake Nodes still get this label so workloads can target them.
pub const FAKE_NODE_TYPE_LABEL: &str = "type";
pub const FAKE_NODE_TYPE_VALUE: &str = "kwok";

/// Field manager used for server-side apply by scaletest components.
pub const FIELD_MANAGER: &str = "scaletest";

//! The endpoints file a simulated cluster's supervisor writes once the cluster
//! is ready: where its kubeconfig is and where every component serves metrics.
//! The runner turns these into Prometheus file-based service discovery.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use thiserror::Error;

pub const FILE_NAME: &str = "endpoints.json";

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Endpoints {
    pub cluster: String,
    pub data_dir: PathBuf,
    pub kubeconfig: PathBuf,
    pub apiserver_url: String,
    pub supervisor_pid: u32,
    /// Seconds from supervisor start to every component ready.
    pub startup_seconds: f64,
    /// Every port the cluster holds, by role (to check they are free afterwards).
    #[serde(default)]
    pub ports: std::collections::BTreeMap<String, u16>,
    pub components: Vec<ComponentEndpoint>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ComponentEndpoint {
    pub name: String,
    pub log_file: PathBuf,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics: Option<MetricsTarget>,
}

/// A Prometheus scrape target (host:port plus how to talk to it).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct MetricsTarget {
    pub scheme: String,
    pub address: String,
    pub path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsTarget>,
}

impl MetricsTarget {
    pub fn url(&self) -> String {
        format!("{}://{}{}", self.scheme, self.address, self.path)
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TlsTarget {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_file: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_file: Option<PathBuf>,
    #[serde(default)]
    pub insecure_skip_verify: bool,
}

#[derive(Debug, Error)]
pub enum EndpointsError {
    #[error("cannot read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a scaletest endpoints file")]
    Parse {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("cannot write {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl Endpoints {
    pub fn read(path: &Path) -> Result<Self, EndpointsError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| EndpointsError::Read { path: path.to_owned(), source })?;
        serde_json::from_str(&text).map_err(|source| EndpointsError::Parse { path: path.to_owned(), source })
    }

    /// Writes atomically (temp file + rename) so a reader never sees half a file.
    pub fn write(&self, path: &Path) -> Result<(), EndpointsError> {
        let err = |source| EndpointsError::Write { path: path.to_owned(), source };
        let tmp = path.with_extension("json.tmp");
        let json = serde_json::to_string_pretty(self).expect("endpoints always serialise");
        std::fs::write(&tmp, json).map_err(err)?;
        std::fs::rename(&tmp, path).map_err(err)
    }

    pub fn component(&self, name: &str) -> Option<&ComponentEndpoint> {
        self.components.iter().find(|c| c.name == name)
    }

    /// Where component `name` serves its metrics (and, for the supervisor, its control routes).
    pub fn metrics_address(&self, name: &str) -> Option<&str> {
        self.component(name)?.metrics.as_ref().map(|m| m.address.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_a_file() {
        let dir = tempfile_dir();
        let e = Endpoints {
            cluster: "c0".into(),
            data_dir: dir.clone(),
            kubeconfig: dir.join("admin.kubeconfig"),
            apiserver_url: "https://127.0.0.1:1".into(),
            supervisor_pid: 1,
            startup_seconds: 1.5,
            ports: [("kine".to_string(), 3)].into(),
            components: vec![ComponentEndpoint {
                name: "kwok".into(),
                log_file: dir.join("kwok.log"),
                metrics: Some(MetricsTarget {
                    scheme: "http".into(),
                    address: "127.0.0.1:2".into(),
                    path: "/metrics".into(),
                    tls: None,
                }),
            }],
        };
        let path = dir.join(FILE_NAME);
        e.write(&path).unwrap();
        assert_eq!(Endpoints::read(&path).unwrap(), e);
        assert_eq!(e.component("kwok").unwrap().metrics.as_ref().unwrap().url(), "http://127.0.0.1:2/metrics");
        std::fs::remove_dir_all(dir).unwrap();
    }

    fn tempfile_dir() -> PathBuf {
        let d = std::env::temp_dir().join(format!("scaletest-endpoints-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }
}

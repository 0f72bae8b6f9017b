//! Kubernetes objects from YAML/JSON files: what a profile's `sut.manifests` name, read
//! once at validation (so a typo is refused before anything starts) and again by each
//! simulated cluster's supervisor, which applies them before the controller starts.

use std::path::{Path, PathBuf};

use serde_json::Value;

/// Files a directory contributes: its `*.yaml`, `*.yml` and `*.json`, not recursive.
const EXTENSIONS: [&str; 3] = ["yaml", "yml", "json"];

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} has no *.yaml, *.yml or *.json file", path.display())]
    EmptyDir { path: PathBuf },
    #[error("{} document {document}: {message}", path.display())]
    Invalid { path: PathBuf, document: usize, message: String },
}

/// One object of a manifest file.
#[derive(Debug, Clone, PartialEq)]
pub struct Manifest {
    pub file: PathBuf,
    /// 1-based document number in its file.
    pub document: usize,
    pub api_version: String,
    pub kind: String,
    pub name: String,
    pub namespace: Option<String>,
    pub object: Value,
}

impl Manifest {
    pub fn is_crd(&self) -> bool {
        self.kind == "CustomResourceDefinition" && self.api_version.starts_with("apiextensions.k8s.io/")
    }

    pub fn is_namespace(&self) -> bool {
        self.kind == "Namespace" && self.api_version == "v1"
    }

    /// `Kind/namespace/name` for logs and errors.
    pub fn describe(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("{}/{ns}/{}", self.kind, self.name),
            None => format!("{}/{}", self.kind, self.name),
        }
    }

    /// Apply order: CRDs, then Namespaces, then everything else (each group in file order).
    fn rank(&self) -> u8 {
        if self.is_crd() {
            0
        } else if self.is_namespace() {
            1
        } else {
            2
        }
    }
}

/// The files `path` stands for: itself, or a directory's manifest files sorted by name.
pub fn files(path: &Path) -> Result<Vec<PathBuf>, ManifestError> {
    let read_err = |source| ManifestError::Read { path: path.to_owned(), source };
    let meta = std::fs::metadata(path).map_err(read_err)?;
    if !meta.is_dir() {
        return Ok(vec![path.to_owned()]);
    }
    let mut out = Vec::new();
    for entry in std::fs::read_dir(path).map_err(read_err)? {
        let p = entry.map_err(read_err)?.path();
        if p.is_file() && p.extension().and_then(|e| e.to_str()).is_some_and(|e| EXTENSIONS.contains(&e)) {
            out.push(p);
        }
    }
    if out.is_empty() {
        return Err(ManifestError::EmptyDir { path: path.to_owned() });
    }
    out.sort();
    Ok(out)
}

/// Every object of every file `paths` stand for, in apply order.
pub fn read_all(paths: &[PathBuf]) -> Result<Vec<Manifest>, ManifestError> {
    let mut all = Vec::new();
    for path in paths {
        for file in files(path)? {
            all.extend(read_file(&file)?);
        }
    }
    // Stable: file order within each group.
    all.sort_by_key(Manifest::rank);
    Ok(all)
}

/// The objects of one file (multi-document YAML, or JSON; a `List` is unpacked).
pub fn read_file(file: &Path) -> Result<Vec<Manifest>, ManifestError> {
    let text = std::fs::read_to_string(file).map_err(|source| ManifestError::Read { path: file.to_owned(), source })?;
    parse(&text, file)
}

pub fn parse(text: &str, file: &Path) -> Result<Vec<Manifest>, ManifestError> {
    use serde::Deserialize;
    let mut out = Vec::new();
    for (i, doc) in serde_yaml_ng::Deserializer::from_str(text).enumerate() {
        let document = i + 1;
        let invalid = |message: String| ManifestError::Invalid { path: file.to_owned(), document, message };
        let value = Value::deserialize(doc).map_err(|e| invalid(e.to_string()))?;
        match value {
            Value::Null => continue, // an empty document (`---` at the end)
            Value::Object(ref map) if map.get("kind").and_then(Value::as_str) == Some("List") => {
                let items = map.get("items").and_then(Value::as_array).cloned().unwrap_or_default();
                for item in items {
                    out.push(object(item, file, document).map_err(invalid)?);
                }
            }
            other => out.push(object(other, file, document).map_err(invalid)?),
        }
    }
    Ok(out)
}

fn object(value: Value, file: &Path, document: usize) -> Result<Manifest, String> {
    let text = |v: &Value, key: &str| v.get(key).and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_owned);
    if !value.is_object() {
        return Err(format!("expected a Kubernetes object (a mapping), found {}", kind_of(&value)));
    }
    let missing = |what: &str| format!("expected a Kubernetes object with {what}, found none");
    let api_version = text(&value, "apiVersion").ok_or_else(|| missing("apiVersion"))?;
    let kind = text(&value, "kind").ok_or_else(|| missing("kind"))?;
    let meta = value.get("metadata").cloned().unwrap_or(Value::Null);
    let name = text(&meta, "name").ok_or_else(|| missing("metadata.name"))?;
    let namespace = text(&meta, "namespace");
    Ok(Manifest { file: file.to_owned(), document, api_version, kind, name, namespace, object: value })
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "nothing",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CRD: &str =
        "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata: {name: things.example.com}\n";

    #[test]
    fn crds_then_namespaces_then_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("a.yaml"),
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c, namespace: x}\n---\napiVersion: v1\nkind: Namespace\nmetadata: {name: x}\n---\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("b.yml"), CRD).unwrap();
        std::fs::write(dir.path().join("notes.txt"), "not a manifest").unwrap();
        let all = read_all(&[dir.path().to_owned()]).unwrap();
        let kinds: Vec<_> = all.iter().map(|m| m.describe()).collect();
        assert_eq!(kinds, ["CustomResourceDefinition/things.example.com", "Namespace/x", "ConfigMap/x/c"]);
        assert!(all[0].is_crd());
    }

    #[test]
    fn a_document_without_a_name_is_refused_with_file_and_number() {
        let err = parse(
            "apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n---\napiVersion: v1\nkind: Namespace\n",
            Path::new("m.yaml"),
        )
        .unwrap_err();
        assert_eq!(err.to_string(), "m.yaml document 2: expected a Kubernetes object with metadata.name, found none");
        let err = parse("- 1\n", Path::new("m.yaml")).unwrap_err();
        assert!(err.to_string().contains("found a list"), "{err}");
    }

    #[test]
    fn lists_are_unpacked_and_empty_dirs_refused() {
        let list = r#"{"apiVersion":"v1","kind":"List","items":[{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"a"}}]}"#;
        assert_eq!(parse(list, Path::new("l.json")).unwrap()[0].name, "a");
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(files(dir.path()), Err(ManifestError::EmptyDir { .. })));
        assert!(matches!(files(&dir.path().join("missing")), Err(ManifestError::Read { .. })));
    }
}

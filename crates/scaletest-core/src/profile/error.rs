//! Why a profile could not be used: one line naming file, field and expected form.

use std::fmt;
use std::path::{Path, PathBuf};

/// Why a profile could not be used. Display is one line: file, field path, expectation.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    #[error("{}: cannot read profile: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: {field}: {message}", path.display())]
    Parse { path: PathBuf, field: String, message: String },
    #[error("{}: {field}: expected {expected}, found {found}", path.display())]
    Invalid { path: PathBuf, field: String, expected: String, found: String },
}

impl ProfileError {
    /// The profile file (or directory) the error is about.
    pub fn path(&self) -> &Path {
        match self {
            Self::Read { path, .. } | Self::Parse { path, .. } | Self::Invalid { path, .. } => path,
        }
    }

    /// The field path (`loadProfile.phases[1].steady.churnPercent`), if the error has one.
    pub fn field(&self) -> Option<&str> {
        match self {
            Self::Read { .. } => None,
            Self::Parse { field, .. } | Self::Invalid { field, .. } => Some(field),
        }
    }

    pub(super) fn invalid(path: &Path, violation: Violation) -> Self {
        Self::Invalid {
            path: path.to_owned(),
            field: violation.field,
            expected: violation.expected,
            found: violation.found,
        }
    }
}

/// A rule of [`Profile::validate`] that a parsed profile breaks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: expected {expected}, found {found}")]
pub struct Violation {
    pub field: String,
    pub expected: String,
    pub found: String,
}

impl Violation {
    pub(super) fn new(field: impl Into<String>, expected: impl Into<String>, found: impl fmt::Display) -> Self {
        Self { field: field.into(), expected: expected.into(), found: one_line(&found.to_string()) }
    }
}

pub(super) fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

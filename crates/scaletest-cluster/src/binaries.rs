//! Finds the pinned upstream binaries: the directory `make upstream` fills
//! (`scripts/upstream.sh bin-dir`), then PATH.

use std::path::{Path, PathBuf};

use thiserror::Error;

#[derive(Debug, Error)]
#[error("{name} not found in {} or on PATH: {}", .bin_dir.display(), hint(.name))]
pub struct MissingBinary {
    pub name: String,
    pub bin_dir: PathBuf,
}

fn hint(name: &str) -> &'static str {
    if name.starts_with("scaletest-") {
        "run `cargo build --workspace --bins` (or `make build`) to build the harness binaries"
    } else {
        "run `make upstream` to build the pinned upstream binaries (or pass --bin-dir)"
    }
}

/// `$SCALETEST_CACHE`, else `$XDG_CACHE_HOME/scaletest`, else `~/.cache/scaletest`,
/// plus `upstream/bin`: the same rule as scripts/upstream.sh.
pub fn default_bin_dir() -> PathBuf {
    let cache = std::env::var_os("SCALETEST_CACHE").map(PathBuf::from).unwrap_or_else(|| {
        std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache"))
            .join("scaletest")
    });
    cache.join("upstream").join("bin")
}

fn executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0).unwrap_or(false)
}

/// Looks `name` up in `bin_dir`, then next to the running executable (our own
/// binaries sit together in target/ and in the image), then on PATH.
pub fn find(name: &str, bin_dir: &Path) -> Result<PathBuf, MissingBinary> {
    let beside_us = std::env::current_exe().ok().and_then(|p| p.parent().map(Path::to_path_buf));
    let path_dirs = std::env::var_os("PATH").map(|p| std::env::split_paths(&p).collect::<Vec<_>>()).unwrap_or_default();
    std::iter::once(bin_dir.to_path_buf())
        .chain(beside_us)
        .chain(path_dirs)
        .map(|d| d.join(name))
        .find(|p| executable(p))
        .ok_or_else(|| MissingBinary { name: name.to_string(), bin_dir: bin_dir.to_path_buf() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_binary_says_how_to_install() {
        let err = find("no-such-binary-scaletest", Path::new("/nonexistent")).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("no-such-binary-scaletest not found in /nonexistent"), "{msg}");
        assert!(msg.contains("make upstream"), "{msg}");
    }

    #[test]
    fn finds_in_bin_dir_first() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sh");
        std::fs::write(&p, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(find("sh", dir.path()).unwrap(), p);
    }
}

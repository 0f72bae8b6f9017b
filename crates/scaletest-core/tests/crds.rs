//! The CRD YAML under `crds/` is what users of their own system under test read
//! and apply; it must match the Rust types exactly.

use std::path::PathBuf;

#[test]
fn checked_in_crds_match_the_types() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../crds");
    let update = std::env::var_os("UPDATE_CRDS").is_some();
    for crd in scaletest_core::crd::all() {
        let (file, want) = scaletest_core::crd::render(&crd);
        let path = dir.join(&file);
        if update {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(&path, &want).unwrap();
            continue;
        }
        let have = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            have == want,
            "{} drifted from crd.rs: run `UPDATE_CRDS=1 cargo test -p scaletest-core --test crds`",
            path.display()
        );
    }
}

//! What the fixture tests share: listing a fixture folder, and comparing an
//! error with its `.expected` file (rewritten instead with
//! PMDAEMON_UPDATE_EXPECTED=1, after checking the change).

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use pmdaemon_core::ecosystem::Format;

/// The ecosystem files of `tests/fixtures/<folder>/<kind>`, sorted.
pub fn fixtures(folder: &str, kind: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(folder)
        .join(kind);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| Format::of(p).is_some())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no fixtures in {}", dir.display());
    files
}

/// Asserts that `message`, the error of the fixture at `path`, is exactly
/// its `.expected` file.
pub fn assert_expected(path: &Path, message: &str) {
    let expected_path = PathBuf::from(format!("{}.expected", path.display()));
    if std::env::var_os("PMDAEMON_UPDATE_EXPECTED").is_some() {
        std::fs::write(&expected_path, message).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&expected_path)
        .unwrap_or_else(|_| panic!("{} is missing", expected_path.display()));
    assert_eq!(message, expected, "{}", path.display());
}

//! Helpers shared by the integration tests: the workspace's `testkit` (synthetic IDX files,
//! the location of the real data sets) under the names these tests use.
#![allow(dead_code, unused_imports)]

pub mod formats;

use std::path::{Path, PathBuf};

pub use testkit::idx::{gz, images as idx_images, labels as idx_labels};
pub use testkit::shared_data;

/// `n` labels cycling through the ten digits.
pub fn labels_of(n: usize) -> Vec<u8> {
    testkit::idx::cycling(n, 10)
}

/// Writes a small valid data set (gzip, 28x28, ten classes) into `dir` and returns `dir`.
pub fn write_set(dir: &Path, n_train: u32, n_test: u32) -> PathBuf {
    testkit::idx::write_set(dir, n_train, n_test, 28, 10, true);
    dir.to_path_buf()
}

/// Replaces `dir/name` with `bytes` (works on read-only copies too).
pub fn replace(dir: &Path, name: &str, bytes: &[u8]) {
    let p = dir.join(name);
    let _ = std::fs::remove_file(&p);
    std::fs::write(p, bytes).unwrap();
}

pub fn assert_err_contains(err: impl std::fmt::Display, needles: &[&str]) {
    let msg = err.to_string();
    for n in needles {
        assert!(msg.contains(n), "expected {n:?} in error: {msg}");
    }
    assert!(!msg.contains('\n'), "error should be one line: {msg}");
}

//! Helpers shared by the integration tests: synthetic IDX files and the
//! location of the real data sets.
#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};

/// Directory holding `mnist/` and `fashion-mnist/`: `<repo>/../shared/data`
/// relative to this crate, else `$APSIG_DATA_DIR`. `None` (test skipped)
/// when neither exists.
pub fn shared_data() -> Option<PathBuf> {
    let rel = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data");
    if rel.join("mnist").is_dir() {
        return Some(rel);
    }
    let env = std::env::var_os("APSIG_DATA_DIR").map(PathBuf::from)?;
    env.join("mnist").is_dir().then_some(env)
}

pub fn idx_images(n: u32, rows: u32, cols: u32) -> Vec<u8> {
    let mut v = Vec::new();
    for x in [0x803u32, n, rows, cols] {
        v.extend_from_slice(&x.to_be_bytes());
    }
    // Pseudo-random pixels so gzip output has real entropy to corrupt.
    let mut s = 0x2545_f491_u32;
    v.extend((0..n * rows * cols).map(|_| {
        s ^= s << 13;
        s ^= s >> 17;
        s ^= s << 5;
        (s >> 24) as u8
    }));
    v
}

pub fn idx_labels(labels: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&0x801u32.to_be_bytes());
    v.extend_from_slice(&(labels.len() as u32).to_be_bytes());
    v.extend_from_slice(labels);
    v
}

pub fn gz(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

pub fn labels_of(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i % 10) as u8).collect()
}

/// Writes a small valid data set (gzip) into `dir` and returns `dir`.
pub fn write_set(dir: &Path, n_train: u32, n_test: u32) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let files = [
        ("train-images-idx3-ubyte.gz", idx_images(n_train, 28, 28)),
        ("train-labels-idx1-ubyte.gz", idx_labels(&labels_of(n_train as usize))),
        ("t10k-images-idx3-ubyte.gz", idx_images(n_test, 28, 28)),
        ("t10k-labels-idx1-ubyte.gz", idx_labels(&labels_of(n_test as usize))),
    ];
    for (name, bytes) in files {
        std::fs::write(dir.join(name), gz(&bytes)).unwrap();
    }
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

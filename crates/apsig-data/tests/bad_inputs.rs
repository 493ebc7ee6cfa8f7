//! One test per kind of bad input: each error must name the file and the problem.

mod common;

use apsig_data::{load, load_dir, read_idx_images, read_idx_labels, DataOptions};
use common::*;
use std::path::Path;

fn opts() -> DataOptions {
    DataOptions::default()
}

fn load_path(dir: &Path) -> apsig_data::Result<apsig_data::Dataset> {
    load(dir.to_str().unwrap(), &opts())
}

#[test]
fn small_synthetic_set_loads() {
    let t = tempfile::tempdir().unwrap();
    let dir = write_set(&t.path().join("tiny"), 30, 7);
    let ds = load_path(&dir).unwrap();
    assert_eq!((ds.name.as_str(), ds.train.n, ds.test.n), ("tiny", 30, 7));
    assert_eq!(ds.train.num_classes(), 10);
    // Uncompressed files are accepted too, and .gz wins when both exist.
    replace(&dir, "t10k-images-idx3-ubyte", &idx_images(99, 28, 28));
    assert_eq!(load_path(&dir).unwrap().test.n, 7);
    std::fs::remove_file(dir.join("t10k-images-idx3-ubyte.gz")).unwrap();
    replace(&dir, "t10k-images-idx3-ubyte", &idx_images(7, 28, 28));
    assert_eq!(load_path(&dir).unwrap().test.n, 7);
}

#[test]
fn truncated_gz() {
    let t = tempfile::tempdir().unwrap();
    let dir = write_set(t.path(), 30, 7);
    let full = gz(&idx_images(30, 28, 28));
    replace(&dir, "train-images-idx3-ubyte.gz", &full[..full.len() / 2]);
    assert_err_contains(load_path(&dir).unwrap_err(), &["train-images-idx3-ubyte.gz", "truncated gzip"]);
    let e = read_idx_images(&dir.join("train-images-idx3-ubyte.gz")).unwrap_err();
    assert_err_contains(e, &["train-images-idx3-ubyte.gz", "gzip"]);
}

#[test]
fn corrupt_gz() {
    let t = tempfile::tempdir().unwrap();
    let dir = write_set(t.path(), 30, 7);
    let mut bytes = gz(&idx_images(30, 28, 28));
    let mid = bytes.len() / 2;
    for b in &mut bytes[mid..mid + 8] {
        *b ^= 0xa5;
    }
    replace(&dir, "train-images-idx3-ubyte.gz", &bytes);
    assert_err_contains(load_path(&dir).unwrap_err(), &["train-images-idx3-ubyte.gz", "corrupt"]);
}

#[test]
fn wrong_magic() {
    let t = tempfile::tempdir().unwrap();
    let dir = write_set(t.path(), 30, 7);
    let mut bytes = idx_images(30, 28, 28);
    bytes[..4].copy_from_slice(&[0, 0, 0, 0]);
    replace(&dir, "train-images-idx3-ubyte.gz", &gz(&bytes));
    assert_err_contains(
        load_path(&dir).unwrap_err(),
        &["train-images-idx3-ubyte.gz: bad magic 0x00000000 (expected 0x00000803 for IDX images)"],
    );
    // A labels file where images are expected gets a hint.
    let p = t.path().join("swapped");
    std::fs::write(&p, idx_labels(&[1, 2])).unwrap();
    assert_err_contains(read_idx_images(&p).unwrap_err(), &["swapped", "bad magic", "labels file"]);
}

#[test]
fn truncated_raw_payload() {
    let t = tempfile::tempdir().unwrap();
    let p = t.path().join("t10k-labels-idx1-ubyte");
    let full = idx_labels(&labels_of(10));
    std::fs::write(&p, &full[..full.len() - 3]).unwrap();
    assert_err_contains(
        read_idx_labels(&p).unwrap_err(),
        &["t10k-labels-idx1-ubyte", "truncated payload", "expected 10 bytes, found 7"],
    );
    std::fs::write(&p, &full[..6]).unwrap();
    assert_err_contains(read_idx_labels(&p).unwrap_err(), &["t10k-labels-idx1-ubyte", "truncated header"]);
    std::fs::write(&p, b"").unwrap();
    assert_err_contains(read_idx_labels(&p).unwrap_err(), &["t10k-labels-idx1-ubyte", "truncated header"]);
}

#[test]
fn trailing_bytes() {
    let t = tempfile::tempdir().unwrap();
    let dir = write_set(t.path(), 30, 7);
    let mut bytes = idx_images(7, 28, 28);
    bytes.extend_from_slice(b"junk");
    replace(&dir, "t10k-images-idx3-ubyte.gz", &gz(&bytes));
    assert_err_contains(load_path(&dir).unwrap_err(), &["t10k-images-idx3-ubyte.gz", "4 trailing bytes"]);
}

#[test]
fn image_label_count_mismatch() {
    let t = tempfile::tempdir().unwrap();
    let dir = write_set(t.path(), 30, 7);
    replace(&dir, "train-labels-idx1-ubyte.gz", &gz(&idx_labels(&labels_of(29))));
    assert_err_contains(
        load_path(&dir).unwrap_err(),
        &["train-images-idx3-ubyte.gz has 30 images", "train-labels-idx1-ubyte.gz has 29 labels", "mismatch"],
    );
}

#[test]
fn zero_dims() {
    let t = tempfile::tempdir().unwrap();
    let dir = write_set(t.path(), 30, 7);
    let mut bytes = idx_images(30, 28, 28);
    bytes[8..12].copy_from_slice(&0u32.to_be_bytes());
    replace(&dir, "train-images-idx3-ubyte.gz", &gz(&bytes));
    assert_err_contains(load_path(&dir).unwrap_err(), &["train-images-idx3-ubyte.gz", "zero dimension"]);
    replace(&dir, "train-labels-idx1-ubyte.gz", &gz(&idx_labels(&[])));
    let e = read_idx_labels(&dir.join("train-labels-idx1-ubyte.gz")).unwrap_err();
    assert_err_contains(e, &["train-labels-idx1-ubyte.gz", "zero dimension"]);
}

#[test]
fn missing_file() {
    let t = tempfile::tempdir().unwrap();
    let dir = write_set(t.path(), 30, 7);
    std::fs::remove_file(dir.join("train-labels-idx1-ubyte.gz")).unwrap();
    assert_err_contains(load_path(&dir).unwrap_err(), &["train-labels-idx1-ubyte", "missing"]);
    let e = read_idx_images(&dir.join("nope-images")).unwrap_err();
    assert_err_contains(e, &["nope-images", "cannot read"]);
}

#[test]
fn absurd_label() {
    let t = tempfile::tempdir().unwrap();
    let dir = write_set(t.path(), 30, 7);
    let mut labels = labels_of(7);
    labels[4] = 200;
    replace(&dir, "t10k-labels-idx1-ubyte.gz", &gz(&idx_labels(&labels)));
    assert_err_contains(
        load_path(&dir).unwrap_err(),
        &["t10k-labels-idx1-ubyte.gz", "label 200 at index 4", "out of range"],
    );
}

#[test]
fn train_test_shape_mismatch() {
    let t = tempfile::tempdir().unwrap();
    let dir = write_set(t.path(), 30, 7);
    replace(&dir, "t10k-images-idx3-ubyte.gz", &gz(&idx_images(7, 32, 32)));
    assert_err_contains(
        load_path(&dir).unwrap_err(),
        &["train-images-idx3-ubyte.gz is 28x28", "t10k-images-idx3-ubyte.gz is 32x32"],
    );
}

#[test]
fn unknown_name() {
    let e = load("no-such-set-xyz", &opts()).unwrap_err();
    assert_err_contains(e, &["no-such-set-xyz", "not a directory", "mnist, fashion-mnist"]);
}

#[test]
fn checksum_mismatch_for_known_name() {
    // A directory called "mnist" is verified against the published digests.
    let t = tempfile::tempdir().unwrap();
    let dir = write_set(&t.path().join("mnist"), 30, 7);
    let e = load_path(&dir).unwrap_err();
    assert_err_contains(e, &["-idx", "MD5 mismatch", "expected ", "got "]);
    let no_verify = DataOptions { verify: false, ..opts() };
    assert_eq!(load(dir.to_str().unwrap(), &no_verify).unwrap().train.n, 30);
    // Explicit verification against the table via load_dir.
    let e = load_dir(&dir, "mnist", apsig_data::known("mnist")).unwrap_err();
    assert_err_contains(e, &["MD5 mismatch"]);
}

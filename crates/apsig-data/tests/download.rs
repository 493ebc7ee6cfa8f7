//! Downloading from local mirrors: verification, fall-through, stale `.part` files.

mod common;

use apsig_data::{download, known, load_dir, KnownDataset};
use common::*;
use std::path::{Path, PathBuf};

const NAMES: [&str; 4] = [
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
];

fn mnist() -> &'static KnownDataset {
    known("mnist").unwrap()
}

/// A mirror directory holding copies of the real MNIST files, or `None` if
/// the real data is not available here.
fn good_mirror(root: &Path, name: &str) -> Option<PathBuf> {
    let Some(src) = shared_data() else {
        eprintln!("SKIPPED: real data not found");
        return None;
    };
    let m = root.join(name);
    std::fs::create_dir_all(&m).unwrap();
    for f in NAMES {
        std::fs::copy(src.join("mnist").join(f), m.join(f)).unwrap();
    }
    Some(m)
}

fn no_part_files(dest: &Path) {
    for e in std::fs::read_dir(dest).unwrap() {
        let name = e.unwrap().file_name();
        assert!(!name.to_string_lossy().ends_with(".part"), "left {name:?}");
    }
}

fn s(p: &Path) -> String {
    p.to_str().unwrap().to_string()
}

#[test]
fn from_plain_directory_and_file_url() {
    let t = tempfile::tempdir().unwrap();
    let Some(mirror) = good_mirror(t.path(), "mirror") else {
        return;
    };
    let dest = t.path().join("out").join("mnist");
    download(mnist(), &dest, &[s(&mirror)]).unwrap();
    no_part_files(&dest);
    let ds = load_dir(&dest, "mnist", Some(mnist())).unwrap();
    assert_eq!((ds.train.n, ds.test.n), (60_000, 10_000));

    let dest2 = t.path().join("out2");
    let url = format!("file://{}/", mirror.display());
    download(mnist(), &dest2, &[url]).unwrap();
    no_part_files(&dest2);
    for f in NAMES {
        assert!(dest2.join(f).is_file());
    }
}

#[test]
fn corrupted_mirror_fails_and_leaves_nothing_then_falls_through() {
    let t = tempfile::tempdir().unwrap();
    let Some(good) = good_mirror(t.path(), "good") else {
        return;
    };
    let bad = good_mirror(t.path(), "bad").unwrap();
    // Valid gzip, wrong content: only the MD5 can tell.
    let mut labels = apsig_data::read_maybe_gz(&bad.join("train-labels-idx1-ubyte.gz")).unwrap();
    labels[100] ^= 1;
    replace(&bad, "train-labels-idx1-ubyte.gz", &gz(&labels));

    let dest = t.path().join("alone");
    let e = download(mnist(), &dest, &[s(&bad)]).unwrap_err();
    assert_err_contains(&e, &["train-labels-idx1-ubyte.gz", "download failed", "bad", "MD5 mismatch"]);
    assert!(!dest.join("train-labels-idx1-ubyte.gz").exists());
    no_part_files(&dest);

    let dest = t.path().join("both");
    download(mnist(), &dest, &[s(&bad), s(&good)]).unwrap();
    no_part_files(&dest);
    load_dir(&dest, "mnist", Some(mnist())).unwrap();
}

#[test]
fn source_truncated_midway_falls_through() {
    let t = tempfile::tempdir().unwrap();
    let Some(good) = good_mirror(t.path(), "good") else {
        return;
    };
    let cut = good_mirror(t.path(), "cut").unwrap();
    let full = std::fs::read(cut.join("t10k-images-idx3-ubyte.gz")).unwrap();
    replace(&cut, "t10k-images-idx3-ubyte.gz", &full[..full.len() / 3]);
    let missing = t.path().join("does-not-exist");

    let dest = t.path().join("d");
    let e = download(mnist(), &dest, &[s(&cut), s(&missing)]).unwrap_err();
    assert_err_contains(&e, &["t10k-images-idx3-ubyte.gz", "gzip", "does-not-exist", "cannot open"]);
    assert!(!dest.join("t10k-images-idx3-ubyte.gz").exists());
    no_part_files(&dest);

    download(mnist(), &dest, &[s(&cut), s(&missing), s(&good)]).unwrap();
    no_part_files(&dest);
    load_dir(&dest, "mnist", Some(mnist())).unwrap();
}

#[test]
fn stale_part_file_is_replaced() {
    let t = tempfile::tempdir().unwrap();
    let Some(good) = good_mirror(t.path(), "good") else {
        return;
    };
    let dest = t.path().join("d");
    std::fs::create_dir_all(&dest).unwrap();
    let part = dest.join("train-images-idx3-ubyte.gz.part");
    std::fs::write(&part, b"left over from a killed run").unwrap();
    let mut perm = std::fs::metadata(&part).unwrap().permissions();
    perm.set_readonly(true);
    std::fs::set_permissions(&part, perm).unwrap();
    // A corrupt file already under the final name is replaced as well.
    std::fs::write(dest.join("t10k-labels-idx1-ubyte.gz"), b"garbage").unwrap();

    download(mnist(), &dest, &[s(&good)]).unwrap();
    no_part_files(&dest);
    load_dir(&dest, "mnist", Some(mnist())).unwrap();
}

#[test]
fn no_mirrors_is_an_error() {
    let t = tempfile::tempdir().unwrap();
    let e = download(mnist(), t.path(), &[]).unwrap_err();
    assert_err_contains(&e, &["train-images-idx3-ubyte.gz", "no mirrors"]);
}

//! The data formats through the binary: `apsig make-colour` (same seed, same bytes), a CIFAR
//! download whose archive fails its MD5, and bad user images, each a clean one-line failure.

mod common;

use common::*;
use std::path::{Path, PathBuf};

fn make_colour(home: &Path, from: &Path, out: &Path, seed: &str) -> std::process::Output {
    apsig(home).args(["make-colour", "--from", s(from), "--seed", seed, "--out", s(out)]).output().unwrap()
}

#[test]
fn make_colour_same_seed_same_bytes() {
    let t = tempfile::tempdir().unwrap();
    let grey = t.path().join("grey");
    write_idx_set(&grey, 40, 40, 0x803);
    let (a, b, c) = (t.path().join("a.npz"), t.path().join("b.npz"), t.path().join("c.npz"));
    for (out, seed) in [(&a, "5"), (&b, "5"), (&c, "6")] {
        let run = make_colour(t.path(), &grey, out, seed);
        assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
        let stdout = String::from_utf8_lossy(&run.stdout);
        assert!(stdout.contains("40 train + 5 test images, 32x32x3 uint8 NHWC"), "{stdout}");
    }
    let bytes = std::fs::read(&a).unwrap();
    assert_eq!(bytes, std::fs::read(&b).unwrap());
    assert_ne!(bytes, std::fs::read(&c).unwrap());

    // a colour source is refused, naming it, and nothing is written
    let out = t.path().join("twice.npz");
    let run = make_colour(t.path(), &a, &out, "1");
    assert_clean_failure(&run, &[s(&a), "needs grey images"]);
    assert!(!out.exists());
}

#[test]
fn cifar_download_with_a_wrong_md5_is_refused() {
    let t = tempfile::tempdir().unwrap();
    let mirror = t.path().join("mirror");
    std::fs::create_dir_all(&mirror).unwrap();
    std::fs::write(mirror.join("cifar-10-binary.tar.gz"), b"not the published archive").unwrap();
    let data = t.path().join("data");
    let out = t.path().join("out").join("m.safetensors");
    let run = apsig(t.path())
        .args(["--data-dir", s(&data), "--download", "--mirror", s(&mirror)])
        .args(["train-target", "--dataset", "cifar10", "--epochs", "1", "--out", s(&out)])
        .output()
        .unwrap();
    // tracing warns once for the failed mirror, then the one error line
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(1), "{stderr}");
    let last = stderr.lines().last().unwrap();
    for needle in [
        "error: ",
        &data.join("cifar10/cifar-10-binary.tar.gz").display().to_string(),
        "MD5 mismatch of the archive: expected c32a1d4ab5d03f1284b67883e8d87530",
    ] {
        assert!(last.contains(needle), "{needle:?} not in {last:?}");
    }
    assert_eq!(files_under(&data), Vec::<PathBuf>::new());
    assert!(!out.exists());
}

#[test]
fn undecodable_image_in_a_folder_tree() {
    let t = tempfile::tempdir().unwrap();
    let set = t.path().join("photos");
    for split in ["train", "test"] {
        std::fs::create_dir_all(set.join(split).join("cats")).unwrap();
    }
    let bad = set.join("train/cats/0.jpg");
    std::fs::write(&bad, b"\xff\xd8\xff not a jpeg").unwrap();
    std::fs::write(set.join("test/cats/0.jpg"), b"\xff\xd8\xff not a jpeg either").unwrap();
    let out = t.path().join("out").join("m.safetensors");
    let run = apsig(t.path())
        .args(["train-target", "--dataset", s(&set), "--epochs", "1", "--out", s(&out)])
        .output()
        .unwrap();
    assert_clean_failure(&run, &[s(&bad), "cannot decode image"]);
    assert_eq!(files_under(&t.path().join("out")), Vec::<PathBuf>::new());
}

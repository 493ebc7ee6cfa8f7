//! Bad input files given to the `apsig` binary: each must end in exit status 1 and a
//! single `error:` line that names the file and the problem, without a panic and without
//! leaving anything at the output path.

mod common;

use apsig::io::{write_tensors, TensorOut};
use apsig::model::Arch;
use common::*;
use std::collections::BTreeMap;
use std::path::Path;

/// `apsig train-target` on the data set directory `set`, output into `<root>/out/`;
/// asserts the clean failure and that `out/` received nothing.
fn train_target_fails(root: &Path, set: &Path, needles: &[&str]) -> String {
    let out_dir = root.join("out");
    let out = apsig(root)
        .args(["train-target", "--dataset", s(set), "--epochs", "1", "--out"])
        .arg(out_dir.join("m.safetensors"))
        .output()
        .unwrap();
    let line = assert_clean_failure(&out, needles);
    assert!(!out_dir.join("m.safetensors").exists());
    assert_eq!(files_under(&out_dir), Vec::<std::path::PathBuf>::new());
    line
}

#[test]
fn truncated_gz_data_set() {
    let t = tempfile::tempdir().unwrap();
    let set = t.path().join("mydata");
    copy_mnist(&set);
    let f = set.join("train-images-idx3-ubyte.gz");
    let bytes = std::fs::read(&f).unwrap();
    std::fs::write(&f, &bytes[..bytes.len() / 2]).unwrap();
    train_target_fails(t.path(), &set, &["mydata/train-images-idx3-ubyte.gz", "truncated gzip"]);
}

#[test]
fn corrupt_gz_data_set() {
    let t = tempfile::tempdir().unwrap();
    let set = t.path().join("mydata");
    copy_mnist(&set);
    let f = set.join("t10k-images-idx3-ubyte.gz");
    let mut bytes = std::fs::read(&f).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid..mid + 64].iter_mut().for_each(|b| *b ^= 0x5a);
    std::fs::write(&f, &bytes).unwrap();
    train_target_fails(t.path(), &set, &["mydata/t10k-images-idx3-ubyte.gz", "corrupt"]);
}

#[test]
fn wrong_magic_in_uncompressed_file() {
    let t = tempfile::tempdir().unwrap();
    let set = t.path().join("mydata");
    write_idx_set(&set, 10, 10, 0x0000_0804);
    train_target_fails(
        t.path(),
        &set,
        &["mydata/train-images-idx3-ubyte", "bad magic 0x00000804", "expected 0x00000803"],
    );
}

#[test]
fn image_label_count_mismatch() {
    let t = tempfile::tempdir().unwrap();
    let set = t.path().join("mydata");
    write_idx_set(&set, 10, 9, 0x0000_0803);
    train_target_fails(
        t.path(),
        &set,
        &[
            "count mismatch",
            "mydata/train-images-idx3-ubyte has 10 images",
            "mydata/train-labels-idx1-ubyte has 9 labels",
        ],
    );
}

#[test]
fn signatures_with_another_k_than_the_decoder() {
    let t = tempfile::tempdir().unwrap();
    let (dec, sig, ev) =
        (t.path().join("d.safetensors"), t.path().join("s.safetensors"), t.path().join("e.safetensors"));
    tiny_decoder(&dec, 4, "0123456789abcdef");
    signatures(8, 16, "0123456789abcdef").save(&sig).unwrap();
    untrained(&ev, Arch::EvalNet, 5);
    let (json, png) = (t.path().join("out/m.json"), t.path().join("out/r.png"));
    let out = apsig(t.path())
        .args(["--data-dir", s(&data_dir()), "reconstruct"])
        .args(["--decoder", s(&dec), "--signatures", s(&sig)])
        .args(["--evaluator", s(&ev), "--json", s(&json), "--png", s(&png)])
        .output()
        .unwrap();
    assert_clean_failure(&out, &[s(&sig), s(&dec), "K = 8", "K = 4"]);
    assert_eq!(files_under(&t.path().join("out")), Vec::<std::path::PathBuf>::new());
}

/// Directions and an output path for `apsig signatures`.
fn signatures_cmd(root: &Path, model: &Path) -> std::process::Command {
    let dirs = root.join("dirs.safetensors");
    apsig::directions::Directions::generate(
        &apsig::directions::DirectionConfig { strategy: apsig::directions::Strategy::Gaussian, k: 4, seed: 1 },
        apsig::nn::Shape::new(28, 28, 1),
    )
    .unwrap()
    .save(&dirs)
    .unwrap();
    let mut c = apsig(root);
    c.args(["--data-dir", s(&data_dir()), "signatures", "--model", s(model)])
        .args(["--directions", s(&dirs), "--count", "4", "--out"])
        .arg(root.join("out/s.safetensors"));
    c
}

#[test]
fn model_of_another_architecture() {
    let t = tempfile::tempdir().unwrap();
    let ev = t.path().join("evaluator.safetensors");
    untrained(&ev, Arch::EvalNet, 5);
    let out = signatures_cmd(t.path(), &ev).output().unwrap();
    assert_clean_failure(&out, &[s(&ev), "architecture", "evalnet", "targetnet-s"]);
    assert_eq!(files_under(&t.path().join("out")), Vec::<std::path::PathBuf>::new());
}

#[test]
fn model_that_is_not_safetensors() {
    let t = tempfile::tempdir().unwrap();
    let m = t.path().join("model.safetensors");
    std::fs::write(&m, b"# not a model\nthis is a text file\n").unwrap();
    let out = signatures_cmd(t.path(), &m).output().unwrap();
    assert_clean_failure(&out, &[s(&m), "not a valid safetensors file"]);
    assert_eq!(files_under(&t.path().join("out")), Vec::<std::path::PathBuf>::new());
}

#[test]
fn signature_file_with_nan_eps() {
    let t = tempfile::tempdir().unwrap();
    let sig = t.path().join("train-sigs.safetensors");
    let (n, k) = (4usize, 3usize);
    let mut eps = vec![0.5f32; n * k];
    eps[7] = f32::NAN;
    let meta = BTreeMap::from([
        ("format".to_string(), "apsig-signatures-v1".to_string()),
        ("k".to_string(), k.to_string()),
        ("dataset".to_string(), "mnist".to_string()),
        ("split".to_string(), "train".to_string()),
        ("directions".to_string(), "0123456789abcdef".to_string()),
    ]);
    let censored = vec![0u8; n * k];
    let queries = vec![10u32; n * k];
    let indices: Vec<u32> = (0..n as u32).collect();
    write_tensors(
        &sig,
        &[
            TensorOut::F32("eps", vec![n, k], &eps),
            TensorOut::U8("censored", vec![n, k], &censored),
            TensorOut::U32("queries", vec![n, k], &queries),
            TensorOut::U32("indices", vec![n], &indices),
        ],
        &meta,
    )
    .unwrap();
    let out_dir = t.path().join("out");
    let out = apsig(t.path())
        .args(["--data-dir", s(&data_dir()), "train-decoder", "--epochs", "1"])
        .args(["--signatures", s(&sig), "--out"])
        .arg(out_dir.join("d.safetensors"))
        .output()
        .unwrap();
    assert_clean_failure(&out, &[s(&sig), "eps", "non-finite", "index 7"]);
    assert_eq!(files_under(&out_dir), Vec::<std::path::PathBuf>::new());
}

#[test]
fn unknown_presets_and_losses_are_refused_with_the_choices() {
    let t = tempfile::tempdir().unwrap();
    for (cmd, choices) in [("run", "quick, paper, smoke"), ("study", "small, full, smoke")] {
        let out = apsig(t.path()).args([cmd, "--preset", "huge", "--out"]).arg(t.path().join("o")).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{cmd}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("invalid value 'huge'") && err.contains(choices), "{cmd}: {err}");
        assert!(!t.path().join("o").exists());
    }
    let out = apsig(t.path())
        .args(["train-decoder", "--signatures", "s.safetensors", "--loss", "l3", "--out"])
        .arg(t.path().join("d.safetensors"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.code() == Some(2) && err.contains("invalid value 'l3'") && err.contains("l2, l1"), "{err}");
}

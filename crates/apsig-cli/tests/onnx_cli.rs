//! `apsig signatures` on an ONNX model apsig did not make (16x16 input, 3 classes), and
//! `apsig export-onnx`.

mod common;

use apsig::model::{load_network, Arch, Classifier};
use apsig::signature::SignatureSet;
use apsig_onnx::proto::{Attr, Dim, Graph};
use apsig_onnx::OnnxClassifier;
use common::{apsig, assert_clean_failure, idx_images, s, untrained};
use std::path::Path;

fn noise(n: usize, seed: u32, scale: f32) -> Vec<f32> {
    let mut st = seed.wrapping_mul(2_654_435_761).wrapping_add(12345);
    (0..n)
        .map(|_| {
            st = st.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            ((st >> 8) as f32 / (1u32 << 24) as f32 * 2.0 - 1.0) * scale
        })
        .collect()
}

/// 16x16 input, conv 1->4 k3 stride 2 pad 1, ReLU, flatten, Gemm to 3 classes.
fn write_foreign(path: &Path) {
    let n = Dim::Param("batch".into());
    let mut g = Graph::new("foreign");
    g.input("x", &[n.clone(), Dim::Value(1), Dim::Value(16), Dim::Value(16)])
        .initializer("w1", &[4, 1, 3, 3], &noise(36, 1, 0.5))
        .initializer("b1", &[4], &noise(4, 2, 0.1))
        .initializer("w2", &[3, 256], &noise(768, 3, 0.2))
        .initializer("b2", &[3], &noise(3, 4, 0.1))
        .node(
            "Conv",
            &["x", "w1", "b1"],
            &["c"],
            &[
                ("kernel_shape", Attr::Ints(vec![3, 3])),
                ("strides", Attr::Ints(vec![2, 2])),
                ("pads", Attr::Ints(vec![1, 1, 1, 1])),
            ],
        )
        .node("Relu", &["c"], &["r"], &[])
        .node("Flatten", &["r"], &["f"], &[("axis", Attr::Int(1))])
        .node("Gemm", &["f", "w2", "b2"], &["y"], &[("transB", Attr::Int(1))])
        .output("y", &[n, Dim::Value(3)]);
    std::fs::write(path, g.to_bytes()).unwrap();
}

fn idx_labels3(n: u32) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&0x801u32.to_be_bytes());
    v.extend_from_slice(&n.to_be_bytes());
    v.extend((0..n).map(|i| (i % 3) as u8));
    v
}

#[test]
fn signatures_of_a_foreign_onnx_model() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let model = t.join("foreign.onnx");
    write_foreign(&model);
    // a 16x16 IDX data set under a name that is not a known one (no checksums)
    let data = t.join("tiny16");
    std::fs::create_dir_all(&data).unwrap();
    for (name, bytes) in [
        ("train-images-idx3-ubyte", idx_images(0x803, 6, 16, 16)),
        ("train-labels-idx1-ubyte", idx_labels3(6)),
        ("t10k-images-idx3-ubyte", idx_images(0x803, 5, 16, 16)),
        ("t10k-labels-idx1-ubyte", idx_labels3(5)),
    ] {
        std::fs::write(data.join(name), bytes).unwrap();
    }
    let dirs = t.join("dirs.safetensors");
    let out =
        apsig(t).args(["directions", "--out", s(&dirs), "--k", "8", "--side", "16", "--seed", "3"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let sigs = t.join("sigs.safetensors");
    let out = apsig(t)
        .args(["-q", "signatures", "--model", s(&model), "--directions", s(&dirs), "--out", s(&sigs)])
        .args(["--dataset", s(&data), "--split", "test", "--count", "4"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let set = SignatureSet::load(&sigs).unwrap();
    assert_eq!(set.k, 8);
    assert_eq!(set.n(), 4);
    assert_eq!(set.indices, vec![0, 1, 2, 3]);
    assert!(set.eps.iter().all(|e| e.is_finite() && *e > 0.0));
    assert!(set.queries.iter().all(|&q| q > 0));

    // directions for 28x28 do not fit the 16x16 model: refused, naming both files
    let dirs28 = t.join("dirs28.safetensors");
    let out = apsig(t).args(["directions", "--out", s(&dirs28), "--k", "4"]).output().unwrap();
    assert!(out.status.success());
    let out = apsig(t)
        .args(["-q", "signatures", "--model", s(&model), "--directions", s(&dirs28), "--out", s(&t.join("x"))])
        .args(["--dataset", s(&data), "--count", "2"])
        .output()
        .unwrap();
    assert_clean_failure(&out, &["dirs28.safetensors", "foreign.onnx", "28x28x1", "16x16x1"]);

    // a file that is not ONNX: one clean line naming it
    let junk = t.join("junk.onnx");
    std::fs::write(&junk, b"not onnx").unwrap();
    let out = apsig(t)
        .args(["-q", "signatures", "--model", s(&junk), "--directions", s(&dirs), "--out", s(&t.join("y"))])
        .args(["--dataset", s(&data), "--count", "2"])
        .output()
        .unwrap();
    assert_clean_failure(&out, &["junk.onnx"]);
}

#[test]
fn export_onnx_matches_the_safetensors_model() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let st = t.join("target.safetensors");
    untrained(&st, Arch::TargetNetS, 5);
    let onnx = t.join("target.onnx");
    let out = apsig(t).args(["export-onnx", "--model", s(&st), "--out", s(&onnx)]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let net = load_network(&st, Some(Arch::TargetNetS)).unwrap().net;
    let m = OnnxClassifier::load(&onnx).unwrap();
    let x: Vec<f32> = noise(3 * 784, 9, 0.5).into_iter().map(|v| v + 0.5).collect();
    let (a, b) = (net.forward(&x, 3), m.logits(&x, 3));
    assert!(a.iter().zip(&b).all(|(p, q)| (p - q).abs() < 1e-4), "{a:?} vs {b:?}");
}

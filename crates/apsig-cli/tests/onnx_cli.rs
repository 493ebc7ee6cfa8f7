//! `apsig signatures` on an ONNX model apsig did not make (16x16 input, 3 classes), and
//! `apsig export-onnx`.

mod common;

use apsig::model::{load_network, Arch, Classifier};
use apsig::signature::SignatureSet;
use apsig_onnx::proto::Dim;
use apsig_onnx::OnnxClassifier;
use common::{apsig, assert_clean_failure, s, untrained};
use testkit::noise;
use testkit::onnx::Foreign;

#[test]
fn signatures_of_a_foreign_onnx_model() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let model = t.join("foreign.onnx");
    Foreign::new().write(&model, Dim::Param("batch".into()));
    // a 16x16 IDX data set under a name that is not a known one (no checksums)
    let data = t.join("tiny16");
    testkit::idx::write_set(&data, 6, 5, 16, 3, false);
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

    // predicted brackets from the adversary's own (white-box) signatures of the training split
    let own = t.join("own.safetensors");
    let out = apsig(t)
        .args(["-q", "signatures", "--model", s(&model), "--directions", s(&dirs), "--out", s(&own)])
        .args(["--dataset", s(&data), "--split", "train", "--method", "white-box"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let predicted = t.join("predicted.safetensors");
    let out = apsig(t)
        .args(["-q", "signatures", "--model", s(&model), "--directions", s(&dirs), "--out", s(&predicted)])
        .args(["--dataset", s(&data), "--split", "test", "--count", "4", "--prior", s(&own)])
        .args(["--predict-group", "3", "--rel-tol", "0.1"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let p = SignatureSet::load(&predicted).unwrap();
    assert!(p.prov("starts").starts_with("predicted:"), "{:?}", p.provenance);
    assert_eq!((p.k, p.n()), (8, 4));
    // mostly the same flip points within the tolerances (1e-3 and 0.1), where both flipped
    // (a ray that leaves and re-enters the class may show each search a different first flip)
    let both: Vec<(f32, f32)> =
        (0..32).filter(|&i| set.censored[i] == 0 && p.censored[i] == 0).map(|i| (set.eps[i], p.eps[i])).collect();
    let agree = both.iter().filter(|(a, b)| b / a > 0.99 && b / a < 1.11).count();
    assert!(both.len() >= 8 && agree * 4 >= both.len() * 3, "{agree} of {both:?}");
    // the same with median checks: another prior (so another provenance), the same shape
    let checked = t.join("checked.safetensors");
    let out = apsig(t)
        .args(["-q", "signatures", "--model", s(&model), "--directions", s(&dirs), "--out", s(&checked)])
        .args(["--dataset", s(&data), "--split", "test", "--count", "4", "--prior", s(&own)])
        .args(["--predict-group", "3", "--rel-tol", "0.1", "--median-checks"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let c = SignatureSet::load(&checked).unwrap();
    assert!(c.prov("starts").starts_with("predicted-anchored:"), "{:?}", c.provenance);
    assert_eq!((c.k, c.n()), (8, 4));
    assert!(c.eps.iter().all(|e| e.is_finite() && *e > 0.0));
    for args in [&["--median-checks"][..], &["--predict-group", "0", "--median-checks"]] {
        let out = apsig(t)
            .args(["-q", "signatures", "--model", s(&model), "--directions", s(&dirs), "--out", s(&t.join("y"))])
            .args(["--dataset", s(&data), "--count", "2", "--prior", s(&own)])
            .args(args)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.contains("predict"), "{args:?}: {err}");
    }
    // a prediction needs the signatures it predicts from
    let out = apsig(t)
        .args(["-q", "signatures", "--model", s(&model), "--directions", s(&dirs), "--out", s(&t.join("z"))])
        .args(["--dataset", s(&data), "--predict-group", "3"])
        .output()
        .unwrap();
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("--prior"));

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

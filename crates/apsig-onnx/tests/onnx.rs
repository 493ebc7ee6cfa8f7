//! ONNX round trips: apsig's own TargetNet-S through the exporter and tract, a foreign model
//! written by hand, and files that must be refused with the file named.

use apsig::data::DataOptions;
use apsig::model::{Arch, Classifier};
use apsig::nn::{Network, Shape};
use apsig_onnx::proto::{Attr, Dim, Graph};
use apsig_onnx::{export_targetnet, OnnxClassifier};
use testkit::onnx::Foreign;
use testkit::{data_dir, noise};

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

#[test]
fn targetnet_round_trip_matches_apsig_on_mnist() {
    let shape = Shape::new(28, 28, 1);
    let mut net = Network::new(shape, Arch::TargetNetS.layers(shape, 10, 0), 3).unwrap();
    // non-zero biases, so that their placement is checked too
    for (i, layer) in net.params.iter_mut().enumerate() {
        if layer.len() == 2 {
            let len = layer[1].len();
            layer[1] = noise(len, 100 + i as u64, 0.1);
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("target.onnx");
    export_targetnet(&net, &path).unwrap();
    let onnx = OnnxClassifier::load(&path).unwrap();
    assert_eq!(onnx.input_shape(), shape);
    assert_eq!(onnx.num_classes(), 10);

    let data = apsig::data::load("mnist", &DataOptions { data_dir: Some(data_dir()), ..Default::default() }).unwrap();
    let n = 20;
    let x = &data.test.images[..n * 784];
    let want = net.forward(x, n);
    let got = onnx.logits(x, n);
    let d = max_abs_diff(&want, &got);
    assert!(d < 1e-4, "max |apsig - onnx| = {d}");
    // one at a time agrees with the batch, and argmax decisions match
    for i in 0..n {
        let one = onnx.logits(&x[i * 784..(i + 1) * 784], 1);
        assert!(max_abs_diff(&one, &want[i * 10..(i + 1) * 10]) < 1e-4);
        assert_eq!(apsig::argmax(&one), apsig::argmax(&want[i * 10..(i + 1) * 10]));
    }
    // many threads at once share the plan
    std::thread::scope(|s| {
        for t in 0..4 {
            let (onnx, want) = (&onnx, &want);
            s.spawn(move || {
                for i in (t..n).step_by(4) {
                    let one = onnx.logits(&x[i * 784..(i + 1) * 784], 1);
                    assert!(max_abs_diff(&one, &want[i * 10..(i + 1) * 10]) < 1e-4);
                }
            });
        }
    });
}

#[test]
fn foreign_model_matches_direct_computation() {
    let dir = tempfile::tempdir().unwrap();
    let f = Foreign::new();
    let n = 7;
    let x: Vec<f32> = noise(n * 256, 9, 0.5).into_iter().map(|v| v + 0.5).collect();
    let want: Vec<f32> = x.chunks(256).flat_map(|img| f.logits(img)).collect();
    for (file, batch) in [("symbolic.onnx", Dim::Param("batch".into())), ("one.onnx", Dim::Value(1))] {
        let path = dir.path().join(file);
        f.write(&path, batch);
        let m = OnnxClassifier::load(&path).unwrap();
        assert_eq!(m.input_shape(), Shape::new(16, 16, 1), "{file}");
        assert_eq!(m.num_classes(), 3, "{file}");
        let got = m.logits(&x, n);
        let d = max_abs_diff(&want, &got);
        assert!(d < 1e-4, "{file}: max diff {d}");
    }
}

#[test]
fn multi_channel_input_is_transposed_from_channels_last() {
    // [N,2,3,3] -> Flatten (NCHW order): the output is the input in channels-first order
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("identity.onnx");
    let mut g = Graph::new("id");
    g.input("x", &[Dim::Param("N".into()), Dim::Value(2), Dim::Value(3), Dim::Value(3)])
        .node("Flatten", &["x"], &["y"], &[("axis", Attr::Int(1))])
        .output("y", &[Dim::Param("N".into()), Dim::Value(18)]);
    std::fs::write(&path, g.to_bytes()).unwrap();
    let m = OnnxClassifier::load(&path).unwrap();
    assert_eq!(m.input_shape(), Shape::new(3, 3, 2));
    assert_eq!(m.num_classes(), 18);
    let hwc: Vec<f32> = (0..18).map(|i| i as f32).collect();
    let got = m.logits(&hwc, 1);
    let want: Vec<f32> = (0..2).flat_map(|c| (0..9).map(move |p| (p * 2 + c) as f32)).collect();
    assert_eq!(got, want);
}

#[test]
fn three_d_input_is_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nhw.onnx");
    let mut g = Graph::new("nhw");
    g.input("x", &[Dim::Param("N".into()), Dim::Value(4), Dim::Value(5)])
        .node("Flatten", &["x"], &["y"], &[("axis", Attr::Int(1))])
        .output("y", &[Dim::Param("N".into()), Dim::Value(20)]);
    std::fs::write(&path, g.to_bytes()).unwrap();
    let m = OnnxClassifier::load(&path).unwrap();
    assert_eq!(m.input_shape(), Shape::new(4, 5, 1));
    let x: Vec<f32> = (0..40).map(|i| i as f32).collect();
    assert_eq!(m.logits(&x, 2), x);
}

#[test]
fn bad_files_are_refused_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.onnx");
    std::fs::write(&junk, b"this is not a protobuf at all \xff\xff\xff\xff").unwrap();
    let e = format!("{:#}", OnnxClassifier::load(&junk).unwrap_err());
    assert!(e.contains("junk.onnx"), "{e}");
    assert!(e.contains("not a readable ONNX model"), "{e}");

    let five = dir.path().join("five.onnx");
    let dims = [Dim::Param("N".into()), Dim::Value(3), Dim::Value(8), Dim::Value(8), Dim::Value(2)];
    let mut g = Graph::new("five");
    g.input("x", &dims).node("Relu", &["x"], &["y"], &[]).output("y", &dims);
    std::fs::write(&five, g.to_bytes()).unwrap();
    let e = format!("{:#}", OnnxClassifier::load(&five).unwrap_err());
    assert!(e.contains("five.onnx"), "{e}");
    assert!(e.contains("input must be [N,C,H,W] or [N,H,W], found [N,3,8,8,2]"), "{e}");

    let missing = dir.path().join("missing.onnx");
    let e = format!("{:#}", OnnxClassifier::load(&missing).unwrap_err());
    assert!(e.contains("missing.onnx"), "{e}");

    // a 4-D output is not [N, classes]
    let spatial = dir.path().join("spatial.onnx");
    let dims = [Dim::Param("N".into()), Dim::Value(1), Dim::Value(4), Dim::Value(4)];
    let mut g = Graph::new("spatial");
    g.input("x", &dims).node("Relu", &["x"], &["y"], &[]).output("y", &dims);
    std::fs::write(&spatial, g.to_bytes()).unwrap();
    let e = format!("{:#}", OnnxClassifier::load(&spatial).unwrap_err());
    assert!(e.contains("spatial.onnx") && e.contains("output must be [N, classes]"), "{e}");
}

#[test]
fn unsupported_layers_are_refused_on_export() {
    let shape = Shape::new(28, 28, 1);
    let net = Network::new(shape, Arch::EvalNet.layers(shape, 10, 0), 1).unwrap();
    // EvalNet (padded convs) exports fine; a decoder (transposed convs) does not
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("eval.onnx");
    export_targetnet(&net, &p).unwrap();
    let m = OnnxClassifier::load(&p).unwrap();
    let x: Vec<f32> = noise(3 * 784, 5, 0.5).into_iter().map(|v| v + 0.5).collect();
    assert!(max_abs_diff(&m.logits(&x, 3), &net.forward(&x, 3)) < 1e-4);
    let dshape = Shape::flat(16);
    let dec = Network::new(dshape, Arch::Decoder.layers(shape, 0, 4), 1).unwrap();
    let e = format!("{:#}", export_targetnet(&dec, dir.path().join("dec.onnx")).unwrap_err());
    assert!(e.contains("dec.onnx") && e.contains("no ONNX export"), "{e}");
}

//! `apsig run` on the user's own models: ONNX classifiers exported by PyTorch (committed
//! fixtures apsig did not train) as the target M and as the evaluator, end to end; reruns
//! that reuse or redo the signature stages by the model file's contents; and models that do
//! not fit the data, refused in one line naming the file with nothing written.

mod common;

use apsig::pipeline::RunConfig;
use apsig::signature::SignatureSet;
use apsig_onnx::proto::{Attr, Dim, Graph};
use common::{apsig, assert_clean_failure, data_dir, files_under, s};
use serde_json::Value;
use std::path::Path;
use testkit::onnx::fixture;

/// A small run: 1,200 adversary images, 60 secrets, K = 16, a short decoder training.
fn small_config(dir: &Path, dataset: &str) -> std::path::PathBuf {
    let mut c = RunConfig::smoke(1);
    c.dataset = dataset.to_string();
    c.train_limit = 1200;
    c.directions.k = 16;
    c.test_signatures.count = 60;
    c.decoder.train.epochs = 8;
    let path = dir.join("small.toml");
    std::fs::write(&path, c.to_toml()).unwrap();
    path
}

fn metrics(run: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(run.join("metrics.json")).unwrap()).unwrap()
}

fn stage_seconds(m: &Value, stage: &str) -> f64 {
    m["stage_seconds"].as_array().unwrap().iter().find(|t| t["stage"] == stage).unwrap()["seconds"].as_f64().unwrap()
}

fn sha256(p: &Path) -> String {
    apsig::io::sha256_hex(&std::fs::read(p).unwrap())
}

#[test]
fn grey_onnx_target_and_onnx_evaluator_end_to_end() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let cfg = small_config(t, "mnist");
    let run = t.join("run");
    let (target, judge) = (fixture("grey-target.onnx"), fixture("grey-evaluator.onnx"));
    let go = |model: &Path| {
        let out = apsig(t)
            .args(["-q", "--data-dir", s(&data_dir()), "run", "--config", s(&cfg), "--out", s(&run)])
            .args(["--model", s(model), "--evaluator", s(&judge)])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    let stdout = go(&target);
    assert!(stdout.contains("grey-target.onnx") && stdout.contains("grey-evaluator.onnx"), "{stdout}");

    let m = metrics(&run);
    for (role, file) in [("target", &target), ("evaluator", &judge)] {
        let r = &m["models"][role];
        assert_eq!(r["user_supplied"], true, "{role}");
        assert_eq!(r["file"], s(file), "{role}");
        assert_eq!(r["sha256"], sha256(file), "{role}");
    }
    assert_eq!(m["models"]["target"]["description"], "ONNX, NCHW [N,1,28,28] input");
    assert_eq!(m["models"]["evaluator"]["description"], "ONNX, NHWC [N,28,28,1] input");
    // the PyTorch models are good MNIST classifiers (a wrong layout would not be)
    assert!(m["target_test_accuracy"].as_f64().unwrap() > 0.9, "{}", m["target_test_accuracy"]);
    assert!(m["evaluator_test_accuracy"].as_f64().unwrap() > 0.9, "{}", m["evaluator_test_accuracy"]);
    // the attack worked on the foreign model: signatures by the white-box route for the
    // adversary's data and by change bits for the secrets, a decoder that beats the mean image
    assert_eq!(m["train_signatures"]["method"], "white-box");
    assert_eq!(m["test_signatures"]["method"], "change-bit");
    assert_eq!(m["test_signatures"]["images"], 60);
    let (dec, global) = (m["decoder"]["mse"].as_f64().unwrap(), m["global_mean_baseline"]["mse"].as_f64().unwrap());
    assert!(dec < global, "decoder MSE {dec} vs global-mean {global}");
    // apsig trained no model of its own; the report names the user's files and hashes
    assert!(!run.join("target.safetensors").exists() && !run.join("evaluator.safetensors").exists());
    let report = std::fs::read_to_string(run.join("report.md")).unwrap();
    assert!(report.contains("user-supplied") && report.contains(&sha256(&target)), "{report}");
    let recon = apsig::io::TensorFile::read(&run.join("reconstructions-test.safetensors")).unwrap();
    assert_eq!(recon.u32("indices", Some(&[60])).unwrap().1, (0..60).collect::<Vec<u32>>());
    assert_eq!(recon.f32("reconstructions", Some(&[60, 784])).unwrap().0, vec![60, 784]);

    // the same contents under another name: every signature stage is reused
    let copy = t.join("renamed.onnx");
    std::fs::copy(&target, &copy).unwrap();
    let before = SignatureSet::load(&run.join("signatures-test.safetensors")).unwrap();
    go(&copy);
    let m = metrics(&run);
    assert_eq!(stage_seconds(&m, "train signatures"), 0.0);
    assert_eq!(stage_seconds(&m, "test signatures"), 0.0);
    assert_eq!(m["models"]["target"]["file"], s(&copy));
    assert_eq!(SignatureSet::load(&run.join("signatures-test.safetensors")).unwrap().eps, before.eps);

    // the same path with other contents (the evaluator's, attacked as the target): measured again
    std::fs::copy(&judge, &copy).unwrap();
    go(&copy);
    let m = metrics(&run);
    assert!(stage_seconds(&m, "train signatures") > 0.0);
    assert!(stage_seconds(&m, "test signatures") > 0.0);
    assert_eq!(m["models"]["target"]["sha256"], sha256(&judge));
    let after = SignatureSet::load(&run.join("signatures-test.safetensors")).unwrap();
    assert_eq!(after.prov("model"), format!("onnx sha256:{}", sha256(&judge)));
    assert_ne!(after.eps, before.eps);

    // query-curve finds the user's models through metrics.json, and notices a changed file
    let curve = |t: &Path| {
        apsig(t).args(["-q", "--data-dir", s(&data_dir()), "query-curve", "--run", s(&run), "--images", "8"]).output()
    };
    let out = curve(t).unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(run.join("quality-vs-queries.json").exists());
    std::fs::copy(&target, &copy).unwrap();
    assert_clean_failure(&curve(t).unwrap(), &["renamed.onnx", "changed since the run", &sha256(&judge)]);
}

/// A colour MNIST image folder `root/{train,test}/<digit>/<i>.png` (32x32 RGB): the first
/// `train` and `test` images of each MNIST split, painted as the colour fixtures were trained.
fn colour_image_folder(root: &Path, train: usize, test: usize) {
    let mnist =
        apsig::data::load("mnist", &apsig::data::DataOptions { data_dir: Some(data_dir()), ..Default::default() })
            .unwrap();
    for (name, split, n, seed) in [("train", &mnist.train, train, 5), ("test", &mnist.test, test, 6)] {
        let colour = testkit::onnx::colour_mnist(&split.images[..n * 784], n, seed);
        for (i, img) in colour.chunks(32 * 32 * 3).enumerate() {
            let bytes: Vec<u8> = img.iter().map(|v| (v * 255.0).round() as u8).collect();
            let dir = root.join(name).join(split.labels[i].to_string());
            std::fs::create_dir_all(&dir).unwrap();
            image::RgbImage::from_raw(32, 32, bytes).unwrap().save(dir.join(format!("{i:05}.png"))).unwrap();
        }
    }
}

#[test]
fn colour_onnx_target_and_onnx_evaluator_on_an_image_folder_end_to_end() {
    // the README's one command: the user's own images (a PNG folder tree), the user's models
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let images = t.join("images");
    colour_image_folder(&images, 1200, 200);
    // colour needs a little more than grey to beat the mean image: K = 24, a longer decoder
    let mut c: RunConfig = apsig::io::read_toml(&small_config(t, "mnist")).unwrap();
    c.directions.k = 24;
    c.decoder.train.epochs = 24;
    let cfg = t.join("colour.toml");
    std::fs::write(&cfg, c.to_toml()).unwrap();
    let run = t.join("runs/mine");
    let (target, judge) = (fixture("colour-target.onnx"), fixture("colour-evaluator.onnx"));
    let out = apsig(t)
        .args(["-q", "run", "--dataset", s(&images), "--model", s(&target), "--evaluator", s(&judge)])
        .args(["--config", s(&cfg), "--out", s(&run)])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let m = metrics(&run);
    assert_eq!(m["models"]["target"]["description"], "ONNX, NCHW [N,3,32,32] input");
    assert_eq!(m["models"]["evaluator"]["description"], "ONNX, NHWC [N,32,32,3] input");
    for (role, file) in [("target", &target), ("evaluator", &judge)] {
        assert_eq!(m["models"][role]["user_supplied"], true, "{role}");
        assert_eq!(m["models"][role]["sha256"], sha256(file), "{role}");
    }
    // folder classes "0".."9" sort into the digits' order: the models' labels line up
    assert!(m["target_test_accuracy"].as_f64().unwrap() > 0.8, "{}", m["target_test_accuracy"]);
    assert!(m["evaluator_test_accuracy"].as_f64().unwrap() > 0.8, "{}", m["evaluator_test_accuracy"]);
    assert_eq!(m["test_signatures"]["images"], 60);
    let (dec, global) = (m["decoder"]["mse"].as_f64().unwrap(), m["global_mean_baseline"]["mse"].as_f64().unwrap());
    assert!(dec < global, "decoder MSE {dec} vs global-mean {global}");
    let recon = apsig::io::TensorFile::read(&run.join("reconstructions-test.safetensors")).unwrap();
    assert_eq!(recon.f32("reconstructions", None).unwrap().0, vec![60, 32, 32, 3]);
    assert_eq!(recon.u32("indices", Some(&[60])).unwrap().1, (0..60).collect::<Vec<u32>>());
    assert!(!run.join("target.safetensors").exists() && !run.join("evaluator.safetensors").exists());
    let report = std::fs::read_to_string(run.join("report.md")).unwrap();
    assert!(report.contains("user-supplied") && report.contains(&sha256(&judge)), "{report}");
}

/// An ONNX model with input `[N, input...]` that flattens and maps to `classes` outputs.
fn write_model(path: &Path, input: &[i64], classes: i64) {
    let n = Dim::Param("N".into());
    let features: i64 = input.iter().product();
    let mut dims = vec![n.clone()];
    dims.extend(input.iter().map(|&d| Dim::Value(d)));
    let w: Vec<f32> = testkit::noise((features * classes) as usize, 3, 0.1);
    let mut g = Graph::new("user");
    g.input("x", &dims)
        .initializer("w", &[features as usize, classes as usize], &w)
        .node("Flatten", &["x"], &["f"], &[("axis", Attr::Int(1))])
        .node("MatMul", &["f", "w"], &["y"], &[])
        .output("y", &[n, Dim::Value(classes)]);
    std::fs::write(path, g.to_bytes()).unwrap();
}

/// An ONNX model whose output is its input image `[N,1,28,28]`, not `[N, classes]`.
fn write_image_to_image(path: &Path) {
    let dims = [Dim::Param("N".into()), Dim::Value(1), Dim::Value(28), Dim::Value(28)];
    let mut g = Graph::new("denoiser");
    g.input("x", &dims).node("Relu", &["x"], &["y"], &[]).output("y", &dims);
    std::fs::write(path, g.to_bytes()).unwrap();
}

#[test]
fn models_that_do_not_fit_are_refused_in_one_line_with_nothing_written() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    // a small 28x28 IDX set with labels 0..9
    let data = t.join("digits");
    testkit::idx::write_set(&data, 40, 10, 28, 10, false);
    let cfg = small_config(t, s(&data));
    let good = fixture("grey-target.onnx");
    let five = t.join("five-classes.onnx");
    write_model(&five, &[1, 28, 28], 5);
    let spatial = t.join("spatial-output.onnx");
    write_image_to_image(&spatial);
    let junk = t.join("junk.onnx");
    std::fs::write(&junk, b"\x08\x01 not a model").unwrap();
    let colour = (fixture("colour-target.onnx"), fixture("colour-evaluator.onnx"));
    let missing = t.join("missing.onnx");
    let cases: Vec<(&str, &Path, Vec<&str>)> = vec![
        ("--model", &colour.0, vec!["colour-target.onnx", "32x32x3", "NCHW [N,3,32,32]", "28x28x1"]),
        ("--evaluator", &colour.1, vec!["colour-evaluator.onnx", "evaluator", "32x32x3", "28x28x1"]),
        ("--model", &five, vec!["five-classes.onnx", "5 outputs", "10 classes"]),
        ("--evaluator", &five, vec!["five-classes.onnx", "5 outputs", "10 classes"]),
        ("--model", &spatial, vec!["spatial-output.onnx", "output must be [N, classes]"]),
        ("--evaluator", &junk, vec!["junk.onnx", "not a readable ONNX model"]),
        ("--model", &missing, vec!["missing.onnx", "no such file"]),
    ];
    // a direction strategy that needs apsig's own differentiable network
    let mut adversarial: RunConfig = apsig::io::read_toml(&cfg).unwrap();
    adversarial.directions.strategy = apsig::directions::Strategy::Adversarial;
    let adversarial_cfg = t.join("adversarial.toml");
    std::fs::write(&adversarial_cfg, adversarial.to_toml()).unwrap();
    let run = t.join("run");
    let out = apsig(t)
        .args(["-q", "run", "--config", s(&adversarial_cfg), "--out", s(&run), "--model", s(&good)])
        .output()
        .unwrap();
    assert_clean_failure(&out, &["grey-target.onnx", "`adversarial`", "user-supplied target"]);
    assert!(!run.exists());
    for (flag, model, needles) in cases {
        let run = t.join("run");
        let other = if flag == "--model" { "--evaluator" } else { "--model" };
        let out = apsig(t)
            .args(["-q", "run", "--config", s(&cfg), "--out", s(&run), flag, s(model), other, s(&good)])
            .output()
            .unwrap();
        assert_clean_failure(&out, &needles);
        assert!(!run.exists(), "{flag} {}: wrote {:?}", model.display(), files_under(&run));
    }
}

#[test]
fn reconstruct_writes_reconstructions_with_indices_judged_by_an_onnx_evaluator() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let (dec, sigs_path) = (t.join("dec.safetensors"), t.join("te.safetensors"));
    common::tiny_decoder(&dec, 6, "dirs");
    // secrets 5..13 of the test split, out of order: the file keeps the signatures' order
    let mut sigs = common::signatures(6, 8, "dirs");
    sigs.indices = vec![12, 5, 9, 6, 11, 7, 10, 8];
    sigs.save(&sigs_path).unwrap();
    let json = t.join("q.json");
    let out = apsig(t)
        .args(["--data-dir", s(&data_dir()), "reconstruct", "--decoder", s(&dec), "--signatures", s(&sigs_path)])
        .args(["--evaluator", s(&fixture("grey-evaluator.onnx")), "--json", s(&json)])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // default: beside the signatures
    let f = apsig::io::TensorFile::read(&t.join("te.reconstructions.safetensors")).unwrap();
    assert_eq!(f.u32("indices", Some(&[8])).unwrap().1, sigs.indices);
    let want = apsig::decoder::Decoder::load(&dec).unwrap().reconstruct(&sigs).unwrap();
    assert_eq!(f.f32("reconstructions", Some(&[8, 784])).unwrap().1, want);
    let q: Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert!((0.0..=1.0).contains(&q["class_recovery"].as_f64().unwrap()), "{q}");

    // --out elsewhere; an evaluator for other images: one line, nothing written
    let elsewhere = t.join("out/recon.safetensors");
    let out = apsig(t)
        .args(["--data-dir", s(&data_dir()), "reconstruct", "--decoder", s(&dec), "--signatures", s(&sigs_path)])
        .args(["--evaluator", s(&fixture("colour-evaluator.onnx")), "--out", s(&elsewhere)])
        .output()
        .unwrap();
    assert_clean_failure(&out, &["colour-evaluator.onnx", "32x32x3", "28x28x1"]);
    assert!(!t.join("out").exists());
}

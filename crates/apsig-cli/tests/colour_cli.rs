//! A colour data set through the whole CLI at smoke size: `apsig make-colour` paints a tiny
//! grey IDX set into a 32x32x3 `.npz`, `apsig run` attacks it, and the artefacts are colour:
//! reconstructions `[n, 32, 32, 3]`, RGB figures, colour errors in `metrics.json`; then
//! `apsig train-decoder --palette` learns the benchmark's palette and `apsig reconstruct`
//! decides the colours with it.

mod common;

use apsig::io::TensorFile;
use apsig::pipeline::RunConfig;
use common::{apsig, s};

/// A grey IDX set of 28x28 white squares on black, placed by class (4 classes) and jittered:
/// painted by make-colour, each image is exactly two palette colours.
fn write_squares(dir: &std::path::Path, train: u32, test: u32) {
    std::fs::create_dir_all(dir).unwrap();
    for (prefix, n) in [("train", train), ("t10k", test)] {
        let mut images: Vec<u8> =
            [testkit::idx::IMAGES_MAGIC, n, 28, 28].iter().flat_map(|v| v.to_be_bytes()).collect();
        for i in 0..n as usize {
            let (class, jitter) = (i % 4, (i / 4) % 3);
            let (top, left) = (3 + 9 * (class / 2) + jitter, 3 + 9 * (class % 2) + jitter);
            images.extend((0..28 * 28).map(|p| {
                let (y, x) = (p / 28, p % 28);
                if (top..top + 10).contains(&y) && (left..left + 10).contains(&x) {
                    255
                } else {
                    0
                }
            }));
        }
        std::fs::write(dir.join(format!("{prefix}-images-idx3-ubyte")), images).unwrap();
        let labels = testkit::idx::labels(&testkit::idx::cycling(n as usize, 4));
        std::fs::write(dir.join(format!("{prefix}-labels-idx1-ubyte")), labels).unwrap();
    }
}

#[test]
fn a_colour_npz_runs_end_to_end() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let grey = t.join("grey28");
    write_squares(&grey, 160, 40);
    let npz = t.join("colour.npz");
    let out = apsig(t).args(["make-colour", "--from", s(&grey), "--out", s(&npz), "--seed", "2"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    let mut cfg = RunConfig::smoke(3);
    cfg.dataset = s(&npz).to_string();
    cfg.train_limit = 0;
    cfg.target.epochs = 1;
    cfg.evaluator.epochs = 1;
    cfg.directions.k = 8;
    cfg.test_signatures.count = 0;
    cfg.decoder.width = 4;
    cfg.decoder.train.epochs = 2;
    cfg.fig3_class = 1;
    let cfg_path = t.join("tiny.toml");
    std::fs::write(&cfg_path, cfg.to_toml()).unwrap();
    let run = t.join("run");
    let out = apsig(t).args(["-q", "run", "--config", s(&cfg_path), "--out", s(&run)]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    let recon = TensorFile::read(&run.join("reconstructions-test.safetensors")).unwrap();
    assert_eq!(recon.f32("reconstructions", None).unwrap().0, vec![40, 32, 32, 3]);
    let metrics: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("metrics.json")).unwrap()).unwrap();
    let colour = &metrics["colour"];
    assert_eq!(colour["images"].as_u64(), Some(40), "{metrics}");
    for key in ["foreground_error", "background_error", "baseline_foreground_error", "baseline_background_error"] {
        let v = colour[key].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&v), "{key} = {v}");
    }
    let report = std::fs::read_to_string(run.join("report.md")).unwrap();
    assert!(report.contains("images 32x32x3") && report.contains("### Colours"), "{report}");
    let fig = image::load_from_memory(&std::fs::read(run.join("fig2.png")).unwrap()).unwrap().to_rgb8();
    let coloured = fig.pixels().filter(|p| p.0[0].abs_diff(p.0[1]) > 60 || p.0[1].abs_diff(p.0[2]) > 60).count();
    assert!(coloured > 500, "fig2.png has {coloured} colour pixels");

    // a decoder with a palette, trained and used by the stage commands
    let dec = t.join("palette-decoder.safetensors");
    let (train_sigs, test_sigs) = (run.join("signatures-train.safetensors"), run.join("signatures-test.safetensors"));
    let out = apsig(t)
        .args(["-q", "train-decoder", "--palette", "--epochs", "1", "--width", "4", "--dataset", s(&npz)])
        .args(["--signatures", s(&train_sigs), "--out", s(&dec)])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let decoder = apsig::decoder::Decoder::load(&dec).unwrap();
    let palette = decoder.palette.as_ref().expect("--palette stores the palette");
    // make-colour paints with the eight corners of the RGB cube
    assert_eq!(palette.len(), 8, "{palette:?}");
    assert!(palette.colours().iter().all(|v| *v < 0.01 || *v > 0.99), "{palette:?}");
    let recons = t.join("r.safetensors");
    let out = apsig(t)
        .args(["-q", "reconstruct", "--decoder", s(&dec), "--signatures", s(&test_sigs), "--dataset", s(&npz)])
        .args(["--evaluator", s(&run.join("evaluator.safetensors")), "--out", s(&recons)])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let written = TensorFile::read(&recons).unwrap().f32("reconstructions", None).unwrap().1;
    let sigs = apsig::signature::SignatureSet::load(&test_sigs).unwrap();
    assert_eq!(written, decoder.reconstruct(&sigs).unwrap(), "reconstruct decides with the stored palette");
    assert_ne!(written, decoder.reconstruct_mean(&sigs).unwrap());
}

#[test]
fn directions_take_any_image_shape_and_refuse_a_bad_one() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let dirs = t.join("d.safetensors");
    let out = apsig(t)
        .args(["directions", "--out", s(&dirs), "--k", "5", "--strategy", "low-frequency", "--shape", "30x26x3"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let d = apsig::directions::Directions::load(&dirs).unwrap();
    assert_eq!(d.shape, apsig::nn::Shape::new(30, 26, 3));
    for bad in ["32x32x2", "32x32", "0x4x1", "axbxc"] {
        let out = apsig(t).args(["directions", "--out", s(&t.join("x.safetensors")), "--shape", bad]).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{bad}: clap refuses it");
        assert!(String::from_utf8_lossy(&out.stderr).contains(bad), "{bad}");
        assert!(!t.join("x.safetensors").exists());
    }
}

//! A colour data set through the whole CLI at smoke size: `apsig make-colour` paints a tiny
//! grey IDX set into a 32x32x3 `.npz`, `apsig run` attacks it, and the artefacts are colour:
//! reconstructions `[n, 32, 32, 3]`, RGB figures, colour errors in `metrics.json`.

mod common;

use apsig::io::TensorFile;
use apsig::pipeline::RunConfig;
use common::{apsig, s};

#[test]
fn a_colour_npz_runs_end_to_end() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let grey = t.join("grey28");
    testkit::idx::write_set(&grey, 160, 40, 28, 4, false);
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

//! Images of any H x W x C through the whole pipeline at smoke size: a colour data set the
//! test draws (shapes in one palette colour on a background of another, padded like
//! Colour-MNIST) and a greyscale one whose sides are not multiples of 4. Checks the artefacts'
//! shapes, that the figures are colour PNGs, that the colour metric is reported (with the
//! palette decision and the network's undecided output beside it), and that the
//! study runs every block on colour images. The class guide reads M when apsig trained it and
//! a critic of the adversary's own otherwise.

use apsig::data::{Dataset, Split};
use apsig::decoder::Decoder;
use apsig::io::TensorFile;
use apsig::model::{load_network, SuppliedModel};
use apsig::nn::Shape;
use apsig::pipeline::{run_loaded, run_loaded_with, RunConfig, UserModels};
use apsig::rng::Rng;
use apsig::study::{DatasetStudy, StudyConfig};
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

const PALETTE: [[f32; 3]; 6] =
    [[0.9, 0.1, 0.1], [0.1, 0.8, 0.2], [0.2, 0.3, 0.9], [0.95, 0.9, 0.2], [0.1, 0.1, 0.1], [0.9, 0.9, 0.9]];

/// Whether pixel `(y, x)` of an `h x w` image (2 px border kept clear) is ink for `class`.
fn ink(class: usize, y: usize, x: usize, h: usize, w: usize, shift: (usize, usize)) -> bool {
    let (cy, cx) = ((h / 2 + shift.0).saturating_sub(1), (w / 2 + shift.1).saturating_sub(1));
    let (dy, dx) = (y.abs_diff(cy), x.abs_diff(cx));
    let r = h.min(w) / 2 - 4;
    let inside = y >= 2 && x >= 2 && y + 2 < h && x + 2 < w;
    inside
        && match class {
            0 => dy <= r && dx <= r,                           // filled square
            1 => (dy <= 1 && dx <= r) || (dx <= 1 && dy <= r), // plus
            2 => dy.max(dx) <= r && dy.max(dx) + 2 > r,        // ring
            _ => dy == dx && dy <= r,                          // diagonal cross
        }
}

/// `n` images of four classes; each image gets its own foreground and background colours.
fn split(n: usize, image: Shape, seed: u64) -> Split {
    let mut rng = Rng::new(seed);
    let (mut images, mut labels) = (Vec::with_capacity(n * image.len()), Vec::with_capacity(n));
    for i in 0..n {
        let class = i % 4;
        let fg = PALETTE[rng.below(PALETTE.len())];
        let bg = loop {
            let b = PALETTE[rng.below(PALETTE.len())];
            if b != fg {
                break b;
            }
        };
        let shift = (rng.below(3), rng.below(3));
        for y in 0..image.h {
            for x in 0..image.w {
                let on = ink(class, y, x, image.h, image.w, shift);
                match image.c {
                    1 => images.push(if on { 0.9 } else { 0.05 }),
                    _ => images.extend_from_slice(if on { &fg } else { &bg }),
                }
            }
        }
        labels.push(class as u8);
    }
    Split { images, labels, n, rows: image.h, cols: image.w, channels: image.c }
}

fn dataset(name: &str, image: Shape) -> Dataset {
    Dataset {
        name: name.into(),
        dir: "synthetic".into(),
        train: split(1200, image, 1),
        test: split(120, image, 2),
        source: "drawn by the test".into(),
        classes: vec![],
    }
}

fn tiny_config() -> RunConfig {
    let mut c = RunConfig::smoke(5);
    c.train_limit = 0;
    c.target.epochs = 2;
    c.evaluator.epochs = 3;
    c.directions.k = 16;
    c.test_signatures.count = 80;
    c.decoder.width = 8;
    c.decoder.train.epochs = 30;
    c.fig3_class = 1;
    c
}

fn png_pixels(path: &Path) -> image::RgbImage {
    let bytes = std::fs::read(path).unwrap();
    assert_eq!(&bytes[1..4], b"PNG", "{} is not a PNG", path.display());
    image::load_from_memory(&bytes).unwrap().to_rgb8()
}

#[test]
fn colour_images_run_end_to_end() {
    let image = Shape::new(32, 32, 3);
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = tiny_config();
    cfg.decoder.palette = true;
    let m = run_loaded(&cfg, dataset("colour-shapes", image), Instant::now(), dir.path(), &apsig::NoProgress).unwrap();
    eprintln!("{}", serde_json::to_string_pretty(&m).unwrap());
    // the reconstructions are 32x32x3 and the decoder paints that shape
    let recon = TensorFile::read(&dir.path().join("reconstructions-test.safetensors")).unwrap();
    let (shape, values) = recon.f32("reconstructions", None).unwrap();
    assert_eq!(shape, vec![80, 32, 32, 3]);
    assert!(values.iter().all(|v| (0.0..=1.0).contains(v)));
    let decoder = Decoder::load(&dir.path().join("decoder.safetensors")).unwrap();
    assert_eq!(decoder.image_shape(), image);
    // the palette was learnt from the training images, stored with the decoder, and decided the
    // colours of the reconstructions written; the network's own output is scored beside them
    let palette = decoder.palette.as_ref().expect("decoder.palette = true");
    assert_eq!(palette.len(), PALETTE.len());
    for colour in palette.colours().chunks_exact(3) {
        assert!(PALETTE.iter().any(|p| p.iter().zip(colour).all(|(a, b)| (a - b).abs() < 1e-6)), "{colour:?}");
    }
    let undecided = m.undecided.as_ref().expect("the network's output is scored too");
    assert!(undecided.colour.is_some() && undecided.decoder.mse.is_finite(), "{undecided:?}");
    assert_ne!(undecided.decoder.mse, m.decoder.mse, "the decision changed the reconstructions");
    // the metrics, the colour ones included, are measured and plausible
    assert!(m.target_test_accuracy > 0.8 && m.evaluator_test_accuracy > 0.6, "{m:?}");
    let c = m.colour.as_ref().expect("colour metrics on colour data");
    assert_eq!((c.images, c.skipped), (80, 0));
    for v in [c.foreground_error, c.background_error, c.baseline_foreground_error, c.baseline_background_error] {
        assert!(v.is_finite() && (0.0..=1.0).contains(&v), "{c:?}");
    }
    assert!(c.baseline_background_error > 0.1, "random palette colours are far from their mean: {c:?}");
    // the network learnt something (at smoke size its decided colours need not pay in MSE)
    assert!(undecided.decoder.mse < m.global_mean_baseline.mse, "{m:?}");
    let report = std::fs::read_to_string(dir.path().join("report.md")).unwrap();
    assert!(report.contains("images 32x32x3") && report.contains("### Colours"), "{report}");
    assert!(report.contains("*Colours decided*") && report.matches("colours undecided").count() == 2, "{report}");
    let json = std::fs::read_to_string(dir.path().join("metrics.json")).unwrap();
    assert!(json.contains("\"baseline_foreground_error\""));
    // the decision turned off in the same directory: the network is reused, not retrained, and
    // the run's reconstructions are its undecided output
    cfg.decoder.palette = false;
    let again =
        run_loaded(&cfg, dataset("colour-shapes", image), Instant::now(), dir.path(), &apsig::NoProgress).unwrap();
    assert_eq!(again.decoder_train.resumed_from_epoch, cfg.decoder.train.epochs, "the decoder was retrained");
    assert!(
        again.undecided.is_none() && Decoder::load(&dir.path().join("decoder.safetensors")).unwrap().palette.is_none()
    );
    assert_eq!(again.decoder.mse, undecided.decoder.mse);
    // and on again: the palette is learnt anew, the network still reused
    cfg.decoder.palette = true;
    let on = run_loaded(&cfg, dataset("colour-shapes", image), Instant::now(), dir.path(), &apsig::NoProgress).unwrap();
    assert_eq!(on.decoder_train.resumed_from_epoch, cfg.decoder.train.epochs);
    assert_eq!(on.decoder.mse, m.decoder.mse);
    // the figures are colour: some image pixels have channels that differ
    for fig in ["fig2.png", "fig3.png"] {
        let img = png_pixels(&dir.path().join(fig));
        let coloured = img.pixels().filter(|p| p.0[0].abs_diff(p.0[1]) > 60 || p.0[1].abs_diff(p.0[2]) > 60).count();
        assert!(coloured > 500, "{fig}: {coloured} colour pixels");
    }
}

#[test]
fn colour_copies_with_permuted_channels_are_measured_and_named() {
    let image = Shape::new(16, 16, 3);
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = tiny_config();
    cfg.train_signatures.permute_channels = true;
    let e = run_loaded(&cfg, dataset("colour-16", image), Instant::now(), dir.path(), &apsig::NoProgress).unwrap_err();
    assert!(e.to_string().contains("set augment to 1 or more"), "{e}");
    assert!(!dir.path().join("config.toml").exists(), "nothing written");
    cfg.train_signatures.augment = 1;
    let copies = |dir: &Path| {
        let set = apsig::signature::SignatureSet::load(&dir.join("signatures-train.safetensors")).unwrap();
        (set.n(), set.prov("copies").to_string())
    };
    let m = run_loaded(&cfg, dataset("colour-16", image), Instant::now(), dir.path(), &apsig::NoProgress).unwrap();
    assert_eq!(m.train_signatures.images, 2 * 1200);
    assert_eq!(copies(dir.path()), (2400, "1 affine, channels permuted".to_string()));
    assert!(m.decoder.mse < m.global_mean_baseline.mse, "{m:?}");
    // the same number of pairs without the swaps is another set: measured again, not reused
    cfg.train_signatures.permute_channels = false;
    run_loaded(&cfg, dataset("colour-16", image), Instant::now(), dir.path(), &apsig::NoProgress).unwrap();
    assert_eq!(copies(dir.path()), (2400, "1 affine".to_string()));
    let mut bad = cfg.clone();
    bad.test_signatures.permute_channels = true;
    let e = run_loaded(&bad, dataset("colour-16", image), Instant::now(), dir.path(), &apsig::NoProgress).unwrap_err();
    assert!(e.to_string().contains("secrets cannot be augmented"), "{e}");
}

#[test]
fn greyscale_images_whose_sides_are_not_multiples_of_four_run_end_to_end() {
    let image = Shape::new(30, 26, 1);
    let dir = tempfile::tempdir().unwrap();
    // with an affine copy of each training image among the adversary's pairs
    let mut cfg = tiny_config();
    cfg.train_signatures.augment = 1;
    let m = run_loaded(&cfg, dataset("grey-30x26", image), Instant::now(), dir.path(), &apsig::NoProgress).unwrap();
    assert_eq!(m.train_signatures.images, 2 * 1200);
    // and the secrets searched with predicted brackets (the presets' groups of 10 over K = 16)
    assert_eq!(cfg.predict_group, 10);
    assert!(m.test_signatures.queries_per_eps < 8.0, "{:?}", m.test_signatures);
    let mut bad = cfg.clone();
    bad.test_signatures.augment = 1;
    let e = run_loaded(&bad, dataset("grey-30x26", image), Instant::now(), dir.path(), &apsig::NoProgress).unwrap_err();
    assert!(e.to_string().contains("secrets cannot be augmented"), "{e}");
    let recon = TensorFile::read(&dir.path().join("reconstructions-test.safetensors")).unwrap();
    assert_eq!(recon.f32("reconstructions", None).unwrap().0, vec![80, 30 * 26]);
    assert_eq!(Decoder::load(&dir.path().join("decoder.safetensors")).unwrap().image_shape(), image);
    assert!(m.colour.is_none() && m.undecided.is_none());
    assert!(m.decoder.mse < m.global_mean_baseline.mse && m.decoder.ssim.is_finite(), "{m:?}");
    let fig = png_pixels(&dir.path().join("fig2.png"));
    assert!(fig.pixels().all(|p| p.0[0] == p.0[1] && p.0[1] == p.0[2]), "a greyscale grid stays grey");
}

#[test]
fn train_and_test_images_of_different_shapes_are_refused() {
    let mut data = dataset("mixed", Shape::new(16, 16, 3));
    data.test = split(8, Shape::new(16, 16, 1), 3);
    let dir = tempfile::tempdir().unwrap();
    let e = run_loaded(&tiny_config(), data, Instant::now(), &dir.path().join("run"), &apsig::NoProgress)
        .unwrap_err()
        .to_string();
    assert!(e.contains("mixed") && e.contains("16x16x3") && e.contains("16x16x1"), "{e}");
    assert!(!dir.path().join("run").exists(), "nothing written");
}

#[test]
fn the_study_runs_every_block_on_colour_images() {
    let mut cfg = StudyConfig::smoke(3);
    cfg.classifier_images = 0;
    let dir = tempfile::tempdir().unwrap();
    let study =
        DatasetStudy::prepare(&cfg, dataset("colour-16", Shape::new(16, 16, 3)), dir.path(), &apsig::NoProgress)
            .unwrap();
    let d = study.run_all().unwrap();
    for s in &cfg.strategies {
        assert!(d.cells.iter().any(|c| c.group == "strategy" && c.variant == s.name()), "{s}");
    }
    for v in ["change-bit", "label", "score-vector"] {
        assert!(d.cells.iter().any(|c| c.group == "oracle" && c.variant == v), "oracle {v}");
    }
    assert!(d.cells.iter().all(|c| c.quality.mse.is_finite() && c.quality.ssim.is_finite()));
    assert_eq!(d.attributes.attributes.len(), 2);
    assert!(d.attributes.attributes.iter().all(|a| a.pearson.is_finite()), "{:?}", d.attributes);
}

#[test]
fn the_class_guide_reads_m_or_a_critic_of_the_adversarys_own() {
    let image = Shape::new(16, 16, 3);
    let mut cfg = tiny_config();
    cfg.decoder.class_weight = 0.05;
    let report = |dir: &Path| std::fs::read_to_string(dir.join("report.md")).unwrap();
    // apsig trains M, so M guides: no critic of its own
    let own = tempfile::tempdir().unwrap();
    let m = run_loaded(&cfg, dataset("colour-16", image), Instant::now(), own.path(), &apsig::NoProgress).unwrap();
    assert!(m.decoder.mse < m.global_mean_baseline.mse, "{m:?}");
    assert!(!own.path().join("critic.safetensors").exists());
    assert!(m.models.critic.is_none() && m.critic_test_accuracy.is_none());
    assert!(report(own.path()).contains("class guide (weight 0.05, noise 0): M, which the adversary owns"));
    // the user's target has no gradients here: the adversary trains a critic of its own
    let net = load_network(&own.path().join("target.safetensors"), None).unwrap().net;
    let target = SuppliedModel {
        classifier: Arc::new(net),
        file: own.path().join("target.safetensors"),
        sha256: "test".into(),
        description: "apsig's own target, handed in as the user's".into(),
    };
    let models = UserModels { target: Some(target), evaluator: None };
    let user = tempfile::tempdir().unwrap();
    let data = || dataset("colour-16", image);
    let m = run_loaded_with(&cfg, &models, data(), Instant::now(), user.path(), &apsig::NoProgress).unwrap();
    assert!(user.path().join("critic.safetensors").exists());
    assert!(m.stage_seconds.iter().any(|t| t.stage == "train critic"), "{:?}", m.stage_seconds);
    // metrics.json and the report's model table name the critic, its file and its accuracy
    let critic = m.models.critic.as_ref().expect("the critic's record");
    let bytes = std::fs::read(user.path().join("critic.safetensors")).unwrap();
    assert_eq!(critic.sha256, apsig::io::sha256_hex(&bytes));
    assert!(!critic.user_supplied && critic.description.starts_with("targetnet-s"), "{critic:?}");
    let accuracy = m.critic_test_accuracy.expect("the critic's accuracy");
    assert!((0.0..=1.0).contains(&accuracy));
    let text = report(user.path());
    assert!(text.contains(&format!("`critic.safetensors`, test accuracy {:.2}%", 100.0 * accuracy)), "{text}");
    assert!(text.contains("| class guide's critic | trained by apsig |") && text.contains(&critic.sha256), "{text}");
    // without the guide the critic guided nothing, and goes
    cfg.decoder.class_weight = 0.0;
    run_loaded_with(&cfg, &models, data(), Instant::now(), user.path(), &apsig::NoProgress).unwrap();
    assert!(!user.path().join("critic.safetensors").exists());
    assert!(!report(user.path()).contains("class guide"));
}

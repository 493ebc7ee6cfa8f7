//! A small end-to-end run on the real MNIST files: asserts measured facts, not shapes.

use apsig::data::DataOptions;
use apsig::pipeline::{run, RunConfig};

fn data_opts() -> DataOptions {
    DataOptions { data_dir: Some(testkit::data_dir()), ..Default::default() }
}

#[test]
fn smoke_run_reconstructs_better_than_the_global_mean() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = RunConfig::smoke(7);
    let m = run(&cfg, dir.path(), &data_opts(), &apsig::NoProgress).unwrap();
    eprintln!("{}", serde_json::to_string_pretty(&m).unwrap());
    assert!(m.target_test_accuracy > 0.95, "target accuracy {}", m.target_test_accuracy);
    assert!(m.evaluator_test_accuracy > 0.93);
    assert_eq!(m.test_signatures.images, 200);
    assert_eq!(m.train_signatures.images, 8000);
    // the attack works: better than knowing nothing, and the class is mostly recovered
    assert!(
        m.decoder.mse < 0.9 * m.global_mean_baseline.mse,
        "decoder {} vs global mean {}",
        m.decoder.mse,
        m.global_mean_baseline.mse
    );
    assert!(m.decoder.class_recovery > 0.6, "class recovery {}", m.decoder.class_recovery);
    assert!(m.global_mean_baseline.class_recovery < 0.3);
    // the specific secret comes back far above chance; one image for everyone identifies at
    // most the one secret nearest to it
    let id = m.decoder.identification.expect("identification measured");
    assert!((id.chance_overall - 1.0 / 200.0).abs() < 1e-12);
    assert!(id.overall > 20.0 * id.chance_overall, "identified {} vs chance {}", id.overall, id.chance_overall);
    assert!(id.within_class >= id.overall && id.within_class > id.chance_within_class);
    assert!(m.global_mean_baseline.identification.is_some_and(|b| b.overall <= 1.0 / 200.0));
    // the secret's route spent queries, and the accounting is plausible
    assert!(m.test_signatures.queries_per_eps > 2.0 && m.test_signatures.queries_per_eps < 40.0);
    for f in [
        "config.toml",
        "metrics.json",
        "report.md",
        "fig1.png",
        "fig2.png",
        "fig3.png",
        "target.safetensors",
        "decoder.safetensors",
        "signatures-test.safetensors",
    ] {
        assert!(dir.path().join(f).is_file(), "{f} missing");
    }
    let report = std::fs::read_to_string(dir.path().join("report.md")).unwrap();
    assert!(report.contains("![Fig. 2](fig2.png)") && report.contains("class-mean baseline"));
    assert!(report.contains("| identified |") && report.contains("Chance: 0.500%"), "{report}");

    // rerunning into the same directory reuses every finished artefact, trains and measures
    // nothing, and gives the same numbers
    let decoder_file = dir.path().join("decoder.safetensors");
    let written = std::fs::metadata(&decoder_file).unwrap().modified().unwrap();
    let again = run(&cfg, dir.path(), &data_opts(), &apsig::NoProgress).unwrap();
    assert_eq!(again.test_signatures.queries_per_image, m.test_signatures.queries_per_image);
    assert_eq!(again.decoder.mse, m.decoder.mse);
    for st in again.stage_seconds.iter().filter(|s| s.stage.starts_with("train") || s.stage.ends_with("signatures")) {
        assert_eq!(st.seconds, 0.0, "stage `{}` ran again on a rerun", st.stage);
    }
    assert_eq!(again.decoder_train.resumed_from_epoch, again.decoder_train.epochs);
    assert_eq!(std::fs::metadata(&decoder_file).unwrap().modified().unwrap(), written, "decoder rewritten");
}

#[test]
fn same_seed_and_config_write_byte_identical_artefacts() {
    // smaller than smoke: identity, not quality, is the point
    let mut cfg = RunConfig::smoke(3);
    cfg.train_limit = 1500;
    cfg.target.epochs = 1;
    cfg.evaluator.epochs = 1;
    cfg.directions.k = 8;
    cfg.test_signatures.count = 100;
    cfg.decoder.train.epochs = 2;
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    run(&cfg, a.path(), &data_opts(), &apsig::NoProgress).unwrap();
    run(&cfg, b.path(), &data_opts(), &apsig::NoProgress).unwrap();
    let mut compared = 0;
    for entry in std::fs::read_dir(a.path()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "safetensors") {
            let twin = b.path().join(path.file_name().unwrap());
            assert!(std::fs::read(&path).unwrap() == std::fs::read(&twin).unwrap(), "{} differs", path.display());
            compared += 1;
        }
    }
    assert!(compared >= 7, "only {compared} safetensors files compared");
}

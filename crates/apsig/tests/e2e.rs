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

    // rerunning into the same directory reuses every finished artefact and gives the same numbers
    let again = run(&cfg, dir.path(), &data_opts(), &apsig::NoProgress).unwrap();
    assert_eq!(again.test_signatures.queries_per_image, m.test_signatures.queries_per_image);
    assert_eq!(again.decoder.mse, m.decoder.mse);
}

//! `apsig compare` on real runs: a reference run and a candidate that differs only in its
//! decoder (run into a copy of the reference, so the earlier stages are reused), scored again
//! secret by secret to the figures the runs reported; `run --seed` over a config; and the
//! inputs compare refuses in one line.

mod common;

use apsig::pipeline::RunConfig;
use common::{apsig, assert_clean_failure, data_dir, s};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// 1,200 adversary images, `secrets` secrets, K = 12, a short decoder training.
fn config(dir: &Path, name: &str, secrets: usize, decoder_seed: u64) -> PathBuf {
    let mut c = RunConfig::smoke(1);
    c.train_limit = 1200;
    c.directions.k = 12;
    c.test_signatures.count = secrets;
    c.decoder.train.epochs = 4;
    c.decoder.train.seed = decoder_seed;
    let path = dir.join(name);
    std::fs::write(&path, c.to_toml()).unwrap();
    path
}

fn run(home: &Path, cfg: &Path, out: &Path, extra: &[&str]) {
    let o = apsig(home)
        .args(["-q", "--data-dir", s(&data_dir()), "run", "--config", s(cfg), "--out", s(out)])
        .args(extra)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

fn json(p: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
}

#[test]
fn a_decoder_change_is_compared_on_the_same_secrets() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let (reference, candidate) = (t.join("ref"), t.join("cand"));
    run(t, &config(t, "a.toml", 60, 2001), &reference, &[]);
    std::fs::create_dir_all(&candidate).unwrap();
    for f in ["target", "evaluator", "directions", "signatures-train", "signatures-test"] {
        let f = format!("{f}.safetensors");
        std::fs::copy(reference.join(&f), candidate.join(&f)).unwrap();
    }
    run(t, &config(t, "b.toml", 60, 2002), &candidate, &[]);
    let stage = |m: &Value, name: &str| {
        m["stage_seconds"].as_array().unwrap().iter().find(|x| x["stage"] == name).unwrap()["seconds"].as_f64().unwrap()
    };
    assert_eq!(stage(&json(&candidate.join("metrics.json")), "test signatures"), 0.0, "signatures reused");

    let (md, out_json) = (t.join("ab.md"), t.join("ab.json"));
    let o = apsig(t)
        .args(["--data-dir", s(&data_dir()), "compare", "--reference", s(&reference), "--candidate", s(&candidate)])
        .args(["--out", s(&md), "--json", s(&out_json)])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let stdout = String::from_utf8(o.stdout).unwrap();
    assert_eq!(std::fs::read_to_string(&md).unwrap(), stdout);
    for needle in ["Winner on MSE:", "Winner on identified:", "Winner on class recovery:", "| 60 |"] {
        assert!(stdout.contains(needle), "{needle:?} not in {stdout}");
    }
    let c = json(&out_json);
    let pair = &c["pairs"][0];
    assert_eq!(pair["secrets"], 60);
    assert_eq!(pair["same_evaluator"], true);
    for (side, dir) in [(0, &reference), (1, &candidate)] {
        let reported = json(&dir.join("metrics.json"))["test_signatures"]["queries_per_image"].as_f64().unwrap();
        assert!((pair["queries_per_secret"][side].as_f64().unwrap() - reported).abs() < 1e-9, "{pair}");
    }
    // compare's own scoring gives back what each run reported
    for (side, dir) in [("reference", &reference), ("candidate", &candidate)] {
        let m = json(&dir.join("metrics.json"));
        let d = &pair["differences"];
        let got = [d[0][side].as_f64().unwrap(), d[1][side].as_f64().unwrap(), d[2][side].as_f64().unwrap()];
        let reported = [
            m["decoder"]["mse"].as_f64().unwrap(),
            m["decoder"]["identification"]["overall"].as_f64().unwrap(),
            m["decoder"]["class_recovery"].as_f64().unwrap(),
        ];
        for (g, r) in got.iter().zip(reported) {
            assert!((g - r).abs() < 1e-6, "{side}: {got:?} against metrics.json {reported:?}");
        }
    }
    let diff = &pair["differences"][0];
    let (est, low, high) = (
        diff["interval"]["estimate"].as_f64().unwrap(),
        diff["interval"]["low"].as_f64().unwrap(),
        diff["interval"]["high"].as_f64().unwrap(),
    );
    assert!(low <= est && est <= high, "{diff}");
    assert!((est - (diff["candidate"].as_f64().unwrap() - diff["reference"].as_f64().unwrap())).abs() < 1e-9);

    // the same config at another seed: every seed moves together; other secrets are refused
    let seeded = t.join("seed3");
    run(t, &config(t, "c.toml", 40, 2001), &seeded, &["--seed", "3"]);
    let c: RunConfig = apsig::io::read_toml(&seeded.join("config.toml")).unwrap();
    assert_eq!((c.directions.seed, c.target.seed, c.evaluator.seed, c.decoder.train.seed), (3, 3, 1003, 2003));
    let refuse = |args: &[&str], needles: &[&str]| {
        let o = apsig(t).args(["-q", "--data-dir", s(&data_dir()), "compare"]).args(args).output().unwrap();
        assert_clean_failure(&o, needles);
    };
    refuse(&["--reference", s(&reference), "--candidate", s(&seeded)], &["different secrets", s(&seeded)]);
    refuse(
        &["--reference", s(&reference), "--candidate", s(&candidate), s(&seeded)],
        &["1 reference runs but 2 candidate runs"],
    );
    let empty = t.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    refuse(&["--reference", s(&reference), "--candidate", s(&empty)], &[s(&empty), "not a run directory"]);
    std::fs::remove_file(candidate.join("reconstructions-test.safetensors")).unwrap();
    refuse(&["--reference", s(&reference), "--candidate", s(&candidate)], &["reconstructions-test.safetensors"]);
}

//! `apsig study` end to end at smoke scale on both real data sets: every default strategy, oracle
//! variant and defence has its row, the numbers obey their own accounting, the report and
//! figures are written, and a rerun resumes from the finished blocks.

use apsig::data::DataOptions;
use apsig::study::{self, StudyConfig};

#[test]
fn smoke_study_has_every_row_and_resumes() {
    let data = DataOptions { data_dir: Some(testkit::data_dir()), ..Default::default() };
    let mut cfg = StudyConfig::smoke(3);
    cfg.datasets = vec!["mnist".into(), "fashion-mnist".into()];
    cfg.comparison_seeds = vec![4];
    let dir = tempfile::tempdir().unwrap();
    let s = study::run(&cfg, dir.path(), &data, &apsig::NoProgress).unwrap();
    assert_eq!(s.datasets.len(), 2);
    let md = std::fs::read_to_string(dir.path().join("study.md")).unwrap();
    assert!(md.contains("### Label-only baselines at equal queries") && md.contains("re-implemented here"));
    assert!(md.contains("HopSkipJump") && md.contains("| boundary distance |"), "{md}");
    assert!(md.contains("95% paired bootstrap intervals"), "the comparison has intervals: {md}");
    assert!(md.contains("| seed 3 | seed 4 | winner |"), "one interval per seed: {md}");
    // against the baselines too, on all three measures
    assert!(md.contains("minus each baseline on the same secrets") && md.contains("| 30 | flip-rate |"), "{md}");
    assert!(md.contains("Class recovery difference, points (positive: apsig recovers"), "{md}");
    assert!(md.contains("Each strategy minus Gaussian on the same secrets"), "strategies have intervals: {md}");
    assert!(md.contains("| low-frequency | to completion |") && md.contains("| rademacher | cap "), "{md}");
    assert!(md.contains("Class recovery difference, points (positive: the strategy"), "{md}");
    // the oracles and the defences have intervals too, each against its undefended reference
    assert!(md.contains("Each oracle minus the change bit") && md.contains("| label | change-bit |"), "{md}");
    assert!(md.contains("Each defended attack minus the undefended one"), "{md}");
    assert!(md.contains("| random-answers 0.1, 3 votes | none |") && md.contains("| round-scores 1 | score-vector |"));
    for d in &s.datasets {
        let has = |group: &str, variant: &str| d.cells.iter().any(|c| c.group == group && c.variant == variant);
        for st in &cfg.strategies {
            assert!(has("strategy", st.name()) && has("strategy@budget", st.name()), "{}: {st}", d.dataset);
            assert!(md.contains(&format!("| {} |", st.name())));
        }
        for v in ["change-bit", "label", "score-vector"] {
            assert!(has("oracle", v), "{}: oracle {v}", d.dataset);
        }
        for v in ["none", "query-budget", "random-answers", "input-noise", "smooth-training", "round-scores"] {
            assert!(has("defence", v), "{}: defence {v}", d.dataset);
        }
        let rounded: Vec<_> = d.cells.iter().filter(|c| c.variant == "round-scores").collect();
        assert_eq!(rounded.len(), cfg.round_scores.len());
        assert!(rounded.iter().all(|c| c.queries_per_image == 1.0 && c.k == 0), "{rounded:?}");
        assert_eq!(d.cells.iter().filter(|c| c.group == "k").count(), cfg.k_sweep.len());
        assert_eq!(d.cells.iter().filter(|c| c.group == "train-size").count(), cfg.train_sizes.len());
        for c in &d.cells {
            let q = &c.quality;
            assert!(q.mse.is_finite() && q.ssim.is_finite() && (0.0..=1.0).contains(&q.class_recovery), "{c:?}");
            assert!(c.queries_per_image > 0.0 && c.clean_accuracy > 0.0 && c.latency_ratio > 0.0, "{c:?}");
            if c.variant == "query-budget" || c.group == "strategy@budget" {
                assert!(c.queries_per_image <= c.knob, "a budget cell spent more than its cap: {c:?}");
            }
            if c.group == "strategy@budget" {
                // equal queries: every strategy spends its cap, less at most one refused round
                assert!(c.queries_per_image >= c.knob - c.k as f64, "{c:?}");
            }
        }
        // the flip-rate baseline at every budget, spending at most (and nearly) the budget
        let flip: Vec<_> = d.cells.iter().filter(|c| c.group == "baseline" && c.variant == "flip-rate").collect();
        assert_eq!(flip.len(), cfg.budgets.len());
        for c in &flip {
            assert!(c.queries_per_image <= c.knob && c.queries_per_image > c.knob - 8.0, "{c:?}");
            assert_eq!(c.secrets, cfg.defence_secrets);
        }
        // the boundary-distance baseline at every budget, within it; the compared cells keep
        // each secret's outcome, and those agree with the cell's averages
        let boundary: Vec<_> =
            d.cells.iter().filter(|c| c.group == "baseline" && c.variant == "boundary-distance").collect();
        assert_eq!(boundary.len(), cfg.budgets.len());
        for c in d.cells.iter().filter(|c| apsig::study::Cell::compared(&c.group)) {
            if c.group == "baseline" || c.variant == "query-budget" {
                assert!(c.queries_per_image <= c.knob, "{c:?}");
            }
            let p = c.per_secret.as_ref().unwrap_or_else(|| panic!("no per-secret outcomes: {c:?}"));
            assert_eq!((p.mse.len(), p.identified.len(), p.class_recovered.len()), (c.secrets, c.secrets, c.secrets));
            assert_eq!(p.mse.iter().sum::<f64>() / c.secrets as f64, c.quality.mse, "{c:?}");
            let recovered = p.class_recovered.iter().filter(|&&b| b).count() as f64 / c.secrets as f64;
            assert!((recovered - c.quality.class_recovery).abs() < 1e-6, "{c:?}");
        }
        assert!(d.cells.iter().filter(|c| c.group == "k" || c.group == "train-size").all(|c| c.per_secret.is_none()));
        // the predicted search names its tolerance, one of the ladder, never coarser at a larger budget
        let tols: Vec<f32> = d
            .cells
            .iter()
            .filter(|c| c.variant == "predicted-search")
            .map(|c| c.rel_tol.expect("the predicted search names its tolerance") as f32)
            .collect();
        assert_eq!(tols.len(), cfg.budgets.len());
        assert!(tols.iter().all(|t| cfg.predicted_tolerances().contains(t)), "{tols:?}");
        assert!(tols.windows(2).all(|w| w[1] <= w[0]), "{tols:?}");
        let slug = d.dataset.replace(|ch: char| !ch.is_ascii_alphanumeric() && ch != '-', "-");
        for m in ["mse", "identified"] {
            assert!(dir.path().join(format!("study-baselines-{slug}-{m}.png")).is_file(), "{slug} {m}");
        }
        // the comparison again at seed 4: its own models, every compared cell, other numbers
        assert_eq!(d.replicates.len(), 1);
        let r = &d.replicates[0];
        assert_eq!(r.seed, 4);
        let compared = |cells: &[apsig::study::Cell]| {
            cells.iter().filter(|c| c.per_secret.is_some()).map(|c| (c.variant.clone(), c.knob)).collect::<Vec<_>>()
        };
        assert_eq!(compared(&r.cells), compared(&d.cells));
        assert_eq!(r.cells.len(), compared(&r.cells).len(), "a replicate holds compared cells only");
        assert!(r.cells.iter().any(|c| c.group == "oracle") && r.cells.iter().any(|c| c.variant == "random-answers"));
        assert_ne!(r.target_accuracy, d.target_accuracy);
        let score = d.cells.iter().find(|c| c.variant == "score-vector").unwrap();
        assert_eq!(score.queries_per_image, 1.0);
        // voting costs exactly `votes` times the queries of each answer
        let ra: Vec<_> = d.cells.iter().filter(|c| c.variant == "random-answers").collect();
        let (one, three) = (ra.iter().find(|c| c.votes == 1).unwrap(), ra.iter().find(|c| c.votes == 3).unwrap());
        assert!(three.queries_per_image > 2.0 * one.queries_per_image);
        // lying costs the defender accuracy; input noise of 0.3 per pixel does too
        let none = d.cells.iter().find(|c| c.variant == "none").unwrap();
        assert!(one.clean_accuracy < none.clean_accuracy);
        // even at smoke scale the signature predicts the class far above chance
        assert!(d.attributes.class_accuracy > d.attributes.class_chance + 0.2, "{:?}", d.attributes);
    }
    for f in ["study.json", "study.toml", "study-k.png", "study-defence-cost-mnist.png", "study-random-answers.png"] {
        assert!(dir.path().join(f).is_file(), "{f} missing");
    }

    // the report renders again from study.json alone, identically
    let md_before = std::fs::read_to_string(dir.path().join("study.md")).unwrap();
    study::rerender(dir.path()).unwrap();
    assert_eq!(md_before, std::fs::read_to_string(dir.path().join("study.md")).unwrap());

    // a rerun reuses every finished block and reports the same rows
    let again = study::run(&cfg, dir.path(), &data, &apsig::NoProgress).unwrap();
    for (a, b) in s.datasets.iter().zip(&again.datasets) {
        // the rerun's rows come back from JSON: compare after the same round trip
        let fresh: serde_json::Value = serde_json::from_str(&serde_json::to_string(&a.cells).unwrap()).unwrap();
        assert_eq!(fresh, serde_json::to_value(&b.cells).unwrap());
        let fresh: serde_json::Value = serde_json::from_str(&serde_json::to_string(&a.replicates).unwrap()).unwrap();
        assert_eq!(fresh, serde_json::to_value(&b.replicates).unwrap(), "the seeds' blocks are reused too");
    }

    // a resume may drop or add strategies, but not change what the finished rows measured:
    // that is refused before anything is trained, naming the rows
    let mut fewer = cfg.clone();
    fewer.strategies.truncate(2);
    let resumed = study::run(&fewer, dir.path(), &data, &apsig::NoProgress).unwrap();
    assert_eq!(resumed.datasets[0].target_accuracy, s.datasets[0].target_accuracy);
    let toml_before = std::fs::read_to_string(dir.path().join("study.toml")).unwrap();
    let mut other = cfg.clone();
    other.secrets += 1;
    let err = study::run(&other, dir.path(), &data, &apsig::NoProgress).unwrap_err().to_string();
    assert!(
        err.contains(&dir.path().display().to_string()) && err.contains("measured under another study config"),
        "{err}"
    );
    assert_eq!(std::fs::read_to_string(dir.path().join("study.toml")).unwrap(), toml_before, "study.toml rewritten");
}

//! Defences on the change oracle, against a linear two-class classifier whose flip point
//! along each direction is known exactly: what each defence does to the answers, what it
//! costs the attacker in queries, and that every draw is reproducible.

use apsig::defence::Defence;
use apsig::directions::{DirectionConfig, Directions, Strategy};
use apsig::model::Classifier;
use apsig::nn::Shape;
use apsig::oracle::{ChangeOracle, LocalOracle, Probe};
use apsig::signature::{signature_via_oracle, MajorityVote, SearchConfig};
use apsig::Error;
use std::sync::Arc;

/// Logits `[0, w.x - 1]`: class 1 iff `w.x > 1`.
struct Linear {
    w: Vec<f32>,
}

impl Classifier for Linear {
    fn input_shape(&self) -> Shape {
        Shape::new(4, 4, 1)
    }
    fn num_classes(&self) -> usize {
        2
    }
    fn logits(&self, x: &[f32], n: usize) -> Vec<f32> {
        x.chunks(16).take(n).flat_map(|v| [0.0, v.iter().zip(&self.w).map(|(a, b)| a * b).sum::<f32>() - 1.0]).collect()
    }
}

fn setup() -> (Arc<dyn Classifier>, Directions, Vec<f32>) {
    let model: Arc<dyn Classifier> = Arc::new(Linear { w: vec![1.0; 16] });
    let dirs =
        Directions::generate(&DirectionConfig { strategy: Strategy::Gaussian, k: 8, seed: 4 }, Shape::new(4, 4, 1))
            .unwrap();
    (model, dirs, vec![0.0; 16]) // the secret sits at w.x = 0, class 0
}

/// eps at which direction j flips the linear classifier, or None if it never does (w.d <= 0).
fn flip_point(dirs: &Directions, j: usize) -> Option<f32> {
    let s: f32 = dirs.get(j).iter().sum();
    (s > 0.0).then(|| 1.0 / s)
}

fn probes(dirs: &Directions, reps: usize) -> Vec<Probe> {
    (0..reps).flat_map(|_| (0..dirs.k() as u32).map(|dir| Probe { dir, eps: 0.5 })).collect()
}

#[test]
fn random_answers_lie_at_the_configured_rate_and_reproducibly() {
    let (model, dirs, secret) = setup();
    let truth =
        LocalOracle::new(model.clone(), &secret, None).unwrap().changed_along(&dirs, &probes(&dirs, 500)).unwrap();
    let ask = |seed| {
        let o = LocalOracle::defended(model.clone(), &secret, None, Defence::RandomAnswers { p: 0.2 }, seed).unwrap();
        o.changed_along(&dirs, &probes(&dirs, 500)).unwrap()
    };
    let a = ask(7);
    let lies = a.iter().zip(&truth).filter(|(x, y)| x != y).count() as f64 / a.len() as f64;
    assert!((lies - 0.2).abs() < 0.03, "lie rate {lies}");
    assert_eq!(a, ask(7), "same seed, same answers");
    assert_ne!(a, ask(8));
}

#[test]
fn majority_vote_undoes_most_lies_and_pays_for_every_vote() {
    let (model, dirs, secret) = setup();
    let ps = probes(&dirs, 200);
    let truth = LocalOracle::new(model.clone(), &secret, None).unwrap().changed_along(&dirs, &ps).unwrap();
    let lied = LocalOracle::defended(model.clone(), &secret, None, Defence::RandomAnswers { p: 0.2 }, 3).unwrap();
    let voter = MajorityVote::new(&lied, 5).unwrap();
    let a = voter.changed_along(&dirs, &ps).unwrap();
    let wrong = a.iter().zip(&truth).filter(|(x, y)| x != y).count() as f64 / a.len() as f64;
    // P(3 or more of 5 lies at p = 0.2) = 0.058
    assert!(wrong < 0.1, "error rate after voting {wrong}");
    assert_eq!(lied.queries(), 5 * ps.len() as u64);
    assert!(MajorityVote::new(&lied, 4).is_err());

    // the search's accounting includes the votes
    let o = LocalOracle::defended(model, &secret, None, Defence::RandomAnswers { p: 0.05 }, 3).unwrap();
    let voter = MajorityVote::new(&o, 3).unwrap();
    let out = signature_via_oracle(&voter, &dirs, &[0.5; 8], &SearchConfig::plain(64.0)).unwrap();
    assert_eq!(out.iter().map(|e| e.queries as u64).sum::<u64>(), o.queries());
    assert!(out.iter().all(|e| e.queries % 3 == 0));
}

#[test]
fn a_query_budget_refuses_whole_batches_and_the_search_keeps_its_estimates() {
    let (model, dirs, secret) = setup();
    let o = LocalOracle::defended(model.clone(), &secret, None, Defence::QueryBudget { cap: 20 }, 0).unwrap();
    assert!(o.changed_along(&dirs, &probes(&dirs, 2)).is_ok());
    assert!(matches!(o.changed_along(&dirs, &probes(&dirs, 1)), Err(Error::Budget(20))));
    assert_eq!(o.queries(), 16, "a refused batch is not counted");

    let cap = 40;
    let o = LocalOracle::defended(model.clone(), &secret, None, Defence::QueryBudget { cap }, 0).unwrap();
    let cfg = SearchConfig::plain(64.0);
    let out = signature_via_oracle(&o, &dirs, &[0.5; 8], &cfg).unwrap();
    assert!(o.queries() <= cap);
    let free = signature_via_oracle(&LocalOracle::new(model, &secret, None).unwrap(), &dirs, &[0.5; 8], &cfg).unwrap();
    assert!(free.iter().map(|e| e.queries).sum::<u32>() > cap as u32);
    for (j, e) in out.iter().enumerate() {
        match flip_point(&dirs, j) {
            // a bracketed estimate lies within the doubling bracket of the true flip
            Some(t) if !e.censored => assert!(e.eps >= t / 2.0 && e.eps <= 2.0 * t, "dir {j}: {} vs {t}", e.eps),
            Some(t) => assert!(e.eps < t),
            None => assert!(e.censored),
        }
    }
}

#[test]
fn input_noise_blurs_the_flip_point_and_is_reproducible() {
    let (model, dirs, secret) = setup();
    let j = (0..8).find(|&j| flip_point(&dirs, j).is_some_and(|t| t < 10.0)).expect("a flipping direction");
    let t = flip_point(&dirs, j).unwrap();
    let near: Vec<Probe> = (0..400).map(|_| Probe { dir: j as u32, eps: 0.9 * t }).collect();
    let ask = |sigma, seed| {
        let o = LocalOracle::defended(model.clone(), &secret, None, Defence::InputNoise { sigma }, seed).unwrap();
        o.changed_along(&dirs, &near).unwrap()
    };
    let clean = ask(0.0, 1);
    assert!(clean.iter().all(|b| !b), "just below the flip point: no change without noise");
    let noisy = ask(0.3, 1);
    let changed = noisy.iter().filter(|b| **b).count();
    assert!(changed > 20 && changed < 380, "noise should make answers near the flip point random: {changed}/400");
    assert_eq!(noisy, ask(0.3, 1));
}

#[test]
fn bad_defences_are_refused() {
    let (model, _, secret) = setup();
    for d in [
        Defence::RandomAnswers { p: 0.5 },
        Defence::InputNoise { sigma: f32::NAN },
        Defence::QueryBudget { cap: 0 },
        Defence::RoundScores { decimals: 8 },
    ] {
        assert!(LocalOracle::defended(model.clone(), &secret, None, d, 0).is_err(), "{d:?}");
    }
}

#[test]
fn rounded_scores_keep_the_decision_and_lose_the_digits() {
    let (model, dirs, _) = setup();
    // w.x = 0.8: class 0 with probabilities (0.5498, 0.4502)
    let secret = vec![0.05; 16];
    let plain = LocalOracle::new(model.clone(), &secret, None).unwrap();
    let exact = plain.scores().unwrap();
    assert!((exact[0] - 0.549_834).abs() < 1e-5, "{exact:?}");
    for (decimals, want) in [(0, [1.0, 0.0]), (1, [0.5, 0.5]), (2, [0.55, 0.45]), (3, [0.55, 0.45])] {
        let o = LocalOracle::defended(model.clone(), &secret, None, Defence::RoundScores { decimals }, 0).unwrap();
        let got = o.scores().unwrap();
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() < 1e-6, "d = {decimals}: {got:?}");
        }
        assert_eq!(o.queries(), 1, "one query per score vector");
        // change bits (and so the attack on them) are untouched
        let ps = probes(&dirs, 3);
        assert_eq!(o.changed_along(&dirs, &ps).unwrap(), plain.changed_along(&dirs, &ps).unwrap());
    }
    let d = Defence::RoundScores { decimals: 2 };
    assert_eq!((d.name(), d.knob(), d.label().as_str()), ("round-scores", 2.0, "round-scores d=2"));
}

//! Property tests of `run_search` (the `EpsSearch` state machine) against analytic ray
//! classifiers whose flip points are known exactly.
//!
//! The guarantee under test is the one in the doc comment of `signature/search.rs`: unless
//! censored or floored, the returned `eps` is a probed point where the decision changed, a
//! probed point `lo >= eps / (1 + rel_tol)` did not change, and every bracketing grid point
//! below `lo` did not change; for a single threshold `t`, `t <= eps <= t * (1 + rel_tol)`.
//! On top of that, every probe lies in `[eps_min, eps_max]`, a direction whose flip lies
//! below `eps_min` is recorded as `eps_min`, and the search's own query count equals the
//! probes it actually asked for.

use apsig::oracle::Probe;
use apsig::rng::Rng;
use apsig::signature::{
    run_search, Answer, EpsOutcome, EpsPredictor, EpsSearch, Prior, SearchConfig, ANCHOR_WALK_STEPS,
};
use proptest::prelude::*;

/// One recorded probe: direction, eps, the classifier's answer.
#[derive(Clone, Copy, Debug)]
struct Asked {
    dir: usize,
    eps: f32,
    flip: bool,
}

fn pow10(e: f64) -> f32 {
    10f64.powf(e) as f32
}

/// Random search configurations: growth 1.2..4, rel_tol 1e-4..0.2, eps_min and eps_max
/// across decades.
fn config() -> impl Strategy<Value = SearchConfig> {
    (1.2f32..4.0, -4.0f64..-0.7, -5.0f64..-3.0, 0.0f64..3.0).prop_map(|(growth, log_tol, log_min, log_max)| {
        SearchConfig { start: 0.5, growth, eps_max: pow10(log_max), eps_min: pow10(log_min), rel_tol: pow10(log_tol) }
    })
}

/// Starting points across decades, including below `eps_min` and above `eps_max`.
fn starts(n: usize) -> impl Strategy<Value = Vec<f32>> {
    prop::collection::vec((-5.5f64..3.5).prop_map(pow10), n)
}

/// Runs the search, answering with `answer(dir, eps)` and recording every probe.
fn search(cfg: &SearchConfig, starts: &[f32], answer: impl Fn(usize, f32) -> Answer) -> (Vec<EpsOutcome>, Vec<Asked>) {
    search_from(cfg, Prior::Starts(starts), answer)
}

/// A predictor for `k` directions fitted on 60 synthetic signatures whose `ln eps` share a
/// per-image level (so the directions predict each other), with levels across decades.
fn predictor(k: usize, group: usize, seed: u64) -> EpsPredictor {
    let mut rng = Rng::new(seed);
    let offsets: Vec<f32> = (0..k).map(|_| 3.0 * rng.normal()).collect();
    let n = 60;
    let mut eps = Vec::with_capacity(n * k);
    for _ in 0..n {
        let level = 2.0 * rng.normal();
        eps.extend(offsets.iter().map(|o| (level + o + 0.3 * rng.normal()).clamp(-15.0, 10.0).exp()));
    }
    EpsPredictor::fit(k, &eps, group).expect("fits")
}

/// `search` from any prior.
fn search_from(
    cfg: &SearchConfig,
    prior: Prior,
    answer: impl Fn(usize, f32) -> Answer,
) -> (Vec<EpsOutcome>, Vec<Asked>) {
    let mut asked = Vec::new();
    let out = run_search(cfg, prior, |ps: &[Probe]| {
        Ok(ps
            .iter()
            .map(|p| {
                let a = answer(p.dir as usize, p.eps);
                asked.push(Asked { dir: p.dir as usize, eps: p.eps, flip: a.0 });
                a
            })
            .collect())
    })
    .expect("search succeeds on a well-formed oracle");
    (out, asked)
}

/// Checks that hold for every classifier: accounting and the probe range.
fn check_common(
    cfg: &SearchConfig,
    starts: &[f32],
    out: &[EpsOutcome],
    asked: &[Asked],
    bare_bits: bool,
) -> Result<(), TestCaseError> {
    if !starts.is_empty() {
        prop_assert_eq!(out.len(), starts.len());
    }
    for (d, o) in out.iter().enumerate() {
        let mine: Vec<&Asked> = asked.iter().filter(|a| a.dir == d).collect();
        prop_assert_eq!(o.queries as usize, mine.len(), "dir {}: queries counted vs probes asked", d);
        for a in &mine {
            prop_assert!(
                a.eps >= cfg.eps_min && a.eps <= cfg.eps_max,
                "dir {}: probe at {} outside [eps_min {}, eps_max {}] (start {:?})",
                d,
                a.eps,
                cfg.eps_min,
                cfg.eps_max,
                starts.get(d)
            );
        }
        if starts.is_empty() {
            continue; // a predicted search: no grid, so no grid bound (it ends: see `guided_probe`)
        }
        let bound = if bare_bits { cfg.max_probes(starts[d]) } else { cfg.max_probes_with_margins(starts[d]) };
        prop_assert!(
            o.queries <= bound,
            "dir {}: {} queries > bound {} (start {}, {:?})",
            d,
            o.queries,
            bound,
            starts[d],
            cfg
        );
        prop_assert!(o.eps.is_finite() && o.eps > 0.0);
    }
    Ok(())
}

/// The single-threshold guarantee for direction `d` with threshold `t`.
fn check_threshold(cfg: &SearchConfig, o: &EpsOutcome, t: f32) -> Result<(), TestCaseError> {
    let tol = 1.0 + cfg.rel_tol;
    if t > cfg.eps_max {
        prop_assert!(o.censored, "t {} > eps_max {} not censored: {:?}", t, cfg.eps_max, o);
        prop_assert_eq!(o.eps, cfg.eps_max);
    } else if t <= cfg.eps_min {
        // floored: a flip even at eps_min is recorded as eps_min
        prop_assert!(!o.censored);
        prop_assert_eq!(o.eps, cfg.eps_min, "t {} below eps_min {}", t, cfg.eps_min);
    } else {
        prop_assert!(!o.censored, "t {} <= eps_max {} censored", t, cfg.eps_max);
        prop_assert!(t <= o.eps && o.eps <= t * tol, "t {} got eps {} (bound {}), {:?}", t, o.eps, t * tol, cfg);
    }
    Ok(())
}

/// The multi-interval guarantee: the result is a flip point of the classifier and the smallest
/// flipping probe, a non-flipping probe lies within the tolerance below it, and no probe below
/// that one flipped (or the direction is censored with no probe flipped).
fn check_first_flip(
    cfg: &SearchConfig,
    flips: &dyn Fn(usize, f32) -> bool,
    out: &[EpsOutcome],
    asked: &[Asked],
) -> Result<(), TestCaseError> {
    let tol = 1.0 + cfg.rel_tol;
    for (d, o) in out.iter().enumerate() {
        let mine: Vec<&Asked> = asked.iter().filter(|a| a.dir == d).collect();
        if o.censored {
            prop_assert_eq!(o.eps, cfg.eps_max);
            prop_assert!(mine.iter().all(|a| !a.flip), "censored but a probe flipped");
            prop_assert!(mine.iter().any(|a| a.eps == cfg.eps_max), "eps_max never probed");
            continue;
        }
        prop_assert!(flips(d, o.eps), "dir {}: eps {} is not a flip point", d, o.eps);
        prop_assert!(mine.iter().any(|a| a.flip && a.eps == o.eps), "dir {}: eps {} was not a probed flip", d, o.eps);
        let below: Vec<&&Asked> = mine.iter().filter(|a| a.eps < o.eps).collect();
        prop_assert!(below.iter().all(|a| !a.flip), "dir {}: a probe below eps {} flipped: {:?}", d, o.eps, below);
        if o.eps == cfg.eps_min {
            continue; // floored: a flip even at eps_min
        }
        let lo = below.iter().map(|a| a.eps).fold(f32::NEG_INFINITY, f32::max);
        prop_assert!(
            lo.is_finite() && o.eps <= lo * tol,
            "dir {}: eps {} but the largest non-flipping probe below is {} (tol {})",
            d,
            o.eps,
            lo,
            tol
        );
    }
    Ok(())
}

/// The classifier that flips direction `d` on `[b0, b1) U [b2, b3) U ...` of its boundaries
/// `bounds[d]`, sorted and without repeats (an odd count leaves the last interval open to
/// infinity).
fn interval_flips(bounds: Vec<Vec<f32>>) -> impl Fn(usize, f32) -> bool {
    let bounds: Vec<Vec<f32>> = bounds
        .into_iter()
        .map(|mut b| {
            b.sort_by(f32::total_cmp);
            b.dedup();
            b
        })
        .collect();
    move |d, e| bounds[d].iter().filter(|&&b| b <= e).count() % 2 == 1
}

/// Thresholds from well below eps_min to well above eps_max.
fn thresholds(n: usize) -> impl Strategy<Value = Vec<f32>> {
    prop::collection::vec((-6.0f64..4.0).prop_map(pow10), n)
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 512,
        // no regression files written into the source tree
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// (i) flip iff eps >= t, change bits only.
    #[test]
    fn single_threshold_change_bits(
        cfg in config(),
        (ts, ss) in (1usize..8).prop_flat_map(|n| (thresholds(n), starts(n))),
    ) {
        let (out, asked) = search(&cfg, &ss, |d, e| (e >= ts[d], None));
        check_common(&cfg, &ss, &out, &asked, true)?;
        for (o, &t) in out.iter().zip(&ts) {
            check_threshold(&cfg, o, t)?;
        }
    }

    /// (ii-a) the white-box route with an exact linear margin `1 - eps / t`.
    #[test]
    fn single_threshold_linear_margin(
        cfg in config(),
        (ts, ss) in (1usize..8).prop_flat_map(|n| (thresholds(n), starts(n))),
    ) {
        let (out, asked) = search(&cfg, &ss, |d, e| {
            let t = ts[d];
            (e >= t, Some(1.0 - e / t))
        });
        check_common(&cfg, &ss, &out, &asked, true)?;
        for (o, &t) in out.iter().zip(&ts) {
            check_threshold(&cfg, o, t)?;
        }
    }

    /// (ii-b) the white-box route with a piecewise-linear margin whose kink lies anywhere
    /// around the threshold (as for a ReLU net, where the margin is piecewise linear along
    /// the ray): the margin misleads the interpolation, the guarantee must still hold.
    #[test]
    fn single_threshold_kinked_margin(
        cfg in config(),
        (ts, ss, kinks, slopes) in (1usize..8).prop_flat_map(|n| (
            thresholds(n),
            starts(n),
            prop::collection::vec(0.05f32..20.0, n),
            prop::collection::vec((-2.0f64..2.0).prop_map(pow10), n),
        )),
    ) {
        // margin (t - eps) / t on the piece that holds t, slope `slope` times that on the
        // other side of the kink at kink * t, continuous and decreasing: zero only at t
        let margin = |d: usize, e: f32| -> f32 {
            let (t, k, s) = (ts[d], kinks[d] * ts[d], slopes[d]);
            let near = |x: f32| (t - x) / t;
            if (k >= t) == (e <= k) { near(e) } else { near(k) + s * (k - e) / t }
        };
        let (out, asked) = search(&cfg, &ss, |d, e| {
            let m = margin(d, e);
            // the change bit is the truth; keep the margin's sign with it under rounding
            (e >= ts[d], Some(if e >= ts[d] { m.min(0.0) } else { m.max(f32::MIN_POSITIVE) }))
        });
        check_common(&cfg, &ss, &out, &asked, false)?;
        for (o, &t) in out.iter().zip(&ts) {
            check_threshold(&cfg, o, t)?;
        }
    }

    /// (iii) flips on a union of intervals: the result is a flip point of the classifier
    /// and the smallest flipping probe, a non-flipping probe lies within the tolerance
    /// below it, and no probe below that one flipped.
    #[test]
    fn multi_interval_change_bits(
        cfg in config(),
        (bounds, ss) in (1usize..6).prop_flat_map(|n| (
            prop::collection::vec(
                prop::collection::vec((-6.0f64..4.0).prop_map(pow10), 1..8),
                n,
            ),
            starts(n),
        )),
    ) {
        let flips = interval_flips(bounds);
        let (out, asked) = search(&cfg, &ss, |d, e| (flips(d, e), None));
        check_common(&cfg, &ss, &out, &asked, true)?;
        check_first_flip(&cfg, &flips, &out, &asked)?;
    }

    /// (iv) a predicted search (directions in groups, bisected in probability under a model
    /// that may be badly wrong for these thresholds) keeps the single-threshold guarantee.
    #[test]
    fn predicted_single_threshold(
        cfg in config(),
        ts in (1usize..9).prop_flat_map(thresholds),
        group in 1usize..4,
        seed in 0u64..1000,
    ) {
        let p = predictor(ts.len(), group, seed);
        let (out, asked) = search_from(&cfg, Prior::Predicted(&p), |d, e| (e >= ts[d], None));
        prop_assert_eq!(out.len(), ts.len());
        check_common(&cfg, &[], &out, &asked, true)?;
        for (o, &t) in out.iter().zip(&ts) {
            check_threshold(&cfg, o, t)?;
        }
    }

    /// (vi) checking anchors (`EpsPredictor::with_anchors`, anywhere) changes nothing where
    /// the ray has one threshold: the same eps and censoring, at most the anchor and the
    /// grid steps walked up from it more each.
    #[test]
    fn anchored_single_threshold_is_unchanged(
        cfg in config(),
        (ts, anchors) in (1usize..9).prop_flat_map(|n| (thresholds(n), starts(n))),
        group in 1usize..4,
        seed in 0u64..1000,
    ) {
        let p = predictor(ts.len(), group, seed);
        let anchors: Vec<f32> = anchors.iter().map(|a| a.max(1e-6)).collect();
        let anchored = p.clone().with_anchors(&anchors).unwrap();
        let (plain, _) = search_from(&cfg, Prior::Predicted(&p), |d, e| (e >= ts[d], None));
        let (out, asked) = search_from(&cfg, Prior::Predicted(&anchored), |d, e| (e >= ts[d], None));
        check_common(&cfg, &[], &out, &asked, true)?;
        for ((o, q), &t) in out.iter().zip(&plain).zip(&ts) {
            check_threshold(&cfg, o, t)?;
            prop_assert_eq!((o.eps, o.censored), (q.eps, q.censored));
            prop_assert!(o.queries <= q.queries + 1 + ANCHOR_WALK_STEPS, "{:?} against {:?}", o, q);
        }
    }

    /// (vii) on unions of intervals an anchored search still ends on a crossing: its eps is a
    /// probed flip with a non-flipping probe within the tolerance below it (which crossing is
    /// the walk's from the anchor, where the prediction jumped past it), or it is censored
    /// with eps_max probed and not flipping.
    #[test]
    fn anchored_multi_interval_ends_on_a_crossing(
        cfg in config(),
        (bounds, anchors) in (1usize..6).prop_flat_map(|n| (
            prop::collection::vec(prop::collection::vec((-6.0f64..4.0).prop_map(pow10), 1..8), n),
            starts(n),
        )),
        group in 1usize..4,
        seed in 0u64..1000,
    ) {
        let anchors: Vec<f32> = anchors.iter().map(|a| a.max(1e-6)).collect();
        let p = predictor(bounds.len(), group, seed).with_anchors(&anchors).unwrap();
        let flips = interval_flips(bounds);
        let (out, asked) = search_from(&cfg, Prior::Predicted(&p), |d, e| (flips(d, e), None));
        check_common(&cfg, &[], &out, &asked, true)?;
        let tol = 1.0 + cfg.rel_tol;
        for (d, o) in out.iter().enumerate() {
            let mine: Vec<&Asked> = asked.iter().filter(|a| a.dir == d).collect();
            if o.censored {
                prop_assert_eq!(o.eps, cfg.eps_max);
                prop_assert!(mine.iter().any(|a| a.eps == cfg.eps_max && !a.flip), "dir {}: eps_max not seen unflipped", d);
            } else {
                prop_assert!(mine.iter().any(|a| a.flip && a.eps == o.eps), "dir {}: eps {} not a probed flip", d, o.eps);
                if o.eps > cfg.eps_min {
                    prop_assert!(
                        mine.iter().any(|a| !a.flip && a.eps < o.eps && o.eps <= a.eps * tol),
                        "dir {}: no unflipped probe within tol below eps {}", d, o.eps
                    );
                }
            }
        }
    }

    /// (v) and the first-flip guarantee on unions of intervals.
    #[test]
    fn predicted_multi_interval(
        cfg in config(),
        bounds in prop::collection::vec(prop::collection::vec((-6.0f64..4.0).prop_map(pow10), 1..8), 1..6),
        group in 1usize..4,
        seed in 0u64..1000,
    ) {
        let p = predictor(bounds.len(), group, seed);
        let flips = interval_flips(bounds);
        let (out, asked) = search_from(&cfg, Prior::Predicted(&p), |d, e| (flips(d, e), None));
        check_common(&cfg, &[], &out, &asked, true)?;
        check_first_flip(&cfg, &flips, &out, &asked)?;
    }
}

/// A known case, pinned: the first flip of a classifier with a flip region that the
/// doubling grid from 0.5 steps over (between grid points 1 and 2) is the next one.
#[test]
fn blind_spot_between_grid_points_is_documented_behaviour() {
    let cfg = SearchConfig::plain(64.0);
    let flips = |e: f32| (1.2..1.5).contains(&e) || e >= 10.0;
    let (out, asked) = search(&cfg, &[0.5], |_, e| (flips(e), None));
    assert!(!out[0].censored);
    assert!(out[0].eps >= 10.0 && out[0].eps <= 10.0 * 1.001, "{:?}", out[0]);
    assert!(asked.iter().all(|a| !(1.2..1.5).contains(&a.eps)));
}

/// A predicted search stopped by a spent budget: the directions it measured keep their
/// brackets' estimates, those it never reached get the prediction from what was measured (no
/// queries, not censored), and the same search with a good model takes fewer probes than the
/// one from fixed starts.
#[test]
fn predicted_search_on_a_budget_predicts_what_it_did_not_reach() {
    let k = 12;
    let p = predictor(k, 3, 7);
    let cfg = SearchConfig { rel_tol: 0.05, ..SearchConfig::decoder_grade(1e4) };
    // the thresholds of one of the model's own kind of signature: offsets shared, one level
    let mut rng = Rng::new(7);
    let offsets: Vec<f32> = (0..k).map(|_| 3.0 * rng.normal()).collect();
    let ts: Vec<f32> = offsets.iter().map(|o| (0.4 + o).clamp(-15.0, 10.0).exp()).collect();
    let (full, _) = search_from(&cfg, Prior::Predicted(&p), |d, e| (e >= ts[d], None));
    for (o, &t) in full.iter().zip(&ts) {
        assert!(!o.censored && t <= o.eps && o.eps <= t * 1.05, "{o:?} vs {t}");
    }
    let median: Vec<f32> = (0..k).map(|j| offsets[j].exp()).collect();
    let (plain, _) = search(&cfg, &median, |d, e| (e >= ts[d], None));
    let q = |o: &[EpsOutcome]| o.iter().map(|o| o.queries).sum::<u32>();
    assert!(q(&full) < q(&plain), "predicted {} vs plain {} probes", q(&full), q(&plain));

    let mut s = EpsSearch::predicted(&cfg, &p).unwrap();
    let mut spent = 0;
    while spent < 12 {
        let answers: Vec<Answer> = s.probes().iter().map(|p| (p.eps >= ts[p.dir as usize], None)).collect();
        spent += answers.len();
        s.answer(&answers).unwrap();
    }
    s.stop();
    assert!(s.is_done());
    let out = s.outcomes();
    assert_eq!(out.iter().map(|o| o.queries as usize).sum::<usize>(), spent);
    let unreached: Vec<&EpsOutcome> = out.iter().filter(|o| o.queries == 0).collect();
    assert!(!unreached.is_empty(), "12 probes reached every direction");
    for (o, &t) in out.iter().zip(&ts) {
        assert!(!o.censored && o.eps.is_finite());
        if o.queries == 0 {
            // predicted from the first groups: within a factor 3 of the truth (noise sd 0.3)
            assert!((o.eps / t).ln().abs() < 1.1, "unreached {o:?} vs {t}");
        }
    }
}

/// A predictor for one direction that always predicts about `level`.
fn predictor_at(level: f32) -> EpsPredictor {
    let mut rng = Rng::new(3);
    let eps: Vec<f32> = (0..200).map(|_| level * (0.2 * rng.normal()).exp()).collect();
    EpsPredictor::fit(1, &eps, 1).expect("fits")
}

/// The stretch a prediction jumps past: a ray that changes its decision on [1.5, 3) only (as
/// an image of the class that a large eps saturates every image into). Predicted near 100, the
/// plain predicted search sees no change up to eps_max and reports the direction censored;
/// with the anchor at 2 (where the adversary's own walk started) it checks 2 and finds 1.5.
#[test]
fn anchor_check_finds_the_stretch_a_prediction_jumped_past() {
    let cfg = SearchConfig::predicted(256.0);
    let flips = |e: f32| (1.5..3.0).contains(&e);
    let p = predictor_at(100.0);
    let (plain, _) = search_from(&cfg, Prior::Predicted(&p), |_, e| (flips(e), None));
    assert!(plain[0].censored, "{:?}", plain[0]);
    let anchored = p.with_anchors(&[2.0]).unwrap();
    let (out, asked) = search_from(&cfg, Prior::Predicted(&anchored), |_, e| (flips(e), None));
    assert!(!out[0].censored && (1.5..=1.5 * 1.1).contains(&out[0].eps), "{:?}", out[0]);
    assert!(asked.iter().any(|a| a.eps == 2.0), "the anchor was not probed: {asked:?}");
    assert!(out[0].queries > plain[0].queries, "{:?} against {:?}", out[0], plain[0]);
}

/// The other way round: predicted near 0.02, the search meets a change on [0.01, 0.05) that
/// the walk from the anchor at 2 never reaches; it checks 2, sees no change there, and walks
/// up from it as the adversary's own search did, to the crossing at 5.
#[test]
fn anchor_check_walks_up_from_the_anchor_past_a_low_stretch() {
    let cfg = SearchConfig::predicted(256.0);
    let flips = |e: f32| (0.01..0.05).contains(&e) || e >= 5.0;
    let p = predictor_at(0.02);
    let (plain, _) = search_from(&cfg, Prior::Predicted(&p), |_, e| (flips(e), None));
    assert!(plain[0].eps < 0.05, "{:?}", plain[0]);
    let anchored = p.with_anchors(&[2.0]).unwrap();
    let (out, _) = search_from(&cfg, Prior::Predicted(&anchored), |_, e| (flips(e), None));
    assert!(!out[0].censored && (5.0..=5.0 * 1.1).contains(&out[0].eps), "{:?}", out[0]);
}

/// A stretch just above an anchor that does not change: predicted near 100, the search sees no
/// change up to eps_max, checks the anchor at 2 (no change there either) and walks up from it
/// as the adversary's own search did: 3.2 changes, so it refines down to the crossing at 2.5.
/// A stretch past the walk's steps (2 x 1.6^2 = 5.12) is not looked for: censored.
#[test]
fn anchor_walk_finds_a_stretch_just_above_an_unchanged_anchor() {
    assert_eq!(ANCHOR_WALK_STEPS, 2, "the stretches below are placed for two steps");
    let cfg = SearchConfig::predicted(256.0);
    let p = predictor_at(100.0);
    let anchored = p.clone().with_anchors(&[2.0]).unwrap();
    let near = |e: f32| (2.5..4.0).contains(&e);
    let (out, asked) = search_from(&cfg, Prior::Predicted(&anchored), |_, e| (near(e), None));
    assert!(!out[0].censored && (2.5..=2.5 * 1.1).contains(&out[0].eps), "{:?}", out[0]);
    assert!(asked.iter().any(|a| a.eps == 2.0 && !a.flip), "the anchor was not probed: {asked:?}");
    let far = |e: f32| (6.0..7.0).contains(&e);
    let (plain, _) = search_from(&cfg, Prior::Predicted(&p), |_, e| (far(e), None));
    let (out, asked) = search_from(&cfg, Prior::Predicted(&anchored), |_, e| (far(e), None));
    assert!(plain[0].censored && out[0].censored && out[0].eps == cfg.eps_max, "{:?}", out[0]);
    assert_eq!(out[0].queries, plain[0].queries + 1 + ANCHOR_WALK_STEPS, "{asked:?}");
}

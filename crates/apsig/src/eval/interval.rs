//! Confidence intervals for the difference between two attacks measured on the same secrets:
//! the paired bootstrap over secrets (draw the secrets again with replacement, take the mean
//! per-secret difference; the 2.5th and 97.5th percentiles of those means bound it). Pairing
//! removes the spread between secrets that both attacks share, so a real difference shows
//! with fewer secrets than two separate intervals would need.

use crate::rng::Rng;
use serde::{Deserialize, Serialize};

/// Bootstrap resamples behind every interval apsig reports (the study's and `apsig compare`'s).
pub const RESAMPLES: usize = 2000;

/// A difference of means with its 95% bootstrap interval.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Interval {
    /// Mean of `a - b` over the secrets measured.
    pub estimate: f64,
    /// 2.5th percentile of the resampled means.
    pub low: f64,
    /// 97.5th percentile of the resampled means.
    pub high: f64,
}

impl Interval {
    /// Whether the interval leaves zero out (only then is there a winner).
    pub fn excludes_zero(&self) -> bool {
        self.low > 0.0 || self.high < 0.0
    }
}

/// Which of two configurations wins across seeds, from the intervals of `a - b` at each seed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// `a` is better at every seed, each interval leaving zero out.
    First,
    /// `b` is better at every seed, each interval leaving zero out.
    Second,
    /// Some seed's interval holds zero, a seed is missing, or the seeds disagree.
    NoWinner,
}

/// The winner of `a` against `b` over `per_seed` intervals of `a - b` (a missing seed counts as
/// no interval): a side wins only where every seed's interval leaves zero out on its side, so a
/// verdict does not hang on one draw of directions, models and secrets.
pub fn winner(per_seed: &[Option<Interval>], lower_is_better: bool) -> Verdict {
    let first = |i: &Interval| i.excludes_zero() && (i.estimate < 0.0) == lower_is_better;
    let second = |i: &Interval| i.excludes_zero() && (i.estimate < 0.0) != lower_is_better;
    let all =
        |f: &dyn Fn(&Interval) -> bool| !per_seed.is_empty() && per_seed.iter().all(|i| i.as_ref().is_some_and(f));
    if all(&first) {
        Verdict::First
    } else if all(&second) {
        Verdict::Second
    } else {
        Verdict::NoWinner
    }
}

/// The interval of `mean(a - b)` from `resamples` paired resamples (`a[i]` and `b[i]` belong to
/// secret `i`); `None` when the lengths differ, there are no secrets or no resamples.
pub fn paired_bootstrap(a: &[f64], b: &[f64], resamples: usize, seed: u64) -> Option<Interval> {
    let n = a.len();
    if n == 0 || b.len() != n || resamples == 0 {
        return None;
    }
    let diff: Vec<f64> = a.iter().zip(b).map(|(x, y)| x - y).collect();
    let mut rng = Rng::derive(seed, "paired bootstrap");
    let mut means: Vec<f64> =
        (0..resamples).map(|_| (0..n).map(|_| diff[rng.below(n)]).sum::<f64>() / n as f64).collect();
    means.sort_by(f64::total_cmp);
    // the nearest order statistic, symmetric at both ends
    let at = |q: f64| means[(q * (resamples - 1) as f64).round() as usize];
    Some(Interval { estimate: diff.iter().sum::<f64>() / n as f64, low: at(0.025), high: at(0.975) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_constant_shift_has_no_spread() {
        let a: Vec<f64> = (0..50).map(|i| (i as f64).sin()).collect();
        let b: Vec<f64> = a.iter().map(|x| x + 0.25).collect();
        let i = paired_bootstrap(&a, &b, 500, 1).unwrap();
        for v in [i.estimate, i.low, i.high] {
            assert!((v + 0.25).abs() < 1e-12, "{i:?}");
        }
        assert!(i.excludes_zero());
    }

    #[test]
    fn the_interval_has_the_width_sampling_error_predicts() {
        // per-secret differences with mean 0.5 and sd 1: the 95% interval of the mean of 400
        // is about 0.5 +- 1.96 / 20
        let mut rng = Rng::new(7);
        let a: Vec<f64> = (0..400).map(|_| 0.5 + rng.normal() as f64).collect();
        let b = vec![0.0; 400];
        let i = paired_bootstrap(&a, &b, 2000, 3).unwrap();
        let width = i.high - i.low;
        assert!((width - 2.0 * 1.96 / 20.0).abs() < 0.04, "{i:?}");
        assert!(i.low < i.estimate && i.estimate < i.high && i.excludes_zero(), "{i:?}");
        // no difference at all: zero stays inside
        let same: Vec<f64> = (0..400).map(|_| rng.normal() as f64).collect();
        let other: Vec<f64> = (0..400).map(|_| rng.normal() as f64).collect();
        assert!(!paired_bootstrap(&same, &other, 2000, 3).unwrap().excludes_zero());
        assert_eq!(paired_bootstrap(&a, &b, 2000, 3), Some(i), "a seed gives the same interval");
    }

    #[test]
    fn a_winner_needs_every_seed_on_its_side() {
        let at = |estimate: f64, low: f64, high: f64| Some(Interval { estimate, low, high });
        let lower = at(-2.0, -3.0, -1.0);
        let higher = at(2.0, 1.0, 3.0);
        let unsure = at(-1.0, -2.0, 0.5);
        assert_eq!(winner(&[lower, lower], true), Verdict::First, "a lower MSE at both seeds");
        assert_eq!(winner(&[lower, lower], false), Verdict::Second, "fewer identified at both seeds");
        assert_eq!(winner(&[higher, higher], true), Verdict::Second);
        assert_eq!(winner(&[lower, unsure], true), Verdict::NoWinner, "one seed holds zero");
        assert_eq!(winner(&[lower, higher], true), Verdict::NoWinner, "the seeds disagree");
        assert_eq!(winner(&[lower, None], true), Verdict::NoWinner, "a seed is missing");
        assert_eq!(winner(&[], true), Verdict::NoWinner);
    }

    #[test]
    fn mismatched_or_empty_inputs_give_none() {
        assert!(paired_bootstrap(&[1.0], &[1.0, 2.0], 10, 1).is_none());
        assert!(paired_bootstrap(&[], &[], 10, 1).is_none());
        assert!(paired_bootstrap(&[1.0], &[1.0], 0, 1).is_none());
    }
}

//! The flip-rate baseline, re-implemented after Zhu et al., "Label-Only Model Inversion
//! Attacks: Attack With the Least Information" (IEEE TIFS 2023): random noise at several
//! magnitudes, and per magnitude the fraction of noisy queries whose decision changed.
//!
//! It spends its budget the way that attack does (no search, every query at a preset
//! magnitude), so at equal queries it is the published label-only alternative to apsig's
//! bracketing search. Magnitudes are the quantiles of the eps the adversary measured on its
//! own images, so they span the range where decisions actually flip.

use crate::directions::Directions;
use crate::error::{Error, Result};
use crate::oracle::{ChangeOracle, Probe};

/// Which probes a flip-rate feature vector costs: `draws` noise directions at each magnitude.
#[derive(Clone, Debug, PartialEq)]
pub struct FlipRatePlan {
    /// Noise magnitudes (L2 norms of the perturbation), ascending.
    pub magnitudes: Vec<f32>,
    /// Noise draws per magnitude.
    pub draws: usize,
}

impl FlipRatePlan {
    /// Up to `magnitudes` magnitudes at evenly spaced quantiles of the finite, positive
    /// `observed` eps, and as many draws each as `budget` queries allow.
    pub fn from_observed(observed: &[f32], magnitudes: usize, budget: u64) -> Result<Self> {
        let mut eps: Vec<f32> = observed.iter().copied().filter(|e| e.is_finite() && *e > 0.0).collect();
        let m = magnitudes.min(budget as usize);
        if eps.is_empty() || m == 0 {
            return Err(Error::invalid(
                "flip-rate plan",
                format!("{} usable eps and {m} magnitudes (budget {budget})", eps.len()),
            ));
        }
        eps.sort_by(f32::total_cmp);
        let quantile = |q: f64| eps[((q * eps.len() as f64) as usize).min(eps.len() - 1)];
        let magnitudes = (0..m).map(|j| quantile((j as f64 + 0.5) / m as f64)).collect();
        Ok(FlipRatePlan { magnitudes, draws: budget as usize / m })
    }

    /// Queries one feature vector costs.
    pub fn queries(&self) -> u64 {
        (self.magnitudes.len() * self.draws) as u64
    }

    /// Probe `j * draws + d`: noise direction `j * draws + d` at magnitude `j` (every probe
    /// its own noise draw).
    fn probes(&self) -> Vec<Probe> {
        self.magnitudes
            .iter()
            .enumerate()
            .flat_map(|(j, &eps)| (0..self.draws).map(move |d| Probe { dir: (j * self.draws + d) as u32, eps }))
            .collect()
    }
}

/// The fraction of changed decisions at each magnitude of `plan`, asked of `oracle` in one
/// batch along `noise` (which needs at least `plan.queries()` directions).
pub fn flip_rates(oracle: &dyn ChangeOracle, noise: &Directions, plan: &FlipRatePlan) -> Result<Vec<f32>> {
    if noise.k() < plan.queries() as usize {
        return Err(Error::invalid(
            "flip-rate plan",
            format!("{} queries need as many noise directions, {} given", plan.queries(), noise.k()),
        ));
    }
    let changed = oracle.changed_along(noise, &plan.probes())?;
    Ok(changed
        .chunks(plan.draws.max(1))
        .map(|c| c.iter().filter(|&&b| b).count() as f32 / c.len().max(1) as f32)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::directions::{DirectionConfig, Strategy};
    use crate::model::Classifier;
    use crate::nn::{LayerSpec, Network, Shape};
    use crate::oracle::LocalOracle;
    use std::sync::Arc;

    #[test]
    fn plan_spreads_magnitudes_over_observed_eps_and_fits_the_budget() {
        let eps: Vec<f32> = (1..=100).map(|i| i as f32 / 10.0).chain([f32::INFINITY, 0.0]).collect();
        let p = FlipRatePlan::from_observed(&eps, 4, 103).unwrap();
        assert_eq!(p.magnitudes, vec![1.3, 3.8, 6.3, 8.8]);
        assert_eq!((p.draws, p.queries()), (25, 100));
        assert_eq!(FlipRatePlan::from_observed(&eps, 8, 3).unwrap().magnitudes.len(), 3);
        assert!(FlipRatePlan::from_observed(&[f32::NAN], 8, 100).is_err());
    }

    #[test]
    fn rates_are_the_changed_fractions_and_cost_exactly_the_plan() {
        let shape = Shape::new(28, 28, 1);
        // a random linear classifier: large enough perturbations do change its decision
        let net = Arc::new(Network::new(shape, vec![LayerSpec::Linear { out: 10 }], 1).unwrap());
        let mut rng = crate::rng::Rng::new(5);
        let x: Vec<f32> = (0..784).map(|_| rng.uniform()).collect();
        let noise =
            Directions::generate(&DirectionConfig { strategy: Strategy::Gaussian, k: 90, seed: 2 }, shape).unwrap();
        let plan = FlipRatePlan { magnitudes: vec![1e-4, 3.0, 30.0], draws: 30 };
        let oracle = LocalOracle::new(net.clone(), &x, None).unwrap();
        let rates = flip_rates(&oracle, &noise, &plan).unwrap();
        assert_eq!(oracle.queries(), 90);
        // the same fractions, computed in the clear
        let base = crate::argmax(&net.logits(&x, 1));
        for (j, &eps) in plan.magnitudes.iter().enumerate() {
            let flipped = (0..30)
                .filter(|d| {
                    let dir = &noise.data[(j * 30 + d) * 784..(j * 30 + d + 1) * 784];
                    let probe: Vec<f32> = x.iter().zip(dir).map(|(a, b)| a + eps * b).collect();
                    crate::argmax(&net.logits(&probe, 1)) != base
                })
                .count();
            assert_eq!(rates[j], flipped as f32 / 30.0, "magnitude {eps}: {rates:?}");
        }
        assert_eq!(rates[0], 0.0, "a vanishing perturbation flips nothing");
        assert!(rates[2] > 0.0, "the largest magnitude flips some decisions: {rates:?}");
        let short = FlipRatePlan { magnitudes: vec![1.0], draws: 91 };
        assert!(flip_rates(&oracle, &noise, &short).is_err());
    }
}

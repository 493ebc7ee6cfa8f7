//! Defences a server can put in front of the change oracle, each with a strength knob, and
//! the attacker's answer to the randomised ones (repeat and take the majority).
//!
//! A defence is applied by the oracle itself (`LocalOracle::defended`), never by attack code,
//! so the attack keeps seeing nothing but change bits. The fourth defence of the study, a
//! target trained to be smooth, lives in training (`TrainConfig::input_noise`).

use crate::directions::Directions;
use crate::error::{Error, Result};
use crate::oracle::{ChangeOracle, Probe};
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Defence {
    /// The paper's oracle: the true change bit.
    #[default]
    None,
    /// Each answer is flipped with probability `p` (independently per query).
    RandomAnswers { p: f32 },
    /// Gaussian noise of standard deviation `sigma` (per pixel) is added to the input before
    /// every decision, including the decision on the unperturbed secret (randomised smoothing
    /// with one sample, so it costs the server nothing extra but the noise).
    InputNoise { sigma: f32 },
    /// At most `cap` queries per secret; further batches are refused.
    QueryBudget { cap: u64 },
}

impl Defence {
    pub fn validate(&self) -> Result<()> {
        let ok = match *self {
            Defence::None => true,
            Defence::RandomAnswers { p } => (0.0..0.5).contains(&p),
            Defence::InputNoise { sigma } => sigma.is_finite() && sigma >= 0.0,
            Defence::QueryBudget { cap } => cap > 0,
        };
        if ok {
            Ok(())
        } else {
            Err(Error::invalid("defence", format!("{self:?}: need 0 <= p < 0.5, sigma >= 0, cap > 0")))
        }
    }

    /// Whether decisions are taken on the input exactly as perturbed (so the oracle may use
    /// the lifted first layer instead of materialising each perturbed input).
    pub fn noise_free_input(&self) -> bool {
        !matches!(self, Defence::InputNoise { .. })
    }

    /// A short label for tables, e.g. `random-answers p=0.1`.
    pub fn label(&self) -> String {
        match *self {
            Defence::None => "none".into(),
            Defence::RandomAnswers { p } => format!("random-answers p={p}"),
            Defence::InputNoise { sigma } => format!("input-noise sigma={sigma}"),
            Defence::QueryBudget { cap } => format!("query-budget {cap}"),
        }
    }
}

/// The adaptive attacker against randomised answers: asks every probe `votes` times (odd)
/// in the same batch and keeps the majority. Each repetition is a query and is counted.
pub struct MajorityVote<'a> {
    inner: &'a dyn ChangeOracle,
    votes: usize,
}

impl<'a> MajorityVote<'a> {
    pub fn new(inner: &'a dyn ChangeOracle, votes: usize) -> Result<Self> {
        if votes == 0 || votes.is_multiple_of(2) {
            return Err(Error::invalid("votes", format!("{votes} (must be odd)")));
        }
        Ok(MajorityVote { inner, votes })
    }

    fn vote(&self, bits: Vec<bool>, n: usize) -> Vec<bool> {
        (0..n).map(|i| (0..self.votes).filter(|r| bits[r * n + i]).count() * 2 > self.votes).collect()
    }
}

impl ChangeOracle for MajorityVote<'_> {
    fn input_len(&self) -> usize {
        self.inner.input_len()
    }
    fn changed(&self, perturbations: &[f32]) -> Result<Vec<bool>> {
        let n = perturbations.len() / self.input_len().max(1);
        let all: Vec<f32> = (0..self.votes).flat_map(|_| perturbations.iter().copied()).collect();
        Ok(self.vote(self.inner.changed(&all)?, n))
    }
    fn changed_along(&self, dirs: &Directions, probes: &[Probe]) -> Result<Vec<bool>> {
        let all: Vec<Probe> = (0..self.votes).flat_map(|_| probes.iter().copied()).collect();
        Ok(self.vote(self.inner.changed_along(dirs, &all)?, probes.len()))
    }
    fn queries(&self) -> u64 {
        self.inner.queries()
    }
    fn queries_per_answer(&self) -> u64 {
        self.votes as u64 * self.inner.queries_per_answer()
    }
}

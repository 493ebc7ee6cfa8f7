//! Defences a server can put in front of the oracle, each with a strength knob. A defence owns
//! its behaviour: what it admits, how it perturbs inputs, answers and scores, and what the
//! served decisions look like to the service's users. The oracle calls these hooks and never
//! matches on the variant, so a new defence is one variant here plus one study block.
//!
//! A defence is applied by the oracle itself (`LocalOracle::defended`), never by attack code,
//! so the attack keeps seeing nothing but what the service answers. The attacker's answer to
//! the randomised ones (repeat and vote) is `signature::MajorityVote`. The model-side defence
//! of the study, a target trained to be smooth, lives in training (`TrainConfig::input_noise`).

use crate::error::{Error, Result};
use crate::rng::Rng;
use serde::{Deserialize, Serialize};

/// A defence in front of the oracle, with its strength.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Defence {
    /// The paper's oracle: the true change bit.
    #[default]
    None,
    /// Each answer is flipped with probability `p` (independently per query).
    RandomAnswers {
        /// Probability of a lie, `0 <= p < 0.5`.
        p: f32,
    },
    /// Gaussian noise of standard deviation `sigma` (per pixel) is added to the input before
    /// every decision, including the decision on the unperturbed secret (randomised smoothing
    /// with one sample, so it costs the server nothing extra but the noise).
    InputNoise {
        /// Standard deviation per pixel.
        sigma: f32,
    },
    /// At most `cap` queries per secret; further batches are refused.
    QueryBudget {
        /// Queries allowed per secret.
        cap: u64,
    },
    /// Published scores (softmax probabilities) are rounded to `decimals` decimal places;
    /// decisions, and so change bits and labels, are unchanged.
    RoundScores {
        /// Decimal places kept, at most 7.
        decimals: u32,
    },
}

impl Defence {
    /// Refuses knobs outside their range.
    pub fn validate(&self) -> Result<()> {
        let ok = match *self {
            Defence::None => true,
            Defence::RandomAnswers { p } => (0.0..0.5).contains(&p),
            Defence::InputNoise { sigma } => sigma.is_finite() && sigma >= 0.0,
            Defence::QueryBudget { cap } => cap > 0,
            Defence::RoundScores { decimals } => decimals <= 7,
        };
        if ok {
            Ok(())
        } else {
            Err(Error::invalid("defence", format!("{self:?}: need 0 <= p < 0.5, sigma >= 0, cap > 0, decimals <= 7")))
        }
    }

    /// The variant's name, e.g. `random-answers` (the study's cell variant).
    pub fn name(&self) -> &'static str {
        match self {
            Defence::None => "none",
            Defence::RandomAnswers { .. } => "random-answers",
            Defence::InputNoise { .. } => "input-noise",
            Defence::QueryBudget { .. } => "query-budget",
            Defence::RoundScores { .. } => "round-scores",
        }
    }

    /// The strength knob as a number (for curves; 0 for none).
    pub fn knob(&self) -> f64 {
        match *self {
            Defence::None => 0.0,
            Defence::RandomAnswers { p } => p as f64,
            Defence::InputNoise { sigma } => sigma as f64,
            Defence::QueryBudget { cap } => cap as f64,
            Defence::RoundScores { decimals } => decimals as f64,
        }
    }

    /// A short label for tables, e.g. `random-answers p=0.1`.
    pub fn label(&self) -> String {
        match *self {
            Defence::None => "none".into(),
            Defence::RandomAnswers { p } => format!("random-answers p={p}"),
            Defence::InputNoise { sigma } => format!("input-noise sigma={sigma}"),
            Defence::QueryBudget { cap } => format!("query-budget {cap}"),
            Defence::RoundScores { decimals } => format!("round-scores d={decimals}"),
        }
    }

    /// Admits a batch of `n` queries after `spent` (refusing the whole batch when it would
    /// pass a budget).
    pub fn admit(&self, spent: u64, n: u64) -> Result<()> {
        match *self {
            Defence::QueryBudget { cap } if spent + n > cap => Err(Error::Budget(cap)),
            _ => Ok(()),
        }
    }

    /// Whether decisions are taken on the input exactly as perturbed (so the oracle may use
    /// the lifted first layer instead of materialising each perturbed input).
    pub fn noise_free_input(&self) -> bool {
        !matches!(self, Defence::InputNoise { .. })
    }

    /// Perturbs inputs in place before the model decides on them (draws in value order).
    pub fn perturb_inputs(&self, x: &mut [f32], rng: &mut Rng) {
        if let Defence::InputNoise { sigma } = *self {
            x.iter_mut().for_each(|v| *v += sigma * rng.normal());
        }
    }

    /// Perturbs change bits in place before they are answered (draws in query order).
    pub fn perturb_answers(&self, bits: &mut [bool], rng: &mut Rng) {
        if let Defence::RandomAnswers { p } = *self {
            bits.iter_mut().for_each(|b| *b ^= rng.uniform() < p);
        }
    }

    /// Perturbs a published score vector (softmax probabilities) in place.
    pub fn perturb_scores(&self, probs: &mut [f32]) {
        if let Defence::RoundScores { decimals } = *self {
            let scale = 10f32.powi(decimals as i32);
            probs.iter_mut().for_each(|p| *p = (*p * scale).round() / scale);
        }
    }

    /// The decision a user of the defended service receives for an input with `logits` (the
    /// input already perturbed by `perturb_inputs`).
    pub fn served_class(&self, logits: &[f32], rng: &mut Rng) -> usize {
        let top = crate::argmax(logits);
        let c = logits.len();
        match *self {
            // a lie about "changed" is, to a user, a different class than the model's
            Defence::RandomAnswers { p } if c > 1 && rng.uniform() < p => (top + 1 + rng.below(c - 1)) % c,
            _ => top,
        }
    }
}

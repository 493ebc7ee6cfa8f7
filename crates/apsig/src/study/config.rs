//! What a study measures, and its presets (`small` runs here in under an hour, `full` is for
//! bigger machines, `smoke` is for tests).

use crate::decoder::DecoderConfig;
use crate::directions::Strategy;
use crate::error::{Error, Result};
use crate::model::TrainConfig;
use crate::signature::SearchConfig;
use serde::{Deserialize, Serialize};

/// Everything that determines a study (`study.toml`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StudyConfig {
    /// Data sets, by name (`mnist`, `fashion-mnist`) or IDX directory.
    pub datasets: Vec<String>,
    /// Seed of every model, direction and draw.
    pub seed: u64,
    /// Train the target and the evaluator on the first N training images (0 = all).
    pub classifier_images: usize,
    /// Training of the target M.
    pub target: TrainConfig,
    /// Training of the independent evaluator.
    pub evaluator: TrainConfig,
    /// K of every comparison except the K sweep.
    pub k: usize,
    /// Training signatures (adversary's own data, white-box route) per cell.
    pub train_signatures: usize,
    /// Secrets (test images) attacked per cell; the defence, budget and label-only baseline
    /// cells (flip rates, boundary distance, predicted search) use the first `defence_secrets`
    /// of them (each of their queries is dearer: defended, or one of many per budget).
    pub secrets: usize,
    /// See `secrets`.
    pub defence_secrets: usize,
    /// Search on the adversary's own data (margins) and on secrets (change bit only).
    pub train_search: SearchConfig,
    /// See `train_search`.
    pub secret_search: SearchConfig,
    /// Every cell's decoder.
    pub decoder: DecoderConfig,
    /// Direction strategies compared.
    pub strategies: Vec<Strategy>,
    /// Per-secret query cap at which all strategies are also compared (equal queries).
    pub strategy_budget: u64,
    /// K of the K sweep.
    pub k_sweep: Vec<usize>,
    /// Training-set sizes of the size sweep.
    pub train_sizes: Vec<usize>,
    /// Per-secret query budgets (the budget sweep and the budget defence).
    pub budgets: Vec<u64>,
    /// Probabilities of a lying oracle, and the attacker's majority-vote repeats.
    pub random_answers: Vec<f32>,
    /// See `random_answers`.
    pub votes: Vec<usize>,
    /// Per-pixel standard deviations of the input-noise defence.
    pub input_noise: Vec<f32>,
    /// Training-noise levels of the smoothed target (the model-side defence).
    pub smooth_training: Vec<f32>,
    /// Decimal places of the score-vector oracle's rounded output (the rounding defence).
    #[serde(default)]
    pub round_scores: Vec<u32>,
    /// Ridge penalty of the linear probes that predict attributes from signatures.
    pub attribute_ridge: f64,
    /// Noise magnitudes of the flip-rate baseline, compared at each of `budgets`.
    #[serde(default = "default_flip_rate_magnitudes")]
    pub flip_rate_magnitudes: usize,
    /// Gradient probes of the boundary-distance baseline's first iteration (HopSkipJump's
    /// B0), compared at each of `budgets` (0 leaves it out).
    #[serde(default = "default_boundary_grad_queries")]
    pub boundary_grad_queries: usize,
    /// The search with predicted brackets at each of `budgets`, directions in groups of this
    /// many (0 leaves it out).
    #[serde(default)]
    pub predict_group: usize,
    /// Relative tolerance of that search (coarser than `secret_search`'s: the prediction
    /// spends the queries saved where the decoder needs them).
    #[serde(default = "default_predicted_rel_tol")]
    pub predicted_rel_tol: f32,
    /// Coarser tolerances that search falls back to under a budget: at each budget it uses the
    /// finest of `predicted_rel_tol` and these whose mean queries on the adversary's own images
    /// fit the budget (the coarsest where none fits), so a small budget measures more
    /// directions roughly instead of a few precisely.
    #[serde(default = "default_budget_rel_tols")]
    pub budget_rel_tols: Vec<f32>,
    /// Train the predicted search's decoder at each budget on the adversary's own images
    /// measured by that same capped search (false: the reference decoder, trained on exact
    /// white-box eps), as each baseline's decoder reads features measured as the secrets' are.
    #[serde(default = "default_budget_decoders")]
    pub budget_decoders: bool,
    /// More seeds for the comparisons: their blocks (the direction strategies, the capped and
    /// the predicted search, the label-only baselines) run again with the target, evaluator,
    /// directions and decoders drawn from each, and a winner is named only where every seed
    /// agrees.
    #[serde(default)]
    pub comparison_seeds: Vec<u64>,
}

fn default_flip_rate_magnitudes() -> usize {
    8
}

fn default_boundary_grad_queries() -> usize {
    100
}

fn default_predicted_rel_tol() -> f32 {
    0.1
}

fn default_budget_decoders() -> bool {
    true
}

fn default_budget_rel_tols() -> Vec<f32> {
    vec![0.3, 0.5]
}

impl StudyConfig {
    /// The default: both data sets, every row of the study, in under an hour on two cores.
    pub fn small(seed: u64) -> Self {
        StudyConfig {
            datasets: vec!["mnist".into(), "fashion-mnist".into()],
            seed,
            classifier_images: 30_000,
            target: TrainConfig::new(3, 128, 2e-3, seed),
            evaluator: TrainConfig::new(3, 128, 2e-3, seed.wrapping_add(1000)),
            k: 100,
            train_signatures: 2_000,
            secrets: 300,
            defence_secrets: 150,
            train_search: SearchConfig::decoder_grade(256.0),
            secret_search: SearchConfig::decoder_grade(256.0),
            decoder: DecoderConfig {
                width: 16,
                hidden: 0,
                use_mask: true,
                class_weight: 0.0,
                class_noise: 0.0,
                loss: Default::default(),
                palette: false,
                train: TrainConfig::new(15, 64, 2e-3, seed.wrapping_add(2000)),
            },
            // `low-frequency-tinted` draws `low-frequency`'s directions on grey data (the default
            // data sets): a block of its own would measure the same thing twice
            strategies: Strategy::ALL.into_iter().filter(|s| *s != Strategy::LowFrequencyTinted).collect(),
            strategy_budget: 400,
            k_sweep: vec![10, 25, 50, 100, 200],
            train_sizes: vec![500, 1_000, 2_000],
            budgets: vec![100, 200, 400, 800],
            random_answers: vec![0.02, 0.1, 0.25],
            votes: vec![1, 5],
            input_noise: vec![0.1, 0.3, 0.6],
            smooth_training: vec![0.3, 0.6],
            round_scores: vec![1, 2, 3],
            attribute_ridge: 10.0,
            flip_rate_magnitudes: default_flip_rate_magnitudes(),
            boundary_grad_queries: default_boundary_grad_queries(),
            predict_group: 10,
            predicted_rel_tol: default_predicted_rel_tol(),
            budget_rel_tols: default_budget_rel_tols(),
            budget_decoders: default_budget_decoders(),
            comparison_seeds: Vec::new(),
        }
    }

    /// The study at the paper's scale (hours on two cores; meant for bigger machines).
    pub fn full(seed: u64) -> Self {
        let mut c = Self::small(seed);
        c.classifier_images = 0;
        c.target.epochs = 5;
        c.evaluator.epochs = 4;
        c.train_signatures = 60_000;
        c.secrets = 2_000;
        c.defence_secrets = 1_000;
        c.decoder.width = 64;
        c.decoder.train = TrainConfig::new(10, 128, 2e-3, seed.wrapping_add(2000));
        c.k_sweep = vec![10, 25, 50, 100, 200, 400];
        c.train_sizes = vec![1_000, 5_000, 20_000, 60_000];
        c.budgets = vec![100, 200, 400, 800, 1600];
        c.random_answers = vec![0.02, 0.05, 0.1, 0.2, 0.3];
        c.votes = vec![1, 3, 5, 9];
        c.input_noise = vec![0.05, 0.1, 0.2, 0.3, 0.6];
        c.smooth_training = vec![0.1, 0.3, 0.6];
        c
    }

    /// Every row of the study in seconds: for tests.
    pub fn smoke(seed: u64) -> Self {
        let mut c = Self::small(seed);
        c.datasets = vec!["mnist".into()];
        c.classifier_images = 3_000;
        c.target.epochs = 1;
        c.evaluator.epochs = 1;
        c.k = 12;
        c.train_signatures = 300;
        c.secrets = 40;
        c.defence_secrets = 20;
        c.decoder.width = 4;
        c.decoder.train.epochs = 2;
        c.strategy_budget = 60;
        c.k_sweep = vec![6, 12, 24];
        c.train_sizes = vec![150, 300];
        c.budgets = vec![30, 60];
        c.boundary_grad_queries = 10;
        c.random_answers = vec![0.1];
        c.votes = vec![1, 3];
        c.input_noise = vec![0.3];
        c.smooth_training = vec![0.3];
        c
    }

    /// A preset by name: `small`, `full` or `smoke`.
    pub fn preset(name: &str, seed: u64) -> Result<Self> {
        match name {
            "small" => Ok(Self::small(seed)),
            "full" => Ok(Self::full(seed)),
            "smoke" => Ok(Self::smoke(seed)),
            other => Err(Error::invalid("study preset", format!("`{other}` (choose small, full or smoke)"))),
        }
    }

    /// What a finished block's rows depend on: the config without the lists that only add
    /// blocks or data sets (`strategies`, `datasets`, `comparison_seeds`), so a study can grow by
    /// those and keep its rows, while any other change (secrets, budgets, the decoder, a seed)
    /// would mix rows of two configs.
    pub fn rows_fingerprint(&self) -> String {
        let mut c = self.clone();
        c.strategies.clear();
        c.datasets.clear();
        c.comparison_seeds.clear();
        crate::io::sha256_hex(c.to_toml().as_bytes())
    }

    /// This config with every seed moved by `seed - self.seed` (so each keeps its offset from
    /// `seed`), for one of `comparison_seeds`.
    pub fn reseeded(&self, seed: u64) -> Self {
        let shift = |s: u64| s.wrapping_add(seed.wrapping_sub(self.seed));
        let mut c = self.clone();
        c.seed = seed;
        c.target.seed = shift(c.target.seed);
        c.evaluator.seed = shift(c.evaluator.seed);
        c.decoder.train.seed = shift(c.decoder.train.seed);
        c.comparison_seeds.clear();
        c
    }

    /// Refuses configs that cannot run.
    pub fn validate(&self) -> Result<()> {
        self.train_search.validate()?;
        self.secret_search.validate()?;
        self.decoder.validate()?;
        let bad = |msg: &str| Err(Error::invalid("study config", msg.to_string()));
        if self.datasets.is_empty() || self.strategies.is_empty() {
            return bad("needs at least one data set and one strategy");
        }
        if self.k == 0 || self.k_sweep.contains(&0) {
            return bad("K must be positive");
        }
        if self.train_signatures < 2 || self.secrets == 0 || self.defence_secrets == 0 {
            return bad("needs at least 2 training signatures and 1 secret");
        }
        if self.defence_secrets > self.secrets {
            return bad("defence_secrets must not exceed secrets");
        }
        if self.train_sizes.iter().any(|&n| n < 2 || n > self.train_signatures) {
            return bad("every training size must be between 2 and train_signatures");
        }
        if self.votes.iter().any(|v| v % 2 == 0) {
            return bad("votes must be odd");
        }
        let tolerance = |t: &f32| t.is_finite() && *t > 0.0;
        if !tolerance(&self.predicted_rel_tol) || !self.budget_rel_tols.iter().all(tolerance) {
            return bad("search tolerances must be positive and finite");
        }
        if self.budgets.contains(&0) || self.budgets.windows(2).any(|w| w[0] >= w[1]) {
            return bad("budgets must be positive and ascending");
        }
        let mut seeds = self.comparison_seeds.clone();
        seeds.push(self.seed);
        seeds.sort_unstable();
        if seeds.windows(2).any(|w| w[0] == w[1]) {
            return bad("comparison_seeds must differ from each other and from seed");
        }
        if self.random_answers.iter().any(|p| !(0.0..0.5).contains(p)) {
            return bad("random-answer probabilities must lie in [0, 0.5)");
        }
        Ok(())
    }

    /// The largest K any cell needs: Gaussian signatures are measured once at this K and
    /// sliced for the K sweep (directions are drawn in sequence, so prefixes agree).
    pub fn k_max(&self) -> usize {
        self.k_sweep.iter().copied().chain([self.k]).max().unwrap_or(self.k)
    }

    /// The predicted search's tolerances, finest first: `predicted_rel_tol` and the coarser
    /// `budget_rel_tols`.
    pub fn predicted_tolerances(&self) -> Vec<f32> {
        let mut t: Vec<f32> = self.budget_rel_tols.iter().copied().filter(|&t| t > self.predicted_rel_tol).collect();
        t.push(self.predicted_rel_tol);
        t.sort_by(f32::total_cmp);
        t.dedup();
        t
    }

    /// The config as TOML.
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("study config serialises")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reseeding_moves_every_seed_and_keeps_their_offsets() {
        let c = StudyConfig::small(1);
        let r = c.reseeded(5);
        assert_eq!((r.seed, r.target.seed, r.evaluator.seed, r.decoder.train.seed), (5, 5, 1005, 2005));
        assert_eq!(
            StudyConfig {
                seed: 1,
                target: c.target.clone(),
                evaluator: c.evaluator.clone(),
                decoder: c.decoder.clone(),
                ..r
            },
            c
        );
    }

    #[test]
    fn repeated_seeds_and_unordered_budgets_are_refused() {
        let mut c = StudyConfig::smoke(1);
        c.comparison_seeds = vec![2, 3];
        assert!(c.validate().is_ok());
        c.comparison_seeds = vec![2, 2];
        assert!(c.validate().is_err());
        c.comparison_seeds = vec![1];
        assert!(c.validate().is_err());
        c.comparison_seeds.clear();
        c.budget_rel_tols = vec![0.5, 0.05, 0.3, 0.5];
        assert_eq!(c.predicted_tolerances(), vec![0.1, 0.3, 0.5], "finest first, none finer than predicted_rel_tol");
        c.budget_rel_tols.push(f32::NAN);
        assert!(c.validate().is_err());
        c.budget_rel_tols.clear();
        for budgets in [vec![60, 30], vec![0, 30], vec![30, 30]] {
            c.budgets = budgets;
            assert!(c.validate().is_err(), "{:?}", c.budgets);
        }
    }
}

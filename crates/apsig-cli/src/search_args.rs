//! The eps search's options, one declaration for `apsig signatures` and `apsig attack`.

use anyhow::{bail, Result};
use apsig::signature::{OwnedPrior, SearchConfig, SignatureSet};
use clap::Args;
use std::path::PathBuf;

#[derive(Args)]
pub struct SearchArgs {
    /// Start each direction at the median eps of these (training) signatures.
    #[arg(long)]
    prior: Option<PathBuf>,
    /// With --prior: measure the directions in groups of N, each group's brackets predicted
    /// from the eps already measured on the same image by a Gaussian model of the prior's
    /// ln eps (fewer queries for the same precision; use a coarser --rel-tol such as 0.1 with
    /// it); 0 searches all directions at once.
    #[arg(long, default_value_t = 0, requires = "prior")]
    predict_group: usize,
    /// With --predict-group: where a prediction jumps past a direction's median eps in the
    /// prior, check the median too, so the eps found is the crossing a search started there
    /// finds (one to three probes more per direction the prediction jumped past: the check
    /// and up to two grid steps walked up from it).
    #[arg(long, requires = "predict_group")]
    median_checks: bool,
    /// First eps probed along each direction, where no --prior says otherwise.
    #[arg(long, default_value_t = 0.5)]
    start: f32,
    /// Factor of the geometric bracketing grid (> 1) [default: the command's search, see its
    /// --help]
    #[arg(long)]
    growth: Option<f32>,
    /// Largest eps probed; a direction that has not changed by then is censored.
    #[arg(long, default_value_t = 256.0)]
    eps_max: f32,
    /// Stop refining once the bracket's ends are within this relative distance [default: the
    /// command's search, see its --help]
    #[arg(long)]
    rel_tol: Option<f32>,
}

impl SearchArgs {
    /// The search these options ask for, `growth` and `rel_tol` falling back to the command's
    /// own `defaults`.
    pub fn config(&self, defaults: &SearchConfig) -> Result<SearchConfig> {
        let search = SearchConfig {
            start: self.start,
            growth: self.growth.unwrap_or(defaults.growth),
            eps_max: self.eps_max,
            eps_min: defaults.eps_min,
            rel_tol: self.rel_tol.unwrap_or(defaults.rel_tol),
        };
        search.validate()?;
        Ok(search)
    }

    /// Where each of the `k` directions' searches starts: the prior's medians or its predicted
    /// brackets, else `search.start` for all.
    pub fn prior(&self, k: usize, search: &SearchConfig) -> Result<OwnedPrior> {
        let Some(path) = &self.prior else {
            return Ok(OwnedPrior::Starts(vec![search.start; k]));
        };
        let set = SignatureSet::load(path)?;
        if set.k != k {
            bail!("{}: a prior for K = {}, the directions have K = {k}", path.display(), set.k);
        }
        Ok(set.search_prior(self.predict_group, self.median_checks)?)
    }
}

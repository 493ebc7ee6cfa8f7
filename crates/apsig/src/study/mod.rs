//! `apsig study`: the questions the paper leaves open, answered with measurements under the
//! evaluation protocol of METHOD.md — direction strategies, oracle variants, defences, sweeps
//! over K, training size and query budget, and attributes predicted without pixels — for
//! every data set, from one command.
//!
//! Work is cut into *blocks* (one strategy, one defence family, one sweep...). Each block's
//! rows are written atomically to `<dir>/<dataset>/cells/<block>.json` when it finishes and a
//! rerun skips finished blocks, so a killed study loses at most the block in flight.
//! Signature sets are kept too, so decoders can be retrained without new queries.

mod config;
mod dataset;
mod report;

pub use config::StudyConfig;
pub use dataset::DatasetStudy;
pub use report::write_report;

use crate::attributes::AttributeReport;
use crate::error::{Error, Result};
use crate::eval::{PerSecret, Quality};
use crate::Progress;
use apsig_data::DataOptions;
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::time::Instant;

/// One row of the study: an attack configuration and what it achieved at what cost.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Cell {
    /// `strategy`, `strategy@budget`, `oracle`, `k`, `train-size`, `defence`.
    pub group: String,
    /// What varies within the group, e.g. `adversarial`, `label`, `random-answers`.
    pub variant: String,
    /// The group's knob: K, training size, p, sigma, budget... (for curves).
    pub knob: f64,
    /// Majority-vote repeats of the attacker (1 = none).
    pub votes: usize,
    /// Directions per signature (0 for the score vector).
    pub k: usize,
    /// Training signatures the decoder saw.
    pub train_signatures: usize,
    /// Secrets attacked.
    pub secrets: usize,
    /// Oracle queries spent per secret image (votes included).
    pub queries_per_image: f64,
    /// Fraction of the secrets' eps that never flipped.
    pub censored_fraction: f64,
    /// Reconstruction quality.
    pub quality: Quality,
    /// The defender's cost: top-1 accuracy of the served decisions on the test split.
    pub clean_accuracy: f64,
    /// The defender's cost: time to serve a batch of decisions, relative to no defence.
    pub latency_ratio: f64,
    /// Each secret's outcome, kept for the cells the comparisons put intervals on
    /// (`Cell::compared`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_secret: Option<PerSecret>,
    /// The search's relative tolerance, where the cell chose it (the predicted search under a
    /// budget).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rel_tol: Option<f64>,
}

impl Cell {
    /// Whether a comparison with intervals uses this cell (the oracle variants, the defences,
    /// the direction strategies, the capped search and the label-only baselines), so its
    /// per-secret outcomes are kept. The sweeps over K and training size are not compared.
    pub fn compared(group: &str) -> bool {
        !matches!(group, "k" | "train-size")
    }
}

/// Everything measured on one data set.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DatasetSummary {
    /// The data set's name.
    pub dataset: String,
    /// Test accuracy of the target M.
    pub target_accuracy: f64,
    /// Test accuracy of the independent evaluator.
    pub evaluator_accuracy: f64,
    /// The global mean image as every reconstruction.
    pub global_mean_baseline: Quality,
    /// The true class's mean image as each reconstruction.
    pub class_mean_baseline: Quality,
    /// Every row.
    pub cells: Vec<Cell>,
    /// Class and style read off the signatures.
    pub attributes: AttributeReport,
    /// The comparisons (oracles, defences, strategies, baselines) again at each of the config's
    /// `comparison_seeds`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub replicates: Vec<Replicate>,
}

/// The comparisons' cells at another seed.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Replicate {
    /// The seed every model, direction and draw came from.
    pub seed: u64,
    /// Test accuracy of that seed's target M.
    pub target_accuracy: f64,
    /// Test accuracy of that seed's evaluator.
    pub evaluator_accuracy: f64,
    /// The comparison's cells (`DatasetStudy::run_comparison`).
    pub cells: Vec<Cell>,
}

/// A whole study (`study.json`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StudySummary {
    /// What was run.
    pub config: StudyConfig,
    /// One summary per data set.
    pub datasets: Vec<DatasetSummary>,
    /// Wall time.
    pub seconds: f64,
}

/// Runs (or resumes) the whole study into `dir` and writes `study.json`, `study.md` and the
/// figures.
pub fn run(cfg: &StudyConfig, dir: &Path, data_opts: &DataOptions, progress: &dyn Progress) -> Result<StudySummary> {
    cfg.validate()?;
    let t0 = Instant::now();
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    check_rows_config(cfg, dir)?;
    crate::io::atomic_write(&dir.join("study.toml"), cfg.to_toml().as_bytes())?;
    let mut datasets = Vec::new();
    for name in &cfg.datasets {
        progress.message(&format!("study: {name}"));
        let data = apsig_data::load(name, data_opts)?;
        let sub = dir.join(slug(&data.name));
        let study = DatasetStudy::prepare(cfg, data, &sub, progress)?;
        let mut summary = study.run_all()?;
        let mut data = study.into_data();
        for &seed in &cfg.comparison_seeds {
            progress.message(&format!("study: {name}, comparisons at seed {seed}"));
            let reseeded = cfg.reseeded(seed);
            let study = DatasetStudy::prepare(&reseeded, data, &sub.join(format!("seed-{seed}")), progress)?;
            let (target_accuracy, evaluator_accuracy) = study.accuracies();
            summary.replicates.push(Replicate {
                seed,
                target_accuracy,
                evaluator_accuracy,
                cells: study.run_comparison()?,
            });
            data = study.into_data();
        }
        datasets.push(summary);
    }
    let summary = StudySummary { config: cfg.clone(), datasets, seconds: t0.elapsed().as_secs_f64() };
    crate::io::atomic_write(
        &dir.join("study.json"),
        serde_json::to_string_pretty(&summary).expect("serialises").as_bytes(),
    )?;
    write_report(dir, &summary)?;
    Ok(summary)
}

/// Refuses to resume into `dir` when its rows were measured under another config (a finished
/// block is reused by its name, so its rows would sit beside rows of the new config), before
/// anything is written; stamps a fresh directory with the config its rows will have. Each data
/// set's rows and each comparison seed's (a config derived from this one) are covered. A
/// directory of rows without a stamp (written before stamps) is stamped as it is.
fn check_rows_config(cfg: &StudyConfig, dir: &Path) -> Result<()> {
    let stamp = dir.join(ROWS_STAMP);
    let want = cfg.rows_fingerprint();
    match std::fs::read_to_string(&stamp) {
        Ok(had) if had.trim() == want => Ok(()),
        Ok(_) => Err(Error::invalid(
            dir.display().to_string(),
            "these rows were measured under another study config (only strategies, datasets and comparison_seeds may change on a resume): use a fresh --out, or the config in its study.toml",
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => crate::io::atomic_write(&stamp, want.as_bytes()),
        Err(e) => Err(Error::io(&stamp, e)),
    }
}

/// The file in a study directory naming the config its rows were measured under.
const ROWS_STAMP: &str = "rows-config.sha256";

/// Renders `study.md` and the figures again from a finished study's `study.json` (to change
/// the report without measuring anything again).
pub fn rerender(dir: &Path) -> Result<StudySummary> {
    let path = dir.join("study.json");
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
    let summary: StudySummary =
        serde_json::from_str(&text).map_err(|e| Error::bad_file(&path, format!("not a study summary: {e}")))?;
    write_report(dir, &summary)?;
    Ok(summary)
}

/// A file-name-safe form of a label.
pub(crate) fn slug(s: &str) -> String {
    s.chars().map(|c| if c.is_ascii_alphanumeric() || c == '.' || c == '-' { c } else { '-' }).collect()
}

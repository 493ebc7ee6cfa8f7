//! `metrics.json`: every number a run reports, with the cost that bought it.

use crate::eval::colour::ColourFidelity;
use crate::eval::Quality;
use crate::model::TrainReport;
use crate::signature::SignatureSet;
use serde::Serialize;

/// Everything a run measured (`metrics.json`).
#[derive(Clone, Debug, Serialize)]
pub struct Metrics {
    /// The data set's name.
    pub dataset: String,
    /// Test accuracy of the target M.
    pub target_test_accuracy: f32,
    /// Test accuracy of the independent evaluator.
    pub evaluator_test_accuracy: f32,
    /// Directions per signature.
    pub k: usize,
    /// The adversary's training signatures.
    pub train_signatures: SignatureStats,
    /// The secrets' signatures.
    pub test_signatures: SignatureStats,
    /// The decoder's training.
    pub decoder_train: TrainReport,
    /// Reconstructions from test signatures.
    pub decoder: Quality,
    /// The global mean image as the reconstruction of every secret.
    pub global_mean_baseline: Quality,
    /// The true class's mean image as the reconstruction of each secret.
    pub class_mean_baseline: Quality,
    /// Fraction of reconstructions that M itself classifies as it classifies the original.
    pub target_agreement: f64,
    /// Colour images only: how well the foreground and background colours come back.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub colour: Option<ColourFidelity>,
    /// Wall time of each stage.
    pub stage_seconds: Vec<StageTime>,
    /// Wall time of the whole run.
    pub total_seconds: f64,
    /// Peak resident memory of the run's process (MiB).
    pub peak_rss_mib: f64,
    /// The CPU (`model name`) and threads the times were measured with.
    pub machine: String,
}

/// Wall time of one stage.
#[derive(Clone, Debug, Serialize)]
pub struct StageTime {
    /// The stage's name.
    pub stage: String,
    /// Its wall time (0 when its artefact was reused).
    pub seconds: f64,
}

/// The cost and shape of a signature set.
#[derive(Clone, Debug, Serialize)]
pub struct SignatureStats {
    /// Images in the set.
    pub images: usize,
    /// How eps was measured.
    pub method: String,
    /// Probes per eps.
    pub queries_per_eps: f64,
    /// Probes per image (all K directions).
    pub queries_per_image: f64,
    /// Fraction of eps that never flipped.
    pub censored_fraction: f64,
    /// Median eps over the set.
    pub median_eps: f64,
}

impl SignatureStats {
    /// The figures of `s`.
    pub fn of(s: &SignatureSet) -> Self {
        let mut e = s.eps.clone();
        e.sort_by(f32::total_cmp);
        let method = serde_json::from_str::<serde_json::Value>(s.prov("extract"))
            .ok()
            .and_then(|v| v.get("method").and_then(|m| m.as_str()).map(String::from))
            .unwrap_or_default();
        SignatureStats {
            images: s.n(),
            method,
            queries_per_eps: s.queries_per_eps(),
            queries_per_image: s.total_queries() as f64 / s.n().max(1) as f64,
            censored_fraction: s.censored_fraction(),
            median_eps: e.get(e.len() / 2).copied().unwrap_or(f32::NAN) as f64,
        }
    }
}

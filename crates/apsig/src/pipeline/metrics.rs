//! `metrics.json`: every number a run reports, with the cost that bought it.

use crate::eval::Quality;
use crate::model::TrainReport;
use crate::signature::SignatureSet;
use serde::Serialize;

#[derive(Clone, Debug, Serialize)]
pub struct Metrics {
    pub dataset: String,
    pub target_test_accuracy: f32,
    pub evaluator_test_accuracy: f32,
    pub k: usize,
    pub train_signatures: SignatureStats,
    pub test_signatures: SignatureStats,
    pub decoder_train: TrainReport,
    /// Reconstructions from test signatures.
    pub decoder: Quality,
    pub global_mean_baseline: Quality,
    pub class_mean_baseline: Quality,
    /// Fraction of reconstructions that M itself classifies as it classifies the original.
    pub target_agreement: f64,
    pub stage_seconds: Vec<StageTime>,
    pub total_seconds: f64,
    /// Peak resident memory of the run's process (MiB).
    pub peak_rss_mib: f64,
    /// The CPU (`model name`) and threads the times were measured with.
    pub machine: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct StageTime {
    pub stage: String,
    pub seconds: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct SignatureStats {
    pub images: usize,
    pub method: String,
    pub queries_per_eps: f64,
    pub queries_per_image: f64,
    pub censored_fraction: f64,
    pub median_eps: f64,
}

impl SignatureStats {
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

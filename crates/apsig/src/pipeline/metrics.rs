//! `metrics.json`: every number a run reports, with the cost that bought it.

use crate::error::{Error, Result};
use crate::eval::colour::ColourFidelity;
use crate::eval::Quality;
use crate::model::{Arch, SuppliedModel, TrainReport};
use crate::signature::SignatureSet;
use serde::Serialize;
use std::path::Path;

/// Everything a run measured (`metrics.json`).
#[derive(Clone, Debug, Serialize)]
pub struct Metrics {
    /// The data set's name.
    pub dataset: String,
    /// The target M and the evaluator: which files, and whether the user supplied them.
    pub models: Models,
    /// Test accuracy of the target M.
    pub target_test_accuracy: f32,
    /// Test accuracy of the independent evaluator.
    pub evaluator_test_accuracy: f32,
    /// Test accuracy of the class guide's critic, where the run trained one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub critic_test_accuracy: Option<f32>,
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
    /// With a palette decision (`decoder.palette`): the network's output before it, scored
    /// the same way, so what the decision bought and cost is on record.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub undecided: Option<Undecided>,
    /// Wall time of each stage.
    pub stage_seconds: Vec<StageTime>,
    /// Wall time of the whole run.
    pub total_seconds: f64,
    /// Peak resident memory of the run's process (MiB).
    pub peak_rss_mib: f64,
    /// The CPU (`model name`) and threads the times were measured with.
    pub machine: String,
}

/// The decoder network's own reconstructions, before the palette decided their colours.
#[derive(Clone, Debug, Serialize)]
pub struct Undecided {
    /// Their quality.
    pub decoder: Quality,
    /// Their colours (colour images only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub colour: Option<ColourFidelity>,
}

/// The classifiers of a run.
#[derive(Clone, Debug, Serialize)]
pub struct Models {
    /// The target M, the model attacked.
    pub target: ModelRecord,
    /// The independent evaluator of class recovery.
    pub evaluator: ModelRecord,
    /// The class guide's critic, where the run trained one (a guided decoder against the
    /// user's target; against apsig's own M, M is the critic).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub critic: Option<ModelRecord>,
}

/// Which model played a role, and where it came from.
#[derive(Clone, Debug, Serialize)]
pub struct ModelRecord {
    /// The user brought the file (else apsig trained it in this run directory).
    pub user_supplied: bool,
    /// The file the model was loaded from or saved to.
    pub file: String,
    /// SHA-256 of the file (hex).
    pub sha256: String,
    /// What the model is, e.g. `targetnet-s, trained by apsig` or `ONNX, NCHW [N,3,32,32] input`.
    pub description: String,
}

impl ModelRecord {
    /// The record of a model the user supplied.
    pub fn supplied(m: &SuppliedModel) -> Self {
        ModelRecord {
            user_supplied: true,
            file: m.file.display().to_string(),
            sha256: m.sha256.clone(),
            description: m.description.clone(),
        }
    }

    /// The record of a model apsig trained and saved at `path`.
    pub fn trained(arch: Arch, path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        Ok(ModelRecord {
            user_supplied: false,
            file: path.display().to_string(),
            sha256: crate::io::sha256_hex(&bytes),
            description: format!("{}, trained by apsig", arch.name()),
        })
    }
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

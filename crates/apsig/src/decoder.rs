//! The decoder: a DCGAN-style generator from a signature (standardised log-eps, optionally
//! the censoring mask) to an image, trained with L2 on the adversary's own data.

use crate::error::{Error, Result};
use crate::io::{write_tensors, TensorFile, TensorOut};
use crate::model::{load_network, save_network, train, Arch, Targets, TrainConfig, TrainReport};
use crate::nn::{Network, Shape};
use crate::signature::SignatureSet;
use crate::Progress;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecoderConfig {
    /// Channels of the last hidden layer; the projection has `2 * width` channels at 7x7.
    pub width: usize,
    /// Feed the censoring mask as K extra inputs (censored eps carry less information).
    pub use_mask: bool,
    pub train: TrainConfig,
}

/// A trained decoder with the input statistics and the provenance it was trained on.
pub struct Decoder {
    pub net: Network,
    pub k: usize,
    pub use_mask: bool,
    mean: Vec<f32>,
    std: Vec<f32>,
    /// Fingerprint of the directions the training signatures were measured with.
    pub directions: String,
}

impl Decoder {
    fn in_len(k: usize, use_mask: bool) -> usize {
        if use_mask {
            2 * k
        } else {
            k
        }
    }

    fn features(&self, sigs: &SignatureSet) -> Vec<f32> {
        signature_features(sigs, self.use_mask, &self.mean, &self.std)
    }

    fn check(&self, sigs: &SignatureSet, what: &str) -> Result<()> {
        if sigs.k != self.k {
            return Err(Error::invalid(
                what,
                format!("signatures have K = {}, the decoder was trained for K = {}", sigs.k, self.k),
            ));
        }
        if sigs.prov("directions") != self.directions {
            return Err(Error::invalid(
                what,
                "signatures were measured along other directions than the decoder was trained on",
            ));
        }
        Ok(())
    }

    /// Trains a decoder on `sigs` and the images they belong to (`[n, 784]`, same order).
    pub fn fit(
        sigs: &SignatureSet,
        images: &[f32],
        cfg: &DecoderConfig,
        checkpoint: Option<&Path>,
        progress: &dyn Progress,
    ) -> Result<(Decoder, TrainReport)> {
        let (n, k) = (sigs.n(), sigs.k);
        if images.len() != n * 784 {
            return Err(Error::invalid(
                "decoder training",
                format!("{} signatures but {} pixels of images", n, images.len()),
            ));
        }
        let mut mean = vec![0.0f64; k];
        let mut sq = vec![0.0f64; k];
        for i in 0..n {
            for j in 0..k {
                let l = (sigs.eps[i * k + j] as f64).ln();
                mean[j] += l;
                sq[j] += l * l;
            }
        }
        let mean: Vec<f32> = mean.iter().map(|m| (m / n as f64) as f32).collect();
        let std: Vec<f32> = sq
            .iter()
            .zip(&mean)
            .map(|(s, m)| ((s / n as f64 - (*m as f64).powi(2)).max(0.0).sqrt() as f32).max(1e-3))
            .collect();
        let x = signature_features(sigs, cfg.use_mask, &mean, &std);
        let (net, report) = fit_network(&x, Self::in_len(k, cfg.use_mask), images, cfg, checkpoint, progress)?;
        let directions = sigs.prov("directions").to_string();
        Ok((Decoder { net, k, use_mask: cfg.use_mask, mean, std, directions }, report))
    }

    /// Reconstructions `[n, 784]` in [0, 1].
    pub fn reconstruct(&self, sigs: &SignatureSet) -> Result<Vec<f32>> {
        self.check(sigs, "reconstruction")?;
        Ok(self.net.forward(&self.features(sigs), sigs.n()))
    }

    pub fn save(&self, path: &Path, extra: &BTreeMap<String, String>) -> Result<()> {
        let mut meta = extra.clone();
        meta.insert("k".into(), self.k.to_string());
        meta.insert("use_mask".into(), self.use_mask.to_string());
        meta.insert("directions".into(), self.directions.clone());
        save_network(path, Arch::Decoder, &self.net, &meta)?;
        // the input statistics live beside the weights, in a small companion file
        write_tensors(
            &stats_path(path),
            &[TensorOut::F32("mean", vec![self.k], &self.mean), TensorOut::F32("std", vec![self.k], &self.std)],
            &meta,
        )
    }

    pub fn load(path: &Path) -> Result<Decoder> {
        let m = load_network(path, Some(Arch::Decoder))?;
        let get = |key: &str| {
            m.metadata.get(key).cloned().ok_or_else(|| Error::bad_file(path, format!("missing metadata `{key}`")))
        };
        let k: usize = get("k")?.parse().map_err(|_| Error::bad_file(path, "bad `k`"))?;
        let use_mask = get("use_mask")? == "true";
        if m.net.in_len() != Self::in_len(k, use_mask) {
            return Err(Error::bad_file(
                path,
                format!("decoder input has {} values, K = {k} needs {}", m.net.in_len(), Self::in_len(k, use_mask)),
            ));
        }
        let sp = stats_path(path);
        let f = TensorFile::read(&sp)?;
        let mean = f.f32("mean", Some(&[k]))?.1;
        let std = f.f32("std", Some(&[k]))?.1;
        if std.iter().any(|s| *s <= 0.0) {
            return Err(Error::bad_file(&sp, "non-positive standard deviation"));
        }
        Ok(Decoder { net: m.net, k, use_mask, mean, std, directions: get("directions")? })
    }
}

/// The decoder's input for signatures: standardised ln(eps), then the censoring mask as +-1.
fn signature_features(sigs: &SignatureSet, use_mask: bool, mean: &[f32], std: &[f32]) -> Vec<f32> {
    let k = sigs.k;
    let w = Decoder::in_len(k, use_mask);
    let mut out = vec![0.0; sigs.n() * w];
    for (i, row) in out.chunks_mut(w).enumerate() {
        for j in 0..k {
            row[j] = (sigs.eps[i * k + j].ln() - mean[j]) / std[j];
            if use_mask {
                row[k + j] = if sigs.censored[i * k + j] != 0 { 1.0 } else { -1.0 };
            }
        }
    }
    out
}

/// Trains the decoder network on any feature matrix `[n, dim]` (already standardised) and the
/// images it should reproduce: one decoder family for signatures and for the study's other
/// oracle variants (labels, score vectors).
pub fn fit_network(
    features: &[f32],
    dim: usize,
    images: &[f32],
    cfg: &DecoderConfig,
    checkpoint: Option<&Path>,
    progress: &dyn Progress,
) -> Result<(Network, TrainReport)> {
    if dim == 0 || !features.len().is_multiple_of(dim) || images.len() != features.len() / dim * 784 {
        return Err(Error::invalid(
            "decoder training",
            format!("{} feature values of width {dim} but {} pixels of images", features.len(), images.len()),
        ));
    }
    let input = Shape::flat(dim);
    let mut net = Network::new(input, Arch::Decoder.layers(input, 0, cfg.width), cfg.train.seed)
        .map_err(|e| Error::invalid("decoder", e))?;
    let report = train(&mut net, features, Targets::Images(images), &cfg.train, checkpoint, progress)?;
    Ok((net, report))
}

/// Per-column standardisation fitted on training features (std floored, so constant columns
/// such as a never-censored mask stay finite).
pub struct Standardiser {
    mean: Vec<f32>,
    std: Vec<f32>,
}

impl Standardiser {
    pub fn fit(x: &[f32], dim: usize) -> Self {
        let n = (x.len() / dim.max(1)).max(1) as f64;
        let mut mean = vec![0.0f64; dim];
        let mut sq = vec![0.0f64; dim];
        for row in x.chunks(dim) {
            for (j, v) in row.iter().enumerate() {
                mean[j] += *v as f64;
                sq[j] += (*v as f64).powi(2);
            }
        }
        let std = sq.iter().zip(&mean).map(|(s, m)| ((s / n - (m / n).powi(2)).max(0.0).sqrt() as f32).max(1e-3));
        Standardiser { std: std.collect(), mean: mean.iter().map(|m| (m / n) as f32).collect() }
    }

    pub fn apply(&self, x: &mut [f32]) {
        for row in x.chunks_mut(self.mean.len()) {
            for ((v, m), s) in row.iter_mut().zip(&self.mean).zip(&self.std) {
                *v = (*v - m) / s;
            }
        }
    }
}

fn stats_path(path: &Path) -> std::path::PathBuf {
    path.with_extension("stats.safetensors")
}

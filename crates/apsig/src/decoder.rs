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
        let k = self.k;
        let w = Self::in_len(k, self.use_mask);
        let mut out = vec![0.0; sigs.n() * w];
        for i in 0..sigs.n() {
            let row = &mut out[i * w..(i + 1) * w];
            for j in 0..k {
                row[j] = (sigs.eps[i * k + j].ln() - self.mean[j]) / self.std[j];
                if self.use_mask {
                    row[k + j] = if sigs.censored[i * k + j] != 0 { 1.0 } else { -1.0 };
                }
            }
        }
        out
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
        let input = Shape::flat(Self::in_len(k, cfg.use_mask));
        let net = Network::new(input, Arch::Decoder.layers(input, 0, cfg.width), cfg.train.seed)
            .map_err(|e| Error::invalid("decoder", e))?;
        let mut dec =
            Decoder { net, k, use_mask: cfg.use_mask, mean, std, directions: sigs.prov("directions").to_string() };
        let x = dec.features(sigs);
        let report = train(&mut dec.net, &x, Targets::Images(images), &cfg.train, checkpoint, progress)?;
        Ok((dec, report))
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

fn stats_path(path: &Path) -> std::path::PathBuf {
    path.with_extension("stats.safetensors")
}

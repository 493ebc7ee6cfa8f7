//! `SignatureSet`: the measured signatures of a set of images, and their file format.

use super::predict::EpsPredictor;
use super::search::OwnedPrior;
use crate::error::{Error, Result};
use crate::io::{write_tensors, TensorFile, TensorOut};
use std::collections::BTreeMap;
use std::path::Path;

/// Signatures of `indices.len()` images of one split, K eps each.
#[derive(Clone, Debug, PartialEq)]
pub struct SignatureSet {
    /// Directions per image.
    pub k: usize,
    /// Which images of the split, in order.
    pub indices: Vec<u32>,
    /// `[n, k]` flip points (eps_max where censored).
    pub eps: Vec<f32>,
    /// `[n, k]` 1 where the direction never flipped up to eps_max.
    pub censored: Vec<u8>,
    /// `[n, k]` probes spent on each eps.
    pub queries: Vec<u32>,
    /// Provenance: data set, split, directions fingerprint and config, search config, method.
    /// Two sets can be merged or compared only if these agree.
    pub provenance: BTreeMap<String, String>,
}

impl SignatureSet {
    /// The set of per-image search outcomes `rows` (one row of K outcomes per index).
    pub fn from_outcomes(
        k: usize,
        indices: Vec<u32>,
        rows: &[Vec<super::EpsOutcome>],
        provenance: BTreeMap<String, String>,
    ) -> Self {
        let all = || rows.iter().flatten();
        SignatureSet {
            k,
            indices,
            eps: all().map(|o| o.eps).collect(),
            censored: all().map(|o| o.censored as u8).collect(),
            queries: all().map(|o| o.queries).collect(),
            provenance,
        }
    }

    /// Images in the set.
    pub fn n(&self) -> usize {
        self.indices.len()
    }
    /// The K eps of image `i`.
    pub fn row(&self, i: usize) -> &[f32] {
        &self.eps[i * self.k..(i + 1) * self.k]
    }
    /// Probes spent on the whole set.
    pub fn total_queries(&self) -> u64 {
        self.queries.iter().map(|&q| q as u64).sum()
    }
    /// Mean probes per eps.
    pub fn queries_per_eps(&self) -> f64 {
        self.total_queries() as f64 / self.eps.len().max(1) as f64
    }
    /// Fraction of eps that never flipped.
    pub fn censored_fraction(&self) -> f64 {
        self.censored.iter().filter(|&&c| c != 0).count() as f64 / self.censored.len().max(1) as f64
    }
    /// A provenance entry (empty when absent).
    pub fn prov(&self, key: &str) -> &str {
        self.provenance.get(key).map(|s| s.as_str()).unwrap_or("")
    }

    /// The first `n` images along the first `k` directions (provenance kept).
    pub fn prefix(&self, k: usize, n: usize) -> SignatureSet {
        fn cols<T: Copy>(v: &[T], stride: usize, k: usize, n: usize) -> Vec<T> {
            v.chunks(stride.max(1)).take(n).flat_map(|row| &row[..k]).copied().collect()
        }
        let (k, n) = (k.min(self.k), n.min(self.n()));
        SignatureSet {
            k,
            indices: self.indices[..n].to_vec(),
            eps: cols(&self.eps, self.k, k, n),
            censored: cols(&self.censored, self.k, k, n),
            queries: cols(&self.queries, self.k, k, n),
            provenance: self.provenance.clone(),
        }
    }

    /// Per-direction median eps: the prior for searching on secrets (and the pilot's starts).
    pub fn median_eps(&self) -> Vec<f32> {
        (0..self.k)
            .map(|j| {
                let mut col: Vec<f32> = (0..self.n()).map(|i| self.eps[i * self.k + j]).collect();
                col.sort_by(f32::total_cmp);
                col.get(col.len() / 2).copied().unwrap_or(f32::NAN)
            })
            .collect()
    }

    /// The prior these (the adversary's own) signatures give a search on secrets: their median
    /// eps, or with `predict_group > 0` a model that predicts each group of that many
    /// directions from the ones measured before; with `median_checks` as well, that model
    /// checks the median eps where its predictions jump past them
    /// (`EpsPredictor::with_anchors`).
    pub fn search_prior(&self, predict_group: usize, median_checks: bool) -> Result<OwnedPrior> {
        if median_checks && predict_group == 0 {
            return Err(Error::invalid("search prior", "median checks need predicted brackets (a predict group > 0)"));
        }
        Ok(if predict_group > 0 {
            let predictor = EpsPredictor::fit(self.k, &self.eps, predict_group)?;
            OwnedPrior::Predicted(if median_checks { predictor.with_anchors(&self.median_eps())? } else { predictor })
        } else {
            OwnedPrior::Starts(self.median_eps())
        })
    }

    /// Saves the set with its provenance.
    pub fn save(&self, path: &Path) -> Result<()> {
        let (n, k) = (self.n(), self.k);
        let mut meta = self.provenance.clone();
        meta.insert("format".into(), "apsig-signatures-v1".into());
        meta.insert("k".into(), k.to_string());
        write_tensors(
            path,
            &[
                TensorOut::F32("eps", vec![n, k], &self.eps),
                TensorOut::U8("censored", vec![n, k], &self.censored),
                TensorOut::U32("queries", vec![n, k], &self.queries),
                TensorOut::U32("indices", vec![n], &self.indices),
            ],
            &meta,
        )
    }

    /// Loads and validates a set saved by `save`.
    pub fn load(path: &Path) -> Result<Self> {
        Self::from_file(&TensorFile::read(path)?)
    }

    /// Builds a signature set from an already-read tensor file, validating it (fuzzed).
    pub fn from_file(f: &TensorFile) -> Result<Self> {
        let path = f.path.as_path();
        if f.meta("format")? != "apsig-signatures-v1" {
            return Err(Error::bad_file(path, "not an apsig signature file"));
        }
        let k: usize = f.meta("k")?.parse().map_err(|_| Error::bad_file(path, "bad `k` metadata"))?;
        let (shape, indices) = f.u32("indices", None)?;
        if shape.len() != 1 {
            return Err(Error::bad_file(path, "`indices` must be one-dimensional"));
        }
        let n = shape[0];
        let (_, eps) = f.f32("eps", Some(&[n, k]))?;
        let (_, censored) = f.u8("censored", Some(&[n, k]))?;
        let (_, queries) = f.u32("queries", Some(&[n, k]))?;
        if let Some(i) = eps.iter().position(|&e| e <= 0.0) {
            return Err(Error::bad_file(path, format!("eps at index {i} is not positive")));
        }
        let mut provenance = f.metadata.clone();
        provenance.remove("format");
        provenance.remove("k");
        Ok(SignatureSet { k, indices, eps, censored, queries, provenance })
    }

    /// Concatenates shards measured the same way, refusing gaps, overlaps and mismatches.
    pub fn merge(mut parts: Vec<(std::path::PathBuf, SignatureSet)>) -> Result<SignatureSet> {
        if parts.is_empty() {
            return Err(Error::invalid("merge", "no shards given"));
        }
        parts.sort_by_key(|(_, s)| s.indices.first().copied().unwrap_or(0));
        let (p0, first) = &parts[0];
        let mut keys: Vec<&str> = first.provenance.keys().map(|s| s.as_str()).collect();
        keys.retain(|k| !k.starts_with("shard"));
        for (p, s) in &parts[1..] {
            if s.k != first.k {
                return Err(Error::bad_file(p, format!("K = {} but {} has K = {}", s.k, p0.display(), first.k)));
            }
            for key in &keys {
                if s.prov(key) != first.prov(key) {
                    return Err(Error::bad_file(
                        p,
                        format!("`{key}` differs from {} ({} vs {})", p0.display(), s.prov(key), first.prov(key)),
                    ));
                }
            }
        }
        let mut out = SignatureSet {
            k: first.k,
            indices: vec![],
            eps: vec![],
            censored: vec![],
            queries: vec![],
            provenance: BTreeMap::new(),
        };
        for key in keys {
            out.provenance.insert(key.to_string(), first.prov(key).to_string());
        }
        let mut expect_next: Option<(u32, &Path)> = None;
        for (p, s) in &parts {
            for w in s.indices.windows(2) {
                if w[1] != w[0] + 1 {
                    return Err(Error::bad_file(p, format!("indices are not contiguous ({} then {})", w[0], w[1])));
                }
            }
            if let (Some((next, prev)), Some(&f)) = (expect_next, s.indices.first()) {
                if f < next {
                    return Err(Error::bad_file(p, format!("overlaps {} (index {f})", prev.display())));
                }
                if f > next {
                    return Err(Error::bad_file(p, format!("gap before it: indices {next}..{f} are in no shard")));
                }
            }
            if let Some(&l) = s.indices.last() {
                expect_next = Some((l + 1, p));
            }
            out.indices.extend(&s.indices);
            out.eps.extend(&s.eps);
            out.censored.extend(&s.censored);
            out.queries.extend(&s.queries);
        }
        Ok(out)
    }

    /// Merges the shards of one extraction (`apsig signatures --shard i/n`): as `merge`, and
    /// together they must cover exactly the range they were cut from.
    pub fn merge_shards(parts: Vec<(std::path::PathBuf, SignatureSet)>) -> Result<SignatureSet> {
        let out = Self::merge(parts)?;
        if let Some((a, b)) = out.prov("range").split_once("..") {
            let (a, b): (u32, u32) = (a.parse().unwrap_or(0), b.parse().unwrap_or(0));
            let (first, end) = (out.indices.first().copied(), out.indices.last().map(|l| l + 1));
            if first != Some(a) || end != Some(b) {
                return Err(Error::invalid(
                    "merge",
                    format!(
                        "the shards cover {}..{} but were cut from {a}..{b}: a shard is missing",
                        first.unwrap_or(0),
                        end.unwrap_or(0)
                    ),
                ));
            }
        }
        Ok(out)
    }
}

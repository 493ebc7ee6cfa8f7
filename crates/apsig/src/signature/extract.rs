//! Measuring signatures for many images: in parallel, in resumable blocks, by shard.

use super::search::{run_search, EpsOutcome, Prior, SearchConfig};
use super::set::SignatureSet;
use crate::directions::Directions;
use crate::error::{Error, Result};
use crate::model::Classifier;
use crate::oracle::{ChangeOracle, LiftedDirections, LocalOracle, MarginProbe};
use crate::Progress;
use apsig_data::Split;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::ops::Range;
use std::path::Path;
use std::sync::Arc;

/// How eps is measured.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Method {
    /// Change bits only, through a `ChangeOracle`: the only route allowed for secrets.
    ChangeBit,
    /// Margins of the adversary's own copy of the model: for its own (training) data.
    WhiteBox,
}

/// How a signature set is measured.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExtractConfig {
    /// Change bits or margins.
    pub method: Method,
    /// The eps search.
    pub search: SearchConfig,
}

/// Shard `index` of `count`: a contiguous slice of the range, so shards merge by order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    /// This shard, `0..count`.
    pub index: usize,
    /// Number of shards.
    pub count: usize,
}

impl std::str::FromStr for Shard {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let (i, n) = s.split_once('/').ok_or("shard must look like i/n, e.g. 0/4")?;
        let (index, count): (usize, usize) =
            (i.trim().parse().map_err(|_| "bad shard index")?, n.trim().parse().map_err(|_| "bad shard count")?);
        if count == 0 || index >= count {
            return Err(format!("shard {index}/{count}: need 0 <= i < n"));
        }
        Ok(Shard { index, count })
    }
}

impl Shard {
    /// This shard's contiguous part of `r`.
    pub fn slice(&self, r: Range<usize>) -> Range<usize> {
        let len = r.end - r.start;
        let a = r.start + len * self.index / self.count;
        let b = r.start + len * (self.index + 1) / self.count;
        a..b
    }
}

/// Images per resumable block: a kill loses at most one block of work.
const BLOCK: usize = 256;

/// Measures signatures of `split` images in `range` (optionally one shard of it).
/// `prior` says where each search starts (from the adversary's data); without one, every
/// direction starts at the search's `start`.
/// With `parts_dir`, finished blocks are kept on disk and a rerun resumes from them.
#[allow(clippy::too_many_arguments)]
pub fn extract(
    model: Arc<dyn Classifier>,
    dirs: &Directions,
    split: &Split,
    provenance: &BTreeMap<String, String>,
    range: Range<usize>,
    shard: Option<Shard>,
    prior: Option<Prior<'_>>,
    cfg: &ExtractConfig,
    parts_dir: Option<&Path>,
    progress: &dyn Progress,
) -> Result<SignatureSet> {
    cfg.search.validate()?;
    if range.end > split.n || range.start >= range.end {
        return Err(Error::invalid(
            "image range",
            format!("{}..{} of a split with {} images", range.start, range.end, split.n),
        ));
    }
    if split.pixels() != dirs.len() || model.input_shape().len() != dirs.len() {
        return Err(Error::invalid(
            "directions",
            format!("shape {:?} does not fit the images ({} pixels) or the model", dirs.shape, split.pixels()),
        ));
    }
    let k = dirs.k();
    let default_starts = vec![cfg.search.start; k];
    let prior = prior.unwrap_or(Prior::Starts(&default_starts));
    if prior.k() != k {
        return Err(Error::invalid("prior", format!("a prior for {} directions, but K = {k}", prior.k())));
    }
    let prov = signature_provenance(provenance, dirs, cfg, &prior, range.clone(), shard);
    let mine = shard.map_or(range.clone(), |s| s.slice(range));
    let lifted = Arc::new(LiftedDirections::new(model.as_ref(), dirs));
    progress.begin("signatures", (mine.end - mine.start) as u64);
    let set = in_blocks(k, mine, BLOCK, &prov, parts_dir, progress, |b| {
        b.into_par_iter()
            .map(|i| {
                let r = one_image(&model, dirs, &lifted, split.image(i), prior, cfg);
                progress.advance(1);
                r
            })
            .collect()
    })?;
    progress.end();
    Ok(set)
}

/// What a signature set records about how it was measured: the caller's entries (data set,
/// split, oracle) plus the directions, the search, the prior, the range and the shard.
pub fn signature_provenance(
    base: &BTreeMap<String, String>,
    dirs: &Directions,
    cfg: &ExtractConfig,
    prior: &Prior,
    range: Range<usize>,
    shard: Option<Shard>,
) -> BTreeMap<String, String> {
    let mut prov = base.clone();
    prov.insert("directions".into(), dirs.fingerprint());
    prov.insert("directions_config".into(), serde_json::to_string(&dirs.config).expect("serialises"));
    prov.insert("extract".into(), serde_json::to_string(cfg).expect("serialises"));
    prov.insert("starts".into(), prior.fingerprint());
    prov.insert("range".into(), format!("{}..{}", range.start, range.end));
    if let Some(s) = shard {
        prov.insert("shard".into(), format!("{}/{}", s.index, s.count));
    }
    prov
}

/// Measures the images of `range` in blocks of `block` with `measure` (one row of K outcomes
/// per image). With `parts_dir`, each finished block is saved there at once and a block
/// already there with the same provenance `prov` is reused, so an interrupted extraction
/// loses at most the block in progress. Reused blocks advance `progress`; `measure` advances
/// it for the blocks it measures.
pub fn in_blocks(
    k: usize,
    range: Range<usize>,
    block: usize,
    prov: &BTreeMap<String, String>,
    parts_dir: Option<&Path>,
    progress: &dyn Progress,
    mut measure: impl FnMut(Range<usize>) -> Result<Vec<Vec<EpsOutcome>>>,
) -> Result<SignatureSet> {
    let block = block.max(1);
    let blocks: Vec<Range<usize>> = range.clone().step_by(block).map(|a| a..(a + block).min(range.end)).collect();
    let mut parts = Vec::new();
    for b in blocks {
        let part_path = parts_dir.map(|d| d.join(format!("part-{:07}-{:07}.safetensors", b.start, b.end)));
        if let Some(p) = part_path.as_ref().filter(|p| p.exists()) {
            if let Ok(set) = SignatureSet::load(p) {
                if set.provenance == *prov && set.indices.first() == Some(&(b.start as u32)) && set.n() == b.len() {
                    progress.advance(b.len() as u64);
                    parts.push((p.clone(), set));
                    continue;
                }
            }
            tracing::warn!("{}: stale or damaged part, measuring again", p.display());
        }
        let rows = measure(b.clone())?;
        if rows.len() != b.len() || rows.iter().any(|r| r.len() != k) {
            return Err(Error::Oracle(format!("{} signatures measured for a block of {} images", rows.len(), b.len())));
        }
        let set = SignatureSet::from_outcomes(k, b.clone().map(|i| i as u32).collect(), &rows, prov.clone());
        if let Some(p) = &part_path {
            set.save(p)?;
        }
        parts.push((part_path.unwrap_or_default(), set));
    }
    let mut merged = SignatureSet::merge(parts)?;
    merged.provenance = prov.clone();
    Ok(merged)
}

/// Signature of one image; on the change-bit route, also checks that the oracle's own query
/// counter agrees with the search's accounting.
fn one_image(
    model: &Arc<dyn Classifier>,
    dirs: &Directions,
    lifted: &Arc<LiftedDirections>,
    x: &[f32],
    prior: Prior,
    cfg: &ExtractConfig,
) -> Result<Vec<EpsOutcome>> {
    match cfg.method {
        Method::ChangeBit => {
            let oracle = LocalOracle::new(model.clone(), x, Some(lifted.clone()))?;
            signature_via_oracle(&oracle, dirs, prior, &cfg.search)
        }
        Method::WhiteBox => {
            let probe = MarginProbe::new(model.clone(), x, lifted.clone());
            run_search(&cfg.search, prior, |ps| Ok(probe.probe(ps).into_iter().map(|(f, m)| (f, Some(m))).collect()))
        }
    }
}

/// The attack on one secret: the change-bit search through any oracle (local or remote).
pub fn signature_via_oracle<'a>(
    oracle: &dyn ChangeOracle,
    dirs: &Directions,
    prior: impl Into<Prior<'a>>,
    search: &SearchConfig,
) -> Result<Vec<EpsOutcome>> {
    let before = oracle.queries();
    let mut out =
        run_search(search, prior, |ps| Ok(oracle.changed_along(dirs, ps)?.into_iter().map(|b| (b, None)).collect()))?;
    // the search counts answers; an oracle that votes spends several queries on each
    let per = oracle.queries_per_answer() as u32;
    out.iter_mut().for_each(|o| o.queries *= per);
    let counted: u64 = out.iter().map(|o| o.queries as u64).sum();
    if oracle.queries() - before != counted {
        return Err(Error::Oracle(format!(
            "oracle counted {} queries, search spent {counted}",
            oracle.queries() - before
        )));
    }
    Ok(out)
}

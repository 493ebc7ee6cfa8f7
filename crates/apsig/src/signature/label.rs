//! Signatures under the stronger *label oracle* (a comparison variant, not the paper's threat
//! model): the same search, where each answer is a top-1 label, so besides eps each direction
//! also reveals the class the decision flipped to.

use super::search::{run_search, EpsOutcome, SearchConfig};
use super::set::SignatureSet;
use crate::directions::Directions;
use crate::error::Result;
use crate::model::Classifier;
use crate::oracle::{LocalOracle, Probe};
use apsig_data::Split;
use rayon::prelude::*;
use std::collections::HashMap;

/// No flip seen along a direction (censored), in the flip-label matrices.
pub const NO_LABEL: u8 = u8::MAX;

/// A secret's label signature: its eps outcomes, the class each direction flipped to
/// (`NO_LABEL` where censored) and its own class (one query at eps = 0). The change bit is
/// `label != base label`; the label at each direction's final eps (always a probed point) is
/// the class the decision flipped to.
pub fn label_signature(
    oracle: &LocalOracle,
    dirs: &Directions,
    prior: &[f32],
    search: &SearchConfig,
) -> Result<(Vec<EpsOutcome>, Vec<u8>, u8)> {
    let base = oracle.labels_along(dirs, &[Probe { dir: 0, eps: 0.0 }])?[0];
    let mut seen: HashMap<(u32, u32), usize> = HashMap::new();
    let out = run_search(search, prior, |ps| {
        let labels = oracle.labels_along(dirs, ps)?;
        Ok(ps
            .iter()
            .zip(labels)
            .map(|(p, l)| {
                seen.insert((p.dir, p.eps.to_bits()), l);
                (l != base, None)
            })
            .collect())
    })?;
    let flips = out
        .iter()
        .enumerate()
        .map(|(j, o)| match seen.get(&(j as u32, o.eps.to_bits())) {
            Some(&l) if !o.censored && l != base => l as u8,
            _ => NO_LABEL,
        })
        .collect();
    Ok((out, flips, base as u8))
}

/// The training side of the label oracle, for the adversary's own images (those of `split`
/// that `sigs` covers): the class each flips to along each direction (it owns the model, so
/// it evaluates it at eps), `[n, k]`, and its unperturbed class.
pub fn own_flip_labels(
    model: &dyn Classifier,
    dirs: &Directions,
    sigs: &SignatureSet,
    split: &Split,
) -> (Vec<u8>, Vec<u8>) {
    let (k, c) = (sigs.k, model.num_classes());
    let rows: Vec<(Vec<u8>, u8)> = (0..sigs.n())
        .into_par_iter()
        .map(|i| {
            let x = split.image(sigs.indices[i] as usize);
            let mut batch = Vec::with_capacity((k + 1) * x.len());
            batch.extend_from_slice(x);
            for j in 0..k {
                let e = sigs.eps[i * k + j];
                batch.extend(x.iter().zip(dirs.get(j)).map(|(a, d)| a + e * d));
            }
            let z = model.logits(&batch, k + 1);
            let label = |r: usize| crate::argmax(&z[r * c..(r + 1) * c]) as u8;
            let flips = (0..k).map(|j| if sigs.censored[i * k + j] != 0 { NO_LABEL } else { label(j + 1) }).collect();
            (flips, label(0))
        })
        .collect();
    let base = rows.iter().map(|r| r.1).collect();
    (rows.into_iter().flat_map(|r| r.0).collect(), base)
}

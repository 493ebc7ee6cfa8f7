//! The change oracle: the only access the attack has to a secret input.

use crate::defence::Defence;
use crate::directions::Directions;
use crate::error::{Error, Result};
use crate::model::Classifier;
use crate::rng::Rng;
use rayon::prelude::*;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// One probe: perturb the secret by `eps` times direction `dir`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Probe {
    /// Index of the direction.
    pub dir: u32,
    /// Step along it.
    pub eps: f32,
}

/// Answers, for perturbations N, whether `argmax M(X+N) != argmax M(X)`; nothing else.
/// Every perturbation answered is one query, and queries are counted exactly.
pub trait ChangeOracle: Send + Sync {
    /// Number of values in one perturbation (the input's size).
    fn input_len(&self) -> usize;
    /// Change bits for `perturbations.len() / input_len()` explicit perturbations.
    fn changed(&self, perturbations: &[f32]) -> Result<Vec<bool>>;
    /// Change bits for probes along registered directions. The default materialises
    /// `eps * N_dir`; implementations may answer the same question faster.
    fn changed_along(&self, dirs: &Directions, probes: &[Probe]) -> Result<Vec<bool>> {
        self.changed(&materialise(dirs, probes))
    }
    /// Queries answered so far.
    fn queries(&self) -> u64;
    /// Queries one answer costs (more than one when an attacker repeats probes and votes).
    fn queries_per_answer(&self) -> u64 {
        1
    }
}

/// Directions pushed through a classifier's affine first layer, shared by every oracle that
/// probes along them (computed once per model and direction set, not once per secret).
pub struct LiftedDirections {
    /// `content_hash` of the directions these were made from: checked on every batch of probes,
    /// so it must be cheap (the 64-bit FNV `Directions::fingerprint` of 100 directions cost
    /// about as much as a round of probes on one secret).
    content: u64,
    len: usize,
    data: Vec<f32>,
}

impl LiftedDirections {
    /// `dirs` pushed through `model`'s first layer.
    pub fn new(model: &dyn Classifier, dirs: &Directions) -> Self {
        let k = dirs.k();
        let data: Vec<f32> = dirs
            .data
            .par_chunks(dirs.len() * 8)
            .flat_map_iter(|c| model.lift(c, c.len() / dirs.len(), false))
            .collect();
        LiftedDirections { content: content_hash(&dirs.data), len: data.len() / k, data }
    }
    fn get(&self, i: usize) -> &[f32] {
        &self.data[i * self.len..(i + 1) * self.len]
    }
}

/// An in-process oracle over any classifier. The secret and its decision are private
/// fields with no accessor: attack code holding this value learns only change bits (or, for
/// the stronger oracle variants the study compares against, labels and scores).
pub struct LocalOracle {
    model: Arc<dyn Classifier>,
    lifted_secret: Vec<f32>,
    secret: Vec<f32>,
    class: usize,
    lifted_dirs: Option<Arc<LiftedDirections>>,
    defence: Defence,
    /// Draws of the randomised defences, in query order (so answers are reproducible).
    rng: Mutex<Rng>,
    queries: AtomicU64,
}

/// Probes per forward batch: large enough for an efficient GEMM, small enough for L2.
const PROBE_CHUNK: usize = 32;

impl LocalOracle {
    /// An undefended oracle over `model` holding `secret` (`lifted_dirs` speeds up probes along them).
    pub fn new(model: Arc<dyn Classifier>, secret: &[f32], lifted_dirs: Option<Arc<LiftedDirections>>) -> Result<Self> {
        Self::defended(model, secret, lifted_dirs, Defence::None, 0)
    }

    /// An oracle behind `defence`; `seed` fixes the defence's random draws for this secret.
    pub fn defended(
        model: Arc<dyn Classifier>,
        secret: &[f32],
        lifted_dirs: Option<Arc<LiftedDirections>>,
        defence: Defence,
        seed: u64,
    ) -> Result<Self> {
        defence.validate()?;
        let len = model.input_shape().len();
        if secret.len() != len {
            return Err(Error::invalid("secret input", format!("{} values, the model takes {len}", secret.len())));
        }
        if secret.iter().any(|v| !v.is_finite()) {
            return Err(Error::invalid("secret input", "contains a non-finite value"));
        }
        let mut rng = Rng::derive(seed, "defence");
        let mut x = secret.to_vec();
        defence.perturb_inputs(&mut x, &mut rng);
        let class = crate::argmax(&model.logits(&x, 1));
        let lifted_secret = model.lift(secret, 1, true);
        Ok(LocalOracle {
            model,
            lifted_secret,
            secret: secret.to_vec(),
            class,
            lifted_dirs,
            defence,
            rng: Mutex::new(rng),
            queries: AtomicU64::new(0),
        })
    }

    /// Reserves `n` queries, or refuses the whole batch when it would pass the budget.
    fn spend(&self, n: usize) -> Result<()> {
        let before = self.queries.fetch_add(n as u64, Ordering::Relaxed);
        self.defence.admit(before, n as u64).inspect_err(|_| {
            self.queries.fetch_sub(n as u64, Ordering::Relaxed);
        })
    }

    /// Top-1 labels of a batch of perturbed inputs, as the defence perturbs them.
    fn labels_of(&self, perturbations: &[f32]) -> Vec<usize> {
        let len = self.secret.len();
        let mut x: Vec<f32> =
            perturbations.chunks(len).flat_map(|p| p.iter().zip(&self.secret).map(|(a, b)| a + b)).collect();
        self.defence.perturb_inputs(&mut x, &mut self.rng.lock().expect("rng lock"));
        let c = self.model.num_classes();
        x.par_chunks(PROBE_CHUNK * len)
            .flat_map_iter(|chunk| {
                let l = self.model.logits(chunk, chunk.len() / len);
                (0..chunk.len() / len).map(move |i| crate::argmax(&l[i * c..(i + 1) * c])).collect::<Vec<_>>()
            })
            .collect()
    }

    fn labels_along_unchecked(&self, dirs: &Directions, probes: &[Probe]) -> Result<Vec<usize>> {
        let lifted = match &self.lifted_dirs {
            Some(l) if l.content == content_hash(&dirs.data) && self.defence.noise_free_input() => l,
            _ => return Ok(self.labels_of(&materialise(dirs, probes))),
        };
        check_probes(probes, dirs.k())?;
        let c = self.model.num_classes();
        Ok(probes
            .par_chunks(PROBE_CHUNK)
            .flat_map_iter(|chunk| {
                let l = probe_logits(self.model.as_ref(), &self.lifted_secret, lifted, chunk);
                (0..chunk.len()).map(move |i| crate::argmax(&l[i * c..(i + 1) * c])).collect::<Vec<_>>()
            })
            .collect())
    }

    /// Change bits from labels, as the defence answers them.
    fn bits(&self, labels: Vec<usize>) -> Vec<bool> {
        let mut bits: Vec<bool> = labels.into_iter().map(|l| l != self.class).collect();
        self.defence.perturb_answers(&mut bits, &mut self.rng.lock().expect("rng lock"));
        bits
    }

    /// The stronger *label oracle* (a comparison variant, not the paper's threat model): the
    /// top-1 label of each perturbed input. A probe with eps = 0 reveals the secret's class.
    pub fn labels_along(&self, dirs: &Directions, probes: &[Probe]) -> Result<Vec<usize>> {
        check_probes(probes, dirs.k())?;
        self.spend(probes.len())?;
        self.labels_along_unchecked(dirs, probes)
    }

    /// The strongest variant (Yang et al. 2019): the full softmax score vector of the
    /// unperturbed secret, one query.
    pub fn scores(&self) -> Result<Vec<f32>> {
        self.spend(1)?;
        let mut probs = crate::nn::softmax_rows(&self.model.logits(&self.secret, 1), self.model.num_classes());
        self.defence.perturb_scores(&mut probs);
        Ok(probs)
    }
}

impl ChangeOracle for LocalOracle {
    fn input_len(&self) -> usize {
        self.secret.len()
    }

    fn changed(&self, perturbations: &[f32]) -> Result<Vec<bool>> {
        check_batch(perturbations, self.secret.len())?;
        self.spend(perturbations.len() / self.secret.len())?;
        Ok(self.bits(self.labels_of(perturbations)))
    }

    fn changed_along(&self, dirs: &Directions, probes: &[Probe]) -> Result<Vec<bool>> {
        check_probes(probes, dirs.k())?;
        self.spend(probes.len())?;
        Ok(self.bits(self.labels_along_unchecked(dirs, probes)?))
    }

    fn queries(&self) -> u64 {
        self.queries.load(Ordering::Relaxed)
    }
}

/// A 64-bit hash of f32 bits: four independent FNV-1a lanes over whole words, so the
/// multiply chains overlap (about 16x faster than byte-wise FNV; equal values, equal hash).
fn content_hash(v: &[f32]) -> u64 {
    const PRIME: u64 = 0x100_0000_01b3;
    let mut lanes = [0xcbf2_9ce4_8422_2325u64; 4];
    let mut chunks = v.chunks_exact(4);
    for c in &mut chunks {
        for (h, x) in lanes.iter_mut().zip(c) {
            *h = (*h ^ x.to_bits() as u64).wrapping_mul(PRIME);
        }
    }
    for (h, x) in lanes.iter_mut().zip(chunks.remainder()) {
        *h = (*h ^ x.to_bits() as u64).wrapping_mul(PRIME);
    }
    lanes.iter().fold(v.len() as u64, |acc, h| (acc ^ h).wrapping_mul(PRIME))
}

/// Logits at `L(x) + eps * L0(n_dir)` for each probe: the model at the perturbed input.
fn probe_logits(model: &dyn Classifier, base: &[f32], lifted: &LiftedDirections, probes: &[Probe]) -> Vec<f32> {
    let dirs: Vec<&[f32]> = probes.iter().map(|q| lifted.get(q.dir as usize)).collect();
    let eps: Vec<f32> = probes.iter().map(|q| q.eps).collect();
    model.probe_logits(base, &dirs, &eps)
}

/// The explicit perturbations `eps * N_dir` of a batch of probes.
fn materialise(dirs: &Directions, probes: &[Probe]) -> Vec<f32> {
    let mut p = Vec::with_capacity(probes.len() * dirs.len());
    for q in probes {
        p.extend(dirs.get(q.dir as usize).iter().map(|v| v * q.eps));
    }
    p
}

/// Checks a batch of explicit perturbations: whole rows of `len` values, all finite.
pub fn check_batch(p: &[f32], len: usize) -> Result<()> {
    if !p.len().is_multiple_of(len) {
        return Err(Error::Oracle(format!(
            "perturbation batch of {} values is not a multiple of the input size {len}",
            p.len()
        )));
    }
    if p.iter().any(|v| !v.is_finite()) {
        return Err(Error::Oracle("perturbation contains a non-finite value".into()));
    }
    Ok(())
}

/// Checks probes along `k` directions: each direction in range, each eps finite.
pub fn check_probes(probes: &[Probe], k: usize) -> Result<()> {
    for q in probes {
        if q.dir as usize >= k || !q.eps.is_finite() {
            return Err(Error::Oracle(format!("bad probe {q:?} (K = {k})")));
        }
    }
    Ok(())
}

/// White-box access for the adversary's *own* data: the margin of the original class along
/// each probe, from which the flip point can be interpolated. Never used on secrets.
pub struct MarginProbe {
    model: Arc<dyn Classifier>,
    lifted_x: Vec<f32>,
    class: usize,
    lifted_dirs: Arc<LiftedDirections>,
}

impl MarginProbe {
    /// Margins of `model` around the adversary's own image `x`.
    pub fn new(model: Arc<dyn Classifier>, x: &[f32], lifted_dirs: Arc<LiftedDirections>) -> Self {
        let class = crate::argmax(&model.logits(x, 1));
        let lifted_x = model.lift(x, 1, true);
        MarginProbe { model, lifted_x, class, lifted_dirs }
    }

    /// For each probe: (changed, margin = z_class - max_{j != class} z_j).
    pub fn probe(&self, probes: &[Probe]) -> Vec<(bool, f32)> {
        let c = self.model.num_classes();
        probes
            .chunks(PROBE_CHUNK)
            .flat_map(|chunk| {
                let logits = probe_logits(self.model.as_ref(), &self.lifted_x, &self.lifted_dirs, chunk);
                logits
                    .chunks(c)
                    .map(|l| {
                        let other = l
                            .iter()
                            .enumerate()
                            .filter(|(j, _)| *j != self.class)
                            .map(|(_, v)| *v)
                            .fold(f32::NEG_INFINITY, f32::max);
                        (crate::argmax(l) != self.class, l[self.class] - other)
                    })
                    .collect::<Vec<_>>()
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::content_hash;

    #[test]
    fn content_hash_sees_every_value() {
        let v: Vec<f32> = (0..103).map(|i| i as f32 * 0.37).collect();
        let h = content_hash(&v);
        assert_eq!(h, content_hash(&v.clone()));
        for i in [0, 1, 50, 99, 100, 102] {
            let mut w = v.clone();
            w[i] += 1e-3;
            assert_ne!(content_hash(&w), h, "a change at {i} went unseen");
        }
        assert_ne!(content_hash(&v[..102]), h, "length is part of the hash");
        // the lanes are not interchangeable: swapping two values changes the hash
        let mut w = v.clone();
        w.swap(0, 1);
        assert_ne!(content_hash(&w), h);
    }
}

//! Lockstep: the eps searches of many images driven together, so that every pending probe of
//! every image goes to the classifier in one large batch. This is the route for classifiers
//! that are cheap per batch but dear per call (a PyTorch model on a GPU behind a Python
//! callable, a remote model): the per-image route asks one image's probes at a time.
//!
//! Each image runs its own [`EpsSearch`]; a round collects the probes of all images, cuts
//! them into batches of at most `batch` inputs `x + eps * n_dir` (built exactly as the local
//! oracle builds them), and hands each batch to the caller's classifier. The searches, and so
//! the signatures, are those of the per-image route with the same classifier: only the
//! grouping of probes into calls differs.

use super::extract::Method;
use super::search::{Answer, EpsOutcome, Prior, SearchConfig};
use crate::directions::Directions;
use crate::error::{Error, Result};
use rayon::prelude::*;

/// What a batched classifier answers for `n` inputs.
#[derive(Clone, Debug, PartialEq)]
pub enum Outputs {
    /// The top-1 label of each input.
    Labels(Vec<usize>),
    /// `[n, classes]` logits (or any scores whose argmax is the decision).
    Logits {
        /// Scores per input.
        classes: usize,
        /// Row-major scores.
        values: Vec<f32>,
    },
}

impl Outputs {
    /// Checks the answer to a batch of `n` inputs: `n` labels or `n` finite rows of scores.
    pub fn check(&self, n: usize) -> Result<()> {
        let rows = match self {
            Outputs::Labels(l) => l.len(),
            Outputs::Logits { classes, values } => {
                if *classes == 0 {
                    return Err(Error::Oracle("the classifier returned rows of 0 scores".into()));
                }
                if values.iter().any(|v| !v.is_finite()) {
                    return Err(Error::Oracle("the classifier returned a non-finite score".into()));
                }
                values.len() / classes
            }
        };
        if rows != n {
            return Err(Error::Oracle(format!("the classifier returned {rows} answers for a batch of {n} inputs")));
        }
        Ok(())
    }

    /// The top-1 label of input `i` (first maximum on ties, as [`crate::argmax`]).
    fn label(&self, i: usize) -> usize {
        match self {
            Outputs::Labels(l) => l[i],
            Outputs::Logits { classes, values } => crate::argmax(&values[i * classes..(i + 1) * classes]),
        }
    }

    /// The answer for input `i` of an image whose own class is `base`: the change bit, and on
    /// the white-box route the margin `z_base - max_{j != base} z_j`.
    fn answer(&self, i: usize, base: usize, method: Method) -> Result<Answer> {
        let flip = self.label(i) != base;
        match (method, self) {
            (Method::ChangeBit, _) => Ok((flip, None)),
            (Method::WhiteBox, Outputs::Logits { classes, values }) => {
                let row = &values[i * classes..(i + 1) * classes];
                let other = row
                    .iter()
                    .enumerate()
                    .filter(|(j, _)| *j != base)
                    .map(|(_, v)| *v)
                    .fold(f32::NEG_INFINITY, f32::max);
                Ok((flip, Some(row.get(base).copied().unwrap_or(f32::NAN) - other)))
            }
            (Method::WhiteBox, Outputs::Labels(_)) => {
                Err(Error::Oracle("the white-box route needs logits, but the classifier returned labels".into()))
            }
        }
    }
}

/// Signatures of the `images.len() / dirs.len()` images in `images` (row-major, the
/// directions' shape): one row of K outcomes per image. `classify(inputs, n)` answers a batch
/// of at most `batch` inputs; it is called once for the images themselves (their own
/// classes; not counted as queries) and then once per batch of probes.
pub fn lockstep_signatures<'a>(
    dirs: &Directions,
    images: &[f32],
    prior: impl Into<Prior<'a>>,
    search: &SearchConfig,
    method: Method,
    batch: usize,
    mut classify: impl FnMut(&[f32], usize) -> Result<Outputs>,
) -> Result<Vec<Vec<EpsOutcome>>> {
    let len = dirs.len();
    if len == 0 || !images.len().is_multiple_of(len) {
        return Err(Error::invalid("images", format!("{} values are not whole images of {len}", images.len())));
    }
    if images.iter().any(|v| !v.is_finite()) {
        return Err(Error::invalid("images", "contain a non-finite value"));
    }
    let prior = prior.into();
    if prior.k() != dirs.k() {
        return Err(Error::invalid("prior", format!("a prior for {} directions, but K = {}", prior.k(), dirs.k())));
    }
    if batch == 0 {
        return Err(Error::invalid("batch size", "0 (must be at least 1)"));
    }
    let n = images.len() / len;
    let mut searches = (0..n).map(|_| prior.search(search)).collect::<Result<Vec<_>>>()?;
    let mut base = Vec::with_capacity(n);
    for chunk in images.chunks(batch * len) {
        let rows = chunk.len() / len;
        let out = classify(chunk, rows)?;
        out.check(rows)?;
        if method == Method::WhiteBox && matches!(out, Outputs::Labels(_)) {
            return Err(Error::Oracle("the white-box route needs logits, but the classifier returned labels".into()));
        }
        base.extend((0..rows).map(|i| out.label(i)));
    }
    let mut inputs = Vec::new();
    loop {
        // one round: every image's pending probes, as (image, probe) in image order
        let round: Vec<(usize, crate::oracle::Probe)> = searches
            .iter_mut()
            .enumerate()
            .flat_map(|(i, s)| s.probes().iter().map(move |&p| (i, p)).collect::<Vec<_>>())
            .collect();
        if round.is_empty() {
            break;
        }
        let mut answers: Vec<Answer> = Vec::with_capacity(round.len());
        for chunk in round.chunks(batch) {
            inputs.clear();
            inputs.resize(chunk.len() * len, 0.0);
            inputs.par_chunks_mut(len).zip(chunk).for_each(|(row, (i, p))| {
                // as `LocalOracle` builds a probe: the perturbation eps * n, then the image added
                let x = &images[i * len..(i + 1) * len];
                for ((r, d), a) in row.iter_mut().zip(dirs.get(p.dir as usize)).zip(x) {
                    *r = d * p.eps + a;
                }
            });
            let out = classify(&inputs, chunk.len())?;
            out.check(chunk.len())?;
            for (j, (i, _)) in chunk.iter().enumerate() {
                answers.push(out.answer(j, base[*i], method)?);
            }
        }
        let mut at = 0;
        for (i, s) in searches.iter_mut().enumerate() {
            let m = round[at..].iter().take_while(|(owner, _)| *owner == i).count();
            if m > 0 {
                s.answer(&answers[at..at + m])?;
                at += m;
            }
        }
    }
    Ok(searches.iter().map(|s| s.outcomes()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::directions::{DirectionConfig, Strategy};
    use crate::model::{Arch, Classifier};
    use crate::nn::{Network, Shape};
    use crate::oracle::LocalOracle;
    use crate::rng::Rng;
    use crate::signature::{extract, run_search, signature_via_oracle, ExtractConfig};
    use std::collections::BTreeMap;
    use std::sync::Arc;

    fn setup(n: usize, k: usize) -> (Arc<Network>, Directions, Vec<f32>) {
        let shape = Shape::new(28, 28, 1);
        let net = Network::new(shape, Arch::TargetNetS.layers(shape, 10, 0), 5).unwrap();
        let dirs = Directions::generate(&DirectionConfig { strategy: Strategy::Gaussian, k, seed: 3 }, shape).unwrap();
        let mut rng = Rng::new(9);
        let pixels: Vec<u8> = (0..n * 784).map(|_| (rng.next_u64() >> 56) as u8).collect();
        let images = apsig_data::Split::from_bytes(&pixels, vec![0; n], 28, 28, 1).images;
        (Arc::new(net), dirs, images)
    }

    /// Logits of `n` inputs, one input at a time (so no batch size can change a bit).
    fn per_row(net: &Network, x: &[f32], n: usize) -> Outputs {
        let len = x.len() / n;
        Outputs::Logits { classes: 10, values: x.chunks(len).flat_map(|r| net.logits(r, 1)).collect() }
    }

    #[test]
    fn same_signatures_as_the_per_image_route_at_any_batch_size() {
        let (net, dirs, images) = setup(6, 12);
        let search = SearchConfig::decoder_grade(256.0);
        let starts: Vec<f32> = (0..12).map(|j| 0.5 + j as f32).collect();
        for method in [Method::ChangeBit, Method::WhiteBox] {
            // the per-image route: one search per image, its probes built as the oracle builds them
            let want: Vec<Vec<EpsOutcome>> = images
                .chunks(784)
                .map(|x| {
                    let base = crate::argmax(&net.logits(x, 1));
                    run_search(&search, &starts, |ps| {
                        let rows: Vec<f32> = ps
                            .iter()
                            .flat_map(|p| dirs.get(p.dir as usize).iter().zip(x).map(move |(d, a)| d * p.eps + a))
                            .collect();
                        let out = per_row(&net, &rows, ps.len());
                        (0..ps.len()).map(|i| out.answer(i, base, method)).collect()
                    })
                    .unwrap()
                })
                .collect();
            for batch in [1, 7, 100, 1 << 20] {
                let mut calls = 0;
                let got = lockstep_signatures(&dirs, &images, &starts, &search, method, batch, |x, n| {
                    calls += 1;
                    assert!(n <= batch);
                    Ok(per_row(&net, x, n))
                })
                .unwrap();
                assert_eq!(got, want, "{method:?}, batch {batch}");
                if batch == 1 << 20 {
                    // every round of every image in one call (plus one for the images' classes)
                    let rounds = want.iter().flatten().map(|o| o.queries).max().unwrap() as usize;
                    assert!(calls <= rounds + 1, "{calls} calls for {rounds} rounds");
                }
            }
        }
    }

    #[test]
    fn change_bits_agree_with_the_local_oracle_and_eps_with_the_extraction() {
        // the oracle without lifted directions builds probes exactly as the lockstep does, and
        // labels them in chunks; the change bits agree with `extract`'s per-image route
        let (net, dirs, images) = setup(4, 10);
        let search = SearchConfig::decoder_grade(256.0);
        let starts = vec![0.5; 10];
        let got = lockstep_signatures(&dirs, &images, &starts, &search, Method::ChangeBit, 64, |x, n| {
            Ok(Outputs::Logits { classes: 10, values: net.logits(x, n) })
        })
        .unwrap();
        let model: Arc<dyn Classifier> = net.clone();
        for (x, row) in images.chunks(784).zip(&got) {
            let oracle = LocalOracle::new(model.clone(), x, None).unwrap();
            assert_eq!(&signature_via_oracle(&oracle, &dirs, &starts, &search).unwrap(), row);
        }
        // and the whole extraction (lifted directions, blocks, rayon: other rounding) agrees
        // within the search's tolerance
        let pixels: Vec<u8> = images.iter().map(|v| (v * 255.0).round() as u8).collect();
        let split = apsig_data::Split::from_bytes(&pixels, vec![0; 4], 28, 28, 1);
        let cfg = ExtractConfig { method: Method::WhiteBox, search: search.clone() };
        let set =
            extract(model, &dirs, &split, &BTreeMap::new(), 0..4, None, None, &cfg, None, &crate::NoProgress).unwrap();
        let white = lockstep_signatures(&dirs, &split.images, &starts, &search, Method::WhiteBox, 64, |x, n| {
            Ok(Outputs::Logits { classes: 10, values: net.logits(x, n) })
        })
        .unwrap();
        let close = white
            .iter()
            .flatten()
            .zip(set.eps.iter().zip(&set.censored))
            .filter(|(o, (e, c))| o.censored == (**c != 0) && (o.eps / **e - 1.0).abs() <= 0.011)
            .count();
        assert!(close >= 38, "{close} of 40 eps agree within the tolerance");
    }

    #[test]
    fn bad_answers_are_errors() {
        let (_, dirs, images) = setup(2, 3);
        let search = SearchConfig::decoder_grade(256.0);
        let run = |method, f: &dyn Fn(usize) -> Outputs| {
            lockstep_signatures(&dirs, &images, &[0.5; 3], &search, method, 16, |_, n| Ok(f(n)))
                .unwrap_err()
                .to_string()
        };
        let short = run(Method::ChangeBit, &|n| Outputs::Labels(vec![0; n - 1]));
        assert!(short.contains("answers for a batch of"), "{short}");
        let nan = run(Method::ChangeBit, &|n| Outputs::Logits { classes: 2, values: vec![f32::NAN; 2 * n] });
        assert!(nan.contains("non-finite"), "{nan}");
        let labels = run(Method::WhiteBox, &|n| Outputs::Labels(vec![0; n]));
        assert!(labels.contains("needs logits"), "{labels}");
        let mut bad = images.clone();
        bad[5] = f32::NAN;
        let e = lockstep_signatures(&dirs, &bad, &[0.5; 3], &search, Method::ChangeBit, 16, |_, n| {
            Ok(Outputs::Labels(vec![0; n]))
        })
        .unwrap_err();
        assert!(e.to_string().contains("non-finite"), "{e}");
    }
}

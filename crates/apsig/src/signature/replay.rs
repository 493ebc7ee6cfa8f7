//! The adversary's own signatures as the secrets' search would have measured them.
//!
//! The adversary measures its own images exactly (white-box, 1% tolerance), but the decoder
//! reads secrets measured by a coarser change-bit search: a wider tolerance, brackets predicted
//! from the eps already seen, and censoring where that search gives up. A decoder trained on
//! exact eps meets inputs at test time that it never saw. Replaying the secrets' search on each
//! training image, against an oracle that flips exactly where the measured eps says, gives the
//! decoder training inputs made the way its test inputs are, for no query at all: the search is
//! a pure state machine (`EpsSearch`), so the replay is the search itself, not a model of it.
//! Why it pays: docs/results/ab/budget-decoders.txt (decoders trained on the secrets' own
//! search had 2-5% lower MSE on Fashion-MNIST) and docs/results/ab/replayed-search.txt.

use super::search::{run_search, Prior, SearchConfig};
use super::{EpsOutcome, SignatureSet};
use crate::error::{Error, Result};
use rayon::prelude::*;

/// `exact` re-measured by the search `cfg` from `prior`, each direction answered by a
/// single-threshold oracle that flips at or beyond the measured eps (never where censored).
/// The queries recorded are the ones the replayed search would have spent.
pub fn replay_search(exact: &SignatureSet, cfg: &SearchConfig, prior: Prior<'_>) -> Result<SignatureSet> {
    let k = exact.k;
    if prior.k() != k {
        return Err(Error::invalid(
            "replayed search",
            format!("the search's prior has {} directions, the signatures {k}", prior.k()),
        ));
    }
    cfg.validate()?;
    let rows: Vec<Vec<EpsOutcome>> = (0..exact.n())
        .into_par_iter()
        .map(|i| {
            let (eps, censored) = (exact.row(i), &exact.censored[i * k..(i + 1) * k]);
            run_search(cfg, prior, |probes| {
                Ok(probes
                    .iter()
                    .map(|p| {
                        let d = p.dir as usize;
                        (censored[d] == 0 && p.eps >= eps[d], None)
                    })
                    .collect())
            })
        })
        .collect::<Result<_>>()?;
    let mut provenance = exact.provenance.clone();
    provenance.insert("replayed search".into(), serde_json::to_string(cfg).expect("serialises"));
    provenance.insert("replayed starts".into(), prior.fingerprint());
    Ok(SignatureSet::from_outcomes(k, exact.indices.clone(), &rows, provenance))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;
    use crate::signature::EpsPredictor;

    /// Exact signatures of a ray classifier with one threshold per direction: the thresholds
    /// themselves, censored beyond `eps_max`.
    fn exact_of(thresholds: &[Vec<f32>], eps_max: f32) -> SignatureSet {
        let rows: Vec<Vec<EpsOutcome>> = thresholds
            .iter()
            .map(|t| t.iter().map(|&t| EpsOutcome { eps: t.min(eps_max), censored: t > eps_max, queries: 7 }).collect())
            .collect();
        let indices = (0..thresholds.len() as u32).collect();
        SignatureSet::from_outcomes(thresholds[0].len(), indices, &rows, Default::default())
    }

    fn thresholds(n: usize, k: usize, seed: u64) -> Vec<Vec<f32>> {
        let mut rng = Rng::new(seed);
        (0..n)
            .map(|_| {
                let scale = (rng.normal() * 0.8).exp() * 6.0;
                (0..k)
                    .map(|_| scale * (rng.normal() * 0.5).exp() * if rng.uniform() < 0.05 { 400.0 } else { 1.0 })
                    .collect()
            })
            .collect()
    }

    #[test]
    fn replay_is_the_search_run_on_the_secret_itself() {
        let (k, eps_max) = (20, 256.0);
        let t = thresholds(40, k, 3);
        let exact = exact_of(&t, eps_max);
        let predictor = EpsPredictor::fit(k, &exact.eps, 5).unwrap();
        let cfg = SearchConfig::predicted(eps_max);
        for prior in [Prior::Predicted(&predictor), Prior::Starts(&[0.5; 20])] {
            let replayed = replay_search(&exact, &cfg, prior).unwrap();
            assert_eq!(replayed.indices, exact.indices);
            for (i, t) in t.iter().enumerate() {
                let direct =
                    run_search(&cfg, prior, |ps| Ok(ps.iter().map(|p| (p.eps >= t[p.dir as usize], None)).collect()))
                        .unwrap();
                let want = SignatureSet::from_outcomes(k, vec![0], &[direct], Default::default());
                assert_eq!(replayed.row(i), want.row(0));
                assert_eq!(&replayed.censored[i * k..(i + 1) * k], &want.censored[..]);
                assert_eq!(&replayed.queries[i * k..(i + 1) * k], &want.queries[..]);
            }
            assert!(replayed.censored_fraction() > 0.0, "some thresholds lie beyond eps_max");
            // the secrets' search finds each threshold to its own tolerance
            for (r, e) in replayed.eps.iter().zip(&exact.eps) {
                assert!(*r >= e * 0.999 && *r <= e * (1.0 + cfg.rel_tol) * 1.001, "{r} against {e}");
            }
            assert!(replayed.prov("replayed search").contains("rel_tol"));
        }
    }

    #[test]
    fn a_prior_of_another_k_is_refused() {
        let exact = exact_of(&thresholds(4, 6, 1), 256.0);
        let err = replay_search(&exact, &SearchConfig::predicted(256.0), Prior::Starts(&[0.5; 5])).unwrap_err();
        assert!(err.to_string().contains("5 directions, the signatures 6"), "{err}");
    }
}

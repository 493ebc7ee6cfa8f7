//! Two run configurations on the same secrets (`apsig compare`): each finished run's
//! reconstructions are scored again secret by secret, and each difference between a candidate
//! run and its reference gets a 95% paired bootstrap interval over the secrets. Pairs of runs
//! stand for seeds (each pair drawn with its own target, directions and decoder seeds); as in
//! the study, a side wins only where every pair's interval leaves zero out on its side.

use super::{files, image_shape, RunConfig, SignatureStats};
use crate::error::{Error, Result};
use crate::eval::{paired_bootstrap, scored, winner, Interval, Measure, PerSecret, Verdict, RESAMPLES};
use crate::io::TensorFile;
use crate::model::{Arch, Classifier, SuppliedModel};
use crate::signature::SignatureSet;
use crate::Progress;
use apsig_data::{DataOptions, Dataset};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Scores finished run directories, `reference[i]` paired with `candidate[i]` (one pair per
/// seed), and compares them as [`compare`] does. Each data set is loaded once; each run is
/// judged by the evaluator `evaluator_of` gives for its directory: the CLI also reads the ONNX
/// ones users supplied, [`own_evaluator`] reads the ones apsig trained.
pub fn compare_dirs<E: From<Error>>(
    reference: &[PathBuf],
    candidate: &[PathBuf],
    data_opts: &DataOptions,
    seed: u64,
    progress: &dyn Progress,
    mut evaluator_of: impl FnMut(&Path) -> std::result::Result<SuppliedModel, E>,
) -> std::result::Result<Comparison, E> {
    if reference.len() != candidate.len() {
        let msg = format!(
            "{} reference runs but {} candidate runs (they pair by position, one pair per seed)",
            reference.len(),
            candidate.len()
        );
        return Err(Error::invalid("compare", msg).into());
    }
    let mut data = BTreeMap::new();
    let mut score = |dir: &Path| -> std::result::Result<RunOutcomes, E> {
        let config = dir.join(files::CONFIG);
        if !config.is_file() {
            return Err(Error::bad_file(dir, "not a run directory (no config.toml)").into());
        }
        let cfg: RunConfig = crate::io::read_toml(&config)?;
        if !data.contains_key(&cfg.dataset) {
            let loaded = apsig_data::load(&cfg.dataset, data_opts).map_err(Error::from)?;
            data.insert(cfg.dataset.clone(), loaded);
        }
        let evaluator = evaluator_of(dir)?;
        progress.message(&format!("scoring {}", dir.display()));
        Ok(run_outcomes(dir, &data[&cfg.dataset], evaluator.classifier.as_ref(), &evaluator.sha256)?)
    };
    let mut pairs = Vec::with_capacity(reference.len());
    for (r, c) in reference.iter().zip(candidate) {
        pairs.push((score(r)?, score(c)?));
    }
    Ok(compare(&pairs, seed)?)
}

/// The evaluator a run trained for itself (`evaluator.safetensors` in its directory).
pub fn own_evaluator(dir: &Path) -> Result<SuppliedModel> {
    let path = dir.join(files::EVALUATOR);
    if !path.exists() {
        return Err(Error::bad_file(
            &path,
            "missing: not a finished run, or one judged by a user-supplied ONNX evaluator (compare those with `apsig compare`, which reads ONNX)",
        ));
    }
    SuppliedModel::from_apsig_file(&path, Arch::EvalNet)
}

/// The reconstructions of a run directory and the test-split indices of their secrets (as
/// `write_reconstructions` wrote them).
pub fn read_reconstructions(path: &Path) -> Result<(Vec<f32>, Vec<u32>)> {
    let file = TensorFile::read(path)?;
    let (_, indices) = file.u32("indices", None)?;
    let (shape, recons) = file.f32("reconstructions", None)?;
    if shape.first() != Some(&indices.len()) {
        return Err(Error::bad_file(
            path,
            format!("{} reconstructions for {} indices", shape.first().unwrap_or(&0), indices.len()),
        ));
    }
    Ok((recons, indices))
}

/// One finished run, scored secret by secret.
#[derive(Clone, Debug)]
pub struct RunOutcomes {
    /// The run directory.
    pub dir: PathBuf,
    /// Its data set's name.
    pub dataset: String,
    /// The test-split index of each secret.
    pub indices: Vec<u32>,
    /// Each secret's outcome.
    pub per_secret: PerSecret,
    /// SHA-256 of the evaluator that judged class recovery.
    pub evaluator_sha256: String,
    /// Mean change-oracle queries per secret, from the run's test signatures (none where the
    /// run directory no longer holds them).
    pub queries_per_secret: Option<f64>,
}

/// Scores the reconstructions of the finished run in `dir` against `data`'s test images, with
/// `evaluator` (the one the run judged with; its SHA-256 is `evaluator_sha256`).
pub fn run_outcomes(
    dir: &Path,
    data: &Dataset,
    evaluator: &dyn Classifier,
    evaluator_sha256: &str,
) -> Result<RunOutcomes> {
    let path = dir.join(files::RECONS);
    let (recons, indices) = read_reconstructions(&path)?;
    let test = &data.test;
    let image = image_shape(test);
    if recons.len() != indices.len() * image.len() {
        return Err(Error::bad_file(
            &path,
            format!("reconstructions are not {}x{}x{} images of {}", image.h, image.w, image.c, data.name),
        ));
    }
    if let Some(i) = indices.iter().find(|&&i| i as usize >= test.n) {
        return Err(Error::bad_file(&path, format!("index {i} outside {}'s {} test images", data.name, test.n)));
    }
    let secrets = test.subset(&indices.iter().map(|&i| i as usize).collect::<Vec<_>>());
    let (_, per_secret) = scored(&recons, &secrets.images, &secrets.labels, image, evaluator);
    let sigs = dir.join(files::SIG_TEST);
    let queries_per_secret = match sigs.exists() {
        true => {
            let set = SignatureSet::load(&sigs)?;
            if set.indices != indices {
                return Err(Error::bad_file(&sigs, format!("covers other secrets than {}", path.display())));
            }
            Some(SignatureStats::of(&set).queries_per_image)
        }
        false => None,
    };
    Ok(RunOutcomes {
        dir: dir.to_path_buf(),
        dataset: data.name.clone(),
        indices,
        per_secret,
        evaluator_sha256: evaluator_sha256.to_string(),
        queries_per_secret,
    })
}

/// One measure of one pair: both means and the interval of candidate minus reference.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Difference {
    /// What is compared.
    pub measure: Measure,
    /// The reference run's mean (a share for identification and class recovery).
    pub reference: f64,
    /// The candidate run's mean.
    pub candidate: f64,
    /// Candidate minus reference, with its 95% paired bootstrap interval over the secrets.
    pub interval: Interval,
}

/// A reference run and a candidate run on the same secrets.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PairComparison {
    /// The reference run's directory.
    pub reference: String,
    /// The candidate run's directory.
    pub candidate: String,
    /// Secrets both runs reconstructed.
    pub secrets: usize,
    /// Whether one evaluator judged both (else class recovery differs by evaluator too).
    pub same_evaluator: bool,
    /// Mean queries per secret of the reference and the candidate run, where known.
    pub queries_per_secret: [Option<f64>; 2],
    /// One entry per measure, in `Measure::ALL` order.
    pub differences: Vec<Difference>,
}

/// Every pair and the verdict per measure.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Comparison {
    /// Bootstrap resamples behind each interval.
    pub resamples: usize,
    /// One entry per pair of runs (a seed).
    pub pairs: Vec<PairComparison>,
    /// Per measure: `first` is the candidate, `second` the reference.
    pub verdicts: Vec<(Measure, Verdict)>,
}

/// Compares each `(reference, candidate)` pair on its secrets, each bootstrap seeded by `seed`
/// and the pair's place. Refuses pairs of different data sets or different secrets.
pub fn compare(pairs: &[(RunOutcomes, RunOutcomes)], seed: u64) -> Result<Comparison> {
    if pairs.is_empty() {
        return Err(Error::invalid("compare", "needs at least one reference and one candidate run"));
    }
    let mut out = Vec::with_capacity(pairs.len());
    for (place, (r, c)) in pairs.iter().enumerate() {
        let names = format!("{} and {}", r.dir.display(), c.dir.display());
        if r.dataset != c.dataset {
            return Err(Error::invalid("compare", format!("{names} ran on {} and {}", r.dataset, c.dataset)));
        }
        if r.indices != c.indices {
            return Err(Error::invalid(
                "compare",
                format!(
                    "{names} reconstructed different secrets ({} and {} test images)",
                    r.indices.len(),
                    c.indices.len()
                ),
            ));
        }
        let differences = Measure::ALL
            .iter()
            .map(|&m| {
                let (a, b) = (c.per_secret.values(m), r.per_secret.values(m));
                let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
                let interval = paired_bootstrap(&a, &b, RESAMPLES, seed ^ (place as u64).wrapping_mul(0x9e37))
                    .ok_or_else(|| Error::invalid("compare", format!("{names} have no secrets")))?;
                Ok(Difference { measure: m, reference: mean(&b), candidate: mean(&a), interval })
            })
            .collect::<Result<Vec<_>>>()?;
        out.push(PairComparison {
            reference: r.dir.display().to_string(),
            candidate: c.dir.display().to_string(),
            secrets: r.indices.len(),
            same_evaluator: r.evaluator_sha256 == c.evaluator_sha256,
            queries_per_secret: [r.queries_per_secret, c.queries_per_secret],
            differences,
        });
    }
    let verdicts = Measure::ALL
        .iter()
        .enumerate()
        .map(|(j, &m)| {
            let per_seed: Vec<Option<Interval>> = out.iter().map(|p| Some(p.differences[j].interval)).collect();
            (m, winner(&per_seed, m.lower_is_better()))
        })
        .collect();
    Ok(Comparison { resamples: RESAMPLES, pairs: out, verdicts })
}

impl Comparison {
    /// The comparison as Markdown: a table per measure, one row per pair, and its verdict.
    pub fn markdown(&self) -> String {
        use std::fmt::Write;
        let mut md = format!(
            "Candidate minus reference on the same secrets, with 95% paired bootstrap intervals over the secrets \
             ({} resamples; identification is resampled per secret, its competitors held fixed). A side wins \
             only where every pair's interval leaves zero out on its side.\n",
            self.resamples
        );
        let queries = |q: Option<f64>| q.map_or("n/a".into(), |q| format!("{q:.1}"));
        md.push_str("\nQueries per secret (the change oracle's, from each run's test signatures):\n\n| reference | candidate | reference | candidate |\n|---|---|---|---|\n");
        for p in &self.pairs {
            let [r, c] = p.queries_per_secret;
            let _ = writeln!(md, "| {} | {} | {} | {} |", p.reference, p.candidate, queries(r), queries(c));
        }
        for (j, (m, v)) in self.verdicts.iter().enumerate() {
            let (scale, digits, unit) = if *m == Measure::Mse { (1.0, 6, "") } else { (100.0, 2, " (points)") };
            let f = |x: f64| format!("{:.*}", digits, scale * x);
            let _ = writeln!(
                md,
                "\n{}{unit}:\n\n| reference | candidate | secrets | reference | candidate | difference [95% interval] |\n|---|---|---|---|---|---|",
                m.name()
            );
            for p in &self.pairs {
                let d = &p.differences[j];
                let note = if p.same_evaluator || *m != Measure::ClassRecovered { "" } else { " (two evaluators)" };
                let _ = writeln!(
                    md,
                    "| {} | {} | {} | {} | {} | {} [{}, {}]{note} |",
                    p.reference,
                    p.candidate,
                    p.secrets,
                    f(d.reference),
                    f(d.candidate),
                    f(d.interval.estimate),
                    f(d.interval.low),
                    f(d.interval.high)
                );
            }
            let winner = match v {
                Verdict::First => "the candidate",
                Verdict::Second => "the reference",
                Verdict::NoWinner => "no winner",
            };
            let _ = writeln!(md, "\nWinner on {}: {winner}.", m.name());
        }
        md
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcomes(dir: &str, mse: Vec<f64>, identified: Vec<bool>) -> RunOutcomes {
        let n = mse.len();
        RunOutcomes {
            dir: dir.into(),
            dataset: "mnist".into(),
            indices: (0..n as u32).collect(),
            per_secret: PerSecret { mse, identified, class_recovered: vec![true; n] },
            evaluator_sha256: "e".into(),
            queries_per_secret: Some(100.0),
        }
    }

    #[test]
    fn a_candidate_better_at_every_seed_wins_and_a_tie_names_no_one() {
        let n = 200;
        let base: Vec<f64> = (0..n).map(|i| 0.02 + 0.01 * ((i * 37 % 11) as f64 / 11.0)).collect();
        let lower: Vec<f64> = base.iter().map(|x| x - 0.001).collect();
        let ident = |k: usize| (0..n).map(|i| i % k == 0).collect::<Vec<_>>();
        let pairs: Vec<_> = (0..3)
            .map(|s| {
                (
                    outcomes(&format!("ref-{s}"), base.clone(), ident(3)),
                    outcomes(&format!("cand-{s}"), lower.clone(), ident(3)),
                )
            })
            .collect();
        let c = compare(&pairs, 1).unwrap();
        assert_eq!(c.verdicts[0], (Measure::Mse, Verdict::First));
        assert_eq!(c.verdicts[1], (Measure::Identified, Verdict::NoWinner), "same secrets identified");
        let d = &c.pairs[0].differences[0];
        assert!((d.interval.estimate + 0.001).abs() < 1e-12 && (d.candidate - d.reference + 0.001).abs() < 1e-12);
        assert!(c.markdown().contains("Winner on MSE: the candidate."));

        // one seed where the candidate is worse: no winner
        let mut mixed = pairs.clone();
        mixed[2].1.per_secret.mse = base.iter().map(|x| x + 0.001).collect();
        assert_eq!(compare(&mixed, 1).unwrap().verdicts[0].1, Verdict::NoWinner);
    }

    #[test]
    fn runs_on_other_secrets_or_data_are_refused() {
        let a = outcomes("a", vec![0.1; 4], vec![true; 4]);
        let mut b = outcomes("b", vec![0.1; 4], vec![true; 4]);
        b.indices[3] = 9;
        let e = compare(&[(a.clone(), b)], 1).unwrap_err().to_string();
        assert!(e.contains("different secrets") && e.contains('a') && e.contains('b'), "{e}");
        let mut c = outcomes("c", vec![0.1; 4], vec![true; 4]);
        c.dataset = "fashion-mnist".into();
        assert!(compare(&[(a, c)], 1).unwrap_err().to_string().contains("fashion-mnist"));
        assert!(compare(&[], 1).is_err());
    }
}

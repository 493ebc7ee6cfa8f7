//! The study on one data set: its target and evaluator, its signature sets, and its blocks.

use super::features::{self, NO_LABEL};
use super::{slug, Cell, DatasetSummary, StudyConfig};
use crate::decoder::{fit_network, Standardiser};
use crate::defence::{Defence, MajorityVote};
use crate::directions::{DirectionConfig, DirectionContext, Directions, Strategy};
use crate::error::{Error, Result};
use crate::eval::{quality, Baselines, Quality};
use crate::model::{Arch, Classifier, TrainConfig};
use crate::nn::Network;
use crate::oracle::{LiftedDirections, LocalOracle, Probe};
use crate::pipeline::{classifier_stage, image_shape, median_eps, pilot_starts, signature_stage, SignatureStage};
use crate::rng::Rng;
use crate::signature::{run_search, signature_via_oracle, EpsOutcome, ExtractConfig, Method, SignatureSet};
use crate::Progress;
use apsig_data::Dataset;
use rayon::prelude::*;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

/// Signatures of one direction set: the adversary's training signatures and the secrets'.
struct Measured {
    dirs: Directions,
    train: SignatureSet,
    test: SignatureSet,
}

/// A decoder trained on some features, with the standardisation it expects.
struct FittedDecoder {
    scale: Standardiser,
    net: Network,
}

pub struct DatasetStudy<'a> {
    cfg: &'a StudyConfig,
    data: Dataset,
    dir: PathBuf,
    target: Arc<Network>,
    target_accuracy: f64,
    evaluator: Network,
    evaluator_accuracy: f64,
    progress: &'a dyn Progress,
    /// Gaussian directions at the largest K any cell needs, shared by most blocks.
    gaussian: OnceLock<Arc<Measured>>,
    /// The decoder of the paper's setting (Gaussian, K, all training signatures).
    reference: OnceLock<Arc<FittedDecoder>>,
}

impl<'a> DatasetStudy<'a> {
    /// Trains (or reuses) the target and the evaluator.
    pub fn prepare(cfg: &'a StudyConfig, data: Dataset, dir: &Path, progress: &'a dyn Progress) -> Result<Self> {
        std::fs::create_dir_all(dir.join("cells")).map_err(|e| Error::io(dir, e))?;
        let classifier_data = classifier_data(&data, cfg.classifier_images);
        progress.message(&format!("{}: training the target", data.name));
        let (target, acc, _) = classifier_stage(
            Arch::TargetNetS,
            &classifier_data,
            &cfg.target,
            &dir.join("target.safetensors"),
            dir,
            progress,
        )?;
        progress.message(&format!("{}: training the evaluator", data.name));
        let (evaluator, eval_acc, _) = classifier_stage(
            Arch::EvalNet,
            &classifier_data,
            &cfg.evaluator,
            &dir.join("evaluator.safetensors"),
            dir,
            progress,
        )?;
        if data.train.n < cfg.train_signatures || data.test.n < cfg.secrets {
            return Err(Error::invalid(
                "study config",
                format!(
                    "{} has {} training and {} test images; the study asks for {} and {}",
                    data.name, data.train.n, data.test.n, cfg.train_signatures, cfg.secrets
                ),
            ));
        }
        Ok(DatasetStudy {
            cfg,
            data,
            dir: dir.to_path_buf(),
            target: Arc::new(target),
            target_accuracy: acc as f64,
            evaluator,
            evaluator_accuracy: eval_acc as f64,
            progress,
            gaussian: OnceLock::new(),
            reference: OnceLock::new(),
        })
    }

    /// Every block, then the attributes and the baselines.
    pub fn run_all(&self) -> Result<DatasetSummary> {
        let cfg = self.cfg;
        let mut cells = Vec::new();
        for &s in &cfg.strategies {
            cells.extend(self.block(&format!("strategy-{}", s.name()), || self.strategy_block(s))?);
        }
        cells.extend(self.block("oracles", || self.oracle_block())?);
        cells.extend(self.block("k-sweep", || self.k_block())?);
        cells.extend(self.block("train-size", || self.size_block())?);
        cells.extend(self.block("defence-budget", || self.budget_block())?);
        cells.extend(self.block("defence-random-answers", || self.random_answer_block())?);
        cells.extend(self.block("defence-input-noise", || self.input_noise_block())?);
        for &sigma in &cfg.smooth_training {
            cells.extend(self.block(&format!("defence-smooth-{sigma}"), || self.smooth_block(sigma))?);
        }
        self.progress.message(&format!("{}: attributes from signatures", self.data.name));
        let g = self.gaussian()?;
        let n = cfg.train_signatures;
        let (train_x, test_x) =
            (features::signature(&g.train, cfg.k, n), features::signature(&g.test, cfg.k, cfg.secrets));
        let attributes = crate::attributes::attributes_from_signatures(
            &train_x,
            &test_x,
            2 * cfg.k,
            &self.data.train.images[..n * self.px()],
            &self.data.train.labels[..n],
            &self.data.test.images[..cfg.secrets * self.px()],
            &self.data.test.labels[..cfg.secrets],
            self.data.train.rows,
            cfg.attribute_ridge,
        )?;
        let (originals, labels) = self.secrets(cfg.secrets);
        let base = Baselines::from_train(&self.data.train);
        Ok(DatasetSummary {
            dataset: self.data.name.clone(),
            target_accuracy: self.target_accuracy,
            evaluator_accuracy: self.evaluator_accuracy,
            global_mean_baseline: self.quality(&base.global_for(labels.len()), originals, labels),
            class_mean_baseline: self.quality(&base.class_for(labels), originals, labels),
            cells,
            attributes,
        })
    }

    // ---- blocks -------------------------------------------------------------------------

    /// Runs a block unless its rows are already on disk.
    fn block(&self, name: &str, f: impl FnOnce() -> Result<Vec<Cell>>) -> Result<Vec<Cell>> {
        let path = self.dir.join("cells").join(format!("{}.json", slug(name)));
        if let Ok(text) = std::fs::read_to_string(&path) {
            match serde_json::from_str(&text) {
                Ok(cells) => {
                    tracing::info!("reusing {}", path.display());
                    return Ok(cells);
                }
                Err(e) => tracing::warn!("{}: unreadable ({e}), measuring again", path.display()),
            }
        }
        self.progress.message(&format!("{}: {name}", self.data.name));
        let t0 = Instant::now();
        let cells = f()?;
        tracing::info!(block = name, seconds = t0.elapsed().as_secs_f64(), "block done");
        crate::io::atomic_write(&path, serde_json::to_string_pretty(&cells).expect("serialises").as_bytes())?;
        Ok(cells)
    }

    /// One strategy at K: the full search, and the same secrets under a common query cap
    /// (so strategies are also compared at equal queries).
    fn strategy_block(&self, s: Strategy) -> Result<Vec<Cell>> {
        let cfg = self.cfg;
        let m = if s == Strategy::Gaussian { self.gaussian()? } else { Arc::new(self.measure(s, cfg.k, "")?) };
        let dec = self.fit_signature_decoder(&m.train, cfg.k, cfg.train_signatures)?;
        let full = self.signature_cell("strategy", s.name(), cfg.k as f64, &dec, &m.test, cfg.k, cfg.secrets)?;
        // Gaussian is measured at the K sweep's largest K: cap the first K directions only
        let dirs = prefix(&m.dirs, cfg.k);
        let prior = median_eps(&prefix_set(&m.train, cfg.k, cfg.train_signatures));
        let capped = self.defended(&dirs, &prior, Defence::QueryBudget { cap: cfg.strategy_budget }, 1)?;
        let mut at_budget = self.signature_cell(
            "strategy@budget",
            s.name(),
            cfg.strategy_budget as f64,
            &dec,
            &capped,
            cfg.k,
            capped.n(),
        )?;
        at_budget.clean_accuracy = self.target_accuracy;
        Ok(vec![full, at_budget])
    }

    /// The change bit against the stronger oracles: top-1 labels of every query, and the full
    /// score vector of the unperturbed input.
    fn oracle_block(&self) -> Result<Vec<Cell>> {
        let cfg = self.cfg;
        let g = self.gaussian()?;
        let (k, n, classes) = (cfg.k, cfg.train_signatures, self.target.num_classes());
        let change_bit = {
            let dec = self.reference()?;
            self.signature_cell("oracle", "change-bit", 1.0, &dec, &g.test, k, cfg.secrets)?
        };

        // label oracle: same search, but each answer is a label
        let dirs = prefix(&g.dirs, k);
        let train = prefix_set(&g.train, k, n);
        let (train_flips, train_base) = self.own_flip_labels(&dirs, &train);
        let train_x = features::with_labels(&train, &train_flips, &train_base, classes, n);
        let prior = median_eps(&train);
        let lifted = Arc::new(LiftedDirections::new(self.target.as_ref(), &dirs));
        let labelled: Vec<(Vec<EpsOutcome>, Vec<u8>, u8)> = self.over_secrets(cfg.secrets, |_, x| {
            let oracle = LocalOracle::new(self.target.clone(), x, Some(lifted.clone()))?;
            label_signature(&oracle, &dirs, &prior, &cfg.secret_search)
        })?;
        let mut flips = Vec::new();
        let mut base = Vec::new();
        let test = self.to_set(&dirs, labelled.iter().map(|(o, _, _)| o.clone()).collect());
        for (_, f, b) in &labelled {
            flips.extend_from_slice(f);
            base.push(*b);
        }
        let test_x = features::with_labels(&test, &flips, &base, classes, test.n());
        let dec = self.fit(&train_x, train_x.len() / n, n)?;
        let q = test.total_queries() as f64 + test.n() as f64; // plus one query for the base label
        let label = self.cell("oracle", "label", 1.0, &dec, &test_x, test.censored_fraction(), q, k, n)?;

        // score vector: one query, no perturbation
        let own = features::scores(&crate::nn::softmax_rows(
            &self.target.forward(&self.data.train.images[..n * self.px()], n),
            classes,
        ));
        let secret_scores: Vec<Vec<f32>> =
            self.over_secrets(cfg.secrets, |_, x| LocalOracle::new(self.target.clone(), x, None)?.scores())?;
        let test_x = features::scores(&secret_scores.concat());
        let dec = self.fit(&own, classes, n)?;
        let scores = self.cell("oracle", "score-vector", 1.0, &dec, &test_x, 0.0, cfg.secrets as f64, 0, n)?;
        Ok(vec![change_bit, label, scores])
    }

    /// Quality against K: Gaussian signatures measured once at the largest K, sliced.
    fn k_block(&self) -> Result<Vec<Cell>> {
        let g = self.gaussian()?;
        let n = self.cfg.train_signatures;
        let mut out = Vec::new();
        for &k in &self.cfg.k_sweep {
            let dec =
                if k == self.cfg.k { self.reference()? } else { Arc::new(self.fit_signature_decoder(&g.train, k, n)?) };
            out.push(self.signature_cell("k", "gaussian", k as f64, &dec, &g.test, k, self.cfg.secrets)?);
        }
        Ok(out)
    }

    /// Quality against the number of training signatures the decoder sees.
    fn size_block(&self) -> Result<Vec<Cell>> {
        let g = self.gaussian()?;
        let k = self.cfg.k;
        let mut out = Vec::new();
        for &n in &self.cfg.train_sizes {
            let dec = if n == self.cfg.train_signatures {
                self.reference()?
            } else {
                Arc::new(self.fit_signature_decoder(&g.train, k, n)?)
            };
            let mut c = self.signature_cell("train-size", "gaussian", n as f64, &dec, &g.test, k, self.cfg.secrets)?;
            c.train_signatures = n;
            out.push(c);
        }
        Ok(out)
    }

    /// The per-secret query budget: a defence, and the attacker's quality-vs-queries curve.
    fn budget_block(&self) -> Result<Vec<Cell>> {
        let mut out = vec![self.defence_cell(Defence::None, 1)?];
        for &cap in &self.cfg.budgets {
            out.push(self.defence_cell(Defence::QueryBudget { cap }, 1)?);
        }
        Ok(out)
    }

    /// An oracle that lies with probability p, against a naive and a voting attacker.
    fn random_answer_block(&self) -> Result<Vec<Cell>> {
        let mut out = Vec::new();
        for &p in &self.cfg.random_answers {
            for &v in &self.cfg.votes {
                out.push(self.defence_cell(Defence::RandomAnswers { p }, v)?);
            }
        }
        Ok(out)
    }

    fn input_noise_block(&self) -> Result<Vec<Cell>> {
        self.cfg.input_noise.iter().map(|&sigma| self.defence_cell(Defence::InputNoise { sigma }, 1)).collect()
    }

    /// A target trained on noisy inputs (smoother decisions): the adversary owns this model
    /// too, so it measures its training signatures on it and trains a new decoder.
    fn smooth_block(&self, sigma: f32) -> Result<Vec<Cell>> {
        let cfg = self.cfg;
        let tc = TrainConfig { input_noise: sigma, ..cfg.target.clone() };
        let path = self.dir.join(format!("target-smooth-{sigma}.safetensors"));
        let (net, acc, _) = classifier_stage(
            Arch::TargetNetS,
            &classifier_data(&self.data, cfg.classifier_images),
            &tc,
            &path,
            &self.dir,
            self.progress,
        )?;
        let model = Arc::new(net);
        let m = self.measure_on(
            model.clone(),
            Strategy::Gaussian,
            cfg.k,
            &format!("smooth-{sigma}-"),
            cfg.defence_secrets,
        )?;
        let dec = self.fit_signature_decoder(&m.train, cfg.k, cfg.train_signatures)?;
        let mut c =
            self.signature_cell("defence", "smooth-training", sigma as f64, &dec, &m.test, cfg.k, cfg.defence_secrets)?;
        c.clean_accuracy = acc as f64;
        c.latency_ratio = self.latency_ratio(&model, Defence::None);
        Ok(vec![c])
    }

    /// Secrets attacked through a defended oracle, decoded by the reference decoder (the
    /// adversary trains on its own, undefended data).
    fn defence_cell(&self, defence: Defence, votes: usize) -> Result<Cell> {
        let g = self.gaussian()?;
        let k = self.cfg.k;
        let dirs = prefix(&g.dirs, k);
        let prior = median_eps(&prefix_set(&g.train, k, self.cfg.train_signatures));
        let test = self.defended(&dirs, &prior, defence, votes)?;
        let dec = self.reference()?;
        let knob = match defence {
            Defence::None => 0.0,
            Defence::RandomAnswers { p } => p as f64,
            Defence::InputNoise { sigma } => sigma as f64,
            Defence::QueryBudget { cap } => cap as f64,
        };
        let variant = match defence {
            Defence::None => "none",
            Defence::RandomAnswers { .. } => "random-answers",
            Defence::InputNoise { .. } => "input-noise",
            Defence::QueryBudget { .. } => "query-budget",
        };
        let mut c = self.signature_cell("defence", variant, knob, &dec, &test, k, test.n())?;
        c.votes = votes;
        c.clean_accuracy = self.served_accuracy(&self.target, defence);
        c.latency_ratio = self.latency_ratio(&self.target, defence);
        Ok(c)
    }

    // ---- signatures ---------------------------------------------------------------------

    fn gaussian(&self) -> Result<Arc<Measured>> {
        if let Some(g) = self.gaussian.get() {
            return Ok(g.clone());
        }
        let m = Arc::new(self.measure(Strategy::Gaussian, self.cfg.k_max(), "")?);
        Ok(self.gaussian.get_or_init(|| m).clone())
    }

    fn reference(&self) -> Result<Arc<FittedDecoder>> {
        if let Some(d) = self.reference.get() {
            return Ok(d.clone());
        }
        let g = self.gaussian()?;
        let d = Arc::new(self.fit_signature_decoder(&g.train, self.cfg.k, self.cfg.train_signatures)?);
        Ok(self.reference.get_or_init(|| d).clone())
    }

    fn measure(&self, s: Strategy, k: usize, tag: &str) -> Result<Measured> {
        self.measure_on(self.target.clone(), s, k, tag, self.cfg.secrets)
    }

    /// Training signatures (white-box, on the adversary's data) and secrets' signatures
    /// (change bit, starting from the training medians), reused from disk when present.
    fn measure_on(&self, model: Arc<Network>, s: Strategy, k: usize, tag: &str, secrets: usize) -> Result<Measured> {
        let cfg = DirectionConfig { strategy: s, k, seed: self.cfg.seed };
        let ctx = DirectionContext {
            images: &self.data.train.images[..self.cfg.train_signatures * self.px()],
            labels: &self.data.train.labels[..self.cfg.train_signatures],
            model: Some(model.as_ref()),
        };
        let dirs = Directions::generate_with(&cfg, image_shape(&self.data.train), Some(&ctx))?;
        let stage = |count, method, search: &crate::signature::SearchConfig| SignatureStage {
            count,
            extract: ExtractConfig { method, search: search.clone() },
        };
        let train_stage = stage(self.cfg.train_signatures, Method::WhiteBox, &self.cfg.train_search);
        let test_stage = stage(secrets, Method::ChangeBit, &self.cfg.secret_search);
        let name = format!("{tag}{}-k{k}", s.name());
        let sig_dir = self.dir.join("signatures");
        std::fs::create_dir_all(&sig_dir).map_err(|e| Error::io(&sig_dir, e))?;
        let pilot = pilot_starts(model.clone(), &dirs, &self.data.train, &train_stage)?;
        let (train, _) = signature_stage(
            model.clone(),
            &dirs,
            &self.data,
            "train",
            &train_stage,
            Some(&pilot),
            &sig_dir.join(format!("{name}-train.safetensors")),
            &sig_dir.join(format!("parts-{name}-train")),
            self.progress,
        )?;
        let prior = median_eps(&train);
        let (test, _) = signature_stage(
            model,
            &dirs,
            &self.data,
            "test",
            &test_stage,
            Some(&prior),
            &sig_dir.join(format!("{name}-test.safetensors")),
            &sig_dir.join(format!("parts-{name}-test")),
            self.progress,
        )?;
        Ok(Measured { dirs, train, test })
    }

    /// Signatures of the first `defence_secrets` secrets through a defended oracle.
    fn defended(&self, dirs: &Directions, prior: &[f32], defence: Defence, votes: usize) -> Result<SignatureSet> {
        let lifted = Arc::new(LiftedDirections::new(self.target.as_ref(), dirs));
        let seed = self.cfg.seed;
        let rows = self.over_secrets(self.cfg.defence_secrets, |i, x| {
            let oracle =
                LocalOracle::defended(self.target.clone(), x, Some(lifted.clone()), defence, seed ^ (i as u64) << 20)?;
            if votes > 1 {
                signature_via_oracle(&MajorityVote::new(&oracle, votes)?, dirs, prior, &self.cfg.secret_search)
            } else {
                signature_via_oracle(&oracle, dirs, prior, &self.cfg.secret_search)
            }
        })?;
        Ok(self.to_set(dirs, rows))
    }

    /// Runs `f` on the first `n` test images in parallel, in order.
    fn over_secrets<T: Send>(&self, n: usize, f: impl Fn(usize, &[f32]) -> Result<T> + Sync) -> Result<Vec<T>> {
        self.progress.begin("secrets", n as u64);
        let out = (0..n)
            .into_par_iter()
            .map(|i| {
                let r = f(i, self.data.test.image(i));
                self.progress.advance(1);
                r
            })
            .collect::<Result<Vec<T>>>();
        self.progress.end();
        out
    }

    fn to_set(&self, dirs: &Directions, rows: Vec<Vec<EpsOutcome>>) -> SignatureSet {
        let prov = BTreeMap::from([("directions".to_string(), dirs.fingerprint())]);
        SignatureSet::from_outcomes(dirs.k(), (0..rows.len() as u32).collect(), &rows, prov)
    }

    /// For the label oracle's training side: the class each own image flips to along each
    /// direction (the adversary owns the model, so it simply evaluates it at eps), and its
    /// unperturbed class.
    fn own_flip_labels(&self, dirs: &Directions, sigs: &SignatureSet) -> (Vec<u8>, Vec<u8>) {
        let (k, c) = (sigs.k, self.target.num_classes());
        let rows: Vec<(Vec<u8>, u8)> = (0..sigs.n())
            .into_par_iter()
            .map(|i| {
                let x = self.data.train.image(sigs.indices[i] as usize);
                let mut batch = Vec::with_capacity((k + 1) * x.len());
                batch.extend_from_slice(x);
                for j in 0..k {
                    let e = sigs.eps[i * k + j];
                    batch.extend(x.iter().zip(dirs.get(j)).map(|(a, d)| a + e * d));
                }
                let z = self.target.logits(&batch, k + 1);
                let label = |r: usize| crate::argmax(&z[r * c..(r + 1) * c]) as u8;
                let flips =
                    (0..k).map(|j| if sigs.censored[i * k + j] != 0 { NO_LABEL } else { label(j + 1) }).collect();
                (flips, label(0))
            })
            .collect();
        let base = rows.iter().map(|r| r.1).collect();
        (rows.into_iter().flat_map(|r| r.0).collect(), base)
    }

    // ---- decoders and evaluation --------------------------------------------------------

    fn fit_signature_decoder(&self, train: &SignatureSet, k: usize, n: usize) -> Result<FittedDecoder> {
        self.fit(&features::signature(train, k, n), 2 * k, n)
    }

    /// A decoder on the first `n` training images from features `[n, dim]`.
    fn fit(&self, raw: &[f32], dim: usize, n: usize) -> Result<FittedDecoder> {
        let scale = Standardiser::fit(raw, dim);
        let mut x = raw.to_vec();
        scale.apply(&mut x);
        let images = &self.data.train.images[..n * self.px()];
        let (net, _) = fit_network(&x, dim, images, &self.cfg.decoder, None, &crate::NoProgress)?;
        Ok(FittedDecoder { scale, net })
    }

    #[allow(clippy::too_many_arguments)]
    fn signature_cell(
        &self,
        group: &str,
        variant: &str,
        knob: f64,
        dec: &FittedDecoder,
        test: &SignatureSet,
        k: usize,
        secrets: usize,
    ) -> Result<Cell> {
        let x = features::signature(test, k, secrets);
        let queries: u64 =
            (0..secrets).flat_map(|i| &test.queries[i * test.k..i * test.k + k]).map(|&q| q as u64).sum();
        let censored =
            (0..secrets).flat_map(|i| &test.censored[i * test.k..i * test.k + k]).filter(|&&c| c != 0).count();
        let censored = censored as f64 / (secrets * k).max(1) as f64;
        let mut c = self.cell(group, variant, knob, dec, &x, censored, queries as f64, k, self.cfg.train_signatures)?;
        c.secrets = secrets;
        Ok(c)
    }

    /// Decodes `raw` test features and scores the reconstructions against the secrets.
    #[allow(clippy::too_many_arguments)]
    fn cell(
        &self,
        group: &str,
        variant: &str,
        knob: f64,
        dec: &FittedDecoder,
        raw: &[f32],
        censored_fraction: f64,
        total_queries: f64,
        k: usize,
        train_n: usize,
    ) -> Result<Cell> {
        let dim = dec.net.in_len();
        let n = raw.len() / dim;
        let mut x = raw.to_vec();
        dec.scale.apply(&mut x);
        let recons = dec.net.forward(&x, n);
        let (originals, labels) = self.secrets(n);
        Ok(Cell {
            group: group.into(),
            variant: variant.into(),
            knob,
            votes: 1,
            k,
            train_signatures: train_n,
            secrets: n,
            queries_per_image: total_queries / n.max(1) as f64,
            censored_fraction,
            quality: self.quality(&recons, originals, labels),
            clean_accuracy: self.target_accuracy,
            latency_ratio: 1.0,
        })
    }

    fn quality(&self, recons: &[f32], originals: &[f32], labels: &[u8]) -> Quality {
        quality(recons, originals, labels, self.data.test.rows, &self.evaluator)
    }

    fn secrets(&self, n: usize) -> (&[f32], &[u8]) {
        (&self.data.test.images[..n * self.px()], &self.data.test.labels[..n])
    }

    fn px(&self) -> usize {
        self.data.train.pixels()
    }

    // ---- the defender's side ------------------------------------------------------------

    /// Decisions the defended service would return for the test split (its users' view).
    fn served(&self, model: &Network, defence: Defence, n: usize) -> Vec<usize> {
        let c = model.num_classes();
        let mut rng = Rng::derive(self.cfg.seed, "served");
        let mut x = self.data.test.images[..n * self.px()].to_vec();
        if let Defence::InputNoise { sigma } = defence {
            x.iter_mut().for_each(|v| *v += sigma * rng.normal());
        }
        let z = model.forward(&x, n);
        (0..n)
            .map(|i| {
                let top = crate::argmax(&z[i * c..(i + 1) * c]);
                match defence {
                    // a lie about "changed" is, to a user, a different class than the model's
                    Defence::RandomAnswers { p } if rng.uniform() < p => (top + 1 + rng.below(c - 1)) % c,
                    _ => top,
                }
            })
            .collect()
    }

    fn served_accuracy(&self, model: &Network, defence: Defence) -> f64 {
        let n = self.data.test.n;
        let served = self.served(model, defence, n);
        served.iter().zip(&self.data.test.labels).filter(|(a, b)| **a == **b as usize).count() as f64 / n as f64
    }

    /// Wall time to serve 2,048 decisions with `defence`, relative to the undefended target
    /// measured alongside (best of three each, to damp a busy machine).
    fn latency_ratio(&self, model: &Network, defence: Defence) -> f64 {
        let n = 2048.min(self.data.test.n);
        let mut best = [f64::INFINITY; 2];
        for _ in 0..3 {
            for (b, (m, d)) in best.iter_mut().zip([(self.target.as_ref(), Defence::None), (model, defence)]) {
                let t = Instant::now();
                std::hint::black_box(self.served(m, d, n));
                *b = b.min(t.elapsed().as_secs_f64());
            }
        }
        best[1] / best[0].max(1e-9)
    }
}

/// The data the target and evaluator are trained on: the first `limit` training images.
fn classifier_data(data: &Dataset, limit: usize) -> Dataset {
    let mut d = data.clone();
    if limit > 0 && limit < d.train.n {
        d.train = d.train.subset(&(0..limit).collect::<Vec<_>>());
    }
    d
}

/// The first `k` directions (the K sweep's slices).
fn prefix(dirs: &Directions, k: usize) -> Directions {
    if k == dirs.k() {
        return dirs.clone();
    }
    let mut d = dirs.clone();
    d.config.k = k;
    d.data.truncate(k * dirs.len());
    d
}

/// The first `n` rows and `k` directions of a signature set.
fn prefix_set(s: &SignatureSet, k: usize, n: usize) -> SignatureSet {
    let mut out = SignatureSet {
        k,
        indices: s.indices[..n].to_vec(),
        eps: Vec::with_capacity(n * k),
        censored: Vec::with_capacity(n * k),
        queries: Vec::with_capacity(n * k),
        provenance: s.provenance.clone(),
    };
    for i in 0..n {
        let r = i * s.k..i * s.k + k;
        out.eps.extend_from_slice(&s.eps[r.clone()]);
        out.censored.extend_from_slice(&s.censored[r.clone()]);
        out.queries.extend_from_slice(&s.queries[r]);
    }
    out
}

/// The label oracle's search: the change bit is `label != base label`; the label at each
/// direction's final eps (always a probed point) is the class the decision flipped to.
fn label_signature(
    oracle: &LocalOracle,
    dirs: &Directions,
    prior: &[f32],
    search: &crate::signature::SearchConfig,
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

//! The study on one data set: its target and evaluator, its signature sets, and its blocks.

use super::{slug, Cell, DatasetSummary, StudyConfig};
use crate::attributes::{attributes_from_signatures, AttributeProbe, Examples};
use crate::decoder::{Critic, Decoder, Input};
use crate::defence::Defence;
use crate::directions::{DirectionConfig, DirectionContext, Directions, Strategy};
use crate::error::{Error, Result};
use crate::eval::{quality, scored, Baselines, Quality};
use crate::model::{Arch, Classifier, TrainConfig};
use crate::nn::{Network, Shape};
use crate::oracle::{ChangeOracle, LiftedDirections, LocalOracle};
use crate::pipeline::{classifier_stage, measure, MeasurePlan, Measured, SetFiles, SignatureStage};
use crate::rng::Rng;
use crate::signature::boundary::{boundary_search, BoundaryConfig, BoundaryPoint};
use crate::signature::flip_rate::{flip_rates, FlipRatePlan};
use crate::signature::label::{label_signature, own_flip_labels};
use crate::signature::{
    signature_via_oracle, EpsOutcome, EpsPredictor, ExtractConfig, MajorityVote, Method, Prior, SearchConfig,
    SignatureSet,
};
use crate::Progress;
use apsig_data::{Dataset, Split};
use rayon::prelude::*;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

/// The study of one data set: its models, data and cached measurements.
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
    reference: OnceLock<Arc<Decoder>>,
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
        cells.extend(self.block("k-sweep", || self.k_block())?);
        cells.extend(self.block("train-size", || self.size_block())?);
        cells.extend(self.run_comparison()?);
        self.progress.message(&format!("{}: attributes from signatures", self.data.name));
        let g = self.gaussian()?;
        let n = cfg.train_signatures;
        // the probes read ln eps and the mask as +-1, unstandardised (ridge centres them)
        let (train_x, test_x) =
            (Input::signature(&g.train, cfg.k, n, true)?, Input::signature(&g.test, cfg.k, cfg.secrets, true)?);
        let (test_images, test_labels) = self.secrets(cfg.secrets);
        let attributes = attributes_from_signatures(&AttributeProbe {
            train: Examples {
                features: &train_x.values,
                images: &self.data.train.images[..n * self.px()],
                labels: &self.data.train.labels[..n],
            },
            test: Examples { features: &test_x.values, images: test_images, labels: test_labels },
            dim: train_x.kind.dim(),
            image: self.image(),
            lambda: cfg.attribute_ridge,
        })?;
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
            replicates: Vec::new(),
        })
    }

    /// The blocks that are compared with intervals, alone (what `comparison_seeds` repeat): the
    /// oracle variants, the defences, the direction strategies, the search under each query cap,
    /// the label-only baselines and the predicted search.
    pub fn run_comparison(&self) -> Result<Vec<Cell>> {
        let cfg = self.cfg;
        let mut cells = Vec::new();
        cells.extend(self.block("oracles", || self.oracle_block())?);
        cells.extend(self.block("defence-random-answers", || self.random_answer_block())?);
        cells.extend(self.block("defence-input-noise", || self.input_noise_block())?);
        for &sigma in &cfg.smooth_training {
            cells.extend(self.block(&format!("defence-smooth-{sigma}"), || self.smooth_block(sigma))?);
        }
        cells.extend(self.block("defence-round-scores", || self.round_scores_block())?);
        for &s in &cfg.strategies {
            cells.extend(self.block(&format!("strategy-{}", s.name()), || self.strategy_block(s))?);
        }
        cells.extend(self.block("defence-budget", || self.budget_block())?);
        cells.extend(self.block("baseline-flip-rate", || self.flip_rate_block())?);
        if cfg.boundary_grad_queries > 0 && !cfg.budgets.is_empty() {
            cells.extend(self.block("baseline-boundary-distance", || self.boundary_block())?);
        }
        if cfg.predict_group > 0 {
            cells.extend(self.block("baseline-predicted-search", || self.predicted_block())?);
        }
        Ok(cells)
    }

    /// Test accuracy of the target and of the evaluator.
    pub fn accuracies(&self) -> (f64, f64) {
        (self.target_accuracy, self.evaluator_accuracy)
    }

    /// Gives the data back (for the next seed's study of it).
    pub fn into_data(self) -> Dataset {
        self.data
    }

    // ---- blocks -------------------------------------------------------------------------

    /// Runs a block unless its rows are already on disk.
    fn block(&self, name: &str, f: impl FnOnce() -> Result<Vec<Cell>>) -> Result<Vec<Cell>> {
        let path = self.dir.join("cells").join(format!("{}.json", slug(name)));
        if let Ok(text) = std::fs::read_to_string(&path) {
            match serde_json::from_str::<Vec<Cell>>(&text) {
                // rows written before per-secret outcomes were kept cannot enter the intervals
                Ok(cells) if cells.iter().any(|c| Cell::compared(&c.group) && c.per_secret.is_none()) => {
                    tracing::warn!("{}: no per-secret outcomes, measuring again", path.display())
                }
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
        let prior = m.train.prefix(cfg.k, cfg.train_signatures).median_eps();
        let capped = self.defended(
            &m.dirs,
            cfg.k,
            Prior::Starts(&prior),
            &cfg.secret_search,
            Defence::QueryBudget { cap: cfg.strategy_budget },
            1,
        )?;
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
        let dirs = g.dirs.prefix(k);
        let train = g.train.prefix(k, n);
        let (train_flips, train_base) = own_flip_labels(self.target.as_ref(), &dirs, &train, &self.data.train);
        let use_mask = cfg.decoder.use_mask;
        let train_x = Input::labels(&train, k, use_mask, &train_flips, &train_base, classes)?;
        let prior = train.median_eps();
        let lifted = Arc::new(LiftedDirections::new(self.target.as_ref(), &dirs));
        let labelled: Vec<(Vec<EpsOutcome>, Vec<u8>, u8)> = self.over_secrets(cfg.secrets, |_, x| {
            let oracle = LocalOracle::new(self.target.clone(), x, Some(lifted.clone()))?;
            label_signature(&oracle, &dirs, &prior, &cfg.secret_search)
        })?;
        let mut flips = Vec::new();
        let mut base = Vec::new();
        let test = self.to_set(&g.dirs, k, labelled.iter().map(|(o, _, _)| o.clone()).collect());
        for (_, f, b) in &labelled {
            flips.extend_from_slice(f);
            base.push(*b);
        }
        let test_x = Input::labels(&test, k, use_mask, &flips, &base, classes)?;
        let dec = self.fit(&train_x)?;
        let q = test.total_queries() as f64 + test.n() as f64; // plus one query for the base label
        let label = self.cell("oracle", "label", 1.0, &dec, &test_x, test.censored_fraction(), q, k, n)?;

        Ok(vec![change_bit, label, self.score_cell(Defence::None)?])
    }

    /// The score-vector oracle (one query, no perturbation) behind `defence`. The adversary
    /// sees what the service publishes, so it shapes its own training scores the same way.
    fn score_cell(&self, defence: Defence) -> Result<Cell> {
        let (n, classes, seed) = (self.cfg.train_signatures, self.target.num_classes(), self.cfg.seed);
        let mut own =
            crate::nn::softmax_rows(&self.target.forward(&self.data.train.images[..n * self.px()], n), classes);
        own.chunks_mut(classes).for_each(|p| defence.perturb_scores(p));
        let secret_scores: Vec<Vec<f32>> = self.over_secrets(self.cfg.secrets, |i, x| {
            LocalOracle::defended(self.target.clone(), x, None, defence, seed ^ (i as u64) << 20)?.scores()
        })?;
        let test_x = Input::scores(&secret_scores.concat(), classes)?;
        let dec = self.fit(&Input::scores(&own, classes)?)?;
        let secrets = self.cfg.secrets as f64;
        let mut c = self.cell("oracle", "score-vector", 1.0, &dec, &test_x, 0.0, secrets, 0, n)?;
        if defence != Defence::None {
            c.clean_accuracy = self.served_accuracy(&self.target, defence);
        }
        Ok(c)
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

    /// The score-vector oracle behind rounded outputs (the adversary rounds its own scores alike).
    fn round_scores_block(&self) -> Result<Vec<Cell>> {
        let rounded = |decimals| {
            let defence = Defence::RoundScores { decimals };
            let c = self.score_cell(defence)?;
            Ok(Cell { group: "defence".into(), variant: defence.name().into(), knob: defence.knob(), ..c })
        };
        self.cfg.round_scores.iter().map(|&d| rounded(d)).collect()
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
        let prior = g.train.prefix(k, self.cfg.train_signatures).median_eps();
        let test = self.defended(&g.dirs, k, Prior::Starts(&prior), &self.cfg.secret_search, defence, votes)?;
        let dec = self.reference()?;
        let mut c = self.signature_cell("defence", defence.name(), defence.knob(), &dec, &test, k, test.n())?;
        c.votes = votes;
        c.clean_accuracy = self.served_accuracy(&self.target, defence);
        c.latency_ratio = self.latency_ratio(&self.target, defence);
        Ok(c)
    }

    /// The flip-rate baseline (Zhu et al. 2023, re-implemented) at each per-secret budget of
    /// the query-budget defence, on the same secrets: the published label-only alternative to
    /// the search at equal queries. Its magnitudes span the eps of the adversary's own images.
    fn flip_rate_block(&self) -> Result<Vec<Cell>> {
        let cfg = self.cfg;
        let (n, secrets) = (cfg.train_signatures, cfg.defence_secrets);
        let observed = self.gaussian()?.train.prefix(cfg.k, n).eps;
        let most = cfg.budgets.iter().copied().max().unwrap_or(0) as usize;
        let noise = Directions::generate(
            &DirectionConfig { strategy: Strategy::Gaussian, k: most.max(1), seed: cfg.seed ^ 0x0f11_ba5e },
            self.image(),
        )?;
        let lifted = Arc::new(LiftedDirections::new(self.target.as_ref(), &noise));
        let rates_of = |x: &[f32], plan: &FlipRatePlan| {
            flip_rates(&LocalOracle::new(self.target.clone(), x, Some(lifted.clone()))?, &noise, plan)
        };
        let mut out = Vec::new();
        for &budget in &cfg.budgets {
            let plan = FlipRatePlan::from_observed(&observed, cfg.flip_rate_magnitudes, budget)?;
            // the adversary's own images go through the same oracle it can simulate (it owns M)
            let own: Vec<Vec<f32>> = self.over_images(&self.data.train, "own images", n, |_, x| rates_of(x, &plan))?;
            let secret: Vec<Vec<f32>> = self.over_secrets(secrets, |_, x| rates_of(x, &plan))?;
            let m = plan.magnitudes.len();
            let dec = self.fit(&Input::flip_rates(&own.concat(), m)?)?;
            let test_x = Input::flip_rates(&secret.concat(), m)?;
            let queries = (plan.queries() * secrets as u64) as f64;
            out.push(self.cell("baseline", "flip-rate", budget as f64, &dec, &test_x, 0.0, queries, 0, n)?);
        }
        Ok(out)
    }

    /// The boundary-distance baseline (HopSkipJump's directed search, re-implemented in
    /// `signature::boundary`) at each per-secret budget of the query-budget defence, on the
    /// same secrets. One search per image serves every budget; it starts at a quarter of the
    /// median eps of the adversary's own images.
    fn boundary_block(&self) -> Result<Vec<Cell>> {
        let cfg = self.cfg;
        let (n, secrets, len) = (cfg.train_signatures, cfg.defence_secrets, self.px());
        let mut observed = self.gaussian()?.train.prefix(cfg.k, n).eps;
        observed.retain(|e| e.is_finite() && *e > 0.0);
        observed.sort_by(f32::total_cmp);
        let median = *observed
            .get(observed.len() / 2)
            .ok_or_else(|| Error::invalid("boundary baseline", "no finite eps among the training signatures"))?;
        let search =
            BoundaryConfig { grad_queries: cfg.boundary_grad_queries, ..BoundaryConfig::hop_skip_jump(median / 4.0) };
        let points_of = |x: &[f32], seed: u64| {
            let oracle = LocalOracle::new(self.target.clone(), x, None)?;
            boundary_search(len, &search, &cfg.budgets, seed, |p| oracle.changed(p))
        };
        // the adversary runs the same search on its own images through the model it owns
        let own: Vec<Vec<BoundaryPoint>> =
            self.over_images(&self.data.train, "own images", n, |i, x| points_of(x, cfg.seed ^ (i as u64) << 20))?;
        let secret: Vec<Vec<BoundaryPoint>> = self.over_images(&self.data.test, "secrets", secrets, |i, x| {
            points_of(x, cfg.seed ^ (i as u64) << 20 ^ 1 << 63)
        })?;
        let features = |rows: &[Vec<BoundaryPoint>], j: usize| {
            Input::boundary(&rows.iter().flat_map(|r| r[j].features()).collect::<Vec<_>>(), len)
        };
        let mut out = Vec::new();
        for (j, &budget) in cfg.budgets.iter().enumerate() {
            let dec = self.fit(&features(&own, j)?)?;
            let queries: u64 = secret.iter().map(|r| r[j].queries).sum();
            let not_found = secret.iter().filter(|r| !r[j].found).count() as f64 / secrets as f64;
            let test_x = features(&secret, j)?;
            out.push(self.cell(
                "baseline",
                "boundary-distance",
                budget as f64,
                &dec,
                &test_x,
                not_found,
                queries as f64,
                0,
                n,
            )?);
        }
        Ok(out)
    }

    /// apsig's search with predicted brackets (`signature::EpsPredictor`, fitted on the
    /// adversary's training signatures) at each per-secret budget of the query-budget defence.
    /// At each budget it takes the finest of `StudyConfig::predicted_tolerances` whose mean
    /// queries on the adversary's own images (the next images after its training signatures,
    /// through the model it owns) fit the budget, the coarsest where none does; the directions
    /// a budget does not reach get their prediction. Same secrets as the capped plain search;
    /// decoded by the reference decoder, or with `budget_decoders` by one trained on the
    /// adversary's own images measured by the same capped search.
    fn predicted_block(&self) -> Result<Vec<Cell>> {
        let cfg = self.cfg;
        let g = self.gaussian()?;
        let k = cfg.k;
        let own = g.train.prefix(k, cfg.train_signatures);
        let predictor = EpsPredictor::fit(k, &own.eps, cfg.predict_group)?;
        let dirs = g.dirs.prefix(k);
        let lifted = Arc::new(LiftedDirections::new(self.target.as_ref(), &dirs));
        let train = &self.data.train;
        // images the predictor was not fitted on where there are any
        let first = if train.n > cfg.train_signatures { cfg.train_signatures } else { 0 };
        let sample: Vec<usize> = (first..train.n.min(first + COST_SAMPLE)).collect();
        let mut ladder = Vec::new();
        for tol in cfg.predicted_tolerances() {
            let search = SearchConfig { rel_tol: tol, ..cfg.secret_search.clone() };
            let spent: Vec<u64> = sample
                .par_iter()
                .map(|&i| {
                    let oracle = LocalOracle::new(self.target.clone(), train.image(i), Some(lifted.clone()))?;
                    signature_via_oracle(&oracle, &dirs, Prior::Predicted(&predictor), &search)?;
                    Ok(oracle.queries())
                })
                .collect::<Result<_>>()?;
            ladder.push((search, spent.iter().sum::<u64>() as f64 / spent.len().max(1) as f64));
        }
        let mut out = Vec::new();
        for &cap in &cfg.budgets {
            let (search, _) = ladder
                .iter()
                .find(|(_, cost)| *cost <= cap as f64)
                .unwrap_or_else(|| ladder.last().expect("a tolerance"));
            let defence = Defence::QueryBudget { cap };
            let prior = Prior::Predicted(&predictor);
            let test = self.defended(&g.dirs, k, prior, search, defence, 1)?;
            let dec = if cfg.budget_decoders {
                // trained on eps measured as the secrets' are: the same capped search, on the
                // adversary's own images
                let n = cfg.train_signatures;
                let own = self.defended_on(train, "own images", n, &g.dirs, k, prior, search, defence, 1)?;
                Arc::new(self.fit_signature_decoder(&own, k, n)?)
            } else {
                self.reference()?
            };
            let mut c = self.signature_cell("baseline", "predicted-search", cap as f64, &dec, &test, k, test.n())?;
            c.rel_tol = Some(search.rel_tol as f64);
            out.push(c);
        }
        Ok(out)
    }

    // ---- signatures ---------------------------------------------------------------------

    fn gaussian(&self) -> Result<Arc<Measured>> {
        if let Some(g) = self.gaussian.get() {
            return Ok(g.clone());
        }
        let m = Arc::new(self.measure(Strategy::Gaussian, self.cfg.k_max(), "")?);
        Ok(self.gaussian.get_or_init(|| m).clone())
    }

    fn reference(&self) -> Result<Arc<Decoder>> {
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
        let stage = |count, method, search: &crate::signature::SearchConfig| SignatureStage {
            count,
            augment: 0,
            permute_channels: false,
            extract: ExtractConfig { method, search: search.clone() },
        };
        let (train, test) = (
            stage(self.cfg.train_signatures, Method::WhiteBox, &self.cfg.train_search),
            stage(secrets, Method::ChangeBit, &self.cfg.secret_search),
        );
        let name = format!("{tag}{}-k{k}", s.name());
        let sig_dir = self.dir.join("signatures");
        std::fs::create_dir_all(&sig_dir).map_err(|e| Error::io(&sig_dir, e))?;
        let files = |split: &str| SetFiles {
            set: sig_dir.join(format!("{name}-{split}.safetensors")),
            parts: sig_dir.join(format!("parts-{name}-{split}")),
        };
        let plan = MeasurePlan {
            directions: &DirectionConfig { strategy: s, k, seed: self.cfg.seed },
            context: DirectionContext {
                images: &self.data.train.images[..self.cfg.train_signatures * self.px()],
                labels: &self.data.train.labels[..self.cfg.train_signatures],
                model: Some(model.as_ref()),
            },
            directions_path: None,
            train: &train,
            test: &test,
            test_prior: true,
            predict_group: 0,
            median_checks: false,
            train_files: files("train"),
            test_files: files("test"),
        };
        measure(model.clone(), (&self.data).into(), &plan, self.progress)
    }

    /// Signatures of the first `defence_secrets` secrets through a defended oracle, along the
    /// first `k` of `all` directions.
    fn defended(
        &self,
        all: &Directions,
        k: usize,
        prior: Prior,
        search: &SearchConfig,
        defence: Defence,
        votes: usize,
    ) -> Result<SignatureSet> {
        let (split, n) = (&self.data.test, self.cfg.defence_secrets);
        self.defended_on(split, "secrets", n, all, k, prior, search, defence, votes)
    }

    /// `defended` on the first `n` images of `split` (the adversary can run the same search
    /// on its own images through the model it owns).
    #[allow(clippy::too_many_arguments)]
    fn defended_on(
        &self,
        split: &Split,
        what: &str,
        n: usize,
        all: &Directions,
        k: usize,
        prior: Prior,
        search: &SearchConfig,
        defence: Defence,
        votes: usize,
    ) -> Result<SignatureSet> {
        let dirs = &all.prefix(k);
        let lifted = Arc::new(LiftedDirections::new(self.target.as_ref(), dirs));
        let seed = self.cfg.seed;
        let rows = self.over_images(split, what, n, |i, x| {
            let oracle =
                LocalOracle::defended(self.target.clone(), x, Some(lifted.clone()), defence, seed ^ (i as u64) << 20)?;
            if votes > 1 {
                signature_via_oracle(&MajorityVote::new(&oracle, votes)?, dirs, prior, search)
            } else {
                signature_via_oracle(&oracle, dirs, prior, search)
            }
        })?;
        Ok(self.to_set(all, k, rows))
    }

    /// Runs `f` on the first `n` test images in parallel, in order.
    fn over_secrets<T: Send>(&self, n: usize, f: impl Fn(usize, &[f32]) -> Result<T> + Sync) -> Result<Vec<T>> {
        self.over_images(&self.data.test, "secrets", n, f)
    }

    /// Runs `f` on the first `n` images of `split` in parallel, in order, with progress.
    fn over_images<T: Send>(
        &self,
        split: &Split,
        what: &str,
        n: usize,
        f: impl Fn(usize, &[f32]) -> Result<T> + Sync,
    ) -> Result<Vec<T>> {
        self.progress.begin(what, n as u64);
        let out = (0..n)
            .into_par_iter()
            .map(|i| {
                let r = f(i, split.image(i));
                self.progress.advance(1);
                r
            })
            .collect::<Result<Vec<T>>>();
        self.progress.end();
        out
    }

    /// The signatures of secrets measured along the first `k` of `dirs` (tagged with the
    /// fingerprint of all of `dirs`, as the training sets sliced to `k` are).
    fn to_set(&self, dirs: &Directions, k: usize, rows: Vec<Vec<EpsOutcome>>) -> SignatureSet {
        let prov = BTreeMap::from([("directions".to_string(), dirs.fingerprint())]);
        SignatureSet::from_outcomes(k, (0..rows.len() as u32).collect(), &rows, prov)
    }

    // ---- decoders and evaluation --------------------------------------------------------

    /// The run's decoder (`Decoder::fit_input`, the mask per the config) on the first `n`
    /// training signatures along the first `k` directions.
    fn fit_signature_decoder(&self, train: &SignatureSet, k: usize, n: usize) -> Result<Decoder> {
        self.fit(&Input::signature(train, k, n, self.cfg.decoder.use_mask)?)
    }

    /// A decoder on an input of the first training images (one per row).
    fn fit(&self, input: &Input) -> Result<Decoder> {
        let images = &self.data.train.images[..input.rows * self.px()];
        let critic = Critic { net: &self.target, labels: &self.data.train.labels[..input.rows] };
        Ok(Decoder::fit_input(input, images, self.image(), &self.cfg.decoder, Some(critic), None, &crate::NoProgress)?
            .0)
    }

    #[allow(clippy::too_many_arguments)]
    fn signature_cell(
        &self,
        group: &str,
        variant: &str,
        knob: f64,
        dec: &Decoder,
        test: &SignatureSet,
        k: usize,
        secrets: usize,
    ) -> Result<Cell> {
        let x = Input::signature(test, k, secrets, self.cfg.decoder.use_mask)?;
        let spent = test.prefix(k, secrets);
        let (censored, queries) = (spent.censored_fraction(), spent.total_queries() as f64);
        let mut c = self.cell(group, variant, knob, dec, &x, censored, queries, k, self.cfg.train_signatures)?;
        c.secrets = secrets;
        Ok(c)
    }

    /// Decodes the secrets' `input` and scores the reconstructions against the secrets.
    #[allow(clippy::too_many_arguments)]
    fn cell(
        &self,
        group: &str,
        variant: &str,
        knob: f64,
        dec: &Decoder,
        input: &Input,
        censored_fraction: f64,
        total_queries: f64,
        k: usize,
        train_n: usize,
    ) -> Result<Cell> {
        let n = input.rows;
        let recons = dec.decode(input)?;
        let (originals, labels) = self.secrets(n);
        let (quality, per_secret) = scored(&recons, originals, labels, self.image(), &self.evaluator);
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
            quality,
            clean_accuracy: self.target_accuracy,
            latency_ratio: 1.0,
            per_secret: Cell::compared(group).then_some(per_secret),
            rel_tol: None,
        })
    }

    fn quality(&self, recons: &[f32], originals: &[f32], labels: &[u8]) -> Quality {
        quality(recons, originals, labels, self.image(), &self.evaluator)
    }

    fn secrets(&self, n: usize) -> (&[f32], &[u8]) {
        (&self.data.test.images[..n * self.px()], &self.data.test.labels[..n])
    }

    fn px(&self) -> usize {
        self.data.train.pixels()
    }

    fn image(&self) -> Shape {
        crate::pipeline::image_shape(&self.data.train)
    }

    // ---- the defender's side ------------------------------------------------------------

    /// Decisions the defended service would return for the test split (its users' view).
    fn served(&self, model: &Network, defence: Defence, n: usize) -> Vec<usize> {
        let c = model.num_classes();
        let mut rng = Rng::derive(self.cfg.seed, "served");
        let mut x = self.data.test.images[..n * self.px()].to_vec();
        defence.perturb_inputs(&mut x, &mut rng);
        let z = model.forward(&x, n);
        (0..n).map(|i| defence.served_class(&z[i * c..(i + 1) * c], &mut rng)).collect()
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

/// Own images on which the predicted search's queries at each tolerance are counted.
const COST_SAMPLE: usize = 50;

/// The data the target and evaluator are trained on: the first `limit` training images.
fn classifier_data(data: &Dataset, limit: usize) -> Dataset {
    let mut d = data.clone();
    if limit > 0 && limit < d.train.n {
        d.train = d.train.subset(&(0..limit).collect::<Vec<_>>());
    }
    d
}

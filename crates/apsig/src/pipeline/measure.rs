//! The measuring half of a run: directions, a pilot for the searches' starts, the adversary's
//! training signatures, the prior from them, and the secrets' signatures. `pipeline::run` and
//! the study both measure through `measure`.

use super::{image_shape, SignatureStage};
use crate::directions::{DirectionConfig, DirectionContext, Directions};
use crate::error::Result;
use crate::model::Classifier;
use crate::signature::{extract, OwnedPrior, Prior, SignatureSet};
use crate::Progress;
use apsig_data::{Dataset, Split};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

/// Where a signature set is written, and where its resumable parts live meanwhile.
pub struct SetFiles {
    /// The finished set.
    pub set: PathBuf,
    /// Its parts while it is measured (removed after).
    pub parts: PathBuf,
}

/// How to measure one direction set.
pub struct MeasurePlan<'a> {
    /// How to draw the directions.
    pub directions: &'a DirectionConfig,
    /// What data-dependent strategies may look at (the adversary's data and model).
    pub context: DirectionContext<'a>,
    /// Where to save the directions, if anywhere.
    pub directions_path: Option<PathBuf>,
    /// The adversary's training signatures (white-box) and the secrets' (change bit).
    pub train: &'a SignatureStage,
    /// See `train`.
    pub test: &'a SignatureStage,
    /// Start each search on a secret at the training signatures' median eps.
    pub test_prior: bool,
    /// With `test_prior`: measure the secrets' directions in groups of this many, each predicted
    /// from the ones before by a model of the training signatures (0: all at once).
    pub predict_group: usize,
    /// With `predict_group`: check the training medians the predictions jump past.
    pub median_checks: bool,
    /// Where the training set goes.
    pub train_files: SetFiles,
    /// Where the secrets' set goes.
    pub test_files: SetFiles,
}

/// A measured direction set: its directions and both signature sets, with the seconds each
/// set took (0 when reused from disk).
pub struct Measured {
    /// The directions.
    pub dirs: Directions,
    /// The adversary's training signatures.
    pub train: SignatureSet,
    /// The secrets' signatures.
    pub test: SignatureSet,
    /// Seconds spent measuring each set (0 when reused).
    pub seconds: [f64; 2],
}

/// The images a measurement reads: the adversary's own (`train`, with any affine copies) and
/// the secrets (`test`), of the data set `name`.
#[derive(Clone, Copy)]
pub struct Splits<'a> {
    /// The data set's name (recorded with each signature set).
    pub name: &'a str,
    /// The adversary's own images.
    pub train: &'a Split,
    /// The secrets.
    pub test: &'a Split,
}

impl<'a> From<&'a Dataset> for Splits<'a> {
    fn from(d: &'a Dataset) -> Self {
        Splits { name: &d.name, train: &d.train, test: &d.test }
    }
}

/// Runs the measuring sequence on `model`: directions -> pilot -> training signatures ->
/// prior -> secrets' signatures. Each signature set is reused when a matching one is on disk.
pub fn measure(
    model: Arc<dyn Classifier>,
    data: Splits<'_>,
    plan: &MeasurePlan,
    progress: &dyn Progress,
) -> Result<Measured> {
    let dirs = Directions::generate_with(plan.directions, image_shape(data.train), Some(&plan.context))?;
    if let Some(path) = &plan.directions_path {
        dirs.save(path)?;
    }
    progress.message("training signatures (adversary's own data)");
    let pilot = pilot_starts(model.clone(), &dirs, data.train, plan.train)?;
    let f = &plan.train_files;
    let (train, train_secs) = signature_stage(
        model.clone(),
        &dirs,
        data,
        "train",
        plan.train,
        Some(Prior::Starts(&pilot)),
        &f.set,
        &f.parts,
        progress,
    )?;
    if plan.predict_group > 0 && !plan.test_prior {
        return Err(crate::error::Error::invalid("run config", "predict_group needs test_prior = true"));
    }
    let prior = plan.test_prior.then(|| train.search_prior(plan.predict_group, plan.median_checks)).transpose()?;
    let prior = prior.as_ref().map(OwnedPrior::as_prior);
    progress.message("test signatures (secrets, change bit only)");
    let f = &plan.test_files;
    let (test, test_secs) = signature_stage(model, &dirs, data, "test", plan.test, prior, &f.set, &f.parts, progress)?;
    Ok(Measured { dirs, train, test, seconds: [train_secs, test_secs] })
}

/// Measures (or reuses) signatures for the first `stage.count` images of a split (with
/// `stage.augment`, `data` already holds the copies and the stage only records them). A set on
/// disk is reused only when it was measured on a model with the same identity (weights or
/// file contents), so a rerun with another model file measures again.
#[allow(clippy::too_many_arguments)]
pub fn signature_stage(
    model: Arc<dyn Classifier>,
    dirs: &Directions,
    data: Splits<'_>,
    split_name: &str,
    stage: &SignatureStage,
    prior: Option<Prior<'_>>,
    path: &Path,
    parts_dir: &Path,
    progress: &dyn Progress,
) -> Result<(SignatureSet, f64)> {
    let split = if split_name == "train" { data.train } else { data.test };
    let count = if stage.count == 0 { split.n } else { stage.count.min(split.n) };
    let mut prov = BTreeMap::new();
    prov.insert("dataset".to_string(), data.name.to_string());
    prov.insert("split".to_string(), split_name.to_string());
    let identity = model.identity();
    prov.insert("model".to_string(), identity.clone().unwrap_or_else(|| "unidentified".to_string()));
    // copies already in `data` (pipeline::augment): a set of as many plain images is another set
    let copies = match (stage.augment, stage.permute_channels) {
        (0, _) => String::new(),
        (n, false) => format!("{n} affine"),
        (n, true) => format!("{n} affine, channels permuted"),
    };
    if !copies.is_empty() {
        prov.insert("copies".to_string(), copies.clone());
    }
    let default_starts = vec![stage.extract.search.start; dirs.k()];
    let prior = prior.unwrap_or(Prior::Starts(&default_starts));
    if let (Ok(s), Some(identity)) = (SignatureSet::load(path), identity) {
        let same = s.prov("dataset") == data.name
            && s.prov("starts") == prior.fingerprint()
            && s.prov("model") == identity
            && s.prov("split") == split_name
            && s.prov("copies") == copies
            && s.prov("directions") == dirs.fingerprint()
            && s.prov("extract") == serde_json::to_string(&stage.extract).expect("serialises")
            && s.n() == count;
        if same {
            tracing::info!("reusing {}", path.display());
            return Ok((s, 0.0));
        }
    }
    let t0 = Instant::now();
    let set =
        extract(model, dirs, split, &prov, 0..count, None, Some(prior), &stage.extract, Some(parts_dir), progress)?;
    let secs = t0.elapsed().as_secs_f64();
    set.save(path)?;
    let _ = std::fs::remove_dir_all(parts_dir);
    Ok((set, secs))
}

/// Per-direction starting points for the adversary's own data: the median eps of a small
/// pilot (the first 256 images), so the bracket starts next to where the flips are.
pub fn pilot_starts(
    model: Arc<dyn Classifier>,
    dirs: &Directions,
    split: &Split,
    stage: &SignatureStage,
) -> Result<Vec<f32>> {
    let n = 256.min(split.n);
    let pilot =
        extract(model, dirs, split, &BTreeMap::new(), 0..n, None, None, &stage.extract, None, &crate::NoProgress)?;
    Ok(pilot.median_eps())
}

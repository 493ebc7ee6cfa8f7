//! The whole attack as one run: every stage writes its artefact into the run directory and
//! is skipped when a valid artefact made with the same configuration is already there, so an
//! interrupted run resumes where it stopped.

pub mod augment;
pub mod compare;
mod config;
mod measure;
mod metrics;
pub mod report;

pub use config::{RunConfig, SignatureStage};
pub use measure::{measure, pilot_starts, signature_stage, MeasurePlan, Measured, SetFiles, Splits};
pub use metrics::{Metrics, ModelRecord, Models, SignatureStats, StageTime, Undecided};

use crate::decoder::{Critic, Decoder, DecoderConfig, Palette};
use crate::directions::DirectionContext;
use crate::error::{Error, Result};
use crate::eval::{colour, quality, Baselines};
use crate::io::{fingerprint_f32, TensorFile};
use crate::model::{
    accuracy, load_network, save_network, train, Arch, Classifier, SuppliedModel, Targets, TrainConfig, TrainReport,
};
use crate::nn::{Network, Shape};
use crate::signature::SignatureSet;
use crate::Progress;
use apsig_data::{DataOptions, Dataset, Split};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

/// Artefact names inside a run directory.
pub mod files {
    /// The resolved config.
    pub const CONFIG: &str = "config.toml";
    /// The target M.
    pub const TARGET: &str = "target.safetensors";
    /// The independent evaluator.
    pub const EVALUATOR: &str = "evaluator.safetensors";
    /// The adversary's own classifier that guides the decoder when the target is the user's.
    pub const CRITIC: &str = "critic.safetensors";
    /// The probe directions.
    pub const DIRECTIONS: &str = "directions.safetensors";
    /// The adversary's training signatures.
    pub const SIG_TRAIN: &str = "signatures-train.safetensors";
    /// The secrets' signatures.
    pub const SIG_TEST: &str = "signatures-test.safetensors";
    /// The decoder (its standardisation beside it).
    pub const DECODER: &str = "decoder.safetensors";
    /// The reconstructions of the secrets.
    pub const RECONS: &str = "reconstructions-test.safetensors";
    /// Every number of the run.
    pub const METRICS: &str = "metrics.json";
    /// The readable report.
    pub const REPORT: &str = "report.md";
}

/// Image shape of a split, as the models see it (channels-last).
pub fn image_shape(split: &Split) -> Shape {
    Shape::new(split.rows, split.cols, split.channels)
}

/// Trains (or reuses) a classifier of `arch` on the training split; returns it and its
/// test accuracy. The saved file carries data set, seed, config and accuracy.
pub fn classifier_stage(
    arch: Arch,
    data: &Dataset,
    cfg: &TrainConfig,
    path: &Path,
    ckpt_dir: &Path,
    progress: &dyn Progress,
) -> Result<(Network, f32, f64)> {
    // the training images count too: a run with `train_limit` must not reuse a full model
    let stamp = format!("{}; {} training images", serde_json::to_string(cfg).expect("serialises"), data.train.n);
    if let Ok(m) = load_network(path, Some(arch)) {
        if m.metadata.get("train_config") == Some(&stamp) && m.metadata.get("dataset") == Some(&data.name) {
            let acc = m.metadata.get("test_accuracy").and_then(|a| a.parse().ok()).unwrap_or(f32::NAN);
            tracing::info!("reusing {}", path.display());
            return Ok((m.net, acc, 0.0));
        }
    }
    let shape = image_shape(&data.train);
    let classes = data.train.num_classes().max(data.test.num_classes());
    let mut net =
        Network::new(shape, arch.layers(shape, classes, 0), cfg.seed).map_err(|e| Error::invalid(arch.name(), e))?;
    // named after the model's file, not its architecture: the target and a critic are both
    // TargetNet-S, and a killed run of one must not hand its checkpoint to the other
    let stem = path.file_stem().map_or_else(|| arch.name().into(), |s| s.to_string_lossy());
    let ckpt = ckpt_dir.join(format!("{stem}.ckpt.safetensors"));
    let t0 = Instant::now();
    train(&mut net, &data.train.images, Targets::Labels(&data.train.labels), cfg, Some(&ckpt), progress)?;
    let secs = t0.elapsed().as_secs_f64();
    let acc = accuracy(&net, &data.test.images, &data.test.labels);
    let mut meta = BTreeMap::new();
    meta.insert("dataset".into(), data.name.clone());
    meta.insert("seed".into(), cfg.seed.to_string());
    meta.insert("train_config".into(), stamp);
    meta.insert("test_accuracy".into(), acc.to_string());
    save_network(path, arch, &net, &meta)?;
    let _ = std::fs::remove_file(&ckpt);
    Ok((net, acc, secs))
}

/// A model the user supplied for a role: its test accuracy on this data set, and the seconds
/// that took. A model file apsig trained for the role in an earlier run into the same
/// directory (`own_file`) is removed, so the directory holds only what this run used.
fn supplied_stage(m: &SuppliedModel, data: &Dataset, own_file: &Path) -> Result<(f32, f64)> {
    match std::fs::remove_file(own_file) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(Error::io(own_file, e)),
        _ => {}
    }
    let t0 = Instant::now();
    let acc = accuracy(m.classifier.as_ref(), &data.test.images, &data.test.labels);
    Ok((acc, t0.elapsed().as_secs_f64()))
}

/// Trains (or reuses) the decoder on the training signatures and their images. The file is
/// stamped with the decoder config and fingerprints of the signatures and images (and of the
/// class guide's critic, where one guides); a file with
/// the same stamp is reused, so rerunning a finished run trains nothing (reported as all
/// epochs resumed and 0 s). The palette decision is left out of the stamp: it does not touch
/// the network, so turning it on or off relearns or drops the palette and keeps the network.
#[allow(clippy::too_many_arguments)]
pub fn decoder_stage(
    cfg: &DecoderConfig,
    dataset: &str,
    sigs: &SignatureSet,
    images: &[f32],
    critic: Option<Critic>,
    image: Shape,
    path: &Path,
    ckpt_dir: &Path,
    progress: &dyn Progress,
) -> Result<(Decoder, TrainReport, f64)> {
    let mut meta = BTreeMap::new();
    meta.insert("dataset".to_string(), dataset.to_string());
    let network_cfg = DecoderConfig { palette: false, ..cfg.clone() };
    meta.insert("decoder_config".to_string(), serde_json::to_string(&network_cfg).expect("serialises"));
    let inputs = format!(
        "{} signatures: eps {}, censored {}; images {}",
        sigs.n(),
        fingerprint_f32(&sigs.eps),
        fingerprint_f32(&sigs.censored.iter().map(|&c| c as f32).collect::<Vec<_>>()),
        fingerprint_f32(images)
    );
    meta.insert("training_inputs".to_string(), inputs);
    // the critic's weights, where one guides: another critic trains another decoder
    if let (true, Some(c)) = (cfg.class_weight > 0.0, &critic) {
        meta.insert("class_guide_critic".to_string(), c.net.identity().unwrap_or_default());
    }
    if let Ok(f) = TensorFile::read(path) {
        let same = meta.iter().all(|(k, v)| f.metadata.get(k) == Some(v));
        let loss = f.metadata.get("final_loss").and_then(|l| l.parse().ok());
        let decoder = Decoder::load(path).ok().filter(|d| d.image_shape() == image);
        if let (true, Some(final_loss), Some(mut decoder)) = (same, loss, decoder) {
            tracing::info!("reusing {}", path.display());
            progress.message(&format!("reusing {} (same config and training inputs)", path.display()));
            let palette = cfg.palette.then(|| Palette::learn(images, image)).transpose()?;
            if decoder.palette != palette {
                decoder.palette = palette;
                decoder.save(path, &f.metadata)?;
            }
            let epochs = cfg.train.epochs;
            let report =
                TrainReport { epochs, resumed_from_epoch: epochs, final_loss, seconds: 0.0, samples_per_sec: 0.0 };
            return Ok((decoder, report, 0.0));
        }
    }
    let ckpt = ckpt_dir.join("decoder.ckpt.safetensors");
    let t0 = Instant::now();
    let (decoder, report) = Decoder::fit(sigs, images, image, cfg, critic, Some(&ckpt), progress)?;
    meta.insert("final_loss".to_string(), report.final_loss.to_string());
    decoder.save(path, &meta)?;
    let _ = std::fs::remove_file(&ckpt);
    Ok((decoder, report, t0.elapsed().as_secs_f64()))
}

/// Writes reconstructions (`[n, image.len()]`, channels-last) with the test-split indices of
/// the images they reconstruct: the one writer of reconstruction files, for `run` and
/// `apsig reconstruct`. Greyscale ones keep the flat `[n, H*W]` layout of earlier
/// versions (so a greyscale run's file is what it always was); colour ones are `[n, H, W, C]`.
pub fn write_reconstructions(path: &Path, recons: &[f32], indices: &[u32], image: Shape) -> Result<()> {
    let n = indices.len();
    let shape = if image.c == 1 { vec![n, image.len()] } else { vec![n, image.h, image.w, image.c] };
    crate::io::write_tensors(
        path,
        &[
            crate::io::TensorOut::F32("reconstructions", shape, recons),
            crate::io::TensorOut::U32("indices", vec![n], indices),
        ],
        &BTreeMap::new(),
    )
}

/// The images (in signature order) that a signature set covers.
pub fn images_of(split: &Split, sigs: &SignatureSet) -> Result<Vec<f32>> {
    let mut out = Vec::with_capacity(sigs.n() * split.pixels());
    for &i in &sigs.indices {
        if i as usize >= split.n {
            return Err(Error::invalid("signatures", format!("index {i} outside a split of {} images", split.n)));
        }
        out.extend_from_slice(split.image(i as usize));
    }
    Ok(out)
}

/// The labels (in signature order) of the images a signature set covers.
pub fn labels_of(split: &Split, sigs: &SignatureSet) -> Vec<u8> {
    sigs.indices.iter().map(|&i| split.labels[i as usize]).collect()
}

/// The classifiers the user brings for a run; a role left `None` is trained by apsig.
#[derive(Clone, Debug, Default)]
pub struct UserModels {
    /// The target M (the model attacked).
    pub target: Option<SuppliedModel>,
    /// The independent evaluator of class recovery.
    pub evaluator: Option<SuppliedModel>,
}

/// Runs every stage into `dir`, writing `metrics.json`, figures and `report.md`.
pub fn run(cfg: &RunConfig, dir: &Path, data_opts: &DataOptions, progress: &dyn Progress) -> Result<Metrics> {
    run_with(cfg, &UserModels::default(), dir, data_opts, progress)
}

/// [`run`] with the user's own target and/or evaluator (see [`run_loaded_with`]).
pub fn run_with(
    cfg: &RunConfig,
    models: &UserModels,
    dir: &Path,
    data_opts: &DataOptions,
    progress: &dyn Progress,
) -> Result<Metrics> {
    let started = Instant::now();
    let data = apsig_data::load(&cfg.dataset, data_opts)?;
    run_loaded_with(cfg, models, data, started, dir, progress)
}

/// `run` on a data set already in memory, of any image shape (`cfg.dataset` is not read;
/// the data set's own name goes into the artefacts). `started` is when loading began: the
/// run's wall time and its "load data" stage count from it.
pub fn run_loaded(
    cfg: &RunConfig,
    data: Dataset,
    started: Instant,
    dir: &Path,
    progress: &dyn Progress,
) -> Result<Metrics> {
    run_loaded_with(cfg, &UserModels::default(), data, started, dir, progress)
}

/// [`run_loaded`] with the user's own target and/or evaluator. Each is checked against the
/// data (image shape, number of classes) before anything is written; the signature stages
/// are reused on a rerun only when the target is the same (same file contents).
pub fn run_loaded_with(
    cfg: &RunConfig,
    models: &UserModels,
    mut data: Dataset,
    started: Instant,
    dir: &Path,
    progress: &dyn Progress,
) -> Result<Metrics> {
    let t_all = started;
    if image_shape(&data.train) != image_shape(&data.test) {
        let (a, b) = (image_shape(&data.train), image_shape(&data.test));
        return Err(Error::invalid(
            &data.name,
            format!("training images are {}x{}x{}, test images {}x{}x{}", a.h, a.w, a.c, b.h, b.w, b.c),
        ));
    }
    let classes = data.train.num_classes().max(data.test.num_classes());
    for (role, m) in [("target model", &models.target), ("evaluator", &models.evaluator)] {
        if let Some(m) = m {
            m.check_fits(role, image_shape(&data.train), classes)?;
        }
    }
    if let (Some(m), true) = (&models.target, cfg.directions.strategy.needs_model()) {
        return Err(Error::bad_file(
            &m.file,
            format!(
                "direction strategy `{}` differentiates apsig's own networks only; choose another for a user-supplied target",
                cfg.directions.strategy.name()
            ),
        ));
    }
    cfg.validate()?;
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    crate::io::atomic_write(&dir.join(files::CONFIG), cfg.to_toml().as_bytes())?;
    let ckpt = dir.join("checkpoints");
    let mut times = Vec::new();
    let mut timed = |name: &str, secs: f64| times.push(StageTime { stage: name.into(), seconds: secs });

    if cfg.train_limit > 0 && cfg.train_limit < data.train.n {
        data.train = data.train.subset(&(0..cfg.train_limit).collect::<Vec<_>>());
    }
    timed("load data", started.elapsed().as_secs_f64());

    let what =
        if models.target.is_some() { "testing the user's target model M" } else { "training the target model M" };
    progress.message(what);
    let (target, own_target, target_acc, target_record) = match &models.target {
        Some(m) => {
            let (acc, s) = supplied_stage(m, &data, &dir.join(files::TARGET))?;
            timed("test target", s);
            (m.classifier.clone(), None, acc, ModelRecord::supplied(m))
        }
        None => {
            let path = dir.join(files::TARGET);
            let (net, acc, s) = classifier_stage(Arch::TargetNetS, &data, &cfg.target, &path, &ckpt, progress)?;
            timed("train target", s);
            let net = Arc::new(net);
            (net.clone() as Arc<dyn Classifier>, Some(net), acc, ModelRecord::trained(Arch::TargetNetS, &path)?)
        }
    };
    progress.message(if models.evaluator.is_some() {
        "testing the user's evaluator"
    } else {
        "training the independent evaluator"
    });
    let (evaluator, eval_acc, eval_record) = match &models.evaluator {
        Some(m) => {
            let (acc, s) = supplied_stage(m, &data, &dir.join(files::EVALUATOR))?;
            timed("test evaluator", s);
            (m.classifier.clone(), acc, ModelRecord::supplied(m))
        }
        None => {
            let path = dir.join(files::EVALUATOR);
            let (net, acc, s) = classifier_stage(Arch::EvalNet, &data, &cfg.evaluator, &path, &ckpt, progress)?;
            timed("train evaluator", s);
            (Arc::new(net) as Arc<dyn Classifier>, acc, ModelRecord::trained(Arch::EvalNet, &path)?)
        }
    };

    // the class guide's critic: the adversary owns M, so M when apsig trained it; with the
    // user's target (no gradients through a foreign runtime) a TargetNet-S that the adversary
    // trains on its data, the training split, as apsig trains M
    let mut critic_record = None;
    let own_critic = match (&own_target, cfg.decoder.class_weight > 0.0) {
        (None, true) => {
            progress.message("training the adversary's critic for the class guide");
            let critic_cfg = TrainConfig { seed: cfg.target.seed.wrapping_add(3000), ..cfg.target.clone() };
            let path = dir.join(files::CRITIC);
            let (net, acc, s) = classifier_stage(Arch::TargetNetS, &data, &critic_cfg, &path, &ckpt, progress)?;
            timed("train critic", s);
            critic_record = Some((ModelRecord::trained(Arch::TargetNetS, &path)?, acc));
            Some(Arc::new(net))
        }
        _ => {
            // a critic an earlier run left here guided nothing in this one
            let path = dir.join(files::CRITIC);
            match std::fs::remove_file(&path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(Error::io(&path, e)),
                _ => {}
            }
            own_target.clone().filter(|_| cfg.decoder.class_weight > 0.0)
        }
    };

    // the adversary's training pairs: its first `count` images and, when asked, affine copies
    let augmented = (cfg.train_signatures.augment > 0).then(|| {
        let n = if cfg.train_signatures.count == 0 { data.train.n } else { cfg.train_signatures.count };
        let copies = cfg.train_signatures.augment;
        let permute = cfg.train_signatures.permute_channels;
        let train = augment::with_affine_copies(&data.train, n, copies, permute, cfg.directions.seed);
        // every image of the augmented split; the stage still names its copies (provenance)
        (train, SignatureStage { count: 0, ..cfg.train_signatures.clone() })
    });
    let (own_images, train_stage) = match &augmented {
        Some((split, stage)) => (split, stage),
        None => (&data.train, &cfg.train_signatures),
    };
    let sig_data = Splits { name: &data.name, train: own_images, test: &data.test };
    let plan = MeasurePlan {
        directions: &cfg.directions,
        context: DirectionContext {
            images: &data.train.images,
            labels: &data.train.labels,
            model: own_target.as_deref(),
        },
        directions_path: Some(dir.join(files::DIRECTIONS)),
        train: train_stage,
        test: &cfg.test_signatures,
        test_prior: cfg.test_prior,
        predict_group: cfg.predict_group,
        median_checks: cfg.median_checks,
        train_files: SetFiles { set: dir.join(files::SIG_TRAIN), parts: dir.join("parts-train") },
        test_files: SetFiles { set: dir.join(files::SIG_TEST), parts: dir.join("parts-test") },
    };
    let Measured { dirs, train: train_sigs, test: test_sigs, seconds } =
        measure(target.clone(), sig_data, &plan, progress)?;
    timed("train signatures", seconds[0]);
    timed("test signatures", seconds[1]);

    progress.message("training the decoder");
    let train_images = images_of(own_images, &train_sigs)?;
    let train_labels = labels_of(own_images, &train_sigs);
    drop(augmented);
    let critic = own_critic.as_deref().map(|net| Critic { net, labels: &train_labels });
    let (decoder, dec_report, s) = decoder_stage(
        &cfg.decoder,
        &data.name,
        &train_sigs,
        &train_images,
        critic,
        image_shape(&data.train),
        &dir.join(files::DECODER),
        &ckpt,
        progress,
    )?;
    timed("train decoder", s);

    progress.message("evaluating");
    let t0 = Instant::now();
    // the network runs once; with a palette, its own output is also scored (`undecided`)
    let mean = decoder.reconstruct_mean(&test_sigs)?;
    let (recons, mean) = match decoder.decided(&mean)? {
        Some(decided) => (decided, Some(mean)),
        None => (mean, None),
    };
    write_reconstructions(&dir.join(files::RECONS), &recons, &test_sigs.indices, image_shape(&data.test))?;
    let originals = images_of(&data.test, &test_sigs)?;
    let labels = labels_of(&data.test, &test_sigs);
    let base = Baselines::from_train(&data.train);
    let image = image_shape(&data.test);
    let q_dec = quality(&recons, &originals, &labels, image, evaluator.as_ref());
    let q_global = quality(&base.global_for(labels.len()), &originals, &labels, image, evaluator.as_ref());
    let q_class = quality(&base.class_for(&labels), &originals, &labels, image, evaluator.as_ref());
    let mean_colours = (image.c > 1).then(|| colour::mean_colours(&data.train.images, image)).flatten();
    let colour_of = |r: &[f32]| mean_colours.as_ref().map(|mean| colour::colour_fidelity(r, &originals, image, mean));
    let colour = colour_of(&recons);
    // what a palette decision changed: the network's own output, scored the same way
    let undecided = mean.map(|mean| Undecided {
        decoder: quality(&mean, &originals, &labels, image, evaluator.as_ref()),
        colour: colour_of(&mean),
    });
    let m_agree = {
        let c = target.num_classes();
        let l = target.batch_logits(&recons, labels.len());
        let lo = target.batch_logits(&originals, labels.len());
        (0..labels.len())
            .filter(|&i| crate::argmax(&l[i * c..(i + 1) * c]) == crate::argmax(&lo[i * c..(i + 1) * c]))
            .count() as f64
            / labels.len().max(1) as f64
    };
    timed("evaluate", t0.elapsed().as_secs_f64());
    let _ = std::fs::remove_dir(&ckpt);

    let (critic, critic_test_accuracy) = critic_record.map_or((None, None), |(r, acc)| (Some(r), Some(acc)));
    let metrics = Metrics {
        dataset: data.name.clone(),
        models: Models { target: target_record, evaluator: eval_record, critic },
        critic_test_accuracy,
        target_test_accuracy: target_acc,
        evaluator_test_accuracy: eval_acc,
        k: dirs.k(),
        train_signatures: SignatureStats::of(&train_sigs),
        test_signatures: SignatureStats::of(&test_sigs),
        decoder_train: dec_report,
        decoder: q_dec,
        global_mean_baseline: q_global,
        class_mean_baseline: q_class,
        target_agreement: m_agree,
        colour,
        undecided,
        stage_seconds: times,
        total_seconds: t_all.elapsed().as_secs_f64(),
        peak_rss_mib: crate::bench::peak_rss_mib(),
        machine: format!("{}, {} threads", crate::bench::cpu_name(), rayon::current_num_threads()),
    };
    crate::io::atomic_write(
        &dir.join(files::METRICS),
        serde_json::to_string_pretty(&metrics).expect("serialises").as_bytes(),
    )?;
    report::write_run_report(dir, cfg, &metrics, &data, target.as_ref(), &dirs, &test_sigs, &recons)?;
    Ok(metrics)
}

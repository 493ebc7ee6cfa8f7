//! One training loop for every model here (classifiers with cross-entropy, the decoder with
//! L2 or L1), with per-epoch atomic checkpoints so a killed run resumes exactly where it stopped.

use crate::error::{Error, Result};
use crate::io::{write_tensors, TensorFile, TensorOut};
use crate::nn::{softmax_cross_entropy, Adam, Network, PixelLoss, TrainCache};
use crate::rng::Rng;
use crate::Progress;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

/// How a network is trained (Adam, cosine-decayed rate, mini-batches).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    /// Passes over the training data.
    pub epochs: usize,
    /// Mini-batch size.
    pub batch: usize,
    /// Peak learning rate of Adam; decays along a cosine to `lr * final_lr_frac`.
    pub lr: f32,
    /// Learning rate at the end, as a fraction of `lr`.
    pub final_lr_frac: f32,
    /// Seed of initialisation and shuffling.
    pub seed: u64,
    /// Standard deviation of Gaussian noise added to every training input (0 = none): the
    /// smoothing defence, a target trained to be stable under perturbation.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub input_noise: f32,
    /// Decoupled weight decay (AdamW) on the weights of dense and convolution layers; 0 (the
    /// default, left out of configs) for plain Adam.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub weight_decay: f32,
}

fn is_zero(v: &f32) -> bool {
    *v == 0.0
}

impl TrainConfig {
    /// A config with the defaults for the rest.
    pub fn new(epochs: usize, batch: usize, lr: f32, seed: u64) -> Self {
        TrainConfig { epochs, batch, lr, final_lr_frac: 0.02, seed, input_noise: 0.0, weight_decay: 0.0 }
    }
}

/// What the network is trained to output.
#[derive(Clone, Copy)]
pub enum Targets<'a> {
    /// Class labels (softmax cross-entropy).
    Labels(&'a [u8]),
    /// Images (sigmoid outputs) and the per-pixel loss.
    Images(&'a [f32], PixelLoss),
    /// Images and the per-pixel loss, and a frozen classifier's cross-entropy on each output
    /// against its label (see [`ClassGuide`]).
    GuidedImages(&'a [f32], PixelLoss, ClassGuide<'a>),
}

/// A frozen classifier whose softmax cross-entropy on the decoder's output, against the class
/// of the adversary's own image, is added to the per-pixel loss with `weight`. L2 alone is satisfied
/// by a blur that averages what the features leave uncertain (colours, above all), and a blur
/// can lose the class that the features do hold; the guide asks for an image that a
/// classifier reads as that class. The classifier is only read: its weights never change (a
/// batch-norm layer in it would normalise with the batch's statistics, as in training).
#[derive(Clone, Copy)]
pub struct ClassGuide<'a> {
    /// The classifier (the adversary's own model).
    pub critic: &'a Network,
    /// Class of each training target, in input order.
    pub labels: &'a [u8],
    /// Weight of the cross-entropy against the per-pixel mean squared error.
    pub weight: f32,
    /// Standard deviation of Gaussian noise added to each output before the classifier reads
    /// it: the guide then follows a smoothed classifier, whose gradient carries over to other
    /// classifiers (the independent evaluator) better than one model's own.
    pub noise: f32,
}

/// What a training run did.
#[derive(Clone, Debug, Serialize)]
pub struct TrainReport {
    /// Epochs trained in total.
    pub epochs: usize,
    /// Epoch a checkpoint resumed from (0 = fresh).
    pub resumed_from_epoch: usize,
    /// Mean loss of the last epoch.
    pub final_loss: f32,
    /// Wall time of this run.
    pub seconds: f64,
    /// Training throughput.
    pub samples_per_sec: f64,
}

/// Trains `net` in place. With `checkpoint`, state is saved after every epoch and, if the
/// file already exists (a killed run), training resumes from it with identical results.
pub fn train(
    net: &mut Network,
    inputs: &[f32],
    targets: Targets<'_>,
    cfg: &TrainConfig,
    checkpoint: Option<&Path>,
    progress: &dyn Progress,
) -> Result<TrainReport> {
    let in_len = net.in_len();
    let n = inputs.len() / in_len;
    if n == 0 || cfg.batch == 0 {
        return Err(Error::invalid("training set", "no samples or zero batch size"));
    }
    match targets {
        Targets::Labels(l) if l.len() != n => {
            return Err(Error::invalid("labels", format!("{} labels for {n} inputs", l.len())))
        }
        Targets::Images(t, _) | Targets::GuidedImages(t, _, _) if t.len() != n * net.out_len() => {
            return Err(Error::invalid("targets", "length does not match the inputs"))
        }
        Targets::GuidedImages(_, _, g) if g.labels.len() != n || g.critic.in_len() != net.out_len() => {
            return Err(Error::invalid(
                "class guide",
                format!(
                    "{} labels and a classifier of {} inputs for {n} targets of {} values",
                    g.labels.len(),
                    g.critic.in_len(),
                    net.out_len()
                ),
            ))
        }
        Targets::GuidedImages(_, _, g) if g.labels.iter().any(|&y| y as usize >= g.critic.out_len()) => {
            return Err(Error::invalid("class guide", "a label is outside the classifier's classes"))
        }
        _ => {}
    }
    // a copy: `forward_train` takes the network mutably (a batch-norm layer's running statistics
    // would move with every guided batch), and the caller's classifier must not change
    let mut critic = match &targets {
        Targets::GuidedImages(_, _, g) => Some((g.critic.clone(), TrainCache::default(), Vec::new())),
        _ => None,
    };
    let steps_per_epoch = n.div_ceil(cfg.batch);
    let total_steps = (steps_per_epoch * cfg.epochs).max(1);
    let mut adam = Adam::new(cfg.lr).with_weight_decay(cfg.weight_decay, net.weight_mask());
    let mut start_epoch = 0;
    // without the decay, so checkpoints of runs made before it existed still resume
    let plain = TrainConfig { weight_decay: 0.0, ..cfg.clone() };
    let mut fingerprint = format!("{:?}|{:?}|{n}", plain, net.specs).replace(", weight_decay: 0.0", "");
    if cfg.weight_decay != 0.0 {
        fingerprint.push_str(&format!("|weight decay {}", cfg.weight_decay));
    }
    if let Targets::Images(_, loss) | Targets::GuidedImages(_, loss, _) = &targets {
        // L2 adds nothing, so checkpoints of runs made before the choice existed still resume
        if !loss.is_l2() {
            fingerprint.push_str(&format!("|pixel loss {loss:?}"));
        }
    }
    if let Targets::GuidedImages(_, _, g) = &targets {
        let critic = crate::model::Classifier::identity(g.critic).unwrap_or_default();
        fingerprint.push_str(&format!("|class guide {} noise {} critic {critic}", g.weight, g.noise));
    }
    if let Some(ck) = checkpoint.filter(|p| p.exists()) {
        start_epoch = restore(ck, net, &mut adam, &fingerprint)?;
        tracing::info!("resuming training from {} after epoch {start_epoch}", ck.display());
    }
    let t0 = Instant::now();
    let mut last_loss = f32::NAN;
    let out_len = net.out_len();
    progress.begin("train", (total_steps - start_epoch * steps_per_epoch) as u64);
    // one set of step buffers for the whole run (see `TrainCache`)
    let mut cache = TrainCache::default();
    let (mut x, mut want, mut grad) = (Vec::new(), Vec::new(), Vec::new());
    for epoch in start_epoch..cfg.epochs {
        let mut order: Vec<usize> = (0..n).collect();
        Rng::derive(cfg.seed, &format!("shuffle-{epoch}")).shuffle(&mut order);
        let mut epoch_loss = 0.0f64;
        for (s, idx) in order.chunks(cfg.batch).enumerate() {
            let step = epoch * steps_per_epoch + s;
            let t = step as f32 / total_steps as f32;
            adam.lr = cfg.lr
                * (cfg.final_lr_frac + (1.0 - cfg.final_lr_frac) * 0.5 * (1.0 + (std::f32::consts::PI * t).cos()));
            let b = idx.len();
            x.clear();
            for &i in idx {
                x.extend_from_slice(&inputs[i * in_len..(i + 1) * in_len]);
            }
            if cfg.input_noise > 0.0 {
                let mut rng = Rng::derive(cfg.seed, &format!("input-noise-{epoch}-{s}"));
                x.iter_mut().for_each(|v| *v += cfg.input_noise * rng.normal());
            }
            net.forward_train(&x, b, &mut cache);
            grad.clear();
            grad.resize(b * out_len, 0.0);
            let loss = match targets {
                Targets::Labels(l) => {
                    let y: Vec<u8> = idx.iter().map(|&i| l[i]).collect();
                    softmax_cross_entropy(cache.output(), &y, out_len, &mut grad).0
                }
                Targets::Images(t, loss) | Targets::GuidedImages(t, loss, _) => {
                    want.clear();
                    for &i in idx {
                        want.extend_from_slice(&t[i * out_len..(i + 1) * out_len]);
                    }
                    loss.apply(cache.output(), &want, &mut grad)
                }
            };
            let loss = match (&targets, critic.as_mut()) {
                (Targets::GuidedImages(_, _, g), Some((net_c, cache_c, grad_c))) => {
                    let y: Vec<u8> = idx.iter().map(|&i| g.labels[i]).collect();
                    if g.noise > 0.0 {
                        let mut rng = Rng::derive(cfg.seed, &format!("guide-noise-{epoch}-{s}"));
                        let noisy: Vec<f32> = cache.output().iter().map(|v| v + g.noise * rng.normal()).collect();
                        net_c.forward_train(&noisy, b, cache_c);
                    } else {
                        net_c.forward_train(cache.output(), b, cache_c);
                    }
                    let classes = net_c.out_len();
                    grad_c.clear();
                    grad_c.resize(b * classes, 0.0);
                    let ce = softmax_cross_entropy(cache_c.output(), &y, classes, grad_c).0;
                    let dimg = net_c.input_gradient(cache_c, grad_c);
                    grad.iter_mut().zip(dimg).for_each(|(d, c)| *d += g.weight * c);
                    loss + g.weight * ce
                }
                _ => loss,
            };
            if !loss.is_finite() {
                return Err(Error::invalid(
                    "training",
                    format!("loss became {loss} at epoch {epoch} step {s}; lower the learning rate"),
                ));
            }
            epoch_loss += loss as f64 * b as f64;
            net.backward(&mut cache, &grad);
            adam.step(net.params_and_grads());
            progress.advance(1);
        }
        last_loss = (epoch_loss / n as f64) as f32;
        progress.message(&format!("epoch {}/{} loss {last_loss:.5}", epoch + 1, cfg.epochs));
        tracing::info!(epoch = epoch + 1, loss = last_loss, "epoch done");
        if let Some(ck) = checkpoint {
            save_checkpoint(ck, net, &adam, epoch + 1, &fingerprint)?;
        }
    }
    progress.end();
    let secs = t0.elapsed().as_secs_f64();
    let done = (cfg.epochs - start_epoch) * n;
    Ok(TrainReport {
        epochs: cfg.epochs,
        resumed_from_epoch: start_epoch,
        final_loss: last_loss,
        seconds: secs,
        samples_per_sec: done as f64 / secs.max(1e-9),
    })
}

fn save_checkpoint(path: &Path, net: &Network, adam: &Adam, epoch: usize, fingerprint: &str) -> Result<()> {
    let (step, m, v) = adam.state();
    let names: Vec<(String, String)> = (0..m.len()).map(|i| (format!("adam.m.{i}"), format!("adam.v.{i}"))).collect();
    let named = net.named_tensors();
    let mut tensors: Vec<TensorOut> = named.iter().map(|(n, s, d)| TensorOut::F32(n, s.clone(), d)).collect();
    for (i, (mn, vn)) in names.iter().enumerate() {
        tensors.push(TensorOut::F32(mn, vec![m[i].len()], &m[i]));
        tensors.push(TensorOut::F32(vn, vec![v[i].len()], &v[i]));
    }
    let mut meta = BTreeMap::new();
    meta.insert("format".into(), "apsig-train-checkpoint-v1".into());
    meta.insert("epoch".into(), epoch.to_string());
    meta.insert("adam_step".into(), step.to_string());
    meta.insert("fingerprint".into(), fingerprint.into());
    write_tensors(path, &tensors, &meta)
}

fn restore(path: &Path, net: &mut Network, adam: &mut Adam, fingerprint: &str) -> Result<usize> {
    let f = TensorFile::read(path)?;
    if f.meta("format")? != "apsig-train-checkpoint-v1" {
        return Err(Error::bad_file(path, "not an apsig training checkpoint"));
    }
    if f.meta("fingerprint")? != fingerprint {
        return Err(Error::bad_file(
            path,
            "checkpoint was made with another configuration or data; delete it to start over",
        ));
    }
    let epoch: usize = f.meta("epoch")?.parse().map_err(|_| Error::bad_file(path, "bad epoch"))?;
    let step: i32 = f.meta("adam_step")?.parse().map_err(|_| Error::bad_file(path, "bad adam_step"))?;
    let wanted: Vec<(String, Vec<usize>)> = net.named_tensors().into_iter().map(|(n, s, _)| (n, s)).collect();
    for (name, shape) in wanted {
        *net.tensor_mut(&name).expect("known name") = f.f32(&name, Some(&shape))?.1;
    }
    let lens: Vec<usize> = net.params_and_grads().iter().map(|(p, _)| p.len()).collect();
    let (mut m, mut v) = (Vec::new(), Vec::new());
    for (i, len) in lens.iter().enumerate() {
        m.push(f.f32(&format!("adam.m.{i}"), Some(&[*len]))?.1);
        v.push(f.f32(&format!("adam.v.{i}"), Some(&[*len]))?.1);
    }
    adam.restore(step, m, v);
    Ok(epoch)
}

/// Top-1 accuracy of a classifier on a labelled split.
pub fn accuracy(model: &dyn crate::model::Classifier, images: &[f32], labels: &[u8]) -> f32 {
    let correct = correct_each(model, images, labels).into_iter().filter(|&b| b).count();
    correct as f32 / labels.len().max(1) as f32
}

/// Per image, whether the classifier's top-1 class is its label.
pub fn correct_each(model: &dyn crate::model::Classifier, images: &[f32], labels: &[u8]) -> Vec<bool> {
    let logits = model.batch_logits(images, labels.len());
    let c = model.num_classes();
    labels.iter().enumerate().map(|(i, y)| crate::argmax(&logits[i * c..(i + 1) * c]) == *y as usize).collect()
}

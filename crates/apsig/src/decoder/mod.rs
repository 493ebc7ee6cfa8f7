//! The decoder: a DCGAN-style generator from what an oracle revealed (a signature: standardised
//! ln eps, optionally the censoring mask; or a label or score-vector variant, see `Input`) to
//! an image, trained with L2 (or L1, `DecoderConfig::loss`) on the adversary's own data;
//! optionally with the colours of each reconstruction decided by a palette learnt from that
//! data (`Palette`, for two-colour images).

mod input;
mod palette;

pub use input::{Input, InputKind, Standardiser};
pub use palette::Palette;

use crate::error::{Error, Result};
use crate::io::{write_tensors, TensorFile, TensorOut};
use crate::model::{
    decoder_layers, load_network, save_network, train, Arch, ClassGuide, Targets, TrainConfig, TrainReport,
};
use crate::nn::{Network, PixelLoss, Shape};
use crate::signature::SignatureSet;
use crate::Progress;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// The decoder's size, input and training.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecoderConfig {
    /// Base width: channels of the last hidden layer. The projection has `2^(stages-1) *
    /// width` channels (`2 * width` at 7x7 for 28x28 images; see `model::decoder_layers`).
    pub width: usize,
    /// Width of a dense hidden layer (Linear, batch norm, ReLU) between the features and the
    /// projection; 0 (the paper's decoder) for none. Left out of configs and decoder stamps
    /// when 0, so runs made before it existed keep their stamps.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub hidden: usize,
    /// Feed the censoring mask as K extra inputs (censored eps carry less information).
    pub use_mask: bool,
    /// Weight of the class guide (`model::ClassGuide`): a frozen classifier's cross-entropy on
    /// each reconstruction of the adversary's own images, added to the L2 loss. 0 (the paper's
    /// decoder) for none; left out of configs and stamps when 0.
    #[serde(default, skip_serializing_if = "is_zero_f32")]
    pub class_weight: f32,
    /// Standard deviation of the Gaussian noise the class guide adds to each reconstruction
    /// before its critic reads it (see `model::ClassGuide::noise`); left out when 0.
    #[serde(default, skip_serializing_if = "is_zero_f32")]
    pub class_noise: f32,
    /// The per-pixel loss: `l2` (the paper's; left out of configs and stamps) or `l1`, which
    /// paints the likelier of the values the signature leaves open (a stroke's colour, above
    /// all) instead of their average.
    #[serde(default, skip_serializing_if = "PixelLoss::is_l2")]
    pub loss: PixelLoss,
    /// Decide each reconstruction's two colours by the palette of the adversary's training
    /// images (`Palette`: for two-colour images; data without a palette is refused before
    /// training). Off (left out of configs and stamps): the network's output as it is.
    #[serde(default, skip_serializing_if = "is_false")]
    pub palette: bool,
    /// Training schedule.
    pub train: TrainConfig,
}

fn is_zero(v: &usize) -> bool {
    *v == 0
}

fn is_zero_f32(v: &f32) -> bool {
    *v == 0.0
}

fn is_false(v: &bool) -> bool {
    !*v
}

impl DecoderConfig {
    /// Refuses a class guide that cannot work: a weight or noise that is negative or not a
    /// number, and noise without a weight (it would change nothing but the stamp).
    pub fn validate(&self) -> Result<()> {
        for (name, v) in [("decoder.class_weight", self.class_weight), ("decoder.class_noise", self.class_noise)] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(Error::invalid(name, format!("{v} is not 0 or more")));
            }
        }
        if self.class_noise > 0.0 && self.class_weight == 0.0 {
            return Err(Error::invalid(
                "decoder.class_noise",
                "noise for the class guide needs decoder.class_weight > 0",
            ));
        }
        Ok(())
    }
}

/// What the class guide reads: the adversary's own classifier and the class of each training
/// image, in the order of the decoder's training rows.
#[derive(Clone, Copy)]
pub struct Critic<'a> {
    /// A classifier of the decoder's images (the target M when apsig trained it).
    pub net: &'a Network,
    /// Class of each training image.
    pub labels: &'a [u8],
}

/// A trained decoder: its network, what it reads, the standardisation it was trained with,
/// the directions its training signatures were measured along and, where asked for, the
/// palette that decides its reconstructions' colours.
pub struct Decoder {
    /// The generator network.
    pub net: Network,
    /// What it reads.
    pub input: InputKind,
    scale: Standardiser,
    /// Fingerprint of the directions the training signatures were measured with.
    pub directions: String,
    /// Decides the colours of every reconstruction (`DecoderConfig::palette`).
    pub palette: Option<Palette>,
}

impl Decoder {
    /// Directions a signature must have to be decoded (0 for a score-vector decoder).
    pub fn k(&self) -> usize {
        self.input.k()
    }

    /// Trains a decoder on change-bit signatures (the censoring mask per `cfg.use_mask`) and
    /// the images they belong to (`[n, image.len()]`, same order, channels-last).
    pub fn fit(
        sigs: &SignatureSet,
        images: &[f32],
        image: Shape,
        cfg: &DecoderConfig,
        critic: Option<Critic>,
        checkpoint: Option<&Path>,
        progress: &dyn Progress,
    ) -> Result<(Decoder, TrainReport)> {
        let input = Input::signature(sigs, sigs.k, sigs.n(), cfg.use_mask)?;
        Self::fit_input(&input, images, image, cfg, critic, checkpoint, progress)
    }

    /// Trains a decoder on any oracle variant's input (the one entry point): fits the
    /// `Standardiser` on it, then the network on the standardised features. `critic` is read
    /// only when `cfg.class_weight` is positive, and must be there then.
    pub fn fit_input(
        input: &Input,
        images: &[f32],
        image: Shape,
        cfg: &DecoderConfig,
        critic: Option<Critic>,
        checkpoint: Option<&Path>,
        progress: &dyn Progress,
    ) -> Result<(Decoder, TrainReport)> {
        if images.len() != input.rows * image.len() {
            return Err(Error::invalid(
                "decoder training",
                format!(
                    "{} feature rows but {} values of {}x{}x{} images",
                    input.rows,
                    images.len(),
                    image.h,
                    image.w,
                    image.c
                ),
            ));
        }
        // learnt first: data without a palette is refused before the training it would waste
        let palette = cfg.palette.then(|| Palette::learn(images, image)).transpose()?;
        let scale = Standardiser::fit(input);
        let x = input.standardised(&scale);
        let (net, report) = fit_network(&x, input.kind.dim(), images, image, cfg, critic, checkpoint, progress)?;
        Ok((Decoder { net, input: input.kind, scale, directions: input.directions.clone(), palette }, report))
    }

    /// Shape of the images it paints (H x W x C, channels-last).
    pub fn image_shape(&self) -> Shape {
        self.net.output_shape()
    }

    /// Reconstructions `[rows, image_shape().len()]` in [0, 1] of an input of the kind the
    /// decoder reads: the network's output, with its colours decided where the decoder has a
    /// palette.
    pub fn decode(&self, input: &Input) -> Result<Vec<f32>> {
        let mean = self.decode_mean(input)?;
        Ok(self.decided(&mean)?.unwrap_or(mean))
    }

    /// The network's output `mean` with its colours decided by the palette; `None` for a
    /// decoder without one. (`decode` is `decode_mean` then this; a caller that needs both
    /// runs the network once.)
    pub fn decided(&self, mean: &[f32]) -> Result<Option<Vec<f32>>> {
        let Some(p) = &self.palette else { return Ok(None) };
        let mut out = mean.to_vec();
        p.decide(&mut out, self.image_shape())?;
        Ok(Some(out))
    }

    /// The network's output alone, colours undecided: under L2, the mean of the images the
    /// input leaves possible.
    pub fn decode_mean(&self, input: &Input) -> Result<Vec<f32>> {
        if input.kind != self.input {
            return Err(Error::invalid(
                "decoding",
                format!("the input is {:?}, the decoder reads {:?}", input.kind, self.input),
            ));
        }
        if input.directions != self.directions {
            return Err(Error::invalid(
                "decoding",
                "signatures were measured along other directions than the decoder was trained on",
            ));
        }
        Ok(self.net.forward(&input.standardised(&self.scale), input.rows))
    }

    /// Reconstructions `[n, image_shape().len()]` in [0, 1] of change-bit signatures (`decode`).
    pub fn reconstruct(&self, sigs: &SignatureSet) -> Result<Vec<f32>> {
        self.decode(&self.signature_input(sigs)?)
    }

    /// The network's output alone for change-bit signatures (`decode_mean`).
    pub fn reconstruct_mean(&self, sigs: &SignatureSet) -> Result<Vec<f32>> {
        self.decode_mean(&self.signature_input(sigs)?)
    }

    fn signature_input<'a>(&self, sigs: &'a SignatureSet) -> Result<Input<'a>> {
        let InputKind::Signature { k, use_mask } = self.input else {
            return Err(Error::invalid(
                "reconstruction",
                format!("the decoder reads {:?}, not signatures", self.input),
            ));
        };
        if sigs.k != k {
            return Err(Error::invalid(
                "reconstruction",
                format!("signatures have K = {}, the decoder was trained for K = {k}", sigs.k),
            ));
        }
        Input::signature(sigs, k, sigs.n(), use_mask)
    }

    /// Saves the network to `path` (with `extra` metadata) and the standardisation beside it.
    pub fn save(&self, path: &Path, extra: &BTreeMap<String, String>) -> Result<()> {
        let mut meta = extra.clone();
        meta.insert("k".into(), self.k().to_string());
        if let InputKind::Signature { use_mask, .. } = self.input {
            meta.insert("use_mask".into(), use_mask.to_string());
        } else {
            // not `input`: the model file's own `input` key holds the network's input shape
            meta.insert("decoder_input".into(), serde_json::to_string(&self.input).expect("serialises"));
        }
        meta.insert("directions".into(), self.directions.clone());
        // `extra` may be an older file's metadata: the palette key says what THIS file holds
        meta.remove("palette");
        if let Some(p) = &self.palette {
            meta.insert("palette".into(), p.len().to_string());
        }
        save_network(path, Arch::Decoder, &self.net, &meta)?;
        // the standardisation (and the palette) live beside the weights, in a small companion file
        let cols = self.scale.mean().len();
        let mut tensors = vec![
            TensorOut::F32("mean", vec![cols], self.scale.mean()),
            TensorOut::F32("std", vec![cols], self.scale.std()),
        ];
        if let Some(p) = &self.palette {
            tensors.push(TensorOut::F32("palette", vec![p.len(), p.channels()], p.colours()));
        }
        write_tensors(&stats_path(path), &tensors, &meta)
    }

    /// Loads a decoder saved by `save`, checking its input against its network.
    pub fn load(path: &Path) -> Result<Decoder> {
        let m = load_network(path, Some(Arch::Decoder))?;
        let get = |key: &str| {
            m.metadata.get(key).cloned().ok_or_else(|| Error::bad_file(path, format!("missing metadata `{key}`")))
        };
        let input = match m.metadata.get("decoder_input") {
            Some(text) => {
                serde_json::from_str(text).map_err(|e| Error::bad_file(path, format!("bad `decoder_input`: {e}")))?
            }
            None => InputKind::Signature {
                k: get("k")?.parse().map_err(|_| Error::bad_file(path, "bad `k`"))?,
                use_mask: get("use_mask")? == "true",
            },
        };
        let dim = input.dim();
        if dim == 0 || m.net.in_len() != dim {
            return Err(Error::bad_file(
                path,
                format!("decoder input has {} values, {input:?} needs {dim}", m.net.in_len()),
            ));
        }
        let sp = stats_path(path);
        let f = TensorFile::read(&sp)?;
        let cols = input.scaled();
        let mean = f.f32("mean", Some(&[cols]))?.1;
        let std = f.f32("std", Some(&[cols]))?.1;
        let scale = Standardiser::from_parts(mean, std, &sp.display().to_string())
            .map_err(|_| Error::bad_file(&sp, "non-positive standard deviation"))?;
        let palette = match m.metadata.get("palette") {
            None => None,
            Some(entries) => {
                let entries: usize = entries.parse().map_err(|_| Error::bad_file(path, "bad `palette`"))?;
                let c = m.net.output_shape().c;
                let colours = f.f32("palette", Some(&[entries, c]))?.1;
                Some(Palette::new(c, colours).map_err(|e| Error::bad_file(&sp, e.to_string()))?)
            }
        };
        Ok(Decoder { net: m.net, input, scale, directions: get("directions")?, palette })
    }
}

/// Trains the decoder network on standardised features `[n, dim]` and the images they
/// should reproduce.
#[allow(clippy::too_many_arguments)]
fn fit_network(
    features: &[f32],
    dim: usize,
    images: &[f32],
    image: Shape,
    cfg: &DecoderConfig,
    critic: Option<Critic>,
    checkpoint: Option<&Path>,
    progress: &dyn Progress,
) -> Result<(Network, TrainReport)> {
    if dim == 0 || !features.len().is_multiple_of(dim) || images.len() != features.len() / dim * image.len() {
        return Err(Error::invalid(
            "decoder training",
            format!("{} feature values of width {dim} but {} pixels of images", features.len(), images.len()),
        ));
    }
    let input = Shape::flat(dim);
    let mut net = Network::new(input, decoder_layers(image, cfg.width, cfg.hidden), cfg.train.seed)
        .map_err(|e| Error::invalid("decoder", e))?;
    cfg.validate()?;
    let targets = match (cfg.class_weight > 0.0, critic) {
        (false, _) => Targets::Images(images, cfg.loss),
        (true, Some(c)) => {
            let guide =
                ClassGuide { critic: c.net, labels: c.labels, weight: cfg.class_weight, noise: cfg.class_noise };
            Targets::GuidedImages(images, cfg.loss, guide)
        }
        (true, None) => {
            return Err(Error::invalid(
                "decoder.class_weight",
                "the class guide needs a critic: a classifier network of the adversary's and the class of each \
                 training image",
            ))
        }
    };
    let report = train(&mut net, features, targets, &cfg.train, checkpoint, progress)?;
    Ok((net, report))
}

fn stats_path(path: &Path) -> std::path::PathBuf {
    path.with_extension("stats.safetensors")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decoder(input: InputKind) -> Decoder {
        let shape = Shape::flat(input.dim());
        let net = Network::new(shape, Arch::Decoder.layers(Shape::new(12, 10, 3), 0, 4), 7).unwrap();
        let cols = input.scaled();
        let scale = Standardiser::from_parts(vec![0.5; cols], vec![2.0; cols], "test").unwrap();
        Decoder { net, input, scale, directions: "dirs-fingerprint".into(), palette: None }
    }

    #[test]
    fn every_input_kind_survives_a_save_and_load() {
        let dir = tempfile::tempdir().unwrap();
        for (i, kind) in [
            InputKind::Signature { k: 5, use_mask: true },
            InputKind::Signature { k: 5, use_mask: false },
            InputKind::Labels { k: 3, use_mask: true, classes: 4 },
            InputKind::Scores { classes: 10 },
            InputKind::FlipRate { magnitudes: 8 },
            InputKind::Boundary { len: 12 },
        ]
        .into_iter()
        .enumerate()
        {
            let path = dir.path().join(format!("d{i}.safetensors"));
            let d = decoder(kind);
            d.save(&path, &BTreeMap::from([("dataset".to_string(), "test".to_string())])).unwrap();
            let back = Decoder::load(&path).unwrap_or_else(|e| panic!("{kind:?}: {e}"));
            assert_eq!(back.input, kind);
            assert_eq!(back.directions, d.directions);
            assert_eq!(back.scale.mean(), d.scale.mean());
            assert_eq!(back.scale.std(), d.scale.std());
            assert_eq!(back.net.in_len(), kind.dim());
            assert_eq!(back.image_shape(), Shape::new(12, 10, 3));
        }
    }

    /// Images that carry no class under L2 (uniform noise) and features that do: the L2
    /// decoder paints the mean, which the critic cannot read; the guided one paints what it
    /// reads as each image's class. A weight without a critic, or a bad weight, is refused.
    #[test]
    fn the_class_guide_paints_the_class_the_features_hold() {
        let image = Shape::new(6, 5, 1);
        let (n, dim) = (256, 4);
        let mut rng = crate::rng::Rng::derive(5, "guide-test");
        let labels: Vec<u8> = (0..n).map(|i| (i % 2) as u8).collect();
        let features: Vec<f32> =
            labels.iter().flat_map(|&y| [y as f32 * 2.0 - 1.0 + 0.3 * rng.normal(), rng.normal(), 0.0, 1.0]).collect();
        let images: Vec<f32> = (0..n * image.len()).map(|_| rng.uniform()).collect();
        // the critic says 0 when the top half is brighter than the bottom half, 1 otherwise
        let mut critic = Network::new(image, vec![crate::nn::LayerSpec::Linear { out: 2 }], 1).unwrap();
        for i in 0..image.len() {
            let sign = if i < image.len() / 2 { 1.0 } else { -1.0 };
            critic.params[0][0][i * 2] = sign;
            critic.params[0][0][i * 2 + 1] = -sign;
        }
        let read = |cfg: &DecoderConfig| -> f32 {
            let c = Critic { net: &critic, labels: &labels };
            let (net, _) = fit_network(&features, dim, &images, image, cfg, Some(c), None, &crate::NoProgress).unwrap();
            crate::model::accuracy(&critic, &net.forward(&features, n), &labels)
        };
        let plain = DecoderConfig {
            width: 4,
            hidden: 0,
            use_mask: false,
            class_weight: 0.0,
            class_noise: 0.0,
            loss: PixelLoss::L2,
            palette: false,
            train: TrainConfig::new(8, 32, 5e-3, 1),
        };
        let guided = DecoderConfig { class_weight: 0.5, ..plain.clone() };
        let (a, b) = (read(&plain), read(&guided));
        assert!(b > 0.9 && b > a + 0.2, "critic reads the class of {a} of L2 reconstructions and {b} of guided ones");
        let noisy = read(&DecoderConfig { class_noise: 0.3, ..guided.clone() });
        assert!(noisy > 0.9, "through noise the critic reads {noisy}");
        let e = fit_network(&features, dim, &images, image, &guided, None, None, &crate::NoProgress).err().unwrap();
        assert!(e.to_string().contains("class_weight"), "{e}");
        for bad in
            [DecoderConfig { class_weight: f32::NAN, ..plain.clone() }, DecoderConfig { class_noise: -1.0, ..guided }]
        {
            let c = Critic { net: &critic, labels: &labels };
            assert!(fit_network(&features, dim, &images, image, &bad, Some(c), None, &crate::NoProgress).is_err());
        }
    }

    /// Features that say nothing and pixels that are 1 for 30% of the images, 0 otherwise (a
    /// stroke colour the signature leaves open): L2 paints the mean, about 0.3; L1 the median, 0.
    /// The choice is a stamp only when it is not the paper's L2.
    #[test]
    fn the_l1_decoder_paints_the_likelier_value_where_l2_paints_the_mean() {
        let image = Shape::new(4, 4, 1);
        let (n, dim) = (200, 3);
        let mut rng = crate::rng::Rng::derive(9, "l1-test");
        let features: Vec<f32> = (0..n * dim).map(|_| rng.normal()).collect();
        let images: Vec<f32> =
            (0..n).flat_map(|i| std::iter::repeat_n(if i % 10 < 3 { 1.0 } else { 0.0 }, image.len())).collect();
        let cfg = |loss| DecoderConfig {
            width: 4,
            hidden: 0,
            use_mask: false,
            class_weight: 0.0,
            class_noise: 0.0,
            loss,
            palette: false,
            train: TrainConfig::new(30, 20, 1e-2, 3),
        };
        let mean_output = |loss| -> f32 {
            let (net, _) =
                fit_network(&features, dim, &images, image, &cfg(loss), None, None, &crate::NoProgress).unwrap();
            let out = net.forward(&features, n);
            out.iter().sum::<f32>() / out.len() as f32
        };
        let (l2, l1) = (mean_output(PixelLoss::L2), mean_output(PixelLoss::L1));
        assert!((l2 - 0.3).abs() < 0.08, "L2 paints {l2}, not the mean 0.3");
        assert!(l1 < 0.1, "L1 paints {l1}, not the median 0");
        assert!(!serde_json::to_string(&cfg(PixelLoss::L2)).unwrap().contains("loss"));
        let l1_text = serde_json::to_string(&cfg(PixelLoss::L1)).unwrap();
        assert!(l1_text.contains(r#""loss":"l1""#), "{l1_text}");
        assert_eq!(serde_json::from_str::<DecoderConfig>(&l1_text).unwrap().loss, PixelLoss::L1);
    }

    #[test]
    fn a_decoder_with_a_hidden_layer_trains_saves_and_loads() {
        let image = Shape::new(6, 5, 3);
        let (n, dim) = (40, 8);
        let mut rng = crate::rng::Rng::derive(3, "hidden-test");
        let features: Vec<f32> = (0..n * dim).map(|_| rng.normal()).collect();
        let images: Vec<f32> = (0..n * image.len()).map(|_| rng.uniform()).collect();
        let cfg = DecoderConfig {
            width: 4,
            hidden: 6,
            use_mask: false,
            class_weight: 0.0,
            class_noise: 0.0,
            loss: PixelLoss::L2,
            palette: false,
            train: TrainConfig::new(2, 8, 2e-3, 1),
        };
        let (net, _) = fit_network(&features, dim, &images, image, &cfg, None, None, &crate::NoProgress).unwrap();
        use crate::nn::LayerSpec::{BatchNorm, Linear, Relu};
        assert_eq!(net.specs[..3], [Linear { out: 6 }, BatchNorm, Relu]);
        let scale = Standardiser::from_parts(vec![0.0; dim], vec![1.0; dim], "test").unwrap();
        let input = InputKind::Signature { k: dim, use_mask: false };
        let d = Decoder { net, input, scale, directions: "d".into(), palette: None };
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hidden.safetensors");
        d.save(&path, &BTreeMap::new()).unwrap();
        let back = Decoder::load(&path).unwrap();
        assert_eq!(back.net.specs, d.net.specs);
        assert_eq!(back.net.forward(&features, n), d.net.forward(&features, n));
        // a palette decides the colours of `decode`, is saved with the decoder and comes back
        let palette = Palette::new(3, vec![0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0]).unwrap();
        let boundary = InputKind::Boundary { len: dim - 1 };
        let d = Decoder { input: boundary, directions: String::new(), palette: Some(palette.clone()), ..d };
        d.save(&path, &BTreeMap::new()).unwrap();
        let back = Decoder::load(&path).unwrap();
        assert_eq!(back.palette.as_ref(), Some(&palette));
        let input = Input::boundary(&features, dim - 1).unwrap();
        let (mean, decided) = (back.decode_mean(&input).unwrap(), back.decode(&input).unwrap());
        let mut want = mean.clone();
        palette.decide(&mut want, image).unwrap();
        assert_eq!(decided, want);
        assert_ne!(decided, mean);
        // data without a palette is refused before any training
        let with_palette = DecoderConfig { palette: true, ..cfg.clone() };
        let e =
            Decoder::fit_input(&input, &images, image, &with_palette, None, None, &crate::NoProgress).err().unwrap();
        assert!(e.to_string().contains("decoder.palette"), "{e}");
        assert!(!serde_json::to_string(&cfg).unwrap().contains("palette"));
        // 0 is the paper's decoder and stays out of configs (and so out of old runs' stamps)
        let plain = DecoderConfig { hidden: 0, ..cfg };
        assert!(!serde_json::to_string(&plain).unwrap().contains("hidden"));
    }
}

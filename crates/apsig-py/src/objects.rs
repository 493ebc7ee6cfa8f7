//! The artefacts as Python objects: directions, models, signature sets and decoders. Each
//! loads and saves the very files the CLI writes.

use crate::arrays::{array_out, images_in, images_out, shape_of, Layout};
use crate::progress::PyProgress;
use crate::{invalid, py_err};
use apsig::directions::{DirectionConfig, DirectionContext, Strategy};
use apsig::model::{load_network, save_network, Arch, Classifier, Targets, TrainConfig};
use apsig::nn::{Network, Shape};
use numpy::{PyReadonlyArray1, PyReadonlyArrayDyn, PyUntypedArrayMethods};
use pyo3::prelude::*;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

/// K seeded unit-norm probe directions of the input's shape.
#[pyclass(module = "apsig._native", frozen)]
pub struct Directions {
    pub inner: apsig::directions::Directions,
}

#[pymethods]
impl Directions {
    /// Draws K directions with `strategy`; data-dependent strategies take the adversary's
    /// own `images` and `labels` (and `model` for `adversarial`), never secrets.
    #[staticmethod]
    #[pyo3(signature = (strategy, k, seed, shape, images=None, labels=None, model=None))]
    #[allow(clippy::too_many_arguments)]
    fn generate(
        py: Python<'_>,
        strategy: &str,
        k: usize,
        seed: u64,
        shape: (usize, usize, usize),
        images: Option<PyReadonlyArrayDyn<'_, f32>>,
        labels: Option<PyReadonlyArray1<'_, u8>>,
        model: Option<PyRef<'_, Model>>,
    ) -> PyResult<Self> {
        let strategy: Strategy = strategy.parse().map_err(py_err)?;
        let shape = shape_of(shape);
        let config = DirectionConfig { strategy, k, seed };
        let data = match (images, labels) {
            (Some(x), Some(l)) => {
                let (n, rows) = images_in("images", &x, shape, Layout::Nhwc)?;
                let labels = l.as_array().to_vec();
                if labels.len() != n {
                    return Err(invalid(format!("labels: {} labels for {n} images", labels.len())));
                }
                Some((rows, labels))
            }
            (None, None) => None,
            _ => return Err(invalid("directions: give both images and labels, or neither")),
        };
        let net = model.map(|m| m.net.clone());
        let inner = py.detach(|| {
            let ctx = data.as_ref().map(|(images, labels)| DirectionContext { images, labels, model: net.as_deref() });
            apsig::directions::Directions::generate_with(&config, shape, ctx.as_ref())
        });
        Ok(Directions { inner: inner.map_err(py_err)? })
    }

    /// Loads a directions file (`directions.safetensors` of a run).
    #[staticmethod]
    fn load(path: PathBuf) -> PyResult<Self> {
        Ok(Directions { inner: apsig::directions::Directions::load(&path).map_err(py_err)? })
    }

    /// Saves the directions (atomically) with their config and fingerprint.
    fn save(&self, path: PathBuf) -> PyResult<()> {
        self.inner.save(&path).map_err(py_err)
    }

    /// The directions as a `[k, h, w, c]` float32 array.
    #[getter]
    fn array<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        images_out(py, self.inner.data.clone(), self.inner.k(), self.inner.shape, Layout::Nhwc)
    }
    #[getter]
    fn k(&self) -> usize {
        self.inner.k()
    }
    #[getter]
    fn shape(&self) -> (usize, usize, usize) {
        let s = self.inner.shape;
        (s.h, s.w, s.c)
    }
    #[getter]
    fn strategy(&self) -> &'static str {
        self.inner.config.strategy.name()
    }
    #[getter]
    fn seed(&self) -> u64 {
        self.inner.config.seed
    }
    #[getter]
    fn fingerprint(&self) -> String {
        self.inner.fingerprint()
    }
    /// The first `k` directions (what a set of `k` would be, for every strategy).
    fn prefix(&self, k: usize) -> Self {
        Directions { inner: self.inner.prefix(k) }
    }
    fn __len__(&self) -> usize {
        self.inner.k()
    }
    fn __repr__(&self) -> String {
        let s = self.inner.shape;
        format!("Directions({} x {}x{}x{}, {}, seed {})", self.inner.k(), s.h, s.w, s.c, self.strategy(), self.seed())
    }
}

/// A classifier inside the process: an apsig model file (TargetNet-S, EvalNet).
/// `signatures(model, ...)` measures through it as `apsig signatures` does. (ONNX models run
/// in their own runtime, e.g. onnxruntime, behind a callable: the wheel stays small.)
#[pyclass(module = "apsig._native", frozen)]
pub struct Model {
    pub net: Arc<Network>,
    arch: Arch,
    metadata: BTreeMap<String, String>,
}

impl Model {
    fn from_net(net: Network, arch: Arch, metadata: BTreeMap<String, String>) -> Self {
        Model { net: Arc::new(net), arch, metadata }
    }
}

fn arch_of(name: &str) -> PyResult<Arch> {
    match name {
        "targetnet-s" => Ok(Arch::TargetNetS),
        "evalnet" => Ok(Arch::EvalNet),
        other => Err(invalid(format!("invalid architecture: `{other}` (choose targetnet-s or evalnet)"))),
    }
}

#[pymethods]
impl Model {
    /// Loads an apsig classifier file (`target.safetensors`, `evaluator.safetensors`).
    #[staticmethod]
    fn load(path: PathBuf) -> PyResult<Self> {
        let f = load_network(&path, None).map_err(py_err)?;
        if f.arch == Arch::Decoder {
            return Err(invalid(format!("{}: a decoder, not a classifier (use Decoder.load)", path.display())));
        }
        Ok(Self::from_net(f.net, f.arch, f.metadata))
    }

    /// An untrained network of `arch` (`targetnet-s` or `evalnet`), seeded.
    #[staticmethod]
    #[pyo3(signature = (arch, shape=(28, 28, 1), classes=10, seed=0))]
    fn init(arch: &str, shape: (usize, usize, usize), classes: usize, seed: u64) -> PyResult<Self> {
        let arch = arch_of(arch)?;
        let shape = shape_of(shape);
        let net = Network::new(shape, arch.layers(shape, classes, 0), seed).map_err(invalid)?;
        Ok(Self::from_net(net, arch, BTreeMap::new()))
    }

    /// Trains a network of `arch` on `images` (`[n, h, w, c]` float32 in [0, 1]) and `labels`
    /// (`progress=True` for tqdm bars).
    #[staticmethod]
    #[pyo3(signature = (images, labels, arch="targetnet-s", epochs=5, batch=128, lr=2e-3, seed=0, progress=None))]
    #[allow(clippy::too_many_arguments)]
    fn train(
        py: Python<'_>,
        images: PyReadonlyArrayDyn<'_, f32>,
        labels: PyReadonlyArray1<'_, u8>,
        arch: &str,
        epochs: usize,
        batch: usize,
        lr: f32,
        seed: u64,
        progress: Option<Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let arch = arch_of(arch)?;
        let dims = images.shape().to_vec();
        if dims.len() != 4 {
            return Err(invalid(format!("images: shape {dims:?}, expected [n, h, w, c]")));
        }
        let shape = Shape::new(dims[1], dims[2], dims[3]);
        let (n, x) = images_in("images", &images, shape, Layout::Nhwc)?;
        let labels = labels.as_array().to_vec();
        if labels.len() != n {
            return Err(invalid(format!("labels: {} labels for {n} images", labels.len())));
        }
        let classes = labels.iter().copied().max().unwrap_or(0) as usize + 1;
        let cfg = TrainConfig::new(epochs, batch, lr, seed);
        let progress = PyProgress::new(py, progress)?;
        let net = py.detach(|| {
            let mut net = Network::new(shape, arch.layers(shape, classes, 0), seed)
                .map_err(|e| apsig::Error::invalid(arch.name(), e))?;
            apsig::model::train(&mut net, &x, Targets::Labels(&labels), &cfg, None, &progress)?;
            Ok::<_, apsig::Error>(net)
        });
        let meta = BTreeMap::from([("seed".to_string(), seed.to_string())]);
        Ok(Self::from_net(net.map_err(py_err)?, arch, meta))
    }

    /// Saves an apsig network in the CLI's model format.
    fn save(&self, path: PathBuf) -> PyResult<()> {
        save_network(&path, self.arch, &self.net, &self.metadata).map_err(py_err)
    }

    /// Logits `[n, classes]` of a batch of images in `layout`.
    #[pyo3(signature = (images, layout="nhwc"))]
    fn logits<'py>(
        &self,
        py: Python<'py>,
        images: PyReadonlyArrayDyn<'py, f32>,
        layout: &str,
    ) -> PyResult<Bound<'py, PyAny>> {
        let (n, x) = images_in("images", &images, self.net.input, Layout::parse(layout)?)?;
        let c = self.net.num_classes();
        let z = py.detach(|| self.net.forward(&x, n));
        array_out(py, z, &[n, c])
    }

    #[getter]
    fn shape(&self) -> (usize, usize, usize) {
        let s = self.net.input;
        (s.h, s.w, s.c)
    }
    #[getter]
    fn classes(&self) -> usize {
        self.net.num_classes()
    }
    #[getter]
    fn arch(&self) -> &'static str {
        self.arch.name()
    }
    /// The file's metadata (data set, seed, training config, test accuracy).
    #[getter]
    fn metadata(&self) -> BTreeMap<String, String> {
        self.metadata.clone()
    }
    fn __repr__(&self) -> String {
        let (h, w, c) = self.shape();
        format!("Model({}, {h}x{w}x{c} -> {} classes)", self.arch(), self.classes())
    }
}

/// Signatures of a set of images: K eps each, the censoring mask, the queries spent, which
/// images, and how they were measured.
#[pyclass(module = "apsig._native", frozen)]
pub struct SignatureSet {
    pub inner: apsig::signature::SignatureSet,
}

#[pymethods]
impl SignatureSet {
    /// Loads a signature file (`signatures-{train,test}.safetensors` of a run).
    #[staticmethod]
    fn load(path: PathBuf) -> PyResult<Self> {
        Ok(SignatureSet { inner: apsig::signature::SignatureSet::load(&path).map_err(py_err)? })
    }
    /// Saves the set (atomically) with its provenance.
    fn save(&self, path: PathBuf) -> PyResult<()> {
        self.inner.save(&path).map_err(py_err)
    }
    /// `[n, k]` float32 flip points (eps_max where censored).
    #[getter]
    fn eps<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        array_out(py, self.inner.eps.clone(), &[self.inner.n(), self.inner.k])
    }
    /// `[n, k]` bool: the direction never flipped up to eps_max.
    #[getter]
    fn censored<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let c: Vec<bool> = self.inner.censored.iter().map(|&c| c != 0).collect();
        array_out(py, c, &[self.inner.n(), self.inner.k])
    }
    /// `[n, k]` uint32 probes spent on each eps.
    #[getter]
    fn queries<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        array_out(py, self.inner.queries.clone(), &[self.inner.n(), self.inner.k])
    }
    /// `[n]` uint32: which images of their split (or of the array given).
    #[getter]
    fn indices<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        array_out(py, self.inner.indices.clone(), &[self.inner.n()])
    }
    /// How the set was measured (data set, split, directions, search, oracle).
    #[getter]
    fn provenance(&self) -> BTreeMap<String, String> {
        self.inner.provenance.clone()
    }
    #[getter]
    fn k(&self) -> usize {
        self.inner.k
    }
    #[getter]
    fn n(&self) -> usize {
        self.inner.n()
    }
    /// Per-direction median eps: the prior for searching on secrets.
    fn median_eps<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        array_out(py, self.inner.median_eps(), &[self.inner.k])
    }
    /// The first `n` images along the first `k` directions.
    fn prefix(&self, k: usize, n: usize) -> Self {
        SignatureSet { inner: self.inner.prefix(k, n) }
    }
    #[getter]
    fn total_queries(&self) -> u64 {
        self.inner.total_queries()
    }
    #[getter]
    fn queries_per_eps(&self) -> f64 {
        self.inner.queries_per_eps()
    }
    #[getter]
    fn censored_fraction(&self) -> f64 {
        self.inner.censored_fraction()
    }
    fn __len__(&self) -> usize {
        self.inner.n()
    }
    fn __eq__(&self, other: PyRef<'_, SignatureSet>) -> bool {
        self.inner == other.inner
    }
    fn __repr__(&self) -> String {
        format!(
            "SignatureSet({} images x K = {}, {:.2} queries per eps, {:.1}% censored)",
            self.inner.n(),
            self.inner.k,
            self.inner.queries_per_eps(),
            100.0 * self.inner.censored_fraction()
        )
    }
}

/// The DCGAN-style decoder from a signature to an image of the shape it was trained on.
#[pyclass(module = "apsig._native", frozen)]
pub struct Decoder {
    pub inner: apsig::decoder::Decoder,
}

#[pymethods]
impl Decoder {
    /// Trains a decoder on the adversary's own signatures and the images they belong to
    /// (`[n, h, w, c]` or `[n, c, h, w]` with c = 1 or 3, or `[n, h, w]`, in signature order);
    /// the decoder paints images of that shape. `hidden` is the width of a dense layer before
    /// the projection (0: none; None: as `run` does). With `class_weight > 0`, the class guide:
    /// `critic` (a `Model` of the adversary's, e.g. the target) reads each reconstruction and
    /// its cross-entropy against `labels` (the images' classes) is added to the L2 loss;
    /// `class_noise` is the Gaussian noise added to each reconstruction before it is read.
    /// `loss` is the per-pixel loss: "l2" (the paper's) or "l1" (the likelier value where the
    /// signature leaves a pixel open, instead of the average). `palette=True` decides each
    /// reconstruction's two colours by the palette of `images` (two-colour images only; other
    /// data raises ApsigError before training); `reconstruct_mean` gives the undecided output.
    #[staticmethod]
    #[pyo3(signature = (signatures, images, width=64, use_mask=true, epochs=20, batch=128, lr=2e-3, seed=2000, hidden=None, labels=None, critic=None, class_weight=0.0, class_noise=0.0, loss="l2", palette=false, progress=None))]
    #[allow(clippy::too_many_arguments)]
    fn fit(
        py: Python<'_>,
        signatures: PyRef<'_, SignatureSet>,
        images: PyReadonlyArrayDyn<'_, f32>,
        width: usize,
        use_mask: bool,
        epochs: usize,
        batch: usize,
        lr: f32,
        seed: u64,
        hidden: Option<usize>,
        labels: Option<PyReadonlyArray1<'_, u8>>,
        critic: Option<PyRef<'_, Model>>,
        class_weight: f32,
        class_noise: f32,
        loss: &str,
        palette: bool,
        progress: Option<Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let loss = match loss {
            "l2" => apsig::nn::PixelLoss::L2,
            "l1" => apsig::nn::PixelLoss::L1,
            other => return Err(invalid(format!("loss: {other:?} is not \"l2\" or \"l1\""))),
        };
        let image = image_shape(images.shape())?;
        let labels = labels.map(|l| l.as_array().to_vec());
        let guide = match (&critic, &labels) {
            (Some(c), Some(l)) => Some(apsig::decoder::Critic { net: &c.net, labels: l }),
            (None, None) => None,
            _ => return Err(invalid("critic and labels: the class guide needs both")),
        };
        let (n, x) = images_in("images", &images, image, Layout::Nhwc)?;
        let sigs = &signatures.inner;
        if n != sigs.n() {
            return Err(invalid(format!("images: {n} images for {} signatures", sigs.n())));
        }
        // `hidden=None`: the run presets' hidden layer, so a notebook decoder is `run`'s
        let hidden = hidden.unwrap_or(apsig::pipeline::RunConfig::quick(0).decoder.hidden);
        let cfg = apsig::decoder::DecoderConfig {
            width,
            hidden,
            use_mask,
            class_weight,
            class_noise,
            loss,
            palette,
            train: TrainConfig::new(epochs, batch, lr, seed),
        };
        let progress = PyProgress::new(py, progress)?;
        let fitted = py.detach(|| apsig::decoder::Decoder::fit(sigs, &x, image, &cfg, guide, None, &progress));
        Ok(Decoder { inner: fitted.map_err(py_err)?.0 })
    }

    /// Reconstructions `[n, h, w, c]` in [0, 1] of signatures measured along the decoder's
    /// directions (colours decided where the decoder has a palette).
    fn reconstruct<'py>(&self, py: Python<'py>, signatures: PyRef<'py, SignatureSet>) -> PyResult<Bound<'py, PyAny>> {
        let sigs = &signatures.inner;
        let r = py.detach(|| self.inner.reconstruct(sigs)).map_err(py_err)?;
        images_out(py, r, sigs.n(), self.inner.image_shape(), Layout::Nhwc)
    }

    /// The network's output alone, colours undecided (the same as `reconstruct` for a decoder
    /// without a palette).
    fn reconstruct_mean<'py>(
        &self,
        py: Python<'py>,
        signatures: PyRef<'py, SignatureSet>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let sigs = &signatures.inner;
        let r = py.detach(|| self.inner.reconstruct_mean(sigs)).map_err(py_err)?;
        images_out(py, r, sigs.n(), self.inner.image_shape(), Layout::Nhwc)
    }

    /// Entries of the palette that decides the colours (0: none).
    #[getter]
    fn palette_entries(&self) -> usize {
        self.inner.palette.as_ref().map_or(0, |p| p.len())
    }

    /// Loads a decoder file (`decoder.safetensors` of a run, its `.stats` file beside it).
    #[staticmethod]
    fn load(path: PathBuf) -> PyResult<Self> {
        Ok(Decoder { inner: apsig::decoder::Decoder::load(&path).map_err(py_err)? })
    }

    /// Saves the decoder and its standardisation beside it.
    fn save(&self, path: PathBuf) -> PyResult<()> {
        self.inner.save(&path, &BTreeMap::new()).map_err(py_err)
    }

    /// Directions a signature must have.
    #[getter]
    fn k(&self) -> usize {
        self.inner.k()
    }
    /// Fingerprint of the directions it was trained on.
    #[getter]
    fn directions(&self) -> String {
        self.inner.directions.clone()
    }
    fn __repr__(&self) -> String {
        format!("Decoder(K = {})", self.inner.k())
    }
}

/// The image shape of an array of images: `[n, h, w]` is grey; `[n, h, w, c]` is channels-last
/// when its last axis is 1 or 3, else `[n, c, h, w]` when its second is (as the data loader reads
/// `.npz` arrays).
fn image_shape(dims: &[usize]) -> PyResult<Shape> {
    match *dims {
        [_, h, w] => Ok(Shape::new(h, w, 1)),
        [_, h, w, c] if c == 1 || c == 3 => Ok(Shape::new(h, w, c)),
        [_, c, h, w] if c == 1 || c == 3 => Ok(Shape::new(h, w, c)),
        _ => Err(invalid(format!("images: shape {dims:?}, expected [n, h, w, c] or [n, c, h, w] with c = 1 or 3"))),
    }
}

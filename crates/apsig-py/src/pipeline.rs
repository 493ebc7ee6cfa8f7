//! The metrics of METHOD.md, the data sets, and whole runs and studies with a config given as
//! JSON (the package passes dicts through `json`): the library's own entry points, called
//! with the GIL released.

use crate::arrays::{array_out, images_in, images_out, Layout};
use crate::objects::Model;
use crate::progress::PyProgress;
use crate::{invalid, py_err};
use apsig::data::DataOptions;
use apsig::pipeline::RunConfig;
use apsig::signature::SearchConfig;
use apsig::study::StudyConfig;
use numpy::{PyReadonlyArray1, PyReadonlyArrayDyn, PyUntypedArrayMethods};
use pyo3::prelude::*;
use std::path::PathBuf;

/// Reconstructions, the originals they reconstruct and the originals' labels.
struct Pair {
    recons: Vec<f32>,
    originals: Vec<f32>,
    labels: Vec<u8>,
    shape: apsig::nn::Shape,
}

/// Reconstructions and originals of the same images, checked against each other.
fn pair(
    recons: &PyReadonlyArrayDyn<'_, f32>,
    originals: &PyReadonlyArrayDyn<'_, f32>,
    labels: &PyReadonlyArray1<'_, u8>,
) -> PyResult<Pair> {
    let dims = originals.shape().to_vec();
    if dims.len() != 4 {
        return Err(invalid(format!("originals: shape {dims:?}, expected [n, h, w, c]")));
    }
    let shape = apsig::nn::Shape::new(dims[1], dims[2], dims[3]);
    let (n, o) = images_in("originals", originals, shape, Layout::Nhwc)?;
    let (m, r) = images_in("reconstructions", recons, shape, Layout::Nhwc)?;
    let labels = labels.as_array().to_vec();
    if m != n || labels.len() != n {
        return Err(invalid(format!("{m} reconstructions, {n} originals and {} labels", labels.len())));
    }
    Ok(Pair { recons: r, originals: o, labels, shape })
}

/// MSE, PSNR, SSIM and class recovery by the independent `evaluator`, as JSON.
#[pyfunction]
pub fn quality(
    py: Python<'_>,
    reconstructions: PyReadonlyArrayDyn<'_, f32>,
    originals: PyReadonlyArrayDyn<'_, f32>,
    labels: PyReadonlyArray1<'_, u8>,
    evaluator: PyRef<'_, Model>,
) -> PyResult<String> {
    let p = pair(&reconstructions, &originals, &labels)?;
    let net = evaluator.net.clone();
    if net.input != p.shape {
        return Err(invalid(format!("quality: images {:?} but the evaluator reads {:?}", p.shape, net.input)));
    }
    let q = py.detach(|| apsig::eval::quality(&p.recons, &p.originals, &p.labels, p.shape, net.as_ref()));
    Ok(serde_json::to_string(&q).expect("serialises"))
}

/// Identification among the evaluated secrets (top-1 nearest original, overall and within
/// the class), as JSON.
#[pyfunction]
pub fn identification(
    py: Python<'_>,
    reconstructions: PyReadonlyArrayDyn<'_, f32>,
    originals: PyReadonlyArrayDyn<'_, f32>,
    labels: PyReadonlyArray1<'_, u8>,
) -> PyResult<String> {
    let p = pair(&reconstructions, &originals, &labels)?;
    let id = py.detach(|| apsig::eval::identification(&p.recons, &p.originals, &p.labels, p.shape.len()));
    Ok(serde_json::to_string(&id).expect("serialises"))
}

/// The two baselines of a training set: its mean image and the mean image of each class.
#[pyfunction]
pub fn baselines<'py>(
    py: Python<'py>,
    images: PyReadonlyArrayDyn<'py, f32>,
    labels: PyReadonlyArray1<'py, u8>,
) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyAny>)> {
    let dims = images.shape().to_vec();
    if dims.len() != 4 {
        return Err(invalid(format!("images: shape {dims:?}, expected [n, h, w, c]")));
    }
    let shape = apsig::nn::Shape::new(dims[1], dims[2], dims[3]);
    let (n, x) = images_in("images", &images, shape, Layout::Nhwc)?;
    let labels = labels.as_array().to_vec();
    if labels.len() != n {
        return Err(invalid(format!("labels: {} labels for {n} images", labels.len())));
    }
    let mut split = apsig::data::Split::from_bytes(&[], labels, shape.h, shape.w, shape.c);
    split.images = x;
    let b = py.detach(|| apsig::eval::Baselines::from_train(&split));
    let classes = b.per_class.len();
    let global = images_out(py, b.global, 1, shape, Layout::Nhwc)?;
    let per_class = images_out(py, b.per_class.concat(), classes, shape, Layout::Nhwc)?;
    Ok((global, per_class))
}

fn data_options(data_dir: Option<PathBuf>, download: bool) -> DataOptions {
    DataOptions { data_dir, download, ..DataOptions::default() }
}

/// A data set by name or IDX directory: `(train_images, train_labels, test_images,
/// test_labels, name)`, images `[n, h, w, c]` float32 in [0, 1].
#[pyfunction]
#[pyo3(signature = (name, data_dir=None, download=false))]
#[allow(clippy::type_complexity)]
pub fn load_dataset<'py>(
    py: Python<'py>,
    name: &str,
    data_dir: Option<PathBuf>,
    download: bool,
) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyAny>, Bound<'py, PyAny>, Bound<'py, PyAny>, String)> {
    let opts = data_options(data_dir, download);
    let d = py.detach(|| apsig::data::load(name, &opts)).map_err(|e| py_err(e.into()))?;
    let split = |s: apsig::data::Split| -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyAny>)> {
        let shape = apsig::nn::Shape::new(s.rows, s.cols, s.channels);
        let n = s.n;
        Ok((images_out(py, s.images, n, shape, Layout::Nhwc)?, array_out(py, s.labels, &[n])?))
    };
    let (a, b) = split(d.train)?;
    let (c, e) = split(d.test)?;
    Ok((a, b, c, e, d.name))
}

/// A run preset (`quick`, `paper`, `smoke`) as JSON.
#[pyfunction]
pub fn run_config(preset: &str, seed: u64) -> PyResult<String> {
    let c = RunConfig::preset(preset, seed).map_err(py_err)?;
    Ok(serde_json::to_string(&c).expect("serialises"))
}

/// A study preset (`small`, `full`, `smoke`) as JSON.
#[pyfunction]
pub fn study_config(preset: &str, seed: u64) -> PyResult<String> {
    let c = StudyConfig::preset(preset, seed).map_err(py_err)?;
    Ok(serde_json::to_string(&c).expect("serialises"))
}

/// The eps search settings (`decoder-grade` or `plain`) as JSON.
#[pyfunction]
pub fn search_config(kind: &str, eps_max: f32) -> PyResult<String> {
    let c = match kind {
        "decoder-grade" => SearchConfig::decoder_grade(eps_max),
        "plain" => SearchConfig::plain(eps_max),
        other => return Err(invalid(format!("invalid search preset: `{other}` (choose decoder-grade or plain)"))),
    };
    Ok(serde_json::to_string(&c).expect("serialises"))
}

/// The whole attack into `out` (the CLI's `apsig run`); returns metrics.json's text.
#[pyfunction]
#[pyo3(signature = (config, out, data_dir=None, download=false, progress=None))]
pub fn run(
    py: Python<'_>,
    config: &str,
    out: PathBuf,
    data_dir: Option<PathBuf>,
    download: bool,
    progress: Option<Bound<'_, PyAny>>,
) -> PyResult<String> {
    let cfg: RunConfig = serde_json::from_str(config).map_err(|e| invalid(format!("invalid run config: {e}")))?;
    let opts = data_options(data_dir, download);
    let progress = PyProgress::new(py, progress)?;
    let m = py.detach(|| apsig::pipeline::run(&cfg, &out, &opts, &progress)).map_err(py_err)?;
    Ok(serde_json::to_string(&m).expect("serialises"))
}

/// A study into `out` (the CLI's `apsig study`); returns its summary as JSON.
#[pyfunction]
#[pyo3(signature = (config, out, data_dir=None, download=false, progress=None))]
pub fn study(
    py: Python<'_>,
    config: &str,
    out: PathBuf,
    data_dir: Option<PathBuf>,
    download: bool,
    progress: Option<Bound<'_, PyAny>>,
) -> PyResult<String> {
    let cfg: StudyConfig = serde_json::from_str(config).map_err(|e| invalid(format!("invalid study config: {e}")))?;
    cfg.validate().map_err(py_err)?;
    let opts = data_options(data_dir, download);
    let progress = PyProgress::new(py, progress)?;
    let s = py.detach(|| apsig::study::run(&cfg, &out, &opts, &progress)).map_err(py_err)?;
    Ok(serde_json::to_string(&s).expect("serialises"))
}

/// Candidate runs against reference runs on the same secrets (the CLI's `apsig compare`), each
/// run judged by the evaluator it trained: the comparison as JSON and as Markdown.
#[pyfunction]
#[pyo3(signature = (reference, candidate, seed=1, data_dir=None, download=false, progress=None))]
#[allow(clippy::too_many_arguments)]
pub fn compare(
    py: Python<'_>,
    reference: Vec<PathBuf>,
    candidate: Vec<PathBuf>,
    seed: u64,
    data_dir: Option<PathBuf>,
    download: bool,
    progress: Option<Bound<'_, PyAny>>,
) -> PyResult<(String, String)> {
    use apsig::pipeline::compare::{compare_dirs, own_evaluator};
    let opts = data_options(data_dir, download);
    let progress = PyProgress::new(py, progress)?;
    let c =
        py.detach(|| compare_dirs(&reference, &candidate, &opts, seed, &progress, own_evaluator)).map_err(py_err)?;
    Ok((serde_json::to_string(&c).expect("serialises"), c.markdown()))
}

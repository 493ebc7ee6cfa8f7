//! Signatures through a Python callable (the change-bit route for secrets, the white-box
//! route for the adversary's own images when it returns logits) or through an in-process
//! `Model` (exactly `apsig signatures`).
//!
//! The callable is asked in large batches: the lockstep driver of the library collects the
//! pending probes of a block of images across all their directions. The GIL is released
//! while Rust works and taken back only to call the callable; signals (Ctrl-C) are checked
//! before every call, so an extraction stops within one batch, and with `parts_dir` every
//! finished block is already on disk for the rerun to resume from.

use crate::arrays::{images_in, images_out, Layout};
use crate::objects::{Directions, Model, SignatureSet};
use crate::progress::PyProgress;
use crate::{invalid, py_err};
use apsig::signature::{
    extract, in_blocks, lockstep_signatures, signature_provenance, ExtractConfig, Method, Outputs, OwnedPrior, Prior,
    SearchConfig,
};
use apsig::Progress;
use numpy::{PyReadonlyArray1, PyReadonlyArrayDyn, PyUntypedArrayMethods};
use pyo3::prelude::*;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;

/// Images per resumable block (as the CLI's).
const BLOCK: usize = 256;

/// See the package's `apsig.signatures` for the parameters.
#[pyfunction]
#[pyo3(signature = (classify, images, directions, method, search, starts=None, batch_size=8192, block=BLOCK, layout="nhwc", parts_dir=None, provenance=None, progress=None, predict_from=None, predict_group=10, median_checks=false))]
#[allow(clippy::too_many_arguments)]
pub fn signatures(
    py: Python<'_>,
    classify: Bound<'_, PyAny>,
    images: PyReadonlyArrayDyn<'_, f32>,
    directions: PyRef<'_, Directions>,
    method: &str,
    search: &str,
    starts: Option<PyReadonlyArray1<'_, f32>>,
    batch_size: usize,
    block: usize,
    layout: &str,
    parts_dir: Option<PathBuf>,
    provenance: Option<BTreeMap<String, String>>,
    progress: Option<Bound<'_, PyAny>>,
    predict_from: Option<PyRef<'_, SignatureSet>>,
    predict_group: usize,
    median_checks: bool,
) -> PyResult<SignatureSet> {
    let dirs = &directions.inner;
    let layout = Layout::parse(layout)?;
    let method = match method {
        "change-bit" => Method::ChangeBit,
        "white-box" => Method::WhiteBox,
        other => return Err(invalid(format!("invalid method: `{other}` (choose change-bit or white-box)"))),
    };
    let search: SearchConfig =
        serde_json::from_str(search).map_err(|e| invalid(format!("invalid search config: {e}")))?;
    search.validate().map_err(py_err)?;
    let cfg = ExtractConfig { method, search };
    let starts = match starts {
        Some(s) => s.as_array().to_vec(),
        None => vec![cfg.search.start; dirs.k()],
    };
    if starts.len() != dirs.k() || starts.iter().any(|s| !s.is_finite() || *s <= 0.0) {
        return Err(invalid(format!("starts: need {} positive finite values, got {}", dirs.k(), starts.len())));
    }
    if batch_size == 0 || block == 0 {
        return Err(invalid("batch_size and block must be at least 1"));
    }
    let prior = match &predict_from {
        Some(set) if set.inner.k != dirs.k() => {
            return Err(invalid(format!(
                "predict_from: signatures of K = {}, the directions have K = {}",
                set.inner.k,
                dirs.k()
            )))
        }
        Some(set) => Some(set.inner.search_prior(predict_group, median_checks).map_err(py_err)?),
        None if median_checks => return Err(invalid("median_checks: needs predict_from")),
        None => None,
    };
    let prior = prior.as_ref().map_or(Prior::Starts(&starts), OwnedPrior::as_prior);
    let (n, x) = images_in("images", &images, dirs.shape, layout)?;
    let progress = PyProgress::new(py, progress)?;
    let mut prov = provenance.unwrap_or_default();

    if let Ok(model) = classify.cast::<Model>() {
        // in process: exactly `apsig signatures` (the local oracle, blocks, threads)
        let net = model.get().net.clone();
        if net.input != dirs.shape {
            return Err(invalid("directions: their shape does not fit the model's input"));
        }
        let mut split = apsig::data::Split::from_bytes(&[], vec![0; n], dirs.shape.h, dirs.shape.w, dirs.shape.c);
        split.images = x;
        let classifier: std::sync::Arc<dyn apsig::model::Classifier> = net;
        let set = py.detach(|| {
            extract(classifier, dirs, &split, &prov, 0..n, None, Some(prior), &cfg, parts_dir.as_deref(), &progress)
        });
        return Ok(SignatureSet { inner: set.map_err(py_err)? });
    }

    if !classify.is_callable() {
        return Err(invalid("classify: neither a callable nor an apsig Model"));
    }
    prov.entry("oracle".into()).or_insert_with(|| "python callable".into());
    let prov = signature_provenance(&prov, dirs, &cfg, &prior, 0..n, None);
    let classify = classify.unbind();
    // the first Python exception raised by the callable (or a signal), re-raised as it was
    let failure: Mutex<Option<PyErr>> = Mutex::new(None);
    let len = dirs.len();
    let set = py.detach(|| {
        progress.begin("signatures", n as u64);
        let set = in_blocks(dirs.k(), 0..n, block, &prov, parts_dir.as_deref(), &progress, |b| {
            let rows = lockstep_signatures(
                dirs,
                &x[b.start * len..b.end * len],
                prior,
                &cfg.search,
                cfg.method,
                batch_size,
                |inputs, m| {
                    Python::attach(|py| ask(py, &classify, inputs, m, dirs.shape, layout)).map_err(|e| {
                        let msg = e.to_string();
                        failure.lock().expect("failure slot").get_or_insert(e);
                        apsig::Error::Oracle(msg)
                    })
                },
            )?;
            progress.advance(b.len() as u64);
            Ok(rows)
        });
        progress.end();
        set
    });
    match (set, failure.into_inner().expect("failure slot")) {
        (Err(_), Some(e)) => Err(e),
        (Err(e), None) => Err(py_err(e)),
        (Ok(set), _) => Ok(SignatureSet { inner: set }),
    }
}

/// One call of the callable on `m` inputs: signals first, then the batch as a float32 array
/// in `layout`; the answer must be `m` integer labels or `[m, classes]` float32 scores.
fn ask(
    py: Python<'_>,
    classify: &Py<PyAny>,
    inputs: &[f32],
    m: usize,
    shape: apsig::nn::Shape,
    layout: Layout,
) -> PyResult<Outputs> {
    py.check_signals()?;
    let batch = images_out(py, inputs.to_vec(), m, shape, layout)?;
    let out = classify.bind(py).call1((batch,))?;
    if let Ok(labels) = out.extract::<PyReadonlyArray1<'_, i64>>() {
        let labels = labels.as_array();
        if labels.iter().any(|&l| l < 0) {
            return Err(invalid("classify returned a negative label"));
        }
        return Ok(Outputs::Labels(labels.iter().map(|&l| l as usize).collect()));
    }
    let scores = out.extract::<PyReadonlyArrayDyn<'_, f32>>().map_err(|_| {
        invalid("classify must return int64 labels [n] or float32 logits [n, classes] as a NumPy array")
    })?;
    let dims = scores.shape().to_vec();
    if dims.len() != 2 {
        return Err(invalid(format!("classify returned logits of shape {dims:?}, expected [{m}, classes]")));
    }
    let values: Vec<f32> = scores.as_array().iter().copied().collect();
    let out = Outputs::Logits { classes: dims[1], values };
    out.check(m).map_err(py_err)?;
    Ok(out)
}

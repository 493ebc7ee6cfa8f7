//! `apsig._native`: the Python bindings of apsig. Thin by design: every decision lives in the
//! `apsig` library (the same code under the CLI and the HTTP service); this crate converts
//! NumPy arrays and Python callables into its types and back, releases the GIL while Rust
//! works, and turns `apsig::Error` into `ApsigError`.
//!
//! The pure-Python package `apsig` (python/apsig) wraps this module with defaults, dtype
//! checks, tqdm progress and type stubs.

mod arrays;
mod callable;
mod objects;
mod pipeline;
mod progress;

use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;

create_exception!(
    _native,
    ApsigError,
    PyException,
    "An error of apsig: its one-line message names the input or file at fault."
);

/// The library's error as a Python exception with its one-line message.
pub(crate) fn py_err(e: apsig::Error) -> PyErr {
    ApsigError::new_err(e.to_string())
}

/// `ApsigError` with a message of the bindings' own.
pub(crate) fn invalid(msg: impl Into<String>) -> PyErr {
    ApsigError::new_err(msg.into())
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("ApsigError", m.py().get_type::<ApsigError>())?;
    m.add_class::<objects::Directions>()?;
    m.add_class::<objects::Model>()?;
    m.add_class::<objects::SignatureSet>()?;
    m.add_class::<objects::Decoder>()?;
    m.add_function(wrap_pyfunction!(callable::signatures, m)?)?;
    m.add_function(wrap_pyfunction!(pipeline::quality, m)?)?;
    m.add_function(wrap_pyfunction!(pipeline::identification, m)?)?;
    m.add_function(wrap_pyfunction!(pipeline::baselines, m)?)?;
    m.add_function(wrap_pyfunction!(pipeline::load_dataset, m)?)?;
    m.add_function(wrap_pyfunction!(pipeline::run_config, m)?)?;
    m.add_function(wrap_pyfunction!(pipeline::study_config, m)?)?;
    m.add_function(wrap_pyfunction!(pipeline::search_config, m)?)?;
    m.add_function(wrap_pyfunction!(pipeline::run, m)?)?;
    m.add_function(wrap_pyfunction!(pipeline::study, m)?)?;
    m.add_function(wrap_pyfunction!(pipeline::compare, m)?)?;
    Ok(())
}

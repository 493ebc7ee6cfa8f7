//! NumPy arrays in and out: images in NHWC or NCHW, checked and turned into apsig's
//! channels-last rows.

use crate::invalid;
use apsig::data::{interleaved_to_planar, planar_to_interleaved};
use apsig::nn::Shape;
use numpy::{PyArray1, PyArrayMethods, PyReadonlyArrayDyn, PyUntypedArrayMethods};
use pyo3::prelude::*;

/// How a batch of images is laid out in a 4-D array.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// `[n, height, width, channels]`, apsig's own.
    Nhwc,
    /// `[n, channels, height, width]`, PyTorch's.
    Nchw,
}

impl Layout {
    pub fn parse(s: &str) -> PyResult<Self> {
        match s.to_ascii_lowercase().as_str() {
            "nhwc" => Ok(Layout::Nhwc),
            "nchw" => Ok(Layout::Nchw),
            other => Err(invalid(format!("invalid layout: `{other}` (choose \"nhwc\" or \"nchw\")"))),
        }
    }

    /// The 4-D shape of `n` images of `s` in this layout.
    pub fn dims(self, n: usize, s: Shape) -> [usize; 4] {
        match self {
            Layout::Nhwc => [n, s.h, s.w, s.c],
            Layout::Nchw => [n, s.c, s.h, s.w],
        }
    }
}

/// `what` as channels-last rows of `shape`: a 4-D array in either layout (told apart by its
/// shape; `layout` decides when both fit), or a 3-D `[n, h, w]` array for one channel. Its row
/// count and values; refuses other shapes and non-finite values.
pub fn images_in(
    what: &str,
    a: &PyReadonlyArrayDyn<'_, f32>,
    shape: Shape,
    layout: Layout,
) -> PyResult<(usize, Vec<f32>)> {
    let dims = a.shape().to_vec();
    let n = dims.first().copied().unwrap_or(0);
    let fits = |l: Layout| dims.len() == 4 && dims == l.dims(n, shape);
    let other = if layout == Layout::Nhwc { Layout::Nchw } else { Layout::Nhwc };
    let found = if fits(layout) {
        layout
    } else if fits(other) {
        other
    } else if dims.len() == 3 && shape.c == 1 && dims[1..] == [shape.h, shape.w] {
        Layout::Nhwc
    } else {
        return Err(invalid(format!(
            "{what}: shape {dims:?} does not fit images of {}x{}x{} (expected [n, {}, {}, {}] or [n, {}, {}, {}])",
            shape.h, shape.w, shape.c, shape.h, shape.w, shape.c, shape.c, shape.h, shape.w
        )));
    };
    if n == 0 {
        return Err(invalid(format!("{what}: no images")));
    }
    let flat: Vec<f32> = match a.as_slice() {
        Ok(s) => s.to_vec(),
        Err(_) => a.as_array().iter().copied().collect(),
    };
    if flat.iter().any(|v| !v.is_finite()) {
        return Err(invalid(format!("{what}: contains a non-finite value (NaN or infinity)")));
    }
    let rows = if found == Layout::Nchw && shape.c > 1 {
        planar_to_interleaved(&flat, shape.h * shape.w, shape.c)
    } else {
        flat
    };
    Ok((n, rows))
}

/// `n` channels-last rows of `shape` as a NumPy array in `layout`.
pub fn images_out<'py>(
    py: Python<'py>,
    rows: Vec<f32>,
    n: usize,
    shape: Shape,
    layout: Layout,
) -> PyResult<Bound<'py, PyAny>> {
    let data = if layout == Layout::Nchw && shape.c > 1 {
        interleaved_to_planar(&rows, shape.h * shape.w, shape.c)
    } else {
        rows
    };
    Ok(PyArray1::from_vec(py, data).reshape(layout.dims(n, shape))?.into_any())
}

/// A flat vector as a NumPy array of `dims`.
pub fn array_out<'py, T: numpy::Element>(py: Python<'py>, v: Vec<T>, dims: &[usize]) -> PyResult<Bound<'py, PyAny>> {
    Ok(PyArray1::from_vec(py, v).reshape(dims.to_vec())?.into_any())
}

/// A `(h, w, c)` tuple as a shape.
pub fn shape_of(t: (usize, usize, usize)) -> Shape {
    Shape::new(t.0, t.1, t.2)
}

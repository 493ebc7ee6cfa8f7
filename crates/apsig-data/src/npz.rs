//! NumPy `.npz` data sets: `x_train`, `y_train`, `x_test`, `y_test` in one zip archive (stored
//! or deflated, as `np.savez` and `np.savez_compressed` write them).
//!
//! Images are `uint8` 0–255 or `float32`/`float64` in `[0, 1]`, shaped `(N, H, W)` (grey),
//! `(N, H, W, C)` or `(N, C, H, W)` with C = 1 or 3. The channel axis is detected: C = 1 or 3 on
//! the last axis means NHWC, else on the second axis NCHW; when both could be channels (say
//! `(N, 3, 5, 3)`) NHWC wins, numpy's and apsig's own convention. Labels are integers
//! (`uint8`, `int32`, `int64`) shaped `(N,)` or `(N, 1)` (Keras' CIFAR arrays).

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use crate::error::{DataError, Result};
use crate::idx::MAX_PAYLOAD_BYTES;
use crate::layout::planar_to_interleaved;
use crate::npy::{Dtype, NpyArray};
use crate::split::{Dataset, Split, MAX_LABEL_EXCLUSIVE};

/// The arrays a data-set `.npz` must hold.
pub const NPZ_KEYS: [&str; 4] = ["x_train", "y_train", "x_test", "y_test"];

/// Where the channels of an images array are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// `(N, H, W)`: grey, one channel.
    Nhw,
    /// `(N, H, W, C)`: channels last.
    Nhwc,
    /// `(N, C, H, W)`: channels first (PyTorch's layout); converted to HWC on load.
    Nchw,
}

impl Layout {
    /// The layout of an images array of this shape, with `(n, rows, cols, channels)`; `None`
    /// when no axis can hold the channels (see the module docs for the rule).
    pub fn detect(shape: &[usize]) -> Option<(Layout, [usize; 4])> {
        let is_ch = |c: usize| c == 1 || c == 3;
        match *shape {
            [n, h, w] => Some((Layout::Nhw, [n, h, w, 1])),
            [n, h, w, c] if is_ch(c) => Some((Layout::Nhwc, [n, h, w, c])),
            [n, c, h, w] if is_ch(c) => Some((Layout::Nchw, [n, h, w, c])),
            _ => None,
        }
    }

    /// `NHW`, `NHWC` or `NCHW`.
    pub fn name(self) -> &'static str {
        match self {
            Layout::Nhw => "NHW",
            Layout::Nhwc => "NHWC",
            Layout::Nchw => "NCHW",
        }
    }
}

/// Loads a data-set `.npz`; the data set is named after the file's stem.
pub(crate) fn load_npz(path: &Path) -> Result<Dataset> {
    let mut zip = open(path)?;
    let mut get = |key: &str| read_entry(&mut zip, path, key);
    let (x_train, y_train, x_test, y_test) = (get("x_train")?, get("y_train")?, get("x_test")?, get("y_test")?);
    let (train, layout, dtype) = split_of(path, ("x_train", x_train), ("y_train", y_train))?;
    let (test, test_layout, test_dtype) = split_of(path, ("x_test", x_test), ("y_test", y_test))?;
    let shape = |s: &Split| (s.rows, s.cols, s.channels);
    if shape(&train) != shape(&test) {
        let (a, b) = (shape(&train), shape(&test));
        return Err(invalid(
            path,
            format!("x_train images are {}x{}x{} but x_test images are {}x{}x{}", a.0, a.1, a.2, b.0, b.1, b.2),
        ));
    }
    let describe = |d: Dtype, l: Layout| {
        let scale = if d == Dtype::U8 { "0-255" } else { "0-1" };
        let moved = if l == Layout::Nchw { ", converted to HWC" } else { "" };
        format!("{} {scale} {}{moved}", d.name(), l.name())
    };
    let (a, b) = (describe(dtype, layout), describe(test_dtype, test_layout));
    let source = if a == b { format!("NumPy .npz, {a}") } else { format!("NumPy .npz, x_train {a}, x_test {b}") };
    let name = path.file_stem().map_or_else(|| "npz".to_string(), |s| s.to_string_lossy().into_owned());
    tracing::info!(path = %path.display(), %source, "loaded .npz data set");
    Ok(Dataset { name, dir: path.to_path_buf(), train, test, source, classes: Vec::new() })
}

/// One array of an `.npz` file, e.g. the true colours the colour generator stores next to the
/// images (`fg_test`).
pub fn read_npz_array(path: &Path, key: &str) -> Result<NpyArray> {
    read_entry(&mut open(path)?, path, key)
}

fn open(path: &Path) -> Result<zip::ZipArchive<BufReader<File>>> {
    let file = File::open(path).map_err(|e| DataError::io(path, "read", e))?;
    zip::ZipArchive::new(BufReader::new(file))
        .map_err(|e| invalid(path, format!("not a readable .npz (zip) archive: {e}")))
}

fn read_entry(zip: &mut zip::ZipArchive<BufReader<File>>, path: &Path, key: &str) -> Result<NpyArray> {
    let member = format!("{key}.npy");
    if zip.index_for_name(&member).is_none() {
        let held: Vec<String> = zip.file_names().map(|n| n.strip_suffix(".npy").unwrap_or(n).to_string()).collect();
        return Err(invalid(
            path,
            format!(
                "no array '{key}' (holds: {}; a data set needs {})",
                if held.is_empty() { "nothing".to_string() } else { held.join(", ") },
                NPZ_KEYS.join(", ")
            ),
        ));
    }
    let mut entry = zip.by_name(&member).map_err(|e| invalid(path, format!("{member}: {e}")))?;
    // A header can claim any size; read at most what a valid array of ours could be.
    let cap = MAX_PAYLOAD_BYTES + (1 << 17);
    // the declared size only sizes the first allocation, and only up to 64 MiB
    let mut bytes = Vec::with_capacity(entry.size().min(1 << 26) as usize);
    (&mut entry)
        .take(cap + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| invalid(path, format!("{member}: corrupt or truncated: {e}")))?;
    if bytes.len() as u64 > cap {
        return Err(invalid(path, format!("{member}: larger than {MAX_PAYLOAD_BYTES} bytes")));
    }
    NpyArray::parse(bytes).map_err(|reason| invalid(path, format!("{member}: {reason}")))
}

/// Images and labels of one split, checked, in HWC `[0, 1]`.
fn split_of(path: &Path, (xk, x): (&str, NpyArray), (yk, y): (&str, NpyArray)) -> Result<(Split, Layout, Dtype)> {
    let (layout, [n, rows, cols, channels]) = Layout::detect(&x.shape).ok_or_else(|| {
        invalid(
            path,
            format!(
                "{xk}: cannot tell the channel axis of shape {:?}: expected (N, H, W), (N, H, W, C) or (N, C, H, W) with C = 1 or 3",
                x.shape
            ),
        )
    })?;
    if n == 0 || rows == 0 || cols == 0 {
        return Err(invalid(path, format!("{xk}: no images (shape {:?})", x.shape)));
    }
    let values = match x.dtype {
        Dtype::U8 => x.as_u8().unwrap_or_default().iter().map(|&p| f32::from(p) / 255.0).collect::<Vec<f32>>(),
        Dtype::F32 | Dtype::F64 => {
            let mut v = Vec::with_capacity(x.len());
            for (i, value) in x.iter_f64().enumerate() {
                if !(0.0..=1.0).contains(&value) {
                    return Err(invalid(
                        path,
                        format!(
                            "{xk}: value {value} at flat index {i} is outside [0, 1] ({} images must be scaled to [0, 1]; uint8 is read as 0-255)",
                            x.dtype.name()
                        ),
                    ));
                }
                v.push(value as f32);
            }
            v
        }
        Dtype::I32 | Dtype::I64 => {
            return Err(invalid(
                path,
                format!("{xk}: {} images are not supported (use uint8 0-255 or float 0-1)", x.dtype.name()),
            ))
        }
    };
    let images = if layout == Layout::Nchw { planar_to_interleaved(&values, rows * cols, channels) } else { values };
    let labels = labels_of(path, yk, &y, n)?;
    Ok((Split { images, labels, n, rows, cols, channels }, layout, x.dtype))
}

/// Labels as `u8`, checked against the image count and [`MAX_LABEL_EXCLUSIVE`].
fn labels_of(path: &Path, yk: &str, y: &NpyArray, n: usize) -> Result<Vec<u8>> {
    if !matches!(y.shape.as_slice(), [_] | [_, 1]) {
        return Err(invalid(path, format!("{yk}: labels must be shaped (N,) or (N, 1), not {:?}", y.shape)));
    }
    let values = y.to_i64().ok_or_else(|| {
        invalid(path, format!("{yk}: {} labels are not supported (use an integer dtype)", y.dtype.name()))
    })?;
    if values.len() != n {
        return Err(invalid(path, format!("{yk} has {} labels for {n} images", values.len())));
    }
    let limit = i64::from(MAX_LABEL_EXCLUSIVE);
    if let Some((i, l)) = values.iter().enumerate().find(|(_, l)| !(0..limit).contains(*l)) {
        return Err(invalid(path, format!("{yk}: label {l} at index {i} is out of range (must be 0..{limit})")));
    }
    Ok(values.into_iter().map(|l| l as u8).collect())
}

/// Writes `arrays` as an `.npz` (deflated, with fixed timestamps so the same arrays give the
/// same bytes), atomically: a temporary file beside `path`, renamed into place once complete.
pub fn write_npz(path: &Path, arrays: &[(&str, &NpyArray)]) -> Result<()> {
    let tmp = temp_beside(path);
    let result = write_zip(&tmp, path, arrays).and_then(|()| {
        std::fs::rename(&tmp, path).map_err(|e| DataError::io(&tmp, format!("rename to {}", path.display()), e))
    });
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Writes the archive into `tmp`; errors name `path`, the file the user asked for.
fn write_zip(tmp: &Path, path: &Path, arrays: &[(&str, &NpyArray)]) -> Result<()> {
    let file = File::create(tmp).map_err(|e| DataError::io(path, "create", e))?;
    let mut zip = zip::ZipWriter::new(BufWriter::new(file));
    let io = |e: std::io::Error| DataError::io(path, "write", e);
    let zerr = |e: zip::result::ZipError| DataError::io(path, "write", std::io::Error::other(e));
    for (key, array) in arrays {
        let bytes = array.to_npy_bytes();
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated)
            .last_modified_time(zip::DateTime::DEFAULT)
            .unix_permissions(0o644)
            .large_file(bytes.len() as u64 >= u32::MAX as u64);
        zip.start_file(format!("{key}.npy"), options).map_err(zerr)?;
        zip.write_all(&bytes).map_err(io)?;
    }
    let file = zip.finish().map_err(zerr)?.into_inner().map_err(|e| io(e.into_error()))?;
    file.sync_all().map_err(io)
}

/// `dir/.name.tmp-<pid>`: same file system as `path`, so the rename is atomic.
pub(crate) fn temp_beside(path: &Path) -> PathBuf {
    let name = path.file_name().map_or_else(|| "out".into(), |s| s.to_string_lossy().into_owned());
    path.with_file_name(format!(".{name}.tmp-{}", std::process::id()))
}

fn invalid(path: &Path, problem: String) -> DataError {
    DataError::Invalid { path: path.to_path_buf(), problem }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_rule() {
        assert_eq!(Layout::detect(&[5, 28, 28]), Some((Layout::Nhw, [5, 28, 28, 1])));
        assert_eq!(Layout::detect(&[5, 32, 32, 3]), Some((Layout::Nhwc, [5, 32, 32, 3])));
        assert_eq!(Layout::detect(&[5, 3, 32, 32]), Some((Layout::Nchw, [5, 32, 32, 3])));
        assert_eq!(Layout::detect(&[5, 1, 28, 28]), Some((Layout::Nchw, [5, 28, 28, 1])));
        // Both axes could hold channels: channels-last wins.
        assert_eq!(Layout::detect(&[5, 3, 8, 3]), Some((Layout::Nhwc, [5, 3, 8, 3])));
        assert_eq!(Layout::detect(&[5, 4, 8, 8]), None);
        assert_eq!(Layout::detect(&[5, 8]), None);
    }
}

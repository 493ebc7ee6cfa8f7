//! The NumPy `.npy` array format (versions 1 to 3): a small header parser and a writer, for
//! the few dtypes image data sets use.
//!
//! Only C-order (`fortran_order: False`) little-endian arrays of `u8`, `i32`, `i64`, `f32` and
//! `f64` are read; anything else is refused with the header's own words, never guessed at.

use crate::idx::MAX_PAYLOAD_BYTES;

const MAGIC: &[u8; 6] = b"\x93NUMPY";
/// Headers longer than this are not arrays numpy wrote.
const MAX_HEADER_BYTES: usize = 1 << 16;

/// Element types this crate reads and writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dtype {
    /// `|u1`: bytes 0–255 (images), or labels.
    U8,
    /// `<i4`: labels.
    I32,
    /// `<i8`: labels (numpy's default integer).
    I64,
    /// `<f4`: pixels in `[0, 1]`.
    F32,
    /// `<f8`: pixels in `[0, 1]`.
    F64,
}

impl Dtype {
    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            Dtype::U8 => 1,
            Dtype::I32 | Dtype::F32 => 4,
            Dtype::I64 | Dtype::F64 => 8,
        }
    }

    /// numpy's `descr` string, as written in the header.
    pub fn descr(self) -> &'static str {
        match self {
            Dtype::U8 => "|u1",
            Dtype::I32 => "<i4",
            Dtype::I64 => "<i8",
            Dtype::F32 => "<f4",
            Dtype::F64 => "<f8",
        }
    }

    /// Short name for messages (`uint8`, `float32`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Dtype::U8 => "uint8",
            Dtype::I32 => "int32",
            Dtype::I64 => "int64",
            Dtype::F32 => "float32",
            Dtype::F64 => "float64",
        }
    }

    fn from_descr(descr: &str) -> Option<Dtype> {
        // `<` little-endian, `|` not applicable (bytes), `=` native: this crate only builds for
        // little-endian targets' data as numpy writes it on them.
        match descr {
            "|u1" | "<u1" | "=u1" | "u1" => Some(Dtype::U8),
            "<i4" | "=i4" => Some(Dtype::I32),
            "<i8" | "=i8" => Some(Dtype::I64),
            "<f4" | "=f4" => Some(Dtype::F32),
            "<f8" | "=f8" => Some(Dtype::F64),
            _ => None,
        }
    }
}

/// A C-order array: its shape, element type and little-endian payload.
#[derive(Clone, Debug, PartialEq)]
pub struct NpyArray {
    /// Dimensions, outermost first.
    pub shape: Vec<usize>,
    /// Element type.
    pub dtype: Dtype,
    data: Vec<u8>,
}

impl NpyArray {
    /// A `uint8` array; panics if `data.len()` is not the product of `shape`.
    pub fn from_u8(shape: &[usize], data: Vec<u8>) -> NpyArray {
        NpyArray::from_raw(shape, Dtype::U8, data)
    }

    /// A `float32` array; panics if the length does not match `shape`.
    pub fn from_f32(shape: &[usize], data: &[f32]) -> NpyArray {
        NpyArray::from_raw(shape, Dtype::F32, data.iter().flat_map(|v| v.to_le_bytes()).collect())
    }

    /// A `float64` array; panics if the length does not match `shape`.
    pub fn from_f64(shape: &[usize], data: &[f64]) -> NpyArray {
        NpyArray::from_raw(shape, Dtype::F64, data.iter().flat_map(|v| v.to_le_bytes()).collect())
    }

    /// An `int64` array; panics if the length does not match `shape`.
    pub fn from_i64(shape: &[usize], data: &[i64]) -> NpyArray {
        NpyArray::from_raw(shape, Dtype::I64, data.iter().flat_map(|v| v.to_le_bytes()).collect())
    }

    /// An `int32` array; panics if the length does not match `shape`.
    pub fn from_i32(shape: &[usize], data: &[i32]) -> NpyArray {
        NpyArray::from_raw(shape, Dtype::I32, data.iter().flat_map(|v| v.to_le_bytes()).collect())
    }

    fn from_raw(shape: &[usize], dtype: Dtype, data: Vec<u8>) -> NpyArray {
        assert_eq!(shape.iter().product::<usize>() * dtype.size(), data.len(), "npy payload does not match its shape");
        NpyArray { shape: shape.to_vec(), dtype, data }
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.data.len() / self.dtype.size()
    }

    /// Whether the array holds no element.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// The payload as bytes, if the dtype is `uint8`.
    pub fn as_u8(&self) -> Option<&[u8]> {
        (self.dtype == Dtype::U8).then_some(&self.data)
    }

    /// Every element as `f64` (exact for all supported dtypes but `i64` beyond 2^53).
    pub fn to_f64(&self) -> Vec<f64> {
        let d = &self.data;
        match self.dtype {
            Dtype::U8 => d.iter().map(|&b| f64::from(b)).collect(),
            Dtype::I32 => d.chunks_exact(4).map(|c| f64::from(i32::from_le_bytes(c.try_into().unwrap()))).collect(),
            Dtype::I64 => d.chunks_exact(8).map(|c| i64::from_le_bytes(c.try_into().unwrap()) as f64).collect(),
            Dtype::F32 => d.chunks_exact(4).map(|c| f64::from(f32::from_le_bytes(c.try_into().unwrap()))).collect(),
            Dtype::F64 => d.chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().unwrap())).collect(),
        }
    }

    /// Every element as `i64`, if the dtype is an integer one.
    pub fn to_i64(&self) -> Option<Vec<i64>> {
        let d = &self.data;
        match self.dtype {
            Dtype::U8 => Some(d.iter().map(|&b| i64::from(b)).collect()),
            Dtype::I32 => {
                Some(d.chunks_exact(4).map(|c| i64::from(i32::from_le_bytes(c.try_into().unwrap()))).collect())
            }
            Dtype::I64 => Some(d.chunks_exact(8).map(|c| i64::from_le_bytes(c.try_into().unwrap())).collect()),
            Dtype::F32 | Dtype::F64 => None,
        }
    }

    /// The array as a version 1.0 `.npy` file.
    pub fn to_npy_bytes(&self) -> Vec<u8> {
        let shape = match self.shape.as_slice() {
            [one] => format!("({one},)"),
            dims => format!("({})", dims.iter().map(usize::to_string).collect::<Vec<_>>().join(", ")),
        };
        let mut header = format!("{{'descr': '{}', 'fortran_order': False, 'shape': {shape}, }}", self.dtype.descr());
        // numpy pads the header with spaces so the payload starts on a 64-byte boundary.
        let unpadded = MAGIC.len() + 2 + 2 + header.len() + 1;
        header.push_str(&" ".repeat(unpadded.next_multiple_of(64) - unpadded));
        header.push('\n');
        let mut out = Vec::with_capacity(MAGIC.len() + 4 + header.len() + self.data.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&[1, 0]);
        out.extend_from_slice(&(header.len() as u16).to_le_bytes());
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(&self.data);
        out
    }

    /// Parses a whole `.npy` file; the error is a reason without the file name, for the caller
    /// to prefix. Never panics on any input.
    pub fn parse(mut bytes: Vec<u8>) -> Result<NpyArray, String> {
        if bytes.len() < MAGIC.len() + 4 || &bytes[..MAGIC.len()] != MAGIC {
            return Err("not a .npy array (bad magic)".to_string());
        }
        let major = bytes[6];
        let (len_bytes, header_len) = match major {
            1 => (2, usize::from(u16::from_le_bytes([bytes[8], bytes[9]]))),
            2 | 3 if bytes.len() >= 12 => (4, u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize),
            2 | 3 => return Err("truncated .npy header".to_string()),
            v => return Err(format!("unsupported .npy version {v}")),
        };
        let start = 8 + len_bytes;
        if header_len > MAX_HEADER_BYTES {
            return Err(format!(".npy header of {header_len} bytes is implausibly long"));
        }
        let Some(header) = bytes.get(start..start + header_len) else {
            return Err("truncated .npy header".to_string());
        };
        let header = std::str::from_utf8(header).map_err(|_| ".npy header is not text".to_string())?;
        let (dtype, shape) = parse_header(header)?;
        let elements = shape
            .iter()
            .try_fold(1usize, |acc, &d| acc.checked_mul(d))
            .and_then(|n| n.checked_mul(dtype.size()))
            .filter(|&b| b as u64 <= MAX_PAYLOAD_BYTES)
            .ok_or_else(|| format!("shape {shape:?} would exceed {MAX_PAYLOAD_BYTES} bytes"))?;
        let body = bytes.len() - (start + header_len);
        if body != elements {
            return Err(format!(
                "payload of {body} bytes does not match shape {shape:?} of {} ({elements} bytes)",
                dtype.name()
            ));
        }
        bytes.drain(..start + header_len);
        Ok(NpyArray { shape, dtype, data: bytes })
    }
}

/// `descr` and `shape` from the header dict; refuses Fortran order and unknown dtypes.
fn parse_header(header: &str) -> Result<(Dtype, Vec<usize>), String> {
    let descr = value_after(header, "descr").ok_or("no 'descr' in .npy header")?;
    let descr = descr
        .strip_prefix(['\'', '"'])
        .and_then(|d| d.split(['\'', '"']).next())
        .ok_or_else(|| format!("unsupported dtype {descr:.40} (structured arrays are not images)"))?;
    let dtype = Dtype::from_descr(descr).ok_or_else(|| {
        format!("unsupported dtype '{descr}' (supported: |u1, <i4, <i8, <f4, <f8; little-endian, no objects)")
    })?;
    let fortran = value_after(header, "fortran_order").ok_or("no 'fortran_order' in .npy header")?;
    if fortran.starts_with("True") {
        return Err("Fortran-order arrays are not supported (save with np.ascontiguousarray)".to_string());
    }
    if !fortran.starts_with("False") {
        return Err("bad 'fortran_order' in .npy header".to_string());
    }
    let shape = value_after(header, "shape").ok_or("no 'shape' in .npy header")?;
    let inner = shape
        .strip_prefix('(')
        .and_then(|s| s.split(')').next())
        .ok_or_else(|| "bad 'shape' in .npy header".to_string())?;
    let shape = inner
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.trim_end_matches('L').parse::<usize>().map_err(|_| format!("bad dimension '{s}' in .npy shape")))
        .collect::<Result<Vec<_>, _>>()?;
    Ok((dtype, shape))
}

/// The text after `'key':` (either quote style), leading spaces skipped.
fn value_after<'a>(header: &'a str, key: &str) -> Option<&'a str> {
    [format!("'{key}'"), format!("\"{key}\"")].iter().find_map(|k| {
        let at = header.find(k.as_str())? + k.len();
        Some(header[at..].trim_start().strip_prefix(':')?.trim_start())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_pads_to_64() {
        let a = NpyArray::from_f32(&[2, 3], &[0.0, 0.25, 0.5, 0.75, 1.0, 0.125]);
        let bytes = a.to_npy_bytes();
        assert_eq!((bytes.len() - 24) % 64, 0);
        assert_eq!(NpyArray::parse(bytes).unwrap(), a);
        let l = NpyArray::from_i64(&[3], &[1, 2, 3]);
        assert!(String::from_utf8_lossy(&l.to_npy_bytes()).contains("'shape': (3,)"));
        assert_eq!(NpyArray::parse(l.to_npy_bytes()).unwrap().to_i64().unwrap(), vec![1, 2, 3]);
    }

    #[test]
    fn reads_numpy_headers_and_refuses_the_rest() {
        let header = |h: &str, payload: usize| {
            let mut v = MAGIC.to_vec();
            v.extend_from_slice(&[1, 0]);
            v.extend_from_slice(&(h.len() as u16).to_le_bytes());
            v.extend_from_slice(h.as_bytes());
            v.extend(std::iter::repeat_n(0u8, payload));
            v
        };
        let ok = NpyArray::parse(header("{'descr': '<f8', 'fortran_order': False, 'shape': (2, 2), }\n", 32)).unwrap();
        assert_eq!((ok.shape.clone(), ok.dtype), (vec![2, 2], Dtype::F64));
        let scalar = NpyArray::parse(header("{'descr': '|u1', 'fortran_order': False, 'shape': (), }", 1)).unwrap();
        assert_eq!(scalar.len(), 1);
        for (h, payload, needle) in [
            ("{'descr': '<f8', 'fortran_order': True, 'shape': (2, 2), }", 32, "Fortran"),
            ("{'descr': '>f8', 'fortran_order': False, 'shape': (2, 2), }", 32, "unsupported dtype '>f8'"),
            ("{'descr': '|O', 'fortran_order': False, 'shape': (2,), }", 16, "unsupported dtype"),
            ("{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (2,), }", 8, "structured"),
            ("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2), }", 15, "does not match"),
            ("{'descr': '<f4', 'fortran_order': False, 'shape': (2, x), }", 16, "bad dimension"),
            ("{'fortran_order': False, 'shape': (2,), }", 2, "no 'descr'"),
            ("{'descr': '|u1', 'fortran_order': False, 'shape': (4294967296, 4294967296), }", 0, "exceed"),
        ] {
            let e = NpyArray::parse(header(h, payload)).unwrap_err();
            assert!(e.contains(needle), "{needle:?} not in {e:?}");
        }
        let good = header("{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }", 8);
        for len in 0..good.len() {
            assert!(NpyArray::parse(good[..len].to_vec()).is_err(), "prefix {len}");
        }
    }
}

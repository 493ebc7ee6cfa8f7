//! IDX file parsing (the MNIST container format), with optional gzip.
//!
//! Parsing is split into pure functions on decompressed bytes (what fuzzers
//! exercise) and thin file readers that add decompression and error context.

use std::io::Read;
use std::path::Path;

use flate2::read::MultiGzDecoder;

use crate::error::{DataError, Result};

/// Magic number of an IDX file of unsigned bytes with three dimensions.
pub const IDX_IMAGES_MAGIC: u32 = 0x0000_0803;
/// Magic number of an IDX file of unsigned bytes with one dimension.
pub const IDX_LABELS_MAGIC: u32 = 0x0000_0801;
/// Largest payload we accept, so a hostile header cannot make us allocate
/// (or a gzip bomb make us inflate) without bound.
pub const MAX_PAYLOAD_BYTES: u64 = 1 << 31;

const IMAGES_HEADER: usize = 16;
const LABELS_HEADER: usize = 8;

/// Reads a file whole and inflates it if it starts with the gzip magic
/// `1f 8b`, so callers need not care whether a data set was compressed.
///
/// Output is capped a little above [`MAX_PAYLOAD_BYTES`]; anything larger
/// cannot be a valid IDX file of ours and is reported as such by the parser.
pub fn read_maybe_gz(path: &Path) -> Result<Vec<u8>> {
    let raw = std::fs::read(path).map_err(|e| DataError::io(path, "read", e))?;
    inflate_maybe_gz(raw, path)
}

/// Inflates `raw` if it starts with the gzip magic, else returns it unchanged; `path` only
/// labels error messages (the fuzzed entry point for compressed input).
pub fn inflate_maybe_gz(raw: Vec<u8>, path: &Path) -> Result<Vec<u8>> {
    if raw.len() >= 2 && raw[0] == 0x1f && raw[1] == 0x8b {
        let cap = MAX_PAYLOAD_BYTES + IMAGES_HEADER as u64 + 1;
        let mut out = Vec::with_capacity(raw.len().saturating_mul(4));
        MultiGzDecoder::new(raw.as_slice())
            .take(cap)
            .read_to_end(&mut out)
            .map_err(|source| DataError::Gzip { path: path.to_path_buf(), source })?;
        Ok(out)
    } else {
        Ok(raw)
    }
}

/// Reads an IDX images file (raw or gzip) and returns `(n, rows, cols, pixels)`.
pub fn read_idx_images(path: &Path) -> Result<(usize, usize, usize, Vec<u8>)> {
    parse_images_owned(read_maybe_gz(path)?, path)
}

/// Reads an IDX labels file (raw or gzip).
pub fn read_idx_labels(path: &Path) -> Result<Vec<u8>> {
    parse_labels_owned(read_maybe_gz(path)?, path)
}

/// Parses decompressed IDX image bytes; `origin` only labels error messages.
///
/// Never panics on any input, which is what makes it fuzzable.
pub fn parse_idx_images(bytes: &[u8], origin: &Path) -> Result<(usize, usize, usize, Vec<u8>)> {
    let (n, rows, cols) = images_header(bytes, origin)?;
    Ok((n, rows, cols, bytes[IMAGES_HEADER..].to_vec()))
}

/// Parses decompressed IDX label bytes; `origin` only labels error messages.
pub fn parse_idx_labels(bytes: &[u8], origin: &Path) -> Result<Vec<u8>> {
    labels_header(bytes, origin)?;
    Ok(bytes[LABELS_HEADER..].to_vec())
}

/// Like [`parse_idx_images`] but reuses the buffer instead of copying the payload.
pub(crate) fn parse_images_owned(bytes: Vec<u8>, origin: &Path) -> Result<(usize, usize, usize, Vec<u8>)> {
    let (n, rows, cols) = images_header(&bytes, origin)?;
    Ok((n, rows, cols, strip_header(bytes, IMAGES_HEADER)))
}

/// Like [`parse_idx_labels`] but reuses the buffer.
pub(crate) fn parse_labels_owned(bytes: Vec<u8>, origin: &Path) -> Result<Vec<u8>> {
    labels_header(&bytes, origin)?;
    Ok(strip_header(bytes, LABELS_HEADER))
}

fn strip_header(mut bytes: Vec<u8>, header: usize) -> Vec<u8> {
    bytes.drain(..header);
    bytes
}

fn be_u32(bytes: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

/// Validates magic, header length, dimensions and exact payload length.
/// Returns the dimensions; on `Ok`, `bytes.len() == header + product(dims)`.
fn check(bytes: &[u8], origin: &Path, magic: u32, kind: &'static str, ndims: usize) -> Result<Vec<usize>> {
    let header = 4 + 4 * ndims;
    if bytes.len() < 4 {
        return Err(DataError::Truncated {
            path: origin.to_path_buf(),
            what: "header",
            expected: header as u64,
            found: bytes.len() as u64,
        });
    }
    let found = be_u32(bytes, 0);
    if found != magic {
        let hint = match found {
            IDX_IMAGES_MAGIC => "; this looks like an IDX images file",
            IDX_LABELS_MAGIC => "; this looks like an IDX labels file",
            _ if bytes[0] == 0x1f && bytes[1] == 0x8b => "; this looks like gzip data that was not decompressed",
            _ => "",
        };
        return Err(DataError::BadMagic {
            path: origin.to_path_buf(),
            found,
            expected: magic,
            kind,
            hint: hint.to_string(),
        });
    }
    if bytes.len() < header {
        return Err(DataError::Truncated {
            path: origin.to_path_buf(),
            what: "header",
            expected: header as u64,
            found: bytes.len() as u64,
        });
    }
    let raw: Vec<u32> = (0..ndims).map(|i| be_u32(bytes, 4 + 4 * i)).collect();
    let bad =
        |reason: &str| DataError::BadDims { path: origin.to_path_buf(), dims: raw.clone(), reason: reason.to_string() };
    if raw.contains(&0) {
        return Err(bad("zero dimension"));
    }
    let payload = raw
        .iter()
        .try_fold(1u64, |acc, &d| acc.checked_mul(u64::from(d)))
        .filter(|&p| p <= MAX_PAYLOAD_BYTES)
        .ok_or_else(|| bad(&format!("payload would exceed {MAX_PAYLOAD_BYTES} bytes")))?;
    let body = (bytes.len() - header) as u64;
    if body < payload {
        return Err(DataError::Truncated {
            path: origin.to_path_buf(),
            what: "payload",
            expected: payload,
            found: body,
        });
    }
    if body > payload {
        return Err(DataError::TrailingBytes { path: origin.to_path_buf(), expected: payload, extra: body - payload });
    }
    Ok(raw.iter().map(|&d| d as usize).collect())
}

fn images_header(bytes: &[u8], origin: &Path) -> Result<(usize, usize, usize)> {
    let d = check(bytes, origin, IDX_IMAGES_MAGIC, "images", 3)?;
    Ok((d[0], d[1], d[2]))
}

fn labels_header(bytes: &[u8], origin: &Path) -> Result<usize> {
    let d = check(bytes, origin, IDX_LABELS_MAGIC, "labels", 1)?;
    Ok(d[0])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn images(n: u32, r: u32, c: u32) -> Vec<u8> {
        let mut v = Vec::new();
        for x in [IDX_IMAGES_MAGIC, n, r, c] {
            v.extend_from_slice(&x.to_be_bytes());
        }
        v.extend((0..n * r * c).map(|i| i as u8));
        v
    }

    #[test]
    fn parses_valid_images_and_labels() {
        let p = Path::new("x");
        let (n, r, c, px) = parse_idx_images(&images(2, 3, 4), p).unwrap();
        assert_eq!((n, r, c, px.len()), (2, 3, 4, 24));
        assert_eq!(px[5], 5);
        let mut l = IDX_LABELS_MAGIC.to_be_bytes().to_vec();
        l.extend_from_slice(&3u32.to_be_bytes());
        l.extend_from_slice(&[7, 8, 9]);
        assert_eq!(parse_idx_labels(&l, p).unwrap(), vec![7, 8, 9]);
    }

    #[test]
    fn rejects_every_prefix_and_never_panics() {
        let p = Path::new("x");
        let good = images(2, 3, 4);
        for len in 0..good.len() {
            assert!(parse_idx_images(&good[..len], p).is_err(), "prefix {len}");
            assert!(parse_idx_labels(&good[..len], p).is_err(), "prefix {len}");
        }
    }

    #[test]
    fn rejects_overflowing_dims() {
        let p = Path::new("big");
        let mut v = Vec::new();
        for x in [IDX_IMAGES_MAGIC, u32::MAX, u32::MAX, u32::MAX] {
            v.extend_from_slice(&x.to_be_bytes());
        }
        let e = parse_idx_images(&v, p).unwrap_err().to_string();
        assert!(e.contains("big") && e.contains("exceed"), "{e}");
        let mut v = Vec::new();
        for x in [IDX_IMAGES_MAGIC, 1 << 16, 1 << 8, 1 << 8] {
            v.extend_from_slice(&x.to_be_bytes());
        }
        assert!(parse_idx_images(&v, p).unwrap_err().to_string().contains("exceed"));
    }

    #[test]
    fn magic_hint_for_swapped_kinds() {
        let e = parse_idx_labels(&images(1, 1, 1), Path::new("f")).unwrap_err().to_string();
        assert!(e.contains("bad magic 0x00000803") && e.contains("looks like an IDX images"), "{e}");
    }
}

//! Artefacts on disk: atomic writes and safetensors files with metadata.
//!
//! Every artefact is written to a temporary file beside its destination and renamed into
//! place, so a crash or a full disk never leaves a half-written file under the real name.

use crate::error::{Error, Result};
use safetensors::{tensor::TensorView, Dtype, SafeTensors};
use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};

/// A content hash (64-bit FNV-1a of the little-endian bytes) used as a fingerprint in
/// provenance: equal fingerprints mean the same values, bit for bit.
pub fn fingerprint_f32(v: &[f32]) -> String {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for x in v {
        for b in x.to_le_bytes() {
            h = (h ^ b as u64).wrapping_mul(0x100_0000_01b3);
        }
    }
    format!("{h:016x}")
}

/// SHA-256 of `bytes` in lower-case hex: how files the user brings (models) are identified
/// in provenance and reports.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// Writes `bytes` to `path` atomically (temp file + fsync + rename).
pub fn atomic_write(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let name = path
        .file_name()
        .ok_or_else(|| Error::invalid("output path", format!("{} has no file name", path.display())))?;
    let tmp: PathBuf = dir.join(format!(".{}.{}.tmp", name.to_string_lossy(), std::process::id()));
    let res = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    res.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::io(path, e)
    })
}

/// A tensor to be written: name, shape and data.
pub enum TensorOut<'a> {
    /// An `f32` tensor.
    F32(&'a str, Vec<usize>, &'a [f32]),
    /// A `u32` tensor.
    U32(&'a str, Vec<usize>, &'a [u32]),
    /// A `u8` tensor.
    U8(&'a str, Vec<usize>, &'a [u8]),
}

/// Writes tensors and string metadata as one safetensors file, atomically.
pub fn write_tensors(path: &Path, tensors: &[TensorOut<'_>], metadata: &BTreeMap<String, String>) -> Result<()> {
    let mut owned: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = Vec::new();
    for t in tensors {
        owned.push(match t {
            TensorOut::F32(n, s, d) => {
                (n.to_string(), Dtype::F32, s.clone(), d.iter().flat_map(|v| v.to_le_bytes()).collect())
            }
            TensorOut::U32(n, s, d) => {
                (n.to_string(), Dtype::U32, s.clone(), d.iter().flat_map(|v| v.to_le_bytes()).collect())
            }
            TensorOut::U8(n, s, d) => (n.to_string(), Dtype::U8, s.clone(), d.to_vec()),
        });
    }
    let views = owned
        .iter()
        .map(|(n, dt, s, b)| {
            TensorView::new(*dt, s.clone(), b)
                .map(|v| (n.clone(), v))
                .map_err(|e| Error::invalid(format!("tensor {n}"), e.to_string()))
        })
        .collect::<Result<Vec<_>>>()?;
    let meta: HashMap<String, String> = metadata.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    let bytes = safetensors::serialize(views, Some(meta)).map_err(|e| Error::invalid("safetensors", e.to_string()))?;
    atomic_write(path, &with_sorted_header(bytes)?)
}

/// One entry of a safetensors header: a tensor's layout, or the `__metadata__` strings.
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(untagged)]
enum HeaderEntry {
    Tensor { dtype: String, shape: Vec<usize>, data_offsets: (usize, usize) },
    Metadata(BTreeMap<String, String>),
}

/// Rewrites a safetensors file's JSON header with every map in sorted key order.
///
/// `safetensors::serialize` lays the data out deterministically but writes the metadata from a
/// `HashMap`, whose order changes from run to run; sorting makes the same tensors and metadata
/// give the same bytes, so artefacts of the same seed and config have the same checksum.
fn with_sorted_header(bytes: Vec<u8>) -> Result<Vec<u8>> {
    let bad = |why: &str| Error::invalid("safetensors", why.to_string());
    let n = u64::from_le_bytes(bytes.get(..8).ok_or_else(|| bad("no header length"))?.try_into().expect("8 bytes"));
    let end = usize::try_from(n).ok().and_then(|n| n.checked_add(8)).filter(|&e| e <= bytes.len());
    let end = end.ok_or_else(|| bad("header longer than the file"))?;
    let header: BTreeMap<String, HeaderEntry> =
        serde_json::from_slice(&bytes[8..end]).map_err(|e| bad(&format!("header: {e}")))?;
    let mut json = serde_json::to_vec(&header).map_err(|e| bad(&format!("header: {e}")))?;
    // the format aligns the data to 8 bytes by padding the header with spaces
    json.resize(json.len().next_multiple_of(8), b' ');
    let mut out = Vec::with_capacity(8 + json.len() + bytes.len() - end);
    out.extend((json.len() as u64).to_le_bytes());
    out.extend(json);
    out.extend(&bytes[end..]);
    Ok(out)
}

/// A safetensors file read fully into memory and checked for structure.
pub struct TensorFile {
    /// Where it was read from (named in errors).
    pub path: PathBuf,
    /// The file's string metadata.
    pub metadata: BTreeMap<String, String>,
    bytes: Vec<u8>,
}

impl TensorFile {
    /// Reads and parses a safetensors file.
    pub fn read(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        Self::parse(path, bytes)
    }

    /// Parses bytes that came from `path` (used for messages only): the fuzzed entry point.
    pub fn parse(path: &Path, bytes: Vec<u8>) -> Result<Self> {
        let (_, meta) = SafeTensors::read_metadata(&bytes)
            .map_err(|e| Error::bad_file(path, format!("not a valid safetensors file ({e})")))?;
        // deserialize validates offsets and sizes of every tensor
        SafeTensors::deserialize(&bytes)
            .map_err(|e| Error::bad_file(path, format!("not a valid safetensors file ({e})")))?;
        let metadata = meta.metadata().clone().unwrap_or_default().into_iter().collect();
        Ok(TensorFile { path: path.to_path_buf(), metadata, bytes })
    }

    fn view(&self, name: &str, dtype: Dtype) -> Result<TensorView<'_>> {
        let st = SafeTensors::deserialize(&self.bytes).map_err(|e| Error::bad_file(&self.path, e.to_string()))?;
        let v = st.tensor(name).map_err(|_| Error::bad_file(&self.path, format!("missing tensor `{name}`")))?;
        if v.dtype() != dtype {
            return Err(Error::bad_file(
                &self.path,
                format!("tensor `{name}` has dtype {:?}, expected {dtype:?}", v.dtype()),
            ));
        }
        Ok(v)
    }

    /// The metadata value for `key`, or an error naming the file.
    pub fn meta(&self, key: &str) -> Result<&str> {
        self.metadata
            .get(key)
            .map(|s| s.as_str())
            .ok_or_else(|| Error::bad_file(&self.path, format!("missing metadata `{key}`")))
    }

    /// An f32 tensor with the expected shape (`None` accepts any); non-finite values are rejected.
    pub fn f32(&self, name: &str, shape: Option<&[usize]>) -> Result<(Vec<usize>, Vec<f32>)> {
        let v = self.view(name, Dtype::F32)?;
        self.check_shape(name, v.shape(), shape)?;
        let data: Vec<f32> = v.data().chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
        if let Some(i) = data.iter().position(|x| !x.is_finite()) {
            return Err(Error::bad_file(&self.path, format!("tensor `{name}` has a non-finite value at index {i}")));
        }
        Ok((v.shape().to_vec(), data))
    }

    /// The `u32` tensor `name` (shape checked when given): its shape and values.
    pub fn u32(&self, name: &str, shape: Option<&[usize]>) -> Result<(Vec<usize>, Vec<u32>)> {
        let v = self.view(name, Dtype::U32)?;
        self.check_shape(name, v.shape(), shape)?;
        Ok((
            v.shape().to_vec(),
            v.data().chunks_exact(4).map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect(),
        ))
    }

    /// The `u8` tensor `name` (shape checked when given): its shape and values.
    pub fn u8(&self, name: &str, shape: Option<&[usize]>) -> Result<(Vec<usize>, Vec<u8>)> {
        let v = self.view(name, Dtype::U8)?;
        self.check_shape(name, v.shape(), shape)?;
        Ok((v.shape().to_vec(), v.data().to_vec()))
    }

    fn check_shape(&self, name: &str, got: &[usize], want: Option<&[usize]>) -> Result<()> {
        match want {
            Some(w) if w != got => {
                Err(Error::bad_file(&self.path, format!("tensor `{name}` has shape {got:?}, expected {w:?}")))
            }
            _ => Ok(()),
        }
    }
}

/// Reads and parses a TOML or JSON file into `T`, naming the file on error.
pub fn read_toml<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    toml::from_str(&text).map_err(|e| Error::bad_file(path, format!("invalid config: {}", e.message())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_tensors_and_metadata_give_the_same_bytes_with_a_sorted_header() {
        let dir = tempfile::tempdir().unwrap();
        let meta: BTreeMap<String, String> = (0..12).map(|i| (format!("key{i:02}"), format!("value {i}"))).collect();
        let (a, b) = ([1.0f32, 2.0, 3.0], [7u8, 8]);
        let write = |name: &str| {
            let path = dir.path().join(name);
            let tensors = [TensorOut::U8("zeta", vec![2], &b), TensorOut::F32("alpha", vec![3], &a)];
            write_tensors(&path, &tensors, &meta).unwrap();
            std::fs::read(path).unwrap()
        };
        // each call hashes the metadata with a fresh random state: without sorting, 12 keys
        // come out in the same order in 1 of 12! calls
        let first = write("a.safetensors");
        for i in 0..4 {
            assert_eq!(first, write(&format!("b{i}.safetensors")));
        }
        let n = u64::from_le_bytes(first[..8].try_into().unwrap()) as usize;
        assert_eq!(n % 8, 0, "data must stay 8-byte aligned");
        let header = std::str::from_utf8(&first[8..8 + n]).unwrap();
        let positions: Vec<usize> = meta.keys().map(|k| header.find(&format!("\"{k}\"")).unwrap()).collect();
        assert!(positions.windows(2).all(|w| w[0] < w[1]), "metadata not sorted: {header}");
        assert!(header.find("\"alpha\"").unwrap() < header.find("\"zeta\"").unwrap());
        // and the file still reads back through the safetensors crate
        let f = TensorFile::parse(Path::new("a.safetensors"), first).unwrap();
        assert_eq!(f.f32("alpha", Some(&[3])).unwrap().1, a);
        assert_eq!(f.u8("zeta", Some(&[2])).unwrap().1, b);
        assert_eq!(f.metadata, meta);
    }
}

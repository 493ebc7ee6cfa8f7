//! CIFAR-10 and CIFAR-100 in their published binary format (Krizhevsky 2009).
//!
//! A record is `<label><3072 pixel bytes>` for CIFAR-10 and `<coarse><fine><3072>` for
//! CIFAR-100 (the fine label, 100 classes, is the one used); the pixels are three 32x32 planes
//! (R, G, B), converted here to HWC. Files are read from the folder the archive unpacks to
//! (`cifar-10-batches-bin/`, `cifar-100-binary/`) or from a folder holding the files directly.

use std::io::Read;
use std::path::{Path, PathBuf};

use crate::error::{DataError, Result};
use crate::idx::MAX_PAYLOAD_BYTES;
use crate::layout::planar_to_interleaved;
use crate::split::{Dataset, Split};

/// Side of a CIFAR image.
const SIDE: usize = 32;
/// Pixel bytes of a record: three 32x32 planes.
const PIXELS: usize = 3 * SIDE * SIDE;

/// Which CIFAR.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CifarKind {
    /// 10 classes, five training batches.
    Cifar10,
    /// 100 fine classes (20 coarse ones are ignored), one training file.
    Cifar100,
}

impl CifarKind {
    /// The folder the published archive unpacks to.
    pub fn folder(self) -> &'static str {
        match self {
            CifarKind::Cifar10 => "cifar-10-batches-bin",
            CifarKind::Cifar100 => "cifar-100-binary",
        }
    }

    /// Training files, in the order their records are concatenated.
    pub fn train_files(self) -> &'static [&'static str] {
        match self {
            CifarKind::Cifar10 => {
                &["data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin", "data_batch_5.bin"]
            }
            CifarKind::Cifar100 => &["train.bin"],
        }
    }

    /// The test file.
    pub fn test_file(self) -> &'static str {
        match self {
            CifarKind::Cifar10 => "test_batch.bin",
            CifarKind::Cifar100 => "test.bin",
        }
    }

    /// The class-name file (one name per line, by label), if present.
    pub fn names_file(self) -> &'static str {
        match self {
            CifarKind::Cifar10 => "batches.meta.txt",
            CifarKind::Cifar100 => "fine_label_names.txt",
        }
    }

    /// Every file a complete copy holds (the class names are optional).
    pub fn required_files(self) -> Vec<&'static str> {
        let mut files = self.train_files().to_vec();
        files.push(self.test_file());
        files
    }

    fn label_bytes(self) -> usize {
        match self {
            CifarKind::Cifar10 => 1,
            CifarKind::Cifar100 => 2,
        }
    }

    fn classes(self) -> u8 {
        match self {
            CifarKind::Cifar10 => 10,
            CifarKind::Cifar100 => 100,
        }
    }

    /// `CIFAR-10` or `CIFAR-100`.
    pub fn title(self) -> &'static str {
        match self {
            CifarKind::Cifar10 => "CIFAR-10",
            CifarKind::Cifar100 => "CIFAR-100",
        }
    }
}

/// The folder holding the batch files of `kind` under `dir`: `dir/<archive folder>` or `dir`
/// itself; `None` when neither holds the test file.
pub(crate) fn files_dir(dir: &Path, kind: CifarKind) -> Option<PathBuf> {
    [dir.join(kind.folder()), dir.to_path_buf()].into_iter().find(|d| d.join(kind.test_file()).is_file())
}

/// Which CIFAR a folder holds, if any.
pub(crate) fn detect(dir: &Path) -> Option<CifarKind> {
    [CifarKind::Cifar10, CifarKind::Cifar100].into_iter().find(|&k| files_dir(dir, k).is_some())
}

/// Required files of `kind` missing from `dir` (all of them when it holds no copy).
pub(crate) fn missing_files(dir: &Path, kind: CifarKind) -> Vec<String> {
    let base = files_dir(dir, kind).unwrap_or_else(|| dir.join(kind.folder()));
    kind.required_files()
        .into_iter()
        .filter(|f| !base.join(f).is_file())
        .map(|f| format!("{}/{f}", kind.folder()))
        .collect()
}

/// Loads a CIFAR copy from `dir` (see [`files_dir`]).
pub(crate) fn load_cifar(dir: &Path, kind: CifarKind, name: &str) -> Result<Dataset> {
    let base = files_dir(dir, kind)
        .ok_or_else(|| DataError::MissingFile { dir: dir.join(kind.folder()), name: kind.test_file().to_string() })?;
    let (train, test) = std::thread::scope(|s| {
        let t = s.spawn(|| read_split(&base, kind, kind.train_files()));
        let test = read_split(&base, kind, &[kind.test_file()]);
        (t.join().unwrap_or_else(|p| std::panic::resume_unwind(p)), test)
    });
    let (train, test) = (train?, test?);
    let classes = std::fs::read_to_string(base.join(kind.names_file()))
        .map(|s| s.lines().map(str::trim).filter(|l| !l.is_empty()).map(str::to_string).collect::<Vec<_>>())
        .ok()
        .filter(|names| names.len() == usize::from(kind.classes()))
        .unwrap_or_default();
    Ok(Dataset {
        name: name.to_string(),
        dir: base,
        train,
        test,
        source: format!("{} binary batches", kind.title()),
        classes,
    })
}

/// Unpacks the batch files (and the class names) of a verified CIFAR archive into
/// `dest/<archive folder>`: into a temporary folder first, renamed into place once every
/// required file is there, so the final folder never holds a partial copy. Other members are
/// skipped, and no member can write outside the temporary folder (only plain files named
/// `<archive folder>/<known name>` are taken).
pub(crate) fn unpack_archive(archive: &Path, kind: CifarKind, dest: &Path) -> Result<()> {
    let final_dir = dest.join(kind.folder());
    let tmp = dest.join(format!(".{}.unpacking-{}", kind.folder(), std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).map_err(|e| DataError::io(&tmp, "create directory", e))?;
    let result = unpack_into(archive, kind, &tmp).and_then(|()| {
        if final_dir.exists() {
            // an incomplete copy (the caller found files missing): replaced, not merged
            tracing::warn!(dir = %final_dir.display(), "replacing an incomplete copy");
            std::fs::remove_dir_all(&final_dir).map_err(|e| DataError::io(&final_dir, "remove", e))?;
        }
        std::fs::rename(&tmp, &final_dir)
            .map_err(|e| DataError::io(&tmp, format!("rename to {}", final_dir.display()), e))
    });
    if result.is_err() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    result
}

fn unpack_into(archive: &Path, kind: CifarKind, tmp: &Path) -> Result<()> {
    let file = std::fs::File::open(archive).map_err(|e| DataError::io(archive, "read", e))?;
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(std::io::BufReader::new(file)));
    let bad = |what: String| DataError::Invalid { path: archive.to_path_buf(), problem: what };
    let mut wanted = kind.required_files();
    wanted.push(kind.names_file());
    let entries = tar.entries().map_err(|e| bad(format!("not a tar.gz archive: {e}")))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| bad(format!("corrupt archive: {e}")))?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let path = entry.path().map_err(|e| bad(format!("corrupt archive: {e}")))?.into_owned();
        let mut parts = path.components().map(|c| c.as_os_str().to_string_lossy().into_owned());
        let (Some(folder), Some(name), None) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        if folder != kind.folder() || !wanted.contains(&name.as_str()) {
            continue;
        }
        let out_path = tmp.join(&name);
        let mut out = std::fs::File::create(&out_path).map_err(|e| DataError::io(&out_path, "create", e))?;
        let copied = std::io::copy(&mut (&mut entry).take(MAX_PAYLOAD_BYTES + 1), &mut out)
            .map_err(|e| bad(format!("corrupt archive at {}: {e}", path.display())))?;
        if copied > MAX_PAYLOAD_BYTES {
            return Err(bad(format!("{} is larger than {MAX_PAYLOAD_BYTES} bytes", path.display())));
        }
        out.sync_all().map_err(|e| DataError::io(&out_path, "write", e))?;
    }
    let missing: Vec<String> = kind
        .required_files()
        .into_iter()
        .filter(|f| !tmp.join(f).is_file())
        .map(|f| format!("{}/{f}", kind.folder()))
        .collect();
    if !missing.is_empty() {
        return Err(bad(format!("archive lacks {}", missing.join(", "))));
    }
    Ok(())
}

fn read_split(base: &Path, kind: CifarKind, files: &[&str]) -> Result<Split> {
    let (mut pixels, mut labels) = (Vec::new(), Vec::new());
    for f in files {
        let path = base.join(f);
        let len = std::fs::metadata(&path).map_err(|e| DataError::io(&path, "read", e))?.len();
        if len > MAX_PAYLOAD_BYTES {
            return Err(DataError::Invalid { path, problem: format!("{len} bytes is too large for CIFAR batches") });
        }
        let bytes = std::fs::read(&path).map_err(|e| DataError::io(&path, "read", e))?;
        let (p, l) = parse_cifar_records(&bytes, kind, &path)?;
        pixels.extend_from_slice(&p);
        labels.extend_from_slice(&l);
    }
    Ok(Split::from_bytes(&pixels, labels, SIDE, SIDE, 3))
}

/// Parses a whole CIFAR binary file into HWC pixels and labels; `origin` only labels errors.
/// Never panics on any input.
pub fn parse_cifar_records(bytes: &[u8], kind: CifarKind, origin: &Path) -> Result<(Vec<u8>, Vec<u8>)> {
    let record = kind.label_bytes() + PIXELS;
    if bytes.is_empty() || !bytes.len().is_multiple_of(record) {
        return Err(DataError::Invalid {
            path: origin.to_path_buf(),
            problem: format!("{} bytes is not a whole number of {record}-byte {} records", bytes.len(), kind.title()),
        });
    }
    let n = bytes.len() / record;
    let mut chw = Vec::with_capacity(n * PIXELS);
    let mut labels = Vec::with_capacity(n);
    for (i, r) in bytes.chunks_exact(record).enumerate() {
        let label = r[kind.label_bytes() - 1];
        if label >= kind.classes() {
            return Err(DataError::BadLabel { path: origin.to_path_buf(), label, index: i, limit: kind.classes() });
        }
        labels.push(label);
        chw.extend_from_slice(&r[kind.label_bytes()..]);
    }
    Ok((planar_to_interleaved(&chw, SIDE * SIDE, 3), labels))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_become_hwc_with_the_fine_label() {
        let mut rec = vec![3u8, 42]; // coarse 3, fine 42
        rec.extend((0..PIXELS).map(|i| (i / (SIDE * SIDE)) as u8 * 100)); // planes 0, 100, 200
        let (px, labels) = parse_cifar_records(&rec, CifarKind::Cifar100, Path::new("t")).unwrap();
        assert_eq!(labels, vec![42]);
        assert_eq!(&px[..6], &[0, 100, 200, 0, 100, 200]);
        let e = parse_cifar_records(&rec[1..], CifarKind::Cifar10, Path::new("t")).unwrap_err().to_string();
        assert!(e.contains("label 42 at index 0"), "{e}");
        let e = parse_cifar_records(&rec[..100], CifarKind::Cifar10, Path::new("t")).unwrap_err().to_string();
        assert!(e.contains("not a whole number of 3073-byte CIFAR-10 records"), "{e}");
    }
}

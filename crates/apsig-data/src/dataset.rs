//! The top-level [`load`] entry point: every format, by path or known name.

use std::path::{Path, PathBuf};

use crate::error::{DataError, Result};
use crate::known::{known, known_names, verify_md5, KnownDataset, Published};
use crate::locate::{find_file, locate, DataOptions, TEST_FILES, TRAIN_FILES};
use crate::npz::NPZ_KEYS;
use crate::split::{Dataset, Split, MAX_LABEL_EXCLUSIVE};
use crate::{cifar, folder, idx};

/// Loads a data set by path or by known name: the one entry point for every format.
///
/// - a `.npz` file: NumPy arrays `x_train, y_train, x_test, y_test` (layout detected);
/// - a directory: IDX files (MNIST style), else `train/` and `test/` image folders, else
///   CIFAR-10/100 binary batches (directly or in the folder their archive unpacks to);
/// - a known name (`mnist`, `fashion-mnist`, `cifar10`, `cifar100`): found by [`locate`]
///   (search, then optional download).
///
/// An existing path wins over a known name. MD5 verification of IDX files applies when
/// `opts.verify` and the directory's name is a known data set.
pub fn load(name_or_path: &str, opts: &DataOptions) -> Result<Dataset> {
    let as_path = Path::new(name_or_path);
    if as_path.is_file() {
        return load_file(as_path);
    }
    if as_path.is_dir() {
        let name = as_path
            .canonicalize()
            .ok()
            .and_then(|p| p.file_name().map(|s| s.to_string_lossy().into_owned()))
            .or_else(|| as_path.file_name().map(|s| s.to_string_lossy().into_owned()))
            .unwrap_or_else(|| name_or_path.to_string());
        return load_directory(as_path, &name, known(&name).filter(|_| opts.verify));
    }
    let Some(ds) = known(name_or_path) else {
        return Err(DataError::UnknownDataset { name: name_or_path.to_string(), known: known_names() });
    };
    let dir = locate(name_or_path, opts)?;
    match &ds.published {
        Published::Idx(_) => load_dir(&dir, name_or_path, Some(ds).filter(|_| opts.verify)),
        Published::CifarArchive { kind, .. } => cifar::load_cifar(&dir, *kind, name_or_path),
    }
}

/// A data set held in one file: a NumPy `.npz` archive.
fn load_file(path: &Path) -> Result<Dataset> {
    match path.extension().and_then(|e| e.to_str()) {
        Some(e) if e.eq_ignore_ascii_case("npz") => crate::npz::load_npz(path),
        _ => Err(DataError::Invalid {
            path: path.to_path_buf(),
            problem: format!(
                "not a data set: a file must be a NumPy .npz ({}); {DIRECTORY_FORMATS}",
                NPZ_KEYS.join(", ")
            ),
        }),
    }
}

/// What a data-set directory may hold, for messages.
const DIRECTORY_FORMATS: &str = "a directory may hold IDX files (train-images-idx3-ubyte[.gz], ...), \
    train/ and test/ folders of <class>/ PNG or JPEG images, or CIFAR-10/100 binary batches";

/// A directory in whichever format its content shows (see [`load`]).
fn load_directory(dir: &Path, name: &str, verify: Option<&KnownDataset>) -> Result<Dataset> {
    let idx_stems = [TRAIN_FILES.0, TRAIN_FILES.1, TEST_FILES.0, TEST_FILES.1];
    if idx_stems.iter().any(|stem| find_file(dir, stem).is_some()) {
        return load_dir(dir, name, verify);
    }
    if folder::is_image_folder(dir) {
        return folder::load_folder(dir, name);
    }
    if let Some(kind) = cifar::detect(dir) {
        return cifar::load_cifar(dir, kind, name);
    }
    Err(DataError::Invalid { path: dir.to_path_buf(), problem: format!("no data set found: {DIRECTORY_FORMATS}") })
}

/// Loads the four IDX files from `dir`, verifying against `verify` if given.
///
/// Public so callers with their own search logic can still reuse the
/// validation (count, shape and label checks).
pub fn load_dir(dir: &Path, name: &str, verify: Option<&KnownDataset>) -> Result<Dataset> {
    tracing::info!(dir = %dir.display(), name, verified = verify.is_some(), "loading data set");
    let (train, test) = std::thread::scope(|s| {
        let t = s.spawn(|| load_split(dir, TRAIN_FILES, verify));
        let test = load_split(dir, TEST_FILES, verify);
        let train = t.join().unwrap_or_else(|p| std::panic::resume_unwind(p));
        (train, test)
    });
    let (train, train_path) = train?;
    let (test, test_path) = test?;
    if (train.rows, train.cols) != (test.rows, test.cols) {
        return Err(DataError::ShapeMismatch {
            train_path,
            train_rows: train.rows,
            train_cols: train.cols,
            test_path,
            test_rows: test.rows,
            test_cols: test.cols,
        });
    }
    Ok(Dataset {
        name: name.to_string(),
        dir: dir.to_path_buf(),
        train,
        test,
        source: "IDX files".to_string(),
        classes: Vec::new(),
    })
}

fn require_file(dir: &Path, stem: &str) -> Result<PathBuf> {
    find_file(dir, stem).ok_or_else(|| DataError::MissingFile { dir: dir.to_path_buf(), name: stem.to_string() })
}

fn read_verified(path: &Path, stem: &str, verify: Option<&KnownDataset>) -> Result<Vec<u8>> {
    let bytes = idx::read_maybe_gz(path)?;
    if let Some(f) = verify.and_then(|ds| ds.file(stem)) {
        verify_md5(&bytes, f.md5_uncompressed, path)?;
    }
    Ok(bytes)
}

fn load_split(
    dir: &Path,
    (img_stem, lbl_stem): (&str, &str),
    verify: Option<&KnownDataset>,
) -> Result<(Split, PathBuf)> {
    let img_path = require_file(dir, img_stem)?;
    let lbl_path = require_file(dir, lbl_stem)?;
    let img_bytes = read_verified(&img_path, img_stem, verify)?;
    let (n, rows, cols, pixels) = idx::parse_images_owned(img_bytes, &img_path)?;
    let lbl_bytes = read_verified(&lbl_path, lbl_stem, verify)?;
    let labels = idx::parse_labels_owned(lbl_bytes, &lbl_path)?;
    if labels.len() != n {
        return Err(DataError::CountMismatch {
            images_path: img_path,
            images: n,
            labels_path: lbl_path,
            labels: labels.len(),
        });
    }
    if let Some((index, &label)) = labels.iter().enumerate().find(|&(_, &l)| l >= MAX_LABEL_EXCLUSIVE) {
        return Err(DataError::BadLabel { path: lbl_path, label, index, limit: MAX_LABEL_EXCLUSIVE });
    }
    Ok((Split::from_bytes(&pixels, labels, rows, cols, 1), img_path))
}

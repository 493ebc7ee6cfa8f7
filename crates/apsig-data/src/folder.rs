//! Image-folder trees: `root/{train,test}/<class>/*.{png,jpg,jpeg}`, read the way torchvision's
//! `ImageFolder` reads them: classes are the sub-folders sorted by name (label 0 is the first),
//! images are every PNG/JPEG file under a class folder, sub-folders included, in sorted path
//! order. Hidden entries (names starting with `.`) and files with other extensions are skipped.
//!
//! Every image must have the size and the kind of the first one: grey (1 channel) or colour
//! (RGB, 3 channels). An alpha channel is dropped, not composited (as PIL's `convert("RGB")`
//! does); 16-bit images are scaled to 8 bits. Train and test must have the same class folders.

use std::path::{Path, PathBuf};

use crate::error::{DataError, Result};
use crate::split::{Dataset, Split, MAX_LABEL_EXCLUSIVE};

/// The split folders of a tree.
const SPLITS: [&str; 2] = ["train", "test"];
/// Extensions read, compared case-insensitively.
const EXTENSIONS: [&str; 3] = ["png", "jpg", "jpeg"];

/// Whether `dir` looks like an image-folder tree (has `train/` and `test/` folders).
pub(crate) fn is_image_folder(dir: &Path) -> bool {
    SPLITS.iter().all(|s| dir.join(s).is_dir())
}

/// One decoded image: size, channels and HWC bytes.
struct Decoded {
    rows: usize,
    cols: usize,
    channels: usize,
    pixels: Vec<u8>,
}

/// Loads an image-folder tree (see the module docs).
pub(crate) fn load_folder(root: &Path, name: &str) -> Result<Dataset> {
    let (train_dir, test_dir) = (root.join(SPLITS[0]), root.join(SPLITS[1]));
    let classes = class_folders(&train_dir)?;
    let test_classes = class_folders(&test_dir)?;
    if classes != test_classes {
        let only = |a: &[String], b: &[String]| a.iter().filter(|c| !b.contains(c)).cloned().collect::<Vec<_>>();
        let list = |v: Vec<String>| if v.is_empty() { "none".to_string() } else { v.join(", ") };
        return Err(invalid(
            root,
            format!(
                "train and test have different class folders (only in train: {}; only in test: {})",
                list(only(&classes, &test_classes)),
                list(only(&test_classes, &classes))
            ),
        ));
    }
    if classes.len() > usize::from(MAX_LABEL_EXCLUSIVE) {
        return Err(invalid(
            &train_dir,
            format!("{} class folders; at most {MAX_LABEL_EXCLUSIVE} are supported", classes.len()),
        ));
    }
    let mut first: Option<(PathBuf, usize, usize, usize)> = None;
    let train = load_split(&train_dir, &classes, &mut first)?;
    let test = load_split(&test_dir, &classes, &mut first)?;
    tracing::info!(root = %root.display(), classes = classes.len(), train = train.n, test = test.n, "loaded image folders");
    Ok(Dataset {
        name: name.to_string(),
        dir: root.to_path_buf(),
        train,
        test,
        source: format!("image folders (PNG/JPEG), {} classes in sorted folder-name order", classes.len()),
        classes,
    })
}

/// Class folder names of a split, sorted (byte order of UTF-8, i.e. Python's `sorted`).
fn class_folders(split_dir: &Path) -> Result<Vec<String>> {
    let mut names = Vec::new();
    for (name, path) in entries(split_dir)? {
        if path.is_dir() {
            names.push(name);
        }
    }
    if names.is_empty() {
        return Err(invalid(split_dir, "no class folders (expected <class>/ folders of .png/.jpg images)".into()));
    }
    names.sort();
    Ok(names)
}

/// Visible entries of a folder as `(name, path)`; names must be UTF-8 (class names are printed).
fn entries(dir: &Path) -> Result<Vec<(String, PathBuf)>> {
    let read = std::fs::read_dir(dir).map_err(|e| DataError::io(dir, "list", e))?;
    let mut out = Vec::new();
    for entry in read {
        let entry = entry.map_err(|e| DataError::io(dir, "list", e))?;
        let path = entry.path();
        let Some(name) = entry.file_name().to_str().map(str::to_string) else {
            return Err(invalid(&path, "name is not valid UTF-8".into()));
        };
        if !name.starts_with('.') {
            out.push((name, path));
        }
    }
    Ok(out)
}

/// Image files under `dir` and its sub-folders, in sorted path order.
fn image_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let mut items = entries(dir)?;
    items.sort();
    for (name, path) in items {
        if path.is_dir() {
            image_files(&path, out)?;
        } else if name.rsplit_once('.').is_some_and(|(_, e)| EXTENSIONS.iter().any(|x| x.eq_ignore_ascii_case(e))) {
            out.push(path);
        }
    }
    Ok(())
}

/// Decodes every image of a split; `first` is the image every other must match.
fn load_split(
    split_dir: &Path,
    classes: &[String],
    first: &mut Option<(PathBuf, usize, usize, usize)>,
) -> Result<Split> {
    let mut files = Vec::new();
    let mut labels = Vec::new();
    for (label, class) in classes.iter().enumerate() {
        let class_dir = split_dir.join(class);
        let before = files.len();
        image_files(&class_dir, &mut files)?;
        if files.len() == before {
            return Err(invalid(&class_dir, "empty class folder (no .png, .jpg or .jpeg files)".into()));
        }
        labels.resize(files.len(), label as u8);
    }
    let decoded = decode_all(&files);
    let mut pixels = Vec::new();
    for (path, image) in files.iter().zip(decoded) {
        let image = image?;
        let (reference, rows, cols, channels) =
            first.get_or_insert_with(|| (path.clone(), image.rows, image.cols, image.channels));
        let (rows, cols, channels) = (*rows, *cols, *channels);
        if image.channels != channels {
            let kind = |c: usize| if c == 1 { "grey" } else { "colour (RGB)" };
            return Err(invalid(
                path,
                format!(
                    "{} but {} is {} (grey and colour cannot be mixed)",
                    kind(image.channels),
                    reference.display(),
                    kind(channels)
                ),
            ));
        }
        if (image.rows, image.cols) != (rows, cols) {
            return Err(invalid(
                path,
                format!(
                    "{}x{} (height x width) but {} is {rows}x{cols} (all images must have one size)",
                    image.rows,
                    image.cols,
                    reference.display()
                ),
            ));
        }
        pixels.extend_from_slice(&image.pixels);
    }
    let (_, rows, cols, channels) = first.clone().unwrap_or_default();
    Ok(Split::from_bytes(&pixels, labels, rows, cols, channels))
}

/// Decodes the files on every core, results in file order.
fn decode_all(files: &[PathBuf]) -> Vec<Result<Decoded>> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(files.len().max(1));
    let chunk = files.len().div_ceil(threads).max(1);
    std::thread::scope(|s| {
        let handles: Vec<_> = files
            .chunks(chunk)
            .map(|part| s.spawn(move || part.iter().map(|p| decode(p)).collect::<Vec<_>>()))
            .collect();
        handles.into_iter().flat_map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p))).collect()
    })
}

fn decode(path: &Path) -> Result<Decoded> {
    let image = image::ImageReader::open(path)
        .map_err(|e| DataError::io(path, "read", e))?
        .with_guessed_format()
        .map_err(|e| DataError::io(path, "read", e))?
        .decode()
        .map_err(|e| invalid(path, format!("cannot decode image: {e}")))?;
    let (cols, rows) = (image.width() as usize, image.height() as usize);
    let (channels, pixels) =
        if image.color().has_color() { (3, image.to_rgb8().into_raw()) } else { (1, image.to_luma8().into_raw()) };
    Ok(Decoded { rows, cols, channels, pixels })
}

fn invalid(path: &Path, problem: String) -> DataError {
    DataError::Invalid { path: path.to_path_buf(), problem }
}

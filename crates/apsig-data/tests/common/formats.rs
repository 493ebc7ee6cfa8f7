//! Small data sets in every format the loader reads, written by the tests themselves.

use apsig_data::{write_npz, NpyArray};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Writes a grey PNG of `rows x cols` whose pixels are `base + index`.
pub fn grey_png(path: &Path, rows: u32, cols: u32, base: u8) {
    let img = image::GrayImage::from_fn(cols, rows, |x, y| image::Luma([base.wrapping_add((y * cols + x) as u8)]));
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    img.save(path).unwrap();
}

/// Writes a solid-colour RGB image (format from the extension: PNG or JPEG).
pub fn rgb_image(path: &Path, rows: u32, cols: u32, rgb: [u8; 3]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let img = image::RgbImage::from_pixel(cols, rows, image::Rgb(rgb));
    let format = image::ImageFormat::from_path(path).unwrap();
    img.save_with_format(path, format).unwrap();
}

/// Writes a solid RGBA PNG (alpha 10: the loader drops it).
pub fn rgba_png(path: &Path, rows: u32, cols: u32, rgb: [u8; 3]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    image::RgbaImage::from_pixel(cols, rows, image::Rgba([rgb[0], rgb[1], rgb[2], 10])).save(path).unwrap();
}

/// A grey PNG folder tree: classes `b`, `a` (written in that order; `a` sorts first), two
/// train and one test image each, 4x3; returns the root.
pub fn grey_tree(root: &Path) -> PathBuf {
    for (split, per_class) in [("train", 2), ("test", 1)] {
        for (c, class) in ["b", "a"].iter().enumerate() {
            for i in 0..per_class {
                grey_png(&root.join(split).join(class).join(format!("{i}.png")), 4, 3, (10 * c + i) as u8);
            }
        }
    }
    root.to_path_buf()
}

/// `n` images `h x w x c` (HWC) with distinct byte values, and labels `i % 10`.
pub fn hwc_bytes(n: usize, h: usize, w: usize, c: usize) -> (Vec<u8>, Vec<u8>) {
    let px = (0..n * h * w * c).map(|i| (i * 7 % 251) as u8).collect();
    (px, (0..n).map(|i| (i % 10) as u8).collect())
}

/// HWC images rearranged to CHW.
pub fn to_chw(hwc: &[u8], n: usize, h: usize, w: usize, c: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(hwc.len());
    for i in 0..n {
        let img = &hwc[i * h * w * c..(i + 1) * h * w * c];
        for ch in 0..c {
            out.extend((0..h * w).map(|p| img[p * c + ch]));
        }
    }
    out
}

/// Writes an `.npz` holding the given arrays.
pub fn npz(path: &Path, arrays: &[(&str, NpyArray)]) {
    let refs: Vec<(&str, &NpyArray)> = arrays.iter().map(|(k, a)| (*k, a)).collect();
    write_npz(path, &refs).unwrap();
}

/// CIFAR records (`label_bytes` = 1 for CIFAR-10, 2 for CIFAR-100: coarse then fine) holding
/// the CHW form of `hwc` 32x32x3 images.
pub fn cifar_records(hwc: &[u8], labels: &[u8], label_bytes: usize) -> Vec<u8> {
    let chw = to_chw(hwc, labels.len(), 32, 32, 3);
    let mut out = Vec::new();
    for (i, &l) in labels.iter().enumerate() {
        if label_bytes == 2 {
            out.push(l / 5); // coarse label: not used
        }
        out.push(l);
        out.extend_from_slice(&chw[i * 3072..(i + 1) * 3072]);
    }
    out
}

/// The CIFAR-10 files (`(name, bytes)`), each training batch holding `per_batch` images and
/// the test batch `test` images; returns them with the HWC train and test pixels and labels.
pub struct CifarFiles {
    pub files: Vec<(String, Vec<u8>)>,
    pub train: (Vec<u8>, Vec<u8>),
    pub test: (Vec<u8>, Vec<u8>),
}

pub fn cifar10_files(per_batch: usize, test: usize) -> CifarFiles {
    let (train_px, train_l) = hwc_bytes(5 * per_batch, 32, 32, 3);
    let (test_px, test_l) = hwc_bytes(test, 32, 32, 3);
    let mut files = Vec::new();
    for b in 0..5 {
        let r = b * per_batch..(b + 1) * per_batch;
        let bytes = cifar_records(&train_px[r.start * 3072..r.end * 3072], &train_l[r], 1);
        files.push((format!("data_batch_{}.bin", b + 1), bytes));
    }
    files.push(("test_batch.bin".into(), cifar_records(&test_px, &test_l, 1)));
    let names = "airplane\nautomobile\nbird\ncat\ndeer\ndog\nfrog\nhorse\nship\ntruck\n\n";
    files.push(("batches.meta.txt".into(), names.as_bytes().to_vec()));
    CifarFiles { files, train: (train_px, train_l), test: (test_px, test_l) }
}

/// Writes `files` into `dir`.
pub fn write_files(dir: &Path, files: &[(String, Vec<u8>)]) {
    std::fs::create_dir_all(dir).unwrap();
    for (name, bytes) in files {
        std::fs::write(dir.join(name), bytes).unwrap();
    }
}

/// A `.tar.gz` of `files` under `folder/`, as the publisher packs CIFAR.
pub fn tar_gz(folder: &str, files: &[(String, Vec<u8>)]) -> Vec<u8> {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut tar = tar::Builder::new(gz);
    for (name, bytes) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        tar.append_data(&mut header, format!("{folder}/{name}"), bytes.as_slice()).unwrap();
    }
    let mut gz = tar.into_inner().unwrap();
    gz.flush().unwrap();
    gz.finish().unwrap()
}

/// Every path under `dir` (recursively), relative to it, sorted.
pub fn tree(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            out.push(p.strip_prefix(base).unwrap().display().to_string());
            if p.is_dir() {
                walk(base, &p, out);
            }
        }
    }
    if dir.exists() {
        walk(dir, dir, &mut out);
    }
    out.sort();
    out
}

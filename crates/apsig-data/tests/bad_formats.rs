//! Bad input in the image-folder, `.npz` and CIFAR formats: each a one-line error naming the
//! offending file (or folder) and the problem; loading writes nothing.

mod common;

use apsig_data::{load, write_npz, DataOptions, NpyArray};
use common::assert_err_contains;
use common::formats::*;
use std::path::Path;

fn load_err(p: &Path) -> String {
    let before = tree(p.parent().unwrap());
    let e = load(p.to_str().unwrap(), &DataOptions::default()).map(|_| ()).unwrap_err().to_string();
    assert_eq!(tree(p.parent().unwrap()), before, "loading wrote something");
    e
}

fn show(p: &Path) -> String {
    p.display().to_string()
}

// ---- image folders ----

#[test]
fn mixed_image_sizes() {
    let t = tempfile::tempdir().unwrap();
    let root = grey_tree(&t.path().join("set"));
    let odd = root.join("test/b/9.png");
    grey_png(&odd, 5, 3, 0);
    let e = load_err(&root);
    assert_err_contains(&e, &[&show(&odd), "5x3 (height x width)", "is 4x3", "one size", "train/a/0.png"]);
}

#[test]
fn grey_mixed_with_colour() {
    let t = tempfile::tempdir().unwrap();
    let root = grey_tree(&t.path().join("set"));
    let odd = root.join("train/b/1.png");
    rgb_image(&odd, 4, 3, [1, 2, 3]);
    assert_err_contains(load_err(&root), &[&show(&odd), "colour (RGB) but", "is grey", "cannot be mixed"]);
}

#[test]
fn empty_class_folder() {
    let t = tempfile::tempdir().unwrap();
    let root = grey_tree(&t.path().join("set"));
    std::fs::remove_file(root.join("test/a/0.png")).unwrap();
    std::fs::write(root.join("test/a/readme.txt"), b"no images here").unwrap();
    assert_err_contains(load_err(&root), &[&show(&root.join("test/a")), "empty class folder"]);
}

#[test]
fn undecodable_image() {
    let t = tempfile::tempdir().unwrap();
    let root = grey_tree(&t.path().join("set"));
    let bad = root.join("train/a/1.png");
    std::fs::write(&bad, b"\x89PNG\r\n\x1a\nthis is not really a png").unwrap();
    assert_err_contains(load_err(&root), &[&show(&bad), "cannot decode image"]);
    let truncated = root.join("train/a/1.png");
    grey_png(&truncated, 4, 3, 0);
    let bytes = std::fs::read(&truncated).unwrap();
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    assert_err_contains(load_err(&root), &[&show(&truncated), "cannot decode image"]);
}

#[test]
fn train_and_test_class_sets_differ() {
    let t = tempfile::tempdir().unwrap();
    let root = grey_tree(&t.path().join("set"));
    grey_png(&root.join("test/c/0.png"), 4, 3, 0);
    assert_err_contains(
        load_err(&root),
        &[&show(&root), "different class folders", "only in train: none", "only in test: c"],
    );
}

#[test]
fn split_without_class_folders() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("set");
    std::fs::create_dir_all(root.join("train")).unwrap();
    std::fs::create_dir_all(root.join("test")).unwrap();
    assert_err_contains(load_err(&root), &[&show(&root.join("train")), "no class folders"]);
}

// ---- .npz ----

fn good_arrays() -> Vec<(&'static str, NpyArray)> {
    let (px, labels) = hwc_bytes(3, 4, 4, 3);
    let y: Vec<i64> = labels.iter().map(|&l| i64::from(l)).collect();
    vec![
        ("x_train", NpyArray::from_u8(&[3, 4, 4, 3], px.clone())),
        ("y_train", NpyArray::from_i64(&[3], &y)),
        ("x_test", NpyArray::from_u8(&[3, 4, 4, 3], px)),
        ("y_test", NpyArray::from_i64(&[3], &y)),
    ]
}

/// The good arrays with `key` replaced (or dropped when `array` is `None`), written to `path`.
fn npz_with(path: &Path, key: &str, array: Option<NpyArray>) {
    let mut arrays = good_arrays();
    arrays.retain(|(k, _)| *k != key);
    if let Some(a) = array {
        arrays.push((key, a));
    }
    npz(path, &arrays);
}

#[test]
fn missing_npz_key() {
    let t = tempfile::tempdir().unwrap();
    let p = t.path().join("set.npz");
    npz_with(&p, "y_test", None);
    assert_err_contains(
        load_err(&p),
        &[&show(&p), "no array 'y_test'", "holds: x_train, y_train, x_test", "needs x_train, y_train, x_test, y_test"],
    );
}

#[test]
fn npz_label_out_of_range() {
    let t = tempfile::tempdir().unwrap();
    let p = t.path().join("set.npz");
    npz_with(&p, "y_train", Some(NpyArray::from_i64(&[3], &[0, 100, 1])));
    assert_err_contains(load_err(&p), &[&show(&p), "y_train: label 100 at index 1 is out of range"]);
    npz_with(&p, "y_test", Some(NpyArray::from_i32(&[3], &[0, 1, -1])));
    assert_err_contains(load_err(&p), &[&show(&p), "y_test: label -1 at index 2 is out of range"]);
    npz_with(&p, "y_test", Some(NpyArray::from_f32(&[3], &[0.0, 1.0, 2.0])));
    assert_err_contains(load_err(&p), &[&show(&p), "y_test: float32 labels are not supported"]);
    npz_with(&p, "y_test", Some(NpyArray::from_i64(&[2], &[0, 1])));
    assert_err_contains(load_err(&p), &[&show(&p), "y_test has 2 labels for 3 images"]);
}

#[test]
fn npz_floats_outside_unit_range() {
    let t = tempfile::tempdir().unwrap();
    let p = t.path().join("set.npz");
    let mut v = vec![0.5f32; 3 * 4 * 4 * 3];
    v[7] = 1.5;
    npz_with(&p, "x_test", Some(NpyArray::from_f32(&[3, 4, 4, 3], &v)));
    assert_err_contains(load_err(&p), &[&show(&p), "x_test: value 1.5 at flat index 7 is outside [0, 1]"]);
    v[7] = f32::NAN;
    npz_with(&p, "x_test", Some(NpyArray::from_f32(&[3, 4, 4, 3], &v)));
    assert_err_contains(load_err(&p), &[&show(&p), "value NaN at flat index 7"]);
}

#[test]
fn npz_shapes_that_cannot_be_images() {
    let t = tempfile::tempdir().unwrap();
    let p = t.path().join("set.npz");
    npz_with(&p, "x_train", Some(NpyArray::from_u8(&[3, 4, 4, 4], vec![0; 192])));
    assert_err_contains(load_err(&p), &[&show(&p), "x_train: cannot tell the channel axis of shape [3, 4, 4, 4]"]);
    npz_with(&p, "x_test", Some(NpyArray::from_u8(&[3, 5, 4, 3], vec![0; 180])));
    assert_err_contains(load_err(&p), &[&show(&p), "x_train images are 4x4x3 but x_test images are 5x4x3"]);
    npz_with(&p, "x_test", Some(NpyArray::from_i64(&[3, 4, 4, 3], &[0; 144])));
    assert_err_contains(load_err(&p), &[&show(&p), "x_test: int64 images are not supported"]);
    npz_with(&p, "x_test", Some(NpyArray::from_u8(&[0, 4, 4, 3], vec![])));
    assert_err_contains(load_err(&p), &[&show(&p), "x_test: no images"]);
}

#[test]
fn npz_that_is_not_an_npz() {
    let t = tempfile::tempdir().unwrap();
    let p = t.path().join("set.npz");
    std::fs::write(&p, b"PK\x03\x04 but not really").unwrap();
    assert_err_contains(load_err(&p), &[&show(&p), "not a readable .npz (zip) archive"]);
    // a member that is not .npy
    let mut zipped = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for k in ["x_train", "y_train", "x_test", "y_test"] {
        zipped.start_file(format!("{k}.npy"), zip::write::SimpleFileOptions::default()).unwrap();
        std::io::Write::write_all(&mut zipped, b"\x93NUMPY\x01\x00\x05\x00{bad}").unwrap();
    }
    std::fs::write(&p, zipped.finish().unwrap().into_inner()).unwrap();
    assert_err_contains(load_err(&p), &[&show(&p), "x_train.npy: no 'descr'"]);
    // a file of another kind
    let q = t.path().join("set.csv");
    std::fs::write(&q, b"1,2,3").unwrap();
    assert_err_contains(load_err(&q), &[&show(&q), "not a data set", ".npz"]);
}

#[test]
fn npz_written_atomically() {
    let t = tempfile::tempdir().unwrap();
    let p = t.path().join("missing-dir").join("set.npz");
    let arrays = good_arrays();
    let refs: Vec<(&str, &NpyArray)> = arrays.iter().map(|(k, a)| (*k, a)).collect();
    let e = write_npz(&p, &refs).unwrap_err();
    assert_err_contains(e, &["missing-dir", "cannot create"]);
    assert!(!t.path().join("missing-dir").exists());
}

// ---- CIFAR ----

#[test]
fn cifar_truncated_batch_and_bad_label() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("c10");
    let mut files = cifar10_files(2, 2).files;
    let b2 = files.iter_mut().find(|(n, _)| n == "data_batch_2.bin").unwrap();
    b2.1.truncate(3073 + 100);
    write_files(&dir, &files);
    let e = load_err(&dir);
    assert_err_contains(
        &e,
        &[&show(&dir.join("data_batch_2.bin")), "3173 bytes is not a whole number of 3073-byte CIFAR-10 records"],
    );

    let mut files = cifar10_files(2, 2).files;
    let test = files.iter_mut().find(|(n, _)| n == "test_batch.bin").unwrap();
    test.1[3073] = 10; // the second record's label
    write_files(&dir, &files);
    assert_err_contains(
        load_err(&dir),
        &[&show(&dir.join("test_batch.bin")), "label 10 at index 1 is out of range (must be < 10)"],
    );

    std::fs::remove_file(dir.join("data_batch_4.bin")).unwrap();
    let e = load_err(&dir);
    assert_err_contains(&e, &[&show(&dir.join("data_batch_4.bin")), "cannot read"]);
}

#[test]
fn directory_of_nothing_known() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("stuff");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("a.txt"), b"x").unwrap();
    assert_err_contains(load_err(&dir), &[&show(&dir), "no data set found", "IDX", "train/ and test/", "CIFAR"]);
}

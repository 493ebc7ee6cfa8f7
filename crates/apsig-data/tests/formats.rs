//! Every format `load` recognises, each written by the test (or by numpy, for the fixtures),
//! read back with the right shape, layout, labels and pixel values.

mod common;

use apsig_data::{load, DataOptions, Dataset, NpyArray};
use common::formats::*;
use std::path::Path;

fn load_path(p: &Path) -> Dataset {
    load(p.to_str().unwrap(), &DataOptions::default()).unwrap_or_else(|e| panic!("{e}"))
}

fn bytes_of(images: &[f32]) -> Vec<u8> {
    images.iter().map(|v| (v * 255.0).round() as u8).collect()
}

#[test]
fn png_folder_classes_sorted_like_image_folder() {
    let t = tempfile::tempdir().unwrap();
    let root = grey_tree(&t.path().join("shapes"));
    // skipped: hidden files, other extensions; read: sub-folders, upper-case extensions
    std::fs::write(root.join("train/a/.DS_Store"), b"junk").unwrap();
    std::fs::write(root.join("train/a/notes.txt"), b"junk").unwrap();
    grey_png(&root.join("train/b/deeper/2.PNG"), 4, 3, 50);
    let ds = load_path(&root);
    assert_eq!(ds.name, "shapes");
    assert_eq!(ds.classes, vec!["a", "b"]);
    assert_eq!(ds.source, "image folders (PNG/JPEG), 2 classes in sorted folder-name order");
    assert_eq!((ds.train.n, ds.train.rows, ds.train.cols, ds.train.channels), (5, 4, 3, 1));
    assert_eq!(ds.test.n, 2);
    // label 0 is folder "a" (written with base 10 + i), label 1 is "b" (base i), then b/deeper
    assert_eq!(ds.train.labels, vec![0, 0, 1, 1, 1]);
    let first: Vec<u8> = (0..12).map(|i| 10 + i).collect();
    assert_eq!(bytes_of(ds.train.image(0)), first);
    assert_eq!(bytes_of(ds.train.image(2)), (0..12).collect::<Vec<u8>>());
    assert_eq!(bytes_of(ds.train.image(4)), (50..62).collect::<Vec<u8>>());
    assert_eq!(ds.test.labels, vec![0, 1]);
}

#[test]
fn jpeg_folder_is_colour_and_alpha_is_dropped() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("pets");
    let colours = [("cat", [200u8, 30, 40]), ("dog", [20, 180, 60])];
    for (class, rgb) in colours {
        rgb_image(&root.join("train").join(class).join("0.jpg"), 16, 8, rgb);
        rgb_image(&root.join("train").join(class).join("1.JPEG"), 16, 8, rgb);
        rgba_png(&root.join("test").join(class).join("0.png"), 16, 8, rgb);
    }
    let ds = load_path(&root);
    assert_eq!((ds.train.n, ds.train.rows, ds.train.cols, ds.train.channels), (4, 16, 8, 3));
    assert_eq!(ds.train.labels, vec![0, 0, 1, 1]);
    assert_eq!(ds.classes, vec!["cat", "dog"]);
    for (s, exact) in [(&ds.train, false), (&ds.test, true)] {
        for i in 0..s.n {
            let want = colours[usize::from(s.labels[i])].1;
            for (p, v) in bytes_of(s.image(i)).iter().enumerate() {
                let diff = (i16::from(*v) - i16::from(want[p % 3])).abs();
                // JPEG is lossy, a little; the PNG's alpha is gone and its colour exact
                assert!(if exact { diff == 0 } else { diff <= 6 }, "image {i} value {p}: {v} vs {:?}", want);
            }
        }
    }
}

#[test]
fn npz_nhwc_and_nchw_give_the_same_images() {
    let t = tempfile::tempdir().unwrap();
    let (n, h, w, c) = (4, 5, 6, 3);
    let (px, labels) = hwc_bytes(n, h, w, c);
    let nhwc = t.path().join("nhwc.npz");
    let y = |l: &[u8]| NpyArray::from_i64(&[l.len()], &l.iter().map(|&v| i64::from(v)).collect::<Vec<_>>());
    npz(
        &nhwc,
        &[
            ("x_train", NpyArray::from_u8(&[n, h, w, c], px.clone())),
            ("y_train", y(&labels)),
            ("x_test", NpyArray::from_u8(&[n, h, w, c], px.clone())),
            ("y_test", y(&labels)),
        ],
    );
    let chw: Vec<f32> = to_chw(&px, n, h, w, c).iter().map(|&b| f32::from(b) / 255.0).collect();
    let nchw = t.path().join("nchw.npz");
    let y32 = NpyArray::from_i32(&[n, 1], &labels.iter().map(|&v| i32::from(v)).collect::<Vec<_>>());
    npz(
        &nchw,
        &[
            ("x_train", NpyArray::from_f32(&[n, c, h, w], &chw)),
            ("y_train", y32.clone()),
            ("x_test", NpyArray::from_f32(&[n, c, h, w], &chw)),
            ("y_test", y32),
            ("extra", NpyArray::from_u8(&[1], vec![0])),
        ],
    );
    let (a, b) = (load_path(&nhwc), load_path(&nchw));
    assert_eq!(a.source, "NumPy .npz, uint8 0-255 NHWC");
    assert_eq!(b.source, "NumPy .npz, float32 0-1 NCHW, converted to HWC");
    assert_eq!((b.name.as_str(), b.train.rows, b.train.cols, b.train.channels), ("nchw", h, w, c));
    assert_eq!(a.train, b.train);
    assert_eq!(a.test, b.test);
    assert_eq!(bytes_of(&a.train.images), px);

    // grey NHW as float64
    let grey: Vec<f64> = (0..2 * 3 * 3).map(|i| f64::from(i) / 17.0).collect();
    let nhw = t.path().join("grey.NPZ");
    let yu8 = NpyArray::from_u8(&[2], vec![3, 7]);
    npz(
        &nhw,
        &[
            ("x_train", NpyArray::from_f64(&[2, 3, 3], &grey)),
            ("y_train", yu8.clone()),
            ("x_test", NpyArray::from_f64(&[2, 3, 3], &grey)),
            ("y_test", yu8),
        ],
    );
    let g = load_path(&nhw);
    assert_eq!(g.source, "NumPy .npz, float64 0-1 NHW");
    assert_eq!((g.train.rows, g.train.cols, g.train.channels, g.train.labels.clone()), (3, 3, 1, vec![3, 7]));
    assert!((g.train.images[17] - 1.0).abs() < 1e-7);
}

/// Files numpy itself wrote (`np.savez`: stored, zip64 headers; `np.savez_compressed`:
/// deflated); the script is in `tests/fixtures/README.md`.
#[test]
fn npz_written_by_numpy() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let a = load_path(&dir.join("numpy_savez_nhwc_u8.npz"));
    let b = load_path(&dir.join("numpy_compressed_nchw_f32.npz"));
    assert_eq!(a.source, "NumPy .npz, uint8 0-255 NHWC");
    assert_eq!(b.source, "NumPy .npz, float32 0-1 NCHW, converted to HWC");
    for (s, n, off) in [(&a.train, 3, 0), (&a.test, 2, 1)] {
        assert_eq!((s.n, s.rows, s.cols, s.channels), (n, 4, 5, 3));
        let want: Vec<u8> = (0..n * 60).map(|i| ((i * 7 + off) % 251) as u8).collect();
        assert_eq!(bytes_of(&s.images), want);
    }
    assert_eq!((a.train.labels.clone(), a.test.labels.clone()), (vec![0, 1, 2], vec![2, 1]));
    for (x, y) in [(&a.train, &b.train), (&a.test, &b.test)] {
        assert_eq!((x.labels.clone(), x.rows, x.cols, x.channels), (y.labels.clone(), y.rows, y.cols, y.channels));
        assert!(x.images.iter().zip(&y.images).all(|(p, q)| (p - q).abs() < 1e-6));
    }
}

#[test]
fn cifar10_and_cifar100_binary_files() {
    let t = tempfile::tempdir().unwrap();
    // CIFAR-10 as the archive unpacks: <dir>/cifar-10-batches-bin/
    let c10 = cifar10_files(2, 3);
    let root = t.path().join("data");
    write_files(&root.join("cifar10/cifar-10-batches-bin"), &c10.files);
    for ds in [
        load_path(&root.join("cifar10")),
        load_path(&root.join("cifar10/cifar-10-batches-bin")),
        load("cifar10", &DataOptions { data_dir: Some(root.clone()), ..Default::default() }).unwrap(),
    ] {
        assert_eq!(ds.source, "CIFAR-10 binary batches");
        assert_eq!((ds.train.n, ds.train.rows, ds.train.cols, ds.train.channels), (10, 32, 32, 3));
        assert_eq!(ds.test.n, 3);
        assert_eq!(bytes_of(&ds.train.images), c10.train.0);
        assert_eq!(ds.train.labels, c10.train.1);
        assert_eq!(bytes_of(&ds.test.images), c10.test.0);
        assert_eq!(ds.classes.len(), 10);
        assert_eq!((ds.classes[0].as_str(), ds.classes[9].as_str()), ("airplane", "truck"));
    }
    assert_eq!(load_path(&root.join("cifar10")).name, "cifar10");

    // CIFAR-100: the fine label (second byte) is the label
    let (px, _) = hwc_bytes(4, 32, 32, 3);
    let fine = [0u8, 99, 42, 7];
    let dir = t.path().join("c100");
    write_files(
        &dir,
        &[
            ("train.bin".into(), cifar_records(&px, &fine, 2)),
            ("test.bin".into(), cifar_records(&px[..2 * 3072], &fine[..2], 2)),
        ],
    );
    let ds = load_path(&dir);
    assert_eq!(ds.source, "CIFAR-100 binary batches");
    assert_eq!((ds.train.labels.clone(), ds.test.n), (fine.to_vec(), 2));
    assert_eq!(bytes_of(&ds.train.images), px);
    assert!(ds.classes.is_empty(), "no fine_label_names.txt, no names");
}

#[test]
fn idx_directories_still_load_as_before() {
    let t = tempfile::tempdir().unwrap();
    let dir = common::write_set(&t.path().join("tiny"), 12, 5);
    let ds = load_path(&dir);
    assert_eq!((ds.source.as_str(), ds.train.n, ds.test.n, ds.train.channels), ("IDX files", 12, 5, 1));
    assert!(ds.classes.is_empty());
}

//! Loads the real MNIST and Fashion-MNIST files shipped with the project.

mod common;

use apsig_data::{load, read_idx_images, read_idx_labels, DataOptions, Dataset};
use common::shared_data;

fn load_real(name: &str) -> Option<Dataset> {
    let Some(root) = shared_data() else {
        eprintln!("SKIPPED: real data not found (../shared/data or $APSIG_DATA_DIR)");
        return None;
    };
    let opts = DataOptions { data_dir: Some(root.clone()), download: false, verify: true };
    let ds = load(name, &opts).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(ds.dir, root.join(name));
    Some(ds)
}

fn histogram(labels: &[u8]) -> [usize; 10] {
    let mut h = [0; 10];
    for &l in labels {
        h[l as usize] += 1;
    }
    h
}

fn check_shape(ds: &Dataset) {
    assert_eq!((ds.train.n, ds.test.n), (60_000, 10_000));
    for s in [&ds.train, &ds.test] {
        assert_eq!((s.rows, s.cols, s.pixels()), (28, 28, 784));
        assert_eq!(s.images.len(), s.n * 784);
        assert_eq!(s.labels.len(), s.n);
        assert_eq!(s.num_classes(), 10);
        assert!(s.images.iter().all(|&p| (0.0..=1.0).contains(&p)));
        assert!(s.images.contains(&1.0), "some pixel should be 255");
    }
}

#[test]
fn mnist_loads_and_verifies() {
    let Some(ds) = load_real("mnist") else { return };
    assert_eq!(ds.name, "mnist");
    check_shape(&ds);
    let h = histogram(&ds.train.labels);
    assert!(h.iter().all(|&c| (5_000..7_000).contains(&c)), "{h:?}");
    assert_eq!(h[1], 6742);
    let h = histogram(&ds.test.labels);
    assert!(h.iter().all(|&c| (800..1_200).contains(&c)), "{h:?}");
    // Well-known first labels of MNIST train: 5 0 4 1 9.
    assert_eq!(&ds.train.labels[..5], &[5, 0, 4, 1, 9]);
    let mean: f64 = ds.train.images.iter().map(|&p| f64::from(p)).sum::<f64>() / ds.train.images.len() as f64;
    assert!((mean - 0.1307).abs() < 1e-3, "mean {mean}");
}

#[test]
fn fashion_mnist_loads_and_verifies() {
    let Some(ds) = load_real("fashion-mnist") else {
        return;
    };
    assert_eq!(ds.name, "fashion-mnist");
    check_shape(&ds);
    assert_eq!(histogram(&ds.train.labels), [6_000; 10]);
    assert_eq!(histogram(&ds.test.labels), [1_000; 10]);
}

#[test]
fn load_by_directory_path_and_raw_readers() {
    let Some(root) = shared_data() else { return };
    let dir = root.join("mnist");
    let ds = load(dir.to_str().unwrap(), &DataOptions::default()).unwrap();
    assert_eq!(ds.name, "mnist");
    assert_eq!(ds.test.n, 10_000);
    let (n, r, c, px) = read_idx_images(&dir.join("t10k-images-idx3-ubyte.gz")).unwrap();
    assert_eq!((n, r, c, px.len()), (10_000, 28, 28, 7_840_000));
    assert_eq!(ds.test.image(3)[300], f32::from(px[3 * 784 + 300]) / 255.0);
    let labels = read_idx_labels(&dir.join("t10k-labels-idx1-ubyte.gz")).unwrap();
    assert_eq!(labels, ds.test.labels);
    let sub = ds.test.subset(&[7, 3, 7]);
    assert_eq!((sub.n, sub.labels.len(), sub.images.len()), (3, 3, 3 * 784));
    assert_eq!(sub.image(1), ds.test.image(3));
    assert_eq!(sub.labels[2], ds.test.labels[7]);
}

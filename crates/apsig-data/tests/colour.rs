//! The colour benchmark generator: deterministic bytes, a file the loader reads back, pixels
//! that follow the blend formula.

mod common;

use apsig_data::colour::{read_true_colours, write_colour_benchmark, COLOUR_SIDE, PALETTE};
use apsig_data::{load, load_dir, DataOptions, Dataset};
use common::*;

/// The first images of real MNIST when present (else a synthetic IDX set), kept small so the
/// test takes well under a second.
fn grey_source(root: &std::path::Path) -> Dataset {
    let ds = match shared_data() {
        Some(d) => load("mnist", &DataOptions { data_dir: Some(d), ..Default::default() }).unwrap(),
        None => {
            eprintln!("real MNIST not found: a synthetic grey set instead");
            load_dir(&write_set(&root.join("grey"), 300, 50), "grey", None).unwrap()
        }
    };
    let mut small = ds.clone();
    small.train = ds.train.subset(&(0..300).collect::<Vec<_>>());
    small.test = ds.test.subset(&(0..50).collect::<Vec<_>>());
    small
}

#[test]
fn same_seed_same_bytes_and_the_loader_reads_it() {
    let t = tempfile::tempdir().unwrap();
    let grey = grey_source(t.path());
    let (a, b, c) = (t.path().join("a.npz"), t.path().join("b.npz"), t.path().join("c.npz"));
    assert_eq!(write_colour_benchmark(&grey, &a, COLOUR_SIDE, 1).unwrap(), (300, 50));
    write_colour_benchmark(&grey, &b, COLOUR_SIDE, 1).unwrap();
    write_colour_benchmark(&grey, &c, COLOUR_SIDE, 2).unwrap();
    let bytes = std::fs::read(&a).unwrap();
    assert_eq!(bytes, std::fs::read(&b).unwrap(), "same seed, different bytes");
    assert_ne!(bytes, std::fs::read(&c).unwrap(), "the seed changes nothing");
    // only the three outputs: no temporary file left behind
    assert_eq!(std::fs::read_dir(t.path()).unwrap().count(), 3 + usize::from(shared_data().is_none()));

    let ds = load(a.to_str().unwrap(), &DataOptions::default()).unwrap();
    assert_eq!(ds.name, "a");
    assert_eq!(ds.source, "NumPy .npz, uint8 0-255 NHWC");
    for (s, g) in [(&ds.train, &grey.train), (&ds.test, &grey.test)] {
        assert_eq!((s.n, s.rows, s.cols, s.channels), (g.n, 32, 32, 3));
        assert_eq!(s.labels, g.labels);
    }
    // every pixel is the blend of its image's colours by the grey value (padding: g = 0)
    let truth = read_true_colours(&a, "test").unwrap();
    let (fg, bg) = (truth.fg, truth.bg);
    assert_eq!(fg.len(), 50);
    let palette: Vec<[u8; 3]> = PALETTE.iter().map(|p| p.1).collect();
    for i in 0..50 {
        assert!(fg[i] != bg[i] && palette.contains(&fg[i]) && palette.contains(&bg[i]));
        let (img, src) = (ds.test.image(i), grey.test.image(i));
        for y in 0..32 {
            for x in 0..32 {
                let g = if (2..30).contains(&y) && (2..30).contains(&x) { src[(y - 2) * 28 + x - 2] } else { 0.0 };
                for ch in 0..3 {
                    let want = (g * f32::from(fg[i][ch]) + (1.0 - g) * f32::from(bg[i][ch])) / 255.0;
                    let got = img[(y * 32 + x) * 3 + ch];
                    assert!((got - want).abs() <= 0.5 / 255.0 + 1e-6, "image {i} ({y},{x}) ch {ch}: {got} vs {want}");
                }
            }
        }
    }
    // colours are spread over the palette, not stuck on a few
    let fg_train = read_true_colours(&a, "train").unwrap().fg;
    for p in &palette {
        assert!(fg_train.iter().filter(|c| *c == p).count() > 10, "{p:?} too rare");
    }
}

#[test]
fn colour_source_refused_with_its_path_and_nothing_written() {
    let t = tempfile::tempdir().unwrap();
    let grey = grey_source(t.path());
    let rgb = t.path().join("rgb.npz");
    write_colour_benchmark(&grey, &rgb, COLOUR_SIDE, 1).unwrap();
    let colour = load(rgb.to_str().unwrap(), &DataOptions::default()).unwrap();
    let out = t.path().join("again.npz");
    let e = write_colour_benchmark(&colour, &out, COLOUR_SIDE, 1).unwrap_err();
    assert_err_contains(e, &["rgb.npz", "needs grey images"]);
    assert!(!out.exists());
    let e = write_colour_benchmark(&grey, &out, 16, 1).unwrap_err();
    assert_err_contains(e, &["28x28 images do not fit in 16x16"]);
    assert!(!out.exists());
}

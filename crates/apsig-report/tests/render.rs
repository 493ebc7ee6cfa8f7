//! Render figures, decode the PNG bytes and check what was drawn.
//! Demo PNGs are written under `target/tmp/apsig-report-demo/` for viewing.

use apsig_report::{GridRow, ImageGrid, LineChart, ReportError, Series, VLine};
use image::RgbImage;

fn decode(png: &[u8]) -> RgbImage {
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    image::load_from_memory(png).unwrap().to_rgb8()
}

fn save_demo(name: &str, png: &[u8]) {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("apsig-report-demo");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(name), png).unwrap();
}

fn non_white(img: &RgbImage, xs: std::ops::Range<u32>, ys: std::ops::Range<u32>) -> usize {
    ys.flat_map(|y| xs.clone().map(move |x| (x, y))).filter(|&(x, y)| img.get_pixel(x, y).0 != [255, 255, 255]).count()
}

fn demo_chart() -> LineChart {
    let mut c = LineChart::new("Queries to first flip", "epsilon", "change probability");
    for (k, name) in ["pixel 3", "pixel 17", "pixel 200", "pixel 511", "pixel 600"].iter().enumerate() {
        let pts = (0..=20)
            .map(|i| {
                let x = i as f64 * 0.05;
                (x, 1.0 / (1.0 + (-(x - 0.2 * k as f64) * 12.0).exp()))
            })
            .collect();
        c.series.push(Series::new(*name, pts));
    }
    c.series[0].points.push((f64::NAN, 0.5));
    c.series[1].points.push((0.3, f64::INFINITY));
    c.vlines.push(VLine::new(0.2, "flip point eps_1"));
    c.vlines.push(VLine::new(0.4, "flip point eps_2"));
    c
}

#[test]
fn chart_renders_with_expected_size_and_content() {
    let c = demo_chart();
    let png = c.render_png().unwrap();
    save_demo("chart.png", &png);
    let img = decode(&png);
    assert_eq!((img.width(), img.height()), (800, 500));
    // Corners are background.
    assert_eq!(img.get_pixel(0, 0).0, [255; 3]);
    assert_eq!(img.get_pixel(799, 499).0, [255; 3]);
    // Title band, x-axis label band and y-axis label band contain text.
    assert!(non_white(&img, 200..600, 0..35) > 50, "title missing");
    assert!(non_white(&img, 300..500, 470..500) > 30, "x label missing");
    assert!(non_white(&img, 0..30, 150..350) > 30, "y label missing");
    // Every palette colour of the first series pair appears somewhere.
    let has = |rgb: [u8; 3]| img.pixels().any(|p| p.0 == rgb);
    assert!(has([31, 119, 180]) && has([214, 39, 40]), "series colours missing");
}

#[test]
fn chart_custom_size_and_log_axes() {
    let mut c = LineChart::new("log-log", "queries", "error");
    c.width = 640;
    c.height = 400;
    c.log_x = true;
    c.log_y = true;
    c.series.push(Series::new(
        "mse",
        vec![(0.0, 1.0), (1.0, 1.0), (10.0, 0.1), (100.0, 0.01), (1000.0, -1.0), (1e4, 1e-4)],
    ));
    c.series.push(Series::new("empty one", vec![]));
    c.vlines.push(VLine::new(50.0, "budget"));
    c.vlines.push(VLine::new(-5.0, "skipped on log axis"));
    let png = c.render_png().unwrap();
    save_demo("chart_log.png", &png);
    let img = decode(&png);
    assert_eq!((img.width(), img.height()), (640, 400));
    assert!(img.pixels().any(|p| p.0 == [31, 119, 180]));
}

#[test]
fn chart_constant_series_renders() {
    let mut c = LineChart::new("", "x", "y");
    c.series.push(Series::new("flat", vec![(1.0, 2.0)]));
    let img = decode(&c.render_png().unwrap());
    assert_eq!((img.width(), img.height()), (800, 500));
}

#[test]
fn chart_bad_inputs() {
    let c = LineChart::new("t", "x", "y");
    assert!(matches!(c.render_png(), Err(ReportError::BadInput(_))));

    let mut c = LineChart::new("t", "x", "y");
    c.series.push(Series::new("a", vec![]));
    c.series.push(Series::new("b", vec![(f64::NAN, 1.0), (1.0, f64::NEG_INFINITY)]));
    assert!(matches!(c.render_png(), Err(ReportError::BadInput(_))));

    let mut c = LineChart::new("t", "x", "y");
    c.log_y = true;
    c.series.push(Series::new("a", vec![(1.0, 0.0), (2.0, -1.0)]));
    assert!(matches!(c.render_png(), Err(ReportError::BadInput(_))));

    let mut c = demo_chart();
    c.width = 0;
    let err = c.render_png().unwrap_err();
    assert!(matches!(err, ReportError::BadInput(_)));
    assert!(!err.to_string().contains('\n'));
}

fn digit(phase: usize) -> Vec<f32> {
    (0..28 * 28)
        .map(|i| {
            let (y, x) = ((i / 28) as f32 - 13.5, (i % 28) as f32 - 13.5);
            let r = (x * x + y * y).sqrt();
            let ring = (1.0 - ((r - 8.0 - phase as f32) / 2.5).powi(2)).max(0.0);
            ring * 1.1 - 0.05 // slightly outside [0,1] on purpose (clamped)
        })
        .collect()
}

#[test]
fn grid_renders_mnist_look() {
    let originals: Vec<Vec<f32>> = (0..4).map(digit).collect();
    let recon: Vec<Vec<f32>> =
        originals.iter().map(|d| d.iter().map(|v| (v * 0.8 + 0.1).clamp(0.0, 1.0)).collect()).collect();
    let grid = ImageGrid {
        rows: vec![
            GridRow { label: "original".into(), images: originals.iter().map(Vec::as_slice).collect() },
            GridRow { label: "reconstruction".into(), images: recon.iter().map(Vec::as_slice).collect() },
        ],
        img_h: 28,
        img_w: 28,
        channels: 1,
        scale: 3,
        title: Some("MNIST reconstructions".into()),
    };
    let png = grid.render_png().unwrap();
    save_demo("grid.png", &png);
    let img = decode(&png);
    // 4 images of 84px with 2px gaps, plus label column and 8px padding.
    let grid_w = 4 * 84 + 3 * 2;
    assert!(img.width() > grid_w + 16 && img.width() < grid_w + 16 + 200);
    assert!(img.height() >= 2 * 84 + 2 + 16);
    // The image block sits at the right edge (8px pad); its top-left corner
    // pixel is background of the digit: black (value -0.05 clamps to 0).
    let x0 = img.width() - 8 - grid_w;
    let y0 = img.height() - 8 - (2 * 84 + 2);
    assert_eq!(img.get_pixel(x0, y0).0, [0; 3]);
    assert_eq!(img.get_pixel(x0 - 1, y0).0, [255; 3], "label column is white page");
    // Label area has dark text.
    assert!(non_white(&img, 0..x0, y0..y0 + 84) > 20);
}

#[test]
fn grid_default_constructor_scale_is_3() {
    let px = vec![0.5f32; 4];
    let g = ImageGrid::new(2, 2).with_row("", vec![&px]);
    assert_eq!(g.scale, 3);
    let img = decode(&g.render_png().unwrap());
    assert_eq!((img.width(), img.height()), (6 + 16, 6 + 16));
    assert_eq!(img.get_pixel(8, 8).0, [128; 3]);
    assert_eq!(img.get_pixel(13, 13).0, [128; 3]);
    assert_eq!(img.get_pixel(14, 14).0, [255; 3]);
}

#[test]
fn grid_bad_inputs() {
    let ok = vec![0.0f32; 784];
    let short = vec![0.0f32; 783];
    let g = ImageGrid::new(28, 28).with_row("original", vec![&ok, &ok]).with_row("reconstruction", vec![&ok, &short]);
    match g.render_png() {
        Err(ReportError::BadInput(msg)) => {
            assert!(msg.contains("row 1") && msg.contains("reconstruction") && msg.contains("image 1"), "{msg}");
        }
        other => panic!("expected BadInput, got {other:?}"),
    }
    assert!(matches!(ImageGrid::new(28, 28).render_png(), Err(ReportError::BadInput(_))));
    let g = ImageGrid::new(28, 28).with_row("empty", vec![]);
    assert!(matches!(g.render_png(), Err(ReportError::BadInput(_))));
    let mut g = ImageGrid::new(28, 28).with_row("x", vec![&ok]);
    g.scale = 0;
    assert!(matches!(g.render_png(), Err(ReportError::BadInput(_))));
    let g = ImageGrid::new(0, 28).with_row("x", vec![&ok]);
    assert!(matches!(g.render_png(), Err(ReportError::BadInput(_))));
    let mut g = ImageGrid::new(28, 28).with_row("x", vec![&ok]);
    g.scale = 1000;
    assert!(matches!(g.render_png(), Err(ReportError::BadInput(_))));
}

#[test]
fn markdown_table_escapes_pipes() {
    let t =
        apsig_report::markdown_table(&["metric", "value"], &[vec!["a|b".into(), apsig_report::fmt_num(0.12345, 3)]]);
    assert_eq!(t, "| metric | value |\n| --- | --- |\n| a\\|b | 0.123 |\n");
}

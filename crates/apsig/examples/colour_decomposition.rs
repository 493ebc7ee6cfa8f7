//! Why a colour run's foreground error is what it is: splits `eval::colour`'s foreground error of
//! a finished run's reconstructions into the colour the decoder paints its own shape with and the
//! shape it paints.
//! `APSIG_DATA_DIR=... cargo run --release -p apsig --example colour_decomposition -- RUN DATASET`
//! (e.g. `runs/colour-mnist-32 data/colour-mnist-32.npz`). Prints, over the secrets that have a
//! foreground:
//! - the foreground error as the report scores it (on the original's foreground mask);
//! - own colour: the reconstruction's foreground colour measured on its OWN masks, against the
//!   original's (what the colour alone costs, wherever the shape went);
//! - per-channel hits: how often that own colour is on the right side of 0.5 in each channel (a
//!   decoder that decided each channel would score 1 - hits), and the whole colour right;
//! - shape alone: the original's two colours painted onto the reconstruction's ink image, then
//!   scored like the first line (what the shape alone costs with every colour right), twice,
//!   because the ink image has no natural scale: ink divided by its maximum (strict: a stroke
//!   drawn fainter than its brightest pixel counts as partly missing), and ink divided by the
//!   reconstruction's own contrast (the RMS distance of its own two colours), clipped at 1
//!   (lenient: its typical stroke counts as full). The split of the error between shape and colour
//!   is not unique; the two bracket it;
//! - the palette decision (`decoder::Palette`, learnt from the data set's training split) applied
//!   to these reconstructions: its foreground and background errors and MSE beside the
//!   reconstructions' own, or why the data has no palette. (For a run made with
//!   `decoder.palette`, the reconstructions are already decided.)
use apsig::decoder::Palette;
use apsig::eval::colour::{colour_fidelity, ink, mean_colours, stroke, two_colours};
use apsig::io::TensorFile;
use apsig::pipeline::image_shape;
use std::path::Path;

fn main() {
    let a: Vec<String> = std::env::args().collect();
    let run = Path::new(&a[1]);
    let data = apsig_data::load(&a[2], &apsig_data::DataOptions::default()).unwrap();
    let image = image_shape(&data.test);
    let file = TensorFile::read(&run.join("reconstructions-test.safetensors")).unwrap();
    let (_, indices) = file.u32("indices", None).unwrap();
    let (_, recons) = file.f32("reconstructions", None).unwrap();
    let len = image.len();
    let originals: Vec<f32> =
        indices.iter().flat_map(|&i| data.test.images[i as usize * len..(i as usize + 1) * len].to_vec()).collect();
    let baseline = mean_colours(&data.train.images, image).expect("a data set with a foreground");
    let scored = colour_fidelity(&recons, &originals, image, &baseline);

    let err = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| (x - y).abs() as f64).sum::<f64>() / a.len() as f64;
    let (mut own, mut hits, mut whole, mut strict, mut lenient, mut n) = (0.0, 0.0, 0.0, 0.0, 0.0, 0usize);
    for (r, o) in recons.chunks_exact(len).zip(originals.chunks_exact(len)) {
        let Some((fg, bg)) = two_colours(o, image) else { continue };
        let Some((own_fg, own_bg)) = two_colours(r, image) else { continue };
        own += err(&own_fg, &fg);
        let right: Vec<bool> = own_fg.iter().zip(&fg).map(|(x, y)| (*x > 0.5) == (*y > 0.5)).collect();
        hits += right.iter().filter(|&&b| b).count() as f64 / right.len() as f64;
        whole += right.iter().all(|&b| b) as u8 as f64;
        // the reconstruction's ink, painted with the original's colours at two scales
        let d = ink(r, image);
        let far = d.iter().copied().fold(1e-6f32, f32::max);
        let (fg, bg) = (&fg, &bg);
        let painted = |mask: Vec<f32>| -> Vec<f32> {
            mask.iter().flat_map(|&s| (0..image.c).map(move |ch| bg[ch] + s * (fg[ch] - bg[ch]))).collect()
        };
        let by_max = d.iter().map(|v| v / far).collect();
        strict += colour_fidelity(&painted(by_max), o, image, &baseline).foreground_error;
        let by_contrast = stroke(r, image, &own_fg, &own_bg);
        lenient += colour_fidelity(&painted(by_contrast), o, image, &baseline).foreground_error;
        n += 1;
    }
    let m = |s: f64| s / n.max(1) as f64;
    println!(
        "{} secrets with a foreground ({} scored by the report)\n\
         foreground error as scored      {:.4}  (mean-colour baseline {:.4})\n\
         own colour, own masks           {:.4}\n\
         per-channel hits of own colour  {:.1}%  (whole colour right {:.1}%)\n\
         shape alone, true colours       {:.4}  (ink / its maximum)\n\
         shape alone, true colours       {:.4}  (ink / own contrast, clipped at 1)",
        n,
        scored.images,
        scored.foreground_error,
        scored.baseline_foreground_error,
        m(own),
        100.0 * m(hits),
        100.0 * m(whole),
        m(strict),
        m(lenient),
    );
    let mse =
        |r: &[f32]| r.iter().zip(&originals).map(|(a, b)| ((a - b) * (a - b)) as f64).sum::<f64>() / r.len() as f64;
    match Palette::learn(&data.train.images, image) {
        Ok(palette) => {
            let mut decided = recons.clone();
            palette.decide(&mut decided, image).unwrap();
            let d = colour_fidelity(&decided, &originals, image, &baseline);
            println!(
                "palette decision ({} entries)  foreground {:.4}, background {:.4}, MSE {:.4} (reconstructions: {:.4}, {:.4}, {:.4})",
                palette.len(),
                d.foreground_error,
                d.background_error,
                mse(&decided),
                scored.foreground_error,
                scored.background_error,
                mse(&recons)
            );
        }
        Err(e) => println!("palette decision: {e}"),
    }
}

//! Do the signatures, read through M, name a secret's colours better than the decoder does? For
//! each secret, every palette pair painted onto a shape (the reconstruction's ink over its own
//! contrast, the same thresholded at 0.5, or the original's as an upper bound) is measured
//! white-box along the run's directions, and the pair whose signature is nearest the secret's
//! (mean |ln eps| difference) is picked. Diagnostic only: it uses the benchmark's palette.
//! `APSIG_DATA_DIR=... cargo run --release -p apsig --example colour_consistency -- RUN DATA.npz N`
use apsig::data::Split;
use apsig::directions::Directions;
use apsig::eval::colour::{stroke, two_colours};
use apsig::io::TensorFile;
use apsig::model::load_network;
use apsig::pipeline::image_shape;
use apsig::signature::{extract, ExtractConfig, Method, SearchConfig, SignatureSet};
use apsig_data::colour::PALETTE;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

fn main() {
    let a: Vec<String> = std::env::args().collect();
    let run = Path::new(&a[1]);
    let data = apsig_data::load(&a[2], &apsig_data::DataOptions::default()).unwrap();
    let n: usize = a[3].parse().unwrap();
    let image = image_shape(&data.test);
    let len = image.len();
    let target = Arc::new(load_network(&run.join("target.safetensors"), None).unwrap().net);
    let dirs = Directions::load(&run.join("directions.safetensors")).unwrap();
    let test = SignatureSet::load(&run.join("signatures-test.safetensors")).unwrap();
    let file = TensorFile::read(&run.join("reconstructions-test.safetensors")).unwrap();
    let (_, recons) = file.f32("reconstructions", None).unwrap();
    let k = test.k;
    let pairs: Vec<(usize, usize)> =
        (0..PALETTE.len()).flat_map(|f| (0..PALETTE.len()).filter(move |&b| b != f).map(move |b| (f, b))).collect();
    let colour = |i: usize| PALETTE[i].1.map(|v| v as f32 / 255.0);
    let nearest = |c: &[f32]| {
        (0..PALETTE.len())
            .min_by(|&x, &y| {
                let d = |i: usize| colour(i).iter().zip(c).map(|(p, q)| (p - q).powi(2)).sum::<f32>();
                d(x).total_cmp(&d(y))
            })
            .unwrap()
    };
    let ecfg = ExtractConfig {
        method: Method::WhiteBox,
        search: SearchConfig { rel_tol: 0.1, ..SearchConfig::decoder_grade(256.0) },
    };
    let (mut dec_hit, mut hit, mut hit_fg, mut hit_bg, mut up_hit, mut up_fg, mut scored) = (0, 0, 0, 0, 0, 0, 0);
    let (mut sharp_hit, mut sharp_fg) = (0, 0);
    for s in 0..n.min(test.n()) {
        let idx = test.indices[s] as usize;
        let o = &data.test.images[idx * len..(idx + 1) * len];
        let r = &recons[s * len..(s + 1) * len];
        let (Some((fg, bg)), Some((rf, rb))) = (two_colours(o, image), two_colours(r, image)) else { continue };
        let truth = (nearest(&fg), nearest(&bg));
        scored += 1;
        dec_hit += ((nearest(&rf), nearest(&rb)) == truth) as usize;
        let mut cands = Vec::with_capacity(2 * pairs.len() * len);
        let soft = stroke(r, image, &rf, &rb);
        let sharp: Vec<f32> = soft.iter().map(|&v| if v >= 0.5 { 1.0 } else { 0.0 }).collect();
        for shape in [soft, stroke(o, image, &fg, &bg), sharp] {
            for &(f, b) in &pairs {
                let (f, b) = (colour(f), colour(b));
                cands.extend(shape.iter().flat_map(|&v| (0..3).map(move |c| b[c] + v * (f[c] - b[c]))));
            }
        }
        let m = 3 * pairs.len();
        let split = Split { images: cands, labels: vec![0; m], n: m, rows: image.h, cols: image.w, channels: image.c };
        let sig =
            extract(target.clone(), &dirs, &split, &BTreeMap::new(), 0..m, None, None, &ecfg, None, &apsig::NoProgress)
                .unwrap();
        let obs = &test.eps[s * k..(s + 1) * k];
        let dist = |j: usize| -> f32 {
            sig.eps[j * k..(j + 1) * k].iter().zip(obs).map(|(x, y)| (x.ln() - y.ln()).abs()).sum::<f32>() / k as f32
        };
        let best =
            |from: usize| (from..from + pairs.len()).min_by(|&x, &y| dist(x).total_cmp(&dist(y))).unwrap() - from;
        let pick = pairs[best(0)];
        hit += (pick == truth) as usize;
        hit_fg += (pick.0 == truth.0) as usize;
        hit_bg += (pick.1 == truth.1) as usize;
        let up = pairs[best(pairs.len())];
        up_hit += (up == truth) as usize;
        up_fg += (up.0 == truth.0) as usize;
        let sh = pairs[best(2 * pairs.len())];
        sharp_hit += (sh == truth) as usize;
        sharp_fg += (sh.0 == truth.0) as usize;
    }
    let p = |v: usize| 100.0 * v as f64 / scored.max(1) as f64;
    println!(
        "{scored} secrets | decoder's own colours, nearest pair: {:.1}% | consistency on the recon's shape: pair {:.1}% fg {:.1}% bg {:.1}% | on the original's shape: pair {:.1}% fg {:.1}% | on the recon's shape thresholded at 0.5: pair {:.1}% fg {:.1}%",
        p(dec_hit),
        p(hit),
        p(hit_fg),
        p(hit_bg),
        p(up_hit),
        p(up_fg),
        p(sharp_hit),
        p(sharp_fg)
    );
}

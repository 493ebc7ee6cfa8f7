//! How far a colour-aware second round could go: tinted directions painted in each image's OWN
//! colour axis (fg - bg, the colours `eval::colour` scores) against tinted directions in random
//! colours, on the same images, target, search and decoder. An upper bound for an attack that first names the
//! secret's colour axis and then spends its K directions along it; diagnostic only (apsig's
//! pipeline has no per-secret directions). Secrets are measured white-box at the secrets' 10%
//! tolerance in both arms, a stand-in for the change bit.
//! `APSIG_DATA_DIR=... cargo run --release -p apsig --example own_colour_axis -- RUN DATA.npz N OUT`
//! (RUN: a finished colour run, for its target, evaluator and decoder config; N training images;
//! OUT gets `random/` and `own/` with `reconstructions-test.safetensors` for colour_decomposition).
use apsig::data::Split;
use apsig::decoder::{Critic, Decoder};
use apsig::directions::{DirectionConfig, Directions, Strategy};
use apsig::eval::{colour, quality};
use apsig::model::load_network;
use apsig::nn::{Network, Shape};
use apsig::pipeline::{image_shape, images_of, labels_of, write_reconstructions, RunConfig};
use apsig::signature::{extract, ExtractConfig, Method, SearchConfig, SignatureSet};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

fn main() {
    let a: Vec<String> = std::env::args().collect();
    let run = Path::new(&a[1]);
    let data = apsig_data::load(&a[2], &apsig_data::DataOptions::default()).unwrap();
    let n: usize = a[3].parse().unwrap();
    let out = Path::new(&a[4]);
    let cfg: RunConfig = toml::from_str(&std::fs::read_to_string(run.join("config.toml")).unwrap()).unwrap();
    let target = Arc::new(load_network(&run.join("target.safetensors"), None).unwrap().net);
    let eval = load_network(&run.join("evaluator.safetensors"), None).unwrap().net;
    let image = image_shape(&data.train);
    let k = cfg.directions.k;
    let train: Vec<usize> = (0..n.min(data.train.n)).collect();
    let test: Vec<usize> = (0..2000.min(data.test.n)).collect();
    let train_search = SearchConfig::decoder_grade(256.0);
    let test_search = SearchConfig { rel_tol: 0.1, ..train_search };

    let tinted =
        Directions::generate(&DirectionConfig { strategy: Strategy::LowFrequencyTinted, k, seed: 1 }, image).unwrap();
    // the spatial patterns: low-frequency on one channel
    let grey = Shape::new(image.h, image.w, 1);
    let patterns =
        Directions::generate(&DirectionConfig { strategy: Strategy::LowFrequency, k, seed: 1 }, grey).unwrap();
    let random = |_: [i8; 3]| tinted.clone();
    let own = |axis: [i8; 3]| {
        let norm = (axis.iter().map(|v| (*v as f32).powi(2)).sum::<f32>()).sqrt();
        let data = patterns.data.iter().flat_map(|p| axis.map(|v| p * v as f32 / norm)).collect();
        Directions { config: tinted.config.clone(), shape: image, data }
    };
    let mean = colour::mean_colours(&data.train.images, image).unwrap();
    std::fs::create_dir_all(out).unwrap();
    for (name, dirs) in [("random", &random as &dyn Fn([i8; 3]) -> Directions), ("own", &own)] {
        let tr = measure(&target, &data.train, &train, dirs, &train_search);
        let mut te = measure(&target, &data.test, &test, dirs, &test_search);
        te.provenance = tr.provenance.clone();
        let images = images_of(&data.train, &tr).unwrap();
        let labels = labels_of(&data.train, &tr);
        let critic = Some(Critic { net: &target, labels: &labels }).filter(|_| cfg.decoder.class_weight > 0.0);
        let (dec, _) = Decoder::fit(&tr, &images, image, &cfg.decoder, critic, None, &apsig::NoProgress).unwrap();
        let recons = dec.reconstruct(&te).unwrap();
        let originals = images_of(&data.test, &te).unwrap();
        let q = quality(&recons, &originals, &labels_of(&data.test, &te), image, &eval);
        let c = colour::colour_fidelity(&recons, &originals, image, &mean);
        let dir = out.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        write_reconstructions(&dir.join("reconstructions-test.safetensors"), &recons, &te.indices, image).unwrap();
        println!(
            "{name}: pairs {} | MSE {:.4} SSIM {:.3} class {:.1}% ident {:?} | colour fg {:.4} bg {:.4} | queries/secret {:.1}",
            tr.n(),
            q.mse,
            q.ssim,
            100.0 * q.class_recovery,
            q.identified_cells(),
            c.foreground_error,
            c.background_error,
            te.queries.iter().map(|&v| v as f64).sum::<f64>() / te.n() as f64,
        );
    }
}

/// White-box signatures of `split`'s images `idx`, each measured along `dirs(its colour axis)`;
/// images sharing an axis are measured together.
fn measure(
    net: &Arc<Network>,
    split: &Split,
    idx: &[usize],
    dirs: &dyn Fn([i8; 3]) -> Directions,
    search: &SearchConfig,
) -> SignatureSet {
    let mut groups: BTreeMap<[i8; 3], Vec<usize>> = BTreeMap::new();
    for &i in idx {
        groups.entry(colour_axis(split.image(i), image_shape(split))).or_default().push(i);
    }
    let ecfg = ExtractConfig { method: Method::WhiteBox, search: search.clone() };
    let mut all: Option<SignatureSet> = None;
    for (axis, members) in groups {
        let sub = split.subset(&members);
        let d = dirs(axis);
        let mut s =
            extract(net.clone(), &d, &sub, &BTreeMap::new(), 0..sub.n, None, None, &ecfg, None, &apsig::NoProgress)
                .unwrap();
        s.indices = s.indices.iter().map(|&j| members[j as usize] as u32).collect();
        match &mut all {
            None => all = Some(s),
            Some(t) => {
                t.indices.extend(s.indices);
                t.eps.extend(s.eps);
                t.censored.extend(s.censored);
                t.queries.extend(s.queries);
            }
        }
    }
    all.unwrap()
}

/// `fg - bg` rounded to the palette's corners, from the colours the report scores
/// (`eval::colour::two_colours`); an image without a foreground gets the grey axis.
fn colour_axis(img: &[f32], image: Shape) -> [i8; 3] {
    let mut axis = [0i8; 3];
    if let Some((fg, bg)) = colour::two_colours(img, image) {
        for (a, (f, b)) in axis.iter_mut().zip(fg.iter().zip(&bg)) {
            *a = (f.round() - b.round()) as i8;
        }
    }
    if axis == [0; 3] {
        axis = [1, 1, 1];
    }
    axis
}

//! Two ways to spend fewer queries on a secret, measured on a finished run's secrets with its
//! own target, directions and decoder (issue 12, item 3):
//!
//! 1. **The order of the directions** in the predicted search: index order against
//!    `DirectionOrder::UncertainFirst`. Each order measures all K directions afresh on the
//!    target (change bits, the run's test search), so the table shows its queries and quality.
//! 2. **Stopping once further eps no longer change the reconstruction.** The predicted search
//!    is causal: the eps of its first `g` groups are the same whether or not it goes on. So a
//!    search stopped after group `g` is exactly the full one's first `g` groups, with the rest
//!    filled by the predictor (`EpsPredictor::complete`, what `EpsSearch::stop` records), at the
//!    queries those groups took. Per secret, the rule stops at the first group after which the
//!    reconstruction moved by less than `tau` (mean squared change per pixel); it is compared with
//!    stopping every secret after the same number of groups.
//!
//!
//! The run's decoder never saw a completed signature. With `completions`, a decoder is first
//! trained the run's way (its config, the same number of steps) on the run's training
//! signatures plus one completed copy of each, stopped after a random number of groups
//! (1 to all but one), and both measurements use it; it is saved as
//! `RUN/decoder-completions.safetensors`.
//!
//! `APSIG_DATA_DIR=... cargo run --release -p apsig --example query_savings -- RUN [SECRETS [completions]]`
use apsig::data::Split;
use apsig::decoder::{Critic, Decoder};
use apsig::directions::Directions;
use apsig::eval::{quality, Quality};
use apsig::model::{load_network, Classifier};
use apsig::pipeline::{image_shape, images_of, labels_of, RunConfig};
use apsig::rng::Rng;
use apsig::signature::{extract, DirectionOrder, EpsPredictor, Prior, SearchConfig, SignatureSet};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

fn main() {
    let a: Vec<String> = std::env::args().collect();
    let run = Path::new(&a[1]);
    let cfg: RunConfig = toml::from_str(&std::fs::read_to_string(run.join("config.toml")).unwrap()).unwrap();
    let data = apsig_data::load(&cfg.dataset, &apsig_data::DataOptions::default()).unwrap();
    let n = a.get(2).map_or(data.test.n, |s| s.parse::<usize>().unwrap().min(data.test.n));
    let target: Arc<dyn Classifier> = Arc::new(load_network(&run.join("target.safetensors"), None).unwrap().net);
    let eval = load_network(&run.join("evaluator.safetensors"), None).unwrap().net;
    let dirs = Directions::load(&run.join("directions.safetensors")).unwrap();
    let train = SignatureSet::load(&run.join("signatures-train.safetensors")).unwrap();
    let completions = a.get(3).map(String::as_str) == Some("completions");
    let decoder = if completions {
        completion_decoder(run, &cfg, &data.train, &train)
    } else {
        Decoder::load(&run.join("decoder.safetensors")).unwrap()
    };
    let recorded = SignatureSet::load(&run.join("signatures-test.safetensors")).unwrap();
    let image = image_shape(&data.test);
    let secrets = recorded.prefix(recorded.k, n);
    let originals = images_of(&data.test, &secrets).unwrap();
    let labels = labels_of(&data.test, &secrets);
    let search = &cfg.test_signatures.extract;
    let group = cfg.predict_group;
    let mut prov = BTreeMap::new();
    prov.insert("dataset".to_string(), data.name.clone());
    prov.insert("split".to_string(), "test".to_string());
    let score = |recons: &[f32]| quality(recons, &originals, &labels, image, &eval);
    let row = |name: &str, q_per_image: f64, q: &Quality| {
        println!(
            "{name:<44} {q_per_image:>8.1} {:>9.6} {:>6.3} {:>7.2}% {:>7.2}% {:>7.2}%",
            q.mse,
            q.ssim,
            100.0 * q.class_recovery,
            100.0 * q.identification.map_or(f64::NAN, |i| i.overall),
            100.0 * q.identification.map_or(f64::NAN, |i| i.within_class),
        )
    };
    println!("{} secrets of {}, K = {}, groups of {group}, {:?}", n, data.name, train.k, search.search);
    // the order is measured with the run's decoder; a new decoder only for stopping
    let orders: &[DirectionOrder] =
        if completions { &[DirectionOrder::Index] } else { &[DirectionOrder::Index, DirectionOrder::UncertainFirst] };
    for &order in orders {
        let predictor = EpsPredictor::fit_ordered(train.k, &train.eps, group, order).unwrap();
        let t = Instant::now();
        let prior = Some(Prior::Predicted(&predictor));
        let sigs =
            extract(target.clone(), &dirs, &data.test, &prov, 0..n, None, prior, search, None, &apsig::NoProgress)
                .unwrap();
        println!(
            "\n## order {order:?}: measured in {:.0} s; same eps as the run's own test signatures: {}",
            t.elapsed().as_secs_f64(),
            sigs.eps == secrets.eps
        );
        println!(
            "{:<44} {:>8} {:>9} {:>6} {:>8} {:>8} {:>8}",
            "search", "q/secret", "MSE", "SSIM", "class", "ident", "in class"
        );
        let k = sigs.k;
        let positions: Vec<usize> = (0..k).step_by(group).chain([k]).collect();
        // per stopping point: each secret's queries so far and its reconstruction
        let mut queries = Vec::new();
        let mut recons = Vec::new();
        for &measured in &positions {
            let mut stopped = sigs.clone();
            let mut spent = vec![0u64; n];
            for (i, spent) in spent.iter_mut().enumerate() {
                *spent = stop_after(&predictor, &mut stopped, i, measured, &search.search);
            }
            let r = decoder.reconstruct(&stopped).unwrap();
            let mean_q = spent.iter().sum::<u64>() as f64 / n as f64;
            row(&format!("every secret stops after {measured} directions"), mean_q, &score(&r));
            queries.push(spent);
            recons.push(r);
        }
        let px = image.len();
        // change[g][i]: how far secret i's reconstruction moved with group g (g >= 1)
        let change: Vec<Vec<f64>> = (1..recons.len())
            .map(|g| {
                (0..n)
                    .map(|i| {
                        let (a, b) = (&recons[g][i * px..(i + 1) * px], &recons[g - 1][i * px..(i + 1) * px]);
                        a.iter().zip(b).map(|(x, y)| ((x - y) as f64).powi(2)).sum::<f64>() / px as f64
                    })
                    .collect()
            })
            .collect();
        for tau in [3e-5, 1e-4, 2e-4, 5e-4, 1e-3, 2e-3] {
            let mut r = vec![0f32; n * px];
            let mut spent = 0u64;
            for i in 0..n {
                // the first group after which the reconstruction moved less than tau
                let g = (1..recons.len()).find(|&g| change[g - 1][i] < tau).unwrap_or(recons.len() - 1);
                r[i * px..(i + 1) * px].copy_from_slice(&recons[g][i * px..(i + 1) * px]);
                spent += queries[g][i];
            }
            row(&format!("stop when a group moves it < {tau:e}"), spent as f64 / n as f64, &score(&r));
        }
    }
}

/// Stops signature `i` of `sigs` after its first `measured` positions (see
/// `EpsPredictor::complete`), clamped to the search's range; returns the queries it had spent.
fn stop_after(
    predictor: &EpsPredictor,
    sigs: &mut SignatureSet,
    i: usize,
    measured: usize,
    search: &SearchConfig,
) -> u64 {
    let k = sigs.k;
    let filled = predictor.complete(sigs.row(i), measured);
    let mut spent = 0u64;
    for (pos, &d) in predictor.order().iter().enumerate() {
        let j = i * k + d;
        if pos < measured {
            spent += sigs.queries[j] as u64;
        } else {
            sigs.eps[j] = filled[d].clamp(search.eps_min, search.eps_max);
            sigs.censored[j] = 0;
            sigs.queries[j] = 0;
        }
    }
    spent
}

/// The run's decoder trained again on its training signatures and a completed copy of each
/// (see the top of the file), at the run's number of steps.
fn completion_decoder(run: &Path, cfg: &RunConfig, own: &Split, train: &SignatureSet) -> Decoder {
    assert_eq!(cfg.train_signatures.augment, 0, "runs with affine copies are not supported here");
    let group = cfg.predict_group;
    let predictor = EpsPredictor::fit(train.k, &train.eps, group).unwrap();
    let groups = train.k.div_ceil(group);
    let mut rng = Rng::derive(cfg.decoder.train.seed, "completed copies");
    let mut copies = train.clone();
    for i in 0..train.n() {
        let g = 1 + (rng.uniform() * (groups - 1) as f32) as usize;
        stop_after(&predictor, &mut copies, i, (g * group).min(train.k), &cfg.test_signatures.extract.search);
    }
    let mut both = train.clone();
    both.indices.extend(&copies.indices);
    both.eps.extend(&copies.eps);
    both.censored.extend(&copies.censored);
    both.queries.extend(&copies.queries);
    let images = images_of(own, &both).unwrap();
    let labels = labels_of(own, &both);
    let target = load_network(&run.join("target.safetensors"), None).unwrap().net;
    let critic = (cfg.decoder.class_weight > 0.0).then_some(Critic { net: &target, labels: &labels });
    let mut dec_cfg = cfg.decoder.clone();
    dec_cfg.train.epochs = dec_cfg.train.epochs.div_ceil(2);
    let t = Instant::now();
    let (dec, rep) =
        Decoder::fit(&both, &images, image_shape(own), &dec_cfg, critic, None, &apsig::NoProgress).unwrap();
    println!(
        "decoder on {} pairs (half completed), {} epochs: loss {:.4}, {:.0} s",
        both.n(),
        dec_cfg.train.epochs,
        rep.final_loss,
        t.elapsed().as_secs_f64()
    );
    dec.save(&run.join("decoder-completions.safetensors"), &BTreeMap::new()).unwrap();
    dec
}

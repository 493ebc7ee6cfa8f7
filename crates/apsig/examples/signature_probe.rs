//! How much a run's signatures say about class and colours: an MLP per target (class,
//! foreground palette entry, background palette entry) trained on the first N training
//! signatures' decoder features, scored on the run's secrets. Diagnostic only.
//! `APSIG_DATA_DIR=... cargo run --release -p apsig --example signature_probe -- RUN DATA.npz N EPOCHS`
use apsig::decoder::{Input, Standardiser};
use apsig::model::{train, Targets, TrainConfig};
use apsig::nn::{LayerSpec::*, Network, Shape};
use apsig::signature::SignatureSet;
use std::path::Path;

fn main() {
    let a: Vec<String> = std::env::args().collect();
    let run = Path::new(&a[1]);
    let n: usize = a[3].parse().unwrap();
    let epochs: usize = a[4].parse().unwrap();
    // the locator reads $APSIG_DATA_DIR itself
    let data = apsig_data::load(&a[2], &apsig_data::DataOptions::default()).unwrap();
    let all = SignatureSet::load(&run.join("signatures-train.safetensors")).unwrap();
    let train_sigs = all.prefix(all.k, n);
    let test_sigs = SignatureSet::load(&run.join("signatures-test.safetensors")).unwrap();
    let tin = Input::signature(&train_sigs, train_sigs.k, train_sigs.n(), true).unwrap();
    let ein = Input::signature(&test_sigs, test_sigs.k, test_sigs.n(), true).unwrap();
    let sc = Standardiser::fit(&tin);
    let (xt, xe) = (tin.standardised(&sc), ein.standardised(&sc));
    let dim = tin.kind.dim();
    let pal = |c: &[u8; 3]| apsig_data::colour::PALETTE.iter().position(|p| &p.1 == c).unwrap() as u8;
    let tc = apsig_data::colour::read_true_colours(Path::new(&a[2]), "train").unwrap();
    let ec = apsig_data::colour::read_true_colours(Path::new(&a[2]), "test").unwrap();
    let pick = |idx: &[u32], f: &dyn Fn(usize) -> u8| idx.iter().map(|&i| f(i as usize)).collect::<Vec<u8>>();
    let targets: Vec<(&str, usize, Vec<u8>, Vec<u8>)> = vec![
        (
            "class",
            10,
            pick(&train_sigs.indices, &|i| data.train.labels[i]),
            pick(&test_sigs.indices, &|i| data.test.labels[i]),
        ),
        ("fg", 8, pick(&train_sigs.indices, &|i| pal(&tc.fg[i])), pick(&test_sigs.indices, &|i| pal(&ec.fg[i]))),
        ("bg", 8, pick(&train_sigs.indices, &|i| pal(&tc.bg[i])), pick(&test_sigs.indices, &|i| pal(&ec.bg[i]))),
    ];
    for (name, classes, yt, ye) in targets {
        let specs =
            vec![Linear { out: 512 }, BatchNorm, Relu, Linear { out: 512 }, BatchNorm, Relu, Linear { out: classes }];
        let mut net = Network::new(Shape::flat(dim), specs, 7).unwrap();
        let cfg = TrainConfig::new(epochs, 128, 0.002, 3);
        let rep = train(&mut net, &xt, Targets::Labels(&yt), &cfg, None, &apsig::NoProgress).unwrap();
        let logits = net.forward(&xe, ye.len());
        let ok = ye
            .iter()
            .enumerate()
            .filter(|(i, y)| apsig::argmax(&logits[i * classes..(i + 1) * classes]) == **y as usize)
            .count();
        println!("{name}: n {n} loss {:.3} test acc {:.1}%", rep.final_loss, 100.0 * ok as f64 / ye.len() as f64);
    }
}

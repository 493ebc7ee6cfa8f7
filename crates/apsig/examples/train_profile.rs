//! Profiling harness: trains the decoder (or TargetNet-S with `targetnet`) on synthetic data
//! for a number of epochs and prints images/s and a hash of the weights (a change that should
//! keep the bits must keep the hash): `cargo run --release -p apsig --example train_profile --
//! decoder 3 [HIDDEN] [GUIDE]`, under `perf record` to see where the time goes. HIDDEN is the
//! decoder's dense hidden layer (`decoder.hidden`, default 0: the paper's decoder); GUIDE, when
//! above 0, is the class guide's weight (`decoder.class_weight`), read by an untrained
//! TargetNet-S: its forward and backward passes cost the same whatever its weights.
use apsig::model::{train, Arch, ClassGuide, Targets, TrainConfig};
use apsig::nn::{Network, Shape};

fn main() {
    let which = std::env::args().nth(1).unwrap_or_else(|| "decoder".into());
    let epochs: usize = std::env::args().nth(2).and_then(|s| s.parse().ok()).unwrap_or(3);
    let hidden: usize = std::env::args().nth(3).and_then(|s| s.parse().ok()).unwrap_or(0);
    let guide: f32 = std::env::args().nth(4).and_then(|s| s.parse().ok()).unwrap_or(0.0);
    let n = 4096;
    let mut rng = apsig::rng::Rng::new(3);
    let images: Vec<f32> = (0..n * 784).map(|_| rng.uniform()).collect();
    let labels: Vec<u8> = (0..n).map(|i| (i % 10) as u8).collect();
    let mnist = Shape::new(28, 28, 1);
    let cfg = apsig::pipeline::RunConfig::quick(1);
    // the guide's classifier, only when there is a guide
    let critic = (guide > 0.0).then(|| Network::new(mnist, Arch::TargetNetS.layers(mnist, 10, 0), 2).unwrap());
    let (mut net, x, targets, tc) = if which == "decoder" {
        let x: Vec<f32> = (0..n * 200).map(|_| rng.normal()).collect();
        let net =
            Network::new(Shape::flat(200), apsig::model::decoder_layers(mnist, cfg.decoder.width, hidden), 1).unwrap();
        let targets = match &critic {
            Some(critic) => {
                let g = ClassGuide { critic, labels: &labels, weight: guide, noise: 0.0 };
                Targets::GuidedImages(&images, Default::default(), g)
            }
            None => Targets::Images(&images, Default::default()),
        };
        (net, x, targets, cfg.decoder.train.clone())
    } else {
        let net = Network::new(mnist, Arch::TargetNetS.layers(mnist, 10, 0), 1).unwrap();
        (net, images.clone(), Targets::Labels(&labels), cfg.target.clone())
    };
    let tc = TrainConfig { epochs, ..tc };
    let t = std::time::Instant::now();
    train(&mut net, &x, targets, &tc, None, &apsig::NoProgress).unwrap();
    let s = t.elapsed().as_secs_f64();
    let all: Vec<f32> = net.params.iter().flatten().flatten().copied().collect();
    println!(
        "{which}: {:.0} images/s ({epochs} epochs of {n}), weights {}",
        (epochs * n) as f64 / s,
        apsig::io::fingerprint_f32(&all)
    );
}

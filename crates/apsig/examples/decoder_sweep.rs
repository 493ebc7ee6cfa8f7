//! Decoder variants on the signatures of a finished run: trains one decoder per (training
//! pairs, width, epochs, hidden width, input noise, ...) on the run's training signatures and
//! scores it on its secrets, so a decoder change is measured without rerunning the oracle.
//! HIDDEN, INPUT_NOISE, CLASS_WEIGHT and CLASS_NOISE (the class guide, with the run's target as
//! the critic) and WEIGHT_DECAY (AdamW, `decoder.train.weight_decay`) default to 0 (the paper's
//! decoder, not the presets' hidden 512), SEED (initialisation and order) to 2001, the rest is
//! the quick preset's decoder; a spec ending in `:l1` trains with the L1 loss (`decoder.loss`):
//! `APSIG_DATA_DIR=... cargo run --release -p apsig --example decoder_sweep -- RUN DATASET N:WIDTH:EPOCHS[:HIDDEN[:INPUT_NOISE[:CLASS_WEIGHT[:CLASS_NOISE[:WEIGHT_DECAY[:SEED]]]]]][:l1]...`
//! (e.g. `runs/colour data/colour-mnist-32.npz 12000:64:20 60000:64:10 12000:64:20:512:0:0.03:0.4:l1`).
use apsig::data::Split;
use apsig::decoder::{Critic, Decoder};
use apsig::eval::{colour, quality};
use apsig::model::load_network;
use apsig::nn::PixelLoss;
use apsig::pipeline::{augment, image_shape, images_of, labels_of, RunConfig};
use apsig::signature::SignatureSet;
use std::path::Path;
use std::time::Instant;

fn main() {
    let a: Vec<String> = std::env::args().collect();
    let run = Path::new(&a[1]);
    // the locator reads $APSIG_DATA_DIR itself
    let data = apsig_data::load(&a[2], &apsig_data::DataOptions::default()).unwrap();
    let train = SignatureSet::load(&run.join("signatures-train.safetensors")).unwrap();
    let test = SignatureSet::load(&run.join("signatures-test.safetensors")).unwrap();
    let eval = load_network(&run.join("evaluator.safetensors"), None).unwrap().net;
    // the critic of the class guide: the run's own target, or the critic it trained for a user's
    let critic_file =
        ["target.safetensors", "critic.safetensors"].map(|f| run.join(f)).into_iter().find(|p| p.exists());
    let target = critic_file.map(|p| load_network(&p, None).unwrap().net);
    let image = image_shape(&data.train);
    let originals = images_of(&data.test, &test).unwrap();
    let labels = labels_of(&data.test, &test);
    let mean = colour::mean_colours(&data.train.images, image);
    for spec in &a[3..] {
        let (numbers, loss) = match spec.strip_suffix(":l1") {
            Some(rest) => (rest, PixelLoss::L1),
            None => (spec.as_str(), PixelLoss::L2),
        };
        let v: Vec<f64> = numbers.split(':').map(|s| s.parse().unwrap()).collect();
        let sigs = train.prefix(train.k, v[0] as usize);
        let mut cfg = RunConfig::quick(1).decoder;
        cfg.width = v[1] as usize;
        cfg.train.epochs = v[2] as usize;
        cfg.hidden = v.get(3).copied().unwrap_or(0.0) as usize;
        cfg.train.input_noise = v.get(4).copied().unwrap_or(0.0) as f32;
        cfg.class_weight = v.get(5).copied().unwrap_or(0.0) as f32;
        cfg.class_noise = v.get(6).copied().unwrap_or(0.0) as f32;
        cfg.train.weight_decay = v.get(7).copied().unwrap_or(0.0) as f32;
        if let Some(&seed) = v.get(8) {
            cfg.train.seed = seed as u64;
        }
        cfg.loss = loss;
        let split = own_images(run, &data.train);
        let images = images_of(&split, &sigs).unwrap();
        let train_labels = labels_of(&split, &sigs);
        let critic = target.as_ref().map(|net| Critic { net, labels: &train_labels });
        let t = Instant::now();
        let (dec, rep) = Decoder::fit(&sigs, &images, image, &cfg, critic, None, &apsig::NoProgress).unwrap();
        let secs = t.elapsed().as_secs_f64();
        let recons = dec.reconstruct(&test).unwrap();
        let q = quality(&recons, &originals, &labels, image, &eval);
        let c = mean.as_ref().map(|m| colour::colour_fidelity(&recons, &originals, image, m));
        println!(
            "{spec}: pairs {} loss {:.4} | test MSE {:.6} SSIM {:.3} class {:.1}% ident {:?} | colour {} | {secs:.0} s",
            sigs.n(),
            rep.final_loss,
            q.mse,
            q.ssim,
            100.0 * q.class_recovery,
            q.identified_cells(),
            c.map(|c| format!("fg {:.3} bg {:.3}", c.foreground_error, c.background_error)).unwrap_or_default(),
        );
    }
}

/// The adversary's images the run measured: with `train_signatures.augment`, the affine copies
/// the run made (the same seed makes the same ones).
fn own_images(run: &Path, train: &Split) -> Split {
    let text = std::fs::read_to_string(run.join("config.toml")).unwrap();
    let cfg: RunConfig = toml::from_str(&text).unwrap();
    let stage = &cfg.train_signatures;
    if stage.augment == 0 {
        return train.clone();
    }
    let train = if cfg.train_limit > 0 && cfg.train_limit < train.n {
        &train.subset(&(0..cfg.train_limit).collect::<Vec<_>>())
    } else {
        train
    };
    let n = if stage.count == 0 { train.n } else { stage.count };
    augment::with_affine_copies(train, n, stage.augment, stage.permute_channels, cfg.directions.seed)
}

//! `apsig bench`: throughput figures, and the same workload in PyTorch side by side.

use crate::progress::Bars;
use anyhow::{Context, Result};
use apsig::bench::{forward, peak_rss_mib, rate, targetnet, Machine};
use apsig::data::DataOptions;
use apsig::directions::{DirectionConfig, Directions, Strategy};
use apsig::model::load_network;
use apsig::signature::{extract, ExtractConfig, Method, SearchConfig};
use clap::Args;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

#[derive(Args)]
pub struct BenchArgs {
    /// TargetNet-S model to measure (default: random weights; eps statistics need a trained model).
    #[arg(long)]
    model: Option<PathBuf>,
    /// Seconds per forward measurement.
    #[arg(long, default_value_t = 2.0)]
    secs: f64,
    /// Test images for the signature-extraction measurement.
    #[arg(long, default_value_t = 64)]
    images: usize,
    /// Python of the PyTorch peer (default: bench/peers/.venv/bin/python if it exists); `off` to skip.
    #[arg(long)]
    peer: Option<String>,
    /// Write all figures here as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
}

pub fn bench(a: BenchArgs, opts: &DataOptions, _bars: &Bars) -> Result<()> {
    let machine = Machine::measure(1.0);
    println!("machine: {}, {} threads (cpu MHz {:.0})", machine.cpu, machine.cores, machine.mhz);
    println!(
        "measured fp32 peak: {:.1} GFLOP/s (FMA chains on all threads); shares below are of this",
        machine.peak_gflops
    );
    let net = match &a.model {
        Some(p) => load_network(p, Some(apsig::model::Arch::TargetNetS))?.net,
        None => targetnet(1),
    };
    let mut out = serde_json::Map::new();
    println!("\nTargetNet-S ({:.2} MFLOP per image)", 2.0 * net.macs() as f64 / 1e6);
    println!("{:<28} {:>6} {:>12} {:>9} {:>7}", "what", "batch", "per second", "GFLOP/s", "of peak");
    let mut fw = Vec::new();
    for batch in [256, 1024, 4096] {
        for t in forward(&net, batch, &machine, a.secs) {
            println!(
                "{:<28} {:>6} {:>12.0} {:>9.1} {:>6.1}%",
                t.what,
                t.batch,
                t.per_sec,
                t.gflops,
                100.0 * t.share_of_peak
            );
            fw.push(t);
        }
    }
    out.insert("forward".into(), serde_json::to_value(&fw)?);

    let data = apsig::data::load("mnist", opts)?;
    let dirs = Directions::generate(&DirectionConfig { strategy: Strategy::Gaussian, k: 100, seed: 1 }, net.input)?;
    let model = Arc::new(net.clone());
    let n = a.images.min(data.test.n);
    println!("\nsignature extraction, K = 100, {n} test images");
    println!("{:<44} {:>9} {:>9} {:>11}", "search", "eps/s", "images/s", "queries/eps");
    let plain = SearchConfig::plain(64.0);
    let configs = [
        ("change bit, plain (0.5, x2, tol 1e-3, max 64)", Method::ChangeBit, plain.clone()),
        ("white box (margins), same grid", Method::WhiteBox, plain.clone()),
        (
            "change bit, tol 1e-2, x1.6, max 256",
            Method::ChangeBit,
            SearchConfig { growth: 1.6, rel_tol: 1e-2, eps_max: 256.0, ..plain },
        ),
    ];
    let mut sig = Vec::new();
    for (name, method, search) in configs {
        let cfg = ExtractConfig { method, search };
        let t0 = Instant::now();
        let set = extract(
            model.clone(),
            &dirs,
            &data.test,
            &BTreeMap::new(),
            0..n,
            None,
            None,
            &cfg,
            None,
            &apsig::NoProgress,
        )?;
        let secs = t0.elapsed().as_secs_f64();
        let eps_s = (n * 100) as f64 / secs;
        println!("{name:<44} {eps_s:>9.0} {:>9.1} {:>11.2}", n as f64 / secs, set.queries_per_eps());
        sig.push(serde_json::json!({"search": name, "eps_per_sec": eps_s, "images_per_sec": n as f64 / secs, "queries_per_eps": set.queries_per_eps()}));
    }
    out.insert("signatures".into(), serde_json::Value::Array(sig.clone()));

    let train = TrainingData::new(&data.train);
    let tn_rate = targetnet_train_rate(&train, a.secs)?;
    let dec_rate = decoder_train_rate(&train, a.secs)?;
    println!("\ntraining, Adam, batch 128, {} MNIST training images", train.n);
    println!("  TargetNet-S: {tn_rate:.0} images/s");
    println!("  decoder (K = 100 with mask, width 64): {dec_rate:.0} images/s");
    out.insert("targetnet_train_images_per_sec".into(), tn_rate.into());
    out.insert("decoder_train_images_per_sec".into(), dec_rate.into());
    out.insert("machine".into(), serde_json::to_value(&machine)?);

    let python = a.peer.clone().or_else(|| {
        let p = PathBuf::from("bench/peers/.venv/bin/python");
        p.exists().then(|| p.display().to_string())
    });
    match python.filter(|p| p != "off") {
        Some(py) => {
            let peer = run_peer(&py, &net, &data.test, n, &dirs, &train, a.secs, machine.cores)?;
            println!(
                "\nPyTorch peer ({}), {} threads, same inputs; the fastest of its variants counts:",
                peer["torch_version"], peer["threads"]
            );
            for (i, batch) in [256, 1024, 4096].iter().enumerate() {
                let torch = peer["forward"][i]["images_per_sec"].as_f64().unwrap_or(f64::NAN);
                let ours = fw
                    .iter()
                    .find(|t| t.batch == *batch && t.what.starts_with("forward"))
                    .map(|t| t.per_sec)
                    .unwrap_or(f64::NAN);
                println!(
                    "  forward batch {batch:>5}: PyTorch {torch:>9.0} images/s ({}), apsig {ours:>9.0}: ratio apsig/PyTorch {:.2}x",
                    peer["forward"][i]["variant"].as_str().unwrap_or("?"),
                    ours / torch
                );
            }
            for (what, key, ours) in
                [("TargetNet-S", "train_targetnet", tn_rate), ("decoder", "train_decoder", dec_rate)]
            {
                let torch = peer[key]["images_per_sec"].as_f64().unwrap_or(f64::NAN);
                println!(
                    "  training {what:<11}: PyTorch {torch:>9.0} images/s ({}), apsig {ours:>9.0}: ratio apsig/PyTorch {:.2}x",
                    peer[key]["variant"].as_str().unwrap_or("?"),
                    ours / torch
                );
            }
            let torch_sig = peer["signatures"]["images_per_sec"].as_f64().unwrap_or(f64::NAN);
            let ours_sig = sig[0]["images_per_sec"].as_f64().unwrap_or(f64::NAN);
            println!(
                "  plain change-bit signatures: PyTorch {torch_sig:.2} images/s ({:.2} queries/eps), apsig {ours_sig:.2}: ratio {:.2}x; eps agree within tolerance for {:.1}% of pairs",
                peer["signatures"]["queries_per_eps"].as_f64().unwrap_or(f64::NAN),
                ours_sig / torch_sig,
                100.0 * peer_agreement(&peer, model.clone(), &dirs, &data.test, n)?
            );
            out.insert("peer".into(), peer);
        }
        None => println!("\nPyTorch peer: not installed (run bench/peers/setup.sh); ratios not measured"),
    }
    println!("\npeak memory of this process: {:.0} MiB", peak_rss_mib());
    if let Some(p) = a.json {
        apsig::io::atomic_write(&p, serde_json::to_string_pretty(&out)?.as_bytes())?;
    }
    Ok(())
}

/// The training measurements' data, shared with the peer: the first MNIST training images
/// and labels, and standard-normal decoder inputs (K = 100 eps and 100 mask values each).
struct TrainingData {
    n: usize,
    images: Vec<f32>,
    labels: Vec<u8>,
    decoder_inputs: Vec<f32>,
}

impl TrainingData {
    const DECODER_IN: usize = 200;

    fn new(train: &apsig::data::Split) -> Self {
        let n = 4096.min(train.n);
        let mut rng = apsig::rng::Rng::new(3);
        TrainingData {
            n,
            images: train.images[..n * 784].to_vec(),
            labels: train.labels[..n].to_vec(),
            decoder_inputs: (0..n * Self::DECODER_IN).map(|_| rng.normal()).collect(),
        }
    }
}

/// Images/s of `apsig::model::train` (one epoch per call, timed over at least `secs`).
fn train_rate(
    mut net: apsig::nn::Network,
    x: &[f32],
    targets: apsig::model::Targets<'_>,
    tc: &apsig::model::TrainConfig,
    n: usize,
    secs: f64,
) -> Result<f64> {
    let tc = apsig::model::TrainConfig { epochs: 1, ..tc.clone() };
    let mut failed = None;
    let per = rate(secs, || {
        if let Err(e) = apsig::model::train(&mut net, x, targets, &tc, None, &apsig::NoProgress) {
            failed = Some(e);
        }
    });
    match failed {
        Some(e) => Err(e.into()),
        None => Ok(per * n as f64),
    }
}

fn targetnet_train_rate(d: &TrainingData, secs: f64) -> Result<f64> {
    let cfg = apsig::pipeline::RunConfig::quick(1).target;
    train_rate(targetnet(1), &d.images, apsig::model::Targets::Labels(&d.labels), &cfg, d.n, secs)
}

fn decoder_train_rate(d: &TrainingData, secs: f64) -> Result<f64> {
    use apsig::nn::{Network, Shape};
    let cfg = apsig::pipeline::RunConfig::quick(1).decoder;
    let input = Shape::flat(TrainingData::DECODER_IN);
    let mnist = Shape::new(28, 28, 1);
    let net =
        Network::new(input, apsig::model::Arch::Decoder.layers(mnist, 0, cfg.width), 1).map_err(anyhow::Error::msg)?;
    train_rate(
        net,
        &d.decoder_inputs,
        apsig::model::Targets::Images(&d.images, Default::default()),
        &cfg.train,
        d.n,
        secs,
    )
}

/// Writes the model and inputs for the peer, runs it, and returns its JSON report.
#[allow(clippy::too_many_arguments)]
fn run_peer(
    python: &str,
    net: &apsig::nn::Network,
    test: &apsig::data::Split,
    n: usize,
    dirs: &Directions,
    train: &TrainingData,
    secs: f64,
    threads: usize,
) -> Result<serde_json::Value> {
    let tmp = std::env::temp_dir().join(format!("apsig-peer-{}", std::process::id()));
    std::fs::create_dir_all(&tmp)?;
    let model_path = tmp.join("model.safetensors");
    apsig::model::save_network(&model_path, apsig::model::Arch::TargetNetS, net, &BTreeMap::new())?;
    let inputs = tmp.join("inputs.safetensors");
    apsig::io::write_tensors(
        &inputs,
        &[
            apsig::io::TensorOut::F32("images", vec![n, 784], &test.images[..n * 784]),
            apsig::io::TensorOut::F32("directions", vec![dirs.k(), 784], &dirs.data),
            apsig::io::TensorOut::F32("train_images", vec![train.n, 784], &train.images),
            apsig::io::TensorOut::U8("train_labels", vec![train.n], &train.labels),
            apsig::io::TensorOut::F32("decoder_inputs", vec![train.n, TrainingData::DECODER_IN], &train.decoder_inputs),
        ],
        &BTreeMap::new(),
    )?;
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../bench/peers/torch_peer.py");
    let o = Command::new(python)
        .arg(&script)
        .arg(&model_path)
        .arg(&inputs)
        .arg(tmp.join("peer-eps.bin"))
        .arg(secs.to_string())
        .env("OMP_NUM_THREADS", threads.to_string())
        .output()
        .with_context(|| format!("running the PyTorch peer with {python}"))?;
    if !o.status.success() {
        anyhow::bail!("PyTorch peer failed: {}", String::from_utf8_lossy(&o.stderr).lines().last().unwrap_or(""));
    }
    let mut v: serde_json::Value = serde_json::from_slice(&o.stdout).context("peer output")?;
    v["eps_file"] = serde_json::Value::String(tmp.join("peer-eps.bin").display().to_string());
    Ok(v)
}

/// Fraction of (image, direction) pairs where the peer's eps and ours agree to 1e-3 (x2 for rounding).
fn peer_agreement(
    peer: &serde_json::Value,
    model: Arc<apsig::nn::Network>,
    dirs: &Directions,
    test: &apsig::data::Split,
    n: usize,
) -> Result<f64> {
    let bytes = std::fs::read(peer["eps_file"].as_str().unwrap_or_default())?;
    let theirs: Vec<f32> = bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
    let cfg = ExtractConfig { method: Method::ChangeBit, search: SearchConfig::plain(64.0) };
    let ours = extract(model, dirs, test, &BTreeMap::new(), 0..n, None, None, &cfg, None, &apsig::NoProgress)?;
    let agree = ours.eps.iter().zip(&theirs).filter(|(a, b)| ((**a / **b) - 1.0).abs() <= 2e-3).count();
    Ok(agree as f64 / ours.eps.len().max(1) as f64)
}

//! `apsig bench`: throughput figures, and the same workload in PyTorch side by side.

mod peer;

use crate::progress::Bars;
use anyhow::{Context, Result};
use apsig::bench::{forward, forward_rate, peak_rss_mib, rate, targetnet, Machine};
use apsig::data::DataOptions;
use apsig::directions::{DirectionConfig, Directions, Strategy};
use apsig::model::load_network;
use apsig::signature::{extract, ExtractConfig, Method, SearchConfig};
use apsig::Progress;
use clap::Args;
use peer::Peer;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
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
    /// Rounds that alternate apsig and the peer on each workload; ratios are per round, and
    /// their median and range are printed (the machine's rate drifts between rounds).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=100))]
    rounds: u32,
    /// Write all figures here as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
}

pub fn bench(a: BenchArgs, opts: &DataOptions, bars: &Bars) -> Result<()> {
    let machine = Machine::measure(1.0);
    println!("machine: {}, {} threads (cpu MHz {:.0})", machine.cpu, machine.cores, machine.mhz);
    // the dev profile keeps overflow checks and debug assertions in the kernels: its forward
    // pass ran at two thirds of the release build's rate
    if cfg!(debug_assertions) {
        println!("build: dev profile (debug assertions on); rates understate `cargo build --release`");
    } else {
        println!("build: release");
    }
    println!(
        "measured fp32 peak: {:.1} GFLOP/s (FMA chains on all threads); shares below are of this",
        machine.peak_gflops
    );
    let net = match &a.model {
        Some(p) => load_network(p, Some(apsig::model::Arch::TargetNetS))?.net,
        None => targetnet(1),
    };
    let mut out = serde_json::Map::new();
    println!(
        "\nTargetNet-S ({:.2} MFLOP per image as computed: {:.2} MFLOP of multiply-adds, fewer where Winograd's F(2x2, 5x5) serves a convolution)",
        net.infer_flops() as f64 / 1e6,
        2.0 * net.macs() as f64 / 1e6
    );
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
    // the first search's eps, which the peer's search is checked against
    let mut plain_eps = Vec::new();
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
        if plain_eps.is_empty() {
            plain_eps = set.eps;
        }
    }
    out.insert("signatures".into(), serde_json::Value::Array(sig.clone()));

    let train = TrainingData::new(&data.train);
    let tn_rate = targetnet_train_rate(&train, a.secs)?;
    let dec_rate = decoder_train_rate(&train, a.secs)?;
    println!("\ntraining, Adam, batch 128, {} MNIST training images", train.n);
    for (what, key, rate, flops) in [
        ("TargetNet-S", "targetnet", tn_rate, targetnet(1).train_flops()),
        ("decoder (K = 100 with mask, width 64)", "decoder", dec_rate, decoder_net()?.train_flops()),
    ] {
        let gflops = rate * flops as f64 / 1e9;
        println!(
            "  {what}: {rate:.0} images/s, {:.1} MFLOP each: {gflops:.1} GFLOP/s, {:.1}% of peak",
            flops as f64 / 1e6,
            100.0 * gflops / machine.peak_gflops
        );
        out.insert(format!("{key}_train_images_per_sec"), rate.into());
        out.insert(format!("{key}_train_gflops"), gflops.into());
    }
    out.insert("machine".into(), serde_json::to_value(&machine)?);
    out.insert("release_build".into(), (!cfg!(debug_assertions)).into());

    let python = a.peer.clone().or_else(|| {
        let p = PathBuf::from("bench/peers/.venv/bin/python");
        p.exists().then(|| p.display().to_string())
    });
    match python.filter(|p| p != "off") {
        Some(py) => {
            let report = against_peer(&py, &a, &net, &data.test, &plain_eps, &dirs, &train, machine.cores, bars)?;
            let sig_ours = sig[0]["images_per_sec"].as_f64().unwrap_or(f64::NAN);
            print_peer(&report, sig_ours);
            out.insert("peer".into(), serde_json::to_value(&report)?);
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

/// The paper's decoder (no hidden layer) for the bench's decoder inputs.
fn decoder_net() -> Result<apsig::nn::Network> {
    use apsig::nn::{Network, Shape};
    let width = apsig::pipeline::RunConfig::quick(1).decoder.width;
    let input = Shape::flat(TrainingData::DECODER_IN);
    let mnist = Shape::new(28, 28, 1);
    Network::new(input, apsig::model::Arch::Decoder.layers(mnist, 0, width), 1).map_err(anyhow::Error::msg)
}

fn decoder_train_rate(d: &TrainingData, secs: f64) -> Result<f64> {
    let cfg = apsig::pipeline::RunConfig::quick(1).decoder;
    train_rate(
        decoder_net()?,
        &d.decoder_inputs,
        apsig::model::Targets::Images(&d.images, Default::default()),
        &cfg.train,
        d.n,
        secs,
    )
}

/// What the peer measured, and the rounds that alternated it with apsig.
#[derive(Serialize)]
struct PeerReport {
    torch_version: String,
    threads: u64,
    /// The peer's plain change-bit search: images/s, queries per eps (one measurement; the
    /// ratio is far from 1).
    signatures: serde_json::Value,
    /// Share of (image, direction) pairs where the peer's eps and apsig's agree within the
    /// search's tolerance.
    eps_agreement: f64,
    paired: Vec<Paired>,
}

/// One workload measured `rounds` times, apsig then the peer each round, seconds apart.
#[derive(Serialize)]
struct Paired {
    what: String,
    /// The peer's fastest variant, chosen in the first round (which times them all).
    variant: String,
    /// Every variant's rate in the first round.
    variants: serde_json::Value,
    apsig: Vec<f64>,
    peer: Vec<f64>,
    /// apsig / peer, round by round.
    ratios: Vec<f64>,
    /// Filled by `summarise` after the last round.
    median_apsig: f64,
    median_peer: f64,
    median_ratio: f64,
    min_ratio: f64,
    max_ratio: f64,
}

impl Paired {
    fn new(what: &str) -> Self {
        Paired {
            what: what.into(),
            variant: String::new(),
            variants: serde_json::Value::Null,
            apsig: vec![],
            peer: vec![],
            ratios: vec![],
            median_apsig: f64::NAN,
            median_peer: f64::NAN,
            median_ratio: f64::NAN,
            min_ratio: f64::NAN,
            max_ratio: f64::NAN,
        }
    }

    fn push(&mut self, ours: f64, reply: &serde_json::Value) -> Result<()> {
        let theirs = reply["images_per_sec"].as_f64().with_context(|| format!("peer's {}: {reply}", self.what))?;
        if self.variant.is_empty() {
            self.variant = reply["variant"].as_str().unwrap_or("?").to_string();
            self.variants = reply["variants"].clone();
        }
        self.apsig.push(ours);
        self.peer.push(theirs);
        self.ratios.push(ours / theirs);
        Ok(())
    }

    /// The medians and the range of the ratios, once every round is in.
    fn summarise(&mut self) {
        self.median_apsig = median(&self.apsig);
        self.median_peer = median(&self.peer);
        self.median_ratio = median(&self.ratios);
        self.min_ratio = self.ratios.iter().copied().fold(f64::INFINITY, f64::min);
        self.max_ratio = self.ratios.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    }
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    match s.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => s[n / 2],
        n => (s[n / 2 - 1] + s[n / 2]) / 2.0,
    }
}

/// The workloads both sides run, in the order of each round.
#[derive(Clone, Copy)]
enum Workload {
    Forward(usize),
    TrainTargetNet,
    TrainDecoder,
}

impl Workload {
    const ALL: [Workload; 5] = [
        Workload::Forward(256),
        Workload::Forward(1024),
        Workload::Forward(4096),
        Workload::TrainTargetNet,
        Workload::TrainDecoder,
    ];

    fn name(self) -> String {
        match self {
            Workload::Forward(b) => format!("forward batch {b}"),
            Workload::TrainTargetNet => "training TargetNet-S".into(),
            Workload::TrainDecoder => "training decoder".into(),
        }
    }

    fn request(self, secs: f64) -> serde_json::Value {
        match self {
            Workload::Forward(b) => serde_json::json!({"run": "forward", "batch": b, "secs": secs}),
            Workload::TrainTargetNet => serde_json::json!({"run": "train_targetnet", "secs": secs}),
            Workload::TrainDecoder => serde_json::json!({"run": "train_decoder", "secs": secs}),
        }
    }

    fn apsig_rate(self, net: &apsig::nn::Network, train: &TrainingData, secs: f64) -> Result<f64> {
        match self {
            Workload::Forward(b) => Ok(forward_rate(net, b, secs)),
            Workload::TrainTargetNet => targetnet_train_rate(train, secs),
            Workload::TrainDecoder => decoder_train_rate(train, secs),
        }
    }
}

/// Starts the peer on the same model and inputs, measures its signature search (checked
/// against `plain_eps`, apsig's plain change-bit search of the first test images), then
/// alternates apsig and the peer on every workload for `a.rounds` rounds.
#[allow(clippy::too_many_arguments)]
fn against_peer(
    python: &str,
    a: &BenchArgs,
    net: &apsig::nn::Network,
    test: &apsig::data::Split,
    plain_eps: &[f32],
    dirs: &Directions,
    train: &TrainingData,
    threads: usize,
    bars: &Bars,
) -> Result<PeerReport> {
    let n = plain_eps.len() / dirs.k();
    let tmp = tempfile::Builder::new().prefix("apsig-peer-").tempdir().context("a temporary directory for the peer")?;
    let model_path = tmp.path().join("model.safetensors");
    apsig::model::save_network(&model_path, apsig::model::Arch::TargetNetS, net, &BTreeMap::new())?;
    let inputs = tmp.path().join("inputs.safetensors");
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
    let mut peer = Peer::start(python, &model_path, &inputs, threads, tmp.path().join("peer-stderr.log"))?;
    let eps_path = tmp.path().join("peer-eps.bin");
    let signatures = peer.ask(serde_json::json!({"run": "signatures", "eps_out": eps_path}))?;
    let eps_agreement = peer_agreement(&eps_path, plain_eps)?;
    let mut paired: Vec<Paired> = Workload::ALL.iter().map(|w| Paired::new(&w.name())).collect();
    let rounds = a.rounds as usize;
    bars.begin("bench rounds", (rounds * Workload::ALL.len()) as u64);
    for _ in 0..rounds {
        for (w, p) in Workload::ALL.iter().zip(&mut paired) {
            let ours = w.apsig_rate(net, train, a.secs)?;
            let reply = peer.ask(w.request(a.secs))?;
            p.push(ours, &reply)?;
            bars.advance(1);
        }
    }
    bars.end();
    paired.iter_mut().for_each(Paired::summarise);
    Ok(PeerReport {
        torch_version: peer.info["torch_version"].as_str().unwrap_or("?").to_string(),
        threads: peer.info["threads"].as_u64().unwrap_or(0),
        signatures,
        eps_agreement,
        paired,
    })
}

fn print_peer(r: &PeerReport, sig_ours: f64) {
    let rounds = r.paired.first().map_or(0, |p| p.ratios.len());
    println!(
        "\nPyTorch peer ({}), {} threads, same inputs; {rounds} rounds, each timing apsig then the peer on every \
         workload; the peer's fastest variant (chosen in the first round, which times them all) counts:",
        r.torch_version, r.threads
    );
    println!(
        "{:<22} {:>12} {:>12}  {:<28} {:>7}  ratio range",
        "images/s (median)", "apsig", "PyTorch", "variant", "ratio"
    );
    for p in &r.paired {
        println!(
            "{:<22} {:>12.0} {:>12.0}  {:<28} {:>6.2}x  {:.2}-{:.2}x",
            p.what, p.median_apsig, p.median_peer, p.variant, p.median_ratio, p.min_ratio, p.max_ratio
        );
    }
    let sig_theirs = r.signatures["images_per_sec"].as_f64().unwrap_or(f64::NAN);
    println!(
        "plain change-bit signatures: PyTorch {sig_theirs:.2} images/s ({:.2} queries/eps), apsig {sig_ours:.2}: ratio {:.2}x; eps agree within tolerance for {:.1}% of pairs",
        r.signatures["queries_per_eps"].as_f64().unwrap_or(f64::NAN),
        sig_ours / sig_theirs,
        100.0 * r.eps_agreement
    );
}

/// Fraction of (image, direction) pairs where the peer's eps and ours agree to 1e-3 (x2 for rounding).
fn peer_agreement(eps_file: &std::path::Path, ours: &[f32]) -> Result<f64> {
    let bytes = std::fs::read(eps_file).with_context(|| format!("reading {}", eps_file.display()))?;
    let theirs: Vec<f32> = bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
    if theirs.len() != ours.len() {
        anyhow::bail!("the peer wrote {} eps, apsig measured {}", theirs.len(), ours.len());
    }
    let agree = ours.iter().zip(&theirs).filter(|(a, b)| ((**a / **b) - 1.0).abs() <= 2e-3).count();
    Ok(agree as f64 / ours.len().max(1) as f64)
}

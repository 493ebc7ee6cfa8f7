//! One function per subcommand.

use crate::progress::Bars;
use crate::search_args::SearchArgs;
use anyhow::{bail, Context, Result};
use apsig::data::DataOptions;
use apsig::decoder::{Critic, Decoder};
use apsig::directions::{DirectionConfig, Directions, Strategy};
use apsig::model::{load_network, Arch, TrainConfig};
use apsig::nn::PixelLoss;
use apsig::pipeline::{self, files, RunConfig, UserModels};
use apsig::signature::{extract, ExtractConfig, Method, SearchConfig, Shard, SignatureSet};
use clap::{Args, Subcommand, ValueEnum};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Subcommand)]
pub enum Command {
    /// Run the whole attack into a run directory (config, models, signatures, metrics.json, figures, report.md).
    Run(RunArgs),
    /// Train a classifier (the target M, or the independent evaluator) and save it as safetensors.
    TrainTarget(TrainArgs),
    /// Generate K seeded perturbation directions.
    Directions(DirArgs),
    /// Measure signatures (eps along each direction) for images of a split. The search
    /// defaults to the paper's: a doubling grid, bisected to 0.1% (--growth 2 --rel-tol 0.001).
    Signatures(SigArgs),
    /// Merge signature shards into one file, checking they fit together.
    Merge(MergeArgs),
    /// Train the decoder on (signature, image) pairs of the training split.
    TrainDecoder(DecArgs),
    /// Reconstruct images from signatures and evaluate them (MSE, PSNR, SSIM, class recovery).
    Reconstruct(ReconArgs),
    /// Measure throughput (forward, signatures, decoder training) and compare with a PyTorch peer.
    Bench(crate::bench::BenchArgs),
    /// Serve a model as a change oracle over HTTP (simulated private inference: change bits only).
    Serve(crate::serve::ServeArgs),
    /// Attack a secret held by `apsig serve`: its signature over HTTP, then a reconstruction. The
    /// search defaults to the decoder's grade: a x1.6 grid, refined to 1% (--growth 1.6
    /// --rel-tol 0.01).
    Attack(crate::attack::AttackArgs),
    /// Reconstruction quality against queries per secret, for the plain and cheaper searches.
    QueryCurve(crate::query_curve::CurveArgs),
    /// Write a target model (safetensors) as ONNX.
    ExportOnnx(ExportOnnxArgs),
    /// Compare two run configurations on the same secrets, one pair of finished runs per seed:
    /// MSE, identification and class recovery with paired bootstrap intervals, and a winner
    /// only where every seed agrees.
    Compare(crate::compare::CompareArgs),
    /// The study beyond the paper: direction strategies, oracle variants, defences, sweeps over K,
    /// training size and query budget, attributes from signatures; both data sets, one report.
    Study(crate::study::StudyArgs),
    /// Write a colour benchmark (Colour-MNIST-32, Colour-Fashion-32) from a grey data set as .npz.
    MakeColour(crate::make_colour::MakeColourArgs),
}

#[derive(Args)]
pub struct ExportOnnxArgs {
    /// Target model file (safetensors).
    #[arg(long)]
    model: PathBuf,
    /// Where to write the ONNX model.
    #[arg(long, short)]
    out: PathBuf,
}

/// The presets of `apsig run` (`RunConfig::preset`).
#[derive(Clone, Copy, ValueEnum)]
pub enum RunPreset {
    /// 3-5 min on 2 cores: 12,000 training signatures, 2,000 secrets, Gaussian directions.
    Quick,
    /// The paper's scale: 60k training images and an affine copy of each, low-frequency
    /// directions, the class guide, the full test set (12 min on a 2-core AVX-512 EPYC, 30 to
    /// 34 min on a slower 2-core Xeon).
    Paper,
    /// Seconds, for tests.
    Smoke,
}

impl RunPreset {
    /// The preset's name, as `RunConfig::preset` takes it.
    pub fn name(self) -> &'static str {
        match self {
            RunPreset::Quick => "quick",
            RunPreset::Paper => "paper",
            RunPreset::Smoke => "smoke",
        }
    }
}

#[derive(Args)]
pub struct RunArgs {
    /// Output run directory (rerunning into the same directory resumes and reuses finished stages).
    #[arg(long, short, default_value = "runs/quick")]
    out: PathBuf,
    /// Preset to start from.
    #[arg(long, value_enum, default_value_t = RunPreset::Quick)]
    preset: RunPreset,
    /// A TOML config (see `config.toml` in any run directory); overrides the preset.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Seed for directions, initialisation and data order [default: 1, or the config's]. With
    /// --config, every seed in it moves by the same step, so `directions.seed` becomes this and
    /// the others keep their offsets: the same config at another seed.
    #[arg(long)]
    seed: Option<u64>,
    /// Data set name (mnist, fashion-mnist, cifar10, cifar100), a directory (IDX files, train/ and
    /// test/ image folders, CIFAR batches) or a .npz file (overrides the config).
    #[arg(long)]
    dataset: Option<String>,
    /// Attack this model instead of training TargetNet-S: an ONNX file (input [N,C,H,W] as
    /// PyTorch exports it, [N,H,W,C] or [N,H,W]; output [N, classes]) or an apsig model file.
    #[arg(long, value_name = "FILE")]
    model: Option<PathBuf>,
    /// Judge class recovery with this model instead of training EvalNet (formats as --model).
    #[arg(long, value_name = "FILE")]
    evaluator: Option<PathBuf>,
}

#[derive(Args)]
pub struct TrainArgs {
    /// Where to write the trained model (safetensors).
    #[arg(long, short)]
    out: PathBuf,
    /// Data set: a known name (mnist, fashion-mnist, cifar10, cifar100; found under --data-dir),
    /// a `.npz` file, or a directory (IDX files, `train/` and `test/` image folders, CIFAR batches).
    #[arg(long, default_value = "mnist")]
    dataset: String,
    /// targetnet-s (the target M) or evalnet (the independent evaluator).
    #[arg(long, value_enum, default_value_t = ArchArg::TargetnetS)]
    arch: ArchArg,
    /// Passes over the training split.
    #[arg(long, default_value_t = 5)]
    epochs: usize,
    /// Seed of the initialisation and the data order (same seed and threads, same bits).
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

#[derive(Args)]
pub struct DirArgs {
    /// Where to write the directions (safetensors, with their fingerprint).
    #[arg(long, short)]
    out: PathBuf,
    /// Number of directions K: one eps per direction in every signature.
    #[arg(long, default_value_t = 100)]
    k: usize,
    /// How the directions are drawn (the data-dependent strategies, which look at the
    /// adversary's training data, are set in a `run` config: `directions.strategy`).
    #[arg(long, value_enum, default_value_t = DataFreeStrategy::Gaussian)]
    strategy: DataFreeStrategy,
    /// Seed of the draws; the first k directions of a set of K are the set of k.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Image side of square greyscale images (28 for MNIST).
    #[arg(long, default_value_t = 28)]
    side: usize,
    /// Image shape HxWxC (e.g. 32x32x3), for images that are not square greyscale.
    #[arg(long, conflicts_with = "side")]
    shape: Option<ImageShape>,
}

/// The direction strategies that need only a seed and a shape (`Strategy`'s data-free ones).
#[derive(Clone, Copy, ValueEnum)]
pub enum DataFreeStrategy {
    /// i.i.d. standard normal per pixel and channel (the paper's).
    Gaussian,
    /// i.i.d. +-1 per pixel and channel.
    Rademacher,
    /// Smooth noise from the low 2-D DCT band, each channel its own.
    LowFrequency,
    /// One smooth pattern per direction in one random colour (for colour images).
    LowFrequencyTinted,
}

impl From<DataFreeStrategy> for Strategy {
    fn from(s: DataFreeStrategy) -> Strategy {
        match s {
            DataFreeStrategy::Gaussian => Strategy::Gaussian,
            DataFreeStrategy::Rademacher => Strategy::Rademacher,
            DataFreeStrategy::LowFrequency => Strategy::LowFrequency,
            DataFreeStrategy::LowFrequencyTinted => Strategy::LowFrequencyTinted,
        }
    }
}

/// An image shape on the command line: `HxWxC`.
#[derive(Clone, Copy, Debug)]
pub struct ImageShape(apsig::nn::Shape);

impl std::str::FromStr for ImageShape {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let dims: Vec<usize> = s
            .split(['x', 'X'])
            .map(|d| d.trim().parse::<usize>().ok().filter(|&v| v > 0 && v <= 4096))
            .collect::<Option<_>>()
            .ok_or_else(|| format!("`{s}` is not HxWxC with sides 1..=4096 (e.g. 32x32x3)"))?;
        match dims[..] {
            [h, w, c] if c == 1 || c == 3 => Ok(ImageShape(apsig::nn::Shape::new(h, w, c))),
            _ => Err(format!("`{s}` is not HxWxC with C = 1 or 3 (e.g. 32x32x3)")),
        }
    }
}

#[derive(Args)]
pub struct SigArgs {
    /// Target model file (apsig safetensors, or any `.onnx` classifier).
    #[arg(long)]
    model: PathBuf,
    /// Directions file.
    #[arg(long)]
    directions: PathBuf,
    /// Where to write the signatures (safetensors: eps, censoring and queries per direction).
    #[arg(long, short)]
    out: PathBuf,
    /// Data set: a known name (mnist, fashion-mnist, cifar10, cifar100; found under --data-dir),
    /// a `.npz` file, or a directory (IDX files, `train/` and `test/` image folders, CIFAR batches).
    #[arg(long, default_value = "mnist")]
    dataset: String,
    /// Which split's images: test (the secrets) or train (the adversary's own).
    #[arg(long, value_enum, default_value_t = SplitArg::Test)]
    split: SplitArg,
    /// First image index.
    #[arg(long, default_value_t = 0)]
    from: usize,
    /// Number of images (0 = to the end of the split).
    #[arg(long, default_value_t = 0)]
    count: usize,
    /// Take only shard i of n of the range (e.g. 3/8), for a cluster's job array; merge with `apsig merge`.
    #[arg(long)]
    shard: Option<Shard>,
    /// How each eps is found.
    #[arg(long, value_enum, default_value_t = MethodArg::ChangeBit)]
    method: MethodArg,
    #[command(flatten)]
    search: SearchArgs,
    /// Keep finished blocks here so a killed run resumes (default: <out>.parts).
    #[arg(long)]
    parts: Option<PathBuf>,
}

#[derive(Args)]
pub struct MergeArgs {
    /// Where to write the merged signatures.
    #[arg(long, short)]
    out: PathBuf,
    /// Shard files.
    #[arg(required = true)]
    shards: Vec<PathBuf>,
}

#[derive(Args)]
pub struct DecArgs {
    /// Training signatures.
    #[arg(long)]
    signatures: PathBuf,
    /// Where to write the decoder (safetensors; its standardiser beside it).
    #[arg(long, short)]
    out: PathBuf,
    /// Data set: a known name (mnist, fashion-mnist, cifar10, cifar100; found under --data-dir),
    /// a `.npz` file, or a directory (IDX files, `train/` and `test/` image folders, CIFAR batches).
    #[arg(long, default_value = "mnist")]
    dataset: String,
    /// Passes over the training pairs.
    #[arg(long, default_value_t = 20)]
    epochs: usize,
    /// Base width: channels of the last hidden layer (the projection has more).
    #[arg(long, default_value_t = 64)]
    width: usize,
    /// Width of a dense hidden layer before the decoder's projection; 0 for none [default:
    /// the preset's, `decoder.hidden`]
    #[arg(long)]
    hidden: Option<usize>,
    /// Weight of the class guide: the critic's cross-entropy on each reconstruction, against
    /// the class of the adversary's image, added to the L2 loss (0: L2 alone, the paper's).
    #[arg(long, default_value_t = 0.0, requires = "critic")]
    class_weight: f32,
    /// Standard deviation of Gaussian noise added to each reconstruction before the critic
    /// reads it (the guide follows a smoothed critic, which carries over to other classifiers).
    #[arg(long, default_value_t = 0.0, requires = "critic")]
    class_noise: f32,
    /// The per-pixel loss (`decoder.loss`).
    #[arg(long, value_enum, default_value_t = LossArg::L2)]
    loss: LossArg,
    /// Decide each reconstruction's two colours by the palette of the training images
    /// (`decoder.palette`; for two-colour images such as Colour-MNIST, other data is refused
    /// before training). `apsig reconstruct` then decides with the palette stored in the decoder.
    #[arg(long)]
    palette: bool,
    /// The adversary's own classifier that reads the reconstructions for the class guide: a
    /// model file apsig saved (e.g. a run's `target.safetensors`). Read only with
    /// `--class-weight` above 0.
    #[arg(long)]
    critic: Option<PathBuf>,
    /// Seed of the initialisation and the data order.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

#[derive(Args)]
pub struct ReconArgs {
    /// Decoder file (`apsig train-decoder`, or a run's `decoder.safetensors`).
    #[arg(long)]
    decoder: PathBuf,
    /// Test signatures.
    #[arg(long)]
    signatures: PathBuf,
    /// Independent evaluator model (for class recovery): an apsig model file or any ONNX classifier.
    #[arg(long)]
    evaluator: PathBuf,
    /// Write the reconstructions here (safetensors: `reconstructions` [n, pixels] and the test
    /// image `indices` [n]) [default: `<signatures>.reconstructions.safetensors`].
    #[arg(long, short)]
    out: Option<PathBuf>,
    /// Data set: a known name (mnist, fashion-mnist, cifar10, cifar100; found under --data-dir),
    /// a `.npz` file, or a directory (IDX files, `train/` and `test/` image folders, CIFAR batches).
    #[arg(long, default_value = "mnist")]
    dataset: String,
    /// Write originals over reconstructions here (PNG).
    #[arg(long)]
    png: Option<PathBuf>,
    /// Write the metrics here (JSON).
    #[arg(long)]
    json: Option<PathBuf>,
}

pub fn dispatch(cmd: Command, opts: &DataOptions, bars: &Bars) -> Result<()> {
    match cmd {
        Command::Run(a) => run(a, opts, bars),
        Command::TrainTarget(a) => train_target(a, opts, bars),
        Command::Directions(a) => directions(a),
        Command::Signatures(a) => signatures(a, opts, bars),
        Command::Merge(a) => merge(a),
        Command::TrainDecoder(a) => train_decoder(a, opts, bars),
        Command::Reconstruct(a) => reconstruct(a, opts),
        Command::Bench(a) => crate::bench::bench(a, opts, bars),
        Command::Serve(a) => crate::serve::serve(a),
        Command::Attack(a) => crate::attack::attack(a, opts),
        Command::QueryCurve(a) => crate::query_curve::query_curve(a, opts),
        Command::ExportOnnx(a) => export_onnx(a),
        Command::Compare(a) => crate::compare::compare(a, opts, bars),
        Command::Study(a) => crate::study::study(a, opts, bars),
        Command::MakeColour(a) => crate::make_colour::make_colour(a, opts),
    }
}

fn run(a: RunArgs, opts: &DataOptions, bars: &Bars) -> Result<()> {
    let mut cfg = match (&a.config, a.seed) {
        (Some(p), None) => apsig::io::read_toml::<RunConfig>(p)?,
        (Some(p), Some(seed)) => apsig::io::read_toml::<RunConfig>(p)?.reseeded(seed),
        (None, seed) => RunConfig::preset(a.preset.name(), seed.unwrap_or(1))?,
    };
    if let Some(d) = a.dataset {
        cfg.dataset = d;
    }
    let models = UserModels {
        target: a.model.as_ref().map(|p| apsig_onnx::load_model(p, Arch::TargetNetS)).transpose()?,
        evaluator: a.evaluator.as_ref().map(|p| apsig_onnx::load_model(p, Arch::EvalNet)).transpose()?,
    };
    let m = pipeline::run_with(&cfg, &models, &a.out, opts, bars)?;
    let from = |r: &pipeline::ModelRecord| if r.user_supplied { format!(" ({})", r.file) } else { String::new() };
    println!("run directory: {}", a.out.display());
    println!("target M test accuracy      {:.2}%{}", 100.0 * m.target_test_accuracy, from(&m.models.target));
    println!("evaluator test accuracy     {:.2}%{}", 100.0 * m.evaluator_test_accuracy, from(&m.models.evaluator));
    println!("                            MSE      PSNR   SSIM   class recovery  identified (in class)");
    for (name, q) in [
        ("decoder", &m.decoder),
        ("class-mean baseline", &m.class_mean_baseline),
        ("global-mean baseline", &m.global_mean_baseline),
    ] {
        let [id, in_class] = q.identified_cells();
        println!(
            "{name:<27} {:.4}  {:5.2}  {:.3}  {:>13.1}%  {id} ({in_class})",
            q.mse,
            q.psnr_db,
            q.ssim,
            100.0 * q.class_recovery
        );
    }
    println!(
        "queries per secret image    {:.0} ({:.2} per eps, {:.1}% censored)",
        m.test_signatures.queries_per_image,
        m.test_signatures.queries_per_eps,
        100.0 * m.test_signatures.censored_fraction
    );
    println!("total wall time             {:.1} s; report: {}", m.total_seconds, a.out.join(files::REPORT).display());
    Ok(())
}

/// The classifier architectures `train-target` trains.
#[derive(Clone, Copy, ValueEnum)]
enum ArchArg {
    /// The target M.
    TargetnetS,
    /// The independent evaluator.
    Evalnet,
}

impl From<ArchArg> for Arch {
    fn from(a: ArchArg) -> Arch {
        match a {
            ArchArg::TargetnetS => Arch::TargetNetS,
            ArchArg::Evalnet => Arch::EvalNet,
        }
    }
}

/// The decoder's per-pixel loss.
#[derive(Clone, Copy, ValueEnum)]
enum LossArg {
    /// Mean squared error, the paper's: paints the mean of what the signature leaves open.
    L2,
    /// Mean absolute error: paints the likelier value (sharper strokes, purer colours) at some
    /// cost in MSE.
    L1,
}

impl From<LossArg> for PixelLoss {
    fn from(l: LossArg) -> PixelLoss {
        match l {
            LossArg::L2 => PixelLoss::L2,
            LossArg::L1 => PixelLoss::L1,
        }
    }
}

/// A split of the data set.
#[derive(Clone, Copy, ValueEnum)]
enum SplitArg {
    Train,
    Test,
}

impl SplitArg {
    fn name(self) -> &'static str {
        match self {
            SplitArg::Train => "train",
            SplitArg::Test => "test",
        }
    }
}

/// How eps is measured.
#[derive(Clone, Copy, ValueEnum)]
enum MethodArg {
    /// The oracle's change bits only: the route for secrets.
    ChangeBit,
    /// Margins of the model: the adversary's own data.
    WhiteBox,
}

impl From<MethodArg> for Method {
    fn from(m: MethodArg) -> Method {
        match m {
            MethodArg::ChangeBit => Method::ChangeBit,
            MethodArg::WhiteBox => Method::WhiteBox,
        }
    }
}

fn train_target(a: TrainArgs, opts: &DataOptions, bars: &Bars) -> Result<()> {
    let arch = Arch::from(a.arch);
    let data = apsig::data::load(&a.dataset, opts)?;
    let cfg = TrainConfig::new(a.epochs, 128, 2e-3, a.seed);
    let ckdir = a.out.parent().map(Path::to_path_buf).unwrap_or_default();
    let (_, acc, secs) = pipeline::classifier_stage(arch, &data, &cfg, &a.out, &ckdir, bars)?;
    println!("{}: {} test accuracy {:.2}% ({secs:.1} s)", a.out.display(), arch.name(), 100.0 * acc);
    Ok(())
}

fn directions(a: DirArgs) -> Result<()> {
    let d = Directions::generate(
        &DirectionConfig { strategy: a.strategy.into(), k: a.k, seed: a.seed },
        a.shape.map_or(apsig::nn::Shape::new(a.side, a.side, 1), |s| s.0),
    )?;
    d.save(&a.out)?;
    println!("{}: {} directions, fingerprint {}", a.out.display(), a.k, d.fingerprint());
    Ok(())
}

fn signatures(a: SigArgs, opts: &DataOptions, bars: &Bars) -> Result<()> {
    let model = apsig_onnx::load_model(&a.model, Arch::TargetNetS)?.classifier;
    let dirs = Directions::load(&a.directions)?;
    if dirs.shape != model.input_shape() {
        let (d, m) = (dirs.shape, model.input_shape());
        bail!(
            "{}: directions are {}x{}x{} but {} takes {}x{}x{} inputs",
            a.directions.display(),
            d.h,
            d.w,
            d.c,
            a.model.display(),
            m.h,
            m.w,
            m.c
        );
    }
    let data = apsig::data::load(&a.dataset, opts)?;
    let split = match a.split {
        SplitArg::Train => &data.train,
        SplitArg::Test => &data.test,
    };
    let method = Method::from(a.method);
    let search = a.search.config(&SearchConfig::plain(256.0))?;
    let prior = a.search.prior(dirs.k(), &search)?;
    let end = if a.count == 0 { split.n } else { (a.from + a.count).min(split.n) };
    let mut prov = BTreeMap::new();
    prov.insert("dataset".to_string(), data.name.clone());
    prov.insert("split".to_string(), a.split.name().to_string());
    let parts = a.parts.unwrap_or_else(|| a.out.with_extension("parts"));
    let cfg = ExtractConfig { method, search };
    let set =
        extract(model, &dirs, split, &prov, a.from..end, a.shard, Some(prior.as_prior()), &cfg, Some(&parts), bars)?;
    set.save(&a.out)?;
    let _ = std::fs::remove_dir_all(&parts);
    println!(
        "{}: {} images, {:.2} queries/eps, {:.0} queries/image, {:.1}% censored",
        a.out.display(),
        set.n(),
        set.queries_per_eps(),
        set.total_queries() as f64 / set.n() as f64,
        100.0 * set.censored_fraction()
    );
    Ok(())
}

fn export_onnx(a: ExportOnnxArgs) -> Result<()> {
    let model = load_network(&a.model, Some(Arch::TargetNetS))?;
    apsig_onnx::export_targetnet(&model.net, &a.out)?;
    println!("{}: ONNX export of {}", a.out.display(), a.model.display());
    Ok(())
}

fn merge(a: MergeArgs) -> Result<()> {
    let parts = a.shards.iter().map(|p| Ok((p.clone(), SignatureSet::load(p)?))).collect::<Result<Vec<_>>>()?;
    let merged = SignatureSet::merge_shards(parts)?;
    merged.save(&a.out)?;
    println!("{}: {} images merged from {} shards", a.out.display(), merged.n(), a.shards.len());
    Ok(())
}

fn train_decoder(a: DecArgs, opts: &DataOptions, bars: &Bars) -> Result<()> {
    let sigs = SignatureSet::load(&a.signatures)?;
    let data = apsig::data::load(&a.dataset, opts)?;
    let mut cfg = RunConfig::quick(a.seed).decoder;
    cfg.width = a.width;
    cfg.hidden = a.hidden.unwrap_or(cfg.hidden);
    cfg.train.epochs = a.epochs;
    cfg.train.seed = a.seed;
    cfg.class_weight = a.class_weight;
    cfg.class_noise = a.class_noise;
    cfg.loss = a.loss.into();
    cfg.palette = a.palette;
    let images = pipeline::images_of(&data.train, &sigs).with_context(|| format!("{}", a.signatures.display()))?;
    let labels = pipeline::labels_of(&data.train, &sigs);
    let critic = a.critic.as_deref().map(|p| load_network(p, None)).transpose()?;
    let critic = critic.as_ref().map(|m| Critic { net: &m.net, labels: &labels });
    let ck = a.out.with_extension("ckpt.safetensors");
    let image = pipeline::image_shape(&data.train);
    let (dec, rep) = Decoder::fit(&sigs, &images, image, &cfg, critic, Some(&ck), bars)?;
    dec.save(&a.out, &BTreeMap::new())?;
    let _ = std::fs::remove_file(ck);
    println!(
        "{}: trained on {} signatures, final loss {:.5} ({:.0} images/s)",
        a.out.display(),
        sigs.n(),
        rep.final_loss,
        rep.samples_per_sec
    );
    Ok(())
}

fn reconstruct(a: ReconArgs, opts: &DataOptions) -> Result<()> {
    let dec = Decoder::load(&a.decoder)?;
    let sigs = SignatureSet::load(&a.signatures)?;
    let eval = apsig_onnx::load_model(&a.evaluator, Arch::EvalNet)?;
    let data = apsig::data::load(&a.dataset, opts)?;
    let classes = data.train.num_classes().max(data.test.num_classes());
    eval.check_fits("evaluator", pipeline::image_shape(&data.test), classes)?;
    let recons =
        dec.reconstruct(&sigs).with_context(|| format!("{} with {}", a.signatures.display(), a.decoder.display()))?;
    let originals = pipeline::images_of(&data.test, &sigs)?;
    let labels = pipeline::labels_of(&data.test, &sigs);
    let out = a.out.unwrap_or_else(|| a.signatures.with_extension("reconstructions.safetensors"));
    let image = pipeline::image_shape(&data.test);
    pipeline::write_reconstructions(&out, &recons, &sigs.indices, image)?;
    let q = apsig::eval::quality(&recons, &originals, &labels, image, eval.classifier.as_ref());
    let json = serde_json::to_string_pretty(&q)?;
    println!("{json}");
    if let Some(p) = a.json {
        apsig::io::atomic_write(&p, json.as_bytes())?;
    }
    if let Some(p) = a.png {
        let rows: Vec<usize> = (0..sigs.n().min(12)).collect();
        apsig::io::atomic_write(
            &p,
            &apsig::pipeline::report::originals_over_recons(
                "originals over reconstructions",
                &data,
                &sigs,
                &recons,
                &rows,
            )?,
        )?;
    }
    Ok(())
}

impl Command {
    /// The data set the command reads (name or directory), if it reads one: what
    /// `--download --mirror` fetches before the command runs.
    pub fn dataset(&self) -> Option<String> {
        match self {
            Command::Run(a) => match (&a.dataset, &a.config) {
                (Some(d), _) => Some(d.clone()),
                (None, Some(p)) => apsig::io::read_toml::<RunConfig>(p).ok().map(|c| c.dataset),
                (None, None) => RunConfig::preset(a.preset.name(), 1).ok().map(|c| c.dataset),
            },
            Command::TrainTarget(a) => Some(a.dataset.clone()),
            Command::Signatures(a) => Some(a.dataset.clone()),
            Command::TrainDecoder(a) => Some(a.dataset.clone()),
            Command::Reconstruct(a) => Some(a.dataset.clone()),
            Command::Study(a) => a.config().ok().and_then(|c| c.datasets.first().cloned()),
            Command::MakeColour(a) => Some(a.from.clone()),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The command line's names are the library's, and every data-free strategy has one.
    #[test]
    fn data_free_strategies_mirror_the_library() {
        let cli: Vec<&str> = DataFreeStrategy::value_variants()
            .iter()
            .map(|v| {
                let name = Strategy::from(*v).name();
                assert_eq!(v.to_possible_value().unwrap().get_name(), name);
                name
            })
            .collect();
        let library: Vec<&str> = Strategy::ALL.iter().filter(|s| !s.needs_data()).map(|s| s.name()).collect();
        assert_eq!(cli, library);
    }
}

//! `apsig query-curve`: reconstruction quality against queries per secret image, for the
//! paper's plain search and for cheaper searches, using a finished run's artefacts.

use anyhow::{bail, Context, Result};
use apsig::data::DataOptions;
use apsig::decoder::Decoder;
use apsig::directions::Directions;
use apsig::model::{Arch, SuppliedModel};
use apsig::pipeline::{files, images_of, labels_of};
use apsig::signature::{extract, EpsPredictor, ExtractConfig, Method, Prior, SearchConfig, SignatureSet};
use apsig_report::{LineChart, Series};
use clap::Args;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Args)]
pub struct CurveArgs {
    /// A finished run directory (target, evaluator, directions, training signatures, decoder).
    #[arg(long)]
    run: PathBuf,
    /// Test images (secrets) per search configuration.
    #[arg(long, default_value_t = 500)]
    images: usize,
    /// The target M [default: the run's own, or the file a run on a user's model recorded].
    #[arg(long, value_name = "FILE")]
    model: Option<PathBuf>,
    /// The evaluator [default: the run's own, or the file a run on a user's model recorded].
    #[arg(long, value_name = "FILE")]
    evaluator: Option<PathBuf>,
}

/// A run's model for a role: `flag` when given, else the model apsig trained into the run
/// directory, else the user's file that the run's `metrics.json` records, if its SHA-256 is
/// still what the run saw.
pub(crate) fn run_model(run: &Path, flag: Option<&Path>, own: &str, role: &str, arch: Arch) -> Result<SuppliedModel> {
    if let Some(p) = flag {
        return Ok(apsig_onnx::load_model(p, arch)?);
    }
    let own = run.join(own);
    if own.exists() {
        return Ok(apsig_onnx::load_model(&own, arch)?);
    }
    let metrics_path = run.join(files::METRICS);
    let metrics: serde_json::Value = std::fs::read(&metrics_path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .with_context(|| format!("{}: missing, and no readable {}", own.display(), metrics_path.display()))?;
    let record = &metrics["models"][role];
    let (Some(true), Some(file), Some(sha256)) =
        (record["user_supplied"].as_bool(), record["file"].as_str(), record["sha256"].as_str())
    else {
        bail!("{}: missing, and {} records no user-supplied {role}", own.display(), metrics_path.display());
    };
    let m = apsig_onnx::load_model(file, arch)?;
    if m.sha256 != sha256 {
        bail!("{file}: changed since the run in {} (SHA-256 {sha256} then, {} now)", run.display(), m.sha256);
    }
    Ok(m)
}

/// Where a curve point's search starts.
#[derive(Clone, Copy, PartialEq)]
enum Start {
    /// At the search's `start` on every direction.
    Fixed,
    /// At the training signatures' median eps.
    Median,
    /// Directions in groups of 10, each predicted from those measured before.
    Predicted,
}

/// Directions per group of the predicted search (the run preset's; 5 to 20 measured alike).
const PREDICT_GROUP: usize = 10;

#[derive(Serialize)]
struct Point {
    search: String,
    /// Started from the training signatures (median or prediction).
    prior: bool,
    /// Predicted brackets (`signature::EpsPredictor`).
    predicted: bool,
    queries_per_image: f64,
    queries_per_eps: f64,
    mse: f64,
    class_recovery: f64,
    identification: Option<apsig::eval::Identification>,
}

pub fn query_curve(a: CurveArgs, opts: &DataOptions) -> Result<()> {
    let r = |f: &str| a.run.join(f);
    let target = run_model(&a.run, a.model.as_deref(), files::TARGET, "target", Arch::TargetNetS)?.classifier;
    let evaluator = run_model(&a.run, a.evaluator.as_deref(), files::EVALUATOR, "evaluator", Arch::EvalNet)?.classifier;
    let dirs = Directions::load(&r(files::DIRECTIONS))?;
    let decoder = Decoder::load(&r(files::DECODER))?;
    let train = SignatureSet::load(&r(files::SIG_TRAIN))?;
    let data = apsig::data::load(train.prov("dataset"), opts)?;
    let median = train.median_eps();
    let predictor = EpsPredictor::fit(train.k, &train.eps, PREDICT_GROUP)?;
    let n = a.images.min(data.test.n);
    let eps_max = 256.0;
    let mut prov = BTreeMap::new();
    prov.insert("dataset".to_string(), data.name.clone());
    prov.insert("split".to_string(), "test".to_string());
    let mut cases: Vec<(String, Method, SearchConfig, Start)> = vec![
        (
            "exact (white-box, tol 1e-3): best achievable".into(),
            Method::WhiteBox,
            SearchConfig::plain(eps_max),
            Start::Fixed,
        ),
        ("plain: start 0.5, x2, tol 1e-3".into(), Method::ChangeBit, SearchConfig::plain(eps_max), Start::Fixed),
    ];
    let tolerance = |tol| SearchConfig { start: 0.5, growth: 1.6, eps_max, eps_min: 1e-4, rel_tol: tol };
    for tol in [1e-3f32, 1e-2, 3e-2, 0.1, 0.3] {
        cases.push((format!("prior start, x1.6, tol {tol}"), Method::ChangeBit, tolerance(tol), Start::Median));
    }
    for tol in [3e-2f32, 0.1, 0.2, 0.3] {
        let name = format!("predicted brackets, groups of {PREDICT_GROUP}, tol {tol}");
        cases.push((name, Method::ChangeBit, tolerance(tol), Start::Predicted));
    }
    let originals = {
        let idx = SignatureSet {
            k: 0,
            indices: (0..n as u32).collect(),
            eps: vec![],
            censored: vec![],
            queries: vec![],
            provenance: BTreeMap::new(),
        };
        (images_of(&data.test, &idx)?, labels_of(&data.test, &idx))
    };
    let mut points = Vec::new();
    println!(
        "{:<48} {:>13} {:>11} {:>8} {:>9} {:>10}",
        "search on the secret", "queries/image", "queries/eps", "MSE", "class rec.", "identified"
    );
    for (name, method, search, start) in cases {
        let cfg = ExtractConfig { method, search };
        let prior = match start {
            Start::Fixed => None,
            Start::Median => Some(Prior::Starts(&median)),
            Start::Predicted => Some(Prior::Predicted(&predictor)),
        };
        let sigs =
            extract(target.clone(), &dirs, &data.test, &prov, 0..n, None, prior, &cfg, None, &apsig::NoProgress)?;
        let recon = decoder.reconstruct(&sigs)?;
        let image = apsig::pipeline::image_shape(&data.test);
        let q = apsig::eval::quality(&recon, &originals.0, &originals.1, image, evaluator.as_ref());
        let qpi = sigs.total_queries() as f64 / n as f64;
        println!(
            "{name:<48} {qpi:>13.0} {:>11.2} {:>8.4} {:>8.1}% {:>10}",
            sigs.queries_per_eps(),
            q.mse,
            100.0 * q.class_recovery,
            q.identified_cells()[0]
        );
        points.push(Point {
            search: name,
            prior: start != Start::Fixed,
            predicted: start == Start::Predicted,
            queries_per_image: qpi,
            queries_per_eps: sigs.queries_per_eps(),
            mse: q.mse,
            class_recovery: q.class_recovery,
            identification: q.identification,
        });
    }
    let best = points[0].mse;
    let plain = &points[1];
    let cheapest = points[2..]
        .iter()
        .filter(|p| p.mse <= best * 1.02)
        .min_by(|a, b| a.queries_per_image.total_cmp(&b.queries_per_image));
    println!(
        "\nbest achievable MSE {best:.4}; plain search: {:.0} queries/image (MSE {:.4})",
        plain.queries_per_image, plain.mse
    );
    match cheapest {
        Some(c) => println!(
            "cheapest search within 2% of the best: `{}` with {:.0} queries/image = {:.2}x the plain search's",
            c.search,
            c.queries_per_image,
            c.queries_per_image / plain.queries_per_image
        ),
        None => println!("no cheaper search came within 2% of the best"),
    }
    let mut chart = LineChart::new("Reconstruction MSE against queries per secret image", "queries per image", "MSE");
    chart.series = vec![
        Series::new(
            "prior start, x1.6, varying tolerance",
            points.iter().filter(|p| p.prior && !p.predicted).map(|p| (p.queries_per_image, p.mse)).collect(),
        ),
        Series::new(
            "predicted brackets, varying tolerance",
            points.iter().filter(|p| p.predicted).map(|p| (p.queries_per_image, p.mse)).collect(),
        ),
        Series::new("plain search (paper)", vec![(plain.queries_per_image, plain.mse)]),
    ];
    apsig::io::atomic_write(&a.run.join("quality-vs-queries.png"), &chart.render_png()?)?;
    apsig::io::atomic_write(&a.run.join("quality-vs-queries.json"), serde_json::to_string_pretty(&points)?.as_bytes())?;
    println!("wrote {} and .json", a.run.join("quality-vs-queries.png").display());
    Ok(())
}

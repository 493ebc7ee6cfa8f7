//! The run's figures (Fig. 1-3 of the paper) and its readable `report.md`.

use super::{Metrics, RunConfig, SignatureStats};
use crate::directions::Directions;
use crate::error::Result;
use crate::eval::colour::ColourFidelity;
use crate::io::atomic_write;
use crate::model::Classifier;
use crate::signature::SignatureSet;
use apsig_data::Dataset;
use apsig_report::{fmt_num, markdown_table, ImageGrid, LineChart, Series, VLine};
use std::path::Path;

/// Fig. 1: softmax confidences of M along `x + eps * N_dir`, with the flip point marked.
pub fn fig1(model: &dyn Classifier, x: &[f32], dirs: &Directions, dir: usize, flip_eps: f32) -> Result<Vec<u8>> {
    let steps = 240;
    let top = (flip_eps * 1.5).max(1e-3);
    let d = dirs.get(dir);
    let mut batch = Vec::with_capacity(steps * x.len());
    for s in 0..steps {
        let eps = top * s as f32 / (steps - 1) as f32;
        batch.extend(x.iter().zip(d).map(|(a, b)| a + eps * b));
    }
    let c = model.num_classes();
    let probs = crate::nn::softmax_rows(&model.batch_logits(&batch, steps), c);
    let mut series: Vec<Series> = (0..c).map(|j| Series::new(format!("class {j}"), Vec::new())).collect();
    for s in 0..steps {
        let eps = (top * s as f32 / (steps - 1) as f32) as f64;
        for (j, p) in probs[s * c..(s + 1) * c].iter().enumerate() {
            series[j].points.push((eps, *p as f64));
        }
    }
    let mut chart =
        LineChart::new(format!("Fig. 1: class confidences of M along direction {dir}"), "eps", "softmax confidence");
    chart.series = series;
    chart.vlines = vec![VLine::new(flip_eps as f64, format!("eps_{dir} = {flip_eps:.3}"))];
    Ok(chart.render_png()?)
}

/// Originals over reconstructions for the chosen signature rows.
pub fn originals_over_recons(
    title: &str,
    data: &Dataset,
    sigs: &SignatureSet,
    recons: &[f32],
    rows: &[usize],
) -> Result<Vec<u8>> {
    let px = data.test.pixels();
    let originals: Vec<&[f32]> = rows.iter().map(|&r| data.test.image(sigs.indices[r] as usize)).collect();
    let recon: Vec<&[f32]> = rows.iter().map(|&r| &recons[r * px..(r + 1) * px]).collect();
    let grid = ImageGrid::new(data.test.rows, data.test.cols)
        .with_channels(data.test.channels)
        .with_title(title)
        .with_row("original", originals)
        .with_row("reconstruction", recon);
    Ok(grid.render_png()?)
}

/// Writes the run's figures (Fig. 1-3) and `report.md` into `dir`.
#[allow(clippy::too_many_arguments)]
pub fn write_run_report(
    dir: &Path,
    cfg: &RunConfig,
    m: &Metrics,
    data: &Dataset,
    target: &dyn Classifier,
    dirs: &Directions,
    sigs: &SignatureSet,
    recons: &[f32],
) -> Result<()> {
    let x0 = data.test.image(sigs.indices[0] as usize);
    atomic_write(&dir.join("fig1.png"), &fig1(target, x0, dirs, 0, sigs.eps[0])?)?;
    let first: Vec<usize> = (0..sigs.n().min(12)).collect();
    atomic_write(
        &dir.join("fig2.png"),
        &originals_over_recons("Fig. 2: held-out test originals over reconstructions", data, sigs, recons, &first)?,
    )?;
    let of_class: Vec<usize> =
        (0..sigs.n()).filter(|&r| data.test.labels[sigs.indices[r] as usize] == cfg.fig3_class).take(12).collect();
    if !of_class.is_empty() {
        let title = format!("Fig. 3: samples of class {} over their reconstructions", cfg.fig3_class);
        atomic_write(&dir.join("fig3.png"), &originals_over_recons(&title, data, sigs, recons, &of_class)?)?;
    }
    atomic_write(&dir.join("report.md"), markdown(cfg, m, data).as_bytes())
}

/// What "identified" means, with the chance levels beside it.
fn identification_note(q: &crate::eval::Quality) -> String {
    q.identification.map_or(String::new(), |id| {
        format!(
            "*Identified*: the reconstruction's nearest original (L2, all {} secrets compete) is its own \
             secret; *in class*: only secrets of its class compete (style, not class). Chance: {}% and {}%.\n\n",
            fmt_num((1.0 / id.chance_overall).round(), 0),
            fmt_num(100.0 * id.chance_overall, 3),
            fmt_num(100.0 * id.chance_within_class, 2),
        )
    })
}

fn markdown(cfg: &RunConfig, m: &Metrics, data: &Dataset) -> String {
    let test = &data.test;
    let q = |name: &str, q: &crate::eval::Quality| {
        vec![
            name.to_string(),
            fmt_num(q.mse, 4),
            fmt_num(q.psnr_db, 2),
            fmt_num(q.ssim, 3),
            format!("{:.1}%", 100.0 * q.class_recovery),
            q.identified_cells()[0].clone(),
            q.identified_cells()[1].clone(),
        ]
    };
    let quality = markdown_table(
        &["reconstruction", "MSE", "PSNR (dB)", "SSIM", "class recovery", "identified", "identified in class"],
        &[
            vec![q("decoder (from signatures)", &m.decoder)],
            m.undecided.iter().map(|u| q(UNDECIDED, &u.decoder)).collect(),
            vec![
                q("class-mean baseline (knows the class)", &m.class_mean_baseline),
                q("global-mean baseline", &m.global_mean_baseline),
            ],
        ]
        .concat(),
    );
    let s = |name: &str, s: &SignatureStats| {
        vec![
            name.to_string(),
            s.images.to_string(),
            s.method.clone(),
            fmt_num(s.queries_per_eps, 2),
            fmt_num(s.queries_per_image, 0),
            format!("{:.1}%", 100.0 * s.censored_fraction),
            fmt_num(s.median_eps, 2),
        ]
    };
    let sigs = markdown_table(
        &["signatures", "images", "method", "queries/eps", "queries/image", "censored", "median eps"],
        &[s("train (adversary's data)", &m.train_signatures), s("test (secrets)", &m.test_signatures)],
    );
    let colour = m.colour.as_ref().map_or(String::new(), |c| {
        let row = |name: &str, c: &ColourFidelity| {
            vec![name.to_string(), fmt_num(c.foreground_error, 4), fmt_num(c.background_error, 4)]
        };
        let undecided = m.undecided.as_ref().and_then(|u| u.colour.as_ref());
        let table = markdown_table(
            &["mean colour error", "foreground", "background"],
            &[
                vec![row("decoder (from signatures)", c)],
                undecided.map(|u| row(UNDECIDED, u)).into_iter().collect(),
                vec![vec![
                    "mean-colour baseline (training originals)".into(),
                    fmt_num(c.baseline_foreground_error, 4),
                    fmt_num(c.baseline_background_error, 4),
                ]],
            ]
            .concat(),
        );
        format!(
            "### Colours\n\nMean absolute difference per channel (0..1) between the reconstruction's and the \
             original's mean colour over the original's foreground and background (background: pixels near \
             the median colour of the image's border; foreground: pixels at least half as far from it as \
             the farthest; see `eval::colour`), over {} secrets ({} without a foreground left out).\n\n{table}\n",
            c.images, c.skipped
        )
    });
    let times = markdown_table(
        &["stage", "seconds"],
        &m.stage_seconds.iter().map(|t| vec![t.stage.clone(), fmt_num(t.seconds, 1)]).collect::<Vec<_>>(),
    );
    let model = |role: &str, r: &super::ModelRecord| {
        let source = if r.user_supplied { "user-supplied" } else { "trained by apsig" };
        vec![
            role.to_string(),
            source.to_string(),
            r.description.clone(),
            format!("`{}`", r.file),
            format!("`{}`", r.sha256),
        ]
    };
    let mut rows = vec![model("target M", &m.models.target), model("evaluator", &m.models.evaluator)];
    rows.extend(m.models.critic.as_ref().map(|r| model("class guide's critic", r)));
    let models = markdown_table(&["role", "source", "model", "file", "SHA-256"], &rows);
    format!(
        "# apsig run report: {ds}\n\n\
         Data: {source}; images {h}x{w}x{c}. Target M test accuracy: **{ta:.2}%**; independent evaluator: {ea:.2}%. K = {k} directions (`{strategy}`, seed {seed}).\n\n\
         ## Models\n\n{models}\n\
         ## Reconstruction quality on {n} held-out test secrets\n\n{quality}\n{palette_note}{id_note}{ssim_note}{colour}\
         M assigns {agree:.1}% of reconstructions the class it assigns the original.{guide}\n\n\
         ## Signatures and their cost\n\n{sigs}\n\
         ## Figures\n\n![Fig. 1](fig1.png)\n\n![Fig. 2](fig2.png)\n\n![Fig. 3](fig3.png)\n\n\
         ## Wall time\n\n{times}\nTotal: {total:.1} s. Resolved configuration: `config.toml`; all numbers: `metrics.json`.\n",
        ds = m.dataset,
        source = data.source,
        h = test.rows,
        w = test.cols,
        c = test.channels,
        palette_note = if m.undecided.is_some() { PALETTE_NOTE } else { "" },
        id_note = identification_note(&m.decoder),
        ssim_note = if test.channels > 1 { "SSIM is the mean of the per-channel SSIMs.\n\n" } else { "" },
        ta = 100.0 * m.target_test_accuracy,
        ea = 100.0 * m.evaluator_test_accuracy,
        k = m.k,
        strategy = cfg.directions.strategy,
        seed = cfg.directions.seed,
        n = m.test_signatures.images,
        agree = 100.0 * m.target_agreement,
        guide = guide_note(&cfg.decoder, m) + loss_note(&cfg.decoder),
        total = m.total_seconds,
    )
}

/// The row of the decoder network's own output where a palette decided the colours.
const UNDECIDED: &str = "decoder, colours undecided (the network's output)";

/// What the palette decision did, where it did it.
const PALETTE_NOTE: &str = "*Colours decided* (`decoder.palette`): each reconstruction's own two colours were \
     replaced by the nearest pair of the palette learnt from the adversary's training images, and its own \
     stroke repainted in them (`decoder::Palette`). The network paints the mean of the colours the signature \
     leaves possible, best for MSE; the decision paints the likelier one. The undecided row is the network's \
     output before it, scored the same way.\n\n";

/// Says when the decoder was not trained with the paper's L2: its MSE is then not what it
/// minimised.
fn loss_note(d: &crate::decoder::DecoderConfig) -> &'static str {
    match d.loss {
        crate::nn::PixelLoss::L2 => "",
        crate::nn::PixelLoss::L1 => {
            " The decoder was trained with the L1 loss (`decoder.loss = \"l1\"`): it paints each pixel's likelier \
             value where L2 would paint the average, so its MSE is not what it minimised."
        }
    }
}

/// Says which classifier guided the decoder's training, if one did, and what that does to the
/// agreement with M.
fn guide_note(d: &crate::decoder::DecoderConfig, m: &Metrics) -> String {
    let how = format!("weight {}, noise {}", d.class_weight, d.class_noise);
    let critic_accuracy =
        m.critic_test_accuracy.map(|a| format!(", test accuracy {:.2}%", 100.0 * a)).unwrap_or_default();
    match (d.class_weight > 0.0, m.models.target.user_supplied) {
        (false, _) => String::new(),
        (true, false) => format!(
            " The decoder was trained with a class guide ({how}): M, which the adversary owns, read \
             each reconstruction of the adversary's own images during training, so this agreement is not an \
             independent measure; class recovery above is the independent evaluator's."
        ),
        (true, true) => format!(
            " The decoder was trained with a class guide ({how}): a TargetNet-S the adversary trained \
             on its data, the training split (`critic.safetensors`{critic_accuracy}), read each reconstruction of those images during training."
        ),
    }
}

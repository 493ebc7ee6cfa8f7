//! `study.md` and its figures: a table per question, a curve per sweep and per defence.

use super::{slug, Cell, DatasetSummary, StudyConfig, StudySummary};
use crate::error::Result;
use crate::eval::{paired_bootstrap, winner, Interval, Measure, PerSecret, Verdict, RESAMPLES};
use crate::io::atomic_write;
use apsig_report::{fmt_num, markdown_table, LineChart, Series};
use std::fmt::Write;
use std::path::Path;

/// Writes `study.md` and the figures of `s` into `dir`.
pub fn write_report(dir: &Path, s: &StudySummary) -> Result<()> {
    let mut md = String::new();
    let c = &s.config;
    let _ = writeln!(md, "# apsig study\n");
    let _ = writeln!(
        md,
        "Data sets: {}. K = {}, {} training signatures (white-box route on the adversary's own data), {} secrets \
         per cell ({} for defence and budget cells), decoder width {} trained {} epochs. Seed {}. Total wall time \
         {:.0} s. Every row below was measured by this run; `study.json` has all numbers, `study.toml` the config.\n",
        c.datasets.join(", "),
        c.k,
        c.train_signatures,
        c.secrets,
        c.defence_secrets,
        c.decoder.width,
        c.decoder.train.epochs,
        c.seed,
        s.seconds
    );
    let _ = writeln!(md, "{}", verdict(s));
    for d in &s.datasets {
        dataset_section(&mut md, d, c)?;
    }
    charts(dir, s, &mut md)?;
    atomic_write(&dir.join("study.md"), md.as_bytes())
}

fn rows<'a>(d: &'a DatasetSummary, group: &'a str) -> impl Iterator<Item = &'a Cell> {
    d.cells.iter().filter(move |c| c.group == group)
}

fn q(c: &Cell) -> [String; 5] {
    [
        fmt_num(c.queries_per_image, 0),
        fmt_num(c.quality.mse, 4),
        fmt_num(c.quality.ssim, 3),
        format!("{}%", fmt_num(100.0 * c.quality.class_recovery, 1)),
        c.quality.identified_cells()[0].clone(),
    ]
}

/// The study's answer to "does any strategy beat Gaussian directions at equal K and queries?",
/// with the sampling error of class recovery so small differences are not over-read.
/// Empty where the study compares fewer than two strategies.
fn verdict(s: &StudySummary) -> String {
    if s.config.strategies.len() < 2 {
        return String::new();
    }
    let mut out = String::from("## Verdict: direction strategies at equal K and equal queries\n\n");
    for d in &s.datasets {
        let capped: Vec<&Cell> = rows(d, "strategy@budget").collect();
        let Some(g) = capped.iter().find(|c| c.variant == "gaussian") else { continue };
        let best_mse = capped.iter().min_by(|a, b| a.quality.mse.total_cmp(&b.quality.mse)).expect("non-empty");
        let best_cls = capped
            .iter()
            .max_by(|a, b| a.quality.class_recovery.total_cmp(&b.quality.class_recovery))
            .expect("non-empty");
        let p = g.quality.class_recovery;
        let se = (p * (1.0 - p) / g.secrets.max(1) as f64).sqrt();
        let margin = best_cls.quality.class_recovery - p;
        let cls_word = if best_cls.variant == "gaussian" {
            "no strategy has higher class recovery".to_string()
        } else if margin > 2.0 * se {
            format!(
                "`{}` recovers the class more often by {} points, more than twice the sampling error",
                best_cls.variant,
                fmt_num(100.0 * margin, 1)
            )
        } else {
            format!(
                "`{}` leads by {} points, within twice the sampling error (not a clear win)",
                best_cls.variant,
                fmt_num(100.0 * margin, 1)
            )
        };
        let mse_word = if best_mse.variant == "gaussian" {
            "No strategy has lower MSE".to_string()
        } else {
            format!(
                "`{}` has {}% lower MSE ({} vs {})",
                best_mse.variant,
                fmt_num(100.0 * (1.0 - best_mse.quality.mse / g.quality.mse), 1),
                fmt_num(best_mse.quality.mse, 4),
                fmt_num(g.quality.mse, 4)
            )
        };
        let _ = writeln!(
            out,
            "- **{}**, every strategy capped at {} queries per secret, K = {}, {} secrets: Gaussian MSE {}, class \
             recovery {}% (sampling error +-{} points). {}; {}.",
            d.dataset,
            fmt_num(g.knob, 0),
            g.k,
            g.secrets,
            fmt_num(g.quality.mse, 4),
            fmt_num(100.0 * p, 1),
            fmt_num(100.0 * se, 1),
            mse_word,
            cls_word,
        );
        // without the cap every strategy runs its search to the end (queries within a few %)
        let full: Vec<&Cell> = rows(d, "strategy").collect();
        if let (Some(gf), Some(bf)) = (
            full.iter().find(|c| c.variant == "gaussian"),
            full.iter().min_by(|a, b| a.quality.mse.total_cmp(&b.quality.mse)),
        ) {
            let _ = writeln!(
                out,
                "  Uncapped (full search, {} vs {} queries per secret): lowest MSE `{}` {} vs Gaussian {}.",
                fmt_num(bf.queries_per_image, 0),
                fmt_num(gf.queries_per_image, 0),
                bf.variant,
                fmt_num(bf.quality.mse, 4),
                fmt_num(gf.quality.mse, 4),
            );
        }
    }
    if s.datasets.iter().any(|d| rows(d, "strategy").any(|c| c.per_secret.is_some())) {
        out.push_str(
            "\nThese are one seed's figures. Which differences hold is decided by the paired intervals over secrets \
             (and seeds, where the study has more) under each data set's strategy table.\n",
        );
    }
    out
}

/// The attacks compared at equal queries: (column name, group, variant). The first two are
/// apsig's; the rest are the label-only baselines.
type Attack = (&'static str, &'static str, &'static str);

const COMPARED: [Attack; 4] = [
    ("search", "defence", "query-budget"),
    ("predicted search", "baseline", "predicted-search"),
    ("flip-rate", "baseline", "flip-rate"),
    ("boundary distance", "baseline", "boundary-distance"),
];

/// The cell of attack `m` (an entry of `COMPARED`) at per-secret budget `budget`.
fn compared<'a>(d: &'a DatasetSummary, m: &Attack, budget: f64) -> Option<&'a Cell> {
    d.cells.iter().find(|c| c.group == m.1 && c.variant == m.2 && c.knob == budget)
}

/// apsig's search under a per-secret query cap against the label-only baselines at the same
/// number of queries, on the same secrets: a table per measure, and the differences between
/// apsig's best search and each baseline with paired bootstrap intervals over secrets.
fn baselines_section(md: &mut String, d: &DatasetSummary, c: &StudyConfig) {
    let present: Vec<&Attack> =
        COMPARED.iter().filter(|m| c.budgets.iter().any(|&b| compared(d, m, b as f64).is_some())).collect();
    if present.iter().all(|m| m.1 != "baseline") {
        return;
    }
    let _ = writeln!(
        md,
        "\n### Label-only baselines at equal queries\n\napsig's change-bit search capped at a per-secret budget \
         against two published label-only attacks on the same secrets, with the same decoder family and training \
         images; each is **re-implemented here**. *Flip-rate*: Zhu et al., \"Label-Only Model Inversion Attacks: \
         Attack With the Least Information\" (IEEE TIFS 2023), `signature::flip_rate`: the budget spent on Gaussian \
         noise at up to {} magnitudes (quantiles of the eps of the adversary's own images), the fraction of changed \
         decisions per magnitude as the decoder's input.{} The *predicted search* measures the directions in groups, each group's brackets \
         predicted from the eps already measured on the same secret (`signature::EpsPredictor`), at the finest \
         relative tolerance of {:?} whose mean queries on the adversary's own images fit the budget (in brackets \
         below; a small budget buys more directions measured roughly); directions the budget does not reach get \
         their prediction.{}\n",
        c.flip_rate_magnitudes,
        if present.iter().any(|m| m.2 == "boundary-distance") {
            format!(
                " *Boundary distance*: the nearest decision-changing perturbation found by HopSkipJump (Chen, Jordan \
                 and Wainwright, IEEE S&P 2020), as label-only membership inference uses it (Choquette-Choo et al., \
                 ICML 2021; Li and Zhang, CCS 2021), `signature::boundary`: the decoder reads the log of its length \
                 and its direction; run in perturbation space (the secret is never seen), B0 = {}.",
                c.boundary_grad_queries
            )
        } else {
            String::new()
        },
        c.predicted_tolerances(),
        if c.budget_decoders {
            " Its decoder at each budget is trained on the adversary's own images measured by the same capped \
             search, as each baseline's decoder is on its own features; the capped plain search is decoded by the \
             reference decoder (exact white-box eps)."
        } else {
            " It is decoded by the reference decoder (exact white-box eps), as the capped plain search is."
        },
    );
    let measure = |title: &str, value: &dyn Fn(&Cell) -> String| {
        let table: Vec<Vec<String>> = c
            .budgets
            .iter()
            .map(|&b| {
                let mut r = vec![fmt_num(b as f64, 0)];
                r.extend(present.iter().map(|m| compared(d, m, b as f64).map_or("n/a".into(), value)));
                r
            })
            .collect();
        let mut header = vec![title];
        header.extend(present.iter().map(|m| m.0));
        markdown_table(&header, &table)
    };
    let _ = writeln!(md, "Queries spent per secret:\n");
    md.push_str(&measure("budget", &|c| match c.rel_tol {
        // an f32 tolerance, printed as it was configured
        Some(t) => format!("{} (tol {})", fmt_num(c.queries_per_image, 0), t as f32),
        None => fmt_num(c.queries_per_image, 0),
    }));
    let _ = writeln!(md, "\nMSE:\n");
    md.push_str(&measure("budget", &|c| fmt_num(c.quality.mse, 4)));
    let _ = writeln!(md, "\nIdentified (all secrets compete):\n");
    md.push_str(&measure("budget", &|c| c.quality.identified_cells()[0].clone()));
    let _ = writeln!(md, "\nClass recovery:\n");
    md.push_str(&measure("budget", &|c| format!("{}%", fmt_num(100.0 * c.quality.class_recovery, 1))));
    baseline_differences(md, d, c, &present);
}

/// The study's own seed and each replicate's, with the cells measured at it.
fn seeds_of<'a>(d: &'a DatasetSummary, c: &StudyConfig) -> Vec<(u64, &'a [Cell])> {
    let mut seeds: Vec<(u64, &[Cell])> = vec![(c.seed, &d.cells)];
    seeds.extend(d.replicates.iter().map(|r| (r.seed, r.cells.as_slice())));
    seeds
}

/// A table of `interval_row`s: the two label columns, one column per seed, the winner; none
/// without rows.
fn interval_table(labels: [&str; 2], seeds: &[(u64, &[Cell])], rows: &[Vec<String>]) -> Option<String> {
    let mut header: Vec<String> = labels.iter().map(|l| l.to_string()).collect();
    header.extend(seeds.iter().map(|(s, _)| format!("seed {s}")));
    header.push("winner".into());
    let header: Vec<&str> = header.iter().map(String::as_str).collect();
    (!rows.is_empty()).then(|| markdown_table(&header, rows))
}

/// `label`, then each seed's interval (`n/a` where a seed lacks a cell), then the winner: `names.0`
/// where every seed's interval leaves zero out on its side, `names.1` where every one does on the
/// other, else nobody.
fn interval_row(
    mut label: Vec<String>,
    found: &[Option<Interval>],
    scale: f64,
    digits: usize,
    lower_is_better: bool,
    names: (&str, &str),
) -> Vec<String> {
    label.extend(found.iter().map(|i| match i {
        Some(i) => format!(
            "{} [{}, {}]",
            fmt_num(scale * i.estimate, digits),
            fmt_num(scale * i.low, digits),
            fmt_num(scale * i.high, digits)
        ),
        None => "n/a".into(),
    }));
    label.push(
        match winner(found, lower_is_better) {
            Verdict::First => names.0,
            Verdict::Second => names.1,
            Verdict::NoWinner => "no winner",
        }
        .into(),
    );
    label
}

/// Which cell a row of an interval table reads: its group and variant, its knob where the
/// group holds one variant at several (the defences, the budgets of the baselines), and its
/// votes where they differ too (the defences).
struct Key {
    group: String,
    variant: String,
    knob: Option<f64>,
    votes: Option<usize>,
}

impl Key {
    fn of(group: &str, variant: &str) -> Self {
        Key { group: group.into(), variant: variant.into(), knob: None, votes: None }
    }

    fn at(group: &str, variant: &str, knob: f64) -> Self {
        Key { knob: Some(knob), ..Key::of(group, variant) }
    }

    fn exactly(c: &Cell) -> Self {
        Key { votes: Some(c.votes), ..Key::at(&c.group, &c.variant, c.knob) }
    }

    fn find<'a>(&self, cells: &'a [Cell]) -> Option<&'a PerSecret> {
        cells
            .iter()
            .find(|c| {
                c.group == self.group
                    && c.variant == self.variant
                    && self.knob.is_none_or(|knob| c.knob == knob)
                    && self.votes.is_none_or(|votes| c.votes == votes)
            })?
            .per_secret
            .as_ref()
    }
}

/// One row of a paired interval table: a cell minus its reference on the same secrets, the
/// row's label columns, and the names `interval_row` gives the winner.
struct Pairing {
    label: [String; 2],
    cell: Key,
    reference: Key,
    names: (String, String),
}

/// The MSE, identification and class-recovery tables of `pairings` at every seed, each
/// bootstrap seeded by its seed and `salt`; none where no row was measured.
fn paired_tables(seeds: &[(u64, &[Cell])], pairings: &[Pairing], labels: [&str; 2], salt: u64) -> Option<[String; 3]> {
    let table = |m: Measure, scale: f64, digits: usize| {
        let mut rows = Vec::new();
        for p in pairings {
            let found: Vec<Option<Interval>> = seeds
                .iter()
                .map(|(seed, cells)| {
                    let (a, b) = (p.cell.find(cells)?, p.reference.find(cells)?);
                    paired_bootstrap(&a.values(m), &b.values(m), RESAMPLES, seed ^ salt)
                })
                .collect();
            if found.iter().all(Option::is_none) {
                continue;
            }
            let names = (p.names.0.as_str(), p.names.1.as_str());
            rows.push(interval_row(p.label.to_vec(), &found, scale, digits, m.lower_is_better(), names));
        }
        interval_table(labels, seeds, &rows)
    };
    Some([
        table(Measure::Mse, 1.0, 4)?,
        table(Measure::Identified, 100.0, 1)?,
        table(Measure::ClassRecovered, 100.0, 1)?,
    ])
}

/// The three tables of `paired_tables` under their headings; `what` says what is subtracted
/// from what, `side` which side a positive difference favours.
fn write_paired(md: &mut String, seeds: usize, what: &str, side: &str, [mse, ident, class]: [String; 3]) {
    let _ = writeln!(
        md,
        "\n{what} on the same secrets, with 95% paired bootstrap intervals over secrets ({} resamples; \
         identification is resampled per secret, its competitors held fixed), at {} seed{} (each seed draws the \
         target, evaluator, directions and decoders anew). A winner is named only where every seed's interval \
         leaves zero out on the same side.\n\nMSE difference (negative: {side}'s reconstructions are nearer):\n",
        RESAMPLES,
        seeds,
        if seeds == 1 { "" } else { "s" }
    );
    md.push_str(&mse);
    let _ = writeln!(md, "\nIdentified difference, points (positive: {side} identifies more secrets):\n");
    md.push_str(&ident);
    let _ = writeln!(md, "\nClass recovery difference, points (positive: {side} recovers the class more often):\n");
    md.push_str(&class);
}

/// Each direction strategy minus Gaussian (the paper's) on the same secrets, run to completion
/// and under the common query cap, per seed: MSE, identification and class recovery with 95%
/// paired bootstrap intervals over the secrets; a winner only where every seed agrees.
fn strategy_differences(md: &mut String, d: &DatasetSummary, c: &StudyConfig) {
    let seeds = seeds_of(d, c);
    let settings =
        [("strategy", "to completion".to_string()), ("strategy@budget", format!("cap {}", c.strategy_budget))];
    let mut pairings = Vec::new();
    for (group, setting) in &settings {
        for s in c.strategies.iter().map(|s| s.name()).filter(|&n| n != "gaussian") {
            pairings.push(Pairing {
                label: [s.to_string(), setting.clone()],
                cell: Key::of(group, s),
                reference: Key::of(group, "gaussian"),
                names: (s.to_string(), "gaussian".into()),
            });
        }
    }
    if let Some(tables) = paired_tables(&seeds, &pairings, ["strategy", "search"], 0x5747) {
        write_paired(md, seeds.len(), "Each strategy minus Gaussian", "the strategy", tables);
    }
}

/// Each stronger oracle (the label of every query, the score vector) minus the change bit, on
/// the same secrets and per seed.
fn oracle_differences(md: &mut String, d: &DatasetSummary, c: &StudyConfig) {
    let seeds = seeds_of(d, c);
    let pairings: Vec<Pairing> = rows(d, "oracle")
        .filter(|o| o.variant != "change-bit")
        .map(|o| Pairing {
            label: [o.variant.clone(), "change-bit".into()],
            cell: Key::of("oracle", &o.variant),
            reference: Key::of("oracle", "change-bit"),
            names: (o.variant.clone(), "change-bit".into()),
        })
        .collect();
    if let Some(tables) = paired_tables(&seeds, &pairings, ["oracle", "against"], 0x0ac1e) {
        write_paired(md, seeds.len(), "Each oracle minus the change bit", "the stronger oracle", tables);
    }
}

/// Each defence's attack minus the undefended attack on the same secrets and per seed (rounded
/// scores against the plain score vector); the winner is the side whose reconstructions are
/// better, so `undefended` is where the defence measurably hurts the attack.
fn defence_differences(md: &mut String, d: &DatasetSummary, c: &StudyConfig) {
    let seeds = seeds_of(d, c);
    let pairings: Vec<Pairing> = rows(d, "defence")
        .filter(|x| x.variant != "none" && x.variant != "query-budget")
        .map(|x| {
            let reference = if x.variant == "round-scores" { ("oracle", "score-vector") } else { ("defence", "none") };
            let votes = if x.votes > 1 { format!(", {} votes", x.votes) } else { String::new() };
            let knob = fmt_num(x.knob, 3);
            let knob = knob.trim_end_matches('0').trim_end_matches('.');
            Pairing {
                label: [format!("{} {knob}{votes}", x.variant), reference.1.into()],
                cell: Key::exactly(x),
                reference: Key::of(reference.0, reference.1),
                names: ("defended".into(), "undefended".into()),
            }
        })
        .collect();
    if let Some(tables) = paired_tables(&seeds, &pairings, ["defence", "undefended oracle"], 0xdef) {
        write_paired(md, seeds.len(), "Each defended attack minus the undefended one", "the defended attack", tables);
    }
}

/// apsig's best search (the predicted one where measured) minus each baseline, per budget and
/// seed, on the same secrets.
fn baseline_differences(md: &mut String, d: &DatasetSummary, c: &StudyConfig, present: &[&Attack]) {
    let find = |variant: &str| present.iter().find(|m| m.2 == variant).copied();
    let Some(ours) = find("predicted-search").or_else(|| find("query-budget")) else { return };
    let mut pairings = Vec::new();
    for &b in &c.budgets {
        for m in present.iter().filter(|m| m.1 == "baseline" && m.2 != "predicted-search") {
            pairings.push(Pairing {
                label: [fmt_num(b as f64, 0), m.0.to_string()],
                cell: Key::at(ours.1, ours.2, b as f64),
                reference: Key::at(m.1, m.2, b as f64),
                names: ("apsig".into(), "baseline".into()),
            });
        }
    }
    let seeds = seeds_of(d, c);
    if let Some(tables) = paired_tables(&seeds, &pairings, ["budget", "baseline"], 0xba5e) {
        write_paired(md, seeds.len(), &format!("{} minus each baseline", ours.0), "apsig", tables);
    }
}

fn dataset_section(md: &mut String, d: &DatasetSummary, c: &StudyConfig) -> Result<()> {
    let (k, budget) = (c.k, c.strategy_budget);
    let _ = writeln!(md, "## {}\n", d.dataset);
    let _ = writeln!(
        md,
        "Target accuracy {}%, evaluator accuracy {}%. Baselines on the same secrets: global mean image MSE {} \
         (class recovery {}%); class-mean image (knows the class, nothing else) MSE {}.\n",
        fmt_num(100.0 * d.target_accuracy, 2),
        fmt_num(100.0 * d.evaluator_accuracy, 2),
        fmt_num(d.global_mean_baseline.mse, 4),
        fmt_num(100.0 * d.global_mean_baseline.class_recovery, 1),
        fmt_num(d.class_mean_baseline.mse, 4),
    );

    let _ = writeln!(md, "### Direction strategies (K = {k})\n");
    let table: Vec<Vec<String>> = rows(d, "strategy")
        .map(|c| {
            let capped = rows(d, "strategy@budget").find(|b| b.variant == c.variant);
            let mut r = vec![c.variant.clone()];
            r.extend(q(c));
            r.push(format!("{}%", fmt_num(100.0 * c.censored_fraction, 1)));
            match capped {
                Some(b) => r.extend([fmt_num(b.queries_per_image, 0), fmt_num(b.quality.mse, 4)]),
                None => r.extend(["n/a".into(), "n/a".into()]),
            }
            r.push(capped.map(|b| format!("{}%", fmt_num(100.0 * b.quality.class_recovery, 1))).unwrap_or_default());
            r
        })
        .collect();
    let cap_q = format!("queries (cap {budget})");
    md.push_str(&markdown_table(
        &[
            "strategy",
            "queries/img",
            "MSE",
            "SSIM",
            "class rec.",
            "identified",
            "censored",
            &cap_q,
            "MSE @cap",
            "class rec. @cap",
        ],
        &table,
    ));
    strategy_differences(md, d, c);

    let _ = writeln!(md, "\n### Oracle variants (Gaussian directions, K = {k})\n");
    let table: Vec<Vec<String>> = rows(d, "oracle")
        .map(|c| {
            let mut r = vec![c.variant.clone()];
            r.extend(q(c));
            r
        })
        .collect();
    md.push_str(&markdown_table(&["oracle", "queries/img", "MSE", "SSIM", "class rec.", "identified"], &table));
    oracle_differences(md, d, c);

    let _ = writeln!(md, "\n### Defences (attack quality against the defender's cost)\n");
    let table: Vec<Vec<String>> = rows(d, "defence")
        .map(|c| {
            let mut r = vec![
                c.variant.clone(),
                fmt_num(c.knob, 2),
                c.votes.to_string(),
                format!("{}%", fmt_num(100.0 * c.clean_accuracy, 2)),
                fmt_num(c.latency_ratio, 2),
            ];
            r.extend(q(c));
            r
        })
        .collect();
    md.push_str(&markdown_table(
        &[
            "defence",
            "strength",
            "attacker votes",
            "clean acc.",
            "latency x",
            "queries/img",
            "MSE",
            "SSIM",
            "class rec.",
            "identified",
        ],
        &table,
    ));
    defence_differences(md, d, c);

    baselines_section(md, d, c);

    for (group, what) in [("k", "K"), ("train-size", "training signatures")] {
        let _ = writeln!(md, "\n### Sweep over {what}\n");
        let table: Vec<Vec<String>> = rows(d, group)
            .map(|c| {
                let mut r = vec![fmt_num(c.knob, 0)];
                r.extend(q(c));
                r
            })
            .collect();
        md.push_str(&markdown_table(&[what, "queries/img", "MSE", "SSIM", "class rec.", "identified"], &table));
    }

    let a = &d.attributes;
    let _ = writeln!(
        md,
        "\n### Attributes without pixels (linear probes on the signature, K = {k})\n\nClass predicted from the \
         signature alone: {}% (most frequent class: {}%).\n",
        fmt_num(100.0 * a.class_accuracy, 1),
        fmt_num(100.0 * a.class_chance, 1)
    );
    let table: Vec<Vec<String>> = a
        .attributes
        .iter()
        .map(|s| {
            vec![
                s.attribute.clone(),
                fmt_num(s.pearson, 3),
                fmt_num(s.class_mean_pearson, 3),
                fmt_num(s.within_class_pearson, 3),
            ]
        })
        .collect();
    md.push_str(&markdown_table(
        &["attribute", "r (from signature)", "r (true class mean)", "r within class (style)"],
        &table,
    ));
    md.push('\n');
    Ok(())
}

/// Curves: quality against K, training size and queries; each defence against its strength
/// and against the defender's clean-accuracy cost.
fn charts(dir: &Path, s: &StudySummary, md: &mut String) -> Result<()> {
    let _ = writeln!(md, "## Figures\n");
    let per_dataset = |group: &str, variant: Option<&str>, votes: Option<usize>, x: fn(&Cell) -> f64| {
        s.datasets
            .iter()
            .map(|d| {
                let pts = rows(d, group)
                    .filter(|c| variant.is_none_or(|v| c.variant == v) && votes.is_none_or(|v| c.votes == v))
                    .map(|c| (x(c), c.quality.class_recovery))
                    .collect();
                let name = match votes {
                    Some(v) if v > 1 => format!("{} (attacker votes {v})", d.dataset),
                    _ => d.dataset.clone(),
                };
                Series::new(name, pts)
            })
            .collect::<Vec<_>>()
    };
    let knob: fn(&Cell) -> f64 = |c| c.knob;
    let queries: fn(&Cell) -> f64 = |c| c.queries_per_image;
    let mut figs: Vec<(&str, LineChart)> = Vec::new();
    let chart = |title: &str, x: &str, series: Vec<Series>, log_x: bool| {
        let mut c = LineChart::new(title, x, "class recovery");
        c.series = series.into_iter().filter(|s| !s.points.is_empty()).collect();
        c.log_x = log_x;
        c
    };
    figs.push(("study-k.png", chart("Class recovery against K", "K", per_dataset("k", None, None, knob), true)));
    figs.push((
        "study-train-size.png",
        chart(
            "Class recovery against training signatures",
            "training signatures",
            per_dataset("train-size", None, None, knob),
            true,
        ),
    ));
    figs.push((
        "study-queries.png",
        chart(
            "Class recovery against queries per secret (budget cap)",
            "queries per secret",
            per_dataset("defence", Some("query-budget"), None, queries),
            true,
        ),
    ));
    let mut ra = Vec::new();
    for &v in &s.config.votes {
        ra.extend(per_dataset("defence", Some("random-answers"), Some(v), knob));
    }
    figs.push((
        "study-random-answers.png",
        chart("Randomised answers: class recovery against p", "p (lie probability)", ra, false),
    ));
    figs.push((
        "study-input-noise.png",
        chart(
            "Input noise: class recovery against sigma",
            "sigma",
            per_dataset("defence", Some("input-noise"), None, knob),
            false,
        ),
    ));
    figs.push((
        "study-smooth-training.png",
        chart(
            "Smoothed target: class recovery against training noise",
            "training noise sigma",
            per_dataset("defence", Some("smooth-training"), None, knob),
            false,
        ),
    ));
    // each defence's trade-off: attack quality against the defender's clean accuracy
    for d in &s.datasets {
        let mut series = Vec::new();
        for (variant, votes) in [
            ("random-answers", 1),
            ("random-answers", *s.config.votes.iter().max().unwrap_or(&1)),
            ("input-noise", 1),
            ("smooth-training", 1),
            ("query-budget", 1),
        ] {
            let mut pts: Vec<(f64, f64)> = rows(d, "defence")
                .filter(|c| (c.variant == variant || c.variant == "none") && c.votes == votes)
                .map(|c| (100.0 * c.clean_accuracy, c.quality.class_recovery))
                .collect();
            pts.sort_by(|a, b| a.0.total_cmp(&b.0));
            let name = if votes > 1 { format!("{variant} (votes {votes})") } else { variant.to_string() };
            series.push(Series::new(name, pts));
        }
        series.dedup_by(|a, b| a.name == b.name);
        let mut c = chart(
            &format!("{}: attack quality against the defender's clean accuracy", d.dataset),
            "clean accuracy (%)",
            series,
            false,
        );
        c.width = 900;
        let name = format!("study-defence-cost-{}.png", slug(&d.dataset));
        atomic_write(&dir.join(&name), &c.render_png()?)?;
        let _ = writeln!(md, "![{name}]({name})\n");
    }
    // each attack's quality against the queries it spent, per data set and measure
    let mse: fn(&Cell) -> f64 = |c| c.quality.mse;
    let identified: fn(&Cell) -> f64 = |c| c.quality.identification.map_or(0.0, |i| i.overall);
    for d in &s.datasets {
        for (measure, y, value) in [("mse", "MSE", mse), ("identified", "share identified", identified)] {
            let series: Vec<Series> = COMPARED
                .iter()
                .map(|m| {
                    let cells = s.config.budgets.iter().filter_map(|&b| compared(d, m, b as f64));
                    Series::new(m.0, cells.map(|c| (c.queries_per_image, value(c))).collect())
                })
                .filter(|s| !s.points.is_empty())
                .collect();
            if series.len() < 2 {
                continue;
            }
            let mut c =
                LineChart::new(format!("{}: {y} against queries per secret", d.dataset), "queries per secret", y);
            c.series = series;
            c.log_x = true;
            let name = format!("study-baselines-{}-{measure}.png", slug(&d.dataset));
            atomic_write(&dir.join(&name), &c.render_png()?)?;
            let _ = writeln!(md, "![{name}]({name})\n");
        }
    }
    for (name, c) in figs {
        if c.series.is_empty() {
            continue;
        }
        atomic_write(&dir.join(name), &c.render_png()?)?;
        let _ = writeln!(md, "![{name}]({name})\n");
    }
    Ok(())
}

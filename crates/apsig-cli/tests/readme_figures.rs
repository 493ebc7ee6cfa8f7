//! The README's figures stay true: its Results and Performance sections must agree with the
//! committed outputs under `docs/results/` (run metrics, the query curve, the bench output).
//!
//! Two checks: the tables and the headline figures are rendered here from the committed files
//! and must appear in the README verbatim; and every other number in those sections must be
//! one that a committed file holds (at some rounding), so a figure typed by hand from a run
//! that was not committed fails the test.

use serde_json::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(repo().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn json(rel: &str) -> Value {
    serde_json::from_str(&read(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn f(v: &Value, path: &str) -> f64 {
    path.split('.')
        .fold(v, |v, key| key.parse::<usize>().map(|i| &v[i]).unwrap_or(&v[key]))
        .as_f64()
        .unwrap_or_else(|| panic!("no number at {path}"))
}

/// The README text from the heading `## {name}` to the next `## ` heading.
fn section<'a>(readme: &'a str, name: &str) -> &'a str {
    let start = readme.find(&format!("\n## {name}")).unwrap_or_else(|| panic!("no section `{name}`"));
    let rest = &readme[start + 1..];
    let end = rest[3..].find("\n## ").map(|e| e + 3).unwrap_or(rest.len());
    &rest[..end]
}

/// `12345.6` as `12,346` (`digits` = 0) or `12,345.6`: how the README writes large figures.
fn grouped(v: f64, digits: usize) -> String {
    let s = format!("{v:.digits$}");
    let (int, frac) = s.split_once('.').map(|(i, f)| (i, format!(".{f}"))).unwrap_or((&s, String::new()));
    let (sign, int) = int.strip_prefix('-').map(|i| ("-", i)).unwrap_or(("", int));
    let mut out = String::new();
    for (i, c) in int.chars().enumerate() {
        if i > 0 && (int.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    format!("{sign}{out}{frac}")
}

/// `538.1` seconds as `8 min 58 s`.
fn min_s(secs: f64) -> String {
    let s = secs.round() as u64;
    format!("{} min {} s", s / 60, s % 60)
}

fn quality_row(label: &str, q: &Value) -> String {
    format!(
        "| {label} | {:.4} | {:.2} | {:.3} | {:.1}% |",
        f(q, "mse"),
        f(q, "psnr_db"),
        f(q, "ssim"),
        100.0 * f(q, "class_recovery")
    )
}

fn stage(m: &Value, name: &str) -> f64 {
    m["stage_seconds"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["stage"] == name)
        .map(|s| f(s, "seconds"))
        .unwrap_or_else(|| panic!("no stage {name}"))
}

/// The figures a run's metrics.json gives, as the README's run sections state them.
fn run_figures(m: &Value, secrets: &str) -> Vec<String> {
    let t = &m["test_signatures"];
    let mut out = vec![
        quality_row(&format!("decoder, from change-bit signatures of {secrets} secrets"), &m["decoder"]),
        quality_row("class-mean baseline (knows the class)", &m["class_mean_baseline"]),
        quality_row("global-mean baseline", &m["global_mean_baseline"]),
        format!("TargetNet-S test accuracy {:.2}%", 100.0 * f(m, "target_test_accuracy")),
        format!("evaluator (EvalNet, other seed and architecture) {:.2}%", 100.0 * f(m, "evaluator_test_accuracy")),
        format!(
            "Secrets cost {:.0} queries per image ({:.2} per eps; {:.1}% censored",
            f(t, "queries_per_image"),
            f(t, "queries_per_eps"),
            100.0 * f(t, "censored_fraction")
        ),
        format!("M itself gives {:.1}% of reconstructions", 100.0 * f(m, "target_agreement")),
        format!("took {} of wall time", min_s(f(m, "total_seconds"))),
        format!("peak RSS {:.0} MiB", f(m, "peak_rss_mib")),
        format!(
            "target {:.0} s, evaluator {:.0} s, training signatures {:.0} s, secrets {:.0} s, decoder {:.0} s",
            stage(m, "train target"),
            stage(m, "train evaluator"),
            stage(m, "train signatures"),
            stage(m, "test signatures"),
            stage(m, "train decoder"),
        ),
    ];
    if let Some(machine) = m["machine"].as_str() {
        out.push(format!("on {machine}"));
    }
    out
}

fn assert_all_in(text: &str, figures: &[String], what: &str) {
    let missing: Vec<&String> = figures.iter().filter(|s| !text.contains(s.as_str())).collect();
    assert!(missing.is_empty(), "the README's {what} disagrees with the committed results; expected:\n{missing:#?}");
}

/// Number tokens of `text` (`12,000`, `0.0146`, `98.4`), outside code spans and link targets.
fn numbers(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let (mut in_code, mut in_target) = (false, false);
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '`' {
            in_code = !in_code;
        } else if c == '(' && i > 0 && chars[i - 1] == ']' {
            in_target = true;
        } else if c == ')' && in_target {
            in_target = false;
        } else if c.is_ascii_digit() && !in_code && !in_target && (i == 0 || !chars[i - 1].is_alphanumeric()) {
            let mut j = i;
            while j < chars.len()
                && (chars[j].is_ascii_digit()
                    || (matches!(chars[j], ',' | '.') && chars.get(j + 1).is_some_and(|d| d.is_ascii_digit())))
            {
                j += 1;
            }
            out.push(chars[i..j].iter().collect());
            i = j;
            continue;
        }
        i += 1;
    }
    out
}

/// Every way the README may write a number found in `text`: as is, rounded to 0-4 decimals
/// (grouped or not), as a percentage of a fraction, and in minutes for seconds.
fn renderings(text: &str, into: &mut BTreeSet<String>) {
    for tok in numbers(text) {
        // a version (`2.15.0`) also stands for its `major.minor`
        let parts: Vec<&str> = tok.split('.').collect();
        if parts.len() > 2 {
            into.insert(parts[..2].join("."));
        }
        into.insert(tok.clone());
        let Ok(v) = tok.replace(',', "").parse::<f64>() else { continue };
        for d in 0..=4 {
            for x in [v, 100.0 * v, v / 60.0] {
                into.insert(format!("{x:.d$}"));
                into.insert(grouped(x, d));
            }
        }
        into.insert(((v.round() as u64) % 60).to_string());
    }
}

#[test]
fn readme_results_and_performance_agree_with_the_committed_outputs() {
    let readme = read("README.md");
    let results = section(&readme, "Results");
    let performance = section(&readme, "Performance");

    let paper = json("docs/results/paper/metrics.json");
    let quick = json("docs/results/quick/metrics.json");
    let paper10 = json("docs/results/paper-10min/metrics.json");
    let paper_part = &results[..results.find("### The default run").expect("quick-run subsection")];
    let paper10_part =
        &paper_part[paper_part.find("### Paper scale in under 10 minutes").expect("10-minute subsection")..];
    let quick_part = &results[results.find("### The default run").unwrap()..];
    assert_all_in(paper_part, &run_figures(&paper, "10,000"), "paper-scale results");
    assert_all_in(paper10_part, &run_figures(&paper10, "10,000"), "10-minute paper-scale results");
    assert_all_in(quick_part, &run_figures(&quick, "2,000"), "quick-run results");

    // the query curve
    let curve = json("docs/results/quick/quality-vs-queries.json");
    let rows: Vec<String> = curve
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let q = if r["search"].as_str().unwrap().starts_with("exact") {
                "—".to_string()
            } else {
                format!("{:.0}", f(r, "queries_per_image"))
            };
            format!("| {q} | {:.4} | {:.1}% |", f(r, "mse"), 100.0 * f(r, "class_recovery"))
        })
        .collect();
    assert_all_in(quick_part, &rows, "query-curve table");

    // the bench: the file the section links, its rows and its machine
    let link = performance.find("docs/results/bench-").expect("Performance links a bench output");
    let name: String = performance[link..].chars().take_while(|c| !matches!(c, ')' | ']' | ' ' | '`')).collect();
    let bench_json = name.replace(".txt", ".json");
    let bench = json(&bench_json);
    let bench_text = read(&name);
    let mut rows = vec![format!("measured peak of {:.1} GFLOP/s", f(&bench, "machine.peak_gflops"))];
    rows.push(format!("{}, {} threads", bench["machine"]["cpu"].as_str().unwrap(), bench["machine"]["cores"]));
    assert_eq!(bench["release_build"], true, "{name}: the README's bench must come from a release build");
    // the paired rounds: medians of apsig, of the peer and of the per-round ratios, and the range
    for p in bench["peer"]["paired"].as_array().expect("a bench with paired rounds") {
        rows.push(format!(
            "| {} (images/s) | {} | {} ({}) | {:.2}x ({:.2}-{:.2}x) |",
            p["what"].as_str().unwrap(),
            grouped(f(p, "median_apsig"), 0),
            grouped(f(p, "median_peer"), 0),
            p["variant"].as_str().unwrap(),
            f(p, "median_ratio"),
            f(p, "min_ratio"),
            f(p, "max_ratio")
        ));
    }
    assert_all_in(performance, &rows, "bench table");

    // every other figure in both sections is one a committed file holds
    let mut known = BTreeSet::new();
    for rel in [
        "docs/results/paper/metrics.json",
        "docs/results/paper/config.toml",
        "docs/results/paper/run.txt",
        "docs/results/paper/earlier/xeon-c28395c.metrics.json",
        "docs/results/paper/earlier/amd-epyc-avx2-5268490.metrics.json",
        "docs/results/paper/earlier/amd-epyc-avx2-5268490.run.txt",
        "docs/results/paper-10min/metrics.json",
        "docs/results/paper-10min/config.toml",
        "docs/results/paper-10min/run.txt",
        "docs/results/paper-10min/earlier/5268490/metrics.json",
        "docs/results/paper-10min/earlier/5268490/run.txt",
        "docs/results/ab/white-box-refinement.txt",
        "docs/results/quick/metrics.json",
        "docs/results/quick/config.toml",
        "docs/results/quick/quality-vs-queries.json",
        "docs/results/builds.txt",
        "docs/results/paper/earlier/amd-epyc-cdcae42.metrics.json",
        "docs/results/paper/earlier/xeon-avx512-gemm-avx2-conv.metrics.json",
        "docs/results/paper/earlier/xeon-ce905f5.metrics.json",
        "docs/results/paper/earlier/amd-epyc-ce905f5.metrics.json",
        "docs/results/quick/earlier/xeon-ce905f5.metrics.json",
        "docs/results/paper/earlier/amd-epyc-c85d763.metrics.json",
        "docs/results/paper/earlier/xeon-c85d763-loaded.metrics.json",
        "docs/results/quick/earlier/amd-epyc-c85d763.metrics.json",
        "docs/results/quick/earlier/amd-epyc-c85d763.quality-vs-queries.json",
        "docs/results/quick/earlier/xeon-94062cc.metrics.json",
        "docs/results/quick/earlier/amd-epyc-avx2-5268490.metrics.json",
        // the decoder's hidden layer, measured on the signatures of the run without it
        "docs/results/decoder-hidden-ab.txt",
        // predicted brackets and affine copies, each measured against the run before
        "docs/results/ab/predicted-brackets.txt",
        "docs/results/ab/augment.txt",
        "docs/results/paper/earlier/xeon-75db3a6.metrics.json",
        // low-frequency directions and 14 epochs, measured against the preset before
        "docs/results/ab/paper-directions.txt",
        "docs/results/paper/earlier/xeon-94062cc.metrics.json",
        // the label-only baselines at equal queries, three seeds
        "docs/results/baselines-small/study.md",
        "docs/results/ab/budget-tolerance.txt",
        "docs/results/ab/budget-decoders.txt",
        // the same comparison on all 10,000 test secrets
        "docs/results/baselines-paper/README.md",
        "docs/results/baselines-paper/fashion-mnist/study.md",
        "docs/results/baselines-paper/mnist/study.md",
        // Fashion-MNIST at paper scale: the run that meets its bars, the run before it and the A/Bs
        "docs/results/fashion-paper/weight-decay/README.md",
        "docs/results/fashion-paper/weight-decay/metrics.json",
        "docs/results/fashion-paper/weight-decay/config.toml",
        "docs/results/fashion-paper/weight-decay/run.txt",
        "docs/results/fashion-paper/real-only-28/README.md",
        // the same configuration at seeds 1-3 on the Intel Xeon
        "docs/results/fashion-paper/three-seeds/README.md",
        "docs/results/fashion-paper/three-seeds/seed-1/metrics.json",
        "docs/results/fashion-paper/three-seeds/seed-2/metrics.json",
        "docs/results/fashion-paper/three-seeds/seed-3/metrics.json",
        "docs/results/fashion-paper/three-seeds/weight-decay.md",
        "docs/results/fashion-paper/three-seeds/no-decay-seed-1/metrics.json",
        "docs/results/fashion-paper/three-seeds/no-decay-seed-2/metrics.json",
        "docs/results/fashion-paper/three-seeds/no-decay-seed-3/metrics.json",
        "docs/results/fashion-paper/three-seeds/class-guide.md",
        "docs/results/fashion-paper/three-seeds/no-guide-seed-1/metrics.json",
        "docs/results/fashion-paper/three-seeds/no-guide-seed-2/metrics.json",
        "docs/results/fashion-paper/three-seeds/no-guide-seed-3/metrics.json",
        "docs/results/fashion-paper/three-seeds/predicted-brackets.md",
        "docs/results/paper/three-seeds/README.md",
        "docs/results/paper/three-seeds/median-checks.md",
        "docs/results/paper/three-seeds/seed-2/metrics.json",
        "docs/results/paper/three-seeds/seed-3/metrics.json",
        "docs/results/paper/three-seeds/checks-seed-2/metrics.json",
        "docs/results/paper/three-seeds/checks-seed-3/metrics.json",
        // the preset before weight decay and median checks, and the steps measured on MNIST's seeds
        "docs/results/paper/earlier/amd-epyc-avx2-b513983.metrics.json",
        "docs/results/paper/earlier/amd-epyc-avx2-b513983.run.txt",
        "docs/results/paper/three-seeds/seed-1/metrics.json",
        "docs/results/paper/three-seeds/weight-decay.md",
        "docs/results/paper/three-seeds/decay-and-checks.md",
        "docs/results/paper/three-seeds/decay-checks-seed-2/metrics.json",
        "docs/results/paper/three-seeds/decay-checks-seed-3/metrics.json",
        "docs/results/paper/three-seeds/hidden-1024-seed-3/metrics.json",
        "docs/results/paper/three-seeds/epochs-20-seed-3/metrics.json",
        "docs/results/paper/three-seeds/tol-0.07-seed-3/metrics.json",
        "docs/results/paper/three-seeds/anchor-walk.md",
        "docs/results/fashion-paper/three-seeds/checks-walk.md",
        "docs/results/fashion-paper/three-seeds/seed-1-18bd653/run.txt",
        "docs/results/fashion-paper/three-seeds/seed-1-18bd653/metrics.json",
        "docs/results/ab/linear-input-gradient.txt",
        "docs/results/paper/three-seeds/walk-tol.md",
        "docs/results/paper/three-seeds/walk-tol-seed-1/metrics.json",
        "docs/results/paper/three-seeds/walk-tol-seed-2/metrics.json",
        "docs/results/paper/three-seeds/walk-tol-seed-3/metrics.json",
        "docs/results/paper/three-seeds/walk-hidden-1024.md",
        "docs/results/paper/three-seeds/walk-hidden-1024-seed-1/metrics.json",
        "docs/results/paper/three-seeds/walk-hidden-1024-seed-2/metrics.json",
        "docs/results/paper/three-seeds/walk-hidden-1024-seed-3/metrics.json",
        "docs/results/paper/three-seeds/walk-hidden-1024-10-seed-3.md",
        "docs/results/paper/three-seeds/walk-guide-0.003-seed-3.md",
        "docs/results/paper/three-seeds/walk-guide-0.003-seed-3/metrics.json",
        "docs/results/paper/three-seeds/walk-guide-0.001-seed-3.md",
        "docs/results/paper/three-seeds/walk-guide-0.001-seed-3/metrics.json",
        "docs/results/paper/three-seeds/walk-guide-0.001-seed-2.md",
        "docs/results/paper/three-seeds/walk-guide-0.001-seed-2/metrics.json",
        "docs/results/paper/three-seeds/walk-guide-0.001.md",
        "docs/results/paper/three-seeds/walk-guide-0.001-seed-1/metrics.json",
        // the guided preset from nothing, and the guide's cost alternated with the plain decoder
        "docs/results/paper/three-seeds/guide-from-nothing-seed-1/metrics.json",
        "docs/results/paper/three-seeds/guide-from-nothing-seed-1/run.txt",
        "docs/results/paper/three-seeds/guide-from-nothing-seed-1/second-run/metrics.json",
        "docs/results/paper/three-seeds/guide-from-nothing-seed-1/second-run/run.txt",
        "docs/results/ab/class-guide-cost.txt",
        // the preset before the guide, on the Intel Xeon and on the AMD EPYC
        "docs/results/paper/earlier/xeon-1252dfc.metrics.json",
        "docs/results/paper/earlier/xeon-1252dfc.run.txt",
        "docs/results/paper/earlier/amd-epyc-unguided.metrics.json",
        "docs/results/paper/three-seeds/plain-from-nothing-2026-12-07/run.txt",
        "docs/results/paper/three-seeds/guided-preset-epyc/seed-2/metrics.json",
        "docs/results/paper/three-seeds/guided-preset-epyc/seed-3/metrics.json",
        "docs/results/paper/three-seeds/guided-preset-epyc/seed-3/run.txt",
        "docs/results/paper/earlier/xeon-e2ffa14.metrics.json",
        "docs/results/paper/earlier/xeon-e2ffa14.run.txt",
        "docs/results/fashion-paper/three-seeds/median-checks.md",
        "docs/results/fashion-paper/three-seeds/checks-vs-median-start.md",
        "docs/results/fashion-paper/three-seeds/median-start-seed-1/metrics.json",
        "docs/results/fashion-paper/three-seeds/median-start-seed-2/metrics.json",
        "docs/results/fashion-paper/three-seeds/median-start-seed-3/metrics.json",
        "docs/results/fashion-paper/three-seeds/checks-seed-1/metrics.json",
        "docs/results/fashion-paper/three-seeds/checks-seed-2/metrics.json",
        "docs/results/fashion-paper/three-seeds/checks-seed-3/metrics.json",
        "docs/results/ab/weight-decay.txt",
        "docs/results/ab/fashion-copies.txt",
        // issue 12's last steps, measured at paper scale and dropped
        "docs/results/ab/residual-decoder.txt",
        "docs/results/ab/direction-order-and-stopping.txt",
        "docs/results/ab/quick-three-seeds/README.md",
        "docs/results/ab/quick-three-seeds/predicted-search.md",
        "docs/results/ab/quick-three-seeds/weight-decay.md",
        // the AVX2 EPYC: the paired benches before Winograd's transposed convolutions, before
        // inference's buffers and the kernels of 2026-12-05 and before the training changes of
        // 2026-12-04, and their A/Bs
        "docs/results/bench-2026-12-05b-epyc-avx2.txt",
        "docs/results/ab/winograd-transposed.txt",
        "docs/results/bench-2026-12-05-epyc-avx2.txt",
        "docs/results/ab/inference-buffers.txt",
        "docs/results/bench-2026-12-04-epyc-avx2.txt",
        "docs/results/ab/winograd-weight-gradient.txt",
        "docs/results/bench-2026-12-04-epyc-avx2-eee1aa8.txt",
        "docs/results/ab/conv-backward-blocks.txt",
        // the AVX-512 EPYC's bench, the bench of the commit before on it, and its training A/B
        "docs/results/bench-2026-12-02-epyc.txt",
        "docs/results/bench-2026-12-02-epyc.json",
        "docs/results/bench-2026-12-02-epyc-ce905f5.txt",
        "docs/results/training-ab-2026-12-02-epyc.txt",
        &bench_json,
        &name,
    ] {
        renderings(&read(rel), &mut known);
    }
    renderings(&bench_text, &mut known);
    // figures the tables derive (ratios), checked above, and their own words
    for row in &rows {
        renderings(row, &mut known);
    }
    // names that contain digits are words, not figures
    let prose = |text: &str| text.replace("AVX-512", "AVX");
    let unknown: Vec<String> = numbers(&prose(results))
        .into_iter()
        .chain(numbers(&prose(performance)))
        .filter(|n| !known.contains(n))
        .collect();
    assert!(unknown.is_empty(), "README figures found in no committed output under docs/results/: {unknown:?}");
}

/// The colour rows of a colour run, as the README's colour benchmarks state them; with a
/// palette decision, the network's undecided output too (both tables).
fn colour_figures(m: &Value) -> Vec<String> {
    let row = |name: &str, c: &Value| {
        format!("| {name} | {:.4} | {:.4} |", f(c, "foreground_error"), f(c, "background_error"))
    };
    let c = &m["colour"];
    let mut out = vec![
        row("decoder, from change-bit signatures", c),
        format!(
            "| mean-colour baseline (training originals) | {:.4} | {:.4} |",
            f(c, "baseline_foreground_error"),
            f(c, "baseline_background_error")
        ),
    ];
    let undecided = &m["undecided"];
    if !undecided.is_null() {
        let name = "decoder, colours undecided (the network's output)";
        out.push(quality_row(name, &undecided["decoder"]));
        out.push(row(name, &undecided["colour"]));
    }
    out
}

#[test]
fn readme_colour_benchmarks_agree_with_the_committed_outputs() {
    let readme = read("README.md");
    let section = section(&readme, "Any image size, colour");
    let bench = &section[section.find("### Colour benchmarks").expect("colour benchmark subsection")..];
    let mut known = BTreeSet::new();
    for (name, heading) in [("colour-mnist-32", "#### Colour-MNIST-32")] {
        let start = bench.find(heading).unwrap_or_else(|| panic!("no `{heading}`"));
        let part = &bench[start..];
        let part = &part[..part[4..].find("\n#### ").map(|e| e + 4).unwrap_or(part.len())];
        let dir = format!("docs/results/{name}");
        let m = json(&format!("{dir}/metrics.json"));
        let mut want = run_figures(&m, "2,000");
        want.extend(colour_figures(&m));
        assert_all_in(part, &want, name);
        for file in ["metrics.json", "config.toml", "run.txt"] {
            renderings(&read(&format!("{dir}/{file}")), &mut known);
        }
    }
    renderings(&read("docs/results/decoder-hidden-ab.txt"), &mut known);
    renderings(&read("docs/results/ab/colour-directions.txt"), &mut known);
    renderings(&read("docs/results/ab/class-guide.txt"), &mut known);
    renderings(&read("docs/results/ab/colour-loss.txt"), &mut known);
    renderings(&read("docs/results/ab/colour-tinted-directions.txt"), &mut known);
    renderings(&read("docs/results/ab/colour-foreground-limits.txt"), &mut known);
    renderings(&read("docs/results/ab/colour-palette.txt"), &mut known);
    for file in ["metrics.json", "config.toml", "run.txt"] {
        renderings(&read(&format!("docs/results/colour-mnist-32/earlier/tinted-aug4-undecided/{file}")), &mut known);
    }
    for file in ["metrics.json", "config.toml", "run.txt"] {
        renderings(&read(&format!("docs/results/ab/colour-k300/{file}")), &mut known);
    }
    for file in ["metrics.json", "config.toml", "run.txt"] {
        renderings(&read(&format!("docs/results/colour-mnist-32/earlier/quick-gaussian/{file}")), &mut known);
        renderings(&read(&format!("docs/results/colour-mnist-32/earlier/5023299-low-frequency/{file}")), &mut known);
        renderings(&read(&format!("docs/results/colour-fashion-32/{file}")), &mut known);
        renderings(&read(&format!("docs/results/colour-fashion-32/earlier/cbc064d-low-frequency/{file}")), &mut known);
    }
    renderings(&read("docs/results/colour-fashion-32/earlier/c85d763-paper-decoder/metrics.json"), &mut known);
    // the ratios to the bars are derived from the metrics; the bars themselves are the issue's
    for fixed in ["2", "95", "32", "28"] {
        known.insert(fixed.to_string());
    }
    let unknown: Vec<String> = numbers(bench).into_iter().filter(|n| !known.contains(n)).collect();
    assert!(unknown.is_empty(), "colour benchmark figures found in no committed output: {unknown:?}");
}

#[test]
fn number_scanner_and_renderings() {
    assert_eq!(
        numbers("MSE 0.0146, 12,000 images (`--images 300`), [a](b-2026-11-29.txt) 98.4%."),
        ["0.0146", "12,000", "98.4"]
    );
    assert_eq!(grouped(43804.4, 0), "43,804");
    assert_eq!(grouped(1065.0, 1), "1,065.0");
    assert_eq!(min_s(538.1), "8 min 58 s");
    let mut known = BTreeSet::new();
    renderings("\"mse\": 0.02037300623097659, \"class_recovery\": 0.9679999947547913", &mut known);
    assert!(known.contains("0.0204") && known.contains("96.8") && !known.contains("0.0205"));
}

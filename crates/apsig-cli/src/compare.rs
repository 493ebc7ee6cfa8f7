//! `apsig compare`: is one run configuration better than another on the same secrets? Each
//! finished run's reconstructions are scored again secret by secret (MSE, identification,
//! class recovery by the run's own evaluator), and each difference gets a 95% paired bootstrap
//! interval; with one pair of runs per seed, a side wins only where every seed agrees.

use crate::progress::Bars;
use crate::query_curve::run_model;
use anyhow::Result;
use apsig::data::DataOptions;
use apsig::model::Arch;
use apsig::pipeline::compare::compare_dirs;
use apsig::pipeline::files;
use clap::Args;
use std::path::{Path, PathBuf};

/// Pairs are given by position: `--reference r1 r2 r3 --candidate c1 c2 c3` compares c1 with
/// r1 (one seed), c2 with r2 (another), and so on. A change that leaves the earlier stages
/// alone (say the decoder's) costs only that stage: copy the reference run's directory and
/// run the changed config into the copy, and the finished stages are reused.
#[derive(Args)]
#[command(
    after_help = "Example, the decoder's weight decay at three seeds (config files differ in `weight_decay` and the seeds):\n  \
    apsig compare --reference runs/nowd-1 runs/nowd-2 runs/nowd-3 --candidate runs/wd-1 runs/wd-2 runs/wd-3 --out ab.md"
)]
pub struct CompareArgs {
    /// Finished run directories of the reference configuration, one per seed.
    #[arg(long, num_args = 1.., required = true, value_name = "RUN")]
    reference: Vec<PathBuf>,
    /// Finished run directories of the candidate configuration, paired with --reference by
    /// position (same seed, same secrets).
    #[arg(long, num_args = 1.., required = true, value_name = "RUN")]
    candidate: Vec<PathBuf>,
    /// Seed of the bootstrap resampling.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Write the comparison (Markdown) here too.
    #[arg(long, short, value_name = "FILE")]
    out: Option<PathBuf>,
    /// Write every figure of the comparison (JSON) here.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
}

pub fn compare(a: CompareArgs, opts: &DataOptions, bars: &Bars) -> Result<()> {
    let comparison = compare_dirs(&a.reference, &a.candidate, opts, a.seed, bars, |dir: &Path| {
        run_model(dir, None, files::EVALUATOR, "evaluator", Arch::EvalNet)
    })?;
    let md = comparison.markdown();
    print!("{md}");
    if let Some(p) = &a.out {
        apsig::io::atomic_write(p, md.as_bytes())?;
    }
    if let Some(p) = &a.json {
        apsig::io::atomic_write(p, serde_json::to_string_pretty(&comparison)?.as_bytes())?;
    }
    Ok(())
}

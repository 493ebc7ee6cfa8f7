//! `apsig study`: every direction strategy, oracle variant, defence and sweep, on every data
//! set, into one directory with `study.md`, `study.json` and figures.

use crate::progress::Bars;
use anyhow::Result;
use apsig::data::DataOptions;
use apsig::study::{self, StudyConfig};
use clap::{Args, ValueEnum};
use std::path::PathBuf;

/// The presets of `apsig study` (`StudyConfig::preset`).
#[derive(Clone, Copy, ValueEnum)]
pub enum StudyPreset {
    /// Both data sets, every row, under an hour on 2 cores.
    Small,
    /// The paper's scale, for bigger machines.
    Full,
    /// Seconds, for tests.
    Smoke,
}

impl StudyPreset {
    pub fn name(self) -> &'static str {
        match self {
            StudyPreset::Small => "small",
            StudyPreset::Full => "full",
            StudyPreset::Smoke => "smoke",
        }
    }
}

#[derive(Args)]
pub struct StudyArgs {
    /// Output directory; rerunning into it resumes (finished blocks and signatures are reused).
    /// A resume whose measured rows' config differs from the one stamped there is refused:
    /// change only strategies, data sets or comparison seeds, or use a fresh directory.
    #[arg(long, short, default_value = "runs/study")]
    out: PathBuf,
    /// Preset to start from.
    #[arg(long, value_enum, default_value_t = StudyPreset::Small)]
    preset: StudyPreset,
    /// A TOML study config (see `study.toml` in any study directory); overrides the preset.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Only these data sets (comma-separated names or IDX directories).
    #[arg(long, value_delimiter = ',')]
    datasets: Vec<String>,
    /// Seed of the preset (directions, initialisation, data order); a --config sets its own.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Only render study.md and the figures again from <out>/study.json (no measurement).
    #[arg(long)]
    report_only: bool,
}

impl StudyArgs {
    pub fn config(&self) -> Result<StudyConfig> {
        let mut cfg = match &self.config {
            Some(p) => apsig::io::read_toml::<StudyConfig>(p)?,
            None => StudyConfig::preset(self.preset.name(), self.seed)?,
        };
        if !self.datasets.is_empty() {
            cfg.datasets = self.datasets.clone();
        }
        Ok(cfg)
    }
}

pub fn study(a: StudyArgs, opts: &DataOptions, bars: &Bars) -> Result<()> {
    let s = if a.report_only { study::rerender(&a.out)? } else { study::run(&a.config()?, &a.out, opts, bars)? };
    for d in &s.datasets {
        println!("{}: target {:.2}%, {} rows", d.dataset, 100.0 * d.target_accuracy, d.cells.len());
    }
    println!("study: {} ({:.0} s)", a.out.join("study.md").display(), s.seconds);
    Ok(())
}

//! `apsig`: measure what a change bit leaks about a classifier's secret inputs.
//!
//! The CLI only parses arguments, draws progress and prints summaries; every stage is a
//! library call, so what the CLI does a script can do too.

mod commands;
mod progress;

use clap::Parser;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "apsig",
    version,
    about = "Reconstruct secret classifier inputs from change bits (additive perturbation signatures).",
    long_about = "apsig measures how much a classifier leaks about its secret inputs when an adversary can only add \
perturbations to the (encrypted) input and learn whether the top-1 decision changed.\n\n\
Pipeline: data -> target model M -> change oracle -> signatures (eps along K directions) -> decoder -> reconstructions -> metrics, figures, report.\n\n\
Start with `apsig run` (the whole pipeline into a run directory); every stage is also a subcommand below."
)]
struct Cli {
    /// Where data sets live: a directory holding `mnist/`, `fashion-mnist/` (else $APSIG_DATA_DIR, the user cache, /usr/share/datasets).
    #[arg(long, global = true)]
    data_dir: Option<PathBuf>,
    /// Download missing data sets from the canonical mirrors (checksums verified).
    #[arg(long, global = true)]
    download: bool,
    /// No progress bars.
    #[arg(long, short, global = true)]
    quiet: bool,
    #[command(subcommand)]
    cmd: commands::Command,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("APSIG_LOG")
                .unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let bars = progress::Bars::new(cli.quiet);
    let opts = apsig::data::DataOptions {
        data_dir: cli.data_dir.clone(),
        download: cli.download,
        ..Default::default()
    };
    match commands::dispatch(cli.cmd, &opts, &bars) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

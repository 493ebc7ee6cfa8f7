//! `apsig`: measure what a change bit leaks about a classifier's secret inputs.
//!
//! The CLI only parses arguments, draws progress and prints summaries; every stage is a
//! library call, so what the CLI does a script can do too.

mod attack;
mod bench;
mod commands;
mod compare;
mod make_colour;
mod progress;
mod query_curve;
mod search_args;
mod serve;
mod study;

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
    /// Where data sets live: a directory holding `mnist/`, `fashion-mnist/`, `cifar10/`, `cifar100/` (else $APSIG_DATA_DIR, the user cache, /usr/share/datasets).
    #[arg(long, global = true)]
    data_dir: Option<PathBuf>,
    /// Download missing data sets from the canonical mirrors (checksums verified).
    #[arg(long, global = true)]
    download: bool,
    /// No progress: no bars on a terminal, no progress lines on a pipe or in a log.
    #[arg(long, short, global = true)]
    quiet: bool,
    /// With --download: fetch from this mirror instead of the canonical ones; an
    /// `http(s)://` base URL, a `file:///dir/` URL or a plain directory holding the `.gz`
    /// files (offline installs, tests). Repeatable, tried in order; checksums are verified
    /// and a file appears under its final name only once verified. Hidden from --help.
    #[arg(long, global = true, hide = true, value_name = "URL or DIR")]
    mirror: Vec<String>,
    #[command(subcommand)]
    cmd: commands::Command,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // the service logs one line per request at info; every other command stays quiet
    let default_log = if matches!(cli.cmd, commands::Command::Serve(_)) { "info" } else { "warn" };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("APSIG_LOG").unwrap_or_else(|_| default_log.into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let bars = progress::Bars::new(cli.quiet);
    let opts =
        apsig::data::DataOptions { data_dir: cli.data_dir.clone(), download: cli.download, ..Default::default() };
    let fetched = match (cli.download, cli.cmd.dataset()) {
        (true, Some(name)) if !cli.mirror.is_empty() => fetch_from_mirrors(&name, &opts, &cli.mirror),
        _ => Ok(()),
    };
    match fetched.and_then(|()| commands::dispatch(cli.cmd, &opts, &bars)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", one_line(&e));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes on one line. Causes whose text the message before already
/// holds are left out: most library errors embed their source in their own message.
fn one_line(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let msg = cause.to_string();
        if out.contains(&msg) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&msg);
    }
    out.lines().map(str::trim).collect::<Vec<_>>().join(" ")
}

/// `--download --mirror ...`: a known data set found nowhere locally is fetched from the
/// given mirrors into the place `--download` would use (`<data-dir>/<name>`, else the user
/// cache); the command then finds it there.
fn fetch_from_mirrors(name: &str, opts: &apsig::data::DataOptions, mirrors: &[String]) -> anyhow::Result<()> {
    use apsig::data::{default_cache_dir, download, known, locate, DataOptions};
    let Some(ds) = known(name).filter(|_| !std::path::Path::new(name).is_dir()) else {
        return Ok(()); // a path (directory or .npz), or an unknown name the command reports
    };
    let local = DataOptions { download: false, ..opts.clone() };
    if locate(name, &local).is_ok() {
        return Ok(());
    }
    let dest = match &opts.data_dir {
        Some(d) => d.join(name),
        None => default_cache_dir()
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "{name}: cannot download: no cache directory (set XDG_CACHE_HOME or HOME, or pass --data-dir)"
                )
            })?
            .join(name),
    };
    download(ds, &dest, mirrors)?;
    Ok(())
}

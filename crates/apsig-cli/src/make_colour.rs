//! `apsig make-colour`: the colour benchmarks (Colour-MNIST-32, Colour-Fashion-32) from a grey
//! data set, as a `.npz` any data-set option reads.

use anyhow::{Context, Result};
use apsig::data::colour::{write_colour_benchmark, COLOUR_SIDE};
use apsig::data::DataOptions;
use clap::Args;
use std::path::PathBuf;

#[derive(Args)]
pub struct MakeColourArgs {
    /// Grey source: a data set name (mnist, fashion-mnist) or a directory/.npz of grey images.
    #[arg(long, default_value = "mnist")]
    pub from: String,
    /// Output `.npz` (written atomically), e.g. data/colour-mnist-32.npz.
    #[arg(long, short)]
    out: PathBuf,
    /// Seed of the per-image colour draws; the same seed writes the same bytes.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Side of the padded square images (the source is centred in it).
    #[arg(long, default_value_t = COLOUR_SIDE)]
    side: usize,
}

pub fn make_colour(a: MakeColourArgs, opts: &DataOptions) -> Result<()> {
    let data = apsig::data::load(&a.from, opts)?;
    let (train, test) = write_colour_benchmark(&data, &a.out, a.side, a.seed)
        .with_context(|| format!("colouring {}", data.dir.display()))?;
    println!(
        "{}: {train} train + {test} test images, {side}x{side}x3 uint8 NHWC, colours from {} (seed {})",
        a.out.display(),
        data.name,
        a.seed,
        side = a.side
    );
    Ok(())
}

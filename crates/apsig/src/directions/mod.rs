//! Perturbation directions: K seeded tensors of the input's shape, each of unit L2 norm.
//!
//! Strategies come in two kinds. Data-free ones (`gaussian`, `rademacher`, `low-frequency`,
//! `low-frequency-tinted`)
//! need only the seed and the shape, so [`Directions::generate`] makes them. Data-dependent
//! ones (`centroid-differences`, `adversarial`, `principal`) also look at the adversary's own
//! training images and, for `adversarial`, its own copy of the model, passed in a
//! [`DirectionContext`] to [`Directions::generate_with`]. They never see secrets.
//!
//! Every strategy is deterministic for a given seed, and all but `principal` draw their
//! directions one after another from one stream, so the first `k` directions of a set of `K`
//! are exactly the directions of a set of `k` (a K sweep can slice one signature set). For
//! `principal` the same holds exactly for a fixed data set, because the whole eigenbasis is
//! computed whatever K is; see [`Strategy::Principal`] for what it means across data sets.

mod pca;
mod strategies;

use crate::error::{Error, Result};
use crate::io::{write_tensors, TensorFile, TensorOut};
use crate::nn::{Network, Shape};
use crate::rng::Rng;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::str::FromStr;

pub use strategies::LOW_FREQUENCY_BAND;

/// How directions are drawn. Data-dependent strategies see only the adversary's data.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Strategy {
    /// i.i.d. standard normal per pixel (the paper's).
    Gaussian,
    /// i.i.d. +-1 per pixel.
    Rademacher,
    /// Smooth noise: i.i.d. standard normal coefficients on the low 2-D DCT band
    /// (`u + v < LOW_FREQUENCY_BAND`, 36 coefficients), inverse orthonormal DCT-II to the
    /// image, each channel of a colour image with its own coefficients. More than 36 per
    /// channel directions are linearly dependent.
    LowFrequency,
    /// One low-frequency pattern in one random colour: the pattern of one channel of
    /// `low-frequency` times a standard normal colour vector, so every channel sees the same
    /// shape. The same directions as `low-frequency` on grey images.
    LowFrequencyTinted,
    /// Random zero-sum combinations of the class centroids of the adversary's training
    /// images: directions in the span of the centroid differences (at most classes - 1 of
    /// them are linearly independent).
    CentroidDifferences,
    /// Towards the decision boundary of the adversary's copy of the model: minus the
    /// normalised input gradient of the top-1 margin at distinct seeded-random training
    /// images (when K exceeds the number of images, later rounds use jittered copies).
    Adversarial,
    /// The top-K principal components of the adversary's training images (an evenly strided
    /// subsample of at most 10,000), each with a seeded random sign. The prefix property is
    /// exact for a fixed data set; components whose eigenvalues are (nearly) equal are only
    /// defined up to a rotation, so across data sets or subsamples they agree only approximately.
    Principal,
}

impl Strategy {
    /// Every strategy, data-free ones first.
    pub const ALL: [Strategy; 7] = [
        Strategy::Gaussian,
        Strategy::Rademacher,
        Strategy::LowFrequency,
        Strategy::LowFrequencyTinted,
        Strategy::CentroidDifferences,
        Strategy::Adversarial,
        Strategy::Principal,
    ];

    /// The kebab-case name used in configs and on the command line.
    pub fn name(&self) -> &'static str {
        match self {
            Strategy::Gaussian => "gaussian",
            Strategy::Rademacher => "rademacher",
            Strategy::LowFrequency => "low-frequency",
            Strategy::LowFrequencyTinted => "low-frequency-tinted",
            Strategy::CentroidDifferences => "centroid-differences",
            Strategy::Adversarial => "adversarial",
            Strategy::Principal => "principal",
        }
    }

    /// Whether the strategy needs the adversary's training data (a [`DirectionContext`]).
    pub fn needs_data(&self) -> bool {
        matches!(self, Strategy::CentroidDifferences | Strategy::Adversarial | Strategy::Principal)
    }

    /// Whether the strategy also needs the adversary's copy of the model.
    pub fn needs_model(&self) -> bool {
        matches!(self, Strategy::Adversarial)
    }
}

impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Strategy {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Strategy::ALL.into_iter().find(|st| st.name() == s).ok_or_else(|| {
            let names: Vec<&str> = Strategy::ALL.iter().map(|st| st.name()).collect();
            Error::invalid("direction strategy", format!("unknown strategy `{s}` (one of: {})", names.join(", ")))
        })
    }
}

/// How a direction set is drawn.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DirectionConfig {
    /// The strategy.
    pub strategy: Strategy,
    /// Number of directions K.
    pub k: usize,
    /// Seed of every random draw.
    pub seed: u64,
}

/// What data-dependent strategies may look at: the adversary's own data and model, never secrets.
#[derive(Clone, Copy)]
pub struct DirectionContext<'a> {
    /// Row-major `[n, shape.len()]`, values in `[0, 1]`.
    pub images: &'a [f32],
    /// One label per image, in `0..classes`.
    pub labels: &'a [u8],
    /// The adversary's copy of the model (needed by `adversarial` only).
    pub model: Option<&'a Network>,
}

impl DirectionContext<'_> {
    /// Checks the context against the directions' shape; returns the number of images.
    fn check(&self, shape: Shape) -> Result<usize> {
        let len = shape.len();
        let n = self.labels.len();
        if n == 0 {
            return Err(Error::invalid("directions", "the adversary's training data is empty"));
        }
        if self.images.len() != n * len {
            return Err(Error::invalid(
                "directions",
                format!(
                    "{} training pixels for {n} labels of {}x{}x{} images (expected {})",
                    self.images.len(),
                    shape.h,
                    shape.w,
                    shape.c,
                    n * len
                ),
            ));
        }
        if self.images.iter().any(|v| !v.is_finite()) {
            return Err(Error::invalid("directions", "the adversary's training images contain non-finite values"));
        }
        Ok(n)
    }
}

/// K unit-norm directions, row-major `[k, shape.len()]`.
#[derive(Clone, Debug)]
pub struct Directions {
    /// How the set was drawn.
    pub config: DirectionConfig,
    /// Shape of one direction (the input's).
    pub shape: Shape,
    /// Row-major `[k, shape.len()]`, each row of unit L2 norm.
    pub data: Vec<f32>,
}

impl Directions {
    /// Data-free strategies only (`gaussian`, `rademacher`, `low-frequency`); the others
    /// answer with an error that says what they need (use [`Directions::generate_with`]).
    pub fn generate(config: &DirectionConfig, shape: Shape) -> Result<Self> {
        Self::generate_with(config, shape, None)
    }

    /// Any strategy; `ctx` is required by those for which [`Strategy::needs_data`] holds.
    pub fn generate_with(config: &DirectionConfig, shape: Shape, ctx: Option<&DirectionContext<'_>>) -> Result<Self> {
        if config.k == 0 || config.k > 100_000 {
            return Err(Error::invalid("directions", format!("K = {} (must be 1..=100000)", config.k)));
        }
        let (k, seed, len) = (config.k, config.seed, shape.len());
        if len == 0 {
            return Err(Error::invalid("directions", "empty input shape"));
        }
        let missing = || {
            let what = if config.strategy.needs_model() { "training data and model" } else { "training data" };
            Error::invalid(
                "directions",
                format!(
                    "strategy `{}` needs the adversary's {what}; generate it with Directions::generate_with \
                     and a DirectionContext (as the `run` pipeline does)",
                    config.strategy
                ),
            )
        };
        let data = match (config.strategy, ctx) {
            (Strategy::Gaussian | Strategy::Rademacher, _) => {
                // Unchanged since v1: existing signatures' fingerprints depend on these bits.
                let mut rng = Rng::derive(seed, "directions");
                let mut data = Vec::with_capacity(k * len);
                for _ in 0..k {
                    let mut d: Vec<f32> = match config.strategy {
                        Strategy::Gaussian => (0..len).map(|_| rng.normal()).collect(),
                        _ => (0..len).map(|_| if rng.next_u64() >> 63 == 0 { 1.0 } else { -1.0 }).collect(),
                    };
                    normalise(&mut d);
                    data.extend(d);
                }
                data
            }
            (Strategy::LowFrequency, _) => strategies::low_frequency(k, seed, shape)?,
            (Strategy::LowFrequencyTinted, _) => strategies::low_frequency_tinted(k, seed, shape)?,
            (_, None) => return Err(missing()),
            (Strategy::CentroidDifferences, Some(ctx)) => {
                ctx.check(shape)?;
                strategies::centroid_differences(k, seed, len, ctx.images, ctx.labels)?
            }
            (Strategy::Adversarial, Some(ctx)) => {
                ctx.check(shape)?;
                let model = ctx.model.ok_or_else(|| {
                    Error::invalid("directions", "strategy `adversarial` needs the adversary's copy of the model")
                })?;
                strategies::adversarial(k, seed, shape, ctx.images, model)?.0
            }
            (Strategy::Principal, Some(ctx)) => {
                let n = ctx.check(shape)?;
                pca::principal(k, seed, len, ctx.images, n)?
            }
        };
        check_rows(&data, k, len, config.strategy)?;
        Ok(Directions { config: config.clone(), shape, data })
    }

    /// Number of directions K.
    pub fn k(&self) -> usize {
        self.config.k
    }

    /// The first `k` directions (a K sweep's slice; see the module docs for why this is the
    /// set of `k` the strategy would draw).
    pub fn prefix(&self, k: usize) -> Directions {
        let mut d = self.clone();
        d.config.k = k.min(self.k());
        d.data.truncate(d.config.k * self.len());
        d
    }
    /// Values in one direction.
    pub fn len(&self) -> usize {
        self.shape.len()
    }
    /// Whether a direction has no values.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }
    /// Direction `i`.
    pub fn get(&self, i: usize) -> &[f32] {
        &self.data[i * self.len()..(i + 1) * self.len()]
    }

    /// A content hash: signatures record it and loaders compare it, so signatures can never
    /// be decoded against directions they were not measured with.
    pub fn fingerprint(&self) -> String {
        crate::io::fingerprint_f32(&self.data)
    }

    /// Saves the set with its config and fingerprint.
    pub fn save(&self, path: &Path) -> Result<()> {
        let mut meta = BTreeMap::new();
        meta.insert("format".into(), "apsig-directions-v1".into());
        meta.insert("config".into(), serde_json::to_string(&self.config).expect("config serialises"));
        meta.insert("shape".into(), serde_json::to_string(&self.shape).expect("shape serialises"));
        meta.insert("fingerprint".into(), self.fingerprint());
        write_tensors(path, &[TensorOut::F32("directions", vec![self.k(), self.len()], &self.data)], &meta)
    }

    /// Loads a set saved by `save`, refusing files that are not one.
    pub fn load(path: &Path) -> Result<Self> {
        let f = TensorFile::read(path)?;
        if f.meta("format")? != "apsig-directions-v1" {
            return Err(Error::bad_file(path, "not an apsig directions file"));
        }
        let config: DirectionConfig = serde_json::from_str(f.meta("config")?)
            .map_err(|e| Error::bad_file(path, format!("bad config metadata: {e}")))?;
        let shape: Shape = serde_json::from_str(f.meta("shape")?)
            .map_err(|e| Error::bad_file(path, format!("bad shape metadata: {e}")))?;
        let (_, data) = f.f32("directions", Some(&[config.k, shape.len()]))?;
        let d = Directions { config, shape, data };
        if d.fingerprint() != f.meta("fingerprint")? {
            return Err(Error::bad_file(path, "directions do not match their recorded fingerprint (file corrupted?)"));
        }
        Ok(d)
    }
}

fn normalise(d: &mut [f32]) {
    let norm = d.iter().map(|v| (*v as f64) * (*v as f64)).sum::<f64>().sqrt() as f32;
    if norm > 0.0 {
        d.iter_mut().for_each(|v| *v /= norm);
    }
}

/// The L2 norm of `d` in f64.
fn norm64(d: &[f64]) -> f64 {
    d.iter().map(|v| v * v).sum::<f64>().sqrt()
}

/// `d / |d|` rounded to f32, or `None` when `d` is zero or not finite.
fn unit_f32(d: &[f64]) -> Option<Vec<f32>> {
    let norm = norm64(d);
    (norm.is_finite() && norm > 0.0).then(|| d.iter().map(|v| (v / norm) as f32).collect())
}

/// The promise every strategy keeps: exactly K finite unit-norm rows.
fn check_rows(data: &[f32], k: usize, len: usize, strategy: Strategy) -> Result<()> {
    if data.len() != k * len {
        return Err(Error::invalid(
            "directions",
            format!("strategy `{strategy}` made {} values, not {k} x {len}", data.len()),
        ));
    }
    for (i, row) in data.chunks(len).enumerate() {
        let norm = row.iter().map(|v| (*v as f64) * (*v as f64)).sum::<f64>().sqrt();
        if !norm.is_finite() || (norm - 1.0).abs() > 1e-3 {
            return Err(Error::invalid(
                "directions",
                format!("strategy `{strategy}` made direction {i} with norm {norm}"),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
